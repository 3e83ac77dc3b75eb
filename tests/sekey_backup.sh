#!/usr/bin/env bash
# sekey_backup.sh - `sekey backup` and `sekey restore` end to end: the
# thesis's Figure 4.4 (Alice and Bob in group 1, Bob and Eve in group 2)
# set up and synced; the admin writes an encrypted backup; the admin cube
# is lost; a wrong passphrase, a flipped byte and a truncated file are
# refused (exit 2) with nothing restored; the backup is restored onto a
# fresh cube, and the restored admin keeps administering: a new key and a
# member removal reach the users' existing cubes.  Every emulator it
# starts is killed by PID on the way out.  Last line: "N passed, M failed".
set -u
BUILD=${BUILD:-build}
bin="$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d /tmp/sekey-backup.XXXXXX)
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
printf 'a long backup passphrase\n' >"$work/pass"; printf 'not the passphrase\n' >"$work/wrong"
for c in admin alice bob eve new; do
	expect 0 "$S" create "$work/$c.cube"
	expect 0 "$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin"
done
A=(--device "$work/admin.cube" --updates "$U" --pin-file "$work/admin.pin")
N=(--device "$work/new.cube" --updates "$U" --pin-file "$work/admin.pin")
user() { local who=$1; shift; "$K" --device "$work/$who.cube" --updates "$U" --pin-file "$work/user.pin" "$@"; }
keyof() { sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/out"; }

expect 0 "$K" "${A[@]}" init
for who in alice bob eve; do
	expect 0 "$K" "${A[@]}" user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin"
done
expect 0 "$K" "${A[@]}" group add group1
expect 0 "$K" "${A[@]}" group add group2
expect 0 "$K" "${A[@]}" group add-member group1 alice
expect 0 "$K" "${A[@]}" group add-member group1 bob
expect 0 "$K" "${A[@]}" group add-member group2 bob
expect 0 "$K" "${A[@]}" group add-member group2 eve
expect 0 "$K" "${A[@]}" --json key add group1; k1=$(keyof)
expect 0 "$K" "${A[@]}" --json key add group2; k2=$(keyof)
expect 0 "$K" "${A[@]}" key activate "$k1"
expect 0 "$K" "${A[@]}" key activate "$k2"
for who in alice bob eve; do expect 0 user "$who" sync; done

# Backup: usage errors, then the real one.
expect 1 "$K" "${A[@]}" backup
expect 1 "$K" "${A[@]}" backup --out "$work/b.skbk" --iterations 5
expect 0 "$K" "${A[@]}" --json backup --out "$work/b.skbk" --passphrase-file "$work/pass" --iterations 10000
grep -q '"keys":' "$work/out" && ok || bad "backup output: $(cat "$work/out")"
[ -s "$work/b.skbk" ] && ok || bad "no backup file"
ls "$work"/.b.skbk* >/dev/null 2>&1 && bad "temp file left" || ok
expect 0 "$S" keys "$work/admin.cube" --admin --pin-file "$work/admin.pin"
cp "$work/out" "$work/keys.before"

# The admin cube is lost.
kill "$(cat "$work/admin.cube/secube-emu.pid")" 2>/dev/null
rm -rf "$work/admin.cube"

# Refusals: nothing restored, the new cube stays empty.
empty_new() {
	"$S" keys "$work/new.cube" --admin --pin-file "$work/admin.pin" >"$work/keys" 2>&1
	[ ! -e "$work/new.cube/sd/sekey.db" ] && ! grep -q '^ *[0-9]' "$work/keys" && ok ||
		bad "something was restored ($1): $(cat "$work/keys")"
}
expect 2 "$K" "${N[@]}" restore --in "$work/b.skbk" --passphrase-file "$work/wrong"
grep -q "wrong passphrase" "$work/err" && ok || bad "wrong passphrase message: $(cat "$work/err")"
empty_new "wrong passphrase"
size=$(stat -c %s "$work/b.skbk")
cp "$work/b.skbk" "$work/flip.skbk"
# invert the middle byte (writing a fixed value left the file unchanged
# whenever that byte already had it: 1 run in 256 restored "flipped" data)
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' \
	"$work/flip.skbk" $((size / 2))
cmp -s "$work/b.skbk" "$work/flip.skbk" && bad "the flip did not change the file" || ok
expect 2 "$K" "${N[@]}" restore --in "$work/flip.skbk" --passphrase-file "$work/pass"
empty_new "flipped byte"
head -c $((size - 7)) "$work/b.skbk" >"$work/trunc.skbk"
expect 2 "$K" "${N[@]}" restore --in "$work/trunc.skbk" --passphrase-file "$work/pass"
grep -q "truncated" "$work/err" && ok || bad "truncation message: $(cat "$work/err")"
empty_new "truncated"
expect 5 "$K" "${N[@]}" restore --in "$work/nosuch.skbk" --passphrase-file "$work/pass"

# Restore onto the fresh cube: the same keys, IDs and attributes.
expect 0 "$K" "${N[@]}" restore --in "$work/b.skbk" --passphrase-file "$work/pass"
expect 0 "$S" keys "$work/new.cube" --admin --pin-file "$work/admin.pin"
diff -q "$work/out" "$work/keys.before" >/dev/null && ok || bad "keys differ: $(diff "$work/out" "$work/keys.before")"
expect 4 "$K" "${N[@]}" restore --in "$work/b.skbk" --passphrase-file "$work/pass"   # not fresh any more
expect 0 "$K" "${N[@]}" audit --verify
expect 0 "$K" "${N[@]}" audit
grep -q restore "$work/out" && ok || bad "no restore in the audit log"

# The restored admin keeps administering; the users' cubes follow.
expect 0 "$K" "${N[@]}" --json key add group1; k3=$(keyof)
expect 0 "$K" "${N[@]}" key activate "$k3"
expect 0 "$K" "${N[@]}" group remove-member group2 eve
for who in alice bob eve; do expect 0 user "$who" sync; done
expect 0 user alice --json find-key --group group1
[ "$(keyof)" = "$k1" ] && ok || bad "alice group1 -> $(cat "$work/out") (want $k1: lowest ID)"
expect 0 user bob --json find-key bob,bob
expect 0 user bob --json find-key --group group2
k2new=$(keyof)
[ -n "$k2new" ] && [ "$k2new" != "$k2" ] && ok || bad "group2 not rotated: $(cat "$work/out")"
expect 3 user eve find-key --group group2                # Eve left group 2
expect 0 user eve --json key list
grep -q "\"id\":$k2new" "$work/out" && bad "Eve got the rotated key" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
