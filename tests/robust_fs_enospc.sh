#!/usr/bin/env bash
# robust_fs_enospc.sh - a full disk through a real sekeyfs mount.  BACKING
# is an 8 MiB tmpfs the test mounts (needs root; unmounted on every exit
# path, after the FUSE mount and before the temp dir goes).  Through the
# mount: three files written and fsync'ed (checksums kept); then a writer
# fills the disk in 64 KiB writes and must get ENOSPC (not EIO, no crash)
# from write, fsync or close; a new small file, a mkdir and a symlink on
# the full disk fail with ENOSPC too or succeed, never EIO; meanwhile the
# mount keeps serving: the fsync'ed files read back identical, the
# directory lists, the partly written filler reads to its end as a prefix
# of what was written (no EIO, no wrong byte; with --writeback each block
# is what was written or zeros: the kernel keeps the size it was given and
# pages dropped after the failed fsync read as zeros).  Then the filler is deleted
# and work resumes: a new 1 MiB file, a directory and a file in it are
# written, fsync'ed and read back.  The fill, serve and resume steps run
# again on a mount with --writeback (the kernel's write-back cache, where
# errors come from fsync/close).  Finally unmount, remount, every file
# compares again and `sefile verify` checks every sector of BACKING.
# Every process is killed by PID and every mount undone, even on failure.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/fs_lib.sh"
PY=${PYTHON:-python3}
tmpfs_up=0
enospc_cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && { fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null; }
	local p
	for p in "${fs_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${fs_pids[@]}"; do wait "$p" 2>/dev/null; done
	if [ "$tmpfs_up" -eq 1 ]; then umount "$back" 2>/dev/null || umount -l "$back"; fi
	fs_cleanup
}
trap enospc_cleanup EXIT

if ! mount -t tmpfs -o size=8m,mode=0700 tmpfs "$back" 2>"$work/err"; then
	echo "cannot mount a tmpfs ($(cat "$work/err")); this test needs root"
	bad "mount tmpfs"; fs_summary; exit 1
fi
tmpfs_up=1
check "cube" fs_make_cube
check "init on the 8 MiB tmpfs" fs_init
fs_mount || { bad "mount"; tail -n 5 "$work/sekeyfs.log"; fs_summary; exit 1; }

cat >"$work/disk.py" <<'PY'
# disk.py STEP MNT STATE: the steps of robust_fs_enospc.sh; exit 0 = fine,
# else what is wrong on stdout.
import errno, hashlib, json, os, sys

step, mnt, state_path = sys.argv[1], sys.argv[2], sys.argv[3]
state = json.load(open(state_path)) if os.path.exists(state_path) else {}
bad = []

def pattern(name, n):
    out, i = bytearray(), 0
    while len(out) < n:
        out += hashlib.sha256(f"{name}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])

def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data) == len(data) or bad.append(f"{path}: short write")
        os.fsync(fd)
    finally:
        os.close(fd)

def read_all(path):
    with open(path, "rb") as fh:
        return fh.read()

def kept2_ok(got):
    """kept2 after an append that failed: its fsync'ed 5000 bytes, then at
    most a prefix of the append (unspecified after a failed fsync: with the
    write-back cache the kernel shows the appended bytes until it drops
    them), never other bytes."""
    return got[:5000] == pattern("kept2", 5000) and len(got) <= 205000 and not got[5000:].strip(b"y")

def compare_kept():
    for name, digest in state["kept"].items():
        try:
            data = read_all(os.path.join(mnt, name))
        except OSError as e:
            bad.append(f"{name}: {e}"); continue
        if name == "kept2" and state.get("kept2_loose"):
            if not kept2_ok(data):
                bad.append(f"kept2: {len(data)} bytes, not its fsync'ed bytes plus part of the failed append")
        elif hashlib.sha256(data).hexdigest() != digest:
            bad.append(f"{name}: content changed")

def expect_enospc(what, fn):
    """Run fn; fine if it works or fails with ENOSPC; anything else is bad."""
    try:
        fn()
        return "ok"
    except OSError as e:
        if e.errno != errno.ENOSPC:
            bad.append(f"{what}: {errno.errorcode.get(e.errno, e.errno)} ({e}), want ENOSPC")
        return errno.errorcode.get(e.errno, str(e.errno))

if step == "keep":
    state["kept"] = {}
    for i, size in enumerate((300000, 700000, 5000)):
        name = f"kept{i}"
        data = pattern(name, size)
        write_file(os.path.join(mnt, name), data)
        state["kept"][name] = hashlib.sha256(data).hexdigest()
    os.mkdir(os.path.join(mnt, "dir"))
    write_file(os.path.join(mnt, "dir", "kept3"), pattern("kept3", 1000))
    state["kept"]["dir/kept3"] = hashlib.sha256(pattern("kept3", 1000)).hexdigest()

