/*
 * dev_keys.c - the key store as the host sees it: KEY_GENERATE, DESTROY,
 * INFO, LIST, SET_ATTRS, EXPORT, IMPORT and CHANNEL_DERIVE, and the rules
 * every key use goes through (dev_key_use).
 *
 * The rules, enforced here and nowhere else:
 *  - an algorithm fixes the key length and which usage bits it can carry:
 *    data ciphers encrypt/decrypt/MAC, AES256_KW wraps/unwraps, HMAC keys
 *    MAC; a key never mixes WIRE_USE_DATA_MASK with WIRE_USE_WRAP_MASK, so
 *    a key-wrapping key can never decrypt what it unwrapped;
 *  - usage bits can only be dropped (SET_ATTRS), never added;
 *  - export needs an exportable target and a WRAP key inside its validity
 *    window; import needs an UNWRAP key (no window: decrypt direction);
 *  - a backup key (WIRE_USE_BACKUP, made only by PASSPHRASE_DERIVE in
 *    dev_backup.c) exports any key but a backup key, and imports only for
 *    an admin login; no other path sets that bit (attrs_valid refuses it);
 *  - key values are never written to a response in clear, and every copy
 *    in RAM is wiped after use;
 *  - a channel key (CHANNEL_DERIVE) is never exportable and is either a
 *    wrapping key (AES256_KW, WRAP and/or UNWRAP) or an update-sealing key
 *    (AES256_GCM, ENCRYPT and/or DECRYPT), never both;
 *  - a tombstone (EXPORT flag WIRE_EXPORT_TOMBSTONE) is a wrapped blob with
 *    alg 0 that, imported, destroys its key ID: the only way a user login
 *    can lose a key, and only when the admin cube's wrap says so.
 */
#include "dev_internal.h"

#include <string.h>

#include "fwcrypto.h"

#define CHANNEL_SALT "secube-channel-v1"
#define CHANNEL_CONTEXT_MAX 256
#define BLOB_HEAD (4 + 1 + 1 + 4 + 4)           /* id alg usage nb na */
#define BLOB_MAX (((BLOB_HEAD + KS_KEY_MAX + 7) / 8) * 8 + 8)
#define ENTRY_LEN (4 + 1 + 1 + 4 + 4)
#define TOMBSTONE_ALG 0

int dev_ks_status(int ks_err)
{
	switch (ks_err) {
	case KS_OK: return WIRE_ST_OK;
	case KS_ENOENT: return WIRE_ST_NOKEY;
	case KS_EEXIST: return WIRE_ST_EXISTS;
	case KS_EFULL: return WIRE_ST_FULL;
	case KS_EINVAL: return WIRE_ST_INVALID;
	default: return WIRE_ST_INTERNAL;
	}
}

/* Key length of an algorithm; 0 if unknown. */
static uint8_t alg_key_len(uint8_t alg)
{
	switch (alg) {
	case WIRE_ALG_AES256_GCM:
	case WIRE_ALG_AES256_CTR_HMAC:
	case WIRE_ALG_AES256_KW:
	case WIRE_ALG_HMAC_SHA256:
		return 32;
	case WIRE_ALG_AES128_GCM:
		return 16;
	default:
		return 0;
	}
}

/* Usage bits an algorithm may carry. */
static uint8_t alg_usage(uint8_t alg)
{
	const uint8_t common = WIRE_USE_DERIVE | WIRE_USE_EXPORTABLE;

	switch (alg) {
	case WIRE_ALG_AES256_GCM:
	case WIRE_ALG_AES256_CTR_HMAC:
	case WIRE_ALG_AES128_GCM:
		return WIRE_USE_DATA_MASK | common;
	case WIRE_ALG_AES256_KW:
		return WIRE_USE_WRAP_MASK | common;
	case WIRE_ALG_HMAC_SHA256:
		return WIRE_USE_MAC | common;
	default:
		return 0;
	}
}

