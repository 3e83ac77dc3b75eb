/*
 * session.c - the session layer of the driver (wire.h "Sessions"):
 *   - a connection's buffers and the one request/response exchange
 *     (cube_call): numbering, MACing and checking every frame;
 *   - HELLO, and the shared-memory region offered with it;
 *   - LOGIN and FACTORY_INIT: ephemeral X25519 with the device key from
 *     HELLO, HKDF-SHA256 to pin_key / mac_h2d / mac_d2h, PINs sealed with
 *     AES-256-GCM; the MAC on the LOGIN reply proves the device holds its
 *     private key;
 *   - white-box hooks for tests (raw frames, the last request).
 * Every secret lives in struct cube_session and is wiped by
 * cube_session_end on every path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "internal.h"
#include "../wire/buf.h"

#define SESSION_SALT "secube-session-v1"

/* ---- connection ---------------------------------------------------- */

int cube_conn_new(struct cube **out, struct cube_transport *t, char *err, size_t err_cap)
{
	struct cube *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c) {
		t->ops->close(t);
		cube_set_text(err, err_cap, "out of memory");
		return CUBE_ENOMEM;
	}
	c->t = t;
	c->shm_fd = -1;
	c->tx = malloc(WIRE_MAX_BODY);
	c->rx = malloc(CUBE_FRAME_MAX);
	c->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!c->tx || !c->rx || !c->hmac) {
		cube_close(c);
		cube_set_text(err, err_cap, "out of memory (or no HMAC in libcrypto)");
		return CUBE_ENOMEM;
	}
	*out = c;
	return CUBE_OK;
}

void cube_session_end(struct cube *c)
{
	EVP_MAC_CTX_free(c->s.h2d);
	EVP_MAC_CTX_free(c->s.d2h);
	OPENSSL_cleanse(&c->s, sizeof(c->s));
	c->s.h2d = c->s.d2h = NULL;
	c->info.role = WIRE_ROLE_NONE;
}

void cube_close(struct cube *c)
{
	if (!c)
		return;
	cube_session_end(c);
	if (c->t)
		c->t->ops->close(c->t);
	if (c->shm)
		munmap(c->shm, c->shm_size);
	if (c->shm_fd >= 0)
		close(c->shm_fd);
	EVP_MAC_free(c->hmac);
	/* Request bodies carried sealed PINs and plaintext sectors. */
	if (c->tx) {
		OPENSSL_cleanse(c->tx, WIRE_MAX_BODY);
		free(c->tx);
	}
	if (c->rx) {
		OPENSSL_cleanse(c->rx, CUBE_FRAME_MAX);
		free(c->rx);
	}
	free(c->dir);
	free(c->sd);
	free(c);
}

/* ---- frames --------------------------------------------------------- */

static EVP_MAC_CTX *hmac_keyed(EVP_MAC *mac, const uint8_t key[CUBE_KEY_LEN])
{
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	if (ctx && EVP_MAC_init(ctx, key, CUBE_KEY_LEN, params) == 1)
		return ctx;
	EVP_MAC_CTX_free(ctx);
	return NULL;
}

/* tag = HMAC(key, hdr || body)[0..16).  0 or -1. */
static int frame_tag(EVP_MAC_CTX *ctx, const uint8_t *hdr, const uint8_t *body, size_t len,
		     uint8_t tag[WIRE_TAG_LEN])
{
	uint8_t full[32];
	size_t n = 0;
	int ok = EVP_MAC_init(ctx, NULL, 0, NULL) == 1 &&
		 EVP_MAC_update(ctx, hdr, WIRE_HEADER_LEN) == 1 &&
		 (len == 0 || EVP_MAC_update(ctx, body, len) == 1) &&
		 EVP_MAC_final(ctx, full, &n, sizeof(full)) == 1 && n == sizeof(full);

	memcpy(tag, full, WIRE_TAG_LEN);
	OPENSSL_cleanse(full, sizeof(full));
	return ok ? 0 : -1;
}

/* The connection cannot be trusted any more: end it for good (the
 * message is already recorded); returns code. */
