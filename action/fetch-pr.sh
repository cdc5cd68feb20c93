#!/usr/bin/env bash
# Bring the PR head's git objects into the default-branch checkout, as data: a
# fetch into a private ref, no checkout, no hooks, no submodules. The PR number
# comes from an artifact a fork can forge, so it must resolve to exactly the
# head sha that the triggering run validated.
set -euo pipefail
if ! [[ "$LAB_PR" =~ ^[0-9]{1,10}$ ]]; then echo "lab-hooks: PR number must be digits" >&2; exit 2; fi
if ! [[ "$LAB_HEAD" =~ ^[0-9a-f]{40}$ ]]; then echo "lab-hooks: head must be a 40-hex sha" >&2; exit 2; fi
if [ -n "${LAB_TOKEN:-}" ]; then
  # Through git's environment config, not `-c` on the command line (which any user can read in ps).
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraheader
  GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$LAB_TOKEN" | base64 -w0)"
  export GIT_CONFIG_VALUE_0
fi
git -c core.hooksPath=/dev/null fetch --no-tags --no-recurse-submodules --quiet \
  origin "+refs/pull/$LAB_PR/head:refs/lab-hooks/pr/$LAB_PR"
fetched="$(git rev-parse "refs/lab-hooks/pr/$LAB_PR")"
if [ "$fetched" != "$LAB_HEAD" ]; then
  echo "lab-hooks: PR #$LAB_PR head is $fetched, not the validated $LAB_HEAD (pushed since, or a forged PR number)" >&2
  exit 1
fi
