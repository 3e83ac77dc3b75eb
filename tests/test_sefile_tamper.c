/*
 * test_sefile_tamper.c - every way of damaging a SEfile file's backing
 * ends in EIO (SEFILE_EINTEGRITY or SEFILE_EFORMAT), never in wrong bytes:
 * every bit flipped (header and data), sectors swapped, a sector or the
 * header spliced in from another file, the backing truncated at every
 * offset, bytes appended that no crash leaves.  What a crash does leave
 * past the end (docs/FORMAT.md, "Crash residue": sectors of the file at
 * their index, holes, a torn last write ending at a page boundary) reads
 * exactly the authenticated length, and a read-write open repairs it.
 * Zeroing a whole stored sector makes a hole: the documented limit.
 * Small files (2.5 sectors of 512 bytes) keep the sweeps fast.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cube/cube.h"
#include "helper_emu.h"
#include "sefile/sefile.h"

#define K_A 1
#define K_B 2
#define SS 512
#define FILE_LEN (2 * SS + SS / 2)
#define UNIT (SS + WIRE_SECTOR_OVERHEAD)

struct env {
	struct emu e;
	struct sefile_cube *pool;
	char dir[PATH_MAX + 16];
	uint8_t data[FILE_LEN];
	uint8_t orig[4096];    /* pristine backing of file "a" */
	size_t orig_len;
};

static void make(struct env *v, const char *name, uint32_t key, unsigned seed)
{
	struct sefile_params p = { key, 0, SS };
	struct sefile *f;
	char path[PATH_MAX + 64];
	size_t i;
	int fd;

	for (i = 0; i < FILE_LEN; i++)
		v->data[i] = (uint8_t)(i * 13 + seed);
	snprintf(path, sizeof(path), "%s/%s", v->dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sefile_create(&f, v->pool, fd, &p), SEFILE_OK);
	ck_assert_int_eq(sefile_pwrite(f, v->data, FILE_LEN, 0), FILE_LEN);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	close(fd);
}

static int open_path(struct env *v, const char *name, int flags)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", v->dir, name);
	fd = open(path, flags);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void env_up(struct env *v)
{
	struct cube_key ka = { K_A, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER };
	struct cube_key kb = { K_B, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER };
	struct cube *c;
	char err[256];
	ssize_t n;
	int fd;

	emu_new(&v->e);
	c = emu_login(&v->e, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(c, &ka), CUBE_OK);
	ck_assert_int_eq(cube_key_generate(c, &kb), CUBE_OK);
	cube_close(c);
	ck_assert_msg(sefile_cube_open(&v->pool, v->e.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err, sizeof(err)) ==
			      SEFILE_OK, "pool: %s", err);
	snprintf(v->dir, sizeof(v->dir), "%s/files", v->e.dir);
	ck_assert_int_eq(mkdir(v->dir, 0700), 0);
	make(v, "b", K_A, 99);    /* same key, same length, other ID */
	make(v, "c", K_B, 42);    /* another key */
	make(v, "a", K_A, 1);     /* v->data is a's content */
	fd = open_path(v, "a", O_RDONLY);
	n = pread(fd, v->orig, sizeof(v->orig), 0);
	close(fd);
	ck_assert_int_eq(n, (ssize_t)sefile_backing_size(FILE_LEN, SS));
	v->orig_len = (size_t)n;
}

static void env_down(struct env *v)
{
	sefile_cube_close(v->pool);
	emu_free(&v->e);
}

/* Put backing bytes for "a" in place (exact length). */
static void put_backing(struct env *v, const uint8_t *b, size_t n)
{
	int fd = open_path(v, "a", O_RDWR);

	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, b, n, 0), (ssize_t)n);
	close(fd);
}

/*
 * Open "a" (read-only) and read all of it.  Returns 0 if it read exactly
 * the original content, or the (negative) SEfile code of the failure;
 * wrong bytes fail the test on the spot.
 */
static int read_back_ex(struct env *v, const char *what, int allow_nokey)
{
	uint8_t got[FILE_LEN + 64];
	struct sefile *f;
	ssize_t n;
	int fd = open_path(v, "a", O_RDONLY), rc;

	rc = sefile_open(&f, v->pool, fd);
	if (rc == SEFILE_OK) {
		n = sefile_pread(f, got, sizeof(got), 0);
		sefile_close(f);
		if (n < 0)
			rc = (int)n;
		else
			ck_assert_msg(n == FILE_LEN && memcmp(got, v->data, FILE_LEN) == 0,
				      "%s: read %zd wrong bytes", what, n);
	}
	close(fd);
	/* A header naming a key this cube lacks is "no key", not EIO. */
	if (allow_nokey && rc == SEFILE_ENOKEY)
		return rc;
	if (rc != SEFILE_OK)
		ck_assert_msg(rc == SEFILE_EINTEGRITY || rc == SEFILE_EFORMAT, "%s: code %d (%s)", what,
			      rc, sefile_errmsg());
	if (rc != SEFILE_OK)
		ck_assert_int_eq(sefile_errno(rc), EIO);
	return rc;
}

