/*
 * fake_ses.c — a fake Amazon SES SMTP endpoint for sesrelay's tests.
 *
 * One process, one libevent loop.  It behaves like SES's SMTP interface as
 * described in shared/SES.md: STARTTLS (or implicit TLS), AUTH PLAIN/LOGIN
 * with the access key id and the "version 4" password, at most 50
 * recipients, duplicate-header and unverified-identity refusals at the final
 * dot, "250 Ok <message-id>" on success, the 10 s idle cut and the 421 after
 * --session-max messages.  Failure injection: --throttle-every, --drop-every,
 * SIGUSR1 (down: accept and close) and SIGUSR2 (throttle everything), and
 * --fault KIND[:POINT] for hostile-network tests (tests/fault_*.sh):
 *   reset[:P]	close with a TCP RST (SO_LINGER 0) at P (default BODY: the
 *		first bytes of the message after 354)
 *   stall[:P]	never reply at P (default MAIL) nor to anything after it;
 *		no idle timeout either: the connection stays open
 *   421[:P]	"421 ..." at P (default RCPT: after MAIL), then close 200 ms
 *		later (so the reply arrives before the end of the connection)
 *   close[:P]	the normal reply at P (default DOT), then close at once: the
 *		reply, TLS close_notify and FIN leave in one TCP segment
 *   garbage[:P] a line that is not an SMTP reply instead of the reply at P
 *		(default MAIL), then carry on
 *   huge[:P]	a 2 MB reply line ("250 xxx...") instead of the reply at P
 *		(default MAIL; --huge-size BYTES), then carry on
 *   tls-garbage after "220 Ready to start TLS", read the ClientHello and
 *		answer it with plain text instead of a ServerHello, then close
 *   split	every reply byte in its own TCP segment (and TLS record),
 *		1 ms apart: replies arrive in as many pieces as possible
 * P is the greeting (GREETING), a command verb (EHLO, STARTTLS, AUTH,
 * MAIL, RCPT, DATA, RSET, QUIT, ...), BODY or DOT (the end of the message).
 * Per-recipient refusals (SES itself refuses at the final dot; these are
 * for the relay's per-recipient bookkeeping): --refuse-rcpt CODE:PREFIX
 * answers RCPT TO:<PREFIX...> with "CODE c.0.0 ... (fake)", e.g. 451 or
 * 550, every time; up to 8 of them, the first matching prefix wins.
 *
 * The fake deliberately shares no protocol code with the relay (its own
 * command parser, base64, password derivation and DATA reader) so that a bug
 * in the relay's code is not mirrored here.  It is also a benchmark sink:
 * no per-byte loops on the data path, and disk writes only with --maildir.
 *
 * Replies invented here (SES's own text unknown) are marked "(fake)".
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netdb.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
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

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "xmalloc.h"

#define PROG		"fake_ses"
#define HOSTNAME	"email-smtp.amazonaws.com"
#define GREETING	"220 " HOSTNAME " ESMTP SimpleEmailService-d-FAKE"
#define LINE_MAX_SMTP	1000		/* octets including CRLF */
#define MAX_RCPT	50
#define MAX_LISTEN	8
#define MAX_REFUSE	8		/* --refuse-rcpt options */
#define OUTBUF_MAX	(64 * 1024)	/* stop reading while replies pile up */
#define MSGBUF_KEEP	(1024 * 1024)	/* larger buffers are freed after use */
#define LINGER_SECS	2		/* drain input this long after a last reply */

#define R_THROTTLE	"454 Throttling failure: Maximum sending rate exceeded."
#define R_SESSION_MAX	"421 Connection closed by server. Maximum message count per session reached."
#define R_TIMEOUT	"451 4.4.2 Timeout waiting for data from client."
#define R_TOO_BIG	"552 Message is too long."
#define R_NEED_TLS	"530 Must issue a STARTTLS command first"
#define R_NEED_AUTH	"530 Authentication required"
#define R_AUTH_BAD	"535 Authentication Credentials Invalid"
#define R_AUTH_V2	"535 Signature Version 2 is deprecated. Please use version 4."
#define R_AUTH_OK	"235 Authentication successful."
#define R_BAD_FROM	"501 Invalid MAIL FROM address provided"
#define R_BAD_RCPT	"501 Invalid RCPT TO address provided"			/* (fake) */
#define R_TOO_MANY	"554 Transaction failed: Recipient count exceeds 50."	/* (fake) */
#define R_LONG_LINE	"554 Transaction failed: Line too long."		/* (fake) */
#define R_CMD_LONG	"500 5.5.2 Line too long"				/* (fake) */
#define R_BARE_LF	"500 5.5.2 Command not terminated by CRLF"		/* (fake) */
#define R_UNKNOWN	"500 5.5.1 Unrecognized command"
#define R_NEED_HELO	"503 5.5.1 Error: send HELO/EHLO first"		/* (fake) */
#define R_BAD_PARAM	"501 5.5.4 Unsupported parameter"			/* (fake) */
#define R_TEMP		"451 Temporary service failure"
#define R_FAULT_421	"421 Service not available, closing transmission channel (fake fault)"
#define R_FAULT_JUNK	"Hello! This line is not an SMTP reply (fake fault)"
#define R_FAULT_TLS	"HTTP/1.1 400 Bad Request: not TLS (fake fault)\r\n\r\n"

enum fault {
	F_NONE, F_RESET, F_STALL, F_421, F_GARBAGE, F_HUGE, F_TLS_GARBAGE,
	F_SPLIT, F_CLOSE
};

enum state {
	ST_CMD,			/* waiting for a command */
	ST_AUTH_PLAIN,		/* "334 " sent, waiting for the PLAIN response */
	ST_AUTH_USER,		/* AUTH LOGIN: waiting for the user name */
	ST_AUTH_PASS,		/* AUTH LOGIN: waiting for the password */
	ST_DATA			/* "354" sent, reading the message */
};

struct session {
	LIST_ENTRY(session)	 entry;
	struct bufferevent	*bev;
	unsigned long		 id;
	enum state		 state;
	int			 tls;
	int			 helo;
	int			 authed;
	int			 starttls_pending;	/* 220 queued; switch when flushed */
	int			 close_after_flush;	/* last reply queued */
	int			 lingering;		/* replied; draining input */
	int			 pipelined;		/* sent ahead of a reply */
	int			 read_blocked;		/* output over OUTBUF_MAX */
	int			 dying;			/* free at the end of the callback */
	int			 stalled;		/* --fault stall: ignore everything */
	int			 tls_garbage;		/* --fault tls-garbage: after 220 */
	struct evbuffer		*drip;			/* --fault split: replies to send */
	struct event		*drip_ev;		/* one byte per tick */
	struct event		*close_ev;		/* --fault 421: close later */
	char			*login_user;		/* AUTH LOGIN, between prompts */
	unsigned long		 nmsg;			/* accepted in this session */

	/* Transaction. */
	int			 has_mail;
	char			*mail_from;
	char			*rcpt[MAX_RCPT];
	size_t			 nrcpt;

	/* DATA reader. */
	char			*msg;
	size_t			 msglen;
	size_t			 msgcap;
	size_t			 linelen;	/* octets of the current line so far */
	int			 bol;		/* at the start of a CRLF line */
	int			 last_cr;	/* the last octet consumed was CR */
	int			 err_long;
	int			 err_size;
	int			 body_seen;	/* --fault ...:BODY checked */

