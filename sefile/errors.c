/*
 * errors.c - SEfile's error space: codes, their text, the errno a file
 * system returns for each, and the per-thread message that says what
 * failed and where ("sector 3: authentication failed ...").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sefile_impl.h"

/* The message and errno of the last error are per thread by contract
 * (sefile_errmsg): thread-local, so threads never see each other's. */
static _Thread_local char last_msg[256];
static _Thread_local int last_errno;

int seterr(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	return code;
}

int seterr_io(const char *what, uint64_t off)
{
	int e = errno ? errno : EIO;

	last_errno = e;
	seterr(SEFILE_EIO, "%s at backing offset %llu: %s", what, (unsigned long long)off,
	       strerror(e));
	return e == ENOSPC || e == EDQUOT ? SEFILE_ENOSPC : SEFILE_EIO;
}

int map_cube_err(int cube_err)
{
	switch (cube_err) {
	case CUBE_OK: return SEFILE_OK;
	case CUBE_ENOKEY:
	case CUBE_EUSAGE:
	case CUBE_EPERM: return SEFILE_ENOKEY;
	case CUBE_EEXPIRED: return SEFILE_EKEYEXPIRED;
	case CUBE_EINTEGRITY: return SEFILE_EINTEGRITY;
	case CUBE_EINVAL: return SEFILE_EINVAL;
	case CUBE_ENOMEM: return SEFILE_ENOMEM;
	case CUBE_EFULL: return SEFILE_ENOSPC;
	default: return SEFILE_ECUBE;
	}
}

const char *sefile_strerror(int err)
{
	switch (err) {
	case SEFILE_OK: return "success";
	case SEFILE_EIO: return "backing file I/O error";
	case SEFILE_EINTEGRITY: return "integrity check failed (tampered or damaged)";
	case SEFILE_EFORMAT: return "not a SEfile file, or an unknown version";
	case SEFILE_ENOKEY: return "the cube has no usable key for this file";
	case SEFILE_EKEYEXPIRED: return "the key may no longer encrypt";
	case SEFILE_ECUBE: return "the cube failed";
	case SEFILE_EINVAL: return "invalid argument";
	case SEFILE_ENOMEM: return "out of memory";
	case SEFILE_ENOSPC: return "no space left on the backing file system";
	case SEFILE_ENAMETOOLONG: return "name too long";
	default: return "unknown SEfile error";
	}
}

const char *sefile_errmsg(void)
{
	return last_msg[0] ? last_msg : "no error";
}

int sefile_errno(int err)
{
	switch (err) {
	case SEFILE_OK: return 0;
	case SEFILE_EIO: return last_errno ? last_errno : EIO;
	case SEFILE_EINTEGRITY:
	case SEFILE_EFORMAT:
	case SEFILE_ECUBE: return EIO;
	case SEFILE_ENOKEY: return ENOKEY;
	case SEFILE_EKEYEXPIRED: return EKEYEXPIRED;
	case SEFILE_EINVAL: return EINVAL;
	case SEFILE_ENOMEM: return ENOMEM;
	case SEFILE_ENOSPC: return ENOSPC;
	case SEFILE_ENAMETOOLONG: return ENAMETOOLONG;
	default: return EIO;
	}
}
