/*
 * flash.h - an emulated 2 MiB NOR flash with the sector layout of the
 * STM32F429 in the SEcube (two banks of 4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB),
 * kept in a host file.
 *
 * As on the real part: an erased byte reads 0xff, programming can only
 * clear bits (programming a 1 over a 0 is refused: FLASH_EPROGRAM, the
 * check the SEcube simulator makes), and only a whole sector can be erased.
 *
 * Power cuts are simulated for tests: flash_set_cut(f, n) lets n more byte
 * operations happen (a programmed byte is one; an erase is one per byte of
 * the sector, done from the sector's first byte on), then every write
 * stops and fails with FLASH_ECUT, leaving exactly the bytes done so far.
 */
#ifndef SEKEYFS_FLASH_H
#define SEKEYFS_FLASH_H

#include <stddef.h>
#include <stdint.h>

#define FLASH_SIZE     (2u * 1024u * 1024u)
#define FLASH_SECTORS  24

enum flash_err {
	FLASH_OK = 0,
	FLASH_EIO = -1,      /* the host file failed */
	FLASH_ERANGE = -2,   /* outside the flash or across a sector */
	FLASH_EPROGRAM = -3, /* would set a bit that is 0 */
	FLASH_ECUT = -4,     /* simulated power cut */
};

struct flash;

/* Open (create: make an erased image if missing) the image file. */
int flash_open(struct flash **out, const char *path, int create);
/* An in-memory flash for tests; contents copied from image if not NULL. */
int flash_open_mem(struct flash **out, const uint8_t *image);
void flash_close(struct flash *f);

uint32_t flash_sector_offset(unsigned sector);
uint32_t flash_sector_size(unsigned sector);

int flash_read(struct flash *f, uint32_t off, void *buf, size_t len);
/* Program len bytes; they must lie within one sector. */
int flash_program(struct flash *f, uint32_t off, const void *buf, size_t len);
int flash_erase(struct flash *f, unsigned sector);
/* Make program/erase durable (msync/fsync of the image file). */
int flash_sync(struct flash *f);

/* Tests: budget of byte operations before a cut; -1 = no cut.  Returns
 * the bytes operated on so far, so a script can be measured first. */
void flash_set_cut(struct flash *f, long long budget);
long long flash_ops(const struct flash *f);
/* Tests: a copy of the whole image (FLASH_SIZE bytes). */
int flash_snapshot(const struct flash *f, uint8_t *out);

#endif
