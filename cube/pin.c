/*
 * pin.c - reading a PIN for a cube login: the first line of a file or a
 * file descriptor, or asked on the terminal without echo.  One reader for
 * every program (secube, sefile, sekey, sekeyfs), so a PIN is read the same
 * way everywhere: never cut short silently, never with a NUL inside.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cube.h"

int cube_pin_read_line(int fd, char *pin, size_t cap)
{
	size_t n = 0;
	ssize_t got;
	char ch;
	int bad = 0;

	if (cap < 2)
		return CUBE_EINVAL;
	for (;;) {
		got = read(fd, &ch, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || ch == '\n')
			break;
		if (ch == '\0' || n + 1 >= cap) {
			bad = 1;  /* read on to the end of the line, storing nothing */
			continue;
		}
		pin[n++] = ch;
	}
	if (n > 0 && pin[n - 1] == '\r')
		n--;
	pin[n] = '\0';
	if (bad || n == 0 || n > cap - 2) {
		OPENSSL_cleanse(pin, cap);
		return CUBE_EINVAL;
	}
	return CUBE_OK;
}

int cube_pin_read(const char *file, int fd, const char *prompt, char *pin, size_t cap,
		  char *err, size_t err_cap)
{
	struct termios old, quiet;
	int tty, rc;

	if (file) {
		int ffd = open(file, O_RDONLY | O_CLOEXEC);

		if (ffd < 0)
			return snprintf(err, err_cap, "cannot read the PIN file %s: %s", file,
					strerror(errno)), CUBE_ENODEV;
		rc = cube_pin_read_line(ffd, pin, cap);
		close(ffd);
	} else if (fd >= 0) {
		rc = cube_pin_read_line(fd, pin, cap);
	} else {
		tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
		if (tty < 0)
			return snprintf(err, err_cap, "no terminal to ask the PIN on: use --pin-file "
					"or --pin-fd"), CUBE_ENODEV;
		if (tcgetattr(tty, &old) != 0) {
			close(tty);
			return snprintf(err, err_cap, "cannot turn off echo: use --pin-file or "
					"--pin-fd"), CUBE_ENODEV;
		}
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		if (write(tty, prompt, strlen(prompt)) < 0 || tcsetattr(tty, TCSAFLUSH, &quiet) != 0) {
			close(tty);
			return snprintf(err, err_cap, "cannot ask the PIN on the terminal"), CUBE_ENODEV;
		}
		rc = cube_pin_read_line(tty, pin, cap);
		tcsetattr(tty, TCSAFLUSH, &old);
		if (write(tty, "\n", 1) < 0) {
			/* the newline is cosmetic */
		}
		close(tty);
	}
	if (rc != CUBE_OK)
		snprintf(err, err_cap, "no PIN: an empty line, a NUL byte, or longer than %zu "
			 "characters", cap - 2);
	return rc;
}
