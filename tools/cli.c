/*
 * cli.c - shared command-line helpers (cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

void cli_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

/* Read one line from fd into pin, without the newline. */
static int read_pin_line(int fd, char *pin, size_t cap)
{
	size_t n = 0;
	char ch;
	ssize_t r;

	while (n + 1 < cap) {
		r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		pin[n++] = ch;
	}
	if (n + 1 >= cap) {
		cli_wipe(pin, cap);
		fprintf(stderr, "PIN too long (at most %zu characters)\n", cap - 2);
		return -1;
	}
	if (n > 0 && pin[n - 1] == '\r')
		n--;
	pin[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "empty PIN\n");
		return -1;
	}
	return 0;
}

static int read_pin_tty(const char *prompt, char *pin, size_t cap)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		fprintf(stderr, "no terminal to ask the PIN on: use --pin-file or --pin-fd\n");
		return -1;
	}
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		fprintf(stderr, "cannot turn off echo: use --pin-file or --pin-fd\n");
		return -1;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		close(fd);
		return -1;
	}
	rc = read_pin_line(fd, pin, cap);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		rc = rc ? rc : 0;
	close(fd);
	return rc;
}

int cli_read_pin(const char *file, int fd, const char *prompt, char *pin, size_t cap)
{
	const char *env;
	int rc;

	if (file) {
		int ffd = open(file, O_RDONLY | O_CLOEXEC);

		if (ffd < 0) {
			fprintf(stderr, "cannot read PIN file %s: %s\n", file, strerror(errno));
			return -1;
		}
		rc = read_pin_line(ffd, pin, cap);
		close(ffd);
		return rc;
	}
	if (fd < 0 && (env = getenv("SEKEYFS_PIN_FD")) != NULL) {
		char *end;
		long v = strtol(env, &end, 10);

		if (*env && !*end && v >= 0 && v < 65536)
			fd = (int)v;
	}
	if (fd >= 0)
		return read_pin_line(fd, pin, cap);
	return read_pin_tty(prompt, pin, cap);
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
