/*
 * kms.h - SEkey, the key management system: the whole public face of kms/.
 *
 * One administrator (not a user) holds the admin cube, which holds every
 * key; each user has a cube of their own.  The KMS keeps the metadata
 * (users, groups with their security policy, keys with their life cycle,
 * memberships, the audit log, and the tables the update distribution and
 * recovery use) in an SQLite database the caller opens and hands over:
 * the secure database (sefile/sdb.h) in production, a plain SQLite file in
 * tests and benchmarks.  Key values never leave the cube; the KMS names
 * keys by their 32-bit cube key ID.
 *
 * Design and rules as built (schema, state machine, find-key algorithm and
 * its index, errors): docs/KMS.md.  In short:
 *  - Key life cycle of the thesis section 4.2.1, exactly: every change is
 *    checked against one transition table (kms_transition_allowed), a
 *    refused change is KMS_ETRANSITION.
 *  - With an admin cube, key values live in the cube and the cube's
 *    validity window mirrors the state, so the cube itself refuses to
 *    encrypt with a key that is not active.  Every change is
 *    all-or-nothing: SQL in one savepoint, cube calls undone if any step
 *    fails.
 *  - find_key answers from an in-memory index (rebuilt on open, refreshed
 *    on every change); SQL is for persistence only.
 *  - Every change, and every refused change, is appended to a hash-chained
 *    audit table (kms_audit_verify).
 *
 * A struct kms is not thread-safe: callers serialise.  It does not own the
 * sqlite3 handle nor the cube; both must outlive it.  Every function
 * returning int returns KMS_OK (0) or a negative KMS_E* code; kms_errmsg()
 * gives the text of the last error of that handle.  Getters clear their
 * outputs first.  Times are Unix seconds (int64_t); cryptoperiods seconds.
 */
#ifndef SEKEYFS_KMS_H
#define SEKEYFS_KMS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "../cube/cube.h"
#include "../wire/wire.h"

enum kms_err {
	KMS_OK = 0,
	KMS_EINVAL = -1,      /* bad argument (name, algorithm, cryptoperiod...) */
	KMS_ENOMEM = -2,
	KMS_EDB = -3,         /* the database failed (kms_db_errcode has SQLite's code) */
	KMS_ECUBE = -4,       /* the cube failed (kms_cube_errcode has the CUBE_E* code) */
	KMS_EPERM = -5,       /* not the admin's KMS / not the admin cube */
	KMS_ENOUSER = -6,     /* no such user */
	KMS_ENOGROUP = -7,    /* no such group */
	KMS_ENOSUCHKEY = -8,  /* no key with that ID */
	KMS_ENOKEY = -9,      /* no usable key for the request (find_key) */
	KMS_EEXIST = -10,     /* name taken, already a member */
	KMS_ENOTMEMBER = -11, /* the user is not in that group */
	KMS_ETRANSITION = -12,/* the life cycle forbids that state change */
	KMS_EMAXKEYS = -13,   /* the group's policy allows no more keys */
	KMS_EIMMUTABLE = -14, /* a group's algorithm never changes */
	KMS_EKEYSTATE = -15,  /* the key's state forbids that use */
	KMS_EEXPIRED = -16,   /* the key's cryptoperiod is over */
	KMS_EAUDIT = -17,     /* the audit chain is broken */
	KMS_ESCHEMA = -18,    /* the database is not a KMS database we know */
	KMS_ESTALE = -19,     /* the in-memory index could not be refreshed: kms_reload */
	KMS_ELOCKED = -20,    /* the user's KMS is locked after failed updates: no new
			       * encryption until a recovery update (decryption works) */
	KMS_EUPD_GAP = -21,   /* an update is missing before the pending ones */
	KMS_EUPD_REPLAY = -22,/* an update already applied (or an init on a set-up KMS) */
	KMS_EUPD_ORDER = -23, /* a file's name and its authenticated counter disagree */
	KMS_EUPD_FOREIGN = -24,/* an update for another user's cube */
	KMS_EUPD_CORRUPT = -25,/* truncated, malformed or not authentic (bit flip, other admin) */
	KMS_ENOTPROV = -26,   /* the user (or this KMS) is not provisioned yet */
	KMS_EIO = -27,        /* reading or writing the updates folder (or a backup file) failed */
	KMS_EBACKUP = -28,    /* backup not authentic: wrong passphrase, or the file was changed */
	KMS_EBACKUP_FORMAT = -29,/* not a backup file, truncated, or a version we do not know */
};

