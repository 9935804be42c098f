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

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Append s to out as the body of a JSON string: quotes, backslashes and
 * control characters escaped, and any byte that is not part of valid
 * UTF-8 (peer data can hold anything) replaced by U+FFFD, so that every
 * line is valid JSON.  Truncates rather than overflow.
 */
static size_t
json_escape(char *out, size_t outlen, const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, n;

	while (*s != '\0' && o + 7 < outlen) {
		unsigned char c = *s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
			s++;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
			s++;
		} else if (c < 0x80) {
			out[o++] = (char)c;
			s++;
		} else if ((n = utf8_len(s)) > 0) {
			memcpy(out + o, s, n);
			o += n;
			s += n;
		} else {
			o += (size_t)snprintf(out + o, outlen - o, "\\ufffd");
			s++;
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
