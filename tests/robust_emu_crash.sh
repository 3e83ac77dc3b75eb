#!/usr/bin/env bash
# robust_emu_crash.sh - kill -9 of secube-emu at a random moment, over and
# over (ROBUST_CRASH_ITER, default 50), while a client (tests/robust_client.c
# "churn") generates and destroys keys, seals, and now and then logs in with
# a wrong then the right user PIN.  The client writes a ledger: each request
# before it is sent and again once acknowledged.  After each kill,
# "robust_client check" reopens the cube (which restarts the emulator) and
# checks: the flash opens, every acknowledged key is present, no destroyed
# key is back, no key appears that was never asked for, the one request in
# flight went one way or the other, PIN counters lost at most the try in
# flight and are full again after a login, and sealing still works.
# Every process is killed by PID on the way out.
set -u
BUILD=${BUILD:-build}
ITER=${ROBUST_CRASH_ITER:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
export SECUBE_TIMEOUT_MS=20000
work=$(mktemp -d /tmp/robust-crash.XXXXXX)
cube="$work/cube"
ledger="$work/ledger"
churn_pid=""
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
cleanup() {
	[ -n "$churn_pid" ] && kill -KILL "$churn_pid" 2>/dev/null
	[ -f "$cube/secube-emu.pid" ] && kill -KILL "$(cat "$cube/secube-emu.pid")" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

client="$work/robust_client"
if ! ${TEST_CC:-cc} ${TEST_CFLAGS:-} -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -O2 -I"$root" "$root/tests/robust_client.c" \
	"$root/$BUILD/libcube.a" "$root/$BUILD/libfirmware.a" "$root/$BUILD/libwire.a" \
	$(pkg-config --libs libcrypto libxxhash libusb-1.0) -lpthread -o "$client"; then
	bad "cannot build tests/robust_client.c"; finish
fi
if "$client" init "$cube"; then ok; else bad "init"; finish; fi
: >"$ledger"

for i in $(seq "$ITER"); do
	"$client" churn "$cube" "$ledger" "$i" 2>"$work/churn.err" &
	churn_pid=$!
	# 20..400 ms into the churn: inside a keygen, a destroy, a seal, a
	# login, a flash compaction, wherever it lands.
	sleep "0.$(printf '%03d' $((20 + RANDOM % 380)))"
	pid=$(cat "$cube/secube-emu.pid" 2>/dev/null)
	if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then ok; else bad "iteration $i: no emulator to kill"; fi
	wait "$churn_pid"
	rc=$?
	churn_pid=""
	if [ "$rc" -eq 0 ]; then ok; else bad "iteration $i: churn failed: $(tail -n 3 "$work/churn.err")"; fi
	if out=$("$client" check "$cube" "$ledger" 2>&1); then
		ok
	else
		bad "iteration $i: check after kill -9: $out"
	fi
	[ $((i % 10)) -eq 0 ] && echo "iteration $i: $(echo "$out" | tail -n 1), $(grep -c '^g' "$ledger") keys acknowledged so far"
done
finish
