/*
 * test_sefile_file.c - SEfile files through a real emulated cube: create,
 * open, pread/pwrite, truncate both ways, size and info, reopen, the
 * three sector algorithms, many sectors per cube request (counted),
 * concurrent writers and readers of one file, rekey, sparse files,
 * crash residue (read-only and repaired), verify.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cube/cube.h"
#include "helper_emu.h"
#include "sefile/sefile.h"

#define K_GCM 1
#define K_CTR 2
#define K_128 3
#define K_GCM2 4

struct env {
	struct emu e;
	struct sefile_cube *pool;
	char dir[PATH_MAX + 16];
};

static void env_up(struct env *v, unsigned conns)
{
	struct cube_key ks[] = {
		{ K_GCM, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER },
		{ K_CTR, WIRE_ALG_AES256_CTR_HMAC, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER },
		{ K_128, WIRE_ALG_AES128_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER },
		{ K_GCM2, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER },
	};
	struct cube *c;
	char err[256];
	size_t i;

	emu_new(&v->e);
	c = emu_login(&v->e, WIRE_ROLE_ADMIN);
	for (i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
		ck_assert_msg(cube_key_generate(c, &ks[i]) == CUBE_OK, "key %zu: %s", i, cube_errmsg(c));
	cube_close(c);
	ck_assert_msg(sefile_cube_open(&v->pool, v->e.dir, WIRE_ROLE_USER, EMU_USER_PIN, conns, err,
				       sizeof(err)) == SEFILE_OK, "pool: %s", err);
	snprintf(v->dir, sizeof(v->dir), "%s/files", v->e.dir);
	ck_assert_int_eq(mkdir(v->dir, 0700), 0);
}

static void env_down(struct env *v)
{
	sefile_cube_close(v->pool);
	emu_free(&v->e);
}

static int open_backing(struct env *v, const char *name, int flags)
{
	char p[PATH_MAX + 64];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", v->dir, name);
	fd = open(p, flags, 0600);
	ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
	return fd;
}

static struct sefile *make_file(struct env *v, const char *name, uint32_t key, uint8_t alg,
				uint32_t ss, int *fd)
{
	struct sefile_params p = { key, alg, ss };
	struct sefile *f;

	*fd = open_backing(v, name, O_RDWR | O_CREAT | O_EXCL);
	ck_assert_msg(sefile_create(&f, v->pool, *fd, &p) == SEFILE_OK, "create: %s", sefile_errmsg());
	return f;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void expect_content(struct sefile *f, const uint8_t *want, size_t n)
{
	uint8_t *got = malloc(n + 100);
	uint64_t size;

	ck_assert_int_eq(sefile_size(f, &size), SEFILE_OK);
	ck_assert_uint_eq(size, n);
	ck_assert_int_eq(sefile_pread(f, got, n + 100, 0), (ssize_t)n);
	ck_assert_msg(memcmp(got, want, n) == 0, "content differs");
	free(got);
}

START_TEST(basic_roundtrip)
{
	struct env v;
	struct sefile *f;
	struct sefile_info info, peek;
	uint8_t buf[64];
	uint64_t size;
	int fd;

	env_up(&v, 1);
	f = make_file(&v, "a", K_GCM, 0, 0, &fd);
	ck_assert_int_eq(sefile_pread(f, buf, sizeof(buf), 0), 0);
	ck_assert_int_eq(sefile_pwrite(f, "hello, world", 12, 0), 12);
	ck_assert_int_eq(sefile_pread(f, buf, sizeof(buf), 0), 12);
	ck_assert_int_eq(memcmp(buf, "hello, world", 12), 0);
	ck_assert_int_eq(sefile_pread(f, buf, sizeof(buf), 7), 5);
	ck_assert_int_eq(sefile_pread(f, buf, sizeof(buf), 12), 0);
	ck_assert_int_eq(sefile_info(f, &info), SEFILE_OK);
	ck_assert_uint_eq(info.key_id, K_GCM);
	ck_assert_uint_eq(info.alg, WIRE_ALG_AES256_GCM);
	ck_assert_uint_eq(info.sector_size, 4096);
	ck_assert_uint_eq(info.size, 12);
	ck_assert_int_eq(sefile_fsync(f, 0), SEFILE_OK);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);

	/* stat without crypto */
	{
		struct stat st;

		ck_assert_int_eq(fstat(fd, &st), 0);
		ck_assert_uint_eq((uint64_t)st.st_size, sefile_backing_size(12, 4096));
		ck_assert_int_eq(sefile_size_from_backing((uint64_t)st.st_size, 4096, &size), SEFILE_OK);
		ck_assert_uint_eq(size, 12);
	}
	ck_assert_int_eq(sefile_peek_header(fd, &peek), SEFILE_OK);
	ck_assert_int_eq(memcmp(peek.file_id, info.file_id, sizeof(info.file_id)), 0);
	ck_assert_uint_eq(peek.size, 12);

	/* reopen: SEfile remembers the key */
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_OK);
	ck_assert_int_eq(sefile_info(f, &info), SEFILE_OK);
	ck_assert_uint_eq(info.key_id, K_GCM);
	ck_assert_int_eq(sefile_pread(f, buf, sizeof(buf), 0), 12);
	ck_assert_int_eq(memcmp(buf, "hello, world", 12), 0);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
	env_down(&v);
}
END_TEST

