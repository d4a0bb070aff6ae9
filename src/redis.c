/*-------------------------------------------------------------------------
 *
 * redis.c
 *		The Redis second level: the client, the layout in Redis, and the
 *		operations that the SQL functions and the commit callback call.
 *
 * Each backend keeps one hiredis connection, opened on first use, in
 * non-blocking mode: we write with redisBufferWrite and read with
 * redisBufferRead, and wait in a WaitEventSet on the socket and the latch.
 * So every call is bounded by qcache.redis_timeout, a cancel or terminate
 * request is served while waiting, and postmaster death ends the wait.  A
 * call that did not finish (timeout, error, or an interrupt thrown from the
 * wait) leaves the connection marked busy; the next call drops it and
 * connects afresh, so a late reply can never be read as another call's.
 * No qcache lock is held while we talk to Redis.
 *
 * The layout in Redis (P = qcache.redis_prefix, D = database name):
 *
 *		P:D:<key>		the value, as JSON text, with the entry's TTL
 *		P#m:D:<key>		its metadata, JSON: build point, tags, and the
 *						invalidation stamps it was checked against
 *		P#t:D:<tag>		a tag's invalidation stamp (microseconds)
 *		P#d:D			the database's stamp (qcache_clear)
 *		P#g				the global stamp (lost invalidations)
 *		P#f				the floor: at least every stamp ever written
 *		P#inv			the pub/sub channel of invalidations
 *
 * Tags are stamps, not member sets, for the same reason as in L1
 * (invalidate.c): a value is valid only if it was built after the last
 * invalidation of each of its tags, so a value computed from an old
 * snapshot and written to Redis after the invalidation is never served.
 * There are no members to leak.  Eviction cannot make a stale value valid:
 * a value is served only if each stamp key still holds exactly the stamp
 * the value recorded when it was stored, and a missing stamp key (evicted
 * or expired) makes the value invalid.  An invalidation always gives a
 * stamp a new, larger value.  A set that finds a stamp missing creates it
 * at max(floor, build - 1), where the floor (P#f) is raised by every
 * invalidation: so a value built before an invalidation whose stamp Redis
 * has since lost is still refused.  The scripts below run these checks
 * inside Redis, atomically, in one round trip.  A set goes to Redis before
 * L1, and a value Redis refuses as stale is not kept in L1 either.
 *
 * Faults.  A call that fails opens the shared circuit breaker
 * (QcShared.l2_up = 0): every backend then works on L1 alone, without
 * paying the timeout again, until the worker (redis_worker.c) finds Redis
 * healthy and closes it.  A write or an invalidation that could not reach
 * Redis sets QcShared.l2_dirty; before the breaker closes, the worker bumps
 * the global stamp, which invalidates every value in Redis, and tells every
 * node to drop its L1.  Warnings are rate-limited across the cluster.
 *
 * Nothing here raises an error on a Redis failure: callers get false and
 * the L1 answer stands.  qc_l2_commit, called after the commit, never
 * raises at all: it catches even out-of-memory and counts its
 * invalidations as lost.  An interrupt that ends a write or an
 * invalidation in the middle (the SQL functions guard their calls) also
 * counts it as lost.  Redis 7.0 or later is needed (PEXPIRE ... GT).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "qcache.h"
#include "redis.h"

/* GUC variables */
char	   *qc_redis_url = NULL;
char	   *qc_redis_prefix = NULL;
int			qc_l1_ttl = 60;
int			qc_redis_timeout = 50;

/* Bumped by the assign hooks: the connection must follow the new settings. */
static uint32 config_generation = 0;

/* At most one warning about Redis per this many microseconds, cluster-wide. */
#define QC_L2_WARN_INTERVAL		(10 * USECS_PER_SEC)

/* Life of a stamp written by an invalidation (a day). */
#define QC_L2_STAMP_LIFE_MS		"86400000"

/*
 * get: KEYS = value, meta, global stamp, database stamp; ARGV[1] = the
 * prefix of tag stamp keys.  Returns nil, or {json, pttl, build, {tags}}.
 */
static const char *qc_script_get =
"local v = redis.call('GET', KEYS[1])\n"
"if not v then return false end\n"
"local m = redis.call('GET', KEYS[2])\n"
"if not m then return false end\n"
"local ok, meta = pcall(cjson.decode, m)\n"
"if not ok or type(meta) ~= 'table' then return false end\n"
"local b = tonumber(meta.b)\n"
"if not b or tonumber(meta.l) ~= #v then return false end\n"
"local function fresh(k, rec)\n"
"  local s = redis.call('GET', k)\n"
"  return s ~= false and s == rec and tonumber(s) < b\n"
"end\n"
"if not fresh(KEYS[3], meta.g) or not fresh(KEYS[4], meta.d) then return false end\n"
"local tags = meta.t or {}\n"
"for i = 1, #tags do\n"
"  if not fresh(ARGV[1] .. tags[i], meta.s[i]) then return false end\n"
"end\n"
"return {v, redis.call('PTTL', KEYS[1]), meta.b, tags}\n";

/*
 * set: KEYS = value, meta, global stamp, database stamp, floor; ARGV =
 * json, ttl in ms (0: none), build, now, tag stamp prefix, tags...
 * Refuses (0) a value built at or before one of its stamps.  A missing
 * stamp (never made, expired or evicted) is created at max(floor, build -
 * 1): the floor is at least every stamp ever written, so a value built
 * before an invalidation whose stamp Redis lost is refused.  Keeps every
 * stamp alive at least as long as the value.
 */
