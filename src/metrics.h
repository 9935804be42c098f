/*
 * metrics.h — the HTTP endpoint of [relay] metrics_listen (libevent's
 * evhttp): GET /metrics in the Prometheus text format and GET /healthz.
 *
 * It only reads what the other modules count (smtp_server_stats,
 * queue_stats, relay_pool_stats); it changes nothing but may start a
 * relay_probe() (see below).
 *
 * /healthz answers 200 "ok" unless the latest upstream attempt failed,
 * then 503 with the reason.  An attempt failed when a connection, TLS
 * handshake or authentication to SES failed, or a delivery was deferred
 * (spool mode) or a message got a 4xx (passthrough mode), and SES has
 * not completed a command for us since.  Before the first attempt, and
 * while SES answers (even with refusals or throttling), it is 200.
 * While failing, a request to /healthz starts a background probe
 * (connect, TLS, AUTH, QUIT; at most one every METRICS_PROBE_INTERVAL
 * seconds) whose success makes it 200 again, so a relay without traffic
 * does not stay 503 for ever.
 */
#ifndef SESRELAY_METRICS_H
#define SESRELAY_METRICS_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct smtp_server;
struct queue;
struct upstream;
struct metrics;

#define METRICS_PROBE_INTERVAL 30

/*
 * Listen on listen ("127.0.0.1:9925" or "[::1]:9925", as config.c
 * checked it) before privileges are dropped.  queue is NULL in
 * passthrough mode.  NULL and a one-line reason in err on failure.
 */
struct metrics *metrics_new(struct event_base *base, const char *listen,
    const struct smtp_server *srv, const struct queue *queue,
    struct upstream *pool, char *err, size_t errlen);
/* Spool mode: the queue exists only after the spool opened. */
void metrics_set_queue(struct metrics *m, const struct queue *queue);
/*
 * Reload: serve on listen (as metrics_new() takes it; NULL: nowhere) from
 * now on.  The new address is bound before the old one is closed: if it
 * cannot be, returns -1 with the reason in err, still serving where it
 * did.  The same address keeps its socket.  The counters and the health
 * state go on.
 */
int metrics_set_listen(struct metrics *m, const char *listen, char *err,
    size_t errlen);
/* Where it serves now ("127.0.0.1:9925"), NULL if nowhere. */
const char *metrics_listen_addr(const struct metrics *m);
/* sesrelay_start_time_seconds, when metrics begin later than the daemon
 * (default: when metrics_new() was called). */
void metrics_set_start_time(struct metrics *m, time_t started);
/* The account watcher (sesrelay_account_* metrics); NULL: none. */
struct account;
void metrics_set_account(struct metrics *m, const struct account *account);
/* transport = api: export the credential provider's source and state. */
struct aws_creds_provider;
void metrics_set_creds(struct metrics *m, struct aws_creds_provider *creds);
/* Close the listener and every connection; cancel a running probe. */
void metrics_free(struct metrics *m);

#endif
