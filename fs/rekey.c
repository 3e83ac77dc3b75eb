/*
 * rekey.c - the whole of "re-encrypt the stale files of a share" as one
 * call, so `sekeyfs --rekey` and `sekey rekey` run the same code: log in
 * to the cube, open the user's SEkey (pending updates applied), build the
 * file system over BACKING and walk the chosen subtree (sekeyfs_rekey).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

static int exit_of(int rc)
{
	return rc == 0 ? 0 : rc == -ENOKEY || rc == -EKEYEXPIRED ? 3 : rc == -EIO ? 2 : 5;
}

/* The file system over job->backing with k; walks the subtree. */
static int rekey_share(const struct sekeyfs_rekey_job *job, struct sefile_cube *pool,
		       struct sekeyfs_kms *k)
{
	struct sekeyfs_config cfg = { .key_id = job->key_id, .foreground = 1, .timeout = 1.0 };
	const char *where = job->backing_sub ? job->backing_sub : job->sub ? job->sub : "";
	struct sekeyfs *fs = NULL;
	unsigned done = 0, failed = 0;
	char err[512];
	int fd, rc;

	fd = open(job->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: BACKING %s: %s\n", job->prog, job->backing, strerror(errno));
		return 5;
	}
	rc = sekeyfs_new(&fs, pool, fd, &cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "%s: %s\n", job->prog, err);
		return exit_of(rc);
	}
	sekeyfs_use_kms(fs, k);
	if (job->backing_sub)
		rc = sekeyfs_rekey_backing(fs, job->backing_sub, job->progress, &done, &failed);
	else
		rc = sekeyfs_rekey(fs, job->sub, job->progress, &done, &failed);
	sekeyfs_free(fs);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		fprintf(stderr, "%s: rekey %s: %s\n", job->prog, where, strerror(-rc));
		return 5;
	}
	printf("rekey: %u file(s) re-encrypted, %u failed\n", done, failed);
	return exit_of(rc);
}

int sekeyfs_rekey_run(const struct sekeyfs_rekey_job *job, const char *pin)
{
	struct sefile_cube *pool = NULL;
	struct sekeyfs_kms *k = NULL;
	char err[512];
	int rc;

	rc = sefile_cube_open(&pool, job->device, job->admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER,
			      pin, job->connections ? job->connections : 1, err, sizeof(err));
	if (rc != SEFILE_OK) {
		fprintf(stderr, "%s: cube %s: %s\n", job->prog, job->device, err);
		sefile_cube_close(pool);
		return 4;
	}
	rc = sekeyfs_kms_open(&k, job->device, pin, job->updates, job->admin, err, sizeof(err));
	if (rc || err[0])
		fprintf(stderr, "%s: SEkey: %s\n", job->prog, err);
	if (rc) {
		sefile_cube_close(pool);
		return rc == -ENOKEY ? 3 : 4;
	}
	rc = rekey_share(job, pool, k);
	sekeyfs_kms_close(k);
	sefile_cube_close(pool);
	return rc;
}
