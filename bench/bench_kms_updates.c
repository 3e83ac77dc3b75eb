/*
 * bench_kms_updates.c - the SEkey issue's update benchmarks, with emulated
 * cubes (cube_create_emulated).  A benchmark prints, never asserts a time;
 * it exits 0 unless the set-up fails.
 *
 * Part 1, updates generated and applied per second: an admin cube and
 * N_SMALL users, each with a cube of their own, all in one group; the admin
 * makes CHANGES changes (add a key, then activate it: each writes one
 * update file per member); then every user syncs.  Printed: admin changes
 * per second, update files written per second, files applied per second
 * (every user's sync: open in the user's cube, records into the user's
 * database, key blobs imported into the user's cube).
 *
 * Part 2, the 2,000-member rotation: 2,000 users, all members of one
 * group with an active key, provisioned for real (channel keys derived
 * cube to cube in the admin cube and a user cube, an init update each),
 * but not on 2,000 emulators: SAMPLE members get a cube of their own, the
 * others are hosted on HOSTS cubes (kms_user_init gives every user their
 * own channel-key IDs, so one cube can hold the keys of many users).  A
 * hosted user's record then gets a serial of its own (kms_user_set_device)
 * so that, as with real cubes, each user's files go to their own folder;
 * those cubes are simulated in that nobody syncs their files.  The admin's
 * work per user is the real one.  Timed: removing one member, i.e. a new
 * key generated in the admin cube, the old one deactivated, and 2,000
 * update files written and fsynced (1,999 with the new key wrapped under
 * that user's channel key, one GROUP_GONE) and made durable, all in one
 * change.  Then the
 * SAMPLE members with real cubes sync (init + rotation), to show the files
 * apply.  Set-up runs with PRAGMA synchronous=NORMAL; the timed rotation
 * with FULL.
 *
 * Databases are plain SQLite files (not the secure database) in a temp dir
 * on the same file system as the updates folder.  BENCH_QUICK=1 makes it
 * smaller (400 members).  Emulators are killed by the PID in
 * DIR/secube-emu.pid at the end.
 */
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
#define N_SMALL 4
#define CHANGES 50
#define HOSTS 4
#define BIG 2000
#define BIG_QUICK 400
#define SAMPLE 3
#define MAX_CUBES (2 + N_SMALL + HOSTS + SAMPLE)

struct bench {
	char base[64], updates[96];
	char cube_dirs[MAX_CUBES][128];
	int n_cubes;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *why)
{
	fprintf(stderr, "bench_kms_updates: %s: %s\n", what, why);
	return 1;
}

/* A new emulated cube, initialised, logged in as role. */
static int new_cube(struct bench *b, const char *name, enum wire_role role, struct cube **out)
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
	    cube_login(*out, role, role == WIRE_ROLE_ADMIN ? ADMIN_PIN : USER_PIN) != CUBE_OK)
		return fail(name, cube_errmsg(*out));
	return 0;
}

