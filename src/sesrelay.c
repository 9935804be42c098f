/*
 * sesrelay.c — the admin tool: passwd, check, queue, flush.
 * See sesrelay(8).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "account_check.h"
#include "aws_creds.h"
#include "config.h"
#include "health.h"
#include "http_client.h"
#include "log.h"
#include "maildrop_file.h"
#include "relay_client.h"
#include "ses_api.h"
#include "ses_auth.h"
#include "spool.h"
#include "version.h"
#include "xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: sesrelay passwd [--region REGION]   (secret on stdin)\n"
	    "       sesrelay check [-c file] [--json]\n"
	    "       sesrelay queue [-c file]\n"
	    "       sesrelay flush [-c file]\n"
	    "       sesrelay health [-s] [-c file]\n"
	    "       sesrelay -V\n");
	exit(2);
}

/* Read one line from stdin without echoing it on a terminal. */
static int
read_secret(char *buf, size_t buflen)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO) &&
	    tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fprintf(stderr, "Secret access key: ");
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *got = fgets(buf, (int)buflen, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (got == NULL)
		return -1;
	size_t len = strlen(buf);
	if (len == buflen - 1 && buf[len - 1] != '\n')
		return -1;	/* longer than any secret access key */
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
	    buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	return 0;
}

static int
cmd_passwd(int argc, char *argv[])
{
	const char *region = getenv("AWS_REGION");
	if (region == NULL || *region == '\0')
		region = "us-east-1";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			region = argv[++i];
		else if (strncmp(argv[i], "--region=", 9) == 0)
			region = argv[i] + 9;
		else
			usage();
	}
	if (!ses_auth_region_valid(region)) {
		fprintf(stderr, "sesrelay passwd: '%s' is not a region name "
		    "(like us-east-1)\n", region);
		return 2;
	}
	if (!ses_auth_region_known(region))
		fprintf(stderr, "sesrelay passwd: warning: region %s is not "
		    "known to have an SES SMTP endpoint; deriving anyway\n",
		    region);

	char secret[512], password[SES_SMTP_PASSWORD_LEN + 1];
	if (read_secret(secret, sizeof(secret)) != 0 || secret[0] == '\0') {
		wipe(secret, sizeof(secret));
		fprintf(stderr, "sesrelay passwd: no secret access key on "
		    "standard input (it is never taken from the command "
		    "line)\n");
		return 2;
	}
	if (!ses_auth_secret_valid(secret)) {
		/* a blank inside, or a stray character, derives a password
		 * that SES refuses: say so now */
		wipe(secret, sizeof(secret));
		fprintf(stderr, "sesrelay passwd: standard input must hold "
		    "the secret access key alone, on one line (printable "
		    "characters without blanks)\n");
		return 2;
	}
	int rc = ses_auth_smtp_password(secret, strlen(secret), region,
	    password);
	wipe(secret, sizeof(secret));
	if (rc != 0) {
		fprintf(stderr, "sesrelay passwd: cannot derive a password\n");
		return 1;
	}
	printf("%s\n", password);
	wipe(password, sizeof(password));
	return 0;
}

struct check_state {
	struct event_base *base;
	struct check_report *report;
	int ok;
	int done;
};

static void
check_trace(const char *step, int ok, const char *detail, void *arg)
{
	struct check_state *st = arg;
	check_report_line(st->report, step, ok ? "ok" : "FAIL", "%s", detail);
}

static void
check_done(const struct relay_result *res, void *arg)
{
	struct check_state *st = arg;
	st->ok = res->status == RELAY_OK;
	st->done = 1;
	if (!st->ok)
		check_report_line(st->report, "result", "FAIL", "%d %s %s",
		    res->reply.code, res->reply.enhanced, res->reply.text);
	else
		check_report_line(st->report, "result", "ok", "SES accepted "
		    "the relay's credentials");
	event_base_loopexit(st->base, NULL);
}

struct creds_wait {
	struct event_base *base;
	int done, ok;
	char err[AWS_CREDS_ERR_MAX];
};

