/*
 * tls.h — OpenSSL contexts for both sides, and certificate checks.
 *
 * Knows nothing of SMTP.  Client contexts always verify the chain and the
 * name; there is no switch to turn that off.
 */
#ifndef SESRELAY_TLS_H
#define SESRELAY_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* A client context: TLS 1.2 or later, peer verification required, trust
 * anchors from ca_file or (NULL) the system store.  NULL and a one-line
 * reason in err on failure. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);

/* A client SSL for one connection: the certificate must match verify_name
 * (no partial wildcards); SNI is sni_host unless it is an IP literal, in
 * which case verify_name is sent. */
SSL *tls_client_new(SSL_CTX *ctx, const char *sni_host,
    const char *verify_name);

/* A server context for inbound STARTTLS from cert_file and key_file
 * (PEM), TLS 1.2 or later.  NULL and a reason in err on failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
    char *err, size_t errlen);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for an established connection. */
void tls_describe(SSL *ssl, char *out, size_t outlen);
/* The peer certificate's subject and issuer, one line. */
void tls_describe_peer(SSL *ssl, char *out, size_t outlen);
/* Why a handshake failed: the verification error (naming verify_name) if
 * there was one, else ssl_err or the first queued OpenSSL error, else
 * "connection closed".  Clears the OpenSSL error queue. */
void tls_failure_reason(SSL *ssl, unsigned long ssl_err,
    const char *verify_name, char *out, size_t outlen);

#endif
