/*
 * test_firmware_device.c - the cube's request handler driven in-process:
 * a small host-side frame builder (X25519 session, MACed frames, sealed
 * PINs, through fwcrypto) plays the host against device_handle().
 *
 * Covers: factory init; login right / wrong / locked, and the lock
 * surviving a re-open; admin lock leaving only an unauthenticated factory
 * reset; permissions per role; key usage (wrap keys cannot seal, data keys
 * cannot wrap, non-exportable keys stay, import needs an unwrap key);
 * validity windows (expired keys open but do not seal); SEAL/OPEN inline
 * and in shared memory for every algorithm, with tampering; bad MACs,
 * replays and malformed frames; destroy; factory reset; a channel between
 * two cubes carrying a key from one to the other; SIV_DECRYPT_BATCH
 * (per-item failures, count and length caps, key usage).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "firmware/device.h"
#include "firmware/fwcrypto.h"
#include "firmware/keystore.h"
#include "wire/buf.h"
#include "wire/frame.h"

static char base_dir[] = "/tmp/test_fw_device.XXXXXX";

/* ---- the rig: one cube in a temp dir, one host connection ---- */

struct rig {
	char path[256];
	struct keystore *ks;
	struct device *d;
	int64_t now;                 /* fake host clock (UNIX seconds) */
	struct session s;            /* device side of the connection */
	/* host side */
	uint8_t dev_pub[32];
	uint8_t pin_key[32], mac_h2d[32], mac_d2h[32];
	int mac;
	uint64_t seq;
	uint8_t *req, *resp;
	size_t resp_len;
	uint32_t status;
	const uint8_t *body;
	uint32_t body_len;
};

static int64_t fake_time(void *arg)
{
	return ((struct rig *)arg)->now;
}

static void rig_attach(struct rig *r)
{
	struct device_config cfg = { .pbkdf2_iterations = 1000, .host_time = fake_time, .host_time_arg = r };
	uint8_t serial[16];

	ck_assert_int_eq(ks_open(&r->ks, r->path, 1), KS_OK);
	if (device_open(&r->d, r->ks, &cfg) == DEVICE_ENOIDENT) {
		ck_assert_int_eq(device_create_identity(r->ks), DEVICE_OK);
		ck_assert_int_eq(device_open(&r->d, r->ks, &cfg), DEVICE_OK);
	}
	ck_assert_ptr_nonnull(r->d);
	device_identity(r->d, serial, r->dev_pub);
	device_session_init(&r->s);
	r->mac = 0;
	r->seq = 0;
}

static void rig_detach(struct rig *r)
{
	device_session_end(r->d, &r->s);
	device_close(r->d);
	ks_close(r->ks);
	r->d = NULL;
	r->ks = NULL;
}

static struct rig *rig_new(const char *name)
{
	struct rig *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	snprintf(r->path, sizeof(r->path), "%s/%s.img", base_dir, name);
	r->now = WIRE_EPOCH + 86400 * 400; /* early 2025 */
	r->req = malloc(DEVICE_FRAME_MAX);
	r->resp = malloc(DEVICE_FRAME_MAX);
	ck_assert(r->req && r->resp);
	rig_attach(r);
	return r;
}

static void rig_free(struct rig *r)
{
	rig_detach(r);
	free(r->req);
	free(r->resp);
	free(r);
}

/* Send a raw frame; parse and check the reply.  Returns its status. */
static uint32_t send_raw(struct rig *r, const uint8_t *frame, size_t len)
{
	struct wire_header h;
	uint8_t mac[32];

	ck_assert_int_eq(device_handle(r->d, &r->s, frame, len, r->resp, DEVICE_FRAME_MAX, &r->resp_len), DEVICE_OK);
	ck_assert_uint_ge(r->resp_len, WIRE_HEADER_LEN);
	ck_assert_int_eq(wire_header_parse(r->resp, &h), WIRE_ST_OK);
	ck_assert_uint_eq(r->resp_len, WIRE_HEADER_LEN + wire_frame_rest(&h));
	r->status = h.status;
	r->body = r->resp + WIRE_HEADER_LEN;
	r->body_len = h.body_len;
	if (h.flags & WIRE_F_MAC) {
		ck_assert_int_eq(fw_hmac_sha256(r->mac_d2h, 32, r->resp, WIRE_HEADER_LEN + h.body_len,
						NULL, 0, NULL, 0, NULL, 0, mac), 0);
		ck_assert_int_eq(memcmp(mac, r->resp + WIRE_HEADER_LEN + h.body_len, 16), 0);
	}
	return h.status;
}

/* Build a frame for op with body (MACed in a session) and send it. */
static uint32_t call_flags(struct rig *r, uint16_t op, uint8_t flags, const uint8_t *body, size_t len)
{
	struct wire_header h = { .flags = flags, .op = op, .body_len = (uint32_t)len, .seq = r->seq };
	uint8_t mac[32];
	size_t n = WIRE_HEADER_LEN + len;
	uint32_t st;

	if (r->mac)
		h.flags |= WIRE_F_MAC;
	wire_header_pack(&h, r->req);
	if (len)
		memcpy(r->req + WIRE_HEADER_LEN, body, len);
	if (r->mac) {
		ck_assert_int_eq(fw_hmac_sha256(r->mac_h2d, 32, r->req, n, NULL, 0, NULL, 0, NULL, 0, mac), 0);
		memcpy(r->req + n, mac, 16);
		n += 16;
	}
	st = send_raw(r, r->req, n);
	if (r->mac) {
		r->seq++;
		if (st == WIRE_ST_AUTH)
			r->mac = 0;
	}
	return st;
}

static uint32_t call(struct rig *r, uint16_t op, const uint8_t *body, size_t len)
{
	return call_flags(r, op, 0, body, len);
}

/* Fresh session keys toward the device; eph gets the public half. */
static void host_derive(struct rig *r, uint8_t eph[32])
{
	uint8_t priv[32], shared[32], info[64], keys[96];

	ck_assert_int_eq(fw_x25519_keygen(priv, eph), 0);
	ck_assert_int_eq(fw_x25519(priv, r->dev_pub, shared), 0);
	memcpy(info, eph, 32);
	memcpy(info + 32, r->dev_pub, 32);
	ck_assert_int_eq(fw_hkdf_sha256((const uint8_t *)"secube-session-v1", 17, shared, 32, info, 64,
					keys, 96), 0);
	memcpy(r->pin_key, keys, 32);
	memcpy(r->mac_h2d, keys + 32, 32);
	memcpy(r->mac_d2h, keys + 64, 32);
}

static size_t seal_secret(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *in, size_t len,
			  uint8_t *out)
{
	ck_assert_int_eq(fw_gcm_seal(key, 32, nonce, NULL, 0, in, len, out, out + len), 0);
	return len + 16;
}

static uint32_t factory_init(struct rig *r, const char *admin, const char *user, uint8_t umax, uint8_t amax)
{
	static const uint8_t zero[12];
	uint8_t eph[32], plain[200], sealed[220], body[300];
	size_t na = strlen(admin), nu = strlen(user), n = 0;
	struct wbuf b;

	plain[n++] = (uint8_t)na;
	memcpy(plain + n, admin, na), n += na;
	plain[n++] = (uint8_t)nu;
	memcpy(plain + n, user, nu), n += nu;
	host_derive(r, eph);
	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u8(&b, 0);
	wbuf_put_bytes(&b, eph, 32);
	wbuf_put_lenbytes(&b, sealed, (uint32_t)seal_secret(r->pin_key, zero, plain, n, sealed));
	wbuf_put_u8(&b, umax);
	wbuf_put_u8(&b, amax);
	ck_assert(wbuf_ok(&b));
	return call(r, WIRE_OP_FACTORY_INIT, body, b.pos);
}

static uint32_t login(struct rig *r, uint8_t role, const char *pin)
{
	static const uint8_t zero[12];
	uint8_t eph[32], sealed[100], body[200];
	struct wbuf b;
	uint32_t st;

	r->mac = 0;
	r->seq = 0;
	host_derive(r, eph);
	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u8(&b, role);
	wbuf_put_bytes(&b, eph, 32);
	wbuf_put_lenbytes(&b, sealed, (uint32_t)seal_secret(r->pin_key, zero, (const uint8_t *)pin,
							    strlen(pin), sealed));
	st = call(r, WIRE_OP_LOGIN, body, b.pos);
	ck_assert(st == WIRE_ST_OK ? (r->resp[5] & WIRE_F_MAC) != 0 : 1);
	if (st == WIRE_ST_OK) {
		r->mac = 1;
		r->seq = 1;
	}
	return st;
}

