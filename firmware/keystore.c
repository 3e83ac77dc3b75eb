/*
 * keystore.c - the device's log-structured key store on emulated NOR flash
 * (keystore.h).  docs/FLASH.md describes the bytes; this file keeps to it.
 *
 * Sections:
 *   1. on-flash formats (sector header, key and meta records)
 *   2. sector bookkeeping, free-sector choice, erase, opening a log head
 *   3. appending and killing records (the NOR commit protocol)
 *   4. compaction and wear levelling
 *   5. recovery scan (ks_open)
 *   6. meta records
 *   7. unlock, the key index and key records
 *   8. wipe, wear, room, errors
 *
 * Invariants kept between calls (docs/FLASH.md "Recovery"):
 *  - every committed record whose live bit is set is the current copy of
 *    its key or tag (older duplicates are marked dead by recovery);
 *  - a dead or torn key record is zero on flash (header 0x80, body 0);
 *  - the log head is the LOG sector with the highest sequence number, and
 *    sequence numbers only grow, so (sector, seq, offset) never repeats and
 *    serves as the AES-CTR IV of a key record.
 */
#include "firmware/keystore.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "firmware/fwcrypto.h"
#include "wire/wire.h"

/* ---- 1. on-flash formats -------------------------------------------- */

#define HDR_SIZE      16u          /* sector header */
#define HDR_MAGIC     "KSF1"       /* first byte != 0xff: an erase clears it first */
#define HDR_ECHK_AT   8u           /* magic, erases, check16: programmed after erase */
#define HDR_SEQ_AT    10u          /* seq, check16: programmed when the log opens it */
#define HDR_ERASE_LEN 10u
#define HDR_SEQ_LEN   6u
#define SEQ_BARRIER   0x80000000u  /* set by ks_wipe: older sectors are void */
#define SEQ_MASK      0x7fffffffu
#define SEQ_NONE      0xffffffffu

/* Record header byte: type(2) uncommitted(1) live(1) nibble(4). */
#define RT_MASK        0xc0u
#define RT_KEY         0x80u
#define RT_META        0x40u
#define RB_UNCOMMITTED 0x20u       /* cleared = committed */
#define RB_LIVE        0x10u       /* cleared = dead (superseded, deleted) */
#define RB_NIBBLE      0x0fu       /* key: encrypted alg; meta: size in 16s */
#define KEY_ZEROED     0x80u       /* header of a zeroized key record */

#define KEY_REC       KS_KEY_RECORD
#define META_UNIT     16u
#define META_FIXED    7u           /* header, tag, len, xxh32 */
#define META_CLASSES  13u          /* (7 + 200) / 16 rounded up */
#define META_REC_MAX  (META_UNIT * META_CLASSES)
#define KEY_SEED      0x4b455931u  /* xxHash seeds: "KEY1", "MET1", "HDR1" */
#define META_SEED     0x4d455431u
#define HDR_SEED      0x48445231u

#define NO_OFF        0xffffffffu
#define BIG_SECTOR    131072u
/* Compaction reserve: free bytes ordinary writes leave untouched, one
 * 128 KiB sector's worth, so a compaction always has somewhere to go. */
#define RESERVE       BIG_SECTOR
/* A destination sector may end with a gap smaller than one record. */
#define SECTOR_SLACK  (META_REC_MAX - 1u)
#define GC_MIN_GAIN   (2u * META_REC_MAX) /* room a compaction must win */
#define WEAR_SPREAD   4u           /* erase-count spread that moves cold data */

static const char info_records[] = "sekeyfs keystore records v1";
static const char info_verifier[] = "sekeyfs keystore verifier v1";
#define VERIFIER_LEN 16u

