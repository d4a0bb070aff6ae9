/*-------------------------------------------------------------------------
 *
 * stats.c
 *		qcache's cumulative counters.
 *
 * Every process counts into its own slot of shared memory, indexed by its
 * pgprocno: only the owner writes a slot (an atomic store of its own read
 * plus n, so no locked instruction on the hot path), and readers sum all
 * slots.  A PGPROC serves one process at a time, so a slot never has two
 * writers.  Counters only grow; qcache_reset_stats records the current sums
 * as a baseline (under stats_lock, a spinlock held for a copy) and reads
 * subtract it, so a reset never races with a writer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/proc.h"

#include "qcache.h"

static QcStatSlot *my_slot = NULL;

/* Bytes of the slot array for nslots processes. */
Size
qc_stats_size(int nslots)
{
	return mul_size(nslots, sizeof(QcStatSlot));
}

/* Base of the slot array. */
static inline QcStatSlot *
qc_slots(void)
{
	return (QcStatSlot *) ((char *) qc_shared + qc_shared->slots_off);
}

/* Zero every slot; postmaster only, at shared memory creation. */
void
qc_stats_init(void)
{
	QcStatSlot *slots = qc_slots();
	int			i,
				j;

	for (i = 0; i < qc_shared->nslots; i++)
		for (j = 0; j < QC_NUM_COUNTERS; j++)
			pg_atomic_init_u64(&slots[i].c[j], 0);
	memset(qc_shared->reset_base, 0, sizeof(qc_shared->reset_base));
}

/* Add n to counter c of this process. */
void
qc_count(QcCounter c, uint64 n)
{
	pg_atomic_uint64 *p;

	if (unlikely(my_slot == NULL))
	{
		int			i = MyProc ? MyProc->pgprocno : 0;

		if (i < 0 || i >= qc_shared->nslots)
			i = 0;
		my_slot = &qc_slots()[i];
	}
	p = &my_slot->c[c];
	pg_atomic_write_u64(p, pg_atomic_read_u64(p) + n);
}

/* Sum every slot into out[QC_NUM_COUNTERS]. */
static void
qc_stats_sum(uint64 *out)
{
	QcStatSlot *slots = qc_slots();
	int			i,
				j;

	memset(out, 0, sizeof(uint64) * QC_NUM_COUNTERS);
	for (i = 0; i < qc_shared->nslots; i++)
		for (j = 0; j < QC_NUM_COUNTERS; j++)
			out[j] += pg_atomic_read_u64(&slots[i].c[j]);
}

/* The counters since the last reset. */
void
qc_stats_read(uint64 *out)
{
	uint64		base[QC_NUM_COUNTERS];
	int			j;

	SpinLockAcquire(&qc_shared->stats_lock);
	memcpy(base, qc_shared->reset_base, sizeof(base));
	SpinLockRelease(&qc_shared->stats_lock);

	qc_stats_sum(out);
	for (j = 0; j < QC_NUM_COUNTERS; j++)
		out[j] = out[j] > base[j] ? out[j] - base[j] : 0;
}

/* Make the current sums the new zero. */
void
qc_stats_reset(void)
{
	uint64		sum[QC_NUM_COUNTERS];
	TimestampTz now = GetCurrentTimestamp();

	qc_stats_sum(sum);
	SpinLockAcquire(&qc_shared->stats_lock);
	memcpy(qc_shared->reset_base, sum, sizeof(sum));
	qc_shared->stats_reset = now;
	SpinLockRelease(&qc_shared->stats_lock);
}
