/*
 * dev_internal.h - what the files of the device core share and nothing
 * outside firmware/dev*.c may use: the device struct, one request in
 * flight, and the handlers of the request table (device.c), one file per
 * concern:
 *   dev_session.c  HELLO, FACTORY_INIT, LOGIN, LOGOUT, SET_PIN, FACTORY_RESET
 *   dev_keys.c     KEY_*, CHANNEL_DERIVE, key usage and validity rules
 *   dev_bulk.c     SEAL, OPEN (sector encryption, the hot path), frame tags
 *   dev_misc.c     SIV (single and batched), HMAC, RANDOM, DIGEST, CLOCK_SET, SELFTEST
 */
#ifndef SEKEYFS_DEV_INTERNAL_H
#define SEKEYFS_DEV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>


#include "../wire/buf.h"
#include "../wire/frame.h"
#include "device.h"
#include "keystore.h"

/* A PIN record (meta DEVICE_META_PIN_*): the master key wrapped under
 * PBKDF2(PIN), and the retry counter.  Not secret by itself. */
#define DEV_PIN_SALT 16
#define DEV_PIN_WRAPPED 40 /* KWP of the 32-byte master key */
struct dev_pin {
	int present;
	uint8_t max_tries;
	uint8_t failures;
	uint32_t iterations;
	uint8_t salt[DEV_PIN_SALT];
	uint8_t wrapped[DEV_PIN_WRAPPED];
};

struct device {
	struct keystore *ks;        /* borrowed */
	struct device_config cfg;
	uint8_t serial[WIRE_SERIAL_LEN];
	uint8_t pub[WIRE_PUBKEY_LEN];
	uint8_t priv[32];           /* X25519 identity key: wiped on close */
	uint8_t master[32];         /* key-store master key while someone is logged in */
	unsigned logged_in;         /* sessions with a role, this epoch */
	uint64_t epoch;             /* bumped by FACTORY_RESET: older sessions are dead */
	int64_t clock_offset;       /* seconds added to the host clock (CLOCK_SET) */
	uint8_t *nonces;            /* WIRE_MAX_SECTORS nonces: one DRBG call per SEAL */
	uint32_t *bad;              /* WIRE_MAX_SECTORS bad sector positions of an OPEN */
	struct dev_pin pins[3];     /* cached PIN records, indexed by enum wire_role */
	struct fw_hmac *hmac;       /* HMAC looked up once: frame tags, CTR+HMAC sectors */
};

/* One request being handled. */
struct request {
	struct wire_header h;
	struct wbuf body;      /* reader over the request body */
	struct session *s;
	int keep_body;         /* an error status whose body means something (PIN) */
	/* MAC the reply with this key even if no session is live after the
	 * handler (LOGIN with a wrong PIN, LOGOUT, FACTORY_RESET). */
	int has_reply_key;
	uint8_t reply_key[32];
};
/* Reply to r under the session's current d2h key, whatever happens to the
 * session in the handler.  No-op without a live session. */
void dev_reply_key_keep(struct device *d, struct request *r);

/* A handler parses r->body to the end (wbuf_done, else MALFORMED), does
 * the work and writes the response body into resp; returns a WIRE_ST_*. */
typedef int (*dev_handler)(struct device *d, struct request *r, struct wbuf *resp);

/* dev_session.c */
int dev_op_hello(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_factory_init(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_login(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_logout(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_set_pin(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_factory_reset(struct device *d, struct request *r, struct wbuf *resp);
/* enum wire_dev_state from the PIN records. */
int dev_state(struct device *d);
/* Read both PIN records into d->pins (device_open). */
int dev_pins_load(struct device *d);
/* Forget a session's keys and role (and lock the store after the last). */
void dev_session_drop(struct device *d, struct session *s);

/* dev_keys.c */
int dev_op_key_generate(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_key_destroy(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_key_info(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_key_list(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_key_set_attrs(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_key_export(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_key_import(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_channel_derive(struct device *d, struct request *r, struct wbuf *resp);
/* Load key id and check it may do `need` (WIRE_USE_* bits); encrypting
 * directions also check the validity window.  Returns WIRE_ST_OK (k
 * filled; the caller wipes it) or NOKEY/USAGE/EXPIRED/INTERNAL (k wiped). */
int dev_key_use(struct device *d, uint32_t id, uint8_t need, int encrypting, struct ks_key *k);
/* WIRE_ST_* for a KS_E* code. */
int dev_ks_status(int ks_err);

/* dev_bulk.c */
int dev_op_seal(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_open(struct device *d, struct request *r, struct wbuf *resp);

/* dev_misc.c */
int dev_op_siv_encrypt(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_siv_decrypt(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_siv_decrypt_batch(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_hmac(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_random(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_digest(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_clock_set(struct device *d, struct request *r, struct wbuf *resp);
int dev_op_selftest(struct device *d, struct request *r, struct wbuf *resp);

/* dev_bulk.c: HMAC-SHA256(key, data)[0..16) with the device's fetched
 * HMAC (the frame tag of every request and reply).  0 or -1. */
int dev_frame_tag(struct device *d, const uint8_t key[32], const uint8_t *data, size_t len,
		  uint8_t tag[WIRE_TAG_LEN]);

/* device.c */
/* The device clock in minutes since WIRE_EPOCH, clamped to 24 bits. */
uint32_t dev_now_minutes(struct device *d);
int64_t dev_host_time(struct device *d);

#endif
