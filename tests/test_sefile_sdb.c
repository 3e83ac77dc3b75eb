/*
 * test_sefile_sdb.c - the secure database: SQLite through the SEfile VFS
 * against an emulated cube.  Tables, reopen, every page size up to the
 * sector payload (and a bigger one refused), every journal mode, no
 * plaintext in any backing file, two connections on one database,
 * tampering detected, an existing file keeps its own key, and a fault
 * sweep: the Nth write/sync/truncate/read of a transaction fails and the
 * last committed state survives.
 *
 * sdb.c and sdb_io.c are compiled into this program with SDB_TEST_FAULTS
 * (the fault hooks exist only in test builds); the library's sdb.o and
 * sdb_io.o are then not linked.  One emulated cube (tests/helper_emu.h)
 * serves the whole run, made before the tests fork, its emulator killed by
 * PID after them; each test opens its own logged-in pool.
 */
#define SDB_TEST_FAULTS 1
#include "../sefile/sdb.c"
#include "../sefile/sdb_io.c"

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/helper_emu.h"

#define KEY_A 7001
#define KEY_B 7002
#define KEY_CTR 7003
#define MARKER "PLAINTEXT-MARKER-0123456789"

static struct emu g_emu;        /* the cube of the whole run */
static char g_root[64];         /* temp dir of the run's databases */
static char g_dbdir[128];       /* databases of the current test */

/* Per test (in its forked child): a user pool and a VFS. */
static struct sefile_cube *pool;
static struct sdb_vfs *vfs;

static int make_key(struct cube *c, uint32_t id, uint8_t alg)
{
	struct cube_key k = { .id = id, .alg = alg, .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT,
			      .not_before = 0, .not_after = WIRE_TIME_NEVER };

	return cube_key_generate(c, &k);
}

/* Once, in the parent: a cube with three data keys. */
static void suite_setup(void)
{
	struct cube *c;

	emu_new(&g_emu);
	c = emu_login(&g_emu, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(make_key(c, KEY_A, WIRE_ALG_AES256_GCM), CUBE_OK);
	ck_assert_int_eq(make_key(c, KEY_B, WIRE_ALG_AES256_GCM), CUBE_OK);
	ck_assert_int_eq(make_key(c, KEY_CTR, WIRE_ALG_AES256_CTR_HMAC), CUBE_OK);
	cube_close(c);
	snprintf(g_root, sizeof(g_root), "/tmp/test-sdb.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_root));
}

static void suite_teardown(void)
{
	emu_free(&g_emu);
	emu_rmtree(g_root);
}

static void test_setup(void)
{
	char err[256] = "";
	static int n;

	snprintf(g_dbdir, sizeof(g_dbdir), "%s/db%d-%d", g_root, (int)getpid(), n++);
	ck_assert_int_eq(mkdir(g_dbdir, 0700), 0);
	ck_assert_msg(sefile_cube_open(&pool, g_emu.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err,
				       sizeof(err)) == SEFILE_OK, "pool: %s", err);
	ck_assert_int_eq(sdb_vfs_register(&vfs, "sdb-test", pool, KEY_A), SEFILE_OK);
}

static void test_teardown(void)
{
	sdb_vfs_unregister(vfs);
	vfs = NULL;
	sefile_cube_close(pool);
	pool = NULL;
}

/* ---- helpers ---- */

static void db_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", g_dbdir, name);
}

static sqlite3 *open_db(struct sdb_vfs *v, const char *name)
{
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	int rc;

	db_path(path, sizeof(path), name);
	rc = sdb_open(v, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db);
	ck_assert_msg(rc == SQLITE_OK, "open %s: %s", path, sqlite3_errstr(rc));
	return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	ck_assert_msg(rc == SQLITE_OK, "%s: %s (%d)", sql, msg ? msg : "", rc);
	sqlite3_free(msg);
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
		      sqlite3_errmsg(db));
	ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

/* n rows whose text holds the marker, in one transaction. */
static void insert_rows(sqlite3 *db, int n, int blob_len)
{
	char sql[256];

	exec_ok(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)");
	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) "
		 "INSERT INTO t(v, b) SELECT '" MARKER "' || i, zeroblob(%d) FROM c",
		 n, blob_len);
	exec_ok(db, "BEGIN");
	exec_ok(db, sql);
	exec_ok(db, "COMMIT");
}

/* Number of files in the test's directory holding the marker (or the
 * SQLite header text); *files gets how many regular files there are. */
