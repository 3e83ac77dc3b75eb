/*
 * test_firmware_flash.c - the emulated NOR flash: STM32F429 sector layout,
 * NOR programming rules (only clear bits, erase a whole sector to 0xff,
 * never across a sector), the simulated power cut, and the file image.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "firmware/flash.h"

/* The temp dir is made and removed in the parent process (an unchecked
 * fixture), so it goes away even when a forked test fails. */
static char tmpdir[] = "/tmp/flashtestXXXXXX";

static void make_tmpdir(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void remove_tmpdir(void)
{
	nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

START_TEST(layout)
{
	uint32_t total = 0;

	for (unsigned s = 0; s < FLASH_SECTORS; s++) {
		ck_assert_uint_eq(flash_sector_offset(s), total);
		total += flash_sector_size(s);
	}
	ck_assert_uint_eq(total, FLASH_SIZE);
	ck_assert_uint_eq(flash_sector_size(0), 16384);
	ck_assert_uint_eq(flash_sector_size(4), 65536);
	ck_assert_uint_eq(flash_sector_size(11), 131072);
	ck_assert_uint_eq(flash_sector_offset(12), 1024 * 1024); /* bank 2 */
	ck_assert_uint_eq(flash_sector_size(16), 65536);
	ck_assert_uint_eq(flash_sector_size(FLASH_SECTORS), 0);
}
END_TEST

START_TEST(nor_rules)
{
	struct flash *f;
	uint8_t b[8], v;

	ck_assert_int_eq(flash_open_mem(&f, NULL), FLASH_OK);
	ck_assert_int_eq(flash_read(f, 100, b, 8), FLASH_OK);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(b[i], 0xff);
	/* Programming clears bits; programming again may clear more. */
	v = 0xf0;
	ck_assert_int_eq(flash_program(f, 100, &v, 1), FLASH_OK);
	v = 0x30;
	ck_assert_int_eq(flash_program(f, 100, &v, 1), FLASH_OK);
	/* Setting a bit that is 0 is refused and changes nothing. */
	memcpy(b, "\x10\x00\x31\x00", 4); /* 0x31 over 0x30 sets bit 0 */
	ck_assert_int_eq(flash_program(f, 98, b, 4), FLASH_EPROGRAM);
	ck_assert_int_eq(flash_read(f, 98, b, 4), FLASH_OK);
	ck_assert_uint_eq(b[0], 0xff);
	ck_assert_uint_eq(b[2], 0x30);
	v = 0xff;
	ck_assert_int_eq(flash_program(f, 100, &v, 1), FLASH_EPROGRAM);
	/* Across a sector boundary or outside the flash: refused. */
	ck_assert_int_eq(flash_program(f, 16383, b, 2), FLASH_ERANGE);
	ck_assert_int_eq(flash_program(f, FLASH_SIZE - 1, b, 2), FLASH_ERANGE);
	ck_assert_int_eq(flash_read(f, FLASH_SIZE - 1, b, 2), FLASH_ERANGE);
	ck_assert_int_eq(flash_erase(f, FLASH_SECTORS), FLASH_ERANGE);
	/* Erase sets the whole sector, and only it, to 0xff. */
	v = 0;
	ck_assert_int_eq(flash_program(f, 16384, &v, 1), FLASH_OK);
	ck_assert_int_eq(flash_erase(f, 0), FLASH_OK);
	ck_assert_int_eq(flash_read(f, 100, &v, 1), FLASH_OK);
	ck_assert_uint_eq(v, 0xff);
	ck_assert_int_eq(flash_read(f, 16384, &v, 1), FLASH_OK);
	ck_assert_uint_eq(v, 0);
	flash_close(f);
}
END_TEST

START_TEST(cut)
{
	static uint8_t snap[FLASH_SIZE];
	uint8_t zeros[10] = { 0 }, b[10];
	struct flash *f;

	ck_assert_int_eq(flash_open_mem(&f, NULL), FLASH_OK);
	ck_assert_int_eq(flash_ops(f), 0);
	ck_assert_int_eq(flash_program(f, 0, zeros, 4), FLASH_OK);
	ck_assert_int_eq(flash_ops(f), 4);
	/* Budget 3: three bytes of ten are programmed, then the cut. */
	flash_set_cut(f, 3);
	ck_assert_int_eq(flash_program(f, 200, zeros, 10), FLASH_ECUT);
	ck_assert_int_eq(flash_read(f, 200, b, 10), FLASH_OK);
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(b[i], i < 3 ? 0 : 0xff);
	/* After the cut every write fails. */
	ck_assert_int_eq(flash_program(f, 300, zeros, 1), FLASH_ECUT);
	ck_assert_int_eq(flash_erase(f, 1), FLASH_ECUT);
	ck_assert_int_eq(flash_ops(f), 7);
	/* An erase cut after 5 bytes resets only the sector's first 5. */
	flash_set_cut(f, -1);
	ck_assert_int_eq(flash_program(f, 16384, zeros, 10), FLASH_OK);
	flash_set_cut(f, 5);
	ck_assert_int_eq(flash_erase(f, 1), FLASH_ECUT);
	ck_assert_int_eq(flash_snapshot(f, snap), FLASH_OK);
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(snap[16384 + i], i < 5 ? 0xff : 0);
	ck_assert_uint_eq(snap[0], 0);
	flash_close(f);
	/* A snapshot reopens as the same flash. */
	ck_assert_int_eq(flash_open_mem(&f, snap), FLASH_OK);
	ck_assert_int_eq(flash_read(f, 16384 + 5, b, 1), FLASH_OK);
	ck_assert_uint_eq(b[0], 0);
	ck_assert_int_eq(flash_ops(f), 0);
	flash_close(f);
}
END_TEST

START_TEST(file_image)
{
	char path[64], bad[64];
	struct flash *f;
	struct stat st;
	uint8_t v = 0x5a, r;
	int fd;

	snprintf(path, sizeof(path), "%s/flash.img", tmpdir);
	snprintf(bad, sizeof(bad), "%s/short.img", tmpdir);
	ck_assert_int_ne(flash_open(&f, path, 0), FLASH_OK); /* missing, no create */
	ck_assert_int_eq(flash_open(&f, path, 1), FLASH_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, FLASH_SIZE);
	ck_assert_int_eq(flash_read(f, FLASH_SIZE - 1, &r, 1), FLASH_OK);
	ck_assert_uint_eq(r, 0xff);
	ck_assert_int_eq(flash_program(f, 1234567, &v, 1), FLASH_OK);
	ck_assert_int_eq(flash_sync(f), FLASH_OK);
	flash_close(f);
	ck_assert_int_eq(flash_open(&f, path, 0), FLASH_OK);
	ck_assert_int_eq(flash_read(f, 1234567, &r, 1), FLASH_OK);
	ck_assert_uint_eq(r, 0x5a);
	flash_close(f);
	/* A file of the wrong size is no flash image. */
	fd = open(bad, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	close(fd);
	ck_assert_int_eq(flash_open(&f, bad, 1), FLASH_ERANGE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("firmware_flash");
	TCase *tc = tcase_create("flash");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_test(tc, layout);
	tcase_add_test(tc, nor_rules);
	tcase_add_test(tc, cut);
	tcase_add_test(tc, file_image);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
