#!/usr/bin/env bash
# The test command (`npm test`): type check, compile the single binary, run every test layer, and
# end with one plain line "N passed, N failed, N skipped". The type check and the compile count as
# one check each. Namespace tests need root and the tools from scripts/setup.sh.
# Extra arguments go to `bun test` (e.g. `npm test -- test/proxy`).
set -uo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
passed=0 failed=0 skipped=0

check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}

check "type check (tsc --noEmit)" node_modules/.bin/tsc --noEmit -p tsconfig.json
check "compile dist/egressd" $BUN run build

log=$(mktemp)
trap 'rm -f "$log"' EXIT
$BUN test --timeout 60000 "$@" 2>&1 | tee "$log"
bun_rc=${PIPESTATUS[0]}
# bun's summary lines: " 123 pass", " 0 fail", " 4 skip"
count() { grep -E "^ *[0-9]+ $1\$" "$log" | tail -1 | awk '{print $1}'; }
p=$(count pass) f=$(count fail) s=$(count skip)
passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0})) skipped=$((skipped + ${s:-0}))
if [[ $bun_rc -ne 0 && ${f:-0} -eq 0 ]]; then
  echo "FAILED: bun test exited $bun_rc without a failing test (a load error?)"
  failed=$((failed + 1))
fi
if [[ ${f:-0} -gt 0 ]]; then
  # Repeat the first failures with the lines bun printed before each (its error and the test's own
  # output), so that the cause is on the last screen of a CI log, beside the counts.
  echo "--- the first failures, each with the 40 lines before it ---"
  awk '/^ *[0-9]+ tests? failed:$/ { exit } { buf[NR % 40] = $0 } /^\(fail\)/ && shown < 3 { shown++; for (i = NR - 39; i <= NR; i++) if (i > 0) print buf[i % 40]; print "---" }' "$log"
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[[ $failed -eq 0 ]]
