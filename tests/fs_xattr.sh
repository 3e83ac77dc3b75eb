#!/usr/bin/env bash
# fs_xattr.sh - user xattrs through a real mount: set/get/list/remove on a
# file and a directory, create/replace flags, the longest name that can
# be encrypted; BACKING holds neither the plaintext names nor the values
# (getfattr -d -m - -e hex on the backing objects); a value written in the
# old layout (clear name) still reads, is listed, and moves to an
# encrypted name on its next write; a name or value moved to another
# object or name in BACKING is not accepted.  Then, with SEkey sharing
# (admin, Alice, Bob, Eve on one BACKING): values are sealed under the
# object's own key (a file's SEfile key, a directory's name key), so Bob
# (who can read the file) reads its xattrs and Eve (who can see its name
# but not read it) gets ENOKEY; and after a key rotation the file's
# xattrs follow it through `sekeyfs --rekey`.  Every mount, daemon and
# emulator is stopped by PID on the way out (fs_lib.sh's trap and ours).
set -u
. "$(dirname "$0")/fs_lib.sh"

NOKEY="Required key not available"
fails_with() {
	local want=$1; shift
	if "$@" >/dev/null 2>"$work/err"; then return 1; fi
	grep -q "$want" "$work/err" || { echo "  (got: $(cat "$work/err"))"; return 1; }
}
# the backing entry that appeared in directory $1 since listing $2 was taken
new_entry() { comm -13 "$2" <(ls -A "$1" | sort) | grep -v '\.name$' | head -n 1; }
# a u32 as the 8 hex digits of its little-endian bytes
le32() { printf '%08x' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/'; }
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
# every backing xattr (names and hex values) of $1
backing_dump() { getfattr -d -m - -e hex "$1" 2>/dev/null; }
# the hex value of backing name $2 on $1
val_of() { backing_dump "$1" | awk -F= -v n="$2" '$1 == n { print $2 }'; }
# the encrypted backing name on $1 whose hex value is $2..$3 characters long
enc_by_len() { backing_dump "$1" | grep '^user\.sekeyfs\.' | awk -F= -v lo="$2" -v hi="$3" 'length($2) > lo && length($2) < hi { print $1; exit }'; }

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { cat "$work/sekeyfs.log"; exit 1; }

ls -A "$back" | sort >"$work/before"
echo contents >"$mnt/f"
bf="$back/$(new_entry "$back" "$work/before")"
ls -A "$back" | sort >"$work/before"
mkdir "$mnt/d"
bd="$back/$(new_entry "$back" "$work/before")"
ls -A "$back" | sort >"$work/before"
echo other >"$mnt/g"
bg="$back/$(new_entry "$back" "$work/before")"
check "backing objects found" test -f "$bf" -a -d "$bd" -a -f "$bg"

# ---- the operations ----
secret="blue-secret-value-42"
check "setfattr on a file" setfattr -n user.color -v "$secret" "$mnt/f"
check "getfattr reads it" test "$(getfattr --only-values -n user.color "$mnt/f" 2>/dev/null)" = "$secret"
check "setfattr on a directory" setfattr -n user.dirnote -v "dir-secret-77" "$mnt/d"
check "getfattr on the directory" test "$(getfattr --only-values -n user.dirnote "$mnt/d" 2>/dev/null)" = "dir-secret-77"
check "setfattr an empty value" setfattr -n user.empty -v "" "$mnt/f"
check "the empty value reads empty" test "$(getfattr --only-values -n user.empty "$mnt/f" 2>/dev/null | wc -c)" -eq 0
big=$(head -c 3000 /dev/zero | tr '\0' 'x')
check "a 3000-byte value (3 chunks)" setfattr -n user.big -v "$big" "$mnt/f"
check "reads back whole" test "$(getfattr --only-values -n user.big "$mnt/f" 2>/dev/null)" = "$big"
check "listxattr names them" test "$(getfattr -m - --absolute-names "$mnt/f" 2>/dev/null | grep '^user' | sort | tr '\n' ' ')" = "user.big user.color user.empty "
check "a missing name: ENODATA" fails_with "No such attribute" getfattr -n user.nope "$mnt/f"
check "XATTR_CREATE of an existing name: EEXIST" python3 -c "
import os, sys, errno
try:
    os.setxattr('$mnt/f', 'user.color', b'x', os.XATTR_CREATE)
except OSError as e:
    sys.exit(0 if e.errno == errno.EEXIST else 1)
sys.exit(1)"
check "XATTR_REPLACE of a missing name: ENODATA" python3 -c "
import os, sys, errno
try:
    os.setxattr('$mnt/f', 'user.none', b'x', os.XATTR_REPLACE)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENODATA else 1)
