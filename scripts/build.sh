#!/usr/bin/env bash
# Compiles egressd into one executable (default dist/egressd; the first argument names another path),
# with the git commit built in for `egressd version`. Outside a git checkout (a release tarball, the
# Nix sandbox) the commit is "unknown"; a checkout with uncommitted changes gets "-dirty".
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/egressd}
commit=unknown
# Only this directory's own checkout: a tarball unpacked inside some other repository must not
# pick up that repository's commit.
if [[ -e .git ]] && c=$(git rev-parse --short=12 HEAD 2>/dev/null); then
  commit=$c
  git diff --quiet HEAD -- 2>/dev/null || commit+=-dirty
fi
exec "${BUN:-bun}" build --compile --minify-syntax --sourcemap=none --define "EGRESSD_COMMIT=\"$commit\"" main.ts --outfile "$out"
