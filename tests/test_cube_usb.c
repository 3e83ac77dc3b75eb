/*
 * test_cube_usb.c - the USB transport through a test double of libusb:
 * the double's bulk endpoints forward the byte stream to an emulated
 * cube's socket, and it can cut IN transfers short, insert zero-length
 * packets, time out, corrupt a packet or "unplug" in the middle of a
 * transfer.  Each fault must give a clean error, and the next call on
 * that connection must fail cleanly too: no crash, no hang.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cube/cube.h"
#include "cube/usb_ops.h"
#include "helper_emu.h"

struct fake_usb {
	int fd;                 /* socket to the emulator */
	int n_devices;          /* 0 = nothing plugged in */
	int init_error;         /* returned by init if set */
	const char *serial;
	uint8_t bus, addr;
	/* Fault injection, by bulk call number (1-based; 0 = never). */
	int in_max;             /* IN transfers carry at most this many bytes (0 = all) */
	int zlp_every;          /* every k-th IN transfer is a zero-length packet */
	int timeout_at;
	int unplug_at;
	int corrupt_at;
	int out_short;          /* OUT transfers take at most this many bytes per call */
	int calls;
	int unplugged;
	int released, closed, exited;
	int dev_token;          /* its address is the fake libusb_device */
	int handle_token;       /* its address is the fake handle */
	libusb_device *list[2];
};

static int f_init(void *a, libusb_context **ctx)
{
	struct fake_usb *f = a;

	*ctx = NULL;
	return f->init_error;
}

static void f_exit(void *a, libusb_context *ctx)
{
	struct fake_usb *f = a;

	(void)ctx;
	f->exited++;
}

static ssize_t f_list(void *a, libusb_context *ctx, libusb_device ***list)
{
	struct fake_usb *f = a;

	(void)ctx;
	f->list[0] = f->n_devices ? (libusb_device *)(void *)&f->dev_token : NULL;
	f->list[1] = NULL;
	*list = f->list;
	return f->n_devices;
}

static void f_free_list(void *a, libusb_device **list, int unref)
{
	(void)a; (void)list; (void)unref;
}

static int f_desc(void *a, libusb_device *dev, struct libusb_device_descriptor *d)
{
	(void)a; (void)dev;
	memset(d, 0, sizeof(*d));
	d->idVendor = SECUBE_USB_VID;
	d->idProduct = SECUBE_USB_PID;
	d->iSerialNumber = 3;
	return 0;
}

static uint8_t f_bus(void *a, libusb_device *dev) { (void)dev; return ((struct fake_usb *)a)->bus; }
static uint8_t f_addr(void *a, libusb_device *dev) { (void)dev; return ((struct fake_usb *)a)->addr; }

static int f_open(void *a, libusb_device *dev, libusb_device_handle **h)
{
	struct fake_usb *f = a;

	(void)dev;
	*h = (libusb_device_handle *)(void *)&f->handle_token;
	return 0;
}

static void f_close(void *a, libusb_device_handle *h)
{
	(void)h;
	((struct fake_usb *)a)->closed++;
}

static int f_string(void *a, libusb_device_handle *h, uint8_t idx, unsigned char *s, int n)
{
	struct fake_usb *f = a;
	int len = (int)strlen(f->serial);

	(void)h; (void)idx;
	if (len > n)
		len = n;
	memcpy(s, f->serial, (size_t)len);
	return len;
}

static int f_claim(void *a, libusb_device_handle *h, int i) { (void)a; (void)h; (void)i; return 0; }

static int f_release(void *a, libusb_device_handle *h, int i)
{
	(void)h; (void)i;
	((struct fake_usb *)a)->released++;
	return 0;
}

static const char *f_strerror(void *a, int code) { (void)a; return libusb_strerror(code); }

static int f_bulk(void *a, libusb_device_handle *h, unsigned char ep, unsigned char *data, int len,
		  int *transferred, unsigned int timeout_ms)
{
	struct fake_usb *f = a;
	int n = f->calls + 1;
	struct pollfd p = { .fd = f->fd, .events = POLLIN };
	ssize_t r;

	(void)h;
	*transferred = 0;
	f->calls = n;
	if (f->unplugged || n == f->unplug_at) {
		f->unplugged = 1;
		return LIBUSB_ERROR_NO_DEVICE;
	}
	if (n == f->timeout_at)
		return LIBUSB_ERROR_TIMEOUT;
	if (ep == SECUBE_USB_EP_OUT) {
		int take = f->out_short && len > f->out_short ? f->out_short : len;

		r = send(f->fd, data, (size_t)take, MSG_NOSIGNAL);
		if (r < 0)
			return LIBUSB_ERROR_IO;
		*transferred = (int)r;
		return 0;
	}
	if (f->zlp_every && n % f->zlp_every == 0)
		return 0;
	if (poll(&p, 1, (int)timeout_ms) != 1)
		return LIBUSB_ERROR_TIMEOUT;
	r = recv(f->fd, data, (size_t)(f->in_max && len > f->in_max ? f->in_max : len), 0);
	if (r <= 0)
		return LIBUSB_ERROR_IO;
	if (n == f->corrupt_at)
		data[r - 1] ^= 0x20;
	*transferred = (int)r;
	return 0;
}