static void put_le(uint8_t *p, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le(const uint8_t *p, unsigned n)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint16_t check16(const uint8_t *p, size_t n, uint32_t seed)
{
	return (uint16_t)(XXH32(p, n, seed) & 0xffffu);
}

/* On-flash size of the record whose header byte is h; 0 if h is no record. */
static uint32_t record_size(uint8_t h)
{
	unsigned nib = h & RB_NIBBLE;

	if ((h & RT_MASK) == RT_KEY)
		return KEY_REC;
	if ((h & RT_MASK) == RT_META && nib >= 1 && nib <= META_CLASSES)
		return META_UNIT * nib;
	return 0;
}

static uint32_t meta_size(size_t len)
{
	return (uint32_t)((META_FIXED + len + META_UNIT - 1) / META_UNIT * META_UNIT);
}

static int committed(uint8_t h) { return !(h & RB_UNCOMMITTED); }
static int live(uint8_t h) { return committed(h) && (h & RB_LIVE); }

/* Bytes of key value an algorithm takes; 0 for an unknown algorithm. */
static uint8_t alg_key_len(uint8_t alg)
{
	switch (alg) {
	case WIRE_ALG_AES256_GCM:
	case WIRE_ALG_AES256_CTR_HMAC:
	case WIRE_ALG_AES256_KW:
	case WIRE_ALG_HMAC_SHA256:
		return 32;
	case WIRE_ALG_AES128_GCM:
		return 16;
	default:
		return 0;
	}
}

/* ---- 2. sectors ------------------------------------------------------ */

enum sec_state {
	SEC_DIRTY = 0, /* no usable header or stale content: erase before use */
	SEC_FREE,      /* erased, header with erase count, not in the log yet */
	SEC_LOG,       /* part of the log: header with a sequence number */
};

struct ks_sector {
	uint32_t base, size;
	uint32_t erases;    /* erase count (wear); part of the record IV */
	uint32_t seq;       /* log sequence number (LOG), without the barrier bit */
	uint8_t state;
	uint8_t blank;      /* DIRTY but all 0xff: needs a header, not an erase */
	uint32_t wp;        /* LOG: offset of the first unwritten byte */
	uint32_t live;      /* LOG: bytes of committed live records */
	uint32_t live_keys; /* LOG: committed live key records among them */
};

struct ks_index_entry {
	uint32_t id;
	uint32_t off; /* flash offset of the key record */
};

struct keystore {
	struct flash *flash;
	int own_flash;
	int failed;                   /* a flash write failed: reopen to recover */
	struct ks_sector sec[FLASH_SECTORS];
	int head;                     /* LOG sector appended to; -1 none */
	uint32_t next_seq;
	uint32_t meta_off[256];       /* flash offset of each tag's record */
	int unlocked;
	uint8_t rec_key[32];          /* record-encryption key derived from master */
	struct ks_index_entry *keys;  /* sorted by id */
	uint32_t n_keys, cap_keys;
};

static uint32_t payload(const struct ks_sector *s) { return s->size - HDR_SIZE; }

static int io_fail(struct keystore *ks, int flash_rc)
{
	(void)flash_rc;
	ks->failed = 1;
	return KS_EIO;
}

static int program(struct keystore *ks, uint32_t off, const void *buf, size_t len)
{
	int rc = flash_program(ks->flash, off, buf, len);

	return rc == FLASH_OK ? KS_OK : io_fail(ks, rc);
}

static int read_flash(struct keystore *ks, uint32_t off, void *buf, size_t len)
{
	return flash_read(ks->flash, off, buf, len) == FLASH_OK ? KS_OK : KS_EIO;
}

static int sector_of(const struct keystore *ks, uint32_t off)
{
	for (int s = 0; s < FLASH_SECTORS; s++)
		if (off >= ks->sec[s].base && off - ks->sec[s].base < ks->sec[s].size)
			return s;
	return -1;
}

static int is_free(const struct ks_sector *s) { return s->state != SEC_LOG; }

/* The least worn free sector with at least need bytes of payload. */
static int pick_free(const struct keystore *ks, uint32_t need)
{
	int best = -1;

	for (int s = 0; s < FLASH_SECTORS; s++) {
		const struct ks_sector *c = &ks->sec[s];

		if (!is_free(c) || payload(c) < need)
			continue;
		if (best < 0 || c->erases < ks->sec[best].erases)
			best = s;
	}
	return best;
}

static int write_erase_header(struct keystore *ks, int s)
{
	uint8_t h[HDR_ERASE_LEN];
	struct ks_sector *c = &ks->sec[s];

	memcpy(h, HDR_MAGIC, 4);
	put_le(h + 4, c->erases, 4);
	put_le(h + HDR_ECHK_AT, check16(h, HDR_ECHK_AT, HDR_SEED + (uint32_t)s), 2);
	if (program(ks, c->base, h, sizeof(h)) != KS_OK)
		return KS_EIO;
	c->state = SEC_FREE;
	c->blank = 0;
	c->seq = SEQ_NONE;
	c->live = c->live_keys = 0;
	c->wp = HDR_SIZE;
	return KS_OK;
}

/* Erase (unless blank), count it, write the erase header: a FREE sector. */
static int erase_to_free(struct keystore *ks, int s)
{
	struct ks_sector *c = &ks->sec[s];
	int rc;

	if (!c->blank) {
		c->state = SEC_DIRTY;
		rc = flash_erase(ks->flash, (unsigned)s);
		if (rc != FLASH_OK)
			return io_fail(ks, rc);
		c->erases++;
	}
	return write_erase_header(ks, s);
}

/* Make free sector s the log head with the next sequence number. */
static int open_head(struct keystore *ks, int s, uint32_t flags)
{
	struct ks_sector *c = &ks->sec[s];
	uint8_t h[HDR_SIZE];
	uint32_t seq = ks->next_seq;

	if (seq > SEQ_MASK)
		return KS_EFULL; /* 2^31 sector openings: the flash is long worn out */
	if (c->state != SEC_FREE && erase_to_free(ks, s) != KS_OK)
		return KS_EIO;
	if (read_flash(ks, c->base, h, HDR_SEQ_AT) != KS_OK)
		return KS_EIO;
	put_le(h + HDR_SEQ_AT, seq | flags, 4);
	put_le(h + HDR_SEQ_AT + 4, check16(h, HDR_SEQ_AT + 4, HDR_SEED + (uint32_t)s), 2);
	if (program(ks, c->base + HDR_SEQ_AT, h + HDR_SEQ_AT, HDR_SEQ_LEN) != KS_OK)
		return KS_EIO;
	ks->next_seq = seq + 1;
	c->state = SEC_LOG;
	c->seq = seq;
	c->wp = HDR_SIZE;
	c->live = c->live_keys = 0;
	ks->head = s;
	return KS_OK;
}

static uint32_t head_free(const struct keystore *ks)
{
	const struct ks_sector *h;

	if (ks->head < 0)
		return 0;
	h = &ks->sec[ks->head];
	return h->size - h->wp;
}

/* Free bytes: the head's tail and every free sector. */
static uint32_t free_total(const struct keystore *ks)
{
	uint32_t n = head_free(ks);

	for (int s = 0; s < FLASH_SECTORS; s++)
		if (is_free(&ks->sec[s]))
			n += payload(&ks->sec[s]);
	return n;
}

/* Bytes of records that surely fit, whatever their sizes: each place
 * written to may end with a gap of up to SECTOR_SLACK bytes. */
static uint32_t free_for_records(const struct keystore *ks)
{
	uint32_t n = head_free(ks) > SECTOR_SLACK ? head_free(ks) - SECTOR_SLACK : 0;

	for (int s = 0; s < FLASH_SECTORS; s++)
		if (is_free(&ks->sec[s]))
			n += payload(&ks->sec[s]) - SECTOR_SLACK;
	return n;
}

/* ---- 3. appending and killing records --------------------------------- */

/* The AES-CTR IV of a key record at off: (sector, erase count, seq,
 * offset in sector).  Unique per programming: seq never repeats. */
static void record_iv(const struct keystore *ks, uint32_t off, uint8_t iv[16])
{
	int s = sector_of(ks, off);
	const struct ks_sector *c = &ks->sec[s];

	memset(iv, 0, 16);
	iv[0] = 'K';
	iv[1] = (uint8_t)s;
	put_le(iv + 2, c->erases, 4);
	put_le(iv + 6, c->seq, 4);
	put_le(iv + 10, off - c->base, 3);
}

/* Append a record (its header byte carries RB_UNCOMMITTED), then commit it
 * by clearing that bit: a cut before the commit leaves a torn record that
 * recovery skips by its size. */
static int append_record(struct keystore *ks, const uint8_t *rec, uint32_t len, uint32_t *off)
{
	struct ks_sector *h = &ks->sec[ks->head];
	uint32_t at = h->base + h->wp;
	uint8_t commit = rec[0] & (uint8_t)~RB_UNCOMMITTED;

	h->wp += len; /* torn or not, these bytes are used */
	if (program(ks, at, rec, len) != KS_OK || program(ks, at, &commit, 1) != KS_OK)
		return KS_EIO;
	h->live += len;
	if ((rec[0] & RT_MASK) == RT_KEY)
		h->live_keys++;
	*off = at;
	return KS_OK;
}

static void account_dead(struct keystore *ks, uint32_t off, uint32_t len, int key)
{
	struct ks_sector *c = &ks->sec[sector_of(ks, off)];

	c->live -= len;
	if (key)
		c->live_keys--;
}

static int kill_meta(struct keystore *ks, uint32_t off)
{
	uint8_t h;

	if (read_flash(ks, off, &h, 1) != KS_OK)
		return KS_EIO;
	if (live(h))
		account_dead(ks, off, record_size(h), 0);
	h &= (uint8_t)~RB_LIVE;
	return program(ks, off, &h, 1);
}

/* Zeroize a key record in place: first the header byte (dead, committed,
 * alg nibble gone: one byte, so the delete is atomic), then the rest. */
static int zero_key(struct keystore *ks, uint32_t off)
{
	static const uint8_t zeros[KEY_REC];
	uint8_t h = KEY_ZEROED;

	if (program(ks, off, &h, 1) != KS_OK)
		return KS_EIO;
	return program(ks, off + 1, zeros, KEY_REC - 1);
}

static int kill_key(struct keystore *ks, uint32_t off)
{
	uint8_t h;

	if (read_flash(ks, off, &h, 1) != KS_OK)
		return KS_EIO;
	if (live(h))
		account_dead(ks, off, KEY_REC, 1);
	return zero_key(ks, off);
}

static int build_key_record(const struct keystore *ks, const struct ks_key *k, uint32_t off,
			    uint8_t rec[KEY_REC])
{
	uint8_t p[KEY_REC], iv[16];
	int rc;

	memset(p, 0, sizeof(p));
	p[0] = k->alg & RB_NIBBLE;
	p[1] = k->usage;
	put_le(p + 2, k->id, 4);
	put_le(p + 6, k->not_before, 3);
	put_le(p + 9, k->not_after, 3);
	memcpy(p + 12, k->value, k->len);
	put_le(p + 44, check16(p, 44, KEY_SEED), 2);
	record_iv(ks, off, iv);
	rc = fw_ctr(ks->rec_key, sizeof(ks->rec_key), iv, p, KEY_REC, rec);
	fw_wipe(p, sizeof(p));
	if (rc != 0)
		return KS_EIO;
	rec[0] = (uint8_t)(RT_KEY | RB_UNCOMMITTED | RB_LIVE | (rec[0] & RB_NIBBLE));
	return KS_OK;
}

/* Decrypt and check the key record at off (read into rec). */
static int parse_key_record(const struct keystore *ks, uint32_t off, const uint8_t rec[KEY_REC],
			    struct ks_key *k)
{
	uint8_t c[KEY_REC], p[KEY_REC], iv[16];
	int rc = KS_ECORRUPT;

	memset(k, 0, sizeof(*k));
	memcpy(c, rec, KEY_REC);
	c[0] &= RB_NIBBLE;
	record_iv(ks, off, iv);
	if (fw_ctr(ks->rec_key, sizeof(ks->rec_key), iv, c, KEY_REC, p) != 0) {
		rc = KS_EIO;
		goto out;
	}
	p[0] &= RB_NIBBLE;
	if (get_le(p + 44, 2) != check16(p, 44, KEY_SEED))
		goto out;
	k->alg = p[0];
	k->len = alg_key_len(k->alg);
	if (k->len == 0)
		goto out;
	for (unsigned i = 12u + k->len; i < 44; i++)
		if (p[i] != 0)
			goto out;
	k->usage = p[1];
	k->id = get_le(p + 2, 4);
	k->not_before = get_le(p + 6, 3);
	k->not_after = get_le(p + 9, 3);
	memcpy(k->value, p + 12, k->len);
	rc = KS_OK;
out:
	fw_wipe(p, sizeof(p));
	if (rc != KS_OK)
		fw_wipe(k, sizeof(*k));
	return rc;
}

static int read_key(struct keystore *ks, uint32_t off, struct ks_key *k)
{
	uint8_t rec[KEY_REC];

	memset(k, 0, sizeof(*k));
	if (read_flash(ks, off, rec, sizeof(rec)) != KS_OK)
		return KS_EIO;
	if (!live(rec[0]) || (rec[0] & RT_MASK) != RT_KEY)
		return KS_ECORRUPT;
	return parse_key_record(ks, off, rec, k);
}

/* ---- 7a. the key index (sorted array) --------------------------------- */

/* First index position whose id >= id. */
static uint32_t index_lower(const struct keystore *ks, uint32_t id)
{
	uint32_t lo = 0, hi = ks->n_keys;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ks->keys[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct ks_index_entry *index_find(struct keystore *ks, uint32_t id)
{
	uint32_t i = index_lower(ks, id);

	return i < ks->n_keys && ks->keys[i].id == id ? &ks->keys[i] : NULL;
}

static int index_insert(struct keystore *ks, uint32_t id, uint32_t off)
{
	uint32_t i = index_lower(ks, id);

	if (ks->n_keys == ks->cap_keys) {
		uint32_t cap = ks->cap_keys ? ks->cap_keys * 2 : 1024;
		struct ks_index_entry *n = realloc(ks->keys, cap * sizeof(*n));

		if (!n)
			return KS_EIO;
		ks->keys = n;
		ks->cap_keys = cap;
	}
	memmove(&ks->keys[i + 1], &ks->keys[i], (ks->n_keys - i) * sizeof(*ks->keys));
	ks->keys[i].id = id;
	ks->keys[i].off = off;
	ks->n_keys++;
	return KS_OK;
}

static void index_remove(struct keystore *ks, struct ks_index_entry *e)
{
	uint32_t i = (uint32_t)(e - ks->keys);

	memmove(&ks->keys[i], &ks->keys[i + 1], (ks->n_keys - i - 1) * sizeof(*ks->keys));
	ks->n_keys--;
}

/* ---- 4. compaction and wear levelling -------------------------------- */

/* Copy one live record from off to the head, re-encrypting key records
 * for their new place, and point the index or the meta table at it. */
static int copy_record(struct keystore *ks, uint32_t off, uint32_t len)
{
	uint8_t rec[META_REC_MAX];
	struct ks_key k;
	uint32_t to;
	int rc;

	if (read_flash(ks, off, rec, len) != KS_OK)
		return KS_EIO;
	if ((rec[0] & RT_MASK) == RT_META) {
		rec[0] |= RB_UNCOMMITTED;
		rc = append_record(ks, rec, len, &to);
		if (rc == KS_OK && ks->meta_off[rec[1]] == off)
			ks->meta_off[rec[1]] = to;
		return rc;
	}
	rc = parse_key_record(ks, off, rec, &k);
	if (rc == KS_OK) {
		struct ks_index_entry *e = index_find(ks, k.id);
		struct ks_sector *h = &ks->sec[ks->head];

		rc = build_key_record(ks, &k, h->base + h->wp, rec);
		if (rc == KS_OK)
			rc = append_record(ks, rec, KEY_REC, &to);
		if (rc == KS_OK && e && e->off == off)
			e->off = to;
	}
	fw_wipe(&k, sizeof(k));
	fw_wipe(rec, sizeof(rec));
	return rc;
}

/* Compaction writes into the head and, once it is full, into fresh
 * sectors: reserve included, as that is what the reserve is for. */
static int gc_room(struct keystore *ks, uint32_t len)
{
	int s;

	if (ks->head >= 0 && head_free(ks) >= len)
		return KS_OK;
	s = pick_free(ks, len);
	if (s < 0)
		return KS_EFULL; /* gc_fits said otherwise: cannot happen */
	return open_head(ks, s, 0);
}

static int gc_fits(const struct keystore *ks, int v)
{
	return free_for_records(ks) >= ks->sec[v].live;
}

static int gc_collect(struct keystore *ks, int v)
{
	struct ks_sector *c = &ks->sec[v];
	uint32_t pos;
	int rc;

	if (!gc_fits(ks, v))
		return KS_EFULL;
	/* The records now exist twice until the erase: recovery keeps the
	 * copy with the higher (seq, offset), the one in the head. */
	for (pos = HDR_SIZE; pos < c->wp;) {
		uint8_t h;
		uint32_t len;

		if (read_flash(ks, c->base + pos, &h, 1) != KS_OK)
			return KS_EIO;
		len = record_size(h);
		if (h == 0xff || len == 0)
			break;
		if (live(h)) {
			rc = gc_room(ks, len);
			if (rc == KS_OK)
				rc = copy_record(ks, c->base + pos, len);
			if (rc != KS_OK)
				return rc;
		}
		pos += len;
	}
	return erase_to_free(ks, v);
}

/* Without the master key, key records cannot be re-encrypted: only
 * sectors without live keys can be compacted then. */
static int may_collect(const struct keystore *ks, int s)
{
	const struct ks_sector *c = &ks->sec[s];

	return c->state == SEC_LOG && s != ks->head && (ks->unlocked || c->live_keys == 0) &&
	       gc_fits(ks, s);
}

/* Static wear levelling: when the erase counts spread too far, the least
 * erased sector holding (cold) log data is moved so it can be reused. */
static int wear_victim(const struct keystore *ks)
{
	uint32_t lo = UINT32_MAX, hi = 0;
	int victim = -1;

	for (int s = 0; s < FLASH_SECTORS; s++) {
		const struct ks_sector *c = &ks->sec[s];

		if (c->erases > hi)
			hi = c->erases;
		if (c->erases < lo)
			lo = c->erases;
	}
	if (hi - lo <= WEAR_SPREAD)
		return -1;
	for (int s = 0; s < FLASH_SECTORS; s++)
		if (may_collect(ks, s) && ks->sec[s].erases == lo)
			victim = s;
	return victim;
}

/* The sector with the largest share of garbage (ties: the least erased):
 * a share, not bytes, or the small sectors would never be erased. */
static int greedy_victim(const struct keystore *ks)
{
	uint64_t best_gain = 0, best_size = 1;
	int victim = -1;

	for (int s = 0; s < FLASH_SECTORS; s++) {
		const struct ks_sector *c = &ks->sec[s];
		uint64_t gain, lhs, rhs;

		if (!may_collect(ks, s))
			continue;
		gain = payload(c) - c->live;
		if (gain < GC_MIN_GAIN)
			continue;
		lhs = gain * best_size;
		rhs = best_gain * payload(c);
		if (victim < 0 || lhs > rhs || (lhs == rhs && c->erases < ks->sec[victim].erases)) {
			best_gain = gain;
			best_size = payload(c);
			victim = s;
		}
	}
	return victim;
}

static int gc_once(struct keystore *ks, int *wear_done)
{
	int v = -1;

	if (!*wear_done) {
		v = wear_victim(ks);
		*wear_done = v >= 0;
	}
	if (v < 0)
		v = greedy_victim(ks);
	if (v < 0)
		return KS_EFULL;
	return gc_collect(ks, v);
}

/* Make the head able to take len more bytes, opening new heads and
 * compacting as needed, leaving RESERVE free bytes for compaction. */
static int ensure_room(struct keystore *ks, uint32_t len)
{
	int wear_done = 0;

	for (int round = 0; round < 3 * FLASH_SECTORS; round++) {
		int s;

		if (free_total(ks) >= RESERVE + len) {
			if (ks->head >= 0 && head_free(ks) >= len)
				return KS_OK;
			s = pick_free(ks, len);
			if (s >= 0) {
				if (open_head(ks, s, 0) != KS_OK)
					return KS_EIO;
				continue;
			}
		}
		s = gc_once(ks, &wear_done);
		if (s != KS_OK)
			return s;
	}
	return KS_EFULL;
}

/* ---- 5. recovery scan -------------------------------------------------- */

static int all_ff(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0xff)
			return 0;
	return 1;
}

/* Classify sector s from its bytes (img: the whole sector). */
static void classify(struct ks_sector *c, int s, const uint8_t *img, int *erases_known)
{
	uint32_t seq_field = get_le(img + HDR_SEQ_AT, 4);

	c->state = SEC_DIRTY;
	c->blank = 0;
	c->seq = SEQ_NONE;
	c->wp = HDR_SIZE;
	*erases_known = 0;
	if (memcmp(img, HDR_MAGIC, 4) != 0 ||
	    get_le(img + HDR_ECHK_AT, 2) != check16(img, HDR_ECHK_AT, HDR_SEED + (uint32_t)s)) {
		c->blank = all_ff(img, c->size) != 0;
		return;
	}
	*erases_known = 1;
	c->erases = get_le(img + 4, 4);
	if (all_ff(img + HDR_SEQ_AT, HDR_SEQ_LEN)) {
		if (all_ff(img + HDR_SIZE, payload(c)))
			c->state = SEC_FREE;
		return;
	}
	if (get_le(img + HDR_SEQ_AT + 4, 2) != check16(img, HDR_SEQ_AT + 4, HDR_SEED + (uint32_t)s))
		return; /* torn while the log opened it: nothing was written after */
	c->state = SEC_LOG;
	c->seq = seq_field; /* barrier bit kept until resolve_barrier */
}

/* Order of a record in the log's history. */
static uint64_t log_order(const struct keystore *ks, uint32_t off)
{
	const struct ks_sector *c = &ks->sec[sector_of(ks, off)];

	return ((uint64_t)c->seq << 32) | (off - c->base);
}

static int check_meta(const uint8_t *r, uint32_t size)
{
	uint32_t len = r[2];

	if (len > KS_META_MAX || meta_size(len) != size)
		return KS_ECORRUPT;
	if (get_le(r + 3 + len, 4) != XXH32(r + 1, 2 + len, META_SEED))
		return KS_ECORRUPT;
	return KS_OK;
}

/* Recovery work found by the scan, done once the whole flash is read. */
struct fixups {
	uint32_t *off;
	uint8_t *what; /* 'm': kill meta, 'z': zero key */
	size_t n, cap;
};

static int fix_add(struct fixups *f, uint32_t off, uint8_t what)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		uint32_t *o = realloc(f->off, cap * sizeof(*o));
		uint8_t *w;

		if (!o)
			return KS_EIO;
		f->off = o;
		w = realloc(f->what, cap);
		if (!w)
			return KS_EIO;
		f->what = w;
		f->cap = cap;
	}
	f->off[f->n] = off;
	f->what[f->n++] = what;
	return KS_OK;
}

