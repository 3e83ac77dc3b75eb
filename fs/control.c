/*
 * control.c - the control tree /.sekey/ (docs/CONTROL.md): what the mount's
 * cube and KMS know, as one value per file in the manner of sysfs, and on
 * the administrator's mount every SEkey change as a file operation in the
 * manner of configfs (mkdir creates a user or group, rmdir deletes it,
 * writing a file changes an attribute or runs an operation).
 *
 * Nothing here is stored in BACKING: every node is computed from the KMS
 * when it is looked up, listed or opened.  A node's inode number says what
 * it is (CTL_INO_FLAG | kind << 40 | object ID << 8 | attribute), so the
 * tree keeps no state of its own and a node whose object is gone is
 * ENOENT.  Every write is one whole value at offset 0 (a newline at the
 * end is dropped), validated, and applied all-or-nothing by one KMS call;
 * a refused write is the errno a user expects, with the reason in the log
 * and in /.sekey/last_error.  On a user's mount every change is EPERM;
 * only the find_key query may be written there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../wire/frame.h"
#include "internal.h"

#define CTL_INO_FLAG (UINT64_C(1) << 62)
#define CTL_VALUE_MAX 4096           /* longest value a write may carry */
#define CTL_DIR_NAME ".sekey"

enum ctl_kind {
	K_ROOT = 1,     /* /.sekey */
	K_TOP,          /* a file of /.sekey (attr: index in top_files) */
	K_USERS,        /* /.sekey/users */
	K_GROUPS,
	K_KEYS,
	K_ADMIN,        /* /.sekey/admin */
	K_ADMIN_FILE,
	K_USER,         /* users/NAME (obj: user ID) */
	K_USER_FILE,
	K_GROUP,        /* groups/NAME (obj: group ID) */
	K_GROUP_FILE,
	K_KEY,          /* keys/ID (obj: key ID) */
	K_KEY_FILE,
};

struct ctl_node {
	enum ctl_kind kind;
	uint32_t obj;
	unsigned attr;
};

/* A growing text (a file's content, a listing). */
struct text {
	char *p;
	size_t len, cap;
	int oom;
};

/* An open control file or directory (fi->fh). */
struct ctl_handle {
	struct ctl_node node;
	struct text content;        /* the file's content, read at open or by a query */
	int answered;               /* a query's answer replaced the content */
	/* Files that answer writes read as a stream from a cursor of their
	 * own, so `exec 3<>F; echo Q >&3; cat <&3` reads the answer. */
	pthread_mutex_t mu;
	size_t cursor;
	/* directories: the listing made at opendir */
	struct ctl_dirent {
		char name[KMS_NAME_MAX + 1];
		uint64_t ino;
		mode_t type;
	} *ents;
	size_t n_ents;
};

/* Every callback runs with the KMS locked (kh) and returns 0 or a KMS_*
 * code; why gets a reason beyond kms_errmsg when there is one. */
struct ctl_call {
	struct sekeyfs *fs;
	struct kms *kh;             /* NULL on a mount without KMS */
	uint32_t obj;
	struct ctl_handle *h;       /* the open file of a write (query answers) */
	char why[256];
};

typedef int (*ctl_show_fn)(struct ctl_call *c, struct text *out);
typedef int (*ctl_store_fn)(struct ctl_call *c, char *value);

enum {
	A_WRITE = 1,     /* writable on the admin's mount */
	A_QUERY = 2,     /* writable on every mount: changes nothing, answers on read */
	A_NO_READ = 4,   /* write-only */
	A_UNLOCKED = 8,  /* runs without the KMS lock (it takes it itself, maybe often) */
};

struct ctl_attr {
	const char *name;
	ctl_show_fn show;
	ctl_store_fn store;
	unsigned flags;
};

/* ---- text ---- */

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = 1;
			return;
		}
		if (t->p && (size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 256;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(t->p, cap);
		if (!np) {
			t->oom = 1;
			return;
		}
		t->p = np;
		t->cap = cap;
	}
}

static void text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

/* ISO 8601 UTC, or "never" for 0 (a time that did not happen). */
static const char *time_text(int64_t when, char buf[32])
{
	struct tm tm;
	time_t tt = (time_t)when;

	if (when == 0 || !gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return "never";
	return buf;
}

static void add_time(struct text *t, int64_t when)
{
	char buf[32];

	text_add(t, "%s\n", time_text(when, buf));
}

static void add_hex(struct text *t, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		text_add(t, "%02x", p[i]);
	text_add(t, "\n");
}

/* ---- parsing written values ---- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* 1..KMS_NAME_MAX printable bytes, no ',' '/' or space (user and group
 * names, as the recipients xattrs accept them). */
static int name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KMS_NAME_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == '/' ||
		    s[i] == ',')
			return 0;
	return 1;
}

