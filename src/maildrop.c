/*
 * maildrop.c — the maildrop's directories and its pickup (maildrop.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "maildrop.h"
#include "maildrop_file.h"
#include "xmalloc.h"

#ifndef SBINDIR
#define SBINDIR "/usr/sbin"
#endif

/* Give the directory dir (created with mode if missing) to uid:gid with
 * mode; refuses a symlink, a non-directory, another owner. */
static int
set_dir(const char *dir, int create, uid_t uid, gid_t gid, mode_t mode,
    char *err, size_t errlen)
{
	if (create && mkdir(dir, 0700) == 0 && geteuid() == 0 &&
	    chown(dir, uid, gid) != 0) {
		snprintf(err, errlen, "chown %s: %s", dir, strerror(errno));
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", dir, errno == ELOOP ||
		    errno == ENOTDIR ? "not a directory (a symlink?)" :
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int r = 0;
	if (st.st_uid != uid) {
		snprintf(err, errlen, "%s belongs to uid %u, not to the "
		    "daemon's uid %u", dir, (unsigned)st.st_uid,
		    (unsigned)uid);
		r = -1;
	} else if (st.st_gid != gid && fchown(fd, (uid_t)-1, gid) != 0) {
		snprintf(err, errlen, "cannot give %s to the group %s: %s (start "
		    "sesrelayd as root, or make its user a member)", dir,
		    MAILDROP_GROUP, strerror(errno));
		r = -1;
	} else if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0) {
		snprintf(err, errlen, "chmod %04o %s: %s", (unsigned)mode, dir,
		    strerror(errno));
		r = -1;
	}
	close(fd);
	return r;
}

int
maildrop_prepare(const struct config *cfg, char *err, size_t errlen)
{
	char drop[4096];
	snprintf(drop, sizeof(drop), "%s/maildrop", cfg->spool_dir);
	uid_t uid = geteuid();
	gid_t ugid = getegid();
	if (uid == 0 && cfg->user != NULL) {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw == NULL) {
			snprintf(err, errlen, "no such user %s", cfg->user);
			return -1;
		}
		uid = pw->pw_uid;
		ugid = pw->pw_gid;
	}
	struct stat st;
	if (cfg->sendmail_fallback != SENDMAIL_FALLBACK_SPOOL) {
		/* close what an earlier configuration opened */
		if (lstat(drop, &st) != 0 || !S_ISDIR(st.st_mode) ||
		    (st.st_mode & 07777) == 0700)
			return 0;
		if (set_dir(drop, 0, uid, st.st_gid, 0700, err, errlen) != 0 ||
		    (stat(cfg->spool_dir, &st) == 0 &&
		    set_dir(cfg->spool_dir, 0, uid, st.st_gid, 0700, err,
		    errlen) != 0))
			return -1;
		return 0;
	}
	struct group *gr = getgrnam(MAILDROP_GROUP);
	if (gr == NULL) {
		snprintf(err, errlen, "sendmail_fallback = spool needs the "
		    "group %s (groupadd --system %s)", MAILDROP_GROUP,
		    MAILDROP_GROUP);
		return -1;
	}
	/* the spool directory: reachable (x), not readable, by the group */
	if (set_dir(cfg->spool_dir, 1, uid, ugid, 0700, err, errlen) != 0 ||
	    set_dir(cfg->spool_dir, 0, uid, gr->gr_gid, 0710, err,
	    errlen) != 0 ||
	    set_dir(drop, 1, uid, gr->gr_gid, 01730, err, errlen) != 0) {
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, " (sendmail_fallback = spool)");
		return -1;
	}
	return 0;
}

/* ---- the pickup ---- */

struct maildrop {
	struct event_base *base;
	struct event *tick;
	char *config_path;
	char *dir;		/* spool_dir/maildrop */
	pid_t child;		/* 0: none */
	struct event *out_ev;	/* the child's stderr */
	int out_fd;
	char line[1024];
	size_t linelen;
};

/* Is a file waiting: complete (0644), or left incomplete for an hour
 * (the pickup removes those)? */
static int
files_waiting(const char *dir)
{
	DIR *dp = opendir(dir);
	if (dp == NULL)
		return 0;
	struct dirent *de;
	struct stat st;
	int found = 0;
	time_t old = time(NULL) - 3600;
	while (!found && (de = readdir(dp)) != NULL)
		if (md_name_ok(de->d_name) && fstatat(dirfd(dp), de->d_name,
		    &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			found = (st.st_mode & 07777) != 0600 ||
			    st.st_mtime < old;
	closedir(dp);
	return found;
}

/* Where sendmail.sesrelay is: beside this program (a build tree, an
 * install), else SBINDIR. */
static void
pickup_program(char *path, size_t len)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *sl = strrchr(self, '/');
		if (sl != NULL) {
			*sl = '\0';
			snprintf(path, len, "%s/sendmail.sesrelay", self);
			if (access(path, X_OK) == 0)
				return;
		}
	}
	snprintf(path, len, "%s/sendmail.sesrelay", SBINDIR);
}

