/*-------------------------------------------------------------------------
 *
 * redis_conn.c
 *		The transport of the Redis second level: qcache.redis_url, the
 *		connection (non-blocking, bounded, interruptible), Redis Sentinel,
 *		and the log filter that keeps passwords out of the server log.
 *		What qcache does with a connection is in redis.c.
 *
 * A connection is a hiredis context in non-blocking mode: we write with
 * redisBufferWrite and read with redisBufferRead, and wait in a
 * WaitEventSet on the socket and the latch.  So every call is bounded by
 * qcache.redis_timeout, a cancel or terminate request is served while
 * waiting, and postmaster death ends the wait.  A call that did not finish
 * (timeout, error, or an interrupt thrown from the wait) leaves the
 * connection marked busy; its next user drops it and connects afresh, so a
 * late reply can never be read as another call's.  The replies of a
 * pipelined call that an interrupt ends half-way are freed before the
 * error goes on (PG_TRY in qc_redis_run).  No qcache lock is held while we
 * talk to Redis.
 *
 * Sentinel.  With redis-sentinel://host:port[,host:port...]/master[/db],
 * every connect asks the sentinels in turn for the master's address
 * (SENTINEL get-master-addr-by-name) and then checks with ROLE that the
 * server it reached is a master.  A failover therefore shows as a failed
 * call (the old master is gone) or a READONLY reply (it came back as a
 * replica), either of which drops the connection; the next connect
 * finds the new master.  The subscriber worker treats the new master's
 * run_id as a restart: it may lack writes the old one acknowledged.
 *
 * The identity of a target (everything but the credentials, plus
 * qcache.redis_prefix) is hashed: it tells a reload that changes nothing
 * from one that moves the node to another key space (redis.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "qcache.h"
#include "redis.h"

/* GUC variables */
char	   *qc_redis_url = NULL;
char	   *qc_redis_prefix = NULL;
int			qc_l1_ttl = 60;
int			qc_redis_timeout = 50;
int			qc_debug_l2_copy_delay = 0;

/* Bumped by the assign hooks: the identity must be computed again. */
static uint32 config_generation = 0;

/* ---------- the URL ---------- */

/* Parse "host[:port]" of len bytes into host/port.  False if malformed. */
static bool
qc_parse_hostport(const char *p, size_t len, char *host, size_t hostsz,
				  int *port, const char **why)
{
	const char *colon = memchr(p, ':', len);
	size_t		hlen = colon ? (size_t) (colon - p) : len;

	if (hlen == 0 || hlen >= hostsz)
	{
		*why = "the host is missing or too long";
		return false;
	}
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	if (colon != NULL)
	{
		long		v = 0;
		const char *q;

		if (colon + 1 == p + len)
		{
			*why = "the port must be between 1 and 65535";
			return false;
		}
		for (q = colon + 1; q < p + len; q++)
		{
			if (*q < '0' || *q > '9' || v > 65535)
			{
				*why = "the port must be between 1 and 65535";
				return false;
			}
			v = v * 10 + (*q - '0');
		}
		if (v <= 0 || v > 65535)
		{
			*why = "the port must be between 1 and 65535";
			return false;
		}
		*port = (int) v;
	}
	return true;
}

/* Parse a non-negative database number that ends the string. */
static bool
qc_parse_db(const char *p, int *db, const char **why)
{
	char	   *e;
	long		v;

	errno = 0;
	v = strtol(p, &e, 10);
	if (*e != '\0' || e == p || v < 0 || v > INT_MAX || errno != 0)
	{
		*why = "the database number must be a non-negative integer";
		return false;
	}
	*db = (int) v;
	return true;
}

/*
 * Parse qcache.redis_url into t.  Forms: redis://[[user]:password@]host
 * [:port][/db], unix://[[user]:password@]/path[?db=N], /path, and
 * redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master
 * [/db] (the credentials are the master's; sentinels are asked without).
 * Schemes are case-insensitive.  On error returns false and sets *why
 * (which never contains the password).
 */