static int files_with_plaintext(int *files)
{
	DIR *d = opendir(g_dbdir);
	struct dirent *e;
	int hits = 0;

	*files = 0;
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[PATH_MAX + 300];
		struct stat st;
		uint8_t *buf;
		ssize_t got;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", g_dbdir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
			continue;
		(*files)++;
		buf = malloc((size_t)st.st_size);
		ck_assert_ptr_nonnull(buf);
		fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		got = pread(fd, buf, (size_t)st.st_size, 0);
		close(fd);
		ck_assert_int_eq(got, st.st_size);
		if (memmem(buf, (size_t)got, MARKER, strlen(MARKER)) ||
		    memmem(buf, (size_t)got, "SQLite format 3", 15)) {
			fprintf(stderr, "plaintext in %s\n", path);
			hits++;
		}
		free(buf);
	}
	closedir(d);
	return hits;
}

/* ---- tests ---- */

START_TEST(basic_roundtrip_no_plaintext)
{
	sqlite3 *db = open_db(vfs, "basic.db");
	int files;

	insert_rows(db, 200, 100);
	/* a transaction in flight: the journal exists and holds old pages */
	exec_ok(db, "BEGIN");
	exec_ok(db, "UPDATE t SET v = v || '-" MARKER "' WHERE id % 3 = 0");
	ck_assert_int_eq(files_with_plaintext(&files), 0);
	ck_assert_int_ge(files, 2); /* database and journal */
	exec_ok(db, "COMMIT");
	ck_assert_int_eq(files_with_plaintext(&files), 0);
	integrity_ok(db);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

	db = open_db(vfs, "basic.db");
	ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 200);
	ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE v LIKE '%-" MARKER "'"), 66);
	ck_assert_int_eq(query_int(db, "SELECT length(b) FROM t WHERE id = 17"), 100);
	integrity_ok(db);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	ck_assert_int_eq(files_with_plaintext(&files), 0);
}
END_TEST

START_TEST(backing_is_sefile)
{
	char path[PATH_MAX];
	struct sefile_info info;
	sqlite3 *db = open_db(vfs, "hdr.db");
	int fd;

	insert_rows(db, 10, 10);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	db_path(path, sizeof(path), "hdr.db");
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sefile_peek_header(fd, &info), SEFILE_OK);
	close(fd);
	ck_assert_uint_eq(info.key_id, KEY_A);
	ck_assert_uint_eq(info.sector_size, 4096);
	ck_assert_uint_eq(info.size % 4096, 0);
}
END_TEST

