#!/usr/bin/env bash
# multihost.sh - sharing across two hosts joined by real network transports
# (issue 10).  The test builds two network namespaces joined by a veth pair
# (10.77.0.1 = host A, 10.77.0.2 = host B; nothing outside them), then:
#   host A: the administrator (sekey CLI, admin cube), Alice (her cube, a
#           local sekeyfs mount of BACKING), sshd serving BACKING (own
#           config, host key and authorized_keys in the temp dir, listening
#           on 10.77.0.1 only), Syncthing with A's copy of the updates folder;
#   host B: Bob (his cube), sshfs mounting BACKING from A, sekeyfs on top of
#           that sshfs mount, Syncthing with B's copy of the updates folder.
# Syncthing runs headless with its own homes, the two device IDs exchanged
# by the test, listening on the namespace addresses only, no discovery,
# relays, NAT traversal or usage reporting.  The namespaces share one file
# system (they are separated by network only), but every program on B
# reaches A's files only through its transport: Bob's sekeyfs reads BACKING
# through sshfs, and his updates folder is his Syncthing copy.
# What is asserted (see README.md next to this file): sharing by xattr,
# admin changes reaching Bob's running mount (add to a group, rotation on
# member removal, compromise), sync-tool debris ignored, a conflict copy in
# BACKING hidden from the mount but readable with the sefile tool, the
# network failing during a large write (error, never wrong bytes, work
# resumes), a truncated update file refused and nothing applied, Bob
# offline on his last state then catching up in order, and the admin's
# prune once Bob's ack came back over Syncthing.
# Processes are started under `nsenter --net` (not `ip netns exec`, which
# also makes a private mount namespace: the FUSE mounts must stay visible
# to the test and its cleanup).  Everything is stopped by PID, every mount
# unmounted and both namespaces deleted on the way out, even on failure.
# Needs root, /dev/fuse, ip netns, sshd, sshfs and syncthing; exits 0 with
# "SKIP: reason" when one is missing (run-tests.sh has no skip status).
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"

skip() { echo "SKIP: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "multihost needs root (network namespaces)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
for p in ip nsenter sshfs syncthing ssh-keygen fusermount3 setfattr getfattr; do
	command -v "$p" >/dev/null 2>&1 || skip "$p is not installed (tools/debian-packages.txt)"
done
[ -x /usr/sbin/sshd ] || skip "/usr/sbin/sshd is not installed (openssh-server)"
probe=skmh-probe-$$
ip netns add "$probe" 2>/dev/null || skip "ip netns is not available here"
ip netns del "$probe"

work=$(mktemp -d /tmp/sekeyfs-multihost.XXXXXX)
chmod 755 "$work"
NSA=skmh-a-$$; NSB=skmh-b-$$
VA=skA$$; VB=skB$$
IPA=10.77.0.1; IPB=10.77.0.2
BACK="$work/back"                 # BACKING, on host A
MA="$work/alice.mnt"              # Alice's mount, on A
BB="$work/bob.back"               # BACKING seen from B through sshfs
MB="$work/bob.mnt"                # Bob's mount (sekeyfs over sshfs), on B
UA="$work/a.updates"; UB="$work/b.updates"   # the two Syncthing copies
mkdir -p "$BACK" "$MA" "$BB" "$MB" "$UA" "$UB"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
declare -A pid=()
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; return 1; fi; }
note() { echo "  -- $*"; }
inA() { nsenter --net="/run/netns/$NSA" "$@"; }
inB() { nsenter --net="/run/netns/$NSB" "$@"; }

