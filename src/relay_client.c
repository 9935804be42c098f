/* relay_client.c — see relay_client.h. */
#include "relay_client.h"

#include "tailq.h"
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "aws_creds.h"
#include "config.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

/* How long we wait for SES, per state (Postfix uses similar values). */
#define CONNECT_TIMEOUT	30
#define COMMAND_TIMEOUT	60
#define DATA_END_TIMEOUT 600
/* Messages up to this size are copied into one contiguous chain for the
 * upstream (one TLS record per write frame); larger ones are moved, not
 * copied, so a large message is not held twice. */
#define SEND_COPY_MAX (64 * 1024)
/* Encrypted bytes waiting for the socket, at most (then TLS waits). */
#define SEND_BUFFER_MAX (256 * 1024)
/* A message with a source (relay_msg.src) is fed to the output in pieces
 * of this size while the output holds less than PUMP_LOW: memory per
 * upstream session stays bounded whatever the message size. */
#define PUMP_CHUNK (16 * 1024)
#define PUMP_LOW (32 * 1024)
/* A session that will close after session_messages gets its replacement
 * this many messages ahead (a new session needs ~7 round trips), or a
 * quarter of session_messages if that is less. */
#define RELAY_REPLACE_AHEAD 16

enum sess_state {
	S_RESOLVE, S_CONNECT, S_GREETING, S_EHLO, S_STARTTLS, S_HANDSHAKE,
	S_AUTH, S_AUTH_LOGIN_USER, S_AUTH_LOGIN_PASS, S_READY, S_MAIL, S_RCPT,
	S_DATA, S_BODY, S_DOT, S_RSET, S_QUIT, S_CLOSED
};

static const char *state_names[] = {
	"resolve", "connect", "greeting", "ehlo", "starttls", "handshake",
	"auth", "auth-login-user", "auth-login-pass", "ready", "mail", "rcpt",
	"data", "body", "dot", "rset", "quit", "closed"
};

struct relay_session;

struct relay_job {
	TAILQ_ENTRY(relay_job) entry;
	struct relay_pool *pool;
	struct relay_msg *msg;		/* NULL for a probe */
	relay_done_fn *done;
	void *arg;
	int queued;
	int retried;			/* already moved to a fresh session */
	struct relay_session *sess;
	enum relay_status *rcpt_status;
	struct relay_reply *rcpt_reply;
	size_t rcpt_next;
	size_t rcpt_ok;
	struct relay_reply refusal;	/* first refused RCPT/MAIL/DATA */
	struct relay_result res;	/* the outcome, once complete */
	struct event *deferred;		/* reports an outcome reached inside
					 * relay_submit or relay_probe */
};

struct relay_session {
	TAILQ_ENTRY(relay_session) entry;
	struct relay_pool *pool;
	struct config *cfg;
	unsigned id;
	enum sess_state state;
	struct bufferevent *bev;
	SSL *ssl;			/* owned by the filter bufferevent */
	int tls_on;
	struct evdns_getaddrinfo_request *dnsreq;
	struct evutil_addrinfo *addrs;
	struct evutil_addrinfo *addr_next;
	struct event *idle_ev;
	struct relay_job *job;
	unsigned nmessages;
	int used;			/* has finished a transaction */
	int in_cb;			/* inside one of its callbacks */
	int dead;			/* closed: free when in_cb drops to 0 */
	int ready_once;			/* reached S_READY at least once */
	int retiring;			/* near its last job (session_messages) */
	int peer_closed;		/* SES closed: take no new job */
	int cap_starttls, cap_plain, cap_login, cap_8bitmime;
	/* S_BODY: the message is being pumped from its source */
	struct event *pump_ev;		/* relay_job_resume */
	int src_eof;			/* the source said EOF */
	int src_wait;			/* the source said WAIT */
	char body_prev;			/* last octet sent, for dot-stuffing */
	/* the reply being read, lines joined with '\n' */
	char reply[SMTP_REPLY_MAX];
	size_t reply_len;
};

TAILQ_HEAD(job_list, relay_job);
TAILQ_HEAD(session_list, relay_session);

struct relay_pool {
	struct event_base *base;
	struct evdns_base *dns;
	struct config *cfg;
	SSL_CTX *ssl_ctx;
	struct job_list queue;
	struct job_list deferred;	/* complete, waiting to be reported */
	unsigned submitting;		/* inside relay_submit/relay_probe */
	struct session_list sessions;
	unsigned nsessions;
	unsigned nretiring;		/* sessions near their last job */
	unsigned nqueued;
	unsigned next_id;
	relay_trace_fn *trace;
	void *trace_arg;
	int shutting_down;
	void (*drained)(void *);
	void *drained_arg;
	struct relay_stats stats;
	struct ses_smtp_login *login;	/* relay_pool_set_login */
};

static void session_start(struct relay_pool *);
static void session_close(struct relay_session *, const char *why);
static void session_next(struct relay_session *);
static void session_read_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);
static void session_write_cb(struct bufferevent *, void *);
static void session_free(struct relay_session *);
static void pool_dispatch(struct relay_pool *);

/* ---- messages ---- */

struct relay_msg *
relay_msg_new(const char *id, const char *sender)
{
	struct relay_msg *msg = xcalloc(1, sizeof(*msg));
	snprintf(msg->id, sizeof(msg->id), "%s", id);
	msg->sender = xstrdup(sender);
	msg->body = evbuffer_new();
	if (msg->body == NULL)
		fatalx("evbuffer_new failed");
	return msg;
}

void
relay_msg_add_rcpt(struct relay_msg *msg, const char *rcpt)
{
	msg->rcpts = xreallocarray(msg->rcpts, msg->nrcpts + 1,
	    sizeof(*msg->rcpts));
	msg->rcpts[msg->nrcpts++] = xstrdup(rcpt);
}

void
relay_msg_free(struct relay_msg *msg)
{
	if (msg == NULL)
		return;
	for (size_t i = 0; i < msg->nrcpts; i++)
		free(msg->rcpts[i]);
	free(msg->rcpts);
	free(msg->sender);
	if (msg->body != NULL)
		evbuffer_free(msg->body);
	if (msg->src.free != NULL)
		msg->src.free(msg->src.arg);
	free(msg);
}

struct file_source {
	int fd;
	uint64_t off, left;
	char id[32];
};

static enum relay_src_status
file_source_read(void *arg, struct evbuffer *out, size_t max)
{
	struct file_source *f = arg;
	struct evbuffer_iovec v;
	if (f->left == 0)
		return RELAY_SRC_EOF;
	size_t n = f->left < max ? (size_t)f->left : max;
	if (evbuffer_reserve_space(out, (ssize_t)n, &v, 1) < 1)
		fatalx("evbuffer_reserve_space failed");
	ssize_t r;
	do
		r = pread(f->fd, v.iov_base, n, (off_t)f->off);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		log_warnx("upstream: message %s: cannot read the spool file: %s",
		    f->id, r == 0 ? "file is shorter than its envelope says" :
		    strerror(errno));
		return RELAY_SRC_ABORT;
	}
	v.iov_len = (size_t)r;
	evbuffer_commit_space(out, &v, 1);
	f->off += (uint64_t)r;
	f->left -= (uint64_t)r;
	return f->left == 0 ? RELAY_SRC_EOF : RELAY_SRC_DATA;
}

