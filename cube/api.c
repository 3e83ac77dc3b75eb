/*
 * api.c - the L1 API of cube.h: opening a connection, and every operation
 * as "encode the request body with wire/buf.h, cube_call, decode the reply
 * exactly (no trailing bytes)".  Outputs are cleared before anything can
 * fail, so a failed call leaves nothing stale.
 *
 * Sections: opening; device and PINs; keys; bulk SEAL/OPEN; small crypto.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "usb_ops.h"
#include "../wire/buf.h"

/* Bulk layout of the shared region: input at 0, output in the upper half. */
#define SHM_IN_OFF  0u
#define SHM_OUT_OFF (WIRE_SHM_SIZE / 2)

/* ---- opening -------------------------------------------------------- */

static int open_dir(struct cube **out, const char *path, char *err, size_t cap)
{
	char abs[PATH_MAX];
	struct cube_transport *t = NULL;
	struct cube *c = NULL;
	const char *no_shm = getenv("SECUBE_NO_SHM");
	int rc;

	if (!realpath(path, abs)) {
		if (errno == ENOENT || errno == ENOTDIR) {
			cube_set_text(err, cap, "no cube in %s (secube create %s makes one)", path, path);
			return CUBE_ENODEV;
		}
		cube_set_text(err, cap, "%s: %s", path, strerror(errno));
		return CUBE_ENODEV;
	}
	rc = cube_unix_open(&t, abs, err, cap);
	if (rc != CUBE_OK)
		return rc;
	rc = cube_conn_new(&c, t, err, cap);
	if (rc != CUBE_OK)
		return rc;
	c->dir = strdup(abs);
	if (c->dir && asprintf(&c->sd, "%s/sd", abs) < 0)
		c->sd = NULL;
	if (!c->dir || !c->sd) {
		cube_close(c);
		cube_set_text(err, cap, "out of memory");
		return CUBE_ENOMEM;
	}
	rc = cube_hello(c, !(no_shm && *no_shm == '1'));
	if (rc != CUBE_OK) {
		cube_set_text(err, cap, "%s: %s", abs, cube_errmsg(c));
		cube_close(c);
		return rc;
	}
	*out = c;
	return CUBE_OK;
}

int cube_open(struct cube **out, const char *spec, char *err_text, size_t err_cap)
{
	if (err_text && err_cap)
		err_text[0] = '\0';
	if (!out)
		return CUBE_EINVAL;
	*out = NULL;
	if (!spec || !*spec) {
		cube_set_text(err_text, err_cap, "no device given (a directory or usb:SERIAL)");
		return CUBE_EINVAL;
	}
	if (strncmp(spec, "usb:", 4) == 0)
		return cube_open_usb(out, spec + 4, NULL, err_text, err_cap);
	if (strncmp(spec, "dir:", 4) == 0)
		spec += 4;
	return open_dir(out, spec, err_text, err_cap);
}

const char *cube_sd_path(const struct cube *c)
{
	return c ? c->sd : NULL;
}

/* ---- device and PINs ------------------------------------------------ */

int cube_info(struct cube *c, struct cube_info *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = cube_hello(c, 0);
	if (rc == CUBE_OK)
		*out = c->info;
	return rc;
}

int cube_factory_init(struct cube *c, const char *admin_pin, const char *user_pin,
		      unsigned user_max_tries, unsigned admin_max_tries)
{
	int rc;

	if (c->s.active)
		return cube_fail(c, CUBE_ESTATE, "FACTORY_INIT: log out first");
	rc = cube_session_factory_init(c, admin_pin, user_pin, user_max_tries, admin_max_tries);
	if (rc != CUBE_OK)
		return rc;
	return cube_hello(c, 0);
}

int cube_login(struct cube *c, enum wire_role role, const char *pin)
{
	int rc;

	if (c->s.active) {
		rc = cube_logout(c);
		if (rc == CUBE_ETRANSPORT)
			return rc;
	}
	rc = cube_session_login(c, role, pin);
	if (rc != CUBE_OK)
		return rc;
	/* The device reset the retry counter; learn the new figures. */
	return cube_hello(c, 0);
}

int cube_logout(struct cube *c)
{
	struct cube_reply r;
	int rc;

	if (!c->s.active)
		return cube_ok(c);
	rc = cube_call(c, WIRE_OP_LOGOUT, 0, NULL, 0, -1, &r);
	cube_session_end(c);
	if (rc == CUBE_OK && r.len != 0)
		return cube_fail(c, CUBE_EPROTO, "LOGOUT: malformed reply");
	return rc;
}

int cube_tries_left(const struct cube *c, enum wire_role role)
{
	if (role != WIRE_ROLE_USER && role != WIRE_ROLE_ADMIN)
		return CUBE_EINVAL;
	return c->tries[role];
}

