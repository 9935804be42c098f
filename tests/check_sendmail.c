/*
 * check_sendmail.c — the pure part of sendmail.sesrelay: options as
 * sendmail takes them, address lists, the header block and its
 * completion, and the body filter over every split of its input; the
 * maildrop file: its envelope, and the data check over every split.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "maildrop_file.h"
#include "sendmail_msg.h"

static int
parse(struct sm_opts *o, const char *progname, char *why, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, why);
	argv[argc++] = (char *)progname;
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return sm_opts_parse(o, argc, argv, progname, why, 256);
}

START_TEST(test_opts)
{
	struct sm_opts o;
	char why[256];
	ck_assert_int_eq(parse(&o, "sendmail", why, "-t", "-oi", "-f",
	    "a@x", "-FJo Doe", "-oem", "-odb", "-B", "8BITMIME", "-N",
	    "never", "-v", "b@y", "c@z", NULL), SM_EX_OK);
	ck_assert(o.extract && o.ignore_dots && o.verbose == 1);
	ck_assert_str_eq(o.sender, "a@x");
	ck_assert_str_eq(o.fullname, "Jo Doe");
	ck_assert_uint_eq(o.nrcpts, 2);
	ck_assert_str_eq(o.rcpts[0], "b@y");
	ck_assert_str_eq(o.rcpts[1], "c@z");
	ck_assert_int_eq(o.mode, SM_MODE_DELIVER);
	sm_opts_free(&o);

	ck_assert_int_eq(parse(&o, "sendmail", why, "-ti", "-ra@x", "--",
	    "-odd@y", NULL), SM_EX_OK);
	ck_assert(o.extract && o.ignore_dots);
	ck_assert_str_eq(o.sender, "a@x");
	ck_assert_uint_eq(o.nrcpts, 1);
	ck_assert_str_eq(o.rcpts[0], "-odd@y");
	sm_opts_free(&o);

	ck_assert_int_eq(parse(&o, "sendmail", why, "-bp", NULL), SM_EX_OK);
	ck_assert_int_eq(o.mode, SM_MODE_MAILQ);
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "sendmail", why, "-bs", NULL), SM_EX_OK);
	ck_assert_int_eq(o.mode, SM_MODE_SMTP);
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "mailq", why, NULL), SM_EX_OK);
	ck_assert_int_eq(o.mode, SM_MODE_MAILQ);
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "newaliases", why, NULL), SM_EX_OK);
	ck_assert_int_eq(o.mode, SM_MODE_NEWALIASES);
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "sendmail", why, "-q", NULL), SM_EX_OK);
	ck_assert_int_eq(o.mode, SM_MODE_FLUSH);
	sm_opts_free(&o);

	ck_assert_int_eq(parse(&o, "sendmail", why, "-Z", NULL), SM_EX_USAGE);
	ck_assert_str_eq(why, "-Z: unknown option");
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "sendmail", why, "-f", NULL), SM_EX_USAGE);
	ck_assert_str_eq(why, "option -f needs an argument");
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "sendmail", why, "-bd", NULL), SM_EX_USAGE);
	ck_assert(strstr(why, "sesrelayd") != NULL);
	sm_opts_free(&o);
	ck_assert_int_eq(parse(&o, "sendmail", why, "-bz", NULL), SM_EX_USAGE);
	sm_opts_free(&o);
}
END_TEST

START_TEST(test_addr_list)
{
	char **l = NULL;
	size_t n = 0;
	ck_assert_uint_eq(sm_addr_list(" \"Doe, Jo\" <jo@x.example>, b@y "
	    "(Bee, B), undisclosed:;, grp: c@z, <d@z>; ", &l, &n), 4);
	ck_assert_str_eq(l[0], "jo@x.example");
	ck_assert_str_eq(l[1], "b@y");
	ck_assert_str_eq(l[2], "c@z");
	ck_assert_str_eq(l[3], "d@z");
	/* a quoted local part inside <> may hold '>' and ',' */
	ck_assert_uint_eq(sm_addr_list(" <\"a>b\"@x>, J <\"c,\\\"d\"@y>", &l, &n),
	    2);
	ck_assert_str_eq(l[4], "\"a>b\"@x");
	ck_assert_str_eq(l[5], "\"c,\\\"d\"@y");
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}
END_TEST

