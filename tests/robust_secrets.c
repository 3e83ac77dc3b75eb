/*
 * robust_secrets.c - helper of tests/robust_secrets.sh (the secrets audit),
 * compiled by that script, not by the Makefile:
 *
 *   robust_secrets reveal DIR ADMIN_PIN_FILE
 *       Logs in as admin and asks a TEST BUILD of the emulator (op 200,
 *       firmware/dev_testreveal.c) for the value of every key in the cube
 *       and for the key-store master key; prints one line per secret:
 *       "key ID ALG HEX" and "master 0 0 HEX".
 *   robust_secrets probe DIR ADMIN_PIN_FILE
 *       Sends op 200 in an admin session and prints the reply status.
 *       Exit 0 iff the device answers UNKNOWN_OP (a normal build), 2 if it
 *       answers OK (a test build), 1 otherwise.
 *   robust_secrets sdb DIR USER_PIN_FILE KEY_ID DB_PATH MARKER
 *       A secure database (sefile/sdb.h) as the KMS keeps its own: creates
 *       DB_PATH under KEY_ID, commits 200 rows whose text holds MARKER
 *       (rollback journal, then WAL mode and more rows), then stops itself
 *       with SIGSTOP with the database still open, so the test can take
 *       its core; after SIGCONT it reads the rows back and exits 0.
 *   robust_secrets scan NEEDLES PATH...
 *       NEEDLES has lines "LABEL MODE HEX": MODE "key" searches the bytes
 *       raw, as lower- and upper-case hex and as base64 (standard and
 *       url-safe, unpadded); MODE "raw" searches the bytes only.  Every
 *       regular file under each PATH (directories walked, symlinks not
 *       followed) is searched, and so are every symlink target and every
 *       extended attribute value.  Prints "HIT LABEL FORM WHERE OFFSET"
 *       per hit and a summary line on stderr.  Exit 0 if nothing was
 *       found, 1 if something was, 2 on an error (a file it cannot read).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <signal.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "cube/internal.h"
#include "sefile/sdb.h"
#include "wire/buf.h"
#include "wire/frame.h"

#define OP_TEST_REVEAL 200
#define REVEAL_KEY     0
#define REVEAL_MASTER  1
#define SECRET_MAX     64
#define MAX_NEEDLES    4096
#define FORM_MAX       (SECRET_MAX * 2 + 8)

/* ---- talking to the cube ---- */

static int read_pin(const char *path, char *pin, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		fprintf(stderr, "robust_secrets: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!fgets(pin, (int)cap, f)) {
		fclose(f);
		fprintf(stderr, "robust_secrets: %s: empty\n", path);
		return -1;
	}
	fclose(f);
	n = strcspn(pin, "\r\n");
	pin[n] = '\0';
	return 0;
}

static struct cube *admin_session(const char *dir, const char *pin_file)
{
	char pin[128], err[256] = "";
	struct cube *c = NULL;
	int rc;

	if (read_pin(pin_file, pin, sizeof(pin)) < 0)
		return NULL;
	rc = cube_open(&c, dir, err, sizeof(err));
	if (rc != CUBE_OK) {
		fprintf(stderr, "robust_secrets: open %s: %s\n", dir, err);
		OPENSSL_cleanse(pin, sizeof(pin));
		return NULL;
	}
	rc = cube_login(c, WIRE_ROLE_ADMIN, pin);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rc != CUBE_OK) {
		fprintf(stderr, "robust_secrets: admin login: %s\n", cube_errmsg(c));
		cube_close(c);
		return NULL;
	}
	return c;
}

/* One op 200 exchange.  Returns CUBE_OK with *alg and value[*len] filled,
 * or the cube error (r->h.status tells which device status). */