static int bad_value(struct ctl_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad_value(struct ctl_call *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return KMS_EINVAL;
}

/* ---- the files of /.sekey ---- */

static int show_whoami(struct ctl_call *c, struct text *out)
{
	text_add(out, "%s\n", c->fs->kms ? c->fs->kms->user : "");
	return 0;
}

static int show_role(struct ctl_call *c, struct text *out)
{
	text_add(out, "%s\n", !c->fs->kms ? "none" : c->fs->kms->admin ? "admin" : "user");
	return 0;
}

static int show_serial(struct ctl_call *c, struct text *out)
{
	if (c->fs->kms)
		add_hex(out, c->fs->kms->serial, WIRE_SERIAL_LEN);
	else
		text_add(out, "unknown (no KMS on this mount)\n");
	return 0;
}

/* Update files in the user's folder not applied yet. */
static unsigned pending_updates(const struct sekeyfs_kms *k, uint64_t next)
{
	char dir[4096];
	struct dirent *de;
	unsigned n = 0;
	DIR *dp;

	if (next == 0 || kms_updates_user_dir(k->updates, k->serial, dir, sizeof(dir)) != 0 ||
	    !(dp = opendir(dir)))
		return 0;
	while ((de = readdir(dp)) != NULL) {
		char *end;
		unsigned long long counter;

		if (strlen(de->d_name) != 20 || strcmp(de->d_name + 16, ".upd"))
			continue;
		counter = strtoull(de->d_name, &end, 10);
		if (end == de->d_name + 16 && counter >= next)
			n++;
	}
	closedir(dp);
	return n;
}

static int show_status(struct ctl_call *c, struct text *out)
{
	struct sekeyfs_kms *k = c->fs->kms;
	struct kms_sync_report rep;
	int rc;

	if (!k) {
		text_add(out, "kms: none (mount with --updates DIR)\n");
		return 0;
	}
	text_add(out, "kms: %s\nuser: %s\nupdates: %s\n", k->admin ? "admin" : "user", k->user,
		 k->updates);
	if (k->admin) {
		struct kms_user *u = NULL;
		struct kms_group *g = NULL;
		struct kms_key *keys = NULL;
		size_t nu = 0, ng = 0, nk = 0;

		rc = kms_user_list(c->kh, &u, &nu);
		if (!rc)
			rc = kms_group_list(c->kh, &g, &ng);
		if (!rc)
			rc = kms_key_list(c->kh, 0, &keys, &nk);
		free(u);
		free(g);
		free(keys);
		if (rc)
			return rc;
		text_add(out, "users: %zu\ngroups: %zu\nkeys: %zu\n", nu, ng, nk);
		return 0;
	}
	rc = kms_sync_status(c->kh, &rep);
	if (rc)
		return rc;
	text_add(out, "state: %s\n", rep.locked ? "locked (waiting for a recovery update)"
				     : k->last_sync_rc != KMS_OK ? "refused (see last_sync)"
				     : "synced");
	text_add(out, "next_counter: %" PRIu64 "\npending: %u\nfailures: %u\n", rep.next_counter,
		 pending_updates(k, rep.next_counter), rep.failures);
	text_add(out, "last_sync: ");
	add_time(out, k->last_sync);
	text_add(out, "last_sync_result: %s\n", k->last_sync_msg[0] ? k->last_sync_msg : "none");
	text_add(out, "last_applied: ");
	add_time(out, k->last_applied);
	text_add(out, "applied_since_mount: %" PRIu64 "\n", k->n_applied);
	return 0;
}

static int show_stale(struct ctl_call *c, struct text *out)
{
	unsigned n;
	int rc = fs_stale_count(c->fs, &n);

	if (rc)
		return bad_value(c, "counting stale files: %s", strerror(-rc)), KMS_EIO;
	text_add(out, "%u\n", n);
	return 0;
}

static int show_audit(struct ctl_call *c, struct text *out)
{
	struct kms_audit_rec *r = NULL;
	uint64_t from = 1;
	char when[32];
	size_t n;
	int rc;

	if (!c->kh)
		return 0;
	do {
		rc = kms_audit_list(c->kh, from, 1024, &r, &n);
		for (size_t i = 0; !rc && i < n; i++) {
			text_add(out, "%" PRIu64 " %s %s %s %s\n", r[i].seq, time_text(r[i].time, when),
				 r[i].op, r[i].result ? kms_strerror(r[i].result) : "ok", r[i].detail);
			from = r[i].seq + 1;
		}
		free(r);
		r = NULL;
	} while (!rc && n == 1024);
	return rc;
}

static int show_last_error(struct ctl_call *c, struct text *out)
{
	pthread_mutex_lock(&c->fs->ctl_mu);
	text_add(out, "%s%s", c->fs->ctl_last_error, c->fs->ctl_last_error[0] ? "\n" : "");
	pthread_mutex_unlock(&c->fs->ctl_mu);
	return 0;
}

/* "alice,bob" (with the caller, v3) or "group:NAME" (v2): the key ID. */
static int store_find_key(struct ctl_call *c, char *value)
{
	enum fs_rcpt_kind kind = FS_RCPT_USERS;
	char rcpt[FS_RCPT_MAX + 1];
	uint32_t key;
	int rc;

	if (!strncmp(value, "group:", 6)) {
		kind = FS_RCPT_GROUP;
		value += 6;
	}
	if (fs_rcpt_parse(kind, value, strlen(value), rcpt) != 0)
		return bad_value(c, "not a recipients list (alice,bob) or group:NAME");
	rc = fs_rcpt_key(c->fs, kind, rcpt, &key);
	if (rc == -ENOKEY)
		return bad_value(c, "no usable key for %s (see the log)", rcpt), KMS_ENOKEY;
	if (rc)
		return bad_value(c, "find_key: %s", strerror(-rc)), KMS_EIO;
	text_free(&c->h->content);
	text_add(&c->h->content, "%" PRIu32 "\n", key);
	c->h->answered = 1;
	return 0;
}

/* ---- admin operations (/.sekey/admin) ---- */

static int store_expire_check(struct ctl_call *c, char *value)
{
	uint32_t n = 0;
	int rc;

	if (strcmp(value, "1"))
		return bad_value(c, "write 1 to run the expiry check");
	rc = kms_expired_check(c->kh, (int64_t)time(NULL), &n);
	if (!rc) {
		text_free(&c->h->content);
		text_add(&c->h->content, "%" PRIu32 "\n", n);
		c->h->answered = 1;
	}
	return rc;
}

static int store_prune(struct ctl_call *c, char *value)
{
	uint32_t n = 0;
	int rc;

	if (strcmp(value, "1"))
		return bad_value(c, "write 1 to prune acknowledged update files");
	rc = kms_updates_prune(c->kh, &n);
	if (!rc) {
		text_free(&c->h->content);
		text_add(&c->h->content, "%" PRIu32 "\n", n);
		c->h->answered = 1;
	}
	return rc;
}

/* "NAME [reason...]": a recovery update (the user's whole view). */
static int store_recover(struct ctl_call *c, char *value)
{
	char *reason = strchr(value, ' ');
	uint32_t uid;
	int rc;

	if (reason)
		*reason++ = '\0';
	if (!name_valid(value))
		return bad_value(c, "write a user name, then optionally a reason");
	rc = kms_user_by_name(c->kh, value, &uid);
	return rc ? rc : kms_user_recover(c->kh, uid, reason && *reason ? reason : "control tree");
}

/* ---- users/NAME ---- */

static int user_of(struct ctl_call *c, struct kms_user *u)
{
	return kms_user_info(c->kh, c->obj, u);
}

static int show_user_id(struct ctl_call *c, struct text *out)
{
	text_add(out, "%" PRIu32 "\n", c->obj);
	return 0;
}

static int show_user_serial(struct ctl_call *c, struct text *out)
{
	static const uint8_t zero[WIRE_SERIAL_LEN];
	struct kms_user u;
	int rc = user_of(c, &u);

	if (rc)
		return rc;
	if (!memcmp(u.serial, zero, sizeof(zero)))
		text_add(out, "none (not provisioned)\n");
	else
		add_hex(out, u.serial, WIRE_SERIAL_LEN);
	return 0;
}

static int show_user_groups(struct ctl_call *c, struct text *out)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int rc = kms_user_groups(c->kh, c->obj, &ids, &n);

	for (size_t i = 0; !rc && i < n; i++) {
		struct kms_group g;

		if (kms_group_info(c->kh, ids[i], &g) == KMS_OK)
			text_add(out, "%s\n", g.name);
	}
	free(ids);
	return rc;
}