/* Kill every emulator by its PID file, then remove the base directory. */
static void cleanup(struct bench *b)
{
	char cmd[256];

	for (int i = 0; i < b->n_cubes; i++) {
		char path[200];
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
		fprintf(stderr, "bench_kms_updates: could not remove %s\n", b->base);
}

/* An admin KMS on a plain SQLite file. */
static int admin_kms(struct bench *b, const char *name, struct cube *c, sqlite3 **db, struct kms **k)
{
	char path[160], err[256];

	snprintf(path, sizeof(path), "%s/%s.db", b->base, name);
	if (sqlite3_open(path, db) != SQLITE_OK)
		return fail(path, "sqlite3_open");
	sqlite3_exec(*db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	if (kms_open(k, *db, c, err, sizeof(err)) != KMS_OK)
		return fail("kms_open", err);
	if (kms_admin_init(*k) != KMS_OK || kms_set_updates_dir(*k, b->updates) != KMS_OK)
		return fail("admin init", kms_errmsg(*k));
	return 0;
}

/* Sync user db_name on cube c (logged in as user); *files += applied. */
static int user_sync(struct bench *b, const char *db_name, struct cube *c, uint64_t *files)
{
	struct kms_sync_report rep;
	struct kms *k = NULL;
	sqlite3 *db = NULL;
	char path[160], err[256];
	int rc;

	snprintf(path, sizeof(path), "%s/%s.db", b->base, db_name);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return fail(path, "sqlite3_open");
	rc = kms_open(&k, db, c, err, sizeof(err));
	if (rc == KMS_OK)
		rc = kms_sync(k, c, b->updates, &rep);
	if (rc != KMS_OK)
		fail("sync", k ? kms_errmsg(k) : err);
	else
		*files += rep.applied;
	kms_close(k);
	sqlite3_close(db);
	return rc != KMS_OK;
}

/* ---- part 1 ---- */

static int part_small(struct bench *b)
{
	struct cube *admin = NULL, *users[N_SMALL] = { 0 };
	struct kms *k = NULL;
	sqlite3 *db = NULL;
	struct kms_policy p;
	uint32_t g, ids[N_SMALL], key;
	uint64_t applied = 0;
	double t0, t_admin, t_sync = 0;
	char name[32];
	int rc = new_cube(b, "admin1", WIRE_ROLE_ADMIN, &admin);

	if (!rc)
		rc = admin_kms(b, "admin1", admin, &db, &k);
	kms_policy_default(&p);
	p.max_keys = CHANGES + 1;
	if (!rc && kms_add_group(k, "team", &p, &g) != KMS_OK)
		rc = fail("group", kms_errmsg(k));
	for (int i = 0; !rc && i < N_SMALL; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		rc = new_cube(b, name, WIRE_ROLE_ADMIN, &users[i]);
		if (!rc && (kms_add_user(k, name, NULL, &ids[i]) != KMS_OK ||
			    kms_user_init(k, users[i], ids[i]) != KMS_OK ||
			    kms_add_member(k, ids[i], g) != KMS_OK))
			rc = fail("user", kms_errmsg(k));
		if (!rc && cube_login(users[i], WIRE_ROLE_USER, USER_PIN) != CUBE_OK)
			rc = fail("user login", cube_errmsg(users[i]));
		if (!rc)
			rc = user_sync(b, name, users[i], &applied); /* the set-up's files */
	}
	t0 = now_s();
	for (int i = 0; !rc && i < CHANGES / 2; i++)
		if (kms_add_key(k, g, "k", 0, &key) != KMS_OK || kms_activate_key(k, key) != KMS_OK)
			rc = fail("change", kms_errmsg(k));
	t_admin = now_s() - t0;
	applied = 0;
	for (int i = 0; !rc && i < N_SMALL; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		t0 = now_s();
		rc = user_sync(b, name, users[i], &applied);
		t_sync += now_s() - t0;
	}
	if (!rc) {
		printf("updates: %d users in one group, %d admin changes\n", N_SMALL, CHANGES);
		printf("  generated: %.1f changes/s, %.1f update files/s (%.3f s)\n", CHANGES / t_admin,
		       CHANGES * (double)N_SMALL / t_admin, t_admin);
		printf("  applied:   %.1f update files/s over %d user syncs (%llu files, %.3f s)\n",
		       (double)applied / t_sync, N_SMALL, (unsigned long long)applied, t_sync);
	}
	kms_close(k);
	sqlite3_close(db);
	for (int i = 0; i < N_SMALL; i++)
		cube_close(users[i]);
	cube_close(admin);
	return rc;
}

/* ---- part 2 ---- */

/* Provision member i on its own cube (i < SAMPLE) or a host cube with a
 * serial of its own. */
static int provision_one(struct kms *k, const char *updates, struct cube **own, struct cube **hosts,
			 uint32_t i, uint32_t id)
{
	struct kms_user u;
	char hex[2 * WIRE_SERIAL_LEN + 1], dir[200];
	struct cube *c = i < SAMPLE ? own[i] : hosts[i % HOSTS];

	if (kms_user_init(k, c, id) != KMS_OK)
		return fail("provision", kms_errmsg(k));
	if (i < SAMPLE)
		return 0;
	if (kms_user_info(k, id, &u) != KMS_OK)
		return fail("user info", kms_errmsg(k));
	u.serial[12] = (uint8_t)(i >> 24);
	u.serial[13] = (uint8_t)(i >> 16);
	u.serial[14] = (uint8_t)(i >> 8);
	u.serial[15] = (uint8_t)i;
	if (kms_user_set_device(k, id, u.serial, u.update_key_id, u.kwk_id) != KMS_OK)
		return fail("user serial", kms_errmsg(k));
	/* A real user's folder exists from their init update on. */
	for (int j = 0; j < WIRE_SERIAL_LEN; j++)
		snprintf(hex + 2 * j, 3, "%02x", u.serial[j]);
	snprintf(dir, sizeof(dir), "%s/%s", updates, hex);
	if (mkdir(dir, 0700) != 0)
		return fail("mkdir", dir);
	return 0;
}

static int provision_big(struct kms *k, const char *updates, struct cube **own, struct cube **hosts, uint32_t n,
			 uint32_t g, uint32_t *ids)
{
	char name[32];
	double t0 = now_s();

	for (uint32_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "m%u", i);
		if (kms_add_user(k, name, NULL, &ids[i]) != KMS_OK ||
		    kms_add_member(k, ids[i], g) != KMS_OK)
			return fail("member", kms_errmsg(k));
	}
	printf("rotation: %u members added (not yet provisioned) in %.2f s\n", n, now_s() - t0);
	t0 = now_s();
	for (uint32_t i = 0; i < n; i++)
		if (provision_one(k, updates, own, hosts, i, ids[i]) != 0)
			return 1;
	printf("  %u users provisioned (%d on cubes of their own, the rest on %d host cubes; "
	       "channel keys + init update each) in %.2f s\n", n, SAMPLE, HOSTS, now_s() - t0);
	return 0;
}

static int part_big(struct bench *b, uint32_t n)
{
	struct cube *admin = NULL, *hosts[HOSTS] = { 0 }, *own[SAMPLE] = { 0 };
	struct kms *k = NULL;
	sqlite3 *db = NULL;
	struct kms_policy p;
	struct kms_found found;
	uint32_t g, key, *ids = calloc(n, sizeof(*ids));
	uint64_t applied = 0;
	double t0, t_rot;
	char name[32];
	int rc = ids ? new_cube(b, "admin2", WIRE_ROLE_ADMIN, &admin) : fail("ids", "no memory");

	if (!rc)
		rc = admin_kms(b, "admin2", admin, &db, &k);
	kms_policy_default(&p);
	if (!rc && kms_add_group(k, "big", &p, &g) != KMS_OK)
		rc = fail("group", kms_errmsg(k));
	for (int i = 0; !rc && i < HOSTS; i++) {
		snprintf(name, sizeof(name), "host%d", i);
		rc = new_cube(b, name, WIRE_ROLE_ADMIN, &hosts[i]);
	}
	for (int i = 0; !rc && i < SAMPLE; i++) {
		snprintf(name, sizeof(name), "own%d", i);
		rc = new_cube(b, name, WIRE_ROLE_ADMIN, &own[i]);
	}
	if (!rc)
		sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (!rc && (kms_add_key(k, g, "k0", 0, &key) != KMS_OK || kms_activate_key(k, key) != KMS_OK))
		rc = fail("key", kms_errmsg(k));
	if (!rc)
		rc = provision_big(k, b->updates, own, hosts, n, g, ids);
	if (!rc && sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
		rc = fail("pragma", sqlite3_errmsg(db));
	if (!rc) {
		t0 = now_s();
		if (kms_remove_member(k, ids[n / 2], g) != KMS_OK)
			rc = fail("remove member", kms_errmsg(k));
		t_rot = now_s() - t0;
		if (!rc && kms_find_key_v2(k, ids[0], g, &found) == KMS_OK && found.key_id != key)
			printf("  remove 1 member of %u (rotation, %u update files written and synced):"
			       " %.3f s (target <= 5 s)\n", n, n, t_rot);
		else if (!rc)
			rc = fail("rotation", "no new key");
	}
	/* A sample of members applies everything (init, then the rotation). */
	for (int i = 0; !rc && i < SAMPLE; i++) {
		struct cube *h = own[i];

		if (cube_login(h, WIRE_ROLE_USER, USER_PIN) != CUBE_OK)
			rc = fail("host login", cube_errmsg(h));
		snprintf(name, sizeof(name), "m%d", i);
		t0 = now_s();
		if (!rc)
			rc = user_sync(b, name, h, &applied);
		if (!rc)
			printf("  member %s synced (init with %u members + rotation): %.3f s\n", name, n,
			       now_s() - t0);
	}
	kms_close(k);
	sqlite3_close(db);
	for (int i = 0; i < HOSTS; i++)
		cube_close(hosts[i]);
	for (int i = 0; i < SAMPLE; i++)
		cube_close(own[i]);
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
	struct bench b;
	const char *quick = getenv("BENCH_QUICK");
	int rc;

	find_emulator();
	memset(&b, 0, sizeof(b));
	snprintf(b.base, sizeof(b.base), "/tmp/bench-kms-upd.XXXXXX");
	if (!mkdtemp(b.base))
		return fail("mkdtemp", "failed");
	snprintf(b.updates, sizeof(b.updates), "%s/UPDATES", b.base);
	if (mkdir(b.updates, 0700) != 0) {
		cleanup(&b);
		return fail("mkdir", b.updates);
	}
	rc = part_small(&b);
	if (!rc)
		rc = part_big(&b, quick && *quick == '1' ? BIG_QUICK : BIG);
	cleanup(&b);
	return rc;
}
