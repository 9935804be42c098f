/* check_ses_headers.c — unit tests for ses_headers.c. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ses_headers.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal with its length, so that tests may hold NUL bytes. */
#define S(x) x, sizeof(x) - 1

/* Copy into a buffer of exactly len bytes (no NUL after it), so that the
 * sanitizers catch any read past the end. */
static char *
exact_copy(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(p);
	memcpy(p, s, len);
	return p;
}

static void
scan_exact(const char *msg, size_t len, struct ses_header_info *info)
{
	char *p = exact_copy(msg, len);
	ses_headers_scan(p, len, info);
	free(p);
}

/* ---------------------------------------------------------------- scan */

static const struct scan_case {
	const char *msg;
	size_t len;
	int complete;
	size_t header_len;
	size_t nfields;
	const char *duplicate;
	const char *from;
	int malformed;
} scan_cases[] = {
	/* Header length in various shapes. */
	{ S("Subject: hi\r\n\r\nbody\r\n"), 1, 15, 1, "", "", 0 },
	{ S("Subject: hi\r\n\r\n"), 1, 15, 1, "", "", 0 },
	{ S("Subject: hi\r\nTo: a@b.example\r\n\r\nSubject: body\r\n"),
	    1, 32, 2, "", "", 0 },
	{ S("Subject: hi\r\n"), 0, 0, 1, "", "", 0 },
	{ S("Subject: hi\r\nTo: x\r\n"), 0, 0, 2, "", "", 0 },
	{ S("Subject: hi\r\n\r"), 0, 0, 1, "", "", 0 },
	{ S(""), 0, 0, 0, "", "", 0 },
	{ S("\r\n"), 1, 2, 0, "", "", 0 },
	{ S("\r\nSubject: in the body\r\n"), 1, 2, 0, "", "", 0 },
	{ S("\n"), 1, 1, 0, "", "", 0 },
	{ S("Subject: a\nTo: b\n\nbody"), 1, 18, 2, "", "", 0 },
	{ S("Subject: a\nTo: b\r\n\r\nbody"), 1, 20, 2, "", "", 0 },
	{ S("Subject: hi\r\nTo"), 0, 0, 1, "", "", 0 },
	{ S("Subject:hi\r\nX-Empty:\r\n\r\n"), 1, 24, 2, "", "", 0 },
	{ S("Subject: a\0b\r\n\r\n"), 1, 16, 1, "", "", 0 },
	/* Folded fields. */
	{ S("Subject: a\r\n b\r\n\tc\r\nTo: x\r\n\r\n"), 1, 29, 2, "", "", 0 },
	{ S("Subject: a\r\n   \r\nTo: x\r\n\r\n"), 1, 26, 2, "", "", 0 },
	{ S("Subject:\r\n folded\r\nSubject: again\r\n\r\n"),
	    1, 37, 2, "Subject", "", 0 },
	/* Duplicates. */
	{ S("subject: a\r\nSUBJECT: b\r\n\r\n"), 1, 26, 2, "SUBJECT", "", 0 },
	{ S("Received: a\r\nReceived: b\r\nComments: c\r\nComments: d\r\n"
	    "Keywords: e\r\nKeywords: f\r\nResent-Date: g\r\n"
	    "Resent-Date: h\r\nX-Mailer: i\r\nX-Mailer: j\r\n\r\n"),
	    1, 138, 10, "", "", 0 },
	{ S("Cc: a\r\nTo: b\r\nTo: c\r\nCc: d\r\n\r\n"), 1, 30, 4, "To", "", 0 },
	{ S("To: a\r\nTo: b\r\nTo: c\r\nCc: d\r\nCc: e\r\n\r\n"),
	    1, 37, 5, "To", "", 0 },
	{ S("Subject : a\r\nSubject: b\r\n\r\n"), 1, 27, 2, "Subject", "", 0 },
	{ S("Subject: a\r\nSubjects: b\r\nSubjec: c\r\n\r\n"),
	    1, 38, 3, "", "", 0 },
	{ S("Subject: a\r\n\r\nSubject: b\r\n"), 1, 14, 1, "", "", 0 },
	{ S("Subject: a\r\nSubject: b\r\n"), 0, 0, 2, "Subject", "", 0 },
	/* Malformed lines. */
	{ S("Subject: a\r\nnot a header\r\nTo: b\r\n\r\n"), 1, 35, 2, "", "", 1 },
	{ S(" leading\r\nSubject: a\r\n\r\n"), 1, 24, 1, "", "", 1 },
	{ S(": no name\r\n\r\n"), 1, 13, 0, "", "", 1 },
	{ S("Sub ject: a\r\n\r\n"), 1, 15, 0, "", "", 1 },
	{ S("Sub\xe9ject: a\r\n\r\n"), 1, 15, 0, "", "", 1 },
	{ S("Subject\r\n\r\n"), 1, 11, 0, "", "", 1 },
	{ S("From sender@example.com Mon Jan  1 00:00:00 2024\r\n"
	    "Subject: a\r\n\r\n"), 1, 64, 1, "", "", 1 },
	{ S("\rSubject: a\r\n\r\n"), 1, 15, 0, "", "", 1 },
	{ S("Subject: a\r\nbody without separator\r\n"), 0, 0, 1, "", "", 1 },
	{ S("Subject: a\r\nnot a header\r\n"), 0, 0, 1, "", "", 1 },
	/* From: variants. */
	{ S("From: a@b.example\r\n\r\n"), 1, 21, 1, "", "a@b.example", 0 },
	{ S("From: Alice <Alice@Example.COM>\r\n\r\n"),
	    1, 35, 1, "", "alice@example.com", 0 },
	{ S("From: <a@x.org>\r\n\r\n"), 1, 19, 1, "", "a@x.org", 0 },
	{ S("From:a@x.org\r\n\r\n"), 1, 16, 1, "", "a@x.org", 0 },
	{ S("From: a@x.org (Alice Example)\r\n\r\n"),
	    1, 33, 1, "", "a@x.org", 0 },
	{ S("From: <a@x.org> (comment)\r\n\r\n"), 1, 29, 1, "", "a@x.org", 0 },
	{ S("From: \"Doe, John\" <j@x.org>\r\n\r\n"),
	    1, 31, 1, "", "j@x.org", 0 },
	{ S("From: \"evil@y.org <evil@y.org>\" <real@x.org>\r\n\r\n"),
	    1, 48, 1, "", "real@x.org", 0 },
	{ S("From: \"quote \\\" <no@y.org>\" <real@x.org>\r\n\r\n"),
	    1, 44, 1, "", "real@x.org", 0 },
	{ S("From: (see <evil@y.org>) a@x.org\r\n\r\n"),
	    1, 36, 1, "", "a@x.org", 0 },
	{ S("From: (nested (comment <e@y.org>)) <a@x.org>\r\n\r\n"),
	    1, 48, 1, "", "a@x.org", 0 },
	{ S("From: \"Bob\"\r\n <Bob@X.org>\r\n\r\n"),
	    1, 29, 1, "", "bob@x.org", 0 },
	{ S("From:\r\n Alice\r\n\t<a@x.org>\r\nTo: b@y.org\r\n\r\n"),
	    1, 42, 2, "", "a@x.org", 0 },
	{ S("From: \"Long\r\n Name\" <a@x.org>\r\n\r\n"),
	    1, 33, 1, "", "a@x.org", 0 },
	{ S("From: =?UTF-8?Q?J=C3=B6rg?= <jorg@x.org>\r\n\r\n"),
	    1, 44, 1, "", "jorg@x.org", 0 },
	{ S("From: a@x.org, b@y.org\r\n\r\n"), 1, 26, 1, "", "a@x.org", 0 },
	{ S("From: Alice <a@x.org>, Bob <b@y.org>\r\n\r\n"),
	    1, 40, 1, "", "a@x.org", 0 },
	{ S("From: <@relay.example:a@x.org>\r\n\r\n"),
	    1, 34, 1, "", "a@x.org", 0 },
	{ S("From: \"John Doe\"@X.org\r\n\r\n"),
	    1, 26, 1, "", "\"john doe\"@x.org", 0 },
	/* quotes that are not needed: the same mailbox without them */
	{ S("From: \"Billing\"@Example.com\r\n\r\n"),
	    1, 31, 1, "", "billing@example.com", 0 },
	{ S("From: Billing <\"billing\"@example.com>\r\n\r\n"),
	    1, 41, 1, "", "billing@example.com", 0 },
	{ S("From: \"a\".\"b\\c\"@x.org\r\n\r\n"), 1, 25, 1, "", "a.bc@x.org", 0 },
	{ S("From: \"a..b\"@x.org\r\n\r\n"), 1, 22, 1, "", "\"a..b\"@x.org", 0 },
	{ S("From: \"a@b\"@x.org\r\n\r\n"), 1, 21, 1, "", "\"a@b\"@x.org", 0 },
	{ S("From: a . b @ x . org\r\n\r\n"), 1, 25, 1, "", "a.b@x.org", 0 },
	{ S("From: Friends: a@x.org, b@y.org;\r\n\r\n"),
	    1, 36, 1, "", "a@x.org", 0 },
	{ S("from: A@X.ORG\r\n\r\n"), 1, 17, 1, "", "a@x.org", 0 },
	{ S("From : a@x.org\r\n\r\n"), 1, 18, 1, "", "a@x.org", 0 },
	{ S("From: a@x.org\r\n"), 0, 0, 1, "", "a@x.org", 0 },
	{ S("From: a@x.org"), 0, 0, 1, "", "a@x.org", 0 },
	{ S("From: a@x.org\r\nFrom: b@y.org\r\n\r\n"),
	    1, 32, 2, "From", "a@x.org", 0 },
	{ S("To: b@y.org\r\nFrom: a@x.org\r\nSubject: s\r\n\r\n"),
	    1, 42, 3, "", "a@x.org", 0 },
	{ S("Subject: s\r\n\r\nFrom: a@x.org\r\n"), 1, 14, 1, "", "", 0 },
	{ S("From: Alice\r\n\r\n"), 1, 15, 1, "", "", 0 },
	{ S("From:\r\n\r\n"), 1, 9, 1, "", "", 0 },
	{ S("From: John Doe a@x.org\r\n\r\n"), 1, 26, 1, "", "", 0 },
	{ S("From: <a@x.org\r\n\r\n"), 1, 18, 1, "", "", 0 },
	{ S("From: a@x.org>\r\n\r\n"), 1, 18, 1, "", "", 0 },
	{ S("From: <<a@x.org>>\r\n\r\n"), 1, 21, 1, "", "", 0 },
	{ S("From: <>\r\n\r\n"), 1, 12, 1, "", "", 0 },
	{ S("From: a@b@x.org\r\n\r\n"), 1, 19, 1, "", "", 0 },
	{ S("From: @x.org\r\n\r\n"), 1, 16, 1, "", "", 0 },
	{ S("From: a@\r\n\r\n"), 1, 12, 1, "", "", 0 },
	{ S("From: Undisclosed:;\r\n\r\n"), 1, 23, 1, "", "", 0 },
	{ S("From: a@x.org (unclosed\r\n\r\n"), 1, 27, 1, "", "", 0 },
	{ S("From: \"unclosed <a@x.org>\r\n\r\n"), 1, 29, 1, "", "", 0 },
	{ S("From: j\xc3\xb6rg@x.org\r\n\r\n"), 1, 21, 1, "", "", 0 },
	{ S("From: <a\0b@x.org>\r\n\r\n"), 1, 21, 1, "", "", 0 },
	{ S("From: \"a\\\0b\"@x.org\r\n\r\n"), 1, 22, 1, "", "", 0 },
	{ S("From: a\\b@x.org\r\n\r\n"), 1, 19, 1, "", "", 0 },
	/* An unquoted "," ends the display name: not a mailbox. */
	{ S("From: Billing, Inc <billing@x.org>\r\n\r\n"),
	    1, 38, 1, "", "", 0 },
	{ S("From: Billing <billing@x.org\r\n\r\n"), 1, 32, 1, "", "", 0 },
	{ S("From: <a@x.org> junk\r\n\r\n"), 1, 24, 1, "", "", 0 },
	{ S("From: , a@x.org\r\n\r\n"), 1, 19, 1, "", "a@x.org", 0 },
};

