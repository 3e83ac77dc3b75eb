/*
 * dir.c - directories in BACKING: the authenticated header every backing
 * directory holds (SEKEYFS_DIRHDR_NAME, a small SEfile file with the
 * directory ID and the key its entries' names are encrypted under), cached
 * in the directory's inode so a lookup costs one name encryption and one
 * fstatat; and the encrypted names themselves, with the side files of long
 * names, decrypted a batch at a time (one cube request for a readdir's
 * worth of names).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int fs_random(void *p, size_t n)
{
	uint8_t *b = p;
	ssize_t got;

	while (n > 0) {
		got = getrandom(b, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += got;
		n -= (size_t)got;
	}
	return 0;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Encode h into out (cap >= DIRHDR_LEN + FS_RCPT_MAX); returns the length. */
static size_t dirhdr_encode(const struct fs_dirhdr *h, uint8_t *out)
{
	size_t rl = h->rcpt_kind == FS_RCPT_NONE ? 0 : strnlen(h->rcpt, FS_RCPT_MAX);
	size_t at = DIRHDR_LEN;

	memset(out, 0, DIRHDR_LEN);
	memcpy(out, DIRHDR_MAGIC, 8);
	put_le16(out + 8, DIRHDR_VERSION);
	put_le16(out + 10, (h->rcpt_kind == FS_RCPT_GROUP ? DIRHDR_FLAG_GROUP : 0) |
				   (h->old_key ? DIRHDR_FLAG_OLDKEY : 0));
	put_le32(out + 12, h->name_key);
	memcpy(out + 16, h->dir_id, WIRE_FILE_ID_LEN);
	put_le32(out + 32, h->sector_size);
	put_le32(out + 36, (uint32_t)rl);
	if (h->old_key) {
		put_le32(out + at, h->old_key);
		at += 4;
	}
	memcpy(out + at, h->rcpt, rl);
	return at + rl;
}

/* Parse first, then validate: the length the header says, our magic and
 * version, only flags we know, recipients that parse, a sane sector size. */
int fs_dirhdr_decode(const uint8_t *in, size_t len, struct fs_dirhdr *h, char *why, size_t cap)
{
	uint32_t ss, rl, flags;
	enum fs_rcpt_kind kind;
	size_t at;

	memset(h, 0, sizeof(*h));
	if (len < DIRHDR_LEN)
		return snprintf(why, cap, "header is %zu bytes, under %d", len, DIRHDR_LEN), -EIO;
	if (memcmp(in, DIRHDR_MAGIC, 8) != 0)
		return snprintf(why, cap, "bad magic"), -EIO;
	if (in[8] != DIRHDR_VERSION || in[9] != 0)
		return snprintf(why, cap, "unknown version %u", in[8] | in[9] << 8), -EIO;
	flags = (uint32_t)(in[10] | in[11] << 8);
	rl = get_le32(in + 36);
	at = DIRHDR_LEN + (flags & DIRHDR_FLAG_OLDKEY ? 4 : 0);
	if (flags & ~(DIRHDR_FLAG_GROUP | DIRHDR_FLAG_OLDKEY) || rl > FS_RCPT_MAX ||
	    len != at + (size_t)rl || (flags & DIRHDR_FLAG_GROUP && !rl))
		return snprintf(why, cap, "bad flags or recipients length (%u, %u bytes)", flags, rl),
		       -EIO;
	kind = rl == 0 ? FS_RCPT_NONE : flags & DIRHDR_FLAG_GROUP ? FS_RCPT_GROUP : FS_RCPT_USERS;
	if (kind != FS_RCPT_NONE && fs_rcpt_parse(kind, (const char *)in + at, rl, h->rcpt) != 0)
		return snprintf(why, cap, "recipients do not parse"), -EIO;
	if (flags & DIRHDR_FLAG_OLDKEY)
		h->old_key = get_le32(in + DIRHDR_LEN);
	ss = get_le32(in + 32);
	if (ss < 512 || ss > 65536 || (ss & (ss - 1)))
		return snprintf(why, cap, "bad sector size %u", ss), -EIO;
	h->rcpt_kind = kind;
	h->name_key = get_le32(in + 12);
	memcpy(h->dir_id, in + 16, WIRE_FILE_ID_LEN);
	h->sector_size = ss;
	return 0;
}