static struct usb_ops fake_ops(struct fake_usb *f)
{
	struct usb_ops o = {
		.arg = f, .init = f_init, .exit = f_exit, .get_device_list = f_list,
		.free_device_list = f_free_list, .get_device_descriptor = f_desc,
		.get_bus_number = f_bus, .get_device_address = f_addr, .open = f_open,
		.close = f_close, .get_string_descriptor_ascii = f_string,
		.claim_interface = f_claim, .release_interface = f_release,
		.bulk_transfer = f_bulk, .strerror = f_strerror,
	};
	return o;
}

/* A fake board wired to a fresh emulated cube with a GCM key 1. */
static void fake_board(struct emu *e, struct fake_usb *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cube *c;
	struct cube_key k = { 1, WIRE_ALG_AES256_GCM, WIRE_USE_ENCRYPT | WIRE_USE_DECRYPT, 0,
			      WIRE_TIME_NEVER };

	emu_new(e);
	c = emu_login(e, WIRE_ROLE_ADMIN);
	ck_assert_int_eq(cube_key_generate(c, &k), CUBE_OK);
	cube_close(c);
	memset(f, 0, sizeof(*f));
	f->n_devices = 1;
	f->serial = "00112233445566778899AABBCCDDEEFF";
	f->bus = 1;
	f->addr = 4;
	ck_assert_uint_lt((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/cube.sock", e->dir),
			  sizeof(sa.sun_path));
	f->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->fd, 0);
	ck_assert_int_eq(connect(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void fake_unplug_all(struct emu *e, struct fake_usb *f)
{
	close(f->fd);
	emu_free(e);
}

static struct cube *open_fake(const char *sel, const struct usb_ops *ops)
{
	struct cube *c = NULL;
	char err[256];
	int rc = cube_open_usb(&c, sel, ops, err, sizeof(err));

	ck_assert_msg(rc == CUBE_OK, "open usb:%s: %s", sel, err);
	return c;
}

#define NSEC 64
static uint8_t plain[NSEC * 16384], sealed[NSEC * (16384 + WIRE_SECTOR_OVERHEAD)], back[NSEC * 16384];

static int seal_open(struct cube *c)
{
	struct cube_sector s[NSEC];
	uint8_t fid[WIRE_FILE_ID_LEN] = { 4 }, bad[NSEC];
	int rc;

	for (int i = 0; i < NSEC; i++)
		s[i] = (struct cube_sector){ (uint64_t)i, 16384 };
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 7);
	rc = cube_seal(c, 1, WIRE_ALG_AES256_GCM, fid, s, NSEC, plain, sealed);
	if (rc != CUBE_OK)
		return rc;
	memset(back, 0, sizeof(back));
	rc = cube_open_sectors(c, 1, WIRE_ALG_AES256_GCM, fid, s, NSEC, sealed, back, bad);
	if (rc == CUBE_OK)
		ck_assert_int_eq(memcmp(plain, back, sizeof(plain)), 0);
	return rc;
}

START_TEST(usb_roundtrip_short_and_zlp)
{
	struct emu e;
	struct fake_usb f;
	struct usb_ops ops;
	struct cube *c;
	struct cube_info info;

	fake_board(&e, &f);
	ops = fake_ops(&f);
	c = open_fake("", &ops);
	ck_assert_int_eq(cube_info(c, &info), CUBE_OK);
	ck_assert_int_eq(info.shm, 0);
	ck_assert_ptr_null(cube_sd_path(c));
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	ck_assert_int_eq(seal_open(c), CUBE_OK); /* 1 MiB frames in 64 KiB transfers */
	f.in_max = 1000;   /* short packets */
	f.zlp_every = 3;   /* and zero-length ones */
	f.out_short = 777; /* the board takes little at a time */
	ck_assert_int_eq(seal_open(c), CUBE_OK);
	ck_assert_int_eq(cube_logout(c), CUBE_OK);
	cube_close(c);
	ck_assert_int_eq(f.released, 1);
	ck_assert_int_eq(f.closed, 1);
	ck_assert_int_eq(f.exited, 1);
	fake_unplug_all(&e, &f);
}
END_TEST

START_TEST(usb_selectors)
{
	struct emu e;
	struct fake_usb f;
	struct usb_ops ops;
	struct cube *c = NULL;
	char err[256];

	fake_board(&e, &f);
	ops = fake_ops(&f);
	c = open_fake("00112233445566778899aabbccddeeff", &ops);
	cube_close(c);
	c = open_fake("1-4", &ops);
	cube_close(c);
	ck_assert_int_eq(cube_open_usb(&c, "FFFF", &ops, err, sizeof(err)), CUBE_ENODEV);
	ck_assert_ptr_nonnull(strstr(err, "no SEcube on USB"));
	ck_assert_int_eq(cube_open_usb(&c, "2-4", &ops, err, sizeof(err)), CUBE_ENODEV);
	f.n_devices = 0;
	ck_assert_int_eq(cube_open_usb(&c, "", &ops, err, sizeof(err)), CUBE_ENODEV);
	ck_assert_ptr_nonnull(strstr(err, "no SEcube on USB"));
	f.init_error = LIBUSB_ERROR_OTHER;
	ck_assert_int_eq(cube_open_usb(&c, "", &ops, err, sizeof(err)), CUBE_ENODEV);
	ck_assert_ptr_nonnull(strstr(err, "libusb cannot start"));
	ck_assert_ptr_null(c);
	fake_unplug_all(&e, &f);
}
END_TEST

START_TEST(usb_timeout)
{
	struct emu e;
	struct fake_usb f;
	struct usb_ops ops;
	struct cube *c;
	uint8_t rnd[8];

	fake_board(&e, &f);
	ops = fake_ops(&f);
	c = open_fake("", &ops);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	f.timeout_at = f.calls + 2; /* the IN transfer of the next request */
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_ETRANSPORT);
	ck_assert_msg(strstr(cube_errmsg(c), "no answer within"), "%s", cube_errmsg(c));
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_ETRANSPORT);
	cube_close(c);
	fake_unplug_all(&e, &f);
}
END_TEST

