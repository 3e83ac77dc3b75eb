/*
 * lifecycle.c - the key life cycle of thesis section 4.2.1, exactly.
 *
 *   from \ to     pre-active active suspended deactivated compromised destroyed
 *   pre-active        -        yes      -          -           yes        yes
 *   active            -         -      yes        yes          yes        yes
 *   suspended         -        yes      -         yes          yes        yes
 *   deactivated       -         -       -          -           yes        yes
 *   compromised       -         -       -          -            -         yes
 *   destroyed         -         -       -          -            -          -
 *
 * Every state change goes through kms_key_move, which checks this table,
 * sets the time of the new state, and mirrors the state in the admin
 * cube's validity window (or destroys the value), so the cube refuses to
 * encrypt with any key that is not active.  Also: activation and expiry
 * (cryptoperiod = min(key's, policy's), fixed at creation), expiry
 * processing, and the use check (only active keys encrypt).
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const unsigned char allowed[KMS_KEY_DESTROYED + 1][KMS_KEY_DESTROYED + 1] = {
	[KMS_KEY_PREACTIVE] = { [KMS_KEY_ACTIVE] = 1, [KMS_KEY_COMPROMISED] = 1,
				[KMS_KEY_DESTROYED] = 1 },
	[KMS_KEY_ACTIVE] = { [KMS_KEY_SUSPENDED] = 1, [KMS_KEY_DEACTIVATED] = 1,
			     [KMS_KEY_COMPROMISED] = 1, [KMS_KEY_DESTROYED] = 1 },
	[KMS_KEY_SUSPENDED] = { [KMS_KEY_ACTIVE] = 1, [KMS_KEY_DEACTIVATED] = 1,
				[KMS_KEY_COMPROMISED] = 1, [KMS_KEY_DESTROYED] = 1 },
	[KMS_KEY_DEACTIVATED] = { [KMS_KEY_COMPROMISED] = 1, [KMS_KEY_DESTROYED] = 1 },
	[KMS_KEY_COMPROMISED] = { [KMS_KEY_DESTROYED] = 1 },
	[KMS_KEY_DESTROYED] = { 0 },
};

static int state_valid(int s)
{
	return s >= KMS_KEY_PREACTIVE && s <= KMS_KEY_DESTROYED;
}

int kms_transition_allowed(enum kms_key_state from, enum kms_key_state to)
{
	if (!state_valid((int)from) || !state_valid((int)to))
		return 0;
	return allowed[from][to];
}

const char *kms_state_name(enum kms_key_state s)
{
	switch (s) {
	case KMS_KEY_PREACTIVE: return "pre-active";
	case KMS_KEY_ACTIVE: return "active";
	case KMS_KEY_SUSPENDED: return "suspended";
	case KMS_KEY_DEACTIVATED: return "deactivated";
	case KMS_KEY_COMPROMISED: return "compromised";
	case KMS_KEY_DESTROYED: return "destroyed";
	default: return "invalid";
	}
}

uint32_t kms_minutes(int64_t t)
{
	int64_t m;

	if (t <= WIRE_EPOCH)
		return 0;
	m = (t - WIRE_EPOCH) / 60;
	return m >= (int64_t)WIRE_TIME_NEVER - 1 ? WIRE_TIME_NEVER - 1 : (uint32_t)m;
}

void kms_window(const struct kms_key *key, enum kms_key_state state, uint32_t *nb, uint32_t *na)
{
	switch (state) {
	case KMS_KEY_PREACTIVE: /* a window that has not begun */
		*nb = WIRE_TIME_NEVER - 1;
		*na = WIRE_TIME_NEVER;
		break;
	case KMS_KEY_ACTIVE:    /* [activation, expiry], minute granularity */
		*nb = kms_minutes(key->activated);
		*na = kms_minutes(key->expires);
		break;
	default:                /* over: decrypt only */
		*nb = 0;
		*na = 0;
		break;
	}
}

/* Set the new state's time; refuse what the table or the expiry forbids. */
static int next_times(struct kms *k, const struct kms_key *key, enum kms_key_state to,
		      int64_t now, struct kms_key *nk)
{
	*nk = *key;
	nk->state = to;
	switch (to) {
	case KMS_KEY_ACTIVE:
		if (key->state == KMS_KEY_PREACTIVE) {
			nk->activated = now;
			nk->expires = now + key->cryptoperiod;
		} else if (key->expires <= now) {
			return kms_fail(k, KMS_EEXPIRED, "key %u expired at %lld; it cannot be "
					"reactivated", key->id, (long long)key->expires);
		}
		break;
	case KMS_KEY_SUSPENDED: nk->suspended = now; break;
	case KMS_KEY_DEACTIVATED: nk->deactivated = now; break;
	case KMS_KEY_COMPROMISED: nk->compromised = now; break;
	case KMS_KEY_DESTROYED: nk->destroyed = now; break;
	default: break;
	}
	return KMS_OK;
}

