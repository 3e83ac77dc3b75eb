/*
 * dev_backup.h - the PASSPHRASE_DERIVE handler (dev_backup.c), declared
 * here so that device.c's request table can name it without touching the
 * shared dev_internal.h.
 */
#ifndef SEKEYFS_DEV_BACKUP_H
#define SEKEYFS_DEV_BACKUP_H

#include "dev_internal.h"

/* PASSPHRASE_DERIVE (wire.h): store up to WIRE_DERIVE_MAX_KEYS keys derived
 * from a passphrase sealed under the session's pin_key. */
int dev_op_passphrase_derive(struct device *d, struct request *r, struct wbuf *resp);

#endif
