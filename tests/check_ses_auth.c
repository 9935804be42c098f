/* check_ses_auth.c — unit tests for ses_auth.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ses_auth.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The AWS documentation's example secret access key. */
#define DOC_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

/*
 * Password derivation.  The first seven vectors are published: AWS's
 * documentation (SPEC.md) and the Terraform AWS provider's
 * TestSESSMTPPasswordFromSecretKeySigV4.  The others were computed with an
 * independent implementation (Python's hmac module) and cover an unknown
 * region, a GovCloud region, a secret with a NUL byte, a long secret and
 * secret_len shorter than the string.
 */
static const struct {
	const char *secret;
	size_t len;		/* 0: strlen(secret) */
	const char *region;
	const char *password;
} pw_vectors[] = {
	{ DOC_SECRET, 0, "us-east-1",
	    "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9" },
	{ DOC_SECRET, 0, "us-west-2",
	    "BF2PynzbSCAjX08zhZZnP/kW+T9P5zs/1Er0pi5vTEmd" },
	{ DOC_SECRET, 0, "eu-west-1",
	    "BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk" },
	{ "some+secret+key", 0, "eu-central-1",
	    "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2" },
	{ "another+secret+key", 0, "eu-central-1",
	    "BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh" },
	{ "some+secret+key", 0, "us-west-1",
	    "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj" },
	{ "another+secret+key", 0, "us-west-1",
	    "BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF" },
	{ DOC_SECRET, 0, "ap-southeast-7",
	    "BP58kW9j6mO3iYkbpkVd/1ZXZ4hcGqSf9oURQ7NW/c9z" },
	{ DOC_SECRET, 0, "us-gov-west-1",
	    "BHW/eHvx1MM9YwW4wrJG6MGVQmLDCAM99G9YiSdGEIAw" },
	{ "abc\0def", 7, "us-east-1",
	    "BG8yedWODiM1GgtMCM5aHyd6RR5yePvu/Vp+FeqL+2dk" },
	{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0, "eu-north-1",
	    "BJ1/tbWWuU9LCLwRnxNBPE/99nYEt+IM5YuGCFRbj0gs" },
	{ "some+secret+key+and+trailing+garbage", 15, "eu-central-1",
	    "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2" },
};

START_TEST(test_password_vectors)
{
	char out[SES_SMTP_PASSWORD_LEN + 1];
	size_t len = pw_vectors[_i].len ? pw_vectors[_i].len :
	    strlen(pw_vectors[_i].secret);

	memset(out, 'X', sizeof(out));
	ck_assert_int_eq(ses_auth_smtp_password(pw_vectors[_i].secret, len,
	    pw_vectors[_i].region, out), 0);
	ck_assert_str_eq(out, pw_vectors[_i].password);
	ck_assert_int_eq(ses_auth_password_version(out), SES_PASSWORD_V4);
}
END_TEST

static const struct {
	const char *secret;
	size_t len;
	const char *region;
} pw_bad[] = {
	{ DOC_SECRET, 0, "us-east-1" },		/* empty secret */
	{ NULL, 10, "us-east-1" },
	{ DOC_SECRET, 40, NULL },
	{ DOC_SECRET, 40, "" },
	{ DOC_SECRET, 40, "US-EAST-1" },
	{ DOC_SECRET, 40, "us-east-1 " },
	{ DOC_SECRET, 40, "us-east" },
	{ DOC_SECRET, 40, "email-smtp.us-east-1.amazonaws.com" },
};

START_TEST(test_password_bad)
{
	char out[SES_SMTP_PASSWORD_LEN + 1];

	memset(out, 'X', sizeof(out));
	ck_assert_int_eq(ses_auth_smtp_password(pw_bad[_i].secret,
	    pw_bad[_i].len, pw_bad[_i].region, out), -1);
	ck_assert_str_eq(out, "");
}
END_TEST

