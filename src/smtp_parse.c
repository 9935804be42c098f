/* smtp_parse.c — see smtp_parse.h. */
#include "smtp_parse.h"

#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

/*
 * Character classes.  Written out rather than <ctype.h>: the answers must
 * not depend on the locale, and bytes >= 0x80 are never letters.
 */
static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

static int
is_xdigit(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 3.2.3 atext. */
static int
is_atext(int c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Control bytes that make a command line INVALID: C0 except HT, and DEL
 * (this includes NUL, CR and LF). */
static int
is_ctl(int c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Compare n bytes of s with the lower-case word w, ignoring ASCII case. */
static int
ascii_caseeq(const char *s, const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)s[i]) != (unsigned char)w[i])
			return 0;
	return 1;
}

/* s of length n is the lower-case word w, ignoring ASCII case. */
static int
word_is(const char *s, size_t n, const char *w)
{
	return n == strlen(w) && ascii_caseeq(s, w, n);
}

/*
 * Commands.
 */

static const struct {
	const char *name;	/* lower case */
	enum smtp_verb verb;
} verbs[] = {
	{ "helo", SMTP_VERB_HELO },
	{ "ehlo", SMTP_VERB_EHLO },
	{ "mail", SMTP_VERB_MAIL },
	{ "rcpt", SMTP_VERB_RCPT },
	{ "data", SMTP_VERB_DATA },
	{ "rset", SMTP_VERB_RSET },
	{ "noop", SMTP_VERB_NOOP },
	{ "quit", SMTP_VERB_QUIT },
	{ "help", SMTP_VERB_HELP },
	{ "vrfy", SMTP_VERB_VRFY },
	{ "expn", SMTP_VERB_EXPN },
	{ "starttls", SMTP_VERB_STARTTLS },
	{ "auth", SMTP_VERB_AUTH },
	{ "bdat", SMTP_VERB_BDAT },
};

static const char *
skip_spaces(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

enum smtp_verb
smtp_parse_command(const char *line, size_t len, const char **args)
{
	const char *end = line + len, *p, *q, *kw, *unused;
	enum smtp_verb verb = SMTP_VERB_UNKNOWN;
	size_t i, kwlen;

	if (args == NULL)
		args = &unused;
	*args = NULL;
	if (len == 0)
		return SMTP_VERB_INVALID;
	for (i = 0; i < len; i++)
		if (is_ctl((unsigned char)line[i]))
			return SMTP_VERB_INVALID;

	/* The verb is everything up to the first space: "NOOPX" is no NOOP. */
	for (p = line; p < end && *p != ' '; p++)
		;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (word_is(line, (size_t)(p - line), verbs[i].name)) {
			verb = verbs[i].verb;
			break;
		}
	}
	q = skip_spaces(p, end);

	if (verb != SMTP_VERB_MAIL && verb != SMTP_VERB_RCPT) {
		*args = q;
		return verb;
	}
	/* "MAIL" SP+ "FROM:" SP* args, "RCPT" SP+ "TO:" SP* args. */
	kw = verb == SMTP_VERB_MAIL ? "from:" : "to:";
	kwlen = strlen(kw);
	if (q == p || (size_t)(end - q) < kwlen || !ascii_caseeq(q, kw, kwlen))
		return verb;
	*args = skip_spaces(q + kwlen, end);
	return verb;
}

/*
 * Paths (RFC 5321 4.1.2).  The scanners take [p, end) and return the
 * position after what they recognised, or NULL on a syntax error.
 */

/* Dot-string = Atom *("." Atom) */
static const char *
scan_dot_string(const char *p, const char *end)
{
	for (;;) {
		const char *atom = p;

		while (p < end && is_atext((unsigned char)*p))
			p++;
		if (p == atom)
			return NULL;
		if (p == end || *p != '.')
			return p;
		p++;
	}
}

/* Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE */
static const char *
scan_quoted_string(const char *p, const char *end)
{
	unsigned char c;

	if (p == end || *p != '"')
		return NULL;
	for (p++; p < end; p++) {
		c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c == '\\') {
			if (++p == end)
				return NULL;
			c = (unsigned char)*p;
		}
		if (c < 32 || c > 126)
			return NULL;
	}
	return NULL;
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str] */
static const char *
scan_domain(const char *p, const char *end)
{
	for (;;) {
		if (p == end || !is_alnum((unsigned char)*p))
			return NULL;
		while (p < end && (is_alnum((unsigned char)*p) || *p == '-'))
			p++;
		if (p[-1] == '-')
			return NULL;
		if (p == end || *p != '.')
			return p;
		p++;
	}
}

