/*
 * test_kms_core.c - SEkey core on a plain SQLite database (no cube): the
 * Figure 4.4 scenario for find_key v1/v2/v3 with its ENOKEY cases and the
 * ordering rules, policies (max keys, immutable algorithm), group and user
 * deletion, member removal with key rotation, persistence across reopen,
 * roles and argument errors.
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
};

static int64_t fake_now(void *arg)
{
	return ((struct fx *)arg)->now;
}

static void fx_reopen(struct fx *f)
{
	char err[256];

	ck_assert_int_eq(sqlite3_open(f->path, &f->db), SQLITE_OK);
	ck_assert_int_eq(kms_open(&f->k, f->db, NULL, err, sizeof(err)), KMS_OK);
	kms_set_clock(f->k, fake_now, f);
}

static void fx_close(struct fx *f)
{
	kms_close(f->k);
	f->k = NULL;
	ck_assert_int_eq(sqlite3_close(f->db), SQLITE_OK);
	f->db = NULL;
}

static void fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/t.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/kms.db", f->dir);
	f->now = 1800000000; /* 2027 */
	fx_reopen(f);
	ck_assert_int_eq(kms_admin_init(f->k), KMS_OK);
}

static void fx_free(struct fx *f)
{
	if (f->k)
		fx_close(f);
	unlink(f->path);
	rmdir(f->dir);
}

static uint32_t user(struct fx *f, const char *name)
{
	uint32_t id;

	ck_assert_msg(kms_add_user(f->k, name, NULL, &id) == KMS_OK, "%s", kms_errmsg(f->k));
	return id;
}

static uint32_t group_p(struct fx *f, const char *name, uint8_t alg, uint32_t max, int64_t cp,
			int rotate)
{
	struct kms_policy p;
	uint32_t id;

	kms_policy_default(&p);
	p.alg = alg;
	p.max_keys = max;
	p.cryptoperiod = cp;
	p.rotate_on_remove = rotate;
	ck_assert_msg(kms_add_group(f->k, name, &p, &id) == KMS_OK, "%s", kms_errmsg(f->k));
	return id;
}

static uint32_t group(struct fx *f, const char *name)
{
	return group_p(f, name, WIRE_ALG_AES256_GCM, 16, 86400, 1);
}

static void member(struct fx *f, uint32_t u, uint32_t g)
{
	ck_assert_msg(kms_add_member(f->k, u, g) == KMS_OK, "%s", kms_errmsg(f->k));
}

static uint32_t active_key(struct fx *f, uint32_t g, int64_t cp)
{
	uint32_t id;

	ck_assert_msg(kms_add_key(f->k, g, "k", cp, &id) == KMS_OK, "%s", kms_errmsg(f->k));
	ck_assert_msg(kms_activate_key(f->k, id) == KMS_OK, "%s", kms_errmsg(f->k));
	return id;
}

static enum kms_key_state state_of(struct fx *f, uint32_t id)
{
	struct kms_key key;

	ck_assert_int_eq(kms_key_info(f->k, id, &key), KMS_OK);
	return key.state;
}

static uint32_t v1(struct fx *f, uint32_t a, uint32_t b, int want)
{
	struct kms_found out;
	int rc = kms_find_key_v1(f->k, a, b, &out);

	ck_assert_msg(rc == want, "v1(%u,%u) = %d (%s), want %d", a, b, rc, kms_errmsg(f->k), want);
	return out.key_id;
}

/* Figure 4.4: Alice and Bob in Group 1, Bob and Eve in Group 2. */
struct fig44 {
	uint32_t alice, bob, eve, g1, g2, k1, k2;
};

static void fig44(struct fx *f, struct fig44 *s)
{
	s->alice = user(f, "alice");
	s->bob = user(f, "bob");
	s->eve = user(f, "eve");
	s->g1 = group(f, "group1");
	s->g2 = group(f, "group2");
	member(f, s->alice, s->g1);
	member(f, s->bob, s->g1);
	member(f, s->bob, s->g2);
	member(f, s->eve, s->g2);
	s->k1 = active_key(f, s->g1, 3600);
	s->k2 = active_key(f, s->g2, 1800);
}

