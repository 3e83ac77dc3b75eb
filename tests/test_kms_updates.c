/*
 * test_kms_updates.c - the update files and their application: a replayed,
 * missing (gap), reordered, bit-flipped (body and header), truncated,
 * another user's, and another admin cube's file are each refused with
 * their own status and nothing is applied; after the fail limit the user's
 * KMS locks (find_key KMS_ELOCKED, decryption still works) and a recovery
 * update unlocks it; sync-tool debris is ignored and reported; the ack file
 * lets the admin prune; two admin processes writing at once produce
 * distinct numbered files that all apply.  Also the device side: channel
 * keys with usage, tombstones.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kms/kms.h"
#include "kms/update_format.h"
#include "tests/helper_emu.h"

static char base_dir[64];

struct side {
	struct emu e;
	struct cube *c;
	sqlite3 *db;
	struct kms *k;
	uint32_t id;
	char dir[256];         /* UPDATES/<serial> */
};

struct fx {
	struct emu admin_emu;
	struct cube *admin_cube;
	sqlite3 *db;
	struct kms *k;
	char root[96], updates[128], db_path[160];
	struct side u[2];      /* alice, bob */
	uint32_t group;
};

static void side_open(struct fx *f, int i, const char *name)
{
	struct side *s = &f->u[i];
	struct cube *as_admin;
	struct cube_info info;
	char path[200], err[256], hex[33];

	emu_new(&s->e);
	ck_assert_int_eq(kms_add_user(f->k, name, NULL, &s->id), KMS_OK);
	as_admin = emu_login(&s->e, WIRE_ROLE_ADMIN);
	ck_assert_msg(kms_user_init(f->k, as_admin, s->id) == KMS_OK, "%s", kms_errmsg(f->k));
	cube_close(as_admin);
	s->c = emu_login(&s->e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_info(s->c, &info), CUBE_OK);
	for (int j = 0; j < 16; j++)
		snprintf(hex + 2 * j, 3, "%02x", info.serial[j]);
	snprintf(s->dir, sizeof(s->dir), "%s/%s", f->updates, hex);
	snprintf(path, sizeof(path), "%s/%s.db", f->root, name);
	ck_assert_int_eq(sqlite3_open(path, &s->db), SQLITE_OK);
	ck_assert_msg(kms_open(&s->k, s->db, s->c, err, sizeof(err)) == KMS_OK, "%s", err);
}

static void fx_open(struct fx *f)
{
	struct kms_policy p;
	char err[256];

	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "%s/f.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->root));
	snprintf(f->updates, sizeof(f->updates), "%s/UPDATES", f->root);
	ck_assert_int_eq(mkdir(f->updates, 0700), 0);
	emu_new(&f->admin_emu);
	f->admin_cube = emu_login(&f->admin_emu, WIRE_ROLE_ADMIN);
	snprintf(f->db_path, sizeof(f->db_path), "%s/admin.db", f->root);
	ck_assert_int_eq(sqlite3_open(f->db_path, &f->db), SQLITE_OK);
	ck_assert_msg(kms_open(&f->k, f->db, f->admin_cube, err, sizeof(err)) == KMS_OK, "%s", err);
	ck_assert_int_eq(kms_admin_init(f->k), KMS_OK);
	ck_assert_int_eq(kms_set_updates_dir(f->k, f->updates), KMS_OK);
	side_open(f, 0, "alice");
	side_open(f, 1, "bob");
	kms_policy_default(&p);
	p.max_keys = 64;
	ck_assert_int_eq(kms_add_group(f->k, "team", &p, &f->group), KMS_OK);
	ck_assert_int_eq(kms_add_member(f->k, f->u[0].id, f->group), KMS_OK);
	ck_assert_int_eq(kms_add_member(f->k, f->u[1].id, f->group), KMS_OK);
}

static void fx_close(struct fx *f)
{
	for (int i = 0; i < 2; i++) {
		kms_close(f->u[i].k);
		sqlite3_close(f->u[i].db);
		cube_close(f->u[i].c);
		emu_free(&f->u[i].e);
	}
	kms_close(f->k);
	sqlite3_close(f->db);
	cube_close(f->admin_cube);
	emu_free(&f->admin_emu);
	emu_rmtree(f->root);
}

