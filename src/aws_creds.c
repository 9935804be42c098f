/*
 * aws_creds.c — see aws_creds.h.
 *
 * The static chain (links 0-4) is synchronous and runs at start-up and on
 * reload, before privileges are dropped: the key files may be root's.
 * The refreshable sources are in aws_creds_provider.c.
 */
#include "aws_creds.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws_creds_int.h"
#include "config.h"
#include "log.h"
#include "ses_auth.h"
#include "xmalloc.h"

#define SECRET_MAX	4096	/* bytes of a secret file */
#define SHARED_MAX	(256 * 1024)	/* bytes of a shared file */
#define VALUE_MAX	4096
#define SHOW_MAX	60

static const char temporary_key[] = "is a temporary (STS) access key id; "
    "SES SMTP needs the long-term access key of an IAM user (AKIA...): "
    "temporary credentials cannot be turned into an SMTP password "
    "(transport = api can use them)";

/* --- small helpers ------------------------------------------------------- */

static int
nonempty(const char *s)
{
	return s != NULL && *s != '\0';
}

static int
is_space(int c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

const char *
aws_creds_show(const char *v, char *buf, size_t len)
{
	size_t o = 0;

	if (len < 4)
		return "";
	for (; *v != '\0' && o < SHOW_MAX && o + 4 < len; v++)
		buf[o++] = (*v >= 0x20 && *v < 0x7f) ? *v : '?';
	if (*v != '\0' && o + 4 <= len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

void
aws_creds_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	for (p = err; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}
#define seterr aws_creds_seterr

static void
cat(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t o;
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	o = strnlen(buf, len);
	if (o + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, len - o, fmt, ap);
	va_end(ap);
}

/* snprintf that may truncate (names and paths in messages) */
static void
fmt(char *buf, size_t len, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void
fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

/* --- the snapshots -------------------------------------------------------- */

struct aws_credentials *
aws_credentials_new(const char *id, const char *secret, const char *token,
    time_t expiration, const char *source)
{
	struct aws_credentials *c = xcalloc(1, sizeof(*c));

	c->access_key_id = xstrdup(id);
	c->secret_access_key = secret != NULL ? xstrdup(secret) : NULL;
	c->session_token = nonempty(token) ? xstrdup(token) : NULL;
	c->expiration = expiration;
	fmt(c->source, sizeof(c->source), "%s", source != NULL ? source : "");
	c->refs = 1;
	return c;
}

struct aws_credentials *
aws_credentials_ref(struct aws_credentials *c)
{
	if (c->refs <= 0)
		fatalx("aws_credentials_ref: already freed");
	c->refs++;
	return c;
}

void
aws_credentials_unref(struct aws_credentials *c)
{
	if (c == NULL)
		return;
	if (c->refs <= 0)
		fatalx("aws_credentials_unref: already freed");
	if (--c->refs > 0)
		return;
	free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	wipe_free(c->smtp_password);
	wipe(c, sizeof(*c));
	free(c);
}

int
aws_credentials_temporary(const struct aws_credentials *c)
{
	return c->session_token != NULL ||
	    ses_auth_key_id_is_temporary(c->access_key_id);
}

struct ses_smtp_login *
ses_smtp_login_ref(struct ses_smtp_login *l)
{
	l->refs++;
	return l;
}

void
ses_smtp_login_unref(struct ses_smtp_login *l)
{
	if (l == NULL || --l->refs > 0)
		return;
	free(l->user);
	wipe_free(l->password);
	free(l);
}

struct ses_smtp_login *
aws_creds_smtp_login(const struct aws_credentials *c, const char *region,
    char *err, size_t errlen)
{
	char pw[SES_SMTP_PASSWORD_LEN + 1], sh[SHOW_MAX + 4];
	struct ses_smtp_login *l;
	int rc;

	if (c->session_token != NULL) {
		seterr(err, errlen, "%s: %s are temporary (STS) credentials "
		    "(they come with a session token), which cannot be turned "
		    "into an SES SMTP password; set [ses] transport = api to "
		    "use them, or use an IAM user's access key", c->source,
		    strncmp(c->source, "environment", 11) == 0 ?
		    "AWS_SESSION_TOKEN is set: these" : "these");
		return NULL;
	}
	if (ses_auth_key_id_is_temporary(c->access_key_id)) {
		seterr(err, errlen, "%s: '%s' %s", c->source,
		    aws_creds_show(c->access_key_id, sh, sizeof(sh)),
		    temporary_key);
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->refs = 1;
	l->user = xstrdup(c->access_key_id);
	fmt(l->source, sizeof(l->source), "%s", c->source);
	if (c->smtp_password != NULL) {
		l->password = xstrdup(c->smtp_password);
		return l;
	}
	if (ses_auth_password_version(c->secret_access_key) !=
	    SES_PASSWORD_MALFORMED) {
		/* 44 base64 characters that decode to 0x04 (or 0x02) and a
		 * 32-byte HMAC: no secret access key looks like that */
		seterr(err, errlen, "the secret access key from %s is an SMTP "
		    "password already derived; put it in smtp_password_file "
		    "instead", c->source);
		ses_smtp_login_unref(l);
		return NULL;
	}
	rc = ses_auth_smtp_password(c->secret_access_key,
	    strlen(c->secret_access_key), region, pw);
	if (rc == -1) {
		wipe(pw, sizeof(pw));
		seterr(err, errlen, "cannot derive the SMTP password from %s",
		    c->source);
		ses_smtp_login_unref(l);
		return NULL;
	}
	l->password = xstrdup(pw);
	wipe(pw, sizeof(pw));
	return l;
}

/* --- files ------------------------------------------------------------------ */

/*
 * The secret in path, a regular file not accessible to others, without
 * the trailing newline or blanks.  NULL after an error, which starts with
 * where ("FILE:LINE: [ses] key").
 */
static char *
read_secret_file(const char *where, const char *path, char *err,
    size_t errlen)
{
	char buf[SECRET_MAX + 1];
	struct stat st;
	size_t n = 0;
	ssize_t r = 0;
	char *s;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
	    -1) {
		seterr(err, errlen, "%s: cannot read %s: %s", where, path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		seterr(err, errlen, "%s: %s is not a regular file", where,
		    path);
		return NULL;
	}
	if ((st.st_mode & 007) != 0) {
		close(fd);
		seterr(err, errlen, "%s: %s is readable by others (mode %04o); "
		    "chmod 600 it", where, path,
		    (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	for (;;) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof(buf))
			break;
	}
	saved = errno;
	close(fd);
	if (r == -1 || n == sizeof(buf)) {
		wipe(buf, sizeof(buf));
		if (r == -1)
			seterr(err, errlen, "%s: cannot read %s: %s", where,
			    path, strerror(saved));
		else
			seterr(err, errlen, "%s: %s is too large for a secret",
			    where, path);
		return NULL;
	}
	while (n > 0 && is_space((unsigned char)buf[n - 1]))
		n--;
	buf[n] = '\0';
	if (n == 0 || strlen(buf) != n || !ses_auth_secret_valid(buf)) {
		wipe(buf, sizeof(buf));
		seterr(err, errlen, "%s: %s must hold the secret alone, on one "
		    "line%s", where, path, n == 0 ? " (it is empty)" : "");
		return NULL;
	}
	s = xstrdup(buf);
	wipe(buf, sizeof(buf));
	return s;
}

/*
 * Read a whole text file of at most max bytes into a new buffer (wipe and
 * free it).  0, 1 if it does not exist, -1 with err.  A file that may hold
 * secrets (private) must not be accessible to others.
 */
int
aws_creds_read_file(const char *path, size_t max, int private, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t n = 0;
	ssize_t r = 0;
	int fd, saved;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
	    -1) {
		if (errno == ENOENT)
			return 1;
		seterr(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		seterr(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if (private && (st.st_mode & 007) != 0) {
		close(fd);
		seterr(err, errlen, "%s is readable by others (mode %04o); "
		    "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	buf = xmalloc(max + 1);
	for (;;) {
		r = read(fd, buf + n, max + 1 - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == max + 1)
			break;
	}
	saved = errno;
	close(fd);
	if (r == -1 || n > max) {
		wipe(buf, max + 1);
		free(buf);
		if (r == -1)
			seterr(err, errlen, "%s: cannot read: %s", path,
			    strerror(saved));
		else
			seterr(err, errlen, "%s: larger than %zu bytes", path,
			    max);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
}

/* --- the shared files ------------------------------------------------------- */

enum { P_ID, P_SECRET, P_TOKEN, P_ROLE, P_WEBTOKEN, P_SESSION, P_SOURCE,
    P_PROCESS, P_SSO, NPKEYS };
static const char *const pkey_names[NPKEYS] = {
	"aws_access_key_id", "aws_secret_access_key", "aws_session_token",
	"role_arn", "web_identity_token_file", "role_session_name",
	"source_profile", "credential_process", "sso_start_url"
};

void
aws_creds_profile_clear(struct aws_profile *p)
{
	size_t i;

	for (i = 0; i < NPKEYS; i++)
		wipe_free(p->v[i]);
	memset(p, 0, sizeof(*p));
}

/*
 * Find [profile] in text (is_config: the config file, where it is
 * "[profile NAME]" except for default).  0 with out filled (found 1 if
 * the section is there), -1 with err ("PATH:LINE: ...").  Never shows a
 * line: it may hold a secret.
 */
int
aws_creds_parse_profile(const char *text, size_t len, const char *path,
    const char *profile, int is_config, struct aws_profile *out, char *err,
    size_t errlen)
{
	const char *p = text, *end = text + len, *nl, *eq, *colon;
	int lineno = 0, in = 0;
	char sect[300];

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *s, *e, *k, *ke, *v, *ve;
		size_t i;

		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		e = nl != NULL ? nl : end;
		s = p;
		p = nl != NULL ? nl + 1 : end;
		while (s < e && is_space((unsigned char)*s))
			s++;
		while (e > s && is_space((unsigned char)e[-1]))
			e--;
		if (s == e || *s == '#' || *s == ';')
			continue;
		if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
			seterr(err, errlen, "%s:%d: NUL byte", path, lineno);
			goto fail;
		}
		if (*s == '[') {
			const char *in_s = s + 1, *in_e;

			if (e[-1] != ']') {
				seterr(err, errlen, "%s:%d: %s", path, lineno,
				    memchr(s, ']', (size_t)(e - s)) != NULL ?
				    "text after ']' in a section header" :
				    "missing ']' in a section header");
				goto fail;
			}
			in_e = e - 1;
			while (in_s < in_e && (*in_s == ' ' || *in_s == '\t'))
				in_s++;
			while (in_e > in_s && (in_e[-1] == ' ' ||
			    in_e[-1] == '\t'))
				in_e--;
			snprintf(sect, sizeof(sect), "%.*s", (int)(in_e - in_s),
			    in_s);
			if (is_config && strcmp(profile, "default") != 0) {
				char want[300];

				snprintf(want, sizeof(want), "profile %s",
				    profile);
				in = strcmp(sect, want) == 0;
			} else
				in = strcmp(sect, profile) == 0 ||
				    (is_config && strcmp(sect,
				    "profile default") == 0);
			if (in)
				out->found = 1;
			continue;
		}
		eq = memchr(s, '=', (size_t)(e - s));
		colon = memchr(s, ':', (size_t)(e - s));
		if (eq == NULL || (colon != NULL && colon < eq))
			eq = colon;
		if (eq == NULL) {
			seterr(err, errlen, "%s:%d: expected 'key = value' or a "
			    "[profile]", path, lineno);
			goto fail;
		}
		if (!in)
			continue;
		k = s;
		ke = eq;
		while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
			ke--;
		v = eq + 1;
		ve = e;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		/* an inline comment: blanks then '#' or ';' */
		for (const char *c = v; c < ve; c++)
			if ((*c == '#' || *c == ';') && c > v &&
			    (c[-1] == ' ' || c[-1] == '\t')) {
				ve = c;
				break;
			}
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (i = 0; i < NPKEYS; i++)
			if (strlen(pkey_names[i]) == (size_t)(ke - k) &&
			    memcmp(pkey_names[i], k, (size_t)(ke - k)) == 0)
				break;
		if (i == NPKEYS || (i == P_SSO && 0))
			continue;	/* region, output, ...: not ours */
		if (out->line[i] > 0) {
			char sh[SHOW_MAX + 4];

			seterr(err, errlen, "%s:%d: [%s] %s: duplicate key "
			    "(first set at line %d)", path, lineno,
			    aws_creds_show(profile, sh, sizeof(sh)),
			    pkey_names[i], out->line[i]);
			goto fail;
		}
		if (v == ve)
			continue;
		if (ve - v > VALUE_MAX) {
			char sh[SHOW_MAX + 4];

			seterr(err, errlen, "%s: [%s]: a credential value is "
			    "too long", path,
			    aws_creds_show(profile, sh, sizeof(sh)));
			goto fail;
		}
		out->line[i] = lineno;
		out->v[i] = xmalloc((size_t)(ve - v) + 1);
		memcpy(out->v[i], v, (size_t)(ve - v));
		out->v[i][ve - v] = '\0';
	}
	return 0;
fail:
	aws_creds_profile_clear(out);
	return -1;
}

static const char *
home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (!nonempty(home) && (pw = getpwuid(getuid())) != NULL)
		home = pw->pw_dir;
	return nonempty(home) ? home : NULL;
}

/* The profile name and where it came from (NULL: the default). */
const char *
aws_creds_profile_name(const struct config *cfg, const char **from)
{
	/* aws_profile (file or SESRELAY_SES_AWS_PROFILE) wins over
	 * AWS_PROFILE. */
	if (cfg->aws_profile != NULL) {
		*from = "aws_profile";
		return cfg->aws_profile;
	}
	if (nonempty(getenv("AWS_PROFILE"))) {
		*from = "AWS_PROFILE";
		return getenv("AWS_PROFILE");
	}
	*from = NULL;
	return "default";
}

/* Read one shared file's profile: 0 (p->found says if the profile is
 * there), 1 no such file (tried updated), -1 error. */
static int
read_profile(const char *path, const char *profile, int is_config,
    struct aws_profile *p, char *tried, size_t triedlen, char *err,
    size_t errlen)
{
	char *text;
	size_t len;
	int rc;

	rc = aws_creds_read_file(path, SHARED_MAX, !is_config, &text, &len,
	    err, errlen);
	if (rc == 1) {
		cat(tried, triedlen, ", %s (no such file)", path);
		memset(p, 0, sizeof(*p));
		return 1;
	}
	if (rc == -1)
		return -1;
	rc = aws_creds_parse_profile(text, len, path, profile, is_config, p,
	    err, errlen);
	wipe(text, len);
	free(text);
	return rc;
}

/*
 * Link 4: the shared files.  0 with *out (static keys), 2 with *role
 * filled (a web identity profile), 1 nothing there (tried updated), -1
 * error.
 */
static int
shared_files(const struct config *cfg, struct aws_credentials **out,
    struct aws_web_identity *role, char *tried, size_t triedlen, char *err,
    size_t errlen)
{
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *cfile = getenv("AWS_CONFIG_FILE");
	const char *home = home_dir(), *from, *profile;
	char path[PATH_MAX], cpath[PATH_MAX], source[AWS_CREDS_SOURCE_MAX];
	char label[PATH_MAX + 160], sh[SHOW_MAX + 4];
	struct aws_profile cp, pp, *p = NULL;
	const char *ppath = NULL;
	int rc, rc2, in_creds = 0, in_conf = 0, have_cfile = 1;

	profile = aws_creds_profile_name(cfg, &from);
	if (nonempty(file))
		snprintf(path, sizeof(path), "%s", file);
	else if (home != NULL)
		snprintf(path, sizeof(path), "%s/.aws/credentials", home);
	else
		path[0] = '\0';
	if (nonempty(cfile))
		snprintf(cpath, sizeof(cpath), "%s", cfile);
	else if (home != NULL)
		snprintf(cpath, sizeof(cpath), "%s/.aws/config", home);
	else
		cpath[0] = '\0';
	if (path[0] == '\0' && cpath[0] == '\0') {
		cat(tried, triedlen, ", ~/.aws/credentials (no home "
		    "directory)");
		return 1;
	}
	memset(&cp, 0, sizeof(cp));
	memset(&pp, 0, sizeof(pp));
	rc = 1;
	if (path[0] != '\0') {
		if ((rc = read_profile(path, profile, 0, &cp, tried, triedlen,
		    err, errlen)) == -1)
			return -1;
		in_creds = rc == 0 && cp.found;
	}
	rc2 = 1;
	if (cpath[0] != '\0') {
		if ((rc2 = read_profile(cpath, profile, 1, &pp, NULL, 0, err,
		    errlen)) == -1) {
			aws_creds_profile_clear(&cp);
			return -1;
		}
		in_conf = rc2 == 0 && pp.found;
		have_cfile = rc2 == 0;
	}
	if (!in_creds && !in_conf) {
		aws_creds_profile_clear(&cp);
		aws_creds_profile_clear(&pp);
		if (from != NULL && (rc == 0 || rc2 == 0)) {
			seterr(err, errlen, "%s: no profile [%s] (from %s)%s%s",
			    rc == 0 ? path : cpath,
			    aws_creds_show(profile, sh, sizeof(sh)), from,
			    rc == 0 && have_cfile ? ", nor in " : "",
			    rc == 0 && have_cfile ? cpath : "");
			return -1;
		}
		if (rc == 0)
			cat(tried, triedlen, ", %s (no profile [%s])", path,
			    aws_creds_show(profile, sh, sizeof(sh)));
		return 1;
	}
	/* the credentials file first, for keys; a profile with keys there
	 * wins over what the config file says */
	if (in_creds && (cp.v[P_ID] != NULL || cp.v[P_SECRET] != NULL ||
	    !in_conf)) {
		p = &cp;
		ppath = path;
	} else {
		p = &pp;
		ppath = cpath;
	}
	fmt(label, sizeof(label), "%s: [%s]", ppath,
	    aws_creds_show(profile, sh, sizeof(sh)));
	if (p->v[P_ID] == NULL && p->v[P_SECRET] == NULL) {
		/* role_arn may be in one file, web_identity_token_file in
		 * the other: take them from where they are */
		const char *arn = p->v[P_ROLE] != NULL ? p->v[P_ROLE] :
		    (p == &cp ? pp.v[P_ROLE] : cp.v[P_ROLE]);
		const char *tok = p->v[P_WEBTOKEN] != NULL ?
		    p->v[P_WEBTOKEN] : (p == &cp ? pp.v[P_WEBTOKEN] :
		    cp.v[P_WEBTOKEN]);
		const char *sess = p->v[P_SESSION] != NULL ?
		    p->v[P_SESSION] : (p == &cp ? pp.v[P_SESSION] :
		    cp.v[P_SESSION]);

		if (arn != NULL && tok != NULL && role != NULL) {
			fmt(role->role_arn, sizeof(role->role_arn), "%s",
			    arn);
			fmt(role->token_file, sizeof(role->token_file),
			    "%s", tok);
			fmt(role->session_name,
			    sizeof(role->session_name), "%s", sess != NULL ?
			    sess : "");
			fmt(role->where, sizeof(role->where),
			    "%s", label);
			aws_creds_profile_clear(&cp);
			aws_creds_profile_clear(&pp);
			return 2;
		}
		seterr(err, errlen, "%s: no aws_access_key_id and "
		    "aws_secret_access_key%s (sesrelay reads static keys, or "
		    "role_arn with web_identity_token_file for temporary "
		    "credentials with transport = api; source_profile, SSO "
		    "and credential_process profiles are not supported)",
		    label, arn != NULL && tok != NULL ?
		    " and a web identity role, which the SMTP transport cannot "
		    "use" : "");
		aws_creds_profile_clear(&cp);
		aws_creds_profile_clear(&pp);
		return -1;
	}
	if (p->v[P_ID] == NULL || p->v[P_SECRET] == NULL) {
		seterr(err, errlen, "%s: %s", label, p->v[P_ID] != NULL ?
		    "aws_access_key_id without aws_secret_access_key" :
		    "aws_secret_access_key without aws_access_key_id");
		aws_creds_profile_clear(&cp);
		aws_creds_profile_clear(&pp);
		return -1;
	}
	if (!ses_auth_key_id_valid(p->v[P_ID])) {
		seterr(err, errlen, "%s aws_access_key_id: not an access key "
		    "id: '%s'", label, aws_creds_show(p->v[P_ID], sh,
		    sizeof(sh)));
		aws_creds_profile_clear(&cp);
		aws_creds_profile_clear(&pp);
		return -1;
	}
	fmt(source, sizeof(source), "shared credentials file %s, "
	    "profile %s", ppath, aws_creds_show(profile, sh, sizeof(sh)));
	*out = aws_credentials_new(p->v[P_ID], p->v[P_SECRET],
	    p->v[P_TOKEN], 0, source);
	aws_creds_profile_clear(&cp);
	aws_creds_profile_clear(&pp);
	return 0;
}

/* --- the static chain ------------------------------------------------------- */

/*
 * Link 0: systemd's LoadCredential= hands secrets over as files in
 * $CREDENTIALS_DIRECTORY.  The path of the credential that stands in for
 * a key the configuration leaves unset, or NULL.
 */
static const char *
credentials_directory(const struct config *cfg, char *path, size_t len,
    const char **key)
{
	static const char *const creds[][2] = {
		{ "smtp_password", "smtp_password_file" },
		{ "secret_access_key", "secret_access_key_file" },
	};
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;
	size_t i;

	if (!nonempty(dir) || cfg->smtp_password_file != NULL ||
	    cfg->secret_access_key_file != NULL ||
	    cfg->secret_access_key != NULL)
		return NULL;
	for (i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
		if ((size_t)snprintf(path, len, "%s/%s", dir, creds[i][0]) >=
		    len || lstat(path, &st) == -1)
			continue;
		*key = creds[i][1];
		return path;
	}
	return NULL;
}

static const char *
where(const struct config *cfg, const char *key, int via_dir, char *buf,
    size_t len)
{
	char w[PATH_MAX + 32];

	if (via_dir)
		snprintf(w, sizeof(w), "CREDENTIALS_DIRECTORY");
	else
		config_key_where(cfg, "ses", key, w, sizeof(w));
	fmt(buf, len, "%s: [ses] %s", w, key);
	return buf;
}

/*
 * Links 0-4.  0 with *out, 1 nothing found (err says what was tried),
 * 2 a web identity profile (*role), -1 error.
 */
int
aws_creds_chain_static(const struct config *cfg, struct aws_credentials **out,
    struct aws_web_identity *role, char *err, size_t errlen)
{
	char dpath[PATH_MAX], wh[PATH_MAX + 96], source[AWS_CREDS_SOURCE_MAX];
	char tried[AWS_CREDS_ERR_MAX], sh[SHOW_MAX + 4];
	const char *dkey = NULL, *ak, *sk, *missing;
	const char *pwfile = cfg->smtp_password_file;
	const char *skfile = cfg->secret_access_key_file;
	const char *dir = credentials_directory(cfg, dpath, sizeof(dpath),
	    &dkey);
	const char *via = dir != NULL ? " (CREDENTIALS_DIRECTORY)" : "";
	char *secret;
	int rc;

	*out = NULL;
	if (dir != NULL && strcmp(dkey, "smtp_password_file") == 0)
		pwfile = dir;
	else if (dir != NULL)
		skfile = dir;

	/* 1. an already derived password */
	if (pwfile != NULL) {
		where(cfg, "smtp_password_file", pwfile == dir, wh,
		    sizeof(wh));
		if (cfg->access_key_id == NULL) {
			seterr(err, errlen, "%s: needs access_key_id (the SMTP "
			    "user name)", wh);
			return -1;
		}
		if ((secret = read_secret_file(wh, pwfile, err, errlen)) ==
		    NULL)
			return -1;
		switch (ses_auth_password_version(secret)) {
		case SES_PASSWORD_V4:
			break;
		case SES_PASSWORD_V2:
			wipe_free(secret);
			seterr(err, errlen, "%s: %s holds a version 2 SMTP "
			    "password, which SES refuses with \"535 Signature "
			    "Version 2 is deprecated\"; derive a version 4 one "
			    "from the secret access key with `sesrelay passwd`",
			    wh, pwfile);
			return -1;
		default:
			wipe_free(secret);
			seterr(err, errlen, "%s: %s does not hold an SES SMTP "
			    "password (44 base64 characters starting with B, as "
			    "`sesrelay passwd` prints)", wh, pwfile);
			return -1;
		}
		fmt(source, sizeof(source), "smtp_password_file %s%s",
		    pwfile, via);
		*out = aws_credentials_new(cfg->access_key_id, NULL, NULL, 0,
		    source);
		(*out)->smtp_password = secret;
		return 0;
	}

	/* 2. the IAM secret in the configuration */
	if (skfile != NULL || cfg->secret_access_key != NULL) {
		const char *key = skfile != NULL ? "secret_access_key_file" :
		    "secret_access_key";

		where(cfg, key, skfile != NULL && skfile == dir, wh,
		    sizeof(wh));
		if (cfg->access_key_id == NULL) {
			seterr(err, errlen, "%s: needs access_key_id", wh);
			return -1;
		}
		if (skfile != NULL) {
			if (cfg->secret_access_key != NULL)
				log_warnx("%s: both secret_access_key_file and "
				    "secret_access_key are set; using "
				    "secret_access_key_file", wh);
			if ((secret = read_secret_file(wh, skfile, err,
			    errlen)) == NULL)
				return -1;
			fmt(source, sizeof(source),
			    "secret_access_key_file %s%s", skfile, via);
		} else {
			char w[PATH_MAX + 32];

			secret = xstrdup(cfg->secret_access_key);
			config_key_where(cfg, "ses", "secret_access_key", w,
			    sizeof(w));
			if (strncmp(w, "SESRELAY_", 9) == 0)
				fmt(source, sizeof(source),
				    "secret_access_key from %s", w);
			else
				fmt(source, sizeof(source),
				    "secret_access_key in %s", cfg->path);
		}
		*out = aws_credentials_new(cfg->access_key_id, secret, NULL, 0,
		    source);
		wipe_free(secret);
		return 0;
	}
	if (cfg->access_key_id != NULL) {
		where(cfg, "access_key_id", 0, wh, sizeof(wh));
		seterr(err, errlen, "%s: set without secret_access_key_file, "
		    "secret_access_key or smtp_password_file", wh);
		return -1;
	}

	/* 3. the environment, as the AWS tools read it */
	ak = getenv("AWS_ACCESS_KEY_ID");
	sk = getenv("AWS_SECRET_ACCESS_KEY");
	if (nonempty(ak) || nonempty(sk)) {
		missing = !nonempty(ak) ? "AWS_ACCESS_KEY_ID" :
		    !nonempty(sk) ? "AWS_SECRET_ACCESS_KEY" : NULL;
		if (missing != NULL) {
			seterr(err, errlen, "%s is set but %s is not",
			    nonempty(ak) ? "AWS_ACCESS_KEY_ID" :
			    "AWS_SECRET_ACCESS_KEY", missing);
			return -1;
		}
		if (!ses_auth_key_id_valid(ak)) {
			seterr(err, errlen, "AWS_ACCESS_KEY_ID: not an access "
			    "key id: '%s'", aws_creds_show(ak, sh, sizeof(sh)));
			return -1;
		}
		if (!ses_auth_secret_valid(sk)) {
			seterr(err, errlen, "AWS_SECRET_ACCESS_KEY: must be the "
			    "secret access key alone");
			return -1;
		}
		*out = aws_credentials_new(ak, sk, getenv("AWS_SESSION_TOKEN"),
		    0, "environment AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
		return 0;
	}

	/* 4. the shared files */
	snprintf(tried, sizeof(tried), "smtp_password_file, access_key_id "
	    "with secret_access_key(_file), AWS_ACCESS_KEY_ID with "
	    "AWS_SECRET_ACCESS_KEY");
	if ((rc = shared_files(cfg, out, role, tried, sizeof(tried), err,
	    errlen)) != 1)
		return rc;
	seterr(err, errlen, "%s: [ses] no SES credentials; tried %s",
	    cfg->path, tried);
	return 1;
}

struct aws_credentials *
aws_creds_resolve_static(const struct config *cfg, char *err, size_t errlen)
{
	struct aws_credentials *c = NULL;
	struct aws_web_identity role;
	int rc;

	memset(&role, 0, sizeof(role));
	rc = aws_creds_chain_static(cfg, &c, &role, err, errlen);
	if (rc == 2)
		seterr(err, errlen, "%s: role_arn with web_identity_token_file "
		    "gives temporary credentials (STS web identity), which SES "
		    "SMTP cannot use; set [ses] transport = api", role.where);
	if (rc == 1) {
		static const char *const roles[] = {
			"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
			"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
			"AWS_CONTAINER_CREDENTIALS_FULL_URI",
		};
		size_t i;

		for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
			if (nonempty(getenv(roles[i]))) {
				cat(err, errlen, "; %s is set: a role's temporary "
				    "credentials, which SES SMTP cannot use; set "
				    "[ses] transport = api", roles[i]);
				break;
			}
	}
	return rc == 0 ? c : NULL;
}

struct ses_smtp_login *
aws_creds_smtp_login_for(const struct config *cfg, char *err, size_t errlen)
{
	struct aws_credentials *c;
	struct ses_smtp_login *l;

	if ((c = aws_creds_resolve_static(cfg, err, errlen)) == NULL)
		return NULL;
	l = aws_creds_smtp_login(c, cfg->region, err, errlen);
	aws_credentials_unref(c);
	return l;
}
