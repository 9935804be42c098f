/*
 * ses_headers.h — pure processing of a message's header section for SES:
 * find its end, the From: address and duplicated singleton fields; strip
 * client X-SES-* fields and insert ours.
 *
 * Input is the message as received after DATA (CRLF lines, dot-stuffing
 * already removed).  No I/O, globals or logging.  The body is never
 * touched: callers pass only the bytes up to header_len and copy the rest
 * as is.
 */
#ifndef SESRELAY_SES_HEADERS_H
#define SESRELAY_SES_HEADERS_H

#include <stddef.h>

#define SES_HEADER_NAME_MAX 80
#define SES_ADDRESS_MAX 256

struct ses_header_info {
	int complete;		/* 1 if the empty line ending the header
				 * section was found in the input */
	size_t header_len;	/* complete: octets of the header section
				 * including the empty line; else 0 */
	size_t nfields;		/* header fields seen */
	char duplicate[SES_HEADER_NAME_MAX];	/* first singleton field seen
				 * twice, as spelled the second time; "" if none */
	char from_address[SES_ADDRESS_MAX];	/* first address of From:,
				 * lower-cased; "" if none or unparsable */
	int has_from;		/* a From: field was seen */
	size_t from_value;	/* has_from: the first From: field's value */
	size_t from_value_len;	/* is msg[from_value..+from_value_len), its
				 * folded lines and final line end included */
	int malformed;		/* a line that is neither "Name:" nor a
				 * continuation (starts with SP/HT) */
};

/*
 * Scan msg[0..len).  If no empty line ends the header section within len,
 * complete = 0 and the fields seen so far are reported (callers feed the
 * whole message, or at least its header section, once received).  A
 * message that starts with the empty line has header_len 2 and no fields.
 *
 * Singleton fields (at most one allowed; SES answers "554 Transaction
 * failed: Duplicate header"): Date, From, Sender, Reply-To, To, Cc, Bcc,
 * Message-ID, In-Reply-To, References, Subject (RFC 5322 3.6), MIME-Version,
 * Content-Type, Content-Transfer-Encoding, and DKIM-Signature (SES refuses
 * two of those too, see SES.md).
 */
void ses_headers_scan(const char *msg, size_t len, struct ses_header_info *out);

/*
 * Walk the mailboxes of a From: value (RFC 5322 mailbox-list, obsolete
 * forms and groups included): start with *pos = 0; each call stores the
 * next address, lower-cased, in dst and returns 1, or returns 0 at the
 * end of the list, or -1 (dst "") if the next element is not a mailbox
 * (a display name with an unquoted ",", a missing ">", words around an
 * address, ...).  Empty elements are skipped.
 */
int ses_headers_next_address(const char *value, size_t len, size_t *pos,
    char dst[SES_ADDRESS_MAX]);

/* A field to insert: value may be folded (contain CRLF followed by SP/HT)
 * but must not end with CRLF; the writer adds ": " and the final CRLF. */
struct ses_header_field {
	const char *name;
	const char *value;
};

typedef void ses_emit_fn(void *arg, const char *p, size_t n);

/*
 * Write the rewritten header section through emit(): first each of ins[] in
 * order, then every field of hdr[0..len) in its original bytes except the
 * X-SES-* ones (matched case-insensitively, with their continuation lines).
 * hdr is the header section including its final empty line (header_len
 * from ses_headers_scan); that empty line is written too.  Returns the
 * number of X-SES-* fields removed.
 */
size_t ses_headers_rewrite(const char *hdr, size_t len,
    const struct ses_header_field *ins, size_t nins, ses_emit_fn *emit,
    void *arg);

/* 1 if s is a valid X-SES-MESSAGE-TAGS value: "name=value" pairs separated
 * by "," and optional spaces, names and values of [0-9A-Za-z_-], 1..256
 * each (SES silently drops events for anything else). */
int ses_headers_tags_valid(const char *s);
/* 1 if s is a valid configuration set name: 1..64 of [0-9A-Za-z_-]. */
int ses_headers_config_set_valid(const char *s);
/* 1 if s is an SES identity ARN:
 * arn:{aws,aws-us-gov,aws-cn}:ses:<region>:<12 digits>:identity/<id>.
 * If region is not NULL the ARN's region is copied there (<= 32 bytes). */
int ses_headers_arn_valid(const char *s, char *region, size_t regionlen);

#endif
