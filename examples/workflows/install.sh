#!/usr/bin/env bash
# Copy the example workflows into a taxonomy repository, with every
# `uses: OWNER/lab-hooks@<placeholder>` pinned to a full commit sha of lab-hooks:
#
#   examples/workflows/install.sh OWNER/REPO TAXONOMY_DIR [COMMIT]
#
# OWNER/REPO is where your runners fetch the action from (this project on GitHub,
# or your audited fork or mirror); COMMIT (a sha, tag or branch of this checkout,
# default HEAD) is resolved to the full sha here, so a moved tag cannot change what
# runs. Existing workflows of the same names are overwritten (re-run it to upgrade).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
placeholder="OWNER/lab-hooks@0000000000000000000000000000000000000000"
die() { echo "install.sh: $*" >&2; exit 2; }

[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: install.sh OWNER/REPO TAXONOMY_DIR [COMMIT]"
action="$1" target="$2" commit="${3:-HEAD}"
[[ "$action" =~ ^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$ ]] || die "$action: expected OWNER/REPO, e.g. acme/lab-hooks"
[ -d "$target" ] || die "$target: no such directory (the taxonomy repository's root)"
sha="$(git -C "$here" rev-parse --verify --quiet "$commit^{commit}")" \
  || die "$commit: not a commit of the lab-hooks checkout at $here"
root="$(git -C "$here" rev-parse --show-toplevel)"
if ! git -C "$root" diff --quiet "$sha" -- action.yml action lab_hooks pyproject.toml constraints.txt; then
  echo "install.sh: warning: this checkout's action or code differs from $sha; the workflows run $sha" >&2
fi

version="$(git -C "$here" describe --tags --always "$sha" | tr -cd 'A-Za-z0-9._+-')"
mkdir -p "$target/.github/workflows"
for workflow in "$here"/*.yml; do
  out="$target/.github/workflows/$(basename "$workflow")"
  grep -q "$placeholder" "$workflow" || die "$workflow: no '$placeholder' to pin"
  sed -e "s|$placeholder # pin:.*|$action@$sha # lab-hooks $version|" "$workflow" > "$out"
  if grep -q "OWNER/" "$out"; then die "$out: a placeholder is left (not in the form '$placeholder # pin: ...')"; fi
  echo "$out: uses $action@$sha"
done
