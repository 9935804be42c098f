/*
 * sendmail_msg.h — the pure part of sendmail.sesrelay(8): command-line
 * options as sendmail/Postfix take them, the header block of a message
 * read from a local program, and the streaming LF -> CRLF + dot-stuffing
 * filter for the body.  No sockets, no globals, no logging.
 *
 * Ownership: sm_opts_parse fills a struct sm_opts whose strings point into
 * argv (never freed); sm_opts_free frees only the rcpt array.  A struct
 * sm_headers owns its copies (sm_headers_free).
 */
#ifndef SESRELAY_SENDMAIL_MSG_H
#define SESRELAY_SENDMAIL_MSG_H

#include <stddef.h>
#include <time.h>

/* The sysexits.h codes sendmail uses (defined here so the pure part does
 * not depend on the libc having <sysexits.h>). */
#define SM_EX_OK 0
#define SM_EX_USAGE 64
#define SM_EX_DATAERR 65
#define SM_EX_NOUSER 67
#define SM_EX_UNAVAILABLE 69
#define SM_EX_SOFTWARE 70
#define SM_EX_OSERR 71
#define SM_EX_IOERR 74
#define SM_EX_TEMPFAIL 75
#define SM_EX_PROTOCOL 76
#define SM_EX_NOPERM 77
#define SM_EX_CONFIG 78

/* Limit on the buffered header block (the body is streamed). */
#define SM_HEADER_MAX (1024 * 1024)

enum sm_mode {
	SM_MODE_DELIVER,	/* -bm, the default: a message on stdin */
	SM_MODE_MAILQ,		/* -bp, or invoked as mailq */
	SM_MODE_SMTP,		/* -bs: SMTP on stdin/stdout */
	SM_MODE_NEWALIASES,	/* -bi, or invoked as newaliases */
	SM_MODE_FLUSH,		/* -q: ask the daemon to retry the queue */
	SM_MODE_VERSION,	/* -bV (ours): print the version */
};

struct sm_opts {
	enum sm_mode mode;
	const char *config;	/* -C file, NULL: the default */
	const char *sender;	/* -f/-r, NULL: the invoking user */
	const char *fullname;	/* -F, NULL: from the passwd gecos */
	int extract;		/* -t */
	int ignore_dots;	/* -i, -oi: "." alone is data */
	int verbose;		/* -v */
	const char **rcpts;	/* command-line recipients */
	size_t nrcpts;
};

/*
 * Parse argv as sendmail does.  progname is the base name the program was
 * invoked as ("mailq" and "newaliases" pick their mode).  Returns SM_EX_OK,
 * or SM_EX_USAGE with a one-line reason in why (naming the option).
 * Options Postfix accepts and ignores are ignored here too (-4 -6 -A -B
 * -G -I -L -N -O -R -U -V -X -c -e -h -m -n -o<x> -p -x).
 */
int sm_opts_parse(struct sm_opts *o, int argc, char *argv[],
    const char *progname, char *why, size_t whylen);
void sm_opts_free(struct sm_opts *o);

/*
 * Addresses in an address-list header value (RFC 5322 §3.4):
 * "A <a@x>, b@y (c), grp: c@z, d@z;" -> a@x b@y c@z d@z.  Appends each
 * to *list (xrealloc'd, strings xstrdup'd).  Returns the number added.
 */
size_t sm_addr_list(const char *value, char ***list, size_t *n);

/*
 * Unqualified addresses made whole, as Postfix's append_at_myorigin does
 * for local submissions: "root (Cron Daemon), Ops <ops>, a@x" ->
 * "root@domain (Cron Daemon), Ops <ops@domain>, a@x".  Group names,
 * comments, quoted display names and "<>" are left alone.  Returns an
 * xmalloc'd copy of value, changed or not.
 */
char *sm_addr_qualify(const char *value, const char *domain);

/* One envelope address: "root" -> "root@domain"; "" and "a@x" unchanged.
 * xmalloc'd. */
char *sm_addr_qualify_one(const char *addr, const char *domain);

/*
 * The header block of a message: the lines up to (not including) the
 * first line that is not a header field or a continuation.  Lines are
 * kept without their line end.
 */
struct sm_headers {
	char **lines;		/* each field with its continuations joined
				 * by "\r\n" */
	size_t nlines;
	int has_from, has_date, has_msgid, has_to;
	char **rcpts;		/* To/Cc/Bcc addresses (for -t) */
	size_t nrcpts;
};

/*
 * Split buf[0..len) into the header block and the rest: *consumed is the
 * number of bytes that belong to header fields (the rest, starting with
 * the empty line or the first non-header line, is body).  A leading mbox
 * "From " line is dropped, as Postfix does.  eof = 1 when buf holds the
 * whole input: a last line without a line end may then be a header;
 * otherwise a partial last line is left for the body.  Never fails.
 */
void sm_headers_parse(struct sm_headers *h, const char *buf, size_t len,
    int eof, size_t *consumed);
void sm_headers_free(struct sm_headers *h);

/* 1 if the field in line has the name (case-insensitive). */
int sm_header_is(const char *line, const char *name);

/*
 * The header block to send, CRLF-terminated, dot-stuffed, xmalloc'd:
 * the fields of h (Bcc removed when drop_bcc; the addresses of From,
 * Sender, Reply-To, To, Cc, Bcc and Resent-* qualified with @domain by
 * sm_addr_qualify) plus the missing ones, the
 * way Postfix's cleanup adds them: From: "fullname" <from>, Date: (now),
 * Message-ID: <stamp.rand@domain>.  Does not add the empty line.
 */
char *sm_headers_render(const struct sm_headers *h, int drop_bcc,
    const char *from, const char *fullname, const char *domain, time_t now,
    unsigned long long rand, size_t *lenp);

/*
 * The body filter: LF or CRLF line ends -> CRLF, a leading "." doubled,
 * and unless ignore_dots a line "." alone ends the message (sendmail's
 * default).  Resumable over any split of the input.
 */
struct sm_filter {
	int ignore_dots;
	int bol;		/* at the beginning of a line */
	int cr;			/* the last byte seen was CR (not yet sent) */
	int dot;		/* a line so far is exactly "." (not yet sent) */
	int done;		/* "." line seen: ignore the rest */
};

void sm_filter_init(struct sm_filter *f, int ignore_dots);
/*
 * Filter in[0..len) into out (room for 2 * len + 4 bytes); returns the
 * bytes written.  Once f->done, the rest of the input is dropped.
 */
size_t sm_filter_run(struct sm_filter *f, const char *in, size_t len,
    char *out);
/* End of input: what to write before the final ".\r\n" (a CRLF when the
 * last line had none); returns the bytes written to out (room for 4). */
size_t sm_filter_end(struct sm_filter *f, char *out);

#endif
