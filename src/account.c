/* account.c — see account.h. */
#include "account.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "aws_creds.h"
#include "config.h"
#include "http_client.h"
#include "log.h"
#include "tailq.h"
#include "xmalloc.h"

enum ident_state { ID_PENDING, ID_VERIFIED, ID_UNVERIFIED, ID_MISSING,
    ID_ERROR };

struct ident {
	TAILQ_ENTRY(ident) entry;	/* oldest first */
	struct account *a;
	char *name;			/* lower case */
	enum ident_state state;
	time_t expires;
	struct http_request *req;
};

struct account_lookup {
	TAILQ_ENTRY(account_lookup) entry;
	struct account *a;
	char *rcpt;
	char *addr;			/* lower case */
	char *domain;			/* lower case; NULL if no '@' */
	account_rcpt_fn *done;
	void *arg;
};

struct account {
	struct event_base *base;
	struct http_client *http;
	struct config *cfg;
	account_creds_fn *creds;
	void *creds_arg;
	struct event *poll_ev;
	struct http_request *req;	/* GetAccount in flight */
	char base_url[SES_API_URL_MAX];
	char scope[96];

	int known, api_up;
	struct ses_account last;
	time_t last_answer;
	uint64_t sent_since;
	/* our recent sends per second, to count those SES's answer may not
	 * have counted yet (ACCOUNT_LAG_SECONDS) */
	struct { time_t sec; uint64_t n; } recent[ACCOUNT_LAG_SECONDS + 32];
	time_t req_started;
	char hold[256];			/* "" : not held */
	double rate_logged;		/* -1: never logged */
	char api_error[SES_API_TEXT_MAX + 64];

	TAILQ_HEAD(, ident) cache;
	size_t ncache;
	TAILQ_HEAD(, account_lookup) lookups;

	uint64_t requests[SES_API_NRESULTS];
	uint64_t rcpt_refused;
	void (*listener)(void *);
	void *listener_arg;
};

static void poll_start(struct account *a);

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void
set_urls(struct account *a)
{
	if (ses_api_base_url(a->cfg->api_endpoint, a->cfg->region,
	    a->base_url, sizeof(a->base_url)) == -1)
		fatalx("account: API URL too long");
	ses_api_scope(a->cfg->region, a->scope, sizeof(a->scope));
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	poll_start(arg);
}

static void
poll_in(struct account *a, unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(a->poll_ev, &tv);
}

struct account *
account_new(struct event_base *base, struct http_client *http,
    struct config *cfg, account_creds_fn *creds, void *creds_arg)
{
	struct account *a = xcalloc(1, sizeof(*a));

	a->base = base;
	a->http = http;
	a->cfg = config_ref(cfg);
	a->creds = creds;
	a->creds_arg = creds_arg;
	a->rate_logged = -1;
	TAILQ_INIT(&a->cache);
	TAILQ_INIT(&a->lookups);
	a->poll_ev = evtimer_new(base, poll_cb, a);
	if (a->poll_ev == NULL)
		fatalx("account: cannot create a timer");
	set_urls(a);
	return a;
}

void
account_start(struct account *a)
{
	poll_start(a);
}

static void
ident_free(struct ident *id)
{
	struct account *a = id->a;

	if (id->req != NULL)
		http_request_cancel(id->req);
	TAILQ_REMOVE(&a->cache, id, entry);
	a->ncache--;
	free(id->name);
	free(id);
}

static void
lookup_free(struct account_lookup *l)
{
	TAILQ_REMOVE(&l->a->lookups, l, entry);
	free(l->rcpt);
	free(l->addr);
	free(l->domain);
	free(l);
}

void
account_lookup_cancel(struct account_lookup *l)
{
	if (l != NULL)
		lookup_free(l);
}

void
account_free(struct account *a)
{
	struct ident *id;
	struct account_lookup *l;

	if (a == NULL)
		return;
	if (a->req != NULL)
		http_request_cancel(a->req);
	while ((l = TAILQ_FIRST(&a->lookups)) != NULL)
		lookup_free(l);
	while ((id = TAILQ_FIRST(&a->cache)) != NULL)
		ident_free(id);
	event_free(a->poll_ev);
	config_unref(a->cfg);
	free(a);
}

