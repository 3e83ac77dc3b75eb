/*
 * fuzz_kms_update.c - libFuzzer target for the update file parsers
 * (kms/update_format.h): the clear header, the size rule, the file name
 * parser and the whole record stream with every record's value, on
 * arbitrary bytes.  Input: u64 counter (LE) || file bytes; the bytes after
 * the header are also parsed as a record body, so the fuzzer reaches the
 * record parsers without having to forge a seal.  Anything accepted must
 * survive a re-pack round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms/update_format.h"
#include "wire/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kms_upd_header h;
	uint8_t packed[KMS_UPD_HEADER_LEN];
	uint64_t counter, parsed;
	char name[KMS_UPD_NAME_LEN + 1];

	if (size < 8)
		return 0;
	counter = wire_rd64(data);
	data += 8;
	size -= 8;
	if (kms_upd_header_parse(data, size, &h) == 0) {
		kms_upd_header_pack(&h, packed);
		if (memcmp(packed, data, KMS_UPD_HEADER_LEN) != 0)
			abort();
		(void)kms_upd_sealed_len(h.body_len, NULL);
	}
	kms_upd_name(counter % 10000000000000000ull, name);
	if (counter % 10000000000000000ull &&
	    (kms_upd_name_parse(name, &parsed) != 0 || parsed != counter % 10000000000000000ull))
		abort();
	{
		char text[64];
		size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;

		memcpy(text, data, n);
		text[n] = '\0';
		(void)kms_upd_name_parse(text, &parsed);
		(void)kms_upd_name_is_debris(text);
	}
	/* The record stream, from the start and after a header's worth. */
	(void)kms_upd_check_body(data, size, counter);
	if (size > KMS_UPD_HEADER_LEN)
		(void)kms_upd_check_body(data + KMS_UPD_HEADER_LEN, size - KMS_UPD_HEADER_LEN,
					 counter);
	return 0;
}
