/*
 * sendmail.c — sendmail.sesrelay(8): the sendmail(1) command line for
 * cron, PHP mail(), mail(1) and scripts.  It reads a message on stdin and
 * submits it over SMTP to the local sesrelayd (the first unix: entry of
 * [relay] listen, else the first TCP one), holding only the header in
 * memory; -bs relays an SMTP dialogue on stdin/stdout; -bp and -q run
 * sesrelay queue / flush; invoked as mailq or newaliases it acts as those.
 *
 * It needs no privileges and reads no secrets (config_load without the
 * credential chain).  Every read and write on the daemon's socket has the
 * [relay] timeout.  Exit codes are sysexits(3)'s, as sendmail's: see the
 * manual page.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "sendmail_msg.h"
#include "smtp_parse.h"
#include "xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef BINDIR
#define BINDIR "/usr/local/bin"
#endif

#define CHUNK (64 * 1024)
#define REPLY_MAX 4096

static const char *progname = "sendmail.sesrelay";
static int verbose;

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void __attribute__((noreturn))
usage(const char *why)
{
	fprintf(stderr, "%s: %s\n"
	    "usage: %s [-tiv] [-f sender] [-F name] [-C config] [-B type] "
	    "[-N dsn] [-R ret] [-V envid] [-oXXX] [-bm|-bp|-bs|-bi] "
	    "[recipient ...]\n", progname, why, progname);
	exit(EX_USAGE);
}

/*
 * The connection to sesrelayd: a non-blocking socket, every wait bounded.
 */
struct conn {
	int fd;
	int timeout_ms;
	const char *where;	/* "unix:/run/sesrelay.sock", for messages */
	char buf[REPLY_MAX];
	size_t len;
};

struct reply {
	int code;
	char text[REPLY_MAX];	/* the last line, code included */
	int dsn, eightbit;	/* EHLO keywords seen */
};

/* Connect; returns 0 or the errno of the failure. */
static int
conn_open(struct conn *c, const struct listen_spec *ls, unsigned timeout)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pollfd pfd;
	int err = 0;
	socklen_t el = sizeof(err);

	memset(&ss, 0, sizeof(ss));
	c->where = ls->text;
	c->timeout_ms = (int)(timeout > 3600 ? 3600 : timeout) * 1000;
	c->len = 0;
	if (ls->is_unix) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		if (strlen(ls->unix_path) >= sizeof(sun->sun_path))
			die(EX_CONFIG, "%s: the socket path is too long",
			    ls->text);
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, ls->unix_path);
		sl = sizeof(*sun);
	} else {
		memcpy(&ss, &ls->addr, ls->addrlen);
		sl = ls->addrlen;
	}
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		die(EX_OSERR, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&ss, sl) == -1) {
		if (errno != EINPROGRESS)
			err = errno;
		else {
			pfd.fd = c->fd;
			pfd.events = POLLOUT;
			int r = poll(&pfd, 1, c->timeout_ms);
			if (r == 0)
				err = ETIMEDOUT;
			else if (r == -1)
				err = errno;
			else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
			    &el) == -1)
				err = errno;
		}
	}
	if (err != 0) {
		close(c->fd);
		c->fd = -1;
	}
	return err;
}

/* Wait for fd to be ready for events; dies on a timeout. */
static void
conn_wait(struct conn *c, short events)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int r;
	while ((r = poll(&pfd, 1, c->timeout_ms)) == -1 && errno == EINTR)
		;
	if (r == 0)
		die(EX_TEMPFAIL, "sesrelayd at %s: timed out after %d s; "
		    "message not sent", c->where, c->timeout_ms / 1000);
	if (r == -1)
		die(EX_OSERR, "poll: %s", strerror(errno));
}

