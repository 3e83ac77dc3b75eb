/*
 * fuzz_fs_args.c - libFuzzer target for the sekeyfs command-line parser
 * (sekeyfs_args_parse / sekeyfs_args_free in fs/mount.c): our options as
 * --name VALUE, --name=VALUE and -o name=value, mixed with libfuse's own
 * (fuse_opt_parse, fuse_parse_cmdline).  Command lines come from fstab
 * lines and scripts, so every form must be refused cleanly, never crash,
 * leak or read past a string.
 *
 * Input: the arguments separated by NUL bytes (at most MAX_ARGS of them;
 * argv[0] is "sekeyfs").  Each argument is its own heap string so ASan sees
 * any read past it.
 * Side effects: the parser only resolves paths (realpath of BACKING, of the
 * device directory and of the mountpoint: lstat/readlink, nothing opened);
 * it must not read the PIN (the file of --pin-file is read later, by
 * main.c).  stdout and stderr are swapped for memory streams around the
 * call, so the fuzzer's log stays small and what the parser prints is
 * checked:
 *  - the result is 0 or -1; nothing goes to stdout (usage is main.c's);
 *    stderr gets a bounded amount (a few messages, not one per byte);
 *  - after 0 (and neither --help nor --version): BACKING and the device
 *    spec are absolute ("dir:/..." or "usb:..."), connections in 1..64,
 *    --init has --key or --updates, --rekey has --updates, a mount has a
 *    mountpoint, --recipients / --group only with --init and --updates;
 *  - no PIN kept; sekeyfs_args_free leaves the struct zeroed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"

#define MAX_ARGS 48
#define STDERR_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void check_result(const struct sekeyfs_args *a)
{
	if (a->help || a->version)
		return;
	if (!a->backing || a->backing[0] != '/' || !a->device)
		abort();
	if (strncmp(a->device, "usb:", 4) != 0 && strncmp(a->device, "dir:/", 5) != 0)
		abort();
	if (a->connections < 1 || a->connections > 64)
		abort();
	if ((a->recipients || a->group) && (!a->init || !a->updates || (a->recipients && a->group)))
		abort();
	if (a->init && !a->key_id && !a->updates)
		abort();
	if (!a->init && a->rekey && !a->updates)
		abort();
	if (!a->init && !a->rekey && !a->cmd.mountpoint)
		abort();
	if (a->pin_kept)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	struct sekeyfs_args a;
	FILE *saved_out = stdout, *saved_err = stderr, *out_mem, *err_mem;
	char *out_buf = NULL, *err_buf = NULL;
	size_t out_len = 0, err_len = 0, at = 0, n;
	const uint8_t *end;
	int argc = 1, rc, i;

	argv[0] = strdup("sekeyfs");
	if (!argv[0])
		abort();
	while (at < size && argc <= MAX_ARGS) {
		end = memchr(data + at, 0, size - at);
		n = end ? (size_t)(end - (data + at)) : size - at;
		argv[argc] = malloc(n + 1);
		if (!argv[argc])
			abort();
		memcpy(argv[argc], data + at, n);
		argv[argc][n] = '\0';
		argc++;
		at += n + 1;
	}
	argv[argc] = NULL;

	out_mem = open_memstream(&out_buf, &out_len);
	err_mem = open_memstream(&err_buf, &err_len);
	if (!out_mem || !err_mem)
		abort();
	stdout = out_mem;
	stderr = err_mem;
	rc = sekeyfs_args_parse(&a, argc, argv);
	stdout = saved_out;
	stderr = saved_err;
	if (fclose(out_mem) != 0 || fclose(err_mem) != 0)
		abort();

	if (rc != 0 && rc != -1)
		abort();
	if (out_len != 0)
		abort();
	if (err_len > STDERR_MAX)
		abort();
	if (rc == 0)
		check_result(&a);
	sekeyfs_args_free(&a);
	if (!all_zero(&a, sizeof(a)))
		abort();
	free(out_buf);
	free(err_buf);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}
