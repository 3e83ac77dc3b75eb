/*
 * updates.c - the administrator's side of update distribution: what a
 * change touched (keys, groups, joins, departures, deleted users), and at
 * the end of the change, per provisioned user it concerns, ONE immutable
 * numbered update file: records built from the database, key values
 * exported from the admin cube wrapped under that user's update-wrapping
 * key, the body sealed (SEAL) under their update-encryption key, written
 * atomically (temp + fsync + rename without replace + fsync dir).  Also the
 * updates folder setting, recovery updates and pruning of acknowledged
 * files.  Format: update_format.h, docs/UPDATES.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../sefile/sefile.h"
#include "internal.h"
#include "update_format.h"

#define SECTORS_PER_CALL 8u
#define VALUE_MAX 4096
#define ACK_MAX 32

/* ---- tracking ---- */

static int push_u32(struct kms *k, uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	uint32_t *nv;

	for (size_t i = 0; i < *n; i++)
		if ((*v)[i] == x)
			return KMS_OK;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;

		nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return kms_fail(k, KMS_ENOMEM, "update tracking");
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = x;
	return KMS_OK;
}

static int push_pair(struct kms *k, struct kms_pair **v, size_t *n, size_t *cap, uint32_t user,
		     uint32_t group)
{
	struct kms_pair *nv;

	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].user_id == user && (*v)[i].group_id == group)
			return KMS_OK;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;

		nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return kms_fail(k, KMS_ENOMEM, "update tracking");
		*v = nv;
		*cap = c;
	}
	(*v)[*n].user_id = user;
	(*v)[*n].group_id = group;
	(*n)++;
	return KMS_OK;
}

int kms_track_key(struct kms *k, uint32_t key_id)
{
	struct kms_track *t = &k->track;

	return push_u32(k, &t->keys, &t->n_keys, &t->cap_keys, key_id);
}

int kms_track_group(struct kms *k, uint32_t group_id)
{
	struct kms_track *t = &k->track;

	return push_u32(k, &t->groups, &t->n_groups, &t->cap_groups, group_id);
}

int kms_track_join(struct kms *k, uint32_t user_id, uint32_t group_id)
{
	struct kms_track *t = &k->track;

	return push_pair(k, &t->joins, &t->n_joins, &t->cap_joins, user_id, group_id);
}

int kms_track_depart(struct kms *k, uint32_t user_id, uint32_t group_id)
{
	struct kms_track *t = &k->track;

	return push_pair(k, &t->departs, &t->n_departs, &t->cap_departs, user_id, group_id);
}

/* The admin's next counter for a user: the state row, else 1. */
static int next_counter(struct kms *k, uint32_t user_id, uint64_t *next, int *found)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_UPD_STATE_GET, &st, KMS_ENOUSER, "u", user_id);

	*next = 1;
	*found = 0;
	if (rc == KMS_ENOUSER)
		return KMS_OK;
	if (rc)
		return rc;
	*found = 1;
	if (sqlite3_column_int64(st, 0) > 1)
		*next = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_track_gone(struct kms *k, const struct kms_user *u)
{
	struct kms_track *t = &k->track;
	struct kms_gone *nv;
	int found;
	int rc;

	if (t->n_gone == t->cap_gone) {
		size_t c = t->cap_gone ? t->cap_gone * 2 : 4;

		nv = realloc(t->gone, c * sizeof(*nv));
		if (!nv)
			return kms_fail(k, KMS_ENOMEM, "update tracking");
		t->gone = nv;
		t->cap_gone = c;
	}
	t->gone[t->n_gone].u = *u;
	rc = next_counter(k, u->id, &t->gone[t->n_gone].next_counter, &found);
	if (!rc)
		t->n_gone++;
	return rc;
}

static void free_written(struct kms_track *t)
{
	for (size_t i = 0; i < t->n_written; i++)
		free(t->written[i]);
	t->n_written = 0;
}

/* Forget the staged files, unlinking their temp files. */
static void staged_discard(struct kms_track *t)
{
	for (size_t i = 0; i < t->n_staged; i++) {
		unlink(t->staged_tmp[i]);
		free(t->staged_tmp[i]);
		free(t->staged_path[i]);
	}
	t->n_staged = 0;
}

void kms_track_reset(struct kms *k)
{
	struct kms_track *t = &k->track;

	staged_discard(t);
	t->n_keys = t->n_groups = t->n_joins = t->n_departs = t->n_gone = 0;
	t->full_user = 0;
	t->full_priority = 0;
	free_written(t);
}

