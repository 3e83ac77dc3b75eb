/*
 * bench_kms_scale.c - what one admin change costs in update files as an
 * organisation grows (issue 10, docs/DEPLOY.md): for N = 100, 1,000 and
 * 10,000 users, all members of one group with an active key, the update
 * files and bytes written by
 *   - adding one member to that group,
 *   - removing that member (the policy rotates: a new key, the old one
 *     deactivated, one change),
 *   - marking the group's key compromised,
 * and the prune once every user acknowledged everything (an ack file per
 * user, as their syncs write it).  Files and bytes are counted by walking
 * the updates folder before and after each change; times are printed, never
 * asserted (the machine is shared).
 *
 * The users are simulated the way bench_kms_updates.c does it, cheaper
 * still: one member is provisioned for real (channel keys derived cube to
 * cube, an init update); every other user's record gets a serial of its own
 * (so their files go to a folder of their own, as with real cubes) but
 * borrows that member's channel-key IDs (kms_user_set_device), so the admin
 * cube seals and wraps for them with real keys without 2 x N channel keys
 * being derived.  The admin's work per file (records, SEAL in the cube, key
 * blobs wrapped in the cube, temp file, rename) is the real one.  Nobody
 * syncs: the acks are written by the benchmark.
 *
 * Databases are plain SQLite files in a temp dir on the same file system as
 * the updates folder (/tmp, or $BENCH_DIR).  BENCH_QUICK=1: N = 100 and
 * 1,000 only (~10 s).  BENCH_SCALE_MAX=N caps N.  The full run takes about
 * 3 minutes here, 2 of them setting up the 10,000-member group: recording a
 * membership costs O(group size) even while nobody is provisioned, so the
 * set-up is quadratic (printed on its own line).  Emulators are killed by the PID in
 * DIR/secube-emu.pid at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kms/kms.h"

#define ADMIN_PIN "bench-admin"
#define USER_PIN "bench-user"
#define MAX_CUBES 8

struct bench {
	char base[256], updates[300];
	char cube_dirs[MAX_CUBES][320];
	int n_cubes;
};

struct tally {
	uint64_t files, bytes;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *why)
{
	fprintf(stderr, "bench_kms_scale: %s: %s\n", what, why);
	return 1;
}

/* Every NNNNNNNNNNNNNNNN.upd under UPDATES/<serial>/: how many, how big. */
static int count_updates(const char *updates, struct tally *t)
{
	DIR *top = opendir(updates), *d;
	struct dirent *e, *f;
	char path[1024];
	struct stat st;

	t->files = t->bytes = 0;
	if (!top)
		return fail(updates, strerror(errno));
	while ((e = readdir(top))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", updates, e->d_name);
		if (!(d = opendir(path)))
			continue;
		while ((f = readdir(d))) {
			size_t n = strlen(f->d_name);
			char file[1400];

			if (n != 20 || strcmp(f->d_name + 16, ".upd") != 0)
				continue;
			snprintf(file, sizeof(file), "%s/%s", path, f->d_name);
			if (stat(file, &st) == 0) {
				t->files++;
				t->bytes += (uint64_t)st.st_size;
			}
		}
		closedir(d);
	}
	closedir(top);
	return 0;
}

/* Write UPDATES/<serial>/ack = the highest counter there, for every user:
 * what each user's sync would leave once they applied everything. */
static int ack_everything(const char *updates)
{
	DIR *top = opendir(updates), *d;
	struct dirent *e, *f;
	char path[1024], file[1400];
	FILE *out;

	if (!top)
		return fail(updates, strerror(errno));
	while ((e = readdir(top))) {
		uint64_t max = 0;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", updates, e->d_name);
		if (!(d = opendir(path)))
			continue;
		while ((f = readdir(d))) {
			unsigned long long c;
			char tail[8];

			if (strlen(f->d_name) == 20 && sscanf(f->d_name, "%16llu%7s", &c, tail) == 2 &&
			    strcmp(tail, ".upd") == 0 && c > max)
				max = c;
		}
		closedir(d);
		if (!max)
			continue;
		snprintf(file, sizeof(file), "%s/ack", path);
		out = fopen(file, "w");
		if (!out || fprintf(out, "%" PRIu64 "\n", max) < 0 || fclose(out) != 0) {
			closedir(top);
			return fail(file, "cannot write");
		}
	}
	closedir(top);
	return 0;
}

static int new_cube(struct bench *b, const char *name, struct cube **out)
{
	char dir[sizeof(b->cube_dirs[0])], err[256];

	*out = NULL;
	if (b->n_cubes == MAX_CUBES)
		return fail(name, "too many cubes");
	snprintf(dir, sizeof(dir), "%s/%s", b->base, name);
	memcpy(b->cube_dirs[b->n_cubes], dir, sizeof(dir));
	if (cube_create_emulated(dir, err, sizeof(err)) != CUBE_OK)
		return fail(name, err);
	b->n_cubes++;
	if (cube_open(out, dir, err, sizeof(err)) != CUBE_OK)
		return fail(name, err);
	if (cube_factory_init(*out, ADMIN_PIN, USER_PIN, 0, 0) != CUBE_OK ||
	    cube_login(*out, WIRE_ROLE_ADMIN, ADMIN_PIN) != CUBE_OK)
		return fail(name, cube_errmsg(*out));
	return 0;
}

