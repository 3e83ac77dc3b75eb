/*
 * sql.c - the KMS's SQL plumbing: every statement's text (prepared once,
 * always with bound parameters), typed binding, and the framing of a
 * change: one savepoint, the audit record, the cube journal, commit or
 * complete rollback.
 *
 * Sections: statement table; binding and stepping; changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- statement table ---- */

#define KEY_COLS "id,label,alg,length,group_id,state,cryptoperiod,type,generated,activated," \
		 "expires,suspended,deactivated,compromised,destroyed"
#define USER_COLS "id,name,serial,update_key_id,kwk_id,created," \
		  "(SELECT count(*) FROM kms_user_group WHERE user_id=u.id)"
#define GROUP_COLS "id,name,alg,max_keys,cryptoperiod,rotate_on_remove,created," \
		   "(SELECT count(*) FROM kms_user_group WHERE group_id=g.id)," \
		   "(SELECT count(*) FROM kms_keys WHERE group_id=g.id AND state<>6)"
#define AUDIT_COLS "seq,time,op,result,detail,prev,hash"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_META_GET] = "SELECT ival,bval FROM kms_meta WHERE key=?1",
	[ST_META_PUT] = "INSERT OR REPLACE INTO kms_meta(key,ival,bval) VALUES(?1,?2,?3)",
	[ST_USER_INSERT] = "INSERT INTO kms_users(id,name,serial,update_key_id,kwk_id,created) "
			   "VALUES(?1,?2,?3,0,0,?4)",
	[ST_USER_GET] = "SELECT " USER_COLS " FROM kms_users u WHERE id=?1",
	[ST_USER_BY_NAME] = "SELECT id FROM kms_users WHERE name=?1",
	[ST_USER_ALL] = "SELECT " USER_COLS " FROM kms_users u ORDER BY id",
	[ST_USER_DELETE] = "DELETE FROM kms_users WHERE id=?1",
	[ST_USER_SET_DEVICE] = "UPDATE kms_users SET serial=?2,update_key_id=?3,kwk_id=?4 WHERE id=?1",
	[ST_USER_GROUPS] = "SELECT group_id FROM kms_user_group WHERE user_id=?1 ORDER BY group_id",
	[ST_GROUP_INSERT] = "INSERT INTO kms_groups(id,name,alg,max_keys,cryptoperiod,"
			    "rotate_on_remove,created) VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[ST_GROUP_GET] = "SELECT " GROUP_COLS " FROM kms_groups g WHERE id=?1",
	[ST_GROUP_BY_NAME] = "SELECT id FROM kms_groups WHERE name=?1",
	[ST_GROUP_ALL] = "SELECT " GROUP_COLS " FROM kms_groups g ORDER BY id",
	[ST_GROUP_DELETE] = "DELETE FROM kms_groups WHERE id=?1",
	[ST_GROUP_SET_POLICY] = "UPDATE kms_groups SET max_keys=?2,cryptoperiod=?3,"
				"rotate_on_remove=?4 WHERE id=?1",
	[ST_GROUP_MEMBERS] = "SELECT user_id FROM kms_user_group WHERE group_id=?1 ORDER BY user_id",
	[ST_GROUP_NMEMBERS] = "SELECT count(*) FROM kms_user_group WHERE group_id=?1",
	[ST_GROUP_NKEYS] = "SELECT count(*) FROM kms_keys WHERE group_id=?1 AND state<>6",
	[ST_MEMBER_INSERT] = "INSERT INTO kms_user_group(user_id,group_id) VALUES(?1,?2)",
	[ST_MEMBER_DELETE] = "DELETE FROM kms_user_group WHERE user_id=?1 AND group_id=?2",
	[ST_MEMBER_IS] = "SELECT 1 FROM kms_user_group WHERE user_id=?1 AND group_id=?2",
	[ST_MEMBER_DELETE_GROUP] = "DELETE FROM kms_user_group WHERE group_id=?1",
	[ST_MEMBER_ALL] = "SELECT user_id,group_id FROM kms_user_group ORDER BY user_id,group_id",
	[ST_KEY_INSERT] = "INSERT INTO kms_keys(" KEY_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
			  "?10,?11,?12,?13,?14,?15)",
	[ST_KEY_GET] = "SELECT " KEY_COLS " FROM kms_keys WHERE id=?1",
	[ST_KEY_ALL] = "SELECT " KEY_COLS " FROM kms_keys ORDER BY id",
	[ST_KEY_OF_GROUP] = "SELECT " KEY_COLS " FROM kms_keys WHERE group_id=?1 ORDER BY id",
	[ST_KEY_SET_STATE] = "UPDATE kms_keys SET state=?2,activated=?3,expires=?4,suspended=?5,"
			     "deactivated=?6,compromised=?7,destroyed=?8 WHERE id=?1",
	[ST_KEY_ACTIVE_OF_GROUP] = "SELECT id,cryptoperiod,expires FROM kms_keys "
				   "WHERE group_id=?1 AND state=2",
	[ST_KEY_ACTIVE_ALL] = "SELECT group_id,id,cryptoperiod,expires FROM kms_keys WHERE state=2",
	[ST_KEY_EXPIRED] = "SELECT id FROM kms_keys WHERE state IN (2,3) AND expires<=?1 ORDER BY id",
	[ST_UPD_DELETE_USER] = "DELETE FROM kms_update_state WHERE user_id=?1",
	[ST_REC_DELETE_USER] = "DELETE FROM kms_recovery WHERE user_id=?1",
	[ST_UPD_STATE_GET] = "SELECT next_counter,applied,failures,locked FROM kms_update_state "
			     "WHERE user_id=?1",
	[ST_UPD_STATE_PUT] = "INSERT OR REPLACE INTO kms_update_state(user_id,next_counter,applied,"
			     "failures,locked) VALUES(?1,?2,?3,?4,?5)",
	[ST_UPD_INSERT] = "INSERT INTO kms_updates(user_id,counter,kind,created,file) "
			  "VALUES(?1,?2,?3,?4,?5)",
	[ST_REC_PUT] = "INSERT OR REPLACE INTO kms_recovery(user_id,requested,reason,issued) "
		       "VALUES(?1,?2,?3,?4)",
	[ST_UPD_STATE_ALL] = "SELECT user_id FROM kms_update_state ORDER BY user_id",
	[ST_SY_USER_DEL_NAME] = "DELETE FROM kms_users WHERE name=?2 AND id<>?1",
	[ST_SY_USER_PUT] = "INSERT INTO kms_users(id,name,serial,update_key_id,kwk_id,created) "
			   "VALUES(?1,?2,NULL,0,0,0) ON CONFLICT(id) DO UPDATE SET name=excluded.name",
	[ST_SY_GROUP_DEL_NAME] = "DELETE FROM kms_groups WHERE name=?2 AND id<>?1",
	[ST_SY_GROUP_PUT] = "INSERT OR REPLACE INTO kms_groups(id,name,alg,max_keys,cryptoperiod,"
			    "rotate_on_remove,created) VALUES(?1,?2,?3,?4,?5,?6,0)",
	[ST_SY_MEMBER_PUT] = "INSERT OR IGNORE INTO kms_user_group(user_id,group_id) VALUES(?1,?2)",
	[ST_SY_KEY_PUT] = "INSERT OR REPLACE INTO kms_keys(" KEY_COLS ") VALUES(?1,?2,?3,?4,?5,?6,"
			  "?7,?8,?9,?10,?11,?12,?13,?14,?15)",
	[ST_SY_KEY_DEL] = "DELETE FROM kms_keys WHERE id=?1",
	[ST_SY_USERS_PRUNE] = "DELETE FROM kms_users WHERE id<>?1 AND id NOT IN "
			      "(SELECT user_id FROM kms_user_group)",
	[ST_SY_SELF_PUT] = "INSERT OR REPLACE INTO kms_users(id,name,serial,update_key_id,kwk_id,"
			   "created) VALUES(?1,?2,?3,?4,?5,0)",
	[ST_AUDIT_INSERT] = "INSERT INTO kms_audit(" AUDIT_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[ST_AUDIT_ALL] = "SELECT " AUDIT_COLS " FROM kms_audit ORDER BY seq",
	[ST_AUDIT_FROM] = "SELECT " AUDIT_COLS " FROM kms_audit WHERE seq>=?1 ORDER BY seq LIMIT ?2",
};

