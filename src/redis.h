/*-------------------------------------------------------------------------
 *
 * redis.h
 *		The Redis second level: the client (redis.c) and the subscriber
 *		worker (redis_worker.c).  Only these two files include hiredis.
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

/* Where qcache.redis_url points. */
typedef struct QcRedisTarget
{
	bool		is_unix;
	char		host[256];
	int			port;
	char		path[MAXPGPATH];
	char		user[128];
	char		password[256];
	int			db;
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
	uint32		generation;		/* settings it was made under */
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

extern bool qc_redis_parse_url(const char *url, QcRedisTarget *t,
							   const char **why);
extern const char *qc_redis_where(const QcRedisTarget *t);
extern bool qc_redis_connect(QcRedisConn *conn);
extern void qc_redis_disconnect(QcRedisConn *conn);
extern bool qc_redis_run(QcRedisConn *conn, int n, QcRedisCmd *cmds,
						 redisReply **replies);
extern void qc_redis_free_replies(int n, redisReply **replies);
extern void qc_cmd_init(QcRedisCmd *cmd, int cap);
extern void qc_cmd_arg(QcRedisCmd *cmd, const char *s, size_t len);
extern void qc_cmd_str(QcRedisCmd *cmd, const char *s);
extern void qc_l2_warn(int elevel, const char *what, const char *detail);
extern bool qc_l2_global_stamp(QcRedisConn *conn, TimestampTz stamp);
extern uint32 qc_redis_generation(void);

#endif							/* QCACHE_REDIS_H */