static const char *qc_script_set =
"local ttl = tonumber(ARGV[2])\n"
"local b = tonumber(ARGV[3])\n"
"local floor = tonumber(redis.call('GET', KEYS[5]))\n"
"if not floor then\n"
"  redis.call('SET', KEYS[5], ARGV[4])\n"
"  floor = tonumber(ARGV[4])\n"
"end\n"
"local function stamp(k)\n"
"  local s = redis.call('GET', k)\n"
"  if not s then\n"
"    local v = math.max(floor, b - 1)\n"
"    s = string.format('%d', v)\n"
"    if ttl > 0 then redis.call('SET', k, s, 'PX', ttl) else redis.call('SET', k, s) end\n"
"    if v >= b then return nil end\n"
"    return s\n"
"  end\n"
"  if tonumber(s) == nil or tonumber(s) >= b then return nil end\n"
"  if ttl > 0 then redis.call('PEXPIRE', k, ttl, 'GT') else redis.call('PERSIST', k) end\n"
"  return s\n"
"end\n"
"local g = stamp(KEYS[3])\n"
"if not g then return 0 end\n"
"local d = stamp(KEYS[4])\n"
"if not d then return 0 end\n"
"local tags, stamps = {}, {}\n"
"for i = 6, #ARGV do\n"
"  local s = stamp(ARGV[5] .. ARGV[i])\n"
"  if not s then return 0 end\n"
"  tags[#tags + 1] = ARGV[i]\n"
"  stamps[#stamps + 1] = s\n"
"end\n"
"local meta = cjson.encode({b = ARGV[3], g = g, d = d, t = tags, s = stamps, l = #ARGV[1]})\n"
"if ttl > 0 then\n"
"  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n"
"  redis.call('SET', KEYS[2], meta, 'PX', ttl)\n"
"else\n"
"  redis.call('SET', KEYS[1], ARGV[1])\n"
"  redis.call('SET', KEYS[2], meta)\n"
"end\n"
"return 1\n";

/*
 * stamp: KEYS = floor, stamp keys...; ARGV = stamp, life in ms, now.
 * Gives each stamp key a new value, at least ARGV[1] and above its old
 * one, so that every value that recorded the old one is invalid; raises
 * the floor to the largest.
 */
static const char *qc_script_stamp =
"local st = tonumber(ARGV[1])\n"
"local f = tonumber(redis.call('GET', KEYS[1])) or tonumber(ARGV[3])\n"
"for i = 2, #KEYS do\n"
"  local s = tonumber(redis.call('GET', KEYS[i]))\n"
"  local v = st\n"
"  if s and s >= v then v = s + 1 end\n"
"  redis.call('SET', KEYS[i], string.format('%d', v), 'PX', ARGV[2])\n"
"  if v > f then f = v end\n"
"end\n"
"redis.call('SET', KEYS[1], string.format('%d', f))\n"
"return #KEYS - 1\n";

typedef enum QcScript
{
	QC_SCRIPT_GET,
	QC_SCRIPT_SET,
	QC_SCRIPT_STAMP,
	QC_NUM_SCRIPTS
} QcScript;

static const char *const *
qc_scripts(void)
{
	static const char *s[QC_NUM_SCRIPTS];

	s[QC_SCRIPT_GET] = qc_script_get;
	s[QC_SCRIPT_SET] = qc_script_set;
	s[QC_SCRIPT_STAMP] = qc_script_stamp;
	return s;
}

/* SHA1s of the scripts, from SCRIPT LOAD (the same for every connection). */
static char script_sha[QC_NUM_SCRIPTS][41];

/* This backend's connection. */
static QcRedisConn backend_conn;

/* ---------- the URL ---------- */

/*
 * Parse qcache.redis_url into t.  Forms: redis://[[user]:password@]host
 * [:port][/db], unix://[[user]:password@]/path[?db=N], or /path.  On error
 * returns false and sets *why (which never contains the password).
 */
bool
qc_redis_parse_url(const char *url, QcRedisTarget *t, const char **why)
{
	const char *p;
	const char *at;
	const char *end;
	bool		is_unix = false;

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
	if (strncmp(url, "redis://", 8) == 0)
		p = url + 8;
	else if (strncmp(url, "unix://", 7) == 0)
	{
		p = url + 7;
		is_unix = true;
	}
	else
	{
		*why = "it must start with redis://, unix:// or /";
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

		end = NULL;
		for (q = strstr(p, "@/"); q != NULL; q = strstr(q + 1, "@/"))
			end = q;
	}
	else
		end = strrchr(p, '@');
	at = end;
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
			char	   *e;

			if (strncmp(q, "?db=", 4) != 0)
			{
				*why = "the only option of a unix:// URL is ?db=N";
				return false;
			}
			t->db = strtol(q + 4, &e, 10);
			if (*e != '\0' || e == q + 4 || t->db < 0)
			{
				*why = "the database number must be a non-negative integer";
				return false;
			}
		}
		return true;
	}
	else
	{
		const char *hend = p + strcspn(p, ":/");
		size_t		hlen = hend - p;

		if (hlen == 0 || hlen >= sizeof(t->host))
		{
			*why = "the host is missing or too long";
			return false;
		}
		memcpy(t->host, p, hlen);
		p = hend;
		if (*p == ':')
		{
			char	   *e;
			long		port = strtol(p + 1, &e, 10);

			if (e == p + 1 || port <= 0 || port > 65535)
			{
				*why = "the port must be between 1 and 65535";
				return false;
			}
			t->port = (int) port;
			p = e;
		}
		if (*p == '/' && p[1] != '\0')
		{
			char	   *e;

			t->db = strtol(p + 1, &e, 10);
			if (*e != '\0' || t->db < 0)
			{
				*why = "the database number must be a non-negative integer";
				return false;
			}
		}
		else if (*p == '/')
			;
		else if (*p != '\0')
		{
			*why = "unexpected characters after the host and port";
			return false;
		}
		return true;
	}
}

