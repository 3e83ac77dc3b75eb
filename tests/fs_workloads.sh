#!/usr/bin/env bash
# fs_workloads.sh - real programs on a sekeyfs mount: a git repository
# (init, several commits, branches, gc, fsck), SQLite databases (rollback
# journal and WAL, transactions, a rollback, integrity_check), and two
# mounts of one BACKING that see each other's new files and contents after
# the attribute timeout.
. "$(dirname "$0")/fs_lib.sh"
mnt2="$work/mnt2"; pid2=
mkdir -p "$mnt2"
cleanup_all() {
	mountpoint -q "$mnt2" 2>/dev/null && { fusermount3 -u "$mnt2" 2>/dev/null || fusermount3 -uz "$mnt2"; }
	[ -n "$pid2" ] && { kill "$pid2" 2>/dev/null; wait "$pid2" 2>/dev/null; }
	fs_cleanup
}
trap cleanup_all EXIT

check "cube" fs_make_cube
check "init" fs_init
check "mount" fs_mount || { fs_summary; exit 1; }

# ---- git ----
if ! command -v git >/dev/null; then echo "SKIP git part: no git"; else
g() { git -C "$mnt/repo" -c user.name=T -c user.email=t@example.org -c gc.auto=0 "$@"; }
mkdir "$mnt/repo"
check "git init" g init -q
for i in 1 2 3 4 5; do
	seq 1 $((i * 1000)) >"$mnt/repo/file$i.txt"
	head -c 100000 /dev/urandom >"$mnt/repo/blob$i.bin"
	mkdir -p "$mnt/repo/dir$i/sub" && echo "$i" >"$mnt/repo/dir$i/sub/x"
	g add -A && g commit -q -m "commit $i" || bad "git commit $i"
done
check "git log has 5 commits" test "$(g rev-list --count HEAD)" -eq 5
g checkout -q -b side && echo side >"$mnt/repo/side" && g add side && g commit -q -m side
check "git branch and merge" bash -c "git -C '$mnt/repo' checkout -q master 2>/dev/null || git -C '$mnt/repo' checkout -q main; git -C '$mnt/repo' -c user.name=T -c user.email=t@e merge -q --no-edit side"
check "git fsck" g fsck --full --strict --no-progress
check "git gc" g gc -q
check "git fsck after gc" g fsck --full --no-progress
check "git status clean" test -z "$(g status --porcelain)"
rm -rf "$mnt/repo/dir3" && g checkout -q -- dir3
check "git restores a deleted tree" grep -qx 3 "$mnt/repo/dir3/sub/x"
fi

# ---- SQLite ----
if ! command -v sqlite3 >/dev/null; then echo "SKIP SQLite part: no sqlite3 (Debian package sqlite3)"; else
db="$mnt/db.sqlite"
sql() { sqlite3 -bail "$@"; }
check "sqlite create" sql "$db" "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);"
check "sqlite transaction" sql "$db" "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<20000) INSERT INTO t(v, b) SELECT 'row ' || x, randomblob(100) FROM c; COMMIT;"
check "sqlite rollback" sql "$db" "BEGIN; DELETE FROM t; ROLLBACK;"
check "sqlite rows kept" test "$(sql "$db" 'SELECT count(*) FROM t;')" -eq 20000
check "sqlite update+index" sql "$db" "BEGIN; CREATE INDEX iv ON t(v); UPDATE t SET v = v || '!' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0; COMMIT; VACUUM;"
check "sqlite integrity_check" test "$(sql "$db" 'PRAGMA integrity_check;')" = ok
check "sqlite WAL mode" test "$(sql "$mnt/wal.sqlite" 'PRAGMA journal_mode=WAL;')" = wal
sql "$mnt/wal.sqlite" "CREATE TABLE w(x); BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<5000) INSERT INTO w SELECT x FROM c; COMMIT; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
check "sqlite WAL rows" test "$(sql "$mnt/wal.sqlite" 'SELECT sum(x) FROM w;')" -eq 12502500
check "sqlite WAL integrity_check" test "$(sql "$mnt/wal.sqlite" 'PRAGMA integrity_check;')" = ok
fi

# ---- two mounts of one BACKING ----
"$bin/sekeyfs" -f --device "$cube" --pin-file "$work/user.pin" "$back" "$mnt2" 2>>"$work/sekeyfs2.log" &
pid2=$!
for _ in $(seq 1 100); do mountpoint -q "$mnt2" && break; sleep 0.05; done
check "second mount" mountpoint -q "$mnt2"
head -c 300000 /dev/urandom >"$mnt/shared.bin"
check "second mount reads the first's files" cmp -s "$mnt/shared.bin" "$mnt2/shared.bin"
ls "$mnt2" >/dev/null   # both mounts now have the root listing cached
echo "from one" >"$mnt/new1"; mkdir "$mnt/newdir"
echo "from two" >"$mnt2/new2"
sleep 1.3                # past the 1 s entry/attribute timeout
check "mount 2 sees mount 1's new file" grep -qx "from one" "$mnt2/new1"
check "mount 2 sees mount 1's new directory" test -d "$mnt2/newdir"
check "mount 1 sees mount 2's new file" grep -qx "from two" "$mnt/new2"
cat "$mnt2/new1" >/dev/null
echo "changed by one, longer" >"$mnt/new1"
sleep 1.3
check "mount 2 sees the new contents" grep -qx "changed by one, longer" "$mnt2/new1"
printf 'XY' | dd of="$mnt2/new1" bs=1 seek=0 conv=notrunc status=none
sleep 1.3
check "mount 1 sees an in-place change" grep -qx "XYanged by one, longer" "$mnt/new1"
rm "$mnt/new2"
sleep 1.3
check "mount 2 sees the removal" test ! -e "$mnt2/new2"
check "listings agree" diff <(ls -a "$mnt") <(ls -a "$mnt2")
fusermount3 -u "$mnt2"; wait "$pid2" 2>/dev/null; pid2=
check "unmount" fs_umount
fs_summary
