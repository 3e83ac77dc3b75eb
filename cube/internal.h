/*
 * internal.h - internal to cube/ (and its white-box tests): the connection
 * struct, the session layer (session.c) and the error helpers (errors.c).
 *
 * Layers: transport (L0, transport.h) carries frames; the session layer
 * numbers, MACs and checks them and runs LOGIN; api.c (L1) encodes each
 * operation's body with wire/buf.h and decodes the reply.
 */
#ifndef SEKEYFS_CUBE_INTERNAL_H
#define SEKEYFS_CUBE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "cube.h"
#include "transport.h"

#define CUBE_KEY_LEN 32

/* Keys and counters of one authenticated session (wire.h "Sessions"). */
struct cube_session {
	int active;                    /* requests go out MACed */
	int keyed;                     /* keys derived: MACed replies are checked */
	int unmaced_ok;                /* FACTORY_INIT: an unMACed OK is fine too */
	uint8_t role;                  /* enum wire_role */
	uint8_t pin_key[CUBE_KEY_LEN];
	uint8_t mac_h2d[CUBE_KEY_LEN];
	uint8_t mac_d2h[CUBE_KEY_LEN];
	uint64_t seq_tx;               /* seq of the next request */
	uint64_t seq_rx;               /* seq the next response must carry */
	EVP_MAC_CTX *h2d;              /* HMAC keyed with mac_h2d */
	EVP_MAC_CTX *d2h;              /* HMAC keyed with mac_d2h */
};

/* A reply: its header and a borrowed view of its body (inside c->rx). */
struct cube_reply {
	struct wire_header h;
	const uint8_t *body;
	size_t len;
};

struct cube {
	struct cube_transport *t;
	char *dir;                 /* emulated cube: its directory (absolute) */
	char *sd;                  /* emulated cube: dir/sd */
	EVP_MAC *hmac;
	struct cube_session s;
	struct cube_info info;     /* from the last HELLO */
	uint8_t tries[3];          /* tries left per enum wire_role, last known */
	/* Shared memory for bulk data (socket transport), NULL if none. */
	uint8_t *shm;
	size_t shm_size;
	int shm_fd;
	/* Frame buffers: tx holds a request body, rx a whole reply frame. */
	uint8_t *tx;
	uint8_t *rx;
	/* The last request sent (its body is still in tx), for white-box tests. */
	uint8_t last_hdr[WIRE_HEADER_LEN];
	uint8_t last_tag[WIRE_TAG_LEN];
	size_t last_body_len;
	int last_tagged;
	/* A transport failure or session desync ends the connection. */
	int dead;
	int last_errno;
	char errmsg[512];
};

/* errors.c */
/* Record code and a formatted message as the last error of c; returns code. */
int cube_fail(struct cube *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Clear the last error; returns CUBE_OK. */
int cube_ok(struct cube *c);
/* The error code for a device status. */
int cube_status_err(uint32_t status);
/* Copy text into err (if given). */
void cube_set_text(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* session.c */
/* Allocate the buffers and the HMAC method of a connection around t. */
int cube_conn_new(struct cube **out, struct cube_transport *t, char *err, size_t err_cap);
/* Wipe the session keys and counters (logout, desync, close). */
void cube_session_end(struct cube *c);
/* One request/response exchange.  body (body_len bytes, may be c->tx)
 * goes out MACed when a session is active; the reply is checked (op, tag,
 * seq) and its status mapped: CUBE_OK or a CUBE_E* code with cube_errmsg
 * set ("SEAL: no such key").  pass_fd >= 0 rides along (HELLO only).
 * On a transport failure the connection is dead from then on. */
int cube_call(struct cube *c, uint16_t op, uint8_t flags, const uint8_t *body, size_t body_len,
	      int pass_fd, struct cube_reply *r);
/* HELLO: refresh c->info; offer the shared region when offer_shm. */
int cube_hello(struct cube *c, int offer_shm);
/* Set up the shared region (memfd) for a socket transport; 0 or -1. */
int cube_shm_create(struct cube *c);
/* LOGIN or FACTORY_INIT: X25519 with the device key, PIN material sealed
 * under pin_key.  For LOGIN the session starts on success. */
int cube_session_login(struct cube *c, enum wire_role role, const char *pin);
int cube_session_factory_init(struct cube *c, const char *admin_pin, const char *user_pin,
			      unsigned user_max, unsigned admin_max);
/* AES-256-GCM under the session's pin_key, nonce = seq || op || 00 00 of
 * the next request: out gets len + 16 bytes (ct || tag). */
int cube_session_seal_next(struct cube *c, uint16_t op, const uint8_t *in, size_t len, uint8_t *out);

/* White-box test hook: send raw bytes (a whole frame, possibly forged or
 * replayed) on the transport and receive the reply without checking its
 * MAC.  0 or CUBE_ETRANSPORT/CUBE_EPROTO. */
int cube_test_raw_exchange(struct cube *c, const uint8_t *frame, size_t len, struct cube_reply *r);
/* White-box test hook: the bytes of the last request sent (header, body,
 * tag); *len gets the size.  0, or CUBE_EINVAL if cap is too small. */
int cube_test_last_request(const struct cube *c, uint8_t *out, size_t cap, size_t *len);

#endif
