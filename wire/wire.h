/*
 * wire.h - the cube's wire protocol: the one definition shared by the host
 * driver (cube/) and the device (firmware/).  Nothing else crosses the
 * boundary; the device trusts no byte described here.
 *
 * Every message, in both directions and on every transport (UNIX socket to
 * the emulator, USB bulk endpoints to a board), is one frame:
 *
 *   off  size  field
 *   0    4     magic      WIRE_MAGIC, little-endian
 *   4    1     version    WIRE_VERSION
 *   5    1     flags      WIRE_F_*
 *   6    2     op         WIRE_OP_* (a response repeats its request's op)
 *   8    4     status     0 in requests; WIRE_ST_* in responses
 *   12   4     body_len   <= WIRE_MAX_BODY, checked before anything else
 *   16   8     seq        per-direction counter of the session (see below)
 *   24   n     body       body_len bytes, layout per op (below)
 *   24+n 16    tag        present iff flags & WIRE_F_MAC
 *
 * All integers are little-endian.  Strings do not exist on the wire; every
 * variable field is a u32 length followed by that many bytes ("lenbytes").
 * A body with trailing bytes after its last field is malformed.
 *
 * Sessions.  A connection starts unauthenticated: only HELLO, LOGIN and
 * FACTORY_INIT are accepted.  LOGIN carries an ephemeral X25519 public key
 * of the host; both sides compute X25519(eph, device key) and derive with
 * HKDF-SHA256 (salt = "secube-session-v1", ikm = shared secret,
 * info = eph_pub || device_pub) 96 bytes:
 *   [0,32)  pin_key   AES-256-GCM key sealing the PIN inside LOGIN
 *   [32,64) mac_h2d   HMAC-SHA256 key for host-to-device frames
 *   [64,96) mac_d2h   HMAC-SHA256 key for device-to-host frames
 * The LOGIN response is the first MACed frame.  From then on every frame
 * in both directions carries WIRE_F_MAC and
 *   tag = HMAC-SHA256(mac_key, header || body)[0..16)
 * and seq must be exactly one more than the previous frame's seq in the
 * same direction (LOGIN request has seq 0, its response seq 0, the next
 * request seq 1...).  A bad tag or seq ends the session: the device
 * answers WIRE_ST_AUTH once, unMACed, and forgets the session keys.
 * Secrets that must not be seen on the wire (new PINs) are sealed with
 * AES-256-GCM under pin_key with nonce = seq (8 bytes LE) || op (2) || 00 00.
 *
 * Bulk data.  SEAL and OPEN move up to WIRE_MAX_BULK bytes.  On the socket
 * transport the host may hand the device a shared memory region (a memfd
 * passed with SCM_RIGHTS on the HELLO request, flag WIRE_F_SHM on HELLO);
 * a SEAL/OPEN request with WIRE_F_SHM then carries offsets into that region
 * instead of inline data.  The device reads each input byte once and
 * validates every offset and length against the region's size.
 */
#ifndef SEKEYFS_WIRE_H
#define SEKEYFS_WIRE_H

#include <stdint.h>

#define WIRE_MAGIC        0x42554353u /* "SCUB" */
#define WIRE_VERSION      1
#define WIRE_HEADER_LEN   24
#define WIRE_TAG_LEN      16
#define WIRE_MAX_BULK     (1u << 20)            /* sector data per request */
/* What one SEAL/OPEN may carry in all: a 1 MiB run of data sectors plus
 * the same file's header and padding pseudo-sectors, so a 1 MiB append is
 * one request. */
#define WIRE_MAX_BULK_REQ (WIRE_MAX_BULK + 8192u)
#define WIRE_MAX_SECTORS  1024                  /* sectors per SEAL/OPEN */
#define WIRE_MAX_BODY     (WIRE_MAX_BULK + 64u * 1024u)
#define WIRE_SHM_SIZE     (2u * (WIRE_MAX_BULK + 64u * 1024u))

