/*
 * http_client.c — libcurl multi on libevent (see http_client.h).
 *
 * curl tells us which sockets to watch (sock_cb) and when to wake it
 * (timer_cb); libevent calls back into curl_multi_socket_action, and
 * finished transfers are collected by check_done, which calls done.
 */
#include "http_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "aws_creds.h"
#include "aws_sigv4.h"
#include "log.h"
#include "tailq.h"
#include "xmalloc.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct http_sock {
	TAILQ_ENTRY(http_sock) entry;
	struct http_client *client;
	curl_socket_t fd;
	struct event *ev;
};

struct http_request {
	TAILQ_ENTRY(http_request) entry;
	struct http_client *client;
	CURL *easy;
	struct curl_slist *headers;
	char *url;
	char *resp;
	size_t resplen, respcap;
	int toolarge;
	char errbuf[CURL_ERROR_SIZE];
	http_done_fn *done;
	void *arg;
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	char *ca_file;
	TAILQ_HEAD(, http_request) reqs;
	TAILQ_HEAD(, http_sock) socks;
	unsigned nreqs;
};

static void check_done(struct http_client *);

static void
sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	int running, action = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, fd, action, &running);
	check_done(c);
}

static void
sock_free(struct http_sock *s)
{
	TAILQ_REMOVE(&s->client->socks, s, entry);
	if (s->ev != NULL)
		event_free(s->ev);
	free(s);
}

static int
sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct http_client *c = userp;
	struct http_sock *s = sockp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_free(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->client = c;
		s->fd = fd;
		TAILQ_INSERT_TAIL(&c->socks, s, entry);
		curl_multi_assign(c->multi, fd, s);
	}
	if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	s->ev = event_new(c->base, fd, kind, sock_event, c);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1)
		fatalx("http_client: cannot watch a socket");
	return 0;
}

static void
timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	return 0;
}

struct http_client *
http_client_new(struct event_base *base, const char *ca_file, char *err,
    size_t errlen)
{
	static int global_done;
	struct http_client *c;

	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errlen, "libcurl: global init failed");
			return NULL;
		}
		global_done = 1;
	}
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	TAILQ_INIT(&c->reqs);
	TAILQ_INIT(&c->socks);
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, timer_event, c);
	if (c->multi == NULL || c->timer == NULL) {
		snprintf(err, errlen, "libcurl: cannot create a multi handle");
		http_client_free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
	return c;
}

static void
request_free(struct http_request *r)
{
	if (r->easy != NULL) {
		curl_multi_remove_handle(r->client->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->headers);
	free(r->url);
	free(r->resp);
	free(r);
}

void
http_request_cancel(struct http_request *r)
{
	if (r == NULL)
		return;
	TAILQ_REMOVE(&r->client->reqs, r, entry);
	r->client->nreqs--;
	request_free(r);
}

void
http_client_free(struct http_client *c)
{
	struct http_request *r;
	struct http_sock *s;

	if (c == NULL)
		return;
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL)
		http_request_cancel(r);
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	while ((s = TAILQ_FIRST(&c->socks)) != NULL)
		sock_free(s);
	if (c->timer != NULL)
		event_free(c->timer);
	free(c->ca_file);
	free(c);
}

unsigned
http_client_pending(const struct http_client *c)
{
	return c->nreqs;
}

static const char *
header_value(CURL *easy, const char *name)
{
	struct curl_header *h;

	if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &h) !=
	    CURLHE_OK)
		return NULL;
	return h->value;
}

static void
finish(struct http_request *r, CURLcode result)
{
	struct http_client *c = r->client;
	struct http_response resp;
	char why[CURL_ERROR_SIZE + 64], ctype[128], etype[128];
	const char *h;

	memset(&resp, 0, sizeof(resp));
	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &resp.seconds);
	if (result == CURLE_OK) {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
		    &resp.status);
		if ((h = header_value(r->easy, "Content-Type")) != NULL) {
			snprintf(ctype, sizeof(ctype), "%s", h);
			resp.content_type = ctype;
		}
		if ((h = header_value(r->easy, "X-Amzn-ErrorType")) != NULL) {
			snprintf(etype, sizeof(etype), "%s", h);
			resp.error_type = etype;
		}
	} else {
		if (r->toolarge)
			snprintf(why, sizeof(why), "response larger than %d "
			    "bytes", HTTP_RESPONSE_MAX);
		else
			snprintf(why, sizeof(why), "%s",
			    r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(result));
		resp.error = why;
	}
	resp.body = r->resp != NULL ? r->resp : "";
	resp.bodylen = r->resplen;
	TAILQ_REMOVE(&c->reqs, r, entry);
	c->nreqs--;
	curl_multi_remove_handle(c->multi, r->easy);
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	r->done(&resp, r->arg);
	request_free(r);
}

