/* spool.c — see spool.h. */
#include "spool.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "log.h"
#include "tailq.h"
#include "xmalloc.h"

#define SPOOL_MAGIC "SESRELAY-SPOOL 1"
/* An envelope header larger than this is corrupt. */
#define ENVELOPE_MAX (64 * 1024)

struct spool_commit {
	TAILQ_ENTRY(spool_commit) entry;
	struct spool *sp;
	char id[SPOOL_ID_MAX];
	int fd;
	int error;
	spool_commit_fn *done;
	void *arg;
};
TAILQ_HEAD(commit_list, spool_commit);

struct spool {
	char *dir;
	int queue_dirfd;
	struct event_base *base;
	uint32_t counter;
	/* the worker thread: commits in, completions out */
	pthread_t worker;
	int worker_running;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct commit_list todo;
	struct commit_list finished;
	int stop;
	int notify[2];			/* worker -> event loop */
	struct event *notify_ev;
	/* counted by the worker, under lock */
	unsigned long long commits, batches, fsyncs;
};

static int
path_join(char *out, size_t outlen, const char *dir, const char *sub,
    const char *name)
{
	int n = snprintf(out, outlen, "%s/%s%s%s", dir, sub,
	    name != NULL ? "/" : "", name != NULL ? name : "");
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Create dir (mode 0700) if missing; refuse one others can write to. */
static int
ensure_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "spool_dir: cannot create %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "spool_dir: %s is not a directory", path);
		return -1;
	}
	if (st.st_mode & 0022) {
		snprintf(err, errlen, "spool_dir: %s is writable by others "
		    "(mode %04o); chmod 700 it", path, st.st_mode & 07777);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "spool_dir: %s is owned by uid %u, not "
		    "by the daemon's uid %u", path, (unsigned)st.st_uid,
		    (unsigned)geteuid());
		return -1;
	}
	return 0;
}

static void
clean_tmp(struct spool *sp)
{
	char path[4096];
	path_join(path, sizeof(path), sp->dir, "tmp", NULL);
	DIR *d = opendir(path);
	struct dirent *de;
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* a write interrupted by a crash: never acknowledged */
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("spool: removed unfinished %s/tmp/%s", sp->dir,
			    de->d_name);
	}
	closedir(d);
}

/* ---- the commit worker ---- */

static void *
worker_main(void *arg)
{
	struct spool *sp = arg;
	struct commit_list batch;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		while (TAILQ_EMPTY(&sp->todo) && !sp->stop)
			pthread_cond_wait(&sp->wake, &sp->lock);
		if (TAILQ_EMPTY(&sp->todo) && sp->stop)
			break;
		TAILQ_INIT(&batch);
		TAILQ_CONCAT(&batch, &sp->todo, entry);
		pthread_mutex_unlock(&sp->lock);

		/* Everything that arrived while the last batch was being
		 * made durable shares this batch's directory fsync. */
		struct spool_commit *c;
		int renamed = 0;
		TAILQ_FOREACH(c, &batch, entry) {
			char from[4096], to[4096];
			if (fsync(c->fd) != 0)
				c->error = errno;
			close(c->fd);
			c->fd = -1;
			path_join(from, sizeof(from), sp->dir, "tmp", c->id);
			path_join(to, sizeof(to), sp->dir, "queue", c->id);
			if (c->error == 0 && rename(from, to) != 0)
				c->error = errno;
			if (c->error != 0)
				unlink(from);
			else
				renamed++;
		}
		if (renamed > 0 && fsync(sp->queue_dirfd) != 0) {
			int e = errno;
			TAILQ_FOREACH(c, &batch, entry) {
				if (c->error == 0) {
					/* not durable: take it back */
					char to[4096];
					path_join(to, sizeof(to), sp->dir,
					    "queue", c->id);
					unlink(to);
					c->error = e;
				}
			}
		}

		pthread_mutex_lock(&sp->lock);
		TAILQ_FOREACH(c, &batch, entry)
			sp->commits++;
		sp->batches++;
		sp->fsyncs += (unsigned long long)renamed + (renamed > 0);
		TAILQ_CONCAT(&sp->finished, &batch, entry);
		char one = 1;
		ssize_t n = write(sp->notify[1], &one, 1);
		(void)n;	/* a full pipe already holds a wake-up */
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

/* On the event loop: report finished commits. */
static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	struct commit_list done;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&sp->lock);
	TAILQ_CONCAT(&done, &sp->finished, entry);
	pthread_mutex_unlock(&sp->lock);

	struct spool_commit *c;
	while ((c = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, c, entry);
		if (c->done != NULL)
			c->done(c->error, c->arg);
		free(c);
	}
}