/* Unaligned writes across sectors, holes, truncate both ways, per alg. */
static void shapes_for(struct env *v, const char *name, uint32_t key, uint8_t alg, uint32_t ss)
{
	size_t cap = 5 * ss + 777;
	uint8_t *ref = calloc(1, cap), *data = malloc(cap);
	struct sefile *f;
	size_t size = 0;
	int fd;

	f = make_file(v, name, key, alg, ss, &fd);
	fill(data, cap, 3);
	/* a write that starts in the middle of nothing: hole before it */
	ck_assert_int_eq(sefile_pwrite(f, data, ss + 10, ss / 2), (ssize_t)(ss + 10));
	memcpy(ref + ss / 2, data, ss + 10);
	size = ss / 2 + ss + 10;
	expect_content(f, ref, size);
	/* overwrite straddling a boundary, inside the file */
	ck_assert_int_eq(sefile_pwrite(f, data + 100, 20, ss - 10), 20);
	memcpy(ref + ss - 10, data + 100, 20);
	expect_content(f, ref, size);
	/* extend past a partial last sector with a gap */
	ck_assert_int_eq(sefile_pwrite(f, data + 5, 33, 3 * ss + 1), 33);
	memcpy(ref + 3 * ss + 1, data + 5, 33);
	size = 3 * ss + 34;
	expect_content(f, ref, size);
	/* shrink into the middle of a sector, then grow again (zeros) */
	ck_assert_int_eq(sefile_truncate(f, ss + 3), SEFILE_OK);
	size = ss + 3;
	memset(ref + size, 0, cap - size);
	expect_content(f, ref, size);
	ck_assert_int_eq(sefile_truncate(f, 4 * ss + 5), SEFILE_OK);
	size = 4 * ss + 5;
	expect_content(f, ref, size);
	ck_assert_int_eq(sefile_truncate(f, 2 * ss), SEFILE_OK);
	size = 2 * ss;
	expect_content(f, ref, size);
	ck_assert_int_eq(sefile_truncate(f, 0), SEFILE_OK);
	expect_content(f, ref, 0);
	ck_assert_int_eq(sefile_pwrite(f, data, cap, 0), (ssize_t)cap);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(sefile_open(&f, v->pool, fd), SEFILE_OK);
	expect_content(f, data, cap);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
	free(ref);
	free(data);
}

START_TEST(shapes_all_algs)
{
	struct env v;

	env_up(&v, 1);
	shapes_for(&v, "gcm", K_GCM, WIRE_ALG_AES256_GCM, 4096);
	shapes_for(&v, "gcm512", K_GCM, WIRE_ALG_AES256_GCM, 512);
	shapes_for(&v, "ctr", K_CTR, WIRE_ALG_AES256_CTR_HMAC, 4096);
	shapes_for(&v, "aes128", K_128, WIRE_ALG_AES128_GCM, 1024);
	shapes_for(&v, "gcm64k", K_GCM, WIRE_ALG_AES256_GCM, 65536);
	env_down(&v);
}
END_TEST

