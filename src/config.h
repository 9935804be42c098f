/*
 * config.h — sesrelay.conf: one read-only snapshot of the whole
 * configuration: settings only.
 *
 * config_load() parses the INI file with inih, driven by one key table,
 * applies SESRELAY_<SECTION>_<KEY> environment overrides (which win over the
 * file), fills defaults and validates every value.  The credential
 * settings are kept as they are: aws_creds.h resolves them (with the
 * environment, the shared files and the role endpoints).  The result is never modified
 * afterwards: a reload loads a new snapshot and swaps it in; sessions keep
 * the snapshot they began with (config_ref/config_unref).
 *
 * Errors are reported as one line in err, naming the file, the line where
 * known, the section and key, and what is wrong, e.g.
 *   "/etc/sesrelay/sesrelay.conf:12: [relay] max_clients: not a number: 'lots'"
 *   "SESRELAY_RELAY_MODE: [relay] mode: must be spool or passthrough, not 'x'"
 * Warnings (an unknown but valid region, ...) are passed to log_warnx().
 */
#ifndef SESRELAY_CONFIG_H
#define SESRELAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "log.h"

#define CONFIG_ERR_MAX 512

enum relay_mode { RELAY_MODE_SPOOL, RELAY_MODE_PASSTHROUGH };
enum upstream_tls { UPSTREAM_TLS_STARTTLS, UPSTREAM_TLS_IMPLICIT };
enum auth_policy { AUTH_OFF, AUTH_OPTIONAL, AUTH_REQUIRED };
enum bounce_policy { BOUNCE_DSN, BOUNCE_NONE };
/* spool_dir's default, also where sendmail.sesrelay looks for the maildrop
 * when it may not read the configuration */
#define CONFIG_DEFAULT_SPOOL_DIR "/var/spool/sesrelay"
enum sendmail_fallback { SENDMAIL_FALLBACK_TEMPFAIL, SENDMAIL_FALLBACK_SPOOL };
enum ses_transport { TRANSPORT_SMTP, TRANSPORT_API };
enum sandbox_policy { SANDBOX_ALLOW, SANDBOX_REFUSE };

/* One entry of [relay] listen. */
struct listen_spec {
	char *text;			/* as written, for logs */
	int is_unix;
	char *unix_path;		/* is_unix: the socket path */
	struct sockaddr_storage addr;	/* !is_unix: numeric address + port */
	socklen_t addrlen;
};

/* One entry of [relay] allow: a network in CIDR form. */
struct cidr {
	int family;			/* AF_INET or AF_INET6 */
	uint8_t addr[16];		/* network bytes (4 used for AF_INET) */
	unsigned prefix;		/* 0..32 or 0..128 */
};

/* One [sender P] section.  Unset values are NULL. */
struct sender_rule {
	char *pattern;			/* "user@domain", "domain" or "*", lower case */
	char *source_arn;
	char *from_arn;
	char *return_path_arn;
	char *configuration_set;
	/* who may use this sender (envelope or From:): SASL user names and
	 * client networks; neither set = anyone allowed to relay */
	char **users;
	size_t nusers;
	struct cidr *networks;
	size_t nnetworks;
};

struct config {
	char *path;			/* the file it was loaded from */

	/* [relay] */
	struct listen_spec *listen;	/* default: 127.0.0.1:25 [::1]:25 */
	size_t nlisten;
	enum relay_mode mode;		/* default spool */
	char *spool_dir;		/* default /var/spool/sesrelay */
	char *hostname;			/* default: gethostname() */
	struct cidr *allow;		/* default 127.0.0.0/8 ::1/128 */
	size_t nallow;
	unsigned max_clients;		/* default 500 */
	uint64_t max_message_size;	/* bytes; default 40M = 41943040 */
	unsigned max_recipients;	/* default 1000 */
	unsigned timeout;		/* seconds; default 300 */
	char *tls_cert;			/* NULL unless set; both or neither */
	char *tls_key;
	enum auth_policy auth;		/* default off */
	char *sasl_service;		/* default "sesrelay" */
	char *user;			/* NULL: do not drop privileges */
	enum log_format log_format;	/* default text */
	char *metrics_listen;		/* NULL: off; else "host:port" */
	enum sendmail_fallback sendmail_fallback;	/* default tempfail;
					 * spool: spool_dir/maildrop (maildrop.h) */

