/*
 * usb_ops.h - the libusb-1.0 calls the USB transport makes, behind one
 * function-pointer table, so tests can put a test double in place of a
 * real board (tests/test_cube_usb.c forwards the bulk packets to an
 * emulated cube and injects short packets, timeouts and unplugs).
 *
 * Each entry has the meaning and return convention of the libusb function
 * of the same name (LIBUSB_SUCCESS / LIBUSB_ERROR_*), with one extra first
 * argument, arg, that the table carries for the double's own state.
 */
#ifndef SEKEYFS_CUBE_USB_OPS_H
#define SEKEYFS_CUBE_USB_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libusb.h>

struct cube;

/* The board: STMicroelectronics' vendor ID with the SEcube's product ID. */
#define SECUBE_USB_VID    0x0483
#define SECUBE_USB_PID    0x5740
#define SECUBE_USB_IFACE  0
#define SECUBE_USB_EP_OUT 0x01
#define SECUBE_USB_EP_IN  0x81
/* Frames go in bulk transfers of at most this many bytes. */
#define SECUBE_USB_CHUNK  (64 * 1024)
/* Zero-length packets tolerated in a row before the device counts as dead. */
#define SECUBE_USB_MAX_ZLP 16

struct usb_ops {
	void *arg;
	int (*init)(void *arg, libusb_context **ctx);
	void (*exit)(void *arg, libusb_context *ctx);
	ssize_t (*get_device_list)(void *arg, libusb_context *ctx, libusb_device ***list);
	void (*free_device_list)(void *arg, libusb_device **list, int unref_devices);
	int (*get_device_descriptor)(void *arg, libusb_device *dev, struct libusb_device_descriptor *desc);
	uint8_t (*get_bus_number)(void *arg, libusb_device *dev);
	uint8_t (*get_device_address)(void *arg, libusb_device *dev);
	int (*open)(void *arg, libusb_device *dev, libusb_device_handle **h);
	void (*close)(void *arg, libusb_device_handle *h);
	int (*get_string_descriptor_ascii)(void *arg, libusb_device_handle *h, uint8_t index,
					   unsigned char *data, int length);
	int (*claim_interface)(void *arg, libusb_device_handle *h, int iface);
	int (*release_interface)(void *arg, libusb_device_handle *h, int iface);
	int (*bulk_transfer)(void *arg, libusb_device_handle *h, unsigned char endpoint,
			     unsigned char *data, int length, int *transferred, unsigned int timeout_ms);
	const char *(*strerror)(void *arg, int code);
};

/* The table of the real libusb-1.0. */
const struct usb_ops *cube_usb_real_ops(void);

/* cube_open for "usb:SELECTOR" with the given table (NULL = the real
 * libusb).  SELECTOR: empty (the only board), "BUS-ADDR" or a serial
 * number (hex, as the board's iSerialNumber string). */
int cube_open_usb(struct cube **out, const char *selector, const struct usb_ops *ops,
		  char *err_text, size_t err_cap);

#endif
