/*
 * entry.c - operations that make, find or remove directory entries:
 * lookup, forget, mknod, mkdir, symlink, link, unlink, rmdir, rename and
 * create.  Each encrypts the plaintext name under its directory's cached
 * header and then does the one *at() call on the backing directory; a new
 * file or directory is built under a temporary name and renamed into
 * place, so no half-made object is ever visible under a real name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

/* The entry for bname in dir, one lookup counted on success. */
static int make_entry(struct sekeyfs *fs, struct fs_inode *dir, const char *bname,
		      struct fuse_entry_param *e)
{
	struct fs_inode *p;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = fs_inode_lookup(fs, dir, bname, &p, &e->attr);
	if (rc)
		return rc;
	e->ino = (uintptr_t)p;
	e->attr_timeout = fs->cfg.timeout;
	e->entry_timeout = fs->cfg.timeout;
	return 0;
}

static void reply_entry(fuse_req_t req, struct sekeyfs *fs, const struct fuse_entry_param *e)
{
	if (fuse_reply_entry(req, e) == -ENOENT)
		fs_inode_forget(fs, fs_inode_of(fs, e->ino), 1);
}

/* Header of parent and the encrypted name in it; refuses changes on a
 * read-only mount when writing. */
static int name_in(struct sekeyfs *fs, struct fs_inode *parent, const char *name, int writing,
		   struct fs_dirhdr *h, struct fs_name *n)
{
	struct fs_name old;
	struct stat st;
	int rc, erc;

	if (writing && fs->cfg.read_only)
		return -EROFS;

	rc = fs_dirhdr_get(fs, parent, h);
	if (rc)
		return rc;
	rc = fs_name_encrypt(fs, h, name, n);
	/* A name key that may no longer encrypt (rotated, retired) still
	 * decrypts: existing entries are found by decrypting the listing;
	 * a new name cannot be made (the error stands) until sekeyfs --rekey
	 * moves the names to the directory's new key. */
	if (rc == -EKEYEXPIRED || rc == -ENOKEY) {
		erc = rc;
		rc = fs_name_scan(fs, parent->fd, h, name, n);
		if (rc == -ENOENT && writing) {
			uint32_t key;

			/* No key at all for the recipients: ENOKEY; a key, but the
			 * names are not on it yet: the name key's own error. */
			rc = h->rcpt_kind != FS_RCPT_NONE ? fs_new_file_key(fs, h, &key) : 0;
			/* The recipients' key changed (rotation): the names move
			 * to it now, then the new name is made under it. */
			if (!rc && h->rcpt_kind != FS_RCPT_NONE && key != h->name_key) {
				rc = fs_rcpt_refresh(fs, parent, key);
				if (!rc)
					rc = fs_dirhdr_get(fs, parent, h);
				if (!rc)
					rc = fs_name_encrypt(fs, h, name, n);
				return rc;
			}
			if (!rc) {
				fs_log(fs, LOG_WARNING, "new name: this directory's name key %u may "
				       "no longer encrypt and its recipients have no other key",
				       h->name_key);
				rc = erc;
			}
		}
		return rc;
	}
	/* Names moving to a new key: an entry not moved yet is under the old
	 * key (sharing.c); it is the entry, for lookups and for EEXIST. */
	if (!rc && h->old_key && fstatat(parent->fd, n->enc, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
	    fs_name_scan(fs, parent->fd, h, name, &old) == 0)
		*n = old;
	return rc;
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent);
	struct fuse_entry_param e;
	struct fs_dirhdr h;
	struct fs_name n;
	int rc;

	rc = name_in(fs, dir, name, 0, &h, &n);
	if (!rc)
		rc = make_entry(fs, dir, n.enc, &e);
	if (rc == -ENOENT) {
		/* A negative entry the kernel may cache as long as a positive one. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->cfg.timeout;
		fuse_reply_entry(req, &e);
	} else if (rc) {
		fuse_reply_err(req, -rc);
	} else {
		reply_entry(req, fs, &e);
	}
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct sekeyfs *fs = fuse_req_userdata(req);

	fs_inode_forget(fs, fs_inode_of(fs, ino), nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs_inode_forget(fs, fs_inode_of(fs, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

/* After the backing call made entry n in dir: the reply, or undo. */
static void finish_new(fuse_req_t req, struct sekeyfs *fs, struct fs_inode *dir,
		       const struct fs_name *n, int rc)
{
	struct fuse_entry_param e;

	if (!rc)
		rc = make_entry(fs, dir, n->enc, &e);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, fs, &e);
}

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent);
	struct sefile *sf;
	struct fs_dirhdr h;
	struct fs_name n;
	uint32_t key = 0;
	int rc, fd;

	/* A device node would be a door around the encryption: refused. */
	if (!S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = name_in(fs, dir, name, 1, &h, &n);
	if (!rc && S_ISREG(mode))
		rc = fs_new_file_key(fs, &h, &key);
	if (!rc)
		rc = fs_side_write(fs, dir->fd, &n);
	if (!rc && S_ISREG(mode)) {
		rc = fs_file_create(fs, dir->fd, n.enc, mode, key, &sf, &fd);
		if (!rc) {
			sefile_close(sf);
			close(fd);
		}
	} else if (!rc && mknodat(dir->fd, n.enc, mode, 0) != 0) {
		rc = -errno;
	}
	finish_new(req, fs, dir, &n, rc);
}

