/*
 * test_firmware_powercut.c - a power cut at any byte leaves the key store
 * as it was before or after the interrupted operation.
 *
 * 1. Prepare an initial image: the flash filled with keys to the end, then
 *    most of them destroyed, so the script's first write must compact; the
 *    sector with the largest share of garbage (sector 0) holds two live
 *    meta records (tag 1 and the verifier) and one live key, so the
 *    compaction copies both kinds.
 * 2. Run the script once without a cut: record the byte-operation range
 *    [a_i, b_i) of every operation and a digest of the store (every key
 *    with its attributes and value, every meta record) after each.
 * 3. For the cut offsets c (below): restart from the initial image, run
 *    the script with a budget of c byte operations, reopen a copy of the
 *    flash with ks_open_flash, unlock, and require the digest before or
 *    after the interrupted operation; then a put, a replace, a delete and
 *    a meta put must work.
 *
 * Cut offsets: every offset of every operation, except inside the long
 * runs of a sector erase: an operation of more than 2*WINDOW byte
 * operations (one holding an erase) is cut at every offset of its first
 * and last WINDOW bytes (the compaction's copies, the erase's first bytes,
 * the erase's end, the new header and the operation's own record) and
 * every STRIDE-th offset in between (the middle of the erase, where the
 * state is the same: the victim's header is already gone).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "firmware/keystore.h"
#include "wire/wire.h"

#define WINDOW   1500
#define STRIDE   509
/* Under AddressSanitizer each reopen is several times slower; that build
 * hunts memory errors, not missed offsets, so it cuts every 7th byte
 * operation (the normal build cuts every one). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SANITIZED)
#define SANITIZED 1
#endif
#ifdef SANITIZED
#define SWEEP_STEP 7
#else
#define SWEEP_STEP 1
#endif
#define NEW_BASE 0x00900000u

static const uint8_t master[32] = { 0x42, 1, 2, 3 };

enum op_kind { META_PUT, META_DEL, KEY_PUT, KEY_REPLACE, KEY_DEL };

struct op {
	enum op_kind kind;
	uint32_t id;  /* key ID or meta tag */
	uint32_t ver; /* key version or meta content */
};

#define MAX_OPS 64

struct script {
	struct op ops[MAX_OPS];
	unsigned n;
	long long start[MAX_OPS + 1]; /* byte operations before op i; [n] = N */
	uint64_t digest[MAX_OPS + 1]; /* store digest before op i; [n] = at end */
};

static void make_key(struct ks_key *k, uint32_t id, uint32_t ver)
{
	uint32_t x = id * 2246822519u + ver * 3266489917u + 7;

	memset(k, 0, sizeof(*k));
	k->id = id;
	k->alg = (uint8_t)(1 + (id + ver) % WIRE_ALG_MAX);
	k->len = k->alg == WIRE_ALG_AES128_GCM ? 16 : 32;
	k->usage = (uint8_t)((id + ver) & WIRE_USE_ALL);
	k->not_before = (id + ver * 11u) & 0xffffffu;
	k->not_after = WIRE_TIME_NEVER - ver;
	for (unsigned i = 0; i < k->len; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		k->value[i] = (uint8_t)x;
	}
}

static void make_meta(uint8_t *buf, size_t *len, uint32_t ver)
{
	*len = 5 + ver % 60;
	memset(buf, (int)(ver * 37u), *len);
}

/* Everything a user of the store can see, hashed. */
static uint64_t store_digest(struct keystore *ks)
{
	uint64_t h = 0;
	struct ks_key k;
	uint32_t from = 0;
	uint8_t buf[KS_META_MAX + 2];
	size_t len;

	while (ks_key_next(ks, from, &k) == KS_OK) {
		h = XXH64(&k, sizeof(k), h); /* the struct is zeroed before filling */
		if (k.id == UINT32_MAX)
			break;
		from = k.id + 1;
	}
	for (unsigned tag = 0; tag < 256; tag++) {
		if (ks_meta_get(ks, (uint8_t)tag, buf + 2, KS_META_MAX, &len) != KS_OK)
			continue;
		buf[0] = (uint8_t)tag;
		buf[1] = (uint8_t)len;
		h = XXH64(buf, len + 2, h);
	}
	return h;
}

