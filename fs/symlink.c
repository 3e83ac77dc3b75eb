/*
 * symlink.c - encrypted symlink targets.  A backing symlink's target is
 *   KKKKKKKK "." base64url(SIV(key K, ad, r[16] || target))
 * with K the key ID in 8 hex digits and r 16 random bytes (so two links to
 * the same place do not look alike).  The target's length follows from
 * the stored length, so lstat needs no crypto.  Targets are limited to
 * WIRE_SIV_MAX - 16 bytes (1008).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "internal.h"

#define LINK_AD       "sekeyfs symlink v1"
#define LINK_RAND     16
#define LINK_SIV      16
#define LINK_PREFIX   9     /* 8 hex digits and a dot */
#define LINK_MAX      (WIRE_SIV_MAX - LINK_RAND)

uint64_t fs_symlink_plain_len(uint64_t stored_len)
{
	uint64_t b, bytes;

	if (stored_len < LINK_PREFIX)
		return 0;
	b = stored_len - LINK_PREFIX;
	bytes = b / 4 * 3 + (b % 4 ? b % 4 - 1 : 0);
	return bytes >= LINK_RAND + LINK_SIV ? bytes - LINK_RAND - LINK_SIV : 0;
}

int fs_symlink_encrypt(struct sekeyfs *fs, uint32_t key_id, const char *target, char *out,
		       size_t cap)
{
	uint8_t pt[WIRE_SIV_MAX], ct[WIRE_SIV_MAX + LINK_SIV];
	size_t len = strlen(target);
	struct cube *c;
	int rc;

	if (len > LINK_MAX)
		return -ENAMETOOLONG;
	if (cap < LINK_PREFIX + sefile_b64_len(LINK_RAND + len + LINK_SIV) + 1)
		return -ENAMETOOLONG;
	rc = fs_random(pt, LINK_RAND);
	if (rc)
		return rc;
	memcpy(pt + LINK_RAND, target, len);
	c = sefile_cube_get(fs->pool);
	rc = cube_siv_encrypt(c, key_id, (const uint8_t *)LINK_AD, sizeof(LINK_AD) - 1, pt,
			      LINK_RAND + len, ct);
	fs_cube_check(fs, rc);
	if (rc != CUBE_OK)
		fs_log(fs, LOG_WARNING, "symlink: cube cannot encrypt under key %u: %s", key_id,
		       cube_errmsg(c));
	sefile_cube_put(fs->pool, c);
	OPENSSL_cleanse(pt, sizeof(pt));
	if (rc == CUBE_ENOKEY || rc == CUBE_EUSAGE || rc == CUBE_EPERM)
		return -ENOKEY;
	if (rc == CUBE_EEXPIRED)
		return -EKEYEXPIRED;
	if (rc != CUBE_OK)
		return -EIO;
	snprintf(out, cap, "%08x.", key_id);
	sefile_b64_encode(ct, LINK_RAND + len + LINK_SIV, out + LINK_PREFIX);
	return 0;
}

static int parse_key(const char *s, uint32_t *key)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 8; i++) {
		char ch = s[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;

		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	if (s[8] != '.')
		return -1;
	*key = v;
	return 0;
}

int fs_symlink_decrypt(struct sekeyfs *fs, const char *stored, char *out, size_t cap)
{
	uint8_t ct[WIRE_SIV_MAX + LINK_SIV], pt[WIRE_SIV_MAX];
	size_t slen = strlen(stored);
	uint32_t key;
	struct cube *c;
	size_t got;
	long n;
	int rc;

	if (slen < LINK_PREFIX || parse_key(stored, &key) != 0)
		goto bad;
	if (sefile_b64_decode(stored + LINK_PREFIX, slen - LINK_PREFIX, ct, sizeof(ct), &got) != 0 ||
	    got < LINK_RAND + LINK_SIV)
		goto bad;
	n = (long)got;
	c = sefile_cube_get(fs->pool);
	rc = cube_siv_decrypt(c, key, (const uint8_t *)LINK_AD, sizeof(LINK_AD) - 1, ct,
			      (size_t)n, pt);
	fs_cube_check(fs, rc);
	if (rc != CUBE_OK)
		fs_log(fs, rc == CUBE_EINTEGRITY ? LOG_ERR : LOG_WARNING,
		       "symlink: cannot decrypt its target under key %u: %s", key, cube_errmsg(c));
	sefile_cube_put(fs->pool, c);
	if (rc == CUBE_ENOKEY || rc == CUBE_EUSAGE || rc == CUBE_EPERM)
		return -ENOKEY;
	if (rc != CUBE_OK)
		return -EIO;
	n -= LINK_RAND + LINK_SIV;
	if ((size_t)n + 1 > cap || memchr(pt + LINK_RAND, '\0', (size_t)n)) {
		OPENSSL_cleanse(pt, sizeof(pt));
		goto bad;
	}
	memcpy(out, pt + LINK_RAND, (size_t)n);
	out[n] = '\0';
	OPENSSL_cleanse(pt, sizeof(pt));
	return 0;
bad:
	fs_log(fs, LOG_ERR, "symlink: stored target is not one sekeyfs wrote");
	return -EIO;
}
