/*
 * sefile.c - the `sefile` tool: make, read, inspect, check and re-key
 * SEfile files (sefile/sefile.h) with the keys of a cube.
 *
 *   sefile encrypt --key ID [--alg A] SRC DST   a plain file into a new SEfile file
 *   sefile decrypt SRC DST                      a SEfile file back to plain
 *   sefile cat PATH...                          plaintext to standard output
 *   sefile ls PATH...                           header fields, no cube needed
 *   sefile verify PATH...                       every sector of every file in the trees
 *   sefile rekey --key ID [--alg A] PATH...     re-encrypt under another key
 *
 * Exit codes (docs/man/sefile.1): 0 ok, 1 usage, 2 damaged, 3 key error,
 * 4 cube or login error, 5 I/O error.  The PIN never comes from the
 * command line: --pin-file, --pin-fd, SEFILE_PIN_FD, else the terminal.
 *
 * Sections: options and helpers; output; the commands; table and main.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sefile/sefile.h"
#include "wire/frame.h"
#include "tools/cli.h"

#define COPY_CHUNK (1u << 20)
#define MAX_DEPTH 64

/* ---- options and helpers ---- */

struct opts {
	const char *device;
	const char *pin_file;
	int pin_fd;
	int admin;
	int json;
	int force;
	uint32_t key_id;
	int have_key;
	uint8_t alg;
	uint32_t sector_size;
	int argc;
	char **argv;
};

/* What a run found, for the exit code: the worst class wins. */
struct tally {
	unsigned files, damaged, key_errors, io_errors, other;
	int first; /* JSON: no comma before the first element */
};

static int parse_alg(const char *s, uint8_t *alg)
{
	if (!strcmp(s, "gcm") || !strcmp(s, "aes256-gcm"))
		*alg = WIRE_ALG_AES256_GCM;
	else if (!strcmp(s, "ctr-hmac") || !strcmp(s, "aes256-ctr-hmac"))
		*alg = WIRE_ALG_AES256_CTR_HMAC;
	else if (!strcmp(s, "aes128-gcm"))
		*alg = WIRE_ALG_AES128_GCM;
	else
		return -1;
	return 0;
}

/* Exit code for a SEfile error. */
static int exit_for(int err)
{
	switch (err) {
	case SEFILE_OK: return CLI_OK;
	case SEFILE_EINTEGRITY: case SEFILE_EFORMAT: return CLI_DAMAGED;
	case SEFILE_ENOKEY: case SEFILE_EKEYEXPIRED: return CLI_KEY;
	case SEFILE_ECUBE: return CLI_CUBE;
	case SEFILE_EINVAL: return CLI_USAGE;
	default: return CLI_IO;
	}
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "sefile: %s: %s\n", what, sefile_errmsg()[0] ? sefile_errmsg() :
		sefile_strerror(err));
	return exit_for(err);
}

static int fail_errno(const char *what, const char *path)
{
	fprintf(stderr, "sefile: %s %s: %s\n", what, path, strerror(errno));
	return CLI_IO;
}

static void count(struct tally *t, int err)
{
	switch (exit_for(err)) {
	case CLI_OK: break;
	case CLI_DAMAGED: t->damaged++; break;
	case CLI_KEY: t->key_errors++; break;
	case CLI_IO: t->io_errors++; break;
	default: t->other++; break;
	}
}

static int tally_exit(const struct tally *t)
{
	if (t->damaged)
		return CLI_DAMAGED;
	if (t->key_errors)
		return CLI_KEY;
	if (t->other)
		return CLI_CUBE;
	if (t->io_errors)
		return CLI_IO;
	return CLI_OK;
}

static const char *default_device(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("SEFILE_DEVICE"), *home = getenv("HOME");

	if (env && *env)
		return env;
	if (!home || snprintf(path, sizeof(path), "%s/.cube", home) >= (int)sizeof(path))
		return NULL;
	return path;
}

