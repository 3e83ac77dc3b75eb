/*
 * dev_session.c - who may talk to the cube: PIN records, the session key
 * agreement, and the ops HELLO, FACTORY_INIT, LOGIN, LOGOUT, SET_PIN and
 * FACTORY_RESET.
 *
 * The PINs do not guard a flag; they guard the key-store master key.
 * FACTORY_INIT draws a random master key and stores, per role, the master
 * key wrapped (RFC 5649) under PBKDF2(PIN, salt).  A login unwraps it, so
 * a right PIN is exactly one that unwraps, and the key records on flash
 * cannot be read without one.  The retry counter is written before the
 * check, so cutting the power during a guess still costs a try.
 *
 * Sections: PIN records; session derivation; the ops.
 */
#include "dev_internal.h"

#include <string.h>

#include "fwcrypto.h"

#define PIN_VERSION 1
#define PIN_REC_LEN (1 + 1 + 1 + 4 + DEV_PIN_SALT + 1 + DEV_PIN_WRAPPED)
#define SESSION_SALT "secube-session-v1"
#define SESSION_KEYS 96

/* ---- PIN records ---- */

static uint8_t pin_tag(int role)
{
	return role == WIRE_ROLE_ADMIN ? DEVICE_META_PIN_ADMIN : DEVICE_META_PIN_USER;
}

static int pin_parse(const uint8_t *rec, size_t len, struct dev_pin *p)
{
	memset(p, 0, sizeof(*p));
	if (len != PIN_REC_LEN || rec[0] != PIN_VERSION || rec[1] == 0 ||
	    rec[3 + 4 + DEV_PIN_SALT] != DEV_PIN_WRAPPED)
		return DEVICE_ECORRUPT;
	p->max_tries = rec[1];
	p->failures = rec[2];
	p->iterations = wire_rd32(rec + 3);
	memcpy(p->salt, rec + 7, DEV_PIN_SALT);
	memcpy(p->wrapped, rec + 7 + DEV_PIN_SALT + 1, DEV_PIN_WRAPPED);
	p->present = p->iterations != 0;
	return p->present ? DEVICE_OK : DEVICE_ECORRUPT;
}

int dev_pins_load(struct device *d)
{
	uint8_t rec[PIN_REC_LEN + 1];
	size_t len = 0;
	int role, rc;

	for (role = WIRE_ROLE_USER; role <= WIRE_ROLE_ADMIN; role++) {
		memset(&d->pins[role], 0, sizeof(d->pins[role]));
		rc = ks_meta_get(d->ks, pin_tag(role), rec, sizeof(rec), &len);
		if (rc == KS_ENOENT)
			continue;
		if (rc != KS_OK)
			return DEVICE_EIO;
		rc = pin_parse(rec, len, &d->pins[role]);
		if (rc != DEVICE_OK)
			return rc;
	}
	return DEVICE_OK;
}

/* Persist p as role's record, then cache it.  WIRE_ST_OK or INTERNAL/FULL. */
static int pin_store(struct device *d, int role, const struct dev_pin *p)
{
	uint8_t rec[PIN_REC_LEN];
	int rc;

	rec[0] = PIN_VERSION;
	rec[1] = p->max_tries;
	rec[2] = p->failures;
	wire_le32(rec + 3, p->iterations);
	memcpy(rec + 7, p->salt, DEV_PIN_SALT);
	rec[7 + DEV_PIN_SALT] = DEV_PIN_WRAPPED;
	memcpy(rec + 8 + DEV_PIN_SALT, p->wrapped, DEV_PIN_WRAPPED);
	rc = ks_meta_put(d->ks, pin_tag(role), rec, sizeof(rec));
	if (rc != KS_OK)
		return dev_ks_status(rc);
	d->pins[role] = *p;
	d->pins[role].present = 1;
	return WIRE_ST_OK;
}

