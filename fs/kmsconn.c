/*
 * kmsconn.c - the mount's connection to SEkey: the mounting user's KMS (their
 * secure database in their cube's SD folder, synced from the updates folder)
 * or, on an --admin mount, the administrator's KMS (sekey.db on the admin
 * cube, where changes are made).  A thread applies new update files while
 * the mount serves: it wakes on inotify events in the user's update folder
 * and, for network folders where inotify sees nothing, every interval
 * seconds anyway.  When the cube goes away the KMS's connection dies with
 * it; the same thread opens everything again (with the PIN kept in locked
 * memory) once the cube is back.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../sefile/sdb.h"
#include "internal.h"

#define USER_DB "sekey-user.db"
#define ADMIN_DB "sekey.db"
/* After an event, wait this long for more (a writer publishing several
 * files) before syncing once. */
#define SYNC_SETTLE_MS 100
#define RECONNECT_EVERY_S 1

/* ---- opening and closing ---- */

static void close_parts(struct sekeyfs_kms *k)
{
	if (k->k)
		kms_close(k->k);
	if (k->db)
		sqlite3_close(k->db);
	if (k->vfs)
		sdb_vfs_unregister(k->vfs);
	if (k->pool)
		sefile_cube_close(k->pool);
	if (k->cube)
		cube_close(k->cube);
	k->k = NULL;
	k->db = NULL;
	k->vfs = NULL;
	k->pool = NULL;
	k->cube = NULL;
}

