/*
 * rename.c - putting a name into place without replacing one, on every
 * file system a share may live on.  renameat2(RENAME_NOREPLACE) is atomic
 * but sshfs, NFS and SMB refuse the flag (EINVAL): there a hard link does
 * the same for a file (linkat fails with EEXIST if the name is taken,
 * atomically), and a directory, or a file system without hard links, gets
 * a check then a plain rename (a creator racing for the very same name in
 * between would be replaced: the one window such a file system leaves).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sefile.h"

static int flag_unsupported(int e)
{
	return e == EINVAL || e == ENOSYS || e == EOPNOTSUPP;
}

static int no_hard_links(int e)
{
	return e == EPERM || e == EOPNOTSUPP || e == ENOSYS || e == EMLINK;
}

int sefile_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	struct stat st;

	if (renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE) == 0)
		return 0;
	if (!flag_unsupported(errno))
		return -1;
	if (fstatat(olddirfd, oldname, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		if (linkat(olddirfd, oldname, newdirfd, newname, 0) == 0) {
			/* Both names are the same file now: a failed unlink
			 * leaves only a stray old name behind. */
			(void)unlinkat(olddirfd, oldname, 0);
			return 0;
		}
		if (!no_hard_links(errno))
			return -1;
	}
	if (fstatat(newdirfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	return renameat(olddirfd, oldname, newdirfd, newname);
}
