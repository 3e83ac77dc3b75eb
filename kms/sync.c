/*
 * sync.c - the user's side of update distribution: find the pending update
 * files in UPDATES/<serial>, check every one (name, clear header, size,
 * counter order, then the seal in the user's cube and the records) before
 * applying anything, then apply them all in one DB transaction (key values
 * imported into the user's cube, wrapped cube-to-cube), write the ack file.
 * A refused sync applies nothing; after fail_limit refusals in a row the
 * KMS locks (find_key: KMS_ELOCKED) until a recovery update arrives.
 * Rules: docs/UPDATES.md.
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

#include "../wire/buf.h"
#include "internal.h"
#include "update_format.h"

#define SECTORS_PER_CALL 8u
#define FILE_NAME_MAX 48

struct pending {
	uint64_t counter;                /* from the name */
	char name[FILE_NAME_MAX];
	struct kms_upd_header h;
	int bad;                         /* KMS_EUPD_* found in the clear checks, 0: fine */
	int incomplete;                  /* bad because shorter than it says: maybe still arriving */
	char why[96];
	uint8_t *file;                   /* the whole file */
	size_t file_len;
	uint8_t *body;                   /* opened records */
};

struct sync_state {
	uint32_t self;                   /* 0: fresh database */
	uint64_t next;
	uint32_t applied, failures;
	int locked;
	uint32_t enc_id, wrap_id;
	uint8_t serial[WIRE_SERIAL_LEN];
};

/* ---- persistent state ---- */

static int meta_u32(struct kms *k, const char *key, uint32_t *v)
{
	int64_t iv;
	int found;
	int rc = kms_meta_get(k, key, &iv, NULL, 0, NULL, &found);

	*v = found && iv > 0 && iv <= (int64_t)UINT32_MAX ? (uint32_t)iv : 0;
	return rc;
}

static int load_state(struct kms *k, struct sync_state *s)
{
	sqlite3_stmt *st;
	int rc;

	memset(s, 0, sizeof(*s));
	s->next = 1;
	if (k->role != KMS_ROLE_USER)
		return KMS_OK;
	rc = meta_u32(k, "self_user", &s->self);
	if (!rc)
		rc = meta_u32(k, "upd_enc_key", &s->enc_id);
	if (!rc)
		rc = meta_u32(k, "upd_wrap_key", &s->wrap_id);
	if (rc)
		return rc;
	if (!s->self)
		return kms_fail(k, KMS_ESCHEMA, "user database without its user");
	rc = kms_row(k, ST_UPD_STATE_GET, &st, KMS_ENOUSER, "u", s->self);
	if (rc == KMS_ENOUSER)
		return kms_fail(k, KMS_ESCHEMA, "user database without update state");
	if (rc)
		return rc;
	s->next = (uint64_t)sqlite3_column_int64(st, 0);
	s->applied = (uint32_t)sqlite3_column_int64(st, 1);
	s->failures = (uint32_t)sqlite3_column_int64(st, 2);
	s->locked = sqlite3_column_int(st, 3) != 0;
	sqlite3_reset(st);
	return KMS_OK;
}

int kms_sync_load_state(struct kms *k)
{
	struct sync_state s;
	int rc = load_state(k, &s);

	k->locked = rc == KMS_OK && s.locked;
	return rc;
}

static void fill_report(const struct kms *k, const struct sync_state *s, struct kms_sync_report *rep)
{
	if (!rep)
		return;
	rep->next_counter = s->self ? s->next : 0;
	rep->failures = s->failures;
	rep->locked = s->locked;
	rep->user_id = s->self;
	(void)k;
}

int kms_sync_status(struct kms *k, struct kms_sync_report *rep)
{
	struct sync_state s;
	int rc;

	memset(rep, 0, sizeof(*rep));
	k->msg[0] = '\0';
	if (k->role == KMS_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "the administrator's KMS does not sync");
	rc = load_state(k, &s);
	if (!rc)
		fill_report(k, &s, rep);
	return rc;
}

static int save_state(struct kms *k, const struct sync_state *s)
{
	return kms_run(k, ST_UPD_STATE_PUT, "uiiii", s->self, (int64_t)s->next, (int64_t)s->applied,
		       (int64_t)s->failures, (int64_t)s->locked);
}

