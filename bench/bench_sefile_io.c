/*
 * bench_sefile_io.c - SEfile library throughput next to raw OpenSSL, side
 * by side in one run: sequential write and read of a file in 1 MiB calls
 * (sefile_pwrite / sefile_pread on /dev/shm, sealed by an emulated cube)
 * against in-process AES-256-GCM over the same bytes in 4 KiB sectors.
 * Medians of 3 rounds; prints MB/s and the ratios.
 *
 * usage: bench_sefile_io [MIB]   (default 256; BENCH_QUICK=1: 64)
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sefile/sefile.h"

#define CHUNK  (1u << 20)
#define SECTOR 4096u
#define ROUNDS 3

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The same sealing work done in process: one context, nonces from one call. */
static int raw_seal(EVP_CIPHER_CTX *ctx, const uint8_t *in, uint8_t *out, size_t len)
{
	static uint8_t nonces[(CHUNK / SECTOR) * 12];
	uint8_t aad[28] = { 0 };
	size_t i, n = len / SECTOR;
	int l, ok = RAND_bytes(nonces, (int)(n * 12)) == 1;

	for (i = 0; ok && i < n; i++) {
		uint8_t *o = out + i * (SECTOR + 28);

		memcpy(o, nonces + 12 * i, 12);
		ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, o) &&
		     EVP_EncryptUpdate(ctx, NULL, &l, aad, sizeof(aad)) &&
		     EVP_EncryptUpdate(ctx, o + 12, &l, in + i * SECTOR, SECTOR) &&
		     EVP_EncryptFinal_ex(ctx, o + 12 + SECTOR, &l) &&
		     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, o + 12 + SECTOR);
	}
	return ok ? 0 : -1;
}

static void kill_emulator(const char *dir)
{
	char path[4200], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/secube-emu.pid", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (atoi(buf) > 1)
			kill(atoi(buf), SIGTERM);
	}
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : getenv("BENCH_QUICK") ? 64 : 256;
	char dir[] = "/tmp/bench-sefile.XXXXXX", file[] = "/dev/shm/bench-sefile.XXXXXX";
	char err[256], cmd[4300];
	struct cube_key k = { .id = 1, .alg = WIRE_ALG_AES256_GCM,
			      .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT,
			      .not_before = 0, .not_after = WIRE_TIME_NEVER };
	struct sefile_params p = { .key_id = 1, .alg = WIRE_ALG_AES256_GCM, .sector_size = SECTOR };
	double wr[ROUNDS], rd[ROUNDS], raw[ROUNDS];
	uint8_t *buf = malloc(CHUNK), *sealed = malloc(CHUNK + (CHUNK / SECTOR) * 28), key[32];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	struct sefile_cube *pool = NULL;
	struct cube *c = NULL;
	int fd = -1, rc = 1, r;

	if (mib == 0 || !buf || !sealed || !ctx || !mkdtemp(dir))
		return 1;
	RAND_bytes(buf, CHUNK);
	RAND_bytes(key, sizeof(key));
	if (!EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL))
		goto out;
	if (cube_create_emulated(dir, err, sizeof(err)) != CUBE_OK ||
	    cube_open(&c, dir, err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "bench_sefile_io: %s\n", err);
		goto out;
	}
	if (cube_factory_init(c, "admin-pin", "user-pin", 0, 0) != CUBE_OK ||
	    cube_login(c, WIRE_ROLE_ADMIN, "admin-pin") != CUBE_OK ||
	    cube_key_generate(c, &k) != CUBE_OK) {
		fprintf(stderr, "bench_sefile_io: set-up: %s\n", cube_errmsg(c));
		goto out;
	}
	cube_close(c);
	c = NULL;
	if (sefile_cube_open(&pool, dir, WIRE_ROLE_USER, "user-pin", 1, err, sizeof(err)) != SEFILE_OK) {
		fprintf(stderr, "bench_sefile_io: %s\n", err);
		goto out;
	}
	for (r = 0; r < ROUNDS; r++) {
		struct sefile *f = NULL;
		double t0;
		unsigned i;

		fd = mkstemp(file);
		if (fd < 0 || sefile_create(&f, pool, fd, &p) != SEFILE_OK)
			goto out;
		t0 = now_s();
		for (i = 0; i < mib; i++)
			if (sefile_pwrite(f, buf, CHUNK, (uint64_t)i * CHUNK) != (ssize_t)CHUNK)
				goto fail;
		if (sefile_fsync(f, 1) != SEFILE_OK)
			goto fail;
		wr[r] = mib * (CHUNK / 1e6) / (now_s() - t0);
		t0 = now_s();
		for (i = 0; i < mib; i++)
			if (sefile_pread(f, buf, CHUNK, (uint64_t)i * CHUNK) != (ssize_t)CHUNK)
				goto fail;
		rd[r] = mib * (CHUNK / 1e6) / (now_s() - t0);
		sefile_close(f);
		close(fd);
		unlink(file);
		strcpy(file, "/dev/shm/bench-sefile.XXXXXX");
		fd = -1;
		t0 = now_s();
		for (i = 0; i < mib; i++)
			if (raw_seal(ctx, buf, sealed, CHUNK) != 0)
				goto out;
		raw[r] = mib * (CHUNK / 1e6) / (now_s() - t0);
		continue;
fail:
		fprintf(stderr, "bench_sefile_io: %s\n", sefile_errmsg());
		sefile_close(f);
		goto out;
	}
	qsort(wr, ROUNDS, sizeof(double), cmp_double);
	qsort(rd, ROUNDS, sizeof(double), cmp_double);
	qsort(raw, ROUNDS, sizeof(double), cmp_double);
	printf("sefile write, %u MiB in 1 MiB calls:  %8.0f MB/s\n", mib, wr[ROUNDS / 2]);
	printf("sefile read,  %u MiB in 1 MiB calls:  %8.0f MB/s\n", mib, rd[ROUNDS / 2]);
	printf("raw OpenSSL AES-256-GCM in process:   %8.0f MB/s\n", raw[ROUNDS / 2]);
	printf("ratio write/raw: %.2f   read/raw: %.2f\n", wr[ROUNDS / 2] / raw[ROUNDS / 2],
	       rd[ROUNDS / 2] / raw[ROUNDS / 2]);
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(file);
	}
	if (pool)
		sefile_cube_close(pool);
	if (c)
		cube_close(c);
	kill_emulator(dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_sefile_io: could not remove %s\n", dir);
	EVP_CIPHER_CTX_free(ctx);
	free(buf);
	free(sealed);
	return rc;
}
