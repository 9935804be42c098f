/*
 * check_bounce.c — the DSN (bounce_build): an RFC 3464 multipart/report
 * with one per-recipient group for each failed recipient, whose Status
 * and Diagnostic-Code follow from the stored reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>

#include "bounce.h"
#include "config.h"
#include "spool.h"

static struct config *
load(void)
{
	static const char text[] =
	    "[relay]\nhostname = relay.test\nmode = spool\n"
	    "[ses]\nnull_sender = bounces@example.com\n";
	char path[] = "/tmp/check_bounce.XXXXXX", err[CONFIG_ERR_MAX];
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct config *cfg = config_load(path, 0, err);
	unlink(path);
	ck_assert_msg(cfg != NULL, "config: %s", err);
	return cfg;
}

/* An envelope of n recipients, all done but those with a reason in why
 * (NULL entries stay done; "" means failed without a reason). */
static struct spool_envelope *
envelope(size_t n, const char *const *why)
{
	struct spool_envelope *env = calloc(1, sizeof(*env));
	snprintf(env->id, sizeof(env->id), "0123456789ABCDEF");
	env->created = time(NULL) - 60;
	env->sender = strdup("app@example.com");
	env->nrcpts = n;
	env->rcpts = calloc(n, sizeof(*env->rcpts));
	env->rcpt_state = calloc(n, 1);
	env->rcpt_error = calloc(n, sizeof(*env->rcpt_error));
	for (size_t i = 0; i < n; i++) {
		char a[64];
		snprintf(a, sizeof(a), "r%zu@example.net", i);
		env->rcpts[i] = strdup(a);
		env->rcpt_state[i] = why[i] != NULL ? SPOOL_RCPT_FAILED :
		    SPOOL_RCPT_DONE;
		if (why[i] != NULL && why[i][0] != '\0')
			env->rcpt_error[i] = strdup(why[i]);
	}
	return env;
}

/* The DSN of env, NUL-terminated (free it). */
static char *
build(const struct config *cfg, const struct spool_envelope *env)
{
	static const char orig[] = "From: app@example.com\r\nSubject: hi\r\n"
	    "\r\nthe body text\r\n";
	struct evbuffer *o = evbuffer_new(), *out = evbuffer_new();
	evbuffer_add(o, orig, strlen(orig));
	bounce_build(cfg, env, "FEDCBA9876543210", o, out);
	size_t len = evbuffer_get_length(out);
	char *s = malloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(o);
	evbuffer_free(out);
	return s;
}

static const struct {
	const char *reason;	/* "" : failed without a reason */
	const char *status;
	int diagnostic;		/* Diagnostic-Code: smtp; <reason> */
} cases[] = {
	{ "554 Message rejected: Email address is not verified.", "5.0.0", 1 },
	{ "550 5.1.1 Recipient <r1@example.net> refused (fake)", "5.1.1", 1 },
	{ "552 5.3.4 Message is too long.", "5.3.4", 1 },
	{ "554 4.4.7 a 5xx reply with a 4.x.x code", "5.0.0", 1 },
	{ "554", "5.0.0", 1 },
	{ BOUNCE_EXPIRED "; last error: 451 4.0.0 Recipient refused (fake)",
	  "5.4.7", 0 },
	{ BOUNCE_EXPIRED "; last error: none", "5.4.7", 0 },
	{ "", "5.0.0", 0 },
	{ "5.1.1 not a reply", "5.0.0", 0 },
	{ "55 too short", "5.0.0", 0 },
	{ "5543 no separator", "5.0.0", 0 },
};

