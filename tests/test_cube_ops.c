/*
 * test_cube_ops.c - every operation of cube.h through a real emulator:
 * key life cycle (generate, info, list, attributes, destroy, export and
 * import, cube-to-cube channel keys), permissions, SEAL/OPEN of 1 MiB in
 * one call inline and through shared memory with tamper detection, SIV
 * (single and batched, with per-item failures),
 * HMAC, random, digest, clock and self test.
 */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "cube/cube.h"
#include "helper_emu.h"

#define K_GCM  1
#define K_CTR  2
#define K_KW   3
#define K_MAC  4
#define K_SIV  5

static struct cube_key key(uint32_t id, uint8_t alg, uint8_t usage)
{
	struct cube_key k = { .id = id, .alg = alg, .usage = usage, .not_before = 0,
			      .not_after = WIRE_TIME_NEVER };
	return k;
}

/* Admin connection to a cube with one key of each kind. */
static struct cube *cube_with_keys(struct emu *e)
{
	struct cube *c;
	struct cube_key ks[] = {
		key(K_GCM, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT),
		key(K_CTR, WIRE_ALG_AES256_CTR_HMAC, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT),
		key(K_KW, WIRE_ALG_AES256_KW, WIRE_USE_WRAP | WIRE_USE_UNWRAP),
		key(K_MAC, WIRE_ALG_HMAC_SHA256, WIRE_USE_MAC | WIRE_USE_EXPORTABLE),
		key(K_SIV, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT),
	};

	emu_new(e);
	c = emu_login(e, WIRE_ROLE_ADMIN);
	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
		ck_assert_msg(cube_key_generate(c, &ks[i]) == CUBE_OK, "generate %zu: %s", i,
			      cube_errmsg(c));
	return c;
}

START_TEST(key_lifecycle)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	struct cube_key k, list[8];
	struct cube_key dup = key(K_GCM, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT);
	struct cube_info info;
	uint32_t n = 0;

	ck_assert_int_eq(cube_key_generate(c, &dup), CUBE_EEXIST);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "key 1"));
	ck_assert_int_eq(cube_key_info(c, K_CTR, &k), CUBE_OK);
	ck_assert_uint_eq(k.id, K_CTR);
	ck_assert_uint_eq(k.alg, WIRE_ALG_AES256_CTR_HMAC);
	ck_assert_uint_eq(k.usage, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT);
	ck_assert_uint_eq(k.not_after, WIRE_TIME_NEVER);
	ck_assert_int_eq(cube_key_info(c, 999, &k), CUBE_ENOKEY);
	ck_assert_uint_eq(k.id, 0);

	ck_assert_msg(cube_key_list(c, 0, list, 8, &n) == CUBE_OK, "list: %s", cube_errmsg(c));
	ck_assert_uint_eq(n, 5);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_uint_eq(list[i].id, i + 1);
	ck_assert_int_eq(cube_key_list(c, 3, list, 2, &n), CUBE_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(list[0].id, 3);
	ck_assert_uint_eq(list[1].id, 4);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.key_count, 5);
	ck_assert_uint_gt(info.key_capacity, 1000);

	/* Usage may only lose bits. */
	ck_assert_int_eq(cube_key_set_attrs(c, K_GCM, WIRE_USE_DECRYPT, 0, 1000000), CUBE_OK);
	ck_assert_int_eq(cube_key_info(c, K_GCM, &k), CUBE_OK);
	ck_assert_uint_eq(k.usage, WIRE_USE_DECRYPT);
	ck_assert_uint_eq(k.not_after, 1000000);
	ck_assert_int_ne(cube_key_set_attrs(c, K_GCM, WIRE_USE_DECRYPT | WIRE_USE_ENCRYPT, 0,
					    WIRE_TIME_NEVER), CUBE_OK);

	ck_assert_int_eq(cube_key_destroy(c, K_CTR), CUBE_OK);
	ck_assert_int_eq(cube_key_info(c, K_CTR, &k), CUBE_ENOKEY);
	ck_assert_int_eq(cube_key_destroy(c, K_CTR), CUBE_ENOKEY);

	/* A user may use keys but not manage them. */
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(cube_key_destroy(c, K_GCM), CUBE_EPERM);
	dup.id = 77;
	ck_assert_int_eq(cube_key_generate(c, &dup), CUBE_EPERM);
	ck_assert_int_eq(cube_key_info(c, K_GCM, &k), CUBE_OK);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(export_import)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	uint8_t blob[128], mac1[32], mac2[32];
	size_t blob_len = 0;
	uint32_t id = 0;
	const uint8_t msg[] = "export me";

	ck_assert_int_eq(cube_hmac(c, K_MAC, msg, sizeof(msg), mac1), CUBE_OK);
	ck_assert_int_eq(cube_key_export(c, K_KW, K_MAC, blob, sizeof(blob), &blob_len), CUBE_OK);
	ck_assert_uint_gt(blob_len, 32);
	/* Not exportable / not a wrapping key. */
	ck_assert_int_ne(cube_key_export(c, K_KW, K_GCM, blob + 64, 64, &(size_t){ 0 }), CUBE_OK);
	ck_assert_int_eq(cube_key_export(c, K_GCM, K_MAC, blob + 64, 64, &(size_t){ 0 }), CUBE_EUSAGE);
	ck_assert_int_eq(cube_key_destroy(c, K_MAC), CUBE_OK);
	ck_assert_int_eq(cube_key_import(c, K_KW, blob, blob_len, &id), CUBE_OK);
	ck_assert_uint_eq(id, K_MAC);
	ck_assert_int_eq(cube_hmac(c, K_MAC, msg, sizeof(msg), mac2), CUBE_OK);
	ck_assert_int_eq(memcmp(mac1, mac2, 32), 0);
	blob[10] ^= 1;
	ck_assert_int_ne(cube_key_import(c, K_KW, blob, blob_len, &id), CUBE_OK);
	cube_close(c);
	emu_free(&e);
}
END_TEST