static uint32_t set_pin(struct rig *r, uint8_t role, const char *pin)
{
	uint8_t nonce[12] = { 0 }, plain[70], sealed[100], body[120];
	size_t n = strlen(pin);
	struct wbuf b;

	plain[0] = (uint8_t)n;
	memcpy(plain + 1, pin, n);
	wire_le64(nonce, r->seq);
	wire_le16(nonce + 8, WIRE_OP_SET_PIN);
	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u8(&b, role);
	wbuf_put_lenbytes(&b, sealed, (uint32_t)seal_secret(r->pin_key, nonce, plain, n + 1, sealed));
	return call(r, WIRE_OP_SET_PIN, body, b.pos);
}

static void ready(struct rig *r)
{
	ck_assert_uint_eq(factory_init(r, "admin-pin", "user-pin", 0, 0), WIRE_ST_OK);
}

static uint32_t keygen(struct rig *r, uint32_t id, uint8_t alg, uint8_t usage, uint32_t nb, uint32_t na)
{
	uint8_t body[14];

	wire_le32(body, id);
	body[4] = alg;
	body[5] = usage;
	wire_le32(body + 6, nb);
	wire_le32(body + 10, na);
	return call(r, WIRE_OP_KEY_GENERATE, body, sizeof(body));
}

static uint32_t call_id(struct rig *r, uint16_t op, uint32_t id)
{
	uint8_t body[4];

	wire_le32(body, id);
	return call(r, op, body, 4);
}

static uint32_t call_2ids(struct rig *r, uint16_t op, uint32_t a, uint32_t b)
{
	uint8_t body[8];

	wire_le32(body, a);
	wire_le32(body + 4, b);
	return call(r, op, body, 8);
}

static uint8_t hello_byte(struct rig *r, size_t off)
{
	ck_assert_uint_eq(call(r, WIRE_OP_HELLO, NULL, 0), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 16 + 32 + 4 + 4 + 4 + 4 + 4 + 4);
	return r->body[off];
}
#define HELLO_STATE 52
#define HELLO_ROLE 53
#define HELLO_USER_TRIES 54
#define HELLO_ADMIN_TRIES 55

/* ---- SEAL / OPEN helpers ---- */

static const uint8_t file_id[16] = "file-id-0123456";

/* Body of a SEAL/OPEN over n sectors of len bytes, indexes 7, 8, ... */
static size_t bulk_body(uint8_t *body, uint32_t key, uint8_t alg, uint32_t n, uint32_t len,
			const uint8_t *data, size_t data_len, int shm, uint32_t in_off, uint32_t out_off)
{
	struct wbuf b;
	uint32_t i;

	wbuf_writer(&b, body, DEVICE_FRAME_MAX);
	wbuf_put_u32(&b, key);
	wbuf_put_u8(&b, alg);
	wbuf_put_bytes(&b, file_id, 16);
	wbuf_put_u32(&b, n);
	for (i = 0; i < n; i++) {
		wbuf_put_u64(&b, 7 + i);
		wbuf_put_u32(&b, len);
	}
	if (shm) {
		wbuf_put_u32(&b, in_off);
		wbuf_put_u32(&b, out_off);
	} else {
		wbuf_put_lenbytes(&b, data, (uint32_t)data_len);
	}
	ck_assert(wbuf_ok(&b));
	return b.pos;
}

/* SEAL inline; sealed gets n * (len + 28) bytes.  Returns the status. */
static uint32_t seal(struct rig *r, uint32_t key, uint8_t alg, uint32_t n, uint32_t len,
		     const uint8_t *plain, uint8_t *sealed)
{
	uint8_t *body = malloc(DEVICE_FRAME_MAX);
	size_t bl = bulk_body(body, key, alg, n, len, plain, (size_t)n * len, 0, 0, 0);
	uint32_t st = call(r, WIRE_OP_SEAL, body, bl);

	free(body);
	if (st == WIRE_ST_OK) {
		ck_assert_uint_eq(r->body_len, 4 + (size_t)n * (len + 28));
		ck_assert_uint_eq(wire_rd32(r->body), (size_t)n * (len + 28));
		memcpy(sealed, r->body + 4, (size_t)n * (len + 28));
	}
	return st;
}

/* OPEN inline; returns the status, *n_bad and bad[] the failures. */
static uint32_t open_(struct rig *r, uint32_t key, uint8_t alg, uint32_t n, uint32_t len,
		      const uint8_t *sealed, uint8_t *plain, uint32_t *n_bad, uint32_t *bad)
{
	uint8_t *body = malloc(DEVICE_FRAME_MAX);
	size_t bl = bulk_body(body, key, alg, n, len, sealed, (size_t)n * (len + 28), 0, 0, 0);
	uint32_t st = call(r, WIRE_OP_OPEN, body, bl), i;

	free(body);
	if (st != WIRE_ST_OK)
		return st;
	*n_bad = wire_rd32(r->body);
	for (i = 0; i < *n_bad; i++)
		bad[i] = wire_rd32(r->body + 4 + 4 * i);
	ck_assert_uint_eq(wire_rd32(r->body + 4 + 4 * *n_bad), (size_t)n * len);
	ck_assert_uint_eq(r->body_len, 8 + 4 * *n_bad + (size_t)n * len);
	memcpy(plain, r->body + 8 + 4 * *n_bad, (size_t)n * len);
	return st;
}

static uint8_t *pattern(size_t n, uint8_t seed)
{
	uint8_t *p = malloc(n);
	size_t i;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
	return p;
}

/* ---- tests ---- */

START_TEST(init_and_login)
{
	struct rig *r = rig_new("init");

	ck_assert_uint_eq(hello_byte(r, HELLO_STATE), WIRE_DEV_BLANK);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_STATE);
	ck_assert_uint_eq(factory_init(r, "ad", "user-pin", 0, 0), WIRE_ST_INVALID); /* PIN too short */
	ready(r);
	ck_assert_uint_eq(factory_init(r, "admin-pin", "user-pin", 0, 0), WIRE_ST_STATE);
	ck_assert_uint_eq(hello_byte(r, HELLO_STATE), WIRE_DEV_READY);
	ck_assert_uint_eq(hello_byte(r, HELLO_USER_TRIES), 5);
	ck_assert_uint_eq(hello_byte(r, HELLO_ADMIN_TRIES), 10);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "wrong-pin"), WIRE_ST_PIN);
	ck_assert_uint_eq(r->body_len, 1);
	ck_assert_uint_eq(r->body[0], 4);
	ck_assert(r->resp[5] & WIRE_F_MAC); /* tries_left is authenticated */
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(hello_byte(r, HELLO_ROLE), WIRE_ROLE_USER);
	ck_assert_uint_eq(hello_byte(r, HELLO_USER_TRIES), 5); /* success resets the count */
	/* The user changes their PIN; the old one stops working. */
	ck_assert_uint_eq(set_pin(r, WIRE_ROLE_USER, "new-user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(set_pin(r, WIRE_ROLE_ADMIN, "new-admin"), WIRE_ST_PERM);
	ck_assert_uint_eq(call(r, WIRE_OP_LOGOUT, NULL, 0), WIRE_ST_OK);
	r->mac = 0;
	ck_assert_uint_eq(hello_byte(r, HELLO_ROLE), WIRE_ROLE_NONE);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_PIN);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "new-user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(call(r, WIRE_OP_SELFTEST, NULL, 0), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), 0);
	rig_free(r);
}
END_TEST

START_TEST(lockout_persists)
{
	struct rig *r = rig_new("lock");
	int i;

	ck_assert_uint_eq(factory_init(r, "admin-pin", "user-pin", 3, 2), WIRE_ST_OK);
	for (i = 2; i >= 0; i--) {
		ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "bad-pin"), WIRE_ST_PIN);
		ck_assert_uint_eq(r->body[0], (unsigned)i);
	}
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_LOCKED);
	/* A power cycle does not unlock. */
	rig_detach(r);
	rig_attach(r);
	ck_assert_uint_eq(hello_byte(r, HELLO_USER_TRIES), 0);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_LOCKED);
	/* The admin sets a new user PIN, which clears the lock. */
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(set_pin(r, WIRE_ROLE_USER, "fresh-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "fresh-pin"), WIRE_ST_OK);
	/* Admin lockout: the device is LOCKED, only an unauthenticated reset works. */
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "bad-admin"), WIRE_ST_PIN);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "bad-admin"), WIRE_ST_PIN);
	ck_assert_uint_eq(r->body[0], 0);
	rig_detach(r);
	rig_attach(r);
	ck_assert_uint_eq(hello_byte(r, HELLO_STATE), WIRE_DEV_LOCKED);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "fresh-pin"), WIRE_ST_LOCKED);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_LOCKED);
	ck_assert_uint_eq(call(r, WIRE_OP_FACTORY_RESET, NULL, 0), WIRE_ST_OK);
	ck_assert_uint_eq(hello_byte(r, HELLO_STATE), WIRE_DEV_BLANK);
	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_INFO, 1), WIRE_ST_NOKEY); /* wiped */
	rig_free(r);
}
END_TEST

