/*
 * keystore.h - the device's persistent store on emulated NOR flash.
 *
 * A log-structured store over the whole 2 MiB flash (flash.h): records are
 * appended, superseded records are marked dead in place (NOR programming
 * can clear bits without an erase), and compaction copies the live records
 * of the sector with the most garbage to the head of the log before
 * erasing it (wear levelling: the erase counts of sectors stay close).
 * Every record carries an xxHash checksum; a power cut at any byte of any
 * operation leaves the store as it was before or after that operation.
 *
 * Two kinds of content:
 *  - meta records: small blobs named by a tag (device identity, PIN
 *    state, clock offset), stored in clear; put replaces atomically.
 *  - key records: 32-bit ID, algorithm, usage, validity window and value,
 *    encrypted at rest under the device master key.  Their index is built
 *    by ks_unlock(), which needs that key; without it keys are invisible.
 *
 * Functions return KS_OK (0) or a negative KS_E* code.
 */
#ifndef SEKEYFS_KEYSTORE_H
#define SEKEYFS_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "flash.h"

enum ks_err {
	KS_OK = 0,
	KS_ENOENT = -1,   /* no such key or meta tag */
	KS_EEXIST = -2,   /* key ID taken (put without replace) */
	KS_EFULL = -3,    /* no room even after compaction */
	KS_EIO = -4,      /* flash read/program/erase failed (or a power cut) */
	KS_ECORRUPT = -5, /* the flash holds something no valid history makes */
	KS_ELOCKED = -6,  /* key operation before ks_unlock */
	KS_EINVAL = -7,   /* bad argument (length, alg) */
	KS_EKEY = -8,     /* ks_unlock: the master key is not this store's */
};

/* Text for a KS_E* code (never NULL). */
const char *ks_strerror(int err);

#define KS_KEY_MAX     32   /* bytes of the longest key value */
#define KS_META_MAX    200  /* bytes of the longest meta blob */
/* Meta tag the store keeps for itself: the master-key verifier written by
 * the first ks_unlock (ks_meta_put/delete refuse it; ks_wipe drops it). */
#define KS_TAG_VERIFIER 0xff
/* Bytes of one key record on flash, framing and checksum included. */
#define KS_KEY_RECORD  46

struct ks_key {
	uint32_t id;
	uint8_t alg;         /* enum wire_alg */
	uint8_t usage;       /* WIRE_USE_* */
	uint32_t not_before; /* minutes since WIRE_EPOCH, 24 bits */
	uint32_t not_after;  /* minutes since WIRE_EPOCH, 24 bits; WIRE_TIME_NEVER */
	uint8_t len;         /* bytes of value, fixed by alg */
	uint8_t value[KS_KEY_MAX];
};

struct keystore;

/* Open the flash image at path (creating a blank 2 MiB erased image if
 * create and it does not exist), check and recover the log. */
int ks_open(struct keystore **out, const char *path, int create);
/* The same over an already opened flash (tests: power-cut simulation).
 * The keystore does not take ownership of f. */
int ks_open_flash(struct keystore **out, struct flash *f);
void ks_close(struct keystore *ks); /* wipes the master key and index */
/* After a failed flash write (a power cut in tests) every change returns
 * KS_EIO until the store is closed and opened again, which recovers. */

int ks_meta_get(struct keystore *ks, uint8_t tag, void *buf, size_t cap, size_t *len);
int ks_meta_put(struct keystore *ks, uint8_t tag, const void *buf, size_t len);
int ks_meta_delete(struct keystore *ks, uint8_t tag);

/* Give the store the master key (32 bytes, copied) and build the key index.
 * KS_EKEY if it does not match the verifier stored by the first unlock;
 * KS_ECORRUPT if a key record does not decrypt to a valid one.  Only keys
 * derived from it are kept in RAM, wiped by ks_lock/ks_close. */
int ks_unlock(struct keystore *ks, const uint8_t master[32]);
void ks_lock(struct keystore *ks); /* forget the master key and index */
int ks_unlocked(const struct keystore *ks);

int ks_key_get(struct keystore *ks, uint32_t id, struct ks_key *out);
/* Store k; if a key with that ID exists: KS_EEXIST unless replace. */
int ks_key_put(struct keystore *ks, const struct ks_key *k, int replace);
/* Destroy: the record's bytes are programmed to zero in place at once
 * (the ciphertext is gone before this returns), then it is garbage. */
int ks_key_delete(struct keystore *ks, uint32_t id);
/* The key with the smallest ID >= from; KS_ENOENT when none is left. */
int ks_key_next(struct keystore *ks, uint32_t from, struct ks_key *out);
uint32_t ks_key_count(const struct keystore *ks);
/* How many more AES-256 keys fit now (counting reclaimable garbage). */
uint32_t ks_key_room(const struct keystore *ks);

/* Factory reset: every key and every meta record except those whose tag
 * is listed in keep[] is erased from the flash (sectors erased, not only
 * unlinked).  The store is locked afterwards. */
int ks_wipe(struct keystore *ks, const uint8_t *keep, size_t n_keep);

/* Per-sector erase counts (wear levelling), for tests and `secube info`. */
int ks_wear(const struct keystore *ks, uint32_t *min_erases, uint32_t *max_erases);

#endif
