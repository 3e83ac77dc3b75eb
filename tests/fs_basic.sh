#!/usr/bin/env bash
# fs_basic.sh - a sekeyfs mount end to end: files of many sizes written,
# read, appended, overwritten and truncated and compared with the
# originals; directory trees, rename (also across directories, onto an
# existing name, NOREPLACE/EXCHANGE via mv), hard links, symlinks, long
# names, xattrs, FIFOs, device nodes refused; the same after unmount and
# remount; BACKING holds none of the names or contents in clear.
. "$(dirname "$0")/fs_lib.sh"

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }

ref="$work/ref"; mkdir -p "$ref"
# Plaintext marker strings that must never reach BACKING.
marker="PLAINTEXT-MARKER-q8Zr"
for n in 0 1 4095 4096 4097 65536 1048577; do
	{ printf '%s' "$marker"; head -c $((n > 20 ? n - 20 : 0)) /dev/urandom; } | head -c "$n" >"$ref/s$n"
	cp "$ref/s$n" "$mnt/file_$marker.$n"
	check "size $n reads back" cmp -s "$ref/s$n" "$mnt/file_$marker.$n"
	check "size $n stat" test "$(stat -c %s "$mnt/file_$marker.$n")" -eq "$n"
done
dd if=/dev/urandom of="$ref/big" bs=1M count=10 status=none
dd if="$ref/big" of="$mnt/big" bs=1M status=none conv=fsync
check "10 MiB dd" cmp -s "$ref/big" "$mnt/big"
dd if="$mnt/big" of="$work/big.back" bs=128k status=none
check "10 MiB dd read 128k" cmp -s "$ref/big" "$work/big.back"
rm -f "$work/big.back"

# append, overwrite in the middle, truncate down and up
printf 'tail-bytes' >>"$ref/s4097"; printf 'tail-bytes' >>"$mnt/file_$marker.4097"
check "append" cmp -s "$ref/s4097" "$mnt/file_$marker.4097"
printf 'XYZ' | dd of="$ref/s65536" bs=1 seek=5000 conv=notrunc status=none
printf 'XYZ' | dd of="$mnt/file_$marker.65536" bs=1 seek=5000 conv=notrunc status=none
check "overwrite in the middle" cmp -s "$ref/s65536" "$mnt/file_$marker.65536"
truncate -s 3000 "$ref/s65536"; truncate -s 3000 "$mnt/file_$marker.65536"
check "truncate down" cmp -s "$ref/s65536" "$mnt/file_$marker.65536"
truncate -s 100000 "$ref/s65536"; truncate -s 100000 "$mnt/file_$marker.65536"
check "truncate up reads zeros" cmp -s "$ref/s65536" "$mnt/file_$marker.65536"
echo "new content" >"$ref/ow"; echo "something much longer than the new content" >"$mnt/ow"
echo "new content" >"$mnt/ow"
check "overwrite with O_TRUNC" cmp -s "$ref/ow" "$mnt/ow"

# directories, rename, links
mkdir -p "$mnt/dir_$marker/a/b/c" && echo deep >"$mnt/dir_$marker/a/b/c/leaf"
check "mkdir -p tree" grep -qx deep "$mnt/dir_$marker/a/b/c/leaf"
mv "$mnt/dir_$marker/a/b/c/leaf" "$mnt/dir_$marker/leaf2"
check "rename across dirs" grep -qx deep "$mnt/dir_$marker/leaf2"
check "old name gone" test ! -e "$mnt/dir_$marker/a/b/c/leaf"
mv "$mnt/dir_$marker/a" "$mnt/moved"
check "directory rename keeps its tree" test -d "$mnt/moved/b/c"
echo one >"$mnt/r1"; echo two >"$mnt/r2"
mv "$mnt/r1" "$mnt/r2"
check "rename onto an existing name" grep -qx one "$mnt/r2"
echo three >"$mnt/r3"
check "mv --no-clobber keeps target" bash -c "mv -n '$mnt/r3' '$mnt/r2'; grep -qx one '$mnt/r2'"
if mv --help 2>&1 | grep -q -- --exchange; then
	mv --exchange "$mnt/r2" "$mnt/r3"; check "RENAME_EXCHANGE" grep -qx three "$mnt/r2"
