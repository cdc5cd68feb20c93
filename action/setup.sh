#!/usr/bin/env bash
# Install lab-hooks into a private venv from the action's own checkout (pinned by
# the workflow's `uses: ...@sha`), never from the repository being checked.
set -euo pipefail
venv="${RUNNER_TEMP:-/tmp}/lab-hooks-venv"
case "$LAB_MODE" in
  validate|comment) extras="" ;;
  pr|promote) extras="[ml,postgres]" ;;  # postgres: the store may be shared (LAB_STORE_URL, docs/runners.md)
  *) echo "lab-hooks: mode must be validate, pr, promote or comment, got '${LAB_MODE//::/:}'" >&2; exit 2 ;;
esac
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -c "$ACTION_PATH/constraints.txt" "${ACTION_PATH}${extras}"
echo "$venv/bin" >> "$GITHUB_PATH"
