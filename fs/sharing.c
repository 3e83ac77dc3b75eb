/*
 * sharing.c - directories shared through SEkey (the KMS connection itself
 * is kmsconn.c): the key a directory's recipients get (find_key v3 for users plus the creator, v2
 * for a group; no usable key is ENOKEY, never a wider group), the
 * recipients xattrs (user.sekey.recipients, user.sekey.group), a share
 * initialised with recipients, and the re-encryption of stale files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../kms/kms.h"
#include "internal.h"

#define RCPT_USERS_MAX 64

/* ---- recipients and keys ---- */

static int name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > KMS_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == '/')
			return 0;
	return 1;
}

int fs_rcpt_parse(enum fs_rcpt_kind kind, const char *value, size_t len, char *out)
{
	size_t i, start = 0, count = 0;

	if (len == 0 || len > FS_RCPT_MAX || memchr(value, '\0', len))
		return -EINVAL;
	for (i = 0; i <= len; i++) {
		if (i < len && value[i] != ',')
			continue;
		if (!name_ok(value + start, i - start))
			return -EINVAL;
		count++;
		start = i + 1;
	}
	if ((kind == FS_RCPT_GROUP && count != 1) || count > RCPT_USERS_MAX)
		return -EINVAL;
	memcpy(out, value, len);
	out[len] = '\0';
	return 0;
}

