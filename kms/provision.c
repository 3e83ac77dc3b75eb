/*
 * provision.c - user initialisation (thesis "user init", with the BRIEF's
 * departure): the admin cube and the user's cube agree the user's two
 * update-channel keys cube-to-cube (X25519 + HKDF inside each firmware;
 * the host passes only public keys, so no provisioning secret is ever in
 * clear), the user's cube gets its own non-exportable DB key, the user's
 * record gets the cube serial and key IDs, and the user's first update
 * (priority init: their whole view) is written.
 */
#include <stdio.h>
#include <string.h>

#include "../wire/buf.h"
#include "internal.h"
#include "update_format.h"

#define CTX_LABEL "sekey-update-v1"

/* Context of a user's channel keys: label || u32 user ID. */
static size_t channel_context(uint32_t user_id, uint8_t out[32])
{
	size_t n = strlen(CTX_LABEL);

	memcpy(out, CTX_LABEL, n);
	wire_le32(out + n, user_id);
	return n + 4;
}

/* (Re)derive one channel key as id in cube c for the peer. */
static int derive(struct kms *k, struct cube *c, const char *which, uint32_t id,
		  const uint8_t peer[WIRE_PUBKEY_LEN], uint8_t alg, uint8_t usage,
		  const uint8_t *ctx, size_t ctx_len)
{
	int rc = cube_key_destroy(c, id); /* re-provisioning replaces it */

	if (rc != CUBE_OK && rc != CUBE_ENOKEY)
		return kms_cube_fail(k, rc, which);
	rc = cube_channel_derive_key(c, id, peer, alg, usage, ctx, ctx_len);
	return rc == CUBE_OK ? KMS_OK : kms_cube_fail(k, rc, which);
}

/* The user's DB key: generated inside their cube, never exportable; an
 * existing one is kept (it encrypts their database). */
static int ensure_db_key(struct kms *k, struct cube *c)
{
	struct cube_key key = { .id = KMS_DB_KEY_ID, .alg = WIRE_ALG_AES256_GCM,
				.usage = WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT,
				.not_before = 0, .not_after = WIRE_TIME_NEVER };
	struct cube_key have;
	int rc = cube_key_info(c, KMS_DB_KEY_ID, &have);

	if (rc == CUBE_OK) {
		if (have.usage & WIRE_USE_EXPORTABLE)
			return kms_fail(k, KMS_EPERM, "the user's cube has an exportable key %u "
					"where its DB key belongs", KMS_DB_KEY_ID);
		return KMS_OK;
	}
	if (rc != CUBE_ENOKEY)
		return kms_cube_fail(k, rc, "read the user's DB key");
	rc = cube_key_generate(c, &key);
	return rc == CUBE_OK ? KMS_OK : kms_cube_fail(k, rc, "generate the user's DB key");
}

static int check_cubes(struct kms *k, struct cube *user_cube, struct cube_info *admin,
		       struct cube_info *user)
{
	int rc;

	if (!k->cube)
		return kms_fail(k, KMS_EPERM, "provisioning needs the admin cube");
	if (!user_cube)
		return kms_fail(k, KMS_EINVAL, "the user's cube is missing");
	if (!k->updates_dir)
		return kms_fail(k, KMS_EINVAL, "no updates folder (kms_set_updates_dir)");
	rc = cube_info(k->cube, admin);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "read the admin cube");
	rc = cube_info(user_cube, user);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "read the user's cube");
	if (user->role != WIRE_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "the user's cube must be logged in as admin");
	if (memcmp(admin->serial, user->serial, WIRE_SERIAL_LEN) == 0)
		return kms_fail(k, KMS_EINVAL, "the user's cube is the admin cube");
	return KMS_OK;
}

/* Both sides of both channel keys, and the user's DB key. */
static int agree_keys(struct kms *k, struct cube *user_cube, const struct cube_info *admin,
		      const struct cube_info *user, uint32_t user_id, uint32_t enc, uint32_t wrap)
{
	uint8_t ctx[32];
	size_t n = channel_context(user_id, ctx);
	int rc;

	rc = derive(k, k->cube, "update-encryption key in the admin cube", enc, user->pubkey,
		    WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT, ctx, n);
	if (!rc)
		rc = derive(k, k->cube, "update-wrapping key in the admin cube", wrap, user->pubkey,
			    WIRE_ALG_AES256_KW, WIRE_USE_WRAP, ctx, n);
	if (!rc)
		rc = derive(k, user_cube, "update-encryption key in the user's cube", enc,
			    admin->pubkey, WIRE_ALG_AES256_GCM, WIRE_USE_DECRYPT, ctx, n);
	if (!rc)
		rc = derive(k, user_cube, "update-wrapping key in the user's cube", wrap,
			    admin->pubkey, WIRE_ALG_AES256_KW, WIRE_USE_UNWRAP, ctx, n);
	if (!rc)
		rc = ensure_db_key(k, user_cube);
	return rc;
}

int kms_user_init(struct kms *k, struct cube *user_cube, uint32_t user_id)
{
	struct cube_info admin, user;
	struct kms_user u;
	char detail[160];
	uint32_t enc, wrap;
	int rc;

	k->msg[0] = '\0';
	if (k->role != KMS_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "this database is not the administrator's");
	if (user_id == 0 || user_id > KMS_USER_ID_MAX)
		return kms_fail(k, KMS_EINVAL, "user ID %u: 1..%u can be provisioned", user_id,
				KMS_USER_ID_MAX);
	rc = kms_user_info(k, user_id, &u);
	if (!rc)
		rc = check_cubes(k, user_cube, &admin, &user);
	if (rc)
		return rc;
	enc = KMS_CHANNEL_ID_BASE + 2 * user_id;
	wrap = enc + 1;
	/* Cube side first: derived keys are not journaled, but a failed
	 * provisioning leaves only keys the next attempt replaces. */
	rc = agree_keys(k, user_cube, &admin, &user, user_id, enc, wrap);
	if (rc)
		return rc;
	snprintf(detail, sizeof(detail), "user %u %s update key %u wrap key %u", user_id, u.name,
		 enc, wrap);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_run(k, ST_USER_SET_DEVICE, "ubuu", user_id, (const void *)user.serial,
		     (size_t)WIRE_SERIAL_LEN, enc, wrap);
	if (!rc) {
		k->track.full_user = user_id;
		k->track.full_priority = KMS_UPD_INIT;
	}
	return kms_change_end(k, rc, "user_init", detail);
}
