/*
 * sesrelayd.c — the daemon: options, configuration, privileges, signals
 * and the event loop.  See sesrelayd(8).
 */
#include "config.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "log.h"
#include "queue.h"
#include "relay_client.h"
#include "smtp_server.h"
#include "spool.h"
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
	struct smtp_server *server;
	struct spool *spool;		/* spool mode */
	struct queue *queue;
	char *pidfile;
	struct event *hard_stop;
	int stopping;
};

/* After SIGTERM, exit within this many seconds whatever is in flight:
 * what was accepted is in the spool and goes out after the restart. */
#define STOP_DEADLINE 40

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: sesrelayd [-dfnV] [-c file]\n");
	exit(2);
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
			fatal("chown %s", cfg->spool_dir);
	} else if (errno != EEXIST) {
		fatal("mkdir %s", cfg->spool_dir);
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
	relay_pool_shutdown(d->pool, all_drained, d);
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
	log_info("signal %d: stopping (finishing %u sessions)", (int)sig,
	    smtp_server_sessions(d->server));
	d->hard_stop = evtimer_new(d->base, on_hard_stop, d);
	struct timeval tv = { STOP_DEADLINE, 0 };
	evtimer_add(d->hard_stop, &tv);
	smtp_server_shutdown(d->server, server_drained, d);
}

static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;
	char err[CONFIG_ERR_MAX];
	struct config *cfg = config_load(d->config_path, 1, err);
	if (cfg == NULL) {
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (relay_pool_set_config(d->pool, cfg, err, sizeof(err)) != 0) {
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		config_unref(cfg);
		return;
	}
	smtp_server_set_config(d->server, cfg);
	if (d->queue != NULL)
		queue_set_config(d->queue, cfg);
	log_set_format(cfg->log_format);
	config_unref(d->cfg);
	d->cfg = cfg;
	log_info("configuration reloaded from %s (credentials: %s)",
	    cfg->path, cfg->credential_source);
}

int
main(int argc, char *argv[])
{
	struct daemon_state d;
	int foreground = 0, check_only = 0, debug = 0, ch;
	char err[CONFIG_ERR_MAX];

	memset(&d, 0, sizeof(d));
	d.config_path = SYSCONFDIR "/sesrelay/sesrelay.conf";
	while ((ch = getopt(argc, argv, "c:dfnV")) != -1) {
		switch (ch) {
		case 'c': d.config_path = optarg; break;
		case 'd': debug = 1; break;
		case 'f': foreground = 1; break;
		case 'n': check_only = 1; break;
		case 'V':
			printf("sesrelayd %s\n", PACKAGE_VERSION);
			return 0;
		default: usage();
		}
	}
	if (optind != argc)
		usage();

	log_init("sesrelayd", 1, debug);
	d.cfg = config_load(d.config_path, 1, err);
	if (d.cfg == NULL) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 2;
	}
	if (check_only) {
		printf("%s: configuration ok; mode %s; SES endpoint %s:%u "
		    "(verified as %s); credentials: %s\n", d.cfg->path,
		    d.cfg->mode == RELAY_MODE_SPOOL ? "spool" : "passthrough",
		    d.cfg->endpoint_host, d.cfg->endpoint_port,
		    d.cfg->tls_verify_name, d.cfg->credential_source);
		config_unref(d.cfg);
		return 0;
	}
	if (geteuid() == 0 && d.cfg->user == NULL) {
		/* least privilege: root only to bind and read keys */
		fprintf(stderr, "sesrelayd: %s: [relay] user: refusing to run "
		    "as root; set user to an unprivileged account (the daemon "
		    "switches to it after binding), or user = root to insist\n",
		    d.cfg->path);
		config_unref(d.cfg);
		return 2;
	}
	log_set_format(d.cfg->log_format);
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
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 2;
	}
	d.server = smtp_server_new(d.base, d.cfg, d.pool);
	if (smtp_server_listen(d.server, err, sizeof(err)) != 0) {
		fprintf(stderr, "sesrelayd: %s\n", err);
		return 1;
	}
	prepare_spool_dir(d.cfg);
	drop_privileges(d.cfg);
	if (!foreground) {
		if (daemon(0, 0) != 0)
			fatal("daemon");
		log_init("sesrelayd", 0, debug);
		event_reinit(d.base);
	}
	if (d.cfg->mode == RELAY_MODE_SPOOL) {
		/* after daemon(): the spool starts a thread */
		d.spool = spool_open(d.base, d.cfg->spool_dir, err,
		    sizeof(err));
		if (d.spool == NULL)
			fatalx("%s", err);
		d.queue = queue_new(d.base, d.cfg, d.spool, d.pool);
		smtp_server_set_spool(d.server, d.spool, d.queue);
		write_pidfile(&d);
		queue_load(d.queue);
	}

	struct event *ev_term = evsignal_new(d.base, SIGTERM, on_terminate, &d);
	struct event *ev_int = evsignal_new(d.base, SIGINT, on_terminate, &d);
	struct event *ev_hup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	struct event *ev_usr1 = evsignal_new(d.base, SIGUSR1, on_flush, &d);
	evsignal_add(ev_usr1, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);

	log_info("sesrelayd %s ready: mode %s, SES endpoint %s:%u, "
	    "credentials: %s", PACKAGE_VERSION,
	    d.cfg->mode == RELAY_MODE_SPOOL ? "spool" : "passthrough",
	    d.cfg->endpoint_host, d.cfg->endpoint_port,
	    d.cfg->credential_source);
	event_base_dispatch(d.base);
	log_info("sesrelayd stopped");

	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(ev_usr1);
	if (d.hard_stop != NULL)
		event_free(d.hard_stop);
	/* in this order: commits finishing now still reach the queue, and
	 * jobs the pool fails still reach their queue entries */
	spool_close(d.spool);
	smtp_server_free(d.server);
	relay_pool_free(d.pool);
	queue_free(d.queue);
	if (d.pidfile != NULL) {
		unlink(d.pidfile);
		free(d.pidfile);
	}
	evdns_base_free(d.dns, 0);
	event_base_free(d.base);
	config_unref(d.cfg);
	return 0;
}
