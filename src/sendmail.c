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
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "maildrop_file.h"
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
			    "running?)", c->where, strerror(e));
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

/*
 * The message after DATA: the header block completed, then the body from
 * buf[consumed..len) and the rest of stdin, through the body filter, and
 * the final ".\r\n".  SM_EX_OK, with *werr set if a write failed (the
 * caller reads what the daemon said); SM_EX_IOERR if stdin failed (said;
 * the final dot is not sent, so nothing half is accepted).
 */
static int
stream_message(struct conn *c, const struct sm_opts *o,
    const struct sm_headers *h, char *buf, size_t len, size_t consumed,
    int eof, const char *sender, const char *fullname, const char *domain,
    int *werr)
{
	unsigned long long rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned long long)time(NULL) ^ (unsigned)getpid();
	size_t hl;
	char *hdr = sm_headers_render(h, o->extract, sender, fullname,
	    domain, time(NULL), rnd, &hl);
	*werr = conn_write(c, hdr, hl);
	free(hdr);
	const char *rest = buf + consumed;
	size_t restlen = len - consumed;
	if (*werr == 0 && restlen > 0 && rest[0] != '\n' &&
	    !(restlen > 1 && rest[0] == '\r' && rest[1] == '\n'))
		*werr = conn_write(c, "\r\n", 2);	/* body without the
							 * empty line */
	struct sm_filter f;
	sm_filter_init(&f, o->ignore_dots);
	char *fo = xmalloc(2 * CHUNK + 8);
	int rerr = 0;
	while (*werr == 0 && !f.done) {
		if (restlen > 0) {
			size_t n = restlen > CHUNK ? CHUNK : restlen;
			size_t w = sm_filter_run(&f, rest, n, fo);
			rest += n;
			restlen -= n;
			*werr = conn_write(c, fo, w);
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
		free(fo);
		warnx_("reading the message: %s; message not sent",
		    strerror(rerr));
		return SM_EX_IOERR;
	}
	if (*werr == 0) {
		size_t w = sm_filter_end(&f, fo);
		memcpy(fo + w, ".\r\n", 3);
		*werr = conn_write(c, fo, w + 3);
	}
	free(fo);
	return SM_EX_OK;
}

/* ---- the maildrop: sendmail_fallback = spool (maildrop_file.h) ----
 *
 * Installed setgid sesrelay-drop, the program runs with that group only
 * while it creates or removes its maildrop file: main() lowers it first
 * thing, so the configuration, stdin and the socket are handled as the
 * caller alone. */
static gid_t drop_gid;		/* the setgid group */
static int have_drop_gid;

static void
drop_group(int raise)
{
	if (have_drop_gid && setegid(raise ? drop_gid : getgid()) != 0) {
		warnx_("cannot switch the group: %s", strerror(errno));
		exit(SM_EX_OSERR);
	}
}

struct drop {
	int dirfd;
	char dir[4096];
	char name[MD_NAME_LEN + 1];
};

/* Whether to try the maildrop: the configuration says spool, or it could
 * not be read (then the maildrop is tried where it lets us in: sesrelayd
 * opens it only for spool, see sesrelay.conf(5)). */
static int
drop_wanted(const struct config *cfg)
{
	return cfg == NULL || cfg->sendmail_fallback == SENDMAIL_FALLBACK_SPOOL;
}

