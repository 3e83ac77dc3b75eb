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

/* ---- the program around it (fs/mount.c) ---- */

struct sekeyfs_args {
	char *backing;         /* BACKING (absolute) */
	char *device;          /* cube spec, e.g. a device directory (absolute) */
	char *pin_file;
	int pin_fd;            /* -1 = none */
	uint32_t key_id;       /* 0 = not given */
	int admin;
	int init;
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
