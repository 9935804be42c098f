/*
 * fuzz_smtp_reply.c — what the relay makes of SES's replies: reply lines
 * (smtp_parse_reply_line), enhanced status codes, and then the upstream
 * client's own pure helpers on the accumulated multi-line reply: the text
 * passed on to clients (reply_set), the SES message id and the EHLO
 * capabilities.  Those helpers are static in relay_client.c, so the file
 * is included here (only its pure functions are called; nothing touches
 * sockets or libevent).
 *
 * Input: reply lines separated by LF (a CR before it is dropped).  Lines
 * are accumulated as relay_client.c's session_read() does: texts joined
 * with '\n', at most SMTP_REPLY_MAX bytes, until a last line ("250 ").
 *
 * Invariants: codes 200..599; text inside the line; an enhanced code is a
 * NUL-terminated prefix of the text; the text passed on to a client is
 * NUL-terminated, shorter than RELAY_TEXT_MAX and has no control bytes
 * (it goes into our own reply line); the message id has no spaces.
 */
#include "../../src/relay_client.c"

#include "fuzz.h"

static void
check_enhanced(const char *text, size_t len)
{
	char out[SMTP_ENHANCED_MAX];
	size_t skip;

	memset(out, 'x', sizeof(out));
	skip = smtp_parse_enhanced_code(text, len, out);
	FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
	FUZZ_CHECK(skip <= len);
	if (skip == 0) {
		FUZZ_CHECK(out[0] == '\0');
		return;
	}
	FUZZ_CHECK(strlen(out) >= 5);
	FUZZ_CHECK(memcmp(out, text, strlen(out)) == 0);
	FUZZ_CHECK(skip == strlen(out) || skip == strlen(out) + 1);
	FUZZ_CHECK(out[0] == '2' || out[0] == '4' || out[0] == '5');
}

static void
finish_reply(int code, const char *joined)
{
	struct relay_reply r;
	struct relay_session s;
	char id[128];
	size_t n;

	memset(&r, 'x', sizeof(r));
	reply_set(&r, code, joined, 1);
	FUZZ_CHECK(r.code == code && r.from_ses == 1);
	FUZZ_CHECK(memchr(r.enhanced, '\0', sizeof(r.enhanced)) != NULL);
	FUZZ_CHECK(memchr(r.text, '\0', sizeof(r.text)) != NULL);
	n = strlen(r.text);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)r.text[i] >= 0x20 &&
		    r.text[i] != 0x7f);

	memset(id, 'x', sizeof(id));
	ses_message_id(r.text, id, sizeof(id));
	FUZZ_CHECK(memchr(id, '\0', sizeof(id)) != NULL);
	FUZZ_CHECK(strchr(id, ' ') == NULL);

	memset(&s, 0, sizeof(s));
	parse_ehlo(&s, joined);
	FUZZ_CHECK(s.cap_starttls <= 1 && s.cap_plain <= 1 &&
	    s.cap_login <= 1 && s.cap_8bitmime <= 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char joined[SMTP_REPLY_MAX];
	size_t joined_len = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);
		const char *text;
		int code = 0, last = 0;
		char *line;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		/* session_read() refuses longer lines before parsing */
		if (len > SMTP_REPLY_MAX)
			return 0;
		if ((line = malloc(len + 1)) == NULL)
			abort();
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl != NULL ? nl + 1 : end;

		if (smtp_parse_reply_line(line, len, &code, &last,
		    &text) != 0) {
			free(line);
			joined_len = 0;
			continue;
		}
		FUZZ_CHECK(code >= 200 && code <= 599);
		FUZZ_CHECK(last == 0 || last == 1);
		FUZZ_CHECK(text >= line + 3 && text <= line + len);
		FUZZ_CHECK(last == (len == 3 || line[3] == ' '));
		check_enhanced(text, (size_t)(line + len - text));

		size_t tl = strlen(text);
		if (joined_len + tl + 2 > sizeof(joined)) {
			free(line);
			joined_len = 0;
			continue;
		}
		if (joined_len > 0)
			joined[joined_len++] = '\n';
		memcpy(joined + joined_len, text, tl + 1);
		joined_len += tl;
		free(line);
		if (!last)
			continue;
		finish_reply(code, joined);
		joined_len = 0;
	}
	if (joined_len > 0)
		finish_reply(250, joined);
	return 0;
}
