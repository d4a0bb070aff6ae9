/*-------------------------------------------------------------------------
 *
 * walinval.c
 *		Invalidations carried in the WAL, so that hot standbys cache under
 *		the same guarantee as the primary (SPEC section 12).
 *
 * The problem.  WAL replay fires no triggers, so a standby does not know
 * when a primary commit that invalidated a tag becomes visible to its own
 * snapshots; without that it must store no value with tags and no
 * qcache_fetch result.  With qcache.wal_invalidation on, the primary writes
 * the commit protocol of invalidate.c into the WAL, through a custom WAL
 * resource manager, and the standby's replay performs the same two steps
 * in the same order relative to the commit record:
 *
 * - MARK (xid, keys), written at XACT_EVENT_PRE_COMMIT by a transaction
 *   that has pending invalidations and an xid (one without an xid changed
 *   no data), and at PRE_PREPARE.  Keys are the (database, tag hash) pairs
 *   of invalidate.c, 8 bytes each; past QC_WAL_KEYS of them they collapse
 *   to the databases' wildcards, so a record holds at most 64 keys.  Its
 *   LSN precedes the commit record's.  Replay marks the keys' slots in
 *   flight and remembers them under the xid (QcWalTrack).
 * - STAMP (xid), written at XACT_EVENT_COMMIT, after the commit record,
 *   and by the reaper of prepared transactions.  Replay stamps the xid's
 *   remembered keys with the standby's clock and unmarks them.
 * - EXPLICIT (kind, database, tag hash, or key or prefix text), written by
 *   qcache_invalidate_tag, qcache_clear, qcache_invalidate and
 *   qcache_invalidate_prefix, which act at once on the primary: replay
 *   stamps the tag (or the database's wildcard) with the standby's clock,
 *   or removes the key or prefix from the standby's cache.
 * - STATE (on or off, and every mark written but not yet stamped), written
 *   by the primary's sweeper at start and after each checkpoint (so a
 *   standby that restarts meets one soon), and once with "off" when the
 *   primary starts with the setting off after a run with it on.
 *
 * Records go only to the WAL of a primary with the setting on.  With it
 * off nothing is written, so standbys without qcache keep replaying.
 *
 * Why a standby may store.  Let T commit on the primary with tag t, and V
 * be a value computed on the standby from a snapshot S that does not see
 * T, in a transaction that started at B (standby clock).  In the WAL,
 * MARK(T) < COMMIT(T) < STAMP(T), and replay is in that order.  S was
 * taken before COMMIT(T)'s replay made T visible, so B <= time(S) <
 * replay(COMMIT(T)) <= the stamp that STAMP(T)'s replay writes.  From
 * MARK(T)'s replay to that stamp the slot is in flight.  So V is never
 * served after the stamp and never stored or served while in flight: the
 * argument of invalidate.c, with replay in place of the commit callbacks.
 * The xid ends where the stamp comes from: if STAMP(T) never arrives (the
 * primary crashed, or T aborted after PRE_COMMIT), the reaper stamps and
 * unmarks every remembered xid that is no longer in progress on the
 * standby (TransactionIdIsInProgress reads the standby's known-assigned
 * xids, from which T leaves only when its commit or abort is replayed, or
 * when a shutdown checkpoint or running-xacts record of a restarted primary
 * says it is gone), so its stamp, taken after, is no earlier than the
 * commit's visibility: the argument above holds with the reaper in place
 * of STAMP.  The reaper runs in the sweeper every second, at each STATE
 * replay, when the table of marks is full, and in any session that meets
 * a tag in flight once replay has moved since the last reap
 * (qc_wal_help_reap).  The last matters: the primary flushes a STAMP with
 * its next commit (or within wal_writer_delay), so under a steady write
 * load a tag would otherwise be in flight on the standby nearly all the
 * time.  A session that triggers the reap cannot store what it computed
 * (its start is older than the stamp); the next transaction can.  At the
 * end of recovery (promotion) every remembered mark is stamped and
 * unmarked: the old primary's transactions in flight never commit on the
 * new timeline.  Prepared transactions stay in progress on a standby until
 * COMMIT/ROLLBACK PREPARED is replayed.
 *
 * What a standby missed.  A standby that starts (or restarts: its cache is
 * then empty) begins replay at a checkpoint, past MARK records of
 * transactions that may still commit.  So it stores nothing until it has
 * replayed a STATE record, which lists every mark written and not yet
 * stamped (the primary's writers hold QcWalShared.lock shared from taking
 * their slot to inserting MARK, the STATE writer holds it exclusively from
 * its scan to its insert, so a mark is either listed or has an LSN after
 * the STATE record), and from then on stores only values built at or after
 * that replay (active_since): a value built earlier may have been computed
 * before the commit of a transaction whose STAMP the standby replayed
 * without knowing its keys.
 *
 * Turning it off.  qcache.wal_invalidation is a postmaster setting, so
 * that every backend of a primary writes the records or none does.  A
 * server keeps a file, pg_qcache/wal_invalidation, while standbys may be
 * hearing invalidations from it: a primary while the setting is on, and a
 * standby from its first replay of STATE(on) (its own standbys hear the
 * same records, and it may be promoted).  A server out of recovery with the
 * setting off that has the file owes its standbys STATE(off): it writes it,
 * flushed, before anything it invalidates could reach them unmarked (at a
 * writer's PRE_COMMIT and PRE_PREPARE, an explicit invalidation, COMMIT
 * PREPARED of an unknown transaction, and the sweeper's tick), then removes
 * the file (qc_wal_pay_off).  So a restart with the setting off, and a
 * promotion of a standby whose setting is off, both tell the standbys
 * before their first unmarked commit.  A standby that replays STATE(off),
 * or whose table of marks overflows, stops storing and kills what it
 * stored itself: such entries carry QC_ENTRY_STANDBY and die when
 * standby_epoch passes their build point (invalidate.c).  Removing qcache
 * from a primary's shared_preload_libraries while it is on skips this
 * step (nothing of qcache runs there to write it): the README says to turn
 * the setting off and restart first.  And a standby without qcache made
 * from such a server's backup before it paid would fail on that STATE(off).
 *
 * A standby never sends a value it computed itself to Redis: Redis
 * compares build points with the primary's stamps, and a standby's
 * snapshot may lag the primary by more than any clock difference.
 *
 * The resource manager ID is RM_EXPERIMENTAL_ID (128) while the feature is
 * experimental; https://wiki.postgresql.org/wiki/CustomWALResourceManagers
 * is where a permanent ID is reserved.
 *
 * Locking.  QcWalShared.lock (an LWLock of the named tranche "qcache
 * wal"): primary writers hold it shared while they fill their own slot
 * (QcWalSlot, one per PGPROC, written only by its owner) and insert MARK,
 * and while they clear the slot; the STATE writer holds it exclusively.
 * On a standby it protects the table of remembered marks (the startup
 * process's redo, the reapers).  It is taken alone, never with a partition
 * lock or another LWLock of qcache (store.c's removals in redo run after
 * it is released; sessions reap after their partition lock is released);
 * the reaper takes ProcArrayLock, shared, while holding it, and nothing
 * takes them in the other order.  The slots' in-flight counts and stamps
 * are atomics (invalidate.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>
#include <sys/stat.h>

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "access/twophase.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/standby.h"
#include "utils/builtins.h"
#include "fmgr.h"
#include "utils/timestamp.h"

#include "qcache.h"

#define QC_RMGR_ID			RM_EXPERIMENTAL_ID
#define QC_RMGR_NAME		"qcache"

#define XLOG_QC_MARK		0x00
#define XLOG_QC_STAMP		0x10
#define XLOG_QC_EXPLICIT	0x20
#define XLOG_QC_STATE		0x30

#define QC_WAL_KEYS			64
#define QC_WAL_TRANCHE		"qcache wal"
#define QC_WAL_FILE			"pg_qcache/wal_invalidation"

bool		qc_wal_invalidation = false;
int			qc_debug_wal_stamp_delay = 0;	/* tests: ms before STAMP */