START_TEST(requests_are_batched)
{
	struct env v;
	struct sefile *f;
	size_t mib = 1u << 20;
	uint8_t *a = malloc(2 * mib), *b = malloc(2 * mib);
	uint64_t r0;
	int fd;

	env_up(&v, 1);
	f = make_file(&v, "big", K_GCM, 0, 0, &fd);
	fill(a, 2 * mib, 9);
	/* 1 MiB - 4 KiB appended: the data and the new header in one request */
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pwrite(f, a, mib - 4096, 0), (ssize_t)(mib - 4096));
	ck_assert_uint_eq(sefile_cube_requests(v.pool) - r0, 1);
	/* 1 MiB appended: the data fill a request, the header needs a second */
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pwrite(f, a + mib - 4096, mib + 4096, mib - 4096), (ssize_t)(mib + 4096));
	ck_assert_uint_le(sefile_cube_requests(v.pool) - r0, 3);
	/* 1 MiB appended at a sector boundary: data and header in one request */
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pwrite(f, a, mib, 2 * mib), (ssize_t)mib);
	ck_assert_uint_eq(sefile_cube_requests(v.pool) - r0, 1);
	/* 1 MiB overwritten in place: one request */
	fill(a, mib, 10);
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pwrite(f, a, mib, 0), (ssize_t)mib);
	ck_assert_uint_eq(sefile_cube_requests(v.pool) - r0, 1);
	/* 1 MiB read, aligned: one request; unaligned: two runs at most */
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pread(f, b, mib, 0), (ssize_t)mib);
	ck_assert_uint_eq(sefile_cube_requests(v.pool) - r0, 1);
	ck_assert_int_eq(memcmp(a, b, mib), 0);
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pread(f, b, mib, 100), (ssize_t)mib);
	ck_assert_uint_le(sefile_cube_requests(v.pool) - r0, 2);
	ck_assert_int_eq(memcmp(a + 100, b, mib - 100), 0);
	/* small unaligned overwrite: one read of the sector, one seal */
	r0 = sefile_cube_requests(v.pool);
	ck_assert_int_eq(sefile_pwrite(f, "xy", 2, 5000), 2);
	ck_assert_uint_eq(sefile_cube_requests(v.pool) - r0, 2);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
	free(a);
	free(b);
	env_down(&v);
}
END_TEST

struct worker {
	struct sefile *f;
	unsigned id;
	size_t region;
	int failures;
};

#define WORKERS 4
#define REGION (256u * 1024u)

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	uint8_t *p = malloc(w->region);
	size_t off, step = 37 * 1024 + w->id;

	fill(p, w->region, 100 + w->id);
	for (off = 0; off < w->region; off += step) {
		size_t n = w->region - off < step ? w->region - off : step;

		if (sefile_pwrite(w->f, p + off, n, w->id * w->region + off) != (ssize_t)n)
			w->failures++;
	}
	free(p);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	uint8_t *p = malloc(WORKERS * REGION);
	int i;

	for (i = 0; i < 20; i++)
		if (sefile_pread(w->f, p, WORKERS * REGION, 0) < 0)
			w->failures++;
	free(p);
	return NULL;
}

START_TEST(concurrent_writers_readers)
{
	struct env v;
	struct sefile *f;
	pthread_t th[WORKERS + 2];
	struct worker w[WORKERS + 2];
	uint8_t *want = malloc(WORKERS * REGION), *got = malloc(WORKERS * REGION);
	unsigned i;
	int fd;

	env_up(&v, 3);
	f = make_file(&v, "shared", K_GCM, 0, 0, &fd);
	ck_assert_int_eq(sefile_truncate(f, WORKERS * REGION), SEFILE_OK);
	for (i = 0; i < WORKERS + 2; i++) {
		w[i] = (struct worker){ f, i, REGION, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, i < WORKERS ? writer_main : reader_main, &w[i]), 0);
	}
	for (i = 0; i < WORKERS + 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].failures, 0);
	}
	for (i = 0; i < WORKERS; i++)
		fill(want + i * REGION, REGION, 100 + i);
	ck_assert_int_eq(sefile_pread(f, got, WORKERS * REGION, 0), WORKERS * REGION);
	ck_assert_int_eq(memcmp(want, got, WORKERS * REGION), 0);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
	free(want);
	free(got);
	env_down(&v);
}
END_TEST

