/* bounce.c — see bounce.h. */
#include "bounce.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "smtp_parse.h"
#include "spool.h"

/* 1 if a stored reason is a (one-line) SMTP reply: "554 Message rejected
 * ...", "550 5.1.1 ...", as the queue stores what SES said; *text is what
 * follows the code. */
static int
is_smtp_reply(const char *reason, const char **text)
{
	int code, last;

	return reason != NULL && smtp_parse_reply_line(reason, strlen(reason),
	    &code, &last, text) == 0 && last;
}

/* The Status of a failed recipient with this reason (see bounce.h). */
static void
status_of(const char *reason, char *status, size_t statuslen)
{
	char enh[SMTP_ENHANCED_MAX];
	const char *text;
	if (is_smtp_reply(reason, &text) &&
	    smtp_parse_enhanced_code(text, strlen(text), enh) > 0 &&
	    enh[0] == '5')
		snprintf(status, statuslen, "%s", enh);
	else if (reason != NULL &&
	    strncmp(reason, BOUNCE_EXPIRED, strlen(BOUNCE_EXPIRED)) == 0)
		snprintf(status, statuslen, "5.4.7");
	else
		snprintf(status, statuslen, "5.0.0");
}

void
bounce_build(const struct config *cfg, const struct spool_envelope *env,
    const char *dsn_id, struct evbuffer *original, struct evbuffer *out)
{
	char date[64], arrival[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	localtime_r(&env->created, &tm);
	strftime(arrival, sizeof(arrival), "%a, %d %b %Y %H:%M:%S %z", &tm);

	evbuffer_add_printf(out,
	    "From: Mail Delivery System <%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s.dsn@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s/%s\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n"
	    "--%s/%s\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "This is the mail relay at %s (sesrelay).\r\n"
	    "\r\n"
	    "Your message could not be delivered to one or more recipients.\r\n"
	    "It is attached below (headers only).\r\n"
	    "\r\n",
	    cfg->null_sender, env->sender, date, dsn_id, cfg->hostname,
	    dsn_id, cfg->hostname, dsn_id, cfg->hostname, cfg->hostname);
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpt_state[i] == SPOOL_RCPT_FAILED)
			evbuffer_add_printf(out, "<%s>: %s\r\n", env->rcpts[i],
			    env->rcpt_error[i] != NULL ? env->rcpt_error[i] :
			    "failed");

	evbuffer_add_printf(out,
	    "\r\n--%s/%s\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; %s\r\n"
	    "X-Sesrelay-Queue-ID: %s\r\n"
	    "Arrival-Date: %s\r\n",
	    dsn_id, cfg->hostname, cfg->hostname, env->id, arrival);
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpt_state[i] != SPOOL_RCPT_FAILED)
			continue;
		char status[SMTP_ENHANCED_MAX];
		const char *why = env->rcpt_error[i], *text;
		status_of(why, status, sizeof(status));
		evbuffer_add_printf(out,
		    "\r\nFinal-Recipient: rfc822; %s\r\n"
		    "Action: failed\r\n"
		    "Status: %s\r\n", env->rcpts[i], status);
		/* only what an SMTP server said is of type smtp; the relay's
		 * own reasons are in the text part above */
		if (is_smtp_reply(why, &text))
			evbuffer_add_printf(out, "Diagnostic-Code: smtp; %s\r\n",
			    why);
	}

	evbuffer_add_printf(out, "\r\n--%s/%s\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n", dsn_id, cfg->hostname);
	/* the original's header section, as it is */
	struct evbuffer_ptr end = evbuffer_search(original, "\r\n\r\n", 4, NULL);
	size_t hlen = end.pos < 0 ? evbuffer_get_length(original) :
	    (size_t)end.pos + 2;
	if (hlen > 64 * 1024)
		hlen = 64 * 1024;
	evbuffer_add(out, evbuffer_pullup(original, (ssize_t)hlen), hlen);
	evbuffer_add_printf(out, "\r\n--%s/%s--\r\n", dsn_id, cfg->hostname);
}
