/*
 * test_firmware_keystore.c - the flash key store: meta and key records,
 * lock/unlock (a wrong master key yields no keys), zeroization on delete,
 * encryption at rest, compaction under churn with wear spread bounded,
 * the 41,000-key capacity target, and the factory wipe.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "firmware/keystore.h"
#include "wire/wire.h"

static char tmpdir[] = "/tmp/kstestXXXXXX";

static void make_tmpdir(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void remove_tmpdir(void)
{
	nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static const uint8_t master[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const uint8_t other_master[32] = { 9, 9, 9 };

/* Key number id, version ver: every attribute and byte depends on both. */
static void make_key(struct ks_key *k, uint32_t id, uint32_t ver)
{
	uint32_t x = id * 2654435761u + ver * 40503u + 1;

	memset(k, 0, sizeof(*k));
	k->id = id;
	k->alg = (uint8_t)(1 + (id + ver) % WIRE_ALG_MAX);
	k->len = k->alg == WIRE_ALG_AES128_GCM ? 16 : 32;
	k->usage = (uint8_t)((id ^ ver) & WIRE_USE_ALL);
	k->not_before = (id * 7u + ver) & 0xffffffu;
	k->not_after = (id % 3 == 0) ? WIRE_TIME_NEVER : ((id * 13u + ver) & 0xffffffu);
	for (unsigned i = 0; i < k->len; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		k->value[i] = (uint8_t)x;
	}
}

static void assert_key(const struct ks_key *got, uint32_t id, uint32_t ver)
{
	struct ks_key want;

	make_key(&want, id, ver);
	ck_assert_uint_eq(got->id, want.id);
	ck_assert_uint_eq(got->alg, want.alg);
	ck_assert_uint_eq(got->len, want.len);
	ck_assert_uint_eq(got->usage, want.usage);
	ck_assert_uint_eq(got->not_before, want.not_before);
	ck_assert_uint_eq(got->not_after, want.not_after);
	ck_assert_mem_eq(got->value, want.value, want.len);
}

/* Reopen the store from a copy of its flash, as after a reboot. */
static struct keystore *reopen(struct keystore *ks, struct flash **f)
{
	static uint8_t img[FLASH_SIZE];
	struct keystore *out;

	ck_assert_int_eq(flash_snapshot(*f, img), FLASH_OK);
	ks_close(ks);
	flash_close(*f);
	ck_assert_int_eq(flash_open_mem(f, img), FLASH_OK);
	ck_assert_int_eq(ks_open_flash(&out, *f), KS_OK);
	return out;
}

static struct keystore *fresh(struct flash **f)
{
	struct keystore *ks;

	ck_assert_int_eq(flash_open_mem(f, NULL), FLASH_OK);
	ck_assert_int_eq(ks_open_flash(&ks, *f), KS_OK);
	return ks;
}

START_TEST(meta_records)
{
	struct flash *f;
	struct keystore *ks = fresh(&f);
	uint8_t buf[KS_META_MAX + 1], big[KS_META_MAX + 1];
	size_t len;

	memset(big, 0x5a, sizeof(big));
	ck_assert_int_eq(ks_meta_get(ks, 1, buf, sizeof(buf), &len), KS_ENOENT);
	ck_assert_int_eq(ks_meta_put(ks, 1, "identity", 8), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 2, big, KS_META_MAX), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 3, NULL, 0), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 4, big, KS_META_MAX + 1), KS_EINVAL);
	ck_assert_int_eq(ks_meta_put(ks, KS_TAG_VERIFIER, "x", 1), KS_EINVAL);
	ck_assert_int_eq(ks_meta_put(ks, 1, "identity2", 9), KS_OK); /* replace */
	ck_assert_int_eq(ks_meta_get(ks, 1, buf, 4, &len), KS_EINVAL); /* too small */
	ck_assert_uint_eq(len, 9);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_meta_get(ks, 1, buf, sizeof(buf), &len), KS_OK);
	ck_assert_uint_eq(len, 9);
	ck_assert_mem_eq(buf, "identity2", 9);
	ck_assert_int_eq(ks_meta_get(ks, 2, buf, sizeof(buf), &len), KS_OK);
	ck_assert_uint_eq(len, KS_META_MAX);
	ck_assert_mem_eq(buf, big, KS_META_MAX);
	ck_assert_int_eq(ks_meta_get(ks, 3, buf, sizeof(buf), &len), KS_OK);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(ks_meta_delete(ks, 2), KS_OK);
	ck_assert_int_eq(ks_meta_delete(ks, 2), KS_ENOENT);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_meta_get(ks, 2, buf, sizeof(buf), &len), KS_ENOENT);
	ck_assert_int_eq(ks_meta_get(ks, 3, buf, sizeof(buf), &len), KS_OK);
	ks_close(ks);
	flash_close(f);
}
END_TEST

