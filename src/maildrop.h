/*
 * maildrop.h — the daemon's side of sendmail_fallback = spool.
 *
 * When sendmail.sesrelay(8) cannot reach sesrelayd it may leave the
 * message in spool_dir/maildrop (maildrop_file.h).  The directory is
 * Postfix's maildrop: owned by the daemon's user, group sesrelay-drop,
 * mode 1730, inside a spool_dir of mode 0710 and that group, so that
 * members (sendmail.sesrelay is setgid sesrelay-drop) can create files
 * but not list, read or remove anyone else's.
 *
 * The daemon picks the files up at start and then every
 * MAILDROP_POLL_SECONDS: when complete files wait, it runs
 * "sendmail.sesrelay --pickup -C <config>" as its own user, which submits
 * each over SMTP to this daemon like any local client (same checks,
 * spool or passthrough), and logs what that child writes on stderr.
 */
#ifndef SESRELAY_MAILDROP_H
#define SESRELAY_MAILDROP_H

#include <stddef.h>

struct event_base;
struct config;
struct maildrop;

#define MAILDROP_GROUP "sesrelay-drop"
#define MAILDROP_POLL_SECONDS 10

/*
 * Set the directories up for cfg->sendmail_fallback: for spool, create
 * spool_dir (if missing) and spool_dir/maildrop and give them their
 * owner, group and modes; for tempfail, close a maildrop that exists
 * (mode 0700; what is in it still goes out).  Run as root before the
 * privilege drop (then for cfg->user), and again on reload.  -1 with a
 * one-line reason in err on failure.
 */
int maildrop_prepare(const struct config *cfg, char *err, size_t errlen);

/* Watch spool_dir/maildrop; the first look is right away. */
struct maildrop *maildrop_new(struct event_base *base,
    const struct config *cfg);
/* A reloaded configuration (its path and spool_dir are copied). */
void maildrop_set_config(struct maildrop *m, const struct config *cfg);
/* Stop watching; a pickup still running is sent SIGTERM. */
void maildrop_free(struct maildrop *m);

#endif
