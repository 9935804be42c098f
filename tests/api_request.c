/*
 * api_request.c — drive src/http_client.c from the tests: send signed
 * requests to an HTTPS API, all at once on one event loop, and print each
 * answer in the order given.
 *
 *   api_request [-c ca_file] [-s scope] [-u] [-X method] [-d body_file]
 *               [-H 'Name: value']... [-t timeout_ms] url...
 *
 * Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, if set,
 * AWS_SESSION_TOKEN from the environment; -u sends unsigned requests.
 * Output per URL: "status=N type=T error=E seconds=S" then the body and a
 * newline.  Exit 0 if every request got an HTTP answer, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "aws_creds.h"
#include "http_client.h"
#include "xmalloc.h"

struct slot {
	int done;
	long status;
	char *type, *error, *body;
	double seconds;
};

static int left;

static void
done_cb(const struct http_response *r, void *arg)
{
	struct slot *s = arg;

	s->done = 1;
	s->status = r->status;
	s->type = xstrdup(r->error_type ? r->error_type : "-");
	s->error = xstrdup(r->error ? r->error : "-");
	s->body = xstrdup(r->body);
	s->seconds = r->seconds;
	left--;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n;

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	*len = 0;
	for (;;) {
		if (*len + 65536 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = xreallocarray(buf, cap, 1);
		}
		n = fread(buf + *len, 1, cap - *len, f);
		if (n == 0)
			break;
		*len += n;
	}
	fclose(f);
	return buf;
}

int
main(int argc, char **argv)
{
	const char *ca = NULL, *scope = "aws:amz:us-east-1:ses";
	const char *method = "GET", *headers[17];
	struct aws_credentials cred;
	struct http_request_spec spec;
	struct event_base *base;
	struct http_client *c;
	struct slot *slots;
	char err[512], *body = NULL;
	size_t bodylen = 0, nh = 0;
	unsigned timeout = 0;
	int ch, i, sign = 1, rc = 0;

	while ((ch = getopt(argc, argv, "c:d:H:s:t:uX:")) != -1) {
		switch (ch) {
		case 'c': ca = optarg; break;
		case 'd': body = slurp(optarg, &bodylen); break;
		case 'H':
			if (nh == 16)
				return 2;
			headers[nh++] = optarg;
			break;
		case 's': scope = optarg; break;
		case 't': timeout = (unsigned)atoi(optarg); break;
		case 'u': sign = 0; break;
		case 'X': method = optarg; break;
		default:
			fprintf(stderr, "usage: api_request [-c ca] [-s scope] "
			    "[-u] [-X method] [-d file] [-H h]... url...\n");
			return 2;
		}
	}
	headers[nh] = NULL;
	argc -= optind;
	argv += optind;
	memset(&cred, 0, sizeof(cred));
	cred.access_key_id = getenv("AWS_ACCESS_KEY_ID");
	cred.secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
	cred.session_token = getenv("AWS_SESSION_TOKEN");
	if (sign && (cred.access_key_id == NULL ||
	    cred.secret_access_key == NULL)) {
		fprintf(stderr, "api_request: no AWS_ACCESS_KEY_ID/"
		    "AWS_SECRET_ACCESS_KEY\n");
		return 2;
	}
	base = event_base_new();
	if ((c = http_client_new(base, ca, err, sizeof(err))) == NULL) {
		fprintf(stderr, "api_request: %s\n", err);
		return 1;
	}
	slots = xcalloc((size_t)argc, sizeof(*slots));
	for (i = 0; i < argc; i++) {
		memset(&spec, 0, sizeof(spec));
		spec.method = method;
		spec.url = argv[i];
		spec.headers = headers;
		spec.body = body;
		spec.bodylen = bodylen;
		spec.sigv4 = sign ? &cred : NULL;
		spec.sigv4_scope = scope;
		spec.timeout_ms = timeout;
		if (http_request_start(c, &spec, done_cb, &slots[i], err,
		    sizeof(err)) == NULL) {
			fprintf(stderr, "api_request: %s: %s\n", argv[i], err);
			slots[i].done = 1;
			slots[i].error = xstrdup(err);
			rc = 1;
			continue;
		}
		if (slots[i].done) {
			fprintf(stderr, "api_request: done called from "
			    "http_request_start\n");
			return 1;
		}
		left++;
	}
	while (left > 0)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			break;
	for (i = 0; i < argc; i++) {
		if (slots[i].status == 0)
			rc = 1;
		printf("status=%ld type=%s error=%s seconds=%.3f\n%s\n",
		    slots[i].status, slots[i].type ? slots[i].type : "-",
		    slots[i].error ? slots[i].error : "-", slots[i].seconds,
		    slots[i].body ? slots[i].body : "");
		free(slots[i].type);
		free(slots[i].error);
		free(slots[i].body);
	}
	free(slots);
	free(body);
	http_client_free(c);
	event_base_free(base);
	return rc;
}
