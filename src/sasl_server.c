/* sasl_server.c — see sasl_server.h. */
#include "sasl_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include "log.h"
#include "xmalloc.h"

/* RFC 4954 lines are base64, at most 12288 octets with the CRLF (and
 * "AUTH mech "): a decoded exchange step is never larger than this. */
#define STEP_MAX (12288 / 4 * 3)

struct sasl_srv {
	sasl_conn_t *conn;
	char *mechs;
	char *user;
};

static int
sasl_log_cb(void *context, int level, const char *message)
{
	/* libsasl2's own messages; it does not log passwords */
	if (level <= SASL_LOG_ERR)
		log_warnx("sasl: %s", message);
	else if (level <= SASL_LOG_NOTE)
		log_info("sasl: %s", message);
	else
		log_debug("sasl: %s", message);
	return SASL_OK;
}

static const sasl_callback_t callbacks[] = {
	{ SASL_CB_LOG, (int (*)(void))(void (*)(void))sasl_log_cb, NULL },
	{ SASL_CB_LIST_END, NULL, NULL }
};

int
sasl_srv_init(const char *service, char *err, size_t errlen)
{
	int rc = sasl_server_init(callbacks, service);
	if (rc != SASL_OK) {
		snprintf(err, errlen, "cannot start SASL (%s): %s", service,
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	return 0;
}

void
sasl_srv_done(void)
{
	sasl_server_done();
}

struct sasl_srv *
sasl_srv_new(const char *service, const char *hostname, const char *local,
    const char *remote, unsigned external_ssf, int plaintext_ok)
{
	struct sasl_srv *sa = xcalloc(1, sizeof(*sa));
	if (sasl_server_new(service, hostname, NULL, local, remote, NULL, 0,
	    &sa->conn) != SASL_OK) {
		free(sa);
		return NULL;
	}
	sasl_ssf_t ssf = external_ssf;
	sasl_setprop(sa->conn, SASL_SSF_EXTERNAL, &ssf);
	sasl_security_properties_t props;
	memset(&props, 0, sizeof(props));
	props.max_ssf = 0;		/* no SASL security layer */
	props.maxbufsize = 0;
	props.security_flags = SASL_SEC_NOANONYMOUS |
	    (plaintext_ok ? 0 : SASL_SEC_NOPLAINTEXT);
	sasl_setprop(sa->conn, SASL_SEC_PROPS, &props);
	return sa;
}

void
sasl_srv_free(struct sasl_srv *sa)
{
	if (sa == NULL)
		return;
	sasl_dispose(&sa->conn);
	free(sa->mechs);
	free(sa->user);
	free(sa);
}

const char *
sasl_srv_mechs(struct sasl_srv *sa)
{
	const char *list;
	unsigned len;
	int count;

	if (sa->mechs != NULL)
		return sa->mechs[0] != '\0' ? sa->mechs : NULL;
	if (sasl_listmech(sa->conn, NULL, "", " ", "", &list, &len,
	    &count) != SASL_OK || count == 0)
		sa->mechs = xstrdup("");
	else
		sa->mechs = xstrndup(list, len);
	return sa->mechs[0] != '\0' ? sa->mechs : NULL;
}

static enum sasl_srv_result
result_of(struct sasl_srv *sa, int rc, const char *data, unsigned len,
    char *out, size_t outlen)
{
	unsigned olen;

	switch (rc) {
	case SASL_OK: {
		const void *user = NULL;
		if (sasl_getprop(sa->conn, SASL_USERNAME, &user) != SASL_OK ||
		    user == NULL)
			return SASL_SRV_FAIL;
		free(sa->user);
		sa->user = xstrdup(user);
		return SASL_SRV_OK;
	}
	case SASL_CONTINUE:
		if (sasl_encode64(data, len, out, (unsigned)outlen,
		    &olen) != SASL_OK)
			return SASL_SRV_TEMP;
		return SASL_SRV_CONTINUE;
	case SASL_NOMECH:
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		return SASL_SRV_NOMECH;
	case SASL_BADPROT:
	case SASL_BADPARAM:
		return SASL_SRV_SYNTAX;
	case SASL_TRYAGAIN:
	case SASL_UNAVAIL:
	case SASL_NOMEM:
		return SASL_SRV_TEMP;
	default:
		return SASL_SRV_FAIL;
	}
}

/* Decode a base64 line into buf; "=" is the empty response. */
static int
decode(const char *b64, char *buf, unsigned *len)
{
	if (strcmp(b64, "=") == 0) {
		*len = 0;
		return 0;
	}
	if (sasl_decode64(b64, (unsigned)strlen(b64), buf, STEP_MAX,
	    len) != SASL_OK)
		return -1;
	return 0;
}

enum sasl_srv_result
sasl_srv_start(struct sasl_srv *sa, const char *mech, const char *initial,
    char *out, size_t outlen)
{
	char buf[STEP_MAX + 1];
	unsigned len = 0;
	const char *data;
	unsigned dlen;
	enum sasl_srv_result r;

	if (initial != NULL && decode(initial, buf, &len) != 0)
		return SASL_SRV_SYNTAX;
	const char *mechs = sasl_srv_mechs(sa);
	if (mechs == NULL)
		return SASL_SRV_NOMECH;
	int rc = sasl_server_start(sa->conn, mech, initial != NULL ? buf : NULL,
	    len, &data, &dlen);
	r = result_of(sa, rc, data, dlen, out, outlen);
	wipe(buf, sizeof(buf));
	return r;
}

enum sasl_srv_result
sasl_srv_step(struct sasl_srv *sa, const char *response, char *out,
    size_t outlen)
{
	char buf[STEP_MAX + 1];
	unsigned len = 0;
	const char *data;
	unsigned dlen;
	enum sasl_srv_result r;

	if (decode(response, buf, &len) != 0)
		return SASL_SRV_SYNTAX;
	int rc = sasl_server_step(sa->conn, buf, len, &data, &dlen);
	r = result_of(sa, rc, data, dlen, out, outlen);
	wipe(buf, sizeof(buf));
	return r;
}

const char *
sasl_srv_user(struct sasl_srv *sa)
{
	return sa->user;
}