static int show_user_created(struct ctl_call *c, struct text *out)
{
	struct kms_user u;
	int rc = user_of(c, &u);

	if (!rc)
		add_time(out, u.created);
	return rc;
}

/* ---- groups/NAME ---- */

static int group_of(struct ctl_call *c, struct kms_group *g)
{
	return kms_group_info(c->kh, c->obj, g);
}

static int show_group_id(struct ctl_call *c, struct text *out)
{
	text_add(out, "%" PRIu32 "\n", c->obj);
	return 0;
}

/* One show function per policy field would be copies of this: the
 * attribute's index picks the field. */
static int show_group_field(struct ctl_call *c, struct text *out, unsigned field)
{
	struct kms_group g;
	int rc = group_of(c, &g);

	if (rc)
		return rc;
	switch (field) {
	case 0: text_add(out, "%s\n", wire_alg_name(g.policy.alg)); break;
	case 1: text_add(out, "%" PRIu32 "\n", g.policy.max_keys); break;
	case 2: text_add(out, "%" PRId64 "\n", g.policy.cryptoperiod); break;
	case 3: text_add(out, "%d\n", g.policy.rotate_on_remove); break;
	case 4: add_time(out, g.created); break;
	}
	return 0;
}

#define GROUP_SHOW(n, f) \
	static int show_group_##n(struct ctl_call *c, struct text *out) { return show_group_field(c, out, f); }
GROUP_SHOW(alg, 0)
GROUP_SHOW(max_keys, 1)
GROUP_SHOW(cryptoperiod, 2)
GROUP_SHOW(rotate, 3)
GROUP_SHOW(created, 4)

/* Change one policy field: the rest stays as it is. */
static int set_policy(struct ctl_call *c, int field, uint64_t v)
{
	struct kms_group g;
	int rc = group_of(c, &g);

	if (rc)
		return rc;
	if (field == 0)
		g.policy.max_keys = (uint32_t)v;
	else if (field == 1)
		g.policy.cryptoperiod = (int64_t)v;
	else
		g.policy.rotate_on_remove = (int)v;
	return kms_group_set_policy(c->kh, c->obj, &g.policy);
}

static int store_group_max_keys(struct ctl_call *c, char *value)
{
	uint64_t v;

	if (parse_u64(value, KMS_MAX_KEYS_LIMIT, &v) || v == 0)
		return bad_value(c, "max_keys is a number from 1 to %u", KMS_MAX_KEYS_LIMIT);
	return set_policy(c, 0, v);
}

static int store_group_cryptoperiod(struct ctl_call *c, char *value)
{
	uint64_t v;

	if (parse_u64(value, INT64_MAX, &v) || v == 0)
		return bad_value(c, "cryptoperiod is a number of seconds > 0");
	return set_policy(c, 1, v);
}

static int store_group_rotate(struct ctl_call *c, char *value)
{
	if (strcmp(value, "0") && strcmp(value, "1"))
		return bad_value(c, "rotate_on_remove is 0 or 1");
	return set_policy(c, 2, value[0] == '1');
}

static int store_group_alg(struct ctl_call *c, char *value)
{
	struct kms_group g;
	uint8_t alg;
	int rc = group_of(c, &g);

	if (rc)
		return rc;
	if (wire_alg_parse(value, &alg) != 0)
		return bad_value(c, "not an algorithm name (aes256-gcm, aes256-ctr-hmac)");
	g.policy.alg = alg;
	return kms_group_set_policy(c->kh, c->obj, &g.policy);
}

static int show_group_members(struct ctl_call *c, struct text *out)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int rc = kms_group_members(c->kh, c->obj, &ids, &n);

	for (size_t i = 0; !rc && i < n; i++) {
		struct kms_user u;

		if (kms_user_info(c->kh, ids[i], &u) == KMS_OK)
			text_add(out, "%s\n", u.name);
	}
	free(ids);
	return rc;
}

static int member_change(struct ctl_call *c, char *value, int add)
{
	struct kms_group g;
	uint32_t uid;
	int rc;

	if (!name_valid(value))
		return bad_value(c, "write one user name");
	rc = group_of(c, &g);
	if (!rc)
		rc = kms_user_by_name(c->kh, value, &uid);
	if (rc)
		return rc;
	return add ? kms_add_member(c->kh, uid, c->obj) : kms_remove_member(c->kh, uid, c->obj);
}

static int store_add_member(struct ctl_call *c, char *value)
{
	return member_change(c, value, 1);
}

static int store_remove_member(struct ctl_call *c, char *value)
{
	return member_change(c, value, 0);
}

static int show_group_keys(struct ctl_call *c, struct text *out)
{
	struct kms_key *keys = NULL;
	struct kms_group g;
	size_t n = 0;
	int rc = group_of(c, &g);

	if (!rc)
		rc = kms_key_list(c->kh, c->obj, &keys, &n);
	for (size_t i = 0; !rc && i < n; i++)
		text_add(out, "%" PRIu32 "\n", keys[i].id);
	free(keys);
	return rc;
}

static int show_group_active_key(struct ctl_call *c, struct text *out)
{
	struct kms_found f;
	int rc = kms_find_key_group(c->kh, c->obj, &f);

	if (rc == KMS_ENOKEY) {
		text_add(out, "none\n");
		return 0;
	}
	if (!rc)
		text_add(out, "%" PRIu32 "\n", f.key_id);
	return rc;
}

