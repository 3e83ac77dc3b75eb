/*
 * test_kms_lifecycle.c - the key life cycle of thesis 4.2.1: every allowed
 * and every forbidden transition (against the thesis's list, written out
 * here independently of the library's table), the time each state sets,
 * cryptoperiod = min(key's, policy's), expiry by kms_expired_check, the
 * use rules (only active keys encrypt; compromised keys decrypt with an
 * audit warning), and the audit chain with tamper detection.
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
	char dir[96];
	char path[128];
	sqlite3 *db;
	struct kms *k;
	int64_t now;
	uint32_t group;
};

static int64_t fake_now(void *arg)
{
	return ((struct fx *)arg)->now;
}

static void fx_open(struct fx *f)
{
	struct kms_policy p;
	char err[256];

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/t.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/kms.db", f->dir);
	f->now = 1800000000;
	ck_assert_int_eq(sqlite3_open(f->path, &f->db), SQLITE_OK);
	ck_assert_int_eq(kms_open(&f->k, f->db, NULL, err, sizeof(err)), KMS_OK);
	kms_set_clock(f->k, fake_now, f);
	ck_assert_int_eq(kms_admin_init(f->k), KMS_OK);
	kms_policy_default(&p);
	p.max_keys = 1000;
	p.cryptoperiod = 1000;
	ck_assert_int_eq(kms_add_group(f->k, "g", &p, &f->group), KMS_OK);
}

static void fx_free(struct fx *f)
{
	kms_close(f->k);
	sqlite3_close(f->db);
	unlink(f->path);
	rmdir(f->dir);
}

static uint32_t new_key(struct fx *f, int64_t cp)
{
	uint32_t id;

	ck_assert_msg(kms_add_key(f->k, f->group, "k", cp, &id) == KMS_OK, "%s", kms_errmsg(f->k));
	return id;
}

static struct kms_key info(struct fx *f, uint32_t id)
{
	struct kms_key key;

	ck_assert_int_eq(kms_key_info(f->k, id, &key), KMS_OK);
	return key;
}

/* The thesis's list, section 4.2.1, items 1-6. */
static int thesis_allows(int from, int to)
{
	switch (from) {
	case KMS_KEY_PREACTIVE:
		return to == KMS_KEY_ACTIVE || to == KMS_KEY_COMPROMISED || to == KMS_KEY_DESTROYED;
	case KMS_KEY_ACTIVE:
		return to == KMS_KEY_SUSPENDED || to == KMS_KEY_COMPROMISED ||
		       to == KMS_KEY_DEACTIVATED || to == KMS_KEY_DESTROYED;
	case KMS_KEY_SUSPENDED:
		return to == KMS_KEY_ACTIVE || to == KMS_KEY_DEACTIVATED ||
		       to == KMS_KEY_COMPROMISED || to == KMS_KEY_DESTROYED;
	case KMS_KEY_COMPROMISED:
		return to == KMS_KEY_DESTROYED;
	case KMS_KEY_DEACTIVATED:
		return to == KMS_KEY_COMPROMISED || to == KMS_KEY_DESTROYED;
	default:
		return 0;
	}
}

/* A key brought to state s by an allowed path. */
static uint32_t key_in(struct fx *f, int s)
{
	uint32_t id = new_key(f, 0);

	if (s == KMS_KEY_PREACTIVE)
		return id;
	if (s == KMS_KEY_COMPROMISED || s == KMS_KEY_DESTROYED) {
		ck_assert_int_eq(kms_set_key_state(f->k, id, s), KMS_OK);
		return id;
	}
	ck_assert_int_eq(kms_activate_key(f->k, id), KMS_OK);
	if (s != KMS_KEY_ACTIVE)
		ck_assert_int_eq(kms_set_key_state(f->k, id, s), KMS_OK);
	return id;
}

