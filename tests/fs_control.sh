#!/usr/bin/env bash
# fs_control.sh - the control tree /.sekey/ on real mounts (docs/CONTROL.md):
# an admin mount (--admin, the admin cube and KMS) and two user mounts
# (Alice, Bob) on one BACKING.  Every admin operation done by file
# operations on the admin's mount and its effect seen on the admin's
# /.sekey/, on the users' /.sekey/ after the update propagates (the user
# mounts poll only every 60 s: what brings the change within seconds is
# the inotify watch), and through the `sekey` tool on a user's cube;
# every change refused on a user's mount; malformed, overlong, partial and
# concurrent writes; Bob removed from a group while mounted; the KMS
# reconnecting after its cube was killed.  Every mount, daemon and
# emulator is stopped by PID on the way out.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d "${FS_TMP:-/dev/shm}/sekeyfs-ctl.XXXXXX" 2>/dev/null || mktemp -d /tmp/sekeyfs-ctl.XXXXXX)
back="$work/back"; U="$work/updates"
mkdir -p "$back" "$U"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
declare -A fs_pid
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

cleanup() {
	local who c
	for who in admin alice bob hidden; do
		mountpoint -q "$work/$who.mnt" 2>/dev/null &&
			{ fusermount3 -u "$work/$who.mnt" 2>/dev/null || fusermount3 -uz "$work/$who.mnt" 2>/dev/null; }
	done
	for who in "${!fs_pid[@]}"; do kill "${fs_pid[$who]}" 2>/dev/null; done
	for who in "${!fs_pid[@]}"; do wait "${fs_pid[$who]}" 2>/dev/null; done
	for c in "$work"/*.cube; do
		[ -f "$c/secube-emu.pid" ] && kill "$(cat "$c/secube-emu.pid")" 2>/dev/null
	done
	[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

S="$bin/secube"; K="$bin/sekey"
A=(--device "$work/admin.cube" --updates "$U" --pin-file "$work/admin.pin")
admin() { "$K" "${A[@]}" "$@" >"$work/admin.out" 2>&1 || { echo "admin $*: $(cat "$work/admin.out")"; return 1; }; }
keyof() { sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/admin.out"; }

# mount_as WHO [extra options...]: WHO's cube on $work/WHO.mnt.
mount_as() {
	local who=$1 m="$work/$1.mnt" i cube=$1 pin="$work/user.pin"; shift
	local opts=(--updates "$U" --sync-interval 60)
	case $who in
	admin) opts+=(--admin); pin="$work/admin.pin" ;;
	hidden) cube=alice ;;
	esac
	mkdir -p "$m"
	"$bin/sekeyfs" -f --device "$work/$cube.cube" --pin-file "$pin" "${opts[@]}" "$@" \
		"$back" "$m" 2>>"$work/$who.log" &
	fs_pid[$who]=$!
	for i in $(seq 1 200); do
		mountpoint -q "$m" && return 0
		kill -0 "${fs_pid[$who]}" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
umount_as() {
	fusermount3 -u "$work/$1.mnt" && wait "${fs_pid[$1]}" 2>/dev/null
	unset "fs_pid[$1]"
}
# fails_with MSG CMD...: CMD fails and its stderr says MSG (the errno's text).
fails_with() {
	local want=$1; shift
	if "$@" >/dev/null 2>"$work/err"; then return 1; fi
	grep -q "$want" "$work/err" || { echo "  (got: $(cat "$work/err"))"; return 1; }
}
# put FILE VALUE: one write of VALUE into FILE (sysfs style).
put() { printf '%s\n' "$2" >"$1"; }
# ask FILE QUERY: write QUERY and read the answer on the same open file.
ask() { python3 - "$1" "$2" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    os.write(fd, sys.argv[2].encode() + b"\n")
    print(os.read(fd, 4096).decode(), end="")
except OSError as e:
    print(os.strerror(e.errno), file=sys.stderr); sys.exit(1)
EOF
}
# wait_for SECONDS CMD...: CMD succeeds within SECONDS.
wait_for() {
	local t=$1 i; shift
	for i in $(seq 1 $((t * 10))); do "$@" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
EPERM="Operation not permitted"; EINVAL="Invalid argument"; EEXIST="File exists"
ENOENT="No such file or directory"; NOKEY="Required key not available"

# ---- the admin by the sekey tool: the cubes, the users, a share ----
for c in admin alice bob; do
	"$S" create "$work/$c.cube" >/dev/null &&
		"$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null ||
		bad "cube $c"
done
check "sekey init" admin init
for who in alice bob; do
	check "user add $who" admin user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin"
done
check "group all" admin group add all
for m in alice bob; do check "all += $m" admin group add-member all "$m"; done
admin --json key add all && allkey=$(keyof) && admin key activate "$allkey" || bad "key for all"
check "init --group all" "$bin/sekeyfs" --init --device "$work/alice.cube" --pin-file "$work/user.pin" \
	--updates "$U" --group all "$back"
for who in admin alice bob; do
	check "mount as $who" mount_as "$who" || { echo "$(cat "$work/$who.log")"; exit 1; }
done
C="$work/admin.mnt/.sekey"; CA="$work/alice.mnt/.sekey"; CB="$work/bob.mnt/.sekey"

# ---- read-only views ----
check "admin whoami" test "$(cat "$C/whoami")" = admin
check "admin role" test "$(cat "$C/role")" = admin
check "alice whoami" test "$(cat "$CA/whoami")" = alice
check "alice role" test "$(cat "$CA/role")" = user
check "alice serial" test "$(cat "$CA/serial")" = "$("$S" info "$work/alice.cube" --json 2>/dev/null |
	sed -n 's/.*"serial":"\([0-9a-f]*\)".*/\1/p')"
check "alice status synced" grep -qx "state: synced" "$CA/status"
check "alice status pending 0" grep -qx "pending: 0" "$CA/status"
check "admin status counts" grep -qx "users: 2" "$C/status"
check "/.sekey listed in the root" bash -c "ls -a '$work/alice.mnt' | grep -qx .sekey"
check "tree" test "$(ls "$C" | tr '\n' ' ')" = "admin audit find_key groups keys last_error role serial stale status users whoami "
check "users listed" test "$(ls "$C/users" | tr '\n' ' ')" = "alice bob "
check "key listed" test -d "$C/keys/$allkey"
check "key state" test "$(cat "$C/keys/$allkey/state")" = active
check "key group" test "$(cat "$C/keys/$allkey/group")" = all
check "key alg" test "$(cat "$C/keys/$allkey/alg")" = aes256-gcm
check "group members" test "$(cat "$C/groups/all/members" | tr '\n' ' ')" = "alice bob "
check "group active key" test "$(cat "$C/groups/all/active_key")" = "$allkey"
check "alice sees the key" test "$(cat "$CA/keys/$allkey/state")" = active
check "audit has the changes" grep -q "add_group" "$C/audit"
check "stale count" test "$(cat "$CA/stale")" = 0
check "nothing of /.sekey in BACKING" test -z "$(find "$back" -name '*sekey*' ! -name .sekeydir)"
check "no user named .sekey can be made" fails_with "$EEXIST" mkdir "$work/alice.mnt/.sekey"
check "nor removed" fails_with "$EPERM" rmdir "$work/alice.mnt/.sekey"

# ---- admin: a group made, its policy set ----
check "mkdir groups/team" mkdir "$C/groups/team"
check "team exists" test "$(cat "$C/groups/team/alg")" = aes256-gcm
check "default max_keys" test "$(cat "$C/groups/team/max_keys")" = 16
check "set max_keys" put "$C/groups/team/max_keys" 8
check "max_keys is 8" test "$(cat "$C/groups/team/max_keys")" = 8
check "max_keys garbage: EINVAL" fails_with "$EINVAL" put "$C/groups/team/max_keys" 8x
check "max_keys 0: EINVAL" fails_with "$EINVAL" put "$C/groups/team/max_keys" 0
check "max_keys unchanged" test "$(cat "$C/groups/team/max_keys")" = 8
check "reason in last_error" grep -q "max_keys" "$C/last_error"
check "reason in the log" grep -q "max_keys is a number" "$work/admin.log"
check "set cryptoperiod" put "$C/groups/team/cryptoperiod" 86400
check "cryptoperiod" test "$(cat "$C/groups/team/cryptoperiod")" = 86400
check "rotate_on_remove 2: EINVAL" fails_with "$EINVAL" put "$C/groups/team/rotate_on_remove" 2
check "alg is immutable: EPERM" fails_with "$EPERM" put "$C/groups/team/alg" aes256-ctr-hmac
check "alg unknown: EINVAL" fails_with "$EINVAL" put "$C/groups/team/alg" rot13
check "group exists: EEXIST" fails_with "$EEXIST" mkdir "$C/groups/team"
check "bad group name: EINVAL" fails_with "$EINVAL" mkdir "$C/groups/a,b"
check "no file in a group: EPERM" fails_with "$EPERM" touch "$C/groups/team/extra"
check "no unlink: EPERM" fails_with "$EPERM" rm -f "$C/groups/team/id"
check "no mkdir in keys: EPERM" fails_with "$EPERM" mkdir "$C/keys/99"
check "no rename: EPERM" fails_with "$EPERM" mv "$C/groups/team" "$C/groups/team2"

# ---- members ----
check "add alice" put "$C/groups/team/add_member" alice
check "add bob" put "$C/groups/team/add_member" bob
check "members" test "$(cat "$C/groups/team/members" | tr '\n' ' ')" = "alice bob "
check "member again: EEXIST" fails_with "$EEXIST" put "$C/groups/team/add_member" alice
check "no such user: ENOENT" fails_with "$ENOENT" put "$C/groups/team/add_member" mallory
check "user's groups" test "$(cat "$C/users/bob/groups" | tr '\n' ' ')" = "all team "
check "add_member is write-only" fails_with "denied" cat "$C/groups/team/add_member"

# ---- keys ----
teamkey=$(ask "$C/groups/team/new_key" teamkey) || bad "new_key"
check "new key listed" test "$(cat "$C/groups/team/keys")" = "$teamkey"
check "new key pre-active" test "$(cat "$C/keys/$teamkey/state")" = pre-active
check "new key label" test "$(cat "$C/keys/$teamkey/label")" = teamkey
check "bad state: EINVAL" fails_with "$EINVAL" put "$C/keys/$teamkey/state" shiny
check "activate" put "$C/keys/$teamkey/state" active
check "active" test "$(cat "$C/keys/$teamkey/state")" = active
check "activated time" grep -q "^20[0-9-]*T" "$C/keys/$teamkey/activated"
check "back to pre-active: EPERM" fails_with "$EPERM" put "$C/keys/$teamkey/state" pre-active
check "team's active key" test "$(cat "$C/groups/team/active_key")" = "$teamkey"
check "new_key bad cryptoperiod: EINVAL" fails_with "$EINVAL" ask "$C/groups/team/new_key" "k2 -5"
spare=$(ask "$C/groups/team/new_key" "spare 3600") || bad "new_key with cryptoperiod"
check "spare's cryptoperiod" test "$(cat "$C/keys/$spare/cryptoperiod")" = 3600
check "pre-active cannot be suspended: EPERM" fails_with "$EPERM" put "$C/keys/$spare/state" suspended
check "activate spare" put "$C/keys/$spare/state" active
check "suspend" put "$C/keys/$spare/state" suspended
check "compromise" put "$C/keys/$spare/state" compromised
check "compromised time" grep -q "^20" "$C/keys/$spare/compromised"
check "destroy" put "$C/keys/$spare/state" destroyed
check "destroyed" test "$(cat "$C/keys/$spare/state")" = destroyed
check "expire check" test "$(ask "$C/admin/expire_check" 1)" = 0
check "expire check wants 1" fails_with "$EINVAL" ask "$C/admin/expire_check" yes
check "prune" grep -qx "[0-9]*" <(ask "$C/admin/prune" 1)
check "recover bob" put "$C/admin/recover" "bob lost laptop"

# ---- users ----
check "mkdir users/carol" mkdir "$C/users/carol"
check "carol not provisioned" grep -q "not provisioned" "$C/users/carol/serial"
check "carol exists: EEXIST" fails_with "$EEXIST" mkdir "$C/users/carol"
check "bad user name: EINVAL" fails_with "$EINVAL" mkdir "$C/users/car ol"
check "rmdir users/carol" rmdir "$C/users/carol"
check "carol gone" test ! -e "$C/users/carol"
check "rmdir no such user: ENOENT" fails_with "$ENOENT" rmdir "$C/users/carol"
check "mkdir groups/tmp" mkdir "$C/groups/tmp"
check "rmdir groups/tmp" rmdir "$C/groups/tmp"

# ---- malformed writes change nothing ----
before=$(cat "$C/groups/team/max_keys")
check "overlong: EINVAL" fails_with "$EINVAL" put "$C/groups/team/max_keys" "$(head -c 5000 /dev/zero | tr '\0' 7)"
# raw FILE BYTES...: os.write each Python bytes literal in turn on one open file.
raw() { python3 - "$@" <<'EOF'
import ast, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    for b in sys.argv[2:]:
        os.write(fd, ast.literal_eval(b))
except OSError as e:
    sys.exit(os.strerror(e.errno))
EOF
}
check "NUL inside: EINVAL" fails_with "$EINVAL" raw "$C/groups/team/max_keys" "b'4\\x005'"
check "two lines in one write: EINVAL" fails_with "$EINVAL" raw "$C/groups/team/max_keys" "b'4\\n5\\n'"
check "empty: EINVAL" fails_with "$EINVAL" raw "$C/groups/team/max_keys" "b'\\n'"
check "max_keys unchanged after garbage" test "$(cat "$C/groups/team/max_keys")" = "$before"
# A value in two writes: the first is a whole value (sysfs), the rest refused.
check "continuation: EINVAL" fails_with "$EINVAL" raw "$C/groups/team/max_keys" "b'1'" "b'2'"
check "only the first write applied" test "$(cat "$C/groups/team/max_keys")" = 1
put "$C/groups/team/max_keys" "$before"
# Concurrent writers: 8 new groups at once, 8 values of one field at once.
# (wait for these jobs only: the mounts are background jobs too)
jobs=(); for i in $(seq 1 8); do mkdir "$C/groups/c$i" & jobs+=($!); done; wait "${jobs[@]}"
check "8 concurrent mkdirs" test "$(ls "$C/groups" | grep -c '^c[0-9]$')" = 8
jobs=(); for i in $(seq 1 8); do put "$C/groups/team/max_keys" $((i + 2)) & jobs+=($!); done; wait "${jobs[@]}"
v=$(cat "$C/groups/team/max_keys")
check "concurrent writes: one value wins whole" test "$v" -ge 3 -a "$v" -le 10
jobs=(); for i in $(seq 1 8); do rmdir "$C/groups/c$i" & jobs+=($!); done; wait "${jobs[@]}"
check "8 concurrent rmdirs" test "$(ls "$C/groups" | grep -c '^c[0-9]$')" = 0

# ---- the change reaches the running user mounts (inotify, not the 60 s poll) ----
check "alice sees team" wait_for 15 test -d "$CA/groups/team"
check "alice sees team's members" wait_for 5 grep -qx bob "$CA/groups/team/members"
check "alice's status counts applied updates" bash -c "grep -q '^applied_since_mount: [1-9]' '$CA/status'"
bob_has_team_key() { test "$(cat "$CB/keys/$teamkey/state" 2>/dev/null)" = active; }
check "bob sees the team key" wait_for 15 bob_has_team_key
check "alice's find_key for bob is team's" test "$(ask "$CA/find_key" bob)" = "$teamkey"
check "find_key by group" test "$(ask "$CA/find_key" group:team)" = "$teamkey"
check "find_key unknown user: ENOKEY" fails_with "$NOKEY" ask "$CA/find_key" mallory
check "find_key garbage: EINVAL" fails_with "$EINVAL" ask "$CA/find_key" "a,,b"
check "sekey find-key on alice's cube agrees" bash -c "'$K' --device '$work/alice.cube' --pin-file '$work/user.pin' --json find-key bob 2>/dev/null | grep -q '\"key\":$teamkey'"

# ---- every change refused on a user's mount ----
check "user: mkdir users: EPERM" fails_with "$EPERM" mkdir "$CA/users/x"
check "user: mkdir groups: EPERM" fails_with "$EPERM" mkdir "$CA/groups/x"
check "user: rmdir group: EPERM" fails_with "$EPERM" rmdir "$CA/groups/team"
check "user: policy: EPERM" fails_with "$EPERM" put "$CA/groups/team/max_keys" 5
check "user: add_member: EPERM" fails_with "$EPERM" put "$CA/groups/team/add_member" alice
check "user: key state: EPERM" fails_with "$EPERM" put "$CA/keys/$teamkey/state" suspended
check "user: new_key: EPERM" fails_with "$EPERM" put "$CA/groups/team/new_key" sneaky
check "user: prune: EPERM" fails_with "$EPERM" put "$CA/admin/prune" 1
check "user: refusal in last_error" grep -q "administrator" "$CA/last_error"
check "user: touch: EPERM" fails_with "$EPERM" touch "$CA/newfile"
check "nothing changed by the user" test "$(cat "$C/keys/$teamkey/state")" = active

# ---- Bob leaves team while mounted: Alice's new team files are not his ----
MA="$work/alice.mnt"; MB="$work/bob.mnt"
mkdir "$MA/teamdir" && check "teamdir for team" setfattr -n user.sekey.group -v team "$MA/teamdir"
echo before >"$MA/teamdir/old.txt" || bad "write old.txt"
check "bob reads old.txt" wait_for 5 grep -qx before "$MB/teamdir/old.txt"
check "remove bob" put "$C/groups/team/remove_member" bob
check "rotation: a new active key" test "$(cat "$C/groups/team/active_key")" != "$teamkey"
newkey=$(cat "$C/groups/team/active_key")
check "old key deactivated" test "$(cat "$C/keys/$teamkey/state")" = deactivated
alice_has_new_key() { test "$(cat "$CA/groups/team/active_key" 2>/dev/null)" = "$newkey"; }
# (a function: wait_for must read the file again on every try)
check "alice gets the new key" wait_for 15 alice_has_new_key
check "bob's view loses team" wait_for 15 test ! -e "$CB/groups/team"
# Before anyone writes there again: his old file, under the old key
# (deactivated now, still decrypting), is still his.  (The next new name
# in teamdir moves its names to the new key: then he cannot look them up.)
sleep 1.2   # his entry cache
check "bob still reads old.txt" grep -qx before "$MB/teamdir/old.txt"
echo after >"$MA/teamdir/new.txt" || bad "write new.txt"
check "bob cannot read new.txt" bash -c "! cat '$MB/teamdir/new.txt' >/dev/null 2>&1"
check "alice reads new.txt" grep -qx after "$MA/teamdir/new.txt"
check "sekey status on bob's cube" bash -c "'$K' --device '$work/bob.cube' --pin-file '$work/user.pin' --json status 2>/dev/null | grep -q '\"locked\":false'"

# ---- hide_control ----
check "mount hidden" mount_as hidden -o hide_control
check "hidden from the root's listing" bash -c "! ls -a '$work/hidden.mnt' | grep -qx .sekey"
check "but reachable" test "$(cat "$work/hidden.mnt/.sekey/whoami")" = alice
umount_as hidden

# ---- the KMS's cube killed: refused, then reconnected ----
kill -9 "$(cat "$work/alice.cube/secube-emu.pid")"
sleep 0.3
check "alice's KMS comes back" wait_for 20 grep -qx "state: synced" "$CA/status"
alice_finds_team_key() { test "$(ask "$CA/find_key" group:team 2>/dev/null)" = "$newkey"; }
check "alice's KMS finds keys again" wait_for 10 alice_finds_team_key
# The file system's own cube pool notices the cube is gone on its first
# failed call (EIO, docs/MOUNT.md) and reconnects for the next.
bash -c "echo again >'$MA/teamdir/again.txt'" 2>/dev/null || echo again >"$MA/teamdir/again.txt" ||
	bad "write after reconnect"
check "reads after reconnect" grep -qx again "$MA/teamdir/again.txt"
check "reconnect logged" grep -q "SEkey: reconnected" "$work/alice.log"

echo "fs_control: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
