/*
 * test_kms_backup.c - encrypted backup of the admin cube and database and
 * restore onto a fresh cube (docs/BACKUP.md), with emulated cubes.
 *
 * The thesis's Figure 4.4 (Alice and Bob in group 1, Bob and Eve in group
 * 2) is set up and synced; the admin backs up, the admin cube is destroyed,
 * the backup is restored onto a fresh cube, and the restored admin keeps
 * administering: a new key and a member removal with rotation reach the
 * users' existing cubes and databases (their channel keys came back with
 * the backup).  Also: every key comes back with its ID and attributes
 * (non-exportable ones included); a wrong passphrase, a flipped byte
 * anywhere and a truncated file are refused before anything is restored;
 * a target cube that is not fresh is refused; a stale backup leads to
 * recovery updates; and the device rules: only a backup key exports a
 * non-exportable key, a backup key never leaves, KEY_GENERATE cannot set
 * the backup bit, deriving and importing under a backup key need an admin.
 */
#include <check.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kms/kms.h"
#include "tests/helper_emu.h"

#define PASS "correct horse battery staple"
#define ITER 10000u

static char base_dir[64];

struct user_side {
	struct emu e;
	struct cube *c; /* logged in as user */
	sqlite3 *db;
	struct kms *k;
	uint32_t id;
};

struct fx {
	char root[96], updates[128], db_path[160], bk_path[160];
	struct emu admin_emu;
	struct cube *admin_cube;
	sqlite3 *db;
	struct kms *k;
	struct user_side u[3]; /* alice, bob, eve */
	uint32_t g1, g2, k1, k2;
};

static void user_open(struct fx *f, int i, const char *name)
{
	struct user_side *s = &f->u[i];
	struct cube *as_admin;
	char path[200], err[256];

	emu_new(&s->e);
	ck_assert_int_eq(kms_add_user(f->k, name, NULL, &s->id), KMS_OK);
	as_admin = emu_login(&s->e, WIRE_ROLE_ADMIN);
	ck_assert_msg(kms_user_init(f->k, as_admin, s->id) == KMS_OK, "%s", kms_errmsg(f->k));
	cube_close(as_admin);
	s->c = emu_login(&s->e, WIRE_ROLE_USER);
	snprintf(path, sizeof(path), "%s/%s.db", f->root, name);
	ck_assert_int_eq(sqlite3_open(path, &s->db), SQLITE_OK);
	ck_assert_msg(kms_open(&s->k, s->db, s->c, err, sizeof(err)) == KMS_OK, "%s", err);
}

static void sync_ok(struct fx *f, int i)
{
	struct kms_sync_report rep;

	ck_assert_msg(kms_sync(f->u[i].k, f->u[i].c, f->updates, &rep) == KMS_OK, "%s",
		      kms_errmsg(f->u[i].k));
	ck_assert_int_eq(rep.locked, 0);
}

static uint32_t active_key(struct fx *f, uint32_t group)
{
	uint32_t id;

	ck_assert_msg(kms_add_key(f->k, group, "k", 0, &id) == KMS_OK, "%s", kms_errmsg(f->k));
	ck_assert_msg(kms_activate_key(f->k, id) == KMS_OK, "%s", kms_errmsg(f->k));
	return id;
}

/* Figure 4.4, synced, and a non-exportable DB key in the admin cube. */
static void fx_open(struct fx *f)
{
	struct cube_key dbk = { .id = KMS_DB_KEY_ID, .alg = WIRE_ALG_AES256_GCM,
				.usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, .not_before = 0,
				.not_after = WIRE_TIME_NEVER };
	struct kms_policy p;
	char err[256];

	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "%s/f.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->root));
	snprintf(f->updates, sizeof(f->updates), "%s/UPDATES", f->root);
	snprintf(f->db_path, sizeof(f->db_path), "%s/admin.db", f->root);
	snprintf(f->bk_path, sizeof(f->bk_path), "%s/admin.skbk", f->root);
	ck_assert_int_eq(mkdir(f->updates, 0700), 0);
	emu_new(&f->admin_emu);
	f->admin_cube = emu_login(&f->admin_emu, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(f->admin_cube, &dbk), CUBE_OK);
	ck_assert_int_eq(sqlite3_open(f->db_path, &f->db), SQLITE_OK);
	ck_assert_msg(kms_open(&f->k, f->db, f->admin_cube, err, sizeof(err)) == KMS_OK, "%s", err);
	ck_assert_int_eq(kms_admin_init(f->k), KMS_OK);
	ck_assert_int_eq(kms_set_updates_dir(f->k, f->updates), KMS_OK);
	user_open(f, 0, "alice");
	user_open(f, 1, "bob");
	user_open(f, 2, "eve");
	kms_policy_default(&p);
	ck_assert_int_eq(kms_add_group(f->k, "group1", &p, &f->g1), KMS_OK);
	ck_assert_int_eq(kms_add_group(f->k, "group2", &p, &f->g2), KMS_OK);
	ck_assert_int_eq(kms_add_member(f->k, f->u[0].id, f->g1), KMS_OK);
	ck_assert_int_eq(kms_add_member(f->k, f->u[1].id, f->g1), KMS_OK);
	ck_assert_int_eq(kms_add_member(f->k, f->u[1].id, f->g2), KMS_OK);
	ck_assert_int_eq(kms_add_member(f->k, f->u[2].id, f->g2), KMS_OK);
	f->k1 = active_key(f, f->g1);
	f->k2 = active_key(f, f->g2);
	for (int i = 0; i < 3; i++)
		sync_ok(f, i);
}

