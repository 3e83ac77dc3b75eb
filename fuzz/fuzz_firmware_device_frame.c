/*
 * fuzz_device_frame.c - libFuzzer target for the cube's request handler:
 * arbitrary bytes go to device_handle() on one device created once (an
 * in-memory flash, so the fuzzer does no disk I/O), which must answer
 * every input with exactly one well-formed response frame and never
 * crash, leak or read out of bounds.
 *
 * The first input byte chooses how the rest is delivered:
 *   0  a raw frame on a fresh, unauthenticated connection;
 *   1  a raw frame on a copy of a logged-in admin session (its MAC is
 *      almost never right: the authentication paths);
 *   2  op (u16), flags (u8), then the body: the harness frames it and MACs
 *      it with the admin session's key and next seq, so every handler's
 *      body parser is reached behind authentication (with a shared
 *      memory region mapped, for WIRE_F_SHM);
 *   3  as 2 but on a user session.
 * Sessions are copied per input, so each input starts from the same
 * state; when an input logs the device out or resets it, the harness logs
 * in (and factory-inits) again.
 *
 * Build: clang -std=c11 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address
 *        fuzz/fuzz_device_frame.c firmware/ [all but main.c] wire/ *.c -lcrypto -lxxhash
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/device.h"
#include "firmware/flash.h"
#include "firmware/fwcrypto.h"
#include "firmware/keystore.h"
#include "wire/buf.h"
#include "wire/frame.h"

#define ADMIN_PIN "admin-pin"
#define USER_PIN "user-pin"

struct host_session {
	struct session dev;          /* the device's view (copied per input) */
	uint8_t mac_h2d[32];
	uint8_t mac_d2h[32];
};

struct fuzz_rig {
	struct flash *flash;
	struct keystore *ks;
	struct device *d;
	uint8_t dev_pub[32];
	struct host_session admin, user;
	uint8_t *shm, *req, *resp;
};

static struct fuzz_rig *rig;

static int64_t fixed_time(void *arg)
{
	return WIRE_EPOCH + 86400 * 300;
}

static void die(const char *why)
{
	fprintf(stderr, "fuzz_device_frame: %s\n", why);
	abort();
}

/* Send one frame; the reply must be a well-formed frame. */
static uint32_t exchange(struct session *s, const uint8_t *frame, size_t len)
{
	struct wire_header h;
	size_t out_len = 0;

	if (device_handle(rig->d, s, frame, len, rig->resp, DEVICE_FRAME_MAX, &out_len) != DEVICE_OK)
		die("device_handle refused to answer");
	if (out_len < WIRE_HEADER_LEN || wire_header_parse(rig->resp, &h) != WIRE_ST_OK ||
	    out_len != WIRE_HEADER_LEN + wire_frame_rest(&h) || h.status > WIRE_ST_MAX)
		die("malformed response frame");
	return h.status;
}

/* Frame body for op, MACed under key with seq if key is not NULL. */
static size_t build(uint16_t op, uint8_t flags, uint64_t seq, const uint8_t *body, size_t len,
		    const uint8_t *key)
{
	struct wire_header h = { .flags = flags, .op = op, .body_len = (uint32_t)len, .seq = seq };
	uint8_t mac[32];

	if (key)
		h.flags |= WIRE_F_MAC;
	wire_header_pack(&h, rig->req);
	memcpy(rig->req + WIRE_HEADER_LEN, body, len);
	if (!key)
		return WIRE_HEADER_LEN + len;
	if (fw_hmac_sha256(key, 32, rig->req, WIRE_HEADER_LEN + len, NULL, 0, NULL, 0, NULL, 0, mac) != 0)
		die("hmac");
	memcpy(rig->req + WIRE_HEADER_LEN + len, mac, 16);
	return WIRE_HEADER_LEN + len + 16;
}

/* Session keys toward the device; eph gets the public half. */
static void derive(uint8_t eph[32], uint8_t keys[96])
{
	uint8_t priv[32], shared[32], info[64];

	if (fw_x25519_keygen(priv, eph) || fw_x25519(priv, rig->dev_pub, shared))
		die("x25519");
	memcpy(info, eph, 32);
	memcpy(info + 32, rig->dev_pub, 32);
	if (fw_hkdf_sha256((const uint8_t *)"secube-session-v1", 17, shared, 32, info, 64, keys, 96))
		die("hkdf");
}

static void factory_init(void)
{
	static const uint8_t zero[12];
	uint8_t eph[32], keys[96], plain[64], body[160];
	size_t n = 0, an = strlen(ADMIN_PIN), un = strlen(USER_PIN);
	struct wbuf b;
	struct session s;

	plain[n++] = (uint8_t)an;
	memcpy(plain + n, ADMIN_PIN, an), n += an;
	plain[n++] = (uint8_t)un;
	memcpy(plain + n, USER_PIN, un), n += un;
	derive(eph, keys);
	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u8(&b, 0);
	wbuf_put_bytes(&b, eph, 32);
	wbuf_put_u32(&b, (uint32_t)(n + 16));
	if (fw_gcm_seal(keys, 32, zero, NULL, 0, plain, n, body + b.pos, body + b.pos + n))
		die("gcm");
	b.pos += n + 16;
	wbuf_put_u8(&b, 0);
	wbuf_put_u8(&b, 0);
	device_session_init(&s);
	if (exchange(&s, rig->req, build(WIRE_OP_FACTORY_INIT, 0, 0, body, b.pos, NULL)) != WIRE_ST_OK)
		die("factory init");
}