START_TEST(permissions)
{
	struct rig *r = rig_new("perm");

	ready(r);
	/* No session: only HELLO, LOGIN, FACTORY_INIT, SELFTEST. */
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_INFO, 1), WIRE_ST_AUTH);
	ck_assert_uint_eq(call(r, WIRE_OP_FACTORY_RESET, NULL, 0), WIRE_ST_AUTH);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_PERM);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_DESTROY, 1), WIRE_ST_PERM);
	ck_assert_uint_eq(call(r, WIRE_OP_FACTORY_RESET, NULL, 0), WIRE_ST_PERM);
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_EXPORT, 1, 2), WIRE_ST_PERM);
	ck_assert_uint_eq(call(r, WIRE_OP_CLOCK_SET, (const uint8_t *)"\0\0\0\0\0\0\0\0", 8), WIRE_ST_PERM);
	/* ...but user ops work. */
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 64), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 68);
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, WIRE_RANDOM_MAX + 1), WIRE_ST_INVALID);
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_LIST, 0, 10), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), 0);
	rig_free(r);
}
END_TEST

START_TEST(key_usage)
{
	struct rig *r = rig_new("usage");
	uint8_t plain[64] = "data", sealed[2 * 92], blob_body[200];
	const uint8_t use_data = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT;
	struct wbuf b;

	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_KW, WIRE_USE_WRAP | WIRE_USE_UNWRAP, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_KW, WIRE_USE_WRAP, 0, WIRE_TIME_NEVER), WIRE_ST_EXISTS);
	ck_assert_uint_eq(keygen(r, 2, WIRE_ALG_AES256_GCM, use_data | WIRE_USE_EXPORTABLE, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 3, WIRE_ALG_AES256_GCM, use_data, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	/* Mixing data and wrap usage, bits foreign to the alg, bad windows, bad algs. */
	ck_assert_uint_eq(keygen(r, 4, WIRE_ALG_AES256_KW, WIRE_USE_WRAP | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_INVALID);
	ck_assert_uint_eq(keygen(r, 4, WIRE_ALG_AES256_GCM, WIRE_USE_WRAP, 0, WIRE_TIME_NEVER), WIRE_ST_INVALID);
	ck_assert_uint_eq(keygen(r, 4, WIRE_ALG_AES256_GCM, use_data, 10, 5), WIRE_ST_INVALID);
	ck_assert_uint_eq(keygen(r, 4, 99, use_data, 0, WIRE_TIME_NEVER), WIRE_ST_INVALID);
	ck_assert_uint_eq(keygen(r, 4, WIRE_ALG_AES256_GCM, 0x80, 0, WIRE_TIME_NEVER), WIRE_ST_INVALID);
	/* A wrap key cannot seal; a data key cannot wrap. */
	ck_assert_uint_eq(seal(r, 1, WIRE_ALG_AES256_KW, 1, 64, plain, sealed), WIRE_ST_USAGE);
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_EXPORT, 3, 2), WIRE_ST_USAGE);
	/* Non-exportable keys stay; exportable ones leave wrapped. */
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_EXPORT, 1, 3), WIRE_ST_USAGE);
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_EXPORT, 1, 2), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 4 + 56); /* KWP of 14 + 32 bytes */
	/* Import only under an UNWRAP key. */
	wbuf_writer(&b, blob_body, sizeof(blob_body));
	wbuf_put_u32(&b, 3);
	wbuf_put_bytes(&b, r->body, r->body_len);
	ck_assert_uint_eq(call(r, WIRE_OP_KEY_IMPORT, blob_body, b.pos), WIRE_ST_USAGE);
	wire_le32(blob_body, 1);
	ck_assert_uint_eq(call(r, WIRE_OP_KEY_IMPORT, blob_body, b.pos), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), 2);
	blob_body[10] ^= 1; /* a damaged blob */
	ck_assert_uint_eq(call(r, WIRE_OP_KEY_IMPORT, blob_body, b.pos), WIRE_ST_INTEGRITY);
	/* Usage only loses bits. */
	{
		uint8_t body[13];

		wire_le32(body, 2);
		body[4] = WIRE_USE_DECRYPT;
		wire_le32(body + 5, 0);
		wire_le32(body + 9, WIRE_TIME_NEVER);
		ck_assert_uint_eq(call(r, WIRE_OP_KEY_SET_ATTRS, body, 13), WIRE_ST_OK);
		ck_assert_uint_eq(seal(r, 2, WIRE_ALG_AES256_GCM, 1, 64, plain, sealed), WIRE_ST_USAGE);
		body[4] = WIRE_USE_DECRYPT | WIRE_USE_ENCRYPT;
		ck_assert_uint_eq(call(r, WIRE_OP_KEY_SET_ATTRS, body, 13), WIRE_ST_INVALID);
	}
	/* HMAC needs MAC usage; an HMAC key does. */
	ck_assert_uint_eq(keygen(r, 5, WIRE_ALG_HMAC_SHA256, WIRE_USE_MAC, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	{
		uint8_t body[12] = { 0 };

		wire_le32(body, 3);
		wire_le32(body + 4, 4);
		memcpy(body + 8, "abcd", 4);
		ck_assert_uint_eq(call(r, WIRE_OP_HMAC, body, 12), WIRE_ST_USAGE);
		wire_le32(body, 5);
		ck_assert_uint_eq(call(r, WIRE_OP_HMAC, body, 12), WIRE_ST_OK);
		ck_assert_uint_eq(r->body_len, 32);
	}
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_LIST, 0, 100), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), 4);
	ck_assert_uint_eq(r->body_len, 4 + 4 * 14);
	rig_free(r);
}
END_TEST

START_TEST(validity_window)
{
	struct rig *r = rig_new("expiry");
	uint8_t plain[100] = "valid", sealed[128], back[128];
	uint32_t n_bad, bad[1], now_min;

	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	now_min = (uint32_t)((r->now - WIRE_EPOCH) / 60);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, now_min + 60), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 2, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, now_min + 10, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(seal(r, 1, WIRE_ALG_AES256_GCM, 1, 100, plain, sealed), WIRE_ST_OK);
	ck_assert_uint_eq(seal(r, 2, WIRE_ALG_AES256_GCM, 1, 100, plain, sealed + 0), WIRE_ST_EXPIRED); /* not yet */
	ck_assert_uint_eq(seal(r, 1, WIRE_ALG_AES256_GCM, 1, 100, plain, sealed), WIRE_ST_OK);
	/* Two hours later the key has expired: it still opens. */
	r->now += 7200;
	ck_assert_uint_eq(seal(r, 1, WIRE_ALG_AES256_GCM, 1, 100, plain, back), WIRE_ST_EXPIRED);
	ck_assert_uint_eq(open_(r, 1, WIRE_ALG_AES256_GCM, 1, 100, sealed, back, &n_bad, bad), WIRE_ST_OK);
	ck_assert_uint_eq(n_bad, 0);
	ck_assert_int_eq(memcmp(back, plain, 100), 0);
	/* CLOCK_SET moves the device clock back: the key seals again. */
	{
		uint8_t body[8];

		wire_le64(body, (uint64_t)(r->now - 7200));
		ck_assert_uint_eq(call(r, WIRE_OP_CLOCK_SET, body, 8), WIRE_ST_OK);
		ck_assert_uint_eq(seal(r, 1, WIRE_ALG_AES256_GCM, 1, 100, plain, back), WIRE_ST_OK);
		wire_le64(body, 12345); /* before the epoch */
		ck_assert_uint_eq(call(r, WIRE_OP_CLOCK_SET, body, 8), WIRE_ST_INVALID);
	}
	/* The offset persists. */
	rig_detach(r);
	rig_attach(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(seal(r, 1, WIRE_ALG_AES256_GCM, 1, 100, plain, back), WIRE_ST_OK);
	rig_free(r);
}
END_TEST

