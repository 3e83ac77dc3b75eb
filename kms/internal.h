/*
 * internal.h - internal to kms/: the handle, the prepared-statement table
 * (sql.c), the change framing with its cube undo journal (sql.c), the
 * in-memory find-key index (index.c) and helpers shared by the files that
 * implement kms.h.
 */
#ifndef SEKEYFS_KMS_INTERNAL_H
#define SEKEYFS_KMS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kms.h"

#define KMS_SCHEMA_VERSION 1
#define KMS_MSG_MAX 320
#define KMS_HASH_LEN 32
#define KMS_KEY_USAGE (WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT | WIRE_USE_EXPORTABLE)

/* Every SQL statement of the module, prepared once (sql.c has the text). */
enum kms_stmt_id {
	ST_META_GET, ST_META_PUT,
	ST_USER_INSERT, ST_USER_GET, ST_USER_BY_NAME, ST_USER_ALL, ST_USER_DELETE, ST_USER_SET_DEVICE,
	ST_USER_GROUPS,
	ST_GROUP_INSERT, ST_GROUP_GET, ST_GROUP_BY_NAME, ST_GROUP_ALL, ST_GROUP_DELETE,
	ST_GROUP_SET_POLICY, ST_GROUP_MEMBERS, ST_GROUP_NMEMBERS, ST_GROUP_NKEYS,
	ST_MEMBER_INSERT, ST_MEMBER_DELETE, ST_MEMBER_IS, ST_MEMBER_DELETE_GROUP, ST_MEMBER_ALL,
	ST_KEY_INSERT, ST_KEY_GET, ST_KEY_ALL, ST_KEY_OF_GROUP, ST_KEY_SET_STATE,
	ST_KEY_ACTIVE_OF_GROUP, ST_KEY_ACTIVE_ALL, ST_KEY_EXPIRED,
	ST_UPD_DELETE_USER, ST_REC_DELETE_USER,
	ST_UPD_STATE_GET, ST_UPD_STATE_PUT, ST_UPD_INSERT, ST_REC_PUT, ST_UPD_STATE_ALL,
	ST_SY_USER_DEL_NAME, ST_SY_USER_PUT, ST_SY_GROUP_DEL_NAME, ST_SY_GROUP_PUT, ST_SY_MEMBER_PUT,
	ST_SY_KEY_PUT, ST_SY_KEY_DEL, ST_SY_USERS_PRUNE, ST_SY_SELF_PUT,
	ST_AUDIT_INSERT, ST_AUDIT_ALL, ST_AUDIT_FROM,
	ST_COUNT
};

/* A cube change to undo if the change it belongs to fails. */
struct kms_undo {
	uint32_t key_id;
	int generated;         /* 1: destroy it; 0: restore the window below */
	uint32_t not_before, not_after;
};

/* A (user, group) pair that joined or left in a change (updates.c). */
struct kms_pair {
	uint32_t user_id, group_id;
};

/* A deleted user, captured before their rows go, with their next counter. */
struct kms_gone {
	struct kms_user u;
	uint64_t next_counter;
};

/* What a change touched, for the update files it owes (updates.c). */
struct kms_track {
	uint32_t *keys;            /* keys created or moved */
	size_t n_keys, cap_keys;
	uint32_t *groups;          /* groups whose record or members changed */
	size_t n_groups, cap_groups;
	struct kms_pair *joins, *departs;
	size_t n_joins, cap_joins, n_departs, cap_departs;
	struct kms_gone *gone;     /* users deleted (captured before the row goes) */
	size_t n_gone, cap_gone;
	uint32_t full_user;        /* user owed a full view (init / recovery), 0: none */
	uint8_t full_priority;     /* KMS_UPD_INIT or KMS_UPD_RECOVERY */
	char **written;            /* update files written, unlinked if the change fails */
	size_t n_written, cap_written;
	/* Update files of the change being emitted, written as temp files and
	 * published all together (kms_updates_emit: one syncfs, the renames,
	 * one syncfs) instead of two fsyncs each. */
	char **staged_tmp, **staged_path;
	size_t n_staged, cap_staged;
};

/* Index entries (index.c). */
struct ix_key {
	uint32_t id;
	int64_t cryptoperiod;
	int64_t expires;
};

