/*
 * check_aws_creds.c — unit tests for aws_creds.c: the pure parsers of
 * STS, container and IMDS answers, the shared-file profile reader, the
 * order of the static chain and the SMTP login made from it.  (The
 * configured-key cases of the chain stay in check_config.c, which drives
 * them through aws_creds_smtp_login_for() as the daemon does; the HTTP
 * sources are tested end to end by tests/creds_chain.sh.)
 */
#include <check.h>

#include <sys/stat.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws_creds.h"
#include "aws_creds_int.h"
#include "config.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DOC_KEY_ID	"AKIAIOSFODNN7EXAMPLE"
#define DOC_SECRET	"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_PW_USE1	"BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9"

extern char **environ;
static char dir[PATH_MAX];

static void
clear_env(void)
{
	char name[256];
	int again = 1;

	while (again) {
		char **ep;

		again = 0;
		for (ep = environ; ep != NULL && *ep != NULL; ep++) {
			size_t len = strcspn(*ep, "=");

			if ((strncmp(*ep, "AWS_", 4) == 0 ||
			    strncmp(*ep, "SESRELAY_", 9) == 0 ||
			    strncmp(*ep, "CREDENTIALS_DIRECTORY", 21) == 0) &&
			    len < sizeof(name)) {
				memcpy(name, *ep, len);
				name[len] = '\0';
				unsetenv(name);
				again = 1;
				break;
			}
		}
	}
}

