/*-------------------------------------------------------------------------
 *
 * redis_worker.c
 *		The Redis subscriber: a background worker that applies other
 *		nodes' invalidations to this node's L1, and closes the circuit
 *		breaker when Redis is healthy.
 *
 * The worker keeps two connections to Redis: one SUBSCRIBEd to the
 * invalidation channel (P#inv) and one for commands.  Every message names
 * its node, kind, stamp, database and payload (redis.c writes them); the
 * worker skips its own node's messages and applies the others to L1 with
 * the same calls the local SQL functions use: a key is removed, a tag or a
 * database is stamped (invalidate.c) and its entries removed, a prefix is
 * removed, and 'F' drops the whole L1.  Database names are resolved to
 * OIDs in a short transaction (the worker connects to no database and
 * reads the shared catalog pg_database).
 *
 * Trust.  While the worker is subscribed, this node hears every
 * invalidation that any node publishes.  When the subscription is lost
 * (Redis restarted, the connection was killed, the network broke, or Redis
 * stopped answering the PING the worker sends every second), the node
 * cannot know what it missed: the worker opens the breaker, drops every L1
 * entry and logs it; once subscribed again it drops L1 once more (other
 * nodes may have published in between) before it closes the breaker.
 * Before closing it, it pays what this node owes Redis (redis_debt.c):
 * the keys, tags, prefixes and databases whose invalidations did not reach
 * it, or everything (the global stamp, and 'F' so that every node drops
 * its L1) when the node cannot know.  L2 is therefore never served again
 * with an invalidation lost.  Only this worker closes the breaker;
 * backends only open it, so they never pay Redis's timeout while it is
 * down.
 *
 * Settings.  The worker moves the node's target (redis_debt.c) when the
 * settings really change (their identity, not the reload: a reload that
 * changes nothing keeps the subscription and L1).  Moving owes the new
 * target everything, since the invalidations this node made meanwhile
 * went elsewhere.  With Sentinel, the worker checks every second that its
 * server is still the master; a new master (its run_id) counts as a
 * restart.
 *
 * Encodings.  Messages carry keys and tags in UTF-8.  A database whose
 * encoding is neither UTF-8 nor SQL_ASCII gets them converted only if they
 * are ASCII; otherwise (the worker, connected to no database, cannot
 * convert) it drops that database's entries, and for a tag stamps the
 * database: coarser, never stale.
 *
 * This is not the sweeper's process, so that a long sweep never delays an
 * invalidation, and a slow Redis never delays a sweep.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "qcache.h"
#include "redis.h"

/* Interval of the PINGs on the subscription, and how late a PONG may be. */
#define QC_L2_PING_MS			1000
#define QC_L2_PONG_LATE_MS		3000

/* Interval of the health checks while the breaker is open. */
#define QC_L2_PROBE_MS			100

static QcRedisConn sub;			/* SUBSCRIBEd */
static QcRedisConn cmd;			/* commands */
static bool subscribed = false;
static TimestampTz last_ping = 0;
static TimestampTz last_pong = 0;
static TimestampTz last_role = 0;

/* Drop every L1 entry of every database, and say why. */
static void
qc_drop_l1(const char *why)
{
	uint64		n;

	pg_atomic_fetch_add_u64(&qc_shared->l2_removals, 1);
	n = qc_store_remove_matching(InvalidOid, QC_MATCH_EVERYTHING, NULL, 0);

	ereport(LOG,
			(errmsg("qcache: %s; dropped all %llu local cache entries, which may have missed invalidations",
					why, (unsigned long long) n)));
}

/* The subscription is gone: open the breaker and drop L1. */
static void
qc_lost(const char *why)
{
	bool		was = subscribed;

	pg_atomic_write_u32(&qc_shared->l2_up, 0);
	qc_redis_disconnect(&sub);
	qc_redis_disconnect(&cmd);
	subscribed = false;
	qc_l2_set_state(QC_L2_STATE_DOWN);
	qc_l2_set_error(why);
	if (was)
		qc_drop_l1(why);
}

/*
 * Has Redis restarted (or failed over) since we last saw it?  Its run_id
 * changes then, and it may have come back without writes it had
 * acknowledged (an RDB snapshot, AOF everysec, an asynchronous replica):
 * stamps and deletions that brought values down may be gone.  Count that as
 * lost writes, so that the global stamp goes up before L2 serves again.
 */
