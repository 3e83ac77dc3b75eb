/*
 * transport.h - internal to cube/: the L0 layer that moves whole frames
 * (wire.h) between the host and a device, with two implementations:
 * the UNIX socket of an emulator (transport_unix.c) and USB bulk
 * endpoints of a board (transport_usb.c).  The session layer above it
 * (session.c) builds, MACs and checks the frames; a transport only
 * carries bytes, enforces the receive timeout and checks the header's
 * length cap before it reads a body.
 */
#ifndef SEKEYFS_CUBE_TRANSPORT_H
#define SEKEYFS_CUBE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "../wire/frame.h"

/* Default receive timeout; SECUBE_TIMEOUT_MS overrides it (tests). */
#define CUBE_TIMEOUT_MS_DEFAULT 30000

/* Bytes of the largest frame: header, body, tag. */
#define CUBE_FRAME_MAX ((size_t)WIRE_HEADER_LEN + WIRE_MAX_BODY + WIRE_TAG_LEN)

struct cube_transport;

struct cube_transport_ops {
	/* Send one frame: hdr[WIRE_HEADER_LEN], body_len bytes of body, and
	 * tag[WIRE_TAG_LEN] if tag is not NULL.  pass_fd >= 0 rides along as
	 * SCM_RIGHTS (socket transport only; others refuse it).
	 * 0, or CUBE_ETRANSPORT with the reason in t->why. */
	int (*send_frame)(struct cube_transport *t, const uint8_t *hdr, const uint8_t *body,
			  size_t body_len, const uint8_t *tag, int pass_fd);
	/* Receive one whole frame into buf[cap] (cap >= CUBE_FRAME_MAX):
	 * header, body, tag back to back; *h gets the parsed header.
	 * 0, CUBE_ETRANSPORT (device gone, timeout) or CUBE_EPROTO (bad
	 * header, extra bytes), with the reason in t->why. */
	int (*recv_frame)(struct cube_transport *t, uint8_t *buf, size_t cap, struct wire_header *h);
	/* Release everything; t is freed. */
	void (*close)(struct cube_transport *t);
};

struct cube_transport {
	const struct cube_transport_ops *ops;
	int timeout_ms;   /* receive (and send) timeout per frame */
	int shm_capable;  /* can pass a memfd (socket transport) */
	char why[256];    /* reason of the last failure, for cube_errmsg */
};

/* The receive timeout from the environment (SECUBE_TIMEOUT_MS), else the default. */
int cube_timeout_from_env(void);

/* Milliseconds on the monotonic clock. */
int64_t cube_now_ms(void);

/* Receive-side frame assembly shared by both transports: given the bytes
 * read so far (have), how many bytes the frame needs in total; 0 while the
 * header is incomplete; -1 (reason in t->why) if the header is malformed. */
long cube_frame_need(struct cube_transport *t, const uint8_t *buf, size_t have,
		     struct wire_header *h);

/* Socket transport: connect to the emulator serving dir (absolute path),
 * starting it if it is not running (spawn.c).  0 or a CUBE_E* code with
 * the message in err. */
int cube_unix_open(struct cube_transport **out, const char *dir, char *err, size_t err_cap);

/* Start `secube-emu dir` and wait until its parent exits (it does once the
 * emulator listens).  0, 1 if another emulator already serves dir (it may
 * not listen yet), or CUBE_ETRANSPORT with the reason in err. */
int cube_spawn_emulator(const char *dir, char *err, size_t err_cap);

#endif
