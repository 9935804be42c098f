/* message.c — see message.h. */
#include "message.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "ses_headers.h"
#include "smtp_parse.h"

static void
refuse(struct relay_reply *r, int code, const char *enhanced,
    const char *text)
{
	r->code = code;
	r->from_ses = 0;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/* Length of the header section: through the first empty line, or all of
 * buf when there is none (a message without a body). */
size_t
message_header_length(struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	if (len >= 2) {
		struct evbuffer_ptr start = evbuffer_search(buf, "\r\n", 2,
		    NULL);
		if (start.pos == 0)
			return 2;	/* starts with the empty line */
	}
	struct evbuffer_ptr p = evbuffer_search(buf, "\r\n\r\n", 4, NULL);
	return p.pos < 0 ? len : (size_t)p.pos + 4;
}

int
message_check_data(const struct config *cfg, unsigned flags, uint64_t size,
    int has_nul, struct relay_reply *reply)
{
	if (flags & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR | SMTP_DATA_LOOSE_END)) {
		refuse(reply, 550, "5.6.0", "Message refused: bare CR or LF "
		    "in the message; lines must end with CRLF "
		    "(SMTP smuggling protection)");
		return -1;
	}
	if (size > cfg->max_message_size) {
		refuse(reply, 552, "5.3.4", "Message is too long.");
		return -1;
	}
	if (flags & SMTP_DATA_LONG_LINE) {
		refuse(reply, 554, "5.6.0", "Transaction failed: a line is "
		    "longer than 998 characters (RFC 5322 limit)");
		return -1;
	}
	if (has_nul) {
		refuse(reply, 554, "5.6.0", "Message refused: it contains a "
		    "NUL octet, which RFC 5322 and 8BITMIME (RFC 6152) do not "
		    "allow (BINARYMIME is not offered)");
		return -1;
	}
	return 0;
}

int
message_check_header(struct evbuffer *raw, size_t hlen,
    struct relay_reply *reply)
{
	struct ses_header_info info;
	ses_headers_scan((const char *)evbuffer_pullup(raw, (ssize_t)hlen),
	    hlen, &info);
	if (info.duplicate[0] != '\0') {
		char text[RELAY_TEXT_MAX];
		snprintf(text, sizeof(text),
		    "Transaction failed: Duplicate header '%s'.",
		    info.duplicate);
		refuse(reply, 554, "5.6.0", text);
		return -1;
	}
	return 0;
}

int
message_check(const struct config *cfg, struct evbuffer *raw, unsigned flags,
    uint64_t size, struct relay_reply *reply)
{
	if (message_check_data(cfg, flags, size,
	    evbuffer_search(raw, "", 1, NULL).pos >= 0, reply) != 0)
		return -1;
	return message_check_header(raw, message_header_length(raw), reply);
}

int
message_from_permitted(const struct config *cfg, struct evbuffer *raw,
    const char *auth_user, const struct sockaddr *client,
    char refused[SES_ADDRESS_MAX])
{
	size_t hlen = message_header_length(raw);
	const char *hdr = (const char *)evbuffer_pullup(raw, (ssize_t)hlen);
	struct ses_header_info info;
	size_t pos = 0, n = 0;
	int r;

	refused[0] = '\0';
	ses_headers_scan(hdr, hlen, &info);
	if (!info.has_from)
		return config_sender_restricted(cfg) ? MESSAGE_FROM_MISSING : 1;
	while ((r = ses_headers_next_address(hdr + info.from_value,
	    info.from_value_len, &pos, refused)) == 1) {
		if (!config_sender_permitted(cfg, refused, auth_user, client))
			return 0;
		n++;
	}
	refused[0] = '\0';
	/* what cannot be read cannot be checked */
	return (r < 0 || n == 0) && config_sender_restricted(cfg) ? 0 : 1;
}

static void
emit_evbuffer(void *arg, const char *p, size_t n)
{
	evbuffer_add(arg, p, n);
}

/* RFC 5322 date-time in local time, e.g. "Mon, 23 Nov 2026 19:12:16 +0000". */
static void
rfc5322_date(char *out, size_t outlen)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(out, outlen, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* The X-SES-* fields cfg chooses for this envelope sender and From:
 * address, into ins[5]; returns how many. */
static size_t
ses_fields(const struct config *cfg, const char *envelope_sender,
    const char *from_address, struct ses_header_field *ins)
{
	size_t nins = 0;
	const struct sender_rule *env_rule =
	    config_sender_match(cfg, envelope_sender);
	const struct sender_rule *from_rule =
	    config_sender_match(cfg, from_address);
	const char *config_set = cfg->configuration_set;
	if (env_rule != NULL && env_rule->configuration_set != NULL)
		config_set = env_rule->configuration_set;

	if (env_rule != NULL && env_rule->source_arn != NULL)
		ins[nins++] = (struct ses_header_field){ "X-SES-SOURCE-ARN",
		    env_rule->source_arn };
	if (from_rule != NULL && from_rule->from_arn != NULL)
		ins[nins++] = (struct ses_header_field){ "X-SES-FROM-ARN",
		    from_rule->from_arn };
	if (env_rule != NULL && env_rule->return_path_arn != NULL)
		ins[nins++] = (struct ses_header_field){
		    "X-SES-RETURN-PATH-ARN", env_rule->return_path_arn };
	if (config_set != NULL)
		ins[nins++] = (struct ses_header_field){
		    "X-SES-CONFIGURATION-SET", config_set };
	if (cfg->message_tags != NULL)
		ins[nins++] = (struct ses_header_field){ "X-SES-MESSAGE-TAGS",
		    cfg->message_tags };
	return nins;
}

/* raw's header rewritten with ins[] at the top, then its body, into out. */
static void
rewrite(struct evbuffer *raw, size_t hlen, const struct ses_header_field *ins,
    size_t nins, struct evbuffer *out)
{
	const char *hdr = (const char *)evbuffer_pullup(raw, (ssize_t)hlen);
	ses_headers_rewrite(hdr, hlen, ins, nins, emit_evbuffer, out);
	evbuffer_drain(raw, hlen);
	evbuffer_add_buffer(out, raw);
}

void
message_build(const struct config *cfg, const char *envelope_sender,
    const struct message_origin *origin, struct evbuffer *raw,
    struct evbuffer *out)
{
	struct ses_header_field ins[6];
	size_t hlen = message_header_length(raw);
	struct ses_header_info info;

	ses_headers_scan((const char *)evbuffer_pullup(raw, (ssize_t)hlen),
	    hlen, &info);
	size_t nins = ses_fields(cfg, envelope_sender, info.from_address, ins);
	if (origin == NULL) {
		rewrite(raw, hlen, ins, nins, out);
		return;
	}

	char date[64], received[1024];
	rfc5322_date(date, sizeof(date));
	if (origin->rcpt_for != NULL)
		snprintf(received, sizeof(received),
		    "from %s (%s)\r\n\tby %s (sesrelay) with %s id %s\r\n"
		    "\tfor <%s>; %s", origin->helo, origin->client,
		    cfg->hostname, origin->protocol, origin->id,
		    origin->rcpt_for, date);
	else
		snprintf(received, sizeof(received),
		    "from %s (%s)\r\n\tby %s (sesrelay) with %s id %s;\r\n"
		    "\t%s", origin->helo, origin->client, cfg->hostname,
		    origin->protocol, origin->id, date);
	ins[nins++] = (struct ses_header_field){ "Received", received };
	rewrite(raw, hlen, ins, nins, out);
}
