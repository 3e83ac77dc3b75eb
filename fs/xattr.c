/*
 * xattr.c - extended attributes.  Only the user.* namespace is stored;
 * user.sekey.* is reserved for the key management: user.sekey.recipients
 * and user.sekey.group of a directory live in its authenticated header
 * (sharing.c), and no other user.sekey.* name can be set.
 *
 * Both the name and the value of an attribute are encrypted under the key
 * of the object they belong to, so whoever can read the object can read
 * its attributes and nobody else: a file's own SEfile key (the key ID in
 * its authenticated header), a directory's name key (its header's).
 * Symlinks and special files have no user.* attributes (Linux refuses
 * them before the request reaches us, and so does the backing).
 *
 * Backing name: "user.sekeyfs." || base64url(u32 key || SIV(key, an, s))
 * where s is the name without "user." and an = "sekeyfs xattr name v1" ||
 * object ID (the file's SEfile ID or the directory's ID): deterministic,
 * so a lookup is one SIV operation; the key ID in front lets a name still
 * decrypt after its object's key changed (a directory's recipients were
 * changed), as a value says its key too.  A backing name is at most 255
 * bytes, so s is at most XN_SUFFIX_MAX (161) bytes: a name of at most 166
 * bytes with "user.".
 *
 * Backing value: "SKX1" u32 key_id  chunk...  where each chunk is
 * SIV(key, ad, r[16] || up to 1008 value bytes) and ad = "sekeyfs xattr
 * v1" || object ID || u32 index || u32 chunks || plaintext name: a value
 * moved to another file, another name or another place in the value does
 * not decrypt (EIO).  Values written before names were encrypted (under
 * the share's root key, at their clear name) still read, since a value
 * names its key; they are listed under their clear name, and the next
 * setxattr of that name moves it to the encrypted form.
 *
 * Sections: names, values, the object, finding a stored name, the
 * operations, carrying attributes over (rekey, a directory's new key).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

#define XA_MAGIC    "SKX1"
#define XA_HEAD     8
#define XA_RAND     16
#define XA_SIV      16
#define XA_CHUNK    (WIRE_SIV_MAX - XA_RAND)              /* value bytes per chunk */
#define XA_SEALED   (XA_CHUNK + XA_RAND + XA_SIV)         /* stored bytes per full chunk */
#define XA_AD       "sekeyfs xattr v1"
#define XA_AD_MAX   (sizeof(XA_AD) - 1 + WIRE_FILE_ID_LEN + 8 + XATTR_NAME_MAX)
#define XA_VALUE_MAX 65536

#define XN_PREFIX   "user.sekeyfs."
#define XN_PREFIX_LEN (sizeof(XN_PREFIX) - 1)
#define XN_AD       "sekeyfs xattr name v1"
#define XN_KEY      4
/* 13 + b64(4 + 16 + 161) = 255: the longest suffix whose encoding fits */
#define XN_SUFFIX_MAX 161
#define XN_RAW_MAX  (XN_KEY + XA_SIV + XATTR_NAME_MAX)
#define USER_LEN    5                                     /* "user." */

/* An object whose attributes are read or written. */
struct xa_obj {
	char path[64];                    /* /proc/self/fd/N of its backing */
	uint8_t id[WIRE_FILE_ID_LEN];     /* binds names and values to it */
	uint32_t key;                     /* its key: new names and values */
};

static int is_user(const char *name)
{
	return strncmp(name, "user.", USER_LEN) == 0;
}

static int is_reserved(const char *name)
{
	return strncmp(name, "user.sekey.", 11) == 0;
}

