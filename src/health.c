/* health.c — see health.h. */
#include "health.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>

#include "config.h"

#define REPLY_MAX 512		/* bytes of an answer we look at */

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (ms, CLOCK_MONOTONIC): 0 ready,
 * -1 timed out or failed (errno). */
static int
wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* A wildcard address is reached on the loopback of its family. */
static void
wildcard_to_loopback(struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
}

/* Connect within the deadline: the socket, or -1 with the reason in why. */
static int
connect_to(const struct sockaddr *sa, socklen_t salen, long long deadline,
    char *why, size_t whylen)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, sa, salen) != 0) {
		int e = errno;
		socklen_t el = sizeof(e);
		if (e != EINPROGRESS ||
		    wait_fd(fd, POLLOUT, deadline) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 ||
		    e != 0) {
			if (e == EINPROGRESS)
				e = errno;
			snprintf(why, whylen, "cannot connect: %s",
			    strerror(e));
			close(fd);
			return -1;
		}
	}
	return fd;
}

static int
send_all(int fd, const char *s, long long deadline)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (wait_fd(fd, POLLOUT, deadline) != 0)
			return -1;
	}
	return 0;
}

/* Read until a line ends (or, if to_eof, the peer closes) into buf,
 * NUL-terminated, at most REPLY_MAX bytes.  0, or -1 (errno). */
static int
read_reply(int fd, char *buf, size_t buflen, int to_eof, long long deadline)
{
	size_t len = 0;
	buf[0] = '\0';
	while (len + 1 < buflen) {
		if (!to_eof && memchr(buf, '\n', len) != NULL)
			return 0;
		ssize_t n = recv(fd, buf + len, buflen - 1 - len, 0);
		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
			continue;
		}
		if (n == 0)
			return len > 0 ? 0 : (errno = ECONNRESET, -1);
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		if (wait_fd(fd, POLLIN, deadline) != 0)
			return len > 0 && to_eof ? 0 : -1;
	}
	return 0;
}

/* The first line of s, printable, without its line end. */
static void
first_line(char *s)
{
	s[strcspn(s, "\r\n")] = '\0';
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
}

int
health_smtp(const struct listen_spec *ls, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char why[128], buf[REPLY_MAX + 1];
	long long deadline = now_ms() + HEALTH_TIMEOUT * 1000LL;

	memset(&ss, 0, sizeof(ss));
	if (ls->is_unix) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s",
		    ls->unix_path);
		sslen = sizeof(*sun);
	} else {
		memcpy(&ss, &ls->addr, ls->addrlen);
		sslen = ls->addrlen;
		wildcard_to_loopback(&ss);
	}
	int fd = connect_to((struct sockaddr *)&ss, sslen, deadline, why,
	    sizeof(why));
	if (fd < 0) {
		snprintf(out, outlen, "smtp %s: %s", ls->text, why);
		return -1;
	}
	if (read_reply(fd, buf, sizeof(buf), 0, deadline) != 0) {
		snprintf(out, outlen, "smtp %s: no greeting: %s", ls->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	first_line(buf);
	int ok = strncmp(buf, "220", 3) == 0 &&
	    (buf[3] == ' ' || buf[3] == '-' || buf[3] == '\0');
	if (ok)
		(void)send_all(fd, "QUIT\r\n", deadline);
	close(fd);
	snprintf(out, outlen, "smtp %s: %s", ls->text, buf);
	return ok ? 0 : -1;
}

int
health_http(const char *hostport, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char why[128], buf[REPLY_MAX + 1];
	long long deadline = now_ms() + HEALTH_TIMEOUT * 1000LL;

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss,
	    &sslen) != 0) {
		snprintf(out, outlen, "http %s: not host:port", hostport);
		return -1;
	}
	wildcard_to_loopback(&ss);
	int fd = connect_to((struct sockaddr *)&ss, (socklen_t)sslen,
	    deadline, why, sizeof(why));
	if (fd < 0) {
		snprintf(out, outlen, "http %s/healthz: %s", hostport, why);
		return -1;
	}
	if (send_all(fd, "GET /healthz HTTP/1.0\r\nHost: sesrelay\r\n"
	    "Connection: close\r\n\r\n", deadline) != 0 ||
	    read_reply(fd, buf, sizeof(buf), 1, deadline) != 0) {
		snprintf(out, outlen, "http %s/healthz: no answer: %s",
		    hostport, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	/* "HTTP/1.1 200 OK\r\n...\r\n\r\nok\n" -> "200 ok" */
	int code = 0;
	if (sscanf(buf, "HTTP/%*d.%*d %3d", &code) != 1)
		code = 0;
	char *body = strstr(buf, "\r\n\r\n");
	body = body != NULL ? body + 4 : (char *)"";
	first_line(body);
	snprintf(out, outlen, "http %s/healthz: %d %s", hostport, code,
	    body);
	return code == 200 ? 0 : -1;
}
