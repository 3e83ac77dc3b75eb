/*
 * backup.c - encrypted backup of the admin cube and database, and restore
 * onto a fresh cube (kms.h "encrypted backup and restore", docs/BACKUP.md).
 *
 * The single admin cube is SEkey's single point of failure: it holds every
 * key, including the non-exportable ones (the DB key, the per-user update
 * channel keys).  A backup takes them out wrapped under a key the cube
 * derives from a passphrase (PASSPHRASE_DERIVE), so the passphrase, not
 * the host, protects them, and the same passphrase re-creates the same
 * key in a new cube.
 *
 * File layout (little-endian):
 *   header, 80 bytes: "SKBK" u8 version u8[3] 0 u32 iterations salt[32]
 *                     admin_serial[16] i64 created u32 n_keys u64 db_len
 *   n_keys entries:   u32 id u8 alg u8 usage u16 blob_len blob
 *   database image:   db_len bytes in sectors of 65536 sealed (SEAL,
 *                     AES-256-GCM) under the derived data key, file ID =
 *                     SHA-256("sekey-backup-db-v1" || header)[0..16)
 *   mac[32]:          HMAC under the derived MAC key of
 *                     "sekey-backup-v1" || SHA-256(every byte before it)
 * A restore checks the MAC before it changes anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "internal.h"
#include "update_format.h"
#include "../wire/buf.h"

#define BK_MAGIC "SKBK"
#define BK_VERSION 1
#define BK_HEADER 80
#define BK_SALT 32
#define BK_MAC 32
#define BK_ENTRY_HEAD 8                    /* u32 id u8 alg u8 usage u16 blob_len */
#define BK_BLOB_MAX 64
#define BK_SECTOR 65536u
#define BK_SECTORS_PER_CALL 16u
#define BK_DB_MAX (1ull << 30)             /* a database image above 1 GiB is refused */
#define BK_KEYS_MAX (1u << 22)
#define BK_MAC_CONTEXT "sekey-backup-v1"
#define BK_FILE_CONTEXT "sekey-backup-db-v1"
#define BK_LIST_BATCH 256u
#define BK_MSG_MAX 320
#define KMS_RESTORE_ID_GAP 0x10000

#define BK_WRAP_ID (KMS_BACKUP_KEY_ID)
#define BK_DATA_ID (KMS_BACKUP_KEY_ID + 1)
#define BK_MAC_ID (KMS_BACKUP_KEY_ID + 2)

static const struct cube_derive_target bk_targets[3] = {
	{ BK_WRAP_ID, WIRE_ALG_AES256_KW },
	{ BK_DATA_ID, WIRE_ALG_AES256_GCM },
	{ BK_MAC_ID, WIRE_ALG_HMAC_SHA256 },
};

/* The clear header. */
struct bk_header {
	uint32_t iterations;
	uint8_t salt[BK_SALT];
	uint8_t serial[WIRE_SERIAL_LEN];
	int64_t created;
	uint32_t n_keys;
	uint64_t db_len;
};

/* A growing byte buffer. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};

struct kms_restore {
	struct cube *cube;
	uint8_t *file;
	size_t file_len;
	struct bk_header h;
	size_t keys_off;
	uint8_t *db;            /* the decrypted database image (wiped on close) */
	uint32_t *imported;     /* IDs imported so far */
	size_t n_imported;
	int derived;
	char msg[BK_MSG_MAX];
};

/* ---- small helpers ---- */