sys.exit(1)"
check "XATTR_REPLACE of an existing name" python3 -c "import os; os.setxattr('$mnt/f', 'user.color', b'green', os.XATTR_REPLACE)"
check "replaced" test "$(getfattr --only-values -n user.color "$mnt/f" 2>/dev/null)" = green
setfattr -n user.color -v "$secret" "$mnt/f" || bad "set color again"
long161="user.$(head -c 161 /dev/zero | tr '\0' 'n')"
long162="user.$(head -c 162 /dev/zero | tr '\0' 'n')"
check "a 166-byte name (the longest)" setfattr -n "$long161" -v v "$mnt/g"
check "reads back" test "$(getfattr --only-values -n "$long161" "$mnt/g" 2>/dev/null)" = v
check "a 167-byte name: ERANGE" fails_with "Numerical result out of range" setfattr -n "$long162" -v v "$mnt/g"
check "removexattr" setfattr -x "$long161" "$mnt/g"
check "removed: ENODATA" fails_with "No such attribute" getfattr -n "$long161" "$mnt/g"
check "removexattr of a missing name: ENODATA" fails_with "No such attribute" setfattr -x user.nope "$mnt/g"
check "other namespaces: not supported" fails_with "Operation not supported" setfattr -n trusted.x -v 1 "$mnt/f"

# ---- what BACKING holds ----
backing_dump "$bf" >"$work/bf.dump"; backing_dump "$bd" >"$work/bd.dump"
check "backing file has 3 encrypted names" test "$(grep -c '^user\.sekeyfs\.' "$work/bf.dump")" -eq 3
check "no plaintext name in BACKING (file)" bash -c "! grep -q -e color -e empty -e '^user.big' '$work/bf.dump'"
check "no plaintext value in BACKING (file)" bash -c "! grep -q -e '$(hex "$secret")' -e '$(hex xxxxxxxxxxxxxxxx)' '$work/bf.dump'"
check "no plaintext name in BACKING (dir)" bash -c "! grep -q dirnote '$work/bd.dump' && grep -q '^user\.sekeyfs\.' '$work/bd.dump'"
check "no plaintext value in BACKING (dir)" bash -c "! grep -q '$(hex dir-secret-77)' '$work/bd.dump'"
check "values name their key (SKX1, key 1)" bash -c "grep '^user\.sekeyfs\.' '$work/bf.dump' | grep -q '=0x534b583101000000'"

# ---- a name or value moved in BACKING ----
enc_color=$(enc_by_len "$bf" 100 200)
val_color=$(val_of "$bf" "$enc_color")
setfattr -n "$enc_color" -v "$val_color" "$bg" || bad "copy to g in BACKING"
check "a name copied to another file is not listed there" bash -c "! getfattr -d '$mnt/g' 2>/dev/null | grep -q color"
check "nor read there" fails_with "No such attribute" getfattr -n user.color "$mnt/g"
check "the skip is logged" grep -q "does not decrypt" "$work/sekeyfs.log"
enc_empty=$(enc_by_len "$bf" 0 100)
val_empty=$(val_of "$bf" "$enc_empty")
setfattr -n "$enc_empty" -v "$val_color" "$bf" || bad "swap values in BACKING"
check "a value moved to another name: EIO" fails_with "Input/output error" getfattr -n user.empty "$mnt/f"
setfattr -n "$enc_empty" -v "$val_empty" "$bf" || bad "restore"
check "restored value reads" test "$(getfattr --only-values -n user.empty "$mnt/f" 2>/dev/null | wc -c)" -eq 0

