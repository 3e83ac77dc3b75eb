/*
 * sefile.h - SEfile: files that are always encrypted and authenticated on
 * disk, sector by sector, with every key held by a cube; the whole public
 * face of sefile/.  (The secure database, SQLite over SEfile, is
 * sefile/sdb.h.)
 *
 * A SEfile file lives in an ordinary backing file: a header that names the
 * file's random 128-bit ID, its key ID and algorithm, all authenticated,
 * then data sectors of a power-of-two payload (default 4096), each stored
 * as nonce || ciphertext || tag and authenticated together with the file
 * ID, its index and its length.  The layout is docs/FORMAT.md.
 *
 * sefile/ never sees a key value: sealing and opening go to the cube by
 * key ID (cube/cube.h), many sectors per request.
 *
 * Functions return SEFILE_OK (0) or a negative SEFILE_E* code; an error
 * also leaves a message (sefile_errmsg) that says what failed and where,
 * e.g. "sector 17: authentication failed (bit flip or swapped sector)".
 * sefile_errno() maps a code to the errno a file system returns.
 */
#ifndef SEKEYFS_SEFILE_H
#define SEKEYFS_SEFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../cube/cube.h"

enum sefile_err {
	SEFILE_OK = 0,
	SEFILE_EIO = -1,        /* backing file I/O error (errno kept) */
	SEFILE_EINTEGRITY = -2, /* authentication failed: tampered or damaged */
	SEFILE_EFORMAT = -3,    /* not a SEfile file, or an unknown version */
	SEFILE_ENOKEY = -4,     /* the cube has no such key / may not use it */
	SEFILE_EKEYEXPIRED = -5,/* the key may no longer encrypt */
	SEFILE_ECUBE = -6,      /* the cube failed (transport, login, device) */
	SEFILE_EINVAL = -7,
	SEFILE_ENOMEM = -8,
	SEFILE_ENOSPC = -9,
	SEFILE_ENAMETOOLONG = -10,
};

/*
 * A pool of logged-in connections to one cube, shared by every SEfile file
 * of a process; it lets several threads seal and open at once.
 */
struct sefile_cube;

/* Open n (>= 1) connections to spec (cube_open syntax) and log each in
 * with role and pin; the PIN is not kept. */
int sefile_cube_open(struct sefile_cube **out, const char *spec, enum wire_role role,
		     const char *pin, unsigned n, char *err, size_t err_cap);
/* Wrap one already logged-in connection (not owned: not closed by
 * sefile_cube_close). */
int sefile_cube_wrap(struct sefile_cube **out, struct cube *c);
void sefile_cube_close(struct sefile_cube *pool);
/* Borrow a connection for a direct cube call; give it back at once. */
struct cube *sefile_cube_get(struct sefile_cube *pool);
void sefile_cube_put(struct sefile_cube *pool, struct cube *c);
/* SEAL and OPEN requests sent through the pool so far (tests, benchmarks). */
uint64_t sefile_cube_requests(struct sefile_cube *pool);

struct sefile;  /* one open SEfile file */

struct sefile_params {
	uint32_t key_id;
	uint8_t alg;            /* WIRE_ALG_AES256_GCM (default if 0), ..._CTR_HMAC, AES128_GCM */
	uint32_t sector_size;   /* payload bytes, power of two 512..65536; 0 = 4096 */
};

/* Make a new empty SEfile file in fd (which must be empty and open
 * read-write), with a fresh random file ID. */
int sefile_create(struct sefile **out, struct sefile_cube *pool, int fd,
		  const struct sefile_params *p);
/* Open an existing SEfile file in fd (O_RDONLY or O_RDWR); the header is
 * authenticated and its length checked against the backing size here. */
int sefile_open(struct sefile **out, struct sefile_cube *pool, int fd);
/* Close (does not close fd).  Returns the first deferred error, if any. */
int sefile_close(struct sefile *f);

/* pread/pwrite semantics: return bytes done (>= 0) or a negative code.
 * A read at or past the end returns 0; a hole reads as zeros. */
ssize_t sefile_pread(struct sefile *f, void *buf, size_t len, uint64_t off);
ssize_t sefile_pwrite(struct sefile *f, const void *buf, size_t len, uint64_t off);
int sefile_truncate(struct sefile *f, uint64_t size);
int sefile_fsync(struct sefile *f, int datasync);
/* Plaintext size of the open file. */
int sefile_size(struct sefile *f, uint64_t *size);

/* Plaintext size from a backing file's size alone (stat without crypto);
 * SEFILE_EFORMAT if no valid SEfile file can have that backing size. */
int sefile_size_from_backing(uint64_t backing_size, uint32_t sector_size, uint64_t *size);
/* Backing size of a SEfile file with plaintext size `size`. */
uint64_t sefile_backing_size(uint64_t size, uint32_t sector_size);

struct sefile_info {
	uint8_t file_id[WIRE_FILE_ID_LEN];
	uint32_t key_id;
	uint8_t alg;
	uint32_t sector_size;
	uint64_t size;
};
int sefile_info(struct sefile *f, struct sefile_info *out);
/* Read and parse a header without authenticating it (ls, verify). */
int sefile_peek_header(int fd, struct sefile_info *out);

/* Bytes of the header at the start of every backing file (docs/FORMAT.md). */
#define SEFILE_HEADER_LEN 124
/* Parse the first SEFILE_HEADER_LEN bytes of buf without a cube (a pure
 * function over untrusted bytes); out->size is the header's length field.
 * SEFILE_OK or SEFILE_EFORMAT. */
