/*
 * aws_creds_provider.c — see aws_creds.h: the provider, which owns the
 * current credentials and refreshes them on the event loop, and the pure
 * parsers of what STS, the container endpoint and IMDS answer.
 *
 * One fetch at a time.  A fetch is one request (STS, container) or three
 * (IMDSv2: token, role name, credentials), each with its own timeout, so
 * a fetch always ends.  Its end schedules the next one: margin seconds
 * before the new credentials expire, or, after a failure, 1 s doubling
 * to 60 s.
 */
#include "aws_creds.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "aws_creds_int.h"
#include "config.h"
#include "http_client.h"
#include "log.h"
#include "xmalloc.h"

#define seterr aws_creds_seterr

#define ECS_HOST	"169.254.170.2"
#define IMDS_BASE	"http://169.254.169.254"
#define IMDS_TOKEN_TTL	"21600"
#define URL_MAX		4096
#define TOKEN_MAX	(64 * 1024)	/* bytes of a token file */
#define STS_TIMEOUT_MS	10000
#define ECS_TIMEOUT_MS	5000
#define IMDS_TIMEOUT_MS	2000
#define RETRY_MIN	1
#define RETRY_MAX	60

enum kind { K_STATIC, K_WEB_IDENTITY, K_CONTAINER, K_IMDS };

struct aws_creds_provider {
	struct event_base *base;
	struct http_client *http;
	enum kind kind;
	char region[64];
	struct aws_web_identity role;		/* K_WEB_IDENTITY */
	char url[URL_MAX];			/* STS, container or IMDS base */
	char auth_file[PATH_MAX];		/* container: token file */
	int imds_step;				/* 0 token, 1 role, 2 creds */
	char imds_token[256];
	char imds_role[256];

	struct aws_credentials *cur;
	struct http_request *req;
	struct event *timer;
	unsigned retry;				/* seconds of the next retry */
	long margin;
	int failing;				/* the last fetch failed */

	aws_creds_notify_fn *notify;
	void *notify_arg;
	char source[AWS_CREDS_SOURCE_MAX];
	char error[AWS_CREDS_ERR_MAX];
	struct aws_creds_stats st;
};

static int
nonempty(const char *s)
{
	return s != NULL && *s != '\0';
}

/* --- pure parsers --------------------------------------------------------- */

int
aws_creds_parse_time(const char *s, time_t *out)
{
	struct tm tm;
	int n = 0, off = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
	    &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
	    &n) != 6 || n != 19)
		return -1;
	for (int i = 0; i < 19; i++)
		if ((i == 4 || i == 7) ? s[i] != '-' : i == 10 ? s[i] != 'T' :
		    (i == 13 || i == 16) ? s[i] != ':' :
		    !isdigit((unsigned char)s[i]))
			return -1;
	s += 19;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'Z' && s[1] == '\0')
		off = 0;
	else if ((*s == '+' || *s == '-') && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && s[3] == ':' &&
	    isdigit((unsigned char)s[4]) && isdigit((unsigned char)s[5]) &&
	    s[6] == '\0') {
		off = ((s[1] - '0') * 10 + (s[2] - '0')) * 3600 +
		    ((s[4] - '0') * 10 + (s[5] - '0')) * 60;
		if (*s == '-')
			off = -off;
	} else
		return -1;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = t - off;
	return 0;
}

/*
 * The text of the first <tag>...</tag> in [s, e), entities decoded, in
 * a new string; NULL if absent or malformed.
 */
