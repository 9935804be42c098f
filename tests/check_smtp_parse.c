/* check_smtp_parse.c — unit tests for smtp_parse.c. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal and its length, NUL bytes included. */
#define S(s) s, sizeof(s) - 1

/*
 * Some cases need long strings: in them every '#' stands for pad 'x'
 * bytes.  Returns a malloc'd, NUL-terminated copy; *outlen its length.
 */
static char *
expand(const char *s, size_t len, size_t pad, size_t *outlen)
{
	size_t i, n = 0, marks = 0;
	char *out;

	for (i = 0; pad > 0 && i < len; i++)
		if (s[i] == '#')
			marks++;
	out = malloc(len + marks * pad + 1);
	ck_assert_ptr_nonnull(out);
	for (i = 0; i < len; i++) {
		if (pad > 0 && s[i] == '#') {
			memset(out + n, 'x', pad);
			n += pad;
		} else
			out[n++] = s[i];
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

/*
 * Commands.
 */

static const struct {
	const char *line;
	size_t len;
	enum smtp_verb verb;
	const char *args;	/* expected *args; NULL for none */
} cmd_cases[] = {
	{ S("HELO client.example"), SMTP_VERB_HELO, "client.example" },
	{ S("helo client.example"), SMTP_VERB_HELO, "client.example" },
	{ S("HELO x\ty"), SMTP_VERB_HELO, "x\ty" },
	{ S("EHLO [192.0.2.1]"), SMTP_VERB_EHLO, "[192.0.2.1]" },
	{ S("EhLo x"), SMTP_VERB_EHLO, "x" },
	{ S("EHLO"), SMTP_VERB_EHLO, "" },
	{ S("EHLO   x  "), SMTP_VERB_EHLO, "x  " },
	{ S("MAIL FROM:<a@b.example>"), SMTP_VERB_MAIL, "<a@b.example>" },
	{ S("mail from:<a@b> SIZE=1"), SMTP_VERB_MAIL, "<a@b> SIZE=1" },
	{ S("Mail From:<>"), SMTP_VERB_MAIL, "<>" },
	{ S("MAIL FROM: <a@b>"), SMTP_VERB_MAIL, "<a@b>" },
	{ S("MAIL FROM:   <a@b> "), SMTP_VERB_MAIL, "<a@b> " },
	{ S("MAIL  FROM:<a@b>"), SMTP_VERB_MAIL, "<a@b>" },
	{ S("MAIL FROM:"), SMTP_VERB_MAIL, "" },
	{ S("MAIL FROM:  "), SMTP_VERB_MAIL, "" },
	{ S("MAIL"), SMTP_VERB_MAIL, NULL },
	{ S("MAIL "), SMTP_VERB_MAIL, NULL },
	{ S("MAIL FROM"), SMTP_VERB_MAIL, NULL },
	{ S("MAIL FROM <a@b>"), SMTP_VERB_MAIL, NULL },
	{ S("MAIL FROM :<a@b>"), SMTP_VERB_MAIL, NULL },
	{ S("MAIL TO:<a@b>"), SMTP_VERB_MAIL, NULL },
	{ S("MAILFROM:<a@b>"), SMTP_VERB_UNKNOWN, "" },
	{ S("MAIL:<a@b>"), SMTP_VERB_UNKNOWN, "" },
	{ S("RCPT TO:<a@b>"), SMTP_VERB_RCPT, "<a@b>" },
	{ S("rcpt to: <a@b>"), SMTP_VERB_RCPT, "<a@b>" },
	{ S("RCPT   To:<a@b> NOTIFY=NEVER"), SMTP_VERB_RCPT,
	    "<a@b> NOTIFY=NEVER" },
	{ S("RCPT"), SMTP_VERB_RCPT, NULL },
	{ S("RCPT FROM:<a@b>"), SMTP_VERB_RCPT, NULL },
	{ S("RCPT T:<a@b>"), SMTP_VERB_RCPT, NULL },
	{ S("DATA"), SMTP_VERB_DATA, "" },
	{ S("data"), SMTP_VERB_DATA, "" },
	{ S("DATA x"), SMTP_VERB_DATA, "x" },
	{ S("RSET"), SMTP_VERB_RSET, "" },
	{ S("rset "), SMTP_VERB_RSET, "" },
	{ S("NOOP"), SMTP_VERB_NOOP, "" },
	{ S("NOOP hello there"), SMTP_VERB_NOOP, "hello there" },
	{ S("QUIT"), SMTP_VERB_QUIT, "" },
	{ S("HELP"), SMTP_VERB_HELP, "" },
	{ S("HELP MAIL"), SMTP_VERB_HELP, "MAIL" },
	{ S("VRFY postmaster"), SMTP_VERB_VRFY, "postmaster" },
	{ S("EXPN list"), SMTP_VERB_EXPN, "list" },
	{ S("STARTTLS"), SMTP_VERB_STARTTLS, "" },
	{ S("starttls"), SMTP_VERB_STARTTLS, "" },
	{ S("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q="), SMTP_VERB_AUTH,
	    "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
	{ S("auth login"), SMTP_VERB_AUTH, "login" },
	{ S("BDAT 100 LAST"), SMTP_VERB_BDAT, "100 LAST" },
	/* words that are not commands */
	{ S("NOOPX"), SMTP_VERB_UNKNOWN, "" },
	{ S("HELOX x"), SMTP_VERB_UNKNOWN, "x" },
	{ S("HEL"), SMTP_VERB_UNKNOWN, "" },
	{ S("STARTTLSX"), SMTP_VERB_UNKNOWN, "" },
	{ S("HELO\tx"), SMTP_VERB_UNKNOWN, "" },
	{ S(" HELO x"), SMTP_VERB_UNKNOWN, "HELO x" },
	{ S("XCLIENT ADDR=192.0.2.1"), SMTP_VERB_UNKNOWN, "ADDR=192.0.2.1" },
	{ S("GET / HTTP/1.1"), SMTP_VERB_UNKNOWN, "/ HTTP/1.1" },
	{ S("12345"), SMTP_VERB_UNKNOWN, "" },
	{ S("\xc3\xa9"), SMTP_VERB_UNKNOWN, "" },
	{ S("   "), SMTP_VERB_UNKNOWN, "" },
	/* empty or control bytes */
	{ S(""), SMTP_VERB_INVALID, NULL },
	{ S("\0"), SMTP_VERB_INVALID, NULL },
	{ S("HELO x\0y"), SMTP_VERB_INVALID, NULL },
	{ S("NOOP\0"), SMTP_VERB_INVALID, NULL },
	{ S("HELO x\r"), SMTP_VERB_INVALID, NULL },
	{ S("HELO x\ny"), SMTP_VERB_INVALID, NULL },
	{ S("HELO x\r\nQUIT"), SMTP_VERB_INVALID, NULL },
	{ S("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>"), SMTP_VERB_INVALID, NULL },
	{ S("NOOP \x01"), SMTP_VERB_INVALID, NULL },
	{ S("\x1b[AQUIT"), SMTP_VERB_INVALID, NULL },
	{ S("QUIT\x7f"), SMTP_VERB_INVALID, NULL },
};

START_TEST(test_command)
{
	const char *args = (const char *)1;
	char *line;

	line = malloc(cmd_cases[_i].len + 1);
	ck_assert_ptr_nonnull(line);
	memcpy(line, cmd_cases[_i].line, cmd_cases[_i].len);
	line[cmd_cases[_i].len] = '\0';
	ck_assert_int_eq(smtp_parse_command(line, cmd_cases[_i].len, &args),
	    cmd_cases[_i].verb);
	if (cmd_cases[_i].args == NULL)
		ck_assert_ptr_null(args);
	else {
		ck_assert_ptr_nonnull(args);
		ck_assert(args >= line && args <= line + cmd_cases[_i].len);
		ck_assert_str_eq(args, cmd_cases[_i].args);
	}
	/* args may be NULL. */
	ck_assert_int_eq(smtp_parse_command(line, cmd_cases[_i].len, NULL),
	    cmd_cases[_i].verb);
	free(line);
}
END_TEST

/* len is honoured: bytes after it are not looked at. */
START_TEST(test_command_len)
{
	const char *args;

	ck_assert_int_eq(smtp_parse_command("NOOPX", 4, &args),
	    SMTP_VERB_NOOP);
	ck_assert_int_eq(smtp_parse_command("QUIT\r\n", 4, &args),
	    SMTP_VERB_QUIT);
	ck_assert_int_eq(smtp_parse_command("MAIL FROM:<a@b>", 9, &args),
	    SMTP_VERB_MAIL);
	ck_assert_ptr_null(args);
}
END_TEST

/*
 * MAIL FROM: arguments.
 */

static const struct {
	const char *args;
	size_t pad;		/* see expand() */
	enum smtp_path_result r;
	const char *address;	/* if OK */
	int has_size;
	uint64_t size;
	enum smtp_body body;
} mail_cases[] = {
	{ "<a@example.com>", 0, SMTP_PATH_OK, "a@example.com", 0, 0, 0 },
	{ "<A.B-c+tag@Mail.Example.COM>", 0, SMTP_PATH_OK,
	    "A.B-c+tag@Mail.Example.COM", 0, 0, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@example.com>", 0, SMTP_PATH_OK,
	    "!#$%&'*+-/=?^_`{|}~@example.com", 0, 0, 0 },
	{ "<a@x-1.example>", 0, SMTP_PATH_OK, "a@x-1.example", 0, 0, 0 },
	{ "<a@b>", 0, SMTP_PATH_OK, "a@b", 0, 0, 0 },
	{ "<1@2>", 0, SMTP_PATH_OK, "1@2", 0, 0, 0 },
	/* null path */
	{ "<>", 0, SMTP_PATH_OK, "", 0, 0, 0 },
	{ "<> SIZE=100", 0, SMTP_PATH_OK, "", 1, 100, 0 },
	{ "< >", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* source routes are dropped */
	{ "<@relay.example:a@b.example>", 0, SMTP_PATH_OK, "a@b.example",
	    0, 0, 0 },
	{ "<@r1.example,@r2.example:a@b>", 0, SMTP_PATH_OK, "a@b", 0, 0, 0 },
	{ "<@r1.example,r2.example:a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<@r1.example,:a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<@:a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<@r1.example a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<@r1.example>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<@r1.example:>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "@r1.example:a@b", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* quoted local parts keep their spelling, unless the quotes are not
	 * needed (RFC 5321 4.1.2): then it is the same mailbox unquoted */
	{ "<\"billing\"@example.com>", 0, SMTP_PATH_OK,
	    "billing@example.com", 0, 0, 0 },
	{ "<\"a.b-c+d\"@example.com> SIZE=7", 0, SMTP_PATH_OK,
	    "a.b-c+d@example.com", 1, 7, 0 },
	{ "<\"bill\\ing\"@example.com>", 0, SMTP_PATH_OK,
	    "billing@example.com", 0, 0, 0 },
	{ "<@r.example:\"billing\"@Example.COM>", 0, SMTP_PATH_OK,
	    "billing@Example.COM", 0, 0, 0 },
	{ "\"billing\"@example.com", 0, SMTP_PATH_OK,
	    "billing@example.com", 0, 0, 0 },
	{ "<\"a..b\"@example.com>", 0, SMTP_PATH_OK, "\"a..b\"@example.com",
	    0, 0, 0 },
	{ "<\".a\"@example.com>", 0, SMTP_PATH_OK, "\".a\"@example.com",
	    0, 0, 0 },
	{ "<\"a@b\"@example.com>", 0, SMTP_PATH_OK, "\"a@b\"@example.com",
	    0, 0, 0 },
	{ "<\"john doe\"@example.com>", 0, SMTP_PATH_OK,
	    "\"john doe\"@example.com", 0, 0, 0 },
	{ "<\"a\\\"b\\\\c\"@example.com>", 0, SMTP_PATH_OK,
	    "\"a\\\"b\\\\c\"@example.com", 0, 0, 0 },
	{ "<\"a>b\"@example.com> SIZE=5", 0, SMTP_PATH_OK,
	    "\"a>b\"@example.com", 1, 5, 0 },
	{ "<\"\"@example.com>", 0, SMTP_PATH_OK, "\"\"@example.com", 0, 0, 0 },
	{ "<\"a.\"@example.com>", 0, SMTP_PATH_OK, "\"a.\"@example.com",
	    0, 0, 0 },
	{ "<\"unterminated@example.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<\"a\"b@example.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<\"a\tb\"@example.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a\"b\"@example.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* address literals */
	{ "<a@[192.0.2.1]>", 0, SMTP_PATH_OK, "a@[192.0.2.1]", 0, 0, 0 },
	{ "<a@[0.0.0.0]>", 0, SMTP_PATH_OK, "a@[0.0.0.0]", 0, 0, 0 },
	{ "<a@[255.255.255.255]>", 0, SMTP_PATH_OK, "a@[255.255.255.255]",
	    0, 0, 0 },
	{ "<a@[256.0.0.1]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[1.2.3]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[1.2.3.4.5]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[1.2.3.0004]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[1..3.4]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[IPv6:2001:db8::1]>", 0, SMTP_PATH_OK, "a@[IPv6:2001:db8::1]",
	    0, 0, 0 },
	{ "<a@[ipv6:::1]>", 0, SMTP_PATH_OK, "a@[ipv6:::1]", 0, 0, 0 },
	{ "<a@[IPv6:::ffff:192.0.2.1]>", 0, SMTP_PATH_OK,
	    "a@[IPv6:::ffff:192.0.2.1]", 0, 0, 0 },
	{ "<a@[IPv6:2001:db8::g]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[IPv6:]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[2001:db8::1]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[x-tag:stuff]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[192.0.2.1>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@[192.0.2.1]x>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b.[192.0.2.1]>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* local part and domain syntax */
	{ "<.a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a.@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a..b@c>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a b@c>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a(b)@c>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a\x01@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b@c>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@-b.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b-.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b..com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@.b.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b.com.>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b_c.com>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<postmaster>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* bare addresses (Postfix leniency) */
	{ "a@example.com", 0, SMTP_PATH_OK, "a@example.com", 0, 0, 0 },
	{ "a@example.com SIZE=10", 0, SMTP_PATH_OK, "a@example.com", 1, 10,
	    0 },
	{ "a@example.com ", 0, SMTP_PATH_OK, "a@example.com", 0, 0, 0 },
	{ "a", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "a@b<c>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* brackets */
	{ "", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "   ", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ ">", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b SIZE=1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b>>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<<a@b>>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> >", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b>x", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b>SIZE=1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "< a@b>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b >", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* SIZE */
	{ "<a@b> SIZE=0", 0, SMTP_PATH_OK, "a@b", 1, 0, 0 },
	{ "<a@b> SIZE=10485760", 0, SMTP_PATH_OK, "a@b", 1, 10485760, 0 },
	{ "<a@b> size=007", 0, SMTP_PATH_OK, "a@b", 1, 7, 0 },
	{ "<a@b> SIZE=18446744073709551615", 0, SMTP_PATH_OK, "a@b", 1,
	    UINT64_MAX, 0 },
	{ "<a@b> SIZE=18446744073709551616", 0, SMTP_PATH_SYNTAX, NULL,
	    0, 0, 0 },
	{ "<a@b> SIZE=99999999999999999999999", 0, SMTP_PATH_SYNTAX, NULL,
	    0, 0, 0 },
	{ "<a@b> SIZE=12a", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> SIZE=-1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> SIZE=", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> SIZE", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> SIZE==1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> SIZE=1 SIZE=1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* BODY */
	{ "<a@b> BODY=7BIT", 0, SMTP_PATH_OK, "a@b", 0, 0, SMTP_BODY_7BIT },
	{ "<a@b> BODY=8BITMIME", 0, SMTP_PATH_OK, "a@b", 0, 0,
	    SMTP_BODY_8BITMIME },
	{ "<a@b> body=8bitmime", 0, SMTP_PATH_OK, "a@b", 0, 0,
	    SMTP_BODY_8BITMIME },
	{ "<a@b> SIZE=10 BODY=8BITMIME", 0, SMTP_PATH_OK, "a@b", 1, 10,
	    SMTP_BODY_8BITMIME },
	{ "<a@b>  BODY=8BITMIME   SIZE=10  ", 0, SMTP_PATH_OK, "a@b", 1, 10,
	    SMTP_BODY_8BITMIME },
	{ "<a@b> BODY=BINARYMIME", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> BODY=8BIT", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> BODY", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> BODY=8BITMIME BODY=7BIT", 0, SMTP_PATH_SYNTAX, NULL,
	    0, 0, 0 },
	{ "<a@b> BODY=8BITM\xc3\xa9", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* AUTH: checked for xtext, ignored */
	{ "<a@b> AUTH=<>", 0, SMTP_PATH_OK, "a@b", 0, 0, 0 },
	{ "<a@b> AUTH=joe+40example.com SIZE=3", 0, SMTP_PATH_OK, "a@b", 1, 3,
	    0 },
	{ "<a@b> auth=e+2bc", 0, SMTP_PATH_OK, "a@b", 0, 0, 0 },
	{ "<a@b> AUTH=joe+4", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> AUTH=a+", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> AUTH=a+zz", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> AUTH", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> AUTH=<> AUTH=<>", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* unknown and malformed parameters */
	{ "<a@b> RET=HDRS", 0, SMTP_PATH_UNKNOWN_PARAM, NULL, 0, 0, 0 },
	{ "<a@b> SMTPUTF8", 0, SMTP_PATH_UNKNOWN_PARAM, NULL, 0, 0, 0 },
	{ "<a@b> SIZE=1 X-FOO", 0, SMTP_PATH_UNKNOWN_PARAM, NULL, 0, 0, 0 },
	{ "<a@b> ENVID=x REQUIRETLS", 0, SMTP_PATH_UNKNOWN_PARAM, NULL,
	    0, 0, 0 },
	{ "<a@b> =x", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> -X=1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> X_Y=1", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> X=a=b", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	{ "<a@b> SIZE=1\t", 0, SMTP_PATH_SYNTAX, NULL, 0, 0, 0 },
	/* 8-bit addresses */
	{ "<j\xc3\xb6rg@example.com>", 0, SMTP_PATH_NON_ASCII, NULL, 0, 0, 0 },
	{ "<a@b\xc3\xa9.example>", 0, SMTP_PATH_NON_ASCII, NULL, 0, 0, 0 },
	{ "<\"\xff\"@example.com>", 0, SMTP_PATH_NON_ASCII, NULL, 0, 0, 0 },
	{ "\xc3\xa9@example.com", 0, SMTP_PATH_NON_ASCII, NULL, 0, 0, 0 },
	/* length: "<" 242 + "@example.com" ">" is 256 octets */
	{ "<#@example.com>", 242, SMTP_PATH_OK, NULL, 0, 0, 0 },
	{ "<#@example.com>", 243, SMTP_PATH_TOO_LONG, NULL, 0, 0, 0 },
	{ "#@example.com", 242, SMTP_PATH_OK, NULL, 0, 0, 0 },
	{ "#@example.com", 243, SMTP_PATH_TOO_LONG, NULL, 0, 0, 0 },
	{ "<#@example.com", 244, SMTP_PATH_TOO_LONG, NULL, 0, 0, 0 },
	{ "<@#.example:a@b>", 241, SMTP_PATH_OK, "a@b", 0, 0, 0 },
	{ "<@#.example:a@b>", 242, SMTP_PATH_TOO_LONG, NULL, 0, 0, 0 },
	{ "<\"#\"@example.com>", 241, SMTP_PATH_TOO_LONG, NULL, 0, 0, 0 },
	{ "<#@example.com> SIZE=1", 242, SMTP_PATH_OK, NULL, 1, 1, 0 },
	{ "<a@b> AUTH=#", 900, SMTP_PATH_OK, "a@b", 0, 0, 0 },
};

START_TEST(test_mail_args)
{
	struct smtp_mail_args m;
	const char *why = NULL;
	size_t len;
	char *args, *expect;

	args = expand(mail_cases[_i].args, strlen(mail_cases[_i].args),
	    mail_cases[_i].pad, &len);
	memset(&m, 'X', sizeof(m));
	ck_assert_int_eq(smtp_parse_mail_args(args, &m, &why),
	    mail_cases[_i].r);
	if (mail_cases[_i].r != SMTP_PATH_OK) {
		ck_assert_ptr_nonnull(why);
		ck_assert_int_gt(strlen(why), 0);
		free(args);
		return;
	}
	if (mail_cases[_i].address != NULL)
		ck_assert_str_eq(m.address, mail_cases[_i].address);
	else {
		/* A padded case: the address is the padded local part. */
		expect = expand("#@example.com", 13, mail_cases[_i].pad, &len);
		ck_assert_str_eq(m.address, expect);
		free(expect);
	}
	ck_assert_int_eq(m.has_size, mail_cases[_i].has_size);
	if (m.has_size)
		ck_assert_uint_eq(m.size, mail_cases[_i].size);
	ck_assert_int_eq(m.body, mail_cases[_i].body);
	/* why may be NULL */
	ck_assert_int_eq(smtp_parse_mail_args(args, &m, NULL),
	    mail_cases[_i].r);
	free(args);
}
END_TEST

START_TEST(test_mail_args_null)
{
	struct smtp_mail_args m;
	const char *why = NULL;

	ck_assert_int_eq(smtp_parse_mail_args(NULL, &m, &why),
	    SMTP_PATH_SYNTAX);
	ck_assert_ptr_nonnull(why);
	ck_assert_str_eq(m.address, "");
}
END_TEST

/* Together with smtp_parse_command, as the server will use them. */
START_TEST(test_mail_command_line)
{
	char line[] = "mail from: <\"a b\"@example.com> size=42";
	struct smtp_mail_args m;
	const char *args;

	ck_assert_int_eq(smtp_parse_command(line, strlen(line), &args),
	    SMTP_VERB_MAIL);
	ck_assert_int_eq(smtp_parse_mail_args(args, &m, NULL), SMTP_PATH_OK);
	ck_assert_str_eq(m.address, "\"a b\"@example.com");
	ck_assert_int_eq(m.has_size, 1);
	ck_assert_uint_eq(m.size, 42);
}
END_TEST

/*
 * RCPT TO: arguments.
 */

static const struct {
	const char *args;
	size_t pad;
	enum smtp_path_result r;
	const char *address;	/* if OK; NULL: "#@example.com" padded */
} rcpt_cases[] = {
	{ "<a@example.com>", 0, SMTP_PATH_OK, "a@example.com" },
	{ "<\"x y\"@example.com>", 0, SMTP_PATH_OK, "\"x y\"@example.com" },
	{ "<\"x.y\"@example.com>", 0, SMTP_PATH_OK, "x.y@example.com" },
	{ "<a@[192.0.2.1]>", 0, SMTP_PATH_OK, "a@[192.0.2.1]" },
	{ "<a@[IPv6:::1]>", 0, SMTP_PATH_OK, "a@[IPv6:::1]" },
	{ "<@r.example:a@b>", 0, SMTP_PATH_OK, "a@b" },
	{ "<a@b>   ", 0, SMTP_PATH_OK, "a@b" },
	{ "a@b", 0, SMTP_PATH_OK, "a@b" },
	{ "<postmaster>", 0, SMTP_PATH_OK, "postmaster" },
	{ "<Postmaster>", 0, SMTP_PATH_OK, "Postmaster" },
	{ "<POSTMASTER>", 0, SMTP_PATH_OK, "POSTMASTER" },
	{ "postmaster", 0, SMTP_PATH_OK, "postmaster" },
	{ "<postmaster@example.com>", 0, SMTP_PATH_OK,
	    "postmaster@example.com" },
	{ "<postmaster2>", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<\"postmaster\">", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<a>", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<>", 0, SMTP_PATH_SYNTAX, NULL },
	{ "", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<a@b", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<a@b>x", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<a..b@c>", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<a@b> NOTIFY=NEVER", 0, SMTP_PATH_UNKNOWN_PARAM, NULL },
	{ "<a@b> SIZE=1", 0, SMTP_PATH_UNKNOWN_PARAM, NULL },
	{ "<a@b> ORCPT=rfc822;a@b", 0, SMTP_PATH_UNKNOWN_PARAM, NULL },
	{ "<a@b> =x", 0, SMTP_PATH_SYNTAX, NULL },
	{ "<\xc3\xa9@b>", 0, SMTP_PATH_NON_ASCII, NULL },
	{ "<#@example.com>", 242, SMTP_PATH_OK, NULL },
	{ "<#@example.com>", 243, SMTP_PATH_TOO_LONG, NULL },
};

START_TEST(test_rcpt_args)
{
	char address[SMTP_PATH_MAX], *args, *expect;
	const char *why = NULL;
	size_t len;

	args = expand(rcpt_cases[_i].args, strlen(rcpt_cases[_i].args),
	    rcpt_cases[_i].pad, &len);
	memset(address, 'X', sizeof(address));
	ck_assert_int_eq(smtp_parse_rcpt_args(args, address, &why),
	    rcpt_cases[_i].r);
	if (rcpt_cases[_i].r != SMTP_PATH_OK) {
		ck_assert_ptr_nonnull(why);
		ck_assert_int_gt(strlen(why), 0);
	} else if (rcpt_cases[_i].address != NULL)
		ck_assert_str_eq(address, rcpt_cases[_i].address);
	else {
		expect = expand("#@example.com", 13, rcpt_cases[_i].pad, &len);
		ck_assert_str_eq(address, expect);
		free(expect);
	}
	ck_assert_int_eq(smtp_parse_rcpt_args(args, address, NULL),
	    rcpt_cases[_i].r);
	free(args);
}
END_TEST

START_TEST(test_rcpt_args_null)
{
	char address[SMTP_PATH_MAX];
	const char *why = NULL;

	ck_assert_int_eq(smtp_parse_rcpt_args(NULL, address, &why),
	    SMTP_PATH_SYNTAX);
	ck_assert_ptr_nonnull(why);
}
END_TEST

/*
 * Reply lines.
 */

static const struct {
	const char *line;
	int ret;
	int code;
	int last;
	const char *text;
} reply_cases[] = {
	{ "250 OK", 0, 250, 1, "OK" },
	{ "250-PIPELINING", 0, 250, 0, "PIPELINING" },
	{ "250-", 0, 250, 0, "" },
	{ "250", 0, 250, 1, "" },
	{ "250 ", 0, 250, 1, "" },
	{ "250  two spaces", 0, 250, 1, " two spaces" },
	{ "354 End data with <CR><LF>.<CR><LF>", 0, 354, 1,
	    "End data with <CR><LF>.<CR><LF>" },
	{ "421-4.4.2 Timeout", 0, 421, 0, "4.4.2 Timeout" },
	{ "554 Transaction failed: Duplicate header", 0, 554, 1,
	    "Transaction failed: Duplicate header" },
	{ "200 x", 0, 200, 1, "x" },
	{ "599 x", 0, 599, 1, "x" },
	{ "199 x", -1, 0, 0, NULL },
	{ "600 x", -1, 0, 0, NULL },
	{ "099 x", -1, 0, 0, NULL },
	{ "25 x", -1, 0, 0, NULL },
	{ "25", -1, 0, 0, NULL },
	{ "", -1, 0, 0, NULL },
	{ "2500 x", -1, 0, 0, NULL },
	{ "25a x", -1, 0, 0, NULL },
	{ "2a0 x", -1, 0, 0, NULL },
	{ "250x", -1, 0, 0, NULL },
	{ "250\tx", -1, 0, 0, NULL },
	{ "250_x", -1, 0, 0, NULL },
	{ " 250 x", -1, 0, 0, NULL },
	{ "abc", -1, 0, 0, NULL },
	{ "HTTP/1.1 400 Bad Request", -1, 0, 0, NULL },
};

START_TEST(test_reply_line)
{
	const char *line = reply_cases[_i].line, *text = NULL;
	size_t len = strlen(line);
	int code = -7, last = -7;

	ck_assert_int_eq(smtp_parse_reply_line(line, len, &code, &last,
	    &text), reply_cases[_i].ret);
	if (reply_cases[_i].ret != 0)
		return;
	ck_assert_int_eq(code, reply_cases[_i].code);
	ck_assert_int_eq(last, reply_cases[_i].last);
	ck_assert_ptr_nonnull(text);
	ck_assert(text >= line && text <= line + len);
	ck_assert_str_eq(text, reply_cases[_i].text);
}
END_TEST

/* len is honoured. */
START_TEST(test_reply_line_len)
{
	const char *text;
	int code, last;

	ck_assert_int_eq(smtp_parse_reply_line("250-x", 3, &code, &last,
	    &text), 0);
	ck_assert_int_eq(code, 250);
	ck_assert_int_eq(last, 1);
	ck_assert_int_eq(smtp_parse_reply_line("250 x", 2, &code, &last,
	    &text), -1);
	ck_assert_int_eq(smtp_parse_reply_line("250x", 4, &code, &last,
	    &text), -1);
}
END_TEST

/*
 * Enhanced status codes.
 */

static const struct {
	const char *text;
	size_t len;		/* 0: strlen(text) */
	size_t skip;
	const char *code;
} enh_cases[] = {
	{ "2.0.0 OK", 0, 6, "2.0.0" },
	{ "2.0.0", 0, 5, "2.0.0" },
	{ "4.4.2 Timeout", 0, 6, "4.4.2" },
	{ "5.7.1  two spaces", 0, 6, "5.7.1" },
	{ "5.123.456 x", 0, 10, "5.123.456" },
	{ "5.1.10", 0, 6, "5.1.10" },
	{ "5.1.10", 5, 5, "5.1.1" },
	{ "5.1.1 x", 5, 5, "5.1.1" },
	{ "5.1.1 x", 6, 6, "5.1.1" },
	{ "5.1234.1 x", 0, 0, "" },
	{ "5.1.1234 x", 0, 0, "" },
	{ "3.0.0 x", 0, 0, "" },
	{ "1.0.0 x", 0, 0, "" },
	{ "5.0 x", 0, 0, "" },
	{ "5..0 x", 0, 0, "" },
	{ "5.0. x", 0, 0, "" },
	{ ".0.0 x", 0, 0, "" },
	{ "50.0.0 x", 0, 0, "" },
	{ "5.0.0x", 0, 0, "" },
	{ "5.0.0.0 x", 0, 0, "" },
	{ "5.0.0\tx", 0, 0, "" },
	{ "5.a.0 x", 0, 0, "" },
	{ " 5.0.0 x", 0, 0, "" },
	{ "OK", 0, 0, "" },
	{ "", 0, 0, "" },
};

START_TEST(test_enhanced_code)
{
	char out[SMTP_ENHANCED_MAX];
	size_t len = enh_cases[_i].len ? enh_cases[_i].len :
	    strlen(enh_cases[_i].text);

	memset(out, 'X', sizeof(out));
	ck_assert_uint_eq(smtp_parse_enhanced_code(enh_cases[_i].text, len,
	    out), enh_cases[_i].skip);
	ck_assert_str_eq(out, enh_cases[_i].code);
}
END_TEST

/*
 * The DATA reader.
 */

static const struct data_case {
	const char *in;
	size_t inlen;
	const char *out;
	size_t outlen;
	unsigned flags;
	int done;
	size_t rest;		/* input left unconsumed (pipelined) */
	size_t pad;		/* see expand() */
} data_cases[] = {
	/* plain messages and the end marker */
	{ S(".\r\n"), S(""), 0, 1, 0, 0 },
	{ S("a\r\n.\r\n"), S("a\r\n"), 0, 1, 0, 0 },
	{ S("Subject: x\r\n\r\nbody\r\n.\r\n"),
	    S("Subject: x\r\n\r\nbody\r\n"), 0, 1, 0, 0 },
	{ S("\r\n.\r\n"), S("\r\n"), 0, 1, 0, 0 },
	{ S("a\r\n\r\n\r\n.\r\n"), S("a\r\n\r\n\r\n"), 0, 1, 0, 0 },
	{ S("a.\r\nb\r\n.\r\n"), S("a.\r\nb\r\n"), 0, 1, 0, 0 },
	{ S("a\r\n .\r\n.\r\n"), S("a\r\n .\r\n"), 0, 1, 0, 0 },
	{ S("a\0b\xff\r\n.\r\n"), S("a\0b\xff\r\n"), 0, 1, 0, 0 },
	/* not ended yet */
	{ S(""), S(""), 0, 0, 0, 0 },
	{ S("a"), S("a"), 0, 0, 0, 0 },
	{ S("a\r\nb"), S("a\r\nb"), 0, 0, 0, 0 },
	{ S("a\r\n"), S("a\r\n"), 0, 0, 0, 0 },
	{ S("a\r"), S("a\r"), 0, 0, 0, 0 },
	{ S("a\r\n."), S("a\r\n"), 0, 0, 0, 0 },
	{ S("a\r\n.\r"), S("a\r\n"), 0, 0, 0, 0 },
	{ S("a\r\n.."), S("a\r\n."), 0, 0, 0, 0 },
	{ S("."), S(""), 0, 0, 0, 0 },
	{ S(".\r"), S(""), 0, 0, 0, 0 },
	{ S("a\r\n.\r\r\n"), S("a\r\n\r\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_CR, 0, 0, 0 },
	/* dot-stuffing */
	{ S("..\r\n.\r\n"), S(".\r\n"), 0, 1, 0, 0 },
	{ S("..x\r\n.\r\n"), S(".x\r\n"), 0, 1, 0, 0 },
	{ S(".x\r\n.\r\n"), S("x\r\n"), 0, 1, 0, 0 },
	{ S(". \r\n.\r\n"), S(" \r\n"), 0, 1, 0, 0 },
	{ S("a\r\n..\r\n...\r\n....x\r\n.\r\n"),
	    S("a\r\n.\r\n..\r\n...x\r\n"), 0, 1, 0, 0 },
	{ S("..\r\n..\r\n.\r\n"), S(".\r\n.\r\n"), 0, 1, 0, 0 },
	{ S("a\r\n..\r\n"), S("a\r\n.\r\n"), 0, 0, 0, 0 },
	/* pipelined commands after the end */
	{ S(".\r\nQUIT\r\n"), S(""), 0, 1, 6, 0 },
	{ S("a\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
	    S("a\r\n"), 0, 1, 38, 0 },
	{ S("a\r\n.\r\n.\r\n"), S("a\r\n"), 0, 1, 3, 0 },
	{ S("a\r\n.\r\n\r\n"), S("a\r\n"), 0, 1, 2, 0 },
	{ S("a\r\n.\r\n\n"), S("a\r\n"), 0, 1, 1, 0 },
	/* bare LF and bare CR pass, flagged */
	{ S("a\nb\r\n.\r\n"), S("a\nb\r\n"), SMTP_DATA_BARE_LF, 1, 0, 0 },
	{ S("a\rb\r\n.\r\n"), S("a\rb\r\n"), SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("a\r\r\n.\r\n"), S("a\r\r\n"), SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("a\n\r\n.\r\n"), S("a\n\r\n"), SMTP_DATA_BARE_LF, 1, 0, 0 },
	{ S("\n\r\n.\r\n"), S("\n\r\n"), SMTP_DATA_BARE_LF, 1, 0, 0 },
	{ S("\r\r\n.\r\n"), S("\r\r\n"), SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("a\n\rb\r\n.\r\n"), S("a\n\rb\r\n"),
	    SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("a\r.\r\n.\r\n"), S("a\r.\r\n"), SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("\r.\r\n"), S("\r.\r\n"), SMTP_DATA_BARE_CR, 0, 0, 0 },
	{ S("a\n..\r\n.\r\n"), S("a\n..\r\n"), SMTP_DATA_BARE_LF, 1, 0, 0 },
	/* SMTP smuggling: a bare LF never starts a line */
	{ S("\n.\r\n"), S("\n.\r\n"), SMTP_DATA_BARE_LF, 0, 0, 0 },
	{ S("a\n.\r\n"), S("a\n.\r\n"), SMTP_DATA_BARE_LF, 0, 0, 0 },
	{ S("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"),
	    S("a\n.\r\nMAIL FROM:<x@y>\r\n"), SMTP_DATA_BARE_LF, 1, 0, 0 },
	{ S("a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n"),
	    S("a\r.\r\nMAIL FROM:<x@y>\r\n"), SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("a\r\n.\nMAIL FROM:<x@y>\r\n"),
	    S("a\r\n\nMAIL FROM:<x@y>\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF, 0, 0, 0 },
	/* loose ends: "." then bare LF or bare CR */
	{ S(".\n"), S("\n"), SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF,
	    0, 0, 0 },
	{ S("a\r\n.\n"), S("a\r\n\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF, 0, 0, 0 },
	{ S("a\n.\n"), S("a\n.\n"), SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF,
	    0, 0, 0 },
	{ S("a\n.\nb\r\n.\r\n"), S("a\n.\nb\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF, 1, 0, 0 },
	{ S(".\rX\r\n.\r\n"), S("\rX\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_CR, 1, 0, 0 },
	{ S("a\r\n.\r.\r\n"), S("a\r\n\r.\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_CR, 0, 0, 0 },
	{ S("a\n.\rb\r\n.\r\n"), S("a\n.\rb\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR,
	    1, 0, 0 },
	{ S("a\n.\r\r\n.\r\n"), S("a\n.\r\r\n"),
	    SMTP_DATA_LOOSE_END | SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR,
	    1, 0, 0 },
	{ S("a\n.x\n"), S("a\n.x\n"), SMTP_DATA_BARE_LF, 0, 0, 0 },
	{ S("a\r\n.x\n"), S("a\r\nx\n"), SMTP_DATA_BARE_LF, 0, 0, 0 },
	/* line length: at most 998 octets of content plus CRLF */
	{ S("#\r\n.\r\n"), S("#\r\n"), 0, 1, 0, 998 },
	{ S("#\r\n.\r\n"), S("#\r\n"), SMTP_DATA_LONG_LINE, 1, 0, 999 },
	{ S("#\r\n#\r\n.\r\n"), S("#\r\n#\r\n"), 0, 1, 0, 998 },
	{ S("a\r\n#\r\nb\r\n.\r\n"), S("a\r\n#\r\nb\r\n"),
	    SMTP_DATA_LONG_LINE, 1, 0, 999 },
	{ S(".#\r\n.\r\n"), S("#\r\n"), 0, 1, 0, 998 },
	{ S("..#\r\n.\r\n"), S(".#\r\n"), SMTP_DATA_LONG_LINE, 1, 0, 998 },
	{ S("#\r\r\n.\r\n"), S("#\r\r\n"), SMTP_DATA_BARE_CR, 1, 0, 997 },
	{ S("#\r\r\n.\r\n"), S("#\r\r\n"),
	    SMTP_DATA_BARE_CR | SMTP_DATA_LONG_LINE, 1, 0, 998 },
	{ S("#\n#\r\n.\r\n"), S("#\n#\r\n"),
	    SMTP_DATA_BARE_LF | SMTP_DATA_LONG_LINE, 1, 0, 499 },
	{ S("#\r\n.\r\n"), S("#\r\n"), SMTP_DATA_LONG_LINE, 1, 0, 5000 },
	{ S("#"), S("#"), SMTP_DATA_LONG_LINE, 0, 0, 1200 },
};

/* The result of feeding one case. */
struct data_result {
	char *out;
	size_t outlen, outsize;
	size_t calls;		/* emit() calls */
	size_t consumed;
	unsigned flags;
	uint64_t total;
	int done;
};

static void
collect(void *arg, const char *p, size_t n)
{
	struct data_result *res = arg;

	ck_assert_uint_gt(n, 0);
	if (res->outlen + n > res->outsize) {
		res->outsize = (res->outlen + n) * 2;
		res->out = realloc(res->out, res->outsize);
		ck_assert_ptr_nonnull(res->out);
	}
	memcpy(res->out + res->outlen, p, n);
	res->outlen += n;
	res->calls++;
}

/*
 * Feed in[0..len) to a new reader in pieces ending at cuts[0..ncuts)
 * (ascending, each <= len) and then at len.  Checks the calling contract
 * on the way: a piece is consumed whole unless the end was reached, and
 * after the end nothing more is consumed.
 */
static void
feed_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    struct data_result *res)
{
	struct smtp_data_reader r;
	size_t i, from = 0, to, n;
	int done;

	memset(res, 0, sizeof(*res));
	smtp_data_init(&r);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		done = -1;
		n = smtp_data_feed(&r, in + from, to - from, collect, res,
		    &done);
		ck_assert(done == 0 || done == 1);
		if (res->done) {
			ck_assert_uint_eq(n, 0);
			ck_assert_int_eq(done, 1);
		} else if (!done)
			ck_assert_uint_eq(n, to - from);
		else
			ck_assert_uint_le(n, to - from);
		res->consumed += n;
		res->done = done;
		from = to;
	}
	res->flags = r.flags;
	res->total = r.total;
}

static void
check_result(const struct data_result *res, const char *out, size_t outlen,
    const struct data_case *c, size_t inlen, const char *how)
{
	ck_assert_msg(res->outlen == outlen && (outlen == 0 ||
	    memcmp(res->out, out, outlen) == 0),
	    "case %td: %s: output differs (%zu octets, expected %zu)",
	    c - data_cases, how, res->outlen, outlen);
	ck_assert_msg(res->flags == c->flags,
	    "case %td: %s: flags %#x, expected %#x", c - data_cases, how,
	    res->flags, c->flags);
	ck_assert_msg(res->done == c->done, "case %td: %s: done %d",
	    c - data_cases, how, res->done);
	ck_assert_msg(res->consumed == inlen - c->rest,
	    "case %td: %s: consumed %zu, expected %zu", c - data_cases, how,
	    res->consumed, inlen - c->rest);
	ck_assert_uint_eq(res->total, outlen);
}

/* The case, padded. */
struct data_io {
	char *in, *out;
	size_t inlen, outlen;
};

static void
data_io(const struct data_case *c, struct data_io *io)
{
	io->in = expand(c->in, c->inlen, c->pad, &io->inlen);
	io->out = expand(c->out, c->outlen, c->pad, &io->outlen);
}

static void
data_io_free(struct data_io *io)
{
	free(io->in);
	free(io->out);
}

START_TEST(test_data_whole)
{
	const struct data_case *c = &data_cases[_i];
	struct data_result res;
	struct data_io io;

	data_io(c, &io);
	feed_pieces(io.in, io.inlen, NULL, 0, &res);
	check_result(&res, io.out, io.outlen, c, io.inlen, "whole");
	free(res.out);
	data_io_free(&io);
}
END_TEST

/* The most important property: the result does not depend on how the
 * input is cut into pieces.  Every single cut. */
START_TEST(test_data_split)
{
	const struct data_case *c = &data_cases[_i];
	struct data_result res;
	struct data_io io;
	char how[64];
	size_t k;

	data_io(c, &io);
	for (k = 0; k <= io.inlen; k++) {
		feed_pieces(io.in, io.inlen, &k, 1, &res);
		snprintf(how, sizeof(how), "cut at %zu", k);
		check_result(&res, io.out, io.outlen, c, io.inlen, how);
		free(res.out);
	}
	data_io_free(&io);
}
END_TEST

/* Every pair of cuts (short cases). */
START_TEST(test_data_split2)
{
	const struct data_case *c = &data_cases[_i];
	struct data_result res;
	struct data_io io;
	char how[64];
	size_t cuts[2];

	data_io(c, &io);
	if (io.inlen <= 200) {
		for (cuts[0] = 0; cuts[0] <= io.inlen; cuts[0]++) {
			for (cuts[1] = cuts[0]; cuts[1] <= io.inlen;
			    cuts[1]++) {
				feed_pieces(io.in, io.inlen, cuts, 2, &res);
				snprintf(how, sizeof(how), "cuts at %zu, %zu",
				    cuts[0], cuts[1]);
				check_result(&res, io.out, io.outlen, c,
				    io.inlen, how);
				free(res.out);
			}
		}
	}
	data_io_free(&io);
}
END_TEST

/* One byte at a time, with an empty piece between every two. */
START_TEST(test_data_bytewise)
{
	const struct data_case *c = &data_cases[_i];
	struct data_result res;
	struct data_io io;
	size_t *cuts, i;

	data_io(c, &io);
	cuts = malloc((2 * io.inlen + 1) * sizeof(*cuts));
	ck_assert_ptr_nonnull(cuts);
	for (i = 0; i < 2 * io.inlen + 1; i++)
		cuts[i] = (i + 1) / 2;
	feed_pieces(io.in, io.inlen, cuts, 2 * io.inlen + 1, &res);
	check_result(&res, io.out, io.outlen, c, io.inlen, "bytewise");
	free(res.out);
	free(cuts);
	data_io_free(&io);
}
END_TEST

/* The hot path emits whole runs, not bytes. */
START_TEST(test_data_runs)
{
	static const char msg[] = "From: a@b\r\nSubject: x\r\n\r\n"
	    "line one\r\nline two\r\n\r\nthe end\r\n.\r\nQUIT\r\n";
	struct data_result res;

	feed_pieces(msg, sizeof(msg) - 1, NULL, 0, &res);
	ck_assert_int_eq(res.done, 1);
	ck_assert_uint_eq(res.consumed, sizeof(msg) - 1 - 6);
	ck_assert_uint_eq(res.calls, 1);
	free(res.out);
}
END_TEST

/* After the end, the reader consumes nothing; a zeroed reader is a new
 * one. */
START_TEST(test_data_after_end)
{
	struct smtp_data_reader r;
	struct data_result res;
	int done = 0;

	memset(&res, 0, sizeof(res));
	memset(&r, 0, sizeof(r));
	ck_assert_uint_eq(smtp_data_feed(&r, "..\r\n.\r\nNOOP\r\n", 13,
	    collect, &res, &done), 7);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(res.outlen, 3);
	ck_assert_mem_eq(res.out, ".\r\n", 3);
	done = 0;
	ck_assert_uint_eq(smtp_data_feed(&r, "NOOP\r\n", 6, collect, &res,
	    &done), 0);
	ck_assert_int_eq(done, 1);
	done = 0;
	ck_assert_uint_eq(smtp_data_feed(&r, "", 0, collect, &res, &done), 0);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(res.outlen, 3);
	ck_assert_uint_eq(r.total, 3);

	/* smtp_data_init starts over */
	smtp_data_init(&r);
	ck_assert_uint_eq(r.total, 0);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(smtp_data_feed(&r, ".\r\n", 3, collect, &res,
	    &done), 3);
	ck_assert_int_eq(done, 1);
	free(res.out);
}
END_TEST

static Suite *
smtp_parse_suite(void)
{
	Suite *s = suite_create("smtp_parse");
	TCase *tc;

	tc = tcase_create("command");
	tcase_add_loop_test(tc, test_command, 0, NELEM(cmd_cases));
	tcase_add_test(tc, test_command_len);
	suite_add_tcase(s, tc);

	tc = tcase_create("mail");
	tcase_add_loop_test(tc, test_mail_args, 0, NELEM(mail_cases));
	tcase_add_test(tc, test_mail_args_null);
	tcase_add_test(tc, test_mail_command_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("rcpt");
	tcase_add_loop_test(tc, test_rcpt_args, 0, NELEM(rcpt_cases));
	tcase_add_test(tc, test_rcpt_args_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("reply");
	tcase_add_loop_test(tc, test_reply_line, 0, NELEM(reply_cases));
	tcase_add_test(tc, test_reply_line_len);
	tcase_add_loop_test(tc, test_enhanced_code, 0, NELEM(enh_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("data");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_data_whole, 0, NELEM(data_cases));
	tcase_add_loop_test(tc, test_data_split, 0, NELEM(data_cases));
	tcase_add_loop_test(tc, test_data_split2, 0, NELEM(data_cases));
	tcase_add_loop_test(tc, test_data_bytewise, 0, NELEM(data_cases));
	tcase_add_test(tc, test_data_runs);
	tcase_add_test(tc, test_data_after_end);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(smtp_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
