/*
 * aws_creds_int.h — what aws_creds.c and aws_creds_provider.c share; not
 * for other modules.
 */
#ifndef SESRELAY_AWS_CREDS_INT_H
#define SESRELAY_AWS_CREDS_INT_H

#include <limits.h>
#include <stddef.h>
#include <time.h>

#include "aws_creds.h"

struct config;

/* One profile of a shared file: the values sesrelay reads (secret ones
 * are wiped). */
struct aws_profile {
	int found;
	char *v[9];
	int line[9];
};
void aws_creds_profile_clear(struct aws_profile *);
int aws_creds_parse_profile(const char *text, size_t len, const char *path,
    const char *profile, int is_config, struct aws_profile *out, char *err,
    size_t errlen);
const char *aws_creds_profile_name(const struct config *, const char **from);

/* An STS web identity role to assume. */
struct aws_web_identity {
	char role_arn[2048];
	char token_file[PATH_MAX];
	char session_name[128];		/* "" for the default */
	char where[PATH_MAX + 160];	/* "FILE: [profile]" or the variables */
};

struct aws_credentials *aws_credentials_new(const char *id,
    const char *secret, const char *token, time_t expiration,
    const char *source);
int aws_creds_chain_static(const struct config *, struct aws_credentials **,
    struct aws_web_identity *, char *err, size_t errlen);
int aws_creds_read_file(const char *path, size_t max, int private,
    char **out, size_t *outlen, char *err, size_t errlen);
const char *aws_creds_show(const char *v, char *buf, size_t len);
void aws_creds_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