static int read_back(struct env *v, const char *what)
{
	return read_back_ex(v, what, 0);
}

START_TEST(every_bit_flip)
{
	struct env v;
	uint8_t b[4096];
	size_t bit;
	int hdr_fail = 0, data_fail = 0;

	env_up(&v);
	for (bit = 0; bit < v.orig_len * 8; bit++) {
		char what[64];

		memcpy(b, v.orig, v.orig_len);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		put_backing(&v, b, v.orig_len);
		snprintf(what, sizeof(what), "bit %zu", bit);
		/* bytes 12..15 of the header are the key ID */
		ck_assert_msg(read_back_ex(&v, what, bit / 8 >= 12 && bit / 8 < 16) != SEFILE_OK,
			      "%s flipped went unnoticed", what);
		if (bit / 8 < SEFILE_HEADER_LEN)
			hdr_fail++;
		else
			data_fail++;
	}
	ck_assert_int_eq(hdr_fail, SEFILE_HEADER_LEN * 8);
	put_backing(&v, v.orig, v.orig_len);
	ck_assert_int_eq(read_back(&v, "pristine"), SEFILE_OK);
	env_down(&v);
}
END_TEST

static void load(struct env *v, const char *name, uint8_t *b, size_t n)
{
	int fd = open_path(v, name, O_RDONLY);

	ck_assert_int_eq(pread(fd, b, n, 0), (ssize_t)n);
	close(fd);
}

START_TEST(swap_and_splice)
{
	struct env v;
	uint8_t b[4096], other[4096], keyb[4096];
	size_t s0 = SEFILE_HEADER_LEN, s1 = SEFILE_HEADER_LEN + UNIT;

	env_up(&v);
	load(&v, "b", other, v.orig_len);
	load(&v, "c", keyb, v.orig_len);

	/* sectors 0 and 1 swapped */
	memcpy(b, v.orig, v.orig_len);
	memcpy(b + s0, v.orig + s1, UNIT);
	memcpy(b + s1, v.orig + s0, UNIT);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "swap 0/1"), SEFILE_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(sefile_errmsg(), "sector 0"));

	/* sector 0 duplicated over sector 1 */
	memcpy(b, v.orig, v.orig_len);
	memcpy(b + s1, v.orig + s0, UNIT);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "dup 0->1"), SEFILE_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(sefile_errmsg(), "sector 1"));

	/* sector 1 of another file (same key, same index) */
	memcpy(b, v.orig, v.orig_len);
	memcpy(b + s1, other + s1, UNIT);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "splice sector"), SEFILE_EINTEGRITY);

	/* the last (short) sector of another file */
	memcpy(b, v.orig, v.orig_len);
	memcpy(b + s1 + UNIT, other + s1 + UNIT, v.orig_len - s1 - UNIT);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "splice tail"), SEFILE_EINTEGRITY);

	/* the header of another file: authentic, but not this file's */
	memcpy(b, v.orig, v.orig_len);
	memcpy(b, other, SEFILE_HEADER_LEN);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "foreign header"), SEFILE_EINTEGRITY);

	/* the header of a file under another key */
	memcpy(b, v.orig, v.orig_len);
	memcpy(b, keyb, SEFILE_HEADER_LEN);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "header under key B"), SEFILE_EINTEGRITY);

	/* a whole other file under key B in place of a's data */
	put_backing(&v, keyb, v.orig_len);
	memcpy(b, v.orig, SEFILE_HEADER_LEN);
	memcpy(b + SEFILE_HEADER_LEN, keyb + SEFILE_HEADER_LEN, v.orig_len - SEFILE_HEADER_LEN);
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "data under key B"), SEFILE_EINTEGRITY);

	/* a middle sector cut short (bytes removed): everything after shifts */
	memcpy(b, v.orig, s1 + 100);
	memcpy(b + s1 + 100, v.orig + s1 + 200, v.orig_len - s1 - 200);
	put_backing(&v, b, v.orig_len - 100);
	ck_assert_int_ne(read_back(&v, "short middle sector"), SEFILE_OK);
	env_down(&v);
}
END_TEST