/* flags */
#define WIRE_F_MAC  0x01  /* a 16-byte tag follows the body */
#define WIRE_F_SHM  0x02  /* bulk data lives in the shared region */

/* Sizes of fixed things. */
#define WIRE_SERIAL_LEN   16
#define WIRE_PUBKEY_LEN   32
#define WIRE_FILE_ID_LEN  16
#define WIRE_NONCE_LEN    12
#define WIRE_SECTOR_TAG   16
#define WIRE_PIN_MAX      64
#define WIRE_PIN_MIN      4
#define WIRE_SIV_MAX      1024  /* plaintext bytes of one SIV operation */
#define WIRE_SIV_BATCH_MAX 256  /* items of one SIV_DECRYPT_BATCH */
#define WIRE_DATA_MAX     65536 /* HMAC / DIGEST input */
#define WIRE_RANDOM_MAX   4096
#define WIRE_LIST_MAX     512   /* key entries in one KEY_LIST reply */
#define WIRE_PASSPHRASE_MIN  8    /* PASSPHRASE_DERIVE limits */
#define WIRE_PASSPHRASE_MAX  256
#define WIRE_PBKDF2_SALT_MIN 16
#define WIRE_PBKDF2_SALT_MAX 64
#define WIRE_PBKDF2_ITER_MIN 10000u
#define WIRE_PBKDF2_ITER_MAX 10000000u
#define WIRE_DERIVE_MAX_KEYS 3

/*
 * Per-sector overhead on disk.  Both algorithms store nonce || ct || tag:
 * GCM: 12-byte random nonce, 16-byte GCM tag.
 * CTR+HMAC: 12-byte random nonce (CTR IV = nonce || 00000000), 16 bytes of
 * HMAC-SHA256.
 */
#define WIRE_SECTOR_OVERHEAD (WIRE_NONCE_LEN + WIRE_SECTOR_TAG)

/* Roles for LOGIN and SET_PIN. */
enum wire_role {
	WIRE_ROLE_NONE  = 0,
	WIRE_ROLE_USER  = 1,
	WIRE_ROLE_ADMIN = 2,
};

/*
 * Key algorithms.  The algorithm fixes the key length and which operations
 * make sense; usage flags then say which of those are allowed.
 */
enum wire_alg {
	WIRE_ALG_AES256_GCM     = 1, /* 32-byte key; sectors: AES-256-GCM */
	WIRE_ALG_AES256_CTR_HMAC = 2, /* 32-byte key; sectors: CTR + HMAC-SHA256 */
	WIRE_ALG_AES256_KW      = 3, /* 32-byte key-wrapping key (RFC 5649) */
	WIRE_ALG_HMAC_SHA256    = 4, /* 32-byte MAC key */
	WIRE_ALG_AES128_GCM     = 5, /* 16-byte key; sectors: AES-128-GCM */
	WIRE_ALG_MAX            = 5,
};

/* Key usage flags (u8).  Enforced by the device on every operation. */
#define WIRE_USE_ENCRYPT    0x01 /* SEAL, SIV_ENCRYPT */
#define WIRE_USE_DECRYPT    0x02 /* OPEN, SIV_DECRYPT */
#define WIRE_USE_WRAP       0x04 /* wrap another key for export */
#define WIRE_USE_UNWRAP     0x08 /* unwrap an imported key */
#define WIRE_USE_DERIVE     0x10 /* HKDF-derive (reserved for the KMS) */
#define WIRE_USE_MAC        0x20 /* HMAC */
#define WIRE_USE_EXPORTABLE 0x40 /* may leave the device wrapped */
/* A backup key (only PASSPHRASE_DERIVE makes one, AES256_KW, never
 * exportable): KEY_EXPORT under it may wrap any key but another backup key,
 * exportable or not, and KEY_IMPORT under it needs an admin login. */