/* The key that wraps the master key: PBKDF2(pin, salt). */
static int pin_kek(const struct dev_pin *p, const uint8_t *pin, size_t pin_len, uint8_t kek[32])
{
	return fw_pbkdf2_sha256(pin, pin_len, p->salt, DEV_PIN_SALT, p->iterations, kek, 32);
}

/* A fresh record for pin wrapping master (new salt, zero failures). */
static int pin_make(struct device *d, const uint8_t *pin, size_t pin_len, const uint8_t master[32],
		    uint8_t max_tries, struct dev_pin *p)
{
	uint8_t kek[32];
	size_t wlen = 0;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	p->present = 1;
	p->max_tries = max_tries;
	p->iterations = d->cfg.pbkdf2_iterations;
	if (fw_random(p->salt, sizeof(p->salt)) == 0 && pin_kek(p, pin, pin_len, kek) == 0)
		rc = fw_kwp_wrap(kek, 32, master, 32, p->wrapped, sizeof(p->wrapped), &wlen);
	fw_wipe(kek, sizeof(kek));
	return rc == 0 && wlen == DEV_PIN_WRAPPED ? 0 : -1;
}

/* 0 iff pin unwraps the master key of p (master filled), else -1. */
static int pin_check(const struct dev_pin *p, const uint8_t *pin, size_t pin_len, uint8_t master[32])
{
	uint8_t kek[32];
	size_t mlen = 0;
	int rc = -1;

	if (pin_kek(p, pin, pin_len, kek) == 0)
		rc = fw_kwp_unwrap(kek, 32, p->wrapped, DEV_PIN_WRAPPED, master, 32, &mlen);
	fw_wipe(kek, sizeof(kek));
	if (rc == 0 && mlen == 32)
		return 0;
	fw_wipe(master, 32);
	return -1;
}

static uint8_t tries_left(const struct device *d, int role)
{
	const struct dev_pin *p = &d->pins[role];

	return p->present && p->failures < p->max_tries ? (uint8_t)(p->max_tries - p->failures) : 0;
}

int dev_state(struct device *d)
{
	const struct dev_pin *admin = &d->pins[WIRE_ROLE_ADMIN];

	if (!admin->present)
		return WIRE_DEV_BLANK;
	return admin->failures >= admin->max_tries ? WIRE_DEV_LOCKED : WIRE_DEV_READY;
}

static int pin_len_ok(size_t n)
{
	return n >= WIRE_PIN_MIN && n <= WIRE_PIN_MAX;
}

/* ---- session derivation ---- */

/* The 96 bytes of wire.h: pin_key || mac_h2d || mac_d2h. */
static int derive_session(struct device *d, const uint8_t eph[WIRE_PUBKEY_LEN], uint8_t keys[SESSION_KEYS])
{
	uint8_t shared[FW_X25519];
	uint8_t info[2 * WIRE_PUBKEY_LEN];
	int rc;

	memcpy(info, eph, WIRE_PUBKEY_LEN);
	memcpy(info + WIRE_PUBKEY_LEN, d->pub, WIRE_PUBKEY_LEN);
	rc = fw_x25519(d->priv, eph, shared);
	if (rc == 0)
		rc = fw_hkdf_sha256((const uint8_t *)SESSION_SALT, strlen(SESSION_SALT), shared,
				    sizeof(shared), info, sizeof(info), keys, SESSION_KEYS);
	fw_wipe(shared, sizeof(shared));
	if (rc != 0)
		fw_wipe(keys, SESSION_KEYS);
	return rc;
}

/* Open an AES-256-GCM sealed blob (ct || tag, no AAD) into out[cap]. */
static int open_sealed(const uint8_t key[32], const uint8_t nonce[FW_GCM_NONCE], const uint8_t *sealed,
		       uint32_t sealed_len, uint8_t *out, size_t cap, size_t *out_len)
{
	*out_len = 0;
	if (sealed_len < FW_GCM_TAG || sealed_len - FW_GCM_TAG > cap)
		return -1;
	*out_len = sealed_len - FW_GCM_TAG;
	if (fw_gcm_open(key, 32, nonce, NULL, 0, sealed, *out_len, sealed + *out_len, out) == 0)
		return 0;
	*out_len = 0;
	return -1;
}

