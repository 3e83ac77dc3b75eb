#!/usr/bin/env bash
# fs_integrity.sh - what an attacker with BACKING or a crash can do to a
# sekeyfs share: a flipped bit in a file gives EIO (never wrong bytes), a
# file truncated behind the mount's back gives EIO, an entry moved into
# another directory is not shown (its name is bound to its directory), a
# tampered symlink target gives EIO; kill -9 of the daemon loses nothing
# that was fsync'ed.
. "$(dirname "$0")/fs_lib.sh"

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }

head -c 100000 /dev/urandom >"$work/ref"
cp "$work/ref" "$mnt/victim"
cp "$work/ref" "$mnt/short"
mkdir "$mnt/d1" "$mnt/d2"
echo moved >"$mnt/d1/wanderer"
ln -s target "$mnt/link"
check "unmount" fs_umount

# the backing objects, found by their plaintext size (cheap) or type
bfile() { find "$back" -maxdepth 1 -type f ! -name '.sekeydir' -size +100000c | head -n "$1" | tail -n 1; }
v1=$(bfile 1); v2=$(bfile 2)
# flip one bit in the middle of the first
off=50000
byte=$(od -An -tu1 -j$off -N1 "$v1" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 4)))" | dd of="$v1" bs=1 seek=$off conv=notrunc status=none
# cut the second by one sector's worth
truncate -s $(($(stat -c %s "$v2") - 1000)) "$v2"
# move d1's entry into d2 behind the mount's back
d1b=""; d2b=""
for d in "$back"/*/; do
	if [ -n "$(find "$d" -maxdepth 1 -type f ! -name .sekeydir)" ]; then d1b=$d; else d2b=$d; fi
done
mv "$d1b"/[A-Za-z0-9_-]* "$d2b"/ 2>/dev/null
# replace the symlink's stored target by another valid-looking one
lb=$(find "$back" -maxdepth 1 -type l)
t=$(readlink "$lb"); ln -sfn "${t%?}A" "$lb"; [ "$(readlink "$lb")" = "$t" ] && ln -sfn "${t%?}B" "$lb"

check "remount" fs_mount
bad_reads=0
for f in victim short; do
	if cat "$mnt/$f" >/dev/null 2>"$work/err"; then
		cmp -s "$work/ref" "$mnt/$f" && bad_reads=$((bad_reads + 1))
	else
		grep -q "Input/output error" "$work/err" || bad "$f: unexpected error $(cat "$work/err")"
	fi
done
check "damaged files never read as their old bytes" test "$bad_reads" -eq 0
check "bit flip: cat fails" bash -c "! cat '$mnt/victim' >/dev/null 2>&1"
check "truncated: cat fails" bash -c "! cat '$mnt/short' >/dev/null 2>&1"
check "moved entry is not shown in its new directory" test -z "$(ls "$mnt/d2")"
check "tampered symlink: EIO" bash -c "! readlink '$mnt/link' >/dev/null 2>&1"
check "the damage is logged" grep -qi "integrity\|authentication\|decrypt" "$work/sekeyfs.log"

# kill -9 the daemon: what was fsync'ed is there after a remount
head -c 3000000 /dev/urandom >"$work/synced"
dd if="$work/synced" of="$mnt/synced" bs=64k conv=fsync status=none
echo "small synced" >"$work/small"
dd if="$work/small" of="$mnt/small" conv=fsync status=none
kill -9 "$fs_pid"; wait "$fs_pid" 2>/dev/null
fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
check "remount after kill -9" fs_mount
check "fsync'ed big file intact" cmp -s "$work/synced" "$mnt/synced"
check "fsync'ed small file intact" cmp -s "$work/small" "$mnt/small"
check "unmount" fs_umount
fs_summary