START_TEST(usb_unplug_mid_transfer)
{
	struct emu e;
	struct fake_usb f;
	struct usb_ops ops;
	struct cube *c;
	uint8_t rnd[8];

	fake_board(&e, &f);
	ops = fake_ops(&f);
	c = open_fake("", &ops);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	f.unplug_at = f.calls + 5; /* inside the 1 MiB SEAL request */
	ck_assert_int_eq(seal_open(c), CUBE_ETRANSPORT);
	ck_assert_msg(strstr(cube_errmsg(c), "device went away during SEAL (the board was unplugged)"),
		      "%s", cube_errmsg(c));
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_ETRANSPORT);
	cube_close(c);
	ck_assert_int_eq(f.released, 0); /* nothing touches a gone board */
	ck_assert_int_eq(f.closed, 1);
	fake_unplug_all(&e, &f);
}
END_TEST

START_TEST(usb_unplug_mid_reply)
{
	struct emu e;
	struct fake_usb f;
	struct usb_ops ops;
	struct cube *c;

	fake_board(&e, &f);
	ops = fake_ops(&f);
	c = open_fake("", &ops);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	f.in_max = 4096;
	/* 17 OUT transfers carry the 1 MiB request; the reply is arriving. */
	f.unplug_at = f.calls + 17 + 5;
	ck_assert_int_eq(seal_open(c), CUBE_ETRANSPORT);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "unplugged"));
	ck_assert_int_eq(seal_open(c), CUBE_ETRANSPORT);
	cube_close(c);
	fake_unplug_all(&e, &f);
}
END_TEST

/* A reply changed on the cable fails its MAC: the session is over. */
START_TEST(usb_corrupted_reply)
{
	struct emu e;
	struct fake_usb f;
	struct usb_ops ops;
	struct cube *c;
	uint8_t rnd[8];

	fake_board(&e, &f);
	ops = fake_ops(&f);
	c = open_fake("", &ops);
	ck_assert_int_eq(cube_login(c, WIRE_ROLE_USER, EMU_USER_PIN), CUBE_OK);
	f.corrupt_at = f.calls + 2;
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_EAUTH);
	ck_assert_ptr_nonnull(strstr(cube_errmsg(c), "failed authentication"));
	ck_assert_int_eq(cube_random(c, rnd, sizeof(rnd)), CUBE_ETRANSPORT);
	cube_close(c);
	fake_unplug_all(&e, &f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cube_usb");
	TCase *tc = tcase_create("usb");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, usb_roundtrip_short_and_zlp);
	tcase_add_test(tc, usb_selectors);
	tcase_add_test(tc, usb_timeout);
	tcase_add_test(tc, usb_unplug_mid_transfer);
	tcase_add_test(tc, usb_unplug_mid_reply);
	tcase_add_test(tc, usb_corrupted_reply);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	emu_suite_begin();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	emu_suite_end();
	return failed ? 1 : 0;
}
