/*
 * fuzz_sefile_backing.c - libFuzzer target for SEfile's paths over a
 * damaged or forged backing file: header authentication, the backing-size
 * check, crash-residue settling and repair, sector runs with holes and
 * missing sectors, sefile_verify, and a write over the damage.
 *
 * A real cube answers, in process: the device library (firmware/) behind
 * a test transport (struct cube_transport of cube/transport.h) that hands
 * each request frame to device_handle(), so sealing and opening are the
 * real thing without a socket or an emulator process.  Keys 1..3 (the
 * three sector algorithms) are generated once.
 *
 * Input: u8 config (algorithm, sector size 512 or 1024, plaintext length),
 * then mutations applied to the original backing bytes, 5 bytes each:
 *   u8 kind, u16 a, u16 b
 *   kind%6: 0 xor byte a with b | 1 zero [a, a+b%600) | 2 cut to a bytes
 *           3 append b%700 bytes of a's low byte | 4 copy 64 bytes from a to b
 *           5 set byte a to b
 * then a trailing u16 write offset.
 *
 * Invariants (the format's promises, docs/FORMAT.md): damage is detected
 * or harmless.  If the file opens, its size is the original size (the
 * header is authenticated), every sector reads as its original bytes or,
 * if its stored form was zeroed whole, as zeros (a hole); a file that
 * verifies also opens and reads; a write that succeeds reads back.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cube/internal.h"
#include "cube/transport.h"
#include "firmware/device.h"
#include "firmware/flash.h"
#include "firmware/keystore.h"
#include "sefile/sefile.h"
#include "wire/buf.h"
#include "wire/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_CONFIGS 12
#define MAX_BACKING 8192

/* The transport: each frame goes straight to the in-process device. */
struct dev_transport {
	struct cube_transport t;
	struct device *d;
	struct session s;
	uint8_t *req, *resp;
	size_t resp_len;
};

struct original {
	int made;
	uint8_t *backing;
	size_t backing_len;
	uint8_t *plain;
	size_t plain_len;
	uint32_t sector_size;
};

struct rig {
	struct flash *flash;
	struct keystore *ks;
	struct device *d;
	struct dev_transport dt;
	struct cube *c;
	struct sefile_cube *pool;
	struct original orig[N_CONFIGS];
};

static struct rig *rig;

static void die(const char *why)
{
	fprintf(stderr, "fuzz_sefile_backing: %s\n", why);
	abort();
}

static void check(int cond)
{
	if (!cond)
		__builtin_trap();
}

static int64_t fixed_time(void *arg)
{
	(void)arg;
	return WIRE_EPOCH + 86400 * 300;
}

static int dt_send(struct cube_transport *t, const uint8_t *hdr, const uint8_t *body,
		   size_t body_len, const uint8_t *tag, int pass_fd)
{
	struct dev_transport *dt = (struct dev_transport *)t;
	size_t len = WIRE_HEADER_LEN + body_len;

	(void)pass_fd;
	memcpy(dt->req, hdr, WIRE_HEADER_LEN);
	if (body_len)
		memcpy(dt->req + WIRE_HEADER_LEN, body, body_len);
	if (tag) {
		memcpy(dt->req + len, tag, WIRE_TAG_LEN);
		len += WIRE_TAG_LEN;
	}
	if (device_handle(dt->d, &dt->s, dt->req, len, dt->resp, DEVICE_FRAME_MAX, &dt->resp_len) !=
	    DEVICE_OK)
		die("device_handle refused to answer");
	return 0;
}

static int dt_recv(struct cube_transport *t, uint8_t *buf, size_t cap, struct wire_header *h)
{
	struct dev_transport *dt = (struct dev_transport *)t;

	if (dt->resp_len < WIRE_HEADER_LEN || dt->resp_len > cap ||
	    wire_header_parse(dt->resp, h) != WIRE_ST_OK ||
	    dt->resp_len != WIRE_HEADER_LEN + wire_frame_rest(h))
		die("the device sent a malformed frame");
	memcpy(buf, dt->resp, dt->resp_len);
	dt->resp_len = 0;
	return 0;
}

static void dt_close(struct cube_transport *t)
{
	(void)t;
}

