/* smtp_server.c — see smtp_server.h. */
#include "smtp_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "account.h"
#include "addr.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "relay_client.h"
#include "upstream.h"
#include "sasl_server.h"
#include "ses_headers.h"
#include "smtp_parse.h"
#include "spool.h"
#include "tailq.h"
#include "tls.h"
#include "xmalloc.h"

/* Replies queued but not yet read by a pipelining client: stop reading
 * commands past this, so a client cannot make us buffer without limit. */
#define OUTPUT_HIGH	(64 * 1024)
/* Replies the kernel may hold unsent for a client (TCP_NOTSENT_LOWAT).
 * Without it, a client that pipelines and never reads lets the send
 * buffer autotune to tcp_wmem's maximum (4 MB): that much kernel memory
 * per connection, on top of OUTPUT_HIGH.  Replies are small, so this
 * costs no throughput. */
#define KERNEL_UNSENT_MAX	(16 * 1024)
/* Raw input held at most (a command line or a DATA chunk). */
#define INPUT_HIGH	(64 * 1024)
/* Errors (unknown commands, bad syntax, refused senders and recipients)
 * before we hang up. */
#define MAX_ERRORS	20
/* Recipients refused for being over the per-message limit (452 4.5.3)
 * since the client's last message, before each further one counts as an
 * error: a client may well send more than we take and send the rest in
 * its next transaction, but not forever without sending a message
 * (Postfix's smtpd_recipient_overshoot_limit). */
#define RCPT_OVERSHOOT	1000
/* Transactions (MAIL commands accepted) and RSETs in one session before
 * we hang up: a client sends one message after another on a connection,
 * but not forever (it reconnects after the 421). */
#define MAX_TRANSACTIONS 10000
#define MAX_RSET	10000
/* Unknown or malformed commands in one session (they count as errors
 * too): a real client sends none. */
#define MAX_UNKNOWN	10
/* A message's header section is held until it is complete (it must be
 * checked and rewritten before anything goes on): at most this much. */
#define HEADER_MAX	(256 * 1024)
/* Up to this much of a message is held in memory: a message that fits
 * goes to the spool journal (one fdatasync shared by many) or upstream in
 * one piece, as before; a larger one is streamed as it arrives, to its
 * own spool file or to SES, so a session holds a bounded amount. */
#define INMEM_MAX	(128 * 1024)
/* Passthrough: data the upstream has not taken yet, at most this much
 * before we stop reading the client; reading resumes below PT_LOW. */
#define PT_HIGH		(64 * 1024)
#define PT_LOW		(16 * 1024)
/* How long SIGTERM waits for busy sessions. */
#define SHUTDOWN_GRACE	30
/* NOOP, RSET, VRFY, EXPN, HELP in one session before we hang up. */
#define MAX_JUNK	1000
/* Sessions at once from one non-loopback client address. */
#define MAX_PER_CLIENT	50
/* AUTH failures in one session before we hang up. */
#define MAX_AUTH_FAILURES 5
/* Clients whose recent AUTH failures are remembered across sessions, how
 * long a failure counts, and the longest delay it earns. */
#define AUTH_PENALTY_SLOTS 256
#define AUTH_PENALTY_WINDOW 600
#define AUTH_DELAY_MAX 15
/* The whole DATA phase may take this many times [relay] timeout. */
#define DATA_DEADLINE_FACTOR 4
/* Out of descriptors (or memory), accept() fails at once, every time: the
 * listeners pause this long instead of spinning (nginx does the same). */
#define ACCEPT_PAUSE_MS	250
/* ... and say so at most once in this many seconds. */
#define ACCEPT_LOG_EVERY 10

enum sess_state {
	SS_CONNECTED,	/* greeted, no HELO/EHLO yet */
	SS_READY,	/* HELO/EHLO done, no transaction */
	SS_MAIL,	/* MAIL accepted */
	SS_RCPT,	/* at least one RCPT accepted */
	SS_DATA,	/* reading the message */
	SS_RELAYING,	/* waiting for the upstream (passthrough) or for
			 * the spool to make the message durable */
	SS_AUTH,	/* AUTH: the next line is a SASL response */
	SS_PAUSED,	/* AUTH failed: the reply waits out a delay */
	SS_CLOSING,	/* final reply queued; close once written */
	SS_LOOKUP	/* RCPT waits for a sandbox identity lookup
			 * (account_check_rcpt; bounded by its timeout) */
};

static const char *sess_state_names[] = {
	"connected", "ready", "mail", "rcpt", "data", "relaying", "auth",
	"paused", "closing", "lookup"
};

struct listener {
	TAILQ_ENTRY(listener) entry;
	struct evconnlistener *evl;
	char *text;
	char *unix_path;
	/* what it was opened for, to match against a reloaded config;
	 * spec.text and spec.unix_path are not used (see above) */
	struct listen_spec spec;
	int adopted;			/* passed by the service manager */
};

struct session;
TAILQ_HEAD(session_list, session);
TAILQ_HEAD(listener_list, listener);

struct smtp_server {
	struct event_base *base;
	struct config *cfg;
	struct upstream *pool;
	struct spool *spool;		/* spool mode */
	struct queue *queue;
	struct account *account;	/* NULL: the account is not watched */
	struct listener_list listeners;
	struct session_list sessions;
	unsigned nsessions;
	uint64_t next_id;
	int shutting_down;
	void (*drained)(void *);
	void *drained_arg;
	struct event *grace_ev;
	struct event *accept_ev;	/* resumes paused listeners */
	time_t accept_logged;		/* last "not accepting" log line */
	struct smtp_server_stats stats;
	SSL_CTX *tls_ctx;		/* inbound STARTTLS; NULL: not offered */
	int sasl_ready;			/* sasl_srv_init done */
	/* recent AUTH failures per client address, so that opening new
	 * sessions does not reset the delay a password guesser earns */
	struct auth_penalty {
		struct sockaddr_storage addr;
		unsigned failures;
		time_t last;
	} penalty[AUTH_PENALTY_SLOTS];
};

struct session {
	TAILQ_ENTRY(session) entry;
	struct smtp_server *srv;
	struct config *cfg;
	char id[24];
	char txid[40];		/* the current message: "<id>.<n>" */
	char client[ADDR_STR_MAX];
	struct sockaddr_storage peer;
	int is_local;		/* loopback or unix socket */
	int tls;		/* STARTTLS done */
	SSL *ssl;
	char *auth_user;	/* the SASL name once authenticated */
	char auth_mech[32];
	struct sasl_srv *sasl;
	unsigned auth_failures;
	unsigned junk;
	unsigned nrset;
	unsigned nunknown;
	unsigned nmail;		/* MAIL commands accepted */
	struct event *deadline_ev;	/* a command (or DATA) must finish */
	struct event *pause_ev;
	struct event *linger_ev;	/* closing: waiting for TLS to drain */
	unsigned linger_rounds;
	enum sess_state state;
	struct bufferevent *bev;
	char helo[256];
	int esmtp;
	unsigned nerrors;
	unsigned rcpt_overshoot;	/* 452 4.5.3 since the last message */
	int discarding;		/* skipping the rest of an overlong line */
	/* the transaction */
	char *sender;		/* as relayed (null_sender for <>) */
	int null_path;
	char **rcpts;
	size_t nrcpts;
	int eightbit;
	struct smtp_data_reader dr;
	/* the message as it arrives: held until its header section is
	 * complete and checked, then built (message_build) into out and
	 * passed on in pieces (sink_push) */
	struct evbuffer *data;	/* the header section as received */
	struct evbuffer *out;	/* built, not yet passed on */
	uint64_t out_size;	/* octets built so far */
	int hdr_done;		/* header section complete and checked */
	int discard;		/* refused or cut off: count, keep nothing */
	int has_nul;		/* a NUL octet was seen */
	/* the reply for the final dot, when it is known before it: made
	 * only then (an idle session carries neither), freed by tx_reset */
	struct relay_reply *refusal;	/* the message is refused */
	int refusal_logged;
	int paused;		/* not reading until the sink drains */
	struct event *resume_ev;	/* made at the first DATA */
	struct spool_envelope *env;	/* spool mode, from the header on */
	struct spool_stream *stream;	/* spool mode, a large message */
	struct pt_source *pt;		/* passthrough, a large message */
	struct early_outcome *early;	/* passthrough: SES answered
					 * before the dot */
	struct upstream_job *job;
	struct pending_commit *commit;
	struct account_lookup *lookup;	/* SS_LOOKUP */
	char *lookup_rcpt;
	enum sess_state lookup_prev;	/* SS_MAIL or SS_RCPT */
	struct timespec t_data;	/* when the final dot arrived */
	unsigned ntx;		/* transactions in this session */
};

/* A message on its way to disk.  It outlives its session if the client
 * hangs up, and the server at exit (the spool finishes its commits after
 * smtp_server_free): a message that became durable is queued all the
 * same. */
struct pending_commit {
	struct queue *queue;
	struct session *s;		/* NULL once the session is gone */
	struct spool_envelope *env;
};

/* Passthrough, a large message: SES's outcome, come before the final dot
 * and kept for it. */
struct early_outcome {
	enum relay_status status;
	struct relay_reply reply;
	char id[128];
};

/* Passthrough, a large message: what the client sent and the upstream
 * has not taken yet.  It belongs to the relay job's message (freed with
 * it); s is NULL once the session is gone. */
struct pt_source {
	struct session *s;
	struct evbuffer *buf;
	int eof;
};

