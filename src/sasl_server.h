/*
 * sasl_server.h — SMTP AUTH (RFC 4954) through Cyrus libsasl2, one
 * exchange step per call.
 *
 * The mechanisms and where the secrets live come from libsasl2's own
 * configuration for the application name sasl_service: the file
 * <sasl_service>.conf in /etc/sasl2 (Debian) or in $SASL_CONF_PATH, e.g.
 *     pwcheck_method: auxprop
 *     auxprop_plugin: sasldb
 *     sasldb_path: /etc/sasl2/sesrelay.sasldb
 *     mech_list: PLAIN LOGIN SCRAM-SHA-256
 * Knows nothing of SMTP sessions: the caller passes base64 lines in and
 * writes the base64 challenges out.  Nothing here logs a secret.
 */
#ifndef SESRELAY_SASL_SERVER_H
#define SESRELAY_SASL_SERVER_H

#include <stddef.h>

/* Once per process, before any session.  -1 and a reason on failure. */
int sasl_srv_init(const char *service, char *err, size_t errlen);
void sasl_srv_done(void);

struct sasl_srv;

/* A session's authentication state.  local/remote: "ip;port" or NULL
 * (unix sockets).  external_ssf: the TLS cipher strength, 0 without TLS.
 * plaintext_ok: offer mechanisms that send the password in clear (PLAIN,
 * LOGIN) — only over TLS or on loopback/unix connections. */
struct sasl_srv *sasl_srv_new(const char *service, const char *hostname,
    const char *local, const char *remote, unsigned external_ssf,
    int plaintext_ok);
void sasl_srv_free(struct sasl_srv *sa);

/* "PLAIN LOGIN" (space-separated), or NULL if nothing can be offered. */
const char *sasl_srv_mechs(struct sasl_srv *sa);

enum sasl_srv_result {
	SASL_SRV_OK,		/* authenticated: sasl_srv_user() */
	SASL_SRV_CONTINUE,	/* send "334 " + out, read the next line */
	SASL_SRV_FAIL,		/* wrong credentials: 535 5.7.8 */
	SASL_SRV_NOMECH,	/* mechanism not offered here: 504 5.5.4 */
	SASL_SRV_SYNTAX,	/* bad base64: 501 5.5.2 */
	SASL_SRV_TEMP		/* libsasl2 trouble: 454 4.7.0 */
};

/* Start mech with the optional initial response (base64, "=" for an
 * empty one, NULL for none).  out (base64) receives the challenge. */
enum sasl_srv_result sasl_srv_start(struct sasl_srv *sa, const char *mech,
    const char *initial, char *out, size_t outlen);
/* The client's next response line (base64). */
enum sasl_srv_result sasl_srv_step(struct sasl_srv *sa, const char *response,
    char *out, size_t outlen);
/* The authenticated user name, after SASL_SRV_OK. */
const char *sasl_srv_user(struct sasl_srv *sa);

#endif
