/* account_check.c — see account_check.h. */
#include "account_check.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "aws_creds.h"
#include "config.h"
#include "http_client.h"
#include "ses_api.h"
#include "xmalloc.h"

/* ---- the report ---- */

struct check_report {
	int json;
	int fails;
	json_t *steps;
	json_t *account;	/* NULL: none */
	json_t *identities;
};

struct check_report *
check_report_new(int json)
{
	struct check_report *r = xcalloc(1, sizeof(*r));

	r->json = json;
	r->steps = json_array();
	r->identities = json_array();
	return r;
}

void
check_report_line(struct check_report *r, const char *step,
    const char *status, const char *fmt, ...)
{
	char detail[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (strcmp(status, "FAIL") == 0)
		r->fails++;
	if (!r->json) {
		printf("%-12s %-4s %s\n", step, status, detail);
		fflush(stdout);
		return;
	}
	json_array_append_new(r->steps, json_pack("{s:s, s:s, s:s}", "step",
	    step, "status", status, "detail", detail));
}

int
check_report_finish(struct check_report *r)
{
	int fails = r->fails;

	if (r->json) {
		json_t *o = json_pack("{s:b, s:O, s:O, s:O}", "ok", fails == 0,
		    "steps", r->steps, "account",
		    r->account != NULL ? r->account : json_null(),
		    "identities", r->identities);
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		printf("%s\n", s);
		free(s);
		json_decref(o);
	}
	json_decref(r->steps);
	json_decref(r->account);
	json_decref(r->identities);
	free(r);
	return fails;
}

/* ---- the account section ---- */

/* One GetEmailIdentity lookup. */
struct lookup {
	struct run *run;
	char *name;			/* lower case */
	int done;
	enum ses_api_result result;
	struct ses_identity id;
	char error[SES_API_TEXT_MAX + 96];	/* for a failure */
};

struct run {
	struct check_report *r;
	struct event_base *base;
	struct http_client *http;
	const struct config *cfg;
	struct aws_credentials *creds;
	char base_url[SES_API_URL_MAX];
	char scope[96];
	struct lookup *lk;
	size_t nlk;
	size_t pending;
};

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

static struct lookup *
find(struct run *run, const char *name)
{
	char buf[320];
	size_t i;

	snprintf(buf, sizeof(buf), "%s", name);
	lower(buf);
	for (i = 0; i < run->nlk; i++)
		if (strcmp(run->lk[i].name, buf) == 0)
			return &run->lk[i];
	return NULL;
}

static void
want(struct run *run, const char *name)
{
	if (name == NULL || name[0] == '\0' || strcmp(name, "*") == 0 ||
	    find(run, name) != NULL)
		return;
	run->lk = xreallocarray(run->lk, run->nlk + 1, sizeof(*run->lk));
	memset(&run->lk[run->nlk], 0, sizeof(run->lk[0]));
	run->lk[run->nlk].run = run;
	run->lk[run->nlk].name = xstrdup(name);
	lower(run->lk[run->nlk].name);
	run->nlk++;
}

static const char *
domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : address;
}

/* What to do about a failed request. */
static const char *
todo(enum ses_api_result res, const char *action)
{
	static char buf[160];

	switch (res) {
	case SES_API_DENIED:
		snprintf(buf, sizeof(buf), "allow %s in the IAM policy of "
		    "these credentials", action);
		return buf;
	case SES_API_AUTH:
		return "check the access key, the secret and [ses] region";
	case SES_API_THROTTLED:
		return "SES is throttling API calls: try again in a minute";
	case SES_API_SERVER:
		return "SES had an internal error: try again later";
	case SES_API_TRANSPORT:
		return "check the network path to the API endpoint (or [ses] "
		    "api_endpoint) and its certificate";
	default:
		return "see the message";
	}
}

