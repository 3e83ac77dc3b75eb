/*
 * test_wire_buf.c - the capped wire buffer: sticky errors, no overflow on
 * hostile lengths, no trailing bytes accepted.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "wire/buf.h"

START_TEST(roundtrip)
{
	uint8_t mem[64];
	struct wbuf w, r;
	uint8_t a; uint16_t b; uint32_t c; uint64_t d;
	const uint8_t *p; uint32_t n;

	wbuf_writer(&w, mem, sizeof(mem));
	ck_assert_int_eq(wbuf_put_u8(&w, 0xab), 0);
	ck_assert_int_eq(wbuf_put_u16(&w, 0x1234), 0);
	ck_assert_int_eq(wbuf_put_u32(&w, 0xdeadbeef), 0);
	ck_assert_int_eq(wbuf_put_u64(&w, 0x0102030405060708ull), 0);
	ck_assert_int_eq(wbuf_put_lenbytes(&w, "hello", 5), 0);
	ck_assert(wbuf_ok(&w));
	ck_assert_uint_eq(w.pos, 1 + 2 + 4 + 8 + 4 + 5);
	ck_assert_uint_eq(mem[3], 0xef); /* little-endian */

	wbuf_reader(&r, mem, w.pos);
	wbuf_get_u8(&r, &a); wbuf_get_u16(&r, &b); wbuf_get_u32(&r, &c); wbuf_get_u64(&r, &d);
	ck_assert_int_eq(wbuf_get_lenbytes(&r, &p, &n, 16), 0);
	ck_assert(wbuf_done(&r));
	ck_assert_uint_eq(a, 0xab); ck_assert_uint_eq(b, 0x1234);
	ck_assert_uint_eq(c, 0xdeadbeef); ck_assert_uint_eq(d, 0x0102030405060708ull);
	ck_assert_uint_eq(n, 5); ck_assert_int_eq(memcmp(p, "hello", 5), 0);
}
END_TEST

START_TEST(hostile_lengths)
{
	uint8_t mem[8] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4 };
	struct wbuf r;
	const uint8_t *p; uint32_t n; uint32_t x;

	/* A length of 4 GiB with 4 bytes left: refused, sticky, outputs cleared. */
	wbuf_reader(&r, mem, sizeof(mem));
	ck_assert_int_eq(wbuf_get_lenbytes(&r, &p, &n, UINT32_MAX), -1);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(wbuf_get_u32(&r, &x), -1);
	ck_assert_uint_eq(x, 0);
	ck_assert(!wbuf_ok(&r));

	/* Within the buffer but over the caller's cap: refused. */
	mem[0] = 4; mem[1] = mem[2] = mem[3] = 0;
	wbuf_reader(&r, mem, sizeof(mem));
	ck_assert_int_eq(wbuf_get_lenbytes(&r, &p, &n, 3), -1);

	/* Trailing bytes: parse ok but not done. */
	wbuf_reader(&r, mem, sizeof(mem));
	ck_assert_int_eq(wbuf_get_u32(&r, &x), 0);
	ck_assert(wbuf_ok(&r));
	ck_assert(!wbuf_done(&r));
}
END_TEST

START_TEST(writer_overflow)
{
	uint8_t mem[6];
	struct wbuf w;
	uint8_t *p;

	wbuf_writer(&w, mem, sizeof(mem));
	ck_assert_int_eq(wbuf_put_u32(&w, 1), 0);
	ck_assert_int_eq(wbuf_put_u32(&w, 2), -1);
	ck_assert_int_eq(wbuf_put_u8(&w, 3), -1); /* sticky even though 2 bytes fit */
	ck_assert_int_eq(wbuf_reserve(&w, &p, 1), -1);
	ck_assert_ptr_null(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wire_buf");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, roundtrip);
	tcase_add_test(tc, hostile_lengths);
	tcase_add_test(tc, writer_overflow);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