static int is_encoded(const char *bname)
{
	return strncmp(bname, XN_PREFIX, XN_PREFIX_LEN) == 0;
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

static int cube_err_to_errno(int rc)
{
	switch (rc) {
	case CUBE_OK:
		return 0;
	case CUBE_ENOKEY:
	case CUBE_EUSAGE:
	case CUBE_EPERM:
		return -ENOKEY;
	case CUBE_EEXPIRED:
		return -EKEYEXPIRED;
	default:
		return -EIO;
	}
}

/* ---- names ---- */

static size_t name_ad(uint8_t *ad, const uint8_t id[WIRE_FILE_ID_LEN])
{
	memcpy(ad, XN_AD, sizeof(XN_AD) - 1);
	memcpy(ad + sizeof(XN_AD) - 1, id, WIRE_FILE_ID_LEN);
	return sizeof(XN_AD) - 1 + WIRE_FILE_ID_LEN;
}

/* The backing name of user attribute name for object o into out
 * (XATTR_NAME_MAX + 1): 0, -ERANGE (too long to encrypt) or -errno. */
static int name_encrypt(struct sekeyfs *fs, const struct xa_obj *o, const char *name, char *out)
{
	uint8_t ad[sizeof(XN_AD) + WIRE_FILE_ID_LEN], raw[XN_RAW_MAX];
	const char *s = name + USER_LEN;
	size_t len = strlen(s), adl = name_ad(ad, o->id);
	struct cube *c;
	int rc;

	out[0] = '\0';
	if (len == 0 || len > XN_SUFFIX_MAX)
		return len == 0 ? -EINVAL : -ERANGE;
	put_le32(raw, o->key);
	c = sefile_cube_get(fs->pool);
	rc = cube_siv_encrypt(c, o->key, ad, adl, (const uint8_t *)s, len, raw + XN_KEY);
	fs_cube_check(fs, rc);
	if (rc != CUBE_OK)
		fs_log(fs, LOG_WARNING, "xattr name: cannot encrypt under key %u: %s", o->key,
		       cube_errmsg(c));
	sefile_cube_put(fs->pool, c);
	if (rc != CUBE_OK)
		return cube_err_to_errno(rc);
	memcpy(out, XN_PREFIX, XN_PREFIX_LEN);
	sefile_b64_encode(raw, XN_KEY + XA_SIV + len, out + XN_PREFIX_LEN);
	return 0;
}

/* The plaintext name ("user." ...) of encoded backing name bname into out
 * (XATTR_NAME_MAX + 1): 0, -EIO (not one we wrote, tampered, or moved
 * from another object), -ENOKEY, or -errno. */
static int name_decrypt(struct sekeyfs *fs, const uint8_t id[WIRE_FILE_ID_LEN], const char *bname,
			char *out)
{
	uint8_t ad[sizeof(XN_AD) + WIRE_FILE_ID_LEN], raw[XN_RAW_MAX], pt[XN_RAW_MAX];
	const char *enc = bname + XN_PREFIX_LEN;
	size_t rawlen, adl = name_ad(ad, id), n;
	uint32_t key;
	struct cube *c;
	int rc;

	out[0] = '\0';
	if (!is_encoded(bname) ||
	    sefile_b64_decode(enc, strlen(enc), raw, sizeof(raw), &rawlen) != 0 ||
	    rawlen <= XN_KEY + XA_SIV || rawlen - XN_KEY - XA_SIV > XN_SUFFIX_MAX)
		return -EIO;
	key = get_le32(raw);
	c = sefile_cube_get(fs->pool);
	rc = cube_siv_decrypt(c, key, ad, adl, raw + XN_KEY, rawlen - XN_KEY, pt);
	fs_cube_check(fs, rc);
	sefile_cube_put(fs->pool, c);
	if (rc != CUBE_OK)
		return cube_err_to_errno(rc);
	n = rawlen - XN_KEY - XA_SIV;
	rc = memchr(pt, '\0', n) != NULL ? -EIO : 0;
	if (!rc) {
		memcpy(out, "user.", USER_LEN);
		memcpy(out + USER_LEN, pt, n);
		out[USER_LEN + n] = '\0';
	}
	OPENSSL_cleanse(pt, sizeof(pt));
	return rc;
}

/* The key ID an encoded backing name says it is under (0 if none). */
static uint32_t name_key_of(const char *bname)
{
	uint8_t raw[XN_RAW_MAX];
	size_t rawlen;
	const char *enc = bname + XN_PREFIX_LEN;

	if (!is_encoded(bname) ||
	    sefile_b64_decode(enc, strlen(enc), raw, sizeof(raw), &rawlen) != 0 || rawlen < XN_KEY)
		return 0;
	return get_le32(raw);
}

/* ---- values ---- */

static size_t make_ad(uint8_t *ad, const uint8_t id[WIRE_FILE_ID_LEN], uint32_t idx,
		      uint32_t n, const char *name)
{
	size_t len = sizeof(XA_AD) - 1, nl = strlen(name);

	memcpy(ad, XA_AD, len);
	memcpy(ad + len, id, WIRE_FILE_ID_LEN);
	len += WIRE_FILE_ID_LEN;
	put_le32(ad + len, idx);
	put_le32(ad + len + 4, n);
	len += 8;
	memcpy(ad + len, name, nl);
	return len + nl;
}

static uint32_t chunks_of(size_t len)
{
	return len == 0 ? 1 : (uint32_t)((len + XA_CHUNK - 1) / XA_CHUNK);
}

static size_t sealed_len(size_t len)
{
	return XA_HEAD + (size_t)chunks_of(len) * (XA_RAND + XA_SIV) + len;
}

/* Seal value into out (sealed_len(len) bytes); *out_len gets the stored length. */
static int seal_value(struct sekeyfs *fs, uint32_t key, const uint8_t id[WIRE_FILE_ID_LEN],
		      const char *name, const uint8_t *val, size_t len, uint8_t *out,
		      size_t *out_len)
{
	uint8_t ad[XA_AD_MAX], pt[WIRE_SIV_MAX];
	uint32_t i, n = chunks_of(len);
	size_t pos = XA_HEAD, take, adl;
	struct cube *c;
	int rc = 0;

	memcpy(out, XA_MAGIC, 4);
	put_le32(out + 4, key);
	c = sefile_cube_get(fs->pool);
	for (i = 0; i < n && !rc; i++) {
		take = len - (size_t)i * XA_CHUNK;
		if (take > XA_CHUNK)
			take = XA_CHUNK;
		rc = fs_random(pt, XA_RAND);
		if (rc)
			break;
		memcpy(pt + XA_RAND, val + (size_t)i * XA_CHUNK, take);
		adl = make_ad(ad, id, i, n, name);
		rc = cube_siv_encrypt(c, key, ad, adl, pt, XA_RAND + take, out + pos);
		fs_cube_check(fs, rc);
		rc = cube_err_to_errno(rc);
		if (rc)
			fs_log(fs, LOG_WARNING, "xattr %s: cannot encrypt under key %u: %s", name, key,
			       cube_errmsg(c));
		pos += XA_RAND + take + XA_SIV;
	}
	sefile_cube_put(fs->pool, c);
	OPENSSL_cleanse(pt, sizeof(pt));
	*out_len = pos;
	return rc;
}

/* Plaintext length of a stored value, or -1 if no value has that length. */
static long plain_len(size_t stored)
{
	size_t body, rem;

	if (stored < XA_HEAD + XA_RAND + XA_SIV)
		return -1;
	body = stored - XA_HEAD;
	rem = body % XA_SEALED;
	if (rem != 0 && rem < XA_RAND + XA_SIV)
		return -1;
	return (long)(body / XA_SEALED * XA_CHUNK + (rem ? rem - XA_RAND - XA_SIV : 0));
}

/* Open a stored value (out: plain_len bytes) under the key it names. */
static int open_value(struct sekeyfs *fs, const uint8_t id[WIRE_FILE_ID_LEN], const char *name,
		      const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
	uint8_t ad[XA_AD_MAX], pt[WIRE_SIV_MAX];
	long plen = plain_len(in_len);
	uint32_t key, i, n;
	size_t pos = XA_HEAD, take, adl;
	struct cube *c;
	int rc = 0;

	*out_len = 0;
	if (plen < 0 || memcmp(in, XA_MAGIC, 4) != 0) {
		fs_log(fs, LOG_ERR, "xattr %s: stored value is not one sekeyfs wrote", name);
		return -EIO;
	}
	key = get_le32(in + 4);
	n = chunks_of((size_t)plen);
	c = sefile_cube_get(fs->pool);
	for (i = 0; i < n && !rc; i++) {
		take = (size_t)plen - (size_t)i * XA_CHUNK;
		if (take > XA_CHUNK)
			take = XA_CHUNK;
		adl = make_ad(ad, id, i, n, name);
		rc = cube_siv_decrypt(c, key, ad, adl, in + pos, XA_RAND + take + XA_SIV, pt);
		fs_cube_check(fs, rc);
		rc = cube_err_to_errno(rc);
		if (rc)
			fs_log(fs, LOG_ERR, "xattr %s: cannot decrypt chunk %u under key %u: %s", name,
			       i, key, cube_errmsg(c));
		else
			memcpy(out + (size_t)i * XA_CHUNK, pt + XA_RAND, take);
		pos += XA_RAND + take + XA_SIV;
	}
	sefile_cube_put(fs->pool, c);
	OPENSSL_cleanse(pt, sizeof(pt));
	if (!rc)
		*out_len = (size_t)plen;
	return rc;
}

/* The stored value of backing name bname at path, malloc'd into *out. */
static int read_stored(const char *path, const char *bname, uint8_t **out, size_t *len)
{
	ssize_t n = getxattr(path, bname, NULL, 0), m;
	uint8_t *b;

	*out = NULL;
	*len = 0;
	if (n < 0)
		return -errno;
	b = malloc((size_t)n + 1);
	if (!b)
		return -ENOMEM;
	m = getxattr(path, bname, b, (size_t)n);
	if (m < 0) {
		free(b);
		return errno == ERANGE ? -EAGAIN : -errno;  /* grew meanwhile */
	}
	*out = b;
	*len = (size_t)m;
	return 0;
}

/* The plaintext value stored at bname (for plaintext name), malloc'd. */
static int read_value(struct sekeyfs *fs, const struct xa_obj *o, const char *bname,
		      const char *name, uint8_t **out, size_t *len)
{
	uint8_t *stored, *plain;
	size_t slen;
	long want;
	int rc = read_stored(o->path, bname, &stored, &slen);

	*out = NULL;
	*len = 0;
	if (rc)
		return rc;
	want = plain_len(slen);
	plain = malloc(want > 0 ? (size_t)want : 1);
	if (!plain)
		rc = -ENOMEM;
	else
		rc = open_value(fs, o->id, name, stored, slen, plain, len);
	free(stored);
	if (rc && plain) {
		OPENSSL_cleanse(plain, want > 0 ? (size_t)want : 1);
		free(plain);
		plain = NULL;
	}
	*out = plain;
	return rc;
}

/* ---- the object ---- */

/* Path, ID and key of ino's attributes: a directory's header (its name
 * key), a file's authenticated SEfile header (its key).  -ENOKEY when
 * this user cannot read the object; -EPERM for other types. */
static int obj_get(struct sekeyfs *fs, struct fs_inode *ino, struct xa_obj *o)
{
	struct sefile_info info;
	struct fs_dirhdr h;
	int rc;

	memset(o, 0, sizeof(*o));
	fs_proc_path(ino, o->path, sizeof(o->path));
	if (S_ISDIR(ino->type)) {
		rc = fs_dirhdr_get(fs, ino, &h);
		if (!rc) {
			memcpy(o->id, h.dir_id, WIRE_FILE_ID_LEN);
			o->key = h.name_key;
		}
		return rc;
	}
	if (!S_ISREG(ino->type))
		return -EPERM;
	/* the inode's shared SEfile: its header was authenticated on open */
	rc = fs_file_acquire(fs, ino, 0);
	if (rc)
		return rc;
	pthread_rwlock_rdlock(&ino->sf_lock);
	rc = ino->sf && sefile_info(ino->sf, &info) == SEFILE_OK ? 0 : -EIO;
	pthread_rwlock_unlock(&ino->sf_lock);
	fs_file_release(fs, ino);
	if (!rc) {
		memcpy(o->id, info.file_id, WIRE_FILE_ID_LEN);
		o->key = info.key_id;
	}
	return rc;
}

/* ---- finding a stored name ---- */

/* The backing names at path (malloc'd, NUL-separated, *len bytes). */
static int list_backing(const char *path, char **out, size_t *len)
{
	ssize_t n = listxattr(path, NULL, 0);
	char *b;

	*out = NULL;
	*len = 0;
	if (n < 0)
		return -errno;
	b = malloc((size_t)n + 1);
	if (!b)
		return -ENOMEM;
	n = listxattr(path, b, (size_t)n);
	if (n < 0) {
		free(b);
		return errno == ERANGE ? -EAGAIN : -errno;
	}
	*out = b;
	*len = (size_t)n;
	return 0;
}

static int backing_has(const char *path, const char *bname)
{
	if (getxattr(path, bname, NULL, 0) >= 0)
		return 0;
	return -errno;
}

/*
 * Where plaintext name is stored for o: its encoding under o's key (enc,
 * "" when the name is too long to encrypt), else its clear name (written
 * before names were encrypted), else an encoding under another key (the
 * object's key changed since).  found (XATTR_NAME_MAX + 1) gets the
 * backing name: 0, -ENODATA, or -errno.
 */
static int find_stored(struct sekeyfs *fs, const struct xa_obj *o, const char *name,
		       const char *enc, char *found)
{
	char plain[XATTR_NAME_MAX + 1], *all = NULL, *s;
	size_t len;
	int rc;

	found[0] = '\0';
	if (enc[0]) {
		rc = backing_has(o->path, enc);
		if (rc != -ENODATA) {
			if (!rc)
				snprintf(found, XATTR_NAME_MAX + 1, "%s", enc);
			return rc;
		}
	}
	if (!is_encoded(name)) {
		rc = backing_has(o->path, name);
		if (rc != -ENODATA) {
			if (!rc)
				snprintf(found, XATTR_NAME_MAX + 1, "%s", name);
			return rc;
		}
	}
	rc = list_backing(o->path, &all, &len);
	if (rc)
		return rc;
	rc = -ENODATA;
	for (s = all; s < all + len && rc == -ENODATA; s += strlen(s) + 1) {
		/* under o's key the name would have been enc itself */
		if (!is_encoded(s) || (enc[0] && name_key_of(s) == o->key))
			continue;
		if (name_decrypt(fs, o->id, s, plain) == 0 && strcmp(plain, name) == 0) {
			snprintf(found, XATTR_NAME_MAX + 1, "%s", s);
			rc = 0;
		}
	}
	free(all);
	return rc;
}

/* The encoding of name to look it up: "" when there is none (too long:
 * only a clear name can exist; a key that may decrypt but no longer
 * encrypt, e.g. deactivated: find_stored scans). */
static int lookup_name(struct sekeyfs *fs, const struct xa_obj *o, const char *name, char *enc)
{
	int rc = name_encrypt(fs, o, name, enc);

	if (rc == -ERANGE || rc == -EINVAL || rc == -ENOKEY || rc == -EKEYEXPIRED) {
		enc[0] = '\0';
		rc = 0;
	}
	return rc;
}

/* ---- the operations ---- */

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	char enc[XATTR_NAME_MAX + 1], found[XATTR_NAME_MAX + 1];
	uint8_t *stored = NULL;
	size_t stored_len = 0;
	struct xa_obj o;
	int rc = 0, exists = 0;

	if (fs->cfg.read_only)
		rc = -EROFS;
	else if (!is_user(name))
		rc = -EOPNOTSUPP;
	else if (is_reserved(name)) {
		fuse_reply_err(req, -fs_rcpt_setxattr(fs, p, name, value, size));
		return;
	} else if (size > XA_VALUE_MAX)
		rc = -E2BIG;
	if (!rc)
		rc = obj_get(fs, p, &o);
	if (!rc)
		rc = name_encrypt(fs, &o, name, enc);
	if (!rc) {
		rc = find_stored(fs, &o, name, enc, found);
		exists = rc == 0;
		if (rc == -ENODATA)
			rc = 0;
	}
	if (!rc && (flags & XATTR_CREATE) && exists)
		rc = -EEXIST;
	else if (!rc && (flags & XATTR_REPLACE) && !exists)
		rc = -ENODATA;
	if (!rc) {
		stored = malloc(sealed_len(size));
		rc = stored ? seal_value(fs, o.key, o.id, name, (const uint8_t *)value, size, stored,
					 &stored_len)
			    : -ENOMEM;
	}
	/* The kernel checks the flags again when only enc is involved; an
	 * older copy elsewhere is replaced by hand. */
	if (!rc && setxattr(o.path, enc, stored, stored_len,
			    exists && strcmp(found, enc) != 0 ? 0 : flags) != 0)
		rc = -errno;
	if (!rc && exists && strcmp(found, enc) != 0 && removexattr(o.path, found) != 0 &&
	    errno != ENODATA)
		fs_log(fs, LOG_WARNING, "xattr %s: older copy %s left behind: %s", name, found,
		       strerror(errno));
	free(stored);
	fuse_reply_err(req, -rc);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	char enc[XATTR_NAME_MAX + 1], found[XATTR_NAME_MAX + 1];
	uint8_t *plain = NULL;
	size_t plen = 0;
	struct xa_obj o;
	int rc;

	if (is_reserved(name) && S_ISDIR(p->type)) {
		char buf[FS_RCPT_MAX + 1];

		rc = fs_rcpt_getxattr(fs, p, name, buf, size < sizeof(buf) ? size : sizeof(buf),
				      &plen);
		if (rc)
			fuse_reply_err(req, -rc);
		else if (size == 0)
			fuse_reply_xattr(req, plen);
		else
			fuse_reply_buf(req, buf, plen);
		return;
	}
	/* Other namespaces (security.capability is asked on every write) and
	 * the reserved names: nothing, without touching the backing file. */
	if (!is_user(name) || is_reserved(name) || (!S_ISREG(p->type) && !S_ISDIR(p->type))) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = obj_get(fs, p, &o);
	if (!rc)
		rc = lookup_name(fs, &o, name, enc);
	if (!rc)
		rc = find_stored(fs, &o, name, enc, found);
	if (!rc)
		rc = read_value(fs, &o, found, name, &plain, &plen);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, plen);
	else if (plen > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)plain, plen);
	if (plain) {
		OPENSSL_cleanse(plain, plen);
		free(plain);
	}
}

