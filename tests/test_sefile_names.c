/*
 * test_sefile_names.c - encrypted file names: roundtrip, determinism,
 * binding to the directory ID and the key, long names with their side
 * file, the refused names, and tampered encodings (EIO); the batch
 * decrypt giving each name what the single one gives it.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cube/cube.h"
#include "helper_emu.h"
#include "sefile/sefile.h"

#define K_NAME 7
#define K_OTHER 8

struct env {
	struct emu e;
	struct sefile_cube *pool;
};

static const uint8_t dir_a[WIRE_FILE_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t dir_b[WIRE_FILE_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17 };

static void env_up(struct env *v)
{
	struct cube_key k1 = { K_NAME, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER };
	struct cube_key k2 = { K_OTHER, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0, WIRE_TIME_NEVER };
	struct cube *c;
	char err[256];

	emu_new(&v->e);
	c = emu_login(&v->e, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(c, &k1), CUBE_OK);
	ck_assert_int_eq(cube_key_generate(c, &k2), CUBE_OK);
	cube_close(c);
	ck_assert_msg(sefile_cube_open(&v->pool, v->e.dir, WIRE_ROLE_USER, EMU_USER_PIN, 1, err, sizeof(err)) ==
			      SEFILE_OK, "pool: %s", err);
}

static void env_down(struct env *v)
{
	sefile_cube_close(v->pool);
	emu_free(&v->e);
}

static void roundtrip(struct env *v, const char *name, int want_long)
{
	char enc[SEFILE_ENCNAME_MAX + 1], full[SEFILE_ENCNAME_FULL_MAX + 1], back[SEFILE_NAME_MAX + 1];
	char enc2[SEFILE_ENCNAME_MAX + 1], full2[SEFILE_ENCNAME_FULL_MAX + 1];
	int is_long = -1, is_long2 = -1;

	ck_assert_msg(sefile_name_encrypt(v->pool, K_NAME, dir_a, name, enc, sizeof(enc), &is_long, full,
					  sizeof(full)) == SEFILE_OK, "encrypt: %s", sefile_errmsg());
	ck_assert_int_eq(is_long, want_long);
	ck_assert_uint_le(strlen(enc), 255);
	ck_assert_ptr_null(strchr(enc, '/'));
	ck_assert_ptr_null(strchr(enc, '='));
	ck_assert_str_ne(enc, ".");
	ck_assert_str_ne(enc, "..");
	/* deterministic */
	ck_assert_int_eq(sefile_name_encrypt(v->pool, K_NAME, dir_a, name, enc2, sizeof(enc2), &is_long2, full2,
					     sizeof(full2)), SEFILE_OK);
	ck_assert_str_eq(enc, enc2);
	if (want_long) {
		char side[SEFILE_ENCNAME_MAX + 8];

		ck_assert_str_eq(full, full2);
		ck_assert_int_eq(strncmp(enc, SEFILE_LONGNAME_PREFIX, 3), 0);
		ck_assert(sefile_name_is_long(enc));
		ck_assert(!sefile_name_is_side_file(enc));
		snprintf(side, sizeof(side), "%s%s", enc, SEFILE_LONGNAME_SUFFIX);
		ck_assert(sefile_name_is_side_file(side));
		ck_assert(!sefile_name_is_long(side));
		ck_assert(sefile_name_long_matches(enc, full));
		ck_assert(!sefile_name_long_matches(enc, enc));
		ck_assert_int_eq(sefile_name_decrypt(v->pool, K_NAME, dir_a, full, back, sizeof(back)), SEFILE_OK);
	} else {
		ck_assert(!sefile_name_is_long(enc));
		ck_assert(!sefile_name_is_side_file(enc));
		ck_assert_int_eq(sefile_name_decrypt(v->pool, K_NAME, dir_a, enc, back, sizeof(back)), SEFILE_OK);
	}
	ck_assert_str_eq(back, name);
	/* another directory: another encoding */
	ck_assert_int_eq(sefile_name_encrypt(v->pool, K_NAME, dir_b, name, enc2, sizeof(enc2), &is_long2, full2,
					     sizeof(full2)), SEFILE_OK);
	ck_assert_str_ne(enc, enc2);
}