static char *
xml_text(const char *s, const char *e, const char *tag)
{
	char open[64], close[64];
	const char *a, *b;
	size_t olen, clen;
	char *out, *o;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	olen = strlen(open);
	clen = strlen(close);
	for (a = s; a + olen <= e; a++)
		if (memcmp(a, open, olen) == 0)
			break;
	if (a + olen > e)
		return NULL;
	a += olen;
	for (b = a; b + clen <= e; b++)
		if (memcmp(b, close, clen) == 0)
			break;
	if (b + clen > e)
		return NULL;
	o = out = xmalloc((size_t)(b - a) + 1);
	while (a < b) {
		static const struct { const char *ent; char c; } ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
			{ "&quot;", '"' }, { "&apos;", '\'' },
		};
		size_t i;

		if (*a == '<') {		/* nested markup: not ours */
			*o = '\0';
			wipe_free(out);
			return NULL;
		}
		if (*a != '&') {
			*o++ = *a++;
			continue;
		}
		for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
			if ((size_t)(b - a) >= strlen(ents[i].ent) &&
			    memcmp(a, ents[i].ent, strlen(ents[i].ent)) == 0)
				break;
		if (i == sizeof(ents) / sizeof(ents[0])) {
			*o = '\0';	/* wipe_free() wipes strlen() octets */
			wipe_free(out);
			return NULL;
		}
		*o++ = ents[i].c;
		a += strlen(ents[i].ent);
	}
	*o = '\0';
	return out;
}

static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* Checks common to every source; takes the strings (wiped on error). */
static int
make_creds(char *id, char *secret, char *token, const char *exp,
    struct aws_credentials **out, char *err, size_t errlen)
{
	time_t t = 0;
	int rc = -1;

	if (id == NULL || secret == NULL)
		seterr(err, errlen, "no %s in the answer", id == NULL ?
		    "AccessKeyId" : "SecretAccessKey");
	else if (*id == '\0' || strlen(id) > 128 || !printable(id))
		seterr(err, errlen, "AccessKeyId is not an access key id");
	else if (*secret == '\0' || strlen(secret) > 256 || !printable(secret))
		seterr(err, errlen, "SecretAccessKey is not a secret key");
	else if (token != NULL && (strlen(token) > 16384 || !printable(token)))
		seterr(err, errlen, "the session token is malformed");
	else if (exp != NULL && aws_creds_parse_time(exp, &t) == -1)
		seterr(err, errlen, "Expiration is not a time: '%.40s'", exp);
	else {
		*out = aws_credentials_new(id, secret, token, t, "");
		rc = 0;
	}
	free(id);
	wipe_free(secret);
	wipe_free(token);
	return rc;
}

int
aws_creds_parse_sts(const char *body, size_t len,
    struct aws_credentials **out, char *err, size_t errlen)
{
	const char *e = body + len;
	char *code, *msg, *id, *secret, *token, *exp;
	int rc;

	*out = NULL;
	if ((code = xml_text(body, e, "Code")) != NULL &&
	    xml_text(body, e, "AccessKeyId") == NULL) {
		msg = xml_text(body, e, "Message");
		seterr(err, errlen, "%.64s: %.300s", code, msg != NULL ? msg :
		    "(no message)");
		free(code);
		free(msg);
		return -1;
	}
	free(code);
	id = xml_text(body, e, "AccessKeyId");
	secret = xml_text(body, e, "SecretAccessKey");
	token = xml_text(body, e, "SessionToken");
	exp = xml_text(body, e, "Expiration");
	if (token == NULL) {
		free(id);
		wipe_free(secret);
		free(exp);
		seterr(err, errlen, "no SessionToken in STS's answer (not an "
		    "AssumeRoleWithWebIdentity response?)");
		return -1;
	}
	if (exp == NULL) {
		free(id);
		wipe_free(secret);
		wipe_free(token);
		seterr(err, errlen, "no Expiration in STS's answer");
		return -1;
	}
	rc = make_creds(id, secret, token, exp, out, err, errlen);
	free(exp);
	return rc;
}

static char *
jstr(json_t *o, const char *name, int *bad)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = 1;
		return NULL;
	}
	return xstrdup(json_string_value(v));
}

