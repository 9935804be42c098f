/* queue.c — see queue.h. */
#include "queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "account.h"
#include "bounce.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "relay_client.h"
#include "upstream.h"
#include "spool.h"
#include "tailq.h"
#include "xmalloc.h"

/* Upstream transactions in flight per upstream session allowed. */
#define INFLIGHT_PER_SESSION 2
/* rcpt_state of a recipient whose transaction is under way (in memory
 * only: the .state file knows pending, done and failed). */
#define RCPT_INFLIGHT 3
/* ... and of one SES deferred in this attempt: pending again after it. */
#define RCPT_DEFERRED 4
/* A DSN quotes the original's header section: read at most this much of
 * it (the relay accepts a header section of at most MESSAGE_HEADER_MAX). */
#define BOUNCE_READ_MAX (1024 * 1024)

struct qentry {
	TAILQ_ENTRY(qentry) entry;	/* queue->all */
	TAILQ_ENTRY(qentry) ready_entry;	/* queue->ready */
	struct queue *q;
	struct spool_envelope *env;
	struct event *timer;
	int ready;
	/* An attempt is under way: from begin_attempt to attempt_done.  All
	 * its transactions may be done while it waits for max_send_rate or
	 * the in-flight cap to send the next one. */
	int attempting;
	unsigned jobs_out;		/* transactions of this attempt in flight */
};

/* One upstream transaction of an attempt: which recipients it carries. */
struct chunk {
	struct qentry *e;
	size_t *idx;
	size_t n;
	size_t size;
};

TAILQ_HEAD(qentry_list, qentry);

/* A transaction started within the max_send_rate window (see pace_wait). */
struct sent {
	TAILQ_ENTRY(sent) entry;
	struct timespec at;		/* CLOCK_MONOTONIC */
	size_t n;			/* recipients */
};

struct queue {
	struct event_base *base;
	struct config *cfg;
	struct spool *spool;
	struct upstream *pool;
	struct qentry_list all;
	size_t nentries;
	TAILQ_HEAD(, qentry) ready;
	size_t inflight;
	/* max_send_rate: the transactions started within the window, the
	 * oldest first, and their recipients */
	TAILQ_HEAD(, sent) sent;
	size_t sent_rcpts;
	struct event *pace_ev;
	int shutting_down;
	void (*drained)(void *);
	void *drained_arg;
	struct queue_stats counters;	/* the cumulative fields */
	struct account *account;	/* NULL: the account is not watched */
};

/* max_send_rate, or what the account watcher says (max_send_rate = auto). */
static double
queue_rate(const struct queue *q)
{
	return q->account != NULL ? account_send_rate(q->account) :
	    q->cfg->max_send_rate;
}

static void dispatch(struct queue *q);
static void entry_free(struct qentry *e);

static size_t
count_state(const struct spool_envelope *env, int state)
{
	size_t n = 0;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpt_state[i] == state)
			n++;
	return n;
}

static void
make_ready(struct qentry *e)
{
	if (e->ready || e->attempting)
		return;
	evtimer_del(e->timer);
	TAILQ_INSERT_TAIL(&e->q->ready, e, ready_entry);
	e->ready = 1;
}

static void
entry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qentry *e = arg;
	make_ready(e);
	dispatch(e->q);
}

static void
schedule(struct qentry *e)
{
	time_t now = time(NULL);
	if (e->env->next_try <= now) {
		make_ready(e);
		return;
	}
	struct timeval tv = { e->env->next_try - now, 0 };
	evtimer_add(e->timer, &tv);
}

static struct qentry *
entry_new(struct queue *q, struct spool_envelope *env)
{
	struct qentry *e = xcalloc(1, sizeof(*e));
	e->q = q;
	e->env = env;
	e->timer = evtimer_new(q->base, entry_timer_cb, e);
	TAILQ_INSERT_TAIL(&q->all, e, entry);
	q->nentries++;
	return e;
}

