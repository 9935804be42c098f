/*
 * sendmail.c — sendmail.sesrelay(8): the sendmail(1) command line for
 * programs that never speak SMTP (cron, PHP mail(), mailx, git
 * send-email).  It reads one message on stdin and submits it over SMTP to
 * the local sesrelayd, on its unix socket or first listen address; the
 * daemon's own checks (senders, size, bare CR/LF) apply as to any client.
 * Invoked as mailq it lists the queue (sesrelay queue), as newaliases it
 * does nothing.  It needs no privilege and never loads the SES credentials.
 *
 * The pure parts (options, headers, the body filter) are in sendmail_msg.c;
 * this file is the I/O: stdin, the socket, timeouts, exit codes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "sendmail_msg.h"
#include "xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef BINDIR
#define BINDIR "/usr/bin"
#endif

#define CHUNK 65536

static const char *prog = "sendmail";
static int verbose;

static void
warnx_(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-t] [-i] [-f sender] [-F name] "
	    "[-C config] [-v] [recipient ...]\n"
	    "       %s -bp | -bs | -bi | -q\n", prog, prog);
}

/* ---- the connection to sesrelayd, every wait bounded ---- */

struct conn {
	int fd;
	int timeout_ms;
	char rbuf[4096];
	size_t rlen;
	char where[256];	/* "unix:/run/..." or "127.0.0.1:25" */
};

static int
wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

static int
conn_open(struct conn *c, const struct config *cfg)
{
	const struct listen_spec *l = NULL;
	for (size_t i = 0; cfg != NULL && i < cfg->nlisten; i++)
		if (cfg->listen[i].is_unix) {
			l = &cfg->listen[i];
			break;
		}
	if (l == NULL && cfg != NULL && cfg->nlisten > 0)
		l = &cfg->listen[0];
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (l != NULL && l->is_unix) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		if (strlen(l->unix_path) >= sizeof(un->sun_path)) {
			warnx_("socket path too long: %s", l->unix_path);
			return -1;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, l->unix_path);
		sl = sizeof(*un);
		snprintf(c->where, sizeof(c->where), "unix:%s", l->unix_path);
	} else if (l != NULL) {
		memcpy(&ss, &l->addr, l->addrlen);
		sl = l->addrlen;
		/* a wildcard listener is reached on loopback */
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			if (in->sin_addr.s_addr == htonl(INADDR_ANY))
				in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
				in6->sin6_addr = in6addr_loopback;
		}
		snprintf(c->where, sizeof(c->where), "%s", l->text);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(25);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*in);
		snprintf(c->where, sizeof(c->where), "127.0.0.1:25");
	}
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		warnx_("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&ss, sl) != 0) {
		int e = errno;
		if (e == EINPROGRESS) {
			socklen_t el = sizeof(e);
			if (wait_fd(c->fd, POLLOUT, c->timeout_ms) != 0)
				e = errno;
			else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e,
			    &el) != 0)
				e = errno;
		}
		if (e != 0 && e != EINPROGRESS) {
			warnx_("cannot reach sesrelayd at %s: %s (is it "
			    "running?); message not sent", c->where,
			    strerror(e));
			close(c->fd);
			c->fd = -1;
			return -1;
		}
	}
	return 0;
}

static int
conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(c->fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c->fd, POLLOUT, c->timeout_ms) != 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

static int
conn_cmd(struct conn *c, const char *fmt, ...)
{
	char line[1100];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		errno = E2BIG;
		return -1;
	}
	if (verbose)
		fprintf(stderr, ">>> %s\n", line);
	memcpy(line + n, "\r\n", 2);
	return conn_write(c, line, (size_t)n + 2);
}

/* One reply (all its lines): its code, the last line in text; 0 on
 * timeout, a closed connection or garbage (errno says which). */
