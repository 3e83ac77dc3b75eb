/*
 * test_kms_scenario.c - the thesis's Figure 4.4 end to end with four
 * emulated cubes: the admin cube and the cubes of Alice, Bob and Eve
 * (Alice and Bob in group 1, Bob and Eve in group 2).  Provisioning cube to
 * cube, updates written by the admin and applied by each user, find_key on
 * each user's own KMS, least privilege (Eve's cube and DB hold nothing of
 * group 1), member removal rotation reaching Alice and Bob (and not the new
 * key reaching Bob), a compromised key reaching the users' cubes, and a
 * key expiring while its user is offline: the user's cube already refuses
 * to encrypt with it before any update arrives.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kms/kms.h"
#include "tests/helper_emu.h"

static char base_dir[64];

struct user_side {
	struct emu e;
	struct cube *c;          /* logged in as user */
	sqlite3 *db;
	struct kms *k;
	uint32_t id;
};

struct world {
	struct emu admin_emu;
	struct cube *admin_cube;
	sqlite3 *db;
	struct kms *k;
	char dir[96], updates[128];
	struct user_side u[3];   /* alice, bob, eve */
	uint32_t g1, g2, k1, k2;
};

static const char *const names[3] = { "alice", "bob", "eve" };

static void user_open(struct world *w, int i)
{
	struct user_side *u = &w->u[i];
	struct cube *as_admin;
	char path[160], err[256];

	emu_new(&u->e);
	ck_assert_int_eq(kms_add_user(w->k, names[i], NULL, &u->id), KMS_OK);
	/* The admin knows the new cube's admin PIN and provisions it. */
	as_admin = emu_login(&u->e, WIRE_ROLE_ADMIN);
	ck_assert_msg(kms_user_init(w->k, as_admin, u->id) == KMS_OK, "%s", kms_errmsg(w->k));
	cube_close(as_admin);
	u->c = emu_login(&u->e, WIRE_ROLE_USER);
	snprintf(path, sizeof(path), "%s/%s.db", w->dir, names[i]);
	ck_assert_int_eq(sqlite3_open(path, &u->db), SQLITE_OK);
	ck_assert_msg(kms_open(&u->k, u->db, u->c, err, sizeof(err)) == KMS_OK, "%s", err);
}

static void world_open(struct world *w)
{
	char path[160], err[256];

	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "%s/w.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(w->dir));
	snprintf(w->updates, sizeof(w->updates), "%s/UPDATES", w->dir);
	ck_assert_int_eq(mkdir(w->updates, 0700), 0);
	emu_new(&w->admin_emu);
	w->admin_cube = emu_login(&w->admin_emu, WIRE_ROLE_ADMIN);
	snprintf(path, sizeof(path), "%s/admin.db", w->dir);
	ck_assert_int_eq(sqlite3_open(path, &w->db), SQLITE_OK);
	ck_assert_msg(kms_open(&w->k, w->db, w->admin_cube, err, sizeof(err)) == KMS_OK, "%s", err);
	ck_assert_int_eq(kms_admin_init(w->k), KMS_OK);
	ck_assert_int_eq(kms_set_updates_dir(w->k, w->updates), KMS_OK);
	for (int i = 0; i < 3; i++)
		user_open(w, i);
}

static void world_close(struct world *w)
{
	for (int i = 0; i < 3; i++) {
		kms_close(w->u[i].k);
		sqlite3_close(w->u[i].db);
		cube_close(w->u[i].c);
		emu_free(&w->u[i].e);
	}
	kms_close(w->k);
	sqlite3_close(w->db);
	cube_close(w->admin_cube);
	emu_free(&w->admin_emu);
	emu_rmtree(w->dir);
}

static void sync_ok(struct world *w, int i)
{
	struct kms_sync_report rep;
	int rc = kms_sync(w->u[i].k, w->u[i].c, w->updates, &rep);

	ck_assert_msg(rc == KMS_OK, "%s: %s", names[i], kms_errmsg(w->u[i].k));
	ck_assert_int_eq(rep.locked, 0);
}