START_TEST(rekey_file)
{
	struct env v;
	struct sefile *f;
	struct sefile_params p = { K_GCM2, 0, 0 };
	struct sefile_info info;
	size_t n = 3 * 1024 * 1024 + 77;
	uint8_t *data = calloc(1, n);
	struct stat st1, st2;
	int fd, dirfd;

	env_up(&v, 1);
	f = make_file(&v, "doc", K_GCM, 0, 0, &fd);
	fill(data, 100000, 1);
	fill(data + 2 * 1024 * 1024 + 5, 1024 * 1024 + 72, 2); /* a 1 MiB-ish hole between */
	ck_assert_int_eq(sefile_pwrite(f, data, 100000, 0), 100000);
	ck_assert_int_eq(sefile_pwrite(f, data + 2 * 1024 * 1024 + 5, 1024 * 1024 + 72, 2 * 1024 * 1024 + 5),
			 1024 * 1024 + 72);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(fstat(fd, &st1), 0);
	close(fd);
	dirfd = open(v.dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_msg(sefile_rekey(v.pool, dirfd, "doc", &p) == SEFILE_OK, "rekey: %s", sefile_errmsg());
	fd = open_backing(&v, "doc", O_RDONLY);
	ck_assert_int_eq(fstat(fd, &st2), 0);
	ck_assert_uint_ne(st1.st_ino, st2.st_ino);
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_OK);
	ck_assert_int_eq(sefile_info(f, &info), SEFILE_OK);
	ck_assert_uint_eq(info.key_id, K_GCM2);
	ck_assert_uint_eq(info.alg, WIRE_ALG_AES256_GCM);
	expect_content(f, data, n);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
	/* no temp file is left behind; a missing file is an error */
	ck_assert_int_eq(faccessat(dirfd, "doc", F_OK, 0), 0);
	ck_assert_int_ne(sefile_rekey(v.pool, dirfd, "nope", &p), SEFILE_OK);
	{
		char cmd[PATH_MAX + 64];

		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", v.dir);
		ck_assert_int_eq(system(cmd), 0);
	}
	close(dirfd);
	free(data);
	env_down(&v);
}
END_TEST

START_TEST(sparse_terabyte)
{
	struct env v;
	struct sefile *f;
	uint64_t tb = 1ull << 40, size;
	uint8_t buf[8192], zero[8192];
	struct stat st;
	int fd;

	env_up(&v, 1);
	f = make_file(&v, "sparse", K_GCM, 0, 0, &fd);
	ck_assert_int_eq(sefile_pwrite(f, "start", 5, 0), 5);
	ck_assert_int_eq(sefile_truncate(f, tb), SEFILE_OK);
	ck_assert_int_eq(sefile_size(f, &size), SEFILE_OK);
	ck_assert_uint_eq(size, tb);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, sefile_backing_size(tb, 4096));
	ck_assert_msg(st.st_blocks < 128, "1 TiB sparse file uses %lld blocks", (long long)st.st_blocks);
	memset(zero, 0, sizeof(zero));
	ck_assert_int_eq(sefile_pread(f, buf, sizeof(buf), tb / 2 + 100), (ssize_t)sizeof(buf));
	ck_assert_int_eq(memcmp(buf, zero, sizeof(buf)), 0);
	ck_assert_int_eq(sefile_pwrite(f, "middle", 6, tb / 2), 6);
	ck_assert_int_eq(sefile_pread(f, buf, 10, tb / 2 - 2), 10);
	ck_assert_int_eq(memcmp(buf, "\0\0middle\0\0", 10), 0);
	ck_assert_int_eq(sefile_pread(f, buf, 100, tb - 50), 50);
	ck_assert_int_eq(memcmp(buf, zero, 50), 0);
	ck_assert_int_eq(sefile_pread(f, buf, 5, 0), 5);
	ck_assert_int_eq(memcmp(buf, "start", 5), 0);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_msg(st.st_blocks < 256, "after a write: %lld blocks", (long long)st.st_blocks);
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_OK);
	ck_assert_int_eq(sefile_pread(f, buf, 6, tb / 2), 6);
	ck_assert_int_eq(memcmp(buf, "middle", 6), 0);
	ck_assert_int_eq(sefile_truncate(f, 3), SEFILE_OK);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, sefile_backing_size(3, 4096));
	close(fd);
	env_down(&v);
}
END_TEST