/* Log in to the cube with the PIN from wherever the options say. */
static int open_pool(const struct opts *o, struct sefile_cube **pool)
{
	char pin[WIRE_PIN_MAX + 2], err[256] = "";
	const char *env = getenv("SEFILE_PIN_FD");
	int fd = o->pin_fd, rc;
	uint32_t v;

	*pool = NULL;
	if (!o->device) {
		fprintf(stderr, "sefile: no cube: use --device DIR\n");
		return CLI_USAGE;
	}
	if (fd < 0 && !o->pin_file && env && cli_parse_u32(env, 0, 65535, &v) == 0)
		fd = (int)v;
	if (cli_read_pin(o->pin_file, fd, o->admin ? "Admin PIN: " : "User PIN: ",
			 pin, sizeof(pin)) < 0)
		return CLI_USAGE;
	rc = sefile_cube_open(pool, o->device, o->admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER, pin, 1,
			      err, sizeof(err));
	cli_wipe(pin, sizeof(pin));
	if (rc != SEFILE_OK) {
		fprintf(stderr, "sefile: cube %s: %s\n", o->device, err[0] ? err : sefile_strerror(rc));
		return CLI_CUBE;
	}
	return CLI_OK;
}

/* Without --alg, a file takes the algorithm of its key. */
static int resolve_alg(struct sefile_cube *pool, struct opts *o)
{
	struct cube_key k;
	struct cube *c;
	int rc;

	if (o->alg)
		return CLI_OK;
	c = sefile_cube_get(pool);
	rc = cube_key_info(c, o->key_id, &k);
	if (rc != CUBE_OK)
		fprintf(stderr, "sefile: key %" PRIu32 ": %s\n", o->key_id, cube_errmsg(c));
	sefile_cube_put(pool, c);
	switch (rc) {
	case CUBE_OK: break;
	case CUBE_ENOKEY: case CUBE_EUSAGE: case CUBE_EEXPIRED: return CLI_KEY;
	default: return CLI_CUBE;
	}
	if (k.alg != WIRE_ALG_AES256_GCM && k.alg != WIRE_ALG_AES256_CTR_HMAC &&
	    k.alg != WIRE_ALG_AES128_GCM) {
		fprintf(stderr, "sefile: key %" PRIu32 " is not a data key\n", o->key_id);
		return CLI_KEY;
	}
	o->alg = k.alg;
	return CLI_OK;
}

static int need_args(const struct opts *o, int min, int max, const char *usage_line)
{
	if (o->argc - 1 < min || (max >= 0 && o->argc - 1 > max)) {
		fprintf(stderr, "usage: sefile %s\n", usage_line);
		return -1;
	}
	return 0;
}

/* A temporary file next to dst, mode 0600, to be renamed over dst. */
static int make_temp(const char *dst, char *tmp, size_t cap)
{
	int fd;

	if (snprintf(tmp, cap, "%s.sefile-tmp.XXXXXX", dst) >= (int)cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd >= 0)
		fchmod(fd, 0600);
	return fd;
}

/* fsync the directory holding path, so a rename into it is durable. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- the commands ---- */

