/* ses_api.c — see ses_api.h. */
#include "ses_api.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "aws_sigv4.h"

int
ses_api_base_url(const char *endpoint, const char *region, char *out,
    size_t outlen)
{
	int n;

	if (endpoint != NULL && endpoint[0] != '\0') {
		size_t len = strlen(endpoint);

		while (len > 0 && endpoint[len - 1] == '/')
			len--;
		n = snprintf(out, outlen, "%.*s", (int)len, endpoint);
	} else
		n = snprintf(out, outlen, "https://email.%s.amazonaws.com",
		    region);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int
ses_api_account_url(const char *base, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/v2/email/account", base);

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int
ses_api_identity_url(const char *base, const char *identity, char *out,
    size_t outlen)
{
	char enc[3 * 320 + 1];
	size_t len = strlen(identity);
	int n;

	if (len == 0 || len > 320 ||
	    aws_sigv4_uri_encode(identity, len, 0, enc, sizeof(enc)) < 0)
		return -1;
	n = snprintf(out, outlen, "%s/v2/email/identities/%s", base, enc);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

void
ses_api_scope(const char *region, char *out, size_t outlen)
{
	snprintf(out, outlen, "aws:amz:%s:ses", region);
}

static json_t *
load(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);

	if (j == NULL) {
		snprintf(err, errlen, "not JSON: %s (offset %d)", je.text,
		    je.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "not a JSON object");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A boolean member; absent: def (or an error if def < 0). */
static int
get_bool(json_t *o, const char *name, int def, int *out, char *err,
    size_t errlen)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL) {
		if (def < 0) {
			snprintf(err, errlen, "%s missing", name);
			return -1;
		}
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "%s is not true or false", name);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

static int
get_number(json_t *o, const char *name, double *out, char *err,
    size_t errlen)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL || !json_is_number(v)) {
		snprintf(err, errlen, "%s %s", name, v == NULL ? "missing" :
		    "is not a number");
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

/* A string member copied to out; absent: "". */
static int
get_string(json_t *o, const char *name, char *out, size_t outlen,
    char *err, size_t errlen)
{
	json_t *v = json_object_get(o, name);

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s is not a string", name);
		return -1;
	}
	snprintf(out, outlen, "%s", json_string_value(v));
	return 0;
}

int
ses_api_parse_account(const char *body, size_t len, struct ses_account *a,
    char *err, size_t errlen)
{
	json_t *j, *q;
	int rc = -1;

	memset(a, 0, sizeof(*a));
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	q = json_object_get(j, "SendQuota");
	if (q == NULL || !json_is_object(q)) {
		snprintf(err, errlen, "SendQuota %s", q == NULL ? "missing" :
		    "is not an object");
		goto done;
	}
	if (get_bool(j, "ProductionAccessEnabled", -1, &a->production, err,
	    errlen) == -1 ||
	    get_bool(j, "SendingEnabled", -1, &a->sending_enabled, err,
	    errlen) == -1 ||
	    get_string(j, "EnforcementStatus", a->enforcement,
	    sizeof(a->enforcement), err, errlen) == -1 ||
	    get_number(q, "Max24HourSend", &a->max_24h, err, errlen) == -1 ||
	    get_number(q, "MaxSendRate", &a->max_rate, err, errlen) == -1 ||
	    get_number(q, "SentLast24Hours", &a->sent_24h, err,
	    errlen) == -1)
		goto done;
	if (a->max_24h < 0)
		a->max_24h = -1;
	if (a->max_rate < 0 || a->sent_24h < 0) {
		snprintf(err, errlen, "negative MaxSendRate or "
		    "SentLast24Hours");
		goto done;
	}
	rc = 0;
done:
	json_decref(j);
	return rc;
}

int
ses_api_parse_identity(const char *body, size_t len,
    struct ses_identity *id, char *err, size_t errlen)
{
	json_t *j, *d;
	int rc = -1;

	memset(id, 0, sizeof(*id));
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	if (get_bool(j, "VerifiedForSendingStatus", -1, &id->verified, err,
	    errlen) == -1 ||
	    get_string(j, "IdentityType", id->type, sizeof(id->type), err,
	    errlen) == -1 ||
	    get_string(j, "VerificationStatus", id->verification,
	    sizeof(id->verification), err, errlen) == -1)
		goto done;
	d = json_object_get(j, "DkimAttributes");
	if (d != NULL) {
		if (!json_is_object(d)) {
			snprintf(err, errlen, "DkimAttributes is not an "
			    "object");
			goto done;
		}
		if (get_string(d, "Status", id->dkim, sizeof(id->dkim), err,
		    errlen) == -1 ||
		    get_bool(d, "SigningEnabled", 0, &id->dkim_signing, err,
		    errlen) == -1)
			goto done;
	}
	rc = 0;
done:
	json_decref(j);
	return rc;
}

/* "AccessDeniedException:http://internal..." or "aws.x#Code" -> "Code" */
static void
set_code(char *out, size_t outlen, const char *s)
{
	const char *hash = strrchr(s, '#');
	size_t n;

	if (hash != NULL)
		s = hash + 1;
	n = strcspn(s, ":");
	snprintf(out, outlen, "%.*s", (int)n, s);
}

void
ses_api_parse_error(const char *error_type, const char *body, size_t len,
    struct ses_api_error *e)
{
	json_t *j, *v;
	const char *const msgs[] = { "message", "Message", "errorMessage" };
	const char *const codes[] = { "__type", "code", "Code" };
	size_t i;

	memset(e, 0, sizeof(*e));
	if (error_type != NULL && error_type[0] != '\0')
		set_code(e->code, sizeof(e->code), error_type);
	if (body == NULL || len == 0 ||
	    (j = json_loadb(body, len, 0, NULL)) == NULL)
		return;
	if (json_is_object(j)) {
		for (i = 0; i < 3 && e->code[0] == '\0'; i++)
			if ((v = json_object_get(j, codes[i])) != NULL &&
			    json_is_string(v))
				set_code(e->code, sizeof(e->code),
				    json_string_value(v));
		for (i = 0; i < 3; i++)
			if ((v = json_object_get(j, msgs[i])) != NULL &&
			    json_is_string(v)) {
				const char *m = json_string_value(v);
				size_t n = strcspn(m, "\r\n");

				/* the first line: SignatureDoesNotMatch's
				 * message goes on with the canonical request */
				snprintf(e->message, sizeof(e->message), "%.*s",
				    (int)n, m);
				break;
			}
	}
	json_decref(j);
}

enum ses_api_result
ses_api_classify(long status, const struct ses_api_error *e)
{
	const char *c = e != NULL ? e->code : "";

	if (status == 0)
		return SES_API_TRANSPORT;
	if (status >= 200 && status < 300)
		return SES_API_OK;
	if (status == 429 || strstr(c, "TooManyRequests") != NULL ||
	    strstr(c, "Throttl") != NULL)
		return SES_API_THROTTLED;
	if (status >= 500)
		return SES_API_SERVER;
	if (strncmp(c, "AccessDenied", 12) == 0)
		return SES_API_DENIED;
	if (status == 404 || strcmp(c, "NotFoundException") == 0)
		return SES_API_NOT_FOUND;
	if (strcmp(c, "SignatureDoesNotMatch") == 0 ||
	    strcmp(c, "UnrecognizedClientException") == 0 ||
	    strcmp(c, "InvalidSignatureException") == 0 ||
	    strcmp(c, "IncompleteSignatureException") == 0 ||
	    strcmp(c, "MissingAuthenticationTokenException") == 0 ||
	    strcmp(c, "ExpiredTokenException") == 0 ||
	    strcmp(c, "InvalidClientTokenId") == 0)
		return SES_API_AUTH;
	if (status == 403)
		return SES_API_DENIED;
	return SES_API_CLIENT;
}

const char *
ses_api_result_name(enum ses_api_result r)
{
	static const char *const names[SES_API_NRESULTS] = {
		"ok", "denied", "not_found", "throttled", "auth",
		"server_error", "client_error", "transport", "bad_answer",
	};

	return (unsigned)r < SES_API_NRESULTS ? names[r] : "unknown";
}

int
ses_api_arn_identity(const char *arn, char *out, size_t outlen,
    char *account)
{
	/* arn:PARTITION:ses:REGION:ACCOUNT:identity/NAME */
	const char *p = arn, *acct;
	int i, n;

	if (strncmp(p, "arn:", 4) != 0)
		return -1;
	p += 4;
	for (i = 0; i < 4; i++) {
		const char *colon = strchr(p, ':');

		if (colon == NULL)
			return -1;
		if (i == 1 && (colon - p != 3 || strncmp(p, "ses", 3) != 0))
			return -1;
		if (i == 3) {
			acct = p;
			if (colon - p != 12)
				return -1;
			if (account != NULL) {
				memcpy(account, acct, 12);
				account[12] = '\0';
			}
		}
		p = colon + 1;
	}
	if (strncmp(p, "identity/", 9) != 0 || p[9] == '\0')
		return -1;
	n = snprintf(out, outlen, "%s", p + 9);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