static int sync_user(struct fx *f, int i, struct kms_sync_report *rep)
{
	return kms_sync(f->u[i].k, f->u[i].c, f->updates, rep);
}

static void path_of(const struct side *s, uint64_t counter, char *out, size_t cap)
{
	char name[KMS_UPD_NAME_LEN + 1];

	kms_upd_name(counter, name);
	snprintf(out, cap, "%s/%s", s->dir, name);
}

/* A new key for the group: one update file per member. */
static uint32_t admin_change(struct fx *f)
{
	uint32_t id;

	ck_assert_msg(kms_add_key(f->k, f->group, "k", 0, &id) == KMS_OK, "%s", kms_errmsg(f->k));
	return id;
}

static int key_known(struct fx *f, int i, uint32_t id)
{
	struct kms_key key;

	return kms_key_info(f->u[i].k, id, &key) == KMS_OK;
}

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	char buf[4096];
	size_t n;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, b), n);
	fclose(a);
	ck_assert_int_eq(fclose(b), 0);
}

static void flip_byte(const char *path, long off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x01;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* Sync refused with want; nothing applied and the counter unchanged. */
static void refused(struct fx *f, int i, int want, uint32_t key_not_applied)
{
	struct kms_sync_report before, rep;

	ck_assert_int_eq(kms_sync_status(f->u[i].k, &before), KMS_OK);
	ck_assert_msg(sync_user(f, i, &rep) == want, "want %d: %s", want, kms_errmsg(f->u[i].k));
	ck_assert_uint_eq(rep.applied, 0);
	ck_assert_uint_eq(rep.next_counter, before.next_counter);
	ck_assert(!key_known(f, i, key_not_applied));
}

static void synced(struct fx *f, int i)
{
	struct kms_sync_report rep;

	ck_assert_msg(sync_user(f, i, &rep) == KMS_OK, "%s", kms_errmsg(f->u[i].k));
	ck_assert_int_eq(rep.locked, 0);
}

START_TEST(each_bad_file_is_refused)
{
	struct fx f;
	struct kms_sync_report st;
	char p1[300], p2[300], p3[300], tmp[300];
	uint64_t next;
	uint32_t ka, kb;
	struct stat sb;

	fx_open(&f);
	kms_set_update_fail_limit(f.u[0].k, 100); /* no lock in this test */
	synced(&f, 0);
	synced(&f, 1);
	ck_assert_int_eq(kms_sync_status(f.u[0].k, &st), KMS_OK);
	next = st.next_counter;
	/* Replay: an applied file copied under the next number. */
	path_of(&f.u[0], next - 1, p1, sizeof(p1));
	path_of(&f.u[0], next, p2, sizeof(p2));
	copy_file(p1, p2);
	refused(&f, 0, KMS_EUPD_REPLAY, 0x7fffffff);
	ck_assert_int_eq(unlink(p2), 0);
	/* Two real updates, next and next + 1. */
	ka = admin_change(&f);
	kb = admin_change(&f);
	path_of(&f.u[0], next + 1, p3, sizeof(p3));
	/* Gap: next is missing. */
	snprintf(tmp, sizeof(tmp), "%s/../held", f.u[0].dir);
	ck_assert_int_eq(rename(p2, tmp), 0);
	refused(&f, 0, KMS_EUPD_GAP, kb);
	/* Reorder: the two files swap names. */
	ck_assert_int_eq(rename(p3, p2), 0);
	ck_assert_int_eq(rename(tmp, p3), 0);
	refused(&f, 0, KMS_EUPD_ORDER, ka);
	ck_assert_int_eq(rename(p2, tmp), 0);
	ck_assert_int_eq(rename(p3, p2), 0);
	ck_assert_int_eq(rename(tmp, p3), 0);
	/* Bit flip in the body, then in the clear header (its priority). */
	ck_assert_int_eq(stat(p2, &sb), 0);
	flip_byte(p2, sb.st_size - 20);
	refused(&f, 0, KMS_EUPD_CORRUPT, ka);
	flip_byte(p2, sb.st_size - 20);
	flip_byte(p2, 36); /* wrap key ID: refused before the cube sees it */
	refused(&f, 0, KMS_EUPD_FOREIGN, ka);
	flip_byte(p2, 36);
	flip_byte(p2, 41); /* body length: the size no longer matches */
	refused(&f, 0, KMS_EUPD_CORRUPT, ka);
	flip_byte(p2, 41);
	/* Truncation. */
	ck_assert_int_eq(truncate(p2, sb.st_size - 1), 0);
	refused(&f, 0, KMS_EUPD_CORRUPT, ka);
	ck_assert_int_eq(truncate(p2, 30), 0);
	refused(&f, 0, KMS_EUPD_CORRUPT, ka);
	/* Another user's file (Bob's next) in Alice's folder under her number. */
	{
		char bob[300];
		struct kms_sync_report bst;

		ck_assert_int_eq(kms_sync_status(f.u[1].k, &bst), KMS_OK);
		path_of(&f.u[1], bst.next_counter, bob, sizeof(bob));
		ck_assert_int_eq(unlink(p2), 0);
		copy_file(bob, p2);
		refused(&f, 0, KMS_EUPD_FOREIGN, ka);
	}
	/* The genuine file back: both apply, in order. */
	ck_assert_int_eq(unlink(p2), 0);
	ck_assert_int_eq(kms_user_recover(f.k, f.u[0].id, "test"), KMS_OK);
	synced(&f, 0);
	ck_assert(key_known(&f, 0, ka));
	ck_assert(key_known(&f, 0, kb));
	fx_close(&f);
}
END_TEST

/* A file made by another admin cube for Alice (it derived the channel
 * keys with Alice's public key under the same IDs): her cube refuses it. */
START_TEST(another_admin_cube_is_refused)
{
	struct fx f;
	struct emu other;
	struct cube *oc;
	struct cube_info alice;
	struct kms_sync_report st;
	struct kms_upd_header h;
	struct kms_upd_self self = { .user_id = 1, .db_key_id = KMS_DB_KEY_ID };
	uint8_t body[256], val[128], file[KMS_UPD_HEADER_LEN + 256 + 28], fid[WIRE_FILE_ID_LEN];
	struct cube_sector sec;
	size_t len = 0, vlen;
	char path[300];
	uint32_t enc;
	FILE *out;

	fx_open(&f);
	synced(&f, 0);
	ck_assert_int_eq(kms_sync_status(f.u[0].k, &st), KMS_OK);
	ck_assert_int_eq(cube_info(f.u[0].c, &alice), CUBE_OK);
	enc = KMS_CHANNEL_ID_BASE + 2 * f.u[0].id;
	emu_new(&other);
	oc = emu_login(&other, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_channel_derive_key(oc, enc, alice.pubkey, WIRE_ALG_AES256_GCM,
						 WIRE_USE_ENCRYPT, (const uint8_t *)"x", 1), CUBE_OK);
	snprintf(self.name, sizeof(self.name), "alice");
	ck_assert_int_eq(kms_upd_val_self(val, sizeof(val), &vlen, &self), 0);
	ck_assert_int_eq(kms_upd_put_rec(body, sizeof(body), &len, KMS_REC_RESET, st.next_counter,
					 NULL, 0), 0);
	ck_assert_int_eq(kms_upd_put_rec(body, sizeof(body), &len, KMS_REC_SELF, st.next_counter,
					 val, (uint32_t)vlen), 0);
	memset(&h, 0, sizeof(h));
	h.version = KMS_UPD_VERSION;
	h.priority = KMS_UPD_RECOVERY;
	memcpy(h.serial, alice.serial, WIRE_SERIAL_LEN);
	h.counter = st.next_counter;
	h.enc_key_id = enc;
	h.wrap_key_id = enc + 1;
	h.body_len = (uint32_t)len;
	kms_upd_header_pack(&h, file);
	ck_assert_int_eq(kms_upd_file_id(&h, fid), 0);
	sec.index = 0;
	sec.len = (uint32_t)len;
	ck_assert_int_eq(cube_seal(oc, enc, WIRE_ALG_AES256_GCM, fid, &sec, 1, body,
				   file + KMS_UPD_HEADER_LEN), CUBE_OK);
	path_of(&f.u[0], st.next_counter, path, sizeof(path));
	out = fopen(path, "wb");
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(fwrite(file, 1, KMS_UPD_HEADER_LEN + len + 28, out), KMS_UPD_HEADER_LEN + len + 28);
	ck_assert_int_eq(fclose(out), 0);
	refused(&f, 0, KMS_EUPD_CORRUPT, 0x7fffffff);
	/* Alice still has her group: the forged RESET did nothing. */
	ck_assert_int_eq(kms_group_info(f.u[0].k, f.group, &(struct kms_group){ 0 }), KMS_OK);
	cube_close(oc);
	emu_free(&other);
	fx_close(&f);
}
END_TEST

START_TEST(arriving_files_never_lock)
{
	struct fx f;
	struct kms_sync_report st, rep;
	char p1[300], p2[300], held[320], whole[320];
	struct stat sb;
	uint32_t ka, kb;

	fx_open(&f);
	synced(&f, 0);
	ck_assert_int_eq(kms_sync_status(f.u[0].k, &st), KMS_OK);
	ka = admin_change(&f);
	kb = admin_change(&f);
	path_of(&f.u[0], st.next_counter, p1, sizeof(p1));
	path_of(&f.u[0], st.next_counter + 1, p2, sizeof(p2));
	/* A sync tool delivering the second file first: a gap, many polls. */
	snprintf(held, sizeof(held), "%s/../held", f.u[0].dir);
	ck_assert_int_eq(rename(p1, held), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_EUPD_GAP);
		ck_assert_uint_eq(rep.failures, 0);
		ck_assert_int_eq(rep.locked, 0);
	}
	/* The first arriving, written in place: shorter than it says. */
	ck_assert_int_eq(stat(held, &sb), 0);
	snprintf(whole, sizeof(whole), "%s/../whole", f.u[0].dir);
	copy_file(held, whole);
	ck_assert_int_eq(rename(held, p1), 0);
	ck_assert_int_eq(truncate(p1, sb.st_size / 2), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_EUPD_CORRUPT);
		ck_assert_uint_eq(rep.failures, 0);
		ck_assert_int_eq(rep.locked, 0);
		ck_assert(!key_known(&f, 0, ka));
	}
	/* Whole at last: both apply, in order. */
	ck_assert_int_eq(rename(whole, p1), 0);
	synced(&f, 0);
	ck_assert_int_eq(kms_sync_status(f.u[0].k, &rep), KMS_OK);
	ck_assert_uint_eq(rep.next_counter, st.next_counter + 2);
	ck_assert(key_known(&f, 0, ka));
	ck_assert(key_known(&f, 0, kb));
	fx_close(&f);
}
END_TEST

