/*
 * groups.c - groups and their security policies (thesis 4.2.3, 4.2.4):
 * add, delete (members leave, keys deactivated), policy changes (the
 * algorithm is immutable), members in and out (removal rotates the group's
 * key when the policy says so: BRIEF section 5), info, lookup, lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CRYPTOPERIOD_MAX (100ll * 366 * 24 * 3600)

void kms_policy_default(struct kms_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->alg = WIRE_ALG_AES256_GCM;
	p->max_keys = 16;
	p->cryptoperiod = 365ll * 24 * 3600;
	p->rotate_on_remove = 1;
}

static int check_policy(struct kms *k, const struct kms_policy *p)
{
	if (!p)
		return kms_fail(k, KMS_EINVAL, "policy missing");
	if (p->alg != WIRE_ALG_AES256_GCM && p->alg != WIRE_ALG_AES256_CTR_HMAC)
		return kms_fail(k, KMS_EINVAL, "policy algorithm %u: AES-256-GCM (%d) or "
				"AES-256-CTR+HMAC (%d)", p->alg, WIRE_ALG_AES256_GCM,
				WIRE_ALG_AES256_CTR_HMAC);
	if (p->max_keys < 1 || p->max_keys > KMS_MAX_KEYS_LIMIT)
		return kms_fail(k, KMS_EINVAL, "policy max keys %u: 1..%u", p->max_keys,
				KMS_MAX_KEYS_LIMIT);
	if (p->cryptoperiod <= 0 || p->cryptoperiod > CRYPTOPERIOD_MAX)
		return kms_fail(k, KMS_EINVAL, "policy cryptoperiod %lld s: 1..%lld",
				(long long)p->cryptoperiod, CRYPTOPERIOD_MAX);
	if (p->rotate_on_remove != 0 && p->rotate_on_remove != 1)
		return kms_fail(k, KMS_EINVAL, "policy rotate_on_remove must be 0 or 1");
	return KMS_OK;
}

static void group_from_row(sqlite3_stmt *st, struct kms_group *g)
{
	const unsigned char *name = sqlite3_column_text(st, 1);

	memset(g, 0, sizeof(*g));
	g->id = (uint32_t)sqlite3_column_int64(st, 0);
	snprintf(g->name, sizeof(g->name), "%s", name ? (const char *)name : "");
	g->policy.alg = (uint8_t)sqlite3_column_int(st, 2);
	g->policy.max_keys = (uint32_t)sqlite3_column_int64(st, 3);
	g->policy.cryptoperiod = sqlite3_column_int64(st, 4);
	g->policy.rotate_on_remove = sqlite3_column_int(st, 5);
	g->created = sqlite3_column_int64(st, 6);
	g->n_members = (uint32_t)sqlite3_column_int64(st, 7);
	g->n_keys = (uint32_t)sqlite3_column_int64(st, 8);
}

/* group_from_row for kms_collect */
static void group_row(sqlite3_stmt *st, void *rec)
{
	group_from_row(st, rec);
}

int kms_group_load(struct kms *k, uint32_t group_id, struct kms_group *g)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_GROUP_GET, &st, KMS_ENOGROUP, "u", group_id);

	memset(g, 0, sizeof(*g));
	if (rc == KMS_ENOGROUP)
		return kms_fail(k, KMS_ENOGROUP, "group %u", group_id);
	if (rc)
		return rc;
	group_from_row(st, g);
	sqlite3_reset(st);
	return KMS_OK;
}

static int user_exists(struct kms *k, uint32_t user_id)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_USER_GET, &st, KMS_ENOUSER, "u", user_id);

	if (rc == KMS_ENOUSER)
		return kms_fail(k, KMS_ENOUSER, "user %u", user_id);
	if (!rc)
		sqlite3_reset(st);
	return rc;
}

int kms_add_group(struct kms *k, const char *name, const struct kms_policy *p, uint32_t *id)
{
	char detail[160];
	uint32_t gid = 0;
	int rc;

	*id = 0;
	rc = kms_check_name(k, "group name", name, 0);
	if (!rc)
		rc = check_policy(k, p);
	if (rc)
		return rc;
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_next_id(k, "next_group", 1, &gid);
	if (!rc)
		rc = kms_run(k, ST_GROUP_INSERT, "utiiiii", gid, name, (int64_t)p->alg,
			     (int64_t)p->max_keys, p->cryptoperiod, (int64_t)p->rotate_on_remove,
			     kms_now(k));
	if (rc == KMS_EEXIST)
		rc = kms_fail(k, KMS_EEXIST, "a group is already named %s", name);
	snprintf(detail, sizeof(detail), "group %u %s alg %u max %u cryptoperiod %lld rotate %d",
		 gid, name, p->alg, p->max_keys, (long long)p->cryptoperiod, p->rotate_on_remove);
	rc = kms_change_end(k, rc, "add_group", detail);
	if (rc)
		return rc;
	kms_ix_after(k, NULL, 0, &gid, 1);
	*id = gid;
	return KMS_OK;
}