/* A reply that must be empty. */
static int expect_empty(struct cube *c, int rc, const struct cube_reply *r, uint16_t op)
{
	if (rc == CUBE_OK && r->len != 0)
		return cube_fail(c, CUBE_EPROTO, "%s: malformed reply", wire_op_name(op));
	return rc;
}

int cube_set_pin(struct cube *c, enum wire_role role, const char *new_pin)
{
	uint8_t plain[1 + WIRE_PIN_MAX], sealed[sizeof(plain) + WIRE_TAG_LEN];
	struct cube_reply r;
	struct wbuf b;
	size_t n = new_pin ? strlen(new_pin) : 0;
	int rc;

	if (role != WIRE_ROLE_USER && role != WIRE_ROLE_ADMIN)
		return cube_fail(c, CUBE_EINVAL, "SET_PIN: role must be user or admin");
	if (n < WIRE_PIN_MIN || n > WIRE_PIN_MAX)
		return cube_fail(c, CUBE_EINVAL, "the new PIN must be %d to %d characters",
				 WIRE_PIN_MIN, WIRE_PIN_MAX);
	plain[0] = (uint8_t)n;
	memcpy(plain + 1, new_pin, n);
	rc = cube_session_seal_next(c, WIRE_OP_SET_PIN, plain, n + 1, sealed);
	if (rc == CUBE_OK) {
		wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
		wbuf_put_u8(&b, (uint8_t)role);
		wbuf_put_lenbytes(&b, sealed, (uint32_t)(n + 1 + WIRE_TAG_LEN));
		rc = cube_call(c, WIRE_OP_SET_PIN, 0, c->tx, b.pos, -1, &r);
		rc = expect_empty(c, rc, &r, WIRE_OP_SET_PIN);
	}
	OPENSSL_cleanse(plain, sizeof(plain));
	OPENSSL_cleanse(sealed, sizeof(sealed));
	return rc;
}

int cube_factory_reset(struct cube *c)
{
	struct cube_reply r;
	int rc = cube_call(c, WIRE_OP_FACTORY_RESET, 0, NULL, 0, -1, &r);

	rc = expect_empty(c, rc, &r, WIRE_OP_FACTORY_RESET);
	if (rc != CUBE_OK)
		return rc;
	/* Both PINs are gone, and with them the session. */
	cube_session_end(c);
	return cube_hello(c, 0);
}

int cube_clock_set(struct cube *c, int64_t unix_seconds)
{
	struct cube_reply r;
	struct wbuf b;

	if (unix_seconds < WIRE_EPOCH)
		return cube_fail(c, CUBE_EINVAL, "CLOCK_SET: time before 2024-01-01");
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u64(&b, (uint64_t)unix_seconds);
	return expect_empty(c, cube_call(c, WIRE_OP_CLOCK_SET, 0, c->tx, b.pos, -1, &r), &r,
			    WIRE_OP_CLOCK_SET);
}

/* ---- keys ----------------------------------------------------------- */

/* Name the key in a key error so the user knows which one. */
static int about_key(struct cube *c, int rc, uint32_t id)
{
	if (rc == CUBE_ENOKEY || rc == CUBE_EEXIST || rc == CUBE_EUSAGE || rc == CUBE_EEXPIRED) {
		char prev[sizeof(c->errmsg)];

		snprintf(prev, sizeof(prev), "%s", c->errmsg);
		cube_fail(c, rc, "%.400s (key %u)", prev, id);
	}
	return rc;
}

static void get_key(struct wbuf *b, struct cube_key *k)
{
	wbuf_get_u32(b, &k->id);
	wbuf_get_u8(b, &k->alg);
	wbuf_get_u8(b, &k->usage);
	wbuf_get_u32(b, &k->not_before);
	wbuf_get_u32(b, &k->not_after);
}

int cube_key_generate(struct cube *c, const struct cube_key *k)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, k->id);
	wbuf_put_u8(&b, k->alg);
	wbuf_put_u8(&b, k->usage);
	wbuf_put_u32(&b, k->not_before);
	wbuf_put_u32(&b, k->not_after);
	rc = cube_call(c, WIRE_OP_KEY_GENERATE, 0, c->tx, b.pos, -1, &r);
	return about_key(c, expect_empty(c, rc, &r, WIRE_OP_KEY_GENERATE), k->id);
}

int cube_key_destroy(struct cube *c, uint32_t id)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, id);
	rc = cube_call(c, WIRE_OP_KEY_DESTROY, 0, c->tx, b.pos, -1, &r);
	return about_key(c, expect_empty(c, rc, &r, WIRE_OP_KEY_DESTROY), id);
}

