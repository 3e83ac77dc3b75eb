#!/usr/bin/env python3
"""fs_model.py - model-based random test of one file system against another.

  fs_model.py ops DIR TWIN_DIR SEED N   N random operations (pwrite, pread,
      truncate, ftruncate, fsync, reopen, O_APPEND write, read through a
      second handle) on DIR/model and its twin TWIN_DIR/model, every read
      compared with the twin's; several files at once.
  fs_model.py writers DIR NPROC MIB     NPROC processes write disjoint
      interleaved ranges of DIR/shared (random chunk sizes) at once.
  fs_model.py verify-writers DIR NPROC MIB   check DIR/shared.
  fs_model.py compare DIR TWIN_DIR      every file of the model equals its twin.

Prints "N passed, M failed" and exits non-zero on a mismatch; the first
mismatch is described (operation number, offset, what differed).
"""
import os
import random
import sys

FILES = 3
MAX_OFF = 600_000


def pattern(owner, off, n):
    """Bytes that say who wrote them and where: any misplaced byte shows."""
    out = bytearray(n)
    for i in range(n):
        x = off + i
        out[i] = (x * 131 + owner * 17 + (x >> 12)) & 0xFF
    return bytes(out)


class Pair:
    def __init__(self, d, t, name):
        self.paths = (os.path.join(d, name), os.path.join(t, name))
        self.fds = None
        self.open(os.O_CREAT)

    def open(self, extra=0):
        self.fds = [os.open(p, os.O_RDWR | extra, 0o644) for p in self.paths]

    def close(self):
        for fd in self.fds:
            os.close(fd)


def run_ops(d, t, seed, n):
    rng = random.Random(seed)
    pairs = [Pair(d, t, f"model{i}") for i in range(FILES)]
    fails = 0
    for op in range(n):
        p = rng.choice(pairs)
        a, b = p.fds
        kind = rng.random()
        if kind < 0.35:
            off = rng.randrange(MAX_OFF)
            ln = rng.choice((1, 7, 512, 4095, 4096, 4097, 8192, rng.randrange(1, 70_000)))
            data = rng.randbytes(ln)
            ra, rb = os.pwrite(a, data, off), os.pwrite(b, data, off)
            what = f"pwrite({off}, {ln}) -> {ra} vs {rb}"
            bad = ra != rb
        elif kind < 0.65:
            off = rng.randrange(MAX_OFF + 10_000)
            ln = rng.randrange(1, 140_000)
            ra, rb = os.pread(a, ln, off), os.pread(b, ln, off)
            bad = ra != rb
            what = f"pread({off}, {ln}): {len(ra)} vs {len(rb)} bytes"
            if bad and len(ra) == len(rb):
                first = next(i for i in range(len(ra)) if ra[i] != rb[i])
                what += f", first difference at {off + first}"
        elif kind < 0.72:
            size = rng.choice((0, rng.randrange(MAX_OFF), rng.randrange(8192)))
            os.ftruncate(a, size)
            os.ftruncate(b, size)
            what, bad = f"ftruncate({size})", False
        elif kind < 0.75:
            size = rng.randrange(MAX_OFF)
            os.truncate(p.paths[0], size)
            os.truncate(p.paths[1], size)
            what, bad = f"truncate path({size})", False
        elif kind < 0.80:
            os.fsync(a)
            what, bad = "fsync", False
        elif kind < 0.86:
            p.close()
            p.open(os.O_TRUNC if rng.random() < 0.1 else 0)
            what, bad = "reopen", False
        elif kind < 0.92:
            data = rng.randbytes(rng.randrange(1, 9000))
            for path in p.paths:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                os.write(fd, data)
                os.close(fd)
            what, bad = f"append {len(data)}", False
        else:
            off = rng.randrange(MAX_OFF)
            fd2 = os.open(p.paths[0], os.O_RDONLY)
            ra = os.pread(fd2, 50_000, off)
            os.close(fd2)
            rb = os.pread(b, 50_000, off)
            what, bad = f"second handle pread({off})", ra != rb
        sa, sb = os.fstat(a).st_size, os.fstat(b).st_size
        if sa != sb:
            bad, what = True, what + f"; sizes {sa} vs {sb}"
        if bad:
            fails += 1
            print(f"FAIL op {op} on {p.paths[0]}: {what}")
            if fails > 5:
                break
    for p in pairs:
        p.close()
    return n - fails if fails == 0 else 0, fails


def compare(d, t):
    fails = passed = 0
    for i in range(FILES):
        name = f"model{i}"
        with open(os.path.join(d, name), "rb") as f:
            x = f.read()
        with open(os.path.join(t, name), "rb") as f:
            y = f.read()
        if x == y:
            passed += 1
        else:
            fails += 1
            print(f"FAIL {name}: {len(x)} vs {len(y)} bytes differ")
    return passed, fails


def writers(d, nproc, mib):
    path = os.path.join(d, "shared")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    total = mib << 20
    stripe = 20_000  # not sector aligned: neighbours share sectors
    pids = []
    for w in range(nproc):
        pid = os.fork()
        if pid == 0:
            rng = random.Random(w)
            fd = os.open(path, os.O_WRONLY)
            offs = [o for o in range(w * stripe, total, nproc * stripe)]
            rng.shuffle(offs)
            for o in offs:
                end = min(o + stripe, total)
                pos = o
                while pos < end:
                    ln = min(end - pos, rng.randrange(1, 9000))
                    os.pwrite(fd, pattern(w, pos, ln), pos)
                    pos += ln
            os.fsync(fd)
            os.close(fd)
            os._exit(0)
        pids.append(pid)
    bad = sum(1 for pid in pids if os.waitpid(pid, 0)[1] != 0)
    return nproc - bad, bad


def verify_writers(d, nproc, mib):
    total = mib << 20
    stripe = 20_000
    with open(os.path.join(d, "shared"), "rb") as f:
        data = f.read()
    if len(data) != total:
        print(f"FAIL shared: {len(data)} bytes, not {total}")
        return 0, 1
    fails = 0
    for o in range(0, total, stripe):
        w = (o // stripe) % nproc
        n = min(stripe, total - o)
        if data[o:o + n] != pattern(w, o, n):
            fails += 1
            if fails <= 3:
                print(f"FAIL shared: stripe at {o} (writer {w}) is wrong")
    return (total + stripe - 1) // stripe - fails, fails


def main():
    cmd = sys.argv[1]
    if cmd == "ops":
        passed, fails = run_ops(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "compare":
        passed, fails = compare(sys.argv[2], sys.argv[3])
    elif cmd == "writers":
        passed, fails = writers(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "verify-writers":
        passed, fails = verify_writers(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")
    print(f"{passed} passed, {fails} failed")
    sys.exit(1 if fails else 0)


main()