START_TEST(test_scan)
{
	const struct scan_case *c = &scan_cases[_i];
	struct ses_header_info info;

	memset(&info, 0x55, sizeof(info));
	scan_exact(c->msg, c->len, &info);
	ck_assert_msg(info.complete == c->complete, "case %d: complete %d",
	    _i, info.complete);
	ck_assert_msg(info.header_len == c->header_len,
	    "case %d: header_len %zu", _i, info.header_len);
	ck_assert_msg(info.nfields == c->nfields, "case %d: nfields %zu",
	    _i, info.nfields);
	ck_assert_msg(strcmp(info.duplicate, c->duplicate) == 0,
	    "case %d: duplicate '%s'", _i, info.duplicate);
	ck_assert_msg(strcmp(info.from_address, c->from) == 0,
	    "case %d: from '%s'", _i, info.from_address);
	ck_assert_msg(info.malformed == c->malformed, "case %d: malformed %d",
	    _i, info.malformed);
}
END_TEST

/* Every prefix of a message: the separator is found exactly when it is
 * all there, and at the same place. */
START_TEST(test_scan_prefixes)
{
	const struct scan_case *c = &scan_cases[_i];
	struct ses_header_info info;

	for (size_t n = 0; n <= c->len; n++) {
		scan_exact(c->msg, n, &info);
		if (c->complete && n >= c->header_len) {
			ck_assert_msg(info.complete == 1 &&
			    info.header_len == c->header_len,
			    "case %d prefix %zu", _i, n);
		} else {
			ck_assert_msg(info.complete == 0 &&
			    info.header_len == 0, "case %d prefix %zu", _i, n);
		}
	}
}
END_TEST

