/*
 * errors.c - the driver's one error space: code to text, device status to
 * code, and the per-connection message that cube_errmsg() returns.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

const char *cube_strerror(int err)
{
	switch (err) {
	case CUBE_OK: return "success";
	case CUBE_ETRANSPORT: return "connection to the device failed";
	case CUBE_EPROTO: return "the device's reply made no sense";
	case CUBE_EAUTH: return "not authenticated (session refused or not logged in)";
	case CUBE_EPERM: return "not permitted for this login";
	case CUBE_EPIN: return "wrong PIN";
	case CUBE_ELOCKED: return "PIN locked";
	case CUBE_ENOKEY: return "no such key";
	case CUBE_EEXIST: return "already exists";
	case CUBE_EUSAGE: return "key usage forbids this operation";
	case CUBE_EEXPIRED: return "key outside its validity window";
	case CUBE_EINTEGRITY: return "authentication tag did not verify";
	case CUBE_EFULL: return "device flash full";
	case CUBE_ESTATE: return "wrong device state";
	case CUBE_EINVAL: return "invalid argument";
	case CUBE_EDEVICE: return "internal failure inside the device";
	case CUBE_ENOMEM: return "out of memory";
	case CUBE_ENODEV: return "no such device";
	default: return "unknown error";
	}
}

const char *cube_errmsg(const struct cube *c)
{
	if (!c)
		return "no connection";
	return c->errmsg[0] ? c->errmsg : cube_strerror(CUBE_OK);
}

int cube_status_err(uint32_t status)
{
	switch (status) {
	case WIRE_ST_OK: return CUBE_OK;
	case WIRE_ST_MALFORMED: return CUBE_EPROTO;
	case WIRE_ST_UNKNOWN_OP: return CUBE_EPROTO;
	case WIRE_ST_AUTH: return CUBE_EAUTH;
	case WIRE_ST_PERM: return CUBE_EPERM;
	case WIRE_ST_PIN: return CUBE_EPIN;
	case WIRE_ST_LOCKED: return CUBE_ELOCKED;
	case WIRE_ST_NOKEY: return CUBE_ENOKEY;
	case WIRE_ST_EXISTS: return CUBE_EEXIST;
	case WIRE_ST_USAGE: return CUBE_EUSAGE;
	case WIRE_ST_EXPIRED: return CUBE_EEXPIRED;
	case WIRE_ST_INTEGRITY: return CUBE_EINTEGRITY;
	case WIRE_ST_FULL: return CUBE_EFULL;
	case WIRE_ST_STATE: return CUBE_ESTATE;
	case WIRE_ST_INVALID: return CUBE_EINVAL;
	case WIRE_ST_INTERNAL: return CUBE_EDEVICE;
	default: return CUBE_EPROTO;
	}
}

int cube_fail(struct cube *c, int code, const char *fmt, ...)
{
	va_list ap;

	c->last_errno = errno;
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

int cube_ok(struct cube *c)
{
	c->errmsg[0] = '\0';
	c->last_errno = 0;
	return CUBE_OK;
}

void cube_set_text(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}
