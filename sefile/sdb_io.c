/*
 * sdb_io.c - the secure database's file methods (sqlite3_io_methods):
 * SQLite's reads, writes, truncates and syncs of a database, journal or
 * WAL go to sefile_pread/pwrite/truncate/fsync; locks and the WAL index
 * go to the root VFS's file of the main database.  The VFS itself,
 * opening and the inode list are sdb.c; the design is docs/SDB.md.
 *
 * Sections: errors; read and write handles; io methods.
 */
#include "sdb_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */

/* Map a SEfile error to an SQLite code (ioerr for plain I/O failures) and
 * log what failed with SEfile's message. */
int sdb_fail(const struct sdb_file *f, int err, int ioerr, const char *what)
{
	int rc;

	switch (err) {
	case SEFILE_ENOSPC: rc = SQLITE_FULL; break;
	case SEFILE_ENOMEM: rc = SQLITE_IOERR_NOMEM; break;
	case SEFILE_EINTEGRITY:
	case SEFILE_EFORMAT: rc = SQLITE_IOERR_DATA; break;
	default: rc = ioerr; break;
	}
	sqlite3_log(rc, "sdb: %s %s: %s: %s", what, f->path, sefile_strerror(err), sefile_errmsg());
	return rc;
}

int sdb_fail_errno(const struct sdb_file *f, int ioerr, const char *what)
{
	sqlite3_log(ioerr, "sdb: %s %s: %s", what, f->path, strerror(errno));
	return ioerr;
}

/* ---- read and write handles ---- */

/*
 * Readers and the writer.  sefile_open on a read-write descriptor repairs
 * crash residue (an append cut short: docs/FORMAT.md) by cutting the
 * backing file; done while another connection is in the middle of an
 * append, that would destroy its sectors.  So a file is read through a
 * SEfile handle on a read-only descriptor (ro_fd), which never changes
 * the backing file, and the read-write handle is opened only at the first
 * xWrite/xTruncate, when SQLite holds the write lock (of the database,
 * or the WAL's) and no other writer can exist: any residue then is a dead
 * writer's and repairing it is right.  Nameless temporary files belong to
 * one connection and use their one descriptor.
 *
 * An empty backing file (a new database, or one whose creator died before
 * its first write) has no header until that first write, for the same
 * reason: two processes never both write a header.
 */
#define SDB_RACE_TRIES 5
#define SDB_RACE_SLEEP_US 2000

static void sdb_drop(struct sdb_file *f)
{
	int err;

	if (f->sf) {
		/* a write handle's deferred error: every write it made was
		 * already checked, so it is only logged here */
		err = sefile_close(f->sf);
		if (err != SEFILE_OK)
			sdb_fail(f, err, SQLITE_IOERR_CLOSE, "close handle of");
		f->sf = NULL;
	}
	f->sf_writable = 0;
}

/* backing: the backing size seen *before* the header was read, so a
 * file that grows while it is opened is seen as moved at the next look. */
static int sdb_note_handle(struct sdb_file *f, uint64_t backing)
{
	struct sefile_info info;
	int err;

	err = sefile_info(f->sf, &info);
	if (err != SEFILE_OK)
		return sdb_fail(f, err, SQLITE_IOERR_READ, "info");
	f->sector_size = info.sector_size;
	f->seen_backing = backing;
	return SQLITE_OK;
}

/* (Re)open the read handle.  Another connection may be half-way through
 * an append (sector and header not both written yet): a header that does
 * not fit the backing size is retried a few times before it is damage. */
int sdb_open_reader(struct sdb_file *f)
{
	int read_fd = f->ro_fd >= 0 ? f->ro_fd : f->fd, err = SEFILE_OK, i;
	struct stat st;

	sdb_drop(f);
	for (i = 0; i < SDB_RACE_TRIES; i++) {
		if (i > 0)
			usleep(SDB_RACE_SLEEP_US);
		if (fstat(read_fd, &st) != 0)
			return sdb_fail_errno(f, SQLITE_IOERR_FSTAT, "fstat");
		if (st.st_size == 0) {
			f->seen_backing = 0;
			return SQLITE_OK; /* still empty: reads as nothing */
		}
		err = sefile_open(&f->sf, f->vfs->pool, read_fd);
		if (err == SEFILE_OK) {
			f->sf_writable = read_fd == f->fd && !f->readonly;
			return sdb_note_handle(f, (uint64_t)st.st_size);
		}
		f->sf = NULL;
		if (err != SEFILE_EINTEGRITY)
			break;
	}
	return sdb_fail(f, err, SQLITE_IOERR_READ, "open");
}

