#!/usr/bin/env python3
"""fs_posix.py - a POSIX behaviour suite for a directory: create, open
flags, read/write, truncate and holes, fallocate, directories, unlink,
rename (with RENAME_NOREPLACE / RENAME_EXCHANGE through renameat2), hard
and symbolic links, chmod, chown, utimens, statfs, fsync, fsyncdir, user
xattrs, FIFOs, readdir (inode numbers and d_type), long names, a large
directory, and the error cases.

Usage: fs_posix.py DIR [MANY]   (DIR must exist and be empty)

Prints one line per check, "name: result", where the result is what was
observed (a value, True/False, or an errno name), never anything that
legitimately differs between file systems (inode numbers, times of day,
free space).  tests/fs_posix.sh runs it on a sekeyfs mount and on a plain
directory and diffs the two outputs: they must agree line by line.
"""
import ctypes
import errno
import os
import stat
import sys

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
AT_FDCWD = -100

ROOT = sys.argv[1]
MANY = int(sys.argv[2]) if len(sys.argv) > 2 else 5000


def p(*parts):
    return os.path.join(ROOT, *parts)


def show(name, value):
    print(f"{name}: {value}", flush=True)


def attempt(name, fn, *args):
    """Run fn; print its value (None -> OK) or the errno name it raised."""
    try:
        value = fn(*args)
        show(name, "OK" if value is None else value)
    except OSError as e:
        show(name, errno.errorcode.get(e.errno, str(e.errno)))


