/*
 * creds_fetch.c — drive aws_creds_provider from the command line, for
 * tests/creds_chain.sh:
 *   creds_fetch CONFIG N SECONDS
 * loads CONFIG, runs the provider on an event loop with the HTTP client
 * and prints one line per fetch: "ok KEYID SECONDS-LEFT SOURCE" or
 * "fail ERROR" (never a secret), and "current KEYID" / "current none"
 * every second.  Exits 0 after N successful fetches, 1 after SECONDS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "aws_creds.h"
#include "config.h"
#include "http_client.h"
#include "log.h"

static struct event_base *base;
static struct aws_creds_provider *prov;
static int want, got;

static void
notify(int ok, const char *err, void *arg)
{
	struct aws_credentials *c;

	(void)arg;
	if (!ok) {
		printf("fail %s\n", err);
		fflush(stdout);
		return;
	}
	c = aws_creds_current(prov);
	printf("ok %s %ld %s\n", c != NULL ? c->access_key_id : "-",
	    c != NULL && c->expiration != 0 ? (long)(c->expiration -
	    time(NULL)) : 0L, aws_creds_provider_source(prov));
	fflush(stdout);
	aws_credentials_unref(c);
	if (++got >= want)
		event_base_loopexit(base, NULL);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct aws_credentials *c = aws_creds_current(prov);

	(void)fd;
	(void)what;
	(void)arg;
	printf("current %s\n", c != NULL ? c->access_key_id : "none");
	fflush(stdout);
	aws_credentials_unref(c);
}

int
main(int argc, char *argv[])
{
	char err[CONFIG_ERR_MAX];
	struct config *cfg;
	struct http_client *http;
	struct event *t;
	struct timeval one = { 1, 0 }, limit = { 0, 0 };

	if (argc != 4) {
		fprintf(stderr, "usage: creds_fetch CONFIG N SECONDS\n");
		return 2;
	}
	log_init("creds_fetch", 1, 1);
	want = atoi(argv[2]);
	limit.tv_sec = atoi(argv[3]);
	if ((cfg = config_load(argv[1], 0, err)) == NULL) {
		fprintf(stderr, "creds_fetch: %s\n", err);
		return 2;
	}
	base = event_base_new();
	if ((http = http_client_new(base, cfg->ca_file, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "creds_fetch: %s\n", err);
		return 2;
	}
	if ((prov = aws_creds_provider_new(base, http, cfg, err,
	    sizeof(err))) == NULL) {
		printf("error %s\n", err);
		http_client_free(http);
		event_base_free(base);
		config_unref(cfg);
		return 3;
	}
	printf("source %s\n", aws_creds_provider_source(prov));
	fflush(stdout);
	aws_creds_provider_set_notify(prov, notify, NULL);
	struct aws_credentials *now = aws_creds_current(prov);
	if (now != NULL) {	/* static */
		aws_credentials_unref(now);
		notify(1, NULL, NULL);
		if (got >= want)
			goto out;
	}
	t = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(t, &one);
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	event_free(t);
out:
	aws_creds_provider_free(prov);
	http_client_free(http);
	event_base_free(base);
	config_unref(cfg);
	return got >= want ? 0 : 1;
}