static void
check_done(struct http_client *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		struct http_request *r = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &r);
		if (r != NULL)
			finish(r, m->data.result);
	}
}

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_request *r = arg;
	size_t len = size * n;

	if (r->resplen + len > HTTP_RESPONSE_MAX) {
		r->toolarge = 1;
		return 0;
	}
	if (r->resplen + len + 1 > r->respcap) {
		size_t cap = r->respcap ? r->respcap : 4096;

		while (cap < r->resplen + len + 1)
			cap *= 2;
		r->resp = xreallocarray(r->resp, cap, 1);
		r->respcap = cap;
	}
	memcpy(r->resp + r->resplen, p, len);
	r->resplen += len;
	r->resp[r->resplen] = '\0';
	return len;
}

/* A URL cut into what is sent: scheme, authority (Host), host, path,
 * query. */
struct url_parts {
	int https;
	char authority[256];
	char host[256];		/* without brackets */
	char *path;		/* "/..." or "" (caller frees) */
	char *query;		/* NULL or without '?' (caller frees) */
};

static int
url_split(const char *url, struct url_parts *u, char *err, size_t errlen)
{
	const char *a, *e, *q;
	size_t alen;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "https://", 8) == 0) {
		u->https = 1;
		a = url + 8;
	} else if (strncmp(url, "http://", 7) == 0)
		a = url + 7;
	else {
		snprintf(err, errlen, "not an http(s) URL: %.80s", url);
		return -1;
	}
	e = a + strcspn(a, "/?#");
	alen = (size_t)(e - a);
	if (alen == 0 || alen >= sizeof(u->authority) ||
	    memchr(a, '@', alen) != NULL) {
		snprintf(err, errlen, "bad host in URL: %.80s", url);
		return -1;
	}
	if (strchr(url, '#') != NULL || strpbrk(url, " \t\r\n") != NULL) {
		snprintf(err, errlen, "URL with a fragment or a blank: %.80s",
		    url);
		return -1;
	}
	memcpy(u->authority, a, alen);
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', alen);

		if (rb == NULL) {
			snprintf(err, errlen, "bad IPv6 host in URL: %.80s",
			    url);
			return -1;
		}
		memcpy(u->host, a + 1, (size_t)(rb - a - 1));
	} else {
		const char *colon = memchr(a, ':', alen);

		memcpy(u->host, a, colon != NULL ? (size_t)(colon - a) : alen);
	}
	q = strchr(e, '?');
	if (q != NULL) {
		u->path = xstrndup(e, (size_t)(q - e));
		u->query = xstrdup(q + 1);
	} else
		u->path = xstrdup(e);
	return 0;
}

/* Loopback, or the link-local / ULA addresses of the instance metadata
 * and container credentials services. */
static int
local_host(const char *h)
{
	return strcasecmp(h, "localhost") == 0 ||
	    strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
	    strncmp(h, "169.254.", 8) == 0 ||
	    strcasecmp(h, "fd00:ec2::254") == 0 ||
	    strcasecmp(h, "fd00:ec2::23") == 0;
}

static int
add_header(struct http_request *r, const char *name, const char *value)
{
	char *line;
	struct curl_slist *l;

	xasprintf(&line, "%s: %s", name, value);
	l = curl_slist_append(r->headers, line);
	free(line);
	if (l == NULL)
		return -1;
	r->headers = l;
	return 0;
}

