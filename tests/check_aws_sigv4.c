/* check_aws_sigv4.c — unit tests for aws_sigv4.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_sigv4.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define KEY_ID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T_20261206_121500 1796559300	/* 2026-12-06T12:15:00Z */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/*
 * Vectors computed with botocore 1.29 (Debian's python3-botocore):
 * SigV4Auth(...).canonical_request / signature for the same request with
 * context["timestamp"] = "20261206T121500Z".  The second one is the
 * double encoding of an email-address identity in a path: sent as
 * user%40example.com, signed as user%2540example.com.
 */
static const char *const post_headers[] = {
	"Content-Type: application/json", NULL
};

static const struct {
	const char *method, *host, *path, *query;
	const char *const *headers;
	const char *body, *token;
	const char *canonical, *signature;
} vectors[] = {
	{ "GET", "email.us-east-1.amazonaws.com", "/v2/email/account", NULL,
	  NULL, NULL, NULL,
	  "GET\n/v2/email/account\n\nhost:email.us-east-1.amazonaws.com\n"
	  "x-amz-date:20261206T121500Z\n\nhost;x-amz-date\n" EMPTY_SHA,
	  "77e7d748df5c4387ec7845e167a76add94cd416250b7f0d34bfa7123f457560e" },
	{ "GET", "127.0.0.1:8443", "/v2/email/identities/user%40example.com",
	  "", NULL, NULL, NULL,
	  "GET\n/v2/email/identities/user%2540example.com\n\n"
	  "host:127.0.0.1:8443\nx-amz-date:20261206T121500Z\n\n"
	  "host;x-amz-date\n" EMPTY_SHA,
	  "acdae3c706678a47088433228154e3803db6aa213ef01109056bf1b248642b6f" },
	{ "POST", "email.us-east-1.amazonaws.com", "/v2/email/outbound-emails",
	  "b=2&a=1", post_headers, "{\"Content\":{}}",
	  "IQoJb3JpZ2luX2VjEXAMPLE//token+/=",
	  "POST\n/v2/email/outbound-emails\na=1&b=2\n"
	  "content-type:application/json\n"
	  "host:email.us-east-1.amazonaws.com\n"
	  "x-amz-date:20261206T121500Z\n"
	  "x-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//token+/=\n\n"
	  "content-type;host;x-amz-date;x-amz-security-token\n"
	  "2585ec52127b81c54cc88c900206dc4398a92f02198560a97fe8e54d6323792f",
	  "b85f0de67b0c0dc79b332051719839e4760ad7ab55bbff7fc3bcdfd34a0944b1" },
};

START_TEST(test_vector)
{
	struct aws_sigv4_request r;
	struct aws_sigv4_result out;
	char canonical[2048], err[256], want[AWS_SIGV4_AUTH_MAX];

	memset(&r, 0, sizeof(r));
	r.method = vectors[_i].method;
	r.host = vectors[_i].host;
	r.path = vectors[_i].path;
	r.query = vectors[_i].query;
	r.headers = vectors[_i].headers;
	r.body = vectors[_i].body;
	r.bodylen = r.body != NULL ? strlen(r.body) : 0;
	r.region = "us-east-1";
	r.service = "ses";
	r.access_key_id = KEY_ID;
	r.secret_access_key = SECRET;
	r.session_token = vectors[_i].token;
	r.now = T_20261206_121500;
	ck_assert_int_eq(aws_sigv4_sign(&r, &out, canonical,
	    sizeof(canonical), err, sizeof(err)), 0);
	ck_assert_str_eq(canonical, vectors[_i].canonical);
	ck_assert_str_eq(out.amz_date, "20261206T121500Z");
	snprintf(want, sizeof(want), "AWS4-HMAC-SHA256 Credential=" KEY_ID
	    "/20261206/us-east-1/ses/aws4_request, SignedHeaders=%s, "
	    "Signature=%s", vectors[_i].token != NULL ?
	    "content-type;host;x-amz-date;x-amz-security-token" :
	    "host;x-amz-date", vectors[_i].signature);
	ck_assert_str_eq(out.authorization, want);
}
END_TEST

/* Header values are trimmed and inner blanks folded; bad headers refused. */
START_TEST(test_headers)
{
	static const char *const folded[] = { "X-Test:   a   b  ", NULL };
	static const char *const empty[] = { "X-Test:   ", NULL };
	static const char *const nocolon[] = { "X-Test", NULL };
	static const char *const twice[] = { "Host: x", NULL };
	static const char *const crlf[] = { "X-Test: a\r\nX-Evil: b", NULL };
	struct aws_sigv4_request r;
	struct aws_sigv4_result out;
	char canonical[2048], err[256];

	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.host = "h";
	r.path = "";
	r.region = "us-east-1";
	r.service = "ses";
	r.access_key_id = KEY_ID;
	r.secret_access_key = SECRET;
	r.now = T_20261206_121500;
	r.headers = folded;
	ck_assert_int_eq(aws_sigv4_sign(&r, &out, canonical,
	    sizeof(canonical), err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(canonical, "\n/\n"));
	ck_assert_ptr_nonnull(strstr(canonical, "\nx-test:a b\n"));
	r.headers = empty;
	ck_assert_int_eq(aws_sigv4_sign(&r, &out, NULL, 0, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "empty value"));
	r.headers = nocolon;
	ck_assert_int_eq(aws_sigv4_sign(&r, &out, NULL, 0, err, sizeof(err)),
	    -1);
	r.headers = twice;
	ck_assert_int_eq(aws_sigv4_sign(&r, &out, NULL, 0, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	r.headers = crlf;
	ck_assert_int_eq(aws_sigv4_sign(&r, &out, NULL, 0, err, sizeof(err)),
	    -1);
}
END_TEST

static const struct {
	const char *in;
	int keep_slash;
	const char *out;
} enc_cases[] = {
	{ "user@example.com", 0, "user%40example.com" },
	{ "a+b/c d~e_f.g-h", 0, "a%2Bb%2Fc%20d~e_f.g-h" },
	{ "a+b/c", 1, "a%2Bb/c" },
	{ "\xc3\xa9", 0, "%C3%A9" },
	{ "", 0, "" },
};

START_TEST(test_uri_encode)
{
	char out[64];
	const char *in = enc_cases[_i].in;

	ck_assert_int_eq(aws_sigv4_uri_encode(in, strlen(in),
	    enc_cases[_i].keep_slash, out, sizeof(out)),
	    (int)strlen(enc_cases[_i].out));
	ck_assert_str_eq(out, enc_cases[_i].out);
}
END_TEST

START_TEST(test_uri_encode_small)
{
	char out[5];

	ck_assert_int_eq(aws_sigv4_uri_encode("a@b", 3, 0, out, sizeof(out)),
	    -1);
	ck_assert_int_eq(aws_sigv4_uri_encode("abcd", 4, 0, out, sizeof(out)),
	    4);
	ck_assert_int_eq(aws_sigv4_uri_encode("abcde", 5, 0, out,
	    sizeof(out)), -1);
}
END_TEST

static Suite *
sigv4_suite(void)
{
	Suite *s = suite_create("aws_sigv4");
	TCase *tc = tcase_create("sign");

	tcase_add_loop_test(tc, test_vector, 0, NELEM(vectors));
	tcase_add_test(tc, test_headers);
	suite_add_tcase(s, tc);
	tc = tcase_create("encode");
	tcase_add_loop_test(tc, test_uri_encode, 0, NELEM(enc_cases));
	tcase_add_test(tc, test_uri_encode_small);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sigv4_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