/* Plain src into the SEfile file in out_fd (empty, read-write). */
static int encrypt_into(struct sefile_cube *pool, const struct opts *o, int in_fd, int out_fd,
			uint64_t total)
{
	struct sefile_params p = { .key_id = o->key_id, .alg = o->alg, .sector_size = o->sector_size };
	struct sefile *f = NULL;
	uint8_t *buf = malloc(COPY_CHUNK);
	uint64_t off = 0;
	ssize_t n, w;
	int err, rc = CLI_OK;

	if (!buf)
		return CLI_IO;
	err = sefile_create(&f, pool, out_fd, &p);
	if (err != SEFILE_OK) {
		free(buf);
		return fail("create", err);
	}
	for (;;) {
		n = read(in_fd, buf, COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail_errno("read", "input");
			break;
		}
		if (n == 0)
			break;
		w = sefile_pwrite(f, buf, (size_t)n, off);
		if (w != n) {
			rc = fail("write", w < 0 ? (int)w : SEFILE_EIO);
			break;
		}
		off += (uint64_t)n;
		cli_progress("encrypt", off, total > off ? total : off);
	}
	if (rc == CLI_OK && (err = sefile_fsync(f, 0)) != SEFILE_OK)
		rc = fail("fsync", err);
	err = sefile_close(f);
	if (rc == CLI_OK && err != SEFILE_OK)
		rc = fail("close", err);
	cli_wipe(buf, COPY_CHUNK);
	free(buf);
	return rc;
}