START_TEST(lock_after_failures_and_recovery)
{
	struct fx f;
	struct kms_sync_report rep;
	struct kms_found found;
	char p[300];
	uint32_t key, key2;
	uint8_t sealed[64 + 28], plain[64], bad;
	struct cube_sector sec = { .index = 0, .len = 64 };
	static const uint8_t fid[WIRE_FILE_ID_LEN] = { 9 };

	fx_open(&f);
	key = admin_change(&f);
	ck_assert_int_eq(kms_activate_key(f.k, key), KMS_OK);
	synced(&f, 0);
	ck_assert_int_eq(kms_find_key_v2(f.u[0].k, f.u[0].id, f.group, &found), KMS_OK);
	memset(plain, 7, sizeof(plain));
	ck_assert_int_eq(cube_seal(f.u[0].c, key, WIRE_ALG_AES256_GCM, fid, &sec, 1, plain, sealed), CUBE_OK);
	key2 = admin_change(&f);
	ck_assert_int_eq(kms_sync_status(f.u[0].k, &rep), KMS_OK);
	path_of(&f.u[0], rep.next_counter, p, sizeof(p));
	flip_byte(p, 60);
	for (int i = 1; i <= 3; i++) {
		ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_EUPD_CORRUPT);
		ck_assert_uint_eq(rep.failures, (unsigned)i);
		ck_assert_int_eq(rep.locked, i == 3);
	}
	ck_assert_int_eq(kms_find_key_v2(f.u[0].k, f.u[0].id, f.group, &found), KMS_ELOCKED);
	ck_assert_int_eq(kms_find_key_v1(f.u[0].k, f.u[0].id, f.u[1].id, &found), KMS_ELOCKED);
	ck_assert_int_eq(kms_key_check_use(f.u[0].k, key, KMS_USE_ENCRYPT), KMS_ELOCKED);
	ck_assert_int_eq(kms_key_check_use(f.u[0].k, key, KMS_USE_DECRYPT), KMS_OK);
	ck_assert_int_eq(cube_open_sectors(f.u[0].c, key, WIRE_ALG_AES256_GCM, fid, &sec, 1, sealed,
					   plain, &bad), CUBE_OK);
	/* Locked survives a restart; a standard update does not unlock. */
	kms_close(f.u[0].k);
	ck_assert_int_eq(kms_open(&f.u[0].k, f.u[0].db, f.u[0].c, NULL, 0), KMS_OK);
	ck_assert_int_eq(kms_find_key_v2(f.u[0].k, f.u[0].id, f.group, &found), KMS_ELOCKED);
	ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_ELOCKED);
	/* Recovery: a full rebuild jumps over the bad file. */
	ck_assert_int_eq(kms_user_recover(f.k, f.u[0].id, "corrupt update"), KMS_OK);
	ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_OK);
	ck_assert_uint_eq(rep.applied, 1);
	ck_assert_int_eq(rep.locked, 0);
	ck_assert_uint_eq(rep.failures, 0);
	ck_assert(key_known(&f, 0, key2));
	ck_assert_int_eq(kms_find_key_v2(f.u[0].k, f.u[0].id, f.group, &found), KMS_OK);
	ck_assert_uint_eq(found.key_id, key);
	fx_close(&f);
}
END_TEST

