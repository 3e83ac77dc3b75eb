#!/usr/bin/env bash
# fs_mount_extra.sh - sekeyfs as the system mounts it, and `sekey rekey`:
#  1. `sekey rekey PATH` (PATH a directory of BACKING) after a key
#     rotation re-encrypts the stale files under PATH only, then the rest
#     with PATH = BACKING; the contents read back; exit codes 1 and 4.
#  2. mount(8) with the -o string of the /etc/fstab line of docs/MOUNT.md:
#     mount(8) runs helpers with a fixed PATH (/usr/local/bin...), so the
#     uninstalled build is mounted as `mount -t fuse BIN/sekeyfs#BACKING`,
#     and the helper `mount -t fuse.sekeyfs` runs, mount.fuse3 -t sekeyfs,
#     is run directly with BUILD/bin first in PATH; `umount`, `fusermount3 -u`.
#  3. As root: -o allow_other,default_permissions lets `nobody` read a 644
#     file and not a 600 one; without allow_other `nobody` cannot even stat
#     the mount.
# Every mount, daemon and emulator is stopped by PID on the way out.
set -u
. "$(dirname "$0")/fs_lib.sh"
U="$work/updates"; mkdir -p "$U"
cube="$work/alice.cube"   # fs_mount mounts with it
S="$bin/secube"; K="$bin/sekey"
export PATH="$bin:$PATH"   # mount.fuse3 -t sekeyfs runs `sekeyfs` from PATH
# mount_t OPTS: mount(8) of BACKING on $mnt with this build's sekeyfs.
mount_t() { mount -t fuse "$bin/sekeyfs#$back" "$mnt" -o "$1"; }