struct spool *
spool_open(struct event_base *base, const char *dir, char *err, size_t errlen)
{
	static const char *subdirs[] = { "tmp", "queue", "failed" };
	char path[4096];

	if (ensure_dir(dir, err, errlen) != 0)
		return NULL;
	for (size_t i = 0; i < 3; i++) {
		if (path_join(path, sizeof(path), dir, subdirs[i], NULL) != 0) {
			snprintf(err, errlen, "spool_dir: path too long");
			return NULL;
		}
		if (ensure_dir(path, err, errlen) != 0)
			return NULL;
	}
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->dir = xstrdup(dir);
	sp->base = base;
	sp->notify[0] = sp->notify[1] = -1;
	path_join(path, sizeof(path), dir, "queue", NULL);
	sp->queue_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->queue_dirfd < 0) {
		snprintf(err, errlen, "spool_dir: %s: %s", path,
		    strerror(errno));
		spool_close(sp);
		return NULL;
	}
	if (RAND_bytes((unsigned char *)&sp->counter, sizeof(sp->counter)) != 1)
		sp->counter = (uint32_t)getpid();
	TAILQ_INIT(&sp->todo);
	TAILQ_INIT(&sp->finished);
	if (base == NULL)
		return sp;	/* a reader: sesrelay queue */

	clean_tmp(sp);
	if (pipe2(sp->notify, O_NONBLOCK | O_CLOEXEC) != 0)
		fatal("pipe2");
	sp->notify_ev = event_new(base, sp->notify[0], EV_READ | EV_PERSIST,
	    notify_cb, sp);
	event_add(sp->notify_ev, NULL);
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->wake, NULL);
	if (pthread_create(&sp->worker, NULL, worker_main, sp) != 0)
		fatalx("cannot start the spool worker thread");
	sp->worker_running = 1;
	return sp;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->worker_running) {
		pthread_mutex_lock(&sp->lock);
		sp->stop = 1;
		pthread_cond_signal(&sp->wake);
		pthread_mutex_unlock(&sp->lock);
		pthread_join(sp->worker, NULL);
		/* finish what the worker finished */
		notify_cb(sp->notify[0], EV_READ, sp);
		log_info("spool: commits=%llu batches=%llu fsyncs=%llu "
		    "(%.2f fsyncs per message)", sp->commits, sp->batches,
		    sp->fsyncs, sp->commits > 0 ?
		    (double)sp->fsyncs / (double)sp->commits : 0.0);
		pthread_mutex_destroy(&sp->lock);
		pthread_cond_destroy(&sp->wake);
	}
	if (sp->notify_ev != NULL)
		event_free(sp->notify_ev);
	if (sp->notify[0] >= 0) {
		close(sp->notify[0]);
		close(sp->notify[1]);
	}
	if (sp->queue_dirfd >= 0)
		close(sp->queue_dirfd);
	free(sp->dir);
	free(sp);
}

void
spool_new_id(struct spool *sp, char id[SPOOL_ID_MAX])
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	/* time first, so ids sort by age; then a counter from a random
	 * start, so restarts within a second do not collide */
	snprintf(id, SPOOL_ID_MAX, "%09llX%07X",
	    (unsigned long long)now.tv_sec & 0xFFFFFFFFFULL,
	    (unsigned)(sp->counter++ & 0xFFFFFFF));
}

/* ---- envelope text ---- */

/* Addresses are printable ASCII without spaces (smtp_parse checks that);
 * refuse anything that could break the line format anyway. */
static int
field_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static int
envelope_format(const struct spool_envelope *env, struct evbuffer *out)
{
	if (!field_ok(env->sender))
		return -1;
	evbuffer_add_printf(out, SPOOL_MAGIC "\nid %s\ncreated %lld\n"
	    "sender %s\nnull %d\nbounce %d\nsize %" PRIu64 "\n", env->id,
	    (long long)env->created, env->sender, env->null_path,
	    env->is_bounce, env->size);
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (!field_ok(env->rcpts[i]))
			return -1;
		evbuffer_add_printf(out, "rcpt %s\n", env->rcpts[i]);
	}
	evbuffer_add(out, "\n", 1);
	return 0;
}

