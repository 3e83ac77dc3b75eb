/*
 * test_sefile_crash.c - SEfile survives a kill -9 at every point of every
 * size-changing operation.  This program compiles sefile's io.c, file.c
 * and verify.c itself with SEKEYFS_TEST_FAULTS (sefile/sefile_impl.h), so
 * every backing call goes through the switch below, which plays a process
 * that dies after its Nth backing write (pwrite or ftruncate): that call
 * and everything after it never happen.  What reached the backing file
 * before is kept, exactly as the page cache keeps a killed process's
 * completed writes.
 *
 * For a grid of starting files (sizes around sector boundaries, written or
 * sparse) and operations (appends that grow a partial last sector in
 * place, appends across sectors and past the end, overwrites across the
 * end, truncates up and down, inside and across sectors), for every N:
 *   - a read-only open (what another process or the secure database's
 *     read handle does first) succeeds, reads the whole file and every
 *     sector holds the old or the new content; the size is old or new;
 *   - so does sefile_verify, which never repairs;
 *   - a read-write open repairs, and is itself killed after each of its
 *     writes in turn (a second crash): the file still opens and reads;
 *   - after the repair the file takes one more write and reads back.
 * A sector or header that a later open judged damaged after any of these
 * crashes would fail here, naming the start, the operation and N.
 */
#define SEKEYFS_TEST_FAULTS
#include "sefile/io.c"
#include "sefile/file.c"
#include "sefile/verify.c"

#include <check.h>

#include "helper_emu.h"

/* ---- the switch: a process that dies after its Nth backing write ---- */

/* How the fatal write ends: not at all, or torn.  Linux checks for a
 * fatal signal between the pages (folios) of a buffered write, so a
 * SIGKILL can stop one pwrite at any page boundary inside it (measured:
 * a 4124-byte append, the size of a SEfile sector, is cut at a 4 KiB
 * boundary in about a third of random kills on this kernel). */
enum tear { TEAR_NONE, TEAR_FIRST_PAGE, TEAR_LAST_PAGE, TEAR_MODES };
static const char *const tear_names[TEAR_MODES] = { "not written",
						    "torn at its first page boundary",
						    "torn at its last page boundary" };

struct death {
	long writes_left; /* backing writes still allowed; < 0: immortal */
	long writes;      /* backing writes made */
	int dead;
	enum tear tear;   /* what the fatal pwrite leaves */
};

static struct death g_death = { -1, 0, 0, TEAR_NONE };

#define PAGE 4096

static void live_forever(void)
{
	g_death.writes_left = -1;
	g_death.writes = 0;
	g_death.dead = 0;
}

static void die_after(long n, enum tear t)
{
	g_death.writes_left = n;
	g_death.writes = 0;
	g_death.dead = 0;
	g_death.tear = t;
}

/* The part of a fatal pwrite that reaches the file: up to a page
 * boundary inside it (a write inside one page is never torn). */
static size_t torn_len(size_t n, off_t off)
{
	size_t first = PAGE - (size_t)(off % PAGE), last = (size_t)((off + (off_t)n - 1) / PAGE * PAGE - off);

	if (first >= n)
		return 0;
	return g_death.tear == TEAR_FIRST_PAGE ? first : g_death.tear == TEAR_LAST_PAGE ? last : 0;
}

/* 1 if the call must not happen (the process is dead by now). */
static int is_dead(int is_write)
{
	if (g_death.dead)
		return 1;
	if (!is_write)
		return 0;
	if (g_death.writes_left == 0) {
		g_death.dead = 1;
		return 1;
	}
	if (g_death.writes_left > 0)
		g_death.writes_left--;
	g_death.writes++;
	return 0;
}

ssize_t sefile_fault_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	int was_dead = g_death.dead;

	if (is_dead(1)) {
		size_t part = was_dead ? 0 : torn_len(n, off);

		if (part)
			ck_assert((pwrite)(fd, buf, part, off) == (ssize_t)part);
		errno = EIO;
		return -1;
	}
	return (pwrite)(fd, buf, n, off);
}

ssize_t sefile_fault_pread(int fd, void *buf, size_t n, off_t off)
{
	if (is_dead(0)) {
		errno = EIO;
		return -1;
	}
	return (pread)(fd, buf, n, off);
}

int sefile_fault_fsync(int fd)
{
	if (is_dead(0)) {
		errno = EIO;
		return -1;
	}
	return (fsync)(fd);
}

int sefile_fault_ftruncate(int fd, off_t len)
{
	if (is_dead(1)) {
		errno = EIO;
		return -1;
	}
	return (ftruncate)(fd, len);
}

int sefile_fault_renameat(int od, const char *on, int nd, const char *nn)
{
	if (is_dead(1)) {
		errno = EIO;
		return -1;
	}
	return (renameat)(od, on, nd, nn);
}