/* ---- HELLO ---- */

int dev_op_hello(struct device *d, struct request *r, struct wbuf *resp)
{
	struct session *s = r->s;
	int live = s->role != WIRE_ROLE_NONE && s->epoch == d->epoch;

	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	wbuf_put_bytes(resp, d->serial, WIRE_SERIAL_LEN);
	wbuf_put_bytes(resp, d->pub, WIRE_PUBKEY_LEN);
	wbuf_put_u32(resp, DEVICE_FW_VERSION);
	wbuf_put_u8(resp, (uint8_t)dev_state(d));
	wbuf_put_u8(resp, live ? s->role : WIRE_ROLE_NONE);
	wbuf_put_u8(resp, tries_left(d, WIRE_ROLE_USER));
	wbuf_put_u8(resp, tries_left(d, WIRE_ROLE_ADMIN));
	wbuf_put_u32(resp, s->shm && s->shm_size == WIRE_SHM_SIZE);
	wbuf_put_u32(resp, ks_unlocked(d->ks) ? ks_key_count(d->ks) : 0);
	wbuf_put_u32(resp, ks_key_room(d->ks));
	wbuf_put_u32(resp, dev_now_minutes(d));
	return WIRE_ST_OK;
}

/* ---- FACTORY_INIT ---- */

/* Parse the sealed PINs: u8 len admin_pin u8 len user_pin. */
static int parse_init_pins(const uint8_t *plain, size_t len, const uint8_t **admin, uint8_t *alen,
			   const uint8_t **user, uint8_t *ulen)
{
	struct wbuf b;

	wbuf_reader(&b, plain, len);
	wbuf_get_u8(&b, alen);
	wbuf_get_span(&b, admin, *alen);
	wbuf_get_u8(&b, ulen);
	wbuf_get_span(&b, user, *ulen);
	if (!wbuf_done(&b))
		return WIRE_ST_MALFORMED;
	return pin_len_ok(*alen) && pin_len_ok(*ulen) ? WIRE_ST_OK : WIRE_ST_INVALID;
}

static int init_pins(struct device *d, const uint8_t *admin, uint8_t alen, const uint8_t *user,
		     uint8_t ulen, uint8_t user_max, uint8_t admin_max)
{
	uint8_t master[32];
	struct dev_pin up, ap;
	int st = WIRE_ST_INTERNAL;

	if (fw_random(master, sizeof(master)) == 0 &&
	    pin_make(d, user, ulen, master, user_max ? user_max : DEVICE_USER_TRIES, &up) == 0 &&
	    pin_make(d, admin, alen, master, admin_max ? admin_max : DEVICE_ADMIN_TRIES, &ap) == 0) {
		/* User first: the device is READY only once the admin record exists. */
		st = pin_store(d, WIRE_ROLE_USER, &up);
		if (st == WIRE_ST_OK)
			st = pin_store(d, WIRE_ROLE_ADMIN, &ap);
	}
	fw_wipe(master, sizeof(master));
	return st;
}

int dev_op_factory_init(struct device *d, struct request *r, struct wbuf *resp)
{
	static const uint8_t zero_nonce[FW_GCM_NONCE];
	const uint8_t *eph, *sealed, *admin = NULL, *user = NULL;
	uint8_t kind, user_max, admin_max, alen = 0, ulen = 0;
	uint8_t keys[SESSION_KEYS], plain[2 + 2 * WIRE_PIN_MAX];
	uint32_t sealed_len;
	size_t plain_len = 0;
	int st;

	wbuf_get_u8(&r->body, &kind);
	wbuf_get_span(&r->body, &eph, WIRE_PUBKEY_LEN);
	wbuf_get_lenbytes(&r->body, &sealed, &sealed_len, sizeof(plain) + FW_GCM_TAG);
	wbuf_get_u8(&r->body, &user_max);
	wbuf_get_u8(&r->body, &admin_max);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (kind != 0)
		return WIRE_ST_INVALID;
	if (derive_session(d, eph, keys) != 0)
		return WIRE_ST_INVALID; /* a small-order "public key" */
	st = open_sealed(keys, zero_nonce, sealed, sealed_len, plain, sizeof(plain), &plain_len) == 0
		? parse_init_pins(plain, plain_len, &admin, &alen, &user, &ulen) : WIRE_ST_INTEGRITY;
	if (st == WIRE_ST_OK)
		st = init_pins(d, admin, alen, user, ulen, user_max, admin_max);
	fw_wipe(keys, sizeof(keys));
	fw_wipe(plain, sizeof(plain));
	return st;
}