/* A deleted group's keys: active/suspended -> deactivated; pre-active
 * (never used for any data) -> destroyed; the rest stay as they are. */
static int retire_group_keys(struct kms *k, uint32_t group_id)
{
	uint32_t *ids;
	size_t n;
	int64_t now = kms_now(k);
	int rc = kms_ids(k, ST_KEY_OF_GROUP, &ids, &n, "u", group_id);

	for (size_t i = 0; !rc && i < n; i++) {
		struct kms_key key;

		rc = kms_key_load(k, ids[i], &key);
		if (rc)
			break;
		if (key.state == KMS_KEY_ACTIVE || key.state == KMS_KEY_SUSPENDED)
			rc = kms_key_move(k, &key, KMS_KEY_DEACTIVATED, now);
		else if (key.state == KMS_KEY_PREACTIVE)
			rc = kms_key_move(k, &key, KMS_KEY_DESTROYED, now);
	}
	free(ids);
	return rc;
}

int kms_delete_group(struct kms *k, uint32_t group_id)
{
	char detail[96];
	struct kms_group g;
	uint32_t *members = NULL;
	size_t n = 0;
	int rc;

	snprintf(detail, sizeof(detail), "group %u", group_id);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_group_load(k, group_id, &g);
	if (!rc) {
		snprintf(detail, sizeof(detail), "group %u %s", group_id, g.name);
		rc = kms_ids(k, ST_GROUP_MEMBERS, &members, &n, "u", group_id);
	}
	for (size_t i = 0; !rc && i < n; i++)
		rc = kms_track_depart(k, members[i], group_id);
	if (!rc)
		rc = kms_run(k, ST_MEMBER_DELETE_GROUP, "u", group_id);
	if (!rc)
		rc = retire_group_keys(k, group_id);
	if (!rc)
		rc = kms_run(k, ST_GROUP_DELETE, "u", group_id);
	rc = kms_change_end(k, rc, "delete_group", detail);
	if (!rc)
		kms_ix_after(k, members, n, &group_id, 1);
	free(members);
	return rc;
}

int kms_group_set_policy(struct kms *k, uint32_t group_id, const struct kms_policy *p)
{
	char detail[128];
	struct kms_group g;
	int rc = check_policy(k, p);

	if (rc)
		return rc;
	snprintf(detail, sizeof(detail), "group %u max %u cryptoperiod %lld rotate %d", group_id,
		 p->max_keys, (long long)p->cryptoperiod, p->rotate_on_remove);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_group_load(k, group_id, &g);
	if (!rc && g.policy.alg != p->alg)
		rc = kms_fail(k, KMS_EIMMUTABLE, "group %u uses algorithm %u; create a new group "
				"for algorithm %u", group_id, g.policy.alg, p->alg);
	if (!rc)
		rc = kms_run(k, ST_GROUP_SET_POLICY, "uiii", group_id, (int64_t)p->max_keys,
			     p->cryptoperiod, (int64_t)p->rotate_on_remove);
	if (!rc)
		rc = kms_track_group(k, group_id);
	return kms_change_end(k, rc, "set_policy", detail);
}

int kms_add_member(struct kms *k, uint32_t user_id, uint32_t group_id)
{
	char detail[64];
	struct kms_group g;
	int rc;

	snprintf(detail, sizeof(detail), "user %u group %u", user_id, group_id);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = user_exists(k, user_id);
	if (!rc)
		rc = kms_group_load(k, group_id, &g);
	if (!rc)
		rc = kms_run(k, ST_MEMBER_INSERT, "uu", user_id, group_id);
	if (rc == KMS_EEXIST)
		rc = kms_fail(k, KMS_EEXIST, "user %u is already in group %u", user_id, group_id);
	if (!rc)
		rc = kms_track_join(k, user_id, group_id);
	if (!rc)
		rc = kms_track_group(k, group_id);
	rc = kms_change_end(k, rc, "add_member", detail);
	if (!rc)
		kms_ix_after(k, &user_id, 1, &group_id, 1);
	return rc;
}

