/*
 * api_client.c — see api_client.h.
 *
 * A job is queued, then started when fewer than max_inflight requests
 * are out: it takes the provider's current credentials (a reference held
 * until the answer, so a refresh in between changes nothing for it),
 * builds the SendEmail body from the message and starts the request.
 * Outcomes known at once (no credentials, shutting down, a request that
 * cannot be built) are reported from a zero timer, never from inside
 * api_submit.
 */
#include "api_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "aws_creds.h"
#include "config.h"
#include "http_client.h"
#include "log.h"
#include "ses_api.h"
#include "ses_send.h"
#include "tailq.h"
#include "xmalloc.h"

#define API_TIMEOUT_MS	60000	/* a 40 MB message over a slow link */
#define INFLIGHT_PER_CONNECTION 8

struct api_job {
	TAILQ_ENTRY(api_job) entry;
	struct api_pool *pool;
	struct relay_msg *msg;		/* NULL for a probe */
	relay_done_fn *done;
	void *arg;
	struct http_request *req;
	struct aws_credentials *creds;
	struct event *later;		/* a result known at once */
	struct ses_send_outcome out;
	int where;			/* J_QUEUED, J_FLIGHT, J_LATER */
};
enum { J_QUEUED, J_FLIGHT, J_LATER };
TAILQ_HEAD(api_job_list, api_job);

struct api_pool {
	struct event_base *base;
	struct http_client *http;
	struct aws_creds_provider *creds;
	struct config *cfg;
	char base_url[SES_API_URL_MAX];
	char scope[128];
	struct api_job_list queue, flight, later;
	unsigned nqueued, ninflight;
	int shutting_down;
	void (*drained)(void *);
	void *drained_arg;
	struct relay_stats stats;
	int last_auth_warned;
};

static void pump(struct api_pool *);

static void
check_drained(struct api_pool *p)
{
	if (p->shutting_down && p->drained != NULL &&
	    TAILQ_EMPTY(&p->flight) && TAILQ_EMPTY(&p->queue) &&
	    TAILQ_EMPTY(&p->later)) {
		void (*fn)(void *) = p->drained;

		p->drained = NULL;
		fn(p->drained_arg);
	}
}

static void
job_unlink(struct api_job *job)
{
	struct api_pool *p = job->pool;

	switch (job->where) {
	case J_QUEUED:
		TAILQ_REMOVE(&p->queue, job, entry);
		p->nqueued--;
		break;
	case J_FLIGHT:
		TAILQ_REMOVE(&p->flight, job, entry);
		p->ninflight--;
		break;
	default:
		TAILQ_REMOVE(&p->later, job, entry);
		break;
	}
}

static void
job_free(struct api_job *job)
{
	if (job->later != NULL)
		event_free(job->later);
	aws_credentials_unref(job->creds);
	relay_msg_free(job->msg);
	free(job);
}

/* Report job's outcome and free it. */
static void
job_report(struct api_job *job)
{
	struct api_pool *p = job->pool;
	struct relay_result res;
	enum relay_status st;
	size_t n = job->msg != NULL ? job->msg->nrcpts : 0, i;
	enum relay_status *rs = n > 0 ? xcalloc(n, sizeof(*rs)) : NULL;
	struct relay_reply *rr = n > 0 ? xcalloc(n, sizeof(*rr)) : NULL;

	st = job->out.status == SES_SEND_OK ? RELAY_OK :
	    job->out.status == SES_SEND_TEMPFAIL ? RELAY_TEMPFAIL :
	    RELAY_PERMFAIL;
	memset(&res, 0, sizeof(res));
	res.status = st;
	res.reply.code = job->out.code;
	snprintf(res.reply.enhanced, sizeof(res.reply.enhanced), "%s",
	    job->out.enhanced);
	snprintf(res.reply.text, sizeof(res.reply.text), "%s", job->out.text);
	res.reply.from_ses = job->out.from_ses;
	snprintf(res.ses_message_id, sizeof(res.ses_message_id), "%s",
	    job->out.message_id);
	for (i = 0; i < n; i++) {
		rs[i] = st;
		rr[i] = res.reply;
	}
	res.rcpt_status = rs;
	res.rcpt_reply = rr;
	res.nrcpts = n;
	job_unlink(job);
	job->done(&res, job->arg);
	free(rs);
	free(rr);
	job_free(job);
	pump(p);
	check_drained(p);
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_report(arg);
}

