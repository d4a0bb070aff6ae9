/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The sweeper: a background worker that reclaims expired entries.
 *
 * Lookups never return an expired entry, but they do not remove it (that
 * would need the partition lock in exclusive mode on the read path).  The
 * sweeper wakes every QC_SWEEP_INTERVAL_MS and frees what is due
 * (qc_store_sweep, store.c): the expired entries, which each partition's
 * expiry wheel names, and the entries that commits' invalidations made
 * stale, which it finds through the index chains of the tags the commits
 * stamped.  Its work per wake-up is in proportion to those entries (and
 * bounded per partition), whatever the cache's size, and a partition with
 * nothing due costs it one lock held for a few reads; an expired entry's
 * memory comes back within about a second of its expiry (later for long
 * ttls, by at most a quarter of the ttl), read or not.  It is registered
 * by library and function name, connects to no database (so that it
 * shows in pg_stat_activity, backend_type "qcache sweeper"), follows the
 * latch loop of worker_spi and autoprewarm, and is restarted by the
 * postmaster if it fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "qcache.h"

/*
 * Register a background worker of qcache (the sweeper, the Redis
 * subscriber); from _PG_init, while preloading.
 */
void
qc_register_worker(const char *name, const char *function)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "qcache", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, name, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Entry point of the sweeper. */
void
qcache_sweeper_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * Connect to no database (shared catalogs only), as the logical
	 * replication launcher does: that is what gives the sweeper its row in
	 * pg_stat_activity.
	 */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("qcache sweeper");

	qc_require_loaded();
	cxt = AllocSetContextCreate(TopMemoryContext, "qcache sweeper",
								ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 QC_SWEEP_INTERVAL_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextSwitchTo(cxt);
		(void) qc_store_sweep(GetCurrentTimestamp());
		qc_twophase_reap();		/* finished prepared transactions */
		qc_wal_tick();			/* standbys: STATE; a standby: its reaper */
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(cxt);
	}
}
