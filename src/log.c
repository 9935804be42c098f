/* log.c — see log.h. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *log_ident = "sesrelay";
static int log_to_stderr = 1;
static int log_debug_on;
static enum log_format log_fmt = LOG_FORMAT_TEXT;

void
log_init(const char *ident, int to_stderr, int debug)
{
	log_ident = ident;
	log_to_stderr = to_stderr;
	log_debug_on = debug;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_format(enum log_format format)
{
	log_fmt = format;
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

static const char *
level_name(int pri)
{
	switch (pri) {
	case LOG_DEBUG: return "debug";
	case LOG_INFO: return "info";
	case LOG_WARNING: return "warning";
	default: return "error";
	}
}

/* Append s to out as the body of a JSON string. */
static size_t
json_escape(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	for (; *s != '\0' && o + 7 < outlen; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}

static void
log_emit(int pri, const char *msg)
{
	if (log_fmt == LOG_FORMAT_JSON) {
		char esc[8192 * 2];
		char ts[40];
		struct timespec now;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
		json_escape(esc, sizeof(esc), msg);
		if (log_to_stderr)
			fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
			    ts, level_name(pri), esc);
		else
			syslog(pri, "{\"level\":\"%s\",\"msg\":\"%s\"}",
			    level_name(pri), esc);
		return;
	}
	if (log_to_stderr)
		fprintf(stderr, "%s: %s\n", log_ident, msg);
	else
		syslog(pri, "%s", msg);
}

static void
log_vlog(int pri, const char *fmt, va_list ap, int with_errno)
{
	char msg[8192];
	int saved = errno;
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(saved));
	/* One event, one line: a stray newline from peer data must not
	 * forge a second log entry. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	log_emit(pri, msg);
	errno = saved;
}

#define LOG_BODY(pri, with_errno) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vlog(pri, fmt, ap, with_errno);	\
	va_end(ap);				\
} while (0)

void
log_debug(const char *fmt, ...)
{
	if (log_debug_on)
		LOG_BODY(LOG_DEBUG, 0);
}

void log_info(const char *fmt, ...) { LOG_BODY(LOG_INFO, 0); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_WARNING, 0); }
void log_warn(const char *fmt, ...) { LOG_BODY(LOG_WARNING, 1); }

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	exit(1);
}