/* Each singleton, spelled differently the second time, is reported as
 * spelled the second time. */
static const struct dup_case {
	const char *first, *second;
} dup_cases[] = {
	{ "Date", "DATE" }, { "From", "from" }, { "Sender", "SENDER" },
	{ "Reply-To", "reply-to" }, { "To", "tO" }, { "Cc", "CC" },
	{ "Bcc", "BCC" }, { "Message-ID", "Message-Id" },
	{ "In-Reply-To", "in-reply-to" }, { "References", "REFERENCES" },
	{ "Subject", "subject" }, { "MIME-Version", "Mime-Version" },
	{ "Content-Type", "content-type" },
	{ "Content-Transfer-Encoding", "Content-transfer-encoding" },
	{ "DKIM-Signature", "dkim-signature" },
};

START_TEST(test_scan_duplicate)
{
	const struct dup_case *c = &dup_cases[_i];
	struct ses_header_info info;
	char msg[256];
	int n;

	/* Once: fine. */
	n = snprintf(msg, sizeof(msg), "%s: x\r\nX-Other: y\r\n\r\n", c->first);
	scan_exact(msg, (size_t)n, &info);
	ck_assert_str_eq(info.duplicate, "");
	/* Twice, with another field and a folded value in between. */
	n = snprintf(msg, sizeof(msg),
	    "%s: x\r\n y\r\nX-Other: y\r\n%s: z\r\n\r\n", c->first, c->second);
	scan_exact(msg, (size_t)n, &info);
	ck_assert_int_eq(info.complete, 1);
	ck_assert_uint_eq(info.nfields, 3);
	ck_assert_str_eq(info.duplicate, c->second);
	/* Twice in the body only: fine. */
	n = snprintf(msg, sizeof(msg), "%s: x\r\n\r\n%s: z\r\n",
	    c->first, c->second);
	scan_exact(msg, (size_t)n, &info);
	ck_assert_str_eq(info.duplicate, "");
}
END_TEST

