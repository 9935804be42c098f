/* check_ses_api.c — unit tests for ses_api.c (pure parsing and URLs). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ses_api.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* GetAccount answers: as SES sends them (field order, extra members,
 * integers or reals) and broken ones. */
static const struct {
	const char *body;
	int ok;
	int production, sending;
	double max_24h, max_rate, sent;
	const char *enforcement;
	const char *err;	/* part of the reason, when !ok */
} account_cases[] = {
	{ "{\"DedicatedIpAutoWarmupEnabled\":false,\"EnforcementStatus\":"
	  "\"HEALTHY\",\"ProductionAccessEnabled\":true,\"SendQuota\":"
	  "{\"Max24HourSend\":50000.0,\"MaxSendRate\":14.0,"
	  "\"SentLast24Hours\":123.0},\"SendingEnabled\":true,"
	  "\"SuppressionAttributes\":{\"SuppressedReasons\":[\"BOUNCE\"]}}",
	  1, 1, 1, 50000, 14, 123, "HEALTHY", NULL },
	{ "{\"ProductionAccessEnabled\":false,\"SendingEnabled\":false,"
	  "\"EnforcementStatus\":\"SHUTDOWN\",\"SendQuota\":{"
	  "\"Max24HourSend\":200,\"MaxSendRate\":1,\"SentLast24Hours\":0}}",
	  1, 0, 0, 200, 1, 0, "SHUTDOWN", NULL },
	{ "{\"ProductionAccessEnabled\":true,\"SendingEnabled\":true,"
	  "\"SendQuota\":{\"Max24HourSend\":-1.0,\"MaxSendRate\":0.5,"
	  "\"SentLast24Hours\":7}}", 1, 1, 1, -1, 0.5, 7, "", NULL },
	{ "{\"ProductionAccessEnabled\":\"true\",\"SendingEnabled\":true,"
	  "\"SendQuota\":{\"Max24HourSend\":1,\"MaxSendRate\":1,"
	  "\"SentLast24Hours\":0}}", 0, 0, 0, 0, 0, 0, NULL,
	  "ProductionAccessEnabled is not true or false" },
	{ "{\"ProductionAccessEnabled\":true,\"SendingEnabled\":true}", 0,
	  0, 0, 0, 0, 0, NULL, "SendQuota missing" },
	{ "{\"ProductionAccessEnabled\":true,\"SendingEnabled\":true,"
	  "\"SendQuota\":{\"Max24HourSend\":1,\"MaxSendRate\":\"14\","
	  "\"SentLast24Hours\":0}}", 0, 0, 0, 0, 0, 0, NULL,
	  "MaxSendRate is not a number" },
	{ "{\"SendingEnabled\":true,\"SendingEnabled\":false}", 0, 0, 0, 0,
	  0, 0, NULL, "duplicate" },
	{ "<html>503</html>", 0, 0, 0, 0, 0, 0, NULL, "not JSON" },
	{ "[1,2]", 0, 0, 0, 0, 0, 0, NULL, "not a JSON object" },
	{ "", 0, 0, 0, 0, 0, 0, NULL, "not JSON" },
};

