/*
 * fuzz_cube_reply.c - libFuzzer target for the host driver's parsing of
 * device replies (cube/session.c, cube/api.c): a device, or whatever sits
 * on the cable, is untrusted.  A test transport (struct cube_transport of
 * cube/transport.h) stands in for the socket; it accepts every request and
 * answers from the fuzz input, so every reply check (op, MAC, seq, status)
 * and every per-operation body parser is reached without a socket.
 *
 * Input: u16 script_len, script (the API calls to make), then reply
 * records, one consumed per frame the driver receives:
 *   u8 kind
 *   kind < 0x80, "structured": u8 status, u8 sel, u16 body_len, body.  The
 *     transport builds the header: op = the request's (sel & 0x40: op + 1),
 *     seq = the one the driver expects (sel & 0x20: + 1), flags WIRE_F_MAC
 *     with a valid tag under the session's mac_d2h when sel & 1 (sel & 2:
 *     tag flipped), WIRE_F_SHM when sel & 4.  This lets the fuzzer log in
 *     (a MACed LOGIN reply) and reach the parsers behind the session.
 *   kind >= 0x80, "raw": u16 len, len bytes taken as the frame on the wire,
 *     checked the way the real transports check it (cube_frame_need).
 * With no record left the device "went away" (CUBE_ETRANSPORT).
 *
 * Script: u8 preamble (bit 0: map a shared-memory region, as a socket
 * transport would after HELLO), then calls: u8 selector and arguments.
 *
 * Invariants checked besides the sanitizers: return codes are CUBE_OK or a
 * CUBE_E*; cube_errmsg is a string; outputs fit exactly-sized heap buffers;
 * a successful KEY_INFO names the asked key, KEY_LIST is ascending and
 * within bounds, a successful OPEN flags no sector; bad sectors read as
 * zeros; a dead connection never sends another frame and holds no keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cube/internal.h"
#include "cube/transport.h"
#include "wire/buf.h"
#include "wire/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_transport {
	struct cube_transport t;
	struct cube *c;          /* for the session's reply MAC key */
	const uint8_t *rep;      /* reply records */
	size_t rep_len, rep_pos;
	uint16_t last_op;
	unsigned sent;           /* frames sent */
};

/* The calls' argument stream. */
struct script {
	const uint8_t *p;
	size_t len, pos;
};

static void check(int cond)
{
	if (!cond)
		__builtin_trap();
}

static uint8_t s_u8(struct script *s)
{
	return s->pos < s->len ? s->p[s->pos++] : 0;
}

static uint32_t s_u32(struct script *s)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)s_u8(s) << (8 * i);
	return v;
}

static int ft_send(struct cube_transport *t, const uint8_t *hdr, const uint8_t *body,
		   size_t body_len, const uint8_t *tag, int pass_fd)
{
	struct fuzz_transport *ft = (struct fuzz_transport *)t;

	(void)body;
	(void)tag;
	(void)pass_fd;
	check(body_len <= WIRE_MAX_BODY);
	ft->last_op = wire_rd16(hdr + 6);
	ft->sent++;
	return 0;
}

static int rep_take(struct fuzz_transport *ft, size_t n, const uint8_t **p)
{
	if (n > ft->rep_len - ft->rep_pos)
		return -1;
	*p = ft->rep + ft->rep_pos;
	ft->rep_pos += n;
	return 0;
}

static int d2h_tag(const struct cube *c, const uint8_t *frame, size_t len, uint8_t tag[16])
{
	uint8_t full[32];
	size_t n = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, c->s.mac_d2h, sizeof(c->s.mac_d2h),
		       frame, len, full, sizeof(full), &n))
		return -1;
	memcpy(tag, full, 16);
	return 0;
}

/* A structured record: header made to fit the request, body from the input. */
static int recv_structured(struct fuzz_transport *ft, uint8_t *buf, size_t cap,
			   struct wire_header *h)
{
	const uint8_t *p, *body;
	struct wire_header w = { .version = WIRE_VERSION };
	size_t len;
	uint8_t sel;