/* Where the target is, for messages: never the password. */
const char *
qc_redis_where(const QcRedisTarget *t)
{
	static char buf[MAXPGPATH + 32];

	if (t->is_unix)
		snprintf(buf, sizeof(buf), "unix socket %s", t->path);
	else
		snprintf(buf, sizeof(buf), "%s:%d", t->host, t->port);
	return buf;
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
		GUC_check_errhint("Use redis://[:password@]host:port[/db], unix:///path/to/socket[?db=N] or /path/to/socket.");
		return false;
	}
	return true;
}

/* Assign hook of the settings a connection depends on. */
void
qc_redis_config_assign(const char *newval, void *extra)
{
	config_generation++;
}

/* Changes with every change of the settings a connection depends on. */
uint32
qc_redis_generation(void)
{
	return config_generation;
}

/* Assign hook of qcache.redis_timeout. */
void
qc_redis_timeout_assign(int newval, void *extra)
{
	config_generation++;
}

/*
 * emit_log_hook: hide the password of any redis:// or unix:// URL in a
 * message, such as the postmaster's "parameter ... changed to ..." on
 * reload, or a logged ALTER SYSTEM.
 */
static emit_log_hook_type prev_emit_log_hook = NULL;

static char *
qc_redact(char *msg)
{
	static const char *const schemes[] = {"redis://", "unix://"};
	StringInfoData buf;
	const char *p = msg;
	bool		changed = false;

	if (msg == NULL || strstr(msg, "://") == NULL)
		return msg;
	initStringInfo(&buf);
	while (*p)
	{
		size_t		i;
		bool		done = false;

		for (i = 0; i < lengthof(schemes) && !done; i++)
		{
			size_t		sl = strlen(schemes[i]);
			const char *u;
			const char *at = NULL;

			if (pg_strncasecmp(p, schemes[i], sl) != 0)
				continue;
			/* the URL ends at a blank or a quote; userinfo at its last '@' */
			for (u = p + sl; *u && !isspace((unsigned char) *u) &&
				 *u != '"' && *u != '\''; u++)
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
			done = true;
		}
		if (!done)
			appendStringInfoChar(&buf, *p++);
	}
	if (!changed)
	{
		pfree(buf.data);
		return msg;
	}
	return buf.data;
}

