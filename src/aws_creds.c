/*
 * aws_creds.c — the static part of the credential chain, minimal: the
 * access key and secret config.c resolved (config keys, key files, the
 * environment, the shared credentials file).  The CREDS branch replaces
 * this file with the whole chain and the refresh of temporary
 * credentials (interfaces.md section 2).
 */
#include "aws_creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "xmalloc.h"

struct aws_credentials *
aws_credentials_ref(struct aws_credentials *c)
{
	if (c != NULL)
		c->refs++;
	return c;
}

void
aws_credentials_unref(struct aws_credentials *c)
{
	if (c == NULL)
		return;
	if (c->refs <= 0)
		fatalx("aws_credentials_unref: already freed");
	if (--c->refs > 0)
		return;
	free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	free(c);
}

struct aws_credentials *
aws_creds_resolve_static(const struct config *cfg, char *err, size_t errlen)
{
	struct aws_credentials *c;

	if (cfg->access_key_id == NULL || cfg->secret_access_key == NULL) {
		snprintf(err, errlen, "no secret access key (%s holds an SMTP "
		    "password only, which cannot sign SES API requests)",
		    cfg->credential_source != NULL ? cfg->credential_source :
		    "the configuration");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->access_key_id = xstrdup(cfg->access_key_id);
	c->secret_access_key = xstrdup(cfg->secret_access_key);
	snprintf(c->source, sizeof(c->source), "%s",
	    cfg->credential_source != NULL ? cfg->credential_source : "config");
	c->refs = 1;
	return c;
}