struct http_request *
http_request_start(struct http_client *c,
    const struct http_request_spec *spec, http_done_fn *done, void *arg,
    char *err, size_t errlen)
{
	struct http_request *r = NULL;
	struct url_parts u;
	char ebuf[256];
	unsigned timeout;
	size_t i;

	if (err == NULL) {
		err = ebuf;
		errlen = sizeof(ebuf);
	}
	if (url_split(spec->url, &u, err, errlen) == -1)
		return NULL;
	if (!u.https && !local_host(u.host)) {
		snprintf(err, errlen, "plain http is only for loopback and "
		    "link-local addresses, not %s", u.host);
		goto fail;
	}
	if (strcmp(spec->method, "GET") != 0 &&
	    strcmp(spec->method, "POST") != 0 &&
	    strcmp(spec->method, "PUT") != 0 &&
	    strcmp(spec->method, "DELETE") != 0) {
		snprintf(err, errlen, "method %.20s not supported",
		    spec->method);
		goto fail;
	}
	r = xcalloc(1, sizeof(*r));
	r->client = c;
	r->done = done;
	r->arg = arg;
	r->url = xstrdup(spec->url);
	for (i = 0; spec->headers != NULL && spec->headers[i] != NULL; i++) {
		const char *h = spec->headers[i], *colon = strchr(h, ':');
		const char *v = colon != NULL ? colon + 1 : NULL;

		while (v != NULL && (*v == ' ' || *v == '\t'))
			v++;
		if (colon == NULL || colon == h || *v == '\0' ||
		    strpbrk(h, "\r\n") != NULL) {
			snprintf(err, errlen, "malformed or empty header: "
			    "%.60s", h);
			goto fail;
		}
		if ((r->headers = curl_slist_append(r->headers, h)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (spec->sigv4 != NULL) {
		struct aws_sigv4_request sr;
		struct aws_sigv4_result res;
		char region[64], service[64];
		const struct aws_credentials *cr = spec->sigv4;

		if (spec->sigv4_scope == NULL ||
		    sscanf(spec->sigv4_scope, "aws:amz:%63[^:]:%63s", region,
		    service) != 2) {
			snprintf(err, errlen, "bad sigv4 scope '%s' (like "
			    "aws:amz:us-east-1:ses)", spec->sigv4_scope ?
			    spec->sigv4_scope : "");
			goto fail;
		}
		if (cr->access_key_id == NULL ||
		    cr->secret_access_key == NULL) {
			snprintf(err, errlen, "the credentials from %s hold no "
			    "secret access key to sign with", cr->source);
			goto fail;
		}
		memset(&sr, 0, sizeof(sr));
		sr.method = spec->method;
		sr.host = u.authority;
		sr.path = u.path;
		sr.query = u.query;
		sr.headers = spec->headers;
		sr.body = spec->body;
		sr.bodylen = spec->bodylen;
		sr.region = region;
		sr.service = service;
		sr.access_key_id = cr->access_key_id;
		sr.secret_access_key = cr->secret_access_key;
		sr.session_token = cr->session_token;
		sr.now = time(NULL);
		if (aws_sigv4_sign(&sr, &res, NULL, 0, err, errlen) == -1)
			goto fail;
		if (add_header(r, "Host", u.authority) == -1 ||
		    add_header(r, "X-Amz-Date", res.amz_date) == -1 ||
		    (cr->session_token != NULL && add_header(r,
		    "X-Amz-Security-Token", cr->session_token) == -1) ||
		    add_header(r, "Authorization", res.authorization) == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if ((r->easy = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "libcurl: cannot create a handle");
		goto fail;
	}
	timeout = spec->timeout_ms ? spec->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(timeout < 10000 ? timeout : 10000));
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR,
	    u.https ? "https" : "http");
	curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(r->easy, CURLOPT_SSLVERSION,
	    (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_file != NULL)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, c->ca_file);
	if (local_host(u.host))
		curl_easy_setopt(r->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT,
	    "sesrelay/" PACKAGE_VERSION);
	if (r->headers != NULL)
		curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	if (strcmp(spec->method, "GET") == 0)
		curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
	else {
		if (strcmp(spec->method, "POST") != 0)
			curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST,
			    spec->method);
		else
			curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)spec->bodylen);
		curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS,
		    spec->body != NULL ? (const char *)spec->body : "");
	}
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		snprintf(err, errlen, "libcurl: cannot add a transfer");
		goto fail;
	}
	TAILQ_INSERT_TAIL(&c->reqs, r, entry);
	c->nreqs++;
	free(u.path);
	free(u.query);
	return r;
fail:
	if (r != NULL) {
		if (r->easy != NULL) {
			curl_easy_cleanup(r->easy);
			r->easy = NULL;
		}
		request_free(r);
	}
	free(u.path);
	free(u.query);
	return NULL;
}
