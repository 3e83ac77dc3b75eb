/*
 * sefile_impl.h - what the files of sefile/ share and nobody else sees:
 * the open-file and pool structures, the on-disk constants of
 * docs/FORMAT.md, and the helpers each file lends the others.
 *
 * Lock order: a file's rwlock, then the pool's mutex (taken only inside
 * conn_get/conn_put, never held across a cube call or I/O).
 */
#ifndef SEKEYFS_SEFILE_IMPL_H
#define SEKEYFS_SEFILE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sefile.h"

/* ---- on-disk layout (docs/FORMAT.md) ---- */
#define HDR_MAGIC        "SEfile\n\032"
#define HDR_MAGIC_LEN    8
#define HDR_VERSION      1
#define HDR_CLEAR_LEN    48                 /* fields, in clear */
#define HDR_SEALED_LEN   (WIRE_NONCE_LEN + HDR_CLEAR_LEN + WIRE_SECTOR_TAG)
#define HDR_INDEX        UINT64_MAX         /* pseudo-sector index of the header seal */
#define SECTOR_OVERHEAD  WIRE_SECTOR_OVERHEAD
#define SECTOR_MIN_SHIFT 9
#define SECTOR_MAX_SHIFT 16
#define SECTOR_MAX       (1u << SECTOR_MAX_SHIFT)
/* Largest plaintext size; keeps every backing offset far inside off_t. */
#define SEFILE_MAX_SIZE  (1ull << 60)

/* Offsets inside the clear header. */
#define HOFF_MAGIC    0
#define HOFF_VERSION  8
#define HOFF_ALG      10
#define HOFF_SHIFT    11
#define HOFF_KEY_ID   12
#define HOFF_FILE_ID  16
#define HOFF_LENGTH   32
#define HOFF_RESERVED 40
#define HOFF_SEALED   HDR_CLEAR_LEN

/* ---- the pool ---- */

/* One connection and the scratch buffers that go with it: whoever holds
 * the connection owns the buffers, so the hot path never allocates. */
struct sefile_conn {
	struct cube *c;
	int busy;
	uint8_t *sealed;              /* SEAL output / OPEN input */
	uint8_t *plain;               /* plaintext staging */
	uint8_t *rmw;                 /* 3 sectors: head, tail, pad */
	struct cube_sector *secs;     /* WIRE_MAX_SECTORS + 2 entries */
	uint32_t *where;              /* request position -> sector offset in run */
	uint8_t *bad;
	uint8_t *redo;                /* a redo record being assembled (REDO_CAP) */
};

struct sefile_cube {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;
	int owned;                    /* close the cubes on sefile_cube_close */
	struct sefile_conn *conns;
	atomic_uint_fast64_t requests;/* SEAL + OPEN requests sent */
};

#define CONN_SEALED_CAP ((size_t)WIRE_MAX_BULK_REQ + (size_t)(WIRE_MAX_SECTORS + 2) * SECTOR_OVERHEAD)
#define CONN_PLAIN_CAP  ((size_t)WIRE_MAX_BULK_REQ)
#define CONN_SECS_CAP   (WIRE_MAX_SECTORS + 2)

/* ---- redo records (docs/FORMAT.md, "Writes in place") ----
 * Bytes about to be overwritten in place are first appended, with where
 * they go, as a record after the end of the file; the backing is cut
 * back once they are in place.  A record is: an extent table (REDO_EXT
 * bytes per extent: u64 offset, u32 length, u32 zero), the extents'
 * bytes, and a REDO_TRAILER_LEN trailer at the very end of the backing. */
#define REDO_MAGIC       "SEredo\001\n"
#define REDO_MAGIC_LEN   8
#define REDO_EXT         16
#define REDO_MAX_EXT     4
#define REDO_TRAILER_LEN 64
#define REDO_BODY_CAP    ((size_t)REDO_MAX_EXT * REDO_EXT + CONN_SEALED_CAP + SEFILE_HEADER_LEN)
#define REDO_CAP         (REDO_BODY_CAP + REDO_TRAILER_LEN)

/* One run of bytes to write at a backing offset. */
struct extent {
	uint64_t off;
	const uint8_t *buf;
	size_t len;
};

struct sefile_conn *conn_get(struct sefile_cube *pool);
void conn_put(struct sefile_cube *pool, struct sefile_conn *cn);
/* One SEAL / OPEN request through cn, counted; cube errors become SEFILE
 * codes with a message naming what was being done. */
int conn_seal(struct sefile_cube *pool, struct sefile_conn *cn, const struct sefile_info *id,
	      uint32_t n, const uint8_t *in, uint8_t *out);
int conn_open(struct sefile_cube *pool, struct sefile_conn *cn, const struct sefile_info *id,
	      uint32_t n, const uint8_t *in, uint8_t *out, int *any_bad);

/* ---- an open file ---- */
struct sefile {
	pthread_rwlock_t lock;
	struct sefile_cube *pool;
	int fd;
	int writable;
	struct sefile_info id;        /* file_id, key_id, alg, sector_size; id.size unused */
	unsigned shift;
	uint64_t size;                /* plaintext size (authenticated header length) */
	/* Read-only open of a file with crash residue whose last sector is
	 * still stored at its pre-crash length: its plaintext, cut to size. */
	uint8_t *last_cache;
	uint64_t last_cache_idx;
	uint32_t last_cache_len;
	/* Opened without repair while a redo record is pending: the record's
	 * body (extent table and bytes), laid over every backing read, and
	 * the backing size without the record. */
	uint8_t *overlay;
	size_t overlay_len;
	uint64_t overlay_backing;
	int deferred;                 /* first error that left the file unusable */
};

