/*
 * file.c - the life of an open SEfile file: create (a fresh random file
 * ID and an authenticated header), open (authenticate the header, check
 * its length against the backing size, repair crash residue), close,
 * fsync, size and info.  Reading and writing are io.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sefile_impl.h"

static int file_new(struct sefile **out, struct sefile_cube *pool, int fd)
{
	struct sefile *f = calloc(1, sizeof(*f));

	*out = NULL;
	if (!f)
		return seterr(SEFILE_ENOMEM, "out of memory for an open file");
	if (pthread_rwlock_init(&f->lock, NULL) != 0) {
		free(f);
		return seterr(SEFILE_ENOMEM, "cannot create a file lock");
	}
	f->pool = pool;
	f->fd = fd;
	*out = f;
	return SEFILE_OK;
}

static void file_free(struct sefile *f)
{
	if (!f)
		return;
	if (f->last_cache) {
		OPENSSL_cleanse(f->last_cache, f->last_cache_len);
		free(f->last_cache);
	}
	free(f->overlay);
	pthread_rwlock_destroy(&f->lock);
	free(f);
}

static int access_mode(int fd, int *writable)
{
	int fl = fcntl(fd, F_GETFL);

	*writable = 0;
	if (fl < 0)
		return seterr_io("fcntl(F_GETFL)", 0);
	*writable = (fl & O_ACCMODE) == O_RDWR;
	return SEFILE_OK;
}

static int check_params(const struct sefile_params *p, struct sefile_info *id)
{
	memset(id, 0, sizeof(*id));
	if (!p)
		return seterr(SEFILE_EINVAL, "no parameters");
	id->key_id = p->key_id;
	id->alg = p->alg ? p->alg : WIRE_ALG_AES256_GCM;
	id->sector_size = p->sector_size ? p->sector_size : 4096;
	if (id->alg != WIRE_ALG_AES256_GCM && id->alg != WIRE_ALG_AES256_CTR_HMAC &&
	    id->alg != WIRE_ALG_AES128_GCM)
		return seterr(SEFILE_EINVAL, "algorithm %u cannot seal sectors", id->alg);
	if (shift_of(id->sector_size) < 0)
		return seterr(SEFILE_EINVAL, "sector size %u is not a power of two in 512..65536",
			      id->sector_size);
	return SEFILE_OK;
}

int sefile_create(struct sefile **out, struct sefile_cube *pool, int fd,
		  const struct sefile_params *p)
{
	struct sefile_conn *cn;
	struct sefile *f = NULL;
	struct stat st;
	int rc, writable;

	*out = NULL;
	if (!pool)
		return seterr(SEFILE_EINVAL, "create: no cube pool");
	rc = access_mode(fd, &writable);
	if (rc != SEFILE_OK)
		return rc;
	if (!writable)
		return seterr(SEFILE_EINVAL, "create: backing file must be open read-write");
	if (fstat(fd, &st) != 0)
		return seterr_io("fstat", 0);
	if (st.st_size != 0)
		return seterr(SEFILE_EINVAL, "create: backing file is not empty (%lld bytes)",
			      (long long)st.st_size);
	rc = file_new(&f, pool, fd);
	if (rc != SEFILE_OK)
		return rc;
	rc = check_params(p, &f->id);
	if (rc != SEFILE_OK)
		goto fail;
	f->shift = (unsigned)shift_of(f->id.sector_size);
	f->writable = 1;
	/* The ID needs uniqueness, not secrecy: the host CSPRNG saves a cube trip. */
	if (RAND_bytes(f->id.file_id, WIRE_FILE_ID_LEN) != 1) {
		rc = seterr(SEFILE_ENOMEM, "create: no randomness for the file ID");
		goto fail;
	}
	cn = conn_get(pool);
	rc = write_header(f, cn, 0);
	conn_put(pool, cn);
	if (rc != SEFILE_OK)
		goto fail;
	*out = f;
	return SEFILE_OK;
fail:
	file_free(f);
	return rc;
}

/* Authenticate the header in hdr: its sealed copy must open under the
 * key, algorithm and file ID it names, and equal the clear fields. */
