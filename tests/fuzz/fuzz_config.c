/*
 * fuzz_config.c — config_load() on arbitrary sesrelay.conf files.
 *
 * The input is written to an in-memory file (memfd, mode 0600, loaded
 * through its /proc/self/fd path) and loaded twice: with
 * need_credentials = 0, and with 1 in a controlled environment (no AWS_*
 * or SESRELAY_* variables; a shared credentials file that does not exist),
 * so the credential chain runs on secrets written in the file.
 *
 * Invariants: config_load never crashes and returns either a snapshot or
 * NULL with exactly one line of error text (non-empty, no CR/LF, bounded);
 * a snapshot has at least one listener, a host name, a region and an
 * endpoint, and the lookups on it (sender rules, allowed clients) work;
 * LeakSanitizer checks that both outcomes free everything.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include "aws_creds.h"
#include "config.h"
#include "fuzz.h"

extern char **environ;

static int memfd = -1;
static char path[64];

static void
setup(void)
{
	char **ep;

	if ((memfd = memfd_create("sesrelay-fuzz.conf", 0)) == -1 ||
	    fchmod(memfd, 0600) == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	/* Only the file decides; the environment is empty of our keys. */
	for (ep = environ; *ep != NULL; ) {
		if (strncmp(*ep, "SESRELAY_", 9) == 0 ||
		    strncmp(*ep, "AWS_", 4) == 0 ||
		    strncmp(*ep, "CREDENTIALS_DIRECTORY=", 22) == 0) {
			char name[256];
			size_t n = strcspn(*ep, "=");

			snprintf(name, sizeof(name), "%.*s", (int)n, *ep);
			unsetenv(name);
			ep = environ;
		} else
			ep++;
	}
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/sesrelay-fuzz", 1);
	setenv("HOME", "/nonexistent/sesrelay-fuzz", 1);
}

static void
check_config(struct config *cfg)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	static const char *const addrs[] = {
		"a@example.com", "A@Mail.Example.COM.", "x@y@z", "@", "a@",
		"example.com", "*", "a@b.c.d.e.f",
	};

	FUZZ_CHECK(cfg->refs == 1);
	FUZZ_CHECK(cfg->nlisten >= 1 && cfg->listen != NULL);
	FUZZ_CHECK(cfg->hostname != NULL && cfg->hostname[0] != '\0');
	FUZZ_CHECK(cfg->region != NULL && cfg->endpoint_host != NULL);
	FUZZ_CHECK(cfg->endpoint_port >= 1 && cfg->endpoint_port <= 65535);
	FUZZ_CHECK(cfg->spool_dir != NULL && cfg->spool_dir[0] == '/');
	FUZZ_CHECK(cfg->max_clients >= 1 && cfg->max_message_size >= 1);
	FUZZ_CHECK(cfg->retry_min <= cfg->retry_max);
	FUZZ_CHECK((cfg->tls_cert == NULL) == (cfg->tls_key == NULL));
	for (size_t i = 0; i < cfg->nsenders; i++)
		FUZZ_CHECK(cfg->senders[i].pattern != NULL);
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		const struct sender_rule *r = config_sender_match(cfg, addrs[i]);

		FUZZ_CHECK(r == NULL || (r >= cfg->senders &&
		    r < cfg->senders + cfg->nsenders));
		(void)config_sender_permitted(cfg, addrs[i], "user", NULL);
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)config_client_allowed(cfg, (struct sockaddr *)&sin);
	(void)config_sender_permitted(cfg, "a@example.com", NULL,
	    (struct sockaddr *)&sin);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	(void)config_client_allowed(cfg, (struct sockaddr *)&sin6);
}

static void
load(int need_credentials)
{
	char err[CONFIG_ERR_MAX];
	struct config *cfg;

	memset(err, 'x', sizeof(err));
	cfg = config_load(path, need_credentials, err);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (cfg == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(strchr(err, '\n') == NULL &&
		    strchr(err, '\r') == NULL);
		return;
	}
	check_config(cfg);
	if (need_credentials) {
		/* the credential chain of aws_creds.c over the same file */
		char cerr[AWS_CREDS_ERR_MAX];
		struct ses_smtp_login *l;

		memset(cerr, 'x', sizeof(cerr));
		l = aws_creds_smtp_login_for(cfg, cerr, sizeof(cerr));
		FUZZ_CHECK(l != NULL || (cerr[0] != '\0' &&
		    memchr(cerr, '\0', sizeof(cerr)) != NULL &&
		    strchr(cerr, '\n') == NULL));
		FUZZ_CHECK(l == NULL || (l->user != NULL &&
		    l->password != NULL));
		ses_smtp_login_unref(l);
	}
	config_ref(cfg);
	config_unref(cfg);
	config_unref(cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd == -1)
		setup();
	if (ftruncate(memfd, 0) == -1 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size) {
		perror("memfd write");
		abort();
	}
	load(0);
	load(1);
	return 0;
}