	char			 line[LINE_MAX_SMTP + 1];
};

static struct {
	struct sockaddr_storage	 listen[MAX_LISTEN];
	int			 listen_len[MAX_LISTEN];
	int			 nlisten;
	int			 implicit_tls;
	const char		*cert;
	const char		*key;
	const char		*user;
	char			 password[256];	/* expected; wiped at exit */
	const char		*region;
	char			 region_upper[64];
	const char		*maildir;
	unsigned long		 throttle_every;
	unsigned long		 drop_every;
	unsigned long		 session_max;
	long			 idle_timeout;
	size_t			 max_size;
	const char		*pidfile;
	const char		*portfile;
	int			 quiet;
	enum fault		 fault;
	char			 fault_at[16];		/* GREETING, MAIL, BODY, DOT, ... */
	size_t			 huge_size;
	struct {
		unsigned	 code;			/* 400..599 */
		const char	*prefix;
	}			 refuse[MAX_REFUSE];	/* --refuse-rcpt */
	int			 nrefuse;
} conf = {
	.huge_size = 2 * 1024 * 1024,
	.region = "us-east-1",
	.session_max = 350,
	.idle_timeout = 10,
	.max_size = 41943040,
};

static struct {
	struct event_base	*base;
	SSL_CTX			*ctx;
	struct evconnlistener	*listener[MAX_LISTEN];
	struct event		*sigev[4];
	LIST_HEAD(, session)	 sessions;
	int			 down;
	int			 throttle_all;
	unsigned long		 nsessions;
	unsigned long		 ntxn;		/* transactions past content checks */
	unsigned long		 accepted;
	unsigned long		 rejected;
	unsigned long		 dropped;
	unsigned long		 pipelined;
	unsigned long long	 bytes;
	unsigned long		 file_seq;	/* last maildir NNNNNN used */
} srv;

static const char *singletons[] = {
	"From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Reply-To",
	"Sender", "In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "DKIM-Signature"
};
#define NSINGLETONS (sizeof(singletons) / sizeof(singletons[0]))

static void session_input(struct session *);
static void session_readcb(struct bufferevent *, void *);
static void session_writecb(struct bufferevent *, void *);
static void session_eventcb(struct bufferevent *, short, void *);

static void __attribute__((format(printf, 1, 2)))
logx(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (conf.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Peer data must not forge log lines. */
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	fprintf(stderr, PROG ": %s\n", buf);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* ---- password ---------------------------------------------------------- */

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (RFC 4648, padded).  Returns the decoded length or -1. */
static long
b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap)
{
	uint32_t acc = 0;
	int bits = 0, pad = 0;
	size_t o = 0;

	if (inlen % 4 != 0)
		return -1;
	for (size_t i = 0; i < inlen; i++) {
		int v;
		if (in[i] == '=') {
			if (++pad > 2)
				return -1;
			continue;
		}
		if (pad || (v = b64val((unsigned char)in[i])) < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outcap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)o;
}

/* SPEC.md "version 4" SMTP password, computed independently of ses_auth.c. */
static void
derive_password(const char *secret, const char *region, char *out, size_t outlen)
{
	static const char *steps[] = { NULL, "ses", "aws4_request", "SendRawEmail" };
	unsigned char k[EVP_MAX_MD_SIZE], k2[EVP_MAX_MD_SIZE];
	unsigned char raw[33];
	unsigned int klen;
	size_t slen = strlen(secret);
	char *key0 = xmalloc(slen + 5);

	memcpy(key0, "AWS4", 4);
	memcpy(key0 + 4, secret, slen + 1);
	if (HMAC(EVP_sha256(), key0, (int)(slen + 4),
	    (const unsigned char *)"11111111", 8, k, &klen) == NULL)
		die(1, "HMAC failed");
	wipe(key0, slen + 4);
	free(key0);
	steps[0] = region;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (HMAC(EVP_sha256(), k, (int)klen,
		    (const unsigned char *)steps[i], strlen(steps[i]),
		    k2, &klen) == NULL)
			die(1, "HMAC failed");
		memcpy(k, k2, klen);
	}
	raw[0] = 0x04;
	memcpy(raw + 1, k, 32);
	if (outlen < 45)
		die(1, "password buffer too small");
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
	wipe(k, sizeof(k));
	wipe(k2, sizeof(k2));
	wipe(raw, sizeof(raw));
}

/* ---- replies and session lifetime -------------------------------------- */

static void drip_start(struct session *);

static void __attribute__((format(printf, 2, 3)))
reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = s->drip != NULL ? s->drip :
	    bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (s->drip != NULL)
		drip_start(s);
}

/* Replies not yet on their way: the output buffer and, with --fault split,
 * the bytes still to drip. */
static size_t
pending_output(struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev)) +
	    (s->drip != NULL ? evbuffer_get_length(s->drip) : 0);
}

/* --fault split: one byte into the (empty) output buffer per tick; the
 * write callback asks for the next tick once it has left. */
static void
drip_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		evbuffer_remove_buffer(s->drip, bufferevent_get_output(s->bev),
		    1);
}

static void
drip_start(struct session *s)
{
	struct timeval tv = { 0, 1000 };

	if (evbuffer_get_length(s->drip) != 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    !evtimer_pending(s->drip_ev, NULL))
		evtimer_add(s->drip_ev, &tv);
}

/* Queue a last reply; the session closes once it is written. */
static void
reply_close(struct session *s, const char *text)
{
	reply(s, "%s", text);
	s->close_after_flush = 1;
	bufferevent_disable(s->bev, EV_READ);
}

static void
txn_reset(struct session *s)
{
	free(s->mail_from);
	s->mail_from = NULL;
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	s->nrcpt = 0;
	s->has_mail = 0;
	if (s->msgcap > MSGBUF_KEEP) {
		free(s->msg);
		s->msg = NULL;
		s->msgcap = 0;
	}
	s->msglen = 0;
}

static void
session_setup_bev(struct session *s)
{
	struct timeval tv = { conf.idle_timeout, 0 };

	bufferevent_setcb(s->bev, session_readcb, session_writecb,
	    session_eventcb, s);
	if (conf.idle_timeout > 0)
		bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static struct bufferevent *
tls_bev(evutil_socket_t fd)
{
	struct bufferevent *bev;
	SSL *ssl = SSL_new(srv.ctx);

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(srv.base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void
session_free(struct session *s)
{
	LIST_REMOVE(s, entry);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->drip_ev != NULL)
		event_free(s->drip_ev);
	if (s->close_ev != NULL)
		event_free(s->close_ev);
	if (s->drip != NULL)
		evbuffer_free(s->drip);
	txn_reset(s);
	wipe_free(s->login_user);
	free(s->msg);
	free(s);
}

/* Free a session marked dying; call last in each callback. */
static void
session_reap(struct session *s)
{
	if (s->dying)
		session_free(s);
}

/* The 220 to STARTTLS has been written: continue on a TLS bufferevent over a
 * duplicate of the descriptor, so that freeing the plain one (and any
 * plain-text bytes a client pushed after STARTTLS) leaves the socket open. */
static void
session_starttls(struct session *s)
{
	struct bufferevent *nbev;
	int nfd;

	s->starttls_pending = 0;
	nfd = fcntl(bufferevent_getfd(s->bev), F_DUPFD_CLOEXEC, 0);
	if (nfd == -1) {
		logx("session=%lu starttls dup: %s", s->id, strerror(errno));
		s->dying = 1;
		return;
	}
	if ((nbev = tls_bev(nfd)) == NULL) {
		close(nfd);
		s->dying = 1;
		return;
	}
	bufferevent_free(s->bev);
	s->bev = nbev;
	s->tls = 1;
	s->helo = 0;		/* RFC 3207: the client must EHLO again */
	s->state = ST_CMD;
	txn_reset(s);
	session_setup_bev(s);
}

/* Close with a TCP RST: SO_LINGER 0, then close at the end of the
 * callback (the TLS bufferevent, if any, sends no close_notify). */
static void
session_reset(struct session *s)
{
	struct linger lg = { 1, 0 };

	if (setsockopt(bufferevent_getfd(s->bev), SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg)) == -1)
		logx("session=%lu SO_LINGER: %s", s->id, strerror(errno));
	s->dying = 1;
}

static void session_linger(struct session *);

/* --fault 421: the reply has had its time; now close. */
static void
close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (!s->lingering && !s->dying)
		session_linger(s);
	session_reap(s);
}