static void
creds_notify(int ok, const char *err, void *arg)
{
	struct creds_wait *w = arg;

	w->done = 1;
	w->ok = ok;
	snprintf(w->err, sizeof(w->err), "%s", err != NULL ? err : "");
	event_base_loopexit(w->base, NULL);
}

/*
 * transport = api: the credential chain as the daemon runs it (its first
 * fetch, within 20 s), then the account section's signed requests
 * (GetAccount, GetEmailIdentity) with those credentials.
 */
static int
check_api(struct config *cfg, int json)
{
	char err[AWS_CREDS_ERR_MAX], url[SES_API_URL_MAX];
	struct check_report *report = check_report_new(json);
	struct event_base *base = event_base_new();
	struct http_client *http = http_client_new(base, cfg->ca_file, err,
	    sizeof(err));
	struct aws_creds_provider *prov = NULL;
	struct aws_credentials *creds = NULL;
	struct creds_wait w = { .base = base };

	ses_api_base_url(cfg->api_endpoint, cfg->region, url, sizeof(url));
	check_report_line(report, "config", "ok", "%s (transport api, SES API "
	    "v2 at %s)", cfg->path, url);
	if (http == NULL)
		check_report_line(report, "credentials", "FAIL", "%s", err);
	else if ((prov = aws_creds_provider_new(base, http, cfg, err,
	    sizeof(err))) == NULL)
		check_report_line(report, "credentials", "FAIL", "%s", err);
	else {
		struct timeval limit = { 20, 0 };

		aws_creds_provider_set_notify(prov, creds_notify, &w);
		if ((creds = aws_creds_current(prov)) == NULL) {
			event_base_loopexit(base, &limit);
			event_base_dispatch(base);
			creds = aws_creds_current(prov);
		}
		aws_creds_provider_set_notify(prov, NULL, NULL);
		if (creds != NULL)
			check_report_line(report, "credentials", "ok", "%s "
			    "(key %.8s..., %s%s)", creds->source,
			    creds->access_key_id, creds->session_token != NULL ?
			    "temporary" : "long-lived", creds->expiration != 0 ?
			    ", refreshed before they expire" : "");
		else
			check_report_line(report, "credentials", "FAIL", "%s",
			    w.done ? w.err : "no answer within 20 s from the "
			    "credential source");
	}
	int have = creds != NULL;
	account_check_run(report, base, http, cfg, creds, have ? NULL :
	    "no credentials");
	aws_credentials_unref(creds);
	aws_creds_provider_free(prov);
	http_client_free(http);
	int fails = check_report_finish(report);
	event_base_free(base);
	config_unref(cfg);
	return fails == 0 && have ? 0 : 1;
}

static const char *
config_path_arg(int argc, char *argv[])
{
	const char *path = SYSCONFDIR "/sesrelay/sesrelay.conf";
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch == 'c')
			path = optarg;
		else
			usage();
	}
	if (optind != argc)
		usage();
	return path;
}

