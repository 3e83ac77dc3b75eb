#!/usr/bin/env bash
# fs_tamper.sh - the mount-level tamper sweep: what someone holding BACKING
# can do to the ciphertext, and what the mount makes of it.  A share with
# files of 0, 100, 4096, 10000 and 1 MiB bytes in two directories (and two
# untouched files at the root).  Each case changes the pristine BACKING
# while unmounted (the kernel's page cache would otherwise serve the old
# bytes), mounts, and reads every file: a damaged file must fail (cat exits
# non-zero with EIO), a read that succeeds must give the original bytes,
# and the mount must keep serving the untouched files.  Cases: a bit
# flipped in each file's header, in each file's data, two sectors swapped,
# a sector spliced from another file at the same index, a file truncated
# mid-sector and at a sector boundary, a directory's .sekeydir replaced by
# another's.  Two files' contents swapped between their names is the one
# change that is not detected (each name reads the other's whole, authentic
# file): checked as such, and said in docs/MOUNT.md.
. "$(dirname "$0")/fs_lib.sh"

SIZES=(0 100 4096 10000 1048576)
HDR=124; STRIDE=$((4096 + 28))   # docs/FORMAT.md: header, then 12 + S + 16 per sector

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }
# $work/ref mirrors the plaintext tree: every file different
mkdir -p "$work/ref/d1" "$work/ref/d2"
for d in d1 d2; do
	for s in "${SIZES[@]}"; do head -c "$s" /dev/urandom >"$work/ref/$d/f$s"; done
done
head -c 3000 /dev/urandom >"$work/ref/keep"; head -c 1048576 /dev/urandom >"$work/ref/keep-big"
cp -r "$work/ref/." "$mnt/" || bad "fill the share"
check "unmount" fs_umount
cp -a "$back" "$work/pristine" || { bad "pristine copy"; fs_summary; exit 1; }

# Put the pristine BACKING back (between cases).
restore() { rm -rf "$back" && cp -a "$work/pristine" "$back"; }

# bname[dN], bname[dN/fS]: the backing names of dN and of dN/fS, found
# once through a mount (it shows the backing inode numbers); a restore
# keeps names, not inodes, so the names are kept.
check "mount to map names" fs_mount
declare -A bname
for d in d1 d2; do
	ino=$(stat -c %i "$mnt/$d")
	bname[$d]=$(find "$back" -mindepth 1 -maxdepth 1 -inum "$ino" -printf '%f\n')
	for s in "${SIZES[@]}"; do
		ino=$(stat -c %i "$mnt/$d/f$s")
		bname[$d/f$s]=${bname[$d]}/$(find "$back/${bname[$d]}" -maxdepth 1 -inum "$ino" -printf '%f\n')
	done
done
check "unmount" fs_umount
check "every backing name found" test "$(printf '%s\n' "${bname[@]}" | grep -c .)" -eq 12
B() { echo "$back/${bname[$1]}"; }

# flip FILE OFFSET: invert one bit of the byte at OFFSET.
flip() {
	local b
	b=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 16)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# sector FILE I: the bytes of stored sector I (full ones only).
sector() { dd if="$1" bs=1 skip=$((HDR + $2 * STRIDE)) count=$STRIDE status=none; }
# put_sector FILE I < bytes
put_sector() { dd of="$1" bs=1 seek=$((HDR + $2 * STRIDE)) conv=notrunc status=none; }

# expect_damaged CASE dN/fS...: each read fails with EIO, never wrong bytes.
expect_damaged() {
	local what=$1 p; shift
	for p in "$@"; do
		if cat "$mnt/$p" >"$work/out" 2>"$work/err"; then
			bad "$what: $p read without an error ($(cmp -s "$work/out" "$work/ref/$p" && echo 'the original bytes' || echo 'WRONG BYTES'))"
		elif ! grep -q "Input/output error" "$work/err"; then
			bad "$what: $p: not EIO: $(cat "$work/err")"
		elif [ -s "$work/out" ] && ! cmp -s -n "$(stat -c %s "$work/out")" "$work/out" "$work/ref/$p"; then
			bad "$what: $p: wrong bytes before the error"
		else
			ok
		fi
	done
}
# expect_intact CASE PATH...: each reads back its original bytes.
expect_intact() {
	local what=$1 p; shift
	for p in "$@"; do
		check "$what: $p still reads" cmp -s "$mnt/$p" "$work/ref/$p"
	done
}
# run_case NAME: mount the tampered BACKING, then the caller checks, then done_case.
run_case() { fs_mount || bad "$1: mount"; }
done_case() {
	expect_intact "$1" keep keep-big
	fs_umount || bad "$1: unmount"
	restore || bad "$1: restore"
}
all_of() { local s; for s in "${SIZES[@]}"; do echo "$1/f$s"; done; }

