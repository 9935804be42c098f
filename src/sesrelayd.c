/*
 * sesrelayd.c — the daemon: options, configuration, privileges, signals
 * and the event loop.  See sesrelayd(8).
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "account.h"
#include "aws_creds.h"
#include "http_client.h"
#include "log.h"
#include "metrics.h"
#include "maildrop.h"
#include "queue.h"
#include "relay_client.h"
#include "service.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls.h"
#include "upstream.h"
#include "version.h"
#include "xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct daemon_state {
	struct event_base *base;
	struct evdns_base *dns;
	struct config *cfg;
	const char *config_path;
	struct relay_pool *pool;
	struct ses_smtp_login *login;	/* transport = smtp */
	struct upstream *up;		/* the pool above, or the API's */
	struct http_client *http;	/* SES API v2: the api transport and
					 * the account watcher */
	struct aws_creds_provider *creds;	/* transport = api */
	struct aws_creds_provider *next_creds;	/* reload: until its first
					 * fetch, d->creds stays in use */
	struct smtp_server *server;
	struct spool *spool;		/* spool mode */
	struct queue *queue;
	struct metrics *metrics;	/* [relay] metrics_listen */
	time_t started;
	char *sasl_app;			/* sasl_service libsasl2 started with */
	struct account *account;	/* NULL: not watched */
	struct maildrop *maildrop;	/* sendmail.sesrelay's fallback */
	struct aws_credentials *static_creds;	/* sign the account's
					 * requests with transport = smtp */
	char *pidfile;
	struct event *hard_stop;
	struct event *status_ev;	/* STATUS= updates, under systemd */
	char status[256];		/* the last one sent */
	int stopping;
};

/* How often the STATUS= line for the service manager is refreshed. */
#define STATUS_SECONDS 10

/* After SIGTERM, exit within this many seconds whatever is in flight:
 * what was accepted is in the spool and goes out after the restart. */
#define STOP_DEADLINE 40

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: sesrelayd [-dfnV] [-c file]\n");
	exit(2);
}

/* Descriptors beyond one per client: upstream sessions (and their
 * replacements), listeners, spool files, metrics, logs, DNS. */
#define FD_RESERVE 64

/* Let the soft open-files limit grow towards what max_clients needs (as
 * nginx's worker_rlimit_nofile): a default soft limit of 1024 would
 * otherwise cap a max_clients of 1000 well below it.  Past the hard
 * limit, say so once; clients beyond it wait in the backlog. */
static void
raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->max_clients +
	    2 * (rlim_t)cfg->max_connections + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ?
	    need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		log_warnx("open files limit %llu is below the %llu that "
		    "max_clients = %u needs; clients past it wait until "
		    "others leave", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)need, cfg->max_clients);
}

/* The TLS files the configuration names must load, so that a bad
 * certificate is a bad configuration (exit 2) that names its key.  The
 * upstream trust store (with_ca) only for -n: a start loads it once, in
 * relay_pool_new(), and loading the system store takes some 25 ms; the
 * inbound key pair is cheap to load twice. */
static int
check_tls_files(const struct config *cfg, int with_ca, char *err,
    size_t errlen)
{
	char why[256];
	SSL_CTX *ctx;

	if (with_ca) {
		if ((ctx = tls_client_ctx_new(cfg->ca_file, why,
		    sizeof(why))) == NULL) {
			snprintf(err, errlen, "%s: [ses] ca_file: %s",
			    cfg->path, why);
			return -1;
		}
		SSL_CTX_free(ctx);
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
		return 0;
	ctx = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, why, sizeof(why));
	if (ctx == NULL) {
		snprintf(err, errlen, "%s: [relay] tls_cert, tls_key: %s",
		    cfg->path, why);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

/*
 * Detach as daemon(3) does, except that the parent stays until the child
 * is ready and exits with the child's status: a start-up failure after
 * the fork (the spool, the queue) is seen by whoever started us, its
 * reason on their stderr, which the child keeps until then.  Returns the
 * pipe for daemon_ready().
 */
static int
daemonize(void)
{
	int p[2], st;
	char c;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		fatal("pipe2");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		    WEXITSTATUS(st) != 0)
			_exit(WEXITSTATUS(st));
		_exit(1);
	}
	close(p[0]);
	if (setsid() < 0)
		fatal("setsid");
	if (chdir("/") != 0)
		fatal("chdir /");
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
	    dup2(null, STDOUT_FILENO) < 0)
		fatal("/dev/null");
	if (null > STDERR_FILENO)	/* it may be one we were started without */
		close(null);
	return p[1];
}