/* IPv4-address-literal = Snum 3("." Snum), the whole of [p, end). */
static int
is_ipv4(const char *p, const char *end)
{
	int part, n, v;

	for (part = 0; part < 4; part++) {
		if (part > 0) {
			if (p == end || *p != '.')
				return 0;
			p++;
		}
		for (n = 0, v = 0; p < end && is_digit((unsigned char)*p) &&
		    n < 3; p++, n++)
			v = v * 10 + (*p - '0');
		if (n == 0 || v > 255)
			return 0;
	}
	return p == end;
}

/* address-literal = "[" (IPv4 / "IPv6:" IPv6) "]"; general address
 * literals have no registered tag other than IPv6 and are refused. */
static const char *
scan_address_literal(const char *p, const char *end)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr in6;
	const char *close;
	size_t n;

	if (p == end || *p != '[')
		return NULL;
	if ((close = memchr(p, ']', (size_t)(end - p))) == NULL)
		return NULL;
	p++;
	if (close - p > 5 && ascii_caseeq(p, "ipv6:", 5)) {
		p += 5;
		n = (size_t)(close - p);
		if (n >= sizeof(buf))
			return NULL;
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (inet_pton(AF_INET6, buf, &in6) != 1)
			return NULL;
	} else if (!is_ipv4(p, close))
		return NULL;
	return close + 1;
}

/* A-d-l ":" where A-d-l = At-domain *("," At-domain), At-domain = "@" Domain.
 * Returns p unchanged if there is no source route. */
static const char *
skip_source_route(const char *p, const char *end)
{
	if (p == end || *p != '@')
		return p;
	for (;;) {
		p = scan_domain(p + 1, end);
		if (p == NULL || p == end)
			return NULL;
		if (*p == ':')
			return p + 1;
		if (*p != ',' || ++p == end || *p != '@')
			return NULL;
	}
}

/* Mailbox = Local-part "@" (Domain / address-literal), the whole of
 * [p, end); a Local-part alone is accepted with *has_domain = 0.
 * Returns 0, or -1 on a syntax error. */
static int
check_mailbox(const char *p, const char *end, int *has_domain)
{
	const char *q;

	if (p < end && *p == '"')
		q = scan_quoted_string(p, end);
	else
		q = scan_dot_string(p, end);
	if (q == NULL)
		return -1;
	if (q == end) {
		*has_domain = 0;
		return 0;
	}
	if (*q != '@')
		return -1;
	q++;
	if (q < end && *q == '[')
		q = scan_address_literal(q, end);
	else
		q = scan_domain(q, end);
	if (q != end)
		return -1;
	*has_domain = 1;
	return 0;
}

/*
 * Copy the mailbox [p, end), whose local part is a valid Quoted-string,
 * to out (at least end - p + 1 bytes) with the least quoting possible
 * (RFC 5321 4.1.2): if the string inside the quotes, quoted pairs
 * resolved, is a Dot-string, "billing"@x is the same mailbox as
 * billing@x, and is written so, to be matched as such.
 */
static void
unquote_local(const char *p, const char *end, char *out)
{
	const char *q = scan_quoted_string(p, end);	/* at the "@" */
	size_t n = 0;

	for (const char *c = p + 1; c < q - 1; c++) {
		if (*c == '\\')
			c++;
		out[n++] = *c;
	}
	if (n == 0 || scan_dot_string(out, out + n) != out + n)
		n = 0;		/* it needs its quotes */
	else
		p = q;
	memcpy(out + n, p, (size_t)(end - p));
	out[n + (size_t)(end - p)] = '\0';
}

static enum smtp_path_result
fail(const char **why, enum smtp_path_result r, const char *text)
{
	if (why != NULL)
		*why = text;
	return r;
}

#define WHY_SYNTAX	"Syntax error in mailbox address"

/*
 * Parse the path at the start of args into address (rcpt: a RCPT path,
 * where "<>" is refused and "<postmaster>" accepted).  *rest is set to
 * the byte after the path.
 */