bool
qc_redis_parse_url(const char *url, QcRedisTarget *t, const char **why)
{
	const char *p;
	const char *at;
	bool		is_unix = false;
	bool		sentinel = false;

	memset(t, 0, sizeof(*t));
	t->port = 6379;
	*why = NULL;
	if (url == NULL || url[0] == '\0')
	{
		*why = "the URL is empty";
		return false;
	}
	if (url[0] == '/')
	{
		t->is_unix = true;
		if (strlen(url) >= sizeof(t->path))
		{
			*why = "the socket path is too long";
			return false;
		}
		strlcpy(t->path, url, sizeof(t->path));
		return true;
	}
	if (pg_strncasecmp(url, "redis://", 8) == 0)
		p = url + 8;
	else if (pg_strncasecmp(url, "unix://", 7) == 0)
	{
		p = url + 7;
		is_unix = true;
	}
	else if (pg_strncasecmp(url, "redis-sentinel://", 17) == 0)
	{
		p = url + 17;
		sentinel = true;
	}
	else if (pg_strncasecmp(url, "rediss://", 9) == 0)
	{
		*why = "TLS (rediss://) is not supported: the hiredis library qcache is built with (0.14) has no TLS";
		return false;
	}
	else
	{
		*why = "it must start with redis://, redis-sentinel://, unix:// or /";
		return false;
	}

	/*
	 * userinfo: everything up to the last '@' (a password may hold '@' and
	 * '/'; a host, port or database number cannot hold '@'), or for unix://
	 * up to the last "@/".
	 */
	if (is_unix)
	{
		const char *q;

		at = NULL;
		for (q = strstr(p, "@/"); q != NULL; q = strstr(q + 1, "@/"))
			at = q;
	}
	else
		at = strrchr(p, '@');
	if (at != NULL)
	{
		const char *colon = memchr(p, ':', at - p);

		if (colon == NULL)
		{
			*why = "the user information must be [user]:password";
			return false;
		}
		if ((size_t) (colon - p) >= sizeof(t->user) ||
			(size_t) (at - colon - 1) >= sizeof(t->password))
		{
			*why = "the user name or password is too long";
			return false;
		}
		memcpy(t->user, p, colon - p);
		memcpy(t->password, colon + 1, at - colon - 1);
		p = at + 1;
	}

	if (is_unix)
	{
		const char *q = strchr(p, '?');
		size_t		len = q ? (size_t) (q - p) : strlen(p);

		if (p[0] != '/' || len >= sizeof(t->path))
		{
			*why = "unix:// must be followed by an absolute socket path";
			return false;
		}
		t->is_unix = true;
		memcpy(t->path, p, len);
		if (q != NULL)
		{
			if (strncmp(q, "?db=", 4) != 0)
			{
				*why = "the only option of a unix:// URL is ?db=N";
				return false;
			}
			return qc_parse_db(q + 4, &t->db, why);
		}
		return true;
	}
	else if (sentinel)
	{
		const char *slash = strchr(p, '/');
		const char *h = p;
		const char *m;
		const char *mend;

		if (slash == NULL)
		{
			*why = "a redis-sentinel:// URL must name the master: redis-sentinel://host:port[,host:port...]/master[/db]";
			return false;
		}
		while (h < slash)
		{
			const char *comma = memchr(h, ',', slash - h);
			const char *hend = comma ? comma : slash;

			if (t->nsentinels >= QC_MAX_SENTINELS)
			{
				*why = "too many sentinels (at most 8)";
				return false;
			}
			t->sentinels[t->nsentinels].port = 26379;
			if (!qc_parse_hostport(h, hend - h, t->sentinels[t->nsentinels].host,
								   sizeof(t->sentinels[0].host),
								   &t->sentinels[t->nsentinels].port, why))
				return false;
			t->nsentinels++;
			h = comma ? comma + 1 : slash;
		}
		if (t->nsentinels == 0)
		{
			*why = "a redis-sentinel:// URL needs at least one sentinel";
			return false;
		}
		m = slash + 1;
		mend = strchr(m, '/');
		if (mend == NULL)
			mend = m + strlen(m);
		if (mend == m || (size_t) (mend - m) >= sizeof(t->master))
		{
			*why = "the master name is missing or too long";
			return false;
		}
		memcpy(t->master, m, mend - m);
		t->sentinel = true;
		t->host[0] = '\0';
		if (*mend == '/' && mend[1] != '\0')
			return qc_parse_db(mend + 1, &t->db, why);
		return true;
	}
	else
	{
		const char *hend = p + strcspn(p, "/");

		if (!qc_parse_hostport(p, hend - p, t->host, sizeof(t->host),
							   &t->port, why))
			return false;
		p = hend;
		if (*p == '/' && p[1] != '\0')
			return qc_parse_db(p + 1, &t->db, why);
		return true;
	}
}