/* A refused sync: count it, lock at the limit, audit it. */
static int refuse(struct kms *k, struct sync_state *s, int err, const char *file, const char *why,
		  struct kms_sync_report *rep)
{
	char detail[KMS_MSG_MAX + 64], msg[KMS_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s: %s", file, why);
	if (s->self) {
		s->failures++;
		if (s->failures >= k->fail_limit)
			s->locked = 1;
		if (kms_exec(k, "SAVEPOINT kms_sync_fail") == KMS_OK) {
			if (save_state(k, s) == KMS_OK)
				sqlite3_exec(k->db, "RELEASE kms_sync_fail", NULL, NULL, NULL);
			else {
				sqlite3_exec(k->db, "ROLLBACK TO kms_sync_fail", NULL, NULL, NULL);
				sqlite3_exec(k->db, "RELEASE kms_sync_fail", NULL, NULL, NULL);
			}
		}
		k->locked = s->locked;
		snprintf(detail, sizeof(detail), "%s (failure %u of %u%s)", msg, s->failures,
			 k->fail_limit, s->locked ? ", locked" : "");
		kms_audit_log(k, "sync_refused", err, detail);
	}
	if (rep) {
		snprintf(rep->refused, sizeof(rep->refused), "%s", file);
		fill_report(k, s, rep);
	}
	return kms_fail(k, err, "%s%s", msg, s->locked ? " (KMS locked: recovery update needed)" : "");
}

/* A sync that waits: a file is missing before the pending ones, or one is
 * shorter than its header says.  A sync tool that delivers out of order
 * or writes a file in place leaves exactly that while it works, so it is
 * refused (nothing applied) but not counted as a failure and never locks;
 * what does not authenticate is refused and counted (refuse). */
static int not_yet(struct kms *k, struct sync_state *s, int err, const char *file,
		   const char *why, struct kms_sync_report *rep)
{
	if (rep) {
		snprintf(rep->refused, sizeof(rep->refused), "%s", file);
		fill_report(k, s, rep);
	}
	return kms_fail(k, err, "%s: %s (waiting for it to arrive whole)", file, why);
}

/* ---- reading the folder ---- */

static void pending_free(struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].file);
		if (p[i].body) {
			OPENSSL_cleanse(p[i].body, p[i].h.body_len);
			free(p[i].body);
		}
	}
	free(p);
}

static int cmp_pending(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

static void note_debris(const char *name, struct kms_sync_report *rep)
{
	if (!rep)
		return;
	if (rep->debris++ == 0)
		snprintf(rep->first_debris, sizeof(rep->first_debris), "%.47s", name);
}

/* Update files with a counter >= from, sorted; debris counted. */
static int scan(struct kms *k, const char *dir, uint64_t from, struct pending **out, size_t *n_out,
		struct kms_sync_report *rep)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct pending *v = NULL, *nv;
	size_t n = 0, cap = 0;
	uint64_t c;

	*out = NULL;
	*n_out = 0;
	if (!d)
		return errno == ENOENT ? KMS_OK : kms_fail(k, KMS_EIO, "open %s: %s", dir,
							   strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "ack"))
			continue;
		if (kms_upd_name_parse(e->d_name, &c) != 0) {
			note_debris(e->d_name, rep); /* temp, sync-conflict, "~", unknown */
			continue;
		}
		if (c < from)
			continue; /* applied already: kept until the admin prunes it */
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				closedir(d);
				pending_free(v, n);
				return kms_fail(k, KMS_ENOMEM, "pending updates");
			}
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		v[n].counter = c;
		memcpy(v[n].name, e->d_name, KMS_UPD_NAME_LEN + 1); /* parsed: exactly 20 bytes */
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_pending);
	*out = v;
	*n_out = n;
	return KMS_OK;
}

static int read_file(struct kms *k, const char *dir, struct pending *p)
{
	char path[4200];
	struct stat sb;
	size_t max = KMS_UPD_HEADER_LEN + (size_t)kms_upd_sealed_len(KMS_UPD_BODY_MAX, NULL);
	size_t got = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, p->name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		return kms_fail(k, KMS_EIO, "read %s: %s", path, fd < 0 ? strerror(errno) : "not a file");
	}
	if ((uint64_t)sb.st_size > max) {
		close(fd);
		p->bad = KMS_EUPD_CORRUPT;
		snprintf(p->why, sizeof(p->why), "%lld bytes: too large", (long long)sb.st_size);
		return KMS_OK;
	}
	p->file = malloc(sb.st_size ? (size_t)sb.st_size : 1);
	if (!p->file) {
		close(fd);
		return kms_fail(k, KMS_ENOMEM, "update file");
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, p->file + got, (size_t)sb.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	p->file_len = got;
	return KMS_OK;
}