/* MARK: an xid and its keys; also one element of STATE */
typedef struct xl_qc_mark
{
	TransactionId xid;
	uint32		nkeys;
	uint64		keys[FLEXIBLE_ARRAY_MEMBER];
} xl_qc_mark;

typedef struct xl_qc_stamp
{
	TransactionId xid;
} xl_qc_stamp;

typedef struct xl_qc_explicit
{
	uint8		kind;			/* QcMatchKind, or QC_WAL_KEY */
	Oid			dbid;
	uint32		hash;			/* tag hash, for a tag */
	uint32		len;			/* bytes of text that follow (key, prefix) */
	char		text[FLEXIBLE_ARRAY_MEMBER];
} xl_qc_explicit;

#define QC_WAL_KEY			0xff	/* kind of EXPLICIT: one key */

typedef struct xl_qc_state
{
	bool		on;
	uint32		nmarks;
	/* nmarks xl_qc_mark, each of SizeOfQcMark(nkeys) bytes, follow */
} xl_qc_state;

#define SizeOfQcMark(n)		(offsetof(xl_qc_mark, keys) + sizeof(uint64) * (n))

/* A primary backend's mark written and not yet stamped; see Locking. */
typedef struct QcWalSlot
{
	TransactionId xid;			/* InvalidTransactionId: free */
	int			nkeys;
	uint64		keys[QC_WAL_KEYS];
} QcWalSlot;

/*
 * The keys of a mark a standby replayed and has not stamped yet; its xid is
 * in a dense array of its own (txids[], InvalidTransactionId: free), which
 * the redo of every STAMP scans up to the high-water mark.
 */
