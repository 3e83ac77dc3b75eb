/*
 * io.c - reading and writing a SEfile file: the hot path.  A run of
 * sectors is read with one pread into the connection's buffer and opened
 * with one cube request, plaintext straight into the caller's buffer when
 * the read is sector-aligned; a write seals a run of up to WIRE_MAX_BULK
 * bytes in one request and writes it with one pwrite.  Partial sectors
 * are read-modify-write.  Size changes rewrite the header, in the same
 * request as the data when it fits, ordered so a crash leaves only
 * residue that docs/FORMAT.md says how to read (grow: data then header;
 * shrink: header then ftruncate).  A kill can tear a pwrite at a page
 * boundary, so bytes overwritten in place go through a redo record
 * appended first and cut off after (write_protected; file.c replays it).
 *
 * Sections: backing I/O helpers, redo records, reading runs, sealing
 * helpers, pread, pwrite, truncate.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "sefile_impl.h"
#include "wire/buf.h"

/* ---- backing I/O helpers ---- */

int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return seterr_io("write", off);
		}
		if (n == 0) {
			errno = EIO;
			return seterr_io("write made no progress", off);
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return SEFILE_OK;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	uint8_t *p = buf;

	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, p + *got, len - *got, (off_t)(off + *got));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return seterr_io("read", off + *got);
		}
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return SEFILE_OK;
}

/* Lay the extents of a redo body over bytes [off, off + len) read from the backing. */
static void overlay_apply(const uint8_t *body, size_t body_len, uint8_t *buf, size_t len,
			  uint64_t off)
{
	/* the count is in the first entry's spare word (redo_find checked it) */
	uint32_t n = body_len ? wire_rd32(body + 12) : 0, i;
	const uint8_t *bytes = body + (size_t)n * REDO_EXT;

	for (i = 0; i < n; i++) {
		uint64_t eo = wire_rd64(body + (size_t)i * REDO_EXT);
		uint32_t el = wire_rd32(body + (size_t)i * REDO_EXT + 8);
		uint64_t a = eo > off ? eo : off, b = eo + el < off + len ? eo + el : off + len;

		if (a < b)
			memcpy(buf + (a - off), bytes + (a - eo), b - a);
		bytes += el;
	}
}

int backing_read(struct sefile *f, void *buf, size_t len, uint64_t off, size_t *got)
{
	int rc;

	if (!f->overlay)
		return pread_full(f->fd, buf, len, off, got);
	*got = 0;
	if (off >= f->overlay_backing)
		return SEFILE_OK;
	if (len > f->overlay_backing - off)
		len = (size_t)(f->overlay_backing - off);
	rc = pread_full(f->fd, buf, len, off, got);
	if (rc == SEFILE_OK)
		overlay_apply(f->overlay, f->overlay_len, buf, *got, off);
	return rc;
}

/* ---- redo records ----
 *
 * kill -9 does not make a pwrite atomic: Linux checks for a fatal signal
 * between the pages of a buffered write, so a killed process's last
 * pwrite may have reached the file only up to a page boundary inside it.
 * A stored sector is S + 28 bytes and always spans a page boundary, so
 * such a torn write leaves a sector that is neither the old nor the new
 * one and fails authentication: old bytes the write did not even cover
 * (the rest of a partial sector) are lost with it.  Appending is safe
 * (bytes past the authenticated length are never read), overwriting is
 * not: so every write over stored bytes goes through a redo record.
 */

static void put_trailer(uint8_t t[REDO_TRAILER_LEN], uint64_t rec_off, size_t body_len,
			uint32_t n, uint64_t body_hash)
{
	memset(t, 0, REDO_TRAILER_LEN);
	memcpy(t, REDO_MAGIC, REDO_MAGIC_LEN);
	wire_le64(t + 8, rec_off);
	wire_le64(t + 16, body_len);
	wire_le32(t + 24, n);
	wire_le64(t + 32, body_hash);
	wire_le64(t + 56, XXH64(t, 56, 0));
}