static void
entry_free(struct qentry *e)
{
	struct queue *q = e->q;
	if (e->ready)
		TAILQ_REMOVE(&q->ready, e, ready_entry);
	TAILQ_REMOVE(&q->all, e, entry);
	q->nentries--;
	event_free(e->timer);
	spool_envelope_free(e->env);
	free(e);
}

/* ---- the end of a message ---- */

/* The failed recipients of env and their reasons, on one line. */
static void
failure_reason(const struct spool_envelope *env, char *reason, size_t len)
{
	size_t o = 0;
	reason[0] = '\0';
	for (size_t i = 0; i < env->nrcpts && o + 1 < len; i++) {
		if (env->rcpt_state[i] != SPOOL_RCPT_FAILED)
			continue;
		int n = snprintf(reason + o, len - o, "%s<%s>: %s",
		    o > 0 ? "; " : "", env->rcpts[i],
		    env->rcpt_error[i] != NULL ? env->rcpt_error[i] : "failed");
		if (n < 0)
			break;
		o += (size_t)n;
		if (o >= len)
			o = len - 1;
	}
}

/* No DSN for id: keep it in failed/ with the reason. */
static void
keep_failed(struct queue *q, const char *id, const char *sender,
    size_t failed, const char *why_not, const char *reason)
{
	log_info("failed id=%s from=<%s> failed=%zu kept in failed/ "
	    "(no DSN: %s) reason=\"%s\"", id, sender, failed, why_not, reason);
	if (spool_move_failed(q->spool, id, reason) != 0)
		log_warn("failed id=%s: cannot move to failed/", id);
}

/* A DSN on its way to disk; the original stays in queue/ until then. */
struct bounce_commit {
	struct queue *q;
	struct spool_envelope *dsn;
	char orig_id[SPOOL_ID_MAX];
	size_t failed;
	char *reason;
};

static void
bounce_committed(int error, void *arg)
{
	struct bounce_commit *bc = arg;
	struct queue *q = bc->q;

	if (error != 0) {
		log_warnx("bounce id=%s dsn_id=%s: cannot spool the DSN: %s",
		    bc->orig_id, bc->dsn->id, strerror(error));
		keep_failed(q, bc->orig_id, bc->dsn->rcpts[0], bc->failed,
		    "the DSN could not be spooled", bc->reason);
		spool_envelope_free(bc->dsn);
	} else {
		/* the DSN is durable: only now may the original go */
		spool_remove(q->spool, bc->orig_id);
		queue_add(q, bc->dsn);
	}
	free(bc->reason);
	free(bc);
}

/* Start spooling a DSN about env's failed recipients; bounce_committed
 * removes env (or keeps it in failed/).  NULL if under way, else why no
 * DSN will come (env stays where it is). */
