/*
 * sendmail_msg.c — options, header block and body filter of
 * sendmail.sesrelay(8); see sendmail_msg.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sendmail_msg.h"
#include "xmalloc.h"

/* ---- options ---- */

/* Postfix's sendmail options that take an argument ("-X arg" or "-Xarg"). */
static const char opts_with_arg[] = "ABCFLNORVXbefhoprq";

int
sm_opts_parse(struct sm_opts *o, int argc, char *argv[], const char *progname,
    char *why, size_t whylen)
{
	memset(o, 0, sizeof(*o));
	o->mode = SM_MODE_DELIVER;
	if (progname != NULL && strcmp(progname, "mailq") == 0)
		o->mode = SM_MODE_MAILQ;
	else if (progname != NULL && strcmp(progname, "newaliases") == 0)
		o->mode = SM_MODE_NEWALIASES;
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		for (const char *p = a + 1; *p != '\0'; p++) {
			char c = *p;
			const char *arg = NULL;
			/* -q alone (flush) and -q<interval>: no separate
			 * argument, like Postfix */
			if (c == 'q') {
				o->mode = SM_MODE_FLUSH;
				break;
			}
			if (strchr(opts_with_arg, c) != NULL) {
				if (p[1] != '\0')
					arg = p + 1;
				else if (i + 1 < argc)
					arg = argv[++i];
				else {
					snprintf(why, whylen, "option -%c "
					    "needs an argument", c);
					return SM_EX_USAGE;
				}
			}
			switch (c) {
			case 'b':
				if (strcmp(arg, "m") == 0)
					o->mode = SM_MODE_DELIVER;
				else if (strcmp(arg, "p") == 0)
					o->mode = SM_MODE_MAILQ;
				else if (strcmp(arg, "s") == 0)
					o->mode = SM_MODE_SMTP;
				else if (strcmp(arg, "i") == 0)
					o->mode = SM_MODE_NEWALIASES;
				else if (strcmp(arg, "V") == 0)
					o->mode = SM_MODE_VERSION;
				else if (strcmp(arg, "d") == 0 ||
				    strcmp(arg, "D") == 0) {
					snprintf(why, whylen, "-b%s: run "
					    "sesrelayd(8) to start the "
					    "daemon", arg);
					return SM_EX_USAGE;
				} else {
					snprintf(why, whylen, "-b%s: mode "
					    "not supported (-bm -bp -bs -bi "
					    "are)", arg);
					return SM_EX_USAGE;
				}
				break;
			case 'C':
				o->config = arg;
				break;
			case 'f':
			case 'r':
				o->sender = arg;
				break;
			case 'F':
				o->fullname = arg;
				break;
			case 'o':
				/* -oi: dots; -oem -oee -odb -odi -oQ...:
				 * accepted, no effect */
				if (strcmp(arg, "i") == 0)
					o->ignore_dots = 1;
				break;
			case 'i':
				o->ignore_dots = 1;
				break;
			case 't':
				o->extract = 1;
				break;
			case 'v':
				o->verbose++;
				break;
			/* accepted and ignored, as Postfix does */
			case '4': case '6': case 'G': case 'I': case 'U':
			case 'c': case 'm': case 'n': case 'x':
			case 'A': case 'B': case 'L': case 'N': case 'O':
			case 'R': case 'V': case 'X': case 'e': case 'h':
			case 'p':
				break;
			default:
				snprintf(why, whylen, "-%c: unknown option",
				    c);
				return SM_EX_USAGE;
			}
			if (arg != NULL)
				break;	/* the rest of this word was arg */
		}
	}
	for (; i < argc; i++) {
		o->rcpts = xreallocarray(o->rcpts, o->nrcpts + 1,
		    sizeof(*o->rcpts));
		o->rcpts[o->nrcpts++] = argv[i];
	}
	return SM_EX_OK;
}

void
sm_opts_free(struct sm_opts *o)
{
	free(o->rcpts);
	o->rcpts = NULL;
	o->nrcpts = 0;
}

/* ---- address lists ---- */

static void
add_addr(const char *s, size_t len, char ***list, size_t *n, size_t *added)
{
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0)
		return;
	char *a = xmalloc(len + 1);
	memcpy(a, s, len);
	a[len] = '\0';
	*list = xreallocarray(*list, *n + 1, sizeof(**list));
	(*list)[(*n)++] = a;
	(*added)++;
}