/* Key states (thesis 4.2.1).  Values are stored in the database. */
enum kms_key_state {
	KMS_KEY_PREACTIVE = 1,
	KMS_KEY_ACTIVE = 2,
	KMS_KEY_SUSPENDED = 3,
	KMS_KEY_DEACTIVATED = 4,
	KMS_KEY_COMPROMISED = 5,
	KMS_KEY_DESTROYED = 6,
};

/* Key types.  Only symmetric data encryption keys are managed. */
enum kms_key_type {
	KMS_KEY_TYPE_DATA = 1,
};

/* What a caller wants to do with a key (kms_key_check_use). */
enum kms_use {
	KMS_USE_ENCRYPT = 1,
	KMS_USE_DECRYPT = 2,
};

/* Role of the database (kms_role). */
enum kms_role {
	KMS_ROLE_NONE = 0,  /* fresh database: kms_admin_init makes it the admin's */
	KMS_ROLE_ADMIN = 1, /* the full KMS; changes allowed */
	KMS_ROLE_USER = 2,  /* a user's subset (written by updates); read-only here */
};

#define KMS_NAME_MAX 63              /* bytes of a user/group name or key label */
#define KMS_KEY_ID_FIRST 0x00100000u /* data key IDs are allocated from here up;
				      * lower cube IDs are left to device keys */
#define KMS_MAX_KEYS_LIMIT 1000000u  /* largest max_keys a policy may set */
/* Device keys (below KMS_KEY_ID_FIRST).  The DB key of a cube (admin or
 * user: non-exportable, encrypts that cube owner's secure database), and
 * per user the two update-channel keys, derived cube-to-cube with the same
 * ID in the admin cube and in the user's cube:
 *   update-encryption key  KMS_CHANNEL_ID_BASE + 2 * user_id      (GCM)
 *   update-wrapping key    KMS_CHANNEL_ID_BASE + 2 * user_id + 1  (KW) */
#define KMS_DB_KEY_ID 0x00000010u
#define KMS_CHANNEL_ID_BASE 0x00010000u
#define KMS_USER_ID_MAX ((KMS_KEY_ID_FIRST - KMS_CHANNEL_ID_BASE) / 2 - 1)
#define KMS_UPDATE_FAIL_LIMIT 3      /* failed syncs before a user's KMS locks */

struct kms;

struct kms_user {
	uint32_t id;
	char name[KMS_NAME_MAX + 1];
	uint8_t serial[WIRE_SERIAL_LEN]; /* their cube's serial (zeros: not yet known) */
	uint32_t update_key_id;          /* key encrypting their updates (0: none yet) */
	uint32_t kwk_id;                 /* key wrapping their keys (0: none yet) */
	uint32_t n_groups;
	int64_t created;
};

/* A group's security policy (thesis 4.2.4 plus rotation, BRIEF section 5). */
struct kms_policy {
	uint8_t alg;            /* WIRE_ALG_AES256_GCM or WIRE_ALG_AES256_CTR_HMAC; immutable */
	uint32_t max_keys;      /* keys not destroyed the group may own, >= 1 */
	int64_t cryptoperiod;   /* default cryptoperiod of its keys, seconds, > 0 */
	int rotate_on_remove;   /* removing a member replaces the active key (default 1) */
};

struct kms_group {
	uint32_t id;
	char name[KMS_NAME_MAX + 1];
	struct kms_policy policy;
	uint32_t n_members;
	uint32_t n_keys;        /* keys not destroyed */
	int64_t created;
};

