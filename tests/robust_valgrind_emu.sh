#!/usr/bin/env bash
# robust_valgrind_emu.sh - secube-emu under valgrind memcheck through a
# whole scripted session (tests/robust_client.c "session": wrong PINs, admin
# and user logins, key generate/info/list/set-attrs/destroy, seal/open with
# a tampered sector, SIV, digest, random, export/import with a damaged
# blob, clock, self test, set-pin, two connections dropped without logout,
# a junk frame, a short body, half a header then a hang-up), then SIGTERM.
# Passes iff the session's answers were right, valgrind reports no error
# and no definitely lost block (--error-exitcode=99), and the emulator
# exits 0.  Every process is killed by PID on the way out.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
export SECUBE_TIMEOUT_MS=120000
work=$(mktemp -d /tmp/robust-valgrind.XXXXXX)
cube="$work/cube"
vg_pid=""
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
cleanup() {
	[ -n "$vg_pid" ] && kill -KILL "$vg_pid" 2>/dev/null
	[ -f "$cube/secube-emu.pid" ] && kill -KILL "$(cat "$cube/secube-emu.pid")" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

if ! command -v valgrind >/dev/null; then
	echo "valgrind not installed"; bad "no valgrind"; finish
fi
client="$work/robust_client"
if ! ${TEST_CC:-cc} ${TEST_CFLAGS:-} -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -O1 -g -I"$root" "$root/tests/robust_client.c" \
	"$root/$BUILD/libcube.a" "$root/$BUILD/libfirmware.a" "$root/$BUILD/libwire.a" \
	$(pkg-config --libs libcrypto libxxhash libusb-1.0) -lpthread -o "$client"; then
	bad "cannot build tests/robust_client.c"; finish
fi

# A cube with PINs and keys, made by an ordinary (auto-started) emulator,
# which is then stopped so valgrind's can take the directory.
if "$client" init "$cube"; then ok "cube initialised"; else bad "init"; finish; fi
pid=$(cat "$cube/secube-emu.pid" 2>/dev/null)
[ -n "$pid" ] && kill -TERM "$pid"
for _ in $(seq 100); do [ -e "$cube/cube.sock" ] || break; sleep 0.1; done

valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --log-file="$work/valgrind.log" \
	"$SECUBE_EMU" --foreground "$cube" 2>"$work/emu.err" &
vg_pid=$!
for _ in $(seq 600); do [ -S "$cube/cube.sock" ] && break; sleep 0.1; done
if [ -S "$cube/cube.sock" ]; then ok "emulator listens under valgrind"; else bad "no socket"; finish; fi

if "$client" session "$cube"; then ok "scripted session"; else bad "scripted session"; fi
kill -0 "$vg_pid" 2>/dev/null && ok "emulator survived the session" || bad "emulator died"

kill -TERM "$vg_pid"
wait "$vg_pid"
rc=$?
vg_pid=""
if [ "$rc" -eq 0 ]; then
	ok "clean exit on SIGTERM, no memcheck error, no definite leak"
else
	bad "emulator under valgrind exited $rc (99 = memcheck errors or a definite leak)"
	sed -e 's/^/    /' "$work/valgrind.log" | tail -n 60
fi
grep -q "ERROR SUMMARY: 0 errors" "$work/valgrind.log" && ok "ERROR SUMMARY: 0 errors" ||
	bad "valgrind: $(grep 'ERROR SUMMARY' "$work/valgrind.log")"
[ -e "$cube/cube.sock" ] && bad "socket left behind after SIGTERM" || ok "socket removed"
finish
