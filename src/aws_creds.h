/*
 * aws_creds.h — AWS credentials: the provider chain of the AWS SDKs, and
 * the refresh of temporary credentials on the event loop.
 *
 * The chain, first match wins (the AWS SDKs' order, after sesrelay's own
 * keys):
 *  0. systemd credentials: $CREDENTIALS_DIRECTORY/smtp_password (else
 *     .../secret_access_key) stands for smtp_password_file (else
 *     secret_access_key_file) when the configuration names no secret
 *  1. [ses] smtp_password_file (an already derived SMTP password, with
 *     access_key_id; transport = smtp only)
 *  2. [ses] access_key_id + secret_access_key_file, else secret_access_key
 *  3. the environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
 *     (+ AWS_SESSION_TOKEN: temporary)
 *  4. the shared files: AWS_SHARED_CREDENTIALS_FILE (else
 *     ~/.aws/credentials) and AWS_CONFIG_FILE (else ~/.aws/config),
 *     profile aws_profile, else AWS_PROFILE, else "default": static keys
 *     (the credentials file first), or role_arn + web_identity_token_file
 *     (web identity, below; refreshable)
 *  5. web identity (EKS IRSA): AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE
 *     (+ AWS_ROLE_SESSION_NAME): STS AssumeRoleWithWebIdentity at the
 *     regional endpoint https://sts.<region>.amazonaws.com/
 *     (AWS_ENDPOINT_URL_STS overrides it)
 *  6. the container endpoint (ECS task roles, EKS pod identity):
 *     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on http://169.254.170.2), else
 *     AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback or
 *     link-local address), with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 *     (read at every fetch) else AWS_CONTAINER_AUTHORIZATION_TOKEN as the
 *     Authorization header
 *  7. EC2 instance metadata, IMDSv2 only: PUT /latest/api/token, then
 *     GET .../iam/security-credentials/ (the role), then .../<role>;
 *     off with AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT
 *     overrides http://169.254.169.254
 * Links 0-4 (static keys) are aws_creds_resolve_static(); 4 (role
 * profiles) to 7 need HTTP and are the provider's.
 *
 * For tests only (documented as such in sesrelay.conf(5)):
 * SESRELAY_TEST_CONTAINER_HOST replaces 169.254.170.2 (e.g.
 * "127.0.0.1:8080"), and SESRELAY_TEST_REFRESH_MARGIN (seconds) the 5
 * minute refresh margin.
 *
 * Refresh as the SDKs: credentials that expire are fetched again
 * AWS_CREDS_REFRESH_MARGIN seconds before they expire, on the event loop;
 * no session ever waits for it.  A failed fetch is retried (1 s doubling
 * to 60 s) and logged; the current credentials stay in use until they
 * expire, after which aws_creds_current() gives NULL and callers defer
 * mail (4xx), never bounce it.
 *
 * Secrets (secret_access_key, session_token, smtp_password) are wiped
 * when the last reference goes, never logged; `source` names where they
 * came from and is safe to show.
 */
#ifndef SESRELAY_AWS_CREDS_H
#define SESRELAY_AWS_CREDS_H

#include <stddef.h>
#include <time.h>

struct config;
struct event_base;
struct http_client;

#define AWS_CREDS_ERR_MAX 512
#define AWS_CREDS_SOURCE_MAX 256
#define AWS_CREDS_REFRESH_MARGIN 300	/* seconds */

struct aws_credentials {		/* an immutable, reference-counted snapshot */
	char *access_key_id;
	char *secret_access_key;	/* secret: wiped when freed; NULL when
					 * only smtp_password is known */
	char *session_token;		/* NULL for long-lived keys */
	time_t expiration;		/* 0: does not expire */
	char source[AWS_CREDS_SOURCE_MAX];	/* for check/log/metrics, never
					 * a secret: "environment",
					 * "secret_access_key_file /etc/x", "web
					 * identity arn:aws:iam::1:role/r", ... */
	char *smtp_password;		/* secret: an SMTP password already
					 * derived (smtp_password_file), else
					 * NULL */
	int refs;
};

struct aws_credentials *aws_credentials_ref(struct aws_credentials *);
/* NULL is fine; the last reference wipes the secrets and frees. */
void aws_credentials_unref(struct aws_credentials *);
/* 1 if c are temporary (STS) credentials: a session token, or an ASIA key. */
int aws_credentials_temporary(const struct aws_credentials *c);