static int header_authenticate(struct sefile *f, struct sefile_conn *cn, const uint8_t *hdr)
{
	int rc, bad;

	cn->secs[0].index = HDR_INDEX;
	cn->secs[0].len = HDR_CLEAR_LEN;
	rc = conn_open(f->pool, cn, &f->id, 1, hdr + HOFF_SEALED, cn->plain, &bad);
	if (rc == SEFILE_ENOKEY)
		return seterr(rc, "header: key %u is not usable in this cube", f->id.key_id);
	if (rc == SEFILE_EINVAL) /* the cube refuses the algorithm for this key */
		return seterr(SEFILE_EINTEGRITY,
			      "header: algorithm %u does not match key %u (tampered header)", f->id.alg,
			      f->id.key_id);
	if (rc != SEFILE_OK)
		return rc;
	if (bad)
		return seterr(SEFILE_EINTEGRITY,
			      "header: authentication failed (tampered header, or wrong key %u)",
			      f->id.key_id);
	if (CRYPTO_memcmp(cn->plain, hdr, HDR_CLEAR_LEN) != 0)
		return seterr(SEFILE_EINTEGRITY, "header: clear fields differ from their sealed copy");
	return SEFILE_OK;
}

/*
 * Crash residue: the backing is longer than the header's length says.  If
 * the last sector is partial it may still be stored at the length it had
 * before the crash (docs/FORMAT.md, "Crash residue"); find which, and
 * either repair (read-write) or remember its plaintext (read-only).
 */
static int settle_residue(struct sefile *f, struct sefile_conn *cn, uint64_t backing, int repair)
{
	uint64_t k = f->size >> f->shift, off = sector_off(f->shift, k);
	uint32_t r = sector_len(f->size, f->shift, k), alt = 0;
	uint8_t *plain = cn->rmw;
	int rc, have_alt = 0;

	if ((f->size & (f->id.sector_size - 1)) != 0 && backing > off + SECTOR_OVERHEAD + r) {
		uint64_t room = backing - off - SECTOR_OVERHEAD;

		alt = room < f->id.sector_size ? (uint32_t)room : f->id.sector_size;
		if (read_run(f, cn, k, 1, plain, NULL) != SEFILE_OK) {
			size_t got;

			rc = backing_read(f, cn->sealed, (size_t)alt + SECTOR_OVERHEAD, off, &got);
			if (rc != SEFILE_OK)
				return rc;
			if (sefile_sector_is_hole(cn->sealed, (size_t)alt + SECTOR_OVERHEAD)) {
				memset(plain, 0, alt);
				have_alt = 1;
			} else {
				int bad;

				cn->secs[0].index = k;
				cn->secs[0].len = alt;
				rc = conn_open(f->pool, cn, &f->id, 1, cn->sealed, plain, &bad);
				if (rc != SEFILE_OK)
					return rc;
				have_alt = !bad;
			}
		}
	}
	if (repair) {
		uint64_t expect = sefile_backing_size(f->size, f->id.sector_size);

		/* the reseal is a write in place: under a redo record past the
		 * residue, dropped with the residue by the cut */
		rc = have_alt ? reseal_sector(f, cn, k, plain, r, backing, expect) : SEFILE_OK;
		OPENSSL_cleanse(plain, f->id.sector_size);
		if (rc != SEFILE_OK)
			return rc;
		if (!have_alt && ftruncate(f->fd, (off_t)expect) != 0)
			return seterr_io("ftruncate (repair of crash residue)", backing);
	} else if (have_alt) {
		f->last_cache = malloc(r);
		if (!f->last_cache)
			return seterr(SEFILE_ENOMEM, "out of memory");
		memcpy(f->last_cache, plain, r);
		f->last_cache_idx = k;
		f->last_cache_len = r;
	}
	OPENSSL_cleanse(plain, f->id.sector_size);
	return SEFILE_OK;
}

/* backing: the backing size, without a pending redo record. */
static int check_backing(struct sefile *f, struct sefile_conn *cn, uint64_t backing, int repair)
{
	uint64_t expect = sefile_backing_size(f->size, f->id.sector_size), holds;

	if (backing == expect)
		return SEFILE_OK;
	if (backing > expect)
		return settle_residue(f, cn, backing, repair);
	if (sefile_size_from_backing(backing, f->id.sector_size, &holds) == SEFILE_OK)
		return seterr(SEFILE_EINTEGRITY, "header: file length %llu but backing holds %llu (truncated)",
			      (unsigned long long)f->size, (unsigned long long)holds);
	return seterr(SEFILE_EINTEGRITY,
		      "header: file length %llu but backing is only %llu bytes (truncated)",
		      (unsigned long long)f->size, (unsigned long long)backing);
}