/* Seal and open n sectors of len with alg; tamper with sector 1. */
static void roundtrip(struct rig *r, uint32_t key, uint8_t alg, uint32_t n, uint32_t len)
{
	size_t sl = (size_t)n * (len + 28);
	uint8_t *plain = pattern((size_t)n * len, (uint8_t)key), *sealed = malloc(sl), *back = malloc((size_t)n * len + 1);
	uint32_t n_bad = 0, bad[8], i;

	ck_assert_uint_eq(seal(r, key, alg, n, len, plain, sealed), WIRE_ST_OK);
	ck_assert_uint_eq(open_(r, key, alg, n, len, sealed, back, &n_bad, bad), WIRE_ST_OK);
	ck_assert_uint_eq(n_bad, 0);
	ck_assert_int_eq(memcmp(back, plain, (size_t)n * len), 0);
	/* Nonces are fresh: two seals differ. */
	{
		uint8_t *again = malloc(sl);

		ck_assert_uint_eq(seal(r, key, alg, n, len, plain, again), WIRE_ST_OK);
		ck_assert_int_ne(memcmp(again, sealed, 12), 0);
		free(again);
	}
	/* A wrong alg in the request is refused. */
	ck_assert_uint_eq(open_(r, key, alg == WIRE_ALG_AES256_GCM ? WIRE_ALG_AES128_GCM : WIRE_ALG_AES256_GCM,
				n, len, sealed, back, &n_bad, bad), WIRE_ST_INVALID);
	if (n >= 3) {
		sealed[(len + 28) + 12 + len / 2] ^= 0x40; /* sector 1's ciphertext */
		sealed[2 * (len + 28) + 12 + len] ^= 0x01;  /* sector 2's tag */
		ck_assert_uint_eq(open_(r, key, alg, n, len, sealed, back, &n_bad, bad), WIRE_ST_OK);
		ck_assert_uint_eq(n_bad, 2);
		ck_assert_uint_eq(bad[0], 1);
		ck_assert_uint_eq(bad[1], 2);
		ck_assert_int_eq(memcmp(back, plain, len), 0);
		for (i = len; i < 3 * len; i++)
			ck_assert_uint_eq(back[i], 0); /* bad sectors read as zeros */
		ck_assert_int_eq(memcmp(back + 3 * len, plain + 3 * len, (size_t)(n - 3) * len), 0);
	}
	free(plain);
	free(sealed);
	free(back);
}

START_TEST(seal_open_inline)
{
	struct rig *r = rig_new("seal");
	const uint8_t use = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT;

	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 10, WIRE_ALG_AES256_GCM, use, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 11, WIRE_ALG_AES256_CTR_HMAC, use, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 12, WIRE_ALG_AES128_GCM, use, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	roundtrip(r, 10, WIRE_ALG_AES256_GCM, 8, 4096);
	roundtrip(r, 11, WIRE_ALG_AES256_CTR_HMAC, 8, 4096);
	roundtrip(r, 12, WIRE_ALG_AES128_GCM, 8, 4096);
	roundtrip(r, 10, WIRE_ALG_AES256_GCM, 256, 4096); /* the full 1 MiB */
	roundtrip(r, 11, WIRE_ALG_AES256_CTR_HMAC, 4, 1);
	roundtrip(r, 10, WIRE_ALG_AES256_GCM, 1, 0);
	roundtrip(r, 10, WIRE_ALG_AES256_GCM, 1, 65536);
	/* Over the caps, and inconsistent data lengths. */
	{
		uint8_t *body = malloc(DEVICE_FRAME_MAX), *data = calloc(1, 70000);
		size_t bl;

		bl = bulk_body(body, 10, WIRE_ALG_AES256_GCM, 1, 65537, data, 65537, 0, 0, 0);
		ck_assert_uint_eq(call(r, WIRE_OP_SEAL, body, bl), WIRE_ST_INVALID);
		bl = bulk_body(body, 10, WIRE_ALG_AES256_GCM, 2, 100, data, 199, 0, 0, 0);
		ck_assert_uint_eq(call(r, WIRE_OP_SEAL, body, bl), WIRE_ST_INVALID);
		bl = bulk_body(body, 10, WIRE_ALG_AES256_GCM, 1, 100, data, 100, 1, 0, 200);
		ck_assert_uint_eq(call_flags(r, WIRE_OP_SEAL, WIRE_F_SHM, body, bl), WIRE_ST_INVALID); /* no shm */
		bl = bulk_body(body, 99, WIRE_ALG_AES256_GCM, 1, 100, data, 100, 0, 0, 0);
		ck_assert_uint_eq(call(r, WIRE_OP_SEAL, body, bl), WIRE_ST_NOKEY);
		wire_le32(body + 21, WIRE_MAX_SECTORS + 1);
		ck_assert_uint_eq(call(r, WIRE_OP_SEAL, body, bl), WIRE_ST_INVALID);
		free(body);
		free(data);
	}
	rig_free(r);
}
END_TEST

START_TEST(seal_open_shm)
{
	struct rig *r = rig_new("shm");
	uint8_t *shm = calloc(1, WIRE_SHM_SIZE), *body = malloc(DEVICE_FRAME_MAX);
	uint8_t *plain = pattern(1u << 20, 3);
	const uint32_t n = 256, len = 4096, out_off = WIRE_SHM_SIZE / 2;
	size_t bl, sl = (size_t)n * (len + 28);

	ready(r);
	r->s.shm = shm;
	r->s.shm_size = WIRE_SHM_SIZE;
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(hello_byte(r, 56), 1); /* shm_ok */
	ck_assert_uint_eq(keygen(r, 7, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	memcpy(shm, plain, (size_t)n * len);
	bl = bulk_body(body, 7, WIRE_ALG_AES256_GCM, n, len, NULL, 0, 1, 0, out_off);
	ck_assert_uint_eq(call_flags(r, WIRE_OP_SEAL, WIRE_F_SHM, body, bl), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 0);
	/* Open from the sealed half into the first half. */
	memset(shm, 0, (size_t)n * len);
	shm[out_off + 5 * (len + 28) + 40] ^= 1;
	bl = bulk_body(body, 7, WIRE_ALG_AES256_GCM, n, len, NULL, 0, 1, out_off, 0);
	ck_assert_uint_eq(call_flags(r, WIRE_OP_OPEN, WIRE_F_SHM, body, bl), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 8);
	ck_assert_uint_eq(wire_rd32(r->body), 1);
	ck_assert_uint_eq(wire_rd32(r->body + 4), 5);
	ck_assert_int_eq(memcmp(shm, plain, 5 * len), 0);
	ck_assert_int_eq(memcmp(shm + 6 * len, plain + 6 * len, (size_t)(n - 6) * len), 0);
	/* Offsets outside the region, wrapping, or overlapping are refused. */
	bl = bulk_body(body, 7, WIRE_ALG_AES256_GCM, n, len, NULL, 0, 1, WIRE_SHM_SIZE - 10, 0);
	ck_assert_uint_eq(call_flags(r, WIRE_OP_SEAL, WIRE_F_SHM, body, bl), WIRE_ST_INVALID);
	bl = bulk_body(body, 7, WIRE_ALG_AES256_GCM, n, len, NULL, 0, 1, 0, UINT32_MAX);
	ck_assert_uint_eq(call_flags(r, WIRE_OP_SEAL, WIRE_F_SHM, body, bl), WIRE_ST_INVALID);
	bl = bulk_body(body, 7, WIRE_ALG_AES256_GCM, n, len, NULL, 0, 1, 0, 4096);
	ck_assert_uint_eq(call_flags(r, WIRE_OP_SEAL, WIRE_F_SHM, body, bl), WIRE_ST_INVALID);
	ck_assert(sl < out_off);
	free(shm);
	free(body);
	free(plain);
	r->s.shm = NULL;
	r->s.shm_size = 0;
	rig_free(r);
}
END_TEST

START_TEST(auth_failures)
{
	struct rig *r = rig_new("auth");
	uint8_t frame[64];
	size_t n;

	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 16), WIRE_ST_OK);
	/* A replay of the last frame (same seq, valid tag). */
	n = WIRE_HEADER_LEN + 4 + 16;
	memcpy(frame, r->req, n);
	ck_assert_uint_eq(send_raw(r, frame, n), WIRE_ST_AUTH);
	ck_assert(!(r->resp[5] & WIRE_F_MAC));
	/* The session is gone: even a correct next frame is refused. */
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 16), WIRE_ST_AUTH);
	/* A flipped tag bit. */
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 16), WIRE_ST_OK);
	{
		struct wire_header h = { .flags = WIRE_F_MAC, .op = WIRE_OP_RANDOM, .body_len = 4, .seq = r->seq };
		uint8_t mac[32];

		wire_header_pack(&h, frame);
		wire_le32(frame + WIRE_HEADER_LEN, 16);
		fw_hmac_sha256(r->mac_h2d, 32, frame, WIRE_HEADER_LEN + 4, NULL, 0, NULL, 0, NULL, 0, mac);
		memcpy(frame + WIRE_HEADER_LEN + 4, mac, 16);
		frame[WIRE_HEADER_LEN + 4 + 3] ^= 0x10;
		ck_assert_uint_eq(send_raw(r, frame, n), WIRE_ST_AUTH);
	}
	/* An unMACed frame inside a session. */
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	r->mac = 0;
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 16), WIRE_ST_AUTH);
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 16), WIRE_ST_AUTH);
	/* A MACed frame without a session. */
	r->mac = 1;
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 16), WIRE_ST_AUTH);
	/* A sealed PIN under the wrong key. */
	{
		static const uint8_t zero[12];
		uint8_t eph[32], sealed[40], body[100], other[32];
		struct wbuf b;

		host_derive(r, eph);
		memset(other, 7, 32);
		wbuf_writer(&b, body, sizeof(body));
		wbuf_put_u8(&b, WIRE_ROLE_USER);
		wbuf_put_bytes(&b, eph, 32);
		wbuf_put_lenbytes(&b, sealed, (uint32_t)seal_secret(other, zero, (const uint8_t *)"user-pin", 8, sealed));
		r->mac = 0;
		ck_assert_uint_eq(call(r, WIRE_OP_LOGIN, body, b.pos), WIRE_ST_INTEGRITY);
		ck_assert_uint_eq(hello_byte(r, HELLO_USER_TRIES), 5); /* no try was spent */
	}
	rig_free(r);
}
END_TEST

