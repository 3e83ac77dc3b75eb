/*
 * findkey.c - find the key to encrypt with (thesis 5.3, sekey_find_key
 * v1/v2/v3), answered from the in-memory index alone (index.c).
 *
 * Rules, in order: (1) active keys whose cryptoperiod has not ended;
 * (2) unless a group is named, only the smallest group that includes all
 * the users -- never a wider one: giving data to more people than the
 * smallest common group is not the caller's choice to have made silently,
 * so if that group has no active key the answer is KMS_ENOKEY; several
 * groups of that smallest size all qualify; (3) the strongest algorithm;
 * (4) the shortest cryptoperiod; (5) the lowest ID.
 *
 * Cost: the users' sorted group lists are intersected from the shortest
 * one with binary searches in the others; each group keeps its best key,
 * so no key list is scanned unless that best key has just expired.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FIND_USERS_MAX 65536

static int bsearch_u32(const uint32_t *v, uint32_t n, uint32_t x)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo] == x;
}

/* The best key of g not expired at now, or NULL. */
static const struct ix_key *group_best(const struct ix_group *g, int64_t now)
{
	const struct ix_key *best = NULL;
	int rank = kms_alg_rank(g->alg);

	if (g->best < 0)
		return NULL;
	if (g->active[g->best].expires > now)
		return &g->active[g->best];
	for (uint32_t i = 0; i < g->n_active; i++) /* the best one just expired */
		if (g->active[i].expires > now &&
		    (!best || kms_key_better(rank, &g->active[i], rank, best)))
			best = &g->active[i];
	return best;
}

static int index_ready(struct kms *k)
{
	/* find_key names a key to encrypt with: refused while locked. */
	if (k->locked)
		return kms_fail(k, KMS_ELOCKED, "this KMS is locked after %u failed updates; "
				"new encryption waits for a recovery update", k->fail_limit);
	if (!k->ix_ok)
		return kms_fail(k, KMS_ESTALE, "a change committed but the index could not be "
				"refreshed; call kms_reload");
	return KMS_OK;
}

static void found(struct kms_found *out, const struct ix_group *g, const struct ix_key *key)
{
	out->key_id = key->id;
	out->alg = g->alg;
	out->group_id = g->id;
}

/* Candidate groups of the search: the smallest size seen so far and the
 * best key among the groups of exactly that size. */
struct search {
	uint32_t size;
	int any_group;
	const struct ix_group *group;
	const struct ix_key *key;
};

static void consider(struct search *s, const struct ix_group *g, int64_t now)
{
	const struct ix_key *key;

	if (s->any_group && g->n_members > s->size)
		return;
	if (!s->any_group || g->n_members < s->size) {
		s->any_group = 1;
		s->size = g->n_members;
		s->group = NULL;
		s->key = NULL;
	}
	key = group_best(g, now);
	if (key && (!s->key || kms_key_better(kms_alg_rank(g->alg), key,
					      kms_alg_rank(s->group->alg), s->key))) {
		s->group = g;
		s->key = key;
	}
}

static int in_all(struct ix_user *const *u, size_t n, uint32_t gid)
{
	for (size_t i = 0; i < n; i++)
		if (!bsearch_u32(u[i]->groups, u[i]->n, gid))
			return 0;
	return 1;
}

/* Intersect from the user with the fewest groups. */
static void search_groups(struct kms *k, struct ix_user *const *u, size_t n, struct search *s,
			  int64_t now)
{
	size_t pivot = 0;

	for (size_t i = 1; i < n; i++)
		if (u[i]->n < u[pivot]->n)
			pivot = i;
	for (uint32_t j = 0; j < u[pivot]->n; j++) {
		uint32_t gid = u[pivot]->groups[j];
		const struct ix_group *g = kms_ix_group(k, gid);

		if (!g || (s->any_group && g->n_members > s->size))
			continue;
		if (in_all(u, n, gid))
			consider(s, g, now);
	}
}

static int find_for_users(struct kms *k, const uint32_t *users, size_t n, struct kms_found *out)
{
	struct ix_user *stack_u[8] = { 0 };
	struct ix_user **u = stack_u;
	struct search s = { 0 };
	int rc = KMS_OK;

	if (n > 8) {
		u = malloc(n * sizeof(*u));
		if (!u)
			return kms_fail(k, KMS_ENOMEM, "find key");
	}
	for (size_t i = 0; i < n && !rc; i++) {
		u[i] = kms_ix_user(k, users[i]);
		/* A user's KMS knows only the users it shares a group with:
		 * anyone else shares no group, hence no key. */
		if (!u[i])
			rc = k->role == KMS_ROLE_USER
				     ? kms_fail(k, KMS_ENOKEY, "user %u shares no group with you", users[i])
				     : kms_fail(k, KMS_ENOUSER, "user %u", users[i]);
	}
	if (!rc) {
		search_groups(k, u, n, &s, kms_now(k));
		if (!s.any_group)
			rc = kms_fail(k, KMS_ENOKEY, "no group includes all %zu users", n);
		else if (!s.key)
			rc = kms_fail(k, KMS_ENOKEY, "the smallest group including all %zu users "
				      "(%u members) has no active key", n, s.size);
		else
			found(out, s.group, s.key);
	}
	if (u != stack_u)
		free(u);
	return rc;
}

int kms_find_key_v3(struct kms *k, const uint32_t *users, size_t n, struct kms_found *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!users || n == 0 || n > FIND_USERS_MAX)
		return kms_fail(k, KMS_EINVAL, "find key needs 1..%d users", FIND_USERS_MAX);
	rc = index_ready(k);
	return rc ? rc : find_for_users(k, users, n, out);
}

int kms_find_key_v1(struct kms *k, uint32_t user_a, uint32_t user_b, struct kms_found *out)
{
	const uint32_t pair[2] = { user_a, user_b };

	return kms_find_key_v3(k, pair, 2, out);
}

int kms_find_key_v2(struct kms *k, uint32_t user_id, uint32_t group_id, struct kms_found *out)
{
	const struct ix_user *u;
	int rc = index_ready(k);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	u = kms_ix_user(k, user_id);
	if (!u)
		return kms_fail(k, KMS_ENOUSER, "user %u", user_id);
	if (!kms_ix_group(k, group_id))
		return kms_fail(k, KMS_ENOGROUP, "group %u", group_id);
	if (!bsearch_u32(u->groups, u->n, group_id))
		return kms_fail(k, KMS_ENOTMEMBER, "user %u is not in group %u", user_id, group_id);
	return kms_find_key_group(k, group_id, out);
}

int kms_find_key_group(struct kms *k, uint32_t group_id, struct kms_found *out)
{
	const struct ix_group *g;
	const struct ix_key *key;
	int rc = index_ready(k);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	g = kms_ix_group(k, group_id);
	if (!g)
		return kms_fail(k, KMS_ENOGROUP, "group %u", group_id);
	key = group_best(g, kms_now(k));
	if (!key)
		return kms_fail(k, KMS_ENOKEY, "group %u has no active key", group_id);
	found(out, g, key);
	return KMS_OK;
}
