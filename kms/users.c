/*
 * users.c - users of the KMS (thesis 4.2.2): add, device attributes,
 * delete (leaving every group, with key rotation per group policy), info,
 * lookup by name, list, their groups.  Also the name rules shared with
 * groups and key labels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int kms_check_name(struct kms *k, const char *what, const char *name, int is_label)
{
	size_t len;

	if (!name)
		return kms_fail(k, KMS_EINVAL, "%s missing", what);
	len = strlen(name);
	if ((!is_label && len == 0) || len > KMS_NAME_MAX)
		return kms_fail(k, KMS_EINVAL, "%s must be %d..%d bytes", what, is_label ? 0 : 1,
				KMS_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f)
			return kms_fail(k, KMS_EINVAL, "%s has a control character", what);
		/* Names are listed as files and in comma-separated recipient lists. */
		if (!is_label && (c == ',' || c == '/'))
			return kms_fail(k, KMS_EINVAL, "%s may not contain ',' or '/'", what);
	}
	if (!is_label && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
		return kms_fail(k, KMS_EINVAL, "%s may not be '.' or '..'", what);
	return KMS_OK;
}

static void copy_col_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, t, n);
	dst[n] = '\0';
}

static void user_from_row(sqlite3_stmt *st, struct kms_user *u)
{
	const void *serial = sqlite3_column_blob(st, 2);

	memset(u, 0, sizeof(*u));
	u->id = (uint32_t)sqlite3_column_int64(st, 0);
	copy_col_text(u->name, sizeof(u->name), st, 1);
	if (serial && sqlite3_column_bytes(st, 2) == WIRE_SERIAL_LEN)
		memcpy(u->serial, serial, WIRE_SERIAL_LEN);
	u->update_key_id = (uint32_t)sqlite3_column_int64(st, 3);
	u->kwk_id = (uint32_t)sqlite3_column_int64(st, 4);
	u->created = sqlite3_column_int64(st, 5);
	u->n_groups = (uint32_t)sqlite3_column_int64(st, 6);
}

/* user_from_row for kms_collect */
static void user_row(sqlite3_stmt *st, void *rec)
{
	user_from_row(st, rec);
}

int kms_add_user(struct kms *k, const char *name, const uint8_t *serial, uint32_t *id)
{
	char detail[128];
	uint32_t uid = 0;
	int rc;

	*id = 0;
	rc = kms_check_name(k, "user name", name, 0);
	if (rc)
		return rc;
	snprintf(detail, sizeof(detail), "user %s", name);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_next_id(k, "next_user", 1, &uid);
	if (!rc)
		rc = kms_run(k, ST_USER_INSERT, "utbi", uid, name, (const void *)serial,
			     (size_t)(serial ? WIRE_SERIAL_LEN : 0), kms_now(k));
	if (rc == KMS_EEXIST)
		rc = kms_fail(k, KMS_EEXIST, "a user is already named %s", name);
	if (!rc)
		snprintf(detail, sizeof(detail), "user %u %s", uid, name);
	rc = kms_change_end(k, rc, "add_user", detail);
	if (rc)
		return rc;
	kms_ix_after(k, &uid, 1, NULL, 0);
	*id = uid;
	return KMS_OK;
}

int kms_user_set_device(struct kms *k, uint32_t user_id, const uint8_t serial[WIRE_SERIAL_LEN],
			uint32_t update_key_id, uint32_t kwk_id)
{
	char detail[96];
	int rc;

	if (!serial)
		return kms_fail(k, KMS_EINVAL, "serial missing");
	snprintf(detail, sizeof(detail), "user %u update key %u kwk %u", user_id, update_key_id,
		 kwk_id);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_run(k, ST_USER_SET_DEVICE, "ubuu", user_id, (const void *)serial,
		     (size_t)WIRE_SERIAL_LEN, update_key_id, kwk_id);
	if (!rc && sqlite3_changes(k->db) == 0)
		rc = kms_fail(k, KMS_ENOUSER, "user %u", user_id);
	return kms_change_end(k, rc, "user_set_device", detail);
}

int kms_delete_user(struct kms *k, uint32_t user_id)
{
	char detail[64];
	sqlite3_stmt *st;
	uint32_t *gids = NULL;
	size_t n = 0;
	int rc;

	snprintf(detail, sizeof(detail), "user %u", user_id);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_row(k, ST_USER_GET, &st, KMS_ENOUSER, "u", user_id);
	if (rc == KMS_ENOUSER)
		rc = kms_fail(k, KMS_ENOUSER, "user %u", user_id);
	else if (!rc) {
		snprintf(detail, sizeof(detail), "user %u %s", user_id,
			 (const char *)sqlite3_column_text(st, 1));
		sqlite3_reset(st);
		rc = kms_ids(k, ST_USER_GROUPS, &gids, &n, "u", user_id);
	}
	if (!rc) {
		struct kms_user gone;

		rc = kms_user_info(k, user_id, &gone);
		if (!rc)
			rc = kms_track_gone(k, &gone);
	}
	for (size_t i = 0; !rc && i < n; i++)
		rc = kms_member_drop(k, user_id, gids[i]);
	if (!rc)
		rc = kms_run(k, ST_UPD_DELETE_USER, "u", user_id);
	if (!rc)
		rc = kms_run(k, ST_REC_DELETE_USER, "u", user_id);
	if (!rc)
		rc = kms_run(k, ST_USER_DELETE, "u", user_id);
	rc = kms_change_end(k, rc, "delete_user", detail);
	if (!rc)
		kms_ix_after(k, &user_id, 1, gids, n);
	free(gids);
	return rc;
}

int kms_user_info(struct kms *k, uint32_t user_id, struct kms_user *out)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_USER_GET, &st, KMS_ENOUSER, "u", user_id);

	memset(out, 0, sizeof(*out));
	if (rc == KMS_ENOUSER)
		return kms_fail(k, KMS_ENOUSER, "user %u", user_id);
	if (rc)
		return rc;
	user_from_row(st, out);
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_user_by_name(struct kms *k, const char *name, uint32_t *id)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	if (!name)
		return kms_fail(k, KMS_EINVAL, "user name missing");
	rc = kms_row(k, ST_USER_BY_NAME, &st, KMS_ENOUSER, "t", name);
	if (rc == KMS_ENOUSER)
		return kms_fail(k, KMS_ENOUSER, "no user is named %.*s", KMS_NAME_MAX, name);
	if (rc)
		return rc;
	*id = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_user_list(struct kms *k, struct kms_user **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, ST_USER_ALL, &st);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	return kms_collect(k, st, sizeof(**out), user_row, "user list", (void **)out, n);
}

int kms_user_groups(struct kms *k, uint32_t user_id, uint32_t **ids, size_t *n)
{
	struct kms_user u;
	int rc;

	*ids = NULL;
	*n = 0;
	rc = kms_user_info(k, user_id, &u);
	return rc ? rc : kms_ids(k, ST_USER_GROUPS, ids, n, "u", user_id);
}