/*
 * A redo record at the end of the backing (docs/FORMAT.md, "Writes in
 * place") means a process died while overwriting bytes in place, which
 * may be torn.  Repairing, write the record's bytes in place again and cut
 * it off; otherwise lay them over every read (f->overlay).  Either way
 * the file is then read as if those writes had all completed, and
 * *backing becomes the size without the record.  A torn or foreign record
 * is ignored: nothing was written in place before it was complete, and
 * whatever it holds is still authenticated when read.
 */
static int settle_redo(struct sefile *f, uint64_t *backing, int repair)
{
	uint8_t *body;
	size_t len;
	uint64_t rec_off;
	int rc = redo_find(f->fd, *backing, &body, &len, &rec_off);

	if (rc != SEFILE_OK || !body)
		return rc;
	if (repair) {
		rc = redo_apply(f->fd, body, len);
		free(body);
		if (rc == SEFILE_OK && ftruncate(f->fd, (off_t)rec_off) != 0)
			rc = seterr_io("ftruncate (after replaying a redo record)", rec_off);
	} else {
		f->overlay = body;
		f->overlay_len = len;
		f->overlay_backing = rec_off;
	}
	if (rc == SEFILE_OK)
		*backing = rec_off;
	return rc;
}

int file_open(struct sefile **out, struct sefile_cube *pool, int fd, int flags)
{
	uint8_t hdr[SEFILE_HEADER_LEN];
	struct sefile_conn *cn;
	struct sefile *f = NULL;
	struct stat st;
	uint64_t backing;
	size_t got;
	int rc, repair;

	*out = NULL;
	if (!pool)
		return seterr(SEFILE_EINVAL, "open: no cube pool");
	rc = file_new(&f, pool, fd);
	if (rc != SEFILE_OK)
		return rc;
	rc = access_mode(fd, &f->writable);
	if (rc == SEFILE_OK && fstat(fd, &st) != 0)
		rc = seterr_io("fstat", 0);
	if (rc != SEFILE_OK)
		goto fail;
	backing = (uint64_t)st.st_size;
	repair = (flags & OPEN_REPAIR) && f->writable;
	rc = settle_redo(f, &backing, repair);
	if (rc == SEFILE_OK)
		rc = backing_read(f, hdr, sizeof(hdr), 0, &got);
	if (rc == SEFILE_OK)
		rc = sefile_header_parse(hdr, got, &f->id);
	if (rc != SEFILE_OK)
		goto fail;
	f->size = f->id.size;
	f->id.size = 0;
	f->shift = (unsigned)shift_of(f->id.sector_size);
	cn = conn_get(pool);
	rc = header_authenticate(f, cn, hdr);
	if (rc == SEFILE_OK)
		rc = check_backing(f, cn, backing, repair);
	conn_put(pool, cn);
	if (rc != SEFILE_OK)
		goto fail;
	*out = f;
	return SEFILE_OK;
fail:
	file_free(f);
	return rc;
}

int sefile_open(struct sefile **out, struct sefile_cube *pool, int fd)
{
	return file_open(out, pool, fd, OPEN_REPAIR);
}

int sefile_close(struct sefile *f)
{
	int rc;

	if (!f)
		return SEFILE_OK;
	rc = f->deferred;
	file_free(f);
	return rc;
}

int sefile_fsync(struct sefile *f, int datasync)
{
	int rc = SEFILE_OK;

	if (!f)
		return seterr(SEFILE_EINVAL, "fsync: no file");
	pthread_rwlock_rdlock(&f->lock);
	if ((datasync ? fdatasync(f->fd) : fsync(f->fd)) != 0)
		rc = seterr_io("fsync", 0);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

int sefile_size(struct sefile *f, uint64_t *size)
{
	*size = 0;
	if (!f)
		return seterr(SEFILE_EINVAL, "size: no file");
	pthread_rwlock_rdlock(&f->lock);
	*size = f->size;
	pthread_rwlock_unlock(&f->lock);
	return SEFILE_OK;
}

int sefile_info(struct sefile *f, struct sefile_info *out)
{
	memset(out, 0, sizeof(*out));
	if (!f)
		return seterr(SEFILE_EINVAL, "info: no file");
	pthread_rwlock_rdlock(&f->lock);
	*out = f->id;
	out->size = f->size;
	pthread_rwlock_unlock(&f->lock);
	return SEFILE_OK;
}

int sefile_peek_header(int fd, struct sefile_info *out)
{
	uint8_t hdr[SEFILE_HEADER_LEN];
	size_t got;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = pread_full(fd, hdr, sizeof(hdr), 0, &got);
	if (rc != SEFILE_OK)
		return rc;
	return sefile_header_parse(hdr, got, out);
}