static int run_op(struct keystore *ks, const struct op *o)
{
	struct ks_key k;
	uint8_t buf[KS_META_MAX];
	size_t len;

	switch (o->kind) {
	case META_PUT:
		make_meta(buf, &len, o->ver);
		return ks_meta_put(ks, (uint8_t)o->id, buf, len);
	case META_DEL:
		return ks_meta_delete(ks, (uint8_t)o->id);
	case KEY_PUT:
	case KEY_REPLACE:
		make_key(&k, o->id, o->ver);
		return ks_key_put(ks, &k, o->kind == KEY_REPLACE);
	case KEY_DEL:
		return ks_key_delete(ks, o->id);
	}
	return KS_EINVAL;
}

/* Fill to KS_EFULL, then destroy all keys but key 10 (in sector 0, with
 * meta 1 and the verifier) and one in a hundred elsewhere (every other
 * sector keeps a larger share live than sector 0).  Returns the number of
 * keys put. */
static uint32_t prepare(uint8_t *image)
{
	struct flash *f;
	struct keystore *ks;
	struct ks_key k;
	uint8_t buf[KS_META_MAX];
	size_t len;
	uint32_t n = 0;
	int rc;

	ck_assert_int_eq(flash_open_mem(&f, NULL), FLASH_OK);
	ck_assert_int_eq(ks_open_flash(&ks, f), KS_OK);
	make_meta(buf, &len, 1);
	ck_assert_int_eq(ks_meta_put(ks, 1, buf, len), KS_OK);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	for (;;) {
		make_key(&k, n, 0);
		rc = ks_key_put(ks, &k, 0);
		if (rc != KS_OK)
			break;
		n++;
	}
	ck_assert_int_eq(rc, KS_EFULL);
	for (uint32_t id = 0; id < n; id++)
		if (!(id == 10 || (id >= 400 && id % 100 == 0)))
			ck_assert_int_eq(ks_key_delete(ks, id), KS_OK);
	ck_assert_int_eq(flash_snapshot(f, image), FLASH_OK);
	ks_close(ks);
	flash_close(f);
	return n;
}

static void add(struct script *s, enum op_kind kind, uint32_t id, uint32_t ver)
{
	ck_assert_uint_lt(s->n, MAX_OPS);
	s->ops[s->n].kind = kind;
	s->ops[s->n].id = id;
	s->ops[s->n].ver = ver;
	s->n++;
}

static void write_script(struct script *s)
{
	s->n = 0;
	add(s, META_PUT, 1, 100);                 /* compacts first */
	for (uint32_t j = 0; j < 8; j++)
		add(s, KEY_PUT, NEW_BASE + j, 1);
	add(s, KEY_REPLACE, 10, 1);               /* copied by the compaction */
	add(s, KEY_REPLACE, 400, 1);
	add(s, KEY_DEL, 500, 0);
	add(s, KEY_DEL, 600, 0);
	add(s, META_PUT, 2, 101);
	add(s, META_PUT, 3, 104);
	add(s, META_DEL, 3, 0);
	for (uint32_t j = 0; j < 4; j++)
		add(s, KEY_REPLACE, NEW_BASE + j, 2);
	for (uint32_t j = 4; j < 7; j++)
		add(s, KEY_DEL, NEW_BASE + j, 0);
	add(s, META_PUT, 1, 102);
	add(s, META_PUT, 3, 103);
	for (uint32_t j = 100; j < 108; j++)
		add(s, KEY_PUT, NEW_BASE + j, 1);
	add(s, KEY_REPLACE, NEW_BASE + 100, 2);
	add(s, KEY_DEL, 1000, 0);
}

static struct keystore *open_image(const uint8_t *image, struct flash **f)
{
	struct keystore *ks;

	ck_assert_int_eq(flash_open_mem(f, image), FLASH_OK);
	ck_assert_int_eq(ks_open_flash(&ks, *f), KS_OK);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	return ks;
}

