/*
 * bench_kms_findkey.c - find_key latency at the thesis's scale: 10,000
 * users, 10,000 groups (2,000 personal, 8,000 shared of 2..25 members),
 * 40,000 keys (4 per group: 3 active with various cryptoperiods, 1
 * pre-active), built through the KMS API on plain SQLite in a temp dir
 * (no cube).  Prints p50/p99 of v1, v2 and v3 over many random queries.
 * A benchmark, not a test: it always exits 0 unless setup fails.
 * Target (BRIEF/issue): p99 <= 10 microseconds.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kms/kms.h"

#define N_USERS 10000
#define N_PERSONAL 2000
#define N_GROUPS 10000
#define KEYS_PER_GROUP 4
#define N_QUERIES 200000

struct pop {
	uint32_t users[N_USERS];
	uint32_t groups[N_GROUPS];
	uint32_t *members[N_GROUPS];
	uint32_t n_members[N_GROUPS];
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int die(struct kms *k, const char *what)
{
	fprintf(stderr, "bench_kms_findkey: %s: %s\n", what, kms_errmsg(k));
	return 1;
}

static int make_groups(struct kms *k, struct pop *p)
{
	struct kms_policy pol;
	char name[32];

	kms_policy_default(&pol);
	pol.max_keys = 8;
	for (uint32_t g = 0; g < N_GROUPS; g++) {
		uint32_t want = g < N_PERSONAL ? 1 : 2 + rnd(24);

		snprintf(name, sizeof(name), "group%u", g);
		pol.alg = (g % 5 == 0) ? WIRE_ALG_AES256_CTR_HMAC : WIRE_ALG_AES256_GCM;
		if (kms_add_group(k, name, &pol, &p->groups[g]))
			return die(k, "add group");
		p->members[g] = calloc(want, sizeof(uint32_t));
		if (!p->members[g])
			return 1;
		for (uint32_t i = 0; i < want; i++) {
			uint32_t u = g < N_PERSONAL ? g : rnd(N_USERS);
			int rc = kms_add_member(k, p->users[u], p->groups[g]);

			if (rc == KMS_EEXIST)
				continue;
			if (rc)
				return die(k, "add member");
			p->members[g][p->n_members[g]++] = p->users[u];
		}
		for (uint32_t j = 0; j < KEYS_PER_GROUP; j++) {
			uint32_t id;

			if (kms_add_key(k, p->groups[g], "bench", 3600 * (1 + rnd(1000)), &id))
				return die(k, "add key");
			if (j < KEYS_PER_GROUP - 1 && kms_activate_key(k, id))
				return die(k, "activate key");
		}
	}
	return 0;
}

static int populate(struct kms *k, sqlite3 *db, struct pop *p)
{
	char name[32];

	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return 1;
	for (uint32_t u = 0; u < N_USERS; u++) {
		snprintf(name, sizeof(name), "user%u", u);
		if (kms_add_user(k, name, NULL, &p->users[u]))
			return die(k, "add user");
	}
	if (make_groups(k, p))
		return 1;
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, double *lat, size_t n, size_t hits)
{
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("find_key %s: p50 %.2f us  p99 %.2f us  max %.2f us  (%zu queries, %zu found a key)\n",
	       what, lat[n / 2] / 1000.0, lat[n * 99 / 100] / 1000.0, lat[n - 1] / 1000.0, n, hits);
}

/* A random shared group and n of its members (possibly repeated). */
static uint32_t pick(struct pop *p, uint32_t *out, uint32_t n)
{
	uint32_t g = N_PERSONAL + rnd(N_GROUPS - N_PERSONAL);

	while (p->n_members[g] == 0)
		g = N_PERSONAL + rnd(N_GROUPS - N_PERSONAL);
	for (uint32_t i = 0; i < n; i++)
		out[i] = p->members[g][rnd(p->n_members[g])];
	return g;
}

static void run_queries(struct kms *k, struct pop *p, double *lat)
{
	struct kms_found f;
	uint32_t set[4];
	size_t hits;
	double t;

	hits = 0;
	for (size_t i = 0; i < N_QUERIES; i++) {
		if (i % 10 == 9) { /* some unrelated pairs: mostly ENOKEY */
			set[0] = p->users[rnd(N_USERS)];
			set[1] = p->users[rnd(N_USERS)];
		} else
			pick(p, set, 2);
		t = now_ns();
		hits += kms_find_key_v1(k, set[0], set[1], &f) == KMS_OK;
		lat[i] = now_ns() - t;
	}
	report("v1 (pair)", lat, N_QUERIES, hits);
	hits = 0;
	for (size_t i = 0; i < N_QUERIES; i++) {
		uint32_t g = pick(p, set, 1);

		t = now_ns();
		hits += kms_find_key_v2(k, set[0], p->groups[g], &f) == KMS_OK;
		lat[i] = now_ns() - t;
	}
	report("v2 (user, group)", lat, N_QUERIES, hits);
	hits = 0;
	for (size_t i = 0; i < N_QUERIES; i++) {
		pick(p, set, 4);
		t = now_ns();
		hits += kms_find_key_v3(k, set, 4, &f) == KMS_OK;
		lat[i] = now_ns() - t;
	}
	report("v3 (4 users)", lat, N_QUERIES, hits);
}

int main(void)
{
	char dir[] = "/tmp/kms-bench.XXXXXX", path[64], err[256];
	static struct pop p;
	struct kms *k = NULL;
	sqlite3 *db = NULL;
	double *lat = calloc(N_QUERIES, sizeof(double)), t0;
	int rc = 1;

	if (!lat || !mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/kms.db", dir);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA synchronous=OFF; PRAGMA journal_mode=MEMORY", NULL, NULL,
			 NULL) != SQLITE_OK)
		goto out;
	if (kms_open(&k, db, NULL, err, sizeof(err)) || kms_admin_init(k)) {
		fprintf(stderr, "bench_kms_findkey: open: %s\n", k ? kms_errmsg(k) : err);
		goto out;
	}
	t0 = now_ns();
	if (populate(k, db, &p))
		goto out;
	printf("populated %d users, %d groups, %d keys in %.1f s\n", N_USERS, N_GROUPS,
	       N_GROUPS * KEYS_PER_GROUP, (now_ns() - t0) / 1e9);
	kms_close(k);
	t0 = now_ns();
	if (kms_open(&k, db, NULL, err, sizeof(err))) {
		fprintf(stderr, "bench_kms_findkey: reopen: %s\n", err);
		goto out;
	}
	printf("reopened (index rebuilt) in %.1f ms\n", (now_ns() - t0) / 1e6);
	run_queries(k, &p, lat);
	rc = 0;
out:
	kms_close(k);
	sqlite3_close(db);
	unlink(path);
	rmdir(dir);
	for (uint32_t g = 0; g < N_GROUPS; g++)
		free(p.members[g]);
	free(lat);
	return rc;
}