/* Where the target is, for messages: never the password. */
const char *
qc_redis_where(const QcRedisTarget *t)
{
	static char buf[MAXPGPATH + 160];

	if (t->is_unix)
		snprintf(buf, sizeof(buf), "unix socket %s", t->path);
	else if (t->sentinel && t->host[0] != '\0')
		snprintf(buf, sizeof(buf), "%s:%d (master \"%s\" of the sentinels)",
				 t->host, t->port, t->master);
	else if (t->sentinel)
		snprintf(buf, sizeof(buf), "master \"%s\" of the sentinels at %s:%d",
				 t->master, t->sentinels[0].host, t->sentinels[0].port);
	else
		snprintf(buf, sizeof(buf), "%s:%d", t->host, t->port);
	return buf;
}

/*
 * The identity of a target and a prefix: a hash of everything that
 * decides which keys qcache reads and writes (server or sentinels and
 * master, database number, prefix), not the credentials or the timeout.
 * 0 only for "no Redis level".
 */
uint64
qc_redis_identity(const char *url, const char *prefix)
{
	QcRedisTarget t;
	const char *why;
	StringInfoData buf;
	uint64		h;
	int			i;

	if (url == NULL || url[0] == '\0' || !qc_redis_parse_url(url, &t, &why))
		return 0;
	initStringInfo(&buf);
	if (t.is_unix)
		appendStringInfo(&buf, "u%s", t.path);
	else if (t.sentinel)
	{
		appendStringInfo(&buf, "s%s", t.master);
		for (i = 0; i < t.nsentinels; i++)
			appendStringInfo(&buf, ",%s:%d", t.sentinels[i].host,
							 t.sentinels[i].port);
	}
	else
		appendStringInfo(&buf, "h%s:%d", t.host, t.port);
	appendStringInfo(&buf, "/%d", t.db);
	appendStringInfoChar(&buf, '\0');
	appendStringInfoString(&buf, prefix ? prefix : "");
	h = hash_bytes_extended((const unsigned char *) buf.data, buf.len, 0x71cac4e);
	pfree(buf.data);
	return h == 0 ? 1 : h;
}

/* GUC check hook of qcache.redis_url. */
bool
qc_redis_url_check(char **newval, void **extra, GucSource source)
{
	QcRedisTarget t;
	const char *why;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!qc_redis_parse_url(*newval, &t, &why))
	{
		GUC_check_errdetail("qcache.redis_url is not valid: %s.", why);
		GUC_check_errhint("Use redis://[:password@]host:port[/db], redis-sentinel://host:port[,host:port...]/master[/db], unix:///path/to/socket[?db=N] or /path/to/socket.");
		return false;
	}
	return true;
}

/*
 * Assign hook of the settings a connection depends on.  It runs on every
 * reload, also when nothing changed: callers compare identities
 * (qc_redis_current_identity), not this counter.
 */
void
qc_redis_config_assign(const char *newval, void *extra)
{
	config_generation++;
}

/* Assign hook of qcache.redis_timeout: connections read it on each call. */
void
qc_redis_timeout_assign(int newval, void *extra)
{
}

/* The identity of this process's current settings, cached. */
uint64
qc_redis_current_identity(void)
{
	static uint32 gen = 0;
	static uint64 id = 0;
	static bool valid = false;

	if (!valid || gen != config_generation)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		id = qc_redis_identity(qc_redis_url, qc_redis_prefix);
		MemoryContextSwitchTo(old);
		gen = config_generation;
		valid = true;
	}
	return id;
}

/* ---------- the log filter ---------- */

/*
 * emit_log_hook: hide the user information (password) of any URL of
 * Redis in a message, such as the postmaster's "parameter ... changed to
 * ..." on reload, or a logged ALTER SYSTEM.  The schemes are matched in
 * any case.  A password may hold blanks, quotes and '@', so the masked
 * part runs from the scheme to the last '@' before the next URL (or the
 * end of the message): it may mask more than the password, never less.
 */
static emit_log_hook_type prev_emit_log_hook = NULL;

