/*
 * internal.h - what the files of fs/ share and nobody else sees: the file
 * system and inode structures, the directory header, and the helpers each
 * file lends the others.
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   0. fs->pool_lock    (rwlock: shared for the whole of every operation,
 *                        exclusive while a new cube pool replaces a dead
 *                        one, reconnect.c; never taken twice by a thread)
 *   1. inode->sf_lock   (rwlock: shared around I/O on the inode's open
 *                        SEfile, exclusive to open/replace/close it)
 *   2. inode->ra_mu     (the read-ahead plaintext of a file)
 *      inode->mu        (the directory header cache; never with ra_mu)
 *   3. fs->table_mu     (the (dev, ino) -> inode map and lookup counts)
 *   4. leaves: the name cache's mutex (namecache.c), the cube pool's own
 *      mutex (inside sefile/, never held across calls)
 * No lock but the shared pool_lock is held across a FUSE reply.  Only the
 * table mutex is ever taken on two inodes' behalf at once, so no two inode
 * locks nest.  One exception, safe because it runs alone: a reconnect holds
 * pool_lock exclusively (no operation is running) and takes each inode's
 * sf_lock and ra_mu while walking the table under table_mu.
 */
#ifndef SEKEYFS_FS_INTERNAL_H
#define SEKEYFS_FS_INTERNAL_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "../kms/kms.h"
#include "fs.h"

/* ---- directory header (dir.c), the content of SEKEYFS_DIRHDR_NAME ----
 *   off size
 *   0   8   magic "SEKEYDIR"
 *   8   2   version (1)
 *   10  2   flags (0)
 *   12  4   name key ID: entries' names are encrypted under it
 *   16  16  directory ID: every entry name is bound to it
 *   32  4   sector size of new files
 *   36  4   recipients length L (0: no recipients, the single-key share)
 *   40  L   recipients: comma-separated SEkey user names, or (flag bit 0)
 *           one group name; L <= FS_RCPT_MAX
 * With flag bit 1 (names moving to a new key, sharing.c) the old name key
 * (u32) comes at 40 and the recipients after it.
 * 40 + (4) + L bytes, little-endian, inside a SEfile file (so authenticated). */
#define DIRHDR_MAGIC   "SEKEYDIR"
#define DIRHDR_VERSION 1
#define DIRHDR_LEN     40
#define DIRHDR_FLAG_GROUP 1u
#define DIRHDR_FLAG_OLDKEY 2u  /* names are moving: u32 old key at 40, before the recipients */
#define FS_RCPT_MAX    512

enum fs_rcpt_kind {
	FS_RCPT_NONE = 0,   /* no recipients: the mount's --key or the header's key */
	FS_RCPT_USERS = 1,  /* rcpt is "alice,bob": find_key v3 with the creator */
	FS_RCPT_GROUP = 2,  /* rcpt is a group name: find_key v2 for the creator */
};

struct fs_dirhdr {
	uint8_t dir_id[WIRE_FILE_ID_LEN];
	uint32_t name_key;
	uint32_t sector_size;
	uint32_t old_key;            /* names still under it too (moving); 0: none */
	enum fs_rcpt_kind rcpt_kind;
	char rcpt[FS_RCPT_MAX + 1];
	ino_t file_ino;              /* the header file's inode and SEfile ID: a replaced */
	uint8_t file_id[WIRE_FILE_ID_LEN]; /* header is seen (by the ID where inode numbers
	                              * are not stable: sshfs, some NFS) */
};

/* Prefix of temporary names in BACKING (never a valid encrypted name). */
#define FS_TMP_PREFIX ".sekeyfs-tmp."

struct fs_inode {
	struct fs_inode *next;      /* hash chain; fs->table_mu */
	dev_t dev;
	ino_t ino;
	int fd;                     /* O_PATH; immutable while the inode lives */
	mode_t type;                /* S_IFMT bits; immutable */
	uint64_t nlookup;           /* fs->table_mu */

	pthread_mutex_t mu;         /* guards have_hdr, hdr, hdr_checked */
	int have_hdr;
	int64_t hdr_checked;        /* CLOCK_MONOTONIC ns of the last check that hdr is current */
	struct fs_dirhdr hdr;

	pthread_rwlock_t sf_lock;   /* guards the fields below */
	struct sefile *sf;          /* shared by every open handle */
	int sf_fd;
	int sf_writable;
	unsigned sf_users;
	uint32_t sector_size;       /* of this file, once known */

	pthread_mutex_t ra_mu;      /* guards ra (file.c: daemon read-ahead) */
	struct fs_readahead *ra;
};

