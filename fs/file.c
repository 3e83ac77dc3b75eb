/*
 * file.c - file contents: every inode has at most one open SEfile file,
 * shared by all its open handles (so a size or a sector written through
 * one handle is what the next read through another sees), opened on the
 * first open and closed on the last release.  Reads and writes go straight
 * to sefile_pread/pwrite, which batch many sectors per cube request and
 * lock the file themselves; sf_lock only keeps the SEfile in place while
 * it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

/* Open the backing object of ino for the SEfile layer.  The mount wants a
 * read-write fd so one SEfile serves every handle; a file the daemon may
 * only read is opened read-only and upgraded when a writer comes. */
static int open_backing(struct sekeyfs *fs, struct fs_inode *ino, int want_write, int *writable)
{
	char path[64];
	int fd;

	fs_proc_path(ino, path, sizeof(path));
	*writable = 0;
	if (!fs->cfg.read_only) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			*writable = 1;
			return fd;
		}
		if (want_write || (errno != EACCES && errno != EPERM && errno != EROFS))
			return -errno;
	} else if (want_write) {
		return -EROFS;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

static void close_shared(struct sekeyfs *fs, struct fs_inode *ino)
{
	int rc;

	if (ino->sf) {
		rc = sefile_close(ino->sf);
		if (rc != SEFILE_OK)
			fs_sefile_err(fs, rc, "close");
	}
	if (ino->sf_fd >= 0)
		close(ino->sf_fd);
	ino->sf = NULL;
	ino->sf_fd = -1;
	ino->sf_writable = 0;
}

int fs_file_acquire(struct sekeyfs *fs, struct fs_inode *ino, int want_write)
{
	struct sefile_info info;
	struct sefile *sf = NULL;
	int fd, writable, rc;

	pthread_rwlock_wrlock(&ino->sf_lock);
	if (ino->sf && (ino->sf_writable || !want_write)) {
		ino->sf_users++;
		pthread_rwlock_unlock(&ino->sf_lock);
		return 0;
	}
	fd = open_backing(fs, ino, want_write, &writable);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = sefile_open(&sf, fs->pool, fd);
	if (rc != SEFILE_OK && writable && !want_write && sefile_errno(rc) == ENOSPC) {
		/* No room to repair what a failed write left (docs/FORMAT.md,
		 * "Crash residue"): a reader gets the file through a read-only
		 * open, which settles it in memory; the next writer repairs it. */
		char path[64];

		close(fd);
		fs_proc_path(ino, path, sizeof(path));
		writable = 0;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			goto out;
		}
		rc = sefile_open(&sf, fs->pool, fd);
	}
	if (rc != SEFILE_OK) {
		/* Say why a key is missing when the KMS knows (destroyed). */
		if (rc == SEFILE_ENOKEY && fs->kms && sefile_peek_header(fd, &info) == SEFILE_OK)
			fs_key_warn(fs, info.key_id, "open");
		close(fd);
		rc = fs_sefile_err(fs, rc, "open");
		goto out;
	}
	if (sefile_info(sf, &info) == SEFILE_OK) {
		ino->sector_size = info.sector_size;
		if (fs->kms)
			fs_key_warn(fs, info.key_id, "open");
	}
	/* Every handle now shares the new one (the old one, if any, was a
	 * read-only open of the same file: nothing pending in it). */
	close_shared(fs, ino);
	ino->sf = sf;
	ino->sf_fd = fd;
	ino->sf_writable = writable;
	ino->sf_users++;
	rc = 0;
out:
	pthread_rwlock_unlock(&ino->sf_lock);
	return rc;
}

void fs_file_release(struct sekeyfs *fs, struct fs_inode *ino)
{
	pthread_rwlock_wrlock(&ino->sf_lock);
	if (ino->sf_users > 0 && --ino->sf_users == 0) {
		close_shared(fs, ino);
		fs_readahead_free(ino);
	}
	pthread_rwlock_unlock(&ino->sf_lock);
}

void fs_file_install(struct sekeyfs *fs, struct fs_inode *ino, struct sefile *sf, int fd)
{
	struct sefile_info info;

	pthread_rwlock_wrlock(&ino->sf_lock);
	if (ino->sf) {
		/* Someone opened it between our rename and now: use theirs. */
		sefile_close(sf);
		close(fd);
	} else {
		if (sefile_info(sf, &info) == SEFILE_OK)
			ino->sector_size = info.sector_size;
		ino->sf = sf;
		ino->sf_fd = fd;
		ino->sf_writable = 1;
	}
	ino->sf_users++;
	pthread_rwlock_unlock(&ino->sf_lock);
}