def renameat2(src, dst, flags):
    if libc.renameat2(AT_FDCWD, src.encode(), AT_FDCWD, dst.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def digest(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()[:16]


def files():
    write_file(p("a"), b"hello")
    show("create+read", read_file(p("a")))
    attempt("O_EXCL on existing", os.open, p("a"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    fd = os.open(p("excl"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    show("O_EXCL new mode", oct(stat.S_IMODE(os.stat(p("excl")).st_mode)))
    show("O_EXCL new size", os.stat(p("excl")).st_size)
    attempt("open missing", os.open, p("missing"), os.O_RDONLY)
    attempt("open under a file", os.open, p("a", "x"), os.O_RDONLY)
    attempt("create under a file", os.open, p("a", "x"), os.O_WRONLY | os.O_CREAT)
    # O_APPEND: every write lands at the end, even after a seek
    fd = os.open(p("a"), os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b" world")
    os.close(fd)
    show("O_APPEND", read_file(p("a")))
    fd = os.open(p("a"), os.O_RDWR | os.O_TRUNC)
    show("O_TRUNC size", os.fstat(fd).st_size)
    os.write(fd, b"xyz")
    os.close(fd)
    show("after O_TRUNC", read_file(p("a")))
    # pread/pwrite, a write past the end makes a hole of zeros
    fd = os.open(p("rw"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"A" * 10000, 0)
    os.pwrite(fd, b"B" * 3, 4094)
    os.pwrite(fd, b"end", 20000)
    show("pwrite size", os.fstat(fd).st_size)
    show("pread middle", os.pread(fd, 6, 4093))
    show("pread hole", os.pread(fd, 10, 15000) == b"\0" * 10)
    show("pread past end", os.pread(fd, 10, 30000))
    show("pread across end", os.pread(fd, 100, 20001))
    show("whole", digest(os.pread(fd, 30000, 0)))
    os.ftruncate(fd, 5000)
    show("ftruncate down", os.fstat(fd).st_size)
    os.ftruncate(fd, 9000)
    show("ftruncate up zeros", os.pread(fd, 4000, 5000) == b"\0" * 4000)
    show("ftruncate kept", os.pread(fd, 4, 4094))
    os.fsync(fd)
    os.fdatasync(fd)
    show("fsync", "OK")
    os.close(fd)
    os.truncate(p("rw"), 4096)
    show("truncate path", os.stat(p("rw")).st_size)
    attempt("truncate missing", os.truncate, p("nope"), 1)
    attempt("truncate a directory", os.truncate, ROOT, 0)
    # a 1 TiB hole costs no disk
    write_file(p("sparse"), b"x")
    os.truncate(p("sparse"), 1 << 40)
    st = os.stat(p("sparse"))
    show("truncate 1T size", st.st_size)
    show("truncate 1T blocks < 1MiB", st.st_blocks * 512 < (1 << 20))
    fd = os.open(p("sparse"), os.O_RDONLY)
    show("1T tail reads zeros", os.pread(fd, 8, (1 << 40) - 8) == b"\0" * 8)
    show("1T head", os.pread(fd, 2, 0))
    os.close(fd)
    os.truncate(p("sparse"), 0)
    # fallocate grows the file with zeros
    fd = os.open(p("falloc"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"abc")
    os.posix_fallocate(fd, 0, 100000)
    show("fallocate size", os.fstat(fd).st_size)
    show("fallocate keeps data", os.pread(fd, 3, 0))
    show("fallocate zeros", os.pread(fd, 100, 50000) == b"\0" * 100)
    os.posix_fallocate(fd, 0, 10)
    show("fallocate inside", os.fstat(fd).st_size)
    os.close(fd)
    # an unlinked open file is still readable and writable
    write_file(p("ghost"), b"still here")
    fd = os.open(p("ghost"), os.O_RDWR)
    os.unlink(p("ghost"))
    show("unlinked open read", os.pread(fd, 100, 0))
    os.pwrite(fd, b"!", 10)
    show("unlinked open write", os.pread(fd, 100, 0))
    show("unlinked nlink", os.fstat(fd).st_nlink)
    os.close(fd)
    show("unlinked gone", os.path.exists(p("ghost")))
    # two handles see each other's writes
    fd1 = os.open(p("share"), os.O_RDWR | os.O_CREAT, 0o644)
    fd2 = os.open(p("share"), os.O_RDWR)
    os.pwrite(fd1, b"one", 0)
    os.pwrite(fd2, b"TWO", 2)
    show("two handles", os.pread(fd1, 10, 0))
    os.close(fd1)
    os.close(fd2)
    attempt("read a directory", lambda: os.read(os.open(ROOT, os.O_RDONLY), 1))
    attempt("open a directory for writing", os.open, ROOT, os.O_WRONLY)
    # sizes around sector boundaries
    for n in (0, 1, 4095, 4096, 4097, 65537, 300000):
        data = os.urandom(n)
        write_file(p(f"size{n}"), data)
        show(f"size {n}", os.stat(p(f"size{n}")).st_size == n and read_file(p(f"size{n}")) == data)


def dirs():
    os.mkdir(p("d"))
    os.mkdir(p("d", "sub"), 0o750)
    show("mkdir mode", oct(stat.S_IMODE(os.stat(p("d", "sub")).st_mode)))
    show("dir nlink", os.stat(p("d")).st_nlink)
    attempt("mkdir existing", os.mkdir, p("d"))
    attempt("mkdir over a file", os.mkdir, p("a"))
    attempt("mkdir missing parent", os.mkdir, p("nope", "x"))
    write_file(p("d", "sub", "f"), b"f")
    attempt("rmdir not empty", os.rmdir, p("d", "sub"))
    attempt("rmdir a file", os.rmdir, p("a"))
    attempt("rmdir missing", os.rmdir, p("nope"))
    attempt("unlink a directory", os.unlink, p("d"))
    attempt("unlink missing", os.unlink, p("nope"))
    os.unlink(p("d", "sub", "f"))
    attempt("rmdir empty", os.rmdir, p("d", "sub"))
    show("rmdir gone", os.path.exists(p("d", "sub")))
    dfd = os.open(p("d"), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    show("fsyncdir", "OK")
    # readdir: names, inode numbers as stat shows them, d_type
    os.mkdir(p("list"))
    write_file(p("list", "file"), b"x")
    os.mkdir(p("list", "dir"))
    os.symlink("file", p("list", "link"))
    os.mkfifo(p("list", "fifo"))
    rows = []
    for e in sorted(os.scandir(p("list")), key=lambda e: e.name):
        st = os.stat(e.path, follow_symlinks=False)
        kind = "dir" if e.is_dir(follow_symlinks=False) else "link" if e.is_symlink() \
            else "file" if e.is_file(follow_symlinks=False) else "other"
        rows.append(f"{e.name}/{kind}/ino-matches={e.inode() == st.st_ino}")
    show("readdir", " ".join(rows))
    show("listdir", sorted(os.listdir(p("list"))))


def names():
    long = "n" * 255
    write_file(p(long), b"long")
    show("255-byte name", read_file(p(long)))
    show("255-byte name listed", long in os.listdir(ROOT))
    utf = "é" * 127  # 254 bytes of UTF-8
    write_file(p(utf), b"utf")
    show("254-byte UTF-8 name", read_file(p(utf)))
    attempt("256-byte name create", os.open, p("n" * 256), os.O_WRONLY | os.O_CREAT)
    attempt("256-byte name stat", os.stat, p("n" * 256))
    attempt("256-byte name mkdir", os.mkdir, p("m" * 256))
    for name in ("with space", "-dash", "a.b.c", "tab\there", "ünïcödé", "UPPER", "upper"):
        write_file(p(name), name.encode())
    show("odd names", sorted(n for n in os.listdir(ROOT) if n in
                             ("with space", "-dash", "a.b.c", "tab\there", "ünïcödé",
                              "UPPER", "upper")))
    show("case kept", read_file(p("UPPER")) + read_file(p("upper")))


def renames():
    os.mkdir(p("r1"))
    os.mkdir(p("r2"))
    write_file(p("r1", "x"), b"x")
    write_file(p("r2", "y"), b"y")
    os.rename(p("r1", "x"), p("r2", "x"))
    show("rename across dirs", read_file(p("r2", "x")))
    show("rename old gone", os.path.exists(p("r1", "x")))
    os.rename(p("r2", "x"), p("r2", "y"))
    show("rename over file", read_file(p("r2", "y")))
    write_file(p("r1", "z"), b"z")
    attempt("NOREPLACE existing", renameat2, p("r1", "z"), p("r2", "y"), RENAME_NOREPLACE)
    attempt("NOREPLACE new", renameat2, p("r1", "z"), p("r2", "z"), RENAME_NOREPLACE)
    attempt("EXCHANGE", renameat2, p("r2", "y"), p("r2", "z"), RENAME_EXCHANGE)
    show("EXCHANGE result", read_file(p("r2", "y")) + read_file(p("r2", "z")))
    os.mkdir(p("r1", "sub"))
    attempt("EXCHANGE file and dir", renameat2, p("r2", "y"), p("r1", "sub"), RENAME_EXCHANGE)
    show("EXCHANGE file and dir result", (os.path.isdir(p("r2", "y")), os.path.isfile(p("r1", "sub"))))
    attempt("EXCHANGE missing", renameat2, p("r2", "z"), p("r2", "nope"), RENAME_EXCHANGE)
    attempt("rename missing", os.rename, p("r1", "nope"), p("r1", "q"))
    os.mkdir(p("r1", "full"))
    write_file(p("r1", "full", "f"), b"f")
    os.mkdir(p("r1", "empty"))
    attempt("rename dir over non-empty dir", os.rename, p("r1", "empty"), p("r1", "full"))
    attempt("rename dir over file", os.rename, p("r1", "empty"), p("r2", "z"))
    attempt("rename file over dir", os.rename, p("r2", "z"), p("r1", "empty"))
    attempt("rename dir into itself", os.rename, p("r1"), p("r1", "full", "inside"))
    os.mkdir(p("r2", "empty2"))
    attempt("rename dir over empty dir", os.rename, p("r1", "empty"), p("r2", "empty2"))
    attempt("rename dir across", os.rename, p("r1", "full"), p("r2", "full"))
    show("moved dir content", read_file(p("r2", "full", "f")))
    attempt("rename onto itself", os.rename, p("r2", "z"), p("r2", "z"))
    show("rename onto itself kept", read_file(p("r2", "z")))


def links():
    write_file(p("orig"), b"linked")
    os.link(p("orig"), p("hard"))
    show("link nlink", os.stat(p("orig")).st_nlink)
    show("link same inode", os.stat(p("orig")).st_ino == os.stat(p("hard")).st_ino)
    write_file(p("hard"), b"changed", os.O_WRONLY)
    show("link shares data", read_file(p("orig")))
    os.mkdir(p("ld"))
    os.link(p("orig"), p("ld", "hard2"))
    show("link across dirs", read_file(p("ld", "hard2")))
    attempt("link existing name", os.link, p("orig"), p("hard"))
    attempt("link a directory", os.link, p("ld"), p("ld2"))
    attempt("link missing", os.link, p("nope"), p("nope2"))
    os.unlink(p("orig"))
    show("unlink one link", (read_file(p("hard")), os.stat(p("hard")).st_nlink))
    os.symlink("hard", p("sym"))
    show("readlink", os.readlink(p("sym")))
    show("symlink follows", read_file(p("sym")))
    show("symlink lstat size", os.lstat(p("sym")).st_size)
    show("symlink is link", stat.S_ISLNK(os.lstat(p("sym")).st_mode))
    os.symlink("/abs/olute/../path with space", p("sym2"))
    show("readlink absolute", os.readlink(p("sym2")))
    os.symlink("dangling", p("sym3"))
    attempt("follow dangling", read_file, p("sym3"))
    attempt("symlink existing", os.symlink, "x", p("sym"))
    attempt("readlink a file", os.readlink, p("hard"))
    os.symlink("t" * 1000, p("symlong"))
    show("readlink 1000 bytes", os.readlink(p("symlong")) == "t" * 1000)


def attrs():
    write_file(p("m"), b"m")
    os.chmod(p("m"), 0o4751)
    show("chmod", oct(stat.S_IMODE(os.stat(p("m")).st_mode)))
    os.chmod(p("m"), 0o600)
    show("chmod again", oct(stat.S_IMODE(os.stat(p("m")).st_mode)))
    os.chown(p("m"), 1234, 5678)
    st = os.stat(p("m"))
    show("chown", (st.st_uid, st.st_gid))
    os.chown(p("m"), -1, 42)
    st = os.stat(p("m"))
    show("chgrp only", (st.st_uid, st.st_gid))
    os.utime(p("m"), ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p("m"))
    show("utimens", (st.st_atime_ns, st.st_mtime_ns))
    os.symlink("m", p("msym"))
    os.utime(p("msym"), ns=(3_000_000_000, 4_000_000_000), follow_symlinks=False)
    show("utimens symlink", os.lstat(p("msym")).st_mtime_ns)
    show("utimens symlink target kept", os.stat(p("m")).st_mtime_ns)
    before = os.stat(p("m")).st_mtime_ns
    write_file(p("m"), b"new", os.O_WRONLY)
    show("write moves mtime", os.stat(p("m")).st_mtime_ns != before)
    sv = os.statvfs(ROOT)
    show("statfs namemax", sv.f_namemax)
    show("statfs sane", sv.f_bsize > 0 and sv.f_blocks >= sv.f_bfree >= sv.f_bavail)
    attempt("mkfifo", os.mkfifo, p("fifo"), 0o640)
    show("fifo type", stat.S_ISFIFO(os.stat(p("fifo")).st_mode))
    show("fifo mode", oct(stat.S_IMODE(os.stat(p("fifo")).st_mode)))
    attempt("mkfifo existing", os.mkfifo, p("fifo"))
    pid = os.fork()
    if pid == 0:
        w = os.open(p("fifo"), os.O_WRONLY)
        os.write(w, b"through the fifo")
        os.close(w)
        os._exit(0)
    r = os.open(p("fifo"), os.O_RDONLY)
    got = b""
    while True:
        chunk = os.read(r, 100)
        if not chunk:
            break
        got += chunk
    os.close(r)
    os.waitpid(pid, 0)
    show("fifo data", got)


def xattrs():
    write_file(p("x"), b"x")
    os.setxattr(p("x"), "user.one", b"value 1")
    os.setxattr(p("x"), "user.two", b"")
    os.setxattr(p("x"), "user.big", b"B" * 3000)
    show("getxattr", os.getxattr(p("x"), "user.one"))
    show("getxattr empty", os.getxattr(p("x"), "user.two"))
    show("getxattr big", os.getxattr(p("x"), "user.big") == b"B" * 3000)
    show("listxattr", sorted(n for n in os.listxattr(p("x")) if n.startswith("user.")))
    attempt("XATTR_CREATE existing", os.setxattr, p("x"), "user.one", b"z", os.XATTR_CREATE)
    attempt("XATTR_REPLACE missing", os.setxattr, p("x"), "user.new", b"z", os.XATTR_REPLACE)
    os.setxattr(p("x"), "user.one", b"replaced", os.XATTR_REPLACE)
    show("replaced", os.getxattr(p("x"), "user.one"))
    os.removexattr(p("x"), "user.one")
    attempt("get removed", os.getxattr, p("x"), "user.one")
    attempt("remove missing", os.removexattr, p("x"), "user.one")
    show("listxattr after", sorted(n for n in os.listxattr(p("x")) if n.startswith("user.")))
    os.mkdir(p("xd"))
    os.setxattr(p("xd"), "user.dir", b"on a dir")
    show("dir xattr", os.getxattr(p("xd"), "user.dir"))
    os.rename(p("x"), p("xd", "x"))
    show("xattr after rename", os.getxattr(p("xd", "x"), "user.big") == b"B" * 3000)


def many():
    os.mkdir(p("many"))
    for i in range(MANY):
        fd = os.open(p("many", f"f{i:05d}"), os.O_WRONLY | os.O_CREAT, 0o644)
        if i % 500 == 0 or i == MANY - 1:
            os.write(fd, str(i).encode())
        os.close(fd)
    names = os.listdir(p("many"))
    show("many count", len(names))
    show("many names", sorted(names) == [f"f{i:05d}" for i in range(MANY)])
    show("many sample", read_file(p("many", "f00000")) + read_file(p("many", f"f{MANY - 1:05d}")))
    for i in range(0, MANY, 2):
        os.unlink(p("many", f"f{i:05d}"))
    show("many after half unlinked", len(os.listdir(p("many"))))
    attempt("rmdir many", os.rmdir, p("many"))


for part in (files, dirs, names, renames, links, attrs, xattrs, many):
    try:
        part()
    except Exception as e:  # one broken group must not hide the others
        show(f"{part.__name__} aborted", f"{type(e).__name__}: {e}")
