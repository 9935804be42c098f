/*
 * check_log.c — unit tests for log.c: one line per event in text and
 * JSON, JSON escaping (quotes, control characters, invalid UTF-8 from
 * peers), newlines never forging a second line, debug gating.
 */
#include <check.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char captured[65536];

/* Run fn with stderr going to a file; captured holds what it wrote. */
static void
capture(void (*fn)(const void *), const void *arg)
{
	FILE *tmp = tmpfile();
	int saved;
	size_t n;

	ck_assert_ptr_nonnull(tmp);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_ne(saved, -1);
	ck_assert_int_ne(dup2(fileno(tmp), 2), -1);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(captured, 1, sizeof(captured) - 1, tmp);
	captured[n] = '\0';
	fclose(tmp);
}

static void
info(const void *msg)
{
	log_info("%s", (const char *)msg);
}

/* The msg field of a captured JSON line, checking the rest of it. */
static const char *
json_msg(const char *level)
{
	static char msg[sizeof(captured)];
	char head[64];
	size_t len = strlen(captured);

	ck_assert_msg(strncmp(captured, "{\"ts\":\"", 7) == 0, "%s", captured);
	ck_assert_msg(len > 40 && captured[len - 1] == '\n' &&
	    captured[len - 2] == '}' && captured[len - 3] == '"',
	    "not one object ending the line: %s", captured);
	ck_assert_msg(strchr(captured, '\n') == captured + len - 1,
	    "more than one line: %s", captured);
	/* {"ts":"2026-11-23T19:46:38.123Z","level":"info","msg":"..."} */
	ck_assert_msg(captured[11] == '-' && captured[17] == 'T' &&
	    captured[30] == 'Z', "timestamp: %s", captured);
	snprintf(head, sizeof(head), "\",\"level\":\"%s\",\"msg\":\"", level);
	ck_assert_msg(strncmp(captured + 31, head, strlen(head)) == 0,
	    "level: %s", captured);
	snprintf(msg, sizeof(msg), "%.*s", (int)(len - 3 - 31 - strlen(head)),
	    captured + 31 + strlen(head));
	return msg;
}

static const struct {
	const char *in;
	const char *json;	/* the msg field */
} escape_cases[] = {
	{ "delivery id=X status=sent", "delivery id=X status=sent" },
	{ "say \"hi\" \\ bye", "say \\\"hi\\\" \\\\ bye" },
	{ "tab\there", "tab\\u0009here" },
	{ "ctl\x01\x1f\x7f.", "ctl\\u0001\\u001f\\u007f." },
	/* a newline from peer data never makes a second entry */
	{ "one\ntwo\rthree", "one two three" },
	/* valid UTF-8 stays as it is */
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
	/* anything else becomes U+FFFD, byte by byte */
	{ "x\xffy", "x\\ufffdy" },
	{ "\xc0\xaf", "\\ufffd\\ufffd" },			/* overlong */
	{ "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd" },		/* surrogate */
	{ "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd" },	/* > U+10FFFF */
	{ "end\xe2\x82", "end\\ufffd\\ufffd" },			/* cut short */
	{ "\xc3", "\\ufffd" },
};

START_TEST(test_json_escape)
{
	log_init("sesrelayd", 1, 0);
	log_set_format(LOG_FORMAT_JSON);
	capture(info, escape_cases[_i].in);
	ck_assert_str_eq(json_msg("info"), escape_cases[_i].json);
}
END_TEST

START_TEST(test_text)
{
	log_init("sesrelayd", 1, 0);
	log_set_format(LOG_FORMAT_TEXT);
	capture(info, "delivery id=X\nforged line");
	ck_assert_str_eq(captured, "sesrelayd: delivery id=X forged line\n");
}
END_TEST

static void
levels(const void *unused)
{
	log_debug("hidden");
	log_set_debug(1);
	log_debug("shown");
	errno = ENOENT;
	log_warn("open %s", "/x");
	log_warnx("plain");
}

START_TEST(test_levels)
{
	log_init("sesrelayd", 1, 0);
	log_set_format(LOG_FORMAT_TEXT);
	capture(levels, NULL);
	ck_assert_str_eq(captured, "sesrelayd: shown\n"
	    "sesrelayd: open /x: No such file or directory\n"
	    "sesrelayd: plain\n");
	log_set_debug(0);
	log_set_format(LOG_FORMAT_JSON);
	capture(levels, NULL);
	ck_assert_ptr_nonnull(strstr(captured, "\"level\":\"debug\",\"msg\":\"shown\""));
	ck_assert_ptr_nonnull(strstr(captured, "\"level\":\"warning\",\"msg\":\"open /x: No such file or directory\""));
	ck_assert_ptr_null(strstr(captured, "hidden"));
}
END_TEST

/* A message longer than the buffers is cut, and still valid JSON. */
START_TEST(test_long)
{
	static char big[20000];
	size_t i;

	for (i = 0; i + 1 < sizeof(big); i++)
		big[i] = (i % 3 == 0) ? '"' : (i % 3 == 1) ? '\x01' : 'a';
	log_init("sesrelayd", 1, 0);
	log_set_format(LOG_FORMAT_JSON);
	capture(info, big);
	const char *m = json_msg("info");
	ck_assert_uint_gt(strlen(m), 1000);
	/* no escape cut in half: the field ends after a whole one */
	size_t n = strlen(m);
	ck_assert_msg(m[n - 1] == 'a' || m[n - 1] == '"' || m[n - 1] == '1',
	    "ends in %s", m + n - 8);
	ck_assert_msg(!(n >= 1 && m[n - 1] == '\\'), "ends in a backslash");
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_loop_test(tc, test_json_escape, 0, NELEM(escape_cases));
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_levels);
	tcase_add_test(tc, test_long);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