int sefile_header_parse(const uint8_t *buf, size_t len, struct sefile_info *out);
/* 1 iff a stored sector (nonce || ct || tag, len bytes) is a hole: all zero. */
int sefile_sector_is_hole(const uint8_t *stored, size_t len);

/*
 * Verify every sector of the file in fd.  For each damaged sector cb is
 * called with its index and a reason; returns SEFILE_OK if the file is
 * sound, SEFILE_EINTEGRITY (or another code) if not.
 */
typedef void (*sefile_damage_cb)(void *arg, uint64_t sector, const char *reason);
int sefile_verify(struct sefile_cube *pool, int fd, sefile_damage_cb cb, void *arg);

/*
 * Re-encrypt the SEfile file at dirfd/name under another key, crash-safely:
 * a new file next to it, fsync, rename over the old one, fsync the dir.
 * A zero alg or sector_size in p keeps the file's own; all-zero sectors
 * of the old file become holes in the new one.
 */
int sefile_rekey(struct sefile_cube *pool, int dirfd, const char *name,
		 const struct sefile_params *p);
/* The same, calling hook once the new file holds the contents, before it
 * is fsynced and renamed over the old one: src_fd/dst_fd are the old and
 * new backing files, src/dst their authenticated header fields.  The hook
 * carries over what else belongs to the file (the mount's encrypted
 * xattrs) and returns SEFILE_OK, or a SEFILE_E* code (errno set for
 * SEFILE_EIO) that abandons the rekey: the old file stays as it was. */
typedef int (*sefile_rekey_hook)(void *arg, int src_fd, const struct sefile_info *src,
				 int dst_fd, const struct sefile_info *dst);
int sefile_rekey_with(struct sefile_cube *pool, int dirfd, const char *name,
		      const struct sefile_params *p, sefile_rekey_hook hook, void *arg);

/*
 * Names.  A path component is encrypted deterministically (AES-SIV in the
 * cube) under key_id, bound to dir_id (the 16-byte ID of the directory it
 * lives in), and encoded for the backing file system (base64url).  An
 * encoding longer than 255 bytes is stored as a long name: a short
 * hash-derived name plus a side file holding the full encoding (see
 * docs/FORMAT.md).  "", ".", "..", and names with '/' or NUL are refused
 * with SEFILE_EINVAL; over 255 bytes of plaintext, SEFILE_ENAMETOOLONG.
 */
#define SEFILE_NAME_MAX 255
/* out (cap >= SEFILE_ENCNAME_MAX + 1) gets the backing name, NUL-ended;
 * *is_long is set when it is a long name whose side file must hold full. */
#define SEFILE_ENCNAME_MAX 255
#define SEFILE_LONGNAME_PREFIX "sl."
#define SEFILE_LONGNAME_SUFFIX ".name"
int sefile_name_encrypt(struct sefile_cube *pool, uint32_t key_id,
			const uint8_t dir_id[WIRE_FILE_ID_LEN], const char *name,
			char *out, size_t out_cap, int *is_long, char *full, size_t full_cap);
/* Decrypt a backing name (for a long name pass the side file's content as
 * enc); out gets the plaintext name, NUL-ended. */
int sefile_name_decrypt(struct sefile_cube *pool, uint32_t key_id,
			const uint8_t dir_id[WIRE_FILE_ID_LEN], const char *enc,
			char *out, size_t out_cap);
/* One name of sefile_name_decrypt_batch. */
struct sefile_name_item {
	const char *enc;   /* backing name, or a long name's side file content */
	char *out;         /* gets the plaintext name, NUL-ended ("" on failure) */
	size_t out_cap;
	int rc;            /* set: what sefile_name_decrypt would return for it */
};
/* sefile_name_decrypt of n names of one directory, WIRE_SIV_BATCH_MAX to a
 * cube request.  SEFILE_OK when every name got its own rc (a name that
 * does not authenticate is SEFILE_EINTEGRITY alone); another code when a
 * cube request failed as a whole (every name that request sent to the
 * cube, and every later name, has that code as its rc). */
int sefile_name_decrypt_batch(struct sefile_cube *pool, uint32_t key_id,
			      const uint8_t dir_id[WIRE_FILE_ID_LEN], struct sefile_name_item *names,
			      size_t n);
/* 1 iff a backing name is a long-name entry / its side file. */
int sefile_name_is_long(const char *backing_name);
int sefile_name_is_side_file(const char *backing_name);
/* 1 iff full (a side file's content) is the encoding long name
 * backing_name stands for (its hash matches); 0 otherwise. */
int sefile_name_long_matches(const char *backing_name, const char *full);
/* Largest encoding a side file holds (without the NUL). */
#define SEFILE_ENCNAME_FULL_MAX 362

/* base64url without padding (RFC 4648 section 5), the encoding of every
 * name sefile and the mount store.  Decoding is strict (alphabet only,
 * canonical trailing bits), so one value has one encoding: -1 otherwise. */
size_t sefile_b64_len(size_t n);                               /* chars for n bytes */
void sefile_b64_encode(const uint8_t *in, size_t n, char *out); /* out: len + 1, NUL-ended */
int sefile_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* renameat2(RENAME_NOREPLACE), also where the backing file system refuses
 * the flag (sshfs, NFS, SMB: a hard link, or a check then a rename).  0,
 * or -1 with errno (EEXIST: the new name is taken). */
int sefile_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
			    const char *newname);

const char *sefile_strerror(int err);
/* Message of the last error on this thread. */
const char *sefile_errmsg(void);
/* errno for a code: EIO for integrity/format, ENOKEY, EKEYEXPIRED, ... */
int sefile_errno(int err);

#endif