static void
conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(c->fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				conn_wait(c, POLLOUT);
				continue;
			}
			die(EX_TEMPFAIL, "sesrelayd at %s: write: %s; message "
			    "not sent", c->where, strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

/* One line, CRLF (or LF) removed, into line; returns its length. */
static size_t
conn_line(struct conn *c, char *line)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl != NULL) {
			size_t n = (size_t)(nl - c->buf), used = n + 1;
			if (n > 0 && c->buf[n - 1] == '\r')
				n--;
			memcpy(line, c->buf, n);
			line[n] = '\0';
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			return n;
		}
		if (c->len == sizeof(c->buf))
			die(EX_PROTOCOL, "sesrelayd at %s: a reply line over "
			    "%d bytes", c->where, REPLY_MAX);
		ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) -
		    c->len);
		if (r == -1 && (errno == EAGAIN || errno == EINTR)) {
			conn_wait(c, POLLIN);
			continue;
		}
		if (r <= 0)
			die(EX_TEMPFAIL, "sesrelayd at %s closed the "
			    "connection%s%s; message not sent", c->where,
			    r == -1 ? ": " : "", r == -1 ? strerror(errno) :
			    "");
		c->len += (size_t)r;
	}
}

static void
conn_reply(struct conn *c, struct reply *rp)
{
	char line[REPLY_MAX];
	int last = 0;

	rp->code = 0;
	while (!last) {
		size_t n = conn_line(c, line);
		const char *text;
		int code;
		if (smtp_parse_reply_line(line, n, &code, &last, &text) == -1)
			die(EX_PROTOCOL, "sesrelayd at %s: not an SMTP reply: "
			    "'%.80s'", c->where, line);
		if (rp->code != 0 && code != rp->code)
			die(EX_PROTOCOL, "sesrelayd at %s: reply codes differ "
			    "within one reply", c->where);
		rp->code = code;
		if (strncasecmp(text, "DSN", 3) == 0 && (text[3] == '\0' ||
		    text[3] == ' '))
			rp->dsn = 1;
		if (strncasecmp(text, "8BITMIME", 8) == 0)
			rp->eightbit = 1;
		memcpy(rp->text, line, n + 1);
		if (verbose)
			fprintf(stderr, "<<< %s\n", line);
	}
}

static void __attribute__((format(printf, 3, 4)))
conn_cmd(struct conn *c, struct reply *rp, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 2)
		die(EX_DATAERR, "an SMTP command would be too long: "
		    "'%.60s...'", cmd);
	if (verbose)
		fprintf(stderr, ">>> %s\n", cmd);
	memcpy(cmd + n, "\r\n", 2);
	conn_write(c, cmd, (size_t)n + 2);
	if (rp != NULL)
		conn_reply(c, rp);
}

/* The exit code for a refusal. */
static int
reply_exit(const struct reply *rp)
{
	const char *t = rp->text + (strlen(rp->text) > 4 ? 4 : 0);
	if (rp->code >= 400 && rp->code < 500)
		return EX_TEMPFAIL;
	if (strncmp(t, "5.7.", 4) == 0 || rp->code == 530 || rp->code == 535)
		return EX_NOPERM;
	if (rp->code >= 500)
		return EX_UNAVAILABLE;
	return EX_PROTOCOL;
}

static void __attribute__((noreturn))
refused(struct conn *c, const struct reply *rp, const char *what)
{
	struct reply q;
	memset(&q, 0, sizeof(q));
	int code = reply_exit(rp);
	fprintf(stderr, "%s: sesrelayd refused %s: %s; message not sent\n",
	    progname, what, rp->text);
	if (rp->code != 421) {
		int v = verbose;
		verbose = 0;
		conn_cmd(c, NULL, "QUIT");
		verbose = v;
	}
	exit(code);
}

static const struct listen_spec *
pick_listen(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].is_unix)
			return &cfg->listen[i];
	if (cfg->nlisten == 0)
		die(EX_CONFIG, "%s: [relay] listen is empty", cfg->path);
	return &cfg->listen[0];
}

/*
 * Recipients.
 */
struct rcpts {
	char **v;
	size_t n, cap;
};