int kms_stmt(struct kms *k, enum kms_stmt_id id, sqlite3_stmt **st)
{
	*st = NULL;
	if (!k->stmt[id]) {
		if (sqlite3_prepare_v3(k->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				       &k->stmt[id], NULL) != SQLITE_OK)
			return kms_db_fail(k, "prepare");
	}
	sqlite3_reset(k->stmt[id]);
	sqlite3_clear_bindings(k->stmt[id]);
	*st = k->stmt[id];
	return KMS_OK;
}

void kms_stmts_free(struct kms *k)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(k->stmt[i]);
		k->stmt[i] = NULL;
	}
}

/* ---- binding and stepping ---- */

static int bind_one(sqlite3_stmt *st, int idx, char f, va_list *ap)
{
	const char *t;
	const void *b;
	size_t len;

	switch (f) {
	case 'i': return sqlite3_bind_int64(st, idx, va_arg(*ap, int64_t));
	case 'u': return sqlite3_bind_int64(st, idx, (int64_t)va_arg(*ap, uint32_t));
	case 't':
		t = va_arg(*ap, const char *);
		return sqlite3_bind_text(st, idx, t, -1, SQLITE_STATIC);
	case 'b':
		b = va_arg(*ap, const void *);
		len = va_arg(*ap, size_t);
		if (!b)
			return sqlite3_bind_null(st, idx);
		if (len > INT32_MAX)
			return SQLITE_TOOBIG;
		return sqlite3_bind_blob(st, idx, b, (int)len, SQLITE_STATIC);
	default: return SQLITE_MISUSE;
	}
}

