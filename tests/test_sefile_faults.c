/*
 * test_sefile_faults.c - SEfile under backing-file I/O errors.  This
 * program compiles sefile's io.c, file.c and verify.c itself with
 * SEKEYFS_TEST_FAULTS (see sefile/sefile_impl.h), so every pwrite, pread,
 * fsync/fdatasync, ftruncate and renameat they make goes through the
 * switch below; the library proper has no switch.  (The other sefile
 * objects come from libsefile.a as usual; io.o, file.o and verify.o are
 * never pulled from it because this file defines all their symbols.)
 *
 * For each whole operation (append, overwrite, a multi-request append,
 * truncate down and up, fsync, pread, rekey) the sweep first counts the
 * backing calls it makes, then for N = 1..count restores the file, fails
 * the Nth call (EIO or ENOSPC, alternating), and checks that:
 *   - the operation returns an error (a fault is never swallowed);
 *   - the file reopens (repairing crash residue), verifies, and holds
 *     the previous content: bytes the operation did not cover are the old
 *     ones, its size is the old or the new one, and what it covered is old
 *     or new sector by sector; a failed pread hands out no bytes; a failed
 *     rekey leaves the file readable (old or new key) and no temp file.
 */
#define SEKEYFS_TEST_FAULTS
#include "sefile/io.c"
#include "sefile/file.c"
#include "sefile/verify.c"

#include <check.h>
#include <dirent.h>

#include "helper_emu.h"

/* ---- the switch ---- */

struct fault_switch {
	unsigned mask;   /* enum sefile_fault_kind bits that count */
	long fail_at;    /* fail this call (1-based); 0 = count only */
	long calls;      /* counted calls so far */
	int err;         /* errno of the failure */
	int fired;
};

static struct fault_switch sw;

static void fault_arm(unsigned mask, long fail_at, int err)
{
	memset(&sw, 0, sizeof(sw));
	sw.mask = mask;
	sw.fail_at = fail_at;
	sw.err = err;
}

static void fault_off(void)
{
	sw.mask = 0;
}

static int fault_hit(unsigned kind)
{
	if (!(sw.mask & kind))
		return 0;
	if (++sw.calls != sw.fail_at)
		return 0;
	sw.fired = 1;
	errno = sw.err;
	return 1;
}

ssize_t sefile_fault_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return fault_hit(SEFILE_FAULT_PWRITE) ? -1 : (pwrite)(fd, buf, n, off);
}

ssize_t sefile_fault_pread(int fd, void *buf, size_t n, off_t off)
{
	return fault_hit(SEFILE_FAULT_PREAD) ? -1 : (pread)(fd, buf, n, off);
}

int sefile_fault_fsync(int fd)
{
	return fault_hit(SEFILE_FAULT_FSYNC) ? -1 : (fsync)(fd);
}

int sefile_fault_ftruncate(int fd, off_t len)
{
	return fault_hit(SEFILE_FAULT_FTRUNCATE) ? -1 : (ftruncate)(fd, len);
}

int sefile_fault_renameat(int od, const char *on, int nd, const char *nn)
{
	return fault_hit(SEFILE_FAULT_RENAMEAT) ? -1 : (renameat)(od, on, nd, nn);
}

#define ALL_FAULTS (SEFILE_FAULT_PWRITE | SEFILE_FAULT_PREAD | SEFILE_FAULT_FSYNC | \
		    SEFILE_FAULT_FTRUNCATE | SEFILE_FAULT_RENAMEAT)

/* ---- the environment ---- */

#define K_OLD 1
#define K_NEW 2
#define OLD_SIZE 10000u
#define MAX_SIZE (3u << 20)

struct env {
	struct emu e;
	struct sefile_cube *pool;
	char dir[PATH_MAX + 16];
	char path[PATH_MAX + 32];
	int dirfd;
	uint8_t *old;    /* previous plaintext */
	uint8_t *snap;   /* previous backing bytes */
	size_t snap_len;
	uint8_t *got;
};

