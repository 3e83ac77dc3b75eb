#!/usr/bin/env bash
# bench/fs_tree_ab.sh - two sekeyfs builds beside gocryptfs, all three
# mounted at once on tmpfs (/dev/shm), so they see the same moments of a
# shared, noisy machine: the same UNTAR_SRC tree (default /usr/include)
# untarred into each, then ROUNDS rounds (default 5) of drop_caches +
# ls -lR on each, the order rotated every round, with min and median, then
# rm -rf on each (once: it is destructive).  Wall seconds, lower is better.
# As root.  Usage: A_BIN=DIR B_BIN=DIR bench/fs_tree_ab.sh, each DIR
# holding secube, secube-emu and sekeyfs (BUILD/bin of a tree: e.g. a
# `git archive` of the base commit built beside the working tree).
# Unmounts and stops what it started, by PID, on any exit.
set -u
: "${A_BIN:?A_BIN=dir of the first build}" "${B_BIN:?B_BIN=dir of the second build}"
UNTAR_SRC=${UNTAR_SRC:-/usr/include}; ROUNDS=${ROUNDS:-5}
W=$(mktemp -d /dev/shm/sekeyfs-ab.XXXXXX) || exit 1
pids=()
cleanup() {
	for m in "$W"/mnt-*; do mountpoint -q "$m" && fusermount3 -u "$m"; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for c in "$W"/cube-*; do [ -f "$c/secube-emu.pid" ] && kill "$(cat "$c/secube-emu.pid")" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
printf 'admin-pin\n' >"$W/admin.pin"; printf 'user-pin\n' >"$W/user.pin"
tar -C "$(dirname "$UNTAR_SRC")" -cf "$W/src.tar" "$(basename "$UNTAR_SRC")" 2>/dev/null
# gocryptfs
mkdir -p "$W/back-goc" "$W/mnt-goc"
gocryptfs -q -init -extpass "echo benchpass" "$W/back-goc" >/dev/null 2>&1
gocryptfs -q -extpass "echo benchpass" "$W/back-goc" "$W/mnt-goc" 2>/dev/null || { echo "fs_tree_ab: gocryptfs does not mount" >&2; exit 1; }
# sek NAME BINDIR: a fresh cube and share for that build, mounted.
sek() {
	local n=$1 b=$2
	mkdir -p "$W/back-$n" "$W/mnt-$n"
	export SECUBE_EMU="$b/secube-emu"
	"$b/secube" create "$W/cube-$n" >/dev/null &&
	"$b/secube" init "$W/cube-$n" --admin-pin-file "$W/admin.pin" --user-pin-file "$W/user.pin" >/dev/null &&
	"$b/secube" keygen "$W/cube-$n" --pin-file "$W/admin.pin" --id 1 --alg aes256-gcm --usage encrypt,decrypt >/dev/null &&
	"$b/sekeyfs" --init --key 1 --device "$W/cube-$n" --pin-file "$W/user.pin" "$W/back-$n" >/dev/null || return 1
	"$b/sekeyfs" -f --device "$W/cube-$n" --pin-file "$W/user.pin" "$W/back-$n" "$W/mnt-$n" 2>>"$W/log" &
	pids+=($!)
	for i in $(seq 1 100); do mountpoint -q "$W/mnt-$n" && return 0; sleep 0.05; done
	return 1
}
sek a "$A_BIN" || { echo "fs_tree_ab: cannot mount A ($A_BIN)" >&2; exit 1; }
sek b "$B_BIN" || { echo "fs_tree_ab: cannot mount B ($B_BIN)" >&2; exit 1; }
echo "A = $A_BIN, B = $B_BIN, goc = gocryptfs $(gocryptfs -version 2>/dev/null | head -n 1 | cut -d' ' -f2)"
# t CMD...: drop caches, run CMD, print its wall seconds.
t() { local t0 t1; sync; echo 3 >/proc/sys/vm/drop_caches; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t0 $t1" | awk '{printf "%.3f", $2-$1}'; }
fsl="goc a b"
for f in $fsl; do echo "untar $f: $(t tar -xf "$W/src.tar" -C "$W/mnt-$f")"; done
declare -A res
for r in $(seq 1 "$ROUNDS"); do
	order=$fsl
	for _ in $(seq 1 $((r % 3))); do order="${order#* } ${order%% *}"; done
	for f in $order; do res[$f]="${res[$f]:-} $(t ls -lR "$W/mnt-$f")"; done
done
for f in $fsl; do echo "ls -lR $f:${res[$f]} -> min $(echo ${res[$f]} | tr ' ' '\n' | sort -n | head -1) median $(echo ${res[$f]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')"; done
top=$(basename "$UNTAR_SRC")
for f in $fsl; do echo "rm -rf $f: $(t rm -rf "$W/mnt-$f/$top")"; done