/* Start-up is over: log to syslog from now on, let go of the terminal,
 * and let the parent exit 0. */
static void
daemon_ready(int fd, int debug)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	log_init("sesrelayd", 0, debug);
	if (null < 0 || dup2(null, STDERR_FILENO) < 0)
		fatal("/dev/null");
	if (null > STDERR_FILENO)
		close(null);
	if (write(fd, "R", 1) != 1)
		log_warn("cannot tell the parent we are ready");
	close(fd);
}

/* Running as root with a user to become: create the spool directory
 * for that user, so it can be opened after the drop. */
static void
prepare_spool_dir(const struct config *cfg)
{
	struct passwd *pw;
	if (cfg->mode != RELAY_MODE_SPOOL || cfg->user == NULL ||
	    geteuid() != 0 || (pw = getpwnam(cfg->user)) == NULL)
		return;
	if (mkdir(cfg->spool_dir, 0700) == 0) {
		if (chown(cfg->spool_dir, pw->pw_uid, pw->pw_gid) != 0)
			fatal("spool_dir: chown %s", cfg->spool_dir);
	} else if (errno != EEXIST) {
		fatal("spool_dir: cannot create %s", cfg->spool_dir);
	}
}

/* Drop root for cfg->user, for good: groups, gid, uid, checked. */
static void
drop_privileges(const struct config *cfg)
{
	if (cfg->user == NULL)
		return;		/* not root: main() checked */
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL)
		fatalx("user %s: no such user", cfg->user);
	if (pw->pw_uid == 0) {
		log_warnx("running as root, as [relay] user = %s says",
		    cfg->user);
		return;
	}
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			fatalx("cannot switch to user %s: not running as root",
			    cfg->user);
		return;
	}
	if (setgroups(1, &pw->pw_gid) != 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
		fatal("cannot drop privileges to %s", cfg->user);
	uid_t r, e, s;
	if (getresuid(&r, &e, &s) != 0 || r != pw->pw_uid ||
	    e != pw->pw_uid || s != pw->pw_uid || setuid(0) == 0)
		fatalx("privilege drop to %s did not stick", cfg->user);
	log_info("running as user %s (uid %u)", cfg->user,
	    (unsigned)pw->pw_uid);
}

static void
all_drained(void *arg)
{
	struct daemon_state *d = arg;
	event_base_loopexit(d->base, NULL);
}

static void
queue_drained(void *arg)
{
	struct daemon_state *d = arg;
	upstream_shutdown(d->up, all_drained, d);
}

static void
server_drained(void *arg)
{
	struct daemon_state *d = arg;
	if (d->queue != NULL)
		queue_shutdown(d->queue, queue_drained, d);
	else
		queue_drained(d);
}

static void
on_hard_stop(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_state *d = arg;
	log_warnx("stop: still busy after %d s; exiting (queued mail stays "
	    "in the spool)", STOP_DEADLINE);
	event_base_loopexit(d->base, NULL);
}

static void
on_flush(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;
	if (d->queue != NULL)
		queue_flush(d->queue);
}