# 1. a bit of each header: the clear fields (d1: the length) and the sealed copy (d2)
for s in "${SIZES[@]}"; do flip "$(B d1/f$s)" 33; flip "$(B d2/f$s)" 70; done
run_case header
expect_damaged "header bit" $(all_of d1) $(all_of d2)
done_case header

# 2. a bit of each file's data: d1 in the first sector's ciphertext, d2 in the last tag
for s in "${SIZES[@]:1}"; do
	flip "$(B d1/f$s)" $((HDR + 12 + 5))
	f=$(B d2/f$s); flip "$f" $(($(stat -c %s "$f") - 3))
done
run_case data
expect_damaged "data bit" $(all_of d1 | tail -n 4) $(all_of d2 | tail -n 4)
done_case data

# 3. two sectors of one file swapped
f=$(B d1/f1048576)
sector "$f" 1 >"$work/s1"; sector "$f" 2 >"$work/s2"
put_sector "$f" 1 <"$work/s2"; put_sector "$f" 2 <"$work/s1"
run_case "sector swap"
expect_damaged "sectors 1 and 2 swapped" d1/f1048576
expect_intact "sector swap" d2/f1048576 d1/f10000
done_case "sector swap"

# 4. a sector spliced from another file (same key, same index)
sector "$(B d2/f1048576)" 5 | put_sector "$(B d1/f1048576)" 5
sector "$(B d2/f10000)" 0 | put_sector "$(B d1/f10000)" 0
run_case splice
expect_damaged "sector from another file" d1/f1048576 d1/f10000
expect_intact splice d2/f1048576 d2/f10000
done_case splice

# 5. two files' contents swapped between their names (a file moved under
# another name), in one directory and across two.  Not detected: a file's
# contents are bound to its file ID, not to its name or directory (names
# are looked up by their deterministic encryption, which cannot depend on
# the file).  What holds: each name reads one whole authentic file, exactly
# the other one's bytes, never a mixture (docs/MOUNT.md, "What tampering
# does").
swap() {
	mv "$(B "$1")" "$work/tmp" && mv "$(B "$2")" "$(B "$1")" && mv "$work/tmp" "$(B "$2")"
}
swap d1/f100 d1/f4096 && swap d1/f10000 d2/f10000 || bad "swap"
run_case "contents swapped"
check "swapped: d1/f100 reads as d1/f4096, whole" cmp -s "$mnt/d1/f100" "$work/ref/d1/f4096"
check "swapped: d1/f4096 reads as d1/f100, whole" cmp -s "$mnt/d1/f4096" "$work/ref/d1/f100"
check "swapped across directories: d1/f10000 reads as d2/f10000" cmp -s "$mnt/d1/f10000" "$work/ref/d2/f10000"
check "swapped across directories: d2/f10000 reads as d1/f10000" cmp -s "$mnt/d2/f10000" "$work/ref/d1/f10000"
expect_intact "contents swapped" d1/f0 d2/f4096
done_case "contents swapped"

# 6. truncated mid-sector and at a sector boundary
truncate -s $((HDR + 3 * STRIDE + 100)) "$(B d1/f1048576)"
truncate -s $((HDR + 2 * STRIDE)) "$(B d2/f1048576)"
truncate -s $((HDR + STRIDE)) "$(B d1/f10000)"
truncate -s $((HDR + 50)) "$(B d2/f100)"
truncate -s 100 "$(B d2/f0)"
run_case truncation
expect_damaged "truncated" d1/f1048576 d2/f1048576 d1/f10000 d2/f100 d2/f0
expect_intact truncation d1/f100 d2/f10000
done_case truncation

# 7. a directory's header replaced by another directory's
cp "$(B d2)/.sekeydir" "$(B d1)/.sekeydir"
run_case ".sekeydir"
for s in "${SIZES[@]}"; do
	if cat "$mnt/d1/f$s" >"$work/out" 2>/dev/null && ! cmp -s "$work/out" "$work/ref/d1/f$s"; then
		bad ".sekeydir replaced: d1/f$s gave wrong bytes"
	else
		ok
	fi
done
check ".sekeydir replaced: d1 shows none of its names" test -z "$(ls "$mnt/d1" 2>/dev/null)"
check ".sekeydir replaced: d1/f100 is not found or EIO" bash -c "! cat '$mnt/d1/f100' >/dev/null 2>&1"
expect_intact ".sekeydir" $(all_of d2)
done_case ".sekeydir"
check "the damage is logged" grep -qi "integrity\|authentic" "$work/sekeyfs.log"
fs_summary
