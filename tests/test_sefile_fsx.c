/*
 * test_sefile_fsx.c - model-based random test (after fsx): thousands of
 * random pwrite / pread / truncate / fsync / close+reopen operations on a
 * SEfile file and on a plain file side by side, compared after every
 * step.  Fixed seed; SEFILE_FSX_OPS and SEFILE_FSX_SEED override it for a
 * long run (make stress).  Runs with 512-byte sectors (boundaries are
 * dense) and with the default 4096.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cube/cube.h"
#include "helper_emu.h"
#include "sefile/sefile.h"

#define K_FSX 1
#define MAX_LEN (600u * 1024u)   /* the model file stays below this */

struct fsx {
	struct emu e;
	struct sefile_cube *pool;
	struct sefile *f;
	int sfd, pfd;
	uint32_t sector;
	uint64_t rng;
	uint8_t *a, *b;
	char spath[PATH_MAX + 32], ppath[PATH_MAX + 32];
	unsigned long op;
};

static uint64_t next(struct fsx *x)
{
	x->rng ^= x->rng << 13;
	x->rng ^= x->rng >> 7;
	x->rng ^= x->rng << 17;
	return x->rng;
}

static uint64_t below(struct fsx *x, uint64_t n)
{
	return n ? next(x) % n : 0;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static uint64_t model_size(struct fsx *x)
{
	struct stat st;

	ck_assert_int_eq(fstat(x->pfd, &st), 0);
	return (uint64_t)st.st_size;
}

/* An offset that likes sector boundaries and the end of file. */
static uint64_t pick_off(struct fsx *x, uint64_t size)
{
	uint64_t s = x->sector;

	switch (below(x, 4)) {
	case 0: return below(x, size + 1);
	case 1: return below(x, MAX_LEN / s) * s;
	case 2: return size > 0 ? size - below(x, size < 3 ? size : 3) : 0;
	default: return below(x, MAX_LEN / s) * s + s - 1 - below(x, 3);
	}
}

static void check_same(struct fsx *x, const char *what)
{
	uint64_t size = model_size(x), ss;
	ssize_t n;

	ck_assert_int_eq(sefile_size(x->f, &ss), SEFILE_OK);
	ck_assert_msg(ss == size, "op %lu (%s): size %llu, model %llu", x->op, what,
		      (unsigned long long)ss, (unsigned long long)size);
	n = sefile_pread(x->f, x->a, MAX_LEN + 4096, 0);
	ck_assert_msg(n == (ssize_t)size, "op %lu (%s): read %zd: %s", x->op, what, n, sefile_errmsg());
	ck_assert_int_eq(pread(x->pfd, x->b, size, 0), (ssize_t)size);
	ck_assert_msg(memcmp(x->a, x->b, size) == 0, "op %lu (%s): contents differ", x->op, what);
}

static void op_write(struct fsx *x, uint64_t size)
{
	uint64_t off = pick_off(x, size), len, i;

	len = below(x, 4) == 0 ? 1 + below(x, 300 * 1024) : 1 + below(x, 3 * x->sector);
	if (off >= MAX_LEN)
		off = below(x, MAX_LEN);
	if (off + len > MAX_LEN)
		len = MAX_LEN - off;
	if (len == 0)
		return;
	for (i = 0; i < len; i++)
		x->a[i] = (uint8_t)(next(x) >> 32);
	ck_assert_msg(sefile_pwrite(x->f, x->a, len, off) == (ssize_t)len, "op %lu: pwrite %llu@%llu: %s",
		      x->op, (unsigned long long)len, (unsigned long long)off, sefile_errmsg());
	ck_assert_int_eq(pwrite(x->pfd, x->a, len, (off_t)off), (ssize_t)len);
}

static void op_read(struct fsx *x, uint64_t size)
{
	uint64_t off = pick_off(x, size), len = 1 + below(x, 4 * x->sector);
	ssize_t n, m;

	n = sefile_pread(x->f, x->a, len, off);
	m = pread(x->pfd, x->b, len, (off_t)off);
	ck_assert_msg(n == m, "op %lu: pread %llu@%llu gave %zd, model %zd (%s)", x->op,
		      (unsigned long long)len, (unsigned long long)off, n, m, sefile_errmsg());
	ck_assert_msg(n <= 0 || memcmp(x->a, x->b, (size_t)n) == 0, "op %lu: pread bytes differ", x->op);
}

static void op_truncate(struct fsx *x, uint64_t size)
{
	uint64_t to = below(x, 3) == 0 ? below(x, size + 1) : pick_off(x, size);

	if (to > MAX_LEN)
		to = MAX_LEN;
	ck_assert_msg(sefile_truncate(x->f, to) == SEFILE_OK, "op %lu: truncate %llu: %s", x->op,
		      (unsigned long long)to, sefile_errmsg());
	ck_assert_int_eq(ftruncate(x->pfd, (off_t)to), 0);
}

static void op_reopen(struct fsx *x)
{
	struct stat st;

	ck_assert_int_eq(sefile_close(x->f), SEFILE_OK);
	close(x->sfd);
	x->sfd = open(x->spath, O_RDWR);
	ck_assert_int_ge(x->sfd, 0);
	ck_assert_msg(sefile_open(&x->f, x->pool, x->sfd) == SEFILE_OK, "op %lu: reopen: %s", x->op,
		      sefile_errmsg());
	ck_assert_int_eq(fstat(x->sfd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, sefile_backing_size(model_size(x), x->sector));
}

static void run_fsx(uint32_t sector, uint64_t ops, uint64_t seed)
{
	struct cube_key k = { K_FSX, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER };
	struct sefile_params p = { K_FSX, 0, sector };
	struct fsx x;
	struct cube *c;
	char err[256];

	memset(&x, 0, sizeof(x));
	x.sector = sector;
	x.rng = seed * 0x9e3779b97f4a7c15ull + sector;
	if (!x.rng)
		x.rng = 1;
	x.a = malloc(MAX_LEN + 4096);
	x.b = malloc(MAX_LEN + 4096);
	ck_assert(x.a && x.b);
	emu_new(&x.e);
	c = emu_login(&x.e, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(c, &k), CUBE_OK);
	cube_close(c);
	ck_assert_msg(sefile_cube_open(&x.pool, x.e.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err, sizeof(err)) ==
			      SEFILE_OK, "pool: %s", err);
	snprintf(x.spath, sizeof(x.spath), "%s/sefile.bin", x.e.dir);
	snprintf(x.ppath, sizeof(x.ppath), "%s/plain.bin", x.e.dir);
	x.sfd = open(x.spath, O_RDWR | O_CREAT | O_EXCL, 0600);
	x.pfd = open(x.ppath, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert(x.sfd >= 0 && x.pfd >= 0);
	ck_assert_int_eq(sefile_create(&x.f, x.pool, x.sfd, &p), SEFILE_OK);
	for (x.op = 0; x.op < ops; x.op++) {
		uint64_t size = model_size(&x), r = below(&x, 100);
		const char *what;

		if (r < 40) {
			what = "write";
			op_write(&x, size);
		} else if (r < 70) {
			what = "read";
			op_read(&x, size);
		} else if (r < 88) {
			what = "truncate";
			op_truncate(&x, size);
		} else if (r < 94) {
			what = "fsync";
			ck_assert_int_eq(sefile_fsync(x.f, (int)below(&x, 2)), SEFILE_OK);
		} else {
			what = "reopen";
			op_reopen(&x);
		}
		if (x.op % 8 == 0 || strcmp(what, "read") != 0)
			check_same(&x, what);
	}
	ck_assert_int_eq(sefile_verify(x.pool, x.sfd, NULL, NULL), SEFILE_OK);
	ck_assert_int_eq(sefile_close(x.f), SEFILE_OK);
	close(x.sfd);
	close(x.pfd);
	sefile_cube_close(x.pool);
	emu_free(&x.e);
	free(x.a);
	free(x.b);
}

START_TEST(fsx_512)
{
	run_fsx(512, env_u64("SEFILE_FSX_OPS", 5000), env_u64("SEFILE_FSX_SEED", 1));
}
END_TEST

START_TEST(fsx_4096)
{
	run_fsx(4096, env_u64("SEFILE_FSX_OPS", 5000), env_u64("SEFILE_FSX_SEED", 2));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_fsx");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	/* a long run (make stress) sets its own ops; give it room */
	tcase_set_timeout(tc, getenv("SEFILE_FSX_OPS") ? 3600 : 60);
	tcase_add_test(tc, fsx_512);
	tcase_add_test(tc, fsx_4096);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
