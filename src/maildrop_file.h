/*
 * maildrop_file.h — the format of a maildrop file, the pure part of
 * sendmail_fallback = spool.  sendmail.sesrelay(8) writes one when it
 * cannot reach the daemon; its pickup mode (run by sesrelayd, maildrop.h)
 * reads it back and submits it over SMTP.  No I/O, no globals.
 *
 *   sesrelay-maildrop 1\n
 *   sender <address>\n           (empty for MAIL FROM:<>)
 *   rcpt <address>\n             (one line per recipient, at least one)
 *   \n
 *   the message as it goes after DATA: CRLF lines, dot-stuffed,
 *   ending in the line ".\r\n"
 *
 * Any local user in the group sesrelay-drop can write such a file, so the
 * reader trusts none of it: every envelope line is checked, and the data
 * is checked as it streams so that nothing can end the DATA early (a
 * line "." before the end, a bare CR or LF) and smuggle SMTP commands.
 */
#ifndef SESRELAY_MAILDROP_FILE_H
#define SESRELAY_MAILDROP_FILE_H

#include <stddef.h>

#define MD_MAGIC "sesrelay-maildrop 1\n"
#define MD_ADDR_MAX 900		/* octets of one address */
#define MD_ENVELOPE_MAX (1024 * 1024)
/* A file name: 10 hex digits of the time, 32 of randomness, no dot (the
 * reader ignores every other name, its own "<name>.bad" included). */
#define MD_NAME_LEN 42

/* 1 if s is a name the writer makes. */
int md_name_ok(const char *s);

/* 1 if a is usable in MAIL FROM/RCPT TO: at most MD_ADDR_MAX octets, no
 * control characters, no angle brackets.  Else 0 and the reason in why. */
int md_addr_ok(const char *a, const char **why);

/* The envelope lines, xmalloc'd (*lenp octets, no NUL needed).  The
 * addresses must pass md_addr_ok. */
char *md_envelope(const char *sender, const char *const *rcpts, size_t n,
    size_t *lenp);

struct md_envelope {
	char *sender;		/* "" for the null sender */
	char **rcpts;
	size_t nrcpts;
};

/*
 * Parse the envelope at the start of buf[0..len).  Returns the octets it
 * takes (the empty line included), 0 if buf holds no complete envelope
 * yet (read more, up to MD_ENVELOPE_MAX), or -1 with the reason in why if
 * it is malformed.  At most max_rcpts recipients.  On success e owns
 * copies (md_envelope_free).
 */
long md_envelope_parse(struct md_envelope *e, const char *buf, size_t len,
    size_t max_rcpts, const char **why);
void md_envelope_free(struct md_envelope *e);

/* The data checker, resumable over any split of the input. */
struct md_data {
	int state;
	const char *why;	/* after MD_BAD */
};

enum md_status { MD_MORE, MD_END, MD_BAD };

void md_data_init(struct md_data *d);
/*
 * Check in[0..len): the octets that may go to the server so far are
 * copied to out (room for len + 2) and counted in *outlen.  MD_MORE: all
 * of in was taken.  MD_END: the final ".\r\n" ends at in + *used (the
 * caller checks nothing follows; the terminator is not in out).  MD_BAD:
 * a bare CR or LF, or the final line before the end; d->why says which,
 * and nothing more may be sent.
 */
enum md_status md_data_check(struct md_data *d, const char *in, size_t len,
    char *out, size_t *outlen, size_t *used);

#endif
