#!/usr/bin/env bash
# fs_lib.sh - what the mount-level tests (tests/fs_*.sh) share: a fresh
# emulated cube with key 1, a share initialised on it, mounting (sekeyfs
# in the foreground, its PID kept) and unmounting, counters, and a cleanup
# trap that unmounts, kills every sekeyfs and emulator it started by PID
# and removes the temp dir, even on failure.
# Sourced by the tests; run directly, it is itself a smoke test: init,
# mount, write, read, unmount.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d "${FS_TMP:-/dev/shm}/sekeyfs-test.XXXXXX" 2>/dev/null || mktemp -d /tmp/sekeyfs-test.XXXXXX)
cube="$work/cube"; back="$work/back"; mnt="$work/mnt"
mkdir -p "$back" "$mnt"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
fs_pids=()
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

fs_cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && { fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null; }
	local p
	for p in "${fs_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${fs_pids[@]}"; do wait "$p" 2>/dev/null; done
	[ -f "$cube/secube-emu.pid" ] && kill "$(cat "$cube/secube-emu.pid")" 2>/dev/null
	rm -rf "$work"
}
trap fs_cleanup EXIT

fs_make_cube() {
	"$bin/secube" create "$cube" >/dev/null &&
	"$bin/secube" init "$cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null &&
	"$bin/secube" keygen "$cube" --pin-file "$work/admin.pin" --id 1 --alg aes256-gcm --usage encrypt,decrypt >/dev/null
}

fs_init() {
	"$bin/sekeyfs" --init --key 1 --device "$cube" --pin-file "$work/user.pin" "$back" >/dev/null
}

# fs_mount [extra sekeyfs options]: mount in the foreground, wait until ready.
fs_mount() {
	"$bin/sekeyfs" -f --device "$cube" --pin-file "$work/user.pin" "$@" "$back" "$mnt" \
		2>>"$work/sekeyfs.log" &
	fs_pid=$!
	fs_pids+=("$fs_pid")
	local i
	for i in $(seq 1 100); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$fs_pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

fs_umount() {
	fusermount3 -u "$mnt" || return 1
	wait "$fs_pid" 2>/dev/null
	return 0
}

fs_summary() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	check "cube" fs_make_cube
	check "init" fs_init
	check "init refuses an existing share" bash -c "! '$bin/sekeyfs' --init --key 1 --device '$cube' --pin-file '$work/user.pin' '$back' 2>/dev/null"
	check "mount" fs_mount
	echo "smoke" >"$mnt/f" && check "read back" grep -qx smoke "$mnt/f"
	check "unmount" fs_umount
	printf 'wrong-pin\n' >"$work/wrong.pin"
	"$bin/sekeyfs" -f --device "$cube" --pin-file "$work/wrong.pin" "$back" "$mnt" 2>/dev/null
	check "wrong PIN exits 4 before mounting" test $? -eq 4
	fs_summary
fi
