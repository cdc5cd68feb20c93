#!/usr/bin/env bash
# The action's one entry point: every value arrives through the environment
# (never interpolated into a script), and is passed to lab-hooks as arguments.
# The token ($LAB_TOKEN) reaches only what needs it: fetch-pr.sh (read-only,
# to fetch a private repo's PR head) and `lab-hooks comment`; the ML process
# (`pr`, `promote`) runs without it and posts nothing.
set -euo pipefail
if [ -n "${LAB_HOME_INPUT:-}" ]; then export LAB_HOME="$LAB_HOME_INPUT"; fi
# Run lab-hooks with no token of any kind in its environment.
tokenless=(env -u LAB_TOKEN -u GITHUB_TOKEN -u GH_TOKEN -u ACTIONS_RUNTIME_TOKEN
           -u ACTIONS_ID_TOKEN_REQUEST_TOKEN -u ACTIONS_ID_TOKEN_REQUEST_URL)
case "$LAB_MODE" in
  validate)
    args=(validate --format github)
    if [ -n "$LAB_BASE" ]; then args+=(--base "$LAB_BASE"); fi
    exec "${tokenless[@]}" lab-hooks "${args[@]}"
    ;;
  pr)
    out_dir="$(dirname "$LAB_RESULTS")"
    mkdir -p "$out_dir"
    rm -f "$out_dir/number" "$out_dir/head_sha"
    args=(pr --base "${LAB_BASE:-origin/HEAD}" --head "$LAB_HEAD" --teacher "$LAB_TEACHER"
          --student "$LAB_STUDENT" --judge "$LAB_JUDGE" --results "$LAB_RESULTS")
    if [ -n "$LAB_PR" ]; then
      bash "$ACTION_PATH/action/fetch-pr.sh"
      # Verified: refs/pull/$LAB_PR/head is the validated head. Only now may lab-comment use them.
      printf '%s\n' "$LAB_PR" > "$out_dir/number"
      printf '%s\n' "$LAB_HEAD" > "$out_dir/head_sha"
      args+=(--pr "$LAB_PR")  # recorded in results.json; with no token, nothing is posted
    fi
    if [ "${LAB_QUICK:-0}" != "0" ]; then args+=(--quick "$LAB_QUICK"); fi
    if [ "${LAB_GPUS:-0}" != "0" ]; then args+=(--nproc "$LAB_GPUS"); fi
    exec "${tokenless[@]}" lab-hooks "${args[@]}"
    ;;
  promote)
    args=(promote --base "${LAB_BASE:-main}" --student "$LAB_STUDENT" --teacher "$LAB_TEACHER")
    if [ "${LAB_GPUS:-0}" != "0" ]; then args+=(--nproc "$LAB_GPUS"); fi
    exec "${tokenless[@]}" lab-hooks "${args[@]}"
    ;;
  comment)
    args=(comment --results "$LAB_RESULTS" --pr "$LAB_PR" --github-repo "$GITHUB_REPOSITORY"
          --api-url "${GITHUB_API_URL:-https://api.github.com}" --token-env LAB_TOKEN)
    if [ -n "$LAB_HEAD" ]; then args+=(--expect-head "$LAB_HEAD"); fi
    if [ -n "${LAB_ARTIFACTS_URL:-}" ]; then args+=(--artifacts-url "$LAB_ARTIFACTS_URL"); fi
    exec lab-hooks "${args[@]}"
    ;;
esac