static void
file_source_free(void *arg)
{
	struct file_source *f = arg;
	close(f->fd);
	free(f);
}

void
relay_msg_set_file(struct relay_msg *msg, int fd, uint64_t off, uint64_t len)
{
	struct file_source *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->off = off;
	f->left = len;
	snprintf(f->id, sizeof(f->id), "%s", msg->id);
	msg->src = (struct relay_source){ file_source_read, file_source_free,
	    f, len };
}

uint64_t
relay_msg_size(const struct relay_msg *msg)
{
	if (msg->src.read == NULL)
		return evbuffer_get_length(msg->body);
	if (msg->src.size == RELAY_SIZE_UNKNOWN)
		return RELAY_SIZE_UNKNOWN;
	return evbuffer_get_length(msg->body) + msg->src.size;
}

/* ---- replies ---- */

/* Fill r from a reply code and its text lines ('\n'-separated). */
static void
reply_set(struct relay_reply *r, int code, const char *text, int from_ses)
{
	size_t skip = smtp_parse_enhanced_code(text, strlen(text), r->enhanced);
	size_t o = 0;
	r->code = code;
	r->from_ses = from_ses;
	for (const char *p = text + skip; *p != '\0' &&
	    o + 3 < sizeof(r->text); p++) {
		if (*p == '\n') {
			r->text[o++] = ';';
			r->text[o++] = ' ';
			/* continuation lines repeat the enhanced code */
			char dummy[SMTP_ENHANCED_MAX];
			p += smtp_parse_enhanced_code(p + 1, strlen(p + 1),
			    dummy);
		} else if ((unsigned char)*p >= 0x20 && *p != 0x7f) {
			r->text[o++] = *p;
		}
	}
	r->text[o] = '\0';
}