static const struct cube_transport_ops dev_ops = { dt_send, dt_recv, dt_close };

static void rig_init(void)
{
	struct device_config cfg = { .pbkdf2_iterations = 1, .host_time = fixed_time };
	const uint8_t data = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT;
	static const uint8_t algs[3] = { WIRE_ALG_AES256_GCM, WIRE_ALG_AES256_CTR_HMAC,
					 WIRE_ALG_AES128_GCM };

	rig = calloc(1, sizeof(*rig));
	if (!rig)
		die("oom");
	rig->dt.req = malloc(DEVICE_FRAME_MAX);
	rig->dt.resp = malloc(DEVICE_FRAME_MAX);
	if (!rig->dt.req || !rig->dt.resp)
		die("oom");
	if (flash_open_mem(&rig->flash, NULL) != FLASH_OK || ks_open_flash(&rig->ks, rig->flash) != KS_OK ||
	    device_create_identity(rig->ks) != DEVICE_OK || device_open(&rig->d, rig->ks, &cfg) != DEVICE_OK)
		die("device");
	rig->dt.t.ops = &dev_ops;
	rig->dt.t.timeout_ms = 1000;
	rig->dt.d = rig->d;
	device_session_init(&rig->dt.s);
	if (cube_conn_new(&rig->c, &rig->dt.t, NULL, 0) != CUBE_OK || cube_hello(rig->c, 0) != CUBE_OK ||
	    cube_factory_init(rig->c, "admin-pin", "user-pin", 0, 0) != CUBE_OK ||
	    cube_login(rig->c, WIRE_ROLE_ADMIN, "admin-pin") != CUBE_OK)
		die("login");
	for (uint32_t i = 0; i < 3; i++) {
		struct cube_key k = { .id = i + 1, .alg = algs[i], .usage = data,
				      .not_after = WIRE_TIME_NEVER };

		if (cube_key_generate(rig->c, &k) != CUBE_OK)
			die("keygen");
	}
	if (sefile_cube_wrap(&rig->pool, rig->c) != SEFILE_OK)
		die("pool");
}

static int memfile(const uint8_t *bytes, size_t len)
{
	int fd = memfd_create("sefile-fuzz", MFD_CLOEXEC);

	if (fd < 0)
		die("memfd");
	if (len && pwrite(fd, bytes, len, 0) != (ssize_t)len)
		die("pwrite");
	return fd;
}

/* The original file of a config: made once, kept as bytes. */
static struct original *original(unsigned cfg)
{
	static const uint32_t lens[] = { 0, 700, 1024, 2500 };
	struct original *o = &rig->orig[cfg];
	struct sefile_params p = { .key_id = 1 + cfg % 3, .sector_size = (cfg / 3) % 2 ? 1024 : 512 };
	struct sefile *f;
	off_t end;
	int fd;

	if (o->made)
		return o;
	p.alg = p.key_id == 1 ? WIRE_ALG_AES256_GCM
		: p.key_id == 2 ? WIRE_ALG_AES256_CTR_HMAC : WIRE_ALG_AES128_GCM;
	o->plain_len = lens[cfg / 6 * 2 + (cfg % 2)];
	o->sector_size = p.sector_size;
	o->plain = malloc(o->plain_len + 1);
	o->backing = malloc(MAX_BACKING);
	if (!o->plain || !o->backing)
		die("oom");
	for (size_t i = 0; i < o->plain_len; i++)
		o->plain[i] = (uint8_t)(i * 7 + cfg + 1);
	fd = memfile(NULL, 0);
	if (sefile_create(&f, rig->pool, fd, &p) != SEFILE_OK ||
	    (o->plain_len && sefile_pwrite(f, o->plain, o->plain_len, 0) != (ssize_t)o->plain_len) ||
	    sefile_close(f) != SEFILE_OK)
		die("create the original");
	end = lseek(fd, 0, SEEK_END);
	if (end < 0 || end > MAX_BACKING || pread(fd, o->backing, (size_t)end, 0) != end)
		die("read the original");
	o->backing_len = (size_t)end;
	close(fd);
	o->made = 1;
	return o;
}

