/* metrics.c — see metrics.h. */
#include "metrics.h"

#include <sys/socket.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "account.h"
#include "log.h"
#include "queue.h"
#include "relay_client.h"
#include "upstream.h"
#include "aws_creds.h"
#include "smtp_server.h"
#include "stats.h"
#include "version.h"
#include "xmalloc.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* Limits of the HTTP side: it serves two small GETs. */
#define HTTP_TIMEOUT	10		/* seconds per request */
#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY	1024
/* How often upstream health is sampled (see health_sample()). */
#define SAMPLE_SECONDS	1

struct metrics {
	struct event_base *base;
	struct evhttp *http;
	const struct smtp_server *srv;
	const struct queue *queue;	/* NULL: passthrough */
	const struct account *account;	/* NULL: not watched */
	struct upstream *pool;
	time_t started;
	char *listen;			/* where it serves; NULL: nowhere */
	struct evhttp_bound_socket *bound;

	/* health: what the last sample saw */
	struct event *sample_ev;
	uint64_t fails_seen;		/* failure counters, summed */
	time_t success_seen;		/* relay_stats.last_success */
	time_t failing_since;		/* 0: healthy */
	struct upstream_job *probe;	/* running probe, or NULL */
	time_t probe_started;
	struct aws_creds_provider *creds;	/* transport = api, or NULL */
};

/* --- health ------------------------------------------------------------ */

/* Everything that counts an upstream attempt that failed without SES
 * completing a command: TLS and AUTH failures, and deliveries deferred
 * (spool: the queue's; passthrough: 4xx replies to the final dot, which
 * there come from upstream). */
static uint64_t
failure_count(const struct metrics *m, const struct relay_stats *rs)
{
	uint64_t n = rs->tls_failures + rs->auth_failures;
	if (m->queue != NULL) {
		struct queue_stats qs;
		queue_stats(m->queue, &qs);
		n += qs.deferred;
	} else {
		n += smtp_server_stats(m->srv)->messages_deferred;
	}
	return n;
}

/*
 * Compare the counters with the last sample.  New failures and no new
 * success since: the latest attempt failed.  A new success (with or
 * without failures in the same interval, as throttling does): healthy.
 */
static void
health_sample(struct metrics *m)
{
	struct relay_stats rs;
	upstream_stats(m->pool, &rs);
	uint64_t fails = failure_count(m, &rs);

	if (rs.last_success != m->success_seen) {
		if (m->failing_since != 0)
			log_info("health: SES answers again");
		m->failing_since = 0;
	} else if (fails > m->fails_seen && m->failing_since == 0) {
		m->failing_since = time(NULL);
		log_info("health: upstream attempts failing");
	}
	m->fails_seen = fails;
	m->success_seen = rs.last_success;
}

static void
on_sample(evutil_socket_t fd, short what, void *arg)
{
	health_sample(arg);
}

static void
probe_done(const struct relay_result *res, void *arg)
{
	struct metrics *m = arg;
	m->probe = NULL;
	log_info("health: probe of SES %s: %d %s",
	    res->status == RELAY_OK ? "passed" : "failed", res->reply.code,
	    res->reply.text);
	health_sample(m);
}

/* --- the Prometheus text format ------------------------------------------ */

static void
header(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
one(struct evbuffer *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	header(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* name{label="value"} v, for each of n values */
static void
labelled(struct evbuffer *b, const char *name, const char *type,
    const char *help, const char *label, size_t n, const char *const *lv,
    const uint64_t *v)
{
	header(b, name, type, help);
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(b, "%s{%s=\"%s\"} %llu\n", name, label,
		    lv[i], (unsigned long long)v[i]);
}

static void
histogram(struct evbuffer *b, const char *name, const char *help,
    const struct stats_histogram *h)
{
	uint64_t cum = 0;
	header(b, name, "histogram", help);
	for (int i = 0; i < STATS_BUCKETS; i++) {
		cum += h->counts[i];
		evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		    stats_bucket_bounds[i], (unsigned long long)cum);
	}
	cum += h->counts[STATS_BUCKETS];
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)cum);
	evbuffer_add_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum,
	    name, (unsigned long long)h->n);
}

static void
gauge_f(struct evbuffer *b, const char *name, const char *help, double v)
{
	header(b, name, "gauge", help);
	evbuffer_add_printf(b, "%s %.17g\n", name, v);
}