/* Fail job from the loop with code/enhanced/text. */
static void
job_fail_later(struct api_job *job, enum ses_send_status st, int code,
    const char *enh, const char *text)
{
	struct api_pool *p = job->pool;
	struct timeval zero = { 0, 0 };

	job_unlink(job);
	memset(&job->out, 0, sizeof(job->out));
	job->out.status = st;
	job->out.code = code;
	snprintf(job->out.enhanced, sizeof(job->out.enhanced), "%s", enh);
	snprintf(job->out.text, sizeof(job->out.text), "%s", text);
	job->where = J_LATER;
	TAILQ_INSERT_TAIL(&p->later, job, entry);
	if (job->later == NULL)
		job->later = evtimer_new(p->base, later_cb, job);
	evtimer_add(job->later, &zero);
}

static void
http_done(const struct http_response *r, void *arg)
{
	struct api_job *job = arg;
	struct api_pool *p = job->pool;

	job->req = NULL;
	if (job->msg != NULL)
		ses_send_outcome(r->status, r->error_type, r->body, r->bodylen,
		    r->error, &job->out);
	else {				/* the probe: GetAccount */
		ses_send_outcome(r->status, r->error_type, r->body, r->bodylen,
		    r->error, &job->out);
		if (r->status == 200)
			snprintf(job->out.text, sizeof(job->out.text), "SES API "
			    "accepted a signed GetAccount (credentials: %s)",
			    job->creds->source);
	}
	if (job->out.throttled)
		p->stats.throttled++;
	if (job->out.auth) {
		p->stats.auth_failures++;
		log_warnx("upstream api: SES refused our credentials (key %s, "
		    "%s): %s", job->creds->access_key_id, job->creds->source,
		    job->out.text);
	}
	if (r->status != 0 && r->status < 500 && !job->out.auth)
		p->stats.last_success = time(NULL);
	job_report(job);
}

/*
 * SendEmail signs the whole message as one request body, so the rest of a
 * message that comes from a source (a spool file, read in pieces by the
 * SMTP backend) is read into msg->body here.  The sources the API backend
 * gets never wait (passthrough holds a message for it until the final
 * dot).  0, or -1 if the source failed.
 */
static int
msg_read_whole(struct relay_msg *msg)
{
	enum relay_src_status st = RELAY_SRC_EOF;

	if (msg->src.read == NULL)
		return 0;
	do
		st = msg->src.read(msg->src.arg, msg->body, 1024 * 1024);
	while (st == RELAY_SRC_DATA);
	if (msg->src.free != NULL)
		msg->src.free(msg->src.arg);
	memset(&msg->src, 0, sizeof(msg->src));
	return st == RELAY_SRC_EOF ? 0 : -1;
}

static void
job_start(struct api_job *job)
{
	struct api_pool *p = job->pool;
	struct http_request_spec spec;
	static const char *const hdrs[] = {
		"Content-Type: application/json", NULL
	};
	char url[SES_API_URL_MAX + 64], err[512], why[600];
	char *body = NULL;
	size_t bodylen = 0;

	job->creds = aws_creds_current(p->creds);
	if (job->creds == NULL) {
		const char *e = aws_creds_provider_error(p->creds);

		snprintf(why, sizeof(why), "no valid AWS credentials yet (%s)",
		    e[0] != '\0' ? e : aws_creds_provider_source(p->creds));
		job_fail_later(job, SES_SEND_TEMPFAIL, 451, "4.7.0", why);
		return;
	}
	memset(&spec, 0, sizeof(spec));
	if (job->msg != NULL && msg_read_whole(job->msg) == -1) {
		job_fail_later(job, SES_SEND_TEMPFAIL, 451, "4.3.0",
		    "the message could not be read from the spool");
		return;
	}
	if (job->msg != NULL) {
		struct evbuffer *b = job->msg->body;
		size_t len = evbuffer_get_length(b);
		const char *data = (const char *)evbuffer_pullup(b, -1);

		body = ses_send_request(data != NULL ? data : "", len,
		    (const char *const *)job->msg->rcpts, job->msg->nrcpts,
		    &bodylen, err, sizeof(err));
		if (body == NULL) {
			job_fail_later(job, SES_SEND_PERMFAIL, 554, "5.6.0",
			    err);
			return;
		}
		snprintf(url, sizeof(url), "%s%s", p->base_url, SES_SEND_PATH);
		spec.method = "POST";
		spec.headers = hdrs;
		spec.body = body;
		spec.bodylen = bodylen;
	} else {
		ses_api_account_url(p->base_url, url, sizeof(url));
		spec.method = "GET";
	}
	spec.url = url;
	spec.sigv4 = job->creds;
	spec.sigv4_scope = p->scope;
	spec.timeout_ms = API_TIMEOUT_MS;
	err[0] = '\0';
	job_unlink(job);
	job->where = J_FLIGHT;
	TAILQ_INSERT_TAIL(&p->flight, job, entry);
	p->ninflight++;
	p->stats.sessions_total++;
	job->req = http_request_start(p->http, &spec, http_done, job, err,
	    sizeof(err));
	free(body);
	if (job->req == NULL) {
		snprintf(why, sizeof(why), "cannot start the SES API request: "
		    "%s", err);
		job_fail_later(job, SES_SEND_TEMPFAIL, 451, "4.3.0", why);
	}
}