/* Are these attributes a key may have?  WIRE_ST_OK or INVALID. */
static int attrs_valid(uint8_t alg, uint8_t usage, uint32_t nb, uint32_t na)
{
	if (!alg_key_len(alg) || (usage & ~alg_usage(alg)))
		return WIRE_ST_INVALID;
	if ((usage & WIRE_USE_DATA_MASK) && (usage & WIRE_USE_WRAP_MASK))
		return WIRE_ST_INVALID;
	if (nb > WIRE_TIME_NEVER || na > WIRE_TIME_NEVER || nb > na)
		return WIRE_ST_INVALID;
	return WIRE_ST_OK;
}

int dev_key_use(struct device *d, uint32_t id, uint8_t need, int encrypting, struct ks_key *k)
{
	uint32_t now;
	int rc = ks_key_get(d->ks, id, k);

	if (rc != KS_OK) {
		fw_wipe(k, sizeof(*k));
		return dev_ks_status(rc);
	}
	if ((k->usage & need) != need) {
		fw_wipe(k, sizeof(*k));
		return WIRE_ST_USAGE;
	}
	now = dev_now_minutes(d);
	if (encrypting && (now < k->not_before || now > k->not_after)) {
		fw_wipe(k, sizeof(*k));
		return WIRE_ST_EXPIRED;
	}
	return WIRE_ST_OK;
}

static void put_entry(struct wbuf *resp, const struct ks_key *k)
{
	wbuf_put_u32(resp, k->id);
	wbuf_put_u8(resp, k->alg);
	wbuf_put_u8(resp, k->usage);
	wbuf_put_u32(resp, k->not_before);
	wbuf_put_u32(resp, k->not_after);
}

/* ---- GENERATE, DESTROY, INFO, LIST, SET_ATTRS ---- */

int dev_op_key_generate(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key k;
	int st;

	memset(&k, 0, sizeof(k));
	wbuf_get_u32(&r->body, &k.id);
	wbuf_get_u8(&r->body, &k.alg);
	wbuf_get_u8(&r->body, &k.usage);
	wbuf_get_u32(&r->body, &k.not_before);
	wbuf_get_u32(&r->body, &k.not_after);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	st = attrs_valid(k.alg, k.usage, k.not_before, k.not_after);
	if (st != WIRE_ST_OK)
		return st;
	k.len = alg_key_len(k.alg);
	if (fw_random(k.value, k.len) != 0)
		st = WIRE_ST_INTERNAL;
	else
		st = dev_ks_status(ks_key_put(d->ks, &k, 0));
	fw_wipe(&k, sizeof(k));
	return st;
}

int dev_op_key_destroy(struct device *d, struct request *r, struct wbuf *resp)
{
	uint32_t id;

	wbuf_get_u32(&r->body, &id);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	return dev_ks_status(ks_key_delete(d->ks, id));
}

int dev_op_key_info(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key k;
	uint32_t id;
	int st;

	wbuf_get_u32(&r->body, &id);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	st = dev_key_use(d, id, 0, 0, &k);
	if (st == WIRE_ST_OK)
		put_entry(resp, &k);
	fw_wipe(&k, sizeof(k));
	return st;
}

int dev_op_key_list(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key k;
	uint32_t from, max, n = 0;
	uint8_t *count;
	int rc = KS_OK;

	wbuf_get_u32(&r->body, &from);
	wbuf_get_u32(&r->body, &max);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (max > WIRE_LIST_MAX)
		max = WIRE_LIST_MAX;
	if (wbuf_reserve(resp, &count, 4) < 0)
		return WIRE_ST_INTERNAL;
	while (n < max && (rc = ks_key_next(d->ks, from, &k)) == KS_OK) {
		put_entry(resp, &k);
		n++;
		if (k.id == UINT32_MAX)
			break;
		from = k.id + 1;
		fw_wipe(&k, sizeof(k));
	}
	fw_wipe(&k, sizeof(k));
	if (rc != KS_OK && rc != KS_ENOENT)
		return dev_ks_status(rc);
	wire_le32(count, n);
	return WIRE_ST_OK;
}