/* The clear checks of one file (no cube). */
static void check_clear(const struct sync_state *s, struct pending *p)
{
	uint64_t want;

	if (p->bad)
		return;
	if (kms_upd_header_parse(p->file, p->file_len, &p->h) != 0) {
		p->bad = KMS_EUPD_CORRUPT;
		p->incomplete = p->file_len < KMS_UPD_HEADER_LEN;
		snprintf(p->why, sizeof(p->why), "%s", p->file_len < KMS_UPD_HEADER_LEN
			 ? "truncated header" : "malformed header");
		return;
	}
	if (memcmp(p->h.serial, s->serial, WIRE_SERIAL_LEN) != 0) {
		p->bad = KMS_EUPD_FOREIGN;
		snprintf(p->why, sizeof(p->why), "made for another cube");
		return;
	}
	if (p->h.counter != p->counter) {
		p->bad = p->h.counter < s->next ? KMS_EUPD_REPLAY : KMS_EUPD_ORDER;
		snprintf(p->why, sizeof(p->why), "carries counter %" PRIu64, p->h.counter);
		return;
	}
	want = KMS_UPD_HEADER_LEN + kms_upd_sealed_len(p->h.body_len, NULL);
	if (p->file_len != want) {
		p->bad = KMS_EUPD_CORRUPT;
		p->incomplete = p->file_len < want;
		snprintf(p->why, sizeof(p->why), "%zu bytes, the header says %" PRIu64 "%s",
			 p->file_len, want, p->file_len < want ? " (truncated)" : "");
		return;
	}
	if (s->self ? (p->h.enc_key_id != s->enc_id || p->h.wrap_key_id != s->wrap_id)
		    : (p->h.enc_key_id < KMS_CHANNEL_ID_BASE || p->h.enc_key_id >= KMS_KEY_ID_FIRST ||
		       (p->h.enc_key_id & 1) || p->h.wrap_key_id != p->h.enc_key_id + 1)) {
		p->bad = KMS_EUPD_FOREIGN;
		snprintf(p->why, sizeof(p->why), "names update keys %u/%u", p->h.enc_key_id,
			 p->h.wrap_key_id);
		return;
	}
	if (s->self && p->h.priority == KMS_UPD_INIT) {
		p->bad = KMS_EUPD_REPLAY;
		snprintf(p->why, sizeof(p->why), "an init update on a provisioned KMS");
	}
}

/* Open the sealed body in the user's cube and parse every record. */
static int open_body(struct kms *k, struct cube *c, struct pending *p)
{
	struct cube_sector secs[SECTORS_PER_CALL];
	uint8_t file_id[WIRE_FILE_ID_LEN], bad[SECTORS_PER_CALL];
	uint32_t n_sectors;
	size_t in_off = KMS_UPD_HEADER_LEN, out_off = 0;
	int rc;

	kms_upd_sealed_len(p->h.body_len, &n_sectors);
	if (kms_upd_file_id(&p->h, file_id) != 0)
		return kms_fail(k, KMS_ENOMEM, "update file ID");
	p->body = malloc(p->h.body_len);
	if (!p->body)
		return kms_fail(k, KMS_ENOMEM, "update body");
	for (uint32_t s = 0; s < n_sectors;) {
		uint32_t n = 0;
		size_t plain = 0;

		while (n < SECTORS_PER_CALL && s + n < n_sectors) {
			uint64_t left = p->h.body_len - (uint64_t)(s + n) * KMS_UPD_SECTOR;

			secs[n].index = s + n;
			secs[n].len = left < KMS_UPD_SECTOR ? (uint32_t)left : KMS_UPD_SECTOR;
			plain += secs[n].len;
			n++;
		}
		rc = cube_open_sectors(c, p->h.enc_key_id, WIRE_ALG_AES256_GCM, file_id, secs, n,
				       p->file + in_off, p->body + out_off, bad);
		if (rc == CUBE_EINTEGRITY)
			return KMS_EUPD_CORRUPT;
		if (rc != CUBE_OK)
			return kms_cube_fail(k, rc, "open an update");
		in_off += plain + (size_t)n * WIRE_SECTOR_OVERHEAD;
		out_off += plain;
		s += n;
	}
	return kms_upd_check_body(p->body, p->h.body_len, p->h.counter) == 0 ? KMS_OK
									   : KMS_EUPD_CORRUPT;
}