/* The uncut run: op ranges and digests. */
static void measure(const uint8_t *image, struct script *s)
{
	struct flash *f;
	struct keystore *ks = open_image(image, &f);
	long long base = flash_ops(f);

	for (unsigned i = 0; i < s->n; i++) {
		s->start[i] = flash_ops(f) - base;
		s->digest[i] = store_digest(ks);
		ck_assert_int_eq(run_op(ks, &s->ops[i]), KS_OK);
	}
	s->start[s->n] = flash_ops(f) - base;
	s->digest[s->n] = store_digest(ks);
	ks_close(ks);
	flash_close(f);
}

/* After recovery the store must keep working. */
static void check_usable(struct keystore *ks)
{
	struct ks_key k, got;
	uint8_t buf[8];
	size_t len;

	make_key(&k, 0x7fff0000u, 9);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	make_key(&k, 0x7fff0000u, 10);
	ck_assert_int_eq(ks_key_put(ks, &k, 1), KS_OK);
	ck_assert_int_eq(ks_key_get(ks, 0x7fff0000u, &got), KS_OK);
	ck_assert_mem_eq(got.value, k.value, k.len);
	ck_assert_int_eq(ks_key_delete(ks, 50 * 100), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 9, "ok", 2), KS_OK);
	ck_assert_int_eq(ks_meta_get(ks, 9, buf, sizeof(buf), &len), KS_OK);
}

/* One trial: cut after c byte operations of the script.  Returns 0 if the
 * store came back as before the interrupted op, 1 if as after. */
static int trial(const uint8_t *image, const struct script *s, long long c, uint8_t *snap)
{
	struct flash *f, *f2;
	struct keystore *ks = open_image(image, &f);
	long long base = flash_ops(f);
	unsigned i;
	uint64_t d;
	int outcome;

	flash_set_cut(f, c);
	for (i = 0; i < s->n; i++) {
		ck_assert_int_eq(flash_ops(f) - base, s->start[i]); /* deterministic */
		if (run_op(ks, &s->ops[i]) != KS_OK)
			break;
	}
	ck_assert_uint_lt(i, s->n);
	ck_assert(s->start[i] <= c && c < s->start[i + 1]);
	ck_assert_int_eq(flash_snapshot(f, snap), FLASH_OK);
	ks_close(ks);
	flash_close(f);

	ks = open_image(snap, &f2);
	d = store_digest(ks);
	if (d == s->digest[i])
		outcome = 0;
	else if (d == s->digest[i + 1])
		outcome = 1;
	else
		ck_abort_msg("cut at %lld (op %u): store is neither before nor after", c, i);
	check_usable(ks);
	ks_close(ks);
	flash_close(f2);
	return outcome;
}

START_TEST(every_cut)
{
	uint8_t *image = malloc(FLASH_SIZE), *snap = malloc(FLASH_SIZE);
	struct script *s = calloc(1, sizeof(*s));
	unsigned trials = 0, after = 0, compactions = 0;
	uint32_t filled;

	ck_assert_ptr_nonnull(image);
	ck_assert_ptr_nonnull(snap);
	ck_assert_ptr_nonnull(s);
	filled = prepare(image);
	write_script(s);
	measure(image, s);
	for (unsigned i = 0; i < s->n; i++) {
		long long a = s->start[i], b = s->start[i + 1];

		if (b - a > 2 * WINDOW)
			compactions++;
		for (long long c = a; c < b; c++) {
			if (b - a > 2 * WINDOW && c >= a + WINDOW && c < b - WINDOW &&
			    (c - a - WINDOW) % STRIDE != 0)
				continue;
			if (SWEEP_STEP > 1 && c != a && c != b - 1 && (c - a) % SWEEP_STEP != 0)
				continue;
			after += (unsigned)trial(image, s, c, snap);
			trials++;
		}
	}
	fprintf(stderr, "powercut: %u keys filled, %u ops, N=%lld byte operations, "
		"%u with an erase, %u cuts (%u came back after, %u before)\n",
		filled, s->n, s->start[s->n], compactions, trials, after, trials - after);
	ck_assert_uint_ge(compactions, 1);
	free(s);
	free(snap);
	free(image);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("firmware_powercut");
	TCase *tc = tcase_create("powercut");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_cut);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
