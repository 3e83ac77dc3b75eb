/*
 * fuzz_kms_audit.c - libFuzzer target for the audit chain verifier
 * (kms_audit_verify, kms/audit.c) on a metadata-only KMS over an
 * in-memory plain SQLite database: no cube is needed to read the chain.
 *
 * Input: u8 count || count records (u8 op_len, op, u8 det_len, detail,
 * u8 result) appended through kms_audit_log || a script of raw SQL
 * changes an attacker with write access to the database could make:
 * set a column of a record (as an integer, text, blob or NULL), delete a
 * record, insert a forged one, move the head (kms_meta audit_head).
 *
 * Oracle: verify reads each row through the same column accessors as a
 * "view" (seq, time, op bytes, (int)result, detail bytes, prev, hash) and
 * the head; verify must be KMS_OK exactly when that view equals the one of
 * the chain as appended, else KMS_EAUDIT with bad_seq in 1..rows + 1
 * (KMS_ESCHEMA for a head value longer than a hash; bad_seq 0 when the
 * head itself is malformed, as kms/audit.c does: found by this target).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "kms/kms.h"
#include "wire/buf.h"

#define RECORDS_MAX 8
#define SCRIPT_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *p;
	size_t left;
};

static int take(struct input *in, const uint8_t **out, size_t n)
{
	if (in->left < n)
		return -1;
	*out = in->p;
	in->p += n;
	in->left -= n;
	return 0;
}

static int take_u8(struct input *in, uint8_t *v)
{
	const uint8_t *p;

	if (take(in, &p, 1))
		return -1;
	*v = *p;
	return 0;
}

static int64_t fixed_clock(void *arg)
{
	(void)arg;
	return 1700000000;
}

/* SHA-256 over what verify reads: every row through its accessors, then the head. */
static void chain_view(sqlite3 *db, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	sqlite3_stmt *st = NULL;
	unsigned int len = 0;
	int i;

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    sqlite3_prepare_v2(db, "SELECT seq, time, op, result, detail, prev, hash FROM kms_audit "
			       "ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
		abort();
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t ints[3] = { sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
				    (int)sqlite3_column_int64(st, 3) };

		EVP_DigestUpdate(md, ints, sizeof(ints));
		for (i = 2; i <= 6; i++) {
			const void *v = i == 2 || i == 4 ? (const void *)sqlite3_column_text(st, i)
							 : sqlite3_column_blob(st, i);
			int64_t n = v ? sqlite3_column_bytes(st, i) : -1;

			if (i == 3)
				continue;
			EVP_DigestUpdate(md, &n, sizeof(n));
			if (n > 0)
				EVP_DigestUpdate(md, v, (size_t)n);
		}
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT ival, bval FROM kms_meta WHERE key='audit_head'", -1,
			       &st, NULL) != SQLITE_OK)
		abort();
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t ival = sqlite3_column_int64(st, 0);
		const void *b = sqlite3_column_blob(st, 1);
		int64_t n = b ? sqlite3_column_bytes(st, 1) : -1;

		EVP_DigestUpdate(md, "|", 1);
		EVP_DigestUpdate(md, &ival, sizeof(ival));
		EVP_DigestUpdate(md, &n, sizeof(n));
		if (n > 0)
			EVP_DigestUpdate(md, b, (size_t)n);
	}
	sqlite3_finalize(st);
	if (EVP_DigestFinal_ex(md, out, &len) != 1 || len != 32)
		abort();
	EVP_MD_CTX_free(md);
}

