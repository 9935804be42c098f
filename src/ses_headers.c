/* ses_headers.c — see ses_headers.h. */
#include "ses_headers.h"

#include <string.h>

/* Fields a message may carry at most once (see ses_headers.h). */
static const char *const singletons[] = {
	"Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID",
	"In-Reply-To", "References", "Subject", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "DKIM-Signature"
};
#define NSINGLETONS (sizeof(singletons) / sizeof(singletons[0]))
#define FROM_INDEX 1

/* The longest region name an ARN may carry, with its NUL (SES_REGION_MAX
 * in ses_auth.h; not included here to keep the parsers independent). */
#define ARN_REGION_MAX 32

enum line_kind {
	LINE_EMPTY,		/* the empty line ending the header section */
	LINE_CONT,		/* starts with SP or HT: continues a field */
	LINE_FIELD,		/* "Name:" or obsolete "Name WSP* :" */
	LINE_BAD		/* anything else */
};

struct line {
	size_t len;		/* content octets, without the line end */
	size_t next;		/* offset of the following line */
	int terminated;		/* ended by LF (or CRLF), not by the input */
};

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* 1 if p[0..n) equals the NUL-terminated s, ignoring ASCII case. */
static int
ascii_caseeq(const char *p, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++, s++)
		if (*s == '\0' ||
		    ascii_lower((unsigned char)p[i]) != ascii_lower((unsigned char)*s))
			return 0;
	return *s == '\0';
}

/* 1 if p[0..n) starts with the NUL-terminated s, ignoring ASCII case. */
static int
ascii_caseprefix(const char *p, size_t n, const char *s)
{
	size_t sl = strlen(s);
	return n >= sl && ascii_caseeq(p, sl, s);
}

/*
 * Find the line starting at msg[pos] (pos < len).  A line ends with LF,
 * CRLF, or the end of the input; a bare LF counts as a line end here only
 * so that scanning stays meaningful (the server refuses such messages).
 */
static void
next_line(const char *msg, size_t len, size_t pos, struct line *l)
{
	const char *lf = memchr(msg + pos, '\n', len - pos);

	if (lf == NULL) {
		l->len = len - pos;
		l->next = len;
		l->terminated = 0;
		return;
	}
	l->len = (size_t)(lf - (msg + pos));
	l->next = l->len + pos + 1;
	l->terminated = 1;
	if (l->len > 0 && lf[-1] == '\r')
		l->len--;
}

/* Classify line p[0..n); for LINE_FIELD *namelen and *colon are set. */
static enum line_kind
classify(const char *p, size_t n, size_t *namelen, size_t *colon)
{
	size_t i = 0;

	if (n == 0)
		return LINE_EMPTY;
	if (p[0] == ' ' || p[0] == '\t')
		return LINE_CONT;
	/* RFC 5322 2.2: printable US-ASCII except ':'. */
	while (i < n && (unsigned char)p[i] >= 33 &&
	    (unsigned char)p[i] <= 126 && p[i] != ':')
		i++;
	if (i == 0)
		return LINE_BAD;
	*namelen = i;
	/* RFC 5322 4.5.8: obsolete WSP between the name and the colon. */
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i == n || p[i] != ':')
		return LINE_BAD;
	*colon = i;
	return LINE_FIELD;
}

/* Index into singletons[] of the field name p[0..n), or -1. */
static int
singleton_index(const char *p, size_t n)
{
	for (size_t i = 0; i < NSINGLETONS; i++)
		if (ascii_caseeq(p, n, singletons[i]))
			return (int)i;
	return -1;
}

/*
 * Skip the comment starting at p[i] == '(' (nested, with quoted pairs).
 * Returns the offset just past it, or 0 if it is not closed within n.
 */
static size_t
skip_comment(const char *p, size_t n, size_t i)
{
	size_t depth = 0;

	while (i < n) {
		if (p[i] == '\\')
			i++;
		else if (p[i] == '(')
			depth++;
		else if (p[i] == ')' && --depth == 0)
			return i + 1;
		i++;
	}
	return 0;
}

/* 1 if two address tokens may be separated by CFWS (obsolete syntax
 * allows it around "." and "@"); "John Doe" as an address is not one. */
static int
joinable(char prev, char c)
{
	return prev == '.' || prev == '@' || c == '.' || c == '@';
}

