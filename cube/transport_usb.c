/*
 * transport_usb.c - frames over the bulk endpoints of a SEcube board
 * (libusb-1.0), through the usb_ops table of usb_ops.h so that tests can
 * substitute a double.
 *
 * A frame goes out in bulk transfers of at most SECUBE_USB_CHUNK bytes and
 * comes back the same way; the receiver assembles by the header's length,
 * so short packets simply mean "more to come", zero-length packets are
 * skipped (a bounded number in a row), and every libusb failure (timeout,
 * unplug) is a clean CUBE_ETRANSPORT.  After an unplug no call touches the
 * device handle again.
 *
 * Sections: the transport; finding and opening the board; the real table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "usb_ops.h"

struct usb_transport {
	struct cube_transport base;
	const struct usb_ops *ops;
	libusb_context *ctx;
	libusb_device_handle *h;
	int claimed;
	int gone;                         /* unplugged: never touch h again */
	uint8_t chunk[SECUBE_USB_CHUNK];  /* staging for outgoing transfers */
};

/* ---- the transport -------------------------------------------------- */

static int usb_fail(struct usb_transport *u, int code, int transferred_any)
{
	struct cube_transport *t = &u->base;

	if (code == LIBUSB_ERROR_NO_DEVICE) {
		u->gone = 1;
		snprintf(t->why, sizeof(t->why), "the board was unplugged");
	} else if (code == LIBUSB_ERROR_TIMEOUT) {
		snprintf(t->why, sizeof(t->why), "no answer within %d ms%s", t->timeout_ms,
			 transferred_any ? " (transfer cut short)" : "");
	} else {
		snprintf(t->why, sizeof(t->why), "USB transfer failed: %s",
			 u->ops->strerror(u->ops->arg, code));
	}
	return CUBE_ETRANSPORT;
}

static int usb_gone(struct usb_transport *u)
{
	snprintf(u->base.why, sizeof(u->base.why), "the board was unplugged");
	return CUBE_ETRANSPORT;
}

/* One bulk OUT of len staged bytes, resuming after partial transfers. */
static int bulk_out(struct usb_transport *u, size_t len)
{
	size_t done = 0;
	int zlp = 0;

	while (done < len) {
		int got = 0;
		int r = u->ops->bulk_transfer(u->ops->arg, u->h, SECUBE_USB_EP_OUT, u->chunk + done,
					      (int)(len - done), &got, (unsigned)u->base.timeout_ms);

		if (got < 0 || (size_t)got > len - done)
			got = 0;
		done += (size_t)got;
		if (r != 0)
			return usb_fail(u, r, done > 0);
		zlp = got == 0 ? zlp + 1 : 0;
		if (zlp > SECUBE_USB_MAX_ZLP) {
			snprintf(u->base.why, sizeof(u->base.why), "the board accepts no data");
			return CUBE_ETRANSPORT;
		}
	}
	return 0;
}

/* Copy the pieces of a frame through the staging chunk, sending each full one. */
static int usb_send(struct cube_transport *t, const uint8_t *hdr, const uint8_t *body,
		    size_t body_len, const uint8_t *tag, int pass_fd)
{
	struct usb_transport *u = (struct usb_transport *)t;
	const uint8_t *piece[3] = { hdr, body, tag };
	size_t plen[3] = { WIRE_HEADER_LEN, body_len, tag ? WIRE_TAG_LEN : 0 };
	size_t fill = 0;
	int rc;

	if (u->gone)
		return usb_gone(u);
	if (pass_fd >= 0) {
		snprintf(t->why, sizeof(t->why), "USB cannot carry a shared-memory descriptor");
		return CUBE_ETRANSPORT;
	}
	for (int i = 0; i < 3; i++) {
		size_t off = 0;

		while (off < plen[i]) {
			size_t k = plen[i] - off < SECUBE_USB_CHUNK - fill ? plen[i] - off
									   : SECUBE_USB_CHUNK - fill;

			memcpy(u->chunk + fill, piece[i] + off, k);
			fill += k;
			off += k;
			if (fill == SECUBE_USB_CHUNK) {
				if ((rc = bulk_out(u, fill)) != 0)
					return rc;
				fill = 0;
			}
		}
	}
	return fill ? bulk_out(u, fill) : 0;
}