/* The SES account, as the last GetAccount saw it (account.h). */
static void
render_account(struct metrics *m, struct evbuffer *b)
{
	struct account_status st;
	const char *lv[SES_API_NRESULTS];

	account_status(m->account, &st);
	gauge_f(b, "sesrelay_account_max_send_rate", "SES's MaxSendRate for "
	    "the account (recipients per second); -1 until GetAccount "
	    "answered.", st.known ? st.last.max_rate : -1);
	gauge_f(b, "sesrelay_account_max_24h_send", "SES's Max24HourSend "
	    "(-1: unlimited, or not known yet).", st.known ?
	    st.last.max_24h : -1);
	gauge_f(b, "sesrelay_account_sent_last_24h", "SES's SentLast24Hours "
	    "plus the recipients this relay sent since that answer.",
	    st.known ? st.last.sent_24h + (double)st.sent_since : 0);
	gauge_f(b, "sesrelay_account_sandbox", "1 if the account is in the "
	    "SES sandbox; -1: not known.", st.known ?
	    (double)!st.last.production : -1);
	gauge_f(b, "sesrelay_account_sending_enabled", "SES's SendingEnabled "
	    "(1/0); -1: not known.", st.known ?
	    (double)st.last.sending_enabled : -1);
	one(b, "sesrelay_account_held", "gauge", "1 while mail is held back "
	    "(daily quota used up, sending paused or shut down).", st.held);
	one(b, "sesrelay_account_api_up", "gauge", "1 if the latest "
	    "GetAccount answered; 0: the configured or fallback rate "
	    "applies and the quota is not watched.", st.api_up);
	gauge_f(b, "sesrelay_account_send_rate", "The rate the relay sends "
	    "at now (recipients per second; 0: no limit).", st.rate);
	one(b, "sesrelay_account_rate_fallback", "gauge", "1 if "
	    "max_send_rate = auto uses the fallback rate: GetAccount never "
	    "answered.", st.rate_fallback);
	one(b, "sesrelay_account_last_answer_timestamp_seconds", "gauge",
	    "When GetAccount last answered; 0: never.",
	    (uint64_t)st.last_answer);
	for (int i = 0; i < SES_API_NRESULTS; i++)
		lv[i] = ses_api_result_name((enum ses_api_result)i);
	labelled(b, "sesrelay_account_api_requests_total", "counter",
	    "SES API v2 requests (GetAccount, GetEmailIdentity) by result.",
	    "result", SES_API_NRESULTS, lv, st.requests);
	one(b, "sesrelay_account_sandbox_refused_total", "counter",
	    "Recipients refused at RCPT: not verified while in the sandbox.",
	    st.rcpt_refused);
}