START_TEST(page_sizes)
{
	static const int sizes[] = { 512, 1024, 2048, 4096 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char name[32], sql[64];
		sqlite3 *db;

		snprintf(name, sizeof(name), "p%d.db", sizes[i]);
		db = open_db(vfs, name);
		snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", sizes[i]);
		exec_ok(db, sql);
		insert_rows(db, 300, 700); /* overflow pages at small sizes */
		exec_ok(db, "UPDATE t SET b = zeroblob(900) WHERE id % 5 = 0");
		exec_ok(db, "DELETE FROM t WHERE id % 7 = 0");
		integrity_ok(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

		db = open_db(vfs, name);
		ck_assert_int_eq(query_int(db, "PRAGMA page_size"), sizes[i]);
		ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 300 - 300 / 7);
		ck_assert_int_eq(query_int(db, "SELECT length(b) FROM t WHERE id = 10"), 900);
		integrity_ok(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	}
}
END_TEST

START_TEST(page_size_over_sector_refused)
{
	struct sefile_params p = { .key_id = KEY_A, .sector_size = 1024 };
	struct sdb_vfs *small = NULL;
	char *msg = NULL;
	sqlite3 *db = open_db(vfs, "big.db");

	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA page_size=8192", NULL, NULL, &msg), SQLITE_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "sector"));
	sqlite3_free(msg);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

	/* a VFS with 1 KiB sectors: sdb_open picks 1024, 2048 is refused */
	ck_assert_int_eq(sdb_vfs_register_params(&small, "sdb-small", pool, &p), SEFILE_OK);
	ck_assert_uint_eq(sdb_vfs_sector_size(small), 1024);
	db = open_db(small, "small.db");
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA page_size=2048", NULL, NULL, NULL), SQLITE_ERROR);
	insert_rows(db, 100, 300);
	ck_assert_int_eq(query_int(db, "PRAGMA page_size"), 1024);
	integrity_ok(db);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	sdb_vfs_unregister(small);
}
END_TEST

START_TEST(bad_vfs_params)
{
	struct sefile_params p = { .key_id = KEY_A, .sector_size = 1000 };
	struct sdb_vfs *v = (struct sdb_vfs *)1;

	ck_assert_int_eq(sdb_vfs_register_params(&v, "sdb-bad", pool, &p), SEFILE_EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(sdb_vfs_register(&v, "sdb-test", pool, KEY_A), SEFILE_EINVAL); /* taken */
	ck_assert_int_eq(sdb_vfs_register(&v, "", pool, KEY_A), SEFILE_EINVAL);
}
END_TEST

START_TEST(journal_modes)
{
	static const char *const modes[] = { "delete", "truncate", "persist", "wal" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char name[32], sql[64];
		sqlite3 *db;
		int files;

		snprintf(name, sizeof(name), "j-%s.db", modes[i]);
		db = open_db(vfs, name);
		snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", modes[i]);
		exec_ok(db, sql);
		exec_ok(db, "PRAGMA wal_autocheckpoint=0");
		for (int k = 0; k < 3; k++)
			insert_rows(db, 50, 200);
		exec_ok(db, "UPDATE t SET v = v || 'u' WHERE id % 2 = 0");
		/* journal or WAL (and the plain -shm index) on disk now */
		ck_assert_int_eq(files_with_plaintext(&files), 0);
		ck_assert_int_ge(files, 1);
		integrity_ok(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

		db = open_db(vfs, name);
		ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 150);
		ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE v LIKE '%u'"), 75);
		integrity_ok(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
		ck_assert_int_eq(files_with_plaintext(&files), 0);
	}
}
END_TEST

/* Two connections on one file: each sees the other's commits (the VFS
 * notices the file grew under it), and closing one keeps the other's
 * locks working. */
static void two_connections(const char *name, const char *mode)
{
	char sql[64];
	sqlite3 *a = open_db(vfs, name), *b;

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	exec_ok(a, sql);
	insert_rows(a, 20, 50);
	b = open_db(vfs, name);
	ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 20);
	insert_rows(b, 500, 300); /* grows the file by many pages */
	ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 520);
	insert_rows(a, 5, 5);
	ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 525);
	exec_ok(a, "BEGIN IMMEDIATE");
	ck_assert_int_eq(sqlite3_busy_timeout(b, 0), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_BUSY);
	exec_ok(a, "COMMIT");
	ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
	insert_rows(b, 5, 5);
	integrity_ok(b);
	ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
}

START_TEST(two_connections_rollback)
{
	two_connections("two-r.db", "delete");
}
END_TEST

START_TEST(two_connections_wal)
{
	two_connections("two-w.db", "wal");
}
END_TEST

/* A writer process and a reader process at the same time: the reader
 * never sees an error or a count going down, and never repairs (cuts)
 * the file under the writer's append. */
static void concurrent_processes(const char *name, const char *mode)
{
	char sql[64], path[PATH_MAX];
	sqlite3 *db = open_db(vfs, name);
	int64_t last = 0, now;
	int status, reads = 0;
	pid_t pid;

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	exec_ok(db, sql);
	insert_rows(db, 1, 10);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	db_path(path, sizeof(path), name);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char err[256];
		struct sefile_cube *cp = NULL;
		struct sdb_vfs *cv = NULL;
		sqlite3 *w = NULL;
		int rc = 0;

		if (sefile_cube_open(&cp, g_emu.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err, sizeof(err)) ||
		    sdb_vfs_register(&cv, "sdb-writer", cp, KEY_A) ||
		    sdb_open(cv, path, SQLITE_OPEN_READWRITE, &w))
			_exit(2);
		for (int i = 0; i < 150 && rc == SQLITE_OK; i++)
			rc = sqlite3_exec(w, "INSERT INTO t(v, b) VALUES ('" MARKER "', randomblob(1500))",
					  NULL, NULL, NULL);
		_exit(rc == SQLITE_OK && sqlite3_close(w) == SQLITE_OK ? 0 : 3);
	}
	db = open_db(vfs, name);
	for (;;) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL);

		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		now = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (rc == SQLITE_BUSY)
			continue;
		ck_assert_msg(rc == SQLITE_ROW, "reader: %s (%d)", sqlite3_errmsg(db), rc);
		ck_assert_int_ge(now, last);
		last = now;
		reads++;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer status %d", status);
	ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 151);
	integrity_ok(db);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	ck_assert_int_gt(reads, 1);
}

