/*
 * device.h - the emulated SEcube: the trust boundary between the host and
 * the keys.
 *
 * A struct device is one cube (its key store on flash, its identity, its
 * clock, its configuration); a struct session is one connection to it
 * (login role, session MAC keys, PIN sealing key, sequence counters, the
 * shared memory region the host handed over).  device_handle() takes one
 * complete request frame (wire/wire.h) and produces exactly one response
 * frame: every frame is validated (header, length, MAC, sequence number,
 * body layout, permission, key usage) and anything wrong gets an error
 * reply, never a crash or an exit.  Requests run one at a time.
 *
 * Nothing here does I/O except through the key store; the transport (the
 * UNIX socket of secube-emu, firmware/main.c) lives outside, so the tests
 * and the fuzzer drive this core in-process.
 */
#ifndef SEKEYFS_DEVICE_H
#define SEKEYFS_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "../wire/wire.h"
#include "keystore.h"

/* Errors of the functions below other than device_handle (which answers
 * every problem with a status in the response frame). */
enum device_err {
	DEVICE_OK = 0,
	DEVICE_ENOIDENT = -1, /* the flash holds no identity: not a cube (--create) */
	DEVICE_EEXIST = -2,   /* device_create_identity on a cube that has one */
	DEVICE_EIO = -3,      /* the key store failed */
	DEVICE_ECORRUPT = -4, /* a meta record does not parse */
	DEVICE_ENOMEM = -5,
	DEVICE_ECRYPTO = -6,  /* the DRBG or a primitive failed */
	DEVICE_EINVAL = -7,   /* bad argument (out_cap too small, ...) */
};

/* Firmware version reported by HELLO. */
#define DEVICE_FW_VERSION 0x00010000u
/* PBKDF2-HMAC-SHA256 iterations stretching a PIN.  Modest on purpose: the
 * retry counter, not the stretching, is what stops guessing (an attacker
 * who reads the flash file still faces this cost per guess). */
#define DEVICE_PBKDF2_ITER 20000u
#define DEVICE_USER_TRIES  5
#define DEVICE_ADMIN_TRIES 10
/* The largest frame either side sends: the capacity device_handle needs. */
#define DEVICE_FRAME_MAX (WIRE_HEADER_LEN + WIRE_MAX_BODY + WIRE_TAG_LEN)

/* Key-store meta tags the device uses (ks_meta_*). */
enum device_meta_tag {
	DEVICE_META_IDENTITY = 1,   /* u8 version serial[16] priv[32] pub[32] */
	DEVICE_META_PIN_USER = 2,   /* PIN record of WIRE_ROLE_USER */
	DEVICE_META_PIN_ADMIN = 3,  /* PIN record of WIRE_ROLE_ADMIN */
	DEVICE_META_CLOCK = 4,      /* u8 version i64 offset seconds */
};

struct device_config {
	unsigned pbkdf2_iterations;     /* 0 = DEVICE_PBKDF2_ITER */
	/* The host clock in UNIX seconds; NULL = time(NULL).  Tests and the
	 * fuzzer set it to run the validity window logic deterministically. */
	int64_t (*host_time)(void *arg);
	void *host_time_arg;
};

struct device;

/*
 * One connection.  Owned by the transport: initialise it with
 * device_session_init() when the connection opens and end it with
 * device_session_end() when it closes.  The shared memory mapping is the
 * transport's (it maps and unmaps it); the device only reads and writes
 * within [shm, shm + shm_size).
 */
struct session {
	uint8_t role;              /* enum wire_role; NONE = not logged in */
	uint64_t epoch;            /* device epoch at login (factory reset bumps it) */
	uint8_t pin_key[32];       /* AES-256-GCM key for sealed PINs */
	uint8_t mac_h2d[32];       /* HMAC key, host-to-device frames */
	uint8_t mac_d2h[32];       /* HMAC key, device-to-host frames */
	uint64_t seq_next;         /* seq the next request must carry */
	uint8_t *shm;              /* shared region (NULL: none) */
	size_t shm_size;
};

/* Create the identity of a new blank cube in ks (random serial, X25519
 * key pair; the private key never leaves the flash).  DEVICE_EEXIST if it
 * has one. */
int device_create_identity(struct keystore *ks);

/* Open the cube whose store is ks (borrowed: the caller closes it after
 * device_close).  cfg may be NULL.  Returns DEVICE_OK or a DEVICE_E*. */
int device_open(struct device **out, struct keystore *ks, const struct device_config *cfg);
/* Wipe every secret the device holds in RAM and free it. */
void device_close(struct device *d);
/* The cube's serial and X25519 public key. */
void device_identity(const struct device *d, uint8_t serial[WIRE_SERIAL_LEN],
		     uint8_t pub[WIRE_PUBKEY_LEN]);
/* enum wire_dev_state now. */
int device_state(struct device *d);

void device_session_init(struct session *s);
/* The connection closed: forget the session's keys (the key store is
 * locked again when no session is logged in). */
void device_session_end(struct device *d, struct session *s);

/*
 * Handle one complete request frame of len bytes and write one response
 * frame into out (out_cap >= DEVICE_FRAME_MAX always suffices; a smaller
 * capacity gets WIRE_ST_INTERNAL for responses that do not fit).
 * Returns DEVICE_OK with *out_len set, or DEVICE_EINVAL (and *out_len 0)
 * only if out_cap cannot hold even an error reply
 * (WIRE_HEADER_LEN + WIRE_TAG_LEN + 1 bytes).
 */
int device_handle(struct device *d, struct session *s, const uint8_t *frame, size_t len,
		  uint8_t *out, size_t out_cap, size_t *out_len);

/* Text of a DEVICE_E* code. */
const char *device_strerror(int err);

#endif
