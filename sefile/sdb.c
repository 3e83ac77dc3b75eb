/*
 * sdb.c - the secure database's SQLite VFS: every file SQLite opens
 * (database, rollback journal, WAL, temporary files and subjournals) is a
 * SEfile file, so no page of plaintext reaches the disk.  The design and
 * its guarantees: docs/SDB.md.
 *
 * Modelled on SQLite's test_devsym.c: a shim over the default ("root")
 * VFS.  Names (xFullPathname, xAccess, xDelete), time, randomness and
 * sleeping go to the root VFS unchanged.  For a main database the root VFS
 * also opens its own file, used only for locking and for the WAL's shared
 * memory index (-shm, kept plain: it holds page numbers, frame numbers,
 * salts and checksums, never row data); the bytes go through our own
 * descriptors and sefile_pread/pwrite/truncate/fsync (sdb_io.c).
 *
 * POSIX record locks belong to the process and inode, and any close() of
 * the inode drops them all; so a main database descriptor is not closed
 * while another file of this VFS on the same inode is still open (the
 * inode list below, as os_unix.c's unixInodeInfo does).
 *
 * Sections: faults (test builds); inode list; opening; the VFS; public
 * functions.
 */
#include "sdb_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef SDB_TEST_FAULTS
int sdb_fault_hit(struct sdb_vfs *v, unsigned op)
{
	int hit = 0;

	pthread_mutex_lock(&v->lock);
	if (v->fault_nth && (v->fault_ops & op)) {
		v->fault_seen++;
		hit = v->fault_seen == v->fault_nth || (v->fault_persist && v->fault_fired);
		if (hit)
			v->fault_fired = 1;
	}
	pthread_mutex_unlock(&v->lock);
	return hit;
}

void sdb_fault_arm(struct sdb_vfs *v, unsigned ops, unsigned long nth, int persist)
{
	pthread_mutex_lock(&v->lock);
	v->fault_ops = ops;
	v->fault_nth = nth;
	v->fault_persist = persist;
	v->fault_seen = 0;
	v->fault_fired = 0;
	pthread_mutex_unlock(&v->lock);
}

unsigned long sdb_fault_seen(struct sdb_vfs *v)
{
	unsigned long n;

	pthread_mutex_lock(&v->lock);
	n = v->fault_seen;
	pthread_mutex_unlock(&v->lock);
	return n;
}

int sdb_fault_fired(struct sdb_vfs *v)
{
	int fired;

	pthread_mutex_lock(&v->lock);
	fired = v->fault_fired;
	pthread_mutex_unlock(&v->lock);
	return fired;
}
#endif

/* ---- inode list (main databases) ---- */

static struct sdb_inode *inode_find(struct sdb_vfs *v, dev_t dev, ino_t ino)
{
	struct sdb_inode *n;

	for (n = v->inodes; n; n = n->next)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

static int inode_ref(struct sdb_vfs *v, dev_t dev, ino_t ino)
{
	struct sdb_inode *n;

	pthread_mutex_lock(&v->lock);
	n = inode_find(v, dev, ino);
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&v->lock);
			return SQLITE_NOMEM;
		}
		n->dev = dev;
		n->ino = ino;
		n->next = v->inodes;
		v->inodes = n;
	}
	n->nref++;
	pthread_mutex_unlock(&v->lock);
	return SQLITE_OK;
}

static void inode_unlink(struct sdb_vfs *v, struct sdb_inode *n)
{
	struct sdb_inode **pp;

	for (pp = &v->inodes; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			return;
		}
}

/* Give up the descriptors (-1: none) of a main database: closed now if
 * no other file of ours is open on the inode, else when the last one
 * closes. */
void sdb_inode_release(struct sdb_vfs *v, dev_t dev, ino_t ino, const int fds[2])
{
	struct sdb_inode *n;
	int *grown;
	unsigned i, k;

	pthread_mutex_lock(&v->lock);
	n = inode_find(v, dev, ino);
	for (k = 0; k < 2; k++) {
		if (fds[k] < 0)
			continue;
		grown = n ? realloc(n->pending, (n->npending + 1) * sizeof(*grown)) : NULL;
		if (grown) {
			n->pending = grown;
			n->pending[n->npending++] = fds[k];
		} else {
			close(fds[k]); /* out of memory: may drop others' locks, leaks nothing */
		}
	}
	if (!n) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	if (--n->nref == 0) {
		for (i = 0; i < n->npending; i++)
			close(n->pending[i]);
		inode_unlink(v, n);
		free(n->pending);
		free(n);
	}
	pthread_mutex_unlock(&v->lock);
}

/* ---- opening ---- */