static void
write_pidfile(struct daemon_state *d)
{
	char tmp[4096];
	xasprintf(&d->pidfile, "%s/sesrelayd.pid", d->cfg->spool_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->pidfile);
	FILE *f = fopen(tmp, "we");
	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
	    fclose(f) != 0 || rename(tmp, d->pidfile) != 0)
		log_warn("cannot write %s (sesrelay flush needs it)",
		    d->pidfile);
}

/* "45s", "12m", "5h", "3d" */
static void
short_age(char *out, size_t len, time_t secs)
{
	if (secs < 60)
		snprintf(out, len, "%llds", (long long)secs);
	else if (secs < 3600)
		snprintf(out, len, "%lldm", (long long)secs / 60);
	else if (secs < 86400)
		snprintf(out, len, "%lldh", (long long)secs / 3600);
	else
		snprintf(out, len, "%lldd", (long long)secs / 86400);
}

/* A one-line summary for systemctl status: "queue 3 messages, oldest
 * 2m; 1 client; 4 upstream sessions". */
static void
status_line(const struct daemon_state *d, char *out, size_t len)
{
	struct relay_stats rs;
	unsigned clients = smtp_server_sessions(d->server);
	size_t o;

	upstream_stats(d->up, &rs);
	if (d->queue != NULL) {
		struct queue_stats qs;
		char age[32];
		queue_stats(d->queue, &qs);
		short_age(age, sizeof(age), qs.oldest != 0 ?
		    time(NULL) - qs.oldest : 0);
		o = (size_t)snprintf(out, len, "queue %zu message%s", qs.messages,
		    qs.messages == 1 ? "" : "s");
		if (qs.messages > 0 && o < len)
			o += (size_t)snprintf(out + o, len - o, ", oldest %s", age);
	} else {
		o = (size_t)snprintf(out, len, "passthrough");
	}
	if (o < len)
		snprintf(out + o, len - o, "; %u client%s; %u upstream session%s",
		    clients, clients == 1 ? "" : "s", rs.sessions_open,
		    rs.sessions_open == 1 ? "" : "s");
}

/* Tell the service manager how things are, if that changed. */
static void
update_status(struct daemon_state *d, int force)
{
	char line[sizeof(d->status)];
	if (d->stopping)
		return;
	status_line(d, line, sizeof(line));
	if (!force && strcmp(line, d->status) == 0)
		return;
	snprintf(d->status, sizeof(d->status), "%s", line);
	service_notify("STATUS=%s", line);
}

static void
on_status(evutil_socket_t fd, short what, void *arg)
{
	update_status(arg, 0);
}

