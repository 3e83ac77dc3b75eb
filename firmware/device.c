/*
 * device.c - the cube's front door: opening a device, its clock, and
 * device_handle(), which checks one request frame (header, exact length,
 * session MAC and sequence number, permission, device state) and
 * dispatches it through the request table to a handler; every outcome,
 * good or bad, is exactly one response frame.
 *
 * Sections: identity and open/close; clock; sessions; the request table;
 * framing (parse, authenticate, reply).
 */
#include "dev_internal.h"
#include "dev_backup.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "fwcrypto.h"

#define IDENTITY_VERSION 1
#define IDENTITY_LEN (1 + WIRE_SERIAL_LEN + 32 + WIRE_PUBKEY_LEN)
#define CLOCK_VERSION 1
#define CLOCK_LEN (1 + 8)

/* ---- identity and open/close ---- */

int device_create_identity(struct keystore *ks)
{
	uint8_t rec[IDENTITY_LEN];
	size_t len;
	int rc;

	rc = ks_meta_get(ks, DEVICE_META_IDENTITY, rec, sizeof(rec), &len);
	if (rc == KS_OK)
		return DEVICE_EEXIST;
	if (rc != KS_ENOENT)
		return DEVICE_EIO;
	rec[0] = IDENTITY_VERSION;
	if (fw_random(rec + 1, WIRE_SERIAL_LEN) < 0 ||
	    fw_x25519_keygen(rec + 1 + WIRE_SERIAL_LEN, rec + 1 + WIRE_SERIAL_LEN + 32) < 0) {
		fw_wipe(rec, sizeof(rec));
		return DEVICE_ECRYPTO;
	}
	rc = ks_meta_put(ks, DEVICE_META_IDENTITY, rec, sizeof(rec));
	fw_wipe(rec, sizeof(rec));
	return rc == KS_OK ? DEVICE_OK : DEVICE_EIO;
}

static int load_identity(struct device *d)
{
	uint8_t rec[IDENTITY_LEN + 1];
	uint8_t check[WIRE_PUBKEY_LEN];
	size_t len = 0;
	int rc;

	rc = ks_meta_get(d->ks, DEVICE_META_IDENTITY, rec, sizeof(rec), &len);
	if (rc == KS_ENOENT)
		return DEVICE_ENOIDENT;
	if (rc != KS_OK)
		return DEVICE_EIO;
	rc = DEVICE_ECORRUPT;
	if (len != IDENTITY_LEN || rec[0] != IDENTITY_VERSION)
		goto out;
	memcpy(d->serial, rec + 1, WIRE_SERIAL_LEN);
	memcpy(d->priv, rec + 1 + WIRE_SERIAL_LEN, 32);
	memcpy(d->pub, rec + 1 + WIRE_SERIAL_LEN + 32, WIRE_PUBKEY_LEN);
	/* The public key must belong to the private key. */
	if (fw_x25519_public(d->priv, check) < 0 || fw_memeq_ct(check, d->pub, sizeof(check)) != 0)
		goto out;
	rc = DEVICE_OK;
out:
	fw_wipe(rec, sizeof(rec));
	return rc;
}

static int load_clock(struct device *d)
{
	uint8_t rec[CLOCK_LEN];
	size_t len = 0;
	int rc;

	d->clock_offset = 0;
	rc = ks_meta_get(d->ks, DEVICE_META_CLOCK, rec, sizeof(rec), &len);
	if (rc == KS_ENOENT)
		return DEVICE_OK;
	if (rc != KS_OK)
		return DEVICE_EIO;
	if (len != CLOCK_LEN || rec[0] != CLOCK_VERSION)
		return DEVICE_ECORRUPT;
	d->clock_offset = (int64_t)wire_rd64(rec + 1);
	return DEVICE_OK;
}