/* The admin cube is lost: its KMS handle, DB and emulator go. */
static void admin_lost(struct fx *f)
{
	kms_close(f->k);
	f->k = NULL;
	sqlite3_close(f->db);
	f->db = NULL;
	cube_close(f->admin_cube);
	f->admin_cube = NULL;
	emu_free(&f->admin_emu);
	unlink(f->db_path);
}

static void fx_close(struct fx *f)
{
	for (int i = 0; i < 3; i++) {
		kms_close(f->u[i].k);
		sqlite3_close(f->u[i].db);
		cube_close(f->u[i].c);
		emu_free(&f->u[i].e);
	}
	kms_close(f->k);
	sqlite3_close(f->db);
	cube_close(f->admin_cube);
	if (f->admin_emu.dir[0])
		emu_free(&f->admin_emu);
	emu_rmtree(f->root);
}

/* Every key of a cube, in ID order. */
static uint32_t all_keys(struct cube *c, struct cube_key *out, uint32_t cap)
{
	uint32_t n = 0;

	ck_assert_int_eq(cube_key_list(c, 0, out, cap, &n), CUBE_OK);
	return n;
}

static void backup_ok(struct fx *f)
{
	struct kms_backup_info info;

	ck_assert_msg(kms_backup(f->k, PASS, strlen(PASS), ITER, f->bk_path, &info) == KMS_OK, "%s",
		      kms_errmsg(f->k));
	ck_assert_uint_eq(info.iterations, ITER);
	ck_assert_uint_gt(info.n_keys, 7); /* DB key, 3 x 2 channel keys, 2 data keys */
	ck_assert_uint_gt(info.db_bytes, 0);
}

/* Restore onto the fresh, logged-in cube c: keys, then the DB as path. */
static void restore_ok(struct fx *f, struct cube *c, const char *db_path, sqlite3 **db,
		       uint32_t *n_recovered)
{
	struct kms_restore *r = NULL;
	struct kms_backup_info info;
	char err[400];

	ck_assert_msg(kms_restore_open(&r, c, f->bk_path, PASS, strlen(PASS), &info, err,
				       sizeof(err)) == KMS_OK, "%s", err);
	ck_assert_msg(kms_restore_keys(r) == KMS_OK, "%s", kms_restore_errmsg(r));
	ck_assert_int_eq(sqlite3_open(db_path, db), SQLITE_OK);
	ck_assert_msg(kms_restore_db(r, *db, f->updates, n_recovered) == KMS_OK, "%s",
		      kms_restore_errmsg(r));
	kms_restore_close(r, 1);
}