/* Passwords are per region: the same secret gives different passwords. */
START_TEST(test_password_per_region)
{
	char a[SES_SMTP_PASSWORD_LEN + 1], b[SES_SMTP_PASSWORD_LEN + 1];

	ck_assert_int_eq(ses_auth_smtp_password(DOC_SECRET,
	    strlen(DOC_SECRET), "us-east-1", a), 0);
	ck_assert_int_eq(ses_auth_smtp_password(DOC_SECRET,
	    strlen(DOC_SECRET), "us-east-2", b), 0);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq((int)strlen(a), SES_SMTP_PASSWORD_LEN);
	ck_assert_int_eq(a[0], 'B');
}
END_TEST

static const struct {
	const char *password;
	enum ses_password_version version;
} pv_cases[] = {
	{ "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9", SES_PASSWORD_V4 },
	{ "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj", SES_PASSWORD_V4 },
	/* base64(0x04 || 00 01 .. 1f) */
	{ "BAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f", SES_PASSWORD_V4 },
	/* base64(0x02 || 00 01 .. 1f) */
	{ "AgABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f", SES_PASSWORD_V2 },
	/* Terraform's TestSesSmtpPasswordFromSecretKey (v2) vectors */
	{ "AnkqhOiWEcszZZzTMCQbOY1sPGoLFgMH9zhp4eNgSjo4", SES_PASSWORD_V2 },
	{ "Akwqr0Giwi8FsQFgW3DXWCC2DiiQ/jZjqLDWK8TeTBgL", SES_PASSWORD_V2 },
	/* base64(0x03 || ...), base64(0x00 * 33): right size, wrong version */
	{ "AwABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f", SES_PASSWORD_MALFORMED },
	{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SES_PASSWORD_MALFORMED },
	/* 32 and 34 decoded bytes */
	{ "BAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4=", SES_PASSWORD_MALFORMED },
	{ "BAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fIA==",
	    SES_PASSWORD_MALFORMED },
	/* too short, too long, empty */
	{ "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL", SES_PASSWORD_MALFORMED },
	{ "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9A",
	    SES_PASSWORD_MALFORMED },
	{ "BLBM", SES_PASSWORD_MALFORMED },
	{ "", SES_PASSWORD_MALFORMED },
	/* not base64: bad characters, URL-safe alphabet, white space */
	{ "BLBM*9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9", SES_PASSWORD_MALFORMED },
	{ "BLBM_9hSUELfq8Gw-rU1YcBjkOxGbhT2XG763xVLGWL9", SES_PASSWORD_MALFORMED },
	{ "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9\n",
	    SES_PASSWORD_MALFORMED },
	{ " BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL",
	    SES_PASSWORD_MALFORMED },
	{ "BLBM/9hSUELfq8Gw+rU1 cBjkOxGbhT2XG763xVLGWL9",
	    SES_PASSWORD_MALFORMED },
	/* the secret access key itself, pasted where the password goes */
	{ DOC_SECRET, SES_PASSWORD_MALFORMED },
	{ NULL, SES_PASSWORD_MALFORMED },
};

START_TEST(test_password_version)
{
	ck_assert_int_eq(ses_auth_password_version(pv_cases[_i].password),
	    pv_cases[_i].version);
}
END_TEST

static const struct {
	const char *id;
	int valid;
	int temporary;
} key_cases[] = {
	{ "AKIAIOSFODNN7EXAMPLE", 1, 0 },
	{ "ASIAIOSFODNN7EXAMPLE", 1, 1 },
	{ "AIDAJQABLZS4A3QDU576", 1, 0 },
	{ "AKIA567890123456", 1, 0 },		/* 16: shortest */
	{ "ASIA567890123456", 1, 1 },
	{ "AKIA56789012345", 0, 0 },		/* 15 */
	{ "ASIA56789012345", 0, 0 },
	{ "AKIA", 0, 0 },
	{ "ASIA", 0, 0 },
	{ "", 0, 0 },
	{ "akiaiosfodnn7example", 0, 0 },
	{ "asiaiosfodnn7example", 0, 0 },
	{ "AKIAIOSFODNN7EXAMPLe", 0, 0 },
	{ "AKIAIOSFODNN7EXAMPLE ", 0, 0 },
	{ " AKIAIOSFODNN7EXAMPLE", 0, 0 },
	{ "AKIA-IOSFODNN7EXAMPLE", 0, 0 },
	{ "AKIAIOSFODNN7EXAMPLE\n", 0, 0 },
	{ "XASIAIOSFODNN7EXAMPLE", 1, 0 },
	{ NULL, 0, 0 },
};

