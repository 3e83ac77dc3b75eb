#!/usr/bin/env bash
# robust_load.sh - the multi-process load test of one sekeyfs mount, then of
# two mounts of one BACKING.
#
# Phase 1: one mount, 16 worker processes for LOAD_SECONDS (default 60; 300
# under `make stress`).  Each worker does random operations - create,
# write at random offsets, read, append, truncate, rename, unlink, mkdir,
# rmdir, readdir, fsync - on its own files (it keeps an exact model of their
# contents and checks every read and every listing against it) and on names
# shared by all workers (where only ENOENT, EEXIST, ENOTEMPTY, EISDIR and
# ENOTDIR from the races are expected).  Any other error, any EIO, any read
# that differs from the model fails the test.  Afterwards every file of the
# mount opens and reads to its end, the workers' final trees match their
# models, and `sefile verify` checks every sector of BACKING.  sekeyfs's RSS
# is sampled each second and its peak (VmHWM) must stay under
# LOAD_RSS_MAX_MB (default 200): a sanity bound against leaks, not a target.
#
# Phase 2: two mounts of the same BACKING (one cube), 4 workers on each for
# LOAD2_SECONDS (default 15, 60 under stress): contents in their own files, and only name
# operations on a directory shared by both mounts (docs/MOUNT.md: a file
# open in two mounts at once is not coherent, so no two mounts write one
# file).  After the attribute timeout, every file written through one mount
# reads back identical through the other, every file of both mounts reads
# to its end, and BACKING verifies again.
#
# Every worker, mount and emulator is stopped by PID; the temp dir goes.
FS_TMP=${FS_TMP:-/dev/shm}
. "$(dirname "$0")/fs_lib.sh"
# `make stress` (STRESS=1) runs longer, within run-tests.sh's 600 s limit.
if [ "${STRESS:-0}" = 1 ]; then
	LOAD_SECONDS=${LOAD_SECONDS:-300}; LOAD2_SECONDS=${LOAD2_SECONDS:-60}
fi
LOAD_SECONDS=${LOAD_SECONDS:-60}
LOAD2_SECONDS=${LOAD2_SECONDS:-15}
LOAD_RSS_MAX_MB=${LOAD_RSS_MAX_MB:-200}
mnt2="$work/mnt2"; mkdir -p "$mnt2"
# The system interpreter: a version-manager shim costs seconds per start.
PY=$(command -v /usr/bin/python3 || command -v python3)
worker_pids=(); fs2_pid=""

load_cleanup() {
	local p
	for p in "${worker_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${worker_pids[@]}"; do wait "$p" 2>/dev/null; done
	mountpoint -q "$mnt2" 2>/dev/null && { fusermount3 -u "$mnt2" 2>/dev/null || fusermount3 -uz "$mnt2" 2>/dev/null; }
	[ -n "$fs2_pid" ] && { kill "$fs2_pid" 2>/dev/null; wait "$fs2_pid" 2>/dev/null; }
	fs_cleanup
}
trap load_cleanup EXIT
stage() { echo "[${SECONDS}s] $*"; }

# ---- the worker (one process each) ------------------------------------------
cat >"$work/worker.py" <<'PYEOF'
# worker.py MNT ID SECONDS SEED OUT SHARED MODE
# MODE "full": shared files get contents too; "names": only name operations
# on the shared directory (two mounts).  Writes a JSON summary to OUT.
import errno, hashlib, json, os, random, sys, time

mnt, wid, secs, seed, out, shared, mode = sys.argv[1:8]
rnd = random.Random(int(seed))
own = os.path.join(mnt, "p" + wid)
shd = os.path.join(mnt, shared)
RACE = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR}
# Two mounts only: a directory that the other mount is removing has its
# header parked (or is gone) while this mount still holds its inode, and
# sekeyfs answers EIO ("no header") for it, not ENOENT.  Counted and
# reported as a race of its own, never allowed on one mount.
CROSS_RMDIR_EIO = mode == "names"
model = {}            # path relative to own -> bytearray
subdirs = {""}        # own subdirectories, relative
counts, raced, unexpected = {}, {}, []
slowest = [0.0, ""]   # the longest single operation: seconds, name
started = time.monotonic()