static const char *
bounce_start(struct queue *q, const struct spool_envelope *env,
    size_t failed, const char *reason)
{
	if (q->cfg->bounce == BOUNCE_NONE)
		return "bounce = none";
	if (env->null_path || env->is_bounce)
		return "the message was itself a bounce";
	if (q->cfg->null_sender == NULL)
		return "null_sender is not set (SES refuses <>)";

	struct evbuffer *orig = evbuffer_new();
	/* the DSN quotes the header section only: a bounded read */
	if (spool_read_message(q->spool, env->id, orig, BOUNCE_READ_MAX) != 0) {
		evbuffer_free(orig);
		return "the message could not be read back";
	}
	struct spool_envelope *dsn = xcalloc(1, sizeof(*dsn));
	struct evbuffer *report = evbuffer_new(), *msg = evbuffer_new();
	spool_new_id(q->spool, dsn->id);
	dsn->created = time(NULL);
	dsn->sender = xstrdup(q->cfg->null_sender);
	dsn->is_bounce = 1;
	dsn->nrcpts = 1;
	dsn->rcpts = xcalloc(1, sizeof(*dsn->rcpts));
	dsn->rcpts[0] = xstrdup(env->sender);
	dsn->rcpt_state = xcalloc(1, 1);
	dsn->rcpt_error = xcalloc(1, sizeof(*dsn->rcpt_error));
	bounce_build(q->cfg, env, dsn->id, orig, report);
	evbuffer_free(orig);
	/* from null_sender like any other message: its [sender] ARNs too */
	message_build(q->cfg, dsn->sender, NULL, report, msg);
	evbuffer_free(report);
	dsn->size = evbuffer_get_length(msg);

	struct bounce_commit *bc = xcalloc(1, sizeof(*bc));
	bc->q = q;
	bc->dsn = dsn;
	snprintf(bc->orig_id, sizeof(bc->orig_id), "%s", env->id);
	bc->failed = failed;
	bc->reason = xstrdup(reason);
	if (spool_commit(q->spool, dsn, msg, bounce_committed, bc) == NULL) {
		log_warn("bounce id=%s: cannot spool the DSN", env->id);
		evbuffer_free(msg);
		spool_envelope_free(dsn);
		free(bc->reason);
		free(bc);
		return "the DSN could not be written";
	}
	evbuffer_free(msg);
	q->counters.bounces++;
	log_info("bounce id=%s to=<%s> dsn_id=%s failed=%zu reason=\"%s\"",
	    env->id, env->sender, dsn->id, failed, reason);
	return NULL;
}

/* Every recipient is done or failed: report the failures, clean up. */
static void
finish(struct qentry *e)
{
	struct queue *q = e->q;
	struct spool_envelope *env = e->env;
	size_t failed = count_state(env, SPOOL_RCPT_FAILED);

	if (failed + count_state(env, SPOOL_RCPT_DONE) != env->nrcpts)
		fatalx("queue id=%s: finished with recipients neither done nor "
		    "failed", env->id);
	if (failed == 0) {
		spool_remove(q->spool, env->id);
	} else {
		char reason[1024];
		/* The original stays in queue/ until its DSN is durable: save
		 * what this attempt did, so that a crash meanwhile makes the
		 * next start send the DSN again, not the message. */
		if (spool_save_state(q->spool, env) != 0)
			log_warn("queue id=%s: cannot save delivery state",
			    env->id);
		failure_reason(env, reason, sizeof(reason));
		const char *why_not = bounce_start(q, env, failed, reason);
		if (why_not != NULL)
			keep_failed(q, env->id, env->sender, failed, why_not,
			    reason);
	}
	entry_free(e);
}

unsigned
queue_backoff(unsigned retry_min, unsigned retry_max, unsigned attempts,
    double u)
{
	double d = retry_min;
	for (unsigned i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	if (d > retry_max)
		d = retry_max;
	d *= 0.8 + 0.4 * u;
	/* the jitter spreads the retries inside the bounds, not past them */
	if (d < retry_min)
		d = retry_min;
	if (d > retry_max)
		d = retry_max;
	return (unsigned)d;
}

static unsigned
backoff(const struct config *cfg, unsigned attempts)
{
	uint32_t r = 0;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	return queue_backoff(cfg->retry_min, cfg->retry_max, attempts,
	    (double)r / 4294967295.0);
}

/* Past lifetime: what is still pending fails.  1 if e has expired. */
static int
expire(struct qentry *e, time_t now)
{
	struct queue *q = e->q;
	struct spool_envelope *env = e->env;

	if ((unsigned long long)(now - env->created) < q->cfg->lifetime)
		return 0;
	char why[RELAY_TEXT_MAX + 64];
	snprintf(why, sizeof(why), BOUNCE_EXPIRED "; last error: %s",
	    env->last_error != NULL ? env->last_error : "none");
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpt_state[i] != SPOOL_RCPT_PENDING)
			continue;
		env->rcpt_state[i] = SPOOL_RCPT_FAILED;
		free(env->rcpt_error[i]);
		env->rcpt_error[i] = xstrdup(why);
	}
	log_info("expired id=%s from=<%s> age=%llds", env->id, env->sender,
	    (long long)(now - env->created));
	return 1;
}

