#!/usr/bin/env bash
# run-tests.sh - the whole suite: every Check program (BUILD/tests/test_*),
# then every program-level shell test (tests/*.sh except this one).
# Each test runs in its own process group with a time limit; the last line
# is the plain summary "N passed, N failed" over test programs, and the
# exit status is non-zero if any failed.
set -u
BUILD=${BUILD:-build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
export SECUBE_EMU="$root/$BUILD/bin/secube-emu"
export PATH="$root/$BUILD/bin:$PATH"
limit=${TEST_TIMEOUT:-600}
# Under the sanitizers the suite hunts memory errors, not long runs: the
# long loops and load phases run shorter there (their full length runs in
# the normal build of the same suite); valgrind (which cannot run an ASan
# binary), the install check and the secrets audit (core dumps of ASan
# processes are huge) are left to the normal build.
case "$BUILD" in
*asan*)
	export SANITIZED=1
	export LOAD_SECONDS=${LOAD_SECONDS:-15} LOAD2_SECONDS=${LOAD2_SECONDS:-5}
	export ROBUST_CRASH_ITER=${ROBUST_CRASH_ITER:-10} ROBUST_FS_CRASH_ITER=${ROBUST_FS_CRASH_ITER:-10}
	# C helpers the shell tests compile must match the sanitized libraries;
	# ASan's shadow memory makes RSS meaningless as a leak bound there.
	export TEST_CC=clang
	export TEST_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
	export LOAD_RSS_MAX_MB=${LOAD_RSS_MAX_MB:-2048}
	skip_sanitized="robust_valgrind_emu.sh install.sh robust_secrets.sh"
	;;
*)
	skip_sanitized=""
	;;
esac
passed=0
failed=0
failed_names=()
logdir=$(mktemp -d /tmp/sekeyfs-tests.XXXXXX)

run_one() {
	local name=$1; shift
	local start end rc
	start=$(date +%s)
	# setsid + timeout: a hung test is killed with its whole process group.
	setsid timeout --kill-after=10 "$limit" "$@" >"$logdir/$name.log" 2>&1
	rc=$?
	end=$(date +%s)
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS %-40s %4ss  %s\n' "$name" $((end - start)) "$(grep -E '^[0-9]+%: Checks|passed, [0-9]+ failed' "$logdir/$name.log" | tail -n 1)"
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		printf 'FAIL %-40s %4ss  (exit %d)\n' "$name" $((end - start)) $rc
		sed -e 's/^/    /' "$logdir/$name.log" | tail -n 40
	fi
}

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o|*.d) continue ;; esac
	run_one "$(basename "$t")" "$t"
done
for s in tests/*.sh; do
	[ "$(basename "$s")" = run-tests.sh ] && continue
	case " $skip_sanitized " in *" $(basename "$s") "*) echo "SKIP $(basename "$s") (sanitizer build)"; continue ;; esac
	run_one "$(basename "$s")" bash "$s"
done
rm -rf "$logdir"
if [ $failed -ne 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