static void
render(struct metrics *m, struct evbuffer *b)
{
	const struct smtp_server_stats *ss = smtp_server_stats(m->srv);
	struct relay_stats rs;
	time_t now = time(NULL);

	upstream_stats(m->pool, &rs);

	struct version_info vi;
	version_get(&vi);
	header(b, "sesrelay_build_info", "gauge",
	    "Version and mode of sesrelayd, and the library versions it runs "
	    "with.");
	evbuffer_add_printf(b, "sesrelay_build_info{version=\"%s\","
	    "mode=\"%s\",openssl=\"%s\",libevent=\"%s\",libcurl=\"%s\","
	    "jansson=\"%s\"} 1\n", vi.version,
	    m->queue != NULL ? "spool" : "passthrough", vi.openssl,
	    vi.libevent, vi.libcurl, vi.jansson);
	one(b, "sesrelay_start_time_seconds", "gauge",
	    "When sesrelayd started, in seconds since the epoch.",
	    (uint64_t)m->started);
	one(b, "sesrelay_healthy", "gauge",
	    "1 unless the latest upstream attempt failed (as /healthz).",
	    m->failing_since == 0);

	if (m->creds != NULL) {
		struct aws_creds_stats cs;
		const char *src = aws_creds_provider_source(m->creds);

		aws_creds_provider_stats(m->creds, &cs);
		header(b, "sesrelay_aws_credentials_info", "gauge",
		    "Where the AWS credentials come from (never a secret).");
		evbuffer_add_printf(b, "sesrelay_aws_credentials_info{source=\"");
		for (; *src != '\0'; src++)
			if (*src == '"' || *src == '\\')
				evbuffer_add_printf(b, "\\%c", *src);
			else if ((unsigned char)*src >= 0x20)
				evbuffer_add(b, src, 1);
		evbuffer_add_printf(b, "\"} 1\n");
		one(b, "sesrelay_aws_credentials_valid", "gauge",
		    "1 if valid credentials are at hand (else mail waits).",
		    (uint64_t)cs.valid);
		one(b, "sesrelay_aws_credentials_expiry_seconds", "gauge",
		    "When the current credentials expire, in seconds since the "
		    "epoch; 0: they do not.", (uint64_t)cs.expiration);
		one(b, "sesrelay_aws_credentials_fetches_total", "counter",
		    "Credentials fetched (first fetch and refreshes).",
		    cs.fetches);
		one(b, "sesrelay_aws_credentials_fetch_failures_total",
		    "counter", "Credential fetches that failed.", cs.failures);
	}

	/* inbound */
	one(b, "sesrelay_smtp_connections_total", "counter",
	    "Client connections accepted and served.", ss->connections);
	one(b, "sesrelay_smtp_connections_refused_total", "counter",
	    "Client connections refused (allow list, max_clients).",
	    ss->connections_refused);
	one(b, "sesrelay_smtp_accept_pauses_total", "counter",
	    "Times accept() failed (out of descriptors or memory) and the "
	    "listeners paused.", ss->accept_pauses);
	one(b, "sesrelay_smtp_sessions", "gauge",
	    "Client sessions open now.", smtp_server_sessions(m->srv));
	static const char *const results[] = { "accepted", "refused",
	    "deferred" };
	uint64_t msgs[] = { ss->messages_accepted, ss->messages_refused,
	    ss->messages_deferred };
	labelled(b, "sesrelay_smtp_messages_total", "counter",
	    "Messages by our reply to the final dot: 2xx accepted, 5xx "
	    "refused, 4xx deferred.", "result", 3, results, msgs);
	one(b, "sesrelay_smtp_recipients_total", "counter",
	    "Recipients of accepted messages.", ss->recipients);
	one(b, "sesrelay_smtp_received_bytes_total", "counter",
	    "Size of accepted messages as received.", ss->bytes);
	histogram(b, "sesrelay_smtp_reply_seconds", "Time from the client's "
	    "final dot to our reply.", &ss->reply_latency);
	static const char *const limits[] = { "errors", "unknown", "junk",
	    "rset", "transactions" };
	uint64_t lv[] = { ss->closed_errors, ss->closed_unknown,
	    ss->closed_junk, ss->closed_rset, ss->closed_transactions };
	labelled(b, "sesrelay_smtp_limit_closes_total", "counter",
	    "Client sessions closed with 421 for going over a per-session "
	    "limit: failed commands, unknown commands, NOOP/VRFY/EXPN/HELP, "
	    "RSET, transactions.", "limit", 5, limits, lv);

	/* the queue */
	if (m->queue != NULL) {
		struct queue_stats qs;
		queue_stats(m->queue, &qs);
		one(b, "sesrelay_queue_messages", "gauge",
		    "Messages in the spool queue.", qs.messages);
		one(b, "sesrelay_queue_inflight", "gauge",
		    "Upstream transactions under way.", qs.inflight);
		one(b, "sesrelay_queue_oldest_age_seconds", "gauge",
		    "Age of the oldest queued message; 0 if none.",
		    qs.oldest != 0 && now > qs.oldest ?
		    (uint64_t)(now - qs.oldest) : 0);
		static const char *const dres[] = { "sent", "deferred",
		    "failed" };
		uint64_t dv[] = { qs.sent, qs.deferred, qs.failed };
		labelled(b, "sesrelay_deliveries_total", "counter",
		    "Upstream transactions of queued mail by outcome.",
		    "result", 3, dres, dv);
		static const char *const rres[] = { "sent", "failed" };
		uint64_t rv[] = { qs.recipients_sent, qs.recipients_failed };
		labelled(b, "sesrelay_delivery_recipients_total", "counter",
		    "Recipients of queued mail delivered or failed for good.",
		    "result", 2, rres, rv);
		one(b, "sesrelay_bounces_total", "counter",
		    "Delivery status notifications queued.", qs.bounces);
		histogram(b, "sesrelay_delivery_delay_seconds", "Time from "
		    "arrival to SES's 250, per delivered transaction.",
		    &qs.delay);
	}

	/* upstream */
	one(b, "sesrelay_upstream_sessions", "gauge",
	    "Sessions to SES open now.", rs.sessions_open);
	one(b, "sesrelay_upstream_sessions_total", "counter",
	    "Sessions to SES started.", rs.sessions_total);
	one(b, "sesrelay_upstream_jobs_queued", "gauge",
	    "Upstream transactions waiting for a session.", rs.jobs_queued);
	one(b, "sesrelay_upstream_tls_failures_total", "counter",
	    "TLS handshakes or certificate checks with SES that failed.",
	    rs.tls_failures);
	one(b, "sesrelay_upstream_auth_failures_total", "counter",
	    "AUTH refused by SES.", rs.auth_failures);
	one(b, "sesrelay_upstream_throttled_total", "counter",
	    "Throttling replies (454 Throttling failure) from SES.",
	    rs.throttled);
	one(b, "sesrelay_upstream_last_success_timestamp_seconds", "gauge",
	    "When SES last completed a command for us; 0: never.",
	    (uint64_t)rs.last_success);

	if (m->account != NULL)
		render_account(m, b);
}