/* "LABEL [CRYPTOPERIOD_SECONDS]": a new pre-active key; read back its ID. */
static int store_new_key(struct ctl_call *c, char *value)
{
	char *period = strchr(value, ' ');
	uint64_t seconds = 0;
	uint32_t id;
	int rc;

	if (period) {
		*period++ = '\0';
		if (parse_u64(period, INT64_MAX, &seconds) || seconds == 0)
			return bad_value(c, "write LABEL or LABEL SECONDS (cryptoperiod > 0)");
	}
	if (!name_valid(value))
		return bad_value(c, "a key label is 1..%d printable bytes without spaces", KMS_NAME_MAX);
	rc = kms_add_key(c->kh, c->obj, value, (int64_t)seconds, &id);
	if (!rc) {
		text_free(&c->h->content);
		text_add(&c->h->content, "%" PRIu32 "\n", id);
		c->h->answered = 1;
	}
	return rc;
}

/* ---- keys/ID ---- */

static int key_of(struct ctl_call *c, struct kms_key *k)
{
	return kms_key_info(c->kh, c->obj, k);
}

/* One show function per key attribute would be a dozen copies of this:
 * the attribute's index picks the field. */
static int show_key_field(struct ctl_call *c, struct text *out, unsigned field)
{
	struct kms_key k;
	struct kms_group g;
	int rc = key_of(c, &k);

	if (rc)
		return rc;
	switch (field) {
	case 0: text_add(out, "%s\n", k.label); break;
	case 1:
		if (kms_group_info(c->kh, k.group_id, &g) == KMS_OK)
			text_add(out, "%s\n", g.name);
		else
			text_add(out, "#%" PRIu32 " (deleted)\n", k.group_id);
		break;
	case 2: text_add(out, "%s\n", wire_alg_name(k.alg)); break;
	case 3: text_add(out, "%u\n", (unsigned)k.length); break;
	case 4: text_add(out, "%s\n", kms_state_name(k.state)); break;
	case 5: text_add(out, "%" PRId64 "\n", k.cryptoperiod); break;
	case 6: add_time(out, k.generated); break;
	case 7: add_time(out, k.activated); break;
	case 8: add_time(out, k.expires); break;
	case 9: add_time(out, k.suspended); break;
	case 10: add_time(out, k.deactivated); break;
	case 11: add_time(out, k.compromised); break;
	case 12: add_time(out, k.destroyed); break;
	case 13: text_add(out, "data\n"); break;
	}
	return 0;
}

#define KEY_SHOW(n, f) \
	static int show_key_##n(struct ctl_call *c, struct text *out) { return show_key_field(c, out, f); }
KEY_SHOW(label, 0)
KEY_SHOW(group, 1)
KEY_SHOW(alg, 2)
KEY_SHOW(length, 3)
KEY_SHOW(state, 4)
KEY_SHOW(cryptoperiod, 5)
KEY_SHOW(generated, 6)
KEY_SHOW(activated, 7)
KEY_SHOW(expires, 8)
KEY_SHOW(suspended, 9)
KEY_SHOW(deactivated, 10)
KEY_SHOW(compromised, 11)
KEY_SHOW(destroyed, 12)
KEY_SHOW(type, 13)

static int store_key_state(struct ctl_call *c, char *value)
{
	struct kms_key k;
	int rc = key_of(c, &k);

	if (rc)
		return rc;
	for (int s = KMS_KEY_PREACTIVE; s <= KMS_KEY_DESTROYED; s++) {
		if (strcmp(value, kms_state_name((enum kms_key_state)s)))
			continue;
		if (s == KMS_KEY_ACTIVE)
			return kms_activate_key(c->kh, c->obj);
		return kms_set_key_state(c->kh, c->obj, (enum kms_key_state)s);
	}
	return bad_value(c, "a state is one of pre-active, active, suspended, deactivated, "
			 "compromised, destroyed");
}

/* ---- the tree ---- */

static const struct ctl_attr top_files[] = {
	{ "whoami", show_whoami, NULL, 0 },
	{ "role", show_role, NULL, 0 },
	{ "serial", show_serial, NULL, 0 },
	{ "status", show_status, NULL, 0 },
	{ "stale", show_stale, NULL, A_UNLOCKED },
	{ "audit", show_audit, NULL, 0 },
	{ "last_error", show_last_error, NULL, 0 },
	{ "find_key", NULL, store_find_key, A_QUERY | A_UNLOCKED },
};

static const struct ctl_attr admin_files[] = {
	{ "expire_check", NULL, store_expire_check, A_WRITE },
	{ "prune", NULL, store_prune, A_WRITE },
	{ "recover", NULL, store_recover, A_WRITE | A_NO_READ },
};

static const struct ctl_attr user_files[] = {
	{ "id", show_user_id, NULL, 0 },
	{ "serial", show_user_serial, NULL, 0 },
	{ "groups", show_user_groups, NULL, 0 },
	{ "created", show_user_created, NULL, 0 },
};

static const struct ctl_attr group_files[] = {
	{ "id", show_group_id, NULL, 0 },
	{ "alg", show_group_alg, store_group_alg, A_WRITE },
	{ "max_keys", show_group_max_keys, store_group_max_keys, A_WRITE },
	{ "cryptoperiod", show_group_cryptoperiod, store_group_cryptoperiod, A_WRITE },
	{ "rotate_on_remove", show_group_rotate, store_group_rotate, A_WRITE },
	{ "members", show_group_members, NULL, 0 },
	{ "add_member", NULL, store_add_member, A_WRITE | A_NO_READ },
	{ "remove_member", NULL, store_remove_member, A_WRITE | A_NO_READ },
	{ "keys", show_group_keys, NULL, 0 },
	{ "active_key", show_group_active_key, NULL, 0 },
	{ "new_key", NULL, store_new_key, A_WRITE },
	{ "created", show_group_created, NULL, 0 },
};