static enum smtp_path_result
parse_path(const char *args, int rcpt, char address[SMTP_PATH_MAX],
    const char **rest, const char **why)
{
	const char *p = args, *q, *start, *end;
	int bracket, closed = 0, in_quote = 0, high = 0, has_domain;
	size_t pathlen;

	while (*p == ' ')
		p++;
	bracket = *p == '<';
	if (bracket) {
		/* Find the ">", which may also appear in a quoted local part. */
		for (q = p + 1; *q != '\0'; q++) {
			if ((unsigned char)*q >= 0x80)
				high = 1;
			if (in_quote) {
				if (*q == '\\' && q[1] != '\0') {
					if ((unsigned char)*++q >= 0x80)
						high = 1;
				} else if (*q == '"')
					in_quote = 0;
			} else if (*q == '"')
				in_quote = 1;
			else if (*q == '>') {
				closed = 1;
				break;
			} else if (*q == ' ')
				break;
		}
		start = p + 1;
		end = q;
		pathlen = (size_t)(q - p) + (size_t)closed;
		*rest = q + closed;
	} else {
		/* Postfix-style bare address: up to the first space. */
		for (q = p; *q != '\0' && *q != ' '; q++)
			if ((unsigned char)*q >= 0x80)
				high = 1;
		start = p;
		end = q;
		pathlen = (size_t)(q - p) + 2;
		*rest = q;
	}

	if (pathlen > SMTP_PATH_MAX)
		return fail(why, SMTP_PATH_TOO_LONG, "Path too long");
	if (high)
		return fail(why, SMTP_PATH_NON_ASCII,
		    "Non-ASCII address not supported");
	if (bracket && !closed)
		return fail(why, SMTP_PATH_SYNTAX,
		    "Missing \">\" after mailbox address");
	if (start == end) {
		if (!bracket)
			return fail(why, SMTP_PATH_SYNTAX, "Missing address");
		if (rcpt)
			return fail(why, SMTP_PATH_SYNTAX,
			    "Null recipient address not allowed");
		address[0] = '\0';
		return SMTP_PATH_OK;
	}
	if (bracket && (start = skip_source_route(start, end)) == NULL)
		return fail(why, SMTP_PATH_SYNTAX, WHY_SYNTAX);
	if (check_mailbox(start, end, &has_domain) == -1)
		return fail(why, SMTP_PATH_SYNTAX, WHY_SYNTAX);
	/* RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" needs no domain. */
	if (!has_domain && !(rcpt &&
	    word_is(start, (size_t)(end - start), "postmaster")))
		return fail(why, SMTP_PATH_SYNTAX,
		    "Mailbox address must include a domain");

	/* pathlen <= SMTP_PATH_MAX counts at least "<" and ">". */
	if (*start == '"' && has_domain)
		unquote_local(start, end, address);
	else {
		memcpy(address, start, (size_t)(end - start));
		address[end - start] = '\0';
	}
	return SMTP_PATH_OK;
}

/* SIZE=1*DIGIT, without overflow. */
static int
parse_size(const char *v, size_t n, uint64_t *out)
{
	uint64_t size = 0;
	size_t i;
	unsigned d;

	for (i = 0; i < n; i++) {
		if (!is_digit((unsigned char)v[i]))
			return -1;
		d = (unsigned)(v[i] - '0');
		if (size > (UINT64_MAX - d) / 10)
			return -1;
		size = size * 10 + d;
	}
	*out = size;
	return 0;
}

/* RFC 3461 xtext: xchar (33..126 but "+" and "=") or "+" 2HEXDIG. */
static int
is_xtext(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i] == '+') {
			if (n - i < 3 || !is_xdigit((unsigned char)v[i + 1]) ||
			    !is_xdigit((unsigned char)v[i + 2]))
				return 0;
			i += 2;
		} else if ((unsigned char)v[i] < 33 ||
		    (unsigned char)v[i] > 126 || v[i] == '=')
			return 0;
	}
	return 1;
}

#define SEEN_SIZE	0x1
#define SEEN_BODY	0x2
#define SEEN_AUTH	0x4

/*
 * Mail-parameters = esmtp-param *(SP esmtp-param) after the path; more
 * spaces and trailing spaces are tolerated.  m is NULL for RCPT, which
 * takes none.
 */