struct fs_namecache;
struct fs_reconnect;
struct sekeyfs_kms;

struct sekeyfs {
	struct sefile_cube *pool;   /* replaced only under pool_lock (exclusive) */
	pthread_rwlock_t pool_lock;
	atomic_int cube_down;       /* an operation saw the cube fail */
	_Atomic int64_t last_reconnect;
	struct fs_reconnect *reconnect;
	struct fs_namecache *names; /* encrypted names (namecache.c) */
	struct sekeyfs_config cfg;
	uint32_t sector_size;       /* the root header's: new files */
	int writeback;              /* the kernel's write-back cache is on */
	struct fs_inode root;
	pthread_mutex_t table_mu;
	struct fs_inode **buckets;
	size_t nbuckets;
	size_t ninodes;
	struct sekeyfs_kms *kms;    /* the user's SEkey (not owned); NULL: single key */
	pthread_mutex_t ctl_mu;     /* guards ctl_last_error (leaf) */
	char ctl_last_error[512];   /* /.sekey/last_error: the last refused change */
};

/* An open file (fi->fh). */
struct fs_handle {
	struct fs_inode *ino;
	int append;
	int writable;
};

/* An open directory (fi->fh). */
struct fs_dirhandle {
	DIR *dp;
	off_t offset;               /* where the next entry to reply starts */
	struct fs_dirhdr hdr;
	/* Entries read from dp and decrypted, not replied yet: [next, count);
	 * the first of them starts at offset. */
	struct fs_dirent *ahead;    /* FS_DIRENT_BATCH of them */
	size_t next, count;
};

