/* check_sendmail.c — unit tests for sendmail_msg.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sendmail_msg.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define S(s) s, sizeof(s) - 1

/*
 * Command lines: argv as one string, words split at spaces.
 */
static const struct {
	const char *argv;
	int ok;
	enum sm_mode mode;
	int extract, dot;
	const char *sender, *fullname;
	size_t nrcpts;
	const char *first_rcpt;
	const char *err;	/* a substring of the error */
} arg_cases[] = {
	{ "sendmail a@x", 1, SM_MODE_DELIVER, 0, 0, NULL, NULL, 1, "a@x", NULL },
	{ "sendmail -t -i", 1, SM_MODE_DELIVER, 1, 1, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -ti", 1, SM_MODE_DELIVER, 1, 1, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -oi -t", 1, SM_MODE_DELIVER, 1, 1, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -o i b@y", 1, SM_MODE_DELIVER, 0, 1, NULL, NULL, 1, "b@y", NULL },
	{ "sendmail -fme@x a@y", 1, SM_MODE_DELIVER, 0, 0, "me@x", NULL, 1, "a@y", NULL },
	{ "sendmail -f me@x -F Me a@y b@z", 1, SM_MODE_DELIVER, 0, 0, "me@x", "Me", 2, "a@y", NULL },
	{ "sendmail -r me@x a@y", 1, SM_MODE_DELIVER, 0, 0, "me@x", NULL, 1, "a@y", NULL },
	{ "sendmail -oem -oee -odb -odi -om -bm a@y", 1, SM_MODE_DELIVER, 0, 0, NULL, NULL, 1, "a@y", NULL },
	{ "sendmail -bp", 1, SM_MODE_LIST, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -bs", 1, SM_MODE_SMTP, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -bi", 1, SM_MODE_NEWALIASES, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -I", 1, SM_MODE_NEWALIASES, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -q", 1, SM_MODE_FLUSH, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -q1h", 1, SM_MODE_FLUSH, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "/usr/bin/mailq", 1, SM_MODE_LIST, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "/usr/sbin/newaliases", 1, SM_MODE_NEWALIASES, 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "sendmail -- -a@y", 1, SM_MODE_DELIVER, 0, 0, NULL, NULL, 1, "-a@y", NULL },
	{ "sendmail -B 8BITMIME -N success,failure -V id1 -R hdrs a@y", 1, SM_MODE_DELIVER, 0, 0, NULL, NULL, 1, "a@y", NULL },
	{ "sendmail -N never -B7bit a@y", 1, SM_MODE_DELIVER, 0, 0, NULL, NULL, 1, "a@y", NULL },
	{ "sendmail -v -U -G -h 5 -L tag -X /tmp/log a@y", 1, SM_MODE_DELIVER, 0, 0, NULL, NULL, 1, "a@y", NULL },
	{ "sendmail -Q a@y", 0, 0, 0, 0, NULL, NULL, 0, NULL, "unknown option -Q" },
	{ "sendmail -ty", 0, 0, 0, 0, NULL, NULL, 0, NULL, "unknown option -y" },
	{ "sendmail -bd", 0, 0, 0, 0, NULL, NULL, 0, NULL, "-bd is not supported" },
	{ "sendmail -bt", 0, 0, 0, 0, NULL, NULL, 0, NULL, "-bt is not supported" },
	{ "sendmail -f", 0, 0, 0, 0, NULL, NULL, 0, NULL, "-f needs a value" },
	{ "sendmail -B 9BIT a@y", 0, 0, 0, 0, NULL, NULL, 0, NULL, "7BIT or 8BITMIME" },
	{ "sendmail -N success,bogus a@y", 0, 0, 0, 0, NULL, NULL, 0, NULL, "-N success,bogus" },
	{ "sendmail -N success,success a@y", 0, 0, 0, 0, NULL, NULL, 0, NULL, "-N" },
	{ "sendmail -V a+b a@y", 0, 0, 0, 0, NULL, NULL, 0, NULL, "envelope id" },
	{ "sendmail -R all a@y", 0, 0, 0, 0, NULL, NULL, 0, NULL, "full or hdrs" },
};

START_TEST(test_args)
{
	char buf[256], *argv[32], err[256] = "";
	int argc = 0;
	struct sm_opts o;

	snprintf(buf, sizeof(buf), "%s", arg_cases[_i].argv);
	for (char *w = strtok(buf, " "); w != NULL; w = strtok(NULL, " "))
		argv[argc++] = w;
	argv[argc] = NULL;
	int r = sm_parse_args(argc, argv, &o, err, sizeof(err));
	if (!arg_cases[_i].ok) {
		ck_assert_int_eq(r, -1);
		ck_assert_msg(strstr(err, arg_cases[_i].err) != NULL,
		    "'%s': error '%s'", arg_cases[_i].argv, err);
		return;
	}
	ck_assert_msg(r == 0, "'%s': %s", arg_cases[_i].argv, err);
	ck_assert_int_eq(o.mode, arg_cases[_i].mode);
	ck_assert_int_eq(o.extract, arg_cases[_i].extract);
	ck_assert_int_eq(o.dot_is_data, arg_cases[_i].dot);
	if (arg_cases[_i].sender)
		ck_assert_str_eq(o.sender, arg_cases[_i].sender);
	else
		ck_assert_ptr_null(o.sender);
	if (arg_cases[_i].fullname)
		ck_assert_str_eq(o.fullname, arg_cases[_i].fullname);
	ck_assert_uint_eq(o.nrcpts, arg_cases[_i].nrcpts);
	if (arg_cases[_i].first_rcpt)
		ck_assert_str_eq(o.rcpts[0], arg_cases[_i].first_rcpt);
}
END_TEST

/*
 * Where the header ends.
 */
static const struct {
	const char *in;
	size_t len;
	int eof;
	int found;
	size_t hdrlen, seplen;
} hdr_cases[] = {
	{ S("Subject: x\n\nbody\n"), 1, 1, 11, 1 },
	{ S("Subject: x\r\n\r\nbody\r\n"), 1, 1, 12, 2 },
	{ S("Subject: x\n folded\nTo: a\n\nb"), 1, 1, 25, 1 },
	{ S("hello world\n"), 1, 1, 0, 0 },		/* no header at all */
	{ S("Subject: x\nhello world\n"), 1, 1, 11, 0 },
	{ S(" continued\n"), 1, 1, 0, 0 },		/* nothing to continue */
	{ S("Subject: x\n.\n"), 1, 1, 11, 0 },		/* a "." line */
	{ S("Subject: x"), 1, 1, 10, 0 },		/* eof, no newline */
	{ S("Subject: x"), 0, 0, 0, 0 },		/* needs more */
	{ S("Subject: x\n"), 0, 0, 0, 0 },
	{ S("Subject: x\n\r"), 0, 0, 0, 0 },		/* CR of a CRLF? */
	{ S("Subj"), 0, 0, 0, 0 },
	{ S("hello world, a long first line"), 0, 1, 0, 0 },	/* decided */
	{ S(""), 1, 1, 0, 0 },
	{ S("X-8bit: caf\xc3\xa9\n\nb"), 1, 1, 14, 1 },
};

START_TEST(test_header_end)
{
	size_t h = 99, s = 99;
	int r = sm_header_end(hdr_cases[_i].in, hdr_cases[_i].len,
	    hdr_cases[_i].eof, &h, &s);
	ck_assert_msg(r == hdr_cases[_i].found, "case %d: %d", _i, r);
	if (r) {
		ck_assert_uint_eq(h, hdr_cases[_i].hdrlen);
		ck_assert_uint_eq(s, hdr_cases[_i].seplen);
	}
}
END_TEST

START_TEST(test_fields)
{
	static const char h[] = "To: a@x,\r\n b@y\r\nBcc: c@z\nX-No-LF: 1";
	struct sm_field f;
	size_t pos = 0;

	ck_assert(sm_field_next(h, sizeof(h) - 1, &pos, &f));
	ck_assert(sm_field_is(&f, "to"));
	ck_assert_uint_eq(f.len, 16);
	ck_assert_uint_eq(f.valuelen, 11);
	ck_assert(memcmp(f.value, " a@x,\r\n b@y", 11) == 0);
	ck_assert(sm_field_next(h, sizeof(h) - 1, &pos, &f));
	ck_assert(sm_field_is(&f, "BCC"));
	ck_assert_uint_eq(f.valuelen, 4);
	ck_assert(sm_field_next(h, sizeof(h) - 1, &pos, &f));
	ck_assert(sm_field_is(&f, "X-No-LF"));
	ck_assert_uint_eq(f.valuelen, 2);
	ck_assert(!sm_field_next(h, sizeof(h) - 1, &pos, &f));
}
END_TEST

/*
 * Address lists: the addresses found, joined with '|'; "ERR" for -1.
 */
static const struct {
	const char *in;
	const char *out;
} addr_cases[] = {
	{ "a@x", "a@x" },
	{ " a@x , b@y ", "a@x|b@y" },
	{ "John Doe <j@x>, \"Doe, Jane\" <jane@x>", "j@x|jane@x" },
	{ "j@x (John, Doe), k@y", "j@x|k@y" },
	{ "undisclosed-recipients:;", "" },
	{ "team: a@x, b@y;, c@z", "a@x|b@y|c@z" },
	{ "\"john doe\"@x", "\"john doe\"@x" },
	{ "<@relay:u@x>", "u@x" },
	{ "a@x,\r\n\tb@y", "a@x|b@y" },
	{ "=?UTF-8?B?w6k=?= <e@x>", "e@x" },
	{ "root", "root" },
	{ ",,", "" },
	{ "<a@x", "ERR" },
	{ "a@x>", "ERR" },
	{ "\"open", "ERR" },
	{ "(open", "ERR" },
	{ "<a@x> <b@y>", "ERR" },
};

START_TEST(test_addr)
{
	char out[1024] = "", addr[SM_ADDR_MAX];
	const char *in = addr_cases[_i].in;
	size_t pos = 0;
	int r;

	while ((r = sm_addr_next(in, strlen(in), &pos, addr)) == 1) {
		if (out[0] != '\0')
			strcat(out, "|");
		strcat(out, addr);
	}
	if (r == -1)
		snprintf(out, sizeof(out), "ERR");
	ck_assert_str_eq(out, addr_cases[_i].out);
}
END_TEST

START_TEST(test_addr_too_long)
{
	char in[1000], addr[SM_ADDR_MAX];
	size_t pos = 0;
	memset(in, 'a', sizeof(in) - 3);
	memcpy(in + sizeof(in) - 3, "@x", 3);
	ck_assert_int_eq(sm_addr_next(in, strlen(in), &pos, addr), -1);
}
END_TEST

static const struct {
	const char *name, *addr, *out;
} from_cases[] = {
	{ NULL, "u@x", "From: u@x\r\n" },
	{ "", "u@x", "From: u@x\r\n" },
	{ "Cron Daemon", "u@x", "From: Cron Daemon <u@x>\r\n" },
	{ "Doe, John", "u@x", "From: \"Doe, John\" <u@x>\r\n" },
	{ "A \"B\" C.", "u@x", "From: \"A \\\"B\\\" C.\" <u@x>\r\n" },
	{ "Evil\r\nBcc: x@y", "u@x", "From: \"Evil  Bcc: x@y\" <u@x>\r\n" },
	{ "Caf\xc3\xa9", "u@x", "From: =?UTF-8?B?Q2Fmw6k=?= <u@x>\r\n" },
};

START_TEST(test_from)
{
	char out[512];
	size_t n = sm_make_from(out, sizeof(out), from_cases[_i].name,
	    from_cases[_i].addr);
	ck_assert_uint_eq(n, strlen(from_cases[_i].out));
	ck_assert_str_eq(out, from_cases[_i].out);
}
END_TEST

START_TEST(test_from_long_utf8)
{
	char name[200] = "", out[1024];
	for (int i = 0; i < 40; i++)
		strcat(name, "\xc3\xa9");	/* 80 bytes of é */
	size_t n = sm_make_from(out, sizeof(out), name, "u@x");
	ck_assert_uint_gt(n, 0);
	/* two encoded-words, neither splits a character: 44 + 36 bytes */
	ck_assert_ptr_nonnull(strstr(out, "?= =?UTF-8?B?"));
	ck_assert_ptr_null(strstr(strstr(out, "?= =?") + 5, "?= =?"));
	ck_assert_uint_eq(sm_make_from(out, 20, name, "u@x"), 0);
}
END_TEST

START_TEST(test_date)
{
	struct tm tm = { .tm_year = 126, .tm_mon = 11, .tm_mday = 6,
	    .tm_hour = 9, .tm_min = 5, .tm_sec = 7, .tm_wday = 0,
	    .tm_gmtoff = -(4 * 3600 + 30 * 60) };
	char out[64];
	size_t n = sm_make_date(out, sizeof(out), &tm);
	ck_assert_str_eq(out, "Date: Sun, 6 Dec 2026 09:05:07 -0430\r\n");
	ck_assert_uint_eq(n, strlen(out));
	tm.tm_gmtoff = 3600;
	sm_make_date(out, sizeof(out), &tm);
	ck_assert_str_eq(out, "Date: Sun, 6 Dec 2026 09:05:07 +0100\r\n");
	ck_assert_uint_eq(sm_make_date(out, 10, &tm), 0);
}
END_TEST

/*
 * The filter: input, -i, expected output (finish included), done.
 */
static const struct {
	const char *in;
	size_t len;
	int dot_is_data;
	const char *out;
	size_t outlen;
	int done;
} filt_cases[] = {
	{ S("a\nb\n"), 0, S("a\r\nb\r\n"), 0 },
	{ S("a\r\nb\r\n"), 0, S("a\r\nb\r\n"), 0 },
	{ S("a\rb\r"), 0, S("a\r\nb\r\n"), 0 },		/* bare CR */
	{ S("no newline"), 0, S("no newline\r\n"), 0 },
	{ S(""), 0, S(""), 0 },
	{ S("\n\n"), 0, S("\r\n\r\n"), 0 },
	{ S(".x\n"), 0, S("..x\r\n"), 0 },
	{ S("a\n..\n"), 0, S("a\r\n...\r\n"), 0 },
	{ S("a\n.\nlost\n"), 0, S("a\r\n"), 1 },		/* sendmail's end */
	{ S("a\n.\r\nlost\n"), 0, S("a\r\n"), 1 },
	{ S("a\n."), 0, S("a\r\n"), 1 },
	{ S("a\n.\nkept\n"), 1, S("a\r\n..\r\nkept\r\n"), 0 },	/* -i */
	{ S("a\n."), 1, S("a\r\n..\r\n"), 0 },
	{ S(".\n"), 1, S("..\r\n"), 0 },
	{ S("a.\n b.\n"), 0, S("a.\r\n b.\r\n"), 0 },
	{ S("\r\n.\r\n"), 0, S("\r\n"), 1 },
	{ S("8bit \xc3\xa9\x00z\n"), 0, S("8bit \xc3\xa9\x00z\r\n"), 0 },
};

static void
run_filter(int i, size_t step)
{
	struct sm_filter f;
	size_t inlen = filt_cases[i].len, n = 0;
	char *out = malloc(2 * inlen + 16);
	ck_assert_ptr_nonnull(out);
	sm_filter_init(&f, filt_cases[i].dot_is_data);
	for (size_t off = 0; off < inlen; off += step) {
		size_t k = inlen - off < step ? inlen - off : step;
		n += sm_filter_feed(&f, filt_cases[i].in + off, k, out + n);
	}
	n += sm_filter_finish(&f, out + n);
	size_t want = filt_cases[i].outlen;
	ck_assert_msg(n == want && memcmp(out, filt_cases[i].out, n) == 0,
	    "case %d step %zu: got '%.*s'", i, step, (int)n, out);
	ck_assert_int_eq(f.done, filt_cases[i].done);
	free(out);
}

START_TEST(test_filter)
{
	run_filter(_i, filt_cases[_i].len ? filt_cases[_i].len : 1);
	run_filter(_i, 1);	/* byte by byte: the state carries */
	run_filter(_i, 2);
}
END_TEST

START_TEST(test_filter_bound)
{
	/* the worst case stays within 2 * len + 4 per call */
	static const char worst[] = ".\r.\r.\n.\n.\r\n";
	struct sm_filter f;
	char out[64];
	sm_filter_init(&f, 1);
	for (size_t i = 0; i < sizeof(worst) - 1; i++) {
		size_t n = sm_filter_feed(&f, worst + i, 1, out);
		ck_assert_uint_le(n, 2 * 1 + 4);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sendmail");
	TCase *tc = tcase_create("sendmail");

	tcase_add_loop_test(tc, test_args, 0, NELEM(arg_cases));
	tcase_add_loop_test(tc, test_header_end, 0, NELEM(hdr_cases));
	tcase_add_test(tc, test_fields);
	tcase_add_loop_test(tc, test_addr, 0, NELEM(addr_cases));
	tcase_add_test(tc, test_addr_too_long);
	tcase_add_loop_test(tc, test_from, 0, NELEM(from_cases));
	tcase_add_test(tc, test_from_long_utf8);
	tcase_add_test(tc, test_date);
	tcase_add_loop_test(tc, test_filter, 0, NELEM(filt_cases));
	tcase_add_test(tc, test_filter_bound);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