static void cleanup(struct bench *b)
{
	char cmd[400];

	for (int i = 0; i < b->n_cubes; i++) {
		char path[400];
		FILE *f;
		long pid = 0;

		snprintf(path, sizeof(path), "%s/secube-emu.pid", b->cube_dirs[i]);
		f = fopen(path, "r");
		if (f && fscanf(f, "%ld", &pid) == 1 && pid > 1)
			kill((pid_t)pid, SIGKILL);
		if (f)
			fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->base);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_kms_scale: could not remove %s\n", b->base);
}

/* Give user id a serial of their own (its last 4 bytes = i + 1, its first
 * flipped, so never the real cube's) and the real member's channel-key
 * IDs; their folder made. */
static int simulate_device(struct kms *k, const struct kms_user *real, const char *updates,
			   uint32_t i, uint32_t id)
{
	uint8_t serial[WIRE_SERIAL_LEN];
	char hex[2 * WIRE_SERIAL_LEN + 1], dir[600];

	memcpy(serial, real->serial, sizeof(serial));
	serial[0] ^= 0x5a; /* never the real cube's serial */
	serial[12] = (uint8_t)((i + 1) >> 24);
	serial[13] = (uint8_t)((i + 1) >> 16);
	serial[14] = (uint8_t)((i + 1) >> 8);
	serial[15] = (uint8_t)(i + 1);
	if (kms_user_set_device(k, id, serial, real->update_key_id, real->kwk_id) != KMS_OK)
		return fail("user serial", kms_errmsg(k));
	for (int j = 0; j < WIRE_SERIAL_LEN; j++)
		snprintf(hex + 2 * j, 3, "%02x", serial[j]);
	snprintf(dir, sizeof(dir), "%s/%s", updates, hex);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail("mkdir", dir);
	return 0;
}

/* One admin change, measured: files and bytes it added, seconds. */
static int measure(const char *updates, const char *what, uint32_t n, struct kms *k,
		   int (*change)(struct kms *, uint32_t, uint32_t), uint32_t a1, uint32_t a2)
{
	struct tally before, after;
	double t0, dt;

	if (count_updates(updates, &before))
		return 1;
	t0 = now_s();
	if (change(k, a1, a2) != KMS_OK)
		return fail(what, kms_errmsg(k));
	dt = now_s() - t0;
	if (count_updates(updates, &after))
		return 1;
	printf("  N=%-6u %-34s %7" PRIu64 " files %11" PRIu64 " bytes (%6.0f B/file) %7.2f s\n", n,
	       what, after.files - before.files, after.bytes - before.bytes,
	       after.files > before.files
		       ? (double)(after.bytes - before.bytes) / (double)(after.files - before.files)
		       : 0.0,
	       dt);
	return 0;
}

static int do_add_member(struct kms *k, uint32_t user, uint32_t group)
{
	return kms_add_member(k, user, group);
}

static int do_remove_member(struct kms *k, uint32_t user, uint32_t group)
{
	return kms_remove_member(k, user, group);
}

static int do_compromise(struct kms *k, uint32_t key, uint32_t unused)
{
	(void)unused;
	return kms_set_key_state(k, key, KMS_KEY_COMPROMISED);
}

