/*
 * index.c - the in-memory index find_key answers from (docs/KMS.md):
 *   user ID  -> its groups, sorted ascending
 *   group ID -> algorithm, member count, active keys and the best of them
 * Built from the database on open, refreshed from the database for every
 * user and group a committed change touched.  Two ID -> entry hash maps
 * (open addressing, linear probing, backward-shift deletion).
 *
 * Sections: hash map; entries; refresh; rebuild.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- hash map ---- */

static uint32_t slot_of(uint32_t id, uint32_t cap)
{
	uint32_t h = id * 2654435761u;

	return (h ^ (h >> 15)) & (cap - 1);
}

static void *idmap_get(const struct idmap *m, uint32_t id)
{
	if (m->cap == 0 || id == 0)
		return NULL;
	for (uint32_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->ids[i] == id)
			return m->vals[i];
		if (m->ids[i] == 0)
			return NULL;
	}
}

static void idmap_place(struct idmap *m, uint32_t id, void *val)
{
	uint32_t i = slot_of(id, m->cap);

	while (m->ids[i] != 0 && m->ids[i] != id)
		i = (i + 1) & (m->cap - 1);
	if (m->ids[i] == 0)
		m->n++;
	m->ids[i] = id;
	m->vals[i] = val;
}

static int idmap_grow(struct idmap *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 64;
	struct idmap nm = { calloc(cap, sizeof(uint32_t)), calloc(cap, sizeof(void *)), cap, 0 };

	if (!nm.ids || !nm.vals || cap < m->cap) {
		free(nm.ids);
		free(nm.vals);
		return -1;
	}
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->ids[i])
			idmap_place(&nm, m->ids[i], m->vals[i]);
	free(m->ids);
	free(m->vals);
	*m = nm;
	return 0;
}

static int idmap_put(struct idmap *m, uint32_t id, void *val)
{
	if ((uint64_t)(m->n + 1) * 4 > (uint64_t)m->cap * 3 && idmap_grow(m))
		return -1;
	idmap_place(m, id, val);
	return 0;
}