START_TEST(test_key_id)
{
	ck_assert_int_eq(ses_auth_key_id_valid(key_cases[_i].id),
	    key_cases[_i].valid);
	ck_assert_int_eq(ses_auth_key_id_is_temporary(key_cases[_i].id),
	    key_cases[_i].temporary);
}
END_TEST

/* 16..128 characters: the upper bound. */
static const struct {
	size_t len;
	int valid;
} key_len_cases[] = {
	{ 127, 1 }, { 128, 1 }, { 129, 0 }, { 1000, 0 },
};

START_TEST(test_key_id_length)
{
	size_t len = key_len_cases[_i].len;
	char *id = malloc(len + 1);

	ck_assert_ptr_nonnull(id);
	memset(id, '7', len);
	memcpy(id, "ASIA", 4);
	id[len] = '\0';
	ck_assert_int_eq(ses_auth_key_id_valid(id), key_len_cases[_i].valid);
	ck_assert_int_eq(ses_auth_key_id_is_temporary(id),
	    key_len_cases[_i].valid);
	free(id);
}
END_TEST

static const struct {
	const char *region;
	int valid;
	int known;
	int fips;
} region_cases[] = {
	{ "us-east-1", 1, 1, 1 },
	{ "us-east-2", 1, 1, 0 },
	{ "us-west-1", 1, 1, 0 },
	{ "us-west-2", 1, 1, 1 },
	{ "ca-central-1", 1, 1, 0 },
	{ "sa-east-1", 1, 1, 0 },
	{ "eu-west-1", 1, 1, 0 },
	{ "eu-west-2", 1, 1, 0 },
	{ "eu-west-3", 1, 1, 0 },
	{ "eu-central-1", 1, 1, 0 },
	{ "eu-north-1", 1, 1, 0 },
	{ "eu-south-1", 1, 1, 0 },
	{ "ap-south-1", 1, 1, 0 },
	{ "ap-northeast-1", 1, 1, 0 },
	{ "ap-northeast-2", 1, 1, 0 },
	{ "ap-northeast-3", 1, 1, 0 },
	{ "ap-southeast-1", 1, 1, 0 },
	{ "ap-southeast-2", 1, 1, 0 },
	{ "us-gov-west-1", 1, 1, 1 },
	{ "us-gov-east-1", 1, 1, 0 },
	/* valid, but not (yet) known to have an SMTP endpoint */
	{ "ap-southeast-7", 1, 0, 0 },
	{ "mx-central-1", 1, 0, 0 },
	{ "eusc-de-east-1", 1, 0, 0 },
	{ "af-south-1", 1, 0, 0 },
	{ "ap-south-2", 1, 0, 0 },
	{ "us-east-10", 1, 0, 0 },
	{ "us-iso-east-1", 1, 0, 0 },
	{ "us-aaaaaaaaaaaaaaaaaaaaaaaaaa-1", 1, 0, 0 },	/* 31 characters */
	/* not region names */
	{ "us-aaaaaaaaaaaaaaaaaaaaaaaaaaa-1", 0, 0, 0 },	/* 32 */
	{ "", 0, 0, 0 },
	{ "US-EAST-1", 0, 0, 0 },
	{ "Us-east-1", 0, 0, 0 },
	{ "us-east-1 ", 0, 0, 0 },
	{ " us-east-1", 0, 0, 0 },
	{ "us east 1", 0, 0, 0 },
	{ "us-east-1\n", 0, 0, 0 },
	{ "us.east.1", 0, 0, 0 },
	{ "us-east-1.", 0, 0, 0 },
	{ "us/east/1", 0, 0, 0 },
	{ "../us-east-1", 0, 0, 0 },
	{ "us--east-1", 0, 0, 0 },
	{ "-us-east-1", 0, 0, 0 },
	{ "us-east-1-", 0, 0, 0 },
	{ "us-east-", 0, 0, 0 },
	{ "us-east", 0, 0, 0 },
	{ "us-1", 0, 0, 0 },
	{ "useast1", 0, 0, 0 },
	{ "us-east-x", 0, 0, 0 },
	{ "us-east-1a", 0, 0, 0 },
	{ "1s-east-1", 0, 0, 0 },
	{ "us_east_1", 0, 0, 0 },
	{ "us-east-1:587", 0, 0, 0 },
	{ "us-éast-1", 0, 0, 0 },
	{ NULL, 0, 0, 0 },
};

