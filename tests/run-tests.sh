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
	skip_sanitized="robust_valgrind_emu.sh install.sh robust_secrets.sh multihost.sh"
	;;
*)
	skip_sanitized=""
	;;
esac
passed=0
failed=0
failed_names=()
logdir=$(mktemp -d /tmp/sekeyfs-tests.XXXXXX)
# TEST_JOBS tests at a time (default 1).  Most tests wait on FUSE, sockets
# and sleeps more than they compute, so two at a time on two cores takes
# far less wall time; the ones that load the machine on purpose (or
# measure it) still run alone, after the others.
jobs_max=${TEST_JOBS:-1}
run_alone="robust_load.sh robust_valgrind_emu.sh multihost.sh"

# run_one NAME CMD...: run one test, leave NAME.rc and a PASS/FAIL line.
run_one() {
	local name=$1; shift
	local start end rc
	start=$(date +%s)
	# setsid + timeout: a hung test is killed with its whole process group.
	setsid timeout --kill-after=10 "$limit" "$@" >"$logdir/$name.log" 2>&1
	rc=$?
	end=$(date +%s)
	echo $rc >"$logdir/$name.rc"
	if [ $rc -eq 0 ]; then
		printf 'PASS %-40s %4ss  %s\n' "$name" $((end - start)) "$(grep -E '^[0-9]+%: Checks|passed, [0-9]+ failed' "$logdir/$name.log" | tail -n 1)"
	else
		printf 'FAIL %-40s %4ss  (exit %d)\n' "$name" $((end - start)) $rc
	fi
}

# start NAME CMD...: run it now, or in the background when jobs are allowed.
names=()
start() {
	names+=("$1")
	if [ "$jobs_max" -le 1 ]; then
		run_one "$@"
		return
	fi
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n 2>/dev/null || true; done
	run_one "$@" &
}

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o|*.d) continue ;; esac
	start "$(basename "$t")" "$t"
done
later=()
for s in tests/*.sh; do
	[ "$(basename "$s")" = run-tests.sh ] && continue
	case " $skip_sanitized " in *" $(basename "$s") "*) echo "SKIP $(basename "$s") (sanitizer build)"; continue ;; esac
	case " $run_alone " in *" $(basename "$s") "*) later+=("$s"); continue ;; esac
	start "$(basename "$s")" bash "$s"
done
wait
for s in "${later[@]}"; do
	names+=("$(basename "$s")")
	run_one "$(basename "$s")" bash "$s"
done
for name in "${names[@]}"; do
	if [ "$(cat "$logdir/$name.rc" 2>/dev/null)" = 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		echo "---- $name (last 40 lines) ----"
		sed -e 's/^/    /' "$logdir/$name.log" | tail -n 40
	fi
done
rm -rf "$logdir"
if [ $failed -ne 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