static const struct ctl_attr key_files[] = {
	{ "label", show_key_label, NULL, 0 },
	{ "group", show_key_group, NULL, 0 },
	{ "alg", show_key_alg, NULL, 0 },
	{ "length", show_key_length, NULL, 0 },
	{ "type", show_key_type, NULL, 0 },
	{ "state", show_key_state, store_key_state, A_WRITE },
	{ "cryptoperiod", show_key_cryptoperiod, NULL, 0 },
	{ "generated", show_key_generated, NULL, 0 },
	{ "activated", show_key_activated, NULL, 0 },
	{ "expires", show_key_expires, NULL, 0 },
	{ "suspended", show_key_suspended, NULL, 0 },
	{ "deactivated", show_key_deactivated, NULL, 0 },
	{ "compromised", show_key_compromised, NULL, 0 },
	{ "destroyed", show_key_destroyed, NULL, 0 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The attribute table of a file kind. */
static const struct ctl_attr *attrs_of(enum ctl_kind file_kind, size_t *n)
{
	switch (file_kind) {
	case K_TOP: *n = N(top_files); return top_files;
	case K_ADMIN_FILE: *n = N(admin_files); return admin_files;
	case K_USER_FILE: *n = N(user_files); return user_files;
	case K_GROUP_FILE: *n = N(group_files); return group_files;
	case K_KEY_FILE: *n = N(key_files); return key_files;
	default: *n = 0; return NULL;
	}
}

static const struct ctl_attr *attr_of(const struct ctl_node *nd)
{
	size_t n;
	const struct ctl_attr *a = attrs_of(nd->kind, &n);

	return a && nd->attr < n ? &a[nd->attr] : NULL;
}

static uint64_t ino_of(enum ctl_kind kind, uint32_t obj, unsigned attr)
{
	return CTL_INO_FLAG | (uint64_t)kind << 40 | (uint64_t)obj << 8 | attr;
}

int fs_ctl_owns(fuse_ino_t ino)
{
	return (ino & CTL_INO_FLAG) != 0;
}

static struct ctl_node node_of(fuse_ino_t ino)
{
	struct ctl_node nd = { .kind = (enum ctl_kind)((ino >> 40) & 0xff),
			       .obj = (uint32_t)(ino >> 8), .attr = (unsigned)(ino & 0xff) };
	return nd;
}

static int is_admin(const struct sekeyfs *fs)
{
	return fs->kms && fs->kms->admin;
}

/* Run fn with the KMS locked; KMS_* code.  A mount without a KMS runs
 * with kh NULL the callbacks that need none (whoami, role, ...). */
static int with_kms(struct sekeyfs *fs, struct ctl_call *c, int need_kms)
{
	int rc;

	c->fs = fs;
	c->kh = NULL;
	if (!fs->kms)
		return need_kms ? KMS_ENOTPROV : KMS_OK;
	rc = fs_kms_lock(fs, &c->kh);
	return rc ? KMS_ECUBE : KMS_OK;
}

static void done_kms(struct sekeyfs *fs, struct ctl_call *c, int rc)
{
	if (c->kh)
		fs_kms_unlock(fs, rc);
	c->kh = NULL;
}

static int errno_of(int kms_rc)
{
	switch (kms_rc) {
	case KMS_OK: return 0;
	case KMS_EINVAL: return EINVAL;
	case KMS_ENOMEM: return ENOMEM;
	case KMS_EPERM: case KMS_EIMMUTABLE: case KMS_ETRANSITION: return EPERM;
	case KMS_ENOUSER: case KMS_ENOGROUP: case KMS_ENOSUCHKEY: case KMS_ENOTMEMBER: return ENOENT;
	case KMS_ENOKEY: case KMS_EKEYSTATE: case KMS_ELOCKED: case KMS_ENOTPROV: return ENOKEY;
	case KMS_EEXIST: return EEXIST;
	case KMS_EMAXKEYS: return ENOSPC;
	case KMS_EEXPIRED: return EKEYEXPIRED;
	default: return EIO;
	}
}

/* Remember and log why a change was refused. */
static void refused(struct sekeyfs *fs, const char *what, int err, const char *why)
{
	pthread_mutex_lock(&fs->ctl_mu);
	snprintf(fs->ctl_last_error, sizeof(fs->ctl_last_error), "%s: %s%s%s", what, strerror(err),
		 why && why[0] ? ": " : "", why ? why : "");
	pthread_mutex_unlock(&fs->ctl_mu);
	fs_log(fs, LOG_WARNING, "/.sekey: %s: %s%s%s", what, strerror(err), why && why[0] ? ": " : "",
	       why ? why : "");
}

/* The reason of a failed KMS call: ours, else the KMS's. */
static const char *reason(struct ctl_call *c, int rc)
{
	if (c->why[0])
		return c->why;
	return c->kh ? kms_errmsg(c->kh) : kms_strerror(rc);
}

/* Does the object of node nd exist?  KMS_OK or its KMS_ENO* code. */
static int exists(struct ctl_call *c, const struct ctl_node *nd)
{
	struct kms_user u;
	struct kms_group g;
	struct kms_key k;

	switch (nd->kind) {
	case K_USER: case K_USER_FILE: return kms_user_info(c->kh, nd->obj, &u);
	case K_GROUP: case K_GROUP_FILE: return kms_group_info(c->kh, nd->obj, &g);
	case K_KEY: case K_KEY_FILE: return kms_key_info(c->kh, nd->obj, &k);
	default: return KMS_OK;
	}
}

static int node_needs_kms(const struct ctl_node *nd)
{
	return nd->kind >= K_USER;
}

static int stat_node(struct sekeyfs *fs, const struct ctl_node *nd, uint64_t ino, struct stat *st)
{
	const struct ctl_attr *a;
	mode_t mode;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_nlink = 1;
	st->st_blksize = 4096;
	st->st_atime = st->st_mtime = st->st_ctime = time(NULL);
	switch (nd->kind) {
	case K_ROOT: case K_ADMIN: case K_KEYS: case K_USER: case K_GROUP: case K_KEY:
		st->st_mode = S_IFDIR | 0500;
		st->st_nlink = 2;
		return 0;
	case K_USERS: case K_GROUPS:
		st->st_mode = S_IFDIR | (is_admin(fs) ? 0700 : 0500);
		st->st_nlink = 2;
		return 0;
	default:
		break;
	}
	a = attr_of(nd);
	if (!a)
		return -ENOENT;
	mode = a->flags & A_NO_READ ? 0 : 0400;
	if ((a->flags & A_QUERY) || ((a->flags & A_WRITE) && is_admin(fs)))
		mode |= 0200;
	st->st_mode = S_IFREG | mode;
	/* The size is not known before reading; direct I/O ignores it. */
	st->st_size = 0;
	return 0;
}

static void reply_entry(fuse_req_t req, struct sekeyfs *fs, enum ctl_kind kind, uint32_t obj,
			unsigned attr)
{
	struct fuse_entry_param e;
	struct ctl_node nd = { kind, obj, attr };
	int rc;

	memset(&e, 0, sizeof(e));
	e.ino = ino_of(kind, obj, attr);
	rc = stat_node(fs, &nd, e.ino, &e.attr);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* Not cached: a change made by the KMS shows at once. */
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
}

static enum ctl_kind file_kind_of(enum ctl_kind dir)
{
	switch (dir) {
	case K_ROOT: return K_TOP;
	case K_ADMIN: return K_ADMIN_FILE;
	case K_USER: return K_USER_FILE;
	case K_GROUP: return K_GROUP_FILE;
	case K_KEY: return K_KEY_FILE;
	default: return 0;
	}
}

static void fs_ctl_lookup_in(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent,
			     const char *name);

int fs_ctl_is_root_name(fuse_ino_t parent, const char *name)
{
	return parent == FUSE_ROOT_ID && !strcmp(name, CTL_DIR_NAME);
}

void fs_ctl_lookup(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name)
{
	if (!fs_ctl_owns(parent)) {
		reply_entry(req, fs, K_ROOT, 0, 0);
		return;
	}
	fs_ctl_lookup_in(req, fs, parent, name);
}

static void fs_ctl_lookup_in(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name)
{
	struct ctl_node pd = node_of(parent), nd;
	struct ctl_call c = { 0 };
	const struct ctl_attr *a;
	enum ctl_kind fk = file_kind_of(pd.kind);
	uint64_t v;
	size_t n;
	int rc;

	if (pd.kind == K_ROOT) {
		static const struct { const char *name; enum ctl_kind kind; } dirs[] = {
			{ "users", K_USERS }, { "groups", K_GROUPS }, { "keys", K_KEYS },
			{ "admin", K_ADMIN } };
		for (size_t i = 0; i < N(dirs); i++)
			if (!strcmp(name, dirs[i].name))
				return reply_entry(req, fs, dirs[i].kind, 0, 0);
	}
	if (fk) {
		a = attrs_of(fk, &n);
		for (size_t i = 0; i < n; i++)
			if (!strcmp(name, a[i].name))
				return reply_entry(req, fs, fk, pd.obj, (unsigned)i);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (pd.kind != K_USERS && pd.kind != K_GROUPS && pd.kind != K_KEYS) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = with_kms(fs, &c, 1);
	if (rc) {
		fuse_reply_err(req, rc == KMS_ENOTPROV ? ENOENT : EIO);
		return;
	}
	memset(&nd, 0, sizeof(nd));
	if (pd.kind == K_USERS) {
		nd.kind = K_USER;
		rc = name_valid(name) ? kms_user_by_name(c.kh, name, &nd.obj) : KMS_ENOUSER;
	} else if (pd.kind == K_GROUPS) {
		nd.kind = K_GROUP;
		rc = name_valid(name) ? kms_group_by_name(c.kh, name, &nd.obj) : KMS_ENOGROUP;
	} else {
		nd.kind = K_KEY;
		rc = parse_u64(name, UINT32_MAX, &v) ? KMS_ENOSUCHKEY : KMS_OK;
		nd.obj = (uint32_t)v;
		if (!rc)
			rc = exists(&c, &nd);
	}
	done_kms(fs, &c, rc);
	if (rc)
		fuse_reply_err(req, errno_of(rc) == ENOENT ? ENOENT : errno_of(rc));
	else
		reply_entry(req, fs, nd.kind, nd.obj, 0);
}

void fs_ctl_getattr(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino)
{
	struct ctl_node nd = node_of(ino);
	struct ctl_call c = { 0 };
	struct stat st;
	int rc = 0;

	if (node_needs_kms(&nd)) {
		rc = with_kms(fs, &c, 1);
		if (!rc)
			rc = exists(&c, &nd);
		done_kms(fs, &c, rc);
	}
	if (rc) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	rc = stat_node(fs, &nd, ino, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0);
}

/* Truncation (O_TRUNC without atomic_o_trunc) of a writable file is
 * allowed and does nothing: a write replaces the whole value anyway. */
void fs_ctl_setattr(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino, struct stat *attr,
		    int to_set)
{
	struct ctl_node nd = node_of(ino);
	const struct ctl_attr *a = attr_of(&nd);
	struct stat st;

	if (to_set != FUSE_SET_ATTR_SIZE || !a || !(a->store) ||
	    (!(a->flags & A_QUERY) && !is_admin(fs))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (stat_node(fs, &nd, ino, &st) != 0)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, 0);
}

/* ---- files ---- */

static struct ctl_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct ctl_handle *)(uintptr_t)fi->fh;
}

void fs_ctl_open(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ctl_node nd = node_of(ino);
	const struct ctl_attr *a = attr_of(&nd);
	struct ctl_call c = { 0 };
	struct ctl_handle *h;
	int acc = fi->flags & O_ACCMODE, rc;

	if (!a) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (acc != O_RDONLY && !(a->flags & A_QUERY)) {
		if (!a->store || !is_admin(fs)) {
			refused(fs, a->name, EPERM, !a->store ? "read-only file"
					  : "only the administrator's mount changes SEkey");
			fuse_reply_err(req, EPERM);
			return;
		}
		if (fs->cfg.read_only) {
			fuse_reply_err(req, EROFS);
			return;
		}
	}
	if ((acc == O_RDONLY || acc == O_RDWR) && (a->flags & A_NO_READ)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->node = nd;
	pthread_mutex_init(&h->mu, NULL);
	/* Read at open: a reader sees one consistent value whatever its offsets. */
	if (a->show && acc != O_WRONLY) {
		c.fs = fs;
		rc = a->flags & A_UNLOCKED ? 0 : with_kms(fs, &c, node_needs_kms(&nd));
		c.obj = nd.obj;
		if (!rc)
			rc = exists(&c, &nd);
		if (!rc)
			rc = a->show(&c, &h->content);
		done_kms(fs, &c, rc);
		if (!rc && h->content.oom)
			rc = KMS_ENOMEM;
		if (rc) {
			text_free(&h->content);
			pthread_mutex_destroy(&h->mu);
			free(h);
			fuse_reply_err(req, errno_of(rc));
			return;
		}
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->nonseekable = a->store != NULL;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		text_free(&h->content);
		pthread_mutex_destroy(&h->mu);
		free(h);
	}
}

void fs_ctl_read(fuse_req_t req, struct sekeyfs *fs, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct ctl_handle *h = handle_of(fi);
	const struct ctl_attr *a = attr_of(&h->node);
	int stream = a && a->store;
	size_t at;

	pthread_mutex_lock(&h->mu);
	at = stream ? h->cursor : off < 0 ? SIZE_MAX : (size_t)off;
	if (at >= h->content.len) {
		pthread_mutex_unlock(&h->mu);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > h->content.len - at)
		size = h->content.len - at;
	if (stream)
		h->cursor = at + size;
	/* Replied under the lock: a write may replace the content. */
	fuse_reply_buf(req, h->content.p + at, size);
	pthread_mutex_unlock(&h->mu);
}

/* Validate one write of buf at off to the file of h and apply it: 0 or
 * an errno (the reason logged and kept in last_error). */
static int apply_write(struct sekeyfs *fs, struct ctl_handle *h, const char *buf, size_t size,
		       off_t off)
{
	const struct ctl_attr *a = attr_of(&h->node);
	struct ctl_call c = { 0 };
	char what[96], *value;
	size_t len = size;
	int rc;

	snprintf(what, sizeof(what), "write %s", a ? a->name : "?");
	/* Checked at open too; again here, where the change is made. */
	if (!a || !a->store || (!(a->flags & A_QUERY) && !is_admin(fs))) {
		refused(fs, what, EPERM, "only the administrator's mount changes SEkey");
		return EPERM;
	}
	/* One write, one whole value: a continuation at another offset
	 * would apply half a value. */
	if (off != 0) {
		refused(fs, what, EINVAL, "write the whole value in one write at offset 0");
		return EINVAL;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len == 0 || len > CTL_VALUE_MAX || memchr(buf, '\0', len) || memchr(buf, '\n', len)) {
		refused(fs, what, EINVAL, len == 0 ? "empty value" : len > CTL_VALUE_MAX
			? "value too long" : "one line of text expected");
		return EINVAL;
	}
	value = malloc(len + 1);
	if (!value)
		return ENOMEM;
	memcpy(value, buf, len);
	value[len] = '\0';
	c.fs = fs;
	rc = a->flags & A_UNLOCKED ? (fs->kms ? 0 : KMS_ENOTPROV) : with_kms(fs, &c, 1);
	c.obj = h->node.obj;
	c.h = h;
	if (!rc)
		rc = exists(&c, &h->node);
	pthread_mutex_lock(&h->mu);
	if (!rc)
		rc = a->store(&c, value);
	if (!rc && h->answered)
		h->cursor = 0;
	pthread_mutex_unlock(&h->mu);
	if (rc)
		refused(fs, what, errno_of(rc), reason(&c, rc));
	else
		fs_log(fs, LOG_INFO, "/.sekey: %s: %s", what, value);
	done_kms(fs, &c, rc);
	free(value);
	return errno_of(rc);
}

void fs_ctl_write(fuse_req_t req, struct sekeyfs *fs, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	int err = apply_write(fs, handle_of(fi), buf, size, off);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, size);
}

int fs_ctl_write_file(struct sekeyfs *fs, unsigned file_kind, uint32_t obj, unsigned attr,
		      const char *buf, size_t size, off_t off, char *answer, size_t cap)
{
	static const enum ctl_kind kinds[] = { K_TOP, K_ADMIN_FILE, K_USER_FILE, K_GROUP_FILE,
					       K_KEY_FILE };
	struct ctl_handle h;
	int err;

	memset(&h, 0, sizeof(h));
	if (file_kind >= N(kinds))
		return ENOENT;
	h.node.kind = kinds[file_kind];
	h.node.obj = obj;
	h.node.attr = attr;
	if (!attr_of(&h.node))
		return ENOENT;
	pthread_mutex_init(&h.mu, NULL);
	err = apply_write(fs, &h, buf, size, off);
	if (cap)
		snprintf(answer, cap, "%.*s", h.answered && h.content.p ? (int)h.content.len : 0,
			 h.content.p ? h.content.p : "");
	text_free(&h.content);
	pthread_mutex_destroy(&h.mu);
	return err;
}

void fs_ctl_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct ctl_handle *h = handle_of(fi);

	if (h) {
		text_free(&h->content);
		free(h->ents);
		pthread_mutex_destroy(&h->mu);
		free(h);
	}
	fuse_reply_err(req, 0);
}

