#!/usr/bin/env bash
# robust_sekey_crash.sh - kill -9 of `sekey` at random moments, admin and
# user, mid-update.  One admin cube and two user cubes (alice, bob) on
# emulators; each iteration (ROBUST_SEKEY_CRASH_ITER, else
# ROBUST_CRASH_ITER, default 50):
#   1. the admin runs one change that writes update files (group add,
#      add-member, key add, key activate, remove-member with rotation, alice
#      leaving a group) and is killed 0..W ms into it, W starting at 1.3
#      times the median length of such commands (and a sync) measured at
#      the start, then narrowed after a command that finished before the
#      kill and widened after a kill, as the machine's load changes (so
#      kills land anywhere from the login to after the commit, about two
#      in three inside the command); then the same change
#      is settled without a kill (run again: it must succeed or say it was
#      already done), so every later step starts from a known state and the
#      admin's KMS is proven usable after the crash;
#   2. alice's `sekey sync` is killed 0..W ms into it; `sekey status` must
#      then work (not damaged, not locked); every 5th iteration she syncs
#      to the end (exit 0).
# At the end alice syncs cleanly and tests/robust_sekey_db.c (compiled
# here) opens both databases as sekey does and checks: PRAGMA
# integrity_check is ok for the admin's and alice's; alice's view (users
# sharing a group, her groups with their members, their keys not
# destroyed) is the same in both databases, so no update was lost or
# applied twice; keys of groups she left are only decrypt-only in her DB;
# her update files are numbered 1..N without a gap; every file the admin's
# kms_updates records exists, and a file it does not record (published by a
# change that then rolled back) is followed by a recovery update; her next
# counter is N + 1, no failures, not locked; `sekey audit --verify` passes.
# A key left in the admin cube by a killed change must never block a later
# key (settle()).  Every emulator is killed by PID on exit.
set -u
BUILD=${BUILD:-build}
ITER=${ROBUST_SEKEY_CRASH_ITER:-${ROBUST_CRASH_ITER:-50}}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
# On tmpfs when there is one: a kill -9 tests the process, not the disk,
# and the KMS's syncfs of a busy shared disk can take seconds.
work=$(mktemp -d "${FS_TMP:-/dev/shm}/robust-sekey-crash.XXXXXX" 2>/dev/null ||
	mktemp -d /tmp/robust-sekey-crash.XXXXXX)
