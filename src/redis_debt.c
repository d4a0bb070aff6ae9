/*-------------------------------------------------------------------------
 *
 * redis_debt.c
 *		What this node owes Redis: invalidations (and replaced values) that
 *		did not reach it, kept in shared memory, saved across clean
 *		restarts, and assumed wholesale after a crash.  Also the node's
 *		current Redis target and the Redis level's state for qcache_redis.
 *
 * The debt.  A write or an invalidation that could not reach Redis (the
 * breaker was open, the call failed, the node's target changed under it)
 * is recorded here as an item: a key ('k': delete it), a tag ('t': raise
 * its stamp), a prefix ('p': delete its keys), a database ('c': raise its
 * stamp and delete its values) or a purge ('P': delete a database's
 * values, its stamp already raised).  Recording an item opens the circuit
 * breaker, so this node does not read Redis while it owes it; the
 * subscriber worker pays the items (redis.c, qc_l2_pay) and then closes
 * the breaker.  A purge alone does not open it: the stamp that makes the
 * values invalid is in Redis already, and deleting them (a SCAN) only
 * serves direct readers.  The list is bounded: when it is full, a database's items
 * give way to one item for the whole database, and when even that does
 * not fit, the debt becomes global (raise the global stamp, which makes
 * every value in Redis invalid, and delete every value).  So recovery is
 * proportionate: what the node knows it owes, coarser only when it
 * cannot keep the detail.
 *
 * Durability.  The postmaster writes the debt to pg_stat_tmp/qcache_l2.state
 * when it stops cleanly (an on_shmem_exit callback, as pg_stat_statements
 * does), marked "clean".  At start it reads the file back and at once
 * rewrites it marked "running" (durable_rename).  A file found marked
 * "running" means the last stop was not clean: a crash restart, an
 * immediate shutdown or a power loss.  Then the node may have committed
 * invalidations that never reached Redis (a backend killed between its
 * commit record and its Redis call, or debt held in shared memory only),
 * so it assumes the global debt.  Nothing else in flight can hurt: a
 * value being set is written by one atomic script that checks the stamps,
 * so it lands valid or not at all.  The file also records the target
 * (qc_redis_identity) the node served: started against a different one,
 * the node owes the new target everything, since invalidations it made
 * elsewhere never reached it.  The file is in pg_stat_tmp, whose contents
 * base backups leave out: a standby made from this node starts owing
 * nothing, as a new node should, instead of taking this node's "running"
 * for a crash of its own.
 *
 * The target.  `target` is the identity of the Redis level the node
 * serves; the worker moves it when the settings change (and only when
 * they really change: a reload that changes nothing keeps it).  A backend
 * sends a write or an invalidation only if its own settings match it, and
 * checks again after the call; otherwise it records the item as debt for
 * the worker to pay to the new target.  Moving the target also owes the
 * global debt to the new one, for the invalidations the node made while
 * it served the other.  So no backend writes an invalidation to a Redis
 * the node has left without it also reaching the one it serves.
 *
 * Locking.  QcL2Shared.lock (an LWLock of our named tranche) protects the
 * items, nitems, seq, global_seq and crashed; it is held for copies only,
 * never across a call to Redis.  mutex (a spinlock) protects the state
 * fields (state, since, last_error, last_error_at, worker_latch); target
 * and the counters are atomics.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "qcache.h"
#include "redis.h"

#define QC_L2_STATE_FILE	"pg_stat_tmp/qcache_l2.state"
#define QC_L2_STATE_MAGIC	0x71c2d0b2
#define QC_L2_TRANCHE		"qcache_l2"

typedef struct QcL2Shared
{
	LWLock	   *lock;
	uint64		seq;			/* last sequence number given to an item */
	uint64		global_seq;		/* 0, or when the global debt was owed */
	bool		crashed;		/* the last stop was not clean */
	int			nitems;
	QcL2Debt	items[QC_L2_DEBT_ITEMS];

	pg_atomic_uint64 target;	/* identity of the target served, 0: none */
	pg_atomic_uint64 skipped;	/* writes and invalidations not sent */
	pg_atomic_uint64 paid;		/* items paid by the worker */

	slock_t		mutex;
	int			state;			/* QC_L2_STATE_* */
	TimestampTz since;
	char		last_error[256];
	TimestampTz last_error_at;
	Latch	   *worker_latch;
} QcL2Shared;

static QcL2Shared *l2s = NULL;