/* Append name (with its NUL) to out unless it is there already. */
static void list_add(char *out, size_t *len, const char *name)
{
	const char *s;
	size_t nl = strlen(name) + 1;

	for (s = out; s < out + *len; s += strlen(s) + 1)
		if (strcmp(s, name) == 0)
			return;
	memcpy(out + *len, name, nl);
	*len += nl;
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	static const char *const rcpt_names[] = { "", "user.sekey.recipients", "user.sekey.group" };
	char plain[XATTR_NAME_MAX + 1], *all = NULL, *out = NULL, *s;
	struct fs_dirhdr h;
	struct xa_obj o;
	size_t len = 0, n = 0, extra = 0;
	int rc, have_obj = 0;

	if (!S_ISREG(p->type) && !S_ISDIR(p->type)) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* A directory's recipients are listed with its other attributes. */
	if (S_ISDIR(p->type) && fs_dirhdr_get(fs, p, &h) == 0 && h.rcpt_kind != FS_RCPT_NONE)
		extra = strlen(rcpt_names[h.rcpt_kind]) + 1;
	memset(&o, 0, sizeof(o));
	fs_proc_path(p, o.path, sizeof(o.path));
	rc = list_backing(o.path, &all, &n);
	/* a plaintext name is never longer than the backing one */
	if (!rc && !(out = malloc(n + extra + 1)))
		rc = -ENOMEM;
	for (s = all; !rc && s < all + n; s += strlen(s) + 1) {
		if (!is_user(s) || is_reserved(s))
			continue;
		if (!is_encoded(s)) {
			list_add(out, &len, s);  /* written before names were encrypted */
			continue;
		}
		/* the object's ID, only once there is a name to decrypt: a
		 * user who cannot read the object gets its error (ENOKEY) */
		if (!have_obj) {
			rc = obj_get(fs, p, &o);
			have_obj = !rc;
			if (rc)
				break;
		}
		if (name_decrypt(fs, o.id, s, plain) == 0)
			list_add(out, &len, plain);
		else
			fs_log(fs, LOG_ERR, "xattr: backing name %.40s... does not decrypt "
			       "(tampered, moved from another object, or a key this cube lacks): skipped", s);
	}
	if (!rc && extra) {
		memcpy(out + len, rcpt_names[h.rcpt_kind], extra);
		len += extra;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out, len);
	free(all);
	free(out);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	char enc[XATTR_NAME_MAX + 1], found[XATTR_NAME_MAX + 1];
	struct xa_obj o;
	int rc = 0, removed = 0, round;

	if (fs->cfg.read_only)
		rc = -EROFS;
	else if (!is_user(name))
		rc = -EOPNOTSUPP;
	else if (is_reserved(name))
		rc = -EPERM;
	if (!rc)
		rc = obj_get(fs, p, &o);
	if (!rc)
		rc = lookup_name(fs, &o, name, enc);
	/* every copy: a crash between writing a new copy and dropping an
	 * older one (setxattr) can leave two */
	for (round = 0; !rc && round < 8; round++) {
		rc = find_stored(fs, &o, name, enc, found);
		if (!rc && removexattr(o.path, found) != 0)
			rc = -errno;
		if (!rc)
			removed++;
	}
	if (rc == -ENODATA && removed)
		rc = 0;
	fuse_reply_err(req, -rc);
}