static void idmap_del(struct idmap *m, uint32_t id)
{
	uint32_t i, j, mask = m->cap - 1;

	if (m->cap == 0)
		return;
	for (i = slot_of(id, m->cap); m->ids[i] != id; i = (i + 1) & mask)
		if (m->ids[i] == 0)
			return;
	/* Backward shift: move later entries of the cluster into the hole
	 * when their home slot does not lie cyclically in (hole, j]. */
	for (j = (i + 1) & mask; m->ids[j] != 0; j = (j + 1) & mask) {
		uint32_t home = slot_of(m->ids[j], m->cap);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->ids[i] = m->ids[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->ids[i] = 0;
	m->vals[i] = NULL;
	m->n--;
}

/* ---- entries ---- */

static void user_free(void *p)
{
	struct ix_user *u = p;

	if (u)
		free(u->groups);
	free(u);
}

static void group_free(void *p)
{
	struct ix_group *g = p;

	if (g)
		free(g->active);
	free(g);
}

static void idmap_free(struct idmap *m, void (*fr)(void *))
{
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->ids[i])
			fr(m->vals[i]);
	free(m->ids);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

struct ix_user *kms_ix_user(const struct kms *k, uint32_t id)
{
	return idmap_get(&k->users, id);
}

struct ix_group *kms_ix_group(const struct kms *k, uint32_t id)
{
	return idmap_get(&k->groups, id);
}

int kms_alg_rank(uint8_t alg)
{
	switch (alg) {
	case WIRE_ALG_AES256_GCM: return 3;      /* 256-bit AEAD */
	case WIRE_ALG_AES256_CTR_HMAC: return 2; /* 256-bit, encrypt-then-MAC */
	case WIRE_ALG_AES128_GCM: return 1;
	default: return 0;
	}
}

int kms_key_better(int ra, const struct ix_key *a, int rb, const struct ix_key *b)
{
	if (ra != rb)
		return ra > rb;
	if (a->cryptoperiod != b->cryptoperiod)
		return a->cryptoperiod < b->cryptoperiod;
	return a->id < b->id;
}

static void group_pick_best(struct ix_group *g)
{
	int rank = kms_alg_rank(g->alg);

	g->best = -1;
	for (uint32_t i = 0; i < g->n_active; i++)
		if (g->best < 0 || kms_key_better(rank, &g->active[i], rank, &g->active[g->best]))
			g->best = (int32_t)i;
}

static int group_add_active(struct ix_group *g, const struct ix_key *key)
{
	if (g->n_active == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 4;
		struct ix_key *nv = realloc(g->active, cap * sizeof(*nv));

		if (!nv)
			return -1;
		g->active = nv;
		g->cap = cap;
	}
	g->active[g->n_active++] = *key;
	return 0;
}

static int user_add_group(struct ix_user *u, uint32_t gid)
{
	if (u->n == u->cap) {
		uint32_t cap = u->cap ? u->cap * 2 : 4;
		uint32_t *nv = realloc(u->groups, cap * sizeof(*nv));

		if (!nv)
			return -1;
		u->groups = nv;
		u->cap = cap;
	}
	u->groups[u->n++] = gid;
	return 0;
}

/* The entry for id in m, created empty if absent. */
static void *entry_get_or_new(struct idmap *m, uint32_t id, size_t size)
{
	uint32_t *idp;
	void *e = idmap_get(m, id);

	if (e)
		return e;
	e = calloc(1, size);
	if (!e)
		return NULL;
	idp = e; /* both entry structs start with their uint32_t id */
	*idp = id;
	if (idmap_put(m, id, e)) {
		free(e);
		return NULL;
	}
	return e;
}

/* ---- refresh ---- */

int kms_ix_user_refresh(struct kms *k, uint32_t user_id)
{
	struct ix_user *u;
	sqlite3_stmt *st;
	uint32_t *ids;
	size_t n;
	int rc = kms_row(k, ST_USER_GET, &st, KMS_ENOUSER, "u", user_id);

	if (rc == KMS_ENOUSER) {
		user_free(idmap_get(&k->users, user_id));
		idmap_del(&k->users, user_id);
		return KMS_OK;
	}
	if (rc)
		return rc;
	sqlite3_reset(st);
	rc = kms_ids(k, ST_USER_GROUPS, &ids, &n, "u", user_id);
	if (rc)
		return rc;
	u = entry_get_or_new(&k->users, user_id, sizeof(*u));
	if (!u) {
		free(ids);
		return kms_fail(k, KMS_ENOMEM, "index user");
	}
	free(u->groups);
	u->groups = ids;
	u->n = u->cap = (uint32_t)n;
	return KMS_OK;
}

int kms_ix_group_refresh(struct kms *k, uint32_t group_id)
{
	struct ix_group *g;
	sqlite3_stmt *st;
	uint8_t alg;
	uint32_t n_members;
	int rc = kms_row(k, ST_GROUP_GET, &st, KMS_ENOGROUP, "u", group_id);
	int step = SQLITE_DONE;

	if (rc == KMS_ENOGROUP) {
		group_free(idmap_get(&k->groups, group_id));
		idmap_del(&k->groups, group_id);
		return KMS_OK;
	}
	if (rc)
		return rc;
	alg = (uint8_t)sqlite3_column_int(st, 2);
	n_members = (uint32_t)sqlite3_column_int64(st, 7);
	sqlite3_reset(st);
	g = entry_get_or_new(&k->groups, group_id, sizeof(*g));
	if (!g)
		return kms_fail(k, KMS_ENOMEM, "index group");
	g->alg = alg;
	g->n_members = n_members;
	g->n_active = 0;
	g->best = -1;
	rc = kms_stmt(k, ST_KEY_ACTIVE_OF_GROUP, &st);
	if (!rc)
		rc = kms_bind(k, st, "u", group_id);
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct ix_key key = { (uint32_t)sqlite3_column_int64(st, 0),
				      sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2) };

		if (group_add_active(g, &key))
			rc = kms_fail(k, KMS_ENOMEM, "index keys");
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, "index keys");
	if (st)
		sqlite3_reset(st);
	group_pick_best(g);
	return rc;
}

