#!/usr/bin/env bash
# Install lab-hooks into a private venv from the action's own checkout (pinned by
# the workflow's `uses: ...@sha`), never from the repository being checked. Wheels
# only: no package's build code runs on the runner.
#
# The ML modes (pr, promote) pick their package set by the runner's hardware:
# with an NVIDIA GPU (`nvidia-smi -L` lists one), action/requirements-cuda.txt,
# every package pinned with its hashes (torch's CUDA build, vLLM's CUDA build),
# installed with --require-hashes; else constraints.txt, the CPU set CI runs.
# LAB_ACCELERATOR=cuda|cpu overrides the detection. With LAB_SETUP_PLAN=1 the pip
# commands are printed, not run.
set -euo pipefail
venv="${RUNNER_TEMP:-/tmp}/lab-hooks-venv"
case "$LAB_MODE" in
  validate|comment) extras="" ;;
  pr|promote) extras="[ml,postgres]" ;;  # postgres: the store may be shared (LAB_STORE_URL, docs/runners.md)
  *) echo "lab-hooks: mode must be validate, pr, promote or comment, got '${LAB_MODE//::/:}'" >&2; exit 2 ;;
esac
accelerator="${LAB_ACCELERATOR:-auto}"
if [ "$accelerator" = auto ]; then
  accelerator=cpu
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]'; then
    accelerator=cuda
  fi
fi
case "$accelerator" in
  cpu|cuda) ;;
  *) echo "lab-hooks: LAB_ACCELERATOR must be auto, cpu or cuda, got '${accelerator//::/:}'" >&2; exit 2 ;;
esac
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary :all:)
if [ -n "$extras" ] && [ "$accelerator" = cuda ]; then
  if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
    echo "lab-hooks: the CUDA set is locked for Python 3.11 and 3.12; this runner's python3 is another" >&2
    exit 2
  fi
  echo "lab-hooks: NVIDIA GPU: installing the CUDA set (action/requirements-cuda.txt, hash-checked)" >&2
  steps=("${pip[*]} --require-hashes --no-deps -r $ACTION_PATH/action/requirements-cuda.txt"
         "${pip[*]} --no-deps --no-build-isolation $ACTION_PATH")
else
  echo "lab-hooks: installing the CPU set (constraints.txt)" >&2
  if [ -n "$extras" ]; then
    # constraints.txt pins torch's CPU build (2.13.0+cpu): PyTorch publishes it on its own index, not on PyPI.
    pip+=(--extra-index-url https://download.pytorch.org/whl/cpu)
  fi
  steps=("${pip[*]} -c $ACTION_PATH/constraints.txt ${ACTION_PATH}${extras}")
fi
if [ "${LAB_SETUP_PLAN:-0}" = 1 ]; then
  printf '%s\n' "${steps[@]}"
  exit 0
fi
python3 -m venv "$venv"
if [ -n "$extras" ] && [ "$accelerator" = cuda ]; then
  "${pip[@]}" --require-hashes --no-deps -r "$ACTION_PATH/action/requirements-cuda.txt"
  "${pip[@]}" --no-deps --no-build-isolation "$ACTION_PATH"
else
  "${pip[@]}" -c "$ACTION_PATH/constraints.txt" "${ACTION_PATH}${extras}"
fi
echo "$venv/bin" >> "$GITHUB_PATH"