START_TEST(figure_4_4)
{
	struct fx f;
	struct fig44 s;
	struct kms_found out;
	uint32_t set[3];

	fx_open(&f);
	fig44(&f, &s);
	ck_assert_uint_eq(v1(&f, s.alice, s.bob, KMS_OK), s.k1);
	ck_assert_uint_eq(v1(&f, s.bob, s.alice, KMS_OK), s.k1);
	ck_assert_uint_eq(v1(&f, s.bob, s.eve, KMS_OK), s.k2);
	v1(&f, s.alice, s.eve, KMS_ENOKEY); /* no common group */

	ck_assert_int_eq(kms_find_key_v2(f.k, s.alice, s.g1, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, s.k1);
	ck_assert_uint_eq(out.alg, WIRE_ALG_AES256_GCM);
	ck_assert_uint_eq(out.group_id, s.g1);
	ck_assert_int_eq(kms_find_key_v2(f.k, s.alice, s.g2, &out), KMS_ENOTMEMBER);
	ck_assert_uint_eq(out.key_id, 0);
	ck_assert_int_eq(kms_find_key_v2(f.k, s.eve, s.g2, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, s.k2);
	ck_assert_int_eq(kms_find_key_v2(f.k, s.eve, 999, &out), KMS_ENOGROUP);
	ck_assert_int_eq(kms_find_key_v2(f.k, 999, s.g2, &out), KMS_ENOUSER);

	set[0] = s.alice; set[1] = s.bob; set[2] = s.alice;
	ck_assert_int_eq(kms_find_key_v3(f.k, set, 3, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, s.k1);
	set[2] = s.eve;
	ck_assert_int_eq(kms_find_key_v3(f.k, set, 3, &out), KMS_ENOKEY);
	/* Bob alone: both groups have 2 members; G2's key has the shorter
	 * cryptoperiod. */
	ck_assert_int_eq(kms_find_key_v3(f.k, &s.bob, 1, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, s.k2);
	ck_assert_int_eq(kms_find_key_v3(f.k, &s.alice, 1, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, s.k1);
	set[0] = 4242;
	ck_assert_int_eq(kms_find_key_v3(f.k, set, 2, &out), KMS_ENOUSER);
	ck_assert_int_eq(kms_find_key_v3(f.k, set, 0, &out), KMS_EINVAL);
	fx_free(&f);
}
END_TEST

START_TEST(smallest_group_no_fallback)
{
	struct fx f;
	struct fig44 s;
	uint32_t all, k3, set[3];
	struct kms_found out;

	fx_open(&f);
	fig44(&f, &s);
	all = group(&f, "everyone");
	member(&f, s.alice, all);
	member(&f, s.bob, all);
	member(&f, s.eve, all);
	k3 = active_key(&f, all, 3600);
	ck_assert_uint_eq(v1(&f, s.alice, s.eve, KMS_OK), k3); /* smallest holding both */
	set[0] = s.alice; set[1] = s.bob; set[2] = s.eve;
	ck_assert_int_eq(kms_find_key_v3(f.k, set, 3, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, k3);
	/* Group 1's key suspended: Group 1 is still the smallest group holding
	 * Alice and Bob, so no key -- never the wider "everyone". */
	ck_assert_int_eq(kms_set_key_state(f.k, s.k1, KMS_KEY_SUSPENDED), KMS_OK);
	v1(&f, s.alice, s.bob, KMS_ENOKEY);
	ck_assert_ptr_nonnull(strstr(kms_errmsg(f.k), "smallest"));
	ck_assert_int_eq(kms_activate_key(f.k, s.k1), KMS_OK);
	ck_assert_uint_eq(v1(&f, s.alice, s.bob, KMS_OK), s.k1);
	fx_free(&f);
}
END_TEST

START_TEST(ordering_rules)
{
	struct fx f;
	uint32_t a, b, ga, gb, gc, ka1, ka2, ka3, kc;

	fx_open(&f);
	a = user(&f, "a");
	b = user(&f, "b");
	/* Two groups of the same size: GCM beats CTR+HMAC whatever the
	 * cryptoperiods and IDs. */
	gc = group_p(&f, "ctr", WIRE_ALG_AES256_CTR_HMAC, 16, 86400, 1);
	ga = group_p(&f, "gcm", WIRE_ALG_AES256_GCM, 16, 86400, 1);
	member(&f, a, gc); member(&f, b, gc);
	member(&f, a, ga); member(&f, b, ga);
	kc = active_key(&f, gc, 60);
	ka1 = active_key(&f, ga, 7200);
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), ka1);
	/* Within a group: the shortest cryptoperiod, then the lowest ID. */
	ka2 = active_key(&f, ga, 3600);
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), ka2);
	ka3 = active_key(&f, ga, 3600);
	ck_assert_uint_gt(ka3, ka2);
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), ka2);
	/* A pre-active key is never chosen; neither is an expired one, even
	 * before the expiry check ran. */
	ck_assert_int_eq(kms_add_key(f.k, ga, "pre", 10, &gb), KMS_OK);
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), ka2);
	f.now += 3600; /* ka2, ka3 expire; ka1 (7200) remains */
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), ka1);
	f.now += 3600;
	v1(&f, a, b, KMS_ENOKEY); /* GCM group has nothing; the CTR group is as small but its key expired too */
	(void)kc;
	fx_free(&f);
}
END_TEST

