/*
 * sendmail_msg.h — the pure part of sendmail.sesrelay(8): command line,
 * header scan, missing-header completion, and the LF->CRLF/dot-stuffing
 * filter that carries a message from stdin into SMTP DATA.
 *
 * Nothing here does I/O, logs or keeps globals; every function works on
 * the bytes and buffers it is given, so it is unit-tested by
 * tests/check_sendmail.c.  Buffers are the caller's; nothing is allocated
 * except where said.
 */
#ifndef SESRELAY_SENDMAIL_MSG_H
#define SESRELAY_SENDMAIL_MSG_H

#include <stddef.h>
#include <time.h>

/* The header held in memory is bounded; over it the message is refused. */
#define SM_HEADER_MAX (1024 * 1024)
/* Longest address sm_addr_next() returns (RFC 5321: 256 incl. <>). */
#define SM_ADDR_MAX 320

enum sm_mode {
	SM_MODE_DELIVER,	/* -bm, the default: read a message on stdin */
	SM_MODE_LIST,		/* -bp, mailq: exec sesrelay queue */
	SM_MODE_FLUSH,		/* -q: exec sesrelay flush */
	SM_MODE_SMTP,		/* -bs: SMTP dialogue on stdin/stdout */
	SM_MODE_NEWALIASES,	/* -bi, -I, newaliases: nothing to do */
	SM_MODE_VERSION,	/* --version */
};

struct sm_opts {
	enum sm_mode mode;
	int extract;		/* -t */
	int dot_is_data;	/* -i, -oi: a line "." is data, not the end */
	int verbose;		/* -v */
	const char *sender;	/* -f / -r; NULL: the invoking user */
	const char *fullname;	/* -F; NULL: none given */
	const char *body;	/* -B: "7BIT" or "8BITMIME"; NULL: 8BITMIME */
	const char *notify;	/* -N: validated DSN NOTIFY list, NULL unset */
	const char *ret;	/* -R: "FULL" or "HDRS" (case as given) */
	const char *envid;	/* -V: DSN ENVID (xtext-safe, checked) */
	const char *config;	/* -C; NULL: the default path */
	char *const *rcpts;	/* the recipient arguments (into argv) */
	size_t nrcpts;
	unsigned nignored;	/* options accepted and ignored */
};

/*
 * Parse argv like Postfix's sendmail(1).  argv[0]'s basename chooses the
 * mode first ("mailq" -> SM_MODE_LIST, "newaliases" -> SM_MODE_NEWALIASES).
 * Options may be grouped (-ti) and take their value attached or as the
 * next argument (-fme@x, -f me@x); "--" ends them.  Returns 0, or -1 with
 * one line in err naming the option (the caller exits EX_USAGE).
 */
int sm_parse_args(int argc, char *const argv[], struct sm_opts *o,
    char *err, size_t errlen);

/*
 * Where the header of buf[0..len) ends.  The header is the run of lines
 * that are header fields ("Name:" with Name of printable ASCII but ':')
 * or their continuation lines (starting with space or tab).  It ends at
 * an empty line (*seplen = its length, 1 or 2) or at the first other line
 * (*seplen = 0: the body starts right there, the caller inserts the empty
 * line).  Returns 1 with *hdrlen set when the end is known, 0 when more
 * input is needed (only when !eof; at eof the whole input is the header
 * if it is all header fields).
 */
int sm_header_end(const char *buf, size_t len, int eof, size_t *hdrlen,
    size_t *seplen);

/* One header field inside a header block, continuation lines included. */
struct sm_field {
	const char *name;	/* not NUL-terminated */
	size_t namelen;
	const char *value;	/* after the ':', folding included */
	size_t valuelen;	/* up to, not including, the final line end */
	size_t len;		/* whole field, final line end included */
};

/*
 * The field at hdr[*pos..len); advances *pos past it.  Returns 1, or 0 at
 * the end.  A line that is not a field (which sm_header_end never leaves
 * in a header) is returned with namelen 0.
 */
int sm_field_next(const char *hdr, size_t len, size_t *pos,
    struct sm_field *f);

/* 1 if f's name is name (case-insensitive). */
int sm_field_is(const struct sm_field *f, const char *name);

/*
 * The next address of an RFC 5322 address list in v[*pos..len): display
 * names, comments, quoted strings, groups ("list: a, b;") and folding are
 * handled; the address (the <...> part if there is one) goes to addr,
 * NUL-terminated.  Returns 1 with an address, 0 at the end of the list,
 * -1 on a malformed list or an address longer than SM_ADDR_MAX - 1
 * (*pos is then at the end).
 */
int sm_addr_next(const char *v, size_t len, size_t *pos,
    char addr[SM_ADDR_MAX]);

/*
 * "From: " header line (CRLF-terminated) for addr with the full name
 * fullname (NULL or "" for none): quoted when it has specials, an RFC 2047
 * UTF-8 B encoded-word when it has 8-bit bytes.  Returns the length, or 0
 * if it does not fit in cap.
 */
size_t sm_make_from(char *out, size_t cap, const char *fullname,
    const char *addr);

/* "Date: " header line for tm (local time, gmtoff used), CRLF-terminated;
 * in the C locale's English names whatever the locale.  Returns the
 * length, 0 if it does not fit. */
size_t sm_make_date(char *out, size_t cap, const struct tm *tm);

/*
 * The data filter: input lines ending in LF, CRLF or a bare CR leave as
 * CRLF lines; a line starting with '.' is dot-stuffed; without
 * dot_is_data a line that is just "." ends the message (as sendmail
 * does), the rest of the input is then ignored (done = 1).  An input not
 * ending in a line end gets one.  It streams: state carries across calls.
 */
struct sm_filter {
	int dot_is_data;
	int bol;		/* at the beginning of a line */
	int cr;			/* a CR seen, the LF may follow */
	int dot;		/* the line so far is "." (held back) */
	int done;		/* ended by a "." line */
	unsigned long long lines;	/* lines emitted */
};

void sm_filter_init(struct sm_filter *f, int dot_is_data);

/* Filter in[0..len) to out, which must hold 2 * len + 4 bytes; returns the
 * bytes written.  After done, input is ignored. */
size_t sm_filter_feed(struct sm_filter *f, const char *in, size_t len,
    char *out);

/* End of input: out must hold 8 bytes; returns the bytes written. */
size_t sm_filter_finish(struct sm_filter *f, char *out);

/* 1 if s is a valid -N value: "never" or a list of success, failure,
 * delay (case-insensitive, comma-separated, no repeats). */
int sm_notify_valid(const char *s);

#endif
