/*
 * inode.c - the inode table: every inode the kernel knows holds an O_PATH
 * fd to its backing object, found by (dev, ino) in a hash map and counted
 * by lookups, as in libfuse's passthrough_ll.c.  The kernel's inode number
 * for ours is the struct's address; the root is fs->root (FUSE_ROOT_ID).
 * A backing object reached by two names (a hard link) is one inode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define TABLE_MIN_BUCKETS 1024

int fs_inode_init(struct fs_inode *ino)
{
	if (pthread_mutex_init(&ino->mu, NULL) != 0)
		return -ENOMEM;
	if (pthread_rwlock_init(&ino->sf_lock, NULL) != 0) {
		pthread_mutex_destroy(&ino->mu);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&ino->ra_mu, NULL) != 0) {
		pthread_rwlock_destroy(&ino->sf_lock);
		pthread_mutex_destroy(&ino->mu);
		return -ENOMEM;
	}
	ino->fd = -1;
	ino->sf_fd = -1;
	return 0;
}

void fs_inode_destroy(struct fs_inode *ino)
{
	if (ino->sf)
		sefile_close(ino->sf);
	if (ino->sf_fd >= 0)
		close(ino->sf_fd);
	if (ino->fd >= 0)
		close(ino->fd);
	fs_readahead_free(ino);
	pthread_mutex_destroy(&ino->ra_mu);
	pthread_rwlock_destroy(&ino->sf_lock);
	pthread_mutex_destroy(&ino->mu);
}

int fs_table_init(struct sekeyfs *fs)
{
	if (pthread_mutex_init(&fs->table_mu, NULL) != 0)
		return -ENOMEM;
	fs->buckets = calloc(TABLE_MIN_BUCKETS, sizeof(*fs->buckets));
	if (!fs->buckets) {
		pthread_mutex_destroy(&fs->table_mu);
		return -ENOMEM;
	}
	fs->nbuckets = TABLE_MIN_BUCKETS;
	return 0;
}

void fs_table_free(struct sekeyfs *fs)
{
	struct fs_inode *p, *next;
	size_t i;

	if (!fs->buckets)
		return;
	for (i = 0; i < fs->nbuckets; i++) {
		for (p = fs->buckets[i]; p; p = next) {
			next = p->next;
			fs_inode_destroy(p);
			free(p);
		}
	}
	free(fs->buckets);
	fs->buckets = NULL;
	pthread_mutex_destroy(&fs->table_mu);
}

static size_t bucket_of(const struct sekeyfs *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;

	return (size_t)(h >> 17) & (fs->nbuckets - 1);
}

/* Double the buckets when the table is full; on no memory keep the old
 * ones (longer chains are slower, not wrong).  Caller holds table_mu. */
static void table_grow(struct sekeyfs *fs)
{
	struct fs_inode **old = fs->buckets, *p, *next;
	size_t i, n_old = fs->nbuckets, b;

	if (fs->ninodes < fs->nbuckets)
		return;
	fs->buckets = calloc(n_old * 2, sizeof(*fs->buckets));
	if (!fs->buckets) {
		fs->buckets = old;
		return;
	}
	fs->nbuckets = n_old * 2;
	for (i = 0; i < n_old; i++) {
		for (p = old[i]; p; p = next) {
			next = p->next;
			b = bucket_of(fs, p->dev, p->ino);
			p->next = fs->buckets[b];
			fs->buckets[b] = p;
		}
	}
	free(old);
}

struct fs_inode *fs_inode_of(struct sekeyfs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->root;
	return (struct fs_inode *)(uintptr_t)ino;
}

void fs_proc_path(const struct fs_inode *ino, char *buf, size_t cap)
{
	snprintf(buf, cap, "/proc/self/fd/%d", ino->fd);
}

/* Take p out of its hash chain; caller holds table_mu. */
static void table_unhash(struct sekeyfs *fs, struct fs_inode *p)
{
	struct fs_inode **pp;

	for (pp = &fs->buckets[bucket_of(fs, p->dev, p->ino)]; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			p->next = NULL;
			fs->ninodes--;
			return;
		}
	}
}

/* Find (dev, ino); caller holds table_mu.  A backing file system may give
 * a deleted file's inode number to a new file while the kernel still holds
 * the old inode (its forget not yet sent): an entry whose object has no
 * links left is such a ghost, so it leaves the map (it lives on until its
 * forget) and the new object gets an inode of its own. */
static struct fs_inode *table_find(struct sekeyfs *fs, dev_t dev, ino_t ino)
{
	struct fs_inode *p;
	struct stat st;

	if (fs->root.dev == dev && fs->root.ino == ino)
		return &fs->root;
	for (p = fs->buckets[bucket_of(fs, dev, ino)]; p; p = p->next) {
		if (p->dev != dev || p->ino != ino)
			continue;
		if (fstatat(p->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_nlink > 0)
			return p;
		table_unhash(fs, p);
		return NULL;
	}
	return NULL;
}

static struct fs_inode *inode_new(int fd, const struct stat *st)
{
	struct fs_inode *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (fs_inode_init(p) != 0) {
		free(p);
		return NULL;
	}
	p->fd = fd;
	p->dev = st->st_dev;
	p->ino = st->st_ino;
	p->type = st->st_mode & S_IFMT;
	return p;
}

int fs_inode_lookup(struct sekeyfs *fs, struct fs_inode *dir, const char *bname,
		    struct fs_inode **out, struct stat *st)
{
	struct fs_inode *p, *fresh;
	int fd;

	*out = NULL;
	fd = openat(dir->fd, bname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	pthread_mutex_lock(&fs->table_mu);
	p = table_find(fs, st->st_dev, st->st_ino);
	if (p) {
		p->nlookup++;
		pthread_mutex_unlock(&fs->table_mu);
		close(fd);
	} else {
		fresh = inode_new(fd, st);
		if (!fresh) {
			pthread_mutex_unlock(&fs->table_mu);
			close(fd);
			return -ENOMEM;
		}
		fresh->nlookup = 1;
		fresh->sector_size = fs->sector_size;
		table_grow(fs);
		size_t b = bucket_of(fs, st->st_dev, st->st_ino);
		fresh->next = fs->buckets[b];
		fs->buckets[b] = fresh;
		fs->ninodes++;
		pthread_mutex_unlock(&fs->table_mu);
		p = fresh;
	}
	fs_fix_size(fs, p, st);
	*out = p;
	return 0;
}

void fs_inode_forget(struct sekeyfs *fs, struct fs_inode *ino, uint64_t n)
{
	if (ino == &fs->root)
		return;
	pthread_mutex_lock(&fs->table_mu);
	ino->nlookup = n >= ino->nlookup ? 0 : ino->nlookup - n;
	if (ino->nlookup > 0) {
		pthread_mutex_unlock(&fs->table_mu);
		return;
	}
	table_unhash(fs, ino);
	pthread_mutex_unlock(&fs->table_mu);
	fs_inode_destroy(ino);
	free(ino);
}
