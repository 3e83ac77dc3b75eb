/*
 * cli.h - what every command-line program of sekeyfs shares: reading a PIN
 * without it ever being on the command line, JSON string output, number
 * parsing with range checks.
 */
#ifndef SEKEYFS_TOOLS_CLI_H
#define SEKEYFS_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes shared by the tools (documented in each man page). */
enum cli_exit {
	CLI_OK = 0,
	CLI_USAGE = 1,
	CLI_DAMAGED = 2,   /* integrity failure found */
	CLI_KEY = 3,       /* no such key / key may not do this */
	CLI_CUBE = 4,      /* cube unreachable, wrong PIN, locked */
	CLI_IO = 5,        /* file I/O */
};

/*
 * Get a PIN into pin[cap]: from file (first line) if file is set, else
 * from fd if fd >= 0, else from env var env_fd naming an fd, else asked on
 * /dev/tty with echo off using prompt.  Returns 0, or -1 with a message on
 * stderr.  The caller wipes pin (cli_wipe) after use.
 */
int cli_read_pin(const char *file, int fd, const char *prompt, char *pin, size_t cap);
void cli_wipe(void *p, size_t n);

/* Print s as a JSON string literal (with quotes) to out. */
void cli_json_str(FILE *out, const char *s);
/* Lower-case hex of n bytes into out (cap >= 2n + 1). */
void cli_hex(const uint8_t *p, size_t n, char *out);
/* Parse an unsigned decimal (or 0x hex) in [min, max]; 0 ok, -1 bad. */
int cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* A progress bar on stderr when it is a terminal: done of total, label. */
void cli_progress(const char *label, uint64_t done, uint64_t total);

#endif
