/*
 * frame.h - packing and checking the 24-byte frame header of wire.h.
 * Both sides use these; each side computes tags with its own crypto
 * (the device through fwcrypto, the host through libcrypto).
 */
#ifndef SEKEYFS_WIRE_FRAME_H
#define SEKEYFS_WIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct wire_header {
	uint8_t version;
	uint8_t flags;
	uint16_t op;
	uint32_t status;
	uint32_t body_len;
	uint64_t seq;
};

/* Write h into out[WIRE_HEADER_LEN] (magic and version filled in). */
void wire_header_pack(const struct wire_header *h, uint8_t out[WIRE_HEADER_LEN]);
/* Parse and validate in[WIRE_HEADER_LEN]: magic, version, known flag bits,
 * body_len <= WIRE_MAX_BODY.  Returns WIRE_ST_OK or WIRE_ST_MALFORMED;
 * *h is zeroed first. */
int wire_header_parse(const uint8_t in[WIRE_HEADER_LEN], struct wire_header *h);
/* Total bytes of the frame that follows a parsed header (body + tag). */
size_t wire_frame_rest(const struct wire_header *h);
/* Human-readable name of an op / a status, for logs ("?" if unknown). */
const char *wire_op_name(unsigned op);
const char *wire_status_name(unsigned status);
/* "aes256-gcm", ... ("unknown" for anything else), and back: 0 or -1. */
const char *wire_alg_name(unsigned alg);
int wire_alg_parse(const char *name, uint8_t *alg);

#endif
