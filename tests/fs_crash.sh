#!/usr/bin/env bash
# fs_crash.sh - failures under load.  (1) kill -9 of sekeyfs during
# writes, LOOPS times (default 10): a writer appends a known pattern to
# several files and fsyncs, recording each fsync'ed length outside the
# mount; after a remount every file opens, reads without error, holds at
# least its fsync'ed length, and every byte is the pattern.  (2) The cube
# going away while mounted: operations that need it fail with EIO (the
# daemon stays up); with the cube unreachable they keep failing; once it is
# back the mount reconnects (the driver auto-starts the emulator, the PIN
# comes again from --pin-file) and works again.
. "$(dirname "$0")/fs_lib.sh"
command -v python3 >/dev/null || { bad "python3 is needed (Debian package python3)"; fs_summary; exit 1; }
LOOPS=${LOOPS:-10}

cat >"$work/writer.py" <<'PY'
import os, sys
d, log, round_ = sys.argv[1], sys.argv[2], sys.argv[3]
P = 65521  # a prime period: a sector in the wrong place shows
TABLES = {}
def pattern(name, off, n):
    if name not in TABLES:
        s = sum(name.encode())
        base = bytes((x * 7 + s + x // 509) & 0xFF for x in range(P))
        TABLES[name] = (base * 6)[:P + 300000]  # periodic: t[x] == t[x % P]
    out = bytearray()
    while n > 0:
        k = min(n, 300000)
        out += TABLES[name][(off % P):(off % P) + k]
        off += k; n -= k
    return bytes(out)
sizes = {}
logf = open(log, "a")
step = 0
while True:
    step += 1
    name = f"r{round_}.f{step % 4}"  # each round its own files: verify stays cheap
    path = os.path.join(d, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        off = os.fstat(fd).st_size
        n = (step * 7919) % 40000 + 1
        os.write(fd, pattern(name, off, n))
        if step % 3 == 0:
            os.fsync(fd)
            logf.write(f"{name} {os.fstat(fd).st_size}\n"); logf.flush(); os.fsync(logf.fileno())
        os.close(fd)
    except OSError:
        sys.exit(0)
PY
cat >"$work/verify.py" <<'PY'
import os, sys
d, log, round_ = sys.argv[1], sys.argv[2], sys.argv[3]
P = 65521  # a prime period: a sector in the wrong place shows
TABLES = {}
def pattern(name, off, n):
    if name not in TABLES:
        s = sum(name.encode())
        base = bytes((x * 7 + s + x // 509) & 0xFF for x in range(P))
        TABLES[name] = (base * 6)[:P + 300000]  # periodic: t[x] == t[x % P]
    out = bytearray()
    while n > 0:
        k = min(n, 300000)
        out += TABLES[name][(off % P):(off % P) + k]
        off += k; n -= k
    return bytes(out)
synced = {}
for line in open(log):
    name, size = line.split()
    synced[name] = max(synced.get(name, 0), int(size))
bad = 0
for name in sorted(set(synced) | {f for f in os.listdir(d) if f.startswith("r")}):
    try:
        with open(os.path.join(d, name), "rb") as f:
            if name.startswith(f"r{round_}."):
                data = f.read()
            else:  # an earlier round's file, checked in full then: ends and size
                size = os.fstat(f.fileno()).st_size
                head = f.read(4096)
                f.seek(max(0, size - 4096))
                tail = f.read()
                ok = head == pattern(name, 0, len(head)) and \
                    tail == pattern(name, max(0, size - 4096), len(tail))
                if size < synced.get(name, 0) or not ok:
                    print(f"{name}: changed since its round"); bad += 1
                continue
    except OSError as e:
        print(f"{name}: cannot read: {e}"); bad += 1; continue
    if len(data) < synced.get(name, 0):
        print(f"{name}: {len(data)} bytes, fsync'ed {synced[name]}"); bad += 1
    elif data != pattern(name, 0, len(data)):
        want = pattern(name, 0, len(data))
        first = next(i for i in range(len(data)) if data[i] != want[i])
        print(f"{name}: content differs from what was written at {first} of {len(data)}"
              f" (fsync'ed {synced.get(name, 0)})"); bad += 1
sys.exit(1 if bad else 0)
PY

check "cube" fs_make_cube
check "init" fs_init
: >"$work/synced.log"
for i in $(seq 1 "$LOOPS"); do
	fs_mount || { bad "mount $i"; break; }
	python3 "$work/writer.py" "$mnt" "$work/synced.log" "$i" &
	wpid=$!
	# let it fsync at least once more, then kill at a random moment
	before=$(wc -l <"$work/synced.log")
	for _ in $(seq 1 100); do [ "$(wc -l <"$work/synced.log")" -gt "$before" ] && break; sleep 0.05; done
	sleep "0.$((RANDOM % 10))"
	kill -9 "$fs_pid"; wait "$fs_pid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	fusermount3 -uz "$mnt" 2>/dev/null
	fs_mount || { bad "remount after kill -9 #$i"; break; }
	check "kill -9 #$i: fsync'ed data intact, files readable" python3 "$work/verify.py" "$mnt" "$work/synced.log" "$i"
	fs_umount || bad "unmount #$i"
done
nsync=$(wc -l <"$work/synced.log")
echo "kill -9 loop: $nsync fsyncs recorded"
check "the writer fsynced in every round" test "$nsync" -ge "$LOOPS"

# ---- the cube going away ----
check "mount" fs_mount || { fs_summary; exit 1; }
head -c 300000 /dev/urandom >"$work/ref"
cp "$work/ref" "$mnt/kept"
# a fresh mount: nothing of kept in the page cache, reading it needs the cube
check "unmount" fs_umount
check "mount" fs_mount
emu=$(cat "$cube/secube-emu.pid")
kill -9 "$emu"
for _ in $(seq 1 50); do kill -0 "$emu" 2>/dev/null || break; sleep 0.1; done
mv "$cube" "$cube.away"           # and no auto-start while it is away
err=$(cat "$mnt/kept" 2>&1 >/dev/null)
check "read without the cube: EIO ($err)" bash -c "echo '$err' | grep -q 'Input/output error'"
err=$(sh -c "echo x >'$mnt/newfile'" 2>&1)
check "create without the cube: EIO ($err)" bash -c "echo '$err' | grep -q 'Input/output error'"
check "daemon still running" kill -0 "$fs_pid"
check "still mounted" mountpoint -q "$mnt"
sleep 1.2
check "still failing while the cube is away" bash -c "! cat '$mnt/kept' >/dev/null 2>&1"
mv "$cube.away" "$cube"
sleep 1.2                         # past the reconnect back-off
cat "$mnt/kept" >/dev/null 2>&1   # may be the one that triggers the reconnect
check "reads again once the cube is back" cmp -s "$work/ref" "$mnt/kept"
echo again >"$mnt/newfile2"
check "writes again once the cube is back" grep -qx again "$mnt/newfile2"
check "unmount" fs_umount
fs_mount && check "after remount" cmp -s "$work/ref" "$mnt/kept" || bad "remount"
fs_umount
fs_summary
