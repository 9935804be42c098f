/* sendmail_msg.c — see sendmail_msg.h. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sendmail_msg.h"

/*
 * Command line.
 */

static const char *
base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s != NULL ? s + 1 : p;
}

static int
ascii_ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* Options taking a value (attached or the next argument). */
#define OPTS_WITH_VALUE "ABCFLNORVXbefhopr"

static int
envid_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 100)
		return 0;
	for (; *s != '\0'; s++)
		if (*s < 33 || *s > 126 || *s == '+' || *s == '=')
			return 0;
	return 1;
}

int
sm_notify_valid(const char *s)
{
	static const char *words[] = { "success", "failure", "delay" };
	unsigned seen = 0;
	const char *p = s;

	if (ascii_ieq(s, "never"))
		return 1;
	for (;;) {
		size_t n = strcspn(p, ",");
		size_t w;
		for (w = 0; w < 3; w++)
			if (n == strlen(words[w]) &&
			    strncasecmp(p, words[w], n) == 0)
				break;
		if (w == 3 || (seen & (1u << w)))
			return 0;
		seen |= 1u << w;
		if (p[n] == '\0')
			return 1;
		p += n + 1;
	}
}

static int
opt_value(char c, const char *val, struct sm_opts *o, char *err,
    size_t errlen)
{
	switch (c) {
	case 'b':
		if (strcmp(val, "m") == 0)
			o->mode = SM_MODE_DELIVER;
		else if (strcmp(val, "p") == 0)
			o->mode = SM_MODE_LIST;
		else if (strcmp(val, "s") == 0)
			o->mode = SM_MODE_SMTP;
		else if (strcmp(val, "i") == 0)
			o->mode = SM_MODE_NEWALIASES;
		else {
			snprintf(err, errlen, "-b%s is not supported (only "
			    "-bm, -bp, -bs and -bi are)", val);
			return -1;
		}
		return 0;
	case 'f':
	case 'r':
		o->sender = val;
		return 0;
	case 'F':
		o->fullname = val;
		return 0;
	case 'C':
		o->config = val;
		return 0;
	case 'B':
		if (!ascii_ieq(val, "7BIT") && !ascii_ieq(val, "8BITMIME")) {
			snprintf(err, errlen, "-B %s: the body type must be "
			    "7BIT or 8BITMIME", val);
			return -1;
		}
		o->body = val;
		return 0;
	case 'N':
		if (!sm_notify_valid(val)) {
			snprintf(err, errlen, "-N %s: must be never or a list "
			    "of success, failure, delay", val);
			return -1;
		}
		o->notify = val;
		return 0;
	case 'R':
		if (!ascii_ieq(val, "full") && !ascii_ieq(val, "hdrs")) {
			snprintf(err, errlen, "-R %s: must be full or hdrs",
			    val);
			return -1;
		}
		o->ret = val;
		return 0;
	case 'V':
		if (!envid_valid(val)) {
			snprintf(err, errlen, "-V: the envelope id must be 1 "
			    "to 100 printable ASCII characters without + "
			    "or =");
			return -1;
		}
		o->envid = val;
		return 0;
	case 'o':
		if (strcmp(val, "i") == 0)
			o->dot_is_data = 1;
		else
			o->nignored++;	/* -oem -oee -odb -odi -om ... */
		return 0;
	default:	/* -A -L -O -X -e -h -p: accepted and ignored */
		o->nignored++;
		return 0;
	}
}