struct kms_key {
	uint32_t id;            /* also its ID in the cube */
	char label[KMS_NAME_MAX + 1];
	uint8_t alg;            /* enum wire_alg */
	uint16_t length;        /* bits */
	uint32_t group_id;      /* owner, fixed at creation (the group may be gone) */
	enum kms_key_state state;
	int64_t cryptoperiod;   /* min(requested, the policy's at creation), seconds */
	enum kms_key_type type;
	int64_t generated, activated, expires, suspended, deactivated, compromised, destroyed;
	/* times; 0 = never happened (expires: 0 until activated) */
};

/* What find_key returns: the key to encrypt with. */
struct kms_found {
	uint32_t key_id;
	uint8_t alg;
	uint32_t group_id;
};

/* One audit record (kms_audit_list). */
struct kms_audit_rec {
	uint64_t seq;
	int64_t time;
	int result;             /* KMS_OK or the error the operation ended with */
	char op[32];
	char detail[256];
};

/* ---- errors ---- */

/* Text of an error code (never NULL). */
const char *kms_strerror(int err);
/* Text of the last error on this handle, with detail (never NULL). */
const char *kms_errmsg(const struct kms *k);
/* SQLite extended result code of the last KMS_EDB (0 if none). */
int kms_db_errcode(const struct kms *k);
/* CUBE_E* code of the last KMS_ECUBE (0 if none). */
int kms_cube_errcode(const struct kms *k);

/* ---- start / stop (thesis sekey_start / sekey_stop) ---- */

/* Start the KMS on db (creating the schema in an empty database) with an
 * optional cube for key operations (NULL: metadata only, key values are
 * not touched).  On an admin database whose admin cube serial is recorded,
 * a cube given must be that cube (KMS_EPERM otherwise).  Builds the
 * in-memory index.  On failure *out is NULL and, if err_text is given,
 * the reason is copied there. */
int kms_open(struct kms **out, sqlite3 *db, struct cube *cube, char *err_text, size_t err_cap);
/* Stop: frees the handle; closes neither db nor cube. */
void kms_close(struct kms *k);
/* Make this database the administrator's (thesis sekey_admin_init).  With a
 * cube, it must be logged in as admin, and its serial is recorded so that
 * only it can later change keys.  KMS_EEXIST if already initialised. */
int kms_admin_init(struct kms *k);
enum kms_role kms_role(const struct kms *k);
/* Rebuild the in-memory index from the database (after an outer
 * transaction of the caller's was rolled back, or after KMS_ESTALE). */
int kms_reload(struct kms *k);
/* The clock used for generation/activation/... times and expiry in
 * find_key (default: time(NULL)).  Tests set a fake one. */
void kms_set_clock(struct kms *k, int64_t (*now)(void *arg), void *arg);

/* ---- users (admin changes; anyone reads) ---- */

/* Add a user named name (1..KMS_NAME_MAX bytes, printable, no ',' or '/');
 * serial: their cube's serial, or NULL if not known yet.  *id gets the
 * new ID.  KMS_EEXIST if the name is taken. */
int kms_add_user(struct kms *k, const char *name, const uint8_t *serial, uint32_t *id);
/* Record the user's device attributes (set by provisioning). */
int kms_user_set_device(struct kms *k, uint32_t user_id, const uint8_t serial[WIRE_SERIAL_LEN],
			uint32_t update_key_id, uint32_t kwk_id);
/* Delete a user: they leave every group (each group's policy rotates its
 * key), then the user is gone. */
int kms_delete_user(struct kms *k, uint32_t user_id);
int kms_user_info(struct kms *k, uint32_t user_id, struct kms_user *out);
/* KMS_ENOUSER if no user has that name. */
int kms_user_by_name(struct kms *k, const char *name, uint32_t *id);
/* Every user, by ID; *out is malloc'ed (free()), NULL when *n is 0. */
int kms_user_list(struct kms *k, struct kms_user **out, size_t *n);
/* IDs of the groups of a user, ascending; *ids malloc'ed. */
int kms_user_groups(struct kms *k, uint32_t user_id, uint32_t **ids, size_t *n);

/* ---- groups ---- */