/* The directory for nameless temporary files, as os_unix.c picks it. */
static const char *sdb_temp_dir(void)
{
	const char *cand[] = { sqlite3_temp_directory, getenv("SQLITE_TMPDIR"), getenv("TMPDIR"),
			       "/var/tmp", "/usr/tmp", "/tmp" };
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] && stat(cand[i], &st) == 0 && S_ISDIR(st.st_mode) &&
		    access(cand[i], W_OK | X_OK) == 0)
			return cand[i];
	return ".";
}

/* A nameless temporary file: created and unlinked at once. */
static int sdb_open_temp(struct sdb_file *f)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/sdb-XXXXXX", sdb_temp_dir());
	if (n < 0 || (size_t)n >= sizeof(path))
		return SQLITE_CANTOPEN;
	f->fd = mkostemp(path, O_CLOEXEC);
	if (f->fd < 0)
		return sdb_fail_errno(f, SQLITE_CANTOPEN, "create temporary");
	unlink(path);
	return SQLITE_OK;
}

/* Journals and WAL files get the mode of their database. */
static mode_t sdb_create_mode(const char *name, int kind)
{
	const char *db;
	struct stat st;

	if (kind != SQLITE_OPEN_MAIN_JOURNAL && kind != SQLITE_OPEN_WAL &&
	    kind != SQLITE_OPEN_SUPER_JOURNAL)
		return SDB_FILE_MODE;
	db = kind == SQLITE_OPEN_SUPER_JOURNAL ? NULL : sqlite3_filename_database(name);
	if (db && stat(db, &st) == 0)
		return st.st_mode & 0777;
	return SDB_FILE_MODE;
}

/* Remember to fsync name's directory at the first xSync. */
static int sdb_want_dirsync(struct sdb_file *f, const char *name)
{
	const char *slash = strrchr(name, '/');

	if (!slash)
		f->sync_dir = sqlite3_mprintf(".");
	else if (slash == name)
		f->sync_dir = sqlite3_mprintf("/");
	else
		f->sync_dir = sqlite3_mprintf("%.*s", (int)(slash - name), name);
	return f->sync_dir ? SQLITE_OK : SQLITE_NOMEM;
}

/* The read-only descriptor on the same inode as fd. */
static int sdb_open_twin(struct sdb_file *f, const char *name)
{
	struct stat a, b;

	f->ro_fd = open(name, O_RDONLY | O_CLOEXEC);
	if (f->ro_fd < 0)
		return sdb_fail_errno(f, SQLITE_CANTOPEN, "open read-only");
	if (fstat(f->fd, &a) != 0 || fstat(f->ro_fd, &b) != 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		sqlite3_log(SQLITE_CANTOPEN, "sdb: %s was replaced while being opened", f->path);
		return SQLITE_CANTOPEN;
	}
	return SQLITE_OK;
}

