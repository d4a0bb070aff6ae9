/*-------------------------------------------------------------------------
 *
 * qcache.c
 *		Module load: the GUCs, the shared memory hooks and the sweeper.
 *
 * qcache must be in shared_preload_libraries: its cache lives in the main
 * shared memory segment, which only the postmaster can size.  Loaded any
 * other way, _PG_init defines nothing and every SQL function raises
 * ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE with a hint (see
 * qc_require_loaded in shmem.c), as pg_stat_statements does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/guc.h"

#include "qcache.h"
#include "deps.h"

PG_MODULE_MAGIC;

/* GUC variables */
int			qc_memory_kb = 64 * 1024;
int			qc_max_entries = 65536;
int			qc_default_ttl = 300;
int			qc_max_entry_size = 1024 * 1024;
bool		qc_enabled = true;
int			qc_fetch_wait_timeout = 5000;
int			qc_ttl_jitter = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

void		_PG_init(void);

/* Chains qc_shmem_request behind any previous shmem_request hook. */
static void
qcache_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	qc_shmem_request();
	qc_l2_shmem_request();
	qc_twophase_shmem_request();
	qc_wal_shmem_request();
}

/* Chains qc_shmem_startup behind any previous shmem_startup hook. */
static void
qcache_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	qc_shmem_startup();
	qc_l2_shmem_startup();
	qc_twophase_shmem_startup();
	qc_wal_shmem_startup();
}

/*
 * object_access_hook: when a database is dropped, drop its entries, so that
 * a database created later with the same oid starts with none.
 */
static void
qcache_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == DatabaseRelationId && qc_shared)
	{
		qc_require_loaded();
		(void) qc_store_remove_matching(objectId, QC_MATCH_ALL, NULL, 0);
		qc_wal_explicit_match(QC_MATCH_ALL, objectId, NULL, 0);
	}

	/*
	 * A database created, dropped or renamed: the names the Redis subscriber
	 * resolved may be stale (a name dropped and created again has a new oid)
	 */
	if ((access == OAT_POST_CREATE || access == OAT_DROP ||
		 access == OAT_POST_ALTER) &&
		classId == DatabaseRelationId && qc_shared)
		pg_atomic_fetch_add_u32(&qc_shared->db_names_generation, 1);

	/* catalog changes that change query results: ddl.c */
	qc_ddl_object_access(access, classId, objectId, subId);
}

/* The next ProcessUtility: a previous hook's, or PostgreSQL's. */
static void
qcache_standard_utility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * ProcessUtility_hook: notice SET TRANSACTION SNAPSHOT.  A transaction that
 * imports a snapshot may read data older than its own start, which is the
 * build point of what it stores (invalidate.c), so it stores nothing.  And
 * DDL: ddl.c stamps what a statement may change, and watches new children
 * of watched tables.
 */
static void
qcache_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	uint64		created;
	Oid			unknown_db = InvalidOid;

	if (IsA(stmt, VariableSetStmt) &&
		((VariableSetStmt *) stmt)->kind == VAR_SET_MULTI &&
		strcmp(((VariableSetStmt *) stmt)->name, "TRANSACTION SNAPSHOT") == 0)
		qc_inval_snapshot_imported();
	created = qc_ddl_before(stmt);

	/* COMMIT or ROLLBACK PREPARED: reap the records at this commit */
	if (IsA(stmt, TransactionStmt) && qc_shared != NULL &&
		(((TransactionStmt *) stmt)->kind == TRANS_STMT_COMMIT_PREPARED ||
		 ((TransactionStmt *) stmt)->kind == TRANS_STMT_ROLLBACK_PREPARED))
		qc_twophase_finishing();

	/* COMMIT PREPARED of a transaction qcache has no record of */
	if (IsA(stmt, TransactionStmt) &&
		((TransactionStmt *) stmt)->kind == TRANS_STMT_COMMIT_PREPARED &&
		qc_shared != NULL)
		unknown_db = qc_twophase_unknown_begin(((TransactionStmt *) stmt)->gid);

	if (OidIsValid(unknown_db))
	{
		PG_TRY();
		{
			qcache_standard_utility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
		}
		PG_CATCH();
		{
			/* the commit may have happened before the error: stamp too */
			qc_twophase_unknown_end(unknown_db, true);
			PG_RE_THROW();
		}
		PG_END_TRY();
		qc_twophase_unknown_end(unknown_db, true);
	}
	else
		qcache_standard_utility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	qc_ddl_after(stmt, created);
}

