/*
 * frame.c - the frame header of wire.h: packing, validation and names.
 */
#include "frame.h"

#include <string.h>

#include "buf.h"

void wire_header_pack(const struct wire_header *h, uint8_t out[WIRE_HEADER_LEN])
{
	wire_le32(out, WIRE_MAGIC);
	out[4] = WIRE_VERSION;
	out[5] = h->flags;
	wire_le16(out + 6, h->op);
	wire_le32(out + 8, h->status);
	wire_le32(out + 12, h->body_len);
	wire_le64(out + 16, h->seq);
}

int wire_header_parse(const uint8_t in[WIRE_HEADER_LEN], struct wire_header *h)
{
	memset(h, 0, sizeof(*h));
	if (wire_rd32(in) != WIRE_MAGIC || in[4] != WIRE_VERSION)
		return WIRE_ST_MALFORMED;
	if (in[5] & ~(WIRE_F_MAC | WIRE_F_SHM))
		return WIRE_ST_MALFORMED;
	if (wire_rd32(in + 12) > WIRE_MAX_BODY)
		return WIRE_ST_MALFORMED;
	h->version = in[4];
	h->flags = in[5];
	h->op = wire_rd16(in + 6);
	h->status = wire_rd32(in + 8);
	h->body_len = wire_rd32(in + 12);
	h->seq = wire_rd64(in + 16);
	return WIRE_ST_OK;
}

size_t wire_frame_rest(const struct wire_header *h)
{
	return (size_t)h->body_len + ((h->flags & WIRE_F_MAC) ? WIRE_TAG_LEN : 0);
}

const char *wire_op_name(unsigned op)
{
	static const char *const names[WIRE_OP_MAX + 1] = {
		[WIRE_OP_HELLO] = "HELLO", [WIRE_OP_FACTORY_INIT] = "FACTORY_INIT",
		[WIRE_OP_LOGIN] = "LOGIN", [WIRE_OP_LOGOUT] = "LOGOUT",
		[WIRE_OP_SET_PIN] = "SET_PIN", [WIRE_OP_FACTORY_RESET] = "FACTORY_RESET",
		[WIRE_OP_KEY_GENERATE] = "KEY_GENERATE", [WIRE_OP_KEY_DESTROY] = "KEY_DESTROY",
		[WIRE_OP_KEY_INFO] = "KEY_INFO", [WIRE_OP_KEY_LIST] = "KEY_LIST",
		[WIRE_OP_KEY_SET_ATTRS] = "KEY_SET_ATTRS", [WIRE_OP_KEY_EXPORT] = "KEY_EXPORT",
		[WIRE_OP_KEY_IMPORT] = "KEY_IMPORT", [WIRE_OP_CHANNEL_DERIVE] = "CHANNEL_DERIVE",
		[WIRE_OP_PASSPHRASE_DERIVE] = "PASSPHRASE_DERIVE",
		[WIRE_OP_SEAL] = "SEAL", [WIRE_OP_OPEN] = "OPEN",
		[WIRE_OP_SIV_ENCRYPT] = "SIV_ENCRYPT", [WIRE_OP_SIV_DECRYPT] = "SIV_DECRYPT",
		[WIRE_OP_HMAC] = "HMAC", [WIRE_OP_RANDOM] = "RANDOM", [WIRE_OP_DIGEST] = "DIGEST",
		[WIRE_OP_CLOCK_SET] = "CLOCK_SET", [WIRE_OP_SELFTEST] = "SELFTEST",
		[WIRE_OP_SIV_DECRYPT_BATCH] = "SIV_DECRYPT_BATCH",
	};

	return (op <= WIRE_OP_MAX && names[op]) ? names[op] : "?";
}

const char *wire_status_name(unsigned status)
{
	static const char *const names[WIRE_ST_MAX + 1] = {
		[WIRE_ST_OK] = "ok", [WIRE_ST_MALFORMED] = "malformed frame",
		[WIRE_ST_UNKNOWN_OP] = "unknown operation",
		[WIRE_ST_AUTH] = "not authenticated", [WIRE_ST_PERM] = "not permitted for this login",
		[WIRE_ST_PIN] = "wrong PIN", [WIRE_ST_LOCKED] = "PIN locked",
		[WIRE_ST_NOKEY] = "no such key", [WIRE_ST_EXISTS] = "already exists",
		[WIRE_ST_USAGE] = "key usage forbids this", [WIRE_ST_EXPIRED] = "key outside its validity window",
		[WIRE_ST_INTEGRITY] = "authentication failed", [WIRE_ST_FULL] = "flash full",
		[WIRE_ST_STATE] = "wrong device state", [WIRE_ST_INVALID] = "invalid value",
		[WIRE_ST_INTERNAL] = "internal device error",
	};

	return (status <= WIRE_ST_MAX && names[status]) ? names[status] : "?";
}

const char *wire_alg_name(unsigned alg)
{
	switch (alg) {
	case WIRE_ALG_AES256_GCM: return "aes256-gcm";
	case WIRE_ALG_AES256_CTR_HMAC: return "aes256-ctr-hmac";
	case WIRE_ALG_AES256_KW: return "aes256-kw";
	case WIRE_ALG_HMAC_SHA256: return "hmac-sha256";
	case WIRE_ALG_AES128_GCM: return "aes128-gcm";
	default: return "unknown";
	}
}

int wire_alg_parse(const char *name, uint8_t *alg)
{
	for (unsigned a = 1; a <= WIRE_ALG_MAX; a++)
		if (!strcmp(name, wire_alg_name(a))) {
			*alg = (uint8_t)a;
			return 0;
		}
	return -1;
}