START_TEST(debris_ignored_ack_and_prune)
{
	struct fx f;
	struct kms_sync_report rep;
	char p[300];
	uint32_t removed = 0, key;
	DIR *d;
	struct dirent *e;
	int n_upd = 0;
	static const char *const debris[] = { ".0000000000000009.upd.tmp.123",
					      "0000000000000002.sync-conflict-20240101-1.upd",
					      "0000000000000003.upd~", "notes.txt" };

	fx_open(&f);
	synced(&f, 0);
	for (size_t i = 0; i < 4; i++) {
		FILE *o;

		snprintf(p, sizeof(p), "%s/%s", f.u[0].dir, debris[i]);
		o = fopen(p, "w");
		ck_assert_ptr_nonnull(o);
		fputs("junk", o);
		fclose(o);
	}
	key = admin_change(&f);
	ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_OK);
	ck_assert_uint_eq(rep.applied, 1);
	ck_assert_uint_eq(rep.debris, 4);
	ck_assert(key_known(&f, 0, key));
	/* Alice acknowledged everything; Bob has not synced: his files stay. */
	ck_assert_int_eq(kms_updates_prune(f.k, &removed), KMS_OK);
	ck_assert_uint_ge(removed, 2);
	d = opendir(f.u[0].dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n_upd += kms_upd_name_parse(e->d_name, &(uint64_t){ 0 }) == 0;
	closedir(d);
	ck_assert_int_eq(n_upd, 0);
	synced(&f, 1);
	ck_assert(key_known(&f, 1, key));
	/* After pruning the next update still applies. */
	key = admin_change(&f);
	synced(&f, 0);
	ck_assert(key_known(&f, 0, key));
	fx_close(&f);
}
END_TEST