int
sm_parse_args(int argc, char *const argv[], struct sm_opts *o, char *err,
    size_t errlen)
{
	int i;

	memset(o, 0, sizeof(*o));
	if (argc > 0 && argv[0] != NULL) {
		const char *b = base_name(argv[0]);
		if (strcmp(b, "mailq") == 0)
			o->mode = SM_MODE_LIST;
		else if (strcmp(b, "newaliases") == 0)
			o->mode = SM_MODE_NEWALIASES;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--version") == 0) {
			o->mode = SM_MODE_VERSION;
			continue;
		}
		for (const char *p = a + 1; *p != '\0'; p++) {
			char c = *p;
			if (c != '\0' && strchr(OPTS_WITH_VALUE, c) != NULL) {
				const char *val;
				if (p[1] != '\0')
					val = p + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else {
					snprintf(err, errlen, "option -%c "
					    "needs a value", c);
					return -1;
				}
				if (opt_value(c, val, o, err, errlen) == -1)
					return -1;
				break;
			}
			switch (c) {
			case 't':
				o->extract = 1;
				break;
			case 'i':
				o->dot_is_data = 1;
				break;
			case 'v':
				o->verbose++;
				break;
			case 'I':
				o->mode = SM_MODE_NEWALIASES;
				break;
			case 'q':	/* -q, -q1h, -qR...: flush the queue */
				o->mode = SM_MODE_FLUSH;
				p += strlen(p) - 1;
				break;
			case 'G': case 'U': case 'c': case 'm': case 'n':
			case 'x': case '7': case '8':
				o->nignored++;
				break;
			default:
				if (isprint((unsigned char)c))
					snprintf(err, errlen, "unknown option "
					    "-%c", c);
				else
					snprintf(err, errlen, "unknown option "
					    "byte 0x%02x", (unsigned char)c);
				return -1;
			}
		}
	}
	o->rcpts = argv + i;
	o->nrcpts = i < argc ? (size_t)(argc - i) : 0;
	return 0;
}

/*
 * Header.
 */

/* Length of a field name at line[0..n) followed by ':', else 0. */
static size_t
field_name_len(const char *line, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == ':')
			return i;
		if (c < 33 || c > 126)
			return 0;
	}
	return 0;
}

int
sm_header_end(const char *buf, size_t len, int eof, size_t *hdrlen,
    size_t *seplen)
{
	size_t p = 0;

	while (p < len) {
		const char *nl = memchr(buf + p, '\n', len - p);
		size_t e, n;
		if (nl == NULL) {
			if (!eof) {
				/* a partial line: decided once it cannot
				 * be a field any more */
				if ((p > 0 && (buf[p] == ' ' || buf[p] == '\t')) ||
				    (len - p == 1 && buf[p] == '\r'))
					return 0;
				for (e = p; e < len; e++) {
					unsigned char c = (unsigned char)buf[e];
					if (c == ':' && e > p)
						return 0;
					if (c < 33 || c > 126 || c == ':')
						break;
				}
				if (e == len)
					return 0;
				*hdrlen = p;
				*seplen = 0;
				return 1;
			}
			e = len;
		} else
			e = (size_t)(nl - buf);
		n = e - p;
		if (n > 0 && buf[e - 1] == '\r' && nl != NULL)
			n--;
		if (n == 0) {			/* the empty line */
			*hdrlen = p;
			*seplen = nl != NULL ? e + 1 - p : e - p;
			return 1;
		}
		if (!(field_name_len(buf + p, n) > 0 ||
		    (p > 0 && (buf[p] == ' ' || buf[p] == '\t')))) {
			*hdrlen = p;		/* the body starts here */
			*seplen = 0;
			return 1;
		}
		p = nl != NULL ? e + 1 : len;
	}
	if (!eof)
		return 0;
	*hdrlen = len;
	*seplen = 0;
	return 1;
}

int
sm_field_next(const char *hdr, size_t len, size_t *pos, struct sm_field *f)
{
	size_t p = *pos, e;

	if (p >= len)
		return 0;
	memset(f, 0, sizeof(*f));
	/* the first line, then continuation lines */
	for (e = p;;) {
		const char *nl = memchr(hdr + e, '\n', len - e);
		e = nl != NULL ? (size_t)(nl - hdr) + 1 : len;
		if (e >= len || (hdr[e] != ' ' && hdr[e] != '\t'))
			break;
	}
	f->len = e - p;
	f->namelen = field_name_len(hdr + p, e - p);
	f->name = hdr + p;
	if (f->namelen > 0) {
		size_t vend = e;
		if (vend > p && hdr[vend - 1] == '\n')
			vend--;
		if (vend > p && hdr[vend - 1] == '\r')
			vend--;
		f->value = hdr + p + f->namelen + 1;
		f->valuelen = vend - (p + f->namelen + 1);
	}
	*pos = e;
	return 1;
}

