/*
 * xattr.c - extended attributes.  Only the user.* namespace is stored;
 * user.sekey.* is reserved for the key management: user.sekey.recipients
 * and user.sekey.group of a directory live in its authenticated header
 * (sharing.c), and no other user.sekey.* name can be set.  A value is
 * stored in the backing xattr of the same name as
 *   "SKX1" u32 key_id  chunk...
 * where each chunk is SIV(key, ad, r[16] || up to 1008 value bytes) and
 * ad = "sekeyfs xattr v1" || object ID || u32 index || u32 chunks || name,
 * the object ID being the file's SEfile ID or the directory's ID: a value
 * moved to another file, another name or another place in the value does
 * not decrypt (EIO).  Attribute names are not encrypted.
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

static int is_user(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static int is_reserved(const char *name)
{
	return strncmp(name, "user.sekey.", 11) == 0;
}

/* The object ID the values of ino are bound to. */
static int object_id(struct sekeyfs *fs, struct fs_inode *ino, uint8_t id[WIRE_FILE_ID_LEN])
{
	struct sefile_info info;
	struct fs_dirhdr h;
	char path[64];
	int fd, rc;

	if (S_ISDIR(ino->type)) {
		rc = fs_dirhdr_get(fs, ino, &h);
		if (!rc)
			memcpy(id, h.dir_id, WIRE_FILE_ID_LEN);
		return rc;
	}
	if (!S_ISREG(ino->type))
		return -EPERM;
	fs_proc_path(ino, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = sefile_peek_header(fd, &info);
	close(fd);
	if (rc != SEFILE_OK)
		return fs_sefile_err(fs, rc, "xattr: file header");
	memcpy(id, info.file_id, WIRE_FILE_ID_LEN);
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

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

static uint32_t chunks_of(size_t len)
{
	return len == 0 ? 1 : (uint32_t)((len + XA_CHUNK - 1) / XA_CHUNK);
}

/* Seal value into out (cap bytes); *out_len gets the stored length. */
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

static int open_value(struct sekeyfs *fs, const uint8_t id[WIRE_FILE_ID_LEN], const char *name,
		      const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
	uint8_t ad[XA_AD_MAX], pt[WIRE_SIV_MAX];
	long plen = plain_len(in_len);
	uint32_t key, i, n;
	size_t pos = XA_HEAD, take, adl;
	struct cube *c;
	int rc = 0;

	if (plen < 0 || memcmp(in, XA_MAGIC, 4) != 0) {
		fs_log(fs, LOG_ERR, "xattr %s: stored value is not one sekeyfs wrote", name);
		return -EIO;
	}
	key = (uint32_t)in[4] | (uint32_t)in[5] << 8 | (uint32_t)in[6] << 16 | (uint32_t)in[7] << 24;
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
	*out_len = (size_t)plen;
	return rc;
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	uint8_t id[WIRE_FILE_ID_LEN], *stored = NULL;
	size_t stored_len = 0;
	struct fs_dirhdr h;
	char path[64];
	uint32_t key;
	int rc = 0;

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
		rc = object_id(fs, p, id);
	if (!rc) {
		key = fs->cfg.key_id;
		if (!key)
			key = fs_dirhdr_get(fs, &fs->root, &h) == 0 ? h.name_key : 0;
		stored = malloc(XA_HEAD + (size_t)chunks_of(size) * (XA_RAND + XA_SIV) + size);
		rc = stored ? seal_value(fs, key, id, name, (const uint8_t *)value, size, stored,
					 &stored_len)
			    : -ENOMEM;
	}
	fs_proc_path(p, path, sizeof(path));
	if (!rc && setxattr(path, name, stored, stored_len, flags) != 0)
		rc = -errno;
	free(stored);
	fuse_reply_err(req, -rc);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	uint8_t id[WIRE_FILE_ID_LEN], *stored = NULL, *plain = NULL;
	size_t plen = 0;
	char path[64];
	ssize_t n;
	long want;
	int rc = 0;

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
	fs_proc_path(p, path, sizeof(path));
	n = getxattr(path, name, NULL, 0);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	stored = malloc((size_t)n + 1);
	if (!stored) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = getxattr(path, name, stored, (size_t)n);
	rc = n < 0 ? -errno : 0;
	want = rc ? 0 : plain_len((size_t)n);
	if (!rc && want < 0)
		rc = -EIO;
	if (!rc && size == 0) {
		fuse_reply_xattr(req, (size_t)want);
		goto out;
	}
	if (!rc && (size_t)want > size)
		rc = -ERANGE;
	if (!rc)
		rc = object_id(fs, p, id);
	if (!rc) {
		plain = malloc((size_t)want + 1);
		rc = plain ? open_value(fs, id, name, stored, (size_t)n, plain, &plen) : -ENOMEM;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, (const char *)plain, plen);
out:
	if (plain) {
		OPENSSL_cleanse(plain, (size_t)want + 1);
		free(plain);
	}
	free(stored);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	char path[64], *all = NULL, *out = NULL, *s;
	static const char *const rcpt_names[] = { "", "user.sekey.recipients", "user.sekey.group" };
	struct fs_dirhdr h;
	size_t len = 0, extra = 0;
	ssize_t n;

	if (!S_ISREG(p->type) && !S_ISDIR(p->type)) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* A directory's recipients are listed with its other attributes. */
	if (S_ISDIR(p->type) && fs_dirhdr_get(fs, p, &h) == 0 && h.rcpt_kind != FS_RCPT_NONE)
		extra = strlen(rcpt_names[h.rcpt_kind]) + 1;
	fs_proc_path(p, path, sizeof(path));
	n = listxattr(path, NULL, 0);
	if (n >= 0) {
		all = malloc((size_t)n + 1);
		out = malloc((size_t)n + extra + 1);
		if (all && out)
			n = listxattr(path, all, (size_t)n);
		else
			n = -1, errno = ENOMEM;
	}
	if (n < 0) {
		fuse_reply_err(req, errno);
		goto out;
	}
	for (s = all; all && s < all + n; s += strlen(s) + 1) {
		if (!is_user(s) || is_reserved(s))
			continue;
		memcpy(out + len, s, strlen(s) + 1);
		len += strlen(s) + 1;
	}
	if (extra) {
		memcpy(out + len, rcpt_names[h.rcpt_kind], extra);
		len += extra;
	}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out, len);
out:
	free(all);
	free(out);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sekeyfs *fs = fuse_req_userdata(req);
	struct fs_inode *p = fs_inode_of(fs, ino);
	char path[64];
	int rc = 0;

	if (fs->cfg.read_only)
		rc = -EROFS;
	else if (!is_user(name))
		rc = -EOPNOTSUPP;
	else if (is_reserved(name))
		rc = -EPERM;
	fs_proc_path(p, path, sizeof(path));
	if (!rc && removexattr(path, name) != 0)
		rc = -errno;
	fuse_reply_err(req, -rc);
}
