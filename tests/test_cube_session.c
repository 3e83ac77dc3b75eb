/*
 * test_cube_session.c - the driver's connection and session layer against
 * a real emulator: open (with auto-start), HELLO, login/logout, wrong PINs
 * and tries left, lockout surviving an emulator restart, SET_PIN, errors a
 * user can act on, forged and replayed frames refused, and two
 * connections to one emulator with a session each.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cube/cube.h"
#include "cube/internal.h"
#include "wire/buf.h"
#include "helper_emu.h"

START_TEST(open_login_logout)
{
	struct emu e;
	struct cube *c;
	struct cube_info info;
	uint8_t rnd[16];

	emu_new(&e);
	c = emu_open(&e);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.state, WIRE_DEV_READY);
	ck_assert_uint_eq(info.role, WIRE_ROLE_NONE);
	ck_assert_uint_eq(info.user_tries_left, EMU_USER_TRIES);
	ck_assert_uint_eq(info.admin_tries_left, EMU_ADMIN_TRIES);
	ck_assert_int_eq(info.shm, 1);
	ck_assert_ptr_nonnull(cube_sd_path(c));

	/* Nothing but HELLO-class ops before a login. */
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_EAUTH);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "log in"));

	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.role, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_OK);
	ck_assert_int_eq(cube_logout(c), CUBE_OK);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.role, WIRE_ROLE_NONE);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_EAUTH);

	/* Log in again on the same connection, as admin this time. */
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_ADMIN, EMU_ADMIN_PIN), CUBE_OK);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_OK);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(no_cube_messages)
{
	struct cube *c = (struct cube *)1;
	char err[512];
	char dir[] = "/tmp/cube-none-XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(cube_open(&c, dir, err, sizeof(err)), CUBE_ENODEV);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, "no cube in"));
	ck_assert_ptr_nonnull(strstr(err, "secube create"));
	rmdir(dir);
	ck_assert_int_eq(cube_open(&c, "dir:/nonexistent/x", err, sizeof(err)), CUBE_ENODEV);
	/* This machine has no USB bus (or no board on it). */
	ck_assert_int_eq(cube_open(&c, "usb:", err, sizeof(err)), CUBE_ENODEV);
	ck_assert_ptr_nonnull(strstr(err, "no SEcube on USB"));
	ck_assert_int_eq(cube_open(&c, "", err, sizeof(err)), CUBE_EINVAL);
}
END_TEST