/* Turn an answer into a result, with the error text for a failure. */
static enum ses_api_result
outcome(const struct http_response *resp, char *error, size_t errlen)
{
	struct ses_api_error e;
	enum ses_api_result res;

	ses_api_parse_error(resp->error_type, resp->status >= 300 ?
	    resp->body : NULL, resp->bodylen, &e);
	res = ses_api_classify(resp->status, &e);
	if (res == SES_API_TRANSPORT)
		snprintf(error, errlen, "%s", resp->error ? resp->error :
		    "no answer");
	else if (res != SES_API_OK)
		snprintf(error, errlen, "HTTP %ld %s%s%s", resp->status,
		    e.code[0] ? e.code : "error", e.message[0] ? ": " : "",
		    e.message);
	return res;
}

static void
lookup_done(const struct http_response *resp, void *arg)
{
	struct lookup *l = arg;
	char why[256];

	l->done = 1;
	l->result = outcome(resp, l->error, sizeof(l->error));
	if (l->result == SES_API_OK && ses_api_parse_identity(resp->body,
	    resp->bodylen, &l->id, why, sizeof(why)) == -1) {
		l->result = SES_API_BAD_ANSWER;
		snprintf(l->error, sizeof(l->error), "unreadable answer: %s",
		    why);
	}
	if (--l->run->pending == 0)
		event_base_loopexit(l->run->base, NULL);
}

static struct http_request *
get(struct run *run, const char *url, http_done_fn *done, void *arg,
    char *err, size_t errlen)
{
	struct http_request_spec spec;

	memset(&spec, 0, sizeof(spec));
	spec.method = "GET";
	spec.url = url;
	spec.sigv4 = run->creds;
	spec.sigv4_scope = run->scope;
	spec.timeout_ms = 15000;
	return http_request_start(run->http, &spec, done, arg, err, errlen);
}

struct acct_answer {
	struct run *run;
	int done;
	enum ses_api_result result;
	struct ses_account a;
	char error[SES_API_TEXT_MAX + 96];
};

static void
account_done(const struct http_response *resp, void *arg)
{
	struct acct_answer *ans = arg;
	char why[256];

	ans->done = 1;
	ans->result = outcome(resp, ans->error, sizeof(ans->error));
	if (ans->result == SES_API_OK && ses_api_parse_account(resp->body,
	    resp->bodylen, &ans->a, why, sizeof(why)) == -1) {
		ans->result = SES_API_BAD_ANSWER;
		snprintf(ans->error, sizeof(ans->error), "unreadable answer: "
		    "%s", why);
	}
	event_base_loopexit(ans->run->base, NULL);
}