int dev_op_key_set_attrs(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key k;
	uint32_t id, nb, na;
	uint8_t usage;
	int st;

	wbuf_get_u32(&r->body, &id);
	wbuf_get_u8(&r->body, &usage);
	wbuf_get_u32(&r->body, &nb);
	wbuf_get_u32(&r->body, &na);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	st = dev_key_use(d, id, 0, 0, &k);
	if (st != WIRE_ST_OK)
		return st;
	if (usage & ~k.usage)
		st = WIRE_ST_INVALID; /* usage may only lose bits */
	else
		st = attrs_valid(k.alg, usage, nb, na);
	if (st == WIRE_ST_OK) {
		k.usage = usage;
		k.not_before = nb;
		k.not_after = na;
		st = dev_ks_status(ks_key_put(d->ks, &k, 1));
	}
	fw_wipe(&k, sizeof(k));
	return st;
}

/* ---- EXPORT, IMPORT ---- */

/* A key-wrapping key for this direction, or why not. */
static int wrapping_key(struct device *d, uint32_t id, int wrap, struct ks_key *kek)
{
	int st = dev_key_use(d, id, wrap ? WIRE_USE_WRAP : WIRE_USE_UNWRAP, wrap, kek);

	if (st == WIRE_ST_OK && kek->alg != WIRE_ALG_AES256_KW) {
		fw_wipe(kek, sizeof(*kek));
		return WIRE_ST_USAGE;
	}
	return st;
}

static int wrap_key(const struct ks_key *kek, const struct ks_key *k, struct wbuf *resp)
{
	uint8_t plain[BLOB_HEAD + KS_KEY_MAX], blob[BLOB_MAX];
	size_t blob_len = 0;
	int st = WIRE_ST_INTERNAL;

	wire_le32(plain, k->id);
	plain[4] = k->alg;
	plain[5] = k->usage;
	wire_le32(plain + 6, k->not_before);
	wire_le32(plain + 10, k->not_after);
	memcpy(plain + BLOB_HEAD, k->value, k->len);
	if (fw_kwp_wrap(kek->value, kek->len, plain, BLOB_HEAD + (size_t)k->len, blob, sizeof(blob),
			&blob_len) == 0 && wbuf_put_lenbytes(resp, blob, (uint32_t)blob_len) == 0)
		st = WIRE_ST_OK;
	fw_wipe(plain, sizeof(plain));
	return st;
}

/* The blob of a tombstone: id, alg 0, usage 0, window 0..0, no value. */
static int wrap_tombstone(const struct ks_key *kek, uint32_t id, struct wbuf *resp)
{
	uint8_t plain[BLOB_HEAD], blob[BLOB_MAX];
	size_t blob_len = 0;

	memset(plain, 0, sizeof(plain));
	wire_le32(plain, id);
	plain[4] = TOMBSTONE_ALG;
	if (fw_kwp_wrap(kek->value, kek->len, plain, sizeof(plain), blob, sizeof(blob), &blob_len) != 0 ||
	    wbuf_put_lenbytes(resp, blob, (uint32_t)blob_len) != 0)
		return WIRE_ST_INTERNAL;
	return WIRE_ST_OK;
}

/* The key to export under kek, or why not.  Under a backup key any key
 * leaves (that is what a backup is for) except a backup key, which never
 * leaves its cube; under any other key only an exportable one. */
static int export_target(struct device *d, const struct ks_key *kek, uint32_t id, struct ks_key *k)
{
	int st;

	if (!(kek->usage & WIRE_USE_BACKUP))
		return dev_key_use(d, id, WIRE_USE_EXPORTABLE, 0, k);
	if (id == kek->id)
		return WIRE_ST_INVALID;
	st = dev_key_use(d, id, 0, 0, k);
	if (st == WIRE_ST_OK && (k->usage & WIRE_USE_BACKUP)) {
		fw_wipe(k, sizeof(*k));
		st = WIRE_ST_USAGE;
	}
	return st;
}