START_TEST(tie_between_smallest_groups)
{
	struct fx f;
	uint32_t a, b, g1, g2, k2;

	fx_open(&f);
	a = user(&f, "a");
	b = user(&f, "b");
	g1 = group(&f, "g1");
	g2 = group(&f, "g2");
	member(&f, a, g1); member(&f, b, g1);
	member(&f, a, g2); member(&f, b, g2);
	/* g1 has no active key, g2 (same size) has: g2's key qualifies. */
	k2 = active_key(&f, g2, 100);
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), k2);
	fx_free(&f);
}
END_TEST

START_TEST(policy_rules)
{
	struct fx f;
	struct kms_policy p;
	struct kms_group g;
	struct kms_key key;
	uint32_t gid, k1, k2, k3;

	fx_open(&f);
	gid = group_p(&f, "small", WIRE_ALG_AES256_GCM, 2, 1000, 1);
	ck_assert_int_eq(kms_add_key(f.k, gid, "one", 500, &k1), KMS_OK);
	ck_assert_int_eq(kms_add_key(f.k, gid, "two", 2000, &k2), KMS_OK);
	ck_assert_int_eq(kms_add_key(f.k, gid, "three", 0, &k3), KMS_EMAXKEYS);
	ck_assert_uint_eq(k3, 0);
	/* Cryptoperiod = min(key's, policy's). */
	ck_assert_int_eq(kms_key_info(f.k, k1, &key), KMS_OK);
	ck_assert_int_eq(key.cryptoperiod, 500);
	ck_assert_uint_eq(key.alg, WIRE_ALG_AES256_GCM);
	ck_assert_uint_eq(key.length, 256);
	ck_assert_uint_eq(key.group_id, gid);
	ck_assert_int_eq(key.type, KMS_KEY_TYPE_DATA);
	ck_assert_int_eq(key.state, KMS_KEY_PREACTIVE);
	ck_assert_int_eq(key.generated, f.now);
	ck_assert_int_eq(kms_key_info(f.k, k2, &key), KMS_OK);
	ck_assert_int_eq(key.cryptoperiod, 1000);
	/* A destroyed key no longer counts against max keys. */
	ck_assert_int_eq(kms_set_key_state(f.k, k2, KMS_KEY_DESTROYED), KMS_OK);
	ck_assert_int_eq(kms_add_key(f.k, gid, "three", 0, &k3), KMS_OK);
	ck_assert_int_eq(kms_key_info(f.k, k3, &key), KMS_OK);
	ck_assert_int_eq(key.cryptoperiod, 1000);
	/* The algorithm never changes; the rest may. */
	ck_assert_int_eq(kms_group_info(f.k, gid, &g), KMS_OK);
	p = g.policy;
	p.alg = WIRE_ALG_AES256_CTR_HMAC;
	ck_assert_int_eq(kms_group_set_policy(f.k, gid, &p), KMS_EIMMUTABLE);
	p.alg = WIRE_ALG_AES256_GCM;
	p.max_keys = 3;
	p.cryptoperiod = 300;
	ck_assert_int_eq(kms_group_set_policy(f.k, gid, &p), KMS_OK);
	ck_assert_int_eq(kms_group_info(f.k, gid, &g), KMS_OK);
	ck_assert_uint_eq(g.policy.max_keys, 3);
	ck_assert_int_eq(g.policy.cryptoperiod, 300);
	ck_assert_uint_eq(g.n_keys, 2);
	ck_assert_int_eq(kms_key_info(f.k, k3, &key), KMS_OK);
	ck_assert_int_eq(key.cryptoperiod, 1000); /* not retroactive */
	/* Bad policies. */
	p.alg = WIRE_ALG_AES256_KW;
	ck_assert_int_eq(kms_add_group(f.k, "bad", &p, &gid), KMS_EINVAL);
	p.alg = WIRE_ALG_AES256_GCM;
	p.max_keys = 0;
	ck_assert_int_eq(kms_add_group(f.k, "bad", &p, &gid), KMS_EINVAL);
	p.max_keys = 1;
	p.cryptoperiod = 0;
	ck_assert_int_eq(kms_add_group(f.k, "bad", &p, &gid), KMS_EINVAL);
	p.cryptoperiod = 10;
	ck_assert_int_eq(kms_add_group(f.k, "small", &p, &gid), KMS_EEXIST);
	fx_free(&f);
}
END_TEST