def bad(what):
    if len(unexpected) < 50:
        unexpected.append(what)
    counts["UNEXPECTED"] = counts.get("UNEXPECTED", 0) + 1

def payload(n):
    return rnd.randbytes(n)

def own_path(rel):
    return os.path.join(own, rel)

def pick_file():
    return rnd.choice(sorted(model)) if model else None

def new_name():
    return os.path.join(rnd.choice(sorted(subdirs)), "f%d" % rnd.randrange(1 << 30))

def own_create():
    rel = new_name()
    data = payload(rnd.randrange(0, 200000))
    with open(own_path(rel), "xb") as f:
        f.write(data)
    model[rel] = bytearray(data)

def own_write():
    rel = pick_file()
    if rel is None:
        return own_create()
    m = model[rel]
    off = rnd.randrange(0, min(len(m) + 70000, 1 << 20))
    data = payload(rnd.randrange(1, 70000))
    fd = os.open(own_path(rel), os.O_WRONLY)
    try:
        if os.pwrite(fd, data, off) != len(data):
            bad("short write " + rel)
        if rnd.random() < 0.2:
            os.fsync(fd)
    finally:
        os.close(fd)
    if off > len(m):
        m.extend(bytes(off - len(m)))
    m[off:off + len(data)] = data

def own_append():
    rel = pick_file()
    if rel is None:
        return own_create()
    data = payload(rnd.randrange(1, 40000))
    with open(own_path(rel), "ab") as f:
        f.write(data)
    model[rel].extend(data)

def own_truncate():
    rel = pick_file()
    if rel is None:
        return
    m = model[rel]
    n = rnd.randrange(0, len(m) + 50000)
    os.truncate(own_path(rel), n)
    if n < len(m):
        del m[n:]
    else:
        m.extend(bytes(n - len(m)))

def own_read():
    rel = pick_file()
    if rel is None:
        return
    with open(own_path(rel), "rb") as f:
        got = f.read()
    if got != model[rel]:
        bad("read of %s differs from the model (%d bytes, want %d)" % (rel, len(got), len(model[rel])))

def own_rename():
    rel = pick_file()
    if rel is None:
        return
    if rnd.random() < 0.5 and len(model) > 1:
        dst = rnd.choice([r for r in model if r != rel])   # replace another file
    else:
        dst = new_name()
    os.rename(own_path(rel), own_path(dst))
    model[dst] = model.pop(rel)

def own_unlink():
    rel = pick_file()
    if rel is None:
        return
    os.unlink(own_path(rel))
    del model[rel]

def own_mkdir():
    if len(subdirs) > 6:
        return own_rmdir()
    rel = os.path.join(rnd.choice(sorted(subdirs)), "d%d" % rnd.randrange(1 << 30)).lstrip("/")
    os.mkdir(own_path(rel))
    subdirs.add(rel)

def own_rmdir():
    empty = [d for d in subdirs if d and not any(r.startswith(d + "/") for r in model)
             and not any(s.startswith(d + "/") for s in subdirs)]
    if not empty:
        return
    d = rnd.choice(sorted(empty))
    os.rmdir(own_path(d))
    subdirs.discard(d)

def own_readdir():
    d = rnd.choice(sorted(subdirs))
    got = set(os.listdir(own_path(d)))
    want = {os.path.basename(r) for r in model if os.path.dirname(r) == d}
    want |= {os.path.basename(s) for s in subdirs if s and os.path.dirname(s) == d}
    if got != want:
        bad("listing of %r differs: extra %s missing %s" % (d, sorted(got - want)[:3], sorted(want - got)[:3]))