static enum smtp_path_result
parse_params(const char *p, struct smtp_mail_args *m, const char **why)
{
	const char *kw, *val;
	size_t kwlen, vallen;
	unsigned seen = 0, bit;

	if (*p != '\0' && *p != ' ')
		return fail(why, SMTP_PATH_SYNTAX, WHY_SYNTAX);
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return SMTP_PATH_OK;

		/* esmtp-keyword ["=" esmtp-value] */
		kw = p;
		if (!is_alnum((unsigned char)*p))
			return fail(why, SMTP_PATH_SYNTAX,
			    "Syntax error in parameters");
		while (is_alnum((unsigned char)*p) || *p == '-')
			p++;
		kwlen = (size_t)(p - kw);
		val = NULL;
		vallen = 0;
		if (*p == '=') {
			val = ++p;
			while ((unsigned char)*p >= 33 &&
			    (unsigned char)*p <= 126 && *p != '=')
				p++;
			vallen = (size_t)(p - val);
			if (vallen == 0)
				return fail(why, SMTP_PATH_SYNTAX,
				    "Syntax error in parameters");
		}
		if (*p != ' ' && *p != '\0')
			return fail(why, SMTP_PATH_SYNTAX,
			    "Syntax error in parameters");

		if (m == NULL)
			return fail(why, SMTP_PATH_UNKNOWN_PARAM,
			    "RCPT parameters not supported");
		if (word_is(kw, kwlen, "size")) {
			bit = SEEN_SIZE;
			if (val == NULL || parse_size(val, vallen, &m->size))
				return fail(why, SMTP_PATH_SYNTAX,
				    "Invalid SIZE parameter");
			m->has_size = 1;
		} else if (word_is(kw, kwlen, "body")) {
			bit = SEEN_BODY;
			if (val != NULL && word_is(val, vallen, "7bit"))
				m->body = SMTP_BODY_7BIT;
			else if (val != NULL && word_is(val, vallen, "8bitmime"))
				m->body = SMTP_BODY_8BITMIME;
			else
				return fail(why, SMTP_PATH_SYNTAX,
				    "Invalid BODY parameter");
		} else if (word_is(kw, kwlen, "auth")) {
			bit = SEEN_AUTH;
			if (val == NULL || !is_xtext(val, vallen))
				return fail(why, SMTP_PATH_SYNTAX,
				    "Invalid AUTH parameter");
		} else
			return fail(why, SMTP_PATH_UNKNOWN_PARAM,
			    "Unsupported MAIL parameter");
		if (seen & bit)
			return fail(why, SMTP_PATH_SYNTAX,
			    "Duplicate MAIL parameter");
		seen |= bit;
	}
}

enum smtp_path_result
smtp_parse_mail_args(const char *args, struct smtp_mail_args *out,
    const char **why)
{
	enum smtp_path_result r;
	const char *rest;

	memset(out, 0, sizeof(*out));
	out->body = SMTP_BODY_7BIT;
	if (args == NULL)
		return fail(why, SMTP_PATH_SYNTAX,
		    "Syntax: MAIL FROM:<address>");
	if ((r = parse_path(args, 0, out->address, &rest, why)) != SMTP_PATH_OK)
		return r;
	return parse_params(rest, out, why);
}

enum smtp_path_result
smtp_parse_rcpt_args(const char *args, char address[SMTP_PATH_MAX],
    const char **why)
{
	enum smtp_path_result r;
	const char *rest;

	address[0] = '\0';
	if (args == NULL)
		return fail(why, SMTP_PATH_SYNTAX, "Syntax: RCPT TO:<address>");
	if ((r = parse_path(args, 1, address, &rest, why)) != SMTP_PATH_OK)
		return r;
	return parse_params(rest, NULL, why);
}

/*
 * Replies.
 */

int
smtp_parse_reply_line(const char *line, size_t len, int *code, int *last,
    const char **text)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !is_digit((unsigned char)line[1]) ||
	    !is_digit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*last = len == 3 || line[3] == ' ';
	*text = len == 3 ? line + 3 : line + 4;
	return 0;
}