/*
 * --fault: if the configured fault is due at point ("GREETING", a verb,
 * "BODY", "DOT"), do it and return 1: the caller must not reply.  A
 * stalled session never gets here again (its input is ignored).
 */
static int
fault(struct session *s, const char *point)
{
	struct evbuffer *out;

	if (conf.fault == F_NONE || conf.fault == F_SPLIT ||
	    conf.fault == F_TLS_GARBAGE || strcasecmp(point, conf.fault_at) != 0)
		return 0;
	logx("session=%lu fault %s at %s", s->id,
	    conf.fault == F_RESET ? "reset" : conf.fault == F_STALL ? "stall" :
	    conf.fault == F_421 ? "421" : conf.fault == F_GARBAGE ? "garbage" :
	    conf.fault == F_CLOSE ? "close" : "huge", point);
	switch (conf.fault) {
	case F_RESET:
		session_reset(s);
		return 1;
	case F_STALL:
		s->stalled = 1;
		bufferevent_set_timeouts(s->bev, NULL, NULL);
		return 1;
	case F_421: {
		struct timeval tv = { 0, 200000 };

		reply(s, "%s", R_FAULT_421);
		s->stalled = 1;		/* nothing more is read or answered */
		bufferevent_set_timeouts(s->bev, NULL, NULL);
		if ((s->close_ev = evtimer_new(srv.base, close_cb, s)) == NULL)
			die(1, "out of memory");
		evtimer_add(s->close_ev, &tv);
		return 1;
	}
	case F_CLOSE: {
		int one = 1;

		/* hold everything back until shutdown() sends it with FIN */
		if (setsockopt(bufferevent_getfd(s->bev), IPPROTO_TCP, TCP_CORK,
		    &one, sizeof(one)) == -1)
			logx("session=%lu TCP_CORK: %s", s->id, strerror(errno));
		s->close_after_flush = 1;
		bufferevent_disable(s->bev, EV_READ);
		return 0;	/* the caller replies as usual */
	}
	case F_GARBAGE:
		reply(s, "%s", R_FAULT_JUNK);
		return 1;
	case F_HUGE:
		out = s->drip != NULL ? s->drip : bufferevent_get_output(s->bev);
		evbuffer_add(out, "250 ", 4);
		for (size_t n = 4; n < conf.huge_size; ) {
			static char x[4096];
			size_t k = conf.huge_size - n < sizeof(x) ?
			    conf.huge_size - n : sizeof(x);
			if (x[0] != 'x')
				memset(x, 'x', sizeof(x));
			evbuffer_add(out, x, k);
			n += k;
		}
		evbuffer_add(out, "\r\n", 2);
		return 1;
	default:
		return 0;
	}
}

static void
session_new(evutil_socket_t fd)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->id = ++srv.nsessions;
	if (conf.implicit_tls) {
		s->bev = tls_bev(fd);
		s->tls = 1;
	} else {
		s->bev = bufferevent_socket_new(srv.base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	}
	if (s->bev == NULL) {
		evutil_closesocket(fd);
		free(s);
		return;
	}
	LIST_INSERT_HEAD(&srv.sessions, s, entry);
	session_setup_bev(s);
	if (conf.fault == F_SPLIT) {
		s->drip = evbuffer_new();
		s->drip_ev = evtimer_new(srv.base, drip_cb, s);
		if (s->drip == NULL || s->drip_ev == NULL)
			die(1, "out of memory");
	}
	if (!fault(s, "GREETING"))
		reply(s, GREETING);
}

/*
 * The last reply has been written.  Half-close and read (and discard) what
 * the client still sends for a moment before closing: closing a socket with
 * unread input makes the kernel send a RST, which can destroy the reply in
 * flight (a client that sent a 10 kB command line would never see the 500).
 */
static void
session_linger(struct session *s)
{
	struct timeval tv = { LINGER_SECS, 0 };
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	if (ssl != NULL)
		SSL_shutdown(ssl);	/* close_notify, straight to the socket */
	if (shutdown(bufferevent_getfd(s->bev), SHUT_WR) == -1) {
		s->dying = 1;
		return;
	}
	s->lingering = 1;
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_set_timeouts(s->bev, &tv, NULL);
	bufferevent_disable(s->bev, EV_WRITE);
	bufferevent_enable(s->bev, EV_READ);
}

static void
session_readcb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->lingering || s->stalled) {
		struct evbuffer *in = bufferevent_get_input(bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (s->tls_garbage) {
		/* the ClientHello: answer it with what is not TLS */
		struct evbuffer *in = bufferevent_get_input(bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		logx("session=%lu fault tls-garbage", s->id);
		s->tls_garbage = 0;
		evbuffer_add(bufferevent_get_output(bev), R_FAULT_TLS,
		    strlen(R_FAULT_TLS));
		s->close_after_flush = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	session_input(s);
	session_reap(s);
}

static void
session_writecb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->drip != NULL && evbuffer_get_length(s->drip) != 0) {
		drip_start(s);
		return;
	}
	if (s->close_after_flush && !s->lingering) {
		session_linger(s);
	} else if (s->starttls_pending && conf.fault == F_TLS_GARBAGE) {
		/* stay in plain text; the next read is the ClientHello */
		s->starttls_pending = 0;
		s->tls_garbage = 1;
		bufferevent_enable(bev, EV_READ);
	} else if (s->starttls_pending) {
		session_starttls(s);
	} else if (s->read_blocked) {
		s->read_blocked = 0;
		bufferevent_enable(bev, EV_READ);
		session_input(s);
	}
	session_reap(s);
}

static void
session_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    !s->close_after_flush && !s->lingering) {
		logx("session=%lu idle timeout", s->id);
		if (s->state == ST_DATA)
			txn_reset(s);
		reply_close(s, R_TIMEOUT);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e != 0) {
			char buf[256];
			ERR_error_string_n(e, buf, sizeof(buf));
			logx("session=%lu tls error: %s", s->id, buf);
		}
	}
	s->dying = 1;
	session_reap(s);
}

/* ---- commands ------------------------------------------------------------ */

static int
addr_valid(const char *a)
{
	const char *at = strrchr(a, '@');

	if (at == NULL || at == a || at[1] == '\0')
		return 0;
	for (; *a != '\0'; a++)
		if ((unsigned char)*a <= ' ' || *a == '<' || *a == '>' ||
		    (unsigned char)*a == 0x7f)
			return 0;
	return 1;
}