static void
pump(struct api_pool *p)
{
	unsigned max = INFLIGHT_PER_CONNECTION * p->cfg->max_connections;
	struct api_job *job;

	while (p->ninflight < max && (job = TAILQ_FIRST(&p->queue)) != NULL)
		job_start(job);
}

struct api_pool *
api_pool_new(struct event_base *base, struct http_client *http,
    struct aws_creds_provider *creds, struct config *cfg, char *err,
    size_t errlen)
{
	struct api_pool *p = xcalloc(1, sizeof(*p));

	if (ses_api_base_url(cfg->api_endpoint, cfg->region, p->base_url,
	    sizeof(p->base_url)) == -1) {
		snprintf(err, errlen, "[ses] api_endpoint: too long");
		free(p);
		return NULL;
	}
	ses_api_scope(cfg->region, p->scope, sizeof(p->scope));
	p->base = base;
	p->http = http;
	p->creds = creds;
	p->cfg = config_ref(cfg);
	TAILQ_INIT(&p->queue);
	TAILQ_INIT(&p->flight);
	TAILQ_INIT(&p->later);
	return p;
}

void
api_pool_set_config(struct api_pool *p, struct config *cfg)
{
	config_unref(p->cfg);
	p->cfg = config_ref(cfg);
	ses_api_base_url(cfg->api_endpoint, cfg->region, p->base_url,
	    sizeof(p->base_url));
	ses_api_scope(cfg->region, p->scope, sizeof(p->scope));
	pump(p);
}

void
api_pool_set_creds(struct api_pool *p, struct aws_creds_provider *creds)
{
	p->creds = creds;
}

static struct api_job *
submit(struct api_pool *p, struct relay_msg *msg, relay_done_fn *done,
    void *arg)
{
	struct api_job *job = xcalloc(1, sizeof(*job));

	job->pool = p;
	job->msg = msg;
	job->done = done;
	job->arg = arg;
	job->where = J_QUEUED;
	TAILQ_INSERT_TAIL(&p->queue, job, entry);
	p->nqueued++;
	if (p->shutting_down) {
		job_fail_later(job, SES_SEND_TEMPFAIL, 421, "4.3.2",
		    "relay is shutting down");
		return job;
	}
	/* job_start reports any failure from the loop (job_fail_later):
	 * done is never called from inside submit */
	pump(p);
	return job;
}

struct api_job *
api_submit(struct api_pool *p, struct relay_msg *msg, relay_done_fn *done,
    void *arg)
{
	return submit(p, msg, done, arg);
}

struct api_job *
api_probe(struct api_pool *p, relay_done_fn *done, void *arg)
{
	return submit(p, NULL, done, arg);
}

void
api_cancel(struct api_job *job)
{
	struct api_pool *p = job->pool;

	if (job->req != NULL)
		http_request_cancel(job->req);
	job_unlink(job);
	job_free(job);
	pump(p);
	check_drained(p);
}

void
api_pool_shutdown(struct api_pool *p, void (*drained)(void *), void *arg)
{
	struct api_job *job;

	p->shutting_down = 1;
	p->drained = drained;
	p->drained_arg = arg;
	while ((job = TAILQ_FIRST(&p->queue)) != NULL)
		job_fail_later(job, SES_SEND_TEMPFAIL, 421, "4.3.2",
		    "relay is shutting down");
	check_drained(p);
}

void
api_pool_free(struct api_pool *p)
{
	struct api_job *job;

	if (p == NULL)
		return;
	while ((job = TAILQ_FIRST(&p->flight)) != NULL) {
		http_request_cancel(job->req);
		job->req = NULL;
		job_fail_later(job, SES_SEND_TEMPFAIL, 421, "4.3.2",
		    "relay is shutting down");
	}
	while ((job = TAILQ_FIRST(&p->queue)) != NULL)
		job_fail_later(job, SES_SEND_TEMPFAIL, 421, "4.3.2",
		    "relay is shutting down");
	p->drained = NULL;
	while ((job = TAILQ_FIRST(&p->later)) != NULL)
		job_report(job);
	config_unref(p->cfg);
	free(p);
}

void
api_pool_stats(const struct api_pool *p, struct relay_stats *st)
{
	*st = p->stats;
	st->sessions_open = p->ninflight;
	st->jobs_queued = p->nqueued;
}