/* The last transaction of the attempt is done, or the queue is shutting
 * down and will start no more of them: what SES deferred is pending
 * again, and retried after a backoff unless it is too old.  The progress
 * is saved either way, so a restart sends nobody the message twice. */
static void
attempt_done(struct qentry *e)
{
	struct queue *q = e->q;
	struct spool_envelope *env = e->env;
	time_t now = time(NULL);

	e->attempting = 0;
	if (e->ready) {		/* cut short by the shutdown */
		TAILQ_REMOVE(&q->ready, e, ready_entry);
		e->ready = 0;
	}
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpt_state[i] == RCPT_DEFERRED)
			env->rcpt_state[i] = SPOOL_RCPT_PENDING;
	if (count_state(env, SPOOL_RCPT_PENDING) == 0 || expire(e, now)) {
		finish(e);
		return;
	}
	/* stopped, not failed: the next start goes on at once */
	if (!q->shutting_down) {
		env->attempts++;
		env->next_try = now + backoff(q->cfg, env->attempts);
	}
	if (spool_save_state(q->spool, env) != 0)
		log_warn("queue id=%s: cannot save delivery state", env->id);
	if (!q->shutting_down)
		schedule(e);
}

/* ---- delivery ---- */

static void
chunk_done(const struct relay_result *res, void *arg)
{
	struct chunk *c = arg;
	struct qentry *e = c->e;
	struct queue *q = e->q;
	struct spool_envelope *env = e->env;
	const struct relay_reply *r = &res->reply;
	size_t sent = 0, refused = 0, deferred = 0;

	for (size_t j = 0; j < c->n && j < res->nrcpts; j++) {
		size_t i = c->idx[j];
		const struct relay_reply *rr = res->rcpt_status[j] != RELAY_OK ?
		    &res->rcpt_reply[j] : r;
		char text[RELAY_TEXT_MAX + 32];
		snprintf(text, sizeof(text), "%d %s%s%s", rr->code,
		    rr->enhanced, rr->enhanced[0] ? " " : "", rr->text);
		switch (res->rcpt_status[j]) {
		case RELAY_OK:
			env->rcpt_state[i] = SPOOL_RCPT_DONE;
			sent++;
			break;
		case RELAY_PERMFAIL:
			env->rcpt_state[i] = SPOOL_RCPT_FAILED;
			free(env->rcpt_error[i]);
			env->rcpt_error[i] = xstrdup(text);
			refused++;
			break;
		default:
			env->rcpt_state[i] = RCPT_DEFERRED;
			free(env->last_error);
			env->last_error = xstrdup(text);
			deferred++;
			break;
		}
	}
	time_t age = time(NULL) - env->created;
	if (res->status == RELAY_OK) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		q->counters.sent++;
		stats_observe(&q->counters.delay,
		    (double)(now.tv_sec - env->created) +
		    (double)now.tv_nsec / 1e9);
	} else if (res->status == RELAY_TEMPFAIL) {
		q->counters.deferred++;
	} else {
		q->counters.failed++;
	}
	q->counters.recipients_sent += sent;
	q->counters.recipients_failed += refused;
	log_info("delivery id=%s from=<%s> rcpts=%zu size=%zu status=%s "
	    "reply=\"%d %s%s%s\" ses_id=%s delay=%llds attempt=%u%s",
	    env->id, env->sender, c->n, c->size,
	    res->status == RELAY_OK ? "sent" :
	    res->status == RELAY_TEMPFAIL ? "deferred" : "bounced",
	    r->code, r->enhanced, r->enhanced[0] ? " " : "", r->text,
	    res->ses_message_id[0] ? res->ses_message_id : "-",
	    (long long)age, env->attempts + 1,
	    res->status == RELAY_OK && (refused || deferred) ?
	    " (some recipients refused)" : "");
	if (r->code == 454 && strstr(r->text, "Daily message quota") != NULL)
		log_warnx("SES daily sending quota exceeded: mail is held in "
		    "the queue until SES takes it again");
	free(c->idx);
	free(c);
	q->inflight--;
	/* a message still ready has chunks to send, unless shutting down */
	if (--e->jobs_out == 0 && (!e->ready || q->shutting_down))
		attempt_done(e);
	if (q->shutting_down && q->inflight == 0 && q->drained != NULL) {
		void (*fn)(void *) = q->drained;
		q->drained = NULL;
		fn(q->drained_arg);
		return;
	}
	dispatch(q);
}

