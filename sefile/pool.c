/*
 * pool.c - a pool of logged-in cube connections shared by every SEfile
 * file of a process.  A struct cube is not thread-safe, so a thread
 * borrows one connection (with its scratch buffers) for one operation and
 * gives it back; with n connections n threads seal and open at once.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sefile_impl.h"

static void conn_free_buffers(struct sefile_conn *cn)
{
	if (cn->plain) {
		OPENSSL_cleanse(cn->plain, CONN_PLAIN_CAP);
		free(cn->plain);
	}
	if (cn->rmw) {
		OPENSSL_cleanse(cn->rmw, 3 * (size_t)SECTOR_MAX);
		free(cn->rmw);
	}
	free(cn->sealed);
	free(cn->secs);
	free(cn->where);
	free(cn->bad);
	free(cn->redo);
	memset(cn, 0, sizeof(*cn));
}

static int conn_alloc_buffers(struct sefile_conn *cn)
{
	cn->sealed = malloc(CONN_SEALED_CAP);
	cn->plain = malloc(CONN_PLAIN_CAP);
	cn->rmw = malloc(3 * (size_t)SECTOR_MAX);
	cn->secs = calloc(CONN_SECS_CAP, sizeof(*cn->secs));
	cn->where = calloc(CONN_SECS_CAP, sizeof(*cn->where));
	cn->bad = calloc(CONN_SECS_CAP, 1);
	cn->redo = malloc(REDO_CAP);
	if (!cn->sealed || !cn->plain || !cn->rmw || !cn->secs || !cn->where || !cn->bad ||
	    !cn->redo)
		return seterr(SEFILE_ENOMEM, "out of memory for cube connection buffers");
	return SEFILE_OK;
}

static int pool_new(struct sefile_cube **out, unsigned n, int owned)
{
	struct sefile_cube *p;
	unsigned i;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return seterr(SEFILE_ENOMEM, "out of memory for the cube pool");
	p->conns = calloc(n, sizeof(*p->conns));
	if (!p->conns) {
		free(p);
		return seterr(SEFILE_ENOMEM, "out of memory for the cube pool");
	}
	p->n = n;
	p->owned = owned;
	atomic_init(&p->requests, 0);
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p->conns);
		free(p);
		return seterr(SEFILE_ENOMEM, "cannot create the pool mutex");
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p->conns);
		free(p);
		return seterr(SEFILE_ENOMEM, "cannot create the pool condition");
	}
	for (i = 0; i < n; i++) {
		if (conn_alloc_buffers(&p->conns[i]) != SEFILE_OK) {
			sefile_cube_close(p);
			return SEFILE_ENOMEM;
		}
	}
	*out = p;
	return SEFILE_OK;
}

int sefile_cube_open(struct sefile_cube **out, const char *spec, enum wire_role role,
		     const char *pin, unsigned n, char *err, size_t err_cap)
{
	struct sefile_cube *p;
	unsigned i;
	int rc;

	*out = NULL;
	if (err && err_cap)
		err[0] = '\0';
	if (!spec || !pin || n == 0 || n > 64) {
		if (err && err_cap)
			snprintf(err, err_cap, "bad pool arguments");
		return seterr(SEFILE_EINVAL, "bad pool arguments");
	}
	rc = pool_new(&p, n, 1);
	if (rc != SEFILE_OK) {
		if (err && err_cap)
			snprintf(err, err_cap, "%s", sefile_errmsg());
		return rc;
	}
	for (i = 0; i < n; i++) {
		struct cube *c = NULL;
		char why[200] = "";

		rc = cube_open(&c, spec, why, sizeof(why));
		if (rc == CUBE_OK) {
			rc = cube_login(c, role, pin);
			if (rc != CUBE_OK)
				snprintf(why, sizeof(why), "login: %s", cube_errmsg(c));
		}
		if (rc != CUBE_OK) {
			if (c)
				cube_close(c);
			if (err && err_cap)
				snprintf(err, err_cap, "%s", why);
			seterr(SEFILE_ECUBE, "cube %s: %s", spec, why);
			sefile_cube_close(p);
			rc = map_cube_err(rc);
			return rc == SEFILE_EINTEGRITY ? SEFILE_ECUBE : rc;
		}
		p->conns[i].c = c;
	}
	*out = p;
	return SEFILE_OK;
}

int sefile_cube_wrap(struct sefile_cube **out, struct cube *c)
{
	int rc;

	*out = NULL;
	if (!c)
		return seterr(SEFILE_EINVAL, "no cube to wrap");
	rc = pool_new(out, 1, 0);
	if (rc == SEFILE_OK)
		(*out)->conns[0].c = c;
	return rc;
}

void sefile_cube_close(struct sefile_cube *pool)
{
	unsigned i;

	if (!pool)
		return;
	for (i = 0; i < pool->n; i++) {
		if (pool->owned && pool->conns[i].c)
			cube_close(pool->conns[i].c);
		conn_free_buffers(&pool->conns[i]);
	}
	free(pool->conns);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}

struct sefile_conn *conn_get(struct sefile_cube *pool)
{
	struct sefile_conn *cn = NULL;
	unsigned i;

	pthread_mutex_lock(&pool->mu);
	for (;;) {
		for (i = 0; i < pool->n; i++) {
			if (!pool->conns[i].busy) {
				cn = &pool->conns[i];
				break;
			}
		}
		if (cn)
			break;
		pthread_cond_wait(&pool->cv, &pool->mu);
	}
	cn->busy = 1;
	pthread_mutex_unlock(&pool->mu);
	return cn;
}

void conn_put(struct sefile_cube *pool, struct sefile_conn *cn)
{
	if (!cn)
		return;
	pthread_mutex_lock(&pool->mu);
	cn->busy = 0;
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

struct cube *sefile_cube_get(struct sefile_cube *pool)
{
	return conn_get(pool)->c;
}

void sefile_cube_put(struct sefile_cube *pool, struct cube *c)
{
	unsigned i;

	for (i = 0; i < pool->n; i++) {
		if (pool->conns[i].c == c) {
			conn_put(pool, &pool->conns[i]);
			return;
		}
	}
}

uint64_t sefile_cube_requests(struct sefile_cube *pool)
{
	return (uint64_t)atomic_load(&pool->requests);
}

static int cube_failed(struct sefile_conn *cn, int rc, const char *what, const struct sefile_info *id)
{
	int code = map_cube_err(rc);

	if (code == SEFILE_ENOKEY)
		return seterr(code, "%s: key %u cannot be used: %s", what, id->key_id, cube_errmsg(cn->c));
	if (code == SEFILE_EKEYEXPIRED)
		return seterr(code, "%s: key %u is outside its validity window", what, id->key_id);
	return seterr(code, "%s: cube: %s", what, cube_errmsg(cn->c));
}

int conn_seal(struct sefile_cube *pool, struct sefile_conn *cn, const struct sefile_info *id,
	      uint32_t n, const uint8_t *in, uint8_t *out)
{
	int rc;

	atomic_fetch_add(&pool->requests, 1);
	rc = cube_seal(cn->c, id->key_id, id->alg, id->file_id, cn->secs, n, in, out);
	if (rc != CUBE_OK) {
		rc = cube_failed(cn, rc, "seal", id);
		/* A seal never fails authentication; do not let it pass for EIO-on-tamper. */
		return rc == SEFILE_EINTEGRITY ? SEFILE_ECUBE : rc;
	}
	return SEFILE_OK;
}

int conn_open(struct sefile_cube *pool, struct sefile_conn *cn, const struct sefile_info *id,
	      uint32_t n, const uint8_t *in, uint8_t *out, int *any_bad)
{
	int rc;

	*any_bad = 0;
	atomic_fetch_add(&pool->requests, 1);
	rc = cube_open_sectors(cn->c, id->key_id, id->alg, id->file_id, cn->secs, n, in, out, cn->bad);
	if (rc == CUBE_EINTEGRITY) {
		*any_bad = 1;
		return SEFILE_OK;
	}
	if (rc != CUBE_OK)
		return cube_failed(cn, rc, "open", id);
	return SEFILE_OK;
}