void sekeyfs_kms_close(struct sekeyfs_kms *k)
{
	if (!k)
		return;
	sekeyfs_kms_poll_stop(k);
	close_parts(k);
	free(k->updates);
	free(k->spec);
	fs_pin_wipe(k->pin, k->pin_cap, k->pin_locked);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

const char *sekeyfs_kms_user(const struct sekeyfs_kms *k)
{
	return k ? k->user : "";
}

void sekeyfs_use_kms(struct sekeyfs *fs, struct sekeyfs_kms *k)
{
	fs->kms = k;
	if (k)
		k->fs = fs;
}

/* The cube connection, the secure database and the KMS on it. */
static int open_parts(struct sekeyfs_kms *k, char *err, size_t cap)
{
	char path[4096], why[256];
	struct cube_info info;
	const char *sd;
	int rc;

	if (cube_open(&k->cube, k->spec, why, sizeof(why)) != CUBE_OK)
		return snprintf(err, cap, "cube %s: %s", k->spec, why), -EIO;
	if (cube_login(k->cube, k->admin ? WIRE_ROLE_ADMIN : WIRE_ROLE_USER, k->pin) != CUBE_OK)
		return snprintf(err, cap, "KMS login: %s", cube_errmsg(k->cube)), -EACCES;
	if (cube_info(k->cube, &info) != CUBE_OK)
		return snprintf(err, cap, "cube info: %s", cube_errmsg(k->cube)), -EIO;
	memcpy(k->serial, info.serial, sizeof(k->serial));
	sd = cube_sd_path(k->cube);
	if (!sd)
		return snprintf(err, cap, "the cube has no SD folder for the KMS database"), -EINVAL;
	snprintf(path, sizeof(path), "%s/%s", sd, k->admin ? ADMIN_DB : USER_DB);
	if (k->admin && access(path, F_OK) != 0)
		return snprintf(err, cap, "no admin KMS database at %s (run sekey init)", path), -ENOKEY;
	if (sefile_cube_wrap(&k->pool, k->cube) != SEFILE_OK ||
	    sdb_vfs_register(&k->vfs, k->admin ? "sekeyfs-admin" : "sekeyfs-kms", k->pool,
			     KMS_DB_KEY_ID) != SEFILE_OK)
		return snprintf(err, cap, "cannot set up the secure database"), -ENOMEM;
	rc = sdb_open(k->vfs, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &k->db);
	if (rc != SQLITE_OK)
		return snprintf(err, cap, "KMS database %s: %s", path, sqlite3_errstr(rc)), -EIO;
	rc = kms_open(&k->k, k->db, k->cube, why, sizeof(why));
	if (rc != KMS_OK)
		return snprintf(err, cap, "KMS database %s: %s", path, why), -EIO;
	if (k->admin && kms_role(k->k) != KMS_ROLE_ADMIN)
		return snprintf(err, cap, "%s is not an administrator's KMS", path), -EPERM;
	if (k->admin && kms_set_updates_dir(k->k, k->updates) != KMS_OK)
		return snprintf(err, cap, "updates folder %s: %s", k->updates, kms_errmsg(k->k)),
		       -EINVAL;
	return 0;
}

/* Apply the pending updates (a user's KMS); records what happened for the
 * status file.  Called with k->mu held. */
static int sync_now(struct sekeyfs_kms *k, struct kms_sync_report *rep)
{
	int rc = kms_sync(k->k, k->cube, k->updates, rep);

	k->last_sync = time(NULL);
	k->last_sync_rc = rc;
	snprintf(k->last_sync_msg, sizeof(k->last_sync_msg), "%s",
		 rc == KMS_OK ? "ok" : kms_errmsg(k->k));
	if (rc == KMS_OK && rep->applied) {
		k->last_applied = k->last_sync;
		k->n_applied += rep->applied;
	}
	if (rc == KMS_ECUBE)
		k->down = 1;
	return rc;
}

int sekeyfs_kms_open(struct sekeyfs_kms **out, const char *spec, const char *pin,
		     const char *updates_dir, int admin, char *err, size_t err_cap)
{
	struct sekeyfs_kms *k;
	struct kms_sync_report rep;
	struct kms_user u;
	int rc, src;

	*out = NULL;
	err[0] = '\0';
	k = calloc(1, sizeof(*k));
	if (!k || !(k->updates = strdup(updates_dir)) || !(k->spec = strdup(spec)) ||
	    !(k->pin = fs_pin_keep(pin, &k->pin_cap, &k->pin_locked))) {
		if (k) {
			free(k->updates);
			free(k->spec);
		}
		free(k);
		return snprintf(err, err_cap, "out of memory"), -ENOMEM;
	}
	pthread_mutex_init(&k->mu, NULL);
	k->admin = admin;
	k->wake[0] = k->wake[1] = -1;
	k->ino_fd = k->ino_root = k->ino_user = -1;
	rc = open_parts(k, err, err_cap);
	if (rc) {
		sekeyfs_kms_close(k);
		return rc;
	}
	if (admin) {
		snprintf(k->user, sizeof(k->user), "admin");
		*out = k;
		return 0;
	}
	src = sync_now(k, &rep);
	if (kms_sync_status(k->k, &rep) != KMS_OK || rep.user_id == 0) {
		snprintf(err, err_cap, "this cube's user is not provisioned (sync: %s)",
			 src ? kms_errmsg(k->k) : "no init update");
		sekeyfs_kms_close(k);
		return -ENOKEY;
	}
	k->user_id = rep.user_id;
	if (kms_user_info(k->k, k->user_id, &u) != KMS_OK) {
		snprintf(err, err_cap, "no record of user %u in the KMS", k->user_id);
		sekeyfs_kms_close(k);
		return -ENOKEY;
	}
	snprintf(k->user, sizeof(k->user), "%s", u.name);
	/* A refused sync leaves the previous view: still usable, said once. */
	if (src != KMS_OK)
		snprintf(err, err_cap, "updates not applied: %s", kms_errmsg(k->k));
	*out = k;
	return 0;
}

/* The cube came back (or not yet): open everything again.  k->mu held. */
static void try_reconnect(struct sekeyfs_kms *k)
{
	char err[512];
	time_t now = time(NULL);

	if (now - k->last_reconnect < RECONNECT_EVERY_S)
		return;
	k->last_reconnect = now;
	close_parts(k);
	if (open_parts(k, err, sizeof(err)) != 0) {
		close_parts(k);
		if (!k->down_logged)
			fs_log(k->fs, LOG_WARNING, "SEkey: cube unreachable, retrying: %s", err);
		k->down_logged = 1;
		return;
	}
	k->down = 0;
	k->down_logged = 0;
	k->data_version = 0;
	fs_log(k->fs, LOG_INFO, "SEkey: reconnected to the cube");
}

/* Another program (the sekey tool) may have changed the database: then
 * rebuild the KMS's in-memory index.  Checked at most once a second: it
 * reads the database's first page (through the cube).  k->mu held. */
static void notice_outside_changes(struct sekeyfs_kms *k)
{
	sqlite3_stmt *st;
	time_t now = time(NULL);
	int64_t v;

	if (now == k->version_checked)
		return;
	k->version_checked = now;
	if (sqlite3_prepare_v2(k->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
		return;
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
		if (k->data_version && v != k->data_version && kms_reload(k->k) != KMS_OK)
			fs_log(k->fs, LOG_WARNING, "SEkey: reloading after an outside change: %s",
			       kms_errmsg(k->k));
		k->data_version = v;
	}
	sqlite3_finalize(st);
}

int fs_kms_lock(struct sekeyfs *fs, struct kms **out)
{
	struct sekeyfs_kms *k = fs->kms;

	*out = NULL;
	if (!k)
		return -ENOKEY;
	pthread_mutex_lock(&k->mu);
	if (k->down)
		try_reconnect(k);
	if (!k->k) {
		pthread_mutex_unlock(&k->mu);
		return -EIO;
	}
	notice_outside_changes(k);
	*out = k->k;
	return 0;
}

/* 1 if the KMS's cube connection no longer answers. */
static int cube_dead(struct sekeyfs_kms *k)
{
	struct cube_info info;

	return !k->cube || cube_info(k->cube, &info) != CUBE_OK;
}

void fs_kms_unlock(struct sekeyfs *fs, int kms_rc)
{
	struct sekeyfs_kms *k = fs->kms;

	/* KMS_EDB too: the secure database reads its pages through the cube. */
	if (kms_rc == KMS_ECUBE || (kms_rc == KMS_EDB && cube_dead(k)))
		k->down = 1;
	pthread_mutex_unlock(&k->mu);
}

int fs_kms_sync_now(struct sekeyfs *fs, struct kms_sync_report *rep)
{
	struct sekeyfs_kms *k = fs->kms;
	struct kms *kh;
	int rc;

	if (!k || k->admin)
		return -EPERM;
	rc = fs_kms_lock(fs, &kh);
	if (rc)
		return rc;
	rc = sync_now(k, rep);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

/* ---- the update watcher ---- */

/* (Re)arm inotify on the updates folder and this user's folder in it
 * (made by the admin's first update: watched from its parent until then). */
static void watch_folders(struct sekeyfs_kms *k)
{
	char dir[4096];

	if (k->ino_fd < 0)
		return;
	if (k->ino_root < 0)
		k->ino_root = inotify_add_watch(k->ino_fd, k->updates,
						IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
	if (k->ino_user < 0 && kms_updates_user_dir(k->updates, k->serial, dir, sizeof(dir)) == 0)
		k->ino_user = inotify_add_watch(k->ino_fd, dir,
						IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR);
}

/* Read and drop pending events; 1 if one concerns us, -1 to stop. */
static int drain_events(struct sekeyfs_kms *k)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	int hit = 0;

	while ((n = read(k->ino_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_IGNORED) {
				if (ev->wd == k->ino_user)
					k->ino_user = -1;
				if (ev->wd == k->ino_root)
					k->ino_root = -1;
			}
			hit = 1;
		}
	}
	return hit;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watch_main(void *arg)
{
	struct sekeyfs_kms *k = arg;
	struct kms_sync_report rep;
	int64_t next = mono_ms() + (int64_t)k->interval * 1000;
	int last = KMS_OK;

	for (;;) {
		struct pollfd pf[2] = { { .fd = k->wake[0], .events = POLLIN },
					{ .fd = k->ino_fd, .events = POLLIN } };
		int64_t wait = next - mono_ms();
		int rc, due = 0;

		watch_folders(k);
		rc = poll(pf, k->ino_fd >= 0 ? 2 : 1, wait > 0 ? (int)wait : 0);
		if (rc < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			break;
		if (k->ino_fd >= 0 && (pf[1].revents & POLLIN) && drain_events(k)) {
			/* Let a writer finish publishing its batch, then sync once. */
			poll(pf, 1, SYNC_SETTLE_MS);
			if (pf[0].revents)
				break;
			drain_events(k);
			due = 1;
		}
		if (mono_ms() >= next) {
			due = 1;
			next = mono_ms() + (int64_t)k->interval * 1000;
		}
		if (!due)
			continue;
		pthread_mutex_lock(&k->mu);
		if (k->down)
			try_reconnect(k);
		rc = k->k ? sync_now(k, &rep) : KMS_ECUBE;
		if (rc != KMS_OK && rc != last && k->k)
			fs_log(k->fs, LOG_WARNING, "SEkey updates not applied: %s", kms_errmsg(k->k));
		else if (rc == KMS_OK && rep.applied)
			fs_log(k->fs, LOG_INFO, "SEkey: applied %u update(s)", rep.applied);
		pthread_mutex_unlock(&k->mu);
		last = rc;
	}
	return NULL;
}

int sekeyfs_kms_poll_start(struct sekeyfs_kms *k, struct sekeyfs *fs, unsigned interval)
{
	if (!k || k->admin || interval == 0)
		return 0;
	k->fs = fs;
	k->interval = interval;
	if (pipe2(k->wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return -errno;
	/* Without inotify (or on a network folder where it sees nothing) the
	 * interval alone drives the syncs. */
	k->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (k->ino_fd < 0)
		fs_log(fs, LOG_INFO, "no inotify (%s): checking for updates every %u s",
		       strerror(errno), interval);
	if (pthread_create(&k->th, NULL, watch_main, k) != 0) {
		sekeyfs_kms_poll_stop(k);
		return -EAGAIN;
	}
	k->have_th = 1;
	return 0;
}

void sekeyfs_kms_poll_stop(struct sekeyfs_kms *k)
{
	if (!k)
		return;
	if (k->have_th) {
		if (write(k->wake[1], "x", 1) != 1)
			fs_log(k->fs, LOG_WARNING, "stopping the update watcher: %s", strerror(errno));
		pthread_join(k->th, NULL);
		k->have_th = 0;
	}
	if (k->wake[0] >= 0)
		close(k->wake[0]);
	if (k->wake[1] >= 0)
		close(k->wake[1]);
	k->wake[0] = k->wake[1] = -1;
	if (k->ino_fd >= 0)
		close(k->ino_fd);
	k->ino_fd = -1;
}