int write_protected(struct sefile *f, struct sefile_conn *cn, const struct extent *ex,
		    unsigned n, uint64_t rec_off, uint64_t cut_to)
{
	size_t body = (size_t)n * REDO_EXT, pos;
	unsigned i;
	int rc;

	if (n == 0 || n > REDO_MAX_EXT)
		return seterr(SEFILE_EINVAL, "redo record of %u extents", n);
	for (i = 0; i < n; i++)
		body += ex[i].len;
	if (body > REDO_BODY_CAP)
		return seterr(SEFILE_EINVAL, "redo record of %zu bytes", body);
	memset(cn->redo, 0, (size_t)n * REDO_EXT);
	pos = (size_t)n * REDO_EXT;
	for (i = 0; i < n; i++) {
		wire_le64(cn->redo + (size_t)i * REDO_EXT, ex[i].off);
		wire_le32(cn->redo + (size_t)i * REDO_EXT + 8, (uint32_t)ex[i].len);
		memcpy(cn->redo + pos, ex[i].buf, ex[i].len);
		pos += ex[i].len;
	}
	wire_le32(cn->redo + 12, n); /* the count, in the first entry's spare word */
	put_trailer(cn->redo + body, rec_off, body, n, XXH64(cn->redo, body, 0));
	rc = pwrite_all(f->fd, cn->redo, body + REDO_TRAILER_LEN, rec_off);
	for (i = 0; rc == SEFILE_OK && i < n; i++)
		rc = pwrite_all(f->fd, ex[i].buf, ex[i].len, ex[i].off);
	if (rc == SEFILE_OK && ftruncate(f->fd, (off_t)cut_to) != 0)
		rc = seterr_io("ftruncate (end of a write in place)", cut_to);
	return rc;
}

/* Is the trailer t (at the end of a backing of `backing` bytes) sound? */
static int trailer_ok(const uint8_t t[REDO_TRAILER_LEN], uint64_t backing, uint64_t *rec_off,
		      size_t *body_len, uint32_t *n)
{
	uint64_t len;

	if (memcmp(t, REDO_MAGIC, REDO_MAGIC_LEN) != 0 || wire_rd64(t + 56) != XXH64(t, 56, 0))
		return 0;
	*rec_off = wire_rd64(t + 8);
	len = wire_rd64(t + 16);
	*n = wire_rd32(t + 24);
	if (*n == 0 || *n > REDO_MAX_EXT || len > REDO_BODY_CAP || len < (uint64_t)*n * REDO_EXT ||
	    *rec_off < SEFILE_HEADER_LEN || backing < REDO_TRAILER_LEN + len ||
	    *rec_off != backing - REDO_TRAILER_LEN - len)
		return 0;
	*body_len = (size_t)len;
	return 1;
}

/* Does the body's extent table fit the body and stay below the record? */
static int table_ok(const uint8_t *body, size_t body_len, uint32_t n, uint64_t rec_off)
{
	size_t sum = (size_t)n * REDO_EXT;
	uint32_t i;

	if (wire_rd32(body + 12) != n)
		return 0;
	for (i = 0; i < n; i++) {
		uint64_t off = wire_rd64(body + (size_t)i * REDO_EXT);
		uint32_t len = wire_rd32(body + (size_t)i * REDO_EXT + 8);

		if (len == 0 || len > body_len || off > rec_off || len > rec_off - off)
			return 0;
		if (i > 0 && wire_rd32(body + (size_t)i * REDO_EXT + 12) != 0)
			return 0;
		sum += len;
	}
	return sum == body_len;
}

int redo_find(int fd, uint64_t backing, uint8_t **body, size_t *body_len, uint64_t *rec_off)
{
	uint8_t t[REDO_TRAILER_LEN], *b;
	uint32_t n;
	size_t got;
	int rc;

	*body = NULL;
	*body_len = 0;
	*rec_off = 0;
	if (backing < SEFILE_HEADER_LEN + REDO_TRAILER_LEN)
		return SEFILE_OK;
	rc = pread_full(fd, t, sizeof(t), backing - REDO_TRAILER_LEN, &got);
	if (rc != SEFILE_OK || got != sizeof(t) || !trailer_ok(t, backing, rec_off, body_len, &n))
		return rc;
	b = malloc(*body_len);
	if (!b)
		return seterr(SEFILE_ENOMEM, "out of memory for a redo record");
	rc = pread_full(fd, b, *body_len, *rec_off, &got);
	if (rc == SEFILE_OK && got == *body_len && XXH64(b, *body_len, 0) == wire_rd64(t + 32) &&
	    table_ok(b, *body_len, n, *rec_off)) {
		*body = b;
		return SEFILE_OK;
	}
	/* torn or foreign: not a record; what it would have changed is untouched */
	free(b);
	*body_len = 0;
	*rec_off = 0;
	return rc;
}

int redo_apply(int fd, const uint8_t *body, size_t body_len)
{
	uint32_t n = wire_rd32(body + 12), i;
	const uint8_t *bytes = body + (size_t)n * REDO_EXT;
	int rc = SEFILE_OK;

	(void)body_len;
	for (i = 0; rc == SEFILE_OK && i < n; i++) {
		uint64_t off = wire_rd64(body + (size_t)i * REDO_EXT);
		uint32_t len = wire_rd32(body + (size_t)i * REDO_EXT + 8);

		rc = pwrite_all(fd, bytes, len, off);
		bytes += len;
	}
	return rc;
}