static void
rcpt_add_list(struct rcpts *r, const char *list, size_t len,
    const char *domain, const char *what)
{
	char addr[SM_ADDR_MAX];
	size_t pos = 0;
	int k;

	while ((k = sm_addr_next(list, len, &pos, addr)) == 1) {
		char *a;
		if (strchr(addr, '@') == NULL)
			xasprintf(&a, "%s@%s", addr, domain);
		else
			a = xstrdup(addr);
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 16;
			r->v = xreallocarray(r->v, r->cap, sizeof(*r->v));
		}
		r->v[r->n++] = a;
	}
	if (k == -1)
		die(EX_DATAERR, "%s: not a valid address list: '%.*s'", what,
		    (int)(len > 200 ? 200 : len), list);
}

static const char *
login_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	if (pw == NULL || pw->pw_name == NULL || pw->pw_name[0] == '\0')
		die(EX_OSERR, "who are you? uid %lu has no passwd entry "
		    "(give -f)", (unsigned long)getuid());
	return pw->pw_name;
}

static char *
default_fullname(void)
{
	const char *n = getenv("NAME");
	struct passwd *pw;
	if (n != NULL && n[0] != '\0')
		return xstrdup(n);
	pw = getpwuid(getuid());
	if (pw == NULL || pw->pw_gecos == NULL)
		return NULL;
	return xstrndup(pw->pw_gecos, strcspn(pw->pw_gecos, ","));
}

static void __attribute__((noreturn))
run_cli(const struct sm_opts *o, const char *verb)
{
	const char *cli = secure_getenv("SESRELAY_CLI");
	char *args[5];
	int n = 0;

	if (cli == NULL || cli[0] == '\0')
		cli = BINDIR "/sesrelay";
	args[n++] = (char *)"sesrelay";
	args[n++] = (char *)verb;
	if (o->config != NULL) {
		args[n++] = (char *)"-c";
		args[n++] = (char *)o->config;
	}
	args[n] = NULL;
	execv(cli, args);
	die(EX_UNAVAILABLE, "cannot run %s: %s", cli, strerror(errno));
}

/* -bs: relay the SMTP dialogue between stdin/stdout and sesrelayd. */
static int
run_smtp(struct conn *c)
{
	char buf[CHUNK];
	int in_open = 1;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = c->fd, .events = POLLIN },
			{ .fd = STDIN_FILENO, .events = POLLIN },
		};
		int r = poll(pfd, in_open ? 2 : 1, c->timeout_ms);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			die(EX_OSERR, "poll: %s", strerror(errno));
		if (r == 0)
			die(EX_TEMPFAIL, "-bs: no traffic for %d s; closing",
			    c->timeout_ms / 1000);
		if (pfd[0].revents) {
			ssize_t n = read(c->fd, buf, sizeof(buf));
			if (n == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0)
				return 0;	/* the daemon closed: done */
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(STDOUT_FILENO, buf + off,
				    (size_t)(n - off));
				if (w == -1 && errno == EINTR)
					continue;
				if (w <= 0)
					return EX_IOERR;
				off += w;
			}
		}
		if (in_open && pfd[1].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0) {
				in_open = 0;
				shutdown(c->fd, SHUT_WR);
			} else
				conn_write(c, buf, (size_t)n);
		}
	}
}

/*
 * Deliver: header, envelope, DATA.
 */