static int
conn_reply(struct conn *c, char *text, size_t textlen, char *ehlo,
    size_t ehlolen)
{
	if (ehlo != NULL)
		ehlo[0] = '\0';
	for (;;) {
		char *nl = memchr(c->rbuf, '\n', c->rlen);
		if (nl == NULL) {
			if (c->rlen == sizeof(c->rbuf)) {
				errno = EPROTO;
				return 0;
			}
			if (wait_fd(c->fd, POLLIN, c->timeout_ms) != 0)
				return 0;
			ssize_t r = read(c->fd, c->rbuf + c->rlen,
			    sizeof(c->rbuf) - c->rlen);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				if (r == 0)
					errno = ECONNRESET;
				return 0;
			}
			c->rlen += (size_t)r;
			continue;
		}
		size_t ll = (size_t)(nl - c->rbuf);
		char line[sizeof(c->rbuf) + 1];
		memcpy(line, c->rbuf, ll);
		line[ll] = '\0';
		if (ll > 0 && line[ll - 1] == '\r')
			line[ll - 1] = '\0';
		memmove(c->rbuf, nl + 1, c->rlen - ll - 1);
		c->rlen -= ll + 1;
		if (verbose)
			fprintf(stderr, "<<< %s\n", line);
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != '\0' && line[3] != ' ' &&
		    line[3] != '-')) {
			errno = EPROTO;
			return 0;
		}
		if (ehlo != NULL && strlen(ehlo) + strlen(line) + 2 < ehlolen) {
			strcat(ehlo, line + (line[3] ? 4 : 3));
			strcat(ehlo, "\n");
		}
		snprintf(text, textlen, "%s", line);
		if (line[3] != '-')
			return (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			    (line[2] - '0');
	}
}

/* ---- delivery ---- */

/* The exit code for a refusal at a stage, as sendmail's. */
static int
refusal(int code, int perm_ex)
{
	return code >= 400 && code < 500 ? SM_EX_TEMPFAIL : perm_ex;
}

static int
lost(const struct conn *c, const char *stage)
{
	int e = errno;
	warnx_("sesrelayd at %s: %s %s; message not sent", c->where,
	    e == ETIMEDOUT ? "timed out" : e == EPROTO ?
	    "sent a malformed reply" : strerror(e), stage);
	return e == EPROTO ? SM_EX_PROTOCOL : SM_EX_TEMPFAIL;
}