START_TEST(test_status)
{
	struct config *cfg = load();
	const char *why[2] = { NULL, cases[_i].reason };
	struct spool_envelope *env = envelope(2, why);
	char *dsn = build(cfg, env), want[1024];

	snprintf(want, sizeof(want), "\r\nFinal-Recipient: rfc822; "
	    "r1@example.net\r\nAction: failed\r\nStatus: %s\r\n",
	    cases[_i].status);
	const char *group = strstr(dsn, want);
	ck_assert_msg(group != NULL, "no group with Status %s in:\n%s",
	    cases[_i].status, dsn);
	const char *next = group + strlen(want);
	if (cases[_i].diagnostic) {
		snprintf(want, sizeof(want), "Diagnostic-Code: smtp; %s\r\n"
		    "\r\n--", cases[_i].reason);
		ck_assert_msg(strncmp(next, want, strlen(want)) == 0,
		    "no Diagnostic-Code for \"%s\":\n%s", cases[_i].reason,
		    next);
	} else {
		ck_assert_msg(strncmp(next, "\r\n--", 4) == 0,
		    "more in the group of \"%s\":\n%s", cases[_i].reason, next);
		ck_assert_ptr_null(strstr(dsn, "Diagnostic-Code"));
	}
	/* the reason is in the human-readable part all the same */
	if (cases[_i].reason[0] != '\0') {
		snprintf(want, sizeof(want), "<r1@example.net>: %s\r\n",
		    cases[_i].reason);
		ck_assert_ptr_nonnull(strstr(dsn, want));
	}
	ck_assert_ptr_null(strstr(dsn, "r0@example.net"));
	free(dsn);
	spool_envelope_free(env);
	config_unref(cfg);
}
END_TEST

/* The parts of RFC 3464 / RFC 6522, in order, each after the boundary. */
START_TEST(test_structure)
{
	struct config *cfg = load();
	const char *why[3] = { "550 5.1.1 refused", NULL, "" };
	struct spool_envelope *env = envelope(3, why);
	char *dsn = build(cfg, env), b[128], part[256];

	const char *ct = strstr(dsn, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"");
	ck_assert_msg(ct != NULL, "not a multipart/report:\n%s", dsn);
	ck_assert_ptr_nonnull(strstr(dsn, "\r\nMIME-Version: 1.0\r\n"));
	ck_assert_ptr_nonnull(strstr(dsn,
	    "From: Mail Delivery System <bounces@example.com>\r\n"));
	ck_assert_ptr_nonnull(strstr(dsn, "\r\nTo: <app@example.com>\r\n"));
	const char *q = strchr(ct, '"') + 1;
	ck_assert_int_eq(sscanf(q, "%127[^\"]", b), 1);
	const char *end = strstr(dsn, "\r\n\r\n");	/* end of the header */
	ck_assert_ptr_nonnull(end);

	static const char *const types[] = { "text/plain; charset=us-ascii",
	    "message/delivery-status", "text/rfc822-headers" };
	const char *p = end, *at[3];
	for (size_t i = 0; i < 3; i++) {
		snprintf(part, sizeof(part), "\r\n--%s\r\nContent-Type: %s\r\n"
		    "\r\n", b, types[i]);
		at[i] = strstr(p, part);
		ck_assert_msg(at[i] != NULL, "no part %s in order", types[i]);
		at[i] += strlen(part);
		p = at[i];
	}
	snprintf(part, sizeof(part), "\r\n--%s--\r\n", b);
	ck_assert_msg(strlen(dsn) >= strlen(part) &&
	    strcmp(dsn + strlen(dsn) - strlen(part), part) == 0,
	    "no closing boundary");

	/* per-message fields first, then one group per failed recipient */
	ck_assert_msg(strncmp(at[1], "Reporting-MTA: dns; relay.test\r\n",
	    32) == 0, "Reporting-MTA is not first:\n%s", at[1]);
	ck_assert_ptr_nonnull(strstr(at[1], "\r\nArrival-Date: "));
	size_t groups = 0;
	for (const char *g = at[1]; (g = strstr(g, "\r\n\r\nFinal-"
	    "Recipient: ")) != NULL && g < at[2]; g++)
		groups++;
	ck_assert_uint_eq(groups, 2);
	ck_assert_ptr_nonnull(strstr(at[1], "Final-Recipient: rfc822; "
	    "r0@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 refused\r\n"));
	ck_assert_ptr_nonnull(strstr(at[1], "Final-Recipient: rfc822; "
	    "r2@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n--"));
	ck_assert_ptr_null(strstr(dsn, "r1@example.net"));

	/* the original's header, not its body */
	ck_assert_ptr_nonnull(strstr(at[2], "Subject: hi\r\n"));
	ck_assert_ptr_null(strstr(dsn, "the body text"));
	free(dsn);
	spool_envelope_free(env);
	config_unref(cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("bounce");
	TCase *tc = tcase_create("dsn");
	tcase_add_loop_test(tc, test_status, 0,
	    sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_structure);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