# The PIDs of sekeyfs daemons serving $work (a mount through mount.fuse3
# daemonizes, so its PID is found, not kept).
daemon_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$bin/sekeyfs" ] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$work/" && echo "${p#/proc/}"
	done
}
extra_cleanup() {
	local m p c
	for m in "$work"/mnt*; do
		mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
	done
	for p in $(daemon_pids); do kill "$p" 2>/dev/null; done
	for c in "$work"/*.cube; do
		[ -f "$c/secube-emu.pid" ] && kill "$(cat "$c/secube-emu.pid")" 2>/dev/null
	done
	fs_cleanup
}
trap extra_cleanup EXIT

# wait_gone: the daemons of $work exit (after an unmount).
wait_gone() {
	local i
	for i in $(seq 1 100); do
		[ -z "$(daemon_pids)" ] && return 0
		sleep 0.05
	done
	return 1
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- 1. sekey rekey ----
A=(--device "$work/admin.cube" --updates "$U" --pin-file "$work/admin.pin")
admin() { "$K" "${A[@]}" "$@" >"$work/admin.out" 2>&1 || { echo "admin $*: $(cat "$work/admin.out")"; return 1; }; }
keyof() { sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/admin.out"; }
files_under_key() { find "$back" -type f ! -name '.*' ! -name '*.name' -print0 | xargs -0 -r "$bin/sefile" ls 2>/dev/null | grep -c "  key $1  "; }
for c in admin alice; do
	"$S" create "$work/$c.cube" >/dev/null &&
		"$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null ||
		bad "cube $c"
done
check "sekey init" admin init
check "user add alice" admin user add alice --device "$work/alice.cube" --peer-pin-file "$work/admin.pin"
check "group add team" admin group add team
check "add-member" admin group add-member team alice
admin --json key add team && k1=$(keyof) && admin key activate "$k1" || bad "key for team"
check "init --group team" "$bin/sekeyfs" --init --device "$work/alice.cube" --pin-file "$work/user.pin" \
	--updates "$U" --group team "$back"
check "mount as alice" fs_mount --updates "$U"
mkdir -p "$mnt/d/sub" && echo top >"$mnt/top.txt" && echo one >"$mnt/d/one.txt" &&
	head -c 20000 /dev/urandom >"$mnt/d/sub/two.bin" && cp "$mnt/d/sub/two.bin" "$work/two.bin" ||
	bad "write the files"
check "unmount" fs_umount
admin --json key add team && k2=$(keyof) || bad "key add team"
check "activate the new key" admin key activate "$k2"
check "deactivate the old key" admin key set-state "$k1" deactivated
check "three files on the old key" test "$(files_under_key "$k1")" -eq 3
# the backing directory of d: the only directory directly under BACKING
bd=$(find "$back" -mindepth 1 -maxdepth 1 -type d)
R=(--device "$work/alice.cube" --updates "$U" --pin-file "$work/user.pin")
"$K" "${R[@]}" rekey "$bd" >"$work/rekey.out" 2>"$work/rekey.err"
rc=$?; check "sekey rekey DIR exit 0 (got $rc: $(tail -n 1 "$work/rekey.err"))" test "$rc" -eq 0
check "rekey DIR: d's two files" grep -q "rekey: 2 file(s) re-encrypted, 0 failed" "$work/rekey.out"
check "top.txt still on the old key" test "$(files_under_key "$k1")" -eq 1
"$K" "${R[@]}" rekey "$back/" >"$work/rekey.out" 2>"$work/rekey.err"
rc=$?; check "sekey rekey BACKING exit 0 (got $rc: $(tail -n 1 "$work/rekey.err"))" test "$rc" -eq 0
check "rekey BACKING: the last one" grep -q "rekey: 1 file(s) re-encrypted, 0 failed" "$work/rekey.out"
check "nothing on the old key" test "$(files_under_key "$k1")" -eq 0
check "all on the new key" test "$(files_under_key "$k2")" -eq 3
"$K" "${R[@]}" rekey "$back" >"$work/rekey.out" 2>&1
check "again: nothing to do" grep -q "rekey: 0 file(s) re-encrypted" "$work/rekey.out"
"$K" "${R[@]}" rekey "$work" >/dev/null 2>&1
check "not a share: exit 1" test $? -eq 1
printf 'wrong-pin\n' >"$work/wrong.pin"
"$K" --device "$work/alice.cube" --updates "$U" --pin-file "$work/wrong.pin" rekey "$back" >/dev/null 2>&1
check "wrong PIN: exit 4" test $? -eq 4
check "mount after rekey" fs_mount --updates "$U"
check "top.txt reads" grep -qx top "$mnt/top.txt"
check "d/one.txt reads" grep -qx one "$mnt/d/one.txt"
check "d/sub/two.bin reads" cmp -s "$mnt/d/sub/two.bin" "$work/two.bin"
check "unmount" fs_umount

# ---- 2. mount -t fuse.sekeyfs, the fstab form ----
opts="device=$work/alice.cube,pin_file=$work/user.pin,updates=$U"
check "mount -t fuse BIN/sekeyfs#BACKING -o OPTS" mount_t "$opts"
check "mounted" mountpoint -q "$mnt"
check "reads through mount -t" grep -qx one "$mnt/d/one.txt"
echo fstab >"$mnt/fstab.txt" && check "writes through mount -t" grep -qx fstab "$mnt/fstab.txt"
check "the mount's type" bash -c "grep -qE ' $mnt fuse(\\.sekeyfs)? ' /proc/mounts"
check "umount" umount "$mnt"
check "the daemon exits" wait_gone
check "mount.fuse3 -t sekeyfs (what mount -t fuse.sekeyfs runs), fstab options" \
	mount.fuse3 "$back" "$mnt" -t sekeyfs -o "noauto,user,$opts"
check "its type is fuse.sekeyfs" bash -c "grep -qF ' $mnt fuse.sekeyfs ' /proc/mounts"
check "reads through it" grep -qx fstab "$mnt/fstab.txt"
check "fusermount3 -u" fusermount3 -u "$mnt"
check "the daemon exits" wait_gone

# ---- 3. allow_other, default_permissions (as root) ----
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
chmod 755 "$work" "$mnt"
check "mount -o allow_other,default_permissions" \
	mount_t "allow_other,default_permissions,$opts"
echo secret >"$mnt/secret.txt" && chmod 600 "$mnt/secret.txt" || bad "write secret.txt"
echo public >"$mnt/public.txt" && chmod 644 "$mnt/public.txt" || bad "write public.txt"
check "secret.txt is root's, 600" test "$(stat -c %u:%a "$mnt/secret.txt")" = 0:600
check "nobody cannot read a 600 file" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups cat '$mnt/secret.txt' >/dev/null 2>&1"
check "nobody reads a 644 file" test "$(as_nobody cat "$mnt/public.txt")" = public
check "nobody cannot write it" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x >>\"$mnt/public.txt\"' 2>/dev/null"
check "root reads the 600 file" grep -qx secret "$mnt/secret.txt"
check "umount" umount "$mnt"
check "the daemon exits" wait_gone
check "mount without allow_other" mount_t "$opts"
check "root reads" grep -qx public "$mnt/public.txt"
check "nobody cannot stat the mount" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups stat '$mnt' >/dev/null 2>&1"
check "nobody cannot read a 644 file in it" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups cat '$mnt/public.txt' >/dev/null 2>&1"
check "umount" umount "$mnt"
check "the daemon exits" wait_gone
fs_summary
