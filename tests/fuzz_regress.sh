#!/bin/bash
# fuzz_regress.sh — replay every fuzz target (tests/fuzz/fuzz_*.c, linked
# with a plain main() as tests/fuzz/replay_*) over the inputs that once
# crashed it (tests/fuzz/regress/NAME/) and its seed corpus
# (tests/fuzz/corpus/NAME/), so a fixed bug stays fixed in every build,
# with or without sanitizers and without clang.
set -euo pipefail
fuzz=$TESTS_DIR/fuzz
bin=${FAKE_SES%/fake_ses}/fuzz
fail=0
targets=0
for src in "$fuzz"/fuzz_*.c; do	# the list is the sources: none is missed
	t=${src##*/fuzz_}
	t=${t%.c}
	targets=$((targets + 1))
	[ -x "$bin/replay_$t" ] || { echo "FAIL: $bin/replay_$t not built"; exit 1; }
	args=()
	for d in "$fuzz/regress/$t" "$fuzz/corpus/$t"; do
		[ -d "$d" ] && args+=("$d")
	done
	[ ${#args[@]} -gt 0 ] || { echo "FAIL: no corpus for $t"; fail=1; continue; }
	if out=$("$bin/replay_$t" "${args[@]}" 2>&1); then
		echo "ok - $t: ${out##*: }"
	else
		echo "FAIL: $t: $out" | tail -40
		fail=1
	fi
done
[ "$targets" -gt 0 ] || { echo "FAIL: no tests/fuzz/fuzz_*.c in $fuzz"; exit 1; }
exit $fail