static void
report_account(struct run *run, const struct ses_account *a)
{
	struct check_report *r = run->r;
	double share = a->max_24h > 0 ? 100 * a->sent_24h / a->max_24h : 0;

	json_decref(r->account);
	r->account = json_pack("{s:b, s:b, s:s, s:f, s:f, s:f, s:f}",
	    "ProductionAccessEnabled", a->production, "SendingEnabled",
	    a->sending_enabled, "EnforcementStatus", a->enforcement,
	    "Max24HourSend", a->max_24h, "MaxSendRate", a->max_rate,
	    "SentLast24Hours", a->sent_24h, "share_used", share / 100);
	if (a->production)
		check_report_line(r, "account", "ok", "production access "
		    "(out of the sandbox)");
	else
		check_report_line(r, "account", "warn", "account is in the "
		    "sandbox: only verified recipients receive mail; request "
		    "production access in the SES console");
	if (!a->sending_enabled)
		check_report_line(r, "sending", "FAIL", "sending is paused "
		    "for the account (SendingEnabled false): SES refuses "
		    "every message; see the SES console's reputation page and "
		    "resume sending (aws sesv2 put-account-sending-attributes "
		    "--sending-enabled)");
	else
		check_report_line(r, "sending", "ok", "sending enabled");
	if (strcmp(a->enforcement, "SHUTDOWN") == 0)
		check_report_line(r, "enforcement", "FAIL", "EnforcementStatus "
		    "SHUTDOWN: AWS stopped the account from sending; contact "
		    "AWS support");
	else if (strcmp(a->enforcement, "PROBATION") == 0)
		check_report_line(r, "enforcement", "warn", "EnforcementStatus "
		    "PROBATION: bounce or complaint rates are too high; fix "
		    "them before AWS pauses the account");
	else
		check_report_line(r, "enforcement", "ok", "EnforcementStatus "
		    "%s", a->enforcement[0] ? a->enforcement : "(none)");
	if (a->max_24h < 0)
		check_report_line(r, "quota", "ok", "no daily quota "
		    "(Max24HourSend -1); %.0f sent in the last 24 hours",
		    a->sent_24h);
	else if (a->sent_24h >= a->max_24h)
		check_report_line(r, "quota", "FAIL", "daily quota used up: "
		    "%.0f of %.0f in the last 24 hours; SES refuses mail "
		    "until older sends age out (the relay keeps it queued); "
		    "request a higher quota", a->sent_24h, a->max_24h);
	else
		check_report_line(r, "quota", share >= 80 ? "warn" : "ok",
		    "%.0f of %.0f sent in the last 24 hours (%.1f %%)%s",
		    a->sent_24h, a->max_24h, share, share >= 80 ?
		    "; request a higher quota before it runs out" : "");
	if (run->cfg->max_send_rate_auto)
		check_report_line(r, "rate", "ok", "max send rate %g per "
		    "second; max_send_rate = auto sends %g per second "
		    "(instances %u)", a->max_rate,
		    a->max_rate / run->cfg->instances, run->cfg->instances);
	else if (run->cfg->max_send_rate > a->max_rate ||
	    run->cfg->max_send_rate == 0)
		check_report_line(r, "rate", "warn", "max send rate %g per "
		    "second, but max_send_rate is %g%s: SES will throttle; "
		    "set max_send_rate = auto", a->max_rate,
		    run->cfg->max_send_rate, run->cfg->max_send_rate == 0 ?
		    " (no limit)" : "");
	else
		check_report_line(r, "rate", "ok", "max send rate %g per "
		    "second; max_send_rate %g", a->max_rate,
		    run->cfg->max_send_rate);
}

static void
identity_json(struct run *run, const struct lookup *l, const char *purpose)
{
	json_array_append_new(run->r->identities, json_pack(
	    "{s:s, s:s, s:b, s:b, s:s, s:s, s:s*}", "identity", l->name,
	    "for", purpose, "found", l->result == SES_API_OK, "verified",
	    l->result == SES_API_OK && l->id.verified, "verification",
	    l->id.verification, "dkim", l->id.dkim, "error",
	    l->result == SES_API_OK || l->result == SES_API_NOT_FOUND ?
	    NULL : l->error));
}

/* A failed lookup's line; 1 if one was printed. */
static int
lookup_failed(struct run *run, const struct lookup *l, const char *purpose)
{
	if (l->result == SES_API_OK || l->result == SES_API_NOT_FOUND)
		return 0;
	check_report_line(run->r, "identity", "FAIL", "%s (%s): "
	    "GetEmailIdentity failed: %s; %s", l->name, purpose, l->error,
	    todo(l->result, "ses:GetEmailIdentity"));
	return 1;
}

static const char *
unverified_why(const struct lookup *l)
{
	static char buf[200];

	if (l->result == SES_API_NOT_FOUND)
		return "not an identity of this account in this region";
	snprintf(buf, sizeof(buf), "not verified for sending (verification "
	    "%s)", l->id.verification[0] ? l->id.verification : "unknown");
	return buf;
}