static void env_up(struct env *v)
{
	struct cube_key ks[] = {
		{ K_OLD, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER },
		{ K_NEW, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER },
	};
	struct sefile_params p = { K_OLD, WIRE_ALG_AES256_GCM, 4096 };
	struct sefile *f;
	struct cube *c;
	char err[256];
	int fd;

	emu_new(&v->e);
	c = emu_login(&v->e, WIRE_ROLE_ADMIN);
	for (size_t i = 0; i < 2; i++)
		ck_assert_msg(cube_key_generate(c, &ks[i]) == CUBE_OK, "%s", cube_errmsg(c));
	cube_close(c);
	ck_assert_msg(sefile_cube_open(&v->pool, v->e.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err,
				       sizeof(err)) == SEFILE_OK, "pool: %s", err);
	snprintf(v->dir, sizeof(v->dir), "%s/files", v->e.dir);
	ck_assert_int_eq(mkdir(v->dir, 0700), 0);
	snprintf(v->path, sizeof(v->path), "%s/f", v->dir);
	v->dirfd = open(v->dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(v->dirfd, 0);
	v->old = malloc(MAX_SIZE);
	v->snap = malloc(MAX_SIZE);
	v->got = malloc(MAX_SIZE);
	ck_assert(v->old && v->snap && v->got);
	for (size_t i = 0; i < OLD_SIZE; i++)
		v->old[i] = (uint8_t)(i * 31 + 7);
	fd = open(v->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert(sefile_create(&f, v->pool, fd, &p) == SEFILE_OK);
	ck_assert(sefile_pwrite(f, v->old, OLD_SIZE, 0) == (ssize_t)OLD_SIZE);
	ck_assert(sefile_close(f) == SEFILE_OK);
	v->snap_len = (size_t)lseek(fd, 0, SEEK_END);
	ck_assert((size_t)(pread)(fd, v->snap, v->snap_len, 0) == v->snap_len);
	close(fd);
}

static void env_down(struct env *v)
{
	fault_off();
	close(v->dirfd);
	free(v->old);
	free(v->snap);
	free(v->got);
	sefile_cube_close(v->pool);
	emu_free(&v->e);
}

/* Put the previous backing bytes back under the name (a new inode, as
 * after a rekey). */
static void restore(struct env *v)
{
	int fd;

	unlink(v->path);
	fd = open(v->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert((size_t)(pwrite)(fd, v->snap, v->snap_len, 0) == v->snap_len);
	close(fd);
}

/* Reopen (repairing), verify, read everything; returns the size. */
static uint64_t reopen_read(struct env *v)
{
	struct sefile *f;
	uint64_t size = 0;
	int fd = open(v->path, O_RDWR), rc;

	ck_assert_int_ge(fd, 0);
	rc = sefile_open(&f, v->pool, fd);
	ck_assert_msg(rc == SEFILE_OK, "reopen after a fault: %s", sefile_errmsg());
	sefile_size(f, &size);
	ck_assert_uint_le(size, MAX_SIZE);
	ck_assert_msg(sefile_pread(f, v->got, MAX_SIZE, 0) == (ssize_t)size, "read: %s", sefile_errmsg());
	ck_assert(sefile_close(f) == SEFILE_OK);
	rc = sefile_verify(v->pool, fd, NULL, NULL);
	ck_assert_msg(rc == SEFILE_OK, "verify after a fault: %s", sefile_errmsg());
	close(fd);
	return size;
}

/* No rekey temp file may be left in the directory. */
static void no_temp_files(struct env *v)
{
	DIR *d = opendir(v->dir);
	struct dirent *e;

	ck_assert(d != NULL);
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(strncmp(e->d_name, ".sefile-rekey-", 14) != 0, "left behind: %s", e->d_name);
	closedir(d);
}

/* ---- operations and what may be seen after they fail ---- */

struct op {
	const char *name;
	int (*run)(struct env *v, struct sefile *f);
	/* Check what reopen_read found (v->got, size) after a failure. */
	void (*after_fault)(struct env *v, uint64_t size);
	uint64_t off, len;   /* range written (for the checks) */
	const uint8_t *data;
};

static const struct op *cur;
static uint8_t *new_data;

static int run_pwrite(struct env *v, struct sefile *f)
{
	ssize_t n = sefile_pwrite(f, new_data, cur->len, cur->off);

	return n == (ssize_t)cur->len ? SEFILE_OK : (n < 0 ? (int)n : SEFILE_EIO);
}

/* Outside the written range: old bytes; inside: each sector old or new. */
static void after_pwrite(struct env *v, uint64_t size)
{
	uint64_t end = cur->off + cur->len, old_end = OLD_SIZE;

	ck_assert_msg(size == old_end || size == (end > old_end ? end : old_end),
		      "%s: size %llu after a fault", cur->name, (unsigned long long)size);
	for (uint64_t s = 0; s < size; s += 4096) {
		uint64_t e = s + 4096 < size ? s + 4096 : size;
		int is_old = 1, is_new = 1;

		for (uint64_t i = s; i < e; i++) {
			uint8_t o = i < OLD_SIZE ? v->old[i] : 0;
			uint8_t w = (i >= cur->off && i < end) ? new_data[i - cur->off] : o;

			is_old &= v->got[i] == o;
			is_new &= v->got[i] == w;
			if (i < cur->off || i >= end)
				ck_assert_msg(v->got[i] == o, "%s: byte %llu outside the write changed",
					      cur->name, (unsigned long long)i);
		}
		ck_assert_msg(is_old || is_new, "%s: sector at %llu is neither old nor new", cur->name,
			      (unsigned long long)s);
	}
}

static int run_truncate(struct env *v, struct sefile *f)
{
	return sefile_truncate(f, cur->len);
}

static void after_truncate(struct env *v, uint64_t size)
{
	uint64_t keep = size < OLD_SIZE ? size : OLD_SIZE;

	ck_assert_msg(size == OLD_SIZE || size == cur->len, "%s: size %llu", cur->name,
		      (unsigned long long)size);
	ck_assert_msg(memcmp(v->got, v->old, keep) == 0, "%s: old content changed", cur->name);
	for (uint64_t i = keep; i < size; i++)
		ck_assert(v->got[i] == 0);
}

static int run_fsync(struct env *v, struct sefile *f)
{
	return sefile_fsync(f, cur->len != 0);
}

/* The whole previous file, unchanged. */
static void after_intact(struct env *v, uint64_t size)
{
	ck_assert_uint_eq(size, OLD_SIZE);
	ck_assert_msg(memcmp(v->got, v->old, OLD_SIZE) == 0, "%s: content changed", cur->name);
}

static int run_pread(struct env *v, struct sefile *f)
{
	ssize_t n;

	memset(v->got, 0xee, OLD_SIZE);
	n = sefile_pread(f, v->got, OLD_SIZE, 0);
	if (n < 0)
		for (size_t i = 0; i < OLD_SIZE; i++)
			ck_assert_msg(v->got[i] == 0, "a failed pread handed out byte %zu", i);
	return n == (ssize_t)OLD_SIZE ? SEFILE_OK : (n < 0 ? (int)n : SEFILE_EIO);
}

static int run_rekey(struct env *v, struct sefile *f)
{
	struct sefile_params p = { K_NEW, 0, 0 };

	return sefile_rekey(v->pool, v->dirfd, "f", &p);
}

static void after_rekey(struct env *v, uint64_t size)
{
	after_intact(v, size);
	no_temp_files(v);
}

/*
 * Count the backing calls of op on the previous file, then fail each in
 * turn.  Returns how many faults were injected.
 */
static long sweep(struct env *v, const struct op *o)
{
	struct sefile *f;
	long total, n;
	int fd, rc;

	cur = o;
	restore(v);
	fd = open(v->path, O_RDWR);
	ck_assert(sefile_open(&f, v->pool, fd) == SEFILE_OK);
	fault_arm(ALL_FAULTS, 0, 0);
	rc = o->run(v, f);
	total = sw.calls;
	fault_off();
	ck_assert_msg(rc == SEFILE_OK, "%s without faults: %s", o->name, sefile_errmsg());
	sefile_close(f);
	close(fd);
	ck_assert_msg(total > 0, "%s made no backing call", o->name);
	for (n = 1; n <= total; n++) {
		int err = n % 2 ? EIO : ENOSPC;

		restore(v);
		fd = open(v->path, O_RDWR);
		ck_assert(sefile_open(&f, v->pool, fd) == SEFILE_OK);
		fault_arm(ALL_FAULTS, n, err);
		rc = o->run(v, f);
		fault_off();
		ck_assert_msg(sw.fired, "%s: call %ld of %ld never came", o->name, n, total);
		ck_assert_msg(rc != SEFILE_OK, "%s: failing call %ld of %ld (%s) went unnoticed", o->name,
			      n, total, strerror(err));
		if (err == ENOSPC && o->run != run_rekey)
			ck_assert_msg(rc == SEFILE_ENOSPC || rc == SEFILE_EIO, "%s: %d", o->name, rc);
		sefile_close(f);
		close(fd);
		o->after_fault(v, reopen_read(v));
	}
	printf("%s: %ld backing calls, each failed once, all reported and harmless\n", o->name, total);
	return total;
}

START_TEST(faults_in_writes)
{
	struct env v;
	const struct op ops[] = {
		{ "append", run_pwrite, after_pwrite, OLD_SIZE, 6000, NULL },
		{ "overwrite", run_pwrite, after_pwrite, 3000, 3000, NULL },
		{ "append 1.5 MiB", run_pwrite, after_pwrite, OLD_SIZE, 1536 * 1024, NULL },
		{ "write past the end", run_pwrite, after_pwrite, 20000, 100, NULL },
	};

	env_up(&v);
	new_data = malloc(MAX_SIZE);
	ck_assert(new_data != NULL);
	for (size_t i = 0; i < MAX_SIZE; i++)
		new_data[i] = (uint8_t)(i * 17 + 3);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		ck_assert_int_ge(sweep(&v, &ops[i]), 2);
	free(new_data);
	env_down(&v);
}
END_TEST

START_TEST(faults_in_truncate_fsync_read)
{
	struct env v;
	const struct op ops[] = {
		{ "truncate down", run_truncate, after_truncate, 0, 5000, NULL },
		{ "truncate down to a sector boundary", run_truncate, after_truncate, 0, 4096, NULL },
		{ "truncate up", run_truncate, after_truncate, 0, 50000, NULL },
		{ "fsync", run_fsync, after_intact, 0, 0, NULL },
		{ "fdatasync", run_fsync, after_intact, 0, 1, NULL },
		{ "pread", run_pread, after_intact, 0, 0, NULL },
	};

	env_up(&v);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		ck_assert_int_ge(sweep(&v, &ops[i]), 1);
	env_down(&v);
}
END_TEST

START_TEST(faults_in_rekey)
{
	struct env v;
	const struct op rekey = { "rekey", run_rekey, after_rekey, 0, 0, NULL };

	env_up(&v);
	/* read, create, write, fsync, rename, fsync of the directory at least */
	ck_assert_int_ge(sweep(&v, &rekey), 5);
	env_down(&v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_faults");
	TCase *tc = tcase_create("faults");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, faults_in_writes);
	tcase_add_test(tc, faults_in_truncate_fsync_read);
	tcase_add_test(tc, faults_in_rekey);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* no fork: the sweep's output lines come out in order */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