static int
cmd_check(int argc, char *argv[])
{
	char err[CONFIG_ERR_MAX];
	int json = 0, n = 0;
	/* --json: the whole report as one JSON object (account_check.h) */
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			argv[n++] = argv[i];
	}
	argc = n;
	const char *path = config_path_arg(argc, argv);
	struct config *cfg = config_load(path, 1, err);
	if (cfg == NULL) {
		fprintf(stderr, "sesrelay check: %s\n", err);
		return 2;
	}
	if (cfg->transport == TRANSPORT_API)
		return check_api(cfg, json);
	struct ses_smtp_login *login = aws_creds_smtp_login_for(cfg, err,
	    sizeof(err));
	if (login == NULL) {
		fprintf(stderr, "sesrelay check: %s\n", err);
		config_unref(cfg);
		return 2;
	}
	struct check_report *report = check_report_new(json);
	check_report_line(report, "config", "ok", "%s (credentials: %s)",
	    cfg->path, login->source);
	check_report_line(report, "endpoint", "ok", "%s:%u, tls %s, "
	    "certificate name %s", cfg->endpoint_host, cfg->endpoint_port,
	    cfg->tls == UPSTREAM_TLS_STARTTLS ? "starttls" : "implicit",
	    cfg->tls_verify_name);

	struct check_state st = { .base = event_base_new(), .report = report };
	struct evdns_base *dns = evdns_base_new(st.base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS);
	struct relay_pool *pool = relay_pool_new(st.base, dns, cfg, err,
	    sizeof(err));
	if (pool == NULL) {
		fprintf(stderr, "sesrelay check: %s\n", err);
		return 2;
	}
	relay_pool_set_login(pool, login);
	ses_smtp_login_unref(login);
	relay_pool_set_trace(pool, check_trace, &st);
	relay_probe(pool, check_done, &st);
	event_base_dispatch(st.base);
	relay_pool_free(pool);

	/* the account, through the SES API v2 */
	struct aws_credentials *creds = aws_creds_resolve_static(cfg, err,
	    sizeof(err));
	if (creds != NULL && creds->secret_access_key == NULL) {
		snprintf(err, sizeof(err), "%s holds an SMTP password only, "
		    "which cannot sign SES API requests (give access_key_id and "
		    "secret_access_key_file)", creds->source);
		aws_credentials_unref(creds);
		creds = NULL;
	}
	char herr[256];
	struct http_client *http = http_client_new(st.base, cfg->ca_file,
	    herr, sizeof(herr));
	if (http == NULL)
		check_report_line(report, "api", "FAIL", "%s", herr);
	else
		account_check_run(report, st.base, http, cfg, creds, err);
	http_client_free(http);
	if (creds != NULL)
		aws_credentials_unref(creds);
	int fails = check_report_finish(report);

	evdns_base_free(dns, 0);
	event_base_free(st.base);
	config_unref(cfg);
	return st.done && st.ok && fails == 0 ? 0 : 1;
}

static void
print_entry(struct spool_envelope *env, void *arg)
{
	size_t *count = arg;
	size_t left = 0;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpt_state[i] == SPOOL_RCPT_PENDING)
			left++;
	time_t age = time(NULL) - env->created;
	/* as the client sent it: MAIL FROM:<> goes upstream as null_sender */
	printf("%-16s %7llds %-6s %6llu <%s> %zu/%zu %u %s\n", env->id,
	    (long long)age, env->is_bounce ? "bounce" : "mail",
	    (unsigned long long)env->size, env->null_path ? "" : env->sender,
	    left, env->nrcpts,
	    env->attempts, env->last_error != NULL ? env->last_error : "-");
	(*count)++;
	spool_envelope_free(env);
}

/* 1 if pid runs sesrelayd: a pid file left by a crash, or written by the
 * spool's (unprivileged) owner, must not make root signal anything else. */
static int
is_sesrelayd(pid_t pid)
{
	char path[64], comm[32];
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	int ok = fgets(comm, sizeof(comm), f) != NULL &&
	    strcmp(comm, "sesrelayd\n") == 0;
	fclose(f);
	return ok;
}

/* What waits in the maildrop (sendmail_fallback = spool), if any. */
static void
print_maildrop(const char *spool_dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/maildrop", spool_dir);
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	size_t waiting = 0, bad = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (md_name_ok(de->d_name))
			waiting++;
		else if (n == MD_NAME_LEN + 4 &&
		    strcmp(de->d_name + MD_NAME_LEN, ".bad") == 0)
			bad++;
	}
	closedir(d);
	if (waiting > 0 || bad > 0)
		printf("%zu message%s in %s, waiting for the daemon; %zu "
		    "refused or malformed (*.bad, see the log)\n", waiting,
		    waiting == 1 ? "" : "s", path, bad);
}

