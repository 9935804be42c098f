/*
 * version.h — what this build is: sesrelay's version and the versions of
 * the libraries it runs with (as loaded at run time, which is what a
 * security update changes), for `sesrelayd -V`, `sesrelay -V` and the
 * metric sesrelay_build_info.  Every string is static and never NULL.
 */
#ifndef SESRELAY_VERSION_H
#define SESRELAY_VERSION_H

#include <stdio.h>

struct version_info {
	const char *version;	/* "0.1.0" */
	const char *openssl;	/* "3.0.17" */
	const char *libevent;	/* "2.1.12-stable" */
	const char *libcurl;	/* "7.88.1" */
	const char *jansson;	/* "2.14" */
	const char *sasl;	/* "2.1.28" */
};

void version_get(struct version_info *vi);
/* "sesrelayd 0.1.0\nOpenSSL 3.0.17 ...\n..." (one library per line). */
void version_print(FILE *f, const char *program);

#endif