/* Two cubes derive the same channel key from each other's public keys:
 * a key exported from one imports into the other. */
START_TEST(channel_between_cubes)
{
	struct emu ea, eb;
	struct cube *a = cube_with_keys(&ea), *b;
	struct cube_info ia, ib;
	uint8_t blob[128], mac1[32], mac2[32];
	size_t blob_len = 0;
	uint32_t id = 0;
	const uint8_t ctx[] = "provisioning", msg[] = "hello";

	emu_new(&eb);
	b = emu_login(&eb, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_info(a, &ia), CUBE_OK);
	ck_assert_int_eq(cube_info(b, &ib), CUBE_OK);
	ck_assert_int_eq(cube_channel_derive(a, 500, ib.pubkey, ctx, sizeof(ctx)), CUBE_OK);
	ck_assert_int_eq(cube_channel_derive(b, 600, ia.pubkey, ctx, sizeof(ctx)), CUBE_OK);
	ck_assert_int_eq(cube_key_export(a, 500, K_MAC, blob, sizeof(blob), &blob_len), CUBE_OK);
	ck_assert_int_eq(cube_key_import(b, 600, blob, blob_len, &id), CUBE_OK);
	ck_assert_uint_eq(id, K_MAC);
	ck_assert_int_eq(cube_hmac(a, K_MAC, msg, sizeof(msg), mac1), CUBE_OK);
	ck_assert_int_eq(cube_hmac(b, K_MAC, msg, sizeof(msg), mac2), CUBE_OK);
	ck_assert_int_eq(memcmp(mac1, mac2, 32), 0);
	cube_close(a);
	cube_close(b);
	emu_free(&ea);
	emu_free(&eb);
}
END_TEST

#define NSEC 256
#define SECLEN 4096