/* ---- reading runs ---- */

enum kind { K_SEALED, K_HOLE, K_MISSING, K_CACHED };

/* Pull the sealed sectors of the run together (holes dropped) and list
 * them as the request; returns how many stored bytes were found. */
static uint32_t classify_run(struct sefile *f, struct sefile_conn *cn, uint64_t first,
			     uint32_t count, size_t got, uint8_t *kinds)
{
	size_t rd = 0, wr = 0;
	uint32_t i, n = 0;

	for (i = 0; i < count; i++) {
		uint64_t idx = first + i;
		uint32_t len = sector_len(f->size, f->shift, idx);
		size_t st = (size_t)len + SECTOR_OVERHEAD;

		if (f->last_cache && idx == f->last_cache_idx)
			kinds[i] = K_CACHED;
		else if (rd + st > got)
			kinds[i] = K_MISSING;
		else if (sefile_sector_is_hole(cn->sealed + rd, st))
			kinds[i] = K_HOLE;
		else {
			kinds[i] = K_SEALED;
			if (wr != rd)
				memmove(cn->sealed + wr, cn->sealed + rd, st);
			cn->secs[n].index = idx;
			cn->secs[n].len = len;
			cn->where[n] = i;
			wr += st;
			n++;
		}
		rd += st;
	}
	return n;
}

/* The cube wrote the plaintexts back to back at out; move each to its
 * place (i * S), zero holes, copy the cached tail.  Walking backwards
 * never overwrites a plaintext not yet moved. */
static void scatter_run(struct sefile *f, struct sefile_conn *cn, uint64_t first, uint32_t count,
			uint32_t n, const uint8_t *kinds, uint8_t *out)
{
	size_t cp = 0, S = f->id.sector_size;
	uint32_t i, j;

	for (j = 0; j < n; j++)
		cp += cn->secs[j].len;
	j = n;
	for (i = count; i-- > 0;) {
		uint32_t len = sector_len(f->size, f->shift, first + i);
		uint8_t *dst = out + (size_t)i * S;

		if (kinds[i] == K_SEALED) {
			j--;
			cp -= len;
			if (out + cp != dst)
				memmove(dst, out + cp, len);
		} else if (kinds[i] == K_CACHED) {
			memcpy(dst, f->last_cache, len);
		} else {
			memset(dst, 0, len);
		}
	}
}

int read_run(struct sefile *f, struct sefile_conn *cn, uint64_t first, uint32_t count,
	     uint8_t *out, uint8_t *bad)
{
	uint8_t kinds[CONN_SECS_CAP];
	uint64_t worst = UINT64_MAX;
	const char *why = NULL;
	size_t total = 0, got;
	uint32_t i, n;
	int rc, any_bad = 0;

	if (count == 0 || count > WIRE_MAX_SECTORS)
		return seterr(SEFILE_EINVAL, "read of %u sectors", count);
	for (i = 0; i < count; i++)
		total += (size_t)sector_len(f->size, f->shift, first + i) + SECTOR_OVERHEAD;
	rc = backing_read(f, cn->sealed, total, sector_off(f->shift, first), &got);
	if (rc != SEFILE_OK)
		return rc;
	n = classify_run(f, cn, first, count, got, kinds);
	if (n > 0) {
		rc = conn_open(f->pool, cn, &f->id, n, cn->sealed, out, &any_bad);
		if (rc != SEFILE_OK)
			return rc;
	}
	if (bad)
		memset(bad, 0, count);
	for (i = 0; i < count; i++) {
		if (kinds[i] == K_MISSING) {
			if (bad)
				bad[i] = SECTOR_MISSING;
			if (worst == UINT64_MAX || first + i < worst) {
				worst = first + i;
				why = "backing file ends early (truncated)";
			}
		}
	}
	for (i = 0; any_bad && i < n; i++) {
		if (!cn->bad[i])
			continue;
		if (bad)
			bad[cn->where[i]] = SECTOR_FORGED;
		if (worst == UINT64_MAX || cn->secs[i].index < worst) {
			worst = cn->secs[i].index;
			why = "authentication failed (bit flip, or a sector swapped or spliced from elsewhere)";
		}
	}
	scatter_run(f, cn, first, count, n, kinds, out);
	if (why)
		return seterr(SEFILE_EINTEGRITY, "sector %llu: %s", (unsigned long long)worst, why);
	return SEFILE_OK;
}

