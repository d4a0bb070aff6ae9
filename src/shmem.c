/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Sizing, creation and attachment of qcache's shared memory.
 *
 * Everything qcache keeps lives in one block of the main shared memory
 * segment, of exactly qcache.memory bytes, requested by the postmaster:
 *
 *		QcShared | stat slots | bucket array | index heads | presence
 *		counters | invalidation points | single-flight slots |
 *		per-namespace counters | expiry wheels | stale-tag queue | DSA
 *		area (the rest)
 *
 * The DSA area is created in place (the postmaster cannot create DSM
 * segments) with a size limit equal to its own size, so it never grows
 * past qcache.memory: when it is full, dsa_allocate_extended with
 * DSA_ALLOC_NO_OOM fails and store.c evicts.  Each backend attaches to the
 * area once, lazily, on its first call (qc_require_loaded).
 *
 * After a crash the postmaster reinitialises shared memory and this file's
 * startup hook builds an empty cache again: a backend that died holding a
 * partition lock cannot leave the cache locked or half-linked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "qcache.h"

QcShared   *qc_shared = NULL;
dsa_area   *qc_dsa = NULL;
uint32	   *qc_buckets = NULL;
uint32	   *qc_idxheads = NULL;
pg_atomic_uint32 *qc_presence = NULL;
uint32	   *qc_wheel = NULL;

/* Bytes of the expiry wheels' heads (store.c). */
#define QC_WHEEL_BYTES \
	((Size) QC_NUM_PARTITIONS * QC_WHEEL_HEADS * sizeof(uint32))

/* Smallest DSA area we accept: room for a few superblocks. */
#define QC_MIN_DSA_SIZE		(1024 * 1024)

/* Number of stat slots: one per PGPROC. */
static int
qc_num_slots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

/*
 * Number of buckets: the power of 2 that keeps a full cache's load between
 * 2/3 and 4/3 entries per bucket (the least one no smaller than 3/4 of
 * max_entries).  Rounding up to max_entries instead would cost up to twice
 * the buckets (8 bytes each, with the index heads): 13 bytes per entry at
 * 10,000 entries, against 6.5 this way, for chains that are 1.2 long
 * there instead of 0.6.
 */
static uint32
qc_num_buckets(void)
{
	uint32		n = QC_NUM_PARTITIONS;
	uint64		want = ((uint64) qc_max_entries * 3 + 3) / 4;

	while (n < want)
		n <<= 1;
	return n;
}

/* Bytes of the fixed part (everything but the DSA area), MAXALIGNed. */
static Size
qc_fixed_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(QcShared));
	size = add_size(size, MAXALIGN(qc_stats_size(qc_num_slots())));
	size = add_size(size, MAXALIGN(mul_size(qc_num_buckets(),
											sizeof(uint32))));
	size = add_size(size, MAXALIGN(mul_size(qc_num_buckets(),
											sizeof(uint32))));
	size = add_size(size, MAXALIGN(mul_size(QC_PRESENCE_SLOTS,
											sizeof(pg_atomic_uint32))));
	size = add_size(size, MAXALIGN(qc_inval_size()));
	size = add_size(size, MAXALIGN(qc_flight_size()));
	size = add_size(size, MAXALIGN(qc_ns_size()));
	size = add_size(size, MAXALIGN(QC_WHEEL_BYTES));
	size = add_size(size, MAXALIGN(sizeof(QcStaleQueue)));
	return size;
}

/* Total shared memory qcache asks for: qcache.memory. */
Size
qc_shmem_size(void)
{
	return (Size) qc_memory_kb * 1024;
}

/*
 * shmem_request_hook: reserve the block, after checking that the index
 * leaves room for entries.
 */
void
qc_shmem_request(void)
{
	Size		fixed = qc_fixed_size();

	if (qc_shmem_size() < fixed || qc_shmem_size() - fixed < QC_MIN_DSA_SIZE)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("qcache.memory is too small for qcache.max_entries"),
				 errdetail("The index for %d entries takes %zu kB; at least %d kB more are needed for the entries themselves.",
						   qc_max_entries, fixed / 1024, QC_MIN_DSA_SIZE / 1024),
				 errhint("Raise qcache.memory or lower qcache.max_entries.")));

	RequestAddinShmemSpace(qc_shmem_size());
}

/*
 * shmem_startup_hook: create the shared state, or find it (EXEC_BACKEND).
 * Also runs after a crash, on freshly initialised memory.
 */