/* Create our file in the maildrop: its descriptor, or -1 (said why). */
static int
drop_create(struct drop *d, const struct config *cfg)
{
	snprintf(d->dir, sizeof(d->dir), "%s/maildrop", cfg != NULL ?
	    cfg->spool_dir : CONFIG_DEFAULT_SPOOL_DIR);
	drop_group(1);
	int fd = -1;
	d->dirfd = open(d->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	struct stat st;
	if (d->dirfd < 0) {
		warnx_("no maildrop at %s: %s", d->dir, strerror(errno));
		goto out;
	}
	if (fstat(d->dirfd, &st) != 0 || (st.st_mode & S_IWOTH) ||
	    !(st.st_mode & S_ISVTX)) {
		warnx_("maildrop %s is not safe to use (mode %04o: others "
		    "may write, or it is not sticky); not used", d->dir,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	unsigned char rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		warnx_("getrandom: %s", strerror(errno));
		goto out;
	}
	int n = snprintf(d->name, sizeof(d->name), "%010llx",
	    (unsigned long long)time(NULL) & 0xffffffffffULL);
	for (size_t i = 0; i < sizeof(rnd); i++, n += 2)
		snprintf(d->name + n, sizeof(d->name) - (size_t)n, "%02x",
		    rnd[i]);
	/* 0600 until complete: the reader takes only 0644 files */
	fd = openat(d->dirfd, d->name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		warnx_("cannot write to the maildrop %s: %s", d->dir,
		    strerror(errno));
out:
	drop_group(0);
	if (fd < 0 && d->dirfd >= 0) {
		close(d->dirfd);
		d->dirfd = -1;
	}
	return fd;
}

/* Complete the file: readable (the reader's mark), synced with its
 * directory entry (the group may not open the directory to fsync it, so
 * syncfs).  -1 (errno) on failure. */
static int
drop_finish(int fd)
{
	if (fchmod(fd, 0644) != 0 || fsync(fd) != 0 || syncfs(fd) != 0)
		return -1;
	return 0;
}

static void
drop_discard(struct drop *d)
{
	drop_group(1);
	(void)unlinkat(d->dirfd, d->name, 0);
	drop_group(0);
}

/* The daemon is not reachable: leave the message in the maildrop. */
static int
drop_message(const struct sm_opts *o, const struct config *cfg,
    const struct sm_headers *h, char *buf, size_t len, size_t consumed,
    int eof, const char *sender, const char *const *rcpts, size_t nrcpts,
    const char *fullname, const char *domain, unsigned timeout)
{
	struct drop d = { .dirfd = -1 };
	struct conn c = { .fd = -1, .timeout_ms = (int)timeout * 1000 };
	if ((c.fd = drop_create(&d, cfg)) < 0) {
		warnx_("message not sent");
		return SM_EX_TEMPFAIL;
	}
	size_t el;
	char *env = md_envelope(sender, rcpts, nrcpts, &el);
	int werr = conn_write(&c, env, el);
	free(env);
	int ex = SM_EX_OK;
	if (werr == 0)
		ex = stream_message(&c, o, h, buf, len, consumed, eof, sender,
		    fullname, domain, &werr);
	if (ex == SM_EX_OK && (werr != 0 || drop_finish(c.fd) != 0)) {
		warnx_("writing to the maildrop %s: %s; message not sent",
		    d.dir, strerror(errno));
		ex = errno == ENOSPC || errno == EDQUOT ? SM_EX_TEMPFAIL :
		    SM_EX_IOERR;
	}
	close(c.fd);
	if (ex != SM_EX_OK)
		drop_discard(&d);
	else
		warnx_("message left in the maildrop (%s/%s); sesrelayd "
		    "sends it when it runs", d.dir, d.name);
	close(d.dirfd);
	return ex;
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
	/* "-f root" is root@hostname, as Postfix's myorigin; no -f is the
	 * invoking user@hostname */
	char *given = o->sender != NULL ? unbracket(o->sender) : xstrdup(user);
	char *sender = sm_addr_qualify_one(given, domain);
	free(given);
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

	/* recipients: the arguments, plus To/Cc/Bcc with -t; a bare local
	 * part (cron's "root") gets @hostname */
	char **rcpts = NULL;
	size_t nrcpts = 0;
	for (size_t i = 0; i < o->nrcpts + (o->extract ? h.nrcpts : 0); i++) {
		char *b = unbracket(i < o->nrcpts ? o->rcpts[i] :
		    h.rcpts[i - o->nrcpts]);
		rcpts = xreallocarray(rcpts, nrcpts + 1, sizeof(*rcpts));
		rcpts[nrcpts++] = sm_addr_qualify_one(b, domain);
		free(b);
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
		if (drop_wanted(cfg))
			ex = drop_message(o, cfg, &h, buf, len, consumed, eof,
			    sender, (const char *const *)rcpts, nrcpts,
			    fullname, domain, timeout);
		else {
			warnx_("message not sent");
			ex = SM_EX_TEMPFAIL;
		}
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
	int werr = 0;
	ex = stream_message(&c, o, &h, buf, len, consumed, eof, sender,
	    fullname, domain, &werr);
	if (ex != SM_EX_OK)
		goto out;
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
	for (size_t i = 0; i < nrcpts; i++)
		free(rcpts[i]);
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

/* ---- pickup: sesrelayd runs "sendmail.sesrelay --pickup -C file" as
 * its own user to submit what the maildrop holds (maildrop.h) ---- */

enum pick { PICK_SENT, PICK_RETRY, PICK_BAD };

/* Read into b until it holds a complete envelope; returns its length,
 * or -1 with the reason in why. */
static long
pick_envelope(int fd, struct md_envelope *e, char *b, size_t cap,
    size_t *blen, size_t max_rcpts, const char **why)
{
	*blen = 0;
	for (;;) {
		long el = md_envelope_parse(e, b, *blen, max_rcpts, why);
		if (el != 0)
			return el;
		if (*blen == cap) {
			*why = "an envelope larger than 1 MB";
			return -1;
		}
		ssize_t r = read_in(fd, b + *blen, cap - *blen);
		if (r <= 0) {
			*why = r == 0 ? "the file ends inside the envelope" :
			    strerror(errno);
			return -1;
		}
		*blen += (size_t)r;
	}
}

/* Submit one maildrop file.  why gets the reason for RETRY and BAD, or
 * the daemon's reply for SENT. */
static enum pick
pick_one(const struct config *cfg, int fd, unsigned timeout, char *why,
    size_t whylen)
{
	struct md_envelope e;
	char *b = xmalloc(MD_ENVELOPE_MAX);
	size_t blen;
	const char *bad;
	enum pick res = PICK_BAD;
	struct conn c = { .fd = -1, .timeout_ms = (int)timeout * 1000 };
	long el = pick_envelope(fd, &e, b, MD_ENVELOPE_MAX, &blen,
	    cfg->max_recipients, &bad);
	if (el < 0) {
		snprintf(why, whylen, "malformed: %s", bad);
		free(b);
		return PICK_BAD;
	}
	char text[1100], ehlo[2048];
	int code;
	size_t accepted = 0;
	if (conn_open(&c, cfg) != 0) {
		snprintf(why, whylen, "sesrelayd is not reachable");
		res = PICK_RETRY;
		goto out;
	}
	if ((code = conn_reply(&c, text, sizeof(text), NULL, 0)) != 220 ||
	    conn_cmd(&c, "EHLO localhost") != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), ehlo,
	    sizeof(ehlo))) != 250) {
		snprintf(why, whylen, "no session: %s", code == 0 ?
		    strerror(errno) : text);
		res = PICK_RETRY;
		goto out;
	}
	if (conn_cmd(&c, "MAIL FROM:<%s>%s", e.sender,
	    strstr(ehlo, "8BITMIME\n") != NULL ? " BODY=8BITMIME" : "") != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), NULL, 0)) == 0)
		goto lost;
	if (code != 250) {
		snprintf(why, whylen, "sender <%s> refused: %s", e.sender,
		    text);
		res = code < 500 ? PICK_RETRY : PICK_BAD;
		goto out;
	}
	for (size_t i = 0; i < e.nrcpts; i++) {
		if (conn_cmd(&c, "RCPT TO:<%s>", e.rcpts[i]) != 0 ||
		    (code = conn_reply(&c, text, sizeof(text), NULL, 0)) == 0)
			goto lost;
		if (code == 250 || code == 251)
			accepted++;
		else if (code < 500) {
			snprintf(why, whylen, "recipient <%s>: %s",
			    e.rcpts[i], text);
			res = PICK_RETRY;
			goto out;
		} else
			fprintf(stderr, "%s: recipient <%s> refused, not "
			    "sent to: %s\n", prog, e.rcpts[i], text);
	}
	if (accepted == 0) {
		snprintf(why, whylen, "every recipient refused");
		goto out;
	}
	if (conn_cmd(&c, "DATA") != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), NULL, 0)) == 0)
		goto lost;
	if (code != 354) {
		snprintf(why, whylen, "DATA refused: %s", text);
		res = code < 500 ? PICK_RETRY : PICK_BAD;
		goto out;
	}
	/* the data, checked as it goes: nothing may end it early */
	struct md_data d;
	md_data_init(&d);
	char *out = xmalloc(CHUNK + 2);
	const char *p = b + el;
	size_t n = blen - (size_t)el;
	enum md_status st = MD_MORE;
	for (;;) {
		size_t ol, used;
		if (n > 0) {
			size_t k = n > CHUNK ? CHUNK : n;
			st = md_data_check(&d, p, k, out, &ol, &used);
			if (st == MD_BAD || conn_write(&c, out, ol) != 0)
				break;
			p += used;
			n -= used;
			if (st == MD_END)
				break;
			continue;
		}
		ssize_t r = read_in(fd, b, MD_ENVELOPE_MAX);
		if (r <= 0) {
			d.why = r == 0 ? "the file ends before the final "
			    "line" : strerror(errno);
			st = MD_BAD;
			break;
		}
		p = b;
		n = (size_t)r;
	}
	free(out);
	if (st == MD_END && (n > 0 || read_in(fd, b, 1) != 0)) {
		st = MD_BAD;
		d.why = "data after the final line";
	}
	if (st != MD_END) {
		/* close without the final dot: the daemon drops it all */
		if (st == MD_BAD)
			snprintf(why, whylen, "malformed: %s", d.why);
		else {
			snprintf(why, whylen, "sesrelayd went away: %s",
			    strerror(errno));
			res = PICK_RETRY;
		}
		goto out;
	}
	if (conn_write(&c, ".\r\n", 3) != 0 ||
	    (code = conn_reply(&c, text, sizeof(text), NULL, 0)) == 0)
		goto lost;
	snprintf(why, whylen, "%s", text);
	res = code == 250 ? PICK_SENT : code < 500 ? PICK_RETRY : PICK_BAD;
	if (conn_cmd(&c, "QUIT") == 0)
		(void)conn_reply(&c, text, sizeof(text), NULL, 0);
	goto out;
