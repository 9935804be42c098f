/*
 * queue.h — the scheduler of spool mode: what is in the spool gets
 * delivered through the relay pool, at SES's pace, retried until it is
 * delivered, refused, or too old.
 *
 * Each message is tried as a whole: its pending recipients are split into
 * upstream transactions of at most RELAY_MAX_RCPTS; a recipient SES
 * accepts is done, one it refuses (5xx) has failed, and the others
 * (4xx, throttling, network or TLS trouble) are retried after a backoff
 * that doubles from retry_min to retry_max, with jitter.  A message older
 * than lifetime when an attempt begins or ends fails what is still
 * pending; an attempt under way is never cut short, so every recipient
 * ends delivered, failed or still queued.  Failed recipients are
 * reported to the envelope sender with a DSN (bounce = dsn) or kept in
 * failed/ (none); the message leaves queue/ only once its DSN is durable,
 * and goes to failed/ if the DSN cannot be spooled.
 * max_send_rate caps the recipients sent within any one second: a
 * message to more recipients than the rate goes in chunks of at most the
 * rate, a second apart.
 */
#ifndef SESRELAY_QUEUE_H
#define SESRELAY_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "stats.h"

struct event_base;
struct config;
struct spool;
struct spool_envelope;
struct upstream;
struct queue;

struct queue *queue_new(struct event_base *base, struct config *cfg,
    struct spool *spool, struct upstream *pool);
/* Take over everything already in the spool (at start-up). */
void queue_load(struct queue *q);
/* A message was just committed to the spool: the queue owns env now. */
void queue_add(struct queue *q, struct spool_envelope *env);
/* Retry everything now (sesrelay flush, SIGUSR1). */
void queue_flush(struct queue *q);
void queue_set_config(struct queue *q, struct config *cfg);
/* The account watcher (may be NULL) gives the rate (max_send_rate = auto)
 * and holds the queue while the account cannot send (daily quota used
 * up, sending paused); it is told of every recipient SES accepted. */
struct account;
void queue_set_account(struct queue *q, struct account *account);
/* Start what may start now (the account released its hold, or the rate
 * changed). */
void queue_kick(struct queue *q);
/* Start nothing new; drained (may be NULL) is called once no delivery is
 * in flight.  Attempts cut short save their progress (a recipient already
 * delivered is not sent the message again after a restart) and count as
 * no attempt.  A second call replaces the first one's drained: at exit,
 * queue_shutdown(q, NULL, NULL) before relay_pool_free, which fails the
 * jobs still in flight (their results still reach q and its spool). */
void queue_shutdown(struct queue *q, void (*drained)(void *), void *arg);
/* After relay_pool_free and spool_close (whose last commits may still
 * queue_add). */
void queue_free(struct queue *q);

/* The delay in seconds before the next try after the n-th failed attempt
 * (n >= 1): retry_min x 2^(n-1), at most retry_max, with +-20 % jitter
 * (u, uniform in [0, 1], says where) so that a queue of messages does not
 * retry in step, but never outside [retry_min, retry_max]. */
unsigned queue_backoff(unsigned retry_min, unsigned retry_max,
    unsigned attempts, double u);

struct queue_stats {
	size_t messages;	/* in the queue */
	size_t inflight;	/* upstream transactions under way */
	time_t oldest;		/* creation time of the oldest; 0 if none */
	/* since start, per upstream transaction */
	uint64_t sent, deferred, failed;
	uint64_t recipients_sent, recipients_failed;
	uint64_t bounces;	/* DSNs queued */
	struct stats_histogram delay;	/* arrival -> SES's 250 */
};
void queue_stats(const struct queue *q, struct queue_stats *st);

#endif