START_TEST(test_scan_long_from)
{
	struct ses_header_info info;
	char msg[1024], local[300];

	/* An address that does not fit SES_ADDRESS_MAX is left "". */
	memset(local, 'a', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	snprintf(msg, sizeof(msg), "From: <%s@x.org>\r\n\r\n", local);
	scan_exact(msg, strlen(msg), &info);
	ck_assert_int_eq(info.complete, 1);
	ck_assert_str_eq(info.from_address, "");
	/* Cut to SES_ADDRESS_MAX, the domain would still look valid. */
	snprintf(msg, sizeof(msg), "From: a@%s\r\n\r\n", local);
	scan_exact(msg, strlen(msg), &info);
	ck_assert_str_eq(info.from_address, "");
	/* The longest that fits. */
	local[SES_ADDRESS_MAX - 1 - 6] = '\0';
	snprintf(msg, sizeof(msg), "From: <%s@x.org>\r\n\r\n", local);
	scan_exact(msg, strlen(msg), &info);
	ck_assert_uint_eq(strlen(info.from_address), SES_ADDRESS_MAX - 1);
	/* A display name longer than SES_ADDRESS_MAX does not matter. */
	memset(local, 'N', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	snprintf(msg, sizeof(msg), "From: %s <A@X.org>\r\n\r\n", local);
	scan_exact(msg, strlen(msg), &info);
	ck_assert_str_eq(info.from_address, "a@x.org");
}
END_TEST

/* Every mailbox of a From: value, in order: the addresses joined with
 * "|", then "!" if the walk ended on an element that is not a mailbox. */
static const struct addr_case {
	const char *value;
	const char *want;
} addr_cases[] = {
	{ "a@x.org", "a@x.org" },
	{ "", "" },
	{ " \r\n", "" },
	{ "Undisclosed:;", "" },
	{ "a@x.org, B@Y.org", "a@x.org|b@y.org" },
	{ "<a@x.org>,<b@y.org>", "a@x.org|b@y.org" },
	{ "a@x.org, , b@y.org,", "a@x.org|b@y.org" },
	{ "Alice <a@x.org>, \"B, C\" <b@y.org>\r\n", "a@x.org|b@y.org" },
	{ "\"Billing, Inc\" <billing@x.org>", "billing@x.org" },
	{ "Billing (Billing, Inc) <billing@x.org>", "billing@x.org" },
	{ "billing@x.org (Billing, Inc)", "billing@x.org" },
	{ "\"q, \\\" <e@y.org>\" <real@x.org>, e@y.org",
	    "real@x.org|e@y.org" },
	{ "Team: a@x.org, b@y.org;, c@z.org", "a@x.org|b@y.org|c@z.org" },
	{ "a@x.org,\r\n Bob\r\n <b@y.org>", "a@x.org|b@y.org" },
	{ "Billing, Inc <billing@x.org>", "!" },
	{ "a@x.org, Billing, Inc <billing@x.org>", "a@x.org!" },
	{ "Billing <billing@x.org", "!" },
	{ "<a@x.org> junk, b@y.org", "!" },
	{ "a@x.org, John Doe b@y.org", "a@x.org!" },
	{ "a@x.org, <>", "a@x.org!" },
	{ "a@x.org, (unclosed", "a@x.org!" },
};

START_TEST(test_next_address)
{
	const struct addr_case *c = &addr_cases[_i];
	char got[1024] = "", a[SES_ADDRESS_MAX];
	size_t pos = 0, len = strlen(c->value);
	int r, n = 0;

	while ((r = ses_headers_next_address(c->value, len, &pos, a)) == 1) {
		ck_assert_uint_le(pos, len);
		if (n++ > 0)
			strcat(got, "|");
		strcat(got, a);
	}
	if (r < 0) {
		strcat(got, "!");
		ck_assert_uint_eq(pos, len);
	}
	ck_assert_str_eq(a, "");
	ck_assert_msg(strcmp(got, c->want) == 0, "case %d '%s': got '%s'",
	    _i, c->value, got);
}
END_TEST

START_TEST(test_scan_has_from)
{
	struct ses_header_info info;
	const char *m = "To: b@y.org\r\nFrom: Billing, Inc <b@x.org>\r\n"
	    " (folded)\r\nFrom: second@x.org\r\n\r\n";

	scan_exact(m, strlen(m), &info);
	ck_assert_int_eq(info.has_from, 1);
	ck_assert_str_eq(info.from_address, "");
	ck_assert_uint_eq(info.from_value, 18);
	ck_assert_uint_eq(info.from_value_len,
	    strlen(" Billing, Inc <b@x.org>\r\n (folded)\r\n"));
	m = "Subject: no from\r\n\r\nFrom: body@x.org\r\n";
	scan_exact(m, strlen(m), &info);
	ck_assert_int_eq(info.has_from, 0);
}
END_TEST

/* ------------------------------------------------------------- rewrite */

struct sink {
	char buf[8192];
	size_t len;
	size_t calls;
};

static void
sink_emit(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(s->len + n, sizeof(s->buf));
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->calls++;
}

static const struct rewrite_case {
	const char *hdr;
	size_t len;
	struct ses_header_field ins[3];
	size_t nins;
	const char *want;
	size_t removed;
	size_t calls;		/* emit calls expected, 0: do not check */
} rewrite_cases[] = {
	/* Nothing to do: the header goes out in one piece. */
	{ S("Subject: x\r\nTo: a@b\r\n\r\n"), { { NULL, NULL } }, 0,
	    "Subject: x\r\nTo: a@b\r\n\r\n", 0, 1 },
	{ S("\r\n"), { { NULL, NULL } }, 0, "\r\n", 0, 1 },
	/* Insert order, at the top. */
	{ S("Subject: x\r\n\r\n"),
	    { { "X-SES-SOURCE-ARN", "arn:aws:ses:us-east-1:123456789012:"
	    "identity/example.com" }, { "X-SES-CONFIGURATION-SET", "cs" },
	    { "X-SES-MESSAGE-TAGS", "a=b, c=d" } }, 3,
	    "X-SES-SOURCE-ARN: arn:aws:ses:us-east-1:123456789012:"
	    "identity/example.com\r\nX-SES-CONFIGURATION-SET: cs\r\n"
	    "X-SES-MESSAGE-TAGS: a=b, c=d\r\nSubject: x\r\n\r\n", 0, 0 },
	{ S("\r\n"), { { "Received", "from a\r\n\tby b" } }, 1,
	    "Received: from a\r\n\tby b\r\n\r\n", 0, 0 },
	/* Strip, with continuation lines. */
	{ S("X-SES-FROM-ARN: arn:aws:ses:us-east-1:111111111111:\r\n"
	    " identity/evil.example\r\n\tmore\r\nSubject: x\r\n\r\n"),
	    { { NULL, NULL } }, 0, "Subject: x\r\n\r\n", 1, 1 },
	{ S("Subject: x\r\nx-ses-source-arn: arn:aws:ses:us-east-1:\r\n"
	    "\t111111111111:identity/evil.example\r\nTo: a@b\r\n"
	    " c@d\r\n\r\n"), { { "X-SES-SOURCE-ARN", "mine" } }, 1,
	    "X-SES-SOURCE-ARN: mine\r\nSubject: x\r\nTo: a@b\r\n c@d\r\n\r\n",
	    1, 0 },
	{ S("Subject: x\r\nX-Ses-Message-Tags: a=b\r\n"
	    "X-SES-CONFIGURATION-SET: evil\r\n  cont\r\n"
	    "X-SES-RETURN-PATH-ARN: r\r\nTo: t\r\n\r\n"),
	    { { NULL, NULL } }, 0, "Subject: x\r\nTo: t\r\n\r\n", 3, 2 },
	{ S("Subject: x\r\nX-SES-LIST-MANAGEMENT-OPTIONS: l; topic=t\r\n"
	    "\r\n"), { { NULL, NULL } }, 0, "Subject: x\r\n\r\n", 1, 2 },
	{ S("X-SES-CONFIGURATION-SET : obsolete\r\n\r\n"), { { NULL, NULL } },
	    0, "\r\n", 1, 1 },
	{ S("X-SES-:\r\nSubject: x\r\n\r\n"), { { NULL, NULL } }, 0,
	    "Subject: x\r\n\r\n", 1, 0 },
	/* Not X-SES-* fields: kept. */
	{ S("X-SESSION: 1\r\nX-SES: 2\r\nX-SESX-A: 3\r\nX-X-SES-A: 4\r\n"
	    "Subject: X-SES-A: 5\r\n\r\n"), { { NULL, NULL } }, 0,
	    "X-SESSION: 1\r\nX-SES: 2\r\nX-SESX-A: 3\r\nX-X-SES-A: 4\r\n"
	    "Subject: X-SES-A: 5\r\n\r\n", 0, 1 },
	{ S("Subject: x\r\n X-SES-FROM-ARN: folded\r\n\r\n"),
	    { { NULL, NULL } }, 0,
	    "Subject: x\r\n X-SES-FROM-ARN: folded\r\n\r\n", 0, 1 },
	{ S("X-SES-FROM-ARN no colon\r\nSubject: x\r\n\r\n"),
	    { { NULL, NULL } }, 0,
	    "X-SES-FROM-ARN no colon\r\nSubject: x\r\n\r\n", 0, 1 },
	/* Original bytes untouched: odd spacing, no refolding, bare LF. */
	{ S("Subject:   x  \r\n\t y\r\nX-SES-A: 1\nTo:a\n\n"),
	    { { NULL, NULL } }, 0, "Subject:   x  \r\n\t y\r\nTo:a\n\n", 1, 0 },
	/* The body is never looked at. */
	{ S("Subject: x\r\n\r\nX-SES-FROM-ARN: in the body\r\n"),
	    { { NULL, NULL } }, 0,
	    "Subject: x\r\n\r\nX-SES-FROM-ARN: in the body\r\n", 0, 1 },
	{ S("X-SES-A: 1\r\n\r\n X-SES-FROM-ARN: x\r\n"),
	    { { NULL, NULL } }, 0, "\r\n X-SES-FROM-ARN: x\r\n", 1, 1 },
	/* A section cut short: strip to the end, add nothing. */
	{ S("Subject: x\r\nX-SES-A: 1\r\n more"), { { NULL, NULL } }, 0,
	    "Subject: x\r\n", 1, 1 },
	{ S("X-SES-A: 1\r\n"), { { NULL, NULL } }, 0, "", 1, 0 },
	{ S(""), { { "A", "1" } }, 1, "A: 1\r\n", 0, 0 },
};

START_TEST(test_rewrite)
{
	const struct rewrite_case *c = &rewrite_cases[_i];
	struct sink *s = calloc(1, sizeof(*s));
	char *hdr = exact_copy(c->hdr, c->len);
	size_t removed;

	ck_assert_ptr_nonnull(s);
	removed = ses_headers_rewrite(hdr, c->len, c->ins, c->nins,
	    sink_emit, s);
	ck_assert_msg(removed == c->removed, "case %d: removed %zu", _i,
	    removed);
	ck_assert_msg(s->len == strlen(c->want) &&
	    memcmp(s->buf, c->want, s->len) == 0,
	    "case %d: got '%.*s'", _i, (int)s->len, s->buf);
	if (c->calls != 0)
		ck_assert_msg(s->calls == c->calls, "case %d: %zu emit calls",
		    _i, s->calls);
	free(hdr);
	free(s);
}
END_TEST

/* The caller passes only the header section of a longer message. */
START_TEST(test_rewrite_header_only)
{
	static const char msg[] = "X-SES-FROM-ARN: evil\r\nSubject: x\r\n\r\n"
	    "X-SES-FROM-ARN: body line\r\n";
	static const struct ses_header_field ins[] = {
		{ "X-SES-FROM-ARN", "good" }
	};
	struct ses_header_info info;
	struct sink *s = calloc(1, sizeof(*s));
	static const char want[] = "X-SES-FROM-ARN: good\r\nSubject: x\r\n\r\n";

	ck_assert_ptr_nonnull(s);
	scan_exact(msg, sizeof(msg) - 1, &info);
	ck_assert_int_eq(info.complete, 1);
	ck_assert_uint_eq(info.header_len, 36);
	ck_assert_uint_eq(ses_headers_rewrite(msg, info.header_len, ins, 1,
	    sink_emit, s), 1);
	ck_assert_uint_eq(s->len, sizeof(want) - 1);
	ck_assert(memcmp(s->buf, want, s->len) == 0);
	free(s);
}
END_TEST

/* -------------------------------------------------------- value checks */

static const struct valid_case {
	const char *s;
	int valid;
} tags_cases[] = {
	{ "a=b", 1 },
	{ "a=b,c=d", 1 },
	{ "a=b, c=d", 1 },
	{ " a=b ,  c=d ", 1 },
	{ "Name_1-x=Val-2_y", 1 },
	{ "campaign=spring-2024, tenant=ACME_1", 1 },
	{ "", 0 },
	{ " ", 0 },
	{ "a", 0 },
	{ "a=", 0 },
	{ "=b", 0 },
	{ "a==b", 0 },
	{ "a=b,", 0 },
	{ ",a=b", 0 },
	{ "a=b,,c=d", 0 },
	{ "a = b", 0 },
	{ "a=b c=d", 0 },
	{ "a=b;c=d", 0 },
	{ "a=b,\tc=d", 0 },
	{ "a.b=c", 0 },
	{ "a=b/c", 0 },
	{ "a=\xc3\xa9", 0 },
	{ "a=b\r\n", 0 },
	{ NULL, 0 },
};

START_TEST(test_tags)
{
	const struct valid_case *c = &tags_cases[_i];

	ck_assert_msg(ses_headers_tags_valid(c->s) == c->valid, "'%s'",
	    c->s ? c->s : "(null)");
}
END_TEST

START_TEST(test_tags_length)
{
	char s[600];

	/* Names and values of 256 fit, 257 do not. */
	memset(s, 'n', 256);
	strcpy(s + 256, "=v");
	ck_assert_int_eq(ses_headers_tags_valid(s), 1);
	memset(s, 'n', 257);
	strcpy(s + 257, "=v");
	ck_assert_int_eq(ses_headers_tags_valid(s), 0);
	strcpy(s, "n=");
	memset(s + 2, 'v', 256);
	s[258] = '\0';
	ck_assert_int_eq(ses_headers_tags_valid(s), 1);
	memset(s + 2, 'v', 257);
	s[259] = '\0';
	ck_assert_int_eq(ses_headers_tags_valid(s), 0);
}
END_TEST

static const struct valid_case config_set_cases[] = {
	{ "my-set_1", 1 },
	{ "a", 1 },
	{ "0123456789012345678901234567890123456789012345678901234567890123", 1 },
	{ "01234567890123456789012345678901234567890123456789012345678901234", 0 },
	{ "", 0 },
	{ "a b", 0 },
	{ "a.b", 0 },
	{ " a", 0 },
	{ "a\n", 0 },
	{ "\xc3\xa9", 0 },
	{ NULL, 0 },
};

START_TEST(test_config_set)
{
	const struct valid_case *c = &config_set_cases[_i];

	ck_assert_msg(ses_headers_config_set_valid(c->s) == c->valid, "'%s'",
	    c->s ? c->s : "(null)");
}
END_TEST

static const struct arn_case {
	const char *s;
	int valid;
	const char *region;
} arn_cases[] = {
	{ "arn:aws:ses:us-east-1:123456789012:identity/example.com", 1,
	    "us-east-1" },
	{ "arn:aws:ses:eu-west-2:123456789012:identity/user@example.com", 1,
	    "eu-west-2" },
	{ "arn:aws:ses:ap-southeast-1:000000000000:identity/a", 1,
	    "ap-southeast-1" },
	{ "arn:aws-us-gov:ses:us-gov-west-1:123456789012:identity/example.com",
	    1, "us-gov-west-1" },
	{ "arn:aws-cn:ses:cn-northwest-1:123456789012:identity/example.cn", 1,
	    "cn-northwest-1" },
	{ "arn:aws:sns:us-east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:SES:us-east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1:12345678901:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1:1234567890123:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1:12345678901a:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1::identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1:123456789012:identity/", 0, "" },
	{ "arn:aws:ses:us-east-1:123456789012:identity", 0, "" },
	{ "arn:aws:ses:us-east-1:123456789012:identity/a b", 0, "" },
	{ "arn:aws:ses:us-east-1:123456789012:identity/a\n", 0, "" },
	{ "arn:aws:ses:us-east-1:123456789012:configuration-set/x", 0, "" },
	{ "arn:aws:ses::123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:US-EAST-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us--1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-one:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:u1-east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east1-1:123456789012:identity/example.com", 1,
	    "us-east1-1" },
	{ "arn:aws:ses:us-east-1-:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us_east_1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1a-1-2-3-4-5-6-7-8-9-10-11-1:123456789012:"
	    "identity/example.com", 0, "" },
	{ "arn:azure:ses:us-east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws-us:ses:us-east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws-us-gov-x:ses:us-east-1:123456789012:identity/x", 0, "" },
	{ "ARN:aws:ses:us-east-1:123456789012:identity/example.com", 0, "" },
	{ " arn:aws:ses:us-east-1:123456789012:identity/example.com", 0, "" },
	{ "arn:aws:ses:us-east-1", 0, "" },
	{ "", 0, "" },
	{ NULL, 0, "" },
};

START_TEST(test_arn)
{
	const struct arn_case *c = &arn_cases[_i];
	char region[32];

	memset(region, 'x', sizeof(region));
	ck_assert_msg(ses_headers_arn_valid(c->s, region, sizeof(region)) ==
	    c->valid, "'%s'", c->s ? c->s : "(null)");
	ck_assert_str_eq(region, c->region);
	ck_assert_int_eq(ses_headers_arn_valid(c->s, NULL, 0), c->valid);
}
END_TEST

START_TEST(test_arn_region_buffer)
{
	static const char arn[] =
	    "arn:aws:ses:us-east-1:123456789012:identity/example.com";
	char region[10];

	ck_assert_int_eq(ses_headers_arn_valid(arn, region, 10), 1);
	ck_assert_str_eq(region, "us-east-1");
	/* Too small for the region: refused rather than truncated. */
	ck_assert_int_eq(ses_headers_arn_valid(arn, region, 9), 0);
	ck_assert_str_eq(region, "");
}
END_TEST

/* ------------------------------------------------------------- fuzzing */

static uint32_t
xorshift(uint32_t *st)
{
	uint32_t x = *st;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *st = x;
}

/*
 * Random messages built from the bytes the parser cares about: no crash,
 * no read past the end (sanitizers), and rewriting without inserts gives
 * a header section that scans the same, minus the removed fields.
 */
START_TEST(test_fuzz)
{
	static const char alphabet[] = "\r\n\r\n\r\n \t:<>\"(),;@\\.aZ-X-SES-"
	    "FromTo\0\x80\xff";
	static const char *const pieces[] = {
		"From: ", "X-SES-A: ", "Subject: ", "\r\n", "\r\n ", "<a@b>",
		"\"q\"", "(c)", "To:", "x-ses-from-arn:"
	};
	uint32_t st = 0x12345678u + (uint32_t)_i;
	struct sink *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	for (int iter = 0; iter < 2000; iter++) {
		char buf[512];
		size_t len = 0, want = xorshift(&st) % sizeof(buf);
		struct ses_header_info a, b;
		char *msg;

		while (len < want) {
			uint32_t r = xorshift(&st);
			if (r % 4 == 0) {
				const char *p = pieces[(r >> 8) % NELEM(pieces)];
				size_t n = strlen(p);
				if (len + n > sizeof(buf))
					break;
				memcpy(buf + len, p, n);
				len += n;
			} else {
				buf[len++] = alphabet[(r >> 8) %
				    (sizeof(alphabet) - 1)];
			}
		}
		msg = exact_copy(buf, len);
		ses_headers_scan(msg, len, &a);
		ck_assert_uint_lt(strlen(a.duplicate), SES_HEADER_NAME_MAX);
		ck_assert_uint_lt(strlen(a.from_address), SES_ADDRESS_MAX);
		for (const char *p = a.from_address; *p != '\0'; p++)
			ck_assert(*p > 32 && *p < 127 && !(*p >= 'A' && *p <= 'Z'));
		if (a.complete) {
			size_t removed;
			ck_assert_uint_le(a.header_len, len);
			ck_assert_int_eq(msg[a.header_len - 1], '\n');
			s->len = s->calls = 0;
			removed = ses_headers_rewrite(msg, a.header_len, NULL, 0,
			    sink_emit, s);
			ses_headers_scan(s->buf, s->len, &b);
			ck_assert_int_eq(b.complete, 1);
			ck_assert_uint_eq(b.header_len, s->len);
			ck_assert_uint_eq(b.nfields + removed, a.nfields);
			ck_assert_str_eq(b.duplicate, a.duplicate);
			ck_assert_str_eq(b.from_address, a.from_address);
			ck_assert_int_eq(b.malformed, a.malformed);
		} else {
			ck_assert_uint_eq(a.header_len, 0);
		}
		free(msg);
	}
	free(s);
}
END_TEST

static Suite *
ses_headers_suite(void)
{
	Suite *s = suite_create("ses_headers");
	TCase *tc;

	tc = tcase_create("scan");
	tcase_add_loop_test(tc, test_scan, 0, (int)NELEM(scan_cases));
	tcase_add_loop_test(tc, test_scan_prefixes, 0, (int)NELEM(scan_cases));
	tcase_add_loop_test(tc, test_scan_duplicate, 0, (int)NELEM(dup_cases));
	tcase_add_test(tc, test_scan_long_from);
	tcase_add_test(tc, test_scan_has_from);
	tcase_add_loop_test(tc, test_next_address, 0, (int)NELEM(addr_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("rewrite");
	tcase_add_loop_test(tc, test_rewrite, 0, (int)NELEM(rewrite_cases));
	tcase_add_test(tc, test_rewrite_header_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_add_loop_test(tc, test_tags, 0, (int)NELEM(tags_cases));
	tcase_add_test(tc, test_tags_length);
	tcase_add_loop_test(tc, test_config_set, 0,
	    (int)NELEM(config_set_cases));
	tcase_add_loop_test(tc, test_arn, 0, (int)NELEM(arn_cases));
	tcase_add_test(tc, test_arn_region_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("fuzz");
	tcase_add_loop_test(tc, test_fuzz, 0, 8);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ses_headers_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