START_TEST(delete_group_effects)
{
	struct fx f;
	struct fig44 s;
	struct kms_user u;
	struct kms_group g;
	uint32_t kpre, ksusp, kcomp, *ids;
	size_t n;

	fx_open(&f);
	fig44(&f, &s);
	ck_assert_int_eq(kms_add_key(f.k, s.g1, "pre", 0, &kpre), KMS_OK);
	ksusp = active_key(&f, s.g1, 0);
	ck_assert_int_eq(kms_set_key_state(f.k, ksusp, KMS_KEY_SUSPENDED), KMS_OK);
	ck_assert_int_eq(kms_add_key(f.k, s.g1, "comp", 0, &kcomp), KMS_OK);
	ck_assert_int_eq(kms_set_key_state(f.k, kcomp, KMS_KEY_COMPROMISED), KMS_OK);
	ck_assert_int_eq(kms_delete_group(f.k, s.g1), KMS_OK);
	ck_assert_int_eq(kms_group_info(f.k, s.g1, &g), KMS_ENOGROUP);
	ck_assert_int_eq(state_of(&f, s.k1), KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(state_of(&f, ksusp), KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(state_of(&f, kpre), KMS_KEY_DESTROYED);
	ck_assert_int_eq(state_of(&f, kcomp), KMS_KEY_COMPROMISED);
	ck_assert_int_eq(state_of(&f, s.k2), KMS_KEY_ACTIVE);
	ck_assert_int_eq(kms_user_info(f.k, s.alice, &u), KMS_OK);
	ck_assert_uint_eq(u.n_groups, 0);
	ck_assert_int_eq(kms_user_groups(f.k, s.bob, &ids, &n), KMS_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], s.g2);
	free(ids);
	v1(&f, s.alice, s.bob, KMS_ENOKEY);
	ck_assert_uint_eq(v1(&f, s.bob, s.eve, KMS_OK), s.k2);
	ck_assert_int_eq(kms_delete_group(f.k, s.g1), KMS_ENOGROUP);
	fx_free(&f);
}
END_TEST

START_TEST(delete_user_effects)
{
	struct fx f;
	struct fig44 s;
	struct kms_group g;
	struct kms_user u;
	struct kms_found out;
	uint32_t id;

	fx_open(&f);
	fig44(&f, &s);
	ck_assert_int_eq(kms_delete_user(f.k, s.bob), KMS_OK);
	ck_assert_int_eq(kms_user_info(f.k, s.bob, &u), KMS_ENOUSER);
	ck_assert_int_eq(kms_user_by_name(f.k, "bob", &id), KMS_ENOUSER);
	ck_assert_int_eq(kms_group_info(f.k, s.g1, &g), KMS_OK);
	ck_assert_uint_eq(g.n_members, 1);
	/* Bob knew both groups' keys: both rotated. */
	ck_assert_int_eq(state_of(&f, s.k1), KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(state_of(&f, s.k2), KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(kms_find_key_v2(f.k, s.alice, s.g1, &out), KMS_OK);
	ck_assert_uint_ne(out.key_id, s.k1);
	ck_assert_int_eq(state_of(&f, out.key_id), KMS_KEY_ACTIVE);
	v1(&f, s.alice, s.bob, KMS_ENOUSER);
	ck_assert_int_eq(kms_delete_user(f.k, s.bob), KMS_ENOUSER);
	/* The name is free again; the ID is not reused. */
	ck_assert_uint_gt(user(&f, "bob"), s.eve);
	fx_free(&f);
}
END_TEST

START_TEST(member_removal_rotation)
{
	struct fx f;
	struct kms_key key;
	struct kms_found out;
	struct kms_group g;
	uint32_t a, b, e, gid, k0, ks, kn, gnr, knr, set[2];

	fx_open(&f);
	a = user(&f, "alice");
	b = user(&f, "bob");
	e = user(&f, "eve");
	gid = group_p(&f, "team", WIRE_ALG_AES256_GCM, 3, 5000, 1);
	member(&f, a, gid); member(&f, b, gid); member(&f, e, gid);
	k0 = active_key(&f, gid, 1000);
	ks = active_key(&f, gid, 2000);
	ck_assert_int_eq(kms_set_key_state(f.k, ks, KMS_KEY_SUSPENDED), KMS_OK);
	f.now += 10;
	ck_assert_int_eq(kms_remove_member(f.k, e, gid), KMS_OK);
	ck_assert_int_eq(kms_remove_member(f.k, e, gid), KMS_ENOTMEMBER);
	ck_assert_int_eq(state_of(&f, k0), KMS_KEY_DEACTIVATED);
	ck_assert_int_eq(state_of(&f, ks), KMS_KEY_DEACTIVATED);
	set[0] = a; set[1] = b;
	ck_assert_int_eq(kms_find_key_v3(f.k, set, 2, &out), KMS_OK);
	kn = out.key_id;
	ck_assert_uint_ne(kn, k0);
	ck_assert_int_eq(kms_key_info(f.k, kn, &key), KMS_OK);
	ck_assert_int_eq(key.state, KMS_KEY_ACTIVE);
	ck_assert_int_eq(key.cryptoperiod, 1000);
	ck_assert_int_eq(key.activated, f.now);
	ck_assert_int_eq(kms_find_key_v2(f.k, e, gid, &out), KMS_ENOTMEMBER);
	/* Max keys reached (3 keys not destroyed): a rotation has no room, so
	 * the removal is refused whole -- Bob stays, kn stays active. */
	ck_assert_int_eq(kms_remove_member(f.k, b, gid), KMS_EMAXKEYS);
	ck_assert_int_eq(kms_group_info(f.k, gid, &g), KMS_OK);
	ck_assert_uint_eq(g.n_members, 2);
	ck_assert_int_eq(state_of(&f, kn), KMS_KEY_ACTIVE);
	ck_assert_uint_eq(v1(&f, a, b, KMS_OK), kn);
	/* Rotation off: the key stays. */
	gnr = group_p(&f, "norotate", WIRE_ALG_AES256_GCM, 3, 5000, 0);
	member(&f, a, gnr); member(&f, e, gnr);
	knr = active_key(&f, gnr, 0);
	ck_assert_int_eq(kms_remove_member(f.k, e, gnr), KMS_OK);
	ck_assert_int_eq(state_of(&f, knr), KMS_KEY_ACTIVE);
	ck_assert_int_eq(kms_find_key_v2(f.k, a, gnr, &out), KMS_OK);
	ck_assert_uint_eq(out.key_id, knr);
	fx_free(&f);
}
END_TEST

START_TEST(persistence)
{
	struct fx f;
	struct fig44 s;
	struct kms_user u;
	uint32_t again, k;

	fx_open(&f);
	fig44(&f, &s);
	ck_assert_int_eq(kms_set_key_state(f.k, s.k2, KMS_KEY_COMPROMISED), KMS_OK);
	fx_close(&f);
	fx_reopen(&f);
	ck_assert_int_eq(kms_role(f.k), KMS_ROLE_ADMIN);
	ck_assert_uint_eq(v1(&f, s.alice, s.bob, KMS_OK), s.k1);
	v1(&f, s.bob, s.eve, KMS_ENOKEY);
	ck_assert_int_eq(state_of(&f, s.k2), KMS_KEY_COMPROMISED);
	ck_assert_int_eq(kms_user_by_name(f.k, "eve", &again), KMS_OK);
	ck_assert_uint_eq(again, s.eve);
	ck_assert_int_eq(kms_user_info(f.k, s.bob, &u), KMS_OK);
	ck_assert_str_eq(u.name, "bob");
	ck_assert_uint_eq(u.n_groups, 2);
	k = active_key(&f, s.g2, 0);
	ck_assert_uint_gt(k, s.k2);
	ck_assert_uint_eq(v1(&f, s.bob, s.eve, KMS_OK), k);
	ck_assert_msg(kms_audit_verify(f.k, NULL) == KMS_OK, "%s", kms_errmsg(f.k));
	fx_free(&f);
}
END_TEST

START_TEST(lists_and_device)
{
	struct fx f;
	struct fig44 s;
	struct kms_user *users, u;
	struct kms_group *groups;
	struct kms_key *keys;
	uint32_t *ids;
	size_t n;
	uint8_t serial[WIRE_SERIAL_LEN];

	fx_open(&f);
	fig44(&f, &s);
	ck_assert_int_eq(kms_user_list(f.k, &users, &n), KMS_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(users[0].name, "alice");
	ck_assert_str_eq(users[2].name, "eve");
	free(users);
	ck_assert_int_eq(kms_group_list(f.k, &groups, &n), KMS_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(groups[0].n_members, 2);
	ck_assert_uint_eq(groups[0].n_keys, 1);
	free(groups);
	ck_assert_int_eq(kms_key_list(f.k, 0, &keys, &n), KMS_OK);
	ck_assert_uint_eq(n, 2);
	free(keys);
	ck_assert_int_eq(kms_key_list(f.k, s.g2, &keys, &n), KMS_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(keys[0].id, s.k2);
	free(keys);
	ck_assert_int_eq(kms_group_members(f.k, s.g2, &ids, &n), KMS_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ids[0], s.bob);
	ck_assert_uint_eq(ids[1], s.eve);
	free(ids);
	memset(serial, 0xab, sizeof(serial));
	ck_assert_int_eq(kms_user_set_device(f.k, s.eve, serial, 7, 8), KMS_OK);
	ck_assert_int_eq(kms_user_info(f.k, s.eve, &u), KMS_OK);
	ck_assert_int_eq(memcmp(u.serial, serial, sizeof(serial)), 0);
	ck_assert_uint_eq(u.update_key_id, 7);
	ck_assert_uint_eq(u.kwk_id, 8);
	ck_assert_int_eq(kms_user_set_device(f.k, 999, serial, 7, 8), KMS_ENOUSER);
	fx_free(&f);
}
END_TEST

START_TEST(bad_input_and_roles)
{
	struct fx f;
	struct kms *k2;
	sqlite3 *db;
	uint32_t id, u, g;
	char err[128];

	fx_open(&f);
	ck_assert_int_eq(kms_add_user(f.k, "", NULL, &id), KMS_EINVAL);
	ck_assert_int_eq(kms_add_user(f.k, "a,b", NULL, &id), KMS_EINVAL);
	ck_assert_int_eq(kms_add_user(f.k, "a/b", NULL, &id), KMS_EINVAL);
	ck_assert_int_eq(kms_add_user(f.k, "a\nb", NULL, &id), KMS_EINVAL);
	ck_assert_int_eq(kms_add_user(f.k, "..", NULL, &id), KMS_EINVAL);
	ck_assert_int_eq(kms_add_user(f.k,
		"0123456789012345678901234567890123456789012345678901234567890123", NULL, &id),
		KMS_EINVAL);
	u = user(&f, "robert'); DROP TABLE kms_users;--");
	ck_assert_int_eq(kms_add_user(f.k, "robert'); DROP TABLE kms_users;--", NULL, &id),
			 KMS_EEXIST);
	g = group(&f, "g");
	member(&f, u, g);
	ck_assert_int_eq(kms_add_member(f.k, u, g), KMS_EEXIST);
	ck_assert_int_eq(kms_add_member(f.k, 77, g), KMS_ENOUSER);
	ck_assert_int_eq(kms_add_member(f.k, u, 77), KMS_ENOGROUP);
	ck_assert_int_eq(kms_add_key(f.k, 77, "x", 0, &id), KMS_ENOGROUP);
	ck_assert_int_eq(kms_add_key(f.k, g, "x", -1, &id), KMS_EINVAL);
	ck_assert_int_eq(kms_activate_key(f.k, 12345), KMS_ENOSUCHKEY);
	ck_assert_int_eq(kms_admin_init(f.k), KMS_EEXIST);
	ck_assert_str_ne(kms_strerror(KMS_ENOKEY), kms_strerror(KMS_ENOSUCHKEY));
	/* A fresh, uninitialised database refuses changes. */
	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	ck_assert_int_eq(kms_open(&k2, db, NULL, err, sizeof(err)), KMS_OK);
	ck_assert_int_eq(kms_role(k2), KMS_ROLE_NONE);
	ck_assert_int_eq(kms_add_user(k2, "x", NULL, &id), KMS_EPERM);
	ck_assert_int_eq(kms_expired_check(k2, 0, NULL), KMS_EPERM);
	kms_close(k2);
	/* A database of an unknown schema version is refused. */
	ck_assert_int_eq(sqlite3_exec(db, "UPDATE kms_meta SET ival=99 WHERE key='schema_version'",
				      NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(kms_open(&k2, db, NULL, err, sizeof(err)), KMS_ESCHEMA);
	ck_assert_ptr_null(k2);
	ck_assert_ptr_nonnull(strstr(err, "version"));
	sqlite3_close(db);
	fx_free(&f);
}
END_TEST

START_TEST(outer_transaction_and_reload)
{
	struct fx f;
	uint32_t a, g;

	/* Changes nest inside a caller's transaction (savepoints); after the
	 * caller rolls it back, kms_reload brings the index back in line. */
	fx_open(&f);
	a = user(&f, "a");
	ck_assert_int_eq(sqlite3_exec(f.db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	g = group(&f, "g");
	member(&f, a, g);
	active_key(&f, g, 0);
	ck_assert_uint_ne(v1(&f, a, a, KMS_OK), 0);
	ck_assert_int_eq(sqlite3_exec(f.db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(kms_reload(f.k), KMS_OK);
	v1(&f, a, a, KMS_ENOKEY);
	ck_assert_msg(kms_audit_verify(f.k, NULL) == KMS_OK, "%s", kms_errmsg(f.k));
	fx_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kms_core");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, figure_4_4);
	tcase_add_test(tc, smallest_group_no_fallback);
	tcase_add_test(tc, ordering_rules);
	tcase_add_test(tc, tie_between_smallest_groups);
	tcase_add_test(tc, policy_rules);
	tcase_add_test(tc, delete_group_effects);
	tcase_add_test(tc, delete_user_effects);
	tcase_add_test(tc, member_removal_rotation);
	tcase_add_test(tc, persistence);
	tcase_add_test(tc, lists_and_device);
	tcase_add_test(tc, bad_input_and_roles);
	tcase_add_test(tc, outer_transaction_and_reload);
	suite_add_tcase(s, tc);
	snprintf(base_dir, sizeof(base_dir), "/tmp/kms-test.XXXXXX");
	if (!mkdtemp(base_dir))
		return 1;
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_rmtree(base_dir);
	return failed ? 1 : 0;
}