/* Figure 4.4 on the admin's side, then every user syncs. */
static void figure_4_4(struct world *w)
{
	struct kms_policy p;

	kms_policy_default(&p);
	ck_assert_int_eq(kms_add_group(w->k, "group1", &p, &w->g1), KMS_OK);
	ck_assert_int_eq(kms_add_group(w->k, "group2", &p, &w->g2), KMS_OK);
	ck_assert_int_eq(kms_add_member(w->k, w->u[0].id, w->g1), KMS_OK);
	ck_assert_int_eq(kms_add_member(w->k, w->u[1].id, w->g1), KMS_OK);
	ck_assert_int_eq(kms_add_member(w->k, w->u[1].id, w->g2), KMS_OK);
	ck_assert_int_eq(kms_add_member(w->k, w->u[2].id, w->g2), KMS_OK);
	ck_assert_int_eq(kms_add_key(w->k, w->g1, "k1", 0, &w->k1), KMS_OK);
	ck_assert_int_eq(kms_add_key(w->k, w->g2, "k2", 0, &w->k2), KMS_OK);
	ck_assert_int_eq(kms_activate_key(w->k, w->k1), KMS_OK);
	ck_assert_int_eq(kms_activate_key(w->k, w->k2), KMS_OK);
	for (int i = 0; i < 3; i++)
		sync_ok(w, i);
}

static int seal_with(struct cube *c, uint32_t key, uint8_t *sealed)
{
	static const uint8_t fid[WIRE_FILE_ID_LEN] = { 4, 4 };
	struct cube_sector s = { .index = 0, .len = 32 };
	uint8_t plain[32];

	memset(plain, 0x42, sizeof(plain));
	return cube_seal(c, key, WIRE_ALG_AES256_GCM, fid, &s, 1, plain, sealed);
}

static int open_with(struct cube *c, uint32_t key, const uint8_t *sealed)
{
	static const uint8_t fid[WIRE_FILE_ID_LEN] = { 4, 4 };
	struct cube_sector s = { .index = 0, .len = 32 };
	uint8_t plain[32], bad = 1;
	int rc = cube_open_sectors(c, key, WIRE_ALG_AES256_GCM, fid, &s, 1, sealed, plain, &bad);

	if (rc == CUBE_OK && plain[0] != 0x42)
		return -100;
	return rc;
}