static int usb_recv(struct cube_transport *t, uint8_t *buf, size_t cap, struct wire_header *h)
{
	struct usb_transport *u = (struct usb_transport *)t;
	int64_t deadline = cube_now_ms() + t->timeout_ms;
	size_t have = 0;
	long need = 0;
	int zlp = 0;

	if (u->gone)
		return usb_gone(u);
	for (;;) {
		size_t room = need > 0 ? (size_t)need - have : cap - have;
		int want = room < SECUBE_USB_CHUNK ? (int)room : SECUBE_USB_CHUNK;
		int got = 0;
		int r = u->ops->bulk_transfer(u->ops->arg, u->h, SECUBE_USB_EP_IN, buf + have, want,
					      &got, (unsigned)t->timeout_ms);

		if (got < 0 || got > want)
			got = 0;
		if (r != 0)
			return usb_fail(u, r, have > 0 || got > 0);
		have += (size_t)got;
		zlp = got == 0 ? zlp + 1 : 0;
		if (zlp > SECUBE_USB_MAX_ZLP) {
			snprintf(t->why, sizeof(t->why), "the board sends only empty packets");
			return CUBE_ETRANSPORT;
		}
		if (need == 0) {
			need = cube_frame_need(t, buf, have, h);
			if (need < 0)
				return CUBE_EPROTO;
			if (need > 0 && (size_t)need > cap) {
				snprintf(t->why, sizeof(t->why), "reply larger than any frame");
				return CUBE_EPROTO;
			}
		}
		if (need > 0 && have > (size_t)need) {
			snprintf(t->why, sizeof(t->why), "board sent bytes past the end of its reply");
			return CUBE_EPROTO;
		}
		if (need > 0 && have == (size_t)need)
			return 0;
		if (cube_now_ms() > deadline)
			return usb_fail(u, LIBUSB_ERROR_TIMEOUT, 1);
	}
}

static void usb_close(struct cube_transport *t)
{
	struct usb_transport *u = (struct usb_transport *)t;

	if (u->h && u->claimed && !u->gone)
		u->ops->release_interface(u->ops->arg, u->h, SECUBE_USB_IFACE);
	if (u->h)
		u->ops->close(u->ops->arg, u->h);
	u->ops->exit(u->ops->arg, u->ctx);
	free(u);
}

static const struct cube_transport_ops usb_transport_ops = {
	.send_frame = usb_send,
	.recv_frame = usb_recv,
	.close = usb_close,
};

/* ---- finding and opening the board ---------------------------------- */

/* Does dev (a SEcube) match the selector?  May open it to read the
 * serial; on a match *h holds the open handle.  1, 0, or a LIBUSB_ERROR. */
static int matches(const struct usb_ops *ops, libusb_device *dev,
		   const struct libusb_device_descriptor *d, const char *sel,
		   libusb_device_handle **h)
{
	unsigned bus, addr;
	char tail;
	unsigned char serial[128];
	int r;

	*h = NULL;
	if (sel[0] && sscanf(sel, "%u-%u%c", &bus, &addr, &tail) == 2) {
		if (ops->get_bus_number(ops->arg, dev) != bus ||
		    ops->get_device_address(ops->arg, dev) != addr)
			return 0;
		return ops->open(ops->arg, dev, h) == 0 ? 1 : LIBUSB_ERROR_ACCESS;
	}
	r = ops->open(ops->arg, dev, h);
	if (r != 0)
		return r;
	if (!sel[0])
		return 1;
	r = d->iSerialNumber ? ops->get_string_descriptor_ascii(ops->arg, *h, d->iSerialNumber,
								 serial, sizeof(serial) - 1)
			     : -1;
	if (r > 0) {
		serial[r] = '\0';
		if (strcasecmp((const char *)serial, sel) == 0)
			return 1;
	}
	ops->close(ops->arg, *h);
	*h = NULL;
	return 0;
}

/* Find the board and open it into u->h; 0 or a CUBE_E* code with err set. */
static int find_board(struct usb_transport *u, const char *sel, char *err, size_t cap)
{
	const struct usb_ops *ops = u->ops;
	libusb_device **list = NULL;
	ssize_t n = ops->get_device_list(ops->arg, u->ctx, &list);
	int open_err = 0, r;

	if (n < 0) {
		cube_set_text(err, cap, "no SEcube on USB: cannot list USB devices (%s)",
			      ops->strerror(ops->arg, (int)n));
		return CUBE_ENODEV;
	}
	for (ssize_t i = 0; i < n && !u->h; i++) {
		struct libusb_device_descriptor d;

		if (ops->get_device_descriptor(ops->arg, list[i], &d) != 0 ||
		    d.idVendor != SECUBE_USB_VID || d.idProduct != SECUBE_USB_PID)
			continue;
		r = matches(ops, list[i], &d, sel, &u->h);
		if (r < 0)
			open_err = r;
	}
	ops->free_device_list(ops->arg, list, 1);
	if (u->h)
		return 0;
	if (open_err) {
		cube_set_text(err, cap, "no SEcube on USB: a board %04x:%04x is there but cannot be "
			      "opened (%s; check the udev rule or permissions)", SECUBE_USB_VID,
			      SECUBE_USB_PID, ops->strerror(ops->arg, open_err));
		return CUBE_ENODEV;
	}
	cube_set_text(err, cap, "no SEcube on USB: no device %04x:%04x%s%s found (is the board "
		      "plugged in?)", SECUBE_USB_VID, SECUBE_USB_PID, sel[0] ? " " : "", sel);
	return CUBE_ENODEV;
}