/* ---- applying records ---- */

struct apply_ctx {
	struct kms *k;
	struct cube *c;
	struct sync_state *s;
	const struct pending *p;
};

static int import_blob(struct apply_ctx *a, uint32_t id, const uint8_t *blob, uint32_t len)
{
	uint32_t got = 0;
	int rc;

	if (len == 0)
		return KMS_OK;
	rc = cube_key_import(a->c, a->s->wrap_id, blob, len, &got);
	if (rc == CUBE_EINTEGRITY || rc == CUBE_EINVAL)
		return kms_fail(a->k, KMS_EUPD_CORRUPT, "%s: key %u does not unwrap", a->p->name, id);
	if (rc != CUBE_OK)
		return kms_cube_fail(a->k, rc, "import a key into the user's cube");
	if (got != id)
		return kms_fail(a->k, KMS_EUPD_CORRUPT, "%s: record for key %u carries key %u",
				a->p->name, id, got);
	return KMS_OK;
}

static int forget_all(struct kms *k)
{
	return kms_exec(k, "DELETE FROM kms_user_group; DELETE FROM kms_groups; "
			   "DELETE FROM kms_keys; DELETE FROM kms_users;");
}

static int apply_self(struct apply_ctx *a, const struct kms_upd_rec *r)
{
	struct kms_upd_self v;
	int rc;

	kms_upd_parse_self(r, &v);
	if (a->s->self && v.user_id != a->s->self)
		return kms_fail(a->k, KMS_EUPD_FOREIGN, "%s: made for user %u", a->p->name,
				v.user_id);
	a->s->self = v.user_id;
	rc = kms_run(a->k, ST_SY_SELF_PUT, "utbuu", v.user_id, v.name, (const void *)a->s->serial,
		     (size_t)WIRE_SERIAL_LEN, a->s->enc_id, a->s->wrap_id);
	if (!rc)
		rc = kms_meta_put(a->k, "self_user", v.user_id, NULL, 0);
	if (!rc)
		rc = kms_meta_put(a->k, "db_key", v.db_key_id, NULL, 0);
	return rc;
}

static int apply_group(struct apply_ctx *a, const struct kms_upd_rec *r)
{
	struct kms_upd_group v;
	int rc;

	kms_upd_parse_group(r, &v);
	rc = kms_run(a->k, ST_SY_GROUP_DEL_NAME, "ut", v.id, v.name);
	if (!rc)
		rc = kms_run(a->k, ST_SY_GROUP_PUT, "utiiii", v.id, v.name, (int64_t)v.alg,
			     (int64_t)v.max_keys, v.cryptoperiod, (int64_t)v.rotate_on_remove);
	if (!rc)
		rc = kms_run(a->k, ST_MEMBER_DELETE_GROUP, "u", v.id);
	for (uint32_t i = 0; !rc && i < v.n_members; i++)
		rc = kms_run(a->k, ST_SY_MEMBER_PUT, "uu", wire_rd32(v.members + 4 * i), v.id);
	return rc;
}

static int apply_key(struct apply_ctx *a, const struct kms_upd_rec *r)
{
	struct kms_upd_key v;
	int rc;

	kms_upd_parse_key(r, &v);
	rc = import_blob(a, v.id, v.blob, v.blob_len);
	if (!rc)
		rc = kms_run(a->k, ST_SY_KEY_PUT, "utiiuiiiiiiiiii", v.id, v.label, (int64_t)v.alg,
			     (int64_t)v.length, v.group_id, (int64_t)v.state, v.cryptoperiod,
			     (int64_t)v.type, v.times[0], v.times[1], v.times[2], v.times[3],
			     v.times[4], v.times[5], v.times[6]);
	return rc;
}