/* ---- carrying attributes over ---- */

/*
 * Re-encrypt every user attribute of src (object ID src_id) for dst
 * (dst_id, key): decrypt name and value, encrypt both again, set them on
 * dst.  In place (a directory's new key: src and dst the same), the old
 * backing name is removed after the new one is written, so a crash leaves
 * both copies (readers find either, removexattr drops both).  A name or
 * value that does not authenticate is dropped with a log line (it reads
 * as EIO already); a key this cube lacks or a failing cube stops it.
 */
static int carry_over(struct sekeyfs *fs, const char *src, const uint8_t src_id[WIRE_FILE_ID_LEN],
		      const char *dst, const uint8_t dst_id[WIRE_FILE_ID_LEN], uint32_t key,
		      int in_place)
{
	char plain[XATTR_NAME_MAX + 1], enc[XATTR_NAME_MAX + 1], *all = NULL, *s;
	struct xa_obj so, dobj;
	uint8_t *val = NULL, *stored = NULL;
	size_t n, vlen, slen;
	int rc;

	memset(&so, 0, sizeof(so));
	memset(&dobj, 0, sizeof(dobj));
	snprintf(so.path, sizeof(so.path), "%s", src);
	memcpy(so.id, src_id, WIRE_FILE_ID_LEN);
	snprintf(dobj.path, sizeof(dobj.path), "%s", dst);
	memcpy(dobj.id, dst_id, WIRE_FILE_ID_LEN);
	dobj.key = key;
	rc = list_backing(src, &all, &n);
	if (rc == -EOPNOTSUPP)
		return 0; /* a backing without xattrs (sshfs, some NFS) holds none to carry */
	for (s = all; !rc && s < all + n; s += strlen(s) + 1) {
		if (!is_user(s) || is_reserved(s))
			continue;
		/* in place, a name already under the key is done (its value was
		 * written with it) */
		if (in_place && is_encoded(s) && name_key_of(s) == key)
			continue;
		if (is_encoded(s)) {
			rc = name_decrypt(fs, src_id, s, plain);
			if (rc == -EIO) {
				fs_log(fs, LOG_ERR, "xattr: backing name %.40s... does not decrypt: not carried over", s);
				rc = 0;
				continue;
			}
			if (rc)
				break;
		} else {
			snprintf(plain, sizeof(plain), "%s", s);
		}
		rc = read_value(fs, &so, s, plain, &val, &vlen);
		if (rc == -EIO) {
			fs_log(fs, LOG_ERR, "xattr %s: value does not decrypt: not carried over", plain);
			rc = 0;
			continue;
		}
		if (!rc)
			rc = name_encrypt(fs, &dobj, plain, enc);
		if (rc == -ERANGE) {
			/* a clear name too long to encrypt stays as it is */
			rc = 0;
			snprintf(enc, sizeof(enc), "%s", plain);
		}
		if (!rc && !(stored = malloc(sealed_len(vlen))))
			rc = -ENOMEM;
		if (!rc)
			rc = seal_value(fs, key, dst_id, plain, val, vlen, stored, &slen);
		if (!rc && setxattr(dst, enc, stored, slen, 0) != 0)
			rc = -errno;
		if (!rc && in_place && strcmp(s, enc) != 0 && removexattr(src, s) != 0 && errno != ENODATA)
			rc = -errno;
		if (val) {
			OPENSSL_cleanse(val, vlen);
			free(val);
		}
		free(stored);
		val = stored = NULL;
	}
	free(all);
	return rc;
}