/* ---- directories ---- */

static int add_dirent(struct ctl_handle *h, size_t *cap, const char *name, uint64_t ino,
		      mode_t type)
{
	if (h->n_ents == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		struct ctl_dirent *ne = realloc(h->ents, nc * sizeof(*ne));

		if (!ne)
			return KMS_ENOMEM;
		h->ents = ne;
		*cap = nc;
	}
	snprintf(h->ents[h->n_ents].name, sizeof(h->ents[h->n_ents].name), "%s", name);
	h->ents[h->n_ents].ino = ino;
	h->ents[h->n_ents].type = type;
	h->n_ents++;
	return 0;
}

static int list_dir(struct ctl_call *c, struct ctl_handle *h, const struct ctl_node *nd)
{
	enum ctl_kind fk = file_kind_of(nd->kind);
	size_t cap = 0, n;
	int rc = 0;

	if (nd->kind == K_ROOT) {
		static const struct { const char *name; enum ctl_kind kind; } dirs[] = {
			{ "users", K_USERS }, { "groups", K_GROUPS }, { "keys", K_KEYS },
			{ "admin", K_ADMIN } };
		for (size_t i = 0; !rc && i < N(dirs); i++)
			rc = add_dirent(h, &cap, dirs[i].name, ino_of(dirs[i].kind, 0, 0), S_IFDIR);
	}
	if (fk) {
		const struct ctl_attr *a = attrs_of(fk, &n);

		for (size_t i = 0; !rc && i < n; i++)
			rc = add_dirent(h, &cap, a[i].name, ino_of(fk, nd->obj, (unsigned)i), S_IFREG);
		return rc;
	}
	if (!c->kh)
		return rc;
	if (nd->kind == K_USERS) {
		struct kms_user *u = NULL;

		rc = kms_user_list(c->kh, &u, &n);
		for (size_t i = 0; !rc && i < n; i++)
			rc = add_dirent(h, &cap, u[i].name, ino_of(K_USER, u[i].id, 0), S_IFDIR);
		free(u);
	} else if (nd->kind == K_GROUPS) {
		struct kms_group *g = NULL;

		rc = kms_group_list(c->kh, &g, &n);
		for (size_t i = 0; !rc && i < n; i++)
			rc = add_dirent(h, &cap, g[i].name, ino_of(K_GROUP, g[i].id, 0), S_IFDIR);
		free(g);
	} else if (nd->kind == K_KEYS) {
		struct kms_key *k = NULL;
		char name[16];

		rc = kms_key_list(c->kh, 0, &k, &n);
		for (size_t i = 0; !rc && i < n; i++) {
			snprintf(name, sizeof(name), "%" PRIu32, k[i].id);
			rc = add_dirent(h, &cap, name, ino_of(K_KEY, k[i].id, 0), S_IFDIR);
		}
		free(k);
	}
	return rc;
}