static ssize_t
read_in(int fd, char *p, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

static char *
unbracket(const char *s)
{
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		s++, n -= 2;
	char *r = xmalloc(n + 1);
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

/* An address we can put in MAIL FROM/RCPT TO: no control characters or
 * angle brackets, at most 900 bytes. */
static int
address_ok(const char *a, const char *what)
{
	size_t n = strlen(a);
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p < 32 || *p == 127 || *p == '<' || *p == '>') {
			warnx_("%s address contains '%s': refused", what,
			    *p == '<' || *p == '>' ? (*p == '<' ? "<" : ">") :
			    "a control character");
			return 0;
		}
	if (n > 900) {
		warnx_("%s address longer than 900 bytes: refused", what);
		return 0;
	}
	return 1;
}

static int
deliver(const struct sm_opts *o, const struct config *cfg, const char *domain,
    unsigned timeout)
{
	/* who is sending */
	struct passwd *pw = getpwuid(getuid());
	char user[256];
	snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name :
	    "nobody");
	char *sender;
	if (o->sender != NULL)
		sender = unbracket(o->sender);
	else {
		sender = xmalloc(strlen(user) + strlen(domain) + 2);
		sprintf(sender, "%s@%s", user, domain);
	}
	char gecos[256] = "";
	const char *fullname = o->fullname;
	if (fullname == NULL && (fullname = getenv("NAME")) == NULL &&
	    pw != NULL && pw->pw_gecos != NULL) {
		snprintf(gecos, sizeof(gecos), "%s", pw->pw_gecos);
		gecos[strcspn(gecos, ",")] = '\0';
		fullname = gecos;
	}

	/* the header block: buffered (at most SM_HEADER_MAX) */
	char *buf = xmalloc(SM_HEADER_MAX + 1);
	size_t len = 0, consumed = 0;
	int eof = 0;
	struct sm_headers h;
	for (;;) {
		ssize_t r = len < SM_HEADER_MAX ? read_in(0, buf + len,
		    SM_HEADER_MAX - len) : 0;
		if (r < 0) {
			warnx_("reading the message: %s", strerror(errno));
			free(buf);
			free(sender);
			return SM_EX_IOERR;
		}
		len += (size_t)r;
		eof = r == 0;
		sm_headers_parse(&h, buf, len, eof || len == SM_HEADER_MAX,
		    &consumed);
		/* a complete line that is no header field ends the block;
		 * a partial one may still become a field: read on */
		if (eof || len == SM_HEADER_MAX ||
		    memchr(buf + consumed, '\n', len - consumed) != NULL)
			break;
		sm_headers_free(&h);
	}
	if (len == SM_HEADER_MAX && consumed == len && !eof) {
		warnx_("the header block is larger than %d bytes; message "
		    "not sent", SM_HEADER_MAX);
		sm_headers_free(&h);
		free(buf);
		free(sender);
		return SM_EX_DATAERR;
	}

	/* recipients: the arguments, plus To/Cc/Bcc with -t */
	const char **rcpts = NULL;
	size_t nrcpts = 0;
	for (size_t i = 0; i < o->nrcpts; i++) {
		rcpts = xreallocarray(rcpts, nrcpts + 1, sizeof(*rcpts));
		rcpts[nrcpts++] = o->rcpts[i];
	}
	for (size_t i = 0; o->extract && i < h.nrcpts; i++) {
		rcpts = xreallocarray(rcpts, nrcpts + 1, sizeof(*rcpts));
		rcpts[nrcpts++] = h.rcpts[i];
	}
	int ex = SM_EX_OK;
	struct conn c = { .fd = -1, .timeout_ms = (int)timeout * 1000 };
	char text[1100], ehlo[2048];
	if (!address_ok(sender, "sender")) {
		ex = SM_EX_USAGE;
		goto out;
	}
	for (size_t i = 0; i < nrcpts; i++) {
		char *r = unbracket(rcpts[i]);
		int ok = address_ok(r, "recipient");
		free(r);
		if (!ok) {
			ex = SM_EX_USAGE;
			goto out;
		}
	}
	if (nrcpts == 0) {
		warnx_(o->extract ? "no recipient addresses found in the "
		    "message header (To, Cc, Bcc)" : "no recipients given "
		    "(name them as arguments, or use -t)");
		ex = SM_EX_USAGE;
		goto out;
	}
	if (conn_open(&c, cfg) != 0) {
		ex = SM_EX_TEMPFAIL;
		goto out;
	}
	int code = conn_reply(&c, text, sizeof(text), NULL, 0);
	if (code == 0) {
		ex = lost(&c, "before its greeting");
		goto out;
	}
	if (code != 220) {
		warnx_("sesrelayd at %s does not take mail: %s", c.where,
		    text);
		ex = refusal(code, SM_EX_UNAVAILABLE);
		goto out;
	}
	if (conn_cmd(&c, "EHLO localhost") != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), ehlo,
	    sizeof(ehlo))) == 0) {
		ex = lost(&c, "at EHLO");
		goto out;
	}
	if (code != 250) {
		warnx_("EHLO refused: %s", text);
		ex = refusal(code, SM_EX_PROTOCOL);
		goto out;
	}
	int eightbit = strstr(ehlo, "8BITMIME\n") != NULL;
	if (conn_cmd(&c, "MAIL FROM:<%s>%s", sender,
	    eightbit ? " BODY=8BITMIME" : "") != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), NULL, 0)) == 0) {
		ex = lost(&c, "at MAIL FROM");
		goto out;
	}
	if (code != 250) {
		warnx_("sender <%s> refused: %s", sender, text);
		ex = refusal(code, SM_EX_NOPERM);
		goto out;
	}
	for (size_t i = 0; i < nrcpts; i++) {
		char *r = unbracket(rcpts[i]);
		int w = conn_cmd(&c, "RCPT TO:<%s>", r);
		if (w != 0 || (code = conn_reply(&c, text, sizeof(text),
		    NULL, 0)) == 0) {
			free(r);
			ex = lost(&c, "at RCPT TO");
			goto out;
		}
		if (code != 250 && code != 251) {
			warnx_("recipient <%s> refused: %s; message not sent",
			    r, text);
			free(r);
			ex = refusal(code, SM_EX_NOUSER);
			goto out;
		}
		free(r);
	}
	if (conn_cmd(&c, "DATA") != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), NULL, 0)) == 0) {
		ex = lost(&c, "at DATA");
		goto out;
	}
	if (code != 354) {
		warnx_("DATA refused: %s", text);
		ex = refusal(code, SM_EX_DATAERR);
		goto out;
	}
	/* the header block, completed, then the body streamed */
	unsigned long long rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned long long)time(NULL) ^ (unsigned)getpid();
	size_t hl;
	char *hdr = sm_headers_render(&h, o->extract, sender, fullname,
	    domain, time(NULL), rnd, &hl);
	int werr = conn_write(&c, hdr, hl);
	free(hdr);
	const char *rest = buf + consumed;
	size_t restlen = len - consumed;
	if (werr == 0 && restlen > 0 && rest[0] != '\n' &&
	    !(restlen > 1 && rest[0] == '\r' && rest[1] == '\n'))
		werr = conn_write(&c, "\r\n", 2);	/* body without the
							 * empty line */
	struct sm_filter f;
	sm_filter_init(&f, o->ignore_dots);
	char *fo = xmalloc(2 * CHUNK + 8);
	int rerr = 0;
	while (werr == 0 && !f.done) {
		if (restlen > 0) {
			size_t n = restlen > CHUNK ? CHUNK : restlen;
			size_t w = sm_filter_run(&f, rest, n, fo);
			rest += n;
			restlen -= n;
			werr = conn_write(&c, fo, w);
			continue;
		}
		if (eof)
			break;
		ssize_t r = read_in(0, buf, CHUNK);
		if (r < 0) {
			rerr = errno;
			break;
		}
		if (r == 0) {
			eof = 1;
			break;
		}
		rest = buf;
		restlen = (size_t)r;
	}
	if (rerr != 0) {
		/* abandon the transaction: never send half a message */
		free(fo);
		warnx_("reading the message: %s; message not sent",
		    strerror(rerr));
		ex = SM_EX_IOERR;
		goto out;
	}
	if (werr == 0) {
		size_t w = sm_filter_end(&f, fo);
		memcpy(fo + w, ".\r\n", 3);
		werr = conn_write(&c, fo, w + 3);
	}
	free(fo);
	/* a refusal may arrive even if the write failed (the daemon closes
	 * after a too-large message): read what it said */
	code = conn_reply(&c, text, sizeof(text), NULL, 0);
	if (code == 0) {
		ex = lost(&c, werr != 0 ? "while the message was sent" :
		    "after the message");
		goto out;
	}
	if (code != 250) {
		warnx_("message refused: %s", text);
		ex = refusal(code, SM_EX_DATAERR);
		goto out;
	}
	if (verbose)
		fprintf(stderr, "%s: sent: %s\n", prog, text);
	if (conn_cmd(&c, "QUIT") == 0)
		(void)conn_reply(&c, text, sizeof(text), NULL, 0);