	if (rep_take(ft, 4, &p) != 0)
		return -1;
	w.status = p[0];
	sel = p[1];
	len = wire_rd16(p + 2);
	if (len > ft->rep_len - ft->rep_pos)
		len = ft->rep_len - ft->rep_pos;
	rep_take(ft, len, &body);
	w.op = (uint16_t)(ft->last_op + ((sel & 0x40) ? 1 : 0));
	w.seq = ft->c->s.seq_rx + ((sel & 0x20) ? 1 : 0);
	w.flags = (uint8_t)(((sel & 1) ? WIRE_F_MAC : 0) | ((sel & 4) ? WIRE_F_SHM : 0));
	w.body_len = (uint32_t)len;
	check(WIRE_HEADER_LEN + len + WIRE_TAG_LEN <= cap);
	wire_header_pack(&w, buf);
	if (len)
		memcpy(buf + WIRE_HEADER_LEN, body, len);
	if (sel & 1) {
		uint8_t *tag = buf + WIRE_HEADER_LEN + len;

		if (d2h_tag(ft->c, buf, WIRE_HEADER_LEN + len, tag) != 0)
			return -1;
		if (sel & 2)
			tag[(sel >> 4) & 15] ^= 1;
	}
	if (wire_header_parse(buf, h) != WIRE_ST_OK)
		return -1;
	return 0;
}

/* A raw record: bytes as they come off the wire, checked as the socket
 * and USB transports check them. */
static int recv_raw(struct fuzz_transport *ft, uint8_t *buf, size_t cap, struct wire_header *h)
{
	const uint8_t *p, *frame;
	size_t len;
	long need;

	if (rep_take(ft, 2, &p) != 0)
		return -1;
	len = wire_rd16(p);
	if (rep_take(ft, len, &frame) != 0)
		return -1;
	need = cube_frame_need(&ft->t, frame, len, h);
	if (need <= 0 || (size_t)need != len || len > cap)
		return CUBE_EPROTO;
	memcpy(buf, frame, len);
	return 0;
}

static int ft_recv(struct cube_transport *t, uint8_t *buf, size_t cap, struct wire_header *h)
{
	struct fuzz_transport *ft = (struct fuzz_transport *)t;
	const uint8_t *kind;
	int rc;

	memset(h, 0, sizeof(*h));
	if (rep_take(ft, 1, &kind) != 0)
		rc = -1;
	else if (*kind < 0x80)
		rc = recv_structured(ft, buf, cap, h);
	else
		rc = recv_raw(ft, buf, cap, h);
	if (rc == CUBE_EPROTO) {
		snprintf(t->why, sizeof(t->why), "malformed frame from the device");
		return CUBE_EPROTO;
	}
	if (rc != 0) {
		snprintf(t->why, sizeof(t->why), "connection closed by the device");
		return CUBE_ETRANSPORT;
	}
	return 0;
}

static void ft_close(struct cube_transport *t)
{
	(void)t; /* static, lives for the run */
}

static const struct cube_transport_ops fuzz_ops = { ft_send, ft_recv, ft_close };

static void check_rc(const struct cube *c, int rc)
{
	const char *m = cube_errmsg(c);

	check(rc <= 0 && rc >= CUBE_ENODEV);
	check(m != NULL && strlen(m) < sizeof(c->errmsg));
}

static const char *const pins[] = { "1234", "user-pin", "admin-pin-that-is-long", "x" };