START_TEST(every_transition)
{
	struct fx f;
	int n_allowed = 0;

	fx_open(&f);
	for (int from = KMS_KEY_PREACTIVE; from <= KMS_KEY_DESTROYED; from++) {
		for (int to = KMS_KEY_PREACTIVE; to <= KMS_KEY_DESTROYED; to++) {
			uint32_t id = key_in(&f, from);
			int want = thesis_allows(from, to);
			int rc;

			ck_assert_int_eq(kms_transition_allowed(from, to), want);
			f.now += 1;
			rc = kms_set_key_state(f.k, id, to);
			ck_assert_msg(rc == (want ? KMS_OK : KMS_ETRANSITION), "%s -> %s: %d %s",
				      kms_state_name(from), kms_state_name(to), rc,
				      kms_errmsg(f.k));
			ck_assert_int_eq(info(&f, id).state, want ? to : from);
			n_allowed += want;
		}
	}
	ck_assert_int_eq(n_allowed, 3 + 4 + 4 + 1 + 2);
	ck_assert_int_eq(kms_transition_allowed(0, 1), 0);
	ck_assert_int_eq(kms_set_key_state(f.k, key_in(&f, KMS_KEY_ACTIVE), 9), KMS_EINVAL);
	ck_assert_int_eq(kms_audit_verify(f.k, NULL), KMS_OK);
	fx_free(&f);
}
END_TEST

START_TEST(state_times)
{
	struct fx f;
	struct kms_key key;
	uint32_t id;
	int64_t t0;

	fx_open(&f);
	t0 = f.now;
	id = new_key(&f, 0);
	key = info(&f, id);
	ck_assert_int_eq(key.generated, t0);
	ck_assert_int_eq(key.activated, 0);
	ck_assert_int_eq(key.expires, 0);
	f.now = t0 + 10;
	ck_assert_int_eq(kms_activate_key(f.k, id), KMS_OK);
	ck_assert_int_eq(kms_activate_key(f.k, id), KMS_ETRANSITION);
	key = info(&f, id);
	ck_assert_int_eq(key.activated, t0 + 10);
	ck_assert_int_eq(key.expires, t0 + 10 + 1000);
	f.now = t0 + 20;
	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_SUSPENDED), KMS_OK);
	ck_assert_int_eq(info(&f, id).suspended, t0 + 20);
	/* Suspension time still counts towards expiry. */
	f.now = t0 + 30;
	ck_assert_int_eq(kms_activate_key(f.k, id), KMS_OK);
	key = info(&f, id);
	ck_assert_int_eq(key.activated, t0 + 10);
	ck_assert_int_eq(key.expires, t0 + 1010);
	f.now = t0 + 40;
	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_DEACTIVATED), KMS_OK);
	ck_assert_int_eq(info(&f, id).deactivated, t0 + 40);
	f.now = t0 + 50;
	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_COMPROMISED), KMS_OK);
	ck_assert_int_eq(info(&f, id).compromised, t0 + 50);
	f.now = t0 + 60;
	ck_assert_int_eq(kms_set_key_state(f.k, id, KMS_KEY_DESTROYED), KMS_OK);
	key = info(&f, id);
	ck_assert_int_eq(key.destroyed, t0 + 60);
	ck_assert_int_eq(key.deactivated, t0 + 40); /* metadata retained */
	fx_free(&f);
}
END_TEST