int
sm_field_is(const struct sm_field *f, const char *name)
{
	return f->namelen == strlen(name) &&
	    strncasecmp(f->name, name, f->namelen) == 0;
}

int
sm_addr_next(const char *v, size_t len, size_t *pos, char addr[SM_ADDR_MAX])
{
	size_t i = *pos;

	for (;;) {
		char plain[SM_ADDR_MAX], ang[SM_ADDR_MAX];
		size_t np = 0, na = 0;
		int has_ang = 0, in_ang = 0, quote = 0, depth = 0, over = 0;
		const char *a;
		size_t n;

		if (i >= len) {
			*pos = len;
			return 0;
		}
#define PUT(ch) do {							\
	if (in_ang) { if (na < SM_ADDR_MAX - 1) ang[na++] = (ch);	\
	    else over = 1; }						\
	else { if (np < SM_ADDR_MAX - 1) plain[np++] = (ch);		\
	    else over = 1; }						\
} while (0)
		for (; i < len; i++) {
			char c = v[i];
			if (quote) {
				if (c == '\\' && i + 1 < len) {
					PUT(c);
					c = v[++i];
				} else if (c == '"')
					quote = 0;
				PUT(c);
				continue;
			}
			if (depth > 0) {
				if (c == '\\')
					i++;
				else if (c == '(')
					depth++;
				else if (c == ')')
					depth--;
				continue;
			}
			if (c == '(') {
				depth = 1;
				continue;
			}
			if (c == '"') {
				quote = 1;
				PUT(c);
				continue;
			}
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
				continue;
			if (in_ang) {
				if (c == '>')
					in_ang = 0;
				else if (c == '<') {
					*pos = len;
					return -1;
				} else
					PUT(c);
				continue;
			}
			if (c == '<') {
				if (has_ang) {
					*pos = len;
					return -1;
				}
				in_ang = has_ang = 1;
				continue;
			}
			if (c == ',' || c == ';') {
				i++;
				break;
			}
			if (c == ':') {		/* a group's name */
				np = 0;
				continue;
			}
			if (c == '>') {
				*pos = len;
				return -1;
			}
			PUT(c);
		}
#undef PUT
		if (quote || depth > 0 || in_ang || over) {
			*pos = len;
			return -1;
		}
		if (has_ang) {
			a = ang;
			n = na;
			/* an obsolete source route: <@a,@b:user@c> */
			if (n > 0 && ang[0] == '@') {
				const char *colon = memchr(ang, ':', n);
				if (colon != NULL) {
					n -= (size_t)(colon + 1 - ang);
					a = colon + 1;
				}
			}
		} else {
			a = plain;
			n = np;
		}
		if (n == 0)
			continue;	/* an empty member, a group's end */
		memcpy(addr, a, n);
		addr[n] = '\0';
		*pos = i;
		return 1;
	}
}

/*
 * Added header fields.
 */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Append s[0..n) to out at *len if it fits (and a NUL): 0, else -1. */
static int
put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > cap)
		return -1;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

static int
put_b64(char *out, size_t cap, size_t *len, const unsigned char *s,
    size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		char q[4];
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		q[0] = b64[(v >> 18) & 63];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		if (put(out, cap, len, q, 4) == -1)
			return -1;
	}
	return 0;
}