/*
 * Parse "<kw><addr> [params]" (kw "FROM:" or "TO:", one optional space
 * after the colon tolerated).  On success *addr is a new string and
 * *params points into arg.  Returns 0, or -1 on a syntax error.
 */
static int
parse_path(char *arg, const char *kw, char **addr, char **params)
{
	size_t kwlen = strlen(kw);
	char *p, *end;

	if (strncasecmp(arg, kw, kwlen) != 0)
		return -1;
	p = arg + kwlen;
	if (*p == ' ')
		p++;
	if (*p != '<' || (end = strchr(p, '>')) == NULL)
		return -1;
	*addr = xstrndup(p + 1, (size_t)(end - p - 1));
	p = end + 1;
	if (*p != '\0' && *p != ' ') {
		free(*addr);
		return -1;
	}
	while (*p == ' ')
		p++;
	*params = p;
	return 0;
}

static int
local_unverified(const char *addr)
{
	return strncasecmp(addr, "unverified", 10) == 0;
}

static void
cmd_helo(struct session *s, char *arg)
{
	if (*arg == '\0') {
		reply(s, "501 Syntax: HELO hostname");
		return;
	}
	txn_reset(s);
	s->helo = 1;
	reply(s, "250 " HOSTNAME);
}

static void
cmd_ehlo(struct session *s, char *arg)
{
	if (*arg == '\0') {
		reply(s, "501 Syntax: EHLO hostname");
		return;
	}
	txn_reset(s);
	s->helo = 1;
	reply(s, "250-" HOSTNAME);
	reply(s, "250-8BITMIME");
	reply(s, "250-SIZE %zu", conf.max_size);
	if (s->tls)
		reply(s, "250-AUTH PLAIN LOGIN");
	else
		reply(s, "250-STARTTLS");
	reply(s, "250 Ok");
}

static void
cmd_starttls(struct session *s, char *arg)
{
	if (s->tls) {
		reply(s, "503 5.5.1 TLS already active");		/* (fake) */
		return;
	}
	if (*arg != '\0') {
		reply(s, "501 5.5.4 Syntax error (no parameters allowed)");
		return;
	}
	reply(s, "220 Ready to start TLS");
	s->starttls_pending = 1;
	bufferevent_disable(s->bev, EV_READ);
}

static void
auth_check(struct session *s, const char *user, size_t ulen,
    const char *pass, size_t plen)
{
	unsigned char raw[64];
	size_t elen = strlen(conf.password);
	long n = b64_decode(pass, plen, raw, sizeof(raw));

	s->state = ST_CMD;
	if (n == 33 && raw[0] == 0x02) {
		logx("session=%lu auth failed: v2 password", s->id);
		reply(s, R_AUTH_V2);
	} else if (ulen != strlen(conf.user) ||
	    memcmp(user, conf.user, ulen) != 0 || plen != elen ||
	    CRYPTO_memcmp(pass, conf.password, elen) != 0) {
		logx("session=%lu auth failed: wrong %s", s->id,
		    ulen == strlen(conf.user) && memcmp(user, conf.user, ulen) == 0 ?
		    "password" : "user");
		reply(s, R_AUTH_BAD);
	} else {
		s->authed = 1;
		reply(s, R_AUTH_OK);
	}
	wipe(raw, sizeof(raw));
}

static void
auth_plain(struct session *s, const char *b64)
{
	unsigned char buf[LINE_MAX_SMTP];
	long n = b64_decode(b64, strlen(b64), buf, sizeof(buf));
	unsigned char *u, *p;

	s->state = ST_CMD;
	if (n < 0) {
		reply(s, "501 5.5.2 Cannot decode response");	/* (fake) */
		return;
	}
	/* authzid NUL authcid NUL passwd */
	if ((u = memchr(buf, 0, (size_t)n)) == NULL ||
	    (p = memchr(u + 1, 0, (size_t)(buf + n - (u + 1)))) == NULL) {
		reply(s, R_AUTH_BAD);
		wipe(buf, sizeof(buf));
		return;
	}
	u++;
	p++;
	auth_check(s, (char *)u, (size_t)(p - 1 - u), (char *)p,
	    (size_t)(buf + n - p));
	wipe(buf, sizeof(buf));
}

static void
auth_login_user(struct session *s, const char *b64)
{
	unsigned char buf[LINE_MAX_SMTP];
	long n = b64_decode(b64, strlen(b64), buf, sizeof(buf));

	if (n < 0) {
		s->state = ST_CMD;
		reply(s, "501 5.5.2 Cannot decode response");	/* (fake) */
		return;
	}
	wipe_free(s->login_user);
	s->login_user = xstrndup((char *)buf, (size_t)n);
	s->state = ST_AUTH_PASS;
	reply(s, "334 UGFzc3dvcmQ6");
}

static void
auth_login_pass(struct session *s, const char *b64)
{
	unsigned char buf[LINE_MAX_SMTP];
	long n = b64_decode(b64, strlen(b64), buf, sizeof(buf));

	if (n < 0) {
		s->state = ST_CMD;
		reply(s, "501 5.5.2 Cannot decode response");	/* (fake) */
	} else {
		auth_check(s, s->login_user, strlen(s->login_user),
		    (char *)buf, (size_t)n);
	}
	wipe_free(s->login_user);
	s->login_user = NULL;
	wipe(buf, sizeof(buf));
}

/* A line received while an AUTH exchange waits for the client. */
static void
auth_continue(struct session *s, char *line)
{
	if (strcmp(line, "*") == 0) {
		s->state = ST_CMD;
		wipe_free(s->login_user);
		s->login_user = NULL;
		reply(s, "501 5.7.0 Authentication aborted");	/* (fake) */
		return;
	}
	switch (s->state) {
	case ST_AUTH_PLAIN:
		auth_plain(s, line);
		break;
	case ST_AUTH_USER:
		auth_login_user(s, line);
		break;
	case ST_AUTH_PASS:
		auth_login_pass(s, line);
		break;
	default:
		abort();
	}
}

static void
cmd_auth(struct session *s, char *arg)
{
	char *mech = arg, *ir;

	if (!s->tls) {
		reply(s, R_NEED_TLS);
		return;
	}
	if (!s->helo) {
		reply(s, R_NEED_HELO);
		return;
	}
	if (s->authed) {
		reply(s, "503 5.5.1 Already authenticated");	/* (fake) */
		return;
	}
	if ((ir = strchr(arg, ' ')) != NULL)
		*ir++ = '\0';
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (ir == NULL) {
			s->state = ST_AUTH_PLAIN;
			reply(s, "334 ");
		} else if (strcmp(ir, "=") == 0) {
			reply(s, R_AUTH_BAD);
		} else {
			auth_plain(s, ir);
		}
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		if (ir == NULL) {
			s->state = ST_AUTH_USER;
			reply(s, "334 VXNlcm5hbWU6");
		} else {
			auth_login_user(s, ir);
		}
	} else {
		reply(s, "504 Unrecognized authentication type.");	/* (fake) */
	}
}

/* Common gate of MAIL, RCPT and DATA.  Returns 1 if the command may go on. */
static int
mail_gate(struct session *s)
{
	if (!s->tls) {
		reply(s, R_NEED_TLS);
		return 0;
	}
	if (!s->helo) {
		reply(s, R_NEED_HELO);
		return 0;
	}
	if (!s->authed) {
		reply(s, R_NEED_AUTH);
		return 0;
	}
	return 1;
}