int cube_key_info(struct cube *c, uint32_t id, struct cube_key *out)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	memset(out, 0, sizeof(*out));
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, id);
	rc = cube_call(c, WIRE_OP_KEY_INFO, 0, c->tx, b.pos, -1, &r);
	if (rc != CUBE_OK)
		return about_key(c, rc, id);
	wbuf_reader(&b, r.body, r.len);
	get_key(&b, out);
	if (!wbuf_done(&b) || out->id != id) {
		memset(out, 0, sizeof(*out));
		return cube_fail(c, CUBE_EPROTO, "KEY_INFO: malformed reply");
	}
	return CUBE_OK;
}

int cube_key_list(struct cube *c, uint32_t first_id, struct cube_key *out, uint32_t max, uint32_t *n)
{
	struct cube_reply r;
	struct wbuf b;
	uint32_t want = max < WIRE_LIST_MAX ? max : WIRE_LIST_MAX, got = 0, prev = 0;
	int rc;

	*n = 0;
	if (max == 0)
		return cube_ok(c);
	memset(out, 0, (size_t)want * sizeof(*out));
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, first_id);
	wbuf_put_u32(&b, want);
	rc = cube_call(c, WIRE_OP_KEY_LIST, 0, c->tx, b.pos, -1, &r);
	if (rc != CUBE_OK)
		return rc;
	wbuf_reader(&b, r.body, r.len);
	wbuf_get_u32(&b, &got);
	if (!wbuf_ok(&b) || got > want)
		return cube_fail(c, CUBE_EPROTO, "KEY_LIST: malformed reply");
	for (uint32_t i = 0; i < got; i++) {
		get_key(&b, &out[i]);
		/* Ascending, all >= first_id: anything else is a lying device. */
		if (out[i].id < first_id || (i > 0 && out[i].id <= prev))
			b.failed = 1;
		prev = out[i].id;
	}
	if (!wbuf_done(&b)) {
		memset(out, 0, (size_t)want * sizeof(*out));
		return cube_fail(c, CUBE_EPROTO, "KEY_LIST: malformed reply");
	}
	*n = got;
	return CUBE_OK;
}

int cube_key_set_attrs(struct cube *c, uint32_t id, uint8_t usage, uint32_t not_before,
		       uint32_t not_after)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, id);
	wbuf_put_u8(&b, usage);
	wbuf_put_u32(&b, not_before);
	wbuf_put_u32(&b, not_after);
	rc = cube_call(c, WIRE_OP_KEY_SET_ATTRS, 0, c->tx, b.pos, -1, &r);
	return about_key(c, expect_empty(c, rc, &r, WIRE_OP_KEY_SET_ATTRS), id);
}

/* KEY_EXPORT with flags (0: the key itself; WIRE_EXPORT_TOMBSTONE). */
static int key_export(struct cube *c, uint32_t wrapping_id, uint32_t id, uint8_t flags,
		      uint8_t *blob, size_t blob_cap, size_t *blob_len)
{
	struct cube_reply r;
	struct wbuf b;
	const uint8_t *p;
	uint32_t len;
	int rc;

	*blob_len = 0;
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, wrapping_id);
	wbuf_put_u32(&b, id);
	if (flags)
		wbuf_put_u8(&b, flags);
	rc = cube_call(c, WIRE_OP_KEY_EXPORT, 0, c->tx, b.pos, -1, &r);
	if (rc != CUBE_OK)
		return about_key(c, rc, rc == CUBE_ENOKEY ? id : wrapping_id);
	wbuf_reader(&b, r.body, r.len);
	wbuf_get_lenbytes(&b, &p, &len, WIRE_DATA_MAX);
	if (!wbuf_done(&b))
		return cube_fail(c, CUBE_EPROTO, "KEY_EXPORT: malformed reply");
	if (len > blob_cap)
		return cube_fail(c, CUBE_EINVAL, "KEY_EXPORT: blob of %u bytes does not fit in %zu",
				 len, blob_cap);
	memcpy(blob, p, len);
	*blob_len = len;
	return CUBE_OK;
}

int cube_key_export(struct cube *c, uint32_t wrapping_id, uint32_t id, uint8_t *blob,
		    size_t blob_cap, size_t *blob_len)
{
	return key_export(c, wrapping_id, id, 0, blob, blob_cap, blob_len);
}

int cube_key_export_tombstone(struct cube *c, uint32_t wrapping_id, uint32_t id, uint8_t *blob,
			      size_t blob_cap, size_t *blob_len)
{
	return key_export(c, wrapping_id, id, WIRE_EXPORT_TOMBSTONE, blob, blob_cap, blob_len);
}