static int reveal_one(struct cube *c, uint8_t what, uint32_t id, uint8_t *alg,
		      uint8_t value[SECRET_MAX], uint32_t *len, uint32_t *status)
{
	uint8_t body[5];
	struct wbuf w, rd;
	struct cube_reply r;
	const uint8_t *v = NULL;
	int rc;

	wbuf_writer(&w, body, sizeof(body));
	wbuf_put_u8(&w, what);
	wbuf_put_u32(&w, id);
	rc = cube_call(c, OP_TEST_REVEAL, 0, body, w.pos, -1, &r);
	*status = r.h.status;
	if (rc != CUBE_OK)
		return rc;
	wbuf_reader(&rd, r.body, r.len);
	wbuf_get_u8(&rd, alg);
	wbuf_get_lenbytes(&rd, &v, len, SECRET_MAX);
	if (!wbuf_done(&rd) || *len == 0) {
		fprintf(stderr, "robust_secrets: malformed reveal reply\n");
		return CUBE_EPROTO;
	}
	memcpy(value, v, *len);
	return CUBE_OK;
}

static void print_secret(const char *kind, uint32_t id, uint8_t alg, const uint8_t *v, uint32_t len)
{
	uint32_t i;

	printf("%s %u %u ", kind, (unsigned)id, (unsigned)alg);
	for (i = 0; i < len; i++)
		printf("%02x", v[i]);
	printf("\n");
}

static int cmd_reveal(const char *dir, const char *pin_file)
{
	struct cube_key keys[WIRE_LIST_MAX];
	uint8_t value[SECRET_MAX], alg = 0;
	uint32_t n = 0, i, len = 0, st = 0, from = 0, total = 0;
	struct cube *c = admin_session(dir, pin_file);
	int rc = 1;

	if (!c)
		return 1;
	if (reveal_one(c, REVEAL_MASTER, 0, &alg, value, &len, &st) != CUBE_OK) {
		fprintf(stderr, "robust_secrets: reveal master: %s\n", cube_errmsg(c));
		goto out;
	}
	print_secret("master", 0, 0, value, len);
	for (;;) {
		if (cube_key_list(c, from, keys, WIRE_LIST_MAX, &n) != CUBE_OK) {
			fprintf(stderr, "robust_secrets: key list: %s\n", cube_errmsg(c));
			goto out;
		}
		for (i = 0; i < n; i++) {
			if (reveal_one(c, REVEAL_KEY, keys[i].id, &alg, value, &len, &st) != CUBE_OK) {
				fprintf(stderr, "robust_secrets: reveal key %u: %s\n",
					(unsigned)keys[i].id, cube_errmsg(c));
				goto out;
			}
			print_secret("key", keys[i].id, alg, value, len);
			total++;
		}
		if (n < WIRE_LIST_MAX || keys[n - 1].id == UINT32_MAX)
			break;
		from = keys[n - 1].id + 1;
	}
	fprintf(stderr, "robust_secrets: revealed the master key and %u key(s)\n", (unsigned)total);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	OPENSSL_cleanse(value, sizeof(value));
	cube_close(c);
	return rc;
}

static int cmd_probe(const char *dir, const char *pin_file)
{
	uint8_t value[SECRET_MAX], alg = 0;
	uint32_t len = 0, st = 0;
	struct cube *c = admin_session(dir, pin_file);
	int rc;

	if (!c)
		return 1;
	rc = reveal_one(c, REVEAL_MASTER, 0, &alg, value, &len, &st);
	OPENSSL_cleanse(value, sizeof(value));
	printf("%s\n", rc == CUBE_OK ? "OK" : wire_status_name(st));
	cube_close(c);
	if (rc == CUBE_OK)
		return 2;
	return st == WIRE_ST_UNKNOWN_OP ? 0 : 1;
}

/* ---- a secure database holding the marker ---- */

static int sql_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fprintf(stderr, "robust_secrets: %s: %s\n", sql, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : -1;
}

