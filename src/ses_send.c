/*
 * ses_send.c — see ses_send.h.
 */
#include "ses_send.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ses_api.h"
#include "xmalloc.h"

/* The value of the first "name:" field of the header section (unfolded,
 * blanks trimmed) in out; 0 if absent. */
static int
header_value(const char *msg, size_t len, const char *name, char *out,
    size_t outlen)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		const char *line = msg + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - i;

		if (ll == 0 || (ll == 1 && line[0] == '\r'))
			return 0;		/* end of the header section */
		if (ll > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			size_t o = 0, j = nlen + 1;

			/* the value with its continuation lines */
			for (;;) {
				for (; j < ll; j++) {
					char c = line[j];

					if (c == '\r')
						continue;
					if (o + 1 < outlen)
						out[o++] = c == '\t' ? ' ' : c;
				}
				i += ll + 1;
				if (i >= len || (msg[i] != ' ' &&
				    msg[i] != '\t'))
					break;
				line = msg + i;
				nl = memchr(line, '\n', len - i);
				ll = nl != NULL ? (size_t)(nl - line) : len - i;
				j = 0;
			}
			out[o] = '\0';
			while (o > 0 && out[o - 1] == ' ')
				out[--o] = '\0';
			memmove(out, out + strspn(out, " "),
			    strlen(out + strspn(out, " ")) + 1);
			return 1;
		}
		i += ll + 1;
	}
	return 0;
}

char *
ses_send_request(const char *msg, size_t msglen, const char *const *rcpts,
    size_t nrcpts, size_t *outlen, char *err, size_t errlen)
{
	char from_arn[2048], source_arn[2048], rp_arn[2048], cset[256];
	char tags[2048];
	json_t *root, *dest, *to, *t;
	char *head, *b64, *out;
	size_t hlen, b64len, olen;
	size_t i;

	root = json_object();
	dest = json_object();
	to = json_array();
	for (i = 0; i < nrcpts; i++)
		json_array_append_new(to, json_string(rcpts[i]));
	json_object_set_new(dest, "ToAddresses", to);
	json_object_set_new(root, "Destination", dest);
	if (header_value(msg, msglen, "X-SES-FROM-ARN", from_arn,
	    sizeof(from_arn)))
		json_object_set_new(root, "FromEmailAddressIdentityArn",
		    json_string(from_arn));
	else if (header_value(msg, msglen, "X-SES-SOURCE-ARN", source_arn,
	    sizeof(source_arn)))
		json_object_set_new(root, "FromEmailAddressIdentityArn",
		    json_string(source_arn));
	if (header_value(msg, msglen, "X-SES-RETURN-PATH-ARN", rp_arn,
	    sizeof(rp_arn)))
		json_object_set_new(root,
		    "FeedbackForwardingEmailAddressIdentityArn",
		    json_string(rp_arn));
	if (header_value(msg, msglen, "X-SES-CONFIGURATION-SET", cset,
	    sizeof(cset)))
		json_object_set_new(root, "ConfigurationSetName",
		    json_string(cset));
	if (header_value(msg, msglen, "X-SES-MESSAGE-TAGS", tags,
	    sizeof(tags))) {
		json_t *arr = json_array();
		char *save = NULL, *tok;

		for (tok = strtok_r(tags, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(tok, '=');
			char *k = tok + strspn(tok, " "), *v, *e;

			if (eq == NULL) {
				snprintf(err, errlen, "X-SES-MESSAGE-TAGS: "
				    "'%.60s' is not name=value", tok);
				json_decref(arr);
				json_decref(root);
				return NULL;
			}
			*eq = '\0';
			for (e = eq; e > k && e[-1] == ' '; e--)
				e[-1] = '\0';
			v = eq + 1 + strspn(eq + 1, " ");
			for (e = v + strlen(v); e > v && e[-1] == ' '; e--)
				e[-1] = '\0';
			t = json_object();
			json_object_set_new(t, "Name", json_string(k));
			json_object_set_new(t, "Value", json_string(v));
			json_array_append_new(arr, t);
		}
		json_object_set_new(root, "EmailTags", arr);
	}
	/* everything but the data, then the data spliced in: no second
	 * copy of a 40 MB message inside jansson */
	json_object_set_new(root, "Content", json_pack("{s:{s:s}}", "Raw",
	    "Data", "@"));
	head = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (head == NULL) {
		snprintf(err, errlen, "cannot encode the request (an address "
		    "or X-SES-* value is not UTF-8)");
		return NULL;
	}
	char *at = strstr(head, "\"Data\":\"@\"");
	if (at == NULL) {
		free(head);
		snprintf(err, errlen, "cannot encode the request");
		return NULL;
	}
	at += strlen("\"Data\":\"");
	hlen = strlen(head);
	b64len = 4 * ((msglen + 2) / 3);
	olen = hlen - 1 + b64len;
	out = xmalloc(olen + 1);
	memcpy(out, head, (size_t)(at - head));
	b64 = out + (at - head);
	if (msglen > 0)
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)msg,
		    (int)msglen);
	memcpy(b64 + b64len, at + 1, hlen - (size_t)(at - head) - 1);
	out[olen] = '\0';
	free(head);
	*outlen = olen;
	return out;
}