START_TEST(backup_restore_then_keep_administering)
{
	struct fx f;
	struct emu fresh;
	struct cube *nc;
	struct cube_key before[64], after[64];
	uint32_t n_before, n_after, n_rec = 99, knew, krot;
	struct kms_found found;
	struct kms_key kk;
	struct cube_sector sec = { 0, 16 };
	uint8_t fid[WIRE_FILE_ID_LEN] = { 1 }, pt[16] = { 2 }, ct[16 + WIRE_SECTOR_OVERHEAD];
	uint64_t bad = 1;
	char err[256], db2[200];

	fx_open(&f);
	n_before = all_keys(f.admin_cube, before, 64);
	backup_ok(&f);
	/* The backup keys are gone from the admin cube again. */
	ck_assert_uint_eq(all_keys(f.admin_cube, after, 64), n_before);
	admin_lost(&f);

	emu_new(&fresh);
	memcpy(&f.admin_emu, &fresh, sizeof(fresh));
	nc = emu_login(&fresh, WIRE_ROLE_ADMIN);
	snprintf(db2, sizeof(db2), "%s/restored.db", f.root);
	restore_ok(&f, nc, db2, &f.db, &n_rec);
	ck_assert_uint_eq(n_rec, 0); /* the backup was current */
	f.admin_cube = nc;

	/* Every key with its ID, algorithm, usage and window; DB key included. */
	n_after = all_keys(nc, after, 64);
	ck_assert_uint_eq(n_after, n_before);
	for (uint32_t i = 0; i < n_before; i++) {
		ck_assert_uint_eq(after[i].id, before[i].id);
		ck_assert_uint_eq(after[i].alg, before[i].alg);
		ck_assert_uint_eq(after[i].usage, before[i].usage);
		ck_assert_uint_eq(after[i].not_before, before[i].not_before);
		ck_assert_uint_eq(after[i].not_after, before[i].not_after);
	}
	ck_assert_int_eq(cube_key_info(nc, KMS_DB_KEY_ID, &after[0]), CUBE_OK);
	ck_assert_uint_eq(after[0].usage & WIRE_USE_EXPORTABLE, 0);

	/* The restored admin keeps administering, bound to the new cube. */
	ck_assert_msg(kms_open(&f.k, f.db, nc, err, sizeof(err)) == KMS_OK, "%s", err);
	ck_assert_int_eq(kms_role(f.k), KMS_ROLE_ADMIN);
	ck_assert_int_eq(kms_audit_verify(f.k, &bad), KMS_OK);
	ck_assert_int_eq(kms_set_updates_dir(f.k, f.updates), KMS_OK);
	knew = active_key(&f, f.g2);
	ck_assert_int_eq(kms_remove_member(f.k, f.u[2].id, f.g2), KMS_OK); /* Eve leaves group 2 */
	ck_assert_int_eq(kms_find_key_v2(f.k, f.u[1].id, f.g2, &found), KMS_OK);
	krot = found.key_id;
	ck_assert_uint_ne(krot, knew);
	ck_assert_uint_ne(krot, f.k2);

	/* The users' existing cubes and databases apply the new updates. */
	for (int i = 0; i < 3; i++)
		sync_ok(&f, i);
	ck_assert_int_eq(kms_find_key_v2(f.u[1].k, f.u[1].id, f.g2, &found), KMS_OK);
	ck_assert_uint_eq(found.key_id, krot);
	ck_assert_int_eq(cube_seal(f.u[1].c, krot, WIRE_ALG_AES256_GCM, fid, &sec, 1, pt, ct), CUBE_OK);
	ck_assert_int_eq(kms_find_key_v2(f.u[0].k, f.u[0].id, f.g1, &found), KMS_OK);
	ck_assert_uint_eq(found.key_id, f.k1);
	/* Eve has neither the rotated key nor group 2 any more. */
	ck_assert_int_ne(kms_key_info(f.u[2].k, krot, &kk), KMS_OK);
	ck_assert_int_ne(cube_seal(f.u[2].c, krot, WIRE_ALG_AES256_GCM, fid, &sec, 1, pt, ct), CUBE_OK);
	ck_assert_int_ne(kms_find_key_v2(f.u[2].k, f.u[2].id, f.g2, &found), KMS_OK);
	fx_close(&f);
}
END_TEST