fi
ln "$mnt/r2" "$mnt/dir_$marker/hard"
check "hard link in another dir reads" cmp -s "$mnt/r2" "$mnt/dir_$marker/hard"
check "link count 2" test "$(stat -c %h "$mnt/r2")" -eq 2
echo more >>"$mnt/dir_$marker/hard"
check "write through one link shows in the other" cmp -s "$mnt/r2" "$mnt/dir_$marker/hard"
ln -s "../r2-$marker" "$mnt/dir_$marker/sym"
check "readlink" test "$(readlink "$mnt/dir_$marker/sym")" = "../r2-$marker"
check "symlink size" test "$(stat -c %s "$mnt/dir_$marker/sym")" -eq $((${#marker} + 6))
ln -s r2 "$mnt/sym2"
check "follow symlink" cmp -s "$mnt/r2" "$mnt/sym2"
long=$(printf 'L%.0s' $(seq 1 240))
echo longname >"$mnt/$long"
check "long name" grep -qx longname "$mnt/$long"
check "long name listed" bash -c "ls '$mnt' | grep -qx '$long'"
mv "$mnt/$long" "$mnt/${long}2"
check "long name renamed" grep -qx longname "$mnt/${long}2"
check "name over 255 refused" bash -c "! touch '$mnt/${long}${long}' 2>/dev/null"

# xattrs
setfattr -n user.note -v "secret-$marker" "$mnt/r2"
check "getxattr" test "$(getfattr --only-values -n user.note "$mnt/r2")" = "secret-$marker"
head -c 5000 /dev/urandom | base64 -w0 >"$work/xa"
setfattr -n user.big -v "$(cat "$work/xa")" "$mnt/r2"
check "large xattr" test "$(getfattr --only-values -n user.big "$mnt/r2")" = "$(cat "$work/xa")"
setfattr -n user.d -v dirval "$mnt/moved"
check "xattr on a directory" test "$(getfattr --only-values -n user.d "$mnt/moved")" = dirval
check "listxattr" bash -c "getfattr -d '$mnt/r2' | grep -q user.note"
check "user.sekey.* reserved" bash -c "! setfattr -n user.sekey.recipients -v x '$mnt/r2' 2>/dev/null"
setfattr -x user.big "$mnt/r2"
check "removexattr" bash -c "! getfattr -n user.big '$mnt/r2' 2>/dev/null"

# special files, modes, times
mkfifo "$mnt/fifo"
check "fifo" test -p "$mnt/fifo"
check "device node refused" bash -c "! mknod '$mnt/dev' c 1 3 2>/dev/null"
chmod 600 "$mnt/r2"
check "chmod" test "$(stat -c %a "$mnt/r2")" = 600
touch -d '2001-02-03 04:05:06' "$mnt/r2"
check "utimens" test "$(stat -c %Y "$mnt/r2")" -eq "$(date -d '2001-02-03 04:05:06' +%s)"
mkdir "$mnt/empty"; rmdir "$mnt/empty"
check "rmdir" test ! -e "$mnt/empty"
check "rmdir of a non-empty dir refused" bash -c "! rmdir '$mnt/moved' 2>/dev/null"
rm "$mnt/sym2"; check "unlink symlink" test ! -L "$mnt/sym2"

# remount and compare everything again
( cd "$mnt" && find . -printf '%y %p %s %l\n' | sort ) >"$work/listing1"
( cd "$mnt" && find . -type f ! -name fifo -exec md5sum {} + | sort ) >"$work/sums1"
check "unmount" fs_umount
check "remount" fs_mount
( cd "$mnt" && find . -printf '%y %p %s %l\n' | sort ) >"$work/listing2"
( cd "$mnt" && find . -type f ! -name fifo -exec md5sum {} + | sort ) >"$work/sums2"
check "same tree after remount" cmp -s "$work/listing1" "$work/listing2"
check "same contents after remount" cmp -s "$work/sums1" "$work/sums2"
check "xattr after remount" test "$(getfattr --only-values -n user.note "$mnt/r2")" = "secret-$marker"
for n in 0 1 4095 4096 1048577; do
	check "size $n after remount" cmp -s "$ref/s$n" "$mnt/file_$marker.$n"
done

# nothing in clear in BACKING: names, contents, xattr values, link targets
check "no plaintext in BACKING contents" bash -c "! grep -rqa -- '$marker' '$back'"
check "no plaintext names in BACKING" bash -c "! find '$back' | grep -q -- '$marker'"
check "no plaintext xattr values in BACKING" bash -c "! getfattr -R -d '$back' 2>/dev/null | grep -q secret"
check "no plaintext link targets" bash -c "! find '$back' -type l -printf '%l\n' | grep -q r2"
check "no temp residue" bash -c "! find '$back' -name '.sekeyfs-tmp.*' | grep -q ."

check "unmount" fs_umount
fs_summary
