/*
 * dev_testreveal.c - TEST BUILDS ONLY: a request that hands a key value
 * out in the clear, so that tests/robust_secrets.sh can learn every secret
 * of a cube and then prove that none of them is anywhere on the host
 * (core dumps, backing files, databases, the flash image, logs).
 *
 * It exists only when compiled with -DSECUBE_TEST_BACKDOOR.  Neither the
 * Makefile nor any normal build defines that flag: in every shipped
 * secube-emu this file is empty, op 200 is not in the request table and the
 * device answers WIRE_ST_UNKNOWN_OP (the test checks that too).  The test
 * builds its own secube-emu-test from the firmware and wire sources with the
 * flag into a temporary directory.
 *
 * Op 200 (DEV_OP_TEST_REVEAL in device.c), admin session, READY only:
 *   req:  u8 what  u32 id
 *         what 0: key id's value;  what 1: the key-store master key (id 0)
 *   resp: u8 alg  lenbytes value     (alg 0 for the master key)
 */
#ifdef SECUBE_TEST_BACKDOOR

#include "dev_internal.h"

#include <string.h>

#include "fwcrypto.h"

#define REVEAL_KEY    0
#define REVEAL_MASTER 1

int dev_op_test_reveal(struct device *d, struct request *r, struct wbuf *resp);

int dev_op_test_reveal(struct device *d, struct request *r, struct wbuf *resp)
{
	struct ks_key k;
	uint8_t what = 0;
	uint32_t id = 0;
	int st;

	wbuf_get_u8(&r->body, &what);
	wbuf_get_u32(&r->body, &id);
	if (!wbuf_done(&r->body))
		return WIRE_ST_MALFORMED;
	if (what == REVEAL_MASTER) {
		/* The master key is in RAM while any session is logged in, and
		 * this op runs only inside an admin session. */
		if (id != 0)
			return WIRE_ST_INVALID;
		wbuf_put_u8(resp, 0);
		wbuf_put_lenbytes(resp, d->master, sizeof(d->master));
		return WIRE_ST_OK;
	}
	if (what != REVEAL_KEY)
		return WIRE_ST_INVALID;
	st = dev_key_use(d, id, 0, 0, &k);
	if (st == WIRE_ST_OK) {
		wbuf_put_u8(resp, k.alg);
		wbuf_put_lenbytes(resp, k.value, k.len);
	}
	fw_wipe(&k, sizeof(k));
	return st;
}

#else

/* ISO C wants at least one declaration in a translation unit. */
typedef int dev_testreveal_not_built;

#endif