static int
cmd_queue(int argc, char *argv[])
{
	char err[CONFIG_ERR_MAX];
	int flush = strcmp(argv[0], "flush") == 0;
	struct config *cfg = config_load(config_path_arg(argc, argv), 0, err);
	if (cfg == NULL) {
		fprintf(stderr, "sesrelay %s: %s\n", argv[0], err);
		return 2;
	}
	if (cfg->mode != RELAY_MODE_SPOOL) {
		fprintf(stderr, "sesrelay %s: mode = passthrough keeps no "
		    "queue\n", argv[0]);
		config_unref(cfg);
		return 1;
	}
	if (flush) {
		char path[4096];
		long pid = 0;
		snprintf(path, sizeof(path), "%s/sesrelayd.pid",
		    cfg->spool_dir);
		FILE *f = fopen(path, "re");
		const char *why = NULL;
		if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
			why = "no daemon running";
		else if (!is_sesrelayd((pid_t)pid))
			why = "that process is not sesrelayd (a stale pid "
			    "file?)";
		else if (kill((pid_t)pid, SIGUSR1) != 0)
			why = strerror(errno);
		if (f != NULL)
			fclose(f);
		if (why != NULL) {
			fprintf(stderr, "sesrelay flush: cannot signal the "
			    "daemon (pid file %s, pid %ld): %s\n", path, pid,
			    why);
			config_unref(cfg);
			return 1;
		}
		printf("sesrelay flush: asked sesrelayd (pid %ld) to retry "
		    "every queued message now\n", pid);
		config_unref(cfg);
		return 0;
	}
	struct spool *sp = spool_open(NULL, cfg->spool_dir, err, sizeof(err));
	if (sp == NULL) {
		fprintf(stderr, "sesrelay queue: %s\n", err);
		config_unref(cfg);
		return 1;
	}
	size_t count = 0;
	printf("%-16s %8s %-6s %6s %s %s %s %s\n", "id", "age", "kind", "size",
	    "sender", "left/rcpts", "attempts", "last-error");
	spool_scan(sp, print_entry, &count);
	printf("%zu message%s in %s/queue\n", count, count == 1 ? "" : "s",
	    cfg->spool_dir);
	print_maildrop(cfg->spool_dir);
	spool_close(sp);
	config_unref(cfg);
	return 0;
}

/*
 * Is the local sesrelayd serving?  The SMTP greeting on the first listen
 * address, then (unless -s, SMTP only: for a liveness check that must not
 * fail while SES is away) /healthz on metrics_listen if set.  Exit 0 if
 * all pass, 1 if one fails, 2 on a bad configuration.
 */
static int
cmd_health(int argc, char *argv[])
{
	const char *path = SYSCONFDIR "/sesrelay/sesrelay.conf";
	char err[CONFIG_ERR_MAX], line[1024];
	int ch, smtp_only = 0, rc = 0;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:s")) != -1) {
		if (ch == 'c')
			path = optarg;
		else if (ch == 's')
			smtp_only = 1;
		else
			usage();
	}
	if (optind != argc)
		usage();
	struct config *cfg = config_load(path, 0, err);
	if (cfg == NULL) {
		fprintf(stderr, "sesrelay health: %s\n", err);
		return 2;
	}
	if (cfg->nlisten == 0) {
		fprintf(stderr, "sesrelay health: %s: [relay] listen: no "
		    "address to check\n", cfg->path);
		config_unref(cfg);
		return 2;
	}
	if (health_smtp(&cfg->listen[0], line, sizeof(line)) != 0)
		rc = 1;
	printf("%s\n", line);
	if (!smtp_only && cfg->metrics_listen != NULL) {
		if (health_http(cfg->metrics_listen, line, sizeof(line)) != 0)
			rc = 1;
		printf("%s\n", line);
	}
	config_unref(cfg);
	return rc;
}

int
main(int argc, char *argv[])
{
	log_init("sesrelay", 1, 0);
	no_core_dumps();	/* passwd and check hold secrets */
	if (argc < 2)
		usage();
	argc--;
	argv++;
	if (strcmp(argv[0], "passwd") == 0)
		return cmd_passwd(argc, argv);
	if (strcmp(argv[0], "check") == 0)
		return cmd_check(argc, argv);
	if (strcmp(argv[0], "queue") == 0 || strcmp(argv[0], "flush") == 0)
		return cmd_queue(argc, argv);
	if (strcmp(argv[0], "health") == 0)
		return cmd_health(argc, argv);
	if (strcmp(argv[0], "-V") == 0 || strcmp(argv[0], "--version") == 0) {
		version_print(stdout, "sesrelay");
		return 0;
	}
	usage();
}
