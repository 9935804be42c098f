/*
 * spool.h — the durable store under spool_dir.
 *
 *   tmp/<id>          being written; removed at start-up (never delivered)
 *   tmp/free.<n>      files of delivered messages, reused for new ones
 *                     (at most 256 of up to 64 KB; removed at a clean stop)
 *   queue/<id>        committed: envelope header, empty line, message
 *   queue/<id>.state  delivery progress (recipients done or failed,
 *                     attempts, next try); rewritten by tmp + rename
 *   failed/<id>       permanently failed messages, with failed/<id>.reason
 *   journal           the bytes of recently committed queue files, with
 *                     checksums (see spool.c)
 *   journal.done      ids of journal messages that left the queue
 *
 * A message is committed by writing tmp/<id>, appending the same bytes to
 * the journal, fdatasync(journal), then rename(tmp -> queue): only after
 * that is the client told 250.  The message is durable from the
 * fdatasync on; its queue file is not synced itself.  All of this happens
 * on a worker thread, never on the event loop, and the commits that
 * arrive while one batch is being synced share the next fdatasync (group
 * commit).  The completion is reported back on the event loop.
 *
 * After a crash, spool_open replays the journal: a message of it whose
 * queue file is missing or differs (a power loss can lose both the rename
 * and the data of a file never synced), and that is neither in
 * journal.done nor in failed/, is written again to queue/ and synced.
 * When the journal has grown past 16 MB, the queue files of its messages
 * still queued are fsync'd and it starts over (checkpoint); spool_close
 * does the same, so a clean start reads nothing.  journal.done is not
 * synced, and neither is the .state file: after a crash a recipient may
 * be delivered twice, never lost.
 */
#ifndef SESRELAY_SPOOL_H
#define SESRELAY_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event_base;
struct evbuffer;

#define SPOOL_ID_MAX 24

struct spool;
struct spool_commit;

/* The envelope of a spooled message. */
struct spool_envelope {
	char id[SPOOL_ID_MAX];
	time_t created;
	char *sender;		/* the MAIL FROM to use upstream */
	int null_path;		/* the client sent MAIL FROM:<>: never bounce */
	int is_bounce;		/* a DSN we made: never bounce either */
	char **rcpts;
	size_t nrcpts;
	uint64_t size;		/* message octets */
	/* delivery state (.state file) */
	unsigned char *rcpt_state;	/* SPOOL_RCPT_* per recipient */
	unsigned attempts;
	time_t next_try;
	char *last_error;	/* one line, or NULL */
	char **rcpt_error;	/* per recipient, NULL if none */
};

enum { SPOOL_RCPT_PENDING = 0, SPOOL_RCPT_DONE = 1, SPOOL_RCPT_FAILED = 2 };

/* Open (creating the directories, mode 0700) and check dir, which must
 * belong to us; clean tmp/.  NULL and a one-line reason in err on
 * failure.  base may be NULL for read-only tools (no commits then): they
 * create nothing and may read a spool that belongs to another user. */
struct spool *spool_open(struct event_base *base, const char *dir,
    char *err, size_t errlen);
void spool_close(struct spool *sp);

/* A fresh queue id (unique in this spool). */
void spool_new_id(struct spool *sp, char id[SPOOL_ID_MAX]);

typedef void spool_commit_fn(int error, void *arg);

/*
 * Commit env (id, created, sender, null_path, is_bounce, rcpts) and msg
 * (drained: its bytes are moved, not copied) durably, on the worker
 * thread.  done(0, arg) is called on the event loop once the message is
 * in queue/ and durable; done(errno, arg) if anything failed (disk full,
 * ...; nothing is left behind then).  done is never called from inside
 * spool_commit.  Returns a handle for spool_commit_cancel, or NULL (with
 * errno set, done not called) if the envelope cannot be stored.
 */
struct spool_commit *spool_commit(struct spool *sp,
    const struct spool_envelope *env, struct evbuffer *msg,
    spool_commit_fn *done, void *arg);
/* The caller is gone: the commit goes on, done is not called. */
void spool_commit_cancel(struct spool_commit *c);

/*
 * A large message, streamed to disk as it arrives instead of held whole:
 * spool_stream_open takes the envelope (as for spool_commit, size not yet
 * known); spool_stream_write moves data's bytes to the stream (the worker
 * thread writes them to tmp/<id>) and returns how many are not written
 * yet.  Past SPOOL_STREAM_HIGH the caller should stop reading its client:
 * drained(arg) is called on the event loop once fewer than
 * SPOOL_STREAM_LOW are left.  Then exactly one of:
 *   spool_stream_commit: the file gets its size, is fdatasync'd and
 *     renamed into queue/, queue/ is fsync'd (it is not in the journal);
 *     done as for spool_commit (errno of any write failure on the way);
 *   spool_stream_abort: the file is removed, nothing is reported.
 * Either consumes st.  A crash before the commit leaves a tmp/ file only.
 */
struct spool_stream;
typedef void spool_stream_fn(void *arg);
#define SPOOL_STREAM_HIGH (128 * 1024)
#define SPOOL_STREAM_LOW (32 * 1024)
struct spool_stream *spool_stream_open(struct spool *sp,
    const struct spool_envelope *env, spool_stream_fn *drained, void *arg);
size_t spool_stream_write(struct spool_stream *st, struct evbuffer *data);
struct spool_commit *spool_stream_commit(struct spool_stream *st,
    uint64_t size, spool_commit_fn *done, void *arg);
void spool_stream_abort(struct spool_stream *st);

/* Load every committed envelope (with its state); calls fn for each.
 * Unreadable entries are logged and skipped (left in place). */
void spool_scan(struct spool *sp,
    void (*fn)(struct spool_envelope *env, void *arg), void *arg);
/* Read the message of id (its first max octets if max > 0) into out.
 * -1 (errno) on failure. */
int spool_read_message(struct spool *sp, const char *id, struct evbuffer *out,
    size_t max);
/* Open the message of id for reading in pieces: returns a descriptor
 * (close-on-exec; the caller closes it) with the message's len octets
 * from *off, or -1 (errno). */
int spool_open_message(struct spool *sp, const char *id, uint64_t *off,
    uint64_t *len);
/* Persist env's delivery state. -1 (errno) on failure. */
int spool_save_state(struct spool *sp, const struct spool_envelope *env);
/* Delivered (or given up): remove id and its state. */
void spool_remove(struct spool *sp, const char *id);
/* Move id to failed/ with a reason file. -1 (errno) on failure. */
int spool_move_failed(struct spool *sp, const char *id, const char *reason);

void spool_envelope_free(struct spool_envelope *env);

#endif