static int
write_all(int fd, struct evbuffer *buf)
{
	while (evbuffer_get_length(buf) > 0) {
		struct evbuffer_iovec v[16];
		int n = evbuffer_peek(buf, -1, NULL, v, 16);
		if (n > 16)
			n = 16;
		ssize_t w = writev(fd, (struct iovec *)v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		evbuffer_drain(buf, (size_t)w);
	}
	return 0;
}

struct spool_commit *
spool_commit(struct spool *sp, const struct spool_envelope *env,
    struct evbuffer *msg, spool_commit_fn *done, void *arg)
{
	char path[4096];
	struct evbuffer *head = evbuffer_new();

	if (envelope_format(env, head) != 0) {
		evbuffer_free(head);
		errno = EINVAL;
		return NULL;
	}
	path_join(path, sizeof(path), sp->dir, "tmp", env->id);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		evbuffer_free(head);
		return NULL;
	}
	int rc = write_all(fd, head);
	if (rc == 0)
		rc = write_all(fd, msg);
	evbuffer_free(head);
	if (rc != 0) {
		int e = errno;
		close(fd);
		unlink(path);
		errno = e;
		return NULL;
	}

	struct spool_commit *c = xcalloc(1, sizeof(*c));
	c->sp = sp;
	snprintf(c->id, sizeof(c->id), "%s", env->id);
	c->fd = fd;
	c->done = done;
	c->arg = arg;
	pthread_mutex_lock(&sp->lock);
	TAILQ_INSERT_TAIL(&sp->todo, c, entry);
	pthread_cond_signal(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	return c;
}

void
spool_commit_cancel(struct spool_commit *c)
{
	/* Only the event loop reads or writes ->done; the worker never
	 * touches it, so no lock is needed. */
	c->done = NULL;
}

/* ---- reading ---- */

static int
valid_id(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= SPOOL_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		    (name[i] >= 'A' && name[i] <= 'F')))
			return 0;
	return 1;
}

/* Parse the envelope header at the start of f; leaves f after it. */
static struct spool_envelope *
envelope_read(FILE *f, const char *id)
{
	char line[1024];
	size_t total = 0;
	struct spool_envelope *env = xcalloc(1, sizeof(*env));
	int magic = 0, have_sender = 0;

	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		total += len;
		if (total > ENVELOPE_MAX || len == 0 || line[len - 1] != '\n')
			goto bad;
		line[--len] = '\0';
		if (len == 0) {
			if (!magic || !have_sender || env->nrcpts == 0 ||
			    strcmp(env->id, id) != 0)
				goto bad;
			env->rcpt_state = xcalloc(env->nrcpts, 1);
			env->rcpt_error = xcalloc(env->nrcpts,
			    sizeof(*env->rcpt_error));
			return env;
		}
		if (!magic) {
			if (strcmp(line, SPOOL_MAGIC) != 0)
				goto bad;
			magic = 1;
			continue;
		}
		char *val = strchr(line, ' ');
		if (val == NULL)
			goto bad;
		*val++ = '\0';
		if (strcmp(line, "id") == 0)
			snprintf(env->id, sizeof(env->id), "%s", val);
		else if (strcmp(line, "created") == 0)
			env->created = (time_t)strtoll(val, NULL, 10);
		else if (strcmp(line, "sender") == 0) {
			free(env->sender);
			env->sender = xstrdup(val);
			have_sender = 1;
		} else if (strcmp(line, "null") == 0)
			env->null_path = atoi(val);
		else if (strcmp(line, "bounce") == 0)
			env->is_bounce = atoi(val);
		else if (strcmp(line, "size") == 0)
			env->size = strtoull(val, NULL, 10);
		else if (strcmp(line, "rcpt") == 0) {
			env->rcpts = xreallocarray(env->rcpts, env->nrcpts + 1,
			    sizeof(*env->rcpts));
			env->rcpts[env->nrcpts++] = xstrdup(val);
		}
		/* unknown fields: from a newer version; ignore */
	}
bad:
	spool_envelope_free(env);
	return NULL;
}

/* Apply the .state file of env, if there is one. */
static void
state_read(struct spool *sp, struct spool_envelope *env)
{
	char path[4096], name[SPOOL_ID_MAX + 8], line[1024];
	snprintf(name, sizeof(name), "%s.state", env->id);
	path_join(path, sizeof(path), sp->dir, "queue", name);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		char *val = strchr(line, ' ');
		if (val == NULL)
			continue;
		*val++ = '\0';
		if (strcmp(line, "attempts") == 0)
			env->attempts = (unsigned)strtoul(val, NULL, 10);
		else if (strcmp(line, "next") == 0)
			env->next_try = (time_t)strtoll(val, NULL, 10);
		else if (strcmp(line, "error") == 0) {
			free(env->last_error);
			env->last_error = xstrdup(val);
		} else if (strcmp(line, "done") == 0 ||
		    strcmp(line, "failed") == 0) {
			/* "done N" / "failed N reason" */
			char *reason = strchr(val, ' ');
			if (reason != NULL)
				*reason++ = '\0';
			char *end;
			unsigned long i = strtoul(val, &end, 10);
			if (*end != '\0' || i >= env->nrcpts)
				continue;
			env->rcpt_state[i] = line[0] == 'd' ?
			    SPOOL_RCPT_DONE : SPOOL_RCPT_FAILED;
			if (reason != NULL) {
				free(env->rcpt_error[i]);
				env->rcpt_error[i] = xstrdup(reason);
			}
		}
	}
	fclose(f);
}