START_TEST(roundtrips)
{
	struct env v;
	char name[SEFILE_NAME_MAX + 1];
	size_t n;

	env_up(&v);
	roundtrip(&v, "a", 0);
	roundtrip(&v, "plans.txt", 0);
	roundtrip(&v, "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93 with spaces", 0);
	roundtrip(&v, "...", 0);
	roundtrip(&v, ".hidden", 0);
	/* the longest name that still fits in one component, and the first that does not */
	for (n = 1; n <= SEFILE_NAME_MAX; n++) {
		memset(name, 'x', n);
		name[n] = '\0';
		if ((4 * (n + 16) + 2) / 3 > 255) /* unpadded base64 of name + SIV tag */
			break;
	}
	memset(name, 'y', n - 1);
	name[n - 1] = '\0';
	roundtrip(&v, name, 0);
	memset(name, 'y', n);
	name[n] = '\0';
	roundtrip(&v, name, 1);
	memset(name, 'z', SEFILE_NAME_MAX);
	name[SEFILE_NAME_MAX] = '\0';
	roundtrip(&v, name, 1);
	env_down(&v);
}
END_TEST

START_TEST(refused)
{
	struct env v;
	char enc[SEFILE_ENCNAME_MAX + 1], full[SEFILE_ENCNAME_FULL_MAX + 1], name[SEFILE_NAME_MAX + 2];
	int is_long;
	const char *bad[] = { "", ".", "..", "a/b", "/", "dir/" };
	size_t i;

	env_up(&v);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(sefile_name_encrypt(v.pool, K_NAME, dir_a, bad[i], enc, sizeof(enc), &is_long,
						     full, sizeof(full)), SEFILE_EINVAL);
		ck_assert_str_eq(enc, "");
	}
	memset(name, 'q', SEFILE_NAME_MAX + 1);
	name[SEFILE_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(sefile_name_encrypt(v.pool, K_NAME, dir_a, name, enc, sizeof(enc), &is_long, full,
					     sizeof(full)), SEFILE_ENAMETOOLONG);
	ck_assert_int_eq(sefile_errno(SEFILE_ENAMETOOLONG), ENAMETOOLONG);
	env_down(&v);
}
END_TEST

static void expect_eio(struct env *v, uint32_t key, const uint8_t *dir, const char *enc)
{
	char back[SEFILE_NAME_MAX + 1];
	int rc = sefile_name_decrypt(v->pool, key, dir, enc, back, sizeof(back));

	ck_assert_msg(rc == SEFILE_EINTEGRITY, "\"%s\": code %d", enc, rc);
	ck_assert_int_eq(sefile_errno(rc), EIO);
	ck_assert_str_eq(back, "");
}

START_TEST(tampered)
{
	struct env v;
	char enc[SEFILE_ENCNAME_MAX + 1], full[SEFILE_ENCNAME_FULL_MAX + 1], t[SEFILE_ENCNAME_FULL_MAX + 1];
	int is_long;
	size_t i, len;

	env_up(&v);
	ck_assert_int_eq(sefile_name_encrypt(v.pool, K_NAME, dir_a, "secret-plan.odt", enc, sizeof(enc), &is_long,
					     full, sizeof(full)), SEFILE_OK);
	len = strlen(enc);
	/* every character changed */
	for (i = 0; i < len; i++) {
		strcpy(t, enc);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		expect_eio(&v, K_NAME, dir_a, t);
	}
	/* moved to another directory, another key, truncated, extended, garbage */
	expect_eio(&v, K_NAME, dir_b, enc);
	expect_eio(&v, K_OTHER, dir_a, enc);
	strcpy(t, enc);
	t[len - 1] = '\0';
	expect_eio(&v, K_NAME, dir_a, t);
	snprintf(t, sizeof(t), "%sAAAA", enc);
	expect_eio(&v, K_NAME, dir_a, t);
	expect_eio(&v, K_NAME, dir_a, "");
	expect_eio(&v, K_NAME, dir_a, "not base64!");
	expect_eio(&v, K_NAME, dir_a, "AAAAAAAAAAAAAAAAAAAAAA==");
	expect_eio(&v, K_NAME, dir_a, "AAAA");
	env_down(&v);
}
END_TEST

