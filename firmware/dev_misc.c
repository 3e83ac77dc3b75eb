/*
 * dev_misc.c - the small ops: SIV_ENCRYPT / SIV_DECRYPT (file names),
 * HMAC, RANDOM, DIGEST, CLOCK_SET and SELFTEST.
 */
#include "dev_internal.h"

#include <string.h>

#include "fwcrypto.h"

#define SIV_SALT "siv-v1"
#define SIV_TAG 16
#define SELFTEST_REPORT 4096
#define CLOCK_VERSION 1

/* ---- SIV ---- */

struct siv_req {
	uint32_t key_id;
	const uint8_t *ad, *data;
	uint32_t ad_len, data_len;
};

static int parse_siv(struct request *r, struct siv_req *q, uint32_t data_max)
{
	wbuf_get_u32(&r->body, &q->key_id);
	wbuf_get_lenbytes(&r->body, &q->ad, &q->ad_len, WIRE_DATA_MAX);
	wbuf_get_lenbytes(&r->body, &q->data, &q->data_len, data_max);
	return wbuf_done(&r->body) ? WIRE_ST_OK : WIRE_ST_MALFORMED;
}

/* The 64-byte AES-256-SIV key of key_id for this ad. */
static int siv_key(struct device *d, const struct siv_req *q, int encrypting, uint8_t key[64])
{
	struct ks_key k;
	int st = dev_key_use(d, q->key_id, encrypting ? WIRE_USE_ENCRYPT : WIRE_USE_DECRYPT, encrypting, &k);

	if (st != WIRE_ST_OK)
		return st;
	if (fw_hkdf_sha256((const uint8_t *)SIV_SALT, strlen(SIV_SALT), k.value, k.len, q->ad,
			   q->ad_len, key, 64) != 0)
		st = WIRE_ST_INTERNAL;
	fw_wipe(&k, sizeof(k));
	return st;
}

int dev_op_siv_encrypt(struct device *d, struct request *r, struct wbuf *resp)
{
	struct siv_req q;
	uint8_t key[64], *out;
	int st = parse_siv(r, &q, WIRE_SIV_MAX);

	if (st != WIRE_ST_OK)
		return st;
	st = siv_key(d, &q, 1, key);
	if (st != WIRE_ST_OK)
		return st;
	if (wbuf_put_u32(resp, q.data_len + SIV_TAG) != 0 || wbuf_reserve(resp, &out, q.data_len + SIV_TAG) != 0)
		st = WIRE_ST_INTERNAL;
	else if (fw_siv_encrypt(key, sizeof(key), q.ad, q.ad_len, q.data, q.data_len, out) != 0)
		st = WIRE_ST_INTERNAL;
	fw_wipe(key, sizeof(key));
	return st;
}

int dev_op_siv_decrypt(struct device *d, struct request *r, struct wbuf *resp)
{
	struct siv_req q;
	uint8_t key[64], *out;
	int st = parse_siv(r, &q, WIRE_SIV_MAX + SIV_TAG);

	if (st != WIRE_ST_OK)
		return st;
	if (q.data_len < SIV_TAG)
		return WIRE_ST_INVALID;
	st = siv_key(d, &q, 0, key);
	if (st != WIRE_ST_OK)
		return st;
	if (wbuf_put_u32(resp, q.data_len - SIV_TAG) != 0 || wbuf_reserve(resp, &out, q.data_len - SIV_TAG) != 0)
		st = WIRE_ST_INTERNAL;
	else if (fw_siv_decrypt(key, sizeof(key), q.ad, q.ad_len, q.data, q.data_len, out) != 0)
		st = WIRE_ST_INTEGRITY;
	fw_wipe(key, sizeof(key));
	return st;
}

/* ---- HMAC, RANDOM, DIGEST ---- */

int dev_op_hmac(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key k;
	const uint8_t *data;
	uint32_t id, len;
	uint8_t *mac;
	int st;

	wbuf_get_u32(&r->body, &id);
	wbuf_get_lenbytes(&r->body, &data, &len, WIRE_DATA_MAX);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	st = dev_key_use(d, id, WIRE_USE_MAC, 0, &k);
	if (st != WIRE_ST_OK)
		return st;
	if (wbuf_reserve(resp, &mac, FW_SHA256) != 0 ||
	    fw_hmac_sha256(k.value, k.len, data, len, NULL, 0, NULL, 0, NULL, 0, mac) != 0)
		st = WIRE_ST_INTERNAL;
	fw_wipe(&k, sizeof(k));
	return st;
}

int dev_op_random(struct device *d, struct request *r, struct wbuf *resp)
{
	uint32_t n;
	uint8_t *out;

	wbuf_get_u32(&r->body, &n);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (n > WIRE_RANDOM_MAX)
		return WIRE_ST_INVALID;
	if (wbuf_put_u32(resp, n) != 0 || wbuf_reserve(resp, &out, n) != 0 || (n && fw_random(out, n) != 0))
		return WIRE_ST_INTERNAL;
	return WIRE_ST_OK;
}

int dev_op_digest(struct device *d, struct request *r, struct wbuf *resp)
{
	const uint8_t *data;
	uint32_t len;
	uint8_t *out;

	wbuf_get_lenbytes(&r->body, &data, &len, WIRE_DATA_MAX);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (wbuf_reserve(resp, &out, FW_SHA256) != 0 || fw_sha256(data, len, out) != 0)
		return WIRE_ST_INTERNAL;
	return WIRE_ST_OK;
}

/* ---- CLOCK_SET ---- */

int dev_op_clock_set(struct device *d, struct request *r, struct wbuf *resp)
{
	uint8_t rec[1 + 8];
	uint64_t secs;
	int64_t offset;
	int rc;

	wbuf_get_u64(&r->body, &secs);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	/* Only times the 24-bit minute clock can express. */
	if (secs < (uint64_t)WIRE_EPOCH || secs > (uint64_t)WIRE_EPOCH + (uint64_t)WIRE_TIME_NEVER * 60)
		return WIRE_ST_INVALID;
	offset = (int64_t)secs - dev_host_time(d);
	rec[0] = CLOCK_VERSION;
	wire_le64(rec + 1, (uint64_t)offset);
	rc = ks_meta_put(d->ks, DEVICE_META_CLOCK, rec, sizeof(rec));
	if (rc != KS_OK)
		return dev_ks_status(rc);
	d->clock_offset = offset;
	return WIRE_ST_OK;
}

/* ---- SELFTEST ---- */

int dev_op_selftest(struct device *d, struct request *r, struct wbuf *resp)
{
	char report[SELFTEST_REPORT];
	int failed;

	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	report[0] = '\0';
	failed = fw_selftest(report, sizeof(report));
	report[sizeof(report) - 1] = '\0';
	wbuf_put_u32(resp, failed < 0 ? 1u : (uint32_t)failed);
	wbuf_put_lenbytes(resp, report, (uint32_t)strlen(report));
	return WIRE_ST_OK;
}
