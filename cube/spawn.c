/*
 * spawn.c - starting the emulator: finding the secube-emu binary, running
 * `secube-emu DIR` (it daemonizes; its parent exits 0 once the socket
 * listens) for cube_open's auto-start, and `secube-emu --create DIR` for
 * cube_create_emulated.  posix_spawn, stdin/stdout on /dev/null, stderr
 * into a pipe so a failure's reason reaches the user.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "transport.h"

extern char **environ;

/* secube-emu's exit status when another emulator already serves DIR. */
#define EMU_EXIT_BUSY 3
/* How long the emulator's parent may take to report it listens. */
#define SPAWN_WAIT_MS 15000

static int is_executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

const char *cube_emulator_path(void)
{
	/* Per thread, so no state is shared; valid until the next call. */
	static _Thread_local char path[PATH_MAX];
	const char *env = getenv("SECUBE_EMU");
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		slash = strrchr(path, '/');
		if (slash && (size_t)(slash - path) + sizeof("/secube-emu") <= sizeof(path)) {
			strcpy(slash, "/secube-emu");
			if (is_executable(path))
				return path;
		}
	}
	return "secube-emu";
}

/* Read what the child wrote to stderr (without blocking: a daemon may keep
 * the pipe open) into why as one line. */
static void read_stderr(int fd, char *why, size_t cap)
{
	size_t have = 0;
	ssize_t n;

	if (cap == 0)
		return;
	while (have + 1 < cap) {
		n = read(fd, why + have, cap - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	why[have] = '\0';
	while (have > 0 && (why[have - 1] == '\n' || why[have - 1] == '\r'))
		why[--have] = '\0';
	for (size_t i = 0; i < have; i++)
		if (why[i] == '\n')
			why[i] = ' ';
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait for pid up to SPAWN_WAIT_MS; its exit status, -1 if it had to be
 * killed, -2 if it could not be waited for (SIGCHLD ignored). */
static int wait_child(pid_t pid)
{
	int64_t deadline = cube_now_ms() + SPAWN_WAIT_MS;
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -2;
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (cube_now_ms() > deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		sleep_ms(5);
	}
}

/* Run the emulator with args; its exit status as wait_child, or -3 if it
 * could not be started (why says so).  why gets its stderr. */
static int run_emulator(char *const argv[], char *why, size_t cap)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2];
	pid_t pid;
	int rc, status;

	why[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		snprintf(why, cap, "pipe: %s", strerror(errno));
		return -3;
	}
	if (posix_spawn_file_actions_init(&fa) != 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		snprintf(why, cap, "posix_spawn_file_actions_init failed");
		return -3;
	}
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	if (rc == 0)
		rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		snprintf(why, cap, "cannot run %s: %s (set SECUBE_EMU to its path)", argv[0],
			 strerror(rc));
		return -3;
	}
	status = wait_child(pid);
	if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) == 0)
		read_stderr(pipefd[0], why, cap);
	close(pipefd[0]);
	return status;
}

/* Turn a bad exit status into the reason, keeping the child's own words. */
static void explain_status(const char *emu, int status, char *why, size_t cap)
{
	char own[384];

	snprintf(own, sizeof(own), "%s", why);
	if (status == -1)
		snprintf(why, cap, "%s did not report ready within %d s", emu, SPAWN_WAIT_MS / 1000);
	else if (own[0])
		snprintf(why, cap, "%s", own);
	else
		snprintf(why, cap, "%s exited with status %d", emu, status);
}

int cube_spawn_emulator(const char *dir, char *err, size_t err_cap)
{
	const char *emu = cube_emulator_path();
	char *argv[] = { (char *)(uintptr_t)emu, (char *)(uintptr_t)dir, NULL };
	int status = run_emulator(argv, err, err_cap);

	if (status == 0 || status == -2)
		return 0; /* -2: not waitable; the connect retries tell */
	if (status == EMU_EXIT_BUSY)
		return 1; /* another client started one first */
	if (status != -3)
		explain_status(emu, status, err, err_cap);
	return CUBE_ETRANSPORT;
}

int cube_create_emulated(const char *dir, char *err_text, size_t err_cap)
{
	const char *emu = cube_emulator_path();
	char *argv[] = { (char *)(uintptr_t)emu, "--create", (char *)(uintptr_t)dir, NULL };
	char why[512], flash[PATH_MAX];
	struct stat st;
	int status;

	if (!dir || !*dir) {
		cube_set_text(err_text, err_cap, "no directory given");
		return CUBE_EINVAL;
	}
	if ((size_t)snprintf(flash, sizeof(flash), "%s/flash.img", dir) >= sizeof(flash)) {
		cube_set_text(err_text, err_cap, "path too long: %s", dir);
		return CUBE_EINVAL;
	}
	if (stat(flash, &st) == 0) {
		cube_set_text(err_text, err_cap, "%s already holds a cube", dir);
		return CUBE_EEXIST;
	}
	status = run_emulator(argv, why, sizeof(why));
	if (status == 0 || (status == -2 && stat(flash, &st) == 0))
		return CUBE_OK;
	if (status != -3)
		explain_status(emu, status, why, sizeof(why));
	cube_set_text(err_text, err_cap, "cannot create a cube in %s: %s", dir, why);
	return CUBE_EDEVICE;
}