static int apply_record(struct apply_ctx *a, const struct kms_upd_rec *r)
{
	struct kms_upd_user u;
	struct kms_upd_key_gone g;
	uint32_t id;
	int rc;

	/* Every record was fully parsed by kms_upd_check_body already. */
	switch (r->type) {
	case KMS_REC_RESET:
		return forget_all(a->k);
	case KMS_REC_SELF:
		return apply_self(a, r);
	case KMS_REC_USER:
		kms_upd_parse_user(r, &u);
		rc = kms_run(a->k, ST_SY_USER_DEL_NAME, "ut", u.id, u.name);
		return rc ? rc : kms_run(a->k, ST_SY_USER_PUT, "ut", u.id, u.name);
	case KMS_REC_GROUP:
		return apply_group(a, r);
	case KMS_REC_GROUP_GONE:
		kms_upd_parse_id(r, &id);
		rc = kms_run(a->k, ST_MEMBER_DELETE_GROUP, "u", id);
		return rc ? rc : kms_run(a->k, ST_GROUP_DELETE, "u", id);
	case KMS_REC_KEY:
		return apply_key(a, r);
	case KMS_REC_KEY_GONE:
		kms_upd_parse_key_gone(r, &g);
		rc = import_blob(a, g.id, g.blob, g.blob_len);
		return rc ? rc : kms_run(a->k, ST_SY_KEY_DEL, "u", g.id);
	case KMS_REC_USER_GONE:
		/* Deleted: keep only who this KMS was; nothing to encrypt for. */
		return kms_exec(a->k, "DELETE FROM kms_user_group; DELETE FROM kms_groups; "
				      "DELETE FROM kms_keys;");
	default:
		return kms_fail(a->k, KMS_EUPD_CORRUPT, "record type %u", r->type);
	}
}

static int apply_file(struct apply_ctx *a)
{
	struct kms_upd_rec r;
	size_t pos = 0;
	int rc = KMS_OK;

	if (a->p->h.priority != KMS_UPD_STANDARD) {
		/* A full view starts from nothing; the channel keys come from
		 * this authenticated header. */
		a->s->enc_id = a->p->h.enc_key_id;
		a->s->wrap_id = a->p->h.wrap_key_id;
	}
	while (!rc && kms_upd_next(a->p->body, a->p->h.body_len, &pos, a->p->h.counter, &r) == 1)
		rc = apply_record(a, &r);
	return rc;
}

/* Apply the plan in one transaction.  *failed_file names the culprit. */
static int apply_all(struct kms *k, struct cube *c, struct sync_state *s, struct pending *plan,
		     size_t n, const char **failed_file)
{
	struct sync_state ns = *s;
	struct apply_ctx a = { .k = k, .c = c, .s = &ns };
	int rc = kms_exec(k, "SAVEPOINT kms_sync");

	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < n; i++) {
		a.p = &plan[i];
		*failed_file = plan[i].name;
		rc = apply_file(&a);
	}
	if (!rc && !ns.self)
		rc = kms_fail(k, KMS_EUPD_CORRUPT, "no user named in the init update");
	if (!rc) {
		ns.next = plan[n - 1].counter + 1;
		ns.applied += (uint32_t)n;
		ns.failures = 0;
		ns.locked = 0;
		rc = kms_run(k, ST_SY_USERS_PRUNE, "u", ns.self);
	}
	if (!rc)
		rc = kms_meta_put(k, "role", KMS_ROLE_USER, NULL, 0);
	if (!rc)
		rc = kms_meta_put(k, "upd_enc_key", ns.enc_id, NULL, 0);
	if (!rc)
		rc = kms_meta_put(k, "upd_wrap_key", ns.wrap_id, NULL, 0);
	if (!rc)
		rc = save_state(k, &ns);
	if (!rc && sqlite3_exec(k->db, "RELEASE kms_sync", NULL, NULL, NULL) != SQLITE_OK)
		rc = kms_db_fail(k, "commit the updates");
	if (rc) {
		sqlite3_exec(k->db, "ROLLBACK TO kms_sync", NULL, NULL, NULL);
		sqlite3_exec(k->db, "RELEASE kms_sync", NULL, NULL, NULL);
		return rc;
	}
	*s = ns;
	k->role = KMS_ROLE_USER;
	k->locked = 0;
	return KMS_OK;
}

/* ---- planning ---- */

/* Where the plan starts: the newest full view (init on a fresh KMS,
 * recovery on a provisioned one), else the next counter.  -1: none. */
static ssize_t plan_start(const struct sync_state *s, const struct pending *p, size_t n)
{
	uint8_t want = s->self ? KMS_UPD_RECOVERY : KMS_UPD_INIT;

	for (size_t i = n; i-- > 0;)
		if (!p[i].bad && p[i].h.priority == want)
			return (ssize_t)i;
	if (!s->self || s->locked)
		return -1;
	return n && p[0].counter >= s->next ? 0 : -1;
}

static int write_ack(struct kms *k, const char *dir, uint64_t counter)
{
	char text[32], path[4200];
	int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", counter);

	return kms_file_publish(k, dir, "ack", (const uint8_t *)text, (size_t)n, 1, path,
				sizeof(path));
}