def own_fsync():
    rel = pick_file()
    if rel is None:
        return
    fd = os.open(own_path(rel), os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def sname():
    return os.path.join(shd, "s%d" % rnd.randrange(16))

def sdir():
    return os.path.join(shd, "d%d" % rnd.randrange(4))

def sh_write():
    fd = os.open(sname(), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, payload(rnd.randrange(1, 50000)), rnd.randrange(0, 300000))
    finally:
        os.close(fd)

def sh_append():
    with open(sname(), "ab") as f:
        f.write(payload(rnd.randrange(1, 20000)))

def sh_truncate():
    os.truncate(sname(), rnd.randrange(0, 300000))

def sh_read():
    with open(sname(), "rb") as f:
        f.read()

def sh_fsync():
    fd = os.open(sname(), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def sh_create():
    # a new file written whole in one open: safe across mounts
    p = os.path.join(rnd.choice([shd, sdir()]), "n%d" % rnd.randrange(64))
    with open(p, "xb") as f:
        f.write(payload(rnd.randrange(0, 30000)))

def sh_rename():
    a = rnd.choice([sname(), os.path.join(shd, "n%d" % rnd.randrange(64))])
    b = rnd.choice([sname(), os.path.join(sdir(), "n%d" % rnd.randrange(64))])
    os.rename(a, b)

def sh_unlink():
    os.unlink(rnd.choice([sname(), os.path.join(rnd.choice([shd, sdir()]), "n%d" % rnd.randrange(64))]))

def sh_mkdir():
    os.mkdir(sdir())

def sh_rmdir():
    os.rmdir(sdir())

def sh_readdir():
    os.listdir(rnd.choice([shd, sdir()]))

OWN = [(own_create, 8), (own_write, 14), (own_append, 8), (own_truncate, 5), (own_read, 14),
       (own_rename, 6), (own_unlink, 5), (own_mkdir, 2), (own_rmdir, 1), (own_readdir, 5),
       (own_fsync, 3)]
SHARED_FULL = [(sh_write, 6), (sh_append, 4), (sh_truncate, 2), (sh_read, 6), (sh_fsync, 2),
               (sh_create, 3), (sh_rename, 4), (sh_unlink, 4), (sh_mkdir, 2), (sh_rmdir, 2),
               (sh_readdir, 3)]
SHARED_NAMES = [(sh_create, 6), (sh_rename, 4), (sh_unlink, 5), (sh_mkdir, 2), (sh_rmdir, 2),
                (sh_readdir, 4)]

def table(entries):
    out = []
    for fn, w in entries:
        out += [fn] * w
    return out

own_ops = table(OWN)
shared_ops = table(SHARED_FULL if mode == "full" else SHARED_NAMES)

def in_shared_subdir(*paths):
    return any(p and os.path.dirname(p) != shd for p in paths)

def run(fn, is_shared):
    name = fn.__name__
    counts[name] = counts.get(name, 0) + 1
    t0 = time.monotonic()
    try:
        fn()
    except OSError as e:
        if is_shared and (e.errno in RACE or (e.errno == errno.EIO and CROSS_RMDIR_EIO and
                                              in_shared_subdir(e.filename, e.filename2))):
            key = "%s:%s" % (name, errno.errorcode.get(e.errno, e.errno))
            raced[key] = raced.get(key, 0) + 1
        else:
            bad("%s: %s" % (name, e))
    dt = time.monotonic() - t0
    if dt > slowest[0]:
        slowest[:] = [dt, name]

os.makedirs(own)
try:
    os.mkdir(shd)
except FileExistsError:
    pass
end = time.monotonic() + float(secs)
while time.monotonic() < end:
    if rnd.random() < 0.6:
        run(rnd.choice(own_ops), False)
    else:
        run(rnd.choice(shared_ops), True)

loop_s = time.monotonic() - started
# The final tree must be the model, file by file.
files = {}
for rel, m in sorted(model.items()):
    try:
        with open(own_path(rel), "rb") as f:
            got = f.read()
        if got != m:
            bad("final content of %s differs from the model" % rel)
    except OSError as e:
        bad("final read of %s: %s" % (rel, e))
    files[rel] = hashlib.sha256(m).hexdigest()
for d in sorted(subdirs):
    try:
        got = set(os.listdir(own_path(d)))
    except OSError as e:
        bad("final listing of %r: %s" % (d, e))
        continue
    want = {os.path.basename(r) for r in model if os.path.dirname(r) == d}
    want |= {os.path.basename(s) for s in subdirs if s and os.path.dirname(s) == d}
    if got != want:
        bad("final listing of %r differs: extra %s missing %s" % (d, sorted(got - want)[:3], sorted(want - got)[:3]))
with open(out, "w") as f:
    json.dump({"id": wid, "ops": sum(v for k, v in counts.items() if k != "UNEXPECTED"),
               "counts": counts, "raced": raced, "unexpected": unexpected,
               "n_unexpected": counts.get("UNEXPECTED", 0), "own": "p" + wid, "files": files,
               "bytes": sum(len(m) for m in model.values()), "loop_s": loop_s,
               "total_s": time.monotonic() - started, "slowest": slowest}, f)
PYEOF

# ---- helpers ------------------------------------------------------------------
# start_workers MNT SHARED MODE SECONDS ID...
start_workers() {
	local m=$1 shared=$2 mode=$3 secs=$4 id; shift 4
	for id in "$@"; do
		"$PY" "$work/worker.py" "$m" "$id" "$secs" "$((RANDOM * 32768 + RANDOM))" \
			"$work/w$id.json" "$shared" "$mode" 2>"$work/w$id.err" &
		worker_pids+=($!)
	done
}

# wait_workers PID_TO_SAMPLE: wait for every worker; sample the daemon's RSS.
rss_peak_kb=0
wait_workers() {
	local p rss
	while :; do
		local live=0
		for p in "${worker_pids[@]}"; do kill -0 "$p" 2>/dev/null && live=1; done
		rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)
		[ -n "$rss" ] && [ "$rss" -gt "$rss_peak_kb" ] && rss_peak_kb=$rss
		[ "$live" -eq 1 ] || break
		sleep 1
	done
	local rc=0
	for p in "${worker_pids[@]}"; do wait "$p" || rc=1; done
	worker_pids=()
	return $rc
}

# check_workers ID...: each wrote its summary, with no unexpected error.
check_workers() {
	"$PY" - "$work" "$@" <<'PYEOF'
import json, sys
work, ids = sys.argv[1], sys.argv[2:]
ok, ops, raced, size, times, slowest = True, 0, {}, 0, [], [0.0, ""]
for i in ids:
    try:
        s = json.load(open("%s/w%s.json" % (work, i)))
    except Exception as e:
        print("FAIL: worker %s left no summary (%s): %s" % (i, e, open("%s/w%s.err" % (work, i)).read()[-500:]))
        ok = False
        continue
    ops += s["ops"]
    times.append((s["loop_s"], s["total_s"]))
    if s["slowest"][0] > slowest[0]:
        slowest = s["slowest"]
    size += s["bytes"]
    for k, v in s["raced"].items():
        raced[k] = raced.get(k, 0) + v
    if s["n_unexpected"]:
        ok = False
        print("FAIL: worker %s: %d unexpected error(s): %s" % (i, s["n_unexpected"], "; ".join(s["unexpected"][:5])))
print("%d workers, %d operations, %.1f MiB in their files at the end; expected races: %s"
      % (len(ids), ops, size / 1048576, ", ".join("%s %d" % kv for kv in sorted(raced.items())) or "none"))
if times:
    print("worker time: loop up to %.1f s, with the final check up to %.1f s; slowest operation %.2f s (%s)"
          % (max(t[0] for t in times), max(t[1] for t in times), slowest[0], slowest[1]))
sys.exit(0 if ok else 1)
PYEOF
}

# read_all DIR...: every file opens and reads to its end.
read_all() {
	"$PY" - "$@" <<'PYEOF'
import os, sys
n, errs = 0, []
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top, onerror=lambda e: errs.append("walk: %s" % e)):
        dirs[:] = [x for x in dirs if x != ".sekey"]   # the control tree, not data
        for f in files:
            p = os.path.join(d, f)
            try:
                with open(p, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    got = len(fh.read())
                if got != size:
                    errs.append("%s: read %d of %d bytes" % (p, got, size))
                n += 1
            except OSError as e:
                errs.append("%s: %s" % (p, e))
print("%d files read to the end, %d error(s)%s" % (n, len(errs), (": " + "; ".join(errs[:5])) if errs else ""))
sys.exit(1 if errs or n == 0 else 0)
PYEOF
}

# cross_check MNT ID...: the files of these workers read through MNT are
# what the workers wrote (through the other mount).
cross_check() {
	"$PY" - "$work" "$@" <<'PYEOF'
import hashlib, json, os, sys
work, mnt, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
bad, n = [], 0
for i in ids:
    s = json.load(open("%s/w%s.json" % (work, i)))
    for rel, h in s["files"].items():
        p = os.path.join(mnt, s["own"], rel)
        try:
            got = hashlib.sha256(open(p, "rb").read()).hexdigest()
        except OSError as e:
            bad.append("%s: %s" % (p, e)); continue
        n += 1
        if got != h:
            bad.append("%s differs" % p)
print("%d files written through one mount read identical through the other, %d bad%s"
      % (n, len(bad), (": " + "; ".join(bad[:5])) if bad else ""))
sys.exit(1 if bad or n == 0 else 0)
PYEOF
}

verify_backing() {
	"$bin/sefile" --device "$cube" --pin-file "$work/user.pin" verify "$back" >"$work/verify.out" 2>"$work/verify.err"
}

mount2() {
	"$bin/sekeyfs" -f --device "$cube" --pin-file "$work/user.pin" "$back" "$mnt2" 2>>"$work/sekeyfs2.log" &
	fs2_pid=$!
	local i
	for i in $(seq 1 100); do
		mountpoint -q "$mnt2" && return 0
		kill -0 "$fs2_pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---- phase 1: one mount, 16 workers --------------------------------------------
stage "one mount, 16 workers for ${LOAD_SECONDS}s"
check "cube" fs_make_cube
stage "cube made"
check "init" fs_init
fs_mount || { bad "mount: $(tail -n 3 "$work/sekeyfs.log")"; fs_summary; exit 1; }
ok
ids1=$(seq 1 16)
start_workers "$mnt" shared full "$LOAD_SECONDS" $ids1
check "workers exited cleanly" wait_workers "$fs_pid"
stage "workers done"
check "no unexpected error, every read matched its model" check_workers $ids1
hwm=$(hwm_kb "$fs_pid")
echo "sekeyfs memory: VmHWM ${hwm:-?} KiB, VmRSS peak sampled ${rss_peak_kb} KiB (bound ${LOAD_RSS_MAX_MB} MiB)"
check "sekeyfs peak RSS ${hwm:-?} KiB under ${LOAD_RSS_MAX_MB} MiB" test "${hwm:-999999999}" -lt $((LOAD_RSS_MAX_MB * 1024))
stage "reading every file"
check "every file reads to its end" read_all "$mnt"
check "daemon alive after the load" kill -0 "$fs_pid"
check "unmount" fs_umount
stage "sefile verify of BACKING"
if verify_backing; then ok; else bad "sefile verify of BACKING: $(grep -v ': ok$' "$work/verify.out" | head -n 5) $(tail -n 2 "$work/verify.err")"; fi
echo "verify: $(grep -c ': ok$' "$work/verify.out") backing files ok; $(tail -n 1 "$work/verify.err")"

# ---- phase 2: two mounts of one BACKING -------------------------------------------
stage "two mounts of one BACKING, 4 workers each for ${LOAD2_SECONDS}s"
check "mount 1 again" fs_mount
check "mount 2 on the same BACKING" mount2
start_workers "$mnt" both names "$LOAD2_SECONDS" 101 102 103 104
start_workers "$mnt2" both names "$LOAD2_SECONDS" 201 202 203 204
check "workers on both mounts exited cleanly" wait_workers "$fs_pid"
stage "workers done"
check "no unexpected error on either mount" check_workers 101 102 103 104 201 202 203 204
sleep 2   # the attribute/entry timeout (1 s): each mount sees the other's changes
check "mount 2 reads what was written through mount 1" cross_check "$mnt2" 101 102 103 104
check "mount 1 reads what was written through mount 2" cross_check "$mnt" 201 202 203 204
check "every file reads to its end through mount 1" read_all "$mnt"
check "every file reads to its end through mount 2" read_all "$mnt2"
echo "sekeyfs memory after phase 2: mount 1 VmHWM $(hwm_kb "$fs_pid") KiB, mount 2 VmHWM $(hwm_kb "$fs2_pid") KiB"
check "unmount 1" fs_umount
check "unmount 2" fusermount3 -u "$mnt2"
wait "$fs2_pid" 2>/dev/null; fs2_pid=""
if verify_backing; then ok; else bad "sefile verify of BACKING after two mounts: $(grep -v ': ok$' "$work/verify.out" | head -n 5) $(tail -n 2 "$work/verify.err")"; fi
echo "verify: $(grep -c ': ok$' "$work/verify.out") backing files ok; $(tail -n 1 "$work/verify.err")"
stage "done"
fs_summary
