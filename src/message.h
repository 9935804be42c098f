/*
 * message.h — what the relay does to a message on its way from a client
 * to SES, the same in both modes: the fail-early checks (what SES is
 * known to refuse is refused at DATA, with SES's reason) and the rewrite
 * (client X-SES-* fields out; ours and one Received: line in; nothing
 * else touched).
 */
#ifndef SESRELAY_MESSAGE_H
#define SESRELAY_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "relay_client.h"
#include "ses_headers.h"

struct evbuffer;
struct config;
struct sockaddr;

/* Who handed us the message, for the Received: line. */
struct message_origin {
	const char *helo;	/* as the client said it */
	const char *client;	/* "192.0.2.1:4567" or "unix:/run/..." */
	const char *protocol;	/* "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" */
	const char *id;		/* session or queue id */
	const char *rcpt_for;	/* the recipient if there is just one */
};

/*
 * Check a received message (raw: content after dot-unstuffing; flags: the
 * smtp_data_reader flags; size: its length, which may exceed what raw
 * holds when the message was cut off at max_message_size).  Returns 0 if
 * it may be relayed, or -1 with the refusal in *reply.
 */
int message_check(const struct config *cfg, struct evbuffer *raw,
    unsigned flags, uint64_t size, struct relay_reply *reply);
/* The same checks in two parts, for a message checked as it streams by:
 * what the DATA reader found in all of it (flags, size, whether a NUL
 * octet was seen: refused, see README), and its header section (the
 * first hlen octets of raw: duplicated singleton fields). */
int message_check_data(const struct config *cfg, unsigned flags,
    uint64_t size, int has_nul, struct relay_reply *reply);
int message_check_header(struct evbuffer *raw, size_t hlen,
    struct relay_reply *reply);
/* Octets of raw's header section, through its empty line (all of raw if
 * it has none). */
size_t message_header_length(struct evbuffer *raw);

/*
 * Whether the client (auth_user, NULL if not authenticated; its address)
 * may send raw with the From: field it has: 1 if every address in it is
 * permitted (config_sender_permitted), or there is no From: field and no
 * [sender] rule restricts users or networks (config_sender_restricted);
 * MESSAGE_FROM_MISSING if there is none while one does; else 0,
 * with the first address not permitted in refused, or refused "" if the
 * field cannot be parsed or holds no address while some rule restricts:
 * an address that cannot be read cannot be checked.  (Several From:
 * fields are refused by message_check as a duplicated field.)
 */
#define MESSAGE_FROM_MISSING (-1)
int message_from_permitted(const struct config *cfg, struct evbuffer *raw,
    const char *auth_user, const struct sockaddr *client,
    char refused[SES_ADDRESS_MAX]);

/*
 * Move raw (checked) into out as it must go upstream: the X-SES-* fields
 * chosen by cfg for the envelope sender and the From: address at the top,
 * then the Received: line, then the client's header without its X-SES-*
 * fields, then the body, untouched.  raw is left empty.  origin NULL: a
 * message the relay made itself (a DSN), which gets the same X-SES-*
 * fields as any message from that sender but no Received: line (the
 * relay received nothing).
 */
void message_build(const struct config *cfg, const char *envelope_sender,
    const struct message_origin *origin, struct evbuffer *raw,
    struct evbuffer *out);

#endif
