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
 * Is the residue past the authenticated end what an interrupted write
 * leaves (docs/FORMAT.md, "Crash residue")?  Every write SEfile makes past
 * the end is whole sealed sectors of this file at their index (a grow's
 * data, written before its header; the sectors a shrink has not cut yet),
 * holes (ftruncate), or a redo record; a kill can tear the last pwrite at
 * a page boundary, after which only zeros follow (never-written bytes of
 * a region an earlier ftruncate extended).  So the residue must read as
 * sectors that authenticate at their index or are all zero, up to at most
 * one damaged stretch no longer than the largest single pwrite that ends
 * at a 4096-byte boundary of the backing with only zeros after it.
 * Anything else (bytes appended, a sector spliced from elsewhere or from
 * another index) is SEFILE_EINTEGRITY.
 */
#define TEAR_GRAIN 4096u
#define TORN_MAX   ((uint64_t)REDO_CAP + 2 * ((uint64_t)SECTOR_MAX + SECTOR_OVERHEAD))

/* The last non-zero byte in [from, to) of the backing (holes skipped). */
static int last_nonzero(struct sefile *f, uint8_t *buf, size_t cap, uint64_t from, uint64_t to,
			uint64_t *at, int *found)
{
	uint64_t pos = from, end, p;
	size_t got, i;
	off_t d, h;
	int rc;

	*found = 0;
	while (pos < to) {
		d = lseek(f->fd, (off_t)pos, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break;
		if (d < 0)
			return seterr_io("lseek(SEEK_DATA)", pos);
		if ((uint64_t)d >= to)
			break;
		h = lseek(f->fd, d, SEEK_HOLE);
		if (h < 0)
			return seterr_io("lseek(SEEK_HOLE)", (uint64_t)d);
		end = (uint64_t)h < to ? (uint64_t)h : to;
		for (p = (uint64_t)d; p < end; p += got) {
			rc = backing_read(f, buf, end - p < cap ? (size_t)(end - p) : cap, p, &got);
			if (rc != SEFILE_OK)
				return rc;
			if (got == 0)
				return SEFILE_OK;
			for (i = got; i > 0 && buf[i - 1] == 0; i--)
				;
			if (i > 0) {
				*at = p + i - 1;
				*found = 1;
			}
		}
		pos = end > pos ? end : pos + 1;
	}
	return SEFILE_OK;
}

/* Bytes from bad onwards fail to authenticate: a torn last write? */
static int torn_tail(struct sefile *f, struct sefile_conn *cn, uint64_t bad, uint64_t backing,
		     uint64_t expect)
{
	uint64_t last = bad, tear;
	int found, rc = last_nonzero(f, cn->sealed, CONN_SEALED_CAP, bad, backing, &last, &found);

	if (rc != SEFILE_OK)
		return rc;
	tear = (last / TEAR_GRAIN + 1) * TEAR_GRAIN;   /* the first boundary after it */
	if (!found || (tear <= backing && tear - bad <= TORN_MAX))
		return SEFILE_OK;
	return seterr(SEFILE_EINTEGRITY,
		      "backing file extended: %llu bytes past the authenticated end (%llu) that no "
		      "interrupted write leaves (appended, or sectors from elsewhere; from byte %llu); "
		      "cutting the backing to %llu bytes drops them",
		      (unsigned long long)(backing - expect), (unsigned long long)expect,
		      (unsigned long long)bad, (unsigned long long)expect);
}

/* Check the residue from sector j on. */
static int residue_explained(struct sefile *f, struct sefile_conn *cn, uint64_t j, uint64_t backing)
{
	uint64_t expect = sefile_backing_size(f->size, f->id.sector_size), unit, pos;
	uint32_t per = sectors_per_request(f), n, i, first_bad;
	size_t got, rd, wr;
	int rc = SEFILE_OK, any_bad;
	off_t d;

	unit = (uint64_t)f->id.sector_size + SECTOR_OVERHEAD;
	while ((pos = sector_off(f->shift, j)) < backing) {
		/* holes (never written, ftruncate) are zero sectors: skip them */
		d = lseek(f->fd, (off_t)pos, SEEK_DATA);
		if ((d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= backing))
			break;
		if (d < 0)
			return seterr_io("lseek(SEEK_DATA)", pos);
		if ((uint64_t)d >= pos + unit) {
			j = ((uint64_t)d - SEFILE_HEADER_LEN) / unit;
			continue;
		}
		rc = backing_read(f, cn->sealed, (size_t)((uint64_t)per * unit), pos, &got);
		if (rc != SEFILE_OK)
			return rc;
		if (got == 0)
			break;
		/* pull the non-hole pieces together as one request */
		first_bad = UINT32_MAX;
		for (i = 0, n = 0, rd = 0, wr = 0; rd < got; i++, rd += unit) {
			size_t st = got - rd < unit ? got - rd : (size_t)unit;

			if (sefile_sector_is_hole(cn->sealed + rd, st))
				continue;
			if (st <= SECTOR_OVERHEAD) {
				first_bad = i;
				break;
			}
			if (wr != rd)
				memmove(cn->sealed + wr, cn->sealed + rd, st);
			cn->secs[n].index = j + i;
			cn->secs[n].len = (uint32_t)(st - SECTOR_OVERHEAD);
			cn->where[n++] = i;
			wr += st;
		}
		if (n > 0) {
			rc = conn_open(f->pool, cn, &f->id, n, cn->sealed, cn->plain, &any_bad);
			OPENSSL_cleanse(cn->plain, CONN_PLAIN_CAP);
			if (rc != SEFILE_OK)
				return rc;
			for (i = 0; any_bad && i < n; i++)
				if (cn->bad[i] && cn->where[i] < first_bad)
					first_bad = cn->where[i];
		}
		if (first_bad != UINT32_MAX)
			return torn_tail(f, cn, pos + (uint64_t)first_bad * unit, backing, expect);
		j += (got + unit - 1) / unit;
	}
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
	/* What lies past sector k must be what a crash leaves.  Between a
	 * short sector k and sector k + 1 there may be the tail of an older,
	 * longer k (a shrink re-seals k before its cut): it can no longer be
	 * authenticated, so those bytes are not judged. */
	rc = residue_explained(f, cn, (f->size & (f->id.sector_size - 1)) == 0 ? k : k + 1, backing);
	if (rc != SEFILE_OK) {
		OPENSSL_cleanse(plain, f->id.sector_size);
		return rc;
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
