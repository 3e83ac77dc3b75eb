#!/usr/bin/env bash
# secube_tool.sh - the `secube` program end to end on emulated cubes:
# create, init, info, keygen, keys, wrong PIN counting and lockout, set-pin,
# provision between two cubes, clock, selftest, reset, --json, exit codes.
# Every emulator it starts is killed by PID on the way out.
set -u
BUILD=${BUILD:-build}
bin="$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d /tmp/secube-tool.XXXXXX)
cleanup() {
	for d in "$work"/*.cube; do
		[ -f "$d/secube-emu.pid" ] && kill "$(cat "$d/secube-emu.pid")" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect STATUS CMD...: run CMD, compare its exit status
expect() {
	local want=$1; shift
	"$@" >"$work/out" 2>"$work/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then ok; else bad "$* -> exit $got, want $want: $(cat "$work/err")"; fi
}
S="$bin/secube"
A="$work/a.cube"; U="$work/u.cube"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
printf 'nope\n' >"$work/wrong.pin"; printf 'new-user-pin\n' >"$work/new.pin"

expect 0 "$S" create "$A"
expect 0 "$S" create "$U"
expect 4 "$S" create "$A"                       # already a cube there
expect 0 "$S" info "$A" --json
grep -q '"state":"blank"' "$work/out" && ok || bad "blank state not reported"
expect 0 "$S" init "$A" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" --user-tries 3
expect 0 "$S" init "$U" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin"
expect 4 "$S" init "$A" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin"  # not blank
expect 0 "$S" selftest "$A"
grep -q "selftest ok" "$work/out" && ok || bad "selftest output"
expect 0 "$S" keygen "$A" --pin-file "$work/admin.pin" --id 42 --alg aes256-gcm --usage encrypt,decrypt,exportable
expect 3 "$S" keygen "$A" --pin-file "$work/admin.pin" --id 42 --alg aes256-gcm --usage encrypt,decrypt   # exists
expect 1 "$S" keygen "$A" --pin-file "$work/admin.pin" --id 43 --alg nosuch --usage encrypt
expect 0 "$S" keys "$A" --pin-file "$work/user.pin" --json
grep -q '"id":42' "$work/out" && grep -q '(hidden)' "$work/out" && ok || bad "keys listing: $(cat "$work/out")"
# a PIN file that is too long, holds a NUL or an empty line is refused
# before any login (never cut short; no try counted: see the count below)
head -c 300 /dev/zero | tr '\0' x >"$work/long.pin"; printf 'user\0pin\n' >"$work/nul.pin"; printf '\n' >"$work/empty.pin"
for p in long nul empty; do
	"$S" keys "$A" --pin-file "$work/$p.pin" >"$work/out" 2>"$work/err"
	[ $? -ne 0 ] && grep -q "no PIN" "$work/err" && ok || bad "$p PIN file not refused: $(cat "$work/err")"
done
# a user login may not generate keys
expect 4 "$S" keygen "$A" --pin-file "$work/user.pin" --id 44 --alg aes256-gcm --usage encrypt
# wrong PINs are counted and lock the user PIN at 3; the count survives a restart
expect 4 "$S" keys "$A" --pin-file "$work/wrong.pin"
grep -q "2" "$work/err" && ok || bad "tries left not reported: $(cat "$work/err")"
kill "$(cat "$A/secube-emu.pid")"; sleep 0.3
expect 4 "$S" keys "$A" --pin-file "$work/wrong.pin"
expect 4 "$S" keys "$A" --pin-file "$work/wrong.pin"
expect 4 "$S" keys "$A" --pin-file "$work/user.pin"      # locked now, even with the right PIN
expect 0 "$S" info "$A" --json
grep -q '"user_tries_left":0' "$work/out" && ok || bad "lock not shown: $(cat "$work/out")"
# the admin resets the user PIN, which unlocks it
expect 0 "$S" set-pin "$A" --admin --for-user --pin-file "$work/admin.pin" --new-pin-file "$work/new.pin"
expect 0 "$S" keys "$A" --pin-file "$work/new.pin"
# provisioning: channel key in both cubes, key 42 copied wrapped
expect 0 "$S" provision "$A" --peer "$U" --channel-id 7 --key 42 --pin-file "$work/admin.pin"
expect 0 "$S" keys "$U" --pin-file "$work/user.pin" --json
grep -q '"id":42' "$work/out" && grep -q '"id":7' "$work/out" && ok || bad "provisioned keys: $(cat "$work/out")"
expect 0 "$S" clock "$A" --set now --pin-file "$work/admin.pin"
expect 0 "$S" list "$A" "$U"
expect 1 "$S" reset "$A"                               # needs --yes
expect 0 "$S" reset "$A" --yes --pin-file "$work/admin.pin"
expect 0 "$S" info "$A" --json
grep -q '"state":"blank"' "$work/out" && grep -q '"keys":0' "$work/out" && ok || bad "reset left: $(cat "$work/out")"
expect 4 "$S" info "$work/none.cube"
expect 1 "$S" frobnicate
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
