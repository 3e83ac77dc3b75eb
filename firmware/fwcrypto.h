/*
 * fwcrypto.h - every cryptographic primitive the device uses, behind one
 * small interface.  The emulator implements it with OpenSSL libcrypto
 * (fwcrypto.c); a port to an MCU library replaces that one file.
 *
 * All functions return 0 on success and -1 on failure (bad length, library
 * error, or, for the *_open/_decrypt/_unwrap functions, an authentication
 * failure).  On failure no partial plaintext is left in the output: it is
 * zeroed.  Keys are raw bytes owned by the caller, who wipes them
 * (fw_wipe).  Nothing here allocates memory that outlives the call.
 */
#ifndef SEKEYFS_FWCRYPTO_H
#define SEKEYFS_FWCRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define FW_GCM_NONCE 12
#define FW_GCM_TAG   16
#define FW_SHA256    32
#define FW_X25519    32

/* Zero a secret in a way the compiler keeps (OPENSSL_cleanse). */
void fw_wipe(void *p, size_t n);
/* Constant-time comparison: 0 iff equal. */
int fw_memeq_ct(const void *a, const void *b, size_t n);

/* n bytes from the DRBG (RAND_bytes). */
int fw_random(void *out, size_t n);

/* AES-GCM with a 12-byte nonce and 16-byte tag; key_len 16 or 32.
 * in and out may be the same buffer. */
int fw_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t nonce[FW_GCM_NONCE],
		const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		uint8_t *out, uint8_t tag[FW_GCM_TAG]);
int fw_gcm_open(const uint8_t *key, size_t key_len, const uint8_t nonce[FW_GCM_NONCE],
		const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		const uint8_t tag[FW_GCM_TAG], uint8_t *out);

/* AES-CTR (key_len 16, 24 or 32) with a full 16-byte initial counter block;
 * encryption and decryption are the same.  in and out may alias. */
int fw_ctr(const uint8_t *key, size_t key_len, const uint8_t iv[16],
	   const uint8_t *in, size_t len, uint8_t *out);

/* HMAC-SHA256 over the concatenation of up to 4 pieces (NULL/0 ends early). */
int fw_hmac_sha256(const uint8_t *key, size_t key_len,
		   const uint8_t *d1, size_t l1, const uint8_t *d2, size_t l2,
		   const uint8_t *d3, size_t l3, const uint8_t *d4, size_t l4,
		   uint8_t out[FW_SHA256]);

/* SHA-256. */
int fw_sha256(const uint8_t *in, size_t len, uint8_t out[FW_SHA256]);

/* HKDF-SHA256 (RFC 5869), extract and expand; out_len <= 255*32. */
int fw_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		   const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/* PBKDF2-HMAC-SHA256 (PIN stretching). */
int fw_pbkdf2_sha256(const uint8_t *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
		     unsigned iterations, uint8_t *out, size_t out_len);

/* AES key wrap with padding (RFC 5649 / SP 800-38F KWP), key_len 16/24/32.
 * Wrapped output is ((in_len + 7) / 8) * 8 + 8 bytes; *out_len gets it. */
int fw_kwp_wrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
		uint8_t *out, size_t out_cap, size_t *out_len);
int fw_kwp_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
		  uint8_t *out, size_t out_cap, size_t *out_len);

/* AES-SIV (RFC 5297) with one associated-data string; key_len 32, 48 or 64
 * (AES-128/192/256-SIV).  Output of encrypt is siv[16] || ct (len + 16). */
int fw_siv_encrypt(const uint8_t *key, size_t key_len, const uint8_t *ad, size_t ad_len,
		   const uint8_t *in, size_t len, uint8_t *out);
int fw_siv_decrypt(const uint8_t *key, size_t key_len, const uint8_t *ad, size_t ad_len,
		   const uint8_t *in, size_t len, uint8_t *out); /* len includes the 16-byte SIV */

/* X25519: a key pair from the DRBG, the public key of a private key, and a
 * shared secret (fails on an all-zero result: a small-order peer key). */
int fw_x25519_keygen(uint8_t priv[FW_X25519], uint8_t pub[FW_X25519]);
int fw_x25519_public(const uint8_t priv[FW_X25519], uint8_t pub[FW_X25519]);
int fw_x25519(const uint8_t priv[FW_X25519], const uint8_t peer[FW_X25519],
	      uint8_t shared[FW_X25519]);

/* Known-answer self test of every primitive above (embedded vectors).
 * Returns the number of failures; writes a one-line-per-check report into
 * report (NUL-terminated, truncated to cap). */
int fw_selftest(char *report, size_t cap);

/*
 * The hot path: many sectors of one file under one subkey.  A context is
 * keyed once per request and then seals or opens sector after sector with
 * no allocation.  Sector formats (docs/PROTOCOL.md section 6):
 *   FW_SECTOR_GCM: AES-GCM, key 16 or 32 bytes, 12-byte nonce, 16-byte tag.
 *   FW_SECTOR_CTR_HMAC: key 64 bytes = enc[32] || mac[32]; ct =
 *   AES-256-CTR(enc, IV = nonce || 00000000); tag = HMAC-SHA256(mac,
 *   aad || nonce || ct)[0..16); opening checks the tag before decrypting.
 * fw_sector_open zeroes out[len] and returns -1 on a bad tag.
 */
enum fw_sector_mode { FW_SECTOR_GCM = 1, FW_SECTOR_CTR_HMAC = 2 };
struct fw_sector_ctx;
struct fw_hmac;

/* mac: an HMAC object from fw_hmac_new (used by CTR_HMAC; may be NULL for GCM). */
int fw_sector_ctx_new(struct fw_sector_ctx **out, enum fw_sector_mode mode, const uint8_t *key,
		      size_t key_len, int encrypt, struct fw_hmac *mac);
void fw_sector_ctx_free(struct fw_sector_ctx *c); /* wipes the keys */
int fw_sector_seal(struct fw_sector_ctx *c, const uint8_t nonce[FW_GCM_NONCE], const uint8_t *aad,
		   size_t aad_len, const uint8_t *in, size_t len, uint8_t *ct, uint8_t tag[FW_GCM_TAG]);
int fw_sector_open(struct fw_sector_ctx *c, const uint8_t nonce[FW_GCM_NONCE], const uint8_t *aad,
		   size_t aad_len, const uint8_t *ct, size_t len, const uint8_t tag[FW_GCM_TAG],
		   uint8_t *out);

/* HMAC-SHA256 with the algorithm looked up once (frame tags, sectors). */
int fw_hmac_new(struct fw_hmac **out);
void fw_hmac_free(struct fw_hmac *h);
int fw_hmac_once(struct fw_hmac *h, const uint8_t *key, size_t key_len, const uint8_t *data,
		 size_t len, uint8_t out[FW_SHA256]);

#endif
