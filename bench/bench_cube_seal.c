/*
 * bench_cube.c - sealing and opening throughput through the cube protocol
 * (1 MiB batches of 4 KiB sectors, emulator over its UNIX socket) next to
 * raw in-process OpenSSL AES-256-GCM on the same sectors, measured side by
 * side in one run; prints MB/s and the ratio (target >= 0.7).
 *
 * usage: bench_cube [SECONDS_PER_PHASE]   (default 2; 3 rounds, medians)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cube/cube.h"

#define SECTOR 4096u
#define NSECT  256u
#define BATCH  (SECTOR * NSECT)
#define ROUNDS 3

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Raw: the same work the device does per batch, done the fastest simple way
 * in process: all nonces from one RAND_bytes call, one GCM context keyed
 * once, per sector a nonce, the AAD, the data and the tag.
 */
static int raw_seal_batch(EVP_CIPHER_CTX *ctx, const uint8_t *in, uint8_t *out)
{
	uint8_t nonces[NSECT * 12], aad[28];
	unsigned i;
	int len, ok = RAND_bytes(nonces, sizeof(nonces)) == 1;

	memset(aad, 0, sizeof(aad));
	for (i = 0; ok && i < NSECT; i++) {
		uint8_t *o = out + i * (SECTOR + 28);

		memcpy(o, nonces + 12 * i, 12);
		aad[16] = (uint8_t)i;
		ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, o) &&
		     EVP_EncryptUpdate(ctx, NULL, &len, aad, sizeof(aad)) &&
		     EVP_EncryptUpdate(ctx, o + 12, &len, in + i * SECTOR, SECTOR) &&
		     EVP_EncryptFinal_ex(ctx, o + 12 + SECTOR, &len) &&
		     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, o + 12 + SECTOR);
	}
	return ok ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void kill_emulator(const char *dir)
{
	char path[4096], buf[32];
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
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	char dir[] = "/tmp/bench-cube.XXXXXX", err[256], cmd[4200];
	struct cube_sector sect[NSECT];
	struct cube_key k = { .id = 1, .alg = WIRE_ALG_AES256_GCM,
			      .usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT,
			      .not_before = 0, .not_after = WIRE_TIME_NEVER };
	uint8_t *in = malloc(BATCH), *out = malloc(BATCH + NSECT * 28), *back = malloc(BATCH);
	uint8_t *bad = malloc(NSECT), fid[16] = { 1 }, key[32];
	double proto[ROUNDS], open_mb[ROUNDS], raw_mb[ROUNDS], zc[ROUNDS];
	uint8_t *shm_in = NULL, *shm_out = NULL;
	size_t shm_cap = 0;
	struct cube *c = NULL;
	EVP_CIPHER_CTX *raw = EVP_CIPHER_CTX_new();
	int r, rc = 1;
	unsigned i;

	if (!in || !out || !back || !bad || !raw || !mkdtemp(dir))
		return 1;
	RAND_bytes(in, BATCH);
	RAND_bytes(key, sizeof(key));
	if (!EVP_EncryptInit_ex(raw, EVP_aes_256_gcm(), NULL, key, NULL))
		return 1;
	for (i = 0; i < NSECT; i++) {
		sect[i].index = i;
		sect[i].len = SECTOR;
	}
	if (cube_create_emulated(dir, err, sizeof(err)) != CUBE_OK ||
	    cube_open(&c, dir, err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "bench_cube: %s\n", err);
		goto out;
	}
	if (cube_factory_init(c, "admin-pin", "user-pin", 0, 0) != CUBE_OK ||
	    cube_login(c, WIRE_ROLE_ADMIN, "admin-pin") != CUBE_OK ||
	    cube_key_generate(c, &k) != CUBE_OK) {
		fprintf(stderr, "bench_cube: set-up: %s\n", cube_errmsg(c));
		goto out;
	}
	if (cube_bulk_buffers(c, &shm_in, &shm_out, &shm_cap) != CUBE_OK || shm_cap < BATCH + NSECT * 28)
		shm_in = shm_out = NULL;
	for (r = 0; r < ROUNDS; r++) {
		double t0, t;
		unsigned long n;

		for (n = 0, t0 = now_s(); (t = now_s() - t0) < secs; n++)
			if (cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, sect, NSECT, in, out) != CUBE_OK) {
				fprintf(stderr, "bench_cube: seal: %s\n", cube_errmsg(c));
				goto out;
			}
		proto[r] = (double)n * BATCH / t / 1e6;
		for (n = 0, t0 = now_s(); (t = now_s() - t0) < secs; n++)
			if (cube_open_sectors(c, 1, WIRE_ALG_AES256_GCM, fid, sect, NSECT, out, back,
					      bad) != CUBE_OK) {
				fprintf(stderr, "bench_cube: open: %s\n", cube_errmsg(c));
				goto out;
			}
		open_mb[r] = (double)n * BATCH / t / 1e6;
		/* As SEfile uses it: the plaintext written into the shared input
		 * buffer (one copy, counted), the sealed sectors read in place. */
		zc[r] = 0;
		if (shm_in) {
			for (n = 0, t0 = now_s(); (t = now_s() - t0) < secs; n++) {
				memcpy(shm_in, in, BATCH);
				if (cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, sect, NSECT, shm_in,
					      shm_out) != CUBE_OK) {
					fprintf(stderr, "bench_cube: seal: %s\n", cube_errmsg(c));
					goto out;
				}
			}
			zc[r] = (double)n * BATCH / t / 1e6;
		}
		for (n = 0, t0 = now_s(); (t = now_s() - t0) < secs; n++)
			if (raw_seal_batch(raw, in, out) < 0)
				goto out;
		raw_mb[r] = (double)n * BATCH / t / 1e6;
	}
	if (memcmp(in, back, BATCH)) {
		fprintf(stderr, "bench_cube: opened data differs from sealed data\n");
		goto out;
	}
	qsort(proto, ROUNDS, sizeof(double), cmp_double);
	qsort(open_mb, ROUNDS, sizeof(double), cmp_double);
	qsort(raw_mb, ROUNDS, sizeof(double), cmp_double);
	qsort(zc, ROUNDS, sizeof(double), cmp_double);
	printf("cube seal, 1 MiB batches via protocol:  %8.0f MB/s\n", proto[ROUNDS / 2]);
	printf("cube open, 1 MiB batches via protocol:  %8.0f MB/s\n", open_mb[ROUNDS / 2]);
	if (shm_in)
		printf("cube seal, shared buffers (as SEfile):  %8.0f MB/s  ratio %.2f\n", zc[ROUNDS / 2],
		       zc[ROUNDS / 2] / raw_mb[ROUNDS / 2]);
	printf("raw OpenSSL AES-256-GCM in process:     %8.0f MB/s\n", raw_mb[ROUNDS / 2]);
	printf("ratio seal/raw: %.2f (target >= 0.70)   ratio open/raw: %.2f\n",
	       proto[ROUNDS / 2] / raw_mb[ROUNDS / 2], open_mb[ROUNDS / 2] / raw_mb[ROUNDS / 2]);
	rc = 0;
out:
	if (c)
		cube_close(c);
	kill_emulator(dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_cube: could not remove %s\n", dir);
	EVP_CIPHER_CTX_free(raw);
	free(in); free(out); free(back); free(bad);
	return rc;
}