static int bytes_put(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void bytes_free(struct bytes *b)
{
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Sealed size of an image of len bytes. */
static uint64_t sealed_len(uint64_t len)
{
	return len + (uint64_t)WIRE_SECTOR_OVERHEAD * ((len + BK_SECTOR - 1) / BK_SECTOR);
}

static void header_pack(const struct bk_header *h, uint8_t out[BK_HEADER])
{
	memset(out, 0, BK_HEADER);
	memcpy(out, BK_MAGIC, 4);
	out[4] = BK_VERSION;
	wire_le32(out + 8, h->iterations);
	memcpy(out + 12, h->salt, BK_SALT);
	memcpy(out + 44, h->serial, WIRE_SERIAL_LEN);
	wire_le64(out + 60, (uint64_t)h->created);
	wire_le32(out + 68, h->n_keys);
	wire_le64(out + 72, h->db_len);
}

static void info_of(const struct bk_header *h, struct kms_backup_info *info)
{
	if (!info)
		return;
	memcpy(info->admin_serial, h->serial, WIRE_SERIAL_LEN);
	info->created = h->created;
	info->iterations = h->iterations;
	info->n_keys = h->n_keys;
	info->db_bytes = h->db_len;
}

/* File ID of the sealed database image: bound to the whole header. */
static void image_file_id(const uint8_t header[BK_HEADER], uint8_t id[WIRE_FILE_ID_LEN])
{
	uint8_t in[sizeof(BK_FILE_CONTEXT) - 1 + BK_HEADER], md[SHA256_DIGEST_LENGTH];

	memcpy(in, BK_FILE_CONTEXT, sizeof(BK_FILE_CONTEXT) - 1);
	memcpy(in + sizeof(BK_FILE_CONTEXT) - 1, header, BK_HEADER);
	SHA256(in, sizeof(in), md);
	memcpy(id, md, WIRE_FILE_ID_LEN);
}

/* The MAC of data[0..len) computed in the cube. */
static int file_mac(struct cube *c, const uint8_t *data, size_t len, uint8_t mac[BK_MAC])
{
	uint8_t in[sizeof(BK_MAC_CONTEXT) - 1 + SHA256_DIGEST_LENGTH];

	memcpy(in, BK_MAC_CONTEXT, sizeof(BK_MAC_CONTEXT) - 1);
	SHA256(data, len, in + sizeof(BK_MAC_CONTEXT) - 1);
	return cube_hmac(c, BK_MAC_ID, in, sizeof(in), mac);
}

/* Does k look exactly like a key PASSPHRASE_DERIVE made for target t? */
static int is_derived(const struct cube_key *k, const struct cube_derive_target *t)
{
	uint8_t usage = t->alg == WIRE_ALG_AES256_KW ? (WIRE_USE_WRAP | WIRE_USE_UNWRAP | WIRE_USE_BACKUP)
			: t->alg == WIRE_ALG_AES256_GCM ? (WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT)
			: WIRE_USE_MAC;

	return k->alg == t->alg && k->usage == usage && k->not_before == 0 &&
	       k->not_after == WIRE_TIME_NEVER;
}

/* Destroy the derived keys (ENOKEY counts as done).  CUBE_OK or the first
 * error. */
static int derived_destroy(struct cube *c)
{
	int first = CUBE_OK;

	for (size_t i = 0; i < 3; i++) {
		int rc = cube_key_destroy(c, bk_targets[i].id);

		if (rc != CUBE_OK && rc != CUBE_ENOKEY && first == CUBE_OK)
			first = rc;
	}
	return first;
}

/* Derive the three keys, first clearing what an interrupted backup or
 * restore left at their IDs; a key of another kind there is CUBE_EEXIST. */
static int derive_keys(struct cube *c, const char *pass, size_t pass_len, const uint8_t *salt,
		       uint32_t iterations)
{
	struct cube_key k;
	int rc;

	for (size_t i = 0; i < 3; i++) {
		rc = cube_key_info(c, bk_targets[i].id, &k);
		if (rc == CUBE_OK && !is_derived(&k, &bk_targets[i]))
			return CUBE_EEXIST;
		if (rc == CUBE_OK)
			rc = cube_key_destroy(c, bk_targets[i].id);
		if (rc != CUBE_OK && rc != CUBE_ENOKEY)
			return rc;
	}
	return cube_passphrase_derive(c, (const uint8_t *)pass, pass_len, salt, BK_SALT, iterations,
				      bk_targets, 3);
}

static int is_derived_id(uint32_t id)
{
	return id >= KMS_BACKUP_KEY_ID && id <= KMS_BACKUP_KEY_ID + 2;
}

/* ---- backup ---- */

/* Every key of the cube but the derived ones and other backup keys,
 * wrapped under the backup key, as file entries.  *n gets the count. */
static int export_keys(struct kms *k, struct bytes *out, uint32_t *n)
{
	struct cube_key list[BK_LIST_BATCH];
	uint8_t blob[BK_BLOB_MAX], head[BK_ENTRY_HEAD];
	uint32_t got = 0, from = 0;
	size_t blob_len;
	int rc;

	*n = 0;
	do {
		rc = cube_key_list(k->cube, from, list, BK_LIST_BATCH, &got);
		if (rc != CUBE_OK)
			return kms_cube_fail(k, rc, "list the cube's keys");
		for (uint32_t i = 0; i < got; i++) {
			if (is_derived_id(list[i].id) || (list[i].usage & WIRE_USE_BACKUP))
				continue;
			rc = cube_key_export(k->cube, BK_WRAP_ID, list[i].id, blob, sizeof(blob),
					     &blob_len);
			if (rc != CUBE_OK)
				return kms_cube_fail(k, rc, "export a key for the backup");
			wire_le32(head, list[i].id);
			head[4] = list[i].alg;
			head[5] = list[i].usage;
			wire_le16(head + 6, (uint16_t)blob_len);
			if (bytes_put(out, head, sizeof(head)) || bytes_put(out, blob, blob_len))
				return kms_fail(k, KMS_ENOMEM, "backup key list");
			if (++*n > BK_KEYS_MAX)
				return kms_fail(k, KMS_EINVAL, "more than %u keys", BK_KEYS_MAX);
		}
		if (got)
			from = list[got - 1].id + 1;
	} while (got == BK_LIST_BATCH && from != 0);
	return KMS_OK;
}

/* Seal image[0..len) into out (sealed_len(len) bytes) under the data key. */
static int seal_image(struct cube *c, const uint8_t file_id[WIRE_FILE_ID_LEN], const uint8_t *image,
		      uint64_t len, uint8_t *out)
{
	struct cube_sector sec[BK_SECTORS_PER_CALL];
	uint64_t off = 0, index = 0;
	int rc = CUBE_OK;

	while (off < len && rc == CUBE_OK) {
		uint32_t n = 0;
		uint64_t sum = 0;

		while (n < BK_SECTORS_PER_CALL && off + sum < len) {
			uint64_t left = len - off - sum;

			sec[n].index = index++;
			sec[n].len = (uint32_t)(left < BK_SECTOR ? left : BK_SECTOR);
			sum += sec[n].len;
			n++;
		}
		rc = cube_seal(c, BK_DATA_ID, WIRE_ALG_AES256_GCM, file_id, sec, n, image + off, out);
		out += sum + (uint64_t)n * WIRE_SECTOR_OVERHEAD;
		off += sum;
	}
	return rc;
}

/* Assemble the whole file (header, entries, sealed image, MAC). */
static int assemble(struct kms *k, struct bk_header *h, const struct bytes *entries,
		    const uint8_t *image, struct bytes *file)
{
	uint8_t header[BK_HEADER], file_id[WIRE_FILE_ID_LEN], mac[BK_MAC];
	uint64_t slen = sealed_len(h->db_len);
	size_t total = BK_HEADER + entries->len + (size_t)slen + BK_MAC;
	int rc;

	header_pack(h, header);
	image_file_id(header, file_id);
	file->p = malloc(total);
	if (!file->p)
		return kms_fail(k, KMS_ENOMEM, "backup of %zu bytes", total);
	file->cap = total;
	memcpy(file->p, header, BK_HEADER);
	memcpy(file->p + BK_HEADER, entries->p, entries->len);
	file->len = BK_HEADER + entries->len;
	rc = seal_image(k->cube, file_id, image, h->db_len, file->p + file->len);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "seal the database image");
	file->len += (size_t)slen;
	rc = file_mac(k->cube, file->p, file->len, mac);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "MAC of the backup");
	memcpy(file->p + file->len, mac, BK_MAC);
	file->len += BK_MAC;
	return KMS_OK;
}

