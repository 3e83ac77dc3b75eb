/*
 * main.c - secube-emu: one emulated SEcube serving a device directory.
 *
 *   secube-emu [--foreground] [--create] DIR
 *
 * DIR/flash.img       the 2 MiB flash (key store, identity, PIN records)
 * DIR/sd/             the "microSD card" folder (the KMS database lives here)
 * DIR/cube.sock       UNIX stream socket, mode 0600: one connection = one session
 * DIR/secube-emu.pid  pid of the serving process
 * DIR/secube-emu.lock flock()ed while an emulator serves DIR
 * DIR/secube-emu.log  log when running in the background
 *
 * --create makes a new blank cube (identity only) and exits.  Otherwise the
 * program serves: it daemonizes unless --foreground, and the parent exits
 * 0 only once the socket listens, so a client that started it can connect
 * at once.  Exit status: 0 ok, 1 cannot start or bad cube, 2 usage, 3
 * another emulator already serves DIR.
 *
 * The transport is a poll() loop over the listening socket and up to
 * MAX_CONNS connections.  Each connection accumulates one frame (header,
 * then the declared rest, capped by WIRE_MAX_BODY) with non-blocking
 * reads; complete frames are handed to device_handle() one at a time, as
 * the real firmware runs them.  A HELLO with WIRE_F_SHM may carry a memfd
 * (SCM_RIGHTS) that becomes the session's shared bulk region.
 *
 * Sections: paths and logging; create; start-up (lock, daemon, socket);
 * connections; the loop; main.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "../wire/buf.h"
#include "fwcrypto.h"
#include "keystore.h"
#include "../wire/frame.h"

#define MAX_CONNS 32
#define EXIT_USAGE 2
#define EXIT_BUSY 3

/* ---- paths and logging ---- */