static int sdb_open_named(struct sdb_file *f, const char *name, int flags)
{
	int oflags = O_CLOEXEC, rc;

	oflags |= (flags & SQLITE_OPEN_READWRITE) ? O_RDWR : O_RDONLY;
	if (flags & SQLITE_OPEN_CREATE)
		oflags |= O_CREAT;
	if (flags & SQLITE_OPEN_EXCLUSIVE)
		oflags |= O_EXCL;
	if (flags & SQLITE_OPEN_NOFOLLOW)
		oflags |= O_NOFOLLOW;
	f->fd = open(name, oflags, sdb_create_mode(name, f->kind));
	if (f->fd < 0 && (flags & SQLITE_OPEN_READWRITE) && f->kind != SQLITE_OPEN_MAIN_DB &&
	    (errno == EACCES || errno == EROFS)) {
		/* a read-only journal can still be rolled back from */
		f->fd = open(name, O_CLOEXEC | O_RDONLY);
		f->readonly = 1;
	}
	if (f->fd < 0)
		return sdb_fail_errno(f, SQLITE_CANTOPEN, "open");
	rc = SQLITE_OK;
	if (flags & SQLITE_OPEN_DELETEONCLOSE)
		unlink(name); /* one owner: no read-only twin needed */
	else if (!f->readonly)
		rc = sdb_open_twin(f, name);
	if (rc != SQLITE_OK)
		return rc;
	if ((flags & SQLITE_OPEN_CREATE) &&
	    (f->kind == SQLITE_OPEN_MAIN_JOURNAL || f->kind == SQLITE_OPEN_WAL ||
	     f->kind == SQLITE_OPEN_SUPER_JOURNAL)) {
		rc = sdb_want_dirsync(f, name);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* Main database: the root VFS opens the file too, for locks and -shm. */
static int sdb_open_root(struct sdb_file *f, const char *name, int *flags)
{
	struct sdb_vfs *v = f->vfs;
	sqlite3_file *real = (sqlite3_file *)(f + 1);
	int out = 0, rc;

	memset(real, 0, (size_t)v->root->szOsFile);
	rc = v->root->xOpen(v->root, name, real, *flags, &out);
	if (real->pMethods)
		f->real = real; /* xClose is owed even if xOpen failed */
	if (rc != SQLITE_OK)
		return rc;
	if (out & SQLITE_OPEN_READONLY) {
		*flags &= ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
		*flags |= SQLITE_OPEN_READONLY;
	}
	return SQLITE_OK;
}

static int sdb_open_main(struct sdb_file *f, const char *name, int *flags)
{
	struct stat st;
	int rc;

	rc = sdb_open_root(f, name, flags);
	if (rc != SQLITE_OK)
		return rc;
	rc = sdb_open_named(f, name, *flags);
	if (rc != SQLITE_OK)
		return rc;
	if (fstat(f->fd, &st) != 0)
		return sdb_fail_errno(f, SQLITE_CANTOPEN, "fstat");
	rc = inode_ref(f->vfs, st.st_dev, st.st_ino);
	if (rc != SQLITE_OK)
		return rc;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->on_inode_list = 1;
	return SQLITE_OK;
}

static int sdb_xopen(sqlite3_vfs *pv, sqlite3_filename name, sqlite3_file *pf, int flags,
		     int *out_flags)
{
	struct sdb_vfs *v = (struct sdb_vfs *)pv;
	struct sdb_file *f = (struct sdb_file *)pf;
	int rc;

	memset(f, 0, sizeof(*f));
	f->fd = f->ro_fd = -1;
	f->vfs = v;
	f->kind = flags & SDB_KIND_MASK;
	f->path = name ? name : "(temporary file)";
	f->readonly = (flags & SQLITE_OPEN_READWRITE) == 0;
	f->sector_size = v->params.sector_size;
	if (f->kind == SQLITE_OPEN_MAIN_DB && name)
		rc = sdb_open_main(f, name, &flags);
	else if (name)
		rc = sdb_open_named(f, name, flags);
	else
		rc = sdb_open_temp(f);
	if (rc == SQLITE_OK) {
		f->readonly = f->readonly || (flags & SQLITE_OPEN_READWRITE) == 0;
		rc = sdb_open_reader(f); /* an existing file's header is checked now */
		if (rc == SQLITE_IOERR_DATA && f->kind == SQLITE_OPEN_MAIN_DB)
			rc = SQLITE_NOTADB;
		else if (rc != SQLITE_OK)
			rc = SQLITE_CANTOPEN;
	}
	if (rc != SQLITE_OK) {
		sdb_release(f);
		return rc;
	}
	if (f->readonly) {
		flags &= ~SQLITE_OPEN_READWRITE;
		flags |= SQLITE_OPEN_READONLY;
	}
	if (out_flags)
		*out_flags = flags;
	pf->pMethods = &sdb_io_methods;
	return SQLITE_OK;
}

/* ---- the VFS: everything but xOpen is the root VFS's ---- */

static sqlite3_vfs *root_of(sqlite3_vfs *pv)
{
	return ((struct sdb_vfs *)pv)->root;
}

static int sdb_xdelete(sqlite3_vfs *pv, const char *name, int sync_dir)
{
	return root_of(pv)->xDelete(root_of(pv), name, sync_dir);
}

static int sdb_xaccess(sqlite3_vfs *pv, const char *name, int flags, int *out)
{
	return root_of(pv)->xAccess(root_of(pv), name, flags, out);
}

static int sdb_xfullpathname(sqlite3_vfs *pv, const char *name, int n, char *out)
{
	return root_of(pv)->xFullPathname(root_of(pv), name, n, out);
}

static void *sdb_xdlopen(sqlite3_vfs *pv, const char *name)
{
	return root_of(pv)->xDlOpen(root_of(pv), name);
}

static void sdb_xdlerror(sqlite3_vfs *pv, int n, char *msg)
{
	root_of(pv)->xDlError(root_of(pv), n, msg);
}

static void (*sdb_xdlsym(sqlite3_vfs *pv, void *h, const char *sym))(void)
{
	return root_of(pv)->xDlSym(root_of(pv), h, sym);
}

static void sdb_xdlclose(sqlite3_vfs *pv, void *h)
{
	root_of(pv)->xDlClose(root_of(pv), h);
}

static int sdb_xrandomness(sqlite3_vfs *pv, int n, char *out)
{
	return root_of(pv)->xRandomness(root_of(pv), n, out);
}

static int sdb_xsleep(sqlite3_vfs *pv, int us)
{
	return root_of(pv)->xSleep(root_of(pv), us);
}

static int sdb_xcurrenttime(sqlite3_vfs *pv, double *t)
{
	return root_of(pv)->xCurrentTime(root_of(pv), t);
}

static int sdb_xgetlasterror(sqlite3_vfs *pv, int n, char *msg)
{
	return root_of(pv)->xGetLastError(root_of(pv), n, msg);
}

static int sdb_xcurrenttimeint64(sqlite3_vfs *pv, sqlite3_int64 *t)
{
	sqlite3_vfs *r = root_of(pv);
	double d;
	int rc;

	if (r->iVersion >= 2 && r->xCurrentTimeInt64)
		return r->xCurrentTimeInt64(r, t);
	rc = r->xCurrentTime(r, &d);
	*t = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

/* ---- public functions ---- */

static int sector_size_ok(uint32_t s)
{
	return s == 0 || (s >= 512 && s <= 65536 && (s & (s - 1)) == 0);
}

int sdb_vfs_register_params(struct sdb_vfs **out, const char *name, struct sefile_cube *pool,
			    const struct sefile_params *p)
{
	struct sdb_vfs *v;
	sqlite3_vfs *root;

	*out = NULL;
	if (!name || !pool || !p || !*name || strlen(name) > SDB_NAME_MAX ||
	    !sector_size_ok(p->sector_size))
		return SEFILE_EINVAL;
	if (sqlite3_initialize() != SQLITE_OK)
		return SEFILE_ENOMEM;
	root = sqlite3_vfs_find(NULL);
	if (!root || sqlite3_vfs_find(name))
		return SEFILE_EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return SEFILE_ENOMEM;
	if (pthread_mutex_init(&v->lock, NULL) != 0) {
		free(v);
		return SEFILE_ENOMEM;
	}
	v->root = root;
	v->pool = pool;
	v->params = *p;
	if (v->params.sector_size == 0)
		v->params.sector_size = SDB_DEFAULT_SECTOR;
	memcpy(v->name, name, strlen(name) + 1);
	v->base = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct sdb_file) + root->szOsFile,
		.mxPathname = root->mxPathname,
		.zName = v->name,
		.pAppData = v,
		.xOpen = sdb_xopen,
		.xDelete = sdb_xdelete,
		.xAccess = sdb_xaccess,
		.xFullPathname = sdb_xfullpathname,
		.xDlOpen = sdb_xdlopen,
		.xDlError = sdb_xdlerror,
		.xDlSym = sdb_xdlsym,
		.xDlClose = sdb_xdlclose,
		.xRandomness = sdb_xrandomness,
		.xSleep = sdb_xsleep,
		.xCurrentTime = sdb_xcurrenttime,
		.xGetLastError = sdb_xgetlasterror,
		.xCurrentTimeInt64 = sdb_xcurrenttimeint64,
	};
	if (sqlite3_vfs_register(&v->base, 0) != SQLITE_OK) {
		pthread_mutex_destroy(&v->lock);
		free(v);
		return SEFILE_ENOMEM;
	}
	*out = v;
	return SEFILE_OK;
}

int sdb_vfs_register(struct sdb_vfs **out, const char *name, struct sefile_cube *pool,
		     uint32_t key_id)
{
	struct sefile_params p = { .key_id = key_id };

	return sdb_vfs_register_params(out, name, pool, &p);
}

void sdb_vfs_unregister(struct sdb_vfs *v)
{
	struct sdb_inode *n, *next;
	unsigned i;

	if (!v)
		return;
	sqlite3_vfs_unregister(&v->base);
	for (n = v->inodes; n; n = next) { /* only if a caller leaked a database */
		next = n->next;
		for (i = 0; i < n->npending; i++)
			close(n->pending[i]);
		free(n->pending);
		free(n);
	}
	pthread_mutex_destroy(&v->lock);
	free(v);
}

const char *sdb_vfs_name(const struct sdb_vfs *v)
{
	return v->name;
}

uint32_t sdb_vfs_sector_size(const struct sdb_vfs *v)
{
	return v->params.sector_size;
}

int sdb_open(struct sdb_vfs *v, const char *path, int flags, sqlite3 **db)
{
	uint32_t page = SDB_DEFAULT_PAGE;
	char sql[64];
	int rc;

	*db = NULL;
	rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_EXRESCODE, v->name);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(*db, 1);
	rc = sqlite3_busy_timeout(*db, SDB_BUSY_MS);
	if (rc != SQLITE_OK)
		goto fail;
	if (page > v->params.sector_size)
		page = v->params.sector_size;
	snprintf(sql, sizeof(sql), "PRAGMA page_size=%u", (unsigned)page);
	rc = sqlite3_exec(*db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return SQLITE_OK;
fail:
	sqlite3_close_v2(*db);
	*db = NULL;
	return rc;
}
