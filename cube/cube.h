/*
 * cube.h - the host-side driver of a SEcube: the whole public face of cube/.
 *
 * A struct cube is one connection to one device, over one of two
 * transports that carry the same frames (wire/wire.h):
 *   - "dir:PATH"  an emulated cube: the secube-emu process serving the
 *                 device directory PATH (its socket PATH/cube.sock).  If
 *                 no emulator serves PATH, cube_open starts one, as
 *                 gpg-agent is started.
 *   - "usb:BUS-ADDR" or "usb:SERIAL"  a board on USB (libusb-1.0 bulk).
 * A bare path is taken as "dir:PATH".
 *
 * The device holds every key; the host names keys by 32-bit ID only and
 * never sees a key value.  After cube_login every frame is authenticated
 * with a session key agreed with the device's X25519 key, so PINs and
 * commands cannot be read or replayed on the transport.
 *
 * A struct cube is not thread-safe; callers serialise (the device runs
 * one request at a time anyway).  Every function returns CUBE_OK (0) or a
 * negative CUBE_E* code; cube_errmsg() gives the text of the last error of
 * that connection, with the detail a user can act on.
 */
#ifndef SEKEYFS_CUBE_H
#define SEKEYFS_CUBE_H

#include <stddef.h>
#include <stdint.h>

#include "../wire/wire.h"

enum cube_err {
	CUBE_OK = 0,
	CUBE_ETRANSPORT = -1, /* socket/USB failed, device gone, timeout */
	CUBE_EPROTO = -2,     /* the device's reply made no sense */
	CUBE_EAUTH = -3,      /* session refused / not logged in */
	CUBE_EPERM = -4,      /* this login may not do that */
	CUBE_EPIN = -5,       /* wrong PIN (cube_tries_left tells how many remain) */
	CUBE_ELOCKED = -6,    /* PIN locked */
	CUBE_ENOKEY = -7,     /* no such key */
	CUBE_EEXIST = -8,
	CUBE_EUSAGE = -9,     /* key usage forbids the operation */
	CUBE_EEXPIRED = -10,  /* key outside its validity window */
	CUBE_EINTEGRITY = -11,/* authentication tag did not verify */
	CUBE_EFULL = -12,
	CUBE_ESTATE = -13,    /* device blank / not blank */
	CUBE_EINVAL = -14,    /* bad argument */
	CUBE_EDEVICE = -15,   /* internal failure inside the device */
	CUBE_ENOMEM = -16,
	CUBE_ENODEV = -17,    /* no such device (no emulator dir, no USB board) */
};

struct cube;

struct cube_info {
	uint8_t serial[WIRE_SERIAL_LEN];
	uint8_t pubkey[WIRE_PUBKEY_LEN];
	uint32_t fw_version;
	uint8_t state;            /* enum wire_dev_state */
	uint8_t role;             /* enum wire_role of this connection */
	uint8_t user_tries_left;
	uint8_t admin_tries_left;
	uint32_t key_count;
	uint32_t key_capacity;    /* keys that still fit */
	uint32_t now_minutes;     /* the device clock, minutes since WIRE_EPOCH */
	int shm;                  /* bulk data goes through shared memory */
};

struct cube_key {
	uint32_t id;
	uint8_t alg;        /* enum wire_alg */
	uint8_t usage;      /* WIRE_USE_* */
	uint32_t not_before;/* minutes since WIRE_EPOCH (0 = always) */
	uint32_t not_after; /* WIRE_TIME_NEVER = never */
};

/* One sector of a batched SEAL/OPEN: its index in the file and its
 * plaintext length (<= 65536). */
struct cube_sector {
	uint64_t index;
	uint32_t len;
};

/* Text of an error code. */
const char *cube_strerror(int err);
/* Text of the last error on this connection (never NULL). */
const char *cube_errmsg(const struct cube *c);

/* Connect; spec as above.  On failure *out is NULL and, if err_text is
 * given, the reason is copied there. */
int cube_open(struct cube **out, const char *spec, char *err_text, size_t err_cap);
void cube_close(struct cube *c);

/* Create a new blank emulated cube in dir (flash image, SD folder,
 * identity); CUBE_EEXIST if dir already holds one. */
int cube_create_emulated(const char *dir, char *err_text, size_t err_cap);
/* Path of the emulator binary (env SECUBE_EMU, else next to the running
 * program, else "secube-emu" from PATH). */