static void
setup(void)
{
	clear_env();
	snprintf(dir, sizeof(dir), "/tmp/check_aws_creds.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	setenv("HOME", dir, 1);
}

static void
teardown(void)
{
	char cmd[PATH_MAX + 16];

	clear_env();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *
put(const char *name, const char *text, mode_t mode)
{
	char *path;
	FILE *fp;

	ck_assert_int_ne(asprintf(&path, "%s/%s", dir, name), -1);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	chmod(path, mode);
	return path;
}

static struct config *
conf(const char *text)
{
	char err[CONFIG_ERR_MAX];
	char *path = put("sesrelay.conf", text, 0600);
	struct config *c = config_load(path, 0, err);

	ck_assert_msg(c != NULL, "%s", err);
	free(path);
	return c;
}

/* --- parsers ------------------------------------------------------------ */

static const struct {
	const char *s;
	long long want;		/* -1: refused */
} time_cases[] = {
	{ "2026-12-06T13:00:00Z", 1796562000LL },
	{ "2026-12-06T13:00:00.123Z", 1796562000LL },
	{ "2026-12-06T14:00:00+01:00", 1796562000LL },
	{ "2026-12-06T13:00:00", -1 },
	{ "2026-13-06T13:00:00Z", -1 },
	{ "2026-12-06 13:00:00Z", -1 },
	{ "", -1 },
	{ "2026-12-06T13:00:00Zjunk", -1 },
};

START_TEST(test_time)
{
	time_t t = 0;
	int rc = aws_creds_parse_time(time_cases[_i].s, &t);

	if (time_cases[_i].want == -1)
		ck_assert_int_eq(rc, -1);
	else {
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq((long long)t, time_cases[_i].want);
	}
}
END_TEST

#define STS_OK \
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/" \
	"doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>" \
	"<SubjectFromWebIdentityToken>system:serviceaccount:mail:relay" \
	"</SubjectFromWebIdentityToken><Credentials>" \
	"<SessionToken>IQoJb3JpZ2luX2VjE&amp;x/y+z==</SessionToken>" \
	"<SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY" \
	"</SecretAccessKey><Expiration>2026-12-06T13:00:00Z</Expiration>" \
	"<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId></Credentials>" \
	"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"

START_TEST(test_sts_ok)
{
	struct aws_credentials *c;
	char err[256];

	ck_assert_int_eq(aws_creds_parse_sts(STS_OK, strlen(STS_OK), &c, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(c->access_key_id, "ASIAIOSFODNN7EXAMPLE");
	ck_assert_str_eq(c->secret_access_key,
	    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
	ck_assert_str_eq(c->session_token, "IQoJb3JpZ2luX2VjE&x/y+z==");
	ck_assert_int_eq((long long)c->expiration, 1796562000LL);
	ck_assert_int_eq(aws_credentials_temporary(c), 1);
	aws_credentials_unref(c);
}
END_TEST

static const struct {
	const char *body;
	const char *want;
} sts_bad[] = {
	{ "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken"
	  "</Code><Message>Couldn't retrieve verification key</Message>"
	  "</Error></ErrorResponse>", "InvalidIdentityToken: Couldn't" },
	{ "<ErrorResponse><Error><Code>AccessDenied</Code></Error>"
	  "</ErrorResponse>", "AccessDenied: (no message)" },
	{ "not xml at all", "no SessionToken" },
	{ "<Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s"
	  "</SecretAccessKey><SessionToken>t</SessionToken></Credentials>",
	  "no Expiration" },
	{ "<Credentials><AccessKeyId>ASIA1</AccessKeyId><SessionToken>t"
	  "</SessionToken><Expiration>2026-12-06T13:00:00Z</Expiration>"
	  "</Credentials>", "no SecretAccessKey" },
	{ "<Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s"
	  "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>soon"
	  "</Expiration></Credentials>", "Expiration is not a time" },
	{ "<Credentials><AccessKeyId>AS IA</AccessKeyId><SecretAccessKey>s"
	  "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
	  "2026-12-06T13:00:00Z</Expiration></Credentials>",
	  "not an access key id" },
	{ "<Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s"
	  "</SecretAccessKey><SessionToken>t&bogus;</SessionToken><Expiration>"
	  "2026-12-06T13:00:00Z</Expiration></Credentials>", "SessionToken" },
};

START_TEST(test_sts_bad)
{
	struct aws_credentials *c = (void *)1;
	char err[256];

	ck_assert_int_eq(aws_creds_parse_sts(sts_bad[_i].body,
	    strlen(sts_bad[_i].body), &c, err, sizeof(err)), -1);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(err, sts_bad[_i].want) != NULL, "'%s' lacks '%s'",
	    err, sts_bad[_i].want);
}
END_TEST

static const struct {
	const char *body;
	const char *want_err;		/* NULL: parses */
	long long exp;
} json_cases[] = {
	/* the container endpoint */
	{ "{\"RoleArn\":\"arn:aws:iam::1:role/r\",\"AccessKeyId\":\"ASIA2\","
	  "\"SecretAccessKey\":\"sec\",\"Token\":\"tok\",\"Expiration\":"
	  "\"2026-12-06T13:00:00Z\"}", NULL, 1796562000LL },
	/* IMDS */
	{ "{\"Code\":\"Success\",\"LastUpdated\":\"2026-12-06T12:00:00Z\","
	  "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIA3\",\"SecretAccessKey\":"
	  "\"sec\",\"Token\":\"tok\",\"Expiration\":\"2026-12-06T13:00:00Z\"}",
	  NULL, 1796562000LL },
	{ "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"nope\"}",
	  "AssumeRoleUnauthorizedAccess: nope", 0 },
	{ "{\"AccessKeyId\":\"A\",\"AccessKeyId\":\"B\"}", "not a JSON object",
	  0 },
	{ "[1]", "not a JSON object", 0 },
	{ "{\"AccessKeyId\":7,\"SecretAccessKey\":\"s\"}", "not a string", 0 },
	{ "{\"SecretAccessKey\":\"s\"}", "no AccessKeyId", 0 },
	{ "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":"
	  "\"tomorrow\"}", "Expiration is not a time", 0 },
};

START_TEST(test_json)
{
	struct aws_credentials *c;
	char err[256];
	int rc = aws_creds_parse_json(json_cases[_i].body,
	    strlen(json_cases[_i].body), &c, err, sizeof(err));

	if (json_cases[_i].want_err == NULL) {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert_str_eq(c->secret_access_key, "sec");
		ck_assert_str_eq(c->session_token, "tok");
		ck_assert_int_eq((long long)c->expiration, json_cases[_i].exp);
		aws_credentials_unref(c);
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(strstr(err, json_cases[_i].want_err) != NULL,
		    "'%s' lacks '%s'", err, json_cases[_i].want_err);
	}
}
END_TEST

static const struct {
	const char *url;
	int ok;
} uri_cases[] = {
	{ "https://creds.example.com/v1", 1 },
	{ "http://127.0.0.1:8080/creds", 1 },
	{ "http://localhost/creds", 1 },
	{ "http://[::1]:9/x", 1 },
	{ "http://169.254.170.23/v1/credentials", 1 },
	{ "http://[fd00:ec2::23]/v1/credentials", 1 },
	{ "http://169.254.169.254/", 1 },
	{ "http://example.com/creds", 0 },
	{ "http://10.0.0.1/creds", 0 },
	{ "http://127.0.0.1.example.com/", 0 },
	{ "http://user@127.0.0.1/", 0 },
	{ "ftp://127.0.0.1/", 0 },
	{ "https://", 0 },
};

START_TEST(test_full_uri)
{
	ck_assert_int_eq(aws_creds_full_uri_allowed(uri_cases[_i].url),
	    uri_cases[_i].ok);
}
END_TEST

START_TEST(test_profile_parser)
{
	static const char text[] =
	    "# comment\n"
	    "[default]\n"
	    "region = us-east-1\n"
	    "[profile irsa]\n"
	    "role_arn = arn:aws:iam::123456789012:role/relay ; comment\n"
	    "web_identity_token_file=/var/run/secrets/token\n"
	    "[irsa]\n"
	    "role_arn = wrong\n";
	struct aws_profile p;
	char err[256];

	ck_assert_int_eq(aws_creds_parse_profile(text, strlen(text), "cfg",
	    "irsa", 1, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(p.found, 1);
	ck_assert_str_eq(p.v[3], "arn:aws:iam::123456789012:role/relay");
	ck_assert_str_eq(p.v[4], "/var/run/secrets/token");
	aws_creds_profile_clear(&p);
	/* in the credentials file, the section is the bare name */
	ck_assert_int_eq(aws_creds_parse_profile(text, strlen(text), "cr",
	    "irsa", 0, &p, err, sizeof(err)), 0);
	ck_assert_str_eq(p.v[3], "wrong");
	aws_creds_profile_clear(&p);
	ck_assert_int_eq(aws_creds_parse_profile("[a\n", 3, "f", "a", 0, &p,
	    err, sizeof(err)), -1);
	ck_assert_str_eq(err, "f:1: missing ']' in a section header");
	ck_assert_int_eq(aws_creds_parse_profile("[a]\naws_secret_access_key "
	    "wJalrXUtnFEMI\n", 40, "f", "a", 0, &p, err, sizeof(err)), -1);
	ck_assert_ptr_null(strstr(err, "wJal"));
}
END_TEST

/* --- the static chain ------------------------------------------------------ */

START_TEST(test_env_temporary)
{
	struct config *c = conf("[ses]\n");
	struct aws_credentials *cr;
	struct ses_smtp_login *l;
	char err[AWS_CREDS_ERR_MAX];

	setenv("AWS_ACCESS_KEY_ID", "ASIAIOSFODNN7EXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", DOC_SECRET, 1);
	setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLE", 1);
	cr = aws_creds_resolve_static(c, err, sizeof(err));
	ck_assert_msg(cr != NULL, "%s", err);
	ck_assert_str_eq(cr->session_token, "FwoGZXIvYXdzEXAMPLE");
	ck_assert_int_eq(aws_credentials_temporary(cr), 1);
	ck_assert_ptr_nonnull(strstr(cr->source, "environment"));
	/* accepted for the API, refused for SMTP, clearly */
	l = aws_creds_smtp_login(cr, "us-east-1", err, sizeof(err));
	ck_assert_ptr_null(l);
	ck_assert_ptr_nonnull(strstr(err, "temporary"));
	ck_assert_ptr_nonnull(strstr(err, "transport = api"));
	ck_assert_ptr_null(strstr(err, DOC_SECRET));
	aws_credentials_unref(cr);
	config_unref(c);
}
END_TEST

START_TEST(test_order)
{
	/* config keys beat the environment, which beats the shared file */
	struct config *c;
	struct aws_credentials *cr;
	struct ses_smtp_login *l;
	char err[AWS_CREDS_ERR_MAX], *sk, *cf, text[512];

	cf = put("credentials", "[default]\naws_access_key_id = "
	    "AKIA4444444444444444\naws_secret_access_key = secretFour\n",
	    0600);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cf, 1);
	c = conf("[ses]\n");
	cr = aws_creds_resolve_static(c, err, sizeof(err));
	ck_assert_msg(cr != NULL, "%s", err);
	ck_assert_str_eq(cr->access_key_id, "AKIA4444444444444444");
	ck_assert_ptr_nonnull(strstr(cr->source, "shared credentials file"));
	aws_credentials_unref(cr);

	setenv("AWS_ACCESS_KEY_ID", "AKIA3333333333333333", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretThree", 1);
	cr = aws_creds_resolve_static(c, err, sizeof(err));
	ck_assert_str_eq(cr->access_key_id, "AKIA3333333333333333");
	aws_credentials_unref(cr);
	config_unref(c);

	sk = put("secret", DOC_SECRET "\n", 0600);
	snprintf(text, sizeof(text), "[ses]\naccess_key_id = " DOC_KEY_ID
	    "\nsecret_access_key_file = %s\n", sk);
	c = conf(text);
	l = aws_creds_smtp_login_for(c, err, sizeof(err));
	ck_assert_msg(l != NULL, "%s", err);
	ck_assert_str_eq(l->user, DOC_KEY_ID);
	ck_assert_str_eq(l->password, DOC_PW_USE1);
	ck_assert_ptr_nonnull(strstr(l->source, "secret_access_key_file"));
	ses_smtp_login_unref(l);
	config_unref(c);
	free(sk);
	free(cf);
}
END_TEST

START_TEST(test_web_identity_profile)
{
	struct config *c;
	struct aws_credentials *cr = NULL;
	struct aws_web_identity role;
	char err[AWS_CREDS_ERR_MAX], *cf;

	cf = put("config", "[profile relay]\nrole_arn = arn:aws:iam::1:role/r\n"
	    "web_identity_token_file = /tok\nrole_session_name = s1\n", 0644);
	setenv("AWS_CONFIG_FILE", cf, 1);
	setenv("AWS_PROFILE", "relay", 1);
	c = conf("[ses]\n");
	memset(&role, 0, sizeof(role));
	ck_assert_int_eq(aws_creds_chain_static(c, &cr, &role, err,
	    sizeof(err)), 2);
	ck_assert_str_eq(role.role_arn, "arn:aws:iam::1:role/r");
	ck_assert_str_eq(role.token_file, "/tok");
	ck_assert_str_eq(role.session_name, "s1");
	/* the static resolver (transport = smtp) says what to do */
	ck_assert_ptr_null(aws_creds_resolve_static(c, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "transport = api"));
	config_unref(c);
	free(cf);
}
END_TEST

START_TEST(test_provider_static)
{
	struct config *c = conf("[ses]\n");
	struct aws_creds_provider *p;
	struct aws_credentials *cr;
	char err[AWS_CREDS_ERR_MAX];

	setenv("AWS_ACCESS_KEY_ID", DOC_KEY_ID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", DOC_SECRET, 1);
	p = aws_creds_provider_new(NULL, NULL, c, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	cr = aws_creds_current(p);
	ck_assert_ptr_nonnull(cr);
	ck_assert_str_eq(cr->access_key_id, DOC_KEY_ID);
	ck_assert_ptr_nonnull(strstr(aws_creds_provider_source(p),
	    "environment"));
	aws_credentials_unref(cr);
	aws_creds_provider_free(p);

	/* a dynamic source without an HTTP client: a clear error */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/x", 1);
	ck_assert_ptr_null(aws_creds_provider_new(NULL, NULL, c, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "loopback or link-local"));
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/x", 1);
	ck_assert_ptr_null(aws_creds_provider_new(NULL, NULL, c, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "transport = api"));
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
	ck_assert_ptr_null(aws_creds_provider_new(NULL, NULL, c, err,
	    sizeof(err)));
	ck_assert_str_eq(err, "AWS_ROLE_ARN is set but "
	    "AWS_WEB_IDENTITY_TOKEN_FILE is not");
	config_unref(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("aws_creds");
	TCase *tc = tcase_create("parsers");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_time, 0, NELEM(time_cases));
	tcase_add_test(tc, test_sts_ok);
	tcase_add_loop_test(tc, test_sts_bad, 0, NELEM(sts_bad));
	tcase_add_loop_test(tc, test_json, 0, NELEM(json_cases));
	tcase_add_loop_test(tc, test_full_uri, 0, NELEM(uri_cases));
	tcase_add_test(tc, test_profile_parser);
	suite_add_tcase(s, tc);
	tc = tcase_create("chain");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_env_temporary);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_web_identity_profile);
	tcase_add_test(tc, test_provider_static);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