/* ---- LOGIN ---- */

/* The PIN was right: unlock the store and make the session live. */
static int login_ok(struct device *d, struct session *s, int role, const uint8_t master[32],
		    const uint8_t keys[SESSION_KEYS])
{
	struct dev_pin p = d->pins[role];
	int st;

	p.failures = 0;
	st = pin_store(d, role, &p);
	if (st != WIRE_ST_OK)
		return st;
	if (!ks_unlocked(d->ks) && ks_unlock(d->ks, master) != KS_OK)
		return WIRE_ST_INTERNAL;
	memcpy(d->master, master, 32);
	memcpy(s->pin_key, keys, 32);
	memcpy(s->mac_h2d, keys + 32, 32);
	memcpy(s->mac_d2h, keys + 64, 32);
	s->role = (uint8_t)role;
	s->epoch = d->epoch;
	s->seq_next = 1; /* LOGIN was seq 0 */
	d->logged_in++;
	return WIRE_ST_OK;
}

/* Count the try, then check the PIN. */
static int login_check(struct device *d, struct request *r, int role, const uint8_t *pin,
		       size_t pin_len, const uint8_t keys[SESSION_KEYS], struct wbuf *resp)
{
	struct dev_pin p = d->pins[role];
	uint8_t master[32];
	int st;

	if (p.failures >= p.max_tries)
		return WIRE_ST_LOCKED;
	p.failures++;
	st = pin_store(d, role, &p); /* before the check: a power cut costs a try */
	if (st != WIRE_ST_OK)
		return st;
	if (pin_check(&p, pin, pin_len, master) != 0) {
		wbuf_put_u8(resp, tries_left(d, role));
		r->keep_body = 1;
		return WIRE_ST_PIN;
	}
	st = login_ok(d, r->s, role, master, keys);
	fw_wipe(master, sizeof(master));
	return st;
}

int dev_op_login(struct device *d, struct request *r, struct wbuf *resp)
{
	static const uint8_t zero_nonce[FW_GCM_NONCE];
	const uint8_t *eph, *sealed;
	uint8_t role, keys[SESSION_KEYS], pin[WIRE_PIN_MAX];
	uint32_t sealed_len;
	size_t pin_len = 0;
	int st;

	dev_session_drop(d, r->s); /* a login replaces whatever session there was */
	wbuf_get_u8(&r->body, &role);
	wbuf_get_span(&r->body, &eph, WIRE_PUBKEY_LEN);
	wbuf_get_lenbytes(&r->body, &sealed, &sealed_len, WIRE_PIN_MAX + FW_GCM_TAG);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (role != WIRE_ROLE_USER && role != WIRE_ROLE_ADMIN)
		return WIRE_ST_INVALID;
	if (derive_session(d, eph, keys) != 0)
		return WIRE_ST_INVALID;
	/* Every answer from here on is MACed: the host can trust tries_left. */
	memcpy(r->reply_key, keys + 64, 32);
	r->has_reply_key = 1;
	if (open_sealed(keys, zero_nonce, sealed, sealed_len, pin, sizeof(pin), &pin_len) != 0)
		st = WIRE_ST_INTEGRITY;
	else if (!pin_len_ok(pin_len))
		st = WIRE_ST_INVALID;
	else
		st = login_check(d, r, role, pin, pin_len, keys, resp);
	fw_wipe(keys, sizeof(keys));
	fw_wipe(pin, sizeof(pin));
	return st;
}