/* ---- the environment ---- */

#define KEY 7
#define SECTOR 4096u
#define MAX_SIZE (8u * SECTOR)

struct env {
	struct emu e;
	struct sefile_cube *pool;
	char path[PATH_MAX + 32];
	uint8_t snap[MAX_SIZE * 2 + 4096]; /* backing bytes of the starting file */
	size_t snap_len;
	uint8_t old[MAX_SIZE], new[MAX_SIZE], got[MAX_SIZE], data[MAX_SIZE];
	uint64_t old_size, new_size;
	enum tear tear;   /* how the sweep's fatal writes end */
	char what[200];   /* the case, for messages */
};

static void env_up(struct env *v)
{
	struct cube_key k = { KEY, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0,
			      WIRE_TIME_NEVER };
	struct cube *c;
	char err[256];

	emu_new(&v->e);
	c = emu_login(&v->e, WIRE_ROLE_ADMIN);
	ck_assert_msg(cube_key_generate(c, &k) == CUBE_OK, "%s", cube_errmsg(c));
	cube_close(c);
	ck_assert_msg(sefile_cube_open(&v->pool, v->e.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err,
				       sizeof(err)) == SEFILE_OK, "pool: %s", err);
	snprintf(v->path, sizeof(v->path), "%s/f", v->e.dir);
	for (size_t i = 0; i < MAX_SIZE; i++)
		v->data[i] = (uint8_t)(i * 13 + 101);
}

static void env_down(struct env *v)
{
	live_forever();
	unlink(v->path);
	sefile_cube_close(v->pool);
	emu_free(&v->e);
}

/* ---- starting files ---- */

struct start {
	const char *name;
	uint64_t size;
	int sparse;       /* made by truncate up: all holes */
};

