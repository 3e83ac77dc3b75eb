/*
 * sekey.c - the `sekey` command: the SEkey key management system from the
 * shell.  The administrator (admin cube) initialises the KMS, manages users
 * (adding one provisions their cube), groups, memberships and keys; every
 * change that concerns a user becomes an update file in the updates
 * folder.  A user (their own cube) syncs those updates and asks which key
 * to encrypt with.  The KMS database lives in the cube's SD folder as a
 * secure database (sefile/sdb.h) under the cube's DB key.  The admin can
 * back up the admin cube and database into one passphrase-protected file
 * and restore it onto a fresh cube (docs/BACKUP.md).
 *
 *   sekey [--device DIR] [--updates DIR] [--db PATH] [--pin-file F|--pin-fd N]
 *         [--json] COMMAND ...
 *
 * `sekey rekey PATH` re-encrypts a sekeyfs share's stale files with the
 * fs library's sekeyfs_rekey_run (the code of sekeyfs --rekey).
 *
 * Exit codes (docs/man/sekey.1): 0 ok, 1 usage, 2 integrity/audit broken,
 * 3 no key, 4 cube/login, 5 I/O, 6 KMS locked.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fs/fs.h"
#include "kms/kms.h"
#include "sefile/sdb.h"

#define EXIT_LOCKED 6
#define ADMIN_DB "sekey.db"
#define USER_DB "sekey-user.db"
#define MAX_ARGS 16

struct opts {
	const char *device, *updates, *db, *pin_file;
	int pin_fd, json;
	/* command options */
	const char *user_device, *peer_pin_file, *alg, *group;
	const char *out, *in, *passphrase_file;
	uint32_t iterations;
	uint32_t max_keys;
	int64_t cryptoperiod;
	int verify;
	const char *args[MAX_ARGS];
	int n_args;
};

/* An open KMS: cube, secure database, handle. */
struct session {
	struct cube *cube;
	struct sefile_cube *pool;
	struct sdb_vfs *vfs;
	sqlite3 *db;
	struct kms *k;
};

static int exit_of(int kms_rc)
{
	switch (kms_rc) {
	case KMS_OK: return CLI_OK;
	case KMS_EAUDIT: case KMS_EUPD_GAP: case KMS_EUPD_REPLAY: case KMS_EUPD_ORDER:
	case KMS_EUPD_FOREIGN: case KMS_EUPD_CORRUPT: case KMS_ESCHEMA:
		return CLI_DAMAGED;
	case KMS_ENOKEY: case KMS_ENOSUCHKEY: case KMS_EKEYSTATE: case KMS_EEXPIRED:
		return CLI_KEY;
	case KMS_ECUBE: case KMS_EPERM: return CLI_CUBE;
	case KMS_EDB: case KMS_EIO: return CLI_IO;
	case KMS_ELOCKED: return EXIT_LOCKED;
	default: return CLI_USAGE;
	}
}

static int kfail(struct session *s, const char *what, int rc)
{
	fprintf(stderr, "sekey: %s: %s\n", what, s && s->k ? kms_errmsg(s->k) : kms_strerror(rc));
	return exit_of(rc);
}

static void session_close(struct session *s)
{
	kms_close(s->k);
	if (s->db)
		sqlite3_close(s->db);
	if (s->vfs)
		sdb_vfs_unregister(s->vfs);
	if (s->pool)
		sefile_cube_close(s->pool);
	if (s->cube)
		cube_close(s->cube);
	memset(s, 0, sizeof(*s));
}

static int login(const char *device, enum wire_role role, const char *pin_file, int pin_fd,
		 const char *prompt, struct cube **out)
{
	char pin[WIRE_PIN_MAX + 2], err[256];
	struct cube *c = NULL;
	int rc;

	*out = NULL;
	if (!device)
		return fprintf(stderr, "sekey: --device DIR is required\n"), CLI_USAGE;
	if (cube_open(&c, device, err, sizeof(err)) != CUBE_OK)
		return fprintf(stderr, "sekey: %s: %s\n", device, err), CLI_CUBE;
	if (cli_read_pin(pin_file, pin_fd, prompt, pin, sizeof(pin)) != 0) {
		cube_close(c);
		return CLI_USAGE;
	}
	rc = cube_login(c, role, pin);
	cli_wipe(pin, sizeof(pin));
	if (rc != CUBE_OK) {
		fprintf(stderr, "sekey: login to %s: %s\n", device, cube_errmsg(c));
		cube_close(c);
		return CLI_CUBE;
	}
	*out = c;
	return CLI_OK;
}

/* Open the secure database at path on s->cube (under its DB key). */
static int db_open(struct session *s, const char *path, int create)
{
	int rc;

	if (sefile_cube_wrap(&s->pool, s->cube) != SEFILE_OK ||
	    sdb_vfs_register(&s->vfs, "sekey-db", s->pool, KMS_DB_KEY_ID) != SEFILE_OK)
		return fprintf(stderr, "sekey: cannot set up the secure database\n"), CLI_IO;
	rc = sdb_open(s->vfs, path, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), &s->db);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "sekey: open %s: %s\n", path, sqlite3_errstr(rc));
		return CLI_IO;
	}
	return CLI_OK;
}

