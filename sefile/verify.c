/*
 * verify.c - walk every sector of a SEfile file and report each damaged
 * one (sefile_verify), and re-encrypt a file under another key
 * crash-safely (sefile_rekey).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sefile_impl.h"

static int verify_sectors(struct sefile *f, sefile_damage_cb cb, void *arg)
{
	uint64_t first, n = sector_count(f->size, f->shift);
	uint32_t per = sectors_per_request(f);
	uint8_t bad[WIRE_MAX_SECTORS];
	struct sefile_conn *cn = conn_get(f->pool);
	int rc = SEFILE_OK, damaged = 0;

	for (first = 0; first < n; first += per) {
		uint32_t count = n - first < per ? (uint32_t)(n - first) : per, i;

		rc = read_run(f, cn, first, count, cn->plain, bad);
		if (rc != SEFILE_OK && rc != SEFILE_EINTEGRITY)
			break;
		rc = SEFILE_OK;
		for (i = 0; i < count; i++) {
			if (!bad[i])
				continue;
			damaged++;
			if (cb)
				cb(arg, first + i,
				   bad[i] == SECTOR_MISSING
					   ? "backing file ends early (truncated)"
					   : "authentication failed (bit flip, or a sector swapped or spliced)");
		}
	}
	OPENSSL_cleanse(cn->plain, CONN_PLAIN_CAP);
	conn_put(f->pool, cn);
	if (rc == SEFILE_OK && damaged)
		rc = seterr(SEFILE_EINTEGRITY, "%d damaged sector%s", damaged, damaged == 1 ? "" : "s");
	return rc;
}

int sefile_verify(struct sefile_cube *pool, int fd, sefile_damage_cb cb, void *arg)
{
	struct sefile *f;
	int rc;

	/* No repair: verifying must not change the file. */
	rc = file_open(&f, pool, fd, 0);
	if (rc != SEFILE_OK) {
		if (cb && (rc == SEFILE_EINTEGRITY || rc == SEFILE_EFORMAT))
			cb(arg, UINT64_MAX, sefile_errmsg());
		return rc;
	}
	rc = verify_sectors(f, cb, arg);
	sefile_close(f);
	return rc;
}

/* ---- rekey ---- */

static int temp_name(char *out, size_t cap)
{
	uint8_t r[8];
	unsigned i;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return seterr(SEFILE_ENOMEM, "rekey: no randomness for a temp name");
	snprintf(out, cap, ".sefile-rekey-");
	for (i = 0; i < sizeof(r); i++)
		snprintf(out + strlen(out), cap - strlen(out), "%02x", r[i]);
	return SEFILE_OK;
}

/* Copy every byte of src to dst; sector-aligned all-zero runs are left
 * as holes, so the copy is as sparse as the original. */
static int copy_contents(struct sefile *src, struct sefile *dst, uint8_t *buf, size_t cap)
{
	uint64_t size, off;
	int rc = sefile_size(src, &size);

	for (off = 0; rc == SEFILE_OK && off < size; off += cap) {
		ssize_t n = sefile_pread(src, buf, cap, off);

		if (n < 0)
			return (int)n;
		if (bytes_are_zero(buf, (size_t)n))
			continue;
		n = sefile_pwrite(dst, buf, (size_t)n, off);
		if (n < 0)
			return (int)n;
	}
	if (rc == SEFILE_OK)
		rc = sefile_truncate(dst, size);
	return rc;
}

static int rekey_into(struct sefile_cube *pool, int dirfd, const char *name, const char *tmp,
		      const struct sefile_params *p, sefile_rekey_hook hook, void *arg)
{
	struct sefile *src = NULL, *dst = NULL;
	struct sefile_params np = *p;
	struct sefile_info info, dinfo;
	struct stat st;
	uint8_t *buf = NULL;
	int sfd = -1, dfd = -1, rc;

	sfd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return seterr_io("rekey: open", 0);
	rc = file_open(&src, pool, sfd, 0);
	if (rc != SEFILE_OK)
		goto out;
	sefile_info(src, &info);
	if (!np.alg)
		np.alg = info.alg;
	if (!np.sector_size)
		np.sector_size = info.sector_size;
	if (fstat(sfd, &st) != 0) {
		rc = seterr_io("rekey: fstat", 0);
		goto out;
	}
	dfd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (dfd < 0) {
		rc = seterr_io("rekey: create temp file", 0);
		goto out;
	}
	rc = sefile_create(&dst, pool, dfd, &np);
	if (rc != SEFILE_OK)
		goto out;
	buf = malloc(WIRE_MAX_BULK);
	if (!buf) {
		rc = seterr(SEFILE_ENOMEM, "rekey: out of memory");
		goto out;
	}
	rc = copy_contents(src, dst, buf, WIRE_MAX_BULK);
	/* what else the file owns goes over before the fsync makes it durable */
	if (rc == SEFILE_OK && hook) {
		sefile_info(dst, &dinfo);
		rc = hook(arg, sfd, &info, dfd, &dinfo);
		if (rc != SEFILE_OK)
			rc = seterr(rc, "rekey: carrying the file's attributes over failed (%s)",
				    sefile_strerror(rc));
	}
	if (rc == SEFILE_OK)
		rc = sefile_fsync(dst, 0);
out:
	if (buf) {
		OPENSSL_cleanse(buf, WIRE_MAX_BULK);
		free(buf);
	}
	if (dst) {
		int crc = sefile_close(dst);

		if (rc == SEFILE_OK)
			rc = crc;
	}
	sefile_close(src);
	if (dfd >= 0)
		close(dfd);
	close(sfd);
	return rc;
}

int sefile_rekey(struct sefile_cube *pool, int dirfd, const char *name,
		 const struct sefile_params *p)
{
	return sefile_rekey_with(pool, dirfd, name, p, NULL, NULL);
}

int sefile_rekey_with(struct sefile_cube *pool, int dirfd, const char *name,
		      const struct sefile_params *p, sefile_rekey_hook hook, void *arg)
{
	char tmp[64];
	int rc;

	if (!pool || !name || !p || !name[0] || strchr(name, '/'))
		return seterr(SEFILE_EINVAL, "rekey: bad arguments");
	rc = temp_name(tmp, sizeof(tmp));
	if (rc != SEFILE_OK)
		return rc;
	rc = rekey_into(pool, dirfd, name, tmp, p, hook, arg);
	if (rc == SEFILE_OK && renameat(dirfd, tmp, dirfd, name) != 0)
		rc = seterr_io("rekey: rename over the old file", 0);
	if (rc != SEFILE_OK) {
		int saved = errno;

		unlinkat(dirfd, tmp, 0);
		errno = saved;
		return rc;
	}
	if (fsync(dirfd) != 0)
		return seterr_io("rekey: fsync of the directory", 0);
	return SEFILE_OK;
}