/* The batch gives every name what the single call gives it. */
START_TEST(batch)
{
	enum { N = 300 };  /* more than one cube request */
	static char enc[N][SEFILE_ENCNAME_FULL_MAX + 1], out[N][SEFILE_NAME_MAX + 1];
	char full[SEFILE_ENCNAME_FULL_MAX + 1], one[SEFILE_NAME_MAX + 1], name[64];
	struct sefile_name_item it[N];
	char longname[201];
	uint8_t ct[3 + 16];
	struct cube *c;
	struct env v;
	int is_long, rc;
	size_t i;

	env_up(&v);
	memset(longname, 'L', 200);
	longname[200] = '\0';
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%zu.txt", i);
		ck_assert_int_eq(sefile_name_encrypt(v.pool, K_NAME, i % 7 == 3 ? dir_b : dir_a, name, enc[i],
						     sizeof(enc[i]), &is_long, full, sizeof(full)), SEFILE_OK);
	}
	/* a long name (its side file's content), a tampered one, garbage,
	 * another key's, and one whose plaintext is no file name */
	ck_assert_int_eq(sefile_name_encrypt(v.pool, K_NAME, dir_a, longname, one, sizeof(one), &is_long,
					     enc[10], sizeof(enc[10])), SEFILE_OK);
	ck_assert_int_eq(is_long, 1);
	enc[11][2] = enc[11][2] == 'A' ? 'B' : 'A';
	strcpy(enc[12], "not base64!");
	strcpy(enc[13], "");
	ck_assert_int_eq(sefile_name_encrypt(v.pool, K_OTHER, dir_a, "other", enc[14], sizeof(enc[14]),
					     &is_long, full, sizeof(full)), SEFILE_OK);
	c = emu_login(&v.e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_siv_encrypt(c, K_NAME, dir_a, WIRE_FILE_ID_LEN, (const uint8_t *)"a/b", 3, ct), CUBE_OK);
	cube_close(c);
	sefile_b64_encode(ct, sizeof(ct), enc[15]);
	for (i = 0; i < N; i++)
		it[i] = (struct sefile_name_item){ enc[i], out[i], sizeof(out[i]), 12345 };
	it[16].out_cap = 4; /* too small for "file-16.txt" */
	ck_assert_int_eq(sefile_name_decrypt_batch(v.pool, K_NAME, dir_a, it, N), SEFILE_OK);
	for (i = 0; i < N; i++) {
		rc = sefile_name_decrypt(v.pool, K_NAME, dir_a, enc[i], one, it[i].out_cap);
		ck_assert_msg(it[i].rc == rc, "name %zu: batch %d, single %d", i, it[i].rc, rc);
		ck_assert_str_eq(out[i], one);
	}
	ck_assert_str_eq(out[0], "file-0.txt");
	ck_assert_str_eq(out[10], longname);
	ck_assert_str_eq(out[299], "file-299.txt");
	ck_assert_int_eq(it[3].rc, SEFILE_EINTEGRITY); /* dir_b's */
	for (i = 11; i <= 15; i++)
		ck_assert_int_eq(it[i].rc, SEFILE_EINTEGRITY);
	ck_assert_int_eq(it[16].rc, SEFILE_EINVAL);
	/* A key the cube does not have fails every name, none left stale. */
	ck_assert_int_eq(sefile_name_decrypt_batch(v.pool, 99, dir_a, it, N), SEFILE_ENOKEY);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(it[i].rc, i >= 12 && i <= 13 ? SEFILE_EINTEGRITY : SEFILE_ENOKEY);
		ck_assert_str_eq(out[i], "");
	}
	ck_assert_int_eq(sefile_name_decrypt_batch(v.pool, K_NAME, dir_a, it, 0), SEFILE_OK);
	ck_assert_int_eq(sefile_name_decrypt_batch(v.pool, K_NAME, dir_a, NULL, 1), SEFILE_EINVAL);
	env_down(&v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sefile_names");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	emu_suite_begin();
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, roundtrips);
	tcase_add_test(tc, refused);
	tcase_add_test(tc, tampered);
	tcase_add_test(tc, batch);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