/* The header of the state file. */
typedef struct QcL2FileHeader
{
	uint32		magic;
	uint32		itemsize;		/* sizeof(QcL2Debt) of the build that wrote it */
	char		state;			/* 'R' running, 'C' clean */
	bool		owes_all;
	int32		nitems;
	uint64		target;
} QcL2FileHeader;

Size
qc_l2_shmem_size(void)
{
	return MAXALIGN(sizeof(QcL2Shared));
}

/* From the shmem_request hook. */
void
qc_l2_shmem_request(void)
{
	RequestAddinShmemSpace(qc_l2_shmem_size());
	RequestNamedLWLockTranche(QC_L2_TRANCHE, 1);
}

/* Write the state file (postmaster only): state 'R' or 'C'. */
static void
qc_l2_write_file(char state)
{
	QcL2FileHeader h;
	FILE	   *f;
	const char *tmp = QC_L2_STATE_FILE ".tmp";
	int			i;

	memset(&h, 0, sizeof(h));
	h.magic = QC_L2_STATE_MAGIC;
	h.itemsize = sizeof(QcL2Debt);
	h.state = state;
	h.owes_all = l2s->global_seq != 0;
	h.nitems = l2s->nitems;
	h.target = pg_atomic_read_u64(&l2s->target);
	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
		goto error;
	if (fwrite(&h, sizeof(h), 1, f) != 1)
		goto error;
	for (i = 0; i < l2s->nitems; i++)
		if (fwrite(&l2s->items[i], sizeof(QcL2Debt), 1, f) != 1)
			goto error;
	if (FreeFile(f) != 0)
	{
		f = NULL;
		goto error;
	}
	f = NULL;
	if (durable_rename(tmp, QC_L2_STATE_FILE, LOG) != 0)
		goto error;
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("qcache: could not write file \"%s\": %m", tmp)));
	if (f)
		FreeFile(f);
	unlink(tmp);
}

/*
 * Read the state file into l2s (postmaster, at start).  Missing: a first
 * start, nothing owed.  Marked running, or unreadable: the last stop was
 * not clean, everything owed.
 */
static void
qc_l2_read_file(uint64 current)
{
	QcL2FileHeader h;
	FILE	   *f;
	int			i;

	f = AllocateFile(QC_L2_STATE_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			l2s->crashed = true;
		pg_atomic_write_u64(&l2s->target, current);
		goto done;
	}
	if (fread(&h, sizeof(h), 1, f) != 1 || h.magic != QC_L2_STATE_MAGIC ||
		h.itemsize != sizeof(QcL2Debt) ||
		h.nitems < 0 || h.nitems > QC_L2_DEBT_ITEMS)
	{
		l2s->crashed = true;
		pg_atomic_write_u64(&l2s->target, current);
		FreeFile(f);
		goto done;
	}
	pg_atomic_write_u64(&l2s->target, h.target);
	if (h.state != 'C')
		l2s->crashed = true;
	else
	{
		for (i = 0; i < h.nitems; i++)
			if (fread(&l2s->items[i], sizeof(QcL2Debt), 1, f) != 1)
				break;
		if (i < h.nitems)
			l2s->crashed = true;
		else
			l2s->nitems = h.nitems;
		if (h.owes_all)
			l2s->global_seq = ++l2s->seq;
	}
	FreeFile(f);

done:
	if (l2s->crashed)
	{
		l2s->nitems = 0;
		l2s->global_seq = ++l2s->seq;
		if (current != 0)
			ereport(LOG,
					(errmsg("qcache: the last stop was not clean; this node assumes it owes Redis every invalidation")));
	}
	else if (l2s->nitems > 0 || l2s->global_seq != 0)
		ereport(LOG,
				(errmsg("qcache: this node owes Redis %d invalidations%s from before its restart",
						l2s->nitems, l2s->global_seq ? " and a global one" : "")));
	for (i = 0; i < l2s->nitems; i++)
		l2s->items[i].seq = ++l2s->seq;
	if (pg_atomic_read_u64(&l2s->target) != current && current != 0)
	{
		/* started against another target: it missed what we did elsewhere */
		if (pg_atomic_read_u64(&l2s->target) != 0 || l2s->nitems > 0)
			l2s->global_seq = ++l2s->seq;
		pg_atomic_write_u64(&l2s->target, current);
	}
	if (l2s->nitems > 0 || l2s->global_seq != 0)
		pg_atomic_write_u32(&qc_shared->l2_dirty, 1);
}

/* on_shmem_exit of the postmaster: save the debt, marked clean. */
static void
qc_l2_shmem_exit(int code, Datum arg)
{
	/* not after a crash: the file stays marked running */
	if (code != 0 || l2s == NULL)
		return;
	qc_l2_write_file('C');
}