	/* [ses] */
	enum ses_transport transport;	/* default smtp: SES's SMTP interface
					 * (long-lived IAM user keys only);
					 * api: SES API v2 SendEmail (any
					 * credentials, roles included) */
	char *region;			/* default: AWS_REGION, then us-east-1 */
	char *endpoint_host;		/* default email-smtp.<region>.amazonaws.com */
	unsigned endpoint_port;		/* default 587 (starttls) / 465 (implicit) */
	enum upstream_tls tls;		/* default starttls */
	char *tls_verify_name;		/* default: the regional host name, or the
					 * FIPS host when endpoint is the FIPS one */
	char *ca_file;			/* NULL: the system trust store */
	/* credential settings, as configured (NULL unless set); the chain
	 * that uses them is aws_creds.h's */
	char *access_key_id;
	char *secret_access_key;	/* secret: wiped when freed */
	char *secret_access_key_file;
	char *smtp_password_file;
	char *aws_profile;		/* as configured (NULL: AWS_PROFILE/default) */
	unsigned max_connections;	/* default 4 */
	double max_send_rate;		/* recipients per second; 0 = off */
	int max_send_rate_auto;		/* max_send_rate = auto: the rate comes
					 * from GetAccount (account.h);
					 * max_send_rate is then 0 */
	char *api_endpoint;		/* SES API v2 base URL; NULL: https://
					 * email.<region>.amazonaws.com */
	unsigned account_poll;		/* seconds; default 5m; 0 (off): the
					 * daemon does not watch the account */
	unsigned instances;		/* relays sharing the account; default 1 */
	enum sandbox_policy sandbox_recipients;	/* default allow */
	char *configuration_set;	/* NULL unless set */
	char *message_tags;		/* validated "k=v, k2=v2"; NULL unless set */
	char *null_sender;		/* NULL: MAIL FROM:<> is refused */
	unsigned session_messages;	/* default 300 */

	/* [queue] */
	unsigned retry_min;		/* seconds; default 5 */
	unsigned retry_max;		/* seconds; default 1200 */
	unsigned lifetime;		/* seconds; default 5d = 432000 */
	enum bounce_policy bounce;	/* default dsn */

	/* [sender P] sections, in file order */
	struct sender_rule *senders;
	size_t nsenders;

	void *origins;			/* private: where each key was set */
	int refs;			/* config_ref/config_unref */
};

/*
 * Load and validate path.  On success returns a snapshot with one
 * reference.  On failure returns NULL and writes one line to err.
 * need_credentials is no longer used (the credential chain is
 * aws_creds.h's); it is kept so that callers need not change.
 * Refused here: an access_key_id that is not one or is temporary (ASIA),
 * a secret_access_key in a file others can read.
 */
struct config *config_load(const char *path, int need_credentials,
    char err[CONFIG_ERR_MAX]);

struct config *config_ref(struct config *cfg);
/* Where [section] key was set, for messages: "FILE:LINE", the
 * SESRELAY_* variable, or the file's path if it was not set. */
const char *config_key_where(const struct config *cfg, const char *section,
    const char *key, char *buf, size_t len);
/* Drop a reference; the last one frees everything, wiping secrets. */
void config_unref(struct config *cfg);

/*
 * The [sender P] rule for address (case-insensitive): an exact
 * "user@domain" pattern beats a "domain" pattern, which beats a pattern
 * for a parent domain ("example.com" matches "a@mail.example.com"), which
 * beats "*".  NULL if nothing matches or address is NULL/empty.
 */
const struct sender_rule *config_sender_match(const struct config *cfg,
    const char *address);

/*
 * 1 if a client may use address as envelope sender or From: address:
 * the [sender P] rule that matches address (config_sender_match) has no
 * users and no networks, or auth_user (the SASL name, NULL if the client
 * did not authenticate) is one of its users, or client (NULL: unknown;
 * AF_UNIX never matches) is inside one of its networks.  No rule: 1.
 */
int config_sender_permitted(const struct config *cfg, const char *address,
    const char *auth_user, const struct sockaddr *client);
/* 1 if some [sender P] rule has users or networks: not every client may
 * use every address. */
int config_sender_restricted(const struct config *cfg);

/* 1 if sa (AF_INET/AF_INET6; v4-mapped v6 counts as v4) is inside one of
 * cfg->allow; AF_UNIX is always allowed. */
int config_client_allowed(const struct config *cfg, const struct sockaddr *sa);

/* The i-th key of the key table, in the order of the sample file, with
 * its section name in *section (may be NULL); NULL past the last key.
 * The tests check the sample config and the manual against this list. */
const char *config_key_name(size_t i, const char **section);

/* Parsers for the value syntaxes, exported for tests and for other tools.
 * Each returns 0, or -1 on a malformed value. */
int config_parse_size(const char *s, uint64_t *out);		/* 10, 64K, 40M */
int config_parse_duration(const char *s, unsigned *out);	/* 30, 5s, 5m, 2h, 5d */

#endif
