/*
 * check_config.c — unit tests for config.c.
 *
 * Every test writes its files (mkstemp) in a directory of its own, which
 * is also its $HOME, and starts with no AWS_* or SESRELAY_* variable set,
 * so that nothing of the machine running the tests (~/.aws/credentials,
 * AWS_PROFILE, ...) can leak in.
 */
#include <check.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws_creds.h"
#include "config.h"
#include "ses_auth.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The AWS documentation's example keys and SPEC.md's vector. */
#define DOC_KEY_ID	"AKIAIOSFODNN7EXAMPLE"
#define DOC_SECRET	"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_PW_USE1	"BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9"
#define DOC_PW_USW2	"BF2PynzbSCAjX08zhZZnP/kW+T9P5zs/1Er0pi5vTEmd"
#define DOC_PW_EUW1	"BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk"
#define X50	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X500	X50 X50 X50 X50 X50 X50 X50 X50 X50 X50
/* base64(0x02 || 00 01 .. 1f): a retired version 2 password */
#define V2_PASSWORD	"AgABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"

/* The SMTP login of the last run_scenario with need_creds (the credential
 * chain is aws_creds.c's now; these cases go through it as the daemon
 * does), or NULL. */
static struct ses_smtp_login *cur_login;

static char topdir[PATH_MAX / 2];	/* removed at the end */
static char testdir[PATH_MAX];	/* this test's own, and its $HOME */

/* --- fixtures and helpers ----------------------------------------------- */

extern char **environ;

/* Unset every AWS_* and SESRELAY_* variable. */
static void
clear_env(void)
{
	char name[256];
	int again = 1;

	while (again) {
		char **ep;

		again = 0;
		for (ep = environ; ep != NULL && *ep != NULL; ep++) {
			size_t len = strcspn(*ep, "=");

			if ((strncmp(*ep, "AWS_", 4) == 0 ||
			    strncmp(*ep, "SESRELAY_", 9) == 0) &&
			    len < sizeof(name)) {
				memcpy(name, *ep, len);
				name[len] = '\0';
				unsetenv(name);
				again = 1;
				break;
			}
		}
	}
}

static void
setup(void)
{
	clear_env();
	unsetenv("CREDENTIALS_DIRECTORY");
	snprintf(testdir, sizeof(testdir), "%s/testXXXXXX", topdir);
	ck_assert_ptr_nonnull(mkdtemp(testdir));
	ck_assert_int_eq(setenv("HOME", testdir, 1), 0);
}

static void
teardown(void)
{
	clear_env();
	unsetenv("CREDENTIALS_DIRECTORY");
}

/* Write len bytes (strlen if len is 0) to a new file; returns its path. */
static char *
mkfile(const char *prefix, const char *data, size_t len, mode_t mode)
{
	char *path;
	int fd;

	ck_assert_int_ne(asprintf(&path, "%s/%sXXXXXX", testdir, prefix), -1);
	ck_assert_int_ne(fd = mkstemp(path), -1);
	if (len == 0)
		len = strlen(data);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

struct subst {
	const char *token;
	const char *value;
};

/* tmpl with each token replaced by its value (allocated). */
static char *
expand(const char *tmpl, const struct subst *subs, size_t nsubs)
{
	size_t cap = strlen(tmpl) + 1, len = 0, i;
	char *out = malloc(cap);

	ck_assert_ptr_nonnull(out);
	while (*tmpl != '\0') {
		const char *val = NULL;
		size_t tlen = 1, vlen;

		for (i = 0; i < nsubs; i++)
			if (subs[i].value != NULL && strncmp(tmpl,
			    subs[i].token, strlen(subs[i].token)) == 0) {
				val = subs[i].value;
				tlen = strlen(subs[i].token);
				break;
			}
		vlen = val != NULL ? strlen(val) : 1;
		if (len + vlen + 1 > cap) {
			cap = (len + vlen + 1) * 2;
			ck_assert_ptr_nonnull(out = realloc(out, cap));
		}
		memcpy(out + len, val != NULL ? val : tmpl, vlen);
		len += vlen;
		tmpl += tlen;
	}
	out[len] = '\0';
	return out;
}

/*
 * One load: a config file and the files and variables around it.  In
 * conf, env values and expectations, @SECRET@, @PW@, @CREDS@, @CERT@,
 * @KEY@ and @DIR@ name the files written for it, @CONF@ the config.
 */
struct scenario {
	const char	*conf;
	size_t		 conflen;	/* 0: strlen(conf) */
	mode_t		 confmode;	/* 0: 0600 */
	const char	*secret;	/* @SECRET@ */
	mode_t		 secretmode;	/* 0: 0600 */
	const char	*pw;		/* @PW@ */
	const char	*creds;		/* AWS_SHARED_CREDENTIALS_FILE */
	mode_t		 credsmode;	/* 0: 0600 */
	int		 creds_in_home;	/* creds go to ~/.aws/credentials */
	const char	*env[6];	/* "NAME=value" */
	int		 need_creds;
};

enum { SUB_CONF, SUB_SECRET, SUB_PW, SUB_CREDS, SUB_CERT, SUB_KEY,
    SUB_DIR, NSUBS };

struct run {
	struct config	*cfg;
	char		 err[CONFIG_ERR_MAX];
	struct subst	 subs[NSUBS];
	char		*paths[NSUBS];
};

static void
run_scenario(const struct scenario *sc, struct run *r)
{
	static const char *const tokens[NSUBS] = {
		"@CONF@", "@SECRET@", "@PW@", "@CREDS@", "@CERT@", "@KEY@",
		"@DIR@"
	};
	char *conf;
	size_t i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < NSUBS; i++)
		r->subs[i].token = tokens[i];
	r->paths[SUB_CERT] = mkfile("cert", "dummy certificate\n", 0, 0600);
	r->paths[SUB_KEY] = mkfile("key", "dummy key\n", 0, 0600);
	r->paths[SUB_DIR] = strdup(testdir);
	if (sc->secret != NULL)
		r->paths[SUB_SECRET] = mkfile("secret", sc->secret, 0,
		    sc->secretmode ? sc->secretmode : 0600);
	if (sc->pw != NULL)
		r->paths[SUB_PW] = mkfile("pw", sc->pw, 0, 0600);
	if (sc->creds != NULL && sc->creds_in_home) {
		ck_assert_int_ne(asprintf(&r->paths[SUB_CREDS],
		    "%s/.aws", testdir), -1);
		ck_assert_int_eq(mkdir(r->paths[SUB_CREDS], 0700), 0);
		free(r->paths[SUB_CREDS]);
		ck_assert_int_ne(asprintf(&r->paths[SUB_CREDS],
		    "%s/.aws/credentials", testdir), -1);
		FILE *fp = fopen(r->paths[SUB_CREDS], "w");
		ck_assert_ptr_nonnull(fp);
		fputs(sc->creds, fp);
		fclose(fp);
		chmod(r->paths[SUB_CREDS], sc->credsmode ? sc->credsmode :
		    0600);
	} else if (sc->creds != NULL) {
		r->paths[SUB_CREDS] = mkfile("creds", sc->creds, 0,
		    sc->credsmode ? sc->credsmode : 0600);
		setenv("AWS_SHARED_CREDENTIALS_FILE", r->paths[SUB_CREDS], 1);
	}
	for (i = 1; i < NSUBS; i++)
		r->subs[i].value = r->paths[i];
	if (sc->conflen > 0)
		conf = NULL;
	else
		conf = expand(sc->conf != NULL ? sc->conf : "", r->subs,
		    NSUBS);
	r->paths[SUB_CONF] = mkfile("conf", conf != NULL ? conf : sc->conf,
	    conf != NULL ? 0 : sc->conflen, sc->confmode ? sc->confmode :
	    0600);
	r->subs[SUB_CONF].value = r->paths[SUB_CONF];
	free(conf);
	for (i = 0; i < NELEM(sc->env) && sc->env[i] != NULL; i++) {
		char *e = expand(sc->env[i], r->subs, NSUBS);
		char *eq = strchr(e, '=');

		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		ck_assert_int_eq(setenv(e, eq + 1, 1), 0);
		free(e);
	}
	r->err[0] = '\0';
	r->cfg = config_load(r->paths[SUB_CONF], sc->need_creds, r->err);
	ses_smtp_login_unref(cur_login);
	cur_login = NULL;
	if (r->cfg != NULL && sc->need_creds &&
	    (cur_login = aws_creds_smtp_login_for(r->cfg, r->err,
	    sizeof(r->err))) == NULL) {
		config_unref(r->cfg);
		r->cfg = NULL;
	}
}

static void
run_free(struct run *r)
{
	size_t i;

	config_unref(r->cfg);
	ses_smtp_login_unref(cur_login);
	cur_login = NULL;
	for (i = 0; i < NSUBS; i++)
		free(r->paths[i]);
}

/* Load conf (no credentials needed) and insist that it works. */
static struct config *
load_ok(const char *conf, struct run *r)
{
	struct scenario sc = { .conf = conf };

	run_scenario(&sc, r);
	ck_assert_msg(r->cfg != NULL, "config_load failed: %s", r->err);
	return r->cfg;
}

static void
assert_err_has(struct run *r, const char *tmpl)
{
	char *want = expand(tmpl, r->subs, NSUBS);

	ck_assert_msg(strstr(r->err, want) != NULL,
	    "error '%s' does not contain '%s'", r->err, want);
	free(want);
}

static void
assert_one_line(const char *err)
{
	ck_assert_msg(err[0] != '\0', "empty error message");
	ck_assert_msg(strchr(err, '\n') == NULL, "newline in '%s'", err);
	ck_assert_uint_lt(strlen(err), CONFIG_ERR_MAX);
}

static const char *
default_hostname(char *buf, size_t len)
{
	const char *p;

	if (gethostname(buf, len) == -1)
		buf[0] = '\0';
	buf[len - 1] = '\0';
	for (p = buf; *p != '\0'; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && !strchr("-_.", *p))
			break;
	if (buf[0] == '\0' || *p != '\0' || buf[0] == '.' || buf[0] == '-')
		snprintf(buf, len, "localhost");
	return buf;
}