static char last_run_id[41] = "";

static void
qc_check_run_id(void)
{
	QcRedisCmd	c;
	redisReply *r[1];
	const char *p;

	qc_cmd_init(&c, 2);
	qc_cmd_str(&c, "INFO");
	qc_cmd_str(&c, "server");
	if (!qc_redis_run(&cmd, 1, &c, r))
	{
		/* unknown: assume the worst */
		qc_l2_owe('g', NULL, NULL, 0);
		return;
	}
	if (r[0]->type == REDIS_REPLY_STRING &&
		(p = strstr(r[0]->str, "run_id:")) != NULL &&
		strspn(p + 7, "0123456789abcdef") == 40)
	{
		if (last_run_id[0] != '\0' && strncmp(last_run_id, p + 7, 40) != 0)
		{
			qc_l2_owe('g', NULL, NULL, 0);
			ereport(LOG,
					(errmsg("qcache: Redis restarted or failed over (its run_id changed); it may have lost invalidations")));
		}
		memcpy(last_run_id, p + 7, 40);
		last_run_id[40] = '\0';
	}
	else
		qc_l2_owe('g', NULL, NULL, 0);
	qc_redis_free_replies(1, r);
}

/* At exit: nobody applies invalidations any more, so nobody uses Redis. */
static void
qc_l2_worker_exit(int code, Datum arg)
{
	if (qc_shared != NULL)
		pg_atomic_write_u32(&qc_shared->l2_up, 0);
	qc_l2_set_worker_latch(NULL);
}

/* Connect both connections and subscribe.  False on failure. */
static bool
qc_subscribe(void)
{
	QcRedisCmd	c;
	redisReply *r[1];
	size_t		len;
	char	   *channel;
	bool		ok;

	if (!qc_l2_connect(&sub) || !qc_l2_connect(&cmd))
	{
		QcRedisConn *failed = sub.ctx == NULL ? &sub : &cmd;
		char		detail[512];

		snprintf(detail, sizeof(detail), "%s (%s)", failed->errstr,
				 qc_redis_where(&failed->target));
		qc_l2_note_error("cannot connect to Redis", failed);
		qc_l2_set_state(QC_L2_STATE_DOWN);
		qc_l2_warn(LOG, "cannot connect to Redis", detail);
		qc_redis_disconnect(&sub);
		qc_redis_disconnect(&cmd);
		return false;
	}
	len = strlen(qc_redis_prefix) + 4;
	channel = psprintf("%s#inv", qc_redis_prefix);
	qc_cmd_init(&c, 2);
	qc_cmd_str(&c, "SUBSCRIBE");
	qc_cmd_arg(&c, channel, len);
	if (!qc_redis_run(&sub, 1, &c, r))
	{
		qc_redis_disconnect(&cmd);
		return false;
	}
	ok = r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 3 &&
		r[0]->element[0]->type == REDIS_REPLY_STRING &&
		strcmp(r[0]->element[0]->str, "subscribe") == 0;
	qc_redis_free_replies(1, r);
	if (!ok)
	{
		qc_redis_disconnect(&sub);
		qc_redis_disconnect(&cmd);
		return false;
	}
	subscribed = true;
	last_ping = last_pong = last_role = GetCurrentTimestamp();
	qc_check_run_id();
	return true;
}

/*
 * The breaker is open and Redis answers: pay what this node owes
 * (redis_debt.c), then close the breaker.
 */
static void
qc_recover(void)
{
	if (pg_atomic_exchange_u32(&qc_shared->l2_dirty, 0) != 0)
	{
		QcL2Debt   *items;
		bool		owes_all;
		uint64		upto;
		int			n;

		if (pg_atomic_read_u32(&qc_shared->l2_up) == 0)
			qc_l2_set_state(QC_L2_STATE_RECOVERING);
		n = qc_l2_debt_snapshot(&items, &owes_all, &upto);
		if (!qc_l2_pay(&cmd, items, n, owes_all))
		{
			qc_l2_note_error("paying the debt failed", &cmd);
			pg_atomic_write_u32(&qc_shared->l2_dirty, 1);
			return;
		}
		if (qc_l2_paid(upto))
		{
			/* owed again meanwhile: next time round */
			pg_atomic_write_u32(&qc_shared->l2_dirty, 1);
			return;
		}
	}
	pg_atomic_write_u32(&qc_shared->l2_up, 1);

	/* a write lost meanwhile: open again, make up for it next time round */
	pg_memory_barrier();
	if (pg_atomic_read_u32(&qc_shared->l2_dirty) != 0)
		pg_atomic_write_u32(&qc_shared->l2_up, 0);
	else
		qc_l2_set_state(QC_L2_STATE_UP);
}

