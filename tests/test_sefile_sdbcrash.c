/*
 * test_sefile_sdbcrash.c - SQLite's atomic commit through the SEfile VFS
 * survives kill -9.  50 rounds (fixed seed) of: a child process inserts
 * and updates rows in transactions through its own cube login and, after
 * each COMMIT returns, reports the committed row ids through a pipe; the
 * parent kills it with SIGKILL at a random moment, then reopens the
 * database: PRAGMA integrity_check says ok and every reported row is
 * there with the content its id determines.  Rounds 0-24 use a rollback
 * journal with 1 KiB pages (several pages per sector), rounds 25-49 WAL
 * with 4 KiB pages.  No backing file may hold the rows' plaintext.
 *
 * Every child is killed and reaped by PID; the emulator and the
 * directories go with tests/helper_emu.h's cleanup.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sefile/sdb.h"
#include "tests/helper_emu.h"

#define KEY_ID 9001
#define ROUNDS 50
#define SEED 0x5eed5eed12345678ull
#define MARKER "CRASH-PLAINTEXT-MARKER"
#define MAX_IDS 200000
#define CHILD_MAX_TX 3000

static struct emu g_emu;
static char g_dir[PATH_MAX + 8];
static int g_rounds = ROUNDS;

/* SDB_CRASH_ROUNDS / SDB_CRASH_SEED override the round count (even,
 * half rollback, half WAL) and the seed, for long hunts. */
static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return dflt;
	errno = 0;
	n = strtoull(v, &end, 0);
	return errno == 0 && *end == '\0' ? (uint64_t)n : dflt;
}

/* SQLite's error log (the VFS logs SEfile's message for every failure):
 * a failing round says which file and sector. */
static void log_to_stderr(void *arg, int code, const char *msg)
{
	(void)arg;
	if ((code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_CORRUPT ||
	    (code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CANTOPEN)
		fprintf(stderr, "[pid %ld] sqlite log %d: %s\n", (long)getpid(), code, msg);
}

/* xorshift64*: the same kill moments on every run. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* What a row with this id holds: the parent checks it. */
static int blob_len(int64_t id)
{
	return (int)((id * 977) % 5000);
}

/* ---- the child: transactions until killed ---- */

static int child_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int child_tx(sqlite3 *db, sqlite3_stmt *ins, int64_t *next_id, int n, int64_t *ids)
{
	int rc = child_exec(db, "BEGIN IMMEDIATE");

	for (int i = 0; rc == SQLITE_OK && i < n; i++) {
		int64_t id = (*next_id)++;

		ids[i] = id;
		sqlite3_bind_int64(ins, 1, id);
		sqlite3_bind_int(ins, 2, blob_len(id));
		rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_reset(ins);
	}
	/* rewrite older pages too, so the journal has work */
	if (rc == SQLITE_OK && (*next_id % 3) == 0)
		rc = child_exec(db, "UPDATE t SET n = n + 1 WHERE id % 13 = 0");
	if (rc == SQLITE_OK)
		rc = child_exec(db, "COMMIT");
	if (rc != SQLITE_OK)
		child_exec(db, "ROLLBACK");
	return rc;
}

static void child_run(const char *path, const char *mode, int page, int out, uint64_t seed)
{
	char err[256], sql[128];
	struct sefile_cube *pool = NULL;
	struct sdb_vfs *vfs = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	int64_t next_id, ids[64];

	if (sefile_cube_open(&pool, g_emu.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err, sizeof(err)) ||
	    sdb_vfs_register(&vfs, "sdb-crash-child", pool, KEY_ID) ||
	    sdb_open(vfs, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db))
		_exit(2);
	snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", page);
	if (child_exec(db, sql) ||
	    child_exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, "
			   "b BLOB, n INTEGER DEFAULT 0)"))
		_exit(3);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	if (child_exec(db, sql) ||
	    sqlite3_prepare_v2(db, "INSERT INTO t(id, v, b) VALUES (?1, '" MARKER "-' || ?1, "
			       "randomblob(?2))", -1, &ins, NULL))
		_exit(4);
	{
		sqlite3_stmt *st = NULL;

		if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) + 1 FROM t", -1, &st, NULL) ||
		    sqlite3_step(st) != SQLITE_ROW)
			_exit(5);
		next_id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	for (int tx = 0; tx < CHILD_MAX_TX; tx++) {
		/* mostly small transactions, now and then a big one */
		int n = (rnd_next(&seed) % 10 == 0) ? 40 : 1 + (int)(rnd_next(&seed) % 4);

		if (child_tx(db, ins, &next_id, n, ids) != SQLITE_OK)
			_exit(6);
		/* committed: only now may the parent count on these rows */
		if (write(out, ids, (size_t)n * sizeof(ids[0])) != (ssize_t)((size_t)n * sizeof(ids[0])))
			_exit(7);
	}
	_exit(0);
}

/* ---- the parent ---- */

struct reported {
	int64_t *ids;
	size_t n;
	uint8_t partial[sizeof(int64_t)];
	size_t npartial;
};

