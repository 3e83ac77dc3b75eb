#!/usr/bin/env bash
# fs_readdir.sh - listings that readdir builds from batches (fs/readdir.c
# reads FS_DIRENT_BATCH backing entries ahead and decrypts their names in
# one SIV_DECRYPT_BATCH request): a directory of 700 entries (short names,
# names long enough to need side files, subdirectories) is listed whole,
# with readdir and with readdirplus (ls -l), when every reply fills in the
# middle of a batch; seekdir back to positions at and around batch
# boundaries resumes at exactly the entry telldir named; a backing entry
# renamed to garbage and one moved in from another directory are skipped
# (and logged) while the rest are listed; the root shows /.sekey/ and not
# its header.
. "$(dirname "$0")/fs_lib.sh"
N=${FS_READDIR_N:-700}

# names.py DIR N: the expected names, one a line (shared with the checks)
cat >"$work/names.py" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    if i % 50 == 7:
        print("long-%04d-" % i + "L" * 200)      # a side-file long name
    elif i % 100 == 3:
        print("dir-%04d" % i)
    else:
        print("f%04d-" % i + "x" * (i % 60))
EOF
# seek.py DIR FULL_LIST_FILE: libc opendir/readdir/telldir/seekdir
cat >"$work/seek.py" <<'EOF'
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]

def read(d, limit=None):
    out = []
    while limit is None or len(out) < limit:
        pos = libc.telldir(d)
        e = libc.readdir(d)
        if not e:
            break
        out.append((pos, e.contents.d_name.decode()))
    return out

path = sys.argv[1].encode()
d = libc.opendir(path)
full = read(d)
libc.closedir(d)
want = sorted(open(sys.argv[2]).read().split("\n")[:-1] + [".", ".."])
if sorted(n for _, n in full) != want:
    print("full listing differs: %d entries, want %d" % (len(full), len(want)))
    sys.exit(1)
bad = 0
last = len(full) - 1
for k in sorted({0, 1, 2, 63, 64, 65, 127, 128, 129, 300, last}):
    if k > last:
        continue
    d = libc.opendir(path)
    read(d, min(k + 40, len(full)))     # read past k, then go back
    libc.seekdir(d, full[k][0])
    rest = [n for _, n in read(d)]
    libc.closedir(d)
    if rest != [n for _, n in full[k:]]:
        print("seekdir to entry %d: %d entries, want %d (first %s)" %
              (k, len(rest), len(full) - k, rest[:1]))
        bad += 1
sys.exit(1 if bad else 0)
EOF

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }
python3 "$work/names.py" "$N" | sort >"$work/want"
mkdir "$mnt/d" "$mnt/e"
while read -r n; do
	case $n in dir-*) mkdir "$mnt/d/$n" ;; *) : >"$mnt/d/$n" ;; esac
done <"$work/want"
: >"$mnt/e/from-e"
check "readdir lists every entry" diff "$work/want" <(ls -A "$mnt/d" | sort)
check "readdirplus (ls -l) lists every entry" test "$(ls -lA "$mnt/d" | grep -c '^[-d]')" -eq "$N"
check "root lists /.sekey/, not its header" test "$(ls -A "$mnt" | sort | tr '\n' ' ')" = ".sekey d e "
check "unmount" fs_umount

# Fresh mount: no listing cached in the kernel, so the seeks reach readdir.
check "remount" fs_mount
check "seekdir resumes where telldir said" python3 "$work/seek.py" "$mnt/d" "$work/want"
check "unmount" fs_umount

# Tamper with BACKING: the directory of d is the one with the most entries;
# e's holds one file (and its header).
bd=$(for x in "$back"/*/; do echo "$(ls -A "$x" | wc -l) $x"; done | sort -n | tail -n 1 | cut -d' ' -f2)
be=$(for x in "$back"/*/; do echo "$(ls -A "$x" | wc -l) $x"; done | sort -n | head -n 1 | cut -d' ' -f2)
victim=$(ls "$bd" | grep -v -e '^sl\.' -e '^\.' | head -n 1)
moved=$(ls "$be" | grep -v '^\.' | head -n 1)
check "backing entries found" test -n "$victim" -a -n "$moved" -a "$bd" != "$be"
mv "$bd/$victim" "$bd/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
cp -a "$be/$moved" "$bd/$moved"
check "remount after tampering" fs_mount
got=$(ls -A "$mnt/d" | sort)
check "one entry fewer, the rest listed" test "$(echo "$got" | wc -l)" -eq $((N - 1))
check "listed names are all genuine" bash -c "comm -13 '$work/want' <(echo \"\$1\") | grep -q . && exit 1 || exit 0" _ "$got"
check "the moved-in entry is not listed" bash -c "! echo \"\$1\" | grep -qx from-e" _ "$got"
check "skipped entries are logged" grep -q "readdir: skipped an entry" "$work/sekeyfs.log"
check "the mount still serves" test -f "$mnt/e/from-e"
check "unmount" fs_umount
fs_summary
