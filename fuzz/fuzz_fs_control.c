/*
 * fuzz_fs_control.c - libFuzzer target for the writes of the control tree
 * /.sekey/ (fs/control.c): every attribute's validation and KMS call on an
 * administrator's metadata-only KMS over an in-memory SQLite database (no
 * cube, no FUSE: fs_ctl_write_file is the write path without the kernel).
 *
 * Input: u8 file kind (mod 5: /.sekey, admin/, users/ID/, groups/ID/,
 * keys/ID/) || u8 attribute index || u8 object (mod 4: the seeded
 * user/group/key, ID 0, ID 0xffffffff, the last byte as an ID) || u8 offset
 * (0 most of the time) || the bytes written.
 *
 * Oracles: the errno is one a user can act on (EPERM, EINVAL, EEXIST,
 * ENOENT, ENOKEY, ENOSPC, EKEYEXPIRED, ENOMEM, EIO; 0 on success); a
 * refused write leaves the KMS exactly as it was (all-or-nothing: users,
 * groups with policy and members, keys with state); the answer of a query
 * is a decimal number.  Each input runs inside a savepoint rolled back
 * afterwards, so inputs do not depend on each other.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fs/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sekeyfs *fs;
static struct sekeyfs_kms kmsconn;
static sqlite3 *db;
static uint32_t user_id, group_id, key_id;

static int64_t fixed_clock(void *arg)
{
	(void)arg;
	return 1800000000;
}

static void setup(void)
{
	struct kms_policy p;
	struct kms *k;
	char err[256];
	uint32_t other;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK || kms_open(&k, db, NULL, err, sizeof(err)) ||
	    kms_admin_init(k))
		abort();
	kms_set_clock(k, fixed_clock, NULL);
	kms_policy_default(&p);
	if (kms_add_user(k, "alice", NULL, &user_id) || kms_add_user(k, "bob", NULL, &other) ||
	    kms_add_group(k, "team", &p, &group_id) || kms_add_member(k, user_id, group_id) ||
	    kms_add_key(k, group_id, "k1", 0, &key_id) || kms_activate_key(k, key_id))
		abort();
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		abort();
	pthread_mutex_init(&fs->ctl_mu, NULL);
	pthread_mutex_init(&kmsconn.mu, NULL);
	kmsconn.k = k;
	kmsconn.db = db;
	kmsconn.admin = 1;
	kmsconn.fs = fs;
	kmsconn.wake[0] = kmsconn.wake[1] = kmsconn.ino_fd = -1;
	snprintf(kmsconn.user, sizeof(kmsconn.user), "admin");
	fs->kms = &kmsconn;
}

/* Everything a write may change, as text. */
static char *snapshot(void)
{
	struct kms *k = kmsconn.k;
	struct kms_user *u = NULL;
	struct kms_group *g = NULL;
	struct kms_key *keys = NULL;
	size_t nu = 0, ng = 0, nk = 0, cap = 1 << 16, len = 0;
	char *out = malloc(cap);

	if (!out || kms_user_list(k, &u, &nu) || kms_group_list(k, &g, &ng) ||
	    kms_key_list(k, 0, &keys, &nk))
		abort();
	for (size_t i = 0; i < nu && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "u%u %s %u;", u[i].id, u[i].name,
					u[i].n_groups);
	for (size_t i = 0; i < ng && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "g%u %s %u %u %lld %d %u;", g[i].id,
					g[i].name, g[i].policy.alg, g[i].policy.max_keys,
					(long long)g[i].policy.cryptoperiod,
					g[i].policy.rotate_on_remove, g[i].n_members);
	for (size_t i = 0; i < nk && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "k%u %s %d;", keys[i].id, keys[i].label,
					(int)keys[i].state);
	free(u);
	free(g);
	free(keys);
	return out;
}

static int acceptable(int err)
{
	switch (err) {
	case 0: case EPERM: case EINVAL: case EEXIST: case ENOENT: case ENOKEY: case ENOSPC:
	case EKEYEXPIRED: case ENOMEM: case EIO:
		return 1;
	default:
		return 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t fixed_ids[2] = { 0, 0xffffffffu };
	char answer[64], *before, *after;
	unsigned kind, attr, which;
	uint32_t obj;
	off_t off;
	int err;

	if (!fs)
		setup();
	if (size < 4)
		return 0;
	kind = data[0] % 5;
	attr = data[1] % 16;
	which = data[2] % 4;
	off = data[3] < 240 ? 0 : data[3] - 239;
	data += 4;
	size -= 4;
	obj = kind == 2 ? user_id : kind == 3 ? group_id : kind == 4 ? key_id : 0;
	if (which == 1 || which == 2)
		obj = fixed_ids[which - 1];
	else if (which == 3 && size > 0)
		obj = data[size - 1];
	if (sqlite3_exec(db, "SAVEPOINT fuzz", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	before = snapshot();
	err = fs_ctl_write_file(fs, kind, obj, attr, (const char *)data, size, off, answer,
				sizeof(answer));
	if (!acceptable(err)) {
		fprintf(stderr, "unexpected errno %d\n", err);
		abort();
	}
	after = snapshot();
	if (err && strcmp(before, after)) {
		fprintf(stderr, "refused write (errno %d) changed the KMS:\n%s\n%s\n", err, before,
			after);
		abort();
	}
	if (!err && answer[0] && strspn(answer, "0123456789\n") != strlen(answer)) {
		fprintf(stderr, "answer not a number: %s\n", answer);
		abort();
	}
	free(before);
	free(after);
	if (sqlite3_exec(db, "ROLLBACK TO fuzz; RELEASE fuzz", NULL, NULL, NULL) != SQLITE_OK ||
	    kms_reload(kmsconn.k) != KMS_OK)
		abort();
	return 0;
}
