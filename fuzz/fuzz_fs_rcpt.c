/*
 * fuzz_fs_rcpt.c - libFuzzer target for the recipients parser
 * fs_rcpt_parse (fs/sharing.c): the value of the user.sekey.recipients /
 * user.sekey.group xattr a local user sets, and the recipients stored in
 * every directory header.
 *
 * Input: u8 kind selector (value % 3: none, users, group) || the value
 * bytes (any bytes, NULs included; the length is the rest of the input).
 * The value is passed in an exact heap buffer without a terminator and the
 * output is an exact FS_RCPT_MAX + 1 heap buffer, so ASan sees any read or
 * write past either.
 * Invariants besides the sanitizers:
 *  - the result is 0 or -EINVAL, and 0 exactly when the oracle below
 *    accepts: 1..FS_RCPT_MAX bytes, no NUL, comma-separated names each
 *    1..KMS_NAME_MAX bytes of printable ASCII other than space and '/',
 *    exactly one name for a group, at most RCPT_USERS_MAX names;
 *  - on success the output is the value followed by a NUL, and nothing
 *    else of the output buffer is written;
 *  - every accepted name is also a name kms_check_name accepts (so a
 *    recipient list never names what SEkey could not hold), apart from
 *    "." and "..", which SEkey refuses and lookups then fail on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/internal.h"
#include "kms/kms.h"

/* fs/sharing.c's cap on the names of one list (not exported). */
#define RCPT_USERS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fs_name_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '/' && c != ',';
}

/* kms_check_name's rule for a user or group name (kms/users.c). */
static int kms_name_char(unsigned char c)
{
	return c >= 0x20 && c != 0x7f && c != ',' && c != '/';
}

static int oracle(enum fs_rcpt_kind kind, const char *v, size_t len)
{
	size_t i, start = 0, count = 0;

	if (len == 0 || len > FS_RCPT_MAX)
		return 0;
	for (i = 0; i <= len; i++) {
		if (i < len && v[i] != ',') {
			if (!fs_name_char((unsigned char)v[i]))
				return 0;
			continue;
		}
		if (i == start || i - start > KMS_NAME_MAX)
			return 0;
		count++;
		start = i + 1;
	}
	if (kind == FS_RCPT_GROUP && count != 1)
		return 0;
	return count <= RCPT_USERS_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum fs_rcpt_kind kinds[3] = { FS_RCPT_NONE, FS_RCPT_USERS, FS_RCPT_GROUP };
	enum fs_rcpt_kind kind;
	char *value, *out;
	size_t len, i;
	int rc, want;

	if (size < 1)
		return 0;
	kind = kinds[data[0] % 3];
	len = size - 1;
	value = malloc(len ? len : 1);
	out = malloc(FS_RCPT_MAX + 1);
	if (!value || !out)
		abort();
	if (len)
		memcpy(value, data + 1, len);
	memset(out, 0x5a, FS_RCPT_MAX + 1);
	rc = fs_rcpt_parse(kind, value, len, out);
	want = oracle(kind, value, len);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if ((rc == 0) != want)
		abort();
	if (rc == 0) {
		if (memcmp(out, value, len) != 0 || out[len] != '\0')
			abort();
		for (i = len + 1; i < FS_RCPT_MAX + 1; i++)
			if (out[i] != 0x5a)
				abort();
		for (i = 0; i < len; i++)
			if (value[i] != ',' && !kms_name_char((unsigned char)value[i]))
				abort();
	}
	free(value);
	free(out);
	return 0;
}