START_TEST(truncate_everywhere)
{
	struct env v;
	size_t len;

	env_up(&v);
	for (len = 0; len < v.orig_len; len++) {
		char what[64];

		snprintf(what, sizeof(what), "truncated to %zu", len);
		put_backing(&v, v.orig, len);
		ck_assert_msg(read_back(&v, what) != SEFILE_OK, "%s went unnoticed", what);
	}
	put_backing(&v, v.orig, SEFILE_HEADER_LEN + 2 * UNIT);
	ck_assert_int_eq(read_back(&v, "cut at a sector boundary"), SEFILE_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(sefile_errmsg(), "truncated"));
	env_down(&v);
}
END_TEST

/* A backing buffer: a's pristine bytes, then `extra` bytes of `fill`
 * from offset `at` (a's end if 0), zeros in between; put in place. */
static void put_extended(struct env *v, size_t at, const uint8_t *fill, size_t extra, size_t total)
{
	uint8_t *b = calloc(1, total);

	ck_assert_ptr_nonnull(b);
	memcpy(b, v->orig, v->orig_len);
	if (!at)
		at = v->orig_len;
	ck_assert_uint_le(at + extra, total);
	memcpy(b + at, fill, extra);
	put_backing(v, b, total);
	free(b);
}

static void garbage(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 29 + seed) | 1;  /* never zero */
}

#define SECTOR3 (SEFILE_HEADER_LEN + 3 * UNIT)  /* where sector 3 would be */

/* Bytes appended past the last sector that no crash leaves: EIO naming
 * the extension.  (Up to the next sector boundary they are not judged:
 * the tail of an older, longer last sector; see the next test.) */
START_TEST(extension_is_eio)
{
	static uint8_t g[3u << 20];
	struct env v;
	size_t extra;

	env_up(&v);
	garbage(g, sizeof(g), 7);
	for (extra = SECTOR3 - v.orig_len + 1; extra < 2 * UNIT + 300; extra += 37) {
		char what[64];

		put_extended(&v, 0, g, extra, v.orig_len + extra);
		snprintf(what, sizeof(what), "garbage +%zu", extra);
		ck_assert_int_eq(read_back(&v, what), SEFILE_EINTEGRITY);
		ck_assert_msg(strstr(sefile_errmsg(), "backing file extended") != NULL, "%s: %s", what,
			      sefile_errmsg());
	}
	/* a's own sector 0 appended as sector 3: wrong index */
	put_extended(&v, SECTOR3, v.orig + SEFILE_HEADER_LEN, UNIT, SECTOR3 + UNIT);
	ck_assert_int_eq(read_back(&v, "own sector appended at another index"), SEFILE_EINTEGRITY);
	/* another file's sector 0 in a's sector 3 slot: wrong file and index */
	{
		uint8_t other[4096];
		ssize_t n;
		int fd = open_path(&v, "b", O_RDONLY);

		n = pread(fd, other, sizeof(other), 0);
		close(fd);
		ck_assert_int_eq(n, (ssize_t)v.orig_len);
		put_extended(&v, SECTOR3, other + SEFILE_HEADER_LEN, UNIT, SECTOR3 + UNIT);
		ck_assert_int_eq(read_back(&v, "another file's sector appended"), SEFILE_EINTEGRITY);
	}
	/* garbage to a page boundary but longer than any single write */
	put_extended(&v, SECTOR3, g, sizeof(g) - SECTOR3, sizeof(g));
	ck_assert_int_eq(read_back(&v, "3 MiB of garbage"), SEFILE_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(sefile_errmsg(), "backing file extended"));
	/* a read-write open refuses too (it does not cut what it cannot explain) */
	put_extended(&v, 0, g, 2 * UNIT, v.orig_len + 2 * UNIT);
	{
		struct sefile *f;
		int fd = open_path(&v, "a", O_RDWR);

		ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_EINTEGRITY);
		close(fd);
	}
	env_down(&v);
}
END_TEST

/* Read a and compare its first n bytes with want (its size must be n). */
static void expect_content(struct env *v, const uint8_t *want, size_t n, const char *what)
{
	uint8_t got[FILE_LEN + 2048];
	struct sefile *f;
	ssize_t r;
	int fd = open_path(v, "a", O_RDONLY);

	ck_assert_msg(sefile_open(&f, v->pool, fd) == SEFILE_OK, "%s: %s", what, sefile_errmsg());
	r = sefile_pread(f, got, sizeof(got), 0);
	ck_assert_msg(r == (ssize_t)n && memcmp(got, want, n) == 0, "%s: read %zd bytes", what, r);
	sefile_close(f);
	close(fd);
}

