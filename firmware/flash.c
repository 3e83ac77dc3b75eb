/*
 * flash.c - the emulated STM32F429 NOR flash (flash.h): 2 MiB in two banks
 * of 4 x 16 KiB, 1 x 64 KiB and 7 x 128 KiB sectors, kept in a host file
 * mapped with mmap (MAP_SHARED) or, for tests, in a heap buffer.
 *
 * NOR rules enforced: program only clears bits (a 1 over a 0 is refused
 * before any byte changes, as the SEcube simulator checks), program stays
 * inside one sector, erase sets a whole sector to 0xff.
 *
 * Power-cut simulation: every programmed byte and every erased byte is one
 * "byte operation"; with a budget set, the operation that would exceed it
 * stops after the budget's last byte and returns FLASH_ECUT, as does every
 * later write.  Programs go from the first byte on, erases too, so a cut
 * leaves a prefix done: the model the key store's recovery is built for.
 */
#include "firmware/flash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct flash {
	uint8_t *mem;        /* FLASH_SIZE bytes: the mapping or the heap copy */
	int fd;              /* the image file, -1 for an in-memory flash */
	long long budget;    /* byte operations left before a cut; -1 = none */
	long long ops;       /* byte operations done since open */
};

/* Per bank: 4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB (RM0090 table 6). */
#define BANK_SECTORS 12u
#define BANK_SIZE    (FLASH_SIZE / 2u)

static uint32_t bank_sector_offset(unsigned s)
{
	if (s < 4)
		return s * 16384u;
	if (s == 4)
		return 65536u;
	return 131072u * (s - 4u);
}

uint32_t flash_sector_offset(unsigned sector)
{
	if (sector >= FLASH_SECTORS)
		return FLASH_SIZE;
	return (sector / BANK_SECTORS) * BANK_SIZE + bank_sector_offset(sector % BANK_SECTORS);
}

uint32_t flash_sector_size(unsigned sector)
{
	unsigned s = sector % BANK_SECTORS;

	if (sector >= FLASH_SECTORS)
		return 0;
	if (s < 4)
		return 16384u;
	if (s == 4)
		return 65536u;
	return 131072u;
}

/* The sector holding byte off (off < FLASH_SIZE). */
static unsigned sector_of(uint32_t off)
{
	unsigned s = 0;

	while (s + 1 < FLASH_SECTORS && flash_sector_offset(s + 1) <= off)
		s++;
	return s;
}

static int map_file(struct flash *f)
{
	void *p = mmap(NULL, FLASH_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);

	if (p == MAP_FAILED)
		return FLASH_EIO;
	f->mem = p;
	return FLASH_OK;
}

/* A new image is written as 0xff bytes (not a sparse file of zeros). */
static int fill_erased(int fd)
{
	uint8_t chunk[65536];
	uint32_t done = 0;

	memset(chunk, 0xff, sizeof(chunk));
	while (done < FLASH_SIZE) {
		ssize_t n = pwrite(fd, chunk, sizeof(chunk), (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return FLASH_EIO;
		done += (uint32_t)n;
	}
	return fsync(fd) == 0 ? FLASH_OK : FLASH_EIO;
}

int flash_open(struct flash **out, const char *path, int create)
{
	struct flash *f;
	struct stat st;
	int rc = FLASH_EIO;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return FLASH_EIO;
	f->budget = -1;
	f->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (f->fd < 0)
		goto fail;
	if (fstat(f->fd, &st) != 0)
		goto fail;
	if (st.st_size == 0 && create) {
		if (fill_erased(f->fd) != FLASH_OK)
			goto fail;
	} else if (st.st_size != (off_t)FLASH_SIZE) {
		rc = FLASH_ERANGE; /* not a flash image */
		goto fail;
	}
	rc = map_file(f);
	if (rc != FLASH_OK)
		goto fail;
	*out = f;
	return FLASH_OK;
fail:
	if (f->fd >= 0)
		close(f->fd);
	free(f);
	return rc;
}

int flash_open_mem(struct flash **out, const uint8_t *image)
{
	struct flash *f;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return FLASH_EIO;
	f->mem = malloc(FLASH_SIZE);
	if (!f->mem) {
		free(f);
		return FLASH_EIO;
	}
	if (image)
		memcpy(f->mem, image, FLASH_SIZE);
	else
		memset(f->mem, 0xff, FLASH_SIZE);
	f->fd = -1;
	f->budget = -1;
	*out = f;
	return FLASH_OK;
}

void flash_close(struct flash *f)
{
	if (!f)
		return;
	if (f->fd >= 0) {
		msync(f->mem, FLASH_SIZE, MS_SYNC);
		munmap(f->mem, FLASH_SIZE);
		close(f->fd);
	} else {
		free(f->mem);
	}
	free(f);
}

static int in_range(uint32_t off, size_t len)
{
	return off <= FLASH_SIZE && len <= FLASH_SIZE - off;
}

int flash_read(struct flash *f, uint32_t off, void *buf, size_t len)
{
	if (!in_range(off, len))
		return FLASH_ERANGE;
	memcpy(buf, f->mem + off, len);
	return FLASH_OK;
}

/* How many of want byte operations the budget allows; counts them. */
static size_t take_budget(struct flash *f, size_t want)
{
	size_t allowed = want;

	if (f->budget >= 0 && (long long)want > f->budget)
		allowed = (size_t)f->budget;
	if (f->budget >= 0)
		f->budget -= (long long)allowed;
	f->ops += (long long)allowed;
	return allowed;
}

int flash_program(struct flash *f, uint32_t off, const void *buf, size_t len)
{
	const uint8_t *src = buf;
	size_t i, allowed;
	unsigned s;

	if (len == 0)
		return FLASH_OK;
	if (!in_range(off, len))
		return FLASH_ERANGE;
	s = sector_of(off);
	if (off + len > flash_sector_offset(s) + flash_sector_size(s))
		return FLASH_ERANGE;
	for (i = 0; i < len; i++)
		if (src[i] & (uint8_t)~f->mem[off + i])
			return FLASH_EPROGRAM;
	allowed = take_budget(f, len);
	for (i = 0; i < allowed; i++)
		f->mem[off + i] &= src[i];
	return allowed == len ? FLASH_OK : FLASH_ECUT;
}

int flash_erase(struct flash *f, unsigned sector)
{
	size_t size, allowed;

	if (sector >= FLASH_SECTORS)
		return FLASH_ERANGE;
	size = flash_sector_size(sector);
	allowed = take_budget(f, size);
	memset(f->mem + flash_sector_offset(sector), 0xff, allowed);
	return allowed == size ? FLASH_OK : FLASH_ECUT;
}

int flash_sync(struct flash *f)
{
	if (f->fd < 0)
		return FLASH_OK;
	if (msync(f->mem, FLASH_SIZE, MS_SYNC) != 0)
		return FLASH_EIO;
	return fsync(f->fd) == 0 ? FLASH_OK : FLASH_EIO;
}

void flash_set_cut(struct flash *f, long long budget)
{
	f->budget = budget < 0 ? -1 : budget;
}

long long flash_ops(const struct flash *f)
{
	return f->ops;
}

int flash_snapshot(const struct flash *f, uint8_t *out)
{
	memcpy(out, f->mem, FLASH_SIZE);
	return FLASH_OK;
}
