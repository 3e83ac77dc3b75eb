/*
 * sdb.h - the secure database: SQLite whose database, rollback journal and
 * WAL files are all SEfile files (sefile.h), through an SQLite VFS that is
 * a thin layer over the default one.  SQLite's atomic commit holds: the
 * VFS keeps the durability and ordering of every xWrite/xSync/xTruncate.
 *
 * Page size: any power of two up to the SEfile sector payload (4096 by
 * default), so one page never straddles two sectors' worth of state that
 * could tear differently.  PRAGMA page_size over the payload is refused.
 * The design, what is encrypted (every file but the WAL's -shm index) and
 * what is guaranteed: docs/SDB.md.
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
/* The same with full parameters for new files (key, algorithm, sector
 * payload; 0 fields take the SEfile defaults).  SEFILE_EINVAL for a bad
 * name (empty, over 63 bytes, already registered) or sector size. */
int sdb_vfs_register_params(struct sdb_vfs **out, const char *name, struct sefile_cube *pool,
			    const struct sefile_params *p);
/* Unregister and free v; every database opened through it must be closed. */
void sdb_vfs_unregister(struct sdb_vfs *v);
/* The name to give sqlite3_open_v2 as zVfs. */
const char *sdb_vfs_name(const struct sdb_vfs *v);
/* Sector payload of new files (the largest page size allowed). */
uint32_t sdb_vfs_sector_size(const struct sdb_vfs *v);

/* Convenience: open (creating if flags say so) path through v, set
 * page size 4096 (or the sector payload if smaller), extended result
 * codes and a busy timeout.  Returns an SQLite result code; on failure
 * *db is NULL. */
int sdb_open(struct sdb_vfs *v, const char *path, int flags, sqlite3 **db);

#ifdef SDB_TEST_FAULTS
/*
 * Fault injection, compiled only into test builds.  Once armed, the nth
 * (1-based) operation of a kind in ops fails with the SQLite I/O error of
 * that operation, without touching the file; with persist, every later
 * one fails too (a dead disk).  nth = 0 disarms.
 */
enum sdb_fault_op {
	SDB_FAULT_READ = 1,
	SDB_FAULT_WRITE = 2,
	SDB_FAULT_SYNC = 4,
	SDB_FAULT_TRUNCATE = 8,
};
void sdb_fault_arm(struct sdb_vfs *v, unsigned ops, unsigned long nth, int persist);
/* Operations of the armed kinds seen since arming; 1 iff a fault fired. */
unsigned long sdb_fault_seen(struct sdb_vfs *v);
int sdb_fault_fired(struct sdb_vfs *v);
#endif

#endif