int cube_key_import(struct cube *c, uint32_t unwrapping_id, const uint8_t *blob, size_t blob_len,
		    uint32_t *id)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	*id = 0;
	if (blob_len > WIRE_DATA_MAX)
		return cube_fail(c, CUBE_EINVAL, "KEY_IMPORT: blob too large");
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, unwrapping_id);
	wbuf_put_lenbytes(&b, blob, (uint32_t)blob_len);
	rc = cube_call(c, WIRE_OP_KEY_IMPORT, 0, c->tx, b.pos, -1, &r);
	if (rc != CUBE_OK)
		return about_key(c, rc, unwrapping_id);
	wbuf_reader(&b, r.body, r.len);
	wbuf_get_u32(&b, id);
	if (!wbuf_done(&b)) {
		*id = 0;
		return cube_fail(c, CUBE_EPROTO, "KEY_IMPORT: malformed reply");
	}
	return CUBE_OK;
}

int cube_channel_derive_key(struct cube *c, uint32_t new_id, const uint8_t peer_pub[WIRE_PUBKEY_LEN],
			    uint8_t alg, uint8_t usage, const uint8_t *context, size_t context_len)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	if (context_len > WIRE_DATA_MAX)
		return cube_fail(c, CUBE_EINVAL, "CHANNEL_DERIVE: context too long");
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, new_id);
	wbuf_put_bytes(&b, peer_pub, WIRE_PUBKEY_LEN);
	wbuf_put_u8(&b, alg);
	wbuf_put_u8(&b, usage);
	wbuf_put_lenbytes(&b, context, (uint32_t)context_len);
	rc = cube_call(c, WIRE_OP_CHANNEL_DERIVE, 0, c->tx, b.pos, -1, &r);
	return about_key(c, expect_empty(c, rc, &r, WIRE_OP_CHANNEL_DERIVE), new_id);
}

int cube_channel_derive(struct cube *c, uint32_t new_id, const uint8_t peer_pub[WIRE_PUBKEY_LEN],
			const uint8_t *context, size_t context_len)
{
	return cube_channel_derive_key(c, new_id, peer_pub, WIRE_ALG_AES256_KW,
				       WIRE_USE_WRAP | WIRE_USE_UNWRAP, context, context_len);
}

int cube_passphrase_derive(struct cube *c, const uint8_t *passphrase, size_t pass_len,
			   const uint8_t *salt, size_t salt_len, uint32_t iterations,
			   const struct cube_derive_target *keys, unsigned n)
{
	uint8_t sealed[WIRE_PASSPHRASE_MAX + WIRE_TAG_LEN];
	struct cube_reply r;
	struct wbuf b;
	int rc;

	if (pass_len < WIRE_PASSPHRASE_MIN || pass_len > WIRE_PASSPHRASE_MAX)
		return cube_fail(c, CUBE_EINVAL, "the passphrase must be %d to %d bytes",
				 WIRE_PASSPHRASE_MIN, WIRE_PASSPHRASE_MAX);
	if (salt_len < WIRE_PBKDF2_SALT_MIN || salt_len > WIRE_PBKDF2_SALT_MAX)
		return cube_fail(c, CUBE_EINVAL, "PASSPHRASE_DERIVE: salt of %zu bytes", salt_len);
	if (iterations < WIRE_PBKDF2_ITER_MIN || iterations > WIRE_PBKDF2_ITER_MAX)
		return cube_fail(c, CUBE_EINVAL, "PASSPHRASE_DERIVE: %u iterations (%u to %u)",
				 iterations, WIRE_PBKDF2_ITER_MIN, WIRE_PBKDF2_ITER_MAX);
	if (n == 0 || n > WIRE_DERIVE_MAX_KEYS)
		return cube_fail(c, CUBE_EINVAL, "PASSPHRASE_DERIVE: 1 to %d keys",
				 WIRE_DERIVE_MAX_KEYS);
	rc = cube_session_seal_next(c, WIRE_OP_PASSPHRASE_DERIVE, passphrase, pass_len, sealed);
	if (rc == CUBE_OK) {
		wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
		wbuf_put_u32(&b, iterations);
		wbuf_put_lenbytes(&b, salt, (uint32_t)salt_len);
		wbuf_put_lenbytes(&b, sealed, (uint32_t)(pass_len + WIRE_TAG_LEN));
		wbuf_put_u8(&b, (uint8_t)n);
		for (unsigned i = 0; i < n; i++) {
			wbuf_put_u32(&b, keys[i].id);
			wbuf_put_u8(&b, keys[i].alg);
		}
		rc = cube_call(c, WIRE_OP_PASSPHRASE_DERIVE, 0, c->tx, b.pos, -1, &r);
		rc = about_key(c, expect_empty(c, rc, &r, WIRE_OP_PASSPHRASE_DERIVE), keys[0].id);
		/* The request body held the sealed passphrase only, but leave nothing. */
		OPENSSL_cleanse(c->tx, b.pos);
	}
	OPENSSL_cleanse(sealed, sizeof(sealed));
	return rc;
}