static int cmd_encrypt(struct opts *o)
{
	const char *src, *dst;
	char tmp[PATH_MAX];
	struct sefile_cube *pool = NULL;
	struct stat st;
	int in_fd = -1, out_fd = -1, rc;

	if (need_args(o, 2, 2, "encrypt --key ID [--alg gcm|ctr-hmac] SRC DST") < 0)
		return CLI_USAGE;
	if (!o->have_key) {
		fprintf(stderr, "sefile: encrypt needs --key ID\n");
		return CLI_USAGE;
	}
	src = o->argv[1];
	dst = o->argv[2];
	if (!o->force && lstat(dst, &st) == 0) {
		fprintf(stderr, "sefile: %s exists (--force to replace it)\n", dst);
		return CLI_IO;
	}
	in_fd = strcmp(src, "-") ? open(src, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (in_fd < 0)
		return fail_errno("open", src);
	if (fstat(in_fd, &st) != 0)
		st.st_size = 0;
	rc = open_pool(o, &pool);
	if (rc == CLI_OK)
		rc = resolve_alg(pool, o);
	if (rc == CLI_OK) {
		out_fd = make_temp(dst, tmp, sizeof(tmp));
		if (out_fd < 0)
			rc = fail_errno("create temporary for", dst);
	}
	if (rc == CLI_OK)
		rc = encrypt_into(pool, o, in_fd, out_fd, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
	if (out_fd >= 0) {
		if (rc == CLI_OK && rename(tmp, dst) != 0)
			rc = fail_errno("rename to", dst);
		if (rc == CLI_OK && sync_parent(dst) != 0)
			rc = fail_errno("fsync directory of", dst);
		if (rc != CLI_OK)
			unlink(tmp);
		close(out_fd);
	}
	if (in_fd != STDIN_FILENO)
		close(in_fd);
	sefile_cube_close(pool);
	return rc;
}

/* Every byte of the SEfile file in in_fd to out_fd; only authenticated
 * plaintext is ever written. */
static int decrypt_to(struct sefile_cube *pool, const char *src, int in_fd, int out_fd,
		      int progress)
{
	struct sefile *f = NULL;
	uint8_t *buf = malloc(COPY_CHUNK);
	uint64_t off = 0, size = 0;
	ssize_t n;
	int err, rc = CLI_OK;

	if (!buf)
		return CLI_IO;
	err = sefile_open(&f, pool, in_fd);
	if (err == SEFILE_OK)
		err = sefile_size(f, &size);
	if (err != SEFILE_OK) {
		rc = fail(src, err);
		goto out;
	}
	while (off < size) {
		n = sefile_pread(f, buf, COPY_CHUNK, off);
		if (n < 0) {
			rc = fail(src, (int)n);
			break;
		}
		if (n == 0)
			break;
		if (write_all(out_fd, buf, (size_t)n) != 0) {
			rc = fail_errno("write", "output");
			break;
		}
		off += (uint64_t)n;
		if (progress)
			cli_progress("decrypt", off, size);
	}
out:
	if (f && (err = sefile_close(f)) != SEFILE_OK && rc == CLI_OK)
		rc = fail(src, err);
	cli_wipe(buf, COPY_CHUNK);
	free(buf);
	return rc;
}

static int cmd_decrypt(struct opts *o)
{
	const char *src, *dst;
	char tmp[PATH_MAX];
	struct sefile_cube *pool = NULL;
	struct stat st;
	int in_fd, out_fd = -1, to_stdout, rc;

	if (need_args(o, 2, 2, "decrypt SRC DST") < 0)
		return CLI_USAGE;
	src = o->argv[1];
	dst = o->argv[2];
	to_stdout = !strcmp(dst, "-");
	if (!to_stdout && !o->force && lstat(dst, &st) == 0) {
		fprintf(stderr, "sefile: %s exists (--force to replace it)\n", dst);
		return CLI_IO;
	}
	in_fd = open(src, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0)
		return fail_errno("open", src);
	rc = open_pool(o, &pool);
	if (rc == CLI_OK) {
		out_fd = to_stdout ? STDOUT_FILENO : make_temp(dst, tmp, sizeof(tmp));
		if (out_fd < 0)
			rc = fail_errno("create temporary for", dst);
	}
	if (rc == CLI_OK)
		rc = decrypt_to(pool, src, in_fd, out_fd, !to_stdout);
	if (out_fd >= 0 && !to_stdout) {
		if (rc == CLI_OK && fsync(out_fd) != 0)
			rc = fail_errno("fsync", dst);
		if (rc == CLI_OK && rename(tmp, dst) != 0)
			rc = fail_errno("rename to", dst);
		if (rc != CLI_OK)
			unlink(tmp); /* never leave a part of a damaged file */
		close(out_fd);
	}
	close(in_fd);
	sefile_cube_close(pool);
	return rc;
}

static int cmd_cat(struct opts *o)
{
	struct sefile_cube *pool = NULL;
	int i, fd, rc;

	if (need_args(o, 1, -1, "cat PATH...") < 0)
		return CLI_USAGE;
	rc = open_pool(o, &pool);
	for (i = 1; rc == CLI_OK && i < o->argc; i++) {
		fd = open(o->argv[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = fail_errno("open", o->argv[i]);
			break;
		}
		rc = decrypt_to(pool, o->argv[i], fd, STDOUT_FILENO, 0);
		close(fd);
	}
	sefile_cube_close(pool);
	return rc;
}

/* ---- ls ---- */

static void print_info(const struct opts *o, struct tally *t, const char *path,
		       const struct sefile_info *in, uint64_t backing)
{
	char id[2 * WIRE_FILE_ID_LEN + 1];

	cli_hex(in->file_id, WIRE_FILE_ID_LEN, id);
	if (!o->json) {
		printf("%s\tfile-id %s  key %" PRIu32 "  %s  sector %" PRIu32
		       "  size %" PRIu64 "  backing %" PRIu64 "\n",
		       path, id, in->key_id, wire_alg_name(in->alg), in->sector_size, in->size, backing);
		return;
	}
	printf("%s{\"path\":", t->first ? "" : ",");
	cli_json_str(stdout, path);
	printf(",\"file_id\":\"%s\",\"key_id\":%" PRIu32 ",\"alg\":\"%s\",\"sector_size\":%" PRIu32
	       ",\"size\":%" PRIu64 ",\"backing_size\":%" PRIu64 "}",
	       id, in->key_id, wire_alg_name(in->alg), in->sector_size, in->size, backing);
	t->first = 0;
}

static void print_bad(const struct opts *o, struct tally *t, const char *path, int err)
{
	if (!o->json) {
		fprintf(stderr, "sefile: %s: %s\n", path, sefile_errmsg()[0] ? sefile_errmsg() :
			sefile_strerror(err));
		return;
	}
	printf("%s{\"path\":", t->first ? "" : ",");
	cli_json_str(stdout, path);
	printf(",\"error\":");
	cli_json_str(stdout, sefile_strerror(err));
	printf("}");
	t->first = 0;
}

static void ls_one(const struct opts *o, struct tally *t, const char *path)
{
	struct sefile_info in;
	struct stat st;
	uint64_t size = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		fail_errno("open", path);
		t->io_errors++;
		if (fd >= 0)
			close(fd);
		return;
	}
	t->files++;
	err = sefile_peek_header(fd, &in);
	close(fd);
	/* the size a stat shows: from the backing size alone */
	if (err == SEFILE_OK)
		err = sefile_size_from_backing((uint64_t)st.st_size, in.sector_size, &size);
	if (err != SEFILE_OK) {
		print_bad(o, t, path, err);
		count(t, err);
		return;
	}
	in.size = size;
	print_info(o, t, path, &in, (uint64_t)st.st_size);
}

static int cmd_ls(struct opts *o)
{
	struct tally t = { .first = 1 };
	struct stat st;
	int i;

	if (need_args(o, 1, -1, "ls PATH...") < 0)
		return CLI_USAGE;
	if (o->json)
		printf("[");
	for (i = 1; i < o->argc; i++) {
		if (stat(o->argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			DIR *d = opendir(o->argv[i]);
			struct dirent *e;

			if (!d) {
				fail_errno("open", o->argv[i]);
				t.io_errors++;
				continue;
			}
			while ((e = readdir(d))) {
				char p[PATH_MAX];

				if (e->d_name[0] == '.' || sefile_name_is_side_file(e->d_name) ||
				    snprintf(p, sizeof(p), "%s/%s", o->argv[i], e->d_name) >= (int)sizeof(p))
					continue;
				if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
					ls_one(o, &t, p);
			}
			closedir(d);
		} else {
			ls_one(o, &t, o->argv[i]);
		}
	}
	if (o->json)
		printf("]\n");
	return tally_exit(&t);
}

/* ---- verify (and the tree walk rekey shares) ---- */

struct verify_ctx {
	const struct opts *o;
	struct tally *t;
	const char *path;
	unsigned bad_sectors;
};

static void on_damage(void *arg, uint64_t sector, const char *reason)
{
	struct verify_ctx *v = arg;

	if (v->o->json) {
		printf("%s{\"sector\":", v->bad_sectors ? "," : "");
		if (sector == UINT64_MAX)
			printf("\"header\"");
		else
			printf("%" PRIu64, sector);
		printf(",\"reason\":");
		cli_json_str(stdout, reason);
		printf("}");
	} else if (sector == UINT64_MAX) {
		printf("%s: header: %s\n", v->path, reason);
	} else {
		printf("%s: sector %" PRIu64 ": %s\n", v->path, sector, reason);
	}
	v->bad_sectors++;
}

typedef int (*file_fn)(struct sefile_cube *pool, const struct opts *o, struct tally *t,
		       const char *path);

static int verify_file(struct sefile_cube *pool, const struct opts *o, struct tally *t,
		       const char *path)
{
	struct verify_ctx v = { .o = o, .t = t, .path = path };
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail_errno("open", path);
		t->io_errors++;
		return CLI_OK;
	}
	t->files++;
	if (o->json) {
		printf("%s{\"path\":", t->first ? "" : ",");
		cli_json_str(stdout, path);
		printf(",\"damaged\":[");
		t->first = 0;
	}
	err = sefile_verify(pool, fd, on_damage, &v);
	close(fd);
	if (err != SEFILE_OK && v.bad_sectors == 0)
		on_damage(&v, UINT64_MAX, sefile_errmsg()[0] ? sefile_errmsg() : sefile_strerror(err));
	if (o->json) {
		printf("],\"ok\":%s,\"result\":", err == SEFILE_OK ? "true" : "false");
		cli_json_str(stdout, sefile_strerror(err));
		printf("}");
	} else if (err == SEFILE_OK) {
		printf("%s: ok\n", path);
	}
	count(t, err);
	/* the cube itself failing stops the walk: nothing else would check */
	return err == SEFILE_ECUBE ? CLI_CUBE : CLI_OK;
}

/* Call fn on every regular file under path (or path itself). */
static int walk(struct sefile_cube *pool, const struct opts *o, struct tally *t, const char *path,
		file_fn fn, int depth)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int rc = CLI_OK;

	if (lstat(path, &st) != 0) {
		fail_errno("stat", path);
		t->io_errors++;
		return CLI_OK;
	}
	if (S_ISREG(st.st_mode))
		return fn(pool, o, t, path);
	if (!S_ISDIR(st.st_mode))
		return CLI_OK; /* symlinks, devices: not SEfile files */
	if (depth > MAX_DEPTH || !(d = opendir(path))) {
		fprintf(stderr, "sefile: cannot walk %s\n", path);
		t->io_errors++;
		return CLI_OK;
	}
	while (rc == CLI_OK && (e = readdir(d))) {
		char p[PATH_MAX];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    sefile_name_is_side_file(e->d_name))
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p)) {
			t->io_errors++;
			continue;
		}
		rc = walk(pool, o, t, p, fn, depth + 1);
	}
	closedir(d);
	return rc;
}