out:
	if (c.fd >= 0)
		close(c.fd);
	free(rcpts);
	sm_headers_free(&h);
	free(buf);
	free(sender);
	return ex;
}

/* -bs: the caller speaks SMTP with sesrelayd through us. */
static int
smtp_stdio(const struct config *cfg, unsigned timeout)
{
	struct conn c = { .fd = -1, .timeout_ms = (int)timeout * 1000 };
	if (conn_open(&c, cfg) != 0) {
		printf("421 4.3.0 sesrelayd is not reachable\r\n");
		fflush(stdout);
		return SM_EX_TEMPFAIL;
	}
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN },
	    { .fd = c.fd, .events = POLLIN } };
	char b[CHUNK];
	int ex = SM_EX_OK, in_open = 1;
	for (;;) {
		int r = poll(p, 2, c.timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			warnx_("-bs: no traffic for %u s", timeout);
			ex = SM_EX_TEMPFAIL;
			break;
		}
		if (p[1].revents != 0) {
			ssize_t n = read(c.fd, b, sizeof(b));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break;	/* the daemon closed: after QUIT */
			for (ssize_t o = 0; o < n;) {
				ssize_t w = write(1, b + o, (size_t)(n - o));
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					goto done;
				o += w;
			}
		}
		if (in_open && p[0].revents != 0) {
			ssize_t n = read_in(0, b, sizeof(b));
			if (n <= 0) {
				/* stdin closed: end the session (a second
				 * QUIT after the caller's is harmless) and
				 * pass on the replies still to come */
				in_open = 0;
				p[0].fd = -1;
				if (conn_write(&c, "QUIT\r\n", 6) != 0)
					break;
				continue;
			}
			if (conn_write(&c, b, (size_t)n) != 0)
				break;
		}
	}