int device_open(struct device **out, struct keystore *ks, const struct device_config *cfg)
{
	struct device *d;
	int rc;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return DEVICE_ENOMEM;
	d->ks = ks;
	if (cfg)
		d->cfg = *cfg;
	if (!d->cfg.pbkdf2_iterations)
		d->cfg.pbkdf2_iterations = DEVICE_PBKDF2_ITER;
	d->nonces = malloc((size_t)WIRE_MAX_SECTORS * WIRE_NONCE_LEN);
	d->bad = malloc((size_t)WIRE_MAX_SECTORS * sizeof(*d->bad));
	if (fw_hmac_new(&d->hmac) != 0)
		d->hmac = NULL;
	rc = (d->nonces && d->bad && d->hmac) ? load_identity(d) : DEVICE_ENOMEM;
	if (rc == DEVICE_OK)
		rc = load_clock(d);
	if (rc == DEVICE_OK)
		rc = dev_pins_load(d);
	if (rc != DEVICE_OK) {
		device_close(d);
		return rc;
	}
	*out = d;
	return DEVICE_OK;
}

void device_close(struct device *d)
{
	if (!d)
		return;
	if (d->logged_in && d->ks)
		ks_lock(d->ks);
	free(d->nonces);
	free(d->bad);
	fw_hmac_free(d->hmac);
	fw_wipe(d, sizeof(*d));
	free(d);
}

void device_identity(const struct device *d, uint8_t serial[WIRE_SERIAL_LEN],
		     uint8_t pub[WIRE_PUBKEY_LEN])
{
	memcpy(serial, d->serial, WIRE_SERIAL_LEN);
	memcpy(pub, d->pub, WIRE_PUBKEY_LEN);
}

int device_state(struct device *d)
{
	return dev_state(d);
}

const char *device_strerror(int err)
{
	switch (err) {
	case DEVICE_OK: return "ok";
	case DEVICE_ENOIDENT: return "no cube identity in the flash (create the cube first)";
	case DEVICE_EEXIST: return "the cube already has an identity";
	case DEVICE_EIO: return "key store failure";
	case DEVICE_ECORRUPT: return "corrupt device record in the flash";
	case DEVICE_ENOMEM: return "out of memory";
	case DEVICE_ECRYPTO: return "cryptographic failure";
	case DEVICE_EINVAL: return "invalid argument";
	default: return "unknown device error";
	}
}

/* ---- clock ---- */

int64_t dev_host_time(struct device *d)
{
	if (d->cfg.host_time)
		return d->cfg.host_time(d->cfg.host_time_arg);
	return (int64_t)time(NULL);
}

uint32_t dev_now_minutes(struct device *d)
{
	int64_t t = dev_host_time(d) + d->clock_offset - WIRE_EPOCH;

	if (t < 0)
		return 0;
	t /= 60;
	return t > (int64_t)WIRE_TIME_NEVER ? WIRE_TIME_NEVER : (uint32_t)t;
}

/* ---- sessions ---- */

void device_session_init(struct session *s)
{
	memset(s, 0, sizeof(*s));
}

void device_session_end(struct device *d, struct session *s)
{
	dev_session_drop(d, s);
	fw_wipe(s, sizeof(*s));
}

/* A session is live if it has a role and no factory reset came since. */
static int session_live(const struct device *d, const struct session *s)
{
	return s->role != WIRE_ROLE_NONE && s->epoch == d->epoch;
}

void dev_session_drop(struct device *d, struct session *s)
{
	if (session_live(d, s) && d->logged_in > 0 && --d->logged_in == 0) {
		ks_lock(d->ks);
		fw_wipe(d->master, sizeof(d->master));
	}
	s->role = WIRE_ROLE_NONE;
	s->epoch = 0;
	s->seq_next = 0;
	fw_wipe(s->pin_key, sizeof(s->pin_key));
	fw_wipe(s->mac_h2d, sizeof(s->mac_h2d));
	fw_wipe(s->mac_d2h, sizeof(s->mac_d2h));
}

void dev_reply_key_keep(struct device *d, struct request *r)
{
	if (!session_live(d, r->s))
		return;
	memcpy(r->reply_key, r->s->mac_d2h, sizeof(r->reply_key));
	r->has_reply_key = 1;
}

/* ---- the request table ---- */