void fs_ctl_opendir(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ctl_node nd = node_of(ino);
	struct ctl_call c = { 0 };
	struct ctl_handle *h;
	int rc;

	if (attr_of(&nd)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->node = nd;
	pthread_mutex_init(&h->mu, NULL);
	rc = with_kms(fs, &c, 0);
	if (!rc && c.kh)
		rc = exists(&c, &nd);
	if (!rc)
		rc = list_dir(&c, h, &nd);
	done_kms(fs, &c, rc);
	if (rc) {
		free(h->ents);
		pthread_mutex_destroy(&h->mu);
		free(h);
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		free(h->ents);
		pthread_mutex_destroy(&h->mu);
		free(h);
	}
}

void fs_ctl_readdir(fuse_req_t req, struct sekeyfs *fs, size_t size, off_t off,
		    struct fuse_file_info *fi, int plus)
{
	struct ctl_handle *h = handle_of(fi);
	char *buf = malloc(size);
	size_t pos = 0, used;
	uint64_t parent = ino_of(h->node.kind, h->node.obj, 0);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then 2 + index. */
	for (off_t i = off; i < (off_t)h->n_ents + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		struct ctl_node nd;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_ino = parent;
			e.attr.st_mode = S_IFDIR;
		} else {
			const struct ctl_dirent *d = &h->ents[i - 2];

			name = d->name;
			e.attr.st_ino = d->ino;
			e.attr.st_mode = d->type;
			if (plus) {
				nd = node_of(d->ino);
				e.ino = d->ino;
				stat_node(fs, &nd, d->ino, &e.attr);
			}
		}
		used = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, i + 1)
			    : fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr, i + 1);
		if (used > size - pos)
			break;
		pos += used;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