/* Log in (unless s->cube is already logged in), open the secure database
 * (create: may be made), start the KMS.  s must be zeroed or hold only a cube. */
static int session_open(struct opts *o, enum wire_role role, int create, struct session *s)
{
	char path[4096], err[256];
	const char *sd;
	int rc;

	if (!s->cube) {
		memset(s, 0, sizeof(*s));
		rc = login(o->device, role, o->pin_file, o->pin_fd,
			   role == WIRE_ROLE_ADMIN ? "admin PIN: " : "PIN: ", &s->cube);
		if (rc)
			return rc;
	}
	if (o->db) {
		snprintf(path, sizeof(path), "%s", o->db);
	} else if ((sd = cube_sd_path(s->cube)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", sd, role == WIRE_ROLE_ADMIN ? ADMIN_DB : USER_DB);
	} else {
		session_close(s);
		return fprintf(stderr, "sekey: this cube has no SD folder: give --db PATH\n"), CLI_USAGE;
	}
	if (!create && access(path, F_OK) != 0) {
		fprintf(stderr, "sekey: no KMS database at %s (%s)\n", path,
			role == WIRE_ROLE_ADMIN ? "run sekey init" : "run sekey sync");
		session_close(s);
		return CLI_IO;
	}
	if ((rc = db_open(s, path, create)) != CLI_OK) {
		session_close(s);
		return rc;
	}
	rc = kms_open(&s->k, s->db, s->cube, err, sizeof(err));
	if (rc != KMS_OK) {
		fprintf(stderr, "sekey: %s: %s\n", path, err);
		session_close(s);
		return exit_of(rc);
	}
	if (o->updates && kms_set_updates_dir(s->k, o->updates) != KMS_OK) {
		session_close(s);
		return CLI_USAGE;
	}
	return CLI_OK;
}

static int admin_open(struct opts *o, struct session *s)
{
	int rc = session_open(o, WIRE_ROLE_ADMIN, 0, s);

	if (!rc && kms_role(s->k) != KMS_ROLE_ADMIN) {
		fprintf(stderr, "sekey: this is not an administrator's KMS\n");
		session_close(s);
		return CLI_CUBE;
	}
	return rc;
}

static int need_args(struct opts *o, int n, const char *usage)
{
	if (o->n_args != n)
		return fprintf(stderr, "usage: sekey %s\n", usage), CLI_USAGE;
	return CLI_OK;
}

static int parse_id(const char *s, uint32_t *id)
{
	if (cli_parse_u32(s, 1, UINT32_MAX, id) != 0)
		return fprintf(stderr, "sekey: bad ID %s\n", s), CLI_USAGE;
	return CLI_OK;
}

static void done(struct opts *o, const char *what, uint32_t id)
{
	if (o->json)
		printf("{\"ok\":true,\"%s\":%" PRIu32 "}\n", what, id);
	else
		printf("%s %" PRIu32 "\n", what, id);
}

/* ---- admin commands ---- */

/* The admin cube's DB key: generated inside it, never exportable. */
static int ensure_db_key(struct cube *c)
{
	struct cube_key k = { .id = KMS_DB_KEY_ID, .alg = WIRE_ALG_AES256_GCM,
			      .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, .not_before = 0,
			      .not_after = WIRE_TIME_NEVER };
	struct cube_key have;
	int rc = cube_key_info(c, KMS_DB_KEY_ID, &have);

	if (rc == CUBE_OK)
		return CUBE_OK;
	return rc == CUBE_ENOKEY ? cube_key_generate(c, &k) : rc;
}

static int cmd_init(struct opts *o)
{
	struct session s = { 0 };
	int rc;

	memset(&s, 0, sizeof(s));
	rc = login(o->device, WIRE_ROLE_ADMIN, o->pin_file, o->pin_fd, "admin PIN: ", &s.cube);
	if (rc)
		return rc;
	rc = ensure_db_key(s.cube);
	if (rc != CUBE_OK) {
		fprintf(stderr, "sekey: DB key: %s\n", cube_errmsg(s.cube));
		session_close(&s);
		return CLI_CUBE;
	}
	rc = session_open(o, WIRE_ROLE_ADMIN, 1, &s);
	if (rc)
		return rc;
	rc = kms_admin_init(s.k);
	rc = rc ? kfail(&s, "init", rc) : CLI_OK;
	if (!rc)
		printf(o->json ? "{\"ok\":true}\n" : "KMS initialised on the admin cube\n");
	session_close(&s);
	return rc;
}

static int user_add(struct opts *o, struct session *s)
{
	struct cube *uc = NULL;
	uint32_t id;
	int rc;

	if (!o->user_device)
		return fprintf(stderr, "usage: sekey user add NAME --device USERCUBE "
				       "[--peer-pin-file F]\n"), CLI_USAGE;
	rc = kms_add_user(s->k, o->args[2], NULL, &id);
	if (rc)
		return kfail(s, "user add", rc);
	rc = login(o->user_device, WIRE_ROLE_ADMIN, o->peer_pin_file, -1,
		   "admin PIN of the user's cube: ", &uc);
	if (rc)
		return rc;
	rc = kms_user_init(s->k, uc, id);
	cube_close(uc);
	if (rc)
		return kfail(s, "provision the user's cube", rc);
	done(o, "user", id);
	return CLI_OK;
}

static int user_list(struct opts *o, struct session *s)
{
	struct kms_user *v;
	size_t n;
	int rc = kms_user_list(s->k, &v, &n);

	if (rc)
		return kfail(s, "user list", rc);
	if (o->json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		char hex[2 * WIRE_SERIAL_LEN + 1];

		cli_hex(v[i].serial, WIRE_SERIAL_LEN, hex);
		if (o->json) {
			printf("%s{\"id\":%" PRIu32 ",\"name\":", i ? "," : "", v[i].id);
			cli_json_str(stdout, v[i].name);
			printf(",\"serial\":\"%s\",\"groups\":%" PRIu32 ",\"provisioned\":%s}", hex,
			       v[i].n_groups, v[i].update_key_id ? "true" : "false");
		} else {
			printf("%-6" PRIu32 " %-20s groups %-3" PRIu32 " cube %s\n", v[i].id, v[i].name,
			       v[i].n_groups, v[i].update_key_id ? hex : "(not provisioned)");
		}
	}
	if (o->json)
		printf("]\n");
	free(v);
	return CLI_OK;
}

static int cmd_user(struct opts *o)
{
	struct session s = { 0 };
	uint32_t id;
	int rc;

	if (o->n_args < 2)
		return fprintf(stderr, "usage: sekey user add|del|list|recover ...\n"), CLI_USAGE;
	if ((!strcmp(o->args[1], "add") || !strcmp(o->args[1], "del") ||
	     !strcmp(o->args[1], "recover")) && need_args(o, 3, "user add|del|recover NAME"))
		return CLI_USAGE;
	if ((rc = admin_open(o, &s)) != CLI_OK)
		return rc;
	if (!strcmp(o->args[1], "add")) {
		rc = user_add(o, &s);
	} else if (!strcmp(o->args[1], "list")) {
		rc = user_list(o, &s);
	} else if (!strcmp(o->args[1], "del") || !strcmp(o->args[1], "recover")) {
		int del = !strcmp(o->args[1], "del");

		rc = kms_user_by_name(s.k, o->args[2], &id);
		if (!rc)
			rc = del ? kms_delete_user(s.k, id) : kms_user_recover(s.k, id, "sekey user recover");
		rc = rc ? kfail(&s, o->args[1], rc) : CLI_OK;
		if (!rc)
			done(o, del ? "deleted user" : "recovery update for user", id);
	} else {
		fprintf(stderr, "sekey: user %s: unknown\n", o->args[1]);
		rc = CLI_USAGE;
	}
	session_close(&s);
	return rc;
}

static int group_add(struct opts *o, struct session *s)
{
	struct kms_policy p;
	uint32_t id;
	int rc;

	kms_policy_default(&p);
	if (o->alg && !strcmp(o->alg, "ctr-hmac"))
		p.alg = WIRE_ALG_AES256_CTR_HMAC;
	else if (o->alg && strcmp(o->alg, "gcm"))
		return fprintf(stderr, "sekey: --alg gcm|ctr-hmac\n"), CLI_USAGE;
	if (o->max_keys)
		p.max_keys = o->max_keys;
	if (o->cryptoperiod)
		p.cryptoperiod = o->cryptoperiod;
	rc = kms_add_group(s->k, o->args[2], &p, &id);
	if (rc)
		return kfail(s, "group add", rc);
	done(o, "group", id);
	return CLI_OK;
}

static int group_list(struct opts *o, struct session *s)
{
	struct kms_group *v;
	size_t n;
	int rc = kms_group_list(s->k, &v, &n);

	if (rc)
		return kfail(s, "group list", rc);
	if (o->json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		if (o->json) {
			printf("%s{\"id\":%" PRIu32 ",\"name\":", i ? "," : "", v[i].id);
			cli_json_str(stdout, v[i].name);
			printf(",\"alg\":\"%s\",\"max_keys\":%" PRIu32 ",\"cryptoperiod\":%lld,"
			       "\"members\":%" PRIu32 ",\"keys\":%" PRIu32 "}",
			       v[i].policy.alg == WIRE_ALG_AES256_GCM ? "gcm" : "ctr-hmac",
			       v[i].policy.max_keys, (long long)v[i].policy.cryptoperiod,
			       v[i].n_members, v[i].n_keys);
		} else {
			printf("%-6" PRIu32 " %-20s %-8s members %-3" PRIu32 " keys %" PRIu32 "\n",
			       v[i].id, v[i].name,
			       v[i].policy.alg == WIRE_ALG_AES256_GCM ? "gcm" : "ctr-hmac",
			       v[i].n_members, v[i].n_keys);
		}
	}
	if (o->json)
		printf("]\n");
	free(v);
	return CLI_OK;
}

static int membership(struct opts *o, struct session *s, int add)
{
	uint32_t g, u;
	int rc = kms_group_by_name(s->k, o->args[2], &g);

	if (!rc)
		rc = kms_user_by_name(s->k, o->args[3], &u);
	if (!rc)
		rc = add ? kms_add_member(s->k, u, g) : kms_remove_member(s->k, u, g);
	if (rc)
		return kfail(s, add ? "add-member" : "remove-member", rc);
	done(o, add ? "member added to group" : "member removed from group", g);
	return CLI_OK;
}

static int cmd_group(struct opts *o)
{
	struct session s = { 0 };
	uint32_t id;
	const char *sub = o->n_args > 1 ? o->args[1] : "";
	int rc;

	if (((!strcmp(sub, "add") || !strcmp(sub, "del")) && o->n_args != 3) ||
	    ((!strcmp(sub, "add-member") || !strcmp(sub, "remove-member")) && o->n_args != 4) ||
	    o->n_args < 2)
		return fprintf(stderr, "usage: sekey group add NAME [--alg gcm|ctr-hmac] [--max-keys N] "
				       "[--cryptoperiod S] | del NAME | add-member G U | "
				       "remove-member G U | list\n"), CLI_USAGE;
	if ((rc = admin_open(o, &s)) != CLI_OK)
		return rc;
	if (!strcmp(sub, "add")) {
		rc = group_add(o, &s);
	} else if (!strcmp(sub, "del")) {
		rc = kms_group_by_name(s.k, o->args[2], &id);
		if (!rc)
			rc = kms_delete_group(s.k, id);
		rc = rc ? kfail(&s, "group del", rc) : CLI_OK;
		if (!rc)
			done(o, "deleted group", id);
	} else if (!strcmp(sub, "add-member") || !strcmp(sub, "remove-member")) {
		rc = membership(o, &s, !strcmp(sub, "add-member"));
	} else if (!strcmp(sub, "list")) {
		rc = group_list(o, &s);
	} else {
		fprintf(stderr, "sekey: group %s: unknown\n", sub);
		rc = CLI_USAGE;
	}
	session_close(&s);
	return rc;
}

static int parse_state(const char *s, enum kms_key_state *out)
{
	for (int i = KMS_KEY_PREACTIVE; i <= KMS_KEY_DESTROYED; i++) {
		if (!strcmp(s, kms_state_name((enum kms_key_state)i))) {
			*out = (enum kms_key_state)i;
			return 0;
		}
	}
	return -1;
}

static int key_list(struct opts *o, struct session *s)
{
	struct kms_key *v;
	size_t n;
	int rc = kms_key_list(s->k, 0, &v, &n);

	if (rc)
		return kfail(s, "key list", rc);
	if (o->json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		if (o->json)
			printf("%s{\"id\":%" PRIu32 ",\"group\":%" PRIu32 ",\"state\":\"%s\","
			       "\"alg\":%u,\"expires\":%lld}", i ? "," : "", v[i].id, v[i].group_id,
			       kms_state_name(v[i].state), v[i].alg, (long long)v[i].expires);
		else
			printf("%-10" PRIu32 " group %-6" PRIu32 " %-12s expires %lld\n", v[i].id,
			       v[i].group_id, kms_state_name(v[i].state), (long long)v[i].expires);
	}
	if (o->json)
		printf("]\n");
	free(v);
	return CLI_OK;
}

static int cmd_key(struct opts *o)
{
	struct session s = { 0 };
	const char *sub = o->n_args > 1 ? o->args[1] : "";
	enum kms_key_state st = KMS_KEY_ACTIVE;
	uint32_t id;
	int rc;

	if (!strcmp(sub, "list")) {
		/* The admin's list on the admin cube, else the user's own view. */
		int admin = o->db ? 0 : 1;

		if (!o->db) {
			struct cube *c;
			char err[256];
			const char *sd;
			char path[4096];

			if (!o->device)
				return fprintf(stderr, "sekey: --device DIR is required\n"), CLI_USAGE;
			if (cube_open(&c, o->device, err, sizeof(err)) != CUBE_OK)
				return fprintf(stderr, "sekey: %s: %s\n", o->device, err), CLI_CUBE;
			sd = cube_sd_path(c);
			snprintf(path, sizeof(path), "%s/%s", sd ? sd : ".", ADMIN_DB);
			admin = sd && access(path, F_OK) == 0;
			cube_close(c);
		}
		rc = admin ? admin_open(o, &s) : session_open(o, WIRE_ROLE_USER, 0, &s);
		if (rc)
			return rc;
		rc = key_list(o, &s);
		session_close(&s);
		return rc;
	}
	if ((!strcmp(sub, "add") || !strcmp(sub, "activate")) ? o->n_args != 3
	    : !strcmp(sub, "set-state") ? o->n_args != 4 : 1)
		return fprintf(stderr, "usage: sekey key add GROUP [--cryptoperiod S] | activate ID | "
				       "set-state ID STATE | list\n"), CLI_USAGE;
	if (!strcmp(sub, "set-state") && parse_state(o->args[3], &st) != 0)
		return fprintf(stderr, "sekey: state: pre-active active suspended deactivated "
				       "compromised destroyed\n"), CLI_USAGE;
	if (strcmp(sub, "add") && parse_id(o->args[2], &id))
		return CLI_USAGE;
	if ((rc = admin_open(o, &s)) != CLI_OK)
		return rc;
	if (!strcmp(sub, "add")) {
		uint32_t g;

		rc = kms_group_by_name(s.k, o->args[2], &g);
		if (!rc)
			rc = kms_add_key(s.k, g, "", o->cryptoperiod, &id);
	} else {
		rc = !strcmp(sub, "activate") ? kms_activate_key(s.k, id) : kms_set_key_state(s.k, id, st);
	}
	rc = rc ? kfail(&s, sub, rc) : CLI_OK;
	if (!rc)
		done(o, "key", id);
	session_close(&s);
	return rc;
}

static int cmd_expired_check(struct opts *o)
{
	struct session s = { 0 };
	uint32_t n = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	if ((rc = admin_open(o, &s)) != CLI_OK)
		return rc;
	rc = kms_expired_check(s.k, time(NULL), &n);
	rc = rc ? kfail(&s, "expired-check", rc) : CLI_OK;
	if (!rc)
		done(o, "keys deactivated", n);
	session_close(&s);
	return rc;
}

static int cmd_audit(struct opts *o)
{
	struct session s = { 0 };
	struct kms_audit_rec *v = NULL;
	uint64_t bad = 0;
	size_t n = 0;
	int rc = admin_open(o, &s);

	if (rc)
		return rc;
	if (o->verify) {
		rc = kms_audit_verify(s.k, &bad);
		if (rc == KMS_EAUDIT)
			fprintf(stderr, "sekey: audit chain broken at record %" PRIu64 "\n", bad);
		rc = rc ? exit_of(rc) : CLI_OK;
		if (!rc)
			printf(o->json ? "{\"ok\":true}\n" : "audit chain intact\n");
	} else {
		rc = kms_audit_list(s.k, 1, 100000, &v, &n);
		rc = rc ? kfail(&s, "audit", rc) : CLI_OK;
		for (size_t i = 0; !rc && i < n; i++)
			printf("%-6" PRIu64 " %lld %-16s %-4d %s\n", v[i].seq, (long long)v[i].time,
			       v[i].op, v[i].result, v[i].detail);
		free(v);
	}
	session_close(&s);
	return rc;
}

static int cmd_updates(struct opts *o)
{
	struct session s = { 0 };
	uint32_t n = 0;
	int rc;

	if (need_args(o, 2, "updates prune") || strcmp(o->args[1], "prune"))
		return CLI_USAGE;
	if ((rc = admin_open(o, &s)) != CLI_OK)
		return rc;
	rc = kms_updates_prune(s.k, &n);
	rc = rc ? kfail(&s, "updates prune", rc) : CLI_OK;
	if (!rc)
		done(o, "update files pruned", n);
	session_close(&s);
	return rc;
}

/* ---- backup and restore (docs/BACKUP.md) ---- */

/* The backup passphrase: from --passphrase-file, else asked on the
 * terminal (twice when confirm). */
static int read_passphrase(struct opts *o, int confirm, char *pass, size_t cap)
{
	char again[WIRE_PASSPHRASE_MAX + 2];
	int rc;

	if (cli_read_pin(o->passphrase_file, -1, "backup passphrase: ", pass, cap) != 0)
		return CLI_USAGE;
	if (strlen(pass) < WIRE_PASSPHRASE_MIN) {
		cli_wipe(pass, cap);
		return fprintf(stderr, "sekey: the passphrase must have at least %d characters\n",
			       WIRE_PASSPHRASE_MIN), CLI_USAGE;
	}
	if (!confirm || o->passphrase_file)
		return CLI_OK;
	if (cli_read_pin(NULL, -1, "again: ", again, sizeof(again)) != 0) {
		cli_wipe(pass, cap);
		return CLI_USAGE;
	}
	rc = strcmp(pass, again) ? CLI_USAGE : CLI_OK;
	cli_wipe(again, sizeof(again));
	if (rc) {
		cli_wipe(pass, cap);
		fprintf(stderr, "sekey: the passphrases differ\n");
	}
	return rc;
}

static int cmd_backup(struct opts *o)
{
	struct session s = { 0 };
	struct kms_backup_info info;
	char pass[WIRE_PASSPHRASE_MAX + 2];
	int rc;

	if (!o->out || o->n_args != 1)
		return fprintf(stderr, "usage: sekey --device ADMINCUBE backup --out FILE "
				       "[--passphrase-file F] [--iterations N]\n"), CLI_USAGE;
	if ((rc = admin_open(o, &s)) != CLI_OK)
		return rc;
	if ((rc = read_passphrase(o, 1, pass, sizeof(pass))) != CLI_OK) {
		session_close(&s);
		return rc;
	}
	rc = kms_backup(s.k, pass, strlen(pass), o->iterations, o->out, &info);
	cli_wipe(pass, sizeof(pass));
	rc = rc ? kfail(&s, "backup", rc) : CLI_OK;
	if (!rc && o->json)
		printf("{\"ok\":true,\"keys\":%" PRIu32 ",\"db_bytes\":%" PRIu64 ",\"iterations\":%"
		       PRIu32 "}\n", info.n_keys, info.db_bytes, info.iterations);
	else if (!rc)
		printf("backup written to %s: %" PRIu32 " keys, database %" PRIu64 " bytes\n", o->out,
		       info.n_keys, info.db_bytes);
	session_close(&s);
	return rc;
}

/* Remove a half-restored database (and what SQLite keeps beside it). */
static void db_remove(const char *path)
{
	static const char *const ext[] = { "", "-journal", "-wal", "-shm" };
	char p[4200];

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, ext[i]);
		unlink(p);
	}
}