# every PID under $1 (children first), so sshd's per-connection children
# and sshfs's ssh go with their parent
descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$c"; echo "$c"; done
}
stop_pid() {
	local p=$1 d
	[ -n "$p" ] || return 0
	d=$(descendants "$p")
	kill "$p" $d 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$p" $d 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
umount_fuse() {
	mountpoint -q "$1" 2>/dev/null || return 0
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null
}
cleanup() {
	local w c
	trap - EXIT INT TERM
	umount_fuse "$MB"; umount_fuse "$MA"
	for w in bob_fs alice_fs; do stop_pid "${pid[$w]:-}"; done
	umount_fuse "$BB"
	for w in sshfs st_a st_b sshd; do stop_pid "${pid[$w]:-}"; done
	for c in "$work"/*.cube; do
		[ -f "$c/secube-emu.pid" ] && kill "$(cat "$c/secube-emu.pid")" 2>/dev/null
	done
	ip netns del "$NSA" 2>/dev/null; ip netns del "$NSB" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds
wait_for() {
	local t=$1 i; shift
	for i in $(seq 1 $((t * 5))); do "$@" && return 0; sleep 0.2; done
	return 1
}
die() { echo "FATAL: $*"; fail=$((fail + 1)); echo "multihost: $pass passed, $fail failed"; exit 1; }

# ---- the network: two namespaces, one veth pair ----
ip netns add "$NSA" && ip netns add "$NSB" || die "ip netns add"
ip link add "$VA" type veth peer name "$VB" || die "veth"
ip link set "$VA" netns "$NSA" && ip link set "$VB" netns "$NSB" || die "veth into namespaces"
ip -n "$NSA" addr add "$IPA/24" dev "$VA" && ip -n "$NSB" addr add "$IPB/24" dev "$VB" || die "addresses"
for n in "$NSA" "$NSB"; do ip -n "$n" link set lo up || die "lo up"; done
ip -n "$NSA" link set "$VA" up && ip -n "$NSB" link set "$VB" up || die "veth up"

# ---- host A: sshd with its own keys, on A's address only ----
mkdir -p "$work/sshd" "$work/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/id" || die "ssh-keygen"
cp "$work/ssh/id.pub" "$work/sshd/authorized_keys"
echo "$IPA $(cut -d' ' -f1,2 "$work/sshd/host_key.pub")" >"$work/ssh/known_hosts"
cat >"$work/sshd/sshd_config" <<EOF
ListenAddress $IPA
Port 22
HostKey $work/sshd/host_key
AuthorizedKeysFile $work/sshd/authorized_keys
PidFile $work/sshd/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
ClientAliveInterval 2
ClientAliveCountMax 3
EOF
inA /usr/sbin/sshd -D -e -f "$work/sshd/sshd_config" 2>>"$work/sshd.log" &
pid[sshd]=$!
SSH_OPTS="-F /dev/null -i $work/ssh/id -o UserKnownHostsFile=$work/ssh/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=3"
SSHFS_OPTS="IdentityFile=$work/ssh/id,UserKnownHostsFile=$work/ssh/known_hosts,StrictHostKeyChecking=yes,BatchMode=yes,ConnectTimeout=3"
# shellcheck disable=SC2086
check "sshd answers on A" wait_for 15 inB ssh $SSH_OPTS "root@$IPA" true

# ---- Syncthing on both hosts: own homes, device IDs exchanged here ----
st_home() { echo "$work/st-$1"; }
for h in a b; do
	syncthing generate --home="$(st_home $h)" --no-default-folder --skip-port-probing >/dev/null 2>&1 || die "syncthing generate $h"
done
ID_A=$(syncthing --home="$(st_home a)" --device-id 2>/dev/null | tail -n 1)
ID_B=$(syncthing --home="$(st_home b)" --device-id 2>/dev/null | tail -n 1)
[ -n "$ID_A" ] && [ -n "$ID_B" ] || die "syncthing device IDs"
# st_config HOST MY_IP FOLDER: the whole config, written by the test
st_config() {
	local h=$1 ip=$2 folder=$3
	cat >"$(st_home "$h")/config.xml" <<EOF
<configuration version="36">
    <folder id="sekey-updates" label="updates" path="$folder" type="sendreceive" rescanIntervalS="60" fsWatcherEnabled="true" fsWatcherDelayS="1" ignorePerms="true" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="$ID_A"></device>
        <device id="$ID_B"></device>
        <minDiskFree unit="%">0</minDiskFree>
        <order>alphabetic</order>
        <markerName>.stfolder</markerName>
    </folder>
    <device id="$ID_A" name="host-a" compression="metadata" introducer="false">
        <address>tcp://$IPA:22000</address>
    </device>
    <device id="$ID_B" name="host-b" compression="metadata" introducer="false">
        <address>tcp://$IPB:22000</address>
    </device>
    <gui enabled="false" tls="false"><address>127.0.0.1:8384</address></gui>
    <options>
        <listenAddress>tcp://$ip:22000</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <startBrowser>false</startBrowser>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <crashReportingEnabled>false</crashReportingEnabled>
        <reconnectionIntervalS>2</reconnectionIntervalS>
        <minHomeDiskFree unit="%">0</minHomeDiskFree>
        <stunServer></stunServer>
        <setLowPriority>false</setLowPriority>
    </options>
</configuration>
EOF
}
st_config a "$IPA" "$UA"; st_config b "$IPB" "$UB"
mkdir -p "$UA/.stfolder" "$UB/.stfolder"
# st_start HOST: syncthing in that host's namespace, PID kept
st_start() {
	local h=$1 ns
	[ "$h" = a ] && ns=$NSA || ns=$NSB
	STNOUPGRADE=1 STNODEFAULTFOLDER=1 nsenter --net="/run/netns/$ns" syncthing serve \
		--home="$(st_home "$h")" --no-browser --no-restart --logflags=2 \
		>>"$work/st-$h.log" 2>&1 &
	pid[st_$h]=$!
}
st_start a; st_start b
echo probe >"$UA/probe"
check "Syncthing carries a file from A to B" wait_for 60 test -f "$UB/probe"
rm -f "$UA/probe"
wait_for 30 test ! -e "$UB/probe" || bad "Syncthing carries a deletion"
check "Syncthing A listens on A's address only" grep -q "TCP listener ($IPA:22000) starting" "$work/st-a.log"
check "B's Syncthing connected to A over the veth" grep -q "Established secure connection to $ID_A at .*$IPA" "$work/st-b.log"

# ---- the admin on A: Alice, Bob, Carol; groups pair (alice, bob) and
# proj (alice, carol; Bob joins later) ----
S="$bin/secube"; K="$bin/sekey"
for c in admin alice bob carol; do
	"$S" create "$work/$c.cube" >/dev/null &&
		"$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null ||
		die "cube $c"
done
admin() { inA "$K" --device "$work/admin.cube" --updates "$UA" --pin-file "$work/admin.pin" "$@" >"$work/admin.out" 2>&1 || { echo "admin $*: $(cat "$work/admin.out")"; return 1; }; }
keyof() { sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/admin.out"; }
check "sekey init" admin init
for who in alice carol bob; do
	before=$(ls "$UA")
	check "user add $who" admin user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin"
	[ "$who" = bob ] && BOBSER=$(comm -13 <(echo "$before") <(ls "$UA") | head -n 1)
done
[ -n "${BOBSER:-}" ] || die "Bob's update folder on A"
for g in pair proj; do check "group add $g" admin group add "$g"; done
for m in "pair alice" "pair bob" "proj alice" "proj carol"; do check "add-member $m" admin group add-member $m; done
declare -A key
for g in pair proj; do
	admin --json key add "$g" && key[$g]=$(keyof) && admin key activate "${key[$g]}" || bad "key for $g"
done
# Bob's cube is "plugged into" host B: its emulator, started by the
# provisioning on A, is stopped; Bob's own programs start it again in B.
kill "$(cat "$work/bob.cube/secube-emu.pid")" 2>/dev/null
wait_for 10 test ! -S "$work/bob.cube/cube.sock" || true

# the highest update counter for Bob the admin wrote (on A), and the one
# Bob's mount acknowledged (its ack file, on B)
last_a() { ls "$UA/$BOBSER" 2>/dev/null | sed -n 's/^0*\([0-9][0-9]*\)\.upd$/\1/p' | sort -n | tail -n 1; }
ack_b() { cat "$UB/$BOBSER/ack" 2>/dev/null | tr -d '\n'; }
bob_caught_up() { local a; a=$(last_a); [ -n "$a" ] && [ "$(ack_b)" = "$a" ]; }

# ---- Alice's share on A ----
inA "$bin/sekeyfs" --init --device "$work/alice.cube" --pin-file "$work/user.pin" --updates "$UA" --group pair "$BACK" ||
	die "sekeyfs --init"
mount_fs() {   # mount_fs WHO NS BACKING MNT UPDATES INTERVAL
	local who=$1 ns=$2 b=$3 m=$4 u=$5 iv=$6
	nsenter --net="/run/netns/$ns" "$bin/sekeyfs" -f --device "$work/$who.cube" --pin-file "$work/user.pin" \
		--updates "$u" --sync-interval "$iv" "$b" "$m" 2>>"$work/$who.log" &
	pid[${who}_fs]=$!
	wait_for 20 mountpoint -q "$m"
}
check "Alice mounts on A" mount_fs alice "$NSA" "$BACK" "$MA" "$UA" 1 || die "$(cat "$work/alice.log")"

# ---- host B: BACKING through sshfs, Bob's sekeyfs on top ----
mount_sshfs() {
	# shellcheck disable=SC2086
	inB sshfs -f -F /dev/null -o "$SSHFS_OPTS" -o reconnect,ServerAliveInterval=1,ServerAliveCountMax=3,dir_cache=no \
		"root@$IPA:$BACK" "$BB" 2>>"$work/sshfs.log" &
	pid[sshfs]=$!
	wait_for 20 mountpoint -q "$BB"
}
check "sshfs mounts BACKING on B" mount_sshfs || die "$(cat "$work/sshfs.log")"
upd_list() { ls "$1/$BOBSER" 2>/dev/null | grep -E '^[0-9]{16}\.upd$'; }
bob_has_all() { [ -n "$(upd_list "$UA")" ] && [ "$(upd_list "$UA")" = "$(upd_list "$UB")" ]; }
check "Bob's updates reached B over Syncthing" wait_for 60 bob_has_all
check "Bob mounts on B (sekeyfs over sshfs)" mount_fs bob "$NSB" "$BB" "$MB" "$UB" 2 || die "$(cat "$work/bob.log")"
check "Bob's mount acknowledged his updates" wait_for 30 bob_caught_up

NOKEY="Required key not available"
fails_with() {   # fails_with MSG CMD...: CMD fails and its stderr says MSG
	local want=$1; shift
	if "$@" >/dev/null 2>"$work/err"; then return 1; fi
	grep -q "$want" "$work/err" || { echo "  (got: $(cat "$work/err"))"; return 1; }
}
# admin_change CMD...: an admin command on A, then wait until Bob's running
# mount acknowledged every update the admin wrote for him
admin_change() {
	admin "$@" || return 1
	wait_for 60 bob_caught_up || { echo "  (Bob's ack $(ack_b), last on A $(last_a))"; return 1; }
}

# ---- 1. Alice shares a directory with Bob by xattr; Bob reads it on B ----
check "Alice mkdir shared" mkdir "$MA/shared" || die "$(tail -n 5 "$work/alice.log")"
check "setfattr recipients bob" setfattr -n user.sekey.recipients -v bob "$MA/shared"
rcpt=$(getfattr --only-values -n user.sekey.recipients "$MA/shared" 2>/dev/null)
check "recipients are bob and Alice herself (got $rcpt)" test "$(echo "$rcpt" | tr ',' '\n' | sort | tr '\n' ' ')" = "alice bob "
echo "hello bob" >"$MA/shared/note.txt" || bad "write note.txt"
head -c 3000000 /dev/urandom >"$work/rand.bin"
cp "$work/rand.bin" "$MA/shared/rand.bin" || bad "write rand.bin"
# lists DIR WORDS: DIR lists exactly WORDS (evaluated at each poll)
lists() { [ "$(ls "$1" 2>/dev/null | tr '\n' ' ')" = "$2" ]; }
check "Bob lists shared" wait_for 10 lists "$MB/shared" "note.txt rand.bin "
check "Bob reads note.txt through sshfs" grep -qx "hello bob" "$MB/shared/note.txt"
check "Bob reads rand.bin byte for byte" cmp -s "$work/rand.bin" "$MB/shared/rand.bin"
check "Bob sees the recipients" test "$(getfattr --only-values -n user.sekey.recipients "$MB/shared" 2>/dev/null)" = "$rcpt"
check "no plaintext in BACKING" bash -c "! grep -rqa 'hello bob' '$BACK'"
SHARED_BACK=$(for d in "$BACK"/*/; do [ -n "$(find "$d" -maxdepth 1 -type f ! -name '.*' | head -n 1)" ] && echo "${d%/}"; done | head -n 1)

# ---- 2. add Bob to group proj on A: his running mount lets him in ----
mkdir "$MA/proj" && setfattr -n user.sekey.group -v proj "$MA/proj" || bad "proj dir"
echo "project plan" >"$MA/proj/plan.txt" || bad "write proj/plan.txt"
check "Bob cannot list proj yet (ENOKEY)" wait_for 5 fails_with "$NOKEY" ls "$MB/proj"
check "add bob to proj (reaches B)" admin_change group add-member proj bob
check "Bob lists proj" wait_for 10 lists "$MB/proj" "plan.txt "
check "Bob reads proj/plan.txt" grep -qx "project plan" "$MB/proj/plan.txt"
# Bob creating a file over sshfs: sekeyfs makes every new file and
# directory under a temporary name and moves it into place without
# replacing anything; sshfs 3.7 refuses renameat2's RENAME_NOREPLACE
# (EINVAL), so there sefile_rename_noreplace falls back to link + unlink
# (files) or check + rename (directories).
remount_bob() {
	umount_fuse "$MB"; stop_pid "${pid[bob_fs]:-}"
	mount_fs bob "$NSB" "$BB" "$MB" "$UB" 2
}
check "Bob creates a file in proj over sshfs" bash -c "echo 'from bob' >'$MB/proj/bob1.txt'"
check "Bob creates a directory over sshfs" mkdir "$MB/proj/bobdir"
check "Bob renames with RENAME_NOREPLACE over sshfs (mv -n)" mv -n "$MB/proj/bobdir" "$MB/proj/bobdir2"
check "Alice reads Bob's new file" wait_for 10 grep -qx "from bob" "$MA/proj/bob1.txt"
count_key() { "$bin/sefile" ls "$BACK"/*/* 2>/dev/null | grep -c "  key $1  "; }
check "proj's file is under proj's key" test "$(count_key "${key[proj]}")" -ge 1
# Bob writes into an existing file (no rename): the sshfs path works
echo "bob was here" >"$MB/proj/plan.txt" || bad "Bob overwrites proj/plan.txt"
check "Alice reads Bob's overwrite" wait_for 10 grep -qx "bob was here" "$MA/proj/plan.txt"

# ---- 3. rotation: Carol removed from proj on A; the new key reaches Bob ----
check "remove carol from proj (rotation reaches B)" admin_change group remove-member proj carol
# the active key of the group key $1 belongs to (from `sekey --json key list`)
active_key_like() {
	admin --json key list || return 1
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); ks = d["keys"] if isinstance(d, dict) else d
g = [k["group"] for k in ks if k["id"] == int(sys.argv[2])][0]
print(max(k["id"] for k in ks if k["group"] == g and k["state"] == "active"))' "$work/admin.out" "$1"
}
newkey=$(active_key_like "${key[proj]}")
check "the rotation made a new key" test -n "$newkey" -a "$newkey" != "${key[proj]}"
# alice_new_file PATH TEXT KEY: Alice (whose mount polls the same folder on
# A) writes a new file until it is under KEY, i.e. her mount applied the change
alice_new_file() {
	local i
	for i in $(seq 1 40); do
		rm -f "$MA/$1"; echo "$2" >"$MA/$1" 2>/dev/null &&
			[ "$(count_key "$3")" -gt "${4:-0}" ] && return 0
		sleep 0.5
	done
	return 1
}
before=$(count_key "$newkey")
check "Alice's new file in proj gets the rotated key $newkey" alice_new_file proj/rot.txt "rotated" "$newkey" "$before"
# Alice's new name moved proj's names to the new key and replaced proj's
# header on A; Bob's mount must notice the replaced header through sshfs,
# whose inode numbers are its own (per path): it compares the header's
# SEfile file ID, fresh in every header written (fs/dir.c).
sleep 1.2   # the header check runs at most once per attribute timeout
check "Bob reads the new key's file (he received the new key)" grep -qx "rotated" "$MB/proj/rot.txt"
check "Bob still reads the old key's file" grep -qx "bob was here" "$MB/proj/plan.txt"
check "Bob's header view of proj" test "$(getfattr --only-values -n user.sekey.group "$MB/proj" 2>/dev/null)" = proj
check "Bob creates a file after the rotation" bash -c "echo 'after rotation' >'$MB/proj/bob2.txt'"
check "Bob's new file is under the rotated key" test "$(count_key "$newkey")" -ge 2

# ---- 4. sync-tool debris in Bob's updates folder: ignored, reported ----
last=$(printf '%016d' "$(last_a)")
cp "$UB/$BOBSER/$last.upd" "$UB/$BOBSER/.syncthing.$last.upd.tmp"
cp "$UB/$BOBSER/$last.upd" "$UB/$BOBSER/$last.sync-conflict-20261128-000000-ABCDEFG.upd"
sleep 5   # two of Bob's polls (every 2 s) see the debris
inB "$K" --device "$work/bob.cube" --updates "$UB" --pin-file "$work/user.pin" --json sync >"$work/bobsync.out" 2>&1
check "Bob's sync reports the debris" grep -q '"debris":2' "$work/bobsync.out" || cat "$work/bobsync.out"
check "nothing refused, no failure" grep -q '"failures":0,.*"refused":""' "$work/bobsync.out"
check "Bob's mount logged no refusal" bash -c "! grep -q 'updates not applied' '$work/bob.log'"

# ---- 5. a conflict copy in BACKING: hidden from the mount, readable with sefile ----
# shared's backing directory: the one holding rand.bin (3,000,000 bytes + sector overhead)
SHARED_BACK=$(dirname "$(find "$BACK" -mindepth 2 -maxdepth 2 -type f ! -name '.*' -size +2900k -size -3100k | head -n 1)")
note_back=$(find "$SHARED_BACK" -maxdepth 1 -type f ! -name '.*' ! -name '*.name' -size -2k | head -n 1)
[ -n "$note_back" ] || bad "note.txt's backing file"
cp -p "$note_back" "$note_back.sync-conflict-20261128-000000-ABCDEFG"
sleep 1.2   # past the kernel's entry cache
check "Bob's listing is unchanged" lists "$MB/shared" "note.txt rand.bin "
check "Alice's listing is unchanged" test "$(ls "$MA/shared" | tr '\n' ' ')" = "note.txt rand.bin "
# (the log shortens long names: match the start of this one)
check "the skipped name is logged" grep -q "skipped an entry: .*name \"$(basename "$note_back" | cut -c1-20).*\.sync-conflict" "$work/bob.log"
check "the conflict copy reads with the sefile tool on B" bash -c "inB() { nsenter --net=/run/netns/$NSB \"\$@\"; }; inB '$bin/sefile' --device '$work/bob.cube' --pin-file '$work/user.pin' cat '$BB/${note_back#"$BACK"/}.sync-conflict-20261128-000000-ABCDEFG' 2>'$work/sefile.err' | grep -qx 'hello bob'" || cat "$work/sefile.err"
rm -f "$note_back.sync-conflict-20261128-000000-ABCDEFG"

# ---- 6. Bob offline: his updates folder stops receiving; a truncated
# update is refused; then he catches up in order ----
stop_pid "${pid[st_b]}"; unset "pid[st_b]"
acked=$(ack_b)
check "offline: remove bob from proj on A (rotation)" admin group remove-member proj bob
check "offline: add bob back to proj on A" admin group add-member proj bob
key3=$(active_key_like "$newkey")
check "a third key for proj" test -n "$key3" -a "$key3" != "$newkey"
before=$(count_key "$key3")
check "Alice's new file gets key $key3" alice_new_file proj/k3.txt "third key" "$key3" "$before"
# Alice's new name moved proj's names to key3 (a new header): Bob's mount
# would keep the stale header (the sshfs inode gap above); he remounts,
# still offline (the mount syncs at start: nothing new in his folder)
check "offline Bob remounts" remount_bob
check "nothing reached B" test "$(ack_b)" = "$acked"
check "offline Bob still reads shared/note.txt" grep -qx "hello bob" "$MB/shared/note.txt"
check "offline Bob still writes shared/note.txt" bash -c "echo 'hello again' >'$MB/shared/note.txt'"
check "Alice reads it" grep -qx "hello again" "$MA/shared/note.txt"
check "offline Bob has no key $key3 yet (last applied state)" fails_with "$NOKEY" cat "$MB/proj/k3.txt"
# a half-transferred update under its final name: refused, nothing applied
next=$(printf '%016d' $((acked + 1)))
size=$(stat -c %s "$UA/$BOBSER/$next.upd")
head -c $((size / 2)) "$UA/$BOBSER/$next.upd" >"$UB/$BOBSER/.half" && mv "$UB/$BOBSER/.half" "$UB/$BOBSER/$next.upd"
check "the truncated update is refused" wait_for 20 grep -q "$next.upd.*truncated" "$work/bob.log"
rm -f "$UB/$BOBSER/$next.upd"    # before Bob's third poll: three refusals in a row lock his KMS
check "nothing applied from it" test "$(ack_b)" = "$acked"
check "still no key $key3" fails_with "$NOKEY" cat "$MB/proj/k3.txt"
st_start b
check "back online: Bob catches up" wait_for 60 bob_caught_up
check "in order: Bob reads the file under key $key3" grep -qx "third key" "$MB/proj/k3.txt"
inB "$K" --device "$work/bob.cube" --updates "$UB" --pin-file "$work/user.pin" --json status >"$work/bobstat.out" 2>&1
check "Bob's KMS is not locked, no failures" grep -q '"failures":0,"locked":false' "$work/bobstat.out" || cat "$work/bobstat.out"

# ---- 7. the network fails while Bob writes a large file ----
head -c 1048576 /dev/urandom >"$work/old.bin"; head -c 41943040 /dev/urandom >"$work/new.bin"
cp "$work/old.bin" "$MA/shared/big.bin" || bad "Alice writes big.bin"
check "Bob sees big.bin" wait_for 10 cmp -s "$work/old.bin" "$MB/shared/big.bin"
big_back=$(find "$SHARED_BACK" -maxdepth 1 -type f ! -name '.*' -size +1000k -size -1100k | head -n 1)
[ -n "$big_back" ] || bad "big.bin's backing file"
# the writer: 1 MiB at a time (its progress in a file), slowly enough
# for the link to go down midway; close() must report a lost write too
python3 -c 'import os, sys, time
src = open(sys.argv[1], "rb")
out = open(sys.argv[2], "wb")
n = 0
while True:
    b = src.read(1 << 20)
    if not b: break
    out.write(b); out.flush(); n += 1
    with open(sys.argv[3], "w") as p: p.write(str(n))
    time.sleep(0.25)
os.fsync(out.fileno()); out.close()
' "$work/new.bin" "$MB/shared/big.bin" "$work/progress" 2>"$work/writer.err" &
writer=$!
progress_ge() { [ "$(cat "$work/progress" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_for 30 progress_ge 6
ip -n "$NSB" link set "$VB" down
note "link down after $(cat "$work/progress") MiB written by Bob, $(stat -c %s "$big_back") bytes of big.bin on A"
for _ in $(seq 1 300); do kill -0 "$writer" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$writer" 2>/dev/null; then bad "the writer hangs with the link down"; kill "$writer"; fi
wait "$writer"; wrc=$?
check "the writer got an error (exit $wrc: $(tail -n 1 "$work/writer.err"))" test "$wrc" -ne 0
ip -n "$NSB" link set "$VB" up
# what is on A now: the old version, a prefix of the new one, or a read error; never other bytes
never_wrong() {   # never_wrong FILE: readable bytes are a prefix of new.bin or exactly old.bin
	local n
	cat "$1" >"$work/readback" 2>/dev/null
	n=$(stat -c %s "$work/readback")
	cmp -s "$work/readback" "$work/old.bin" && { note "$2 reads the old version"; return 0; }
	[ "$n" -eq 0 ] && { note "$2: read error at once"; return 0; }
	cmp -s -n "$n" "$work/readback" "$work/new.bin" && { note "$2: $n bytes of the new version, then an error or the end"; return 0; }
	return 1
}
check "Alice never reads wrong bytes" never_wrong "$MA/shared/big.bin" Alice
check "sshfs reconnects" wait_for 30 inB ssh $SSH_OPTS "root@$IPA" true
if ls "$MB/shared" >/dev/null 2>&1 && cp "$work/new.bin" "$MB/shared/big.bin" 2>/dev/null; then
	note "Bob's mount resumed by itself after the link came back"
else
	note "Bob's mount needed a remount after the link came back"
	umount_fuse "$MB"; stop_pid "${pid[bob_fs]:-}"
	mountpoint -q "$BB" && ! ls "$BB" >/dev/null 2>&1 && { umount_fuse "$BB"; stop_pid "${pid[sshfs]}"; }
	mountpoint -q "$BB" || check "sshfs remounts" mount_sshfs
	check "Bob remounts" mount_fs bob "$NSB" "$BB" "$MB" "$UB" 2
	check "Bob writes big.bin again" cp "$work/new.bin" "$MB/shared/big.bin"
fi
check "Bob reads big.bin back" cmp -s "$work/new.bin" "$MB/shared/big.bin"
check "Alice reads Bob's big.bin" cmp -s "$work/new.bin" "$MA/shared/big.bin"

# ---- 8. pair's key marked compromised on A: Bob still decrypts, warned; no new names ----
check "pair's key compromised (reaches B)" admin_change key set-state "${key[pair]}" compromised
check "Bob still reads shared/note.txt" grep -qx "hello again" "$MB/shared/note.txt"
check "with a warning in his log" grep -q "key ${key[pair]} is compromised" "$work/bob.log"
# shared's recipients are alice,bob; pair (alice, bob) has no active key
# now, but proj is {alice, bob} too since Carol left: as small, so find_key
# takes proj's key (never pair's compromised one, never a wider group).
before=$(count_key "${key[pair]}")
check "Bob creates in shared (another two-member group's key)" touch "$MB/shared/new.txt"
check "not under the compromised key" test "$(count_key "${key[pair]}")" -eq "$before"

# ---- 9. Bob's ack travels back to A; the admin prunes ----
ack_a() { cat "$UA/$BOBSER/ack" 2>/dev/null | tr -d '\n'; }
ack_on_a() { [ "$(ack_a)" = "$(last_a)" ]; }
check "Bob's ack reached A" wait_for 60 ack_on_a || echo "  (ack on A $(ack_a), on B $(ack_b), last $(last_a))"
check "sekey updates prune" admin updates prune
check "Bob's update files pruned on A" test -z "$(upd_list "$UA")"
no_upd_b() { [ -z "$(upd_list "$UB")" ]; }
check "and on B (Syncthing carries the deletions)" wait_for 60 no_upd_b || ls -la "$UB/$BOBSER"

umount_fuse "$MB"; stop_pid "${pid[bob_fs]:-}"; unset "pid[bob_fs]"
umount_fuse "$MA"; stop_pid "${pid[alice_fs]:-}"; unset "pid[alice_fs]"
check "no plaintext in BACKING" bash -c "! grep -rqa -e 'hello bob' -e 'third key' -e 'project plan' '$BACK'"
echo "multihost: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