int
aws_creds_parse_json(const char *body, size_t len,
    struct aws_credentials **out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o;
	char *code, *id, *secret, *token, *exp, *msg;
	int bad = 0, rc;

	*out = NULL;
	if ((o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    !json_is_object(o)) {
		json_decref(o);
		seterr(err, errlen, "the answer is not a JSON object");
		return -1;
	}
	code = jstr(o, "Code", &bad);
	if (code != NULL && strcmp(code, "Success") != 0) {
		msg = jstr(o, "Message", &bad);
		seterr(err, errlen, "%.64s: %.300s", code, msg != NULL ? msg :
		    "(no message)");
		free(code);
		free(msg);
		json_decref(o);
		return -1;
	}
	free(code);
	id = jstr(o, "AccessKeyId", &bad);
	secret = jstr(o, "SecretAccessKey", &bad);
	token = jstr(o, "Token", &bad);
	exp = jstr(o, "Expiration", &bad);
	/* wipe jansson's copy of the secrets before it is freed */
	json_t *sv = json_object_get(o, "SecretAccessKey");
	json_t *tv = json_object_get(o, "Token");
	if (json_is_string(sv))
		wipe((char *)json_string_value(sv), json_string_length(sv));
	if (json_is_string(tv))
		wipe((char *)json_string_value(tv), json_string_length(tv));
	json_decref(o);
	if (bad) {
		free(id);
		wipe_free(secret);
		wipe_free(token);
		free(exp);
		seterr(err, errlen, "a field of the answer is not a string");
		return -1;
	}
	rc = make_creds(id, secret, token, exp, out, err, errlen);
	free(exp);
	return rc;
}

/* "169.254.x.x", "127.x", "::1", "localhost", "fe80::", "fd00:ec2::23" */
static int
host_local(const char *h, size_t n)
{
	char host[256];
	struct in_addr in;
	uint32_t a;

	if (n == 0 || n >= sizeof(host))
		return 0;
	memcpy(host, h, n);
	host[n] = '\0';
	if (host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
		return strcmp(host, "::1") == 0 ||
		    strncasecmp(host, "fe80:", 5) == 0 ||
		    strcasecmp(host, "fd00:ec2::23") == 0;
	}
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &in) != 1)
		return 0;
	a = ntohl(in.s_addr);
	return (a >> 24) == 127 || (a >> 16) == 0xa9fe;	/* 169.254/16 */
}

int
aws_creds_full_uri_allowed(const char *url)
{
	const char *h, *p;
	size_t n;

	if (url == NULL || strpbrk(url, " \t\r\n@") != NULL)
		return 0;
	if (strncasecmp(url, "https://", 8) == 0)
		return url[8] != '\0' && url[8] != '/';
	if (strncasecmp(url, "http://", 7) != 0)
		return 0;
	h = url + 7;
	n = strcspn(h, "/?#");
	/* the host without the port */
	if (*h == '[') {
		p = memchr(h, ']', n);
		if (p == NULL)
			return 0;
		return host_local(h, (size_t)(p - h) + 1);
	}
	p = memchr(h, ':', n);
	return host_local(h, p != NULL ? (size_t)(p - h) : n);
}

/* --- fetching --------------------------------------------------------------- */

static void fetch_start(struct aws_creds_provider *);

static void
urlenc(char *out, size_t outlen, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in != '\0' && o + 4 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
		    c == '~')
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static void
schedule(struct aws_creds_provider *p, long seconds)
{
	struct timeval tv = { seconds < 0 ? 0 : seconds, 0 };

	evtimer_add(p->timer, &tv);
}

static void
fetch_failed(struct aws_creds_provider *p, const char *why)
{
	time_t now = time(NULL);

	p->req = NULL;
	p->st.failures++;
	seterr(p->error, sizeof(p->error), "%s: %s", p->source, why);
	if (!p->failing || p->retry >= RETRY_MAX)
		log_warnx("AWS credentials: fetching from %s failed: %s; %s",
		    p->source, why, p->cur != NULL && (p->cur->expiration == 0 ||
		    p->cur->expiration > now) ? "the current ones stay in use "
		    "until they expire" : "mail waits (4xx) until it works");
	p->failing = 1;
	schedule(p, p->retry);
	p->retry = p->retry * 2 > RETRY_MAX ? RETRY_MAX : p->retry * 2;
	if (p->notify != NULL)
		p->notify(0, p->error, p->notify_arg);
}

