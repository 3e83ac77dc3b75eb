/*
 * names.c - encrypted file names: a path component is sealed with AES-SIV
 * in the cube (deterministic, so a lookup finds the same backing name),
 * bound to its directory's 16-byte ID, and written in base64url without
 * padding.  An encoding longer than 255 bytes becomes a long name:
 * "sl." + base64url(SHA-256(encoding)), with the full encoding in a side
 * file named that + ".name" (docs/FORMAT.md, "Names").
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "sefile_impl.h"

#define SIV_LEN 16
#define HASHNAME_LEN (sizeof(SEFILE_LONGNAME_PREFIX) - 1 + 43) /* 43 = b64url(32 bytes) */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encoded length of n bytes, unpadded. */
size_t sefile_b64_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void sefile_b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
	}
	out[o] = '\0';
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict decode: alphabet only, no padding, canonical (unused low bits
 * zero), so every name has exactly one encoding.  -1 if not. */
int sefile_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;

	*outlen = 0;
	if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
		return -1;
	for (i = 0; i < len; i++) {
		int v = b64_value(in[i]);

		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	*outlen = o;
	return 0;
}

static int name_is_valid(const char *name, size_t len)
{
	return len > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

/* "sl." + base64url(SHA-256(full)) into out[HASHNAME_LEN + 1]. */
static int long_name_of(const char *full, char *out)
{
	uint8_t h[32];
	unsigned hl = 0;

	if (EVP_Digest(full, strlen(full), h, &hl, EVP_sha256(), NULL) != 1 || hl != sizeof(h))
		return seterr(SEFILE_ENOMEM, "name: SHA-256 failed");
	memcpy(out, SEFILE_LONGNAME_PREFIX, sizeof(SEFILE_LONGNAME_PREFIX) - 1);
	sefile_b64_encode(h, sizeof(h), out + sizeof(SEFILE_LONGNAME_PREFIX) - 1);
	return SEFILE_OK;
}

int sefile_name_encrypt(struct sefile_cube *pool, uint32_t key_id,
			const uint8_t dir_id[WIRE_FILE_ID_LEN], const char *name,
			char *out, size_t out_cap, int *is_long, char *full, size_t full_cap)
{
	uint8_t ct[SEFILE_NAME_MAX + SIV_LEN];
	char enc[SEFILE_ENCNAME_FULL_MAX + 1];
	size_t len;
	struct cube *c;
	int rc;

	if (out && out_cap)
		out[0] = '\0';
	if (full && full_cap)
		full[0] = '\0';
	if (is_long)
		*is_long = 0;
	if (!pool || !dir_id || !name || !out || !is_long)
		return seterr(SEFILE_EINVAL, "name: bad arguments");
	len = strnlen(name, SEFILE_NAME_MAX + 1);
	if (len > SEFILE_NAME_MAX)
		return seterr(SEFILE_ENAMETOOLONG, "name: longer than %d bytes", SEFILE_NAME_MAX);
	if (!name_is_valid(name, len))
		return seterr(SEFILE_EINVAL, "name: \"\", \".\", \"..\" and names with '/' are not file names");
	c = sefile_cube_get(pool);
	rc = cube_siv_encrypt(c, key_id, dir_id, WIRE_FILE_ID_LEN, (const uint8_t *)name, len, ct);
	if (rc != CUBE_OK)
		rc = seterr(map_cube_err(rc), "name: cube cannot encrypt under key %u: %s", key_id,
			    cube_errmsg(c));
	sefile_cube_put(pool, c);
	if (rc != SEFILE_OK)
		return rc == SEFILE_EINTEGRITY ? SEFILE_ECUBE : rc;
	sefile_b64_encode(ct, len + SIV_LEN, enc);
	if (sefile_b64_len(len + SIV_LEN) <= SEFILE_ENCNAME_MAX) {
		if (out_cap < sefile_b64_len(len + SIV_LEN) + 1)
			return seterr(SEFILE_EINVAL, "name: output buffer too small");
		memcpy(out, enc, sefile_b64_len(len + SIV_LEN) + 1);
		return SEFILE_OK;
	}
	if (out_cap < HASHNAME_LEN + 1 || !full || full_cap < strlen(enc) + 1)
		return seterr(SEFILE_EINVAL, "name: output buffers too small for a long name");
	rc = long_name_of(enc, out);
	if (rc != SEFILE_OK)
		return rc;
	memcpy(full, enc, strlen(enc) + 1);
	*is_long = 1;
	return SEFILE_OK;
}

/* The SIV input of an encoded name: strict base64url of siv || ct with a
 * non-empty ct.  SEFILE_OK (ct[*ctlen] set) or SEFILE_EINTEGRITY. */
static int name_ciphertext(const char *enc, uint8_t ct[SEFILE_NAME_MAX + SIV_LEN], size_t *ctlen)
{
	size_t elen = strnlen(enc, SEFILE_ENCNAME_FULL_MAX + 1);

	*ctlen = 0;
	if (elen > SEFILE_ENCNAME_FULL_MAX ||
	    sefile_b64_decode(enc, elen, ct, SEFILE_NAME_MAX + SIV_LEN, ctlen) != 0 ||
	    *ctlen <= SIV_LEN)
		return seterr(SEFILE_EINTEGRITY, "name \"%.64s\": not an encrypted name", enc);
	return SEFILE_OK;
}

/* A decrypted name is a valid name and fits out; then out gets it. */
static int name_plaintext(const char *enc, const uint8_t *pt, size_t ptlen, char *out,
			  size_t out_cap)
{
	if (!name_is_valid((const char *)pt, ptlen))
		return seterr(SEFILE_EINTEGRITY, "name \"%.64s\": decrypts to an invalid name", enc);
	if (out_cap < ptlen + 1)
		return seterr(SEFILE_EINVAL, "name: output buffer too small");
	memcpy(out, pt, ptlen);
	out[ptlen] = '\0';
	return SEFILE_OK;
}

static int name_auth_failed(const char *enc)
{
	return seterr(SEFILE_EINTEGRITY,
		      "name \"%.64s\": authentication failed (tampered, moved from another directory, or another key)",
		      enc);
}

int sefile_name_decrypt(struct sefile_cube *pool, uint32_t key_id,
			const uint8_t dir_id[WIRE_FILE_ID_LEN], const char *enc,
			char *out, size_t out_cap)
{
	uint8_t ct[SEFILE_NAME_MAX + SIV_LEN], pt[SEFILE_NAME_MAX + SIV_LEN];
	size_t ctlen;
	struct cube *c;
	int rc;

	if (out && out_cap)
		out[0] = '\0';
	if (!pool || !dir_id || !enc || !out)
		return seterr(SEFILE_EINVAL, "name: bad arguments");
	rc = name_ciphertext(enc, ct, &ctlen);
	if (rc != SEFILE_OK)
		return rc;
	c = sefile_cube_get(pool);
	rc = cube_siv_decrypt(c, key_id, dir_id, WIRE_FILE_ID_LEN, ct, ctlen, pt);
	if (rc == CUBE_EINTEGRITY)
		rc = name_auth_failed(enc);
	else if (rc != CUBE_OK)
		rc = seterr(map_cube_err(rc), "name: cube cannot decrypt under key %u: %s", key_id,
			    cube_errmsg(c));
	sefile_cube_put(pool, c);
	if (rc == SEFILE_OK)
		rc = name_plaintext(enc, pt, ctlen - SIV_LEN, out, out_cap);
	OPENSSL_cleanse(pt, sizeof(pt));
	return rc;
}

/* Buffers of one cube request of a name batch, cap names each. */
typedef uint8_t name_bytes[SEFILE_NAME_MAX + SIV_LEN];
struct name_batch_bufs {
	size_t cap;
	struct cube_siv_item *items;
	size_t *which;  /* index into the caller's names */
	name_bytes *ct, *pt;
};

static void name_batch_free(struct name_batch_bufs *b)
{
	if (b->pt)
		OPENSSL_cleanse(b->pt, b->cap * sizeof(*b->pt));
	free(b->items);
	free(b->which);
	free(b->ct);
	free(b->pt);
}

static int name_batch_alloc(struct name_batch_bufs *b, size_t cap)
{
	b->cap = cap;
	b->items = calloc(cap, sizeof(*b->items));
	b->which = calloc(cap, sizeof(*b->which));
	b->ct = calloc(cap, sizeof(*b->ct));
	b->pt = calloc(cap, sizeof(*b->pt));
	if (b->items && b->which && b->ct && b->pt)
		return 0;
	name_batch_free(b);
	return -1;
}

/* One cube request for names[first..first+count): the ones that decode
 * go to the cube, each gets its rc.  SEFILE_OK or the whole request's
 * error (every name sent then has it as its rc). */
static int name_batch_round(struct sefile_cube *pool, uint32_t key_id,
			    const uint8_t dir_id[WIRE_FILE_ID_LEN], struct sefile_name_item *names,
			    size_t count, struct name_batch_bufs *b)
{
	size_t i, n = 0, ctlen;
	struct cube *c;
	int rc = SEFILE_OK;

	for (i = 0; i < count; i++) {
		names[i].rc = name_ciphertext(names[i].enc, b->ct[n], &ctlen);
		if (names[i].rc != SEFILE_OK)
			continue;
		b->items[n] = (struct cube_siv_item){ .ad = dir_id, .ad_len = WIRE_FILE_ID_LEN,
						      .in = b->ct[n], .len = ctlen, .out = b->pt[n] };
		b->which[n++] = i;
	}
	if (n == 0)
		return SEFILE_OK;
	c = sefile_cube_get(pool);
	rc = cube_siv_decrypt_batch(c, key_id, b->items, n);
	if (rc != CUBE_OK)
		rc = seterr(map_cube_err(rc), "name: cube cannot decrypt under key %u: %s", key_id,
			    cube_errmsg(c));
	sefile_cube_put(pool, c);
	for (i = 0; i < n; i++) {
		struct sefile_name_item *it = &names[b->which[i]];

		if (rc != SEFILE_OK)
			it->rc = rc == SEFILE_EINTEGRITY ? SEFILE_ECUBE : rc;
		else if (b->items[i].status != CUBE_OK)
			it->rc = name_auth_failed(it->enc);
		else
			it->rc = name_plaintext(it->enc, b->pt[i], b->items[i].len - SIV_LEN, it->out,
						it->out_cap);
	}
	return rc == SEFILE_EINTEGRITY ? SEFILE_ECUBE : rc;
}

int sefile_name_decrypt_batch(struct sefile_cube *pool, uint32_t key_id,
			      const uint8_t dir_id[WIRE_FILE_ID_LEN], struct sefile_name_item *names,
			      size_t n)
{
	struct name_batch_bufs b;
	size_t i, done, count;
	int rc = SEFILE_OK;

	for (i = 0; names && i < n; i++) {
		if (names[i].out && names[i].out_cap)
			names[i].out[0] = '\0';
		names[i].rc = SEFILE_EINVAL;
	}
	if (!pool || !dir_id || (!names && n))
		return seterr(SEFILE_EINVAL, "name: bad arguments");
	for (i = 0; i < n; i++)
		if (!names[i].enc || !names[i].out)
			return seterr(SEFILE_EINVAL, "name %zu of the batch: bad arguments", i);
	if (n == 0)
		return SEFILE_OK;
	if (name_batch_alloc(&b, n < WIRE_SIV_BATCH_MAX ? n : WIRE_SIV_BATCH_MAX) != 0) {
		rc = seterr(SEFILE_ENOMEM, "name: out of memory for a batch of %zu", n);
		for (i = 0; i < n; i++)
			names[i].rc = rc;
		return rc;
	}
	for (done = 0; done < n; done += count) {
		count = n - done < WIRE_SIV_BATCH_MAX ? n - done : WIRE_SIV_BATCH_MAX;
		if (rc == SEFILE_OK)
			rc = name_batch_round(pool, key_id, dir_id, names + done, count, &b);
		else
			for (i = done; i < done + count; i++)
				names[i].rc = rc;
	}
	name_batch_free(&b);
	return rc;
}

static int is_b64_span(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b64_value(s[i]) < 0)
			return 0;
	return 1;
}

