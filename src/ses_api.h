/*
 * ses_api.h — pure: the SES API v2 requests sesrelay makes (GetAccount,
 * GetEmailIdentity), their URLs, and the parsing of their answers and of
 * SES's error shape.
 *
 * No I/O, no globals, no logging: http_client.c sends what is built here,
 * and account.c / sesrelay check interpret what is parsed here.  JSON is
 * read with jansson (strict: duplicate keys refused; a field of the wrong
 * type is an error, not a silent 0).
 */
#ifndef SESRELAY_SES_API_H
#define SESRELAY_SES_API_H

#include <stddef.h>

#define SES_API_URL_MAX 512
#define SES_API_TEXT_MAX 512

/* GetAccount's answer, the parts sesrelay uses. */
struct ses_account {
	int production;		/* ProductionAccessEnabled (0: sandbox) */
	int sending_enabled;	/* SendingEnabled */
	char enforcement[32];	/* EnforcementStatus: HEALTHY, PROBATION,
				 * SHUTDOWN...; "" if absent */
	double max_24h;		/* SendQuota.Max24HourSend; -1: unlimited */
	double max_rate;	/* SendQuota.MaxSendRate, per second */
	double sent_24h;	/* SendQuota.SentLast24Hours */
};

/* GetEmailIdentity's answer. */
struct ses_identity {
	char type[24];		/* EMAIL_ADDRESS, DOMAIN, MANAGED_DOMAIN */
	int verified;		/* VerifiedForSendingStatus */
	char verification[24];	/* VerificationStatus ("" if absent):
				 * SUCCESS, PENDING, FAILED, TEMPORARY_FAILURE,
				 * NOT_STARTED */
	char dkim[24];		/* DkimAttributes.Status ("" if absent) */
	int dkim_signing;	/* DkimAttributes.SigningEnabled */
};

/* How a request ended, for decisions and metrics. */
enum ses_api_result {
	SES_API_OK,
	SES_API_DENIED,		/* 403 AccessDenied(Exception): IAM */
	SES_API_NOT_FOUND,	/* 404 NotFoundException */
	SES_API_THROTTLED,	/* 429, TooManyRequests, Throttling */
	SES_API_AUTH,		/* signature, unknown key, expired token */
	SES_API_SERVER,		/* 5xx */
	SES_API_CLIENT,		/* another 4xx */
	SES_API_TRANSPORT,	/* no HTTP answer (DNS, TCP, TLS, timeout) */
	SES_API_BAD_ANSWER,	/* 200 with a body that does not parse */
};
#define SES_API_NRESULTS 9

/* SES's error shape: X-Amzn-ErrorType "Code[:uri]" and/or a JSON body
 * {"__type"|"code": "...", "message"|"Message": "..."}. */
struct ses_api_error {
	char code[64];			/* "AccessDeniedException", or "" */
	char message[SES_API_TEXT_MAX];	/* "" if none */
};

/* "https://email.<region>.amazonaws.com", or endpoint (an api_endpoint
 * URL, trailing '/' dropped).  -1 if it does not fit. */
int ses_api_base_url(const char *endpoint, const char *region, char *out,
    size_t outlen);
/* base + "/v2/email/account" */
int ses_api_account_url(const char *base, char *out, size_t outlen);
/* base + "/v2/email/identities/" + the identity URI-encoded once
 * ("user@example.com" -> "user%40example.com"); -1 if identity is empty
 * or the URL does not fit. */
int ses_api_identity_url(const char *base, const char *identity, char *out,
    size_t outlen);
/* "aws:amz:<region>:ses" */
void ses_api_scope(const char *region, char *out, size_t outlen);

/* 0 and *out filled, or -1 with a reason in err (not JSON, a required
 * field missing or of the wrong type). */
int ses_api_parse_account(const char *body, size_t len,
    struct ses_account *out, char *err, size_t errlen);
int ses_api_parse_identity(const char *body, size_t len,
    struct ses_identity *out, char *err, size_t errlen);
/* Never fails: what can be read of an error answer goes into out. */
void ses_api_parse_error(const char *error_type, const char *body,
    size_t len, struct ses_api_error *out);
/* The result of an HTTP answer: status 0 is a transport failure. */
enum ses_api_result ses_api_classify(long status,
    const struct ses_api_error *e);
/* "ok", "denied", "not_found", "throttled", "auth", "server_error",
 * "client_error", "transport", "bad_answer" (metric labels) */
const char *ses_api_result_name(enum ses_api_result r);

/* The identity an identity ARN names:
 * "arn:aws:ses:us-east-1:123456789012:identity/example.com" ->
 * "example.com"; account (13 bytes) gets "123456789012" when not NULL.
 * -1 if arn is not an SES identity ARN. */
int ses_api_arn_identity(const char *arn, char *out, size_t outlen,
    char *account);

#endif