victim=""
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
cleanup() {
	[ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
	for d in "$work"/*.cube; do
		[ -f "$d/secube-emu.pid" ] && kill -KILL "$(cat "$d/secube-emu.pid")" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
finish() { echo "robust_sekey_crash: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

S="$bin/secube"; K="$bin/sekey"; U="$work/updates"
mkdir -p "$U"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
for c in admin alice bob; do
	"$S" create "$work/$c.cube" >/dev/null && "$S" init "$work/$c.cube" --admin-pin-file \
		"$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null || { bad "make cube $c"; finish; }
done
A=(--device "$work/admin.cube" --updates "$U" --pin-file "$work/admin.pin")
AL=(--device "$work/alice.cube" --updates "$U" --pin-file "$work/user.pin")
db="$work/robust_sekey_db"
if ! ${TEST_CC:-cc} ${TEST_CFLAGS:-} -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -O2 -I"$root" \
	"$root/tests/robust_sekey_db.c" "$root/$BUILD/libsefile.a" "$root/$BUILD/libcube.a" \
	"$root/$BUILD/libfirmware.a" "$root/$BUILD/libwire.a" \
	$(pkg-config --libs libcrypto libxxhash libusb-1.0 sqlite3) -lpthread -o "$db"; then
	bad "cannot build tests/robust_sekey_db.c"; finish
fi

# Run a command, remember its length in ms (the kill window is based on
# the median: one slow outlier on a loaded machine must not make most
# kills land after the end).
lengths=()
timed() {
	local t0 t1 rc
	t0=$(date +%s%N)
	"$@" >"$work/out" 2>"$work/err"
	rc=$?
	t1=$(date +%s%N)
	lengths+=($(((t1 - t0) / 1000000)))
	return $rc
}
"$K" "${A[@]}" init >/dev/null 2>"$work/err" || { bad "init: $(cat "$work/err")"; finish; }
for who in alice bob; do
	"$K" "${A[@]}" user add "$who" --device "$work/$who.cube" --peer-pin-file "$work/admin.pin" \
		>/dev/null 2>"$work/err" || { bad "user add $who: $(cat "$work/err")"; finish; }
done
timed "$K" "${A[@]}" group add g0 && timed "$K" "${A[@]}" group add-member g0 alice &&
	timed "$K" "${A[@]}" key add g0 && timed "$K" "${A[@]}" group add-member g0 bob &&
	timed "$K" "${AL[@]}" sync || { bad "set-up: $(cat "$work/err")"; finish; }
median=$(printf '%s\n' "${lengths[@]}" | sort -n | sed -n "$(((${#lengths[@]} + 1) / 2))p")
window=$((median * 13 / 10))
echo "changes and sync took ${lengths[*]} ms: kills land 0..$window ms into a command"

# Start "$@" in the background, kill -9 it after a random 0..window ms;
# returns 0 if it was killed, 1 if it had finished (its status in $done_rc).
killed=0; finished=0
kill_into() {
	local delay=$((RANDOM % (window + 1))) rc
	"$@" >"$work/out" 2>"$work/err" &
	victim=$!
	sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
	kill -KILL "$victim" 2>/dev/null
	{ wait "$victim"; } 2>/dev/null
	rc=$?
	victim=""
	# The machine's load changes: a command that finished before the kill
	# narrows the window by 10%, a kill widens it by 5%, so about two kills
	# in three land inside a command, wherever it is slow.
	if [ "$rc" -eq 137 ]; then
		killed=$((killed + 1))
		[ "$window" -lt $((median * 5)) ] && window=$((window * 105 / 100 + 1))
		return 0
	fi
	finished=$((finished + 1)); done_rc=$rc
	[ "$window" -gt $((median / 4)) ] && window=$((window * 90 / 100))
	return 1
}

# Run the admin change again without a kill: it must succeed, or refuse
# only because the killed run had done it (message matching $1).
# A kill after the admin cube generated a key but before the commit leaves
# the key in the cube under an ID the database hands out again: key
# creation must skip it (kms/keys.c), never fail "already exists".
orphan_keys=0
settle() {
	local already=$1; shift
	"$K" "${A[@]}" "$@" >"$work/out" 2>"$work/err"
	local rc=$?
	if grep -q "already exists (key" "$work/err"; then
		orphan_keys=$((orphan_keys + 1))
		bad "a key left in the admin cube by a killed change blocks $*: $(cat "$work/err")"
		return
	fi
	if [ "$rc" -eq 0 ] || { [ "$rc" -eq 1 ] && grep -qE "$already" "$work/err"; }; then
		ok
	else
		bad "settle '$*' after a kill: exit $rc: $(cat "$work/err")"
	fi
}

# The IDs of group $1's keys in state $2 (admin's list), one per line.
keys_of() {
	local gid
	"$K" "${A[@]}" --json group list >"$work/groups.json" 2>"$work/err" || { echo "ERR"; return; }
	"$K" "${A[@]}" --json key list >"$work/keys.json" 2>"$work/err" || { echo "ERR"; return; }
	python3 - "$work/groups.json" "$work/keys.json" "$1" "$2" <<'PY'
import json, sys
groups = json.load(open(sys.argv[1])); keys = json.load(open(sys.argv[2]))
gid = [g["id"] for g in groups if g["name"] == sys.argv[3]]
for k in keys:
    if gid and k["group"] == gid[0] and k["state"] == sys.argv[4]:
        print(k["id"])
PY
}

for i in $(seq 1 "$ITER"); do
	r=$(((i - 1) / 6 + 1)); step=$(((i - 1) % 6))
	case $step in
	0) kill_into "$K" "${A[@]}" group add "g$r"
	   settle "already" group add "g$r" ;;
	1) kill_into "$K" "${A[@]}" group add-member "g$r" alice
	   settle "already" group add-member "g$r" alice ;;
	2) kill_into "$K" "${A[@]}" group add-member "g$r" bob
	   settle "already" group add-member "g$r" bob ;;
	3) kill_into "$K" "${A[@]}" key add "g$r"
	   n=$(keys_of "g$r" pre-active)
	   if [ "$n" = ERR ]; then bad "key list after killing key add: $(cat "$work/err")"
	   elif [ -z "$n" ]; then settle "^$" key add "g$r"; else ok; fi ;;
	4) first=$(keys_of "g$r" pre-active | head -n 1)
	   if [ -z "$first" ] || [ "$first" = ERR ]; then bad "no pre-active key in g$r"; continue; fi
	   kill_into "$K" "${A[@]}" key activate "$first"
	   for id in $(keys_of "g$r" pre-active); do settle "^$" key activate "$id"; done ;;
	5) if [ $((r % 2)) -eq 1 ] || [ "$r" -lt 2 ]; then who=bob; g="g$r"; else who=alice; g="g$((r - 1))"; fi
	   kill_into "$K" "${A[@]}" group remove-member "$g" "$who"
	   settle "is not in group" group remove-member "$g" "$who" ;;
	esac
	if kill_into "$K" "${AL[@]}" sync; then :; elif [ "$done_rc" -ne 0 ]; then
		bad "iteration $i: alice's sync (not killed) failed: exit $done_rc: $(cat "$work/err")"
	fi
	check "iteration $i: alice's status after a killed sync: $(cat "$work/err")" \
		"$K" "${AL[@]}" status >/dev/null 2>"$work/err"
	if [ $((i % 5)) -eq 0 ]; then
		check "iteration $i: alice syncs to the end: $(cat "$work/err")" \
			"$K" "${AL[@]}" sync >/dev/null 2>"$work/err"
	fi
done
echo "sekey processes killed mid-command: $killed; finished before the kill: $finished; window now $window ms"
check "at least a quarter of the kills landed inside a command ($killed of $((killed + finished)))" \
	test "$killed" -ge $(((killed + finished) / 4))

# ---- the final state ----
# One last change that concerns alice, so an update file left by a change
# that rolled back (published, then the admin killed before its commit) is
# followed by the whole view (kms/updates.c emit_one).
settle "^$" key add g0
check "alice's final sync: $(cat "$work/err")" "$K" "${AL[@]}" sync >/dev/null 2>"$work/err"
check "admin audit chain: $(cat "$work/err")" "$K" "${A[@]}" audit --verify >/dev/null 2>"$work/err"
"$db" "$work/admin.cube" "$work/admin.pin" admin alice >"$work/admin.view" 2>"$work/err" ||
	bad "admin database: $(cat "$work/err") $(head -n 1 "$work/admin.view")"
"$db" "$work/alice.cube" "$work/user.pin" user alice >"$work/alice.view" 2>"$work/err" ||
	bad "alice's database: $(cat "$work/err") $(head -n 1 "$work/alice.view")"
check "admin integrity_check ok" grep -qx "integrity ok" "$work/admin.view"
check "alice integrity_check ok" grep -qx "integrity ok" "$work/alice.view"
grep -E '^(user|group|key) ' "$work/admin.view" >"$work/admin.cmp"
grep -E '^(user|group|key) ' "$work/alice.view" >"$work/alice.cmp"
if cmp -s "$work/admin.cmp" "$work/alice.cmp" && [ -s "$work/admin.cmp" ]; then
	ok
else
	bad "alice's view differs from the admin's: $(diff "$work/admin.cmp" "$work/alice.cmp")"
fi
check "keys of groups alice left are decrypt-only in her DB: $(grep '^other-key' "$work/alice.view")" \
	test -z "$(awk '$1 == "other-key" && $4 != 4 && $4 != 5' "$work/alice.view")"
serial=$(ls "$U" | while read -r d; do [ -e "$U/$d/ack" ] && echo "$d"; done | head -n 1)
files=$(ls "$U/$serial" | sed -n 's/^0*\([0-9][0-9]*\)\.upd$/\1/p' | sort -n | tr '\n' ',' | sed 's/,$//')
nfiles=$(ls "$U/$serial" | grep -c '\.upd$')
check "alice's update files are 1..$nfiles without a gap ($files)" test "$files" = "$(seq -s, 1 "$nfiles")"
# Files of alice the admin's DB does not record were published by changes
# that then rolled back; each must be followed by a recorded recovery
# (whole view) file, which supersedes whatever it said.
recorded=$(awk '$1 == "files" { print $2 }' "$work/admin.view")
orphans=$(python3 - "$files" "$recorded" <<'PY'
import sys
files = [int(x) for x in sys.argv[1].split(",") if x]
rec = dict(map(int, x.split(":")) for x in sys.argv[2].split(",") if x)
orphans = [f for f in files if f not in rec]
unhealed = [o for o in orphans if not any(c > o and k == 2 for c, k in rec.items())]
print(" ".join(map(str, orphans)) + ("" if not unhealed else " UNHEALED " + " ".join(map(str, unhealed))))
PY
)
echo "update files of rolled-back changes (not in the admin's DB): ${orphans:-none}"
check "each is followed by a recovery update ($orphans; recorded counter:kind $recorded)" \
	test "${orphans#*UNHEALED}" = "$orphans"
check "the admin's DB records no file that is missing (files $files, recorded $recorded)" \
	test -z "$(python3 -c 'import sys; f=set(sys.argv[1].split(",")); print(" ".join(x for x in sys.argv[2].split(",") if x and x.split(":")[0] not in f))' "$files" "$recorded")"
echo "key creations blocked by a key a killed change left in the cube: $orphan_keys"
state=$(awk '$1 == "state" { print $2, $4, $5 }' "$work/alice.view")
check "alice's next counter $((nfiles + 1)), no failures, unlocked (have: $state)" \
	test "$state" = "$((nfiles + 1)) 0 0"
echo "alice: $nfiles update files; view: $(grep -c '^key ' "$work/alice.view") keys, $(grep -c '^group ' "$work/alice.view") groups"
finish
