/*
 * http_client.h — asynchronous HTTPS requests on the event loop (libcurl
 * multi interface), signed with AWS SigV4 on request.
 *
 * One client per event base.  libcurl's socket and timer callbacks are
 * driven by libevent events: no call ever blocks, no thread is started
 * (name resolution uses curl's threaded resolver where libcurl was built
 * with it, Debian's is).  Connections are reused between requests to the
 * same host; many requests may be in flight.
 *
 * TLS as for the SMTP upstream: TLS 1.2 or later, the peer certificate
 * and the host name are always verified, trust anchors from ca_file or
 * (NULL) the system store.  Plain http:// is refused except to a loopback
 * or link-local address (tests, the instance metadata service, the ECS
 * credentials endpoint).  No redirects are followed.  Proxies: none for
 * loopback and link-local addresses, otherwise libcurl's usual
 * https_proxy/no_proxy environment applies.
 *
 * Signing (spec->sigv4 set): aws_sigv4.c computes the signature over the
 * path exactly as given, the Host header, X-Amz-Date, the session token
 * (sent as X-Amz-Security-Token) and the headers of spec->headers, with
 * the SHA-256 of the body; see aws_sigv4.h for why curl's own
 * CURLOPT_AWS_SIGV4 is not used.
 *
 * Ownership: the client copies what it needs from spec (url, headers,
 * body); the caller's spec may go away after http_request_start returns.
 * done is called exactly once per started request that is not cancelled,
 * always from the event loop, never from inside http_request_start; the
 * request is freed right after done returns.  done may start and cancel
 * other requests, but must not free the client.
 */
#ifndef SESRELAY_HTTP_CLIENT_H
#define SESRELAY_HTTP_CLIENT_H

#include <stddef.h>

struct event_base;
struct aws_credentials;
struct http_client;
struct http_request;

/* A response body larger than this fails the request. */
#define HTTP_RESPONSE_MAX (1024 * 1024)
/* spec->timeout_ms of 0 means this. */
#define HTTP_DEFAULT_TIMEOUT_MS 30000

/* NULL and a one-line reason in err if libcurl cannot be set up. */
struct http_client *http_client_new(struct event_base *base,
    const char *ca_file, char *err, size_t errlen);
/* Cancels every request still in flight (their done is not called). */
void http_client_free(struct http_client *client);

struct http_request_spec {
	const char *method;		/* "GET", "POST", "PUT", "DELETE" */
	const char *url;		/* already encoded as it must be sent and
					 * signed: https://host[:port]/path[?q] */
	const char *const *headers;	/* "Name: value", NULL-terminated or
					 * NULL; a value is never empty */
	const void *body;		/* bodylen bytes, sent as is */
	size_t bodylen;
	const struct aws_credentials *sigv4;	/* NULL: unsigned */
	const char *sigv4_scope;	/* "aws:amz:us-east-1:ses" */
	unsigned timeout_ms;		/* whole request; 0: the default */
};

struct http_response {
	long status;			/* HTTP status; 0 on a transport failure */
	const char *body;		/* NUL-terminated; "" if none */
	size_t bodylen;
	const char *content_type;	/* NULL if none */
	const char *error_type;		/* X-Amzn-ErrorType, NULL if none */
	const char *error;		/* transport failure text, or NULL */
	double seconds;			/* time the request took */
};

typedef void http_done_fn(const struct http_response *, void *arg);

/*
 * Start a request.  NULL (done will not be called) when spec is unusable:
 * a malformed or non-https URL (http only to loopback/link-local), an
 * unknown method, an empty or malformed header, a bad sigv4_scope; the
 * reason goes to err if it is not NULL.
 */
struct http_request *http_request_start(struct http_client *client,
    const struct http_request_spec *spec, http_done_fn *done, void *arg,
    char *err, size_t errlen);
/* Abort a request in flight; its done is not called. */
void http_request_cancel(struct http_request *req);

/* Requests in flight, for tests and shutdown. */
unsigned http_client_pending(const struct http_client *client);

#endif
