/*
 * keys.c - keys as records (thesis 4.2.1 attributes): creation in the
 * owner group under its policy (max keys, algorithm, cryptoperiod min
 * rule), generation in the admin cube, info and lists.  State changes are
 * in lifecycle.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void key_from_row(sqlite3_stmt *st, struct kms_key *key)
{
	const unsigned char *label = sqlite3_column_text(st, 1);

	memset(key, 0, sizeof(*key));
	key->id = (uint32_t)sqlite3_column_int64(st, 0);
	snprintf(key->label, sizeof(key->label), "%s", label ? (const char *)label : "");
	key->alg = (uint8_t)sqlite3_column_int(st, 2);
	key->length = (uint16_t)sqlite3_column_int(st, 3);
	key->group_id = (uint32_t)sqlite3_column_int64(st, 4);
	key->state = (enum kms_key_state)sqlite3_column_int(st, 5);
	key->cryptoperiod = sqlite3_column_int64(st, 6);
	key->type = (enum kms_key_type)sqlite3_column_int(st, 7);
	key->generated = sqlite3_column_int64(st, 8);
	key->activated = sqlite3_column_int64(st, 9);
	key->expires = sqlite3_column_int64(st, 10);
	key->suspended = sqlite3_column_int64(st, 11);
	key->deactivated = sqlite3_column_int64(st, 12);
	key->compromised = sqlite3_column_int64(st, 13);
	key->destroyed = sqlite3_column_int64(st, 14);
}

/* key_from_row for kms_collect */
static void key_row(sqlite3_stmt *st, void *rec)
{
	key_from_row(st, rec);
}

int kms_key_load(struct kms *k, uint32_t key_id, struct kms_key *key)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_KEY_GET, &st, KMS_ENOSUCHKEY, "u", key_id);

	memset(key, 0, sizeof(*key));
	if (rc == KMS_ENOSUCHKEY)
		return kms_fail(k, KMS_ENOSUCHKEY, "key %u", key_id);
	if (rc)
		return rc;
	key_from_row(st, key);
	sqlite3_reset(st);
	if (key->state < KMS_KEY_PREACTIVE || key->state > KMS_KEY_DESTROYED)
		return kms_fail(k, KMS_ESCHEMA, "key %u has state %d", key_id, (int)key->state);
	return KMS_OK;
}

static uint16_t alg_bits(uint8_t alg)
{
	return alg == WIRE_ALG_AES128_GCM ? 128 : 256;
}

int kms_key_create(struct kms *k, const struct kms_group *g, const char *label,
		   int64_t cryptoperiod, uint32_t *id)
{
	int64_t n_keys, now = kms_now(k);
	int64_t cp = g->policy.cryptoperiod;
	uint32_t kid;
	int rc = kms_count(k, ST_GROUP_NKEYS, &n_keys, "u", g->id);

	*id = 0;
	if (rc)
		return rc;
	if (n_keys >= g->policy.max_keys)
		return kms_fail(k, KMS_EMAXKEYS, "group %u owns %lld keys, its policy allows %u "
				"(destroy old keys or raise max keys)", g->id, (long long)n_keys,
				g->policy.max_keys);
	if (cryptoperiod > 0 && cryptoperiod < cp)
		cp = cryptoperiod; /* the shorter of the key's and the policy's */
	/* A change killed after the cube generated its key, before the
	 * database committed, leaves that key in the cube under an ID the
	 * database hands out again: skip such IDs (the leftover may already
	 * have reached a user through an update of the same change). */
	for (int tries = 0, has = 1; has; tries++) {
		rc = kms_next_id(k, "next_key", KMS_KEY_ID_FIRST, &kid);
		if (!rc)
			rc = kms_cube_has_key(k, kid, &has);
		if (rc)
			return rc;
		if (has && tries == 64)
			return kms_fail(k, KMS_ECUBE, "the admin cube already holds keys %u.. that "
					"the database does not know", kid - 64);
	}
	if (!rc)
		rc = kms_run(k, ST_KEY_INSERT, "utiiuiiiiiiiiii", kid, label, (int64_t)g->policy.alg,
			     (int64_t)alg_bits(g->policy.alg), g->id, (int64_t)KMS_KEY_PREACTIVE, cp,
			     (int64_t)KMS_KEY_TYPE_DATA, now, (int64_t)0, (int64_t)0, (int64_t)0,
			     (int64_t)0, (int64_t)0, (int64_t)0);
	if (!rc)
		rc = kms_cube_generate(k, kid, g->policy.alg);
	if (!rc)
		rc = kms_track_key(k, kid);
	if (!rc)
		*id = kid;
	return rc;
}

int kms_add_key(struct kms *k, uint32_t group_id, const char *label, int64_t cryptoperiod,
		uint32_t *id)
{
	char detail[160];
	struct kms_group g;
	uint32_t kid = 0;
	int rc;

	*id = 0;
	rc = kms_check_name(k, "key label", label, 1);
	if (rc)
		return rc;
	if (cryptoperiod < 0)
		return kms_fail(k, KMS_EINVAL, "cryptoperiod %lld s", (long long)cryptoperiod);
	snprintf(detail, sizeof(detail), "group %u label %s cryptoperiod %lld", group_id, label,
		 (long long)cryptoperiod);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_group_load(k, group_id, &g);
	if (!rc)
		rc = kms_key_create(k, &g, label, cryptoperiod, &kid);
	if (!rc)
		snprintf(detail, sizeof(detail), "key %u group %u label %s", kid, group_id, label);
	rc = kms_change_end(k, rc, "add_key", detail);
	if (rc)
		return rc;
	*id = kid;
	return KMS_OK;
}

int kms_key_info(struct kms *k, uint32_t key_id, struct kms_key *out)
{
	return kms_key_load(k, key_id, out);
}

int kms_key_list(struct kms *k, uint32_t group_id, struct kms_key **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, group_id ? ST_KEY_OF_GROUP : ST_KEY_ALL, &st);

	*out = NULL;
	*n = 0;
	if (!rc && group_id && (rc = kms_bind(k, st, "u", group_id)) != 0)
		sqlite3_reset(st);
	if (rc)
		return rc;
	return kms_collect(k, st, sizeof(**out), key_row, "key list", (void **)out, n);
}