/* From the shmem_startup hook, after qc_shmem_startup. */
void
qc_l2_shmem_startup(void)
{
	bool		found;

	l2s = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	l2s = ShmemInitStruct("qcache l2", qc_l2_shmem_size(), &found);
	if (!found)
	{
		memset(l2s, 0, sizeof(QcL2Shared));
		l2s->lock = &(GetNamedLWLockTranche(QC_L2_TRANCHE))->lock;
		pg_atomic_init_u64(&l2s->target, 0);
		pg_atomic_init_u64(&l2s->skipped, 0);
		pg_atomic_init_u64(&l2s->paid, 0);
		SpinLockInit(&l2s->mutex);
		l2s->state = QC_L2_STATE_OFF;
		l2s->since = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
	{
		qc_l2_read_file(qc_redis_current_identity());
		qc_l2_write_file('R');
		on_shmem_exit(qc_l2_shmem_exit, (Datum) 0);
	}
}

/* Wake the worker, if it runs. */
static void
qc_l2_wake_worker(void)
{
	Latch	   *latch;

	SpinLockAcquire(&l2s->mutex);
	latch = l2s->worker_latch;
	SpinLockRelease(&l2s->mutex);
	if (latch)
		SetLatch(latch);
}

/* The worker registers its latch (NULL at exit). */
void
qc_l2_set_worker_latch(Latch *latch)
{
	SpinLockAcquire(&l2s->mutex);
	l2s->worker_latch = latch;
	SpinLockRelease(&l2s->mutex);
}

/* Caller holds l2s->lock exclusively: remove item i. */
static void
qc_l2_remove_item(int i)
{
	l2s->nitems--;
	if (i < l2s->nitems)
		l2s->items[i] = l2s->items[l2s->nitems];
}

/*
 * Record that this node owes Redis an item (see the header), then open the
 * breaker and wake the worker.  db is the database's name (NULL with kind
 * 'g', the global debt), str the key, tag or prefix in Redis's encoding.
 * Never raises; takes the debt lock for a copy.
 */
void
qc_l2_owe(char kind, const char *db, const char *str, size_t len)
{
	uint64		seq;
	int			i;
	size_t		dblen = db ? strlen(db) : 0;

	if (l2s == NULL)
		return;
	if (db == NULL)
		kind = 'g';
	if ((kind == 'k' || kind == 't' || kind == 'p') && len > QC_L2_DEBT_STR)
	{
		kind = 'c';				/* too long to keep: the whole database */
		len = 0;
	}
	if (kind == 'c' || kind == 'P')
		len = 0;
	if (dblen >= NAMEDATALEN)
		kind = 'g';

	LWLockAcquire(l2s->lock, LW_EXCLUSIVE);
	seq = ++l2s->seq;
	if (kind == 'g')
	{
		l2s->global_seq = seq;
		goto done;
	}
	for (i = 0; i < l2s->nitems; i++)
	{
		QcL2Debt   *d = &l2s->items[i];

		if (d->kind == kind && d->len == len && strcmp(d->db, db) == 0 &&
			memcmp(d->str, str, len) == 0)
		{
			d->seq = seq;		/* owed again: not paid by an older payment */
			goto done;
		}
	}
	if (l2s->nitems == QC_L2_DEBT_ITEMS)
	{
		/* full: this database's items give way to one for all of it */
		for (i = l2s->nitems - 1; i >= 0; i--)
			if (strcmp(l2s->items[i].db, db) == 0)
				qc_l2_remove_item(i);
		kind = 'c';
		len = 0;
		if (l2s->nitems == QC_L2_DEBT_ITEMS)
		{
			l2s->global_seq = seq;
			goto done;
		}
	}
	{
		QcL2Debt   *d = &l2s->items[l2s->nitems++];

		d->seq = seq;
		d->kind = kind;
		d->len = (uint16) len;
		strlcpy(d->db, db, NAMEDATALEN);
		if (len > 0)
			memcpy(d->str, str, len);
	}
done:
	LWLockRelease(l2s->lock);

	pg_atomic_write_u32(&qc_shared->l2_dirty, 1);
	pg_memory_barrier();
	if (kind != 'P')
	{
		/* a purge only serves direct readers: the stamps are raised */
		pg_atomic_fetch_add_u64(&l2s->skipped, 1);
		pg_atomic_write_u32(&qc_shared->l2_up, 0);
	}
	qc_l2_wake_worker();
}

/*
 * The worker takes a copy of the debt to pay it: returns the number of
 * items copied into out (palloc'd), *owes_all, and the sequence number to
 * pass to qc_l2_paid afterwards.
 */
int
qc_l2_debt_snapshot(QcL2Debt **out, bool *owes_all, uint64 *upto)
{
	int			n;

	LWLockAcquire(l2s->lock, LW_SHARED);
	n = l2s->nitems;
	*out = palloc(sizeof(QcL2Debt) * Max(n, 1));
	memcpy(*out, l2s->items, sizeof(QcL2Debt) * n);
	*owes_all = l2s->global_seq != 0;
	*upto = l2s->seq;
	LWLockRelease(l2s->lock);
	return n;
}

/*
 * The debt up to sequence number upto is paid: drop those items (not the
 * ones owed again since).  Returns whether anything is still owed.
 */
bool
qc_l2_paid(uint64 upto)
{
	int			i;
	int			before;
	bool		left;

	LWLockAcquire(l2s->lock, LW_EXCLUSIVE);
	before = l2s->nitems;
	for (i = l2s->nitems - 1; i >= 0; i--)
		if (l2s->items[i].seq <= upto)
			qc_l2_remove_item(i);
	if (l2s->global_seq <= upto)
		l2s->global_seq = 0;
	left = l2s->nitems > 0 || l2s->global_seq != 0;
	LWLockRelease(l2s->lock);
	pg_atomic_fetch_add_u64(&l2s->paid, before - l2s->nitems);
	return left;
}

/* The identity of the target this node serves (0: none). */
uint64
qc_l2_target(void)
{
	return pg_atomic_read_u64(&l2s->target);
}

/*
 * The worker found the settings changed to `identity`: serve it from now
 * on.  The new target missed whatever this node invalidated while it
 * served another (or none): owe it everything.
 */
void
qc_l2_move_target(uint64 identity)
{
	pg_atomic_write_u32(&qc_shared->l2_up, 0);
	pg_atomic_write_u64(&l2s->target, identity);
	pg_memory_barrier();
	if (identity != 0)
		qc_l2_owe('g', NULL, NULL, 0);
}

/* Does this process's configuration match the target the node serves? */
bool
qc_l2_on_target(void)
{
	uint64		mine = qc_redis_current_identity();

	return mine != 0 && mine == pg_atomic_read_u64(&l2s->target);
}

/* The worker reports the level's state. */
void
qc_l2_set_state(int state)
{
	SpinLockAcquire(&l2s->mutex);
	if (l2s->state != state)
	{
		l2s->state = state;
		l2s->since = GetCurrentTimestamp();
	}
	SpinLockRelease(&l2s->mutex);
}

/* Remember the last error (already free of secrets). */
void
qc_l2_set_error(const char *msg)
{
	SpinLockAcquire(&l2s->mutex);
	strlcpy(l2s->last_error, msg, sizeof(l2s->last_error));
	l2s->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&l2s->mutex);
}

