/*
 * fs.h - the sekeyfs mount: a FUSE low-level file system that shows the
 * plaintext view of a BACKING directory holding only ciphertext (SEfile
 * contents, encrypted names, encrypted symlink targets and user xattr
 * values, one authenticated header per directory).  The whole public face
 * of fs/; docs/MOUNT.md says how it works.
 *
 * A program (fs/main.c) parses its command line (sekeyfs_args_parse), gets
 * the PIN (sekeyfs_read_pin), opens a cube pool, and then either
 * initialises a share (sekeyfs_init_share) or mounts one (sekeyfs_mount,
 * which builds the file system with sekeyfs_new and runs the FUSE loop).
 * With the user's SEkey (sekeyfs_kms_open), directories carry recipients
 * and their keys come from SEkey's find_key (sharing).
 *
 * Functions return 0 or a negative errno-style value (-EIO, -ENOKEY, ...)
 * and, where an err buffer is given, leave a message in it.
 */
#ifndef SEKEYFS_FS_H
#define SEKEYFS_FS_H

#include <stddef.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#include "../sefile/sefile.h"

/* The name of the authenticated header inside every backing directory. */
#define SEKEYFS_DIRHDR_NAME ".sekeydir"

struct sekeyfs_config {
	uint32_t key_id;       /* key for new file contents; 0 = the root header's key */
	int read_only;         /* open backing files read-only, refuse changes */
	int foreground;        /* log to stderr (else syslog) */
	int debug;             /* log every failed operation, not only damage */
	double timeout;        /* entry and attribute cache seconds (default 1.0) */
	int writeback;         /* let the kernel cache and merge writes
	                        * (FUSE writeback cache; see docs/MOUNT.md) */
	int hide_control;      /* leave /.sekey/ out of the root's listing
	                        * (it can still be looked up) */
};

struct sekeyfs;

/*
 * Build the file system over backing_fd (a directory, O_RDONLY; taken over:
 * closed by sekeyfs_free) with the cube pool (not owned).  The root
 * directory's header is read and authenticated here, so a wrong key or a
 * damaged share fails before mounting.  Returns 0 or -errno.
 */
int sekeyfs_new(struct sekeyfs **out, struct sefile_cube *pool, int backing_fd,
		const struct sekeyfs_config *cfg, char *err, size_t err_cap);
void sekeyfs_free(struct sekeyfs *fs);
/* The FUSE low-level operations; their userdata is the struct sekeyfs. */
const struct fuse_lowlevel_ops *sekeyfs_lowlevel_ops(void);

/*
 * Initialise a share: write the root directory header (a fresh directory
 * ID, key_id for names and for the header itself) into the empty directory
 * backing_fd.  -EEXIST if it already holds a share, -ENOTEMPTY if it holds
 * anything else.
 */
int sekeyfs_init_share(struct sefile_cube *pool, int backing_fd, uint32_t key_id,
		       char *err, size_t err_cap);

/* ---- sharing through SEkey (fs/sharing.c, docs/MOUNT.md "Sharing") ----
 * The mounting user's KMS: their cube's SD folder holds their database
 * (sekey-user.db, the secure database under KMS_DB_KEY_ID); pending
 * updates from the shared updates folder are applied on open and, once
 * sekeyfs_kms_poll_start ran, every few seconds while mounted. */
struct sekeyfs_kms;

/* Open a connection of its own to the cube spec (logged in as user with
 * pin), the user's database (made if missing: the init update fills it),
 * start the KMS and apply the pending updates of updates_dir.  A refused
 * sync is reported in err and logged but not fatal when the database
 * already had this user's view (the mount still decrypts); fatal when the
 * user is not provisioned.  With admin, log in as administrator and open
 * the admin's KMS (sekey.db, made by `sekey init`) instead: changes made
 * through it write their updates into updates_dir.  The PIN is kept in
 * locked memory to reopen everything when the cube comes back after going
 * away.  0 or -errno with err set. */
int sekeyfs_kms_open(struct sekeyfs_kms **out, const char *spec, const char *pin,
		     const char *updates_dir, int admin, char *err, size_t err_cap);
void sekeyfs_kms_close(struct sekeyfs_kms *k);
/* The user's name (never NULL). */
const char *sekeyfs_kms_user(const struct sekeyfs_kms *k);
/* Use k for key choice in fs (k outlives fs). */
void sekeyfs_use_kms(struct sekeyfs *fs, struct sekeyfs_kms *k);
/* A thread applying new update files as they arrive (inotify on the
 * user's update folder) and every interval seconds anyway (0: never; for
 * network folders inotify does not see), and reopening the KMS when the
 * cube comes back, until sekeyfs_kms_poll_stop; logs through fs.  Start it
 * after daemonizing.  Nothing to do on the admin's mount. */
int sekeyfs_kms_poll_start(struct sekeyfs_kms *k, struct sekeyfs *fs, unsigned interval);
void sekeyfs_kms_poll_stop(struct sekeyfs_kms *k);

/*
 * Initialise a share whose root has recipients: group (a group name) or
 * users (comma list; the initialising user is added), or neither: the
 * initialising user alone.  The key is SEkey's find_key for them.
 */
