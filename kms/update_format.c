/*
 * update_format.c - the update file format as pure functions: header pack
 * and parse, the file ID binding the header to the sealed body, file
 * names, the record stream and every record value (read and write).  No
 * I/O, no cube, no allocation: the fuzzer drives the parsers directly.
 * Layout: docs/UPDATES.md.
 */
#include "update_format.h"

#include <openssl/evp.h>
#include <string.h>

#include "../wire/buf.h"

#define FILE_ID_LABEL "sekey-update-v1"
#define NAME_DIGITS 16

void kms_upd_header_pack(const struct kms_upd_header *h, uint8_t out[KMS_UPD_HEADER_LEN])
{
	memcpy(out, KMS_UPD_MAGIC, 4);
	out[4] = h->version;
	out[5] = h->priority;
	out[6] = 0;
	out[7] = 0;
	memcpy(out + 8, h->serial, WIRE_SERIAL_LEN);
	wire_le64(out + 24, h->counter);
	wire_le32(out + 32, h->enc_key_id);
	wire_le32(out + 36, h->wrap_key_id);
	wire_le32(out + 40, h->body_len);
}

int kms_upd_header_parse(const uint8_t *in, size_t len, struct kms_upd_header *h)
{
	memset(h, 0, sizeof(*h));
	if (!in || len < KMS_UPD_HEADER_LEN || memcmp(in, KMS_UPD_MAGIC, 4) != 0)
		return -1;
	h->version = in[4];
	h->priority = in[5];
	memcpy(h->serial, in + 8, WIRE_SERIAL_LEN);
	h->counter = wire_rd64(in + 24);
	h->enc_key_id = wire_rd32(in + 32);
	h->wrap_key_id = wire_rd32(in + 36);
	h->body_len = wire_rd32(in + 40);
	if (h->version != KMS_UPD_VERSION || in[6] || in[7])
		return -1;
	if (h->priority < KMS_UPD_STANDARD || h->priority > KMS_UPD_INIT)
		return -1;
	if (h->counter == 0 || h->body_len == 0 || h->body_len > KMS_UPD_BODY_MAX)
		return -1;
	return 0;
}

uint64_t kms_upd_sealed_len(uint32_t body_len, uint32_t *n_sectors)
{
	uint32_t n = (uint32_t)(((uint64_t)body_len + KMS_UPD_SECTOR - 1) / KMS_UPD_SECTOR);

	if (n_sectors)
		*n_sectors = n;
	return (uint64_t)body_len + (uint64_t)n * WIRE_SECTOR_OVERHEAD;
}

int kms_upd_file_id(const struct kms_upd_header *h, uint8_t file_id[WIRE_FILE_ID_LEN])
{
	uint8_t packed[KMS_UPD_HEADER_LEN], md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -1;
	kms_upd_header_pack(h, packed);
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, FILE_ID_LABEL, strlen(FILE_ID_LABEL)) == 1 &&
	     EVP_DigestUpdate(ctx, packed, sizeof(packed)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len >= WIRE_FILE_ID_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	memcpy(file_id, md, WIRE_FILE_ID_LEN);
	return 0;
}

void kms_upd_name(uint64_t counter, char name[KMS_UPD_NAME_LEN + 1])
{
	/* Fixed width so names sort as numbers. */
	for (int i = NAME_DIGITS - 1; i >= 0; i--) {
		name[i] = (char)('0' + counter % 10);
		counter /= 10;
	}
	memcpy(name + NAME_DIGITS, ".upd", 5);
}

int kms_upd_name_parse(const char *name, uint64_t *counter)
{
	uint64_t v = 0;

	*counter = 0;
	if (!name || strlen(name) != KMS_UPD_NAME_LEN || strcmp(name + NAME_DIGITS, ".upd") != 0)
		return -1;
	for (int i = 0; i < NAME_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(name[i] - '0'); /* 16 digits cannot overflow */
	}
	if (v == 0)
		return -1;
	*counter = v;
	return 0;
}

int kms_upd_name_is_debris(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0)
		return 0;
	return name[0] == '.' || strstr(name, ".sync-conflict") != NULL || name[n - 1] == '~' ||
	       strstr(name, ".syncthing.") != NULL;
}

/* ---- record stream ---- */

int kms_upd_next(const uint8_t *body, size_t len, size_t *pos, uint64_t counter,
		 struct kms_upd_rec *rec)
{
	struct wbuf b;

	memset(rec, 0, sizeof(*rec));
	if (*pos == len)
		return 0;
	if (*pos > len)
		return -1;
	wbuf_reader(&b, body + *pos, len - *pos);
	wbuf_get_u16(&b, &rec->type);
	wbuf_get_u64(&b, &rec->counter);
	wbuf_get_u32(&b, &rec->len);
	wbuf_get_span(&b, &rec->value, rec->len);
	if (!wbuf_ok(&b) || rec->type < 1 || rec->type > KMS_REC_TYPE_MAX || rec->counter != counter)
		return -1;
	*pos += b.pos;
	return 1;
}

