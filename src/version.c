/* version.c — see version.h. */
#include "version.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sasl/sasl.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

void
version_get(struct version_info *vi)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	const char *sasl = NULL;

	sasl_version_info(NULL, &sasl, NULL, NULL, NULL, NULL);
	vi->version = PACKAGE_VERSION;
	vi->openssl = OpenSSL_version(OPENSSL_VERSION_STRING);
	vi->libevent = event_get_version();
	vi->libcurl = cv != NULL && cv->version != NULL ? cv->version :
	    "unknown";
	vi->jansson = jansson_version_str();
	vi->sasl = sasl != NULL ? sasl : "unknown";
}

void
version_print(FILE *f, const char *program)
{
	struct version_info vi;
	version_get(&vi);
	fprintf(f, "%s %s\n", program, vi.version);
	fprintf(f, "OpenSSL %s (built with %s)\n", vi.openssl,
	    OPENSSL_VERSION_TEXT);
	fprintf(f, "libevent %s\n", vi.libevent);
	fprintf(f, "libcurl %s\n", vi.libcurl);
	fprintf(f, "jansson %s\n", vi.jansson);
	fprintf(f, "libsasl2 %s\n", vi.sasl);
}