/* A meta record: keep the newest copy of each tag, kill older ones. */
static int scan_meta(struct keystore *ks, uint32_t off, const uint8_t *r, uint32_t size,
		     struct fixups *fx)
{
	uint32_t *cur = &ks->meta_off[r[1]];

	if (check_meta(r, size) != KS_OK)
		return KS_ECORRUPT;
	ks->sec[sector_of(ks, off)].live += size;
	if (*cur == NO_OFF) {
		*cur = off;
		return KS_OK;
	}
	if (log_order(ks, *cur) < log_order(ks, off)) {
		uint32_t older = *cur;

		*cur = off;
		return fix_add(fx, older, 'm');
	}
	return fix_add(fx, off, 'm');
}

static int scan_record(struct keystore *ks, uint32_t off, const uint8_t *r, uint32_t size,
		       struct fixups *fx)
{
	struct ks_sector *c = &ks->sec[sector_of(ks, off)];

	if ((r[0] & RT_MASK) == RT_META)
		return live(r[0]) ? scan_meta(ks, off, r, size, fx) : KS_OK;
	if (live(r[0])) {
		c->live += KEY_REC;
		c->live_keys++;
		return KS_OK;
	}
	/* Dead or torn key record: make sure no ciphertext is left. */
	if (r[0] != KEY_ZEROED)
		return fix_add(fx, off, 'z');
	for (uint32_t i = 1; i < KEY_REC; i++)
		if (r[i] != 0)
			return fix_add(fx, off, 'z');
	return KS_OK;
}

