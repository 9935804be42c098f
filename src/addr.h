/*
 * addr.h — socket address helpers shared by the listeners and the
 * upstream client.
 */
#ifndef SESRELAY_ADDR_H
#define SESRELAY_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define ADDR_STR_MAX 128

/* "192.0.2.1:25", "[2001:db8::1]:25" or "unix:/path" (never fails). */
void addr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