START_TEST(malformed_frames)
{
	struct rig *r = rig_new("malformed");
	struct wire_header h = { .op = WIRE_OP_HELLO };
	uint8_t frame[64] = { 0 };

	/* Truncated header, bad magic, trailing bytes, huge and short lengths. */
	ck_assert_uint_eq(send_raw(r, frame, 0), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(send_raw(r, frame, 10), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN), WIRE_ST_MALFORMED);
	wire_header_pack(&h, frame);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN), WIRE_ST_OK);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN + 1), WIRE_ST_MALFORMED);
	h.body_len = 4;
	wire_header_pack(&h, frame);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN + 2), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN + 4), WIRE_ST_MALFORMED); /* HELLO body must be empty */
	wire_le32(frame + 12, 0xffffffffu);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN + 4), WIRE_ST_MALFORMED);
	wire_le32(frame + 12, WIRE_MAX_BODY + 1);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN + 4), WIRE_ST_MALFORMED);
	h.body_len = 0;
	h.flags = 0x80;
	wire_header_pack(&h, frame);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN), WIRE_ST_MALFORMED);
	h.flags = 0;
	h.status = 1;
	wire_header_pack(&h, frame);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN), WIRE_ST_MALFORMED);
	h.status = 0;
	h.op = 999;
	wire_header_pack(&h, frame);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN), WIRE_ST_UNKNOWN_OP);
	h.op = 7; /* a hole in the table */
	wire_header_pack(&h, frame);
	ck_assert_uint_eq(send_raw(r, frame, WIRE_HEADER_LEN), WIRE_ST_UNKNOWN_OP);
	/* Bodies: short, and with trailing bytes. */
	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(call(r, WIRE_OP_KEY_INFO, (const uint8_t *)"\1\0\0", 3), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(call(r, WIRE_OP_KEY_INFO, (const uint8_t *)"\1\0\0\0\0", 5), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(call(r, WIRE_OP_DIGEST, (const uint8_t *)"\xff\xff\xff\xff", 4), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(call(r, WIRE_OP_DIGEST, (const uint8_t *)"\3\0\0\0abc", 7), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 32);
	ck_assert_uint_eq(r->body[0], 0xba); /* SHA-256("abc") = ba7816bf... */
	/* The session survives malformed bodies (the frame itself was authentic). */
	ck_assert_uint_eq(call_id(r, WIRE_OP_RANDOM, 4), WIRE_ST_OK);
	/* A reply buffer too small for anything. */
	{
		uint8_t tiny[8];
		size_t tl = 99;

		ck_assert_int_eq(device_handle(r->d, &r->s, frame, WIRE_HEADER_LEN, tiny, sizeof(tiny), &tl), DEVICE_EINVAL);
		ck_assert_uint_eq(tl, 0);
	}
	rig_free(r);
}
END_TEST

START_TEST(destroy_and_reset)
{
	struct rig *r = rig_new("destroy");
	uint8_t plain[32] = "x", sealed[60];

	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 5, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(seal(r, 5, WIRE_ALG_AES256_GCM, 1, 32, plain, sealed), WIRE_ST_OK);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_DESTROY, 5), WIRE_ST_OK);
	ck_assert_uint_eq(seal(r, 5, WIRE_ALG_AES256_GCM, 1, 32, plain, sealed), WIRE_ST_NOKEY);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_INFO, 5), WIRE_ST_NOKEY);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_DESTROY, 5), WIRE_ST_NOKEY);
	/* A factory reset wipes keys and PINs; the session ends with it. */
	ck_assert_uint_eq(keygen(r, 6, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(call(r, WIRE_OP_FACTORY_RESET, NULL, 0), WIRE_ST_OK);
	ck_assert(r->resp[5] & WIRE_F_MAC);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_INFO, 6), WIRE_ST_AUTH);
	r->mac = 0;
	ck_assert_uint_eq(hello_byte(r, HELLO_STATE), WIRE_DEV_BLANK);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_STATE);
	ck_assert_uint_eq(factory_init(r, "other-admin", "other-user", 0, 0), WIRE_ST_OK);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_PIN);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "other-admin"), WIRE_ST_OK);
	ck_assert_uint_eq(call_id(r, WIRE_OP_KEY_INFO, 6), WIRE_ST_NOKEY);
	ck_assert_uint_eq(call_2ids(r, WIRE_OP_KEY_LIST, 0, 10), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), 0);
	rig_free(r);
}
END_TEST

static uint32_t channel(struct rig *r, uint32_t id, const uint8_t peer[32])
{
	uint8_t body[4 + 32 + 4 + 5];

	wire_le32(body, id);
	memcpy(body + 4, peer, 32);
	wire_le32(body + 36, 5);
	memcpy(body + 40, "ctx-1", 5);
	return call(r, WIRE_OP_CHANNEL_DERIVE, body, sizeof(body));
}