static int run_walk(struct opts *o, file_fn fn, const char *json_key, int need_alg)
{
	struct sefile_cube *pool = NULL;
	struct tally t = { .first = 1 };
	int i, rc;

	rc = open_pool(o, &pool);
	if (rc == CLI_OK && need_alg)
		rc = resolve_alg(pool, o);
	if (rc != CLI_OK) {
		sefile_cube_close(pool);
		return rc;
	}
	if (o->json)
		printf("{\"%s\":[", json_key);
	for (i = 1; rc == CLI_OK && i < o->argc; i++) {
		rc = walk(pool, o, &t, o->argv[i], fn, 0);
		cli_progress(o->argv[0], (uint64_t)i, (uint64_t)(o->argc - 1));
	}
	if (o->json)
		printf("],\"checked\":%u,\"damaged\":%u,\"key_errors\":%u,\"io_errors\":%u}\n",
		       t.files, t.damaged, t.key_errors, t.io_errors);
	else if (t.files > 1 || t.damaged)
		fprintf(stderr, "sefile: %u file(s), %u damaged, %u key error(s), %u I/O error(s)\n",
			t.files, t.damaged, t.key_errors, t.io_errors);
	sefile_cube_close(pool);
	return rc != CLI_OK ? rc : tally_exit(&t);
}

