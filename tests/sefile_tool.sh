#!/usr/bin/env bash
# sefile_tool.sh - the `sefile` program end to end on an emulated cube:
# encrypt (file, stdin, both algorithms), decrypt, cat, ls (text, --json),
# verify of a tree before and after a bit flip (text, --json), rekey, the
# PIN from a file, an fd and SEFILE_PIN_FD, and every documented exit code.
# The emulator it starts is killed by PID on the way out.
set -u
BUILD=${BUILD:-build}
bin="$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin"
export SECUBE_EMU="$bin/secube-emu"
work=$(mktemp -d /tmp/sefile-tool.XXXXXX)
C="$work/c.cube"
cleanup() {
	[ -f "$C/secube-emu.pid" ] && kill "$(cat "$C/secube-emu.pid")" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect STATUS CMD...: run CMD, compare its exit status
expect() {
	local want=$1; shift
	"$@" >"$work/out" 2>"$work/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then ok; else bad "$* -> exit $got, want $want: $(cat "$work/err")"; fi
}
check() { if eval "$1"; then ok; else bad "$2"; fi; }

S="$bin/sefile"
printf 'admin-pin\n' >"$work/admin.pin"; printf 'user-pin\n' >"$work/user.pin"
printf 'wrong\n' >"$work/wrong.pin"
"$bin/secube" create "$C" >/dev/null || { echo "cannot create cube"; echo "0 passed, 1 failed"; exit 1; }
"$bin/secube" init "$C" --admin-pin-file "$work/admin.pin" --user-pin-file "$work/user.pin" >/dev/null
"$bin/secube" keygen "$C" --pin-file "$work/admin.pin" --id 10 --alg aes256-gcm --usage encrypt,decrypt >/dev/null
"$bin/secube" keygen "$C" --pin-file "$work/admin.pin" --id 11 --alg aes256-ctr-hmac --usage encrypt,decrypt >/dev/null
"$bin/secube" keygen "$C" --pin-file "$work/admin.pin" --id 12 --alg aes256-gcm --usage encrypt,decrypt >/dev/null
"$bin/secube" keygen "$C" --pin-file "$work/admin.pin" --id 13 --alg aes256-gcm --usage decrypt >/dev/null
U=(--device "$C" --pin-file "$work/user.pin")

# plain inputs: a marker, random bytes, an odd size, an empty file
mkdir -p "$work/plain" "$work/tree/sub"
{ for i in $(seq 1 2000); do echo "SECRET-MARKER line $i"; done; head -c 300001 /dev/urandom; } >"$work/plain/a"
: >"$work/plain/empty"

# usage errors (1)
expect 1 "$S"
expect 1 "$S" nosuch
expect 1 "$S" "${U[@]}" encrypt "$work/plain/a" "$work/x"          # no --key
expect 1 "$S" "${U[@]}" encrypt --key 10 "$work/plain/a"            # no DST
expect 1 "$S" "${U[@]}" encrypt --key 10 --alg nosuch "$work/plain/a" "$work/x"
expect 1 "$S" --pin user-pin "${U[@]}" ls "$work/plain/a"           # no PIN option on the command line
expect 0 "$S" --help
grep -q "verify" "$work/out" && ok || bad "--help lists no commands"

# encrypt / decrypt / cat
expect 0 "$S" "${U[@]}" encrypt --key 10 "$work/plain/a" "$work/tree/a.se"
check '! grep -q SECRET-MARKER "$work/tree/a.se"' "plaintext in the encrypted file"
expect 0 "$S" "${U[@]}" decrypt "$work/tree/a.se" "$work/a.out"
check 'cmp -s "$work/plain/a" "$work/a.out"' "decrypt differs"
expect 0 "$S" "${U[@]}" cat "$work/tree/a.se"
check 'cmp -s "$work/plain/a" "$work/out"' "cat differs"
expect 5 "$S" "${U[@]}" encrypt --key 10 "$work/plain/a" "$work/tree/a.se"   # exists
expect 0 "$S" "${U[@]}" encrypt --force --key 10 "$work/plain/a" "$work/tree/a.se"
expect 0 "$S" "${U[@]}" encrypt --key 11 --alg ctr-hmac "$work/plain/a" "$work/tree/sub/b.se"
expect 0 "$S" "${U[@]}" decrypt "$work/tree/sub/b.se" -
check 'cmp -s "$work/plain/a" "$work/out"' "ctr-hmac roundtrip differs"
expect 0 "$S" "${U[@]}" encrypt --key 11 "$work/plain/a" "$work/c.se"     # --alg from the key
expect 0 "$S" ls "$work/c.se"
check 'grep -q "aes256-ctr-hmac" "$work/out"' "alg not taken from the key: $(cat "$work/out")"
expect 0 "$S" "${U[@]}" encrypt --key 10 --sector-size 1024 "$work/plain/empty" "$work/tree/empty.se"
expect 0 "$S" "${U[@]}" cat "$work/tree/empty.se"
check '[ ! -s "$work/out" ]' "empty file not empty"
printf 'from stdin SECRET-MARKER\n' | "$S" "${U[@]}" encrypt --key 10 - "$work/tree/sub/stdin.se" >/dev/null 2>&1 && ok || bad "encrypt from stdin"
expect 0 "$S" "${U[@]}" cat "$work/tree/sub/stdin.se"
check 'grep -q "from stdin SECRET-MARKER" "$work/out"' "stdin roundtrip"

# PIN from an fd, from SEFILE_PIN_FD
expect 0 "$S" --device "$C" --pin-fd 3 cat "$work/tree/sub/stdin.se" 3<"$work/user.pin"
SEFILE_PIN_FD=4 expect 0 "$S" --device "$C" cat "$work/tree/sub/stdin.se" 4<"$work/user.pin"

# no PIN source and no terminal: refused, nothing read from the command line
expect 1 setsid -w "$S" --device "$C" cat "$work/tree/sub/stdin.se" </dev/null
check 'grep -qi "pin" "$work/err"' "no-terminal message: $(cat "$work/err")"

# key and cube errors (3, 4)
expect 3 "$S" "${U[@]}" encrypt --key 999 "$work/plain/a" "$work/nokey.se"
check '[ ! -e "$work/nokey.se" ]' "failed encrypt left its output"
expect 3 "$S" "${U[@]}" encrypt --key 13 "$work/plain/a" "$work/nokey.se"     # decrypt-only key
expect 4 "$S" --device "$C" --pin-file "$work/wrong.pin" cat "$work/tree/a.se"
expect 4 "$S" --device "$work/no-such-cube" --pin-file "$work/user.pin" cat "$work/tree/a.se"
expect 5 "$S" "${U[@]}" cat "$work/no-such-file"

# ls: header fields without a PIN
expect 0 "$S" ls "$work/tree/a.se" "$work/tree/sub"
check 'grep -q "key 10" "$work/out" && grep -q "key 11" "$work/out" && grep -q "aes256-ctr-hmac" "$work/out"' "ls text: $(cat "$work/out")"
check "grep -q 'size $(stat -c %s "$work/plain/a")' \"\$work/out\"" "ls size wrong: $(cat "$work/out")"
expect 0 "$S" --json ls "$work/tree/a.se"
check 'grep -q "\"key_id\":10" "$work/out" && grep -q "\"file_id\":\"[0-9a-f]\{32\}\"" "$work/out"' "ls json: $(cat "$work/out")"
expect 2 "$S" ls "$work/plain/a"                                    # not a SEfile file

# verify a sound tree, then a damaged one
expect 0 "$S" "${U[@]}" verify "$work/tree"
check 'grep -c ": ok" "$work/out" | grep -q "^4$"' "verify text: $(cat "$work/out")"
# flip one bit in the middle of a data sector of a.se
size=$(stat -c %s "$work/tree/a.se")
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$work/tree/a.se" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$work/tree/a.se" bs=1 seek="$off" conv=notrunc status=none
expect 2 "$S" "${U[@]}" verify "$work/tree"
check 'grep -q "a.se: sector [0-9]" "$work/out"' "verify did not name the sector: $(cat "$work/out")"
check 'grep -q "b.se: ok" "$work/out"' "verify: sound file not ok"
expect 2 "$S" "${U[@]}" --json verify "$work/tree"
check 'grep -q "\"ok\":false" "$work/out" && grep -q "\"damaged\":1" "$work/out"' "verify json: $(cat "$work/out")"
expect 2 "$S" "${U[@]}" decrypt "$work/tree/a.se" "$work/damaged.out"
check '[ ! -e "$work/damaged.out" ] && ! ls "$work"/damaged.out.* >/dev/null 2>&1' "damaged decrypt left output"
expect 2 "$S" "${U[@]}" cat "$work/tree/a.se"

# rekey: new key in the header, same plaintext
expect 0 "$S" "${U[@]}" rekey --key 12 "$work/tree/sub"
expect 0 "$S" --json ls "$work/tree/sub/b.se" "$work/tree/sub/stdin.se"
check '[ "$(grep -o "\"key_id\":12" "$work/out" | wc -l)" -eq 2 ]' "rekey: key not changed: $(cat "$work/out")"
expect 0 "$S" "${U[@]}" cat "$work/tree/sub/b.se"
check 'cmp -s "$work/plain/a" "$work/out"' "rekeyed file differs"
expect 3 "$S" "${U[@]}" rekey --key 999 "$work/tree/sub/b.se"
expect 1 "$S" "${U[@]}" rekey "$work/tree/sub/b.se"
expect 0 "$S" "${U[@]}" verify "$work/tree/sub"
# admin role works too
expect 0 "$S" --device "$C" --pin-file "$work/admin.pin" --admin cat "$work/tree/sub/stdin.se"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