/* Does a text hold a redis:// or unix:// URL with user information? */
static bool
qc_holds_secret(const char *s)
{
	return s != NULL && strchr(s, '@') != NULL &&
		(strstr(s, "redis://") != NULL || strstr(s, "unix://") != NULL ||
		 strstr(s, "REDIS://") != NULL || strstr(s, "UNIX://") != NULL);
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

/* ---------- state ---------- */

/* Is a Redis level configured? */
bool
qc_l2_active(void)
{
	return qc_redis_url != NULL && qc_redis_url[0] != '\0';
}

/* Configured, and the breaker closed: talk to Redis. */
bool
qc_l2_usable(void)
{
	return qc_l2_active() && pg_atomic_read_u32(&qc_shared->l2_up) != 0;
}

/*
 * Log a Redis failure, at most once per QC_L2_WARN_INTERVAL across the
 * cluster.  Never raises.
 */
void
qc_l2_warn(int elevel, const char *what, const char *detail)
{
	uint64		now = (uint64) GetCurrentTimestamp();
	uint64		last = pg_atomic_read_u64(&qc_shared->l2_warned);

	if (now < last + QC_L2_WARN_INTERVAL ||
		!pg_atomic_compare_exchange_u64(&qc_shared->l2_warned, &last, now))
		return;
	ereport(elevel,
			(errmsg("qcache: %s", what),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("qcache works on its local cache alone until Redis answers again; this message is shown at most every %d seconds.",
					 (int) (QC_L2_WARN_INTERVAL / USECS_PER_SEC))));
}

/*
 * A write or invalidation did not reach Redis: mark L2 dirty, then open
 * the breaker.  In this order: the worker closes the breaker, then looks
 * at l2_dirty again (redis_worker.c), so either it sees this mark or this
 * store to l2_up comes after its own, and L2 never serves with a lost
 * write that the worker has not made up for.
 */
static void
qc_l2_mark_dirty(void)
{
	pg_atomic_write_u32(&qc_shared->l2_dirty, 1);
	pg_memory_barrier();
	pg_atomic_write_u32(&qc_shared->l2_up, 0);
}

/* A call failed: open the breaker; a lost write also makes L2 dirty. */
static void
qc_l2_failed(QcRedisConn *conn, bool lost_write, const char *what)
{
	char		detail[256];

	snprintf(detail, sizeof(detail), "%s (%s)",
			 conn->errstr[0] ? conn->errstr : "no detail",
			 qc_redis_where(&conn->target));
	qc_count(QC_STAT_L2_ERRORS, 1);
	if (lost_write)
		qc_l2_mark_dirty();
	else
		pg_atomic_write_u32(&qc_shared->l2_up, 0);
	qc_l2_warn(WARNING, what, detail);
}

/* For callers that were interrupted in the middle of a Redis write. */
void
qc_l2_lost_write(void)
{
	if (qc_l2_active())
		qc_l2_mark_dirty();
	backend_conn.busy = backend_conn.ctx != NULL;
}

/* A write or invalidation is skipped because the breaker is open. */
static void
qc_l2_skipped_write(void)
{
	if (!qc_l2_active())
		return;
	qc_l2_mark_dirty();
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
 * left to free.  Redis error replies are replies, not failures.
 */
bool
qc_redis_run(QcRedisConn *conn, int n, QcRedisCmd *cmds, redisReply **replies)
{
	TimestampTz deadline = GetCurrentTimestamp() +
	(TimestampTz) conn->timeout_ms * 1000;
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
	if (!qc_redis_flush(conn, deadline))
	{
		qc_redis_disconnect(conn);
		return false;
	}
	for (i = 0; i < n; i++)
	{
		replies[i] = qc_redis_read(conn, deadline);
		if (replies[i] == NULL)
		{
			qc_redis_free_replies(i, replies);
			qc_redis_disconnect(conn);
			return false;
		}
	}
	conn->busy = false;
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

/* Append an argument; the bytes must outlive the command. */
void
qc_cmd_arg(QcRedisCmd *cmd, const char *s, size_t len)
{
	Assert(cmd->argc < cmd->cap);
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
 * Connect conn to the configured Redis, authenticate, select the database
 * and load the scripts.  False (with conn->errstr) on failure.
 */
bool
qc_redis_connect(QcRedisConn *conn)
{
	const char *why;
	TimestampTz deadline;
	int			err = 0;
	socklen_t	errlen = sizeof(err);
	QcRedisCmd	cmds[2 + QC_NUM_SCRIPTS];
	redisReply *r[2 + QC_NUM_SCRIPTS];
	char		dbbuf[16];
	int			n = 0;
	int			i;
	int			first_script;

	qc_redis_disconnect(conn);
	conn->errstr[0] = '\0';
	conn->generation = config_generation;
	conn->timeout_ms = Max(qc_redis_timeout, 1);
	if (!qc_redis_parse_url(qc_redis_url, &conn->target, &why))
	{
		strlcpy(conn->errstr, why, sizeof(conn->errstr));
		return false;
	}
	deadline = GetCurrentTimestamp() + (TimestampTz) conn->timeout_ms * 1000;

	if (conn->target.is_unix)
		conn->ctx = redisConnectUnixNonBlock(conn->target.path);
	else
		conn->ctx = redisConnectNonBlock(conn->target.host, conn->target.port);
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

	/*
	 * The scripts' SHA1s are the same everywhere: the first connection of the
	 * cluster learns them with SCRIPT LOAD and leaves them in shared memory.
	 * If Redis loses them later, EVALSHA's NOSCRIPT falls back to EVAL
	 * (qc_redis_script).
	 */
	first_script = n;
	if (pg_atomic_read_u32(&qc_shared->l2_sha_ready) != 0)
	{
		pg_read_barrier();
		memcpy(script_sha, qc_shared->l2_script_sha, sizeof(script_sha));
	}
	else
	{
		for (i = 0; i < QC_NUM_SCRIPTS; i++)
		{
			qc_cmd_init(&cmds[n], 3);
			qc_cmd_str(&cmds[n], "SCRIPT");
			qc_cmd_str(&cmds[n], "LOAD");
			qc_cmd_str(&cmds[n], qc_scripts()[i]);
			n++;
		}
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
		if (i >= first_script && r[i]->type == REDIS_REPLY_STRING &&
			r[i]->len == 40)
			memcpy(script_sha[i - first_script], r[i]->str, 41);
	}
	qc_redis_free_replies(n, r);
	if (n - first_script == QC_NUM_SCRIPTS &&
		pg_atomic_read_u32(&qc_shared->l2_sha_ready) == 0)
	{
		/* identical bytes from every writer; published by the flag */
		SpinLockAcquire(&qc_shared->stats_lock);
		memcpy(qc_shared->l2_script_sha, script_sha, sizeof(script_sha));
		SpinLockRelease(&qc_shared->stats_lock);
		pg_write_barrier();
		pg_atomic_write_u32(&qc_shared->l2_sha_ready, 1);
	}
	return true;
}

/*
 * The backend's connection, connected; NULL (breaker opened) if it cannot
 * be had.  A connection left busy by an interrupted call, or made under
 * settings that have changed since, is replaced.
 */
static QcRedisConn *
qc_backend_conn(bool lost_write)
{
	QcRedisConn *conn = &backend_conn;

	if (conn->ctx != NULL &&
		(conn->busy || conn->generation != config_generation))
		qc_redis_disconnect(conn);
	if (conn->ctx == NULL && !qc_redis_connect(conn))
	{
		qc_l2_failed(conn, lost_write, "cannot connect to Redis");
		return NULL;
	}
	return conn;
}

/*
 * The connection for a write or an invalidation; NULL if it cannot reach
 * Redis now (breaker open, or the connection fails), after counting the
 * write as lost.
 */
static QcRedisConn *
qc_l2_write_conn(void)
{
	if (!qc_l2_usable())
	{
		qc_l2_skipped_write();
		return NULL;
	}
	return qc_backend_conn(true);
}

/*
 * Run a script by its SHA1, or by its text if Redis lost it (NOSCRIPT),
 * followed by up to one more pipelined command.  Replies as qc_redis_run.
 */
static bool
qc_redis_script(QcRedisConn *conn, QcScript script, QcRedisCmd *cmd,
				QcRedisCmd *extra, redisReply **replies)
{
	QcRedisCmd	cmds[2];
	int			n = extra ? 2 : 1;

	cmd->argv[0] = "EVALSHA";
	cmd->argvlen[0] = 7;
	cmd->argv[1] = script_sha[script];
	cmd->argvlen[1] = 40;
	cmds[0] = *cmd;
	if (extra)
		cmds[1] = *extra;
	if (!qc_redis_run(conn, n, cmds, replies))
		return false;
	if (replies[0]->type == REDIS_REPLY_ERROR &&
		strncmp(replies[0]->str, "NOSCRIPT", 8) == 0)
	{
		freeReplyObject(replies[0]);
		cmds[0].argv[0] = "EVAL";
		cmds[0].argvlen[0] = 4;
		cmds[0].argv[1] = qc_scripts()[script];
		cmds[0].argvlen[1] = strlen(qc_scripts()[script]);
		if (!qc_redis_run(conn, 1, cmds, replies))
		{
			if (extra)
				qc_redis_free_replies(1, replies + 1);
			return false;
		}
	}
	return true;
}

/* ---------- names ---------- */

/* The current database's name, cached; call inside a transaction first. */
static char *dbname = NULL;

const char *
qc_l2_dbname(void)
{
	if (dbname == NULL)
	{
		char	   *n = get_database_name(MyDatabaseId);

		dbname = MemoryContextStrdup(TopMemoryContext, n ? n : "?");
	}
	return dbname;
}

/* prefix + infix + db [+ ':' + str], palloc'd, length in *len */
static char *
qc_l2_name(const char *infix, const char *db, const char *str, size_t slen,
		   size_t *len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, qc_redis_prefix);
	appendStringInfoString(&buf, infix);
	if (db != NULL)
	{
		appendStringInfoString(&buf, db);
		if (str != NULL)
		{
			appendStringInfoChar(&buf, ':');
			appendBinaryStringInfo(&buf, str, slen);
		}
	}
	*len = buf.len;
	return buf.data;
}

/* The keys every value script takes: value, meta, global, database. */
typedef struct QcL2Keys
{
	char	   *value;
	size_t		value_len;
	char	   *meta;
	size_t		meta_len;
	char	   *global;
	size_t		global_len;
	char	   *db;
	size_t		db_len;
	char	   *tagpfx;
	size_t		tagpfx_len;
	char	   *floor;
	size_t		floor_len;
} QcL2Keys;

static void
qc_l2_keys(const QcKey *key, QcL2Keys *k)
{
	const char *db = qc_l2_dbname();

	k->value = qc_l2_name(":", db, key->data, key->len, &k->value_len);
	k->meta = qc_l2_name("#m:", db, key->data, key->len, &k->meta_len);
	k->global = qc_l2_name("#g", NULL, NULL, 0, &k->global_len);
	k->db = qc_l2_name("#d:", db, NULL, 0, &k->db_len);
	k->tagpfx = qc_l2_name("#t:", db, "", 0, &k->tagpfx_len);
	k->floor = qc_l2_name("#f", NULL, NULL, 0, &k->floor_len);
}

/*
 * Publish an invalidation: node id, kind, stamp, database, payload, each
 * but the last followed by a zero byte.
 */
static void
qc_l2_publish_cmd(QcRedisCmd *cmd, StringInfo msg, char kind,
				  TimestampTz stamp, const char *db, const char *payload,
				  size_t len)
{
	size_t		chlen;
	char	   *channel = qc_l2_name("#inv", NULL, NULL, 0, &chlen);

	initStringInfo(msg);
	appendStringInfo(msg, "%016llx", (unsigned long long) qc_shared->node_id);
	appendStringInfoChar(msg, '\0');
	appendStringInfoChar(msg, kind);
	appendStringInfoChar(msg, '\0');
	appendStringInfo(msg, INT64_FORMAT, (int64) stamp);
	appendStringInfoChar(msg, '\0');
	appendStringInfoString(msg, db ? db : "");
	appendStringInfoChar(msg, '\0');
	if (len > 0)
		appendBinaryStringInfo(msg, payload, len);
	qc_cmd_init(cmd, 3);
	qc_cmd_str(cmd, "PUBLISH");
	qc_cmd_arg(cmd, channel, chlen);
	qc_cmd_arg(cmd, msg->data, msg->len);
}

/* ---------- the operations ---------- */

/*
 * Look a key up in Redis.  True on a valid hit, with out filled (palloc'd);
 * counts the L2 hit or miss.
 */
bool
qc_l2_get(const QcKey *key, QcL2Value *out)
{
	QcRedisConn *conn;
	QcL2Keys	k;
	QcRedisCmd	cmd;
	redisReply *r[2];
	redisReply *rep;
	bool		hit = false;

	if (!qc_l2_usable() || (conn = qc_backend_conn(false)) == NULL)
		return false;
	qc_l2_keys(key, &k);
	qc_cmd_init(&cmd, 8);
	cmd.argc = 2;				/* EVALSHA sha */
	qc_cmd_str(&cmd, "4");
	qc_cmd_arg(&cmd, k.value, k.value_len);
	qc_cmd_arg(&cmd, k.meta, k.meta_len);
	qc_cmd_arg(&cmd, k.global, k.global_len);
	qc_cmd_arg(&cmd, k.db, k.db_len);
	qc_cmd_arg(&cmd, k.tagpfx, k.tagpfx_len);
	if (!qc_redis_script(conn, QC_SCRIPT_GET, &cmd, NULL, r))
	{
		qc_l2_failed(conn, false, "Redis lookup failed");
		return false;
	}
	rep = r[0];
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 4 &&
		rep->element[0]->type == REDIS_REPLY_STRING &&
		rep->element[1]->type == REDIS_REPLY_INTEGER &&
		rep->element[2]->type == REDIS_REPLY_STRING &&
		rep->element[3]->type == REDIS_REPLY_ARRAY &&
		rep->element[3]->elements <= QC_MAX_TAGS)
	{
		redisReply *tags = rep->element[3];
		size_t		i;

		out->json = pnstrdup(rep->element[0]->str, rep->element[0]->len);
		out->len = rep->element[0]->len;
		out->pttl_ms = rep->element[1]->integer;
		out->build = (TimestampTz) strtoll(rep->element[2]->str, NULL, 10);
		out->tags.ntags = 0;
		out->tags.tag = palloc(sizeof(char *) * Max(tags->elements, 1));
		out->tags.len = palloc(sizeof(uint32) * Max(tags->elements, 1));
		hit = true;
		for (i = 0; i < tags->elements; i++)
		{
			redisReply *t = tags->element[i];

			if (t->type != REDIS_REPLY_STRING || t->len > QC_MAX_TAG_LEN ||
				memchr(t->str, '\0', t->len) != NULL)
			{
				hit = false;
				break;
			}
			out->tags.tag[i] = pnstrdup(t->str, t->len);
			out->tags.len[i] = t->len;
			out->tags.ntags++;
		}
		if (out->build <= 0 || out->len > (size_t) qc_max_entry_size)
			hit = false;
		/* what this node and this transaction know that Redis may not yet */
		if (hit && !qc_l2_value_fresh(key->dbid, &out->tags, out->build))
			hit = false;
	}
	else if (rep->type == REDIS_REPLY_ERROR)
		qc_l2_warn(WARNING, "Redis refused a lookup", rep->str);
	qc_redis_free_replies(1, r);
	qc_count(hit ? QC_STAT_L2_HITS : QC_STAT_L2_MISSES, 1);
	return hit;
}

/*
 * Is JSON text from Redis valid JSON (checked with the non-throwing
 * parser)?  For qcache_fetch_json, which hands the text on as json.
 */
bool
qc_l2_json_valid(const char *json, size_t len)
{
	JsonLexContext *lex;

	if (strlen(json) != len)
		return false;
	/* need_escapes: also catches \u0000 and bad surrogates, as jsonb_in */
	lex = makeJsonLexContextCstringLen(unconstify(char *, json), (int) len,
									   GetDatabaseEncoding(), true);
	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/*
 * Parse JSON text from Redis into jsonb.  The get script served it only if
 * its length is the one qcache recorded when it wrote it, so text that
 * another application wrote over the key is a miss; text it wrote with the
 * very same length and invalid JSON would raise jsonb_in's error (22P02).
 * Not checked twice: parsing is most of an L2 hit's own cost.
 */
Jsonb *
qc_l2_json_to_jsonb(const char *json, size_t len)
{
	if (strlen(json) != len)
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(json)));
}

/*
 * Write a value, as JSON text, to Redis with its TTL (ttl_ms 0: none),
 * build point and tags.  QC_L2_STALE: a stamp in Redis says the value is
 * already stale, so nobody may keep it.
 */
QcL2SetResult
qc_l2_set(const QcKey *key, const char *json, const QcTags *tags,
		  int64 ttl_ms, TimestampTz build)
{
	QcRedisConn *conn;
	QcL2Keys	k;
	QcRedisCmd	cmd;
	redisReply *r[2];
	char		ttlbuf[32];
	char		bbuf[32];
	char		nowbuf[32];
	QcL2SetResult res;
	int			i;

	if ((conn = qc_l2_write_conn()) == NULL)
		return QC_L2_FAILED;
	qc_l2_keys(key, &k);
	snprintf(ttlbuf, sizeof(ttlbuf), INT64_FORMAT, ttl_ms);
	snprintf(bbuf, sizeof(bbuf), INT64_FORMAT, (int64) build);
	snprintf(nowbuf, sizeof(nowbuf), INT64_FORMAT, (int64) GetCurrentTimestamp());

	qc_cmd_init(&cmd, 13 + tags->ntags);
	cmd.argc = 2;
	qc_cmd_str(&cmd, "5");
	qc_cmd_arg(&cmd, k.value, k.value_len);
	qc_cmd_arg(&cmd, k.meta, k.meta_len);
	qc_cmd_arg(&cmd, k.global, k.global_len);
	qc_cmd_arg(&cmd, k.db, k.db_len);
	qc_cmd_arg(&cmd, k.floor, k.floor_len);
	qc_cmd_str(&cmd, json);
	qc_cmd_str(&cmd, ttlbuf);
	qc_cmd_str(&cmd, bbuf);
	qc_cmd_str(&cmd, nowbuf);
	qc_cmd_arg(&cmd, k.tagpfx, k.tagpfx_len);
	for (i = 0; i < tags->ntags; i++)
		qc_cmd_arg(&cmd, tags->tag[i], tags->len[i]);
	if (!qc_redis_script(conn, QC_SCRIPT_SET, &cmd, NULL, r))
	{
		qc_l2_failed(conn, true, "Redis write failed");
		return QC_L2_FAILED;
	}
	if (r[0]->type == REDIS_REPLY_INTEGER)
		res = r[0]->integer == 1 ? QC_L2_STORED : QC_L2_STALE;
	else
	{
		/* e.g. OOM under maxmemory with noeviction: the old value may stay */
		res = QC_L2_FAILED;
		qc_l2_mark_dirty();
		qc_l2_warn(WARNING, "Redis refused a write",
				   r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : "unexpected reply");
	}
	qc_redis_free_replies(1, r);
	return res;
}

/* Remove a key from Redis and tell the other nodes; true if it was there. */
bool
qc_l2_invalidate_key(const QcKey *key)
{
	QcRedisConn *conn;
	QcL2Keys	k;
	QcRedisCmd	cmds[2];
	StringInfoData msg;
	redisReply *r[2];
	bool		removed;

	if ((conn = qc_l2_write_conn()) == NULL)
		return false;
	qc_l2_keys(key, &k);
	qc_cmd_init(&cmds[0], 3);
	qc_cmd_str(&cmds[0], "UNLINK");
	qc_cmd_arg(&cmds[0], k.value, k.value_len);
	qc_cmd_arg(&cmds[0], k.meta, k.meta_len);
	qc_l2_publish_cmd(&cmds[1], &msg, 'k', 0, qc_l2_dbname(), key->data, key->len);
	if (!qc_redis_run(conn, 2, cmds, r))
	{
		qc_l2_failed(conn, true, "Redis invalidation failed");
		return false;
	}
	removed = r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer > 0;
	if (r[0]->type == REDIS_REPLY_ERROR || r[1]->type == REDIS_REPLY_ERROR)
		qc_l2_mark_dirty();
	qc_redis_free_replies(2, r);
	return removed;
}

/*
 * Raise stamp keys in Redis and publish one message; the shared body of the
 * tag, clear and commit invalidations.  Never raises on a Redis failure.
 */
static bool
qc_l2_stamp(QcRedisConn *conn, int nkeys, char **keys, size_t *keylens,
			TimestampTz stamp, char kind, const char *db,
			const char *payload, size_t len)
{
	QcRedisCmd *cmd;
	QcRedisCmd	pub;
	StringInfoData msg;
	redisReply *r[2];
	char		sbuf[32];
	char		nbuf[16];
	char		nowbuf[32];
	char	   *floor;
	size_t		floorlen;
	int			i;

	cmd = palloc(sizeof(QcRedisCmd));
	qc_cmd_init(cmd, nkeys + 7);
	cmd->argc = 2;
	snprintf(nbuf, sizeof(nbuf), "%d", nkeys + 1);
	qc_cmd_str(cmd, nbuf);
	floor = qc_l2_name("#f", NULL, NULL, 0, &floorlen);
	qc_cmd_arg(cmd, floor, floorlen);
	for (i = 0; i < nkeys; i++)
		qc_cmd_arg(cmd, keys[i], keylens[i]);
	snprintf(sbuf, sizeof(sbuf), INT64_FORMAT, (int64) stamp);
	qc_cmd_str(cmd, sbuf);
	qc_cmd_str(cmd, QC_L2_STAMP_LIFE_MS);
	snprintf(nowbuf, sizeof(nowbuf), INT64_FORMAT, (int64) GetCurrentTimestamp());
	qc_cmd_str(cmd, nowbuf);
	qc_l2_publish_cmd(&pub, &msg, kind, stamp, db, payload, len);
	if (!qc_redis_script(conn, QC_SCRIPT_STAMP, cmd, &pub, r))
	{
		qc_l2_failed(conn, true, "Redis invalidation failed");
		return false;
	}
	if (r[0]->type == REDIS_REPLY_ERROR || r[1]->type == REDIS_REPLY_ERROR)
	{
		qc_l2_mark_dirty();
		qc_l2_warn(WARNING, "Redis refused an invalidation",
				   r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : r[1]->str);
		qc_redis_free_replies(2, r);
		return false;
	}
	qc_redis_free_replies(2, r);
	return true;
}

/*
 * Raise the global stamp, which invalidates every value in Redis, and tell
 * every node to drop its L1 ('F').  The worker's recovery from lost
 * invalidations.
 */
bool
qc_l2_global_stamp(QcRedisConn *conn, TimestampTz stamp)
{
	size_t		keylen;
	char	   *key = qc_l2_name("#g", NULL, NULL, 0, &keylen);

	return qc_l2_stamp(conn, 1, &key, &keylen, stamp, 'F', NULL, NULL, 0);
}

/* Invalidate a tag in Redis at `stamp` and tell the other nodes. */
void
qc_l2_invalidate_tag(const char *tag, uint32 len, TimestampTz stamp)
{
	QcRedisConn *conn;
	char	   *key;
	size_t		keylen;

	if ((conn = qc_l2_write_conn()) == NULL)
		return;
	key = qc_l2_name("#t:", qc_l2_dbname(), tag, len, &keylen);
	qc_l2_stamp(conn, 1, &key, &keylen, stamp, 't', qc_l2_dbname(), tag, len);
}

/* Escape the glob characters of SCAN MATCH. */
static void
qc_glob_escape(StringInfo buf, const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (strchr("*?[]\\", s[i]) != NULL)
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, s[i]);
	}
}

