#!/usr/bin/env bash
# The action's one entry point: every value arrives through the environment
# (never interpolated into a script), and is passed to lab-hooks as arguments.
set -euo pipefail
if [ -n "${LAB_HOME_INPUT:-}" ]; then export LAB_HOME="$LAB_HOME_INPUT"; fi
case "$LAB_MODE" in
  validate)
    args=(validate --format github)
    if [ -n "$LAB_BASE" ]; then args+=(--base "$LAB_BASE"); fi
    exec lab-hooks "${args[@]}"
    ;;
  pr)
    if [ -n "$LAB_PR" ]; then bash "$ACTION_PATH/action/fetch-pr.sh"; fi
    args=(pr --base "${LAB_BASE:-origin/HEAD}" --head "$LAB_HEAD" --teacher "$LAB_TEACHER"
          --student "$LAB_STUDENT" --judge "$LAB_JUDGE" --results "$LAB_RESULTS")
    if [ -n "$LAB_PR" ]; then args+=(--pr "$LAB_PR"); fi
    if [ "${LAB_QUICK:-0}" != "0" ]; then args+=(--quick "$LAB_QUICK"); fi
    exec lab-hooks "${args[@]}"
    ;;
  promote)
    exec lab-hooks promote --ref "${LAB_BASE:-main}" --student "$LAB_STUDENT" --teacher "$LAB_TEACHER"
    ;;
  comment)
    exec lab-hooks comment --results "$LAB_RESULTS" --pr "$LAB_PR" --repo "$GITHUB_REPOSITORY" \
      --api-url "${GITHUB_API_URL:-https://api.github.com}"
    ;;
esac
