/*
 * dev_backup.c - PASSPHRASE_DERIVE: keys derived inside the cube from a
 * passphrase the host seals under the session's pin_key, so that a backup
 * made in one cube (KEY_EXPORT under the derived backup key) can be
 * restored into another (KEY_IMPORT under the same key derived there).
 *
 * Why it is safe enough: the passphrase crosses the wire only sealed (as a
 * new PIN does, docs/PROTOCOL.md), the derived keys are never exportable,
 * and only an admin login may derive.  The backup bit (WIRE_USE_BACKUP) is
 * set here and nowhere else; dev_keys.c gives it its meaning.  Who holds
 * the admin PIN can therefore take every key out of the cube under a
 * passphrase they choose: the price of having a backup at all
 * (docs/BACKUP.md).
 */
#include "dev_backup.h"

#include <string.h>

#include "fwcrypto.h"

#define PASS_SALT "secube-passphrase-v1"

/* The usage a derived key of alg gets; 0 if alg cannot be derived. */
static uint8_t derived_usage(uint8_t alg)
{
	switch (alg) {
	case WIRE_ALG_AES256_KW: return WIRE_USE_WRAP | WIRE_USE_UNWRAP | WIRE_USE_BACKUP;
	case WIRE_ALG_AES256_GCM: return WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT;
	case WIRE_ALG_HMAC_SHA256: return WIRE_USE_MAC;
	default: return 0;
	}
}

/* Open the sealed passphrase: AES-256-GCM under pin_key, nonce seq || op
 * || 00 00 (the SET_PIN rule).  0 with *len set, or -1. */
static int open_passphrase(const struct request *r, const uint8_t *sealed, uint32_t sealed_len,
			   uint8_t out[WIRE_PASSPHRASE_MAX], size_t *len)
{
	uint8_t nonce[FW_GCM_NONCE];

	*len = 0;
	if (sealed_len < FW_GCM_TAG || sealed_len - FW_GCM_TAG > WIRE_PASSPHRASE_MAX)
		return -1;
	memset(nonce, 0, sizeof(nonce));
	wire_le64(nonce, r->h.seq);
	wire_le16(nonce + 8, r->h.op);
	if (fw_gcm_open(r->s->pin_key, 32, nonce, NULL, 0, sealed, sealed_len - FW_GCM_TAG,
			sealed + sealed_len - FW_GCM_TAG, out) != 0)
		return -1;
	*len = sealed_len - FW_GCM_TAG;
	return 0;
}

/* The requested keys: n (id, alg) pairs, distinct algs that can be
 * derived, distinct ids not taken.  WIRE_ST_OK or why not. */
static int parse_targets(struct device *d, struct wbuf *b, uint32_t ids[WIRE_DERIVE_MAX_KEYS],
			 uint8_t algs[WIRE_DERIVE_MAX_KEYS], uint8_t *n)
{
	struct ks_key have;
	int rc;

	wbuf_get_u8(b, n);
	if (!wbuf_ok(b) || *n == 0 || *n > WIRE_DERIVE_MAX_KEYS)
		return wbuf_ok(b) ? WIRE_ST_INVALID : WIRE_ST_MALFORMED;
	for (uint8_t i = 0; i < *n; i++) {
		wbuf_get_u32(b, &ids[i]);
		wbuf_get_u8(b, &algs[i]);
	}
	if (!wbuf_done(b))
		return WIRE_ST_MALFORMED;
	for (uint8_t i = 0; i < *n; i++) {
		if (!derived_usage(algs[i]))
			return WIRE_ST_INVALID;
		for (uint8_t j = 0; j < i; j++)
			if (algs[j] == algs[i] || ids[j] == ids[i])
				return WIRE_ST_INVALID;
		rc = ks_key_get(d->ks, ids[i], &have);
		fw_wipe(&have, sizeof(have));
		if (rc == KS_OK)
			return WIRE_ST_EXISTS;
		if (rc != KS_ENOENT)
			return dev_ks_status(rc);
	}
	return WIRE_ST_OK;
}

/* Derive and store the n keys from prk; on a failure the ones already
 * stored are deleted again (all or nothing). */
static int store_keys(struct device *d, const uint8_t prk[32], const uint32_t *ids,
		      const uint8_t *algs, uint8_t n)
{
	struct ks_key k;
	uint8_t info[2];
	uint8_t stored;
	int st = WIRE_ST_OK;

	for (stored = 0; stored < n; stored++) {
		memset(&k, 0, sizeof(k));
		k.id = ids[stored];
		k.alg = algs[stored];
		k.usage = derived_usage(k.alg);
		k.not_before = 0;
		k.not_after = WIRE_TIME_NEVER;
		k.len = 32;
		info[0] = k.alg;
		info[1] = k.usage;
		if (fw_hkdf_sha256((const uint8_t *)PASS_SALT, strlen(PASS_SALT), prk, 32, info,
				   sizeof(info), k.value, k.len) != 0)
			st = WIRE_ST_INTERNAL;
		else
			st = dev_ks_status(ks_key_put(d->ks, &k, 0));
		fw_wipe(&k, sizeof(k));
		if (st != WIRE_ST_OK)
			break;
	}
	if (st != WIRE_ST_OK)
		for (uint8_t i = 0; i < stored; i++)
			ks_key_delete(d->ks, ids[i]);
	return st;
}

int dev_op_passphrase_derive(struct device *d, struct request *r, struct wbuf *resp)
{
	const uint8_t *salt, *sealed;
	uint32_t iterations, salt_len, sealed_len, ids[WIRE_DERIVE_MAX_KEYS];
	uint8_t algs[WIRE_DERIVE_MAX_KEYS], n = 0;
	uint8_t pass[WIRE_PASSPHRASE_MAX], prk[32];
	size_t pass_len = 0;
	int st;

	wbuf_get_u32(&r->body, &iterations);
	wbuf_get_lenbytes(&r->body, &salt, &salt_len, WIRE_PBKDF2_SALT_MAX);
	wbuf_get_lenbytes(&r->body, &sealed, &sealed_len, WIRE_PASSPHRASE_MAX + FW_GCM_TAG);
	if (!wbuf_ok(&r->body))
		return WIRE_ST_MALFORMED;
	st = parse_targets(d, &r->body, ids, algs, &n);
	if (st != WIRE_ST_OK)
		return st;
	if (iterations < WIRE_PBKDF2_ITER_MIN || iterations > WIRE_PBKDF2_ITER_MAX ||
	    salt_len < WIRE_PBKDF2_SALT_MIN)
		return WIRE_ST_INVALID;
	if (open_passphrase(r, sealed, sealed_len, pass, &pass_len) != 0)
		return WIRE_ST_INTEGRITY;
	if (pass_len < WIRE_PASSPHRASE_MIN)
		st = WIRE_ST_INVALID;
	else if (fw_pbkdf2_sha256(pass, pass_len, salt, salt_len, iterations, prk, sizeof(prk)) != 0)
		st = WIRE_ST_INTERNAL;
	else
		st = store_keys(d, prk, ids, algs, n);
	fw_wipe(pass, sizeof(pass));
	fw_wipe(prk, sizeof(prk));
	return st;
}