/*
 * Check the collected addr-spec a[0..n) (quoted strings kept with their
 * quotes, CFWS removed): printable ASCII only, one '@' outside quotes with
 * something on both sides, no specials or spaces outside quotes.
 */
static int
addr_spec_valid(const char *a, size_t n)
{
	size_t i, at = 0, nat = 0;
	int inq = 0;

	for (i = 0; i < n; i++)
		if ((unsigned char)a[i] < 32 || (unsigned char)a[i] > 126)
			return 0;
	for (i = 0; i < n; i++) {
		char c = a[i];
		if (inq) {
			if (c == '\\')
				i++;
			else if (c == '"')
				inq = 0;
			continue;
		}
		if (c == '"')
			inq = 1;
		else if (c == '@') {
			at = i;
			nat++;
		} else if (c == ' ' || strchr("()<>,;:\\", c) != NULL)
			return 0;
	}
	return !inq && nat == 1 && at > 0 && at + 1 < n;
}

/* An address being collected; over is set if it did not fit. */
struct addr_buf {
	char s[SES_ADDRESS_MAX];
	size_t n;
	int over;
};

static void
addr_put(struct addr_buf *b, char c)
{
	if (b->n + 1 < sizeof(b->s))
		b->s[b->n++] = c;
	else
		b->over = 1;
}

/* 1 if p[0..n) is an RFC 5322 dot-atom-text: atext runs joined by
 * single dots. */
static int
is_dot_atom(const char *p, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (run == 0)
				return 0;
			run = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL))
			run++;
		else
			return 0;
	}
	return run > 0;
}

/*
 * The collected addr-spec b (valid) with the least quoting possible: if
 * its local part, quoted words unquoted and quoted pairs resolved, is a
 * dot-atom, "billing"@x is the same mailbox as billing@x (RFC 5321 4.1.2)
 * and is rewritten so, to be matched as such.
 */
static void
addr_unquote(struct addr_buf *b)
{
	char t[SES_ADDRESS_MAX];
	size_t i, n = 0;
	int inq = 0, quoted = 0;

	for (i = 0; i < b->n; i++) {
		char c = b->s[i];
		if (inq) {
			if (c == '"') {
				inq = 0;
				continue;
			}
			if (c == '\\' && i + 1 < b->n)
				c = b->s[++i];
		} else if (c == '"') {
			inq = quoted = 1;
			continue;
		} else if (c == '@')
			break;
		t[n++] = c;
	}
	if (!quoted || !is_dot_atom(t, n))
		return;
	memcpy(t + n, b->s + i, b->n - i);	/* "@domain" */
	n += b->n - i;
	memcpy(b->s, t, n);
	b->n = n;
}

/*
 * Parse the mailbox of the From: value p[0..n) (folded lines included)
 * that starts at *pos, up to the "," or ";" that ends it, and set *pos
 * past that.  Handles "Name <a@b>", "a@b", "a@b (comment)", quoted
 * display names, comments anywhere, obsolete routes and a group name
 * before the mailboxes.  Returns 1 with the address lower-cased in dst,
 * 0 for an empty list element (obs-mbox-list allows "a@b, , c@d"; a group
 * without members is one too), or -1 if the element is not a mailbox,
 * e.g. "Billing, Inc <b@x>" (an unquoted "," ends the display name
 * "Billing") — then *pos is n.  One pass: each byte is looked at once.
 */