static int sync_plan(struct kms *k, struct cube *c, const char *dir, struct sync_state *s,
		     struct pending *p, size_t n, struct kms_sync_report *rep)
{
	const char *culprit = "";
	ssize_t start;
	size_t i, m;
	int rc = KMS_OK;

	for (i = 0; i < n && !rc; i++) {
		rc = read_file(k, dir, &p[i]);
		if (!rc)
			check_clear(s, &p[i]);
	}
	if (rc)
		return rc;
	start = plan_start(s, p, n);
	if (start < 0) {
		if (s->self && s->locked)
			return kms_fail(k, KMS_ELOCKED, "locked after %u refused syncs: waiting for "
					"a recovery update", s->failures);
		if (!s->self)
			return kms_fail(k, KMS_ENOTPROV, "no init update for this cube in %s", dir);
		if (n == 0)
			return KMS_OK;
		return not_yet(k, s, KMS_EUPD_GAP, p[0].name, "update(s) missing before it", rep);
	}
	if (s->self && p[start].h.priority == KMS_UPD_STANDARD && p[start].counter != s->next)
		return not_yet(k, s, KMS_EUPD_GAP, p[start].name, "update(s) missing before it", rep);
	for (i = (size_t)start; i < n; i++) {
		if (p[i].bad && p[i].incomplete)
			return not_yet(k, s, p[i].bad, p[i].name, p[i].why, rep);
		if (p[i].bad)
			return refuse(k, s, p[i].bad, p[i].name, p[i].why, rep);
		if (i > (size_t)start && p[i].counter != p[i - 1].counter + 1)
			return not_yet(k, s, KMS_EUPD_GAP, p[i].name, "update(s) missing before it", rep);
		rc = open_body(k, c, &p[i]);
		if (rc == KMS_EUPD_CORRUPT)
			return refuse(k, s, rc, p[i].name, "not authentic or malformed (bit flip, "
				      "truncation, another admin's cube)", rep);
		if (rc)
			return rc;
	}
	m = n - (size_t)start;
	rc = apply_all(k, c, s, p + start, m, &culprit);
	if (rc == KMS_EUPD_CORRUPT || rc == KMS_EUPD_FOREIGN) {
		char why[KMS_MSG_MAX];

		snprintf(why, sizeof(why), "%s", k->msg);
		return refuse(k, s, rc, culprit, why, rep);
	}
	if (rc)
		return rc;
	if (rep)
		rep->applied = (uint32_t)m;
	return write_ack(k, dir, s->next - 1);
}

int kms_sync(struct kms *k, struct cube *user_cube, const char *updates_dir,
	     struct kms_sync_report *rep)
{
	struct sync_state s;
	struct cube_info info;
	struct pending *p = NULL;
	char dir[4096], detail[96];
	size_t n = 0;
	int rc;

	if (rep)
		memset(rep, 0, sizeof(*rep));
	k->msg[0] = '\0';
	if (k->role == KMS_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "the administrator's KMS does not sync");
	if (!user_cube || !updates_dir)
		return kms_fail(k, KMS_EINVAL, "sync needs the user's cube and the updates folder");
	rc = load_state(k, &s);
	if (rc)
		return rc;
	rc = cube_info(user_cube, &info);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "read the user's cube");
	memcpy(s.serial, info.serial, WIRE_SERIAL_LEN);
	if (kms_upd_user_dir_path(updates_dir, info.serial, dir, sizeof(dir)) != 0)
		return kms_fail(k, KMS_EINVAL, "updates folder path too long");
	rc = scan(k, dir, s.self ? s.next : 1, &p, &n, rep);
	if (!rc)
		rc = sync_plan(k, user_cube, dir, &s, p, n, rep);
	pending_free(p, n);
	if (rc == KMS_OK) {
		kms_ix_rebuild(k);
		if (rep && rep->applied) {
			snprintf(detail, sizeof(detail), "%u updates applied, next %" PRIu64,
				 rep->applied, s.next);
			kms_audit_log(k, "sync", KMS_OK, detail);
		}
	}
	if (rep) {
		char keep[FILE_NAME_MAX];

		snprintf(keep, sizeof(keep), "%s", rep->refused);
		fill_report(k, &s, rep);
		snprintf(rep->refused, sizeof(rep->refused), "%s", keep);
	}
	return rc;
}
