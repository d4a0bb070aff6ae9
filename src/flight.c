/*-------------------------------------------------------------------------
 *
 * flight.c
 *		Single flight for qcache_fetch: one session computes a missing key,
 *		the others wait for its result.
 *
 * A fixed table of QC_FLIGHT_SLOTS slots in shared memory, indexed by the
 * key hash.  A session that misses claims the key's slot (a spinlock held
 * for a few assignments) and computes; a session that misses on a key
 * whose slot another session holds sleeps on the slot's condition
 * variable until the holder releases it or qcache.fetch_wait_timeout
 * passes, then looks the key up again and, if it still misses, runs the
 * query itself.  A slot taken by another key (a hash collision) or a
 * nested fetch just computes, without waiting: single flight is an
 * optimisation, and nothing waits for anything it could not get.
 *
 * Cleanup.  The holder releases its slot in a PG_FINALLY around the
 * computation (error, cancel) and in a before_shmem_exit callback (FATAL,
 * pg_terminate_backend); a waiter that is cancelled leaves its condition
 * variable through the transaction abort (ConditionVariableCancelSleep);
 * after a crash the whole table is created again.  The generation counter
 * tells a waiter that the slot it waited on was released, even if another
 * session has claimed it again since.
 *
 * Lock order: a slot's spinlock is never held with any other lock, and
 * never across a sleep, an allocation or an ereport.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

#include "qcache.h"

/* One flight: protected by mutex, except cv. */
typedef struct QcFlightSlot
{
	slock_t		mutex;
	int			pid;			/* holder, 0: free */
	Oid			dbid;
	uint64		keyhash;
	uint32		generation;		/* bumped at each claim */
	ConditionVariable cv;		/* broadcast at release */
} QcFlightSlot;

/* The slot this backend holds, if any, and its generation. */
static QcFlightSlot *held = NULL;
static uint32 held_generation = 0;
static bool exit_callback_registered = false;

static inline QcFlightSlot *
qc_flight_slots(void)
{
	return (QcFlightSlot *) ((char *) qc_shared + qc_shared->flights_off);
}

/*
 * Leases (qcache_lease): single flight and a build point for application
 * code that computes a value on another connection and stores it with
 * qcache_set(..., lease => token), as Facebook's memcache leases do.  A
 * fixed table of QC_LEASE_SLOTS slots indexed by the key hash, each
 * protected by its spinlock (held for a few assignments, with no other
 * lock).  A slot holds the lease of one key until it is used by a set or
 * runs out; a key whose slot holds another key's live lease gets its lease
 * without single flight (a collision costs a duplicate computation, never
 * a wrong value).  The token is the time the lease was granted: a value
 * computed after it, stored with it, is refused if one of its tags was
 * invalidated after it (invalidate.c's build points).
 */
#define QC_LEASE_SLOTS			1024

typedef struct QcLeaseSlot
{
	slock_t		mutex;
	Oid			dbid;
	uint64		keyhash;
	TimestampTz token;			/* 0: free */
	TimestampTz until;
} QcLeaseSlot;

static inline QcLeaseSlot *
qc_lease_slots(void)
{
	return (QcLeaseSlot *) ((char *) qc_flight_slots() +
							MAXALIGN(mul_size(QC_FLIGHT_SLOTS, sizeof(QcFlightSlot))));
}

/* Bytes of the slot tables (flights, then leases). */
Size
qc_flight_size(void)
{
	return add_size(MAXALIGN(mul_size(QC_FLIGHT_SLOTS, sizeof(QcFlightSlot))),
					mul_size(QC_LEASE_SLOTS, sizeof(QcLeaseSlot)));
}

/* Initialise the table; postmaster only, at shared memory creation. */
void
qc_flight_init(void)
{
	QcFlightSlot *slots = qc_flight_slots();
	int			i;

	for (i = 0; i < QC_FLIGHT_SLOTS; i++)
	{
		SpinLockInit(&slots[i].mutex);
		slots[i].pid = 0;
		slots[i].dbid = InvalidOid;
		slots[i].keyhash = 0;
		slots[i].generation = 0;
		ConditionVariableInit(&slots[i].cv);
	}
	for (i = 0; i < QC_LEASE_SLOTS; i++)
	{
		QcLeaseSlot *l = &qc_lease_slots()[i];

		SpinLockInit(&l->mutex);
		l->dbid = InvalidOid;
		l->keyhash = 0;
		l->token = 0;
		l->until = 0;
	}
}

/*
 * Take the lease of a key for `ms` milliseconds: its token (the time it was
 * granted), or 0 if another caller holds a live lease of the key.
 */
TimestampTz
qc_lease_take(const QcKey *key, int ms)
{
	QcLeaseSlot *l = &qc_lease_slots()[key->hash % QC_LEASE_SLOTS];
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz token = 0;

	SpinLockAcquire(&l->mutex);
	if (l->token != 0 && l->until > now)
	{
		if (l->dbid == key->dbid && l->keyhash == key->hash)
		{
			SpinLockRelease(&l->mutex);
			return 0;			/* someone else computes it */
		}
		token = now;			/* a collision: no single flight */
	}
	else
	{
		l->dbid = key->dbid;
		l->keyhash = key->hash;
		l->token = token = now;
		l->until = TimestampTzPlusMilliseconds(now, ms);
	}
	SpinLockRelease(&l->mutex);
	return token;
}