START_TEST(concurrent_processes_rollback)
{
	concurrent_processes("conc-r.db", "delete");
}
END_TEST

START_TEST(concurrent_processes_wal)
{
	concurrent_processes("conc-w.db", "wal");
}
END_TEST

START_TEST(tamper_detected)
{
	char path[PATH_MAX];
	struct stat st;
	sqlite3 *db = open_db(vfs, "tamper.db");
	sqlite3_stmt *stm = NULL;
	uint8_t byte;
	int fd, rc;

	insert_rows(db, 300, 200);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	db_path(path, sizeof(path), "tamper.db");
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(pread(fd, &byte, 1, st.st_size / 2), 1);
	byte ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &byte, 1, st.st_size / 2), 1);
	close(fd);

	db = open_db(vfs, "tamper.db");
	rc = sqlite3_prepare_v2(db, "SELECT sum(length(b)) FROM t", -1, &stm, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stm);
	sqlite3_finalize(stm);
	ck_assert_msg(rc == SQLITE_IOERR_DATA || rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB,
		      "tampered database read gave %d (%s)", rc, sqlite3_errstr(rc));
	sqlite3_close(db);
}
END_TEST

/* A database made under one key opens through a VFS whose new files go
 * under another: its header names its key, and it keeps it. */
START_TEST(existing_file_keeps_key)
{
	struct sdb_vfs *other = NULL;
	struct sefile_info info;
	char path[PATH_MAX];
	sqlite3 *db = open_db(vfs, "keys.db");
	int fd;

	insert_rows(db, 10, 10);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	ck_assert_int_eq(sdb_vfs_register(&other, "sdb-other", pool, KEY_B), SEFILE_OK);
	db = open_db(other, "keys.db");
	insert_rows(db, 10, 10);
	ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 20);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	db = open_db(other, "keys-b.db");
	insert_rows(db, 1, 1);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	sdb_vfs_unregister(other);

	db_path(path, sizeof(path), "keys.db");
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sefile_peek_header(fd, &info), SEFILE_OK);
	close(fd);
	ck_assert_uint_eq(info.key_id, KEY_A);
	db_path(path, sizeof(path), "keys-b.db");
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sefile_peek_header(fd, &info), SEFILE_OK);
	close(fd);
	ck_assert_uint_eq(info.key_id, KEY_B);
}
END_TEST

START_TEST(ctr_hmac_database)
{
	struct sefile_params p = { .key_id = KEY_CTR, .alg = WIRE_ALG_AES256_CTR_HMAC };
	struct sdb_vfs *ctr = NULL;
	sqlite3 *db;
	int files;

	ck_assert_int_eq(sdb_vfs_register_params(&ctr, "sdb-ctr", pool, &p), SEFILE_OK);
	db = open_db(ctr, "ctr.db");
	insert_rows(db, 100, 100);
	integrity_ok(db);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	db = open_db(ctr, "ctr.db");
	ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 100);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	ck_assert_int_eq(files_with_plaintext(&files), 0);
	sdb_vfs_unregister(ctr);
}
END_TEST

/* ---- the fault sweep ---- */

