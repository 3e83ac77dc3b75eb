#!/usr/bin/env bash
# fs_model.sh - model-based random testing through a real sekeyfs mount
# (tests/fs_model.py): thousands of random pwrite/pread/truncate/fsync/
# reopen/append operations on files and their plain twins, compared at
# every step; several processes writing disjoint, sector-sharing ranges of
# one file at once; then everything read again after a remount.
# OPS (default 3000) and SEED (default: the date) tune it; the seed is
# printed so a failure can be replayed.
. "$(dirname "$0")/fs_lib.sh"
command -v python3 >/dev/null || { bad "python3 is needed (Debian package python3)"; fs_summary; exit 1; }
OPS=${OPS:-3000}; SEED=${SEED:-$(date +%s)}
model="$root/tests/fs_model.py"

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }
mkdir -p "$work/twin"
echo "seed $SEED, $OPS operations"
# tally: run a fs_model.py step, fold its "N passed, M failed" into ours
tally() {
	local out p f
	out=$(python3 "$model" "$@" 2>&1)
	echo "$out" | grep -v ' passed, ' | head -20
	p=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
	f=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
	[ -n "$p" ] || { bad "fs_model.py $1 did not finish"; return; }
	pass=$((pass + p))
	[ "$f" -eq 0 ] || bad "fs_model.py $1: $f failed"
}
tally ops "$mnt" "$work/twin" "$SEED" "$OPS"
tally ops "$mnt" "$work/twin" "$((SEED + 1))" "$((OPS / 3))"
tally writers "$mnt" 4 4
tally verify-writers "$mnt" 4 4
check "unmount" fs_umount
check "remount" fs_mount
tally compare "$mnt" "$work/twin"
tally verify-writers "$mnt" 4 4
# the same with the kernel's write-back cache, in a directory of its own
mkdir -p "$mnt/wb" "$work/twin-wb"
check "unmount" fs_umount
check "mount --writeback" fs_mount --writeback
tally ops "$mnt/wb" "$work/twin-wb" "$((SEED + 2))" "$((OPS / 2))"
tally writers "$mnt/wb" 4 2
tally verify-writers "$mnt/wb" 4 2
check "unmount" fs_umount
check "remount" fs_mount
tally compare "$mnt/wb" "$work/twin-wb"
tally verify-writers "$mnt/wb" 4 2
check "unmount" fs_umount
fs_summary
