/*
 * audit.c - the hash-chained audit log.  Each record is
 *   (seq, time, op, result, detail, prev, hash)
 * with hash = SHA-256(prev || u64 seq || i64 time || i32 result ||
 * u32 len || op || u32 len || detail), integers little-endian, prev the
 * previous record's hash (zeros for the first).  The head (last seq and
 * hash) is kept in kms_meta in the same transaction, so removing the tail
 * is caught as well as removing, reordering or changing any record.
 * Confidentiality and integrity at rest come from the secure database.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"

#define OP_MAX (sizeof(((struct kms_audit_rec *)0)->op) - 1)
#define DETAIL_MAX (sizeof(((struct kms_audit_rec *)0)->detail) - 1)

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* hash of one record; op and detail within their caps. */
static int record_hash(const uint8_t prev[KMS_HASH_LEN], uint64_t seq, int64_t time, int result,
		       const char *op, size_t op_len, const char *detail, size_t det_len,
		       uint8_t out[KMS_HASH_LEN])
{
	uint8_t buf[KMS_HASH_LEN + 8 + 8 + 4 + 4 + OP_MAX + 4 + DETAIL_MAX];
	size_t n = 0;
	unsigned int md_len = 0;

	if (op_len > OP_MAX || det_len > DETAIL_MAX)
		return -1;
	memcpy(buf, prev, KMS_HASH_LEN);
	n = KMS_HASH_LEN;
	put_le(buf + n, seq, 8); n += 8;
	put_le(buf + n, (uint64_t)time, 8); n += 8;
	put_le(buf + n, (uint32_t)result, 4); n += 4;
	put_le(buf + n, op_len, 4); n += 4;
	memcpy(buf + n, op, op_len); n += op_len;
	put_le(buf + n, det_len, 4); n += 4;
	memcpy(buf + n, detail, det_len); n += det_len;
	if (EVP_Digest(buf, n, out, &md_len, EVP_sha256(), NULL) != 1 || md_len != KMS_HASH_LEN)
		return -1;
	return 0;
}

static int head_get(struct kms *k, uint64_t *seq, uint8_t hash[KMS_HASH_LEN])
{
	int64_t v;
	size_t len;
	int found;
	int rc = kms_meta_get(k, "audit_head", &v, hash, KMS_HASH_LEN, &len, &found);

	if (rc)
		return rc;
	if (!found) {
		*seq = 0;
		memset(hash, 0, KMS_HASH_LEN);
		return KMS_OK;
	}
	if (len != KMS_HASH_LEN || v < 0)
		return kms_fail(k, KMS_EAUDIT, "audit head malformed");
	*seq = (uint64_t)v;
	return KMS_OK;
}

int kms_audit_append(struct kms *k, const char *op, int result, const char *detail)
{
	uint8_t prev[KMS_HASH_LEN], hash[KMS_HASH_LEN];
	uint64_t seq;
	int64_t now = kms_now(k);
	size_t op_len = strlen(op), det_len = strlen(detail);
	int rc;

	if (op_len > OP_MAX)
		op_len = OP_MAX;
	if (det_len > DETAIL_MAX)
		det_len = DETAIL_MAX;
	rc = head_get(k, &seq, prev);
	if (rc)
		return rc;
	seq++;
	if (record_hash(prev, seq, now, result, op, op_len, detail, det_len, hash))
		return kms_fail(k, KMS_ENOMEM, "audit hash");
	{
		char op_c[OP_MAX + 1], det_c[DETAIL_MAX + 1];

		memcpy(op_c, op, op_len);
		op_c[op_len] = '\0';
		memcpy(det_c, detail, det_len);
		det_c[det_len] = '\0';
		rc = kms_run(k, ST_AUDIT_INSERT, "iititbb", (int64_t)seq, now, op_c, (int64_t)result,
			     det_c, (const void *)prev, (size_t)KMS_HASH_LEN, (const void *)hash,
			     (size_t)KMS_HASH_LEN);
	}
	if (rc == KMS_OK)
		rc = kms_meta_put(k, "audit_head", (int64_t)seq, hash, KMS_HASH_LEN);
	return rc;
}

int kms_audit_log(struct kms *k, const char *op, int result, const char *detail)
{
	int rc;

	if (!op || !*op || strlen(op) > OP_MAX || !detail)
		return kms_fail(k, KMS_EINVAL, "audit event needs an op of 1..%zu bytes", OP_MAX);
	if (k->in_change)
		return kms_fail(k, KMS_EINVAL, "a change is in progress");
	rc = kms_exec(k, "SAVEPOINT kms_audit");
	if (rc)
		return rc;
	rc = kms_audit_append(k, op, result, detail);
	if (rc == KMS_OK && sqlite3_exec(k->db, "RELEASE kms_audit", NULL, NULL, NULL) != SQLITE_OK)
		rc = kms_db_fail(k, "commit audit");
	if (rc) {
		sqlite3_exec(k->db, "ROLLBACK TO kms_audit", NULL, NULL, NULL);
		sqlite3_exec(k->db, "RELEASE kms_audit", NULL, NULL, NULL);
	}
	return rc;
}