void
account_set_listener(struct account *a, void (*fn)(void *), void *arg)
{
	a->listener = fn;
	a->listener_arg = arg;
}

double
account_send_rate(const struct account *a)
{
	if (!a->cfg->max_send_rate_auto)
		return a->cfg->max_send_rate;
	if (a->known)
		return a->last.max_rate / a->cfg->instances;
	return ACCOUNT_FALLBACK_RATE / a->cfg->instances;
}

size_t
account_quota_left(const struct account *a)
{
	double left;

	if (!a->api_up || a->last.max_24h < 0)
		return SIZE_MAX;
	left = a->last.max_24h - a->last.sent_24h - (double)a->sent_since;
	return left <= 0 ? 0 : left >= (double)SIZE_MAX ? SIZE_MAX :
	    (size_t)left;
}

const char *
account_hold_reason(const struct account *a)
{
	return a->hold[0] != '\0' ? a->hold : NULL;
}

/* Work out hold and the rate again; log and tell the listener what
 * changed. */
static void
reassess(struct account *a)
{
	char hold[sizeof(a->hold)] = "";
	const struct ses_account *s = &a->last;
	int released, changed = 0;
	double rate;

	if (a->api_up) {
		if (!s->sending_enabled)
			snprintf(hold, sizeof(hold), "sending is paused for "
			    "the SES account (SendingEnabled false)");
		else if (strcmp(s->enforcement, "SHUTDOWN") == 0)
			snprintf(hold, sizeof(hold), "the SES account is shut "
			    "down (EnforcementStatus SHUTDOWN)");
		else if (s->max_24h >= 0 &&
		    s->sent_24h + (double)a->sent_since >= s->max_24h)
			snprintf(hold, sizeof(hold), "the daily sending quota "
			    "of the SES account is used up (%.0f of %.0f in "
			    "the last 24 hours)",
			    s->sent_24h + (double)a->sent_since, s->max_24h);
	}
	released = a->hold[0] != '\0' && hold[0] == '\0';
	if (strcmp(hold, a->hold) != 0) {
		/* once per reason: the counts in parentheses may change */
		size_t k = strcspn(hold, "(");

		if (hold[0] != '\0' && (a->hold[0] == '\0' ||
		    strncmp(hold, a->hold, k) != 0))
			log_warnx("account: holding mail: %s", hold);
		else if (released)
			log_info("account: sending again (was: %s)", a->hold);
		snprintf(a->hold, sizeof(a->hold), "%s", hold);
	}
	rate = account_send_rate(a);
	if (rate != a->rate_logged) {
		if (a->cfg->max_send_rate_auto)
			log_info("account: max_send_rate auto: %g per second "
			    "(%s%g / instances %u)", rate, a->known ?
			    "MaxSendRate " : "GetAccount has not answered: ",
			    a->known ? a->last.max_rate :
			    ACCOUNT_FALLBACK_RATE, a->cfg->instances);
		changed = a->rate_logged >= 0;
		a->rate_logged = rate;
	}
	if ((released || changed) && a->listener != NULL)
		a->listener(a->listener_arg);
}

/* Our sends since t. */
static uint64_t
sent_after(const struct account *a, time_t t)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < sizeof(a->recent) / sizeof(a->recent[0]); i++)
		if (a->recent[i].sec >= t)
			n += a->recent[i].n;
	return n;
}

void
account_note_sent(struct account *a, size_t n)
{
	time_t now = time(NULL);
	size_t i = (size_t)now % (sizeof(a->recent) / sizeof(a->recent[0]));

	if (a->recent[i].sec != now) {
		a->recent[i].sec = now;
		a->recent[i].n = 0;
	}
	a->recent[i].n += n;
	a->sent_since += n;
	if (a->api_up && a->last.max_24h >= 0)
		reassess(a);
}

/* The advice for a failed request. */
static const char *
advice(enum ses_api_result r, const char *action)
{
	static char buf[128];

	switch (r) {
	case SES_API_DENIED:
		snprintf(buf, sizeof(buf), "; the IAM policy must allow %s",
		    action);
		return buf;
	case SES_API_AUTH:
		return "; check the credentials and region";
	default:
		return "";
	}
}

