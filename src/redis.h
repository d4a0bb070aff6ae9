/*-------------------------------------------------------------------------
 *
 * redis.h
 *		The Redis second level: the transport (redis_conn.c), the layout
 *		and operations (redis.c), the durable record of what this node
 *		owes Redis (redis_debt.c) and the subscriber worker
 *		(redis_worker.c).  Only these files include hiredis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef QCACHE_REDIS_H
#define QCACHE_REDIS_H

#include <hiredis/hiredis.h>

#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "qcache.h"

#define QC_MAX_SENTINELS		8
#define QC_MAX_SCRIPTS			4

/*
 * Where qcache.redis_url points.  With sentinels, host and port are the
 * master's address as the sentinels last gave it.
 */
typedef struct QcRedisTarget
{
	bool		is_unix;
	bool		sentinel;
	char		host[256];
	int			port;
	char		path[MAXPGPATH];
	char		user[128];
	char		password[256];
	int			db;
	char		master[128];
	int			nsentinels;
	struct
	{
		char		host[256];
		int			port;
	}			sentinels[QC_MAX_SENTINELS];
} QcRedisTarget;

/*
 * A connection, in non-blocking mode, with the WaitEventSet that waits on
 * its socket and the latch.  busy: a call started and did not finish, so
 * the connection must not be used again.
 */
typedef struct QcRedisConn
{
	redisContext *ctx;
	WaitEventSet *wes;
	int			sock_pos;
	uint32		sock_events;	/* what sock_pos waits for now */
	bool		busy;
	uint64		identity;		/* qc_redis_identity it was made under */
	int			timeout_ms;
	QcRedisTarget target;
	char		errstr[256];
} QcRedisConn;

/* One command: argc arguments of argvlen bytes each (binary-safe). */
typedef struct QcRedisCmd
{
	int			argc;
	int			cap;
	const char **argv;
	size_t	   *argvlen;
} QcRedisCmd;

/*
 * One item this node owes Redis (redis_debt.c): kind 'k' key, 't' tag,
 * 'p' prefix, 'c' database, 'P' purge of a database's values; db is the
 * database's name, str the key, tag or prefix in UTF-8.
 */
#define QC_L2_DEBT_ITEMS		1024
#define QC_L2_DEBT_STR			1024

typedef struct QcL2Debt
{
	uint64		seq;			/* when it was last owed */
	char		kind;
	uint16		len;
	char		db[NAMEDATALEN];
	char		str[QC_L2_DEBT_STR];
} QcL2Debt;

/* The states of the Redis level, as qcache_redis shows them. */
#define QC_L2_STATE_OFF			0
#define QC_L2_STATE_UP			1
#define QC_L2_STATE_DOWN		2
#define QC_L2_STATE_RECOVERING	3

/* redis_debt.c */
extern Size qc_l2_shmem_size(void);
extern void qc_l2_owe(char kind, const char *db, const char *str, size_t len);
extern int	qc_l2_debt_snapshot(QcL2Debt **out, bool *global, uint64 *upto);
extern bool qc_l2_paid(uint64 upto);
extern uint64 qc_l2_target(void);
extern void qc_l2_move_target(uint64 identity);
extern bool qc_l2_on_target(void);
extern void qc_l2_set_state(int state);
extern void qc_l2_set_error(const char *msg);
extern void qc_l2_set_worker_latch(Latch *latch);

/* redis_conn.c */
extern bool qc_redis_parse_url(const char *url, QcRedisTarget *t,
							   const char **why);
extern const char *qc_redis_where(const QcRedisTarget *t);
extern uint64 qc_redis_identity(const char *url, const char *prefix);
extern uint64 qc_redis_current_identity(void);
extern char *qc_redact(char *msg);
extern bool qc_holds_secret(const char *s);
extern bool qc_redis_connect(QcRedisConn *conn, const char *const *scripts,
							 int n_scripts, char (*shas)[41]);
extern void qc_redis_disconnect(QcRedisConn *conn);
extern bool qc_redis_run(QcRedisConn *conn, int n, QcRedisCmd *cmds,
						 redisReply **replies);
extern void qc_redis_free_replies(int n, redisReply **replies);
extern void qc_cmd_init(QcRedisCmd *cmd, int cap);
extern void qc_cmd_arg(QcRedisCmd *cmd, const char *s, size_t len);
extern void qc_cmd_str(QcRedisCmd *cmd, const char *s);
extern void qc_l2_warn(int elevel, const char *what, const char *detail);

/* redis.c, for the worker */
extern bool qc_l2_connect(QcRedisConn *conn);
extern bool qc_l2_pay(QcRedisConn *conn, const QcL2Debt *items, int n,
					  bool owes_all);
extern void qc_l2_note_error(const char *what, const QcRedisConn *conn);

#endif							/* QCACHE_REDIS_H */