size_t
smtp_parse_enhanced_code(const char *text, size_t len,
    char out[SMTP_ENHANCED_MAX])
{
	size_t i, n;
	int part;

	out[0] = '\0';
	if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') ||
	    text[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && is_digit((unsigned char)text[i]); i++)
			if (++n > 3)
				return 0;
		if (n == 0)
			return 0;
		if (part == 0) {
			if (i == len || text[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && text[i] != ' ')
		return 0;
	memcpy(out, text, i);
	out[i] = '\0';
	return i < len ? i + 1 : i;
}

/*
 * The DATA stream.  Bytes not yet emitted are either a run of the current
 * buffer (emitted in one call when something must be left out or the
 * buffer ends) or held back in the state: the "." at the start of a line,
 * and the CR after it, until the next byte tells what they are.
 */

enum {
	DATA_SOL,	/* at the start of a line: after CRLF, or the first */
	DATA_MID,	/* inside a line */
	DATA_CR,	/* after a CR inside a line: CRLF or bare CR? */
	DATA_DOT,	/* after "." at the start of a line (held back) */
	DATA_DOTCR,	/* after "." CR at the start of a line (held back) */
	DATA_LF,	/* right after a bare LF */
	DATA_LFDOT,	/* after a bare LF and "." */
	DATA_LFDOTCR,	/* after a bare LF, "." and CR */
	DATA_DONE	/* the final "." CRLF has been read */
};

static void
data_line_add(struct smtp_data_reader *r, size_t n)
{
	r->line_len += n;
	/* SMTP_LINE_MAX includes the CRLF, which line_len does not. */
	if (r->line_len > SMTP_LINE_MAX - 2)
		r->flags |= SMTP_DATA_LONG_LINE;
}

static void
data_emit(struct smtp_data_reader *r, smtp_data_emit_fn *emit, void *arg,
    const char *p, size_t n)
{
	if (n == 0)
		return;
	r->total += n;
	emit(arg, p, n);
}

void
smtp_data_init(struct smtp_data_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->state = DATA_SOL;
}

size_t
smtp_data_feed(struct smtp_data_reader *r, const char *buf, size_t len,
    smtp_data_emit_fn *emit, void *arg, int *done)
{
	const char *cr = NULL, *lf;
	size_t i = 0, run = 0, stop;	/* buf[run..i) is not yet emitted */
	int cr_known = 0;

	*done = r->state == DATA_DONE;
	if (*done)
		return 0;

	/* Each case consumes a byte, or changes state and lets the next
	 * case look at the same byte (never twice without progress). */
	while (i < len) {
		switch (r->state) {
		case DATA_SOL:
			if (buf[i] == '.') {
				/* Held back: unstuffed, or the end. */
				data_emit(r, emit, arg, buf + run, i - run);
				run = ++i;
				r->state = DATA_DOT;
			} else
				r->state = DATA_MID;
			break;
		case DATA_DOT:
			if (buf[i] == '\r') {
				run = ++i;
				r->state = DATA_DOTCR;
				break;
			}
			if (buf[i] == '\n')
				r->flags |= SMTP_DATA_LOOSE_END;
			/* ".x" is "x", "..x" is ".x": the dot is dropped. */
			r->state = DATA_MID;
			break;
		case DATA_DOTCR:
			if (buf[i] == '\n') {
				data_emit(r, emit, arg, buf + run, i - run);
				r->state = DATA_DONE;
				*done = 1;
				return i + 1;
			}
			r->flags |= SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_CR;
			data_emit(r, emit, arg, buf + run, i - run);
			data_emit(r, emit, arg, "\r", 1);
			run = i;
			data_line_add(r, 1);
			r->state = DATA_MID;
			break;
		case DATA_MID:
			/* The hot path: skip to the next CR or LF. */
			if (!cr_known || (cr != NULL && cr < buf + i)) {
				cr = memchr(buf + i, '\r', len - i);
				cr_known = 1;
			}
			stop = cr != NULL ? (size_t)(cr - buf) : len;
			if ((lf = memchr(buf + i, '\n', stop - i)) != NULL)
				stop = (size_t)(lf - buf);
			data_line_add(r, stop - i);
			if ((i = stop) == len)
				break;
			if (buf[i] == '\r')
				r->state = DATA_CR;
			else {
				r->flags |= SMTP_DATA_BARE_LF;
				data_line_add(r, 1);
				r->state = DATA_LF;
			}
			i++;
			break;
		case DATA_CR:
		case DATA_LFDOTCR:
			if (buf[i] == '\n') {
				i++;
				r->line_len = 0;
				r->state = DATA_SOL;
				break;
			}
			r->flags |= SMTP_DATA_BARE_CR;
			if (r->state == DATA_LFDOTCR)
				r->flags |= SMTP_DATA_LOOSE_END;
			data_line_add(r, 1);
			r->state = DATA_MID;
			break;
		case DATA_LF:
			/* Not a line start, but a "." here shows a client
			 * that thinks it is. */
			if (buf[i] == '.') {
				data_line_add(r, 1);
				i++;
				r->state = DATA_LFDOT;
			} else
				r->state = DATA_MID;
			break;
		case DATA_LFDOT:
			if (buf[i] == '\r') {
				i++;
				r->state = DATA_LFDOTCR;
				break;
			}
			if (buf[i] == '\n')
				r->flags |= SMTP_DATA_LOOSE_END;
			r->state = DATA_MID;
			break;
		default:
			/* DATA_DONE returned above; nothing else exists. */
			abort();
		}
	}
	data_emit(r, emit, arg, buf + run, len - run);
	return len;
}