START_TEST(keys_basic)
{
	struct flash *f;
	struct keystore *ks = fresh(&f);
	struct ks_key k, got;
	uint32_t ids[] = { 7, 3, 0xffffffffu, 0, 100 };

	make_key(&k, 1, 0);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_ELOCKED);
	ck_assert_int_eq(ks_key_get(ks, 1, &got), KS_ELOCKED);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert(ks_unlocked(ks));
	for (unsigned i = 0; i < 5; i++) {
		make_key(&k, ids[i], 0);
		ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	}
	ck_assert_uint_eq(ks_key_count(ks), 5);
	make_key(&k, 7, 1);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_EEXIST);
	ck_assert_int_eq(ks_key_put(ks, &k, 1), KS_OK);
	ck_assert_int_eq(ks_key_get(ks, 7, &got), KS_OK);
	assert_key(&got, 7, 1);
	ck_assert_int_eq(ks_key_get(ks, 8, &got), KS_ENOENT);
	/* Bad algorithm or a length that does not match it. */
	make_key(&k, 9, 0);
	k.alg = 0;
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_EINVAL);
	make_key(&k, 9, 0);
	k.len = 31;
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_EINVAL);
	/* Iteration in ID order. */
	ck_assert_int_eq(ks_key_next(ks, 0, &got), KS_OK);
	ck_assert_uint_eq(got.id, 0);
	ck_assert_int_eq(ks_key_next(ks, 1, &got), KS_OK);
	ck_assert_uint_eq(got.id, 3);
	ck_assert_int_eq(ks_key_next(ks, 8, &got), KS_OK);
	ck_assert_uint_eq(got.id, 100);
	ck_assert_int_eq(ks_key_next(ks, 101, &got), KS_OK);
	ck_assert_uint_eq(got.id, 0xffffffffu);
	ck_assert_int_eq(ks_key_delete(ks, 0xffffffffu), KS_OK);
	ck_assert_int_eq(ks_key_next(ks, 101, &got), KS_ENOENT);
	ck_assert_int_eq(ks_key_delete(ks, 0xffffffffu), KS_ENOENT);
	ck_assert_uint_eq(ks_key_count(ks), 4);
	/* After a reboot: keys invisible until unlocked, then all there. */
	ks = reopen(ks, &f);
	ck_assert(!ks_unlocked(ks));
	ck_assert_uint_eq(ks_key_count(ks), 0);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert_uint_eq(ks_key_count(ks), 4);
	ck_assert_int_eq(ks_key_get(ks, 7, &got), KS_OK);
	assert_key(&got, 7, 1);
	ck_assert_int_eq(ks_key_get(ks, 3, &got), KS_OK);
	assert_key(&got, 3, 0);
	ks_lock(ks);
	ck_assert_int_eq(ks_key_get(ks, 3, &got), KS_ELOCKED);
	ks_close(ks);
	flash_close(f);
}
END_TEST

START_TEST(wrong_master)
{
	struct flash *f;
	struct keystore *ks = fresh(&f);
	struct ks_key k, got;

	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	make_key(&k, 42, 0);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_unlock(ks, other_master), KS_EKEY);
	ck_assert(!ks_unlocked(ks));
	ck_assert_uint_eq(ks_key_count(ks), 0);
	ck_assert_int_eq(ks_key_get(ks, 42, &got), KS_ELOCKED);
	ck_assert_int_eq(ks_key_next(ks, 0, &got), KS_ELOCKED);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert_int_eq(ks_key_get(ks, 42, &got), KS_OK);
	assert_key(&got, 42, 0);
	ck_assert_str_eq(ks_strerror(KS_EKEY), "wrong master key for this key store");
	ks_close(ks);
	flash_close(f);
}
END_TEST

/* Values never appear in clear on flash; a delete zeroes the record. */
START_TEST(at_rest)
{
	static uint8_t before[FLASH_SIZE], after[FLASH_SIZE];
	struct flash *f;
	struct keystore *ks = fresh(&f);
	struct ks_key k;
	unsigned changed = 0;

	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	for (uint32_t id = 1; id <= 50; id++) {
		make_key(&k, id, 0);
		ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	}
	ck_assert_int_eq(flash_snapshot(f, before), FLASH_OK);
	for (uint32_t id = 1; id <= 50; id++) {
		make_key(&k, id, 0);
		ck_assert_ptr_null(memmem(before, FLASH_SIZE, k.value, 16));
	}
	ck_assert_int_eq(ks_key_delete(ks, 25), KS_OK);
	ck_assert_int_eq(flash_snapshot(f, after), FLASH_OK);
	for (uint32_t i = 0; i < FLASH_SIZE; i++) {
		if (before[i] == after[i])
			continue;
		changed++;
		ck_assert(after[i] == 0 || after[i] == 0x80); /* zeroed; header 0x80 */
	}
	ck_assert_uint_ge(changed, 40); /* the 46-byte record, bar bytes already 0 */
	ck_assert_uint_le(changed, KS_KEY_RECORD);
	ks_close(ks);
	flash_close(f);
}
END_TEST