/* Sentinel: is the server we use still the master? */
static bool
qc_check_role(void)
{
	QcRedisCmd	c;
	redisReply *r[1];
	bool		ok;

	qc_cmd_init(&c, 1);
	qc_cmd_str(&c, "ROLE");
	if (!qc_redis_run(&cmd, 1, &c, r))
		return false;
	ok = r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements >= 1 &&
		r[0]->element[0]->type == REDIS_REPLY_STRING &&
		strcmp(r[0]->element[0]->str, "master") == 0;
	qc_redis_free_replies(1, r);
	return ok;
}

/* Is Redis answering on the command connection? */
static bool
qc_probe(void)
{
	QcRedisCmd	c;
	redisReply *r[1];
	bool		ok;

	if (cmd.ctx == NULL && !qc_l2_connect(&cmd))
	{
		qc_l2_note_error("cannot connect to Redis", &cmd);
		qc_l2_set_state(QC_L2_STATE_DOWN);
		return false;
	}
	qc_cmd_init(&c, 1);
	qc_cmd_str(&c, "PING");
	if (!qc_redis_run(&cmd, 1, &c, r))
	{
		qc_l2_note_error("Redis does not answer", &cmd);
		qc_l2_set_state(QC_L2_STATE_DOWN);
		return false;
	}
	ok = r[0]->type == REDIS_REPLY_STATUS;
	qc_redis_free_replies(1, r);
	return ok;
}

/* Send a PING on the subscription, without waiting for the answer. */
static bool
qc_ping_subscription(void)
{
	const char *argv[1] = {"PING"};
	size_t		argvlen[1] = {4};
	int			done = 0;

	if (redisAppendCommandArgv(sub.ctx, 1, argv, argvlen) != REDIS_OK ||
		redisBufferWrite(sub.ctx, &done) == REDIS_ERR)
		return false;
	last_ping = GetCurrentTimestamp();
	return true;
}

/*
 * Names resolved so far.  Emptied when any database is created, dropped or
 * altered (QcShared.db_names_generation, bumped by qcache.c's object access
 * hook), so a name never maps to a database it no longer names: a name
 * dropped and created again is flushed by the creation.  A name not found
 * is not remembered.
 */
typedef struct QcDbName
{
	char		name[NAMEDATALEN];
	Oid			oid;
	int			encoding;
} QcDbName;

static HTAB *db_names = NULL;
static uint32 db_names_generation = 0;

static Oid	qc_database_oid_scan(const char *name, int *encoding);

/*
 * Resolve a database name, and give its encoding; InvalidOid if there is
 * no such database here.
 */
static Oid
qc_database_oid(const char *name, int *encoding)
{
	uint32		gen = pg_atomic_read_u32(&qc_shared->db_names_generation);
	QcDbName   *e;
	bool		found;
	Oid			oid;

	if (strlen(name) >= NAMEDATALEN)
		return InvalidOid;
	if (db_names == NULL || gen != db_names_generation)
	{
		HASHCTL		ctl;

		if (db_names != NULL)
			hash_destroy(db_names);
		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(QcDbName);
		ctl.hcxt = TopMemoryContext;
		db_names = hash_create("qcache database names", 16, &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		db_names_generation = gen;
	}
	e = hash_search(db_names, name, HASH_FIND, NULL);
	if (e != NULL)
	{
		*encoding = e->encoding;
		return e->oid;
	}
	oid = qc_database_oid_scan(name, encoding);
	if (OidIsValid(oid) &&
		pg_atomic_read_u32(&qc_shared->db_names_generation) == gen)
	{
		e = hash_search(db_names, name, HASH_ENTER, &found);
		e->oid = oid;
		e->encoding = *encoding;
	}
	return oid;
}

/*
 * A heap scan of pg_database, as the autovacuum launcher does: a process
 * connected to no database cannot use the catalog indexes.
 */
static Oid
qc_database_oid_scan(const char *name, int *encoding)
{
	Oid			oid = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext old = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0)
		{
			oid = db->oid;
			*encoding = db->encoding;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);
	return oid;
}