struct emu {
	char dir[PATH_MAX];
	char flash[PATH_MAX], sd[PATH_MAX], sock[PATH_MAX], pid[PATH_MAX], lock[PATH_MAX], log[PATH_MAX];
	int foreground;
	int lock_fd, listen_fd, sig_fd;
	struct keystore *ks;
	struct device *dev;
};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
	fprintf(stderr, "%s secube-emu[%ld]: ", when, (long)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static int join(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	return n > 0 && n < PATH_MAX ? 0 : -1;
}

static int set_paths(struct emu *e, const char *dir)
{
	if (!realpath(dir, e->dir))
		return -1;
	if (join(e->flash, e->dir, "flash.img") || join(e->sd, e->dir, "sd") ||
	    join(e->sock, e->dir, "cube.sock") || join(e->pid, e->dir, "secube-emu.pid") ||
	    join(e->lock, e->dir, "secube-emu.lock") || join(e->log, e->dir, "secube-emu.log")) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* ---- the lock ---- */

/* Take DIR's lock; EXIT_BUSY (message printed) if another emulator has it. */
static int take_lock(struct emu *e)
{
	char pid[32] = "?";
	ssize_t n;
	int fd;

	e->lock_fd = open(e->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->lock_fd < 0) {
		fprintf(stderr, "secube-emu: %s: %s\n", e->lock, strerror(errno));
		return 1;
	}
	if (flock(e->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno != EWOULDBLOCK) {
		fprintf(stderr, "secube-emu: lock %s: %s\n", e->lock, strerror(errno));
		return 1;
	}
	fd = open(e->pid, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
	}
	fprintf(stderr, "secube-emu: another emulator (pid %s) already serves %s\n",
		pid[0] ? pid : "?", e->dir);
	return EXIT_BUSY;
}

/* ---- create ---- */

static int create_cube(const char *dir)
{
	struct emu e;
	struct keystore *ks = NULL;
	uint8_t serial[WIRE_SERIAL_LEN], pub[WIRE_PUBKEY_LEN];
	struct device *dev = NULL;
	struct stat st;
	int rc;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "secube-emu: mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	memset(&e, 0, sizeof(e));
	if (set_paths(&e, dir) != 0) {
		fprintf(stderr, "secube-emu: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	rc = take_lock(&e);
	if (rc != 0)
		return rc;
	if (stat(e.flash, &st) == 0) {
		fprintf(stderr, "secube-emu: %s already holds a cube (%s exists)\n", e.dir, e.flash);
		return 1;
	}
	if (mkdir(e.sd, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "secube-emu: mkdir %s: %s\n", e.sd, strerror(errno));
		return 1;
	}
	rc = ks_open(&ks, e.flash, 1);
	if (rc == KS_OK)
		rc = device_create_identity(ks) == DEVICE_OK ? 0 : -1;
	if (rc == 0)
		rc = device_open(&dev, ks, NULL) == DEVICE_OK ? 0 : -1;
	if (rc != 0) {
		fprintf(stderr, "secube-emu: cannot create the cube in %s\n", e.dir);
		ks_close(ks);
		unlink(e.flash);
		return 1;
	}
	device_identity(dev, serial, pub);
	printf("created blank cube ");
	for (rc = 0; rc < WIRE_SERIAL_LEN; rc++)
		printf("%02x", serial[rc]);
	printf(" in %s\n", e.dir);
	device_close(dev);
	ks_close(ks);
	return 0;
}

/* ---- start-up ---- */

static void harden(void)
{
	struct rlimit no_core = { 0, 0 };

	/* No core dumps, no ptrace from other processes of the same user. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		perror("secube-emu: prctl(PR_SET_DUMPABLE)");
	if (setrlimit(RLIMIT_CORE, &no_core) != 0)
		perror("secube-emu: setrlimit(RLIMIT_CORE)");
}

static int open_socket(struct emu *e, char *why, size_t cap)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(e->sock) >= sizeof(sa.sun_path)) {
		snprintf(why, cap, "socket path %s is too long for a UNIX socket", e->sock);
		return -1;
	}
	strcpy(sa.sun_path, e->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, cap, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(e->sock); /* stale from a crash: we hold the lock, so nobody serves it */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(e->sock, 0600) != 0 ||
	    listen(fd, 16) != 0) {
		snprintf(why, cap, "bind %s: %s", e->sock, strerror(errno));
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	e->listen_fd = fd;
	return 0;
}

static int write_pid(struct emu *e)
{
	char buf[32];
	int fd, n, ok;

	fd = open(e->pid, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	ok = write(fd, buf, (size_t)n) == n;
	return close(fd) == 0 && ok ? 0 : -1;
}

static int open_signals(struct emu *e)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	e->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return e->sig_fd < 0 ? -1 : 0;
}

/* Everything serving needs; on failure why says what went wrong. */
static int start(struct emu *e, char *why, size_t cap)
{
	struct stat st;
	int rc;

	if (stat(e->flash, &st) != 0) {
		snprintf(why, cap, "no cube in %s (create one with secube-emu --create %s)", e->dir, e->dir);
		return -1;
	}
	if (mkdir(e->sd, 0700) != 0 && errno != EEXIST) {
		snprintf(why, cap, "mkdir %s: %s", e->sd, strerror(errno));
		return -1;
	}
	rc = ks_open(&e->ks, e->flash, 0);
	if (rc != KS_OK) {
		snprintf(why, cap, "cannot open the flash %s (key store error %d)", e->flash, rc);
		return -1;
	}
	rc = device_open(&e->dev, e->ks, NULL);
	if (rc != DEVICE_OK) {
		snprintf(why, cap, "%s: %s", e->flash, device_strerror(rc));
		return -1;
	}
	if (open_signals(e) != 0) {
		snprintf(why, cap, "signalfd: %s", strerror(errno));
		return -1;
	}
	if (open_socket(e, why, cap) != 0)
		return -1;
	if (write_pid(e) != 0) {
		snprintf(why, cap, "%s: %s", e->pid, strerror(errno));
		unlink(e->sock);
		return -1;
	}
	return 0;
}

/* Fork; the parent waits for the child's word on a pipe and exits with it:
 * 0 once the child listens, 1 with the child's reason otherwise.  Returns
 * in the child with *report_fd the write end. */
static int daemonize(struct emu *e, int *report_fd)
{
	char msg[512];
	int p[2], logfd, devnull;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		n = read(p[0], msg, sizeof(msg) - 1);
		if (n == 1 && msg[0] == '\0')
			exit(0);
		msg[n > 1 ? n : 0] = '\0';
		fprintf(stderr, "secube-emu: %s\n", n > 1 ? msg + 1 : "the emulator died while starting");
		exit(1);
	}
	close(p[0]);
	*report_fd = p[1];
	if (setsid() < 0)
		return -1;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	logfd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (devnull < 0 || logfd < 0)
		return -1;
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(logfd, 2) < 0)
		return -1;
	close(devnull);
	close(logfd);
	return chdir("/");
}

static void report_start(int fd, const char *why)
{
	char msg[512];
	size_t n;

	if (fd < 0)
		return;
	msg[0] = why ? 1 : 0;
	n = why ? (size_t)snprintf(msg + 1, sizeof(msg) - 1, "%.500s", why) + 1 : 1;
	if (n > sizeof(msg))
		n = sizeof(msg);
	if (write(fd, msg, n) < 0)
		logmsg("cannot report start-up to the parent: %s", strerror(errno));
	close(fd);
}

/* ---- connections ---- */

struct conn {
	int fd;                 /* -1: free slot */
	struct session s;
	uint8_t *in;            /* DEVICE_FRAME_MAX */
	size_t have, need;      /* bytes read / bytes of the frame being read */
	size_t out_len, sent;   /* response being sent (in out) */
	uint8_t *out;           /* DEVICE_FRAME_MAX: the pending response */
	int close_after;        /* framing lost: close once the reply is out */
	int pending_fd;         /* a descriptor received with the frame */
	void *shm;
};

static void conn_unmap(struct conn *c)
{
	if (c->shm)
		munmap(c->shm, WIRE_SHM_SIZE);
	c->shm = NULL;
	c->s.shm = NULL;
	c->s.shm_size = 0;
}

static void conn_close(struct emu *e, struct conn *c)
{
	device_session_end(e->dev, &c->s);
	conn_unmap(c);
	if (c->pending_fd >= 0)
		close(c->pending_fd);
	close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->pending_fd = -1;
}

static int conn_open(struct conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->pending_fd = -1;
	c->need = WIRE_HEADER_LEN;
	device_session_init(&c->s);
	c->in = malloc(DEVICE_FRAME_MAX);
	c->out = malloc(DEVICE_FRAME_MAX);
	return c->in && c->out ? 0 : -1;
}

/* Keep at most one received descriptor; close the rest. */
static void take_fds(struct conn *c, struct msghdr *mh)
{
	struct cmsghdr *cm;
	size_t i, n;
	int fd;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->pending_fd >= 0)
				close(c->pending_fd);
			c->pending_fd = fd;
		}
	}
}