static void
assert_inet(const struct listen_spec *l, int family, const char *addr,
    unsigned port)
{
	char buf[INET6_ADDRSTRLEN];

	ck_assert_int_eq(l->is_unix, 0);
	ck_assert_int_eq(l->addr.ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&l->addr;

		ck_assert_uint_eq(l->addrlen, sizeof(*sin));
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		ck_assert_uint_eq(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)&l->addr;

		ck_assert_uint_eq(l->addrlen, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
	}
	ck_assert_str_eq(buf, addr);
}

static void
assert_cidr(const struct cidr *c, int family, const char *addr,
    unsigned prefix)
{
	char buf[INET6_ADDRSTRLEN];

	ck_assert_int_eq(c->family, family);
	inet_ntop(family, c->addr, buf, sizeof(buf));
	ck_assert_str_eq(buf, addr);
	ck_assert_uint_eq(c->prefix, prefix);
}

static void
expect_password(const char *secret, const char *region, const char *got)
{
	char want[SES_SMTP_PASSWORD_LEN + 1];

	ck_assert_int_eq(ses_auth_smtp_password(secret, strlen(secret), region,
	    want), 0);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
}

/* --- every key ---------------------------------------------------------- */

static const char full_conf[] =
    "; every key, none at its default\n"
    "[relay]\n"
    "listen = 192.0.2.1:2525 [2001:db8::1]:587 unix:/run/sesrelay/smtp.sock\n"
    "mode = passthrough\n"
    "spool_dir = /var/tmp/sesrelay-spool\n"
    "hostname = mx.example.org\n"
    "allow = 10.0.0.0/8 192.168.1.7 2001:db8::/32\n"
    "max_clients = 42\n"
    "max_message_size = 10M\n"
    "max_recipients = 50\n"
    "timeout = 2m\n"
    "tls_cert = @CERT@\n"
    "tls_key = @KEY@\n"
    "auth = required\n"
    "sasl_service = smtp\n"
    "user = root\n"
    "log_format = json\n"
    "metrics_listen = 127.0.0.1:9925\n"
    "\n"
    "[ses]\n"
    "region = eu-west-1\n"
    "endpoint = vpce-0123456789abcdef0-abcdefgh.email-smtp.eu-west-1.vpce."
    "amazonaws.com:2587\n"
    "tls = starttls\n"
    "tls_verify_name = smtp.example.net\n"
    "ca_file = @CERT@\n"
    "access_key_id = " DOC_KEY_ID "\n"
    "secret_access_key_file = @SECRET@\n"
    "secret_access_key = notTheOneInUse\n"
    "smtp_password_file = @PW@\n"
    "aws_profile = work\n"
    "max_connections = 8\n"
    "max_send_rate = 14.5\n"
    "configuration_set = my-set_1\n"
    "message_tags = team=mail, env=prod\n"
    "null_sender = bounces@example.org\n"
    "session_messages = 100\n"
    "\n"
    "[queue]\n"
    "retry_min = 10s\n"
    "retry_max = 1h\n"
    "lifetime = 2d\n"
    "bounce = none\n"
    "\n"
    "[sender alice@example.org]\n"
    "source_arn = arn:aws:ses:eu-west-1:123456789012:identity/alice@"
    "example.org\n"
    "from_arn = arn:aws:ses:eu-west-1:123456789012:identity/example.org\n"
    "return_path_arn = arn:aws:ses:eu-west-1:123456789012:identity/"
    "bounce.example.org\n"
    "configuration_set = alice\n"
    "[sender Example.NET]\n"
    "arn = arn:aws:ses:eu-west-1:210987654321:identity/example.net\n"
    "[sender *]\n"
    "configuration_set =\n";

START_TEST(test_every_key)
{
	struct scenario sc = {
		.conf = full_conf, .secret = DOC_SECRET "\n",
		.pw = DOC_PW_EUW1 "\n", .need_creds = 1,
	};
	struct run r;
	struct config *c;
	const struct sender_rule *s;

	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	c = r.cfg;
	ck_assert_str_eq(c->path, r.paths[SUB_CONF]);
	ck_assert_int_eq(c->refs, 1);

	ck_assert_uint_eq(c->nlisten, 3);
	assert_inet(&c->listen[0], AF_INET, "192.0.2.1", 2525);
	ck_assert_str_eq(c->listen[0].text, "192.0.2.1:2525");
	assert_inet(&c->listen[1], AF_INET6, "2001:db8::1", 587);
	ck_assert_str_eq(c->listen[1].text, "[2001:db8::1]:587");
	ck_assert_int_eq(c->listen[2].is_unix, 1);
	ck_assert_str_eq(c->listen[2].unix_path, "/run/sesrelay/smtp.sock");
	ck_assert_str_eq(c->listen[2].text, "unix:/run/sesrelay/smtp.sock");
	ck_assert_int_eq(c->mode, RELAY_MODE_PASSTHROUGH);
	ck_assert_str_eq(c->spool_dir, "/var/tmp/sesrelay-spool");
	ck_assert_str_eq(c->hostname, "mx.example.org");
	ck_assert_uint_eq(c->nallow, 3);
	assert_cidr(&c->allow[0], AF_INET, "10.0.0.0", 8);
	assert_cidr(&c->allow[1], AF_INET, "192.168.1.7", 32);
	assert_cidr(&c->allow[2], AF_INET6, "2001:db8::", 32);
	ck_assert_uint_eq(c->max_clients, 42);
	ck_assert_uint_eq(c->max_message_size, 10 * 1024 * 1024);
	ck_assert_uint_eq(c->max_recipients, 50);
	ck_assert_uint_eq(c->timeout, 120);
	ck_assert_str_eq(c->tls_cert, r.paths[SUB_CERT]);
	ck_assert_str_eq(c->tls_key, r.paths[SUB_KEY]);
	ck_assert_int_eq(c->auth, AUTH_REQUIRED);
	ck_assert_str_eq(c->sasl_service, "smtp");
	ck_assert_str_eq(c->user, "root");
	ck_assert_int_eq(c->log_format, LOG_FORMAT_JSON);
	ck_assert_str_eq(c->metrics_listen, "127.0.0.1:9925");

	ck_assert_str_eq(c->region, "eu-west-1");
	ck_assert_str_eq(c->endpoint_host, "vpce-0123456789abcdef0-abcdefgh."
	    "email-smtp.eu-west-1.vpce.amazonaws.com");
	ck_assert_uint_eq(c->endpoint_port, 2587);
	ck_assert_int_eq(c->tls, UPSTREAM_TLS_STARTTLS);
	ck_assert_str_eq(c->tls_verify_name, "smtp.example.net");
	ck_assert_str_eq(c->ca_file, r.paths[SUB_CERT]);
	/* smtp_password_file comes first in the chain */
	ck_assert_str_eq(cur_login->user, DOC_KEY_ID);
	ck_assert_str_eq(cur_login->password, DOC_PW_EUW1);
	ck_assert_ptr_nonnull(strstr(cur_login->source,
	    "smtp_password_file"));
	ck_assert_ptr_nonnull(strstr(cur_login->source, r.paths[SUB_PW]));
	ck_assert_str_eq(c->aws_profile, "work");
	ck_assert_uint_eq(c->max_connections, 8);
	ck_assert(c->max_send_rate == 14.5);
	ck_assert_str_eq(c->configuration_set, "my-set_1");
	ck_assert_str_eq(c->message_tags, "team=mail, env=prod");
	ck_assert_str_eq(c->null_sender, "bounces@example.org");
	ck_assert_uint_eq(c->session_messages, 100);

	ck_assert_uint_eq(c->retry_min, 10);
	ck_assert_uint_eq(c->retry_max, 3600);
	ck_assert_uint_eq(c->lifetime, 2 * 86400);
	ck_assert_int_eq(c->bounce, BOUNCE_NONE);

	ck_assert_uint_eq(c->nsenders, 3);
	s = &c->senders[0];
	ck_assert_str_eq(s->pattern, "alice@example.org");
	ck_assert_str_eq(s->source_arn,
	    "arn:aws:ses:eu-west-1:123456789012:identity/alice@example.org");
	ck_assert_str_eq(s->from_arn,
	    "arn:aws:ses:eu-west-1:123456789012:identity/example.org");
	ck_assert_str_eq(s->return_path_arn,
	    "arn:aws:ses:eu-west-1:123456789012:identity/bounce.example.org");
	ck_assert_str_eq(s->configuration_set, "alice");
	s = &c->senders[1];
	ck_assert_str_eq(s->pattern, "example.net");	/* lower-cased */
	ck_assert_str_eq(s->source_arn,
	    "arn:aws:ses:eu-west-1:210987654321:identity/example.net");
	ck_assert_str_eq(s->from_arn, s->source_arn);
	ck_assert_str_eq(s->return_path_arn, s->source_arn);
	ck_assert_ptr_null(s->configuration_set);
	s = &c->senders[2];
	ck_assert_str_eq(s->pattern, "*");
	ck_assert_ptr_null(s->source_arn);
	ck_assert_ptr_null(s->configuration_set);

	ck_assert_ptr_eq(config_ref(c), c);
	ck_assert_int_eq(c->refs, 2);
	config_unref(c);
	ck_assert_int_eq(c->refs, 1);
	run_free(&r);
}
END_TEST

/* --- defaults ----------------------------------------------------------- */

static const char *const empty_confs[] = {
	"",
	"; nothing but comments\n# and blank lines\n\n   \n",
	"[relay]\n[ses]\n[queue]\n",
	/* optional keys left empty mean "default", as in the sample */
	"[relay]\nhostname =\ntls_cert =\ntls_key =\nuser =\n"
	"metrics_listen =\n[ses]\nregion =\nendpoint =\ntls_verify_name =\n"
	"ca_file =\naccess_key_id =\nsecret_access_key_file =\n"
	"secret_access_key =\nsmtp_password_file =\naws_profile =\n"
	"configuration_set =\nmessage_tags =\nnull_sender =\n",
};

START_TEST(test_defaults)
{
	struct run r;
	struct config *c = load_ok(empty_confs[_i], &r);
	char host[256];

	ck_assert_uint_eq(c->nlisten, 2);
	assert_inet(&c->listen[0], AF_INET, "127.0.0.1", 25);
	assert_inet(&c->listen[1], AF_INET6, "::1", 25);
	ck_assert_int_eq(c->mode, RELAY_MODE_SPOOL);
	ck_assert_str_eq(c->spool_dir, "/var/spool/sesrelay");
	ck_assert_str_eq(c->hostname, default_hostname(host, sizeof(host)));
	ck_assert_uint_eq(c->nallow, 2);
	assert_cidr(&c->allow[0], AF_INET, "127.0.0.0", 8);
	assert_cidr(&c->allow[1], AF_INET6, "::1", 128);
	ck_assert_uint_eq(c->max_clients, 500);
	ck_assert_uint_eq(c->max_message_size, 41943040);
	ck_assert_uint_eq(c->max_recipients, 1000);
	ck_assert_uint_eq(c->timeout, 300);
	ck_assert_ptr_null(c->tls_cert);
	ck_assert_ptr_null(c->tls_key);
	ck_assert_int_eq(c->auth, AUTH_OFF);
	ck_assert_str_eq(c->sasl_service, "sesrelay");
	ck_assert_ptr_null(c->user);
	ck_assert_int_eq(c->log_format, LOG_FORMAT_TEXT);
	ck_assert_ptr_null(c->metrics_listen);

	ck_assert_str_eq(c->region, "us-east-1");
	ck_assert_str_eq(c->endpoint_host,
	    "email-smtp.us-east-1.amazonaws.com");
	ck_assert_uint_eq(c->endpoint_port, 587);
	ck_assert_int_eq(c->tls, UPSTREAM_TLS_STARTTLS);
	ck_assert_str_eq(c->tls_verify_name,
	    "email-smtp.us-east-1.amazonaws.com");
	ck_assert_ptr_null(c->ca_file);
	ck_assert_ptr_null(c->access_key_id);
	ck_assert_ptr_null(cur_login);
	ck_assert_ptr_null(cur_login);
	ck_assert_ptr_null(c->aws_profile);
	ck_assert_uint_eq(c->max_connections, 4);
	ck_assert(c->max_send_rate == 0);
	ck_assert_ptr_null(c->configuration_set);
	ck_assert_ptr_null(c->message_tags);
	ck_assert_ptr_null(c->null_sender);
	ck_assert_uint_eq(c->session_messages, 300);

	ck_assert_uint_eq(c->retry_min, 5);
	ck_assert_uint_eq(c->retry_max, 1200);
	ck_assert_uint_eq(c->lifetime, 432000);
	ck_assert_int_eq(c->bounce, BOUNCE_DSN);
	ck_assert_uint_eq(c->nsenders, 0);
	ck_assert_ptr_null(c->senders);
	run_free(&r);
}
END_TEST

/* --- endpoint and tls_verify_name --------------------------------------- */

static const struct {
	const char *conf;
	const char *host;
	unsigned port;
	const char *verify;
} endpoint_cases[] = {
	{ "[ses]\ntls = implicit\n",
	  "email-smtp.us-east-1.amazonaws.com", 465,
	  "email-smtp.us-east-1.amazonaws.com" },
	{ "[ses]\nregion = eu-west-2\n",
	  "email-smtp.eu-west-2.amazonaws.com", 587,
	  "email-smtp.eu-west-2.amazonaws.com" },
	{ "[ses]\nendpoint = email-smtp.us-east-1.amazonaws.com:2587\n",
	  "email-smtp.us-east-1.amazonaws.com", 2587,
	  "email-smtp.us-east-1.amazonaws.com" },
	/* FIPS: its own name verifies */
	{ "[ses]\nregion = us-west-2\n"
	  "endpoint = email-smtp-fips.us-west-2.amazonaws.com\n",
	  "email-smtp-fips.us-west-2.amazonaws.com", 587,
	  "email-smtp-fips.us-west-2.amazonaws.com" },
	{ "[ses]\nregion = us-west-2\ntls = implicit\n"
	  "endpoint = Email-Smtp-Fips.us-west-2.amazonaws.com:2465\n",
	  "Email-Smtp-Fips.us-west-2.amazonaws.com", 2465,
	  "email-smtp-fips.us-west-2.amazonaws.com" },
	/* a VPC endpoint verifies as the regional name */
	{ "[ses]\nregion = eu-west-1\nendpoint = vpce-0abc123-xyz789.email-"
	  "smtp.eu-west-1.vpce.amazonaws.com\n",
	  "vpce-0abc123-xyz789.email-smtp.eu-west-1.vpce.amazonaws.com", 587,
	  "email-smtp.eu-west-1.amazonaws.com" },
	/* so does an address or an alias */
	{ "[ses]\nendpoint = 10.0.0.5:25\n", "10.0.0.5", 25,
	  "email-smtp.us-east-1.amazonaws.com" },
	{ "[ses]\ntls = implicit\nendpoint = [2001:db8::5]\n", "2001:db8::5",
	  465, "email-smtp.us-east-1.amazonaws.com" },
	{ "[ses]\nregion = us-west-2\nendpoint = ses.internal.example\n"
	  "tls_verify_name = email-smtp.us-west-2.amazonaws.com\n",
	  "ses.internal.example", 587, "email-smtp.us-west-2.amazonaws.com" },
};

START_TEST(test_endpoint)
{
	struct run r;
	struct config *c = load_ok(endpoint_cases[_i].conf, &r);

	ck_assert_str_eq(c->endpoint_host, endpoint_cases[_i].host);
	ck_assert_uint_eq(c->endpoint_port, endpoint_cases[_i].port);
	ck_assert_str_eq(c->tls_verify_name, endpoint_cases[_i].verify);
	run_free(&r);
}
END_TEST

/* --- syntax that must be accepted --------------------------------------- */

static const struct {
	const char *conf;
	size_t len;
	unsigned max_clients;	/* what [relay] max_clients must be */
} syntax_cases[] = {
	{ "[relay]\nmax_clients = 7\n", 0, 7 },
	{ "[relay]\r\nmax_clients = 7\r\n", 0, 7 },		/* CRLF */
	{ "\xef\xbb\xbf[relay]\nmax_clients = 7\n", 0, 7 },	/* BOM */
	{ "[relay]\nmax_clients = 7", 0, 7 },		/* no final newline */
	{ "[relay]\nmax_clients=7\n", 0, 7 },
	{ "  [ relay ]  \n\tmax_clients\t=\t7\t\n", 0, 7 },	/* indented */
	/* indented keys are keys, not continuation lines */
	{ "[relay]\n  mode = spool\n  max_clients = 7\n", 0, 7 },
	{ "[relay]\nmax_clients = 7 ; inline comment\n", 0, 7 },
	{ "[relay]\nmax_clients = 7\t; tab, then a comment\n", 0, 7 },
	{ "[relay] ; comment after a section\nmax_clients = 7\n", 0, 7 },
	{ "# hash comment\n; semicolon comment\n[relay]\n  ; indented\n"
	  "max_clients = 7\n", 0, 7 },
	/* comment lines longer than inih's own line buffer */
	{ "; " X50 X50 X50 X50 X50 " max_clients = 9\n[relay]\n"
	  "max_clients = 7 ; " X50 X50 X50 X50 X50 " mode = x\n", 0, 7 },
	/* UTF-8 in comments */
	{ "; réglages — 設定\n[relay]\nmax_clients = 7\n", 0, 7 },
	/* sections may come in any order */
	{ "[queue]\n[ses]\n[relay]\nmax_clients = 7\n", 0, 7 },
};

START_TEST(test_syntax_ok)
{
	struct scenario sc = {
		.conf = syntax_cases[_i].conf,
		.conflen = syntax_cases[_i].len,
	};
	struct run r;

	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	ck_assert_uint_eq(r.cfg->max_clients, syntax_cases[_i].max_clients);
	run_free(&r);
}
END_TEST

/* A value longer than inih's line buffer (200 bytes in Debian's build). */
START_TEST(test_long_value)
{
	char conf[4096] = "[relay]\nallow =", *p;
	struct run r;
	int i;

	for (i = 0; i < 100; i++) {
		p = conf + strlen(conf);
		snprintf(p, sizeof(conf) - (size_t)(p - conf), " 10.%d.0.0/16",
		    i);
	}
	strcat(conf, " ; trailing comment\nmax_clients = 3\n");
	load_ok(conf, &r);
	ck_assert_uint_eq(r.cfg->nallow, 100);
	assert_cidr(&r.cfg->allow[99], AF_INET, "10.99.0.0", 16);
	ck_assert_uint_eq(r.cfg->max_clients, 3);
	run_free(&r);
}
END_TEST

/* --- units -------------------------------------------------------------- */

static const struct {
	const char *s;
	int ok;
	uint64_t v;
} size_cases[] = {
	{ "0", 1, 0 },
	{ "10", 1, 10 },
	{ "64K", 1, 65536 },
	{ "64k", 1, 65536 },
	{ "40M", 1, 41943040 },
	{ "1m", 1, 1048576 },
	{ "007", 1, 7 },
	{ "18446744073709551615", 1, UINT64_MAX },
	{ "17592186044415M", 1, 17592186044415ULL * 1048576 },
	{ "18446744073709551616", 0, 0 },	/* overflow */
	{ "17592186044416M", 0, 0 },		/* overflow after the unit */
	{ "", 0, 0 },
	{ "-1", 0, 0 },
	{ "+1", 0, 0 },
	{ " 1", 0, 0 },
	{ "1 ", 0, 0 },
	{ "40 M", 0, 0 },
	{ "40MB", 0, 0 },
	{ "1G", 0, 0 },
	{ "1.5M", 0, 0 },
	{ "M", 0, 0 },
	{ "0x10", 0, 0 },
	{ "ten", 0, 0 },
};

START_TEST(test_size)
{
	uint64_t v = 12345;
	int rc = config_parse_size(size_cases[_i].s, &v);

	ck_assert_int_eq(rc, size_cases[_i].ok ? 0 : -1);
	if (size_cases[_i].ok)
		ck_assert_uint_eq(v, size_cases[_i].v);
	else
		ck_assert_uint_eq(v, 12345);	/* untouched */
}
END_TEST

static const struct {
	const char *s;
	int ok;
	unsigned v;
} duration_cases[] = {
	{ "0", 1, 0 },
	{ "30", 1, 30 },
	{ "5s", 1, 5 },
	{ "5m", 1, 300 },
	{ "2h", 1, 7200 },
	{ "5d", 1, 432000 },
	{ "4294967295", 1, 4294967295U },
	{ "49710d", 1, 49710U * 86400 },
	{ "4294967296", 0, 0 },			/* overflow */
	{ "49711d", 0, 0 },			/* overflow after the unit */
	{ "99999999999999999999999", 0, 0 },
	{ "", 0, 0 },
	{ "-5s", 0, 0 },
	{ "5 s", 0, 0 },
	{ "5x", 0, 0 },
	{ "5M", 0, 0 },			/* M is for sizes */
	{ "1h30m", 0, 0 },
	{ "1.5h", 0, 0 },
	{ "s", 0, 0 },
	{ "5ss", 0, 0 },
};

START_TEST(test_duration)
{
	unsigned v = 12345;
	int rc = config_parse_duration(duration_cases[_i].s, &v);

	ck_assert_int_eq(rc, duration_cases[_i].ok ? 0 : -1);
	if (duration_cases[_i].ok)
		ck_assert_uint_eq(v, duration_cases[_i].v);
	else
		ck_assert_uint_eq(v, 12345);
}
END_TEST

START_TEST(test_parse_null)
{
	uint64_t s;
	unsigned d;

	ck_assert_int_eq(config_parse_size(NULL, &s), -1);
	ck_assert_int_eq(config_parse_duration(NULL, &d), -1);
}
END_TEST

/* The same syntaxes through the file, with each key's range. */
static const struct {
	const char *conf;
	int ok;
} range_cases[] = {
	{ "[relay]\nmax_message_size = 64K\n", 1 },
	{ "[relay]\nmax_message_size = 0\n", 0 },
	{ "[relay]\nmax_message_size = 2000M\n", 0 },
	{ "[relay]\ntimeout = 0\n", 0 },
	{ "[relay]\ntimeout = 1d\n", 1 },
	{ "[relay]\ntimeout = 2d\n", 0 },
	{ "[relay]\nmax_clients = 100000\n", 1 },
	{ "[relay]\nmax_clients = 100001\n", 0 },
	{ "[ses]\nmax_send_rate = 0.5\n", 1 },
	{ "[ses]\nmax_send_rate = 14\n", 1 },
	{ "[ses]\nmax_send_rate = -1\n", 0 },
	{ "[ses]\nmax_send_rate = 1e3\n", 0 },
	{ "[ses]\nmax_send_rate = .5\n", 0 },
	{ "[ses]\nmax_send_rate = 5.\n", 0 },
	{ "[ses]\nmax_send_rate = inf\n", 0 },
	{ "[ses]\nmax_connections = 0\n", 0 },
	{ "[queue]\nlifetime = 365d\n", 1 },
	{ "[queue]\nlifetime = 366d\n", 0 },
	{ "[queue]\nretry_min = 20m\nretry_max = 20m\n", 1 },
};

START_TEST(test_ranges)
{
	struct scenario sc = { .conf = range_cases[_i].conf };
	struct run r;

	run_scenario(&sc, &r);
	if (range_cases[_i].ok)
		ck_assert_msg(r.cfg != NULL, "%s", r.err);
	else {
		ck_assert_ptr_null(r.cfg);
		assert_one_line(r.err);
		assert_err_has(&r, "@CONF@:2: [");
	}
	run_free(&r);
}
END_TEST

/* --- the environment ---------------------------------------------------- */

static void
chk_mode(const struct config *c)
{
	ck_assert_int_eq(c->mode, RELAY_MODE_PASSTHROUGH);
}

static void
chk_max_clients(const struct config *c)
{
	ck_assert_uint_eq(c->max_clients, 7);
}

static void
chk_region(const struct config *c)
{
	ck_assert_str_eq(c->region, "eu-west-1");
	ck_assert_str_eq(c->endpoint_host,
	    "email-smtp.eu-west-1.amazonaws.com");
}

static void
chk_hostname_default(const struct config *c)
{
	char host[256];

	ck_assert_str_eq(c->hostname, default_hostname(host, sizeof(host)));
}

static void
chk_lifetime(const struct config *c)
{
	ck_assert_uint_eq(c->lifetime, 3600);
}

static void
chk_listen(const struct config *c)
{
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_int_eq(c->listen[0].is_unix, 1);
	ck_assert_str_eq(c->listen[0].unix_path, "/run/sesrelay.sock");
}

static void
chk_env_secret(const struct config *c)
{
	ck_assert_str_eq(cur_login->user, DOC_KEY_ID);
	ck_assert_str_eq(cur_login->password, DOC_PW_USE1);
	ck_assert_str_eq(cur_login->source,
	    "secret_access_key from SESRELAY_SES_SECRET_ACCESS_KEY");
}

static void
chk_endpoint(const struct config *c)
{
	ck_assert_str_eq(c->endpoint_host, "10.1.2.3");
	ck_assert_uint_eq(c->endpoint_port, 2587);
}

static void
chk_tags_trimmed(const struct config *c)
{
	ck_assert_str_eq(c->message_tags, "a=b");
}

static const struct {
	const char *conf;
	const char *env[3];
	int need_creds;
	void (*check)(const struct config *);
} env_cases[] = {
	{ "[relay]\nmode = spool\n", { "SESRELAY_RELAY_MODE=passthrough" }, 0,
	  chk_mode },
	{ "[relay]\nmax_clients = 500\n", { "SESRELAY_RELAY_MAX_CLIENTS=7" },
	  0, chk_max_clients },
	{ "[ses]\nregion = us-west-2\n", { "SESRELAY_SES_REGION=eu-west-1",
	  "AWS_REGION=ap-south-1" }, 0, chk_region },
	/* an empty override unsets an optional key */
	{ "[relay]\nhostname = mx.example.org\n",
	  { "SESRELAY_RELAY_HOSTNAME=" }, 0, chk_hostname_default },
	{ "[queue]\nlifetime = 5d\n", { "SESRELAY_QUEUE_LIFETIME=1h" }, 0,
	  chk_lifetime },
	{ "", { "SESRELAY_RELAY_LISTEN=unix:/run/sesrelay.sock" }, 0,
	  chk_listen },
	{ "[ses]\nendpoint = email-smtp.us-east-1.amazonaws.com\n",
	  { "SESRELAY_SES_ENDPOINT=10.1.2.3:2587" }, 0, chk_endpoint },
	{ "", { "SESRELAY_SES_MESSAGE_TAGS=  a=b \n" }, 0, chk_tags_trimmed },
	{ "[ses]\naccess_key_id = AKIA0000000000000000\n",
	  { "SESRELAY_SES_ACCESS_KEY_ID=" DOC_KEY_ID,
	    "SESRELAY_SES_SECRET_ACCESS_KEY=" DOC_SECRET,
	    "AWS_ACCESS_KEY_ID=AKIA9999999999999999" }, 1, chk_env_secret },
};

START_TEST(test_env_override)
{
	struct scenario sc = {
		.conf = env_cases[_i].conf,
		.need_creds = env_cases[_i].need_creds,
	};
	struct run r;
	size_t i;

	for (i = 0; i < NELEM(env_cases[_i].env); i++)
		sc.env[i] = env_cases[_i].env[i];
	if (sc.need_creds)
		sc.env[NELEM(env_cases[_i].env)] =
		    "AWS_SECRET_ACCESS_KEY=otherSecret";
	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	env_cases[_i].check(r.cfg);
	run_free(&r);
}
END_TEST

static const struct {
	const char *file_region;	/* NULL: not in the file */
	const char *env_region;		/* SESRELAY_SES_REGION */
	const char *aws_region;		/* AWS_REGION */
	const char *want;
} region_cases[] = {
	{ NULL, NULL, NULL, "us-east-1" },
	{ NULL, NULL, "eu-west-1", "eu-west-1" },
	{ NULL, NULL, "", "us-east-1" },		/* empty: unset */
	{ "us-west-2", NULL, "eu-west-1", "us-west-2" },
	{ "us-west-2", "ap-south-1", "eu-west-1", "ap-south-1" },
	{ NULL, "ap-south-1", "eu-west-1", "ap-south-1" },
	{ "", NULL, "eu-west-1", "eu-west-1" },		/* "region =" */
	{ "us-west-2", "", "eu-west-1", "eu-west-1" },	/* env unsets it */
};

START_TEST(test_region_fallback)
{
	char conf[128], e1[64], e2[64];
	struct scenario sc = { .conf = conf };
	struct run r;
	char want_host[SES_HOST_MAX];
	int n = 0;

	snprintf(conf, sizeof(conf), "[ses]\n%s%s%s",
	    region_cases[_i].file_region ? "region = " : "",
	    region_cases[_i].file_region ? region_cases[_i].file_region : "",
	    region_cases[_i].file_region ? "\n" : "");
	if (region_cases[_i].env_region != NULL) {
		snprintf(e1, sizeof(e1), "SESRELAY_SES_REGION=%s",
		    region_cases[_i].env_region);
		sc.env[n++] = e1;
	}
	if (region_cases[_i].aws_region != NULL) {
		snprintf(e2, sizeof(e2), "AWS_REGION=%s",
		    region_cases[_i].aws_region);
		sc.env[n++] = e2;
	}
	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	ck_assert_str_eq(r.cfg->region, region_cases[_i].want);
	ses_auth_smtp_host(region_cases[_i].want, 0, want_host,
	    sizeof(want_host));
	ck_assert_str_eq(r.cfg->endpoint_host, want_host);
	ck_assert_str_eq(r.cfg->tls_verify_name, want_host);
	run_free(&r);
}
END_TEST

/* --- errors ------------------------------------------------------------- */

#define CREDS_DEFAULT \
	"[default]\naws_access_key_id = AKIA4444444444444444\n" \
	"aws_secret_access_key = secretFour\n"

static const struct {
	const char *name;
	struct scenario sc;
	int bigline;		/* append a 10 MB line to sc.conf */
	const char *expect[4];	/* in the error, after expansion */
} err_cases[] = {
	{ "unknown section", { .conf = "[relay]\nmode = spool\n[relai]\n" }, 0,
	  { "@CONF@:3: ", "unknown section [relai]" } },
	{ "unknown section with words", { .conf = "[relay x]\n" }, 0,
	  { "@CONF@:1: ", "unknown section [relay x]" } },
	{ "unknown key", { .conf = "[relay]\nmod = spool\n" }, 0,
	  { "@CONF@:2: ", "[relay] unknown key 'mod'" } },
	{ "key case", { .conf = "[ses]\nRegion = us-east-1\n" }, 0,
	  { "@CONF@:2: ", "[ses] unknown key 'Region'" } },
	{ "sender key in relay", { .conf = "[relay]\nsource_arn = x\n" }, 0,
	  { "@CONF@:2: ", "[relay] unknown key 'source_arn'" } },
	{ "unknown sender key", { .conf = "[sender a.com]\nmode = spool\n" },
	  0, { "@CONF@:2: ", "[sender a.com] unknown key 'mode'" } },
	{ "key outside sections", { .conf = "mode = spool\n[relay]\n" }, 0,
	  { "@CONF@:1: ", "outside any section" } },
	{ "bad enum", { .conf = "[relay]\nmode = spoool\n" }, 0,
	  { "@CONF@:2: [relay] mode: must be spool or passthrough, not "
	    "'spoool'" } },
	{ "bad enum auth", { .conf = "[relay]\nauth = yes\n" }, 0,
	  { "@CONF@:2: [relay] auth: must be off, optional or required, not "
	    "'yes'" } },
	{ "bad enum tls", { .conf = "[ses]\ntls = ssl\n" }, 0,
	  { "@CONF@:2: [ses] tls: must be starttls or implicit" } },
	{ "bad enum log_format", { .conf = "[relay]\nlog_format = xml\n" }, 0,
	  { "@CONF@:2: [relay] log_format: must be text or json" } },
	{ "bad enum bounce", { .conf = "[queue]\nbounce = yes\n" }, 0,
	  { "@CONF@:2: [queue] bounce: must be dsn or none" } },
	{ "enum with a # comment", { .conf = "[relay]\nmode = spool # x\n" },
	  0, { "@CONF@:2: [relay] mode: must be", "'spool # x'" } },
	{ "bad number", { .conf = "[relay]\nmax_clients = lots\n" }, 0,
	  { "@CONF@:2: [relay] max_clients: not a number: 'lots'" } },
	{ "negative number", { .conf = "\n[relay]\nmax_recipients = -5\n" }, 0,
	  { "@CONF@:3: [relay] max_recipients: not a number" } },
	{ "number range", { .conf = "[relay]\nmax_clients = 0\n" }, 0,
	  { "@CONF@:2: [relay] max_clients: must be from 1 to" } },
	{ "huge number", { .conf = "[ses]\nsession_messages = "
	  "99999999999999999999999999\n" }, 0,
	  { "@CONF@:2: [ses] session_messages: not a number" } },
	{ "bad size", { .conf = "[relay]\nmax_message_size = 40 MB\n" }, 0,
	  { "@CONF@:2: [relay] max_message_size: not a size: '40 MB'" } },
	{ "bad duration", { .conf = "[queue]\nretry_min = 5x\n" }, 0,
	  { "@CONF@:2: [queue] retry_min: not a duration: '5x'" } },
	{ "duplicate key", { .conf = "[relay]\nmode = spool\n\n"
	  "mode = passthrough\n" }, 0,
	  { "@CONF@:4: [relay] mode: duplicate key (first set at line 2)" } },
	{ "duplicate key, section reopened", { .conf = "[relay]\nmode = spool\n"
	  "[queue]\n[relay]\nmode = spool\n" }, 0,
	  { "@CONF@:4: ", "section [relay] appears twice (first at line 1)" } },
	{ "duplicate sender", { .conf = "[sender a.com]\n[sender b.com]\n"
	  "[sender A.COM]\n" }, 0,
	  { "@CONF@:3: ", "[sender a.com] appears twice (first at line 1)" } },
	{ "duplicate sender key", { .conf = "[sender a.com]\n"
	  "configuration_set = x\nconfiguration_set = y\n" }, 0,
	  { "@CONF@:3: [sender a.com] configuration_set: duplicate key" } },
	{ "arn and source_arn", { .conf = "[sender a.com]\n"
	  "arn = arn:aws:ses:us-east-1:123456789012:identity/a.com\n"
	  "source_arn = arn:aws:ses:us-east-1:123456789012:identity/a.com\n" },
	  0, { "@CONF@:3: [sender a.com] source_arn: conflicts with arn at "
	  "line 2" } },
	{ "sender without pattern", { .conf = "[sender]\n" }, 0,
	  { "@CONF@:1: ", "needs a pattern" } },
	{ "bad sender pattern", { .conf = "[sender @a.com]\n" }, 0,
	  { "@CONF@:1: ", "[sender @a.com]", "user@domain, domain or *" } },
	{ "two sender patterns", { .conf = "[sender a.com b.com]\n" }, 0,
	  { "@CONF@:1: ", "one pattern per section" } },
	{ "missing ]", { .conf = "[relay\nmode = spool\n" }, 0,
	  { "@CONF@:1: ", "missing ']'" } },
	{ "text after ]", { .conf = "[relay] mode = spool\n" }, 0,
	  { "@CONF@:1: ", "text after ']'" } },
	{ "no =", { .conf = "[relay]\nmode spool\n" }, 0,
	  { "@CONF@:2: ", "expected 'key = value'", "'mode spool'" } },
	{ "colon before =", { .conf = "[relay]\nlisten 127.0.0.1:25\n" }, 0,
	  { "@CONF@:2: ", "expected 'key = value'" } },
	{ "secret with ':' instead of '='", { .conf = "[ses]\n"
	  "secret_access_key: " DOC_SECRET "\n" }, 0,
	  { "@CONF@:2: ", "expected 'key = value'", "not shown" } },
	{ "secret without '='", { .conf = "[ses]\n"
	  "secret_access_key " DOC_SECRET "\n" }, 0,
	  { "@CONF@:2: ", "expected 'key = value'", "not shown" } },
	{ "a secret pasted alone", { .conf = "[ses]\n" DOC_SECRET "\n" }, 0,
	  { "@CONF@:2: ", "expected 'key = value'", "not shown" } },
	{ "no key", { .conf = "[relay]\n = spool\n" }, 0,
	  { "@CONF@:2: ", "missing key name" } },
	{ "NUL byte", { .conf = "[relay]\nmode = sp\0ol\n", .conflen = 20 }, 0,
	  { "@CONF@:2: ", "NUL byte" } },
	{ "invalid UTF-8", { .conf = "[relay]\n\xff\xfe = 1\n" }, 0,
	  { "@CONF@:2: ", "invalid UTF-8" } },
	{ "invalid UTF-8 in a comment", { .conf = "[relay]\n\n; caf\xe9\n" }, 0,
	  { "@CONF@:3: ", "invalid UTF-8" } },
	{ "truncated UTF-8", { .conf = "[relay]\n; \xe2\x82\n" }, 0,
	  { "@CONF@:2: ", "invalid UTF-8" } },
	{ "overlong UTF-8", { .conf = "; \xc0\xaf\n" }, 0,
	  { "@CONF@:1: ", "invalid UTF-8" } },
	{ "control character", { .conf = "[relay]\nmode = spool\x1b[0m\n" }, 0,
	  { "@CONF@:2: ", "control character 0x1b" } },
	{ "bare CR", { .conf = "[relay]\nmode = spool\rmax_clients = 1\n" }, 0,
	  { "@CONF@:2: ", "carriage return" } },
	{ "binary file", { .conf = "\x7f" "ELF\x02\x01\x01", .conflen = 7 }, 0,
	  { "@CONF@:1: ", "control character 0x7f" } },
	{ "10 MB line", { .conf = "[relay]\nmode = spool\n" }, 1,
	  { "@CONF@:3: ", "line longer than" } },
	{ "long value", { .conf = "[relay]\nhostname = "
	  X500 X500 X500 X500 X500 X500 X500 X500 X500 "\n" }, 0,
	  { "@CONF@:2: ", "line longer than 4096 characters" } },
	{ "long key", { .conf = "[relay]\n" X500 " = 1\n" }, 0,
	  { "@CONF@:2: ", "unknown key" } },
	{ "empty required value", { .conf = "[relay]\nmax_clients =\n" }, 0,
	  { "@CONF@:2: [relay] max_clients: needs a value" } },
	{ "empty mode", { .conf = "[relay]\nmode = ; none\n" }, 0,
	  { "@CONF@:2: [relay] mode: needs a value" } },
	{ "empty listen", { .conf = "[relay]\nlisten =\n" }, 0,
	  { "@CONF@:2: [relay] listen: needs a value" } },
	{ "bad CIDR prefix", { .conf = "[relay]\nallow = 10.0.0.0/33\n" }, 0,
	  { "@CONF@:2: [relay] allow: '10.0.0.0/33' is not a network" } },
	{ "bad CIDR address", { .conf = "[relay]\nallow = 127.0.0.0/8 "
	  "300.1.1.1\n" }, 0, { "@CONF@:2: [relay] allow: '300.1.1.1'" } },
	{ "bad CIDR v6", { .conf = "[relay]\nallow = ::1/129\n" }, 0,
	  { "@CONF@:2: [relay] allow: '::1/129'" } },
	{ "CIDR with a name", { .conf = "[relay]\nallow = localhost\n" }, 0,
	  { "@CONF@:2: [relay] allow: 'localhost'" } },
	{ "CIDR junk prefix", { .conf = "[relay]\nallow = 10.0.0.0/8x\n" }, 0,
	  { "@CONF@:2: [relay] allow: '10.0.0.0/8x'" } },
	{ "listen name", { .conf = "[relay]\nlisten = localhost:25\n" }, 0,
	  { "@CONF@:2: [relay] listen: 'localhost:25' is not", "numeric",
	    "not resolved" } },
	{ "listen no port", { .conf = "[relay]\nlisten = 127.0.0.1\n" }, 0,
	  { "@CONF@:2: [relay] listen: '127.0.0.1'" } },
	{ "listen bad port", { .conf = "[relay]\nlisten = [::1]:99999\n" }, 0,
	  { "@CONF@:2: [relay] listen: '[::1]:99999'" } },
	{ "listen port 0", { .conf = "[relay]\nlisten = 127.0.0.1:0\n" }, 0,
	  { "@CONF@:2: [relay] listen: '127.0.0.1:0'" } },
	{ "listen v6 without brackets",
	  { .conf = "[relay]\nlisten = ::1:25\n" }, 0,
	  { "@CONF@:2: [relay] listen: '::1:25'" } },
	{ "listen relative unix", { .conf = "[relay]\nlisten = unix:run/s\n" },
	  0, { "@CONF@:2: [relay] listen: 'unix:run/s'", "absolute" } },
	{ "listen twice", { .conf = "[relay]\nlisten = 127.0.0.1:25 "
	  "127.0.0.1:25\n" }, 0, { "@CONF@:2: [relay] listen:",
	  "listed twice" } },
	{ "metrics_listen name", { .conf = "[relay]\nmetrics_listen = "
	  "localhost:9925\n" }, 0, { "@CONF@:2: [relay] metrics_listen:" } },
	{ "relative spool_dir", { .conf = "[relay]\nspool_dir = var/spool\n" },
	  0, { "@CONF@:2: [relay] spool_dir: must be an absolute path" } },
	{ "bad hostname", { .conf = "[relay]\nhostname = mx..example.org\n" },
	  0, { "@CONF@:2: [relay] hostname: not a host name" } },
	{ "bad sasl_service", { .conf = "[relay]\nsasl_service = a/b\n" }, 0,
	  { "@CONF@:2: [relay] sasl_service:" } },
	{ "no such user", { .conf = "[relay]\nuser = nosuchuser4711\n" }, 0,
	  { "@CONF@:2: [relay] user: no such user 'nosuchuser4711'" } },
	{ "tls_cert without tls_key",
	  { .conf = "[relay]\ntls_cert = @CERT@\n" }, 0,
	  { "@CONF@:2: [relay] tls_cert: set without tls_key" } },
	{ "tls_key without tls_cert",
	  { .conf = "[relay]\n\ntls_key = @KEY@\n" }, 0,
	  { "@CONF@:3: [relay] tls_key: set without tls_cert" } },
	{ "unreadable tls_cert", { .conf = "[relay]\ntls_cert = @DIR@/none\n"
	  "tls_key = @KEY@\n" }, 0, { "@CONF@:2: [relay] tls_cert: cannot "
	  "read @DIR@/none" } },
	{ "tls_key a directory", { .conf = "[relay]\ntls_cert = @CERT@\n"
	  "tls_key = @DIR@\n" }, 0, { "@CONF@:3: [relay] tls_key: @DIR@ is "
	  "not a regular file" } },
	{ "unreadable ca_file", { .conf = "[ses]\nca_file = @DIR@/none\n" }, 0,
	  { "@CONF@:2: [ses] ca_file: cannot read @DIR@/none" } },
	{ "retry_min > retry_max", { .conf = "[queue]\nretry_max = 1m\n"
	  "retry_min = 2m\n" }, 0, { "@CONF@:3: [queue] retry_min:",
	  "retry_max" } },
	{ "bad region", { .conf = "[ses]\nregion = US-East-1\n" }, 0,
	  { "@CONF@:2: [ses] region: not a region name: 'US-East-1'" } },
	{ "bad AWS_REGION", { .env = { "AWS_REGION=moon" } }, 0,
	  { "AWS_REGION: [ses] region: not a region name: 'moon'" } },
	{ "bad endpoint", { .conf = "[ses]\nendpoint = smtp://x\n" }, 0,
	  { "@CONF@:2: [ses] endpoint: 'smtp://x' is not host[:port]" } },
	{ "bad endpoint port", { .conf = "[ses]\nendpoint = a.b:0\n" }, 0,
	  { "@CONF@:2: [ses] endpoint:" } },
	{ "bad tls_verify_name", { .conf = "[ses]\ntls_verify_name = a b\n" },
	  0, { "@CONF@:2: [ses] tls_verify_name:" } },
	{ "ARN region", { .conf = "[ses]\nregion = us-east-1\n"
	  "[sender a.com]\nsource_arn = arn:aws:ses:eu-west-1:123456789012:"
	  "identity/a.com\n" }, 0,
	  { "@CONF@:4: [sender a.com] source_arn:", "eu-west-1",
	    "us-east-1" } },
	{ "ARN region via arn", { .conf = "[sender *]\n\n"
	  "arn = arn:aws:ses:eu-west-1:123456789012:identity/a.com\n" }, 0,
	  { "@CONF@:3: [sender *] arn:", "eu-west-1" } },
	{ "ARN region via AWS_REGION", { .conf = "[sender x@a.com]\n"
	  "from_arn = arn:aws:ses:us-east-1:123456789012:identity/a.com\n",
	  .env = { "AWS_REGION=eu-west-1" } }, 0,
	  { "@CONF@:2: [sender x@a.com] from_arn:", "us-east-1",
	    "eu-west-1" } },
	{ "bad ARN", { .conf = "[sender a.com]\nreturn_path_arn = "
	  "arn:aws:iam::123456789012:user/x\n" }, 0,
	  { "@CONF@:2: [sender a.com] return_path_arn: not an SES identity "
	    "ARN" } },
	{ "bad tags", { .conf = "[ses]\nmessage_tags = a=b c\n" }, 0,
	  { "@CONF@:2: [ses] message_tags: not a tag list: 'a=b c'" } },
	{ "bad tags chars", { .conf = "[ses]\nmessage_tags = team=mail.ops\n" },
	  0, { "@CONF@:2: [ses] message_tags:" } },
	{ "bad configuration_set", { .conf = "[ses]\nconfiguration_set = "
	  "my set\n" }, 0, { "@CONF@:2: [ses] configuration_set: not a "
	  "configuration set name" } },
	{ "bad sender configuration_set", { .conf = "[sender *]\n"
	  "configuration_set = a.b\n" }, 0,
	  { "@CONF@:2: [sender *] configuration_set:" } },
	{ "bad null_sender", { .conf = "[ses]\nnull_sender = <>\n" }, 0,
	  { "@CONF@:2: [ses] null_sender: must be an address" } },
	{ "null_sender without domain", { .conf = "[ses]\nnull_sender = "
	  "bounces\n" }, 0, { "@CONF@:2: [ses] null_sender:" } },
	{ "bad access key id", { .conf = "[ses]\naccess_key_id = abc\n" }, 0,
	  { "@CONF@:2: [ses] access_key_id: not an access key id: 'abc'" } },
	{ "ASIA key id", { .conf = "[ses]\naccess_key_id = "
	  "ASIAIOSFODNN7EXAMPLE\n" }, 0,
	  { "@CONF@:2: [ses] access_key_id:", "temporary (STS)" } },
	{ "ASIA key id in the environment", { .env = {
	  "AWS_ACCESS_KEY_ID=ASIAIOSFODNN7EXAMPLE",
	  "AWS_SECRET_ACCESS_KEY=" DOC_SECRET }, .need_creds = 1 }, 0,
	  { "AWS_ACCESS_KEY_ID", "'ASIAIOSFODNN7EXAMPLE'", "temporary" } },
	{ "ASIA key id in the shared file", { .creds = "[default]\n"
	  "aws_access_key_id = ASIAIOSFODNN7EXAMPLE\n"
	  "aws_secret_access_key = x\n", .need_creds = 1 }, 0,
	  { "@CREDS@, profile default: 'ASIAIOSFODNN7EXAMPLE'", "temporary",
	    "transport = api" } },
	{ "AWS_SESSION_TOKEN", { .env = { "AWS_ACCESS_KEY_ID=" DOC_KEY_ID,
	  "AWS_SECRET_ACCESS_KEY=" DOC_SECRET, "AWS_SESSION_TOKEN=FwoGZX" },
	  .need_creds = 1 }, 0, { "AWS_SESSION_TOKEN is set", "temporary" } },
	{ "aws_session_token", { .creds = CREDS_DEFAULT
	  "aws_session_token = FwoGZXIvYXdzEJr\n", .need_creds = 1 }, 0,
	  { "@CREDS@, profile default", "session token", "temporary",
	    "transport = api" } },
	{ "only AWS_ACCESS_KEY_ID",
	  { .env = { "AWS_ACCESS_KEY_ID=" DOC_KEY_ID }, .need_creds = 1 }, 0,
	  { "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not" } },
	{ "world-readable secret file", { .conf = "[ses]\naccess_key_id = "
	  DOC_KEY_ID "\nsecret_access_key_file = @SECRET@\n",
	  .secret = DOC_SECRET, .secretmode = 0644, .need_creds = 1 }, 0,
	  { "@CONF@:3: [ses] secret_access_key_file: @SECRET@ is readable by "
	    "others (mode 0644); chmod 600 it" } },
	{ "secret file o+w", { .conf = "[ses]\naccess_key_id = " DOC_KEY_ID
	  "\nsecret_access_key_file = @SECRET@\n", .secret = DOC_SECRET,
	  .secretmode = 0602, .need_creds = 1 }, 0,
	  { "(mode 0602); chmod 600 it" } },
	{ "secret file missing", { .conf = "[ses]\naccess_key_id = " DOC_KEY_ID
	  "\nsecret_access_key_file = @DIR@/none\n", .need_creds = 1 }, 0,
	  { "@CONF@:3: [ses] secret_access_key_file: cannot read "
	    "@DIR@/none" } },
	{ "secret file empty", { .conf = "[ses]\naccess_key_id = " DOC_KEY_ID
	  "\nsecret_access_key_file = @SECRET@\n", .secret = "\n\n",
	  .need_creds = 1 }, 0, { "secret_access_key_file:", "empty" } },
	{ "secret file holds a derived password", { .conf = "[ses]\n"
	  "access_key_id = " DOC_KEY_ID "\nsecret_access_key_file = @SECRET@\n",
	  .secret = DOC_PW_USE1 "\n", .need_creds = 1 }, 0,
	  { "already derived", "smtp_password_file" } },
	{ "secret file two lines", { .conf = "[ses]\naccess_key_id = "
	  DOC_KEY_ID "\nsecret_access_key_file = @SECRET@\n",
	  .secret = "abc\ndef\n", .need_creds = 1 }, 0,
	  { "secret_access_key_file:", "one line" } },
	{ "world-readable config with a secret", { .conf = "[ses]\n"
	  "access_key_id = " DOC_KEY_ID "\nsecret_access_key = " DOC_SECRET
	  "\n", .confmode = 0644 }, 0,
	  { "@CONF@:3: [ses] secret_access_key:", "readable by others "
	    "(mode 0644)" } },
	{ "world-readable shared file", { .creds = CREDS_DEFAULT,
	  .credsmode = 0604, .need_creds = 1 }, 0,
	  { "@CREDS@ is readable by others (mode 0604); chmod 600 it" } },
	{ "v2 password file", { .conf = "[ses]\naccess_key_id = " DOC_KEY_ID
	  "\nsmtp_password_file = @PW@\n", .pw = V2_PASSWORD "\n",
	  .need_creds = 1 }, 0,
	  { "@CONF@:3: [ses] smtp_password_file: @PW@", "version 2",
	    "535 Signature Version 2 is deprecated", "sesrelay passwd" } },
	{ "malformed password file", { .conf = "[ses]\naccess_key_id = "
	  DOC_KEY_ID "\nsmtp_password_file = @PW@\n", .pw = DOC_SECRET,
	  .need_creds = 1 }, 0,
	  { "@CONF@:3: [ses] smtp_password_file: @PW@ does not hold an SES "
	    "SMTP password" } },
	{ "password file without key id", { .conf = "[ses]\n"
	  "smtp_password_file = @PW@\n", .pw = DOC_PW_USE1, .need_creds = 1 },
	  0, { "@CONF@:2: [ses] smtp_password_file: needs access_key_id" } },
	{ "secret without key id", { .conf = "[ses]\n"
	  "secret_access_key_file = @SECRET@\n", .secret = DOC_SECRET,
	  .need_creds = 1 }, 0,
	  { "@CONF@:2: [ses] secret_access_key_file: needs access_key_id" } },
	{ "key id without secret", { .conf = "[ses]\naccess_key_id = "
	  DOC_KEY_ID "\n", .need_creds = 1 }, 0,
	  { "@CONF@:2: [ses] access_key_id: set without" } },
	{ "no credentials", { .need_creds = 1 }, 0,
	  { "@CONF@: [ses] no SES credentials", "smtp_password_file",
	    "AWS_ACCESS_KEY_ID", "@DIR@/.aws/credentials (no such file)" } },
	{ "no default profile", { .creds = "[other]\naws_access_key_id = "
	  DOC_KEY_ID "\naws_secret_access_key = x\n", .need_creds = 1 }, 0,
	  { "no SES credentials", "@CREDS@ (no profile [default])" } },
	{ "AWS_PROFILE not found", { .creds = CREDS_DEFAULT,
	  .env = { "AWS_PROFILE=nope" }, .need_creds = 1 }, 0,
	  { "@CREDS@: no profile [nope] (from AWS_PROFILE)" } },
	{ "aws_profile not found", { .conf = "[ses]\naws_profile = nope\n",
	  .creds = CREDS_DEFAULT, .need_creds = 1 }, 0,
	  { "@CREDS@: no profile [nope] (from aws_profile)" } },
	{ "profile without keys", { .creds = "[default]\nrole_arn = arn:aws:"
	  "iam::123456789012:role/x\nsource_profile = y\n", .need_creds = 1 },
	  0, { "@CREDS@: [default]: no aws_access_key_id", "temporary" } },
	{ "profile without secret", { .creds = "[default]\n"
	  "aws_access_key_id = " DOC_KEY_ID "\n", .need_creds = 1 }, 0,
	  { "@CREDS@: [default]: aws_access_key_id without "
	    "aws_secret_access_key" } },
	{ "shared file syntax", { .creds = "[default\n", .need_creds = 1 }, 0,
	  { "@CREDS@:1: missing ']'" } },
	{ "shared file duplicate", { .creds = CREDS_DEFAULT
	  "aws_access_key_id = " DOC_KEY_ID "\n", .need_creds = 1 }, 0,
	  { "@CREDS@:4: [default] aws_access_key_id: duplicate key" } },
	{ "bad env override", { .env = { "SESRELAY_RELAY_MODE=x" } }, 0,
	  { "SESRELAY_RELAY_MODE: [relay] mode: must be spool or "
	    "passthrough, not 'x'" } },
	{ "empty env override", { .env = { "SESRELAY_RELAY_MAX_CLIENTS=" } }, 0,
	  { "SESRELAY_RELAY_MAX_CLIENTS: [relay] max_clients: needs a "
	    "value" } },
	{ "env override control char", { .env = {
	  "SESRELAY_RELAY_HOSTNAME=a\x01" "b" } }, 0,
	  { "SESRELAY_RELAY_HOSTNAME: [relay] hostname: control character" } },
	{ "unknown env variable", { .env = { "SESRELAY_RELAY_MODEE=spool" } },
	  0, { "SESRELAY_RELAY_MODEE: unknown variable" } },
	{ "unknown env variable ses", { .env = { "SESRELAY_SES_REGIO=x" } }, 0,
	  { "SESRELAY_SES_REGIO: unknown variable" } },
	{ "env secret never shown", { .env = {
	  "SESRELAY_SES_SECRET_ACCESS_KEY=has space" } }, 0,
	  { "SESRELAY_SES_SECRET_ACCESS_KEY: [ses] secret_access_key: must "
	    "be the secret access key alone" } },
};

START_TEST(test_errors)
{
	struct scenario sc = err_cases[_i].sc;
	char *conf = NULL;
	struct run r;
	size_t i;

	if (err_cases[_i].bigline) {
		size_t head = strlen(sc.conf), big = 10 * 1024 * 1024;

		ck_assert_ptr_nonnull(conf = malloc(head + big + 16));
		memcpy(conf, sc.conf, head);
		memcpy(conf + head, "hostname = ", 11);
		memset(conf + head + 11, 'a', big);
		memcpy(conf + head + 11 + big, "\n", 2);
		sc.conf = conf;
		sc.conflen = head + 11 + big + 1;
	}
	run_scenario(&sc, &r);
	free(conf);
	ck_assert_msg(r.cfg == NULL, "%s: loaded", err_cases[_i].name);
	assert_one_line(r.err);
	for (i = 0; i < NELEM(err_cases[_i].expect) &&
	    err_cases[_i].expect[i] != NULL; i++)
		assert_err_has(&r, err_cases[_i].expect[i]);
	/* secrets never appear in messages */
	ck_assert_ptr_null(strstr(r.err, DOC_SECRET));
	ck_assert_ptr_null(strstr(r.err, "secretFour"));
	ck_assert_ptr_null(strstr(r.err, "has space"));
	run_free(&r);
}
END_TEST

START_TEST(test_missing_file)
{
	char err[CONFIG_ERR_MAX], *path;

	ck_assert_int_ne(asprintf(&path, "%s/none.conf", testdir), -1);
	ck_assert_ptr_null(config_load(path, 0, err));
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	ck_assert_ptr_null(config_load(testdir, 0, err));
	ck_assert_ptr_nonnull(strstr(err, "is a directory"));
	/* a FIFO: refused at once, not waited on */
	char *fifo;
	ck_assert_int_ne(asprintf(&fifo, "%s/fifo.conf", testdir), -1);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_ptr_null(config_load(fifo, 0, err));
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
	unlink(fifo);
	free(fifo);
	ck_assert_ptr_null(config_load("", 0, err));
	assert_one_line(err);
	free(path);
}
END_TEST

/* --- warnings ----------------------------------------------------------- */

static const struct {
	const char *conf;
	const char *want;	/* in the warning */
} warn_cases[] = {
	{ "[ses]\nregion = xx-east-9\n", "xx-east-9 is not a region known" },
	{ "[ses]\nendpoint = email-smtp.eu-west-1.amazonaws.com\n",
	  "is in region eu-west-1 but region is us-east-1" },
	{ "[ses]\nregion = eu-west-1\nendpoint = vpce-1a2b-3c4d.email-smtp."
	  "us-east-2.vpce.amazonaws.com\n", "set region = us-east-2" },
	{ "[ses]\ntls = implicit\nendpoint = email-smtp.us-east-1.amazonaws."
	  "com:587\n", "port 587 is a STARTTLS port" },
	{ "[ses]\nendpoint = email-smtp.us-east-1.amazonaws.com:465\n",
	  "set tls = implicit" },
	{ "[relay]\nallow = 10.1.2.3/8\n", "'10.1.2.3/8' has host bits set" },
	{ "[relay]\nmax_message_size = 50M\n", "at most 40M" },
	{ "[ses]\nsession_messages = 400\n", "about 350 messages" },
};

START_TEST(test_warnings)
{
	struct run r;
	char *logpath, buf[4096];
	int fd, saved;
	ssize_t n;

	ck_assert_int_ne(asprintf(&logpath, "%s/stderr", testdir), -1);
	ck_assert_int_ne(fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600),
	    -1);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	load_ok(warn_cases[_i].conf, &r);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strstr(buf, warn_cases[_i].want) != NULL,
	    "warning '%s' does not contain '%s'", buf, warn_cases[_i].want);
	ck_assert_ptr_nonnull(strstr(buf, r.paths[SUB_CONF]));
	run_free(&r);
	free(logpath);
}
END_TEST