static int insert_rows(sqlite3 *db, const char *marker, int first, int n)
{
	sqlite3_stmt *st = NULL;
	char text[256];
	int i, rc = 0;

	if (sql_exec(db, "BEGIN") < 0 ||
	    sqlite3_prepare_v2(db, "INSERT INTO secrets(id, note) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	for (i = first; rc == 0 && i < first + n; i++) {
		snprintf(text, sizeof(text), "row %d holds %s in the secure database", i, marker);
		if (sqlite3_bind_int(st, 1, i) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE || sqlite3_reset(st) != SQLITE_OK)
			rc = -1;
	}
	sqlite3_finalize(st);
	if (rc == 0)
		rc = sql_exec(db, "COMMIT");
	return rc;
}

static int count_marked(sqlite3 *db, const char *marker)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM secrets WHERE instr(note, ?) > 0", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_bind_text(st, 1, marker, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int cmd_sdb(const char *dir, const char *pin_file, const char *key, const char *path,
		   const char *marker)
{
	char pin[128], err[256] = "";
	struct sefile_cube *pool = NULL;
	struct sdb_vfs *vfs = NULL;
	sqlite3 *db = NULL;
	int rc = 1, n;

	if (read_pin(pin_file, pin, sizeof(pin)) < 0)
		return 1;
	n = sefile_cube_open(&pool, dir, WIRE_ROLE_USER, pin, 1, err, sizeof(err));
	OPENSSL_cleanse(pin, sizeof(pin));
	if (n != SEFILE_OK) {
		fprintf(stderr, "robust_secrets: cube %s: %s\n", dir, err);
		return 1;
	}
	if (sdb_vfs_register(&vfs, "robust-sdb", pool, (uint32_t)strtoul(key, NULL, 0)) != SEFILE_OK)
		goto out;
	if (sdb_open(vfs, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db) != SQLITE_OK) {
		fprintf(stderr, "robust_secrets: sdb_open %s failed\n", path);
		goto out;
	}
	if (sql_exec(db, "CREATE TABLE secrets(id INTEGER PRIMARY KEY, note TEXT)") < 0 ||
	    insert_rows(db, marker, 0, 100) < 0 || sql_exec(db, "PRAGMA journal_mode=WAL") < 0 ||
	    insert_rows(db, marker, 100, 100) < 0)
		goto out;
	/* Open, committed, a WAL beside it: the state a KMS process is in. */
	if (raise(SIGSTOP) != 0)
		goto out;
	n = count_marked(db, marker);
	if (n != 200) {
		fprintf(stderr, "robust_secrets: %d marked rows read back, not 200\n", n);
		goto out;
	}
	rc = 0;
out:
	if (db && sqlite3_close(db) != SQLITE_OK)
		rc = 1;
	if (vfs)
		sdb_vfs_unregister(vfs);
	sefile_cube_close(pool);
	return rc;
}

/* ---- scanning ---- */

/* One searched byte string: a secret in one of its encodings. */
struct form {
	char label[64];
	const char *how;   /* "raw", "hex", "HEX", "b64", "b64url" */
	uint8_t bytes[FORM_MAX];
	size_t len;
};

/* Forms are at least FORM_MIN bytes; a bitmap over a hash of their first
 * 8 bytes lets one pass over the data look at every offset once. */
#define FORM_MIN    16
#define PREFIX_BITS 20

struct scan {
	struct form *forms;
	size_t n_forms;
	uint8_t *prefix_map;   /* 1 << PREFIX_BITS bits */
	unsigned long files, hits, errors;
	unsigned long long bytes;
};

