/* service.c — see service.h. */
#include "service.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"

#define NOTIFY_MAX 1024

int
service_notify(const char *fmt, ...)
{
	static int warned;
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	char msg[NOTIFY_MAX];
	socklen_t len;
	va_list ap;
	size_t plen;
	int fd, n;

	if (path == NULL || *path == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen < 2 ||
	    plen >= sizeof(sun.sun_path)) {
		if (!warned++)
			log_warnx("NOTIFY_SOCKET: not a socket path or @name: "
			    "'%.64s'; not notifying the service manager", path);
		return -1;
	}
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		fatalx("service_notify: message too long");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';		/* abstract namespace */
	else
		len++;				/* with its NUL */

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		if (!warned++)
			log_warn("NOTIFY_SOCKET: socket");
		return -1;
	}
	ssize_t r;
	do
		r = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL,
		    (struct sockaddr *)&sun, len);
	while (r == -1 && errno == EINTR);
	close(fd);
	if (r != n) {
		if (!warned++)
			log_warn("cannot notify the service manager at %s",
			    path);
		return -1;
	}
	return 1;
}

unsigned long long
service_monotonic_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}

/* A decimal number without sign or junk, at most max. */
static int
parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The i-th colon-separated name in names (NULL: none), into out. */
static void
fd_name(const char *names, size_t i, char *out, size_t outlen)
{
	out[0] = '\0';
	if (names == NULL)
		return;
	for (; i > 0 && names != NULL; i--)
		if ((names = strchr(names, ':')) != NULL)
			names++;
	if (names == NULL)
		return;
	size_t n = strcspn(names, ":");
	if (n >= outlen)
		n = outlen - 1;
	/* printable only: it goes into logs */
	for (size_t j = 0; j < n; j++)
		out[j] = (names[j] > 0x20 && names[j] < 0x7f) ? names[j] : '?';
	out[n] = '\0';
}

int
service_listen_fds(int *fds, size_t maxfds,
    char (*names)[SERVICE_NAME_MAX], char *err, size_t errlen)
{
	const char *spid = getenv("LISTEN_PID");
	const char *sfds = getenv("LISTEN_FDS");
	char *fdnames = getenv("LISTEN_FDNAMES");
	unsigned long pid, n;
	int rc = 0;

	if (fdnames != NULL)
		fdnames = strdup(fdnames);	/* unsetenv frees it */
	if (spid == NULL || sfds == NULL)
		goto out;
	if (parse_count(spid, LONG_MAX, &pid) == -1) {
		snprintf(err, errlen, "LISTEN_PID: not a process id: '%.32s'",
		    spid);
		rc = -1;
		goto out;
	}
	if ((pid_t)pid != getpid())
		goto out;		/* for another process: not ours */
	if (parse_count(sfds, maxfds, &n) == -1) {
		snprintf(err, errlen, "LISTEN_FDS: not a number of sockets "
		    "from 0 to %zu: '%.32s'", maxfds, sfds);
		rc = -1;
		goto out;
	}
	for (unsigned long i = 0; i < n; i++) {
		int fd = SERVICE_FD_START + (int)i;
		int type = 0, listening = 0;
		socklen_t tl = sizeof(type), ll = sizeof(listening);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char addr[ADDR_STR_MAX], name[64];

		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
			snprintf(err, errlen, "LISTEN_FDS: fd %d: %s", fd,
			    strerror(errno));
			rc = -1;
			goto out;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == -1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
		    &ll) == -1 || type != SOCK_STREAM || !listening ||
		    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
			snprintf(err, errlen, "LISTEN_FDS: fd %d is not a "
			    "listening stream socket (ListenStream= in the "
			    ".socket unit)", fd);
			rc = -1;
			goto out;
		}
		fds[i] = fd;
		if (names != NULL) {
			addr_format((struct sockaddr *)&ss, addr, sizeof(addr));
			fd_name(fdnames, i, name, sizeof(name));
			snprintf(names[i], sizeof(names[i]), "fd %d %s%s%s%s",
			    fd, addr, name[0] ? " (" : "", name,
			    name[0] ? ")" : "");
		}
	}
	rc = (int)n;
out:
	free(fdnames);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}