/* --- the credential chain ----------------------------------------------- */

#define L1_PASSWORD	DOC_PW_USW2	/* any valid v4 password */
#define L2_SECRET	"secretTwo/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define L3_KEY_ID	"AKIA3333333333333333"
#define L3_SECRET	"secretThree/bbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define L4_KEY_ID	"AKIA4444444444444444"
#define L4_SECRET	"secretFour/cccccccccccccccccccccccccccc"

/*
 * _i is a set of links (bit 0: smtp_password_file, 1: access_key_id +
 * secret_access_key_file, 2: AWS_* variables, 3: shared file); the
 * lowest one present must win.
 */
START_TEST(test_chain_order)
{
	unsigned set = (unsigned)_i;
	char conf[256] = "[ses]\n";
	struct scenario sc = { .conf = conf, .need_creds = 1 };
	struct run r;
	int n = 0;

	if (set & 3)
		strcat(conf, "access_key_id = " DOC_KEY_ID "\n");
	if (set & 1) {
		strcat(conf, "smtp_password_file = @PW@\n");
		sc.pw = L1_PASSWORD "\n";
	}
	if (set & 2) {
		strcat(conf, "secret_access_key_file = @SECRET@\n");
		sc.secret = L2_SECRET "\n";
	}
	if (set & 4) {
		sc.env[n++] = "AWS_ACCESS_KEY_ID=" L3_KEY_ID;
		sc.env[n++] = "AWS_SECRET_ACCESS_KEY=" L3_SECRET;
	}
	if (set & 8)
		sc.creds = "[default]\naws_access_key_id = " L4_KEY_ID "\n"
		    "aws_secret_access_key = " L4_SECRET "\n";
	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	if (set & 1) {
		ck_assert_str_eq(cur_login->user, DOC_KEY_ID);
		ck_assert_str_eq(cur_login->password, L1_PASSWORD);
		ck_assert_ptr_nonnull(strstr(cur_login->source,
		    "smtp_password_file"));
	} else if (set & 2) {
		ck_assert_str_eq(cur_login->user, DOC_KEY_ID);
		expect_password(L2_SECRET, "us-east-1", cur_login->password);
		ck_assert_ptr_nonnull(strstr(cur_login->source,
		    "secret_access_key_file"));
	} else if (set & 4) {
		ck_assert_str_eq(cur_login->user, L3_KEY_ID);
		expect_password(L3_SECRET, "us-east-1", cur_login->password);
		ck_assert_ptr_nonnull(strstr(cur_login->source,
		    "AWS_ACCESS_KEY_ID"));
	} else {
		ck_assert_str_eq(cur_login->user, L4_KEY_ID);
		expect_password(L4_SECRET, "us-east-1", cur_login->password);
		ck_assert_ptr_nonnull(strstr(cur_login->source,
		    "shared credentials file"));
	}
	/* the source never holds the secret */
	ck_assert_ptr_null(strstr(cur_login->source, "secret/"));
	ck_assert_ptr_null(strstr(cur_login->source, "Two/"));
	run_free(&r);
}
END_TEST