# ---- the old layout: clear name, value naming its key ----
setfattr -n user.legacy -v "$val_color" "$bf" || bad "plant a clear-named value"
# the value is bound to its plaintext name: an old value of user.legacy
# would carry that name in its AD, so only the binding is tested here
check "an old value under another name: EIO" fails_with "Input/output error" getfattr -n user.legacy "$mnt/f"
setfattr -x user.legacy "$bf"
setfattr -n user.color -v "$val_color" "$bf" || bad "plant user.color in the old layout"
setfattr -x "$enc_color" "$bf" || bad "drop the encrypted copy"
check "an old-layout value reads" test "$(getfattr --only-values -n user.color "$mnt/f" 2>/dev/null)" = "$secret"
check "and is listed once" test "$(getfattr -d "$mnt/f" 2>/dev/null | grep -c '^user.color=')" -eq 1
check "rewriting it" setfattr -n user.color -v "new-$secret" "$mnt/f"
check "moves it to an encrypted name" bash -c "! getfattr -d -m - '$bf' 2>/dev/null | grep -q '^user.color'"
check "which reads" test "$(getfattr --only-values -n user.color "$mnt/f" 2>/dev/null)" = "new-$secret"
check "removexattr" setfattr -x user.color "$mnt/f"
check "leaves no copy" test "$(backing_dump "$bf" | grep -c '^user\.')" -eq 2

check "attributes survive a remount" bash -c "fusermount3 -u '$mnt'"
wait "$fs_pid" 2>/dev/null
check "remount" fs_mount
check "file attribute after remount" test "$(getfattr --only-values -n user.big "$mnt/f" 2>/dev/null)" = "$big"
check "directory attribute after remount" test "$(getfattr --only-values -n user.dirnote "$mnt/d" 2>/dev/null)" = "dir-secret-77"
check "a renamed file keeps them" bash -c "mv '$mnt/f' '$mnt/d/f2' && test \"\$(getfattr --only-values -n user.big '$mnt/d/f2' 2>/dev/null)\" = '$big'"
check "unmount" fs_umount