START_TEST(file_backed)
{
	char path[64];
	struct keystore *ks;
	struct ks_key k, got;
	uint8_t buf[16];
	size_t len;

	snprintf(path, sizeof(path), "%s/flash.img", tmpdir);
	ck_assert_int_eq(ks_open(&ks, path, 0), KS_EIO); /* missing */
	ck_assert_int_eq(ks_open(&ks, path, 1), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 1, "id", 2), KS_OK);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	make_key(&k, 5, 0);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	ks_close(ks);
	ck_assert_int_eq(ks_open(&ks, path, 0), KS_OK);
	ck_assert_int_eq(ks_meta_get(ks, 1, buf, sizeof(buf), &len), KS_OK);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert_int_eq(ks_key_get(ks, 5, &got), KS_OK);
	assert_key(&got, 5, 0);
	ks_close(ks);
}
END_TEST

/*
 * Churn: LIVE keys kept, CHURN_OPS puts/replaces/deletes and meta puts
 * that write the flash over several times; everything checked against a
 * model at the end and after a reboot, and the erase counts stay close.
 */
#define LIVE      3000u
#define CHURN_OPS 600000u

START_TEST(churn_and_wear)
{
	struct flash *f;
	struct keystore *ks = fresh(&f);
	uint32_t *ver = calloc(LIVE, sizeof(*ver)); /* 0 = absent, else version */
	uint32_t x = 12345, lo, hi, n = 0;
	uint8_t meta[64];
	struct ks_key k, got;
	size_t len;

	ck_assert_ptr_nonnull(ver);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	for (uint32_t i = 0; i < CHURN_OPS; i++) {
		uint32_t id;

		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		id = x % LIVE;
		if (i % 50 == 0) {
			memset(meta, (int)i, sizeof(meta));
			ck_assert_int_eq(ks_meta_put(ks, (uint8_t)(1 + i % 3), meta, 10 + i % 50), KS_OK);
		} else if (ver[id] && (x >> 20) % 4 == 0) {
			ck_assert_int_eq(ks_key_delete(ks, id), KS_OK);
			ver[id] = 0;
		} else {
			make_key(&k, id, i + 1);
			ck_assert_int_eq(ks_key_put(ks, &k, ver[id] != 0), KS_OK);
			ver[id] = i + 1;
		}
	}
	ck_assert_int_eq(ks_wear(ks, &lo, &hi), KS_OK);
	fprintf(stderr, "churn: erase counts %u..%u\n", lo, hi);
	ck_assert_uint_ge(lo, 5);      /* every sector took part, cold ones too */
	ck_assert_uint_le(hi - lo, 6); /* wear levelled (the store moves cold
					* data once the spread passes 4) */
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	for (uint32_t id = 0; id < LIVE; id++) {
		if (!ver[id]) {
			ck_assert_int_eq(ks_key_get(ks, id, &got), KS_ENOENT);
			continue;
		}
		n++;
		ck_assert_int_eq(ks_key_get(ks, id, &got), KS_OK);
		assert_key(&got, id, ver[id]);
	}
	ck_assert_uint_eq(ks_key_count(ks), n);
	/* Locked, only meta records can move: they still find room. */
	ks_lock(ks);
	for (uint32_t i = 0; i < 20000; i++) {
		memset(meta, (int)i, sizeof(meta));
		ck_assert_int_eq(ks_meta_put(ks, 2, meta, sizeof(meta)), KS_OK);
	}
	ck_assert_int_eq(ks_meta_get(ks, 2, meta, sizeof(meta), &len), KS_OK);
	ck_assert_uint_eq(meta[0], (uint8_t)19999);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert_uint_eq(ks_key_count(ks), n);
	free(ver);
	ks_close(ks);
	flash_close(f);
}
END_TEST

#define CAPACITY 41000u