/*
 * A directory without its header is damage, except while an rmdir removes
 * it: the header goes first (parked for a possible undo), then the empty
 * directory.  A reader racing with that sees a directory that is gone
 * (no links) or holds nothing but dot-names and side files: ENOENT, as a
 * plain file system gives for a directory removed under a reader.
 */
static int dir_being_removed(int dirfd)
{
	struct stat st;
	struct dirent *de;
	DIR *dp;
	int fd, empty = 1;

	if (fstat(dirfd, &st) == 0 && st.st_nlink == 0)
		return 1;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return 0;
	}
	while (empty && (de = readdir(dp)) != NULL)
		if (de->d_name[0] != '.' && !sefile_name_is_side_file(de->d_name))
			empty = 0;
	closedir(dp);
	return empty;
}

int fs_dirhdr_read_fd(struct sekeyfs *fs, int dirfd, struct fs_dirhdr *out)
{
	uint8_t buf[DIRHDR_LEN + FS_RCPT_MAX + 1];
	struct sefile_info info;
	struct sefile *f = NULL;
	struct stat st;
	char why[128];
	ssize_t n;
	int fd, rc;

	fd = openat(dirfd, SEKEYFS_DIRHDR_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT && dir_being_removed(dirfd))
			return -ENOENT;
		fs_log(fs, LOG_ERR, "directory: no header %s: %s (not a sekeyfs directory?)",
		       SEKEYFS_DIRHDR_NAME, strerror(-rc));
		return rc == -ENOENT ? -EIO : rc;
	}
	rc = sefile_open(&f, fs->pool, fd);
	if (rc == SEFILE_ENOKEY && sefile_peek_header(fd, &info) == SEFILE_OK)
		fs_log(fs, LOG_WARNING, "directory header: key %u is not in this cube "
		       "(the directory is not shared with this user, or the key was destroyed)",
		       info.key_id);
	if (rc != SEFILE_OK) {
		rc = fs_sefile_err(fs, rc, "directory header");
		goto out;
	}
	n = sefile_pread(f, buf, sizeof(buf), 0);
	if (n < 0) {
		rc = fs_sefile_err(fs, (int)n, "directory header");
		goto out;
	}
	rc = fs_dirhdr_decode(buf, (size_t)n, out, why, sizeof(why));
	if (rc)
		fs_log(fs, LOG_ERR, "directory header: %s", why);
	else if (fstat(fd, &st) == 0)
		out->file_ino = st.st_ino;
	if (!rc && sefile_info(f, &info) == SEFILE_OK)
		memcpy(out->file_id, info.file_id, WIRE_FILE_ID_LEN);
out:
	if (f)
		sefile_close(f);
	close(fd);
	return rc;
}

static int dirhdr_read(struct sekeyfs *fs, struct fs_inode *dir, struct fs_dirhdr *out)
{
	return fs_dirhdr_read_fd(fs, dir->fd, out);
}

void fs_dirhdr_forget(struct fs_inode *dir)
{
	pthread_mutex_lock(&dir->mu);
	dir->have_hdr = 0;
	pthread_mutex_unlock(&dir->mu);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Another process may replace a header (recipients set on another mount,
 * names moved by sekeyfs --rekey): at most once per attribute timeout a
 * cached header is checked against the header file's inode (a replaced
 * header is a new file renamed into place).
 */
static void dirhdr_revalidate(struct sekeyfs *fs, struct fs_inode *dir)
{
	uint8_t head[SEFILE_HEADER_LEN];
	struct sefile_info info;
	int64_t now = now_ns();
	struct stat st;
	int fd;

	if (now - dir->hdr_checked < (int64_t)(fs->cfg.timeout * 1e9))
		return;
	dir->hdr_checked = now;
	/* Every write of a header is a new file with a fresh SEfile ID: the
	 * ID (16 clear bytes, no crypto) tells a replaced header even where
	 * the backing's inode numbers are its own (sshfs numbers paths). */
	fd = openat(dir->fd, SEKEYFS_DIRHDR_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		dir->have_hdr = 0;
		return;
	}
	if (fstat(fd, &st) != 0 || st.st_ino != dir->hdr.file_ino ||
	    pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    sefile_header_parse(head, sizeof(head), &info) != SEFILE_OK ||
	    memcmp(info.file_id, dir->hdr.file_id, WIRE_FILE_ID_LEN) != 0)
		dir->have_hdr = 0;
	close(fd);
}