static void login(struct host_session *hs, uint8_t role, const char *pin)
{
	static const uint8_t zero[12];
	uint8_t eph[32], keys[96], body[128];
	size_t n = strlen(pin);
	struct wbuf b;

	device_session_end(rig->d, &hs->dev);
	device_session_init(&hs->dev);
	derive(eph, keys);
	wbuf_writer(&b, body, sizeof(body));
	wbuf_put_u8(&b, role);
	wbuf_put_bytes(&b, eph, 32);
	wbuf_put_u32(&b, (uint32_t)(n + 16));
	if (fw_gcm_seal(keys, 32, zero, NULL, 0, (const uint8_t *)pin, n, body + b.pos, body + b.pos + n))
		die("gcm");
	b.pos += n + 16;
	if (exchange(&hs->dev, rig->req, build(WIRE_OP_LOGIN, 0, 0, body, b.pos, NULL)) != WIRE_ST_OK)
		die("login");
	memcpy(hs->mac_h2d, keys + 32, 32);
	memcpy(hs->mac_d2h, keys + 64, 32);
	hs->dev.shm = rig->shm;
	hs->dev.shm_size = WIRE_SHM_SIZE;
}

static void keygen(uint32_t id, uint8_t alg, uint8_t usage)
{
	uint8_t body[14];
	struct session s = rig->admin.dev;

	wire_le32(body, id);
	body[4] = alg;
	body[5] = usage;
	wire_le32(body + 6, 0);
	wire_le32(body + 10, WIRE_TIME_NEVER);
	exchange(&s, rig->req, build(WIRE_OP_KEY_GENERATE, 0, s.seq_next, body, 14, rig->admin.mac_h2d));
	rig->admin.dev.seq_next = s.seq_next;
}

/* Bring the device back to: initialised, admin and user logged in, a few keys. */
static void establish(void)
{
	const uint8_t data = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT;

	if (device_state(rig->d) == WIRE_DEV_LOCKED) {
		struct session s;

		device_session_init(&s);
		exchange(&s, rig->req, build(WIRE_OP_FACTORY_RESET, 0, 0, NULL, 0, NULL));
	}
	if (device_state(rig->d) == WIRE_DEV_BLANK)
		factory_init();
	login(&rig->admin, WIRE_ROLE_ADMIN, ADMIN_PIN);
	login(&rig->user, WIRE_ROLE_USER, USER_PIN);
	keygen(1, WIRE_ALG_AES256_GCM, data | WIRE_USE_EXPORTABLE);
	keygen(2, WIRE_ALG_AES256_CTR_HMAC, data);
	keygen(3, WIRE_ALG_AES128_GCM, data);
	keygen(4, WIRE_ALG_AES256_KW, WIRE_USE_WRAP | WIRE_USE_UNWRAP);
	keygen(5, WIRE_ALG_HMAC_SHA256, WIRE_USE_MAC);
}

/* Is the template state still usable after an input? */
static int intact(void)
{
	uint8_t body[4] = { 1, 0, 0, 0 };
	struct session s = rig->user.dev;

	return device_state(rig->d) == WIRE_DEV_READY &&
	       exchange(&s, rig->req, build(WIRE_OP_KEY_INFO, 0, s.seq_next, body, 4, rig->user.mac_h2d)) == WIRE_ST_OK;
}

static void rig_init(void)
{
	struct device_config cfg = { .pbkdf2_iterations = 1, .host_time = fixed_time };
	uint8_t serial[16];

	rig = calloc(1, sizeof(*rig));
	if (!rig)
		die("oom");
	rig->shm = calloc(1, WIRE_SHM_SIZE);
	rig->req = malloc(DEVICE_FRAME_MAX);
	rig->resp = malloc(DEVICE_FRAME_MAX);
	if (!rig->shm || !rig->req || !rig->resp)
		die("oom");
	if (flash_open_mem(&rig->flash, NULL) != FLASH_OK || ks_open_flash(&rig->ks, rig->flash) != KS_OK)
		die("flash");
	if (device_create_identity(rig->ks) != DEVICE_OK || device_open(&rig->d, rig->ks, &cfg) != DEVICE_OK)
		die("device");
	device_identity(rig->d, serial, rig->dev_pub);
	device_session_init(&rig->admin.dev);
	device_session_init(&rig->user.dev);
	establish();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct host_session *hs;
	struct session s;
	uint16_t op;
	size_t body_len;

	if (!rig)
		rig_init();
	if (size < 1 || size - 1 > DEVICE_FRAME_MAX - WIRE_HEADER_LEN - WIRE_TAG_LEN)
		return 0;
	switch (data[0] & 3) {
	case 0:
		device_session_init(&s);
		exchange(&s, data + 1, size - 1);
		device_session_end(rig->d, &s);
		return 0;
	case 1:
		s = rig->admin.dev;
		exchange(&s, data + 1, size - 1);
		break;
	default:
		if (size < 4)
			return 0;
		hs = (data[0] & 3) == 2 ? &rig->admin : &rig->user;
		s = hs->dev;
		op = (uint16_t)(data[1] | (data[2] << 8));
		body_len = size - 4;
		exchange(&s, rig->req, build(op, data[3] & WIRE_F_SHM, s.seq_next, data + 4, body_len, hs->mac_h2d));
		break;
	}
	if (!intact())
		establish();
	return 0;
}
