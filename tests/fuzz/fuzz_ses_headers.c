/*
 * fuzz_ses_headers.c — ses_headers_scan(), ses_headers_rewrite(),
 * ses_headers_next_address() and the value validators on arbitrary
 * messages.
 *
 * Invariants: header_len is inside the input and ends a line; scanning
 * only the header section gives the same answers as scanning the whole
 * message (the body is never looked at); names and addresses are
 * NUL-terminated and bounded; the rewritten header starts with exactly the
 * fields we insert, keeps the rest byte for byte except whole X-SES-*
 * fields, and holds no X-SES-* field of the client's any more (checked
 * with an independent line classifier, and by rewriting it again: nothing
 * more is removed).
 */
#include <string.h>

#include "fuzz.h"
#include "ses_headers.h"

struct sink {
	char *buf;
	size_t len, cap;
};

static void
sink_emit(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	FUZZ_CHECK(n > 0);
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		if ((s->buf = realloc(s->buf, s->cap)) == NULL)
			abort();
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Independent of ses_headers.c: 1 if line p[0..n) is an X-SES-* field. */
static int
is_xses_field(const char *p, size_t n)
{
	static const char pfx[] = "x-ses-";
	size_t i;

	if (n < sizeof(pfx) - 1)
		return 0;
	for (i = 0; i < sizeof(pfx) - 1; i++)
		if (lower((unsigned char)p[i]) != pfx[i])
			return 0;
	while (i < n && (unsigned char)p[i] >= 33 &&
	    (unsigned char)p[i] <= 126 && p[i] != ':')
		i++;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

static const struct ses_header_field ins[] = {
	{ "X-SES-SOURCE-ARN",
	  "arn:aws:ses:us-east-1:123456789012:identity/example.com" },
	{ "X-SES-CONFIGURATION-SET", "set_1" },
	{ "X-SES-MESSAGE-TAGS", "a=b,\r\n c=d" },
};
#define NINS (sizeof(ins) / sizeof(ins[0]))

static void
check_info(const struct ses_header_info *h, const char *msg, size_t len)
{
	FUZZ_CHECK(h->complete == 0 || h->complete == 1);
	if (h->complete) {
		FUZZ_CHECK(h->header_len > 0 && h->header_len <= len);
		FUZZ_CHECK(msg[h->header_len - 1] == '\n');
	} else
		FUZZ_CHECK(h->header_len == 0);
	FUZZ_CHECK(memchr(h->duplicate, '\0', sizeof(h->duplicate)) != NULL);
	FUZZ_CHECK(memchr(h->from_address, '\0',
	    sizeof(h->from_address)) != NULL);
	for (const char *a = h->from_address; *a != '\0'; a++)
		FUZZ_CHECK(!(*a >= 'A' && *a <= 'Z') &&
		    (unsigned char)*a >= 32 && (unsigned char)*a <= 126);
	if (h->from_address[0] != '\0')
		FUZZ_CHECK(strchr(h->from_address, '@') != NULL);
}

static void
check_rewrite(const char *hdr, size_t len)
{
	struct sink out = { NULL, 0, 0 }, again = { NULL, 0, 0 };
	size_t removed, inslen = 0, i, pos;
	char *expect;

	/* What we insert, as the writer must write it. */
	for (i = 0; i < NINS; i++)
		inslen += strlen(ins[i].name) + 2 + strlen(ins[i].value) + 2;
	if ((expect = malloc(inslen + 1)) == NULL)
		abort();
	expect[0] = '\0';
	for (i = 0; i < NINS; i++) {
		strcat(expect, ins[i].name);
		strcat(expect, ": ");
		strcat(expect, ins[i].value);
		strcat(expect, "\r\n");
	}

	removed = ses_headers_rewrite(hdr, len, ins, NINS, sink_emit, &out);
	FUZZ_CHECK(out.len >= inslen);
	FUZZ_CHECK(memcmp(out.buf, expect, inslen) == 0);
	FUZZ_CHECK(out.len - inslen <= len);
	if (removed == 0)
		FUZZ_CHECK(out.len - inslen == len &&
		    (len == 0 || memcmp(out.buf + inslen, hdr, len) == 0));
	else
		FUZZ_CHECK(out.len - inslen < len);

	/* No client X-SES-* field is left before the end of the header. */
	for (pos = inslen; pos < out.len; ) {
		const char *p = out.buf + pos;
		const char *nl = memchr(p, '\n', out.len - pos);
		size_t n = (size_t)((nl != NULL ? nl : out.buf + out.len) - p);
		size_t content = n > 0 && p[n - 1] == '\r' ? n - 1 : n;

		if (content == 0)
			break;		/* the empty line */
		FUZZ_CHECK(!is_xses_field(p, content));
		pos += n + (nl != NULL);
	}

	/* Rewriting the result again removes nothing more. */
	if (out.len > inslen) {
		FUZZ_CHECK(ses_headers_rewrite(out.buf + inslen,
		    out.len - inslen, NULL, 0, sink_emit, &again) == 0);
		FUZZ_CHECK(again.len == out.len - inslen &&
		    memcmp(again.buf, out.buf + inslen, again.len) == 0);
	}
	free(out.buf);
	free(again.buf);
	free(expect);
}

static void
check_validators(const char *s)
{
	static const size_t rlens[] = { 0, 1, 8, 32, 64 };
	char region[64];
	size_t n = strlen(s);

	if (ses_headers_tags_valid(s)) {
		FUZZ_CHECK(strchr(s, '=') != NULL);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(strchr("=, _-", s[i]) != NULL ||
			    (s[i] >= '0' && s[i] <= '9') ||
			    (s[i] >= 'a' && s[i] <= 'z') ||
			    (s[i] >= 'A' && s[i] <= 'Z'));
	}
	if (ses_headers_config_set_valid(s)) {
		char tag[2 * 64 + 2];

		FUZZ_CHECK(n >= 1 && n <= 64);
		snprintf(tag, sizeof(tag), "%s=%s", s, s);
		FUZZ_CHECK(ses_headers_tags_valid(tag));
	}
	for (size_t i = 0; i < sizeof(rlens) / sizeof(rlens[0]); i++) {
		int ok;

		memset(region, 'x', sizeof(region));
		ok = ses_headers_arn_valid(s, rlens[i] > 0 ? region : NULL,
		    rlens[i]);
		if (rlens[i] > 0)
			FUZZ_CHECK(memchr(region, '\0', rlens[i]) != NULL);
		if (ok) {
			FUZZ_CHECK(strncmp(s, "arn:", 4) == 0);
			FUZZ_CHECK(strstr(s, ":identity/") != NULL);
			if (rlens[i] > 0) {
				char want[80];

				FUZZ_CHECK(region[0] != '\0');
				snprintf(want, sizeof(want), ":ses:%s:", region);
				FUZZ_CHECK(strstr(s, want) != NULL);
			}
		}
		/* A region buffer large enough never changes the answer. */
		if (rlens[i] == 0 || rlens[i] >= 32)
			FUZZ_CHECK(ses_headers_arn_valid(s, NULL, 0) == ok);
	}
}

/* The input as a From: value: the walk over its mailboxes ends (every
 * address it gives moves *pos on), stays inside the value, and gives
 * NUL-terminated, bounded, lower-cased addresses; an error gives "". */
static void
check_addresses(const char *v, size_t len)
{
	char dst[SES_ADDRESS_MAX];
	size_t pos = 0, steps = 0;
	int r;

	for (;;) {
		size_t before = pos;

		if ((r = ses_headers_next_address(v, len, &pos, dst)) != 1)
			break;
		FUZZ_CHECK(pos > before && pos <= len);
		FUZZ_CHECK(memchr(dst, '\0', sizeof(dst)) != NULL);
		FUZZ_CHECK(dst[0] != '\0');
		for (const char *a = dst; *a != '\0'; a++)
			FUZZ_CHECK(!(*a >= 'A' && *a <= 'Z'));
		FUZZ_CHECK(++steps <= len);
	}
	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK(pos <= len);
	if (r == -1)
		FUZZ_CHECK(dst[0] == '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ses_header_info whole, head;
	char *msg, *str;

	/* An exact-size copy without a NUL after it: ASan sees overreads. */
	if ((msg = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(msg, data, size);

	ses_headers_scan(msg, size, &whole);
	check_info(&whole, msg, size);
	if (whole.complete) {
		ses_headers_scan(msg, whole.header_len, &head);
		FUZZ_CHECK(head.complete == whole.complete &&
		    head.header_len == whole.header_len &&
		    head.nfields == whole.nfields &&
		    head.malformed == whole.malformed &&
		    strcmp(head.duplicate, whole.duplicate) == 0 &&
		    strcmp(head.from_address, whole.from_address) == 0);
		check_rewrite(msg, whole.header_len);
	} else
		check_rewrite(msg, size);
	check_addresses(msg, size);
	free(msg);

	if ((str = malloc(size + 1)) == NULL)
		abort();
	memcpy(str, data, size);
	str[size] = '\0';
	check_validators(str);
	free(str);
	return 0;
}