static void
reap(struct maildrop *m)
{
	int st;
	if (m->child == 0 || waitpid(m->child, &st, WNOHANG) != m->child)
		return;
	m->child = 0;
	if (WIFSIGNALED(st))
		log_warnx("maildrop pickup: killed by signal %d",
		    WTERMSIG(st));
	else if (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 75)
		log_warnx("maildrop pickup: exit status %d",
		    WEXITSTATUS(st));
}

static void
out_close(struct maildrop *m)
{
	if (m->out_ev != NULL)
		event_free(m->out_ev);
	m->out_ev = NULL;
	if (m->out_fd >= 0)
		close(m->out_fd);
	m->out_fd = -1;
	m->linelen = 0;
}

/* A line the pickup wrote: "sendmail.sesrelay: <file> (uid N): ..." */
static void
log_line(const char *line)
{
	const char *p = strstr(line, ": ");
	const char *msg = p != NULL && strncmp(line, "sendmail", 8) == 0 ?
	    p + 2 : line;
	if (strstr(msg, "): submitted: ") != NULL)
		log_info("maildrop %s", msg);
	else
		log_warnx("maildrop %s", msg);
}

static void
on_output(evutil_socket_t fd, short what, void *arg)
{
	struct maildrop *m = arg;
	(void)what;
	char b[1024];
	ssize_t n = read(fd, b, sizeof(b));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (m->linelen > 0) {
			m->line[m->linelen] = '\0';
			log_line(m->line);
		}
		out_close(m);
		reap(m);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (b[i] == '\n' || m->linelen == sizeof(m->line) - 1) {
			m->line[m->linelen] = '\0';
			log_line(m->line);
			m->linelen = 0;
			if (b[i] == '\n')
				continue;
		}
		m->line[m->linelen++] = b[i];
	}
}

static void
spawn(struct maildrop *m)
{
	char prog[4200];
	pickup_program(prog, sizeof(prog));
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		log_warn("maildrop pickup: pipe");
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_warn("maildrop pickup: fork");
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup2(p[1], 2) < 0)
			_exit(71);
		char opt[] = "--pickup", dash_c[] = "-C";
		char *argv[] = { prog, opt, dash_c, m->config_path, NULL };
		execv(prog, argv);
		/* only async-signal-safe calls here: the daemon has threads */
		static const char msg[] = "cannot run sendmail.sesrelay "
		    "(install it beside sesrelayd or in " SBINDIR ")\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		_exit(127);
	}
	close(p[1]);
	m->child = pid;
	m->out_fd = p[0];
	evutil_make_socket_nonblocking(p[0]);
	m->out_ev = event_new(m->base, p[0], EV_READ | EV_PERSIST, on_output,
	    m);
	event_add(m->out_ev, NULL);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct maildrop *m = arg;
	(void)fd;
	(void)what;
	reap(m);
	if (m->child == 0 && m->out_ev == NULL && files_waiting(m->dir))
		spawn(m);
}

struct maildrop *
maildrop_new(struct event_base *base, const struct config *cfg)
{
	struct maildrop *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->out_fd = -1;
	maildrop_set_config(m, cfg);
	m->tick = event_new(base, -1, EV_PERSIST, on_tick, m);
	struct timeval tv = { MAILDROP_POLL_SECONDS, 0 };
	event_add(m->tick, &tv);
	event_active(m->tick, EV_TIMEOUT, 0);
	return m;
}

void
maildrop_set_config(struct maildrop *m, const struct config *cfg)
{
	free(m->config_path);
	free(m->dir);
	/* absolute: the daemon may have changed its directory */
	char *abs = realpath(cfg->path, NULL);
	m->config_path = abs != NULL ? abs : xstrdup(cfg->path);
	xasprintf(&m->dir, "%s/maildrop", cfg->spool_dir);
}

void
maildrop_free(struct maildrop *m)
{
	if (m == NULL)
		return;
	if (m->child > 0) {
		kill(m->child, SIGTERM);
		reap(m);
	}
	out_close(m);
	if (m->tick != NULL)
		event_free(m->tick);
	free(m->config_path);
	free(m->dir);
	free(m);
}
