/*
 * dev_misc.c - the small ops: SIV_ENCRYPT, SIV_DECRYPT and
 * SIV_DECRYPT_BATCH (file names), HMAC, RANDOM, DIGEST, CLOCK_SET and
 * SELFTEST.
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

/* ---- SIV_DECRYPT_BATCH ---- */

/* Walk the n items once, checking every length before any key is loaded:
 * each ad <= WIRE_DATA_MAX, each siv||ct 16..WIRE_SIV_MAX+16, no trailing
 * bytes.  items is left at the first item. */
static int check_siv_batch(struct request *r, uint32_t *key_id, uint32_t *n, struct wbuf *items)
{
	const uint8_t *p;
	uint32_t i, len;

	wbuf_get_u32(&r->body, key_id);
	wbuf_get_u32(&r->body, n);
	if (!wbuf_ok(&r->body))
		return WIRE_ST_MALFORMED;
	if (*n == 0 || *n > WIRE_SIV_BATCH_MAX)
		return WIRE_ST_INVALID;
	*items = r->body;
	for (i = 0; i < *n; i++) {
		wbuf_get_lenbytes(&r->body, &p, &len, WIRE_DATA_MAX);
		wbuf_get_lenbytes(&r->body, &p, &len, WIRE_SIV_MAX + SIV_TAG);
		if (!wbuf_ok(&r->body))
			return WIRE_ST_MALFORMED;
		if (len < SIV_TAG)
			return WIRE_ST_INVALID;
	}
	return wbuf_done(&r->body) ? WIRE_ST_OK : WIRE_ST_MALFORMED;
}

/* One item into resp: u8 status lenbytes plaintext.  The SIV key is
 * derived again only when the ad changes (a directory's names share it). */
static int siv_batch_item(const struct ks_key *k, struct wbuf *items,
			  const uint8_t **last_ad, uint32_t *last_ad_len, uint8_t key[64],
			  uint8_t pt[WIRE_SIV_MAX], struct wbuf *resp)
{
	const uint8_t *ad, *ct;
	uint32_t ad_len, ct_len;
	int ok;

	wbuf_get_lenbytes(items, &ad, &ad_len, WIRE_DATA_MAX);
	wbuf_get_lenbytes(items, &ct, &ct_len, WIRE_SIV_MAX + SIV_TAG);
	if (!wbuf_ok(items))
		return WIRE_ST_INTERNAL; /* checked before: cannot happen */
	if (*last_ad == NULL || ad_len != *last_ad_len || (ad_len && memcmp(ad, *last_ad, ad_len) != 0)) {
		*last_ad = NULL;
		if (fw_hkdf_sha256((const uint8_t *)SIV_SALT, strlen(SIV_SALT), k->value, k->len, ad,
				   ad_len, key, 64) != 0)
			return WIRE_ST_INTERNAL;
		*last_ad = ad;
		*last_ad_len = ad_len;
	}
	ok = fw_siv_decrypt(key, 64, ad, ad_len, ct, ct_len, pt) == 0;
	if (wbuf_put_u8(resp, ok ? WIRE_ST_OK : WIRE_ST_INTEGRITY) != 0 ||
	    wbuf_put_lenbytes(resp, pt, ok ? ct_len - SIV_TAG : 0) != 0)
		return WIRE_ST_INTERNAL;
	return WIRE_ST_OK;
}

int dev_op_siv_decrypt_batch(struct device *d, struct request *r, struct wbuf *resp)
{
	struct wbuf items;
	struct ks_key k;
	const uint8_t *last_ad = NULL;
	uint32_t key_id = 0, n = 0, last_ad_len = 0, i;
	uint8_t key[64], pt[WIRE_SIV_MAX];
	int st = check_siv_batch(r, &key_id, &n, &items);

	if (st != WIRE_ST_OK)
		return st;
	st = dev_key_use(d, key_id, WIRE_USE_DECRYPT, 0, &k);
	if (st != WIRE_ST_OK)
		return st;
	if (wbuf_put_u32(resp, n) != 0)
		st = WIRE_ST_INTERNAL;
	for (i = 0; i < n && st == WIRE_ST_OK; i++)
		st = siv_batch_item(&k, &items, &last_ad, &last_ad_len, key, pt, resp);
	fw_wipe(&k, sizeof(k));
	fw_wipe(key, sizeof(key));
	fw_wipe(pt, sizeof(pt));
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
