/*
 * helper_emu.h - shared test helper: emulated cubes in temporary
 * directories, factory-initialised with known PINs, and their cleanup.
 *
 * Every cube lives under one base directory made by emu_suite_begin().
 * emu_suite_end() (also run at exit of the process that called
 * emu_suite_begin, never of Check's forked test children) kills each
 * emulator by the PID in DIR/secube-emu.pid and removes the base, so a
 * failed, crashed or timed-out test leaves no process and no directory.
 *
 * Usage in a Check program:
 *   int main(void) { emu_suite_begin(); ... srunner_run_all ...; emu_suite_end(); }
 *   START_TEST(t) { struct emu e; emu_new(&e); struct cube *c = emu_login(&e,
 *       WIRE_ROLE_USER); ... cube_close(c); emu_free(&e); }
 *
 * The emulator binary: SECUBE_EMU if set, else ../bin/secube-emu beside
 * the test program (build/tests/x -> build/bin/secube-emu).
 */
#ifndef SEKEYFS_TESTS_HELPER_EMU_H
#define SEKEYFS_TESTS_HELPER_EMU_H

#include <limits.h>
#include <sys/types.h>

#include "cube/cube.h"

#define EMU_ADMIN_PIN "admin-0000"
#define EMU_USER_PIN  "user-0000"
#define EMU_USER_TRIES  5
#define EMU_ADMIN_TRIES 10

struct emu {
	char dir[PATH_MAX]; /* the device directory (absolute) */
};

/* Make the base directory, point SECUBE_EMU at the built emulator and set
 * SECUBE_TIMEOUT_MS to 10 s unless the environment says otherwise. */
void emu_suite_begin(void);
/* Kill every emulator under the base and remove it.  Idempotent. */
void emu_suite_end(void);

/* A fresh cube under the base, factory-initialised with EMU_ADMIN_PIN and
 * EMU_USER_PIN (default tries); its emulator is running.  Fails the test
 * (ck_abort) on error. */
void emu_new(struct emu *e);
/* The same, but left blank (created, emulator not started). */
void emu_new_blank(struct emu *e);
/* cube_open(e->dir); fails the test on error. */
struct cube *emu_open(const struct emu *e);
/* emu_open + cube_login(role) with the known PIN; fails the test on error. */
struct cube *emu_login(const struct emu *e, int role);

/* PID in DIR/secube-emu.pid if that process is alive and is secube-emu, else 0. */
pid_t emu_pid(const struct emu *e);
/* SIGKILL the emulator (by its PID file) and wait until it is gone. */
void emu_kill(struct emu *e);
/* SIGSTOP / SIGCONT it (hang tests). */
void emu_stop(struct emu *e);
void emu_cont(struct emu *e);
/* emu_kill and remove the directory. */
void emu_free(struct emu *e);

/* rm -rf path (no symlinks followed).  0 or -1. */
int emu_rmtree(const char *path);

#endif
