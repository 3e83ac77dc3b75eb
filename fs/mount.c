/*
 * mount.c - the program around the file system: the command line (our
 * options both as --long and as -o name=value, so `mount -t fuse.sekeyfs`
 * and /etc/fstab work), the PIN (file, fd, or the terminal without echo;
 * never the command line), and the mount itself: session, signals
 * (SIGTERM/SIGINT/SIGHUP end the loop and unmount), daemonizing after the
 * PIN was accepted, syslog in the background, the multithreaded loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

enum { KEY_RO, KEY_HELP, KEY_VERSION };

#define OPT(t, f, v) { t, offsetof(struct sekeyfs_args, f), v }
static const struct fuse_opt sekeyfs_opts[] = {
	OPT("--device %s", device, 0),
	OPT("device=%s", device, 0),
	OPT("--pin-file %s", pin_file, 0),
	OPT("pin_file=%s", pin_file, 0),
	OPT("--pin-fd %d", pin_fd, 0),
	OPT("pin_fd=%d", pin_fd, 0),
	OPT("--key %u", key_id, 0),
	OPT("key=%u", key_id, 0),
	OPT("--connections %u", connections, 0),
	OPT("connections=%u", connections, 0),
	OPT("--writeback", cfg.writeback, 1),
	OPT("writeback", cfg.writeback, 1),
	OPT("--timeout %lf", cfg.timeout, 0),
	OPT("timeout=%lf", cfg.timeout, 0),
	OPT("--hide-control", cfg.hide_control, 1),
	OPT("hide_control", cfg.hide_control, 1),
	OPT("--admin", admin, 1),
	OPT("admin", admin, 1),
	OPT("--init", init, 1),
	OPT("--rekey", rekey, 1),
	OPT("--updates %s", updates, 0),
	OPT("updates=%s", updates, 0),
	OPT("--recipients %s", recipients, 0),
	OPT("--group %s", group, 0),
	OPT("--sync-interval %u", sync_interval, 0),
	OPT("sync_interval=%u", sync_interval, 0),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

void sekeyfs_usage(const char *prog)
{
	printf("usage: %s [options] BACKING MOUNTPOINT\n"
	       "       %s --init --key ID [options] BACKING\n"
	       "       %s --init --updates DIR [--recipients A,B | --group G] [options] BACKING\n"
	       "       %s --rekey --updates DIR [options] BACKING [SUBDIR]\n\n"
	       "Mount the encrypted share BACKING on MOUNTPOINT; every key stays in the cube.\n\n"
	       "sekeyfs options (also as -o device=DIR,key=ID,pin_file=F,pin_fd=N,admin,\n"
	       "connections=N,timeout=S,writeback,updates=DIR,sync_interval=S,\n"
	       "hide_control):\n"
	       "    --device DIR        the cube (emulated cube directory, or usb:SERIAL)\n"
	       "    --pin-file F        read the PIN from the first line of F\n"
	       "    --pin-fd N          read the PIN from file descriptor N\n"
	       "                        (else it is asked on the terminal, without echo)\n"
	       "    --key ID            key for new files (default: the share's root key)\n"
	       "    --admin             log in to the cube as administrator; with --updates,\n"
	       "                        the admin's KMS: SEkey changes through /.sekey/\n"
	       "    --connections N     cube connections for parallel crypto (default 4)\n"
	       "    --timeout SECONDS   entry and attribute cache time (default 1): how\n"
	       "                        soon another mount's changes are seen\n"
	       "    --writeback         kernel write-back cache: small writes merged into\n"
	       "                        large ones (one mount per BACKING only)\n"
	       "    --init              initialise the empty directory BACKING as a share\n"
	       "    --updates DIR       SEkey: apply the updates in DIR (on start, as they\n"
	       "                        arrive, and every --sync-interval seconds, default 5,\n"
	       "                        0 = only on start);\n"
	       "                        directories with recipients get their keys from SEkey\n"
	       "    --recipients A,B    with --init: the root's recipients (you are added)\n"
	       "    --group G           with --init: the root's recipients are group G\n"
	       "                        (neither: the share is yours alone)\n"
	       "    --hide-control      leave /.sekey/ (the control tree) out of the root's\n"
	       "                        listing; it can still be opened by name\n"
	       "    --rekey             re-encrypt every stale file under BACKING[/SUBDIR]\n"
	       "                        (a key that is no longer its directory's), then exit\n\n",
	       prog, prog, prog, prog);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct sekeyfs_args *a = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (a->backing && !a->subpath) {
			a->subpath = strdup(arg);
			if (!a->subpath)
				return -1;
			return 1;
		}
		if (!a->backing) {
			a->backing = realpath(arg, NULL);
			if (!a->backing) {
				fprintf(stderr, "sekeyfs: BACKING %s: %s\n", arg, strerror(errno));
				return -1;
			}
			return 0;
		}
		return 1;
	case KEY_RO:
		a->cfg.read_only = 1;
		return 1;
	case KEY_HELP:
		a->help = 1;
		return 0;
	case KEY_VERSION:
		a->version = 1;
		return 0;
	default:
		return 1;
	}
}

/* The device spec with its path made absolute: the daemon runs in "/". */
static int absolute_device(struct sekeyfs_args *a)
{
	const char *path = a->device;
	char *abs, *spec;
	size_t n;

	if (!strncmp(path, "usb:", 4))
		return 0;
	if (!strncmp(path, "dir:", 4))
		path += 4;
	abs = realpath(path, NULL);
	if (!abs) {
		fprintf(stderr, "sekeyfs: device %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = strlen(abs) + 5;
	spec = malloc(n);
	if (!spec) {
		free(abs);
		return -1;
	}
	snprintf(spec, n, "dir:%s", abs);
	free(abs);
	free(a->device);
	a->device = spec;
	return 0;
}

/* Our long options that take a value. */
static const char *const valued_opts[] = {
	"--device", "--pin-file", "--pin-fd", "--key", "--connections", "--timeout", "--updates",
	"--recipients", "--group", "--sync-interval", NULL
};

/*
 * argv with each "--name=value" of ours split into "--name" "value".
 * fuse_opt matches the template "--key %u" against "--key=3" too and then
 * parses "=3", so only the space form is given to it.  0 or -1.
 */
static int split_long_opts(struct fuse_args *out, int argc, char **argv)
{
	const char *eq;
	char name[32];
	size_t n;
	int i, j, split;

	*out = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	for (i = 0; i < argc; i++) {
		eq = strchr(argv[i], '=');
		split = 0;
		n = eq ? (size_t)(eq - argv[i]) : 0;
		for (j = 0; i > 0 && eq && n < sizeof(name) && valued_opts[j]; j++)
			split |= strlen(valued_opts[j]) == n && !strncmp(argv[i], valued_opts[j], n);
		if (split) {
			memcpy(name, argv[i], n);
			name[n] = '\0';
			if (fuse_opt_add_arg(out, name) != 0 || fuse_opt_add_arg(out, eq + 1) != 0)
				return -1;
		} else if (fuse_opt_add_arg(out, argv[i]) != 0) {
			return -1;
		}
	}
	return 0;
}

int sekeyfs_args_parse(struct sekeyfs_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	if (split_long_opts(&a->fuse, argc, argv) != 0) {
		fprintf(stderr, "sekeyfs: out of memory\n");
		return -1;
	}
	a->pin_fd = -1;
	a->connections = 4;
	a->cfg.timeout = 1.0;
	a->sync_interval = 5;
	if (fuse_opt_parse(&a->fuse, a, sekeyfs_opts, opt_proc) != 0)
		return -1;
	if (a->help || a->version)
		return 0;
	if (!a->backing) {
		fprintf(stderr, "sekeyfs: no BACKING directory given (see --help)\n");
		return -1;
	}
	if (!a->device) {
		fprintf(stderr, "sekeyfs: no cube given: --device DIR or -o device=DIR\n");
		return -1;
	}
	if (absolute_device(a) != 0)
		return -1;
	if (a->connections < 1 || a->connections > 64) {
		fprintf(stderr, "sekeyfs: --connections must be 1..64\n");
		return -1;
	}
	if ((a->recipients || a->group) && (!a->init || !a->updates || (a->recipients && a->group))) {
		fprintf(stderr, "sekeyfs: --recipients or --group go with --init and --updates\n");
		return -1;
	}
	if (a->init) {
		if (!a->key_id && !a->updates) {
			fprintf(stderr, "sekeyfs: --init needs --key ID or --updates DIR\n");
			return -1;
		}
		return 0;
	}
	if (a->rekey) {
		if (!a->updates) {
			fprintf(stderr, "sekeyfs: --rekey needs --updates DIR (the user's SEkey)\n");
			return -1;
		}
		a->cfg.key_id = a->key_id;
		a->cfg.foreground = 1;
		return 0;
	}
	if (fuse_parse_cmdline(&a->fuse, &a->cmd) != 0)
		return -1;
	if (!a->cmd.mountpoint) {
		fprintf(stderr, "sekeyfs: no MOUNTPOINT given (see --help)\n");
		return -1;
	}
	a->cfg.key_id = a->key_id;
	a->cfg.foreground = a->cmd.foreground;
	a->cfg.debug = a->cmd.debug;
	return 0;
}

int sekeyfs_args_keep_pin(struct sekeyfs_args *a, const char *pin)
{
	fs_pin_wipe(a->pin_kept, a->pin_kept_cap, a->pin_kept_locked);
	a->pin_kept = fs_pin_keep(pin, &a->pin_kept_cap, &a->pin_kept_locked);
	return a->pin_kept ? 0 : -1;
}

void sekeyfs_args_free(struct sekeyfs_args *a)
{
	fs_pin_wipe(a->pin_kept, a->pin_kept_cap, a->pin_kept_locked);
	free(a->backing);
	free(a->device);
	free(a->pin_file);
	free(a->updates);
	free(a->recipients);
	free(a->group);
	free(a->subpath);
	sekeyfs_kms_close(a->kms);
	free(a->cmd.mountpoint);
	fuse_opt_free_args(&a->fuse);
	memset(a, 0, sizeof(*a));
}

/* Read one line (up to cap - 1 bytes) from fd into pin; newline cut. */
int sekeyfs_read_pin(const char *file, int fd, char *pin, size_t cap)
{
	char err[256];

	if (cube_pin_read(file, fd, "Cube PIN: ", pin, cap, err, sizeof(err)) != CUBE_OK) {
		fprintf(stderr, "sekeyfs: %s\n", err);
		return -1;
	}
	return 0;
}

/* Undo the octal escapes (\040 for a space, ...) of a /proc/self/mountinfo
 * path, in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/* The "major:minor" of the newest mount on path (from /proc/self/mountinfo,
 * which does not touch the not yet served mount).  0 or -1. */
static int mount_devno(const char *path, char *out, size_t cap)
{
	char line[4096], dev[32], where[PATH_MAX + 1];
	int found = -1;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %31s %*s %4096s", dev, where) != 2)
			continue;
		unescape_mountinfo(where);
		if (strcmp(where, path) == 0) {
			snprintf(out, cap, "%s", dev);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/*
 * Let the kernel read ahead as far as one request carries (1 MiB).  FUSE
 * caps a mount's read-ahead at the 128 KiB default, so sequential reads
 * arrive as 128 KiB requests, each a cube round trip; the mount's backing
 * device info (/sys/class/bdi/MAJ:MIN) can raise it, which only root may
 * do.  Done after mounting and before the loop answers INIT (which keeps
 * the smaller of this and max_readahead); abs is the mountpoint's real
 * path, resolved before mounting (resolving it now would wait for the
 * loop).  Failing is harmless: the daemon still reads ahead (file.c).
 */
static void raise_readahead(struct sekeyfs *fs, const char *abs)
{
	char dev[32], path[96];
	int fd;

	if (!abs)
		return;
	if (mount_devno(abs, dev, sizeof(dev)) == 0) {
		snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "1024", 4) != 4)
			fs_log(fs, LOG_DEBUG, "read-ahead stays at the kernel's default (%s: %s)", path,
			       strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *lc;
	int rc;

	if (cmd->singlethread)
		return fuse_session_loop(se);
	lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, (unsigned)cmd->clone_fd);
	fuse_loop_cfg_set_idle_threads(lc, cmd->max_idle_threads);
	/* Unset (-o max_threads not given) reads as UINT_MAX: keep libfuse's default. */
	if (cmd->max_threads != 0 && cmd->max_threads != UINT_MAX)
		fuse_loop_cfg_set_max_threads(lc, cmd->max_threads);
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

int sekeyfs_mount(struct sekeyfs_args *a, struct sefile_cube *pool)
{
	struct fuse_session *se = NULL;
	struct sekeyfs *fs = NULL;
	char err[512], *mnt_abs = NULL;
	int fd, rc, status = 5;

	fd = open(a->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "sekeyfs: BACKING %s: %s\n", a->backing, strerror(errno));
		return 5;
	}
	rc = sekeyfs_new(&fs, pool, fd, &a->cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "sekeyfs: %s\n", err);
		return rc == -ENOKEY || rc == -EKEYEXPIRED ? 3 : rc == -EIO ? 2 : 5;
	}
	if (a->kms)
		sekeyfs_use_kms(fs, a->kms);
	if (a->pin_kept &&
	    fs_reconnect_setup(fs, a->device, a->admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER,
			       a->connections, a->pin_kept) != 0) {
		fprintf(stderr, "sekeyfs: out of memory\n");
		goto out;
	}
	/* Modes come from the kernel with the caller's umask applied. */
	umask(0);
	se = fuse_session_new(&a->fuse, sekeyfs_lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	mnt_abs = realpath(a->cmd.mountpoint, NULL);
	if (fuse_session_mount(se, a->cmd.mountpoint) != 0)
		goto out_signals;
	raise_readahead(fs, mnt_abs);
	if (!a->cfg.foreground)
		openlog("sekeyfs", LOG_PID, LOG_DAEMON);
	if (fuse_daemonize(a->cmd.foreground) != 0)
		goto out_unmount;
	/* After daemonizing: a thread does not survive the fork. */
	if (sekeyfs_kms_poll_start(a->kms, fs, a->sync_interval) != 0)
		fs_log(fs, LOG_WARNING, "no SEkey update polling thread: updates apply on remount");
	rc = run_loop(se, &a->cmd);
	sekeyfs_kms_poll_stop(a->kms);
	status = rc == 0 ? 0 : 5;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	sekeyfs_free(fs);
	free(mnt_abs);
	return status;
}