static int scan_sector(struct keystore *ks, int s, const uint8_t *img, struct fixups *fx)
{
	struct ks_sector *c = &ks->sec[s];
	uint32_t pos = HDR_SIZE;

	c->live = c->live_keys = 0;
	while (pos < c->size && img[pos] != 0xff) {
		uint32_t size = record_size(img[pos]);

		if (size == 0 || size > c->size - pos)
			return KS_ECORRUPT;
		int rc = scan_record(ks, c->base + pos, img + pos, size, fx);

		if (rc != KS_OK)
			return rc;
		pos += size;
	}
	if (!all_ff(img + pos, c->size - pos))
		return KS_ECORRUPT; /* bytes after the log's end: no valid history */
	c->wp = pos;
	return KS_OK;
}

/* ks_wipe marks its new head with the barrier bit: LOG sectors older than
 * the newest barrier belong to the wiped store and are void. */
static void resolve_barrier(struct keystore *ks)
{
	uint32_t barrier = 0;

	for (int s = 0; s < FLASH_SECTORS; s++) {
		struct ks_sector *c = &ks->sec[s];

		if (c->state == SEC_LOG && (c->seq & SEQ_BARRIER) && (c->seq & SEQ_MASK) > barrier)
			barrier = c->seq & SEQ_MASK;
	}
	for (int s = 0; s < FLASH_SECTORS; s++) {
		struct ks_sector *c = &ks->sec[s];

		if (c->state != SEC_LOG)
			continue;
		c->seq &= SEQ_MASK;
		if (c->seq < barrier)
			c->state = SEC_DIRTY;
	}
}

