/*
 * transport_unix.c - frames over the UNIX stream socket DIR/cube.sock of an
 * emulated cube (secube-emu).  One request is in flight at a time, so a
 * reply is read with as few recv calls as the kernel allows and anything
 * past its end is a protocol error.  Sends use one sendmsg of
 * header + body + tag (MSG_NOSIGNAL: a dead emulator is an error, not a
 * SIGPIPE); both directions have a timeout, so a hung or dead peer never
 * hangs the caller.  If no emulator serves DIR but DIR holds a cube, the
 * emulator is started (spawn.c) and the connect retried.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cube.h"
#include "transport.h"

struct unix_transport {
	struct cube_transport base;
	int fd;
};

/* How long to keep retrying connect after starting the emulator. */
#define CONNECT_RETRY_MS 3000

static int fail_errno(struct cube_transport *t, const char *what, int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK)
		snprintf(t->why, sizeof(t->why), "no %s within %d ms (device hung?)", what,
			 t->timeout_ms);
	else if (err == EPIPE || err == ECONNRESET)
		snprintf(t->why, sizeof(t->why), "connection closed by the device");
	else
		snprintf(t->why, sizeof(t->why), "%s failed: %s", what, strerror(err));
	return CUBE_ETRANSPORT;
}

/* Advance an iovec array past n sent bytes. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

static int unix_send(struct cube_transport *t, const uint8_t *hdr, const uint8_t *body,
		     size_t body_len, const uint8_t *tag, int pass_fd)
{
	struct unix_transport *u = (struct unix_transport *)t;
	struct iovec vec[3], *iov = vec;
	int cnt = 0;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	int64_t deadline = cube_now_ms() + t->timeout_ms;

	vec[cnt++] = (struct iovec){ (void *)(uintptr_t)hdr, WIRE_HEADER_LEN };
	if (body_len)
		vec[cnt++] = (struct iovec){ (void *)(uintptr_t)body, body_len };
	if (tag)
		vec[cnt++] = (struct iovec){ (void *)(uintptr_t)tag, WIRE_TAG_LEN };
	while (cnt > 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n;

		if (pass_fd >= 0) {
			struct cmsghdr *cm;

			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
		}
		n = sendmsg(u->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_errno(t, "send", errno);
		pass_fd = -1; /* the descriptor went with the first byte */
		iov_advance(&iov, &cnt, (size_t)n);
		if (cnt > 0 && cube_now_ms() > deadline)
			return fail_errno(t, "send", EAGAIN);
	}
	return 0;
}

static int unix_recv(struct cube_transport *t, uint8_t *buf, size_t cap, struct wire_header *h)
{
	struct unix_transport *u = (struct unix_transport *)t;
	size_t have = 0;
	long need = 0;
	int64_t deadline = cube_now_ms() + t->timeout_ms;

	for (;;) {
		size_t want = need > 0 ? (size_t)need - have : cap - have;
		ssize_t n = recv(u->fd, buf + have, want, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_errno(t, "reply", errno);
		if (n == 0) {
			snprintf(t->why, sizeof(t->why), "connection closed by the device%s",
				 have ? " in the middle of a reply" : "");
			return CUBE_ETRANSPORT;
		}
		have += (size_t)n;
		if (need == 0) {
			need = cube_frame_need(t, buf, have, h);
			if (need < 0)
				return CUBE_EPROTO;
			if (need > 0 && (size_t)need > cap) {
				snprintf(t->why, sizeof(t->why), "reply larger than any frame");
				return CUBE_EPROTO;
			}
		}
		if (need > 0 && have > (size_t)need) {
			snprintf(t->why, sizeof(t->why), "device sent bytes past the end of its reply");
			return CUBE_EPROTO;
		}
		if (need > 0 && have == (size_t)need)
			return 0;
		if (cube_now_ms() > deadline)
			return fail_errno(t, "reply", EAGAIN);
	}
}

static void unix_close(struct cube_transport *t)
{
	struct unix_transport *u = (struct unix_transport *)t;

	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

static const struct cube_transport_ops unix_ops = {
	.send_frame = unix_send,
	.recv_frame = unix_recv,
	.close = unix_close,
};

/* Connect to dir/cube.sock; a directory path too long for sun_path is
 * reached through /proc/self/fd.  0 or -1 with errno. */
static int connect_socket(const char *dir, int fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int dfd = -1, rc, saved;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/cube.sock", dir) >=
	    sizeof(sa.sun_path)) {
		dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return -1;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/cube.sock", dfd);
	}
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (rc < 0 && errno == EINTR);
	saved = errno;
	if (dfd >= 0)
		close(dfd);
	errno = saved;
	return rc;
}

static int set_timeouts(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

	int bufsize = (int)CUBE_FRAME_MAX;

	/* Best effort (the kernel caps it): a whole inline frame in one go. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return -1;
	return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A fresh connected socket in *fd, or -1 with errno. */
static int try_connect(const char *dir, int timeout_ms, int *fd)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int saved;

	*fd = -1;
	if (s < 0)
		return -1;
	if (connect_socket(dir, s) == 0 && set_timeouts(s, timeout_ms) == 0) {
		*fd = s;
		return 0;
	}
	saved = errno;
	close(s);
	errno = saved;
	return -1;
}

static int has_flash(const char *dir)
{
	char path[4096];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/flash.img", dir) >= sizeof(path))
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Start the emulator and connect to it; 0 or a CUBE_E* code. */
static int start_and_connect(const char *dir, int timeout_ms, int *fd, char *err, size_t cap)
{
	char why[512];
	int spawn_rc = cube_spawn_emulator(dir, why, sizeof(why));
	int64_t deadline = cube_now_ms() + CONNECT_RETRY_MS;

	/* Even if our emulator failed (another client may have started one
	 * first), a listening socket is what counts. */
	for (;;) {
		if (try_connect(dir, timeout_ms, fd) == 0)
			return 0;
		if (spawn_rc < 0 || cube_now_ms() > deadline)
			break;
		sleep_ms(20);
	}
	if (spawn_rc >= 0)
		snprintf(why, sizeof(why), "it started but %s/cube.sock refuses connections: %s",
			 dir, strerror(errno));
	snprintf(err, cap, "emulator for %s not running and could not be started: %s", dir, why);
	return CUBE_ETRANSPORT;
}

int cube_unix_open(struct cube_transport **out, const char *dir, char *err, size_t err_cap)
{
	struct unix_transport *u;
	int timeout_ms = cube_timeout_from_env();
	int fd = -1, rc;

	*out = NULL;
	if (try_connect(dir, timeout_ms, &fd) != 0) {
		if (errno != ECONNREFUSED && errno != ENOENT) {
			snprintf(err, err_cap, "cannot connect to %s/cube.sock: %s", dir, strerror(errno));
			return errno == ENOTDIR ? CUBE_ENODEV : CUBE_ETRANSPORT;
		}
		if (!has_flash(dir)) {
			snprintf(err, err_cap, "no cube in %s (secube create %s makes one)", dir, dir);
			return CUBE_ENODEV;
		}
		rc = start_and_connect(dir, timeout_ms, &fd, err, err_cap);
		if (rc != 0)
			return rc;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		snprintf(err, err_cap, "out of memory");
		return CUBE_ENOMEM;
	}
	u->base.ops = &unix_ops;
	u->base.timeout_ms = timeout_ms;
	u->base.shm_capable = 1;
	u->fd = fd;
	*out = &u->base;
	return 0;
}
