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
/* An envelope header larger than this is corrupt.  It must hold what
 * the configuration allows: max_recipients (at most 100,000) "rcpt" lines
 * of paths up to 256 bytes, about 26 MB. */
#define ENVELOPE_MAX (32 * 1024 * 1024)

/*
 * The journal (spool_dir/journal) makes commits durable with one
 * fdatasync per batch instead of an fsync per message plus one of the
 * directory.  A record is one header line and the bytes of the message's
 * queue file:
 *
 *   "J1 <generation> M <id> <length> <crc>\n" <length bytes>
 *
 * generation: 16 hex digits, random per generation; crc: CRC-32C (8 hex
 * digits) of the bytes and then the id.  Records are written from offset
 * 0 on; reading stops at the first record that is torn, corrupt or of
 * another generation (what an older generation left further on).  A
 * journal that starts with "\n" is empty.
 *
 * spool_dir/journal.done lists, one per line, the ids that left the queue
 * (delivered, or moved to failed/), so that a replay does not send them
 * again.  It is appended to by the event loop and never synced: after a
 * power loss a message may be sent twice, never lost.
 */
#define JOURNAL_NAME "journal"
#define DONE_NAME "journal.done"
#define JOURNAL_MAGIC "J1"
#define JOURNAL_HEADER_MAX 96
/* Delivered messages' files kept for reuse: at most this many, each at
 * most FREE_FILE_SIZE_MAX (a larger message costs more to write than to
 * create), so the pool holds at most 16 MB of disk. */
#define FREE_FILES_MAX 256
#define FREE_FILE_SIZE_MAX (64 * 1024)
/* Past this offset the journal starts over after a checkpoint. */
#define JOURNAL_WRAP (16 * 1024 * 1024)

struct spool_commit {
	TAILQ_ENTRY(spool_commit) entry;
	struct spool *sp;
	char id[SPOOL_ID_MAX];
	struct evbuffer *data;		/* envelope and message; the worker's */
	struct spool_stream *stream;	/* or: finish (or abort) this stream */
	int abort;
	uint64_t size;			/* the stream's message octets */
	int error;
	spool_commit_fn *done;
	void *arg;
};
TAILQ_HEAD(commit_list, spool_commit);

/*
 * A large message streamed to its own file, tmp/<id>, as it arrives: the
 * event loop appends to pending; the worker writes it out.  At the commit
 * the worker fills in the size, fdatasyncs the file, renames it into
 * queue/ and fsyncs queue/: such a message is not in the journal (it
 * would be written twice), and a crash before the rename leaves only a
 * tmp/ file, removed at start-up (the client never got 250).
 */
struct spool_stream {
	TAILQ_ENTRY(spool_stream) entry;	/* sp->streams: has work */
	TAILQ_ENTRY(spool_stream) dentry;	/* sp->drained */
	struct spool *sp;
	char id[SPOOL_ID_MAX];
	/* under sp->lock */
	struct evbuffer *pending;	/* appended by the event loop */
	size_t inflight;		/* taken by the worker, not written */
	int queued, on_drained, want_drain;
	/* the worker's */
	int fd;
	struct evbuffer *wbuf;
	uint64_t size_off;		/* of the size digits in the file */
	int error;
	/* the event loop's */
	spool_stream_fn *drained;
	void *arg;
};
TAILQ_HEAD(stream_list, spool_stream);
/* The digits of "size" in a streamed envelope, filled in at the commit. */
#define SIZE_DIGITS 20

struct id_list {
	char (*v)[SPOOL_ID_MAX];
	size_t n, cap;
};

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
	struct stream_list streams;	/* with pending data */
	struct stream_list drained;	/* to report to the event loop */
	int stop;
	int notify[2];			/* worker -> event loop */
	struct event *notify_ev;
	int done_fd;			/* journal.done, O_APPEND */
	/* Files of delivered messages, kept in tmp/ as "free.<n>" to hold
	 * new ones: creating a file costs far more than renaming one
	 * (ext4 without a journal scans past every recently deleted inode
	 * to allocate one).  Under lock. */
	struct id_list freefiles;
	unsigned freeseq;
	/* the journal: the worker's alone (and spool_close's after it) */
	int journal_fd;
	off_t joff;			/* where the next record goes */
	uint64_t jgen;
	struct id_list jids;		/* messages of this generation */
	/* counted by the worker, under lock */
	unsigned long long commits, batches, fsyncs, checkpoints;
};