/* A sender address or domain: verified itself, or through its domain. */
static void
judge_sender(struct run *run, const char *name, const char *purpose)
{
	struct lookup *self = find(run, name);
	struct lookup *dom = strchr(name, '@') != NULL ?
	    find(run, domain_of(name)) : NULL;

	if (self == NULL)
		return;
	identity_json(run, self, purpose);
	if (dom != NULL)
		identity_json(run, dom, purpose);
	if (self->result == SES_API_OK && self->id.verified) {
		check_report_line(run->r, "identity", "ok", "%s (%s): verified "
		    "for sending", self->name, purpose);
		return;
	}
	if (dom != NULL && dom->result == SES_API_OK && dom->id.verified) {
		check_report_line(run->r, "identity", "ok", "%s (%s): sending "
		    "allowed by the verified domain %s", self->name, purpose,
		    dom->name);
		return;
	}
	if (lookup_failed(run, self, purpose) |
	    (dom != NULL && lookup_failed(run, dom, purpose)))
		return;
	if (dom != NULL)
		check_report_line(run->r, "identity", "FAIL", "%s (%s): %s, "
		    "nor is its domain %s (%s): SES refuses this sender; "
		    "verify the domain (or the address) in SES %s",
		    self->name, purpose, unverified_why(self), dom->name,
		    unverified_why(dom), run->cfg->region);
	else
		check_report_line(run->r, "identity", "FAIL", "%s (%s): %s: "
		    "SES refuses this sender; verify it in SES %s%s",
		    self->name, purpose, unverified_why(self),
		    run->cfg->region, self->result == SES_API_NOT_FOUND ?
		    " (or fix [ses] region)" : "");
}

static void
judge_arn(struct run *run, const char *arn, const char *purpose)
{
	char name[320], acct[13];
	struct lookup *l;

	if (arn == NULL || ses_api_arn_identity(arn, name, sizeof(name),
	    acct) == -1 || (l = find(run, name)) == NULL)
		return;
	identity_json(run, l, purpose);
	if (l->result == SES_API_OK && l->id.verified)
		check_report_line(run->r, "identity", "ok", "%s (%s): verified "
		    "for sending", l->name, purpose);
	else if (lookup_failed(run, l, purpose))
		;
	else if (l->result == SES_API_NOT_FOUND)
		check_report_line(run->r, "identity", "warn", "%s (%s): not an "
		    "identity of this account; if it belongs to account %s "
		    "(sending authorization), that account must verify it and "
		    "allow this one in its sending authorization policy",
		    l->name, purpose, acct);
	else
		check_report_line(run->r, "identity", "FAIL", "%s (%s): %s: "
		    "SES refuses mail sent with this ARN; verify the identity",
		    l->name, purpose, unverified_why(l));
}

static void
judge_dkim(struct run *run)
{
	size_t i;

	for (i = 0; i < run->nlk; i++) {
		const struct lookup *l = &run->lk[i];

		if (l->result != SES_API_OK || strchr(l->name, '@') != NULL)
			continue;
		if (strcmp(l->id.dkim, "SUCCESS") == 0)
			check_report_line(run->r, "dkim", "ok", "%s: DKIM "
			    "SUCCESS%s", l->name, l->id.dkim_signing ?
			    ", signing" : ", but signing is disabled");
		else
			check_report_line(run->r, "dkim", "warn", "%s: DKIM %s: "
			    "mail is not DKIM-signed for this domain; publish "
			    "the CNAME records SES gives for it (aws sesv2 "
			    "get-email-identity --email-identity %s shows them)",
			    l->name, l->id.dkim[0] ? l->id.dkim : "NOT_STARTED",
			    l->name);
	}
}

void
account_check_run(struct check_report *r, struct event_base *base,
    struct http_client *http, const struct config *cfg,
    struct aws_credentials *creds, const char *why)
{
	struct run run = { .r = r, .base = base, .http = http, .cfg = cfg,
	    .creds = creds };
	struct acct_answer ans = { .run = &run };
	char url[SES_API_URL_MAX], err[256], purpose[400], name[320];
	size_t i;

