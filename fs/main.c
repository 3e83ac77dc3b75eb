/*
 * main.c - the sekeyfs program: mount an encrypted share, initialise one
 * with --init, or re-encrypt its stale files with --rekey.  Exit status: 0 ok, 1 usage, 2 damaged share, 3 key
 * missing or unusable, 4 cube (unreachable, wrong PIN, locked), 5 I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

static int init_share(struct sekeyfs_args *a, struct sefile_cube *pool)
{
	char err[512];
	uint32_t key = 0;
	int fd, rc;

	fd = open(a->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "sekeyfs: BACKING %s: %s\n", a->backing, strerror(errno));
		return 5;
	}
	if (a->kms && !a->key_id)
		rc = sekeyfs_init_share_kms(pool, a->kms, fd, a->recipients, a->group, &key, err,
					    sizeof(err));
	else
		rc = sekeyfs_init_share(pool, fd, key = a->key_id, err, sizeof(err));
	close(fd);
	if (rc) {
		fprintf(stderr, "sekeyfs: --init: %s\n", err);
		return rc == -ENOKEY || rc == -EKEYEXPIRED ? 3 : rc == -ENOTEMPTY || rc == -EEXIST ? 1 : 5;
	}
	printf("initialised %s (key %u)\n", a->backing, key);
	return 0;
}

/* --rekey: re-encrypt the stale files of BACKING[/SUBDIR] with a progress
 * bar (fs/rekey.c, shared with `sekey rekey`). */
static int rekey(const struct sekeyfs_args *a, const char *pin)
{
	struct sekeyfs_rekey_job job = {
		.prog = "sekeyfs", .device = a->device, .updates = a->updates,
		.backing = a->backing, .sub = a->subpath, .key_id = a->key_id,
		.connections = a->connections, .admin = a->admin, .progress = isatty(2),
	};

	return sekeyfs_rekey_run(&job, pin);
}

int main(int argc, char **argv)
{
	struct sefile_cube *pool = NULL;
	struct sekeyfs_args a;
	char pin[WIRE_PIN_MAX + 2], err[512];
	int rc;

	if (sekeyfs_args_parse(&a, argc, argv) != 0) {
		sekeyfs_args_free(&a);
		return 1;
	}
	if (a.help) {
		sekeyfs_usage(argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		sekeyfs_args_free(&a);
		return 0;
	}
	if (a.version) {
		printf("sekeyfs 1.0 (libfuse %s)\n", fuse_pkgversion());
		sekeyfs_args_free(&a);
		return 0;
	}
	if (sekeyfs_read_pin(a.pin_file, a.pin_fd, pin, sizeof(pin)) != 0) {
		sekeyfs_args_free(&a);
		return 4;
	}
	if (a.rekey) {
		rc = rekey(&a, pin);
		OPENSSL_cleanse(pin, sizeof(pin));
		sekeyfs_args_free(&a);
		return rc;
	}
	rc = sefile_cube_open(&pool, a.device, a.admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER, pin,
			      a.connections, err, sizeof(err));
	/* A mount keeps the PIN (locked memory) to log in again if the cube
	 * goes away and comes back; --init does not need it. */
	if (rc == SEFILE_OK && !a.init && sekeyfs_args_keep_pin(&a, pin) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		rc = SEFILE_ENOMEM;
	}
	if (rc != SEFILE_OK) {
		OPENSSL_cleanse(pin, sizeof(pin));
		fprintf(stderr, "sekeyfs: cube %s: %s\n", a.device, err);
		sefile_cube_close(pool);
		sekeyfs_args_free(&a);
		return 4;
	}
	/* The user's SEkey, with the pending updates applied before serving. */
	if (a.updates) {
		rc = sekeyfs_kms_open(&a.kms, a.device, pin, a.updates, a.admin, err, sizeof(err));
		if (rc || err[0])
			fprintf(stderr, "sekeyfs: SEkey: %s\n", err);
		if (rc) {
			OPENSSL_cleanse(pin, sizeof(pin));
			sefile_cube_close(pool);
			sekeyfs_args_free(&a);
			return rc == -ENOKEY ? 3 : 4;
		}
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	rc = a.init ? init_share(&a, pool) : sekeyfs_mount(&a, pool);
	sefile_cube_close(pool);
	sekeyfs_args_free(&a);
	return rc;
}