/* --- HTTP ------------------------------------------------------------------ */

static void
send_text(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static int
is_get(struct evhttp_request *req)
{
	enum evhttp_cmd_type t = evhttp_request_get_command(req);
	return t == EVHTTP_REQ_GET || t == EVHTTP_REQ_HEAD;
}

static void
on_metrics(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *b = evbuffer_new();
	if (b == NULL)
		fatalx("evbuffer_new failed");
	health_sample(m);
	render(m, b);
	send_text(req, HTTP_OK, "OK", "text/plain; version=0.0.4; "
	    "charset=utf-8", b);
	evbuffer_free(b);
}

static void
age(char *out, size_t len, time_t then, time_t now)
{
	if (then == 0)
		snprintf(out, len, "never");
	else
		snprintf(out, len, "%llds ago", (long long)(now - then));
}

static void
on_healthz(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *b = evbuffer_new();
	time_t now = time(NULL);
	char since[32], last[32];

	if (b == NULL)
		fatalx("evbuffer_new failed");
	health_sample(m);
	if (m->failing_since == 0) {
		evbuffer_add_printf(b, "ok\n");
		send_text(req, HTTP_OK, "OK", "text/plain; charset=utf-8", b);
		evbuffer_free(b);
		return;
	}
	if (m->probe == NULL &&
	    now - m->probe_started >= METRICS_PROBE_INTERVAL) {
		m->probe_started = now;
		m->probe = upstream_probe(m->pool, probe_done, m);
	}
	age(since, sizeof(since), m->failing_since, now);
	age(last, sizeof(last), m->success_seen, now);
	evbuffer_add_printf(b, "failing: upstream attempts failing since %s; "
	    "last SES reply %s; %s\n", since, last, m->probe != NULL ?
	    "probing SES now" : "next probe on a later request");
	send_text(req, HTTP_SERVUNAVAIL, "Service Unavailable",
	    "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

static void
on_other(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	if (b == NULL)
		fatalx("evbuffer_new failed");
	evbuffer_add_printf(b, "not found: try /metrics or /healthz\n");
	send_text(req, HTTP_NOTFOUND, "Not Found", "text/plain; "
	    "charset=utf-8", b);
	evbuffer_free(b);
}

/* Wrappers refusing anything but GET and HEAD (evhttp answers other
 * methods with 405 itself, given evhttp_set_allowed_methods). */
static void
route(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(
	    req));
	if (!is_get(req) || path == NULL)
		on_other(req, arg);
	else if (strcmp(path, "/metrics") == 0)
		on_metrics(req, arg);
	else if (strcmp(path, "/healthz") == 0)
		on_healthz(req, arg);
	else
		on_other(req, arg);
}

static int
parse_listen(const char *listen, struct sockaddr_storage *ss, int *sslen,
    char *err, size_t errlen)
{
	*sslen = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (evutil_parse_sockaddr_port(listen, (struct sockaddr *)ss,
	    sslen) != 0) {
		snprintf(err, errlen, "[relay] metrics_listen: cannot parse "
		    "'%s'", listen);
		return -1;
	}
	return 0;
}

static struct evconnlistener *
bind_listen(struct event_base *base, const char *listen, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen;

	if (parse_listen(listen, &ss, &sslen, err, errlen) != 0)
		return NULL;
	struct evconnlistener *evl = evconnlistener_new_bind(base, NULL,
	    NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	    LEV_OPT_CLOSE_ON_EXEC, 16, (struct sockaddr *)&ss, sslen);
	if (evl == NULL)
		snprintf(err, errlen, "[relay] metrics_listen: cannot listen "
		    "on %s: %s", listen, strerror(errno));
	return evl;
}

struct metrics *
metrics_new(struct event_base *base, const char *listen,
    const struct smtp_server *srv, const struct queue *queue,
    struct upstream *pool, char *err, size_t errlen)
{
	struct evconnlistener *evl = bind_listen(base, listen, err, errlen);
	if (evl == NULL)
		return NULL;

	struct metrics *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->srv = srv;
	m->queue = queue;
	m->pool = pool;
	m->started = time(NULL);
	if ((m->http = evhttp_new(base)) == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_timeout(m->http, HTTP_TIMEOUT);
	evhttp_set_max_headers_size(m->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, HTTP_MAX_BODY);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, route, m);
	if ((m->bound = evhttp_bind_listener(m->http, evl)) == NULL)
		fatalx("evhttp_bind_listener failed");
	m->listen = xstrdup(listen);

	struct relay_stats rs;
	upstream_stats(pool, &rs);
	m->fails_seen = failure_count(m, &rs);
	m->success_seen = rs.last_success;
	m->sample_ev = event_new(base, -1, EV_PERSIST, on_sample, m);
	struct timeval tv = { SAMPLE_SECONDS, 0 };
	event_add(m->sample_ev, &tv);
	log_info("metrics on http://%s/metrics and /healthz", listen);
	return m;
}

void
metrics_set_account(struct metrics *m, const struct account *account)
{
	m->account = account;
}

void
metrics_set_creds(struct metrics *m, struct aws_creds_provider *creds)
{
	m->creds = creds;
}

void
metrics_set_queue(struct metrics *m, const struct queue *queue)
{
	struct relay_stats rs;
	m->queue = queue;
	upstream_stats(m->pool, &rs);
	m->fails_seen = failure_count(m, &rs);
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->probe != NULL)
		upstream_cancel(m->pool, m->probe);
	event_free(m->sample_ev);
	evhttp_free(m->http);
	free(m->listen);
	free(m);
}

int
metrics_set_listen(struct metrics *m, const char *listen, char *err,
    size_t errlen)
{
	struct sockaddr_storage a, b;
	int alen, blen;

	if (listen != NULL && m->listen != NULL &&
	    parse_listen(listen, &a, &alen, err, errlen) == 0 &&
	    parse_listen(m->listen, &b, &blen, err, errlen) == 0 &&
	    evutil_sockaddr_cmp((struct sockaddr *)&a, (struct sockaddr *)&b,
	    1) == 0)
		return 0;	/* the same address: keep its socket */
	struct evconnlistener *evl = NULL;
	if (listen != NULL &&
	    (evl = bind_listen(m->base, listen, err, errlen)) == NULL)
		return -1;
	/* requests under way on the old socket are answered; it takes no
	 * new ones */
	if (m->bound != NULL)
		evhttp_del_accept_socket(m->http, m->bound);
	m->bound = NULL;
	if (m->listen != NULL)
		log_info("metrics: no longer on http://%s", m->listen);
	free(m->listen);
	m->listen = NULL;
	if (evl == NULL) {
		event_del(m->sample_ev);
		return 0;
	}
	if ((m->bound = evhttp_bind_listener(m->http, evl)) == NULL)
		fatalx("evhttp_bind_listener failed");
	m->listen = xstrdup(listen);
	struct timeval tv = { SAMPLE_SECONDS, 0 };
	event_add(m->sample_ev, &tv);
	log_info("metrics on http://%s/metrics and /healthz", listen);
	return 0;
}

const char *
metrics_listen_addr(const struct metrics *m)
{
	return m->listen;
}

void
metrics_set_start_time(struct metrics *m, time_t started)
{
	m->started = started;
}