/* Build the new directory under tmp in dir: mkdir, header, final mode. */
static int mkdir_tmp(struct sekeyfs *fs, struct fs_inode *dir, const char *tmp, mode_t mode,
		     uint32_t key, const struct fs_dirhdr *parent)
{
	struct fs_dirhdr h;
	char err[256];
	int dfd, rc;

	if (mkdirat(dir->fd, tmp, (mode & 07777) | 0700) != 0)
		return -errno;
	dfd = openat(dir->fd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		unlinkat(dir->fd, tmp, AT_REMOVEDIR);
		return rc;
	}
	/* A new directory inherits its parent's recipients. */
	memset(&h, 0, sizeof(h));
	h.name_key = key;
	h.sector_size = fs->sector_size;
	h.rcpt_kind = parent->rcpt_kind;
	memcpy(h.rcpt, parent->rcpt, sizeof(h.rcpt));
	rc = fs_random(h.dir_id, sizeof(h.dir_id));
	if (!rc)
		rc = fs_dirhdr_store(fs->pool, dfd, &h, mode, 0, err, sizeof(err));
	if (rc)
		fs_log(fs, LOG_ERR, "mkdir: %s", err);
	if (!rc && fchmod(dfd, mode & 07777) != 0)
		rc = -errno;
	if (rc) {
		unlinkat(dfd, SEKEYFS_DIRHDR_NAME, 0);
		close(dfd);
		unlinkat(dir->fd, tmp, AT_REMOVEDIR);
		return rc;
	}
	close(dfd);
	return 0;
}

static void remove_tmp_dir(struct fs_inode *dir, const char *tmp)
{
	int dfd = openat(dir->fd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd >= 0) {
		unlinkat(dfd, SEKEYFS_DIRHDR_NAME, 0);
		close(dfd);
	}
	unlinkat(dir->fd, tmp, AT_REMOVEDIR);
}

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent);
	struct fs_dirhdr h;
	struct fs_name n;
	uint8_t r[8];
	char tmp[64];
	uint32_t key = 0;
	int rc;

	rc = name_in(fs, dir, name, 1, &h, &n);
	if (!rc)
		rc = fs_new_file_key(fs, &h, &key);
	if (!rc)
		rc = fs_random(r, sizeof(r));
	if (!rc) {
		snprintf(tmp, sizeof(tmp), FS_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0],
			 r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
		rc = fs_side_write(fs, dir->fd, &n);
	}
	if (!rc)
		rc = mkdir_tmp(fs, dir, tmp, mode, key, &h);
	if (!rc && sefile_rename_noreplace(dir->fd, tmp, dir->fd, n.enc) != 0) {
		rc = -errno;
		remove_tmp_dir(dir, tmp);
	}
	finish_new(req, fs, dir, &n, rc);
}

void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent);
	char *stored = malloc(PATH_MAX + 1);
	struct fs_dirhdr h;
	uint32_t key = 0;
	struct fs_name n;
	int rc = stored ? 0 : -ENOMEM;

	if (!rc)
		rc = name_in(fs, dir, name, 1, &h, &n);
	if (!rc)
		rc = fs_new_file_key(fs, &h, &key);
	if (!rc)
		rc = fs_symlink_encrypt(fs, key, link, stored, PATH_MAX + 1);
	if (!rc)
		rc = fs_side_write(fs, dir->fd, &n);
	if (!rc && symlinkat(stored, dir->fd, n.enc) != 0)
		rc = -errno;
	free(stored);
	finish_new(req, fs, dir, &n, rc);
}

