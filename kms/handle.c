/*
 * handle.c - start and stop the KMS (thesis sekey_start/sekey_stop), the
 * administrator's initialisation, the role of a database, reload, clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int check_admin_cube(struct kms *k)
{
	struct cube_info info;
	int rc;

	if (!k->cube || k->role != KMS_ROLE_ADMIN || !k->has_admin_serial)
		return KMS_OK;
	rc = cube_info(k->cube, &info);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "read the cube's serial");
	if (memcmp(info.serial, k->admin_serial, WIRE_SERIAL_LEN) != 0)
		return kms_fail(k, KMS_EPERM, "this cube is not the admin cube of this KMS");
	return KMS_OK;
}

int kms_open(struct kms **out, sqlite3 *db, struct cube *cube, char *err_text, size_t err_cap)
{
	struct kms *k;
	int rc;

	*out = NULL;
	if (err_text && err_cap)
		err_text[0] = '\0';
	if (!db) {
		if (err_text && err_cap)
			snprintf(err_text, err_cap, "kms_open: no database");
		return KMS_EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		if (err_text && err_cap)
			snprintf(err_text, err_cap, "kms_open: out of memory");
		return KMS_ENOMEM;
	}
	k->db = db;
	k->cube = cube;
	k->fail_limit = KMS_UPDATE_FAIL_LIMIT;
	rc = kms_schema_ensure(k);
	if (!rc)
		rc = kms_sync_load_state(k);
	if (!rc)
		rc = check_admin_cube(k);
	if (!rc)
		rc = kms_ix_rebuild(k);
	if (rc) {
		if (err_text && err_cap)
			snprintf(err_text, err_cap, "%s", kms_errmsg(k));
		kms_close(k);
		return rc;
	}
	*out = k;
	return KMS_OK;
}

void kms_close(struct kms *k)
{
	if (!k)
		return;
	kms_ix_free(k);
	kms_stmts_free(k);
	kms_cube_journal_free(k);
	kms_track_free(k);
	free(k->updates_dir);
	free(k);
}

enum kms_role kms_role(const struct kms *k)
{
	return k ? k->role : KMS_ROLE_NONE;
}

void kms_set_clock(struct kms *k, int64_t (*now)(void *arg), void *arg)
{
	k->clock = now;
	k->clock_arg = arg;
}

int kms_reload(struct kms *k)
{
	k->msg[0] = '\0';
	return kms_ix_rebuild(k);
}

int kms_admin_init(struct kms *k)
{
	struct cube_info info;
	int rc;

	memset(&info, 0, sizeof(info));
	k->msg[0] = '\0';
	if (k->role != KMS_ROLE_NONE)
		return kms_fail(k, KMS_EEXIST, "this database is already initialised");
	if (k->cube) {
		rc = cube_info(k->cube, &info);
		if (rc != CUBE_OK)
			return kms_cube_fail(k, rc, "read the admin cube");
		if (info.role != WIRE_ROLE_ADMIN)
			return kms_fail(k, KMS_EPERM, "the cube must be logged in as admin");
	}
	k->role = KMS_ROLE_ADMIN; /* lets the change begin */
	rc = kms_change_begin(k);
	if (!rc)
		rc = kms_meta_put(k, "role", KMS_ROLE_ADMIN, NULL, 0);
	if (!rc && k->cube)
		rc = kms_meta_put(k, "admin_serial", 0, info.serial, WIRE_SERIAL_LEN);
	rc = kms_change_end(k, rc, "admin_init", k->cube ? "with admin cube" : "metadata only");
	if (rc) {
		k->role = KMS_ROLE_NONE;
		return rc;
	}
	if (k->cube) {
		memcpy(k->admin_serial, info.serial, WIRE_SERIAL_LEN);
		k->has_admin_serial = 1;
	}
	return KMS_OK;
}
