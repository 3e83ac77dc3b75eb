#!/usr/bin/env bash
# bench/fs_tree.sh - the tree phases of bench/fsbench.sh on sekeyfs alone,
# with the two figures a shared, noisy machine disturbs least beside the
# wall time: the CPU the daemon and the emulator used, and the emulator's
# voluntary context switches (it sleeps in poll() between requests, so
# this counts the cube round trips it waited for; requests that queue
# while it works are not counted).  Untar of UNTAR_SRC (default
# /usr/include) into a fresh share, then ls -lR LS_ROUNDS times and rm -rf,
# each after drop_caches.  As root (drop_caches).  Run it with two builds to
# compare them: BUILD=build-a bench/fs_tree.sh; BUILD=build-b bench/fs_tree.sh
# (or ROOT=/other/tree for a tree with its own tests/fs_lib.sh).
# Prints "N passed, M failed" at the end; nothing fails on a number.
R=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
. "$R/tests/fs_lib.sh"
UNTAR_SRC=${UNTAR_SRC:-/usr/include}; LS_ROUNDS=${LS_ROUNDS:-3}

now() { date +%s.%N; }
emu_pid() { cat "$cube/secube-emu.pid"; }
wakeups() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$(emu_pid)/status"; }
ticks() {
	local p t=0
	for p in "$fs_pid" "$(emu_pid)"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
	echo "$t"
}
hz=$(getconf CLK_TCK)
# phase LABEL CMD...: drop caches, run CMD, print its figures.
phase() {
	local label=$1 w0 w1 k0 k1 t0 t1; shift
	sync; echo 3 >/proc/sys/vm/drop_caches
	w0=$(wakeups); k0=$(ticks); t0=$(now)
	"$@" >/dev/null || { bad "$label"; return 1; }
	t1=$(now); k1=$(ticks); w1=$(wakeups)
	ok
	echo "$label: $(echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }') s," \
		"cpu $(echo "$((k1 - k0)) $hz" | awk '{ printf "%.2f", $1 / $2 }') s," \
		"emulator wakeups $((w1 - w0))"
}

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }
tar -C "$(dirname "$UNTAR_SRC")" -cf "$work/src.tar" "$(basename "$UNTAR_SRC")" 2>/dev/null
echo "$BUILD: untar of $UNTAR_SRC ($(tar -tf "$work/src.tar" | wc -l) entries)"
mkdir "$mnt/src"
phase "untar" tar -xf "$work/src.tar" -C "$mnt/src"
for r in $(seq 1 "$LS_ROUNDS"); do phase "ls -lR #$r" ls -lR "$mnt/src"; done
phase "rm -rf" rm -rf "$mnt/src"
check "unmount" fs_umount
fs_summary
