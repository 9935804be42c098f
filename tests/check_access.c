/*
 * check_access.c — [sender P] users = / networks =: who may use which
 * sender (config_sender_permitted), and their parse errors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "config.h"

static char conf_path[] = "/tmp/check_access.XXXXXX";

static struct config *
load(const char *text, char *err)
{
	int fd = mkstemp(conf_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct config *cfg = config_load(conf_path, 0, err);
	unlink(conf_path);
	strcpy(conf_path, "/tmp/check_access.XXXXXX");
	return cfg;
}

static const char base[] =
    "[relay]\nhostname = relay.test\n"
    "[sender billing@example.com]\nusers = alice carol\n"
    "[sender example.org]\nnetworks = 10.1.0.0/16 2001:db8::/32\n"
    "[sender ops.example.net]\nusers = ops\nnetworks = 192.0.2.7\n"
    "[sender free.example]\nconfiguration_set = x\n";

static struct sockaddr_storage
inet(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &s4->sin_addr);
	}
	return ss;
}

static const struct {
	const char *address, *user, *client;
	int permitted;
} cases[] = {
	{ "billing@example.com", "alice", "127.0.0.1", 1 },
	{ "BILLING@Example.com", "carol", NULL, 1 },
	{ "billing@example.com", "bob", "127.0.0.1", 0 },
	{ "billing@example.com", NULL, "10.1.2.3", 0 },
	{ "billing@example.com", "Alice", NULL, 0 },	/* names are exact */
	{ "news@example.org", NULL, "10.1.200.9", 1 },
	{ "news@mail.example.org", NULL, "10.1.0.1", 1 },
	{ "news@example.org", NULL, "10.2.0.1", 0 },
	{ "news@example.org", NULL, "::ffff:10.1.0.1", 1 },
	{ "news@example.org", NULL, "2001:db8::1", 1 },
	{ "news@example.org", NULL, "2001:db9::1", 0 },
	{ "news@example.org", "alice", NULL, 0 },
	{ "x@ops.example.net", "ops", NULL, 1 },
	{ "x@ops.example.net", NULL, "192.0.2.7", 1 },
	{ "x@ops.example.net", NULL, "192.0.2.8", 0 },
	{ "x@free.example", NULL, NULL, 1 },	/* rule without users */
	{ "x@elsewhere.test", NULL, NULL, 1 },	/* no rule at all */
};

START_TEST(test_permitted)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config *cfg = load(base, err);
	ck_assert_msg(cfg != NULL, "%s", err);
	struct sockaddr_storage ss;
	const struct sockaddr *sa = NULL;
	if (cases[_i].client != NULL) {
		ss = inet(cases[_i].client);
		sa = (const struct sockaddr *)&ss;
	}
	ck_assert_msg(config_sender_permitted(cfg, cases[_i].address,
	    cases[_i].user, sa) == cases[_i].permitted,
	    "%s user=%s client=%s: expected %d", cases[_i].address,
	    cases[_i].user ? cases[_i].user : "-",
	    cases[_i].client ? cases[_i].client : "-", cases[_i].permitted);
	config_unref(cfg);
}
END_TEST

START_TEST(test_unix_client_matches_no_network)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config *cfg = load(base, err);
	ck_assert_msg(cfg != NULL, "%s", err);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	ck_assert_int_eq(config_sender_permitted(cfg, "n@example.org", NULL,
	    (struct sockaddr *)&sun), 0);
	config_unref(cfg);
}
END_TEST

static const struct {
	const char *text, *want;
} bad[] = {
	{ "[sender a.example]\nusers =\n", NULL },	/* empty: unset, fine */
	{ "[sender a.example]\nnetworks = 10.0.0.0/33\n", "networks" },
	{ "[sender a.example]\nnetworks = nonsense\n", "not a network" },
	{ "[sender a.example]\nusers = a,b\n", "not a user name" },
	{ "[sender a.example]\nusers = a\nusers = b\n", "duplicate" },
	{ "[relay]\nusers = a\n", "users" },	/* only in [sender] */
};

START_TEST(test_bad)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config *cfg = load(bad[_i].text, err);
	if (bad[_i].want == NULL) {
		ck_assert_msg(cfg != NULL, "%s", err);
		config_unref(cfg);
		return;
	}
	ck_assert_msg(cfg == NULL, "accepted: %s", bad[_i].text);
	ck_assert_msg(strstr(err, bad[_i].want) != NULL, "'%s' lacks '%s'",
	    err, bad[_i].want);
	ck_assert_msg(strchr(err, '\n') == NULL, "not one line: %s", err);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("sender");
	tcase_add_loop_test(tc, test_permitted, 0,
	    sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_unix_client_matches_no_network);
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