static int bind_va(struct kms *k, sqlite3_stmt *st, const char *fmt, va_list *ap)
{
	for (int i = 0; fmt[i]; i++) {
		if (bind_one(st, i + 1, fmt[i], ap) != SQLITE_OK)
			return kms_db_fail(k, "bind");
	}
	return KMS_OK;
}

int kms_bind(struct kms *k, sqlite3_stmt *st, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = bind_va(k, st, fmt, &ap);
	va_end(ap);
	return rc;
}

int kms_exec_stmt(struct kms *k, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return KMS_OK;
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		k->db_rc = rc;
		return kms_fail(k, KMS_EEXIST, "%s", sqlite3_errmsg(k->db));
	}
	return kms_db_fail(k, "step");
}

int kms_run(struct kms *k, enum kms_stmt_id id, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc = kms_stmt(k, id, &st);

	if (rc)
		return rc;
	va_start(ap, fmt);
	rc = bind_va(k, st, fmt, &ap);
	va_end(ap);
	return rc ? rc : kms_exec_stmt(k, st);
}

static int row_va(struct kms *k, enum kms_stmt_id id, sqlite3_stmt **out, int notfound,
		  const char *fmt, va_list *ap)
{
	sqlite3_stmt *st;
	int rc = kms_stmt(k, id, &st);

	*out = NULL;
	if (rc)
		return rc;
	rc = bind_va(k, st, fmt, ap);
	if (rc)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = st;
		return KMS_OK;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return notfound;
	return kms_db_fail(k, "query");
}

int kms_row(struct kms *k, enum kms_stmt_id id, sqlite3_stmt **st, int notfound, const char *fmt,
	    ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = row_va(k, id, st, notfound, fmt, &ap);
	va_end(ap);
	return rc;
}