/* ---- bulk SEAL / OPEN ----------------------------------------------- */

/* Check a batch and sum its plaintext lengths into *total. */
static int check_batch(struct cube *c, uint16_t op, const struct cube_sector *s, uint32_t n,
		       size_t *total)
{
	size_t sum = 0;

	*total = 0;
	if (n == 0 || n > WIRE_MAX_SECTORS)
		return cube_fail(c, CUBE_EINVAL, "%s: %u sectors (1 to %d per call)", wire_op_name(op),
				 n, WIRE_MAX_SECTORS);
	for (uint32_t i = 0; i < n; i++) {
		if (s[i].len > 65536)
			return cube_fail(c, CUBE_EINVAL, "%s: sector %u longer than 64 KiB",
					 wire_op_name(op), i);
		sum += s[i].len;
	}
	if (sum > WIRE_MAX_BULK_REQ)
		return cube_fail(c, CUBE_EINVAL, "%s: %zu bytes in one call (at most %u; split it)",
				 wire_op_name(op), sum, WIRE_MAX_BULK_REQ);
	*total = sum;
	return CUBE_OK;
}

/* The common head of SEAL and OPEN requests. */
static void put_batch(struct wbuf *b, uint32_t key_id, uint8_t alg, const uint8_t *file_id,
		      const struct cube_sector *s, uint32_t n)
{
	wbuf_put_u32(b, key_id);
	wbuf_put_u8(b, alg);
	wbuf_put_bytes(b, file_id, WIRE_FILE_ID_LEN);
	wbuf_put_u32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		wbuf_put_u64(b, s[i].index);
		wbuf_put_u32(b, s[i].len);
	}
}

int cube_bulk_buffers(struct cube *c, uint8_t **in, uint8_t **out, size_t *cap)
{
	*in = *out = NULL;
	*cap = 0;
	if (!c->shm)
		return cube_fail(c, CUBE_ENODEV, "no shared memory on this connection");
	*in = c->shm + SHM_IN_OFF;
	*out = c->shm + SHM_OUT_OFF;
	*cap = SHM_OUT_OFF - SHM_IN_OFF;
	return cube_ok(c);
}

/* Put the input of a batch: into the shared region (unless the caller
 * wrote it there already) or inline. */
static void put_input(struct cube *c, struct wbuf *b, const uint8_t *in, size_t in_len)
{
	if (c->shm) {
		if (in != c->shm + SHM_IN_OFF)
			memmove(c->shm + SHM_IN_OFF, in, in_len);
		wbuf_put_u32(b, SHM_IN_OFF);
		wbuf_put_u32(b, SHM_OUT_OFF);
	} else {
		wbuf_put_lenbytes(b, in, (uint32_t)in_len);
	}
}

/* Take the output of a batch from the reader (inline) or the shared region. */
static int take_output(struct cube *c, struct wbuf *b, uint8_t *out, size_t out_len)
{
	const uint8_t *p;
	uint32_t len;

	if (c->shm) {
		if (!wbuf_done(b))
			return -1;
		if (out != c->shm + SHM_OUT_OFF)
			memmove(out, c->shm + SHM_OUT_OFF, out_len);
		return 0;
	}
	if (wbuf_get_lenbytes(b, &p, &len, WIRE_MAX_BODY) != 0 || len != out_len || !wbuf_done(b))
		return -1;
	memcpy(out, p, out_len);
	return 0;
}

int cube_seal(struct cube *c, uint32_t key_id, uint8_t alg, const uint8_t file_id[WIRE_FILE_ID_LEN],
	      const struct cube_sector *sectors, uint32_t n, const uint8_t *in, uint8_t *out)
{
	struct cube_reply r;
	struct wbuf b;
	size_t total;
	int rc = check_batch(c, WIRE_OP_SEAL, sectors, n, &total);

	if (rc != CUBE_OK)
		return rc;
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	put_batch(&b, key_id, alg, file_id, sectors, n);
	put_input(c, &b, in, total);
	if (!wbuf_ok(&b))
		return cube_fail(c, CUBE_EINVAL, "SEAL: request too large");
	/* The plaintext left in the shared region is no secret beyond what the
	 * caller's own buffer holds; wiping it would cost a pass over 1 MiB. */
	rc = cube_call(c, WIRE_OP_SEAL, c->shm ? WIRE_F_SHM : 0, c->tx, b.pos, -1, &r);
	if (rc != CUBE_OK)
		return about_key(c, rc, key_id);
	wbuf_reader(&b, r.body, r.len);
	if (take_output(c, &b, out, total + (size_t)n * WIRE_SECTOR_OVERHEAD) != 0)
		return cube_fail(c, CUBE_EPROTO, "SEAL: malformed reply");
	return CUBE_OK;
}

