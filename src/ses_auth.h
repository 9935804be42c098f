/*
 * ses_auth.h — pure SES SMTP credential and endpoint helpers.
 *
 * No I/O, no globals, no logging: every function is a computation over its
 * arguments, so it can be unit-tested and fuzzed.  Callers that hold
 * secrets wipe them (xmalloc.h wipe()) when done; functions here wipe their
 * own intermediate key material before returning.
 */
#ifndef SESRELAY_SES_AUTH_H
#define SESRELAY_SES_AUTH_H

#include <stddef.h>

/* A v4 SMTP password: base64(0x04 || 32-byte HMAC) = 44 characters. */
#define SES_SMTP_PASSWORD_LEN 44
#define SES_REGION_MAX 32
#define SES_HOST_MAX 256

/*
 * Derive the SES SMTP password ("version 4") from an IAM secret access key
 * for region (see SPEC.md).  out receives 44 characters and a NUL.
 * Returns 0, or -1 if secret or region is empty or region is not
 * syntactically a region name (ses_auth_region_valid()).
 */
int ses_auth_smtp_password(const char *secret, size_t secret_len,
    const char *region, char out[SES_SMTP_PASSWORD_LEN + 1]);

enum ses_password_version {
	SES_PASSWORD_V4,	/* 44 base64 chars decoding to 0x04 + 32 bytes */
	SES_PASSWORD_V2,	/* 0x02 + 32 bytes: the retired scheme SES refuses */
	SES_PASSWORD_MALFORMED	/* anything else */
};
/* Classify an already derived SMTP password (e.g. smtp_password_file). */
enum ses_password_version ses_auth_password_version(const char *password);

/* 1 if secret can be a secret access key: 1..SES_SECRET_MAX printable
 * ASCII characters, no blanks (AWS's are 40 of [A-Za-z0-9+/]).  A v4
 * password (ses_auth_password_version) passes too: callers that must not
 * take a derived password for a secret check that as well. */
#define SES_SECRET_MAX 256
int ses_auth_secret_valid(const char *secret);

/* 1 if key_id looks like an access key id: 16..128 of [A-Z0-9]. */
int ses_auth_key_id_valid(const char *key_id);
/* 1 if key_id is a temporary (STS) key id ("ASIA..."), unusable for SMTP. */
int ses_auth_key_id_is_temporary(const char *key_id);

/* 1 if region is syntactically a region name: lower-case letters, digits
 * and '-', as "xx-yyyy-N" or "xx-gov-yyyy-N" (at most SES_REGION_MAX). */
int ses_auth_region_valid(const char *region);
/* 1 if region is one the relay knows to have an SES SMTP endpoint.  An
 * unknown but valid region deserves a warning, not a failure. */
int ses_auth_region_known(const char *region);
/* 1 if region has a FIPS SMTP endpoint (email-smtp-fips.<region>...). */
int ses_auth_region_has_fips(const char *region);

/* Write "email-smtp.<region>.amazonaws.com" (fips=0) or
 * "email-smtp-fips.<region>.amazonaws.com" (fips=1) to out.
 * Returns 0, or -1 if it does not fit or region is invalid. */
int ses_auth_smtp_host(const char *region, int fips, char *out, size_t outlen);

enum ses_host_kind {
	SES_HOST_OTHER,		/* an IP address, alias or anything else */
	SES_HOST_REGIONAL,	/* email-smtp.<region>.amazonaws.com */
	SES_HOST_FIPS,		/* email-smtp-fips.<region>.amazonaws.com */
	SES_HOST_VPCE		/* vpce-<id>-<suffix>.email-smtp.<region>.vpce.amazonaws.com */
};
/* Classify an endpoint host name (case-insensitive, an optional trailing
 * dot ignored).  For the SES kinds the region found in the name is copied
 * to region (if not NULL); otherwise region is set to "". */
enum ses_host_kind ses_auth_classify_host(const char *host, char *region,
    size_t regionlen);

#endif