START_TEST(test_region)
{
	const char *r = region_cases[_i].region;

	ck_assert_int_eq(ses_auth_region_valid(r), region_cases[_i].valid);
	ck_assert_int_eq(ses_auth_region_known(r), region_cases[_i].known);
	ck_assert_int_eq(ses_auth_region_has_fips(r), region_cases[_i].fips);
}
END_TEST

static const struct {
	const char *region;
	int fips;
	size_t outlen;
	int rc;
	const char *host;	/* expected out on success */
} host_cases[] = {
	{ "us-east-1", 0, SES_HOST_MAX, 0, "email-smtp.us-east-1.amazonaws.com" },
	{ "eu-west-1", 0, SES_HOST_MAX, 0, "email-smtp.eu-west-1.amazonaws.com" },
	{ "us-gov-west-1", 0, SES_HOST_MAX, 0,
	    "email-smtp.us-gov-west-1.amazonaws.com" },
	{ "ap-southeast-7", 0, SES_HOST_MAX, 0,
	    "email-smtp.ap-southeast-7.amazonaws.com" },
	{ "us-east-1", 1, SES_HOST_MAX, 0,
	    "email-smtp-fips.us-east-1.amazonaws.com" },
	{ "us-west-2", 1, SES_HOST_MAX, 0,
	    "email-smtp-fips.us-west-2.amazonaws.com" },
	{ "us-gov-west-1", 1, SES_HOST_MAX, 0,
	    "email-smtp-fips.us-gov-west-1.amazonaws.com" },
	/* exact fit (34 characters and the NUL), one short */
	{ "us-east-1", 0, 35, 0, "email-smtp.us-east-1.amazonaws.com" },
	{ "us-east-1", 0, 34, -1, NULL },
	{ "us-east-1", 1, 40, 0, "email-smtp-fips.us-east-1.amazonaws.com" },
	{ "us-east-1", 1, 39, -1, NULL },
	{ "us-east-1", 0, 1, -1, NULL },
	{ "us-east-1", 0, 0, -1, NULL },
	/* invalid regions */
	{ "US-EAST-1", 0, SES_HOST_MAX, -1, NULL },
	{ "evil.com/x", 0, SES_HOST_MAX, -1, NULL },
	{ "", 0, SES_HOST_MAX, -1, NULL },
	{ NULL, 0, SES_HOST_MAX, -1, NULL },
};

START_TEST(test_smtp_host)
{
	size_t outlen = host_cases[_i].outlen;
	/* Exactly outlen bytes, so that an overrun trips the sanitizer. */
	char *out = malloc(outlen ? outlen : 1);

	ck_assert_ptr_nonnull(out);
	if (outlen > 0)
		memset(out, 'X', outlen);
	ck_assert_int_eq(ses_auth_smtp_host(host_cases[_i].region,
	    host_cases[_i].fips, out, outlen), host_cases[_i].rc);
	if (host_cases[_i].rc == 0)
		ck_assert_str_eq(out, host_cases[_i].host);
	else if (outlen > 0)
		ck_assert_str_eq(out, "");	/* never a truncated name */
	free(out);
}
END_TEST

#define VPCE_ID "vpce-0123456789abcdef0-abcdefgh"