/* The default policy: AES-256-GCM, 16 keys, one year, rotation on. */
void kms_policy_default(struct kms_policy *p);
/* Add an empty group with policy p (validated).  KMS_EEXIST: name taken. */
int kms_add_group(struct kms *k, const char *name, const struct kms_policy *p, uint32_t *id);
/* Delete a group: its members leave, its active and suspended keys are
 * deactivated, its pre-active keys (never used) destroyed; the metadata of
 * its keys is kept (files under them still decrypt). */
int kms_delete_group(struct kms *k, uint32_t group_id);
/* Change max_keys, cryptoperiod, rotate_on_remove (not retroactive);
 * p->alg must equal the group's (KMS_EIMMUTABLE otherwise). */
int kms_group_set_policy(struct kms *k, uint32_t group_id, const struct kms_policy *p);
int kms_group_info(struct kms *k, uint32_t group_id, struct kms_group *out);
int kms_group_by_name(struct kms *k, const char *name, uint32_t *id);
int kms_group_list(struct kms *k, struct kms_group **out, size_t *n);
/* IDs of the members of a group, ascending; *ids malloc'ed. */
int kms_group_members(struct kms *k, uint32_t group_id, uint32_t **ids, size_t *n);
/* KMS_EEXIST if already a member. */
int kms_add_member(struct kms *k, uint32_t user_id, uint32_t group_id);
/* Remove a member.  If the policy says rotate_on_remove and the group has
 * an active key, a new key is generated and activated and every active or
 * suspended key of the group is deactivated, in the same all-or-nothing
 * change (KMS_EMAXKEYS if the policy has no room for the new key). */
int kms_remove_member(struct kms *k, uint32_t user_id, uint32_t group_id);

/* ---- keys ---- */

/* Add a pre-active key owned by group_id, algorithm from its policy,
 * cryptoperiod min(cryptoperiod, policy's) (0: the policy's).  With a
 * cube, the key is generated inside it (usage ENCRYPT|DECRYPT|EXPORTABLE,
 * a window in which it cannot encrypt yet).  *id gets its ID. */
int kms_add_key(struct kms *k, uint32_t group_id, const char *label, int64_t cryptoperiod,
		uint32_t *id);
/* pre-active or suspended -> active (thesis sekey_activate_key).  The first
 * activation sets activation = now and expiry = now + cryptoperiod; a
 * suspended key keeps its expiry (KMS_EEXPIRED if it has passed). */
int kms_activate_key(struct kms *k, uint32_t key_id);
/* Any state change the transition table allows; KMS_ETRANSITION if not.
 * DESTROYED destroys the value in the cube. */
int kms_set_key_state(struct kms *k, uint32_t key_id, enum kms_key_state state);
/* Deactivate every active or suspended key whose expiry is <= now;
 * *n_expired (may be NULL) gets how many. */
int kms_expired_check(struct kms *k, int64_t now, uint32_t *n_expired);
int kms_key_info(struct kms *k, uint32_t key_id, struct kms_key *out);
/* Keys of group_id (0: every key), by ID; *out malloc'ed. */
int kms_key_list(struct kms *k, uint32_t group_id, struct kms_key **out, size_t *n);
/* May key_id be used for use now?  Encrypt: active and not expired
 * (KMS_EKEYSTATE / KMS_EEXPIRED).  Decrypt: any state but pre-active and
 * destroyed; a compromised key is allowed with an audit warning. */
int kms_key_check_use(struct kms *k, uint32_t key_id, enum kms_use use);
/* 1 if the life cycle allows from -> to, else 0. */
int kms_transition_allowed(enum kms_key_state from, enum kms_key_state to);
const char *kms_state_name(enum kms_key_state s);

/* ---- provisioning and updates (docs/UPDATES.md) ----
 * Every admin change that concerns a provisioned user writes, per such
 * user, one immutable numbered update file UPDATES/<serial-hex>/<counter,
 * 16 digits>.upd, sealed in the admin cube for that user's cube.  A change
 * that concerns a provisioned user fails (KMS_EINVAL) if the handle has no
 * updates folder or no cube. */

