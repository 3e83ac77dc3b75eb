/*
 * robust_client.c - the small cube client the robustness scripts
 * (tests/robust_valgrind_emu.sh, tests/robust_emu_crash.sh) compile and
 * drive against a running secube-emu.  It is not part of any library.
 *
 *   robust_client init DIR            create a cube in DIR, set the PINs, make
 *                                     data key 1 and wrap key 2
 *   robust_client session DIR         a scripted session touching every kind
 *                                     of request, wrong PINs, a malformed frame
 *                                     and abrupt disconnects; exit 0 if all
 *                                     answers were the expected ones
 *   robust_client churn DIR LOG SEED  generate, destroy and seal in a loop
 *                                     until the emulator dies; every request is
 *                                     logged before it is sent ("G id", "D id")
 *                                     and again once acknowledged ("g id", "d id")
 *   robust_client check DIR LOG       after a crash: the cube opens, every
 *                                     acknowledged key is there, no destroyed key
 *                                     is back, the in-flight request went one way
 *                                     or the other (appended to LOG as resolved),
 *                                     PIN counters are sane, sealing works
 * Exit status: 0 ok, 1 a check failed (reason on stderr), 2 usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cube/cube.h"
#include "wire/buf.h"
#include "wire/frame.h"

#define ADMIN_PIN "admin-pin-1"
#define USER_PIN "user-pin-1"
#define DATA_KEY 1
#define WRAP_KEY 2
#define FIRST_CHURN_ID 1000
#define MAX_IDS 200000

static int failures;

static void fail(const char *what, struct cube *c, int rc)
{
	fprintf(stderr, "robust_client: %s: %s (%s)\n", what, cube_strerror(rc),
		c ? cube_errmsg(c) : "");
	failures++;
}

/* Expect rc == want; count a failure otherwise. */
static void expect(const char *what, struct cube *c, int rc, int want)
{
	if (rc != want) {
		fprintf(stderr, "robust_client: %s: got %s, want %s (%s)\n", what, cube_strerror(rc),
			cube_strerror(want), c ? cube_errmsg(c) : "");
		failures++;
	}
}

static struct cube *open_login(const char *dir, enum wire_role role, const char *pin)
{
	char err[512];
	struct cube *c;
	int rc = cube_open(&c, dir, err, sizeof(err));

	if (rc != CUBE_OK) {
		fprintf(stderr, "robust_client: open %s: %s\n", dir, err);
		return NULL;
	}
	rc = cube_login(c, role, pin);
	if (rc != CUBE_OK) {
		fail("login", c, rc);
		cube_close(c);
		return NULL;
	}
	return c;
}

static int cmd_init(const char *dir)
{
	struct cube_key data = { DATA_KEY, WIRE_ALG_AES256_GCM,
				 WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT | WIRE_USE_EXPORTABLE, 0,
				 WIRE_TIME_NEVER };
	struct cube_key wrap = { WRAP_KEY, WIRE_ALG_AES256_KW, WIRE_USE_WRAP | WIRE_USE_UNWRAP, 0,
				 WIRE_TIME_NEVER };
	char err[512];
	struct cube *c;
	int rc = cube_create_emulated(dir, err, sizeof(err));

	if (rc != CUBE_OK) {
		fprintf(stderr, "robust_client: create: %s\n", err);
		return 1;
	}
	if (cube_open(&c, dir, err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "robust_client: open: %s\n", err);
		return 1;
	}
	expect("factory init", c, cube_factory_init(c, ADMIN_PIN, USER_PIN, 0, 0), CUBE_OK);
	expect("admin login", c, cube_login(c, WIRE_ROLE_ADMIN, ADMIN_PIN), CUBE_OK);
	expect("generate data key", c, cube_key_generate(c, &data), CUBE_OK);
	expect("generate wrap key", c, cube_key_generate(c, &wrap), CUBE_OK);
	cube_close(c);
	return failures ? 1 : 0;
}

/* ---- raw frames on the socket, for what the driver never sends ---- */