/*
 * Delete the values of this database whose key starts with prefix (all of
 * them for len 0) and their metadata, with SCAN; then publish.  Returns the
 * number of values deleted.
 */
static int64
qc_l2_delete_scan(QcRedisConn *conn, const char *prefix, uint32 len,
				  char kind, TimestampTz stamp)
{
	StringInfoData pattern;
	char		cursor[32] = "0";
	int64		deleted = 0;
	size_t		headlen;
	char	   *head = qc_l2_name(":", qc_l2_dbname(), "", 0, &headlen);
	size_t		mheadlen;
	char	   *mhead = qc_l2_name("#m:", qc_l2_dbname(), "", 0, &mheadlen);

	initStringInfo(&pattern);
	qc_glob_escape(&pattern, head, headlen);
	qc_glob_escape(&pattern, prefix, len);
	appendStringInfoChar(&pattern, '*');
	do
	{
		QcRedisCmd	scan;
		redisReply *r[1];
		redisReply *keys;

		qc_cmd_init(&scan, 7);
		qc_cmd_str(&scan, "SCAN");
		qc_cmd_str(&scan, cursor);
		qc_cmd_str(&scan, "MATCH");
		qc_cmd_arg(&scan, pattern.data, pattern.len);
		qc_cmd_str(&scan, "COUNT");
		qc_cmd_str(&scan, "1000");
		if (!qc_redis_run(conn, 1, &scan, r))
			goto failed;
		if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != 2 ||
			r[0]->element[0]->type != REDIS_REPLY_STRING ||
			r[0]->element[1]->type != REDIS_REPLY_ARRAY)
		{
			qc_redis_free_replies(1, r);
			strlcpy(conn->errstr, "unexpected SCAN reply", sizeof(conn->errstr));
			goto failed;
		}
		strlcpy(cursor, r[0]->element[0]->str, sizeof(cursor));
		keys = r[0]->element[1];
		if (keys->elements > 0)
		{
			QcRedisCmd	del;
			redisReply *d[1];
			size_t		j;
			StringInfoData *metas = palloc(sizeof(StringInfoData) * keys->elements);
			int			nm = 0;

			qc_cmd_init(&del, 1 + 2 * keys->elements);
			qc_cmd_str(&del, "UNLINK");
			for (j = 0; j < keys->elements; j++)
			{
				redisReply *kr = keys->element[j];

				if (kr->type != REDIS_REPLY_STRING || kr->len < headlen)
					continue;
				qc_cmd_arg(&del, kr->str, kr->len);
				initStringInfo(&metas[nm]);
				appendBinaryStringInfo(&metas[nm], mhead, mheadlen);
				appendBinaryStringInfo(&metas[nm], kr->str + headlen, kr->len - headlen);
				qc_cmd_arg(&del, metas[nm].data, metas[nm].len);
				nm++;
			}
			if (nm > 0)
			{
				if (!qc_redis_run(conn, 1, &del, d))
				{
					qc_redis_free_replies(1, r);
					goto failed;
				}
				deleted += nm;
				qc_redis_free_replies(1, d);
			}
		}
		qc_redis_free_replies(1, r);
	} while (strcmp(cursor, "0") != 0);

	if (kind == 'p')
	{
		QcRedisCmd	pub;
		StringInfoData msg;
		redisReply *r[1];

		qc_l2_publish_cmd(&pub, &msg, kind, stamp, qc_l2_dbname(), prefix, len);
		if (!qc_redis_run(conn, 1, &pub, r))
			goto failed;
		qc_redis_free_replies(1, r);
	}
	return deleted;