/* Map the memfd of a HELLO with WIRE_F_SHM.  The region must be exactly
 * WIRE_SHM_SIZE and sealed against shrinking (else a truncate by the host
 * would fault the device on access); we add the seal if the host did not. */
static void map_shm(struct conn *c)
{
	struct stat st;
	int fd = c->pending_fd, seals;
	void *p;

	c->pending_fd = -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)WIRE_SHM_SIZE) {
		logmsg("shared memory refused: not a %u-byte memfd", WIRE_SHM_SIZE);
		goto out;
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		logmsg("shared memory refused: cannot seal it against shrinking (create it with MFD_ALLOW_SEALING)");
		goto out;
	}
	p = mmap(NULL, WIRE_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		logmsg("shared memory refused: mmap: %s", strerror(errno));
		goto out;
	}
	conn_unmap(c);
	c->shm = p;
	c->s.shm = p;
	c->s.shm_size = WIRE_SHM_SIZE;
out:
	close(fd);
}

/* A complete frame is in c->in: run it and queue the reply. */
static void conn_request(struct emu *e, struct conn *c)
{
	struct wire_header h;
	int hello_shm;

	hello_shm = wire_header_parse(c->in, &h) == WIRE_ST_OK && h.op == WIRE_OP_HELLO &&
		    (h.flags & WIRE_F_SHM) && c->have == c->need;
	if (hello_shm && c->pending_fd >= 0)
		map_shm(c);
	if (c->pending_fd >= 0) { /* a descriptor with any other frame is dropped */
		close(c->pending_fd);
		c->pending_fd = -1;
	}
	if (device_handle(e->dev, &c->s, c->in, c->have, c->out, DEVICE_FRAME_MAX, &c->out_len) != DEVICE_OK)
		c->out_len = 0;
	if (hello_shm && c->shm && wire_rd32(c->out + 8) != WIRE_ST_OK)
		conn_unmap(c);
	c->sent = 0;
	c->have = 0;
	c->need = WIRE_HEADER_LEN;
	fw_wipe(c->in, WIRE_HEADER_LEN); /* the body may hold sealed PINs: overwritten by the next */
}

/* One non-blocking read toward the current frame: >0 bytes read, 0 none
 * available now, -1 to close. */
static ssize_t conn_recv(struct conn *c)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { c->in + c->have, c->need - c->have };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n;

	n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	take_fds(c, &mh);
	return n == 0 ? -1 : n;
}

/* Read what is there: the header, then the rest it declares, then run
 * the request.  Returns -1 to close. */
static int conn_read(struct emu *e, struct conn *c)
{
	struct wire_header h;
	ssize_t n;

	for (;;) {
		n = conn_recv(c);
		if (n <= 0)
			return (int)n;
		c->have += (size_t)n;
		if (c->have < c->need)
			continue;
		if (c->need == WIRE_HEADER_LEN) {
			if (wire_header_parse(c->in, &h) != WIRE_ST_OK) {
				c->close_after = 1; /* the next frame cannot be found: reply, close */
				conn_request(e, c);
				return 0;
			}
			c->need = WIRE_HEADER_LEN + wire_frame_rest(&h);
			if (c->have < c->need)
				continue;
		}
		conn_request(e, c);
		return 0;
	}
}