void
qc_shmem_startup(void)
{
	bool		found;
	char	   *base;
	Size		off;
	int			i;

	/* reset in case this is a restart within the postmaster */
	qc_shared = NULL;
	qc_dsa = NULL;
	qc_buckets = NULL;
	qc_idxheads = NULL;
	qc_presence = NULL;
	qc_wheel = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	base = ShmemInitStruct("qcache", qc_shmem_size(), &found);
	qc_shared = (QcShared *) base;

	if (!found)
	{
		QcShared   *s = qc_shared;
		int			part_tranche = LWLockNewTrancheId();
		int			idx_tranche = LWLockNewTrancheId();
		dsa_area   *area;

		memset(s, 0, sizeof(QcShared));
		s->nslots = qc_num_slots();
		s->nbuckets = qc_num_buckets();
		s->max_entries = qc_max_entries;
		s->bytes_limit = qc_shmem_size();
		s->index_bytes = qc_fixed_size();
		s->started = GetCurrentTimestamp();

		off = MAXALIGN(sizeof(QcShared));
		s->slots_off = off;
		off += MAXALIGN(qc_stats_size(s->nslots));
		s->buckets_off = off;
		off += MAXALIGN(mul_size(s->nbuckets, sizeof(uint32)));
		s->idxheads_off = off;
		off += MAXALIGN(mul_size(s->nbuckets, sizeof(uint32)));
		s->presence_off = off;
		off += MAXALIGN(mul_size(QC_PRESENCE_SLOTS, sizeof(pg_atomic_uint32)));
		s->tagslots_off = off;
		off += MAXALIGN(qc_inval_size());
		s->flights_off = off;
		off += MAXALIGN(qc_flight_size());
		s->ns_off = off;
		off += MAXALIGN(qc_ns_size());
		s->wheel_off = off;
		off += MAXALIGN(QC_WHEEL_BYTES);
		s->stale_off = off;
		off += MAXALIGN(sizeof(QcStaleQueue));
		s->dsa_off = off;
		s->dsa_size = qc_shmem_size() - off;

		pg_atomic_init_u32(&s->nentries, 0);
		pg_atomic_init_u32(&s->nkilled, 0);
		pg_atomic_init_u64(&s->bytes_used, s->index_bytes);
		pg_atomic_init_u32(&s->evict_hand, 0);
		pg_atomic_init_u64(&s->last_trim, 0);
		if (!pg_strong_random(&s->node_id, sizeof(s->node_id)))
			s->node_id = (uint64) s->started ^ ((uint64) MyProcPid << 32);
		if (!pg_strong_random(s->digest_key, sizeof(s->digest_key)))
			ereport(FATAL,
					(errmsg("could not generate the random key of qcache's fetch digests")));
		pg_atomic_init_u32(&s->l2_up, 0);
		pg_atomic_init_u32(&s->l2_dirty, 0);
		pg_atomic_init_u64(&s->l2_warned, 0);
		pg_atomic_init_u64(&s->l2_removals, 0);
		pg_atomic_init_u32(&s->db_names_generation, 0);
		SpinLockInit(&s->stats_lock);
		s->stats_reset = s->started;

		for (i = 0; i < QC_NUM_PARTITIONS; i++)
			LWLockInitialize(&s->idxlocks[i].lock, idx_tranche);
		for (i = 0; i < QC_NUM_PARTITIONS; i++)
		{
			LWLockInitialize(&s->partitions[i].d.lock, part_tranche);
			s->partitions[i].d.clock = 0;
			s->partitions[i].d.evict_cursor = 0;
			s->partitions[i].d.wheel_done = 0;
			s->partitions[i].d.sweep_cursor = 0;
			s->partitions[i].d.sweep_dead = false;
			s->partitions[i].d.sweep_dead_cutoff = 0;
			memset(s->partitions[i].d.dbcount, 0,
				   sizeof(s->partitions[i].d.dbcount));
		}

		qc_buckets = (uint32 *) (base + s->buckets_off);
		for (i = 0; i < (int) s->nbuckets; i++)
			qc_buckets[i] = 0;
		qc_idxheads = (uint32 *) (base + s->idxheads_off);
		for (i = 0; i < (int) s->nbuckets; i++)
			qc_idxheads[i] = 0;
		qc_presence = (pg_atomic_uint32 *) (base + s->presence_off);
		for (i = 0; i < QC_PRESENCE_SLOTS; i++)
			pg_atomic_init_u32(&qc_presence[i], 0);
		qc_wheel = (uint32 *) (base + s->wheel_off);
		memset(qc_wheel, 0, QC_WHEEL_BYTES);
		{
			QcStaleQueue *q = (QcStaleQueue *) (base + s->stale_off);

			SpinLockInit(&q->lock);
			q->n = 0;
			q->overflow = false;
			q->kn = 0;
			memset(q->filter, 0, sizeof(q->filter));
			memset(q->kfilter, 0, sizeof(q->kfilter));
		}

		qc_stats_init();
		qc_inval_init();
		qc_flight_init();
		qc_ns_init();

		/*
		 * The area outlives every backend: pin it, and let the postmaster
		 * drop its own mapping object; backends attach their own.
		 */
		s->dsa_tranche = LWLockNewTrancheId();
		area = dsa_create_in_place(base + s->dsa_off, s->dsa_size,
								   s->dsa_tranche, NULL);
		dsa_set_size_limit(area, s->dsa_size);
		dsa_pin(area);
		dsa_detach(area);
	}
	qc_buckets = (uint32 *) (base + qc_shared->buckets_off);
	qc_idxheads = (uint32 *) (base + qc_shared->idxheads_off);
	qc_presence = (pg_atomic_uint32 *) (base + qc_shared->presence_off);
	qc_wheel = (uint32 *) (base + qc_shared->wheel_off);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Attach this backend to the DSA area (once) and name the tranches.
 */
void
qc_attach(void)
{
	MemoryContext oldcxt;

	if (qc_dsa != NULL)
		return;

	LWLockRegisterTranche(qc_shared->partitions[0].d.lock.tranche,
						  "qcache_partition");
	LWLockRegisterTranche(qc_shared->dsa_tranche, "qcache_dsa");
	LWLockRegisterTranche(qc_shared->idxlocks[0].lock.tranche, "qcache_index");

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	qc_dsa = dsa_attach_in_place((char *) qc_shared + qc_shared->dsa_off,
								 NULL);
	dsa_pin_mapping(qc_dsa);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Raise the not-preloaded error, or make sure this backend is attached.
 * Every SQL entry point calls this first.
 */
void
qc_require_loaded(void)
{
	if (unlikely(qc_shared == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("qcache must be loaded via \"shared_preload_libraries\""),
				 errhint("Add qcache to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (unlikely(qc_dsa == NULL))
		qc_attach();
}