failed:
	qc_l2_failed(conn, true, "Redis invalidation failed");
	return deleted;
}

/* Delete every key with this prefix from Redis and tell the other nodes. */
int64
qc_l2_invalidate_prefix(const char *prefix, uint32 len)
{
	QcRedisConn *conn;

	if ((conn = qc_l2_write_conn()) == NULL)
		return 0;
	return qc_l2_delete_scan(conn, prefix, len, 'p', 0);
}

/*
 * Clear this database in Redis: raise its stamp (which invalidates every
 * value at once, and tells the other nodes), then delete the values.
 */
void
qc_l2_clear(TimestampTz stamp)
{
	QcRedisConn *conn;
	char	   *key;
	size_t		keylen;

	if ((conn = qc_l2_write_conn()) == NULL)
		return;
	key = qc_l2_name("#d:", qc_l2_dbname(), NULL, 0, &keylen);
	qc_l2_stamp(conn, 1, &key, &keylen, stamp, 'c', qc_l2_dbname(), NULL, 0);
	if (conn->ctx != NULL)
		(void) qc_l2_delete_scan(conn, "", 0, 'c', stamp);
}

/*
 * The commit-time invalidations of the triggers: raise the stamps of the
 * tags (NUL-separated in tags, ntags of them), or the database's stamp for
 * the wildcard, and tell the other nodes.  Called from the COMMIT callback
 * with interrupts held: never raises, and is bounded by the timeout.
 */