/* Restore must fail with want and leave the target cube without keys. */
static void restore_refused(struct fx *f, const char *pass, int want, const char *why)
{
	struct emu fresh;
	struct cube *nc;
	struct kms_restore *r = (struct kms_restore *)1;
	struct cube_key ks[8];
	char err[400];
	int rc;

	emu_new(&fresh);
	nc = emu_login(&fresh, WIRE_ROLE_ADMIN);
	rc = kms_restore_open(&r, nc, f->bk_path, pass, strlen(pass), NULL, err, sizeof(err));
	ck_assert_msg(rc == want, "%s: want %d got %d (%s)", why, want, rc, err);
	ck_assert_ptr_null(r);
	ck_assert_str_ne(err, "");
	ck_assert_uint_eq(all_keys(nc, ks, 8), 0);
	cube_close(nc);
	emu_free(&fresh);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

START_TEST(wrong_passphrase_and_tampering_restore_nothing)
{
	struct fx f;
	struct stat st;
	char orig[200];
	/* magic, iterations, salt, serial, n_keys, a key blob, the DB image, the MAC */
	const off_t spots[] = { 0, 9, 20, 50, 69, 90, -1000, -40, -1 };

	fx_open(&f);
	backup_ok(&f);
	restore_refused(&f, "wrong passphrase!", KMS_EBACKUP, "wrong passphrase");
	ck_assert_int_eq(stat(f.bk_path, &st), 0);
	snprintf(orig, sizeof(orig), "%s.orig", f.bk_path);
	ck_assert_int_eq(link(f.bk_path, orig), 0);
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		char cmd[800];
		off_t at = spots[i] < 0 ? st.st_size + spots[i] : spots[i];

		snprintf(cmd, sizeof(cmd), "cp %s %s.t && mv %s.t %s", orig, f.bk_path, f.bk_path,
			 f.bk_path);
		ck_assert_int_eq(system(cmd), 0);
		flip_byte(f.bk_path, at);
		restore_refused(&f, PASS, at < 8 || (at >= 68 && at < 80) ? KMS_EBACKUP_FORMAT
					  : KMS_EBACKUP, "flipped byte");
	}
	ck_assert_int_eq(truncate(orig, st.st_size - 100), 0);
	ck_assert_int_eq(rename(orig, f.bk_path), 0);
	restore_refused(&f, PASS, KMS_EBACKUP_FORMAT, "truncated");
	ck_assert_int_eq(truncate(f.bk_path, 50), 0);
	restore_refused(&f, PASS, KMS_EBACKUP_FORMAT, "header only");
	fx_close(&f);
}
END_TEST

START_TEST(target_must_be_fresh_and_stale_backup_recovers)
{
	struct fx f;
	struct emu fresh;
	struct cube *nc;
	struct kms_restore *r = NULL;
	struct cube_key k = { .id = KMS_DB_KEY_ID, .alg = WIRE_ALG_AES256_GCM,
			      .usage = WIRE_USE_ENCRYPT, .not_before = 0, .not_after = WIRE_TIME_NEVER };
	struct cube_key ks[64];
	uint32_t n_rec = 0, klate;
	struct kms_key kk;
	char err[400], db2[200];

	fx_open(&f);
	backup_ok(&f);
	/* A cube that already holds one of the backup's key IDs is refused. */
	emu_new(&fresh);
	nc = emu_login(&fresh, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(nc, &k), CUBE_OK);
	ck_assert_int_eq(kms_restore_open(&r, nc, f.bk_path, PASS, strlen(PASS), NULL, err,
					  sizeof(err)), KMS_EEXIST);
	ck_assert_uint_eq(all_keys(nc, ks, 64), 1);
	ck_assert_int_eq(cube_key_destroy(nc, KMS_DB_KEY_ID), CUBE_OK);

	/* A change after the backup: restoring the older backup issues
	 * recovery updates so every user's view is rebuilt. */
	klate = active_key(&f, f.g1);
	sync_ok(&f, 0);
	admin_lost(&f);
	snprintf(db2, sizeof(db2), "%s/restored.db", f.root);
	restore_ok(&f, nc, db2, &f.db, &n_rec);
	ck_assert_uint_eq(n_rec, 2); /* Alice and Bob got klate's update, Eve did not */
	memcpy(&f.admin_emu, &fresh, sizeof(fresh));
	f.admin_cube = nc;
	for (int i = 0; i < 3; i++)
		sync_ok(&f, i);
	/* The rebuilt view is the backup's: the later key is not in it. */
	ck_assert_int_ne(kms_key_info(f.u[0].k, klate, &kk), KMS_OK);
	ck_assert_int_eq(kms_key_info(f.u[0].k, f.k1, &kk), KMS_OK);
	fx_close(&f);
}
END_TEST