/* ---- sealing helpers ---- */

/* One extra sector sealed beside the header: a re-sealed partial sector. */
struct extra_sector {
	uint64_t idx;
	uint32_t len;
	const uint8_t *plain;
};

/*
 * Seal, in one request, an optional extra sector and the header for
 * `length`.  On return hdr holds the complete header to write and
 * *ex_sealed (if ex) points at the extra sector's sealed bytes in cn.
 */
static int seal_small(struct sefile *f, struct sefile_conn *cn, const struct extra_sector *ex,
		      uint64_t length, uint8_t hdr[SEFILE_HEADER_LEN], const uint8_t **ex_sealed)
{
	uint32_t n = 0;
	size_t pos = 0;
	int rc;

	if (ex) {
		memcpy(cn->plain, ex->plain, ex->len);
		cn->secs[n].index = ex->idx;
		cn->secs[n].len = ex->len;
		n++;
		pos = ex->len;
	}
	header_encode(&f->id, length, cn->plain + pos);
	cn->secs[n].index = HDR_INDEX;
	cn->secs[n].len = HDR_CLEAR_LEN;
	n++;
	rc = conn_seal(f->pool, cn, &f->id, n, cn->plain, cn->sealed);
	if (rc != SEFILE_OK)
		return rc;
	pos = ex ? (size_t)ex->len + SECTOR_OVERHEAD : 0;
	memcpy(hdr, cn->plain + (ex ? ex->len : 0), HDR_CLEAR_LEN);
	memcpy(hdr + HOFF_SEALED, cn->sealed + pos, HDR_SEALED_LEN);
	if (ex_sealed)
		*ex_sealed = ex ? cn->sealed : NULL;
	return SEFILE_OK;
}

int write_header(struct sefile *f, struct sefile_conn *cn, uint64_t length)
{
	uint8_t hdr[SEFILE_HEADER_LEN];
	int rc = seal_small(f, cn, NULL, length, hdr, NULL);

	if (rc != SEFILE_OK)
		return rc;
	return pwrite_all(f->fd, hdr, sizeof(hdr), 0);
}

/* Is sector idx, of plaintext length len, stored as a hole? */
static int stored_is_hole(struct sefile *f, struct sefile_conn *cn, uint64_t idx, uint32_t len,
			  int *hole)
{
	size_t st = (size_t)len + SECTOR_OVERHEAD, got;
	int rc = backing_read(f, cn->sealed, st, sector_off(f->shift, idx), &got);

	*hole = rc == SEFILE_OK && got == st && sefile_sector_is_hole(cn->sealed, st);
	if (rc == SEFILE_OK && got != st)
		return seterr(SEFILE_EINTEGRITY, "sector %llu: backing file ends early (truncated)",
			      (unsigned long long)idx);
	return rc;
}

/* Sector idx's current plaintext (zeros past the end) into dst[S]. */
static int read_one(struct sefile *f, struct sefile_conn *cn, uint64_t idx, uint8_t *dst)
{
	memset(dst, 0, f->id.sector_size);
	if (sector_len(f->size, f->shift, idx) == 0)
		return SEFILE_OK;
	return read_run(f, cn, idx, 1, dst, NULL);
}

/* ---- pread ---- */

uint32_t sectors_per_request(const struct sefile *f)
{
	uint32_t by_bytes = WIRE_MAX_BULK >> f->shift;

	return by_bytes < WIRE_MAX_SECTORS ? by_bytes : WIRE_MAX_SECTORS;
}

static int pread_locked(struct sefile *f, struct sefile_conn *cn, uint8_t *buf, size_t len,
			uint64_t off)
{
	uint64_t end = off + len, last = (end - 1) >> f->shift;
	size_t done = 0;

	while (done < len) {
		uint64_t pos = off + done, first = pos >> f->shift;
		uint64_t count = last - first + 1, run_start, run_end, want_end;
		uint8_t *out;
		int rc;

		if (count > sectors_per_request(f))
			count = sectors_per_request(f);
		run_start = first << f->shift;
		run_end = (first + count) << f->shift;
		if (run_end > f->size)
			run_end = f->size;
		want_end = end < run_end ? end : run_end;
		out = (run_start == pos && run_end <= end) ? buf + done : cn->plain;
		rc = read_run(f, cn, first, (uint32_t)count, out, NULL);
		if (rc != SEFILE_OK)
			return rc;
		if (out == cn->plain)
			memcpy(buf + done, cn->plain + (pos - run_start), want_end - pos);
		done += want_end - pos;
	}
	return SEFILE_OK;
}