static void qc_l2_commit_body(const char *db, const char *tags, size_t len,
							  int ntags, bool wildcard, TimestampTz stamp);

void
qc_l2_commit(const char *db, const char *tags, size_t len, int ntags,
			 bool wildcard, TimestampTz stamp)
{
	static MemoryContext cxt = NULL;
	MemoryContext old = CurrentMemoryContext;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "qcache redis commit",
									ALLOCSET_SMALL_SIZES);

	/*
	 * The transaction has committed: an error here would become a PANIC.
	 * Catch any (out of memory, out of file descriptors for the wait set),
	 * and count the invalidations as lost, which the worker makes up for.
	 */
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		qc_l2_commit_body(db, tags, len, ntags, wildcard, stamp);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		qc_l2_lost_write();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(cxt);
}

static void
qc_l2_commit_body(const char *db, const char *tags, size_t len, int ntags,
				  bool wildcard, TimestampTz stamp)
{
	QcRedisConn *conn;
	char	  **keys;
	size_t	   *keylens;
	const char *p;
	int			n = 0;

	if ((conn = qc_l2_write_conn()) == NULL)
		return;
	if (wildcard)
	{
		char	   *key;
		size_t		keylen;

		key = qc_l2_name("#d:", db, NULL, 0, &keylen);
		qc_l2_stamp(conn, 1, &key, &keylen, stamp, 'c', db, NULL, 0);
		return;
	}
	keys = palloc(sizeof(char *) * ntags);
	keylens = palloc(sizeof(size_t) * ntags);
	for (p = tags; p < tags + len && n < ntags; p += strlen(p) + 1)
	{
		keys[n] = qc_l2_name("#t:", db, p, strlen(p), &keylens[n]);
		n++;
	}
	qc_l2_stamp(conn, n, keys, keylens, stamp, 'T', db, tags, len);
}