/* ---- log.c ---- */
void fs_log(const struct sekeyfs *fs, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Turn a SEfile code into -errno, logging integrity/key failures with what. */
int fs_sefile_err(struct sekeyfs *fs, int code, const char *what);

/* ---- inode.c ---- */
int fs_table_init(struct sekeyfs *fs);
void fs_table_free(struct sekeyfs *fs);
struct fs_inode *fs_inode_of(struct sekeyfs *fs, fuse_ino_t ino);
/* Find or make the inode for name in dir (stat in *st, fixed up); one
 * lookup counted.  Returns 0 or -errno. */
int fs_inode_lookup(struct sekeyfs *fs, struct fs_inode *dir, const char *bname,
		    struct fs_inode **out, struct stat *st);
void fs_inode_forget(struct sekeyfs *fs, struct fs_inode *ino, uint64_t n);
int fs_inode_init(struct fs_inode *ino);
void fs_inode_destroy(struct fs_inode *ino);
/* /proc/self/fd/N path of an inode's O_PATH fd (buf >= 64). */
void fs_proc_path(const struct fs_inode *ino, char *buf, size_t cap);

/* ---- attr.c ---- */
/* stat of an inode with the plaintext size.  Returns 0 or -errno. */
int fs_stat(struct sekeyfs *fs, struct fs_inode *ino, struct stat *st);
/* Replace a backing st_size by the plaintext size for its type. */
void fs_fix_size(struct sekeyfs *fs, struct fs_inode *ino, struct stat *st);

/* ---- dir.c ---- */
int fs_dirhdr_get(struct sekeyfs *fs, struct fs_inode *dir, struct fs_dirhdr *out);
/* Decode the plaintext of a header file (in, len bytes) into *h (zeroed
 * first): 0, or -EIO with why[cap] saying what is wrong.  Never trusts a
 * length inside; fuzzed by fuzz/fuzz_fs_dirhdr.c. */
int fs_dirhdr_decode(const uint8_t *in, size_t len, struct fs_dirhdr *h, char *why, size_t cap);
/* Read and authenticate the header of the backing directory dirfd. */
int fs_dirhdr_read_fd(struct sekeyfs *fs, int dirfd, struct fs_dirhdr *out);
/* Forget the cached header of dir (after it was replaced). */
void fs_dirhdr_forget(struct fs_inode *dir);
/* Write header h (dir_id, key, sector size, recipients as given) into the
 * directory dirfd through a temporary name renamed over any old one,
 * sealed under h->name_key; durable: fsync it.  0 or -errno with err set. */
int fs_dirhdr_store(struct sefile_cube *pool, int dirfd, const struct fs_dirhdr *h, mode_t mode,
		    int durable, char *err, size_t cap);
/* Write a new header (fresh directory ID) into the directory dirfd,
 * through a temporary name; durable: fsync it.  0 or -errno with err set. */
int fs_dirhdr_write(struct sefile_cube *pool, int dirfd, uint32_t name_key,
		    uint32_t sector_size, mode_t mode, int durable, char *err, size_t cap);
struct fs_name {
	char enc[SEFILE_ENCNAME_MAX + 1];  /* the backing name */
	int is_long;
	char full[1024];                    /* long names: the side file's content */
};
int fs_name_encrypt(struct sekeyfs *fs, const struct fs_dirhdr *h, const char *name,
		    struct fs_name *out);
/* The side file name of a long name (cap >= SEFILE_ENCNAME_MAX + 16). */
void fs_side_name(const char *enc, char *out, size_t cap);
/* Make sure a long name's side file exists in dirfd.  0 or -errno. */
int fs_side_write(struct sekeyfs *fs, int dirfd, const struct fs_name *n);
/* Drop a long name's side file (after its entry is gone). */
void fs_side_remove(struct sekeyfs *fs, int dirfd, const struct fs_name *n);
/* A backing directory entry and its decrypted name. */
struct fs_dirent {
	char bname[256];                 /* backing name */
	ino_t ino;
	unsigned char type;              /* d_type */
	off_t off;                       /* telldir cookie of the next entry */
	char name[SEFILE_NAME_MAX + 1];  /* plaintext, when rc is 0 */
	/* 0 (name holds the plaintext), 1 = not an entry (dot-names, side
	 * files), or -errno (logged: undecryptable names are skipped) */
	int rc;
};
/* Entries read ahead and decrypted in one cube request (readdir, scans). */
#define FS_DIRENT_BATCH 64
/* Decrypt the backing names of v[0..n) (bname in; name and rc out) of
 * directory dirfd with header h, in as few cube requests as
 * WIRE_SIV_BATCH_MAX allows (names not moved yet to a new key are tried
 * under h->old_key); decrypted short names go into the name cache. */
void fs_names_decrypt(struct sekeyfs *fs, int dirfd, const struct fs_dirhdr *h,
		      struct fs_dirent *v, size_t n);
/* Up to cap entries of dp into v (bname, ino, type, off).  The count (0 at
 * the end), or -errno if reading failed before any entry. */
ssize_t fs_dirents_read(DIR *dp, struct fs_dirent *v, size_t cap);
/* Find name among the entries of dirfd by decrypting them (when the
 * directory's name key may no longer encrypt: rotated or retired).
 * 0 with out filled, -ENOENT, or -errno. */
int fs_name_scan(struct sekeyfs *fs, int dirfd, const struct fs_dirhdr *h, const char *name,
		 struct fs_name *out);
/* Random bytes from the kernel. */
int fs_random(void *p, size_t n);

/* ---- file.c: the shared SEfile of an inode ---- */
int fs_file_acquire(struct sekeyfs *fs, struct fs_inode *ino, int want_write);
void fs_file_release(struct sekeyfs *fs, struct fs_inode *ino);
/* Make a new empty SEfile file under key_id at a temporary name in dirfd,
 * then rename it to bname (no replace: -EEXIST).  The open file and its
 * backing fd (O_RDWR) come back in *sfp, *fdp.  0 or -errno. */
int fs_file_create(struct sekeyfs *fs, int dirfd, const char *bname, mode_t mode,
		   uint32_t key_id, struct sefile **sfp, int *fdp);
/* Forget the read-ahead plaintext of ino (after any change to the file). */
void fs_readahead_drop(struct fs_inode *ino);
/* Free it (inode destroyed or last handle closed). */
void fs_readahead_free(struct fs_inode *ino);
/* Make sf (on fd) the inode's shared open file, for one user. */
void fs_file_install(struct sekeyfs *fs, struct fs_inode *ino, struct sefile *sf, int fd);

/* ---- namecache.c: encrypted names already computed ---- */
int fs_namecache_init(struct sekeyfs *fs);
void fs_namecache_free(struct sekeyfs *fs);
/* 1 and *out filled if name in the directory of h is cached, else 0. */
int fs_namecache_get(struct sekeyfs *fs, const struct fs_dirhdr *h, const char *name,
		     struct fs_name *out);
void fs_namecache_put(struct sekeyfs *fs, const struct fs_dirhdr *h, const char *name,
		      const struct fs_name *n);

/* ---- reconnect.c: the cube going away and coming back ---- */
/* Keep what a new pool needs: spec, role, pool size and a copy of the
 * PIN in locked memory (wiped by fs_reconnect_free).  0 or -ENOMEM. */
int fs_reconnect_setup(struct sekeyfs *fs, const char *spec, enum wire_role role,
		       unsigned connections, const char *pin);
void fs_reconnect_free(struct sekeyfs *fs);
/* The replacement pool the file system opened itself (closed by sekeyfs_free). */
struct sefile_cube *fs_reconnect_owned_pool(struct sekeyfs *fs);
/* Mark the cube down (a SEFILE_ECUBE was seen). */
void fs_cube_failed(struct sekeyfs *fs);
/* The same after a direct cube call that returned cube_rc (CUBE_E*). */
void fs_cube_check(struct sekeyfs *fs, int cube_rc);
/* Around every operation: pool_lock shared; leaving may reconnect. */
void fs_guard_enter(struct sekeyfs *fs);
void fs_guard_leave(struct sekeyfs *fs);
/* A page of locked memory holding a copy of pin; wipe with fs_pin_wipe. */
char *fs_pin_keep(const char *pin, size_t *cap, int *locked);
void fs_pin_wipe(char *pin, size_t cap, int locked);

/* ---- symlink.c ---- */
int fs_symlink_encrypt(struct sekeyfs *fs, uint32_t key_id, const char *target, char *out,
		       size_t cap);
int fs_symlink_decrypt(struct sekeyfs *fs, const char *stored, char *out, size_t cap);
/* Plaintext length of a stored target of len bytes. */
uint64_t fs_symlink_plain_len(uint64_t stored_len);

/* ---- the KMS connection (kmsconn.c) ---- */
struct sekeyfs_kms {
	pthread_mutex_t mu;         /* serialises every use of the fields below (leaf lock) */
	struct cube *cube;          /* a connection of its own, logged in as user (admin) */
	struct sefile_cube *pool;   /* wraps cube for the secure database */
	struct sdb_vfs *vfs;
	sqlite3 *db;
	struct kms *k;              /* NULL while the cube is away */
	int admin;                  /* the administrator's KMS (--admin) */
	int down;                   /* a call saw the cube fail: reopen before the next */
	int down_logged;
	int64_t last_reconnect;
	int64_t data_version;       /* PRAGMA data_version last seen (0: none yet) */
	int64_t version_checked;    /* when (seconds) */
	char *spec, *updates;
	char *pin;                  /* locked memory, for reopening */
	size_t pin_cap;
	int pin_locked;
	uint8_t serial[WIRE_SERIAL_LEN];
	uint32_t user_id;           /* 0 on the admin's mount */
	char user[KMS_NAME_MAX + 1];/* "admin" on the admin's mount */
	/* what the last sync did (the control tree's status file) */
	int64_t last_sync, last_applied;
	int last_sync_rc;
	char last_sync_msg[256];
	uint64_t n_applied;
	/* the update watcher */
	pthread_t th;
	int have_th;
	int wake[2];                /* a byte in wake[1] stops it */
	int ino_fd, ino_root, ino_user;
	unsigned interval;
	struct sekeyfs *fs;
};
/* The mount's KMS, locked (k->mu), reopened first if the cube had gone
 * away: 0 and *out, -ENOKEY (no KMS on this mount) or -EIO (the cube is
 * still away).  Every 0 is paired with fs_kms_unlock, given the KMS_* code
 * of the last call made (so a cube failure is noticed). */
int fs_kms_lock(struct sekeyfs *fs, struct kms **out);
void fs_kms_unlock(struct sekeyfs *fs, int kms_rc);
/* Apply pending updates now (a user's mount); KMS_* code or -errno. */
int fs_kms_sync_now(struct sekeyfs *fs, struct kms_sync_report *rep);

/* ---- key choice (sharing.c) ---- */
/* The key for new contents and names in the directory of header parent:
 * without recipients the mount's --key or the header's key; with them,
 * SEkey's find_key for the recipients plus this user (v3), or for the
 * group (v2); without a KMS, the header's key.  -ENOKEY (reason logged)
 * when there is no usable key: never a wider group. */
int fs_new_file_key(struct sekeyfs *fs, const struct fs_dirhdr *parent, uint32_t *key);
/* The same for recipients not yet stored (setting them). */
int fs_rcpt_key(struct sekeyfs *fs, enum fs_rcpt_kind kind, const char *rcpt, uint32_t *key);
/* Parse and check a recipients value (comma list or group name) into
 * out (cap FS_RCPT_MAX + 1): 0 or -EINVAL. */
int fs_rcpt_parse(enum fs_rcpt_kind kind, const char *value, size_t len, char *out);
/* xattr user.sekey.recipients / user.sekey.group of a directory. */
int fs_rcpt_setxattr(struct sekeyfs *fs, struct fs_inode *dir, const char *name,
		     const char *value, size_t size);
/* The value into buf (size 0: just its length); ENODATA if not that kind. */
int fs_rcpt_getxattr(struct sekeyfs *fs, struct fs_inode *dir, const char *name, char *buf,
		     size_t cap, size_t *len);
/* sekeyfs --init: BACKING must be empty; 0 or -errno with err set. */
int fs_init_check(int dirfd, char *err, size_t cap);
/* Move every name of the backing directory dfd (header *h) to new_key
 * with recipients kind/rcpt, crash-safely: the header first records both
 * keys (lookups and readdir try both), then each name is renamed to its
 * encryption under the new key, then the header drops the old key.  *h
 * gets the header now in place.  0 or -errno (the directory stays
 * readable under both keys). */
int fs_dir_migrate(struct sekeyfs *fs, int dfd, struct fs_dirhdr *h, uint32_t new_key,
		   enum fs_rcpt_kind kind, const char *rcpt);
/* Move the names of directory dir to key (its recipients' current key)
 * under its header lock.  0 or -errno. */
int fs_rcpt_refresh(struct sekeyfs *fs, struct fs_inode *dir, uint32_t key);
/* Log a warning if key_id is compromised (decryption still allowed). */
void fs_key_warn(struct sekeyfs *fs, uint32_t key_id, const char *what);

/* Count the regular files of the share that `sekeyfs --rekey` would
 * re-encrypt (in directories whose key this mount can name).  0 or -errno. */
int fs_stale_count(struct sekeyfs *fs, unsigned *n);

/* ---- control.c: the /.sekey/ tree (docs/CONTROL.md) ----
 * Its nodes have inode numbers of their own (fs_ctl_owns); ops.c sends
 * every operation on them here, and lookups of ".sekey" in the root. */
int fs_ctl_owns(fuse_ino_t ino);
int fs_ctl_is_root_name(fuse_ino_t parent, const char *name);
uint64_t fs_ctl_root_ino(void);
const char *fs_ctl_dir_name(void);
/* 1 and the stat of /.sekey if the root's listing shows it, else 0. */
int fs_ctl_root_dirent(struct sekeyfs *fs, struct stat *st);
/* Lookups in the tree, and of ".sekey" in the root (parent not ours). */
void fs_ctl_lookup(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name);
void fs_ctl_getattr(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino);
void fs_ctl_setattr(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino, struct stat *attr,
		    int to_set);
void fs_ctl_open(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ctl_read(fuse_req_t req, struct sekeyfs *fs, size_t size, off_t off,
		 struct fuse_file_info *fi);
void fs_ctl_write(fuse_req_t req, struct sekeyfs *fs, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi);
/* The write path without FUSE (the fuzzer, fuzz/fuzz_fs_control.c): one
 * write to attribute attr of a file of kind file_kind (0 /.sekey, 1 admin/,
 * 2 users/ID/, 3 groups/ID/, 4 keys/ID/; obj the ID), answer[cap] gets a
 * query's answer.  0 or the errno a write(2) would get. */
int fs_ctl_write_file(struct sekeyfs *fs, unsigned file_kind, uint32_t obj, unsigned attr,
		      const char *buf, size_t size, off_t off, char *answer, size_t cap);
/* Frees an open file's or directory's handle. */
void fs_ctl_release(fuse_req_t req, struct fuse_file_info *fi);
void fs_ctl_opendir(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ctl_readdir(fuse_req_t req, struct sekeyfs *fs, size_t size, off_t off,
		    struct fuse_file_info *fi, int plus);
/* mkdir and rmdir in the tree, and of ".sekey" in the root (EEXIST, EPERM). */
void fs_ctl_mkdir(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name);
void fs_ctl_rmdir(fuse_req_t req, struct sekeyfs *fs, fuse_ino_t parent, const char *name);
/* Any other change: EPERM (logged, in last_error) in the tree; on the
 * name ".sekey" in the root, err_on_root_name. */
void fs_ctl_refuse(fuse_req_t req, struct sekeyfs *fs, const char *op, fuse_ino_t parent,
		   const char *name, int err_on_root_name);

/* ---- ops: the operations, one group per file ---- */
void fs_op_init(void *userdata, struct fuse_conn_info *conn);
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi);
void fs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi);

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		     struct fuse_file_info *fi);

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
/* Re-encrypt the file dirfd/bname under new_key (sefile_rekey) with its
 * xattrs moved over before the rename: returns a SEFILE code. */
int fs_xattr_rekey(struct sekeyfs *fs, int dirfd, const char *bname, uint32_t new_key);
/* Re-seal the xattrs of the directory dirfd under its header h's name key (in place). 0 or -errno. */
int fs_xattr_reseal_dir(struct sekeyfs *fs, int dirfd, const struct fs_dirhdr *h);

#endif
