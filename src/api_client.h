/*
 * api_client.h — the SES API v2 upstream (transport = api): each job is
 * one SendEmail request (ses_send.h) over the shared HTTP client, signed
 * with the credential provider's current credentials.
 *
 * The same contract as relay_client.h's pool (one callback per job unless
 * cancelled, never from inside submit; relay_result as for SMTP, the
 * same status for every recipient of the job): the queue, pacing and
 * splitting in front of it do not know which transport runs.  Up to
 * 8 x max_connections requests are in flight (HTTP connections are
 * reused by the client); the rest wait in order.  No valid credentials
 * (the first fetch is still running, or they expired after failed
 * refreshes): the job fails with 451 4.7.0 at once, never 5xx.
 */
#ifndef SESRELAY_API_CLIENT_H
#define SESRELAY_API_CLIENT_H

#include "relay_client.h"

struct event_base;
struct http_client;
struct aws_creds_provider;
struct config;
struct api_pool;
struct api_job;

/* NULL and err if the endpoint URL cannot be made. */
struct api_pool *api_pool_new(struct event_base *base,
    struct http_client *http, struct aws_creds_provider *creds,
    struct config *cfg, char *err, size_t errlen);
void api_pool_set_config(struct api_pool *pool, struct config *cfg);
/* Sign requests started from now on with creds' credentials (reload);
 * requests in flight keep theirs. */
void api_pool_set_creds(struct api_pool *pool,
    struct aws_creds_provider *creds);
struct api_job *api_submit(struct api_pool *pool, struct relay_msg *msg,
    relay_done_fn *done, void *arg);
void api_cancel(struct api_job *job);
/* A signed GetAccount: RELAY_OK if SES accepted the request. */
struct api_job *api_probe(struct api_pool *pool, relay_done_fn *done,
    void *arg);
void api_pool_shutdown(struct api_pool *pool, void (*drained)(void *),
    void *arg);
void api_pool_free(struct api_pool *pool);
void api_pool_stats(const struct api_pool *pool, struct relay_stats *st);

#endif
