/*
 * maildrop_file.c — the maildrop file format (see maildrop_file.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop_file.h"
#include "xmalloc.h"

int
md_name_ok(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++)
		if (!((s[n] >= '0' && s[n] <= '9') ||
		    (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == MD_NAME_LEN;
}

int
md_addr_ok(const char *a, const char **why)
{
	if (strlen(a) > MD_ADDR_MAX) {
		*why = "an address longer than 900 octets";
		return 0;
	}
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p < 32 || *p == 127 || *p == '<' || *p == '>') {
			*why = *p < 32 || *p == 127 ?
			    "a control character in an address" :
			    "an angle bracket in an address";
			return 0;
		}
	return 1;
}

char *
md_envelope(const char *sender, const char *const *rcpts, size_t n,
    size_t *lenp)
{
	size_t len = strlen(MD_MAGIC) + strlen("sender \n") + strlen(sender) +
	    1;
	for (size_t i = 0; i < n; i++)
		len += strlen("rcpt \n") + strlen(rcpts[i]);
	char *b = xmalloc(len + 1), *p = b;
	p += sprintf(p, "%ssender %s\n", MD_MAGIC, sender);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "rcpt %s\n", rcpts[i]);
	*p++ = '\n';
	*lenp = (size_t)(p - b);
	return b;
}

void
md_envelope_free(struct md_envelope *e)
{
	free(e->sender);
	for (size_t i = 0; i < e->nrcpts; i++)
		free(e->rcpts[i]);
	free(e->rcpts);
	memset(e, 0, sizeof(*e));
}

static char *
copy(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

long
md_envelope_parse(struct md_envelope *e, const char *buf, size_t len,
    size_t max_rcpts, const char **why)
{
	memset(e, 0, sizeof(*e));
	size_t ml = strlen(MD_MAGIC);
	if (len < ml)
		return memcmp(buf, MD_MAGIC, len) == 0 ? 0 :
		    (*why = "not a maildrop file (no sesrelay-maildrop 1 "
		    "line)", -1);
	if (memcmp(buf, MD_MAGIC, ml) != 0) {
		*why = "not a maildrop file (no sesrelay-maildrop 1 line)";
		return -1;
	}
	size_t off = ml;
	for (;;) {
		const char *nl = memchr(buf + off, '\n', len - off);
		if (nl == NULL) {
			if (len - off > MD_ADDR_MAX + 16) {
				*why = "an envelope line too long";
				goto bad;
			}
			md_envelope_free(e);
			return 0;
		}
		const char *line = buf + off;
		size_t ll = (size_t)(nl - line);
		off += ll + 1;
		if (ll == 0)
			break;
		char *addr;
		const char *bad;
		if (ll >= 7 && memcmp(line, "sender ", 7) == 0) {
			if (e->sender != NULL) {
				*why = "two sender lines";
				goto bad;
			}
			if (e->nrcpts > 0) {
				*why = "the sender line after a rcpt line";
				goto bad;
			}
			addr = copy(line + 7, ll - 7);
			if (!md_addr_ok(addr, &bad) ||
			    memchr(line, '\0', ll) != NULL) {
				free(addr);
				*why = memchr(line, '\0', ll) != NULL ?
				    "a NUL in the envelope" : bad;
				goto bad;
			}
			e->sender = addr;
		} else if (ll >= 5 && memcmp(line, "rcpt ", 5) == 0) {
			if (e->sender == NULL) {
				*why = "a rcpt line before the sender line";
				goto bad;
			}
			if (e->nrcpts == max_rcpts) {
				*why = "more recipients than max_recipients";
				goto bad;
			}
			if (ll == 5) {
				*why = "an empty recipient";
				goto bad;
			}
			addr = copy(line + 5, ll - 5);
			if (!md_addr_ok(addr, &bad) ||
			    memchr(line, '\0', ll) != NULL) {
				free(addr);
				*why = memchr(line, '\0', ll) != NULL ?
				    "a NUL in the envelope" : bad;
				goto bad;
			}
			e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1,
			    sizeof(*e->rcpts));
			e->rcpts[e->nrcpts++] = addr;
		} else {
			*why = "an envelope line that is neither sender nor "
			    "rcpt";
			goto bad;
		}
	}
	if (e->sender == NULL || e->nrcpts == 0) {
		*why = e->sender == NULL ? "no sender line" : "no recipient";
		goto bad;
	}
	return (long)off;
bad:
	md_envelope_free(e);
	return -1;
}

/* Where the checker is in a line.  A "." at the start of a line is held
 * back until the next octets show whether it is the final line. */
enum { D_BOL, D_LINE, D_CR, D_DOT, D_DOTCR, D_END, D_BAD };

void
md_data_init(struct md_data *d)
{
	d->state = D_BOL;
	d->why = NULL;
}

static enum md_status
bad(struct md_data *d, const char *why)
{
	d->state = D_BAD;
	d->why = why;
	return MD_BAD;
}

enum md_status
md_data_check(struct md_data *d, const char *in, size_t len, char *out,
    size_t *outlen, size_t *used)
{
	size_t o = 0;
	*outlen = 0;
	*used = 0;
	if (d->state == D_BAD || d->state == D_END)
		return d->state == D_BAD ? MD_BAD : MD_END;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		switch (d->state) {
		case D_BOL:
		case D_LINE:
			if (c == '\n')
				return bad(d, "a bare LF in the message");
			if (c == '.' && d->state == D_BOL) {
				d->state = D_DOT;	/* held */
				continue;
			}
			d->state = c == '\r' ? D_CR : D_LINE;
			break;
		case D_CR:
			if (c != '\n')
				return bad(d, "a bare CR in the message");
			d->state = D_BOL;
			break;
		case D_DOT:
			if (c == '\n')
				return bad(d, "a bare LF in the message");
			if (c == '\r') {
				d->state = D_DOTCR;	/* still held */
				continue;
			}
			out[o++] = '.';	/* a stuffed line: send the dot */
			d->state = D_LINE;
			break;
		case D_DOTCR:
			if (c != '\n')
				return bad(d, "a bare CR in the message");
			d->state = D_END;
			*outlen = o;
			*used = i + 1;
			return MD_END;
		}
		out[o++] = c;
	}
	*outlen = o;
	*used = len;
	return MD_MORE;
}
