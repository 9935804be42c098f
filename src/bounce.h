/*
 * bounce.h — the delivery status notification (RFC 3464) sent to the
 * envelope sender of a message that failed permanently.
 */
#ifndef SESRELAY_BOUNCE_H
#define SESRELAY_BOUNCE_H

struct config;
struct spool_envelope;
struct evbuffer;

/*
 * Write to out a multipart/report DSN about the failed recipients of env
 * (rcpt_state FAILED, rcpt_error the reason), from cfg->null_sender to
 * env->sender, with the original's header section (original: the spooled
 * message) as text/rfc822-headers.  dsn_id is used in its Message-ID.
 */
void bounce_build(const struct config *cfg, const struct spool_envelope *env,
    const char *dsn_id, struct evbuffer *original, struct evbuffer *out);

#endif