static void
cmd_mail(struct session *s, char *arg)
{
	char *addr, *params, *tok, *save;

	if (!mail_gate(s))
		return;
	if (conf.session_max != 0 && s->nmsg >= conf.session_max) {
		logx("session=%lu closed after %lu messages", s->id, s->nmsg);
		reply_close(s, R_SESSION_MAX);
		return;
	}
	if (s->has_mail) {
		reply(s, "503 5.5.1 Error: nested MAIL command");	/* (fake) */
		return;
	}
	if (parse_path(arg, "FROM:", &addr, &params) == -1) {
		reply(s, R_BAD_FROM);
		return;
	}
	if (!addr_valid(addr)) {
		free(addr);
		reply(s, R_BAD_FROM);
		return;
	}
	for (tok = strtok_r(params, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "SIZE=", 5) == 0) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(tok + 5, &end, 10);
			if (tok[5] == '\0' || *end != '\0' || errno != 0 ||
			    !isdigit((unsigned char)tok[5])) {
				reply(s, R_BAD_PARAM);
				free(addr);
				return;
			}
			if (n > conf.max_size) {
				reply(s, R_TOO_BIG);
				free(addr);
				return;
			}
		} else if (strcasecmp(tok, "BODY=8BITMIME") != 0 &&
		    strcasecmp(tok, "BODY=7BIT") != 0) {
			reply(s, R_BAD_PARAM);
			free(addr);
			return;
		}
	}
	s->mail_from = addr;
	s->has_mail = 1;
	reply(s, "250 Ok");
}

static void
cmd_rcpt(struct session *s, char *arg)
{
	char *addr, *params;

	if (!mail_gate(s))
		return;
	if (!s->has_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");	/* (fake) */
		return;
	}
	if (parse_path(arg, "TO:", &addr, &params) == -1) {
		reply(s, R_BAD_RCPT);
		return;
	}
	if (!addr_valid(addr)) {
		free(addr);
		reply(s, R_BAD_RCPT);
		return;
	}
	if (*params != '\0') {
		free(addr);
		reply(s, R_BAD_PARAM);
		return;
	}
	if (s->nrcpt >= MAX_RCPT) {
		free(addr);
		reply(s, R_TOO_MANY);
		return;
	}
	for (int i = 0; i < conf.nrefuse; i++) {
		if (strncasecmp(addr, conf.refuse[i].prefix,
		    strlen(conf.refuse[i].prefix)) != 0)
			continue;
		logx("session=%lu rcpt=<%s> reply=%u (--refuse-rcpt)", s->id,
		    addr, conf.refuse[i].code);
		reply(s, "%u %u.0.0 Recipient <%s> refused (fake)",
		    conf.refuse[i].code, conf.refuse[i].code / 100, addr);
		free(addr);
		return;
	}
	s->rcpt[s->nrcpt++] = addr;
	reply(s, "250 Ok");
}

static void
cmd_data(struct session *s, char *arg)
{
	if (!mail_gate(s))
		return;
	if (*arg != '\0') {
		reply(s, "501 5.5.4 Syntax error (no parameters allowed)");
		return;
	}
	if (!s->has_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");	/* (fake) */
		return;
	}
	if (s->nrcpt == 0) {
		reply(s, "503 5.5.1 Error: need RCPT command");	/* (fake) */
		return;
	}
	s->state = ST_DATA;
	s->msglen = 0;
	s->linelen = 0;
	s->bol = 1;
	s->last_cr = 0;
	s->err_long = 0;
	s->err_size = 0;
	s->body_seen = 0;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct session *s, char *arg)
{
	txn_reset(s);
	reply(s, "250 Ok");
}

static void
cmd_noop(struct session *s, char *arg)
{
	reply(s, "250 Ok");
}

static void
cmd_quit(struct session *s, char *arg)
{
	reply_close(s, "221 Bye");
}

static const struct {
	const char	*verb;
	void		(*fn)(struct session *, char *);
} commands[] = {
	{ "EHLO",	cmd_ehlo },
	{ "HELO",	cmd_helo },
	{ "STARTTLS",	cmd_starttls },
	{ "AUTH",	cmd_auth },
	{ "MAIL",	cmd_mail },
	{ "RCPT",	cmd_rcpt },
	{ "DATA",	cmd_data },
	{ "RSET",	cmd_rset },
	{ "NOOP",	cmd_noop },
	{ "QUIT",	cmd_quit },
};

static void
command(struct session *s, char *line)
{
	char *arg;
	size_t vlen;

	if (s->state != ST_CMD) {
		auth_continue(s, line);
		return;
	}
	vlen = strcspn(line, " ");
	arg = line + vlen;
	if (*arg == ' ')
		*arg++ = '\0';
	if (fault(s, line))
		return;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcasecmp(line, commands[i].verb) == 0) {
			commands[i].fn(s, arg);
			return;
		}
	}
	reply(s, R_UNKNOWN);
}

/* ---- end of DATA ---------------------------------------------------------- */