/* Seal and open 1 MiB in one call each; tamper with one sector. */
static void seal_open_mib(struct cube *c, uint32_t key_id, uint8_t alg)
{
	static uint8_t plain[NSEC * SECLEN], sealed[NSEC * (SECLEN + WIRE_SECTOR_OVERHEAD)],
		back[NSEC * SECLEN];
	struct cube_sector s[NSEC];
	uint8_t bad[NSEC], file_id[WIRE_FILE_ID_LEN] = { 1, 2, 3 };

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 31 + (i >> 12));
	for (int i = 0; i < NSEC; i++)
		s[i] = (struct cube_sector){ .index = 1000 + (uint64_t)i, .len = SECLEN };
	ck_assert_msg(cube_seal(c, key_id, alg, file_id, s, NSEC, plain, sealed) == CUBE_OK, "seal: %s",
		      cube_errmsg(c));
	/* Each sector: nonce, then ciphertext that is not the plaintext. */
	ck_assert_int_ne(memcmp(sealed + WIRE_NONCE_LEN, plain, 64), 0);
	memset(back, 0xee, sizeof(back));
	ck_assert_msg(cube_open_sectors(c, key_id, alg, file_id, s, NSEC, sealed, back, bad) == CUBE_OK,
		      "open: %s", cube_errmsg(c));
	ck_assert_int_eq(memcmp(plain, back, sizeof(plain)), 0);
	for (int i = 0; i < NSEC; i++)
		ck_assert_uint_eq(bad[i], 0);

	/* Flip one ciphertext byte of sector 7 and one tag byte of sector 200. */
	sealed[7 * (SECLEN + WIRE_SECTOR_OVERHEAD) + WIRE_NONCE_LEN + 5] ^= 0x40;
	sealed[201 * (SECLEN + WIRE_SECTOR_OVERHEAD) - 1] ^= 0x01;
	ck_assert_int_eq(cube_open_sectors(c, key_id, alg, file_id, s, NSEC, sealed, back, bad),
			 CUBE_EINTEGRITY);
	for (int i = 0; i < NSEC; i++)
		ck_assert_uint_eq(bad[i], i == 7 || i == 200);
	for (int i = 0; i < SECLEN; i++)
		ck_assert_uint_eq(back[7 * SECLEN + i], 0);
	ck_assert_int_eq(memcmp(plain + 8 * SECLEN, back + 8 * SECLEN, SECLEN), 0);

	/* A sector moved to another index does not open (index is in the AAD). */
	sealed[7 * (SECLEN + WIRE_SECTOR_OVERHEAD) + WIRE_NONCE_LEN + 5] ^= 0x40;
	sealed[201 * (SECLEN + WIRE_SECTOR_OVERHEAD) - 1] ^= 0x01;
	s[0].index = 5;
	ck_assert_int_eq(cube_open_sectors(c, key_id, alg, file_id, s, NSEC, sealed, back, bad),
			 CUBE_EINTEGRITY);
	ck_assert_uint_eq(bad[0], 1);
	ck_assert_uint_eq(bad[1], 0);
}

START_TEST(seal_open_shm)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	struct cube_info info;

	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_int_eq(info.shm, 1);
	seal_open_mib(c, K_GCM, WIRE_ALG_AES256_GCM);
	seal_open_mib(c, K_CTR, WIRE_ALG_AES256_CTR_HMAC);
	cube_close(c);
	emu_free(&e);
}
END_TEST

/* The zero-copy buffers: plaintext written straight into the region,
 * sealed in place, opened from the output region. */
