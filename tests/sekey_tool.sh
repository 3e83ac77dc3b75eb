#!/usr/bin/env bash
# sekey_tool.sh - the `sekey` program end to end: the thesis's Figure 4.4
# with one admin cube and three user cubes (Alice and Bob in group 1, Bob
# and Eve in group 2).  The admin initialises the KMS, adds (and so
# provisions) the users, makes the groups and keys; each user syncs the
# updates offline from a shared folder and asks find-key: {alice,bob} and
# {bob,eve} have a key, {alice,eve} none (exit 3).  Then member removal,
# a corrupt update (exit 2) up to the lock (exit 6) and recovery, audit,
# prune.  Every emulator it starts is killed by PID on the way out.
set -u
BUILD=${BUILD:-build}
bin="$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d /tmp/sekey-tool.XXXXXX)
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
expect() {
	local want=$1; shift
	"$@" >"$work/out" 2>"$work/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then ok; else bad "$* -> exit $got, want $want: $(cat "$work/err")"; fi
}
S="$bin/secube"; K="$bin/sekey"
U="$work/updates"; mkdir -p "$U"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
for c in admin alice bob eve; do
	expect 0 "$S" create "$work/$c.cube"
	expect 0 "$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin"
done
A=(--device "$work/admin.cube" --updates "$U" --pin-file "$work/admin.pin")
user() { local who=$1; shift; "$K" --device "$work/$who.cube" --updates "$U" --pin-file "$work/user.pin" "$@"; }

expect 1 "$K" "${A[@]}" nosuch
expect 5 "$K" "${A[@]}" user list                      # no KMS yet
expect 0 "$K" "${A[@]}" init
expect 0 "$K" "${A[@]}" --json user list
for who in alice bob eve; do
	expect 0 "$K" "${A[@]}" user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin"
done
expect 0 "$K" "${A[@]}" group add group1
expect 0 "$K" "${A[@]}" group add group2 --alg ctr-hmac --max-keys 4 --cryptoperiod 86400
expect 0 "$K" "${A[@]}" group add-member group1 alice
expect 0 "$K" "${A[@]}" group add-member group1 bob
expect 0 "$K" "${A[@]}" group add-member group2 bob
expect 0 "$K" "${A[@]}" group add-member group2 eve
expect 0 "$K" "${A[@]}" --json key add group1
k1=$(sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/out")
expect 0 "$K" "${A[@]}" --json key add group2
k2=$(sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/out")
expect 0 "$K" "${A[@]}" key activate "$k1"
expect 0 "$K" "${A[@]}" key activate "$k2"
expect 0 "$K" "${A[@]}" --json group list
grep -q '"name":"group2","alg":"ctr-hmac"' "$work/out" && ok || bad "group list: $(cat "$work/out")"
ls "$U"/*/*.upd >/dev/null 2>&1 && ok || bad "no update files written"

# The admin is offline from here: users apply the updates from the folder.
for who in alice bob eve; do expect 0 user "$who" sync; done
expect 0 user alice --json find-key alice,bob
grep -q "\"key\":$k1" "$work/out" && ok || bad "alice,bob -> $(cat "$work/out")"
expect 0 user bob --json find-key bob,eve
grep -q "\"key\":$k2" "$work/out" && ok || bad "bob,eve -> $(cat "$work/out")"
expect 3 user alice find-key alice,eve                 # no group holds them both
expect 3 user eve find-key alice,eve
expect 3 user eve find-key --group group1              # Eve sees nothing of group 1
expect 0 user bob find-key --group group1
expect 0 user eve --json key list
grep -q "\"id\":$k1" "$work/out" && bad "Eve's DB lists k1" || ok
expect 0 user bob status
# a user's cube holds no administrator's KMS: admin commands find nothing
expect 5 "$K" --device "$work/bob.cube" --pin-file "$work/admin.pin" --updates "$U" group add nope

# Removing Bob from group 1 rotates its key: Alice gets the new one, Bob not.
expect 0 "$K" "${A[@]}" group remove-member group1 bob
for who in alice bob; do expect 0 user "$who" sync; done
expect 0 user alice --json find-key alice
grep -q "\"key\":$k1" "$work/out" && bad "group 1 still on the old key" || ok
expect 3 user bob find-key --group group1

# A corrupt update: refused (2) until the KMS locks (6); recovery unlocks.
expect 0 "$K" "${A[@]}" key add group2
# corrupt every update not yet acknowledged (Bob's and Eve's new file)
for d in "$U"/*/; do
	ack=$(cat "$d/ack" 2>/dev/null || echo 0)
	for g in "$d"*.upd; do
		n=$(basename "$g" .upd); n=$((10#$n))
		# invert a byte (a fixed value is a no-op when the byte has it)
		[ "$n" -gt "$ack" ] && python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(60); b = f.read(1); f.seek(60); f.write(bytes([b[0] ^ 0xff]))' "$g"
	done
done
expect 2 user eve sync
grep -q "not authentic" "$work/err" && ok || bad "no clear status: $(cat "$work/err")"
expect 2 user eve sync
expect 2 user eve sync                                  # the third failure locks
grep -q "locked" "$work/err" && ok || bad "lock not reported: $(cat "$work/err")"
expect 6 user eve sync                                  # locked: waits for recovery
expect 6 user eve find-key bob,eve                      # no new encryption
expect 6 user eve status
expect 0 "$K" "${A[@]}" user recover eve
expect 0 user eve sync
expect 0 user eve find-key bob,eve
expect 2 user bob sync                                  # Bob's copy was corrupted too
expect 0 "$K" "${A[@]}" user recover bob
expect 0 user bob sync

expect 0 "$K" "${A[@]}" audit --verify
expect 0 "$K" "${A[@]}" audit
expect 0 "$K" "${A[@]}" expired-check
expect 0 "$K" "${A[@]}" --json updates prune
expect 0 "$K" "${A[@]}" key list
expect 0 "$K" "${A[@]}" user del eve
expect 0 user eve sync
expect 3 user eve find-key bob,eve

echo "sekey_tool: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