/* The root's listing shows /.sekey in the place of the header file. */
int fs_ctl_root_dirent(struct sekeyfs *fs, struct stat *st)
{
	struct ctl_node nd = { K_ROOT, 0, 0 };

	if (fs->cfg.hide_control)
		return 0;
	stat_node(fs, &nd, ino_of(K_ROOT, 0, 0), st);
	return 1;
}

uint64_t fs_ctl_root_ino(void)
{
	return ino_of(K_ROOT, 0, 0);
}

const char *fs_ctl_dir_name(void)
{
	return CTL_DIR_NAME;
}

/* May this mount make or remove a directory in pd (users/, groups/)?  0,
 * or the errno, the refusal logged (not_here: why another directory
 * cannot). */
static int dir_change_allowed(struct sekeyfs *fs, const struct ctl_node *pd, const char *what,
			      const char *not_here)
{
	if (!is_admin(fs) || (pd->kind != K_USERS && pd->kind != K_GROUPS)) {
		refused(fs, what, EPERM, !is_admin(fs) ? "only the administrator's mount changes SEkey"
				       : not_here);
		return EPERM;
	}
	return fs->cfg.read_only ? EROFS : 0;
}

/* mkdir users/NAME, groups/NAME (the default policy). */
void fs_ctl_mkdir(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name)
{
	struct ctl_node pd = node_of(parent);
	struct ctl_call c = { 0 };
	struct kms_policy p;
	char what[128];
	uint32_t id = 0;
	int rc;

	if (!fs_ctl_owns(parent)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	snprintf(what, sizeof(what), "mkdir %s", name);
	rc = dir_change_allowed(fs, &pd, what, "only users/ and groups/ take new directories");
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	if (!name_valid(name)) {
		refused(fs, what, EINVAL, "a name is 1..63 printable bytes without spaces, ',' or '/'");
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = with_kms(fs, &c, 1);
	if (!rc && pd.kind == K_USERS) {
		rc = kms_add_user(c.kh, name, NULL, &id);
	} else if (!rc) {
		kms_policy_default(&p);
		rc = kms_add_group(c.kh, name, &p, &id);
	}
	if (rc)
		refused(fs, what, errno_of(rc), reason(&c, rc));
	done_kms(fs, &c, rc);
	if (rc)
		fuse_reply_err(req, errno_of(rc));
	else
		reply_entry(req, fs, pd.kind == K_USERS ? K_USER : K_GROUP, id, 0);
}

void fs_ctl_rmdir(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name)
{
	struct ctl_node pd = node_of(parent);
	struct ctl_call c = { 0 };
	char what[128];
	uint32_t id;
	int rc;

	if (!fs_ctl_owns(parent)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	snprintf(what, sizeof(what), "rmdir %s", name);
	rc = dir_change_allowed(fs, &pd, what,
				"only users and groups are removed (keys: write their state)");
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	rc = with_kms(fs, &c, 1);
	if (!rc && pd.kind == K_USERS) {
		rc = name_valid(name) ? kms_user_by_name(c.kh, name, &id) : KMS_ENOUSER;
		if (!rc)
			rc = kms_delete_user(c.kh, id);
	} else if (!rc) {
		rc = name_valid(name) ? kms_group_by_name(c.kh, name, &id) : KMS_ENOGROUP;
		if (!rc)
			rc = kms_delete_group(c.kh, id);
	}
	if (rc)
		refused(fs, what, errno_of(rc), reason(&c, rc));
	else
		fs_log(fs, LOG_INFO, "/.sekey: %s", what);
	done_kms(fs, &c, rc);
	fuse_reply_err(req, errno_of(rc));
}

void fs_ctl_refuse(fuse_req_t req, struct sekeyfs *fs, const char *op, fuse_ino_t parent,
		   const char *name, int err_on_root_name)
{
	char what[128];

	if (!fs_ctl_owns(parent)) {
		/* The name /.sekey itself, in the root: never made or removed. */
		fuse_reply_err(req, err_on_root_name);
		return;
	}
	snprintf(what, sizeof(what), "%s %s", op, name ? name : "");
	refused(fs, what, EPERM, "the control tree takes only mkdir, rmdir and writes");
	fuse_reply_err(req, EPERM);
}