int fs_file_create(struct sekeyfs *fs, int dirfd, const char *bname, mode_t mode,
		   uint32_t key_id, struct sefile **sfp, int *fdp)
{
	struct sefile_params p = { .key_id = key_id, .sector_size = fs->sector_size };
	struct sefile *sf = NULL;
	uint8_t r[8];
	char tmp[64];
	int fd, rc;

	*sfp = NULL;
	*fdp = -1;
	rc = fs_random(r, sizeof(r));
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), FS_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7]);
	fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
	if (fd < 0)
		return -errno;
	rc = sefile_create(&sf, fs->pool, fd, &p);
	if (rc != SEFILE_OK) {
		rc = fs_sefile_err(fs, rc, "create");
		goto fail;
	}
	if (sefile_rename_noreplace(dirfd, tmp, dirfd, bname) != 0) {
		rc = -errno;
		goto fail;
	}
	*sfp = sf;
	*fdp = fd;
	return 0;
fail:
	if (sf)
		sefile_close(sf);
	close(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

/* ---- operations ---- */

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

static int wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	struct fs_handle *h;
	int rc, wr = wants_write(fi->flags) || (fi->flags & O_TRUNC);

	if (!S_ISREG(p->type)) {
		fuse_reply_err(req, S_ISDIR(p->type) ? EISDIR : EINVAL);
		return;
	}
	if (wr && fs->cfg.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = fs_file_acquire(fs, p, wr);
	if (!rc && (fi->flags & O_TRUNC)) {
		pthread_rwlock_rdlock(&p->sf_lock);
		rc = sefile_truncate(p->sf, 0);
		fs_readahead_drop(p);
		pthread_rwlock_unlock(&p->sf_lock);
		rc = rc == SEFILE_OK ? 0 : fs_sefile_err(fs, rc, "open: truncate");
		if (rc)
			fs_file_release(fs, p);
	}
	if (rc) {
		free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	h->ino = p;
	/* With the write-back cache the kernel places O_APPEND writes itself. */
	h->append = !fs->writeback && (fi->flags & O_APPEND);
	h->writable = wr;
	fi->fh = (uintptr_t)h;
	/* This mount is the one writer of what it caches; the kernel still
	 * drops the cache when getattr shows another writer's change. */
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The opener was interrupted: no release will come for this. */
		fs_file_release(fs, p);
		free(h);
	}
}

/*
 * Daemon-side read-ahead.  The kernel sends reads of at most 128 KiB even
 * with a 1 MiB read-ahead window, and each one would cost a backing pread
 * and a cube round trip.  When a file is read sequentially (a read starts
 * where the previous one ended), one read of FS_RA_SIZE bytes opens up to
 * 256 sectors in a single cube request, and the plaintext after the part
 * asked for is kept here for the next reads.  Any change to the file
 * (write, truncate, fallocate, O_TRUNC, a reconnect) drops it, under
 * ra_mu, before the change is answered; the buffer is wiped when freed.
 */
#define FS_RA_SIZE (1u << 20)

struct fs_readahead {
	uint64_t off;      /* plaintext offset of buf[0] */
	size_t len;        /* valid bytes in buf */
	int eof;           /* the file ended inside buf */
	uint64_t next;     /* where a sequential reader reads next */
	uint8_t buf[FS_RA_SIZE];
};

void fs_readahead_drop(struct fs_inode *ino)
{
	pthread_mutex_lock(&ino->ra_mu);
	if (ino->ra) {
		ino->ra->len = 0;
		ino->ra->eof = 0;
	}
	pthread_mutex_unlock(&ino->ra_mu);
}

void fs_readahead_free(struct fs_inode *ino)
{
	struct fs_readahead *ra;

	pthread_mutex_lock(&ino->ra_mu);
	ra = ino->ra;
	ino->ra = NULL;
	pthread_mutex_unlock(&ino->ra_mu);
	if (ra) {
		OPENSSL_cleanse(ra, sizeof(*ra));
		free(ra);
	}
}

/* Serve [off, off + size) from the read-ahead buffer if it holds it (or
 * holds its start and the end of the file).  Returns the bytes copied, or
 * -1 for a miss.  Caller holds ra_mu. */
static ssize_t ra_hit(struct fs_readahead *ra, char *out, size_t size, uint64_t off)
{
	uint64_t end = ra->off + ra->len;
	size_t n;

	if (!ra->len || off < ra->off || off >= end)
		return ra->eof && ra->len == 0 && off == ra->off ? 0 : -1;
	n = (size_t)(end - off);
	if (n < size && !ra->eof)
		return -1;
	n = n < size ? n : size;
	memcpy(out, ra->buf + (off - ra->off), n);
	return (ssize_t)n;
}

/* A read of ino's SEfile through the read-ahead buffer.  Caller holds
 * sf_lock shared and has checked ino->sf. */
static ssize_t read_ahead(struct fs_inode *ino, char *out, size_t size, uint64_t off)
{
	struct fs_readahead *ra;
	ssize_t n;

	if (size >= FS_RA_SIZE)
		return sefile_pread(ino->sf, out, size, off);
	pthread_mutex_lock(&ino->ra_mu);
	ra = ino->ra;
	if (ra) {
		n = ra_hit(ra, out, size, off);
		if (n >= 0) {
			ra->next = off + (uint64_t)n;
			pthread_mutex_unlock(&ino->ra_mu);
			return n;
		}
	}
	/* Sequential: where the last read ended, or just past it (the
	 * kernel's concurrent reads may arrive one request out of order). */
	if (!ra || off < ra->next || off - ra->next > 2 * (uint64_t)size) {
		/* Not (yet) sequential: a plain read, remembered. */
		if (!ra) {
			ra = calloc(1, sizeof(*ra));
			ino->ra = ra;
		}
		if (ra)
			ra->next = off + size;
		pthread_mutex_unlock(&ino->ra_mu);
		return sefile_pread(ino->sf, out, size, off);
	}
	/* Sequential: fill the buffer from off, holding ra_mu so the
	 * concurrent reads of the next parts wait for it instead of asking
	 * the cube for the same sectors. */
	n = sefile_pread(ino->sf, ra->buf, FS_RA_SIZE, off);
	if (n < 0) {
		ra->len = 0;
		pthread_mutex_unlock(&ino->ra_mu);
		return n;
	}
	ra->off = off;
	ra->len = (size_t)n;
	ra->eof = (size_t)n < FS_RA_SIZE;
	n = ra_hit(ra, out, size, off);
	if (n < 0)
		n = 0;
	ra->next = off + (uint64_t)n;
	pthread_mutex_unlock(&ino->ra_mu);
	return n;
}

/* rc of an operation on a handle whose inode lost its SEfile: a reconnect
 * could not reopen it (reconnect.c).  EIO until the next reconnect or a
 * new open; not a cube failure, so it does not ask for a reconnect. */
#define FS_NO_SEFILE (-1000)

static int file_err(struct sekeyfs *fs, int code, const char *what)
{
	return code == FS_NO_SEFILE ? -EIO : fs_sefile_err(fs, code, what);
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = handle_of(fi)->ino;
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_rwlock_rdlock(&p->sf_lock);
	n = p->sf ? read_ahead(p, buf, size, (uint64_t)off) : FS_NO_SEFILE;
	pthread_rwlock_unlock(&p->sf_lock);
	if (n < 0)
		fuse_reply_err(req, -file_err(fs, (int)n, "read"));
	else
		fuse_reply_buf(req, buf, (size_t)n);
	OPENSSL_cleanse(buf, size ? size : 1);
	free(buf);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *p = h->ino;
	uint64_t end = (uint64_t)off;
	ssize_t n;
	int rc = SEFILE_OK;

	if (!h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* O_APPEND: the end of the file is ours alone until the write lands. */
	if (h->append)
		pthread_rwlock_wrlock(&p->sf_lock);
	else
		pthread_rwlock_rdlock(&p->sf_lock);
	if (!p->sf)
		rc = FS_NO_SEFILE;
	else if (h->append)
		rc = sefile_size(p->sf, &end);
	n = rc == SEFILE_OK ? sefile_pwrite(p->sf, buf, size, end) : rc;
	pthread_rwlock_unlock(&p->sf_lock);
	fs_readahead_drop(p);
	if (n < 0)
		fuse_reply_err(req, -file_err(fs, (int)n, "write"));
	else
		fuse_reply_write(req, (size_t)n);
}

void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Every write went to the backing file already; the SEfile keeps no
	 * dirty data between calls. */
	fuse_reply_err(req, 0);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_handle *h = handle_of(fi);

	fs_file_release(fs, h->ino);
	free(h);
	fuse_reply_err(req, 0);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = handle_of(fi)->ino;
	int rc;

	pthread_rwlock_rdlock(&p->sf_lock);
	rc = p->sf ? sefile_fsync(p->sf, datasync) : FS_NO_SEFILE;
	pthread_rwlock_unlock(&p->sf_lock);
	fuse_reply_err(req, rc == SEFILE_OK ? 0 : -file_err(fs, rc, "fsync"));
}

void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		     struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = handle_of(fi)->ino;
	uint64_t size = 0, end = (uint64_t)offset + (uint64_t)length;
	int rc;

	/* Only plain allocation: a SEfile hole already reads as zeros, so
	 * growing the file is all it takes. */
	if (mode != 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	pthread_rwlock_wrlock(&p->sf_lock);
	rc = p->sf ? sefile_size(p->sf, &size) : FS_NO_SEFILE;
	if (rc == SEFILE_OK && end > size)
		rc = sefile_truncate(p->sf, end);
	pthread_rwlock_unlock(&p->sf_lock);
	fs_readahead_drop(p);
	fuse_reply_err(req, rc == SEFILE_OK ? 0 : -file_err(fs, rc, "fallocate"));
}