static int restore_exit(int kms_rc)
{
	return kms_rc == KMS_EBACKUP || kms_rc == KMS_EBACKUP_FORMAT ? CLI_DAMAGED
	       : kms_rc == KMS_EEXIST ? CLI_CUBE : exit_of(kms_rc);
}

/* Keys into the cube, then the database into its SD folder. */
static int restore_into(struct opts *o, struct session *s, struct kms_restore *r, const char *path)
{
	uint32_t n_rec = 0;
	int rc = kms_restore_keys(r);

	if (rc)
		return fprintf(stderr, "sekey: restore: %s\n", kms_restore_errmsg(r)), restore_exit(rc);
	if ((rc = db_open(s, path, 1)) != CLI_OK)
		return rc;
	rc = kms_restore_db(r, s->db, o->updates, &n_rec);
	if (rc)
		return fprintf(stderr, "sekey: restore: %s\n", kms_restore_errmsg(r)), restore_exit(rc);
	if (o->json)
		printf("{\"ok\":true,\"recovery_updates\":%" PRIu32 "}\n", n_rec);
	else
		printf("restored onto %s; %" PRIu32 " recovery updates written\n", path, n_rec);
	return CLI_OK;
}

static int cmd_restore(struct opts *o)
{
	struct session s = { 0 };
	struct kms_restore *r = NULL;
	char pass[WIRE_PASSPHRASE_MAX + 2], err[400], path[4096];
	const char *dev = o->user_device ? o->user_device : o->device;
	const char *sd;
	int rc;

	if (!o->in || !dev || o->n_args != 1)
		return fprintf(stderr, "usage: sekey restore --in FILE --device NEWCUBE "
				       "[--passphrase-file F] [--updates DIR]\n"), CLI_USAGE;
	rc = login(dev, WIRE_ROLE_ADMIN, o->pin_file, o->pin_fd, "admin PIN of the new cube: ",
		   &s.cube);
	if (rc)
		return rc;
	sd = cube_sd_path(s.cube);
	if (o->db)
		snprintf(path, sizeof(path), "%s", o->db);
	else if (sd)
		snprintf(path, sizeof(path), "%s/%s", sd, ADMIN_DB);
	else
		rc = CLI_USAGE;
	if (rc)
		fprintf(stderr, "sekey: this cube has no SD folder: give --db PATH\n");
	if (!rc && access(path, F_OK) == 0) {
		fprintf(stderr, "sekey: %s exists: restore needs a fresh cube\n", path);
		rc = CLI_CUBE;
	}
	if (!rc)
		rc = read_passphrase(o, 0, pass, sizeof(pass));
	if (rc) {
		session_close(&s);
		return rc;
	}
	rc = kms_restore_open(&r, s.cube, o->in, pass, strlen(pass), NULL, err, sizeof(err));
	cli_wipe(pass, sizeof(pass));
	if (rc) {
		fprintf(stderr, "sekey: restore %s: %s\n", o->in, err);
		session_close(&s);
		return restore_exit(rc);
	}
	rc = restore_into(o, &s, r, path);
	if (s.db) {
		sqlite3_close(s.db);
		s.db = NULL;
	}
	if (rc)
		db_remove(path);
	kms_restore_close(r, rc == CLI_OK);
	session_close(&s);
	return rc;
}