static int
parse_mailbox(const char *p, size_t n, size_t *pos, char dst[SES_ADDRESS_MAX])
{
	struct addr_buf b;
	size_t i = *pos;
	int angle = 0, bad = 0, gap = 0;

	*pos = n;
	b.n = 0;
	b.over = 0;
	while (i < n) {
		char c = p[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			gap = b.n > 0;
			i++;
			continue;
		}
		if (c == '(') {
			if ((i = skip_comment(p, n, i)) == 0)
				return -1;
			gap = b.n > 0;
			continue;
		}
		if (angle == 2) {
			/* after "<a@b>" only CFWS, up to the separator */
			if (c != ',' && c != ';')
				return -1;
			i++;
			break;
		}
		if (!angle && (c == ',' || c == ';')) {
			i++;
			break;		/* end of this mailbox */
		}
		if (c == '>' && !angle)
			return -1;
		if (c == '>') {
			angle = 2;
			i++;
			continue;
		}
		if (c == '<' || c == ':') {
			/* '<' starts the angle-addr after a display name;
			 * ':' ends a group name or an obsolete route.  What
			 * was collected so far was not the address. */
			if (c == '<' && angle)
				return -1;
			if (c == '<')
				angle = 1;
			b.n = 0;
			b.over = bad = gap = 0;
			i++;
			continue;
		}
		if (gap && !joinable(b.s[b.n - 1], c))
			bad = 1;	/* "John Doe": words, not an address */
		gap = 0;
		addr_put(&b, c);
		i++;
		if (c != '"')
			continue;
		/* A quoted string, kept with its quotes and quoted pairs;
		 * folding inside it is unfolded. */
		for (;;) {
			if (i == n)
				return -1;
			c = p[i++];
			if (c == '\r' || c == '\n')
				continue;
			addr_put(&b, c);
			if (c == '"')
				break;
			if (c == '\\' && i < n)
				addr_put(&b, p[i++]);
		}
	}
	if (angle == 0 && b.n == 0) {
		*pos = i;
		return 0;
	}
	if (angle == 1 || bad || b.over || !addr_spec_valid(b.s, b.n))
		return -1;
	addr_unquote(&b);
	for (size_t k = 0; k < b.n; k++)
		dst[k] = (char)ascii_lower((unsigned char)b.s[k]);
	dst[b.n] = '\0';
	*pos = i;
	return 1;
}

int
ses_headers_next_address(const char *value, size_t len, size_t *pos,
    char dst[SES_ADDRESS_MAX])
{
	int r = 0;

	while (*pos < len && (r = parse_mailbox(value, len, pos, dst)) == 0)
		;
	if (r != 1)
		dst[0] = '\0';
	return r;
}

/* The first From: field's value is msg[start..end): note it, and its
 * first address. */
static void
from_end(struct ses_header_info *out, const char *msg, size_t start,
    size_t end)
{
	size_t pos = 0;

	out->from_value = start;
	out->from_value_len = end - start;
	ses_headers_next_address(msg + start, end - start, &pos,
	    out->from_address);
}

void
ses_headers_scan(const char *msg, size_t len, struct ses_header_info *out)
{
	unsigned int seen = 0;
	size_t pos = 0, from_start = 0;
	int in_from = 0, from_done = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		struct line l;
		size_t namelen = 0, colon = 0;
		enum line_kind kind;
		int idx;

		next_line(msg, len, pos, &l);
		kind = classify(msg + pos, l.len, &namelen, &colon);
		if (in_from && kind != LINE_CONT) {
			from_end(out, msg, from_start, pos);
			in_from = 0;
		}
		switch (kind) {
		case LINE_EMPTY:
			out->complete = 1;
			out->header_len = l.next;
			return;
		case LINE_CONT:
			/* Nothing to continue at the very start. */
			if (pos == 0 && l.terminated)
				out->malformed = 1;
			break;
		case LINE_FIELD:
			out->nfields++;
			idx = singleton_index(msg + pos, namelen);
			if (idx < 0)
				break;
			if (seen & (1u << idx)) {
				if (out->duplicate[0] == '\0') {
					memcpy(out->duplicate, msg + pos,
					    namelen);
					out->duplicate[namelen] = '\0';
				}
			}
			seen |= 1u << idx;
			if (idx == FROM_INDEX && !from_done) {
				out->has_from = 1;
				from_done = in_from = 1;
				from_start = pos + colon + 1;
			}
			break;
		case LINE_BAD:
			/* An unterminated last line may just be cut short
			 * (complete == 0 tells the caller); not malformed. */
			if (l.terminated)
				out->malformed = 1;
			break;
		}
		pos = l.next;
	}
	if (in_from)
		from_end(out, msg, from_start, len);
}

static void
emit_str(ses_emit_fn *emit, void *arg, const char *s)
{
	size_t n = strlen(s);
	if (n > 0)
		emit(arg, s, n);
}