elif step == "fill":
    # Fill the disk: the first error of write/fsync/close must be ENOSPC.
    data = pattern("filler", 64 * 1024 * 256)   # 16 MiB: twice the disk
    fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written, err = 0, None
    try:
        while written < len(data):
            n = os.write(fd, data[written:written + 65536])
            written += n
        os.fsync(fd)
    except OSError as e:
        err = e
    try:
        os.close(fd)
    except OSError as e:
        err = err or e
    if err is None:
        bad.append(f"16 MiB fitted on an 8 MiB disk ({written} bytes written)")
    elif err.errno != errno.ENOSPC:
        bad.append(f"filling the disk: {errno.errorcode.get(err.errno)} ({err}), want ENOSPC")
    state["filler_written"] = written
    print(f"filler: {written} bytes accepted, then {errno.errorcode.get(err.errno) if err else 'no error'}")
    # More on the full disk: each fails with ENOSPC or works, never EIO.
    r1 = expect_enospc("a small new file", lambda: write_file(os.path.join(mnt, "small"), b"x" * 3000))
    r2 = expect_enospc("mkdir", lambda: os.mkdir(os.path.join(mnt, "newdir")))
    r3 = expect_enospc("symlink", lambda: os.symlink("kept0", os.path.join(mnt, "link")))
    def append():
        fd = os.open(os.path.join(mnt, "kept2"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"y" * 200000)
            os.fsync(fd)
        finally:
            os.close(fd)
    r4 = expect_enospc("append to kept2", append)
    print(f"on the full disk: small file {r1}, mkdir {r2}, symlink {r3}, append {r4}")
    state["appended"] = r4 == "ok"

elif step == "serve":
    # The mount keeps serving on the full disk.
    if state.get("appended"):
        # the append worked: kept2 grew by its bytes; fold them into the check
        data = pattern("kept2", 5000) + b"y" * 200000
        state["kept"]["kept2"] = hashlib.sha256(data).hexdigest()
        state["kept2_loose"] = False
    else:
        state["kept2_loose"] = True
    compare_kept()
    try:
        names = sorted(os.listdir(mnt))
        for want in ("kept0", "kept1", "kept2", "dir", "filler"):
            if want not in names:
                bad.append(f"{want} missing from the listing {names}")
    except OSError as e:
        bad.append(f"listing: {e}")
    try:
        got = read_all(os.path.join(mnt, "filler"))
        size = os.stat(os.path.join(mnt, "filler")).st_size
        if len(got) != size:
            bad.append(f"filler reads {len(got)} of {size} bytes")
        want = pattern("filler", len(got))
        if os.environ.get("WRITEBACK"):
            # Nothing of it was fsync'ed and the fsync failed: with the
            # write-back cache the kernel keeps the size it was given and
            # pages it drops read back as zeros.  Each block is what was
            # written or zeros, never other bytes.
            for at in range(0, len(got), 4096):
                blk = got[at:at + 4096]
                if blk != want[at:at + 4096] and blk.strip(b"\0"):
                    bad.append(f"filler block at {at} holds bytes that were never written"); break
        elif got != want:
            bad.append("filler holds bytes that were never written")
        print(f"filler after ENOSPC: {len(got)} bytes readable (accepted {state['filler_written']})")
    except OSError as e:
        bad.append(f"filler unreadable after ENOSPC: {e}")
    for name in ("small", "link"):
        p = os.path.join(mnt, name)
        if os.path.lexists(p):
            try:
                os.readlink(p) if os.path.islink(p) else read_all(p)
            except OSError as e:
                bad.append(f"{name} left by a failed call is unreadable: {e}")

elif step == "free":
    for name in ("filler", "small", "link"):
        p = os.path.join(mnt, name)
        if os.path.lexists(p):
            os.unlink(p)
    if os.path.isdir(os.path.join(mnt, "newdir")):
        os.rmdir(os.path.join(mnt, "newdir"))
    data = pattern("after", 1 << 20)
    write_file(os.path.join(mnt, "after"), data)
    state["kept"]["after"] = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(mnt, "dir2"), exist_ok=True)
    write_file(os.path.join(mnt, "dir2", "f"), b"resumed\n")
    state["kept"]["dir2/f"] = hashlib.sha256(b"resumed\n").hexdigest()
    compare_kept()

elif step == "check":
    compare_kept()

json.dump(state, open(state_path, "w"))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
st="$work/state.json"
step() {
	local what=$1; shift
	if "$PY" "$work/disk.py" "$@" "$mnt" "$st" >"$work/py.out" 2>&1; then
		ok; sed -e 's/^/  /' "$work/py.out"
	else
		bad "$what: $(cat "$work/py.out") (sekeyfs log: $(tail -n 3 "$work/sekeyfs.log" | tr '\n' ' '))"
	fi
}
step "fsync'ed files before the disk is full" keep
step "ENOSPC, never EIO, on a full disk" fill
check "sekeyfs still running after ENOSPC" kill -0 "$fs_pid"
step "the mount serves on the full disk" serve
echo "  backing: $(df -B1K --output=used,avail "$back" | tail -n 1) KiB used/avail"
step "work resumes after deleting files" free
check "unmount" fs_umount
# The same with the kernel's write-back cache: write errors come back from
# fsync and close instead of write.
echo "with --writeback:"
check "remount with --writeback" fs_mount --writeback
export WRITEBACK=1
step "ENOSPC, never EIO, on a full disk (writeback)" fill
check "sekeyfs still running after ENOSPC (writeback)" kill -0 "$fs_pid"
step "the mount serves on the full disk (writeback)" serve
unset WRITEBACK
step "work resumes after deleting files (writeback)" free
check "unmount" fs_umount
check "remount" fs_mount
step "every file after the remount" check
check "unmount" fs_umount
"$bin/sefile" --device "$cube" --pin-file "$work/user.pin" verify "$back" >"$work/verify.out" 2>"$work/verify.err"
rc=$?
check "sefile verify of BACKING: $(grep -v ': ok$' "$work/verify.out" | head -n 5) $(tail -n 2 "$work/verify.err")" \
	test "$rc" -eq 0
grep -q "No space\|ENOSPC\|I/O error" "$work/sekeyfs.log" && echo "  sekeyfs log: $(grep -c . "$work/sekeyfs.log") lines, e.g. $(grep -m 2 "No space\|ENOSPC\|I/O error" "$work/sekeyfs.log" | tr '\n' ' ')"
fs_summary