/* ---- LOGOUT ---- */

int dev_op_logout(struct device *d, struct request *r, struct wbuf *resp)
{
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	dev_reply_key_keep(d, r);
	dev_session_drop(d, r->s);
	return WIRE_ST_OK;
}

/* ---- SET_PIN ---- */

/* Nonce of a PIN sealed inside a session: seq (8 LE) || op (2 LE) || 00 00. */
static void session_nonce(const struct wire_header *h, uint8_t nonce[FW_GCM_NONCE])
{
	memset(nonce, 0, FW_GCM_NONCE);
	wire_le64(nonce, h->seq);
	wire_le16(nonce + 8, h->op);
}

int dev_op_set_pin(struct device *d, struct request *r, struct wbuf *resp)
{
	const uint8_t *sealed, *pin = NULL;
	uint8_t role, nonce[FW_GCM_NONCE], plain[1 + WIRE_PIN_MAX], pin_len = 0;
	uint32_t sealed_len;
	size_t plain_len = 0;
	struct wbuf b;
	struct dev_pin p;
	int st;

	wbuf_get_u8(&r->body, &role);
	wbuf_get_lenbytes(&r->body, &sealed, &sealed_len, sizeof(plain) + FW_GCM_TAG);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (role != WIRE_ROLE_USER && role != WIRE_ROLE_ADMIN)
		return WIRE_ST_INVALID;
	if (r->s->role != WIRE_ROLE_ADMIN && role != r->s->role)
		return WIRE_ST_PERM;
	session_nonce(&r->h, nonce);
	if (open_sealed(r->s->pin_key, nonce, sealed, sealed_len, plain, sizeof(plain), &plain_len) != 0)
		return WIRE_ST_INTEGRITY;
	wbuf_reader(&b, plain, plain_len);
	wbuf_get_u8(&b, &pin_len);
	wbuf_get_span(&b, &pin, pin_len);
	if (!wbuf_done(&b))
		st = WIRE_ST_MALFORMED;
	else if (!pin_len_ok(pin_len))
		st = WIRE_ST_INVALID;
	else if (pin_make(d, pin, pin_len, d->master, d->pins[role].max_tries, &p) != 0)
		st = WIRE_ST_INTERNAL;
	else
		st = pin_store(d, role, &p); /* also clears a locked user's count */
	fw_wipe(plain, sizeof(plain));
	return st;
}

/* ---- FACTORY_RESET ---- */

int dev_op_factory_reset(struct device *d, struct request *r, struct wbuf *resp)
{
	static const uint8_t keep[] = { DEVICE_META_IDENTITY, DEVICE_META_CLOCK };
	struct session *s = r->s;
	int live = s->role != WIRE_ROLE_NONE && s->epoch == d->epoch;
	int rc;

	/* Unauthenticated only once the admin PIN is locked: then it is the
	 * one way back, and it erases everything, so it exposes nothing. */
	if (dev_state(d) != WIRE_DEV_LOCKED) {
		if (!live)
			return WIRE_ST_AUTH;
		if (s->role != WIRE_ROLE_ADMIN)
			return WIRE_ST_PERM;
	}
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	dev_reply_key_keep(d, r);
	rc = ks_wipe(d->ks, keep, sizeof(keep));
	/* Whatever the wipe managed, every session ends and the PINs are gone
	 * from RAM; the records re-read from flash say what is left. */
	d->epoch++;
	d->logged_in = 0;
	fw_wipe(d->master, sizeof(d->master));
	dev_session_drop(d, s);
	if (dev_pins_load(d) != DEVICE_OK)
		return WIRE_ST_INTERNAL;
	return rc == KS_OK ? WIRE_ST_OK : WIRE_ST_INTERNAL;
}