const char *cube_emulator_path(void);

int cube_info(struct cube *c, struct cube_info *out);
/* The SD-card folder of an emulated cube (where the KMS keeps its secure
 * database); CUBE_ENODEV on USB devices, which have none on the host. */
const char *cube_sd_path(const struct cube *c);

/* First-time set-up of a blank device: both PINs, retry limits (0 = the
 * defaults, 5 user / 10 admin). */
int cube_factory_init(struct cube *c, const char *admin_pin, const char *user_pin,
		      unsigned user_max_tries, unsigned admin_max_tries);
int cube_login(struct cube *c, enum wire_role role, const char *pin);
/* A PIN into pin[cap] (NUL-ended, newline and a CR before it cut): the
 * first line of file if set, else of fd if >= 0, else asked on /dev/tty
 * with prompt and no echo.  CUBE_OK, or CUBE_EINVAL (an empty line, a NUL
 * byte, a line longer than cap - 2: never cut short) / CUBE_ENODEV (no
 * file, no terminal) with err set; pin is wiped on failure, by the caller
 * after use. */
int cube_pin_read(const char *file, int fd, const char *prompt, char *pin, size_t cap,
		  char *err, size_t err_cap);
/* The line reader of cube_pin_read, on fd. */
int cube_pin_read_line(int fd, char *pin, size_t cap);
int cube_logout(struct cube *c);
/* Tries left for role after a CUBE_EPIN. */
int cube_tries_left(const struct cube *c, enum wire_role role);
int cube_set_pin(struct cube *c, enum wire_role role, const char *new_pin);
int cube_factory_reset(struct cube *c);
int cube_clock_set(struct cube *c, int64_t unix_seconds);

int cube_key_generate(struct cube *c, const struct cube_key *k);
int cube_key_destroy(struct cube *c, uint32_t id);
int cube_key_info(struct cube *c, uint32_t id, struct cube_key *out);
/* Up to max keys with id >= first_id, ascending; *n gets the count. */
int cube_key_list(struct cube *c, uint32_t first_id, struct cube_key *out, uint32_t max, uint32_t *n);
int cube_key_set_attrs(struct cube *c, uint32_t id, uint8_t usage, uint32_t not_before, uint32_t not_after);
/* Wrapped export (blob_cap >= 64 is enough) and import of a key. */
int cube_key_export(struct cube *c, uint32_t wrapping_id, uint32_t id,
		    uint8_t *blob, size_t blob_cap, size_t *blob_len);
int cube_key_import(struct cube *c, uint32_t unwrapping_id, const uint8_t *blob, size_t blob_len,
		    uint32_t *id);
/* A tombstone for id wrapped under wrapping_id: imported into a cube
 * (cube_key_import) it destroys id there (admin; id need not exist here). */
int cube_key_export_tombstone(struct cube *c, uint32_t wrapping_id, uint32_t id,
			      uint8_t *blob, size_t blob_cap, size_t *blob_len);
/* Store as new_id the key both this device and the peer derive from their
 * X25519 keys, alg and context (cube-to-cube channel key, never
 * exportable): alg WIRE_ALG_AES256_KW with usage within WRAP|UNWRAP, or
 * WIRE_ALG_AES256_GCM with usage within ENCRYPT|DECRYPT.  Usage does not
 * enter the derivation: each side picks its own direction. */
int cube_channel_derive_key(struct cube *c, uint32_t new_id, const uint8_t peer_pub[WIRE_PUBKEY_LEN],
			    uint8_t alg, uint8_t usage, const uint8_t *context, size_t context_len);
/* The same as an AES256_KW key with usage WRAP|UNWRAP. */
int cube_channel_derive(struct cube *c, uint32_t new_id, const uint8_t peer_pub[WIRE_PUBKEY_LEN],
			const uint8_t *context, size_t context_len);

/* One key PASSPHRASE_DERIVE stores: id and alg (WIRE_ALG_AES256_KW gets
 * WRAP|UNWRAP|BACKUP, WIRE_ALG_AES256_GCM ENCRYPT|DECRYPT,
 * WIRE_ALG_HMAC_SHA256 MAC; never exportable). */