typedef struct QcWalTrack
{
	int			nkeys;
	uint64		keys[QC_WAL_KEYS];
} QcWalTrack;

typedef struct QcWalShared
{
	LWLock	   *lock;
	/* standby: under lock */
	bool		active;			/* replayed a STATE(on) since start */
	TimestampTz active_since;	/* stores need build >= this */
	int			ntrack;			/* entries of track[] in use */
	int			hwm;			/* 1 + the highest index in use */
	pg_atomic_uint64 reaped_at; /* replay position of the last reap */
	/* primary sweeper only */
	XLogRecPtr	state_redo;		/* checkpoint redo of the last STATE */
	bool		state_started;	/* STATE written since start */
	bool		off_owed;		/* STATE(off) owed before any unmarked
								 * invalidation: pg_qcache/wal_invalidation
								 * exists (under lock) */
	int			nslots;
	int			ntracks;
	/* slots[nslots], txids[ntracks] (MAXALIGNed), track[ntracks] */
	uint64		data[FLEXIBLE_ARRAY_MEMBER];	/* uint64: 8-byte aligned */
} QcWalShared;

static QcWalShared *qc_wal = NULL;

static bool qc_wal_file_exists(void);

static inline QcWalSlot *
qc_wal_slots(void)
{
	return (QcWalSlot *) (char *) qc_wal->data;
}

static inline TransactionId *
qc_wal_txids(void)
{
	return (TransactionId *) ((char *) qc_wal->data +
							  sizeof(QcWalSlot) * qc_wal->nslots);
}

static inline QcWalTrack *
qc_wal_tracks(void)
{
	return (QcWalTrack *) ((char *) qc_wal_txids() +
						   MAXALIGN(sizeof(TransactionId) * qc_wal->ntracks));
}

static int
qc_wal_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static int
qc_wal_ntracks(void)
{
	/* a standby's max_connections is at least its primary's */
	return 2 * (MaxBackends + max_prepared_xacts) + 16;
}

static Size
qc_wal_size(void)
{
	Size		s = offsetof(QcWalShared, data);

	s = add_size(s, mul_size(qc_wal_nslots(), sizeof(QcWalSlot)));
	s = add_size(s, MAXALIGN(mul_size(qc_wal_ntracks(), sizeof(TransactionId))));
	s = add_size(s, mul_size(qc_wal_ntracks(), sizeof(QcWalTrack)));
	return s;
}

/* From the shmem_request hook. */
void
qc_wal_shmem_request(void)
{
	RequestAddinShmemSpace(qc_wal_size());
	RequestNamedLWLockTranche(QC_WAL_TRANCHE, 1);
}