/* The read-write handle, for a write under SQLite's write lock. */
static int sdb_open_writer(struct sdb_file *f)
{
	struct stat st;
	int err;

	if (f->sf && f->sf_writable)
		return SQLITE_OK;
	if (f->readonly)
		return SQLITE_READONLY;
	sdb_drop(f);
	if (fstat(f->fd, &st) != 0)
		return sdb_fail_errno(f, SQLITE_IOERR_FSTAT, "fstat");
	if (st.st_size > 0)
		err = sefile_open(&f->sf, f->vfs->pool, f->fd);
	else
		err = sefile_create(&f->sf, f->vfs->pool, f->fd, &f->vfs->params);
	if (err != SEFILE_OK) {
		f->sf = NULL;
		return sdb_fail(f, err, SQLITE_IOERR_WRITE, st.st_size > 0 ? "open" : "create");
	}
	f->sf_writable = 1;
	return sdb_note_handle(f, (uint64_t)st.st_size);
}

/* Another connection (this process or another) may have grown or cut the
 * file since the handle was opened, and struct sefile keeps the plaintext
 * length it read from the header: when the backing size moved, open the
 * header again.  One fstat per call when nothing moved.  (While we write,
 * SQLite's locks keep everyone else out, so our own writes are the only
 * change and the backing size follows our length.) */
static int sdb_refresh(struct sdb_file *f)
{
	struct stat st;
	uint64_t size = 0, want;
	int err;

	if (!f->sf)
		return sdb_open_reader(f);
	if (fstat(f->fd, &st) != 0)
		return sdb_fail_errno(f, SQLITE_IOERR_FSTAT, "fstat");
	want = f->seen_backing;
	if (f->sf_writable) {
		err = sefile_size(f->sf, &size);
		if (err != SEFILE_OK)
			return sdb_fail(f, err, SQLITE_IOERR_FSTAT, "size");
		want = sefile_backing_size(size, f->sector_size);
	}
	if ((uint64_t)st.st_size == want)
		return SQLITE_OK;
	return sdb_open_reader(f);
}

/* ---- io methods ---- */