/* Is s pure ASCII? */
static bool
qc_ascii(const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		if ((unsigned char) s[i] > 0x7f)
			return false;
	return true;
}

/* Apply one message of another node to L1. */
static void
qc_apply(const char *msg, size_t len)
{
	const char *f[5];
	size_t		flen[5];
	const char *p = msg;
	const char *end = msg + len;
	char		node[17];
	char	   *db;
	TimestampTz stamp;
	Oid			dbid;
	int			encoding = PG_SQL_ASCII;
	int			i;

	for (i = 0; i < 4; i++)
	{
		const char *z = memchr(p, '\0', end - p);

		if (z == NULL)
			return;				/* not ours */
		f[i] = p;
		flen[i] = z - p;
		p = z + 1;
	}
	f[4] = p;
	flen[4] = end - p;
	if (flen[0] != 16 || flen[1] != 1)
		return;
	snprintf(node, sizeof(node), "%016llx",
			 (unsigned long long) qc_shared->node_id);
	if (memcmp(f[0], node, 16) == 0)
		return;
	stamp = (TimestampTz) strtoll(f[2], NULL, 10);

	/* a value read from Redis before this removal must not enter L1 after */
	if (f[1][0] != 't' && f[1][0] != 'T')
		pg_atomic_fetch_add_u64(&qc_shared->l2_removals, 1);
	if (f[1][0] == 'F')
	{
		qc_drop_l1("another node could not reach Redis with its invalidations");
		return;
	}
	db = pnstrdup(f[3], flen[3]);
	dbid = qc_database_oid(db, &encoding);
	if (!OidIsValid(dbid))
		return;

	/* UTF-8 we cannot convert here: coarser (see the header) */
	if (encoding != PG_UTF8 && encoding != PG_SQL_ASCII &&
		!qc_ascii(f[4], flen[4]))
	{
		if (f[1][0] == 't' || f[1][0] == 'T')
			qc_inval_tag_remote(dbid, 0, stamp);
		else
			pg_atomic_fetch_add_u64(&qc_shared->l2_removals, 1);
		(void) qc_store_remove_matching(dbid, QC_MATCH_ALL, NULL, 0);
		return;
	}

	switch (f[1][0])
	{
		case 'k':
			{
				QcKey		key;

				key.dbid = dbid;
				key.data = f[4];
				key.len = flen[4];
				key.hash = qc_hash_key(dbid, key.data, key.len);
				(void) qc_store_remove(&key);
				break;
			}
		case 't':
			qc_inval_tag_remote(dbid, qc_hash_tag(f[4], flen[4]), stamp);
			(void) qc_store_remove_matching(dbid, QC_MATCH_TAG, f[4], flen[4]);
			break;
		case 'T':
			{
				const char *t;
				int			n = 0;

				for (t = f[4]; t < end; t += strlen(t) + 1)
				{
					size_t		tl = strnlen(t, end - t);

					qc_inval_tag_remote(dbid, qc_hash_tag(t, tl), stamp);
					/* few tags: also free their entries now */
					if (++n <= 8)
						(void) qc_store_remove_matching(dbid, QC_MATCH_TAG, t, tl);
				}
				break;
			}
		case 'p':
			(void) qc_store_remove_matching(dbid, QC_MATCH_PREFIX, f[4], flen[4]);
			break;
		case 'c':
			qc_inval_tag_remote(dbid, 0, stamp);
			(void) qc_store_remove_matching(dbid, QC_MATCH_ALL, NULL, 0);
			break;
		default:
			break;
	}
}

/* Read what the subscription has for us.  False if it is lost. */
static bool
qc_read_subscription(void)
{
	if (redisBufferRead(sub.ctx) == REDIS_ERR)
		return false;
	for (;;)
	{
		void	   *v = NULL;
		redisReply *r;

		if (redisGetReplyFromReader(sub.ctx, &v) == REDIS_ERR)
			return false;
		if (v == NULL)
			return true;
		r = v;
		if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
			r->element[0]->type == REDIS_REPLY_STRING)
		{
			if (strcmp(r->element[0]->str, "message") == 0 &&
				r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
				qc_apply(r->element[2]->str, r->element[2]->len);
			else if (strcmp(r->element[0]->str, "pong") == 0)
				last_pong = GetCurrentTimestamp();
		}
		freeReplyObject(r);
	}
}

