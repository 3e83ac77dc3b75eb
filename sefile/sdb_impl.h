/*
 * sdb_impl.h - what the files of the secure database's VFS (sdb.c,
 * sdb_io.c) share and nobody else sees: the VFS and open-file structures,
 * error mapping, the fault hooks of test builds, the inode list.
 */
#ifndef SEKEYFS_SEFILE_SDB_IMPL_H
#define SEKEYFS_SEFILE_SDB_IMPL_H

#include <pthread.h>
#include <sys/types.h>

#include "sdb.h"

#define SDB_NAME_MAX 63
#define SDB_DEFAULT_SECTOR 4096u
#define SDB_DEFAULT_PAGE 4096u
#define SDB_BUSY_MS 5000
#define SDB_FILE_MODE 0644

/* The SQLITE_OPEN_* bits that say what kind of file is opened. */
#define SDB_KIND_MASK 0x0FFFFF00

struct sdb_inode {
	dev_t dev;
	ino_t ino;
	unsigned nref;          /* open sdb_files on this inode */
	int *pending;           /* their descriptors, closed when nref drops to 0 */
	unsigned npending;
	struct sdb_inode *next;
};

struct sdb_vfs {
	sqlite3_vfs base;       /* first: SQLite hands &base back to us */
	sqlite3_vfs *root;
	struct sefile_cube *pool;
	struct sefile_params params; /* for new files */
	pthread_mutex_t lock;   /* guards inodes and the fault counters */
	struct sdb_inode *inodes;
	char name[SDB_NAME_MAX + 1];
#ifdef SDB_TEST_FAULTS
	unsigned fault_ops;
	unsigned long fault_nth, fault_seen;
	int fault_persist, fault_fired;
#endif
};

struct sdb_file {
	sqlite3_file base;      /* first: SQLite's view of the file */
	struct sdb_vfs *vfs;
	struct sefile *sf;      /* NULL while the backing file is empty */
	int sf_writable;        /* sf is the read-write handle on fd */
	int fd;                 /* read-write (read-only if the file is) */
	int ro_fd;              /* read-only, for the read handle; -1 for temp files */
	uint64_t seen_backing;  /* backing size when the read handle was opened */
	int readonly;
	int kind;               /* SQLITE_OPEN_MAIN_DB, _MAIN_JOURNAL, ... */
	int on_inode_list;      /* main databases: fd is closed via the list */
	dev_t dev;
	ino_t ino;
	uint32_t sector_size;
	char *sync_dir;         /* directory to fsync at the next xSync */
	const char *path;       /* for messages */
	sqlite3_file *real;     /* root VFS file (main db only), else NULL */
	/* the root VFS's file (root->szOsFile bytes) follows */
};


/* ---- sdb_io.c ---- */
extern const sqlite3_io_methods sdb_io_methods;
/* Map a SEfile error to an SQLite code (ioerr for plain I/O failures) and
 * log what failed with SEfile's message; returns the SQLite code. */
int sdb_fail(const struct sdb_file *f, int err, int ioerr, const char *what);
/* Log errno for what failed; returns ioerr. */
int sdb_fail_errno(const struct sdb_file *f, int ioerr, const char *what);
/* (Re)open the read handle of a just-opened file: checks its header. */
int sdb_open_reader(struct sdb_file *f);
/* Release everything an open (or half-opened) file holds. */
int sdb_release(struct sdb_file *f);

/* ---- sdb.c ---- */
/* Give up a main database's descriptors (-1: none): closed when no other
 * file of ours is open on the inode any more. */
void sdb_inode_release(struct sdb_vfs *v, dev_t dev, ino_t ino, const int fds[2]);
#ifdef SDB_TEST_FAULTS
/* 1 iff the armed fault hits this operation. */
int sdb_fault_hit(struct sdb_vfs *v, unsigned op);
#define SDB_FAULT(f, op, rc) do { if (sdb_fault_hit((f)->vfs, (op))) return (rc); } while (0)
#else
#define SDB_FAULT(f, op, rc) do { } while (0)
#endif

#endif