START_TEST(seal_open_zero_copy)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e), *inl;
	uint8_t *in, *out, *p, bad[NSEC], fid[WIRE_FILE_ID_LEN] = { 7 };
	static uint8_t back[NSEC * SECLEN], copy[NSEC * (SECLEN + WIRE_SECTOR_OVERHEAD)];
	struct cube_sector s[NSEC];
	size_t cap = 0, sealed_len = NSEC * (SECLEN + WIRE_SECTOR_OVERHEAD);

	ck_assert_int_eq(cube_bulk_buffers(c, &in, &out, &cap), CUBE_OK);
	ck_assert_uint_ge(cap, sealed_len);
	for (int i = 0; i < NSEC; i++)
		s[i] = (struct cube_sector){ .index = (uint64_t)i, .len = SECLEN };
	for (size_t i = 0; i < NSEC * SECLEN; i++)
		in[i] = (uint8_t)(i ^ (i >> 8));
	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, NSEC, in, out), CUBE_OK);
	memcpy(copy, out, sealed_len);
	ck_assert_int_eq(cube_open_sectors(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, NSEC, out, back, bad),
			 CUBE_OK);
	for (size_t i = 0; i < NSEC * SECLEN; i++)
		ck_assert_uint_eq(back[i], (uint8_t)(i ^ (i >> 8)));
	/* The same sealed bytes open on a connection without shared memory. */
	setenv("SECUBE_NO_SHM", "1", 1);
	inl = emu_login(&e, WIRE_ROLE_USER);
	unsetenv("SECUBE_NO_SHM");
	ck_assert_int_eq(cube_bulk_buffers(inl, &p, &p, &cap), CUBE_ENODEV);
	memset(back, 0, sizeof(back));
	ck_assert_int_eq(cube_open_sectors(inl, K_GCM, WIRE_ALG_AES256_GCM, fid, s, NSEC, copy, back,
					   bad), CUBE_OK);
	ck_assert_uint_eq(back[NSEC * SECLEN - 1], (uint8_t)((NSEC * SECLEN - 1) ^ ((NSEC * SECLEN - 1) >> 8)));
	cube_close(inl);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(seal_open_inline)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e), *inl;
	struct cube_info info;
	uint8_t p[100] = "mixed", s[100 + WIRE_SECTOR_OVERHEAD], b[100], bad[1];
	struct cube_sector sec = { .index = 3, .len = 100 };
	uint8_t fid[WIRE_FILE_ID_LEN] = { 9 };

	setenv("SECUBE_NO_SHM", "1", 1);
	inl = emu_login(&e, WIRE_ROLE_USER);
	unsetenv("SECUBE_NO_SHM");
	ck_assert_int_eq(cube_info(inl, &info), CUBE_OK);
	ck_assert_int_eq(info.shm, 0);
	seal_open_mib(inl, K_GCM, WIRE_ALG_AES256_GCM);
	seal_open_mib(inl, K_CTR, WIRE_ALG_AES256_CTR_HMAC);
	/* Sealed inline opens through shared memory and back. */
	ck_assert_int_eq(cube_seal(inl, K_GCM, WIRE_ALG_AES256_GCM, fid, &sec, 1, p, s), CUBE_OK);
	ck_assert_int_eq(cube_open_sectors(c, K_GCM, WIRE_ALG_AES256_GCM, fid, &sec, 1, s, b, bad),
			 CUBE_OK);
	ck_assert_int_eq(memcmp(p, b, sizeof(p)), 0);
	cube_close(inl);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(seal_limits_and_usage)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	static uint8_t in[WIRE_MAX_BULK + 16], out[WIRE_MAX_BULK + 65536];
	struct cube_sector s[2] = { { 0, 65536 }, { 1, 65537 } };
	uint8_t fid[WIRE_FILE_ID_LEN] = { 0 }, bad[2];

	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, 2, in, out), CUBE_EINVAL);
	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, 0, in, out), CUBE_EINVAL);
	/* A wrapping key never touches data; an HMAC key does not seal. */
	s[1].len = 10;
	ck_assert_int_eq(cube_seal(c, K_KW, WIRE_ALG_AES256_KW, fid, s, 2, in, out), CUBE_EUSAGE);
	ck_assert_int_eq(cube_seal(c, 4242, WIRE_ALG_AES256_GCM, fid, s, 2, in, out), CUBE_ENOKEY);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "4242"));
	/* Decrypt-only key: opens, does not seal. */
	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, 2, in, out), CUBE_OK);
	ck_assert_int_eq(cube_key_set_attrs(c, K_GCM, WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER), CUBE_OK);
	ck_assert_int_eq(cube_open_sectors(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, 2, out, in, bad),
			 CUBE_OK);
	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, s, 2, in, out), CUBE_EUSAGE);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(siv_hmac_random_digest)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	const uint8_t ad[] = "dir-inode-12", name[] = "secret-file-name.txt";
	uint8_t ct[sizeof(name) + 16], ct2[sizeof(name) + 16], pt[sizeof(name)];
	uint8_t mac[32], mac2[32], r1[5000], r2[5000], dg[32], want[32];
	unsigned failed = 99;
	char report[512];

	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(cube_siv_encrypt(c, K_SIV, ad, sizeof(ad), name, sizeof(name), ct), CUBE_OK);
	ck_assert_int_eq(cube_siv_encrypt(c, K_SIV, ad, sizeof(ad), name, sizeof(name), ct2), CUBE_OK);
	ck_assert_int_eq(memcmp(ct, ct2, sizeof(ct)), 0); /* deterministic */
	ck_assert_int_eq(cube_siv_decrypt(c, K_SIV, ad, sizeof(ad), ct, sizeof(ct), pt), CUBE_OK);
	ck_assert_int_eq(memcmp(pt, name, sizeof(name)), 0);
	/* Other AD, tampered ciphertext: refused. */
	ck_assert_int_eq(cube_siv_decrypt(c, K_SIV, ad, sizeof(ad) - 1, ct, sizeof(ct), pt),
			 CUBE_EINTEGRITY);
	ct[20] ^= 1;
	ck_assert_int_eq(cube_siv_decrypt(c, K_SIV, ad, sizeof(ad), ct, sizeof(ct), pt),
			 CUBE_EINTEGRITY);
	ck_assert_int_eq(cube_siv_decrypt(c, K_SIV, ad, 0, ct, 10, pt), CUBE_EINVAL);

	ck_assert_int_eq(cube_hmac(c, K_MAC, name, sizeof(name), mac), CUBE_OK);
	ck_assert_int_eq(cube_hmac(c, K_MAC, name, sizeof(name), mac2), CUBE_OK);
	ck_assert_int_eq(memcmp(mac, mac2, 32), 0);
	ck_assert_int_eq(cube_hmac(c, K_MAC, name, sizeof(name) - 1, mac2), CUBE_OK);
	ck_assert_int_ne(memcmp(mac, mac2, 32), 0);
	ck_assert_int_eq(cube_hmac(c, K_GCM, name, sizeof(name), mac2), CUBE_EUSAGE);

	ck_assert_int_eq(cube_random(c, r1, sizeof(r1)), CUBE_OK);
	ck_assert_int_eq(cube_random(c, r2, sizeof(r2)), CUBE_OK);
	ck_assert_int_ne(memcmp(r1, r2, sizeof(r1)), 0);
	ck_assert_int_ne(memcmp(r1 + 4096, r2 + 4096, sizeof(r1) - 4096), 0);

	ck_assert_int_eq(cube_digest(c, name, sizeof(name), dg), CUBE_OK);
	SHA256(name, sizeof(name), want);
	ck_assert_int_eq(memcmp(dg, want, 32), 0);

	ck_assert_int_eq(cube_selftest(c, &failed, report, sizeof(report)), CUBE_OK);
	ck_assert_uint_eq(failed, 0);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(siv_decrypt_batch)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	const uint8_t ad_a[] = "dir-A", ad_b[] = "dir-B";
	const char *names[3] = { "notes.md", "x", "a longer name with spaces.tar.gz" };
	uint8_t ct[3][64], pt[WIRE_SIV_BATCH_MAX + 1][64], tampered[64];
	struct cube_siv_item it[WIRE_SIV_BATCH_MAX + 1];
	size_t i;

	ck_assert_int_eq(cube_siv_encrypt(c, K_SIV, ad_a, sizeof(ad_a), (const uint8_t *)names[0], 8, ct[0]), CUBE_OK);
	ck_assert_int_eq(cube_siv_encrypt(c, K_SIV, ad_a, sizeof(ad_a), (const uint8_t *)names[1], 1, ct[1]), CUBE_OK);
	ck_assert_int_eq(cube_siv_encrypt(c, K_SIV, ad_b, sizeof(ad_b), (const uint8_t *)names[2], 32, ct[2]), CUBE_OK);
	memcpy(tampered, ct[0], 24);
	tampered[3] ^= 0x40;
	/* good, good, good under its own ad, tampered, right ct under the wrong ad */
	it[0] = (struct cube_siv_item){ ad_a, sizeof(ad_a), ct[0], 24, pt[0], 77 };
	it[1] = (struct cube_siv_item){ ad_a, sizeof(ad_a), ct[1], 17, pt[1], 77 };
	it[2] = (struct cube_siv_item){ ad_b, sizeof(ad_b), ct[2], 48, pt[2], 77 };
	it[3] = (struct cube_siv_item){ ad_a, sizeof(ad_a), tampered, 24, pt[3], 77 };
	it[4] = (struct cube_siv_item){ ad_a, sizeof(ad_a), ct[2], 48, pt[4], 77 };
	memset(pt, 0xee, sizeof(pt));
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, 5), CUBE_OK);
	ck_assert_int_eq(it[0].status, CUBE_OK);
	ck_assert_int_eq(memcmp(pt[0], names[0], 8), 0);
	ck_assert_int_eq(it[1].status, CUBE_OK);
	ck_assert_int_eq(pt[1][0], 'x');
	ck_assert_int_eq(it[2].status, CUBE_OK);
	ck_assert_int_eq(memcmp(pt[2], names[2], 32), 0);
	ck_assert_int_eq(it[3].status, CUBE_EINTEGRITY);
	ck_assert_int_eq(it[4].status, CUBE_EINTEGRITY);
	for (i = 0; i < 32; i++)
		ck_assert_uint_eq(pt[4][i], 0); /* a failed item's output is zeros */
	/* The single call agrees. */
	ck_assert_int_eq(cube_siv_decrypt(c, K_SIV, ad_a, sizeof(ad_a), tampered, 24, pt[5]), CUBE_EINTEGRITY);
	/* A full batch; one more, none, or a bad item is refused here, whole. */
	for (i = 0; i <= WIRE_SIV_BATCH_MAX; i++)
		it[i] = (struct cube_siv_item){ ad_a, sizeof(ad_a), ct[0], 24, pt[i], 0 };
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, WIRE_SIV_BATCH_MAX), CUBE_OK);
	for (i = 0; i < WIRE_SIV_BATCH_MAX; i++) {
		ck_assert_int_eq(it[i].status, CUBE_OK);
		ck_assert_int_eq(memcmp(pt[i], names[0], 8), 0);
	}
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, WIRE_SIV_BATCH_MAX + 1), CUBE_EINVAL);
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, 0), CUBE_EINVAL);
	it[1].len = 15;
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, 2), CUBE_EINVAL);
	ck_assert_int_eq(it[0].status, CUBE_EINVAL);
	it[1].len = WIRE_SIV_MAX + 17;
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, 2), CUBE_EINVAL);
	it[1].len = 24;
	/* Key errors fail the whole batch and name the key. */
	ck_assert_int_eq(cube_siv_decrypt_batch(c, 4242, it, 2), CUBE_ENOKEY);
	ck_assert_int_eq(it[0].status, CUBE_ENOKEY);
	ck_assert_uint_eq(pt[0][0], 0);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "4242"));
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_KW, it, 2), CUBE_EUSAGE);
	ck_assert_int_eq(cube_key_set_attrs(c, K_SIV, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER), CUBE_OK);
	ck_assert_int_eq(cube_siv_decrypt_batch(c, K_SIV, it, 2), CUBE_EUSAGE);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(clock_and_expiry)
{
	struct emu e;
	struct cube *c = cube_with_keys(&e);
	struct cube_info info;
	uint8_t in[16] = { 0 }, out[16 + WIRE_SECTOR_OVERHEAD], back[16], bad[1];
	uint8_t fid[WIRE_FILE_ID_LEN] = { 0 };
	struct cube_sector s = { 0, 16 };

	ck_assert_int_eq(cube_clock_set(c, WIRE_EPOCH + 600), CUBE_OK);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_le(info.now_minutes, 12);
	ck_assert_int_eq(cube_clock_set(c, 5), CUBE_EINVAL);
	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, &s, 1, in, out), CUBE_OK);
	/* Expired: no more sealing, opening still works. */
	ck_assert_int_eq(cube_key_set_attrs(c, K_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, 5),
			 CUBE_OK);
	ck_assert_int_eq(cube_seal(c, K_GCM, WIRE_ALG_AES256_GCM, fid, &s, 1, in, out), CUBE_EEXPIRED);
	ck_assert_int_eq(cube_open_sectors(c, K_GCM, WIRE_ALG_AES256_GCM, fid, &s, 1, out, back, bad),
			 CUBE_OK);
	cube_close(c);
	emu_free(&e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cube_ops");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, key_lifecycle);
	tcase_add_test(tc, export_import);
	tcase_add_test(tc, channel_between_cubes);
	tcase_add_test(tc, seal_open_shm);
	tcase_add_test(tc, seal_open_zero_copy);
	tcase_add_test(tc, seal_open_inline);
	tcase_add_test(tc, seal_limits_and_usage);
	tcase_add_test(tc, siv_hmac_random_digest);
	tcase_add_test(tc, siv_decrypt_batch);
	tcase_add_test(tc, clock_and_expiry);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	emu_suite_begin();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
