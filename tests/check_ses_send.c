/*
 * check_ses_send.c — unit tests for ses_send.c: the SendEmail request
 * and the mapping of every answer SES gives to an SMTP reply.
 */
#include <check.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ses_send.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_request)
{
	static const char msg[] =
	    "X-SES-FROM-ARN: arn:aws:ses:us-east-1:1:identity/example.com\r\n"
	    "X-SES-RETURN-PATH-ARN: arn:aws:ses:us-east-1:1:identity/b.com\r\n"
	    "X-SES-CONFIGURATION-SET: set1\r\n"
	    "X-SES-MESSAGE-TAGS: team=mail,\r\n env = prod\r\n"
	    "From: a@example.com\r\nSubject: hi\r\n\r\n"
	    "X-SES-CONFIGURATION-SET: in the body, not a field\r\n";
	const char *rcpts[] = { "to@example.net", "bcc\"q@example.org" };
	char err[256];
	size_t len;
	char *body = ses_send_request(msg, strlen(msg), rcpts, 2, &len, err,
	    sizeof(err));
	json_t *j, *t;
	unsigned char dec[1024];
	int n;

	ck_assert_msg(body != NULL, "%s", err);
	ck_assert_uint_eq(strlen(body), len);
	ck_assert_ptr_nonnull(j = json_loads(body, 0, NULL));
	t = json_object_get(json_object_get(j, "Destination"), "ToAddresses");
	ck_assert_uint_eq(json_array_size(t), 2);
	ck_assert_str_eq(json_string_value(json_array_get(t, 1)),
	    "bcc\"q@example.org");
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "FromEmailAddressIdentityArn")),
	    "arn:aws:ses:us-east-1:1:identity/example.com");
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "FeedbackForwardingEmailAddressIdentityArn")),
	    "arn:aws:ses:us-east-1:1:identity/b.com");
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "ConfigurationSetName")), "set1");
	t = json_object_get(j, "EmailTags");
	ck_assert_uint_eq(json_array_size(t), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(t,
	    1), "Name")), "env");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(t,
	    1), "Value")), "prod");
	t = json_object_get(json_object_get(json_object_get(j, "Content"),
	    "Raw"), "Data");
	n = EVP_DecodeBlock(dec, (const unsigned char *)json_string_value(t),
	    (int)json_string_length(t));
	ck_assert_int_ge(n, (int)strlen(msg));
	ck_assert_int_eq(memcmp(dec, msg, strlen(msg)), 0);
	json_decref(j);
	free(body);

	/* no X-SES fields: just the data and the destinations; source_arn
	 * stands in for from_arn */
	static const char m2[] = "X-SES-SOURCE-ARN: arn:aws:ses:us-east-1:1:"
	    "identity/s.com\r\nFrom: a@s.com\r\n\r\nx\r\n";
	body = ses_send_request(m2, strlen(m2), rcpts, 1, &len, err,
	    sizeof(err));
	ck_assert_ptr_nonnull(j = json_loads(body, 0, NULL));
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "FromEmailAddressIdentityArn")),
	    "arn:aws:ses:us-east-1:1:identity/s.com");
	ck_assert_ptr_null(json_object_get(j, "ConfigurationSetName"));
	ck_assert_ptr_null(json_object_get(j, "EmailTags"));
	json_decref(j);
	free(body);
}
END_TEST