static int errno_to_sefile(int rc)
{
	switch (rc) {
	case 0:
		return SEFILE_OK;
	case -ENOKEY:
		return SEFILE_ENOKEY;
	case -EKEYEXPIRED:
		return SEFILE_EKEYEXPIRED;
	case -ENOMEM:
		return SEFILE_ENOMEM;
	case -ENOSPC:
		return SEFILE_ENOSPC;
	default:
		errno = -rc;
		return SEFILE_EIO;
	}
}

static int rekey_hook(void *arg, int src_fd, const struct sefile_info *src, int dst_fd,
		      const struct sefile_info *dst)
{
	struct sekeyfs *fs = arg;
	char sp[64], dp[64];
	int rc;

	snprintf(sp, sizeof(sp), "/proc/self/fd/%d", src_fd);
	snprintf(dp, sizeof(dp), "/proc/self/fd/%d", dst_fd);
	rc = carry_over(fs, sp, src->file_id, dp, dst->file_id, dst->key_id, 0);
	if (rc)
		fs_log(fs, LOG_ERR, "rekey: extended attributes cannot move to key %u: %s",
		       dst->key_id, strerror(-rc));
	return errno_to_sefile(rc);
}

int fs_xattr_rekey(struct sekeyfs *fs, int dirfd, const char *bname, uint32_t new_key)
{
	struct sefile_params p = { .key_id = new_key };

	return sefile_rekey_with(fs->pool, dirfd, bname, &p, rekey_hook, fs);
}

int fs_xattr_reseal_dir(struct sekeyfs *fs, int dirfd, const struct fs_dirhdr *h)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", dirfd);
	return carry_over(fs, path, h->dir_id, path, h->dir_id, h->name_key, 1);
}
