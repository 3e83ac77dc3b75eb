/*
 * secube.c - the `secube` tool: make, inspect and administer cubes
 * (emulated ones in a device directory, or boards on USB).  Key values are
 * never shown: the device does not give them out.
 *
 *   secube create DIR                 a new blank emulated cube
 *   secube init DEV                   set both PINs of a blank cube
 *   secube list [DIR...]              the given emulated cubes and USB boards
 *   secube info DEV                   identity, state, PIN tries, key count
 *   secube set-pin DEV                change a PIN (--admin: the admin PIN;
 *                                     --for-user with --admin: reset the user's)
 *   secube reset DEV                  factory reset: wipes every key and PIN
 *   secube keys DEV                   IDs and attributes of the keys
 *   secube keygen DEV --id N ...      generate a key inside the cube (admin)
 *   secube clock DEV --set T          set the cube's clock (admin)
 *   secube selftest DEV               the device's known-answer self test
 *   secube provision DEV --peer DEV2 --channel-id N [--key ID]...
 *                                     agree a channel key between two cubes
 *                                     (X25519 inside both) and copy keys
 *                                     wrapped under it from DEV to DEV2
 *
 * Sections: options and helpers; the commands; the command table and main.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cube/cube.h"
#include "wire/frame.h"
#include "tools/cli.h"

/* ---- options and helpers --------------------------------------------- */

struct opts {
	const char *device;
	const char *pin_file;
	int pin_fd;
	const char *new_pin_file;
	const char *admin_pin_file;
	const char *user_pin_file;
	int admin;
	int for_user;
	int json;
	int yes;
	/* keygen */
	uint32_t id;
	int have_id;
	uint8_t alg;
	uint8_t usage;
	uint32_t not_before;
	uint32_t not_after;
	/* init */
	uint32_t user_tries;
	uint32_t admin_tries;
	/* clock */
	const char *clock_set;
	/* provision */
	const char *peer;
	const char *peer_pin_file;
	uint32_t channel_id;
	uint32_t copy_keys[64];
	size_t n_copy;
	int argc;
	char **argv;
};

/* Usage flags as "encrypt,decrypt,wrap,unwrap,derive,mac,exportable,backup". */
static const char *const usage_names[] = { "encrypt", "decrypt", "wrap", "unwrap",
					   "derive", "mac", "exportable", "backup" };

static void usage_text(uint8_t usage, char *out, size_t cap)
{
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < sizeof(usage_names) / sizeof(usage_names[0]); i++)
		if (usage & (1u << i))
			n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s",
					      n ? "," : "", usage_names[i]);
}

static int parse_usage(const char *s, uint8_t *usage)
{
	char buf[128], *tok, *save = NULL;
	size_t i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*usage = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(usage_names) / sizeof(usage_names[0]); i++)
			if (!strcmp(tok, usage_names[i]))
				break;
		if (i == sizeof(usage_names) / sizeof(usage_names[0]))
			return -1;
		*usage |= (uint8_t)(1u << i);
	}
	return *usage ? 0 : -1;
}

/* "never", "now", "+N" minutes from now, or a unix time; to device minutes. */
static int parse_time(const char *s, uint32_t *minutes)
{
	time_t now = time(NULL);
	long long t;
	char *end;

	if (!strcmp(s, "never")) {
		*minutes = WIRE_TIME_NEVER;
		return 0;
	}
	if (!strcmp(s, "now"))
		t = now;
	else if (s[0] == '+') {
		t = strtoll(s + 1, &end, 10);
		if (*end || t < 0 || t > 60ll * 24 * 366 * 30)
			return -1;
		t = now + t * 60;
	} else {
		t = strtoll(s, &end, 10);
		if (*end)
			return -1;
	}
	if (t < WIRE_EPOCH || (t - WIRE_EPOCH) / 60 >= WIRE_TIME_NEVER)
		return -1;
	*minutes = (uint32_t)((t - WIRE_EPOCH) / 60);
	return 0;
}