/* The rotation: a new active key first (it needs room under max_keys),
 * then every active or suspended key of the group is deactivated. */
static int rotate_group_key(struct kms *k, const struct kms_group *g)
{
	struct kms_key key, fresh;
	uint32_t *ids, new_id = 0;
	size_t n;
	int64_t now = kms_now(k), cp = 0;
	int any_active = 0;
	int rc = kms_ids(k, ST_KEY_ACTIVE_OF_GROUP, &ids, &n, "u", g->id);

	for (size_t i = 0; !rc && i < n; i++) {
		rc = kms_key_load(k, ids[i], &key);
		if (!rc && (!any_active || key.cryptoperiod < cp))
			cp = key.cryptoperiod;
		any_active = 1;
	}
	free(ids);
	if (!rc && any_active) {
		rc = kms_key_create(k, g, "rotation", cp, &new_id);
		if (!rc)
			rc = kms_key_load(k, new_id, &fresh);
		if (!rc)
			rc = kms_key_move(k, &fresh, KMS_KEY_ACTIVE, now);
	}
	if (!rc)
		rc = kms_ids(k, ST_KEY_OF_GROUP, &ids, &n, "u", g->id);
	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < n; i++) {
		if (ids[i] == new_id)
			continue;
		rc = kms_key_load(k, ids[i], &key);
		if (!rc && (key.state == KMS_KEY_ACTIVE || key.state == KMS_KEY_SUSPENDED))
			rc = kms_key_move(k, &key, KMS_KEY_DEACTIVATED, now);
	}
	free(ids);
	return rc;
}

int kms_member_drop(struct kms *k, uint32_t user_id, uint32_t group_id)
{
	struct kms_group g;
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_MEMBER_IS, &st, KMS_ENOTMEMBER, "uu", user_id, group_id);

	if (rc == KMS_ENOTMEMBER)
		return kms_fail(k, KMS_ENOTMEMBER, "user %u is not in group %u", user_id, group_id);
	if (rc)
		return rc;
	sqlite3_reset(st);
	rc = kms_run(k, ST_MEMBER_DELETE, "uu", user_id, group_id);
	if (!rc)
		rc = kms_track_depart(k, user_id, group_id);
	if (!rc)
		rc = kms_track_group(k, group_id);
	if (!rc)
		rc = kms_group_load(k, group_id, &g);
	if (!rc && g.policy.rotate_on_remove)
		rc = rotate_group_key(k, &g);
	return rc;
}

int kms_remove_member(struct kms *k, uint32_t user_id, uint32_t group_id)
{
	char detail[64];
	struct kms_group g;
	int rc;

	snprintf(detail, sizeof(detail), "user %u group %u", user_id, group_id);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = user_exists(k, user_id);
	if (!rc)
		rc = kms_group_load(k, group_id, &g);
	if (!rc)
		rc = kms_member_drop(k, user_id, group_id);
	rc = kms_change_end(k, rc, "remove_member", detail);
	if (!rc)
		kms_ix_after(k, &user_id, 1, &group_id, 1);
	return rc;
}

int kms_group_info(struct kms *k, uint32_t group_id, struct kms_group *out)
{
	return kms_group_load(k, group_id, out);
}

int kms_group_by_name(struct kms *k, const char *name, uint32_t *id)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	if (!name)
		return kms_fail(k, KMS_EINVAL, "group name missing");
	rc = kms_row(k, ST_GROUP_BY_NAME, &st, KMS_ENOGROUP, "t", name);
	if (rc == KMS_ENOGROUP)
		return kms_fail(k, KMS_ENOGROUP, "no group is named %.*s", KMS_NAME_MAX, name);
	if (rc)
		return rc;
	*id = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_group_list(struct kms *k, struct kms_group **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, ST_GROUP_ALL, &st);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	return kms_collect(k, st, sizeof(**out), group_row, "group list", (void **)out, n);
}

int kms_group_members(struct kms *k, uint32_t group_id, uint32_t **ids, size_t *n)
{
	struct kms_group g;
	int rc;

	*ids = NULL;
	*n = 0;
	rc = kms_group_load(k, group_id, &g);
	return rc ? rc : kms_ids(k, ST_GROUP_MEMBERS, ids, n, "u", group_id);
}
