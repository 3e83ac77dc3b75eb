/*
 * test_cube_fault.c - the emulator dying or hanging under the driver:
 * kill -9 in the middle of a request gives a clean CUBE_ETRANSPORT (no
 * hang, no SIGPIPE), the connection stays failed, cube_open restarts the
 * emulator, and the flash is consistent (every acknowledged key is there);
 * a hung emulator runs into the receive timeout.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cube/cube.h"
#include "helper_emu.h"

struct killer {
	pid_t pid;
	long delay_ms;
	pthread_t thread;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	struct timespec ts = { k->delay_ms / 1000, (k->delay_ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	kill(k->pid, SIGKILL);
	return NULL;
}

static void killer_start(struct killer *k, const struct emu *e, long delay_ms)
{
	k->pid = emu_pid(e);
	k->delay_ms = delay_ms;
	ck_assert_int_gt(k->pid, 0);
	ck_assert_int_eq(pthread_create(&k->thread, NULL, killer_main, k), 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t plain[WIRE_MAX_BULK], sealed[WIRE_MAX_BULK + 256 * WIRE_SECTOR_OVERHEAD];

static void make_gcm_key(const struct emu *e)
{
	struct cube *c = emu_login(e, WIRE_ROLE_ADMIN);
	struct cube_key k = { 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0,
			      WIRE_TIME_NEVER };

	ck_assert_int_eq(cube_key_generate(c, &k), CUBE_OK);
	cube_close(c);
}

/* The emulator is stopped with the request in its socket, then killed. */
static void kill_during_seal(int inline_data)
{
	struct emu e;
	struct cube *c;
	struct killer k;
	struct cube_sector s[256];
	uint8_t fid[WIRE_FILE_ID_LEN] = { 0 }, bad[256];
	struct cube_key key;

	for (int i = 0; i < 256; i++)
		s[i] = (struct cube_sector){ (uint64_t)i, 4096 };
	emu_new(&e);
	make_gcm_key(&e);
	if (inline_data)
		setenv("SECUBE_NO_SHM", "1", 1);
	c = emu_login(&e, WIRE_ROLE_USER);
	unsetenv("SECUBE_NO_SHM");
	emu_stop(&e);
	killer_start(&k, &e, 200);
	ck_assert_int_eq(cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, s, 256, plain, sealed),
			 CUBE_ETRANSPORT);
	ck_assert_msg(strstr(cube_errmsg(c), "device went away during SEAL"), "%s", cube_errmsg(c));
	pthread_join(k.thread, NULL);
	/* The connection stays failed, cleanly. */
	ck_assert_int_eq(cube_open_sectors(c, 1, WIRE_ALG_AES256_GCM, fid, s, 256, sealed, plain, bad),
			 CUBE_ETRANSPORT);
	ck_assert_int_eq(cube_info(c, &(struct cube_info){ 0 }), CUBE_ETRANSPORT);
	cube_close(c);

	/* Reopen: the emulator comes back with the key. */
	c = emu_login(&e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_key_info(c, 1, &key), CUBE_OK);
	ck_assert_int_eq(cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, s, 256, plain, sealed), CUBE_OK);
	cube_close(c);
	emu_free(&e);
}

START_TEST(kill9_mid_seal_shm)
{
	kill_during_seal(0);
}
END_TEST

START_TEST(kill9_mid_seal_inline)
{
	kill_during_seal(1);
}
END_TEST

/* A dead emulator: sending a big request must not raise SIGPIPE. */
START_TEST(send_to_dead_emulator)
{
	struct emu e;
	struct cube *c;
	struct cube_sector s[256];
	uint8_t fid[WIRE_FILE_ID_LEN] = { 0 };

	for (int i = 0; i < 256; i++)
		s[i] = (struct cube_sector){ (uint64_t)i, 4096 };
	emu_new(&e);
	make_gcm_key(&e);
	setenv("SECUBE_NO_SHM", "1", 1);
	c = emu_login(&e, WIRE_ROLE_USER);
	unsetenv("SECUBE_NO_SHM");
	emu_kill(&e);
	ck_assert_int_eq(cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, s, 256, plain, sealed),
			 CUBE_ETRANSPORT);
	ck_assert_int_eq(cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, s, 256, plain, sealed),
			 CUBE_ETRANSPORT);
	cube_close(c);
	emu_free(&e);
}
END_TEST

/* Keys generated one by one while the emulator is killed at a random
 * moment: every acknowledged key survives. */
START_TEST(kill9_during_key_generation)
{
	struct emu e;
	struct cube *c;
	struct killer k;
	uint32_t acked = 0, n = 0;
	static struct cube_key list[WIRE_LIST_MAX];
	int rc = CUBE_OK;

	emu_new(&e);
	c = emu_login(&e, WIRE_ROLE_ADMIN);
	killer_start(&k, &e, 150 + (long)(getpid() % 100));
	for (uint32_t id = 100; id < 100 + 5000; id++) {
		struct cube_key key = { id, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0, WIRE_TIME_NEVER };

		rc = cube_key_generate(c, &key);
		if (rc != CUBE_OK)
			break;
		acked++;
	}
	pthread_join(k.thread, NULL);
	ck_assert_int_eq(rc, CUBE_ETRANSPORT);
	ck_assert_uint_gt(acked, 0);
	cube_close(c);

	c = emu_login(&e, WIRE_ROLE_ADMIN);
	for (uint32_t first = 100, got = 0; first < 100 + acked; first += got) {
		ck_assert_int_eq(cube_key_list(c, first, list, WIRE_LIST_MAX, &n), CUBE_OK);
		ck_assert_uint_gt(n, 0);
		for (uint32_t i = 0; i < n; i++)
			ck_assert_uint_eq(list[i].id, first + i); /* no gaps */
		got = n;
	}
	/* The key being written when the power went may or may not be there;
	 * the store stays writable either way. */
	{
		struct cube_key key = { 100 + acked + 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, 0,
					WIRE_TIME_NEVER };

		ck_assert_int_eq(cube_key_generate(c, &key), CUBE_OK);
	}
	cube_close(c);
	emu_free(&e);
}
END_TEST

/* A hung emulator: the receive timeout ends the wait. */
START_TEST(hung_emulator_times_out)
{
	struct emu e;
	struct cube *c;
	uint8_t rnd[8];
	int64_t t0;

	emu_new(&e);
	setenv("SECUBE_TIMEOUT_MS", "300", 1);
	c = emu_login(&e, WIRE_ROLE_USER);
	setenv("SECUBE_TIMEOUT_MS", "10000", 1);
	emu_stop(&e);
	t0 = now_ms();
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_ETRANSPORT);
	ck_assert_int_lt(now_ms() - t0, 5000);
	ck_assert_msg(strstr(cube_errmsg(c), "no reply within 300 ms"), "%s", cube_errmsg(c));
	emu_cont(&e);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_ETRANSPORT);
	cube_close(c);
	c = emu_login(&e, WIRE_ROLE_USER);
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_OK);
	cube_close(c);
	emu_free(&e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cube_fault");
	TCase *tc = tcase_create("fault");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, kill9_mid_seal_shm);
	tcase_add_test(tc, kill9_mid_seal_inline);
	tcase_add_test(tc, send_to_dead_emulator);
	tcase_add_test(tc, kill9_during_key_generation);
	tcase_add_test(tc, hung_emulator_times_out);
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