/* ---- user commands ---- */

static void print_report(struct opts *o, const struct kms_sync_report *r)
{
	if (o->json) {
		printf("{\"user\":%" PRIu32 ",\"applied\":%" PRIu32 ",\"next\":%" PRIu64
		       ",\"failures\":%" PRIu32 ",\"locked\":%s,\"debris\":%" PRIu32 ",\"refused\":",
		       r->user_id, r->applied, r->next_counter, r->failures,
		       r->locked ? "true" : "false", r->debris);
		cli_json_str(stdout, r->refused);
		printf("}\n");
		return;
	}
	printf("user %" PRIu32 ": %" PRIu32 " updates applied, next %" PRIu64 ", %" PRIu32
	       " failures%s\n", r->user_id, r->applied, r->next_counter, r->failures,
	       r->locked ? ", LOCKED (waiting for a recovery update)" : "");
	if (r->debris)
		printf("ignored %" PRIu32 " stray files (first: %s)\n", r->debris, r->first_debris);
	if (r->refused[0])
		printf("refused: %s\n", r->refused);
}

static int cmd_sync(struct opts *o)
{
	struct session s = { 0 };
	struct kms_sync_report r;
	int rc;

	if (!o->updates)
		return fprintf(stderr, "usage: sekey --device DIR --updates DIR sync\n"), CLI_USAGE;
	if ((rc = session_open(o, WIRE_ROLE_USER, 1, &s)) != CLI_OK)
		return rc;
	rc = kms_sync(s.k, s.cube, o->updates, &r);
	print_report(o, &r);
	rc = rc ? kfail(&s, "sync", rc) : CLI_OK;
	session_close(&s);
	return rc;
}

