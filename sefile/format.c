/*
 * format.c - the on-disk format of docs/FORMAT.md as pure functions: the
 * header's encoding and parsing, sector geometry, and the plaintext size
 * a backing size implies.  Nothing here talks to a cube or a file, so the
 * fuzzer (fuzz/fuzz_sefile_header.c) can feed it any bytes.
 */
#include <string.h>

#include "sefile_impl.h"
#include "wire/buf.h"

int shift_of(uint32_t sector_size)
{
	int s;

	for (s = SECTOR_MIN_SHIFT; s <= SECTOR_MAX_SHIFT; s++)
		if (sector_size == (1u << s))
			return s;
	return -1;
}

uint64_t sector_count(uint64_t size, unsigned shift)
{
	return (size + ((1ull << shift) - 1)) >> shift;
}

uint32_t sector_len(uint64_t size, unsigned shift, uint64_t idx)
{
	uint64_t start = idx << shift, s = 1ull << shift;

	if (start >= size)
		return 0;
	return (uint32_t)(size - start < s ? size - start : s);
}

uint64_t sector_off(unsigned shift, uint64_t idx)
{
	return SEFILE_HEADER_LEN + idx * ((1ull << shift) + SECTOR_OVERHEAD);
}

int bytes_are_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[256];

	while (n >= sizeof(zero)) {
		if (memcmp(p, zero, sizeof(zero)) != 0)
			return 0;
		p += sizeof(zero);
		n -= sizeof(zero);
	}
	return memcmp(p, zero, n) == 0;
}

uint64_t sefile_backing_size(uint64_t size, uint32_t sector_size)
{
	int shift = shift_of(sector_size);
	uint64_t full, rem;

	if (shift < 0 || size > SEFILE_MAX_SIZE)
		return 0;
	full = size >> shift;
	rem = size & (sector_size - 1);
	return SEFILE_HEADER_LEN + full * ((uint64_t)sector_size + SECTOR_OVERHEAD) +
	       (rem ? rem + SECTOR_OVERHEAD : 0);
}

int sefile_size_from_backing(uint64_t backing_size, uint32_t sector_size, uint64_t *size)
{
	int shift = shift_of(sector_size);
	uint64_t data, unit, n, rem;

	*size = 0;
	if (shift < 0)
		return seterr(SEFILE_EINVAL, "sector size %u is not a power of two in 512..65536",
			      sector_size);
	if (backing_size < SEFILE_HEADER_LEN)
		return seterr(SEFILE_EFORMAT, "backing file of %llu bytes is shorter than a header",
			      (unsigned long long)backing_size);
	data = backing_size - SEFILE_HEADER_LEN;
	unit = (uint64_t)sector_size + SECTOR_OVERHEAD;
	n = data / unit;
	rem = data % unit;
	if (rem != 0 && rem <= SECTOR_OVERHEAD)
		return seterr(SEFILE_EFORMAT, "backing size %llu ends inside a sector's nonce or tag",
			      (unsigned long long)backing_size);
	if (n > (SEFILE_MAX_SIZE >> shift))
		return seterr(SEFILE_EFORMAT, "backing size %llu is beyond the largest file",
			      (unsigned long long)backing_size);
	*size = (n << shift) + (rem ? rem - SECTOR_OVERHEAD : 0);
	if (*size > SEFILE_MAX_SIZE) {
		*size = 0;
		return seterr(SEFILE_EFORMAT, "backing size %llu is beyond the largest file",
			      (unsigned long long)backing_size);
	}
	return SEFILE_OK;
}

void header_encode(const struct sefile_info *id, uint64_t length, uint8_t clear[HDR_CLEAR_LEN])
{
	memset(clear, 0, HDR_CLEAR_LEN);
	memcpy(clear + HOFF_MAGIC, HDR_MAGIC, HDR_MAGIC_LEN);
	wire_le16(clear + HOFF_VERSION, HDR_VERSION);
	clear[HOFF_ALG] = id->alg;
	clear[HOFF_SHIFT] = (uint8_t)shift_of(id->sector_size);
	wire_le32(clear + HOFF_KEY_ID, id->key_id);
	memcpy(clear + HOFF_FILE_ID, id->file_id, WIRE_FILE_ID_LEN);
	wire_le64(clear + HOFF_LENGTH, length);
	/* HOFF_RESERVED..48 stay zero */
}

static int alg_is_sector_alg(uint8_t alg)
{
	return alg == WIRE_ALG_AES256_GCM || alg == WIRE_ALG_AES256_CTR_HMAC ||
	       alg == WIRE_ALG_AES128_GCM;
}

int sefile_header_parse(const uint8_t *buf, size_t len, struct sefile_info *out)
{
	unsigned version, shift;
	uint64_t length;

	memset(out, 0, sizeof(*out));
	if (len < SEFILE_HEADER_LEN)
		return seterr(SEFILE_EFORMAT, "header: only %zu bytes, a header has %u", len,
			      (unsigned)SEFILE_HEADER_LEN);
	if (memcmp(buf + HOFF_MAGIC, HDR_MAGIC, HDR_MAGIC_LEN) != 0)
		return seterr(SEFILE_EFORMAT, "header: bad magic, not a SEfile file");
	version = wire_rd16(buf + HOFF_VERSION);
	if (version != HDR_VERSION)
		return seterr(SEFILE_EFORMAT, "header: unknown version %u", version);
	if (!alg_is_sector_alg(buf[HOFF_ALG]))
		return seterr(SEFILE_EFORMAT, "header: unknown algorithm %u", buf[HOFF_ALG]);
	shift = buf[HOFF_SHIFT];
	if (shift < SECTOR_MIN_SHIFT || shift > SECTOR_MAX_SHIFT)
		return seterr(SEFILE_EFORMAT, "header: bad sector size 2^%u", shift);
	length = wire_rd64(buf + HOFF_LENGTH);
	if (length > SEFILE_MAX_SIZE)
		return seterr(SEFILE_EFORMAT, "header: file length %llu is too large",
			      (unsigned long long)length);
	if (!bytes_are_zero(buf + HOFF_RESERVED, HDR_CLEAR_LEN - HOFF_RESERVED))
		return seterr(SEFILE_EFORMAT, "header: reserved bytes are not zero");
	out->alg = buf[HOFF_ALG];
	out->sector_size = 1u << shift;
	out->key_id = wire_rd32(buf + HOFF_KEY_ID);
	memcpy(out->file_id, buf + HOFF_FILE_ID, WIRE_FILE_ID_LEN);
	out->size = length;
	return SEFILE_OK;
}

int sefile_sector_is_hole(const uint8_t *stored, size_t len)
{
	/* The tag is checked first: a sealed sector's tag is never all zero in practice. */
	if (len < SECTOR_OVERHEAD)
		return 0;
	if (!bytes_are_zero(stored + len - WIRE_SECTOR_TAG, WIRE_SECTOR_TAG))
		return 0;
	return bytes_are_zero(stored, len - WIRE_SECTOR_TAG);
}