void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent), *p = fs_inode_of(fs, ino);
	struct fs_dirhdr h;
	struct fs_name n;
	char path[64];
	int rc;

	/* The file keeps its own key in its SEfile header, so a link in a
	 * directory with another key reads the same. */
	rc = name_in(fs, dir, name, 1, &h, &n);
	if (!rc)
		rc = fs_side_write(fs, dir->fd, &n);
	fs_proc_path(p, path, sizeof(path));
	if (!rc && linkat(AT_FDCWD, path, dir->fd, n.enc, AT_SYMLINK_FOLLOW) != 0)
		rc = -errno;
	finish_new(req, fs, dir, &n, rc);
}

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent);
	struct fs_dirhdr h;
	struct fs_name n;
	int rc;

	rc = name_in(fs, dir, name, 1, &h, &n);
	if (!rc && unlinkat(dir->fd, n.enc, 0) != 0)
		rc = -errno;
	if (!rc)
		fs_side_remove(fs, dir->fd, &n);
	fuse_reply_err(req, -rc);
}

/* 0 if the backing directory dfd holds no entry but its header and crash
 * residue (temporary names, orphan side files), else -ENOTEMPTY. */
static int dir_is_empty(int dfd)
{
	struct dirent *de;
	DIR *dp;
	int fd = dup(dfd), rc = 0;

	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.' || sefile_name_is_side_file(de->d_name))
			continue;
		rc = -ENOTEMPTY;
		break;
	}
	closedir(dp);
	return rc;
}

/* Remove the residue dir_is_empty allowed (not the header). */
static void remove_residue(int dfd)
{
	struct dirent *de;
	DIR *dp;
	int fd = dup(dfd);

	if (fd < 0)
		return;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strncmp(de->d_name, FS_TMP_PREFIX, sizeof(FS_TMP_PREFIX) - 1) == 0 ||
		    sefile_name_is_side_file(de->d_name))
			unlinkat(dfd, de->d_name, 0);
	}
	closedir(dp);
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent);
	struct fs_dirhdr h;
	struct fs_name n;
	char tmp[64];
	uint8_t r[8];
	int rc, dfd = -1;

	rc = name_in(fs, dir, name, 1, &h, &n);
	if (!rc) {
		dfd = openat(dir->fd, n.enc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		rc = dfd < 0 ? -errno : dir_is_empty(dfd);
	}
	if (!rc)
		rc = fs_random(r, sizeof(r));
	if (!rc) {
		remove_residue(dfd);
		/* Park the header in the parent, so a failed rmdir can put it back. */
		snprintf(tmp, sizeof(tmp), FS_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0],
			 r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
		if (renameat(dfd, SEKEYFS_DIRHDR_NAME, dir->fd, tmp) != 0)
			rc = errno == ENOENT ? 0 : -errno;
		else if (unlinkat(dir->fd, n.enc, AT_REMOVEDIR) != 0) {
			rc = -errno;
			if (renameat(dir->fd, tmp, dfd, SEKEYFS_DIRHDR_NAME) != 0)
				fs_log(fs, LOG_ERR, "rmdir failed and its header could not be restored: %s",
				       strerror(errno));
		} else {
			unlinkat(dir->fd, tmp, 0);
		}
		if (!rc)
			fs_side_remove(fs, dir->fd, &n);
	}
	if (dfd >= 0)
		close(dfd);
	fuse_reply_err(req, -rc);
}

/* A plain rename.  A directory may replace an empty directory, but the
 * backing target is never empty (it holds its header): so when both are
 * directories, the target's header (and crash residue) goes first, parked
 * in the target's parent under a temporary name, and comes back if the
 * rename fails (a name created there meanwhile: ENOTEMPTY). */
static int rename_over_dir(struct sekeyfs *fs, struct fs_inode *d1, const struct fs_name *n1,
			   struct fs_inode *d2, const struct fs_name *n2)
{
	struct stat s1, s2;
	char tmp[64];
	uint8_t r[8];
	int rc, dfd;

