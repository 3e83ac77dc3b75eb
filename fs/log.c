/*
 * log.c - where sekeyfs says what went wrong: stderr in the foreground,
 * syslog (LOG_DAEMON, opened by the program) in the background.  Integrity
 * and key failures are always logged with their reason, because the
 * application only ever sees EIO or ENOKEY.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "internal.h"

void fs_log(const struct sekeyfs *fs, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (fs->cfg.foreground) {
		fputs("sekeyfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}

int fs_sefile_err(struct sekeyfs *fs, int code, const char *what)
{
	int e = sefile_errno(code);

	if (e <= 0)
		e = EIO;
	switch (code) {
	case SEFILE_EINTEGRITY:
	case SEFILE_EFORMAT:
		fs_log(fs, LOG_ERR, "%s: integrity: %s", what, sefile_errmsg());
		break;
	case SEFILE_ENOKEY:
	case SEFILE_EKEYEXPIRED:
	case SEFILE_ECUBE:
		fs_log(fs, LOG_WARNING, "%s: %s", what, sefile_errmsg());
		if (code == SEFILE_ECUBE)
			fs_cube_failed(fs);
		break;
	default:
		if (fs->cfg.debug)
			fs_log(fs, LOG_DEBUG, "%s: %s", what, sefile_errmsg());
		break;
	}
	return -e;
}