int kms_key_move(struct kms *k, const struct kms_key *key, enum kms_key_state to, int64_t now)
{
	struct kms_key nk;
	uint32_t nb, na;
	int rc;

	if (!kms_transition_allowed(key->state, to))
		return kms_fail(k, KMS_ETRANSITION, "key %u: %s -> %s is not allowed", key->id,
				kms_state_name(key->state), kms_state_name(to));
	rc = next_times(k, key, to, now, &nk);
	if (!rc)
		rc = kms_run(k, ST_KEY_SET_STATE, "uiiiiiii", key->id, (int64_t)to, nk.activated,
			     nk.expires, nk.suspended, nk.deactivated, nk.compromised, nk.destroyed);
	if (!rc)
		rc = kms_track_key(k, key->id);
	if (rc)
		return rc;
	if (to == KMS_KEY_DESTROYED)
		return kms_cube_destroy_later(k, key->id);
	kms_window(&nk, to, &nb, &na);
	return kms_cube_window(k, key->id, nb, na);
}

static int change_state(struct kms *k, uint32_t key_id, enum kms_key_state to, const char *op)
{
	char detail[96];
	struct kms_key key;
	int rc;

	snprintf(detail, sizeof(detail), "key %u -> %s", key_id, kms_state_name(to));
	if (!state_valid((int)to))
		return kms_fail(k, KMS_EINVAL, "state %d", (int)to);
	rc = kms_change_begin(k);
	if (rc)
		return rc;
	rc = kms_key_load(k, key_id, &key);
	if (!rc) {
		snprintf(detail, sizeof(detail), "key %u %s -> %s", key_id,
			 kms_state_name(key.state), kms_state_name(to));
		rc = kms_key_move(k, &key, to, kms_now(k));
	}
	rc = kms_change_end(k, rc, op, detail);
	if (!rc)
		kms_ix_after(k, NULL, 0, &key.group_id, 1);
	return rc;
}

int kms_activate_key(struct kms *k, uint32_t key_id)
{
	return change_state(k, key_id, KMS_KEY_ACTIVE, "activate_key");
}

int kms_set_key_state(struct kms *k, uint32_t key_id, enum kms_key_state state)
{
	return change_state(k, key_id, state, "set_key_state");
}

/* Deactivate the expired keys in ids (one change); their groups in gids. */
static int deactivate_expired(struct kms *k, const uint32_t *ids, size_t n, uint32_t *gids)
{
	int rc = KMS_OK;

	for (size_t i = 0; !rc && i < n; i++) {
		struct kms_key key;

		rc = kms_key_load(k, ids[i], &key);
		/* Deactivated at the moment it stopped being usable. */
		if (!rc)
			rc = kms_key_move(k, &key, KMS_KEY_DEACTIVATED, key.expires);
		gids[i] = key.group_id;
	}
	return rc;
}

int kms_expired_check(struct kms *k, int64_t now, uint32_t *n_expired)
{
	char detail[64];
	uint32_t *ids = NULL, *gids = NULL;
	size_t n = 0;
	int rc;

	if (n_expired)
		*n_expired = 0;
	k->msg[0] = '\0';
	if (k->role != KMS_ROLE_ADMIN)
		return kms_fail(k, KMS_EPERM, "this database is not the administrator's");
	rc = kms_ids(k, ST_KEY_EXPIRED, &ids, &n, "i", now);
	if (rc || n == 0)
		return rc;
	gids = calloc(n, sizeof(*gids));
	if (!gids) {
		free(ids);
		return kms_fail(k, KMS_ENOMEM, "expired check");
	}
	snprintf(detail, sizeof(detail), "%zu keys expired at %lld", n, (long long)now);
	rc = kms_change_begin(k);
	if (!rc)
		rc = deactivate_expired(k, ids, n, gids);
	rc = kms_change_end(k, rc, "expired_check", detail);
	if (!rc) {
		kms_ix_after(k, NULL, 0, gids, n);
		if (n_expired)
			*n_expired = (uint32_t)n;
	}
	free(ids);
	free(gids);
	return rc;
}

int kms_key_check_use(struct kms *k, uint32_t key_id, enum kms_use use)
{
	char detail[64];
	struct kms_key key;
	int rc = kms_key_load(k, key_id, &key);

	if (rc)
		return rc;
	if (use == KMS_USE_ENCRYPT) {
		if (k->locked)
			return kms_fail(k, KMS_ELOCKED, "this KMS is locked: no new encryption "
					"until a recovery update");
		if (key.state != KMS_KEY_ACTIVE)
			return kms_fail(k, KMS_EKEYSTATE, "key %u is %s: only active keys encrypt",
					key_id, kms_state_name(key.state));
		if (key.expires <= kms_now(k))
			return kms_fail(k, KMS_EEXPIRED, "key %u expired at %lld", key_id,
					(long long)key.expires);
		return KMS_OK;
	}
	if (use != KMS_USE_DECRYPT)
		return kms_fail(k, KMS_EINVAL, "use %d", (int)use);
	if (key.state == KMS_KEY_PREACTIVE || key.state == KMS_KEY_DESTROYED)
		return kms_fail(k, KMS_EKEYSTATE, "key %u is %s: it decrypts nothing", key_id,
				kms_state_name(key.state));
	if (key.state == KMS_KEY_COMPROMISED) {
		/* Allowed, so data can be rescued and re-encrypted, but recorded;
		 * if the warning cannot be recorded the use is refused. */
		snprintf(detail, sizeof(detail), "decrypt with compromised key %u", key_id);
		return kms_audit_log(k, "warn_compromised", KMS_OK, detail);
	}
	return KMS_OK;
}