# ---- sharing: the object's own key ----
S="$bin/secube"; K="$bin/sekey"; U="$work/updates"; back2="$work/back2"
mkdir -p "$U" "$back2"
A=(--device "$work/admin.cube" --updates "$U" --pin-file "$work/admin.pin")
admin() { "$K" "${A[@]}" "$@" >"$work/admin.out" 2>&1 || { echo "admin $*: $(cat "$work/admin.out")"; return 1; }; }
keyof() { sed -n 's/.*"key":\([0-9]*\).*/\1/p' "$work/admin.out"; }
declare -A upid
umount_all() {
	local who
	for who in alice bob eve; do
		mountpoint -q "$work/$who.mnt" 2>/dev/null &&
			{ fusermount3 -u "$work/$who.mnt" 2>/dev/null || fusermount3 -uz "$work/$who.mnt" 2>/dev/null; }
	done
	for who in "${!upid[@]}"; do kill "${upid[$who]}" 2>/dev/null; done
	for who in "${!upid[@]}"; do wait "${upid[$who]}" 2>/dev/null; done
	for c in "$work"/*.cube; do
		[ -f "$c/secube-emu.pid" ] && kill "$(cat "$c/secube-emu.pid")" 2>/dev/null
	done
	fs_cleanup
}
trap umount_all EXIT
mount_as() {
	local who=$1 m="$work/$1.mnt" i
	mkdir -p "$m"
	"$bin/sekeyfs" -f --device "$work/$who.cube" --pin-file "$work/user.pin" --updates "$U" \
		--sync-interval 1 "$back2" "$m" 2>>"$work/$who.log" &
	upid[$who]=$!
	for i in $(seq 1 200); do
		mountpoint -q "$m" && return 0
		kill -0 "${upid[$who]}" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
for c in admin alice bob eve; do
	"$S" create "$work/$c.cube" >/dev/null &&
		"$S" init "$work/$c.cube" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null ||
		bad "cube $c"
done
check "sekey init" admin init
for who in alice bob eve; do
	check "user add $who" admin user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin"
done
for g in group1 all; do check "group add $g" admin group add "$g"; done
for m in "group1 alice" "group1 bob" "all alice" "all bob" "all eve"; do
	check "add-member $m" admin group add-member $m
done
declare -A key
for g in group1 all; do
	admin --json key add "$g" && key[$g]=$(keyof) && admin key activate "${key[$g]}" || bad "key for $g"
done
check "init --group all" "$bin/sekeyfs" --init --device "$work/alice.cube" --pin-file "$work/user.pin" \
	--updates "$U" --group all "$back2"
for who in alice bob eve; do check "mount as $who" mount_as "$who" || { cat "$work/$who.log"; exit 1; }; done
MA="$work/alice.mnt"; MB="$work/bob.mnt"; ME="$work/eve.mnt"

mkdir "$MA/ab" && check "ab shared with group1" setfattr -n user.sekey.group -v group1 "$MA/ab"
echo plan >"$MA/ab/plan.txt" || bad "write ab/plan.txt"
check "xattr on a group1 file" setfattr -n user.owner -v "alice-only-and-bob" "$MA/ab/plan.txt"
check "xattr on the group1 directory" setfattr -n user.topic -v "project-x" "$MA/ab"
pb=$(find "$back2" -mindepth 2 -type f ! -name '.*' ! -name '*.name' | head -n 1)
check "the file's value is sealed under group1's key" bash -c "getfattr --absolute-names -d -m - -e hex '$pb' | grep '^user\.sekeyfs\.' | grep -q '=0x534b5831$(le32 "${key[group1]}")'"
mv "$MA/ab/plan.txt" "$MA/plan.txt" || bad "move plan.txt to the root (names: all)"
sleep 1.2
check "Bob reads the file's xattr" test "$(getfattr --only-values -n user.owner "$MB/plan.txt" 2>/dev/null)" = "alice-only-and-bob"
check "Bob lists it" bash -c "getfattr -d '$MB/plan.txt' 2>/dev/null | grep -q '^user.owner='"
check "Bob reads the directory's xattr" test "$(getfattr --only-values -n user.topic "$MB/ab" 2>/dev/null)" = "project-x"
check "Eve sees the file's name" bash -c "ls '$ME' | grep -qx plan.txt"
check "Eve cannot read its xattr (ENOKEY)" fails_with "$NOKEY" getfattr -n user.owner "$ME/plan.txt"
check "Eve cannot list its xattrs (ENOKEY)" fails_with "$NOKEY" getfattr -d "$ME/plan.txt"
check "Eve cannot read the directory's xattr (ENOKEY)" fails_with "$NOKEY" getfattr -n user.topic "$ME/ab"
check "Eve cannot set one (ENOKEY)" fails_with "$NOKEY" setfattr -n user.eve -v x "$ME/plan.txt"
mv "$MA/plan.txt" "$MA/ab/plan.txt" || bad "move back"

# ---- rotation: the directory's names move, its xattrs still read; the
# file's xattrs follow the file through --rekey ----
admin --json key add group1 && key[group1b]=$(keyof) || bad "key add group1"
check "activate the new key" admin key activate "${key[group1b]}"
check "deactivate the old key" admin key set-state "${key[group1]}" deactivated
sleep 3
check "a new name moves ab's names to the new key" touch "$MA/ab/early"
check "ab's xattr still reads (old key in its name)" test "$(getfattr --only-values -n user.topic "$MA/ab" 2>/dev/null)" = "project-x"
check "moving ab's names re-sealed its xattrs under the new key" bash -c "getfattr --absolute-names -d -m - -e hex \"\$(find '$back2' -mindepth 1 -maxdepth 1 -type d)\" | grep '^user\.sekeyfs\.' | grep -q '=0x534b5831$(le32 "${key[group1b]}")'"
check "rewriting it uses the new key" setfattr -n user.topic -v "project-y" "$MA/ab"
check "and reads" test "$(getfattr --only-values -n user.topic "$MA/ab" 2>/dev/null)" = "project-y"
check "listed once" test "$(getfattr -d "$MA/ab" 2>/dev/null | grep -c '^user.topic=')" -eq 1
check "the file's xattr reads before the rekey" test "$(getfattr --only-values -n user.owner "$MA/ab/plan.txt" 2>/dev/null)" = "alice-only-and-bob"
"$bin/sekeyfs" --rekey --device "$work/alice.cube" --pin-file "$work/user.pin" --updates "$U" \
		"$back2" ab >"$work/rekey.out" 2>&1
check "rekey exit 0" test $? -eq 0
sleep 1.2
check "after the rekey the file's xattr reads" test "$(getfattr --only-values -n user.owner "$MA/ab/plan.txt" 2>/dev/null)" = "alice-only-and-bob"
check "and is sealed under the new key" bash -c "getfattr -d -m - -e hex '$back2'/*/* 2>/dev/null | grep -q '=0x534b5831$(le32 "${key[group1b]}")'"
check "Bob reads it after the rekey" test "$(getfattr --only-values -n user.owner "$MB/ab/plan.txt" 2>/dev/null)" = "alice-only-and-bob"
fs_summary