int fs_dirhdr_get(struct sekeyfs *fs, struct fs_inode *dir, struct fs_dirhdr *out)
{
	int rc = 0;

	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	pthread_mutex_lock(&dir->mu);
	if (dir->have_hdr)
		dirhdr_revalidate(fs, dir);
	if (!dir->have_hdr) {
		dir->hdr_checked = now_ns();
		rc = dirhdr_read(fs, dir, &dir->hdr);
		dir->have_hdr = rc == 0;
	}
	if (!rc)
		*out = dir->hdr;
	pthread_mutex_unlock(&dir->mu);
	return rc;
}

/* A fresh temporary name in a backing directory. */
static int tmp_name(char *out, size_t cap)
{
	uint8_t r[8];
	int rc = fs_random(r, sizeof(r));

	if (rc)
		return rc;
	snprintf(out, cap, FS_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
		 r[3], r[4], r[5], r[6], r[7]);
	return 0;
}

int fs_dirhdr_store(struct sefile_cube *pool, int dirfd, const struct fs_dirhdr *h, mode_t mode,
		    int durable, char *err, size_t cap)
{
	struct sefile_params p = { .key_id = h->name_key };
	uint8_t buf[DIRHDR_LEN + FS_RCPT_MAX];
	struct sefile *f = NULL;
	char tmp[64];
	size_t len;
	ssize_t n;
	int fd, rc;

	rc = tmp_name(tmp, sizeof(tmp));
	if (rc)
		return snprintf(err, cap, "no random bytes: %s", strerror(-rc)), rc;
	fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    (mode & 0666) | 0600);
	if (fd < 0)
		return rc = -errno, snprintf(err, cap, "cannot create the header: %s", strerror(errno)), rc;
	len = dirhdr_encode(h, buf);
	rc = sefile_create(&f, pool, fd, &p);
	if (rc == SEFILE_OK) {
		n = sefile_pwrite(f, buf, len, 0);
		rc = n < 0 ? (int)n : n != (ssize_t)len ? SEFILE_EIO : SEFILE_OK;
	}
	if (rc == SEFILE_OK && durable)
		rc = sefile_fsync(f, 0);
	if (f) {
		int crc = sefile_close(f);
		if (rc == SEFILE_OK)
			rc = crc;
	}
	if (rc != SEFILE_OK) {
		snprintf(err, cap, "cannot write the header: %s", sefile_errmsg());
		rc = -sefile_errno(rc);
	} else if (renameat(dirfd, tmp, dirfd, SEKEYFS_DIRHDR_NAME) != 0) {
		rc = -errno;
		snprintf(err, cap, "cannot rename the header into place: %s", strerror(errno));
	} else if (durable && fsync(dirfd) != 0) {
		rc = -errno;
		snprintf(err, cap, "cannot sync the directory: %s", strerror(errno));
	}
	if (rc)
		unlinkat(dirfd, tmp, 0);
	close(fd);
	return rc;
}

int fs_dirhdr_write(struct sefile_cube *pool, int dirfd, uint32_t name_key,
		    uint32_t sector_size, mode_t mode, int durable, char *err, size_t cap)
{
	struct fs_dirhdr h;
	int rc;

	memset(&h, 0, sizeof(h));
	h.name_key = name_key;
	h.sector_size = sector_size;
	rc = fs_random(h.dir_id, sizeof(h.dir_id));
	if (rc)
		return snprintf(err, cap, "no random bytes: %s", strerror(-rc)), rc;
	return fs_dirhdr_store(pool, dirfd, &h, mode, durable, err, cap);
}

int fs_name_encrypt(struct sekeyfs *fs, const struct fs_dirhdr *h, const char *name,
		    struct fs_name *out)
{
	int rc;

	if (fs_namecache_get(fs, h, name, out))
		return 0;
	rc = sefile_name_encrypt(fs->pool, h->name_key, h->dir_id, name, out->enc,
				 sizeof(out->enc), &out->is_long, out->full, sizeof(out->full));
	if (rc == SEFILE_OK) {
		fs_namecache_put(fs, h, name, out);
		return 0;
	}
	if (rc == SEFILE_ENAMETOOLONG)
		return -ENAMETOOLONG;
	if (rc == SEFILE_EINVAL)
		return -EINVAL;
	return fs_sefile_err(fs, rc, "name encryption");
}

void fs_side_name(const char *enc, char *out, size_t cap)
{
	snprintf(out, cap, "%s%s", enc, SEFILE_LONGNAME_SUFFIX);
}

/* Write all of buf to a new file at name in dirfd (temp + rename, so a
 * reader never sees half of it). */
