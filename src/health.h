/*
 * health.h — `sesrelay health`: is the local sesrelayd serving?  A health
 * check for containers and orchestrators that needs no shell or curl.
 *
 * health_smtp() connects to one [relay] listen address (a wildcard,
 * 0.0.0.0 or [::], is reached at 127.0.0.1 or [::1]), reads the greeting
 * and sends QUIT: 0 if the greeting was a 220.  health_http() sends
 * GET /healthz to the [relay] metrics_listen address: 0 if the answer
 * was 200 (sesrelayd answers 503 while its attempts to reach SES fail,
 * see metrics.h).  Both give up after HEALTH_TIMEOUT seconds in all and
 * return -1; either way they write one line for humans to out, e.g.
 *   "smtp 127.0.0.1:2525: 220 relay.example ESMTP sesrelay"
 *   "http 127.0.0.1:9925/healthz: 503 failing: upstream attempts ..."
 * They read the configuration only; no secret is involved.
 */
#ifndef SESRELAY_HEALTH_H
#define SESRELAY_HEALTH_H

#include <stddef.h>

struct listen_spec;

#define HEALTH_TIMEOUT 5	/* seconds, per check */

int health_smtp(const struct listen_spec *ls, char *out, size_t outlen);
int health_http(const char *hostport, char *out, size_t outlen);

#endif