/* Before the first transaction of an attempt (only then: the lifetime
 * never cuts an attempt short, whose deferred recipients are neither
 * pending nor failed yet): fail what is too old.  0 if the attempt may
 * go on, -1 if the entry is gone (finished). */
static int
begin_attempt(struct qentry *e)
{
	if (expire(e, time(NULL))) {
		TAILQ_REMOVE(&e->q->ready, e, ready_entry);
		e->ready = 0;
		finish(e);
		return -1;
	}
	e->attempting = 1;
	return 0;
}

/*
 * max_send_rate as a sliding window: no window of one second sees more
 * than rate recipients (a fractional rate above 1 counts as its whole
 * part), and below one per second, no window of 1/rate seconds sees more
 * than one.  budget 0: no limit.
 */
static void
pace_limits(double rate, double *window, size_t *budget)
{
	*window = 1;
	*budget = 0;
	if (rate <= 0)
		return;
	if (rate < 1) {
		*window = 1 / rate;
		*budget = 1;
	} else {
		*budget = (size_t)rate;
	}
}

static double
seconds_since(const struct timespec *t, const struct timespec *now)
{
	return (double)(now->tv_sec - t->tv_sec) +
	    (double)(now->tv_nsec - t->tv_nsec) / 1e9;
}

/* 0 if a transaction of n recipients (at most the budget) may start now,
 * else the seconds until enough of the window's recipients have left it. */
static double
pace_wait(struct queue *q, size_t n)
{
	double window;
	size_t budget;
	struct timespec now;
	struct sent *s;

	pace_limits(queue_rate(q), &window, &budget);
	clock_gettime(CLOCK_MONOTONIC, &now);
	while ((s = TAILQ_FIRST(&q->sent)) != NULL &&
	    seconds_since(&s->at, &now) >= window) {
		TAILQ_REMOVE(&q->sent, s, entry);
		q->sent_rcpts -= s->n;
		free(s);
	}
	if (budget == 0 || q->sent_rcpts + n <= budget)
		return 0;
	size_t left = q->sent_rcpts;
	TAILQ_FOREACH(s, &q->sent, entry) {
		left -= s->n;
		if (left + n <= budget)
			break;
	}
	/* s is not NULL: n <= budget, so an empty window has room */
	return s != NULL ? window - seconds_since(&s->at, &now) : 0;
}

/* A transaction of n recipients starts now. */
static void
pace_note(struct queue *q, size_t n)
{
	if (queue_rate(q) <= 0)
		return;
	struct sent *s = xcalloc(1, sizeof(*s));
	clock_gettime(CLOCK_MONOTONIC, &s->at);
	s->n = n;
	TAILQ_INSERT_TAIL(&q->sent, s, entry);
	q->sent_rcpts += n;
}

/* Recipients of e for its next transaction: those waiting, at most
 * RELAY_MAX_RCPTS and at most max_send_rate's budget. */