/*
 * qcache_redis_status(): one row, the Redis level of this node: state
 * ('off', 'up', 'down', 'recovering'), since when, the last error and
 * when, the writes and invalidations not sent while it was down or since
 * (skipped), what is owed now (items, and whether everything is), and
 * the items paid so far.
 */
PG_FUNCTION_INFO_V1(qcache_redis_status);

Datum
qcache_redis_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9];
	int			state;
	TimestampTz since;
	TimestampTz errat;
	char		err[256];
	int			nitems;
	bool		owes_all;
	static const char *const names[] = {"off", "up", "down", "recovering"};

	qc_require_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SpinLockAcquire(&l2s->mutex);
	state = l2s->state;
	since = l2s->since;
	errat = l2s->last_error_at;
	memcpy(err, l2s->last_error, sizeof(err));
	SpinLockRelease(&l2s->mutex);
	LWLockAcquire(l2s->lock, LW_SHARED);
	nitems = l2s->nitems;
	owes_all = l2s->global_seq != 0;
	LWLockRelease(l2s->lock);

	memset(nulls, 0, sizeof(nulls));
	if (!qc_l2_active())
		state = QC_L2_STATE_OFF;
	values[0] = CStringGetTextDatum(names[state]);
	values[1] = TimestampTzGetDatum(since);
	if (err[0] != '\0')
	{
		values[2] = CStringGetTextDatum(err);
		values[3] = TimestampTzGetDatum(errat);
	}
	else
		nulls[2] = nulls[3] = true;
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&l2s->skipped));
	values[5] = Int32GetDatum(nitems);
	values[6] = BoolGetDatum(owes_all);
	values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&l2s->paid));
	values[8] = BoolGetDatum(pg_atomic_read_u32(&qc_shared->l2_up) != 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