struct cube_derive_target {
	uint32_t id;
	uint8_t alg;
};
/* Store n (1..WIRE_DERIVE_MAX_KEYS, distinct algs and ids) keys derived
 * inside the cube from passphrase (WIRE_PASSPHRASE_MIN..MAX bytes, sent
 * sealed under the session key), salt (WIRE_PBKDF2_SALT_MIN..MAX bytes)
 * and iterations (WIRE_PBKDF2_ITER_MIN..MAX): PBKDF2-HMAC-SHA256 then
 * HKDF (wire.h).  The same inputs give the same keys in any cube.  Admin
 * login; all or nothing (CUBE_EEXIST if an id is taken). */
int cube_passphrase_derive(struct cube *c, const uint8_t *passphrase, size_t pass_len,
			   const uint8_t *salt, size_t salt_len, uint32_t iterations,
			   const struct cube_derive_target *keys, unsigned n);

/* Seal n sectors of one file in one request.  in: the plaintexts back to
 * back (sum of lens); out: for each sector nonce[12] ct tag[16] back to
 * back (sum of lens + n * WIRE_SECTOR_OVERHEAD).  n <= WIRE_MAX_SECTORS
 * and sum of lens <= WIRE_MAX_BULK_REQ; split bigger jobs. */
int cube_seal(struct cube *c, uint32_t key_id, uint8_t alg, const uint8_t file_id[WIRE_FILE_ID_LEN],
	      const struct cube_sector *sectors, uint32_t n, const uint8_t *in, uint8_t *out);
/* Open n sealed sectors.  bad[i] is set to 1 for each sector whose tag
 * failed (its plaintext is zeros) and 0 otherwise; the call returns
 * CUBE_EINTEGRITY if any was bad, CUBE_OK if none. */
int cube_open_sectors(struct cube *c, uint32_t key_id, uint8_t alg,
		      const uint8_t file_id[WIRE_FILE_ID_LEN], const struct cube_sector *sectors,
		      uint32_t n, const uint8_t *in, uint8_t *out, uint8_t *bad);

/* Zero-copy bulk buffers of a connection with a shared region (emulated
 * cube, cube_info().shm == 1): *in and *out, cap bytes each (enough for
 * any batch, sealed form included), are the memory the device itself
 * reads and writes.  A cube_seal / cube_open_sectors whose in (out) is
 * exactly *in (*out) skips the copy in (out).  Contents change with
 * every SEAL/OPEN; valid until cube_close.  CUBE_ENODEV (outputs NULL/0)
 * if the connection has no shared region. */
int cube_bulk_buffers(struct cube *c, uint8_t **in, uint8_t **out, size_t *cap);

/* Deterministic authenticated encryption (AES-SIV) of a short string
 * under key_id, bound to ad.  out gets len + 16 bytes. */
int cube_siv_encrypt(struct cube *c, uint32_t key_id, const uint8_t *ad, size_t ad_len,
		     const uint8_t *in, size_t len, uint8_t *out);
/* in is siv || ct (len >= 16); out gets len - 16 bytes. */
int cube_siv_decrypt(struct cube *c, uint32_t key_id, const uint8_t *ad, size_t ad_len,
		     const uint8_t *in, size_t len, uint8_t *out);
/* One item of cube_siv_decrypt_batch. */
struct cube_siv_item {
	const uint8_t *ad;     /* associated data, ad_len <= WIRE_DATA_MAX */
	size_t ad_len;
	const uint8_t *in;     /* siv || ct, 16 .. WIRE_SIV_MAX + 16 bytes */
	size_t len;
	uint8_t *out;          /* gets len - 16 bytes (zeros unless status is CUBE_OK) */
	int status;            /* set by the call: CUBE_OK or CUBE_EINTEGRITY */
};
/* cube_siv_decrypt of n (1..WIRE_SIV_BATCH_MAX) independent items under
 * key_id in one round trip.  CUBE_OK when the cube answered every item
 * (each item's status then says whether it authenticated); any other code
 * fails the whole batch (every status is that code, every out zeros).  A
 * device without the op (UNKNOWN_OP) is asked one item at a time. */
int cube_siv_decrypt_batch(struct cube *c, uint32_t key_id, struct cube_siv_item *items, size_t n);
int cube_hmac(struct cube *c, uint32_t key_id, const uint8_t *data, size_t len, uint8_t mac[32]);
int cube_random(struct cube *c, void *out, size_t n);
int cube_digest(struct cube *c, const uint8_t *data, size_t len, uint8_t sha256[32]);
/* The device's self test; report is NUL-terminated. */
int cube_selftest(struct cube *c, unsigned *n_failed, char *report, size_t cap);

#endif