int cube_open_usb(struct cube **out, const char *selector, const struct usb_ops *ops,
		  char *err_text, size_t err_cap)
{
	struct usb_transport *u;
	struct cube *c = NULL;
	int r, rc;

	*out = NULL;
	if (!ops)
		ops = cube_usb_real_ops();
	u = calloc(1, sizeof(*u));
	if (!u) {
		cube_set_text(err_text, err_cap, "out of memory");
		return CUBE_ENOMEM;
	}
	u->base.ops = &usb_transport_ops;
	u->base.timeout_ms = cube_timeout_from_env();
	u->ops = ops;
	r = ops->init(ops->arg, &u->ctx);
	if (r != 0) {
		cube_set_text(err_text, err_cap, "no SEcube on USB: libusb cannot start (%s)",
			      ops->strerror(ops->arg, r));
		free(u);
		return CUBE_ENODEV;
	}
	rc = find_board(u, selector, err_text, err_cap);
	if (rc == 0 && (r = ops->claim_interface(ops->arg, u->h, SECUBE_USB_IFACE)) != 0) {
		cube_set_text(err_text, err_cap, "the SEcube is busy: cannot claim its interface (%s)",
			      ops->strerror(ops->arg, r));
		rc = CUBE_ETRANSPORT;
	}
	if (rc != 0) {
		usb_close(&u->base);
		return rc;
	}
	u->claimed = 1;
	rc = cube_conn_new(&c, &u->base, err_text, err_cap);
	if (rc != CUBE_OK)
		return rc;
	rc = cube_hello(c, 0);
	if (rc != CUBE_OK) {
		cube_set_text(err_text, err_cap, "usb:%s: %s", selector, cube_errmsg(c));
		cube_close(c);
		return rc;
	}
	*out = c;
	return CUBE_OK;
}

/* ---- the real libusb ------------------------------------------------ */

static int real_init(void *a, libusb_context **ctx) { (void)a; return libusb_init(ctx); }
static void real_exit(void *a, libusb_context *ctx) { (void)a; libusb_exit(ctx); }
static ssize_t real_list(void *a, libusb_context *ctx, libusb_device ***l)
{ (void)a; return libusb_get_device_list(ctx, l); }
static void real_free_list(void *a, libusb_device **l, int unref)
{ (void)a; libusb_free_device_list(l, unref); }
static int real_desc(void *a, libusb_device *d, struct libusb_device_descriptor *o)
{ (void)a; return libusb_get_device_descriptor(d, o); }
static uint8_t real_bus(void *a, libusb_device *d) { (void)a; return libusb_get_bus_number(d); }
static uint8_t real_addr(void *a, libusb_device *d) { (void)a; return libusb_get_device_address(d); }
static int real_open(void *a, libusb_device *d, libusb_device_handle **h)
{ (void)a; return libusb_open(d, h); }
static void real_close(void *a, libusb_device_handle *h) { (void)a; libusb_close(h); }
static int real_string(void *a, libusb_device_handle *h, uint8_t i, unsigned char *s, int n)
{ (void)a; return libusb_get_string_descriptor_ascii(h, i, s, n); }
static int real_claim(void *a, libusb_device_handle *h, int i)
{ (void)a; return libusb_claim_interface(h, i); }
static int real_release(void *a, libusb_device_handle *h, int i)
{ (void)a; return libusb_release_interface(h, i); }
static int real_bulk(void *a, libusb_device_handle *h, unsigned char ep, unsigned char *d, int n,
		     int *got, unsigned int ms)
{ (void)a; return libusb_bulk_transfer(h, ep, d, n, got, ms); }
static const char *real_strerror(void *a, int code) { (void)a; return libusb_strerror(code); }

static const struct usb_ops real_ops = {
	.arg = NULL,
	.init = real_init,
	.exit = real_exit,
	.get_device_list = real_list,
	.free_device_list = real_free_list,
	.get_device_descriptor = real_desc,
	.get_bus_number = real_bus,
	.get_device_address = real_addr,
	.open = real_open,
	.close = real_close,
	.get_string_descriptor_ascii = real_string,
	.claim_interface = real_claim,
	.release_interface = real_release,
	.bulk_transfer = real_bulk,
	.strerror = real_strerror,
};

const struct usb_ops *cube_usb_real_ops(void)
{
	return &real_ops;
}
