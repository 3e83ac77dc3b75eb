/*
 * errors.c - the KMS error space: code -> text, and the per-handle message
 * that carries the detail (with the SQLite or cube code kept beside it).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *kms_strerror(int err)
{
	switch (err) {
	case KMS_OK: return "success";
	case KMS_EINVAL: return "invalid argument";
	case KMS_ENOMEM: return "out of memory";
	case KMS_EDB: return "database error";
	case KMS_ECUBE: return "cube error";
	case KMS_EPERM: return "not permitted (administrator only)";
	case KMS_ENOUSER: return "no such user";
	case KMS_ENOGROUP: return "no such group";
	case KMS_ENOSUCHKEY: return "no such key";
	case KMS_ENOKEY: return "no usable key";
	case KMS_EEXIST: return "already exists";
	case KMS_ENOTMEMBER: return "user is not a member of the group";
	case KMS_ETRANSITION: return "key state transition not allowed";
	case KMS_EMAXKEYS: return "group policy allows no more keys";
	case KMS_EIMMUTABLE: return "group algorithm cannot change";
	case KMS_EKEYSTATE: return "key state forbids this use";
	case KMS_EEXPIRED: return "key cryptoperiod is over";
	case KMS_EAUDIT: return "audit chain broken";
	case KMS_ESCHEMA: return "not a KMS database of a known version";
	case KMS_ESTALE: return "in-memory index out of date";
	case KMS_ELOCKED: return "KMS locked after failed updates (recovery update needed)";
	case KMS_EUPD_GAP: return "update missing (gap in the counters)";
	case KMS_EUPD_REPLAY: return "update already applied (replay)";
	case KMS_EUPD_ORDER: return "update out of order (name and counter disagree)";
	case KMS_EUPD_FOREIGN: return "update for another user's cube";
	case KMS_EUPD_CORRUPT: return "update truncated, malformed or not authentic";
	case KMS_ENOTPROV: return "not provisioned";
	case KMS_EIO: return "updates folder or backup file I/O failed";
	case KMS_EBACKUP: return "backup not authentic (wrong passphrase, or the file was changed)";
	case KMS_EBACKUP_FORMAT: return "not a SEkey backup file, truncated, or an unknown version";
	default: return "unknown error";
	}
}

const char *kms_errmsg(const struct kms *k)
{
	if (!k)
		return "no KMS handle";
	return k->msg[0] ? k->msg : "success";
}

int kms_db_errcode(const struct kms *k)
{
	return k ? k->db_rc : 0;
}

int kms_cube_errcode(const struct kms *k)
{
	return k ? k->cube_rc : 0;
}

int kms_fail(struct kms *k, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(k->msg, sizeof(k->msg), "%s: ", kms_strerror(err));
	if (n < 0 || (size_t)n >= sizeof(k->msg))
		return err;
	va_start(ap, fmt);
	vsnprintf(k->msg + n, sizeof(k->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

int kms_db_fail(struct kms *k, const char *what)
{
	k->db_rc = sqlite3_extended_errcode(k->db);
	if (k->db_rc == SQLITE_NOMEM)
		return kms_fail(k, KMS_ENOMEM, "%s: %s", what, sqlite3_errmsg(k->db));
	return kms_fail(k, KMS_EDB, "%s: %s (SQLite %d)", what, sqlite3_errmsg(k->db), k->db_rc);
}

int kms_cube_fail(struct kms *k, int rc, const char *what)
{
	k->cube_rc = rc;
	return kms_fail(k, KMS_ECUBE, "%s: %s (%s)", what, cube_strerror(rc),
			k->cube ? cube_errmsg(k->cube) : "no cube");
}