/* The transaction under test: 30 new rows, an update, a delete. */
static int run_tx(sqlite3 *db)
{
	static const char *const steps[] = {
		"BEGIN",
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<30) "
		"INSERT INTO t(v, b) SELECT '" MARKER "', randomblob(600) FROM c",
		"UPDATE t SET v = v || 'x' WHERE id % 4 = 0",
		"DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY id LIMIT 3)",
		"COMMIT",
	};
	int rc = SQLITE_OK;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && rc == SQLITE_OK; i++)
		rc = sqlite3_exec(db, steps[i], NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

struct db_state {
	int64_t count, max_id, xs;
};

static struct db_state state_of(sqlite3 *db)
{
	struct db_state s = {
		.count = query_int(db, "SELECT count(*) FROM t"),
		.max_id = query_int(db, "SELECT coalesce(max(id), 0) FROM t"),
		.xs = query_int(db, "SELECT total(length(v)) FROM t"),
	};
	return s;
}

static void state_eq(struct db_state a, struct db_state b, const char *what, unsigned long n)
{
	ck_assert_msg(a.count == b.count && a.max_id == b.max_id && a.xs == b.xs,
		      "%s, fault %lu: state (%lld,%lld,%lld) != (%lld,%lld,%lld)", what, n,
		      (long long)a.count, (long long)a.max_id, (long long)a.xs,
		      (long long)b.count, (long long)b.max_id, (long long)b.xs);
}

/* For N = 1, 2, ...: the Nth operation of kind ops fails during run_tx.
 * The transaction either commits whole (rc OK) or reports an error and
 * leaves the state it started from: checked in the same connection (a
 * one-shot fault lets the rollback run) and after reopening without
 * faults (a hot journal, if the persistent fault left one, rolls back). */
static void fault_sweep(const char *name, const char *mode, unsigned ops, int persist)
{
	unsigned long n, fired_count = 0;
	char sql[64];
	sqlite3 *db = open_db(vfs, name);

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	exec_ok(db, sql);
	insert_rows(db, 40, 300);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

	for (n = 1; n < 400; n++) {
		struct db_state before, after_fail;
		int rc, fired;

		db = open_db(vfs, name);
		before = state_of(db);
		sdb_fault_arm(vfs, ops, n, persist);
		rc = run_tx(db);
		fired = sdb_fault_fired(vfs);
		sdb_fault_arm(vfs, 0, 0, 0);
		if (rc != SQLITE_OK) {
			ck_assert_msg(fired, "%s: tx failed (%d) without a fault", name, rc);
			fired_count++;
			if (!persist) {
				after_fail = state_of(db);
				state_eq(after_fail, before, "same connection", n);
			}
		}
		sqlite3_close(db); /* may report the fault's error: that is the point */

		db = open_db(vfs, name);
		integrity_ok(db);
		if (rc != SQLITE_OK) {
			state_eq(state_of(db), before, "reopened", n);
		} else {
			struct db_state now = state_of(db);
			ck_assert_int_eq(now.count, before.count + 27);
		}
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
		if (!fired)
			break; /* the whole transaction ran: every position swept */
	}
	ck_assert_msg(n < 400, "sweep did not end");
	fprintf(stderr, "fault sweep %s: %lu positions, %lu failed the transaction\n", name, n, fired_count);
	if (ops & (SDB_FAULT_WRITE | SDB_FAULT_SYNC))
		ck_assert_msg(fired_count > 0, "%s: no fault ever failed the transaction", name);
}

START_TEST(fault_sweep_write)
{
	fault_sweep("fw.db", "delete", SDB_FAULT_WRITE, 0);
	fault_sweep("fwp.db", "delete", SDB_FAULT_WRITE, 1);
}
END_TEST

START_TEST(fault_sweep_sync_truncate)
{
	fault_sweep("fs.db", "delete", SDB_FAULT_SYNC, 0);
	fault_sweep("fsp.db", "delete", SDB_FAULT_SYNC | SDB_FAULT_TRUNCATE, 1);
	fault_sweep("ft.db", "truncate", SDB_FAULT_TRUNCATE | SDB_FAULT_SYNC, 0);
}
END_TEST

START_TEST(fault_sweep_read)
{
	fault_sweep("fr.db", "delete", SDB_FAULT_READ, 0);
	fault_sweep("frp.db", "delete", SDB_FAULT_READ, 1);
}
END_TEST

START_TEST(fault_sweep_wal)
{
	fault_sweep("fwal.db", "wal", SDB_FAULT_WRITE | SDB_FAULT_SYNC, 0);
	fault_sweep("fwalp.db", "wal", SDB_FAULT_WRITE | SDB_FAULT_SYNC, 1);
}
END_TEST

static Suite *sdb_suite(void)
{
	Suite *s = suite_create("sefile_sdb");
	TCase *tc = tcase_create("sdb");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, basic_roundtrip_no_plaintext);
	tcase_add_test(tc, backing_is_sefile);
	tcase_add_test(tc, page_sizes);
	tcase_add_test(tc, page_size_over_sector_refused);
	tcase_add_test(tc, bad_vfs_params);
	tcase_add_test(tc, journal_modes);
	tcase_add_test(tc, two_connections_rollback);
	tcase_add_test(tc, two_connections_wal);
	tcase_add_test(tc, concurrent_processes_rollback);
	tcase_add_test(tc, concurrent_processes_wal);
	tcase_add_test(tc, tamper_detected);
	tcase_add_test(tc, existing_file_keeps_key);
	tcase_add_test(tc, ctr_hmac_database);
	tcase_add_test(tc, fault_sweep_write);
	tcase_add_test(tc, fault_sweep_sync_truncate);
	tcase_add_test(tc, fault_sweep_read);
	tcase_add_test(tc, fault_sweep_wal);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	emu_suite_begin();
	sr = srunner_create(sdb_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