static int run_n(struct bench *b, uint32_t n, int round)
{
	struct cube *admin = NULL, *real = NULL;
	struct kms *k = NULL;
	sqlite3 *db = NULL;
	struct kms_policy p;
	struct kms_user ru;
	struct kms_found found;
	struct tally t;
	uint32_t g, key, real_id, extra = 0, pruned = 0, *ids = calloc(n + 1, sizeof(*ids));
	char name[64], path[400], err[256];
	double t0;
	int rc = ids ? 0 : fail("ids", "no memory");

	if (rc)
		return rc;
	snprintf(b->updates, sizeof(b->updates), "%s/UPDATES-%u", b->base, n);
	if (mkdir(b->updates, 0700) != 0)
		return fail("mkdir", b->updates);
	snprintf(name, sizeof(name), "admin%d", round);
	rc = new_cube(b, name, &admin);
	t0 = now_s();
	snprintf(name, sizeof(name), "real%d", round);
	if (!rc)
		rc = new_cube(b, name, &real);
	snprintf(path, sizeof(path), "%s/admin-%u.db", b->base, n);
	if (!rc && sqlite3_open(path, &db) != SQLITE_OK)
		rc = fail(path, "sqlite3_open");
	if (!rc) {
		sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
		sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
		if (kms_open(&k, db, admin, err, sizeof(err)) != KMS_OK)
			rc = fail("kms_open", err);
	}
	if (!rc && (kms_admin_init(k) != KMS_OK || kms_set_updates_dir(k, b->updates) != KMS_OK))
		rc = fail("admin init", kms_errmsg(k));
	kms_policy_default(&p);
	if (!rc && kms_add_group(k, "big", &p, &g) != KMS_OK)
		rc = fail("group", kms_errmsg(k));
	if (!rc && (kms_add_key(k, g, "k0", 0, &key) != KMS_OK || kms_activate_key(k, key) != KMS_OK))
		rc = fail("key", kms_errmsg(k));
	/* Users and memberships first, nobody provisioned yet (so no file is
	 * written: adding member m to a provisioned group of m would write m
	 * files, N^2/2 in all); then the real member's cube is provisioned (one
	 * init update with the whole group) and the others get their serials.
	 * ids[0] is the real member, ids[n] the one who joins during the bench. */
	for (uint32_t i = 0; !rc && i <= n; i++) {
		snprintf(name, sizeof(name), i ? "s%u" : "real", i);
		if (kms_add_user(k, name, NULL, &ids[i]) != KMS_OK ||
		    (i < n && kms_add_member(k, ids[i], g) != KMS_OK))
			rc = fail("user", kms_errmsg(k));
	}
	if (!rc)
		printf("  N=%-6u %u users and memberships recorded (nobody provisioned): %.1f s\n", n,
		       n + 1, now_s() - t0);
	real_id = ids[0];
	extra = ids[n];
	if (!rc && (kms_user_init(k, real, real_id) != KMS_OK ||
		    kms_user_info(k, real_id, &ru) != KMS_OK))
		rc = fail("real user", kms_errmsg(k));
	for (uint32_t i = 1; !rc && i <= n; i++)
		rc = simulate_device(k, &ru, b->updates, i, ids[i]);
	if (!rc)
		printf("  N=%-6u set-up (%u users, %u members, one real cube): %.1f s\n", n, n + 1, n,
		       now_s() - t0);
	if (!rc && sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
		rc = fail("pragma", sqlite3_errmsg(db));
	if (!rc)
		rc = measure(b->updates, "add 1 member to the group", n, k, do_add_member, extra, g);
	if (!rc)
		rc = measure(b->updates, "remove it (rotation: new key)", n, k, do_remove_member,
			     extra, g);
	if (!rc && kms_find_key_v2(k, real_id, g, &found) != KMS_OK)
		rc = fail("find_key", kms_errmsg(k));
	if (!rc && found.key_id == key)
		rc = fail("rotation", "no new key");
	if (!rc)
		rc = measure(b->updates, "mark the group's key compromised", n, k, do_compromise,
			     found.key_id, 0);
	if (!rc)
		rc = count_updates(b->updates, &t);
	if (!rc)
		rc = ack_everything(b->updates);
	if (!rc) {
		t0 = now_s();
		if (kms_updates_prune(k, &pruned) != KMS_OK)
			rc = fail("prune", kms_errmsg(k));
		else
			printf("  N=%-6u prune after every user acknowledged: %u of %" PRIu64
			       " files (%" PRIu64 " bytes) removed in %.2f s\n",
			       n, pruned, t.files, t.bytes, now_s() - t0);
	}
	kms_close(k);
	sqlite3_close(db);
	cube_close(real);
	cube_close(admin);
	free(ids);
	return rc;
}

/* The emulator beside this build: BUILD/bench/x -> BUILD/bin/secube-emu. */
static void find_emulator(void)
{
	char self[4096], emu[4200];
	ssize_t n;
	char *slash;

	if (getenv("SECUBE_EMU"))
		return;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(emu, sizeof(emu), "%s/../bin/secube-emu", self);
	if (access(emu, X_OK) == 0)
		setenv("SECUBE_EMU", emu, 1);
}

int main(void)
{
	static const uint32_t sizes[] = { 100, 1000, 10000 };
	const char *quick = getenv("BENCH_QUICK"), *cap = getenv("BENCH_SCALE_MAX");
	const char *dir = getenv("BENCH_DIR");
	unsigned long max = quick && *quick == '1' ? 1000 : 10000;
	struct bench b;
	int rc = 0;

	setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows as it goes, even into a file */
	if (cap && *cap)
		max = strtoul(cap, NULL, 10);
	find_emulator();
	memset(&b, 0, sizeof(b));
	snprintf(b.base, sizeof(b.base), "%s/bench-kms-scale.XXXXXX", dir && *dir ? dir : "/tmp");
	if (!mkdtemp(b.base))
		return fail("mkdtemp", b.base);
	printf("kms scale: update files per admin change, one group of N members\n");
	for (size_t i = 0; !rc && i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i] <= max)
			rc = run_n(&b, sizes[i], (int)i);
	cleanup(&b);
	return rc;
}