static int cmd_verify(struct opts *o)
{
	if (need_args(o, 1, -1, "verify PATH...") < 0)
		return CLI_USAGE;
	return run_walk(o, verify_file, "files", 0);
}

static int rekey_file(struct sefile_cube *pool, const struct opts *o, struct tally *t,
		      const char *path)
{
	struct sefile_params p = { .key_id = o->key_id, .alg = o->alg };
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	int dfd, err;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fail_errno("open directory", dir);
		t->io_errors++;
		return CLI_OK;
	}
	t->files++;
	err = sefile_rekey(pool, dfd, name, &p);
	close(dfd);
	if (o->json) {
		printf("%s{\"path\":", t->first ? "" : ",");
		cli_json_str(stdout, path);
		printf(",\"ok\":%s,\"result\":", err == SEFILE_OK ? "true" : "false");
		cli_json_str(stdout, err == SEFILE_OK ? "ok" : sefile_errmsg());
		printf("}");
		t->first = 0;
	} else if (err != SEFILE_OK) {
		fprintf(stderr, "sefile: rekey %s: %s\n", path, sefile_errmsg());
	}
	count(t, err);
	return err == SEFILE_ECUBE ? CLI_CUBE : CLI_OK;
}

static int cmd_rekey(struct opts *o)
{
	if (need_args(o, 1, -1, "rekey --key ID [--alg gcm|ctr-hmac] PATH...") < 0)
		return CLI_USAGE;
	if (!o->have_key) {
		fprintf(stderr, "sefile: rekey needs --key ID\n");
		return CLI_USAGE;
	}
	return run_walk(o, rekey_file, "rekeyed", 1);
}