/* A name: lenbytes of 0..63 bytes, no NUL, into a C string. */
static int get_name(struct wbuf *b, char out[64], int allow_empty)
{
	const uint8_t *p;
	uint32_t n;

	out[0] = '\0';
	if (wbuf_get_lenbytes(b, &p, &n, 63) != 0 || (!allow_empty && n == 0) || memchr(p, 0, n))
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int get_i64(struct wbuf *b, int64_t *v)
{
	uint64_t u;
	int rc = wbuf_get_u64(b, &u);

	*v = (int64_t)u;
	return rc;
}

int kms_upd_parse_self(const struct kms_upd_rec *r, struct kms_upd_self *out)
{
	struct wbuf b;

	memset(out, 0, sizeof(*out));
	if (r->type != KMS_REC_SELF)
		return -1;
	wbuf_reader(&b, r->value, r->len);
	wbuf_get_u32(&b, &out->user_id);
	if (get_name(&b, out->name, 0) != 0)
		return -1;
	wbuf_get_u32(&b, &out->db_key_id);
	return wbuf_done(&b) && out->user_id ? 0 : -1;
}

int kms_upd_parse_user(const struct kms_upd_rec *r, struct kms_upd_user *out)
{
	struct wbuf b;

	memset(out, 0, sizeof(*out));
	if (r->type != KMS_REC_USER)
		return -1;
	wbuf_reader(&b, r->value, r->len);
	wbuf_get_u32(&b, &out->id);
	if (get_name(&b, out->name, 0) != 0)
		return -1;
	return wbuf_done(&b) && out->id ? 0 : -1;
}

int kms_upd_parse_group(const struct kms_upd_rec *r, struct kms_upd_group *out)
{
	struct wbuf b;

	memset(out, 0, sizeof(*out));
	if (r->type != KMS_REC_GROUP)
		return -1;
	wbuf_reader(&b, r->value, r->len);
	wbuf_get_u32(&b, &out->id);
	if (get_name(&b, out->name, 0) != 0)
		return -1;
	wbuf_get_u8(&b, &out->alg);
	wbuf_get_u32(&b, &out->max_keys);
	get_i64(&b, &out->cryptoperiod);
	wbuf_get_u8(&b, &out->rotate_on_remove);
	wbuf_get_u32(&b, &out->n_members);
	if (!wbuf_ok(&b) || out->n_members > KMS_UPD_MEMBERS_MAX)
		return -1;
	wbuf_get_span(&b, &out->members, (size_t)out->n_members * 4);
	if (!wbuf_done(&b) || !out->id || out->rotate_on_remove > 1)
		return -1;
	return 0;
}

int kms_upd_parse_id(const struct kms_upd_rec *r, uint32_t *id)
{
	struct wbuf b;

	*id = 0;
	if (r->type != KMS_REC_GROUP_GONE && r->type != KMS_REC_USER_GONE)
		return -1;
	wbuf_reader(&b, r->value, r->len);
	wbuf_get_u32(&b, id);
	return wbuf_done(&b) && *id ? 0 : -1;
}

int kms_upd_parse_key(const struct kms_upd_rec *r, struct kms_upd_key *out)
{
	struct wbuf b;

	memset(out, 0, sizeof(*out));
	if (r->type != KMS_REC_KEY)
		return -1;
	wbuf_reader(&b, r->value, r->len);
	wbuf_get_u32(&b, &out->id);
	if (get_name(&b, out->label, 1) != 0)
		return -1;
	wbuf_get_u8(&b, &out->alg);
	wbuf_get_u16(&b, &out->length);
	wbuf_get_u32(&b, &out->group_id);
	wbuf_get_u8(&b, &out->state);
	get_i64(&b, &out->cryptoperiod);
	wbuf_get_u8(&b, &out->type);
	for (int i = 0; i < 7; i++)
		get_i64(&b, &out->times[i]);
	wbuf_get_lenbytes(&b, &out->blob, &out->blob_len, KMS_UPD_BLOB_MAX);
	if (!wbuf_done(&b) || !out->id || out->state < 1 || out->state > 6)
		return -1;
	return 0;
}

int kms_upd_parse_key_gone(const struct kms_upd_rec *r, struct kms_upd_key_gone *out)
{
	struct wbuf b;

	memset(out, 0, sizeof(*out));
	if (r->type != KMS_REC_KEY_GONE)
		return -1;
	wbuf_reader(&b, r->value, r->len);
	wbuf_get_u32(&b, &out->id);
	wbuf_get_lenbytes(&b, &out->blob, &out->blob_len, KMS_UPD_BLOB_MAX);
	return wbuf_done(&b) && out->id ? 0 : -1;
}

int kms_upd_check_body(const uint8_t *body, size_t len, uint64_t counter)
{
	struct kms_upd_rec r;
	size_t pos = 0;
	int got;

	while ((got = kms_upd_next(body, len, &pos, counter, &r)) == 1) {
		union {
			struct kms_upd_self self;
			struct kms_upd_user user;
			struct kms_upd_group group;
			struct kms_upd_key key;
			struct kms_upd_key_gone gone;
			uint32_t id;
		} v;
		int rc;

		switch (r.type) {
		case KMS_REC_SELF: rc = kms_upd_parse_self(&r, &v.self); break;
		case KMS_REC_USER: rc = kms_upd_parse_user(&r, &v.user); break;
		case KMS_REC_GROUP: rc = kms_upd_parse_group(&r, &v.group); break;
		case KMS_REC_GROUP_GONE:
		case KMS_REC_USER_GONE: rc = kms_upd_parse_id(&r, &v.id); break;
		case KMS_REC_KEY: rc = kms_upd_parse_key(&r, &v.key); break;
		case KMS_REC_KEY_GONE: rc = kms_upd_parse_key_gone(&r, &v.gone); break;
		case KMS_REC_RESET: rc = r.len == 0 ? 0 : -1; break;
		default: rc = -1; break;
		}
		if (rc != 0)
			return -1;
	}
	return got;
}

/* ---- writers ---- */

int kms_upd_put_rec(uint8_t *out, size_t cap, size_t *pos, uint16_t type, uint64_t counter,
		    const uint8_t *value, uint32_t len)
{
	struct wbuf b;

	if (*pos > cap)
		return -1;
	wbuf_writer(&b, out + *pos, cap - *pos);
	wbuf_put_u16(&b, type);
	wbuf_put_u64(&b, counter);
	wbuf_put_u32(&b, len);
	if (len)
		wbuf_put_bytes(&b, value, len);
	if (!wbuf_ok(&b))
		return -1;
	*pos += b.pos;
	return 0;
}

static int put_name(struct wbuf *b, const char *s)
{
	size_t n = strlen(s);

	return n > 63 ? -1 : wbuf_put_lenbytes(b, s, (uint32_t)n);
}

static int finish(struct wbuf *b, size_t *len)
{
	*len = wbuf_ok(b) ? b->pos : 0;
	return wbuf_ok(b) ? 0 : -1;
}

int kms_upd_val_self(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_self *v)
{
	struct wbuf b;

	wbuf_writer(&b, out, cap);
	wbuf_put_u32(&b, v->user_id);
	put_name(&b, v->name);
	wbuf_put_u32(&b, v->db_key_id);
	return finish(&b, len);
}

int kms_upd_val_user(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_user *v)
{
	struct wbuf b;

	wbuf_writer(&b, out, cap);
	wbuf_put_u32(&b, v->id);
	put_name(&b, v->name);
	return finish(&b, len);
}

int kms_upd_val_group(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_group *v,
		      const uint32_t *members)
{
	struct wbuf b;

	wbuf_writer(&b, out, cap);
	wbuf_put_u32(&b, v->id);
	put_name(&b, v->name);
	wbuf_put_u8(&b, v->alg);
	wbuf_put_u32(&b, v->max_keys);
	wbuf_put_u64(&b, (uint64_t)v->cryptoperiod);
	wbuf_put_u8(&b, v->rotate_on_remove);
	wbuf_put_u32(&b, v->n_members);
	for (uint32_t i = 0; i < v->n_members; i++)
		wbuf_put_u32(&b, members[i]);
	return finish(&b, len);
}

int kms_upd_val_key(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_key *v)
{
	struct wbuf b;

	wbuf_writer(&b, out, cap);
	wbuf_put_u32(&b, v->id);
	put_name(&b, v->label);
	wbuf_put_u8(&b, v->alg);
	wbuf_put_u16(&b, v->length);
	wbuf_put_u32(&b, v->group_id);
	wbuf_put_u8(&b, v->state);
	wbuf_put_u64(&b, (uint64_t)v->cryptoperiod);
	wbuf_put_u8(&b, v->type);
	for (int i = 0; i < 7; i++)
		wbuf_put_u64(&b, (uint64_t)v->times[i]);
	wbuf_put_lenbytes(&b, v->blob, v->blob_len);
	return finish(&b, len);
}

int kms_upd_val_key_gone(uint8_t *out, size_t cap, size_t *len, const struct kms_upd_key_gone *v)
{
	struct wbuf b;

	wbuf_writer(&b, out, cap);
	wbuf_put_u32(&b, v->id);
	wbuf_put_lenbytes(&b, v->blob, v->blob_len);
	return finish(&b, len);
}

int kms_upd_val_id(uint8_t *out, size_t cap, size_t *len, uint32_t id)
{
	struct wbuf b;

	wbuf_writer(&b, out, cap);
	wbuf_put_u32(&b, id);
	return finish(&b, len);
}