START_TEST(device_rules_for_backup_keys)
{
	struct emu e;
	struct cube *a, *u;
	struct cube_key data = { .id = 0x200, .alg = WIRE_ALG_AES256_GCM,
				 .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, .not_before = 0,
				 .not_after = WIRE_TIME_NEVER };
	struct cube_key kw = { .id = 0x201, .alg = WIRE_ALG_AES256_KW,
			       .usage = WIRE_USE_WRAP | WIRE_USE_UNWRAP, .not_before = 0,
			       .not_after = WIRE_TIME_NEVER };
	struct cube_key forged = kw, info;
	struct cube_derive_target t[2] = { { 0x300, WIRE_ALG_AES256_KW }, { 0x301, WIRE_ALG_AES256_GCM } };
	struct cube_derive_target dup[2] = { { 0x310, WIRE_ALG_AES256_KW }, { 0x311, WIRE_ALG_AES256_KW } };
	uint8_t salt[16] = { 7 }, blob[128];
	size_t blob_len;
	uint32_t id;

	emu_new(&e);
	a = emu_login(&e, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(a, &data), CUBE_OK);
	ck_assert_int_eq(cube_key_generate(a, &kw), CUBE_OK);
	/* An ordinary wrapping key cannot export a non-exportable key. */
	ck_assert_int_eq(cube_key_export(a, kw.id, data.id, blob, sizeof(blob), &blob_len), CUBE_EUSAGE);
	/* KEY_GENERATE cannot make a backup key. */
	forged.id = 0x202;
	forged.usage |= WIRE_USE_BACKUP;
	ck_assert_int_eq(cube_key_generate(a, &forged), CUBE_EINVAL);
	/* Derivation: the bit, never exportable; bad inputs refused. */
	ck_assert_int_eq(cube_passphrase_derive(a, (const uint8_t *)PASS, strlen(PASS), salt, 16, ITER,
						t, 2), CUBE_OK);
	ck_assert_int_eq(cube_key_info(a, 0x300, &info), CUBE_OK);
	ck_assert_uint_eq(info.usage, WIRE_USE_WRAP | WIRE_USE_UNWRAP | WIRE_USE_BACKUP);
	ck_assert_int_eq(cube_key_info(a, 0x301, &info), CUBE_OK);
	ck_assert_uint_eq(info.usage, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT);
	ck_assert_int_eq(cube_passphrase_derive(a, (const uint8_t *)PASS, strlen(PASS), salt, 16, ITER,
						t, 1), CUBE_EEXIST);
	ck_assert_int_eq(cube_passphrase_derive(a, (const uint8_t *)PASS, strlen(PASS), salt, 16, ITER,
						dup, 2), CUBE_EINVAL);
	ck_assert_int_eq(cube_key_info(a, 0x310, &info), CUBE_ENOKEY); /* all or nothing */
	ck_assert_int_eq(cube_passphrase_derive(a, (const uint8_t *)"short", 5, salt, 16, ITER, dup, 1),
			 CUBE_EINVAL);
	/* The backup key exports the non-exportable key, never itself or another backup key. */
	ck_assert_int_eq(cube_key_export(a, 0x300, data.id, blob, sizeof(blob), &blob_len), CUBE_OK);
	ck_assert_int_ne(cube_key_export(a, 0x300, 0x300, blob + 64, 64, &blob_len), CUBE_OK);
	ck_assert_int_ne(cube_key_export(a, kw.id, 0x300, blob + 64, 64, &blob_len), CUBE_OK);
	ck_assert_int_eq(cube_key_export(a, 0x300, data.id, blob, sizeof(blob), &blob_len), CUBE_OK);
	ck_assert_int_eq(cube_key_destroy(a, data.id), CUBE_OK);
	/* Import under a backup key: admin only; it brings the key back as it was. */
	u = emu_login(&e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_key_import(u, 0x300, blob, blob_len, &id), CUBE_EPERM);
	ck_assert_int_eq(cube_passphrase_derive(u, (const uint8_t *)PASS, strlen(PASS), salt, 16, ITER,
						dup, 1), CUBE_EPERM);
	cube_close(u);
	ck_assert_int_eq(cube_key_import(a, 0x300, blob, blob_len, &id), CUBE_OK);
	ck_assert_uint_eq(id, data.id);
	ck_assert_int_eq(cube_key_info(a, data.id, &info), CUBE_OK);
	ck_assert_uint_eq(info.usage, data.usage);
	cube_close(a);
	emu_free(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kms_backup");
	TCase *tc = tcase_create("backup");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 55);
	tcase_add_test(tc, backup_restore_then_keep_administering);
	tcase_add_test(tc, wrong_passphrase_and_tampering_restore_nothing);
	tcase_add_test(tc, target_must_be_fresh_and_stale_backup_recovers);
	tcase_add_test(tc, device_rules_for_backup_keys);
	suite_add_tcase(s, tc);
	snprintf(base_dir, sizeof(base_dir), "/tmp/kms-backup.XXXXXX");
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