START_TEST(emulator_cannot_start)
{
	struct emu e;
	struct cube *c = NULL;
	char err[512];
	const char *old = getenv("SECUBE_EMU");
	char *saved = old ? strdup(old) : NULL;

	emu_new(&e);
	emu_kill(&e);
	setenv("SECUBE_EMU", "/nonexistent/secube-emu", 1);
	ck_assert_int_eq(cube_open(&c, e.dir, err, sizeof(err)), CUBE_ETRANSPORT);
	ck_assert_ptr_nonnull(strstr(err, "not running and could not be started"));
	if (saved)
		setenv("SECUBE_EMU", saved, 1);
	free(saved);
	/* The real emulator starts again on demand. */
	c = emu_open(&e);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(wrong_pin_and_lockout)
{
	struct emu e;
	struct cube *c;
	struct cube_info info;

	emu_new(&e);
	c = emu_open(&e);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, "wrong-pin"), CUBE_EPIN);
	ck_assert_int_eq(cube_tries_left(c, WIRE_ROLE_USER), EMU_USER_TRIES - 1);
	ck_assert_str_eq(cube_errmsg(c), "wrong user PIN, 4 tries left");
	/* A right PIN resets the count. */
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(cube_tries_left(c, WIRE_ROLE_USER), EMU_USER_TRIES);
	ck_assert_int_eq(cube_logout(c), CUBE_OK);
	for (int i = EMU_USER_TRIES - 1; i >= 0; i--) {
		ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, "wrong-pin"), CUBE_EPIN);
		ck_assert_int_eq(cube_tries_left(c, WIRE_ROLE_USER), i);
	}
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_ELOCKED);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "locked"));
	cube_close(c);

	/* Kill the emulator; cube_open restarts it and the lock holds. */
	ck_assert_int_gt(emu_pid(&e), 0);
	emu_kill(&e);
	ck_assert_int_eq(emu_pid(&e), 0);
	c = emu_open(&e);
	ck_assert_int_gt(emu_pid(&e), 0);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.user_tries_left, 0);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_ELOCKED);

	/* The admin sets a new user PIN, which unlocks it. */
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_ADMIN, EMU_ADMIN_PIN), CUBE_OK);
	ck_assert_int_eq(cube_set_pin(c, WIRE_ROLE_USER, "new-user-pin"), CUBE_OK);
	ck_assert_int_eq(cube_logout(c), CUBE_OK);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_EPIN);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, "new-user-pin"), CUBE_OK);
	/* A user may change their own PIN but not the admin's. */
	ck_assert_int_eq(cube_set_pin(c, WIRE_ROLE_ADMIN, "evil-admin-pin"), CUBE_EPERM);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, "new-user-pin"), CUBE_OK);
	ck_assert_int_eq(cube_set_pin(c, WIRE_ROLE_USER, "abc"), CUBE_EINVAL);
	ck_assert_int_eq(cube_set_pin(c, WIRE_ROLE_USER, "user-pin-3"), CUBE_OK);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, "user-pin-3"), CUBE_OK);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, "abc"), CUBE_EINVAL);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(factory_init_and_reset)
{
	struct emu e;
	struct cube *c;
	struct cube_info info;
	struct cube_key k = { .id = 7, .alg = WIRE_ALG_HMAC_SHA256, .usage = WIRE_USE_MAC,
			      .not_after = WIRE_TIME_NEVER };

	emu_new_blank(&e);
	c = emu_open(&e); /* auto-starts the emulator of a blank cube */
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.state, WIRE_DEV_BLANK);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_ESTATE);
	ck_assert_int_eq(cube_factory_init(c, EMU_ADMIN_PIN, "no", 0, 0), CUBE_EINVAL);
	ck_assert_int_eq(cube_factory_init(c, EMU_ADMIN_PIN, EMU_USER_PIN, 3, 4), CUBE_OK);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.state, WIRE_DEV_READY);
	ck_assert_uint_eq(info.user_tries_left, 3);
	ck_assert_uint_eq(info.admin_tries_left, 4);
	ck_assert_int_eq(cube_factory_init(c, EMU_ADMIN_PIN, EMU_USER_PIN, 0, 0), CUBE_ESTATE);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_ADMIN, EMU_ADMIN_PIN), CUBE_OK);
	ck_assert_int_eq(cube_key_generate(c, &k), CUBE_OK);
	ck_assert_int_eq(cube_factory_reset(c), CUBE_OK);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_uint_eq(info.state, WIRE_DEV_BLANK);
	ck_assert_uint_eq(info.role, WIRE_ROLE_NONE);
	ck_assert_int_eq(cube_factory_init(c, EMU_ADMIN_PIN, EMU_USER_PIN, 0, 0), CUBE_OK);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_ADMIN, EMU_ADMIN_PIN), CUBE_OK);
	ck_assert_int_eq(cube_key_info(c, 7, &k), CUBE_ENOKEY);
	cube_close(c);

	/* Creating over an existing cube is refused. */
	{
		char err[256];

		ck_assert_int_eq(cube_create_emulated(e.dir, err, sizeof(err)), CUBE_EEXIST);
	}
	emu_free(&e);
}
END_TEST

/* Send the previous request again: an old seq, a valid tag. */
START_TEST(replayed_frame_refused)
{
	struct emu e;
	struct cube *c;
	static uint8_t frame[4096];
	size_t len = 0;
	struct cube_reply r;
	uint8_t rnd[8];

	emu_new(&e);
	c = emu_login(&e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_OK);
	ck_assert_int_eq(cube_test_last_request(c, frame, sizeof(frame), &len), CUBE_OK);
	ck_assert_int_eq(cube_test_raw_exchange(c, frame, len, &r), CUBE_OK);
	ck_assert_uint_eq(r.h.status, WIRE_ST_AUTH);
	ck_assert_uint_eq(r.h.flags & WIRE_F_MAC, 0);
	/* The device dropped the session: the next call is refused, cleanly. */
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_EAUTH);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_EAUTH);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_OK);
	cube_close(c);
	emu_free(&e);
}
END_TEST