#define WIRE_USE_BACKUP     0x80
#define WIRE_USE_ALL        0x7f /* the bits KEY_GENERATE may set */
/* KEY_EXPORT flags (optional trailing u8). */
#define WIRE_EXPORT_TOMBSTONE 0x01 /* export a "destroy this ID" blob */
/* A key that can wrap or unwrap can never encrypt or decrypt data. */
#define WIRE_USE_DATA_MASK  (WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT | WIRE_USE_MAC)
#define WIRE_USE_WRAP_MASK  (WIRE_USE_WRAP | WIRE_USE_UNWRAP)

/*
 * Validity windows are minutes since WIRE_EPOCH (2024-01-01T00:00:00Z),
 * 24 bits each (until 2055).  not_before = 0 means "from always",
 * not_after = WIRE_TIME_NEVER means "until always".  A key outside its
 * window cannot encrypt (SEAL, SIV_ENCRYPT, WRAP); it can still decrypt:
 * SEkey's recipient usage period is unlimited.
 */
#define WIRE_EPOCH       1704067200ll
#define WIRE_TIME_NEVER  0xffffffu

/* Device states reported by HELLO. */
enum wire_dev_state {
	WIRE_DEV_BLANK  = 0, /* identity only: FACTORY_INIT sets the PINs */
	WIRE_DEV_READY  = 1,
	WIRE_DEV_LOCKED = 2, /* admin PIN locked: only FACTORY_RESET is left */
};

/*
 * Operations.  Request body / response body.  "perm" is who may call:
 * any = no session needed, user = user or admin session, admin = admin.
 */