static void
fetch_ok(struct aws_creds_provider *p, struct aws_credentials *c)
{
	time_t now = time(NULL);
	long left, when;

	p->req = NULL;
	snprintf(c->source, sizeof(c->source), "%s", p->source);
	aws_credentials_unref(p->cur);
	p->cur = c;
	p->st.fetches++;
	p->failing = 0;
	p->retry = RETRY_MIN;
	p->error[0] = '\0';
	if (c->expiration != 0) {
		left = (long)(c->expiration - now);
		when = left - p->margin;
		/* credentials shorter-lived than the margin: half-way */
		if (when < left / 2)
			when = left / 2;
		if (when < 1)
			when = 1;
		schedule(p, when);
		log_info("AWS credentials from %s: key %.8s..., expire in %lds, "
		    "refresh in %lds", p->source, c->access_key_id, left, when);
	} else
		log_info("AWS credentials from %s: key %.8s..., no expiry",
		    p->source, c->access_key_id);
	if (p->notify != NULL)
		p->notify(1, NULL, p->notify_arg);
}

static int
read_token(const char *path, char **tok, char *err, size_t errlen)
{
	size_t n;
	int rc = aws_creds_read_file(path, TOKEN_MAX, 0, tok, &n, err, errlen);

	if (rc == 1) {
		seterr(err, errlen, "%s: no such file", path);
		return -1;
	}
	if (rc == -1)
		return -1;
	while (n > 0 && isspace((unsigned char)(*tok)[n - 1]))
		(*tok)[--n] = '\0';
	if (n == 0 || strlen(*tok) != n) {
		wipe_free(*tok);
		*tok = NULL;
		seterr(err, errlen, "%s: empty or not text", path);
		return -1;
	}
	return 0;
}

static void
sts_done(const struct http_response *r, void *arg)
{
	struct aws_creds_provider *p = arg;
	struct aws_credentials *c;
	char err[AWS_CREDS_ERR_MAX], why[AWS_CREDS_ERR_MAX];

	if (r->error != NULL) {
		fetch_failed(p, r->error);
		return;
	}
	if (aws_creds_parse_sts(r->body, r->bodylen, &c, err,
	    sizeof(err)) == -1) {
		snprintf(why, sizeof(why), "STS HTTP %ld: %.400s", r->status,
		    err);
		fetch_failed(p, why);
		return;
	}
	if (r->status != 200) {
		aws_credentials_unref(c);
		snprintf(why, sizeof(why), "STS HTTP %ld", r->status);
		fetch_failed(p, why);
		return;
	}
	fetch_ok(p, c);
}

static void
json_done(const struct http_response *r, void *arg)
{
	struct aws_creds_provider *p = arg;
	struct aws_credentials *c;
	char err[AWS_CREDS_ERR_MAX], why[AWS_CREDS_ERR_MAX];

	if (r->error != NULL) {
		fetch_failed(p, r->error);
		return;
	}
	if (r->status != 200) {
		snprintf(why, sizeof(why), "HTTP %ld%s%.200s", r->status,
		    r->bodylen > 0 ? ": " : "", r->body);
		fetch_failed(p, why);
		return;
	}
	if (aws_creds_parse_json(r->body, r->bodylen, &c, err,
	    sizeof(err)) == -1) {
		fetch_failed(p, err);
		return;
	}
	fetch_ok(p, c);
}

static void
imds_done(const struct http_response *r, void *arg)
{
	struct aws_creds_provider *p = arg;
	char why[AWS_CREDS_ERR_MAX];
	size_t n;

	if (r->error != NULL || r->status != 200) {
		static const char *const steps[] = { "token (PUT "
		    "/latest/api/token)", "role name", "credentials" };

		if (r->error != NULL)
			snprintf(why, sizeof(why), "%s: %s",
			    steps[p->imds_step], r->error);
		else
			snprintf(why, sizeof(why), "%s: HTTP %ld%s",
			    steps[p->imds_step], r->status, r->status == 404 &&
			    p->imds_step == 1 ? " (no instance profile "
			    "attached?)" : "");
		fetch_failed(p, why);
		return;
	}
	switch (p->imds_step) {
	case 0:
		n = r->bodylen;
		if (n == 0 || n >= sizeof(p->imds_token) ||
		    !printable(r->body)) {
			fetch_failed(p, "the IMDSv2 token is malformed");
			return;
		}
		memcpy(p->imds_token, r->body, n + 1);
		break;
	case 1:
		n = strcspn(r->body, "\r\n");
		if (n == 0 || n >= sizeof(p->imds_role)) {
			fetch_failed(p, "no role name in the instance metadata");
			return;
		}
		memcpy(p->imds_role, r->body, n);
		p->imds_role[n] = '\0';
		if (!printable(p->imds_role) || strchr(p->imds_role, '/') !=
		    NULL) {
			fetch_failed(p, "a malformed role name in the instance "
			    "metadata");
			return;
		}
		break;
	default:
		p->imds_step = 0;
		wipe(p->imds_token, sizeof(p->imds_token));
		json_done(r, arg);
		return;
	}
	p->imds_step++;
	p->req = NULL;
	fetch_start(p);
}