/* each case: value in, value out with "@h.example" added where Postfix's
 * cleanup adds @myorigin */
START_TEST(test_addr_qualify)
{
	static const char *const cases[][2] = {
		{ " root", " root@h.example" },
		{ " root (Cron Daemon)", " root@h.example (Cron Daemon)" },
		{ " Ops <ops>, a@x", " Ops <ops@h.example>, a@x" },
		{ " \"Doe, J\" <jd>", " \"Doe, J\" <jd@h.example>" },
		{ " \"a b\"", " \"a b\"@h.example" },
		{ " \"a@b\"", " \"a@b\"@h.example" },
		{ " <>", " <>" },
		{ " undisclosed-recipients:;", " undisclosed-recipients:;" },
		{ " grp: a, b@y, c;, d", " grp: a@h.example, b@y, c@h.example;"
		    ", d@h.example" },
		{ " a,\r\n  b", " a@h.example,\r\n  b@h.example" },
		{ " (only a comment)", " (only a comment)" },
		{ " Broken <x", " Broken <x" },
		{ "", "" },
		{ " x@y (c, d), e", " x@y (c, d), e@h.example" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *q = sm_addr_qualify(cases[i][0], "h.example");
		ck_assert_msg(strcmp(q, cases[i][1]) == 0, "[%s] -> [%s]",
		    cases[i][0], q);
		free(q);
	}
	char *a = sm_addr_qualify_one("root", "h.example");
	ck_assert_str_eq(a, "root@h.example");
	free(a);
	a = sm_addr_qualify_one("", "h.example");
	ck_assert_str_eq(a, "");
	free(a);
	a = sm_addr_qualify_one("a@x", "h.example");
	ck_assert_str_eq(a, "a@x");
	free(a);

	/* cron's header block: From, To qualified; Subject untouched */
	const char *in = "From: root (Cron Daemon)\nTo: root\n"
	    "Subject: Cron <root@h> ls\nReply-To: ops\n\nbody\n";
	struct sm_headers h;
	size_t used, len;
	sm_headers_parse(&h, in, strlen(in), 1, &used);
	char *r = sm_headers_render(&h, 1, "root@h.example", NULL,
	    "h.example", 0, 1, &len);
	ck_assert(strstr(r, "From: root@h.example (Cron Daemon)\r\n"
	    "To: root@h.example\r\nSubject: Cron <root@h> ls\r\n"
	    "Reply-To: ops@h.example\r\n") == r);
	free(r);
	sm_headers_free(&h);
}
END_TEST

START_TEST(test_headers)
{
	const char msg[] = "From mbox line\nTo: a@x,\n  b@y\nBcc: s@z\n"
	    "Subject: h\xc3\xa9\r\n\nbody\n";
	struct sm_headers h;
	size_t used;
	sm_headers_parse(&h, msg, strlen(msg), 1, &used);
	ck_assert_uint_eq(h.nlines, 3);
	ck_assert_str_eq(msg + used, "\nbody\n");
	ck_assert(h.has_to && !h.has_from && !h.has_date && !h.has_msgid);
	ck_assert_uint_eq(h.nrcpts, 3);
	ck_assert_str_eq(h.rcpts[2], "s@z");
	size_t len;
	char *r = sm_headers_render(&h, 1, "me@d.example", "Jo \"J\" Doe",
	    "d.example", 0, 0xabcULL, &len);
	ck_assert_uint_eq(strlen(r), len);
	ck_assert(strstr(r, "To: a@x,\r\n  b@y\r\n") == r);
	ck_assert(strstr(r, "Bcc") == NULL);
	ck_assert(strstr(r, "Subject: h\xc3\xa9\r\n") != NULL);
	ck_assert(strstr(r, "\r\nFrom: \"Jo \\\"J\\\" Doe\" <me@d.example>"
	    "\r\n") != NULL);
	ck_assert(strstr(r, "\r\nDate: ") != NULL);
	ck_assert(strstr(r, "0000000000000ABC@d.example>\r\n") != NULL);
	free(r);
	r = sm_headers_render(&h, 0, "me@d.example", "J\xc3\xb6", "d",
	    0, 1, &len);
	ck_assert(strstr(r, "Bcc: s@z\r\n") != NULL);
	ck_assert(strstr(r, "From: =?UTF-8?B?SsO2?= <me@d.example>\r\n") !=
	    NULL);
	free(r);
	sm_headers_free(&h);

	/* no header at all, and a partial line left for later */
	sm_headers_parse(&h, "hello\n", 6, 1, &used);
	ck_assert_uint_eq(h.nlines, 0);
	ck_assert_uint_eq(used, 0);
	sm_headers_free(&h);
	sm_headers_parse(&h, "To: a@x\nSubj", 12, 0, &used);
	ck_assert_uint_eq(h.nlines, 1);
	ck_assert_uint_eq(used, 8);
	sm_headers_free(&h);
	sm_headers_parse(&h, "To: a@x\nFrom: b@y", 17, 1, &used);
	ck_assert_uint_eq(h.nlines, 2);
	ck_assert(h.has_from);
	sm_headers_free(&h);
}
END_TEST

static const struct {
	int ignore_dots;
	const char *in, *out;
} filt[] = {
	{ 0, "a\nb\n", "a\r\nb\r\n" },
	{ 0, "a\r\nb", "a\r\nb\r\n" },		/* no last line end */
	{ 0, ".x\n..\n", "..x\r\n...\r\n" },	/* stuffed */
	{ 0, "a\n.\nlost\n", "a\r\n" },		/* "." alone ends it */
	{ 0, "a\n.\r\nlost\n", "a\r\n" },
	{ 0, "a\n.", "a\r\n" },
	{ 1, "a\n.\nb\n", "a\r\n..\r\nb\r\n" },	/* -i: a dot is data */
	{ 1, ".", "..\r\n" },
	{ 0, "a\rb\n", "a\rb\r\n" },		/* a bare CR is kept */
	{ 0, ".\rb\n", "..\rb\r\n" },
	{ 0, "x\r", "x\r\n" },
	{ 0, "", "" },
	{ 0, "\n\n", "\r\n\r\n" },
	{ 0, "\xc3\xa9\n", "\xc3\xa9\r\n" },
};

START_TEST(test_filter)
{
	const char *in = filt[_i].in;
	size_t n = strlen(in);
	/* every split in two pieces gives the same output */
	for (size_t cut = 0; cut <= n; cut++) {
		struct sm_filter f;
		char out[64];
		size_t w;
		sm_filter_init(&f, filt[_i].ignore_dots);
		w = sm_filter_run(&f, in, cut, out);
		w += sm_filter_run(&f, in + cut, n - cut, out + w);
		w += sm_filter_end(&f, out + w);
		out[w] = '\0';
		ck_assert_msg(strcmp(out, filt[_i].out) == 0, "case %d cut "
		    "%zu: got '%s'", _i, cut, out);
	}
}
END_TEST

START_TEST(test_maildrop_envelope)
{
	const char *rcpts[] = { "a@x.example", "b@y.example" };
	size_t len;
	char *env = md_envelope("", rcpts, 2, &len);
	struct md_envelope e;
	const char *why = NULL;
	/* incomplete at every shorter length, then whole */
	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(md_envelope_parse(&e, env, i, 10, &why), 0);
	ck_assert_int_eq(md_envelope_parse(&e, env, len, 10, &why),
	    (long)len);
	ck_assert_str_eq(e.sender, "");
	ck_assert_uint_eq(e.nrcpts, 2);
	ck_assert_str_eq(e.rcpts[1], "b@y.example");
	md_envelope_free(&e);
	ck_assert_int_eq(md_envelope_parse(&e, env, len, 1, &why), -1);
	ck_assert_str_eq(why, "more recipients than max_recipients");
	free(env);
	static const struct { const char *in, *why; } bad[] = {
		{ "From x\n", "not a maildrop file (no sesrelay-maildrop 1 "
		    "line)" },
		{ MD_MAGIC "rcpt a@x\n\n", "a rcpt line before the sender "
		    "line" },
		{ MD_MAGIC "sender a@x\n\n", "no recipient" },
		{ MD_MAGIC "sender a@x\nrcpt b@x\r\n\n",
		    "a control character in an address" },
		{ MD_MAGIC "sender a@x>\nrcpt b@x\n\n",
		    "an angle bracket in an address" },
		{ MD_MAGIC "sender a@x\nsender b@x\n\n", "two sender lines" },
		{ MD_MAGIC "sender a@x\nRCPT TO:<b@x>\n\n",
		    "an envelope line that is neither sender nor rcpt" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(md_envelope_parse(&e, bad[i].in,
		    strlen(bad[i].in), 10, &why), -1);
		ck_assert_str_eq(why, bad[i].why);
	}
	ck_assert(md_name_ok("00692f3a1b0123456789abcdef0123456789abcdef"));
	ck_assert(!md_name_ok("00692f3a1b0123456789abcdef0123456789abcdef.bad"));
	ck_assert(!md_name_ok("00692f3a1b0123456789ABCDEF0123456789abcdef"));
	ck_assert(!md_name_ok(".."));
}
END_TEST

/* The data check over in, split at a and b: the status, the octets let
 * through (out, *outlen), the input taken (*used), the reason if bad. */
static enum md_status
check_split(const char *in, size_t a, size_t b, char *out, size_t *outlen,
    size_t *used, const char **why)
{
	size_t cuts[] = { 0, a, b, strlen(in) };
	struct md_data d;
	md_data_init(&d);
	*outlen = *used = 0;
	enum md_status st = MD_MORE;
	for (int i = 0; i < 3 && st == MD_MORE; i++) {
		size_t ol, u;
		st = md_data_check(&d, in + cuts[i], cuts[i + 1] - cuts[i],
		    out + *outlen, &ol, &u);
		*outlen += ol;
		*used += u;
	}
	*why = d.why;
	return st;
}

START_TEST(test_maildrop_data)
{
	static const struct {
		const char *in;
		enum md_status st;
		const char *out;	/* or the reason */
		size_t used;		/* for MD_END */
	} cases[] = {
		{ "a\r\n..b\r\n.c\r\n.\r\n", MD_END, "a\r\n..b\r\n.c\r\n", 15 },
		{ ".\r\n", MD_END, "", 3 },
		{ "x\r\n.\r\nMAIL FROM:<e@x>\r\n", MD_END, "x\r\n", 6 },
		{ "a\nb\r\n.\r\n", MD_BAD, "a bare LF in the message", 0 },
		{ "a\r\n.\nb\r\n.\r\n", MD_BAD, "a bare LF in the message", 0 },
		{ "a\rb\r\n.\r\n", MD_BAD, "a bare CR in the message", 0 },
		{ "a\r\n.\rb\r\n.\r\n", MD_BAD, "a bare CR in the message", 0 },
		{ "a\r\nno end\r\n", MD_MORE, "a\r\nno end\r\n", 0 },
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		for (size_t a = 0; a <= len; a++)
			for (size_t b = a; b <= len; b++) {
				size_t ol, used;
				const char *why;
				enum md_status st = check_split(cases[i].in, a,
				    b, out, &ol, &used, &why);
				ck_assert_int_eq(st, cases[i].st);
				if (st == MD_BAD) {
					ck_assert_str_eq(why, cases[i].out);
					continue;
				}
				ck_assert_uint_eq(ol, strlen(cases[i].out));
				ck_assert(memcmp(out, cases[i].out, ol) == 0);
				if (st == MD_END)
					ck_assert_uint_eq(used, cases[i].used);
			}
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sendmail");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_opts);
	tcase_add_test(tc, test_addr_list);
	tcase_add_test(tc, test_addr_qualify);
	tcase_add_test(tc, test_headers);
	tcase_add_test(tc, test_maildrop_envelope);
	tcase_add_test(tc, test_maildrop_data);
	tcase_add_loop_test(tc, test_filter, 0,
	    (int)(sizeof(filt) / sizeof(filt[0])));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