/* The first repeated singleton header, its name as seen copied to name. */
static int
dup_header(const char *msg, size_t len, char *name, size_t namelen)
{
	unsigned char seen[NSINGLETONS] = { 0 };
	const char *p = msg, *end = msg + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end, *colon, *ne;

		if (le > p && le[-1] == '\r')
			le--;
		if (le == p)
			break;			/* empty line: end of header */
		if (*p != ' ' && *p != '\t') {
			if ((colon = memchr(p, ':', (size_t)(le - p))) == NULL)
				break;		/* not a header field */
			for (ne = colon; ne > p && (ne[-1] == ' ' || ne[-1] == '\t'); ne--)
				;
			size_t n = (size_t)(ne - p);
			for (size_t i = 0; i < NSINGLETONS; i++) {
				if (strlen(singletons[i]) != n ||
				    strncasecmp(p, singletons[i], n) != 0)
					continue;
				if (++seen[i] == 2) {
					snprintf(name, namelen, "%.*s", (int)n, p);
					return 1;
				}
				break;
			}
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

static void
message_id(char *out, size_t outlen)
{
	struct timespec ts;
	unsigned char r[12];
	unsigned long long ms;
	/* The counter, scrambled, in the second group keeps ids unique. */
	uint32_t n = (uint32_t)(srv.accepted + srv.rejected + 1) * 2654435761u;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (unsigned long long)ts.tv_sec * 1000 +
	    (unsigned long long)ts.tv_nsec / 1000000;
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	snprintf(out, outlen, "0100%012llx-%08x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x-000000", ms & 0xffffffffffffULL, n,
	    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
	    r[10], r[11]);
}

/* Write DIR/NNNNNN.eml then DIR/NNNNNN.env, each via a dot-file + rename. */
static int
maildir_store(struct session *s, const char *id)
{
	char tmp[4096], path[4096];
	unsigned long n = ++srv.file_seq;
	FILE *f;
	int ok;

	snprintf(tmp, sizeof(tmp), "%s/.%06lu.eml.tmp", conf.maildir, n);
	snprintf(path, sizeof(path), "%s/%06lu.eml", conf.maildir, n);
	if ((f = fopen(tmp, "w")) == NULL)
		goto fail;
	ok = s->msglen == 0 || fwrite(s->msg, 1, s->msglen, f) == s->msglen;
	if (fclose(f) != 0 || !ok || rename(tmp, path) == -1)
		goto fail;

	snprintf(tmp, sizeof(tmp), "%s/.%06lu.env.tmp", conf.maildir, n);
	snprintf(path, sizeof(path), "%s/%06lu.env", conf.maildir, n);
	if ((f = fopen(tmp, "w")) == NULL)
		goto fail;
	fprintf(f, "mail_from=%s\n", s->mail_from);
	for (size_t i = 0; i < s->nrcpt; i++)
		fprintf(f, "rcpt=%s\n", s->rcpt[i]);
	fprintf(f, "auth_user=%s\n", conf.user);
	fprintf(f, "tls=%s\n",
	    SSL_get_version(bufferevent_openssl_get_ssl(s->bev)));
	fprintf(f, "session=%lu\n", s->id);
	fprintf(f, "seq_in_session=%lu\n", s->nmsg + 1);
	fprintf(f, "size=%zu\n", s->msglen);
	fprintf(f, "message_id=%s\n", id);
	ok = !ferror(f);
	if (fclose(f) != 0 || !ok || rename(tmp, path) == -1)
		goto fail;
	return 0;
fail:
	logx("session=%lu maildir %s: %s", s->id, tmp, strerror(errno));
	unlink(tmp);
	return -1;
}

static void
data_end(struct session *s)
{
	char text[LINE_MAX_SMTP * 2], name[128], id[80];
	int ok = 0;

	s->state = ST_CMD;
	if (s->err_size) {
		snprintf(text, sizeof(text), R_TOO_BIG);
	} else if (s->err_long) {
		snprintf(text, sizeof(text), R_LONG_LINE);
	} else if (dup_header(s->msg, s->msglen, name, sizeof(name))) {
		snprintf(text, sizeof(text),
		    "554 Transaction failed: Duplicate header '%s'.", name);
	} else {
		size_t o;
		int bad = 0;

		o = (size_t)snprintf(text, sizeof(text), "554 Message rejected: "
		    "Email address is not verified. The following identities "
		    "failed the check in region %s: ", conf.region_upper);
		for (size_t i = 0; i <= s->nrcpt; i++) {
			const char *a = i == 0 ? s->mail_from : s->rcpt[i - 1];
			if (!local_unverified(a) || o >= sizeof(text))
				continue;
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s",
			    bad++ ? ", " : "", a);
		}
		if (!bad) {
			unsigned long n = ++srv.ntxn;
			if (conf.drop_every != 0 && n % conf.drop_every == 0) {
				srv.dropped++;
				logx("session=%lu seq=%lu from=<%s> rcpts=%zu "
				    "size=%zu reply=dropped", s->id, s->nmsg + 1,
				    s->mail_from, s->nrcpt, s->msglen);
				s->dying = 1;
				return;
			}
			if (srv.throttle_all || (conf.throttle_every != 0 &&
			    n % conf.throttle_every == 0)) {
				snprintf(text, sizeof(text), R_THROTTLE);
			} else {
				message_id(id, sizeof(id));
				if (conf.maildir != NULL &&
				    maildir_store(s, id) == -1) {
					snprintf(text, sizeof(text), R_TEMP);
				} else {
					snprintf(text, sizeof(text), "250 Ok %s", id);
					ok = 1;
				}
			}
		}
	}
	logx("session=%lu seq=%lu from=<%s> rcpts=%zu size=%zu reply=\"%s\"",
	    s->id, s->nmsg + 1, s->mail_from, s->nrcpt, s->msglen, text);
	if (ok) {
		s->nmsg++;
		srv.accepted++;
		srv.bytes += s->msglen;
	} else {
		srv.rejected++;
	}
	txn_reset(s);
	reply(s, "%s", text);
}

/* ---- input ---------------------------------------------------------------- */

static void
msg_append(struct session *s, const char *p, size_t n)
{
	size_t need;

	if (s->err_size || n == 0)
		return;
	need = s->msglen + n;
	if (need > conf.max_size) {
		s->err_size = 1;
		return;
	}
	if (need > s->msgcap) {
		size_t cap = s->msgcap < 16384 ? 16384 : s->msgcap;
		while (cap < need)
			cap *= 2;
		if (cap > conf.max_size)
			cap = conf.max_size;
		s->msg = xreallocarray(s->msg, cap, 1);
		s->msgcap = cap;
	}
	memcpy(s->msg + s->msglen, p, n);
	s->msglen = need;
}

/*
 * Consume one CRLF-terminated line of DATA (or a piece of an over-long
 * line).  Lines end at CRLF only: a bare LF is stored as data and does not
 * start a line for dot handling (it does end a line for the length limit).
 * The limit is on the unstuffed line including its line end.
 * Returns 1 if input was consumed, 0 if more is needed.
 */
static int
data_step(struct session *s, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in), seg, skip = 0;
	struct evbuffer_ptr ptr;
	const char *p;
	int haslf;

	if (len == 0)
		return 0;
	ptr = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (ptr.pos >= 0) {
		seg = (size_t)ptr.pos + 1;
		haslf = 1;
	} else if (len > LINE_MAX_SMTP) {
		seg = len;
		haslf = 0;
	} else {
		return 0;
	}
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)seg)) == NULL)
		abort();
	if (!s->body_seen) {
		s->body_seen = 1;
		if (fault(s, "BODY"))
			return 0;
	}
	if (s->bol && p[0] == '.') {
		if (seg == 3 && p[1] == '\r' && haslf) {
			evbuffer_drain(in, 3);
			if (fault(s, "DOT")) {
				s->state = ST_CMD;
				txn_reset(s);
				return 1;
			}
			data_end(s);
			return 1;
		}
		skip = 1;
	}
	msg_append(s, p + skip, seg - skip);
	s->linelen += seg - skip;
	if (s->linelen > LINE_MAX_SMTP)
		s->err_long = 1;
	if (haslf) {
		s->bol = seg >= 2 ? p[seg - 2] == '\r' : s->last_cr;
		s->linelen = 0;
	} else {
		s->bol = 0;
	}
	s->last_cr = p[seg - 1] == '\r';
	evbuffer_drain(in, seg);
	return 1;
}

/* Read one command line.  Returns 1 if a line was handled, 0 otherwise. */
static int
command_step(struct session *s, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in), n;
	struct evbuffer_ptr ptr;

	if (len == 0)
		return 0;
	ptr = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (ptr.pos < 0) {
		if (len >= LINE_MAX_SMTP) {
			logx("session=%lu command line too long", s->id);
			reply_close(s, R_CMD_LONG);
		}
		return 0;
	}
	n = (size_t)ptr.pos + 1;
	if (n > LINE_MAX_SMTP) {
		logx("session=%lu command line too long", s->id);
		reply_close(s, R_CMD_LONG);
		return 0;
	}
	evbuffer_remove(in, s->line, n);
	if (n < 2 || s->line[n - 2] != '\r') {
		s->line[n - 1] = '\0';
		reply(s, R_BARE_LF);
		return 1;
	}
	s->line[n - 2] = '\0';
	command(s, s->line);
	wipe(s->line, n);	/* may hold AUTH data */
	return 1;
}

/* Count and log a client that did not wait for a reply, once a session. */
static void
pipelined(struct session *s, const char *what)
{
	if (s->pipelined)
		return;
	s->pipelined = 1;
	srv.pipelined++;
	logx("session=%lu %s", s->id, what);
}