/* Read the bad-sector list of an OPEN reply into bad[]; 0 or -1. */
static int take_bad(struct wbuf *b, uint32_t n, uint8_t *bad, uint32_t *n_bad)
{
	uint32_t pos;

	memset(bad, 0, n);
	if (wbuf_get_u32(b, n_bad) != 0 || *n_bad > n)
		return -1;
	for (uint32_t i = 0; i < *n_bad; i++) {
		if (wbuf_get_u32(b, &pos) != 0 || pos >= n)
			return -1;
		bad[pos] = 1;
	}
	return 0;
}

int cube_open_sectors(struct cube *c, uint32_t key_id, uint8_t alg,
		      const uint8_t file_id[WIRE_FILE_ID_LEN], const struct cube_sector *sectors,
		      uint32_t n, const uint8_t *in, uint8_t *out, uint8_t *bad)
{
	struct cube_reply r;
	struct wbuf b;
	size_t total, off = 0;
	uint32_t n_bad = 0;
	int rc = check_batch(c, WIRE_OP_OPEN, sectors, n, &total);

	if (rc != CUBE_OK)
		return rc;
	memset(bad, 0, n);
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	put_batch(&b, key_id, alg, file_id, sectors, n);
	put_input(c, &b, in, total + (size_t)n * WIRE_SECTOR_OVERHEAD);
	if (!wbuf_ok(&b))
		return cube_fail(c, CUBE_EINVAL, "OPEN: request too large");
	rc = cube_call(c, WIRE_OP_OPEN, c->shm ? WIRE_F_SHM : 0, c->tx, b.pos, -1, &r);
	if (rc != CUBE_OK && !(rc == CUBE_EINTEGRITY && r.len > 0)) {
		memset(out, 0, total);
		return about_key(c, rc, key_id);
	}
	wbuf_reader(&b, r.body, r.len);
	if (take_bad(&b, n, bad, &n_bad) != 0 || take_output(c, &b, out, total) != 0) {
		memset(out, 0, total);
		memset(bad, 0, n);
		return cube_fail(c, CUBE_EPROTO, "OPEN: malformed reply");
	}
	if (n_bad == 0)
		return cube_ok(c);
	/* Whatever the device sent, a bad sector reads as zeros. */
	for (uint32_t i = 0; i < n; off += sectors[i].len, i++)
		if (bad[i])
			memset(out + off, 0, sectors[i].len);
	return cube_fail(c, CUBE_EINTEGRITY, "OPEN: %u of %u sectors failed authentication "
			 "(tampered or wrong key)", n_bad, n);
}

/* ---- small crypto --------------------------------------------------- */

/* A reply that is exactly lenbytes of want bytes, copied to out. */
static int take_lenbytes(struct cube *c, int rc, const struct cube_reply *r, uint16_t op,
			 uint8_t *out, size_t want)
{
	struct wbuf b;
	const uint8_t *p;
	uint32_t len;

	if (rc != CUBE_OK)
		return rc;
	wbuf_reader(&b, r->body, r->len);
	wbuf_get_lenbytes(&b, &p, &len, WIRE_MAX_BODY);
	if (!wbuf_done(&b) || len != want)
		return cube_fail(c, CUBE_EPROTO, "%s: malformed reply", wire_op_name(op));
	memcpy(out, p, want);
	return CUBE_OK;
}

/* A reply that is exactly want fixed bytes, copied to out. */
static int take_fixed(struct cube *c, int rc, const struct cube_reply *r, uint16_t op,
		      uint8_t *out, size_t want)
{
	if (rc != CUBE_OK)
		return rc;
	if (r->len != want)
		return cube_fail(c, CUBE_EPROTO, "%s: malformed reply", wire_op_name(op));
	memcpy(out, r->body, want);
	return CUBE_OK;
}

static int siv_call(struct cube *c, uint16_t op, uint32_t key_id, const uint8_t *ad, size_t ad_len,
		    const uint8_t *in, size_t len, uint8_t *out, size_t out_len)
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	if (ad_len > WIRE_DATA_MAX)
		return cube_fail(c, CUBE_EINVAL, "%s: associated data too long", wire_op_name(op));
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, key_id);
	wbuf_put_lenbytes(&b, ad, (uint32_t)ad_len);
	wbuf_put_lenbytes(&b, in, (uint32_t)len);
	rc = cube_call(c, op, 0, c->tx, b.pos, -1, &r);
	rc = take_lenbytes(c, rc, &r, op, out, out_len);
	if (rc == CUBE_EINTEGRITY)
		cube_fail(c, rc, "%s: the ciphertext failed authentication (tampered, wrong key or wrong context)",
			  wire_op_name(op));
	return about_key(c, rc, key_id);
}

