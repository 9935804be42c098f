/*
 * aws_creds.h — AWS credentials: the shape agreed in interfaces.md
 * section 2.  The CREDS branch owns this module (the chain and its
 * refresh in aws_creds.c); this header alone lets the HTTP client sign
 * until that lands, and is replaced by it.
 */
#ifndef SESRELAY_AWS_CREDS_H
#define SESRELAY_AWS_CREDS_H

#include <stddef.h>
#include <time.h>

struct config;

struct aws_credentials {		/* an immutable, reference-counted snapshot */
	char *access_key_id;
	char *secret_access_key;	/* secret: wiped when freed */
	char *session_token;		/* NULL for long-lived keys */
	time_t expiration;		/* 0: does not expire */
	char source[160];		/* for check/log/metrics, never a secret */
	int refs;
};

struct aws_credentials *aws_credentials_ref(struct aws_credentials *);
void aws_credentials_unref(struct aws_credentials *);
/* Static, synchronous part of the chain (config keys, key files,
 * environment, shared files with static profiles). */
struct aws_credentials *aws_creds_resolve_static(const struct config *,
    char *err, size_t errlen);

#endif