/* The shared updates folder of this (admin) handle (copied). */
int kms_set_updates_dir(struct kms *k, const char *dir);
/* Failed syncs before a user's KMS locks (default KMS_UPDATE_FAIL_LIMIT). */
void kms_set_update_fail_limit(struct kms *k, unsigned n);
/* Provision user_id's cube: user_cube is logged in as admin (the admin
 * knows its admin PIN).  Both cubes derive the update-encryption and the
 * update-wrapping key cube-to-cube (only public keys pass through the
 * host), the user's cube gets a non-exportable DB key (KMS_DB_KEY_ID, kept
 * if it has one), the user's record gets the serial and key IDs, and the
 * user's first update (priority init: their whole view) is written. */
int kms_user_init(struct kms *k, struct cube *user_cube, uint32_t user_id);
/* Write a recovery update for user_id (priority recovery: a full rebuild
 * of their view), which unlocks a locked user KMS. */
int kms_user_recover(struct kms *k, uint32_t user_id, const char *reason);
/* Remove every update file each user acknowledged (their ack file);
 * *n_removed (may be NULL) gets how many. */
int kms_updates_prune(struct kms *k, uint32_t *n_removed);

/* What a sync did (kms_sync) or where a user KMS stands (kms_sync_status). */
struct kms_sync_report {
	uint32_t applied;        /* update files applied by this sync */
	uint32_t debris;         /* files ignored: temp, sync-conflict, "~", unknown */
	uint64_t next_counter;   /* the counter expected next (0: not provisioned) */
	uint32_t failures;       /* consecutive refused syncs */
	int locked;              /* 1: new encryption refused until a recovery update */
	uint32_t user_id;        /* this KMS's user (0: not provisioned) */
	char refused[48];        /* the file that made the sync fail ("" if none) */
	char first_debris[48];   /* the first debris file seen ("" if none) */
};
/* Apply the pending updates of updates_dir for user_cube (logged in as
 * user), each exactly once, in order, all in one DB transaction.  A fresh
 * database accepts only an init update.  A gap, replay, reorder, foreign,
 * truncated or corrupt file refuses the whole sync (nothing applied) with
 * KMS_EUPD_*; after the fail limit the KMS locks (KMS_ELOCKED) until a
 * recovery update.  Writes UPDATES/<serial>/ack after a successful sync.
 * rep may be NULL. */
int kms_sync(struct kms *k, struct cube *user_cube, const char *updates_dir,
	     struct kms_sync_report *rep);
int kms_sync_status(struct kms *k, struct kms_sync_report *rep);
/* The folder of updates_dir holding the update files of the cube with
 * serial (UPDATES/<serial-hex>).  0, or -1 if out[cap] is too small. */
int kms_updates_user_dir(const char *updates_dir, const uint8_t serial[WIRE_SERIAL_LEN],
			 char *out, size_t cap);

/* ---- encrypted backup and restore of the admin (docs/BACKUP.md) ----
 * A backup file holds every key of the admin cube wrapped under a backup
 * key the cube derives from a passphrase (cube_passphrase_derive: the
 * passphrase goes to the cube sealed, the key never leaves it), the admin
 * database (its pages sealed under a data key derived the same way) and a
 * MAC over the whole file under a third derived key.  Restoring derives
 * the same keys in a fresh cube, checks the MAC before anything else, then
 * imports every key with its ID and attributes and copies the database
 * into a new one bound to the new cube.  The derived keys live in the cube
 * only during the operation (IDs KMS_BACKUP_KEY_ID..+2), then are
 * destroyed. */
#define KMS_BACKUP_KEY_ID 0x00000020u      /* derived keys: +0 wrap, +1 data, +2 MAC */
#define KMS_BACKUP_ITER_DEFAULT 600000u    /* PBKDF2 iterations of a new backup */

struct kms_backup_info {
	uint8_t admin_serial[WIRE_SERIAL_LEN]; /* the cube that was backed up */
	int64_t created;                       /* Unix seconds */
	uint32_t iterations;
	uint32_t n_keys;                       /* keys in the file */
	uint64_t db_bytes;                     /* size of the database image */
};