/* Within link 2: the file over the inline secret, which also works. */
START_TEST(test_secret_inline)
{
	struct scenario both = {
		.conf = "[ses]\naccess_key_id = " DOC_KEY_ID "\n"
		    "secret_access_key = " L3_SECRET "\n"
		    "secret_access_key_file = @SECRET@\n",
		.secret = L2_SECRET, .need_creds = 1,
	};
	struct scenario inl = {
		.conf = "[ses]\naccess_key_id = " DOC_KEY_ID "\n"
		    "secret_access_key = " L3_SECRET "\n",
		.confmode = 0640, .need_creds = 1,
	};
	struct run r;

	run_scenario(&both, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	expect_password(L2_SECRET, "us-east-1", cur_login->password);
	run_free(&r);

	run_scenario(&inl, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	expect_password(L3_SECRET, "us-east-1", cur_login->password);
	ck_assert_str_eq(cur_login->user, DOC_KEY_ID);
	ck_assert_ptr_nonnull(strstr(cur_login->source,
	    "secret_access_key in "));
	ck_assert_ptr_nonnull(strstr(cur_login->source,
	    r.paths[SUB_CONF]));
	run_free(&r);
}
END_TEST

/* need_credentials = 0 leaves the chain alone. */
START_TEST(test_no_credentials_needed)
{
	struct scenario sc = {
		.conf = "[ses]\naccess_key_id = " DOC_KEY_ID "\n"
		    "secret_access_key_file = @SECRET@\n",
		.secret = L2_SECRET, .secretmode = 0644,
	};
	struct run r;

	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	/* the setting is kept as it is; nothing read the secret */
	ck_assert_str_eq(r.cfg->access_key_id, DOC_KEY_ID);
	ck_assert_ptr_null(cur_login);
	run_free(&r);
}
END_TEST

/*
 * systemd's credentials directory: a credential "smtp_password" or
 * "secret_access_key" in $CREDENTIALS_DIRECTORY stands for
 * smtp_password_file or secret_access_key_file, unless the
 * configuration names a secret of its own.
 */
#define CD_SECRET	"secretCredsDir/dddddddddddddddddddddddddd"
#define CD_DIR		"CREDENTIALS_DIRECTORY=@DIR@/creds"
#define CD_AWS_ID	"AWS_ACCESS_KEY_ID=" L3_KEY_ID
#define CD_AWS_SECRET	"AWS_SECRET_ACCESS_KEY=" L3_SECRET
static const struct {
	const char *conf;		/* the [ses] section */
	const char *dir_pw;		/* $CREDENTIALS_DIRECTORY/smtp_password */
	const char *dir_secret;		/* .../secret_access_key */
	mode_t dir_mode;		/* of those files; 0: 0400 */
	const char *env[3];
	const char *want_pw;		/* the password, or */
	const char *want_secret;	/* derived from this secret; both
					 * NULL: an error */
	const char *want;		/* in the source, or in the error */
} credsdir_cases[] = {
	/* the secret, with access_key_id from the configuration */
	{ "access_key_id = " DOC_KEY_ID "\n", NULL, CD_SECRET, 0, { CD_DIR },
	  NULL, CD_SECRET, "secret_access_key_file @DIR@/creds/"
	  "secret_access_key (CREDENTIALS_DIRECTORY)" },
	/* an already derived password first, as in the chain */
	{ "access_key_id = " DOC_KEY_ID "\n", DOC_PW_EUW1, CD_SECRET, 0,
	  { CD_DIR }, DOC_PW_EUW1, NULL, "smtp_password_file @DIR@/creds/"
	  "smtp_password (CREDENTIALS_DIRECTORY)" },
	/* the configuration's own secret wins, whichever way it is given */
	{ "access_key_id = " DOC_KEY_ID "\nsecret_access_key_file = @SECRET@\n",
	  DOC_PW_EUW1, CD_SECRET, 0, { CD_DIR }, NULL, L2_SECRET,
	  "secret_access_key_file @SECRET@" },
	{ "access_key_id = " DOC_KEY_ID "\nsecret_access_key = " L3_SECRET "\n",
	  NULL, CD_SECRET, 0, { CD_DIR }, NULL, L3_SECRET,
	  "secret_access_key in " },
	{ "access_key_id = " DOC_KEY_ID "\nsmtp_password_file = @PW@\n",
	  NULL, CD_SECRET, 0, { CD_DIR }, L1_PASSWORD, NULL,
	  "smtp_password_file @PW@" },
	/* neither credential there: on down the chain */
	{ "", NULL, NULL, 0, { CD_DIR, CD_AWS_ID, CD_AWS_SECRET }, NULL,
	  L3_SECRET, "environment AWS_ACCESS_KEY_ID" },
	/* an empty CREDENTIALS_DIRECTORY is no directory */
	{ "", NULL, CD_SECRET, 0, { "CREDENTIALS_DIRECTORY=", CD_AWS_ID,
	  CD_AWS_SECRET }, NULL, L3_SECRET, "environment AWS_ACCESS_KEY_ID" },
	/* errors say where the file came from */
	{ "", NULL, CD_SECRET, 0, { CD_DIR }, NULL, NULL,
	  "CREDENTIALS_DIRECTORY: [ses] secret_access_key_file: needs "
	  "access_key_id" },
	{ "access_key_id = " DOC_KEY_ID "\n", NULL, CD_SECRET, 0644, { CD_DIR },
	  NULL, NULL, "CREDENTIALS_DIRECTORY: [ses] secret_access_key_file: "
	  "@DIR@/creds/secret_access_key is readable by others" },
	{ "access_key_id = " DOC_KEY_ID "\n", V2_PASSWORD, NULL, 0, { CD_DIR },
	  NULL, NULL, "CREDENTIALS_DIRECTORY: [ses] smtp_password_file: "
	  "@DIR@/creds/smtp_password holds a version 2 SMTP password" },
};

static void
write_cred(const char *dir, const char *name, const char *value, mode_t mode)
{
	char path[PATH_MAX + 64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fprintf(fp, "%s\n", value);
	fclose(fp);
	ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_credentials_directory)
{
	char conf[512], dir[PATH_MAX + 16];
	struct scenario sc = { .conf = conf, .need_creds = 1,
	    .secret = L2_SECRET, .pw = L1_PASSWORD };
	mode_t mode = credsdir_cases[_i].dir_mode ?
	    credsdir_cases[_i].dir_mode : 0400;
	struct run r;
	char *want;
	size_t i;

	snprintf(conf, sizeof(conf), "[ses]\n%s", credsdir_cases[_i].conf);
	snprintf(dir, sizeof(dir), "%s/creds", testdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	if (credsdir_cases[_i].dir_pw != NULL)
		write_cred(dir, "smtp_password", credsdir_cases[_i].dir_pw,
		    mode);
	if (credsdir_cases[_i].dir_secret != NULL)
		write_cred(dir, "secret_access_key",
		    credsdir_cases[_i].dir_secret, mode);
	for (i = 0; i < NELEM(credsdir_cases[_i].env); i++)
		sc.env[i] = credsdir_cases[_i].env[i];
	run_scenario(&sc, &r);
	want = expand(credsdir_cases[_i].want, r.subs, NSUBS);
	if (credsdir_cases[_i].want_pw == NULL &&
	    credsdir_cases[_i].want_secret == NULL) {
		ck_assert_msg(r.cfg == NULL, "loaded, wanted: %s", want);
		ck_assert_msg(strstr(r.err, want) != NULL, "error '%s' lacks "
		    "'%s'", r.err, want);
	} else {
		ck_assert_msg(r.cfg != NULL, "%s", r.err);
		ck_assert_msg(strstr(cur_login->source, want) != NULL,
		    "source '%s' lacks '%s'", cur_login->source, want);
		if (credsdir_cases[_i].want_pw != NULL)
			ck_assert_str_eq(cur_login->password,
			    credsdir_cases[_i].want_pw);
		else
			expect_password(credsdir_cases[_i].want_secret,
			    "us-east-1", cur_login->password);
	}
	free(want);
	run_free(&r);
}
END_TEST

#define PROFILES \
	"# the AWS CLI's own layout\n" \
	"[default]\n" \
	"aws_access_key_id = AKIADEFAULT000000000\n" \
	"aws_secret_access_key = secretDefault\n" \
	"region = us-east-1\n" \
	"\n" \
	"[temp]\n" \
	"aws_access_key_id = ASIATEMP000000000000\n" \
	"aws_secret_access_key = secretTemp\n" \
	"aws_session_token = " X500 X500 X500 X500 "\n" \
	"\n" \
	"[p1]\n" \
	"aws_access_key_id=AKIAPROFILE100000000\n" \
	"aws_secret_access_key=secretP1\n" \
	"[p2]\n" \
	"aws_access_key_id: AKIAPROFILE200000000\n" \
	"aws_secret_access_key: secretP2 ; comment\n"

static const struct {
	const char *aws_profile;	/* [ses] aws_profile */
	const char *env[2];
	int in_home;
	const char *want_key;		/* NULL: an error containing want */
	const char *want;
} profile_cases[] = {
	{ NULL, { NULL }, 0, "AKIADEFAULT000000000", "secretDefault" },
	{ NULL, { NULL }, 1, "AKIADEFAULT000000000", "secretDefault" },
	{ NULL, { "AWS_PROFILE=p1" }, 0, "AKIAPROFILE100000000", "secretP1" },
	{ NULL, { "AWS_PROFILE=p1" }, 1, "AKIAPROFILE100000000", "secretP1" },
	{ "p2", { NULL }, 0, "AKIAPROFILE200000000", "secretP2" },
	{ "p2", { "AWS_PROFILE=p1" }, 0, "AKIAPROFILE200000000", "secretP2" },
	{ NULL, { "SESRELAY_SES_AWS_PROFILE=p2", "AWS_PROFILE=p1" }, 0,
	  "AKIAPROFILE200000000", "secretP2" },
	{ NULL, { "AWS_PROFILE=" }, 0, "AKIADEFAULT000000000",
	  "secretDefault" },
	{ NULL, { "AWS_PROFILE=temp" }, 0, NULL, "session token" },
	{ NULL, { "AWS_PROFILE=P1" }, 0, NULL, "no profile [P1]" },
};

START_TEST(test_profiles)
{
	char conf[128];
	struct scenario sc = {
		.conf = conf, .creds = PROFILES, .need_creds = 1,
		.creds_in_home = profile_cases[_i].in_home,
	};
	struct run r;

	snprintf(conf, sizeof(conf), "[ses]\n%s%s\n",
	    profile_cases[_i].aws_profile ? "aws_profile = " : "",
	    profile_cases[_i].aws_profile ? profile_cases[_i].aws_profile : "");
	sc.env[0] = profile_cases[_i].env[0];
	sc.env[1] = profile_cases[_i].env[1];
	run_scenario(&sc, &r);
	if (profile_cases[_i].want_key == NULL) {
		ck_assert_ptr_null(r.cfg);
		assert_one_line(r.err);
		assert_err_has(&r, profile_cases[_i].want);
		ck_assert_ptr_null(strstr(r.err, "secret"));
	} else {
		ck_assert_msg(r.cfg != NULL, "%s", r.err);
		ck_assert_str_eq(cur_login->user,
		    profile_cases[_i].want_key);
		expect_password(profile_cases[_i].want, "us-east-1",
		    cur_login->password);
		ck_assert_ptr_nonnull(strstr(cur_login->source,
		    r.paths[SUB_CREDS]));
	}
	run_free(&r);
}
END_TEST

/* SPEC.md's vectors, end to end through the file and the region. */
static const struct {
	const char *secret;
	const char *region;
	const char *password;
} vector_cases[] = {
	{ DOC_SECRET, "us-east-1", DOC_PW_USE1 },
	{ DOC_SECRET, "us-west-2", DOC_PW_USW2 },
	{ DOC_SECRET, "eu-west-1", DOC_PW_EUW1 },
	{ "some+secret+key", "eu-central-1",
	  "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2" },
};

START_TEST(test_spec_vectors)
{
	char conf[256], secret[128];
	struct scenario sc = { .conf = conf, .secret = secret,
	    .need_creds = 1 };
	struct run r;

	snprintf(conf, sizeof(conf), "[ses]\nregion = %s\naccess_key_id = "
	    DOC_KEY_ID "\nsecret_access_key_file = @SECRET@\n",
	    vector_cases[_i].region);
	/* a trailing newline and blanks are not part of the secret */
	snprintf(secret, sizeof(secret), "%s \r\n", vector_cases[_i].secret);
	run_scenario(&sc, &r);
	ck_assert_msg(r.cfg != NULL, "%s", r.err);
	ck_assert_str_eq(cur_login->password, vector_cases[_i].password);
	ck_assert_str_eq(cur_login->user, DOC_KEY_ID);
	ck_assert_int_eq(strncmp(cur_login->source,
	    "secret_access_key_file /", 24), 0);
	ck_assert_ptr_nonnull(strstr(cur_login->source,
	    r.paths[SUB_SECRET]));
	run_free(&r);
}
END_TEST

/* --- [sender] matching -------------------------------------------------- */

static const char sender_conf[] =
    "[sender alice@example.com]\nconfiguration_set = alice\n"
    "[sender example.com]\nconfiguration_set = example\n"
    "[sender mail.example.com]\nconfiguration_set = mail\n"
    "[sender org]\nconfiguration_set = org\n";

static const struct {
	int with_star;
	const char *address;
	const char *want;	/* the pattern; NULL: no rule */
} sender_cases[] = {
	{ 0, "alice@example.com", "alice@example.com" },
	{ 0, "ALICE@Example.COM", "alice@example.com" },
	{ 0, "bob@example.com", "example.com" },
	{ 0, "bob@EXAMPLE.com", "example.com" },
	{ 0, "bob@b.example.com", "example.com" },	/* subdomain */
	{ 0, "bob@x.y.example.com", "example.com" },
	{ 0, "bob@mail.example.com", "mail.example.com" }, /* deeper wins */
	{ 0, "bob@a.mail.example.com", "mail.example.com" },
	{ 0, "alice@mail.example.com", "mail.example.com" },
	{ 0, "bob@example.com.", "example.com" },
	{ 0, "x@foo.org", "org" },			/* parent domain */
	{ 0, "x@notexample.com", NULL },	/* labels, not suffixes */
	{ 0, "x@example.com.au", NULL },
	{ 0, "x@example.net", NULL },
	{ 0, "example.com", NULL },		/* not an address */
	{ 0, "", NULL },
	{ 0, NULL, NULL },
	{ 1, "x@example.net", "*" },
	{ 1, "x@notexample.com", "*" },
	{ 1, "postmaster", "*" },
	{ 1, "alice@example.com", "alice@example.com" },
	{ 1, "bob@b.example.com", "example.com" },
	{ 1, "", NULL },
	{ 1, NULL, NULL },
};

START_TEST(test_sender_match)
{
	char conf[512];
	const struct sender_rule *s;
	struct run r;

	snprintf(conf, sizeof(conf), "%s%s", sender_cases[_i].with_star ?
	    "[sender *]\nconfiguration_set = star\n" : "", sender_conf);
	load_ok(conf, &r);
	s = config_sender_match(r.cfg, sender_cases[_i].address);
	if (sender_cases[_i].want == NULL)
		ck_assert_ptr_null(s);
	else {
		ck_assert_ptr_nonnull(s);
		ck_assert_str_eq(s->pattern, sender_cases[_i].want);
	}
	run_free(&r);
}
END_TEST

/* --- config_client_allowed ---------------------------------------------- */

static const struct {
	int dflt;		/* the default allow list */
	int family;
	const char *addr;	/* NULL: AF_UNIX */
	int want;
} client_cases[] = {
	{ 0, AF_INET, "10.1.2.3", 1 },
	{ 0, AF_INET, "10.255.255.255", 1 },
	{ 0, AF_INET, "11.0.0.1", 0 },
	{ 0, AF_INET, "9.255.255.255", 0 },
	{ 0, AF_INET, "192.168.1.7", 1 },
	{ 0, AF_INET, "192.168.1.8", 0 },
	{ 0, AF_INET, "172.31.255.255", 1 },
	{ 0, AF_INET, "172.32.0.0", 0 },
	{ 0, AF_INET, "127.0.0.1", 0 },
	{ 0, AF_INET6, "2001:db8::5", 1 },
	{ 0, AF_INET6, "2001:db8:ffff:ffff::1", 1 },
	{ 0, AF_INET6, "2001:db9::", 0 },
	{ 0, AF_INET6, "::1", 1 },
	{ 0, AF_INET6, "::2", 0 },
	{ 0, AF_INET6, "fe80::1", 0 },
	{ 0, AF_INET6, "::ffff:10.9.9.9", 1 },		/* v4-mapped */
	{ 0, AF_INET6, "::ffff:172.20.0.1", 1 },
	{ 0, AF_INET6, "::ffff:11.0.0.1", 0 },
	{ 0, AF_UNIX, NULL, 1 },
	{ 1, AF_INET, "127.0.0.1", 1 },
	{ 1, AF_INET, "127.255.0.9", 1 },
	{ 1, AF_INET, "128.0.0.1", 0 },
	{ 1, AF_INET, "10.0.0.1", 0 },
	{ 1, AF_INET6, "::1", 1 },
	{ 1, AF_INET6, "::ffff:127.0.0.1", 1 },
	{ 1, AF_INET6, "::ffff:10.0.0.1", 0 },
	{ 1, AF_INET6, "2001:db8::1", 0 },
	{ 1, AF_UNIX, NULL, 1 },
};

START_TEST(test_client_allowed)
{
	struct sockaddr_storage ss;
	struct run r;

	load_ok(client_cases[_i].dflt ? "" : "[relay]\nallow = 10.0.0.0/8 "
	    "192.168.1.7 2001:db8::/32 ::1/128 172.16.0.0/12\n", &r);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)client_cases[_i].family;
	if (client_cases[_i].family == AF_INET)
		ck_assert_int_eq(inet_pton(AF_INET, client_cases[_i].addr,
		    &((struct sockaddr_in *)&ss)->sin_addr), 1);
	else if (client_cases[_i].family == AF_INET6)
		ck_assert_int_eq(inet_pton(AF_INET6, client_cases[_i].addr,
		    &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	ck_assert_int_eq(config_client_allowed(r.cfg,
	    (struct sockaddr *)&ss), client_cases[_i].want);
	run_free(&r);
}
END_TEST

START_TEST(test_client_other_family)
{
	struct sockaddr_storage ss;
	struct run r;

	load_ok("[relay]\nallow = 0.0.0.0/0 ::/0\n", &r);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_INET;
	ck_assert_int_eq(config_client_allowed(r.cfg, (struct sockaddr *)&ss),
	    1);
	ss.ss_family = AF_UNSPEC;
	ck_assert_int_eq(config_client_allowed(r.cfg, (struct sockaddr *)&ss),
	    0);
	ck_assert_int_eq(config_client_allowed(r.cfg, NULL), 0);
	run_free(&r);
}
END_TEST

/* --- robustness --------------------------------------------------------- */

static const char *const fragments[] = {
	"[relay]", "[ses]", "[queue]", "[sender a.com]", "[sender *]", "[",
	"]", "mode = spool", "listen = [::1]:25", "allow = ::1/128",
	"max_clients = 9", "= x", "x =", ";", "#", " ", "\t", "\r", "\n",
	"\n", "\n", "\0", "\xff", "\xc3\xa9", "\xef\xbb\xbf", "arn = ",
	"arn:aws:ses:us-east-1:123456789012:identity/a.com", "region = ",
	"us-east-1", "endpoint = [", ":", "=", "timeout = 5m", "4294967296",
};

/* Pseudo-random files made of fragments and bytes: never a crash, and
 * always either a snapshot or one line of error. */
START_TEST(test_garbage)
{
	unsigned seed = 12345u + (unsigned)_i * 7919u;
	char buf[2048];
	size_t len = 0, n, i;
	struct scenario sc;
	struct run r;

	for (i = 0; i < 60 && len < sizeof(buf) - 64; i++) {
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 16) % 5 == 0) {
			buf[len++] = (char)(seed >> 8);
			continue;
		}
		const char *f = fragments[(seed >> 16) % NELEM(fragments)];
		n = *f == '\0' ? 1 : strlen(f);
		memcpy(buf + len, f, n);
		len += n;
	}
	memset(&sc, 0, sizeof(sc));
	sc.conf = buf;
	sc.conflen = len;
	run_scenario(&sc, &r);
	if (r.cfg == NULL)
		assert_one_line(r.err);
	run_free(&r);
}
END_TEST

/* --- the sample config and the manual ----------------------------------- */

static const char *const all_keys[] = {
	"listen", "mode", "spool_dir", "hostname", "allow", "max_clients",
	"max_message_size", "max_recipients", "timeout", "tls_cert", "tls_key",
	"auth", "sasl_service", "user", "log_format", "metrics_listen",
	"region", "endpoint", "tls", "tls_verify_name", "ca_file",
	"access_key_id", "secret_access_key_file", "secret_access_key",
	"smtp_password_file", "aws_profile", "max_connections",
	"max_send_rate", "configuration_set", "message_tags", "null_sender",
	"session_messages", "retry_min", "retry_max", "lifetime", "bounce",
	"source_arn", "from_arn", "return_path_arn", "arn",
	"instances", "api_endpoint", "account_poll", "sandbox_recipients",
};

static char *
source_path(const char *rel)
{
	const char *srcdir = getenv("srcdir");
	char *p;

	ck_assert_int_ne(asprintf(&p, "%s/%s", srcdir ? srcdir : ".", rel),
	    -1);
	return p;
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *s;
	long n;

	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	ck_assert_ptr_nonnull(s = malloc((size_t)n + 1));
	ck_assert_int_eq(fread(s, 1, (size_t)n, fp), n);
	s[n] = '\0';
	fclose(fp);
	return s;
}

START_TEST(test_sample_loads)
{
	char err[CONFIG_ERR_MAX], *path = source_path("etc/sesrelay.conf");
	struct config *c;

	setenv("AWS_ACCESS_KEY_ID", DOC_KEY_ID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", DOC_SECRET, 1);
	c = config_load(path, 1, err);
	ck_assert_msg(c != NULL, "%s", err);
	cur_login = aws_creds_smtp_login_for(c, err, sizeof(err));
	ck_assert_msg(cur_login != NULL, "%s", err);
	ck_assert_str_eq(cur_login->password, DOC_PW_USE1);
	ses_smtp_login_unref(cur_login);
	cur_login = NULL;
	config_unref(c);
	free(path);
}
END_TEST

/* want, followed by a blank or the end of the line */
static int
has_item(const char *text, const char *want)
{
	const char *p;
	size_t n = strlen(want);

	for (p = text; (p = strstr(p, want)) != NULL; p += n)
		if (p[n] == ' ' || p[n] == '\n')
			return 1;
	return 0;
}

/* Every key appears in the sample (as "key =" or "#key =") and in the
 * manual (".It Cm key ..."). */
START_TEST(test_sample_and_manual_complete)
{
	char *sp = source_path("etc/sesrelay.conf");
	char *mp = source_path("man/sesrelay.conf.5");
	char *sample = slurp(sp), *man = slurp(mp), want[64];
	const char *k = all_keys[_i];

	snprintf(want, sizeof(want), "\n%s =", k);
	if (strstr(sample, want) == NULL) {
		snprintf(want, sizeof(want), "\n#%s =", k);
		ck_assert_msg(strstr(sample, want) != NULL,
		    "%s not in the sample config", k);
	}
	snprintf(want, sizeof(want), ".It Cm %s", k);
	ck_assert_msg(has_item(man, want), "%s not in the manual", k);
	free(sample);
	free(man);
	free(sp);
	free(mp);
}
END_TEST

/* --- main --------------------------------------------------------------- */

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

#define TC(name) do {							\
	tc = tcase_create(name);					\
	tcase_add_checked_fixture(tc, setup, teardown);			\
	tcase_set_timeout(tc, 120);					\
	suite_add_tcase(s, tc);						\
} while (0)

	TC("parse");
	tcase_add_test(tc, test_every_key);
	tcase_add_loop_test(tc, test_defaults, 0, NELEM(empty_confs));
	tcase_add_loop_test(tc, test_endpoint, 0, NELEM(endpoint_cases));
	tcase_add_loop_test(tc, test_syntax_ok, 0, NELEM(syntax_cases));
	tcase_add_test(tc, test_long_value);

	TC("units");
	tcase_add_loop_test(tc, test_size, 0, NELEM(size_cases));
	tcase_add_loop_test(tc, test_duration, 0, NELEM(duration_cases));
	tcase_add_test(tc, test_parse_null);
	tcase_add_loop_test(tc, test_ranges, 0, NELEM(range_cases));

	TC("env");
	tcase_add_loop_test(tc, test_env_override, 0, NELEM(env_cases));
	tcase_add_loop_test(tc, test_region_fallback, 0, NELEM(region_cases));

	TC("errors");
	tcase_add_loop_test(tc, test_errors, 0, NELEM(err_cases));
	tcase_add_test(tc, test_missing_file);
	tcase_add_loop_test(tc, test_warnings, 0, NELEM(warn_cases));

	TC("credentials");
	tcase_add_loop_test(tc, test_chain_order, 1, 16);
	tcase_add_test(tc, test_secret_inline);
	tcase_add_test(tc, test_no_credentials_needed);
	tcase_add_loop_test(tc, test_profiles, 0, NELEM(profile_cases));
	tcase_add_loop_test(tc, test_credentials_directory, 0,
	    NELEM(credsdir_cases));
	tcase_add_loop_test(tc, test_spec_vectors, 0, NELEM(vector_cases));

	TC("sender");
	tcase_add_loop_test(tc, test_sender_match, 0, NELEM(sender_cases));

	TC("client");
	tcase_add_loop_test(tc, test_client_allowed, 0, NELEM(client_cases));
	tcase_add_test(tc, test_client_other_family);

	TC("robust");
	tcase_add_loop_test(tc, test_garbage, 0, 300);

	TC("sample");
	tcase_add_test(tc, test_sample_loads);
	tcase_add_loop_test(tc, test_sample_and_manual_complete, 0,
	    NELEM(all_keys));
#undef TC
	return s;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int
main(void)
{
	SRunner *sr;
	int failed;

	clear_env();
	snprintf(topdir, sizeof(topdir), "%s/check_config.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(topdir) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	/* No ~/.aws/credentials of whoever runs the tests. */
	setenv("HOME", topdir, 1);
	snprintf(testdir, sizeof(testdir), "%s", topdir);

	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(topdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