int sefile_name_is_long(const char *backing_name)
{
	size_t plen = sizeof(SEFILE_LONGNAME_PREFIX) - 1;

	return backing_name && strlen(backing_name) == HASHNAME_LEN &&
	       strncmp(backing_name, SEFILE_LONGNAME_PREFIX, plen) == 0 &&
	       is_b64_span(backing_name + plen, HASHNAME_LEN - plen);
}

int sefile_name_is_side_file(const char *backing_name)
{
	char base[HASHNAME_LEN + 1];
	size_t slen = sizeof(SEFILE_LONGNAME_SUFFIX) - 1;

	if (!backing_name || strlen(backing_name) != HASHNAME_LEN + slen ||
	    strcmp(backing_name + HASHNAME_LEN, SEFILE_LONGNAME_SUFFIX) != 0)
		return 0;
	memcpy(base, backing_name, HASHNAME_LEN);
	base[HASHNAME_LEN] = '\0';
	return sefile_name_is_long(base);
}

int sefile_name_long_matches(const char *backing_name, const char *full)
{
	char want[HASHNAME_LEN + 1];

	if (!sefile_name_is_long(backing_name) || !full ||
	    strnlen(full, SEFILE_ENCNAME_FULL_MAX + 1) > SEFILE_ENCNAME_FULL_MAX)
		return 0;
	if (long_name_of(full, want) != SEFILE_OK)
		return 0;
	return CRYPTO_memcmp(want, backing_name, HASHNAME_LEN) == 0;
}