static char *
read_header(size_t *len, size_t *cap, size_t *hdrlen, size_t *seplen,
    int *eof)
{
	char *buf = NULL;
	*len = *cap = 0;
	*eof = 0;
	for (;;) {
		if (sm_header_end(buf != NULL ? buf : "", *len, *eof, hdrlen,
		    seplen))
			return buf;
		if (*len > SM_HEADER_MAX)
			die(EX_DATAERR, "the message header is over %d bytes "
			    "(no empty line ends it); message not sent",
			    SM_HEADER_MAX);
		if (*cap - *len < CHUNK) {
			*cap = *cap ? *cap * 2 : 2 * CHUNK;
			buf = xreallocarray(buf, *cap, 1);
		}
		ssize_t r = read(STDIN_FILENO, buf + *len, *cap - *len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			die(EX_IOERR, "reading the message: %s",
			    strerror(errno));
		if (r == 0)
			*eof = 1;
		*len += (size_t)r;
	}
}

/* Filter in through f and write the result to the daemon. */
static void
send_filtered(struct conn *c, struct sm_filter *f, const char *in,
    size_t len, char *obuf)
{
	while (len > 0 && !f->done) {
		size_t k = len > CHUNK ? CHUNK : len;
		size_t n = sm_filter_feed(f, in, k, obuf);
		conn_write(c, obuf, n);
		in += k;
		len -= k;
	}
}

static int
deliver(const struct sm_opts *o, const struct config *cfg)
{
	const char *domain = cfg->sendmail_domain != NULL ?
	    cfg->sendmail_domain : cfg->hostname;
	struct rcpts rc = { 0 }, resent = { 0 };
	char *sender, *fullname, *hdr, *obuf;
	size_t hlen, hcap, hdrlen, seplen, pos;
	int eof, has_from = 0, has_date = 0, has_mid = 0;
	struct sm_field f;
	struct sm_filter flt;
	struct conn c;
	struct reply rp;

	/* the envelope sender */
	if (o->sender != NULL) {
		const char *s = o->sender;
		size_t n = strlen(s);
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		if (n == 0)
			sender = xstrdup("");
		else if (memchr(s, '@', n) == NULL)
			xasprintf(&sender, "%.*s@%s", (int)n, s, domain);
		else
			sender = xstrndup(s, n);
		for (const char *p = sender; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>')
				die(EX_USAGE, "-f %s: not an address",
				    o->sender);
	} else
		xasprintf(&sender, "%s@%s", login_name(), domain);
	fullname = o->fullname != NULL ? xstrdup(o->fullname) :
	    default_fullname();

	for (size_t i = 0; i < o->nrcpts; i++)
		rcpt_add_list(&rc, o->rcpts[i], strlen(o->rcpts[i]), domain,
		    "a recipient argument");

	hdr = read_header(&hlen, &hcap, &hdrlen, &seplen, &eof);
	for (pos = 0; sm_field_next(hdr, hdrlen, &pos, &f);) {
		if (sm_field_is(&f, "From"))
			has_from = 1;
		else if (sm_field_is(&f, "Date"))
			has_date = 1;
		else if (sm_field_is(&f, "Message-ID"))
			has_mid = 1;
		if (!o->extract)
			continue;
		char what[80];
		snprintf(what, sizeof(what), "the %.*s: header",
		    (int)(f.namelen > 40 ? 40 : f.namelen), f.name);
		if (sm_field_is(&f, "To") || sm_field_is(&f, "Cc") ||
		    sm_field_is(&f, "Bcc"))
			rcpt_add_list(&rc, f.value, f.valuelen, domain, what);
		else if (sm_field_is(&f, "Resent-To") ||
		    sm_field_is(&f, "Resent-Cc") ||
		    sm_field_is(&f, "Resent-Bcc"))
			rcpt_add_list(&resent, f.value, f.valuelen, domain,
			    what);
	}
	if (resent.n > 0) {	/* a resent message goes to Resent-* only */
		for (size_t i = 0; i < resent.n; i++) {
			if (rc.n == rc.cap) {
				rc.cap = rc.cap ? rc.cap * 2 : 16;
				rc.v = xreallocarray(rc.v, rc.cap,
				    sizeof(*rc.v));
			}
			rc.v[rc.n++] = resent.v[i];
		}
	}
	if (rc.n == 0)
		die(EX_DATAERR, "no recipients: give them as arguments, or "
		    "use -t with To:, Cc: or Bcc: in the message");

	const struct listen_spec *ls = pick_listen(cfg);
	int e = conn_open(&c, ls, cfg->timeout);
	if (e != 0)
		die(EX_TEMPFAIL, "sesrelayd is not reachable at %s: %s; "
		    "message not sent, try again later", ls->text,
		    strerror(e));
	memset(&rp, 0, sizeof(rp));
	conn_reply(&c, &rp);
	if (rp.code != 220)
		refused(&c, &rp, "the connection");
	conn_cmd(&c, &rp, "EHLO %s", domain);
	if (rp.code != 250)
		refused(&c, &rp, "EHLO");
	int dsn = rp.dsn, eight = rp.eightbit;
	if (!dsn && (o->notify || o->ret || o->envid) && verbose)
		fprintf(stderr, "%s: sesrelayd does not offer DSN: -N, -R "
		    "and -V are ignored\n", progname);
	char params[300] = "";
	if (eight && (o->body == NULL || strcasecmp(o->body, "7BIT") != 0))
		strcat(params, " BODY=8BITMIME");
	else if (eight)
		strcat(params, " BODY=7BIT");
	if (dsn && o->ret != NULL)
		snprintf(params + strlen(params), sizeof(params) -
		    strlen(params), " RET=%s", o->ret);
	if (dsn && o->envid != NULL)
		snprintf(params + strlen(params), sizeof(params) -
		    strlen(params), " ENVID=%s", o->envid);
	conn_cmd(&c, &rp, "MAIL FROM:<%s>%s", sender, params);
	if (rp.code != 250) {
		char what[400];
		snprintf(what, sizeof(what), "the sender <%s>", sender);
		refused(&c, &rp, what);
	}
	for (size_t i = 0; i < rc.n; i++) {
		if (dsn && o->notify != NULL)
			conn_cmd(&c, &rp, "RCPT TO:<%s> NOTIFY=%s", rc.v[i],
			    o->notify);
		else
			conn_cmd(&c, &rp, "RCPT TO:<%s>", rc.v[i]);
		if (rp.code != 250 && rp.code != 251) {
			char what[400];
			snprintf(what, sizeof(what), "the recipient <%s>",
			    rc.v[i]);
			refused(&c, &rp, what);
		}
	}
	conn_cmd(&c, &rp, "DATA");
	if (rp.code != 354)
		refused(&c, &rp, "DATA");

	/* the header, Bcc removed, completed; then the body */
	obuf = xmalloc(2 * CHUNK + 8);
	sm_filter_init(&flt, o->dot_is_data);
	for (pos = 0; sm_field_next(hdr, hdrlen, &pos, &f);) {
		if (sm_field_is(&f, "Bcc") || sm_field_is(&f, "Resent-Bcc"))
			continue;
		send_filtered(&c, &flt, f.name, f.len, obuf);
	}
	if (!flt.bol)
		send_filtered(&c, &flt, "\n", 1, obuf);
	char line[1024];
	size_t n;
	if (!has_from) {
		char *addr = sender[0] != '\0' ? sender : NULL;
		char *tmp = NULL;
		if (addr == NULL)
			xasprintf(&tmp, "%s@%s", login_name(), domain);
		n = sm_make_from(line, sizeof(line), fullname, addr != NULL ?
		    addr : tmp);
		if (n == 0)
			n = sm_make_from(line, sizeof(line), NULL,
			    addr != NULL ? addr : tmp);
		send_filtered(&c, &flt, line, n, obuf);
		free(tmp);
	}
	if (!has_date) {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		n = sm_make_date(line, sizeof(line), &tm);
		send_filtered(&c, &flt, line, n, obuf);
	}
	if (!has_mid) {
		unsigned char r[8];
		time_t now = time(NULL);
		struct tm tm;
		char stamp[32];
		if (getrandom(r, sizeof(r), 0) != sizeof(r))
			die(EX_OSERR, "getrandom: %s", strerror(errno));
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		n = (size_t)snprintf(line, sizeof(line), "Message-ID: <%s.%lu."
		    "%02x%02x%02x%02x%02x%02x%02x%02x@%s>\r\n", stamp,
		    (unsigned long)getpid(), r[0], r[1], r[2], r[3], r[4],
		    r[5], r[6], r[7], domain);
		send_filtered(&c, &flt, line, n, obuf);
	}
	send_filtered(&c, &flt, "\r\n", 2, obuf);
	/* what was read past the header, then the rest of stdin */
	send_filtered(&c, &flt, hdr + hdrlen + seplen, hlen - hdrlen - seplen,
	    obuf);
	free(hdr);
	while (!eof && !flt.done) {
		char in[CHUNK];
		ssize_t r = read(STDIN_FILENO, in, sizeof(in));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			die(EX_IOERR, "reading the message: %s; message not "
			    "sent", strerror(errno));
		if (r == 0)
			break;
		send_filtered(&c, &flt, in, (size_t)r, obuf);
	}
	n = sm_filter_finish(&flt, obuf);
	conn_write(&c, obuf, n);
	conn_write(&c, ".\r\n", 3);
	if (verbose)
		fprintf(stderr, ">>> . (%llu lines)\n", flt.lines);
	conn_reply(&c, &rp);
	if (rp.code != 250)
		refused(&c, &rp, "the message");
	conn_cmd(&c, NULL, "QUIT");
	if (verbose)
		fprintf(stderr, "%s: sent: %s\n", progname, rp.text);
	free(obuf);
	free(sender);
	free(fullname);
	for (size_t i = 0; i < rc.n; i++)
		free(rc.v[i]);
	free(rc.v);
	free(resent.v);
	close(c.fd);
	return 0;
}

int
main(int argc, char *argv[])
{
	struct sm_opts o;
	char err[CONFIG_ERR_MAX];
	struct config *cfg;
	const char *path;
	int rc;

	if (argc > 0 && argv[0] != NULL) {
		const char *b = strrchr(argv[0], '/');
		b = b != NULL ? b + 1 : argv[0];
		if (strcmp(b, "mailq") == 0 || strcmp(b, "newaliases") == 0)
			progname = b;
	}
	log_init(progname, 1, 0);
	signal(SIGPIPE, SIG_IGN);
	if (sm_parse_args(argc, argv, &o, err, sizeof(err)) == -1)
		usage(err);
	verbose = o.verbose;
	switch (o.mode) {
	case SM_MODE_VERSION:
		printf("sendmail.sesrelay %s\n", PACKAGE_VERSION);
		return 0;
	case SM_MODE_NEWALIASES:
		printf("%s: sesrelay has no aliases database (it relays "
		    "everything to Amazon SES); nothing to do\n", progname);
		return 0;
	case SM_MODE_LIST:
		run_cli(&o, "queue");
	case SM_MODE_FLUSH:
		run_cli(&o, "flush");
	default:
		break;
	}
	if (o.nignored > 0 && verbose)
		fprintf(stderr, "%s: %u option(s) accepted and ignored\n",
		    progname, o.nignored);

	path = o.config != NULL ? o.config : SYSCONFDIR "/sesrelay/sesrelay.conf";
	if (access(path, R_OK) == -1)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	if ((cfg = config_load(path, 0, err)) == NULL)
		die(EX_CONFIG, "%s", err);
	if (o.mode == SM_MODE_SMTP) {
		struct conn c;
		const struct listen_spec *ls = pick_listen(cfg);
		int e = conn_open(&c, ls, cfg->timeout);
		if (e != 0) {
			printf("421 4.3.0 sesrelayd is not reachable, try "
			    "again later\r\n");
			fflush(stdout);
			die(EX_TEMPFAIL, "sesrelayd is not reachable at %s: %s",
			    ls->text, strerror(e));
		}
		rc = run_smtp(&c);
		close(c.fd);
	} else
		rc = deliver(&o, cfg);
	config_unref(cfg);
	return rc;
}
