/*
 * ses_send.h — pure: the SES API v2 SendEmail request for one relay job,
 * and what its answer means for the mail.
 *
 * No I/O, no globals, no logging (api_client.c sends and reports).
 *
 * The request: {"Content": {"Raw": {"Data": base64(message)}},
 * "Destination": {"ToAddresses": [every envelope recipient, Bcc included]},
 * "FromEmailAddressIdentityArn", "FeedbackForwardingEmailAddressIdentityArn",
 * "ConfigurationSetName", "EmailTags"} — the sending-authorization ARNs,
 * configuration set and tags are read from the X-SES-* fields that
 * message_build() put at the top of the header when the message was
 * accepted (so a spooled message keeps the choices made then), and the
 * fields stay in the raw message, as for the SMTP interface.
 */
#ifndef SESRELAY_SES_SEND_H
#define SESRELAY_SES_SEND_H

#include <stddef.h>

/* "/v2/email/outbound-emails" */
#define SES_SEND_PATH "/v2/email/outbound-emails"

/* A new JSON body (free()) of *outlen bytes; NULL if an X-SES-* value
 * cannot be used (err says which). */
char *ses_send_request(const char *msg, size_t msglen,
    const char *const *rcpts, size_t nrcpts, size_t *outlen, char *err,
    size_t errlen);

enum ses_send_status { SES_SEND_OK, SES_SEND_TEMPFAIL, SES_SEND_PERMFAIL };

struct ses_send_outcome {
	enum ses_send_status status;
	int code;			/* the SMTP reply for the mail */
	char enhanced[16];
	char text[512];
	char message_id[128];		/* SES's MessageId, or "" */
	int from_ses;			/* SES said it (not a local failure) */
	int throttled;			/* 429 / TooManyRequests / rate */
	int auth;			/* our credentials or permissions */
};

/*
 * Map an answer: status 0 is a transport failure (error says what);
 * error_type is X-Amzn-ErrorType or NULL.  200 with a MessageId: 250
 * "Ok <id>".  429, TooManyRequestsException, Throttling,
 * LimitExceededException, 5xx, transport failures: 4xx, retried.
 * MessageRejected, BadRequest: 554 5.6.0; MailFromDomainNotVerified: 550
 * 5.7.1 (permanent: a DSN).  AccountSuspended, SendingPaused,
 * NotFound (configuration set), AccessDenied and credential errors: 451,
 * kept and retried (an operator's fix, not the message's fault).
 */
void ses_send_outcome(long status, const char *error_type, const char *body,
    size_t bodylen, const char *error, struct ses_send_outcome *out);

#endif