static void
failed(struct account *a, enum ses_api_result r, const char *why)
{
	char msg[sizeof(a->api_error)];
	unsigned retry = a->cfg->account_poll < ACCOUNT_RETRY_SECONDS ?
	    a->cfg->account_poll : ACCOUNT_RETRY_SECONDS;

	a->requests[r]++;
	snprintf(msg, sizeof(msg), "%s%s", why, advice(r, "ses:GetAccount"));
	if (a->api_up || a->api_error[0] == '\0' ||
	    strcmp(msg, a->api_error) != 0)
		log_warnx("account: GetAccount failed (%s): %s; mail goes on "
		    "at %s%g per second, without the daily quota check",
		    ses_api_result_name(r), msg,
		    a->cfg->max_send_rate_auto ? (a->known ?
		    "the last rate SES gave, " : "the fallback rate, ") : "",
		    account_send_rate(a));
	snprintf(a->api_error, sizeof(a->api_error), "%s", msg);
	a->api_up = 0;
	reassess(a);
	poll_in(a, retry);
}

static void
account_done(const struct http_response *resp, void *arg)
{
	struct account *a = arg;
	struct ses_api_error e;
	struct ses_account s;
	enum ses_api_result r;
	char why[SES_API_TEXT_MAX + 128];

	a->req = NULL;
	ses_api_parse_error(resp->error_type, resp->status >= 300 ?
	    resp->body : NULL, resp->bodylen, &e);
	r = ses_api_classify(resp->status, &e);
	if (r == SES_API_TRANSPORT) {
		failed(a, r, resp->error != NULL ? resp->error : "no answer");
		return;
	}
	if (r != SES_API_OK) {
		snprintf(why, sizeof(why), "HTTP %ld %s%s%s", resp->status,
		    e.code[0] ? e.code : "", e.message[0] ? ": " : "",
		    e.message);
		failed(a, r, why);
		return;
	}
	if (ses_api_parse_account(resp->body, resp->bodylen, &s, why,
	    sizeof(why)) == -1) {
		char msg[sizeof(why) + 32];

		snprintf(msg, sizeof(msg), "unreadable answer: %s", why);
		failed(a, SES_API_BAD_ANSWER, msg);
		return;
	}
	a->requests[SES_API_OK]++;
	if (!a->api_up)
		log_info("account: GetAccount answers%s: %s, sending %s, "
		    "enforcement %s, quota %.0f per 24 h, %.0f sent, rate %g "
		    "per second", a->api_error[0] ? " again" : "",
		    s.production ? "production" : "sandbox",
		    s.sending_enabled ? "enabled" : "disabled",
		    s.enforcement[0] ? s.enforcement : "-", s.max_24h,
		    s.sent_24h, s.max_rate);
	else if (s.production != a->last.production ||
	    s.sending_enabled != a->last.sending_enabled ||
	    strcmp(s.enforcement, a->last.enforcement) != 0 ||
	    s.max_24h != a->last.max_24h || s.max_rate != a->last.max_rate)
		log_info("account: changed: %s, sending %s, enforcement %s, "
		    "quota %.0f per 24 h, rate %g per second",
		    s.production ? "production" : "sandbox",
		    s.sending_enabled ? "enabled" : "disabled",
		    s.enforcement[0] ? s.enforcement : "-", s.max_24h,
		    s.max_rate);
	a->api_error[0] = '\0';
	a->last = s;
	a->known = a->api_up = 1;
	a->last_answer = time(NULL);
	/* what SES may not have counted yet: our sends of the last
	 * ACCOUNT_LAG_SECONDS before the request, and since */
	a->sent_since = sent_after(a, a->req_started - ACCOUNT_LAG_SECONDS);
	reassess(a);
	poll_in(a, a->cfg->account_poll);
}

