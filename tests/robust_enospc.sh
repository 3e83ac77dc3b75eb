#!/usr/bin/env bash
# robust_enospc.sh - SEfile files on a full disk.  A 2 MiB tmpfs holds the
# SEfile files (the cube itself stays on the ordinary disk); the `sefile`
# tool fills it: encrypting a file that does not fit fails cleanly (exit 5,
# "No space left", no half file and no temporary left), a rekey that does
# not fit fails and leaves the old file as it was, every earlier file still
# verifies and decrypts to its plaintext, and once space is freed the same
# commands succeed.  Needs root (or CAP_SYS_ADMIN) for the mount; the tmpfs
# is unmounted and every process killed by PID on the way out, even on
# failure.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d /tmp/robust-enospc.XXXXXX)
C="$work/c.cube"
mnt="$work/mnt"
mounted=0
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
cleanup() {
	[ -f "$C/secube-emu.pid" ] && kill "$(cat "$C/secube-emu.pid")" 2>/dev/null
	[ "$mounted" -eq 1 ] && umount "$mnt" 2>/dev/null
	mountpoint -q "$mnt" 2>/dev/null && umount -l "$mnt"
	rm -rf "$work"
}
trap cleanup EXIT
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }
expect() {
	local want=$1; shift
	"$@" >"$work/out" 2>"$work/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then ok; else bad "$* -> exit $got, want $want: $(cat "$work/err")"; fi
}
check() { if eval "$1"; then ok; else bad "$2"; fi; }

mkdir -p "$mnt" "$work/plain"
if ! mount -t tmpfs -o size=2m,mode=0700 tmpfs "$mnt" 2>"$work/err"; then
	echo "cannot mount a tmpfs ($(cat "$work/err")); this test needs root"
	bad "mount"; finish
fi
mounted=1
ok

S="$bin/sefile"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
"$bin/secube" create "$C" >/dev/null && "$bin/secube" init "$C" --admin-pin-file "$work/admin.pin" \
	--user-pin-file "$work/user.pin" >/dev/null || { bad "cannot make a cube"; finish; }
for id in 10 11; do
	"$bin/secube" keygen "$C" --pin-file "$work/admin.pin" --id $id --alg aes256-gcm \
		--usage encrypt,decrypt >/dev/null || bad "keygen $id"
done
U=(--device "$C" --pin-file "$work/user.pin")
head -c 300000 /dev/urandom >"$work/plain/a"
head -c 500000 /dev/urandom >"$work/plain/b"
head -c 3000000 /dev/urandom >"$work/plain/big"
head -c 900000 /dev/urandom >"$work/plain/c"

intact() {   # every earlier file verifies and decrypts to its plaintext
	expect 0 "$S" "${U[@]}" verify "$mnt/a.se" "$mnt/b.se"
	for f in a b; do
		rm -f "$work/$f.out"
		expect 0 "$S" "${U[@]}" decrypt "$mnt/$f.se" "$work/$f.out"
		check 'cmp -s "$work/plain/$f" "$work/$f.out"' "$f.se changed after $1"
	done
}
no_leftovers() {
	check '[ -z "$(ls -A "$mnt" | grep -v -e "^a.se$" -e "^b.se$" -e "^filler$" -e "^c.se$")" ]' \
		"files left on the full disk after $1: $(ls -A "$mnt")"
}

expect 0 "$S" "${U[@]}" encrypt --key 10 "$work/plain/a" "$mnt/a.se"
expect 0 "$S" "${U[@]}" encrypt --key 10 "$work/plain/b" "$mnt/b.se"

# 1. a file that does not fit
expect 5 "$S" "${U[@]}" encrypt --key 10 "$work/plain/big" "$mnt/big.se"
check 'grep -qi "no space" "$work/err"' "ENOSPC not reported: $(cat "$work/err")"
check '[ ! -e "$mnt/big.se" ]' "a half-written big.se was left"
no_leftovers "the failed encrypt"
intact "the failed encrypt"

# 2. a rekey with no room for the new copy
avail=$(df -B1 --output=avail "$mnt" | tail -n 1)
if [ "$avail" -gt 200000 ]; then
	head -c $((avail - 200000)) /dev/zero >"$mnt/filler" 2>/dev/null
fi
expect 5 "$S" "${U[@]}" rekey --key 11 "$mnt/b.se"
expect 0 "$S" ls --json "$mnt/b.se"
check 'grep -q "\"key_id\":10," "$work/out"' "b.se no longer under key 10: $(cat "$work/out")"
no_leftovers "the failed rekey"
intact "the failed rekey"
# a disk that is completely full: even small writes fail cleanly
head -c 4000000 /dev/zero >>"$mnt/filler" 2>/dev/null
expect 5 "$S" "${U[@]}" encrypt --key 10 "$work/plain/a" "$mnt/a2.se"
check '[ ! -e "$mnt/a2.se" ]' "a2.se left on a full disk"
no_leftovers "encrypt on a full disk"
intact "a completely full disk"

# 3. space freed: the same work succeeds
rm -f "$mnt/filler"
expect 0 "$S" "${U[@]}" rekey --key 11 "$mnt/b.se"
expect 0 "$S" ls --json "$mnt/b.se"
check 'grep -q "\"key_id\":11," "$work/out"' "rekey after freeing space: $(cat "$work/out")"
expect 0 "$S" "${U[@]}" encrypt --key 10 "$work/plain/c" "$mnt/c.se"
expect 0 "$S" "${U[@]}" verify "$mnt/a.se" "$mnt/b.se" "$mnt/c.se"
expect 0 "$S" "${U[@]}" decrypt "$mnt/c.se" "$work/c.out"
check 'cmp -s "$work/plain/c" "$work/c.out"' "c.se wrong after space was freed"
intact "freeing space"
expect 5 "$S" "${U[@]}" encrypt --key 10 "$work/plain/big" "$mnt/big.se"   # still too big
intact "a second failed encrypt"

umount "$mnt" && mounted=0 && ok || bad "umount"
finish