/* Read every header; erase counts lost to a cut mid-erase get the highest
 * known count (the IV's uniqueness rests on seq, not on this). */
static int scan_headers(struct keystore *ks, uint8_t *img)
{
	int known[FLASH_SECTORS];
	uint32_t max_erases = 0, max_seq = 0;
	int any_seq = 0;

	for (int s = 0; s < FLASH_SECTORS; s++) {
		struct ks_sector *c = &ks->sec[s];

		c->base = flash_sector_offset((unsigned)s);
		c->size = flash_sector_size((unsigned)s);
		c->erases = 0;
		if (read_flash(ks, c->base, img, c->size) != KS_OK)
			return KS_EIO;
		classify(c, s, img, &known[s]);
		if (known[s] && c->erases > max_erases)
			max_erases = c->erases;
	}
	resolve_barrier(ks);
	ks->head = -1;
	for (int s = 0; s < FLASH_SECTORS; s++) {
		struct ks_sector *c = &ks->sec[s];

		if (!known[s])
			c->erases = max_erases;
		if (c->state != SEC_LOG)
			continue;
		if (!any_seq || c->seq > max_seq) {
			max_seq = c->seq;
			ks->head = s;
		}
		any_seq = 1;
	}
	for (int s = 0; s < FLASH_SECTORS; s++) /* two sectors opened with one number */
		for (int t = s + 1; t < FLASH_SECTORS; t++)
			if (ks->sec[s].state == SEC_LOG && ks->sec[t].state == SEC_LOG &&
			    ks->sec[s].seq == ks->sec[t].seq)
				return KS_ECORRUPT;
	ks->next_seq = any_seq ? max_seq + 1 : 1;
	return KS_OK;
}