/* Send what is pending.  Returns -1 to close. */
static int conn_write(struct conn *c)
{
	ssize_t n;

	while (c->sent < c->out_len) {
		n = send(c->fd, c->out + c->sent, c->out_len - c->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->sent += (size_t)n;
	}
	c->sent = c->out_len = 0;
	return c->close_after ? -1 : 0;
}

/* ---- the loop ---- */

static void accept_one(struct emu *e, struct conn *conns)
{
	int fd = accept4(e->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;

	if (fd < 0)
		return;
	for (i = 0; i < MAX_CONNS && conns[i].fd >= 0; i++)
		;
	if (i == MAX_CONNS) {
		logmsg("refusing a connection: %d already open", MAX_CONNS);
		close(fd);
		return;
	}
	if (conn_open(&conns[i], fd) != 0) {
		logmsg("refusing a connection: out of memory");
		conn_close(e, &conns[i]);
	}
}

static void serve_conn(struct emu *e, struct conn *c, short revents)
{
	int rc = 0;

	if (revents & POLLOUT)
		rc = conn_write(c);
	else if (revents & (POLLIN | POLLHUP | POLLERR))
		rc = conn_read(e, c);
	if (rc == 0 && c->out_len > c->sent)
		rc = conn_write(c); /* most replies go out at once */
	if (rc != 0)
		conn_close(e, c);
}

static int serve(struct emu *e)
{
	struct conn conns[MAX_CONNS];
	struct pollfd pfd[MAX_CONNS + 2];
	int idx[MAX_CONNS + 2];
	int i, n;

	for (i = 0; i < MAX_CONNS; i++) {
		memset(&conns[i], 0, sizeof(conns[i]));
		conns[i].fd = -1;
		conns[i].pending_fd = -1;
	}
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = e->sig_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = e->listen_fd, .events = POLLIN };
		for (n = 2, i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd < 0)
				continue;
			pfd[n] = (struct pollfd){ .fd = conns[i].fd,
				.events = conns[i].out_len > conns[i].sent ? POLLOUT : POLLIN };
			idx[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		for (i = 2; i < n; i++)
			if (pfd[i].revents)
				serve_conn(e, &conns[idx[i]], pfd[i].revents);
		if (pfd[1].revents & POLLIN)
			accept_one(e, conns);
	}
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0)
			conn_close(e, &conns[i]);
	return 0;
}

static void shutdown_emu(struct emu *e)
{
	if (e->listen_fd >= 0) {
		close(e->listen_fd);
		unlink(e->sock);
		unlink(e->pid);
	}
	device_close(e->dev);
	ks_close(e->ks);
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: secube-emu [--foreground] [--create] DIR\n"
		   "  --create      make a new blank cube in DIR and exit\n"
		   "  --foreground  serve without daemonizing (log to stderr)\n"
		   "exit status: 0 ok, 1 error, 2 usage, 3 DIR already served\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "create", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct emu e;
	char why[2 * PATH_MAX + 256];
	int c, create = 0, report_fd = -1, rc;

	memset(&e, 0, sizeof(e));
	e.lock_fd = e.listen_fd = e.sig_fd = -1;
	while ((c = getopt_long(argc, argv, "fch", opts, NULL)) != -1) {
		switch (c) {
		case 'f': e.foreground = 1; break;
		case 'c': create = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	umask(077);
	harden();
	if (create)
		return create_cube(argv[optind]);
	if (set_paths(&e, argv[optind]) != 0) {
		fprintf(stderr, "secube-emu: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	rc = take_lock(&e);
	if (rc != 0)
		return rc;
	if (!e.foreground && daemonize(&e, &report_fd) != 0) {
		snprintf(why, sizeof(why), "cannot daemonize: %s", strerror(errno));
		report_start(report_fd, why);
		return 1;
	}
	if (start(&e, why, sizeof(why)) != 0) {
		if (e.foreground)
			fprintf(stderr, "secube-emu: %s\n", why);
		else
			logmsg("%s", why);
		report_start(report_fd, why);
		shutdown_emu(&e);
		return 1;
	}
	logmsg("serving %s", e.dir);
	report_start(report_fd, NULL);
	serve(&e);
	logmsg("stopping");
	shutdown_emu(&e);
	return 0;
}
