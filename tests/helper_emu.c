/*
 * helper_emu.c - emulated cubes for tests (see helper_emu.h): creation,
 * factory-init with known PINs, kill by PID file, and a cleanup that runs
 * even when a test fails or times out.
 */
#include "helper_emu.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Test-helper state: the base directory and who made it (Check forks a
 * child per test; only the creator cleans up at exit). */
static char emu_base[256];
static pid_t emu_base_owner;

static void at_exit_cleanup(void)
{
	if (emu_base_owner == getpid())
		emu_suite_end();
}

static void set_default_emulator(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n;
	char *slash;

	if (getenv("SECUBE_EMU"))
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../bin/secube-emu", exe);
	setenv("SECUBE_EMU", path, 0);
}

void emu_suite_begin(void)
{
	char tmpl[] = "/tmp/cube-test-XXXXXX";

	if (emu_base[0])
		return;
	set_default_emulator();
	setenv("SECUBE_TIMEOUT_MS", "10000", 0);
	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(emu_base, sizeof(emu_base), "%s", tmpl);
	emu_base_owner = getpid();
	atexit(at_exit_cleanup);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int emu_rmtree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void emu_suite_end(void)
{
	DIR *d;
	struct dirent *de;

	if (!emu_base[0])
		return;
	d = opendir(emu_base);
	while (d && (de = readdir(d)) != NULL) {
		struct emu e;

		if (de->d_name[0] == '.')
			continue;
		snprintf(e.dir, sizeof(e.dir), "%s/%s", emu_base, de->d_name);
		emu_kill(&e);
	}
	if (d)
		closedir(d);
	emu_rmtree(emu_base);
	emu_base[0] = '\0';
}

static void new_dir(struct emu *e)
{
	static unsigned counter; /* per process; the PID keeps forks apart */
	char err[512];
	int rc;

	ck_assert_msg(emu_base[0], "call emu_suite_begin() in main first");
	snprintf(e->dir, sizeof(e->dir), "%s/cube-%ld-%u", emu_base, (long)getpid(), counter++);
	rc = cube_create_emulated(e->dir, err, sizeof(err));
	ck_assert_msg(rc == CUBE_OK, "cube_create_emulated(%s): %s", e->dir, err);
}

void emu_new_blank(struct emu *e)
{
	new_dir(e);
}

void emu_new(struct emu *e)
{
	struct cube *c;
	int rc;

	new_dir(e);
	c = emu_open(e);
	rc = cube_factory_init(c, EMU_ADMIN_PIN, EMU_USER_PIN, 0, 0);
	ck_assert_msg(rc == CUBE_OK, "factory init: %s", cube_errmsg(c));
	cube_close(c);
}

struct cube *emu_open(const struct emu *e)
{
	struct cube *c = NULL;
	char err[512];
	int rc = cube_open(&c, e->dir, err, sizeof(err));

	ck_assert_msg(rc == CUBE_OK, "cube_open(%s): %s", e->dir, err);
	return c;
}

struct cube *emu_login(const struct emu *e, int role)
{
	struct cube *c = emu_open(e);
	int rc = cube_login(c, role, role == WIRE_ROLE_ADMIN ? EMU_ADMIN_PIN : EMU_USER_PIN);

	ck_assert_msg(rc == CUBE_OK, "login: %s", cube_errmsg(c));
	return c;
}

/* Is pid a live (not zombie) secube-emu? */
static int is_emulator(pid_t pid)
{
	char path[64], comm[64] = "", stat[256] = "";
	FILE *f;
	char *close_paren;

	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	if (strncmp(comm, "secube-emu", 10) != 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(stat, sizeof(stat), f))
		stat[0] = '\0';
	fclose(f);
	close_paren = strrchr(stat, ')');
	return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

pid_t emu_pid(const struct emu *e)
{
	char path[PATH_MAX + 32];
	long pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/secube-emu.pid", e->dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 1 && is_emulator((pid_t)pid) ? (pid_t)pid : 0;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void emu_kill(struct emu *e)
{
	pid_t pid = emu_pid(e);

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	for (int i = 0; i < 500 && is_emulator(pid); i++)
		nap_ms(10);
}

void emu_stop(struct emu *e)
{
	pid_t pid = emu_pid(e);

	ck_assert_msg(pid > 0, "no emulator running for %s", e->dir);
	kill(pid, SIGSTOP);
}

void emu_cont(struct emu *e)
{
	pid_t pid = emu_pid(e);

	if (pid > 0)
		kill(pid, SIGCONT);
}

void emu_free(struct emu *e)
{
	emu_kill(e);
	emu_rmtree(e->dir);
}