/* Two admin processes, each with its own DB connection and cube session,
 * change the KMS at the same time: every change gets its own file. */
static int child_changes(const struct fx *f, int n)
{
	struct cube *c = NULL;
	sqlite3 *db = NULL;
	struct kms *k = NULL;
	int done = 0, tries = 0;

	if (cube_open(&c, f->admin_emu.dir, NULL, 0) != CUBE_OK ||
	    cube_login(c, WIRE_ROLE_ADMIN, EMU_ADMIN_PIN) != CUBE_OK ||
	    sqlite3_open(f->db_path, &db) != SQLITE_OK)
		return 1;
	sqlite3_busy_timeout(db, 2000);
	if (kms_open(&k, db, c, NULL, 0) != KMS_OK || kms_set_updates_dir(k, f->updates) != KMS_OK)
		return 2;
	while (done < n && tries++ < 200) {
		uint32_t id;
		int rc = kms_add_key(k, f->group, "c", 0, &id);

		if (rc == KMS_OK)
			done++;
		else if (rc != KMS_EDB && rc != KMS_EEXIST)
			return 3;
		else
			usleep(2000);
	}
	kms_close(k);
	sqlite3_close(db);
	cube_close(c);
	return done == n ? 0 : 4;
}

START_TEST(concurrent_admin_writes)
{
	struct fx f;
	struct kms_sync_report before, rep;
	pid_t pids[2];
	int status;

	fx_open(&f);
	synced(&f, 0);
	ck_assert_int_eq(kms_sync_status(f.u[0].k, &before), KMS_OK);
	kms_close(f.k); /* the children are the admins now */
	f.k = NULL;
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0)
			_exit(child_changes(&f, 5));
	}
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: %d", i,
			      WEXITSTATUS(status));
	}
	ck_assert_int_eq(sync_user(&f, 0, &rep), KMS_OK);
	ck_assert_uint_eq(rep.applied, 10);
	ck_assert_uint_eq(rep.next_counter, before.next_counter + 10);
	ck_assert_int_eq(kms_open(&f.k, f.db, f.admin_cube, NULL, 0), KMS_OK);
	fx_close(&f);
}
END_TEST

