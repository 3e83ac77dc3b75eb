/*
 * fuzz_wire_frame.c - libFuzzer target for wire/: the frame header parser
 * (wire_header_parse, wire_frame_rest, the op and status names) and the
 * capped buffer (wire/buf.h) driven by the input as a little program.
 *
 * Input: 24 bytes taken as a frame header, then a script.  Each script
 * byte picks a reader or writer call (low 4 bits) on the rest of the
 * input as the buffer; after every call the buffer's invariants must hold:
 * pos <= cap, a failure is sticky and moves nothing, a failed read leaves
 * its output zeroed, a span or lenbytes lies inside the buffer, a
 * writer never writes past its capacity (ASan watches the bytes after
 * it), and a packed header parses back to itself.
 *
 * Build and run: tools/run-fuzzers (corpus tests/corpus/fuzz_wire_frame/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/buf.h"
#include "wire/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WRITE_CAP 64

static void check(int cond)
{
	if (!cond)
		__builtin_trap();
}

static void fuzz_header(const uint8_t in[WIRE_HEADER_LEN])
{
	struct wire_header h, again;
	uint8_t packed[WIRE_HEADER_LEN];

	if (wire_header_parse(in, &h) != WIRE_ST_OK) {
		static const struct wire_header zero;

		check(memcmp(&h, &zero, sizeof(h)) == 0);
		return;
	}
	check(h.body_len <= WIRE_MAX_BODY);
	check((h.flags & ~(WIRE_F_MAC | WIRE_F_SHM)) == 0);
	check(wire_frame_rest(&h) <= (size_t)WIRE_MAX_BODY + WIRE_TAG_LEN);
	(void)wire_op_name(h.op);
	(void)wire_status_name(h.status);
	/* pack is the inverse of parse */
	wire_header_pack(&h, packed);
	check(memcmp(packed, in, WIRE_HEADER_LEN) == 0);
	check(wire_header_parse(packed, &again) == WIRE_ST_OK);
	check(memcmp(&h, &again, sizeof(h)) == 0);
}

/* One reader call chosen by op; returns 0 or -1 as the call did. */
static int read_one(struct wbuf *b, uint8_t op, uint8_t arg)
{
	uint8_t out[256];
	const uint8_t *p = NULL;
	size_t before = b->pos;
	uint32_t len = 0, v32 = 1;
	uint16_t v16 = 1;
	uint64_t v64 = 1;
	int rc;

	memset(out, 0xa5, sizeof(out));
	switch (op % 7) {
	case 0: rc = wbuf_get_u8(b, out); check(rc == 0 || out[0] == 0); break;
	case 1: rc = wbuf_get_u16(b, &v16); check(rc == 0 || v16 == 0); break;
	case 2: rc = wbuf_get_u32(b, &v32); check(rc == 0 || v32 == 0); break;
	case 3: rc = wbuf_get_u64(b, &v64); check(rc == 0 || v64 == 0); break;
	case 4:
		rc = wbuf_get_bytes(b, out, arg);
		for (size_t i = 0; rc != 0 && i < arg; i++)
			check(out[i] == 0);
		break;
	case 5:
		rc = wbuf_get_span(b, &p, arg);
		check(rc != 0 || (p >= b->data && p + arg <= b->data + b->cap));
		break;
	default:
		rc = wbuf_get_lenbytes(b, &p, &len, arg * 4u);
		check(rc != 0 || (len <= arg * 4u && p >= b->data && p + len <= b->data + b->cap));
		check(rc == 0 || len == 0);
		break;
	}
	/* a failure moves the cursor at most past a lenbytes' length word */
	if (rc != 0)
		check(!wbuf_ok(b) && wbuf_left(b) == 0 && !wbuf_done(b) && b->pos >= before &&
		      b->pos <= before + 4);
	check(b->pos <= b->cap);
	return rc;
}

static int write_one(struct wbuf *b, uint8_t op, uint8_t arg, const uint8_t *src, size_t src_len)
{
	uint8_t *p = NULL;
	size_t n = arg < src_len ? arg : src_len;
	size_t before = b->pos;
	int rc;

	switch (op % 7) {
	case 0: rc = wbuf_put_u8(b, arg); break;
	case 1: rc = wbuf_put_u16(b, (uint16_t)(arg * 257u)); break;
	case 2: rc = wbuf_put_u32(b, arg * 0x01010101u); break;
	case 3: rc = wbuf_put_u64(b, arg * 0x0101010101010101ull); break;
	case 4: rc = wbuf_put_bytes(b, src, n); break;
	case 5: rc = wbuf_put_lenbytes(b, src, (uint32_t)n); break;
	default:
		rc = wbuf_reserve(b, &p, arg);
		check(rc == 0 ? p != NULL : p == NULL);
		if (p)
			memset(p, 0x5a, arg);
		break;
	}
	if (rc != 0)
		check(!wbuf_ok(b) && b->pos >= before && b->pos <= before + 4);
	check(b->pos <= b->cap);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wbuf r, w;
	uint8_t *wmem;
	int r_failed = 0, w_failed = 0;
	size_t i;

	if (size < WIRE_HEADER_LEN)
		return 0;
	fuzz_header(data);
	data += WIRE_HEADER_LEN;
	size -= WIRE_HEADER_LEN;
	/* script: the first half; buffer: the second half (copied so ASan
	 * bounds it exactly) */
	{
		size_t script_len = size / 2, buf_len = size - script_len;
		uint8_t *buf = malloc(buf_len ? buf_len : 1);

		wmem = malloc(WRITE_CAP);
		if (!buf || !wmem) {
			free(buf);
			free(wmem);
			return 0;
		}
		memcpy(buf, data + script_len, buf_len);
		wbuf_reader(&r, buf, buf_len);
		wbuf_writer(&w, wmem, WRITE_CAP);
		for (i = 0; i + 1 < script_len; i += 2) {
			uint8_t op = data[i], arg = data[i + 1];

			/* once failed, every later call fails too (sticky) */
			if (op & 0x80) {
				int rc = write_one(&w, op, arg, buf, buf_len);

				check(!w_failed || rc != 0);
				w_failed |= rc != 0;
				check(wbuf_ok(&w) == !w_failed);
			} else {
				int rc = read_one(&r, op, arg);

				check(!r_failed || rc != 0);
				r_failed |= rc != 0;
				check(wbuf_ok(&r) == !r_failed);
			}
		}
		check(wbuf_done(&r) == (!r_failed && r.pos == r.cap));
		free(buf);
		free(wmem);
	}
	return 0;
}