static size_t
next_chunk_size(const struct qentry *e)
{
	double window;
	size_t budget, n = count_state(e->env, SPOOL_RCPT_PENDING);

	pace_limits(queue_rate(e->q), &window, &budget);
	if (n > RELAY_MAX_RCPTS)
		n = RELAY_MAX_RCPTS;
	if (budget > 0 && n > budget)
		n = budget;
	/* no more than the daily quota has left (dispatch holds at 0) */
	if (e->q->account != NULL) {
		size_t left = account_quota_left(e->q->account);
		if (left > 0 && n > left)
			n = left;
	}
	return n;
}

/* Submit one upstream transaction for the next n pending recipients of
 * e.  -1 if the message cannot be read (the attempt ends there). */
static int
send_chunk(struct qentry *e, size_t n)
{
	struct queue *q = e->q;
	struct spool_envelope *env = e->env;
	struct relay_msg *msg = relay_msg_new(env->id, env->sender);
	uint64_t off, len;
	/* read in pieces as the upstream takes it, never held whole */
	int fd = spool_open_message(q->spool, env->id, &off, &len);

	if (fd < 0) {
		int err = errno;
		relay_msg_free(msg);
		log_warnx("queue id=%s: cannot read from the spool: %s",
		    env->id, strerror(err));
		free(env->last_error);
		env->last_error = xstrdup("cannot read the spool file");
		return -1;
	}
	struct chunk *c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->idx = xcalloc(n, sizeof(*c->idx));
	relay_msg_set_file(msg, fd, off, len);
	c->size = len;
	for (size_t i = 0; i < env->nrcpts && c->n < n; i++) {
		if (env->rcpt_state[i] != SPOOL_RCPT_PENDING)
			continue;
		env->rcpt_state[i] = RCPT_INFLIGHT;
		c->idx[c->n++] = i;
		relay_msg_add_rcpt(msg, env->rcpts[i]);
	}
	msg->eightbit = 1;
	msg->all_or_nothing = 0;
	pace_note(q, c->n);
	/* counted against the daily quota when sent, so that the quota is
	 * never overrun by transactions in flight */
	if (q->account != NULL)
		account_note_sent(q->account, c->n);
	q->inflight++;
	e->jobs_out++;
	upstream_submit(q->pool, msg, chunk_done, c);
	return 0;
}

static void
pace_cb(evutil_socket_t fd, short what, void *arg)
{
	dispatch(arg);
}

/*
 * Start upstream transactions for ready messages, in order, one chunk at
 * a time, while fewer than max_connections x 2 are in flight and
 * max_send_rate allows.  A chunk holds at most 50 recipients and at most
 * the rate's budget, and waits until the recipients sent within the last
 * second leave room for it: SES never sees more than the rate within any
 * one second (pace_wait).  A message leaves the ready list once all its
 * pending recipients are on their way.
 */
static void
dispatch(struct queue *q)
{
	size_t cap = (size_t)q->cfg->max_connections * INFLIGHT_PER_SESSION;
	struct qentry *e;

	while (!q->shutting_down && q->inflight < cap &&
	    (e = TAILQ_FIRST(&q->ready)) != NULL) {
		if (!e->attempting && begin_attempt(e) != 0)
			continue;
		size_t n = next_chunk_size(e);
		if (n == 0) {	/* nothing left to send in this attempt */
			TAILQ_REMOVE(&q->ready, e, ready_entry);
			e->ready = 0;
			if (e->jobs_out == 0)
				attempt_done(e);
			continue;
		}
		/* the account cannot send now (quota used up, sending
		 * paused): mail stays queued until the watcher calls
		 * queue_kick (account.c logs it, once) */
		if (q->account != NULL &&
		    account_hold_reason(q->account) != NULL)
			return;
		double wait = pace_wait(q, n);
		if (wait > 0) {
			/* rounded up, so the window has room when it fires */
			long long us = (long long)(wait * 1e6) + 1;
			struct timeval tv = { (time_t)(us / 1000000),
			    (suseconds_t)(us % 1000000) };
			evtimer_add(q->pace_ev, &tv);
			return;
		}
		if (send_chunk(e, n) != 0) {
			TAILQ_REMOVE(&q->ready, e, ready_entry);
			e->ready = 0;
			if (e->jobs_out == 0)
				attempt_done(e);
		}
	}
}

