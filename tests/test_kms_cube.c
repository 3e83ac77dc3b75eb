/*
 * test_kms_cube.c - SEkey with the admin cube (an emulated one): keys are
 * generated inside the cube, the cube's validity window follows the key
 * state so the cube itself refuses cube_seal with a pre-active, suspended
 * or deactivated key while an active one works (and decryption still
 * works), destroyed keys are gone from the cube, a failing cube call rolls
 * the whole change back, rotation reaches the cube, and only the admin
 * cube recorded at kms_admin_init may drive the KMS.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms/kms.h"
#include "tests/helper_emu.h"

/* Every test's files live under this directory, made and removed by
 * main(), so a failed (forked) test leaves nothing behind. */
static char base_dir[64];

struct fx {
	struct emu e;
	struct cube *c;
	char dir[96];
	char path[128];
	sqlite3 *db;
	struct kms *k;
	uint32_t group;
};

static void fx_open(struct fx *f)
{
	struct kms_policy p;
	char err[256];

	memset(f, 0, sizeof(*f));
	emu_new(&f->e);
	f->c = emu_login(&f->e, WIRE_ROLE_ADMIN);
	snprintf(f->dir, sizeof(f->dir), "%s/t.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/kms.db", f->dir);
	ck_assert_int_eq(sqlite3_open(f->path, &f->db), SQLITE_OK);
	ck_assert_msg(kms_open(&f->k, f->db, f->c, err, sizeof(err)) == KMS_OK, "%s", err);
	ck_assert_msg(kms_admin_init(f->k) == KMS_OK, "%s", kms_errmsg(f->k));
	kms_policy_default(&p);
	p.max_keys = 4;
	ck_assert_int_eq(kms_add_group(f->k, "team", &p, &f->group), KMS_OK);
}

static void fx_free(struct fx *f)
{
	kms_close(f->k);
	sqlite3_close(f->db);
	unlink(f->path);
	rmdir(f->dir);
	cube_close(f->c);
	emu_free(&f->e);
}

/* Seal one sector with key id: the cube's status. */
static int seal(struct fx *f, uint32_t id, uint8_t *sealed)
{
	static const uint8_t fid[WIRE_FILE_ID_LEN] = { 1, 2, 3 };
	struct cube_sector s = { .index = 0, .len = 64 };
	uint8_t plain[64];

	memset(plain, 0x5a, sizeof(plain));
	return cube_seal(f->c, id, WIRE_ALG_AES256_GCM, fid, &s, 1, plain, sealed);
}

static int unseal(struct fx *f, uint32_t id, const uint8_t *sealed)
{
	static const uint8_t fid[WIRE_FILE_ID_LEN] = { 1, 2, 3 };
	struct cube_sector s = { .index = 0, .len = 64 };
	uint8_t plain[64], bad = 1;
	int rc = cube_open_sectors(f->c, id, WIRE_ALG_AES256_GCM, fid, &s, 1, sealed, plain, &bad);

	if (rc == CUBE_OK)
		ck_assert_uint_eq(plain[63], 0x5a);
	return rc;
}

