/*
 * fuzz_sefile_header.c - libFuzzer target for the SEfile parsers that read
 * untrusted backing bytes without a cube: the header parser, the
 * backing-size geometry and the hole test of a stored sector.
 *
 *   clang -fsanitize=fuzzer,address -I. fuzz/fuzz_sefile_header.c \
 *         sefile/format.c sefile/errors.c wire/buf.c -o fuzz_sefile_header
 */
#include <stdint.h>
#include <string.h>

#include "sefile/sefile.h"
#include "wire/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sefile_info info;
	uint64_t plain, back;

	if (sefile_header_parse(data, size, &info) == SEFILE_OK) {
		/* a parsed header is self-consistent */
		if (info.sector_size < 512 || info.sector_size > 65536 ||
		    (info.sector_size & (info.sector_size - 1)) != 0)
			__builtin_trap();
		back = sefile_backing_size(info.size, info.sector_size);
		if (sefile_size_from_backing(back, info.sector_size, &plain) != SEFILE_OK ||
		    plain != info.size)
			__builtin_trap();
	}
	if (size >= 12) {
		uint64_t b = wire_rd64(data);
		uint32_t s = wire_rd32(data + 8);

		/* every backing size maps to at most one plaintext size, and back */
		if (sefile_size_from_backing(b, s, &plain) == SEFILE_OK &&
		    sefile_backing_size(plain, s) != b)
			__builtin_trap();
	}
	(void)sefile_sector_is_hole(data, size);
	return 0;
}