START_TEST(figure_4_4_end_to_end)
{
	struct world w;
	struct kms_found f;
	struct cube_key ck;
	uint8_t sealed[64];
	uint32_t id, a, b, e;

	world_open(&w);
	figure_4_4(&w);
	/* Each user resolves names in their own KMS (IDs are the admin's). */
	ck_assert_int_eq(kms_user_by_name(w.u[0].k, "bob", &b), KMS_OK);
	ck_assert_int_eq(kms_user_by_name(w.u[0].k, "alice", &a), KMS_OK);
	ck_assert_int_eq(kms_find_key_v1(w.u[0].k, a, b, &f), KMS_OK);
	ck_assert_uint_eq(f.key_id, w.k1);
	ck_assert_int_eq(kms_find_key_v1(w.u[1].k, a, b, &f), KMS_OK);
	ck_assert_uint_eq(f.key_id, w.k1);
	ck_assert_int_eq(kms_user_by_name(w.u[1].k, "eve", &e), KMS_OK);
	ck_assert_int_eq(kms_find_key_v1(w.u[1].k, b, e, &f), KMS_OK);
	ck_assert_uint_eq(f.key_id, w.k2);
	ck_assert_int_eq(kms_find_key_v1(w.u[2].k, b, e, &f), KMS_OK);
	ck_assert_uint_eq(f.key_id, w.k2);
	/* Alice knows no Eve, and no group holds them both. */
	ck_assert_int_eq(kms_user_by_name(w.u[0].k, "eve", &id), KMS_ENOUSER);
	ck_assert_int_eq(kms_find_key_v1(w.u[0].k, a, w.u[2].id, &f), KMS_ENOKEY);
	/* Alice's cube encrypts with k1, Bob's decrypts. */
	ck_assert_int_eq(seal_with(w.u[0].c, w.k1, sealed), CUBE_OK);
	ck_assert_int_eq(open_with(w.u[1].c, w.k1, sealed), CUBE_OK);
	/* Least privilege: Eve's cube and DB hold nothing of group 1. */
	ck_assert_int_eq(cube_key_info(w.u[2].c, w.k1, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(open_with(w.u[2].c, w.k1, sealed), CUBE_ENOKEY);
	ck_assert_int_eq(kms_group_info(w.u[2].k, w.g1, &(struct kms_group){ 0 }), KMS_ENOGROUP);
	ck_assert_int_eq(kms_key_info(w.u[2].k, w.k1, &(struct kms_key){ 0 }), KMS_ENOSUCHKEY);
	ck_assert_int_eq(kms_user_by_name(w.u[2].k, "alice", &id), KMS_ENOUSER);
	ck_assert_int_eq(cube_key_info(w.u[0].c, w.k2, &ck), CUBE_ENOKEY);
	/* Channel and DB keys are never exportable; users cannot change the KMS. */
	ck_assert_int_eq(cube_key_info(w.u[0].c, KMS_DB_KEY_ID, &ck), CUBE_OK);
	ck_assert_uint_eq(ck.usage & WIRE_USE_EXPORTABLE, 0);
	ck_assert_int_eq(kms_add_group(w.u[0].k, "mine", &(struct kms_policy){ 0 }, &id) != KMS_OK, 1);
	ck_assert_int_eq(kms_role(w.u[0].k), KMS_ROLE_USER);
	world_close(&w);
}
END_TEST

START_TEST(removal_rotation_reaches_users)
{
	struct world w;
	struct kms_found f;
	struct kms_key key;
	struct cube_key ck;
	uint8_t sealed[64];

	world_open(&w);
	figure_4_4(&w);
	ck_assert_int_eq(seal_with(w.u[1].c, w.k1, sealed), CUBE_OK); /* Bob wrote a file */
	ck_assert_int_eq(kms_remove_member(w.k, w.u[1].id, w.g1), KMS_OK);
	for (int i = 0; i < 3; i++)
		sync_ok(&w, i);
	/* Alice has the new key, k1 is deactivated everywhere. */
	ck_assert_int_eq(kms_find_key_v2(w.u[0].k, w.u[0].id, w.g1, &f), KMS_OK);
	ck_assert_uint_ne(f.key_id, w.k1);
	ck_assert_int_eq(kms_key_info(w.u[0].k, w.k1, &key), KMS_OK);
	ck_assert_int_eq(key.state, KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(seal_with(w.u[0].c, f.key_id, sealed + 0) == CUBE_OK, 1);
	ck_assert_int_eq(seal_with(w.u[0].c, w.k1, sealed), CUBE_EEXPIRED);
	/* Bob: group 1 gone from his DB, the new key never reached his cube,
	 * the old one decrypts only. */
	ck_assert_int_eq(kms_group_info(w.u[1].k, w.g1, &(struct kms_group){ 0 }), KMS_ENOGROUP);
	ck_assert_int_eq(cube_key_info(w.u[1].c, f.key_id, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(kms_key_info(w.u[1].k, f.key_id, &key), KMS_ENOSUCHKEY);
	ck_assert_int_eq(cube_key_info(w.u[1].c, w.k1, &ck), CUBE_OK);
	ck_assert_uint_eq(ck.not_after, 0);
	ck_assert_int_eq(seal_with(w.u[1].c, w.k1, sealed), CUBE_EEXPIRED);
	/* Bob still finds his group-2 key with Eve. */
	ck_assert_int_eq(kms_find_key_v1(w.u[1].k, w.u[1].id, w.u[2].id, &f), KMS_OK);
	ck_assert_uint_eq(f.key_id, w.k2);
	world_close(&w);
}
END_TEST

START_TEST(compromise_and_destroy_reach_users)
{
	struct world w;
	struct kms_found f;
	struct kms_key key;
	struct cube_key ck;
	uint8_t sealed[64];

	world_open(&w);
	figure_4_4(&w);
	ck_assert_int_eq(seal_with(w.u[2].c, w.k2, sealed), CUBE_OK);
	ck_assert_int_eq(kms_set_key_state(w.k, w.k2, KMS_KEY_COMPROMISED), KMS_OK);
	sync_ok(&w, 1);
	sync_ok(&w, 2);
	ck_assert_int_eq(kms_find_key_v1(w.u[2].k, w.u[1].id, w.u[2].id, &f), KMS_ENOKEY);
	ck_assert_int_eq(kms_key_info(w.u[2].k, w.k2, &key), KMS_OK);
	ck_assert_int_eq(key.state, KMS_KEY_COMPROMISED);
	ck_assert_int_eq(seal_with(w.u[2].c, w.k2, sealed + 0) , CUBE_EEXPIRED);
	ck_assert_int_eq(open_with(w.u[1].c, w.k2, sealed), CUBE_OK); /* rescue still works */
	/* Destroyed: gone from the users' cubes (tombstone). */
	ck_assert_int_eq(kms_set_key_state(w.k, w.k2, KMS_KEY_DESTROYED), KMS_OK);
	sync_ok(&w, 1);
	sync_ok(&w, 2);
	ck_assert_int_eq(cube_key_info(w.u[1].c, w.k2, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(cube_key_info(w.u[2].c, w.k2, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(kms_key_info(w.u[2].k, w.k2, &key), KMS_ENOSUCHKEY);
	/* Alice had nothing to receive: no file for her beyond her own. */
	sync_ok(&w, 0);
	ck_assert_int_eq(cube_key_info(w.u[0].c, w.k1, &ck), CUBE_OK);
	world_close(&w);
}
END_TEST

static int64_t later_clock(void *arg)
{
	return time(NULL) + *(int64_t *)arg;
}

START_TEST(expiry_while_offline)
{
	struct world w;
	struct kms_policy p;
	struct kms_found f;
	struct cube *as_admin;
	uint8_t sealed[64];
	uint32_t g3, k3;
	int64_t skew = 3600;

	world_open(&w);
	kms_policy_default(&p);
	p.cryptoperiod = 120;
	ck_assert_int_eq(kms_add_group(w.k, "short", &p, &g3), KMS_OK);
	ck_assert_int_eq(kms_add_member(w.k, w.u[0].id, g3), KMS_OK);
	ck_assert_int_eq(kms_add_key(w.k, g3, "k3", 0, &k3), KMS_OK);
	ck_assert_int_eq(kms_activate_key(w.k, k3), KMS_OK);
	sync_ok(&w, 0);
	ck_assert_int_eq(seal_with(w.u[0].c, k3, sealed), CUBE_OK);
	/* Alice goes offline; an hour passes on her cube's clock.  No
	 * update arrives, yet her cube refuses and her KMS finds nothing. */
	as_admin = emu_login(&w.u[0].e, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_clock_set(as_admin, time(NULL) + skew), CUBE_OK);
	cube_close(as_admin);
	ck_assert_int_eq(seal_with(w.u[0].c, k3, sealed + 0), CUBE_EEXPIRED);
	kms_set_clock(w.u[0].k, later_clock, &skew);
	ck_assert_int_eq(kms_find_key_v2(w.u[0].k, w.u[0].id, g3, &f), KMS_ENOKEY);
	world_close(&w);
}
END_TEST

START_TEST(user_deleted_loses_everything)
{
	struct world w;
	struct cube_key ck;
	struct kms_found f;

	world_open(&w);
	figure_4_4(&w);
	ck_assert_int_eq(kms_delete_user(w.k, w.u[2].id), KMS_OK);
	for (int i = 0; i < 3; i++)
		sync_ok(&w, i);
	ck_assert_int_eq(cube_key_info(w.u[2].c, w.k2, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(kms_find_key_v2(w.u[2].k, w.u[2].id, w.g2, &f) != KMS_OK, 1);
	/* Bob's group 2 rotated; Bob has the new key and no Eve. */
	ck_assert_int_eq(kms_find_key_v2(w.u[1].k, w.u[1].id, w.g2, &f), KMS_OK);
	ck_assert_uint_ne(f.key_id, w.k2);
	ck_assert_int_eq(kms_user_by_name(w.u[1].k, "eve", &(uint32_t){ 0 }), KMS_ENOUSER);
	world_close(&w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kms_scenario");
	TCase *tc = tcase_create("figure_4_4");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 55);
	tcase_add_test(tc, figure_4_4_end_to_end);
	tcase_add_test(tc, removal_rotation_reaches_users);
	tcase_add_test(tc, compromise_and_destroy_reach_users);
	tcase_add_test(tc, expiry_while_offline);
	tcase_add_test(tc, user_deleted_loses_everything);
	suite_add_tcase(s, tc);
	snprintf(base_dir, sizeof(base_dir), "/tmp/kms-scenario.XXXXXX");
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