void kms_track_free(struct kms *k)
{
	struct kms_track *t = &k->track;

	staged_discard(t);
	free(t->staged_tmp);
	free(t->staged_path);
	free_written(t);
	free(t->keys);
	free(t->groups);
	free(t->joins);
	free(t->departs);
	free(t->gone);
	free(t->written);
	memset(t, 0, sizeof(*t));
}

void kms_updates_settle(struct kms *k, int committed)
{
	struct kms_track *t = &k->track;

	/* A rolled-back change takes back the files it wrote; nobody can have
	 * acted on them, since the counter they took is free again. */
	for (size_t i = 0; !committed && i < t->n_written; i++)
		unlink(t->written[i]);
	free_written(t);
}

int kms_set_updates_dir(struct kms *k, const char *dir)
{
	char *copy;

	if (!dir || !*dir)
		return kms_fail(k, KMS_EINVAL, "updates folder missing");
	copy = strdup(dir);
	if (!copy)
		return kms_fail(k, KMS_ENOMEM, "updates folder");
	free(k->updates_dir);
	k->updates_dir = copy;
	return KMS_OK;
}

void kms_set_update_fail_limit(struct kms *k, unsigned n)
{
	k->fail_limit = n ? n : KMS_UPDATE_FAIL_LIMIT;
}

/* ---- the body of one update ---- */

struct body {
	uint8_t *p;
	size_t len, cap;
	uint64_t counter;
	uint32_t *users;      /* USER records already in this body */
	size_t n_users, cap_users;
	uint32_t *keys;       /* KEY / KEY_GONE records already in this body */
	size_t n_keys, cap_keys;
	uint32_t wrap_id;     /* the user's update-wrapping key */
	int n_records;
};

static void body_free(struct body *b)
{
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	free(b->p);
	free(b->users);
	free(b->keys);
	memset(b, 0, sizeof(*b));
}

static int body_add(struct kms *k, struct body *b, uint16_t type, const uint8_t *value, size_t len)
{
	size_t need = b->len + KMS_UPD_REC_HEAD + len;

	if (need > KMS_UPD_BODY_MAX)
		return kms_fail(k, KMS_EINVAL, "update over %u bytes", KMS_UPD_BODY_MAX);
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *np;

		while (cap < need)
			cap *= 2;
		np = malloc(cap);
		if (!np)
			return kms_fail(k, KMS_ENOMEM, "update body");
		if (b->len)
			memcpy(np, b->p, b->len);
		if (b->p)
			OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
		b->p = np;
		b->cap = cap;
	}
	if (kms_upd_put_rec(b->p, b->cap, &b->len, type, b->counter, value, (uint32_t)len) != 0)
		return kms_fail(k, KMS_EINVAL, "update record");
	b->n_records++;
	return KMS_OK;
}

static int seen(uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return 1;
	return 0;
}

static int add_user_rec(struct kms *k, struct body *b, uint32_t user_id)
{
	struct kms_upd_user u;
	struct kms_user info;
	uint8_t val[VALUE_MAX];
	size_t len;
	int rc;

	if (seen(b->users, b->n_users, user_id))
		return KMS_OK;
	rc = kms_user_info(k, user_id, &info);
	if (rc)
		return rc;
	memset(&u, 0, sizeof(u));
	u.id = user_id;
	snprintf(u.name, sizeof(u.name), "%s", info.name);
	if (kms_upd_val_user(val, sizeof(val), &len, &u) != 0)
		return kms_fail(k, KMS_EINVAL, "user record");
	rc = body_add(k, b, KMS_REC_USER, val, len);
	if (!rc)
		rc = push_u32(k, &b->users, &b->n_users, &b->cap_users, user_id);
	return rc;
}

/* Did user_id join group_id in the change being written? */
static int joined_now(const struct kms *k, uint32_t user_id, uint32_t group_id)
{
	for (size_t i = 0; i < k->track.n_joins; i++)
		if (k->track.joins[i].user_id == user_id && k->track.joins[i].group_id == group_id)
			return 1;
	return 0;
}

/* The GROUP record, preceded by the USER records the recipient needs:
 * every member's when for_user is 0 (a full view) or the recipient joined
 * the group in this change; otherwise only those of members who joined in
 * this change (the recipient knows the others from earlier updates), so a
 * change to a group of n members writes O(n) records, not O(n^2). */