static void session_process(struct session *);
static void rcpt_add(struct session *, const char *);
static void rcpt_refuse(struct session *, const char *, const char *);
static void rcpt_verdict(enum account_verdict, const char *, void *);
static void session_free(struct session *);
static void linger_cb(evutil_socket_t, short, void *);
static void resume_cb(evutil_socket_t, short, void *);

/* ---- replies and states ---- */

static void
reply(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply(struct session *s, const char *fmt, ...)
{
	va_list ap;
	char line[SMTP_LINE_MAX + 2];
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;	/* a reply line is bounded */
	/* one piece, so that with TLS a reply is one record */
	line[n++] = '\r';
	line[n++] = '\n';
	evbuffer_add(bufferevent_get_output(s->bev), line, (size_t)n);
}

/* A closing session waits for nothing: the upstream finishes a message
 * already on its way without us (upstream_cancel), a message being made
 * durable is queued all the same, an AUTH delay is dropped.  So no late
 * completion ever finds a closing session. */
static void
session_detach(struct session *s)
{
	if (s->pt != NULL) {
		/* freed with the job's message, perhaps later than us */
		s->pt->s = NULL;
		s->pt = NULL;
	}
	if (s->job != NULL) {
		upstream_cancel(s->srv->pool, s->job);
		s->job = NULL;
	}
	if (s->commit != NULL) {
		s->commit->s = NULL;	/* the commit goes on without us */
		s->commit = NULL;
	}
	if (s->lookup != NULL) {
		account_lookup_cancel(s->lookup);
		s->lookup = NULL;
	}
	free(s->lookup_rcpt);
	s->lookup_rcpt = NULL;
	evtimer_del(s->pause_ev);
}

/* The only place ->state changes. */
static void
set_state(struct session *s, enum sess_state st)
{
	if (s->state == SS_CLOSING && st != SS_CLOSING)
		fatalx("session %s: leaving closing state for %s", s->id,
		    sess_state_names[st]);
	log_debug("session %s state %s -> %s", s->id,
	    sess_state_names[s->state], sess_state_names[st]);
	if (st == SS_CLOSING)
		session_detach(s);
	s->state = st;
}

static void
set_read_timeout(struct session *s, int on)
{
	struct timeval tv = { (time_t)s->cfg->timeout, 0 };
	bufferevent_set_timeouts(s->bev, on ? &tv : NULL, &tv);
}

/* Free a closing session once its last reply has left: with TLS that
 * means the socket bufferevent under the TLS filter is drained too, which
 * is checked every 10 ms for at most 2 s. */
static void
finish_close(struct session *s)
{
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return;		/* the write callback brings us back */
	struct bufferevent *u = bufferevent_get_underlying(s->bev);
	if (u != NULL && evbuffer_get_length(bufferevent_get_output(u)) > 0 &&
	    s->linger_rounds++ < 200) {
		if (s->linger_ev == NULL)
			s->linger_ev = evtimer_new(s->srv->base, linger_cb, s);
		struct timeval tv = { 0, 10000 };
		evtimer_add(s->linger_ev, &tv);
		return;
	}
	session_free(s);
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	finish_close(arg);
}

/* How long a last reply may take to be written before we hang up. */
#define CLOSE_WRITE_SECONDS 5

/* Queue a last reply; the session closes once it is written, or after
 * CLOSE_WRITE_SECONDS if the client does not read it. */
static void
close_after(struct session *s)
{
	struct timeval tv = { CLOSE_WRITE_SECONDS, 0 };

	set_state(s, SS_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_set_timeouts(s->bev, NULL, &tv);
	bufferevent_enable(s->bev, EV_WRITE);
	finish_close(s);
}

/* A command line (or, with factor > 1, the whole DATA phase) must be
 * complete within [relay] timeout: a client trickling one byte at a time
 * does not hold a session forever.  factor 0 disarms. */
static void
arm_deadline(struct session *s, unsigned factor)
{
	if (factor == 0) {
		evtimer_del(s->deadline_ev);
		return;
	}
	struct timeval tv = { (time_t)s->cfg->timeout * factor, 0 };
	evtimer_add(s->deadline_ev, &tv);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (s->state == SS_CLOSING || s->state == SS_RELAYING ||
	    s->state == SS_PAUSED || s->state == SS_LOOKUP)
		return;
	log_info("session %s client=%s timeout in state %s (command not "
	    "complete in time)", s->id, s->client,
	    sess_state_names[s->state]);
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
	close_after(s);
}

static void
tx_reset(struct session *s)
{
	free(s->sender);
	s->sender = NULL;
	s->null_path = 0;
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->eightbit = 0;
	if (s->data != NULL)
		evbuffer_drain(s->data, evbuffer_get_length(s->data));
	if (s->out != NULL)
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
	if (s->stream != NULL) {
		spool_stream_abort(s->stream);	/* its file goes */
		s->stream = NULL;
	}
	if (s->env != NULL) {
		spool_envelope_free(s->env);
		s->env = NULL;
	}
	free(s->refusal);
	s->refusal = NULL;
	free(s->early);
	s->early = NULL;
	s->out_size = 0;
	s->hdr_done = s->discard = s->has_nul = 0;
	s->refusal_logged = 0;
	s->paused = 0;
}

/* Count a client error; 1 if the session was closed for too many. */
static int
client_error(struct session *s)
{
	if (++s->nerrors < MAX_ERRORS)
		return 0;
	log_info("session %s client=%s closed: too many errors", s->id,
	    s->client);
	s->srv->stats.closed_errors++;
	reply(s, "421 4.7.0 %s Too many errors, closing connection",
	    s->cfg->hostname);
	close_after(s);
	return 1;
}

/* ---- commands ---- */

static int
valid_helo(const char *arg)
{
	if (*arg == '\0' || strlen(arg) >= 256)
		return 0;
	for (const char *p = arg; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return 0;
	return 1;
}

/* "ip;port" as libsasl2 wants it, or NULL for unix sockets. */
static const char *
sasl_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char tmp[ADDR_STR_MAX];
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return NULL;
	addr_format(sa, tmp, sizeof(tmp));
	char *colon = strrchr(tmp, ':');
	if (colon == NULL)
		return NULL;
	*colon = ';';
	const char *h = tmp;
	if (tmp[0] == '[') {	/* "[v6];port" -> "v6;port" */
		h = tmp + 1;
		char *rb = strchr(tmp, ']');
		if (rb != NULL)
			memmove(rb, rb + 1, strlen(rb + 1) + 1);
	}
	snprintf(buf, len, "%s", h);
	return buf;
}

/* The AUTH mechanisms to offer now, or NULL: AUTH is only offered over
 * TLS or on loopback and unix connections, where a password is safe. */
static const char *
auth_mechs(struct session *s)
{
	if (s->cfg->auth == AUTH_OFF || !s->srv->sasl_ready ||
	    s->auth_user != NULL || (!s->tls && !s->is_local))
		return NULL;
	if (s->sasl == NULL) {
		char l[ADDR_STR_MAX], r[ADDR_STR_MAX];
		struct sockaddr_storage local;
		socklen_t ll = sizeof(local);
		const char *lp = NULL;
		if (getsockname(bufferevent_getfd(s->bev),
		    (struct sockaddr *)&local, &ll) == 0)
			lp = sasl_addr((struct sockaddr *)&local, l, sizeof(l));
		s->sasl = sasl_srv_new(s->cfg->sasl_service, s->cfg->hostname,
		    lp, sasl_addr((struct sockaddr *)&s->peer, r, sizeof(r)),
		    s->tls ? (unsigned)SSL_get_cipher_bits(s->ssl, NULL) : 0,
		    1);
		if (s->sasl == NULL)
			return NULL;
	}
	return sasl_srv_mechs(s->sasl);
}

static void
cmd_helo(struct session *s, const char *args, int esmtp)
{
	if (!valid_helo(args)) {
		reply(s, "501 5.5.4 Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		client_error(s);
		return;
	}
	tx_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", args);
	s->esmtp = esmtp;
	set_state(s, SS_READY);
	if (!esmtp) {
		reply(s, "250 %s", s->cfg->hostname);
		return;
	}
	reply(s, "250-%s Hello %s", s->cfg->hostname, s->helo);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu", (unsigned long long)s->cfg->max_message_size);
	reply(s, "250-8BITMIME");
	if (s->srv->tls_ctx != NULL && !s->tls)
		reply(s, "250-STARTTLS");
	const char *mechs = auth_mechs(s);
	if (mechs != NULL)
		reply(s, "250-AUTH %s", mechs);
	reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_mail(struct session *s, const char *args)
{
	struct smtp_mail_args ma;
	const char *why = "Syntax error";

	if (s->state == SS_MAIL || s->state == SS_RCPT) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		client_error(s);
		return;
	}
	if (s->srv->shutting_down) {
		reply(s, "421 4.3.2 %s Service shutting down",
		    s->cfg->hostname);
		close_after(s);
		return;
	}
	if (s->nmail >= MAX_TRANSACTIONS) {
		log_info("session %s client=%s closed: more than %d "
		    "transactions in one session", s->id, s->client,
		    MAX_TRANSACTIONS);
		s->srv->stats.closed_transactions++;
		reply(s, "421 4.7.0 %s Too many transactions in one "
		    "connection (at most %d), closing; reconnect to go on",
		    s->cfg->hostname, MAX_TRANSACTIONS);
		close_after(s);
		return;
	}
	enum smtp_path_result r = args == NULL ? SMTP_PATH_SYNTAX :
	    smtp_parse_mail_args(args, &ma, &why);
	switch (r) {
	case SMTP_PATH_OK:
		break;
	case SMTP_PATH_NON_ASCII:
		reply(s, "553 5.6.7 %s (SMTPUTF8 is not supported: SES does "
		    "not take internationalized addresses over SMTP)", why);
		client_error(s);
		return;
	case SMTP_PATH_UNKNOWN_PARAM:
		reply(s, "555 5.5.4 %s", why);
		client_error(s);
		return;
	default:
		reply(s, "501 5.5.4 %s", why);
		client_error(s);
		return;
	}
	if (s->cfg->auth == AUTH_REQUIRED && s->auth_user == NULL) {
		reply(s, "530 5.7.0 Authentication required");
		client_error(s);
		return;
	}
	/* <> goes to SES as null_sender: the rules for that address apply */
	const char *sender = ma.address[0] != '\0' ? ma.address :
	    s->cfg->null_sender;
	if (sender != NULL && !config_sender_permitted(s->cfg, sender,
	    s->auth_user, (struct sockaddr *)&s->peer)) {
		log_info("session %s client=%s user=%s refused sender=<%s>%s: "
		    "not allowed", s->id, s->client,
		    s->auth_user != NULL ? s->auth_user : "-", sender,
		    ma.address[0] == '\0' ? " (for <>)" : "");
		reply(s, "550 5.7.1 <%s>: Sender address not allowed for %s%s",
		    sender, s->auth_user != NULL ? "this user" : "this client",
		    ma.address[0] == '\0' ? " (<> is relayed with this "
		    "null_sender)" : "");
		client_error(s);
		return;
	}
	/* passthrough: SES would refuse it (quota, paused account) */
	const char *hold = s->cfg->mode == RELAY_MODE_PASSTHROUGH &&
	    s->srv->account != NULL ? account_hold_reason(s->srv->account) :
	    NULL;
	if (hold != NULL) {
		log_info("session %s client=%s deferred sender=<%s>: %s",
		    s->id, s->client, sender != NULL ? sender : "", hold);
		reply(s, "451 4.7.0 Try again later: %s", hold);
		return;
	}
	if (ma.has_size && ma.size > s->cfg->max_message_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit of %llu "
		    "bytes", (unsigned long long)s->cfg->max_message_size);
		client_error(s);
		return;
	}
	if (ma.address[0] == '\0') {
		if (s->cfg->null_sender == NULL) {
			reply(s, "550 5.7.1 The null sender <> is not accepted: "
			    "SES refuses it (see null_sender in "
			    "sesrelay.conf(5))");
			client_error(s);
			return;
		}
		s->sender = xstrdup(s->cfg->null_sender);
		s->null_path = 1;
	} else {
		s->sender = xstrdup(ma.address);
	}
	s->eightbit = ma.body == SMTP_BODY_8BITMIME;
	s->nmail++;
	set_state(s, SS_MAIL);
	reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const char *args)
{
	char address[SMTP_PATH_MAX];
	const char *why = "Syntax error";

	if (s->state != SS_MAIL && s->state != SS_RCPT) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		client_error(s);
		return;
	}
	enum smtp_path_result r = args == NULL ? SMTP_PATH_SYNTAX :
	    smtp_parse_rcpt_args(args, address, &why);
	if (r != SMTP_PATH_OK) {
		if (r == SMTP_PATH_NON_ASCII)
			reply(s, "553 5.6.7 %s (SMTPUTF8 is not supported)", why);
		else if (r == SMTP_PATH_UNKNOWN_PARAM)
			reply(s, "555 5.5.4 %s", why);
		else
			reply(s, "501 5.5.4 %s", why);
		client_error(s);
		return;
	}
	if (strchr(address, '@') == NULL) {
		reply(s, "550 5.1.3 <%s>: Recipient address must be a full "
		    "address (user@domain)", address);
		client_error(s);
		return;
	}
	/* the admin's max_recipients, or SES's own limit when that is lower
	 * (passthrough sends one transaction upstream): say which */
	size_t limit = s->cfg->max_recipients;
	int ses_limit = s->cfg->mode == RELAY_MODE_PASSTHROUGH &&
	    limit > RELAY_MAX_RCPTS;
	if (ses_limit)
		limit = RELAY_MAX_RCPTS;
	if (s->nrcpts >= limit) {
		reply(s, "452 4.5.3 Too many recipients (at most %zu per "
		    "message%s)", limit, ses_limit ?
		    " in passthrough mode, as SES takes" :
		    " on this relay");
		if (++s->rcpt_overshoot > RCPT_OVERSHOOT)
			client_error(s);
		return;
	}
	if (s->srv->account != NULL) {
		char reason[512];
		struct account_lookup *l;
		enum account_verdict v = account_check_rcpt(s->srv->account,
		    address, rcpt_verdict, s, &l, reason, sizeof(reason));

		if (v == ACCOUNT_RCPT_WAIT) {
			/* session_process stops reading until the answer */
			s->lookup = l;
			s->lookup_rcpt = xstrdup(address);
			s->lookup_prev = s->state;
			set_state(s, SS_LOOKUP);
			return;
		}
		if (v == ACCOUNT_RCPT_REFUSE) {
			rcpt_refuse(s, address, reason);
			return;
		}
	}
	rcpt_add(s, address);
}

static void
rcpt_add(struct session *s, const char *address)
{
	s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
	s->rcpts[s->nrcpts++] = xstrdup(address);
	set_state(s, SS_RCPT);
	reply(s, "250 2.1.5 Ok");
}

static void
rcpt_refuse(struct session *s, const char *address, const char *reason)
{
	log_info("session %s client=%s refused rcpt=<%s>: %s", s->id,
	    s->client, address, reason);
	reply(s, "550 5.7.1 %s", reason);
	client_error(s);
}

/* The sandbox lookup for s->lookup_rcpt answered. */
static void
rcpt_verdict(enum account_verdict v, const char *reason, void *arg)
{
	struct session *s = arg;
	char *address = s->lookup_rcpt;

	s->lookup = NULL;
	s->lookup_rcpt = NULL;
	set_state(s, s->lookup_prev);
	if (v == ACCOUNT_RCPT_REFUSE)
		rcpt_refuse(s, address, reason);
	else
		rcpt_add(s, address);
	free(address);
	if (s->state != SS_CLOSING)
		session_process(s);
}

static void
cmd_data(struct session *s, const char *args)
{
	if (s->state != SS_RCPT) {
		reply(s, s->state == SS_MAIL ?
		    "554 5.5.1 Error: no valid recipients" :
		    "503 5.5.1 Error: need RCPT command");
		client_error(s);
		return;
	}
	if (args != NULL && *args != '\0') {
		reply(s, "501 5.5.4 Syntax: DATA");
		client_error(s);
		return;
	}
	if (s->data == NULL)
		s->data = evbuffer_new();
	if (s->out == NULL)
		s->out = evbuffer_new();
	if (s->data == NULL || s->out == NULL)
		fatalx("evbuffer_new failed");
	if (s->resume_ev == NULL &&
	    (s->resume_ev = event_new(s->srv->base, -1, 0, resume_cb, s)) ==
	    NULL)
		fatalx("event_new failed");
	s->ntx++;
	snprintf(s->txid, sizeof(s->txid), "%s.%u", s->id, s->ntx);
	smtp_data_init(&s->dr);
	set_state(s, SS_DATA);
	arm_deadline(s, DATA_DEADLINE_FACTOR);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* ---- the finished message ---- */

/* Count the outcome of a transaction; code is our reply to its final dot. */
static void
account(struct session *s, int code)
{
	struct smtp_server_stats *st = &s->srv->stats;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	stats_observe(&st->reply_latency,
	    (double)(now.tv_sec - s->t_data.tv_sec) +
	    (double)(now.tv_nsec - s->t_data.tv_nsec) / 1e9);
	if (code < 300) {
		st->messages_accepted++;
		st->recipients += s->nrcpts;
		st->bytes += s->dr.total;
	} else if (code < 500) {
		st->messages_deferred++;
	} else {
		st->messages_refused++;
	}
}

static const char *
protocol_name(const struct session *s)
{
	if (!s->esmtp)
		return "SMTP";
	return s->tls ? (s->auth_user != NULL ? "ESMTPSA" : "ESMTPS") :
	    (s->auth_user != NULL ? "ESMTPA" : "ESMTP");
}

/* The final reply to a transaction is queued: back to reading commands,
 * or say goodbye if we are shutting down. */
static void
tx_finished(struct session *s)
{
	tx_reset(s);
	set_state(s, SS_READY);
	set_read_timeout(s, 1);
	arm_deadline(s, 1);
	if (s->srv->shutting_down) {
		reply(s, "421 4.3.2 %s Service shutting down",
		    s->cfg->hostname);
		close_after(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

/* The reply to a transaction the upstream finished, and its log line. */
static void
relay_outcome(struct session *s, enum relay_status status,
    const struct relay_reply *r, const char *ses_id)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double delay = (double)(now.tv_sec - s->t_data.tv_sec) +
	    (double)(now.tv_nsec - s->t_data.tv_nsec) / 1e9;
	const char *enh = r->enhanced[0] != '\0' ? r->enhanced :
	    r->code < 300 ? "2.0.0" : r->code < 500 ? "4.0.0" : "5.0.0";
	/* SES's 421 closed SES's session, not this one (RFC 5321 3.8: a 421
	 * means the server closes the channel): the client gets 451 with
	 * SES's text, and the session goes on */
	int code = r->code == 421 ? 451 : r->code;

	log_info("delivery id=%s from=<%s> rcpts=%zu size=%zu status=%s "
	    "reply=\"%d %s %s\" ses_id=%s delay=%.3fs", s->txid, s->sender,
	    s->nrcpts, (size_t)s->dr.total,
	    status == RELAY_OK ? "sent" :
	    status == RELAY_TEMPFAIL ? "deferred" : "bounced",
	    r->code, enh, r->text, ses_id[0] ? ses_id : "-", delay);
	reply(s, "%d %s %s", code, enh, r->text);
	account(s, code);
	tx_finished(s);
}

static void session_pause(struct session *);

static void
relay_done(const struct relay_result *res, void *arg)
{
	struct session *s = arg;

	s->job = NULL;
	s->pt = NULL;		/* freed with the job's message */
	if (s->state == SS_DATA) {
		/* A large message streaming in passthrough: SES (or the
		 * connection to it) ended the transaction before the final
		 * dot.  The client gets this outcome then; the rest of its
		 * data is read and dropped. */
		if (s->early == NULL)
			s->early = xcalloc(1, sizeof(*s->early));
		s->early->status = res->status;
		s->early->reply = res->reply;
		snprintf(s->early->id, sizeof(s->early->id), "%s",
		    res->ses_message_id);
		s->discard = 1;
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
		if (s->paused)
			event_active(s->resume_ev, EV_TIMEOUT, 0);
		return;
	}
	relay_outcome(s, res->status, &res->reply, res->ses_message_id);
}

/* Back on the event loop after the spool's fsyncs. */
static void
spool_done(int error, void *arg)
{
	struct pending_commit *pc = arg;
	struct session *s = pc->s;
	struct spool_envelope *env = pc->env;

	if (error == 0) {
		log_info("queued id=%s from=<%s> rcpts=%zu size=%llu client=%s",
		    env->id, env->sender, env->nrcpts,
		    (unsigned long long)env->size,
		    s != NULL ? s->client : "(gone)");
		if (s != NULL) {
			reply(s, "250 2.0.0 Ok: queued as %s", env->id);
			account(s, 250);
		}
		queue_add(pc->queue, env);
	} else {
		log_warnx("spool write failed id=%s: %s", env->id,
		    strerror(error));
		if (s != NULL) {
			if (error == ENOSPC || error == EDQUOT)
				reply(s, "452 4.3.1 Insufficient system storage");
			else
				reply(s, "451 4.3.0 Error: queue file write "
				    "error: %s", strerror(error));
			account(s, 451);
		}
		spool_envelope_free(env);
	}
	free(pc);
	if (s == NULL)
		return;
	s->commit = NULL;
	tx_finished(s);
}

/* Spool mode, from the header section on: the envelope (and queue id,
 * which the Received: line names). */
static struct spool_envelope *
make_envelope(struct session *s)
{
	struct spool_envelope *env = xcalloc(1, sizeof(*env));

	spool_new_id(s->srv->spool, env->id);
	env->created = time(NULL);
	env->sender = xstrdup(s->sender);
	env->null_path = s->null_path;
	env->nrcpts = s->nrcpts;
	env->rcpts = xcalloc(s->nrcpts, sizeof(*env->rcpts));
	for (size_t i = 0; i < s->nrcpts; i++)
		env->rcpts[i] = xstrdup(s->rcpts[i]);
	env->rcpt_state = xcalloc(s->nrcpts, 1);
	env->rcpt_error = xcalloc(s->nrcpts, sizeof(*env->rcpt_error));
	return env;
}

static void
spool_failed(struct session *s, int error, const char *id)
{
	log_warnx("spool write failed id=%s: %s", id, strerror(error));
	if (error == ENOSPC || error == EDQUOT)
		reply(s, "452 4.3.1 Insufficient system storage");
	else
		reply(s, "451 4.3.0 Error: queue file write error: %s",
		    strerror(error));
	account(s, 451);
	tx_reset(s);
	set_state(s, SS_READY);
}

/* Spool mode: the message is accepted once it is durable on disk (the
 * journal for one held in memory; its own file, fdatasync'd, for one
 * streamed). */
static void
spool_message(struct session *s)
{
	struct spool_envelope *env = s->env;
	struct pending_commit *pc = xcalloc(1, sizeof(*pc));
	struct spool_commit *c;

	s->env = NULL;
	pc->queue = s->srv->queue;
	pc->s = s;
	pc->env = env;
	if (s->stream != NULL) {
		struct spool_stream *st = s->stream;
		s->stream = NULL;
		spool_stream_write(st, s->out);
		env->size = s->out_size;
		c = spool_stream_commit(st, env->size, spool_done, pc);
	} else {
		env->size = evbuffer_get_length(s->out);
		c = spool_commit(s->srv->spool, env, s->out, spool_done, pc);
	}
	if (c == NULL) {
		int error = errno;
		free(pc);
		spool_failed(s, error, env->id);
		spool_envelope_free(env);
		return;
	}
	s->commit = pc;
	set_state(s, SS_RELAYING);
	set_read_timeout(s, 0);
	arm_deadline(s, 0);
}

/* ---- a message as it streams in ---- */

static enum relay_src_status
pt_read(void *arg, struct evbuffer *out, size_t max)
{
	struct pt_source *pt = arg;
	if (evbuffer_get_length(pt->buf) == 0)
		return pt->eof ? RELAY_SRC_EOF : RELAY_SRC_WAIT;
	evbuffer_remove_buffer(pt->buf, out, max);
	struct session *s = pt->s;
	if (s != NULL && s->paused && evbuffer_get_length(pt->buf) < PT_LOW)
		event_active(s->resume_ev, EV_TIMEOUT, 0);
	return pt->eof && evbuffer_get_length(pt->buf) == 0 ? RELAY_SRC_EOF :
	    RELAY_SRC_DATA;
}

static void
pt_free(void *arg)
{
	struct pt_source *pt = arg;
	evbuffer_free(pt->buf);
	free(pt);
}

/* The relay job for s's message (all of it in out, or its start with the
 * rest to come through a pt_source). */
static void
pt_submit(struct session *s, int stream)
{
	struct relay_msg *msg = relay_msg_new(s->txid, s->sender);
	for (size_t i = 0; i < s->nrcpts; i++)
		relay_msg_add_rcpt(msg, s->rcpts[i]);
	msg->eightbit = s->eightbit;
	msg->all_or_nothing = 1;
	if (stream) {
		struct pt_source *pt = xcalloc(1, sizeof(*pt));
		pt->buf = evbuffer_new();
		if (pt->buf == NULL)
			fatalx("evbuffer_new failed");
		pt->s = s;
		msg->src = (struct relay_source){ pt_read, pt_free, pt,
		    RELAY_SIZE_UNKNOWN };
		s->pt = pt;
	} else {
		evbuffer_add_buffer(msg->body, s->out);
	}
	s->job = upstream_submit(s->srv->pool, msg, relay_done, s);
}

/* Stop reading the client until the sink has room. */
static void
session_pause(struct session *s)
{
	if (s->paused)
		return;
	s->paused = 1;
	bufferevent_disable(s->bev, EV_READ);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (!s->paused || s->state != SS_DATA)
		return;
	s->paused = 0;
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

/* The spool wrote enough of the stream. */
static void
stream_drained(void *arg)
{
	resume_cb(-1, 0, arg);
}

/* Nothing of this message goes on: drop what was passed on so far (the
 * spool file, the upstream transaction without its final dot). */
static void
sink_abort(struct session *s)
{
	if (s->stream != NULL) {
		spool_stream_abort(s->stream);
		s->stream = NULL;
	}
	if (s->pt != NULL) {
		s->pt->s = NULL;
		s->pt = NULL;
	}
	if (s->job != NULL) {
		upstream_cancel(s->srv->pool, s->job);	/* closes the upstream session */
		s->job = NULL;
	}
	evbuffer_drain(s->out, evbuffer_get_length(s->out));
	s->discard = 1;
}

static void
refuse_at_dot(struct session *s, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Refuse the message now, reply at the final dot. */
static void
refuse_at_dot(struct session *s, int code, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;
	sink_abort(s);
	if (s->refusal == NULL)
		s->refusal = xcalloc(1, sizeof(*s->refusal));
	s->refusal->code = code;
	s->refusal->from_ses = 0;
	snprintf(s->refusal->enhanced, sizeof(s->refusal->enhanced), "%s",
	    enhanced);
	va_start(ap, fmt);
	vsnprintf(s->refusal->text, sizeof(s->refusal->text), fmt, ap);
	va_end(ap);
}

/* Pass what out holds on, if it is time: past INMEM_MAX to the spool
 * stream or the upstream; the client waits while they are behind. */
static void
sink_push(struct session *s)
{
	size_t len = evbuffer_get_length(s->out);
	if (s->cfg->mode == RELAY_MODE_SPOOL) {
		if (s->stream == NULL) {
			if (len <= INMEM_MAX)
				return;
			s->stream = spool_stream_open(s->srv->spool, s->env,
			    stream_drained, s);
			if (s->stream == NULL) {
				refuse_at_dot(s, 451, "4.3.0", "Error: queue "
				    "file write error: %s", strerror(errno));
				return;
			}
		}
		if (spool_stream_write(s->stream, s->out) > SPOOL_STREAM_HIGH)
			session_pause(s);
		return;
	}
	if (s->pt == NULL) {
		/* transport = api signs the whole message as one request
		 * body: it is held until the final dot (max_message_size) */
		if (len <= INMEM_MAX || upstream_smtp(s->srv->pool) == NULL)
			return;
		pt_submit(s, 1);
	}
	evbuffer_add_buffer(s->pt->buf, s->out);
	upstream_resume(s->srv->pool, s->job);
	if (evbuffer_get_length(s->pt->buf) > PT_HIGH)
		session_pause(s);
}

/* The header section (the first hlen octets of data) is complete: check
 * it, then build the message as it goes on.  0, or -1 if refused. */
static int
header_done(struct session *s, size_t hlen)
{
	struct relay_reply refusal;
	char from[SES_ADDRESS_MAX];

	s->hdr_done = 1;
	if (message_check_header(s->data, hlen, &refusal) != 0) {
		refuse_at_dot(s, refusal.code, refusal.enhanced, "%s",
		    refusal.text);
		return -1;
	}
	int fr = message_from_permitted(s->cfg, s->data, s->auth_user,
	    (struct sockaddr *)&s->peer, from);
	if (fr != 1) {
		const char *who = s->auth_user != NULL ? s->auth_user :
		    s->client;
		const char *whom = s->auth_user != NULL ? "this user" :
		    "this client";
		if (fr == MESSAGE_FROM_MISSING) {
			log_info("delivery id=%s from=<%s> rcpts=%zu "
			    "status=refused reason=\"no From: header "
			    "(client %s)\"", s->txid, s->sender, s->nrcpts,
			    who);
			refuse_at_dot(s, 550, "5.7.1", "Message has no From: "
			    "header, and senders are restricted here: the "
			    "From: address must be one allowed for %s", whom);
		} else if (from[0] != '\0') {
			log_info("delivery id=%s from=<%s> rcpts=%zu "
			    "status=refused reason=\"From: <%s> not allowed "
			    "for %s\"", s->txid, s->sender, s->nrcpts, from,
			    who);
			refuse_at_dot(s, 550, "5.7.1", "From: address <%s> not "
			    "allowed for %s", from, whom);
		} else {
			log_info("delivery id=%s from=<%s> rcpts=%zu "
			    "status=refused reason=\"From: header without a "
			    "readable address (client %s)\"", s->txid,
			    s->sender, s->nrcpts, who);
			refuse_at_dot(s, 550, "5.7.1", "From: header cannot be "
			    "parsed or has no address, and senders are "
			    "restricted here (a display name with a comma "
			    "must be quoted)");
		}
		s->refusal_logged = 1;
		return -1;
	}
	struct message_origin origin = {
		.helo = s->helo, .client = s->client,
		.protocol = protocol_name(s), .id = s->txid,
		.rcpt_for = s->nrcpts == 1 ? s->rcpts[0] : NULL,
	};
	if (s->cfg->mode == RELAY_MODE_SPOOL) {
		s->env = make_envelope(s);
		origin.id = s->env->id;
	}
	/* all of data: the header section and the body so far */
	message_build(s->cfg, s->sender, &origin, s->data, s->out);
	s->out_size = evbuffer_get_length(s->out);
	sink_push(s);
	return 0;
}

/* Where data's header section ends (octets through its empty line), if
 * it does; old: octets it held before the last addition. */
static size_t
header_end(struct evbuffer *data, size_t old)
{
	char two[2];
	if (old == 0 && evbuffer_copyout(data, two, 2) == 2 &&
	    two[0] == '\r' && two[1] == '\n')
		return 2;	/* starts with the empty line */
	struct evbuffer_ptr start;
	evbuffer_ptr_set(data, &start, old >= 3 ? old - 3 : 0,
	    EVBUFFER_PTR_SET);
	struct evbuffer_ptr p = evbuffer_search(data, "\r\n\r\n", 4, &start);
	return p.pos < 0 ? 0 : (size_t)p.pos + 4;
}

static void
data_emit(void *arg, const char *p, size_t n)
{
	struct session *s = arg;

	if (s->discard)
		return;		/* keep counting (dr.total), keep nothing */
	if (memchr(p, '\0', n) != NULL) {
		s->has_nul = 1;	/* refused at the dot: nothing goes on */
		sink_abort(s);
		return;
	}
	if (s->dr.total > s->cfg->max_message_size) {
		sink_abort(s);	/* 552 at the dot (message_check_data) */
		return;
	}
	if (s->hdr_done) {
		evbuffer_add(s->out, p, n);
		s->out_size += n;
		sink_push(s);
		return;
	}
	size_t old = evbuffer_get_length(s->data);
	evbuffer_add(s->data, p, n);
	size_t hlen = header_end(s->data, old);
	if (hlen > 0)
		header_done(s, hlen);
	else if (old + n > HEADER_MAX)
		refuse_at_dot(s, 552, "5.3.4", "Message header section is "
		    "longer than %d octets (no empty line ends it)",
		    HEADER_MAX);
}

static void
data_done(struct session *s)
{
	struct relay_reply refusal;

	clock_gettime(CLOCK_MONOTONIC, &s->t_data);
	s->rcpt_overshoot = 0;	/* a message: the client is not just probing */
	arm_deadline(s, 1);
	if (s->dr.flags & SMTP_DATA_LOOSE_END) {
		/* The client thinks its data ended: whatever it sends next
		 * cannot be trusted to be commands (SMTP smuggling). */
		log_info("session %s client=%s refused: bare LF/CR before "
		    "the end of data; closing", s->id, s->client);
		reply(s, "550 5.6.0 Message refused: bare CR or LF at the end "
		    "of data; lines must end with CRLF (SMTP smuggling "
		    "protection)");
		sink_abort(s);
		tx_reset(s);
		close_after(s);
		return;
	}
	int bad = message_check_data(s->cfg, s->dr.flags, s->dr.total,
	    s->has_nul, &refusal) != 0;
	if (!bad && !s->hdr_done && !s->discard)
		header_done(s, evbuffer_get_length(s->data));	/* no body */
	if (!bad && s->refusal != NULL) {
		refusal = *s->refusal;
		bad = 1;
	}
	if (bad) {
		sink_abort(s);
		if (!s->refusal_logged)
			log_info("delivery id=%s from=<%s> rcpts=%zu size=%llu "
			    "status=refused reply=\"%d %s %s\"", s->txid,
			    s->sender, s->nrcpts,
			    (unsigned long long)s->dr.total, refusal.code,
			    refusal.enhanced, refusal.text);
		reply(s, "%d %s %s", refusal.code, refusal.enhanced,
		    refusal.text);
		account(s, refusal.code);
		tx_reset(s);
		set_state(s, SS_READY);
		return;
	}
	if (s->early != NULL) {
		/* passthrough: SES finished the transaction early */
		struct relay_reply r = s->early->reply;
		enum relay_status st = s->early->status;
		char id[128];
		snprintf(id, sizeof(id), "%s", s->early->id);
		relay_outcome(s, st, &r, id);
		return;
	}
	if (s->cfg->mode == RELAY_MODE_SPOOL) {
		spool_message(s);
		return;
	}
	/* passthrough: straight to SES; the client gets SES's reply */
	set_state(s, SS_RELAYING);
	set_read_timeout(s, 0);
	arm_deadline(s, 0);
	if (s->pt != NULL) {
		evbuffer_add_buffer(s->pt->buf, s->out);
		s->pt->eof = 1;
		upstream_resume(s->srv->pool, s->job);
		return;
	}
	pt_submit(s, 0);
}

/* Feed input to the DATA reader; 1 if the message is complete. */
static int
session_read_data(struct session *s, struct evbuffer *in)
{
	while (evbuffer_get_length(in) > 0 && !s->paused) {
		struct evbuffer_iovec v;
		int done = 0;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t used = smtp_data_feed(&s->dr, v.iov_base, v.iov_len,
		    data_emit, s, &done);
		evbuffer_drain(in, used);
		if (done)
			return 1;
	}
	return 0;
}

/* ---- STARTTLS and AUTH ---- */

static void session_read_cb(struct bufferevent *, void *);
static void session_write_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);

static void
cmd_starttls(struct session *s, const char *args)
{
	if (s->srv->tls_ctx == NULL) {
		reply(s, "502 5.5.1 STARTTLS not available");
		client_error(s);
		return;
	}
	if (s->tls) {
		reply(s, "503 5.5.1 Error: TLS already active");
		client_error(s);
		return;
	}
	if (args != NULL && *args != '\0') {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		client_error(s);
		return;
	}
	if (s->state != SS_CONNECTED && s->state != SS_READY) {
		reply(s, "503 5.5.1 Error: STARTTLS not allowed in a mail "
		    "transaction");
		client_error(s);
		return;
	}
	SSL *ssl = SSL_new(s->srv->tls_ctx);
	if (ssl == NULL) {
		reply(s, "454 4.7.0 TLS not available due to temporary reason");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/* Anything the client sent after STARTTLS, before the handshake,
	 * was sent in clear and must not be read as commands afterwards
	 * (STARTTLS command injection, CVE-2011-0411). */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_info("session %s client=%s discarded %zu bytes pipelined "
		    "after STARTTLS", s->id, s->client, junk);
		evbuffer_drain(in, junk);
	}
	struct bufferevent *tbev = bufferevent_openssl_filter_new(s->srv->base,
	    s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL) {
		SSL_free(ssl);
		close_after(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	s->bev = tbev;
	s->ssl = ssl;
	s->tls = 1;
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH);
	set_read_timeout(s, 1);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* RFC 3207: forget everything learnt before TLS */
	tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	free(s->auth_user);
	s->auth_user = NULL;
	sasl_srv_free(s->sasl);
	s->sasl = NULL;
	set_state(s, SS_CONNECTED);
}

static int same_host(const struct sockaddr *, const struct sockaddr *);

/* Count an AUTH failure of s's client; the delay (seconds) it earns:
 * one more second for each failure from that address in the last ten
 * minutes, in any session. */
static unsigned
auth_penalty(struct session *s)
{
	struct smtp_server *srv = s->srv;
	time_t now = time(NULL);
	struct auth_penalty *slot = NULL, *oldest = &srv->penalty[0];
	for (size_t i = 0; i < AUTH_PENALTY_SLOTS; i++) {
		struct auth_penalty *p = &srv->penalty[i];
		if (p->failures > 0 && same_host((struct sockaddr *)&p->addr,
		    (struct sockaddr *)&s->peer)) {
			slot = p;
			break;
		}
		if (p->last < oldest->last)
			oldest = p;
	}
	if (slot == NULL) {
		slot = oldest;
		memset(slot, 0, sizeof(*slot));
		slot->addr = s->peer;
	}
	if (now - slot->last > AUTH_PENALTY_WINDOW)
		slot->failures = 0;
	slot->failures++;
	slot->last = now;
	unsigned d = slot->failures > s->auth_failures ? slot->failures :
	    s->auth_failures;
	return d < AUTH_DELAY_MAX ? d : AUTH_DELAY_MAX;
}

/* Failed attempts wait before their 535: a password guesser gets one
 * try per second or slower, and is cut off after MAX_AUTH_FAILURES. */
static void
auth_pause_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	reply(s, "535 5.7.8 Error: authentication failed");
	set_state(s, SS_READY);
	if (s->auth_failures >= MAX_AUTH_FAILURES) {
		reply(s, "421 4.7.0 %s Too many authentication failures",
		    s->cfg->hostname);
		close_after(s);
		return;
	}
	arm_deadline(s, 1);
	set_read_timeout(s, 1);
	session_process(s);
}

static void
auth_result(struct session *s, enum sasl_srv_result r, const char *out)
{
	switch (r) {
	case SASL_SRV_OK:
		s->auth_user = xstrdup(sasl_srv_user(s->sasl));
		log_info("session %s client=%s auth user=%s mech=%s result=ok",
		    s->id, s->client, s->auth_user, s->auth_mech);
		reply(s, "235 2.7.0 Authentication successful");
		set_state(s, SS_READY);
		return;
	case SASL_SRV_CONTINUE:
		reply(s, "334 %s", out);
		set_state(s, SS_AUTH);
		return;
	case SASL_SRV_FAIL: {
		s->auth_failures++;
		log_info("session %s client=%s auth mech=%s result=failed "
		    "failures=%u", s->id, s->client, s->auth_mech,
		    s->auth_failures);
		set_state(s, SS_PAUSED);
		arm_deadline(s, 0);
		set_read_timeout(s, 0);
		struct timeval tv = { (time_t)auth_penalty(s), 0 };
		evtimer_add(s->pause_ev, &tv);
		return;
	}
	case SASL_SRV_NOMECH:
		reply(s, "504 5.5.4 Unrecognized authentication type");
		break;
	case SASL_SRV_SYNTAX:
		reply(s, "501 5.5.2 Cannot decode response");
		break;
	case SASL_SRV_TEMP:
		reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
	set_state(s, SS_READY);
	client_error(s);
}

static void
cmd_auth(struct session *s, const char *args)
{
	char out[SMTP_LINE_MAX * 2];
	char mech[32];

	if (s->cfg->auth == AUTH_OFF || !s->srv->sasl_ready) {
		reply(s, "502 5.5.1 AUTH not available");
		client_error(s);
		return;
	}
	if (s->auth_user != NULL) {
		reply(s, "503 5.5.1 Error: already authenticated");
		client_error(s);
		return;
	}
	if (s->state != SS_READY || !s->esmtp) {
		reply(s, "503 5.5.1 Error: %s", s->esmtp ?
		    "AUTH not allowed in a mail transaction" :
		    "send EHLO first");
		client_error(s);
		return;
	}
	if (auth_mechs(s) == NULL) {
		reply(s, "538 5.7.11 Encryption required for requested "
		    "authentication mechanism");
		client_error(s);
		return;
	}
	const char *sp = args != NULL ? strchr(args, ' ') : NULL;
	size_t mlen = sp != NULL ? (size_t)(sp - args) :
	    args != NULL ? strlen(args) : 0;
	if (mlen == 0 || mlen >= sizeof(mech)) {
		reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		client_error(s);
		return;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	snprintf(s->auth_mech, sizeof(s->auth_mech), "%s", mech);
	const char *initial = NULL;
	if (sp != NULL) {
		while (*sp == ' ')
			sp++;
		initial = *sp != '\0' ? sp : NULL;
	}
	auth_result(s, sasl_srv_start(s->sasl, mech, initial, out,
	    sizeof(out)), out);
}

/* A line read in SS_AUTH: the client's answer to our 334 challenge. */
static void
auth_response(struct session *s, const char *line)
{
	char out[SMTP_LINE_MAX * 2];
	if (strcmp(line, "*") == 0) {
		reply(s, "501 5.7.0 Authentication aborted");
		set_state(s, SS_READY);
		return;
	}
	auth_result(s, sasl_srv_step(s->sasl, line, out, sizeof(out)), out);
}

/* ---- the command loop ---- */

/* Count a command that moves no mail; 1 if the session was closed. */
static int
junk_command(struct session *s)
{
	if (++s->junk <= MAX_JUNK)
		return 0;
	log_info("session %s client=%s closed: more than %d commands that "
	    "move no mail", s->id, s->client, MAX_JUNK);
	s->srv->stats.closed_junk++;
	reply(s, "421 4.7.0 %s Too many commands, closing connection",
	    s->cfg->hostname);
	close_after(s);
	return 1;
}

static void
session_command(struct session *s, char *line, size_t len)
{
	const char *args = NULL;
	enum smtp_verb verb = smtp_parse_command(line, len, &args);

	arm_deadline(s, 1);	/* the next command has its own time */
	if (s->state == SS_AUTH) {
		auth_response(s, line);
		return;
	}
	switch (verb) {
	case SMTP_VERB_RSET:
		/* one per transaction at most from a real client */
		if (++s->nrset > MAX_RSET) {
			log_info("session %s client=%s closed: more than %d "
			    "RSET commands", s->id, s->client, MAX_RSET);
			s->srv->stats.closed_rset++;
			reply(s, "421 4.7.0 %s Too many RSET commands, closing "
			    "connection", s->cfg->hostname);
			close_after(s);
			return;
		}
		break;
	case SMTP_VERB_NOOP:
	case SMTP_VERB_VRFY:
	case SMTP_VERB_EXPN:
	case SMTP_VERB_HELP:
		if (junk_command(s))
			return;
		break;
	default:
		break;
	}
	switch (verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		cmd_helo(s, args != NULL ? args : "", verb == SMTP_VERB_EHLO);
		return;
	case SMTP_VERB_NOOP:
		reply(s, "250 2.0.0 Ok");
		return;
	case SMTP_VERB_RSET:
		tx_reset(s);
		if (s->state != SS_CONNECTED)
			set_state(s, SS_READY);
		reply(s, "250 2.0.0 Ok");
		return;
	case SMTP_VERB_QUIT:
		reply(s, "221 2.0.0 Bye");
		close_after(s);
		return;
	case SMTP_VERB_HELP:
		reply(s, "214 2.0.0 sesrelay: see sesrelayd(8); commands: "
		    "HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
		return;
	case SMTP_VERB_VRFY:
		reply(s, "252 2.5.2 Cannot VRFY user; try RCPT to attempt "
		    "delivery");
		return;
	case SMTP_VERB_EXPN:
		reply(s, "502 5.5.1 EXPN not supported");
		return;
	case SMTP_VERB_STARTTLS:
		cmd_starttls(s, args);
		return;
	case SMTP_VERB_BDAT:
		reply(s, "502 5.5.1 Command not implemented");
		client_error(s);
		return;
	case SMTP_VERB_INVALID:
	case SMTP_VERB_UNKNOWN:
		if (++s->nunknown > MAX_UNKNOWN) {
			log_info("session %s client=%s closed: more than %d "
			    "unknown commands", s->id, s->client, MAX_UNKNOWN);
			s->srv->stats.closed_unknown++;
			reply(s, "421 4.7.0 %s Too many unknown commands, "
			    "closing connection", s->cfg->hostname);
			close_after(s);
			return;
		}
		reply(s, "500 5.5.2 Error: command not recognized");
		client_error(s);
		return;
	default:
		break;
	}
	/* the transaction commands need HELO/EHLO first */
	if (s->state == SS_CONNECTED) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		client_error(s);
		return;
	}
	switch (verb) {
	case SMTP_VERB_AUTH:
		cmd_auth(s, args);
		return;
	case SMTP_VERB_MAIL:
		cmd_mail(s, args);
		return;
	case SMTP_VERB_RCPT:
		cmd_rcpt(s, args);
		return;
	case SMTP_VERB_DATA:
		cmd_data(s, args);
		return;
	default:
		fatalx("session_command: verb %d not handled", verb);
	}
}

/* The longest line the client may send next (it starts at the head of
 * in), CRLF included: RFC 4954 allows longer lines for AUTH — the AUTH
 * command with its initial response, and the responses in an exchange —
 * than for other commands. */
static size_t
line_max(struct session *s, struct evbuffer *in)
{
	char verb[5];

	if (s->state == SS_AUTH)
		return SMTP_AUTH_LINE_MAX;
	if (s->state == SS_READY && s->cfg->auth != AUTH_OFF &&
	    s->srv->sasl_ready && s->auth_user == NULL &&
	    evbuffer_copyout(in, verb, sizeof(verb)) == sizeof(verb) &&
	    strncasecmp(verb, "AUTH ", sizeof(verb)) == 0)
		return SMTP_AUTH_LINE_MAX;
	return SMTP_LINE_MAX;
}

/* A line over its limit is being dropped: answer once (an AUTH exchange
 * ends with it, RFC 4954's 500 5.5.6).  1 if the session was closed. */
static int
line_too_long(struct session *s, size_t max)
{
	if (max == SMTP_AUTH_LINE_MAX) {
		reply(s, "500 5.5.6 Authentication Exchange line is too long");
		if (s->state == SS_AUTH)
			set_state(s, SS_READY);
	} else {
		reply(s, "500 5.5.2 Error: line too long");
	}
	return client_error(s);
}

/* Process what the client sent, in order, until we must wait. */
static void
session_process(struct session *s)
{
	struct bufferevent *bev = s->bev;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);

	while (s->state != SS_CLOSING && s->state != SS_RELAYING &&
	    s->state != SS_PAUSED && s->state != SS_LOOKUP &&
	    s->bev == bev) {
		if (evbuffer_get_length(out) > OUTPUT_HIGH)
			return;		/* resumed by the write callback */
		if (s->state == SS_DATA) {
			if (!session_read_data(s, in))
				return;
			data_done(s);
			continue;
		}
		size_t eol_len, max = line_max(s, in);
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			size_t have = evbuffer_get_length(in);
			if (have > max) {
				/* no end in sight: drop it, answer once */
				evbuffer_drain(in, have);
				if (!s->discarding) {
					s->discarding = 1;
					if (line_too_long(s, max))
						return;
				}
			}
			return;
		}
		size_t len = (size_t)eol.pos;
		if (s->discarding || len + eol_len > max) {
			evbuffer_drain(in, len + eol_len);
			if (!s->discarding && line_too_long(s, max))
				return;
			s->discarding = 0;
			continue;
		}
		char line[SMTP_AUTH_LINE_MAX + 1];
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		session_command(s, line, len);
	}
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->state == SS_CLOSING) {
		finish_close(s);
		return;
	}
	/* a pipelining client read its replies: go on with its commands */
	session_process(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		char desc[128];
		tls_describe(s->ssl, desc, sizeof(desc));
		log_info("session %s client=%s tls %s", s->id, s->client, desc);
		return;
	}
	if (s->tls && s->state == SS_CONNECTED && s->helo[0] == '\0' &&
	    (what & BEV_EVENT_ERROR)) {
		char why[256];
		tls_failure_reason(s->ssl, bufferevent_get_openssl_error(bev),
		    "client", why, sizeof(why));
		log_info("session %s client=%s %s", s->id, s->client, why);
		session_free(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == SS_RELAYING || s->state == SS_PAUSED) {
			/* Replies are waiting for a client that does not read
			 * them, but the outcome of its message (or of its
			 * AUTH) is due first, as in deadline_cb: write on
			 * without a timeout; tx_finished or auth_pause_cb
			 * sets one again, and a client still not reading is
			 * closed then. */
			log_info("session %s client=%s not reading replies "
			    "(state %s): waiting for the outcome first", s->id,
			    s->client, sess_state_names[s->state]);
			bufferevent_set_timeouts(s->bev, NULL, NULL);
			bufferevent_enable(s->bev, EV_WRITE);
			return;
		}
		if (s->state != SS_CLOSING) {
			log_info("session %s client=%s timeout in state %s",
			    s->id, s->client, sess_state_names[s->state]);
			tx_reset(s);
			reply(s, "421 4.4.2 %s Error: timeout exceeded",
			    s->cfg->hostname);
			close_after(s);
			return;
		}
	}
	if (s->state == SS_DATA || s->state == SS_RELAYING)
		log_info("session %s client=%s lost in state %s", s->id,
		    s->client, sess_state_names[s->state]);
	session_free(s);
}

/* ---- sessions ---- */

static void
session_free(struct session *s)
{
	struct smtp_server *srv = s->srv;
	session_detach(s);
	tx_reset(s);
	sasl_srv_free(s->sasl);
	free(s->auth_user);
	event_free(s->deadline_ev);
	event_free(s->pause_ev);
	if (s->linger_ev != NULL)
		event_free(s->linger_ev);
	if (s->data != NULL)
		evbuffer_free(s->data);
	if (s->out != NULL)
		evbuffer_free(s->out);
	if (s->resume_ev != NULL)
		event_free(s->resume_ev);
	bufferevent_free(s->bev);
	TAILQ_REMOVE(&srv->sessions, s, entry);
	srv->nsessions--;
	log_debug("session %s closed", s->id);
	config_unref(s->cfg);
	free(s);
	if (srv->shutting_down && srv->nsessions == 0 && srv->drained != NULL) {
		void (*fn)(void *) = srv->drained;
		srv->drained = NULL;
		fn(srv->drained_arg);
	}
}

/* Loopback or unix: the machine itself. */
static int
is_loopback(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_UNIX:
		return 1;
	case AF_INET:
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr) >> 24) == 127;
	case AF_INET6: {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		    (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	default:
		return 0;
	}
}

static int
same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->
		    sin_addr.s_addr == ((const struct sockaddr_in *)
		    (const void *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->
		    sin6_addr, &((const struct sockaddr_in6 *)(const void *)b)->
		    sin6_addr, sizeof(struct in6_addr)) == 0;
	return 0;
}

static unsigned
sessions_from(const struct smtp_server *srv, const struct sockaddr *sa)
{
	const struct session *s;
	unsigned n = 0;
	TAILQ_FOREACH(s, &srv->sessions, entry)
		if (same_host((const struct sockaddr *)&s->peer, sa))
			n++;
	return n;
}

/* Say one thing to a client we will not serve, then hang up. */
static void
refuse_connection(struct smtp_server *srv, evutil_socket_t fd,
    const char *text)
{
	/* A short write on a fresh socket goes straight to the kernel
	 * buffer; if it does not, the client loses nothing but the reason. */
	ssize_t n = write(fd, text, strlen(text));
	(void)n;
	evutil_closesocket(fd);
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct smtp_server *srv = arg;
	struct config *cfg = srv->cfg;
	char client[ADDR_STR_MAX];
	char text[256];

	if (sa->sa_family == AF_UNIX)
		snprintf(client, sizeof(client), "local");
	else
		addr_format(sa, client, sizeof(client));
	if (!config_client_allowed(cfg, sa)) {
		log_info("connection refused client=%s reason=not-allowed",
		    client);
		srv->stats.connections_refused++;
		snprintf(text, sizeof(text), "554 5.7.1 %s Access denied: "
		    "client address not in allow list\r\n", cfg->hostname);
		refuse_connection(srv, fd, text);
		return;
	}
	if (srv->nsessions >= cfg->max_clients || srv->shutting_down) {
		log_info("connection refused client=%s reason=%s", client,
		    srv->shutting_down ? "shutting-down" : "max_clients");
		srv->stats.connections_refused++;
		snprintf(text, sizeof(text), "421 4.3.2 %s Too many "
		    "connections, try again later\r\n", cfg->hostname);
		refuse_connection(srv, fd, text);
		return;
	}
	int local = is_loopback(sa);
	if (!local && sessions_from(srv, sa) >= MAX_PER_CLIENT) {
		log_info("connection refused client=%s reason=per-client-limit",
		    client);
		srv->stats.connections_refused++;
		snprintf(text, sizeof(text), "421 4.7.0 %s Too many "
		    "connections from your address\r\n", cfg->hostname);
		refuse_connection(srv, fd, text);
		return;
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		int unsent = KERNEL_UNSENT_MAX;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent,
		    sizeof(unsent));
	}

	struct session *s = xcalloc(1, sizeof(*s));
	if ((size_t)salen <= sizeof(s->peer))
		memcpy(&s->peer, sa, (size_t)salen);
	s->is_local = local;
	s->srv = srv;
	s->cfg = config_ref(cfg);
	snprintf(s->id, sizeof(s->id), "%08llX",
	    (unsigned long long)++srv->next_id);
	snprintf(s->client, sizeof(s->client), "%s", client);
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->nsessions++;
	srv->stats.connections++;
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH);
	set_read_timeout(s, 1);
	s->deadline_ev = evtimer_new(srv->base, deadline_cb, s);
	s->pause_ev = evtimer_new(srv->base, auth_pause_cb, s);
	arm_deadline(s, 1);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	log_debug("session %s connect client=%s", s->id, client);
	reply(s, "220 %s ESMTP sesrelay", cfg->hostname);
}

/* accept() failed for a reason that retrying at once will not cure
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...): stop accepting on every listener
 * for ACCEPT_PAUSE_MS.  Connections wait in the kernel's backlog; the
 * sessions we have keep being served, and as they end, descriptors free up. */
static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct smtp_server *srv = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct listener *l;
	time_t now = time(NULL);

	(void)evl;
	srv->stats.accept_pauses++;
	if (now - srv->accept_logged >= ACCEPT_LOG_EVERY) {
		srv->accept_logged = now;
		log_warnx("accept: %s; not accepting new connections for "
		    "%d ms (sessions=%u)", evutil_socket_error_to_string(err),
		    ACCEPT_PAUSE_MS, srv->nsessions);
	}
	TAILQ_FOREACH(l, &srv->listeners, entry)
		evconnlistener_disable(l->evl);
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	evtimer_add(srv->accept_ev, &tv);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;
	struct listener *l;

	(void)fd;
	(void)what;
	TAILQ_FOREACH(l, &srv->listeners, entry)
		evconnlistener_enable(l->evl);
}

