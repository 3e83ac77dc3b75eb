/*
 * cubeops.c - the cube side of a KMS change.  Every cube call a change
 * makes is journaled so that, if a later step fails, the change is undone
 * in the cube as well as in the database: a generated key is destroyed
 * again, a changed validity window is put back.  Destruction cannot be
 * undone, so destroys are queued and run last, just before the commit;
 * a key the cube no longer has counts as destroyed (a retried destroy
 * converges).  Without a cube (metadata-only handle) these do nothing.
 */
#include <stdlib.h>

#include "internal.h"

static int journal_push(struct kms *k, const struct kms_undo *u)
{
	struct kms_undo *nv;

	if (k->n_undo == k->cap_undo) {
		size_t cap = k->cap_undo ? k->cap_undo * 2 : 8;

		nv = realloc(k->undo, cap * sizeof(*nv));
		if (!nv)
			return kms_fail(k, KMS_ENOMEM, "cube journal");
		k->undo = nv;
		k->cap_undo = cap;
	}
	k->undo[k->n_undo++] = *u;
	return KMS_OK;
}

int kms_cube_generate(struct kms *k, uint32_t key_id, uint8_t alg)
{
	struct cube_key ck = { .id = key_id, .alg = alg, .usage = KMS_KEY_USAGE };
	struct kms_undo u = { .key_id = key_id, .generated = 1 };
	int rc;

	if (!k->cube)
		return KMS_OK;
	/* Born pre-active: a window that has not begun, so no encryption. */
	kms_window(NULL, KMS_KEY_PREACTIVE, &ck.not_before, &ck.not_after);
	rc = journal_push(k, &u); /* room first: a generated key is always undoable */
	if (rc)
		return rc;
	k->n_undo--;
	rc = cube_key_generate(k->cube, &ck);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "generate key in the admin cube");
	k->n_undo++;
	return KMS_OK;
}

int kms_cube_has_key(struct kms *k, uint32_t key_id, int *has)
{
	struct cube_key ck;
	int rc;

	*has = 0;
	if (!k->cube)
		return KMS_OK;
	rc = cube_key_info(k->cube, key_id, &ck);
	if (rc == CUBE_OK)
		*has = 1;
	else if (rc != CUBE_ENOKEY)
		return kms_cube_fail(k, rc, "look up a key in the admin cube");
	return KMS_OK;
}

int kms_cube_window(struct kms *k, uint32_t key_id, uint32_t not_before, uint32_t not_after)
{
	struct cube_key old;
	struct kms_undo u = { .key_id = key_id };
	int rc;

	if (!k->cube)
		return KMS_OK;
	rc = cube_key_info(k->cube, key_id, &old);
	if (rc != CUBE_OK)
		return kms_cube_fail(k, rc, "read key attributes in the admin cube");
	u.not_before = old.not_before;
	u.not_after = old.not_after;
	rc = journal_push(k, &u);
	if (rc)
		return rc;
	rc = cube_key_set_attrs(k->cube, key_id, old.usage, not_before, not_after);
	if (rc != CUBE_OK) {
		k->n_undo--;
		return kms_cube_fail(k, rc, "set key validity in the admin cube");
	}
	return KMS_OK;
}

int kms_cube_destroy_later(struct kms *k, uint32_t key_id)
{
	uint32_t *nv;

	if (!k->cube)
		return KMS_OK;
	if (k->n_destroy == k->cap_destroy) {
		size_t cap = k->cap_destroy ? k->cap_destroy * 2 : 8;

		nv = realloc(k->destroy, cap * sizeof(*nv));
		if (!nv)
			return kms_fail(k, KMS_ENOMEM, "destroy queue");
		k->destroy = nv;
		k->cap_destroy = cap;
	}
	k->destroy[k->n_destroy++] = key_id;
	return KMS_OK;
}

int kms_cube_run_destroys(struct kms *k)
{
	for (size_t i = 0; i < k->n_destroy; i++) {
		int rc = cube_key_destroy(k->cube, k->destroy[i]);

		if (rc != CUBE_OK && rc != CUBE_ENOKEY)
			return kms_cube_fail(k, rc, "destroy key in the admin cube");
	}
	k->n_destroy = 0;
	return KMS_OK;
}

void kms_cube_undo(struct kms *k)
{
	/* Best effort in reverse order: the database is already rolled back;
	 * a failure here leaves a key the database does not name (generated)
	 * or a window narrower/wider than the state, which the next change of
	 * that key rewrites. */
	while (k->n_undo > 0) {
		const struct kms_undo *u = &k->undo[--k->n_undo];

		if (u->generated)
			cube_key_destroy(k->cube, u->key_id);
		else
			cube_key_set_attrs(k->cube, u->key_id, KMS_KEY_USAGE, u->not_before,
					   u->not_after);
	}
	k->n_destroy = 0;
}

void kms_cube_journal_free(struct kms *k)
{
	free(k->undo);
	free(k->destroy);
	k->undo = NULL;
	k->destroy = NULL;
	k->n_undo = k->cap_undo = k->n_destroy = k->cap_destroy = 0;
}
