/*
 * fuzz_fs_longname.c - libFuzzer target for the long-name side-file check
 * the mount runs on untrusted backing directories (sefile_name_long_matches,
 * sefile_name_is_long, sefile_name_is_side_file in sefile/sefile.h).
 *
 * Input: u8 mode || name bytes || 0x00 || side-file content bytes.
 * mode bit 0 replaces the name by the true hash name of the content
 * ("sl." + base64url(SHA-256(content))) so the accepting path is reached;
 * mode bit 1 then flips one character of it (chosen by mode >> 2).
 * Invariant: the check accepts exactly when the name is the hash name of
 * content no longer than SEFILE_ENCNAME_FULL_MAX, and a side-file name is
 * a long name plus SEFILE_LONGNAME_SUFFIX.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sefile/sefile.h"

#define HASH_B64_LEN 43 /* base64url of 32 bytes, no padding */
#define HASHNAME_MAX (sizeof(SEFILE_LONGNAME_PREFIX) - 1 + HASH_B64_LEN)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The oracle: "sl." + base64url(SHA-256(s)) into out[HASHNAME_MAX + 1]. */
static void hash_name(const char *s, char *out)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t md[32];
	unsigned int md_len = 0;
	size_t at = sizeof(SEFILE_LONGNAME_PREFIX) - 1, i;
	uint32_t acc = 0;
	int bits = 0;

	if (EVP_Digest(s, strlen(s), md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
		abort();
	memcpy(out, SEFILE_LONGNAME_PREFIX, at);
	for (i = 0; i < 32; i++) {
		acc = (acc << 8) | md[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[at++] = b64[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[at++] = b64[(acc << (6 - bits)) & 63];
	out[at] = '\0';
}

static void check_side_file(const char *name)
{
	char side[HASHNAME_MAX + sizeof(SEFILE_LONGNAME_SUFFIX) + 1];
	size_t n = strlen(name);

	if (n > HASHNAME_MAX)
		return;
	memcpy(side, name, n);
	memcpy(side + n, SEFILE_LONGNAME_SUFFIX, sizeof(SEFILE_LONGNAME_SUFFIX));
	if (sefile_name_is_side_file(side) != sefile_name_is_long(name))
		abort();
	if (sefile_name_is_side_file(name) && sefile_name_is_long(name))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char want[HASHNAME_MAX + 1];
	const uint8_t *sep;
	char *name, *full;
	size_t name_len, full_len;
	int got, expect;
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	sep = memchr(data, 0, size);
	name_len = sep ? (size_t)(sep - data) : size;
	full_len = sep ? size - name_len - 1 : 0;
	name = malloc(name_len + HASHNAME_MAX + 1);
	full = malloc(full_len + 1);
	if (!name || !full)
		abort();
	memcpy(name, data, name_len);
	name[name_len] = '\0';
	if (full_len)
		memcpy(full, sep + 1, full_len);
	full[full_len] = '\0'; /* content stops at its first NUL, as read_side does */

	hash_name(full, want);
	if (mode & 1) {
		memcpy(name, want, sizeof(want));
		if (mode & 2)
			name[(mode >> 2) % strlen(name)] ^= 0x01;
	}
	got = sefile_name_long_matches(name, full);
	expect = strlen(full) <= SEFILE_ENCNAME_FULL_MAX && strcmp(name, want) == 0;
	if (got != expect)
		abort();
	if (got && !sefile_name_is_long(name))
		abort();
	if (sefile_name_long_matches(NULL, full) || sefile_name_long_matches(name, NULL))
		abort();
	check_side_file(name);
	free(name);
	free(full);
	return 0;
}
