/*
 * account_check.h — `sesrelay check`: its report (text or --json) and
 * its account section (SES API v2: GetAccount, then GetEmailIdentity for
 * every identity the configuration sends as).
 *
 * The report: one line per step, "step status detail", status "ok",
 * "warn" (mail goes, but something is off, e.g. the sandbox or DKIM) or
 * "FAIL" (SES would not deliver, or the check could not be made); each
 * problem says what to do.  With --json nothing is printed until
 * check_report_finish, which prints one JSON object:
 *   {"ok": bool, "steps": [{"step","status","detail"}...],
 *    "account": {GetAccount's fields, "share_used"} or null,
 *    "identities": [{"identity","for","found","verified",
 *                    "verification","dkim","error"}...]}
 */
#ifndef SESRELAY_ACCOUNT_CHECK_H
#define SESRELAY_ACCOUNT_CHECK_H

struct event_base;
struct http_client;
struct config;
struct aws_credentials;
struct check_report;

struct check_report *check_report_new(int json);
void check_report_line(struct check_report *r, const char *step,
    const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Print the JSON object (with --json); the number of FAIL lines.  Frees
 * r. */
int check_report_finish(struct check_report *r);

/*
 * The account section, run to the end on base (which must have nothing
 * else to do).  creds NULL: the section says why it cannot run (why).
 */
void account_check_run(struct check_report *r, struct event_base *base,
    struct http_client *http, const struct config *cfg,
    struct aws_credentials *creds, const char *why);

#endif