/*
 * Static, synchronous part of the chain (links 0-4 above without role
 * profiles): one new reference, or NULL with one line in err naming the
 * file, key or variable at fault, or, when nothing is found, what was
 * tried.  A profile with role_arn + web_identity_token_file is an error
 * here (it needs the provider).
 */
struct aws_credentials *aws_creds_resolve_static(const struct config *,
    char *err, size_t errlen);

/* The SES SMTP login made from credentials (transport = smtp). */
struct ses_smtp_login {
	char *user;			/* the access key id */
	char *password;			/* secret: the derived SMTP password */
	char source[AWS_CREDS_SOURCE_MAX];
	int refs;
};
/*
 * Derive the SMTP password for region from c.  NULL with a clear error
 * for temporary credentials (SES SMTP cannot use them: transport = api
 * can), or a secret that is an SMTP password already.
 */
struct ses_smtp_login *aws_creds_smtp_login(const struct aws_credentials *c,
    const char *region, char *err, size_t errlen);
/* aws_creds_resolve_static() then aws_creds_smtp_login() for cfg->region:
 * what transport = smtp authenticates with. */
struct ses_smtp_login *aws_creds_smtp_login_for(const struct config *cfg,
    char *err, size_t errlen);
struct ses_smtp_login *ses_smtp_login_ref(struct ses_smtp_login *);
void ses_smtp_login_unref(struct ses_smtp_login *);

/*
 * The provider owns the current credentials and refreshes them on the
 * loop.  It starts with the static chain; if that finds nothing, with the
 * first of links 4-7 that applies, fetched asynchronously (the provider
 * is returned at once, aws_creds_current() is NULL until the first fetch
 * succeeds).  NULL and err only for a configuration error (a bad file, a
 * bad full URI).  http may be NULL when only static credentials are
 * wanted; the provider does not own it.
 */
struct aws_creds_provider *aws_creds_provider_new(struct event_base *,
    struct http_client *, const struct config *, char *err, size_t errlen);
/* A new reference, or NULL when none is valid now (callers defer mail
 * with 4xx). */
struct aws_credentials *aws_creds_current(struct aws_creds_provider *);
/* Called after every fetch (ok 1: new credentials; 0: failed, err says
 * why); for `sesrelay check` and tests.  NULL to stop. */
typedef void aws_creds_notify_fn(int ok, const char *err, void *arg);
void aws_creds_provider_set_notify(struct aws_creds_provider *,
    aws_creds_notify_fn *, void *arg);
/* What the provider uses or tries ("web identity arn:..."), never a
 * secret; and the last fetch error ("" if none). */
const char *aws_creds_provider_source(const struct aws_creds_provider *);
const char *aws_creds_provider_error(const struct aws_creds_provider *);
/* Counters for metrics. */
struct aws_creds_stats {
	unsigned long long fetches, failures;
	time_t expiration;		/* of the current credentials; 0 */
	int valid;			/* 1 if current() would give some */
};
void aws_creds_provider_stats(const struct aws_creds_provider *,
    struct aws_creds_stats *);
void aws_creds_provider_free(struct aws_creds_provider *);

/* --- pure parsers, exported for tests ---------------------------------- */

/* "2026-12-06T13:00:00Z", with optional fractional seconds, "Z" or
 * "+00:00": 0 and *out, or -1. */
int aws_creds_parse_time(const char *s, time_t *out);
/*
 * Parse an STS AssumeRoleWithWebIdentity answer (XML).  0 and a new
 * credentials object with refs 1 (source empty), or -1 with the STS
 * error ("InvalidIdentityToken: ...") or what is wrong in err.
 */
int aws_creds_parse_sts(const char *body, size_t len,
    struct aws_credentials **out, char *err, size_t errlen);
/* The JSON of the container endpoint and of IMDS (AccessKeyId,
 * SecretAccessKey, Token, Expiration; IMDS's Code must be Success). */
int aws_creds_parse_json(const char *body, size_t len,
    struct aws_credentials **out, char *err, size_t errlen);
/* 1 if the URL may be used as AWS_CONTAINER_CREDENTIALS_FULL_URI: https,
 * or http to a loopback or link-local host. */
int aws_creds_full_uri_allowed(const char *url);

#endif