static void
reply_local(struct relay_reply *r, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
reply_local(struct relay_reply *r, int code, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;
	r->code = code;
	r->from_ses = 0;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

static enum relay_status
status_of(int code)
{
	if (code >= 200 && code < 400)
		return RELAY_OK;
	if (code >= 500)
		return RELAY_PERMFAIL;
	return RELAY_TEMPFAIL;
}

/* ---- jobs ---- */

static void
trace(struct relay_pool *pool, const char *step, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
trace(struct relay_pool *pool, const char *step, int ok, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	if (pool->trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	pool->trace(step, ok, detail, pool->trace_arg);
}

static void
job_free(struct relay_job *job)
{
	if (job->deferred != NULL)
		event_free(job->deferred);
	relay_msg_free(job->msg);
	free(job->rcpt_status);
	free(job->rcpt_reply);
	free(job);
}

static void
job_unqueue(struct relay_job *job)
{
	if (job->queued) {
		TAILQ_REMOVE(&job->pool->queue, job, entry);
		job->pool->nqueued--;
		job->queued = 0;
	}
}

/* Call job's callback with its outcome (unless it was cancelled) and
 * free it. */
static void
job_report(struct relay_job *job)
{
	if (job->done != NULL)
		job->done(&job->res, job->arg);
	job_free(job);
}

static void
job_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_job *job = arg;
	TAILQ_REMOVE(&job->pool->deferred, job, entry);
	job_report(job);
}

/*
 * Job is complete: report its outcome and free it.  Not while the pool is
 * inside relay_submit or relay_probe, though: a session can fail before
 * they return (a numeric endpoint is resolved inline, and connect() can
 * fail at once, e.g. EMFILE), failing this job and the queued ones, and
 * their submitters must not be called back before they even hold the job
 * (relay_client.h).  Those outcomes are reported from a zero-delay timer.
 */
static void
job_complete(struct relay_job *job, enum relay_status status,
    const struct relay_reply *reply, const char *ses_id)
{
	struct relay_result *res = &job->res;
	memset(res, 0, sizeof(*res));
	res->status = status;
	res->reply = *reply;
	snprintf(res->ses_message_id, sizeof(res->ses_message_id), "%s",
	    ses_id != NULL ? ses_id : "");
	res->rcpt_status = job->rcpt_status;
	res->rcpt_reply = job->rcpt_reply;
	res->nrcpts = job->msg != NULL ? job->msg->nrcpts : 0;
	/* recipients not individually refused share the outcome */
	for (size_t i = 0; i < res->nrcpts; i++) {
		if (job->rcpt_status[i] == RELAY_OK) {
			job->rcpt_status[i] = status;
			if (status != RELAY_OK)
				job->rcpt_reply[i] = *reply;
		}
	}
	job_unqueue(job);
	if (job->sess != NULL)
		job->sess->job = NULL;
	job->sess = NULL;
	if (job->pool->submitting == 0) {
		job_report(job);
		return;
	}
	if (job->deferred == NULL)
		job->deferred = evtimer_new(job->pool->base, job_deferred_cb,
		    job);
	if (job->deferred == NULL)
		fatalx("evtimer_new failed");
	TAILQ_INSERT_TAIL(&job->pool->deferred, job, entry);
	struct timeval zero = { 0, 0 };
	evtimer_add(job->deferred, &zero);
}

static void
job_fail(struct relay_job *job, int code, const char *enhanced,
    const char *text)
{
	struct relay_reply r;
	reply_local(&r, code, enhanced, "%s", text);
	job_complete(job, status_of(code), &r, NULL);
}

static struct relay_job *
job_new(struct relay_pool *pool, struct relay_msg *msg, relay_done_fn *done,
    void *arg)
{
	struct relay_job *job = xcalloc(1, sizeof(*job));
	job->pool = pool;
	job->msg = msg;
	job->done = done;
	job->arg = arg;
	size_t n = msg != NULL ? msg->nrcpts : 0;
	job->rcpt_status = xcalloc(n, sizeof(*job->rcpt_status));
	job->rcpt_reply = xcalloc(n, sizeof(*job->rcpt_reply));
	return job;
}

/* Queue job and get it going.  Any job completed in here is reported
 * later (job_complete), this one included. */
static struct relay_job *
pool_enqueue(struct relay_pool *pool, struct relay_job *job)
{
	pool->submitting++;
	if (pool->shutting_down) {
		job_fail(job, 421, "4.3.2", "relay is shutting down");
	} else {
		TAILQ_INSERT_TAIL(&pool->queue, job, entry);
		job->queued = 1;
		pool->nqueued++;
		pool_dispatch(pool);
	}
	pool->submitting--;
	return job;
}

struct relay_job *
relay_submit(struct relay_pool *pool, struct relay_msg *msg,
    relay_done_fn *done, void *arg)
{
	if (msg->nrcpts == 0 || msg->nrcpts > RELAY_MAX_RCPTS ||
	    msg->sender == NULL || msg->sender[0] == '\0')
		fatalx("relay_submit: %zu recipients, sender '%s'",
		    msg->nrcpts, msg->sender != NULL ? msg->sender : "");
	return pool_enqueue(pool, job_new(pool, msg, done, arg));
}

struct relay_job *
relay_probe(struct relay_pool *pool, relay_done_fn *done, void *arg)
{
	return pool_enqueue(pool, job_new(pool, NULL, done, arg));
}

void
relay_cancel(struct relay_job *job)
{
	job->done = NULL;
	if (job->queued) {
		job_unqueue(job);
		job_free(job);
		return;
	}
	struct relay_session *s = job->sess;
	if (s != NULL && job->msg != NULL && job->msg->src.read != NULL &&
	    s->state >= S_MAIL && s->state < S_DOT) {
		/* its source belongs to the submitter, which is going away,
		 * and the message is not all sent: SES must not get a part
		 * of it, so the session goes without the final dot */
		struct relay_pool *pool = s->pool;
		log_info("upstream u%u: message %s abandoned by its sender; "
		    "closing the session without ending the data", s->id,
		    job->msg->id);
		s->job = NULL;
		job->sess = NULL;
		job_free(job);
		session_close(s, "message abandoned");
		if (!pool->shutting_down)
			pool_dispatch(pool);
		return;
	}
	/* A job on a session finishes its transaction (the message is
	 * already on its way) and is freed silently; a deferred one is
	 * freed when its timer fires. */
}

void
relay_job_resume(struct relay_job *job)
{
	struct relay_session *s = job->sess;
	if (s != NULL && s->state == S_BODY && s->src_wait)
		event_active(s->pump_ev, EV_TIMEOUT, 0);
}

/* ---- pool ---- */

struct relay_pool *
relay_pool_new(struct event_base *base, struct evdns_base *dns,
    struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_client_ctx_new(cfg->ca_file, err, errlen);
	if (ctx == NULL)
		return NULL;
	struct relay_pool *pool = xcalloc(1, sizeof(*pool));
	pool->base = base;
	pool->dns = dns;
	pool->cfg = config_ref(cfg);
	pool->ssl_ctx = ctx;
	TAILQ_INIT(&pool->queue);
	TAILQ_INIT(&pool->deferred);
	TAILQ_INIT(&pool->sessions);
	return pool;
}

int
relay_pool_set_config(struct relay_pool *pool, struct config *cfg, char *err,
    size_t errlen)
{
	SSL_CTX *ctx = tls_client_ctx_new(cfg->ca_file, err, errlen);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(pool->ssl_ctx);
	pool->ssl_ctx = ctx;
	config_unref(pool->cfg);
	pool->cfg = config_ref(cfg);
	/* Idle sessions were opened with the old credentials: replace them
	 * as they are next needed. */
	struct relay_session *s, *tmp;
	TAILQ_FOREACH_SAFE(s, &pool->sessions, entry, tmp)
		if (s->state == S_READY && s->job == NULL)
			session_close(s, "configuration reloaded");
	return 0;
}

void
relay_pool_set_trace(struct relay_pool *pool, relay_trace_fn *fn, void *arg)
{
	pool->trace = fn;
	pool->trace_arg = arg;
}

void
relay_pool_stats(const struct relay_pool *pool, struct relay_stats *st)
{
	*st = pool->stats;
	st->sessions_open = pool->nsessions;
	st->jobs_queued = pool->nqueued;
}

/* Hand queued jobs to idle sessions; open sessions for the rest. */
static void
pool_dispatch(struct relay_pool *pool)
{
	struct relay_session *s;
	unsigned starting = 0;

	TAILQ_FOREACH(s, &pool->sessions, entry) {
		if (TAILQ_EMPTY(&pool->queue))
			return;
		if (s->state == S_READY && s->job == NULL)
			session_next(s);
		else if (s->state < S_READY)
			starting++;
	}
	/* a session near its last job does not count: its replacement is
	 * started beside it (see session_next) */
	while (pool->nqueued > starting &&
	    pool->nsessions - pool->nretiring < pool->cfg->max_connections) {
		session_start(pool);
		starting++;
	}
}

static void
pool_check_drained(struct relay_pool *pool)
{
	if (pool->shutting_down && pool->nsessions == 0 &&
	    pool->drained != NULL) {
		void (*fn)(void *) = pool->drained;
		pool->drained = NULL;
		fn(pool->drained_arg);
	}
}

void
relay_pool_shutdown(struct relay_pool *pool, void (*drained)(void *),
    void *arg)
{
	struct relay_job *job;
	struct relay_session *s, *tmp;

	pool->shutting_down = 1;
	pool->drained = drained;
	pool->drained_arg = arg;
	while ((job = TAILQ_FIRST(&pool->queue)) != NULL)
		job_fail(job, 421, "4.3.2", "relay is shutting down");
	TAILQ_FOREACH_SAFE(s, &pool->sessions, entry, tmp)
		if (s->job == NULL)
			session_close(s, "shutting down");
	pool_check_drained(pool);
}

void
relay_pool_free(struct relay_pool *pool)
{
	struct relay_session *s;
	struct relay_job *job;
	if (pool == NULL)
		return;
	while ((s = TAILQ_FIRST(&pool->sessions)) != NULL) {
		if (s->job != NULL)
			job_fail(s->job, 421, "4.3.2", "relay is shutting down");
		session_close(s, "pool freed");
	}
	while ((job = TAILQ_FIRST(&pool->queue)) != NULL)
		job_fail(job, 421, "4.3.2", "relay is shutting down");
	while ((job = TAILQ_FIRST(&pool->deferred)) != NULL) {
		TAILQ_REMOVE(&pool->deferred, job, entry);
		job_report(job);
	}
	SSL_CTX_free(pool->ssl_ctx);
	config_unref(pool->cfg);
	ses_smtp_login_unref(pool->login);
	free(pool);
}

void
relay_pool_set_login(struct relay_pool *pool, struct ses_smtp_login *login)
{
	ses_smtp_login_unref(pool->login);
	pool->login = login != NULL ? ses_smtp_login_ref(login) : NULL;
}

/* ---- sessions: plumbing ---- */

static void
session_set_state(struct relay_session *s, enum sess_state st)
{
	log_debug("upstream u%u state %s -> %s", s->id, state_names[s->state],
	    state_names[st]);
	s->state = st;
}

static void
session_timeout(struct relay_session *s, int seconds)
{
	struct timeval tv = { seconds, 0 };
	bufferevent_set_timeouts(s->bev, seconds > 0 ? &tv : NULL, &tv);
}

static void
session_send(struct relay_session *s, enum sess_state next, int timeout,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * A command goes to the output in one piece: on a TLS bufferevent every
 * addition to the output is an SSL_write of its own, so a command added
 * in two pieces would cost two TLS records (and two more reads at SES).
 */
static void
session_send(struct relay_session *s, enum sess_state next, int timeout,
    const char *fmt, ...)
{
	va_list ap;
	char line[SMTP_LINE_MAX + 2];
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("session_send: cannot format a command");
	if ((size_t)n < sizeof(line) - 2) {
		line[n] = '\r';
		line[n + 1] = '\n';
		evbuffer_add(out, line, (size_t)n + 2);
	} else {
		/* longer than a command line may be: never from us, but
		 * still in one piece */
		struct evbuffer *tmp = evbuffer_new();
		if (tmp == NULL)
			fatalx("evbuffer_new failed");
		va_start(ap, fmt);
		evbuffer_add_vprintf(tmp, fmt, ap);
		va_end(ap);
		evbuffer_add(tmp, "\r\n", 2);
		evbuffer_add_buffer(out, tmp);
		evbuffer_free(tmp);
	}
	wipe(line, sizeof(line));	/* AUTH sends the password this way */
	session_timeout(s, timeout);
	session_set_state(s, next);
}

static void
session_free(struct relay_session *s)
{
	if (s->dnsreq != NULL)
		evdns_getaddrinfo_cancel(s->dnsreq);
	if (s->addrs != NULL)
		evutil_freeaddrinfo(s->addrs);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->idle_ev != NULL)
		event_free(s->idle_ev);
	if (s->pump_ev != NULL)
		event_free(s->pump_ev);
	config_unref(s->cfg);
	wipe(s->reply, sizeof(s->reply));
	free(s);
}

/* Drop the session now (no QUIT).  Its job must have been dealt with. */
static void
session_close(struct relay_session *s, const char *why)
{
	struct relay_pool *pool = s->pool;
	if (s->job != NULL)
		fatalx("session_close: u%u still has a job", s->id);
	log_debug("upstream u%u closed: %s", s->id, why);
	TAILQ_REMOVE(&pool->sessions, s, entry);
	pool->nsessions--;
	if (s->retiring)
		pool->nretiring--;
	s->state = S_CLOSED;
	if (s->bev != NULL)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	if (s->idle_ev != NULL)
		evtimer_del(s->idle_ev);
	if (s->pump_ev != NULL)
		event_del(s->pump_ev);
	/* never free a session under its own running callback */
	if (s->in_cb > 0)
		s->dead = 1;
	else
		session_free(s);
	pool_check_drained(pool);
}

/*
 * The session cannot go on.  Its job (if any) is retried on a fresh
 * session if it had not started yet on a reused one; otherwise it fails
 * with reply.  Queued jobs fail too when the session never got ready and
 * no other session is working: the endpoint is unusable right now, and
 * waiting clients deserve an answer rather than a timeout.
 */
static void
session_fail(struct relay_session *s, const struct relay_reply *reply)
{
	struct relay_pool *pool = s->pool;
	struct relay_job *job = s->job;
	int never_ready = !s->ready_once;

	log_info("upstream u%u failed state=%s reply=\"%d %s%s%s\"", s->id,
	    state_names[s->state], reply->code, reply->enhanced,
	    reply->enhanced[0] ? " " : "", reply->text);
	if (job != NULL) {
		s->job = NULL;
		job->sess = NULL;
		if (s->state == S_MAIL && s->used && !job->retried) {
			/* a reused session died under us: try once more */
			job->retried = 1;
			TAILQ_INSERT_HEAD(&pool->queue, job, entry);
			job->queued = 1;
			pool->nqueued++;
		} else {
			job_complete(job, status_of(reply->code), reply, NULL);
		}
	}
	session_close(s, "failed");
	if (never_ready) {
		struct relay_session *o;
		int working = 0;
		TAILQ_FOREACH(o, &pool->sessions, entry)
			if (o->ready_once)
				working = 1;
		if (!working) {
			struct relay_job *q;
			while ((q = TAILQ_FIRST(&pool->queue)) != NULL)
				job_complete(q, status_of(reply->code), reply,
				    NULL);
		}
	}
	if (!pool->shutting_down)
		pool_dispatch(pool);
}

static void
session_fail_local(struct relay_session *s, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
session_fail_local(struct relay_session *s, int code, const char *enhanced,
    const char *fmt, ...)
{
	struct relay_reply r;
	va_list ap;
	r.code = code;
	r.from_ses = 0;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	session_fail(s, &r);
}

/* ---- sessions: connecting ---- */

static void
session_connect_next(struct relay_session *s)
{
	char addr[ADDR_STR_MAX];
	struct evutil_addrinfo *ai = s->addr_next;

	if (ai == NULL) {
		trace(s->pool, "connect", 0, "no address of %s:%u answered",
		    s->cfg->endpoint_host, s->cfg->endpoint_port);
		session_fail_local(s, 451, "4.4.1",
		    "cannot connect to SES endpoint %s:%u",
		    s->cfg->endpoint_host, s->cfg->endpoint_port);
		return;
	}
	s->addr_next = ai->ai_next;
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = bufferevent_socket_new(s->pool->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	session_timeout(s, CONNECT_TIMEOUT);
	session_set_state(s, S_CONNECT);
	addr_format(ai->ai_addr, addr, sizeof(addr));
	log_debug("upstream u%u connecting to %s", s->id, addr);
	if (bufferevent_socket_connect(s->bev, ai->ai_addr,
	    (int)ai->ai_addrlen) != 0) {
		/* immediate failure: the event callback will not run */
		trace(s->pool, "connect", 0, "%s: connection refused", addr);
		session_connect_next(s);
	}
}

static void
session_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct relay_session *s = arg;
	if (result == EVUTIL_EAI_CANCEL)
		return;		/* the session is being freed */
	s->dnsreq = NULL;
	if (result != 0) {
		trace(s->pool, "dns", 0, "%s: %s", s->cfg->endpoint_host,
		    evutil_gai_strerror(result));
		session_fail_local(s, 451, "4.4.3",
		    "cannot resolve SES endpoint %s: %s",
		    s->cfg->endpoint_host, evutil_gai_strerror(result));
		return;
	}
	s->addrs = res;
	s->addr_next = res;
	char first[ADDR_STR_MAX];
	addr_format(res->ai_addr, first, sizeof(first));
	trace(s->pool, "dns", 1, "%s -> %s", s->cfg->endpoint_host, first);
	session_connect_next(s);
}

static void
session_start(struct relay_pool *pool)
{
	struct relay_session *s = xcalloc(1, sizeof(*s));
	struct evutil_addrinfo hints;
	char port[8];

	s->pool = pool;
	s->cfg = config_ref(pool->cfg);
	s->id = ++pool->next_id;
	s->state = S_RESOLVE;
	TAILQ_INSERT_TAIL(&pool->sessions, s, entry);
	pool->nsessions++;
	pool->stats.sessions_total++;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%u", s->cfg->endpoint_port);
	/* may call session_resolved before it returns (numeric hosts) */
	struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(pool->dns,
	    s->cfg->endpoint_host, port, &hints, session_resolved, s);
	if (req != NULL && s->state == S_RESOLVE)
		s->dnsreq = req;
}

static void
session_start_tls(struct relay_session *s)
{
	SSL *ssl = tls_client_new(s->pool->ssl_ctx, s->cfg->endpoint_host,
	    s->cfg->tls_verify_name);
	if (ssl == NULL) {
		session_fail_local(s, 451, "4.7.5", "cannot set up TLS");
		return;
	}
	/* Whatever the server sent before the handshake is not trusted
	 * (STARTTLS response injection): drop it. */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	struct bufferevent *tls = bufferevent_openssl_filter_new(s->pool->base,
	    s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		SSL_free(ssl);
		session_fail_local(s, 451, "4.7.5", "cannot set up TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	/* encrypt a large message as the socket drains, not all at once */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, SEND_BUFFER_MAX);
	s->bev = tls;
	s->ssl = ssl;
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	session_timeout(s, COMMAND_TIMEOUT);
	session_set_state(s, S_HANDSHAKE);
}

static void
session_connected(struct relay_session *s)
{
	int fd = bufferevent_getfd(s->bev);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[ADDR_STR_MAX] = "?";
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_format((struct sockaddr *)&ss, addr,
		    sizeof(addr));
	trace(s->pool, "connect", 1, "TCP connection to %s", addr);
	if (s->addrs != NULL) {
		evutil_freeaddrinfo(s->addrs);
		s->addrs = s->addr_next = NULL;
	}
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (s->cfg->tls == UPSTREAM_TLS_IMPLICIT) {
		session_start_tls(s);
		return;
	}
	session_timeout(s, COMMAND_TIMEOUT);
	session_set_state(s, S_GREETING);
}

static void
session_handshake_done(struct relay_session *s)
{
	char proto[128], peer[600];
	s->tls_on = 1;
	tls_describe(s->ssl, proto, sizeof(proto));
	tls_describe_peer(s->ssl, peer, sizeof(peer));
	trace(s->pool, "tls", 1, "%s", proto);
	trace(s->pool, "certificate", 1, "%s verified for %s", peer,
	    s->cfg->tls_verify_name);
	log_debug("upstream u%u tls %s %s", s->id, proto, peer);
	if (s->cfg->tls == UPSTREAM_TLS_IMPLICIT) {
		session_timeout(s, COMMAND_TIMEOUT);
		session_set_state(s, S_GREETING);
	} else {
		session_send(s, S_EHLO, COMMAND_TIMEOUT, "EHLO %s",
		    s->cfg->hostname);
	}
}

static void
session_event(struct relay_session *s, struct bufferevent *bev, short what)
{

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECT)
			session_connected(s);
		else if (s->state == S_HANDSHAKE)
			session_handshake_done(s);
		return;
	}
	if (s->state == S_CONNECT && (what & BEV_EVENT_ERROR)) {
		char addr[64];
		snprintf(addr, sizeof(addr), "%s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		trace(s->pool, "connect", 0, "%s", addr);
		session_connect_next(s);
		return;
	}
	if (s->state == S_HANDSHAKE || (s->ssl != NULL && !s->tls_on)) {
		char why[512];
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (what & BEV_EVENT_TIMEOUT)
			snprintf(why, sizeof(why), "TLS handshake timed out");
		else
			tls_failure_reason(s->ssl, e, s->cfg->tls_verify_name,
			    why, sizeof(why));
		s->pool->stats.tls_failures++;
		trace(s->pool, "tls", 0, "%s", why);
		session_fail_local(s, 451, "4.7.5", "%s", why);
		return;
	}
	if (s->state == S_READY && s->job == NULL) {
		session_close(s, "closed by SES while idle");
		return;
	}
	if (s->state == S_QUIT) {
		struct relay_job *job = s->job;
		if (job != NULL && job->msg == NULL) {
			/* a probe: QUIT sent, the server hung up: fine */
			trace(s->pool, "quit", 1, "connection closed");
			struct relay_reply r;
			reply_local(&r, 221, "2.0.0", "probe complete");
			job_complete(job, RELAY_OK, &r, NULL);
		}
		session_close(s, "closed after QUIT");
		return;
	}
	const char *kind = (what & BEV_EVENT_TIMEOUT) ? "timed out" :
	    (what & BEV_EVENT_EOF) ? "closed by SES" : "network error";
	if (s->state == S_DOT)
		session_fail_local(s, 451, "4.4.2",
		    "connection to SES %s after the message was sent; "
		    "it may have been delivered", kind);
	else
		session_fail_local(s, 451, (what & BEV_EVENT_TIMEOUT) ?
		    "4.4.2" : "4.4.2", "connection to SES %s (%s)", kind,
		    state_names[s->state]);
}

/* ---- sessions: the dialogue ---- */

static void
session_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_session *s = arg;
	if (s->state == S_READY && s->job == NULL) {
		s->in_cb++;
		session_send(s, S_QUIT, COMMAND_TIMEOUT, "QUIT");
		if (--s->in_cb == 0 && s->dead)
			session_free(s);
	}
}

/* Become idle, or take the next job. */
static void
session_next(struct relay_session *s)
{
	struct relay_pool *pool = s->pool;
	struct relay_job *job;

	session_set_state(s, S_READY);
	if (s->idle_ev != NULL)
		evtimer_del(s->idle_ev);
	if (s->cfg != pool->cfg || pool->shutting_down ||
	    s->nmessages >= s->cfg->session_messages) {
		session_send(s, S_QUIT, COMMAND_TIMEOUT, "QUIT");
		return;
	}
	job = TAILQ_FIRST(&pool->queue);
	if (s->peer_closed)
		job = NULL;	/* the close is handled next, as an idle one */
	if (job != NULL && job->msg == NULL && s->ready_once && s->used) {
		/* a probe wants a fresh session of its own */
		job = NULL;
	}
	if (job == NULL) {
		/* idle: no read timeout, but quit before SES's idle cut */
		bufferevent_set_timeouts(s->bev, NULL, NULL);
		if (s->idle_ev == NULL)
			s->idle_ev = evtimer_new(pool->base, session_idle_cb, s);
		struct timeval tv = { RELAY_IDLE_SECONDS, 0 };
		evtimer_add(s->idle_ev, &tv);
		return;
	}
	job_unqueue(job);
	s->job = job;
	job->sess = s;
	if (job->msg == NULL) {
		session_send(s, S_QUIT, COMMAND_TIMEOUT, "QUIT");
		return;
	}
	job->rcpt_next = 0;
	job->rcpt_ok = 0;
	for (size_t i = 0; i < job->msg->nrcpts; i++)
		job->rcpt_status[i] = RELAY_OK;
	unsigned ahead = s->cfg->session_messages / 4;
	if (ahead > RELAY_REPLACE_AHEAD)
		ahead = RELAY_REPLACE_AHEAD;
	if (!s->retiring &&
	    s->nmessages + (ahead > 0 ? ahead : 1) >= s->cfg->session_messages) {
		/* near the last job of this session: connect its
		 * replacement now, so that no job waits for the TLS
		 * handshake */
		s->retiring = 1;
		pool->nretiring++;
		if (pool->nsessions - pool->nretiring < s->cfg->max_connections)
			session_start(pool);
	}
	uint64_t size = relay_msg_size(job->msg);
	char sizep[32] = "";
	if (size != RELAY_SIZE_UNKNOWN)
		snprintf(sizep, sizeof(sizep), " SIZE=%llu",
		    (unsigned long long)size);
	session_send(s, S_MAIL, COMMAND_TIMEOUT, "MAIL FROM:<%s>%s%s",
	    job->msg->sender, sizep,
	    job->msg->eightbit && s->cap_8bitmime ? " BODY=8BITMIME" : "");
}

static void
session_auth(struct relay_session *s)
{
	if (s->pool->login == NULL) {
		struct relay_reply r;

		reply_local(&r, 451, "4.7.0", "the relay has no SES SMTP "
		    "credentials");
		session_fail(s, &r);
		return;
	}
	const char *user = s->pool->login->user;
	const char *pass = s->pool->login->password;
	if (s->cap_plain) {
		/* "\0user\0password", base64 */
		size_t ul = strlen(user), pl = strlen(pass);
		size_t rawlen = ul + pl + 2;
		unsigned char *raw = xmalloc(rawlen);
		char *b64 = xmalloc(4 * ((rawlen + 2) / 3) + 1);
		raw[0] = '\0';
		memcpy(raw + 1, user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, pass, pl);
		EVP_EncodeBlock((unsigned char *)b64, raw, (int)rawlen);
		session_send(s, S_AUTH, COMMAND_TIMEOUT, "AUTH PLAIN %s", b64);
		wipe(raw, rawlen);
		wipe_free(b64);
		free(raw);
	} else if (s->cap_login) {
		session_send(s, S_AUTH_LOGIN_USER, COMMAND_TIMEOUT, "AUTH LOGIN");
	} else {
		trace(s->pool, "auth", 0, "SES offered neither AUTH PLAIN nor LOGIN");
		session_fail_local(s, 451, "4.7.0",
		    "SES endpoint offered no usable AUTH mechanism");
	}
}

static void
session_send_b64(struct relay_session *s, enum sess_state next,
    const char *secret)
{
	size_t len = strlen(secret);
	char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)secret,
	    (int)len);
	session_send(s, next, COMMAND_TIMEOUT, "%s", b64);
	wipe_free(b64);
}

static void
parse_ehlo(struct relay_session *s, const char *text)
{
	s->cap_starttls = s->cap_plain = s->cap_login = s->cap_8bitmime = 0;
	const char *line = strchr(text, '\n');	/* skip the greeting line */
	while (line != NULL) {
		line++;
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		char kw[128];
		snprintf(kw, sizeof(kw), "%.*s", (int)len, line);
		for (char *p = kw; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (strcmp(kw, "STARTTLS") == 0)
			s->cap_starttls = 1;
		else if (strcmp(kw, "8BITMIME") == 0)
			s->cap_8bitmime = 1;
		else if (strncmp(kw, "AUTH", 4) == 0 &&
		    (kw[4] == ' ' || kw[4] == '=')) {
			for (char *t = strtok(kw + 5, " "); t != NULL;
			    t = strtok(NULL, " ")) {
				if (strcmp(t, "PLAIN") == 0)
					s->cap_plain = 1;
				else if (strcmp(t, "LOGIN") == 0)
					s->cap_login = 1;
			}
		}
		line = end;
	}
}

/*
 * Queue the message dot-stuffed and ended by CRLF "." CRLF, built in one
 * contiguous chain and handed to the output at once: on a TLS bufferevent
 * each addition to the output is its own SSL_write, so adding the message
 * line by line cost a TLS record per line (and two reads per record at
 * SES).  Now a message goes out in records of up to 15,000 bytes
 * (libevent's write frame).
 */
/* A large message: its chains are moved to the output (dot-stuffing cuts
 * them where a line starts with "."), leaving body empty. */
static void
send_body_move(struct relay_session *s, struct evbuffer *body)
{
	struct evbuffer *tmp = evbuffer_new();
	char first = 0, last = 0;
	if (tmp == NULL)
		fatalx("evbuffer_new failed");
	size_t len = evbuffer_get_length(body);
	struct evbuffer_ptr end;
	evbuffer_ptr_set(body, &end, len - 1, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(body, &end, &last, 1);
	evbuffer_copyout(body, &first, 1);
	if (first == '.')
		evbuffer_add(tmp, ".", 1);	/* dot-stuffing */
	while (evbuffer_get_length(body) > 0) {
		struct evbuffer_ptr dot = evbuffer_search(body, "\n.", 2, NULL);
		size_t n = dot.pos >= 0 ? (size_t)dot.pos + 1 :
		    evbuffer_get_length(body);
		evbuffer_remove_buffer(body, tmp, n);
		if (dot.pos >= 0)
			evbuffer_add(tmp, ".", 1);
	}
	if (last != '\n')
		evbuffer_add(tmp, "\r\n", 2);
	evbuffer_add(tmp, ".\r\n", 3);
	evbuffer_add_buffer(bufferevent_get_output(s->bev), tmp);
	evbuffer_free(tmp);
}

static void
send_body(struct relay_session *s, struct evbuffer *body)
{
	size_t len = evbuffer_get_length(body);
	if (len > SEND_COPY_MAX) {
		send_body_move(s, body);
		return;
	}
	struct evbuffer *tmp = evbuffer_new();
	int n = evbuffer_peek(body, -1, NULL, NULL, 0);
	struct evbuffer_iovec *v = xcalloc((size_t)(n > 0 ? n : 1), sizeof(*v));
	char prev = '\n';	/* the message starts a line */

	if (tmp == NULL)
		fatalx("evbuffer_new failed");
	/* room for all of it in one chain; only dot-stuffing (rare) can
	 * need more, and then correctness does not depend on the room */
	if (evbuffer_expand(tmp, len + 5) != 0)
		fatalx("evbuffer_expand failed");
	evbuffer_peek(body, -1, NULL, v, n);
	for (int i = 0; i < n; i++) {
		const char *p = v[i].iov_base;
		const char *end = p + v[i].iov_len;
		const char *run = p, *q = p;
		if (p == end)
			continue;
		if (prev == '\n' && *p == '.')
			evbuffer_add(tmp, ".", 1);	/* dot-stuffing */
		while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL &&
		    ++q < end) {
			if (*q != '.')
				continue;
			evbuffer_add(tmp, run, (size_t)(q - run));
			evbuffer_add(tmp, ".", 1);
			run = q;	/* the line's own dot starts the next run */
		}
		evbuffer_add(tmp, run, (size_t)(end - run));
		prev = end[-1];
	}
	free(v);
	if (prev != '\n')
		evbuffer_add(tmp, "\r\n", 2);
	evbuffer_add(tmp, ".\r\n", 3);
	evbuffer_add_buffer(bufferevent_get_output(s->bev), tmp);
	evbuffer_free(tmp);
}

/* Move all of body to out dot-stuffed, *prev being the octet sent before
 * it ('\n' at the start of the message); one addition to out. */
static void
stuff_move(struct evbuffer *body, struct evbuffer *out, char *prev)
{
	size_t len = evbuffer_get_length(body);
	char first, last;
	struct evbuffer_ptr end;
	if (len == 0)
		return;
	struct evbuffer *tmp = evbuffer_new();
	if (tmp == NULL)
		fatalx("evbuffer_new failed");
	evbuffer_ptr_set(body, &end, len - 1, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(body, &end, &last, 1);
	evbuffer_copyout(body, &first, 1);
	if (*prev == '\n' && first == '.')
		evbuffer_add(tmp, ".", 1);
	while (evbuffer_get_length(body) > 0) {
		struct evbuffer_ptr dot = evbuffer_search(body, "\n.", 2, NULL);
		size_t n = dot.pos >= 0 ? (size_t)dot.pos + 1 :
		    evbuffer_get_length(body);
		evbuffer_remove_buffer(body, tmp, n);
		if (dot.pos >= 0)
			evbuffer_add(tmp, ".", 1);
	}
	*prev = last;
	evbuffer_add_buffer(out, tmp);
	evbuffer_free(tmp);
}

/* S_BODY: fill the output from the message's source while it holds less
 * than PUMP_LOW; the write callback and relay_job_resume come back. */
static void
session_pump(struct relay_session *s)
{
	struct relay_msg *msg = s->job->msg;
	struct evbuffer *out = bufferevent_get_output(s->bev);

	s->src_wait = 0;
	while (evbuffer_get_length(out) < PUMP_LOW) {
		if (evbuffer_get_length(msg->body) == 0) {
			if (s->src_eof) {
				if (s->body_prev != '\n')
					evbuffer_add(out, "\r\n", 2);
				evbuffer_add(out, ".\r\n", 3);
				session_timeout(s, DATA_END_TIMEOUT);
				session_set_state(s, S_DOT);
				return;
			}
			enum relay_src_status st = msg->src.read(msg->src.arg,
			    msg->body, PUMP_CHUNK);
			if (st == RELAY_SRC_ABORT) {
				session_fail_local(s, 451, "4.3.0", "message %s "
				    "not sent: its data could not be read or "
				    "was refused", msg->id);
				return;
			}
			if (st == RELAY_SRC_EOF)
				s->src_eof = 1;
			if (st == RELAY_SRC_WAIT &&
			    evbuffer_get_length(msg->body) == 0) {
				s->src_wait = 1;
				return;
			}
			continue;
		}
		stuff_move(msg->body, out, &s->body_prev);
		session_timeout(s, DATA_END_TIMEOUT);
	}
}

static void
pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_session *s = arg;
	s->in_cb++;
	if (s->state == S_BODY && s->job != NULL)
		session_pump(s);
	if (--s->in_cb == 0 && s->dead)
		session_free(s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay_session *s = arg;
	if (s->state == S_BODY && s->job != NULL && !s->src_wait &&
	    s->bev == bev)
		pump_cb(-1, 0, s);
}

/* The message id SES gives in "250 Ok <id>". */
static void
ses_message_id(const char *text, char *out, size_t outlen)
{
	out[0] = '\0';
	if (strncasecmp(text, "Ok ", 3) != 0)
		return;
	const char *p = text + 3;
	size_t n = strcspn(p, " ;");
	if (n > 0 && n < outlen)
		snprintf(out, outlen, "%.*s", (int)n, p);
}

static void
session_next_rcpt(struct relay_session *s)
{
	struct relay_job *job = s->job;
	struct relay_msg *msg = job->msg;

	if (job->rcpt_next < msg->nrcpts) {
		session_send(s, S_RCPT, COMMAND_TIMEOUT, "RCPT TO:<%s>",
		    msg->rcpts[job->rcpt_next]);
		return;
	}
	if (job->rcpt_ok == 0 ||
	    (msg->all_or_nothing && job->rcpt_ok < msg->nrcpts)) {
		struct relay_reply r = job->refusal;
		s->job = NULL;
		job->sess = NULL;
		job_complete(job, status_of(r.code), &r, NULL);
		session_send(s, S_RSET, COMMAND_TIMEOUT, "RSET");
		return;
	}
	session_send(s, S_DATA, COMMAND_TIMEOUT, "DATA");
}

/* One complete reply has arrived: code and text ('\n'-joined lines). */
static void
session_reply(struct relay_session *s, int code, const char *text)
{
	struct relay_job *job = s->job;
	struct relay_reply r;
	reply_set(&r, code, text, 1);

	if (code == 421 && s->state != S_QUIT) {
		trace(s->pool, state_names[s->state], 0, "%d %s", code, text);
		session_fail(s, &r);
		return;
	}
	switch (s->state) {
	case S_GREETING:
		if (code != 220) {
			trace(s->pool, "greeting", 0, "%d %s", code, text);
			session_fail(s, &r);
			return;
		}
		trace(s->pool, "greeting", 1, "%d %s", code, text);
		session_send(s, S_EHLO, COMMAND_TIMEOUT, "EHLO %s",
		    s->cfg->hostname);
		return;
	case S_EHLO:
		if (code != 250) {
			trace(s->pool, "ehlo", 0, "%d %s", code, text);
			session_fail(s, &r);
			return;
		}
		parse_ehlo(s, text);
		trace(s->pool, "ehlo", 1, "%s%s%s",
		    s->cap_starttls ? "STARTTLS " : "",
		    s->cap_plain ? "AUTH PLAIN " : "",
		    s->cap_login ? "AUTH LOGIN" : "");
		if (!s->tls_on) {
			if (!s->cap_starttls) {
				trace(s->pool, "starttls", 0,
				    "SES endpoint did not offer STARTTLS");
				session_fail_local(s, 451, "4.7.5",
				    "SES endpoint did not offer STARTTLS; "
				    "refusing to send credentials in clear");
				return;
			}
			session_send(s, S_STARTTLS, COMMAND_TIMEOUT, "STARTTLS");
			return;
		}
		session_auth(s);
		return;
	case S_STARTTLS:
		if (code != 220) {
			trace(s->pool, "starttls", 0, "%d %s", code, text);
			session_fail(s, &r);
			return;
		}
		trace(s->pool, "starttls", 1, "%d %s", code, text);
		session_start_tls(s);
		return;
	case S_AUTH_LOGIN_USER:
		if (code != 334) {
			trace(s->pool, "auth", 0, "%d %s", code, text);
			session_fail(s, &r);
			return;
		}
		session_send_b64(s, S_AUTH_LOGIN_PASS, s->pool->login->user);
		return;
	case S_AUTH_LOGIN_PASS:
		if (code != 334) {
			trace(s->pool, "auth", 0, "%d %s", code, text);
			session_fail(s, &r);
			return;
		}
		session_send_b64(s, S_AUTH, s->pool->login->password);
		return;
	case S_AUTH:
		if (code != 235) {
			trace(s->pool, "auth", 0, "%d %s", code, text);
			s->pool->stats.auth_failures++;
			if (code >= 500)
				log_warnx("upstream u%u: SES refused our "
				    "credentials (user %s, %s): %d %s", s->id,
				    s->pool->login->user,
				    s->pool->login->source, code, text);
			/* our credentials are wrong: the message is fine,
			 * so the client must retry later, not bounce */
			reply_local(&r, 451, "4.7.0",
			    "SES refused the relay's credentials: %d %s",
			    code, text);
			session_fail(s, &r);
			return;
		}
		trace(s->pool, "auth", 1, "%d %s (user %s)", code, text,
		    s->pool->login->user);
		s->ready_once = 1;
		s->pool->stats.last_success = time(NULL);
		session_next(s);
		return;
	case S_MAIL:
		if (code != 250) {
			job->refusal = r;
			s->job = NULL;
			job->sess = NULL;
			job_complete(job, status_of(code), &r, NULL);
			session_send(s, S_RSET, COMMAND_TIMEOUT, "RSET");
			return;
		}
		session_next_rcpt(s);
		return;
	case S_RCPT: {
		size_t i = job->rcpt_next++;
		if (code == 250 || code == 251) {
			job->rcpt_ok++;
		} else {
			job->rcpt_status[i] = status_of(code);
			job->rcpt_reply[i] = r;
			if (job->refusal.code == 0)
				job->refusal = r;
		}
		session_next_rcpt(s);
		return;
	}
	case S_DATA:
		if (code != 354) {
			s->job = NULL;
			job->sess = NULL;
			job_complete(job, status_of(code), &r, NULL);
			session_send(s, S_RSET, COMMAND_TIMEOUT, "RSET");
			return;
		}
		if (job->msg->src.read != NULL) {
			if (s->pump_ev == NULL)
				s->pump_ev = event_new(s->pool->base, -1, 0,
				    pump_cb, s);
			s->src_eof = 0;
			s->src_wait = 0;
			s->body_prev = '\n';
			/* the write callback runs when the output drains
			 * below PUMP_LOW */
			bufferevent_setwatermark(s->bev, EV_WRITE, PUMP_LOW, 0);
			session_set_state(s, S_BODY);
			session_timeout(s, DATA_END_TIMEOUT);
			session_pump(s);
			return;
		}
		send_body(s, job->msg->body);
		session_timeout(s, DATA_END_TIMEOUT);
		session_set_state(s, S_DOT);
		return;
	case S_DOT: {
		char id[128];
		s->pool->stats.last_success = time(NULL);
		ses_message_id(r.text, id, sizeof(id));
		if (code == 454 && strstr(r.text, "Throttling") != NULL)
			s->pool->stats.throttled++;
		s->nmessages++;
		s->used = 1;
		s->job = NULL;
		job->sess = NULL;
		job_complete(job, status_of(code), &r, id);
		session_next(s);
		if (s->state == S_READY)
			pool_dispatch(s->pool);
		return;
	}
	case S_RSET:
		if (code != 250) {
			session_send(s, S_QUIT, COMMAND_TIMEOUT, "QUIT");
			return;
		}
		s->used = 1;
		session_next(s);
		return;
	case S_QUIT:
		if (job != NULL && job->msg == NULL) {
			trace(s->pool, "quit", 1, "%d %s", code, text);
			struct relay_reply ok;
			reply_set(&ok, code, text, 1);
			job_complete(job, RELAY_OK, &ok, NULL);
		}
		session_close(s, "QUIT");
		return;
	case S_READY:
		/* unsolicited: SES's idle timeout (451 4.4.2) or similar */
		session_close(s, "unsolicited reply while idle");
		return;
	default:
		session_fail_local(s, 451, "4.5.0",
		    "unexpected reply from SES in state %s",
		    state_names[s->state]);
		return;
	}
}

static void
session_read(struct relay_session *s, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		size_t eol_len;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL,
		    &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > SMTP_REPLY_MAX) {
				session_fail_local(s, 451, "4.5.0",
				    "SES sent a reply line longer than %d "
				    "bytes", SMTP_REPLY_MAX);
				return;
			}
			return;
		}
		size_t len = (size_t)eol.pos;
		if (len > SMTP_REPLY_MAX || s->state < S_GREETING ||
		    s->state == S_HANDSHAKE) {
			session_fail_local(s, 451, "4.5.0",
			    "SES sent a malformed reply");
			return;
		}
		char line[SMTP_REPLY_MAX + 1];
		evbuffer_remove(in, line, len);
		line[len] = '\0';
		evbuffer_drain(in, eol_len);

		int code, last;
		const char *text;
		if (smtp_parse_reply_line(line, len, &code, &last, &text) != 0) {
			session_fail_local(s, 451, "4.5.0",
			    "SES sent a malformed reply line");
			return;
		}
		size_t tl = strlen(text);
		if (s->reply_len + tl + 2 > sizeof(s->reply)) {
			session_fail_local(s, 451, "4.5.0",
			    "SES sent a reply longer than %d bytes",
			    SMTP_REPLY_MAX);
			return;
		}
		if (s->reply_len > 0)
			s->reply[s->reply_len++] = '\n';
		memcpy(s->reply + s->reply_len, text, tl + 1);
		s->reply_len += tl;
		if (!last)
			continue;
		char reply[SMTP_REPLY_MAX];
		memcpy(reply, s->reply, s->reply_len + 1);
		s->reply_len = 0;
		session_reply(s, code, reply);
		/* stop if the session closed or changed its transport (after
		 * STARTTLS the old input was discarded on purpose) */
		if (s->dead || s->bev != bev)
			return;
	}
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay_session *s = arg;
	s->in_cb++;
	session_read(s, bev);
	if (--s->in_cb == 0 && s->dead)
		session_free(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay_session *s = arg;
	s->in_cb++;
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) &&
	    s->state >= S_GREETING && s->state != S_HANDSHAKE &&
	    (s->ssl == NULL || s->tls_on) &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		/* The close can come in the same read as the replies before
		 * it ("250 Ok <id>", close_notify and FIN in one segment),
		 * and the TLS bufferevent reports it before the read
		 * callback: take those replies first, or a message SES
		 * accepted would look failed and be sent again. */
		s->peer_closed = 1;
		session_read(s, bev);
	}
	if (!s->dead && s->bev == bev)
		session_event(s, bev, what);
	if (--s->in_cb == 0 && s->dead)
		session_free(s);
}