/* The device rules behind it all. */
START_TEST(channel_usage_and_tombstones)
{
	struct emu ea, eb;
	struct cube *a, *b, *bu;
	struct cube_info ia, ib;
	struct cube_key ck = { .id = 900, .alg = WIRE_ALG_AES256_GCM,
			       .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT | WIRE_USE_EXPORTABLE,
			       .not_before = 0, .not_after = WIRE_TIME_NEVER };
	uint8_t blob[256], plain[32], sealed[32 + 28], back[32], bad;
	static const uint8_t fid[WIRE_FILE_ID_LEN] = { 1 };
	struct cube_sector sec = { .index = 0, .len = 32 };
	size_t blen;
	uint32_t id;

	emu_new(&ea);
	emu_new(&eb);
	a = emu_login(&ea, WIRE_ROLE_ADMIN);
	b = emu_login(&eb, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_info(a, &ia), CUBE_OK);
	ck_assert_int_eq(cube_info(b, &ib), CUBE_OK);
	/* Never exportable, never data and wrap, only KW or GCM. */
	ck_assert_int_eq(cube_channel_derive_key(a, 10, ib.pubkey, WIRE_ALG_AES256_KW,
						 WIRE_USE_WRAP | WIRE_USE_EXPORTABLE, NULL, 0), CUBE_EINVAL);
	ck_assert_int_eq(cube_channel_derive_key(a, 10, ib.pubkey, WIRE_ALG_AES256_GCM,
						 WIRE_USE_ENCRYPT | WIRE_USE_WRAP, NULL, 0), CUBE_EINVAL);
	ck_assert_int_eq(cube_channel_derive_key(a, 10, ib.pubkey, WIRE_ALG_HMAC_SHA256,
						 WIRE_USE_MAC, NULL, 0), CUBE_EINVAL);
	/* The admin side encrypts, the user side decrypts: the same key. */
	ck_assert_int_eq(cube_channel_derive_key(a, 10, ib.pubkey, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT,
						 (const uint8_t *)"c", 1), CUBE_OK);
	ck_assert_int_eq(cube_channel_derive_key(b, 10, ia.pubkey, WIRE_ALG_AES256_GCM, WIRE_USE_DECRYPT,
						 (const uint8_t *)"c", 1), CUBE_OK);
	ck_assert_int_eq(cube_channel_derive_key(a, 11, ib.pubkey, WIRE_ALG_AES256_KW, WIRE_USE_WRAP,
						 (const uint8_t *)"c", 1), CUBE_OK);
	ck_assert_int_eq(cube_channel_derive_key(b, 11, ia.pubkey, WIRE_ALG_AES256_KW, WIRE_USE_UNWRAP,
						 (const uint8_t *)"c", 1), CUBE_OK);
	memset(plain, 3, sizeof(plain));
	ck_assert_int_eq(cube_seal(a, 10, WIRE_ALG_AES256_GCM, fid, &sec, 1, plain, sealed), CUBE_OK);
	ck_assert_int_eq(cube_open_sectors(b, 10, WIRE_ALG_AES256_GCM, fid, &sec, 1, sealed, back, &bad), CUBE_OK);
	ck_assert_int_eq(memcmp(back, plain, 32), 0);
	ck_assert_int_eq(cube_seal(b, 10, WIRE_ALG_AES256_GCM, fid, &sec, 1, plain, sealed), CUBE_EUSAGE);
	ck_assert_int_eq(cube_key_export(a, 11, 10, blob, sizeof(blob), &blen), CUBE_EUSAGE);
	/* A key reaches the user's cube, then its tombstone destroys it there
	 * from a user login (which may not call KEY_DESTROY). */
	ck_assert_int_eq(cube_key_generate(a, &ck), CUBE_OK);
	ck_assert_int_eq(cube_key_export(a, 11, 900, blob, sizeof(blob), &blen), CUBE_OK);
	bu = emu_login(&eb, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_key_import(bu, 11, blob, blen, &id), CUBE_OK);
	ck_assert_int_eq(cube_key_destroy(bu, 900), CUBE_EPERM);
	/* Re-export with a new window replaces the attributes. */
	ck_assert_int_eq(cube_key_set_attrs(a, 900, ck.usage, 0, 0), CUBE_OK);
	ck_assert_int_eq(cube_key_export(a, 11, 900, blob, sizeof(blob), &blen), CUBE_OK);
	ck_assert_int_eq(cube_key_import(bu, 11, blob, blen, &id), CUBE_OK);
	ck_assert_int_eq(cube_key_info(bu, 900, &ck), CUBE_OK);
	ck_assert_uint_eq(ck.not_after, 0);
	ck_assert_int_eq(cube_key_export_tombstone(a, 11, 900, blob, sizeof(blob), &blen), CUBE_OK);
	ck_assert_int_eq(cube_key_export_tombstone(a, 11, 11, blob + 128, 128, &(size_t){ 0 }), CUBE_EINVAL);
	ck_assert_int_eq(cube_key_import(bu, 11, blob, blen, &id), CUBE_OK);
	ck_assert_uint_eq(id, 900);
	ck_assert_int_eq(cube_key_info(bu, 900, &ck), CUBE_ENOKEY);
	ck_assert_int_eq(cube_key_import(bu, 11, blob, blen, &id), CUBE_OK); /* idempotent */
	blob[5] ^= 1;
	ck_assert_int_eq(cube_key_import(bu, 11, blob, blen, &id), CUBE_EINTEGRITY);
	cube_close(bu);
	cube_close(a);
	cube_close(b);
	emu_free(&ea);
	emu_free(&eb);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kms_updates");
	TCase *tc = tcase_create("updates");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 55);
	tcase_add_test(tc, each_bad_file_is_refused);
	tcase_add_test(tc, another_admin_cube_is_refused);
	tcase_add_test(tc, arriving_files_never_lock);
	tcase_add_test(tc, lock_after_failures_and_recovery);
	tcase_add_test(tc, debris_ignored_ack_and_prune);
	tcase_add_test(tc, concurrent_admin_writes);
	tcase_add_test(tc, channel_usage_and_tombstones);
	suite_add_tcase(s, tc);
	snprintf(base_dir, sizeof(base_dir), "/tmp/kms-updates.XXXXXX");
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