static int
path_join(char *out, size_t outlen, const char *dir, const char *sub,
    const char *name)
{
	int n = snprintf(out, outlen, "%s/%s%s%s", dir, sub,
	    name != NULL ? "/" : "", name != NULL ? name : "");
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Create dir (mode 0700) if missing; refuse one others can write to,
 * or one that is not ours.  A reader (sesrelay queue, often root on the
 * daemon user's spool) creates nothing and may read anyone's spool. */
static int
ensure_dir(const char *path, int reader, char *err, size_t errlen)
{
	struct stat st;
	if (!reader && mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "spool_dir: cannot create %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "spool_dir: %s: %s%s", path,
		    strerror(errno), errno == ENOENT ? " (sesrelayd has not "
		    "run in spool mode with this spool_dir yet)" : "");
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "spool_dir: %s is not a directory", path);
		return -1;
	}
	if (st.st_mode & 0022) {
		snprintf(err, errlen, "spool_dir: %s is writable by others "
		    "(mode %04o); chmod 700 it", path, st.st_mode & 07777);
		return -1;
	}
	if (!reader && st.st_uid != geteuid()) {
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

/* ---- CRC-32C ---- */

static uint32_t crc_table[256];

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t
crc_sw(uint32_t crc, const unsigned char *p, size_t n)
{
	while (n-- > 0)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CRC_HW 1
__attribute__((target("sse4.2")))
static uint32_t
crc_hw(uint32_t crc, const unsigned char *p, size_t n)
{
	uint64_t c = crc;
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	while (n-- > 0)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

static uint32_t (*crc_update)(uint32_t, const unsigned char *, size_t);

static void
crc_setup(void)
{
	crc_init();
	crc_update = crc_sw;
#ifdef HAVE_CRC_HW
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		crc_update = crc_hw;
#endif
}

/* CRC-32C of the bytes of buf (or of p, n) and then of id. */
static uint32_t
record_crc(struct evbuffer *buf, const void *p, size_t n, const char *id)
{
	uint32_t crc = 0xffffffffu;
	if (buf != NULL) {
		int nv = evbuffer_peek(buf, -1, NULL, NULL, 0);
		struct evbuffer_iovec *v = xcalloc((size_t)(nv > 0 ? nv : 1),
		    sizeof(*v));
		evbuffer_peek(buf, -1, NULL, v, nv);
		for (int i = 0; i < nv; i++)
			crc = crc_update(crc, v[i].iov_base, v[i].iov_len);
		free(v);
	} else if (n > 0) {
		crc = crc_update(crc, p, n);
	}
	crc = crc_update(crc, (const unsigned char *)id, strlen(id));
	return ~crc;
}

/* ---- the journal ---- */

static void
ids_add(struct id_list *l, const char *id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	snprintf(l->v[l->n++], SPOOL_ID_MAX, "%s", id);
}

static uint64_t
new_generation(void)
{
	uint64_t g = 0;
	while (g == 0)
		if (RAND_bytes((unsigned char *)&g, sizeof(g)) != 1)
			g = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	return g;
}

static void
record_header(struct evbuffer *out, uint64_t gen, char type, const char *id,
    size_t len, uint32_t crc)
{
	evbuffer_add_printf(out, JOURNAL_MAGIC " %016" PRIx64 " %c %s %zu "
	    "%08" PRIx32 "\n", gen, type, id, len, crc);
}

/* Write all of buf (leaving it empty) at off.  -1 with errno. */
static int
pwrite_buffer(int fd, struct evbuffer *buf, off_t off)
{
	while (evbuffer_get_length(buf) > 0) {
		struct evbuffer_iovec v[64];
		int n = evbuffer_peek(buf, -1, NULL, v, 64);
		if (n > 64)
			n = 64;
		ssize_t w = off < 0 ? writev(fd, (struct iovec *)v, n) :
		    pwritev(fd, (struct iovec *)v, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (off >= 0)
			off += w;
		evbuffer_drain(buf, (size_t)w);
	}
	return 0;
}

/*
 * Checkpoint: make the queue files of this generation's messages that are
 * still queued durable by themselves, then start a new generation at
 * offset 0.  Returns -1 (errno) if an fsync failed: the journal then
 * stays as it is.
 */
static int
journal_checkpoint(struct spool *sp)
{
	char path[4096];
	unsigned long long n = 0;
	for (size_t i = 0; i < sp->jids.n; i++) {
		path_join(path, sizeof(path), sp->dir, "queue", sp->jids.v[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;	/* delivered (or failed) meanwhile */
		int rc = fsync(fd);
		int e = errno;
		close(fd);
		n++;
		if (rc != 0) {
			errno = e;
			return -1;
		}
	}
	if (fsync(sp->queue_dirfd) != 0)
		return -1;
	/* the generation is not needed any more: a start-up after a crash
	 * must not replay it (after a power loss it may: duplicates only) */
	if (pwrite(sp->journal_fd, "\n", 1, 0) != 1)
		return -1;
	if (ftruncate(sp->done_fd, 0) != 0)
		log_warn("spool: cannot truncate %s/" DONE_NAME, sp->dir);
	sp->jids.n = 0;
	sp->jgen = new_generation();
	sp->joff = 0;
	pthread_mutex_lock(&sp->lock);
	sp->fsyncs += n + 1;
	sp->checkpoints++;
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

/* ---- the commit worker ---- */

/* Write c's data to tmp/<id> (not synced: the journal is what is). */
static void
write_tmp(struct spool *sp, struct spool_commit *c)
{
	char path[4096], name[SPOOL_ID_MAX] = "";
	int fd = -1;
	path_join(path, sizeof(path), sp->dir, "tmp", c->id);
	pthread_mutex_lock(&sp->lock);
	if (sp->freefiles.n > 0)
		memcpy(name, sp->freefiles.v[--sp->freefiles.n], sizeof(name));
	pthread_mutex_unlock(&sp->lock);
	if (name[0] != '\0') {
		char from[4096];
		path_join(from, sizeof(from), sp->dir, "tmp", name);
		if (rename(from, path) == 0)
			fd = open(path, O_WRONLY | O_CLOEXEC);
		else
			unlink(from);
	}
	if (fd < 0)
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		c->error = errno;
		return;
	}
	struct evbuffer *ref = evbuffer_new();
	if (ref == NULL)
		fatalx("evbuffer_new failed");
	evbuffer_add_buffer_reference(ref, c->data);
	if (pwrite_buffer(fd, ref, -1) != 0)
		c->error = errno;
	evbuffer_free(ref);
	/* a reused file may have been longer */
	if (c->error == 0 && name[0] != '\0' &&
	    ftruncate(fd, (off_t)evbuffer_get_length(c->data)) != 0)
		c->error = errno;
	if (close(fd) != 0 && c->error == 0)
		c->error = errno;
	if (c->error != 0)
		unlink(path);
}

static void stream_finish(struct spool *, struct spool_commit *);

/* Append the records of the batch's commits that are still fine, then
 * fdatasync.  -1 (errno). */
static int
journal_append(struct spool *sp, struct commit_list *batch)
{
	struct evbuffer *out = evbuffer_new();
	struct spool_commit *c;
	if (out == NULL)
		fatalx("evbuffer_new failed");
	TAILQ_FOREACH(c, batch, entry) {
		if (c->error != 0 || c->stream != NULL)
			continue;
		record_header(out, sp->jgen, 'M', c->id,
		    evbuffer_get_length(c->data),
		    record_crc(c->data, NULL, 0, c->id));
		/* a reference, not a copy: c->data is still needed if this
		 * write has to be done again */
		evbuffer_add_buffer_reference(out, c->data);
	}
	size_t len = evbuffer_get_length(out);
	int rc = pwrite_buffer(sp->journal_fd, out, sp->joff);
	int e = errno;
	evbuffer_free(out);
	if (rc != 0) {
		errno = e;
		return -1;
	}
	sp->joff += (off_t)len;
	return fdatasync(sp->journal_fd);
}

static void
commit_batch(struct spool *sp, struct commit_list *batch)
{
	struct spool_commit *c;
	size_t want = 0;
	int ok = 0;

	TAILQ_FOREACH(c, batch, entry) {
		if (c->stream != NULL) {
			stream_finish(sp, c);
			continue;
		}
		write_tmp(sp, c);
		if (c->error == 0) {
			ok++;
			want += evbuffer_get_length(c->data) + JOURNAL_HEADER_MAX;
		}
	}
	if (ok == 0)
		return;
	if (sp->joff > 0 && (size_t)sp->joff + want > JOURNAL_WRAP &&
	    journal_checkpoint(sp) != 0)
		log_warn("spool: journal checkpoint failed");
	int rc = journal_append(sp, batch);
	if (rc != 0 && sp->joff > 0 && (errno == ENOSPC || errno == EDQUOT ||
	    errno == EFBIG) && journal_checkpoint(sp) == 0) {
		/* a full disk: start over where the journal has room */
		rc = journal_append(sp, batch);
	}
	int e = errno;
	pthread_mutex_lock(&sp->lock);
	sp->fsyncs++;
	pthread_mutex_unlock(&sp->lock);
	TAILQ_FOREACH(c, batch, entry) {
		char from[4096], to[4096];
		if (c->error != 0 || c->stream != NULL)
			continue;
		path_join(from, sizeof(from), sp->dir, "tmp", c->id);
		path_join(to, sizeof(to), sp->dir, "queue", c->id);
		if (rc != 0)
			c->error = e;
		else if (rename(from, to) != 0)
			c->error = errno;
		if (c->error != 0)
			unlink(from);
		else
			ids_add(&sp->jids, c->id);
	}
}

/* The worker: write what st has taken (wbuf) to tmp/<id>. */
static void
stream_write(struct spool *sp, struct spool_stream *st)
{
	if (st->error == 0 && st->fd < 0) {
		char path[4096];
		path_join(path, sizeof(path), sp->dir, "tmp", st->id);
		st->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (st->fd < 0)
			st->error = errno;
	}
	if (st->error == 0 && pwrite_buffer(st->fd, st->wbuf, -1) != 0)
		st->error = errno;
	evbuffer_drain(st->wbuf, evbuffer_get_length(st->wbuf));
}

/* The worker: commit (or abort) a stream, its data all written. */
static void
stream_finish(struct spool *sp, struct spool_commit *c)
{
	struct spool_stream *st = c->stream;
	char from[4096], to[4096], digits[SIZE_DIGITS + 1];
	path_join(from, sizeof(from), sp->dir, "tmp", st->id);
	path_join(to, sizeof(to), sp->dir, "queue", st->id);
	if (c->abort) {
		if (st->fd >= 0) {
			close(st->fd);
			unlink(from);
		}
		st->fd = -1;
		return;
	}
	if (evbuffer_get_length(st->wbuf) > 0)
		stream_write(sp, st);	/* cannot happen: written first */
	c->error = st->error;
	snprintf(digits, sizeof(digits), "%0*" PRIu64, SIZE_DIGITS, c->size);
	if (c->error == 0 && st->fd < 0)
		c->error = EIO;		/* never opened: cannot happen */
	if (c->error == 0 && pwrite(st->fd, digits, SIZE_DIGITS,
	    (off_t)st->size_off) != SIZE_DIGITS)
		c->error = errno != 0 ? errno : EIO;
	if (c->error == 0 && fdatasync(st->fd) != 0)
		c->error = errno;
	if (st->fd >= 0 && close(st->fd) != 0 && c->error == 0)
		c->error = errno;
	st->fd = -1;
	if (c->error == 0 && rename(from, to) != 0)
		c->error = errno;
	if (c->error == 0 && fsync(sp->queue_dirfd) != 0) {
		c->error = errno;
		unlink(to);
	}
	if (c->error != 0)
		unlink(from);
	pthread_mutex_lock(&sp->lock);
	sp->fsyncs += 2;
	pthread_mutex_unlock(&sp->lock);
}

static void *
worker_main(void *arg)
{
	struct spool *sp = arg;
	struct commit_list batch;
	struct stream_list streams;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		while (TAILQ_EMPTY(&sp->todo) && TAILQ_EMPTY(&sp->streams) &&
		    !sp->stop)
			pthread_cond_wait(&sp->wake, &sp->lock);
		if (TAILQ_EMPTY(&sp->todo) && TAILQ_EMPTY(&sp->streams) &&
		    sp->stop)
			break;
		/* Both lists at once: a stream's commit is queued after its
		 * last data, so that data is written first (below). */
		TAILQ_INIT(&batch);
		TAILQ_CONCAT(&batch, &sp->todo, entry);
		TAILQ_INIT(&streams);
		TAILQ_CONCAT(&streams, &sp->streams, entry);
		/* An array, not the list: once ->queued is 0 the event loop
		 * may put a stream on sp->streams again (its ->entry) while
		 * we write it. */
		struct spool_stream *st;
		size_t nst = 0;
		TAILQ_FOREACH(st, &streams, entry)
			nst++;
		struct spool_stream **sv = nst > 0 ?
		    xcalloc(nst, sizeof(*sv)) : NULL;
		nst = 0;
		while ((st = TAILQ_FIRST(&streams)) != NULL) {
			TAILQ_REMOVE(&streams, st, entry);
			sv[nst++] = st;
			st->queued = 0;
			evbuffer_add_buffer(st->wbuf, st->pending);
			st->inflight = evbuffer_get_length(st->wbuf);
		}
		pthread_mutex_unlock(&sp->lock);

		for (size_t i = 0; i < nst; i++)
			stream_write(sp, sv[i]);
		if (nst > 0) {
			int wake = 0;
			pthread_mutex_lock(&sp->lock);
			for (size_t i = 0; i < nst; i++) {
				st = sv[i];
				st->inflight = 0;
				if (st->want_drain && !st->on_drained &&
				    evbuffer_get_length(st->pending) <
				    SPOOL_STREAM_LOW) {
					st->want_drain = 0;
					st->on_drained = 1;
					TAILQ_INSERT_TAIL(&sp->drained, st,
					    dentry);
					wake = 1;
				}
			}
			free(sv);
			if (wake) {
				char one = 1;
				ssize_t n = write(sp->notify[1], &one, 1);
				(void)n;
			}
			if (TAILQ_EMPTY(&batch))
				continue;	/* the lock is held */
			pthread_mutex_unlock(&sp->lock);
		}

		/* Everything that arrived while the last batch was being
		 * made durable shares this batch's fdatasync. */
		commit_batch(sp, &batch);
		struct spool_commit *c;
		TAILQ_FOREACH(c, &batch, entry) {
			if (c->data != NULL)
				evbuffer_free(c->data);
			c->data = NULL;
		}

		pthread_mutex_lock(&sp->lock);
		TAILQ_FOREACH(c, &batch, entry)
			sp->commits++;
		sp->batches++;
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
	struct stream_list drained;
	TAILQ_INIT(&drained);
	pthread_mutex_lock(&sp->lock);
	TAILQ_CONCAT(&done, &sp->finished, entry);
	TAILQ_CONCAT(&drained, &sp->drained, dentry);
	struct spool_stream *st;
	TAILQ_FOREACH(st, &drained, dentry)
		st->on_drained = 0;
	pthread_mutex_unlock(&sp->lock);

	/* before the commits: a stream is freed with its commit */
	while ((st = TAILQ_FIRST(&drained)) != NULL) {
		TAILQ_REMOVE(&drained, st, dentry);
		if (st->drained != NULL)
			st->drained(st->arg);
	}
	struct spool_commit *c;
	while ((c = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, c, entry);
		if (c->stream != NULL) {
			evbuffer_free(c->stream->pending);
			evbuffer_free(c->stream->wbuf);
			free(c->stream);
		}
		if (c->done != NULL)
			c->done(c->error, c->arg);
		free(c);
	}
}

/* ---- the journal at start-up and at the end ---- */

static int valid_id(const char *name);

struct jrecord {
	char id[SPOOL_ID_MAX];
	off_t off;		/* of the message bytes */
	size_t len;
};

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Read exactly n bytes at off into buf.  -1 (errno) on failure. */
static int
pread_all(int fd, void *buf, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, buf, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		buf = (char *)buf + r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Is path a file holding exactly the n bytes of want? */
static int
same_content(const char *path, const unsigned char *want, size_t n)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int same = 0;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size == n) {
		unsigned char *have = xmalloc(n > 0 ? n : 1);
		same = pread_all(fd, have, n, 0) == 0 &&
		    memcmp(have, want, n) == 0;
		free(have);
	}
	close(fd);
	return same;
}

/* Make queue/<id> hold the n bytes of data, durably. */
static int
restore_file(struct spool *sp, const char *id, const unsigned char *data,
    size_t n)
{
	char tmp[4096], path[4096], name[SPOOL_ID_MAX + 16];
	path_join(path, sizeof(path), sp->dir, "queue", id);
	if (same_content(path, data, n)) {
		/* there, perhaps only in the page cache: make it durable */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	snprintf(name, sizeof(name), "%s.journal", id);
	path_join(tmp, sizeof(tmp), sp->dir, "tmp", name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t o = 0;
	while (o < n) {
		ssize_t w = write(fd, data + o, n - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		o += (size_t)w;
	}
	if (o < n || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	log_info("spool: journal: restored %s/queue/%s", sp->dir, id);
	return 1;
}

/*
 * After a crash: every message of the journal's last generation that has
 * no D record must be in queue/ (unless it went to failed/), complete and
 * durable.  Then the journal is emptied.  Returns 0, or -1 and a reason.
 */
static int
journal_recover(struct spool *sp, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(sp->journal_fd, &st) != 0) {
		snprintf(err, errlen, "spool_dir: journal: %s", strerror(errno));
		return -1;
	}
	struct jrecord *recs = NULL;
	size_t nrecs = 0, cap = 0;
	struct id_list done = { NULL, 0, 0 };
	uint64_t gen = 0;
	off_t off = 0;
	unsigned char *buf = NULL;
	size_t bufcap = 0;
	char line[JOURNAL_HEADER_MAX + 1];

	while (off < st.st_size) {
		size_t hl = (size_t)(st.st_size - off) < JOURNAL_HEADER_MAX ?
		    (size_t)(st.st_size - off) : JOURNAL_HEADER_MAX;
		if (pread_all(sp->journal_fd, line, hl, off) != 0)
			break;
		line[hl] = '\0';
		char *nl = memchr(line, '\n', hl);
		if (nl == NULL)
			break;
		*nl = '\0';
		char id[SPOOL_ID_MAX + 1], type, extra;
		uint64_t g;
		size_t len;
		uint32_t crc;
		if (sscanf(line, JOURNAL_MAGIC " %16" SCNx64 " %c %24s %zu %8"
		    SCNx32 "%c", &g, &type, id, &len, &crc, &extra) != 5 ||
		    !valid_id(id) || type != 'M' || (gen != 0 && g != gen))
			break;
		off_t body = off + (off_t)(nl - line) + 1;
		if (len > (size_t)(st.st_size - body))
			break;		/* torn */
		if (len + 1 > bufcap) {
			bufcap = len + 1;
			free(buf);
			buf = xmalloc(bufcap);
		}
		if (pread_all(sp->journal_fd, buf, len, body) != 0 ||
		    record_crc(NULL, buf, len, id) != crc)
			break;		/* torn or not ours */
		gen = g;
		if (nrecs == cap) {
			cap = cap ? 2 * cap : 64;
			recs = xreallocarray(recs, cap, sizeof(*recs));
		}
		snprintf(recs[nrecs].id, SPOOL_ID_MAX, "%s", id);
		recs[nrecs].off = body;
		recs[nrecs].len = len;
		nrecs++;
		off = body + (off_t)len;
	}
	/* the ids that left the queue; lines that are not ids (what a
	 * power loss may leave in a file never synced) are skipped */
	FILE *df = nrecs > 0 ? fdopen(dup(sp->done_fd), "r") : NULL;
	if (df != NULL) {
		rewind(df);
		while (fgets(line, sizeof(line), df) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (valid_id(line))
				ids_add(&done, line);
		}
		fclose(df);
	}

	int rc = 0;
	size_t restored = 0;
	if (done.n > 0)
		qsort(done.v, done.n, sizeof(*done.v), cmp_id);
	for (size_t i = 0; i < nrecs && rc == 0; i++) {
		char path[4096];
		if (done.n > 0 && bsearch(recs[i].id, done.v, done.n,
		    sizeof(*done.v), cmp_id) != NULL)
			continue;
		path_join(path, sizeof(path), sp->dir, "failed", recs[i].id);
		if (access(path, F_OK) == 0)
			continue;
		if (recs[i].len + 1 > bufcap) {
			bufcap = recs[i].len + 1;
			free(buf);
			buf = xmalloc(bufcap);
		}
		int r = pread_all(sp->journal_fd, buf, recs[i].len, recs[i].off);
		if (r == 0)
			r = restore_file(sp, recs[i].id, buf, recs[i].len);
		if (r < 0) {
			snprintf(err, errlen, "spool_dir: cannot restore %s from "
			    "the journal: %s", recs[i].id, strerror(errno));
			rc = -1;
		} else {
			restored += (size_t)r;
		}
	}
	if (rc == 0 && nrecs > 0) {
		if (fsync(sp->queue_dirfd) != 0) {
			snprintf(err, errlen, "spool_dir: fsync queue/: %s",
			    strerror(errno));
			rc = -1;
		} else {
			log_info("spool: journal: %zu messages checked, %zu "
			    "restored", nrecs, restored);
		}
	}
	free(buf);
	free(recs);
	free(done.v);
	return rc;
}

/* Nothing in the journal is needed any more: make sure a start-up does
 * not read it. */
static int
journal_clear(struct spool *sp)
{
	if (pwrite(sp->journal_fd, "\n", 1, 0) != 1 ||
	    fdatasync(sp->journal_fd) != 0)
		return -1;
	if (ftruncate(sp->done_fd, 0) != 0)
		log_warn("spool: cannot truncate %s/" DONE_NAME, sp->dir);
	sp->jgen = new_generation();
	sp->joff = 0;
	sp->jids.n = 0;
	return 0;
}

static int
journal_open(struct spool *sp, char *err, size_t errlen)
{
	char path[4096];
	path_join(path, sizeof(path), sp->dir, JOURNAL_NAME, NULL);
	sp->journal_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (sp->journal_fd >= 0) {
		/* new: its name must survive a crash too */
		int dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) != 0) {
			snprintf(err, errlen, "spool_dir: fsync %s: %s", sp->dir,
			    strerror(errno));
			if (dfd >= 0)
				close(dfd);
			return -1;
		}
		close(dfd);
	} else if (errno == EEXIST) {
		sp->journal_fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (sp->journal_fd < 0) {
		snprintf(err, errlen, "spool_dir: %s: %s", path, strerror(errno));
		return -1;
	}
	/* its name need not survive a power loss: it is not synced anyway */
	path_join(path, sizeof(path), sp->dir, DONE_NAME, NULL);
	sp->done_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (sp->done_fd < 0) {
		snprintf(err, errlen, "spool_dir: %s: %s", path, strerror(errno));
		return -1;
	}
	sp->jgen = new_generation();
	char first[4] = "";
	if (pread(sp->journal_fd, first, 2, 0) == 2 && first[0] == 'J') {
		/* not emptied at the end: we crashed */
		if (journal_recover(sp, err, errlen) != 0)
			return -1;
		if (journal_clear(sp) != 0) {
			snprintf(err, errlen, "spool_dir: %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

struct spool *
spool_open(struct event_base *base, const char *dir, char *err, size_t errlen)
{
	static const char *subdirs[] = { "tmp", "queue", "failed" };
	char path[4096];

	int reader = base == NULL;

	if (ensure_dir(dir, reader, err, errlen) != 0)
		return NULL;
	for (size_t i = 0; i < 3; i++) {
		if (path_join(path, sizeof(path), dir, subdirs[i], NULL) != 0) {
			snprintf(err, errlen, "spool_dir: path too long");
			return NULL;
		}
		if (ensure_dir(path, reader, err, errlen) != 0)
			return NULL;
	}
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->dir = xstrdup(dir);
	sp->base = base;
	sp->notify[0] = sp->notify[1] = -1;
	sp->journal_fd = sp->done_fd = -1;
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
	TAILQ_INIT(&sp->streams);
	TAILQ_INIT(&sp->drained);
	if (base == NULL)
		return sp;	/* a reader: sesrelay queue */

	clean_tmp(sp);
	if (crc_update == NULL)
		crc_setup();
	if (journal_open(sp, err, errlen) != 0) {
		spool_close(sp);
		return NULL;
	}
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
		/* what is still queued is made durable by itself: the next
		 * start-up need not read the journal */
		if (journal_checkpoint(sp) != 0 || journal_clear(sp) != 0)
			log_warn("spool: cannot checkpoint the journal; the "
			    "next start will replay it");
		else if (ftruncate(sp->journal_fd, 1) != 0)	/* just "\n" */
			log_warn("spool: cannot truncate the journal");
		/* a stopped relay holds no disk for files it may reuse */
		for (size_t i = 0; i < sp->freefiles.n; i++) {
			char path[4096];
			path_join(path, sizeof(path), sp->dir, "tmp",
			    sp->freefiles.v[i]);
			unlink(path);
		}
		sp->freefiles.n = 0;
		log_info("spool: commits=%llu batches=%llu fsyncs=%llu "
		    "(%.2f fsyncs per message) checkpoints=%llu", sp->commits,
		    sp->batches, sp->fsyncs, sp->commits > 0 ?
		    (double)sp->fsyncs / (double)sp->commits : 0.0,
		    sp->checkpoints);
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
	if (sp->journal_fd >= 0)
		close(sp->journal_fd);
	if (sp->done_fd >= 0)
		close(sp->done_fd);
	free(sp->jids.v);
	free(sp->freefiles.v);
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

/* size_off NULL: the size as it is; else SIZE_DIGITS zeros, their
 * offset in *size_off (a stream fills them in at its commit). */
static int
envelope_format(const struct spool_envelope *env, struct evbuffer *out,
    uint64_t *size_off)
{
	if (!field_ok(env->sender))
		return -1;
	evbuffer_add_printf(out, SPOOL_MAGIC "\nid %s\ncreated %lld\n"
	    "sender %s\nnull %d\nbounce %d\nsize ", env->id,
	    (long long)env->created, env->sender, env->null_path,
	    env->is_bounce);
	if (size_off != NULL) {
		*size_off = evbuffer_get_length(out);
		evbuffer_add_printf(out, "%0*d\n", SIZE_DIGITS, 0);
	} else {
		evbuffer_add_printf(out, "%" PRIu64 "\n", env->size);
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (!field_ok(env->rcpts[i]))
			return -1;
		evbuffer_add_printf(out, "rcpt %s\n", env->rcpts[i]);
	}
	evbuffer_add(out, "\n", 1);
	return 0;
}

struct spool_commit *
spool_commit(struct spool *sp, const struct spool_envelope *env,
    struct evbuffer *msg, spool_commit_fn *done, void *arg)
{
	struct evbuffer *data = evbuffer_new();
	if (data == NULL)
		fatalx("evbuffer_new failed");
	if (envelope_format(env, data, NULL) != 0) {
		evbuffer_free(data);
		errno = EINVAL;
		return NULL;
	}
	evbuffer_add_buffer(data, msg);		/* moves it: no copy */

	struct spool_commit *c = xcalloc(1, sizeof(*c));
	c->sp = sp;
	snprintf(c->id, sizeof(c->id), "%s", env->id);
	c->data = data;
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

struct spool_stream *
spool_stream_open(struct spool *sp, const struct spool_envelope *env,
    spool_stream_fn *drained, void *arg)
{
	struct spool_stream *st = xcalloc(1, sizeof(*st));
	st->sp = sp;
	snprintf(st->id, sizeof(st->id), "%s", env->id);
	st->fd = -1;
	st->pending = evbuffer_new();
	st->wbuf = evbuffer_new();
	if (st->pending == NULL || st->wbuf == NULL)
		fatalx("evbuffer_new failed");
	if (envelope_format(env, st->pending, &st->size_off) != 0) {
		evbuffer_free(st->pending);
		evbuffer_free(st->wbuf);
		free(st);
		errno = EINVAL;
		return NULL;
	}
	st->drained = drained;
	st->arg = arg;
	return st;
}

size_t
spool_stream_write(struct spool_stream *st, struct evbuffer *data)
{
	struct spool *sp = st->sp;
	size_t left;
	pthread_mutex_lock(&sp->lock);
	evbuffer_add_buffer(st->pending, data);
	if (!st->queued) {
		st->queued = 1;
		TAILQ_INSERT_TAIL(&sp->streams, st, entry);
		pthread_cond_signal(&sp->wake);
	}
	left = evbuffer_get_length(st->pending) + st->inflight;
	if (left > SPOOL_STREAM_HIGH)
		st->want_drain = 1;
	pthread_mutex_unlock(&sp->lock);
	return left;
}

static struct spool_commit *
stream_end(struct spool_stream *st, int abort, uint64_t size,
    spool_commit_fn *done, void *arg)
{
	struct spool *sp = st->sp;
	struct spool_commit *c = xcalloc(1, sizeof(*c));
	st->drained = NULL;		/* the event loop's: no lock */
	c->sp = sp;
	snprintf(c->id, sizeof(c->id), "%s", st->id);
	c->stream = st;
	c->abort = abort;
	c->size = size;
	c->done = done;
	c->arg = arg;
	pthread_mutex_lock(&sp->lock);
	st->want_drain = 0;
	TAILQ_INSERT_TAIL(&sp->todo, c, entry);
	pthread_cond_signal(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	return c;
}

struct spool_commit *
spool_stream_commit(struct spool_stream *st, uint64_t size,
    spool_commit_fn *done, void *arg)
{
	return stream_end(st, 0, size, done, arg);
}

void
spool_stream_abort(struct spool_stream *st)
{
	stream_end(st, 1, 0, NULL, NULL);
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
spool_open_message(struct spool *sp, const char *id, uint64_t *off,
    uint64_t *len)
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
	long o = ftell(f);
	struct stat st;
	if (o < 0 || fstat(fileno(f), &st) != 0 || st.st_size < o) {
		int e = errno != 0 ? errno : EINVAL;
		fclose(f);
		errno = e;
		return -1;
	}
	int fd = fcntl(fileno(f), F_DUPFD_CLOEXEC, 0);
	int e = errno;
	fclose(f);
	if (fd < 0) {
		errno = e;
		return -1;
	}
	*off = (uint64_t)o;
	*len = (uint64_t)(st.st_size - o);
	return fd;
}

int
spool_read_message(struct spool *sp, const char *id, struct evbuffer *out,
    size_t max)
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
	if (max > 0 && left > max)
		left = max;
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

/* id left the queue: a replay of the journal must not send it again.
 * Not synced: after a power loss a message may be sent twice, never
 * lost. */
static void
journal_done(struct spool *sp, const char *id)
{
	char line[SPOOL_ID_MAX + 1];
	if (sp->done_fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "%s\n", id);
	if (write(sp->done_fd, line, (size_t)n) != n)
		log_debug("spool: cannot append to " DONE_NAME);
}

/* Keep the file at path for a new message if the pool has room; 0 if
 * it was taken. */
static int
keep_file(struct spool *sp, const char *path)
{
	char name[SPOOL_ID_MAX], to[4096];
	struct stat st;
	if (!sp->worker_running || stat(path, &st) != 0 ||
	    st.st_size > FREE_FILE_SIZE_MAX)
		return -1;
	pthread_mutex_lock(&sp->lock);
	int room = sp->freefiles.n < FREE_FILES_MAX;
	snprintf(name, sizeof(name), "free.%u", sp->freeseq++);
	pthread_mutex_unlock(&sp->lock);
	path_join(to, sizeof(to), sp->dir, "tmp", name);
	if (!room || rename(path, to) != 0)
		return -1;
	pthread_mutex_lock(&sp->lock);
	ids_add(&sp->freefiles, name);
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

void
spool_remove(struct spool *sp, const char *id)
{
	journal_done(sp, id);
	char path[4096], name[SPOOL_ID_MAX + 8];
	path_join(path, sizeof(path), sp->dir, "queue", id);
	if (keep_file(sp, path) != 0 && unlink(path) != 0 && errno != ENOENT)
		log_warn("spool: cannot remove %s", path);
	snprintf(name, sizeof(name), "%s.state", id);
	path_join(path, sizeof(path), sp->dir, "queue", name);
	unlink(path);
}

int
spool_move_failed(struct spool *sp, const char *id, const char *reason)
{
	char from[4096], to[4096], reason_path[4096], name[SPOOL_ID_MAX + 8];
	snprintf(name, sizeof(name), "%s.reason", id);
	path_join(reason_path, sizeof(reason_path), sp->dir, "failed", name);
	/* The message matters more than its reason (which is in the log
	 * too): on a full disk it moves all the same, without one. */
	FILE *f = fopen(reason_path, "we");
	int wrote = f != NULL && fprintf(f, "%s\n", reason) >= 0;
	if (f != NULL && fclose(f) != 0)
		wrote = 0;
	if (!wrote) {
		log_warn("spool: cannot write %s", reason_path);
		unlink(reason_path);
	}
	path_join(from, sizeof(from), sp->dir, "queue", id);
	path_join(to, sizeof(to), sp->dir, "failed", id);
	if (rename(from, to) != 0) {
		int e = errno;
		unlink(reason_path);
		errno = e;
		return -1;
	}
	journal_done(sp, id);
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