static int apply_fixups(struct keystore *ks, const struct fixups *fx)
{
	for (size_t i = 0; i < fx->n; i++) {
		int rc = fx->what[i] == 'm' ? kill_meta(ks, fx->off[i]) : zero_key(ks, fx->off[i]);

		if (rc != KS_OK)
			return rc;
	}
	return KS_OK;
}

/* Void sectors (older than a wipe's barrier) are erased now, before the
 * barrier sector itself could ever be compacted away. */
static int erase_void(struct keystore *ks, const uint8_t *void_map)
{
	for (int s = 0; s < FLASH_SECTORS; s++)
		if (void_map[s] && erase_to_free(ks, s) != KS_OK)
			return KS_EIO;
	return KS_OK;
}

static int recover(struct keystore *ks)
{
	uint8_t *img = malloc(BIG_SECTOR);
	uint8_t void_map[FLASH_SECTORS] = { 0 };
	struct fixups fx = { 0 };
	int rc;

	if (!img)
		return KS_EIO;
	for (int t = 0; t < 256; t++)
		ks->meta_off[t] = NO_OFF;
	rc = scan_headers(ks, img);
	for (int s = 0; rc == KS_OK && s < FLASH_SECTORS; s++) {
		struct ks_sector *c = &ks->sec[s];

		if (c->state == SEC_DIRTY && !c->blank && c->seq != SEQ_NONE)
			void_map[s] = 1;
		if (c->state != SEC_LOG)
			continue;
		rc = read_flash(ks, c->base, img, c->size);
		if (rc == KS_OK)
			rc = scan_sector(ks, s, img, &fx);
	}
	if (rc == KS_OK)
		rc = apply_fixups(ks, &fx);
	if (rc == KS_OK)
		rc = erase_void(ks, void_map);
	if (rc == KS_OK && flash_sync(ks->flash) != FLASH_OK)
		rc = KS_EIO;
	free(fx.off);
	free(fx.what);
	fw_wipe(img, BIG_SECTOR);
	free(img);
	return rc;
}

int ks_open_flash(struct keystore **out, struct flash *f)
{
	struct keystore *ks;
	int rc;

	*out = NULL;
	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return KS_EIO;
	ks->flash = f;
	rc = recover(ks);
	if (rc != KS_OK) {
		ks_close(ks);
		return rc;
	}
	*out = ks;
	return KS_OK;
}

int ks_open(struct keystore **out, const char *path, int create)
{
	struct flash *f;
	int rc;

	*out = NULL;
	if (flash_open(&f, path, create) != FLASH_OK)
		return KS_EIO;
	rc = ks_open_flash(out, f);
	if (rc != KS_OK) {
		flash_close(f);
		return rc;
	}
	(*out)->own_flash = 1;
	return KS_OK;
}

void ks_close(struct keystore *ks)
{
	if (!ks)
		return;
	ks_lock(ks);
	if (ks->own_flash)
		flash_close(ks->flash);
	fw_wipe(ks, sizeof(*ks));
	free(ks);
}

/* Every change ends here: durable on success, a failed store otherwise. */
static int finish(struct keystore *ks, int rc)
{
	if (rc == KS_OK && flash_sync(ks->flash) != FLASH_OK)
		rc = io_fail(ks, FLASH_EIO);
	return rc;
}

/* ---- 6. meta records --------------------------------------------------- */

int ks_meta_get(struct keystore *ks, uint8_t tag, void *buf, size_t cap, size_t *len)
{
	uint8_t r[META_REC_MAX];
	uint32_t off = ks->meta_off[tag], size;

	*len = 0;
	if (off == NO_OFF)
		return KS_ENOENT;
	if (read_flash(ks, off, r, 1) != KS_OK)
		return KS_EIO;
	size = record_size(r[0]);
	if (size == 0 || (r[0] & RT_MASK) != RT_META || read_flash(ks, off, r, size) != KS_OK ||
	    check_meta(r, size) != KS_OK)
		return KS_ECORRUPT;
	*len = r[2];
	if (r[2] > cap)
		return KS_EINVAL;
	memcpy(buf, r + 3, r[2]);
	return KS_OK;
}

static int meta_put(struct keystore *ks, uint8_t tag, const void *buf, size_t len)
{
	uint8_t r[META_REC_MAX];
	uint32_t size = meta_size(len), old, at;
	int rc;

	rc = ensure_room(ks, size);
	if (rc != KS_OK)
		return rc;
	memset(r, 0xff, sizeof(r));
	r[0] = (uint8_t)(RT_META | RB_UNCOMMITTED | RB_LIVE | (size / META_UNIT));
	r[1] = tag;
	r[2] = (uint8_t)len;
	if (len)
		memcpy(r + 3, buf, len);
	put_le(r + 3 + len, XXH32(r + 1, 2 + len, META_SEED), 4);
	old = ks->meta_off[tag]; /* read after ensure_room: compaction moves it */
	rc = append_record(ks, r, size, &at);
	if (rc != KS_OK)
		return rc;
	ks->meta_off[tag] = at;
	return old == NO_OFF ? KS_OK : kill_meta(ks, old);
}

int ks_meta_put(struct keystore *ks, uint8_t tag, const void *buf, size_t len)
{
	if (ks->failed)
		return KS_EIO;
	if (tag == KS_TAG_VERIFIER || len > KS_META_MAX || (len && !buf))
		return KS_EINVAL;
	return finish(ks, meta_put(ks, tag, buf, len));
}

int ks_meta_delete(struct keystore *ks, uint8_t tag)
{
	uint32_t off = ks->meta_off[tag];

	if (ks->failed)
		return KS_EIO;
	if (tag == KS_TAG_VERIFIER)
		return KS_EINVAL;
	if (off == NO_OFF)
		return KS_ENOENT;
	ks->meta_off[tag] = NO_OFF;
	return finish(ks, kill_meta(ks, off));
}

/* ---- 7. unlock and key records ---------------------------------------- */

struct found_key {
	uint32_t id, off;
	uint64_t order;
};