int cube_siv_encrypt(struct cube *c, uint32_t key_id, const uint8_t *ad, size_t ad_len,
		     const uint8_t *in, size_t len, uint8_t *out)
{
	memset(out, 0, len + WIRE_TAG_LEN);
	if (len > WIRE_SIV_MAX)
		return cube_fail(c, CUBE_EINVAL, "SIV_ENCRYPT: %zu bytes (at most %d)", len, WIRE_SIV_MAX);
	return siv_call(c, WIRE_OP_SIV_ENCRYPT, key_id, ad, ad_len, in, len, out, len + WIRE_TAG_LEN);
}

int cube_siv_decrypt(struct cube *c, uint32_t key_id, const uint8_t *ad, size_t ad_len,
		     const uint8_t *in, size_t len, uint8_t *out)
{
	if (len < WIRE_TAG_LEN || len > WIRE_SIV_MAX + WIRE_TAG_LEN)
		return cube_fail(c, CUBE_EINVAL, "SIV_DECRYPT: %zu bytes (16 to %d)", len,
				 WIRE_SIV_MAX + WIRE_TAG_LEN);
	memset(out, 0, len - WIRE_TAG_LEN);
	return siv_call(c, WIRE_OP_SIV_DECRYPT, key_id, ad, ad_len, in, len, out, len - WIRE_TAG_LEN);
}

/* Clear every output of a batch (those whose length is in range: the
 * others' buffers have no size we can trust) and give every item status
 * st; returns st. */
static int siv_batch_fail(struct cube_siv_item *items, size_t n, int st)
{
	for (size_t i = 0; i < n; i++) {
		if (items[i].out && items[i].len >= WIRE_TAG_LEN &&
		    items[i].len <= WIRE_SIV_MAX + WIRE_TAG_LEN)
			OPENSSL_cleanse(items[i].out, items[i].len - WIRE_TAG_LEN);
		items[i].status = st;
	}
	return st;
}

/* The reply: u32 n, then per item u8 status (OK or INTEGRITY) and the
 * plaintext of exactly the expected length (none on INTEGRITY). */
static int take_siv_batch(const struct cube_reply *r, struct cube_siv_item *items, size_t n)
{
	struct wbuf b;
	const uint8_t *p;
	uint32_t got_n = 0, len;
	uint8_t st;

	wbuf_reader(&b, r->body, r->len);
	if (wbuf_get_u32(&b, &got_n) != 0 || got_n != n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (wbuf_get_u8(&b, &st) != 0 || wbuf_get_lenbytes(&b, &p, &len, WIRE_SIV_MAX) != 0)
			return -1;
		if (st == WIRE_ST_OK && len == items[i].len - WIRE_TAG_LEN) {
			memcpy(items[i].out, p, len);
			items[i].status = CUBE_OK;
		} else if (st == WIRE_ST_INTEGRITY && len == 0) {
			items[i].status = CUBE_EINTEGRITY;
		} else {
			return -1;
		}
	}
	return wbuf_done(&b) ? 0 : -1;
}

/* A device without SIV_DECRYPT_BATCH (older firmware): the same answers,
 * one SIV_DECRYPT per item. */
static int siv_batch_one_by_one(struct cube *c, uint32_t key_id, struct cube_siv_item *items,
				size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = cube_siv_decrypt(c, key_id, items[i].ad, items[i].ad_len, items[i].in,
					  items[i].len, items[i].out);

		if (rc != CUBE_OK && rc != CUBE_EINTEGRITY)
			return siv_batch_fail(items, n, rc);
		items[i].status = rc;
	}
	return cube_ok(c);
}

