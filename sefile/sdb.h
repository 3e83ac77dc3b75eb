/*
 * sdb.h - the secure database: SQLite whose database, rollback journal and
 * WAL files are all SEfile files (sefile.h), through an SQLite VFS that is
 * a thin layer over the default one.  SQLite's atomic commit holds: the
 * VFS keeps the durability and ordering of every xWrite/xSync/xTruncate.
 *
 * Page size: any power of two up to the SEfile sector payload (4096 by
 * default), so one page never straddles two sectors' worth of state that
 * could tear differently.
 */
#ifndef SEKEYFS_SEFILE_SDB_H
#define SEKEYFS_SEFILE_SDB_H

#include <sqlite3.h>
#include <stdint.h>

#include "sefile.h"

struct sdb_vfs;

/* Register a VFS named name (unique per process) that keeps files as SEfile
 * files sealed by pool, new files under key_id.  Returns SEFILE_OK or a
 * code; the VFS stays registered until sdb_vfs_unregister. */
int sdb_vfs_register(struct sdb_vfs **out, const char *name, struct sefile_cube *pool,
		     uint32_t key_id);
void sdb_vfs_unregister(struct sdb_vfs *v);
/* The name to give sqlite3_open_v2 as zVfs. */
const char *sdb_vfs_name(const struct sdb_vfs *v);

/* Convenience: open (creating if flags say so) path through v, set
 * page size 4096 and a busy timeout.  Returns an SQLite result code. */
int sdb_open(struct sdb_vfs *v, const char *path, int flags, sqlite3 **db);

#endif
