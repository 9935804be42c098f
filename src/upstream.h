/*
 * upstream.h — the one small interface in front of the two upstream
 * backends: the SMTP client (relay_client.h, transport = smtp) and the
 * SES API v2 client (api_client.h, transport = api).  The queue, the
 * pacing and the splitting of recipients, the inbound sessions and the
 * metrics talk to this; which backend runs is fixed at start-up
 * (changing transport needs a restart).
 */
#ifndef SESRELAY_UPSTREAM_H
#define SESRELAY_UPSTREAM_H

#include "relay_client.h"

struct event_base;
struct evdns_base;
struct http_client;
struct aws_creds_provider;
struct config;
struct upstream;
struct upstream_job;

/* transport = smtp: wraps smtp (not owned); transport = api: an API pool
 * over http and creds (not owned). */
struct upstream *upstream_new_smtp(struct relay_pool *smtp);
struct upstream *upstream_new_api(struct event_base *base,
    struct http_client *http, struct aws_creds_provider *creds,
    struct config *cfg, char *err, size_t errlen);
/* The SMTP pool, or NULL with transport = api. */
struct relay_pool *upstream_smtp(struct upstream *up);
/* transport = api: the credential provider from now on (reload). */
void upstream_set_creds(struct upstream *up,
    struct aws_creds_provider *creds);
int upstream_set_config(struct upstream *up, struct config *cfg, char *err,
    size_t errlen);

struct upstream_job *upstream_submit(struct upstream *up,
    struct relay_msg *msg, relay_done_fn *done, void *arg);
void upstream_cancel(struct upstream *up, struct upstream_job *job);
/* job's message source has more (relay_job_resume).  Only the SMTP
 * backend streams a message from a source that can wait: the API backend
 * reads a message's source whole before its request (it signs one body),
 * so passthrough holds a message for it until the final dot. */
void upstream_resume(struct upstream *up, struct upstream_job *job);
struct upstream_job *upstream_probe(struct upstream *up, relay_done_fn *done,
    void *arg);
void upstream_shutdown(struct upstream *up, void (*drained)(void *),
    void *arg);
void upstream_stats(const struct upstream *up, struct relay_stats *st);
/* Frees the API pool (not the SMTP pool, its owner frees it). */
void upstream_free(struct upstream *up);

#endif