/* One pass of a read: bytes done, or a negative SEfile code. */
static ssize_t sdb_read_pass(struct sdb_file *f, uint8_t *p, size_t amt, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (f->sf && done < amt) {
		n = sefile_pread(f->sf, p + done, amt - done, off + done);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int sdb_xread(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off)
{
	struct sdb_file *f = (struct sdb_file *)pf;
	uint8_t *p = buf;
	ssize_t done = 0;
	int rc, i, reread_short = 0;

	if (amt < 0 || off < 0)
		return SQLITE_IOERR_READ;
	SDB_FAULT(f, SDB_FAULT_READ, SQLITE_IOERR_READ);
	for (i = 0; i < SDB_RACE_TRIES; i++) {
		rc = i == 0 ? sdb_refresh(f) : sdb_open_reader(f);
		if (rc != SQLITE_OK)
			return rc;
		done = sdb_read_pass(f, p, (size_t)amt, (uint64_t)off);
		if (f->sf_writable)
			break; /* we are the writer: nobody else moves the file */
		/* a reader may catch a sector while its writer rewrites it:
		 * what fails to authenticate is read again before it is damage */
		if (done == SEFILE_EINTEGRITY) {
			usleep(SDB_RACE_SLEEP_US);
			continue;
		}
		/* short: the file may have grown since the header was read */
		if (done >= 0 && done < amt && !reread_short) {
			reread_short = 1;
			continue;
		}
		break;
	}
	if (done < 0) {
		memset(buf, 0, (size_t)amt); /* never hand back part of a bad read */
		return sdb_fail(f, (int)done, SQLITE_IOERR_READ, "read");
	}
	if (done < amt) {
		memset(p + done, 0, (size_t)amt - (size_t)done); /* SQLite requires the zero fill */
		return SQLITE_IOERR_SHORT_READ;
	}
	return SQLITE_OK;
}

static int sdb_xwrite(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off)
{
	struct sdb_file *f = (struct sdb_file *)pf;
	const uint8_t *p = buf;
	size_t done = 0;
	ssize_t n;
	int rc;

	if (amt < 0 || off < 0)
		return SQLITE_IOERR_WRITE;
	SDB_FAULT(f, SDB_FAULT_WRITE, SQLITE_IOERR_WRITE);
	rc = sdb_refresh(f);
	if (rc == SQLITE_OK)
		rc = sdb_open_writer(f);
	if (rc != SQLITE_OK)
		return rc;
	while (done < (size_t)amt) {
		n = sefile_pwrite(f->sf, p + done, (size_t)amt - done, (uint64_t)off + done);
		if (n < 0)
			return sdb_fail(f, (int)n, SQLITE_IOERR_WRITE, "write");
		if (n == 0) {
			sqlite3_log(SQLITE_IOERR_WRITE, "sdb: write %s: no progress", f->path);
			return SQLITE_IOERR_WRITE;
		}
		done += (size_t)n;
	}
	return SQLITE_OK;
}

static int sdb_xtruncate(sqlite3_file *pf, sqlite3_int64 size)
{
	struct sdb_file *f = (struct sdb_file *)pf;
	int rc, err;

	if (size < 0)
		return SQLITE_IOERR_TRUNCATE;
	SDB_FAULT(f, SDB_FAULT_TRUNCATE, SQLITE_IOERR_TRUNCATE);
	rc = sdb_refresh(f);
	if (rc != SQLITE_OK)
		return rc;
	if (!f->sf && size == 0)
		return SQLITE_OK; /* empty, truncated to 0: nothing to do */
	rc = sdb_open_writer(f);
	if (rc != SQLITE_OK)
		return rc;
	err = sefile_truncate(f->sf, (uint64_t)size);
	if (err != SEFILE_OK)
		return sdb_fail(f, err, SQLITE_IOERR_TRUNCATE, "truncate");
	return SQLITE_OK;
}

/* fsync the directory a new journal or WAL was created in, once, so its
 * name is as durable as its content (os_unix.c's UNIXFILE_DIRSYNC). */
static int sdb_sync_dir(struct sdb_file *f)
{
	int dfd, rc = SQLITE_OK;

	if (!f->sync_dir)
		return SQLITE_OK;
	dfd = open(f->sync_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		rc = sdb_fail_errno(f, SQLITE_IOERR_DIR_FSYNC, "fsync directory of");
	if (dfd >= 0)
		close(dfd);
	if (rc == SQLITE_OK) {
		sqlite3_free(f->sync_dir);
		f->sync_dir = NULL;
	}
	return rc;
}

static int sdb_xsync(sqlite3_file *pf, int flags)
{
	struct sdb_file *f = (struct sdb_file *)pf;
	int err;

	SDB_FAULT(f, SDB_FAULT_SYNC, SQLITE_IOERR_FSYNC);
	if (f->sf && f->sf_writable) {
		err = sefile_fsync(f->sf, (flags & SQLITE_SYNC_DATAONLY) != 0);
		if (err != SEFILE_OK)
			return sdb_fail(f, err, SQLITE_IOERR_FSYNC, "fsync");
	} else if (fsync(f->fd) != 0) {
		return sdb_fail_errno(f, SQLITE_IOERR_FSYNC, "fsync");
	}
	return sdb_sync_dir(f);
}

static int sdb_xfilesize(sqlite3_file *pf, sqlite3_int64 *size)
{
	struct sdb_file *f = (struct sdb_file *)pf;
	uint64_t n = 0;
	int rc, err;

	*size = 0;
	rc = sdb_refresh(f);
	if (rc != SQLITE_OK)
		return rc;
	if (!f->sf)
		return SQLITE_OK;
	err = sefile_size(f->sf, &n);
	if (err != SEFILE_OK)
		return sdb_fail(f, err, SQLITE_IOERR_FSTAT, "size");
	if (n > (uint64_t)INT64_MAX)
		return SQLITE_IOERR_FSTAT;
	*size = (sqlite3_int64)n;
	return SQLITE_OK;
}

static int sdb_xlock(sqlite3_file *pf, int level)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	return f->real ? f->real->pMethods->xLock(f->real, level) : SQLITE_OK;
}

static int sdb_xunlock(sqlite3_file *pf, int level)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	return f->real ? f->real->pMethods->xUnlock(f->real, level) : SQLITE_OK;
}

static int sdb_xcheckreserved(sqlite3_file *pf, int *out)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	*out = 0;
	return f->real ? f->real->pMethods->xCheckReservedLock(f->real, out) : SQLITE_OK;
}

/* PRAGMA page_size above the sector payload would spread one page over
 * two sectors, which could then tear apart: refused. */
static int sdb_pragma(struct sdb_file *f, char **arg)
{
	char *end;
	unsigned long want;

	if (!arg[1] || !arg[2] || sqlite3_stricmp(arg[1], "page_size") != 0)
		return SQLITE_NOTFOUND;
	errno = 0;
	want = strtoul(arg[2], &end, 10);
	if (errno == 0 && *end == '\0' && want <= f->sector_size)
		return SQLITE_NOTFOUND; /* SQLite applies it as usual */
	arg[0] = sqlite3_mprintf("page size %s is over the SEfile sector payload %u",
				 arg[2], (unsigned)f->sector_size);
	return SQLITE_ERROR;
}