static void copy_bytes(int from, int to, uint64_t off, size_t n)
{
	uint8_t buf[256];

	ck_assert_uint_le(n, sizeof(buf));
	ck_assert_int_eq(pread(from, buf, n, (off_t)off), (ssize_t)n);
	ck_assert_int_eq(pwrite(to, buf, n, (off_t)off), (ssize_t)n);
}

/* A grow that crashed after its data but before its header: the backing
 * holds the grown file, the header the old length; the old partial last
 * sector is stored full-length.  Read-only it reads as the old file;
 * read-write it is repaired. */
START_TEST(crash_residue)
{
	struct env v;
	struct sefile *f;
	uint8_t data[20000];
	struct stat st;
	int fd, ro, snap;

	env_up(&v, 1);
	fill(data, sizeof(data), 77);
	f = make_file(&v, "grow", K_GCM, 0, 0, &fd);
	ck_assert_int_eq(sefile_pwrite(f, data, 10000, 0), 10000);
	snap = open_backing(&v, "snap", O_RDWR | O_CREAT | O_EXCL);
	copy_bytes(fd, snap, 0, SEFILE_HEADER_LEN);          /* the header of the 10000-byte file */
	ck_assert_int_eq(sefile_pwrite(f, data + 10000, 10000, 10000), 10000);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	copy_bytes(snap, fd, 0, SEFILE_HEADER_LEN);          /* "crash" before the header write */
	close(snap);

	ro = open_backing(&v, "grow", O_RDONLY);
	ck_assert_msg(sefile_open(&f, v.pool, ro) == SEFILE_OK, "ro open: %s", sefile_errmsg());
	expect_content(f, data, 10000);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(fstat(ro, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, sefile_backing_size(20000, 4096)); /* untouched */
	close(ro);

	ck_assert_msg(sefile_open(&f, v.pool, fd) == SEFILE_OK, "rw open: %s", sefile_errmsg());
	expect_content(f, data, 10000);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, sefile_backing_size(10000, 4096)); /* repaired */
	ck_assert_int_eq(sefile_pwrite(f, data + 10000, 5, 10000), 5);
	expect_content(f, data, 10005);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_OK);
	expect_content(f, data, 10005);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
	env_down(&v);
}
END_TEST

struct damage { int n; uint64_t sectors[8]; };

static void on_damage(void *arg, uint64_t sector, const char *reason)
{
	struct damage *d = arg;

	(void)reason;
	if (d->n < 8)
		d->sectors[d->n] = sector;
	d->n++;
}

START_TEST(verify_reports_sectors)
{
	struct env v;
	struct sefile *f;
	struct damage d = { 0, { 0 } };
	uint8_t data[5 * 512], x;
	int fd;

	env_up(&v, 1);
	fill(data, sizeof(data), 5);
	f = make_file(&v, "v", K_GCM, 0, 512, &fd);
	ck_assert_int_eq(sefile_pwrite(f, data, sizeof(data), 0), (ssize_t)sizeof(data));
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ck_assert_int_eq(sefile_verify(v.pool, fd, on_damage, &d), SEFILE_OK);
	ck_assert_int_eq(d.n, 0);
	/* flip one byte in sectors 1 and 3 */
	for (int s = 1; s <= 3; s += 2) {
		off_t o = SEFILE_HEADER_LEN + s * (512 + WIRE_SECTOR_OVERHEAD) + 40;

		ck_assert_int_eq(pread(fd, &x, 1, o), 1);
		x ^= 0x10;
		ck_assert_int_eq(pwrite(fd, &x, 1, o), 1);
	}
	ck_assert_int_eq(sefile_verify(v.pool, fd, on_damage, &d), SEFILE_EINTEGRITY);
	ck_assert_int_eq(d.n, 2);
	ck_assert_uint_eq(d.sectors[0], 1);
	ck_assert_uint_eq(d.sectors[1], 3);
	close(fd);
	env_down(&v);
}
END_TEST