static int cmd_status(struct opts *o)
{
	struct session s = { 0 };
	struct kms_sync_report r;
	int rc = session_open(o, WIRE_ROLE_USER, 0, &s);

	if (rc)
		return rc;
	rc = kms_sync_status(s.k, &r);
	if (!rc)
		print_report(o, &r);
	rc = rc ? kfail(&s, "status", rc) : r.locked ? EXIT_LOCKED : CLI_OK;
	session_close(&s);
	return rc;
}

static int cmd_find_key(struct opts *o)
{
	struct session s = { 0 };
	struct kms_found f;
	uint32_t ids[64];
	size_t n = 0;
	char list[1024], *tok, *save = NULL;
	int rc;

	if ((!o->group && o->n_args != 2) || (o->group && o->n_args != 1))
		return fprintf(stderr, "usage: sekey find-key USER[,USER...] | --group G\n"), CLI_USAGE;
	if ((rc = session_open(o, WIRE_ROLE_USER, 0, &s)) != CLI_OK)
		return rc;
	if (o->group) {
		struct kms_sync_report r;
		uint32_t g;

		rc = kms_sync_status(s.k, &r);
		if (!rc)
			rc = kms_group_by_name(s.k, o->group, &g);
		if (rc == KMS_ENOGROUP)
			rc = KMS_ENOKEY; /* not one of your groups */
		if (!rc)
			rc = kms_find_key_v2(s.k, r.user_id, g, &f);
	} else {
		snprintf(list, sizeof(list), "%s", o->args[1]);
		for (tok = strtok_r(list, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
			if (n == 64) {
				rc = KMS_EINVAL;
				break;
			}
			rc = kms_user_by_name(s.k, tok, &ids[n++]);
			if (rc == KMS_ENOUSER)
				rc = KMS_ENOKEY; /* shares no group with you */
		}
		if (!rc)
			rc = kms_find_key_v3(s.k, ids, n, &f);
	}
	if (rc) {
		fprintf(stderr, "sekey: find-key: %s\n",
			kms_errmsg(s.k)[0] ? kms_errmsg(s.k) : kms_strerror(rc));
		rc = exit_of(rc);
	} else if (o->json) {
		printf("{\"key\":%" PRIu32 ",\"group\":%" PRIu32 ",\"alg\":%u}\n", f.key_id, f.group_id,
		       f.alg);
	} else {
		printf("key %" PRIu32 " (group %" PRIu32 ")\n", f.key_id, f.group_id);
	}
	session_close(&s);
	return rc;
}

/* ---- rekey: a share's stale files (fs/rekey.c, the same as sekeyfs --rekey) ---- */

/* Split the backing directory path into the share's BACKING (the highest
 * directory holding a header whose parent holds none) and the path under
 * it.  root[cap] gets BACKING; *sub points into it ("" for BACKING). */
static int share_root(const char *path, char *root, size_t cap, const char **sub)
{
	char probe[PATH_MAX + 16];
	size_t top;
	char *slash;

	if (!realpath(path, root) || strlen(root) + 1 > cap)
		return fprintf(stderr, "sekey: rekey %s: %s\n", path, strerror(errno)), CLI_IO;
	snprintf(probe, sizeof(probe), "%s/" SEKEYFS_DIRHDR_NAME, root);
	if (access(probe, F_OK) != 0)
		return fprintf(stderr, "sekey: rekey %s: not a directory of a sekeyfs share "
			       "(no %s)\n", path, SEKEYFS_DIRHDR_NAME), CLI_USAGE;
	top = strlen(root);
	for (;;) {
		slash = memrchr(root, '/', top);
		if (!slash || slash == root)
			break;
		snprintf(probe, sizeof(probe), "%.*s/" SEKEYFS_DIRHDR_NAME, (int)(slash - root), root);
		if (access(probe, F_OK) != 0)
			break;
		top = (size_t)(slash - root);
	}
	*sub = "";
	if (top < strlen(root)) {
		root[top] = '\0';
		*sub = root + top + 1;
	}
	return CLI_OK;
}

static int cmd_rekey(struct opts *o)
{
	struct sekeyfs_rekey_job job = { .prog = "sekey", .connections = 1 };
	char root[PATH_MAX], pin[WIRE_PIN_MAX + 2];
	int rc;

	job.device = o->device ? o->device : o->user_device;
	job.updates = o->updates;
	if (o->n_args != 2 || !job.device || !job.updates)
		return fprintf(stderr, "usage: sekey --device DIR --updates DIR rekey PATH\n"),
		       CLI_USAGE;
	if ((rc = share_root(o->args[1], root, sizeof(root), &job.backing_sub)) != CLI_OK)
		return rc;
	job.backing = root;
	job.progress = isatty(2);
	if (cli_read_pin(o->pin_file, o->pin_fd, "PIN: ", pin, sizeof(pin)) != 0) {
		cli_wipe(pin, sizeof(pin));
		return CLI_USAGE;
	}
	rc = sekeyfs_rekey_run(&job, pin);
	cli_wipe(pin, sizeof(pin));
	return rc;
}

/* ---- the command table and main ---- */

struct command {
	const char *name;
	int (*run)(struct opts *);
	const char *help;
};

static const struct command commands[] = {
	{ "init", cmd_init, "make the admin cube's KMS (DB key + secure database in its SD folder)" },
	{ "user", cmd_user, "add NAME --device USERCUBE [--peer-pin-file F] | del NAME | list | recover NAME" },
	{ "group", cmd_group, "add NAME [--alg gcm|ctr-hmac] [--max-keys N] [--cryptoperiod S] | del | add-member G U | remove-member G U | list" },
	{ "key", cmd_key, "add GROUP [--cryptoperiod S] | activate ID | set-state ID STATE | list" },
	{ "expired-check", cmd_expired_check, "deactivate every key whose cryptoperiod is over" },
	{ "audit", cmd_audit, "[--verify]: the audit log, or check its hash chain" },
	{ "updates", cmd_updates, "prune: remove update files every user acknowledged" },
	{ "backup", cmd_backup, "--out FILE [--passphrase-file F] [--iterations N]: encrypted backup of the admin cube and database" },
	{ "restore", cmd_restore, "--in FILE --device NEWCUBE [--passphrase-file F]: restore a backup onto a fresh cube" },
	{ "sync", cmd_sync, "(user) apply pending updates from --updates" },
	{ "status", cmd_status, "(user) who am I, next update, failures, locked" },
	{ "find-key", cmd_find_key, "(user) USER[,USER...] | --group G: the key to encrypt with" },
	{ "rekey", cmd_rekey, "(user) PATH: re-encrypt the stale files under PATH (a directory of a share's BACKING)" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: sekey [--device DIR] [--updates DIR] [--db PATH] [--pin-file F|--pin-fd N] "
		     "[--json] COMMAND ...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\nexit: 0 ok, 1 usage, 2 integrity/audit broken, 3 no key, 4 cube/login, "
		     "5 I/O, 6 KMS locked\n");
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* Options before COMMAND are global; after it, --device names the user's
 * cube (user add) and the rest are command options. */
static int parse(int argc, char **argv, struct opts *o)
{
	int after_cmd = 0;

	memset(o, 0, sizeof(*o));
	o->pin_fd = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;

		if (!strcmp(a, "--json")) {
			o->json = 1;
			takes = 0;
		} else if (!strcmp(a, "--verify")) {
			o->verify = 1;
			takes = 0;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (a[0] == '-' && a[1] == '-') {
			if (!v)
				return fprintf(stderr, "sekey: %s needs a value\n", a), -1;
			if (!strcmp(a, "--device") && after_cmd)
				o->user_device = v;
			else if (!strcmp(a, "--device"))
				o->device = v;
			else if (!strcmp(a, "--updates"))
				o->updates = v;
			else if (!strcmp(a, "--db"))
				o->db = v;
			else if (!strcmp(a, "--pin-file"))
				o->pin_file = v;
			else if (!strcmp(a, "--peer-pin-file"))
				o->peer_pin_file = v;
			else if (!strcmp(a, "--alg"))
				o->alg = v;
			else if (!strcmp(a, "--group"))
				o->group = v;
			else if (!strcmp(a, "--out"))
				o->out = v;
			else if (!strcmp(a, "--in"))
				o->in = v;
			else if (!strcmp(a, "--passphrase-file"))
				o->passphrase_file = v;
			else if (!strcmp(a, "--iterations")) {
				if (cli_parse_u32(v, WIRE_PBKDF2_ITER_MIN, WIRE_PBKDF2_ITER_MAX,
						  &o->iterations) != 0)
					return fprintf(stderr, "sekey: --iterations %u..%u\n",
						       WIRE_PBKDF2_ITER_MIN, WIRE_PBKDF2_ITER_MAX), -1;
			}
			else if (!strcmp(a, "--pin-fd")) {
				uint32_t fd;

				if (cli_parse_u32(v, 0, 1024, &fd) != 0)
					return fprintf(stderr, "sekey: bad --pin-fd\n"), -1;
				o->pin_fd = (int)fd;
			} else if (!strcmp(a, "--max-keys")) {
				if (cli_parse_u32(v, 1, KMS_MAX_KEYS_LIMIT, &o->max_keys) != 0)
					return fprintf(stderr, "sekey: bad --max-keys\n"), -1;
			} else if (!strcmp(a, "--cryptoperiod")) {
				if (parse_i64(v, &o->cryptoperiod) != 0)
					return fprintf(stderr, "sekey: bad --cryptoperiod\n"), -1;
			} else {
				return fprintf(stderr, "sekey: unknown option %s\n", a), -1;
			}
		} else {
			if (o->n_args == MAX_ARGS)
				return fprintf(stderr, "sekey: too many arguments\n"), -1;
			o->args[o->n_args++] = a;
			after_cmd = 1;
			takes = 0;
		}
		i += takes;
	}
	if (!o->device)
		o->device = getenv("SEKEY_DEVICE");
	if (!o->updates)
		o->updates = getenv("SEKEY_UPDATES");
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;

	if (parse(argc, argv, &o) != 0)
		return CLI_USAGE;
	if (o.n_args == 0) {
		usage(stderr);
		return CLI_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(o.args[0], commands[i].name))
			return commands[i].run(&o);
	fprintf(stderr, "sekey: unknown command %s\n", o.args[0]);
	usage(stderr);
	return CLI_USAGE;
}
