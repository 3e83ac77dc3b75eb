/*
 * ops.c - the file system object: building it over a backing directory
 * (root inode, root header), the FUSE low-level operation table and the
 * connection set-up (large writes, read-ahead, page cache), and the
 * initialisation of a new share.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

#define FS_MAX_WRITE (1u << 20)

void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct sekeyfs *fs = userdata;

	/* One request carries up to 1 MiB, which the SEfile layer seals in
	 * one cube request: throughput is bounded by the crypto. */
	conn->max_write = FS_MAX_WRITE;
	conn->max_read = 0;
	conn->max_readahead = FS_MAX_WRITE;
	if (conn->max_background < 64)
		conn->max_background = 64;
	if (conn->congestion_threshold < 48)
		conn->congestion_threshold = 48;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Write-back cache (opt-in): the kernel merges small writes into
	 * requests of up to max_write, so a stream of 4 KiB writes costs one
	 * cube request per MiB, not per write.  The kernel then keeps the
	 * file size itself and ignores sizes from getattr, so another mount's
	 * size changes are not seen: one mount per BACKING only. */
	if (fs->cfg.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	fs->writeback = !!(conn->want & FUSE_CAP_WRITEBACK_CACHE);
	/* Data does not go through splice: it must be sealed in between. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	fs_log(fs, LOG_INFO, "mounted: max_write %u, read-ahead %u%s", conn->max_write,
	       conn->max_readahead, fs->writeback ? ", write-back cache" : "");
}

static void fs_op_destroy(void *userdata)
{
	struct sekeyfs *fs = userdata;

	fs_log(fs, LOG_INFO, "unmounted");
}

/* Every operation runs holding the pool lock shared (reconnect.c): the
 * cube pool is never swapped under it, and one that saw the cube fail may
 * reconnect on its way out.  The userdata is read before the operation,
 * which frees req with its reply. */
/* The control tree /.sekey/ (control.c) takes the operation when to_ctl
 * holds: on its own nodes, and on its name in the root. */
#define GUARDED_CTL(op, params, args, to_ctl, ctl)                     \
	static void guarded_##op(fuse_req_t req, params)               \
	{                                                              \
		struct sekeyfs *fs = fuse_req_userdata(req);           \
		fs_guard_enter(fs);                                    \
		if (to_ctl)                                            \
			ctl;                                           \
		else                                                   \
			fs_op_##op(req, args);                         \
		fs_guard_leave(fs);                                    \
	}
#define P(...) __VA_ARGS__
#define CTL_NAME(parent, name) (fs_ctl_owns(parent) || fs_ctl_is_root_name(parent, name))

/* Control nodes are not counted: forgetting one is nothing to do. */
static void forget_multi_real(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	size_t i, n = 0;

	for (i = 0; i < count; i++)
		if (!fs_ctl_owns(forgets[i].ino))
			forgets[n++] = forgets[i];
	fs_op_forget_multi(req, n, forgets);
}

static void ctl_listxattr(fuse_req_t req, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

GUARDED_CTL(lookup, P(fuse_ino_t parent, const char *name), P(parent, name),
	    CTL_NAME(parent, name), fs_ctl_lookup(req, fs, parent, name))
GUARDED_CTL(forget, P(fuse_ino_t ino, uint64_t nlookup), P(ino, nlookup),
	    fs_ctl_owns(ino), fuse_reply_none(req))
GUARDED_CTL(forget_multi, P(size_t count, struct fuse_forget_data *forgets), P(count, forgets),
	    1, forget_multi_real(req, count, forgets))
GUARDED_CTL(getattr, P(fuse_ino_t ino, struct fuse_file_info *fi), P(ino, fi),
	    fs_ctl_owns(ino), fs_ctl_getattr(req, fs, ino))
GUARDED_CTL(setattr, P(fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi), P(ino, attr, to_set, fi),
	    fs_ctl_owns(ino), fs_ctl_setattr(req, fs, ino, attr, to_set))
GUARDED_CTL(readlink, P(fuse_ino_t ino), P(ino),
	    fs_ctl_owns(ino), fuse_reply_err(req, EINVAL))
GUARDED_CTL(mknod, P(fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev), P(parent, name, mode, rdev),
	    CTL_NAME(parent, name), fs_ctl_refuse(req, fs, "mknod", parent, name, EEXIST))
GUARDED_CTL(mkdir, P(fuse_ino_t parent, const char *name, mode_t mode), P(parent, name, mode),
	    CTL_NAME(parent, name), fs_ctl_mkdir(req, fs, parent, name))
GUARDED_CTL(unlink, P(fuse_ino_t parent, const char *name), P(parent, name),
	    CTL_NAME(parent, name), fs_ctl_refuse(req, fs, "unlink", parent, name, EPERM))
GUARDED_CTL(rmdir, P(fuse_ino_t parent, const char *name), P(parent, name),
	    CTL_NAME(parent, name), fs_ctl_rmdir(req, fs, parent, name))
GUARDED_CTL(symlink, P(const char *link, fuse_ino_t parent, const char *name), P(link, parent, name),
	    CTL_NAME(parent, name), fs_ctl_refuse(req, fs, "symlink", parent, name, EEXIST))
GUARDED_CTL(rename, P(fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags), P(parent, name, newparent, newname, flags),
	    CTL_NAME(parent, name) || CTL_NAME(newparent, newname),
	    fs_ctl_refuse(req, fs, "rename", parent, name, EPERM))
GUARDED_CTL(link, P(fuse_ino_t ino, fuse_ino_t parent, const char *name), P(ino, parent, name),
	    fs_ctl_owns(ino) || CTL_NAME(parent, name),
	    fs_ctl_owns(ino) ? (void)fuse_reply_err(req, EXDEV)
			     : fs_ctl_refuse(req, fs, "link", parent, name, EEXIST))
GUARDED_CTL(open, P(fuse_ino_t ino, struct fuse_file_info *fi), P(ino, fi),
	    fs_ctl_owns(ino), fs_ctl_open(req, fs, ino, fi))
GUARDED_CTL(read, P(fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), P(ino, size, off, fi),
	    fs_ctl_owns(ino), fs_ctl_read(req, fs, size, off, fi))
GUARDED_CTL(write, P(fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi), P(ino, buf, size, off, fi),
	    fs_ctl_owns(ino), fs_ctl_write(req, fs, buf, size, off, fi))
GUARDED_CTL(flush, P(fuse_ino_t ino, struct fuse_file_info *fi), P(ino, fi),
	    fs_ctl_owns(ino), fuse_reply_err(req, 0))
GUARDED_CTL(release, P(fuse_ino_t ino, struct fuse_file_info *fi), P(ino, fi),
	    fs_ctl_owns(ino), fs_ctl_release(req, fi))
GUARDED_CTL(fsync, P(fuse_ino_t ino, int datasync, struct fuse_file_info *fi), P(ino, datasync, fi),
	    fs_ctl_owns(ino), fuse_reply_err(req, 0))
GUARDED_CTL(opendir, P(fuse_ino_t ino, struct fuse_file_info *fi), P(ino, fi),
	    fs_ctl_owns(ino), fs_ctl_opendir(req, fs, ino, fi))
GUARDED_CTL(readdir, P(fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), P(ino, size, off, fi),
	    fs_ctl_owns(ino), fs_ctl_readdir(req, fs, size, off, fi, 0))
GUARDED_CTL(readdirplus, P(fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), P(ino, size, off, fi),
	    fs_ctl_owns(ino), fs_ctl_readdir(req, fs, size, off, fi, 1))
GUARDED_CTL(releasedir, P(fuse_ino_t ino, struct fuse_file_info *fi), P(ino, fi),
	    fs_ctl_owns(ino), fs_ctl_release(req, fi))
GUARDED_CTL(fsyncdir, P(fuse_ino_t ino, int datasync, struct fuse_file_info *fi), P(ino, datasync, fi),
	    fs_ctl_owns(ino), fuse_reply_err(req, 0))
GUARDED_CTL(statfs, P(fuse_ino_t ino), P(ino),
	    fs_ctl_owns(ino), fs_op_statfs(req, FUSE_ROOT_ID))
GUARDED_CTL(setxattr, P(fuse_ino_t ino, const char *name, const char *value, size_t size, int flags), P(ino, name, value, size, flags),
	    fs_ctl_owns(ino), fuse_reply_err(req, EPERM))
GUARDED_CTL(getxattr, P(fuse_ino_t ino, const char *name, size_t size), P(ino, name, size),
	    fs_ctl_owns(ino), fuse_reply_err(req, ENODATA))
GUARDED_CTL(listxattr, P(fuse_ino_t ino, size_t size), P(ino, size),
	    fs_ctl_owns(ino), ctl_listxattr(req, size))
GUARDED_CTL(removexattr, P(fuse_ino_t ino, const char *name), P(ino, name),
	    fs_ctl_owns(ino), fuse_reply_err(req, EPERM))
GUARDED_CTL(create, P(fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi), P(parent, name, mode, fi),
	    CTL_NAME(parent, name), fs_ctl_refuse(req, fs, "create", parent, name, EEXIST))
GUARDED_CTL(fallocate, P(fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi), P(ino, mode, offset, length, fi),
	    fs_ctl_owns(ino), fuse_reply_err(req, EOPNOTSUPP))

static const struct fuse_lowlevel_ops sekeyfs_ops = {
	.init = fs_op_init,
	.destroy = fs_op_destroy,
	.lookup = guarded_lookup,
	.forget = guarded_forget,
	.forget_multi = guarded_forget_multi,
	.getattr = guarded_getattr,
	.setattr = guarded_setattr,
	.readlink = guarded_readlink,
	.mknod = guarded_mknod,
	.mkdir = guarded_mkdir,
	.unlink = guarded_unlink,
	.rmdir = guarded_rmdir,
	.symlink = guarded_symlink,
	.rename = guarded_rename,
	.link = guarded_link,
	.open = guarded_open,
	.read = guarded_read,
	.write = guarded_write,
	.flush = guarded_flush,
	.release = guarded_release,
	.fsync = guarded_fsync,
	.opendir = guarded_opendir,
	.readdir = guarded_readdir,
	.readdirplus = guarded_readdirplus,
	.releasedir = guarded_releasedir,
	.fsyncdir = guarded_fsyncdir,
	.statfs = guarded_statfs,
	.setxattr = guarded_setxattr,
	.getxattr = guarded_getxattr,
	.listxattr = guarded_listxattr,
	.removexattr = guarded_removexattr,
	.create = guarded_create,
	.fallocate = guarded_fallocate,
};

const struct fuse_lowlevel_ops *sekeyfs_lowlevel_ops(void)
{
	return &sekeyfs_ops;
}

/* Writer-preferring: a reconnect waiting for the lock is not starved by
 * a stream of operations. */
static int init_pool_lock(pthread_rwlock_t *l)
{
	pthread_rwlockattr_t a;
	int rc;

	if (pthread_rwlockattr_init(&a) != 0)
		return -1;
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(l, &a);
	pthread_rwlockattr_destroy(&a);
	return rc;
}

int sekeyfs_new(struct sekeyfs **out, struct sefile_cube *pool, int backing_fd,
		const struct sekeyfs_config *cfg, char *err, size_t err_cap)
{
	struct sekeyfs *fs;
	struct fs_dirhdr h;
	struct stat st;
	int rc;

	*out = NULL;
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		close(backing_fd);
		return snprintf(err, err_cap, "out of memory"), -ENOMEM;
	}
	fs->pool = pool;
	fs->cfg = *cfg;
	if (init_pool_lock(&fs->pool_lock) != 0 || pthread_mutex_init(&fs->ctl_mu, NULL) != 0) {
		close(backing_fd);
		free(fs);
		return snprintf(err, err_cap, "out of memory"), -ENOMEM;
	}
	if (fs->cfg.timeout <= 0)
		fs->cfg.timeout = 1.0;
	fs->sector_size = 4096;
	rc = fs_table_init(fs);
	if (!rc)
		rc = fs_inode_init(&fs->root);
	if (!rc)
		rc = fs_namecache_init(fs);
	if (rc) {
		close(backing_fd);
		fs_namecache_free(fs);
		free(fs);
		return snprintf(err, err_cap, "out of memory"), rc;
	}
	fs->root.fd = backing_fd;
	fs->root.nlookup = 2;
	if (fstat(backing_fd, &st) != 0) {
		rc = -errno;
		snprintf(err, err_cap, "cannot stat BACKING: %s", strerror(errno));
		goto fail;
	}
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = st.st_mode & S_IFMT;
	rc = fs_dirhdr_get(fs, &fs->root, &h);
	if (rc) {
		snprintf(err, err_cap, "cannot read the share's root header %s: %s%s",
			 SEKEYFS_DIRHDR_NAME, strerror(-rc),
			 rc == -EIO ? " (not initialised with sekeyfs --init, or damaged)" : "");
		goto fail;
	}
	fs->sector_size = h.sector_size;
	fs->root.sector_size = h.sector_size;
	*out = fs;
	return 0;
fail:
	sekeyfs_free(fs);
	return rc;
}

void sekeyfs_free(struct sekeyfs *fs)
{
	struct sefile_cube *owned;

	if (!fs)
		return;
	fs_table_free(fs);
	fs_inode_destroy(&fs->root);
	fs_namecache_free(fs);
	owned = fs_reconnect_owned_pool(fs);
	fs_reconnect_free(fs);
	if (owned)
		sefile_cube_close(owned);
	pthread_rwlock_destroy(&fs->pool_lock);
	pthread_mutex_destroy(&fs->ctl_mu);
	free(fs);
}

/* -EEXIST if dirfd already holds a share, -ENOTEMPTY if it holds anything. */
static int check_empty(int dirfd)
{
	struct dirent *de;
	DIR *dp;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!strcmp(de->d_name, SEKEYFS_DIRHDR_NAME))
			rc = -EEXIST;
		else if (!rc)
			rc = -ENOTEMPTY;
	}
	closedir(dp);
	return rc;
}

int fs_init_check(int dirfd, char *err, size_t cap)
{
	int rc = check_empty(dirfd);

	if (rc == -EEXIST)
		return snprintf(err, cap, "BACKING already holds a share (%s)", SEKEYFS_DIRHDR_NAME), rc;
	if (rc == -ENOTEMPTY)
		return snprintf(err, cap, "BACKING is not empty"), rc;
	if (rc)
		return snprintf(err, cap, "cannot list BACKING: %s", strerror(-rc)), rc;
	return 0;
}

int sekeyfs_init_share(struct sefile_cube *pool, int backing_fd, uint32_t key_id, char *err,
		       size_t err_cap)
{
	struct stat st;
	int rc;

	if (fstat(backing_fd, &st) != 0)
		return rc = -errno, snprintf(err, err_cap, "cannot stat BACKING: %s", strerror(errno)), rc;
	rc = fs_init_check(backing_fd, err, err_cap);
	if (rc)
		return rc;
	rc = fs_dirhdr_write(pool, backing_fd, key_id, 4096, st.st_mode, 1, err, err_cap);
	if (!rc && fsync(backing_fd) != 0)
		rc = -errno, snprintf(err, err_cap, "cannot sync BACKING: %s", strerror(errno));
	return rc;
}