static int sdb_xfilecontrol(sqlite3_file *pf, int op, void *arg)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	switch (op) {
	case SQLITE_FCNTL_VFSNAME:
		*(char **)arg = sqlite3_mprintf("%s", f->vfs->name);
		return SQLITE_OK;
	case SQLITE_FCNTL_PRAGMA:
		return sdb_pragma(f, arg);
	case SQLITE_FCNTL_LOCKSTATE:
	case SQLITE_FCNTL_HAS_MOVED:
	case SQLITE_FCNTL_LOCK_TIMEOUT:
	case SQLITE_FCNTL_PERSIST_WAL:
	case SQLITE_FCNTL_EXTERNAL_READER:
		/* about locks and names: the root file knows */
		if (f->real)
			return f->real->pMethods->xFileControl(f->real, op, arg);
		return SQLITE_NOTFOUND;
	default:
		/* size hints, chunk sizes, mmap would touch the backing bytes */
		return SQLITE_NOTFOUND;
	}
}

static int sdb_xsectorsize(sqlite3_file *pf)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	return (int)f->sector_size;
}

/* No SQLITE_IOCAP_POWERSAFE_OVERWRITE: writing a page re-seals the whole
 * sector it lies in, so a torn write can damage its neighbours in the
 * sector; SQLite then journals every page of a sector together. */
static int sdb_xdevicechar(sqlite3_file *pf)
{
	return 0;
}

static int sdb_xshmmap(sqlite3_file *pf, int region, int size, int extend, void volatile **pp)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	*pp = NULL;
	if (!f->real)
		return SQLITE_IOERR_SHMMAP;
	return f->real->pMethods->xShmMap(f->real, region, size, extend, pp);
}

static int sdb_xshmlock(sqlite3_file *pf, int offset, int n, int flags)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	if (!f->real)
		return SQLITE_IOERR_SHMLOCK;
	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void sdb_xshmbarrier(sqlite3_file *pf)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	if (f->real)
		f->real->pMethods->xShmBarrier(f->real);
}

static int sdb_xshmunmap(sqlite3_file *pf, int delete_flag)
{
	struct sdb_file *f = (struct sdb_file *)pf;

	return f->real ? f->real->pMethods->xShmUnmap(f->real, delete_flag) : SQLITE_OK;
}

int sdb_release(struct sdb_file *f)
{
	int rc = SQLITE_OK, err;

	if (f->sf) {
		err = sefile_close(f->sf);
		f->sf = NULL;
		if (err != SEFILE_OK)
			rc = sdb_fail(f, err, SQLITE_IOERR_CLOSE, "close");
	}
	if (f->real) {
		if (f->real->pMethods)
			f->real->pMethods->xClose(f->real);
		f->real = NULL;
	}
	if (f->on_inode_list) {
		int fds[2] = { f->fd, f->ro_fd };

		sdb_inode_release(f->vfs, f->dev, f->ino, fds);
	} else {
		if (f->fd >= 0)
			close(f->fd);
		if (f->ro_fd >= 0)
			close(f->ro_fd);
	}
	f->fd = f->ro_fd = -1;
	sqlite3_free(f->sync_dir);
	f->sync_dir = NULL;
	return rc;
}

static int sdb_xclose(sqlite3_file *pf)
{
	return sdb_release((struct sdb_file *)pf);
}

const sqlite3_io_methods sdb_io_methods = {
	.iVersion = 2, /* shared memory; no xFetch: SQLite must not mmap ciphertext */
	.xClose = sdb_xclose,
	.xRead = sdb_xread,
	.xWrite = sdb_xwrite,
	.xTruncate = sdb_xtruncate,
	.xSync = sdb_xsync,
	.xFileSize = sdb_xfilesize,
	.xLock = sdb_xlock,
	.xUnlock = sdb_xunlock,
	.xCheckReservedLock = sdb_xcheckreserved,
	.xFileControl = sdb_xfilecontrol,
	.xSectorSize = sdb_xsectorsize,
	.xDeviceCharacteristics = sdb_xdevicechar,
	.xShmMap = sdb_xshmmap,
	.xShmLock = sdb_xshmlock,
	.xShmBarrier = sdb_xshmbarrier,
	.xShmUnmap = sdb_xshmunmap,
};

