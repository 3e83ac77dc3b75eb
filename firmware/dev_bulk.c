/*
 * dev_bulk.c - SEAL and OPEN: the sectors of SEfile files, many per
 * request, the hot path of the whole system.
 *
 * Each request derives the per-file subkey once (HKDF-SHA256(key, salt
 * "sefile-v1", info file_id)), sets up one cipher context, and runs every
 * sector through it, reading the input where it lies (request body or
 * shared memory) and writing the output where it goes (response body or
 * shared memory): no allocation per sector, no copy of bulk data.
 *
 * The cryptography is fwcrypto.h's sector engine (fwsector.c): one
 * context keyed per request, then sector after sector with no allocation.
 *
 * Sector formats (both: nonce[12] || ct[len] || tag[16], fresh random
 * nonce on every seal, AAD = file_id || u64 index || u32 len):
 *   AES256_GCM / AES128_GCM: subkey of the key's length, AES-GCM.
 *   AES256_CTR_HMAC: 64-byte subkey enc || mac; ct = AES-256-CTR(enc,
 *   IV = nonce || 00000000); tag = HMAC-SHA256(mac, AAD || nonce || ct)[0..16).
 */
#include "dev_internal.h"

#include <string.h>

#include "fwcrypto.h"

#define SUBKEY_SALT "sefile-v1"
#define SECTOR_MAX 65536u
#define AAD_LEN (WIRE_FILE_ID_LEN + 8 + 4)

/* ---- the sector engine: a fwcrypto sector context per request ---- */

struct engine {
	struct fw_sector_ctx *ctx;
	uint8_t aad[AAD_LEN];
};

static void engine_free(struct engine *e)
{
	fw_sector_ctx_free(e->ctx);
	fw_wipe(e, sizeof(*e));
}

int dev_frame_tag(struct device *d, const uint8_t key[32], const uint8_t *data, size_t len,
		  uint8_t tag[WIRE_TAG_LEN])
{
	uint8_t full[FW_SHA256];
	int rc = fw_hmac_once(d->hmac, key, 32, data, len, full);

	memcpy(tag, full, WIRE_TAG_LEN);
	fw_wipe(full, sizeof(full));
	return rc;
}

/* Derive the file's subkey from k and key one context.  0 or -1. */
static int engine_init(struct engine *e, struct fw_hmac *mac, const struct ks_key *k,
		       const uint8_t file_id[WIRE_FILE_ID_LEN], int enc)
{
	int ctr = k->alg == WIRE_ALG_AES256_CTR_HMAC;
	size_t sublen = ctr ? 64 : k->len;
	uint8_t subkey[64];
	int rc;

	memset(e, 0, sizeof(*e));
	memcpy(e->aad, file_id, WIRE_FILE_ID_LEN);
	if (k->alg != WIRE_ALG_AES256_GCM && k->alg != WIRE_ALG_AES128_GCM && !ctr)
		return -1;
	rc = fw_hkdf_sha256((const uint8_t *)SUBKEY_SALT, strlen(SUBKEY_SALT), k->value, k->len,
			    file_id, WIRE_FILE_ID_LEN, subkey, sublen);
	if (rc == 0)
		rc = fw_sector_ctx_new(&e->ctx, ctr ? FW_SECTOR_CTR_HMAC : FW_SECTOR_GCM, subkey,
				       sublen, enc, mac);
	fw_wipe(subkey, sizeof(subkey));
	return rc;
}

static void engine_aad(struct engine *e, uint64_t index, uint32_t len)
{
	wire_le64(e->aad + WIRE_FILE_ID_LEN, index);
	wire_le32(e->aad + WIRE_FILE_ID_LEN + 8, len);
}

/* Seal one sector: out gets nonce || ct || tag. */
static int engine_seal(struct engine *e, const uint8_t *nonce, const uint8_t *in, uint32_t len,
		       uint8_t *out)
{
	memcpy(out, nonce, WIRE_NONCE_LEN);
	return fw_sector_seal(e->ctx, nonce, e->aad, AAD_LEN, in, len, out + WIRE_NONCE_LEN,
			      out + WIRE_NONCE_LEN + len);
}

/* Open one sealed sector (nonce || ct || tag) into out[len]; on a bad tag
 * out is zeros and -1 is returned. */
static int engine_open(struct engine *e, const uint8_t *in, uint32_t len, uint8_t *out)
{
	return fw_sector_open(e->ctx, in, e->aad, AAD_LEN, in + WIRE_NONCE_LEN, len,
			      in + WIRE_NONCE_LEN + len, out);
}