/* Publish data as path: temp file beside it, fsync, rename, fsync dir. */
static int write_file(struct kms *k, const char *path, const uint8_t *data, size_t len)
{
	char dir[4096], name[1024], out[4096 + 1024 + 2];
	const char *slash = strrchr(path, '/');

	if (strlen(path) >= sizeof(dir))
		return kms_fail(k, KMS_EINVAL, "backup path too long");
	if (slash) {
		size_t dl = slash == path ? 1 : (size_t)(slash - path);

		memcpy(dir, path, dl);
		dir[dl] = '\0';
		snprintf(name, sizeof(name), "%s", slash + 1);
	} else {
		snprintf(dir, sizeof(dir), ".");
		snprintf(name, sizeof(name), "%s", path);
	}
	if (!name[0])
		return kms_fail(k, KMS_EINVAL, "backup path %s names no file", path);
	return kms_file_publish(k, dir, name, data, len, 1, out, sizeof(out));
}

int kms_backup(struct kms *k, const char *passphrase, size_t pass_len, uint32_t iterations,
	       const char *path, struct kms_backup_info *info)
{
	struct bk_header h;
	struct bytes entries = { 0 }, file = { 0 };
	unsigned char *image = NULL;
	sqlite3_int64 image_len = 0;
	char detail[256];
	int rc, crc;

	if (info)
		memset(info, 0, sizeof(*info));
	if (!k->cube || k->role != KMS_ROLE_ADMIN || !k->has_admin_serial)
		return kms_fail(k, KMS_EPERM, "a backup needs the administrator's KMS and its cube");
	if (!passphrase || !path)
		return kms_fail(k, KMS_EINVAL, "a backup needs a passphrase and a file");
	memset(&h, 0, sizeof(h));
	h.iterations = iterations ? iterations : KMS_BACKUP_ITER_DEFAULT;
	h.created = kms_now(k);
	memcpy(h.serial, k->admin_serial, WIRE_SERIAL_LEN);
	rc = cube_random(k->cube, h.salt, BK_SALT);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "salt");
	rc = derive_keys(k->cube, passphrase, pass_len, h.salt, h.iterations);
	if (rc == CUBE_EEXIST)
		return kms_fail(k, KMS_EEXIST, "key IDs %u..%u of the admin cube are taken by other keys",
				KMS_BACKUP_KEY_ID, KMS_BACKUP_KEY_ID + 2);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "derive the backup keys");
	rc = export_keys(k, &entries, &h.n_keys);
	if (!rc) {
		/* One consistent snapshot of the database, pages as SQLite has them. */
		image = sqlite3_serialize(k->db, "main", &image_len, 0);
		if (!image || image_len <= 0 || (uint64_t)image_len > BK_DB_MAX)
			rc = image ? kms_fail(k, KMS_EINVAL, "database of %lld bytes",
					      (long long)image_len)
				   : kms_db_fail(k, "serialize the database");
	}
	if (!rc) {
		h.db_len = (uint64_t)image_len;
		rc = assemble(k, &h, &entries, image, &file);
	}
	crc = derived_destroy(k->cube);
	if (!rc && crc != CUBE_OK)
		rc = kms_cube_fail(k, crc, "destroy the backup keys");
	if (!rc)
		rc = write_file(k, path, file.p, file.len);
	if (image) {
		OPENSSL_cleanse(image, (size_t)image_len);
		sqlite3_free(image);
	}
	bytes_free(&entries);
	bytes_free(&file);
	snprintf(detail, sizeof(detail), "%" PRIu32 " keys, database %" PRIu64 " bytes, %" PRIu32
		 " iterations", h.n_keys, h.db_len, h.iterations);
	if (rc) {
		char msg[KMS_MSG_MAX];

		/* The audit call overwrites the message: keep the real one. */
		memcpy(msg, k->msg, sizeof(msg));
		kms_audit_log(k, "backup", rc, detail);
		memcpy(k->msg, msg, sizeof(msg));
		return rc;
	}
	info_of(&h, info);
	return kms_audit_log(k, "backup", KMS_OK, detail);
}