static const char *const qc_schemes[] = {
	"redis-sentinel://", "rediss://", "redis://", "unix://"
};

/* Length of the URL scheme at s (case-insensitive), or 0. */
static size_t
qc_scheme_at(const char *s)
{
	size_t		i;

	for (i = 0; i < lengthof(qc_schemes); i++)
	{
		size_t		sl = strlen(qc_schemes[i]);

		if (pg_strncasecmp(s, qc_schemes[i], sl) == 0)
			return sl;
	}
	return 0;
}

char *
qc_redact(char *msg)
{
	StringInfoData buf;
	const char *p = msg;
	bool		changed = false;

	if (msg == NULL || strstr(msg, "://") == NULL || strchr(msg, '@') == NULL)
		return msg;
	initStringInfo(&buf);
	while (*p)
	{
		size_t		sl = qc_scheme_at(p);
		const char *u;
		const char *at = NULL;

		if (sl == 0)
		{
			appendStringInfoChar(&buf, *p++);
			continue;
		}
		for (u = p + sl; *u && qc_scheme_at(u) == 0; u++)
			if (*u == '@')
				at = u;
		appendBinaryStringInfo(&buf, p, sl);
		if (at != NULL)
		{
			appendStringInfoString(&buf, "********");
			p = at;
			changed = true;
		}
		else
			p += sl;
	}
	if (!changed)
	{
		pfree(buf.data);
		return msg;
	}
	return buf.data;
}

/* Does a text hold a URL of Redis with user information? */
bool
qc_holds_secret(const char *s)
{
	const char *p;

	if (s == NULL || strchr(s, '@') == NULL || strstr(s, "://") == NULL)
		return false;
	for (p = s; *p; p++)
		if (qc_scheme_at(p) != 0)
			return true;
	return false;
}

static void
qc_emit_log(ErrorData *edata)
{
	edata->message = qc_redact(edata->message);
	edata->detail = qc_redact(edata->detail);
	edata->detail_log = qc_redact(edata->detail_log);
	edata->context = qc_redact(edata->context);
	edata->hint = qc_redact(edata->hint);
	edata->internalquery = qc_redact(edata->internalquery);
	/* the STATEMENT: line is printed from the query text itself */
	if (qc_holds_secret(debug_query_string))
		edata->hide_stmt = true;
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Install the log filter; from _PG_init. */
void
qc_l2_install_log_filter(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = qc_emit_log;
}

/* ---------- the connection ---------- */

/* Drop a connection. */
void
qc_redis_disconnect(QcRedisConn *conn)
{
	if (conn->wes)
		FreeWaitEventSet(conn->wes);
	conn->wes = NULL;
	if (conn->ctx)
		redisFree(conn->ctx);
	conn->ctx = NULL;
	conn->busy = false;
}

/* Milliseconds left until deadline (at least 0). */
static long
qc_ms_left(TimestampTz deadline)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now >= deadline)
		return 0;
	return (long) ((deadline - now + 999) / 1000);
}

/*
 * Wait until the socket is ready for `events` or the deadline passes.
 * Serves interrupts when the latch is set (an error may be thrown from
 * here; the connection is then left busy).  True if ready.
 */