/*
 * The lexing sm_addr_list and sm_addr_qualify share: an address-list
 * value one step at a time, each step an octet (or a backslash pair in a
 * quoted string or a comment) and what it is.  Inside <> only quotes are
 * tracked: a quoted local part may hold '>', ',' or '@'.
 */
enum addr_octet {
	AO_TEXT,	/* outside quotes, comments and <> */
	AO_QUOTED,	/* in "...": the opening quote and what follows */
	AO_QUOTE_END,	/* the '"' that closes it */
	AO_COMMENT,	/* in (...), the parentheses included */
	AO_ANGLE_OPEN,	/* '<' */
	AO_ANGLE,	/* inside <>, outside quotes */
	AO_ANGLE_CLOSE,	/* '>' */
	AO_GROUP,	/* ':' after a group's display name */
	AO_SEP,		/* ',' or ';' between mailboxes */
	AO_END		/* the end of the value (len 0) */
};

struct addr_lex {
	const char *p;		/* the next octet */
	const char *s;		/* the last step's octets */
	size_t len;
	int depth, quoted, inangle;
};

static enum addr_octet
addr_lex_next(struct addr_lex *x)
{
	char c = *x->p;
	x->s = x->p;
	x->len = c != '\0';
	if (c == '\0')
		return AO_END;
	x->p++;
	if ((x->quoted || x->depth > 0) && c == '\\' && *x->p != '\0') {
		x->p++;
		x->len = 2;
		return x->quoted ? AO_QUOTED : AO_COMMENT;
	}
	if (x->quoted) {
		if (c != '"')
			return AO_QUOTED;
		x->quoted = 0;
		return AO_QUOTE_END;
	}
	if (x->depth > 0) {
		x->depth += (c == '(') - (c == ')');
		return AO_COMMENT;
	}
	if (c == '"') {
		x->quoted = 1;
		return AO_QUOTED;
	}
	if (x->inangle) {
		if (c != '>')
			return AO_ANGLE;
		x->inangle = 0;
		return AO_ANGLE_CLOSE;
	}
	switch (c) {
	case '(':
		x->depth = 1;
		return AO_COMMENT;
	case '<':
		x->inangle = 1;
		return AO_ANGLE_OPEN;
	case ':':
		return AO_GROUP;
	case ',': case ';':
		return AO_SEP;
	default:
		return AO_TEXT;
	}
}

size_t
sm_addr_list(const char *v, char ***list, size_t *n)
{
	size_t added = 0;
	/* one mailbox at a time: its text outside comments and quotes, or
	 * what is inside its last <>, which wins */
	char *plain = xmalloc(strlen(v) + 1);
	size_t pl = 0;
	const char *angle = NULL;
	size_t anglelen = 0;
	struct addr_lex x = { .p = v };
	for (;;) {
		enum addr_octet t = addr_lex_next(&x);
		switch (t) {
		case AO_SEP:
		case AO_END:
			if (angle != NULL)
				add_addr(angle, anglelen, list, n, &added);
			else
				add_addr(plain, pl, list, n, &added);
			pl = 0;
			angle = NULL;
			break;
		case AO_ANGLE_OPEN:
			angle = x.p;
			anglelen = 0;
			break;
		case AO_GROUP:
			pl = 0;		/* "group:" starts the list */
			break;
		case AO_TEXT:
			plain[pl++] = *x.s;
			break;
		case AO_ANGLE:
		case AO_QUOTED:
		case AO_QUOTE_END:
			if (x.inangle)
				anglelen += x.len;
			break;
		case AO_COMMENT:
		case AO_ANGLE_CLOSE:
			break;
		}
		if (t == AO_END)
			break;
	}
	free(plain);
	return added;
}

char *
sm_addr_qualify_one(const char *a, const char *domain)
{
	if (a[0] == '\0' || strchr(a, '@') != NULL)
		return xstrdup(a);
	char *q = xmalloc(strlen(a) + 1 + strlen(domain) + 1);
	sprintf(q, "%s@%s", a, domain);
	return q;
}