/* ---- restore ---- */

static int rfail(struct kms_restore *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int rfail(struct kms_restore *r, int err, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(r->msg, sizeof(r->msg), "%s: ", kms_strerror(err));

	if (n < 0 || (size_t)n >= sizeof(r->msg))
		return err;
	va_start(ap, fmt);
	vsnprintf(r->msg + n, sizeof(r->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

static int rcube(struct kms_restore *r, int rc, const char *what)
{
	return rfail(r, KMS_ECUBE, "%s: %s (%s)", what, cube_strerror(rc), cube_errmsg(r->cube));
}

static int read_file(struct kms_restore *r, const char *path)
{
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return rfail(r, KMS_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < BK_HEADER + BK_MAC ||
	    (uint64_t)st.st_size > BK_DB_MAX * 2) {
		close(fd);
		return rfail(r, KMS_EBACKUP_FORMAT, "%s: not a backup file (%lld bytes)", path,
			     (long long)st.st_size);
	}
	r->file_len = (size_t)st.st_size;
	r->file = malloc(r->file_len);
	if (!r->file) {
		close(fd);
		return rfail(r, KMS_ENOMEM, "%zu bytes", r->file_len);
	}
	while (got < r->file_len) {
		ssize_t n = read(fd, r->file + got, r->file_len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return rfail(r, KMS_EIO, "%s: read failed", path);
		}
		got += (size_t)n;
	}
	close(fd);
	return KMS_OK;
}

/* Parse and size-check everything in the clear: header, entries, image
 * length, MAC position.  No cube yet. */
static int parse_clear(struct kms_restore *r)
{
	const uint8_t *p = r->file;
	struct bk_header *h = &r->h;
	size_t off = BK_HEADER;
	uint64_t expect;

	if (memcmp(p, BK_MAGIC, 4) != 0)
		return rfail(r, KMS_EBACKUP_FORMAT, "not a SEkey backup (bad magic)");
	if (p[4] != BK_VERSION || p[5] || p[6] || p[7])
		return rfail(r, KMS_EBACKUP_FORMAT, "backup version %u is not known here", p[4]);
	h->iterations = wire_rd32(p + 8);
	memcpy(h->salt, p + 12, BK_SALT);
	memcpy(h->serial, p + 44, WIRE_SERIAL_LEN);
	h->created = (int64_t)wire_rd64(p + 60);
	h->n_keys = wire_rd32(p + 68);
	h->db_len = wire_rd64(p + 72);
	if (h->iterations < WIRE_PBKDF2_ITER_MIN || h->iterations > WIRE_PBKDF2_ITER_MAX ||
	    h->n_keys > BK_KEYS_MAX || h->db_len == 0 || h->db_len > BK_DB_MAX)
		return rfail(r, KMS_EBACKUP_FORMAT, "header values out of range");
	r->keys_off = off;
	for (uint32_t i = 0; i < h->n_keys; i++) {
		uint16_t blob_len;

		if (r->file_len - off < BK_ENTRY_HEAD + BK_MAC)
			return rfail(r, KMS_EBACKUP_FORMAT, "truncated in key entry %u", i);
		blob_len = wire_rd16(p + off + 6);
		if (blob_len == 0 || blob_len > BK_BLOB_MAX ||
		    r->file_len - off - BK_ENTRY_HEAD < (size_t)blob_len + BK_MAC)
			return rfail(r, KMS_EBACKUP_FORMAT, "key entry %u is malformed or truncated", i);
		off += BK_ENTRY_HEAD + blob_len;
	}
	expect = (uint64_t)off + sealed_len(h->db_len) + BK_MAC;
	if (expect != r->file_len)
		return rfail(r, KMS_EBACKUP_FORMAT, "%zu bytes where the header says %" PRIu64
			     " (truncated or extended)", r->file_len, expect);
	return KMS_OK;
}

/* Open the sealed image into r->db under the derived data key. */
static int open_image(struct kms_restore *r)
{
	struct cube_sector sec[BK_SECTORS_PER_CALL];
	uint8_t bad[BK_SECTORS_PER_CALL], file_id[WIRE_FILE_ID_LEN];
	const uint8_t *in = r->file + r->file_len - BK_MAC - sealed_len(r->h.db_len);
	uint64_t off = 0, index = 0;
	int rc;

	image_file_id(r->file, file_id);
	r->db = malloc((size_t)r->h.db_len);
	if (!r->db)
		return rfail(r, KMS_ENOMEM, "database image of %" PRIu64 " bytes", r->h.db_len);
	while (off < r->h.db_len) {
		uint32_t n = 0;
		uint64_t sum = 0;

		while (n < BK_SECTORS_PER_CALL && off + sum < r->h.db_len) {
			uint64_t left = r->h.db_len - off - sum;

			sec[n].index = index++;
			sec[n].len = (uint32_t)(left < BK_SECTOR ? left : BK_SECTOR);
			sum += sec[n].len;
			n++;
		}
		rc = cube_open_sectors(r->cube, BK_DATA_ID, WIRE_ALG_AES256_GCM, file_id, sec, n, in,
				       r->db + off, bad);
		if (rc == CUBE_EINTEGRITY)
			return rfail(r, KMS_EBACKUP, "the database image does not decrypt");
		if (rc != CUBE_OK)
			return rcube(r, rc, "decrypt the database image");
		in += sum + (uint64_t)n * WIRE_SECTOR_OVERHEAD;
		off += sum;
	}
	return KMS_OK;
}

/* No key ID of the backup may exist in the target cube already. */
static int check_fresh(struct kms_restore *r)
{
	size_t off = r->keys_off;
	struct cube_key k;

	for (uint32_t i = 0; i < r->h.n_keys; i++) {
		uint32_t id = wire_rd32(r->file + off);
		int rc = cube_key_info(r->cube, id, &k);

		if (rc == CUBE_OK)
			return rfail(r, KMS_EEXIST, "the cube already holds key %" PRIu32
				     ": restore needs a fresh cube", id);
		if (rc != CUBE_ENOKEY)
			return rcube(r, rc, "look at the target cube's keys");
		off += BK_ENTRY_HEAD + wire_rd16(r->file + off + 6);
	}
	return KMS_OK;
}

static int restore_verify(struct kms_restore *r, const char *pass, size_t pass_len)
{
	uint8_t mac[BK_MAC];
	int rc;

	rc = derive_keys(r->cube, pass, pass_len, r->h.salt, r->h.iterations);
	if (rc == CUBE_EEXIST)
		return rfail(r, KMS_EEXIST, "key IDs %u..%u of the cube are taken by other keys",
			     KMS_BACKUP_KEY_ID, KMS_BACKUP_KEY_ID + 2);
	if (rc != CUBE_OK)
		return rcube(r, rc, "derive the backup keys");
	r->derived = 1;
	rc = file_mac(r->cube, r->file, r->file_len - BK_MAC, mac);
	if (rc != CUBE_OK)
		return rcube(r, rc, "MAC of the backup");
	if (CRYPTO_memcmp(mac, r->file + r->file_len - BK_MAC, BK_MAC) != 0)
		return rfail(r, KMS_EBACKUP, "the MAC does not match: wrong passphrase, or the "
			     "file was changed");
	rc = open_image(r);
	return rc ? rc : check_fresh(r);
}

int kms_restore_open(struct kms_restore **out, struct cube *cube, const char *path,
		     const char *passphrase, size_t pass_len, struct kms_backup_info *info,
		     char *err_text, size_t err_cap)
{
	struct kms_restore *r;
	int rc;

	*out = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	if (err_text && err_cap)
		err_text[0] = '\0';
	if (!cube || !path || !passphrase) {
		if (err_text && err_cap)
			snprintf(err_text, err_cap, "a restore needs a cube, a file and a passphrase");
		return KMS_EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return KMS_ENOMEM;
	r->cube = cube;
	rc = read_file(r, path);
	if (!rc)
		rc = parse_clear(r);
	if (!rc)
		rc = restore_verify(r, passphrase, pass_len);
	if (rc) {
		if (err_text && err_cap)
			snprintf(err_text, err_cap, "%s", r->msg);
		kms_restore_close(r, 0);
		return rc;
	}
	info_of(&r->h, info);
	*out = r;
	return KMS_OK;
}

int kms_restore_keys(struct kms_restore *r)
{
	size_t off = r->keys_off;

	if (r->imported)
		return rfail(r, KMS_EINVAL, "keys already restored");
	r->imported = calloc(r->h.n_keys ? r->h.n_keys : 1, sizeof(*r->imported));
	if (!r->imported)
		return rfail(r, KMS_ENOMEM, "key list");
	for (uint32_t i = 0; i < r->h.n_keys; i++) {
		uint32_t want = wire_rd32(r->file + off), got = 0;
		uint16_t blob_len = wire_rd16(r->file + off + 6);
		int rc = cube_key_import(r->cube, BK_WRAP_ID, r->file + off + BK_ENTRY_HEAD, blob_len,
					 &got);

		if (rc == CUBE_OK && got != want) {
			r->imported[r->n_imported++] = got;
			rc = CUBE_EPROTO;
		}
		if (rc != CUBE_OK) {
			rfail(r, KMS_ECUBE, "import key %" PRIu32 ": %s", want, cube_errmsg(r->cube));
			for (size_t j = 0; j < r->n_imported; j++)
				cube_key_destroy(r->cube, r->imported[j]);
			r->n_imported = 0;
			return KMS_ECUBE;
		}
		r->imported[r->n_imported++] = got;
		off += BK_ENTRY_HEAD + blob_len;
	}
	return KMS_OK;
}

/* Copy the image into dst through SQLite's backup API. */
static int copy_image(struct kms_restore *r, sqlite3 *dst)
{
	sqlite3 *mem = NULL;
	sqlite3_backup *b;
	int rc;

	/* A WAL-mode image reads as a rollback-journal one from memory (the
	 * snapshot holds every committed page already). */
	if (r->h.db_len > 19 && r->db[18] == 2 && r->db[19] == 2)
		r->db[18] = r->db[19] = 1;
	rc = sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_deserialize(mem, "main", r->db, (sqlite3_int64)r->h.db_len,
					 (sqlite3_int64)r->h.db_len, SQLITE_DESERIALIZE_READONLY);
	if (rc != SQLITE_OK) {
		sqlite3_close(mem);
		return rfail(r, KMS_EDB, "load the database image: %s", sqlite3_errstr(rc));
	}
	b = sqlite3_backup_init(dst, "main", mem, "main");
	if (!b) {
		rfail(r, KMS_EDB, "copy the database: %s", sqlite3_errmsg(dst));
		sqlite3_close(mem);
		return KMS_EDB;
	}
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	sqlite3_close(mem);
	if (rc != SQLITE_DONE)
		return rfail(r, KMS_EDB, "copy the database: %s", sqlite3_errstr(rc));
	return KMS_OK;
}

/* Point the copied database at the new cube (kms_open checks the serial). */
static int rebind(struct kms_restore *r, sqlite3 *dst)
{
	struct cube_info info;
	sqlite3_stmt *st = NULL;
	int rc = cube_info(r->cube, &info);

	if (rc != CUBE_OK)
		return rcube(r, rc, "serial of the new cube");
	rc = sqlite3_prepare_v2(dst, "UPDATE kms_meta SET bval=?1 WHERE key='admin_serial'", -1, &st,
				NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 1, info.serial, WIRE_SERIAL_LEN, SQLITE_TRANSIENT);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return rfail(r, KMS_EDB, "bind the database to the new cube: %s", sqlite3_errmsg(dst));
	if (sqlite3_changes(dst) != 1)
		return rfail(r, KMS_ESCHEMA, "the backed-up database is not an administrator's");
	return KMS_OK;
}

/* Highest update counter in dir (0: none or no folder). */
static uint64_t folder_max_counter(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t max = 0, c;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (kms_upd_name_parse(e->d_name, &c) == 0 && c > max)
			max = c;
	closedir(d);
	return max;
}

/* Keys made after the backup still live in users' cubes under IDs the
 * restored database would hand out again: move the ID counter past them
 * (by KMS_RESTORE_ID_GAP, more keys than a lost stretch of work makes). */
static int skip_key_ids(struct kms *k)
{
	int64_t v;
	int found;
	int rc = kms_meta_get(k, "next_key", &v, NULL, 0, NULL, &found);

	if (rc)
		return rc;
	if (!found || v < KMS_KEY_ID_FIRST)
		v = KMS_KEY_ID_FIRST;
	if (v + KMS_RESTORE_ID_GAP >= (int64_t)UINT32_MAX)
		return kms_fail(k, KMS_EINVAL, "key IDs exhausted");
	return kms_meta_put(k, "next_key", v + KMS_RESTORE_ID_GAP, NULL, 0);
}

/* Recovery updates for every provisioned user with update files the
 * restored database does not know (made after the backup). */
static int recover_stale(struct kms *k, const char *updates_dir, uint32_t *n)
{
	struct kms_user *users = NULL;
	size_t n_users = 0;
	int rc = kms_user_list(k, &users, &n_users);

	for (size_t i = 0; !rc && i < n_users; i++) {
		char dir[4200];
		sqlite3_stmt *st;
		uint64_t next = 1;

		if (!users[i].update_key_id)
			continue;
		if (kms_upd_user_dir_path(updates_dir, users[i].serial, dir, sizeof(dir)) != 0) {
			rc = kms_fail(k, KMS_EINVAL, "updates folder path too long");
			break;
		}
		rc = kms_row(k, ST_UPD_STATE_GET, &st, KMS_ENOTPROV, "u", users[i].id);
		if (rc == KMS_OK) {
			next = (uint64_t)sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
		} else if (rc == KMS_ENOTPROV) {
			rc = KMS_OK;
		}
		if (!rc && folder_max_counter(dir) >= next && *n == 0)
			rc = skip_key_ids(k);
		if (!rc && folder_max_counter(dir) >= next) {
			rc = kms_user_recover(k, users[i].id, "restored from an older backup");
			if (!rc)
				++*n;
		}
	}
	free(users);
	return rc;
}

int kms_restore_db(struct kms_restore *r, sqlite3 *dst, const char *updates_dir,
		   uint32_t *n_recovered)
{
	struct kms *k = NULL;
	char err[256], detail[256], hex[2 * WIRE_SERIAL_LEN + 1];
	uint32_t n = 0;
	int rc;

	if (n_recovered)
		*n_recovered = 0;
	if (!r->imported)
		return rfail(r, KMS_EINVAL, "restore the keys first (the database needs its DB key)");
	rc = copy_image(r, dst);
	if (!rc)
		rc = rebind(r, dst);
	if (rc)
		return rc;
	rc = kms_open(&k, dst, r->cube, err, sizeof(err));
	if (rc)
		return rfail(r, rc, "open the restored KMS: %s", err);
	if (kms_role(k) != KMS_ROLE_ADMIN)
		rc = kms_fail(k, KMS_ESCHEMA, "the backed-up database is not an administrator's");
	if (!rc && updates_dir) {
		rc = kms_set_updates_dir(k, updates_dir);
		if (!rc)
			rc = recover_stale(k, updates_dir, &n);
	}
	for (size_t i = 0; i < WIRE_SERIAL_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", r->h.serial[i]);
	snprintf(detail, sizeof(detail), "from the backup of cube %s made at %lld: %" PRIu32
		 " keys, %" PRIu32 " recovery updates", hex, (long long)r->h.created, r->h.n_keys, n);
	if (!rc)
		rc = kms_audit_log(k, "restore", KMS_OK, detail);
	if (rc)
		rfail(r, rc, "%s", kms_errmsg(k));
	kms_close(k);
	if (!rc && n_recovered)
		*n_recovered = n;
	return rc;
}

const char *kms_restore_errmsg(const struct kms_restore *r)
{
	if (!r)
		return "no restore handle";
	return r->msg[0] ? r->msg : "success";
}

void kms_restore_close(struct kms_restore *r, int keep)
{
	if (!r)
		return;
	if (!keep)
		for (size_t i = 0; i < r->n_imported; i++)
			cube_key_destroy(r->cube, r->imported[i]);
	if (r->derived)
		derived_destroy(r->cube);
	if (r->db) {
		OPENSSL_cleanse(r->db, (size_t)r->h.db_len);
		free(r->db);
	}
	free(r->file);
	free(r->imported);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}
