#!/usr/bin/env bash
# fs_sharing.sh - directories shared through SEkey on one BACKING: the
# thesis's Figure 4.4 (admin cube; Alice and Bob in group1, Bob and Eve in
# group2; plus group "all" of the three for the share's root), one admin
# using the sekey CLI and three mounts (Alice, Bob, Eve, each with their
# own cube and --updates).  Who reads what, who sees which names, ENOKEY
# for recipients no group holds, inheritance, getfattr, ENOTEMPTY for a
# recipients change that would move names, a rename keeping a file
# readable by exactly its recipients, a key rotation then `sekeyfs
# --rekey` of the stale files, and a live update (Bob removed from group1
# while mounted: Alice's new files there are unreadable to him).  Every
# mount, daemon and emulator is stopped by PID on the way out.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d "${FS_TMP:-/dev/shm}/sekeyfs-share.XXXXXX" 2>/dev/null || mktemp -d /tmp/sekeyfs-share.XXXXXX)
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
	for who in alice bob eve; do
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

# mount_as WHO: mount BACKING with WHO's cube on $work/WHO.mnt (polling every second).
mount_as() {
	local who=$1 m="$work/$1.mnt" i
	local opts=(--updates "$U" --sync-interval 1)
	[ "$who" = bob ] && opts=(-o "updates=$U,sync_interval=1")   # the fstab form
	mkdir -p "$m"
	"$bin/sekeyfs" -f --device "$work/$who.cube" --pin-file "$work/user.pin" "${opts[@]}" \
		"$back" "$m" 2>>"$work/$who.log" &
	fs_pid[$who]=$!
	for i in $(seq 1 200); do
		mountpoint -q "$m" && return 0
		kill -0 "${fs_pid[$who]}" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
# fails_with MSG CMD...: CMD fails and its stderr says MSG (the errno's text).
fails_with() {
	local want=$1; shift
	if "$@" >/dev/null 2>"$work/err"; then return 1; fi
	grep -q "$want" "$work/err" || { echo "  (got: $(cat "$work/err"))"; return 1; }
}
NOKEY="Required key not available"
# backing files (names only: contents are SEfile files) whose header names key $1
files_under_key() { find "$back" -type f ! -name '.*' ! -name '*.name' -print0 | xargs -0 -r "$bin/sefile" ls 2>/dev/null | grep -c "  key $1  "; }

# ---- the admin: Figure 4.4 plus a group of all three ----
for c in admin alice bob eve; do
	"$S" create "$work/$c.cube" >/dev/null &&
		"$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null ||
		bad "cube $c"
done
check "sekey init" admin init
for who in alice bob eve; do
	check "user add $who" admin user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin"
done
for g in group1 group2 all; do check "group add $g" admin group add "$g"; done
for m in "group1 alice" "group1 bob" "group2 bob" "group2 eve" "all alice" "all bob" "all eve"; do
	check "add-member $m" admin group add-member $m
done
declare -A key
for g in group1 group2 all; do
	admin --json key add "$g" && key[$g]=$(keyof) && admin key activate "${key[$g]}" || bad "key for $g"
done

# ---- Alice initialises the share for everybody; three mounts ----
check "init --group all" "$bin/sekeyfs" --init --device "$work/alice.cube" --pin-file "$work/user.pin" \
	--updates "$U" --group all "$back"
check "init refuses --recipients without --updates" bash -c "! '$bin/sekeyfs' --init --key 1 --recipients bob --device '$work/alice.cube' --pin-file '$work/user.pin' '$work' 2>/dev/null"
for who in alice bob eve; do check "mount as $who" mount_as "$who" || { echo "$(cat "$work/$who.log")"; exit 1; }; done
MA="$work/alice.mnt"; MB="$work/bob.mnt"; ME="$work/eve.mnt"
check "root recipients" test "$(getfattr --only-values -n user.sekey.group "$MA" 2>/dev/null)" = all

# ---- Alice shares ab with group1 ----
mkdir "$MA/ab" && check "setfattr group1" setfattr -n user.sekey.group -v group1 "$MA/ab"
check "getfattr group1" test "$(getfattr --only-values -n user.sekey.group "$MA/ab" 2>/dev/null)" = group1
echo "the plan" >"$MA/ab/plan.txt" || bad "write ab/plan.txt"
mkdir "$MA/ab/sub" && echo deep >"$MA/ab/sub/deep.txt" || bad "write ab/sub/deep.txt"
check "subdirectory inherits" test "$(getfattr --only-values -n user.sekey.group "$MA/ab/sub" 2>/dev/null)" = group1
check "listxattr shows the recipients" bash -c "getfattr -d -m - '$MA/ab' 2>/dev/null | grep -q user.sekey.group"
check "ab/plan.txt under group1's key" test "$(files_under_key "${key[group1]}")" -ge 2
echo "for all" >"$MA/hello.txt" || bad "write hello.txt"

sleep 1.2   # the other mounts' entry cache (1 s)
check "Bob lists ab" test "$(ls "$MB/ab" | tr '\n' ' ')" = "plan.txt sub "
check "Bob reads ab/plan.txt" grep -qx "the plan" "$MB/ab/plan.txt"
check "Bob reads ab/sub/deep.txt" grep -qx deep "$MB/ab/sub/deep.txt"
check "Eve sees the root's names" test "$(ls "$ME" | tr '\n' ' ')" = "ab hello.txt "
check "Eve reads hello.txt" grep -qx "for all" "$ME/hello.txt"
check "Eve cannot list ab (ENOKEY)" fails_with "$NOKEY" ls "$ME/ab"
check "Eve cannot open ab/plan.txt (ENOKEY)" fails_with "$NOKEY" cat "$ME/ab/plan.txt"
check "Eve cannot read ab's recipients" fails_with "$NOKEY" getfattr -n user.sekey.group "$ME/ab"
check "Eve cannot create in ab" fails_with "$NOKEY" touch "$ME/ab/eve.txt"

# ---- recipients no group holds: ENOKEY, nothing changes ----
mkdir "$MA/ae"
check "unknown user: ENOKEY" fails_with "$NOKEY" setfattr -n user.sekey.recipients -v alice,mallory "$MA/ae"
check "no recipients recorded" fails_with "No such attribute" getfattr -n user.sekey.recipients "$MA/ae"
check "reason in the log" grep -q "user mallory shares no group with alice" "$work/alice.log"
check "not my group: ENOKEY" fails_with "$NOKEY" setfattr -n user.sekey.group -v group2 "$MA/ae"
check "bad recipients: EINVAL" fails_with "Invalid argument" setfattr -n user.sekey.recipients -v "a,,b" "$MA/ae"
check "other user.sekey.* refused" fails_with "Operation not permitted" setfattr -n user.sekey.other -v x "$MA/ae"

# ---- Bob shares be with Eve by user list ----
mkdir "$MB/be" && check "setfattr bob,eve" setfattr -n user.sekey.recipients -v bob,eve "$MB/be"
check "getfattr bob,eve" test "$(getfattr --only-values -n user.sekey.recipients "$MB/be" 2>/dev/null)" = "bob,eve"
echo "b to e" >"$MB/be/note" || bad "write be/note"
check "be/note under group2's key" test "$(files_under_key "${key[group2]}")" -eq 1
sleep 1.2
check "Eve reads be/note" grep -qx "b to e" "$ME/be/note"
check "Alice cannot list be" fails_with "$NOKEY" ls "$MA/be"

# ---- new recipients for a non-empty directory: its names move ----
mkdir "$MA/mv" && for i in 1 2 3; do echo "mv $i" >"$MA/mv/f$i"; done
mkdir "$MA/mv/d" && echo inner >"$MA/mv/d/x"
sleep 1.2
check "Eve lists mv before" test "$(ls "$ME/mv" | wc -l)" -eq 4
check "mv -> group1 moves the names" setfattr -n user.sekey.group -v group1 "$MA/mv"
check "mv lists the same" test "$(ls "$MA/mv" | tr '\n' ' ')" = "d f1 f2 f3 "
check "mv/f2 reads" grep -qx "mv 2" "$MA/mv/f2"
check "mv/d/x reads" grep -qx inner "$MA/mv/d/x"
sleep 1.2
check "Bob lists mv" test "$(ls "$MB/mv" | tr '\n' ' ')" = "d f1 f2 f3 "
check "Eve cannot list mv any more" fails_with "$NOKEY" ls "$ME/mv"
check "same key for a non-empty directory" setfattr -n user.sekey.recipients -v alice,bob "$MA/ab"
check "ab now alice,bob" test "$(getfattr --only-values -n user.sekey.recipients "$MA/ab" 2>/dev/null)" = "alice,bob"

# ---- renames and links keep a file readable by exactly its recipients ----
mv "$MA/ab/plan.txt" "$MA/plan-moved.txt" || bad "rename ab/plan.txt to the root"
ln "$MA/plan-moved.txt" "$MA/plan-link.txt" || bad "hard link"
sleep 1.2
check "Alice reads the moved file" grep -qx "the plan" "$MA/plan-moved.txt"
check "Bob reads the moved file" grep -qx "the plan" "$MB/plan-moved.txt"
check "Bob reads the link" grep -qx "the plan" "$MB/plan-link.txt"
check "Eve sees its name in the root" bash -c "ls '$ME' | grep -qx plan-moved.txt"
check "Eve still cannot read it (ENOKEY)" fails_with "$NOKEY" cat "$ME/plan-moved.txt"
mv "$MA/plan-moved.txt" "$MA/ab/plan.txt" && rm "$MA/plan-link.txt" || bad "move back"

# ---- rotation of group1's key, then --rekey of the stale files ----
mkdir "$MA/big" && setfattr -n user.sekey.group -v group1 "$MA/big" &&
	for i in $(seq 1 300); do echo "$i" >"$MA/big/file-$i"; done || bad "make big"
admin --json key add group1 && key[group1b]=$(keyof) || bad "key add group1"
check "activate the new key" admin key activate "${key[group1b]}"
check "deactivate the old key" admin key set-state "${key[group1]}" deactivated
sleep 3     # every mount polls the updates folder each second
check "old files are on the old key" test "$(files_under_key "${key[group1]}")" -eq 302
check "old name key: names still resolve" grep -qx "the plan" "$MA/ab/plan.txt"
check "a new name moves ab's names to the new key" touch "$MA/ab/early"
check "the move is logged" grep -q "moving the names of a directory from key ${key[group1]} to ${key[group1b]}" "$work/alice.log"
check "ab lists after the move" test "$(ls "$MA/ab" | tr '\n' ' ')" = "early plan.txt sub "
rm "$MA/ab/early" || bad "rm ab/early"
"$bin/sekeyfs" --rekey --device "$work/alice.cube" --pin-file "$work/user.pin" --updates "$U" \
	"$back" ab >"$work/rekey.out" 2>"$work/rekey.err"
check "rekey exit 0" test $? -eq 0
check "rekey re-encrypted 2 files" grep -q "rekey: 2 file(s) re-encrypted, 0 failed" "$work/rekey.out"
check "rekey moved the names of ab/sub" grep -q "names of 1 directory moved" "$work/rekey.err"
check "no stale file in ab" test "$(files_under_key "${key[group1b]}")" -eq 2
# a rekey killed (-9) while it moves names and contents: every name and
# byte stays readable; the next rekey finishes
# big's backing directory: the one with the most entries; step 1 of the
# move replaces its header (a new inode): kill right after, during the moves
bigdir=$(for d in "$back"/*/; do echo "$(ls "$d" | wc -l) $d"; done | sort -n | tail -1 | cut -d' ' -f2)
hino=$(stat -c %i "$bigdir/.sekeydir")
ls "$bigdir" | sort >"$work/big.before"
"$bin/sekeyfs" --rekey --device "$work/alice.cube" --pin-file "$work/user.pin" --updates "$U" \
	"$back" big >/dev/null 2>&1 &
rk=$!
for _ in $(seq 1 400); do [ "$(stat -c %i "$bigdir/.sekeydir" 2>/dev/null)" != "$hino" ] && break; sleep 0.005; done
kill -9 "$rk" 2>/dev/null; wait "$rk" 2>/dev/null
moved=$(ls "$bigdir" | sort | comm -13 "$work/big.before" - | wc -l)
echo "  (rekey killed with $moved of big's 300 names moved, $(files_under_key "${key[group1]}") files on the old key)"
sleep 1.2
check "after kill -9: 300 names" test "$(ls "$MA/big" | wc -l)" -eq 300
check "after kill -9: contents" test "$(cat "$MA/big/file-1" "$MA/big/file-150" "$MA/big/file-300" | tr '\n' ' ')" = "1 150 300 "
check "the rekey after it finishes" bash -c "'$bin/sekeyfs' --rekey --device '$work/alice.cube' --pin-file '$work/user.pin' --updates '$U' '$back' big 2>/dev/null | grep -q ', 0 failed'"
check "big: nothing stale left" bash -c "'$bin/sekeyfs' --rekey --device '$work/alice.cube' --pin-file '$work/user.pin' --updates '$U' '$back' big 2>&1 | grep -q 'rekey: 0 file'"
sleep 1.2
check "big: 300 names" test "$(ls "$MA/big" | wc -l)" -eq 300
check "big: every file reads" test "$(cat "$MA"/big/file-* | sort -n | tail -1)" = 300
check "Bob reads big" grep -qx 77 "$MB/big/file-77"
"$bin/sekeyfs" --rekey --device "$work/alice.cube" --pin-file "$work/user.pin" --updates "$U" "$back" >"$work/rekey.out" 2>&1
check "whole-share rekey re-encrypts mv's 3 files" grep -q "rekey: 3 file" "$work/rekey.out" || cat "$work/rekey.out"
check "mv/d kept its own recipients" test "$(getfattr --only-values -n user.sekey.group "$MA/mv/d" 2>/dev/null)" = all
sleep 1.2
check "a new name after rekey" touch "$MA/ab/in-time"
check "Bob sees it" bash -c "sleep 1.2; ls '$MB/ab' | grep -qx in-time"
rm -f "$MA/ab/in-time"
sleep 1.2
check "Alice reads the re-encrypted file" grep -qx "the plan" "$MA/ab/plan.txt"
check "Bob reads it (new key through his updates)" grep -qx deep "$MB/ab/sub/deep.txt"
check "Bob reads plan.txt" grep -qx "the plan" "$MB/ab/plan.txt"
check "Bob lists ab" test "$(ls "$MB/ab" | wc -l)" -eq 2
"$bin/sekeyfs" --rekey --device "$work/alice.cube" --pin-file "$work/user.pin" --updates "$U" \
	"$back" ab >"$work/rekey.out" 2>&1
check "second rekey has nothing to do" grep -q "rekey: 0 file(s) re-encrypted" "$work/rekey.out"

# ---- live update: Bob leaves group1 while his mount runs ----
check "remove bob from group1" admin group remove-member group1 bob
sleep 3
echo "after bob" >"$MA/mv/after.txt" || bad "write mv/after.txt"
check "mv's names moved to the rotated key" grep -q "moving the names of a directory from key ${key[group1b]}" "$work/alice.log"
sleep 1.2
check "Bob cannot read a file made after he left (ENOKEY)" fails_with "$NOKEY" cat "$MB/mv/after.txt"
check "Alice reads it" grep -qx "after bob" "$MA/mv/after.txt"
check "Bob still reads ab/sub/deep.txt (a key he has)" grep -qx deep "$MB/ab/sub/deep.txt"

# ---- key life cycle: compromised still decrypts (warned), destroyed does not ----
check "group2's key compromised" admin key set-state "${key[group2]}" compromised
sleep 3
check "a compromised key still decrypts" grep -qx "b to e" "$ME/be/note"
check "with a warning" grep -q "key ${key[group2]} is compromised" "$work/eve.log"
check "group2's key destroyed" admin key set-state "${key[group2]}" destroyed
sleep 3
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
check "a destroyed key's file: ENOKEY" fails_with "$NOKEY" cat "$ME/be/note"
check "the reason is logged" grep -q "was destroyed\|not in this cube" "$work/eve.log"

# ---- {alice,eve}: the only group holding both is "all"; once its key is
# retired, SEkey has no key for them and never picks a wider group ----
check "retire the root's key" admin key set-state "${key[all]}" deactivated
sleep 3
check "{alice,eve}: ENOKEY" fails_with "$NOKEY" setfattr -n user.sekey.recipients -v alice,eve "$MA/ae"
check "reason in the log" grep -q "no key for recipients alice,eve" "$work/alice.log"
check "ae keeps its recipients" test "$(getfattr --only-values -n user.sekey.group "$MA/ae" 2>/dev/null)" = all
check "no new file in the root (ENOKEY)" fails_with "$NOKEY" touch "$MA/new-in-root"
check "the root's names still resolve" grep -qx "for all" "$MB/hello.txt"
check "the deactivated root still reads" grep -qx "for all" "$ME/hello.txt"

for who in alice bob eve; do
	fusermount3 -u "$work/$who.mnt" || bad "unmount $who"
	wait "${fs_pid[$who]}" 2>/dev/null
	unset "fs_pid[$who]"
done
check "no plaintext in BACKING" bash -c "! grep -rqa -e 'the plan' -e 'b to e' -e 'group1' '$back'"
echo "fs_sharing: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
