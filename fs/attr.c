/*
 * attr.c - attributes: stat with the plaintext size (from the backing size
 * alone, no crypto, or from the open SEfile), setattr (chmod, chown,
 * truncate, utimens), readlink and statfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

void fs_fix_size(struct sekeyfs *fs, struct fs_inode *ino, struct stat *st)
{
	uint64_t size = 0;
	int rc;

	if (S_ISLNK(st->st_mode)) {
		st->st_size = (off_t)fs_symlink_plain_len((uint64_t)st->st_size);
		return;
	}
	if (!S_ISREG(st->st_mode))
		return;
	pthread_rwlock_rdlock(&ino->sf_lock);
	if (ino->sf) {
		rc = sefile_size(ino->sf, &size);
	} else {
		rc = sefile_size_from_backing((uint64_t)st->st_size, ino->sector_size, &size);
		if (rc != SEFILE_OK && st->st_size != 0 && fs->cfg.debug)
			fs_log(fs, LOG_DEBUG, "inode %llu: backing size %lld fits no SEfile file",
			       (unsigned long long)st->st_ino, (long long)st->st_size);
	}
	pthread_rwlock_unlock(&ino->sf_lock);
	st->st_size = rc == SEFILE_OK ? (off_t)size : 0;
}

int fs_stat(struct sekeyfs *fs, struct fs_inode *ino, struct stat *st)
{
	if (fstatat(ino->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	fs_fix_size(fs, ino, st);
	return 0;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct stat st;
	int rc = fs_stat(fs, fs_inode_of(fs, ino), &st);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fs->cfg.timeout);
}

static int set_mode(struct fs_inode *ino, mode_t mode)
{
	char path[64];

	if (S_ISLNK(ino->type))
		return -EOPNOTSUPP;
	fs_proc_path(ino, path, sizeof(path));
	return chmod(path, mode) == 0 ? 0 : -errno;
}

static int set_owner(struct fs_inode *ino, struct stat *attr, int to_set)
{
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

	if (fchownat(ino->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	return 0;
}

static int set_size(struct sekeyfs *fs, struct fs_inode *ino, uint64_t size)
{
	int rc;

	if (!S_ISREG(ino->type))
		return S_ISDIR(ino->type) ? -EISDIR : -EINVAL;
	rc = fs_file_acquire(fs, ino, 1);
	if (rc)
		return rc;
	pthread_rwlock_rdlock(&ino->sf_lock);
	rc = sefile_truncate(ino->sf, size);
	fs_readahead_drop(ino);
	pthread_rwlock_unlock(&ino->sf_lock);
	fs_file_release(fs, ino);
	return rc == SEFILE_OK ? 0 : fs_sefile_err(fs, rc, "truncate");
}

static int set_times(struct fs_inode *ino, struct stat *attr, int to_set)
{
	struct timespec tv[2];
	char path[64];

	tv[0].tv_sec = 0;
	tv[1].tv_sec = 0;
	tv[0].tv_nsec = UTIME_OMIT;
	tv[1].tv_nsec = UTIME_OMIT;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (S_ISLNK(ino->type))
		return utimensat(ino->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
	fs_proc_path(ino, path, sizeof(path));
	return utimensat(AT_FDCWD, path, tv, 0) == 0 ? 0 : -errno;
}

void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	struct stat st;
	int rc = 0;

	if (fs->cfg.read_only)
		rc = -EROFS;
	if (!rc && (to_set & FUSE_SET_ATTR_MODE))
		rc = set_mode(p, attr->st_mode);
	if (!rc && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		rc = set_owner(p, attr, to_set);
	if (!rc && (to_set & FUSE_SET_ATTR_SIZE))
		rc = set_size(fs, p, (uint64_t)attr->st_size);
	if (!rc && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)))
		rc = set_times(p, attr, to_set);
	if (!rc)
		rc = fs_stat(fs, p, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fs->cfg.timeout);
}

void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	char *stored = malloc(PATH_MAX + 1), *plain = malloc(PATH_MAX + 1);
	ssize_t n;
	int rc;

	if (!stored || !plain) {
		rc = -ENOMEM;
		goto out;
	}
	n = readlinkat(p->fd, "", stored, PATH_MAX);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	stored[n] = '\0';
	rc = fs_symlink_decrypt(fs, stored, plain, PATH_MAX + 1);
out:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, plain);
	free(stored);
	free(plain);
}

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct statvfs sv;
	char path[64];

	fs_proc_path(&fs->root, path, sizeof(path));
	if (statvfs(path, &sv) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = SEFILE_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}