/* From the shmem_startup hook. */
void
qc_wal_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	qc_wal = ShmemInitStruct("qcache wal invalidation", qc_wal_size(), &found);
	if (!found)
	{
		int			i;

		memset(qc_wal, 0, offsetof(QcWalShared, data));
		pg_atomic_init_u64(&qc_wal->reaped_at, 0);
		qc_wal->lock = &(GetNamedLWLockTranche(QC_WAL_TRANCHE))->lock;
		qc_wal->nslots = qc_wal_nslots();
		qc_wal->ntracks = qc_wal_ntracks();
		for (i = 0; i < qc_wal->nslots; i++)
			qc_wal_slots()[i].xid = InvalidTransactionId;
		for (i = 0; i < qc_wal->ntracks; i++)
			qc_wal_txids()[i] = InvalidTransactionId;
		qc_wal->off_owed = qc_wal_file_exists();
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Does this server write invalidations to the WAL now? */
static inline bool
qc_wal_writing(void)
{
	return qc_wal_invalidation && qc_wal != NULL && !RecoveryInProgress();
}

/*
 * Copy keys into dst, collapsing them to their databases' wildcards past
 * QC_WAL_KEYS (a wildcard stamps everything a tag of its database would).
 * Returns the number written.
 */
static int
qc_wal_collapse(const uint64 *keys, int nkeys, uint64 *dst)
{
	int			n = 0;
	int			i;

	if (nkeys <= QC_WAL_KEYS)
	{
		memcpy(dst, keys, sizeof(uint64) * nkeys);
		return nkeys;
	}
	for (i = 0; i < nkeys; i++)
	{
		uint64		w = keys[i] & ~(uint64) 0xFFFFFFFF;
		int			j;

		for (j = 0; j < n; j++)
			if (dst[j] == w)
				break;
		if (j < n)
			continue;
		/* one transaction's keys are of one database: never full */
		Assert(n < QC_WAL_KEYS);
		if (n == QC_WAL_KEYS)
			break;
		dst[n++] = w;
	}
	return n;
}

/* Insert a MARK record; the caller holds qc_wal->lock. */
static XLogRecPtr
qc_wal_insert_mark(TransactionId xid, const uint64 *keys, int nkeys)
{
	xl_qc_mark	hdr;

	hdr.xid = xid;
	hdr.nkeys = nkeys;
	XLogBeginInsert();
	XLogRegisterData((char *) &hdr, offsetof(xl_qc_mark, keys));
	if (nkeys > 0)
		XLogRegisterData((char *) keys, sizeof(uint64) * nkeys);
	return XLogInsert(QC_RMGR_ID, XLOG_QC_MARK);
}

/*
 * XACT_EVENT_PRE_COMMIT of a transaction with pending invalidations (or
 * before COMMIT PREPARED of a prepared transaction qcache has no record
 * of, with that transaction's xid): remember the mark in this backend's
 * slot and write MARK.  Nothing without an xid: no data changed.
 */
void
qc_wal_mark(TransactionId xid, const uint64 *keys, int nkeys)
{
	QcWalSlot  *slot;

	if (!qc_wal_writing() || !TransactionIdIsValid(xid))
	{
		qc_wal_pay_off();
		return;
	}
	slot = &qc_wal_slots()[MyProc->pgprocno];
	LWLockAcquire(qc_wal->lock, LW_SHARED);
	slot->nkeys = qc_wal_collapse(keys, nkeys, slot->keys);
	slot->xid = xid;
	(void) qc_wal_insert_mark(xid, slot->keys, slot->nkeys);
	LWLockRelease(qc_wal->lock);
}

/*
 * MARK of a transaction being prepared; its record in invalidate.c's
 * table of prepared transactions is what STATE lists until the reaper
 * stamps it.  `activate` makes that record visible (under the lock, so
 * that a STATE record lists it or comes after this MARK).
 */
void
qc_wal_mark_prepared(TransactionId xid, const uint64 *keys, int nkeys,
					 void (*activate) (void *), void *arg)
{
	uint64		buf[QC_WAL_KEYS];
	int			n;

	if (!qc_wal_writing() || !TransactionIdIsValid(xid))
	{
		qc_wal_pay_off();
		activate(arg);
		return;
	}
	n = qc_wal_collapse(keys, nkeys, buf);
	LWLockAcquire(qc_wal->lock, LW_SHARED);
	activate(arg);
	(void) qc_wal_insert_mark(xid, buf, n);
	LWLockRelease(qc_wal->lock);
}

/*
 * After the commit (XACT_EVENT_COMMIT), or when the reaper finds a
 * prepared transaction finished: write STAMP and free this backend's
 * slot.  Flushed soon by the WAL writer, like an asynchronous commit.
 */
void
qc_wal_stamp(TransactionId xid)
{
	xl_qc_stamp rec;
	XLogRecPtr	lsn;

	if (!qc_wal_writing() || !TransactionIdIsValid(xid))
		return;
	if (qc_debug_wal_stamp_delay > 0)
		pg_usleep((long) qc_debug_wal_stamp_delay * 1000L);
	rec.xid = xid;
	XLogBeginInsert();
	XLogRegisterData((char *) &rec, sizeof(rec));
	lsn = XLogInsert(QC_RMGR_ID, XLOG_QC_STAMP);
	XLogSetAsyncXactLSN(lsn);
	qc_wal_forget(xid);
}

/* Free this backend's slot if it holds xid (commit, abort). */
void
qc_wal_forget(TransactionId xid)
{
	QcWalSlot  *slot;

	if (qc_wal == NULL || MyProc == NULL)
		return;
	slot = &qc_wal_slots()[MyProc->pgprocno];
	if (!TransactionIdIsValid(slot->xid) || slot->xid != xid)
		return;
	LWLockAcquire(qc_wal->lock, LW_SHARED);
	slot->xid = InvalidTransactionId;
	LWLockRelease(qc_wal->lock);
}

/*
 * An explicit invalidation, which acts at once on the primary: kind is a
 * QcMatchKind (tag: `hash`; prefix: `text`; all: neither) or QC_WAL_KEY
 * (`text`).
 */
static void
qc_wal_explicit(uint8 kind, Oid dbid, uint32 hash, const char *text,
				uint32 len)
{
	xl_qc_explicit hdr;
	XLogRecPtr	lsn;

	if (!qc_wal_writing())
	{
		qc_wal_pay_off();
		return;
	}
	memset(&hdr, 0, offsetof(xl_qc_explicit, text));
	hdr.kind = kind;
	hdr.dbid = dbid;
	hdr.hash = hash;
	hdr.len = len;
	XLogBeginInsert();
	XLogRegisterData((char *) &hdr, offsetof(xl_qc_explicit, text));
	if (len > 0)
		XLogRegisterData(unconstify(char *, text), len);
	lsn = XLogInsert(QC_RMGR_ID, XLOG_QC_EXPLICIT);
	XLogSetAsyncXactLSN(lsn);
}

/* qcache_invalidate_tag, _prefix, qcache_clear: see qc_wal_explicit. */
void
qc_wal_explicit_match(QcMatchKind kind, Oid dbid, const char *str, uint32 len)
{
	if (kind == QC_MATCH_TAG)
		qc_wal_explicit(kind, dbid, qc_hash_tag(str, len), NULL, 0);
	else if (kind == QC_MATCH_PREFIX)
		qc_wal_explicit(kind, dbid, 0, str, len);
	else
		qc_wal_explicit(QC_MATCH_ALL, dbid, 0, NULL, 0);
}

/* qcache_invalidate(key) */
void
qc_wal_explicit_key(const QcKey *key)
{
	qc_wal_explicit(QC_WAL_KEY, key->dbid, 0, key->data, key->len);
}

/* ---------- STATE, written by the primary's sweeper ---------- */

/* Keep or remove the file that says the setting was on (see above). */
static bool
qc_wal_file_exists(void)
{
	struct stat st;

	return stat(QC_WAL_FILE, &st) == 0;
}

static void
qc_wal_file_create(void)
{
	int			fd;

	(void) MakePGDirectory("pg_qcache");
	fd = OpenTransientFile(QC_WAL_FILE, O_WRONLY | O_CREAT | PG_BINARY);
	if (fd < 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", QC_WAL_FILE)));
		return;
	}
	(void) pg_fsync(fd);
	CloseTransientFile(fd);
	fsync_fname("pg_qcache", true);
}

/* Append one mark to a STATE record being built. */
void
qc_wal_append_mark(StringInfo buf, TransactionId xid, const uint64 *keys,
				   int nkeys)
{
	xl_qc_mark	m;
	uint64		collapsed[QC_WAL_KEYS];

	m.xid = xid;
	m.nkeys = qc_wal_collapse(keys, nkeys, collapsed);
	appendBinaryStringInfo(buf, (char *) &m, offsetof(xl_qc_mark, keys));
	appendBinaryStringInfo(buf, (char *) collapsed, sizeof(uint64) * m.nkeys);
}

/*
 * Insert a STATE record: on, with every mark written and not stamped (this
 * server's slots and its prepared transactions' records), or off.  The
 * caller holds the lock exclusively (see Locking) and flushes.
 */
static XLogRecPtr
qc_wal_write_state_locked(bool on)
{
	xl_qc_state hdr;
	StringInfoData buf;
	XLogRecPtr	lsn;
	int			i;

	initStringInfo(&buf);
	hdr.on = on;
	hdr.nmarks = 0;
	if (on)
	{
		for (i = 0; i < qc_wal->nslots; i++)
		{
			QcWalSlot  *s = &qc_wal_slots()[i];

			if (!TransactionIdIsValid(s->xid))
				continue;
			qc_wal_append_mark(&buf, s->xid, s->keys, s->nkeys);
			hdr.nmarks++;
		}
		hdr.nmarks += qc_twophase_append_marks(&buf);
	}
	XLogBeginInsert();
	if (on)
		XLogSetRecordFlags(XLOG_MARK_UNIMPORTANT);	/* no checkpoint for it */
	XLogRegisterData((char *) &hdr, sizeof(hdr));
	if (buf.len > 0)
		XLogRegisterData(buf.data, buf.len);
	lsn = XLogInsert(QC_RMGR_ID, XLOG_QC_STATE);
	pfree(buf.data);
	return lsn;
}

/*
 * A server out of recovery with the setting off, whose data directory says
 * that standbys may hear invalidations from it (it ran with the setting on,
 * or it was a standby that heard them and has been promoted): write
 * STATE(off), flushed, before anything it invalidates can reach a standby
 * unmarked.  Called by every path that would write MARK or EXPLICIT with
 * the setting on (a writer's PRE_COMMIT and PRE_PREPARE, an explicit
 * invalidation, COMMIT PREPARED of an unknown transaction), and by the
 * sweeper.  Cheap when nothing is owed.
 */
void
qc_wal_pay_off(void)
{
	if (qc_wal == NULL || !qc_wal->off_owed || qc_wal_invalidation ||
		RecoveryInProgress())
		return;
	LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
	if (qc_wal->off_owed)
	{
		XLogFlush(qc_wal_write_state_locked(false));
		if (unlink(QC_WAL_FILE) != 0 && errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", QC_WAL_FILE)));
		qc_wal->off_owed = false;
	}
	LWLockRelease(qc_wal->lock);
}

/*
 * The sweeper's tick.  On a primary with the setting on: STATE at start
 * and after each checkpoint; with it off: STATE(off) once if the last run
 * had it on.  On a standby: the reaper.
 */
void
qc_wal_tick(void)
{
	XLogRecPtr	redo;
	XLogRecPtr	lsn;

	if (qc_wal == NULL)
		return;
	if (RecoveryInProgress())
	{
		qc_wal_reap(false);
		return;
	}
	if (!qc_wal_invalidation)
	{
		qc_wal_pay_off();
		return;
	}
	redo = GetRedoRecPtr();
	if (qc_wal->state_started && redo == qc_wal->state_redo)
		return;
	if (!qc_wal->state_started && !qc_wal_file_exists())
		qc_wal_file_create();
	qc_wal->off_owed = true;	/* only this process writes it while on */
	qc_wal->state_started = true;
	qc_wal->state_redo = redo;
	LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
	lsn = qc_wal_write_state_locked(true);
	LWLockRelease(qc_wal->lock);
	XLogFlush(lsn);
}

/* ---------- the standby: redo and the reaper ---------- */

static bool qc_wal_can_reap(void);
static int	qc_wal_reap_locked(bool all);

/* Remember a replayed mark and put its keys in flight; under the lock. */
static void
qc_wal_track(TransactionId xid, const uint64 *keys, int nkeys)
{
	QcWalTrack *t = qc_wal_tracks();
	TransactionId *x = qc_wal_txids();
	int			i;

	for (i = 0; i < qc_wal->ntracks; i++)
		if (!TransactionIdIsValid(x[i]))
			break;
	if (i == qc_wal->ntracks && qc_wal_can_reap() &&
		qc_wal_reap_locked(false) > 0)
	{
		/* committed ones whose STAMP has not come yet: room again */
		for (i = 0; i < qc_wal->ntracks; i++)
			if (!TransactionIdIsValid(x[i]))
				break;
	}
	if (i == qc_wal->ntracks)
	{
		/*
		 * Cannot happen with a standby configured as PostgreSQL requires
		 * (max_connections at least the primary's).  Stop storing, kill
		 * what this standby stored, wait for the next STATE.
		 */
		if (qc_wal->active)
			ereport(LOG,
					(errmsg("qcache stops storing on this standby until the primary's next checkpoint"),
					 errdetail("More than %d transactions were committing invalidations at once.",
							   qc_wal->ntracks)));
		qc_wal->active = false;
		qc_inval_standby_epoch(GetCurrentTimestamp());
		return;
	}
	t[i].nkeys = Min(nkeys, QC_WAL_KEYS);
	memcpy(t[i].keys, keys, sizeof(uint64) * t[i].nkeys);
	qc_inval_keys_mark(t[i].keys, t[i].nkeys, +1);
	x[i] = xid;
	qc_wal->ntrack++;
	if (i >= qc_wal->hwm)
		qc_wal->hwm = i + 1;
}

/* Stamp and unmark remembered mark i, and free it; under the lock. */
static void
qc_wal_untrack(int i)
{
	QcWalTrack *t = &qc_wal_tracks()[i];
	TransactionId *x = qc_wal_txids();

	qc_inval_keys_stamp(t->keys, t->nkeys, GetCurrentTimestamp());
	qc_inval_keys_mark(t->keys, t->nkeys, -1);
	x[i] = InvalidTransactionId;
	qc_wal->ntrack--;
	while (qc_wal->hwm > 0 && !TransactionIdIsValid(x[qc_wal->hwm - 1]))
		qc_wal->hwm--;
}

/*
 * Can this process tell which transactions are in progress?  The startup
 * process only once its snapshot of running transactions is complete;
 * hot standby sessions and the sweeper exist only after that.
 */
static bool
qc_wal_can_reap(void)
{
	return !AmStartupProcess() || standbyState >= STANDBY_SNAPSHOT_READY;
}

/*
 * Stamp and unmark the remembered marks whose transaction is no longer in
 * progress here, or all of them; under the lock, held exclusively (then
 * ProcArrayLock, shared, in TransactionIdIsInProgress).  Returns how many.
 */
static int
qc_wal_reap_locked(bool all)
{
	TransactionId *x = qc_wal_txids();
	int			n = 0;
	int			i;

	for (i = qc_wal->hwm - 1; i >= 0; i--)
	{
		if (!TransactionIdIsValid(x[i]))
			continue;
		if (all || !TransactionIdIsInProgress(x[i]))
		{
			qc_wal_untrack(i);
			n++;
		}
	}
	return n;
}

/* The reaper: see the header comment (all: at the end of recovery). */
void
qc_wal_reap(bool all)
{
	if (qc_wal == NULL || qc_wal->ntrack == 0)
		return;
	if (!all && !qc_wal_can_reap())
		return;
	LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
	(void) qc_wal_reap_locked(all);
	LWLockRelease(qc_wal->lock);
}

/*
 * A session on a standby found a tag in flight: if replay has moved since
 * the last reap, reap now, so that a commit that has been replayed stops
 * being in flight at once rather than when its STAMP arrives (the primary
 * flushes STAMP with its next commit, or within wal_writer_delay: under a
 * steady write load, never before the next MARK).  Returns true if it
 * stamped something, when a second look may find the entry fresh.
 */
bool
qc_wal_help_reap(void)
{
	XLogRecPtr	replayed;
	int			n;

	if (qc_wal == NULL || qc_wal->ntrack == 0 || !RecoveryInProgress())
		return false;
	replayed = GetXLogReplayRecPtr(NULL);
	if (replayed == (XLogRecPtr) pg_atomic_read_u64(&qc_wal->reaped_at))
		return false;
	LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
	n = qc_wal_reap_locked(false);
	pg_atomic_write_u64(&qc_wal->reaped_at, (uint64) replayed);
	LWLockRelease(qc_wal->lock);
	return n > 0;
}

/* Is xid remembered?  Under the lock. */
static bool
qc_wal_tracked(TransactionId xid)
{
	TransactionId *x = qc_wal_txids();
	int			i;

	for (i = 0; i < qc_wal->hwm; i++)
		if (x[i] == xid)
			return true;
	return false;
}

static void
qc_wal_redo_state(const xl_qc_state *hdr, const char *p, const char *end)
{
	uint32		i;

	if (!hdr->on)
	{
		/* the primary stopped writing: forget everything stored here */
		if (unlink(QC_WAL_FILE) != 0 && errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", QC_WAL_FILE)));
		LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
		qc_wal->off_owed = false;
		qc_wal->active = false;
		qc_inval_standby_epoch(GetCurrentTimestamp());
		LWLockRelease(qc_wal->lock);
		qc_wal_reap(true);
		return;
	}

	/*
	 * Standbys of this one (cascades) hear the primary too: if this server
	 * is promoted with the setting off, it owes them STATE(off).
	 */
	if (!qc_wal->off_owed)
	{
		if (!qc_wal_file_exists())
			qc_wal_file_create();
		LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
		qc_wal->off_owed = true;
		LWLockRelease(qc_wal->lock);
	}
	if (standbyState < STANDBY_SNAPSHOT_READY)
		return;					/* in-progress tests unreliable yet */
	LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
	for (i = 0; i < hdr->nmarks; i++)
	{
		xl_qc_mark	m;
		uint64		keys[QC_WAL_KEYS];

		if (end - p < (ptrdiff_t) offsetof(xl_qc_mark, keys))
			break;
		memcpy(&m, p, offsetof(xl_qc_mark, keys));
		p += offsetof(xl_qc_mark, keys);
		if (m.nkeys > QC_WAL_KEYS ||
			end - p < (ptrdiff_t) (sizeof(uint64) * m.nkeys))
			break;
		memcpy(keys, p, sizeof(uint64) * m.nkeys);
		p += sizeof(uint64) * m.nkeys;
		if (!qc_wal_tracked(m.xid) && TransactionIdIsInProgress(m.xid))
			qc_wal_track(m.xid, keys, m.nkeys);
	}
	if (!qc_wal->active)
	{
		qc_wal->active = true;
		qc_wal->active_since = GetCurrentTimestamp();
	}
	LWLockRelease(qc_wal->lock);
	qc_wal_reap(false);
}

/*
 * Replay an explicit invalidation: stamp with this server's clock (values
 * built here before the replay are stale), or remove the key or prefix.
 */
static void
qc_wal_redo_explicit(uint8 kind, Oid dbid, uint32 hash, const char *text,
					 uint32 len)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		key;

	if (qc_dsa == NULL)
		qc_attach();
	switch (kind)
	{
		case QC_MATCH_TAG:
			key = (uint64) dbid << 32 | hash;
			qc_inval_keys_stamp(&key, 1, now);
			break;
		case QC_MATCH_ALL:
			key = (uint64) dbid << 32;
			qc_inval_keys_stamp(&key, 1, now);
			(void) qc_store_remove_matching(dbid, QC_MATCH_ALL, NULL, 0);
			break;
		case QC_MATCH_PREFIX:
			(void) qc_store_remove_matching(dbid, QC_MATCH_PREFIX, text, len);
			break;
		case QC_WAL_KEY:
			{
				QcKey		k;

				k.dbid = dbid;
				k.data = text;
				k.len = len;
				k.hash = qc_hash_key(dbid, text, len);
				(void) qc_store_remove(&k);
				break;
			}
		default:
			elog(PANIC, "qcache: unknown explicit invalidation %u", kind);
	}
}

static void
qc_wal_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & XLR_RMGR_INFO_MASK;
	char	   *data = XLogRecGetData(record);
	Size		len = XLogRecGetDataLen(record);

	if (qc_wal == NULL)
		return;
	switch (info)
	{
		case XLOG_QC_MARK:
			{
				xl_qc_mark	m;
				uint64		keys[QC_WAL_KEYS];

				if (len < offsetof(xl_qc_mark, keys))
					elog(PANIC, "qcache: malformed MARK record");
				memcpy(&m, data, offsetof(xl_qc_mark, keys));
				if (m.nkeys > QC_WAL_KEYS || len < SizeOfQcMark(m.nkeys))
					elog(PANIC, "qcache: malformed MARK record");
				memcpy(keys, data + offsetof(xl_qc_mark, keys),
					   sizeof(uint64) * m.nkeys);
				LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
				qc_wal_track(m.xid, keys, m.nkeys);
				LWLockRelease(qc_wal->lock);
				break;
			}
		case XLOG_QC_STAMP:
			{
				xl_qc_stamp s;
				TransactionId *x = qc_wal_txids();
				int			i;

				if (len < sizeof(s))
					elog(PANIC, "qcache: malformed STAMP record");
				memcpy(&s, data, sizeof(s));
				LWLockAcquire(qc_wal->lock, LW_EXCLUSIVE);
				for (i = qc_wal->hwm - 1; i >= 0; i--)
					if (x[i] == s.xid)
						qc_wal_untrack(i);
				LWLockRelease(qc_wal->lock);
				break;
			}
		case XLOG_QC_EXPLICIT:
			{
				xl_qc_explicit x;

				if (len < offsetof(xl_qc_explicit, text))
					elog(PANIC, "qcache: malformed EXPLICIT record");
				memcpy(&x, data, offsetof(xl_qc_explicit, text));
				if (len < offsetof(xl_qc_explicit, text) + x.len)
					elog(PANIC, "qcache: malformed EXPLICIT record");
				qc_wal_redo_explicit(x.kind, x.dbid, x.hash,
									 data + offsetof(xl_qc_explicit, text), x.len);
				break;
			}
		case XLOG_QC_STATE:
			{
				xl_qc_state hdr;

				if (len < sizeof(hdr))
					elog(PANIC, "qcache: malformed STATE record");
				memcpy(&hdr, data, sizeof(hdr));
				qc_wal_redo_state(&hdr, data + sizeof(hdr), data + len);
				break;
			}
		default:
			elog(PANIC, "qcache: unknown WAL record type %u", info);
	}
}

/* End of recovery (promotion, or a primary's crash recovery). */
static void
qc_wal_cleanup(void)
{
	qc_wal_reap(true);
	if (qc_wal != NULL)
		qc_wal->active = false;
}

static const char *
qc_wal_identify(uint8 info)
{
	switch (info & XLR_RMGR_INFO_MASK)
	{
		case XLOG_QC_MARK:
			return "MARK";
		case XLOG_QC_STAMP:
			return "STAMP";
		case XLOG_QC_EXPLICIT:
			return "EXPLICIT";
		case XLOG_QC_STATE:
			return "STATE";
	}
	return NULL;
}

static void
qc_wal_desc(StringInfo buf, XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & XLR_RMGR_INFO_MASK;
	char	   *data = XLogRecGetData(record);

	switch (info)
	{
		case XLOG_QC_MARK:
			appendStringInfo(buf, "xid %u; %u keys",
							 ((xl_qc_mark *) data)->xid,
							 ((xl_qc_mark *) data)->nkeys);
			break;
		case XLOG_QC_STAMP:
			appendStringInfo(buf, "xid %u", ((xl_qc_stamp *) data)->xid);
			break;
		case XLOG_QC_EXPLICIT:
			appendStringInfo(buf, "kind %u; db %u", ((xl_qc_explicit *) data)->kind,
							 ((xl_qc_explicit *) data)->dbid);
			break;
		case XLOG_QC_STATE:
			appendStringInfo(buf, "%s; %u marks",
							 ((xl_qc_state *) data)->on ? "on" : "off",
							 ((xl_qc_state *) data)->nmarks);
			break;
	}
}

static RmgrData qc_rmgr = {
	.rm_name = QC_RMGR_NAME,
	.rm_redo = qc_wal_redo,
	.rm_desc = qc_wal_desc,
	.rm_identify = qc_wal_identify,
	.rm_cleanup = qc_wal_cleanup,
};

/* From _PG_init (shared_preload_libraries only). */
void
qc_wal_register(void)
{
	RegisterCustomRmgr(QC_RMGR_ID, &qc_rmgr);
}

/*
 * May a value computed on this standby, built at `build`, with tags or as
 * a qcache_fetch result, be stored?  Only while invalidations arrive in
 * the WAL, and only if built after they began to (see above).
 */
bool
qc_wal_standby_may_store(TimestampTz build)
{
	bool		ok;

	if (qc_wal == NULL)
		return false;
	LWLockAcquire(qc_wal->lock, LW_SHARED);
	ok = qc_wal->active && build >= qc_wal->active_since;
	LWLockRelease(qc_wal->lock);
	return ok;
}

PG_FUNCTION_INFO_V1(qcache_wal_status);

/* qcache_wal_status() returns text: see the install script. */
Datum
qcache_wal_status(PG_FUNCTION_ARGS)
{
	const char *s;

	qc_require_loaded();
	if (!RecoveryInProgress())
		s = qc_wal_invalidation ? "writing" : "off";
	else
	{
		LWLockAcquire(qc_wal->lock, LW_SHARED);
		s = qc_wal->active ? "hearing" : "waiting";
		LWLockRelease(qc_wal->lock);
	}
	PG_RETURN_TEXT_P(cstring_to_text(s));
}
