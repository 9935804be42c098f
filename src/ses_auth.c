/* ses_auth.c — see ses_auth.h. */
#include "ses_auth.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "xmalloc.h"

#define SHA256_LEN 32
#define KEY_ID_MIN 16
#define KEY_ID_MAX 128

/* Regions with an SES SMTP endpoint (SES.md "Endpoints").  AWS's list
 * grows: a region missing here is warned about, not refused. */
static const char *const known_regions[] = {
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	"ca-central-1", "sa-east-1",
	"eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1",
	"eu-north-1", "eu-south-1",
	"ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-southeast-1", "ap-southeast-2",
	"us-gov-west-1", "us-gov-east-1",
};

/* Regions with an email-smtp-fips.<region>.amazonaws.com endpoint. */
static const char *const fips_regions[] = {
	"us-east-1", "us-west-2", "us-gov-west-1",
};

static const char *const derive_steps[] = {
	/* the region goes between the first and the second */
	"ses", "aws4_request", "SendRawEmail",
};

static int
in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

static int
is_lower(int c)
{
	return c >= 'a' && c <= 'z';
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_lower_alnum(int c)
{
	return is_lower(c) || is_digit(c);
}

static int
is_b64(int c)
{
	return (c >= 'A' && c <= 'Z') || is_lower(c) || is_digit(c) ||
	    c == '+' || c == '/';
}

/* key = HMAC-SHA256(key, msg), in place. */
static int
hmac_step(unsigned char key[SHA256_LEN], const char *msg)
{
	unsigned char out[SHA256_LEN];
	unsigned int outlen = 0;
	int rc = -1;

	if (HMAC(EVP_sha256(), key, SHA256_LEN, (const unsigned char *)msg,
	    strlen(msg), out, &outlen) != NULL && outlen == SHA256_LEN) {
		memcpy(key, out, SHA256_LEN);
		rc = 0;
	}
	OPENSSL_cleanse(out, sizeof(out));
	return rc;
}

int
ses_auth_smtp_password(const char *secret, size_t secret_len,
    const char *region, char out[SES_SMTP_PASSWORD_LEN + 1])
{
	unsigned char sig[1 + SHA256_LEN];
	unsigned char *k = sig + 1;
	unsigned char *seed;
	unsigned int klen = 0;
	size_t seedlen, i;
	int rc = -1;

	if (out != NULL)
		out[0] = '\0';
	if (out == NULL || secret == NULL || secret_len == 0 ||
	    secret_len > (size_t)INT_MAX - 4 || !ses_auth_region_valid(region))
		return -1;

	/* k = HMAC-SHA256("AWS4" + secret, "11111111") */
	seedlen = 4 + secret_len;
	seed = xmalloc(seedlen);
	memcpy(seed, "AWS4", 4);
	memcpy(seed + 4, secret, secret_len);
	if (HMAC(EVP_sha256(), seed, (int)seedlen,
	    (const unsigned char *)"11111111", 8, k, &klen) == NULL ||
	    klen != SHA256_LEN)
		goto done;

	if (hmac_step(k, region) == -1)
		goto done;
	for (i = 0; i < sizeof(derive_steps) / sizeof(derive_steps[0]); i++)
		if (hmac_step(k, derive_steps[i]) == -1)
			goto done;

	sig[0] = 0x04;
	if (EVP_EncodeBlock((unsigned char *)out, sig, (int)sizeof(sig)) !=
	    SES_SMTP_PASSWORD_LEN) {
		OPENSSL_cleanse(out, SES_SMTP_PASSWORD_LEN + 1);
		out[0] = '\0';
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(seed, seedlen);
	free(seed);
	OPENSSL_cleanse(sig, sizeof(sig));
	return rc;
}

enum ses_password_version
ses_auth_password_version(const char *password)
{
	unsigned char raw[1 + SHA256_LEN + 3];	/* room for the decoder */
	enum ses_password_version v = SES_PASSWORD_MALFORMED;
	size_t i;

	/* 33 bytes are exactly 44 base64 characters, without padding.
	 * Check the alphabet first: EVP_DecodeBlock() skips white space
	 * and would accept a password with a stray newline. */
	if (password == NULL ||
	    strlen(password) != SES_SMTP_PASSWORD_LEN)
		return SES_PASSWORD_MALFORMED;
	for (i = 0; i < SES_SMTP_PASSWORD_LEN; i++)
		if (!is_b64((unsigned char)password[i]))
			return SES_PASSWORD_MALFORMED;

	if (EVP_DecodeBlock(raw, (const unsigned char *)password,
	    SES_SMTP_PASSWORD_LEN) == 1 + SHA256_LEN) {
		if (raw[0] == 0x04)
			v = SES_PASSWORD_V4;
		else if (raw[0] == 0x02)
			v = SES_PASSWORD_V2;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	return v;
}

int
ses_auth_secret_valid(const char *secret)
{
	const char *p;

	for (p = secret; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return 0;
	return p > secret && p - secret <= SES_SECRET_MAX;
}

int
ses_auth_key_id_valid(const char *key_id)
{
	size_t n;

	if (key_id == NULL)
		return 0;
	for (n = 0; key_id[n] != '\0'; n++) {
		if (n >= KEY_ID_MAX)
			return 0;
		if (!((key_id[n] >= 'A' && key_id[n] <= 'Z') ||
		    is_digit(key_id[n])))
			return 0;
	}
	return n >= KEY_ID_MIN;
}

int
ses_auth_key_id_is_temporary(const char *key_id)
{
	return ses_auth_key_id_valid(key_id) &&
	    strncmp(key_id, "ASIA", 4) == 0;
}

/*
 * A region name is at least three '-'-separated parts: the first of
 * lower-case letters, the middle ones of lower-case letters and digits,
 * the last of digits ("us-east-1", "us-gov-west-1", "eusc-de-east-1").
 */
static int
region_valid_n(const char *r, size_t len)
{
	size_t i, parts = 1, plen = 0;
	int first_alpha = 1, last_digits = 1;

	if (r == NULL || len == 0 || len >= SES_REGION_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)r[i];

		if (c == '-') {
			if (plen == 0)
				return 0;
			parts++;
			plen = 0;
			last_digits = 1;
			continue;
		}
		if (!is_lower_alnum(c))
			return 0;
		if (parts == 1 && !is_lower(c))
			first_alpha = 0;
		if (!is_digit(c))
			last_digits = 0;
		plen++;
	}
	return plen > 0 && parts >= 3 && first_alpha && last_digits;
}

int
ses_auth_region_valid(const char *region)
{
	if (region == NULL)
		return 0;
	return region_valid_n(region, strnlen(region, SES_REGION_MAX));
}

int
ses_auth_region_known(const char *region)
{
	return in_list(region, known_regions,
	    sizeof(known_regions) / sizeof(known_regions[0]));
}

int
ses_auth_region_has_fips(const char *region)
{
	return in_list(region, fips_regions,
	    sizeof(fips_regions) / sizeof(fips_regions[0]));
}

/* fips=1 is not refused for a region without a known FIPS endpoint: new
 * ones appear, and the caller decides (ses_auth_region_has_fips()). */
int
ses_auth_smtp_host(const char *region, int fips, char *out, size_t outlen)
{
	int n;

	if (out == NULL || outlen == 0)
		return -1;
	out[0] = '\0';
	if (!ses_auth_region_valid(region))
		return -1;
	n = snprintf(out, outlen, "%s.%s.amazonaws.com",
	    fips ? "email-smtp-fips" : "email-smtp", region);
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static int
has_prefix(const char *s, size_t len, const char *prefix, size_t plen)
{
	return len >= plen && memcmp(s, prefix, plen) == 0;
}

/*
 * s (len bytes) is "<region><suffix>": check the suffix and the region
 * and return the region's length, or 0.
 */
static size_t
region_then(const char *s, size_t len, const char *suffix)
{
	size_t slen = strlen(suffix);

	if (len <= slen || memcmp(s + len - slen, suffix, slen) != 0)
		return 0;
	if (!region_valid_n(s, len - slen))
		return 0;
	return len - slen;
}

/*
 * The first label of a VPC endpoint name: "vpce-<id>-<suffix>", or the
 * zonal form "vpce-<id>-<suffix>-<region><zone letter>", where region
 * must be the one named in the rest of the host.
 */
static int
vpce_label_valid(const char *s, size_t len, const char *region,
    size_t rlen)
{
	size_t i = 5, n;

	if (!has_prefix(s, len, "vpce-", 5))
		return 0;
	for (n = 0; i < len && is_lower_alnum((unsigned char)s[i]); i++)
		n++;				/* <id> */
	if (n == 0 || i == len || s[i] != '-')
		return 0;
	i++;
	for (n = 0; i < len && is_lower_alnum((unsigned char)s[i]); i++)
		n++;				/* <suffix> */
	if (n == 0)
		return 0;
	if (i == len)
		return 1;
	if (s[i] != '-')
		return 0;
	i++;					/* zonal: -<region><letter> */
	return len - i == rlen + 1 && memcmp(s + i, region, rlen) == 0 &&
	    is_lower((unsigned char)s[len - 1]);
}

enum ses_host_kind
ses_auth_classify_host(const char *host, char *region, size_t regionlen)
{
	static const char regional[] = "email-smtp.";
	static const char fips[] = "email-smtp-fips.";
	static const char vpce_mid[] = ".email-smtp.";
	char h[SES_HOST_MAX];
	enum ses_host_kind kind = SES_HOST_OTHER;
	const char *reg = NULL, *p;
	size_t i, len, rlen = 0;

	if (region != NULL && regionlen > 0)
		region[0] = '\0';
	if (host == NULL)
		return SES_HOST_OTHER;
	len = strnlen(host, sizeof(h));
	if (len == sizeof(h))
		return SES_HOST_OTHER;
	if (len > 0 && host[len - 1] == '.')
		len--;
	for (i = 0; i < len; i++) {
		char c = host[i];

		h[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	h[len] = '\0';

	if (has_prefix(h, len, fips, sizeof(fips) - 1)) {
		reg = h + sizeof(fips) - 1;
		rlen = region_then(reg, len - (size_t)(reg - h),
		    ".amazonaws.com");
		kind = SES_HOST_FIPS;
	} else if (has_prefix(h, len, regional, sizeof(regional) - 1)) {
		reg = h + sizeof(regional) - 1;
		rlen = region_then(reg, len - (size_t)(reg - h),
		    ".amazonaws.com");
		kind = SES_HOST_REGIONAL;
	} else if (has_prefix(h, len, "vpce-", 5) &&
	    (p = strstr(h, vpce_mid)) != NULL) {
		reg = p + sizeof(vpce_mid) - 1;
		rlen = region_then(reg, len - (size_t)(reg - h),
		    ".vpce.amazonaws.com");
		if (rlen > 0 && !vpce_label_valid(h, (size_t)(p - h), reg,
		    rlen))
			rlen = 0;
		kind = SES_HOST_VPCE;
	}
	if (rlen == 0)
		return SES_HOST_OTHER;

	/* Never a truncated region: "" if it does not fit. */
	if (region != NULL && regionlen > rlen) {
		memcpy(region, reg, rlen);
		region[rlen] = '\0';
	}
	return kind;
}