static void
set(struct ses_send_outcome *o, enum ses_send_status st, int code,
    const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void
set(struct ses_send_outcome *o, enum ses_send_status st, int code,
    const char *enh, const char *fmt, ...)
{
	va_list ap;

	o->status = st;
	o->code = code;
	snprintf(o->enhanced, sizeof(o->enhanced), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(o->text, sizeof(o->text), fmt, ap);
	va_end(ap);
}

void
ses_send_outcome(long status, const char *error_type, const char *body,
    size_t bodylen, const char *error, struct ses_send_outcome *o)
{
	struct ses_api_error e;
	const char *c;

	memset(o, 0, sizeof(*o));
	if (status == 0) {
		set(o, SES_SEND_TEMPFAIL, 451, "4.4.1", "SES API not reached: "
		    "%s%s", error != NULL ? error : "transport failure", "");
		return;
	}
	if (status == 200) {
		json_t *j = json_loadb(body, bodylen, 0, NULL);
		json_t *id = json_object_get(j, "MessageId");

		if (json_is_string(id) && json_string_length(id) > 0 &&
		    json_string_length(id) < sizeof(o->message_id))
			snprintf(o->message_id, sizeof(o->message_id), "%s",
			    json_string_value(id));
		json_decref(j);
		o->from_ses = 1;
		/* sent in any case: a retry would send it twice */
		set(o, SES_SEND_OK, 250, "2.0.0", "Ok %s%s", o->message_id[0] ?
		    o->message_id : "(SES gave no MessageId)", "");
		return;
	}
	ses_api_parse_error(error_type, body, bodylen, &e);
	o->from_ses = 1;
	c = e.code;
	if (status == 429 || strcmp(c, "TooManyRequestsException") == 0 ||
	    strcmp(c, "Throttling") == 0 ||
	    strcmp(c, "ThrottlingException") == 0 ||
	    strcmp(c, "LimitExceededException") == 0) {
		o->throttled = 1;
		set(o, SES_SEND_TEMPFAIL, 454, "4.7.0", "Throttling failure: "
		    "%s (%s)", e.message[0] ? e.message : "too many requests",
		    c[0] ? c : "429");
	} else if (status >= 500) {
		char s[32];

		snprintf(s, sizeof(s), "HTTP %ld", status);
		set(o, SES_SEND_TEMPFAIL, 451, "4.4.0", "SES API error %s: %s",
		    c[0] ? c : s, e.message[0] ? e.message : s);
	} else if (strcmp(c, "MessageRejected") == 0 ||
	    strcmp(c, "MessageRejectedException") == 0) {
		set(o, SES_SEND_PERMFAIL, 554, "5.6.0", "Message rejected: %s%s",
		    e.message[0] ? e.message : "(no reason given)", "");
	} else if (strcmp(c, "MailFromDomainNotVerifiedException") == 0) {
		set(o, SES_SEND_PERMFAIL, 550, "5.7.1", "MAIL FROM domain not "
		    "verified: %s%s", e.message, "");
	} else if (strcmp(c, "BadRequestException") == 0 ||
	    strcmp(c, "ValidationException") == 0 || status == 413) {
		set(o, SES_SEND_PERMFAIL, status == 413 ? 552 : 554,
		    status == 413 ? "5.3.4" : "5.6.0", "SES refused the "
		    "message: %s %s", c, e.message);
	} else if (strcmp(c, "AccountSuspendedException") == 0 ||
	    strcmp(c, "SendingPausedException") == 0) {
		set(o, SES_SEND_TEMPFAIL, 451, "4.7.0", "%s (the relay keeps "
		    "the mail and retries): %s", c, e.message);
	} else if (strcmp(c, "NotFoundException") == 0) {
		set(o, SES_SEND_TEMPFAIL, 451, "4.3.5", "SES: %s %s (check "
		    "configuration_set and the ARNs)", c, e.message);
	} else if (status == 403 || status == 401 ||
	    ses_api_classify(status, &e) == SES_API_AUTH ||
	    ses_api_classify(status, &e) == SES_API_DENIED) {
		o->auth = 1;
		set(o, SES_SEND_TEMPFAIL, 451, "4.7.0", "SES refused the "
		    "relay's credentials: %s %s", c[0] ? c : "403", e.message);
	} else {
		char s[32];

		snprintf(s, sizeof(s), "HTTP %ld", status);
		set(o, SES_SEND_TEMPFAIL, 451, "4.0.0", "SES API: %s %s",
		    c[0] ? c : s, e.message);
	}
}