size_t
ses_headers_rewrite(const char *hdr, size_t len,
    const struct ses_header_field *ins, size_t nins, ses_emit_fn *emit,
    void *arg)
{
	size_t pos = 0, run = 0, removed = 0;
	int skipping = 0;

	for (size_t i = 0; i < nins; i++) {
		emit_str(emit, arg, ins[i].name);
		emit(arg, ": ", 2);
		if (ins[i].value != NULL)
			emit_str(emit, arg, ins[i].value);
		emit(arg, "\r\n", 2);
	}
	while (pos < len) {
		struct line l;
		size_t namelen = 0, colon = 0;
		enum line_kind kind;

		next_line(hdr, len, pos, &l);
		kind = classify(hdr + pos, l.len, &namelen, &colon);
		if (kind == LINE_EMPTY)
			break;
		if (kind != LINE_CONT) {
			if (skipping) {
				run = pos;
				skipping = 0;
			}
			if (kind == LINE_FIELD &&
			    ascii_caseprefix(hdr + pos, namelen, "X-SES-")) {
				if (pos > run)
					emit(arg, hdr + run, pos - run);
				skipping = 1;
				removed++;
			}
		}
		pos = l.next;
	}
	/* From the empty line on (or the end of a cut-short section),
	 * everything is passed through as is. */
	if (skipping)
		run = pos;
	if (len > run)
		emit(arg, hdr + run, len - run);
	return removed;
}

static int
tag_char(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}

/* Length of the run of tag_char()s at s. */
static size_t
tag_span(const char *s)
{
	size_t n = 0;
	while (tag_char((unsigned char)s[n]))
		n++;
	return n;
}

int
ses_headers_tags_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	while (*s == ' ')
		s++;
	for (;;) {
		n = tag_span(s);
		if (n < 1 || n > 256 || s[n] != '=')
			return 0;
		s += n + 1;
		n = tag_span(s);
		if (n < 1 || n > 256)
			return 0;
		s += n;
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return 1;
		if (*s++ != ',')
			return 0;
		while (*s == ' ')
			s++;
	}
}

int
ses_headers_config_set_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = tag_span(s);
	return n >= 1 && n <= 64 && s[n] == '\0';
}

/*
 * 1 if r[0..n) is shaped like an AWS region: at least three '-'-separated
 * parts of lower-case letters and digits, the first letters only, the last
 * digits only ("us-east-1", "us-gov-west-1"), shorter than ARN_REGION_MAX.
 */
static int
region_valid(const char *r, size_t n)
{
	size_t parts = 0, plen = 0, i;
	int alpha = 1, digit = 1;

	if (n == 0 || n >= ARN_REGION_MAX)
		return 0;
	for (i = 0; i <= n; i++) {
		if (i == n || r[i] == '-') {
			if (plen == 0)
				return 0;
			if (parts == 0 && !alpha)
				return 0;
			if (i == n && !digit)
				return 0;
			parts++;
			plen = 0;
			alpha = digit = 1;
			continue;
		}
		if (r[i] >= 'a' && r[i] <= 'z')
			digit = 0;
		else if (r[i] >= '0' && r[i] <= '9')
			alpha = 0;
		else
			return 0;
		plen++;
	}
	return parts >= 3;
}

int
ses_headers_arn_valid(const char *s, char *region, size_t regionlen)
{
	static const char *const partitions[] = {
		"aws:", "aws-us-gov:", "aws-cn:"
	};
	const char *r;
	size_t i, rlen;

	if (region != NULL && regionlen > 0)
		region[0] = '\0';
	if (s == NULL || strncmp(s, "arn:", 4) != 0)
		return 0;
	s += 4;
	for (i = 0; i < sizeof(partitions) / sizeof(partitions[0]); i++)
		if (strncmp(s, partitions[i], strlen(partitions[i])) == 0)
			break;
	if (i == sizeof(partitions) / sizeof(partitions[0]))
		return 0;
	s += strlen(partitions[i]);
	if (strncmp(s, "ses:", 4) != 0)
		return 0;
	s += 4;
	r = s;
	rlen = strcspn(s, ":");
	if (!region_valid(r, rlen) || s[rlen] != ':')
		return 0;
	s += rlen + 1;
	for (i = 0; i < 12; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	if (s[12] != ':')
		return 0;
	s += 13;
	if (strncmp(s, "identity/", 9) != 0)
		return 0;
	s += 9;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126)
			return 0;
	if (region != NULL) {
		if (rlen >= regionlen)
			return 0;
		memcpy(region, r, rlen);
		region[rlen] = '\0';
	}
	return 1;
}
