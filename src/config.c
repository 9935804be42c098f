/*
 * config.c — see config.h.
 *
 * Loading goes in four steps, each of which may fail with one line in err:
 *
 *  1. The file is read with inih.  Our own line reader (line_reader) sits
 *     between the file and inih: it enforces the limits inih lacks (NUL
 *     and control bytes, invalid UTF-8, line length), removes comments and
 *     indentation (so there are no continuation lines), and handles section
 *     headers itself, since inih neither reports them to the handler nor
 *     keeps long ones intact.  inih splits "key = value"; conf_handler()
 *     looks the key up in the one key table, keys[], and parses the value
 *     at once, so errors come in file order with their line number.
 *  2. SESRELAY_<SECTION>_<KEY> variables override the three fixed sections.
 *  3. Defaults from keys[] fill what neither set; derived defaults
 *     (region, endpoint, tls_verify_name, hostname) and the checks that
 *     involve several keys or the file system follow (resolve()).
 *  4. The credential settings are handed to the snapshot as they are:
 *     the chain that reads them is aws_creds.c's.
 *
 * Explicit configuration, in the file or in SESRELAY_* variables, always
 * wins over the AWS_* variables: those are only looked at for what the
 * configuration leaves unset (region) or as a later link of the chain.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "ses_auth.h"
#include "ses_headers.h"
#include "xmalloc.h"

extern char **environ;

#define LINE_RAW_MAX	65536	/* bytes in one line, comments included */
#define CONTENT_MAX	4096	/* characters of "key = value" in a line */
#define VALUE_MAX	4096	/* characters of a value (environment too) */
#define SECRET_MAX	4096	/* bytes of a secret file */
#define LISTEN_MAX	64
#define ALLOW_MAX	1024
#define SENDERS_MAX	10000
#define ENVNAME_MAX	64
#define SHOW_MAX	60
#define SES_SIZE_LIMIT	(40ULL * 1024 * 1024)
#define SES_SESSION_MESSAGES 350
#define DAY		86400ULL

/* Markers our reader gives inih instead of a value it cannot hold. */
#define MARK_LONG	"\x01"	/* the value is in ctx->longval */

enum sect { S_NONE = -1, S_RELAY, S_SES, S_QUEUE, S_SENDER };
static const char *const sect_names[] = { "relay", "ses", "queue", "sender" };
#define NFIXED	3		/* relay, ses, queue */

/* The [sender P] values a key sets (struct key .slots). */
enum { SLOT_SOURCE, SLOT_FROM, SLOT_RETURN_PATH, SLOT_CSET, SLOT_USERS,
    SLOT_NETWORKS, NSLOTS };

/* Where a value came from. */
struct origin {
	int	line;			/* > 0: this line of the file */
	char	env[ENVNAME_MAX];	/* else if set: this variable */
};

/* Credential settings, while loading; handed to the snapshot as they are
 * (aws_creds.c resolves them). */
struct pending {
	char	*access_key_id;
	char	*secret_access_key;	/* secret */
	char	*secret_access_key_file;
	char	*smtp_password_file;
};

struct sender_aux {
	int		 line;		/* of the [sender P] header */
	int		 slot_line[NSLOTS];
	const char	*slot_key[NSLOTS];
};

struct loadctx;
struct key;

/*
 * Parse v into the field of base that k names.  v is NULL only for keys
 * with K_OPT, meaning "unset".  On a bad value, write why (without the
 * file, section or key: the caller adds them) and return -1.
 */
typedef int parse_fn(struct loadctx *, const struct key *, void *base,
    const char *v, char *why, size_t whylen);

struct key {
	enum sect		 sect;
	const char		*name;
	parse_fn		*parse;
	size_t			 off;	/* in config, pending or sender_rule */
	const char		*def;	/* parsed as a value; or NULL */
	unsigned		 flags;
	unsigned long long	 min, max;	/* numbers, sizes, durations */
	const char *const	*names;		/* enumerations, in order */
	unsigned		 slots;		/* [sender]: 1 << SLOT_* */
};
#define K_OPT		0x01	/* an empty value means unset */
#define K_PEND		0x02	/* the field is in struct pending */
#define K_SECRET	0x04	/* never show or keep the value unwiped */

struct loadctx {
	struct config		*cfg;
	char			*err;
	int			 failed;

	/* the line reader */
	FILE			*fp;
	const char		*path;
	int			 lineno;
	char			 line[CONTENT_MAX + 1];
	int			 toolong;
	const char		*longval;

	/* sesrelay.conf */
	enum sect		 cur;
	size_t			 cur_sender;
	int			 sect_line[NFIXED];
	struct origin		*orig;		/* per keys[] entry */
	const struct origin	*cur_origin;	/* of the value being parsed */
	struct sender_aux	*saux;
	struct pending		 pend;
	int			 secret_line;	/* of secret_access_key */
	mode_t			 file_mode;
	struct origin		 region_origin;
};

_Static_assert(sizeof(enum relay_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sendmail_fallback) == sizeof(int), "enum size");

/* --- small helpers --------------------------------------------------- */

struct shown {
	char s[SHOW_MAX + 4];
};

