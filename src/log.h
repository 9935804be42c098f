/*
 * log.h — one line per event, to syslog or stderr, as text or JSON.
 *
 * Callers write "key=value" fields after a short event word, e.g.
 *   log_info("delivery id=%s from=<%s> rcpts=%zu status=sent", ...);
 * With log_format = json the same line is emitted as
 *   {"ts":"...","level":"info","msg":"delivery id=... "}
 * Secrets and AUTH data must never be passed to these functions.
 */
#ifndef SESRELAY_LOG_H
#define SESRELAY_LOG_H

#include <stdarg.h>

enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* ident: syslog ident / stderr prefix.  to_stderr: 1 = stderr, 0 = syslog.
 * Until log_init() is called, messages go to stderr. */
void log_init(const char *ident, int to_stderr, int debug);
void log_set_format(enum log_format format);
void log_set_debug(int debug);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As log_warnx, with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1): for broken invariants and fatal start-up failures. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