START_TEST(key_states_in_the_cube)
{
	struct fx f;
	struct cube_key ck;
	uint8_t sealed[64 + WIRE_SECTOR_OVERHEAD];
	uint32_t id;

	fx_open(&f);
	ck_assert_msg(kms_add_key(f.k, f.group, "k", 0, &id) == KMS_OK, "%s", kms_errmsg(f.k));
	ck_assert_uint_ge(id, KMS_KEY_ID_FIRST);
	ck_assert_int_eq(cube_key_info(f.c, id, &ck), CUBE_OK);
	ck_assert_uint_eq(ck.alg, WIRE_ALG_AES256_GCM);
	ck_assert_uint_eq(ck.usage, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT | WIRE_USE_EXPORTABLE);
	ck_assert_uint_eq(ck.not_before, WIRE_TIME_NEVER - 1);
	ck_assert_int_eq(seal(&f, id, sealed), CUBE_EEXPIRED); /* pre-active */

	ck_assert_int_eq(kms_activate_key(f.k, id), KMS_OK);
	ck_assert_int_eq(seal(&f, id, sealed), CUBE_OK);
	ck_assert_int_eq(unseal(&f, id, sealed), CUBE_OK);

	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_SUSPENDED), KMS_OK);
	ck_assert_int_eq(seal(&f, id, sealed), CUBE_EEXPIRED);
	ck_assert_int_eq(unseal(&f, id, sealed), CUBE_OK); /* still decrypts */
	ck_assert_int_eq(kms_activate_key(f.k, id), KMS_OK);
	ck_assert_int_eq(seal(&f, id, sealed), CUBE_OK);

	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_DEACTIVATED), KMS_OK);
	ck_assert_int_eq(seal(&f, id, sealed), CUBE_EEXPIRED);
	ck_assert_int_eq(unseal(&f, id, sealed), CUBE_OK);
	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_COMPROMISED), KMS_OK);
	ck_assert_int_eq(seal(&f, id, sealed), CUBE_EEXPIRED);
	ck_assert_int_eq(unseal(&f, id, sealed), CUBE_OK);

	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_DESTROYED), KMS_OK);
	ck_assert_int_eq(cube_key_info(f.c, id, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(unseal(&f, id, sealed), CUBE_ENOKEY);
	fx_free(&f);
}
END_TEST

START_TEST(failed_cube_call_rolls_back)
{
	struct fx f;
	struct cube_key squatter = { .id = KMS_KEY_ID_FIRST + 1, .alg = WIRE_ALG_AES256_GCM,
				     .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT,
				     .not_before = 0, .not_after = WIRE_TIME_NEVER };
	struct kms_key *keys;
	size_t n;
	uint32_t k1, k2, k3;

	fx_open(&f);
	ck_assert_int_eq(kms_add_key(f.k, f.group, "first", 0, &k1), KMS_OK);
	ck_assert_uint_eq(k1, KMS_KEY_ID_FIRST);
	/* The cube refuses (logged out): the change fails whole. */
	ck_assert_int_eq(cube_logout(f.c), CUBE_OK);
	ck_assert_int_eq(kms_add_key(f.k, f.group, "second", 0, &k2), KMS_ECUBE);
	ck_assert_uint_eq(k2, 0);
	ck_assert_int_eq(kms_key_list(f.k, f.group, &keys, &n), KMS_OK);
	ck_assert_uint_eq(n, 1);
	free(keys);
	ck_assert_int_eq(cube_login(f.c, WIRE_ROLE_ADMIN, EMU_ADMIN_PIN), CUBE_OK);
	/* The next ID is already taken in the cube (a change killed after
	 * the cube generated its key, before the database committed): it is
	 * skipped, the squatter left alone, and the ID counter had rolled
	 * back with the failed change. */
	ck_assert_int_eq(cube_key_generate(f.c, &squatter), CUBE_OK);
	ck_assert_int_eq(kms_add_key(f.k, f.group, "second", 0, &k2), KMS_OK);
	ck_assert_uint_eq(k2, KMS_KEY_ID_FIRST + 2);
	ck_assert_int_eq(kms_add_key(f.k, f.group, "third", 0, &k3), KMS_OK);
	ck_assert_uint_eq(k3, KMS_KEY_ID_FIRST + 3);
	ck_assert_int_eq(kms_key_list(f.k, f.group, &keys, &n), KMS_OK);
	ck_assert_uint_eq(n, 3);
	free(keys);
	ck_assert_int_eq(kms_audit_verify(f.k, NULL), KMS_OK);
	fx_free(&f);
}
END_TEST

START_TEST(rotation_reaches_the_cube)
{
	struct fx f;
	struct kms_found out;
	uint8_t sealed[64 + WIRE_SECTOR_OVERHEAD];
	uint32_t a, b, k0;

	fx_open(&f);
	ck_assert_int_eq(kms_add_user(f.k, "alice", NULL, &a), KMS_OK);
	ck_assert_int_eq(kms_add_user(f.k, "bob", NULL, &b), KMS_OK);
	ck_assert_int_eq(kms_add_member(f.k, a, f.group), KMS_OK);
	ck_assert_int_eq(kms_add_member(f.k, b, f.group), KMS_OK);
	ck_assert_int_eq(kms_add_key(f.k, f.group, "k", 0, &k0), KMS_OK);
	ck_assert_int_eq(kms_activate_key(f.k, k0), KMS_OK);
	ck_assert_int_eq(seal(&f, k0, sealed), CUBE_OK);
	ck_assert_msg(kms_remove_member(f.k, b, f.group) == KMS_OK, "%s", kms_errmsg(f.k));
	ck_assert_int_eq(seal(&f, k0, sealed), CUBE_EEXPIRED);
	ck_assert_int_eq(unseal(&f, k0, sealed), CUBE_OK);
	ck_assert_int_eq(kms_find_key_v2(f.k, a, f.group, &out), KMS_OK);
	ck_assert_uint_ne(out.key_id, k0);
	ck_assert_int_eq(seal(&f, out.key_id, sealed), CUBE_OK);
	fx_free(&f);
}
END_TEST

START_TEST(only_the_admin_cube)
{
	struct fx f;
	struct emu other;
	struct cube *oc, *uc;
	struct kms *k2;
	sqlite3 *db2;
	char err[256];

	fx_open(&f);
	emu_new(&other);
	oc = emu_login(&other, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(kms_open(&k2, f.db, oc, err, sizeof(err)), KMS_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "admin cube"));
	/* A cube logged in as user cannot make a database the admin's. */
	uc = emu_login(&other, WIRE_ROLE_USER);
	ck_assert_int_eq(sqlite3_open(":memory:", &db2), SQLITE_OK);
	ck_assert_int_eq(kms_open(&k2, db2, uc, err, sizeof(err)), KMS_OK);
	ck_assert_int_eq(kms_admin_init(k2), KMS_EPERM);
	kms_close(k2);
	sqlite3_close(db2);
	cube_close(uc);
	cube_close(oc);
	emu_free(&other);
	fx_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kms_cube");
	TCase *tc = tcase_create("cube");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 50);
	tcase_add_test(tc, key_states_in_the_cube);
	tcase_add_test(tc, failed_cube_call_rolls_back);
	tcase_add_test(tc, rotation_reaches_the_cube);
	tcase_add_test(tc, only_the_admin_cube);
	suite_add_tcase(s, tc);
	snprintf(base_dir, sizeof(base_dir), "/tmp/kms-cube.XXXXXX");
	if (!mkdtemp(base_dir))
		return 1;
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_rmtree(base_dir);
	emu_suite_end();
	return failed ? 1 : 0;
}
