/*
 * relay_client.h — the one upstream SMTP client: sessions to SES over
 * verified TLS, authenticated with the derived password, reused across
 * messages.
 *
 * A pool owns up to cfg->max_connections sessions.  Callers submit jobs
 * (one upstream transaction each: a sender, at most RELAY_MAX_RCPTS
 * recipients, the message) and get exactly one callback per job, unless
 * they cancel it first.  The pool knows nothing of who submitted the job:
 * inbound sessions and the spool scheduler both use it, and find their
 * own state from the callback argument.
 *
 * Sessions: DNS (evdns) -> TCP -> greeting -> EHLO -> STARTTLS (or TLS
 * from the start with tls = implicit) -> EHLO -> AUTH PLAIN or LOGIN ->
 * transactions.  A session is closed with QUIT when idle for
 * RELAY_IDLE_SECONDS (before SES's ~10 s cut), after session_messages
 * transactions, or on a 421.  A session close to session_messages gets
 * its replacement connected ahead, so no job waits for a handshake: for
 * that moment there is one session more than max_connections.  A job whose first command on a reused
 * session finds it dead is retried once on a fresh session, invisibly.
 */
#ifndef SESRELAY_RELAY_CLIENT_H
#define SESRELAY_RELAY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "smtp_parse.h"

struct event_base;
struct evdns_base;
struct evbuffer;
struct config;

/* SES accepts at most 50 recipients per message. */
#define RELAY_MAX_RCPTS 50
/* SES closes a session after about 10 s without a command. */
#define RELAY_IDLE_SECONDS 8
#define RELAY_TEXT_MAX 512

enum relay_status { RELAY_OK, RELAY_TEMPFAIL, RELAY_PERMFAIL };

/* A reply to pass on to whoever submitted the job: SES's own, or one made
 * up by the relay for a local failure (network, TLS, timeout). */
struct relay_reply {
	int code;				/* 250, 451, 554, ... */
	char enhanced[SMTP_ENHANCED_MAX];	/* "5.0.0" or "" if none */
	char text[RELAY_TEXT_MAX];		/* without code and enhanced
						 * code; multi-line replies
						 * joined with "; " */
	int from_ses;				/* 1 if SES said it */
};

struct relay_msg {
	char id[32];		/* queue or session id, for logs */
	char *sender;		/* MAIL FROM address; never empty */
	char **rcpts;		/* 1..RELAY_MAX_RCPTS addresses */
	size_t nrcpts;
	struct evbuffer *body;	/* the message: CRLF lines, not dot-stuffed */
	int eightbit;		/* send BODY=8BITMIME */
	/* 1: if SES refuses any recipient, send nothing and fail the whole
	 * job with that refusal (passthrough: one reply for all). 0: deliver
	 * to those accepted; rcpt_status tells which were refused. */
	int all_or_nothing;
};

struct relay_result {
	enum relay_status status;	/* of the transaction as a whole */
	struct relay_reply reply;	/* final reply (or the refusal) */
	char ses_message_id[128];	/* from "250 Ok <id>", or "" */
	const enum relay_status *rcpt_status;	/* per recipient, nrcpts */
	const struct relay_reply *rcpt_reply;	/* per recipient refusal */
	size_t nrcpts;
};

typedef void relay_done_fn(const struct relay_result *res, void *arg);
/* Progress of a session for `sesrelay check`: step is "dns", "connect",
 * "greeting", "ehlo", "starttls", "tls", "certificate", "auth", "quit";
 * ok is 1/0; detail is one line. */
typedef void relay_trace_fn(const char *step, int ok, const char *detail,
    void *arg);

struct relay_pool;
struct relay_job;

/* NULL and a reason in err (TLS context or CA file trouble). */
struct relay_pool *relay_pool_new(struct event_base *base,
    struct evdns_base *dns, struct config *cfg, char *err, size_t errlen);
/* Use cfg (a new snapshot after reload) for sessions opened from now on;
 * sessions open now finish with the snapshot they began with.  Returns -1
 * (keeping the old one) if the new TLS settings do not load. */
int relay_pool_set_config(struct relay_pool *pool, struct config *cfg,
    char *err, size_t errlen);
/* The SES SMTP login (aws_creds_smtp_login) sessions authenticate with
 * from now on; the pool takes a reference.  Without one, sessions fail
 * with 451 before AUTH. */
struct ses_smtp_login;
void relay_pool_set_login(struct relay_pool *pool,
    struct ses_smtp_login *login);
void relay_pool_set_trace(struct relay_pool *pool, relay_trace_fn *fn,
    void *arg);

/* Submit msg; the pool takes ownership of msg and frees it (relay_msg_free)
 * after the callback.  done is called exactly once, later, never from
 * inside relay_submit: an outcome known at once (the endpoint cannot be
 * reached, the pool is shutting down) is reported from the event loop.
 * The same holds for relay_probe. */
struct relay_job *relay_submit(struct relay_pool *pool, struct relay_msg *msg,
    relay_done_fn *done, void *arg);
/* The submitter is going away: done will not be called for job. */
void relay_cancel(struct relay_job *job);

/* Open a session, authenticate and QUIT, reporting every step through the
 * trace function; done gets RELAY_OK only if all steps passed. */
struct relay_job *relay_probe(struct relay_pool *pool, relay_done_fn *done,
    void *arg);

/* Close idle sessions with QUIT, fail queued jobs with a 421 and refuse new
 * ones; busy sessions finish their job first.  drained (may be NULL) is
 * called once no session is left. */
void relay_pool_shutdown(struct relay_pool *pool, void (*drained)(void *),
    void *arg);
void relay_pool_free(struct relay_pool *pool);

/* Numbers for logs and metrics. */
struct relay_stats {
	unsigned sessions_open;
	unsigned jobs_queued;
	uint64_t sessions_total;
	uint64_t tls_failures;
	uint64_t auth_failures;
	uint64_t throttled;
	time_t last_success;	/* last time SES completed a command for us */
};
void relay_pool_stats(const struct relay_pool *pool, struct relay_stats *st);

struct relay_msg *relay_msg_new(const char *id, const char *sender);
void relay_msg_add_rcpt(struct relay_msg *msg, const char *rcpt);
void relay_msg_free(struct relay_msg *msg);

#endif