static const struct {
	const char *host;
	enum ses_host_kind kind;
	const char *region;
} classify_cases[] = {
	{ "email-smtp.us-east-1.amazonaws.com", SES_HOST_REGIONAL, "us-east-1" },
	{ "email-smtp.eu-west-1.amazonaws.com", SES_HOST_REGIONAL, "eu-west-1" },
	{ "email-smtp.us-gov-west-1.amazonaws.com", SES_HOST_REGIONAL,
	    "us-gov-west-1" },
	{ "email-smtp.ap-southeast-7.amazonaws.com", SES_HOST_REGIONAL,
	    "ap-southeast-7" },
	{ "email-smtp-fips.us-east-1.amazonaws.com", SES_HOST_FIPS,
	    "us-east-1" },
	{ "email-smtp-fips.us-gov-west-1.amazonaws.com", SES_HOST_FIPS,
	    "us-gov-west-1" },
	{ VPCE_ID ".email-smtp.us-east-1.vpce.amazonaws.com", SES_HOST_VPCE,
	    "us-east-1" },
	{ "vpce-1a2b3c4d-x9.email-smtp.ap-northeast-2.vpce.amazonaws.com",
	    SES_HOST_VPCE, "ap-northeast-2" },
	/* the zonal name of a VPC endpoint */
	{ VPCE_ID "-eu-west-1b.email-smtp.eu-west-1.vpce.amazonaws.com",
	    SES_HOST_VPCE, "eu-west-1" },
	/* case and a trailing dot do not matter */
	{ "EMAIL-SMTP.US-EAST-1.AMAZONAWS.COM", SES_HOST_REGIONAL, "us-east-1" },
	{ "email-smtp.US-West-2.amazonaws.com", SES_HOST_REGIONAL, "us-west-2" },
	{ "Email-Smtp-Fips.Us-West-2.AmazonAWS.com.", SES_HOST_FIPS,
	    "us-west-2" },
	{ "email-smtp.us-east-1.amazonaws.com.", SES_HOST_REGIONAL,
	    "us-east-1" },
	{ "VPCE-0123456789ABCDEF0-ABCDEFGH.EMAIL-SMTP.EU-WEST-1.VPCE."
	  "AMAZONAWS.COM.", SES_HOST_VPCE, "eu-west-1" },
	/* IP addresses and other names */
	{ "52.94.228.178", SES_HOST_OTHER, "" },
	{ "::1", SES_HOST_OTHER, "" },
	{ "[2001:db8::1]", SES_HOST_OTHER, "" },
	{ "localhost", SES_HOST_OTHER, "" },
	{ "smtp.example.com", SES_HOST_OTHER, "" },
	{ "ses-relay.internal.example.com", SES_HOST_OTHER, "" },
	{ "email.us-east-1.amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-fips.us-east-1.amazonaws.com", SES_HOST_OTHER, "" },
	{ "inbound-smtp.us-east-1.amazonaws.com", SES_HOST_OTHER, "" },
	{ "", SES_HOST_OTHER, "" },
	{ ".", SES_HOST_OTHER, "" },
	/* look-alikes */
	{ "email-smtp.us-east-1.amazonaws.com.evil.com", SES_HOST_OTHER, "" },
	{ "email-smtp-fips.us-east-1.amazonaws.com.evil.com", SES_HOST_OTHER,
	    "" },
	{ "email-smtp.us-east-1.amazonaws.com..", SES_HOST_OTHER, "" },
	{ "email-smtp.us-east-1.amazonaws.comx", SES_HOST_OTHER, "" },
	{ "email-smtp.us-east-1.evilamazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp.us-east-1.amazonaws.com:587", SES_HOST_OTHER, "" },
	{ "evil-email-smtp.us-east-1.amazonaws.com", SES_HOST_OTHER, "" },
	{ "x.email-smtp.us-east-1.amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp.evil.com.amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp.amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp..amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp.us-east.amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp.us-east-1.amazonaws.com.cn", SES_HOST_OTHER, "" },
	{ "email-smtp-fips.us-east-1.vpce.amazonaws.com", SES_HOST_OTHER, "" },
	{ "email-smtp.us-east-1.vpce.amazonaws.com", SES_HOST_OTHER, "" },
	{ VPCE_ID ".email-smtp.us-east-1.amazonaws.com", SES_HOST_OTHER, "" },
	{ VPCE_ID ".email-smtp.us-east-1.vpce.amazonaws.com.evil.com",
	    SES_HOST_OTHER, "" },
	{ VPCE_ID ".evil.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ VPCE_ID ".ec2.us-east-1.vpce.amazonaws.com", SES_HOST_OTHER, "" },
	{ "vpce-0123456789abcdef0.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ "vpce--abcdefgh.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ "vpce-0123-.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ "vpce-0123-ab_cd.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ "xvpce-0123-abcd.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	/* a zonal name for another region than the domain's */
	{ VPCE_ID "-us-west-2a.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ VPCE_ID "-us-east-1.email-smtp.us-east-1.vpce.amazonaws.com",
	    SES_HOST_OTHER, "" },
	{ NULL, SES_HOST_OTHER, "" },
};

START_TEST(test_classify_host)
{
	char region[SES_REGION_MAX];

	/* Stale contents must be replaced, also for SES_HOST_OTHER. */
	strcpy(region, "stale-junk-9");
	ck_assert_int_eq(ses_auth_classify_host(classify_cases[_i].host,
	    region, sizeof(region)), classify_cases[_i].kind);
	ck_assert_str_eq(region, classify_cases[_i].region);
	/* The region argument is optional. */
	ck_assert_int_eq(ses_auth_classify_host(classify_cases[_i].host,
	    NULL, 0), classify_cases[_i].kind);
}
END_TEST

/* A region buffer too small gets "", never a truncated region. */
START_TEST(test_classify_small_region)
{
	char region[10];	/* "us-east-1" and its NUL */

	strcpy(region, "junk");
	ck_assert_int_eq(ses_auth_classify_host(
	    "email-smtp.us-east-1.amazonaws.com", region, sizeof(region) - 1),
	    SES_HOST_REGIONAL);
	ck_assert_str_eq(region, "");
	ck_assert_int_eq(ses_auth_classify_host(
	    "email-smtp.us-east-1.amazonaws.com", region, sizeof(region)),
	    SES_HOST_REGIONAL);
	ck_assert_str_eq(region, "us-east-1");
}
END_TEST

/* Host names of SES_HOST_MAX characters or more are not SES's. */
START_TEST(test_classify_long_host)
{
	char host[SES_HOST_MAX * 2];
	char region[SES_REGION_MAX];
	size_t n;

	n = (size_t)snprintf(host, sizeof(host), "email-smtp.");
	memset(host + n, 'a', sizeof(host) - n - 1);
	host[sizeof(host) - 1] = '\0';
	strcpy(host + sizeof(host) - 30, "-east-1.amazonaws.com");
	strcpy(region, "junk");
	ck_assert_int_eq(ses_auth_classify_host(host, region, sizeof(region)),
	    SES_HOST_OTHER);
	ck_assert_str_eq(region, "");
}
END_TEST

static Suite *
ses_auth_suite(void)
{
	Suite *s = suite_create("ses_auth");
	TCase *tc;

	tc = tcase_create("password");
	tcase_add_loop_test(tc, test_password_vectors, 0, NELEM(pw_vectors));
	tcase_add_loop_test(tc, test_password_bad, 0, NELEM(pw_bad));
	tcase_add_test(tc, test_password_per_region);
	tcase_add_loop_test(tc, test_password_version, 0, NELEM(pv_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("key_id");
	tcase_add_loop_test(tc, test_key_id, 0, NELEM(key_cases));
	tcase_add_loop_test(tc, test_key_id_length, 0, NELEM(key_len_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("region");
	tcase_add_loop_test(tc, test_region, 0, NELEM(region_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("host");
	tcase_add_loop_test(tc, test_smtp_host, 0, NELEM(host_cases));
	tcase_add_loop_test(tc, test_classify_host, 0, NELEM(classify_cases));
	tcase_add_test(tc, test_classify_small_region);
	tcase_add_test(tc, test_classify_long_host);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ses_auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