static void
fetch_start(struct aws_creds_provider *p)
{
	struct http_request_spec spec;
	char url[URL_MAX + 512], err[AWS_CREDS_ERR_MAX];
	char hdr[2][512];
	const char *headers[3] = { NULL, NULL, NULL };
	char *tok = NULL, *body = NULL;
	http_done_fn *done = json_done;

	memset(&spec, 0, sizeof(spec));
	spec.headers = headers;
	switch (p->kind) {
	case K_STATIC:
		return;
	case K_WEB_IDENTITY: {
		char session[160];
		size_t blen;

		if (read_token(p->role.token_file, &tok, err, sizeof(err)) ==
		    -1) {
			fetch_failed(p, err);
			return;
		}
		if (p->role.session_name[0] != '\0')
			snprintf(session, sizeof(session), "%s",
			    p->role.session_name);
		else
			snprintf(session, sizeof(session), "sesrelay-%lld",
			    (long long)time(NULL));
		blen = 3 * (strlen(tok) + strlen(p->role.role_arn) +
		    strlen(session)) + 200;
		body = xmalloc(blen);
		{
			char *a = xmalloc(3 * strlen(p->role.role_arn) + 1);
			char *s = xmalloc(3 * strlen(session) + 1);
			char *t = xmalloc(3 * strlen(tok) + 1);

			urlenc(a, 3 * strlen(p->role.role_arn) + 1,
			    p->role.role_arn);
			urlenc(s, 3 * strlen(session) + 1, session);
			urlenc(t, 3 * strlen(tok) + 1, tok);
			snprintf(body, blen, "Action=AssumeRoleWithWebIdentity"
			    "&Version=2011-06-15&RoleArn=%s&RoleSessionName=%s"
			    "&WebIdentityToken=%s", a, s, t);
			free(a);
			free(s);
			wipe_free(t);
		}
		wipe_free(tok);
		tok = NULL;
		spec.method = "POST";
		snprintf(url, sizeof(url), "%s", p->url);
		headers[0] = "Content-Type: application/x-www-form-urlencoded";
		headers[1] = "Accept: application/xml";
		spec.body = body;
		spec.bodylen = strlen(body);
		spec.timeout_ms = STS_TIMEOUT_MS;
		done = sts_done;
		break;
	}
	case K_CONTAINER:
		spec.method = "GET";
		snprintf(url, sizeof(url), "%s", p->url);
		if (p->auth_file[0] != '\0') {
			if (read_token(p->auth_file, &tok, err,
			    sizeof(err)) == -1) {
				fetch_failed(p, err);
				return;
			}
		} else if (nonempty(getenv(
		    "AWS_CONTAINER_AUTHORIZATION_TOKEN")))
			tok = xstrdup(getenv(
			    "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
		if (tok != NULL) {
			if (strlen(tok) > 400 || !printable(tok) ||
			    strpbrk(tok, "\r\n") != NULL) {
				wipe_free(tok);
				fetch_failed(p, "the container authorization "
				    "token is malformed");
				return;
			}
			snprintf(hdr[0], sizeof(hdr[0]), "Authorization: %s",
			    tok);
			headers[0] = hdr[0];
		}
		spec.timeout_ms = ECS_TIMEOUT_MS;
		break;
	case K_IMDS:
		spec.timeout_ms = IMDS_TIMEOUT_MS;
		if (p->imds_step == 0) {
			spec.method = "PUT";
			snprintf(url, sizeof(url), "%s/latest/api/token",
			    p->url);
			headers[0] = "X-aws-ec2-metadata-token-ttl-seconds: "
			    IMDS_TOKEN_TTL;
		} else {
			spec.method = "GET";
			snprintf(url, sizeof(url), "%s/latest/meta-data/iam/"
			    "security-credentials/%s", p->url,
			    p->imds_step == 2 ? p->imds_role : "");
			snprintf(hdr[0], sizeof(hdr[0]),
			    "X-aws-ec2-metadata-token: %s", p->imds_token);
			headers[0] = hdr[0];
		}
		done = imds_done;
		break;
	}
	spec.url = url;
	err[0] = '\0';
	p->req = http_request_start(p->http, &spec, done, p, err, sizeof(err));
	wipe(hdr, sizeof(hdr));
	if (body != NULL)
		wipe_free(body);
	wipe_free(tok);
	if (p->req == NULL) {
		p->imds_step = 0;
		fetch_failed(p, err[0] != '\0' ? err : "cannot start the "
		    "request");
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct aws_creds_provider *p = arg;

	(void)fd;
	(void)what;
	if (p->req == NULL) {
		p->imds_step = 0;
		fetch_start(p);
	}
}

/* --- the provider ----------------------------------------------------------- */

static int
url_base(char *out, size_t len, const char *v)
{
	size_t n = strlen(v);

	while (n > 0 && v[n - 1] == '/')
		n--;
	if (n == 0 || n + 1 > len)
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

/* Choose links 5-7: 0 with p->kind set, -1 error, 1 none. */
static int
choose_dynamic(struct aws_creds_provider *p, char *tried, size_t triedlen,
    char *err, size_t errlen)
{
	const char *arn = getenv("AWS_ROLE_ARN");
	const char *tokf = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *imds_off = getenv("AWS_EC2_METADATA_DISABLED");
	const char *e;

	if (nonempty(arn) || nonempty(tokf)) {
		if (!nonempty(arn) || !nonempty(tokf)) {
			seterr(err, errlen, "%s is set but %s is not",
			    nonempty(arn) ? "AWS_ROLE_ARN" :
			    "AWS_WEB_IDENTITY_TOKEN_FILE", nonempty(arn) ?
			    "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
			return -1;
		}
		p->kind = K_WEB_IDENTITY;
		snprintf(p->role.role_arn, sizeof(p->role.role_arn), "%s", arn);
		snprintf(p->role.token_file, sizeof(p->role.token_file), "%s",
		    tokf);
		e = getenv("AWS_ROLE_SESSION_NAME");
		snprintf(p->role.session_name, sizeof(p->role.session_name),
		    "%s", nonempty(e) ? e : "");
		snprintf(p->role.where, sizeof(p->role.where),
		    "AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE");
		return 0;
	}
	if (nonempty(rel)) {
		e = getenv("SESRELAY_TEST_CONTAINER_HOST");
		if (rel[0] != '/' || strpbrk(rel, " \t\r\n") != NULL) {
			seterr(err, errlen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_"
			    "URI: must be a path starting with '/'");
			return -1;
		}
		snprintf(p->url, sizeof(p->url), "http://%s%s", nonempty(e) ?
		    e : ECS_HOST, rel);
		p->kind = K_CONTAINER;
	} else if (nonempty(full)) {
		if (!aws_creds_full_uri_allowed(full)) {
			seterr(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI: "
			    "must be https, or http to a loopback or link-local "
			    "address");
			return -1;
		}
		snprintf(p->url, sizeof(p->url), "%s", full);
		p->kind = K_CONTAINER;
	}
	if (p->kind == K_CONTAINER) {
		e = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
		if (nonempty(e))
			snprintf(p->auth_file, sizeof(p->auth_file), "%s", e);
		return 0;
	}
	if (nonempty(imds_off) && strcasecmp(imds_off, "true") == 0) {
		size_t o = strnlen(tried, triedlen);

		snprintf(tried + o, triedlen - o, ", AWS_ROLE_ARN, "
		    "AWS_CONTAINER_CREDENTIALS_*, instance metadata "
		    "(AWS_EC2_METADATA_DISABLED)");
		return 1;
	}
	e = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (url_base(p->url, sizeof(p->url), nonempty(e) ? e : IMDS_BASE) ==
	    -1) {
		seterr(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT: not a "
		    "URL");
		return -1;
	}
	p->kind = K_IMDS;
	return 0;
}

struct aws_creds_provider *
aws_creds_provider_new(struct event_base *base, struct http_client *http,
    const struct config *cfg, char *err, size_t errlen)
{
	struct aws_creds_provider *p = xcalloc(1, sizeof(*p));
	struct aws_credentials *c = NULL;
	char tried[AWS_CREDS_ERR_MAX];
	const char *e;
	int rc;

	p->base = base;
	p->http = http;
	p->retry = RETRY_MIN;
	p->margin = AWS_CREDS_REFRESH_MARGIN;
	if (nonempty(e = getenv("SESRELAY_TEST_REFRESH_MARGIN")))
		p->margin = strtol(e, NULL, 10);
	snprintf(p->region, sizeof(p->region), "%s", cfg->region);

	rc = aws_creds_chain_static(cfg, &c, &p->role, tried, sizeof(tried));
	if (rc == -1) {
		seterr(err, errlen, "%s", tried);
		free(p);
		return NULL;
	}
	if (rc == 0) {
		p->kind = K_STATIC;
		p->cur = c;
		snprintf(p->source, sizeof(p->source), "%s", c->source);
		p->st.fetches = 1;
		return p;
	}
	if (rc == 2)
		p->kind = K_WEB_IDENTITY;
	else if ((rc = choose_dynamic(p, tried, sizeof(tried), err,
	    errlen)) != 0) {
		if (rc == 1)
			seterr(err, errlen, "%s", tried);
		free(p);
		return NULL;
	}
	switch (p->kind) {
	case K_WEB_IDENTITY:
		e = getenv("AWS_ENDPOINT_URL_STS");
		if (nonempty(e))
			rc = url_base(p->url, sizeof(p->url) - 1, e);
		else
			rc = snprintf(p->url, sizeof(p->url),
			    "https://sts.%s.amazonaws.com", p->region) < 0;
		if (rc != 0) {
			seterr(err, errlen, "AWS_ENDPOINT_URL_STS: not a URL");
			free(p);
			return NULL;
		}
		strcat(p->url, "/");
		snprintf(p->source, sizeof(p->source), "web identity %.200s",
		    p->role.role_arn);
		break;
	case K_CONTAINER:
		snprintf(p->source, sizeof(p->source), "container endpoint "
		    "%.200s", p->url);
		break;
	case K_IMDS:
		snprintf(p->source, sizeof(p->source), "instance metadata "
		    "(IMDSv2) %.200s", p->url);
		log_debug("AWS credentials: none of the static sources (%s); "
		    "trying the instance metadata", tried);
		break;
	case K_STATIC:
		break;
	}
	if (http == NULL || base == NULL) {
		seterr(err, errlen, "%s gives temporary credentials over HTTP: "
		    "they need [ses] transport = api", p->source);
		free(p);
		return NULL;
	}
	p->timer = evtimer_new(base, timer_cb, p);
	if (p->timer == NULL)
		fatalx("evtimer_new failed");
	schedule(p, 0);			/* the first fetch, from the loop */
	return p;
}

struct aws_credentials *
aws_creds_current(struct aws_creds_provider *p)
{
	if (p->cur == NULL || (p->cur->expiration != 0 &&
	    p->cur->expiration <= time(NULL)))
		return NULL;
	return aws_credentials_ref(p->cur);
}

void
aws_creds_provider_set_notify(struct aws_creds_provider *p,
    aws_creds_notify_fn *fn, void *arg)
{
	p->notify = fn;
	p->notify_arg = arg;
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
	st->valid = p->cur != NULL && (p->cur->expiration == 0 ||
	    p->cur->expiration > time(NULL));
	st->expiration = p->cur != NULL ? p->cur->expiration : 0;
}

void
aws_creds_provider_free(struct aws_creds_provider *p)
{
	if (p == NULL)
		return;
	if (p->req != NULL)
		http_request_cancel(p->req);
	if (p->timer != NULL)
		event_free(p->timer);
	aws_credentials_unref(p->cur);
	wipe(p->imds_token, sizeof(p->imds_token));
	free(p);
}