static int conn_dead(struct cube *c, int code)
{
	cube_session_end(c);
	c->dead = 1;
	return code;
}

static int send_request(struct cube *c, uint16_t op, uint8_t flags, const uint8_t *body,
			size_t body_len, int pass_fd)
{
	struct wire_header h = { .version = WIRE_VERSION, .flags = flags, .op = op,
				 .body_len = (uint32_t)body_len };
	const char *name = wire_op_name(op);

	if (c->s.active) {
		h.flags |= WIRE_F_MAC;
		h.seq = c->s.seq_tx;
	}
	wire_header_pack(&h, c->last_hdr);
	c->last_tagged = c->s.active;
	c->last_body_len = body_len;
	if (c->s.active && frame_tag(c->s.h2d, c->last_hdr, body, body_len, c->last_tag) != 0)
		return cube_fail(c, CUBE_ENOMEM, "%s: HMAC failed in libcrypto", name);
	if (c->t->ops->send_frame(c->t, c->last_hdr, body, body_len,
				  c->s.active ? c->last_tag : NULL, pass_fd) != 0) {
		c->dead = 1;
		cube_session_end(c);
		return cube_fail(c, CUBE_ETRANSPORT, "device went away during %s (%s)", name,
				 c->t->why);
	}
	if (c->s.active)
		c->s.seq_tx++;
	return CUBE_OK;
}

/* Check a reply's op, MAC and seq.  CUBE_OK, or an error that has ended
 * the connection (a forged or desynchronised reply) or the session (the
 * device's unMACed refusal). */
static int check_reply(struct cube *c, uint16_t op, struct cube_reply *r)
{
	const char *name = wire_op_name(op);
	uint8_t tag[WIRE_TAG_LEN];

	if (r->h.op != op)
		return conn_dead(c, cube_fail(c, CUBE_EPROTO, "%s: reply is for another operation", name));
	if (!(r->h.flags & WIRE_F_MAC)) {
		if (!c->s.keyed)
			return CUBE_OK;
		if (r->h.status == WIRE_ST_OK && !c->s.unmaced_ok)
			return conn_dead(c, cube_fail(c, CUBE_EAUTH,
					 "reply to %s carries no MAC inside a session (forged?); connection closed",
					 name));
		/* An unMACed refusal: the device has dropped (or never had) the session. */
		if (c->s.active)
			cube_session_end(c);
		return CUBE_OK;
	}
	if (!c->s.keyed)
		return conn_dead(c, cube_fail(c, CUBE_EPROTO,
					      "reply to %s is MACed but no session exists", name));
	if (frame_tag(c->s.d2h, c->rx, r->body, r->len, tag) != 0)
		return cube_fail(c, CUBE_ENOMEM, "%s: HMAC failed in libcrypto", name);
	if (CRYPTO_memcmp(tag, c->rx + WIRE_HEADER_LEN + r->len, WIRE_TAG_LEN) != 0 ||
	    r->h.seq != c->s.seq_rx)
		return conn_dead(c, cube_fail(c, CUBE_EAUTH,
				 "reply to %s failed authentication (forged, replayed or corrupted); connection closed",
				 name));
	c->s.seq_rx++;
	return CUBE_OK;
}

int cube_call(struct cube *c, uint16_t op, uint8_t flags, const uint8_t *body, size_t body_len,
	      int pass_fd, struct cube_reply *r)
{
	const char *name = wire_op_name(op);
	int rc;

	memset(r, 0, sizeof(*r));
	if (c->dead)
		return cube_fail(c, CUBE_ETRANSPORT,
				 "connection to the device was lost earlier; close and reopen it");
	if (body_len > WIRE_MAX_BODY)
		return cube_fail(c, CUBE_EINVAL, "%s: request too large", name);
	rc = send_request(c, op, flags, body, body_len, pass_fd);
	if (rc != CUBE_OK)
		return rc;
	rc = c->t->ops->recv_frame(c->t, c->rx, CUBE_FRAME_MAX, &r->h);
	if (rc != 0) {
		c->dead = 1;
		cube_session_end(c);
		if (rc == CUBE_ETRANSPORT)
			return cube_fail(c, rc, "device went away during %s (%s)", name, c->t->why);
		return cube_fail(c, rc, "%s: %s", name, c->t->why);
	}
	r->body = c->rx + WIRE_HEADER_LEN;
	r->len = r->h.body_len;
	rc = check_reply(c, op, r);
	if (rc != CUBE_OK)
		return rc;
	if (r->h.status != WIRE_ST_OK) {
		if (r->h.status == WIRE_ST_AUTH)
			return cube_fail(c, CUBE_EAUTH, "%s: %s", name,
					 c->info.state == WIRE_DEV_BLANK
						 ? "the device is blank (factory-init it first)"
						 : "not logged in, or the session was refused (log in again)");
		return cube_fail(c, cube_status_err(r->h.status), "%s: %s", name,
				 wire_status_name(r->h.status));
	}
	return cube_ok(c);
}