static int write_small_file(int dirfd, const char *name, const char *buf, size_t len)
{
	char tmp[64];
	ssize_t n;
	int fd, rc = tmp_name(tmp, sizeof(tmp));

	if (rc)
		return rc;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	rc = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && renameat(dirfd, tmp, dirfd, name) != 0)
		rc = -errno;
	if (rc)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

int fs_side_write(struct sekeyfs *fs, int dirfd, const struct fs_name *n)
{
	char side[SEFILE_ENCNAME_MAX + 16];
	struct stat st;
	int rc;

	if (!n->is_long)
		return 0;
	fs_side_name(n->enc, side, sizeof(side));
	/* The side file's name is a hash of its content: one that exists is right. */
	if (fstatat(dirfd, side, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		return 0;
	rc = write_small_file(dirfd, side, n->full, strlen(n->full));
	if (rc)
		fs_log(fs, LOG_ERR, "cannot write long-name side file: %s", strerror(-rc));
	return rc;
}

void fs_side_remove(struct sekeyfs *fs, int dirfd, const struct fs_name *n)
{
	char side[SEFILE_ENCNAME_MAX + 16];

	if (!n->is_long)
		return;
	fs_side_name(n->enc, side, sizeof(side));
	if (unlinkat(dirfd, side, 0) != 0 && errno != ENOENT)
		fs_log(fs, LOG_WARNING, "cannot remove long-name side file: %s", strerror(errno));
}

/* The full encoding of a long name from its side file, checked against
 * the hash in the entry's name. */
static int read_side(struct sekeyfs *fs, int dirfd, const char *bname, char *full, size_t cap)
{
	char side[SEFILE_ENCNAME_MAX + 16];
	ssize_t n;
	int fd;

	fs_side_name(bname, side, sizeof(side));
	fd = openat(dirfd, side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, full, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	full[n] = '\0';
	if ((size_t)n == cap - 1 || !sefile_name_long_matches(bname, full)) {
		fs_log(fs, LOG_ERR, "long name %.24s...: side file does not match its entry", bname);
		return -EIO;
	}
	return 0;
}

/*
 * Decrypting names in batches: one cube request for a whole readdir's
 * worth of names (SIV_DECRYPT_BATCH) instead of one per name.
 */

/* Side-file content of the long names of a batch. */
typedef char fs_full_name[SEFILE_ENCNAME_FULL_MAX + 2];

/* The names of one batch that go to the cube: items[k] is v[map[k]]. */
struct name_round {
	struct sefile_name_item *items;
	size_t *map;
	size_t m;
};

/* One cube pass over the names of r under key: those that decrypt are
 * done (rc 0, cached when short) and leave r, the rest stay in r with
 * their sefile codes. */
static void name_round_run(struct sekeyfs *fs, const struct fs_dirhdr *h, uint32_t key,
			   struct fs_dirent *v, struct name_round *r)
{
	struct fs_dirhdr hk = *h;
	size_t k, left = 0;

	hk.name_key = key;
	sefile_name_decrypt_batch(fs->pool, key, h->dir_id, r->items, r->m);
	for (k = 0; k < r->m; k++) {
		struct fs_dirent *e = &v[r->map[k]];

		if (r->items[k].rc != SEFILE_OK) {
			r->items[left] = r->items[k];
			r->map[left++] = r->map[k];
			continue;
		}
		e->rc = 0;
		/* The pair is authentic (SIV): a later lookup, unlink or rename
		 * of this name needs no cube call. */
		if (r->items[k].enc == e->bname) {
			struct fs_name n;

			snprintf(n.enc, sizeof(n.enc), "%s", e->bname);
			n.is_long = 0;
			fs_namecache_put(fs, &hk, e->name, &n);
		}
	}
	r->m = left;
}

/* The names left in r are skipped: each logged, the cube's own failure
 * (not a name's) logged once. */
static void name_round_fail(struct sekeyfs *fs, struct fs_dirent *v, const struct name_round *r)
{
	int whole = 0;
	size_t k;

	for (k = 0; k < r->m; k++) {
		struct fs_dirent *e = &v[r->map[k]];
		int code = r->items[k].rc;

		if (code == SEFILE_EINTEGRITY) {
			fs_log(fs, LOG_ERR, "readdir: skipped an entry: integrity: name \"%.64s\" "
			       "does not authenticate (tampered, moved from another directory, or another key)",
			       r->items[k].enc);
			e->rc = -EIO;
		} else if (!whole) {
			whole = fs_sefile_err(fs, code, "readdir: skipped entries");
			e->rc = whole;
		} else {
			e->rc = whole;
		}
	}
}

void fs_names_decrypt(struct sekeyfs *fs, int dirfd, const struct fs_dirhdr *h,
		      struct fs_dirent *v, size_t n)
{
	struct name_round r = { NULL, NULL, 0 };
	fs_full_name *full = NULL;
	size_t i, n_full = 0;

	for (i = 0; i < n; i++) {
		v[i].name[0] = '\0';
		v[i].rc = 1;
		if (v[i].bname[0] != '.' && !sefile_name_is_side_file(v[i].bname))
			v[i].rc = -EIO;
		if (v[i].rc < 0 && sefile_name_is_long(v[i].bname))
			n_full++;
	}
	r.items = calloc(n ? n : 1, sizeof(*r.items));
	r.map = calloc(n ? n : 1, sizeof(*r.map));
	full = n_full ? calloc(n_full, sizeof(*full)) : NULL;
	if (!r.items || !r.map || (n_full && !full)) {
		for (i = 0; i < n; i++)
			if (v[i].rc < 0)
				v[i].rc = -ENOMEM;
		goto out;
	}
	n_full = 0;
	for (i = 0; i < n; i++) {
		const char *enc = v[i].bname;

		if (v[i].rc > 0)
			continue;
		if (sefile_name_is_long(v[i].bname)) {
			v[i].rc = read_side(fs, dirfd, v[i].bname, full[n_full], sizeof(full[n_full]));
			if (v[i].rc)
				continue;
			enc = full[n_full++];
			v[i].rc = -EIO;
		}
		r.items[r.m] = (struct sefile_name_item){ .enc = enc, .out = v[i].name,
							  .out_cap = sizeof(v[i].name) };
		r.map[r.m++] = i;
	}
	if (r.m)
		name_round_run(fs, h, h->name_key, v, &r);
	/* Names moving to a new key: the ones not moved yet are under the old. */
	if (r.m && h->old_key)
		name_round_run(fs, h, h->old_key, v, &r);
	name_round_fail(fs, v, &r);
out:
	free(r.items);
	free(r.map);
	free(full);
}

/* Read up to cap entries of dp into v (names and what readdir says of
 * them).  The count, or -errno if reading failed before any entry. */
ssize_t fs_dirents_read(DIR *dp, struct fs_dirent *v, size_t cap)
{
	struct dirent *de;
	size_t n = 0;

	while (n < cap) {
		errno = 0;
		de = readdir(dp);
		if (!de)
			return n == 0 && errno ? -errno : (ssize_t)n;
		if (strlen(de->d_name) >= sizeof(v[n].bname))
			continue; /* longer than any backing name the mount makes */
		strcpy(v[n].bname, de->d_name);
		v[n].ino = de->d_ino;
		v[n].type = de->d_type;
		v[n].off = de->d_off;
		n++;
	}
	return (ssize_t)n;
}

int fs_name_scan(struct sekeyfs *fs, int dirfd, const struct fs_dirhdr *h, const char *name,
		 struct fs_name *out)
{
	struct fs_dirent *v = calloc(FS_DIRENT_BATCH, sizeof(*v));
	DIR *dp = NULL;
	ssize_t got = 0;
	int fd = -1, rc = -ENOENT;
	size_t i;

	fd = v ? openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd < 0) {
		rc = v ? -errno : -ENOMEM;
		free(v);
		return rc;
	}
	dp = fdopendir(fd);
	if (!dp) {
		rc = -errno;
		close(fd);
		free(v);
		return rc;
	}
	while (rc == -ENOENT && (got = fs_dirents_read(dp, v, FS_DIRENT_BATCH)) > 0) {
		fs_names_decrypt(fs, fd, h, v, (size_t)got);
		for (i = 0; i < (size_t)got && rc == -ENOENT; i++) {
			if (v[i].rc != 0 || strcmp(v[i].name, name) != 0)
				continue;
			memset(out, 0, sizeof(*out));
			snprintf(out->enc, sizeof(out->enc), "%s", v[i].bname);
			out->is_long = sefile_name_is_long(v[i].bname);
			rc = 0;
		}
	}
	closedir(dp);
	OPENSSL_cleanse(v, FS_DIRENT_BATCH * sizeof(*v));
	free(v);
	return rc;
}
