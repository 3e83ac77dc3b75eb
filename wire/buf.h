/*
 * buf.h - one capped, overflow-safe byte buffer for every byte that goes
 * on or comes off the wire, on both sides of the cube boundary.
 *
 * A reader walks a borrowed span; a writer fills a borrowed span of fixed
 * capacity.  Errors are sticky: after the first short read or overflow
 * every further call fails and wbuf_ok() is false, so a parser reads all
 * its fields and checks once, and can never act on a half-parsed message.
 * Lengths from the wire are compared against the bytes that remain before
 * any arithmetic, so no size can overflow.
 */
#ifndef SEKEYFS_WIRE_BUF_H
#define SEKEYFS_WIRE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct wbuf {
	uint8_t *data;   /* writer: destination; reader: source (const in spirit) */
	size_t cap;      /* bytes available in data */
	size_t pos;      /* next byte to read or write */
	int failed;      /* sticky error */
};

/* Start reading len bytes at data / writing into cap bytes at data. */
void wbuf_reader(struct wbuf *b, const void *data, size_t len);
void wbuf_writer(struct wbuf *b, void *data, size_t cap);

/* 1 while no call has failed, else 0. */
int wbuf_ok(const struct wbuf *b);
/* Reader: 1 iff no call failed and every byte was consumed (no trailing bytes). */
int wbuf_done(const struct wbuf *b);
/* Bytes not yet read / space not yet written. */
size_t wbuf_left(const struct wbuf *b);

/* Readers: 0 on success, -1 (and sticky failure) if too few bytes remain.
 * Outputs are cleared first, so a failed read leaves zeros. */
int wbuf_get_u8(struct wbuf *b, uint8_t *v);
int wbuf_get_u16(struct wbuf *b, uint16_t *v);
int wbuf_get_u32(struct wbuf *b, uint32_t *v);
int wbuf_get_u64(struct wbuf *b, uint64_t *v);
int wbuf_get_bytes(struct wbuf *b, void *out, size_t n);
/* Borrow n bytes in place (no copy): *p points into the buffer. */
int wbuf_get_span(struct wbuf *b, const uint8_t **p, size_t n);
/* A u32 length then that many bytes, borrowed; fails if len > max. */
int wbuf_get_lenbytes(struct wbuf *b, const uint8_t **p, uint32_t *len, uint32_t max);

/* Writers: 0 on success, -1 (and sticky failure) if the capacity is exceeded. */
int wbuf_put_u8(struct wbuf *b, uint8_t v);
int wbuf_put_u16(struct wbuf *b, uint16_t v);
int wbuf_put_u32(struct wbuf *b, uint32_t v);
int wbuf_put_u64(struct wbuf *b, uint64_t v);
int wbuf_put_bytes(struct wbuf *b, const void *in, size_t n);
int wbuf_put_lenbytes(struct wbuf *b, const void *in, uint32_t n);
/* Reserve n bytes to be filled in place; *p is NULL on failure. */
int wbuf_reserve(struct wbuf *b, uint8_t **p, size_t n);

/* Little-endian helpers for fixed layouts (flash records, frame headers). */
void wire_le16(uint8_t *p, uint16_t v);
void wire_le32(uint8_t *p, uint32_t v);
void wire_le64(uint8_t *p, uint64_t v);
uint16_t wire_rd16(const uint8_t *p);
uint32_t wire_rd32(const uint8_t *p);
uint64_t wire_rd64(const uint8_t *p);

#endif