void kms_ix_after(struct kms *k, const uint32_t *users, size_t n_users, const uint32_t *groups,
		  size_t n_groups)
{
	char saved[KMS_MSG_MAX];
	int rc = KMS_OK;

	memcpy(saved, k->msg, sizeof(saved));
	for (size_t i = 0; !rc && i < n_users; i++)
		rc = kms_ix_user_refresh(k, users[i]);
	for (size_t i = 0; !rc && i < n_groups; i++)
		rc = kms_ix_group_refresh(k, groups[i]);
	if (rc)
		k->ix_ok = 0; /* the change is committed; queries ask for kms_reload */
	else
		memcpy(k->msg, saved, sizeof(saved));
}

/* ---- rebuild ---- */

void kms_ix_free(struct kms *k)
{
	idmap_free(&k->users, user_free);
	idmap_free(&k->groups, group_free);
	k->ix_ok = 0;
}

static int load_groups(struct kms *k)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, ST_GROUP_ALL, &st);
	int step = SQLITE_DONE;

	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct ix_group *g = entry_get_or_new(&k->groups, (uint32_t)sqlite3_column_int64(st, 0),
						      sizeof(*g));

		if (!g)
			rc = kms_fail(k, KMS_ENOMEM, "index groups");
		else {
			g->alg = (uint8_t)sqlite3_column_int(st, 2);
			g->best = -1;
		}
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, "index groups");
	if (st)
		sqlite3_reset(st);
	return rc;
}

static int load_users(struct kms *k)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, ST_USER_ALL, &st);
	int step = SQLITE_DONE;

	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (!entry_get_or_new(&k->users, (uint32_t)sqlite3_column_int64(st, 0),
				      sizeof(struct ix_user)))
			rc = kms_fail(k, KMS_ENOMEM, "index users");
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, "index users");
	if (st)
		sqlite3_reset(st);
	return rc;
}

/* Memberships come sorted by (user, group), so each list ends sorted. */
static int load_members(struct kms *k)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, ST_MEMBER_ALL, &st);
	int step = SQLITE_DONE;

	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct ix_user *u = idmap_get(&k->users, (uint32_t)sqlite3_column_int64(st, 0));
		struct ix_group *g = idmap_get(&k->groups, (uint32_t)sqlite3_column_int64(st, 1));

		if (!u || !g)
			continue; /* a dangling row names nobody: it cannot widen access */
		if (user_add_group(u, g->id))
			rc = kms_fail(k, KMS_ENOMEM, "index members");
		g->n_members++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, "index members");
	if (st)
		sqlite3_reset(st);
	return rc;
}

static int load_active_keys(struct kms *k)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, ST_KEY_ACTIVE_ALL, &st);
	int step = SQLITE_DONE;

	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct ix_group *g = idmap_get(&k->groups, (uint32_t)sqlite3_column_int64(st, 0));
		struct ix_key key = { (uint32_t)sqlite3_column_int64(st, 1),
				      sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3) };

		if (!g)
			continue; /* owner deleted: its keys were deactivated with it */
		if (group_add_active(g, &key))
			rc = kms_fail(k, KMS_ENOMEM, "index keys");
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, "index keys");
	if (st)
		sqlite3_reset(st);
	return rc;
}

int kms_ix_rebuild(struct kms *k)
{
	int rc;

	kms_ix_free(k);
	rc = load_groups(k);
	if (!rc)
		rc = load_users(k);
	if (!rc)
		rc = load_members(k);
	if (!rc)
		rc = load_active_keys(k);
	if (rc) {
		kms_ix_free(k);
		return rc;
	}
	for (uint32_t i = 0; i < k->groups.cap; i++)
		if (k->groups.ids[i])
			group_pick_best(k->groups.vals[i]);
	k->ix_ok = 1;
	return KMS_OK;
}