ssize_t sefile_pread(struct sefile *f, void *buf, size_t len, uint64_t off)
{
	struct sefile_conn *cn;
	int rc;

	if (!f || (!buf && len))
		return seterr(SEFILE_EINVAL, "pread: bad arguments");
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	pthread_rwlock_rdlock(&f->lock);
	if (f->deferred) {
		rc = f->deferred;
		pthread_rwlock_unlock(&f->lock);
		return seterr(rc, "file is unusable after an earlier error; reopen it");
	}
	if (off >= f->size || len == 0) {
		pthread_rwlock_unlock(&f->lock);
		return 0;
	}
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	cn = conn_get(f->pool);
	rc = pread_locked(f, cn, buf, len, off);
	conn_put(f->pool, cn);
	pthread_rwlock_unlock(&f->lock);
	if (rc != SEFILE_OK) {
		memset(buf, 0, len); /* never hand out part of a failed read */
		return rc;
	}
	return (ssize_t)len;
}

/* ---- pwrite ---- */

/* What a write needs beyond its own sectors. */
struct write_plan {
	uint64_t off, end, old_size, new_size, first, last;
	uint8_t *head;     /* old plaintext of the first sector, or NULL */
	uint8_t *tail;     /* old plaintext of the last sector, or NULL */
	int pad;           /* re-seal the old partial last sector at its new length */
	uint64_t pad_idx;
	uint8_t *pad_plain;
};

/* Does sector idx, partly covered by the write, keep old bytes outside it? */
static int keeps_old_bytes(const struct sefile *f, const struct write_plan *w, uint64_t idx)
{
	uint64_t start = idx << f->shift;
	uint32_t old = sector_len(w->old_size, f->shift, idx);

	return old > 0 && (w->off > start || w->end < start + old);
}

static int plan_write(struct sefile *f, struct sefile_conn *cn, struct write_plan *w)
{
	uint32_t S = f->id.sector_size;
	int rc;

	if (keeps_old_bytes(f, w, w->first)) {
		w->head = cn->rmw;
		rc = read_one(f, cn, w->first, w->head);
		if (rc != SEFILE_OK)
			return rc;
	}
	if (w->last != w->first && keeps_old_bytes(f, w, w->last)) {
		w->tail = cn->rmw + S;
		rc = read_one(f, cn, w->last, w->tail);
		if (rc != SEFILE_OK)
			return rc;
	}
	if (w->end > w->old_size && (w->old_size & (S - 1)) != 0 &&
	    (w->old_size >> f->shift) < w->first) {
		int hole;

		w->pad_idx = w->old_size >> f->shift;
		rc = stored_is_hole(f, cn, w->pad_idx, sector_len(w->old_size, f->shift, w->pad_idx), &hole);
		if (rc != SEFILE_OK)
			return rc;
		if (!hole) {
			w->pad = 1;
			w->pad_plain = cn->rmw + 2 * (size_t)S;
			rc = read_one(f, cn, w->pad_idx, w->pad_plain);
			if (rc != SEFILE_OK)
				return rc;
		}
	}
	return SEFILE_OK;
}

/* Plaintext of data sector idx under the write into dst. */
static void build_sector(const struct sefile *f, const struct write_plan *w, const uint8_t *buf,
			 uint64_t idx, uint8_t *dst)
{
	uint64_t start = idx << f->shift;
	uint32_t len = sector_len(w->new_size, f->shift, idx);
	uint64_t a = w->off > start ? w->off : start;
	uint64_t b = w->end < start + len ? w->end : start + len;

	if (a > start || b < start + len) {
		const uint8_t *old = idx == w->first ? w->head : idx == w->last ? w->tail : NULL;

		if (old)
			memcpy(dst, old, len);
		else
			memset(dst, 0, len);
	}
	memcpy(dst + (a - start), buf + (a - w->off), b - a);
}

static int chunk_is_covered(const struct sefile *f, const struct write_plan *w, uint64_t cs,
			    uint64_t count)
{
	uint64_t start = cs << f->shift, stop = (cs + count) << f->shift;

	if (stop > w->new_size)
		stop = w->new_size;
	return start >= w->off && stop <= w->end;
}

/*
 * Write a chunk's extents (pad sector, data run, header, in that order).
 * A chunk that overwrites stored sectors (the pad, or any sector below the
 * old sector count, holes included) goes through a redo record past the
 * end of the new size; one that only appends is written directly, data
 * before header, since a torn append is only crash residue.
 */
