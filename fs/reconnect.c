/*
 * reconnect.c - surviving the cube going away.  A cube that is unplugged,
 * or an emulator that dies, leaves every connection of the pool dead: each
 * operation that needs it fails with EIO (SEFILE_ECUBE), never a crash.
 * The first such failure marks the cube down; right after that operation,
 * and then before any operation at most once a second, the daemon opens a
 * new pool (for the emulator the
 * driver's auto-start brings it back), logs in with the PIN it kept in
 * locked memory, reopens every open SEfile on the new pool, and swaps it
 * in.  Operations hold fs->pool_lock shared for their whole run, the swap
 * holds it exclusively, so no operation ever sees a pool being replaced.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RECONNECT_EVERY_MS 1000

struct fs_reconnect {
	char *spec;
	enum wire_role role;
	unsigned connections;
	char *pin;                 /* mlock'ed, wiped when freed */
	size_t pin_cap;
	int pin_locked;
	struct sefile_cube *owned; /* a pool we opened (the first is main's) */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *fs_pin_keep(const char *pin, size_t *cap, int *locked)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = page > 0 ? (size_t)page : 4096;
	char *p;

	if (strlen(pin) >= n)
		return NULL;
	if (posix_memalign((void **)&p, n, n) != 0)
		return NULL;
	/* Locked so the PIN never reaches swap; without the privilege to lock
	 * it still works, the log says so. */
	*locked = mlock(p, n) == 0;
	memset(p, 0, n);
	strcpy(p, pin);
	*cap = n;
	return p;
}

void fs_pin_wipe(char *pin, size_t cap, int locked)
{
	if (!pin)
		return;
	OPENSSL_cleanse(pin, cap);
	if (locked)
		munlock(pin, cap);
	free(pin);
}

int fs_reconnect_setup(struct sekeyfs *fs, const char *spec, enum wire_role role,
		       unsigned connections, const char *pin)
{
	struct fs_reconnect *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->spec = strdup(spec);
	r->pin = fs_pin_keep(pin, &r->pin_cap, &r->pin_locked);
	if (!r->spec || !r->pin) {
		free(r->spec);
		fs_pin_wipe(r->pin, r->pin_cap, r->pin_locked);
		free(r);
		return -ENOMEM;
	}
	if (!r->pin_locked)
		fs_log(fs, LOG_WARNING, "cannot lock the kept PIN in memory: %s", strerror(errno));
	r->role = role;
	r->connections = connections;
	fs->reconnect = r;
	return 0;
}

void fs_reconnect_free(struct sekeyfs *fs)
{
	struct fs_reconnect *r = fs->reconnect;

	if (!r)
		return;
	fs_pin_wipe(r->pin, r->pin_cap, r->pin_locked);
	free(r->spec);
	/* The pool itself is closed by sekeyfs_free, after the inodes. */
	free(r);
	fs->reconnect = NULL;
}

struct sefile_cube *fs_reconnect_owned_pool(struct sekeyfs *fs)
{
	return fs->reconnect ? fs->reconnect->owned : NULL;
}

void fs_cube_failed(struct sekeyfs *fs)
{
	atomic_store(&fs->cube_down, 1);
}

void fs_cube_check(struct sekeyfs *fs, int cube_rc)
{
	if (cube_rc == CUBE_ETRANSPORT)
		fs_cube_failed(fs);
}

/* Reopen ino's shared SEfile (if any) on the new pool.  Every operation is
 * parked outside (pool_lock held exclusively), so nothing uses it. */
static void reopen_on(struct sekeyfs *fs, struct fs_inode *ino, struct sefile_cube *np)
{
	struct sefile *sf = NULL;
	int rc;

	fs_readahead_drop(ino);
	pthread_rwlock_wrlock(&ino->sf_lock);
	if (ino->sf) {
		sefile_close(ino->sf);  /* its pool is dead: errors are expected */
		ino->sf = NULL;
	}
	/* An fd without a SEfile is one an earlier reconnect failed to reopen. */
	if (ino->sf_fd >= 0) {
		rc = sefile_open(&sf, np, ino->sf_fd);
		if (rc == SEFILE_OK)
			ino->sf = sf;
		else
			fs_sefile_err(fs, rc, "reconnect: reopen");
	}
	pthread_rwlock_unlock(&ino->sf_lock);
}

static void reopen_all(struct sekeyfs *fs, struct sefile_cube *np)
{
	struct fs_inode *p;
	size_t i;

	pthread_mutex_lock(&fs->table_mu);
	for (i = 0; i < fs->nbuckets; i++)
		for (p = fs->buckets[i]; p; p = p->next)
			reopen_on(fs, p, np);
	pthread_mutex_unlock(&fs->table_mu);
	reopen_on(fs, &fs->root, np);
}

/* Exclusive pool_lock held.  0 when the new pool is in place. */
static int reconnect_locked(struct sekeyfs *fs)
{
	struct fs_reconnect *r = fs->reconnect;
	struct sefile_cube *np = NULL;
	char err[256];
	int rc;

	rc = sefile_cube_open(&np, r->spec, r->role, r->pin, r->connections, err, sizeof(err));
	if (rc != SEFILE_OK) {
		fs_log(fs, LOG_WARNING, "cube still away: %s", err);
		return -EIO;
	}
	reopen_all(fs, np);
	/* The pool main.c opened is closed by main at exit; ours we close. */
	if (r->owned)
		sefile_cube_close(r->owned);
	r->owned = np;
	fs->pool = np;
	atomic_store(&fs->cube_down, 0);
	fs_log(fs, LOG_NOTICE, "cube back: reconnected (%u connections)", r->connections);
	return 0;
}

/* Reconnect if the cube is marked down and the last try is a second old.
 * Called holding no lock. */
static void maybe_reconnect(struct sekeyfs *fs)
{
	int64_t t;

	if (!atomic_load(&fs->cube_down) || !fs->reconnect)
		return;
	t = now_ms();
	if (t - atomic_load(&fs->last_reconnect) < RECONNECT_EVERY_MS)
		return;
	pthread_rwlock_wrlock(&fs->pool_lock);
	/* Another thread may have done it while we waited. */
	if (atomic_load(&fs->cube_down) && t - atomic_load(&fs->last_reconnect) >= RECONNECT_EVERY_MS) {
		atomic_store(&fs->last_reconnect, t);
		reconnect_locked(fs);
	}
	pthread_rwlock_unlock(&fs->pool_lock);
}

/* Before an operation: a cube marked down is tried again first, so once
 * it is back the next operation works; on the way out, the operation that
 * found it down tries at once. */
void fs_guard_enter(struct sekeyfs *fs)
{
	maybe_reconnect(fs);
	pthread_rwlock_rdlock(&fs->pool_lock);
}

void fs_guard_leave(struct sekeyfs *fs)
{
	pthread_rwlock_unlock(&fs->pool_lock);
	maybe_reconnect(fs);
}