struct ix_user {
	uint32_t id;
	uint32_t n, cap;
	uint32_t *groups;      /* sorted ascending */
};

struct ix_group {
	uint32_t id;
	uint8_t alg;
	uint32_t n_members;
	uint32_t n_active, cap;
	struct ix_key *active; /* active keys, any order */
	int32_t best;          /* index in active of the best key, -1: none */
};

/* uint32 ID -> pointer, open addressing with linear probing; ID 0 is the
 * empty slot (IDs start at 1). */
struct idmap {
	uint32_t *ids;
	void **vals;
	uint32_t cap;          /* power of two, or 0 */
	uint32_t n;
};

struct kms {
	sqlite3 *db;
	struct cube *cube;
	sqlite3_stmt *stmt[ST_COUNT];
	enum kms_role role;
	uint8_t admin_serial[WIRE_SERIAL_LEN];
	int has_admin_serial;
	int64_t (*clock)(void *arg);
	void *clock_arg;

	struct idmap users;    /* ID -> struct ix_user */
	struct idmap groups;   /* ID -> struct ix_group */
	int ix_ok;             /* 0: a refresh failed, queries say KMS_ESTALE */

	int in_change;
	struct kms_undo *undo;
	size_t n_undo, cap_undo;
	uint32_t *destroy;     /* cube keys to destroy when the change commits */
	size_t n_destroy, cap_destroy;

	struct kms_track track;
	char *updates_dir;     /* admin: where update files go (NULL: none) */
	unsigned fail_limit;   /* user: failed syncs before locking */
	int locked;            /* user: new encryption refused (KMS_ELOCKED) */

	int db_rc;
	int cube_rc;
	char msg[KMS_MSG_MAX];
};