int dev_op_key_export(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key kek, k;
	uint32_t kek_id, id;
	uint8_t flags = 0;
	int st;

	wbuf_get_u32(&r->body, &kek_id);
	wbuf_get_u32(&r->body, &id);
	/* Optional trailing flags byte (absent: a key export as before). */
	if (r->body.pos < r->body.cap)
		wbuf_get_u8(&r->body, &flags);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (flags & ~WIRE_EXPORT_TOMBSTONE)
		return WIRE_ST_INVALID;
	st = wrapping_key(d, kek_id, 1, &kek);
	if (st != WIRE_ST_OK)
		return st;
	memset(&k, 0, sizeof(k));
	if (flags & WIRE_EXPORT_TOMBSTONE)
		st = id == kek_id ? WIRE_ST_INVALID : wrap_tombstone(&kek, id, resp);
	else if ((st = export_target(d, &kek, id, &k)) == WIRE_ST_OK)
		st = wrap_key(&kek, &k, resp);
	fw_wipe(&kek, sizeof(kek));
	fw_wipe(&k, sizeof(k));
	return st;
}

/* Parse an unwrapped blob into k.  A tombstone comes back with alg 0. */
static int parse_blob(const uint8_t *plain, size_t len, struct ks_key *k)
{
	struct wbuf b;
	const uint8_t *value;
	int st;

	memset(k, 0, sizeof(*k));
	wbuf_reader(&b, plain, len);
	wbuf_get_u32(&b, &k->id);
	wbuf_get_u8(&b, &k->alg);
	wbuf_get_u8(&b, &k->usage);
	wbuf_get_u32(&b, &k->not_before);
	wbuf_get_u32(&b, &k->not_after);
	if (!wbuf_ok(&b))
		return WIRE_ST_INVALID;
	if (k->alg == TOMBSTONE_ALG)
		return wbuf_done(&b) && k->usage == 0 && k->not_before == 0 && k->not_after == 0
			       ? WIRE_ST_OK : WIRE_ST_INVALID;
	st = attrs_valid(k->alg, k->usage, k->not_before, k->not_after);
	if (st != WIRE_ST_OK)
		return st;
	k->len = alg_key_len(k->alg);
	wbuf_get_span(&b, &value, k->len);
	if (!wbuf_done(&b))
		return WIRE_ST_INVALID;
	memcpy(k->value, value, k->len);
	return WIRE_ST_OK;
}

int dev_op_key_import(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key kek, k;
	uint8_t plain[BLOB_MAX];
	const uint8_t *blob;
	uint32_t kek_id, blob_len;
	size_t plain_len = 0;
	int st;

	wbuf_get_u32(&r->body, &kek_id);
	wbuf_get_lenbytes(&r->body, &blob, &blob_len, BLOB_MAX);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	st = wrapping_key(d, kek_id, 0, &kek);
	if (st != WIRE_ST_OK)
		return st;
	/* Restoring a backup rewrites the whole key store: the admin's call. */
	if ((kek.usage & WIRE_USE_BACKUP) && r->s->role != WIRE_ROLE_ADMIN) {
		fw_wipe(&kek, sizeof(kek));
		return WIRE_ST_PERM;
	}
	memset(&k, 0, sizeof(k));
	if (fw_kwp_unwrap(kek.value, kek.len, blob, blob_len, plain, sizeof(plain), &plain_len) != 0)
		st = WIRE_ST_INTEGRITY;
	else
		st = parse_blob(plain, plain_len, &k);
	/* The unwrapping key cannot be replaced through itself. */
	if (st == WIRE_ST_OK && k.id == kek_id)
		st = WIRE_ST_INVALID;
	if (st == WIRE_ST_OK && k.alg == TOMBSTONE_ALG) {
		/* Destroy; a key already gone counts as destroyed (retries converge). */
		st = dev_ks_status(ks_key_delete(d->ks, k.id));
		if (st == WIRE_ST_NOKEY)
			st = WIRE_ST_OK;
	} else if (st == WIRE_ST_OK) {
		st = dev_ks_status(ks_key_put(d->ks, &k, 1));
	}
	if (st == WIRE_ST_OK)
		wbuf_put_u32(resp, k.id);
	fw_wipe(plain, sizeof(plain));
	fw_wipe(&kek, sizeof(kek));
	fw_wipe(&k, sizeof(k));
	return st;
}