/* a mailbox in sm_addr_qualify: where "@domain" would go, if it needs one */
struct mailbox {
	int plain;		/* text outside comments and <> was seen */
	int plain_at;		/* ... with an '@' outside quotes */
	size_t plain_end;	/* output offset after its last octet */
	int angle_open;		/* a '<' was seen */
	int angle;		/* ... and its '>' */
	int angle_at, angle_empty;
	size_t angle_close;	/* output offset of the '>' */
};

static void
mailbox_finish(struct mailbox *m, char *out, size_t *len, const char *domain)
{
	size_t at = 0;
	int need = 0;
	if (m->angle_open) {
		need = m->angle && !m->angle_at && !m->angle_empty;
		at = m->angle_close;
	} else if (m->plain) {
		need = !m->plain_at;
		at = m->plain_end;
	}
	if (need) {
		size_t dl = strlen(domain);
		memmove(out + at + 1 + dl, out + at, *len - at);
		out[at] = '@';
		memcpy(out + at + 1, domain, dl);
		*len += 1 + dl;
	}
	memset(m, 0, sizeof(*m));
}

char *
sm_addr_qualify(const char *v, const char *domain)
{
	size_t n = strlen(v), seps = 1;
	for (size_t i = 0; i < n; i++)
		seps += v[i] == ',' || v[i] == ';';
	char *out = xmalloc(n + seps * (strlen(domain) + 1) + 1);
	size_t len = 0;
	struct mailbox m = { 0 };
	struct addr_lex x = { .p = v };
	for (;;) {
		enum addr_octet t = addr_lex_next(&x);
		/* a mailbox ends before its separator is copied */
		if (t == AO_GROUP)
			memset(&m, 0, sizeof(m));  /* a group's name */
		else if (t == AO_SEP || t == AO_END)
			mailbox_finish(&m, out, &len, domain);
		if (t == AO_END)
			break;
		memcpy(out + len, x.s, x.len);
		len += x.len;
		switch (t) {
		case AO_QUOTED:
			if (x.inangle)
				m.angle_empty = 0;
			break;
		case AO_QUOTE_END:
			if (!x.inangle) {	/* a whole "local part" */
				m.plain = 1;
				m.plain_end = len;
			}
			break;
		case AO_ANGLE_OPEN:	/* the last <...> is the address */
			m.angle_open = 1;
			m.angle = 0;
			m.angle_empty = 1;
			m.angle_at = 0;
			break;
		case AO_ANGLE:
			m.angle_at |= *x.s == '@';
			if (*x.s != ' ' && *x.s != '\t')
				m.angle_empty = 0;
			break;
		case AO_ANGLE_CLOSE:
			m.angle = 1;
			m.angle_close = len - 1;
			break;
		case AO_TEXT:
			if (strchr(" \t\r\n", *x.s) != NULL)
				break;
			m.plain = 1;
			m.plain_at |= *x.s == '@';
			m.plain_end = len;
			break;
		case AO_COMMENT:
		case AO_GROUP:
		case AO_SEP:
		case AO_END:
			break;
		}
	}
	out[len] = '\0';
	return out;
}

/* ---- headers ---- */

int
sm_header_is(const char *line, const char *name)
{
	size_t n = strlen(name);
	if (strncasecmp(line, name, n) != 0)
		return 0;
	const char *p = line + n;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == ':';
}

/* length of a field name at s (0 if s does not start a header field) */
static size_t
field_name(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && s[i] > 32 && s[i] < 127 && s[i] != ':')
		i++;
	if (i == 0)
		return 0;
	size_t j = i;
	while (j < len && (s[j] == ' ' || s[j] == '\t'))
		j++;		/* obsolete "Name :" */
	return j < len && s[j] == ':' ? i : 0;
}

static void
header_value_rcpts(struct sm_headers *h, const char *line)
{
	static const char *const names[] = { "To", "Cc", "Bcc" };
	for (size_t k = 0; k < 3; k++) {
		if (!sm_header_is(line, names[k]))
			continue;
		const char *v = strchr(line, ':') + 1;
		/* unfold: CRLF inside the joined field is white space */
		char *u = xstrdup(v);
		for (char *q = u; *q != '\0'; q++)
			if (*q == '\r' || *q == '\n')
				*q = ' ';
		sm_addr_list(u, &h->rcpts, &h->nrcpts);
		free(u);
	}
}

