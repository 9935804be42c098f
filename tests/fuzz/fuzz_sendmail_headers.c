/*
 * fuzz_sendmail_headers.c — what sendmail.sesrelay does to a caller's
 * header block: sm_headers_parse(), sm_headers_render() (Bcc removed,
 * addresses qualified, missing fields added) and sm_addr_qualify() on
 * arbitrary input.
 *
 * Invariants: the parse consumes at most the input; the rendered block is
 * NUL-free up to its length, made of CRLF-ended lines, keeps no Bcc: field
 * when told to drop it, and has From:, Date: and Message-ID: (the caller's or added);
 * sm_addr_qualify only inserts "@domain" (the result is longer by a
 * multiple of it, within the bound its buffer was sized for) and is
 * idempotent: a qualified value needs nothing more.
 */
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "sendmail_msg.h"

#define DOMAIN "h.example"

static void
check_qualify(const char *v)
{
	size_t n = strlen(v), seps = 1;
	for (size_t i = 0; i < n; i++)
		seps += v[i] == ',' || v[i] == ';';
	char *q = sm_addr_qualify(v, DOMAIN);
	size_t ql = strlen(q), dl = sizeof(DOMAIN);	/* with the '@' */
	FUZZ_CHECK(ql >= n && (ql - n) % dl == 0);
	FUZZ_CHECK((ql - n) / dl <= seps);
	char *again = sm_addr_qualify(q, DOMAIN);
	FUZZ_CHECK(strcmp(again, q) == 0);
	free(again);
	free(q);
}

/* 1 if some line of r[0..len) (after "\r\n" or at 0) starts with name: */
static int
has_field(const char *r, size_t len, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i + nl < len; i++)
		if ((i == 0 || r[i - 1] == '\n') &&
		    strncasecmp(r + i, name, nl) == 0 && r[i + nl] == ':')
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size + 1);
	if (v == NULL)
		abort();
	memcpy(v, data, size);
	v[size] = '\0';
	check_qualify(v);

	for (int eof = 0; eof <= 1; eof++) {
		struct sm_headers h;
		size_t used = 0, len = 0;
		sm_headers_parse(&h, v, size, eof, &used);
		FUZZ_CHECK(used <= size);
		for (size_t i = 0; i < h.nrcpts; i++)
			check_qualify(h.rcpts[i]);
		char *r = sm_headers_render(&h, 1, "me@" DOMAIN, "Full Name",
		    DOMAIN, 0, 1, &len);
		FUZZ_CHECK(memchr(r, '\0', len) == NULL && r[len] == '\0');
		FUZZ_CHECK(len >= 2 && r[len - 2] == '\r' && r[len - 1] == '\n');
		FUZZ_CHECK(!has_field(r, len, "Bcc"));
		FUZZ_CHECK(has_field(r, len, "Date") || h.has_date);
		FUZZ_CHECK(has_field(r, len, "From") || h.has_from);
		FUZZ_CHECK(has_field(r, len, "Message-ID") || h.has_msgid);
		free(r);
		sm_headers_free(&h);
	}
	free(v);
	return 0;
}