/* ---- request parsing ---- */

struct bulk {
	uint32_t key_id;
	uint8_t alg;
	const uint8_t *file_id;
	uint32_t n;
	const uint8_t *table;   /* n x (u64 index, u32 len) */
	uint64_t sum;           /* plaintext bytes */
	const uint8_t *in;      /* input bytes (in_len) */
	uint8_t *out;           /* shm output, or NULL: inline in the response */
	size_t in_len, out_len;
	uint32_t in_off, out_off; /* shm offsets from the request */
};

#define TABLE_ENTRY 12

static int parse_bulk(struct request *r, struct bulk *b)
{
	const uint8_t *data = NULL;
	uint32_t data_len = 0, in_off = 0, out_off = 0;

	memset(b, 0, sizeof(*b));
	wbuf_get_u32(&r->body, &b->key_id);
	wbuf_get_u8(&r->body, &b->alg);
	wbuf_get_span(&r->body, &b->file_id, WIRE_FILE_ID_LEN);
	wbuf_get_u32(&r->body, &b->n);
	if (b->n > WIRE_MAX_SECTORS)
		return WIRE_ST_INVALID;
	wbuf_get_span(&r->body, &b->table, (size_t)b->n * TABLE_ENTRY);
	if (r->h.flags & WIRE_F_SHM) {
		wbuf_get_u32(&r->body, &in_off);
		wbuf_get_u32(&r->body, &out_off);
	} else {
		wbuf_get_lenbytes(&r->body, &data, &data_len, WIRE_MAX_BODY);
	}
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	b->in = data;
	b->in_len = data_len;
	b->in_off = in_off; /* checked once the lengths are known */
	b->out_off = out_off;
	return WIRE_ST_OK;
}

static uint32_t entry_len(const struct bulk *b, uint32_t i)
{
	return wire_rd32(b->table + (size_t)i * TABLE_ENTRY + 8);
}

static uint64_t entry_index(const struct bulk *b, uint32_t i)
{
	return wire_rd64(b->table + (size_t)i * TABLE_ENTRY);
}

/* Check the sector lengths and place input and output.  sealing: input
 * is plaintext, output sealed; else the reverse. */
static int place_bulk(struct session *s, int shm, int sealing, struct bulk *b)
{
	uint64_t sealed_len;
	size_t in_off = b->in_off, out_off = b->out_off;
	uint32_t i;

	for (i = 0; i < b->n; i++) {
		if (entry_len(b, i) > SECTOR_MAX)
			return WIRE_ST_INVALID;
		b->sum += entry_len(b, i);
	}
	if (b->sum > WIRE_MAX_BULK_REQ)
		return WIRE_ST_INVALID;
	sealed_len = b->sum + (uint64_t)b->n * WIRE_SECTOR_OVERHEAD;
	b->in_len = shm ? (size_t)(sealing ? b->sum : sealed_len) : b->in_len;
	b->out_len = (size_t)(sealing ? sealed_len : b->sum);
	if (!shm)
		return b->in_len == (sealing ? b->sum : sealed_len) ? WIRE_ST_OK : WIRE_ST_INVALID;
	if (!s->shm || s->shm_size != WIRE_SHM_SIZE)
		return WIRE_ST_INVALID; /* no shared region was handed over */
	if (in_off > s->shm_size || b->in_len > s->shm_size - in_off ||
	    out_off > s->shm_size || b->out_len > s->shm_size - out_off)
		return WIRE_ST_INVALID;
	if (in_off < out_off + b->out_len && out_off < in_off + b->in_len)
		return WIRE_ST_INVALID; /* overlapping input and output */
	b->in = s->shm + in_off;
	b->out = s->shm + out_off;
	return WIRE_ST_OK;
}

/* Parse, place, and load the key; e is set up on WIRE_ST_OK. */
static int bulk_begin(struct device *d, struct request *r, int sealing, struct bulk *b, struct engine *e)
{
	struct ks_key k;
	int shm = (r->h.flags & WIRE_F_SHM) != 0;
	int st = parse_bulk(r, b);

	memset(e, 0, sizeof(*e));
	if (st == WIRE_ST_OK)
		st = place_bulk(r->s, shm, sealing, b);
	if (st != WIRE_ST_OK)
		return st;
	st = dev_key_use(d, b->key_id, sealing ? WIRE_USE_ENCRYPT : WIRE_USE_DECRYPT, sealing, &k);
	if (st != WIRE_ST_OK)
		return st;
	if (k.alg != b->alg)
		st = WIRE_ST_INVALID;
	else if (engine_init(e, d->hmac, &k, b->file_id, sealing) != 0)
		st = WIRE_ST_INTERNAL;
	fw_wipe(&k, sizeof(k));
	return st;
}