/* ---- CHANNEL_DERIVE ---- */

/* HKDF info: min(pub) || max(pub) || [alg] || context.  The legacy form
 * (no alg/usage in the request) has no alg byte. */
static int channel_key(struct device *d, const uint8_t peer[WIRE_PUBKEY_LEN], int with_alg,
		       uint8_t alg, const uint8_t *ctx, uint32_t ctx_len, uint8_t out[32])
{
	uint8_t shared[FW_X25519], info[2 * WIRE_PUBKEY_LEN + 1 + CHANNEL_CONTEXT_MAX];
	int first_is_mine = memcmp(d->pub, peer, WIRE_PUBKEY_LEN) < 0;
	size_t pos = 2 * WIRE_PUBKEY_LEN;
	int rc;

	memcpy(info, first_is_mine ? d->pub : peer, WIRE_PUBKEY_LEN);
	memcpy(info + WIRE_PUBKEY_LEN, first_is_mine ? peer : d->pub, WIRE_PUBKEY_LEN);
	if (with_alg)
		info[pos++] = alg;
	memcpy(info + pos, ctx, ctx_len);
	pos += ctx_len;
	rc = fw_x25519(d->priv, peer, shared);
	if (rc == 0)
		rc = fw_hkdf_sha256((const uint8_t *)CHANNEL_SALT, strlen(CHANNEL_SALT), shared,
				    sizeof(shared), info, pos, out, 32);
	fw_wipe(shared, sizeof(shared));
	return rc;
}

/* May a channel key have alg and usage?  Wrap-only or data-only, never
 * exportable, at least one bit. */
static int channel_attrs_valid(uint8_t alg, uint8_t usage)
{
	if (alg == WIRE_ALG_AES256_KW)
		return usage && !(usage & ~WIRE_USE_WRAP_MASK);
	if (alg == WIRE_ALG_AES256_GCM)
		return usage && !(usage & ~(WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT));
	return 0;
}

int dev_op_channel_derive(struct device *d, struct request *r, struct wbuf *resp)
{
	const uint8_t *peer, *ctx;
	uint32_t ctx_len, legacy_len = 0;
	struct ks_key k;
	struct wbuf peek;
	int legacy, st;

	memset(&k, 0, sizeof(k));
	wbuf_get_u32(&r->body, &k.id);
	wbuf_get_span(&r->body, &peer, WIRE_PUBKEY_LEN);
	if (!wbuf_ok(&r->body))
		return WIRE_ST_MALFORMED;
	/* The legacy body (no alg/usage) is lenbytes context right after the
	 * key; a valid new body can never look like one (docs/PROTOCOL.md). */
	peek = r->body;
	wbuf_get_u32(&peek, &legacy_len);
	legacy = wbuf_ok(&peek) && legacy_len == peek.cap - peek.pos;
	if (legacy) {
		k.alg = WIRE_ALG_AES256_KW;
		k.usage = WIRE_USE_WRAP | WIRE_USE_UNWRAP;
	} else {
		wbuf_get_u8(&r->body, &k.alg);
		wbuf_get_u8(&r->body, &k.usage);
	}
	wbuf_get_lenbytes(&r->body, &ctx, &ctx_len, CHANNEL_CONTEXT_MAX);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (!channel_attrs_valid(k.alg, k.usage))
		return WIRE_ST_INVALID;
	k.not_before = 0;
	k.not_after = WIRE_TIME_NEVER;
	k.len = 32;
	if (channel_key(d, peer, !legacy, k.alg, ctx, ctx_len, k.value) != 0)
		st = WIRE_ST_INVALID; /* a small-order peer key */
	else
		st = dev_ks_status(ks_key_put(d->ks, &k, 0));
	fw_wipe(&k, sizeof(k));
	return st;
}