/* 1 iff user is one of the comma list. */
static int list_has(const char *list, const char *user)
{
	size_t n = strlen(user);
	const char *p = list;

	while (p && *p) {
		if (!strncmp(p, user, n) && (p[n] == ',' || p[n] == '\0'))
			return 1;
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	return 0;
}

/* find_key for recipients plus this user (on the admin's mount, who is no
 * user: for the recipients alone, or the group's best key); why gets the
 * reason of a failure.  kh is k's KMS, locked (fs_kms_lock). */
static int find_for(struct sekeyfs_kms *k, struct kms *kh, enum fs_rcpt_kind kind,
		    const char *rcpt, uint32_t *key, int *kms_rc, char *why, size_t cap)
{
	uint32_t ids[RCPT_USERS_MAX + 1], g;
	char list[FS_RCPT_MAX + 1], *tok, *save = NULL;
	struct kms_found f;
	size_t n = 0;
	int rc;

	if (kind == FS_RCPT_GROUP) {
		rc = kms_group_by_name(kh, rcpt, &g);
		if (rc == KMS_ENOGROUP)
			return snprintf(why, cap, "group %s is not one of %s's groups", rcpt, k->user),
			       -ENOKEY;
		if (!rc)
			rc = k->admin ? kms_find_key_group(kh, g, &f)
				      : kms_find_key_v2(kh, k->user_id, g, &f);
	} else {
		snprintf(list, sizeof(list), "%s", rcpt);
		rc = KMS_OK;
		for (tok = strtok_r(list, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
			rc = kms_user_by_name(kh, tok, &ids[n++]);
			if (rc == KMS_ENOUSER)
				return snprintf(why, cap, "user %s shares no group with %s", tok, k->user),
				       -ENOKEY;
		}
		if (!k->admin)
			ids[n++] = k->user_id;
		if (!rc)
			rc = kms_find_key_v3(kh, ids, n, &f);
	}
	*kms_rc = rc;
	if (rc == KMS_OK) {
		*key = f.key_id;
		return 0;
	}
	snprintf(why, cap, "%s", kms_errmsg(kh)[0] ? kms_errmsg(kh) : kms_strerror(rc));
	return rc == KMS_ENOMEM ? -ENOMEM : rc == KMS_EDB || rc == KMS_ECUBE ? -EIO : -ENOKEY;
}

int fs_rcpt_key(struct sekeyfs *fs, enum fs_rcpt_kind kind, const char *rcpt, uint32_t *key)
{
	char why[256] = "";
	struct kms *kh = NULL;
	int rc, krc = KMS_OK;

	if (!fs->kms) {
		fs_log(fs, LOG_WARNING, "recipients %s: no KMS (mount with --updates DIR)", rcpt);
		return -ENOKEY;
	}
	rc = fs_kms_lock(fs, &kh);
	if (rc)
		snprintf(why, sizeof(why), "the KMS is unreachable (cube gone?)");
	else
		rc = find_for(fs->kms, kh, kind, rcpt, key, &krc, why, sizeof(why));
	if (kh)
		fs_kms_unlock(fs, krc);
	if (rc)
		fs_log(fs, LOG_WARNING, "no key for %s %s (+%s): %s",
		       kind == FS_RCPT_GROUP ? "group" : "recipients", rcpt, fs->kms->user, why);
	return rc;
}

int fs_new_file_key(struct sekeyfs *fs, const struct fs_dirhdr *parent, uint32_t *key)
{
	if (parent->rcpt_kind == FS_RCPT_NONE) {
		*key = fs->cfg.key_id ? fs->cfg.key_id : parent->name_key;
		return 0;
	}
	if (!fs->kms) {
		/* The directory's own key was chosen for its recipients. */
		*key = parent->name_key;
		return 0;
	}
	return fs_rcpt_key(fs, parent->rcpt_kind, parent->rcpt, key);
}

void fs_key_warn(struct sekeyfs *fs, uint32_t key_id, const char *what)
{
	struct kms_key ki;
	struct kms *kh;
	int rc;

	if (!fs->kms || fs_kms_lock(fs, &kh) != 0)
		return;
	rc = kms_key_info(kh, key_id, &ki);
	fs_kms_unlock(fs, rc);
	if (rc != KMS_OK)
		return;
	if (ki.state == KMS_KEY_COMPROMISED)
		fs_log(fs, LOG_WARNING, "%s: key %u is compromised (still decrypted; re-encrypt with "
		       "sekeyfs --rekey)", what, key_id);
	else if (ki.state == KMS_KEY_DESTROYED)
		fs_log(fs, LOG_ERR, "%s: key %u was destroyed: its files cannot be read", what,
		       key_id);
}

/* ---- moving a directory's names to a new key ---- */

/* The backing names of dfd that are entries (not '.'-names, not side
 * files); *names malloc'ed, each malloc'ed. */
static int list_entries(int dfd, char ***names, size_t *n)
{
	struct dirent *de;
	char **v = NULL, **nv;
	size_t cnt = 0, cap = 0;
	DIR *dp;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (!rc && (de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.' || sefile_name_is_side_file(de->d_name))
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[cnt] = strdup(de->d_name);
		rc = v[cnt] ? 0 : -ENOMEM;
		cnt += v[cnt] != NULL;
	}
	closedir(dp);
	*names = v;
	*n = cnt;
	return rc;
}

static void free_entries(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

/* Rename every entry still under h->old_key to its name under h->name_key. */
static int move_names(struct sekeyfs *fs, int dfd, const struct fs_dirhdr *h)
{
	char plain[SEFILE_NAME_MAX + 1], full[SEFILE_ENCNAME_FULL_MAX + 2], **v = NULL;
	struct fs_dirhdr oldh = *h;
	struct fs_name now, was;
	size_t n = 0, i;
	int rc, first = 0, fd;
	ssize_t got;

	oldh.name_key = h->old_key;
	oldh.old_key = 0;
	rc = list_entries(dfd, &v, &n);
	for (i = 0; !rc && i < n; i++) {
		const char *enc = v[i];

		memset(&was, 0, sizeof(was));
		snprintf(was.enc, sizeof(was.enc), "%s", v[i]);
		was.is_long = sefile_name_is_long(v[i]);
		if (was.is_long) {
			char side[SEFILE_ENCNAME_MAX + 16];

			fs_side_name(v[i], side, sizeof(side));
			fd = openat(dfd, side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			got = fd < 0 ? -1 : read(fd, full, sizeof(full) - 1);
			if (fd >= 0)
				close(fd);
			if (got <= 0)
				continue;
			full[got] = '\0';
			enc = full;
		}
		/* Already under the new key (a resumed move): nothing to do. */
		if (sefile_name_decrypt(fs->pool, oldh.name_key, oldh.dir_id, enc, plain,
					sizeof(plain)) != SEFILE_OK)
			continue;
		rc = fs_name_encrypt(fs, h, plain, &now);
		if (!rc)
			rc = fs_side_write(fs, dfd, &now);
		if (!rc && sefile_rename_noreplace(dfd, v[i], dfd, now.enc) != 0)
			rc = -errno;
		if (!rc)
			fs_side_remove(fs, dfd, &was);
		if (rc && !first)
			first = rc;
	}
	free_entries(v, n);
	return rc ? rc : first;
}

int fs_dir_migrate(struct sekeyfs *fs, int dfd, struct fs_dirhdr *h, uint32_t new_key,
		   enum fs_rcpt_kind kind, const char *rcpt)
{
	struct fs_dirhdr mid;
	struct stat st;
	char err[256];
	int rc;

	if (fstat(dfd, &st) != 0)
		return -errno;
	/* An earlier move to another key, interrupted: finish it first. */
	if (h->old_key && h->name_key != new_key) {
		rc = fs_dir_migrate(fs, dfd, h, h->name_key, h->rcpt_kind, h->rcpt);
		if (rc)
			return rc;
	}
	mid = *h;
	if (!mid.old_key)
		mid.old_key = h->name_key == new_key ? 0 : h->name_key;
	mid.name_key = new_key;
	mid.rcpt_kind = kind;
	snprintf(mid.rcpt, sizeof(mid.rcpt), "%s", rcpt);
	/* 1. The header names both keys (durable) before any name moves. */
	rc = fs_dirhdr_store(fs->pool, dfd, &mid, st.st_mode, 1, err, sizeof(err));
	if (rc) {
		fs_log(fs, LOG_ERR, "moving names: %s", err);
		return rc;
	}
	*h = mid;
	if (!mid.old_key)
		return 0;
	/* 2. Each name, atomically (rename); 3. the header forgets the old key. */
	rc = move_names(fs, dfd, &mid);
	if (!rc)
		rc = fs_xattr_reseal_dir(fs, dfd, &mid);
	if (!rc && fsync(dfd) != 0)
		rc = -errno;
	if (rc) {
		fs_log(fs, LOG_ERR, "moving names from key %u to %u: %s (both keys stay readable)",
		       mid.old_key, new_key, strerror(-rc));
		return rc;
	}
	mid.old_key = 0;
	rc = fs_dirhdr_store(fs->pool, dfd, &mid, st.st_mode, 1, err, sizeof(err));
	if (rc)
		fs_log(fs, LOG_ERR, "moving names: %s", err);
	else
		*h = mid;
	return rc;
}

/* ---- the recipients xattrs ---- */

static enum fs_rcpt_kind kind_of(const char *name)
{
	if (!strcmp(name, "user.sekey.recipients"))
		return FS_RCPT_USERS;
	if (!strcmp(name, "user.sekey.group"))
		return FS_RCPT_GROUP;
	return FS_RCPT_NONE;
}

int fs_rcpt_setxattr(struct sekeyfs *fs, struct fs_inode *dir, const char *name,
		     const char *value, size_t size)
{
	enum fs_rcpt_kind kind = kind_of(name);
	struct fs_dirhdr cur;
	char rcpt[FS_RCPT_MAX + 1];
	uint32_t key;
	int rc, dfd;

	if (kind == FS_RCPT_NONE || !S_ISDIR(dir->type))
		return -EPERM;
	while (size > 0 && value[size - 1] == '\n')
		size--;
	if (fs_rcpt_parse(kind, value, size, rcpt) != 0)
		return -EINVAL;
	if (!fs->kms) {
		fs_log(fs, LOG_WARNING, "setting recipients needs the user's KMS (--updates DIR)");
		return -ENOKEY;
	}
	/* The setting user is always a recipient of a user list (the admin,
	 * who is no user, is not). */
	if (kind == FS_RCPT_USERS && !fs->kms->admin && !list_has(rcpt, fs->kms->user)) {
		if (strlen(rcpt) + 1 + strlen(fs->kms->user) > FS_RCPT_MAX)
			return -EINVAL;
		strcat(rcpt, ",");
		strcat(rcpt, fs->kms->user);
	}
	rc = fs_rcpt_key(fs, kind, rcpt, &key);
	if (rc)
		return rc;
	dfd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	pthread_mutex_lock(&dir->mu);
	rc = fs_dirhdr_read_fd(fs, dfd, &cur);
	if (!rc) {
		/* A new key moves the names too (crash-safely, fs_dir_migrate). */
		rc = fs_dir_migrate(fs, dfd, &cur, key, kind, rcpt);
		dir->have_hdr = 0;
	}
	pthread_mutex_unlock(&dir->mu);
	close(dfd);
	return rc;
}

int fs_rcpt_refresh(struct sekeyfs *fs, struct fs_inode *dir, uint32_t key)
{
	struct fs_dirhdr cur;
	int rc, dfd;

	if (fs->cfg.read_only)
		return -EROFS;
	dfd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	pthread_mutex_lock(&dir->mu);
	rc = fs_dirhdr_read_fd(fs, dfd, &cur);
	if (!rc && (cur.name_key != key || cur.old_key)) {
		fs_log(fs, LOG_INFO, "moving the names of a directory from key %u to %u", cur.name_key,
		       key);
		rc = fs_dir_migrate(fs, dfd, &cur, key, cur.rcpt_kind, cur.rcpt);
	}
	dir->have_hdr = 0;
	pthread_mutex_unlock(&dir->mu);
	close(dfd);
	return rc;
}

int fs_rcpt_getxattr(struct sekeyfs *fs, struct fs_inode *dir, const char *name, char *buf,
		     size_t cap, size_t *len)
{
	enum fs_rcpt_kind kind = kind_of(name);
	struct fs_dirhdr h;
	size_t n;
	int rc;

	if (kind == FS_RCPT_NONE || !S_ISDIR(dir->type))
		return -ENODATA;
	rc = fs_dirhdr_get(fs, dir, &h);
	if (rc)
		return rc;
	if (h.rcpt_kind != kind)
		return -ENODATA;
	n = strlen(h.rcpt);
	*len = n;
	if (cap == 0)
		return 0;
	if (n > cap)
		return -ERANGE;
	memcpy(buf, h.rcpt, n);
	return 0;
}

/* ---- a share initialised with recipients ---- */

int sekeyfs_init_share_kms(struct sefile_cube *pool, struct sekeyfs_kms *k, int backing_fd,
			   const char *users, const char *group, uint32_t *key_out, char *err,
			   size_t err_cap)
{
	enum fs_rcpt_kind kind = group ? FS_RCPT_GROUP : FS_RCPT_USERS;
	const char *given = group ? group : users ? users : k->user;
	struct fs_dirhdr h;
	struct stat st;
	char why[256];
	struct kms *kh;
	int rc, krc = KMS_OK;

	memset(&h, 0, sizeof(h));
	if (fs_rcpt_parse(kind, given, strlen(given), h.rcpt) != 0)
		return snprintf(err, err_cap, "bad recipients \"%s\"", given), -EINVAL;
	if (kind == FS_RCPT_USERS && !k->admin && !list_has(h.rcpt, k->user)) {
		if (strlen(h.rcpt) + 1 + strlen(k->user) > FS_RCPT_MAX)
			return snprintf(err, err_cap, "too many recipients"), -EINVAL;
		strcat(h.rcpt, ",");
		strcat(h.rcpt, k->user);
	}
	h.rcpt_kind = kind;
	pthread_mutex_lock(&k->mu);
	kh = k->k;
	rc = kh ? find_for(k, kh, kind, h.rcpt, &h.name_key, &krc, why, sizeof(why)) : -EIO;
	pthread_mutex_unlock(&k->mu);
	if (!kh)
		snprintf(why, sizeof(why), "the KMS is unreachable");
	if (rc)
		return snprintf(err, err_cap, "no key for %s: %s", h.rcpt, why), rc;
	rc = fs_init_check(backing_fd, err, err_cap);
	if (rc)
		return rc;
	if (fstat(backing_fd, &st) != 0)
		return rc = -errno, snprintf(err, err_cap, "cannot stat BACKING: %s", strerror(errno)), rc;
	h.sector_size = 4096;
	rc = fs_random(h.dir_id, sizeof(h.dir_id));
	if (!rc)
		rc = fs_dirhdr_store(pool, backing_fd, &h, st.st_mode, 1, err, err_cap);
	if (!rc)
		*key_out = h.name_key;
	return rc;
}

/* ---- re-encrypting stale files ---- */

struct rekey_walk {
	struct sekeyfs *fs;
	int doing;          /* 0: counting, 1: re-encrypting */
	int progress;
	unsigned total, seen, done, failed, dirs;
	int first_err;
};

static void rekey_bar(const struct rekey_walk *w)
{
	unsigned width = 30, fill = w->total ? w->seen * width / w->total : width, i;
	char bar[32];

	if (!w->progress)
		return;
	for (i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\rrekey [%s] %u/%u", bar, w->seen, w->total);
	fflush(stderr);
}

/* One regular file: stale if its key is not target. */
static void rekey_file(struct rekey_walk *w, int dirfd, const char *bname, uint32_t target)
{
	struct sefile_info info;
	int fd, rc;

	fd = openat(dirfd, bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	rc = sefile_peek_header(fd, &info);
	close(fd);
	if (rc != SEFILE_OK || info.key_id == target)
		return;
	if (!w->doing) {
		w->total++;
		return;
	}
	rc = fs_xattr_rekey(w->fs, dirfd, bname, target);
	w->seen++;
	if (rc == SEFILE_OK) {
		w->done++;
	} else {
		w->failed++;
		if (!w->first_err)
			w->first_err = -sefile_errno(rc);
		fs_log(w->fs, LOG_ERR, "rekey %s (key %u -> %u): %s", bname, info.key_id, target,
		       sefile_errmsg());
	}
	rekey_bar(w);
}

static void rekey_dir(struct rekey_walk *w, int dirfd, unsigned depth)
{
	struct fs_dirhdr h;
	struct dirent *de;
	struct stat st;
	uint32_t target;
	int fd, sub, have_key;
	DIR *dp;

	if (depth > 256 || fs_dirhdr_read_fd(w->fs, dirfd, &h) != 0)
		return;
	have_key = fs_new_file_key(w->fs, &h, &target) == 0;
	/* Names under a key that is no longer the directory's move too. */
	if (w->doing && have_key && h.rcpt_kind != FS_RCPT_NONE &&
	    (target != h.name_key || h.old_key)) {
		if (fs_dir_migrate(w->fs, dirfd, &h, target, h.rcpt_kind, h.rcpt) == 0)
			w->dirs++;
		else if (!w->first_err)
			w->first_err = -EIO;
	}
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.' || sefile_name_is_side_file(de->d_name))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISREG(st.st_mode) && have_key) {
			rekey_file(w, dirfd, de->d_name, target);
		} else if (S_ISDIR(st.st_mode)) {
			sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				rekey_dir(w, sub, depth + 1);
				close(sub);
			}
		}
	}
	closedir(dp);
}

/* The backing directory of plaintext path sub, opened into *out. */
static int open_sub(struct sekeyfs *fs, const char *sub, int *out)
{
	char path[4096], *tok, *save = NULL;
	struct fs_dirhdr h;
	struct fs_name n;
	int fd, next, rc = 0;

	fd = openat(fs->root.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s", sub);
	for (tok = strtok_r(path, "/", &save); tok && !rc; tok = strtok_r(NULL, "/", &save)) {
		rc = fs_dirhdr_read_fd(fs, fd, &h);
		if (!rc)
			rc = fs_name_encrypt(fs, &h, tok, &n);
		if (rc == -EKEYEXPIRED || rc == -ENOKEY)  /* a retired name key still decrypts */
			rc = fs_name_scan(fs, fd, &h, tok, &n);
		if (!rc) {
			next = openat(fd, n.enc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = next < 0 ? -errno : 0;
			if (!rc) {
				close(fd);
				fd = next;
			}
		}
	}
	if (rc)
		close(fd);
	else
		*out = fd;
	return rc;
}

/* Both passes over the subtree at fd (closed here). */
static int rekey_tree(struct sekeyfs *fs, int fd, int progress, unsigned *n_done,
		      unsigned *n_failed)
{
	struct rekey_walk w = { .fs = fs, .progress = progress };

	rekey_dir(&w, fd, 0);
	w.doing = 1;
	rekey_bar(&w);
	rekey_dir(&w, fd, 0);
	if (progress)
		fprintf(stderr, "\n");
	close(fd);
	*n_done = w.done;
	*n_failed = w.failed;
	if (progress || w.dirs)
		fprintf(stderr, "rekey: names of %u director%s moved to their new key\n", w.dirs,
			w.dirs == 1 ? "y" : "ies");
	return w.first_err;
}

int sekeyfs_rekey(struct sekeyfs *fs, const char *sub, int progress, unsigned *n_done,
		  unsigned *n_failed)
{
	int fd, rc;

	*n_done = *n_failed = 0;
	rc = open_sub(fs, sub ? sub : "", &fd);
	if (rc)
		return rc;
	return rekey_tree(fs, fd, progress, n_done, n_failed);
}

int sekeyfs_rekey_backing(struct sekeyfs *fs, const char *backing_sub, int progress,
			  unsigned *n_done, unsigned *n_failed)
{
	int fd;

	*n_done = *n_failed = 0;
	fd = openat(fs->root.fd, backing_sub && backing_sub[0] ? backing_sub : ".",
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return rekey_tree(fs, fd, progress, n_done, n_failed);
}

int fs_stale_count(struct sekeyfs *fs, unsigned *n)
{
	struct rekey_walk w = { .fs = fs };
	int fd = openat(fs->root.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*n = 0;
	if (fd < 0)
		return -errno;
	rekey_dir(&w, fd, 0);
	close(fd);
	*n = w.total;
	return 0;
}
