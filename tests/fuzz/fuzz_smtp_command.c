/*
 * fuzz_smtp_command.c — smtp_parse_command() and the MAIL/RCPT argument
 * parsers on arbitrary command lines.
 *
 * Invariants checked: *args points inside the line (or is NULL only for
 * INVALID or a MAIL/RCPT without its keyword); a line with control bytes
 * is INVALID; a parsed address is NUL-terminated, shorter than
 * SMTP_PATH_MAX, 7-bit, and parses again to itself when given back as
 * "<address>" (what the relay sends upstream is what it accepted).
 */
#include <string.h>

#include "fuzz.h"
#include "smtp_parse.h"

static void
check_address(const char *a)
{
	size_t n = strnlen(a, SMTP_PATH_MAX);

	FUZZ_CHECK(n < SMTP_PATH_MAX);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)a[i] > 0x20 ||
		    (a[i] == ' ' && strchr(a, '"') != NULL));
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)a[i] < 0x80);
}

/* The address the relay accepted, given back in angle brackets, must be
 * accepted again and come out the same. */
static void
roundtrip(const char *a, int rcpt)
{
	char line[SMTP_PATH_MAX + 8], again[SMTP_PATH_MAX];
	struct smtp_mail_args m;
	enum smtp_path_result r;

	snprintf(line, sizeof(line), "<%s>", a);
	if (rcpt) {
		r = smtp_parse_rcpt_args(line, again, NULL);
		FUZZ_CHECK(r == SMTP_PATH_OK);
		FUZZ_CHECK(strcmp(again, a) == 0);
	} else {
		r = smtp_parse_mail_args(line, &m, NULL);
		FUZZ_CHECK(r == SMTP_PATH_OK);
		FUZZ_CHECK(strcmp(m.address, a) == 0);
	}
}

static void
mail_args(const char *args)
{
	struct smtp_mail_args m;
	const char *why = NULL;
	enum smtp_path_result r = smtp_parse_mail_args(args, &m, &why);

	if (r == SMTP_PATH_OK) {
		check_address(m.address);
		FUZZ_CHECK(m.body == SMTP_BODY_7BIT ||
		    m.body == SMTP_BODY_8BITMIME);
		if (m.address[0] != '\0')
			roundtrip(m.address, 0);
	} else {
		FUZZ_CHECK(r == SMTP_PATH_SYNTAX || r == SMTP_PATH_TOO_LONG ||
		    r == SMTP_PATH_NON_ASCII || r == SMTP_PATH_UNKNOWN_PARAM);
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		FUZZ_CHECK(strchr(why, '\r') == NULL && strchr(why, '\n') == NULL);
	}
}

static void
rcpt_args(const char *args)
{
	char address[SMTP_PATH_MAX];
	const char *why = NULL;
	enum smtp_path_result r = smtp_parse_rcpt_args(args, address, &why);

	if (r == SMTP_PATH_OK) {
		FUZZ_CHECK(address[0] != '\0');
		check_address(address);
		roundtrip(address, 1);
	} else
		FUZZ_CHECK(why != NULL && why[0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *args = (const char *)1;
	enum smtp_verb verb;
	char *line;
	int ctl = 0;

	/* The server hands the parser at most one line of SMTP_LINE_MAX. */
	if (size > SMTP_LINE_MAX)
		return 0;
	if ((line = malloc(size + 1)) == NULL)
		abort();
	memcpy(line, data, size);
	line[size] = '\0';
	for (size_t i = 0; i < size; i++)
		if ((line[i] >= 0 && line[i] < 0x20 && line[i] != '\t') ||
		    line[i] == 0x7f)
			ctl = 1;

	verb = smtp_parse_command(line, size, &args);
	FUZZ_CHECK(verb >= SMTP_VERB_INVALID && verb <= SMTP_VERB_BDAT);
	if (size == 0 || ctl) {
		FUZZ_CHECK(verb == SMTP_VERB_INVALID);
		FUZZ_CHECK(args == NULL);
	} else {
		FUZZ_CHECK(verb != SMTP_VERB_INVALID);
		if (args == NULL)
			FUZZ_CHECK(verb == SMTP_VERB_MAIL ||
			    verb == SMTP_VERB_RCPT);
		else
			FUZZ_CHECK(args >= line && args <= line + size);
	}
	FUZZ_CHECK(smtp_parse_command(line, size, NULL) == verb);

	/* What the server does next with the arguments. */
	if (verb == SMTP_VERB_MAIL)
		mail_args(args);
	else if (verb == SMTP_VERB_RCPT)
		rcpt_args(args);
	else if (!ctl) {
		/* And the argument parsers on the raw line as well, so the
		 * fuzzer need not find "MAIL FROM:" first. */
		mail_args(line);
		rcpt_args(line);
	}
	free(line);
	return 0;
}