static void
session_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	for (;;) {
		if (s->close_after_flush || s->dying || s->stalled)
			return;
		if (s->starttls_pending) {
			if (evbuffer_get_length(in) != 0)
				pipelined(s, "data after STARTTLS discarded");
			return;
		}
		if (pending_output(s) > OUTBUF_MAX) {
			s->read_blocked = 1;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == ST_DATA) {
			if (!data_step(s, in))
				return;
			if (s->state == ST_DATA)
				continue;
		} else if (!command_step(s, in)) {
			return;
		}
		/* A reply was just queued and not yet sent: anything already
		 * read was sent without waiting for it, and SES offers no
		 * PIPELINING. */
		if (evbuffer_get_length(in) != 0 && !s->dying &&
		    !s->close_after_flush && !s->starttls_pending)
			pipelined(s, "client pipelined without PIPELINING");
	}
}

/* ---- setup ---------------------------------------------------------------- */

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	int one = 1;

	if (srv.down) {
		evutil_closesocket(fd);
		return;
	}
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	session_new(fd);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGUSR1:
		srv.down = !srv.down;
		logx("down mode %s", srv.down ? "on" : "off");
		break;
	case SIGUSR2:
		srv.throttle_all = !srv.throttle_all;
		logx("throttle-all mode %s", srv.throttle_all ? "on" : "off");
		break;
	default:
		event_base_loopbreak(srv.base);
		break;
	}
}

static SSL_CTX *
tls_setup(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		die(1, "SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, conf.cert) != 1)
		die(1, "cannot load certificate %s", conf.cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, conf.key, SSL_FILETYPE_PEM) != 1)
		die(1, "cannot load key %s", conf.key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		die(1, "key %s does not match %s", conf.key, conf.cert);
	return ctx;
}

/* Write s to path via a temporary file, so a poller sees all or nothing. */
static void
write_small_file(const char *path, const char *s)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		die(1, "%s: %s", tmp, strerror(errno));
	fputs(s, f);
	if (fclose(f) != 0 || rename(tmp, path) == -1)
		die(1, "%s: %s", path, strerror(errno));
}

static void
maildir_scan(void)
{
	DIR *d = opendir(conf.maildir);
	struct dirent *de;

	if (d == NULL)
		die(1, "--maildir %s: %s", conf.maildir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long n = strtoul(de->d_name, &end, 10);
		if (end != de->d_name && (strcmp(end, ".eml") == 0 ||
		    strcmp(end, ".env") == 0) && n > srv.file_seq)
			srv.file_seq = n;
	}
	closedir(d);
}

static char *
read_secret_file(const char *path)
{
	char buf[1024];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		die(2, "--secret-file %s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	char *s = xstrdup(buf);
	wipe(buf, sizeof(buf));
	return s;
}

static unsigned long long
number(const char *opt, const char *s)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end != '\0' || errno != 0)
		die(2, "--%s: not a number: %s", opt, s);
	return n;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: " PROG " --listen HOST:PORT --cert FILE --key FILE --user AKID\n"
	    "           (--password P | (--secret S | --secret-file F) [--region R])\n"
	    "           [--implicit-tls] [--maildir DIR] [--throttle-every N]\n"
	    "           [--drop-every N] [--session-max N] [--idle-timeout SECS]\n"
	    "           [--max-size BYTES] [--pidfile F] [--portfile F] [--quiet]\n"
	    "           [--fault KIND[:POINT]] [--huge-size BYTES]\n"
	    "           [--refuse-rcpt CODE:PREFIX]...\n");
	exit(2);
}

/* HOST:PORT or [V6]:PORT; HOST may be a name; port 0 asks for any. */
static void
parse_listen(const char *arg)
{
	char host[256];
	const char *port;
	struct addrinfo hints, *res;
	int e;

	if (arg[0] == '[') {
		const char *end = strchr(arg, ']');
		if (end == NULL || end[1] != ':' ||
		    (size_t)(end - arg - 1) >= sizeof(host))
			die(2, "--listen: not [V6]:PORT: %s", arg);
		snprintf(host, sizeof(host), "%.*s", (int)(end - arg - 1), arg + 1);
		port = end + 2;
	} else {
		const char *colon = strrchr(arg, ':');
		if (colon == NULL || (size_t)(colon - arg) >= sizeof(host))
			die(2, "--listen: not HOST:PORT: %s", arg);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - arg), arg);
		port = colon + 1;
	}
	if (*port == '\0' || number("listen", port) > 65535)
		die(2, "--listen: bad port: %s", arg);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((e = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints,
	    &res)) != 0)
		die(2, "--listen %s: %s", arg, gai_strerror(e));
	memcpy(&conf.listen[conf.nlisten], res->ai_addr, res->ai_addrlen);
	conf.listen_len[conf.nlisten] = (int)res->ai_addrlen;
	conf.nlisten++;
	freeaddrinfo(res);
}

/* --refuse-rcpt CODE:PREFIX; see the comment at the top. */
static void
parse_refuse(char *arg)
{
	char *colon = strchr(arg, ':');
	if (conf.nrefuse == MAX_REFUSE)
		die(2, "too many --refuse-rcpt");
	if (colon == NULL || colon[1] == '\0')
		die(2, "--refuse-rcpt: not CODE:PREFIX: %s", arg);
	*colon = '\0';
	unsigned long long code = number("refuse-rcpt", arg);
	if (code < 400 || code > 599)
		die(2, "--refuse-rcpt: not a 4xx or 5xx code: %s", arg);
	conf.refuse[conf.nrefuse].code = (unsigned)code;
	conf.refuse[conf.nrefuse].prefix = colon + 1;
	conf.nrefuse++;
}

/* --fault KIND[:POINT]; see the comment at the top. */
static void
parse_fault(const char *arg)
{
	static const struct {
		const char *name, *point;
		enum fault kind;
	} kinds[] = {
		{ "reset", "BODY", F_RESET }, { "stall", "MAIL", F_STALL },
		{ "421", "RCPT", F_421 }, { "garbage", "MAIL", F_GARBAGE },
		{ "huge", "MAIL", F_HUGE }, { "tls-garbage", NULL, F_TLS_GARBAGE },
		{ "split", NULL, F_SPLIT }, { "close", "DOT", F_CLOSE },
	};
	size_t n = strcspn(arg, ":"), i;
	const char *point;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].name) == n &&
		    strncmp(arg, kinds[i].name, n) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0]))
		die(2, "--fault: unknown kind: %s", arg);
	point = arg[n] == ':' ? arg + n + 1 : kinds[i].point;
	if (arg[n] == ':' && kinds[i].point == NULL)
		die(2, "--fault %s takes no :POINT", kinds[i].name);
	if (point != NULL && (*point == '\0' ||
	    strlen(point) >= sizeof(conf.fault_at)))
		die(2, "--fault: bad point: %s", arg);
	conf.fault = kinds[i].kind;
	snprintf(conf.fault_at, sizeof(conf.fault_at), "%s",
	    point != NULL ? point : "");
}