static int write_extents(struct sefile *f, struct sefile_conn *cn, const struct write_plan *w,
			 int in_place, const struct extent *ex, unsigned n)
{
	uint64_t big = w->new_size > w->old_size ? w->new_size : w->old_size;
	uint64_t rec_off = sefile_backing_size(big, f->id.sector_size);
	unsigned i;
	int rc = SEFILE_OK;

	if (in_place)
		return write_protected(f, cn, ex, n, rec_off, rec_off);
	for (i = 0; rc == SEFILE_OK && i < n; i++)
		rc = pwrite_all(f->fd, ex[i].buf, ex[i].len, ex[i].off);
	return rc;
}

/* Seal and write sectors [cs, cs+count); with_extras adds the pad sector
 * and the header to the same request (written pad, data, header). */
static int write_chunk(struct sefile *f, struct sefile_conn *cn, const struct write_plan *w,
		       const uint8_t *buf, uint64_t cs, uint32_t count, int with_extras)
{
	uint32_t n = 0, i;
	size_t pos = 0, data_stored = 0, pad_stored = 0;
	const uint8_t *in;
	int rc;

	if (with_extras && w->pad) {
		uint32_t plen = sector_len(w->new_size, f->shift, w->pad_idx);

		memcpy(cn->plain, w->pad_plain, plen); /* rest of pad_plain is zeros */
		cn->secs[n].index = w->pad_idx;
		cn->secs[n++].len = plen;
		pos += plen;
		pad_stored = (size_t)plen + SECTOR_OVERHEAD;
	}
	for (i = 0; i < count; i++) {
		uint32_t len = sector_len(w->new_size, f->shift, cs + i);

		cn->secs[n].index = cs + i;
		cn->secs[n++].len = len;
		data_stored += (size_t)len + SECTOR_OVERHEAD;
	}
	if (!with_extras && chunk_is_covered(f, w, cs, count)) {
		in = buf + ((cs << f->shift) - w->off);
	} else {
		for (i = 0; i < count; i++) {
			build_sector(f, w, buf, cs + i, cn->plain + pos);
			pos += sector_len(w->new_size, f->shift, cs + i);
		}
		in = cn->plain;
	}
	if (with_extras) {
		header_encode(&f->id, w->new_size, cn->plain + pos);
		cn->secs[n].index = HDR_INDEX;
		cn->secs[n++].len = HDR_CLEAR_LEN;
	}
	rc = conn_seal(f->pool, cn, &f->id, n, in, cn->sealed);
	if (rc != SEFILE_OK)
		return rc;
	{
		uint8_t hdr[SEFILE_HEADER_LEN];
		struct extent ex[3];
		unsigned ne = 0;

		if (pad_stored)
			ex[ne++] = (struct extent){ sector_off(f->shift, w->pad_idx), cn->sealed, pad_stored };
		ex[ne++] = (struct extent){ sector_off(f->shift, cs), cn->sealed + pad_stored, data_stored };
		if (with_extras) {
			memcpy(hdr, cn->plain + pos, HDR_CLEAR_LEN);
			memcpy(hdr + HOFF_SEALED, cn->sealed + pad_stored + data_stored, HDR_SEALED_LEN);
			ex[ne++] = (struct extent){ 0, hdr, sizeof(hdr) };
		}
		return write_extents(f, cn, w, pad_stored || cs < sector_count(w->old_size, f->shift),
				     ex, ne);
	}
}

/* The pad sector and the header when they did not fit the last chunk. */
static int write_extras_alone(struct sefile *f, struct sefile_conn *cn, const struct write_plan *w)
{
	uint8_t hdr[SEFILE_HEADER_LEN];
	struct extra_sector ex;
	const uint8_t *sealed = NULL;
	int rc;

	memset(&ex, 0, sizeof(ex));
	if (w->pad) {
		ex.idx = w->pad_idx;
		ex.len = sector_len(w->new_size, f->shift, w->pad_idx);
		ex.plain = w->pad_plain;
	}
	rc = seal_small(f, cn, w->pad ? &ex : NULL, w->new_size, hdr, &sealed);
	if (rc != SEFILE_OK)
		return rc;
	if (w->pad) {
		struct extent e[2] = {
			{ sector_off(f->shift, w->pad_idx), sealed, (size_t)ex.len + SECTOR_OVERHEAD },
			{ 0, hdr, sizeof(hdr) },
		};
		uint64_t rec_off = sefile_backing_size(w->new_size, f->id.sector_size);

		return write_protected(f, cn, e, 2, rec_off, rec_off);
	}
	return pwrite_all(f->fd, hdr, sizeof(hdr), 0);
}

