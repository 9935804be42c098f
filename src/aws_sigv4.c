/*
 * aws_sigv4.c — AWS Signature Version 4 (see aws_sigv4.h).
 *
 * Canonical request:
 *   METHOD \n canonical-path \n canonical-query \n
 *   name:value \n ... (lower-case names, sorted) \n
 *   signed-names (';'-joined) \n hex(sha256(body))
 * canonical-path is the path as sent, URI-encoded once more ('/' kept);
 * the query pairs are sorted as sent.  String to sign:
 *   AWS4-HMAC-SHA256 \n X-Amz-Date \n date/region/service/aws4_request \n
 *   hex(sha256(canonical request))
 * and the key is HMAC("AWS4" secret, date) -> region -> service ->
 * "aws4_request".
 */
#include "aws_sigv4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "xmalloc.h"

struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void
hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(p != NULL ? p : (const void *)"", n, md);
	hex(md, sizeof(md), out);
}

static void
hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
	unsigned int len = 32;

	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
	    strlen(msg), out, &len) == NULL || len != 32)
		abort();	/* cannot fail with these arguments */
}

static int
unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int
aws_sigv4_uri_encode(const char *in, size_t inlen, int keep_slash,
    char *out, size_t outlen)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i, o = 0;

	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (unreserved(c) || (keep_slash && c == '/')) {
			if (o + 2 > outlen)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 4 > outlen)
				return -1;
			out[o++] = '%';
			out[o++] = digits[c >> 4];
			out[o++] = digits[c & 15];
		}
	}
	if (o + 1 > outlen)
		return -1;
	out[o] = '\0';
	return (int)o;
}

struct hdr {
	char name[64];
	char *value;	/* trimmed, inner runs of blanks made one space */
};

static int
hdr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hdr *)a)->name,
	    ((const struct hdr *)b)->name);
}

static int
add_hdr(struct hdr *h, size_t *n, const char *name, size_t namelen,
    const char *value, char *err, size_t errlen)
{
	struct sbuf v = { 0 };
	size_t i;
	int space = 0;

	if (*n >= AWS_SIGV4_MAX_HEADERS) {
		snprintf(err, errlen, "more than %d headers to sign",
		    AWS_SIGV4_MAX_HEADERS);
		return -1;
	}
	if (namelen == 0 || namelen >= sizeof(h->name)) {
		snprintf(err, errlen, "header name empty or too long");
		return -1;
	}
	for (i = 0; i < namelen; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '-' && c != '_') {
			snprintf(err, errlen, "header name '%.*s' is not a token",
			    (int)namelen, name);
			return -1;
		}
		h[*n].name[i] = (char)tolower(c);
	}
	h[*n].name[namelen] = '\0';
	for (i = 0; value[i] != '\0'; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c == '\r' || c == '\n') {
			free(v.p);
			snprintf(err, errlen, "header %s: line break in value",
			    h[*n].name);
			return -1;
		}
		if (c == ' ' || c == '\t') {
			space = v.len > 0;
			continue;
		}
		if (space)
			sb_add(&v, " ", 1);
		space = 0;
		sb_add(&v, (const char *)&value[i], 1);
	}
	if (v.len == 0) {
		snprintf(err, errlen, "header %s: empty value", h[*n].name);
		return -1;
	}
	for (i = 0; i < *n; i++)
		if (strcmp(h[i].name, h[*n].name) == 0) {
			free(v.p);
			snprintf(err, errlen, "header %s given twice",
			    h[*n].name);
			return -1;
		}
	h[*n].value = v.p;
	(*n)++;
	return 0;
}

struct qpair {
	const char *p;
	size_t len;
	size_t klen;	/* up to '=' or len */
};

static int
qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->p, y->p, n);

	if (c != 0)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	n = x->len < y->len ? x->len : y->len;
	c = memcmp(x->p, y->p, n);
	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int
canonical_query(struct sbuf *b, const char *q, char *err, size_t errlen)
{
	struct qpair pairs[64];
	size_t n = 0, i;
	const char *s = q;

	if (q == NULL || *q == '\0')
		return 0;
	for (;;) {
		const char *amp = strchr(s, '&');
		size_t len = amp != NULL ? (size_t)(amp - s) : strlen(s);
		const char *eq = memchr(s, '=', len);

		if (n == sizeof(pairs) / sizeof(pairs[0])) {
			snprintf(err, errlen, "more than 64 query parameters");
			return -1;
		}
		pairs[n].p = s;
		pairs[n].len = len;
		pairs[n].klen = eq != NULL ? (size_t)(eq - s) : len;
		n++;
		if (amp == NULL)
			break;
		s = amp + 1;
	}
	qsort(pairs, n, sizeof(pairs[0]), qpair_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0)
			sb_add(b, "&", 1);
		sb_add(b, pairs[i].p, pairs[i].klen);
		sb_add(b, "=", 1);
		if (pairs[i].klen < pairs[i].len)
			sb_add(b, pairs[i].p + pairs[i].klen + 1,
			    pairs[i].len - pairs[i].klen - 1);
	}
	return 0;
}

