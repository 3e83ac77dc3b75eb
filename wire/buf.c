/*
 * buf.c - the capped byte buffer of buf.h.  Every check compares a wanted
 * size against what remains (cap - pos), which cannot overflow.
 */
#include "buf.h"

#include <string.h>

void wbuf_reader(struct wbuf *b, const void *data, size_t len)
{
	b->data = (uint8_t *)(uintptr_t)data;
	b->cap = len;
	b->pos = 0;
	b->failed = 0;
}

void wbuf_writer(struct wbuf *b, void *data, size_t cap)
{
	b->data = data;
	b->cap = cap;
	b->pos = 0;
	b->failed = 0;
}

int wbuf_ok(const struct wbuf *b) { return !b->failed; }
int wbuf_done(const struct wbuf *b) { return !b->failed && b->pos == b->cap; }
size_t wbuf_left(const struct wbuf *b) { return b->failed ? 0 : b->cap - b->pos; }

/* Claim n bytes at the cursor; NULL (and sticky failure) if they are not there. */
static uint8_t *claim(struct wbuf *b, size_t n)
{
	uint8_t *p;

	if (b->failed || n > b->cap - b->pos) {
		b->failed = 1;
		return NULL;
	}
	p = b->data + b->pos;
	b->pos += n;
	return p;
}

void wire_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
void wire_le32(uint8_t *p, uint32_t v) { wire_le16(p, (uint16_t)v); wire_le16(p + 2, (uint16_t)(v >> 16)); }
void wire_le64(uint8_t *p, uint64_t v) { wire_le32(p, (uint32_t)v); wire_le32(p + 4, (uint32_t)(v >> 32)); }
uint16_t wire_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
uint32_t wire_rd32(const uint8_t *p) { return wire_rd16(p) | ((uint32_t)wire_rd16(p + 2) << 16); }
uint64_t wire_rd64(const uint8_t *p) { return wire_rd32(p) | ((uint64_t)wire_rd32(p + 4) << 32); }

int wbuf_get_u8(struct wbuf *b, uint8_t *v)
{
	const uint8_t *p = claim(b, 1);

	*v = p ? p[0] : 0;
	return p ? 0 : -1;
}

int wbuf_get_u16(struct wbuf *b, uint16_t *v)
{
	const uint8_t *p = claim(b, 2);

	*v = p ? wire_rd16(p) : 0;
	return p ? 0 : -1;
}

int wbuf_get_u32(struct wbuf *b, uint32_t *v)
{
	const uint8_t *p = claim(b, 4);

	*v = p ? wire_rd32(p) : 0;
	return p ? 0 : -1;
}

int wbuf_get_u64(struct wbuf *b, uint64_t *v)
{
	const uint8_t *p = claim(b, 8);

	*v = p ? wire_rd64(p) : 0;
	return p ? 0 : -1;
}

int wbuf_get_bytes(struct wbuf *b, void *out, size_t n)
{
	const uint8_t *p = claim(b, n);

	if (!p) {
		memset(out, 0, n);
		return -1;
	}
	memcpy(out, p, n);
	return 0;
}

int wbuf_get_span(struct wbuf *b, const uint8_t **out, size_t n)
{
	*out = claim(b, n);
	return *out ? 0 : -1;
}

int wbuf_get_lenbytes(struct wbuf *b, const uint8_t **out, uint32_t *len, uint32_t max)
{
	uint32_t n;

	*out = NULL;
	*len = 0;
	if (wbuf_get_u32(b, &n) < 0)
		return -1;
	if (n > max) {
		b->failed = 1;
		return -1;
	}
	if (wbuf_get_span(b, out, n) < 0)
		return -1;
	*len = n;
	return 0;
}

int wbuf_put_u8(struct wbuf *b, uint8_t v)
{
	uint8_t *p = claim(b, 1);

	if (p)
		p[0] = v;
	return p ? 0 : -1;
}

int wbuf_put_u16(struct wbuf *b, uint16_t v)
{
	uint8_t *p = claim(b, 2);

	if (p)
		wire_le16(p, v);
	return p ? 0 : -1;
}

int wbuf_put_u32(struct wbuf *b, uint32_t v)
{
	uint8_t *p = claim(b, 4);

	if (p)
		wire_le32(p, v);
	return p ? 0 : -1;
}

int wbuf_put_u64(struct wbuf *b, uint64_t v)
{
	uint8_t *p = claim(b, 8);

	if (p)
		wire_le64(p, v);
	return p ? 0 : -1;
}

int wbuf_put_bytes(struct wbuf *b, const void *in, size_t n)
{
	uint8_t *p = claim(b, n);

	if (p && n)
		memcpy(p, in, n);
	return p ? 0 : -1;
}

int wbuf_put_lenbytes(struct wbuf *b, const void *in, uint32_t n)
{
	if (wbuf_put_u32(b, n) < 0)
		return -1;
	return wbuf_put_bytes(b, in, n);
}

int wbuf_reserve(struct wbuf *b, uint8_t **p, size_t n)
{
	*p = claim(b, n);
	return *p ? 0 : -1;
}