static int pwrite_locked(struct sefile *f, struct sefile_conn *cn, const uint8_t *buf, size_t len,
			 uint64_t off)
{
	struct write_plan w;
	uint64_t cs, per = sectors_per_request(f);
	int rc, grows, extras_done = 0;

	memset(&w, 0, sizeof(w));
	w.off = off;
	w.end = off + len;
	w.old_size = f->size;
	w.new_size = w.end > f->size ? w.end : f->size;
	w.first = off >> f->shift;
	w.last = (w.end - 1) >> f->shift;
	grows = w.new_size != w.old_size;
	rc = plan_write(f, cn, &w);
	if (rc != SEFILE_OK)
		return rc;
	for (cs = w.first; cs <= w.last; cs += per) {
		uint64_t count = w.last - cs + 1;
		int with_extras = 0;

		if (count > per)
			count = per;
		if (grows && cs + count > w.last) {
			uint64_t bytes = 0, i, nsec = count + 1 + (w.pad ? 1 : 0);

			for (i = 0; i < count; i++)
				bytes += sector_len(w.new_size, f->shift, cs + i);
			bytes += HDR_CLEAR_LEN + (w.pad ? sector_len(w.new_size, f->shift, w.pad_idx) : 0);
			with_extras = nsec <= WIRE_MAX_SECTORS && bytes <= WIRE_MAX_BULK_REQ;
		}
		rc = write_chunk(f, cn, &w, buf, cs, (uint32_t)count, with_extras);
		if (rc != SEFILE_OK)
			return rc;
		extras_done |= with_extras;
	}
	if (grows && !extras_done) {
		rc = write_extras_alone(f, cn, &w);
		if (rc != SEFILE_OK)
			return rc;
	}
	f->size = w.new_size;
	return SEFILE_OK;
}

/* A failure after some bytes reached the backing may leave crash residue
 * the open file does not track: only a reopen (which repairs) is safe. */
static int poison(struct sefile *f, int rc)
{
	if (rc != SEFILE_OK && rc != SEFILE_EINVAL && !f->deferred)
		f->deferred = rc;
	return rc;
}

static int check_writable(struct sefile *f)
{
	if (f->deferred)
		return seterr(f->deferred, "file is unusable after an earlier error; reopen it");
	if (!f->writable)
		return seterr(SEFILE_EINVAL, "file is open read-only");
	return SEFILE_OK;
}

ssize_t sefile_pwrite(struct sefile *f, const void *buf, size_t len, uint64_t off)
{
	struct sefile_conn *cn;
	int rc;

	if (!f || (!buf && len))
		return seterr(SEFILE_EINVAL, "pwrite: bad arguments");
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (off > SEFILE_MAX_SIZE || len > SEFILE_MAX_SIZE - off)
		return seterr(SEFILE_EINVAL, "write past the largest SEfile size (2^60 bytes)");
	if (len == 0)
		return 0;
	pthread_rwlock_wrlock(&f->lock);
	rc = check_writable(f);
	if (rc == SEFILE_OK) {
		cn = conn_get(f->pool);
		rc = poison(f, pwrite_locked(f, cn, buf, len, off));
		conn_put(f->pool, cn);
	}
	pthread_rwlock_unlock(&f->lock);
	return rc == SEFILE_OK ? (ssize_t)len : rc;
}

/* ---- truncate ---- */

/* Grow: re-seal the old partial last sector at its new length (unless it
 * is a hole), extend the backing with ftruncate (holes, no writes), then
 * the header. */
static int grow_locked(struct sefile *f, struct sefile_conn *cn, uint64_t size)
{
	uint8_t hdr[SEFILE_HEADER_LEN];
	struct extra_sector ex;
	const uint8_t *sealed = NULL;
	uint64_t k0 = f->size >> f->shift;
	int rc, hole = 1;

	memset(&ex, 0, sizeof(ex));
	if ((f->size & (f->id.sector_size - 1)) != 0) {
		rc = stored_is_hole(f, cn, k0, sector_len(f->size, f->shift, k0), &hole);
		if (rc != SEFILE_OK)
			return rc;
	}
	if (!hole) {
		rc = read_one(f, cn, k0, cn->rmw);
		if (rc != SEFILE_OK)
			return rc;
		ex.idx = k0;
		ex.len = sector_len(size, f->shift, k0);
		ex.plain = cn->rmw;
	}
	rc = seal_small(f, cn, hole ? NULL : &ex, size, hdr, &sealed);
	OPENSSL_cleanse(cn->rmw, f->id.sector_size);
	if (rc != SEFILE_OK)
		return rc;
	if (!hole) {
		/* the old last sector is rewritten in place: redo record, the
		 * sector, the header; the cut drops the record and leaves the
		 * backing at its new size */
		uint64_t to = sefile_backing_size(size, f->id.sector_size);
		struct extent e[2] = {
			{ sector_off(f->shift, k0), sealed, (size_t)ex.len + SECTOR_OVERHEAD },
			{ 0, hdr, sizeof(hdr) },
		};

		return write_protected(f, cn, e, 2, to, to);
	}
	if (ftruncate(f->fd, (off_t)sefile_backing_size(size, f->id.sector_size)) != 0)
		return seterr_io("ftruncate (grow)", sefile_backing_size(size, f->id.sector_size));
	return pwrite_all(f->fd, hdr, sizeof(hdr), 0);
}

