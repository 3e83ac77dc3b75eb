#!/usr/bin/env bash
# robust_fs_crash.sh - kill -9 of sekeyfs at random moments,
# ROBUST_FS_CRASH_ITER times (default 50).  Each round a writer appends
# records (deterministic per file and record number) to five files, one in
# a subdirectory made that round, fsyncs about every third append and
# logs each fsync'ed length outside the mount (the log fsync'ed too).
# A random 0..399 ms after the writer's first append the daemon is killed
# (-9), the dead mount detached (fusermount3 -uz) and the share mounted
# again: then every file of every round opens and reads to its end without
# error (no EIO), holds at least its fsync'ed length, and is byte for byte
# a prefix of its record stream; every directory lists; no fsync'ed file
# is missing.  A read that stops short of the size stat gave (the size the
# kernel cached before the open repaired the crashed file) is printed as a
# note and must be gone after the 1 s attribute timeout.  The next round
# writes on that same mount.  About two minutes.
. "$(dirname "$0")/fs_lib.sh"
command -v python3 >/dev/null || { bad "python3 is needed (Debian package python3)"; fs_summary; exit 1; }
ITER=${ROBUST_FS_CRASH_ITER:-50}
# the interpreter itself: a version-manager shim costs a second a start
PY=$(python3 -c 'import sys; print(sys.executable)')
wpid=
crash_cleanup() { [ -n "$wpid" ] && kill -9 "$wpid" 2>/dev/null; fs_cleanup; }
trap crash_cleanup EXIT

cat >"$work/stream.py" <<'PY'
import hashlib
def stream(name, n):
    """The first n bytes of the record stream of file name."""
    out = bytearray(); i = 0
    while len(out) < n:
        h = hashlib.sha256(f"{name}/{i}".encode()).hexdigest()
        out += f"{name} {i} {h * (1 + i % 7)}\n".encode(); i += 1
    return bytes(out[:n])
PY
cat >"$work/writer.py" <<'PY'
import os, random, sys
sys.path.insert(0, os.path.dirname(sys.argv[0]))
from stream import stream
d, log, round_ = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(round_)
logf = open(log, "a")
names = [f"r{round_}.f{j}" for j in range(4)] + [f"d{round_}/r{round_}.g"]
started = False
try:
    os.mkdir(os.path.join(d, f"d{round_}"))
    while True:
        name = rng.choice(names)
        path = os.path.join(d, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        off = os.fstat(fd).st_size
        n = rng.randrange(1, 12000)
        os.write(fd, stream(name, off + n)[off:])
        if rng.randrange(3) == 0:
            os.fsync(fd)
            logf.write(f"{name} {os.fstat(fd).st_size}\n"); logf.flush(); os.fsync(logf.fileno())
        os.close(fd)
        if not started:
            open(sys.argv[4], "w").close(); started = True
except OSError:
    sys.exit(0)
PY
cat >"$work/verify.py" <<'PY'
import os, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[0]))
from stream import stream
d, log = sys.argv[1], sys.argv[2]
synced = {}
for line in open(log):
    name, size = line.split()
    synced[name] = max(synced.get(name, 0), int(size))
bad = 0
def check(name, allow_short):
    """0 ok, 1 bad, 2 a read shorter than the size stat gave (allowed once)."""
    try:
        with open(os.path.join(d, name), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data = fh.read()
    except OSError as e:
        print(f"{name}: cannot read: {e}"); return 1
    if len(data) < synced.get(name, 0):
        print(f"{name}: {len(data)} bytes, fsync'ed {synced[name]}"); return 1
    if data != stream(name, len(data)):
        want = stream(name, len(data))
        first = next(i for i in range(len(data)) if data[i] != want[i])
        print(f"{name}: differs from its records at byte {first} of {len(data)}"); return 1
    if len(data) != size:
        if allow_short and len(data) < size:
            return 2
        print(f"{name}: read {len(data)} bytes of {size}"); return 1
    return 0
def walk_error(e):
    global bad
    print(f"cannot list: {e}"); bad += 1
seen = set(); short = []
for top, dirs, files in os.walk(d, onerror=walk_error):
    if top == d:
        dirs[:] = [x for x in dirs if x != ".sekey"]   # the control tree, not data
    for f in files:
        name = os.path.relpath(os.path.join(top, f), d)
        seen.add(name)
        r = check(name, True)
        bad += r == 1
        if r == 2:
            short.append(name)
if short:
    # The size the kernel cached at lookup can predate the repair that
    # opening a crashed file does (its unsynced tail dropped): known,
    # reported.  Past the attribute timeout size and content must agree.
    print(f"note: {len(short)} file(s) read short of a stale size after the crash: {short}")
    time.sleep(1.2)
    bad += sum(check(name, False) != 0 for name in short)
for name in synced:
    if name not in seen:
        print(f"{name}: fsync'ed {synced[name]} bytes, now missing"); bad += 1
sys.exit(1 if bad else 0)
PY

check "cube" fs_make_cube
check "init" fs_init
: >"$work/synced.log"
fs_mount || { bad "first mount"; fs_summary; exit 1; }
for i in $(seq 1 "$ITER"); do
	"$PY" "$work/writer.py" "$mnt" "$work/synced.log" "$i" "$work/started.$i" &
	wpid=$!
	# kill at a random moment after the writer's first append
	for _ in $(seq 1 100); do [ -e "$work/started.$i" ] && break; sleep 0.05; done
	sleep "0.$(printf '%03d' $((RANDOM % 400)))"
	kill -9 "$fs_pid"; wait "$fs_pid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	wpid=
	fusermount3 -uz "$mnt" 2>/dev/null
	fs_mount || { bad "remount after kill -9 #$i"; break; }
	check "kill -9 #$i: fsync'ed bytes present, every file reads fully" \
		"$PY" "$work/verify.py" "$mnt" "$work/synced.log"
done
fs_umount || bad "final unmount"
nsync=$(wc -l <"$work/synced.log")
echo "robust_fs_crash: $ITER kills, $nsync fsyncs recorded"
check "the writer fsynced in most rounds ($nsync fsyncs)" test "$nsync" -ge $((ITER / 2))
fs_summary