enum perm {
	PERM_ANY,   /* no session needed */
	PERM_USER,  /* user or admin session */
	PERM_ADMIN, /* admin session */
};

/* Which device states an op runs in. */
#define IN_BLANK  0x1
#define IN_READY  0x2
#define IN_LOCKED 0x4

#ifdef SECUBE_TEST_BACKDOOR
/* Test builds only (tests/robust_secrets.sh): op 200 hands a key value out
 * in the clear (firmware/dev_testreveal.c).  Never defined by the Makefile. */
#define DEV_OP_TEST_REVEAL 200
int dev_op_test_reveal(struct device *d, struct request *r, struct wbuf *resp);
#define DEV_OP_TABLE_LEN (DEV_OP_TEST_REVEAL + 1)
#else
#define DEV_OP_TABLE_LEN (WIRE_OP_MAX + 1)
#endif

struct op_entry {
	dev_handler handler;
	uint32_t min_body;  /* shorter bodies are MALFORMED before the handler runs */
	uint8_t perm;
	uint8_t states;
};

static const struct op_entry op_table[DEV_OP_TABLE_LEN] = {
	[WIRE_OP_HELLO] = { dev_op_hello, 0, PERM_ANY, IN_BLANK | IN_READY | IN_LOCKED },
	[WIRE_OP_FACTORY_INIT] = { dev_op_factory_init, 1 + 32 + 4 + 2, PERM_ANY, IN_BLANK },
	[WIRE_OP_LOGIN] = { dev_op_login, 1 + 32 + 4, PERM_ANY, IN_READY },
	[WIRE_OP_LOGOUT] = { dev_op_logout, 0, PERM_USER, IN_READY },
	[WIRE_OP_SET_PIN] = { dev_op_set_pin, 1 + 4, PERM_USER, IN_READY },
	/* Allowed to anyone once the admin PIN is locked (it exposes nothing:
	 * it erases everything); checked again in the handler. */
	[WIRE_OP_FACTORY_RESET] = { dev_op_factory_reset, 0, PERM_ANY, IN_READY | IN_LOCKED },
	[WIRE_OP_KEY_GENERATE] = { dev_op_key_generate, 14, PERM_ADMIN, IN_READY },
	[WIRE_OP_KEY_DESTROY] = { dev_op_key_destroy, 4, PERM_ADMIN, IN_READY },
	[WIRE_OP_KEY_INFO] = { dev_op_key_info, 4, PERM_USER, IN_READY },
	[WIRE_OP_KEY_LIST] = { dev_op_key_list, 8, PERM_USER, IN_READY },
	[WIRE_OP_KEY_SET_ATTRS] = { dev_op_key_set_attrs, 13, PERM_ADMIN, IN_READY },
	[WIRE_OP_KEY_EXPORT] = { dev_op_key_export, 8, PERM_ADMIN, IN_READY },
	[WIRE_OP_KEY_IMPORT] = { dev_op_key_import, 8, PERM_USER, IN_READY },
	[WIRE_OP_CHANNEL_DERIVE] = { dev_op_channel_derive, 4 + 32 + 4, PERM_ADMIN, IN_READY },
	[WIRE_OP_PASSPHRASE_DERIVE] = { dev_op_passphrase_derive, 4 + 4 + 4 + 1, PERM_ADMIN, IN_READY },
	[WIRE_OP_SEAL] = { dev_op_seal, 4 + 1 + 16 + 4 + 4, PERM_USER, IN_READY },
	[WIRE_OP_OPEN] = { dev_op_open, 4 + 1 + 16 + 4 + 4, PERM_USER, IN_READY },
	[WIRE_OP_SIV_ENCRYPT] = { dev_op_siv_encrypt, 12, PERM_USER, IN_READY },
	[WIRE_OP_SIV_DECRYPT] = { dev_op_siv_decrypt, 12, PERM_USER, IN_READY },
	[WIRE_OP_HMAC] = { dev_op_hmac, 8, PERM_USER, IN_READY },
	[WIRE_OP_RANDOM] = { dev_op_random, 4, PERM_USER, IN_READY },
	[WIRE_OP_DIGEST] = { dev_op_digest, 4, PERM_USER, IN_READY },
	[WIRE_OP_CLOCK_SET] = { dev_op_clock_set, 8, PERM_ADMIN, IN_READY },
	[WIRE_OP_SELFTEST] = { dev_op_selftest, 0, PERM_ANY, IN_BLANK | IN_READY | IN_LOCKED },
	[WIRE_OP_SIV_DECRYPT_BATCH] = { dev_op_siv_decrypt_batch, 8, PERM_USER, IN_READY },
#ifdef SECUBE_TEST_BACKDOOR
	[DEV_OP_TEST_REVEAL] = { dev_op_test_reveal, 1 + 4, PERM_ADMIN, IN_READY },
#endif
};