/* Backing of a after op (on a fresh copy of the pristine file) into out. */
static size_t after_op(struct env *v, int truncate, uint64_t at, size_t len, uint8_t *out, size_t cap)
{
	struct sefile *f;
	uint8_t more[2048];
	ssize_t n;
	int fd;

	put_backing(v, v->orig, v->orig_len);
	fd = open_path(v, "a", O_RDWR);
	ck_assert_int_eq(sefile_open(&f, v->pool, fd), SEFILE_OK);
	garbage(more, sizeof(more), 3);
	if (truncate)
		ck_assert_int_eq(sefile_truncate(f, at), SEFILE_OK);
	else
		ck_assert_int_eq(sefile_pwrite(f, more, len, at), (ssize_t)len);
	ck_assert_int_eq(sefile_close(f), SEFILE_OK);
	n = pread(fd, out, cap, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

/* What a crash leaves still reads as the authenticated length. */
START_TEST(crash_residue_still_reads)
{
	static uint8_t big[8192], b[8192], g[8192];
	struct env v;
	struct sefile *f;
	struct stat st;
	size_t n;
	int fd;

	env_up(&v);
	/* a grow killed before its header: a's sector 2 re-sealed at full
	 * length, sectors 3 and 4 appended, the old header still in place */
	n = after_op(&v, 0, FILE_LEN, 1000, big, sizeof(big));
	memcpy(big, v.orig, SEFILE_HEADER_LEN);
	put_backing(&v, big, n);
	expect_content(&v, v.data, FILE_LEN, "interrupted grow");
	fd = open_path(&v, "a", O_RDWR);   /* repairs: cut back */
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_OK);
	sefile_close(f);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, v.orig_len);
	close(fd);
	/* a shrink to 600 bytes killed before its cut: new header and
	 * sector 1, the old sector 1's tail and the old sector 2 after them */
	n = after_op(&v, 1, 600, 0, big, sizeof(big));
	memcpy(b, big, n);
	memcpy(b + n, v.orig + n, v.orig_len - n);
	put_backing(&v, b, v.orig_len);
	expect_content(&v, v.data, 600, "interrupted shrink");
	/* the bytes between a short last sector and the next boundary are
	 * not judged (the older sector's tail in the case above) */
	garbage(g, sizeof(g), 11);
	put_extended(&v, 0, g, SECTOR3 - v.orig_len, SECTOR3);
	ck_assert_int_eq(read_back(&v, "up to the next sector boundary"), SEFILE_OK);
	/* a torn last write: damage ending at a 4096-byte boundary... */
	put_extended(&v, SECTOR3, g, 4096 - SECTOR3, 4096);
	ck_assert_int_eq(read_back(&v, "torn at a page boundary"), SEFILE_OK);
	/* ...or followed by nothing but zeros across one (an extended region) */
	put_extended(&v, SECTOR3, g, 300, 4200);
	ck_assert_int_eq(read_back(&v, "torn, zeros after"), SEFILE_OK);
	/* holes (ftruncate) past the end */
	put_extended(&v, 0, g, 0, 20000);
	ck_assert_int_eq(read_back(&v, "holes appended"), SEFILE_OK);
	/* but damage that ends off a boundary with no zeros after is not */
	put_extended(&v, SECTOR3, g, 4200 - SECTOR3, 4200);
	ck_assert_int_eq(read_back(&v, "not torn at a boundary"), SEFILE_EINTEGRITY);
	env_down(&v);
}
END_TEST

/* The documented limit: a stored sector zeroed whole reads as a hole. */
START_TEST(zeroed_sector_is_a_hole)
{
	struct env v;
	uint8_t b[4096], got[FILE_LEN];
	struct sefile *f;
	int fd;

	env_up(&v);
	memcpy(b, v.orig, v.orig_len);
	memset(b + SEFILE_HEADER_LEN + UNIT, 0, UNIT);
	put_backing(&v, b, v.orig_len);
	fd = open_path(&v, "a", O_RDONLY);
	ck_assert_int_eq(sefile_open(&f, v.pool, fd), SEFILE_OK);
	ck_assert_int_eq(sefile_pread(f, got, sizeof(got), 0), FILE_LEN);
	ck_assert_int_eq(memcmp(got, v.data, SS), 0);
	for (size_t i = SS; i < 2 * SS; i++)
		ck_assert_uint_eq(got[i], 0);
	ck_assert_int_eq(memcmp(got + 2 * SS, v.data + 2 * SS, FILE_LEN - 2 * SS), 0);
	sefile_close(f);
	close(fd);
	/* zeroing all but one byte is not a hole: EIO */
	b[SEFILE_HEADER_LEN + UNIT + 5] = 1;
	put_backing(&v, b, v.orig_len);
	ck_assert_int_eq(read_back(&v, "almost zero"), SEFILE_EINTEGRITY);
	env_down(&v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_tamper");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, every_bit_flip);
	tcase_add_test(tc, swap_and_splice);
	tcase_add_test(tc, truncate_everywhere);
	tcase_add_test(tc, extension_is_eio);
	tcase_add_test(tc, crash_residue_still_reads);
	tcase_add_test(tc, zeroed_sector_is_a_hole);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