static bool
qc_redis_wait(QcRedisConn *conn, uint32 events, TimestampTz deadline)
{
	for (;;)
	{
		WaitEvent	ev;
		long		left = qc_ms_left(deadline);
		int			n;

		if (left <= 0)
		{
			snprintf(conn->errstr, sizeof(conn->errstr), "timed out after %d ms",
					 conn->timeout_ms);
			return false;
		}
		if (events != conn->sock_events)
		{
			/* an epoll_ctl: only when the direction changes */
			ModifyWaitEvent(conn->wes, conn->sock_pos, events, NULL);
			conn->sock_events = events;
		}
		n = WaitEventSetWait(conn->wes, left, &ev, 1, PG_WAIT_EXTENSION);
		if (n == 0)
			continue;			/* the loop checks the deadline */
		if (ev.events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (ev.events & events)
			return true;
	}
}

/* Send what hiredis has buffered. */
static bool
qc_redis_flush(QcRedisConn *conn, TimestampTz deadline)
{
	int			done = 0;

	for (;;)
	{
		if (redisBufferWrite(conn->ctx, &done) == REDIS_ERR)
		{
			strlcpy(conn->errstr, conn->ctx->errstr, sizeof(conn->errstr));
			return false;
		}
		if (done)
			return true;
		if (!qc_redis_wait(conn, WL_SOCKET_WRITEABLE, deadline))
			return false;
	}
}

/* Read one reply. */
static redisReply *
qc_redis_read(QcRedisConn *conn, TimestampTz deadline)
{
	for (;;)
	{
		void	   *r = NULL;

		if (redisGetReplyFromReader(conn->ctx, &r) == REDIS_ERR)
		{
			strlcpy(conn->errstr, conn->ctx->errstr, sizeof(conn->errstr));
			return NULL;
		}
		if (r != NULL)
			return (redisReply *) r;
		if (!qc_redis_wait(conn, WL_SOCKET_READABLE, deadline))
			return NULL;
		if (redisBufferRead(conn->ctx) == REDIS_ERR)
		{
			strlcpy(conn->errstr, conn->ctx->errstr, sizeof(conn->errstr));
			return NULL;
		}
	}
}

/*
 * Run n pipelined commands and put their replies in replies[] (the caller
 * frees them with qc_redis_free_replies).  False on a connection failure,
 * timeout or error, after which the connection is dropped and no reply is
 * left to free.  Redis error replies are replies, not failures, except
 * READONLY (we reached a replica: a failover happened), which drops the
 * connection like a failure.  An interrupt thrown while waiting frees the
 * replies read so far and leaves the connection busy.
 */
bool
qc_redis_run(QcRedisConn *conn, int n, QcRedisCmd *cmds, redisReply **replies)
{
	TimestampTz deadline = GetCurrentTimestamp() +
	(TimestampTz) conn->timeout_ms * 1000;
	volatile int got = 0;
	int			i;

	for (i = 0; i < n; i++)
		replies[i] = NULL;
	if (conn->ctx == NULL)
	{
		strlcpy(conn->errstr, "not connected", sizeof(conn->errstr));
		return false;
	}
	for (i = 0; i < n; i++)
		if (redisAppendCommandArgv(conn->ctx, cmds[i].argc, cmds[i].argv,
								   cmds[i].argvlen) != REDIS_OK)
		{
			strlcpy(conn->errstr, "out of memory", sizeof(conn->errstr));
			qc_redis_disconnect(conn);
			return false;
		}
	conn->busy = true;
	PG_TRY();
	{
		if (!qc_redis_flush(conn, deadline))
		{
			qc_redis_disconnect(conn);
			got = -1;
		}
		while (got >= 0 && got < n)
		{
			replies[got] = qc_redis_read(conn, deadline);
			if (replies[got] == NULL)
			{
				qc_redis_free_replies(got, replies);
				qc_redis_disconnect(conn);
				got = -1;
				break;
			}
			got++;
		}
	}
	PG_CATCH();
	{
		/* an interrupt: the replies read so far are ours to free */
		qc_redis_free_replies(got, replies);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (got < 0)
		return false;
	conn->busy = false;
	for (i = 0; i < n; i++)
		if (replies[i]->type == REDIS_REPLY_ERROR &&
			strncmp(replies[i]->str, "READONLY", 8) == 0)
		{
			strlcpy(conn->errstr, "the server is a replica now (READONLY)",
					sizeof(conn->errstr));
			qc_redis_free_replies(n, replies);
			qc_redis_disconnect(conn);
			return false;
		}
	return true;
}

/* Free the replies of qc_redis_run. */
void
qc_redis_free_replies(int n, redisReply **replies)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (replies[i])
			freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
}

/* Start a command of at most cap arguments. */
void
qc_cmd_init(QcRedisCmd *cmd, int cap)
{
	cmd->argc = 0;
	cmd->cap = cap;
	cmd->argv = palloc(sizeof(char *) * cap);
	cmd->argvlen = palloc(sizeof(size_t) * cap);
}

/*
 * Append an argument; the bytes must outlive the command.  The arrays grow
 * if a caller's cap was too small (one was: the set script's opaque field
 * overran by one slot), so a miscount costs a repalloc, never memory.
 */
void
qc_cmd_arg(QcRedisCmd *cmd, const char *s, size_t len)
{
	if (cmd->argc >= cmd->cap)
	{
		cmd->cap = cmd->cap * 2 + 4;
		cmd->argv = repalloc(cmd->argv, sizeof(char *) * cmd->cap);
		cmd->argvlen = repalloc(cmd->argvlen, sizeof(size_t) * cmd->cap);
	}
	cmd->argv[cmd->argc] = s;
	cmd->argvlen[cmd->argc] = len;
	cmd->argc++;
}

void
qc_cmd_str(QcRedisCmd *cmd, const char *s)
{
	qc_cmd_arg(cmd, s, strlen(s));
}

/*
 * Open the socket of conn to host:port (or the unix socket) and wait until
 * it is connected, within deadline.  False (with conn->errstr) on failure.
 */
static bool
qc_redis_open(QcRedisConn *conn, bool is_unix, const char *host, int port,
			  const char *path, TimestampTz deadline)
{
	int			err = 0;
	socklen_t	errlen = sizeof(err);

	qc_redis_disconnect(conn);
	if (is_unix)
		conn->ctx = redisConnectUnixNonBlock(path);
	else
		conn->ctx = redisConnectNonBlock(host, port);
	if (conn->ctx == NULL || conn->ctx->err)
	{
		strlcpy(conn->errstr, conn->ctx ? conn->ctx->errstr : "out of memory",
				sizeof(conn->errstr));
		qc_redis_disconnect(conn);
		return false;
	}
	conn->wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(conn->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(conn->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	conn->sock_pos = AddWaitEventToSet(conn->wes, WL_SOCKET_WRITEABLE,
									   conn->ctx->fd, NULL, NULL);
	conn->sock_events = WL_SOCKET_WRITEABLE;
	conn->busy = true;
	if (!qc_redis_wait(conn, WL_SOCKET_WRITEABLE, deadline))
	{
		qc_redis_disconnect(conn);
		return false;
	}
	if (getsockopt(conn->ctx->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0 ||
		err != 0)
	{
		strlcpy(conn->errstr, err ? strerror(err) : "connect failed",
				sizeof(conn->errstr));
		qc_redis_disconnect(conn);
		return false;
	}
	conn->busy = false;
	return true;
}

/*
 * Ask the sentinels, in turn, for the address of the master; fill
 * conn->target.host and port.  False (with conn->errstr) if none answers.
 */
static bool
qc_sentinel_master(QcRedisConn *conn, TimestampTz deadline)
{
	QcRedisTarget *t = &conn->target;
	int			i;
	char		lasterr[256] = "no sentinel answered";

	for (i = 0; i < t->nsentinels; i++)
	{
		QcRedisCmd	c;
		redisReply *r[1];
		bool		ok = false;

		if (!qc_redis_open(conn, false, t->sentinels[i].host,
						   t->sentinels[i].port, NULL, deadline))
		{
			snprintf(lasterr, sizeof(lasterr), "sentinel %s:%d: %s",
					 t->sentinels[i].host, t->sentinels[i].port, conn->errstr);
			continue;
		}
		qc_cmd_init(&c, 3);
		qc_cmd_str(&c, "SENTINEL");
		qc_cmd_str(&c, "get-master-addr-by-name");
		qc_cmd_str(&c, t->master);
		if (qc_redis_run(conn, 1, &c, r))
		{
			redisReply *a = r[0];

			if (a->type == REDIS_REPLY_ARRAY && a->elements == 2 &&
				a->element[0]->type == REDIS_REPLY_STRING &&
				a->element[1]->type == REDIS_REPLY_STRING &&
				a->element[0]->len < sizeof(t->host))
			{
				int			port = atoi(a->element[1]->str);

				if (port > 0 && port <= 65535)
				{
					memcpy(t->host, a->element[0]->str, a->element[0]->len);
					t->host[a->element[0]->len] = '\0';
					t->port = port;
					ok = true;
				}
			}
			if (!ok)
				snprintf(lasterr, sizeof(lasterr),
						 "sentinel %s:%d does not know master \"%s\"",
						 t->sentinels[i].host, t->sentinels[i].port, t->master);
			qc_redis_free_replies(1, r);
		}
		else
			snprintf(lasterr, sizeof(lasterr), "sentinel %s:%d: %s",
					 t->sentinels[i].host, t->sentinels[i].port, conn->errstr);
		qc_redis_disconnect(conn);
		if (ok)
			return true;
	}
	strlcpy(conn->errstr, lasterr, sizeof(conn->errstr));
	return false;
}

/*
 * Connect conn to the configured Redis (through the sentinels if so
 * configured), authenticate, select the database, check that it is a
 * master, and load the scripts (`scripts`, n_scripts of them, whose SHA1s
 * go to shas[]).  False (with conn->errstr) on failure.
 */
bool
qc_redis_connect(QcRedisConn *conn, const char *const *scripts, int n_scripts,
				 char (*shas)[41])
{
	const char *why;
	TimestampTz deadline;
	QcRedisCmd	cmds[4 + QC_MAX_SCRIPTS];
	redisReply *r[4 + QC_MAX_SCRIPTS];
	char		dbbuf[16];
	int			n = 0;
	int			i;
	int			first_script;
	int			role_at = -1;

	Assert(n_scripts <= QC_MAX_SCRIPTS);
	qc_redis_disconnect(conn);
	conn->errstr[0] = '\0';
	conn->identity = qc_redis_current_identity();
	conn->timeout_ms = Max(qc_redis_timeout, 1);
	if (!qc_redis_parse_url(qc_redis_url, &conn->target, &why))
	{
		strlcpy(conn->errstr, why, sizeof(conn->errstr));
		return false;
	}
	deadline = GetCurrentTimestamp() + (TimestampTz) conn->timeout_ms * 1000;
	if (conn->target.sentinel && !qc_sentinel_master(conn, deadline))
		return false;
	if (!qc_redis_open(conn, conn->target.is_unix, conn->target.host,
					   conn->target.port, conn->target.path, deadline))
		return false;

	if (conn->target.password[0] != '\0')
	{
		qc_cmd_init(&cmds[n], 3);
		qc_cmd_str(&cmds[n], "AUTH");
		if (conn->target.user[0] != '\0')
			qc_cmd_str(&cmds[n], conn->target.user);
		qc_cmd_str(&cmds[n], conn->target.password);
		n++;
	}
	if (conn->target.db != 0)
	{
		snprintf(dbbuf, sizeof(dbbuf), "%d", conn->target.db);
		qc_cmd_init(&cmds[n], 2);
		qc_cmd_str(&cmds[n], "SELECT");
		qc_cmd_str(&cmds[n], dbbuf);
		n++;
	}
	if (conn->target.sentinel)
	{
		/* the sentinels may lag a failover: check what we reached */
		role_at = n;
		qc_cmd_init(&cmds[n], 1);
		qc_cmd_str(&cmds[n], "ROLE");
		n++;
	}
	first_script = n;
	for (i = 0; i < n_scripts; i++)
	{
		qc_cmd_init(&cmds[n], 3);
		qc_cmd_str(&cmds[n], "SCRIPT");
		qc_cmd_str(&cmds[n], "LOAD");
		qc_cmd_str(&cmds[n], scripts[i]);
		n++;
	}
	if (n == 0)
		return true;
	if (!qc_redis_run(conn, n, cmds, r))
		return false;
	for (i = 0; i < n; i++)
	{
		if (r[i]->type == REDIS_REPLY_ERROR)
		{
			/* AUTH or SELECT refused: the message says which, no secret */
			snprintf(conn->errstr, sizeof(conn->errstr), "%s", r[i]->str);
			qc_redis_free_replies(n, r);
			qc_redis_disconnect(conn);
			return false;
		}
		if (i == role_at &&
			!(r[i]->type == REDIS_REPLY_ARRAY && r[i]->elements >= 1 &&
			  r[i]->element[0]->type == REDIS_REPLY_STRING &&
			  strcmp(r[i]->element[0]->str, "master") == 0))
		{
			snprintf(conn->errstr, sizeof(conn->errstr),
					 "the sentinels named %s:%d as master \"%s\", but it is not a master (yet)",
					 conn->target.host, conn->target.port, conn->target.master);
			qc_redis_free_replies(n, r);
			qc_redis_disconnect(conn);
			return false;
		}
		if (i >= first_script && r[i]->type == REDIS_REPLY_STRING &&
			r[i]->len == 40)
			memcpy(shas[i - first_script], r[i]->str, 41);
	}
	qc_redis_free_replies(n, r);
	return true;
}
