/*
 * upstream.c — see upstream.h: a dispatch, nothing more.
 */
#include "upstream.h"

#include <stdlib.h>

#include "api_client.h"
#include "xmalloc.h"

struct upstream {
	struct relay_pool *smtp;
	struct api_pool *api;
};

struct upstream *
upstream_new_smtp(struct relay_pool *smtp)
{
	struct upstream *up = xcalloc(1, sizeof(*up));

	up->smtp = smtp;
	return up;
}

struct upstream *
upstream_new_api(struct event_base *base, struct http_client *http,
    struct aws_creds_provider *creds, struct config *cfg, char *err,
    size_t errlen)
{
	struct api_pool *api = api_pool_new(base, http, creds, cfg, err,
	    errlen);
	struct upstream *up;

	if (api == NULL)
		return NULL;
	up = xcalloc(1, sizeof(*up));
	up->api = api;
	return up;
}

struct relay_pool *
upstream_smtp(struct upstream *up)
{
	return up->smtp;
}

void
upstream_set_creds(struct upstream *up, struct aws_creds_provider *creds)
{
	if (up->api != NULL)
		api_pool_set_creds(up->api, creds);
}

int
upstream_set_config(struct upstream *up, struct config *cfg, char *err,
    size_t errlen)
{
	if (up->smtp != NULL)
		return relay_pool_set_config(up->smtp, cfg, err, errlen);
	api_pool_set_config(up->api, cfg);
	return 0;
}

struct upstream_job *
upstream_submit(struct upstream *up, struct relay_msg *msg,
    relay_done_fn *done, void *arg)
{
	if (up->smtp != NULL)
		return (struct upstream_job *)relay_submit(up->smtp, msg, done,
		    arg);
	return (struct upstream_job *)api_submit(up->api, msg, done, arg);
}

void
upstream_cancel(struct upstream *up, struct upstream_job *job)
{
	if (up->smtp != NULL)
		relay_cancel((struct relay_job *)job);
	else
		api_cancel((struct api_job *)job);
}

void
upstream_resume(struct upstream *up, struct upstream_job *job)
{
	if (up->smtp != NULL)
		relay_job_resume((struct relay_job *)job);
}

struct upstream_job *
upstream_probe(struct upstream *up, relay_done_fn *done, void *arg)
{
	if (up->smtp != NULL)
		return (struct upstream_job *)relay_probe(up->smtp, done, arg);
	return (struct upstream_job *)api_probe(up->api, done, arg);
}

void
upstream_shutdown(struct upstream *up, void (*drained)(void *), void *arg)
{
	if (up->smtp != NULL)
		relay_pool_shutdown(up->smtp, drained, arg);
	else
		api_pool_shutdown(up->api, drained, arg);
}

void
upstream_stats(const struct upstream *up, struct relay_stats *st)
{
	if (up->smtp != NULL)
		relay_pool_stats(up->smtp, st);
	else
		api_pool_stats(up->api, st);
}

void
upstream_free(struct upstream *up)
{
	if (up == NULL)
		return;
	api_pool_free(up->api);
	free(up);
}