/* ---- SEAL ---- */

static int seal_all(struct device *d, struct engine *e, const struct bulk *b, uint8_t *out)
{
	const uint8_t *in = b->in;
	uint32_t i, len;

	if (b->n && fw_random(d->nonces, (size_t)b->n * WIRE_NONCE_LEN) != 0)
		return WIRE_ST_INTERNAL;
	for (i = 0; i < b->n; i++) {
		len = entry_len(b, i);
		engine_aad(e, entry_index(b, i), len);
		if (engine_seal(e, d->nonces + (size_t)i * WIRE_NONCE_LEN, in, len, out) != 0)
			return WIRE_ST_INTERNAL;
		in += len;
		out += (size_t)len + WIRE_SECTOR_OVERHEAD;
	}
	return WIRE_ST_OK;
}

int dev_op_seal(struct device *d, struct request *r, struct wbuf *resp)
{
	struct bulk b;
	struct engine e;
	uint8_t *out = NULL;
	int st = bulk_begin(d, r, 1, &b, &e);

	if (st == WIRE_ST_OK && !b.out &&
	    (wbuf_put_u32(resp, (uint32_t)b.out_len) != 0 || wbuf_reserve(resp, &out, b.out_len) != 0))
		st = WIRE_ST_INTERNAL;
	if (st == WIRE_ST_OK) {
		st = seal_all(d, &e, &b, b.out ? b.out : out);
		if (st != WIRE_ST_OK && b.out)
			memset(b.out, 0, b.out_len); /* no half-sealed output */
	}
	engine_free(&e);
	return st;
}

/* ---- OPEN ---- */

/* Open every sector into out; d->bad gets the positions that failed. */
static uint32_t open_all(struct device *d, struct engine *e, const struct bulk *b, uint8_t *out)
{
	const uint8_t *in = b->in;
	uint32_t i, len, n_bad = 0;

	for (i = 0; i < b->n; i++) {
		len = entry_len(b, i);
		engine_aad(e, entry_index(b, i), len);
		if (engine_open(e, in, len, out) != 0)
			d->bad[n_bad++] = i;
		in += (size_t)len + WIRE_SECTOR_OVERHEAD;
		out += len;
	}
	return n_bad;
}

static void put_bad_list(const struct device *d, uint8_t *p, uint32_t n_bad)
{
	uint32_t i;

	wire_le32(p, n_bad);
	for (i = 0; i < n_bad; i++)
		wire_le32(p + 4 + (size_t)i * 4, d->bad[i]);
}

/* Inline reply: u32 n_bad, positions, lenbytes plaintext.  The plaintext
 * is written where it lands when no sector is bad (the common case) and
 * moved up only when some are. */
static int open_inline(struct device *d, struct engine *e, const struct bulk *b, struct wbuf *resp)
{
	uint8_t *head, *pt, *extra;
	uint32_t n_bad;

	if (wbuf_reserve(resp, &head, 8 + b->out_len) != 0)
		return WIRE_ST_INTERNAL;
	pt = head + 8;
	n_bad = open_all(d, e, b, pt);
	if (n_bad) {
		if (wbuf_reserve(resp, &extra, (size_t)n_bad * 4) != 0)
			return WIRE_ST_INTERNAL;
		memmove(pt + (size_t)n_bad * 4, pt, b->out_len);
	}
	put_bad_list(d, head, n_bad);
	wire_le32(head + 4 + (size_t)n_bad * 4, (uint32_t)b->out_len);
	return WIRE_ST_OK;
}

int dev_op_open(struct device *d, struct request *r, struct wbuf *resp)
{
	struct bulk b;
	struct engine e;
	uint8_t *head;
	uint32_t n_bad;
	int st = bulk_begin(d, r, 0, &b, &e);

	if (st == WIRE_ST_OK && !b.out) {
		st = open_inline(d, &e, &b, resp);
	} else if (st == WIRE_ST_OK) {
		n_bad = open_all(d, &e, &b, b.out);
		if (wbuf_reserve(resp, &head, 4 + (size_t)n_bad * 4) != 0)
			st = WIRE_ST_INTERNAL;
		else
			put_bad_list(d, head, n_bad);
	}
	engine_free(&e);
	return st;
}