/* ---- HELLO and shared memory ---------------------------------------- */

int cube_shm_create(struct cube *c)
{
	int fd = memfd_create("secube-bulk", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p;

	if (fd < 0)
		return -1;
	/* Sealed size: the device may map it without fearing a shrink. */
	if (ftruncate(fd, WIRE_SHM_SIZE) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		close(fd);
		return -1;
	}
	p = mmap(NULL, WIRE_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return -1;
	}
	c->shm = p;
	c->shm_size = WIRE_SHM_SIZE;
	c->shm_fd = fd;
	return 0;
}

static void shm_drop(struct cube *c)
{
	if (c->shm)
		munmap(c->shm, c->shm_size);
	if (c->shm_fd >= 0)
		close(c->shm_fd);
	c->shm = NULL;
	c->shm_size = 0;
	c->shm_fd = -1;
}

static int parse_hello(struct cube *c, const struct cube_reply *r, uint32_t *shm_ok)
{
	struct cube_info *i = &c->info;
	struct wbuf b;

	wbuf_reader(&b, r->body, r->len);
	wbuf_get_bytes(&b, i->serial, WIRE_SERIAL_LEN);
	wbuf_get_bytes(&b, i->pubkey, WIRE_PUBKEY_LEN);
	wbuf_get_u32(&b, &i->fw_version);
	wbuf_get_u8(&b, &i->state);
	wbuf_get_u8(&b, &i->role);
	wbuf_get_u8(&b, &i->user_tries_left);
	wbuf_get_u8(&b, &i->admin_tries_left);
	wbuf_get_u32(&b, shm_ok);
	wbuf_get_u32(&b, &i->key_count);
	wbuf_get_u32(&b, &i->key_capacity);
	wbuf_get_u32(&b, &i->now_minutes);
	if (!wbuf_done(&b))
		return conn_dead(c, cube_fail(c, CUBE_EPROTO, "HELLO reply malformed"));
	c->tries[WIRE_ROLE_USER] = i->user_tries_left;
	c->tries[WIRE_ROLE_ADMIN] = i->admin_tries_left;
	return CUBE_OK;
}

int cube_hello(struct cube *c, int offer_shm)
{
	struct cube_reply r;
	uint32_t shm_ok = 0;
	int offered = 0, rc;

	if (offer_shm && c->t->shm_capable && !c->shm && cube_shm_create(c) == 0)
		offered = 1;
	rc = cube_call(c, WIRE_OP_HELLO, offered ? WIRE_F_SHM : 0, NULL, 0,
		       offered ? c->shm_fd : -1, &r);
	if (rc == CUBE_OK)
		rc = parse_hello(c, &r, &shm_ok);
	if (offered) {
		/* The device has its own descriptor now (or refused it). */
		close(c->shm_fd);
		c->shm_fd = -1;
		if (rc != CUBE_OK || shm_ok != 1)
			shm_drop(c);
	}
	c->info.shm = c->shm != NULL;
	return rc == CUBE_OK ? cube_ok(c) : rc;
}

/* ---- key agreement and PIN sealing ---------------------------------- */

/* 96 bytes of session keys from an ephemeral X25519 key and the device's
 * public key; eph_pub gets our public half.  0 or -1. */
static int derive_keys(const uint8_t dev_pub[WIRE_PUBKEY_LEN], uint8_t eph_pub[WIRE_PUBKEY_LEN],
		       uint8_t okm[3 * CUBE_KEY_LEN])
{
	EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, dev_pub, WIRE_PUBKEY_LEN);
	EVP_PKEY_CTX *dctx = NULL;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	uint8_t shared[32], info[2 * WIRE_PUBKEY_LEN];
	size_t n = WIRE_PUBKEY_LEN, slen = sizeof(shared);
	int rc = -1;

	if (!eph || !peer || !kctx)
		goto out;
	if (EVP_PKEY_get_raw_public_key(eph, eph_pub, &n) != 1 || n != WIRE_PUBKEY_LEN)
		goto out;
	dctx = EVP_PKEY_CTX_new(eph, NULL);
	if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, peer) != 1 ||
	    EVP_PKEY_derive(dctx, shared, &slen) != 1 || slen != sizeof(shared))
		goto out;
	memcpy(info, eph_pub, WIRE_PUBKEY_LEN);
	memcpy(info + WIRE_PUBKEY_LEN, dev_pub, WIRE_PUBKEY_LEN);
	{
		OSSL_PARAM p[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared, sizeof(shared)),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (char *)SESSION_SALT,
							  sizeof(SESSION_SALT) - 1),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info)),
			OSSL_PARAM_construct_end(),
		};
		if (EVP_KDF_derive(kctx, okm, 3 * CUBE_KEY_LEN, p) == 1)
			rc = 0;
	}
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(eph);
	EVP_PKEY_free(peer);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* AES-256-GCM, no AAD: out gets ct (len) || tag (16).  0 or -1. */