/* Apply the input's mutations to a copy of the backing; returns its length. */
static size_t mutate(uint8_t *b, size_t len, const uint8_t **data, size_t *size)
{
	while (*size >= 5 + 2) {
		const uint8_t *m = *data;
		size_t a = wire_rd16(m + 1), v = wire_rd16(m + 3);

		*data += 5;
		*size -= 5;
		switch (m[0] % 6) {
		case 0: if (a < len) b[a] ^= (uint8_t)(v | 1); break;
		case 1: if (a < len) memset(b + a, 0, (v % 600) < len - a ? v % 600 : len - a); break;
		case 2: if (a < len) len = a; break;
		case 3: {
			size_t n = v % 700;

			if (len + n > MAX_BACKING)
				n = MAX_BACKING - len;
			memset(b + len, (uint8_t)a, n);
			len += n;
			break;
		}
		case 4: if (a + 64 <= len && v + 64 <= len) memmove(b + v, b + a, 64); break;
		default: if (a < len) b[a] = (uint8_t)v; break;
		}
	}
	return len;
}

/* Stored sector i of the mutated backing is all zeros (a hole). */
static int zeroed_whole(const uint8_t *b, size_t len, const struct original *o, uint64_t i)
{
	uint64_t S = o->sector_size, off = SEFILE_HEADER_LEN + i * (S + WIRE_SECTOR_OVERHEAD);
	uint64_t slen = o->plain_len - i * S < S ? o->plain_len - i * S : S;
	uint64_t end = off + slen + WIRE_SECTOR_OVERHEAD;

	for (uint64_t k = off; k < end && k < len; k++)
		if (b[k])
			return 0;
	return 1;
}

/* Bytes read back must be the original, or zeros where a sector was zeroed whole. */
static void check_plain(const uint8_t *got, const struct original *o, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < o->plain_len; i += o->sector_size) {
		size_t n = o->plain_len - i < o->sector_size ? o->plain_len - i : o->sector_size;

		if (memcmp(got + i, o->plain + i, n) == 0)
			continue;
		check(zeroed_whole(b, len, o, i / o->sector_size));
		for (size_t k = 0; k < n; k++)
			check(got[i + k] == 0);
	}
}

static void damage_cb(void *arg, uint64_t sector, const char *reason)
{
	(void)sector;
	check(reason != NULL);
	++*(unsigned *)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t b[MAX_BACKING], got[MAX_BACKING];
	const struct original *o;
	struct sefile *f;
	uint64_t fsize;
	unsigned damaged = 0;
	uint16_t woff;
	size_t len;
	int fd, vrc, orc;

	if (!rig)
		rig_init();
	if (size < 3)
		return 0;
	o = original(data[0] % N_CONFIGS);
	data++, size--;
	memcpy(b, o->backing, o->backing_len);
	len = mutate(b, o->backing_len, &data, &size);
	woff = size >= 2 ? wire_rd16(data) : 0;
	fd = memfile(b, len);

	vrc = sefile_verify(rig->pool, fd, damage_cb, &damaged);
	check(vrc == SEFILE_OK ? damaged == 0 : 1);
	orc = sefile_open(&f, rig->pool, fd);
	if (vrc == SEFILE_OK)
		check(orc == SEFILE_OK);
	if (orc == SEFILE_OK) {
		ssize_t n;

		check(sefile_size(f, &fsize) == SEFILE_OK && fsize == o->plain_len);
		n = sefile_pread(f, got, sizeof(got), 0);
		if (vrc == SEFILE_OK)
			check(n == (ssize_t)o->plain_len);
		if (n >= 0) {
			check(n == (ssize_t)o->plain_len);
			check_plain(got, o, b, len);
		}
		/* a small write over whatever is there */
		{
			uint8_t w[40];
			uint64_t at = woff % (o->plain_len + 600);

			memset(w, 0x77, sizeof(w));
			if (sefile_pwrite(f, w, sizeof(w), at) == (ssize_t)sizeof(w)) {
				n = sefile_pread(f, got, sizeof(w), at);
				check(n < 0 || (n == (ssize_t)sizeof(w) && memcmp(got, w, sizeof(w)) == 0));
			}
		}
		sefile_close(f);
	}
	close(fd);
	return 0;
}