static uint32_t prefix_hash(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return (uint32_t)((v * 0x9E3779B97F4A7C15ull) >> (64 - PREFIX_BITS));
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(s), i;
	unsigned v;

	if (n == 0 || n % 2 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

static size_t hex_form(const uint8_t *in, size_t n, const char *digits, uint8_t *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = (uint8_t)digits[in[i] >> 4];
		out[2 * i + 1] = (uint8_t)digits[in[i] & 15];
	}
	return 2 * n;
}

/* Unpadded base64 with the given alphabet. */
static size_t b64_form(const uint8_t *in, size_t n, const char *abc, uint8_t *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = (uint8_t)abc[v >> 18 & 63];
		out[o++] = (uint8_t)abc[v >> 12 & 63];
		out[o++] = (uint8_t)abc[v >> 6 & 63];
		out[o++] = (uint8_t)abc[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = (uint8_t)abc[v >> 18 & 63];
		out[o++] = (uint8_t)abc[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = (uint8_t)abc[v >> 18 & 63];
		out[o++] = (uint8_t)abc[v >> 12 & 63];
		out[o++] = (uint8_t)abc[v >> 6 & 63];
	}
	return o;
}

static int add_form(struct scan *s, const char *label, const char *how, const uint8_t *b, size_t len)
{
	struct form *f;
	uint32_t h;

	if (s->n_forms == MAX_NEEDLES)
		return -1;
	if (len < FORM_MIN) /* a short needle would match by chance */
		return -1;
	f = &s->forms[s->n_forms++];
	snprintf(f->label, sizeof(f->label), "%s", label);
	f->how = how;
	memcpy(f->bytes, b, len);
	f->len = len;
	h = prefix_hash(b);
	s->prefix_map[h >> 3] |= (uint8_t)(1u << (h & 7));
	return 0;
}

static int add_needle(struct scan *s, const char *label, const char *mode, const uint8_t *v, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t buf[FORM_MAX];
	int rc;

	if (add_form(s, label, "raw", v, n) < 0)
		return -1;
	if (strcmp(mode, "raw") == 0)
		return 0;
	if (strcmp(mode, "key") != 0)
		return -1;
	rc = add_form(s, label, "hex", buf, hex_form(v, n, "0123456789abcdef", buf));
	if (rc == 0)
		rc = add_form(s, label, "HEX", buf, hex_form(v, n, "0123456789ABCDEF", buf));
	if (rc == 0)
		rc = add_form(s, label, "b64", buf, b64_form(v, n, b64, buf));
	if (rc == 0)
		rc = add_form(s, label, "b64url", buf, b64_form(v, n, b64url, buf));
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

static int load_needles(struct scan *s, const char *path)
{
	char line[512], label[64], mode[16], hex[2 * SECRET_MAX + 2];
	uint8_t v[SECRET_MAX];
	size_t n = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (!f) {
		fprintf(stderr, "robust_secrets: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%63s %15s %129s", label, mode, hex) != 3 ||
		    unhex(hex, v, sizeof(v), &n) < 0 || add_needle(s, label, mode, v, n) < 0) {
			fprintf(stderr, "robust_secrets: %s: bad needle line: %s", path, line);
			rc = -1;
		}
	}
	fclose(f);
	OPENSSL_cleanse(v, sizeof(v));
	OPENSSL_cleanse(hex, sizeof(hex));
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

static void scan_bytes(struct scan *s, const char *where, const uint8_t *p, size_t len)
{
	size_t off, i;
	uint32_t h;

	s->bytes += len;
	if (len < FORM_MIN)
		return;
	for (off = 0; off + FORM_MIN <= len; off++) {
		h = prefix_hash(p + off);
		if (!(s->prefix_map[h >> 3] & (1u << (h & 7))))
			continue;
		for (i = 0; i < s->n_forms; i++) {
			const struct form *f = &s->forms[i];

			if (f->len <= len - off && memcmp(p + off, f->bytes, f->len) == 0) {
				printf("HIT %s %s %s %zu\n", f->label, f->how, where, off);
				s->hits++;
			}
		}
	}
}

static void scan_regular(struct scan *s, const char *path, const struct stat *st)
{
	void *map;
	int fd;

	s->files++;
	if (st->st_size == 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "robust_secrets: %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		fprintf(stderr, "robust_secrets: mmap %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	scan_bytes(s, path, map, (size_t)st->st_size);
	munmap(map, (size_t)st->st_size);
}

/* Every extended attribute value of path (the mount keeps encrypted user
 * xattrs on backing objects). */
static void scan_xattrs(struct scan *s, const char *path)
{
	char names[8192], where[PATH_MAX + 8192 + 16];
	uint8_t value[65536];
	ssize_t n, vlen;
	char *name;

	n = llistxattr(path, names, sizeof(names));
	if (n <= 0)
		return; /* none, or the file system keeps none */
	for (name = names; name < names + n; name += strlen(name) + 1) {
		vlen = lgetxattr(path, name, value, sizeof(value));
		if (vlen < 0) {
			fprintf(stderr, "robust_secrets: getxattr %s %s: %s\n", path, name, strerror(errno));
			s->errors++;
			continue;
		}
		snprintf(where, sizeof(where), "%s[xattr:%s]", path, name);
		scan_bytes(s, where, value, (size_t)vlen);
	}
}

static void scan_path(struct scan *s, const char *path);

static void scan_dir(struct scan *s, const char *path)
{
	char child[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(path);

	if (!d) {
		fprintf(stderr, "robust_secrets: opendir %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= (int)sizeof(child)) {
			s->errors++;
			continue;
		}
		scan_path(s, child);
	}
	closedir(d);
}

static void scan_path(struct scan *s, const char *path)
{
	char target[PATH_MAX], where[PATH_MAX + 16];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return; /* a temporary file that went away while we walked */
		fprintf(stderr, "robust_secrets: %s: %s\n", path, strerror(errno));
		s->errors++;
		return;
	}
	scan_xattrs(s, path);
	if (S_ISDIR(st.st_mode)) {
		scan_dir(s, path);
	} else if (S_ISREG(st.st_mode)) {
		scan_regular(s, path, &st);
	} else if (S_ISLNK(st.st_mode)) {
		n = readlink(path, target, sizeof(target));
		if (n > 0) {
			snprintf(where, sizeof(where), "%s[link]", path);
			scan_bytes(s, where, (const uint8_t *)target, (size_t)n);
		}
	}
	/* sockets, FIFOs: nothing stored */
}

static int cmd_scan(const char *needles, int n_paths, char **paths)
{
	struct scan s;
	int i;

	memset(&s, 0, sizeof(s));
	s.forms = calloc(MAX_NEEDLES, sizeof(*s.forms));
	s.prefix_map = calloc((1u << PREFIX_BITS) / 8, 1);
	if (!s.forms || !s.prefix_map || load_needles(&s, needles) < 0) {
		free(s.forms);
		free(s.prefix_map);
		return 2;
	}
	for (i = 0; i < n_paths; i++)
		scan_path(&s, paths[i]);
	fprintf(stderr, "robust_secrets: scanned %lu file(s), %llu byte(s) for %zu form(s): %lu hit(s), %lu error(s)\n",
		s.files, s.bytes, s.n_forms, s.hits, s.errors);
	OPENSSL_cleanse(s.forms, MAX_NEEDLES * sizeof(*s.forms));
	free(s.forms);
	free(s.prefix_map);
	if (fflush(stdout) != 0 || s.errors)
		return 2;
	return s.hits ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "reveal") == 0)
		return cmd_reveal(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "probe") == 0)
		return cmd_probe(argv[2], argv[3]);
	if (argc == 7 && strcmp(argv[1], "sdb") == 0)
		return cmd_sdb(argv[2], argv[3], argv[4], argv[5], argv[6]);
	if (argc >= 4 && strcmp(argv[1], "scan") == 0)
		return cmd_scan(argv[2], argc - 3, argv + 3);
	fprintf(stderr, "usage: robust_secrets reveal|probe DIR ADMIN_PIN_FILE\n"
			"       robust_secrets sdb DIR USER_PIN_FILE KEY_ID DB_PATH MARKER\n"
			"       robust_secrets scan NEEDLES PATH...\n");
	return 2;
}