/* errors.c */
int kms_fail(struct kms *k, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kms_db_fail(struct kms *k, const char *what);
int kms_cube_fail(struct kms *k, int rc, const char *what);

/* sql.c: statements.  kms_stmt gives the reset, unbound statement. */
int kms_stmt(struct kms *k, enum kms_stmt_id id, sqlite3_stmt **st);
void kms_stmts_free(struct kms *k);
/* Bind by format: 'i' int64_t, 'u' uint32_t, 't' const char *, 'b' const
 * void * + size_t (NULL: SQL NULL).  Returns KMS_OK or KMS_EDB. */
int kms_bind(struct kms *k, sqlite3_stmt *st, const char *fmt, ...);
/* Step a statement that returns no rows. */
int kms_exec_stmt(struct kms *k, sqlite3_stmt *st);
/* Bind and step (no rows). */
int kms_run(struct kms *k, enum kms_stmt_id id, const char *fmt, ...);
/* Bind, step once: KMS_OK with the row in *st, or notfound when no row. */
int kms_row(struct kms *k, enum kms_stmt_id id, sqlite3_stmt **st, int notfound, const char *fmt,
	    ...);
/* Bind and read one integer column 0 (e.g. a count). */
int kms_count(struct kms *k, enum kms_stmt_id id, int64_t *out, const char *fmt, ...);
int kms_exec(struct kms *k, const char *sql);
/* Bind and collect integer column 0 of every row; *ids malloc'ed. */
int kms_ids(struct kms *k, enum kms_stmt_id id, uint32_t **ids, size_t *n, const char *fmt, ...);
/* Step st (prepared and bound) to the end, filling a new array of elem-byte
 * records with from_row; *out is NULL when there is no row.  Resets st. */
typedef void (*kms_row_fn)(sqlite3_stmt *st, void *rec);
int kms_collect(struct kms *k, sqlite3_stmt *st, size_t elem, kms_row_fn from_row,
		const char *what, void **out, size_t *n);

/* sql.c: a change.  begin checks the role and opens a savepoint; end
 * writes the audit record, destroys queued cube keys and commits when rc
 * is KMS_OK, else rolls back the SQL, undoes the cube journal and audits
 * the refusal.  Returns the final code. */
int kms_change_begin(struct kms *k);
int kms_change_end(struct kms *k, int rc, const char *op, const char *detail);
int64_t kms_now(struct kms *k);

/* cubeops.c: the cube side of a change, journaled for undo. */
int kms_cube_generate(struct kms *k, uint32_t key_id, uint8_t alg);
/* *has = 1 if the admin cube already holds key_id (0 without a cube). */
int kms_cube_has_key(struct kms *k, uint32_t key_id, int *has);
int kms_cube_window(struct kms *k, uint32_t key_id, uint32_t not_before, uint32_t not_after);
int kms_cube_destroy_later(struct kms *k, uint32_t key_id);
/* Called by kms_change_end. */
int kms_cube_run_destroys(struct kms *k);
void kms_cube_undo(struct kms *k);
void kms_cube_journal_free(struct kms *k);

/* meta (schema.c) */
int kms_schema_ensure(struct kms *k);
int kms_meta_get(struct kms *k, const char *key, int64_t *ival, void *blob, size_t cap,
		 size_t *blob_len, int *found);
int kms_meta_put(struct kms *k, const char *key, int64_t ival, const void *blob, size_t blob_len);
/* Take the next ID of counter key (starting at first). */
int kms_next_id(struct kms *k, const char *key, uint32_t first, uint32_t *id);

/* users.c / groups.c / keys.c helpers shared inside a change */
int kms_check_name(struct kms *k, const char *what, const char *name, int allow_empty);
int kms_group_load(struct kms *k, uint32_t group_id, struct kms_group *g);
int kms_key_load(struct kms *k, uint32_t key_id, struct kms_key *key);
int kms_key_create(struct kms *k, const struct kms_group *g, const char *label,
		   int64_t cryptoperiod, uint32_t *id);
/* Take a member out inside an open change, rotating per policy. */
int kms_member_drop(struct kms *k, uint32_t user_id, uint32_t group_id);

/* updates.c: the admin's side.  Record what a change touches; at the end
 * of a successful change, write the update files it owes (before the
 * commit; unlinked again if the commit fails). */
int kms_track_key(struct kms *k, uint32_t key_id);
int kms_track_group(struct kms *k, uint32_t group_id);
int kms_track_join(struct kms *k, uint32_t user_id, uint32_t group_id);
int kms_track_depart(struct kms *k, uint32_t user_id, uint32_t group_id);
int kms_track_gone(struct kms *k, const struct kms_user *u);
void kms_track_reset(struct kms *k);
void kms_track_free(struct kms *k);
int kms_updates_emit(struct kms *k);
/* After the change: keep (committed) or unlink (rolled back) the files. */
void kms_updates_settle(struct kms *k, int committed);
/* Write data as dir/name atomically: temp "." name in dir, fsync, rename
 * (never over an existing file unless replace), fsync dir.  path gets
 * dir/name. */
int kms_file_publish(struct kms *k, const char *dir, const char *name, const uint8_t *data,
		     size_t len, int replace, char *path, size_t path_cap);
/* UPDATES/<serial hex>: 0 or -1 (too long). */
int kms_upd_user_dir_path(const char *updates_dir, const uint8_t serial[WIRE_SERIAL_LEN],
			  char *out, size_t cap);
/* sync.c: load the user-side lock state (kms_open). */
int kms_sync_load_state(struct kms *k);

/* lifecycle.c */
int kms_key_move(struct kms *k, const struct kms_key *key, enum kms_key_state to, int64_t now);
void kms_window(const struct kms_key *key, enum kms_key_state state, uint32_t *nb, uint32_t *na);
uint32_t kms_minutes(int64_t unix_seconds);

/* audit.c */
int kms_audit_append(struct kms *k, const char *op, int result, const char *detail);

/* index.c */
int kms_ix_rebuild(struct kms *k);
void kms_ix_free(struct kms *k);
/* Reload one user / group from the database (drop it if gone). */
int kms_ix_user_refresh(struct kms *k, uint32_t user_id);
int kms_ix_group_refresh(struct kms *k, uint32_t group_id);
/* After a committed change: refresh, marking the index stale on failure. */
void kms_ix_after(struct kms *k, const uint32_t *users, size_t n_users, const uint32_t *groups,
		  size_t n_groups);
struct ix_user *kms_ix_user(const struct kms *k, uint32_t id);
struct ix_group *kms_ix_group(const struct kms *k, uint32_t id);
/* Strength rank of an algorithm (higher is stronger). */
int kms_alg_rank(uint8_t alg);
/* Is a better than b (both of a group of alg rank ra / rb)? */
int kms_key_better(int ra, const struct ix_key *a, int rb, const struct ix_key *b);

#endif