lost:
	snprintf(why, whylen, "sesrelayd went away: %s", strerror(errno));
	res = PICK_RETRY;
out:
	if (c.fd >= 0)
		close(c.fd);
	md_envelope_free(&e);
	free(b);
	return res;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Submit every complete file of the maildrop, oldest first; a file the
 * daemon takes is removed, one it refuses or that is malformed becomes
 * <name>.bad, one it defers stays (and the round ends).  Files still 0600
 * (being written) are left alone, or removed after an hour (their writer
 * died).  Each outcome is one line on stderr, which sesrelayd logs.
 */
static int
pickup(const struct config *cfg, unsigned timeout)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/maildrop", cfg->spool_dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		warnx_("%s: %s", dir, strerror(errno));
		return SM_EX_TEMPFAIL;
	}
	DIR *dp = fdopendir(dup(dfd));
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while (dp != NULL && (de = readdir(dp)) != NULL)
		if (md_name_ok(de->d_name)) {
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	if (dp != NULL)
		closedir(dp);
	qsort(names, n, sizeof(*names), cmp_names);
	int ex = SM_EX_OK;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		const char *nm = names[i];
		if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;	/* gone */
		if ((st.st_mode & 07777) == 0600 && S_ISREG(st.st_mode)) {
			if (st.st_mtime < time(NULL) - 3600) {
				(void)unlinkat(dfd, nm, 0);
				warnx_("%s (uid %u): removed: incomplete for "
				    "an hour (its writer died)", nm,
				    (unsigned)st.st_uid);
			}
			continue;
		}
		char why[1400], bad[MD_NAME_LEN + 8];
		enum pick res = PICK_BAD;
		int fd = -1;
		if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
		    (st.st_mode & 07777) != 0644)
			snprintf(why, sizeof(why), "not a plain file of mode "
			    "0644 with one link");
		else if ((fd = openat(dfd, nm, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC)) < 0)
			snprintf(why, sizeof(why), "%s", strerror(errno));
		else
			res = pick_one(cfg, fd, timeout, why, sizeof(why));
		if (fd >= 0)
			close(fd);
		switch (res) {
		case PICK_SENT:
			(void)unlinkat(dfd, nm, 0);
			warnx_("%s (uid %u): submitted: %s", nm,
			    (unsigned)st.st_uid, why);
			break;
		case PICK_RETRY:
			warnx_("%s (uid %u): deferred: %s", nm,
			    (unsigned)st.st_uid, why);
			ex = SM_EX_TEMPFAIL;
			break;
		case PICK_BAD:
			snprintf(bad, sizeof(bad), "%s.bad", nm);
			(void)renameat(dfd, nm, dfd, bad);
			warnx_("%s (uid %u): not sent, kept as %s/%s: %s", nm,
			    (unsigned)st.st_uid, dir, bad, why);
			break;
		}
		if (res == PICK_RETRY)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	close(dfd);
	return ex;
}

int
main(int argc, char *argv[])
{
	const char *base = strrchr(argv[0], '/');
	base = base != NULL ? base + 1 : argv[0];
	prog = base;
	signal(SIGPIPE, SIG_IGN);
	if (getegid() != getgid()) {
		/* setgid sesrelay-drop: keep the group for the maildrop
		 * file only */
		drop_gid = getegid();
		have_drop_gid = 1;
		drop_group(0);
	}
	if (argc == 4 && strcmp(argv[1], "--pickup") == 0 &&
	    strcmp(argv[2], "-C") == 0) {
		char err[CONFIG_ERR_MAX];
		struct config *cfg = config_load(argv[3], 0, err);
		if (cfg == NULL) {
			warnx_("%s", err);
			return SM_EX_CONFIG;
		}
		int ex = pickup(cfg, cfg->timeout);
		config_unref(cfg);
		return ex;
	}

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