struct smtp_server *
smtp_server_new(struct event_base *base, struct config *cfg,
    struct upstream *pool)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));
	srv->base = base;
	srv->cfg = config_ref(cfg);
	srv->pool = pool;
	srv->next_id = ((uint64_t)time(NULL) & 0xffffff) << 20;
	TAILQ_INIT(&srv->listeners);
	TAILQ_INIT(&srv->sessions);
	srv->accept_ev = evtimer_new(base, accept_resume_cb, srv);
	if (srv->accept_ev == NULL)
		fatalx("evtimer_new failed");
	return srv;
}

static int
open_socket(const struct listen_spec *ls, char *err, size_t errlen)
{
	int family = ls->is_unix ? AF_UNIX : ls->addr.ss_family;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", ls->text,
		    strerror(errno));
		return -1;
	}
	if (ls->is_unix) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(ls->unix_path) >= sizeof(sun.sun_path)) {
			snprintf(err, errlen, "listen %s: path too long",
			    ls->text);
			close(fd);
			return -1;
		}
		strcpy(sun.sun_path, ls->unix_path);
		struct stat st;
		if (lstat(ls->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(ls->unix_path);	/* stale, from a past run */
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
		    chmod(ls->unix_path, 0666) != 0) {
			snprintf(err, errlen, "listen %s: %s", ls->text,
			    strerror(errno));
			close(fd);
			return -1;
		}
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, (const struct sockaddr *)&ls->addr,
		    ls->addrlen) != 0) {
			snprintf(err, errlen, "listen %s: bind: %s", ls->text,
			    strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (listen(fd, 511) != 0) {
		snprintf(err, errlen, "listen %s: %s", ls->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
add_listener(struct smtp_server *srv, int fd, const char *text,
    const struct listen_spec *ls)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	evutil_make_socket_nonblocking(fd);
	l->text = xstrdup(text);
	if (ls != NULL) {
		l->spec = *ls;
		l->spec.text = l->spec.unix_path = NULL;
		l->unix_path = ls->is_unix ? xstrdup(ls->unix_path) : NULL;
	} else {
		l->adopted = 1;
	}
	l->evl = evconnlistener_new(srv->base, accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (l->evl == NULL)
		fatalx("evconnlistener_new failed");
	evconnlistener_set_error_cb(l->evl, accept_error_cb);
	/* a listener added while the others pause, pauses too */
	if (evtimer_pending(srv->accept_ev, NULL))
		evconnlistener_disable(l->evl);
	TAILQ_INSERT_TAIL(&srv->listeners, l, entry);
	log_info("listening on %s", text);
}

/* The inbound TLS context for cfg, or NULL when none is configured.
 * -1 and a reason if the certificate or key do not load. */
static int
load_tls(const struct config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
	*out = NULL;
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
		return 0;
	*out = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, err, errlen);
	return *out == NULL ? -1 : 0;
}

int
smtp_server_listen(struct smtp_server *srv, char *err, size_t errlen)
{
	if (load_tls(srv->cfg, &srv->tls_ctx, err, errlen) != 0)
		return -1;
	if (srv->cfg->auth != AUTH_OFF) {
		if (sasl_srv_init(srv->cfg->sasl_service, err, errlen) != 0)
			return -1;
		srv->sasl_ready = 1;
	}
	for (size_t i = 0; i < srv->cfg->nlisten; i++) {
		const struct listen_spec *ls = &srv->cfg->listen[i];
		int fd = open_socket(ls, err, errlen);
		if (fd < 0)
			return -1;
		add_listener(srv, fd, ls->text, ls);
	}
	return 0;
}

void
smtp_server_adopt_listener(struct smtp_server *srv, int fd, const char *text)
{
	add_listener(srv, fd, text, NULL);
}

static int
same_listen(const struct listener *l, const struct listen_spec *ls)
{
	if (l->adopted || l->spec.is_unix != ls->is_unix)
		return 0;
	if (ls->is_unix)
		return strcmp(l->unix_path, ls->unix_path) == 0;
	return l->spec.addrlen == ls->addrlen &&
	    memcmp(&l->spec.addr, &ls->addr, ls->addrlen) == 0;
}

static void
free_listener(struct smtp_server *srv, struct listener *l)
{
	TAILQ_REMOVE(&srv->listeners, l, entry);
	evconnlistener_free(l->evl);
	if (l->unix_path != NULL)
		unlink(l->unix_path);
	free(l->unix_path);
	free(l->text);
	free(l);
}

void
smtp_server_update_listeners(struct smtp_server *srv,
    const struct config *cfg)
{
	struct listener *l, *tmp;
	char err[256];

	TAILQ_FOREACH(l, &srv->listeners, entry)
		if (l->adopted) {
			/* the service manager's sockets are its business */
			return;
		}
	TAILQ_FOREACH_SAFE(l, &srv->listeners, entry, tmp) {
		size_t i;
		for (i = 0; i < cfg->nlisten; i++)
			if (same_listen(l, &cfg->listen[i]))
				break;
		if (i == cfg->nlisten) {
			log_info("reload: no longer listening on %s", l->text);
			free_listener(srv, l);
		}
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct listen_spec *ls = &cfg->listen[i];
		TAILQ_FOREACH(l, &srv->listeners, entry)
			if (same_listen(l, ls))
				break;
		if (l != NULL)
			continue;
		/* after the privilege drop a port below 1024 needs
		 * CAP_NET_BIND_SERVICE (the systemd unit keeps it) */
		int fd = open_socket(ls, err, sizeof(err));
		if (fd < 0)
			log_warnx("reload: %s; not listening there", err);
		else
			add_listener(srv, fd, ls->text, ls);
	}
}

void
smtp_server_set_spool(struct smtp_server *srv, struct spool *spool,
    struct queue *queue)
{
	srv->spool = spool;
	srv->queue = queue;
}

void
smtp_server_set_account(struct smtp_server *srv, struct account *account)
{
	srv->account = account;
}

void
smtp_server_set_config(struct smtp_server *srv, struct config *cfg)
{
	SSL_CTX *ctx;
	char err[256];

	/* a certificate renewed on disk is picked up here */
	if (load_tls(cfg, &ctx, err, sizeof(err)) != 0) {
		log_warnx("reload: keeping the old inbound TLS certificate: %s",
		    err);
	} else {
		SSL_CTX_free(srv->tls_ctx);
		srv->tls_ctx = ctx;
	}
	if (cfg->auth != AUTH_OFF && !srv->sasl_ready) {
		if (sasl_srv_init(cfg->sasl_service, err, sizeof(err)) == 0)
			srv->sasl_ready = 1;
		else
			log_warnx("reload: %s", err);
	}
	config_unref(srv->cfg);
	srv->cfg = config_ref(cfg);
}

unsigned
smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->nsessions;
}

const struct smtp_server_stats *
smtp_server_stats(const struct smtp_server *srv)
{
	return &srv->stats;
}

static void
close_listeners(struct smtp_server *srv)
{
	struct listener *l;
	while ((l = TAILQ_FIRST(&srv->listeners)) != NULL)
		free_listener(srv, l);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;
	struct session *s;
	log_warnx("shutdown: %u sessions still busy after %d s; closing them",
	    srv->nsessions, SHUTDOWN_GRACE);
	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		session_free(s);
}

void
smtp_server_shutdown(struct smtp_server *srv, void (*drained)(void *),
    void *arg)
{
	struct session *s, *tmp;

	srv->shutting_down = 1;
	srv->drained = drained;
	srv->drained_arg = arg;
	close_listeners(srv);
	TAILQ_FOREACH_SAFE(s, &srv->sessions, entry, tmp) {
		if (s->state == SS_CONNECTED || s->state == SS_READY ||
		    s->state == SS_MAIL || s->state == SS_RCPT) {
			reply(s, "421 4.3.2 %s Service shutting down",
			    s->cfg->hostname);
			close_after(s);
		}
	}
	if (srv->nsessions == 0) {
		srv->drained = NULL;
		drained(arg);
		return;
	}
	srv->grace_ev = evtimer_new(srv->base, grace_cb, srv);
	struct timeval tv = { SHUTDOWN_GRACE, 0 };
	evtimer_add(srv->grace_ev, &tv);
}

void
smtp_server_free(struct smtp_server *srv)
{
	struct session *s;
	if (srv == NULL)
		return;
	srv->drained = NULL;
	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		session_free(s);
	close_listeners(srv);
	if (srv->grace_ev != NULL)
		event_free(srv->grace_ev);
	event_free(srv->accept_ev);
	SSL_CTX_free(srv->tls_ctx);
	if (srv->sasl_ready)
		sasl_srv_done();
	config_unref(srv->cfg);
	free(srv);
}