/* The key calls. */
static int call_keys(struct cube *c, struct script *s, uint8_t sel)
{
	struct cube_key k = { 0 };
	uint32_t id = s_u32(s);
	int rc;

	switch (sel) {
	case 0:
		k.id = id;
		k.alg = s_u8(s);
		k.usage = s_u8(s);
		k.not_after = WIRE_TIME_NEVER;
		return cube_key_generate(c, &k);
	case 1:
		return cube_key_destroy(c, id);
	case 2:
		rc = cube_key_info(c, id, &k);
		check(rc != CUBE_OK || k.id == id);
		check(rc == CUBE_OK || (k.id == 0 && k.alg == 0));
		return rc;
	case 3: {
		uint32_t max = s_u8(s) % 9, n = 99;
		struct cube_key *out = max ? malloc(max * sizeof(*out)) : NULL;

		if (max && !out)
			return CUBE_ENOMEM;
		rc = cube_key_list(c, id, out, max, &n);
		check(n <= max && (rc == CUBE_OK || n == 0));
		for (uint32_t i = 0; i < n; i++)
			check(out[i].id >= id && (i == 0 || out[i].id > out[i - 1].id));
		free(out);
		return rc;
	}
	case 4:
		return cube_key_set_attrs(c, id, s_u8(s), 0, WIRE_TIME_NEVER);
	case 5: {
		size_t cap = s_u8(s), len = 99;
		uint8_t *blob = malloc(cap ? cap : 1);

		if (!blob)
			return CUBE_ENOMEM;
		rc = cube_key_export(c, id, s_u32(s), blob, cap, &len);
		check(len <= cap && (rc == CUBE_OK || len == 0));
		free(blob);
		return rc;
	}
	case 6: {
		uint8_t blob[56];
		uint32_t got = 99;

		memset(blob, s_u8(s), sizeof(blob));
		rc = cube_key_import(c, id, blob, sizeof(blob), &got);
		check(rc == CUBE_OK || got == 0);
		return rc;
	}
	default: {
		uint8_t pub[WIRE_PUBKEY_LEN];

		memset(pub, s_u8(s), sizeof(pub));
		return cube_channel_derive(c, id, pub, (const uint8_t *)"ctx", 3);
	}
	}
}

/* SEAL or OPEN of up to 8 small sectors, into exactly-sized buffers. */
static int call_bulk(struct cube *c, struct script *s, int open)
{
	struct cube_sector secs[8];
	uint8_t file_id[WIRE_FILE_ID_LEN] = { 0 };
	uint32_t n = 1 + s_u8(s) % 8, key = s_u32(s);
	size_t plain = 0, sealed, off = 0;
	uint8_t *in, *out, *bad;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		secs[i].index = s_u8(s);
		secs[i].len = s_u8(s) % 65;
		plain += secs[i].len;
	}
	sealed = plain + (size_t)n * WIRE_SECTOR_OVERHEAD;
	in = calloc(1, sealed);
	out = malloc(sealed);
	bad = malloc(n);
	if (!in || !out || !bad) {
		free(in), free(out), free(bad);
		return CUBE_ENOMEM;
	}
	if (!open) {
		rc = cube_seal(c, key, WIRE_ALG_AES256_GCM, file_id, secs, n, in, out);
	} else {
		memset(out, 0xa5, plain);
		rc = cube_open_sectors(c, key, WIRE_ALG_AES256_GCM, file_id, secs, n, in, out, bad);
		for (uint32_t i = 0; i < n; off += secs[i].len, i++) {
			check(bad[i] <= 1);
			check(rc != CUBE_OK || !bad[i]);
			for (uint32_t j = 0; bad[i] && j < secs[i].len; j++)
				check(out[off + j] == 0);
		}
	}
	free(in);
	free(out);
	free(bad);
	return rc;
}

static int call_small(struct cube *c, struct script *s, uint8_t sel)
{
	uint8_t in[64], out[64 + WIRE_TAG_LEN], mac[32];
	size_t len = s_u8(s) % 48;
	uint32_t key = s_u32(s);

	memset(in, 0x42, sizeof(in));
	switch (sel) {
	case 0: return cube_siv_encrypt(c, key, in, 16, in, len, out);
	case 1: return cube_siv_decrypt(c, key, in, 16, in, len + WIRE_TAG_LEN, out);
	case 2: return cube_hmac(c, key, in, len, mac);
	case 3: {
		size_t n = 1 + (key % 6000);
		uint8_t *buf = malloc(n);
		int rc;

		if (!buf)
			return CUBE_ENOMEM;
		rc = cube_random(c, buf, n);
		free(buf);
		return rc;
	}
	case 4: return cube_digest(c, in, len, mac);
	case 6: { /* SIV_DECRYPT_BATCH: per-item statuses, failed items zeroed */
		struct cube_siv_item it[3];
		uint8_t pts[3][64];
		size_t n = 1 + len % 3, i, j;
		int rc;

		memset(pts, 0xa5, sizeof(pts));
		for (i = 0; i < n; i++)
			it[i] = (struct cube_siv_item){ in, 16, in, WIRE_TAG_LEN + (len + i) % 48, pts[i], 99 };
		rc = cube_siv_decrypt_batch(c, key, it, n);
		for (i = 0; i < n; i++) {
			check(rc == CUBE_OK ? it[i].status == CUBE_OK || it[i].status == CUBE_EINTEGRITY
					    : it[i].status == rc);
			for (j = 0; it[i].status != CUBE_OK && j < it[i].len - WIRE_TAG_LEN; j++)
				check(pts[i][j] == 0);
		}
		return rc;
	}
	default: {
		char report[32];
		unsigned failed = 99;
		int rc = cube_selftest(c, &failed, report, 1 + len % sizeof(report));

		check(memchr(report, 0, sizeof(report)) != NULL);
		return rc;
	}
	}
}