/* ---- table and main ---- */

struct command {
	const char *name;
	int (*run)(struct opts *o);
	const char *help;
};

static const struct command commands[] = {
	{ "encrypt", cmd_encrypt, "--key ID [--alg gcm|ctr-hmac] [--sector-size N] SRC DST: a plain file (- for stdin) into a new SEfile file (--alg: default the key's)" },
	{ "decrypt", cmd_decrypt, "SRC DST: a SEfile file to a plain file (- for stdout)" },
	{ "cat", cmd_cat, "PATH...: the plaintext of SEfile files to stdout" },
	{ "ls", cmd_ls, "PATH...: file ID, key ID, algorithm and sizes from the headers (no PIN)" },
	{ "verify", cmd_verify, "PATH...: check every sector of every file in the trees" },
	{ "rekey", cmd_rekey, "--key ID [--alg gcm|ctr-hmac] PATH...: re-encrypt files under another key" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: sefile [--device DIR] [--pin-file F | --pin-fd N] [--admin] [--json] "
		     "COMMAND ...\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\n--device DIR: the cube (default $SEFILE_DEVICE, else ~/.cube)\n"
		     "PIN: --pin-file F, --pin-fd N or $SEFILE_PIN_FD, else asked without echo\n"
		     "--force: replace an existing DST\n"
		     "exit: 0 ok, 1 usage, 2 damaged, 3 key error, 4 cube/login error, 5 I/O error\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_PINFILE = 256, O_PINFD, O_KEY, O_ALG, O_SECTOR, O_FORCE };
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "pin-file", required_argument, NULL, O_PINFILE },
		{ "pin-fd", required_argument, NULL, O_PINFD },
		{ "admin", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "key", required_argument, NULL, O_KEY },
		{ "alg", required_argument, NULL, O_ALG },
		{ "sector-size", required_argument, NULL, O_SECTOR },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t v;
	int ch;

	o->pin_fd = -1;
	while ((ch = getopt_long(argc, argv, "d:ajh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': o->device = optarg; break;
		case O_PINFILE: o->pin_file = optarg; break;
		case O_PINFD:
			if (cli_parse_u32(optarg, 0, 65535, &v) < 0)
				goto bad;
			o->pin_fd = (int)v;
			break;
		case 'a': o->admin = 1; break;
		case 'j': o->json = 1; break;
		case O_KEY:
			if (cli_parse_u32(optarg, 0, UINT32_MAX, &o->key_id) < 0)
				goto bad;
			o->have_key = 1;
			break;
		case O_ALG:
			if (parse_alg(optarg, &o->alg) < 0)
				goto bad;
			break;
		case O_SECTOR:
			if (cli_parse_u32(optarg, 512, 65536, &o->sector_size) < 0 ||
			    (o->sector_size & (o->sector_size - 1)))
				goto bad;
			break;
		case O_FORCE: o->force = 1; break;
		case 'h': o->argc = -1; return 0;
		default: return -1;
		}
	}
	o->argc = argc - optind;
	o->argv = argv + optind;
	if (!o->device)
		o->device = default_device();
	return 0;
bad:
	fprintf(stderr, "sefile: bad value for an option: %s\n", optarg);
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	size_t i;

	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (o.argc < 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (o.argc == 0) {
		usage(stderr);
		return CLI_USAGE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(o.argv[0], commands[i].name))
			return commands[i].run(&o);
	fprintf(stderr, "sefile: unknown command %s\n", o.argv[0]);
	usage(stderr);
	return CLI_USAGE;
}