static void
on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;
	if (d->stopping) {
		log_info("second signal: exiting now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	d->stopping = 1;
	service_notify("STOPPING=1\nSTATUS=stopping: finishing %u client "
	    "sessions", smtp_server_sessions(d->server));
	log_info("signal %d: stopping (finishing %u sessions)", (int)sig,
	    smtp_server_sessions(d->server));
	d->hard_stop = evtimer_new(d->base, on_hard_stop, d);
	struct timeval tv = { STOP_DEADLINE, 0 };
	evtimer_add(d->hard_stop, &tv);
	smtp_server_shutdown(d->server, server_drained, d);
}

/* NULL if both are NULL or equal strings. */
static int
str_differ(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * What a reload cannot change in a running daemon (see sesrelayd(8),
 * SIGNALS, for every key).  The mode and the spool directory decide where
 * accepted mail is: changing them under sessions and queued mail would
 * lose track of it.  libsasl2 reads its configuration for sasl_service
 * once, when it starts.  Such a reload is refused (-1, reason in err,
 * naming the key).  The user is only logged (reload_user()).
 */
static int
reload_compatible(const struct daemon_state *d, const struct config *old,
    const struct config *new, char *err, size_t errlen)
{
	if (old->mode != new->mode) {
		snprintf(err, errlen, "%s: [relay] mode: changing the mode "
		    "needs a restart", new->path);
		return -1;
	}
	if (old->mode == RELAY_MODE_SPOOL &&
	    strcmp(old->spool_dir, new->spool_dir) != 0) {
		snprintf(err, errlen, "%s: [relay] spool_dir: changing the "
		    "spool directory needs a restart", new->path);
		return -1;
	}
	if (old->transport != new->transport) {
		snprintf(err, errlen, "%s: [ses] transport: changing the "
		    "transport needs a restart", new->path);
		return -1;
	}
	if (d->sasl_app != NULL && new->auth != AUTH_OFF &&
	    strcmp(d->sasl_app, new->sasl_service) != 0) {
		snprintf(err, errlen, "%s: [relay] sasl_service: changing the "
		    "SASL service (now %s) needs a restart: libsasl2 reads its "
		    "configuration once", new->path, d->sasl_app);
		return -1;
	}
	return check_tls_files(new, 0, err, errlen);
}

/* [relay] user: privileges were dropped for good at start-up. */
static void
reload_user(const struct config *old, const struct config *new)
{
	if (!str_differ(old->user, new->user))
		return;
	log_warnx("reload: [relay] user changed from %s to %s: it applies "
	    "only at the next start (still running as uid %u)",
	    old->user != NULL ? old->user : "(unset)",
	    new->user != NULL ? new->user : "(unset)", (unsigned)geteuid());
}

/* [relay] metrics_listen: bind the new address before closing the old
 * one; one that cannot be bound is logged and the old one kept (the
 * next reload tries again). */
static void
reload_metrics(struct daemon_state *d, const struct config *cfg)
{
	char err[256];

	if (d->metrics == NULL) {
		if (cfg->metrics_listen == NULL)
			return;
		d->metrics = metrics_new(d->base, cfg->metrics_listen,
		    d->server, d->queue, d->up, err, sizeof(err));
		if (d->metrics == NULL)
			log_warnx("reload: %s; serving no metrics", err);
		else
			metrics_set_start_time(d->metrics, d->started);
		return;
	}
	const char *was = metrics_listen_addr(d->metrics);
	if (metrics_set_listen(d->metrics, cfg->metrics_listen, err,
	    sizeof(err)) != 0)
		log_warnx("reload: %s; still serving metrics on %s", err,
		    was != NULL ? was : "no address");
}

/* The account watcher's credentials: a new reference, or NULL. */
static struct aws_credentials *
daemon_creds(void *arg)
{
	struct daemon_state *d = arg;

	if (d->creds != NULL)		/* transport = api: the provider's */
		return aws_creds_current(d->creds);
	return d->static_creds != NULL ? aws_credentials_ref(d->static_creds) :
	    NULL;
}

static void
account_changed(void *arg)
{
	struct daemon_state *d = arg;

	if (d->queue != NULL)
		queue_kick(d->queue);
}

/* Watch the SES account (account.h) unless account_poll = off or the
 * credentials hold no secret access key to sign with. */
static void
start_account(struct daemon_state *d)
{
	char err[512];

	if (d->cfg->account_poll == 0) {
		if (d->cfg->max_send_rate_auto)
			log_warnx("account: account_poll = off: max_send_rate "
			    "= auto sends %g per second", ACCOUNT_FALLBACK_RATE /
			    d->cfg->instances);
		return;
	}
	if (d->creds == NULL && (d->static_creds =
	    aws_creds_resolve_static(d->cfg, err, sizeof(err))) == NULL) {
		log_warnx("account: not watched: %s", err);
		return;
	}
	if (d->static_creds != NULL &&
	    d->static_creds->secret_access_key == NULL) {
		log_warnx("account: not watched: %s holds an SMTP password "
		    "only, which cannot sign SES API requests",
		    d->static_creds->source);
		aws_credentials_unref(d->static_creds);
		d->static_creds = NULL;
		return;
	}
	if (d->http == NULL && (d->http = http_client_new(d->base,
	    d->cfg->ca_file, err, sizeof(err))) == NULL) {
		log_warnx("account: not watched: %s", err);
		return;
	}
	d->account = account_new(d->base, d->http, d->cfg, daemon_creds, d);
	account_set_listener(d->account, account_changed, d);
	if (d->queue != NULL)
		queue_set_account(d->queue, d->account);
	smtp_server_set_account(d->server, d->account);
	if (d->metrics != NULL)
		metrics_set_account(d->metrics, d->account);
	account_start(d->account);
}

/* The reloaded credential provider has credentials: use it. */
static void
creds_switch(int ok, const char *err, void *arg)
{
	struct daemon_state *d = arg;

	(void)err;
	if (!ok || d->next_creds == NULL)
		return;		/* it retries; the running one goes on */
	aws_creds_provider_set_notify(d->next_creds, NULL, NULL);
	upstream_set_creds(d->up, d->next_creds);
	if (d->metrics != NULL)
		metrics_set_creds(d->metrics, d->next_creds);
	aws_creds_provider_free(d->creds);
	d->creds = d->next_creds;
	d->next_creds = NULL;
	log_info("AWS credentials: the reloaded chain is in use (%s)",
	    aws_creds_provider_source(d->creds));
}

static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;
	char err[CONFIG_ERR_MAX];

	if (d->stopping)
		return;
	service_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading "
	    "the configuration", service_monotonic_usec());
	struct config *cfg = config_load(d->config_path, 1, err);
	struct ses_smtp_login *login = NULL;
	struct aws_creds_provider *creds = NULL;
	if (cfg == NULL ||
	    reload_compatible(d, d->cfg, cfg, err, sizeof(err)) != 0 ||
	    (cfg->transport == TRANSPORT_SMTP &&
	    (login = aws_creds_smtp_login_for(cfg, err, sizeof(err))) ==
	    NULL) ||
	    (cfg->transport == TRANSPORT_API &&
	    (creds = aws_creds_provider_new(d->base, d->http, cfg, err,
	    sizeof(err))) == NULL) ||
	    upstream_set_config(d->up, cfg, err, sizeof(err)) != 0) {
		aws_creds_provider_free(creds);
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		if (cfg != NULL)
			config_unref(cfg);
		ses_smtp_login_unref(login);
		/* still serving, with the old configuration */
		status_line(d, d->status, sizeof(d->status));
		service_notify("READY=1\nSTATUS=reload refused (see the log); "
		    "%s", d->status);
		return;
	}
	reload_user(d->cfg, cfg);
	raise_fd_limit(cfg);
	if (creds != NULL) {
		/* the credential chain again, as for SMTP keys: a new key
		 * file or role applies as soon as it gives credentials; until
		 * then the running provider goes on */
		aws_creds_provider_free(d->next_creds);
		d->next_creds = creds;
		struct aws_credentials *now = aws_creds_current(creds);
		if (now != NULL) {
			aws_credentials_unref(now);
			creds_switch(1, NULL, d);
		} else
			aws_creds_provider_set_notify(creds, creds_switch, d);
	}
	if (login != NULL) {
		relay_pool_set_login(d->pool, login);
		ses_smtp_login_unref(d->login);
		d->login = login;
	}
	smtp_server_set_config(d->server, cfg);
	if (cfg->auth != AUTH_OFF && d->sasl_app == NULL)
		d->sasl_app = xstrdup(cfg->sasl_service);
	smtp_server_update_listeners(d->server, cfg);
	reload_metrics(d, cfg);
	if (d->queue != NULL)
		queue_set_config(d->queue, cfg);
	if (d->static_creds != NULL) {
		char cerr[512];
		struct aws_credentials *c = aws_creds_resolve_static(cfg, cerr,
		    sizeof(cerr));

		if (c == NULL)
			log_warnx("account: keeping the credentials in use: %s",
			    cerr);
		else {
			aws_credentials_unref(d->static_creds);
			d->static_creds = c;
		}
	}
	if (d->account != NULL)
		account_set_config(d->account, cfg);
	char merr[512];
	if (maildrop_prepare(cfg, merr, sizeof(merr)) != 0)
		log_warnx("reload: %s", merr);
	maildrop_set_config(d->maildrop, cfg);
	log_set_format(cfg->log_format);
	config_unref(d->cfg);
	d->cfg = cfg;
	log_info("configuration reloaded from %s (credentials: %s)",
	    cfg->path, d->login != NULL ? d->login->source :
	    aws_creds_provider_source(d->creds));
	status_line(d, d->status, sizeof(d->status));
	service_notify("READY=1\nSTATUS=%s", d->status);
}