static int add_group_rec(struct kms *k, struct body *b, uint32_t group_id, uint32_t for_user)
{
	struct kms_group g;
	struct kms_upd_group v;
	uint32_t *members = NULL;
	size_t n = 0, len = 0, cap;
	uint8_t *val = NULL;
	int all = !for_user || joined_now(k, for_user, group_id);
	int rc = kms_group_load(k, group_id, &g);

	if (!rc)
		rc = kms_ids(k, ST_GROUP_MEMBERS, &members, &n, "u", group_id);
	for (size_t i = 0; !rc && i < n; i++)
		if (all || joined_now(k, members[i], group_id))
			rc = add_user_rec(k, b, members[i]);
	if (rc) {
		free(members);
		return rc;
	}
	memset(&v, 0, sizeof(v));
	v.id = g.id;
	snprintf(v.name, sizeof(v.name), "%s", g.name);
	v.alg = g.policy.alg;
	v.max_keys = g.policy.max_keys;
	v.cryptoperiod = g.policy.cryptoperiod;
	v.rotate_on_remove = (uint8_t)g.policy.rotate_on_remove;
	v.n_members = (uint32_t)n;
	cap = 128 + 4 * n;
	val = malloc(cap);
	if (!val)
		rc = kms_fail(k, KMS_ENOMEM, "group record");
	else if (kms_upd_val_group(val, cap, &len, &v, members) != 0)
		rc = kms_fail(k, KMS_EINVAL, "group record");
	else
		rc = body_add(k, b, KMS_REC_GROUP, val, len);
	free(val);
	free(members);
	return rc;
}

static int add_id_rec(struct kms *k, struct body *b, uint16_t type, uint32_t id)
{
	uint8_t val[8];
	size_t len;

	if (kms_upd_val_id(val, sizeof(val), &len, id) != 0)
		return kms_fail(k, KMS_EINVAL, "record");
	return body_add(k, b, type, val, len);
}

/* KEY_GONE with a tombstone wrapped for this user. */
static int add_key_gone(struct kms *k, struct body *b, uint32_t key_id)
{
	struct kms_upd_key_gone v;
	uint8_t blob[KMS_UPD_BLOB_MAX], val[VALUE_MAX];
	size_t blob_len = 0, len;
	int rc;

	rc = cube_key_export_tombstone(k->cube, b->wrap_id, key_id, blob, sizeof(blob), &blob_len);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "tombstone for a user's cube");
	memset(&v, 0, sizeof(v));
	v.id = key_id;
	v.blob = blob;
	v.blob_len = (uint32_t)blob_len;
	if (kms_upd_val_key_gone(val, sizeof(val), &len, &v) != 0)
		return kms_fail(k, KMS_EINVAL, "key record");
	rc = body_add(k, b, KMS_REC_KEY_GONE, val, len);
	if (!rc)
		rc = push_u32(k, &b->keys, &b->n_keys, &b->cap_keys, key_id);
	return rc;
}

/* KEY with its value wrapped for this user (destroyed: KEY_GONE). */
static int add_key_rec(struct kms *k, struct body *b, const struct kms_key *key)
{
	struct kms_upd_key v;
	uint8_t blob[KMS_UPD_BLOB_MAX], val[VALUE_MAX];
	size_t blob_len = 0, len;
	int rc;

	if (seen(b->keys, b->n_keys, key->id))
		return KMS_OK;
	if (key->state == KMS_KEY_DESTROYED)
		return add_key_gone(k, b, key->id);
	rc = cube_key_export(k->cube, b->wrap_id, key->id, blob, sizeof(blob), &blob_len);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "export a key for a user's cube");
	memset(&v, 0, sizeof(v));
	v.id = key->id;
	snprintf(v.label, sizeof(v.label), "%s", key->label);
	v.alg = key->alg;
	v.length = key->length;
	v.group_id = key->group_id;
	v.state = (uint8_t)key->state;
	v.cryptoperiod = key->cryptoperiod;
	v.type = (uint8_t)key->type;
	v.times[0] = key->generated;
	v.times[1] = key->activated;
	v.times[2] = key->expires;
	v.times[3] = key->suspended;
	v.times[4] = key->deactivated;
	v.times[5] = key->compromised;
	v.times[6] = key->destroyed;
	v.blob = blob;
	v.blob_len = (uint32_t)blob_len;
	rc = kms_upd_val_key(val, sizeof(val), &len, &v) != 0 ? kms_fail(k, KMS_EINVAL, "key record")
							       : body_add(k, b, KMS_REC_KEY, val, len);
	OPENSSL_cleanse(blob, sizeof(blob));
	OPENSSL_cleanse(val, sizeof(val));
	if (!rc)
		rc = push_u32(k, &b->keys, &b->n_keys, &b->cap_keys, key->id);
	return rc;
}