/* Entry point of the subscriber. */
void
qcache_l2_main(Datum arg)
{
	MemoryContext cxt;
	TimestampTz next_attempt = 0;
	TimestampTz next_probe = 0;
	int			backoff_ms = 100;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("qcache redis subscriber");

	qc_require_loaded();
	pg_atomic_write_u32(&qc_shared->l2_up, 0);
	qc_l2_set_worker_latch(MyLatch);
	before_shmem_exit(qc_l2_worker_exit, (Datum) 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "qcache redis subscriber",
								ALLOCSET_DEFAULT_SIZES);
	/* load the catalog caches now, not on the first invalidation */
	{
		int			enc;

		(void) qc_database_oid("template1", &enc);
	}

	for (;;)
	{
		TimestampTz now;
		long		timeout;

		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(cxt);
		MemoryContextSwitchTo(cxt);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* only a real change of the settings moves the node */
		if (qc_redis_current_identity() != qc_l2_target())
		{
			qc_l2_move_target(qc_redis_current_identity());
			if (subscribed)
				qc_lost(qc_l2_active() ? "the Redis settings changed" :
						"qcache.redis_url was emptied");
		}

		if (!qc_l2_active())
		{
			if (subscribed)
				qc_lost("qcache.redis_url was emptied");
			pg_atomic_write_u32(&qc_shared->l2_up, 0);
			qc_l2_set_state(QC_L2_STATE_OFF);
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		now = GetCurrentTimestamp();
		if (!subscribed)
		{
			if (now < next_attempt)
			{
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Max((next_attempt - now) / 1000, 1),
								 PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				continue;
			}
			if (!qc_subscribe())
			{
				next_attempt = now + (TimestampTz) backoff_ms * 1000;
				backoff_ms = Min(backoff_ms * 2, 2000);
				continue;
			}
			backoff_ms = 100;
			qc_drop_l1(psprintf("subscribed to invalidations at Redis %s",
								qc_redis_where(&sub.target)));
			next_probe = 0;
		}

		/*
		 * Breaker open: is Redis answering?  then pay and close it.  Also
		 * with the breaker closed when something is owed that did not open it
		 * (a purge for direct readers, redis_debt.c).
		 */
		if ((pg_atomic_read_u32(&qc_shared->l2_up) == 0 ||
			 pg_atomic_read_u32(&qc_shared->l2_dirty) != 0) &&
			now >= next_probe)
		{
			if (qc_probe())
				qc_recover();
			next_probe = now + QC_L2_PROBE_MS * 1000;
		}

		/* Sentinel: a failover may have demoted our server */
		if (sub.target.sentinel &&
			now - last_role >= (TimestampTz) QC_L2_PING_MS * 1000)
		{
			last_role = now;
			if (!qc_check_role())
			{
				qc_lost("the Redis master failed over");
				continue;
			}
		}

		/* liveness of the subscription */
		if (now - last_pong > (TimestampTz) (QC_L2_PONG_LATE_MS + QC_L2_PING_MS) * 1000)
		{
			qc_lost("Redis stopped answering on the invalidation channel");
			continue;
		}
		if (now - last_ping >= (TimestampTz) QC_L2_PING_MS * 1000 &&
			!qc_ping_subscription())
		{
			qc_lost("lost the Redis invalidation channel");
			continue;
		}

		timeout = pg_atomic_read_u32(&qc_shared->l2_up) == 0 ?
			QC_L2_PROBE_MS : QC_L2_PING_MS;
		{
			WaitEvent	ev;
			int			n;

			if (sub.sock_events != WL_SOCKET_READABLE)
			{
				ModifyWaitEvent(sub.wes, sub.sock_pos, WL_SOCKET_READABLE, NULL);
				sub.sock_events = WL_SOCKET_READABLE;
			}
			n = WaitEventSetWait(sub.wes, timeout, &ev, 1, PG_WAIT_EXTENSION);
			if (n > 0 && (ev.events & WL_LATCH_SET))
				ResetLatch(MyLatch);
			else if (n > 0 && (ev.events & WL_SOCKET_READABLE))
			{
				if (!qc_read_subscription())
					qc_lost("lost the Redis invalidation channel");
			}
		}
	}
}