/* Back up the admin's cube (this handle's, logged in as admin) and
 * database to path (written atomically: temp file, fsync, rename).
 * iterations 0: KMS_BACKUP_ITER_DEFAULT.  info may be NULL. */
int kms_backup(struct kms *k, const char *passphrase, size_t pass_len, uint32_t iterations,
	       const char *path, struct kms_backup_info *info);

/* A restore in progress. */
struct kms_restore;
/* Read path, derive the backup keys in cube (a fresh cube, logged in as
 * admin), check the whole file's MAC (KMS_EBACKUP: wrong passphrase or a
 * changed file; KMS_EBACKUP_FORMAT: not a backup, truncated) and decrypt
 * the database image, all before changing anything; KMS_EEXIST if the
 * cube already holds a key ID the backup carries.  On failure *out is NULL
 * and err_text says why. */
int kms_restore_open(struct kms_restore **out, struct cube *cube, const char *path,
		     const char *passphrase, size_t pass_len, struct kms_backup_info *info,
		     char *err_text, size_t err_cap);
/* Import every key of the backup into the cube, with its ID and
 * attributes (all or nothing: keys imported before a failure are
 * destroyed again). */
int kms_restore_keys(struct kms_restore *r);
/* Copy the database into dst (an empty database the caller opened: the
 * secure database under the restored DB key, in production), bind it to
 * the new cube and audit the restore.  With updates_dir, every user whose
 * update folder holds files newer than the backup knew of (the backup was
 * older than the last changes) gets a recovery update, and the key ID
 * counter skips 65536 IDs (keys made after the backup keep theirs in the
 * users' cubes); *n_recovered (may be NULL) says how many. */
int kms_restore_db(struct kms_restore *r, sqlite3 *dst, const char *updates_dir,
		   uint32_t *n_recovered);
/* Text of the last error of the restore (never NULL). */
const char *kms_restore_errmsg(const struct kms_restore *r);
/* End: destroy the derived keys in the cube; unless keep, also the keys
 * kms_restore_keys imported.  Wipes and frees r. */
void kms_restore_close(struct kms_restore *r, int keep);

/* ---- find key (thesis sekey_find_key_v1/v2/v3) ----
 * Rules, in order: active (and not expired) keys only; unless a group is
 * named, the smallest group that includes all the users (never a wider
 * one: if the smallest has no active key, KMS_ENOKEY); then the strongest
 * algorithm; then the shortest cryptoperiod; then the lowest ID. */

/* For a pair of users (a == b: the user alone). */
int kms_find_key_v1(struct kms *k, uint32_t user_a, uint32_t user_b, struct kms_found *out);
/* For a user and a group: the group's best key, if the user is a member
 * (KMS_ENOTMEMBER otherwise). */
int kms_find_key_v2(struct kms *k, uint32_t user_id, uint32_t group_id, struct kms_found *out);
/* The group's best key, whoever asks (the administrator, who is no
 * member; v2 without the membership check). */
int kms_find_key_group(struct kms *k, uint32_t group_id, struct kms_found *out);
/* For a set of n >= 1 users (duplicates allowed). */
int kms_find_key_v3(struct kms *k, const uint32_t *users, size_t n, struct kms_found *out);

/* ---- audit ---- */

/* Append an event of another layer (e.g. an integrity failure seen by the
 * file system) to the audit chain. */
int kms_audit_log(struct kms *k, const char *op, int result, const char *detail);
/* Check the whole chain: contiguous sequence, each hash = SHA-256(previous
 * hash || record), last record = the recorded head.  KMS_EAUDIT with the
 * first bad record's seq in *bad_seq (may be NULL; 0 when fine). */
int kms_audit_verify(struct kms *k, uint64_t *bad_seq);
/* Records with seq >= from_seq, at most max, ascending; *out malloc'ed. */
int kms_audit_list(struct kms *k, uint64_t from_seq, size_t max, struct kms_audit_rec **out,
		   size_t *n);

#endif