static int raw_connect(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/cube.sock", dir);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send bytes, read one reply header; its status, or -1. */
static long raw_exchange(int fd, const uint8_t *frame, size_t len)
{
	uint8_t hdr[WIRE_HEADER_LEN];
	struct wire_header h;
	size_t got = 0;

	if (send(fd, frame, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	while (got < sizeof(hdr)) {
		ssize_t n = recv(fd, hdr + got, sizeof(hdr) - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	if (wire_header_parse(hdr, &h) != WIRE_ST_OK)
		return -1;
	return h.status;
}

/* A frame with a bad magic: MALFORMED, then the device hangs up. */
static void malformed_frames(const char *dir)
{
	uint8_t junk[WIRE_HEADER_LEN + 8];
	struct wire_header h = { .op = WIRE_OP_KEY_INFO, .body_len = 3 };
	ssize_t n;
	long st;
	char c;
	int fd = raw_connect(dir);

	if (fd < 0) {
		fprintf(stderr, "robust_client: raw connect failed\n");
		failures++;
		return;
	}
	memset(junk, 0x5a, sizeof(junk));
	if (raw_exchange(fd, junk, sizeof(junk)) != WIRE_ST_MALFORMED) {
		fprintf(stderr, "robust_client: a junk frame did not get MALFORMED\n");
		failures++;
	}
	/* closed: end of file, or a reset for the bytes it never read */
	n = recv(fd, &c, 1, 0);
	if (n > 0 || (n < 0 && errno != ECONNRESET)) {
		fprintf(stderr, "robust_client: the device kept a desynchronised connection\n");
		failures++;
	}
	close(fd);
	/* A well-framed body too short for its op: MALFORMED, connection kept. */
	fd = raw_connect(dir);
	if (fd < 0)
		return;
	wire_header_pack(&h, junk);
	st = raw_exchange(fd, junk, WIRE_HEADER_LEN + 3);
	if (st != WIRE_ST_AUTH && st != WIRE_ST_MALFORMED) {
		fprintf(stderr, "robust_client: a short KEY_INFO body got status %ld\n", st);
		failures++;
	}
	close(fd);
	/* Half a header, then gone. */
	fd = raw_connect(dir);
	if (fd >= 0) {
		send(fd, junk, 10, MSG_NOSIGNAL);
		close(fd);
	}
}

/* Sealing and small crypto; the export/import pair only for an admin. */
static void crypto_round(struct cube *c, int admin)
{
	uint8_t file_id[WIRE_FILE_ID_LEN] = { 7 }, plain[3000], sealed[3000 + 2 * 28], back[3000];
	uint8_t bad[2], out[64], mac[32];
	struct cube_sector secs[2] = { { 0, 2000 }, { 1, 1000 } };
	size_t blob_len = 0;
	uint8_t blob[128];
	uint32_t id = 0;

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)i;
	expect("seal", c, cube_seal(c, DATA_KEY, WIRE_ALG_AES256_GCM, file_id, secs, 2, plain, sealed),
	       CUBE_OK);
	expect("open", c, cube_open_sectors(c, DATA_KEY, WIRE_ALG_AES256_GCM, file_id, secs, 2, sealed,
					    back, bad), CUBE_OK);
	if (memcmp(back, plain, sizeof(plain)) != 0) {
		fprintf(stderr, "robust_client: open did not give the plaintext back\n");
		failures++;
	}
	sealed[100] ^= 1;
	expect("open tampered", c, cube_open_sectors(c, DATA_KEY, WIRE_ALG_AES256_GCM, file_id, secs, 2,
						     sealed, back, bad), CUBE_EINTEGRITY);
	expect("siv", c, cube_siv_encrypt(c, DATA_KEY, file_id, 16, plain, 20, out), CUBE_OK);
	expect("siv back", c, cube_siv_decrypt(c, DATA_KEY, file_id, 16, out, 36, back), CUBE_OK);
	expect("hmac without MAC usage", c, cube_hmac(c, DATA_KEY, plain, 10, mac), CUBE_EUSAGE);
	expect("digest", c, cube_digest(c, plain, 100, mac), CUBE_OK);
	expect("random", c, cube_random(c, back, 5000 > sizeof(back) ? sizeof(back) : 5000), CUBE_OK);
	if (!admin)
		return;
	expect("export", c, cube_key_export(c, WRAP_KEY, DATA_KEY, blob, sizeof(blob), &blob_len), CUBE_OK);
	expect("import", c, cube_key_import(c, WRAP_KEY, blob, blob_len, &id), CUBE_OK);
	blob[3] ^= 1;
	expect("import damaged", c, cube_key_import(c, WRAP_KEY, blob, blob_len, &id), CUBE_EINTEGRITY);
}

static int cmd_session(const char *dir)
{
	struct cube_key k = { 500, WIRE_ALG_AES128_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0,
			      WIRE_TIME_NEVER };
	struct cube_key list[16], info;
	unsigned failed_selftest = 0;
	char report[256], err[512];
	struct cube *c, *u;
	uint32_t n = 0;

	if (cube_open(&c, dir, err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "robust_client: open: %s\n", err);
		return 1;
	}
	expect("wrong user PIN", c, cube_login(c, WIRE_ROLE_USER, "wrong-pin"), CUBE_EPIN);
	expect("wrong admin PIN", c, cube_login(c, WIRE_ROLE_ADMIN, "wrong-pin"), CUBE_EPIN);
	expect("keygen without login", c, cube_key_generate(c, &k), CUBE_EAUTH);
	expect("admin login", c, cube_login(c, WIRE_ROLE_ADMIN, ADMIN_PIN), CUBE_OK);
	expect("keygen", c, cube_key_generate(c, &k), CUBE_OK);
	expect("keygen again", c, cube_key_generate(c, &k), CUBE_EEXIST);
	expect("key info", c, cube_key_info(c, 500, &info), CUBE_OK);
	expect("key list", c, cube_key_list(c, 0, list, 16, &n), CUBE_OK);
	expect("set attrs", c, cube_key_set_attrs(c, 500, WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER), CUBE_OK);
	crypto_round(c, 1);
	expect("clock", c, cube_clock_set(c, (int64_t)time(NULL)), CUBE_OK);
	expect("selftest", c, cube_selftest(c, &failed_selftest, report, sizeof(report)), CUBE_OK);
	expect("set user pin", c, cube_set_pin(c, WIRE_ROLE_USER, USER_PIN), CUBE_OK);
	/* a user session beside it, then both dropped without logout */
	u = open_login(dir, WIRE_ROLE_USER, USER_PIN);
	if (u) {
		expect("user keygen", u, cube_key_generate(u, &k), CUBE_EPERM);
		crypto_round(u, 0);
		cube_close(u);
	} else {
		failures++;
	}
	expect("destroy", c, cube_key_destroy(c, 500), CUBE_OK);
	expect("destroy again", c, cube_key_destroy(c, 500), CUBE_ENOKEY);
	expect("logout", c, cube_logout(c), CUBE_OK);
	cube_close(c);
	malformed_frames(dir);
	/* one more login after all that: the device still serves */
	c = open_login(dir, WIRE_ROLE_USER, USER_PIN);
	if (!c)
		return 1;
	expect("key info after", c, cube_key_info(c, DATA_KEY, &info), CUBE_OK);
	cube_close(c);
	return failures ? 1 : 0;
}

/* ---- churn and check ---- */

enum { ST_NONE, ST_PRESENT, ST_GONE };

struct ledger {
	uint8_t *state;       /* per id: ST_* as acknowledged */
	uint8_t *pending;     /* per id: 'G' / 'D' sent, not acknowledged */
	uint32_t next_id;
};

static int ledger_read(struct ledger *l, const char *path)
{
	char op;
	unsigned long id;
	FILE *f = fopen(path, "r");

	l->state = calloc(MAX_IDS, 1);
	l->pending = calloc(MAX_IDS, 1);
	l->next_id = FIRST_CHURN_ID;
	if (!l->state || !l->pending)
		return -1;
	if (!f)
		return errno == ENOENT ? 0 : -1;
	while (fscanf(f, " %c %lu", &op, &id) == 2) {
		if (id >= MAX_IDS)
			continue;
		if (op == 'G' || op == 'D')
			l->pending[id] = (uint8_t)op;
		else
			l->pending[id] = 0;
		if (op == 'g')
			l->state[id] = ST_PRESENT;
		if (op == 'd')
			l->state[id] = ST_GONE;
		if (id + 1 > l->next_id)
			l->next_id = (uint32_t)id + 1;
	}
	fclose(f);
	return 0;
}

static void ledger_note(FILE *log, char op, uint32_t id)
{
	fprintf(log, "%c %u\n", op, id);
	fflush(log);
}

/* A wrong user PIN, then the right one, on a connection of its own. */
static int user_pin_round(const char *dir)
{
	char err[512];
	struct cube *u;
	int rc = cube_open(&u, dir, err, sizeof(err));

	if (rc != CUBE_OK)
		return CUBE_ETRANSPORT;
	rc = cube_login(u, WIRE_ROLE_USER, "wrong-pin");
	if (rc == CUBE_EPIN)
		rc = cube_login(u, WIRE_ROLE_USER, USER_PIN);
	cube_close(u);
	return rc;
}

static int cmd_churn(const char *dir, const char *path, unsigned seed)
{
	struct ledger l;
	uint8_t file_id[WIRE_FILE_ID_LEN] = { 1 }, plain[4096], sealed[4096 + 28];
	struct cube_sector sec = { 0, sizeof(plain) };
	struct cube *c;
	FILE *log;
	int rc = CUBE_OK;

	if (ledger_read(&l, path) != 0 || !(log = fopen(path, "a")))
		return 1;
	srand(seed);
	memset(plain, 0x33, sizeof(plain));
	/* The kill may land while this client is still starting the emulator
	 * or logging in (a loaded machine is slow to get there): a transport
	 * error then is a kill like any other, not a failure. */
	{
		char err[512];

		rc = cube_open(&c, dir, err, sizeof(err));
		if (rc == CUBE_OK) {
			rc = cube_login(c, WIRE_ROLE_ADMIN, ADMIN_PIN);
			if (rc != CUBE_OK)
				cube_close(c);
		}
		if (rc == CUBE_ETRANSPORT) {
			fclose(log);
			free(l.state);
			free(l.pending);
			return 0;
		}
		if (rc != CUBE_OK) {
			fprintf(stderr, "robust_client: churn start: %s\n", cube_strerror(rc));
			fclose(log);
			return 1;
		}
	}
	for (unsigned step = 0; rc != CUBE_ETRANSPORT && step < 100000; step++) {
		int what = rand() % 4;

		if (what <= 1) {
			struct cube_key k = { l.next_id, WIRE_ALG_AES256_GCM,
					      WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER };

			ledger_note(log, 'G', k.id);
			rc = cube_key_generate(c, &k);
			if (rc == CUBE_OK) {
				ledger_note(log, 'g', k.id);
				l.state[k.id] = ST_PRESENT;
			}
			l.next_id++;
		} else if (what == 2) {
			uint32_t id = FIRST_CHURN_ID + (uint32_t)rand() % (l.next_id - FIRST_CHURN_ID + 1);

			if (id >= l.next_id || l.state[id] != ST_PRESENT)
				continue;
			ledger_note(log, 'D', id);
			rc = cube_key_destroy(c, id);
			if (rc == CUBE_OK) {
				ledger_note(log, 'd', id);
				l.state[id] = ST_GONE;
			}
		} else if (step % 50 == 49) {
			rc = user_pin_round(dir);
		} else {
			rc = cube_seal(c, DATA_KEY, WIRE_ALG_AES256_GCM, file_id, &sec, 1, plain, sealed);
		}
		if (rc != CUBE_OK && rc != CUBE_ETRANSPORT) {
			fail("churn", c, rc);
			break;
		}
	}
	cube_close(c);
	fclose(log);
	free(l.state);
	free(l.pending);
	return failures ? 1 : 0;
}

/*
 * PIN counters after a kill: a LOGIN persists its try before checking the
 * PIN, so a kill inside one may cost a try (admin 9 of 10); churn's
 * wrong-then-right user round may leave the user at 3 or 4 of 5.  Never
 * lower, and a successful login puts both back to full.
 */
static int check_counters(const char *dir, int after_login)
{
	struct cube_info info;
	char err[512];
	struct cube *c;
	int rc = cube_open(&c, dir, err, sizeof(err));

	if (rc != CUBE_OK) {
		fprintf(stderr, "robust_client: reopen after the crash: %s\n", err);
		return -1;
	}
	if (after_login) {
		rc = cube_login(c, WIRE_ROLE_USER, USER_PIN);
		expect("user login", c, rc, CUBE_OK);
	}
	expect("info", c, cube_info(c, &info), CUBE_OK);
	if (info.state != WIRE_DEV_READY ||
	    info.user_tries_left < (after_login ? 5 : 3) || info.user_tries_left > 5 ||
	    info.admin_tries_left < (after_login ? 10 : 9) || info.admin_tries_left > 10) {
		fprintf(stderr, "robust_client: %s: state %u, tries left user %u admin %u\n",
			after_login ? "after logging in again" : "after the crash", info.state,
			info.user_tries_left, info.admin_tries_left);
		failures++;
	}
	cube_close(c);
	return 0;
}

static int cmd_check(const char *dir, const char *path)
{
	struct ledger l;
	struct cube_key *keys = malloc(WIRE_LIST_MAX * sizeof(*keys));
	uint8_t *found = calloc(MAX_IDS, 1);
	uint32_t n, from = 0, total = 0;
	struct cube *c;
	FILE *log;

	if (!keys || !found || ledger_read(&l, path) != 0 || check_counters(dir, 0) != 0)
		return 1;
	c = open_login(dir, WIRE_ROLE_ADMIN, ADMIN_PIN);
	if (!c)
		return 1;
	do {
		int rc = cube_key_list(c, from, keys, WIRE_LIST_MAX, &n);

		if (rc != CUBE_OK) {
			fail("key list", c, rc);
			break;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (keys[i].id < MAX_IDS)
				found[keys[i].id] = 1;
			from = keys[i].id + 1;
		}
		total += n;
	} while (n == WIRE_LIST_MAX);
	if (!found[DATA_KEY] || !found[WRAP_KEY]) {
		fprintf(stderr, "robust_client: the set-up keys are gone\n");
		failures++;
	}
	log = fopen(path, "a");
	for (uint32_t id = FIRST_CHURN_ID; log && id < MAX_IDS; id++) {
		if (l.pending[id]) {
			/* in flight at the kill: either outcome, now settled */
			ledger_note(log, found[id] ? 'g' : 'd', id);
			continue;
		}
		if (l.state[id] == ST_PRESENT && !found[id]) {
			fprintf(stderr, "robust_client: acknowledged key %u is missing\n", id);
			failures++;
		}
		if (l.state[id] != ST_PRESENT && found[id]) {
			fprintf(stderr, "robust_client: key %u is there but was %s\n", id,
				l.state[id] == ST_GONE ? "destroyed" : "never generated");
			failures++;
		}
	}
	if (log)
		fclose(log);
	crypto_round(c, 1);
	cube_close(c);
	if (check_counters(dir, 1) != 0)
		failures++;
	printf("%u keys, ledger consistent\n", total);
	free(keys);
	free(found);
	free(l.state);
	free(l.pending);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "init"))
		return cmd_init(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "session"))
		return cmd_session(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "churn"))
		return cmd_churn(argv[2], argv[3], (unsigned)strtoul(argv[4], NULL, 10));
	if (argc == 4 && !strcmp(argv[1], "check"))
		return cmd_check(argv[2], argv[3]);
	fprintf(stderr, "usage: robust_client init|session DIR | churn DIR LOG SEED | check DIR LOG\n");
	return 2;
}