/* Module load callback. */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("qcache.memory",
							"Shared memory for cache entries, their index included.",
							NULL,
							&qc_memory_kb,
							64 * 1024,
							2 * 1024,
							(int) (QC_MAX_MEMORY / 1024),
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("qcache.max_entries",
							"Maximum number of cache entries.",
							NULL,
							&qc_max_entries,
							65536,
							1024,
							INT_MAX / 4,
							PGC_POSTMASTER,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("qcache.default_ttl",
							"Time to live of an entry when a call gives none; 0 means no expiry.",
							NULL,
							&qc_default_ttl,
							300,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("qcache.max_entry_size",
							"Largest value that is cached; larger ones are not cached.",
							NULL,
							&qc_max_entry_size,
							1024 * 1024,
							64,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL,
							NULL,
							NULL);

	DefineCustomBoolVariable("qcache.enabled",
							 "Serve and store cache entries.",
							 "Off: gets miss, sets store nothing, qcache_fetch runs its query.",
							 &qc_enabled,
							 true,
							 PGC_USERSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomIntVariable("qcache.fetch_wait_timeout",
							"How long qcache_fetch waits for another session computing the same key.",
							"Past it, the session runs the query itself; 0 disables waiting.",
							&qc_fetch_wait_timeout,
							5000,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("qcache.ttl_jitter",
							"Shortens each entry's TTL by a random part of up to this percentage.",
							"So that entries stored together do not expire together; 0: exact TTLs.",
							&qc_ttl_jitter,
							0,
							0,
							100,
							PGC_USERSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("qcache.debug_l2_copy_delay",
							"For tests only: a pause between reading a value from Redis and copying it into L1.",
							NULL,
							&qc_debug_l2_copy_delay,
							0,
							0,
							60 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL,
							NULL,
							NULL);

	DefineCustomStringVariable("qcache.redis_url",
							   "Redis second level: redis://[[user]:password@]host[:port][/db], redis-sentinel://host:port[,host:port...]/master[/db], unix:///path[?db=N] or /path.",
							   "Empty: no second level.  Readable by superusers only, since it may hold a password.",
							   &qc_redis_url,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   qc_redis_url_check,
							   qc_redis_config_assign,
							   NULL);

	DefineCustomStringVariable("qcache.redis_prefix",
							   "Prefix of qcache's keys and channel in Redis.",
							   NULL,
							   &qc_redis_prefix,
							   "qcache",
							   PGC_SIGHUP,
							   0,
							   NULL,
							   qc_redis_config_assign,
							   NULL);

	DefineCustomIntVariable("qcache.l1_ttl",
							"With a Redis level: cap on an entry's life in this node's shared memory.",
							"0 keeps nothing in this node's memory while Redis answers.",
							&qc_l1_ttl,
							60,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("qcache.redis_timeout",
							"Bound on each Redis connect and command.",
							NULL,
							&qc_redis_timeout,
							50,
							1,
							60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL,
							qc_redis_timeout_assign,
							NULL);

	DefineCustomBoolVariable("qcache.wal_invalidation",
							 "Write invalidations to the WAL, so that hot standbys cache under the same guarantee.",
							 "Every standby then needs qcache in shared_preload_libraries: it replays qcache's WAL records (resource manager 128).",
							 &qc_wal_invalidation,
							 false,
							 PGC_POSTMASTER,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomIntVariable("qcache.debug_wal_stamp_delay",
							"For tests only: a pause between a commit and its STAMP record (qcache.wal_invalidation).",
							NULL,
							&qc_debug_wal_stamp_delay,
							0,
							0,
							60 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL,
							NULL,
							NULL);

	MarkGUCPrefixReserved("qcache");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = qcache_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = qcache_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = qcache_object_access;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = qcache_ProcessUtility;

	qc_register_worker("qcache sweeper", "qcache_sweeper_main");
	qc_register_worker("qcache redis subscriber", "qcache_l2_main");
	qc_inval_register();
	qc_wal_register();
	qc_deps_register();
	qc_security_register();
	qc_l2_install_log_filter();
}