/*
 * Use a key's lease: true if the key's slot holds a live lease with this
 * token, which is then given back; false otherwise (expired, used, another
 * key's, or never granted).  A token that collided with another key's
 * lease (qc_lease_take) is not in the slot: false, a duplicate computation
 * is refused rather than trusted.
 */
bool
qc_lease_use(const QcKey *key, TimestampTz token)
{
	QcLeaseSlot *l = &qc_lease_slots()[key->hash % QC_LEASE_SLOTS];
	TimestampTz now = GetCurrentTimestamp();
	bool		ok;

	SpinLockAcquire(&l->mutex);
	ok = l->token == token && l->until > now &&
		l->dbid == key->dbid && l->keyhash == key->hash;
	if (ok)
		l->token = 0;
	SpinLockRelease(&l->mutex);
	return ok;
}

/* before_shmem_exit callback: release a slot still held. */
static void
qc_flight_atexit(int code, Datum arg)
{
	qc_flight_end();
}

/*
 * Begin a computation of a missing key.  Returns QC_FLIGHT_LEAD if this
 * session now holds the key's slot (it must call qc_flight_end), or
 * QC_FLIGHT_WAITED after waiting for another session's computation (look
 * the key up again), or QC_FLIGHT_ALONE (compute without single flight).
 */
QcFlight
qc_flight_begin(const QcKey *key)
{
	QcFlightSlot *slot = &qc_flight_slots()[key->hash % QC_FLIGHT_SLOTS];
	uint32		generation;
	TimestampTz deadline;
	bool		wait;

	if (held != NULL)
		return QC_FLIGHT_ALONE; /* a fetch inside a fetch's query */

	if (!exit_callback_registered)
	{
		before_shmem_exit(qc_flight_atexit, (Datum) 0);
		exit_callback_registered = true;
	}

	SpinLockAcquire(&slot->mutex);
	if (slot->pid == 0)
	{
		slot->pid = MyProcPid;
		slot->dbid = key->dbid;
		slot->keyhash = key->hash;
		generation = ++slot->generation;
		SpinLockRelease(&slot->mutex);
		held = slot;
		held_generation = generation;
		return QC_FLIGHT_LEAD;
	}
	wait = slot->dbid == key->dbid && slot->keyhash == key->hash;
	generation = slot->generation;
	SpinLockRelease(&slot->mutex);
	if (!wait || qc_fetch_wait_timeout == 0)
		return QC_FLIGHT_ALONE;

	qc_count(QC_STAT_FETCH_WAITS, 1);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   qc_fetch_wait_timeout);
	ConditionVariablePrepareToSleep(&slot->cv);
	for (;;)
	{
		bool		done;
		long		remaining;

		SpinLockAcquire(&slot->mutex);
		done = slot->pid == 0 || slot->generation != generation;
		SpinLockRelease(&slot->mutex);
		if (done)
			break;
		remaining = (long) ((deadline - GetCurrentTimestamp()) / 1000);
		if (remaining <= 0)
			break;
		(void) ConditionVariableTimedSleep(&slot->cv, remaining,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return QC_FLIGHT_WAITED;
}

/*
 * Take a key's slot if nobody holds it, without waiting: QC_FLIGHT_LEAD
 * (call qc_flight_end) or QC_FLIGHT_ALONE (another session computes it, or
 * another key holds the slot).  For stale-while-revalidate: the one session
 * that gets the lead refreshes the value, the others serve the old one.
 */
QcFlight
qc_flight_try(const QcKey *key)
{
	QcFlightSlot *slot = &qc_flight_slots()[key->hash % QC_FLIGHT_SLOTS];

	if (held != NULL)
		return QC_FLIGHT_ALONE;
	if (!exit_callback_registered)
	{
		before_shmem_exit(qc_flight_atexit, (Datum) 0);
		exit_callback_registered = true;
	}
	SpinLockAcquire(&slot->mutex);
	if (slot->pid != 0)
	{
		SpinLockRelease(&slot->mutex);
		return QC_FLIGHT_ALONE;
	}
	slot->pid = MyProcPid;
	slot->dbid = key->dbid;
	slot->keyhash = key->hash;
	held_generation = ++slot->generation;
	SpinLockRelease(&slot->mutex);
	held = slot;
	return QC_FLIGHT_LEAD;
}

/*
 * Release the slot this session holds, if it still does, and wake the
 * sessions waiting on it.  Safe to call at any time, on error paths too.
 */
void
qc_flight_end(void)
{
	QcFlightSlot *slot = held;

	if (slot == NULL)
		return;
	held = NULL;
	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid && slot->generation == held_generation)
		slot->pid = 0;
	SpinLockRelease(&slot->mutex);
	ConditionVariableBroadcast(&slot->cv);
}
