/*
 * namecache.c - a cache of encrypted names.  Name encryption is
 * deterministic (SIV under the directory's key, bound to its directory
 * ID), so the backing name of (directory ID, key, plaintext name) never
 * changes and can be kept: the kernel's lookup before every create,
 * unlink, rename or stat then costs no second cube round trip.  Direct
 * mapped, fixed size, one mutex (a leaf lock: nothing else is taken while
 * holding it).  Long names (side files) are not cached.  The plaintext
 * names it holds are wiped when the file system is freed.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NAMECACHE_SLOTS 8192u  /* a power of two */

struct fs_namecache_slot {
	uint8_t used;
	uint8_t dir_id[WIRE_FILE_ID_LEN];
	uint32_t key_id;
	char name[SEFILE_NAME_MAX + 1];
	char enc[SEFILE_ENCNAME_MAX + 1];
};

struct fs_namecache {
	pthread_mutex_t mu;
	struct fs_namecache_slot slot[NAMECACHE_SLOTS];
};

int fs_namecache_init(struct sekeyfs *fs)
{
	fs->names = calloc(1, sizeof(*fs->names));
	if (!fs->names)
		return -ENOMEM;
	if (pthread_mutex_init(&fs->names->mu, NULL) != 0) {
		free(fs->names);
		fs->names = NULL;
		return -ENOMEM;
	}
	return 0;
}

void fs_namecache_free(struct sekeyfs *fs)
{
	if (!fs->names)
		return;
	pthread_mutex_destroy(&fs->names->mu);
	OPENSSL_cleanse(fs->names, sizeof(*fs->names));
	free(fs->names);
	fs->names = NULL;
}

/* FNV-1a over the directory ID, the key and the name. */
static size_t slot_of(const struct fs_dirhdr *h, const char *name)
{
	uint64_t x = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < WIRE_FILE_ID_LEN; i++)
		x = (x ^ h->dir_id[i]) * 0x100000001b3ull;
	x = (x ^ h->name_key) * 0x100000001b3ull;
	for (; *name; name++)
		x = (x ^ (uint8_t)*name) * 0x100000001b3ull;
	return (size_t)(x ^ (x >> 29)) & (NAMECACHE_SLOTS - 1);
}

static int slot_matches(const struct fs_namecache_slot *s, const struct fs_dirhdr *h,
			const char *name)
{
	return s->used && s->key_id == h->name_key &&
	       memcmp(s->dir_id, h->dir_id, WIRE_FILE_ID_LEN) == 0 && strcmp(s->name, name) == 0;
}

int fs_namecache_get(struct sekeyfs *fs, const struct fs_dirhdr *h, const char *name,
		     struct fs_name *out)
{
	struct fs_namecache_slot *s;
	int hit;

	if (!fs->names || strlen(name) > SEFILE_NAME_MAX)
		return 0;
	s = &fs->names->slot[slot_of(h, name)];
	pthread_mutex_lock(&fs->names->mu);
	hit = slot_matches(s, h, name);
	if (hit) {
		memcpy(out->enc, s->enc, sizeof(out->enc));
		out->is_long = 0;
		out->full[0] = '\0';
	}
	pthread_mutex_unlock(&fs->names->mu);
	return hit;
}

void fs_namecache_put(struct sekeyfs *fs, const struct fs_dirhdr *h, const char *name,
		      const struct fs_name *n)
{
	struct fs_namecache_slot *s;

	if (!fs->names || n->is_long || strlen(name) > SEFILE_NAME_MAX ||
	    strlen(n->enc) > SEFILE_ENCNAME_MAX)
		return;
	s = &fs->names->slot[slot_of(h, name)];
	pthread_mutex_lock(&fs->names->mu);
	s->used = 1;
	memcpy(s->dir_id, h->dir_id, WIRE_FILE_ID_LEN);
	s->key_id = h->name_key;
	strcpy(s->name, name);
	strcpy(s->enc, n->enc);
	pthread_mutex_unlock(&fs->names->mu);
}
