/*
 * bounce.h — the delivery status notification (RFC 3464) sent to the
 * envelope sender of a message that failed permanently.
 */
#ifndef SESRELAY_BOUNCE_H
#define SESRELAY_BOUNCE_H

struct config;
struct spool_envelope;
struct evbuffer;

/* The start of the rcpt_error of a recipient whose message outlived
 * [queue] lifetime: its Status is 5.4.7 (RFC 3463, delivery time
 * expired). */
#define BOUNCE_EXPIRED "lifetime expired"

/*
 * Write to out a multipart/report DSN about the failed recipients of env
 * (rcpt_state FAILED, rcpt_error the reason), from cfg->null_sender to
 * env->sender, with the original's header section (original: the spooled
 * message) as text/rfc822-headers.  dsn_id is used in its Message-ID.
 *
 * Per recipient: a reason that is an SMTP reply ("554 5.7.1 ...", as SES
 * said it) is its Diagnostic-Code (type smtp) and gives its Status (its
 * enhanced code if that is 5.x.x, else 5.0.0); any other reason is the
 * relay's own and has no Diagnostic-Code: Status 5.4.7 for BOUNCE_EXPIRED,
 * 5.0.0 for the rest.  Every reason is in the human-readable part.
 */
void bounce_build(const struct config *cfg, const struct spool_envelope *env,
    const char *dsn_id, struct evbuffer *original, struct evbuffer *out);

#endif
