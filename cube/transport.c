/*
 * transport.c - what both transports share: the timeout setting, the
 * monotonic clock, and the receive-side check of a frame header before
 * any body byte is read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cube.h"
#include "transport.h"

int cube_timeout_from_env(void)
{
	const char *s = getenv("SECUBE_TIMEOUT_MS");
	char *end = NULL;
	long v;

	if (!s || !*s)
		return CUBE_TIMEOUT_MS_DEFAULT;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v <= 0 || v > 3600L * 1000L)
		return CUBE_TIMEOUT_MS_DEFAULT;
	return (int)v;
}

int64_t cube_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long cube_frame_need(struct cube_transport *t, const uint8_t *buf, size_t have,
		     struct wire_header *h)
{
	if (have < WIRE_HEADER_LEN)
		return 0;
	if (wire_header_parse(buf, h) != WIRE_ST_OK) {
		snprintf(t->why, sizeof(t->why), "malformed frame header from the device");
		return -1;
	}
	return (long)(WIRE_HEADER_LEN + wire_frame_rest(h));
}