	if (fstatat(d1->fd, n1->enc, &s1, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(s1.st_mode) ||
	    fstatat(d2->fd, n2->enc, &s2, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(s2.st_mode) ||
	    (s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino))
		return renameat(d1->fd, n1->enc, d2->fd, n2->enc) == 0 ? 0 : -errno;
	dfd = openat(d2->fd, n2->enc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = dir_is_empty(dfd);
	if (!rc)
		rc = fs_random(r, sizeof(r));
	if (rc) {
		close(dfd);
		return rc;
	}
	remove_residue(dfd);
	snprintf(tmp, sizeof(tmp), FS_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7]);
	if (renameat(dfd, SEKEYFS_DIRHDR_NAME, d2->fd, tmp) != 0 && errno != ENOENT) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	if (renameat(d1->fd, n1->enc, d2->fd, n2->enc) != 0) {
		rc = -errno;
		if (renameat(d2->fd, tmp, dfd, SEKEYFS_DIRHDR_NAME) != 0 && errno != ENOENT)
			fs_log(fs, LOG_ERR, "rename failed and the target's header could not be restored: %s",
			       strerror(errno));
	} else {
		unlinkat(d2->fd, tmp, 0);
	}
	close(dfd);
	return rc;
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *d1 = fs_inode_of(fs, parent), *d2 = fs_inode_of(fs, newparent);
	struct fs_dirhdr h1, h2;
	struct fs_name n1, n2;
	int rc;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = name_in(fs, d1, name, 1, &h1, &n1);
	if (!rc)
		rc = name_in(fs, d2, newname, 1, &h2, &n2);
	if (!rc)
		rc = fs_side_write(fs, d2->fd, &n2);
	if (!rc && !flags)
		rc = rename_over_dir(fs, d1, &n1, d2, &n2);
	else if (!rc && flags == RENAME_NOREPLACE &&
		 sefile_rename_noreplace(d1->fd, n1.enc, d2->fd, n2.enc) != 0)
		rc = -errno;
	else if (!rc && flags != RENAME_NOREPLACE && renameat2(d1->fd, n1.enc, d2->fd, n2.enc, flags) != 0)
		rc = -errno;
	/* The old name is gone (unless it was an exchange, or a rename onto
	 * itself): so is its side file. */
	if (!rc && !(flags & RENAME_EXCHANGE) && !(d1 == d2 && !strcmp(n1.enc, n2.enc)))
		fs_side_remove(fs, d1->fd, &n1);
	if (!rc && (flags & RENAME_EXCHANGE))
		rc = fs_side_write(fs, d1->fd, &n1);
	fuse_reply_err(req, -rc);
}

/* create on a name that appeared meanwhile (no O_EXCL): open it. */
static int open_existing(struct sekeyfs *fs, struct fs_inode *dir, const char *bname,
			 struct fuse_file_info *fi, struct fuse_entry_param *e)
{
	struct fs_inode *p;
	int rc = make_entry(fs, dir, bname, e);

	if (rc)
		return rc;
	p = fs_inode_of(fs, e->ino);
	if (!S_ISREG(p->type)) {
		fs_inode_forget(fs, p, 1);
		return S_ISDIR(p->type) ? -EISDIR : -EEXIST;
	}
	rc = fs_file_acquire(fs, p, 1);
	if (!rc && (fi->flags & O_TRUNC)) {
		pthread_rwlock_rdlock(&p->sf_lock);
		rc = sefile_truncate(p->sf, 0);
		fs_readahead_drop(p);
		pthread_rwlock_unlock(&p->sf_lock);
		rc = rc == SEFILE_OK ? 0 : fs_sefile_err(fs, rc, "create: truncate");
		if (rc)
			fs_file_release(fs, p);
	}
	if (rc)
		fs_inode_forget(fs, p, 1);
	return rc;
}

static int create_new(struct sekeyfs *fs, struct fs_inode *dir, const struct fs_dirhdr *h,
		      const struct fs_name *n, mode_t mode, struct fuse_entry_param *e)
{
	struct sefile *sf;
	uint32_t key;
	int fd, rc;

	rc = fs_new_file_key(fs, h, &key);
	if (!rc)
		rc = fs_file_create(fs, dir->fd, n->enc, mode, key, &sf, &fd);
	if (rc)
		return rc;
	rc = make_entry(fs, dir, n->enc, e);
	if (rc) {
		sefile_close(sf);
		close(fd);
		return rc;
	}
	fs_file_install(fs, fs_inode_of(fs, e->ino), sf, fd);
	return 0;
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, parent), *p;
	struct fuse_entry_param e;
	struct fs_handle *h;
	struct fs_dirhdr dh;
	struct fs_name n;
	int rc;

	h = calloc(1, sizeof(*h));
	rc = h ? name_in(fs, dir, name, 1, &dh, &n) : -ENOMEM;
	if (!rc)
		rc = fs_side_write(fs, dir->fd, &n);
	if (!rc) {
		rc = create_new(fs, dir, &dh, &n, mode, &e);
		if (rc == -EEXIST && !(fi->flags & O_EXCL))
			rc = open_existing(fs, dir, n.enc, fi, &e);
	}
	if (rc) {
		free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	p = fs_inode_of(fs, e.ino);
	h->ino = p;
	/* With the write-back cache the kernel places O_APPEND writes itself. */
	h->append = !fs->writeback && (fi->flags & O_APPEND);
	h->writable = 1;
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		fs_file_release(fs, p);
		fs_inode_forget(fs, p, 1);
		free(h);
	}
}
