/*
 * service.h — the daemon's side of the service manager's protocols
 * (systemd), spoken directly, without libsystemd:
 *
 *  - readiness: service_notify() sends "READY=1", "RELOADING=1",
 *    "STOPPING=1", "STATUS=..." as one datagram to the AF_UNIX socket
 *    named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
 *    namespace), as sd_notify(3) does;
 *  - socket activation: service_listen_fds() takes the listening sockets
 *    passed as fds 3, 4, ... with $LISTEN_FDS, when $LISTEN_PID is this
 *    process, as sd_listen_fds(3) does.
 *
 * Neither needs the service manager: without the variables they do
 * nothing, so the same daemon runs by hand, in a container or under
 * another supervisor.
 */
#ifndef SESRELAY_SERVICE_H
#define SESRELAY_SERVICE_H

#include <stddef.h>

#define SERVICE_FD_START 3	/* SD_LISTEN_FDS_START */
#define SERVICE_MAX_FDS 64	/* as many as [relay] listen takes */
#define SERVICE_NAME_MAX 256	/* a socket's name for logs */

/*
 * Send the newline-separated assignments in fmt ("READY=1\nSTATUS=...")
 * to $NOTIFY_SOCKET.  Returns 1 if sent, 0 if there is no
 * $NOTIFY_SOCKET, -1 if sending failed (logged, at most once: the
 * service manager may simply not be listening).
 */
int service_notify(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC in microseconds, for "MONOTONIC_USEC=" with
 * "RELOADING=1". */
unsigned long long service_monotonic_usec(void);

/*
 * The sockets passed by the service manager.  If $LISTEN_PID is our pid
 * and $LISTEN_FDS a count n > 0, checks that each of the fds 3 .. 3+n-1
 * is a listening stream socket, marks it close-on-exec, stores the fds
 * in fds (at most maxfds) and, unless names is NULL, a name for logs in
 * names[i] ("fd 3 127.0.0.1:25 (smtp)", with the $LISTEN_FDNAMES name
 * when one is given), and returns n.  Returns 0 when nothing was passed
 * (or it was meant for another process), -1 with a one-line reason in
 * err when what was passed is unusable.  The variables are unset either
 * way, so they do not leak to children.
 */
int service_listen_fds(int *fds, size_t maxfds,
    char (*names)[SERVICE_NAME_MAX], char *err, size_t errlen);

#endif