static void print_time(FILE *out, uint32_t minutes, int json)
{
	char buf[32];
	time_t t;
	struct tm tm;

	if (minutes == WIRE_TIME_NEVER || minutes == 0) {
		fputs(json ? (minutes ? "null" : "0") : (minutes ? "never" : "always"), out);
		return;
	}
	t = (time_t)(WIRE_EPOCH + (long long)minutes * 60);
	if (json) {
		fprintf(out, "%lld", (long long)t);
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%MZ", &tm);
	fputs(buf, out);
}

static int exit_for(int err)
{
	switch (err) {
	case CUBE_OK: return CLI_OK;
	case CUBE_ENOKEY: case CUBE_EUSAGE: case CUBE_EEXPIRED: case CUBE_EEXIST: return CLI_KEY;
	case CUBE_EINTEGRITY: return CLI_DAMAGED;
	case CUBE_EINVAL: return CLI_USAGE;
	default: return CLI_CUBE;
	}
}

static int fail(struct cube *c, const char *what, int err)
{
	fprintf(stderr, "secube: %s: %s\n", what, c ? cube_errmsg(c) : cube_strerror(err));
	return exit_for(err);
}

static int connect_dev(const struct opts *o, struct cube **c)
{
	char err[256];
	int rc;

	if (!o->device) {
		fprintf(stderr, "secube: no device given (a directory, or usb:SERIAL)\n");
		return CLI_USAGE;
	}
	rc = cube_open(c, o->device, err, sizeof(err));
	if (rc != CUBE_OK) {
		fprintf(stderr, "secube: %s\n", err);
		return exit_for(rc);
	}
	return CLI_OK;
}

/* Connect and log in with the role the options ask for. */
static int connect_login(const struct opts *o, struct cube **c)
{
	char pin[WIRE_PIN_MAX + 2];
	enum wire_role role = o->admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER;
	int rc = connect_dev(o, c);

	if (rc != CLI_OK)
		return rc;
	if (cli_read_pin(o->pin_file, o->pin_fd, o->admin ? "Admin PIN: " : "User PIN: ",
			 pin, sizeof(pin)) < 0) {
		cube_close(*c);
		*c = NULL;
		return CLI_USAGE;
	}
	rc = cube_login(*c, role, pin);
	cli_wipe(pin, sizeof(pin));
	if (rc != CUBE_OK) {
		rc = fail(*c, "login", rc);
		cube_close(*c);
		*c = NULL;
	}
	return rc;
}

/* A new PIN: from file, else asked twice on the terminal. */
static int read_new_pin(const char *file, const char *what, char *pin, size_t cap)
{
	char again[WIRE_PIN_MAX + 2];
	char prompt[64];
	int same;

	snprintf(prompt, sizeof(prompt), "New %s PIN: ", what);
	if (cli_read_pin(file, -1, prompt, pin, cap) < 0)
		return -1;
	if (file)
		goto check;
	snprintf(prompt, sizeof(prompt), "New %s PIN again: ", what);
	if (cli_read_pin(NULL, -1, prompt, again, sizeof(again)) < 0) {
		cli_wipe(pin, cap);
		return -1;
	}
	same = !strcmp(pin, again);
	cli_wipe(again, sizeof(again));
	if (!same) {
		cli_wipe(pin, cap);
		fprintf(stderr, "secube: the two PINs differ\n");
		return -1;
	}
check:
	if (strlen(pin) < WIRE_PIN_MIN || strlen(pin) > WIRE_PIN_MAX) {
		cli_wipe(pin, cap);
		fprintf(stderr, "secube: a PIN has %d to %d characters\n", WIRE_PIN_MIN, WIRE_PIN_MAX);
		return -1;
	}
	return 0;
}

/* ---- the commands ------------------------------------------------------ */

static int cmd_create(struct opts *o)
{
	char err[256];
	int rc;

	if (!o->device)
		return fprintf(stderr, "usage: secube create DIR\n"), CLI_USAGE;
	rc = cube_create_emulated(o->device, err, sizeof(err));
	if (rc != CUBE_OK) {
		fprintf(stderr, "secube: %s\n", err);
		/* a cube already there is a device problem, not a key problem */
		return rc == CUBE_EEXIST ? CLI_CUBE : exit_for(rc);
	}
	if (!o->json)
		printf("created a blank cube in %s; set its PINs with: secube init %s\n",
		       o->device, o->device);
	else
		printf("{\"created\":"), cli_json_str(stdout, o->device), printf("}\n");
	return CLI_OK;
}

static int cmd_init(struct opts *o)
{
	char apin[WIRE_PIN_MAX + 2], upin[WIRE_PIN_MAX + 2];
	struct cube *c = NULL;
	int rc = connect_dev(o, &c);

	if (rc != CLI_OK)
		return rc;
	if (read_new_pin(o->admin_pin_file, "admin", apin, sizeof(apin)) < 0) {
		cube_close(c);
		return CLI_USAGE;
	}
	if (read_new_pin(o->user_pin_file, "user", upin, sizeof(upin)) < 0) {
		cli_wipe(apin, sizeof(apin));
		cube_close(c);
		return CLI_USAGE;
	}
	rc = cube_factory_init(c, apin, upin, o->user_tries, o->admin_tries);
	cli_wipe(apin, sizeof(apin));
	cli_wipe(upin, sizeof(upin));
	rc = rc == CUBE_OK ? CLI_OK : fail(c, "init", rc);
	cube_close(c);
	return rc;
}

static void print_info(const char *dev, const struct cube_info *in, int json)
{
	char serial[2 * WIRE_SERIAL_LEN + 1], pub[2 * WIRE_PUBKEY_LEN + 1];
	static const char *const states[] = { "blank", "ready", "locked" };
	const char *state = in->state <= WIRE_DEV_LOCKED ? states[in->state] : "unknown";

	cli_hex(in->serial, sizeof(in->serial), serial);
	cli_hex(in->pubkey, sizeof(in->pubkey), pub);
	if (json) {
		printf("{\"device\":");
		cli_json_str(stdout, dev);
		printf(",\"serial\":\"%s\",\"pubkey\":\"%s\",\"firmware\":%" PRIu32
		       ",\"state\":\"%s\",\"user_tries_left\":%u,\"admin_tries_left\":%u"
		       ",\"keys\":%" PRIu32 ",\"key_room\":%" PRIu32 ",\"clock\":",
		       serial, pub, in->fw_version, state, in->user_tries_left,
		       in->admin_tries_left, in->key_count, in->key_capacity);
		print_time(stdout, in->now_minutes, 1);
		printf(",\"shared_memory\":%s}\n", in->shm ? "true" : "false");
		return;
	}
	printf("device:       %s\nserial:       %s\npublic key:   %s\nfirmware:     %" PRIu32
	       "\nstate:        %s\nPIN tries:    user %u left, admin %u left\n"
	       "keys:         %" PRIu32 " (room for %" PRIu32 " more)\nclock:        ",
	       dev, serial, pub, in->fw_version, state, in->user_tries_left,
	       in->admin_tries_left, in->key_count, in->key_capacity);
	print_time(stdout, in->now_minutes, 0);
	printf("\n");
}

static int cmd_info(struct opts *o)
{
	struct cube *c = NULL;
	struct cube_info in;
	int rc = connect_dev(o, &c);

	if (rc != CLI_OK)
		return rc;
	rc = cube_info(c, &in);
	if (rc == CUBE_OK)
		print_info(o->device, &in, o->json);
	else
		rc = fail(c, "info", rc);
	cube_close(c);
	return rc;
}

static int cmd_list(struct opts *o)
{
	int i, worst = CLI_OK, first = 1;
	char err[256];

	if (o->json)
		printf("[");
	for (i = 0; i < o->argc; i++) {
		struct cube *c = NULL;
		struct cube_info in;
		int rc = cube_open(&c, o->argv[i], err, sizeof(err));

		if (rc == CUBE_OK) {
			rc = cube_info(c, &in);
			if (rc != CUBE_OK)
				snprintf(err, sizeof(err), "%s", cube_errmsg(c));
			cube_close(c);
		}
		if (rc != CUBE_OK) {
			fprintf(stderr, "secube: %s: %s\n", o->argv[i], err);
			worst = exit_for(rc);
			continue;
		}
		if (o->json && !first)
			printf(",");
		first = 0;
		if (o->json) {
			char serial[2 * WIRE_SERIAL_LEN + 1];

			cli_hex(in.serial, sizeof(in.serial), serial);
			printf("{\"device\":");
			cli_json_str(stdout, o->argv[i]);
			printf(",\"serial\":\"%s\",\"keys\":%" PRIu32 "}", serial, in.key_count);
		} else {
			char serial[2 * WIRE_SERIAL_LEN + 1];

			cli_hex(in.serial, sizeof(in.serial), serial);
			printf("%-30s serial %s  %" PRIu32 " keys\n", o->argv[i], serial, in.key_count);
		}
	}
	/* USB boards: the driver says whether any is there. */
	{
		struct cube *c = NULL;

		if (cube_open(&c, "usb:", err, sizeof(err)) == CUBE_OK) {
			struct cube_info in;

			if (cube_info(c, &in) == CUBE_OK && !o->json)
				printf("usb: a board, %" PRIu32 " keys\n", in.key_count);
			cube_close(c);
		} else if (!o->json) {
			printf("usb: %s\n", err);
		}
	}
	if (o->json)
		printf("]\n");
	return worst;
}

static int cmd_set_pin(struct opts *o)
{
	char pin[WIRE_PIN_MAX + 2];
	struct cube *c = NULL;
	enum wire_role target = (o->admin && !o->for_user) ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER;
	int rc;

	if (o->for_user && !o->admin)
		return fprintf(stderr, "secube: --for-user needs --admin\n"), CLI_USAGE;
	rc = connect_login(o, &c);
	if (rc != CLI_OK)
		return rc;
	if (read_new_pin(o->new_pin_file, target == WIRE_ROLE_ADMIN ? "admin" : "user",
			 pin, sizeof(pin)) < 0) {
		cube_close(c);
		return CLI_USAGE;
	}
	rc = cube_set_pin(c, target, pin);
	cli_wipe(pin, sizeof(pin));
	rc = rc == CUBE_OK ? CLI_OK : fail(c, "set-pin", rc);
	cube_close(c);
	return rc;
}

static int cmd_reset(struct opts *o)
{
	struct cube *c = NULL;
	struct cube_info in;
	int rc;

	if (!o->yes) {
		fprintf(stderr, "secube: reset wipes every key and both PINs of %s; "
				"add --yes to do it\n", o->device ? o->device : "the device");
		return CLI_USAGE;
	}
	rc = connect_dev(o, &c);
	if (rc != CLI_OK)
		return rc;
	rc = cube_info(c, &in);
	if (rc == CUBE_OK && in.state != WIRE_DEV_LOCKED) {
		/* A working device needs the admin to reset it. */
		cube_close(c);
		o->admin = 1;
		rc = connect_login(o, &c);
		if (rc != CLI_OK)
			return rc;
	}
	rc = cube_factory_reset(c);
	rc = rc == CUBE_OK ? CLI_OK : fail(c, "reset", rc);
	cube_close(c);
	return rc;
}

static void print_key(const struct cube_key *k, int json, int first)
{
	char usage[128];

	usage_text(k->usage, usage, sizeof(usage));
	if (json) {
		printf("%s{\"id\":%" PRIu32 ",\"alg\":\"%s\",\"usage\":\"%s\",\"not_before\":",
		       first ? "" : ",", k->id, wire_alg_name(k->alg), usage);
		print_time(stdout, k->not_before, 1);
		printf(",\"not_after\":");
		print_time(stdout, k->not_after, 1);
		printf(",\"value\":\"(hidden)\"}");
		return;
	}
	printf("%10" PRIu32 "  %-16s %-40s ", k->id, wire_alg_name(k->alg), usage);
	print_time(stdout, k->not_before, 0);
	printf(" .. ");
	print_time(stdout, k->not_after, 0);
	printf("  value (hidden)\n");
}

static int cmd_keys(struct opts *o)
{
	struct cube_key keys[64];
	struct cube *c = NULL;
	uint32_t n, i, next = 0, total = 0;
	int rc = connect_login(o, &c);

	if (rc != CLI_OK)
		return rc;
	if (o->json)
		printf("[");
	else
		printf("%10s  %-16s %-40s %s\n", "ID", "ALGORITHM", "USAGE", "VALID");
	for (;;) {
		rc = cube_key_list(c, next, keys, 64, &n);
		if (rc != CUBE_OK || n == 0)
			break;
		for (i = 0; i < n; i++)
			print_key(&keys[i], o->json, total + i == 0);
		total += n;
		if (keys[n - 1].id == UINT32_MAX)
			break;
		next = keys[n - 1].id + 1;
	}
	if (o->json)
		printf("]\n");
	rc = rc == CUBE_OK ? CLI_OK : fail(c, "keys", rc);
	cube_close(c);
	return rc;
}

static int cmd_keygen(struct opts *o)
{
	struct cube *c = NULL;
	struct cube_key k;
	int rc;

	if (!o->have_id || !o->alg || !o->usage)
		return fprintf(stderr, "usage: secube keygen DEV --id N --alg ALG --usage U,...\n"),
		       CLI_USAGE;
	o->admin = 1;
	rc = connect_login(o, &c);
	if (rc != CLI_OK)
		return rc;
	memset(&k, 0, sizeof(k));
	k.id = o->id;
	k.alg = o->alg;
	k.usage = o->usage;
	k.not_before = o->not_before;
	k.not_after = o->not_after;
	rc = cube_key_generate(c, &k);
	rc = rc == CUBE_OK ? CLI_OK : fail(c, "keygen", rc);
	cube_close(c);
	return rc;
}

static int cmd_clock(struct opts *o)
{
	struct cube *c = NULL;
	long long t;
	char *end;
	int rc;

	if (!o->clock_set)
		return fprintf(stderr, "usage: secube clock DEV --set now|UNIX-SECONDS\n"), CLI_USAGE;
	t = strcmp(o->clock_set, "now") ? strtoll(o->clock_set, &end, 10) : (long long)time(NULL);
	if (strcmp(o->clock_set, "now") && *end)
		return fprintf(stderr, "secube: bad time %s\n", o->clock_set), CLI_USAGE;
	o->admin = 1;
	rc = connect_login(o, &c);
	if (rc != CLI_OK)
		return rc;
	rc = cube_clock_set(c, t);
	rc = rc == CUBE_OK ? CLI_OK : fail(c, "clock", rc);
	cube_close(c);
	return rc;
}

static int cmd_selftest(struct opts *o)
{
	struct cube *c = NULL;
	char report[4096];
	unsigned failed = 0;
	int rc = connect_dev(o, &c);

	if (rc != CLI_OK)
		return rc;
	rc = cube_selftest(c, &failed, report, sizeof(report));
	if (rc != CUBE_OK) {
		rc = fail(c, "selftest", rc);
	} else if (o->json) {
		printf("{\"failed\":%u,\"report\":", failed);
		cli_json_str(stdout, report);
		printf("}\n");
		rc = failed ? CLI_DAMAGED : CLI_OK;
	} else {
		fputs(report, stdout);
		printf("%s\n", failed ? "SELFTEST FAILED" : "selftest ok");
		rc = failed ? CLI_DAMAGED : CLI_OK;
	}
	cube_close(c);
	return rc;
}

/*
 * Provision: both cubes derive the same wrap-only key from their X25519
 * keys (the host only passes public keys), then each listed key leaves DEV
 * wrapped under it and enters DEV2.  No secret is ever in clear here.
 */
static int cmd_provision(struct opts *o)
{
	struct cube *a = NULL, *b = NULL;
	struct cube_info ia, ib;
	struct opts peer;
	uint8_t blob[128];
	size_t blob_len, i;
	uint32_t id;
	int rc;

	if (!o->peer || !o->channel_id)
		return fprintf(stderr, "usage: secube provision DEV --peer DEV2 --channel-id N "
				       "[--key ID]... [--pin-file F] [--peer-pin-file F]\n"), CLI_USAGE;
	o->admin = 1;
	peer = *o;
	peer.device = o->peer;
	peer.pin_file = o->peer_pin_file ? o->peer_pin_file : o->pin_file;
	if ((rc = connect_login(o, &a)) != CLI_OK)
		return rc;
	if ((rc = connect_login(&peer, &b)) != CLI_OK)
		goto out;
	if ((rc = cube_info(a, &ia)) != CUBE_OK || (rc = cube_info(b, &ib)) != CUBE_OK) {
		rc = fail(rc == CUBE_OK ? b : a, "info", rc);
		goto out;
	}
	rc = cube_channel_derive(a, o->channel_id, ib.pubkey, (const uint8_t *)"provision", 9);
	if (rc != CUBE_OK) {
		rc = fail(a, "channel key on the first cube", rc);
		goto out;
	}
	rc = cube_channel_derive(b, o->channel_id, ia.pubkey, (const uint8_t *)"provision", 9);
	if (rc != CUBE_OK) {
		rc = fail(b, "channel key on the peer cube", rc);
		goto out;
	}
	for (i = 0; i < o->n_copy; i++) {
		rc = cube_key_export(a, o->channel_id, o->copy_keys[i], blob, sizeof(blob), &blob_len);
		if (rc != CUBE_OK) {
			rc = fail(a, "export", rc);
			goto out;
		}
		rc = cube_key_import(b, o->channel_id, blob, blob_len, &id);
		cli_wipe(blob, sizeof(blob));
		if (rc != CUBE_OK) {
			rc = fail(b, "import", rc);
			goto out;
		}
		if (!o->json)
			printf("key %" PRIu32 " copied, wrapped (%zu bytes on the host, never in clear)\n",
			       id, blob_len);
	}
	rc = CLI_OK;
out:
	if (a)
		cube_close(a);
	if (b)
		cube_close(b);
	return rc;
}

/* ---- the command table and main ---------------------------------------- */

struct command {
	const char *name;
	int (*run)(struct opts *);
	const char *help;
};

static const struct command commands[] = {
	{ "create", cmd_create, "DIR: make a new blank emulated cube" },
	{ "init", cmd_init, "DEV [--admin-pin-file F] [--user-pin-file F] [--user-tries N] [--admin-tries N]: set the PINs of a blank cube" },
	{ "list", cmd_list, "[DIR...]: the given emulated cubes and any USB board" },
	{ "info", cmd_info, "DEV: identity, state, PIN tries left, keys" },
	{ "set-pin", cmd_set_pin, "DEV [--admin [--for-user]] [--new-pin-file F]: change a PIN" },
	{ "reset", cmd_reset, "DEV --yes: factory reset (wipes every key and both PINs)" },
	{ "keys", cmd_keys, "DEV [--admin]: key IDs and attributes (never values)" },
	{ "keygen", cmd_keygen, "DEV --id N --alg ALG --usage U[,U...] [--not-before T] [--not-after T]: generate a key (admin)" },
	{ "clock", cmd_clock, "DEV --set now|UNIX: set the cube's clock (admin)" },
	{ "selftest", cmd_selftest, "DEV: run the device's known-answer self test" },
	{ "provision", cmd_provision, "DEV --peer DEV2 --channel-id N [--key ID]... [--peer-pin-file F]: cube-to-cube channel key, copy keys wrapped (admin on both)" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: secube COMMAND [options] ...\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\ncommon options: --pin-file F | --pin-fd N (else asked without echo),\n"
		     "  --admin (log in as admin), --json (machine output), --help\n"
		     "algorithms: aes256-gcm aes256-ctr-hmac aes256-kw hmac-sha256 aes128-gcm\n"
		     "usage flags: encrypt decrypt wrap unwrap derive mac exportable\n"
		     "times: now, never, +MINUTES, or unix seconds\n"
		     "exit: 0 ok, 1 usage, 2 damaged/selftest failed, 3 key error, 4 cube error\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_PINFILE = 256, O_PINFD, O_NEWPIN, O_APIN, O_UPIN, O_ID, O_ALG, O_USAGE,
	       O_NB, O_NA, O_UTRIES, O_ATRIES, O_SET, O_FORUSER, O_YES, O_PEER, O_PEERPIN, O_CHAN, O_KEY };
	static const struct option longopts[] = {
		{ "pin-file", required_argument, NULL, O_PINFILE },
		{ "pin-fd", required_argument, NULL, O_PINFD },
		{ "new-pin-file", required_argument, NULL, O_NEWPIN },
		{ "admin-pin-file", required_argument, NULL, O_APIN },
		{ "user-pin-file", required_argument, NULL, O_UPIN },
		{ "admin", no_argument, NULL, 'a' },
		{ "for-user", no_argument, NULL, O_FORUSER },
		{ "json", no_argument, NULL, 'j' },
		{ "yes", no_argument, NULL, O_YES },
		{ "id", required_argument, NULL, O_ID },
		{ "alg", required_argument, NULL, O_ALG },
		{ "usage", required_argument, NULL, O_USAGE },
		{ "not-before", required_argument, NULL, O_NB },
		{ "not-after", required_argument, NULL, O_NA },
		{ "user-tries", required_argument, NULL, O_UTRIES },
		{ "admin-tries", required_argument, NULL, O_ATRIES },
		{ "set", required_argument, NULL, O_SET },
		{ "peer", required_argument, NULL, O_PEER },
		{ "peer-pin-file", required_argument, NULL, O_PEERPIN },
		{ "channel-id", required_argument, NULL, O_CHAN },
		{ "key", required_argument, NULL, O_KEY },
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t v;
	int ch;

	o->pin_fd = -1;
	o->not_after = WIRE_TIME_NEVER;
	while ((ch = getopt_long(argc, argv, "ajd:h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_PINFILE: o->pin_file = optarg; break;
		case O_PINFD:
			if (cli_parse_u32(optarg, 0, 65535, &v) < 0)
				goto bad;
			o->pin_fd = (int)v;
			break;
		case O_NEWPIN: o->new_pin_file = optarg; break;
		case O_APIN: o->admin_pin_file = optarg; break;
		case O_UPIN: o->user_pin_file = optarg; break;
		case 'a': o->admin = 1; break;
		case O_FORUSER: o->for_user = 1; break;
		case 'j': o->json = 1; break;
		case O_YES: o->yes = 1; break;
		case 'd': o->device = optarg; break;
		case O_ID:
			if (cli_parse_u32(optarg, 0, UINT32_MAX, &o->id) < 0)
				goto bad;
			o->have_id = 1;
			break;
		case O_ALG: if (wire_alg_parse(optarg, &o->alg) < 0) goto bad; break;
		case O_USAGE: if (parse_usage(optarg, &o->usage) < 0) goto bad; break;
		case O_NB: if (parse_time(optarg, &o->not_before) < 0) goto bad; break;
		case O_NA: if (parse_time(optarg, &o->not_after) < 0) goto bad; break;
		case O_UTRIES:
			if (cli_parse_u32(optarg, 1, 100, &o->user_tries) < 0)
				goto bad;
			break;
		case O_ATRIES:
			if (cli_parse_u32(optarg, 1, 100, &o->admin_tries) < 0)
				goto bad;
			break;
		case O_SET: o->clock_set = optarg; break;
		case O_PEER: o->peer = optarg; break;
		case O_PEERPIN: o->peer_pin_file = optarg; break;
		case O_CHAN:
			if (cli_parse_u32(optarg, 1, UINT32_MAX, &o->channel_id) < 0)
				goto bad;
			break;
		case O_KEY:
			if (o->n_copy == sizeof(o->copy_keys) / sizeof(o->copy_keys[0]) ||
			    cli_parse_u32(optarg, 0, UINT32_MAX, &o->copy_keys[o->n_copy]) < 0)
				goto bad;
			o->n_copy++;
			break;
		case 'h': usage(stdout); exit(CLI_OK);
		default: return -1;
		}
	}
	o->argc = argc - optind;
	o->argv = argv + optind;
	if (!o->device && o->argc > 0)
		o->device = o->argv[0];
	return 0;
bad:
	fprintf(stderr, "secube: bad value for an option: %s\n", optarg);
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o;
	size_t i;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		memset(&o, 0, sizeof(o));
		if (parse_opts(argc - 1, argv + 1, &o) < 0)
			return CLI_USAGE;
		return commands[i].run(&o);
	}
	fprintf(stderr, "secube: unknown command %s (secube --help lists them)\n", argv[1]);
	return CLI_USAGE;
}