	if (creds == NULL) {
		check_report_line(r, "api", "FAIL", "cannot read the account: "
		    "%s", why != NULL ? why : "no credentials");
		return;
	}
	if (ses_api_base_url(cfg->api_endpoint, cfg->region, run.base_url,
	    sizeof(run.base_url)) == -1 || ses_api_account_url(run.base_url,
	    url, sizeof(url)) == -1) {
		check_report_line(r, "api", "FAIL", "API endpoint URL too long");
		return;
	}
	ses_api_scope(cfg->region, run.scope, sizeof(run.scope));
	check_report_line(r, "api", "ok", "%s (SES API v2, signed for %s, "
	    "credentials: %s)", run.base_url, cfg->region, creds->source);

	if (get(&run, url, account_done, &ans, err, sizeof(err)) == NULL) {
		check_report_line(r, "account", "FAIL", "cannot send "
		    "GetAccount: %s", err);
		return;
	}
	event_base_dispatch(base);
	if (!ans.done) {
		check_report_line(r, "account", "FAIL", "GetAccount got no "
		    "answer");
		return;
	}
	if (ans.result != SES_API_OK) {
		check_report_line(r, "account", "FAIL", "GetAccount failed: "
		    "%s; %s", ans.error, todo(ans.result, "ses:GetAccount"));
		if (ans.result == SES_API_TRANSPORT ||
		    ans.result == SES_API_AUTH)
			return;
	} else
		report_account(&run, &ans.a);

	/* every identity the configuration sends as */
	for (i = 0; i < cfg->nsenders; i++) {
		const struct sender_rule *s = &cfg->senders[i];
		const char *arns[2] = { s->source_arn, s->from_arn };
		int j;

		/* with an ARN, SES authorizes the ARN's identity (perhaps
		 * of another account): that one is checked, not the pattern */
		if (s->source_arn == NULL && s->from_arn == NULL) {
			want(&run, s->pattern);
			if (strchr(s->pattern, '@') != NULL)
				want(&run, domain_of(s->pattern));
		}
		for (j = 0; j < 2; j++)
			if (arns[j] != NULL && ses_api_arn_identity(arns[j],
			    name, sizeof(name), NULL) == 0)
				want(&run, name);
	}
	if (cfg->null_sender != NULL) {
		want(&run, cfg->null_sender);
		want(&run, domain_of(cfg->null_sender));
	}
	if (run.nlk == 0)
		check_report_line(r, "identity", "warn", "no [sender] section "
		    "names an address or domain: nothing to check; SES refuses "
		    "senders that are not verified identities");
	for (i = 0; i < run.nlk; i++) {
		if (ses_api_identity_url(run.base_url, run.lk[i].name, url,
		    sizeof(url)) == -1 || get(&run, url, lookup_done,
		    &run.lk[i], err, sizeof(err)) == NULL) {
			run.lk[i].done = 1;
			run.lk[i].result = SES_API_TRANSPORT;
			snprintf(run.lk[i].error, sizeof(run.lk[i].error),
			    "cannot send: %s", err);
			continue;
		}
		run.pending++;
	}
	if (run.pending > 0)
		event_base_dispatch(base);

	for (i = 0; i < cfg->nsenders; i++) {
		const struct sender_rule *s = &cfg->senders[i];

		snprintf(purpose, sizeof(purpose), "[sender %s]", s->pattern);
		if (strcmp(s->pattern, "*") != 0 && s->source_arn == NULL &&
		    s->from_arn == NULL)
			judge_sender(&run, s->pattern, purpose);
		snprintf(purpose, sizeof(purpose), "source_arn of [sender %s]",
		    s->pattern);
		judge_arn(&run, s->source_arn, purpose);
		if (s->from_arn != NULL && (s->source_arn == NULL ||
		    strcmp(s->from_arn, s->source_arn) != 0)) {
			snprintf(purpose, sizeof(purpose), "from_arn of "
			    "[sender %s]", s->pattern);
			judge_arn(&run, s->from_arn, purpose);
		}
	}
	if (cfg->null_sender != NULL)
		judge_sender(&run, cfg->null_sender, "null_sender");
	judge_dkim(&run);
	for (i = 0; i < run.nlk; i++)
		free(run.lk[i].name);
	free(run.lk);
}