/* Start a signed GET; NULL (and the reason in why) if it cannot go. */
static struct http_request *
api_get(struct account *a, const char *url, http_done_fn *done, void *arg,
    char *why, size_t whylen)
{
	struct aws_credentials *c = a->creds(a->creds_arg);
	struct http_request_spec spec;
	struct http_request *req;

	if (c == NULL) {
		snprintf(why, whylen, "no valid AWS credentials now");
		return NULL;
	}
	memset(&spec, 0, sizeof(spec));
	spec.method = "GET";
	spec.url = url;
	spec.sigv4 = c;
	spec.sigv4_scope = a->scope;
	spec.timeout_ms = ACCOUNT_REQUEST_MS;
	req = http_request_start(a->http, &spec, done, arg, why, whylen);
	aws_credentials_unref(c);
	return req;
}

static void
poll_start(struct account *a)
{
	char url[SES_API_URL_MAX], why[256];

	evtimer_del(a->poll_ev);
	if (a->req != NULL)
		return;
	if (ses_api_account_url(a->base_url, url, sizeof(url)) == -1)
		fatalx("account: API URL too long");
	a->req_started = time(NULL);
	a->req = api_get(a, url, account_done, a, why, sizeof(why));
	if (a->req == NULL)
		failed(a, SES_API_TRANSPORT, why);
}

void
account_set_config(struct account *a, struct config *cfg)
{
	struct config *old = a->cfg;
	int repoll = (old->api_endpoint == NULL) !=
	    (cfg->api_endpoint == NULL) ||
	    (old->api_endpoint != NULL &&
	    strcmp(old->api_endpoint, cfg->api_endpoint) != 0) ||
	    strcmp(old->region, cfg->region) != 0 ||
	    old->account_poll != cfg->account_poll;

	a->cfg = config_ref(cfg);
	config_unref(old);
	set_urls(a);
	if (repoll && a->req == NULL)
		poll_in(a, 0);
	reassess(a);
}

/* ---- sandbox recipients ---- */

static void ident_done(const struct http_response *, void *);

static struct ident *
ident_get(struct account *a, const char *name)
{
	struct ident *id, *next;
	time_t now = time(NULL);
	char url[SES_API_URL_MAX], why[256];

	TAILQ_FOREACH(id, &a->cache, entry)
		if (strcmp(id->name, name) == 0)
			break;
	if (id != NULL && (id->state == ID_PENDING || id->expires > now))
		return id;
	if (id != NULL)
		ident_free(id);
	/* bounded: drop the oldest answered entries */
	for (id = TAILQ_FIRST(&a->cache); id != NULL &&
	    a->ncache >= ACCOUNT_CACHE_MAX; id = next) {
		next = TAILQ_NEXT(id, entry);
		if (id->state != ID_PENDING)
			ident_free(id);
	}
	id = xcalloc(1, sizeof(*id));
	id->a = a;
	id->name = xstrdup(name);
	TAILQ_INSERT_TAIL(&a->cache, id, entry);
	a->ncache++;
	if (ses_api_identity_url(a->base_url, name, url, sizeof(url)) == -1 ||
	    (id->req = api_get(a, url, ident_done, id, why,
	    sizeof(why))) == NULL) {
		id->state = ID_ERROR;
		id->expires = now;
		a->requests[SES_API_TRANSPORT]++;
	} else
		id->state = ID_PENDING;
	return id;
}

static enum ident_state
ident_state(struct account *a, const char *name)
{
	struct ident *id;

	if (name == NULL)
		return ID_MISSING;
	TAILQ_FOREACH(id, &a->cache, entry)
		if (strcmp(id->name, name) == 0)
			return id->state;
	return ID_ERROR;	/* evicted meanwhile: do not hold the client */
}

/* The verdict on l from the cache, or ACCOUNT_RCPT_WAIT. */
static enum account_verdict
judge(struct account *a, const struct account_lookup *l, char *reason,
    size_t reasonlen)
{
	enum ident_state s1 = ident_state(a, l->addr);
	enum ident_state s2 = ident_state(a, l->domain);

	if (s1 == ID_VERIFIED || s2 == ID_VERIFIED)
		return ACCOUNT_RCPT_OK;
	if (s1 == ID_PENDING || s2 == ID_PENDING)
		return ACCOUNT_RCPT_WAIT;
	if (s1 == ID_ERROR || s2 == ID_ERROR)
		return ACCOUNT_RCPT_OK;
	snprintf(reason, reasonlen, "<%s> is not a verified identity and the "
	    "SES account is in the sandbox, where only verified recipients "
	    "receive mail", l->rcpt);
	a->rcpt_refused++;
	return ACCOUNT_RCPT_REFUSE;
}

