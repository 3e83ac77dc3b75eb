/*
 * schema.c - the KMS database schema (created in an empty database,
 * checked in an existing one) and the meta table: schema version, role,
 * ID counters, admin cube serial, audit chain head.
 *
 * Tables (docs/KMS.md has every column): the thesis's Users, Groups, Keys,
 * UserGroup, Recovery; plus Updates and UpdateState for the update
 * distribution, Audit for the hash-chained log, and Meta.
 */
#include <string.h>

#include "internal.h"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS kms_meta("
	" key TEXT PRIMARY KEY, ival INTEGER NOT NULL, bval BLOB);"
	"CREATE TABLE IF NOT EXISTS kms_users("
	" id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, serial BLOB,"
	" update_key_id INTEGER NOT NULL DEFAULT 0, kwk_id INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS kms_groups("
	" id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, alg INTEGER NOT NULL,"
	" max_keys INTEGER NOT NULL, cryptoperiod INTEGER NOT NULL,"
	" rotate_on_remove INTEGER NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS kms_user_group("
	" user_id INTEGER NOT NULL, group_id INTEGER NOT NULL,"
	" PRIMARY KEY(user_id, group_id)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS kms_user_group_by_group ON kms_user_group(group_id, user_id);"
	"CREATE TABLE IF NOT EXISTS kms_keys("
	" id INTEGER PRIMARY KEY, label TEXT NOT NULL, alg INTEGER NOT NULL,"
	" length INTEGER NOT NULL, group_id INTEGER NOT NULL, state INTEGER NOT NULL,"
	" cryptoperiod INTEGER NOT NULL, type INTEGER NOT NULL, generated INTEGER NOT NULL,"
	" activated INTEGER NOT NULL, expires INTEGER NOT NULL, suspended INTEGER NOT NULL,"
	" deactivated INTEGER NOT NULL, compromised INTEGER NOT NULL,"
	" destroyed INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS kms_keys_by_group ON kms_keys(group_id, state);"
	"CREATE INDEX IF NOT EXISTS kms_keys_by_state ON kms_keys(state, expires);"
	"CREATE TABLE IF NOT EXISTS kms_recovery("
	" user_id INTEGER PRIMARY KEY, requested INTEGER NOT NULL, reason TEXT NOT NULL,"
	" issued INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS kms_updates("
	" user_id INTEGER NOT NULL, counter INTEGER NOT NULL, kind INTEGER NOT NULL,"
	" created INTEGER NOT NULL, file TEXT NOT NULL, PRIMARY KEY(user_id, counter));"
	"CREATE TABLE IF NOT EXISTS kms_update_state("
	" user_id INTEGER PRIMARY KEY, next_counter INTEGER NOT NULL,"
	" applied INTEGER NOT NULL, failures INTEGER NOT NULL, locked INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS kms_audit("
	" seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, op TEXT NOT NULL,"
	" result INTEGER NOT NULL, detail TEXT NOT NULL, prev BLOB NOT NULL,"
	" hash BLOB NOT NULL);";

int kms_meta_get(struct kms *k, const char *key, int64_t *ival, void *blob, size_t cap,
		 size_t *blob_len, int *found)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_META_GET, &st, KMS_OK, "t", key);
	int n;

	*ival = 0;
	*found = 0;
	if (blob_len)
		*blob_len = 0;
	if (rc || !st)
		return rc;
	*found = 1;
	*ival = sqlite3_column_int64(st, 0);
	n = sqlite3_column_bytes(st, 1);
	if (blob && n > 0) {
		if ((size_t)n > cap) {
			sqlite3_reset(st);
			return kms_fail(k, KMS_ESCHEMA, "meta %s: %d bytes, at most %zu", key, n, cap);
		}
		memcpy(blob, sqlite3_column_blob(st, 1), (size_t)n);
		*blob_len = (size_t)n;
	}
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_meta_put(struct kms *k, const char *key, int64_t ival, const void *blob, size_t blob_len)
{
	return kms_run(k, ST_META_PUT, "tib", key, ival, blob, blob_len);
}

int kms_next_id(struct kms *k, const char *key, uint32_t first, uint32_t *id)
{
	int64_t v;
	int found;
	int rc = kms_meta_get(k, key, &v, NULL, 0, NULL, &found);

	*id = 0;
	if (rc)
		return rc;
	if (!found || v < first)
		v = first;
	if (v >= (int64_t)UINT32_MAX)
		return kms_fail(k, KMS_EINVAL, "%s: IDs exhausted", key);
	rc = kms_meta_put(k, key, v + 1, NULL, 0);
	if (rc == KMS_OK)
		*id = (uint32_t)v;
	return rc;
}

static int has_meta_table(struct kms *k, int *has)
{
	sqlite3_stmt *st;
	int rc;

	*has = 0;
	if (sqlite3_prepare_v2(k->db, "SELECT 1 FROM sqlite_master WHERE type='table' AND "
				      "name='kms_meta'", -1, &st, NULL) != SQLITE_OK)
		return kms_db_fail(k, "schema check");
	rc = sqlite3_step(st);
	*has = rc == SQLITE_ROW;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return kms_db_fail(k, "schema check");
	return KMS_OK;
}

static int create_schema(struct kms *k)
{
	int rc = kms_exec(k, "SAVEPOINT kms_schema");

	if (rc)
		return rc;
	rc = kms_exec(k, schema_sql);
	if (!rc)
		rc = kms_meta_put(k, "schema_version", KMS_SCHEMA_VERSION, NULL, 0);
	if (!rc)
		rc = kms_meta_put(k, "role", KMS_ROLE_NONE, NULL, 0);
	if (!rc)
		rc = kms_exec(k, "RELEASE kms_schema");
	if (rc) {
		sqlite3_exec(k->db, "ROLLBACK TO kms_schema", NULL, NULL, NULL);
		sqlite3_exec(k->db, "RELEASE kms_schema", NULL, NULL, NULL);
	}
	return rc;
}

int kms_schema_ensure(struct kms *k)
{
	int64_t v;
	int found, has;
	size_t len;
	int rc = has_meta_table(k, &has);

	if (rc)
		return rc;
	if (!has) {
		rc = create_schema(k);
		if (rc)
			return rc;
	}
	rc = kms_meta_get(k, "schema_version", &v, NULL, 0, NULL, &found);
	if (rc)
		return rc;
	if (!found || v != KMS_SCHEMA_VERSION)
		return kms_fail(k, KMS_ESCHEMA, "schema version %lld, this build knows %d",
				(long long)v, KMS_SCHEMA_VERSION);
	rc = kms_meta_get(k, "role", &v, NULL, 0, NULL, &found);
	if (rc)
		return rc;
	if (!found || v < KMS_ROLE_NONE || v > KMS_ROLE_USER)
		return kms_fail(k, KMS_ESCHEMA, "bad role %lld", (long long)v);
	k->role = (enum kms_role)v;
	rc = kms_meta_get(k, "admin_serial", &v, k->admin_serial, sizeof(k->admin_serial), &len,
			  &found);
	if (rc)
		return rc;
	if (found && len != WIRE_SERIAL_LEN)
		return kms_fail(k, KMS_ESCHEMA, "admin serial of %zu bytes", len);
	k->has_admin_serial = found;
	return KMS_OK;
}