int kms_count(struct kms *k, enum kms_stmt_id id, int64_t *out, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	*out = 0;
	va_start(ap, fmt);
	rc = row_va(k, id, &st, KMS_OK, fmt, &ap);
	va_end(ap);
	if (rc || !st)
		return rc;
	*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_ids(struct kms *k, enum kms_stmt_id id, uint32_t **ids, size_t *n, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	uint32_t *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc = kms_stmt(k, id, &st);

	*ids = NULL;
	*n = 0;
	if (rc)
		return rc;
	va_start(ap, fmt);
	rc = bind_va(k, st, fmt, &ap);
	va_end(ap);
	while (!rc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = kms_fail(k, KMS_ENOMEM, "id list");
				break;
			}
			v = nv;
		}
		v[cnt++] = (uint32_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	if (rc == SQLITE_DONE)
		rc = KMS_OK;
	else if (rc > 0)
		rc = kms_db_fail(k, "query");
	sqlite3_reset(st);
	if (rc) {
		free(v);
		return rc;
	}
	*ids = v;
	*n = cnt;
	return KMS_OK;
}

int kms_exec(struct kms *k, const char *sql)
{
	if (sqlite3_exec(k->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return kms_db_fail(k, "exec");
	return KMS_OK;
}

/* ---- changes ---- */

int64_t kms_now(struct kms *k)
{
	return k->clock ? k->clock(k->clock_arg) : (int64_t)time(NULL);
}

int kms_change_begin(struct kms *k)
{
	k->msg[0] = '\0';
	k->db_rc = 0;
	k->cube_rc = 0;
	if (k->role != KMS_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "this database is not the administrator's");
	if (k->in_change)
		return kms_fail(k, KMS_EINVAL, "a change is already in progress");
	if (kms_exec(k, "SAVEPOINT kms_change"))
		return KMS_EDB;
	k->in_change = 1;
	k->n_undo = 0;
	k->n_destroy = 0;
	kms_track_reset(k);
	return KMS_OK;
}

static void rollback_change(struct kms *k)
{
	/* Errors here leave nothing more to do: report the original one. */
	sqlite3_exec(k->db, "ROLLBACK TO kms_change", NULL, NULL, NULL);
	sqlite3_exec(k->db, "RELEASE kms_change", NULL, NULL, NULL);
	kms_cube_undo(k);
}

/* Record a refused change in its own savepoint, keeping the caller's
 * error message. */
static void audit_refusal(struct kms *k, int rc, const char *op, const char *detail)
{
	char saved[KMS_MSG_MAX];
	char text[KMS_MSG_MAX + 64];
	int db_rc = k->db_rc, cube_rc = k->cube_rc;

	memcpy(saved, k->msg, sizeof(saved));
	snprintf(text, sizeof(text), "%s: %s", detail, saved);
	if (sqlite3_exec(k->db, "SAVEPOINT kms_audit", NULL, NULL, NULL) == SQLITE_OK) {
		if (kms_audit_append(k, op, rc, text) == KMS_OK)
			sqlite3_exec(k->db, "RELEASE kms_audit", NULL, NULL, NULL);
		else {
			sqlite3_exec(k->db, "ROLLBACK TO kms_audit", NULL, NULL, NULL);
			sqlite3_exec(k->db, "RELEASE kms_audit", NULL, NULL, NULL);
		}
	}
	memcpy(k->msg, saved, sizeof(saved));
	k->db_rc = db_rc;
	k->cube_rc = cube_rc;
}

int kms_change_end(struct kms *k, int rc, const char *op, const char *detail)
{
	if (!k->in_change)
		return rc;
	/* The update files this change owes are written before the commit,
	 * so a change that cannot reach its users does not happen. */
	if (rc == KMS_OK)
		rc = kms_updates_emit(k);
	if (rc == KMS_OK)
		rc = kms_audit_append(k, op, KMS_OK, detail);
	if (rc == KMS_OK)
		rc = kms_cube_run_destroys(k);
	if (rc == KMS_OK && sqlite3_exec(k->db, "RELEASE kms_change", NULL, NULL, NULL) != SQLITE_OK)
		rc = kms_db_fail(k, "commit");
	if (rc != KMS_OK) {
		rollback_change(k);
		kms_updates_settle(k, 0);
		k->in_change = 0;
		audit_refusal(k, rc, op, detail);
		return rc;
	}
	kms_updates_settle(k, 1);
	k->in_change = 0;
	k->msg[0] = '\0';
	return KMS_OK;
}

int kms_collect(struct kms *k, sqlite3_stmt *st, size_t elem, kms_row_fn from_row,
		const char *what, void **out, size_t *n)
{
	unsigned char *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc = KMS_OK, step;

	*out = NULL;
	*n = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * elem);
			if (!nv) {
				rc = kms_fail(k, KMS_ENOMEM, "%s", what);
				break;
			}
			v = nv;
		}
		from_row(st, v + cnt++ * elem);
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, what);
	sqlite3_reset(st);
	if (rc || cnt == 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return KMS_OK;
}
