/*
 * account.h — the daemon's view of the SES account it sends for: polls
 * GetAccount (SES API v2) every account_poll, and answers three questions
 * for the rest of the relay:
 *
 *   account_send_rate()    the recipients per second the queue may send:
 *                          max_send_rate, or with max_send_rate = auto,
 *                          MaxSendRate / instances (the last one GetAccount
 *                          gave; ACCOUNT_FALLBACK_RATE until it answers);
 *   account_hold_reason()  why no mail may go to SES now, or NULL: sending
 *                          disabled (SendingEnabled false, enforcement
 *                          SHUTDOWN), or the daily quota reached
 *                          (SentLast24Hours + what we sent since the
 *                          answer, and in the ACCOUNT_LAG_SECONDS before
 *                          the request, >= Max24HourSend; -1 =
 *                          unlimited).  Only
 *                          a fresh answer holds mail: when the API fails,
 *                          nothing is held (an unreachable API never stops
 *                          mail) and the configured rate applies;
 *   account_check_rcpt()   with sandbox_recipients = refuse and the
 *                          account in the sandbox: may this recipient get
 *                          mail (its address or its domain verified)?
 *                          Cached GetEmailIdentity lookups, asynchronous.
 *
 * Every change of state is logged once (hold / release, API failing /
 * answering again, rate changes).  The watcher owns its HTTP requests; it
 * signs them with the credentials its creds function hands out at the
 * time of each request (a new reference, or NULL when there are none:
 * then the request is not made and counts as failed).
 */
#ifndef SESRELAY_ACCOUNT_H
#define SESRELAY_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ses_api.h"

struct event_base;
struct http_client;
struct config;
struct aws_credentials;
struct account;
struct account_lookup;

/* max_send_rate = auto before GetAccount ever answered: the rate of an
 * account in the SES sandbox. */
#define ACCOUNT_FALLBACK_RATE 1.0
/* After a failed GetAccount, the next try comes this soon (or after
 * account_poll if that is shorter). */
#define ACCOUNT_RETRY_SECONDS 30
/* A GetAccount / GetEmailIdentity request gets this long. */
#define ACCOUNT_REQUEST_MS 10000
/* SES's SentLast24Hours may lag behind: what the relay sent within this
 * many seconds before a GetAccount request is counted on top of its
 * answer (erring towards holding mail a little early, never towards
 * SES's 454 "Daily message quota exceeded"). */
#define ACCOUNT_LAG_SECONDS 60
/* Cached identity lookups at most. */
#define ACCOUNT_CACHE_MAX 4096

typedef struct aws_credentials *account_creds_fn(void *arg);

struct account *account_new(struct event_base *base,
    struct http_client *http, struct config *cfg, account_creds_fn *creds,
    void *creds_arg);
/* The first GetAccount now; then every account_poll. */
void account_start(struct account *a);
/* A reload: the new snapshot's keys apply from the next poll on (now,
 * if the API endpoint, region or poll interval changed). */
void account_set_config(struct account *a, struct config *cfg);
/* Cancels every request and lookup (their callbacks are not called). */
void account_free(struct account *a);

/* Called (from the loop) when the rate changed or mail held is released. */
void account_set_listener(struct account *a, void (*fn)(void *), void *arg);

double account_send_rate(const struct account *a);
const char *account_hold_reason(const struct account *a);
/* Recipients the daily quota has left (SIZE_MAX: unlimited, or not
 * known now); the queue sends no bigger transaction. */
size_t account_quota_left(const struct account *a);
/* n recipients went to SES (counted against the daily quota until the
 * next GetAccount answer). */
void account_note_sent(struct account *a, size_t n);

/* Sandbox recipients. */
enum account_verdict {
	ACCOUNT_RCPT_OK,	/* send */
	ACCOUNT_RCPT_REFUSE,	/* not a verified identity (reason says) */
	ACCOUNT_RCPT_WAIT,	/* a lookup is under way: done will come */
};
typedef void account_rcpt_fn(enum account_verdict v, const char *reason,
    void *arg);
/*
 * Decide now if possible (ACCOUNT_RCPT_OK or _REFUSE, reason filled for a
 * refusal, *lookup NULL); else ACCOUNT_RCPT_WAIT and *lookup is the wait:
 * done is called exactly once, later, from the loop, unless
 * account_lookup_cancel(*lookup) first.  An API failure counts as OK.
 * Lookups are made only when sandbox_recipients = refuse and the last
 * GetAccount said the account is in the sandbox; otherwise always OK.
 */
enum account_verdict account_check_rcpt(struct account *a, const char *rcpt,
    account_rcpt_fn *done, void *arg, struct account_lookup **lookup,
    char *reason, size_t reasonlen);
void account_lookup_cancel(struct account_lookup *l);

/* For metrics and logs. */
struct account_status {
	int known;		/* GetAccount answered at least once */
	int api_up;		/* the latest GetAccount answered */
	struct ses_account last;	/* its answer (valid if known) */
	time_t last_answer;	/* when; 0: never */
	uint64_t sent_since;	/* recipients sent since that answer */
	double rate;		/* account_send_rate() */
	int rate_fallback;	/* auto, but the API never answered */
	int held;		/* account_hold_reason() != NULL */
	uint64_t requests[SES_API_NRESULTS];	/* API requests by result */
	uint64_t rcpt_refused;	/* sandbox recipients refused */
};
void account_status(const struct account *a, struct account_status *st);

#endif
