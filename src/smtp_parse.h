/*
 * smtp_parse.h — pure SMTP syntax: commands, MAIL/RCPT paths and
 * parameters, reply lines, and the DATA byte stream.
 *
 * No sockets, no globals, no logging, no libevent: functions work on the
 * bytes they are given and can resume on partial input (the DATA reader),
 * so they can be unit-tested from tables and fuzzed.
 */
#ifndef SESRELAY_SMTP_PARSE_H
#define SESRELAY_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1: text line 1000 octets including CRLF; we also allow
 * command lines that long (extensions lengthen MAIL/RCPT). */
#define SMTP_LINE_MAX 1000
/* RFC 4954 4: an AUTH command (with its initial response) and the
 * client's responses in an AUTH exchange may be up to 12288 octets,
 * CRLF included. */
#define SMTP_AUTH_LINE_MAX 12288
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets including "<" ">". */
#define SMTP_PATH_MAX 256
/* A reply we accept from the upstream: at most this many octets in all
 * lines together (a longer one is a protocol error, not a crash). */
#define SMTP_REPLY_MAX 4096

enum smtp_verb {
	SMTP_VERB_INVALID,	/* empty, NUL or control bytes: 500 */
	SMTP_VERB_UNKNOWN,	/* syntactically a word, not a command we know */
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_QUIT,
	SMTP_VERB_HELP, SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH, SMTP_VERB_BDAT
};

/*
 * Parse one command line (line, len, without the CRLF; len <= SMTP_LINE_MAX,
 * or SMTP_AUTH_LINE_MAX for AUTH).
 * The verb is case-insensitive.  For MAIL and RCPT the "FROM:" / "TO:"
 * keyword belongs to the verb ("MAIL FROM:<a@b>", "mail from: <a@b>"); a
 * MAIL without "FROM:" is SMTP_VERB_MAIL with *args = NULL (syntax error).
 * *args points into line at the first non-space byte after the verb (or
 * after the colon) — or at the terminating NUL position if there are none:
 * callers pass a NUL-terminated copy.  Trailing spaces are not stripped.
 * A line containing NUL, CR or LF bytes is SMTP_VERB_INVALID.
 */
enum smtp_verb smtp_parse_command(const char *line, size_t len,
    const char **args);

enum smtp_body { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

enum smtp_path_result {
	SMTP_PATH_OK,
	SMTP_PATH_SYNTAX,	/* 501 5.5.4 / 501 5.1.7: malformed path or parameter */
	SMTP_PATH_TOO_LONG,	/* 501 5.5.4: path over SMTP_PATH_MAX */
	SMTP_PATH_NON_ASCII,	/* 553 5.6.7: 8-bit address (no SMTPUTF8) */
	SMTP_PATH_UNKNOWN_PARAM	/* 555 5.5.4: a parameter we do not support */
};

struct smtp_mail_args {
	char address[SMTP_PATH_MAX];	/* without <>, source route dropped,
					 * a quoted local part that is a
					 * valid dot-string unquoted
					 * ("a.b"@x -> a.b@x); "" for the
					 * null path <> */
	int has_size;
	uint64_t size;			/* SIZE=n */
	enum smtp_body body;		/* BODY=7BIT|8BITMIME (default 7BIT) */
};

/*
 * Parse the arguments of MAIL FROM: ("<a@b> SIZE=10 BODY=8BITMIME").
 * Accepted parameters: SIZE, BODY (7BIT, 8BITMIME), AUTH (RFC 4954,
 * accepted and ignored).  Keywords case-insensitive.  The path is
 * "<" [source-route ":"] mailbox ">" with a dot-string or quoted-string
 * local part and a domain or address literal; a bare address without
 * angle brackets is accepted too (as Postfix does) when it has no spaces.
 * On failure *why (if not NULL) is set to a short static explanation
 * suitable for a reply text, e.g. "Syntax error in mailbox address".
 */
enum smtp_path_result smtp_parse_mail_args(const char *args,
    struct smtp_mail_args *out, const char **why);

/* Same for RCPT TO: (no parameters are supported: any is UNKNOWN_PARAM;
 * the null path is a SYNTAX error).  address receives the mailbox, spelt
 * as for MAIL. */
enum smtp_path_result smtp_parse_rcpt_args(const char *args,
    char address[SMTP_PATH_MAX], const char **why);

/*
 * Parse one reply line (without CRLF) from a server: "250-text" or
 * "250 text" or "250" alone.  Returns 0 and sets *code (200..599), *last
 * (1 for the final line of a reply) and *text (after the separator, "" if
 * none), or -1 if the line is not a reply line.
 */
int smtp_parse_reply_line(const char *line, size_t len, int *code,
    int *last, const char **text);

/* If text starts with an RFC 3463 enhanced status code "c.s.d" (c in 2,4,5;
 * s and d 1-3 digits) followed by a space or the end, copy it to out
 * (NUL-terminated) and return the number of bytes to skip (code plus
 * one space); else return 0 and set out to "". */
#define SMTP_ENHANCED_MAX 16
size_t smtp_parse_enhanced_code(const char *text, size_t len,
    char out[SMTP_ENHANCED_MAX]);

/*
 * The DATA stream reader: feed it the bytes received after "354", in
 * pieces of any size; it finds the end (CRLF "." CRLF, the first line
 * counting as preceded by CRLF), removes dot-stuffing, and passes the
 * message content to emit() — every line with its CRLF, the final
 * "." CRLF not included.
 *
 * Only CRLF ends a line.  A bare LF or a bare CR is passed through but
 * flagged, and never starts a line: "\n.\r\n" is not the end of data
 * (SMTP smuggling).  A line longer than SMTP_LINE_MAX octets including its
 * CRLF is flagged.  A "." followed by a bare LF or bare CR at the start of
 * a line, or right after a bare LF, sets SMTP_DATA_LOOSE_END: a client that
 * believes its data has ended; the caller should reply and close.
 */
enum smtp_data_flag {
	SMTP_DATA_BARE_LF = 1 << 0,
	SMTP_DATA_BARE_CR = 1 << 1,
	SMTP_DATA_LONG_LINE = 1 << 2,
	SMTP_DATA_LOOSE_END = 1 << 3
};

struct smtp_data_reader {
	int state;		/* private */
	size_t line_len;	/* private: octets in the current line so far */
	unsigned flags;		/* enum smtp_data_flag, accumulated */
	uint64_t total;		/* octets emitted so far */
};

typedef void smtp_data_emit_fn(void *arg, const char *p, size_t n);

void smtp_data_init(struct smtp_data_reader *r);
/*
 * Consume up to len bytes.  Returns how many were consumed; that is less
 * than len only when the end of data was reached (*done = 1), and the
 * remaining bytes are the client's next commands (pipelining).
 */
size_t smtp_data_feed(struct smtp_data_reader *r, const char *buf, size_t len,
    smtp_data_emit_fn *emit, void *arg, int *done);

#endif
