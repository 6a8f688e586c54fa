# The two commands: `make demo` (set up, run the main job) and `make test` (set up, run the suite).
VENV ?= .venv
PY := $(VENV)/bin/python
export WORKBENCH_HOME ?= $(CURDIR)/.workbench
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test up bench clean

setup:
	@bash infra/install.sh

demo: setup
	$(VENV)/bin/workbench models pull-base
	$(VENV)/bin/workbench demo $(if $(QUICK),--quick,)

test: setup
	$(VENV)/bin/workbench models pull-base
	$(PY) -m pytest -q $(PYTEST_ARGS)

up: setup
	@bash infra/up.sh

bench: setup
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .workbench