static int call_device(struct cube *c, struct script *s, uint8_t sel)
{
	uint8_t arg = s_u8(s);
	struct cube_info info;

	switch (sel) {
	case 0: return cube_info(c, &info);
	case 1: return cube_login(c, (arg & 1) ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER, pins[(arg >> 1) & 3]);
	case 2: return cube_logout(c);
	case 3: return cube_set_pin(c, (arg & 1) ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER, pins[(arg >> 1) & 3]);
	case 4: return cube_factory_init(c, pins[arg & 3], pins[(arg >> 2) & 3], arg >> 4, 0);
	case 5: return cube_factory_reset(c);
	default: return cube_clock_set(c, WIRE_EPOCH + (int64_t)arg * 86400);
	}
}

static int one_call(struct cube *c, struct script *s)
{
	uint8_t sel = s_u8(s);

	switch (sel % 4) {
	case 0: return call_device(c, s, (uint8_t)((sel >> 2) % 7));
	case 1: return call_keys(c, s, (uint8_t)((sel >> 2) % 8));
	case 2: return call_bulk(c, s, sel & 4);
	default: return call_small(c, s, (uint8_t)((sel >> 2) % 7));
	}
}

/* One connection for the whole run (its buffers are 2 MiB), put back to
 * the state of a fresh connection before each input. */
static struct fuzz_transport ft;
static struct cube *conn;

static void conn_reset(struct cube *c)
{
	cube_session_end(c);
	memset(&c->info, 0, sizeof(c->info));
	memset(c->tries, 0, sizeof(c->tries));
	c->dead = 0;
	c->last_errno = 0;
	c->errmsg[0] = '\0';
	if (c->shm)
		munmap(c->shm, c->shm_size);
	if (c->shm_fd >= 0)
		close(c->shm_fd);
	c->shm = NULL;
	c->shm_size = 0;
	c->shm_fd = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script s;
	struct cube *c;
	size_t script_len;
	int calls = 0;

	if (size < 3)
		return 0;
	if (!conn) {
		ft.t.ops = &fuzz_ops;
		ft.t.timeout_ms = 1000;
		if (cube_conn_new(&conn, &ft.t, NULL, 0) != CUBE_OK)
			abort();
		ft.c = conn;
	}
	c = conn;
	conn_reset(c);
	script_len = wire_rd16(data);
	if (script_len > size - 2)
		script_len = size - 2;
	ft.rep = data + 2 + script_len;
	ft.rep_len = size - 2 - script_len;
	ft.rep_pos = 0;
	ft.sent = 0;
	ft.last_op = 0;
	s.p = data + 2;
	s.len = script_len;
	s.pos = 0;
	if ((s_u8(&s) & 1) && cube_shm_create(c) != 0)
		abort();
	while (s.pos < s.len && calls++ < 64) {
		int was_dead = c->dead;
		unsigned sent = ft.sent;
		int rc = one_call(c, &s);

		check_rc(c, rc);
		if (was_dead)
			check(ft.sent == sent);
		if (c->dead)
			check(!c->s.active && !c->s.keyed && c->s.h2d == NULL);
	}
	return 0;
}
