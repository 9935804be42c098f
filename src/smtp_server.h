/*
 * smtp_server.h — the inbound side: listeners and client sessions.
 *
 * Sessions speak ESMTP (RFC 5321) with PIPELINING, SIZE, 8BITMIME and
 * ENHANCEDSTATUSCODES.  A finished, checked message is handed on as the
 * mode says: in passthrough mode to the relay pool, and the client's reply
 * to the final dot is SES's; in spool mode to the spool.  Each session
 * keeps the configuration snapshot it began with.
 */
#ifndef SESRELAY_SMTP_SERVER_H
#define SESRELAY_SMTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct event_base;
struct config;
struct upstream;
struct spool;
struct queue;
struct smtp_server;

struct smtp_server *smtp_server_new(struct event_base *base,
    struct config *cfg, struct upstream *pool);
/* Spool mode: where finished messages go (set after the spool opens). */
/* The account watcher (NULL: none): passthrough answers MAIL with 451
 * 4.7.0 while the account cannot send (account_hold_reason), and RCPT
 * waits for account_check_rcpt in the sandbox. */
struct account;
void smtp_server_set_account(struct smtp_server *srv,
    struct account *account);
void smtp_server_set_spool(struct smtp_server *srv, struct spool *spool,
    struct queue *queue);
/* Bind and listen on every cfg->listen address (before dropping
 * privileges).  -1 and a one-line reason in err on failure. */
int smtp_server_listen(struct smtp_server *srv, char *err, size_t errlen);
/* Serve an already listening socket (socket activation: LISTEN_FDS);
 * text names it in logs.  The server owns fd from now on. */
void smtp_server_adopt_listener(struct smtp_server *srv, int fd,
    const char *text);
/* New sessions use cfg from now on. */
void smtp_server_set_config(struct smtp_server *srv, struct config *cfg);
/* Reload: stop listening where cfg->listen no longer says, start where it
 * newly does (an address that cannot be bound is logged and skipped);
 * sessions on a closed listener go on.  Sockets passed by the service
 * manager are left alone. */
void smtp_server_update_listeners(struct smtp_server *srv,
    const struct config *cfg);
/* Stop accepting; idle sessions get 421 now, busy ones after their
 * transaction.  drained is called once no session is left. */
void smtp_server_shutdown(struct smtp_server *srv, void (*drained)(void *),
    void *arg);
void smtp_server_free(struct smtp_server *srv);

/* Number of open client sessions. */
unsigned smtp_server_sessions(const struct smtp_server *srv);

/* What the inbound side has seen since start. */
struct smtp_server_stats {
	uint64_t connections;		/* accepted and served */
	uint64_t connections_refused;	/* allow list, max_clients */
	uint64_t accept_pauses;		/* accept() failed: out of
					 * descriptors or memory */
	uint64_t messages_accepted;	/* 250 at the final dot */
	uint64_t messages_refused;	/* 5xx at the final dot */
	uint64_t messages_deferred;	/* 4xx at the final dot */
	uint64_t recipients;		/* of accepted messages */
	uint64_t bytes;			/* of accepted messages, as received */
	struct stats_histogram reply_latency;	/* final dot -> our reply */
	/* sessions closed (421) for going over a per-session limit */
	uint64_t closed_errors;		/* failed commands */
	uint64_t closed_unknown;	/* unknown commands */
	uint64_t closed_junk;		/* NOOP, VRFY, EXPN, HELP */
	uint64_t closed_rset;		/* RSET */
	uint64_t closed_transactions;	/* MAIL commands */
};
const struct smtp_server_stats *smtp_server_stats(const struct smtp_server *srv);

#endif
