/*
 * update_format.h - the update file format as pure functions (no cube, no
 * database, no I/O): the clear header, the file ID that binds the header to
 * the sealed body, the record stream and each record's value.  Used by the
 * admin side (updates.c), the user side (sync.c) and the fuzzer
 * (fuzz/fuzz_kms_update.c).  Byte layout: docs/UPDATES.md.
 *
 * Every parser reads only inside the buffer it is given, validates every
 * length before use and answers 0 (ok) or -1 (malformed); none allocates.
 */
#ifndef SEKEYFS_KMS_UPDATE_FORMAT_H
#define SEKEYFS_KMS_UPDATE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "../wire/wire.h"

#define KMS_UPD_MAGIC "SKUP"
#define KMS_UPD_VERSION 1
#define KMS_UPD_HEADER_LEN 44
#define KMS_UPD_SECTOR 65536u                /* plaintext bytes per sealed sector */
#define KMS_UPD_BODY_MAX (16u * 1024 * 1024) /* plaintext bytes of one update */
#define KMS_UPD_REC_HEAD (2 + 8 + 4)          /* type, counter, length */
#define KMS_UPD_BLOB_MAX 256                  /* a wrapped key or tombstone */
#define KMS_UPD_NAME_LEN 20                   /* "%016llu.upd" */

/* Priorities (the header's priority byte): init > recovery > standard. */
enum kms_upd_priority {
	KMS_UPD_STANDARD = 1,
	KMS_UPD_RECOVERY = 2,
	KMS_UPD_INIT = 3,
};

/* Record types. */
enum kms_upd_type {
	KMS_REC_SELF = 1,       /* who this KMS belongs to */
	KMS_REC_USER = 2,       /* a user the owner shares a group with */
	KMS_REC_GROUP = 3,      /* a group of the owner, policy and members */
	KMS_REC_GROUP_GONE = 4, /* the owner is no longer in that group */
	KMS_REC_KEY = 5,        /* a key's metadata and its wrapped value */
	KMS_REC_KEY_GONE = 6,   /* a key to destroy (tombstone) */
	KMS_REC_RESET = 7,      /* forget the whole view (init / recovery) */
	KMS_REC_USER_GONE = 8,  /* the owner was deleted: forget everything */
	KMS_REC_TYPE_MAX = 8,
};

struct kms_upd_header {
	uint8_t version;
	uint8_t priority;
	uint8_t serial[WIRE_SERIAL_LEN];
	uint64_t counter;
	uint32_t enc_key_id;    /* the update-encryption key (ID in both cubes) */
	uint32_t wrap_key_id;   /* the update-wrapping key */
	uint32_t body_len;      /* plaintext bytes of the records */
};

/* One record of the stream; value points into the body. */
struct kms_upd_rec {
	uint16_t type;
	uint64_t counter;
	uint32_t len;
	const uint8_t *value;
};

struct kms_upd_self {
	uint32_t user_id;
	char name[64];
	uint32_t db_key_id;
};

struct kms_upd_user {
	uint32_t id;
	char name[64];
};

#define KMS_UPD_MEMBERS_MAX 100000u
struct kms_upd_group {
	uint32_t id;
	char name[64];
	uint8_t alg;
	uint32_t max_keys;
	int64_t cryptoperiod;
	uint8_t rotate_on_remove;
	uint32_t n_members;
	const uint8_t *members; /* n_members x u32 LE user IDs */
};

struct kms_upd_key {
	uint32_t id;
	char label[64];
	uint8_t alg;
	uint16_t length;
	uint32_t group_id;
	uint8_t state;
	int64_t cryptoperiod;
	uint8_t type;
	int64_t times[7];       /* generated activated expires suspended deactivated compromised destroyed */
	uint32_t blob_len;      /* 0: no value (metadata-only admin) */
	const uint8_t *blob;
};

struct kms_upd_key_gone {
	uint32_t id;
	uint32_t blob_len;
	const uint8_t *blob;
};

/* Header <-> bytes.  parse checks magic, version, priority, reserved
 * bytes, and that body_len is 1..KMS_UPD_BODY_MAX. */
void kms_upd_header_pack(const struct kms_upd_header *h, uint8_t out[KMS_UPD_HEADER_LEN]);
int kms_upd_header_parse(const uint8_t *in, size_t len, struct kms_upd_header *h);
/* Bytes of the sealed body that follows a header (body_len plus the
 * nonce and tag of each sector) and the number of sectors. */
uint64_t kms_upd_sealed_len(uint32_t body_len, uint32_t *n_sectors);
/* The SEAL file ID: SHA-256("sekey-update-v1" || packed header)[0..16),
 * so the sealed body is bound to serial, counter, priority, key IDs and
 * length.  0 or -1. */
int kms_upd_file_id(const struct kms_upd_header *h, uint8_t file_id[WIRE_FILE_ID_LEN]);
/* "%016llu.upd" of counter into name[KMS_UPD_NAME_LEN + 1]. */
void kms_upd_name(uint64_t counter, char name[KMS_UPD_NAME_LEN + 1]);
/* Counter of an update file name: 0 and *counter, or -1 if name is not
 * exactly 16 digits + ".upd" (or is all zeros). */
int kms_upd_name_parse(const char *name, uint64_t *counter);
/* Is name debris a sync tool or a crashed writer leaves (temp ".x",
 * ".sync-conflict-", "~")?  1 or 0. */
int kms_upd_name_is_debris(const char *name);

/* The record at *pos of body (len bytes): 1 and *pos advanced, 0 at the
 * end, -1 malformed (unknown type, bad length, counter != counter). */
int kms_upd_next(const uint8_t *body, size_t len, size_t *pos, uint64_t counter,
		 struct kms_upd_rec *rec);
/* Value parsers: 0 or -1 (the whole value must be consumed). */
int kms_upd_parse_self(const struct kms_upd_rec *r, struct kms_upd_self *out);
int kms_upd_parse_user(const struct kms_upd_rec *r, struct kms_upd_user *out);
int kms_upd_parse_group(const struct kms_upd_rec *r, struct kms_upd_group *out);
int kms_upd_parse_id(const struct kms_upd_rec *r, uint32_t *id); /* GROUP_GONE, USER_GONE */
int kms_upd_parse_key(const struct kms_upd_rec *r, struct kms_upd_key *out);
int kms_upd_parse_key_gone(const struct kms_upd_rec *r, struct kms_upd_key_gone *out);
/* Walk and fully parse every record of a body: 0 or -1. */
int kms_upd_check_body(const uint8_t *body, size_t len, uint64_t counter);

/* Writers (append to out[cap] at *pos; -1 if it does not fit). */
int kms_upd_put_rec(uint8_t *out, size_t cap, size_t *pos, uint16_t type, uint64_t counter,
		    const uint8_t *value, uint32_t len);
int kms_upd_val_self(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_self *v);
int kms_upd_val_user(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_user *v);
/* members: n_members u32 IDs (host order) */
int kms_upd_val_group(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_group *v,
		      const uint32_t *members);
int kms_upd_val_key(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_key *v);
int kms_upd_val_key_gone(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_key_gone *v);
int kms_upd_val_id(uint8_t *out, size_t cap, size_t *len, uint32_t id);

#endif