/* Check one row against the running chain; advances prev. */
static int verify_row(struct kms *k, sqlite3_stmt *st, uint64_t want_seq,
		      uint8_t prev[KMS_HASH_LEN])
{
	uint8_t hash[KMS_HASH_LEN];
	uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
	const char *op = (const char *)sqlite3_column_text(st, 2);
	size_t op_len = (size_t)sqlite3_column_bytes(st, 2);
	const char *det = (const char *)sqlite3_column_text(st, 4);
	size_t det_len = (size_t)sqlite3_column_bytes(st, 4);
	const void *p = sqlite3_column_blob(st, 5);
	int p_len = sqlite3_column_bytes(st, 5);
	const void *h = sqlite3_column_blob(st, 6);
	int h_len = sqlite3_column_bytes(st, 6);

	if (seq != want_seq)
		return kms_fail(k, KMS_EAUDIT, "record %llu where %llu was due (removed or reordered)",
				(unsigned long long)seq, (unsigned long long)want_seq);
	if (!op || !det || p_len != KMS_HASH_LEN || h_len != KMS_HASH_LEN)
		return kms_fail(k, KMS_EAUDIT, "record %llu malformed", (unsigned long long)seq);
	if (CRYPTO_memcmp(p, prev, KMS_HASH_LEN) != 0)
		return kms_fail(k, KMS_EAUDIT, "record %llu does not follow its predecessor",
				(unsigned long long)seq);
	if (record_hash(prev, seq, sqlite3_column_int64(st, 1), (int)sqlite3_column_int64(st, 3),
			op, op_len, det, det_len, hash) ||
	    CRYPTO_memcmp(hash, h, KMS_HASH_LEN) != 0)
		return kms_fail(k, KMS_EAUDIT, "record %llu was modified", (unsigned long long)seq);
	memcpy(prev, hash, KMS_HASH_LEN);
	return KMS_OK;
}

int kms_audit_verify(struct kms *k, uint64_t *bad_seq)
{
	uint8_t prev[KMS_HASH_LEN] = { 0 }, head[KMS_HASH_LEN];
	uint64_t seq = 0, head_seq;
	sqlite3_stmt *st;
	int rc, step;

	if (bad_seq)
		*bad_seq = 0;
	rc = head_get(k, &head_seq, head);
	if (rc == KMS_EAUDIT && bad_seq)
		*bad_seq = 1; /* a malformed head: nothing from the first record on can be trusted */
	if (!rc)
		rc = kms_stmt(k, ST_AUDIT_ALL, &st);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		rc = verify_row(k, st, seq + 1, prev);
		if (rc)
			break;
		seq++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = kms_db_fail(k, "read audit");
	sqlite3_reset(st);
	if (!rc && (seq != head_seq || CRYPTO_memcmp(prev, head, KMS_HASH_LEN) != 0))
		rc = kms_fail(k, KMS_EAUDIT, "chain ends at record %llu, head says %llu "
				"(records removed from the end)", (unsigned long long)seq,
			      (unsigned long long)head_seq);
	if (rc == KMS_EAUDIT && bad_seq)
		*bad_seq = seq + 1;
	return rc;
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
	size_t n = src ? strlen((const char *)src) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

int kms_audit_list(struct kms *k, uint64_t from_seq, size_t max, struct kms_audit_rec **out,
		   size_t *n)
{
	struct kms_audit_rec *v;
	sqlite3_stmt *st;
	size_t cnt = 0;
	int rc, step = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if (max == 0)
		return KMS_OK;
	if (max > 1000000 || from_seq > INT64_MAX)
		return kms_fail(k, KMS_EINVAL, "audit list: at most 1000000 records");
	v = calloc(max, sizeof(*v));
	if (!v)
		return kms_fail(k, KMS_ENOMEM, "audit list");
	rc = kms_stmt(k, ST_AUDIT_FROM, &st);
	if (!rc)
		rc = kms_bind(k, st, "ii", (int64_t)from_seq, (int64_t)max);
	while (!rc && cnt < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
		v[cnt].seq = (uint64_t)sqlite3_column_int64(st, 0);
		v[cnt].time = sqlite3_column_int64(st, 1);
		copy_text(v[cnt].op, sizeof(v[cnt].op), sqlite3_column_text(st, 2));
		v[cnt].result = (int)sqlite3_column_int64(st, 3);
		copy_text(v[cnt].detail, sizeof(v[cnt].detail), sqlite3_column_text(st, 4));
		cnt++;
	}
	if (!rc && cnt < max && step != SQLITE_DONE)
		rc = kms_db_fail(k, "read audit");
	if (!rc)
		sqlite3_reset(st);
	if (rc || cnt == 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return KMS_OK;
}