static int gcm_seal(const uint8_t key[CUBE_KEY_LEN], const uint8_t nonce[WIRE_NONCE_LEN],
		    const uint8_t *in, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, ok;

	ok = ctx && len <= WIRE_PIN_MAX * 2 + 2 &&
	     EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
	     EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
	     EVP_EncryptFinal_ex(ctx, out + n, &fin) == 1 && (size_t)(n + fin) == len &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, WIRE_TAG_LEN, out + len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Derive fresh keys into c->s (keyed for checking the reply, not yet
 * active) and eph_pub.  CUBE_OK or an error. */
static int session_begin(struct cube *c, uint8_t eph_pub[WIRE_PUBKEY_LEN])
{
	uint8_t okm[3 * CUBE_KEY_LEN];
	int rc = CUBE_OK;

	cube_session_end(c);
	if (derive_keys(c->info.pubkey, eph_pub, okm) != 0) {
		rc = cube_fail(c, CUBE_EPROTO,
			       "key agreement with the device failed (bad device public key?)");
		goto out;
	}
	memcpy(c->s.pin_key, okm, CUBE_KEY_LEN);
	memcpy(c->s.mac_h2d, okm + CUBE_KEY_LEN, CUBE_KEY_LEN);
	memcpy(c->s.mac_d2h, okm + 2 * CUBE_KEY_LEN, CUBE_KEY_LEN);
	c->s.h2d = hmac_keyed(c->hmac, c->s.mac_h2d);
	c->s.d2h = hmac_keyed(c->hmac, c->s.mac_d2h);
	if (!c->s.h2d || !c->s.d2h) {
		cube_session_end(c);
		rc = cube_fail(c, CUBE_ENOMEM, "HMAC set-up failed in libcrypto");
		goto out;
	}
	c->s.keyed = 1;
out:
	OPENSSL_cleanse(okm, sizeof(okm));
	return rc;
}

static int pin_ok(struct cube *c, const char *what, const char *pin)
{
	size_t n = pin ? strlen(pin) : 0;

	if (n < WIRE_PIN_MIN || n > WIRE_PIN_MAX)
		return cube_fail(c, CUBE_EINVAL, "%s must be %d to %d characters", what,
				 WIRE_PIN_MIN, WIRE_PIN_MAX);
	return CUBE_OK;
}

static const char *role_name(unsigned role)
{
	return role == WIRE_ROLE_ADMIN ? "admin" : role == WIRE_ROLE_USER ? "user" : "no";
}

/* Explain a refused LOGIN in words a user can act on. */
static int login_refused(struct cube *c, int rc, enum wire_role role, const struct cube_reply *r)
{
	if (rc == CUBE_EPIN) {
		uint8_t left = 0;
		struct wbuf b;

		wbuf_reader(&b, r->body, r->len);
		wbuf_get_u8(&b, &left);
		if (!wbuf_done(&b))
			return cube_fail(c, CUBE_EPROTO, "LOGIN: malformed wrong-PIN reply");
		c->tries[role] = left;
		return cube_fail(c, CUBE_EPIN, "wrong %s PIN, %u %s left", role_name(role), left,
				 left == 1 ? "try" : "tries");
	}
	if (rc == CUBE_ELOCKED) {
		c->tries[role] = 0;
		return cube_fail(c, CUBE_ELOCKED, "the %s PIN is locked after too many wrong tries (%s)",
				 role_name(role),
				 role == WIRE_ROLE_USER ? "the admin can set a new user PIN"
							: "only a factory reset is left");
	}
	if (rc == CUBE_ESTATE)
		return cube_fail(c, CUBE_ESTATE, "LOGIN: the device is blank (factory-init it first)");
	return rc;
}

int cube_session_login(struct cube *c, enum wire_role role, const char *pin)
{
	uint8_t sealed[WIRE_PIN_MAX + WIRE_TAG_LEN], nonce[WIRE_NONCE_LEN] = { 0 };
	uint8_t eph_pub[WIRE_PUBKEY_LEN];
	struct cube_reply r;
	struct wbuf b;
	size_t n;
	int rc;

	if (role != WIRE_ROLE_USER && role != WIRE_ROLE_ADMIN)
		return cube_fail(c, CUBE_EINVAL, "LOGIN: role must be user or admin");
	if ((rc = pin_ok(c, "the PIN", pin)) != CUBE_OK)
		return rc;
	n = strlen(pin);
	if ((rc = session_begin(c, eph_pub)) != CUBE_OK)
		return rc;
	if (gcm_seal(c->s.pin_key, nonce, (const uint8_t *)pin, n, sealed) != 0) {
		cube_session_end(c);
		return cube_fail(c, CUBE_ENOMEM, "LOGIN: AES-GCM failed in libcrypto");
	}
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u8(&b, (uint8_t)role);
	wbuf_put_bytes(&b, eph_pub, sizeof(eph_pub));
	wbuf_put_lenbytes(&b, sealed, (uint32_t)(n + WIRE_TAG_LEN));
	OPENSSL_cleanse(sealed, sizeof(sealed));
	rc = cube_call(c, WIRE_OP_LOGIN, 0, c->tx, b.pos, -1, &r);
	OPENSSL_cleanse(c->tx, b.pos);
	if (rc == CUBE_OK && !(r.h.flags & WIRE_F_MAC))
		rc = conn_dead(c, cube_fail(c, CUBE_EAUTH, "LOGIN accepted without proof of the device key"));
	if (rc != CUBE_OK) {
		cube_session_end(c);
		return login_refused(c, rc, role, &r);
	}
	c->s.active = 1;
	c->s.role = (uint8_t)role;
	c->s.seq_tx = 1;
	c->info.role = (uint8_t)role;
	c->tries[role] = role == WIRE_ROLE_USER ? c->info.user_tries_left : c->info.admin_tries_left;
	return cube_ok(c);
}

int cube_session_factory_init(struct cube *c, const char *admin_pin, const char *user_pin,
			      unsigned user_max, unsigned admin_max)
{
	uint8_t plain[2 + 2 * WIRE_PIN_MAX], sealed[sizeof(plain) + WIRE_TAG_LEN];
	uint8_t nonce[WIRE_NONCE_LEN] = { 0 }, eph_pub[WIRE_PUBKEY_LEN];
	size_t na, nu, len;
	struct cube_reply r;
	struct wbuf b;
	int rc;

	if ((rc = pin_ok(c, "the admin PIN", admin_pin)) != CUBE_OK ||
	    (rc = pin_ok(c, "the user PIN", user_pin)) != CUBE_OK)
		return rc;
	if (user_max > 255 || admin_max > 255)
		return cube_fail(c, CUBE_EINVAL, "retry limits must be 0 (default) to 255");
	na = strlen(admin_pin);
	nu = strlen(user_pin);
	plain[0] = (uint8_t)na;
	memcpy(plain + 1, admin_pin, na);
	plain[1 + na] = (uint8_t)nu;
	memcpy(plain + 2 + na, user_pin, nu);
	len = 2 + na + nu;
	if ((rc = session_begin(c, eph_pub)) != CUBE_OK)
		goto out;
	/* The device may or may not MAC this reply; either way no session follows. */
	c->s.unmaced_ok = 1;
	if (gcm_seal(c->s.pin_key, nonce, plain, len, sealed) != 0) {
		rc = cube_fail(c, CUBE_ENOMEM, "FACTORY_INIT: AES-GCM failed in libcrypto");
		goto out;
	}
	wbuf_writer(&b, c->tx, WIRE_MAX_BODY);
	wbuf_put_u8(&b, 0);
	wbuf_put_bytes(&b, eph_pub, sizeof(eph_pub));
	wbuf_put_lenbytes(&b, sealed, (uint32_t)(len + WIRE_TAG_LEN));
	wbuf_put_u8(&b, (uint8_t)user_max);
	wbuf_put_u8(&b, (uint8_t)admin_max);
	rc = cube_call(c, WIRE_OP_FACTORY_INIT, 0, c->tx, b.pos, -1, &r);
	OPENSSL_cleanse(c->tx, b.pos);
	if (rc == CUBE_ESTATE)
		rc = cube_fail(c, rc, "FACTORY_INIT: the device is already initialised "
				      "(a factory reset wipes it first)");
out:
	cube_session_end(c);
	OPENSSL_cleanse(plain, sizeof(plain));
	OPENSSL_cleanse(sealed, sizeof(sealed));
	return rc;
}

int cube_session_seal_next(struct cube *c, uint16_t op, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[WIRE_NONCE_LEN] = { 0 };

	if (!c->s.active)
		return cube_fail(c, CUBE_EAUTH, "%s: not logged in (log in first)", wire_op_name(op));
	wire_le64(nonce, c->s.seq_tx);
	wire_le16(nonce + 8, op);
	if (gcm_seal(c->s.pin_key, nonce, in, len, out) != 0)
		return cube_fail(c, CUBE_ENOMEM, "%s: AES-GCM failed in libcrypto", wire_op_name(op));
	return CUBE_OK;
}

/* ---- white-box hooks ------------------------------------------------ */

int cube_test_raw_exchange(struct cube *c, const uint8_t *frame, size_t len, struct cube_reply *r)
{
	memset(r, 0, sizeof(*r));
	if (len < WIRE_HEADER_LEN)
		return CUBE_EINVAL;
	if (c->t->ops->send_frame(c->t, frame, frame + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN,
				  NULL, -1) != 0)
		return CUBE_ETRANSPORT;
	if (c->t->ops->recv_frame(c->t, c->rx, CUBE_FRAME_MAX, &r->h) != 0)
		return CUBE_ETRANSPORT;
	r->body = c->rx + WIRE_HEADER_LEN;
	r->len = r->h.body_len;
	return CUBE_OK;
}

int cube_test_last_request(const struct cube *c, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = WIRE_HEADER_LEN + c->last_body_len + (c->last_tagged ? WIRE_TAG_LEN : 0);

	*len = 0;
	if (n > cap)
		return CUBE_EINVAL;
	memcpy(out, c->last_hdr, WIRE_HEADER_LEN);
	memcpy(out + WIRE_HEADER_LEN, c->tx, c->last_body_len);
	if (c->last_tagged)
		memcpy(out + WIRE_HEADER_LEN + c->last_body_len, c->last_tag, WIRE_TAG_LEN);
	*len = n;
	return CUBE_OK;
}