int cube_siv_decrypt_batch(struct cube *c, uint32_t key_id, struct cube_siv_item *items, size_t n)
{
	struct cube_reply r;
	struct wbuf b;
	size_t i;
	int rc;

	memset(&r, 0, sizeof(r));

	if (!items || n == 0 || n > WIRE_SIV_BATCH_MAX)
		return cube_fail(c, CUBE_EINVAL, "SIV_DECRYPT_BATCH: %zu items (1 to %d)", n,
				 WIRE_SIV_BATCH_MAX);
	for (i = 0; i < n; i++) {
		if (!items[i].in || !items[i].out || items[i].len < WIRE_TAG_LEN ||
		    items[i].len > WIRE_SIV_MAX + WIRE_TAG_LEN || items[i].ad_len > WIRE_DATA_MAX ||
		    (items[i].ad_len && !items[i].ad))
			return siv_batch_fail(items, n, cube_fail(c, CUBE_EINVAL,
				"SIV_DECRYPT_BATCH: item %zu: %zu bytes (16 to %d), ad %zu bytes (at most %d)",
				i, items[i].len, WIRE_SIV_MAX + WIRE_TAG_LEN, items[i].ad_len, WIRE_DATA_MAX));
	}
	siv_batch_fail(items, n, CUBE_EINVAL);
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, key_id);
	wbuf_put_u32(&b, (uint32_t)n);
	for (i = 0; i < n; i++) {
		wbuf_put_lenbytes(&b, items[i].ad, (uint32_t)items[i].ad_len);
		wbuf_put_lenbytes(&b, items[i].in, (uint32_t)items[i].len);
	}
	if (!wbuf_ok(&b))
		return siv_batch_fail(items, n, cube_fail(c, CUBE_EINVAL, "SIV_DECRYPT_BATCH: request too large"));
	rc = cube_call(c, WIRE_OP_SIV_DECRYPT_BATCH, 0, c->tx, b.pos, -1, &r);
	if (rc == CUBE_EPROTO && r.h.status == WIRE_ST_UNKNOWN_OP)
		return siv_batch_one_by_one(c, key_id, items, n);
	if (rc != CUBE_OK)
		return siv_batch_fail(items, n, about_key(c, rc, key_id));
	if (take_siv_batch(&r, items, n) != 0)
		return siv_batch_fail(items, n, cube_fail(c, CUBE_EPROTO, "SIV_DECRYPT_BATCH: malformed reply"));
	return cube_ok(c);
}

int cube_hmac(struct cube *c, uint32_t key_id, const uint8_t *data, size_t len, uint8_t mac[32])
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	memset(mac, 0, 32);
	if (len > WIRE_DATA_MAX)
		return cube_fail(c, CUBE_EINVAL, "HMAC: %zu bytes (at most %d)", len, WIRE_DATA_MAX);
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u32(&b, key_id);
	wbuf_put_lenbytes(&b, data, (uint32_t)len);
	rc = cube_call(c, WIRE_OP_HMAC, 0, c->tx, b.pos, -1, &r);
	return about_key(c, take_fixed(c, rc, &r, WIRE_OP_HMAC, mac, 32), key_id);
}

int cube_random(struct cube *c, void *out, size_t n)
{
	uint8_t *p = out;
	struct cube_reply r;
	struct wbuf b;

	memset(out, 0, n);
	while (n > 0) {
		size_t chunk = n < WIRE_RANDOM_MAX ? n : WIRE_RANDOM_MAX;
		int rc;

		wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
		wbuf_put_u32(&b, (uint32_t)chunk);
		rc = cube_call(c, WIRE_OP_RANDOM, 0, c->tx, b.pos, -1, &r);
		rc = take_lenbytes(c, rc, &r, WIRE_OP_RANDOM, p, chunk);
		if (rc != CUBE_OK) {
			memset(out, 0, (size_t)(p - (uint8_t *)out));
			return rc;
		}
		p += chunk;
		n -= chunk;
	}
	return CUBE_OK;
}

int cube_digest(struct cube *c, const uint8_t *data, size_t len, uint8_t sha256[32])
{
	struct cube_reply r;
	struct wbuf b;
	int rc;

	memset(sha256, 0, 32);
	if (len > WIRE_DATA_MAX)
		return cube_fail(c, CUBE_EINVAL, "DIGEST: %zu bytes (at most %d)", len, WIRE_DATA_MAX);
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_lenbytes(&b, data, (uint32_t)len);
	rc = cube_call(c, WIRE_OP_DIGEST, 0, c->tx, b.pos, -1, &r);
	return take_fixed(c, rc, &r, WIRE_OP_DIGEST, sha256, 32);
}

int cube_selftest(struct cube *c, unsigned *n_failed, char *report, size_t cap)
{
	struct cube_reply r;
	struct wbuf b;
	const uint8_t *p;
	uint32_t failed = 0, len = 0;
	int rc;

	*n_failed = 0;
	if (cap)
		report[0] = '\0';
	rc = cube_call(c, WIRE_OP_SELFTEST, 0, NULL, 0, -1, &r);
	if (rc != CUBE_OK)
		return rc;
	wbuf_reader(&b, r.body, r.len);
	wbuf_get_u32(&b, &failed);
	wbuf_get_lenbytes(&b, &p, &len, WIRE_MAX_BODY);
	if (!wbuf_done(&b))
		return cube_fail(c, CUBE_EPROTO, "SELFTEST: malformed reply");
	*n_failed = failed;
	if (cap) {
		size_t k = len < cap - 1 ? len : cap - 1;

		memcpy(report, p, k);
		report[k] = '\0';
	}
	return CUBE_OK;
}
