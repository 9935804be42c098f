/*
 * aws_sigv4.h — pure: AWS Signature Version 4 for one HTTP request.
 *
 * Why not curl's CURLOPT_AWS_SIGV4: curl 7.88 signs the path exactly as it
 * is sent, while AWS (every service but S3) signs each path segment
 * URI-encoded once more than it was sent.  A path that holds an encoded
 * character — /v2/email/identities/user%40example.com — can therefore
 * never be signed right by curl 7.88 (tests/api_sigv4.sh shows botocore
 * refusing it).  curl also has no option for the session token and hashes
 * only CURLOPT_POSTFIELDS.  This module computes the whole signature, so
 * the path, the token and the body hash are all under our control.
 *
 * No I/O, no globals, no logging; OpenSSL's SHA-256 and HMAC only.
 */
#ifndef SESRELAY_AWS_SIGV4_H
#define SESRELAY_AWS_SIGV4_H

#include <stddef.h>
#include <time.h>

#define AWS_SIGV4_MAX_HEADERS 24
#define AWS_SIGV4_AUTH_MAX 512

struct aws_sigv4_request {
	const char *method;		/* "GET" */
	const char *host;		/* the Host header as sent: "h" or "h:port" */
	const char *path;		/* as sent, already percent-encoded;
					 * "" counts as "/" */
	const char *query;		/* as sent, without '?'; NULL or "" */
	/* Headers to sign besides host, x-amz-date and x-amz-security-token:
	 * "Name: value", NULL-terminated (NULL: none). */
	const char *const *headers;
	const void *body;
	size_t bodylen;
	const char *region;		/* "us-east-1" */
	const char *service;		/* "ses" */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL: none */
	time_t now;
};

/* The headers to add to the request. */
struct aws_sigv4_result {
	char amz_date[17];			/* X-Amz-Date: 20261206T121500Z */
	char authorization[AWS_SIGV4_AUTH_MAX];	/* Authorization: ... */
	char content_sha256[65];		/* hex SHA-256 of the body */
};

/*
 * Sign req.  Returns 0 and fills out; -1 if an input is unusable (a header
 * without ':', an empty value, too many headers, a name too long),
 * with a reason in err.  When canonical is not NULL, the canonical request
 * (the text that was hashed) is written there too, for tests and debugging.
 */
int aws_sigv4_sign(const struct aws_sigv4_request *req,
    struct aws_sigv4_result *out, char *canonical, size_t canonicallen,
    char *err, size_t errlen);

/*
 * AWS's URI encoding (RFC 3986 unreserved characters kept, everything else
 * %XX in upper case); keep_slash keeps '/'.  Returns the length written
 * (NUL excluded), or -1 if out is too small.  Used to build a path
 * segment from an identity name: "user@example.com" -> "user%40example.com".
 */
int aws_sigv4_uri_encode(const char *in, size_t inlen, int keep_slash,
    char *out, size_t outlen);

#endif
