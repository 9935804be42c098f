/*
 * aws_creds_provider.c — see aws_creds.h: the provider, which owns the
 * current credentials.
 *
 * This first version serves the static chain only (links 0-4 without
 * role profiles): what it resolved at start-up never expires.
 */
#include "aws_creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_creds_int.h"
#include "xmalloc.h"

struct aws_creds_provider {
	struct aws_credentials *cur;
	char source[AWS_CREDS_SOURCE_MAX];
	char error[AWS_CREDS_ERR_MAX];
	struct aws_creds_stats st;
};

struct aws_creds_provider *
aws_creds_provider_new(struct event_base *base, struct http_client *http,
    const struct config *cfg, char *err, size_t errlen)
{
	struct aws_creds_provider *p;
	struct aws_credentials *c = NULL;

	(void)base;
	(void)http;
	if ((c = aws_creds_resolve_static(cfg, err, errlen)) == NULL)
		return NULL;
	p = xcalloc(1, sizeof(*p));
	p->cur = c;
	snprintf(p->source, sizeof(p->source), "%s", c->source);
	p->st.fetches = 1;
	return p;
}

struct aws_credentials *
aws_creds_current(struct aws_creds_provider *p)
{
	return p->cur != NULL ? aws_credentials_ref(p->cur) : NULL;
}

void
aws_creds_provider_set_notify(struct aws_creds_provider *p,
    aws_creds_notify_fn *fn, void *arg)
{
	(void)p;
	(void)fn;
	(void)arg;
}

const char *
aws_creds_provider_source(const struct aws_creds_provider *p)
{
	return p->source;
}

const char *
aws_creds_provider_error(const struct aws_creds_provider *p)
{
	return p->error;
}

void
aws_creds_provider_stats(const struct aws_creds_provider *p,
    struct aws_creds_stats *st)
{
	*st = p->st;
	st->valid = p->cur != NULL;
	st->expiration = p->cur != NULL ? p->cur->expiration : 0;
}

void
aws_creds_provider_free(struct aws_creds_provider *p)
{
	if (p == NULL)
		return;
	aws_credentials_unref(p->cur);
	free(p);
}