void
sm_headers_parse(struct sm_headers *h, const char *buf, size_t len, int eof,
    size_t *consumed)
{
	memset(h, 0, sizeof(*h));
	size_t off = 0;
	int first = 1;
	while (off < len) {
		const char *s = buf + off;
		const char *nl = memchr(s, '\n', len - off);
		size_t ll, next;
		if (nl != NULL) {
			ll = (size_t)(nl - s);
			next = off + ll + 1;
		} else if (eof) {
			ll = len - off;
			next = len;
		} else
			break;	/* a partial line: the body's */
		size_t content = ll;
		if (content > 0 && s[content - 1] == '\r')
			content--;
		if (first && content >= 5 && memcmp(s, "From ", 5) == 0) {
			first = 0;	/* mbox separator: dropped */
			off = next;
			continue;
		}
		first = 0;
		if (content > 0 && (s[0] == ' ' || s[0] == '\t') &&
		    h->nlines > 0) {
			char *prev = h->lines[h->nlines - 1];
			size_t pl = strlen(prev);
			prev = xreallocarray(prev, pl + 2 + content + 1, 1);
			memcpy(prev + pl, "\r\n", 2);
			memcpy(prev + pl + 2, s, content);
			prev[pl + 2 + content] = '\0';
			h->lines[h->nlines - 1] = prev;
		} else if (field_name(s, content) > 0 &&
		    memchr(s, '\0', content) == NULL) {
			char *l = xmalloc(content + 1);
			memcpy(l, s, content);
			l[content] = '\0';
			h->lines = xreallocarray(h->lines, h->nlines + 1,
			    sizeof(*h->lines));
			h->lines[h->nlines++] = l;
		} else
			break;
		off = next;
	}
	*consumed = off;
	for (size_t i = 0; i < h->nlines; i++) {
		const char *l = h->lines[i];
		if (sm_header_is(l, "From"))
			h->has_from = 1;
		else if (sm_header_is(l, "Date"))
			h->has_date = 1;
		else if (sm_header_is(l, "Message-ID"))
			h->has_msgid = 1;
		else if (sm_header_is(l, "To"))
			h->has_to = 1;
		header_value_rcpts(h, l);
	}
}

void
sm_headers_free(struct sm_headers *h)
{
	for (size_t i = 0; i < h->nlines; i++)
		free(h->lines[i]);
	free(h->lines);
	for (size_t i = 0; i < h->nrcpts; i++)
		free(h->rcpts[i]);
	free(h->rcpts);
	memset(h, 0, sizeof(*h));
}

struct out {
	char *p;
	size_t len, cap;
};

static void
out_add(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->p = xreallocarray(o->p, o->cap, 1);
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The display name of From:, as a quoted string, or RFC 2047 encoded
 * when it is not plain ASCII. */
static void
out_display_name(struct out *o, const char *name)
{
	int ascii = 1;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p >= 127 || *p < 32)
			ascii = 0;
	if (ascii) {
		out_str(o, "\"");
		for (const char *p = name; *p; p++) {
			if (*p == '"' || *p == '\\')
				out_str(o, "\\");
			out_add(o, p, 1);
		}
		out_str(o, "\"");
		return;
	}
	out_str(o, "=?UTF-8?B?");
	const unsigned char *s = (const unsigned char *)name;
	size_t n = strlen(name);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		char q[4] = { b64[(v >> 18) & 63], b64[(v >> 12) & 63],
		    i + 1 < n ? b64[(v >> 6) & 63] : '=',
		    i + 2 < n ? b64[v & 63] : '=' };
		out_add(o, q, 4);
	}
	out_str(o, "?=");
}

/* the fields whose addresses Postfix's cleanup qualifies */
static int
address_field(const char *line)
{
	static const char *const names[] = { "From", "Sender", "Reply-To",
	    "To", "Cc", "Bcc", "Resent-From", "Resent-Sender", "Resent-To",
	    "Resent-Cc", "Resent-Bcc" };
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (sm_header_is(line, names[k]))
			return 1;
	return 0;
}