/* ---- format.c: pure functions over untrusted bytes ---- */
int shift_of(uint32_t sector_size);
uint64_t sector_count(uint64_t size, unsigned shift);
/* Plaintext length of sector idx in a file of `size` bytes. */
uint32_t sector_len(uint64_t size, unsigned shift, uint64_t idx);
/* Backing offset of sector idx. */
uint64_t sector_off(unsigned shift, uint64_t idx);
int bytes_are_zero(const uint8_t *p, size_t n);
/* Header encode: the 48 clear bytes for these fields and length. */
void header_encode(const struct sefile_info *id, uint64_t length, uint8_t clear[HDR_CLEAR_LEN]);

/* ---- errors.c ---- */
int seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Backing-file I/O failure: keeps errno, returns SEFILE_EIO (or ENOSPC). */
int seterr_io(const char *what, uint64_t off);
int map_cube_err(int cube_err);

/* ---- io.c ---- */
/* Read sectors [first, first+count) of f (all below the sector count)
 * into out (count * sector_size bytes of room; the last may be short),
 * holes as zeros.  bad, if given, gets SECTOR_FORGED / SECTOR_MISSING per
 * damaged sector (0 if sound) and every sound sector is still read;
 * either way any damage makes the call SEFILE_EINTEGRITY, the message
 * naming the lowest damaged sector. */
int read_run(struct sefile *f, struct sefile_conn *cn, uint64_t first, uint32_t count,
	     uint8_t *out, uint8_t *bad);
/* Values read_run puts in bad[]. */
#define SECTOR_FORGED  1
#define SECTOR_MISSING 2
uint32_t sectors_per_request(const struct sefile *f);
/* Re-seal sector idx at length len from plain and write it in place
 * (under a redo record at rec_off), then cut the backing to cut_to. */
int reseal_sector(struct sefile *f, struct sefile_conn *cn, uint64_t idx, const uint8_t *plain,
		  uint32_t len, uint64_t rec_off, uint64_t cut_to);
/* Write the header for `length` (seal + pwrite) in a request of its own. */
int write_header(struct sefile *f, struct sefile_conn *cn, uint64_t length);
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* pread up to len bytes; *got receives how many (short only at EOF). */
int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);
/* The same through f: a pending redo record's bytes laid over (f->overlay). */
int backing_read(struct sefile *f, void *buf, size_t len, uint64_t off, size_t *got);
/* Write extents in place so that a crash (kill -9 may stop a pwrite at
 * any page boundary inside it) leaves them all old or, after the next
 * open, all new: a redo record of them at rec_off (at or past the end of
 * everything the file holds), the extents in order, then ftruncate to
 * cut_to (at most rec_off), which drops the record. */
int write_protected(struct sefile *f, struct sefile_conn *cn, const struct extent *ex,
		    unsigned n, uint64_t rec_off, uint64_t cut_to);
/* The redo record ending a backing file of `backing` bytes, if there is a
 * sound one: *body (malloc'd extent table and bytes, *body_len) and
 * *rec_off.  SEFILE_OK with *body NULL if there is none. */
int redo_find(int fd, uint64_t backing, uint8_t **body, size_t *body_len, uint64_t *rec_off);
/* Write a found record's extents in place (a repair). */
int redo_apply(int fd, const uint8_t *body, size_t body_len);

/* ---- file.c ---- */
#define OPEN_REPAIR 1
int file_open(struct sefile **out, struct sefile_cube *pool, int fd, int flags);

#ifdef SEKEYFS_TEST_FAULTS
/*
 * Fault switch, compiled only into test builds that define
 * SEKEYFS_TEST_FAULTS before including the sefile .c files (the library
 * itself never has it).  Every backing-file call of io.c, file.c and
 * verify.c goes through a hook the test defines, which can fail the Nth
 * call of chosen kinds with EIO or ENOSPC (tests/test_sefile_faults.c).
 * The system headers come first so the macros do not touch their
 * declarations.
 */
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

enum sefile_fault_kind {
	SEFILE_FAULT_PWRITE    = 1,
	SEFILE_FAULT_PREAD     = 2,
	SEFILE_FAULT_FSYNC     = 4, /* fsync and fdatasync */
	SEFILE_FAULT_FTRUNCATE = 8,
	SEFILE_FAULT_RENAMEAT  = 16,
};
ssize_t sefile_fault_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t sefile_fault_pread(int fd, void *buf, size_t n, off_t off);
int sefile_fault_fsync(int fd);
int sefile_fault_ftruncate(int fd, off_t len);
int sefile_fault_renameat(int olddir, const char *oldname, int newdir, const char *newname);
#define pwrite(fd, buf, n, off) sefile_fault_pwrite(fd, buf, n, off)
#define pread(fd, buf, n, off) sefile_fault_pread(fd, buf, n, off)
#define fsync(fd) sefile_fault_fsync(fd)
#define fdatasync(fd) sefile_fault_fsync(fd)
#define ftruncate(fd, len) sefile_fault_ftruncate(fd, len)
#define renameat(od, on, nd, nn) sefile_fault_renameat(od, on, nd, nn)
#endif

#endif