/* Shrink: header first (with the new partial last sector re-sealed in the
 * same request), that sector, then ftruncate. */
static int shrink_locked(struct sefile *f, struct sefile_conn *cn, uint64_t size)
{
	uint8_t hdr[SEFILE_HEADER_LEN];
	struct extra_sector ex;
	const uint8_t *sealed = NULL;
	uint64_t k = size >> f->shift;
	int rc, hole = 1;

	memset(&ex, 0, sizeof(ex));
	if ((size & (f->id.sector_size - 1)) != 0) {
		rc = stored_is_hole(f, cn, k, sector_len(f->size, f->shift, k), &hole);
		if (rc != SEFILE_OK)
			return rc;
	}
	if (!hole) {
		rc = read_one(f, cn, k, cn->rmw);
		if (rc != SEFILE_OK)
			return rc;
		ex.idx = k;
		ex.len = sector_len(size, f->shift, k);
		ex.plain = cn->rmw;
	}
	rc = seal_small(f, cn, hole ? NULL : &ex, size, hdr, &sealed);
	OPENSSL_cleanse(cn->rmw, f->id.sector_size);
	if (rc != SEFILE_OK)
		return rc;
	if (!hole) {
		/* the new last sector is rewritten in place: redo record past
		 * the old end, header, sector; the cut drops both the record and
		 * the sectors past the new end */
		struct extent e[2] = {
			{ 0, hdr, sizeof(hdr) },
			{ sector_off(f->shift, k), sealed, (size_t)ex.len + SECTOR_OVERHEAD },
		};

		return write_protected(f, cn, e, 2, sefile_backing_size(f->size, f->id.sector_size),
				       sefile_backing_size(size, f->id.sector_size));
	}
	rc = pwrite_all(f->fd, hdr, sizeof(hdr), 0);
	if (rc == SEFILE_OK && ftruncate(f->fd, (off_t)sefile_backing_size(size, f->id.sector_size)) != 0)
		rc = seterr_io("ftruncate (shrink)", sefile_backing_size(size, f->id.sector_size));
	return rc;
}

int sefile_truncate(struct sefile *f, uint64_t size)
{
	struct sefile_conn *cn;
	int rc;

	if (!f)
		return seterr(SEFILE_EINVAL, "truncate: no file");
	if (size > SEFILE_MAX_SIZE)
		return seterr(SEFILE_EINVAL, "truncate past the largest SEfile size (2^60 bytes)");
	pthread_rwlock_wrlock(&f->lock);
	rc = check_writable(f);
	if (rc == SEFILE_OK && size != f->size) {
		cn = conn_get(f->pool);
		rc = size > f->size ? grow_locked(f, cn, size) : shrink_locked(f, cn, size);
		conn_put(f->pool, cn);
		if (rc == SEFILE_OK)
			f->size = size;
		poison(f, rc);
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

/* Re-seal sector idx (plaintext plain, new length len) and write it in
 * place under a redo record: the open-time repair of crash residue. */
int reseal_sector(struct sefile *f, struct sefile_conn *cn, uint64_t idx, const uint8_t *plain,
		  uint32_t len, uint64_t rec_off, uint64_t cut_to)
{
	struct extent e;
	int rc;

	memcpy(cn->plain, plain, len);
	cn->secs[0].index = idx;
	cn->secs[0].len = len;
	rc = conn_seal(f->pool, cn, &f->id, 1, cn->plain, cn->sealed);
	OPENSSL_cleanse(cn->plain, len);
	if (rc != SEFILE_OK)
		return rc;
	e = (struct extent){ sector_off(f->shift, idx), cn->sealed, (size_t)len + SECTOR_OVERHEAD };
	return write_protected(f, cn, &e, 1, rec_off, cut_to);
}