static int64_t row_count(sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM kms_audit", -1, &st, NULL) != SQLITE_OK)
		abort();
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* 1 iff the head row is there but is not (seq >= 0, 32-byte hash). */
static int head_malformed(sqlite3 *db)
{
	sqlite3_stmt *st;
	int bad = 0;

	if (sqlite3_prepare_v2(db, "SELECT ival, bval FROM kms_meta WHERE key='audit_head'", -1,
			       &st, NULL) != SQLITE_OK)
		abort();
	if (sqlite3_step(st) == SQLITE_ROW)
		bad = sqlite3_column_int64(st, 0) < 0 || sqlite3_column_bytes(st, 1) != 32;
	sqlite3_finalize(st);
	return bad;
}

/* Bind a value of the type the input picks: integer, text, blob, NULL. */
static int bind_value(sqlite3_stmt *st, int idx, struct input *in)
{
	const uint8_t *p;
	uint8_t type, n;

	if (take_u8(in, &type) || take_u8(in, &n) || take(in, &p, n % 48))
		return -1;
	switch (type % 4) {
	case 0: {
		uint8_t b[8] = { 0 };

		memcpy(b, p, n % 48 < 8 ? n % 48 : 8);
		return sqlite3_bind_int64(st, idx, (int64_t)wire_rd64(b));
	}
	case 1:
		return sqlite3_bind_text(st, idx, (const char *)p, n % 48, SQLITE_TRANSIENT);
	case 2:
		return sqlite3_bind_blob(st, idx, p, n % 48, SQLITE_TRANSIENT);
	default:
		return sqlite3_bind_null(st, idx);
	}
}

/* One raw change; a statement SQLite refuses (constraints) changes nothing. */
static int tamper(sqlite3 *db, struct input *in)
{
	static const char *const sql[] = {
		"UPDATE kms_audit SET seq=?1 WHERE seq=?2",
		"UPDATE kms_audit SET time=?1 WHERE seq=?2",
		"UPDATE kms_audit SET op=?1 WHERE seq=?2",
		"UPDATE kms_audit SET result=?1 WHERE seq=?2",
		"UPDATE kms_audit SET detail=?1 WHERE seq=?2",
		"UPDATE kms_audit SET prev=?1 WHERE seq=?2",
		"UPDATE kms_audit SET hash=?1 WHERE seq=?2",
		"DELETE FROM kms_audit WHERE seq=?2 OR ?1 IS NULL",
		("INSERT INTO kms_audit(seq,time,op,result,detail,prev,hash) "
		 "SELECT ?2,time,?1,result,detail,prev,hash FROM kms_audit WHERE seq=1"),
		"UPDATE kms_meta SET ival=?1 WHERE key='audit_head' AND ?2 IS NOT NULL",
		"UPDATE kms_meta SET bval=?1 WHERE key='audit_head' AND ?2 IS NOT NULL",
		"UPDATE kms_audit SET prev=(SELECT hash FROM kms_audit WHERE seq=?1) WHERE seq=?2",
	};
	sqlite3_stmt *st;
	uint8_t which, seq;
	int rc;

	if (take_u8(in, &which) || take_u8(in, &seq))
		return -1;
	if (sqlite3_prepare_v2(db, sql[which % (sizeof(sql) / sizeof(sql[0]))], -1, &st, NULL) !=
	    SQLITE_OK)
		abort();
	rc = bind_value(st, 1, in);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, seq % (RECORDS_MAX + 2));
	if (rc == SQLITE_OK)
		(void)sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

static int append_records(struct kms *k, struct input *in)
{
	char op[40], det[300];
	const uint8_t *p;
	uint8_t count, n, result;
	int i;

	if (take_u8(in, &count))
		return -1;
	for (i = 0; i < count % (RECORDS_MAX + 1); i++) {
		if (take_u8(in, &n) || take(in, &p, n % 32))
			return -1;
		memcpy(op, p, n % 32);
		op[n % 32] = '\0';
		if (take_u8(in, &n) || take(in, &p, n))
			return -1;
		memcpy(det, p, n);
		det[n] = '\0';
		if (take_u8(in, &result))
			return -1;
		/* An empty op is refused (KMS_EINVAL) and appends nothing. */
		if (kms_audit_log(k, op[0] ? op : "op", -(int)(result % 20), det) != KMS_OK)
			abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint8_t before[32], after[32];
	struct kms *k = NULL;
	sqlite3 *db = NULL;
	uint64_t bad = 0;
	int rc, i;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    kms_open(&k, db, NULL, NULL, 0) != KMS_OK)
		abort();
	kms_set_clock(k, fixed_clock, NULL);
	(void)append_records(k, &in);
	if (kms_audit_verify(k, &bad) != KMS_OK || bad != 0)
		abort();
	chain_view(db, before);
	for (i = 0; i < SCRIPT_MAX && tamper(db, &in) == 0; i++)
		;
	chain_view(db, after);
	rc = kms_audit_verify(k, &bad);
	if (memcmp(before, after, sizeof(before)) == 0) {
		if (rc != KMS_OK || bad != 0)
			abort();
	} else {
		/* A head value over 32 bytes is refused as a schema error; a
		 * malformed head is KMS_EAUDIT naming record 1 (nothing can be
		 * trusted from there on). */
		int head_refused = rc == KMS_ESCHEMA ||
				   (rc == KMS_EAUDIT && bad == 1 && head_malformed(db));

		if (!head_refused &&
		    (rc != KMS_EAUDIT || bad < 1 || (int64_t)bad > row_count(db) + 1))
			abort();
	}
	kms_close(k);
	sqlite3_close(db);
	return 0;
}