/* v as it may appear in a message: printable ASCII, at most SHOW_MAX. */
static struct shown
show(const char *v)
{
	struct shown r;
	size_t o = 0;

	for (; *v != '\0' && o < SHOW_MAX; v++)
		r.s[o++] = (*v >= 0x20 && *v < 0x7f) ? *v : '?';
	if (*v != '\0') {
		memcpy(r.s + o, "...", 3);
		o += 3;
	}
	r.s[o] = '\0';
	return r;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_space(int c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int
nonempty(const char *s)
{
	return s != NULL && *s != '\0';
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void
set_str(char **f, const char *v, int secret)
{
	if (secret)
		wipe_free(*f);
	else
		free(*f);
	*f = v != NULL ? xstrdup(v) : NULL;
}

#define FIELD(base, k, type) ((type *)(void *)((char *)(base) + (k)->off))

/* Append to a message being built in buf. */
static void
cat(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t o = strnlen(buf, len);
	va_list ap;

	if (o + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, len - o, fmt, ap);
	va_end(ap);
}

/* --- errors ------------------------------------------------------------ */

/* Keep the first error only, as one line. */
static void
fail(struct loadctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
fail(struct loadctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (ctx->failed)
		return;
	ctx->failed = 1;
	va_start(ap, fmt);
	vsnprintf(ctx->err, CONFIG_ERR_MAX, fmt, ap);
	va_end(ap);
	for (p = ctx->err; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* "FILE:LINE: msg" for the line being read. */
static int
lerr(struct loadctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int
lerr(struct loadctx *ctx, const char *fmt, ...)
{
	char msg[CONFIG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail(ctx, "%s:%d: %s", ctx->path, ctx->lineno, msg);
	return -1;
}

static const char *
where(const struct loadctx *ctx, const struct origin *o, char *buf,
    size_t len)
{
	if (o != NULL && o->line > 0)
		snprintf(buf, len, "%s:%d", ctx->cfg->path, o->line);
	else if (o != NULL && o->env[0] != '\0')
		snprintf(buf, len, "%s", o->env);
	else
		snprintf(buf, len, "%s", ctx->cfg->path);
	return buf;
}

static const char *
sect_label(const struct loadctx *ctx, enum sect s, size_t si, char *buf,
    size_t len)
{
	if (s == S_SENDER && si < ctx->cfg->nsenders)
		snprintf(buf, len, "sender %s", ctx->cfg->senders[si].pattern);
	else if (s >= 0 && s <= S_SENDER)
		snprintf(buf, len, "%s", sect_names[s]);
	else
		snprintf(buf, len, "?");
	return buf;
}

/* "WHERE: [section] key: msg" */
static int
keyerr(struct loadctx *ctx, const struct origin *o, enum sect s, size_t si,
    const char *key, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int
keyerr(struct loadctx *ctx, const struct origin *o, enum sect s, size_t si,
    const char *key, const char *fmt, ...)
{
	char msg[CONFIG_ERR_MAX], wh[CONFIG_ERR_MAX], sl[SES_ADDRESS_MAX + 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail(ctx, "%s: [%s] %s: %s", where(ctx, o, wh, sizeof(wh)),
	    sect_label(ctx, s, si, sl, sizeof(sl)), key, msg);
	return -1;
}

static void
keywarn(struct loadctx *ctx, const struct origin *o, enum sect s,
    const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void
keywarn(struct loadctx *ctx, const struct origin *o, enum sect s,
    const char *key, const char *fmt, ...)
{
	char msg[CONFIG_ERR_MAX], wh[CONFIG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s: [%s] %s: %s", where(ctx, o, wh, sizeof(wh)),
	    sect_names[s], key, msg);
}

/* --- value syntaxes ---------------------------------------------------- */

/* Digits only, no sign, no overflow. */
static int
parse_ull(const char *s, const char **end, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!is_digit((unsigned char)*s))
		return -1;
	for (; is_digit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end = s;
	*out = v;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v, mult = 1;
	const char *p;

	if (s == NULL || parse_ull(s, &p, &v) == -1)
		return -1;
	if (*p == 'k' || *p == 'K') {
		mult = 1024;
		p++;
	} else if (*p == 'm' || *p == 'M') {
		mult = 1024 * 1024;
		p++;
	}
	if (*p != '\0' || v > UINT64_MAX / mult)
		return -1;
	*out = (uint64_t)(v * mult);
	return 0;
}

int
config_parse_duration(const char *s, unsigned *out)
{
	unsigned long long v, mult = 1;
	const char *p;

	if (s == NULL || parse_ull(s, &p, &v) == -1)
		return -1;
	switch (*p) {
	case '\0':
		break;
	case 's':
		p++;
		break;
	case 'm':
		mult = 60;
		p++;
		break;
	case 'h':
		mult = 3600;
		p++;
		break;
	case 'd':
		mult = DAY;
		p++;
		break;
	default:
		return -1;
	}
	if (*p != '\0' || v > UINT_MAX / mult)
		return -1;
	*out = (unsigned)(v * mult);
	return 0;
}

/* Host names: letters, digits, '-' and '_' in dot-separated labels. */
static int
dns_name_valid(const char *s)
{
	size_t len = strlen(s), lab = 0, i;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-' && c != '_')
			return 0;
		if (c == '-' && lab == 0)
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && s[len - 1] != '-';
}

/* "local@domain", as SES takes it (no quoting, no brackets). */
static int
address_valid(const char *s)
{
	const char *at = strrchr(s, '@'), *p;

	if (at == NULL || at == s || at - s > 64 || strlen(s) > 254)
		return 0;
	for (p = s; p < at; p++) {
		int c = (unsigned char)*p;

		if (c <= ' ' || c >= 0x7f || strchr("<>()[]\\,;:@\"", c))
			return 0;
	}
	return dns_name_valid(at + 1);
}

static int
parse_port(const char *s, unsigned *port)
{
	unsigned long long v;
	const char *end;

	if (parse_ull(s, &end, &v) == -1 || *end != '\0' || v < 1 ||
	    v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* "a.b.c.d:port" or "[v6]:port", numeric only. */
static int
parse_inet(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h, *colon, *port;
	size_t hlen;
	unsigned p;

	if (s[0] == '[') {
		if ((colon = strchr(s, ']')) == NULL || colon[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(colon - h);
		port = colon + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		h = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host) || parse_port(port, &p) == -1)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*len = sizeof(*sin);
	}
	return 0;
}

static int
parse_cidr(const char *s, struct cidr *c, int *hostbits)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/'), *end;
	unsigned long long prefix;
	size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned i, max, nbytes;

	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(c, 0, sizeof(*c));
	if (strchr(host, ':') != NULL) {
		c->family = AF_INET6;
		max = 128;
	} else {
		c->family = AF_INET;
		max = 32;
	}
	if (inet_pton(c->family, host, c->addr) != 1)
		return -1;
	prefix = max;
	if (slash != NULL && (parse_ull(slash + 1, &end, &prefix) == -1 ||
	    *end != '\0' || prefix > max))
		return -1;
	c->prefix = (unsigned)prefix;
	*hostbits = 0;
	nbytes = max / 8;
	for (i = 0; i < nbytes; i++) {
		unsigned keep = c->prefix >= (i + 1) * 8 ? 8 :
		    c->prefix > i * 8 ? c->prefix - i * 8 : 0;
		uint8_t mask = (uint8_t)(0xff00u >> keep);

		if ((c->addr[i] & ~mask) != 0)
			*hostbits = 1;
		c->addr[i] &= mask;
	}
	return 0;
}

/* --- value parsers (keys[]) -------------------------------------------- */

static int
p_enum(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	int i, n;

	for (n = 0; k->names[n] != NULL; n++)
		if (strcmp(v, k->names[n]) == 0) {
			*FIELD(base, k, int) = n;
			return 0;
		}
	snprintf(why, wl, "must be ");
	for (i = 0; i < n; i++)
		cat(why, wl, "%s%s", k->names[i],
		    i + 2 < n ? ", " : i + 2 == n ? " or " : "");
	cat(why, wl, ", not '%s'", show(v).s);
	return -1;
}

static int
p_uint(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	unsigned long long n;
	const char *end;

	if (parse_ull(v, &end, &n) == -1 || *end != '\0') {
		snprintf(why, wl, "not a number: '%s'", show(v).s);
		return -1;
	}
	if (n < k->min || n > k->max) {
		snprintf(why, wl, "must be from %llu to %llu, not %s", k->min,
		    k->max, show(v).s);
		return -1;
	}
	*FIELD(base, k, unsigned) = (unsigned)n;
	return 0;
}

static int
p_size(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	uint64_t n;

	if (config_parse_size(v, &n) == -1) {
		snprintf(why, wl, "not a size: '%s' (bytes, or a number with "
		    "K or M)", show(v).s);
		return -1;
	}
	if (n < k->min || n > k->max) {
		snprintf(why, wl, "must be from %llu to %llu bytes, not %s",
		    k->min, k->max, show(v).s);
		return -1;
	}
	*FIELD(base, k, uint64_t) = n;
	return 0;
}

static int
p_duration(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	unsigned n;

	if (config_parse_duration(v, &n) == -1) {
		snprintf(why, wl, "not a duration: '%s' (seconds, or a number "
		    "with s, m, h or d)", show(v).s);
		return -1;
	}
	if (n < k->min || n > k->max) {
		snprintf(why, wl, "must be from %llus to %llus, not %s",
		    k->min, k->max, show(v).s);
		return -1;
	}
	*FIELD(base, k, unsigned) = n;
	return 0;
}

/*
 * A decimal number: digits with an optional fraction, no sign or exponent.
 * Not strtod(): it would follow the locale's decimal point.
 */
static int
p_rate(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	const char *p = v;
	double d = 0, scale = 1;

	if (k->off == offsetof(struct config, max_send_rate)) {
		struct config *cfg = base;

		cfg->max_send_rate_auto = strcmp(v, "auto") == 0;
		if (cfg->max_send_rate_auto) {
			cfg->max_send_rate = 0;
			return 0;
		}
	}
	for (; is_digit((unsigned char)*p); p++)
		d = d * 10 + (*p - '0');
	if (p > v && *p == '.' && is_digit((unsigned char)p[1]))
		for (p++; is_digit((unsigned char)*p); p++) {
			scale /= 10;
			d += (*p - '0') * scale;
		}
	if (p == v || *p != '\0' || p - v > 20) {
		snprintf(why, wl, "not a number: '%s'", show(v).s);
		return -1;
	}
	if (d < (double)k->min || d > (double)k->max) {
		snprintf(why, wl, "must be from %llu to %llu, not %s", k->min,
		    k->max, show(v).s);
		return -1;
	}
	*FIELD(base, k, double) = d;
	return 0;
}

/* account_poll: a duration, or off (0: the account is not watched). */
static int
p_poll(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	if (strcmp(v, "off") == 0) {
		*FIELD(base, k, unsigned) = 0;
		return 0;
	}
	return p_duration(ctx, k, base, v, why, wl);
}

/* api_endpoint: https://host[:port][/], or http:// to a loopback address
 * (tests); no user, path, query or fragment. */
static int
p_api_url(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	const char *h;
	size_t n;
	int https = strncmp(v, "https://", 8) == 0;

	if (!https && strncmp(v, "http://", 7) != 0) {
		snprintf(why, wl, "must be an https:// URL, not '%s'",
		    show(v).s);
		return -1;
	}
	h = v + (https ? 8 : 7);
	n = strcspn(h, "/");
	if (n == 0 || n > 255 || strpbrk(v, "@?# \t") != NULL ||
	    (h[n] != '\0' && strcmp(h + n, "/") != 0)) {
		snprintf(why, wl, "must be https://host[:port] without a "
		    "path, not '%s'", show(v).s);
		return -1;
	}
	if (!https && strncmp(h, "127.", 4) != 0 &&
	    strncmp(h, "[::1]", 5) != 0 && strncmp(h, "localhost", 9) != 0) {
		snprintf(why, wl, "plain http is only for a loopback "
		    "address (tests), not '%s'", show(v).s);
		return -1;
	}
	*FIELD(base, k, char *) = xstrdup(v);
	return 0;
}

static int
p_path(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	const char *p;

	if (v != NULL) {
		if (v[0] != '/') {
			snprintf(why, wl, "must be an absolute path, not '%s'",
			    show(v).s);
			return -1;
		}
		if (strlen(v) >= PATH_MAX) {
			snprintf(why, wl, "path too long");
			return -1;
		}
		for (p = v; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				snprintf(why, wl, "control character in path "
				    "'%s'", show(v).s);
				return -1;
			}
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static int
p_dnsname(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	if (v != NULL && !dns_name_valid(v)) {
		snprintf(why, wl, "not a host name: '%s'", show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

/* An identifier: sasl_service, user. */
static int
p_token(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	const char *p;

	if (v != NULL) {
		for (p = v; *p != '\0'; p++)
			if (!is_alnum((unsigned char)*p) && *p != '.' &&
			    *p != '_' && *p != '-')
				break;
		if (*p != '\0' || p - v > 64 || v[0] == '-') {
			snprintf(why, wl, "not a valid name: '%s' (letters, "
			    "digits, '.', '_' and '-')", show(v).s);
			return -1;
		}
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static void
free_listen(struct listen_spec *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(l[i].text);
		free(l[i].unix_path);
	}
	free(l);
}

/* The next blank-separated word of *p (at most VALUE_MAX long) into tok;
 * returns its length, 0 at the end. */
static size_t
next_word(const char **p, char tok[VALUE_MAX + 1])
{
	const char *s = *p;
	size_t len;

	while (is_blank((unsigned char)*s))
		s++;
	for (len = 0; s[len] != '\0' && !is_blank((unsigned char)s[len]) &&
	    len < VALUE_MAX; len++)
		;
	memcpy(tok, s, len);
	tok[len] = '\0';
	*p = s + len;
	return len;
}

static const char listen_syntax[] = "host:port with a numeric IPv4 "
    "address, [IPv6]:port or unix:/path (host names are not resolved)";

static int
p_listen(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	struct config *cfg = base;
	struct listen_spec *l = NULL, *e;
	struct sockaddr_un sun;
	size_t n = 0, alloc = 0, i, len;
	const char *p = v;
	char tok[VALUE_MAX + 1];

	for (;;) {
		if ((len = next_word(&p, tok)) == 0)
			break;
		if (n == LISTEN_MAX) {
			snprintf(why, wl, "more than %d addresses", LISTEN_MAX);
			goto bad;
		}
		l = xreallocarray(l, n + 1, sizeof(*l));
		e = &l[n];
		memset(e, 0, sizeof(*e));
		alloc = n + 1;
		if (strncmp(tok, "unix:", 5) == 0) {
			if (tok[5] != '/' || len - 5 >= sizeof(sun.sun_path)) {
				snprintf(why, wl, "'%s': unix:/path needs an "
				    "absolute path shorter than %zu bytes",
				    show(tok).s, sizeof(sun.sun_path));
				goto bad;
			}
			e->is_unix = 1;
			e->unix_path = xstrdup(tok + 5);
		} else if (parse_inet(tok, &e->addr, &e->addrlen) == -1) {
			snprintf(why, wl, "'%s' is not %s", show(tok).s,
			    listen_syntax);
			goto bad;
		}
		e->text = xstrdup(tok);
		n++;
		for (i = 0; i + 1 < n; i++)
			if (l[i].is_unix == e->is_unix &&
			    (e->is_unix ? strcmp(l[i].unix_path,
			    e->unix_path) == 0 : (l[i].addrlen == e->addrlen &&
			    memcmp(&l[i].addr, &e->addr, e->addrlen) == 0))) {
				snprintf(why, wl, "'%s' is listed twice",
				    show(tok).s);
				goto bad;
			}
	}
	if (n == 0) {
		snprintf(why, wl, "needs a value");
		goto bad;
	}
	free_listen(cfg->listen, cfg->nlisten);
	cfg->listen = l;
	cfg->nlisten = n;
	return 0;
bad:
	free_listen(l, alloc);
	return -1;
}

/* A list of networks (allow, [sender] networks) into *out / *nout. */
static int
parse_networks(struct loadctx *ctx, const struct key *k, const char *v,
    struct cidr **out, size_t *nout, char *why, size_t wl)
{
	struct cidr *a = NULL;
	size_t n = 0, len;
	const char *p = v;
	char tok[VALUE_MAX + 1];
	int hostbits;

	for (;;) {
		if ((len = next_word(&p, tok)) == 0)
			break;
		if (n == ALLOW_MAX) {
			snprintf(why, wl, "more than %d networks", ALLOW_MAX);
			free(a);
			return -1;
		}
		a = xreallocarray(a, n + 1, sizeof(*a));
		if (parse_cidr(tok, &a[n], &hostbits) == -1) {
			snprintf(why, wl, "'%s' is not a network: use "
			    "ADDRESS/PREFIX (192.0.2.0/24, 2001:db8::/32) or "
			    "an address", show(tok).s);
			free(a);
			return -1;
		}
		if (hostbits)
			keywarn(ctx, ctx->cur_origin, k->sect, k->name,
			    "'%s' has host bits set; it means the whole "
			    "network /%u", show(tok).s, a[n].prefix);
		n++;
	}
	if (n == 0) {
		snprintf(why, wl, "needs a value");
		return -1;
	}
	free(*out);
	*out = a;
	*nout = n;
	return 0;
}

static int
p_allow(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	struct config *cfg = base;
	return parse_networks(ctx, k, v, &cfg->allow, &cfg->nallow, why, wl);
}

/* [sender] networks */
static int
p_networks(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	struct sender_rule *r = base;
	if (v == NULL) {
		free(r->networks);
		r->networks = NULL;
		r->nnetworks = 0;
		return 0;
	}
	return parse_networks(ctx, k, v, &r->networks, &r->nnetworks, why, wl);
}

static void
free_users(struct sender_rule *r)
{
	for (size_t i = 0; i < r->nusers; i++)
		free(r->users[i]);
	free(r->users);
	r->users = NULL;
	r->nusers = 0;
}

/* [sender] users: SASL user names, separated by blanks. */
static int
p_users(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	struct sender_rule *r = base;
	const char *p = v;
	char tok[VALUE_MAX + 1];
	char **u = NULL;
	size_t n = 0;

	if (v == NULL) {
		free_users(r);
		return 0;
	}
	while (next_word(&p, tok) > 0) {
		for (const char *c = tok; *c != '\0'; c++) {
			if ((unsigned char)*c < 0x21 || *c == 0x7f ||
			    *c == ',') {
				snprintf(why, wl, "'%s' is not a user name "
				    "(separate names with blanks)",
				    show(tok).s);
				for (size_t i = 0; i < n; i++)
					free(u[i]);
				free(u);
				return -1;
			}
		}
		u = xreallocarray(u, n + 1, sizeof(*u));
		u[n++] = xstrdup(tok);
	}
	if (n == 0) {
		snprintf(why, wl, "needs a value");
		return -1;
	}
	free_users(r);
	r->users = u;
	r->nusers = n;
	return 0;
}

static int
p_hostport(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (v != NULL && parse_inet(v, &ss, &len) == -1) {
		snprintf(why, wl, "'%s' is not host:port with a numeric IPv4 "
		    "address or [IPv6]:port", show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static int
p_region(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	if (v != NULL && !ses_auth_region_valid(v)) {
		snprintf(why, wl, "not a region name: '%s' (like us-east-1)",
		    show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

/* host[:port], host a name, an IPv4 address or [IPv6]. */
static int
p_endpoint(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	struct config *cfg = base;
	char host[SES_HOST_MAX];
	struct in6_addr in6;
	const char *h, *rest;
	size_t hlen;
	unsigned port = 0;

	if (v == NULL) {
		set_str(&cfg->endpoint_host, NULL, 0);
		cfg->endpoint_port = 0;
		return 0;
	}
	if (v[0] == '[') {
		h = v + 1;
		if ((rest = strchr(h, ']')) == NULL)
			goto bad;
		hlen = (size_t)(rest - h);
		rest++;
	} else {
		h = v;
		hlen = strcspn(v, ":");
		rest = v + hlen;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (v[0] == '[' ? inet_pton(AF_INET6, host, &in6) != 1 :
	    !dns_name_valid(host))
		goto bad;
	if (*rest != '\0' && (*rest != ':' ||
	    parse_port(rest + 1, &port) == -1))
		goto bad;
	set_str(&cfg->endpoint_host, host, 0);
	cfg->endpoint_port = port;
	return 0;
bad:
	snprintf(why, wl, "'%s' is not host[:port] (a name, an IPv4 address "
	    "or [IPv6], and a port from 1 to 65535)", show(v).s);
	return -1;
}

static const char temporary_key[] = "is a temporary (STS) access key id; "
    "SES SMTP needs the long-term access key of an IAM user (AKIA...): "
    "temporary credentials cannot be turned into an SMTP password";

static int
p_keyid(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	if (v != NULL && ses_auth_key_id_is_temporary(v)) {
		snprintf(why, wl, "'%s' %s", show(v).s, temporary_key);
		return -1;
	}
	if (v != NULL && !ses_auth_key_id_valid(v)) {
		snprintf(why, wl, "not an access key id: '%s' (16 to 128 "
		    "upper-case letters and digits, like AKIAIOSFODNN7EXAMPLE)",
		    show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

/* Never shows the value. */
static int
p_secret(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	if (v != NULL && !ses_auth_secret_valid(v)) {
		snprintf(why, wl, "must be the secret access key alone "
		    "(printable characters without spaces)");
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 1);
	return 0;
}

static int
p_profile(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	const char *p;

	if (v != NULL) {
		for (p = v; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >=
			    0x7f || *p == '[' || *p == ']')
				break;
		if (*p != '\0' || p - v > 128) {
			snprintf(why, wl, "not a profile name: '%s'",
			    show(v).s);
			return -1;
		}
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static int
p_cset(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	if (v != NULL && !ses_headers_config_set_valid(v)) {
		snprintf(why, wl, "not a configuration set name: '%s' (1 to 64 "
		    "of A-Z a-z 0-9 _ -)", show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static int
p_tags(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	if (v != NULL && !ses_headers_tags_valid(v)) {
		snprintf(why, wl, "not a tag list: '%s' (name=value pairs "
		    "separated by commas; names and values of A-Z a-z 0-9 _ -, "
		    "or SES drops the events)", show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static int
p_address(struct loadctx *ctx, const struct key *k, void *base,
    const char *v, char *why, size_t wl)
{
	if (v != NULL && !address_valid(v)) {
		snprintf(why, wl, "must be an address like bounces@example.com "
		    "(no <>), not '%s'", show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

static const char arn_syntax[] = "arn:aws:ses:REGION:ACCOUNT:identity/NAME";

static int
p_arn(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	if (v != NULL && !ses_headers_arn_valid(v, NULL, 0)) {
		snprintf(why, wl, "not an SES identity ARN (%s): '%s'",
		    arn_syntax, show(v).s);
		return -1;
	}
	set_str(FIELD(base, k, char *), v, 0);
	return 0;
}

/* [sender] arn: all three ARNs at once. */
static int
p_arn3(struct loadctx *ctx, const struct key *k, void *base, const char *v,
    char *why, size_t wl)
{
	struct sender_rule *r = base;

	if (v != NULL && !ses_headers_arn_valid(v, NULL, 0)) {
		snprintf(why, wl, "not an SES identity ARN (%s): '%s'",
		    arn_syntax, show(v).s);
		return -1;
	}
	set_str(&r->source_arn, v, 0);
	set_str(&r->from_arn, v, 0);
	set_str(&r->return_path_arn, v, 0);
	return 0;
}

/* --- the key table ----------------------------------------------------- */

static const char *const mode_names[] = { "spool", "passthrough", NULL };
static const char *const tls_names[] = { "starttls", "implicit", NULL };
static const char *const auth_names[] = {
	"off", "optional", "required", NULL
};
static const char *const logfmt_names[] = { "text", "json", NULL };
static const char *const bounce_names[] = { "dsn", "none", NULL };
static const char *const transport_names[] = { "smtp", "api", NULL };
static const char *const sandbox_names[] = { "allow", "refuse", NULL };
static const char *const fallback_names[] = { "tempfail", "spool", NULL };

#define CF(f)	offsetof(struct config, f)
#define PF(f)	offsetof(struct pending, f)
#define SF(f)	offsetof(struct sender_rule, f)

/*
 * Every key of sesrelay.conf, in the order of the sample file.  A key
 * without K_OPT needs a value and has a default (def), parsed like a value
 * from the file; a K_OPT key is NULL unless set, and its derived default,
 * if any, comes from resolve().
 */
static const struct key keys[] = {
	{ .sect = S_RELAY, .name = "listen", .parse = p_listen,
	  .def = "127.0.0.1:25 [::1]:25" },
	{ .sect = S_RELAY, .name = "mode", .parse = p_enum, .off = CF(mode),
	  .def = "spool", .names = mode_names },
	{ .sect = S_RELAY, .name = "spool_dir", .parse = p_path,
	  .off = CF(spool_dir), .def = CONFIG_DEFAULT_SPOOL_DIR },
	{ .sect = S_RELAY, .name = "hostname", .parse = p_dnsname,
	  .off = CF(hostname), .flags = K_OPT },
	{ .sect = S_RELAY, .name = "allow", .parse = p_allow,
	  .def = "127.0.0.0/8 ::1/128" },
	{ .sect = S_RELAY, .name = "max_clients", .parse = p_uint,
	  .off = CF(max_clients), .def = "500", .min = 1, .max = 100000 },
	{ .sect = S_RELAY, .name = "max_message_size", .parse = p_size,
	  .off = CF(max_message_size), .def = "40M", .min = 1,
	  .max = 1024ULL * 1024 * 1024 },
	{ .sect = S_RELAY, .name = "max_recipients", .parse = p_uint,
	  .off = CF(max_recipients), .def = "1000", .min = 1, .max = 100000 },
	{ .sect = S_RELAY, .name = "timeout", .parse = p_duration,
	  .off = CF(timeout), .def = "5m", .min = 1, .max = DAY },
	{ .sect = S_RELAY, .name = "tls_cert", .parse = p_path,
	  .off = CF(tls_cert), .flags = K_OPT },
	{ .sect = S_RELAY, .name = "tls_key", .parse = p_path,
	  .off = CF(tls_key), .flags = K_OPT },
	{ .sect = S_RELAY, .name = "auth", .parse = p_enum, .off = CF(auth),
	  .def = "off", .names = auth_names },
	{ .sect = S_RELAY, .name = "sasl_service", .parse = p_token,
	  .off = CF(sasl_service), .def = "sesrelay" },
	{ .sect = S_RELAY, .name = "user", .parse = p_token,
	  .off = CF(user), .flags = K_OPT },
	{ .sect = S_RELAY, .name = "log_format", .parse = p_enum,
	  .off = CF(log_format), .def = "text", .names = logfmt_names },
	{ .sect = S_RELAY, .name = "metrics_listen", .parse = p_hostport,
	  .off = CF(metrics_listen), .flags = K_OPT },
	{ .sect = S_RELAY, .name = "sendmail_fallback", .parse = p_enum,
	  .off = CF(sendmail_fallback), .def = "tempfail",
	  .names = fallback_names },

	{ .sect = S_SES, .name = "transport", .parse = p_enum,
	  .off = CF(transport), .def = "smtp", .names = transport_names },
	{ .sect = S_SES, .name = "region", .parse = p_region,
	  .off = CF(region), .flags = K_OPT },
	{ .sect = S_SES, .name = "endpoint", .parse = p_endpoint,
	  .flags = K_OPT },
	{ .sect = S_SES, .name = "tls", .parse = p_enum, .off = CF(tls),
	  .def = "starttls", .names = tls_names },
	{ .sect = S_SES, .name = "tls_verify_name", .parse = p_dnsname,
	  .off = CF(tls_verify_name), .flags = K_OPT },
	{ .sect = S_SES, .name = "ca_file", .parse = p_path,
	  .off = CF(ca_file), .flags = K_OPT },
	{ .sect = S_SES, .name = "access_key_id", .parse = p_keyid,
	  .off = PF(access_key_id), .flags = K_OPT | K_PEND },
	{ .sect = S_SES, .name = "secret_access_key_file", .parse = p_path,
	  .off = PF(secret_access_key_file), .flags = K_OPT | K_PEND },
	{ .sect = S_SES, .name = "secret_access_key", .parse = p_secret,
	  .off = PF(secret_access_key), .flags = K_OPT | K_PEND | K_SECRET },
	{ .sect = S_SES, .name = "smtp_password_file", .parse = p_path,
	  .off = PF(smtp_password_file), .flags = K_OPT | K_PEND },
	{ .sect = S_SES, .name = "aws_profile", .parse = p_profile,
	  .off = CF(aws_profile), .flags = K_OPT },
	{ .sect = S_SES, .name = "max_connections", .parse = p_uint,
	  .off = CF(max_connections), .def = "4", .min = 1, .max = 1000 },
	{ .sect = S_SES, .name = "max_send_rate", .parse = p_rate,
	  .off = CF(max_send_rate), .def = "0", .min = 0, .max = 1000000 },
	{ .sect = S_SES, .name = "instances", .parse = p_uint,
	  .off = CF(instances), .def = "1", .min = 1, .max = 1000 },
	{ .sect = S_SES, .name = "api_endpoint", .parse = p_api_url,
	  .off = CF(api_endpoint), .flags = K_OPT },
	{ .sect = S_SES, .name = "account_poll", .parse = p_poll,
	  .off = CF(account_poll), .def = "5m", .min = 1, .max = DAY },
	{ .sect = S_SES, .name = "sandbox_recipients", .parse = p_enum,
	  .off = CF(sandbox_recipients), .def = "allow",
	  .names = sandbox_names },
	{ .sect = S_SES, .name = "configuration_set", .parse = p_cset,
	  .off = CF(configuration_set), .flags = K_OPT },
	{ .sect = S_SES, .name = "message_tags", .parse = p_tags,
	  .off = CF(message_tags), .flags = K_OPT },
	{ .sect = S_SES, .name = "null_sender", .parse = p_address,
	  .off = CF(null_sender), .flags = K_OPT },
	{ .sect = S_SES, .name = "session_messages", .parse = p_uint,
	  .off = CF(session_messages), .def = "300", .min = 1,
	  .max = 1000000 },

	{ .sect = S_QUEUE, .name = "retry_min", .parse = p_duration,
	  .off = CF(retry_min), .def = "5s", .min = 1, .max = 30 * DAY },
	{ .sect = S_QUEUE, .name = "retry_max", .parse = p_duration,
	  .off = CF(retry_max), .def = "20m", .min = 1, .max = 30 * DAY },
	{ .sect = S_QUEUE, .name = "lifetime", .parse = p_duration,
	  .off = CF(lifetime), .def = "5d", .min = 1, .max = 365 * DAY },
	{ .sect = S_QUEUE, .name = "bounce", .parse = p_enum,
	  .off = CF(bounce), .def = "dsn", .names = bounce_names },

	{ .sect = S_SENDER, .name = "source_arn", .parse = p_arn,
	  .off = SF(source_arn), .flags = K_OPT, .slots = 1 << SLOT_SOURCE },
	{ .sect = S_SENDER, .name = "from_arn", .parse = p_arn,
	  .off = SF(from_arn), .flags = K_OPT, .slots = 1 << SLOT_FROM },
	{ .sect = S_SENDER, .name = "return_path_arn", .parse = p_arn,
	  .off = SF(return_path_arn), .flags = K_OPT,
	  .slots = 1 << SLOT_RETURN_PATH },
	{ .sect = S_SENDER, .name = "arn", .parse = p_arn3, .flags = K_OPT,
	  .slots = 1 << SLOT_SOURCE | 1 << SLOT_FROM | 1 << SLOT_RETURN_PATH },
	{ .sect = S_SENDER, .name = "configuration_set", .parse = p_cset,
	  .off = SF(configuration_set), .flags = K_OPT,
	  .slots = 1 << SLOT_CSET },
	{ .sect = S_SENDER, .name = "users", .parse = p_users, .flags = K_OPT,
	  .slots = 1 << SLOT_USERS },
	{ .sect = S_SENDER, .name = "networks", .parse = p_networks,
	  .flags = K_OPT, .slots = 1 << SLOT_NETWORKS },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static const char *const slot_arn_keys[] = {
	"source_arn", "from_arn", "return_path_arn"
};

const char *
config_key_name(size_t i, const char **section)
{
	if (i >= NKEYS)
		return NULL;
	if (section != NULL)
		*section = sect_names[keys[i].sect];
	return keys[i].name;
}

static const struct key *
find_key(enum sect s, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].sect == s && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static struct origin *
orig_of(struct loadctx *ctx, enum sect s, const char *name)
{
	const struct key *k = find_key(s, name);

	if (k == NULL)
		fatalx("config: no key [%s] %s", sect_names[s], name);
	return &ctx->orig[k - keys];
}

static int
is_set(const struct origin *o)
{
	return o->line > 0 || o->env[0] != '\0';
}

/* "SESRELAY_RELAY_MAX_CLIENTS" */
static void
env_name(const struct key *k, char *buf, size_t len)
{
	snprintf(buf, len, "SESRELAY_%s_%s", sect_names[k->sect], k->name);
	for (; *buf != '\0'; buf++)
		if (*buf >= 'a' && *buf <= 'z')
			*buf = (char)(*buf - 'a' + 'A');
}

/* Parse v for k (the value of [sender] rule r when r is not NULL). */
static int
apply(struct loadctx *ctx, const struct key *k, const char *v,
    const struct origin *o, struct sender_rule *r)
{
	char why[CONFIG_ERR_MAX];
	void *base;
	int rc;

	if (r != NULL)
		base = r;
	else if (k->flags & K_PEND)
		base = &ctx->pend;
	else
		base = ctx->cfg;
	if (strlen(v) > VALUE_MAX)
		return keyerr(ctx, o, k->sect, ctx->cur_sender, k->name,
		    "value longer than %d characters", VALUE_MAX);
	ctx->cur_origin = o;
	why[0] = '\0';
	if (*v == '\0') {
		if (!(k->flags & K_OPT))
			return keyerr(ctx, o, k->sect, ctx->cur_sender, k->name,
			    "needs a value");
		rc = k->parse(ctx, k, base, NULL, why, sizeof(why));
	} else
		rc = k->parse(ctx, k, base, v, why, sizeof(why));
	if (rc == -1)
		return keyerr(ctx, o, k->sect, ctx->cur_sender, k->name, "%s",
		    why);
	return 0;
}

/* --- the line reader ----------------------------------------------------- */

/*
 * Read one physical line into ctx->line: without comments, indentation
 * and trailing blanks.  Returns 1, 0 at the end of the file, or -1 after
 * an error.
 */
static int
read_line(struct loadctx *ctx)
{
	static const unsigned char bom[] = { 0xef, 0xbb, 0xbf };
	size_t raw = 0, n = 0;
	int c, leading = 1, comment = 0, was_blank = 0;
	unsigned need = 0;		/* UTF-8 continuation bytes to come */
	unsigned char lo = 0x80, hi = 0xbf;

	ctx->lineno++;
	ctx->toolong = 0;
	for (;;) {
		c = getc(ctx->fp);
		if (c == EOF) {
			if (ferror(ctx->fp))
				return lerr(ctx, "read error: %s",
				    strerror(errno));
			if (raw == 0) {
				ctx->lineno--;
				return 0;
			}
			break;
		}
		if (c == '\n')
			break;
		if (++raw > LINE_RAW_MAX)
			return lerr(ctx, "line longer than %d bytes",
			    LINE_RAW_MAX);
		if (c == '\r') {
			int next = getc(ctx->fp);

			if (next == '\n' || next == EOF)
				break;
			return lerr(ctx, "carriage return inside the line");
		}
		if (c == '\0')
			return lerr(ctx, "NUL byte: not a text file?");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return lerr(ctx, "control character 0x%02x", c);
		if (c >= 0x80) {
			int ok;

			if (need > 0) {
				ok = c >= lo && c <= hi;
				need--;
				lo = 0x80;
				hi = 0xbf;
			} else if (c >= 0xc2 && c <= 0xdf) {
				ok = 1;
				need = 1;
			} else if (c >= 0xe0 && c <= 0xef) {
				ok = 1;
				need = 2;
				if (c == 0xe0)
					lo = 0xa0;
				else if (c == 0xed)
					hi = 0x9f;
			} else if (c >= 0xf0 && c <= 0xf4) {
				ok = 1;
				need = 3;
				if (c == 0xf0)
					lo = 0x90;
				else if (c == 0xf4)
					hi = 0x8f;
			} else
				ok = 0;
			if (!ok)
				return lerr(ctx, "invalid UTF-8 (byte 0x%02x)",
				    c);
		} else if (need > 0)
			return lerr(ctx, "invalid UTF-8 (byte 0x%02x)", c);
		/* a byte order mark at the start of the file */
		if (ctx->lineno == 1 && raw <= 3 && n == 0 && leading &&
		    c == bom[raw - 1])
			continue;
		if (comment)
			continue;
		if (leading && is_blank(c))
			continue;
		if (leading && (c == ';' || c == '#')) {
			comment = 1;
			continue;
		}
		leading = 0;
		/* as inih: ';' after a blank starts a comment */
		if (c == ';' && was_blank) {
			comment = 1;
			continue;
		}
		was_blank = is_blank(c);
		if (n < CONTENT_MAX)
			ctx->line[n++] = (char)c;
		else
			ctx->toolong = 1;
	}
	if (need > 0)
		return lerr(ctx, "invalid UTF-8 (truncated character)");
	while (n > 0 && is_blank((unsigned char)ctx->line[n - 1]))
		n--;
	ctx->line[n] = '\0';
	return 1;
}

static int
conf_section(struct loadctx *ctx, char *inner)
{
	struct config *cfg = ctx->cfg;
	struct sender_rule *r;
	char *pat, *at;
	size_t i;
	int s;

	pat = inner + strcspn(inner, " \t");
	if (*pat != '\0') {
		*pat++ = '\0';
		pat += strspn(pat, " \t");
	}
	for (s = 0; s < NFIXED; s++)
		if (strcmp(inner, sect_names[s]) == 0 && *pat == '\0') {
			if (ctx->sect_line[s] > 0)
				return lerr(ctx, "section [%s] appears twice "
				    "(first at line %d)", sect_names[s],
				    ctx->sect_line[s]);
			ctx->sect_line[s] = ctx->lineno;
			ctx->cur = s;
			return 0;
		}
	if (strcmp(inner, "sender") != 0) {
		/* the name alone, or its first word if [relay x] */
		return lerr(ctx, "unknown section [%s%s%s] (expected [relay], "
		    "[ses], [queue] or [sender PATTERN])", show(inner).s,
		    *pat != '\0' ? " " : "", show(pat).s);
	}
	if (*pat == '\0')
		return lerr(ctx, "[sender] needs a pattern: [sender "
		    "user@domain], [sender domain] or [sender *]");
	if (pat[strcspn(pat, " \t")] != '\0')
		return lerr(ctx, "[sender %s]: one pattern per section",
		    show(pat).s);
	lower(pat);
	at = strchr(pat, '@');
	if (strcmp(pat, "*") != 0 &&
	    !(at != NULL ? address_valid(pat) : dns_name_valid(pat)))
		return lerr(ctx, "[sender %s]: the pattern must be "
		    "user@domain, domain or *", show(pat).s);
	for (i = 0; i < cfg->nsenders; i++)
		if (strcmp(cfg->senders[i].pattern, pat) == 0)
			return lerr(ctx, "section [sender %s] appears twice "
			    "(first at line %d)", show(pat).s,
			    ctx->saux[i].line);
	if (cfg->nsenders == SENDERS_MAX)
		return lerr(ctx, "more than %d [sender] sections", SENDERS_MAX);
	cfg->senders = xreallocarray(cfg->senders, cfg->nsenders + 1,
	    sizeof(*cfg->senders));
	ctx->saux = xreallocarray(ctx->saux, cfg->nsenders + 1,
	    sizeof(*ctx->saux));
	r = &cfg->senders[cfg->nsenders];
	memset(r, 0, sizeof(*r));
	r->pattern = xstrdup(pat);
	memset(&ctx->saux[cfg->nsenders], 0, sizeof(*ctx->saux));
	ctx->saux[cfg->nsenders].line = ctx->lineno;
	ctx->cur_sender = cfg->nsenders++;
	ctx->cur = S_SENDER;
	return 0;
}

/* 1 if s[0..len) names a key whose value is secret. */
static int
secret_key(const char *s, size_t len)
{
	static const char *const secret_keys[] = {
		"secret_access_key", "aws_secret_access_key",
		"aws_session_token"
	};
	size_t i;

	for (i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++)
		if (strlen(secret_keys[i]) == len &&
		    memcmp(s, secret_keys[i], len) == 0)
			return 1;
	return 0;
}

/* 1 if a line that is not "key = value" may still hold a secret, so it
 * must not be shown in an error: it names a secret or a password, or has
 * a run of base64 characters as long as a secret access key (40) or an
 * SMTP password (44) nearly is. */
static int
line_may_hold_secret(const char *s)
{
	size_t run = 0;

	if (strcasestr(s, "secret") != NULL || strcasestr(s, "passw") != NULL ||
	    strcasestr(s, "token") != NULL)
		return 1;
	for (; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || *s == '+' || *s == '/') {
			if (++run >= 30)
				return 1;
		} else {
			run = 0;
		}
	}
	return 0;
}

static void
put(char *buf, int num, const char *s)
{
	snprintf(buf, (size_t)num, "%s", s);
}

/*
 * The inih reader: one physical line per call, so inih's line numbers are
 * ours.  Section headers are checked here and given to inih as "[s]";
 * a line longer than inih's buffer, or with a secret value, is given as
 * "key=MARK_LONG", its value kept in ctx->longval for the handler.
 */
static char *
line_reader(char *buf, int num, void *arg)
{
	struct loadctx *ctx = arg;
	char *s, *eq, *colon, *inner, *end;
	size_t len, klen;

	ctx->longval = NULL;
	if (ctx->failed)
		return NULL;
	if (num < 8) {
		fail(ctx, "%s: inih line buffer too small", ctx->path);
		return NULL;
	}
	if (read_line(ctx) != 1)
		return NULL;
	s = ctx->line;
	len = strlen(s);
	if (len == 0) {
		put(buf, num, "");
		return buf;
	}
	if (s[0] == '[') {
		if (s[len - 1] != ']') {
			if (strchr(s, ']') != NULL)
				lerr(ctx, "text after ']' in a section header");
			else
				lerr(ctx, "missing ']' in a section header");
			return NULL;
		}
		s[len - 1] = '\0';
		inner = s + 1 + strspn(s + 1, " \t");
		for (end = inner + strlen(inner); end > inner &&
		    is_blank((unsigned char)end[-1]); end--)
			;
		*end = '\0';
		if (conf_section(ctx, inner) == -1)
			return NULL;
		put(buf, num, "[s]");
		return buf;
	}
	if (ctx->toolong) {
		lerr(ctx, "line longer than %d characters", CONTENT_MAX);
		return NULL;
	}
	eq = strchr(s, '=');
	colon = strchr(s, ':');
	if (eq == NULL || (colon != NULL && colon < eq)) {
		if (line_may_hold_secret(s))
			lerr(ctx, "expected 'key = value' or a [section] (the "
			    "line is not shown: it may hold a secret)");
		else
			lerr(ctx, "expected 'key = value' or a [section], "
			    "not '%s'", show(s).s);
		return NULL;
	}
	for (klen = (size_t)(eq - s); klen > 0 &&
	    is_blank((unsigned char)s[klen - 1]); klen--)
		;
	if (klen == 0) {
		lerr(ctx, "missing key name before '%c'", *eq);
		return NULL;
	}
	/* A secret does not go through inih's buffer, which we cannot
	 * wipe; ctx->line is wiped when loading ends. */
	if (!ctx->toolong && len + 3 <= (size_t)num &&
	    !secret_key(s, klen)) {
		put(buf, num, s);
		return buf;
	}
	if (klen + 4 > (size_t)num) {
		lerr(ctx, "unknown key '%.*s'", (int)(klen > SHOW_MAX ?
		    SHOW_MAX : klen), s);
		return NULL;
	}
	snprintf(buf, (size_t)num, "%.*s=%s", (int)klen, s, MARK_LONG);
	ctx->longval = eq + 1 + strspn(eq + 1, " \t");
	return buf;
}

/* --- sesrelay.conf ------------------------------------------------------- */

static int
sender_set(struct loadctx *ctx, const struct key *k, const char *v)
{
	struct sender_aux *a = &ctx->saux[ctx->cur_sender];
	struct origin o;
	char sl[SES_ADDRESS_MAX + 16];
	int slot;

	sect_label(ctx, S_SENDER, ctx->cur_sender, sl, sizeof(sl));
	for (slot = 0; slot < NSLOTS; slot++) {
		if (!(k->slots & 1u << slot) || a->slot_line[slot] == 0)
			continue;
		if (strcmp(a->slot_key[slot], k->name) == 0)
			return lerr(ctx, "[%s] %s: duplicate key (first set "
			    "at line %d)", sl, k->name, a->slot_line[slot]);
		return lerr(ctx, "[%s] %s: conflicts with %s at line %d "
		    "(arn sets all three ARNs)", sl, k->name,
		    a->slot_key[slot], a->slot_line[slot]);
	}
	for (slot = 0; slot < NSLOTS; slot++)
		if (k->slots & 1u << slot) {
			a->slot_line[slot] = ctx->lineno;
			a->slot_key[slot] = k->name;
		}
	memset(&o, 0, sizeof(o));
	o.line = ctx->lineno;
	return apply(ctx, k, v, &o, &ctx->cfg->senders[ctx->cur_sender]);
}

static int
conf_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct loadctx *ctx = arg;
	const struct key *k;
	struct origin *o;
	char sl[SES_ADDRESS_MAX + 16];

	if (ctx->failed)
		return 0;
	if (name == NULL || value == NULL)	/* inih reporting [sections] */
		return 1;
	if (strcmp(value, MARK_LONG) == 0 && ctx->longval != NULL)
		value = ctx->longval;
	if (ctx->cur == S_NONE) {
		lerr(ctx, "key '%s' outside any section (start with [relay], "
		    "[ses], [queue] or [sender PATTERN])", show(name).s);
		return 0;
	}
	sect_label(ctx, ctx->cur, ctx->cur_sender, sl, sizeof(sl));
	if ((k = find_key(ctx->cur, name)) == NULL) {
		lerr(ctx, "[%s] unknown key '%s'", sl, show(name).s);
		return 0;
	}
	if (ctx->cur == S_SENDER)
		return sender_set(ctx, k, value) == 0;
	o = &ctx->orig[k - keys];
	if (o->line > 0) {
		lerr(ctx, "[%s] %s: duplicate key (first set at line %d)", sl,
		    k->name, o->line);
		return 0;
	}
	o->line = ctx->lineno;
	if ((k->flags & K_SECRET) && *value != '\0')
		ctx->secret_line = ctx->lineno;
	return apply(ctx, k, value, o, NULL) == 0;
}

/*
 * Open path for the line reader, with a stdio buffer of ours that can be
 * wiped afterwards (the file may hold a secret).  Opened non-blocking, so
 * that a FIFO given by mistake does not hang us: the caller checks *st is
 * a regular file.  NULL with errno set.
 */
static FILE *
open_text(const char *path, char *iobuf, size_t iolen, struct stat *st)
{
	FILE *fp;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
	    -1)
		return NULL;
	if (fstat(fd, st) == -1 || (fp = fdopen(fd, "r")) == NULL) {
		int saved = errno;

		close(fd);
		errno = saved;
		return NULL;
	}
	setvbuf(fp, iobuf, _IOFBF, iolen);
	return fp;
}

static int
parse_file(struct loadctx *ctx)
{
	char iobuf[BUFSIZ];
	struct stat st;
	int rc;

	if ((ctx->fp = open_text(ctx->cfg->path, iobuf, sizeof(iobuf),
	    &st)) == NULL) {
		fail(ctx, "%s: cannot open: %s", ctx->cfg->path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(ctx, "%s: %s", ctx->cfg->path, S_ISDIR(st.st_mode) ?
		    "is a directory" : "not a regular file");
		fclose(ctx->fp);
		return -1;
	}
	ctx->file_mode = st.st_mode;
	ctx->path = ctx->cfg->path;
	ctx->lineno = 0;
	ctx->cur = S_NONE;
	rc = ini_parse_stream(line_reader, ctx, conf_handler, ctx);
	fclose(ctx->fp);
	ctx->fp = NULL;
	wipe(iobuf, sizeof(iobuf));
	if (!ctx->failed && rc != 0)
		fail(ctx, "%s:%d: syntax error", ctx->cfg->path, rc);
	return ctx->failed ? -1 : 0;
}

/* SESRELAY_<SECTION>_<KEY>: only for the fixed sections. */
static int
apply_env(struct loadctx *ctx)
{
	static const char *const prefixes[] = {
		"SESRELAY_RELAY_", "SESRELAY_SES_", "SESRELAY_QUEUE_"
	};
	char name[ENVNAME_MAX], val[VALUE_MAX + 1];
	const char *v, *e;
	char **ep;
	size_t i, len;

	/* A misspelt variable must not pass silently either. */
	for (ep = environ; ep != NULL && *ep != NULL; ep++) {
		len = strcspn(*ep, "=");
		for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
			if (strncmp(*ep, prefixes[i], strlen(prefixes[i])) == 0)
				break;
		if (i == sizeof(prefixes) / sizeof(prefixes[0]))
			continue;
		for (i = 0; i < NKEYS; i++) {
			if (keys[i].sect == S_SENDER)
				continue;
			env_name(&keys[i], name, sizeof(name));
			if (strlen(name) == len && strncmp(*ep, name, len) == 0)
				break;
		}
		if (i == NKEYS) {
			fail(ctx, "%.*s: unknown variable: no such key in "
			    "sesrelay.conf", (int)(len > SHOW_MAX ? SHOW_MAX :
			    len), *ep);
			return -1;
		}
	}
	for (i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		struct origin *o = &ctx->orig[i];

		if (k->sect == S_SENDER)
			continue;
		env_name(k, name, sizeof(name));
		if ((v = getenv(name)) == NULL)
			continue;
		/* blanks around the value are dropped, as inih does */
		while (is_space((unsigned char)*v))
			v++;
		len = strlen(v);
		while (len > 0 && is_space((unsigned char)v[len - 1]))
			len--;
		o->line = 0;
		snprintf(o->env, sizeof(o->env), "%s", name);
		if (len > VALUE_MAX)
			return keyerr(ctx, o, k->sect, 0, k->name,
			    "value longer than %d characters", VALUE_MAX);
		memcpy(val, v, len);
		val[len] = '\0';
		for (e = val; *e != '\0'; e++)
			if ((unsigned char)*e < 0x20 && *e != '\t')
				break;
		if (*e != '\0') {
			wipe(val, sizeof(val));
			return keyerr(ctx, o, k->sect, 0, k->name,
			    "control character in the value");
		}
		ctx->cur_sender = 0;
		if (apply(ctx, k, val, o, NULL) == -1) {
			wipe(val, sizeof(val));
			return -1;
		}
		wipe(val, sizeof(val));
	}
	return 0;
}

static int
apply_defaults(struct loadctx *ctx)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].def != NULL && !is_set(&ctx->orig[i]) &&
		    apply(ctx, &keys[i], keys[i].def, &ctx->orig[i],
		    NULL) == -1)
			return -1;
	return 0;
}

/* --- checks and derived defaults --------------------------------------- */

static int
check_readable(struct loadctx *ctx, enum sect s, const char *key,
    const char *path)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
	    -1)
		return keyerr(ctx, orig_of(ctx, s, key), s, 0, key,
		    "cannot read %s: %s", path, strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return keyerr(ctx, orig_of(ctx, s, key), s, 0, key,
		    "%s is not a regular file", path);
	}
	close(fd);
	return 0;
}

static int
resolve_region(struct loadctx *ctx)
{
	struct config *cfg = ctx->cfg;
	const char *e;

	/* [ses] region (file or SESRELAY_SES_REGION) wins over AWS_REGION. */
	if (cfg->region != NULL)
		ctx->region_origin = *orig_of(ctx, S_SES, "region");
	else if (nonempty(e = getenv("AWS_REGION"))) {
		snprintf(ctx->region_origin.env,
		    sizeof(ctx->region_origin.env), "AWS_REGION");
		if (!ses_auth_region_valid(e))
			return keyerr(ctx, &ctx->region_origin, S_SES, 0,
			    "region", "not a region name: '%s' (like "
			    "us-east-1)", show(e).s);
		cfg->region = xstrdup(e);
	} else
		cfg->region = xstrdup("us-east-1");
	if (!ses_auth_region_known(cfg->region))
		keywarn(ctx, &ctx->region_origin, S_SES, "region",
		    "%s is not a region known to have an SES SMTP endpoint; "
		    "set endpoint if its name differs", cfg->region);
	return 0;
}

static int
resolve_endpoint(struct loadctx *ctx)
{
	struct config *cfg = ctx->cfg;
	struct origin *o = orig_of(ctx, S_SES, "endpoint");
	char host[SES_HOST_MAX], r[SES_REGION_MAX + 1];
	enum ses_host_kind kind = SES_HOST_OTHER;
	unsigned p;

	if (cfg->endpoint_host == NULL) {
		if (ses_auth_smtp_host(cfg->region, 0, host,
		    sizeof(host)) == -1)
			return keyerr(ctx, &ctx->region_origin, S_SES, 0,
			    "region", "no SMTP host name for %s",
			    show(cfg->region).s);
		cfg->endpoint_host = xstrdup(host);
	} else {
		kind = ses_auth_classify_host(cfg->endpoint_host, r, sizeof(r));
		if (kind != SES_HOST_OTHER && strcmp(r, cfg->region) != 0)
			keywarn(ctx, o, S_SES, "endpoint", "%s is in region %s "
			    "but region is %s: SMTP passwords are per region, "
			    "so authentication will fail; set region = %s",
			    cfg->endpoint_host, r, cfg->region, r);
	}
	p = cfg->endpoint_port;
	if (p == 0)
		cfg->endpoint_port =
		    cfg->tls == UPSTREAM_TLS_IMPLICIT ? 465 : 587;
	else if (cfg->tls == UPSTREAM_TLS_IMPLICIT && (p == 25 || p == 587 ||
	    p == 2587))
		keywarn(ctx, o, S_SES, "endpoint", "port %u is a STARTTLS "
		    "port but tls = implicit (SES uses 465 and 2465)", p);
	else if (cfg->tls == UPSTREAM_TLS_STARTTLS && (p == 465 || p == 2465))
		keywarn(ctx, o, S_SES, "endpoint", "port %u is an implicit "
		    "TLS port but tls = starttls (set tls = implicit)", p);

	if (cfg->tls_verify_name == NULL) {
		/* An SES name verifies as itself; anything else (a VPC
		 * endpoint, an alias, an address) as the regional name. */
		if (kind == SES_HOST_REGIONAL || kind == SES_HOST_FIPS) {
			cfg->tls_verify_name = xstrdup(cfg->endpoint_host);
			lower(cfg->tls_verify_name);
		} else {
			if (ses_auth_smtp_host(cfg->region, 0, host,
			    sizeof(host)) == -1)
				return keyerr(ctx, &ctx->region_origin, S_SES,
				    0, "region", "no SMTP host name for %s",
				    show(cfg->region).s);
			cfg->tls_verify_name = xstrdup(host);
		}
	}
	return 0;
}

static int
resolve_senders(struct loadctx *ctx)
{
	struct config *cfg = ctx->cfg;
	char r[64];
	size_t i;
	int slot;

	for (i = 0; i < cfg->nsenders; i++) {
		struct sender_rule *s = &cfg->senders[i];
		const char *arns[3] = {
			s->source_arn, s->from_arn, s->return_path_arn
		};

		for (slot = 0; slot < 3; slot++) {
			struct origin o;

			if (arns[slot] == NULL)
				continue;
			ses_headers_arn_valid(arns[slot], r, sizeof(r));
			if (strcmp(r, cfg->region) == 0)
				continue;
			memset(&o, 0, sizeof(o));
			o.line = ctx->saux[i].slot_line[slot];
			return keyerr(ctx, &o, S_SENDER, i,
			    ctx->saux[i].slot_key[slot] != NULL ?
			    ctx->saux[i].slot_key[slot] : slot_arn_keys[slot],
			    "the identity is in region %s but [ses] region is "
			    "%s; SES needs the identity in the region of the "
			    "endpoint", show(r).s, cfg->region);
		}
	}
	return 0;
}

static int
resolve(struct loadctx *ctx)
{
	struct config *cfg = ctx->cfg;
	char name[256];

	if (resolve_region(ctx) == -1 || resolve_senders(ctx) == -1 ||
	    resolve_endpoint(ctx) == -1)
		return -1;

	if (cfg->hostname == NULL) {
		if (gethostname(name, sizeof(name)) == -1)
			name[0] = '\0';
		name[sizeof(name) - 1] = '\0';
		if (!dns_name_valid(name)) {
			log_warnx("%s: [relay] hostname: the host name '%s' is "
			    "not a valid domain name; using localhost",
			    cfg->path, show(name).s);
			snprintf(name, sizeof(name), "localhost");
		}
		cfg->hostname = xstrdup(name);
	}

	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		return keyerr(ctx, orig_of(ctx, S_RELAY, cfg->tls_cert ?
		    "tls_cert" : "tls_key"), S_RELAY, 0, cfg->tls_cert ?
		    "tls_cert" : "tls_key", "set without %s (both or neither)",
		    cfg->tls_cert ? "tls_key" : "tls_cert");
	if (cfg->tls_cert != NULL && (check_readable(ctx, S_RELAY, "tls_cert",
	    cfg->tls_cert) == -1 || check_readable(ctx, S_RELAY, "tls_key",
	    cfg->tls_key) == -1))
		return -1;
	if (cfg->ca_file != NULL &&
	    check_readable(ctx, S_SES, "ca_file", cfg->ca_file) == -1)
		return -1;
	if (cfg->user != NULL && getpwnam(cfg->user) == NULL)
		return keyerr(ctx, orig_of(ctx, S_RELAY, "user"), S_RELAY, 0,
		    "user", "no such user '%s'", cfg->user);

	if (cfg->retry_min > cfg->retry_max)
		return keyerr(ctx, orig_of(ctx, S_QUEUE, "retry_min"), S_QUEUE,
		    0, "retry_min", "%us is more than retry_max (%us)",
		    cfg->retry_min, cfg->retry_max);
	if (cfg->max_message_size > SES_SIZE_LIMIT)
		keywarn(ctx, orig_of(ctx, S_RELAY, "max_message_size"), S_RELAY,
		    "max_message_size", "SES takes at most 40M per message");
	if (cfg->session_messages > SES_SESSION_MESSAGES)
		keywarn(ctx, orig_of(ctx, S_SES, "session_messages"), S_SES,
		    "session_messages", "SES closes a session after about %d "
		    "messages", SES_SESSION_MESSAGES);

	if (ctx->secret_line > 0 && (ctx->file_mode & 007) != 0) {
		struct origin o;

		memset(&o, 0, sizeof(o));
		o.line = ctx->secret_line;
		return keyerr(ctx, &o, S_SES, 0, "secret_access_key",
		    "%s holds a secret but is readable by others (mode %04o); "
		    "chmod 600 it, or use secret_access_key_file", cfg->path,
		    (unsigned)(ctx->file_mode & 07777));
	}
	return 0;
}

/* --- the snapshot -------------------------------------------------------- */

static void
config_free(struct config *cfg)
{
	size_t i;

	free(cfg->path);
	free_listen(cfg->listen, cfg->nlisten);
	free(cfg->spool_dir);
	free(cfg->hostname);
	free(cfg->allow);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->sasl_service);
	free(cfg->user);
	free(cfg->metrics_listen);
	free(cfg->region);
	free(cfg->endpoint_host);
	free(cfg->tls_verify_name);
	free(cfg->ca_file);
	free(cfg->access_key_id);
	wipe_free(cfg->secret_access_key);
	free(cfg->secret_access_key_file);
	free(cfg->smtp_password_file);
	free(cfg->origins);
	free(cfg->aws_profile);
	free(cfg->configuration_set);
	free(cfg->message_tags);
	free(cfg->null_sender);
	free(cfg->api_endpoint);
	for (i = 0; i < cfg->nsenders; i++) {
		free(cfg->senders[i].pattern);
		free(cfg->senders[i].source_arn);
		free(cfg->senders[i].from_arn);
		free(cfg->senders[i].return_path_arn);
		free(cfg->senders[i].configuration_set);
		free_users(&cfg->senders[i]);
		free(cfg->senders[i].networks);
	}
	free(cfg->senders);
	free(cfg);
}

struct config *
config_load(const char *path, int need_credentials,
    char err[CONFIG_ERR_MAX])
{
	struct loadctx ctx;
	char dummy[CONFIG_ERR_MAX];
	int rc = -1;

	memset(&ctx, 0, sizeof(ctx));
	ctx.err = err != NULL ? err : dummy;
	ctx.err[0] = '\0';
	if (path == NULL || *path == '\0') {
		fail(&ctx, "no configuration file given");
		return NULL;
	}
	ctx.cfg = xcalloc(1, sizeof(*ctx.cfg));
	ctx.cfg->path = xstrdup(path);
	ctx.orig = xcalloc(NKEYS, sizeof(*ctx.orig));

	(void)need_credentials;
	if (parse_file(&ctx) == 0 && apply_env(&ctx) == 0 &&
	    apply_defaults(&ctx) == 0 && resolve(&ctx) == 0)
		rc = 0;

	ctx.cfg->access_key_id = ctx.pend.access_key_id;
	ctx.cfg->secret_access_key = ctx.pend.secret_access_key;
	ctx.cfg->secret_access_key_file = ctx.pend.secret_access_key_file;
	ctx.cfg->smtp_password_file = ctx.pend.smtp_password_file;
	ctx.cfg->origins = ctx.orig;
	wipe(ctx.line, sizeof(ctx.line));
	free(ctx.saux);
	if (rc == -1) {
		config_free(ctx.cfg);
		return NULL;
	}
	ctx.cfg->refs = 1;
	return ctx.cfg;
}

struct config *
config_ref(struct config *cfg)
{
	if (cfg->refs <= 0)
		fatalx("config_ref: snapshot already freed");
	cfg->refs++;
	return cfg;
}

void
config_unref(struct config *cfg)
{
	if (cfg == NULL)
		return;
	if (cfg->refs <= 0)
		fatalx("config_unref: snapshot already freed");
	if (--cfg->refs == 0)
		config_free(cfg);
}

const char *
config_key_where(const struct config *cfg, const char *section,
    const char *key, char *buf, size_t len)
{
	const struct origin *o = NULL;
	size_t i;

	for (i = 0; cfg->origins != NULL && i < NKEYS; i++)
		if (keys[i].sect != S_SENDER &&
		    strcmp(sect_names[keys[i].sect], section) == 0 &&
		    strcmp(keys[i].name, key) == 0)
			o = &((const struct origin *)cfg->origins)[i];
	if (o != NULL && o->line > 0)
		snprintf(buf, len, "%s:%d", cfg->path, o->line);
	else if (o != NULL && o->env[0] != '\0')
		snprintf(buf, len, "%s", o->env);
	else
		snprintf(buf, len, "%s", cfg->path);
	return buf;
}

/* --- lookups ------------------------------------------------------------- */

static const struct sender_rule *
find_pattern(const struct config *cfg, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < cfg->nsenders; i++)
		if (strlen(cfg->senders[i].pattern) == n &&
		    strncasecmp(cfg->senders[i].pattern, s, n) == 0)
			return &cfg->senders[i];
	return NULL;
}

const struct sender_rule *
config_sender_match(const struct config *cfg, const char *address)
{
	const struct sender_rule *r;
	const char *at, *d, *dot;
	size_t len;

	if (cfg == NULL || address == NULL || *address == '\0')
		return NULL;
	len = strlen(address);
	if (len > 1 && address[len - 1] == '.')
		len--;				/* user@example.com. */
	at = memchr(address, '@', len);
	if (at != NULL) {
		/* the last '@' separates the domain */
		while ((d = memchr(at + 1, '@', len - (size_t)(at + 1 -
		    address))) != NULL)
			at = d;
		/* 1. the address itself */
		if ((r = find_pattern(cfg, address, len)) != NULL)
			return r;
		/* 2. its domain, then each parent domain, longest first */
		for (d = at + 1; d < address + len; d = dot + 1) {
			if ((r = find_pattern(cfg, d, len - (size_t)(d -
			    address))) != NULL)
				return r;
			if ((dot = memchr(d, '.', len - (size_t)(d - address)))
			    == NULL)
				break;
		}
	}
	/* 3. anything */
	return find_pattern(cfg, "*", 1);
}

static int
net_match(const struct cidr *nets, size_t n, int family, const uint8_t *a)
{
	size_t i;
	unsigned full, rest;

	for (i = 0; i < n; i++) {
		const struct cidr *c = &nets[i];

		if (c->family != family)
			continue;
		full = c->prefix / 8;
		rest = c->prefix % 8;
		if (memcmp(c->addr, a, full) != 0)
			continue;
		if (rest != 0 && ((c->addr[full] ^ a[full]) &
		    (uint8_t)(0xff00u >> rest)) != 0)
			continue;
		return 1;
	}
	return 0;
}

/* 1 if sa is an inet address inside one of nets (v4-mapped counts as v4). */
static int
addr_in_networks(const struct cidr *nets, size_t n, const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)
		    (const void *)sa;

		return net_match(nets, n, AF_INET,
		    (const uint8_t *)&sin->sin_addr);
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)
		    (const void *)sa;
		const uint8_t *a = sin6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    net_match(nets, n, AF_INET, a + 12))
			return 1;
		return net_match(nets, n, AF_INET6, a);
	}
	default:
		return 0;
	}
}

int
config_client_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	if (cfg == NULL || sa == NULL)
		return 0;
	if (sa->sa_family == AF_UNIX)
		return 1;
	return addr_in_networks(cfg->allow, cfg->nallow, sa);
}

int
config_sender_restricted(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nsenders; i++)
		if (cfg->senders[i].nusers > 0 || cfg->senders[i].nnetworks > 0)
			return 1;
	return 0;
}

int
config_sender_permitted(const struct config *cfg, const char *address,
    const char *auth_user, const struct sockaddr *client)
{
	const struct sender_rule *r = config_sender_match(cfg, address);

	if (r == NULL || (r->nusers == 0 && r->nnetworks == 0))
		return 1;
	if (auth_user != NULL)
		for (size_t i = 0; i < r->nusers; i++)
			if (strcmp(r->users[i], auth_user) == 0)
				return 1;
	return client != NULL &&
	    addr_in_networks(r->networks, r->nnetworks, client);
}