static int cmp_found(const void *a, const void *b)
{
	const struct found_key *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Decrypt every live key record of sector s into found[]. */
static int collect_sector_keys(struct keystore *ks, int s, uint8_t *img,
			       struct found_key *found, uint32_t cap, uint32_t *n)
{
	struct ks_sector *c = &ks->sec[s];
	struct ks_key k;
	int rc = KS_OK;

	if (read_flash(ks, c->base, img, c->wp) != KS_OK)
		return KS_EIO;
	for (uint32_t pos = HDR_SIZE; rc == KS_OK && pos < c->wp;) {
		uint32_t size = record_size(img[pos]);

		if (size == 0)
			return KS_ECORRUPT;
		if ((img[pos] & RT_MASK) == RT_KEY && live(img[pos])) {
			if (*n == cap)
				return KS_ECORRUPT; /* more than the scan counted */
			rc = parse_key_record(ks, c->base + pos, img + pos, &k);
			found[*n].id = k.id;
			found[*n].off = c->base + pos;
			found[*n].order = log_order(ks, c->base + pos);
			(*n)++;
		}
		pos += size;
	}
	fw_wipe(&k, sizeof(k));
	return rc;
}

/* Build the index; of two live copies of one ID the later one wins and
 * the earlier one is zeroized (a cut between a replace's or a
 * compaction's two steps leaves both). */
static int build_index(struct keystore *ks)
{
	uint32_t total = 0, n = 0;
	struct found_key *found;
	uint8_t *img;
	int rc = KS_OK;

	for (int s = 0; s < FLASH_SECTORS; s++)
		if (ks->sec[s].state == SEC_LOG)
			total += ks->sec[s].live_keys;
	found = malloc((total ? total : 1) * sizeof(*found));
	img = malloc(BIG_SECTOR);
	if (!found || !img) {
		rc = KS_EIO;
		goto out;
	}
	for (int s = 0; rc == KS_OK && s < FLASH_SECTORS; s++)
		if (ks->sec[s].state == SEC_LOG)
			rc = collect_sector_keys(ks, s, img, found, total, &n);
	if (rc != KS_OK)
		goto out;
	qsort(found, n, sizeof(*found), cmp_found);
	for (uint32_t i = 0; rc == KS_OK && i < n; i++) {
		if (i + 1 < n && found[i + 1].id == found[i].id)
			rc = kill_key(ks, found[i].off);
		else
			rc = index_insert(ks, found[i].id, found[i].off);
	}
out:
	if (img)
		fw_wipe(img, BIG_SECTOR);
	free(img);
	free(found);
	return rc;
}

static int derive_keys(const uint8_t master[32], uint8_t rec_key[32], uint8_t verifier[VERIFIER_LEN])
{
	if (fw_hkdf_sha256(NULL, 0, master, 32, (const uint8_t *)info_records,
			   sizeof(info_records) - 1, rec_key, 32) != 0)
		return KS_EIO;
	if (fw_hkdf_sha256(NULL, 0, master, 32, (const uint8_t *)info_verifier,
			   sizeof(info_verifier) - 1, verifier, VERIFIER_LEN) != 0)
		return KS_EIO;
	return KS_OK;
}

static int check_verifier(struct keystore *ks, const uint8_t verifier[VERIFIER_LEN], int *present)
{
	uint8_t stored[KS_META_MAX];
	size_t len;
	int rc = ks_meta_get(ks, KS_TAG_VERIFIER, stored, sizeof(stored), &len);

	*present = rc == KS_OK;
	if (rc == KS_ENOENT)
		return KS_OK;
	if (rc != KS_OK)
		return rc;
	if (len != VERIFIER_LEN || fw_memeq_ct(stored, verifier, VERIFIER_LEN) != 0)
		return KS_EKEY;
	return KS_OK;
}

int ks_unlock(struct keystore *ks, const uint8_t master[32])
{
	uint8_t verifier[VERIFIER_LEN];
	int present = 0, rc;

	ks_lock(ks);
	if (ks->failed)
		return KS_EIO;
	rc = derive_keys(master, ks->rec_key, verifier);
	if (rc == KS_OK)
		rc = check_verifier(ks, verifier, &present);
	if (rc == KS_OK)
		rc = build_index(ks);
	if (rc == KS_OK) {
		ks->unlocked = 1;
		if (!present)
			rc = meta_put(ks, KS_TAG_VERIFIER, verifier, VERIFIER_LEN);
		rc = finish(ks, rc);
	}
	fw_wipe(verifier, sizeof(verifier));
	if (rc != KS_OK)
		ks_lock(ks);
	return rc;
}

void ks_lock(struct keystore *ks)
{
	fw_wipe(ks->rec_key, sizeof(ks->rec_key));
	if (ks->keys)
		fw_wipe(ks->keys, ks->cap_keys * sizeof(*ks->keys));
	free(ks->keys);
	ks->keys = NULL;
	ks->n_keys = ks->cap_keys = 0;
	ks->unlocked = 0;
}

int ks_unlocked(const struct keystore *ks)
{
	return ks->unlocked;
}

int ks_key_get(struct keystore *ks, uint32_t id, struct ks_key *out)
{
	struct ks_index_entry *e;

	memset(out, 0, sizeof(*out));
	if (!ks->unlocked)
		return KS_ELOCKED;
	e = index_find(ks, id);
	if (!e)
		return KS_ENOENT;
	return read_key(ks, e->off, out);
}

static int valid_key(const struct ks_key *k)
{
	return k->alg <= RB_NIBBLE && alg_key_len(k->alg) != 0 && k->len == alg_key_len(k->alg) &&
	       k->not_before <= 0xffffffu && k->not_after <= 0xffffffu;
}

static int key_put(struct keystore *ks, const struct ks_key *k, int replace)
{
	uint8_t rec[KEY_REC];
	struct ks_index_entry *e = index_find(ks, k->id);
	struct ks_sector *h;
	uint32_t at;
	int rc;

	if (e && !replace)
		return KS_EEXIST;
	rc = ensure_room(ks, KEY_REC);
	if (rc != KS_OK)
		return rc;
	h = &ks->sec[ks->head];
	rc = build_key_record(ks, k, h->base + h->wp, rec);
	if (rc == KS_OK)
		rc = append_record(ks, rec, KEY_REC, &at);
	fw_wipe(rec, sizeof(rec));
	if (rc != KS_OK)
		return rc;
	e = index_find(ks, k->id); /* compaction may have moved the old copy */
	if (!e)
		return index_insert(ks, k->id, at);
	rc = kill_key(ks, e->off);
	e->off = at;
	return rc;
}

int ks_key_put(struct keystore *ks, const struct ks_key *k, int replace)
{
	if (!ks->unlocked)
		return KS_ELOCKED;
	if (ks->failed)
		return KS_EIO;
	if (!valid_key(k))
		return KS_EINVAL;
	return finish(ks, key_put(ks, k, replace));
}

int ks_key_delete(struct keystore *ks, uint32_t id)
{
	struct ks_index_entry *e;
	uint32_t off;

	if (!ks->unlocked)
		return KS_ELOCKED;
	if (ks->failed)
		return KS_EIO;
	e = index_find(ks, id);
	if (!e)
		return KS_ENOENT;
	off = e->off;
	index_remove(ks, e);
	return finish(ks, kill_key(ks, off));
}

int ks_key_next(struct keystore *ks, uint32_t from, struct ks_key *out)
{
	uint32_t i;

	memset(out, 0, sizeof(*out));
	if (!ks->unlocked)
		return KS_ELOCKED;
	i = index_lower(ks, from);
	if (i >= ks->n_keys)
		return KS_ENOENT;
	return read_key(ks, ks->keys[i].off, out);
}

uint32_t ks_key_count(const struct keystore *ks)
{
	return ks->unlocked ? ks->n_keys : 0;
}

/* ---- 8. wipe, wear, room, errors -------------------------------------- */

uint32_t ks_key_room(const struct keystore *ks)
{
	uint32_t bytes = free_total(ks);

	bytes = bytes > RESERVE ? bytes - RESERVE : 0;
	for (int s = 0; s < FLASH_SECTORS; s++) {
		const struct ks_sector *c = &ks->sec[s];

		if (s != ks->head && c->state == SEC_LOG && payload(c) - c->live >= GC_MIN_GAIN)
			bytes += payload(c) - c->live;
	}
	return bytes / KEY_REC;
}

int ks_wear(const struct keystore *ks, uint32_t *min_erases, uint32_t *max_erases)
{
	*min_erases = UINT32_MAX;
	*max_erases = 0;
	for (int s = 0; s < FLASH_SECTORS; s++) {
		if (ks->sec[s].erases < *min_erases)
			*min_erases = ks->sec[s].erases;
		if (ks->sec[s].erases > *max_erases)
			*max_erases = ks->sec[s].erases;
	}
	return KS_OK;
}

struct kept_meta {
	uint8_t tag, len;
	uint8_t data[KS_META_MAX];
};

static int keep_tag(uint8_t tag, const uint8_t *keep, size_t n_keep)
{
	if (tag == KS_TAG_VERIFIER) /* bound to a master key a reset replaces */
		return 0;
	for (size_t i = 0; i < n_keep; i++)
		if (keep[i] == tag)
			return 1;
	return 0;
}

/* The sector the wiped store starts in: a free one, else one made free
 * (its records die with the wipe anyway; the kept ones are in RAM). */
static int wipe_target(struct keystore *ks, uint32_t need)
{
	int s = pick_free(ks, need);

	if (s >= 0)
		return s;
	for (s = FLASH_SECTORS - 1; s >= 0; s--)
		if (s != ks->head && payload(&ks->sec[s]) >= need)
			return erase_to_free(ks, s) == KS_OK ? s : -1;
	return -1;
}

static int wipe(struct keystore *ks, struct kept_meta *kept, unsigned n_kept)
{
	uint32_t at, need = 0;
	int target;

	for (unsigned i = 0; i < n_kept; i++)
		need += meta_size(kept[i].len);
	target = wipe_target(ks, need);

	if (target < 0 || open_head(ks, target, SEQ_BARRIER) != KS_OK)
		return KS_EIO;
	/* From here the barrier voids every older sector: the wipe is done
	 * as far as recovery is concerned; the erases below make it true. */
	for (int t = 0; t < 256; t++)
		ks->meta_off[t] = NO_OFF;
	for (unsigned i = 0; i < n_kept; i++) {
		uint8_t r[META_REC_MAX];
		uint32_t size = meta_size(kept[i].len);

		memset(r, 0xff, sizeof(r));
		r[0] = (uint8_t)(RT_META | RB_UNCOMMITTED | RB_LIVE | (size / META_UNIT));
		r[1] = kept[i].tag;
		r[2] = kept[i].len;
		memcpy(r + 3, kept[i].data, kept[i].len);
		put_le(r + 3 + kept[i].len, XXH32(r + 1, 2 + kept[i].len, META_SEED), 4);
		if (append_record(ks, r, size, &at) != KS_OK)
			return KS_EIO;
		ks->meta_off[kept[i].tag] = at;
	}
	for (int s = 0; s < FLASH_SECTORS; s++) {
		struct ks_sector *c = &ks->sec[s];

		if (s != target && c->state != SEC_FREE && erase_to_free(ks, s) != KS_OK)
			return KS_EIO;
	}
	return KS_OK;
}

int ks_wipe(struct keystore *ks, const uint8_t *keep, size_t n_keep)
{
	struct kept_meta *kept = calloc(256, sizeof(*kept));
	unsigned n_kept = 0;
	int rc = KS_OK;

	ks_lock(ks);
	if (!kept)
		return KS_EIO;
	if (ks->failed)
		rc = KS_EIO;
	for (int t = 0; rc == KS_OK && t < 256; t++) {
		size_t len;

		if (ks->meta_off[t] == NO_OFF || !keep_tag((uint8_t)t, keep, n_keep))
			continue;
		rc = ks_meta_get(ks, (uint8_t)t, kept[n_kept].data, KS_META_MAX, &len);
		kept[n_kept].tag = (uint8_t)t;
		kept[n_kept++].len = (uint8_t)len;
	}
	if (rc == KS_OK)
		rc = finish(ks, wipe(ks, kept, n_kept));
	fw_wipe(kept, 256 * sizeof(*kept));
	free(kept);
	return rc;
}

const char *ks_strerror(int err)
{
	switch (err) {
	case KS_OK: return "ok";
	case KS_ENOENT: return "no such key or meta record";
	case KS_EEXIST: return "key ID already in use";
	case KS_EFULL: return "key store full";
	case KS_EIO: return "flash I/O failed";
	case KS_ECORRUPT: return "key store corrupt";
	case KS_ELOCKED: return "key store locked";
	case KS_EINVAL: return "invalid argument";
	case KS_EKEY: return "wrong master key for this key store";
	default: return "unknown key store error";
	}
}
