#!/usr/bin/env bash
# fs_bench.sh - sekeyfs throughput and metadata figures on a fresh share
# (BACKING on /dev/shm): sequential write of SIZE MiB (dd bs=1M, fsync),
# cold sequential reads (the file's page cache dropped first with
# dd iflag=nocache) with bs=128k and bs=1M, a warm re-read, then N creates,
# a listing after a remount and N deletes of empty files.  Each throughput
# figure is the best of REPS runs (the machine is shared: the best run is
# the one least disturbed), and each line also gives the CPU seconds the
# daemon and the emulator used in the best run, which a busy machine
# disturbs less than wall time.  Prints "N passed, M failed" at the end.
# Environment: SIZE (MiB, default 256), N (default 2000), REPS (default 3),
# MOUNT_OPTS (extra sekeyfs options, e.g. --writeback).
. "$(dirname "$0")/../tests/fs_lib.sh"
SIZE=${SIZE:-256}; N=${N:-2000}; REPS=${REPS:-3}; MOUNT_OPTS=${MOUNT_OPTS:-}

now() { date +%s.%N; }
# CPU ticks used so far by the daemon and the emulator.
ticks() {
	local p t=0
	for p in "$fs_pid" "$(cat "$cube/secube-emu.pid" 2>/dev/null)"; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)
# best LABEL MIB PREP CMD...: run PREP (a string, eval'ed) then time CMD,
# REPS times; print the best wall time, its MB/s (if MIB > 0) and CPU.
best() {
	local label=$1 mib=$2 prep=$3 r t0 t1 c0 c1 bt= bc=; shift 3
	for r in $(seq 1 "$REPS"); do
		eval "$prep"
		c0=$(ticks); t0=$(now)
		"$@" || { bad "$label"; return 1; }
		t1=$(now); c1=$(ticks)
		t=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
		if [ -z "$bt" ] || awk "BEGIN{exit !($t < $bt)}"; then bt=$t; bc=$(( c1 - c0 )); fi
	done
	ok
	if [ "$mib" -gt 0 ]; then
		echo "$label: $bt s = $(echo "$mib $bt" | awk '{printf "%.0f", $1 / $2}') MB/s, cpu $(echo "$bc $hz" | awk '{printf "%.2f", $1 / $2}') s"
	else
		echo "$label: $bt s, cpu $(echo "$bc $hz" | awk '{printf "%.2f", $1 / $2}') s"
	fi
}
remount() { fs_umount && fs_mount $MOUNT_OPTS; }

check "cube" fs_make_cube
check "init" fs_init
# shellcheck disable=SC2086
check "mount" fs_mount $MOUNT_OPTS || { fs_summary; exit 1; }
echo "SIZE=$SIZE MiB, N=$N, best of REPS=$REPS${MOUNT_OPTS:+, options $MOUNT_OPTS}"
best "seq write $SIZE MiB bs=1M+fsync" "$SIZE" 'rm -f "$mnt/big"' \
	dd if=/dev/zero of="$mnt/big" bs=1M count="$SIZE" conv=fsync status=none
check "remount" remount
drop='dd if="$mnt/big" iflag=nocache count=0 status=none'
best "cold seq read bs=128k" "$SIZE" "$drop" dd if="$mnt/big" of=/dev/null bs=128k status=none
best "cold seq read bs=1M" "$SIZE" "$drop" dd if="$mnt/big" of=/dev/null bs=1M status=none
best "warm re-read bs=1M" "$SIZE" "" dd if="$mnt/big" of=/dev/null bs=1M status=none
rm -f "$mnt/big"
mkdir "$mnt/many"
REPS=1 best "$N creates" 0 "" python3 -c "import os; [os.close(os.open('$mnt/many/f%d' % i, os.O_CREAT | os.O_WRONLY, 0o644)) for i in range(1, $N + 1)]"
check "remount" remount
REPS=1 best "cold ls -l of $N" 0 "" bash -c "ls -l '$mnt/many' >/dev/null"
REPS=1 best "$N deletes (after the listing)" 0 "" python3 -c "import os; [os.unlink('$mnt/many/f%d' % i) for i in range(1, $N + 1)]"
check "unmount" fs_umount
fs_summary