/* ---- the interface ---- */

struct queue *
queue_new(struct event_base *base, struct config *cfg, struct spool *spool,
    struct upstream *pool)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->base = base;
	q->cfg = config_ref(cfg);
	q->spool = spool;
	q->pool = pool;
	TAILQ_INIT(&q->all);
	TAILQ_INIT(&q->ready);
	TAILQ_INIT(&q->sent);
	q->pace_ev = evtimer_new(base, pace_cb, q);
	return q;
}

static void
load_one(struct spool_envelope *env, void *arg)
{
	struct queue *q = arg;
	struct qentry *e = entry_new(q, env);
	if (count_state(env, SPOOL_RCPT_PENDING) == 0) {
		finish(e);	/* crashed between the last reply and cleanup */
		return;
	}
	schedule(e);
}

void
queue_load(struct queue *q)
{
	spool_scan(q->spool, load_one, q);
	log_info("queue: %zu messages in the spool", q->nentries);
	dispatch(q);
}

void
queue_add(struct queue *q, struct spool_envelope *env)
{
	struct qentry *e = entry_new(q, env);
	if (q->shutting_down)
		return;		/* stays in the spool for the next start */
	make_ready(e);
	dispatch(q);
}

void
queue_flush(struct queue *q)
{
	struct qentry *e;
	size_t n = 0;
	TAILQ_FOREACH(e, &q->all, entry) {
		if (!e->ready && !e->attempting) {
			e->env->next_try = 0;
			make_ready(e);
			n++;
		}
	}
	log_info("queue: flush: %zu messages to retry now", n);
	dispatch(q);
}

void
queue_set_account(struct queue *q, struct account *account)
{
	q->account = account;
}

void
queue_kick(struct queue *q)
{
	dispatch(q);
}

void
queue_set_config(struct queue *q, struct config *cfg)
{
	config_unref(q->cfg);
	q->cfg = config_ref(cfg);
}

void
queue_shutdown(struct queue *q, void (*drained)(void *), void *arg)
{
	struct qentry *e, *tmp;

	q->shutting_down = 1;
	evtimer_del(q->pace_ev);
	/* attempts waiting for their next chunk end here (their state is
	 * saved); those with chunks in flight end in chunk_done */
	TAILQ_FOREACH_SAFE(e, &q->ready, ready_entry, tmp)
		if (e->attempting && e->jobs_out == 0)
			attempt_done(e);
	q->drained = NULL;
	if (q->inflight == 0) {
		if (drained != NULL)
			drained(arg);
		return;
	}
	q->drained = drained;
	q->drained_arg = arg;
}

void
queue_stats(const struct queue *q, struct queue_stats *st)
{
	const struct qentry *e;
	*st = q->counters;
	st->messages = q->nentries;
	st->inflight = q->inflight;
	TAILQ_FOREACH(e, &q->all, entry)
		if (st->oldest == 0 || e->env->created < st->oldest)
			st->oldest = e->env->created;
}

void
queue_free(struct queue *q)
{
	struct qentry *e;
	struct sent *s;
	if (q == NULL)
		return;
	/* entries with jobs in flight: the pool is freed first and fails
	 * those jobs, so by now none is left */
	while ((e = TAILQ_FIRST(&q->all)) != NULL)
		entry_free(e);
	while ((s = TAILQ_FIRST(&q->sent)) != NULL) {
		TAILQ_REMOVE(&q->sent, s, entry);
		free(s);
	}
	event_free(q->pace_ev);
	config_unref(q->cfg);
	free(q);
}