/* A frame with the right seq whose body was changed after MACing. */
START_TEST(forged_frame_refused)
{
	struct emu e;
	struct cube *c;
	static uint8_t frame[4096];
	size_t len = 0;
	struct cube_reply r;
	uint8_t rnd[8];
	uint64_t seq;

	emu_new(&e);
	c = emu_login(&e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_OK);
	ck_assert_int_eq(cube_test_last_request(c, frame, sizeof(frame), &len), CUBE_OK);
	/* Next seq, a different n, the old tag. */
	seq = c->s.seq_tx;
	wire_le64(frame + 16, seq);
	frame[WIRE_HEADER_LEN] ^= 0x01;
	ck_assert_int_eq(cube_test_raw_exchange(c, frame, len, &r), CUBE_OK);
	ck_assert_uint_eq(r.h.status, WIRE_ST_AUTH);
	/* A MAC-less request inside the session is refused too. */
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	{
		struct wire_header h = { .op = WIRE_OP_RANDOM, .body_len = 4, .seq = c->s.seq_tx };

		wire_header_pack(&h, frame);
		wire_le32(frame + WIRE_HEADER_LEN, 8);
		ck_assert_int_eq(cube_test_raw_exchange(c, frame, WIRE_HEADER_LEN + 4, &r), CUBE_OK);
		ck_assert_uint_eq(r.h.status, WIRE_ST_AUTH);
	}
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_EAUTH);
	cube_close(c);
	emu_free(&e);
}
END_TEST

START_TEST(two_connections)
{
	struct emu e;
	struct cube *a, *b;
	struct cube_info ia, ib;
	uint8_t x[16], y[16];

	emu_new(&e);
	a = emu_login(&e, WIRE_ROLE_ADMIN);
	b = emu_open(&e);
	ck_assert_int_eq(cube_info(b, &ib), CUBE_OK);
	ck_assert_uint_eq(ib.role, WIRE_ROLE_NONE);
	ck_assert_int_eq(cube_random(b, x, sizeof(x)), CUBE_EAUTH);
	ck_assert_int_eq(cube_login(b, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(cube_random(a, x, sizeof(x)), CUBE_OK);
		ck_assert_int_eq(cube_random(b, y, sizeof(y)), CUBE_OK);
		ck_assert_int_ne(memcmp(x, y, sizeof(x)), 0);
	}
	ck_assert_int_eq(cube_info(a, &ia), CUBE_OK);
	ck_assert_int_eq(cube_info(b, &ib), CUBE_OK);
	ck_assert_uint_eq(ia.role, WIRE_ROLE_ADMIN);
	ck_assert_uint_eq(ib.role, WIRE_ROLE_USER);
	ck_assert_int_eq(memcmp(ia.serial, ib.serial, WIRE_SERIAL_LEN), 0);
	/* One logging out leaves the other's session alone. */
	ck_assert_int_eq(cube_logout(a), CUBE_OK);
	ck_assert_int_eq(cube_random(b, y, sizeof(y)), CUBE_OK);
	cube_close(a);
	ck_assert_int_eq(cube_random(b, y, sizeof(y)), CUBE_OK);
	cube_close(b);
	emu_free(&e);
}
END_TEST

static void *open_and_hello(void *arg)
{
	const struct emu *e = arg;
	struct cube *c = NULL;
	struct cube_info info;
	char err[512];
	intptr_t ok = cube_open(&c, e->dir, err, sizeof(err)) == CUBE_OK &&
		      cube_info(c, &info) == CUBE_OK && info.state == WIRE_DEV_READY;

	cube_close(c);
	return (void *)ok;
}

/* Several clients find the emulator dead at once: all of them connect. */
START_TEST(concurrent_autostart)
{
	struct emu e;
	pthread_t t[3];
	void *ok;

	emu_new(&e);
	emu_kill(&e);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, open_and_hello, &e), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pthread_join(t[i], &ok), 0);
		ck_assert_msg(ok == (void *)1, "client %d could not open", i);
	}
	ck_assert_int_gt(emu_pid(&e), 0);
	emu_free(&e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cube_session");
	TCase *tc = tcase_create("session");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, open_login_logout);
	tcase_add_test(tc, no_cube_messages);
	tcase_add_test(tc, emulator_cannot_start);
	tcase_add_test(tc, wrong_pin_and_lockout);
	tcase_add_test(tc, factory_init_and_reset);
	tcase_add_test(tc, replayed_frame_refused);
	tcase_add_test(tc, forged_frame_refused);
	tcase_add_test(tc, two_connections);
	tcase_add_test(tc, concurrent_autostart);
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