size_t
sm_make_from(char *out, size_t cap, const char *fullname, const char *addr)
{
	char name[512];
	size_t len = 0, n = 0;
	int eight = 0, special = 0;

	/* control characters (a CR/LF would inject header lines) -> space */
	for (const char *p = fullname != NULL ? fullname : ""; *p != '\0' &&
	    n < sizeof(name) - 1; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c >= 0x80)
			eight = 1;
		else if (strchr("()<>[]:;@\\,.\"", c) != NULL)
			special = 1;
		name[n++] = (char)c;
	}
	while (n > 0 && name[n - 1] == ' ')
		n--;
	name[n] = '\0';
	if (put(out, cap, &len, "From: ", 6) == -1)
		return 0;
	if (n == 0) {
		if (put(out, cap, &len, addr, strlen(addr)) == -1 ||
		    put(out, cap, &len, "\r\n", 2) == -1)
			return 0;
		return len;
	}
	if (eight) {
		/* encoded-words of at most 45 bytes (75 characters), never
		 * splitting a UTF-8 sequence */
		size_t i = 0;
		while (i < n) {
			size_t k = n - i > 45 ? 45 : n - i;
			while (k > 1 && i + k < n &&
			    ((unsigned char)name[i + k] & 0xc0) == 0x80)
				k--;
			if ((i > 0 && put(out, cap, &len, " ", 1) == -1) ||
			    put(out, cap, &len, "=?UTF-8?B?", 10) == -1 ||
			    put_b64(out, cap, &len, (unsigned char *)name + i,
			    k) == -1 || put(out, cap, &len, "?=", 2) == -1)
				return 0;
			i += k;
		}
	} else if (special) {
		if (put(out, cap, &len, "\"", 1) == -1)
			return 0;
		for (size_t i = 0; i < n; i++) {
			if ((name[i] == '"' || name[i] == '\\') &&
			    put(out, cap, &len, "\\", 1) == -1)
				return 0;
			if (put(out, cap, &len, name + i, 1) == -1)
				return 0;
		}
		if (put(out, cap, &len, "\"", 1) == -1)
			return 0;
	} else if (put(out, cap, &len, name, n) == -1)
		return 0;
	if (put(out, cap, &len, " <", 2) == -1 ||
	    put(out, cap, &len, addr, strlen(addr)) == -1 ||
	    put(out, cap, &len, ">\r\n", 3) == -1)
		return 0;
	return len;
}

size_t
sm_make_date(char *out, size_t cap, const struct tm *tm)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	long off = tm->tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	int n;

	if (tm->tm_wday < 0 || tm->tm_wday > 6 || tm->tm_mon < 0 ||
	    tm->tm_mon > 11)
		return 0;
	if (off < 0)
		off = -off;
	n = snprintf(out, cap, "Date: %s, %d %s %d %02d:%02d:%02d %c%02ld%02ld"
	    "\r\n", days[tm->tm_wday], tm->tm_mday, months[tm->tm_mon],
	    tm->tm_year + 1900, tm->tm_hour, tm->tm_min, tm->tm_sec, sign,
	    off / 60, off % 60);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/*
 * The data filter.
 */

void
sm_filter_init(struct sm_filter *f, int dot_is_data)
{
	memset(f, 0, sizeof(*f));
	f->dot_is_data = dot_is_data;
	f->bol = 1;
}

static size_t
line_end(struct sm_filter *f, char *out)
{
	if (f->dot) {
		f->dot = 0;
		if (!f->dot_is_data) {
			f->done = 1;
			return 0;
		}
		memcpy(out, "..\r\n", 4);
		f->bol = 1;
		f->lines++;
		return 4;
	}
	memcpy(out, "\r\n", 2);
	f->bol = 1;
	f->lines++;
	return 2;
}

size_t
sm_filter_feed(struct sm_filter *f, const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len && !f->done; i++) {
		char c = in[i];
		if (f->cr) {
			f->cr = 0;
			n += line_end(f, out + n);
			if (c == '\n' || f->done)
				continue;	/* CRLF, or the end */
		}
		if (c == '\r') {
			f->cr = 1;
			continue;
		}
		if (c == '\n') {
			n += line_end(f, out + n);
			continue;
		}
		if (f->dot) {
			out[n++] = '.';
			out[n++] = '.';
			f->dot = 0;
		} else if (f->bol && c == '.') {
			f->dot = 1;
			f->bol = 0;
			continue;
		}
		out[n++] = c;
		f->bol = 0;
	}
	return n;
}

size_t
sm_filter_finish(struct sm_filter *f, char *out)
{
	size_t n = 0;

	if (f->done)
		return 0;
	if (f->cr) {
		f->cr = 0;
		return line_end(f, out);
	}
	if (f->dot)
		return line_end(f, out);
	if (!f->bol)
		n = line_end(f, out);
	return n;
}