/* Make the starting file, remember its backing bytes and plaintext. */
static void make_start(struct env *v, const struct start *s)
{
	struct sefile_params p = { KEY, WIRE_ALG_AES256_GCM, SECTOR };
	struct sefile *f;
	int fd;

	live_forever();
	unlink(v->path);
	fd = open(v->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert(sefile_create(&f, v->pool, fd, &p) == SEFILE_OK);
	memset(v->old, 0, sizeof(v->old));
	if (s->sparse) {
		ck_assert(sefile_truncate(f, s->size) == SEFILE_OK);
	} else if (s->size) {
		for (size_t i = 0; i < s->size; i++)
			v->old[i] = (uint8_t)(i * 7 + 1);
		ck_assert(sefile_pwrite(f, v->old, s->size, 0) == (ssize_t)s->size);
	}
	ck_assert(sefile_close(f) == SEFILE_OK);
	v->old_size = s->size;
	v->snap_len = (size_t)lseek(fd, 0, SEEK_END);
	ck_assert_uint_le(v->snap_len, sizeof(v->snap));
	ck_assert((size_t)(pread)(fd, v->snap, v->snap_len, 0) == v->snap_len);
	close(fd);
}

static void restore(struct env *v)
{
	int fd;

	unlink(v->path);
	fd = open(v->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert((size_t)(pwrite)(fd, v->snap, v->snap_len, 0) == v->snap_len);
	close(fd);
}

/* ---- operations ---- */

struct op {
	const char *name;
	int truncate;     /* truncate to off; else pwrite len bytes at off */
	int64_t off;      /* negative: relative to the old size */
	uint64_t len;
};

static uint64_t op_off(const struct env *v, const struct op *o)
{
	int64_t off = o->off < 0 ? (int64_t)v->old_size + o->off + 1 : o->off;

	return off < 0 ? 0 : (uint64_t)off;
}

/* The plaintext after op, in v->new / v->new_size. */
static void model_op(struct env *v, const struct op *o)
{
	uint64_t off = op_off(v, o);

	memcpy(v->new, v->old, sizeof(v->new));
	if (o->truncate) {
		v->new_size = off;
		if (off < v->old_size)
			memset(v->new + off, 0, MAX_SIZE - off);
		return;
	}
	memcpy(v->new + off, v->data, o->len);
	v->new_size = off + o->len > v->old_size ? off + o->len : v->old_size;
}

static int run_op(struct env *v, struct sefile *f, const struct op *o)
{
	uint64_t off = op_off(v, o);
	ssize_t n;

	if (o->truncate)
		return sefile_truncate(f, off);
	n = sefile_pwrite(f, v->data, o->len, off);
	return n == (ssize_t)o->len ? SEFILE_OK : n < 0 ? (int)n : SEFILE_EIO;
}

/* ---- checks after a crash ---- */

/* Size old or new; every sector the old or the new content. */
static void check_content(struct env *v, uint64_t size, const char *how)
{
	ck_assert_msg(size == v->old_size || size == v->new_size,
		      "%s, %s: size %llu, neither old %llu nor new %llu", v->what, how,
		      (unsigned long long)size, (unsigned long long)v->old_size,
		      (unsigned long long)v->new_size);
	for (uint64_t s = 0; s < size; s += SECTOR) {
		uint64_t n = size - s < SECTOR ? size - s : SECTOR;

		ck_assert_msg(!memcmp(v->got + s, v->old + s, n) || !memcmp(v->got + s, v->new + s, n),
			      "%s, %s: sector %llu holds neither the old nor the new bytes", v->what,
			      how, (unsigned long long)(s / SECTOR));
	}
}

/* Open (read-only or read-write), read all, check; returns the size. */
static uint64_t open_and_check(struct env *v, int writable, const char *how)
{
	struct sefile *f;
	uint64_t size = 0;
	ssize_t n;
	int fd = open(v->path, writable ? O_RDWR : O_RDONLY), rc;

	ck_assert_int_ge(fd, 0);
	rc = sefile_open(&f, v->pool, fd);
	ck_assert_msg(rc == SEFILE_OK, "%s, %s: open: %s", v->what, how, sefile_errmsg());
	sefile_size(f, &size);
	ck_assert_uint_le(size, MAX_SIZE);
	memset(v->got, 0xee, sizeof(v->got));
	n = sefile_pread(f, v->got, MAX_SIZE, 0);
	ck_assert_msg(n == (ssize_t)size, "%s, %s: read: %s", v->what, how, sefile_errmsg());
	check_content(v, size, how);
	ck_assert(sefile_close(f) == SEFILE_OK);
	if (!writable) {
		rc = sefile_verify(v->pool, fd, NULL, NULL);
		ck_assert_msg(rc == SEFILE_OK, "%s, %s: verify: %s", v->what, how, sefile_errmsg());
	}
	close(fd);
	return size;
}

/* The backing bytes now, to come back to between second crashes. */
static size_t save_backing(struct env *v, uint8_t *buf, size_t cap)
{
	int fd = open(v->path, O_RDONLY);
	off_t len;

	ck_assert_int_ge(fd, 0);
	len = lseek(fd, 0, SEEK_END);
	ck_assert((size_t)len <= cap);
	ck_assert((pread)(fd, buf, (size_t)len, 0) == len);
	close(fd);
	return (size_t)len;
}

static void put_backing(struct env *v, const uint8_t *buf, size_t len)
{
	int fd = open(v->path, O_RDWR | O_TRUNC);

	ck_assert_int_ge(fd, 0);
	ck_assert((size_t)(pwrite)(fd, buf, len, 0) == len);
	close(fd);
}

/* The repairing open, killed after each of its writes in turn; then
 * whatever it left must still open and read. */
static void second_crashes(struct env *v)
{
	static uint8_t crashed[MAX_SIZE * 2 + 4096];
	size_t len = save_backing(v, crashed, sizeof(crashed));
	for (long m = 0;; m++) {
		struct sefile *f = NULL;
		int fd, rc, died;

		put_backing(v, crashed, len);
		fd = open(v->path, O_RDWR);
		ck_assert_int_ge(fd, 0);
		die_after(m, v->tear);
		rc = sefile_open(&f, v->pool, fd);
		died = g_death.dead;
		live_forever();
		if (rc == SEFILE_OK)
			sefile_close(f);
		close(fd);
		ck_assert_msg(rc == SEFILE_OK || died, "%s: repair failed without a crash: %s", v->what,
			      sefile_errmsg());
		if (!died)
			break; /* the repair made fewer than m + 1 writes: done */
		open_and_check(v, 0, "read-only after a crashed repair");
		open_and_check(v, 1, "read-write after a crashed repair");
	}
	put_backing(v, crashed, len);
}

/* After the repair the file works: one more write lands and reads back. */
static void write_after(struct env *v)
{
	struct sefile *f;
	uint64_t size = 0;
	uint8_t tail[100];
	int fd = open(v->path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_msg(sefile_open(&f, v->pool, fd) == SEFILE_OK, "%s: %s", v->what, sefile_errmsg());
	sefile_size(f, &size);
	memset(tail, 0x5a, sizeof(tail));
	ck_assert_msg(sefile_pwrite(f, tail, sizeof(tail), size) == (ssize_t)sizeof(tail),
		      "%s: write after the repair: %s", v->what, sefile_errmsg());
	ck_assert(sefile_pread(f, v->got, MAX_SIZE, 0) == (ssize_t)(size + sizeof(tail)));
	ck_assert(memcmp(v->got + size, tail, sizeof(tail)) == 0);
	ck_assert(sefile_close(f) == SEFILE_OK);
	close(fd);
}

/* One starting file, one operation, killed after each write in turn. */
static long sweep_op(struct env *v, const struct start *s, const struct op *o)
{
	struct sefile *f;
	long total, n;
	int fd, rc;

	model_op(v, o);
	/* how many writes the whole operation makes */
	restore(v);
	fd = open(v->path, O_RDWR);
	ck_assert(sefile_open(&f, v->pool, fd) == SEFILE_OK);
	die_after(-1, TEAR_NONE);
	rc = run_op(v, f, o);
	total = g_death.writes;
	live_forever();
	ck_assert_msg(rc == SEFILE_OK, "%s / %s: %s", s->name, o->name, sefile_errmsg());
	sefile_close(f);
	close(fd);
	for (n = 0; n <= total; n++) {
		snprintf(v->what, sizeof(v->what), "start %s, %s, killed at write %ld of %ld (%s)",
			 s->name, o->name, n + 1, total, tear_names[v->tear]);
		restore(v);
		fd = open(v->path, O_RDWR);
		ck_assert(sefile_open(&f, v->pool, fd) == SEFILE_OK);
		die_after(n, v->tear);
		rc = run_op(v, f, o);
		live_forever();
		ck_assert_msg((rc == SEFILE_OK) == (n == total), "%s: returned %d", v->what, rc);
		sefile_close(f);
		close(fd);
		open_and_check(v, 0, "read-only open");
		second_crashes(v);
		open_and_check(v, 1, "read-write open");
		write_after(v);
	}
	return total;
}

static const struct start starts[] = {
	{ "empty", 0, 0 },
	{ "1 byte", 1, 0 },
	{ "300 bytes", 300, 0 },
	{ "one sector", SECTOR, 0 },
	{ "1.5 sectors", SECTOR + SECTOR / 2, 0 },
	{ "3 sectors + 100", 3 * SECTOR + 100, 0 },
	{ "sparse 1.5 sectors", SECTOR + SECTOR / 2, 1 },
	{ "sparse 3 sectors + 100", 3 * SECTOR + 100, 1 },
};

static const struct op ops[] = {
	/* off < 0: relative to the end (-1 is the old size) */
	{ "append 24 bytes (last sector grows in place)", 0, -1, 24 },
	{ "append 1 byte", 0, -1, 1 },
	{ "append a sector and a half", 0, -1, SECTOR + SECTOR / 2 },
	{ "write 100 bytes across the end", 0, -51, 100 },
	{ "write 3 sectors across the end", 0, -201, 3 * SECTOR },
	{ "write 10 bytes a sector past the end", 0, -1 + SECTOR, 10 },
	{ "write 10 bytes 3 sectors past the end", 0, -1 + 3 * SECTOR, 10 },
	{ "overwrite 10 bytes at 5", 0, 5, 10 },
	{ "truncate up by 10", 1, -1 + 10, 0 },
	{ "truncate up by 2 sectors", 1, -1 + 2 * SECTOR, 0 },
	{ "truncate down by 10", 1, -1 - 10, 0 },
	{ "truncate down by a sector and 10", 1, -1 - SECTOR - 10, 0 },
	{ "truncate to a sector boundary", 1, SECTOR, 0 },
	{ "truncate to 0", 1, 0, 0 },
};

static void sweep_starts(size_t from, size_t to, enum tear t)
{
	struct env *v = calloc(1, sizeof(*v));
	long calls = 0;

	ck_assert_ptr_nonnull(v);
	v->tear = t;
	env_up(v);
	for (size_t i = from; i < to; i++) {
		make_start(v, &starts[i]);
		for (size_t j = 0; j < sizeof(ops) / sizeof(ops[0]); j++) {
			if (!ops[j].truncate && ops[j].len == 0)
				continue;
			if (op_off(v, &ops[j]) + ops[j].len > MAX_SIZE)
				continue;
			calls += sweep_op(v, &starts[i], &ops[j]) + 1;
		}
	}
	printf("starts %zu..%zu, fatal write %s: %ld crash points, each reopened read-only, "
	       "repaired under second crashes, and written again\n", from, to - 1, tear_names[t],
	       calls);
	env_down(v);
	free(v);
}

/* _i: the tear mode */
START_TEST(crash_written_files)
{
	sweep_starts(0, 6, (enum tear)_i);
}
END_TEST

START_TEST(crash_sparse_files)
{
	sweep_starts(6, sizeof(starts) / sizeof(starts[0]), (enum tear)_i);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_crash");
	TCase *tc = tcase_create("crash");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, crash_written_files, 0, TEAR_MODES);
	tcase_add_loop_test(tc, crash_sparse_files, 0, TEAR_MODES);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