static void
ident_done(const struct http_response *resp, void *arg)
{
	struct ident *id = arg;
	struct account *a = id->a;
	struct ses_api_error e;
	struct ses_identity si;
	enum ses_api_result r;
	char why[256], reason[512];
	struct account_lookup *l;

	id->req = NULL;
	ses_api_parse_error(resp->error_type, resp->status >= 300 ?
	    resp->body : NULL, resp->bodylen, &e);
	r = ses_api_classify(resp->status, &e);
	if (r == SES_API_OK && ses_api_parse_identity(resp->body,
	    resp->bodylen, &si, why, sizeof(why)) == -1)
		r = SES_API_BAD_ANSWER;
	a->requests[r]++;
	id->expires = time(NULL) + a->cfg->account_poll;
	switch (r) {
	case SES_API_OK:
		id->state = si.verified ? ID_VERIFIED : ID_UNVERIFIED;
		break;
	case SES_API_NOT_FOUND:
		id->state = ID_MISSING;
		break;
	default:
		id->state = ID_ERROR;
		id->expires = time(NULL);
		log_warnx("account: GetEmailIdentity %s failed (%s): %s%s%s; "
		    "recipients are not checked against the sandbox",
		    id->name, ses_api_result_name(r), resp->error ?
		    resp->error : e.code, e.message[0] ? ": " : "",
		    e.message);
		break;
	}
	/* answer every lookup that can be answered now; a done callback
	 * may cancel other lookups, so start over after each one */
	for (;;) {
		enum account_verdict v = ACCOUNT_RCPT_WAIT;

		TAILQ_FOREACH(l, &a->lookups, entry)
			if ((v = judge(a, l, reason, sizeof(reason))) !=
			    ACCOUNT_RCPT_WAIT)
				break;
		if (l == NULL)
			break;
		{
			account_rcpt_fn *done = l->done;
			void *darg = l->arg;

			lookup_free(l);
			done(v, v == ACCOUNT_RCPT_REFUSE ? reason : NULL, darg);
		}
	}
}

enum account_verdict
account_check_rcpt(struct account *a, const char *rcpt,
    account_rcpt_fn *done, void *arg, struct account_lookup **lookup,
    char *reason, size_t reasonlen)
{
	struct account_lookup *l;
	const char *at;
	enum account_verdict v;

	*lookup = NULL;
	if (a->cfg->sandbox_recipients != SANDBOX_REFUSE || !a->api_up ||
	    a->last.production || (at = strrchr(rcpt, '@')) == NULL ||
	    at[1] == '\0')
		return ACCOUNT_RCPT_OK;
	l = xcalloc(1, sizeof(*l));
	l->a = a;
	l->rcpt = xstrdup(rcpt);
	l->addr = xstrdup(rcpt);
	lower(l->addr);
	l->domain = xstrdup(at + 1);
	lower(l->domain);
	l->done = done;
	l->arg = arg;
	TAILQ_INSERT_TAIL(&a->lookups, l, entry);
	(void)ident_get(a, l->addr);
	(void)ident_get(a, l->domain);
	v = judge(a, l, reason, reasonlen);
	if (v != ACCOUNT_RCPT_WAIT) {
		lookup_free(l);
		return v;
	}
	*lookup = l;
	return ACCOUNT_RCPT_WAIT;
}

void
account_status(const struct account *a, struct account_status *st)
{
	memset(st, 0, sizeof(*st));
	st->known = a->known;
	st->api_up = a->api_up;
	st->last = a->last;
	st->last_answer = a->last_answer;
	st->sent_since = a->sent_since;
	st->rate = account_send_rate(a);
	st->rate_fallback = a->cfg->max_send_rate_auto && !a->known;
	st->held = a->hold[0] != '\0';
	memcpy(st->requests, a->requests, sizeof(st->requests));
	st->rcpt_refused = a->rcpt_refused;
}