START_TEST(capacity)
{
	struct flash *f;
	struct keystore *ks = fresh(&f);
	struct ks_key k, got;
	uint32_t room0, id, extra = 0;
	int rc;

	ck_assert_int_eq(ks_meta_put(ks, 1, "identity record of 81 bytes.....................................................", 81), KS_OK);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	room0 = ks_key_room(ks);
	ck_assert_uint_ge(room0, CAPACITY);
	for (id = 0; id < CAPACITY; id++) {
		make_key(&k, id * 3 + 1, 0);
		ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	}
	/* The estimate follows the puts (it ignores sector-end gaps). */
	ck_assert_uint_le(ks_key_room(ks), room0 - CAPACITY);
	ck_assert_uint_ge(ks_key_room(ks), room0 - CAPACITY - FLASH_SECTORS);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert_uint_eq(ks_key_count(ks), CAPACITY);
	id = 0;
	for (uint32_t i = 0; i < CAPACITY; i++) {
		ck_assert_int_eq(ks_key_next(ks, id, &got), KS_OK);
		ck_assert_uint_eq(got.id, i * 3 + 1);
		assert_key(&got, got.id, 0);
		id = got.id + 1;
	}
	ck_assert_int_eq(ks_key_next(ks, id, &got), KS_ENOENT);
	/* Fill to the end: the measured capacity, with the reserve kept. */
	for (;;) {
		make_key(&k, 0x80000000u + extra, 0);
		rc = ks_key_put(ks, &k, 0);
		if (rc != KS_OK)
			break;
		extra++;
	}
	ck_assert_int_eq(rc, KS_EFULL);
	fprintf(stderr, "capacity: %u AES-256 keys of %d bytes (room estimate at start %u)\n",
		CAPACITY + extra, KS_KEY_RECORD, room0);
	ck_assert_uint_le(ks_key_room(ks), 10);
	/* Full, yet deleting makes room again and meta records still fit. */
	ck_assert_int_eq(ks_key_delete(ks, 1), KS_OK);
	for (uint32_t i = 1; i < 200; i++)
		ck_assert_int_eq(ks_key_delete(ks, i * 3 + 1), KS_OK);
	make_key(&k, 1, 1);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 2, "pin", 3), KS_OK);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	ck_assert_uint_eq(ks_key_count(ks), CAPACITY + extra - 199);
	ck_assert_int_eq(ks_key_get(ks, 1, &got), KS_OK);
	assert_key(&got, 1, 1);
	ks_close(ks);
	flash_close(f);
}
END_TEST

START_TEST(wipe)
{
	static uint8_t img[FLASH_SIZE];
	struct flash *f;
	struct keystore *ks = fresh(&f);
	const uint8_t keep[] = { 1 };
	struct ks_key k, got;
	uint8_t buf[16];
	size_t len;
	uint32_t used = 0;

	ck_assert_int_eq(ks_meta_put(ks, 1, "identity", 8), KS_OK);
	ck_assert_int_eq(ks_meta_put(ks, 2, "pin", 3), KS_OK);
	ck_assert_int_eq(ks_unlock(ks, master), KS_OK);
	for (uint32_t id = 0; id < 2000; id++) {
		make_key(&k, id, 0);
		ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	}
	ck_assert_int_eq(ks_wipe(ks, keep, sizeof(keep)), KS_OK);
	ck_assert(!ks_unlocked(ks));
	ck_assert_int_eq(ks_meta_get(ks, 1, buf, sizeof(buf), &len), KS_OK);
	ck_assert_mem_eq(buf, "identity", 8);
	ck_assert_int_eq(ks_meta_get(ks, 2, buf, sizeof(buf), &len), KS_ENOENT);
	/* Erased, not unlinked: only headers and the kept record are left. */
	ck_assert_int_eq(flash_snapshot(f, img), FLASH_OK);
	for (uint32_t i = 0; i < FLASH_SIZE; i++)
		used += img[i] != 0xff;
	ck_assert_uint_le(used, FLASH_SECTORS * 16 + 32);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_meta_get(ks, 1, buf, sizeof(buf), &len), KS_OK);
	ck_assert_int_eq(ks_meta_get(ks, 2, buf, sizeof(buf), &len), KS_ENOENT);
	/* A new master key is accepted: the old verifier went too. */
	ck_assert_int_eq(ks_unlock(ks, other_master), KS_OK);
	ck_assert_uint_eq(ks_key_count(ks), 0);
	ck_assert_int_eq(ks_key_get(ks, 5, &got), KS_ENOENT);
	make_key(&k, 5, 1);
	ck_assert_int_eq(ks_key_put(ks, &k, 0), KS_OK);
	ks = reopen(ks, &f);
	ck_assert_int_eq(ks_unlock(ks, master), KS_EKEY);
	ck_assert_int_eq(ks_unlock(ks, other_master), KS_OK);
	ck_assert_int_eq(ks_key_get(ks, 5, &got), KS_OK);
	assert_key(&got, 5, 1);
	ks_close(ks);
	flash_close(f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("firmware_keystore");
	TCase *tc = tcase_create("keystore");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_test(tc, meta_records);
	tcase_add_test(tc, keys_basic);
	tcase_add_test(tc, wrong_master);
	tcase_add_test(tc, at_rest);
	tcase_add_test(tc, file_backed);
	tcase_add_test(tc, churn_and_wear);
	tcase_add_test(tc, capacity);
	tcase_add_test(tc, wipe);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