START_TEST(cryptoperiod_and_expiry)
{
	struct fx f;
	struct kms_found out;
	uint32_t k_short, k_long, k_def, k_susp, n, uid;
	int64_t t0;

	fx_open(&f);
	t0 = f.now;
	k_short = new_key(&f, 500);  /* shorter than the policy's 1000 */
	k_long = new_key(&f, 5000);  /* longer: the policy's wins */
	k_def = new_key(&f, 0);
	ck_assert_int_eq(info(&f, k_short).cryptoperiod, 500);
	ck_assert_int_eq(info(&f, k_long).cryptoperiod, 1000);
	ck_assert_int_eq(info(&f, k_def).cryptoperiod, 1000);
	ck_assert_int_eq(kms_activate_key(f.k, k_short), KMS_OK);
	ck_assert_int_eq(kms_activate_key(f.k, k_long), KMS_OK);
	k_susp = new_key(&f, 700);
	ck_assert_int_eq(kms_activate_key(f.k, k_susp), KMS_OK);
	ck_assert_int_eq(kms_set_key_state(f.k, k_susp, KMS_KEY_SUSPENDED), KMS_OK);
	ck_assert_int_eq(info(&f, k_short).expires, t0 + 500);
	ck_assert_int_eq(info(&f, k_long).expires, t0 + 1000);
	ck_assert_int_eq(kms_add_user(f.k, "u", NULL, &uid), KMS_OK);
	ck_assert_int_eq(kms_add_member(f.k, uid, f.group), KMS_OK);
	ck_assert_int_eq(kms_find_key_v2(f.k, uid, f.group, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, k_short);

	ck_assert_int_eq(kms_expired_check(f.k, t0 + 499, &n), KMS_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(kms_key_check_use(f.k, k_short, KMS_USE_ENCRYPT), KMS_OK);
	f.now = t0 + 500; /* expired, not yet processed: no encryption */
	ck_assert_int_eq(kms_key_check_use(f.k, k_short, KMS_USE_ENCRYPT), KMS_EEXPIRED);
	ck_assert_int_eq(kms_find_key_v2(f.k, uid, f.group, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, k_long);
	ck_assert_int_eq(kms_expired_check(f.k, t0 + 500, &n), KMS_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(info(&f, k_short).state, KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(info(&f, k_short).deactivated, t0 + 500);
	ck_assert_int_eq(kms_key_check_use(f.k, k_short, KMS_USE_DECRYPT), KMS_OK);
	/* The suspended key expires too; it cannot come back. */
	f.now = t0 + 700;
	ck_assert_int_eq(kms_activate_key(f.k, k_susp), KMS_EEXPIRED);
	ck_assert_int_eq(info(&f, k_susp).state, KMS_KEY_SUSPENDED);
	ck_assert_int_eq(kms_expired_check(f.k, t0 + 1000, &n), KMS_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(info(&f, k_susp).state, KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(info(&f, k_long).state, KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(info(&f, k_def).state, KMS_KEY_PREACTIVE);
	f.now = t0 + 1000;
	ck_assert_int_eq(kms_find_key_v2(f.k, uid, f.group, &out), KMS_ENOKEY);
	fx_free(&f);
}
END_TEST

START_TEST(use_rules)
{
	struct fx f;
	struct kms_audit_rec *recs;
	size_t n;
	uint32_t pre, act, sus, dea, com, des;

	fx_open(&f);
	pre = key_in(&f, KMS_KEY_PREACTIVE);
	act = key_in(&f, KMS_KEY_ACTIVE);
	sus = key_in(&f, KMS_KEY_SUSPENDED);
	dea = key_in(&f, KMS_KEY_DEACTIVATED);
	com = key_in(&f, KMS_KEY_COMPROMISED);
	des = key_in(&f, KMS_KEY_DESTROYED);
	ck_assert_int_eq(kms_key_check_use(f.k, act, KMS_USE_ENCRYPT), KMS_OK);
	ck_assert_int_eq(kms_key_check_use(f.k, pre, KMS_USE_ENCRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, sus, KMS_USE_ENCRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, dea, KMS_USE_ENCRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, com, KMS_USE_ENCRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, des, KMS_USE_ENCRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, act, KMS_USE_DECRYPT), KMS_OK);
	ck_assert_int_eq(kms_key_check_use(f.k, sus, KMS_USE_DECRYPT), KMS_OK);
	ck_assert_int_eq(kms_key_check_use(f.k, dea, KMS_USE_DECRYPT), KMS_OK);
	ck_assert_int_eq(kms_key_check_use(f.k, pre, KMS_USE_DECRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, des, KMS_USE_DECRYPT), KMS_EKEYSTATE);
	ck_assert_int_eq(kms_key_check_use(f.k, 4711, KMS_USE_DECRYPT), KMS_ENOSUCHKEY);
	ck_assert_int_eq(kms_key_check_use(f.k, com, KMS_USE_DECRYPT), KMS_OK);
	ck_assert_int_eq(kms_audit_list(f.k, 1, 1000, &recs, &n), KMS_OK);
	ck_assert_uint_gt(n, 0);
	ck_assert_str_eq(recs[n - 1].op, "warn_compromised");
	ck_assert_ptr_nonnull(strstr(recs[n - 1].detail, "compromised"));
	free(recs);
	fx_free(&f);
}
END_TEST

/* ---- audit ---- */

static void some_history(struct fx *f)
{
	uint32_t id = key_in(f, KMS_KEY_ACTIVE);

	ck_assert_int_eq(kms_set_key_state(f->k, id, KMS_KEY_PREACTIVE), KMS_ETRANSITION);
	ck_assert_int_eq(kms_set_key_state(f->k, id, KMS_KEY_SUSPENDED), KMS_OK);
	ck_assert_int_eq(kms_audit_log(f->k, "integrity", KMS_OK, "file x sector 3 bad tag"), KMS_OK);
}

static void tamper(struct fx *f, const char *sql, uint64_t want_bad)
{
	uint64_t bad;

	ck_assert_int_eq(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(kms_audit_verify(f->k, &bad), KMS_EAUDIT);
	ck_assert_uint_eq(bad, want_bad);
}

START_TEST(audit_records)
{
	struct fx f;
	struct kms_audit_rec *recs;
	size_t n;
	uint64_t bad = 99;
	int saw_refusal = 0;

	fx_open(&f);
	some_history(&f);
	ck_assert_int_eq(kms_audit_verify(f.k, &bad), KMS_OK);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(kms_audit_list(f.k, 1, 100, &recs, &n), KMS_OK);
	/* admin_init, add_group, add_key, activate, refused, suspend, event */
	ck_assert_uint_eq(n, 7);
	ck_assert_str_eq(recs[0].op, "admin_init");
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(recs[i].seq, i + 1);
		if (recs[i].result == KMS_ETRANSITION) {
			saw_refusal = 1;
			ck_assert_ptr_nonnull(strstr(recs[i].detail, "not allowed"));
		}
	}
	ck_assert(saw_refusal);
	ck_assert_str_eq(recs[6].op, "integrity");
	free(recs);
	ck_assert_int_eq(kms_audit_list(f.k, 6, 100, &recs, &n), KMS_OK);
	ck_assert_uint_eq(n, 2);
	free(recs);
	fx_free(&f);
}
END_TEST

START_TEST(audit_modified)
{
	struct fx f;

	fx_open(&f);
	some_history(&f);
	tamper(&f, "UPDATE kms_audit SET detail='nothing happened' WHERE seq=4", 4);
	fx_free(&f);
}
END_TEST

START_TEST(audit_removed)
{
	struct fx f;

	fx_open(&f);
	some_history(&f);
	tamper(&f, "DELETE FROM kms_audit WHERE seq=3", 3);
	fx_free(&f);
}
END_TEST

START_TEST(audit_reordered)
{
	struct fx f;

	fx_open(&f);
	some_history(&f);
	tamper(&f, "UPDATE kms_audit SET seq=100 WHERE seq=2;"
		   "UPDATE kms_audit SET seq=2 WHERE seq=3;"
		   "UPDATE kms_audit SET seq=3 WHERE seq=100", 2);
	fx_free(&f);
}
END_TEST

START_TEST(audit_truncated)
{
	struct fx f;

	fx_open(&f);
	some_history(&f);
	tamper(&f, "DELETE FROM kms_audit WHERE seq=7", 7);
	fx_free(&f);
}
END_TEST

START_TEST(audit_result_changed)
{
	struct fx f;

	fx_open(&f);
	some_history(&f);
	tamper(&f, "UPDATE kms_audit SET result=0 WHERE result<>0", 5);
	fx_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kms_lifecycle");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, every_transition);
	tcase_add_test(tc, state_times);
	tcase_add_test(tc, cryptoperiod_and_expiry);
	tcase_add_test(tc, use_rules);
	tcase_add_test(tc, audit_records);
	tcase_add_test(tc, audit_modified);
	tcase_add_test(tc, audit_removed);
	tcase_add_test(tc, audit_reordered);
	tcase_add_test(tc, audit_truncated);
	tcase_add_test(tc, audit_result_changed);
	suite_add_tcase(s, tc);
	snprintf(base_dir, sizeof(base_dir), "/tmp/kms-life.XXXXXX");
	if (!mkdtemp(base_dir))
		return 1;
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_rmtree(base_dir);
	return failed ? 1 : 0;
}
