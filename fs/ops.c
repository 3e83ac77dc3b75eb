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
	/* Data does not go through splice: it must be sealed in between. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	fs_log(fs, LOG_INFO, "mounted: max_write %u, read-ahead %u", conn->max_write,
	       conn->max_readahead);
}

static void fs_op_destroy(void *userdata)
{
	struct sekeyfs *fs = userdata;

	fs_log(fs, LOG_INFO, "unmounted");
}

static const struct fuse_lowlevel_ops sekeyfs_ops = {
	.init = fs_op_init,
	.destroy = fs_op_destroy,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.readlink = fs_op_readlink,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.symlink = fs_op_symlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.fsync = fs_op_fsync,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.fsyncdir = fs_op_fsyncdir,
	.statfs = fs_op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.create = fs_op_create,
	.fallocate = fs_op_fallocate,
};

const struct fuse_lowlevel_ops *sekeyfs_lowlevel_ops(void)
{
	return &sekeyfs_ops;
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
	if (fs->cfg.timeout <= 0)
		fs->cfg.timeout = 1.0;
	fs->sector_size = 4096;
	rc = fs_table_init(fs);
	if (!rc)
		rc = fs_inode_init(&fs->root);
	if (rc) {
		close(backing_fd);
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
	if (!fs)
		return;
	fs_table_free(fs);
	fs_inode_destroy(&fs->root);
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

int sekeyfs_init_share(struct sefile_cube *pool, int backing_fd, uint32_t key_id, char *err,
		       size_t err_cap)
{
	struct stat st;
	int rc;

	if (fstat(backing_fd, &st) != 0)
		return rc = -errno, snprintf(err, err_cap, "cannot stat BACKING: %s", strerror(errno)), rc;
	rc = check_empty(backing_fd);
	if (rc == -EEXIST)
		return snprintf(err, err_cap, "BACKING already holds a share (%s)", SEKEYFS_DIRHDR_NAME), rc;
	if (rc == -ENOTEMPTY)
		return snprintf(err, err_cap, "BACKING is not empty"), rc;
	if (rc)
		return snprintf(err, err_cap, "cannot list BACKING: %s", strerror(-rc)), rc;
	rc = fs_dirhdr_write(pool, backing_fd, key_id, 4096, st.st_mode, 1, err, err_cap);
	if (!rc && fsync(backing_fd) != 0)
		rc = -errno, snprintf(err, err_cap, "cannot sync BACKING: %s", strerror(errno));
	return rc;
}
