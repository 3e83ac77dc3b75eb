/*
 * fuzz_cube_pin.c - libFuzzer target for the PIN line reader every program
 * uses (cube_pin_read_line, cube/pin.c) on a PIN file's or fd's bytes.
 *
 * Input: u8 capacity (2..257) || the bytes of the file.
 * Oracle: CUBE_OK exactly when the first line (up to '\n' or the end),
 * without one trailing '\r', is 1..cap-2 bytes with no NUL; then pin is
 * that line, NUL-ended, and nothing past it in the buffer was written.
 * Otherwise CUBE_EINVAL and the whole buffer is zero (wiped).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cube/cube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap, line, want;
	const uint8_t *nl;
	char *pin;
	int fd, rc, ok;

	if (size < 1)
		return 0;
	cap = 2 + data[0];
	data++;
	size--;
	fd = memfd_create("pin", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	pin = malloc(cap);
	if (!pin)
		abort();
	memset(pin, 0xa5, cap);
	rc = cube_pin_read_line(fd, pin, cap);
	close(fd);
	nl = memchr(data, '\n', size);
	line = nl ? (size_t)(nl - data) : size;
	want = line > 0 && data[line - 1] == '\r' ? line - 1 : line;
	ok = want >= 1 && want <= cap - 2 && line <= cap - 1 && !memchr(data, '\0', line);
	if ((rc == CUBE_OK) != ok) {
		fprintf(stderr, "cap %zu line %zu: rc %d, expected %s\n", cap, line, rc,
			ok ? "ok" : "refusal");
		abort();
	}
	if (rc == CUBE_OK) {
		if (memcmp(pin, data, want) || pin[want] != '\0')
			abort();
		for (size_t i = want + 1; i < cap; i++)
			if ((unsigned char)pin[i] != 0xa5 && !(i == want + 1 && line > want))
				abort();
	} else {
		for (size_t i = 0; i < cap; i++)
			if (pin[i])
				abort();
	}
	free(pin);
	return 0;
}
