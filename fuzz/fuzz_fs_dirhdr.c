/*
 * fuzz_fs_dirhdr.c - libFuzzer target for the directory header decoder
 * (fs_dirhdr_decode in fs/dir.c): the plaintext of the SEKEYFS_DIRHDR_NAME
 * file every backing directory holds.  The file is a SEfile file, so its
 * bytes are authenticated, but a key holder (any recipient, or a bug) can
 * still write any plaintext there, and the decoder must never trust it.
 *
 * Input: the header bytes as they would come out of the SEfile file.
 * Invariants besides the sanitizers:
 *  - the result is 0 or -EIO; on -EIO `why` is a non-empty string;
 *  - a decoded header is sane: sector size a power of two in 512..65536,
 *    recipients a NUL-ended string of exactly the length the header says,
 *    kind NONE iff no recipients, GROUP iff the group flag;
 *  - re-encoding it (the layout of fs/internal.h, written out again here
 *    as the oracle) gives back the input byte for byte, except the one
 *    non-canonical form the decoder accepts: the old-key flag with an old
 *    key of 0 (which means "no old key").
 * The input is copied into an exact heap buffer so ASan sees any read
 * past its end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

/* The oracle encoder: what dir.c writes for h.  Returns the length. */
static size_t encode(const struct fs_dirhdr *h, int oldkey_flag, uint8_t *out)
{
	size_t rl = h->rcpt_kind == FS_RCPT_NONE ? 0 : strlen(h->rcpt);
	size_t at = DIRHDR_LEN;

	memcpy(out, DIRHDR_MAGIC, 8);
	put_le16(out + 8, DIRHDR_VERSION);
	put_le16(out + 10, (uint16_t)((h->rcpt_kind == FS_RCPT_GROUP ? DIRHDR_FLAG_GROUP : 0) |
				      (oldkey_flag ? DIRHDR_FLAG_OLDKEY : 0)));
	put_le32(out + 12, h->name_key);
	memcpy(out + 16, h->dir_id, WIRE_FILE_ID_LEN);
	put_le32(out + 32, h->sector_size);
	put_le32(out + 36, (uint32_t)rl);
	if (oldkey_flag) {
		put_le32(out + at, h->old_key);
		at += 4;
	}
	memcpy(out + at, h->rcpt, rl);
	return at + rl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in, again[DIRHDR_LEN + 4 + FS_RCPT_MAX];
	struct fs_dirhdr h;
	char why[128];
	size_t rl, n;
	int rc, oldkey_flag;

	in = malloc(size ? size : 1);
	if (!in)
		abort();
	if (size)
		memcpy(in, data, size);
	memset(why, 0x55, sizeof(why));
	rc = fs_dirhdr_decode(in, size, &h, why, sizeof(why));
	if (rc != 0) {
		if (rc != -EIO || !memchr(why, '\0', sizeof(why)) || why[0] == '\0')
			abort();
		free(in);
		return 0;
	}
	if (h.sector_size < 512 || h.sector_size > 65536 || (h.sector_size & (h.sector_size - 1)))
		abort();
	if (!memchr(h.rcpt, '\0', sizeof(h.rcpt)))
		abort();
	rl = strlen(h.rcpt);
	if ((h.rcpt_kind == FS_RCPT_NONE) != (rl == 0))
		abort();
	if (h.rcpt_kind != FS_RCPT_NONE && h.rcpt_kind != FS_RCPT_USERS &&
	    h.rcpt_kind != FS_RCPT_GROUP)
		abort();
	if (size < DIRHDR_LEN)
		abort();
	oldkey_flag = (data[10] & DIRHDR_FLAG_OLDKEY) != 0;
	if ((h.rcpt_kind == FS_RCPT_GROUP) != ((data[10] & DIRHDR_FLAG_GROUP) != 0))
		abort();
	if (!oldkey_flag && h.old_key != 0)
		abort();
	n = encode(&h, oldkey_flag, again);
	if (n != size || memcmp(again, data, size) != 0)
		abort();
	free(in);
	return 0;
}