void
spool_scan(struct spool *sp, void (*fn)(struct spool_envelope *, void *),
    void *arg)
{
	char path[4096];
	path_join(path, sizeof(path), sp->dir, "queue", NULL);
	DIR *d = opendir(path);
	struct dirent *de;
	if (d == NULL) {
		log_warn("spool: %s", path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!valid_id(de->d_name))
			continue;	/* ".", "..", "<id>.state", strays */
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (f == NULL) {
			log_warn("spool: cannot read %s/%s", path, de->d_name);
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct spool_envelope *env = envelope_read(f, de->d_name);
		fclose(f);
		if (env == NULL) {
			log_warnx("spool: %s/%s is not a valid spool file; "
			    "left in place", path, de->d_name);
			continue;
		}
		state_read(sp, env);
		fn(env, arg);
	}
	closedir(d);
}

int
spool_read_message(struct spool *sp, const char *id, struct evbuffer *out)
{
	char path[4096];
	path_join(path, sizeof(path), sp->dir, "queue", id);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	struct spool_envelope *env = envelope_read(f, id);
	if (env == NULL) {
		fclose(f);
		errno = EINVAL;
		return -1;
	}
	spool_envelope_free(env);
	long off = ftell(f);
	int fd = fileno(f);
	struct stat st;
	if (off < 0 || fstat(fd, &st) != 0) {
		fclose(f);
		return -1;
	}
	/* read(2) straight into the buffer */
	size_t left = (size_t)(st.st_size - off);
	if (lseek(fd, off, SEEK_SET) < 0) {
		fclose(f);
		return -1;
	}
	while (left > 0) {
		int n = evbuffer_read(out, fd, left > (1 << 20) ?
		    (1 << 20) : (int)left);
		if (n <= 0) {
			int e = n == 0 ? EIO : errno;
			fclose(f);
			errno = e;
			return -1;
		}
		left -= (size_t)n;
	}
	fclose(f);
	return 0;
}

int
spool_save_state(struct spool *sp, const struct spool_envelope *env)
{
	char path[4096], tmp[4096], name[SPOOL_ID_MAX + 8];
	snprintf(name, sizeof(name), "%s.state", env->id);
	path_join(path, sizeof(path), sp->dir, "queue", name);
	path_join(tmp, sizeof(tmp), sp->dir, "tmp", name);
	FILE *f = fopen(tmp, "we");
	if (f == NULL)
		return -1;
	fprintf(f, "attempts %u\nnext %lld\n", env->attempts,
	    (long long)env->next_try);
	if (env->last_error != NULL && field_ok(env->last_error))
		fprintf(f, "error %s\n", env->last_error);
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpt_state[i] == SPOOL_RCPT_DONE)
			fprintf(f, "done %zu\n", i);
		else if (env->rcpt_state[i] == SPOOL_RCPT_FAILED)
			fprintf(f, "failed %zu %s\n", i,
			    env->rcpt_error[i] != NULL &&
			    field_ok(env->rcpt_error[i]) ?
			    env->rcpt_error[i] : "");
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

void
spool_remove(struct spool *sp, const char *id)
{
	char path[4096], name[SPOOL_ID_MAX + 8];
	path_join(path, sizeof(path), sp->dir, "queue", id);
	if (unlink(path) != 0 && errno != ENOENT)
		log_warn("spool: cannot remove %s", path);
	snprintf(name, sizeof(name), "%s.state", id);
	path_join(path, sizeof(path), sp->dir, "queue", name);
	unlink(path);
}

int
spool_move_failed(struct spool *sp, const char *id, const char *reason)
{
	char from[4096], to[4096], name[SPOOL_ID_MAX + 8];
	snprintf(name, sizeof(name), "%s.reason", id);
	path_join(to, sizeof(to), sp->dir, "failed", name);
	FILE *f = fopen(to, "we");
	if (f == NULL)
		return -1;
	fprintf(f, "%s\n", reason);
	fclose(f);
	path_join(from, sizeof(from), sp->dir, "queue", id);
	path_join(to, sizeof(to), sp->dir, "failed", id);
	if (rename(from, to) != 0)
		return -1;
	snprintf(name, sizeof(name), "%s.state", id);
	path_join(from, sizeof(from), sp->dir, "queue", name);
	unlink(from);
	return 0;
}

void
spool_envelope_free(struct spool_envelope *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i]);
		if (env->rcpt_error != NULL)
			free(env->rcpt_error[i]);
	}
	free(env->rcpts);
	free(env->rcpt_error);
	free(env->rcpt_state);
	free(env->sender);
	free(env->last_error);
	free(env);
}