char *
sm_headers_render(const struct sm_headers *h, int drop_bcc, const char *from,
    const char *fullname, const char *domain, time_t now,
    unsigned long long rand, size_t *lenp)
{
	struct out o = { 0 };
	out_add(&o, "", 0);
	for (size_t i = 0; i < h->nlines; i++) {
		const char *l = h->lines[i];
		if (drop_bcc && sm_header_is(l, "Bcc"))
			continue;
		if (l[0] == '.')
			out_str(&o, ".");
		if (address_field(l)) {
			size_t name = (size_t)(strchr(l, ':') + 1 - l);
			char *q = sm_addr_qualify(l + name, domain);
			out_add(&o, l, name);
			out_str(&o, q);
			free(q);
		} else
			out_str(&o, l);
		out_str(&o, "\r\n");
	}
	struct tm tm;
	localtime_r(&now, &tm);
	if (!h->has_date) {
		static const char *const day[] = { "Sun", "Mon", "Tue", "Wed",
		    "Thu", "Fri", "Sat" };
		static const char *const mon[] = { "Jan", "Feb", "Mar",
		    "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
		    "Dec" };
		long off = tm.tm_gmtoff / 60;
		char d[96];
		snprintf(d, sizeof(d), "Date: %s, %d %s %d %02d:%02d:%02d "
		    "%c%02ld%02ld\r\n", day[tm.tm_wday % 7], tm.tm_mday,
		    mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
		    labs(off) / 60, labs(off) % 60);
		out_str(&o, d);
	}
	if (!h->has_msgid) {
		char m[64];
		snprintf(m, sizeof(m), "Message-ID: <%04d%02d%02d%02d%02d%02d."
		    "%016llX@", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		    tm.tm_hour, tm.tm_min, tm.tm_sec, rand);
		out_str(&o, m);
		out_str(&o, domain);
		out_str(&o, ">\r\n");
	}
	if (!h->has_from) {
		out_str(&o, "From: ");
		if (fullname != NULL && fullname[0] != '\0') {
			out_display_name(&o, fullname);
			out_str(&o, " <");
			out_str(&o, from);
			out_str(&o, ">\r\n");
		} else {
			out_str(&o, from[0] != '\0' ? from :
			    "MAILER-DAEMON");
			out_str(&o, "\r\n");
		}
	}
	*lenp = o.len;
	return o.p;
}

/* ---- body filter ---- */

void
sm_filter_init(struct sm_filter *f, int ignore_dots)
{
	memset(f, 0, sizeof(*f));
	f->ignore_dots = ignore_dots;
	f->bol = 1;
}

size_t
sm_filter_run(struct sm_filter *f, const char *in, size_t len, char *out)
{
	size_t w = 0;
	for (size_t i = 0; i < len && !f->done; i++) {
		char c = in[i];
		if (c == '\n') {
			if (f->dot) {
				f->done = 1;	/* "." alone: the end */
				break;
			}
			out[w++] = '\r';
			out[w++] = '\n';
			f->cr = 0;
			f->bol = 1;
			continue;
		}
		if (f->cr) {			/* a bare CR: kept as is */
			if (f->dot) {
				out[w++] = '.';
				out[w++] = '.';
				f->dot = 0;
			}
			out[w++] = '\r';
			f->cr = 0;
			f->bol = 0;
		}
		if (c == '\r') {
			f->cr = 1;
			continue;
		}
		if (f->dot) {			/* ".x": stuffed */
			out[w++] = '.';
			out[w++] = '.';
			f->dot = 0;
			f->bol = 0;
		}
		if (f->bol && c == '.') {
			if (f->ignore_dots) {
				out[w++] = '.';
				out[w++] = '.';
			} else
				f->dot = 1;
			f->bol = 0;
			continue;
		}
		out[w++] = c;
		f->bol = 0;
	}
	return w;
}

size_t
sm_filter_end(struct sm_filter *f, char *out)
{
	size_t w = 0;
	if (f->done)
		return 0;
	if (f->dot) {			/* "." at the end without a line end */
		f->done = 1;
		return 0;
	}
	if (f->cr || !f->bol) {		/* no line end on the last line */
		out[w++] = '\r';
		out[w++] = '\n';
	}
	f->cr = 0;
	f->bol = 1;
	return w;
}
