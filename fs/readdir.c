/*
 * readdir.c - listing a directory: the backing entries with their names
 * decrypted under the directory's header; in the root, the control tree
 * /.sekey/ in the place of the header file.  The header, temporary names
 * and long-name side files are not entries; a name that does not decrypt
 * (tampered, moved from another directory, another key) is skipped and
 * logged, never shown garbled.  Offsets are the backing directory's own
 * (telldir), as in libfuse's passthrough_ll.c.  Entries are read ahead
 * FS_DIRENT_BATCH at a time and their names decrypted in one cube request
 * (SIV_DECRYPT_BATCH); those that do not fit a reply wait in the handle
 * for the next call at the same offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static struct fs_dirhandle *dirhandle_of(struct fuse_file_info *fi)
{
	return (struct fs_dirhandle *)(uintptr_t)fi->fh;
}

/* Frees a handle (not its DIR); the names read ahead are wiped. */
static void dirhandle_free(struct fs_dirhandle *d)
{
	if (!d)
		return;
	if (d->ahead)
		OPENSSL_cleanse(d->ahead, FS_DIRENT_BATCH * sizeof(*d->ahead));
	free(d->ahead);
	free(d);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	struct fs_dirhandle *d = calloc(1, sizeof(*d));
	int fd = -1, rc;

	if (d)
		d->ahead = calloc(FS_DIRENT_BATCH, sizeof(*d->ahead));
	rc = !d || !d->ahead ? -ENOMEM : fs_dirhdr_get(fs, p, &d->hdr);
	if (!rc) {
		fd = openat(p->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = fd < 0 ? -errno : 0;
	}
	if (!rc) {
		d->dp = fdopendir(fd);
		rc = d->dp ? 0 : -errno;
	}
	if (rc) {
		if (fd >= 0)
			close(fd);
		dirhandle_free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	/* The listing changes only through this mount (or a remote writer the
	 * attribute timeout covers), so let the kernel cache it. */
	fi->cache_readdir = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		dirhandle_free(d);
	}
}

/* Add one decrypted entry; returns the bytes it took (0: no room). */
static size_t add_entry(fuse_req_t req, struct sekeyfs *fs, struct fs_inode *dir, int plus,
			char *buf, size_t room, const char *name, const struct fs_dirent *de,
			off_t next)
{
	struct fuse_entry_param e;
	size_t used;

	memset(&e, 0, sizeof(e));
	e.attr.st_ino = de->ino;
	e.attr.st_mode = (mode_t)de->type << 12;
	if (!plus)
		return fuse_add_direntry(req, buf, room, name, &e.attr, next);
	if (strcmp(name, ".") && strcmp(name, "..")) {
		struct fs_inode *p;

		if (fs_inode_lookup(fs, dir, de->bname, &p, &e.attr) != 0)
			return (size_t)-1;  /* gone meanwhile: skip it */
		e.ino = (uintptr_t)p;
		e.attr_timeout = fs->cfg.timeout;
		e.entry_timeout = fs->cfg.timeout;
	}
	used = fuse_add_direntry_plus(req, buf, room, name, &e, next);
	if (used > room && e.ino)
		fs_inode_forget(fs, fs_inode_of(fs, e.ino), 1);
	return used;
}

/* The entry of /.sekey/ (control.c), or nothing (0) with -o hide_control. */
static size_t add_control_entry(fuse_req_t req, struct sekeyfs *fs, int plus, char *buf,
				size_t room, off_t next)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	if (!fs_ctl_root_dirent(fs, &e.attr))
		return 0;
	if (!plus)
		return fuse_add_direntry(req, buf, room, fs_ctl_dir_name(), &e.attr, next);
	e.ino = fs_ctl_root_ino();
	return fuse_add_direntry_plus(req, buf, room, fs_ctl_dir_name(), &e, next);
}

/*
 * Read the next FS_DIRENT_BATCH backing entries and decrypt their names
 * in one cube request.  The root's header is not decrypted: /.sekey/
 * takes its place.  0, or -errno if reading failed before any entry
 * (count stays 0 at the end of the directory).
 */
static int read_ahead(struct sekeyfs *fs, struct fs_dirhandle *d)
{
	ssize_t got = fs_dirents_read(d->dp, d->ahead, FS_DIRENT_BATCH);

	d->next = d->count = 0;
	if (got < 0)
		return (int)got;
	d->count = (size_t)got;
	/* Dot-names, the header and temporary names start with '.':
	 * fs_names_decrypt leaves those (rc 1) without a cube call. */
	fs_names_decrypt(fs, dirfd(d->dp), &d->hdr, d->ahead, d->count);
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs_inode_of(fs, ino);
	struct fs_dirhandle *d = dirhandle_of(fi);
	char *buf = malloc(size);
	struct fs_dirent *de;
	size_t pos = 0, used;
	const char *shown;
	int rc = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		/* Entries read ahead belong to the old position. */
		seekdir(d->dp, off);
		d->next = d->count = 0;
		d->offset = off;
	}
	for (;;) {
		if (d->next == d->count) {
			rc = read_ahead(fs, d);
			if (rc || d->count == 0)
				break;
		}
		de = &d->ahead[d->next];
		if (dir == &fs->root && !strcmp(de->bname, SEKEYFS_DIRHDR_NAME)) {
			/* /.sekey/ is listed in the place of the root's header. */
			used = add_control_entry(req, fs, plus, buf + pos, size - pos, de->off);
			if (used > size - pos)
				break;
			pos += used;
			d->offset = de->off;
			d->next++;
			continue;
		}
		shown = !strcmp(de->bname, ".") || !strcmp(de->bname, "..") ? de->bname
			: de->rc == 0 ? de->name : NULL;
		used = shown ? add_entry(req, fs, dir, plus, buf + pos, size - pos, shown, de, de->off)
			     : (size_t)-1;
		if (used != (size_t)-1 && used > size - pos)
			break;  /* no room: this entry opens the next call */
		if (used != (size_t)-1)
			pos += used;
		d->offset = de->off;
		d->next++;
	}
	/* An error after some entries is reported on the next call. */
	if (rc && pos == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dirhandle *d = dirhandle_of(fi);

	closedir(d->dp);
	dirhandle_free(d);
	fuse_reply_err(req, 0);
}

void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd(dirhandle_of(fi)->dp);
	int rc = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, rc == 0 ? 0 : errno);
}