START_TEST(errors_and_modes)
{
	struct env v;
	struct sefile *f;
	struct sefile_params bad_alg = { K_GCM, WIRE_ALG_AES256_KW, 0 }, bad_ss = { K_GCM, 0, 1000 };
	struct sefile_params nokey = { 999, 0, 0 }, wrongalg = { K_CTR, WIRE_ALG_AES256_GCM, 0 };
	uint64_t size;
	int fd, ro;

	env_up(&v, 1);
	fd = open_backing(&v, "x", O_RDWR | O_CREAT | O_EXCL);
	ck_assert_int_eq(sefile_create(&f, v.pool, fd, &bad_alg), SEFILE_EINVAL);
	ck_assert_int_eq(sefile_create(&f, v.pool, fd, &bad_ss), SEFILE_EINVAL);
	ck_assert_int_eq(sefile_create(&f, v.pool, fd, &nokey), SEFILE_ENOKEY);
	ck_assert_int_eq(sefile_errno(SEFILE_ENOKEY), ENOKEY);
	ck_assert_int_ne(sefile_create(&f, v.pool, fd, &wrongalg), SEFILE_OK);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	/* not a SEfile file */
	ck_assert_int_eq(pwrite(fd, "plain text, not a header at all ........................................."
				    "...................................................................",
				140, 0), 140);
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_EFORMAT);
	ck_assert_int_eq(sefile_errno(SEFILE_EFORMAT), EIO);
	ck_assert_int_eq(sefile_create(&f, v.pool, fd, &(struct sefile_params){ K_GCM, 0, 0 }), SEFILE_EINVAL);
	close(fd);
	/* read-only: no writes */
	f = make_file(&v, "y", K_GCM, 0, 0, &fd);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	ro = open_backing(&v, "y", O_RDONLY);
	ck_assert_int_eq(sefile_open(&f, v.pool, ro), SEFILE_OK);
	ck_assert_int_eq(sefile_pwrite(f, "a", 1, 0), SEFILE_EINVAL);
	ck_assert_int_eq(sefile_truncate(f, 10), SEFILE_EINVAL);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(ro);
	close(fd);
	/* geometry without crypto */
	ck_assert_int_eq(sefile_size_from_backing(SEFILE_HEADER_LEN, 4096, &size), SEFILE_OK);
	ck_assert_uint_eq(size, 0);
	ck_assert_int_eq(sefile_size_from_backing(SEFILE_HEADER_LEN - 1, 4096, &size), SEFILE_EFORMAT);
	ck_assert_int_eq(sefile_size_from_backing(SEFILE_HEADER_LEN + 28, 4096, &size), SEFILE_EFORMAT);
	ck_assert_int_eq(sefile_size_from_backing(SEFILE_HEADER_LEN + 29, 4096, &size), SEFILE_OK);
	ck_assert_uint_eq(size, 1);
	ck_assert_int_eq(sefile_size_from_backing(100000, 3000, &size), SEFILE_EINVAL);
	for (size = 0; size < 20000; size += 97) {
		uint64_t back;

		ck_assert_int_eq(sefile_size_from_backing(sefile_backing_size(size, 512), 512, &back), SEFILE_OK);
		ck_assert_uint_eq(back, size);
	}
	env_down(&v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_file");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, basic_roundtrip);
	tcase_add_test(tc, shapes_all_algs);
	tcase_add_test(tc, requests_are_batched);
	tcase_add_test(tc, concurrent_writers_readers);
	tcase_add_test(tc, rekey_file);
	tcase_add_test(tc, sparse_terabyte);
	tcase_add_test(tc, crash_residue);
	tcase_add_test(tc, verify_reports_sectors);
	tcase_add_test(tc, errors_and_modes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