static void
parse_args(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_IMPLICIT, O_CERT, O_KEY, O_USER, O_SECRET,
	    O_SECRET_FILE, O_REGION, O_PASSWORD, O_MAILDIR, O_THROTTLE,
	    O_DROP, O_SESSION_MAX, O_IDLE, O_MAX_SIZE, O_PIDFILE, O_PORTFILE,
	    O_QUIET, O_FAULT, O_HUGE_SIZE, O_REFUSE, O_HELP };
	static const struct option opts[] = {
		{ "listen",		required_argument,	NULL, O_LISTEN },
		{ "implicit-tls",	no_argument,		NULL, O_IMPLICIT },
		{ "cert",		required_argument,	NULL, O_CERT },
		{ "key",		required_argument,	NULL, O_KEY },
		{ "user",		required_argument,	NULL, O_USER },
		{ "secret",		required_argument,	NULL, O_SECRET },
		{ "secret-file",	required_argument,	NULL, O_SECRET_FILE },
		{ "region",		required_argument,	NULL, O_REGION },
		{ "password",		required_argument,	NULL, O_PASSWORD },
		{ "maildir",		required_argument,	NULL, O_MAILDIR },
		{ "throttle-every",	required_argument,	NULL, O_THROTTLE },
		{ "drop-every",		required_argument,	NULL, O_DROP },
		{ "session-max",	required_argument,	NULL, O_SESSION_MAX },
		{ "idle-timeout",	required_argument,	NULL, O_IDLE },
		{ "max-size",		required_argument,	NULL, O_MAX_SIZE },
		{ "pidfile",		required_argument,	NULL, O_PIDFILE },
		{ "portfile",		required_argument,	NULL, O_PORTFILE },
		{ "quiet",		no_argument,		NULL, O_QUIET },
		{ "fault",		required_argument,	NULL, O_FAULT },
		{ "huge-size",		required_argument,	NULL, O_HUGE_SIZE },
		{ "refuse-rcpt",	required_argument,	NULL, O_REFUSE },
		{ "help",		no_argument,		NULL, O_HELP },
		{ NULL, 0, NULL, 0 }
	};
	const char *secret = NULL, *secret_file = NULL, *password = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			if (conf.nlisten == MAX_LISTEN)
				die(2, "too many --listen");
			parse_listen(optarg);
			break;
		case O_IMPLICIT:	conf.implicit_tls = 1; break;
		case O_CERT:		conf.cert = optarg; break;
		case O_KEY:		conf.key = optarg; break;
		case O_USER:		conf.user = optarg; break;
		case O_SECRET:		secret = optarg; break;
		case O_SECRET_FILE:	secret_file = optarg; break;
		case O_REGION:		conf.region = optarg; break;
		case O_PASSWORD:	password = optarg; break;
		case O_MAILDIR:		conf.maildir = optarg; break;
		case O_THROTTLE:
			conf.throttle_every = number("throttle-every", optarg);
			break;
		case O_DROP:
			conf.drop_every = number("drop-every", optarg);
			break;
		case O_SESSION_MAX:
			conf.session_max = number("session-max", optarg);
			break;
		case O_IDLE:
			conf.idle_timeout = (long)number("idle-timeout", optarg);
			break;
		case O_MAX_SIZE:
			conf.max_size = number("max-size", optarg);
			if (conf.max_size == 0 || conf.max_size > (1ULL << 32))
				die(2, "--max-size out of range");
			break;
		case O_PIDFILE:		conf.pidfile = optarg; break;
		case O_PORTFILE:	conf.portfile = optarg; break;
		case O_QUIET:		conf.quiet = 1; break;
		case O_FAULT:		parse_fault(optarg); break;
		case O_REFUSE:		parse_refuse(optarg); break;
		case O_HUGE_SIZE:
			conf.huge_size = number("huge-size", optarg);
			if (conf.huge_size < 8 || conf.huge_size > (1ULL << 30))
				die(2, "--huge-size out of range");
			break;
		default:		usage();
		}
	}
	if (optind != argc || conf.nlisten == 0 || conf.cert == NULL ||
	    conf.key == NULL || conf.user == NULL)
		usage();
	if ((password != NULL) + (secret != NULL) + (secret_file != NULL) != 1)
		die(2, "give exactly one of --password, --secret, --secret-file");
	if (strlen(conf.region) >= sizeof(conf.region_upper) ||
	    conf.region[0] == '\0')
		die(2, "--region: bad region %s", conf.region);
	for (size_t i = 0; conf.region[i] != '\0'; i++)
		conf.region_upper[i] =
		    (char)toupper((unsigned char)conf.region[i]);
	if (password != NULL) {
		if (strlen(password) >= sizeof(conf.password))
			die(2, "--password too long");
		snprintf(conf.password, sizeof(conf.password), "%s", password);
	} else if (secret != NULL) {
		derive_password(secret, conf.region, conf.password,
		    sizeof(conf.password));
	} else {
		char *sec = read_secret_file(secret_file);
		derive_password(sec, conf.region, conf.password,
		    sizeof(conf.password));
		wipe_free(sec);
	}
}

int
main(int argc, char **argv)
{
	char buf[64];
	int sigs[] = { SIGUSR1, SIGUSR2, SIGTERM, SIGINT };
	struct session *s;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	LIST_INIT(&srv.sessions);
	if (conf.maildir != NULL)
		maildir_scan();
	srv.ctx = tls_setup();
	if ((srv.base = event_base_new()) == NULL)
		die(1, "event_base_new failed");
	for (int i = 0; i < conf.nlisten; i++) {
		srv.listener[i] = evconnlistener_new_bind(srv.base, accept_cb,
		    NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
		    LEV_OPT_CLOSE_ON_EXEC, 1024,
		    (struct sockaddr *)&conf.listen[i], conf.listen_len[i]);
		if (srv.listener[i] == NULL)
			die(1, "cannot listen (--listen #%d): %s", i + 1,
			    strerror(errno));
	}
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		srv.sigev[i] = evsignal_new(srv.base, sigs[i], signal_cb, NULL);
		if (srv.sigev[i] == NULL || evsignal_add(srv.sigev[i], NULL) == -1)
			die(1, "cannot set up signal %d", sigs[i]);
	}
	if (conf.pidfile != NULL) {
		snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
		write_small_file(conf.pidfile, buf);
	}
	if (conf.portfile != NULL) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int port = 0;
		if (getsockname(evconnlistener_get_fd(srv.listener[0]),
		    (struct sockaddr *)&ss, &sl) == -1)
			die(1, "getsockname: %s", strerror(errno));
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(buf, sizeof(buf), "%d\n", port);
		write_small_file(conf.portfile, buf);
	}
	logx("ready %s user=%s", conf.implicit_tls ? "implicit-tls" : "starttls",
	    conf.user);

	event_base_dispatch(srv.base);

	while ((s = LIST_FIRST(&srv.sessions)) != NULL)
		session_free(s);
	for (int i = 0; i < conf.nlisten; i++)
		evconnlistener_free(srv.listener[i]);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		event_free(srv.sigev[i]);
	event_base_free(srv.base);
	SSL_CTX_free(srv.ctx);
	wipe(conf.password, sizeof(conf.password));
	if (conf.pidfile != NULL)
		unlink(conf.pidfile);
	if (conf.portfile != NULL)
		unlink(conf.portfile);
	fprintf(stderr, PROG ": exit sessions=%lu accepted=%lu rejected=%lu "
	    "dropped=%lu bytes=%llu pipelined=%lu\n", srv.nsessions,
	    srv.accepted, srv.rejected, srv.dropped, srv.bytes, srv.pipelined);
	return 0;
}