enum wire_op {
	/* any.  req: empty (WIRE_F_SHM: a memfd rides along in SCM_RIGHTS)
	 * resp: serial[16] pubkey[32] u32 fw_version u8 state u8 role
	 *       u8 user_tries_left u8 admin_tries_left u32 shm_ok(0/1)
	 *       u32 key_count u32 key_capacity u32 now_minutes */
	WIRE_OP_HELLO = 1,
	/* any (blank device only).  req: u8 kind=0 eph_pub[32]
	 *       sealed(lenbytes: admin_pin_len u8 admin_pin user_pin_len u8 user_pin)
	 *       sealed under pin_key of the LOGIN derivation, nonce zero.
	 *       u8 user_max_tries u8 admin_max_tries (0 = defaults 5 / 10)
	 * resp: empty */
	WIRE_OP_FACTORY_INIT = 2,
	/* any.  req: u8 role eph_pub[32] sealed_pin(lenbytes) (nonce zero)
	 * resp: empty, MACed (status WIRE_ST_PIN with u8 tries_left body,
	 *       or WIRE_ST_LOCKED) */
	WIRE_OP_LOGIN = 3,
	WIRE_OP_LOGOUT = 4,        /* user. req: empty; resp: empty */
	/* user (own role) or admin (either role).
	 * req: u8 role sealed(lenbytes: u8 len pin) ; resp: empty */
	WIRE_OP_SET_PIN = 5,
	WIRE_OP_FACTORY_RESET = 6, /* admin. wipes every key and both PINs */
	/* admin. req: u32 id u8 alg u8 usage u32 not_before u32 not_after
	 * resp: empty.  WIRE_ST_EXISTS if id is taken. */
	WIRE_OP_KEY_GENERATE = 10,
	WIRE_OP_KEY_DESTROY = 11,  /* admin. req: u32 id */
	/* user. req: u32 id ; resp: one key entry (below) */
	WIRE_OP_KEY_INFO = 12,
	/* user. req: u32 first_id u32 max ; resp: u32 n, n key entries in
	 * increasing id order, all >= first_id.  Key entry:
	 * u32 id u8 alg u8 usage u32 not_before u32 not_after */
	WIRE_OP_KEY_LIST = 13,
	/* admin. req: u32 id u8 usage u32 not_before u32 not_after
	 * (usage may only lose bits) */
	WIRE_OP_KEY_SET_ATTRS = 14,
	/* admin. req: u32 wrapping_id u32 id [u8 flags] ; resp: lenbytes blob.
	 * blob = RFC 5649 wrap of (u32 id u8 alg u8 usage u32 nb u32 na key)
	 * under a key with WIRE_USE_WRAP; id must be exportable, unless the
	 * wrapping key has WIRE_USE_BACKUP: then any key but a backup key.
	 * flags (optional, default 0): WIRE_EXPORT_TOMBSTONE makes the blob a
	 * tombstone instead, (u32 id u8 alg=0 u8 usage=0 u32 0 u32 0) with no
	 * key value; id need not exist here (id == wrapping_id is INVALID). */
	WIRE_OP_KEY_EXPORT = 15,
	/* user. req: u32 unwrapping_id lenbytes blob ; resp: u32 id.
	 * Stores (or replaces) the key the blob carries, attributes as wrapped:
	 * a replaced key takes the blob's usage and window.  A tombstone blob
	 * (alg 0) destroys key id instead (already absent: OK), so a user
	 * login loses a key only on the wrapping key's say-so.  The unwrapping
	 * key itself can be neither replaced nor destroyed this way.  Under a
	 * WIRE_USE_BACKUP key: admin only (PERM otherwise). */
	WIRE_OP_KEY_IMPORT = 16,
	/* admin. req: u32 new_id pubkey[32] u8 alg u8 usage lenbytes context
	 * Derives X25519(device, peer) -> HKDF-SHA256(salt "secube-channel-v1",
	 * info = min(pubA,pubB) || max(pubA,pubB) || alg || context) and stores
	 * it, window always, never exportable, as
	 *   alg AES256_KW,  usage a non-empty subset of WRAP|UNWRAP, or
	 *   alg AES256_GCM, usage a non-empty subset of ENCRYPT|DECRYPT;
	 * anything else is INVALID.  Usage is not in info, so both cubes get
	 * the same key whatever usage each side asks for (the admin cube
	 * ENCRYPT / WRAP, the user's cube DECRYPT / UNWRAP).
	 * Legacy body (still accepted): u32 new_id pubkey[32] lenbytes context
	 * = AES256_KW, WRAP|UNWRAP, info without the alg byte. */
	WIRE_OP_CHANNEL_DERIVE = 17,
	/* admin.  req: u32 iterations lenbytes salt lenbytes sealed u8 n
	 *       n x (u32 id u8 alg)
	 * sealed = AES-256-GCM under pin_key (nonce seq || op || 00 00, as
	 * SET_PIN) of the passphrase (WIRE_PASSPHRASE_MIN..MAX bytes); salt
	 * WIRE_PBKDF2_SALT_MIN..MAX bytes; iterations WIRE_PBKDF2_ITER_MIN..MAX;
	 * n 1..3 keys of distinct algs, each stored as id (window always,
	 * never exportable):
	 *   AES256_KW     WRAP|UNWRAP|BACKUP
	 *   AES256_GCM    ENCRYPT|DECRYPT
	 *   HMAC_SHA256   MAC
	 * key = HKDF-SHA256(salt "secube-passphrase-v1",
	 *                   ikm PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32),
	 *                   info u8 alg || u8 usage), 32 bytes.
	 * The same passphrase, salt and iterations give the same keys in any
	 * cube.  All or nothing: WIRE_ST_EXISTS if an id is taken.  resp: empty */
	WIRE_OP_PASSPHRASE_DERIVE = 18,
	/* user. req: u32 key_id u8 alg file_id[16] u32 n
	 *       n x (u64 index u32 len)     len <= 65536, sum <= WIRE_MAX_BULK_REQ
	 *       inline: lenbytes data   |  shm: u32 in_off u32 out_off
	 * resp: inline: lenbytes out    |  shm: empty
	 * out = for each sector: nonce[12] ct[len] tag[16].
	 * The subkey is HKDF-SHA256(key, salt "sefile-v1", info file_id), the
	 * AAD is file_id || u64 index || u32 len. */
	WIRE_OP_SEAL = 20,
	/* user. req as SEAL, lens are plaintext lengths; input is the sealed
	 * form.  resp: u32 n_bad, n_bad x u32 sector position (0-based in the
	 * request), then the plaintext (inline lenbytes or in shm).  A bad
	 * sector's plaintext is zeros. */
	WIRE_OP_OPEN = 21,
	/* user. req: u32 key_id lenbytes ad lenbytes plaintext
	 * resp: lenbytes siv[16] || ct.  AES-SIV (RFC 5297, AES-256: 64-byte
	 * key = HKDF(key, salt "siv-v1", info ad)), AD = ad. */
	WIRE_OP_SIV_ENCRYPT = 22,
	WIRE_OP_SIV_DECRYPT = 23,  /* user. inverse; WIRE_ST_INTEGRITY on a bad tag */
	WIRE_OP_HMAC = 24,         /* user. req: u32 key_id lenbytes data; resp: mac[32] */
	WIRE_OP_RANDOM = 25,       /* user. req: u32 n ; resp: lenbytes */
	WIRE_OP_DIGEST = 26,       /* user. req: lenbytes data ; resp: sha256[32] */
	WIRE_OP_CLOCK_SET = 27,    /* admin. req: u64 unix_seconds ; resp: empty */
	WIRE_OP_SELFTEST = 28,     /* any. resp: u32 n_failed lenbytes report */
	/* user. SIV_DECRYPT of many independent items under one key (a
	 * directory's names in one round trip).
	 * req: u32 key_id u32 n (1..WIRE_SIV_BATCH_MAX)
	 *      n x (lenbytes ad (<= WIRE_DATA_MAX) lenbytes siv||ct (16..WIRE_SIV_MAX+16))
	 * resp: u32 n, n x (u8 status lenbytes plaintext), status WIRE_ST_OK
	 * with the plaintext or WIRE_ST_INTEGRITY with none: an item that
	 * does not authenticate fails alone.  The whole request fails on
	 * n out of range or an item under 16 bytes (INVALID), a length over
	 * its cap or trailing bytes (MALFORMED), and the key checks of
	 * SIV_DECRYPT (NOKEY, USAGE). */
	WIRE_OP_SIV_DECRYPT_BATCH = 29,
	WIRE_OP_MAX = 29,
};