static const struct {
	long status;
	const char *type;		/* X-Amzn-ErrorType */
	const char *body;
	enum ses_send_status want;
	int code;
	const char *enh;
	const char *text;
	int throttled, auth;
} cases[] = {
	{ 200, NULL, "{\"MessageId\":\"0100abc-1\"}", SES_SEND_OK, 250,
	  "2.0.0", "Ok 0100abc-1", 0, 0 },
	{ 200, NULL, "garbage", SES_SEND_OK, 250, "2.0.0",
	  "no MessageId", 0, 0 },
	{ 0, NULL, "", SES_SEND_TEMPFAIL, 451, "4.4.1", "not reached", 0, 0 },
	{ 429, "TooManyRequestsException", "{\"message\":\"Too Many "
	  "Requests\"}", SES_SEND_TEMPFAIL, 454, "4.7.0", "Throttling", 1, 0 },
	{ 400, NULL, "{\"__type\":\"LimitExceededException\",\"message\":"
	  "\"Maximum sending rate exceeded.\"}", SES_SEND_TEMPFAIL, 454,
	  "4.7.0", "Maximum sending rate", 1, 0 },
	{ 400, "Throttling", "{}", SES_SEND_TEMPFAIL, 454, "4.7.0",
	  "Throttling", 1, 0 },
	{ 500, "InternalFailure", "{\"message\":\"x\"}", SES_SEND_TEMPFAIL,
	  451, "4.4.0", "InternalFailure", 0, 0 },
	{ 503, NULL, "", SES_SEND_TEMPFAIL, 451, "4.4.0", "HTTP 503", 0, 0 },
	{ 400, "MessageRejected", "{\"message\":\"Email address is not "
	  "verified.\"}", SES_SEND_PERMFAIL, 554, "5.6.0",
	  "Message rejected: Email address is not verified.", 0, 0 },
	{ 400, "MailFromDomainNotVerifiedException", "{\"message\":\"m\"}",
	  SES_SEND_PERMFAIL, 550, "5.7.1", "MAIL FROM domain", 0, 0 },
	{ 400, "BadRequestException", "{\"message\":\"bad\"}",
	  SES_SEND_PERMFAIL, 554, "5.6.0", "bad", 0, 0 },
	{ 413, NULL, "", SES_SEND_PERMFAIL, 552, "5.3.4", "refused", 0, 0 },
	{ 400, "AccountSuspendedException", "{\"message\":\"s\"}",
	  SES_SEND_TEMPFAIL, 451, "4.7.0", "AccountSuspendedException", 0, 0 },
	{ 400, "SendingPausedException", "{\"message\":\"p\"}",
	  SES_SEND_TEMPFAIL, 451, "4.7.0", "SendingPausedException", 0, 0 },
	{ 404, "NotFoundException", "{\"message\":\"Configuration set x\"}",
	  SES_SEND_TEMPFAIL, 451, "4.3.5", "configuration_set", 0, 0 },
	{ 403, "AccessDeniedException", "{\"Message\":\"not authorized\"}",
	  SES_SEND_TEMPFAIL, 451, "4.7.0", "credentials", 0, 1 },
	{ 403, "UnrecognizedClientException", "{\"message\":\"invalid\"}",
	  SES_SEND_TEMPFAIL, 451, "4.7.0", "credentials", 0, 1 },
	{ 403, "ExpiredTokenException", "{\"message\":\"expired\"}",
	  SES_SEND_TEMPFAIL, 451, "4.7.0", "credentials", 0, 1 },
	{ 418, NULL, "", SES_SEND_TEMPFAIL, 451, "4.0.0", "HTTP 418", 0, 0 },
};

START_TEST(test_outcome)
{
	struct ses_send_outcome o;

	ses_send_outcome(cases[_i].status, cases[_i].type, cases[_i].body,
	    strlen(cases[_i].body), cases[_i].status == 0 ? "Connection "
	    "refused" : NULL, &o);
	ck_assert_int_eq(o.status, cases[_i].want);
	ck_assert_int_eq(o.code, cases[_i].code);
	ck_assert_str_eq(o.enhanced, cases[_i].enh);
	ck_assert_msg(strstr(o.text, cases[_i].text) != NULL, "'%s' lacks '%s'",
	    o.text, cases[_i].text);
	ck_assert_int_eq(o.throttled, cases[_i].throttled);
	ck_assert_int_eq(o.auth, cases[_i].auth);
	if (cases[_i].status == 200 && cases[_i].code == 250 &&
	    strstr(cases[_i].body, "MessageId") != NULL)
		ck_assert_str_eq(o.message_id, "0100abc-1");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ses_send");
	TCase *tc = tcase_create("all");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_request);
	tcase_add_loop_test(tc, test_outcome, 0, NELEM(cases));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