static int add_group_keys(struct kms *k, struct body *b, uint32_t group_id)
{
	struct kms_key *keys;
	size_t n;
	int rc = kms_key_list(k, group_id, &keys, &n);

	for (size_t i = 0; !rc && i < n; i++)
		if (keys[i].state != KMS_KEY_DESTROYED)
			rc = add_key_rec(k, b, &keys[i]);
	free(keys);
	return rc;
}

/* The user left group_id: forget it; keys that may still encrypt (or are
 * destroyed) are destroyed in their cube, deactivated and compromised
 * ones stay there decrypt-only with their new state (a deleted user
 * keeps nothing: destroy_all). */
static int add_departure(struct kms *k, struct body *b, uint32_t group_id, int destroy_all)
{
	struct kms_key *keys;
	size_t n;
	int rc = add_id_rec(k, b, KMS_REC_GROUP_GONE, group_id);

	if (!rc)
		rc = kms_key_list(k, group_id, &keys, &n);
	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < n; i++) {
		if (seen(b->keys, b->n_keys, keys[i].id))
			continue;
		if (!destroy_all && (keys[i].state == KMS_KEY_DEACTIVATED ||
				     keys[i].state == KMS_KEY_COMPROMISED))
			rc = add_key_rec(k, b, &keys[i]);
		else
			rc = add_key_gone(k, b, keys[i].id);
	}
	free(keys);
	return rc;
}

static int is_member(struct kms *k, uint32_t user_id, uint32_t group_id, int *yes)
{
	sqlite3_stmt *st;
	int rc = kms_row(k, ST_MEMBER_IS, &st, KMS_ENOTMEMBER, "uu", user_id, group_id);

	*yes = rc == KMS_OK;
	if (rc == KMS_OK)
		sqlite3_reset(st);
	return rc == KMS_ENOTMEMBER ? KMS_OK : rc;
}

static int add_self(struct kms *k, struct body *b, const struct kms_user *u)
{
	struct kms_upd_self v;
	uint8_t val[VALUE_MAX];
	size_t len;

	memset(&v, 0, sizeof(v));
	v.user_id = u->id;
	snprintf(v.name, sizeof(v.name), "%s", u->name);
	v.db_key_id = KMS_DB_KEY_ID;
	if (kms_upd_val_self(val, sizeof(val), &len, &v) != 0)
		return kms_fail(k, KMS_EINVAL, "self record");
	return body_add(k, b, KMS_REC_SELF, val, len);
}

/* The whole view of a user: RESET, SELF, then each group with its
 * members and keys. */
static int build_full(struct kms *k, struct body *b, const struct kms_user *u)
{
	uint32_t *gids = NULL;
	size_t n = 0;
	int rc = body_add(k, b, KMS_REC_RESET, NULL, 0);

	if (!rc)
		rc = add_self(k, b, u);
	if (!rc)
		rc = add_user_rec(k, b, u->id);
	if (!rc)
		rc = kms_ids(k, ST_USER_GROUPS, &gids, &n, "u", u->id);
	for (size_t i = 0; !rc && i < n; i++) {
		rc = add_group_rec(k, b, gids[i], 0);
		if (!rc)
			rc = add_group_keys(k, b, gids[i]);
	}
	free(gids);
	return rc;
}

/* What this change means for one user. */
static int build_delta(struct kms *k, struct body *b, uint32_t user_id, int gone)
{
	const struct kms_track *t = &k->track;
	int member, rc = KMS_OK;

	for (size_t i = 0; !rc && i < t->n_departs; i++) {
		if (t->departs[i].user_id != user_id)
			continue;
		rc = is_member(k, user_id, t->departs[i].group_id, &member);
		if (!rc && !member)
			rc = add_departure(k, b, t->departs[i].group_id, gone);
	}
	for (size_t i = 0; !rc && !gone && i < t->n_groups; i++) {
		rc = is_member(k, user_id, t->groups[i], &member);
		if (!rc && member)
			rc = add_group_rec(k, b, t->groups[i], user_id);
	}
	for (size_t i = 0; !rc && !gone && i < t->n_joins; i++) {
		if (t->joins[i].user_id != user_id)
			continue;
		rc = is_member(k, user_id, t->joins[i].group_id, &member);
		if (!rc && member)
			rc = add_group_keys(k, b, t->joins[i].group_id);
	}
	for (size_t i = 0; !rc && !gone && i < t->n_keys; i++) {
		struct kms_key key;

		rc = kms_key_load(k, t->keys[i], &key);
		if (!rc)
			rc = is_member(k, user_id, key.group_id, &member);
		if (!rc && member)
			rc = add_key_rec(k, b, &key);
	}
	if (!rc && gone)
		rc = add_id_rec(k, b, KMS_REC_USER_GONE, user_id);
	return rc;
}