/* Response status.  Never a crash, never a silent close for a bad frame. */
enum wire_status {
	WIRE_ST_OK = 0,
	WIRE_ST_MALFORMED = 1,  /* bad magic/version/length/trailing bytes */
	WIRE_ST_UNKNOWN_OP = 2,
	WIRE_ST_AUTH = 3,       /* bad tag/seq, or no session where one is needed */
	WIRE_ST_PERM = 4,       /* the session's role may not do this */
	WIRE_ST_PIN = 5,        /* wrong PIN; body: u8 tries_left */
	WIRE_ST_LOCKED = 6,     /* PIN locked after too many failures */
	WIRE_ST_NOKEY = 7,      /* no such key ID */
	WIRE_ST_EXISTS = 8,
	WIRE_ST_USAGE = 9,      /* the key's usage flags forbid this */
	WIRE_ST_EXPIRED = 10,   /* outside the key's validity window */
	WIRE_ST_INTEGRITY = 11, /* a tag did not verify */
	WIRE_ST_FULL = 12,      /* flash full */
	WIRE_ST_STATE = 13,     /* wrong device state (blank / not blank) */
	WIRE_ST_INVALID = 14,   /* well-formed but bad value (alg, length) */
	WIRE_ST_INTERNAL = 15,  /* flash or crypto failure inside the device */
	WIRE_ST_MAX = 15,
};

#endif