done:
	close(c.fd);
	return ex;
}

/* -bp, mailq, -q: what `sesrelay queue` and `sesrelay flush` do. */
static int
run_admin(const char *cmd, const char *config)
{
	char self[4096], tool[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	tool[0] = '\0';
	if (n > 0) {
		self[n] = '\0';
		char *sl = strrchr(self, '/');
		if (sl != NULL) {
			*sl = '\0';
			snprintf(tool, sizeof(tool), "%s/sesrelay", self);
			if (access(tool, X_OK) != 0)
				tool[0] = '\0';	/* not a build tree */
		}
	}
	if (tool[0] == '\0')
		snprintf(tool, sizeof(tool), "%s/sesrelay", BINDIR);
	char dash_c[] = "-c";
	char *args[] = { tool, (char *)cmd, dash_c, (char *)config, NULL };
	execv(tool, args);
	warnx_("cannot run %s: %s", tool, strerror(errno));
	return SM_EX_UNAVAILABLE;
}

int
main(int argc, char *argv[])
{
	const char *base = strrchr(argv[0], '/');
	base = base != NULL ? base + 1 : argv[0];
	prog = base;
	signal(SIGPIPE, SIG_IGN);

	struct sm_opts o;
	char why[256];
	if (sm_opts_parse(&o, argc, argv, base, why, sizeof(why)) != 0) {
		warnx_("%s", why);
		usage();
		return SM_EX_USAGE;
	}
	verbose = o.verbose;
	const char *path = o.config != NULL ? o.config :
	    SYSCONFDIR "/sesrelay/sesrelay.conf";
	int ex;
	switch (o.mode) {
	case SM_MODE_VERSION:
		printf("sendmail.sesrelay %s\n", PACKAGE_VERSION);
		ex = SM_EX_OK;
		goto end;
	case SM_MODE_NEWALIASES:
		printf("%s: sesrelay relays all mail to Amazon SES and keeps "
		    "no aliases database; nothing to do\n", prog);
		ex = SM_EX_OK;
		goto end;
	case SM_MODE_MAILQ:
		ex = run_admin("queue", path);
		goto end;
	case SM_MODE_FLUSH:
		ex = run_admin("flush", path);
		goto end;
	default:
		break;
	}

	/* the configuration, without credentials; a file this user may
	 * not read (mode 640) means the defaults: 127.0.0.1:25 */
	char err[CONFIG_ERR_MAX];
	struct config *cfg = NULL;
	if (access(path, R_OK) == 0 || errno != EACCES) {
		cfg = config_load(path, 0, err);
		if (cfg == NULL) {
			warnx_("%s", err);
			ex = SM_EX_CONFIG;
			goto end;
		}
	} else if (verbose)
		fprintf(stderr, "%s: %s is not readable: using "
		    "127.0.0.1:25\n", prog, path);
	char host[256] = "localhost";
	if (cfg != NULL && cfg->hostname != NULL)
		snprintf(host, sizeof(host), "%s", cfg->hostname);
	else if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	unsigned timeout = cfg != NULL && cfg->timeout > 0 ? cfg->timeout :
	    300;
	if (o.mode == SM_MODE_SMTP)
		ex = smtp_stdio(cfg, timeout);
	else
		ex = deliver(&o, cfg, host, timeout);
	if (cfg != NULL)
		config_unref(cfg);
end:
	sm_opts_free(&o);
	return ex;
}