/* Take whatever the pipe holds; 0 at EOF, 1 if more may come, -1 error. */
static int drain(int fd, struct reported *r, int timeout_ms)
{
	uint8_t buf[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t got;
	size_t i;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	got = read(fd, buf, sizeof(buf));
	if (got < 0)
		return errno == EINTR ? 1 : -1;
	if (got == 0)
		return 0;
	for (i = 0; i < (size_t)got; i++) {
		r->partial[r->npartial++] = buf[i];
		if (r->npartial == sizeof(int64_t)) {
			ck_assert_uint_lt(r->n, MAX_IDS);
			memcpy(&r->ids[r->n++], r->partial, sizeof(int64_t));
			r->npartial = 0;
		}
	}
	return 1;
}

static void check_db(struct sdb_vfs *vfs, const char *path, const struct reported *r, int round)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	size_t i;

	ck_assert_int_eq(sdb_open(vfs, path, SQLITE_OPEN_READWRITE, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK,
		      "round %d: %s (%d)", round, sqlite3_errmsg(db), sqlite3_extended_errcode(db));
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_msg(!strcmp((const char *)sqlite3_column_text(st, 0), "ok"),
		      "round %d: integrity_check: %s", round, sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT v, length(b) FROM t WHERE id = ?1", -1, &st,
					    NULL), SQLITE_OK);
	for (i = 0; i < r->n; i++) {
		char want[64];

		snprintf(want, sizeof(want), MARKER "-%lld", (long long)r->ids[i]);
		sqlite3_bind_int64(st, 1, r->ids[i]);
		ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "round %d: committed row %lld lost",
			      round, (long long)r->ids[i]);
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), want);
		ck_assert_int_eq(sqlite3_column_int(st, 1), blob_len(r->ids[i]));
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

static void no_plaintext_on_disk(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[PATH_MAX * 2];
		struct stat st;
		uint8_t *buf;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", g_dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
			continue;
		buf = malloc((size_t)st.st_size);
		ck_assert_ptr_nonnull(buf);
		fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
		close(fd);
		ck_assert_msg(!memmem(buf, (size_t)st.st_size, MARKER, strlen(MARKER)),
			      "plaintext in %s", path);
		free(buf);
	}
	closedir(d);
}

/* One round: start a child, let it commit `target` transactions' worth
 * of reports plus a random few milliseconds, kill -9, reap, check. */
static int crash_round(struct sdb_vfs *vfs, int round, uint64_t *seed, struct reported *r)
{
	char journal[PATH_MAX * 2 + 16];
	struct stat jst;
	int hot;
	const int wal = round >= g_rounds / 2;
	char path[PATH_MAX * 2];
	size_t target, before = r->n;
	unsigned delay_us;
	int p[2], status, more = 1;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", g_dir, wal ? "crash-wal.db" : "crash-journal.db");
	target = before + 1 + rnd_next(seed) % 30;
	delay_us = (unsigned)(rnd_next(seed) % 15000);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		child_run(path, wal ? "wal" : "delete", wal ? 4096 : 1024, p[1], *seed ^ (uint64_t)round);
	}
	close(p[1]);
	while (more > 0 && r->n < target)
		more = drain(p[0], r, 20000);
	if (delay_us)
		usleep(delay_us);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	while (more > 0)
		more = drain(p[0], r, 5000); /* what it reported before it died */
	close(p[0]);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "round %d: child ended by itself (status %d) with %zu of %zu reports", round,
		      status, r->n - before, target - before);
	/* rollback rounds: killed inside a transaction, a journal is left
	 * behind (a WAL is always there, so it tells nothing) */
	snprintf(journal, sizeof(journal), "%s-journal", path);
	hot = !wal && stat(journal, &jst) == 0 && jst.st_size > 0;
	check_db(vfs, path, r, round);
	return hot;
}

START_TEST(kill9_keeps_committed_rows)
{
	struct reported journal = { 0 }, wal = { 0 };
	struct sefile_cube *pool = NULL;
	struct sdb_vfs *vfs = NULL;
	struct cube *c;
	struct cube_key k = { .id = KEY_ID, .alg = WIRE_ALG_AES256_GCM,
			      .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT,
			      .not_before = 0, .not_after = WIRE_TIME_NEVER };
	uint64_t seed = env_u64("SDB_CRASH_SEED", SEED);
	char err[256] = "";
	int left = 0;

	emu_new(&g_emu);
	c = emu_login(&g_emu, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(c, &k), CUBE_OK);
	cube_close(c);
	snprintf(g_dir, sizeof(g_dir), "%s/db", g_emu.dir);
	ck_assert_int_eq(mkdir(g_dir, 0700), 0);
	ck_assert_msg(sefile_cube_open(&pool, g_emu.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err,
				       sizeof(err)) == SEFILE_OK, "pool: %s", err);
	ck_assert_int_eq(sdb_vfs_register(&vfs, "sdb-crash", pool, KEY_ID), SEFILE_OK);
	journal.ids = calloc(MAX_IDS, sizeof(int64_t));
	wal.ids = calloc(MAX_IDS, sizeof(int64_t));
	ck_assert(journal.ids && wal.ids);

	for (int round = 0; round < g_rounds; round++)
		left += crash_round(vfs, round, &seed, round >= g_rounds / 2 ? &wal : &journal);
	fprintf(stderr, "crash loop: %zu + %zu committed rows checked over %d kills, "
		"%d of the rollback ones left a hot journal\n", journal.n, wal.n, g_rounds, left);
	ck_assert_int_gt(left, 0);
	no_plaintext_on_disk();

	free(journal.ids);
	free(wal.ids);
	sdb_vfs_unregister(vfs);
	sefile_cube_close(pool);
	emu_free(&g_emu);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_sdbcrash");
	TCase *tc = tcase_create("crash");
	SRunner *sr;
	int failed;

	g_rounds = (int)env_u64("SDB_CRASH_ROUNDS", ROUNDS);
	if (g_rounds < 2 || g_rounds > 100000)
		g_rounds = ROUNDS;
	sqlite3_config(SQLITE_CONFIG_LOG, log_to_stderr, NULL);
	emu_suite_begin();
	/* about 0.5 s a round, up to 3 s under ASan on a loaded machine */
	tcase_set_timeout(tc, g_rounds <= ROUNDS ? 150 : 5 * g_rounds);
	tcase_add_test(tc, kill9_keeps_committed_rows);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