static unsigned state_bit(int state)
{
	switch (state) {
	case WIRE_DEV_BLANK: return IN_BLANK;
	case WIRE_DEV_READY: return IN_READY;
	default: return IN_LOCKED;
	}
}

/* May this session run this op in this device state?  WIRE_ST_OK or why not. */
static int admit(struct device *d, const struct session *s, const struct op_entry *e)
{
	int state = dev_state(d);
	int live = session_live(d, s);

	if (!(e->states & state_bit(state)))
		return state == WIRE_DEV_LOCKED ? WIRE_ST_LOCKED : WIRE_ST_STATE;
	if (e->perm == PERM_ANY)
		return WIRE_ST_OK;
	if (!live)
		return WIRE_ST_AUTH;
	if (e->perm == PERM_ADMIN && s->role != WIRE_ROLE_ADMIN)
		return WIRE_ST_PERM;
	return WIRE_ST_OK;
}

/* ---- framing ---- */

/* Tag of a frame: HMAC-SHA256(key, header || body) truncated; header and
 * body are contiguous in every frame. */
static int frame_tag(struct device *d, const uint8_t key[32], const uint8_t *frame, size_t body_len,
		     uint8_t tag[WIRE_TAG_LEN])
{
	return dev_frame_tag(d, key, frame, WIRE_HEADER_LEN + body_len, tag);
}

/* Write the header (and the tag if mac_key) around the body already in
 * out + WIRE_HEADER_LEN.  Returns the frame length. */
static size_t finish_reply(struct device *d, uint16_t op, uint32_t status, uint64_t seq,
			   size_t body_len, const uint8_t *mac_key, uint8_t *out)
{
	struct wire_header h = {
		.flags = mac_key ? WIRE_F_MAC : 0, .op = op, .status = status,
		.body_len = (uint32_t)body_len, .seq = seq,
	};
	uint8_t *tag = out + WIRE_HEADER_LEN + body_len;

	wire_header_pack(&h, out);
	if (!mac_key)
		return WIRE_HEADER_LEN + body_len;
	if (frame_tag(d, mac_key, out, body_len, tag) < 0) {
		/* Cannot authenticate: an unMACed INTERNAL the host will reject. */
		h.flags = 0;
		h.status = WIRE_ST_INTERNAL;
		h.body_len = 0;
		wire_header_pack(&h, out);
		return WIRE_HEADER_LEN;
	}
	return WIRE_HEADER_LEN + body_len + WIRE_TAG_LEN;
}

/* An unMACed reply with an empty body. */
static size_t plain_error(struct device *d, uint16_t op, uint32_t status, uint64_t seq, uint8_t *out)
{
	return finish_reply(d, op, status, seq, 0, NULL, out);
}

/*
 * Authenticate the frame against the session.  Returns WIRE_ST_OK when
 * the frame may go on (authenticated, or a frame outside any session),
 * WIRE_ST_AUTH otherwise; a failure ends the session.
 */