/* ---- writing a file ---- */

static int hex_serial(const uint8_t serial[WIRE_SERIAL_LEN], char out[2 * WIRE_SERIAL_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < WIRE_SERIAL_LEN; i++) {
		out[2 * i] = digits[serial[i] >> 4];
		out[2 * i + 1] = digits[serial[i] & 15];
	}
	out[2 * WIRE_SERIAL_LEN] = '\0';
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* UPDATES/<serial>, made if missing. */
static int user_dir(struct kms *k, const uint8_t serial[WIRE_SERIAL_LEN], char *out, size_t cap)
{
	char hex[2 * WIRE_SERIAL_LEN + 1];

	hex_serial(serial, hex);
	if ((size_t)snprintf(out, cap, "%s/%s", k->updates_dir, hex) >= cap)
		return kms_fail(k, KMS_EINVAL, "updates folder path too long");
	if (mkdir(out, 0700) == 0) {
		if (fsync_dir(k->updates_dir) != 0)
			return kms_fail(k, KMS_EIO, "fsync %s: %s", k->updates_dir, strerror(errno));
	} else if (errno != EEXIST) {
		return kms_fail(k, KMS_EIO, "mkdir %s: %s", out, strerror(errno));
	}
	return KMS_OK;
}

/* Highest counter of the update files in dir (0: none). */
static uint64_t dir_max_counter(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t max = 0, c;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (kms_upd_name_parse(e->d_name, &c) == 0 && c > max)
			max = c;
	closedir(d);
	return max;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int kms_file_publish(struct kms *k, const char *dir, const char *name, const uint8_t *data,
		     size_t len, int replace, char *path, size_t path_cap)
{
	char tmp[4096];
	int fd, rc = KMS_OK;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%ld", dir, name, (long)getpid()) >=
		    sizeof(tmp) ||
	    (size_t)snprintf(path, path_cap, "%s/%s", dir, name) >= path_cap)
		return kms_fail(k, KMS_EINVAL, "update path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kms_fail(k, KMS_EIO, "create %s: %s", tmp, strerror(errno));
	if (write_all(fd, data, len) != 0 || fsync(fd) != 0)
		rc = kms_fail(k, KMS_EIO, "write %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && !rc)
		rc = kms_fail(k, KMS_EIO, "close %s: %s", tmp, strerror(errno));
	if (!rc && (replace ? renameat(AT_FDCWD, tmp, AT_FDCWD, path)
			    : sefile_rename_noreplace(AT_FDCWD, tmp, AT_FDCWD, path)) != 0)
		rc = kms_fail(k, errno == EEXIST ? KMS_EEXIST : KMS_EIO,
			      "publish %s: %s (another admin writing?)", path, strerror(errno));
	if (rc) {
		unlink(tmp);
		return rc;
	}
	if (fsync_dir(dir) != 0)
		return kms_fail(k, KMS_EIO, "fsync %s: %s", dir, strerror(errno));
	return KMS_OK;
}

static int remember_written(struct kms *k, const char *path)
{
	struct kms_track *t = &k->track;
	char **nv;

	if (t->n_written == t->cap_written) {
		size_t c = t->cap_written ? t->cap_written * 2 : 4;

		nv = realloc(t->written, c * sizeof(*nv));
		if (!nv)
			return kms_fail(k, KMS_ENOMEM, "update list");
		t->written = nv;
		t->cap_written = c;
	}
	t->written[t->n_written] = strdup(path);
	if (!t->written[t->n_written])
		return kms_fail(k, KMS_ENOMEM, "update list");
	t->n_written++;
	return KMS_OK;
}

/* Write data as a temp file in dir, not yet synced nor renamed; the
 * change's files are published together by publish_staged. */
static int stage_file(struct kms *k, const char *dir, const char *name, const uint8_t *data,
		      size_t len)
{
	struct kms_track *t = &k->track;
	char tmp[4096], path[4096];
	int fd, rc = KMS_OK;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%ld", dir, name, (long)getpid()) >=
		    sizeof(tmp) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return kms_fail(k, KMS_EINVAL, "update path too long");
	if (t->n_staged == t->cap_staged) {
		size_t c = t->cap_staged ? t->cap_staged * 2 : 16;
		char **a = realloc(t->staged_tmp, c * sizeof(*a)), **b;

		if (!a)
			return kms_fail(k, KMS_ENOMEM, "staged updates");
		t->staged_tmp = a;
		b = realloc(t->staged_path, c * sizeof(*b));
		if (!b)
			return kms_fail(k, KMS_ENOMEM, "staged updates");
		t->staged_path = b;
		t->cap_staged = c;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kms_fail(k, KMS_EIO, "create %s: %s", tmp, strerror(errno));
	if (write_all(fd, data, len) != 0)
		rc = kms_fail(k, KMS_EIO, "write %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && !rc)
		rc = kms_fail(k, KMS_EIO, "close %s: %s", tmp, strerror(errno));
	t->staged_tmp[t->n_staged] = strdup(tmp);
	t->staged_path[t->n_staged] = strdup(path);
	if (!rc && (!t->staged_tmp[t->n_staged] || !t->staged_path[t->n_staged]))
		rc = kms_fail(k, KMS_ENOMEM, "staged updates");
	if (rc) {
		unlink(tmp);
		free(t->staged_tmp[t->n_staged]);
		free(t->staged_path[t->n_staged]);
		return rc;
	}
	t->n_staged++;
	return KMS_OK;
}

/* The file system of the updates folder to stable storage. */
static int sync_updates_fs(struct kms *k)
{
	int fd = open(k->updates_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 ? -1 : syncfs(fd);

	if (fd >= 0)
		close(fd);
	return rc == 0 ? KMS_OK : kms_fail(k, KMS_EIO, "sync %s: %s", k->updates_dir, strerror(errno));
}

/* Publish the staged files: their contents durable (one syncfs), then each
 * renamed to its number (never over an existing file: another admin
 * process took that number, KMS_EEXIST), then the names durable (one
 * syncfs).  A crash leaves temp files (debris) or whole numbered files,
 * as the per-file fsyncs did, for two syncs per change instead of two per
 * file (docs/UPDATES.md).  On failure every file not renamed is unlinked;
 * those renamed are in the written list, unlinked by the rollback. */
static int publish_staged(struct kms *k)
{
	struct kms_track *t = &k->track;
	int rc;

	if (t->n_staged == 0)
		return KMS_OK;
	rc = sync_updates_fs(k);
	for (size_t i = 0; !rc && i < t->n_staged; i++) {
		if (sefile_rename_noreplace(AT_FDCWD, t->staged_tmp[i], AT_FDCWD,
					    t->staged_path[i]) != 0)
			rc = kms_fail(k, errno == EEXIST ? KMS_EEXIST : KMS_EIO,
				      "publish %s: %s (another admin writing?)", t->staged_path[i],
				      strerror(errno));
		else
			rc = remember_written(k, t->staged_path[i]);
	}
	if (!rc)
		rc = sync_updates_fs(k);
	staged_discard(t); /* the renamed temps are gone: unlink is a no-op for them */
	return rc;
}

/* Seal the body in the admin cube: header || sealed sectors into *out. */
static int seal_update(struct kms *k, const struct kms_upd_header *h, const uint8_t *body,
		       uint8_t **out, size_t *out_len)
{
	struct cube_sector secs[SECTORS_PER_CALL];
	uint8_t file_id[WIRE_FILE_ID_LEN];
	uint32_t n_sectors;
	uint64_t sealed = kms_upd_sealed_len(h->body_len, &n_sectors);
	size_t total = KMS_UPD_HEADER_LEN + (size_t)sealed, in_off = 0, out_off = KMS_UPD_HEADER_LEN;
	uint8_t *buf;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (kms_upd_file_id(h, file_id) != 0)
		return kms_fail(k, KMS_ENOMEM, "update file ID");
	buf = malloc(total);
	if (!buf)
		return kms_fail(k, KMS_ENOMEM, "update file");
	kms_upd_header_pack(h, buf);
	for (uint32_t s = 0; s < n_sectors;) {
		uint32_t n = 0;
		size_t plain = 0;

		while (n < SECTORS_PER_CALL && s + n < n_sectors) {
			uint64_t left = h->body_len - (uint64_t)(s + n) * KMS_UPD_SECTOR;

			secs[n].index = s + n;
			secs[n].len = left < KMS_UPD_SECTOR ? (uint32_t)left : KMS_UPD_SECTOR;
			plain += secs[n].len;
			n++;
		}
		rc = cube_seal(k->cube, h->enc_key_id, WIRE_ALG_AES256_GCM, file_id, secs, n,
			       body + in_off, buf + out_off);
		if (rc != CUBE_OK) {
			free(buf);
			return kms_cube_fail(k, rc, "seal an update");
		}
		in_off += plain;
		out_off += plain + (size_t)n * WIRE_SECTOR_OVERHEAD;
		s += n;
	}
	*out = buf;
	*out_len = total;
	return KMS_OK;
}


static int provisioned(const struct kms_user *u)
{
	return u->update_key_id != 0 && u->kwk_id != 0;
}

/* Build, seal and write the one update this change owes user u. */
static int emit_one(struct kms *k, const struct kms_user *u, int gone, uint64_t gone_next)
{
	struct kms_upd_header h;
	struct body b;
	char dir[4096], name[KMS_UPD_NAME_LEN + 1];
	uint8_t *file = NULL;
	size_t file_len = 0;
	uint64_t next = gone_next, on_disk;
	int found = 1, full = k->track.full_user == u->id, orphans = 0;
	int rc;

	if (!k->cube || !k->updates_dir)
		return kms_fail(k, KMS_EINVAL, "user %u is provisioned: this change needs %s", u->id,
				!k->cube ? "the admin cube" : "an updates folder (kms_set_updates_dir)");
	rc = user_dir(k, u->serial, dir, sizeof(dir));
	if (!rc && !gone)
		rc = next_counter(k, u->id, &next, &found);
	if (rc)
		return rc;
	on_disk = dir_max_counter(dir);
	if (on_disk >= next) {
		next = on_disk + 1; /* never reuse a number another writer took */
		/* A numbered file this database does not record: its change
		 * published it and then rolled back (the admin was killed between
		 * publishing and committing), or an older database was restored.
		 * The user may have applied it, so a delta from our state is not
		 * enough: send the whole view (recovery priority), then this
		 * change's delta for the tombstones of groups the user left. */
		orphans = !gone && !full;
	}
	memset(&b, 0, sizeof(b));
	b.counter = next;
	b.wrap_id = u->kwk_id;
	rc = full || orphans ? build_full(k, &b, u) : build_delta(k, &b, u->id, gone);
	if (!rc && orphans)
		rc = build_delta(k, &b, u->id, gone);
	if (!rc && b.n_records == 0) {
		body_free(&b);
		return KMS_OK; /* nothing for this user */
	}
	memset(&h, 0, sizeof(h));
	h.version = KMS_UPD_VERSION;
	h.priority = full ? k->track.full_priority : orphans ? KMS_UPD_RECOVERY : KMS_UPD_STANDARD;
	memcpy(h.serial, u->serial, WIRE_SERIAL_LEN);
	h.counter = next;
	h.enc_key_id = u->update_key_id;
	h.wrap_key_id = u->kwk_id;
	h.body_len = (uint32_t)b.len;
	if (!rc)
		rc = seal_update(k, &h, b.p, &file, &file_len);
	body_free(&b);
	kms_upd_name(next, name);
	if (!rc)
		rc = stage_file(k, dir, name, file, file_len);
	free(file);
	if (rc)
		return rc;
	rc = kms_run(k, ST_UPD_INSERT, "uiiit", u->id, (int64_t)next, (int64_t)h.priority,
			     kms_now(k), name);
	if (!rc && !gone)
		rc = kms_run(k, ST_UPD_STATE_PUT, "uiiii", u->id, (int64_t)(next + 1), (int64_t)0,
			     (int64_t)0, (int64_t)0);
	return rc;
}

/* Users this change concerns, ascending, without duplicates. */
static int affected_users(struct kms *k, uint32_t **out, size_t *n_out)
{
	const struct kms_track *t = &k->track;
	uint32_t *v = NULL, *members;
	size_t n = 0, cap = 0, nm;
	int rc = KMS_OK;

	if (t->full_user)
		rc = push_u32(k, &v, &n, &cap, t->full_user);
	for (size_t i = 0; !rc && i < t->n_departs; i++)
		rc = push_u32(k, &v, &n, &cap, t->departs[i].user_id);
	for (size_t i = 0; !rc && i < t->n_joins; i++)
		rc = push_u32(k, &v, &n, &cap, t->joins[i].user_id);
	for (size_t i = 0; !rc && i < t->n_groups + t->n_keys; i++) {
		uint32_t gid;

		if (i < t->n_groups) {
			gid = t->groups[i];
		} else {
			struct kms_key key;

			rc = kms_key_load(k, t->keys[i - t->n_groups], &key);
			if (rc)
				break;
			gid = key.group_id;
		}
		rc = kms_ids(k, ST_GROUP_MEMBERS, &members, &nm, "u", gid);
		for (size_t j = 0; !rc && j < nm; j++)
			rc = push_u32(k, &v, &n, &cap, members[j]);
		free(members);
	}
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n_out = n;
	return KMS_OK;
}

int kms_updates_emit(struct kms *k)
{
	const struct kms_track *t = &k->track;
	uint32_t *users = NULL;
	size_t n = 0;
	int rc = affected_users(k, &users, &n);

	for (size_t i = 0; !rc && i < n; i++) {
		struct kms_user u;
		int is_gone = 0;

		for (size_t g = 0; g < t->n_gone; g++)
			is_gone |= t->gone[g].u.id == users[i];
		if (is_gone)
			continue;
		rc = kms_user_info(k, users[i], &u);
		if (rc == KMS_ENOUSER) {
			rc = KMS_OK; /* deleted in this change: below */
			continue;
		}
		if (!rc && provisioned(&u))
			rc = emit_one(k, &u, 0, 0);
	}
	for (size_t g = 0; !rc && g < t->n_gone; g++)
		if (provisioned(&t->gone[g].u))
			rc = emit_one(k, &t->gone[g].u, 1, t->gone[g].next_counter);
	free(users);
	if (!rc)
		rc = publish_staged(k);
	staged_discard(&k->track);
	return rc;
}

/* ---- recovery and pruning ---- */

int kms_user_recover(struct kms *k, uint32_t user_id, const char *reason)
{
	char detail[160];
	struct kms_user u;
	int64_t now = kms_now(k);
	int rc;

	snprintf(detail, sizeof(detail), "user %u: %s", user_id, reason ? reason : "");
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_user_info(k, user_id, &u);
	if (!rc && !provisioned(&u))
		rc = kms_fail(k, KMS_ENOTPROV, "user %u has no cube yet (kms_user_init)", user_id);
	if (!rc)
		rc = kms_run(k, ST_REC_PUT, "uiti", user_id, now, reason ? reason : "", now);
	if (!rc) {
		k->track.full_user = user_id;
		k->track.full_priority = KMS_UPD_RECOVERY;
	}
	return kms_change_end(k, rc, "user_recover", detail);
}

/* The counter in dir/ack (0: none or unreadable: prune nothing). */
static uint64_t read_ack(const char *dir)
{
	char path[4200], text[ACK_MAX + 1], *end;
	unsigned long long v;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/ack", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	n = read(fd, text, ACK_MAX);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || (*end != '\n' && *end != '\0'))
		return 0;
	return (uint64_t)v;
}

static int prune_dir(struct kms *k, const char *dir, uint64_t ack, uint32_t *removed)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t c;
	char path[4200];
	int any = 0;

	if (!d)
		return errno == ENOENT ? KMS_OK : kms_fail(k, KMS_EIO, "open %s: %s", dir,
							   strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (kms_upd_name_parse(e->d_name, &c) != 0 || c > ack)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path))
			continue;
		if (unlink(path) == 0) {
			(*removed)++;
			any = 1;
		}
	}
	closedir(d);
	if (any && fsync_dir(dir) != 0)
		return kms_fail(k, KMS_EIO, "fsync %s: %s", dir, strerror(errno));
	return KMS_OK;
}

int kms_updates_prune(struct kms *k, uint32_t *n_removed)
{
	struct kms_user *users = NULL;
	size_t n = 0;
	uint32_t removed = 0;
	char dir[4096], detail[64];
	int rc;

	if (n_removed)
		*n_removed = 0;
	k->msg[0] = '\0';
	if (k->role != KMS_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "only the administrator prunes updates");
	if (!k->updates_dir)
		return kms_fail(k, KMS_EINVAL, "no updates folder (kms_set_updates_dir)");
	rc = kms_user_list(k, &users, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		char hex[2 * WIRE_SERIAL_LEN + 1];
		uint64_t ack;

		if (!provisioned(&users[i]))
			continue;
		hex_serial(users[i].serial, hex);
		snprintf(dir, sizeof(dir), "%s/%s", k->updates_dir, hex);
		ack = read_ack(dir);
		if (ack)
			rc = prune_dir(k, dir, ack, &removed);
	}
	free(users);
	if (rc)
		return rc;
	snprintf(detail, sizeof(detail), "%" PRIu32 " files", removed);
	rc = kms_audit_log(k, "updates_prune", KMS_OK, detail);
	if (!rc && n_removed)
		*n_removed = removed;
	return rc;
}

int kms_upd_user_dir_path(const char *updates_dir, const uint8_t serial[WIRE_SERIAL_LEN],
			  char *out, size_t cap)
{
	char hex[2 * WIRE_SERIAL_LEN + 1];

	hex_serial(serial, hex);
	return (size_t)snprintf(out, cap, "%s/%s", updates_dir, hex) < cap ? 0 : -1;
}

int kms_updates_user_dir(const char *updates_dir, const uint8_t serial[WIRE_SERIAL_LEN],
			 char *out, size_t cap)
{
	return kms_upd_user_dir_path(updates_dir, serial, out, cap);
}