int
aws_sigv4_sign(const struct aws_sigv4_request *req,
    struct aws_sigv4_result *out, char *canonical, size_t canonicallen,
    char *err, size_t errlen)
{
	struct hdr h[AWS_SIGV4_MAX_HEADERS];
	size_t nh = 0, i;
	struct sbuf cr = { 0 }, signed_names = { 0 }, sts = { 0 }, key = { 0 };
	char date[9], crhash[65], *enc = NULL;
	unsigned char k[32];
	struct tm tm;
	int rc = -1, n;
	size_t plen;
	const char *path;

	memset(out, 0, sizeof(*out));
	if (gmtime_r(&req->now, &tm) == NULL ||
	    strftime(out->amz_date, sizeof(out->amz_date),
	    "%Y%m%dT%H%M%SZ", &tm) != 16) {
		snprintf(err, errlen, "time out of range");
		return -1;
	}
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	sha256_hex(req->body, req->bodylen, out->content_sha256);

	if (add_hdr(h, &nh, "host", 4, req->host, err, errlen) == -1 ||
	    add_hdr(h, &nh, "x-amz-date", 10, out->amz_date, err,
	    errlen) == -1)
		goto done;
	if (req->session_token != NULL &&
	    add_hdr(h, &nh, "x-amz-security-token", 20, req->session_token,
	    err, errlen) == -1)
		goto done;
	for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
		const char *colon = strchr(req->headers[i], ':');

		if (colon == NULL) {
			snprintf(err, errlen, "header without ':': %.40s",
			    req->headers[i]);
			goto done;
		}
		if (add_hdr(h, &nh, req->headers[i],
		    (size_t)(colon - req->headers[i]), colon + 1, err,
		    errlen) == -1)
			goto done;
	}
	qsort(h, nh, sizeof(h[0]), hdr_cmp);

	sb_str(&cr, req->method);
	sb_add(&cr, "\n", 1);
	path = req->path[0] != '\0' ? req->path : "/";
	plen = strlen(path);
	enc = xmalloc(3 * plen + 1);
	n = aws_sigv4_uri_encode(path, plen, 1, enc, 3 * plen + 1);
	if (n < 0)
		abort();	/* sized for the worst case */
	sb_add(&cr, enc, (size_t)n);
	sb_add(&cr, "\n", 1);
	if (canonical_query(&cr, req->query, err, errlen) == -1)
		goto done;
	sb_add(&cr, "\n", 1);
	for (i = 0; i < nh; i++) {
		sb_str(&cr, h[i].name);
		sb_add(&cr, ":", 1);
		sb_str(&cr, h[i].value);
		sb_add(&cr, "\n", 1);
		if (i > 0)
			sb_add(&signed_names, ";", 1);
		sb_str(&signed_names, h[i].name);
	}
	sb_add(&cr, "\n", 1);
	sb_str(&cr, signed_names.p);
	sb_add(&cr, "\n", 1);
	sb_str(&cr, out->content_sha256);
	if (canonical != NULL && canonicallen > 0)
		snprintf(canonical, canonicallen, "%s", cr.p);

	sha256_hex(cr.p, cr.len, crhash);
	sb_str(&sts, "AWS4-HMAC-SHA256\n");
	sb_str(&sts, out->amz_date);
	sb_add(&sts, "\n", 1);
	sb_str(&sts, date);
	sb_add(&sts, "/", 1);
	sb_str(&sts, req->region);
	sb_add(&sts, "/", 1);
	sb_str(&sts, req->service);
	sb_str(&sts, "/aws4_request\n");
	sb_str(&sts, crhash);

	sb_str(&key, "AWS4");
	sb_str(&key, req->secret_access_key);
	hmac(key.p, key.len, date, k);
	hmac(k, 32, req->region, k);
	hmac(k, 32, req->service, k);
	hmac(k, 32, "aws4_request", k);
	hmac(k, 32, sts.p, k);
	{
		char sig[65];

		hex(k, 32, sig);
		n = snprintf(out->authorization, sizeof(out->authorization),
		    "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
		    "SignedHeaders=%s, Signature=%s", req->access_key_id, date,
		    req->region, req->service, signed_names.p, sig);
		if (n < 0 || (size_t)n >= sizeof(out->authorization)) {
			snprintf(err, errlen, "Authorization header too long");
			goto done;
		}
	}
	rc = 0;
done:
	OPENSSL_cleanse(k, sizeof(k));
	if (key.p != NULL)
		OPENSSL_cleanse(key.p, key.len);
	free(key.p);
	for (i = 0; i < nh; i++)
		free(h[i].value);
	free(cr.p);
	free(signed_names.p);
	free(sts.p);
	free(enc);
	return rc;
}
