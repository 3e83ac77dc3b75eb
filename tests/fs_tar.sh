#!/usr/bin/env bash
# fs_tar.sh - a real tree through a sekeyfs mount: untar /usr/include/linux
# into it, diff -r against the source, again after a remount, then rm -rf
# leaves BACKING with its root header only.
. "$(dirname "$0")/fs_lib.sh"
src=/usr/include/linux
[ -d "$src" ] || src=/usr/include

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }
tar -C "$(dirname "$src")" -cf "$work/tree.tar" "$(basename "$src")"
check "untar" tar -C "$mnt" -xf "$work/tree.tar"
check "diff -r" diff -r "$src" "$mnt/$(basename "$src")"
check "unmount" fs_umount
check "remount" fs_mount
check "diff -r after remount" diff -r "$src" "$mnt/$(basename "$src")"
check "ls -lR" bash -c "ls -lR '$mnt' >/dev/null"
check "rm -rf" rm -rf "$mnt/$(basename "$src")"
# the root lists the control tree /.sekey/ (docs/CONTROL.md) and nothing else
check "mount empty" test "$(ls -A "$mnt")" = .sekey
check "BACKING holds the root header only" test "$(ls -A "$back")" = .sekeydir
check "unmount" fs_umount
fs_summary