int sekeyfs_init_share_kms(struct sefile_cube *pool, struct sekeyfs_kms *k, int backing_fd,
			   const char *users, const char *group, uint32_t *key_out, char *err,
			   size_t err_cap);

/*
 * Re-encrypt every stale file under BACKING's subtree sub ("" = all): a
 * regular file whose key is not the key a new file in its directory would
 * get now (recipients changed, key rotated, deactivated, compromised).
 * Crash-safe per file (sefile_rekey: new file, fsync, rename over).
 * Progress on stderr when progress is set.  *n_done / *n_failed count
 * files.  0 if every stale file was re-encrypted, else -errno of the
 * first failure.
 */
int sekeyfs_rekey(struct sekeyfs *fs, const char *sub, int progress, unsigned *n_done,
		  unsigned *n_failed);

/* The same from a subdirectory of BACKING named by its backing path
 * (relative to BACKING, encrypted names as they are on disk; "" = all). */
int sekeyfs_rekey_backing(struct sekeyfs *fs, const char *backing_sub, int progress,
			  unsigned *n_done, unsigned *n_failed);

/* What `sekeyfs --rekey` and `sekey rekey` do (fs/rekey.c). */
struct sekeyfs_rekey_job {
	const char *prog;        /* for messages: "sekeyfs", "sekey" */
	const char *device;      /* the user's cube */
	const char *updates;     /* the SEkey updates folder */
	const char *backing;     /* the share's BACKING */
	const char *sub;         /* a plaintext subdirectory, or NULL: all */
	const char *backing_sub; /* or (if set) a backing subdirectory, relative to BACKING */
	uint32_t key_id;         /* --key for directories without recipients; 0: root's key */
	unsigned connections;    /* cube connections (0: 1) */
	int admin;               /* log in as admin */
	int progress;            /* progress bar on stderr */
};

/*
 * Log in to job->device with pin, open the user's SEkey with the pending
 * updates of job->updates applied, build the file system over
 * job->backing and re-encrypt the stale files of the chosen subtree;
 * prints the count on stdout, problems on stderr.  Returns the programs'
 * exit status: 0 ok, 2 damaged share, 3 key missing or unusable, 4 cube
 * (unreachable, wrong PIN, locked), 5 I/O (no such subdirectory, a file
 * that could not be re-encrypted).
 */
int sekeyfs_rekey_run(const struct sekeyfs_rekey_job *job, const char *pin);

/* ---- the program around it (fs/mount.c) ---- */

struct sekeyfs_args {
	char *backing;         /* BACKING (absolute) */
	char *device;          /* cube spec, e.g. a device directory (absolute) */
	char *pin_file;
	int pin_fd;            /* -1 = none */
	uint32_t key_id;       /* 0 = not given */
	int admin;
	int init;
	int rekey;             /* --rekey: re-encrypt stale files, no mount */
	char *updates;         /* --updates DIR: the SEkey updates folder */
	char *recipients;      /* --init --recipients a,b */
	char *group;           /* --init --group G */
	char *subpath;         /* --rekey: the second non-option (SUBDIR) */
	unsigned sync_interval;/* seconds between update checks while mounted */
	struct sekeyfs_kms *kms;
	int help;
	int version;
	unsigned connections;  /* cube connections in the pool (default 4) */
	char *pin_kept;        /* the PIN in locked memory, for reconnecting */
	size_t pin_kept_cap;
	int pin_kept_locked;
	struct sekeyfs_config cfg;
	struct fuse_args fuse; /* what is left for libfuse: mountpoint, -f, -o ... */
	struct fuse_cmdline_opts cmd;
};

/*
 * Parse argv: sekeyfs's own options (--device DIR, --pin-file F,
 * --pin-fd N, --key ID, --admin, --init, --connections N, and the same as
 * -o device=,pin_file=,pin_fd=,key=,admin,connections=) and the standard
 * FUSE ones.  Returns 0, or -1 with a message on stderr.  Free with
 * sekeyfs_args_free.
 */
int sekeyfs_args_parse(struct sekeyfs_args *a, int argc, char **argv);
void sekeyfs_args_free(struct sekeyfs_args *a);
void sekeyfs_usage(const char *prog);

/*
 * The PIN into pin[cap] (NUL-ended, newline cut): from file if set, else
 * from fd if >= 0, else asked on /dev/tty without echo.  Returns 0 or -1
 * with a message on stderr; the caller wipes pin.
 */
int sekeyfs_read_pin(const char *file, int fd, char *pin, size_t cap);

/*
 * Keep a copy of pin in locked memory (mlock; wiped by sekeyfs_args_free
 * at unmount) so the mount can log in again when the cube comes back
 * after going away.  Returns 0 or -1 (out of memory).
 */
int sekeyfs_args_keep_pin(struct sekeyfs_args *a, const char *pin);

/*
 * Mount a.backing on the mountpoint in a.fuse and serve it until unmounted
 * (fusermount3 -u, SIGTERM, SIGINT); daemonizes unless -f/-d.  Returns the
 * program's exit status.
 */
int sekeyfs_mount(struct sekeyfs_args *a, struct sefile_cube *pool);

#endif