START_TEST(test_account)
{
	struct ses_account a;
	char err[256] = "";
	const char *b = account_cases[_i].body;
	int rc = ses_api_parse_account(b, strlen(b), &a, err, sizeof(err));

	if (!account_cases[_i].ok) {
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(strstr(err, account_cases[_i].err) != NULL,
		    "err '%s' lacks '%s'", err, account_cases[_i].err);
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(a.production, account_cases[_i].production);
	ck_assert_int_eq(a.sending_enabled, account_cases[_i].sending);
	ck_assert_double_eq(a.max_24h, account_cases[_i].max_24h);
	ck_assert_double_eq(a.max_rate, account_cases[_i].max_rate);
	ck_assert_double_eq(a.sent_24h, account_cases[_i].sent);
	ck_assert_str_eq(a.enforcement, account_cases[_i].enforcement);
}
END_TEST

static const struct {
	const char *body;
	int ok, verified;
	const char *type, *verification, *dkim;
	int signing;
} identity_cases[] = {
	{ "{\"IdentityType\":\"DOMAIN\",\"FeedbackForwardingStatus\":true,"
	  "\"VerifiedForSendingStatus\":true,\"DkimAttributes\":{"
	  "\"SigningEnabled\":true,\"Status\":\"SUCCESS\",\"Tokens\":[\"a\"]},"
	  "\"VerificationStatus\":\"SUCCESS\",\"Policies\":{}}",
	  1, 1, "DOMAIN", "SUCCESS", "SUCCESS", 1 },
	{ "{\"IdentityType\":\"EMAIL_ADDRESS\","
	  "\"VerifiedForSendingStatus\":false,\"DkimAttributes\":{"
	  "\"SigningEnabled\":false,\"Status\":\"PENDING\"}}",
	  1, 0, "EMAIL_ADDRESS", "", "PENDING", 0 },
	{ "{\"IdentityType\":\"DOMAIN\",\"VerifiedForSendingStatus\":true}",
	  1, 1, "DOMAIN", "", "", 0 },
	{ "{\"IdentityType\":\"DOMAIN\"}", 0, 0, NULL, NULL, NULL, 0 },
	{ "{\"VerifiedForSendingStatus\":true,\"DkimAttributes\":[]}", 0, 0,
	  NULL, NULL, NULL, 0 },
};

START_TEST(test_identity)
{
	struct ses_identity id;
	char err[256];
	const char *b = identity_cases[_i].body;
	int rc = ses_api_parse_identity(b, strlen(b), &id, err, sizeof(err));

	if (!identity_cases[_i].ok) {
		ck_assert_int_eq(rc, -1);
		ck_assert(err[0] != '\0');
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(id.verified, identity_cases[_i].verified);
	ck_assert_str_eq(id.type, identity_cases[_i].type);
	ck_assert_str_eq(id.verification, identity_cases[_i].verification);
	ck_assert_str_eq(id.dkim, identity_cases[_i].dkim);
	ck_assert_int_eq(id.dkim_signing, identity_cases[_i].signing);
}
END_TEST

static const struct {
	long status;
	const char *type, *body;
	const char *code, *message;
	enum ses_api_result result;
} error_cases[] = {
	{ 403, "AccessDeniedException:http://internal.amazon.com/coral/x/",
	  "{\"Message\":\"User: arn:aws:iam::1:user/u is not authorized to "
	  "perform: ses:GetAccount\"}", "AccessDeniedException",
	  "User: arn:aws:iam::1:user/u is not authorized to perform: "
	  "ses:GetAccount", SES_API_DENIED },
	{ 403, "SignatureDoesNotMatch", "{\"message\":\"The request signature"
	  " we calculated does not match\\n\\nThe Canonical String\"}",
	  "SignatureDoesNotMatch",
	  "The request signature we calculated does not match",
	  SES_API_AUTH },
	{ 404, NULL, "{\"__type\":\"com.amazonaws.sesv2#NotFoundException\","
	  "\"message\":\"Email identity x does not exist.\"}",
	  "NotFoundException", "Email identity x does not exist.",
	  SES_API_NOT_FOUND },
	{ 429, "TooManyRequestsException", "{\"message\":\"Too Many "
	  "Requests\"}", "TooManyRequestsException", "Too Many Requests",
	  SES_API_THROTTLED },
	{ 400, NULL, "{\"code\":\"ThrottlingException\"}",
	  "ThrottlingException", "", SES_API_THROTTLED },
	{ 500, "InternalFailure", "not json", "InternalFailure", "",
	  SES_API_SERVER },
	{ 503, NULL, "", "", "", SES_API_SERVER },
	{ 403, "UnrecognizedClientException", NULL,
	  "UnrecognizedClientException", "", SES_API_AUTH },
	{ 403, "ExpiredTokenException", "{}", "ExpiredTokenException", "",
	  SES_API_AUTH },
	{ 400, "BadRequestException", "{\"message\":\"x\"}",
	  "BadRequestException", "x", SES_API_CLIENT },
	{ 0, NULL, NULL, "", "", SES_API_TRANSPORT },
	{ 200, NULL, "{}", "", "", SES_API_OK },
};

START_TEST(test_error)
{
	struct ses_api_error e;
	const char *b = error_cases[_i].body;

	ses_api_parse_error(error_cases[_i].type, b, b ? strlen(b) : 0, &e);
	ck_assert_str_eq(e.code, error_cases[_i].code);
	ck_assert_str_eq(e.message, error_cases[_i].message);
	ck_assert_int_eq(ses_api_classify(error_cases[_i].status, &e),
	    error_cases[_i].result);
}
END_TEST

START_TEST(test_urls)
{
	char base[SES_API_URL_MAX], url[SES_API_URL_MAX], scope[64];
	char longid[400];

	ck_assert_int_eq(ses_api_base_url(NULL, "eu-west-1", base,
	    sizeof(base)), 0);
	ck_assert_str_eq(base, "https://email.eu-west-1.amazonaws.com");
	ck_assert_int_eq(ses_api_base_url("https://vpce-1.email.us-east-1."
	    "vpce.amazonaws.com/", "us-east-1", base, sizeof(base)), 0);
	ck_assert_str_eq(base,
	    "https://vpce-1.email.us-east-1.vpce.amazonaws.com");
	ck_assert_int_eq(ses_api_account_url(base, url, sizeof(url)), 0);
	ck_assert_str_eq(url, "https://vpce-1.email.us-east-1.vpce."
	    "amazonaws.com/v2/email/account");
	ck_assert_int_eq(ses_api_identity_url("https://h", "User+x@Example.com",
	    url, sizeof(url)), 0);
	ck_assert_str_eq(url,
	    "https://h/v2/email/identities/User%2Bx%40Example.com");
	ck_assert_int_eq(ses_api_identity_url("https://h", "a/b", url,
	    sizeof(url)), 0);
	ck_assert_str_eq(url, "https://h/v2/email/identities/a%2Fb");
	ck_assert_int_eq(ses_api_identity_url("https://h", "", url,
	    sizeof(url)), -1);
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	ck_assert_int_eq(ses_api_identity_url("https://h", longid, url,
	    sizeof(url)), -1);
	ck_assert_int_eq(ses_api_identity_url("https://h", "x@y", url, 20),
	    -1);
	ses_api_scope("us-west-2", scope, sizeof(scope));
	ck_assert_str_eq(scope, "aws:amz:us-west-2:ses");
}
END_TEST

static const struct {
	const char *arn, *identity, *account;
} arn_cases[] = {
	{ "arn:aws:ses:us-east-1:123456789012:identity/example.com",
	  "example.com", "123456789012" },
	{ "arn:aws-us-gov:ses:us-gov-west-1:210987654321:identity/a@b.org",
	  "a@b.org", "210987654321" },
	{ "arn:aws:sns:us-east-1:123456789012:identity/example.com", NULL,
	  NULL },
	{ "arn:aws:ses:us-east-1:12345:identity/example.com", NULL, NULL },
	{ "arn:aws:ses:us-east-1:123456789012:configuration-set/x", NULL,
	  NULL },
	{ "arn:aws:ses:us-east-1:123456789012:identity/", NULL, NULL },
	{ "example.com", NULL, NULL },
};

START_TEST(test_arn)
{
	char id[320], acct[13];
	int rc = ses_api_arn_identity(arn_cases[_i].arn, id, sizeof(id),
	    acct);

	if (arn_cases[_i].identity == NULL) {
		ck_assert_int_eq(rc, -1);
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(id, arn_cases[_i].identity);
	ck_assert_str_eq(acct, arn_cases[_i].account);
}
END_TEST

START_TEST(test_result_names)
{
	ck_assert_str_eq(ses_api_result_name(SES_API_OK), "ok");
	ck_assert_str_eq(ses_api_result_name(SES_API_BAD_ANSWER),
	    "bad_answer");
	ck_assert_str_eq(ses_api_result_name((enum ses_api_result)99),
	    "unknown");
}
END_TEST

static Suite *
ses_api_suite(void)
{
	Suite *s = suite_create("ses_api");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_account, 0, NELEM(account_cases));
	tcase_add_loop_test(tc, test_identity, 0, NELEM(identity_cases));
	tcase_add_loop_test(tc, test_error, 0, NELEM(error_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("names");
	tcase_add_test(tc, test_urls);
	tcase_add_loop_test(tc, test_arn, 0, NELEM(arn_cases));
	tcase_add_test(tc, test_result_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ses_api_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