/*
 * Serve what the service manager passed (socket activation) instead of
 * binding cfg->listen.  Returns the number of sockets adopted, 0 if none
 * were passed; exits on an unusable one.
 */
static int
adopt_listeners(struct daemon_state *d)
{
	int fds[SERVICE_MAX_FDS];
	char names[SERVICE_MAX_FDS][SERVICE_NAME_MAX];
	char err[256];
	int n = service_listen_fds(fds, SERVICE_MAX_FDS, names, err,
	    sizeof(err));

	if (n < 0) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		exit(1);
	}
	if (n == 0)
		return 0;
	/* TLS and SASL are set up by smtp_server_listen(); with nothing to
	 * bind it does only that */
	size_t nlisten = d->cfg->nlisten;
	d->cfg->nlisten = 0;
	int rc = smtp_server_listen(d->server, err, sizeof(err));
	d->cfg->nlisten = nlisten;
	if (rc != 0) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		exit(1);
	}
	for (int i = 0; i < n; i++)
		smtp_server_adopt_listener(d->server, fds[i], names[i]);
	log_info("socket activation: serving %d socket%s from the service "
	    "manager; [relay] listen is not used", n, n == 1 ? "" : "s");
	return n;
}

int
main(int argc, char *argv[])
{
	struct daemon_state d;
	int foreground = 0, check_only = 0, debug = 0, ch;
	char err[CONFIG_ERR_MAX];

	memset(&d, 0, sizeof(d));
	d.started = time(NULL);
	d.config_path = SYSCONFDIR "/sesrelay/sesrelay.conf";
	no_core_dumps();	/* the derived password is in memory */
	while ((ch = getopt(argc, argv, "c:dfnV")) != -1) {
		switch (ch) {
		case 'c': d.config_path = optarg; break;
		case 'd': debug = 1; break;
		case 'f': foreground = 1; break;
		case 'n': check_only = 1; break;
		case 'V':
			version_print(stdout, "sesrelayd");
			return 0;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	/* SIGHUP re-reads it after we have left the starting directory */
	static char config_abs[PATH_MAX];
	if (realpath(d.config_path, config_abs) != NULL)
		d.config_path = config_abs;

	log_init("sesrelayd", 1, debug);
	/* what we create (spool files, their state, the pid file) is ours
	 * alone; unix listeners are opened up explicitly */
	umask(077);
	d.cfg = config_load(d.config_path, 1, err);
	if (d.cfg == NULL) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 2;
	}
	char api_source[AWS_CREDS_SOURCE_MAX] = "";
	if (d.cfg->transport == TRANSPORT_API) {
		/* the chain as the daemon will run it (no fetch yet) */
		struct event_base *b = event_base_new();
		struct http_client *h = b != NULL ? http_client_new(b,
		    d.cfg->ca_file, err, sizeof(err)) : NULL;
		struct aws_creds_provider *cp = h != NULL ?
		    aws_creds_provider_new(b, h, d.cfg, err, sizeof(err)) : NULL;
		if (cp != NULL)
			snprintf(api_source, sizeof(api_source), "%s",
			    aws_creds_provider_source(cp));
		aws_creds_provider_free(cp);
		http_client_free(h);
		if (b != NULL)
			event_base_free(b);
		if (cp == NULL) {
			fprintf(stderr, "sesrelayd: %s\n", err);
			config_unref(d.cfg);
			return 2;
		}
	} else if ((d.login = aws_creds_smtp_login_for(d.cfg, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		config_unref(d.cfg);
		return 2;
	}
	if (check_tls_files(d.cfg, check_only, err, sizeof(err)) != 0) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		ses_smtp_login_unref(d.login);
		config_unref(d.cfg);
		return 2;
	}
	if (check_only) {
		printf("%s: configuration ok; mode %s; SES endpoint %s:%u "
		    "(verified as %s); credentials: %s\n", d.cfg->path,
		    d.cfg->mode == RELAY_MODE_SPOOL ? "spool" : "passthrough",
		    d.cfg->endpoint_host, d.cfg->endpoint_port,
		    d.cfg->tls_verify_name, d.login != NULL ? d.login->source :
		    api_source);
		ses_smtp_login_unref(d.login);
		config_unref(d.cfg);
		return 0;
	}
	if (geteuid() == 0 && d.cfg->user == NULL) {
		/* least privilege: root only to bind and read keys */
		fprintf(stderr, "sesrelayd: %s: [relay] user: refusing to run "
		    "as root; set user to an unprivileged account (the daemon "
		    "switches to it after binding), or user = root to insist\n",
		    d.cfg->path);
		ses_smtp_login_unref(d.login);
		config_unref(d.cfg);
		return 2;
	}
	log_set_format(d.cfg->log_format);
	raise_fd_limit(d.cfg);
	signal(SIGPIPE, SIG_IGN);
	/* a file size limit must fail the write (EFBIG), not kill us */
	signal(SIGXFSZ, SIG_IGN);

	d.base = event_base_new();
	if (d.base == NULL)
		fatalx("event_base_new failed");
	d.dns = evdns_base_new(d.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (d.dns == NULL)
		fatalx("cannot set up DNS resolution (/etc/resolv.conf)");
	d.pool = relay_pool_new(d.base, d.dns, d.cfg, err, sizeof(err));
	if (d.pool == NULL) {
		/* only its TLS context can fail: the trust store */
		fprintf(stderr, "sesrelayd: %s: [ses] ca_file: %s\n",
		    d.cfg->path, err);
		evdns_base_free(d.dns, 0);
		event_base_free(d.base);
		ses_smtp_login_unref(d.login);
		config_unref(d.cfg);
		return 2;
	}
	if (d.cfg->transport == TRANSPORT_API) {
		/* static keys are read here, before privileges are dropped;
		 * role tokens at each fetch, by the unprivileged user */
		if ((d.http = http_client_new(d.base, d.cfg->ca_file, err,
		    sizeof(err))) == NULL ||
		    (d.creds = aws_creds_provider_new(d.base, d.http, d.cfg,
		    err, sizeof(err))) == NULL ||
		    (d.up = upstream_new_api(d.base, d.http, d.creds, d.cfg,
		    err, sizeof(err))) == NULL) {
			fprintf(stderr, "sesrelayd: %s\n", err);
			return 2;
		}
	} else {
		relay_pool_set_login(d.pool, d.login);
		d.up = upstream_new_smtp(d.pool);
	}
	d.server = smtp_server_new(d.base, d.cfg, d.up);
	if (d.cfg->auth != AUTH_OFF)
		d.sasl_app = xstrdup(d.cfg->sasl_service);
	if (adopt_listeners(&d) == 0 &&
	    smtp_server_listen(d.server, err, sizeof(err)) != 0) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 1;
	}
	if (d.cfg->metrics_listen != NULL &&
	    (d.metrics = metrics_new(d.base, d.cfg->metrics_listen, d.server,
	    NULL, d.up, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 1;
	}
	if (d.metrics != NULL && d.creds != NULL)
		metrics_set_creds(d.metrics, d.creds);
	prepare_spool_dir(d.cfg);
	if (maildrop_prepare(d.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 1;
	}
	drop_privileges(d.cfg);
	int ready_fd = -1;
	if (!foreground) {
		ready_fd = daemonize();
		event_reinit(d.base);
	}
	if (d.cfg->mode == RELAY_MODE_SPOOL) {
		/* after daemon(): the spool starts a thread */
		d.spool = spool_open(d.base, d.cfg->spool_dir, err,
		    sizeof(err));
		if (d.spool == NULL)
			fatalx("%s", err);
		d.queue = queue_new(d.base, d.cfg, d.spool, d.up);
		smtp_server_set_spool(d.server, d.spool, d.queue);
		write_pidfile(&d);
		queue_load(d.queue);
		if (d.metrics != NULL)
			metrics_set_queue(d.metrics, d.queue);
	}
	start_account(&d);
	d.maildrop = maildrop_new(d.base, d.cfg);

	struct event *ev_term = evsignal_new(d.base, SIGTERM, on_terminate, &d);
	struct event *ev_int = evsignal_new(d.base, SIGINT, on_terminate, &d);
	struct event *ev_hup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	struct event *ev_usr1 = evsignal_new(d.base, SIGUSR1, on_flush, &d);
	evsignal_add(ev_usr1, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);

	if (ready_fd >= 0)
		daemon_ready(ready_fd, debug);
	log_info("sesrelayd %s ready: mode %s, SES endpoint %s:%u, "
	    "credentials: %s", PACKAGE_VERSION,
	    d.cfg->mode == RELAY_MODE_SPOOL ? "spool" : "passthrough",
	    d.cfg->transport == TRANSPORT_API ? "(SES API v2)" :
	    d.cfg->endpoint_host, d.cfg->endpoint_port,
	    d.login != NULL ? d.login->source :
	    aws_creds_provider_source(d.creds));
	status_line(&d, d.status, sizeof(d.status));
	if (service_notify("READY=1\nSTATUS=%s", d.status) == 1) {
		d.status_ev = event_new(d.base, -1, EV_PERSIST, on_status, &d);
		struct timeval tv = { STATUS_SECONDS, 0 };
		event_add(d.status_ev, &tv);
	}
	event_base_dispatch(d.base);
	log_info("sesrelayd stopped");

	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(ev_usr1);
	if (d.hard_stop != NULL)
		event_free(d.hard_stop);
	if (d.status_ev != NULL)
		event_free(d.status_ev);
	/* before the pool: it may have a probe there */
	metrics_free(d.metrics);
	/*
	 * In this order.  The queue starts nothing more (also after a second
	 * signal or the deadline, which may come before it was asked to
	 * drain).  Client sessions go; their commits under way go on
	 * without them.  The pool fails the jobs still in flight: they end
	 * their attempts in the queue, which saves the progress in the
	 * spool.  The spool finishes its commits, which still reach the
	 * queue.  Then the queue goes.
	 */
	if (d.queue != NULL)
		queue_shutdown(d.queue, NULL, NULL);
	smtp_server_free(d.server);
	/* after the sessions and before the queue, which both use it */
	if (d.queue != NULL)
		queue_set_account(d.queue, NULL);
	account_free(d.account);
	maildrop_free(d.maildrop);
	aws_credentials_unref(d.static_creds);
	upstream_free(d.up);
	relay_pool_free(d.pool);
	ses_smtp_login_unref(d.login);
	aws_creds_provider_free(d.next_creds);
	aws_creds_provider_free(d.creds);
	http_client_free(d.http);
	spool_close(d.spool);
	queue_free(d.queue);
	if (d.pidfile != NULL) {
		unlink(d.pidfile);
		free(d.pidfile);
	}
	evdns_base_free(d.dns, 0);
	event_base_free(d.base);
	config_unref(d.cfg);
	free(d.sasl_app);
	return 0;
}