static int authenticate(struct device *d, struct session *s, const struct wire_header *h,
			const uint8_t *frame)
{
	uint8_t tag[WIRE_TAG_LEN];
	int ok;

	if (s->role != WIRE_ROLE_NONE && !session_live(d, s))
		dev_session_drop(d, s); /* a factory reset ended it */
	if (s->role == WIRE_ROLE_NONE)
		return (h->flags & WIRE_F_MAC) ? WIRE_ST_AUTH : WIRE_ST_OK;
	/* A plain LOGIN starts over: the old session ends, the PIN decides. */
	if (h->op == WIRE_OP_LOGIN && !(h->flags & WIRE_F_MAC)) {
		dev_session_drop(d, s);
		return WIRE_ST_OK;
	}
	ok = (h->flags & WIRE_F_MAC) &&
	     frame_tag(d, s->mac_h2d, frame, h->body_len, tag) == 0 &&
	     fw_memeq_ct(tag, frame + WIRE_HEADER_LEN + h->body_len, WIRE_TAG_LEN) == 0 &&
	     h->seq == s->seq_next;
	fw_wipe(tag, sizeof(tag));
	if (!ok) {
		dev_session_drop(d, s);
		return WIRE_ST_AUTH;
	}
	s->seq_next++;
	return WIRE_ST_OK;
}

/* Run the op's handler; the response body goes to out + WIRE_HEADER_LEN. */
static int run_op(struct device *d, struct request *r, const struct op_entry *e,
		  uint8_t *out, size_t out_cap, size_t *body_len)
{
	struct wbuf resp;
	int st;

	wbuf_writer(&resp, out + WIRE_HEADER_LEN, out_cap - WIRE_HEADER_LEN - WIRE_TAG_LEN);
	st = admit(d, r->s, e);
	if (st == WIRE_ST_OK)
		st = r->h.body_len < e->min_body ? WIRE_ST_MALFORMED : e->handler(d, r, &resp);
	if (st == WIRE_ST_OK && !wbuf_ok(&resp))
		st = WIRE_ST_INTERNAL; /* out_cap too small for this reply */
	*body_len = (st == WIRE_ST_OK || (r->keep_body && wbuf_ok(&resp))) ? resp.pos : 0;
	if (*body_len == 0)
		fw_wipe(out + WIRE_HEADER_LEN, resp.pos); /* nothing half-written leaves */
	return st;
}

int device_handle(struct device *d, struct session *s, const uint8_t *frame, size_t len,
		  uint8_t *out, size_t out_cap, size_t *out_len)
{
	struct request r;
	const struct op_entry *e;
	const uint8_t *key = NULL;
	size_t body_len = 0;
	uint16_t op;
	int st;

	*out_len = 0;
	if (out_cap < WIRE_HEADER_LEN + WIRE_TAG_LEN + 1)
		return DEVICE_EINVAL;
	memset(&r, 0, sizeof(r));
	r.s = s;
	op = len >= 8 ? wire_rd16(frame + 6) : 0;
	if (len < WIRE_HEADER_LEN || wire_header_parse(frame, &r.h) != WIRE_ST_OK ||
	    len - WIRE_HEADER_LEN != wire_frame_rest(&r.h) || r.h.status != 0) {
		*out_len = plain_error(d, op, WIRE_ST_MALFORMED, len >= WIRE_HEADER_LEN ? wire_rd64(frame + 16) : 0, out);
		return DEVICE_OK;
	}
	st = authenticate(d, s, &r.h, frame);
	if (st != WIRE_ST_OK) {
		*out_len = plain_error(d, op, st, r.h.seq, out);
		return DEVICE_OK;
	}
	e = op < DEV_OP_TABLE_LEN && op_table[op].handler ? &op_table[op] : NULL;
	wbuf_reader(&r.body, frame + WIRE_HEADER_LEN, r.h.body_len);
	st = e ? run_op(d, &r, e, out, out_cap, &body_len) : WIRE_ST_UNKNOWN_OP;
	/* Reply MACed iff a session is live now (LOGIN just made one, or the
	 * request came in one) or the handler kept its key; seq is the request's. */
	if (r.has_reply_key)
		key = r.reply_key;
	else if (session_live(d, s))
		key = s->mac_d2h;
	*out_len = finish_reply(d, op, (uint32_t)st, r.h.seq, body_len, key, out);
	fw_wipe(&r, sizeof(r));
	return DEVICE_OK;
}
