/*
 * robust_sekey_db.c - helper of tests/robust_sekey_crash.sh (compiled by
 * the script, not a Check program): opens a `sekey` KMS database the way
 * the tool does (the cube logged in, the secure database under the cube's
 * DB key, tools/sekey.c db_open), runs PRAGMA integrity_check, and prints
 * one user's view of the KMS in a canonical text form, so the script can
 * compare the admin's database with that user's own.
 *
 *   robust_sekey_db DEVICE PIN_FILE admin|user USER_NAME
 *
 * Output lines (sorted within each kind):
 *   integrity ok
 *   user ID NAME                  the user and everyone sharing a group
 *   group ID NAME ALG MAX_KEYS CRYPTOPERIOD ROTATE members ID,ID,...
 *   key ID GROUP LABEL ALG LEN STATE CRYPTOPERIOD TYPE TIMES...  keys of
 *                                 those groups, destroyed ones left out
 *   other-key ID GROUP STATE      (user DB) keys of groups the user left
 *   files COUNTER:KIND,...        (admin DB) update files it recorded for
 *                                 the user (kms_updates; kind 1 standard,
 *                                 2 recovery, 3 init)
 *   state NEXT APPLIED FAILURES LOCKED   the user's kms_update_state row
 * Exit 0, 2 when integrity_check is not "ok", 1 on any other failure.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cube/cube.h"
#include "kms/kms.h"
#include "sefile/sdb.h"

static sqlite3 *db;

/* Run sql (every ? bound to uid) and print each row as prefix and
 * the columns separated by spaces.  0 or -1. */
static int dump(const char *prefix, const char *sql, int64_t uid)
{
	sqlite3_stmt *st;
	int rc, i;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "robust_sekey_db: %s: %s\n", sql, sqlite3_errmsg(db));
		return -1;
	}
	for (i = 1; i <= sqlite3_bind_parameter_count(st); i++)
		sqlite3_bind_int64(st, i, uid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		printf("%s", prefix);
		for (i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *t = sqlite3_column_text(st, i);

			printf(" %s", t ? (const char *)t : "NULL");
		}
		printf("\n");
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "robust_sekey_db: %s: %s\n", sql, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char pin[128], err[256], path[4096];
	struct cube *c = NULL;
	struct sefile_cube *pool = NULL;
	struct sdb_vfs *vfs = NULL;
	sqlite3_stmt *st = NULL;
	int admin, status = 1, rc;
	int64_t uid = -1;
	const char *sd, *res;

	if (argc != 5 || (strcmp(argv[3], "admin") && strcmp(argv[3], "user"))) {
		fprintf(stderr, "usage: robust_sekey_db DEVICE PIN_FILE admin|user USER_NAME\n");
		return 1;
	}
	admin = !strcmp(argv[3], "admin");
	if (cube_pin_read(argv[2], -1, "", pin, sizeof(pin), err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "robust_sekey_db: %s\n", err);
		return 1;
	}
	if (cube_open(&c, argv[1], err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "robust_sekey_db: %s: %s\n", argv[1], err);
		return 1;
	}
	if (cube_login(c, admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER, pin) != CUBE_OK) {
		fprintf(stderr, "robust_sekey_db: login: %s\n", cube_errmsg(c));
		goto out;
	}
	sd = cube_sd_path(c);
	if (!sd) {
		fprintf(stderr, "robust_sekey_db: the cube has no SD folder\n");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", sd, admin ? "sekey.db" : "sekey-user.db");
	if (sefile_cube_wrap(&pool, c) != SEFILE_OK ||
	    sdb_vfs_register(&vfs, "robust-sekey-db", pool, KMS_DB_KEY_ID) != SEFILE_OK) {
		fprintf(stderr, "robust_sekey_db: cannot set up the secure database\n");
		goto out;
	}
	rc = sdb_open(vfs, path, SQLITE_OPEN_READWRITE, &db);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "robust_sekey_db: open %s: %s\n", path, sqlite3_errstr(rc));
		goto out;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		fprintf(stderr, "robust_sekey_db: integrity_check: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	res = (const char *)sqlite3_column_text(st, 0);
	printf("integrity %s\n", res ? res : "NULL");
	if (!res || strcmp(res, "ok")) {
		status = 2;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT id FROM kms_users WHERE name = ?", -1, &st, NULL) !=
		    SQLITE_OK ||
	    sqlite3_bind_text(st, 1, argv[4], -1, SQLITE_STATIC) != SQLITE_OK) {
		fprintf(stderr, "robust_sekey_db: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		uid = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (uid < 0) {
		fprintf(stderr, "robust_sekey_db: no user %s in %s\n", argv[4], path);
		goto out;
	}
#define MY_GROUPS "(SELECT group_id FROM kms_user_group WHERE user_id = ?)"
	if (dump("user", "SELECT DISTINCT u.id, u.name FROM kms_users u WHERE u.id IN "
			 "(SELECT user_id FROM kms_user_group WHERE group_id IN " MY_GROUPS
			 ") OR u.id = ? ORDER BY u.id", uid) ||
	    dump("group", "SELECT g.id, g.name, g.alg, g.max_keys, g.cryptoperiod, "
			  "g.rotate_on_remove, 'members', (SELECT group_concat(user_id) FROM "
			  "(SELECT user_id FROM kms_user_group m WHERE m.group_id = g.id ORDER BY "
			  "user_id)) FROM kms_groups g WHERE g.id IN " MY_GROUPS " ORDER BY g.id", uid) ||
	    dump("key", "SELECT id, group_id, quote(label), alg, length, state, cryptoperiod, "
			"type, generated, activated, expires, suspended, deactivated, compromised, "
			"destroyed FROM kms_keys WHERE group_id IN " MY_GROUPS " AND state != 6 "
			"ORDER BY id", uid) ||
	    (!admin && dump("other-key", "SELECT id, group_id, state FROM kms_keys WHERE "
					 "group_id NOT IN " MY_GROUPS " ORDER BY id", uid)) ||
	    (admin && dump("files", "SELECT group_concat(counter || ':' || kind) FROM (SELECT "
				    "counter, kind FROM kms_updates WHERE user_id = ? ORDER BY counter)",
				    uid)) ||
	    dump("state", "SELECT next_counter, applied, failures, locked FROM "
			  "kms_update_state WHERE user_id = ?", uid))
		goto out;
	status = 0;
out:
	if (st)
		sqlite3_finalize(st);
	if (db)
		sqlite3_close(db);
	if (vfs)
		sdb_vfs_unregister(vfs);
	if (pool)
		sefile_cube_close(pool);
	cube_close(c);
	OPENSSL_cleanse(pin, sizeof(pin));
	return status;
}