START_TEST(channel_between_cubes)
{
	struct rig *a = rig_new("cube-a"), *b = rig_new("cube-b");
	const uint32_t n = 4, len = 512;
	uint8_t *plain = pattern(n * len, 9), sealed[4 * (512 + 28)], back[4 * 512], body[200];
	uint32_t n_bad = 9, bad[4];
	struct wbuf w;

	ready(a);
	ready(b);
	ck_assert_uint_eq(login(a, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(login(b, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(channel(a, 100, b->dev_pub), WIRE_ST_OK);
	ck_assert_uint_eq(channel(b, 100, a->dev_pub), WIRE_ST_OK);
	ck_assert_uint_eq(channel(b, 100, a->dev_pub), WIRE_ST_EXISTS);
	/* The channel key is wrap/unwrap only and stays in the cube. */
	ck_assert_uint_eq(call_id(a, WIRE_OP_KEY_INFO, 100), WIRE_ST_OK);
	ck_assert_uint_eq(a->body[4], WIRE_ALG_AES256_KW);
	ck_assert_uint_eq(a->body[5], WIRE_USE_WRAP | WIRE_USE_UNWRAP);
	ck_assert_uint_eq(keygen(a, 100 + 1, WIRE_ALG_AES256_KW, WIRE_USE_WRAP, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(call_2ids(a, WIRE_OP_KEY_EXPORT, 101, 100), WIRE_ST_USAGE);
	/* A seals with a data key, exports it under the channel; B imports and opens. */
	ck_assert_uint_eq(keygen(a, 5, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT | WIRE_USE_EXPORTABLE,
				 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(seal(a, 5, WIRE_ALG_AES256_GCM, n, len, plain, sealed), WIRE_ST_OK);
	ck_assert_uint_eq(call_2ids(a, WIRE_OP_KEY_EXPORT, 100, 5), WIRE_ST_OK);
	wbuf_writer(&w, body, sizeof(body));
	wbuf_put_u32(&w, 100);
	wbuf_put_bytes(&w, a->body, a->body_len);
	ck_assert_uint_eq(login(b, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK); /* import is a user op */
	ck_assert_uint_eq(call(b, WIRE_OP_KEY_IMPORT, body, w.pos), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(b->body), 5);
	ck_assert_uint_eq(open_(b, 5, WIRE_ALG_AES256_GCM, n, len, sealed, back, &n_bad, bad), WIRE_ST_OK);
	ck_assert_uint_eq(n_bad, 0);
	ck_assert_int_eq(memcmp(back, plain, n * len), 0);
	/* SIV on both sides agrees too (deterministic). */
	{
		uint8_t siv[4 + 4 + 3 + 4 + 11];
		uint8_t first[64];

		wire_le32(siv, 5);
		wire_le32(siv + 4, 3);
		memcpy(siv + 8, "dir", 3);
		wire_le32(siv + 11, 11);
		memcpy(siv + 15, "secret.docx", 11);
		ck_assert_uint_eq(call(a, WIRE_OP_SIV_ENCRYPT, siv, sizeof(siv)), WIRE_ST_OK);
		ck_assert_uint_eq(a->body_len, 4 + 27);
		memcpy(first, a->body, a->body_len);
		ck_assert_uint_eq(call(b, WIRE_OP_SIV_ENCRYPT, siv, sizeof(siv)), WIRE_ST_OK);
		ck_assert_int_eq(memcmp(first, b->body, 31), 0);
		{
			uint8_t dec[4 + 4 + 3 + 4 + 27];

			memcpy(dec, siv, 11);
			memcpy(dec + 11, first, 31);
			ck_assert_uint_eq(call(b, WIRE_OP_SIV_DECRYPT, dec, sizeof(dec)), WIRE_ST_OK);
			ck_assert_uint_eq(b->body_len, 4 + 11);
			ck_assert_int_eq(memcmp(b->body + 4, "secret.docx", 11), 0);
			dec[20] ^= 1;
			ck_assert_uint_eq(call(b, WIRE_OP_SIV_DECRYPT, dec, sizeof(dec)), WIRE_ST_INTEGRITY);
		}
	}
	free(plain);
	rig_free(a);
	rig_free(b);
}
END_TEST

/* Import a known key value through a channel with a key pair the test
 * holds, so the test can recompute what the device produces. */
static void import_known(struct rig *r, const uint8_t chan[32], uint32_t id, uint8_t alg, uint8_t usage,
			 const uint8_t *value, size_t len)
{
	uint8_t plain[14 + 32], blob[64], body[100];
	size_t blen = 0;
	struct wbuf b;

	wire_le32(plain, id);
	plain[4] = alg;
	plain[5] = usage;
	wire_le32(plain + 6, 0);
	wire_le32(plain + 10, WIRE_TIME_NEVER);
	memcpy(plain + 14, value, len);
	ck_assert_int_eq(fw_kwp_wrap(chan, 32, plain, 14 + len, blob, sizeof(blob), &blen), 0);
	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u32(&b, 200);
	wbuf_put_lenbytes(&b, blob, (uint32_t)blen);
	ck_assert_uint_eq(call(r, WIRE_OP_KEY_IMPORT, body, b.pos), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), id);
}

/* Check one sealed sector of the documented format independently. */
static void check_sector(uint8_t alg, const uint8_t *key, size_t key_len, uint64_t index,
			 const uint8_t *plain, uint32_t len, const uint8_t *sealed)
{
	uint8_t sub[64], aad[28], iv[16], mac[32], back[256];
	size_t sublen = alg == WIRE_ALG_AES256_CTR_HMAC ? 64 : key_len;

	ck_assert_int_eq(fw_hkdf_sha256((const uint8_t *)"sefile-v1", 9, key, key_len, file_id, 16, sub, sublen), 0);
	memcpy(aad, file_id, 16);
	wire_le64(aad + 16, index);
	wire_le32(aad + 24, len);
	if (alg == WIRE_ALG_AES256_CTR_HMAC) {
		ck_assert_int_eq(fw_hmac_sha256(sub + 32, 32, aad, 28, sealed, 12, sealed + 12, len, NULL, 0, mac), 0);
		ck_assert_int_eq(memcmp(mac, sealed + 12 + len, 16), 0);
		memcpy(iv, sealed, 12);
		memset(iv + 12, 0, 4);
		ck_assert_int_eq(fw_ctr(sub, 32, iv, sealed + 12, len, back), 0);
	} else {
		ck_assert_int_eq(fw_gcm_open(sub, sublen, sealed, aad, 28, sealed + 12, len, sealed + 12 + len, back), 0);
	}
	ck_assert_int_eq(memcmp(back, plain, len), 0);
}

START_TEST(formats_recomputed)
{
	static const uint8_t algs[3] = { WIRE_ALG_AES256_GCM, WIRE_ALG_AES256_CTR_HMAC, WIRE_ALG_AES128_GCM };
	struct rig *r = rig_new("formats");
	uint8_t priv[32], pub[32], shared[32], info[64 + 3], chan[32], key[32], body[64];
	uint8_t plain[300], sealed[3 * 128], siv_key[64], expect[64];
	uint32_t n_bad, bad[3];
	int first_mine, a;

	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_int_eq(fw_x25519_keygen(priv, pub), 0);
	wire_le32(body, 200);
	memcpy(body + 4, pub, 32);
	wire_le32(body + 36, 3);
	memcpy(body + 40, "ctx", 3);
	ck_assert_uint_eq(call(r, WIRE_OP_CHANNEL_DERIVE, body, 43), WIRE_ST_OK);
	/* The channel key as wire.h defines it. */
	ck_assert_int_eq(fw_x25519(priv, r->dev_pub, shared), 0);
	first_mine = memcmp(pub, r->dev_pub, 32) < 0;
	memcpy(info, first_mine ? pub : r->dev_pub, 32);
	memcpy(info + 32, first_mine ? r->dev_pub : pub, 32);
	memcpy(info + 64, "ctx", 3);
	ck_assert_int_eq(fw_hkdf_sha256((const uint8_t *)"secube-channel-v1", 17, shared, 32, info, 67, chan, 32), 0);
	for (a = 0; a < 300; a++)
		plain[a] = (uint8_t)(a * 7);
	for (a = 0; a < 3; a++) {
		size_t klen = algs[a] == WIRE_ALG_AES128_GCM ? 16 : 32;
		uint32_t i;

		memset(key, 0x30 + a, sizeof(key));
		import_known(r, chan, 10 + a, algs[a], WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, key, klen);
		ck_assert_uint_eq(seal(r, 10 + a, algs[a], 3, 100, plain, sealed), WIRE_ST_OK);
		for (i = 0; i < 3; i++)
			check_sector(algs[a], key, klen, 7 + i, plain + 100 * i, 100, sealed + 128 * i);
		/* A sector opens alone too: no state carries between sectors. */
		ck_assert_uint_eq(open_(r, 10 + a, algs[a], 1, 100, sealed, plain + 300 - 100, &n_bad, bad), WIRE_ST_OK);
		ck_assert_uint_eq(n_bad, 0);
	}
	/* SIV and HMAC. */
	{
		uint8_t siv[4 + 4 + 2 + 4 + 5];

		memset(key, 0x30, sizeof(key));
		wire_le32(siv, 10);
		wire_le32(siv + 4, 2);
		memcpy(siv + 8, "ad", 2);
		wire_le32(siv + 10, 5);
		memcpy(siv + 14, "hello", 5);
		ck_assert_uint_eq(call(r, WIRE_OP_SIV_ENCRYPT, siv, sizeof(siv)), WIRE_ST_OK);
		ck_assert_int_eq(fw_hkdf_sha256((const uint8_t *)"siv-v1", 6, key, 32, (const uint8_t *)"ad", 2, siv_key, 64), 0);
		ck_assert_int_eq(fw_siv_encrypt(siv_key, 64, (const uint8_t *)"ad", 2, (const uint8_t *)"hello", 5, expect), 0);
		ck_assert_uint_eq(r->body_len, 4 + 21);
		ck_assert_int_eq(memcmp(r->body + 4, expect, 21), 0);
		memset(key, 0x55, sizeof(key));
		import_known(r, chan, 20, WIRE_ALG_HMAC_SHA256, WIRE_USE_MAC, key, 32);
		wire_le32(siv, 20);
		wire_le32(siv + 4, 5);
		memcpy(siv + 8, "hello", 5);
		ck_assert_uint_eq(call(r, WIRE_OP_HMAC, siv, 13), WIRE_ST_OK);
		ck_assert_int_eq(fw_hmac_sha256(key, 32, (const uint8_t *)"hello", 5, NULL, 0, NULL, 0, NULL, 0, expect), 0);
		ck_assert_int_eq(memcmp(r->body, expect, 32), 0);
	}
	/* A blob carrying the unwrapping key's own id is refused. */
	{
		uint8_t p2[46], blob[64], b2[80];
		size_t blen = 0;

		memset(p2, 0, sizeof(p2));
		wire_le32(p2, 200);
		p2[4] = WIRE_ALG_AES256_KW;
		p2[5] = WIRE_USE_WRAP | WIRE_USE_UNWRAP;
		wire_le32(p2 + 10, WIRE_TIME_NEVER);
		ck_assert_int_eq(fw_kwp_wrap(chan, 32, p2, 46, blob, sizeof(blob), &blen), 0);
		wire_le32(b2, 200);
		wire_le32(b2 + 4, (uint32_t)blen);
		memcpy(b2 + 8, blob, blen);
		ck_assert_uint_eq(call(r, WIRE_OP_KEY_IMPORT, b2, 8 + blen), WIRE_ST_INVALID);
	}
	rig_free(r);
}
END_TEST

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Throughput of SEAL in-process (shared memory: the frame MAC covers no
 * bulk data) against raw one-shot GCM; printed, loosely checked. */
START_TEST(seal_throughput)
{
	struct rig *r = rig_new("speed");
	uint8_t *shm = calloc(1, WIRE_SHM_SIZE), *body = malloc(DEVICE_FRAME_MAX);
	uint8_t *data = pattern(1u << 20, 1), *out = malloc((1u << 20) + 16);
	uint8_t key[32] = { 1 }, nonce[12] = { 0 }, tag[16];
	struct timespec t0;
	double dev_s, inl_s, raw_s;
	size_t bl;
	int i, rounds = 40;

	ready(r);
	r->s.shm = shm;
	r->s.shm_size = WIRE_SHM_SIZE;
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	memcpy(shm, data, 1u << 20);
	bl = bulk_body(body, 1, WIRE_ALG_AES256_GCM, 256, 4096, NULL, 0, 1, 0, WIRE_SHM_SIZE / 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < rounds; i++)
		ck_assert_uint_eq(call_flags(r, WIRE_OP_SEAL, WIRE_F_SHM, body, bl), WIRE_ST_OK);
	dev_s = seconds_since(&t0);
	bl = bulk_body(body, 1, WIRE_ALG_AES256_GCM, 256, 4096, data, 1u << 20, 0, 0, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < rounds; i++)
		ck_assert_uint_eq(call(r, WIRE_OP_SEAL, body, bl), WIRE_ST_OK);
	inl_s = seconds_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < rounds; i++)
		ck_assert_int_eq(fw_gcm_seal(key, 32, nonce, NULL, 0, data, 1u << 20, out, tag), 0);
	raw_s = seconds_since(&t0);
	printf("SEAL 1 MiB in 256 sectors, in-process: shm %.0f MB/s (%.2f of raw), inline %.0f MB/s "
	       "(frame MACs over the data); raw AES-256-GCM %.0f MB/s\n",
	       rounds * 1.048576 / dev_s, raw_s / dev_s, rounds * 1.048576 / inl_s, rounds * 1.048576 / raw_s);
	fflush(stdout);
	ck_assert(raw_s / dev_s > 0.3); /* loose: the machine is shared */
	r->s.shm = NULL;
	r->s.shm_size = 0;
	free(shm);
	free(body);
	free(data);
	free(out);
	rig_free(r);
}
END_TEST

/* ---- the secube-emu process ---- */

/* The emulator binary: SECUBE_EMU, else ../bin/secube-emu beside this test. */
static int emu_path(char *out, size_t cap)
{
	char self[PATH_MAX];
	const char *env = getenv("SECUBE_EMU");
	ssize_t n;

	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return access(out, X_OK);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(out, cap, "%s/../bin/secube-emu", dirname(self));
	return access(out, X_OK);
}

static int run_emu(const char *bin, const char *arg1, const char *arg2)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execl(bin, bin, arg1, arg2, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int connect_to(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/cube.sock", dir);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Send a frame (with fd in SCM_RIGHTS if fd >= 0), read the reply header. */
static uint32_t sock_call(int sock, const uint8_t *frame, size_t len, int fd, uint8_t *reply, size_t cap,
			  size_t *reply_len)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)frame, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct wire_header h;
	size_t have = 0, need = WIRE_HEADER_LEN;
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	ck_assert_int_eq(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
	while (have < need) {
		n = read(sock, reply + have, need - have);
		ck_assert_int_gt(n, 0);
		have += (size_t)n;
		if (have == WIRE_HEADER_LEN && need == WIRE_HEADER_LEN) {
			ck_assert_int_eq(wire_header_parse(reply, &h), WIRE_ST_OK);
			need += wire_frame_rest(&h);
			ck_assert_uint_le(need, cap);
		}
	}
	*reply_len = have;
	wire_header_parse(reply, &h);
	return h.status;
}

static int shm_memfd(size_t size, int sealable)
{
	int fd = memfd_create("test-shm", MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0));

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

START_TEST(emulator_process)
{
	char bin[PATH_MAX], dir[PATH_MAX], path[PATH_MAX + 32];
	uint8_t frame[WIRE_HEADER_LEN], reply[256];
	struct wire_header h = { .op = WIRE_OP_HELLO, .flags = WIRE_F_SHM };
	struct stat st;
	size_t rl;
	FILE *f;
	int sock, fd, pid = 0;

	if (emu_path(bin, sizeof(bin)) != 0) {
		printf("emulator_process: no secube-emu binary, skipped\n");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/emu", base_dir);
	ck_assert_int_eq(run_emu(bin, "--create", dir), 0);
	ck_assert_int_eq(run_emu(bin, "--create", dir), 1);  /* never over an existing cube */
	ck_assert_int_eq(run_emu(bin, dir, NULL), 0);        /* daemon: listening on return */
	ck_assert_int_eq(run_emu(bin, dir, NULL), 3);        /* one emulator per directory */
	snprintf(path, sizeof(path), "%s/cube.sock", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/secube-emu.pid", dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	/* HELLO with a sealable memfd of the right size: shm_ok. */
	sock = connect_to(dir);
	wire_header_pack(&h, frame);
	fd = shm_memfd(WIRE_SHM_SIZE, 1);
	ck_assert_uint_eq(sock_call(sock, frame, sizeof(frame), fd, reply, sizeof(reply), &rl), WIRE_ST_OK);
	ck_assert_uint_eq(rl, WIRE_HEADER_LEN + 72);
	ck_assert_uint_eq(wire_rd32(reply + WIRE_HEADER_LEN + 56), 1);
	ck_assert_int_ne(ftruncate(fd, 4096), 0); /* the device sealed it against shrinking */
	close(fd);
	/* Wrong size, or not sealable: refused, plain HELLO still answered. */
	fd = shm_memfd(WIRE_SHM_SIZE / 2, 1);
	ck_assert_uint_eq(sock_call(sock, frame, sizeof(frame), fd, reply, sizeof(reply), &rl), WIRE_ST_OK);
	close(fd);
	close(sock);
	sock = connect_to(dir);
	fd = shm_memfd(WIRE_SHM_SIZE, 0);
	ck_assert_uint_eq(sock_call(sock, frame, sizeof(frame), fd, reply, sizeof(reply), &rl), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(reply + WIRE_HEADER_LEN + 56), 0);
	close(fd);
	/* A broken header: MALFORMED, then the connection closes. */
	memset(frame, 0xee, sizeof(frame));
	ck_assert_uint_eq(sock_call(sock, frame, sizeof(frame), -1, reply, sizeof(reply), &rl), WIRE_ST_MALFORMED);
	ck_assert_int_eq(read(sock, reply, 1), 0);
	close(sock);
	/* SIGTERM: clean exit, socket and pid file gone. */
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
		usleep(20000);
	ck_assert_int_ne(kill(pid, 0), 0);
	ck_assert_int_ne(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/cube.sock", dir);
	ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* Cleanup: stop any emulator a failed test left, then remove the files. */
static int kill_emu(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	FILE *f;
	int pid = 0;

	if (strcmp(path + ftw->base, "secube-emu.pid") != 0)
		return 0;
	f = fopen(path, "r");
	if (f && fscanf(f, "%d", &pid) == 1 && pid > 1)
		kill(pid, SIGKILL);
	if (f)
		fclose(f);
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ---- SIV_DECRYPT_BATCH ---- */

/* SIV_ENCRYPT name under key with ad into ct (len + 16 bytes). */
static void siv_enc(struct rig *r, uint32_t key, const char *ad, const char *name, uint8_t *ct)
{
	uint8_t body[300];
	struct wbuf b;

	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u32(&b, key);
	wbuf_put_lenbytes(&b, ad, (uint32_t)strlen(ad));
	wbuf_put_lenbytes(&b, name, (uint32_t)strlen(name));
	ck_assert(wbuf_ok(&b));
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_ENCRYPT, body, b.pos), WIRE_ST_OK);
	ck_assert_uint_eq(r->body_len, 4 + strlen(name) + 16);
	memcpy(ct, r->body + 4, strlen(name) + 16);
}

struct batch_item {
	const char *ad;
	const uint8_t *ct;
	uint32_t len;
};

/* A SIV_DECRYPT_BATCH body of n items (count says count) into body. */
static size_t batch_body(uint8_t *body, size_t cap, uint32_t key, uint32_t count,
			 const struct batch_item *it, uint32_t n)
{
	struct wbuf b;

	wbuf_writer(&b, body, cap);
	wbuf_put_u32(&b, key);
	wbuf_put_u32(&b, count);
	for (uint32_t i = 0; i < n; i++) {
		wbuf_put_lenbytes(&b, it[i].ad, (uint32_t)strlen(it[i].ad));
		wbuf_put_lenbytes(&b, it[i].ct, it[i].len);
	}
	ck_assert(wbuf_ok(&b));
	return b.pos;
}

START_TEST(siv_decrypt_batch)
{
	struct rig *r = rig_new("sivbatch");
	const char *names[3] = { "report.txt", "a", "photo 2026.jpg" };
	uint8_t ct[3][64], bad[64], *body = malloc(WIRE_MAX_BODY);
	struct batch_item it[WIRE_SIV_BATCH_MAX + 1];
	const uint8_t *p;
	uint32_t len, i;
	struct wbuf b;
	size_t n;
	uint8_t st;

	ck_assert_ptr_nonnull(body);
	ready(r);
	ck_assert_uint_eq(login(r, WIRE_ROLE_ADMIN, "admin-pin"), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 3, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 6, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	ck_assert_uint_eq(keygen(r, 1, WIRE_ALG_AES256_KW, WIRE_USE_WRAP | WIRE_USE_UNWRAP, 0, WIRE_TIME_NEVER), WIRE_ST_OK);
	siv_enc(r, 3, "dir-A", names[0], ct[0]);
	siv_enc(r, 3, "dir-A", names[1], ct[1]);
	siv_enc(r, 3, "dir-B", names[2], ct[2]);
	ck_assert_uint_eq(login(r, WIRE_ROLE_USER, "user-pin"), WIRE_ST_OK);
	/* Mixed: good, tampered, good under another ad, right ct under the
	 * wrong ad, only a tag (empty plaintext never authenticates). */
	memcpy(bad, ct[1], 17);
	bad[16] ^= 1;
	it[0] = (struct batch_item){ "dir-A", ct[0], 26 };
	it[1] = (struct batch_item){ "dir-A", bad, 17 };
	it[2] = (struct batch_item){ "dir-B", ct[2], 30 };
	it[3] = (struct batch_item){ "dir-A", ct[2], 30 };
	it[4] = (struct batch_item){ "dir-A", ct[1], 16 };
	it[5] = (struct batch_item){ "dir-A", ct[1], 17 };
	n = batch_body(body, WIRE_MAX_BODY, 3, 6, it, 6);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_OK);
	{
		static const uint8_t want_st[6] = { WIRE_ST_OK, WIRE_ST_INTEGRITY, WIRE_ST_OK,
						    WIRE_ST_INTEGRITY, WIRE_ST_INTEGRITY, WIRE_ST_OK };
		const char *want_pt[6] = { names[0], "", names[2], "", "", names[1] };

		wbuf_reader(&b, r->body, r->body_len);
		ck_assert_int_eq(wbuf_get_u32(&b, &len), 0);
		ck_assert_uint_eq(len, 6);
		for (i = 0; i < 6; i++) {
			ck_assert_int_eq(wbuf_get_u8(&b, &st), 0);
			ck_assert_int_eq(wbuf_get_lenbytes(&b, &p, &len, 1024), 0);
			ck_assert_uint_eq(st, want_st[i]);
			ck_assert_uint_eq(len, strlen(want_pt[i]));
			ck_assert_int_eq(memcmp(p, want_pt[i], len), 0);
		}
		ck_assert(wbuf_done(&b));
	}
	/* A full batch of 256; one more is refused before any item is read. */
	for (i = 0; i <= WIRE_SIV_BATCH_MAX; i++)
		it[i] = (struct batch_item){ "dir-A", ct[i % 2], i % 2 ? 17 : 26 };
	n = batch_body(body, WIRE_MAX_BODY, 3, WIRE_SIV_BATCH_MAX, it, WIRE_SIV_BATCH_MAX);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_OK);
	ck_assert_uint_eq(wire_rd32(r->body), WIRE_SIV_BATCH_MAX);
	ck_assert_uint_eq(r->body_len, 4 + (WIRE_SIV_BATCH_MAX / 2) * (5 + 10 + 5 + 1));
	n = batch_body(body, WIRE_MAX_BODY, 3, WIRE_SIV_BATCH_MAX + 1, it, WIRE_SIV_BATCH_MAX + 1);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_INVALID);
	n = batch_body(body, WIRE_MAX_BODY, 3, 0xffffffffu, it, 1);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_INVALID);
	n = batch_body(body, WIRE_MAX_BODY, 3, 0, it, 0);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_INVALID);
	/* Counts that disagree with the items, trailing bytes, short bodies. */
	n = batch_body(body, WIRE_MAX_BODY, 3, 3, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_MALFORMED);
	n = batch_body(body, WIRE_MAX_BODY, 3, 1, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_MALFORMED);
	n = batch_body(body, WIRE_MAX_BODY, 3, 1, it, 1);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n + 1), WIRE_ST_MALFORMED);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, 7), WIRE_ST_MALFORMED);
	/* Item lengths: under a tag INVALID, over the caps MALFORMED. */
	it[1] = (struct batch_item){ "dir-A", ct[0], 15 };
	n = batch_body(body, WIRE_MAX_BODY, 3, 2, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_INVALID);
	{
		uint8_t *big = calloc(1, WIRE_DATA_MAX + 2);

		ck_assert_ptr_nonnull(big);
		it[1] = (struct batch_item){ "dir-A", big, WIRE_SIV_MAX + 17 };
		n = batch_body(body, WIRE_MAX_BODY, 3, 2, it, 2);
		ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_MALFORMED);
		it[1] = (struct batch_item){ "dir-A", big, WIRE_SIV_MAX + 16 };
		n = batch_body(body, WIRE_MAX_BODY, 3, 2, it, 2);
		ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_OK);
		/* an ad over WIRE_DATA_MAX */
		memset(big, 'x', WIRE_DATA_MAX + 1);
		it[1] = (struct batch_item){ (const char *)big, ct[0], 26 };
		n = batch_body(body, WIRE_MAX_BODY, 3, 2, it, 2);
		ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_MALFORMED);
		free(big);
	}
	/* Key usage as SIV_DECRYPT: an encrypt-only key, a wrap key, no key. */
	it[1] = (struct batch_item){ "dir-A", ct[1], 17 };
	n = batch_body(body, WIRE_MAX_BODY, 6, 2, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_USAGE);
	n = batch_body(body, WIRE_MAX_BODY, 1, 2, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_USAGE);
	n = batch_body(body, WIRE_MAX_BODY, 99, 2, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_NOKEY);
	/* Not without a session. */
	ck_assert_uint_eq(call(r, WIRE_OP_LOGOUT, NULL, 0), WIRE_ST_OK);
	r->mac = 0;
	n = batch_body(body, WIRE_MAX_BODY, 3, 2, it, 2);
	ck_assert_uint_eq(call(r, WIRE_OP_SIV_DECRYPT_BATCH, body, n), WIRE_ST_AUTH);
	free(body);
	rig_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("firmware_device");
	TCase *tc = tcase_create("device");
	SRunner *sr;
	int failed;

	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		return 1;
	}
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, init_and_login);
	tcase_add_test(tc, lockout_persists);
	tcase_add_test(tc, permissions);
	tcase_add_test(tc, key_usage);
	tcase_add_test(tc, validity_window);
	tcase_add_test(tc, seal_open_inline);
	tcase_add_test(tc, seal_open_shm);
	tcase_add_test(tc, auth_failures);
	tcase_add_test(tc, malformed_frames);
	tcase_add_test(tc, destroy_and_reset);
	tcase_add_test(tc, channel_between_cubes);
	tcase_add_test(tc, formats_recomputed);
	tcase_add_test(tc, seal_throughput);
	tcase_add_test(tc, emulator_process);
	tcase_add_test(tc, siv_decrypt_batch);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(base_dir, kill_emu, 16, FTW_PHYS);
	nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed ? 1 : 0;
}
