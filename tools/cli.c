/*
 * cli.c - shared command-line helpers (cli.h).
 */
#include "cli.h"

#include "cube/cube.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

void cli_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

int cli_read_pin(const char *file, int fd, const char *prompt, char *pin, size_t cap)
{
	const char *env;
	char err[256];

	if (!file && fd < 0 && (env = getenv("SEKEYFS_PIN_FD")) != NULL) {
		char *end;
		long v = strtol(env, &end, 10);

		if (*env && !*end && v >= 0 && v < 65536)
			fd = (int)v;
	}
	if (cube_pin_read(file, fd, prompt, pin, cap, err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

void cli_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void cli_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

void cli_progress(const char *label, uint64_t done, uint64_t total)
{
	int width = 40, fill;

	if (!isatty(STDERR_FILENO) || total == 0)
		return;
	fill = (int)(done * (uint64_t)width / total);
	fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label, fill,
		"########################################", width - fill, "",
		(int)(done * 100 / total));
	if (done >= total)
		fputc('\n', stderr);
	fflush(stderr);
}
