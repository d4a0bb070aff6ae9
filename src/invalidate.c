/*-------------------------------------------------------------------------
 *
 * invalidate.c
 *		Invalidation from writes that stays correct under concurrency.
 *
 * The problem.  A trigger that deletes cache entries when a row changes is
 * not enough: another session can compute a value from a snapshot taken
 * before the write committed and store it after the delete, and the cache
 * then serves that stale value until it expires.  qcache closes this race
 * the way Oracle's result cache does: it compares each entry's build point
 * with the invalidation points of its tags.
 *
 * The mechanism.
 *
 * - Invalidation points.  A fixed array of QC_TAG_SLOTS slots in shared
 *   memory holds, for each (database, tag) hashed to it, the time of the
 *   last committed invalidation (stamp) and the number of transactions
 *   committing an invalidation right now (inflight).  It is lossy: tags
 *   that share a slot share a stamp, which costs extra misses, never a
 *   stale value.  Slots are atomics and need no lock; stamps only grow.
 *   Tag hash 0 of a database is its wildcard: every entry of the database
 *   checks it.  qcache_clear stamps it.
 *
 * - Node-internal tags (first byte 0x01) name what a qcache_fetch entry
 *   depends on, in a way no rename changes: "\001rel:<oid>" for every
 *   relation its execution read and all their ancestors (pg_inherits),
 *   "\001fn:<oid>" for the functions it called, and "\001names", which
 *   every DDL that can change what a name resolves to stamps (ddl.c).
 *   They are not shown by qcache_entries and not accepted from users.
 *   Only the names tag and function OID tags go to Redis (commit stamps,
 *   messages), for the qcache_fetch results there (fetch.c); the others
 *   stay on this node (a relation's OID tag is stamped with its public
 *   table: tag, which Redis carries).
 *
 * - Families.  A TRUNCATE cannot see the rows it removes, so a template
 *   with columns ('item:{id}') cannot be expanded; it stamps the
 *   template's family instead, "\001fam:item:" (its literal text up to
 *   its first ':'), and every entry carries the family of each of its
 *   tags that has a ':' (qc_tags_with_families, at store time), so the
 *   family reaches exactly the entries whose tags the template could have
 *   produced.  A template with a column before its first ':' has no
 *   family and stamps the wildcard; so does any such TRUNCATE with a Redis
 *   level, whose other nodes know no families.
 *
 * - Explicit invalidations (qcache_invalidate_tag, qcache_clear) act at
 *   once: they remove the entries and stamp the tag with the start of the
 *   calling transaction, so that values built by older transactions cannot
 *   be stored afterwards, while the caller may store new ones.  Only the
 *   triggers are transactional.
 *
 * - Build points.  An entry stores the start of the transaction that
 *   stored it (GetCurrentTransactionStartTimestamp).  Every snapshot that
 *   transaction took was taken after that time, so the value was computed
 *   from a snapshot no older than the build point.  The one way to use an
 *   older snapshot, SET TRANSACTION SNAPSHOT, is watched for (qcache.c's
 *   ProcessUtility_hook): such a transaction stores nothing.
 *
 * - Who stamps what.  The triggers of qcache_watch stamp the table's name
 *   tag and its OID tag, and fired per statement on a parent, the OID tags
 *   of its descendants; entries over a child carry the parent's OID tag
 *   (ancestors), so a write through the parent reaches them, and entries
 *   over a parent carry the OID tags of the children its scan expanded
 *   to, so a write to a child reaches them.  qcache_watch covers the
 *   descendants of a parent, and ddl.c watches children and partitions
 *   created or attached later.  A row trigger enabled for replica mode
 *   stamps the same tags for the logical replication apply worker, which
 *   fires no statement trigger (TRUNCATE's excepted).  DDL stamps OID
 *   tags and the names tag through the same pending set (ddl.c).
 *
 * - The writer.  qcache_invalidate_trigger only adds the expanded tags to a
 *   backend-local pending set (qcache_watch fires it BEFORE each statement
 *   for the table's tag, so the transaction counts as a writer from the
 *   start of its first write, RETURNING clauses included).  At XACT_EVENT_PRE_COMMIT the writer marks
 *   their slots in flight; at XACT_EVENT_COMMIT, which PostgreSQL calls
 *   after the commit is visible to new snapshots (ProcArrayEndTransaction),
 *   it stamps them with the current time and unmarks them.  At abort it
 *   only unmarks them.
 *
 * - Readers and setters.  An entry is served only if none of its tag slots
 *   (nor the wildcard) is in flight and every stamp is older than the
 *   entry's build point; a set is refused on the same test.  The writing
 *   transaction itself misses on its pending tags (it reads its own
 *   writes), and stores nothing until it ends (a value it computes may
 *   reflect its uncommitted writes).
 *
 * Why it is correct.  Let T commit an invalidation of tag t and let V be a
 * value computed from a snapshot S that does not see T, in a transaction
 * that started at B.  Since S does not see T, S was taken before T became
 * visible, and B <= time(S) < visible(T) <= stamp(T), so stamp(t) >= B once
 * T's COMMIT callback ran, and V is never served again: not if it was
 * stored before, not if it is stored later.  Between T's PRE_COMMIT and its
 * COMMIT callback, the window in which new snapshots may already see T,
 * the slot is in flight and every entry with t misses.  A backend that dies
 * in that window takes the whole cluster through crash recovery, which
 * empties the cache.  A rollback only unmarks: the values computed meanwhile
 * did not see T's writes, which are gone.  Subtransactions keep their
 * pending tags when rolled back: extra misses, never wrong values.
 * PREPARE TRANSACTION keeps the pending tags in flight until the prepared
 * transaction is finished, across restarts: see "prepared transactions"
 * below for that path's own argument.
 *
 * The argument needs every write that can change a cached result to reach
 * the pending set of the transaction that makes it, with a tag the entry
 * carries.  Entries carry their relations by OID, with all ancestors, so
 * what a write must stamp is only the OID of the relation it writes (and
 * for a statement on a parent, its descendants): DML through qcache_watch's
 * triggers (COPY, ON CONFLICT, data-modifying CTEs and writes in functions
 * and procedures all fire them), replicated rows through the replica row
 * trigger, DDL through ddl.c.  The database's OID takes all 32 high bits of
 * a pending key, so every database, whatever its OID, stamps its own slots.
 *
 * The clock: stamps and build points are both GetCurrentTimestamp() of the
 * same machine.  The argument assumes the system clock does not step
 * backwards (slewing is fine).
 *
 * Entries that become stale are not removed at commit (that would cost the
 * writer its tags' entries); reads skip them, eviction frees them like
 * expired ones, and each stamp made at commit is noted for the sweeper
 * (qc_store_note_stale), which frees them through the tag index.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "utils/acl.h"
#include "replication/logicalworker.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "qcache.h"
#include "redis.h"

PG_FUNCTION_INFO_V1(qcache_invalidate_trigger);
PG_FUNCTION_INFO_V1(qcache_check_templates);

/* One invalidation point; see the header comment. */
typedef struct QcTagSlot
{
	pg_atomic_uint64 stamp;		/* last committed invalidation; 0: none */
	pg_atomic_uint32 inflight;	/* transactions between PRE_COMMIT and COMMIT */
} QcTagSlot;

/* ---------- backend-local state of the current transaction ---------- */

/* Pending (database, tag hash) pairs, open addressing; 0 marks empty. */
static uint64 *pending = NULL;
static int	pending_size = 0;	/* power of 2 */
static int	pending_count = 0;
static bool pending_marked = false; /* slots marked in flight? */
static TransactionId pending_xid = InvalidTransactionId;	/* in the WAL */
static bool snapshot_imported = false;	/* SET TRANSACTION SNAPSHOT ran */

/* With a Redis level: the pending tag strings, NUL-separated, deduplicated */
static HTAB *l2_seen = NULL;
static StringInfo l2_tags = NULL;
static int	l2_ntags = 0;
static bool l2_overflow = false;	/* more than QC_L2_MAX_COMMIT_TAGS */
static const char *l2_db = NULL;	/* the database's name, for Redis */

static inline QcTagSlot *
qc_tag_slots(void)
{
	return (QcTagSlot *) ((char *) qc_shared + qc_shared->tagslots_off);
}

/* Bytes of the slot array. */
Size
qc_inval_size(void)
{
	return mul_size(QC_TAG_SLOTS, sizeof(QcTagSlot));
}

/* Zero every slot; postmaster only, at shared memory creation. */
void
qc_inval_init(void)
{
	QcTagSlot  *slots = qc_tag_slots();
	int			i;

	for (i = 0; i < QC_TAG_SLOTS; i++)
	{
		pg_atomic_init_u64(&slots[i].stamp, 0);
		pg_atomic_init_u32(&slots[i].inflight, 0);
	}
	pg_atomic_init_u64(&qc_shared->stamp_generation, 0);
}

/*
 * The pending-set key of a (database, tag hash) pair: the database's oid in
 * the high 32 bits, all of them (oids run up to 2^32 - 1), the tag hash in
 * the low ones.  Never 0, since a database's oid is never InvalidOid.
 */
static inline uint64
qc_pending_key(Oid dbid, uint32 taghash)
{
	Assert(OidIsValid(dbid));
	return (uint64) dbid << 32 | taghash;
}

/* The database of a pending-set key. */
static inline Oid
qc_pending_db(uint64 key)
{
	return (Oid) (key >> 32);
}

/* The slot of a (database, tag hash) pair. */
static inline QcTagSlot *
qc_slot_of(Oid dbid, uint32 taghash)
{
	uint32		h = hash_combine(taghash, murmurhash32((uint32) dbid));

	return &qc_tag_slots()[h & (QC_TAG_SLOTS - 1)];
}

/* Hash of a pending-set key (PostgreSQL 15 has no murmurhash64). */
static inline uint32
qc_pending_hash(uint64 key)
{
	return hash_combine(murmurhash32((uint32) key),
						murmurhash32((uint32) (key >> 32)));
}

static bool
qc_pending_contains(uint64 key)
{
	int			i;

	if (pending_count == 0)
		return false;
	for (i = qc_pending_hash(key) & (pending_size - 1);
		 pending[i] != 0;
		 i = (i + 1) & (pending_size - 1))
	{
		if (pending[i] == key)
			return true;
	}
	return false;
}

/* Add a key to the pending set, growing it as needed. */
static void
qc_pending_add(uint64 key)
{
	int			i;

	if (qc_pending_contains(key))
		return;
	if (pending_count * 2 >= pending_size)
	{
		uint64	   *old = pending;
		int			oldsize = pending_size;
		int			j;

		pending_size = oldsize ? oldsize * 2 : 64;
		pending = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(uint64) * pending_size);
		pending_count = 0;
		for (j = 0; j < oldsize; j++)
			if (old[j] != 0)
				qc_pending_add(old[j]);
		if (old)
			pfree(old);
	}
	for (i = qc_pending_hash(key) & (pending_size - 1);
		 pending[i] != 0;
		 i = (i + 1) & (pending_size - 1))
		;
	pending[i] = key;
	pending_count++;
}

/* Forget the pending set (transaction end). */
static void
qc_pending_reset(void)
{
	if (l2_seen != NULL)
	{
		hash_destroy(l2_seen);
		l2_seen = NULL;
		pfree(l2_tags->data);
		pfree(l2_tags);
		l2_tags = NULL;
	}
	l2_ntags = 0;
	l2_overflow = false;
	if (pending_count > 0)
		memset(pending, 0, sizeof(uint64) * pending_size);
	pending_count = 0;
	pending_marked = false;
	pending_xid = InvalidTransactionId;
}

/*
 * At PRE_COMMIT: the pending keys into the WAL, for standbys (walinval.c),
 * after this backend marked them.  A transaction without an xid changed no
 * data and writes nothing.
 */
static void
qc_pending_wal_mark(void)
{
	uint64	   *keys;
	int			n = 0;
	int			i;

	pending_xid = GetTopTransactionIdIfAny();
	if (!TransactionIdIsValid(pending_xid))
		return;
	keys = palloc(sizeof(uint64) * pending_count);
	for (i = 0; i < pending_size; i++)
		if (pending[i] != 0)
			keys[n++] = pending[i];
	qc_wal_mark(pending_xid, keys, n);
	pfree(keys);
}

/* Mark (+1) or unmark (-1) the slots of every pending tag. */
static void
qc_pending_mark(int delta)
{
	int			i;

	for (i = 0; i < pending_size; i++)
	{
		QcTagSlot  *slot;

		if (pending[i] == 0)
			continue;
		slot = qc_slot_of(qc_pending_db(pending[i]), (uint32) pending[i]);
		if (delta > 0)
			pg_atomic_fetch_add_u32(&slot->inflight, 1);
		else
			pg_atomic_fetch_sub_u32(&slot->inflight, 1);
	}
}

/* Raise a slot's stamp to at least `stamp`. */
static void
qc_slot_stamp(QcTagSlot *slot, TimestampTz stamp)
{
	uint64		old = pg_atomic_read_u64(&slot->stamp);

	while (old < (uint64) stamp &&
		   !pg_atomic_compare_exchange_u64(&slot->stamp, &old, (uint64) stamp))
		;
}

/* Stamp every pending tag's slot with `stamp`. */
static void
qc_pending_stamp(TimestampTz stamp)
{
	int			i;

	for (i = 0; i < pending_size; i++)
		if (pending[i] != 0)
		{
			qc_slot_stamp(qc_slot_of(qc_pending_db(pending[i]),
									 (uint32) pending[i]), stamp);
			qc_store_note_stale(qc_pending_db(pending[i]), (uint32) pending[i]);
		}
	pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
}

/* ---------- prepared transactions (two-phase commit) ---------- */

/*
 * A prepared transaction that has pending tags commits later, in whatever
 * process runs COMMIT PREPARED (a session, or the logical replication
 * apply worker of a two_phase subscription), where no callback of ours
 * sees it; and a server restart may come in between, which empties shared
 * memory but not the prepared transaction.  PostgreSQL 15 has no hook into
 * its two-phase state files, so qcache keeps its own record:
 *
 * - At XACT_EVENT_PRE_PREPARE the preparing backend claims a record in
 *   shared memory (QcTwoPhase), fills it with the transaction's xid and
 *   its pending (database, tag hash) keys (more than QC_2PC_KEYS collapse
 *   to the database's wildcard), marks those slots in flight, and writes
 *   the same to pg_qcache/2pc-<xid> durably (write, fsync, durable_rename)
 *   before PostgreSQL writes the prepare record.  The pending set is then
 *   dropped without stamping (XACT_EVENT_PREPARE).
 *
 * - While the record exists, its slots stay in flight: every entry with
 *   one of its tags misses, and no value with them is stored.  This is
 *   conservative (the writes are not visible yet) but it makes the commit
 *   need nothing of the committing process.
 *
 * - qc_twophase_reap, run when a transaction that ran COMMIT PREPARED or
 *   ROLLBACK PREPARED commits (they commit a transaction of their own),
 *   at every commit of a logical replication apply worker (which calls
 *   FinishPreparedTransaction itself), and by the sweeper every second,
 *   finds the records whose xid is no longer in progress
 *   (TransactionIdIsInProgress: a prepared transaction keeps its xid in
 *   the proc array until it is finished).  It claims the record (an atomic
 *   state change: one reaper per record), stamps its slots with the
 *   current time, unmarks them, removes the file and frees the record.
 *   Committed or rolled back makes no difference: a stamp costs misses
 *   only, and the check needs no clog lookup.
 *
 * - At startup (shared memory creation, also after a crash) every file in
 *   pg_qcache is read back into a record, its slots marked in flight.
 *
 * Why it is correct: a prepared transaction T becomes visible when its
 * COMMIT PREPARED removes it from the proc array.  From PRE_PREPARE until
 * then its slots are in flight (since startup, after a restart: the
 * cache is empty before), so nothing with its tags is served or stored.
 * The reaper sees T not in progress only after that, and stamps at a
 * time >= visible(T) before it unmarks: the argument of the header
 * comment then holds unchanged.  Crash windows: a crash before the file
 * is durable happens before the prepare record is written, so T does not
 * survive it; a file whose transaction never prepared (a crash, or an
 * error after PRE_PREPARE) is reaped as not in progress: extra misses.
 * A crash after COMMIT PREPARED but before the reaper: the cache is empty
 * after the restart, and the file is reaped then.
 *
 * - A prepared transaction without pending tags gets a record too, with no
 *   keys and no file (nothing to keep across a restart).  So COMMIT
 *   PREPARED of a transaction that has no record was prepared where qcache
 *   could not see it: before a restart (then it had no tags), on the
 *   primary of a standby since promoted, before qcache was loaded.  The
 *   ProcessUtility hook then puts the database's wildcard in flight
 *   before the commit and stamps it after (qc_twophase_unknown_begin and
 *   _end): conservative, and rare.  The apply worker's COMMIT PREPARED
 *   does not pass the hook; its prepared transactions are its own, known
 *   unless a restart came in between, when they had no tags.
 *
 * With a Redis level, a reaped record makes the node owe Redis everything
 * (qc_l2_owe of the global stamp):
 * the record holds hashes, not the tag strings Redis needs, so all of L2
 * is invalidated; coarse, but exact.
 *
 * Locking: QcTwoPhase.recs[i].state is an atomic: FREE -> FILLING by CAS
 * (the preparing backend, which alone then writes xid, nkeys and keys),
 * FILLING -> ACTIVE (written barrier first), ACTIVE -> REAPING by CAS (one
 * reaper), REAPING -> FREE.  nactive counts records not FREE, for a cheap
 * test.  The postmaster fills records at startup before any backend runs.
 */
#define QC_2PC_KEYS			64
#define QC_2PC_DIR			"pg_qcache"

#define QC_2PC_FREE			0
#define QC_2PC_FILLING		1
#define QC_2PC_ACTIVE		2
#define QC_2PC_REAPING		3

typedef struct QcPreparedRec
{
	pg_atomic_uint32 state;
	TransactionId xid;
	int			nkeys;
	uint64		keys[QC_2PC_KEYS];
} QcPreparedRec;

typedef struct QcTwoPhase
{
	pg_atomic_uint32 nactive;
	int			nrecs;
	QcPreparedRec recs[FLEXIBLE_ARRAY_MEMBER];
} QcTwoPhase;

static QcTwoPhase *qc_2pc = NULL;
static bool twophase_finishing = false; /* COMMIT/ROLLBACK PREPARED ran */
static TransactionId unknown_xid = InvalidTransactionId;	/* unknown_begin's */

/* Records: every prepared transaction, and as many again being reaped. */
static int
qc_twophase_nrecs(void)
{
	return 2 * max_prepared_xacts + 8;
}

/* Bytes of the record array. */
static Size
qc_twophase_size(void)
{
	return add_size(offsetof(QcTwoPhase, recs),
					mul_size(qc_twophase_nrecs(), sizeof(QcPreparedRec)));
}

/* Request the shared memory of the records; from the shmem_request hook. */
void
qc_twophase_shmem_request(void)
{
	RequestAddinShmemSpace(qc_twophase_size());
}

/* Mark (+1) or unmark (-1) the slots of a record's keys. */
static void
qc_keys_mark(const uint64 *keys, int nkeys, int delta)
{
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		QcTagSlot  *slot = qc_slot_of(qc_pending_db(keys[i]), (uint32) keys[i]);

		if (delta > 0)
			pg_atomic_fetch_add_u32(&slot->inflight, 1);
		else
			pg_atomic_fetch_sub_u32(&slot->inflight, 1);
	}
}

/* qc_keys_mark for walinval.c's replay. */
void
qc_inval_keys_mark(const uint64 *keys, int nkeys, int delta)
{
	qc_keys_mark(keys, nkeys, delta);
}

/* Stamp the slots of (database, tag hash) keys; walinval.c's replay. */
void
qc_inval_keys_stamp(const uint64 *keys, int nkeys, TimestampTz stamp)
{
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		qc_slot_stamp(qc_slot_of(qc_pending_db(keys[i]), (uint32) keys[i]),
					  stamp);
		qc_store_note_stale(qc_pending_db(keys[i]), (uint32) keys[i]);
	}
	pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
}

/*
 * The standby epoch: the stamp of the slot of (InvalidOid, 0), which no
 * database's tag uses.  Entries a standby computed (QC_ENTRY_STANDBY) built
 * before it are stale: the standby stopped hearing invalidations then
 * (walinval.c).
 */
static inline QcTagSlot *
qc_standby_slot(void)
{
	return qc_slot_of(InvalidOid, 0);
}

void
qc_inval_standby_epoch(TimestampTz stamp)
{
	qc_slot_stamp(qc_standby_slot(), stamp);
	pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
}

/*
 * Append the marks of the active prepared transactions with keys to a
 * STATE record (walinval.c, which holds its lock exclusively: a record
 * being activated under it shared is either seen here or written after).
 * Returns how many.
 */
int
qc_twophase_append_marks(StringInfo buf)
{
	int			i;
	int			n = 0;

	if (qc_2pc == NULL)
		return 0;
	for (i = 0; i < qc_2pc->nrecs; i++)
	{
		QcPreparedRec *rec = &qc_2pc->recs[i];

		if (pg_atomic_read_u32(&rec->state) != QC_2PC_ACTIVE)
			continue;
		pg_read_barrier();
		if (rec->nkeys == 0)
			continue;
		qc_wal_append_mark(buf, rec->xid, rec->keys, rec->nkeys);
		n++;
	}
	return n;
}

/* Make a filled record visible (qc_wal_mark_prepared's callback). */
static void
qc_twophase_activate(void *arg)
{
	QcPreparedRec *rec = (QcPreparedRec *) arg;

	pg_write_barrier();
	pg_atomic_write_u32(&rec->state, QC_2PC_ACTIVE);
}

/* The file of a prepared transaction's record. */
static void
qc_twophase_path(char *path, size_t size, TransactionId xid, bool tmp)
{
	snprintf(path, size, QC_2PC_DIR "/2pc-%u%s", xid, tmp ? ".tmp" : "");
}

/*
 * Create the records' shared memory, and read back the records of the
 * files a previous run left (marking their slots in flight).  From the
 * shmem_startup hook, after qc_shmem_startup created the slots.
 */
void
qc_twophase_shmem_startup(void)
{
	bool		found;
	DIR		   *dir;
	struct dirent *de;
	int			n = 0;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	qc_2pc = ShmemInitStruct("qcache prepared transactions",
							 qc_twophase_size(), &found);
	if (!found)
	{
		int			i;

		pg_atomic_init_u32(&qc_2pc->nactive, 0);
		qc_2pc->nrecs = qc_twophase_nrecs();
		for (i = 0; i < qc_2pc->nrecs; i++)
			pg_atomic_init_u32(&qc_2pc->recs[i].state, QC_2PC_FREE);
	}
	LWLockRelease(AddinShmemInitLock);
	if (found || IsUnderPostmaster)
		return;

	/*
	 * The postmaster, at shared memory creation: read back the files.  Not
	 * on a standby, whose files are a base backup's copies: its reaper
	 * does not run during recovery, so their tags would stay in flight
	 * until a promotion; with qcache.wal_invalidation the primary's STATE
	 * records announce its prepared transactions instead (walinval.c), and
	 * after a promotion COMMIT PREPARED of a transaction without a record
	 * stamps the database's wildcard.
	 */
	if (access(STANDBY_SIGNAL_FILE, F_OK) == 0)
		return;
	dir = AllocateDir(QC_2PC_DIR);
	if (dir == NULL)
		return;
	while ((de = ReadDir(dir, QC_2PC_DIR)) != NULL)
	{
		TransactionId xid;
		char		path[MAXPGPATH];
		char		junk;
		QcPreparedRec *rec;
		FILE	   *f;
		int			nkeys;
		bool		ok;

		if (sscanf(de->d_name, "2pc-%u%c", &xid, &junk) != 1)
			continue;
		qc_twophase_path(path, sizeof(path), xid, false);
		if (n >= qc_2pc->nrecs)
		{
			/* cannot happen with the same max_prepared_transactions */
			ereport(WARNING,
					(errmsg("qcache cannot keep the invalidations of prepared transaction %u", xid),
					 errdetail("\"%s\" holds more files than max_prepared_transactions allows for.",
							   QC_2PC_DIR),
					 errhint("Restart with the max_prepared_transactions of the previous run.")));
			continue;
		}
		rec = &qc_2pc->recs[n];
		f = AllocateFile(path, PG_BINARY_R);
		if (f == NULL)
			continue;
		ok = fread(&nkeys, sizeof(nkeys), 1, f) == 1 &&
			nkeys >= 0 && nkeys <= QC_2PC_KEYS &&
			fread(rec->keys, sizeof(uint64), nkeys, f) == (size_t) nkeys;
		FreeFile(f);
		if (!ok)
		{
			/*
			 * A torn file is never renamed into place (durable_rename), so
			 * this is damage; the file is kept, for a person to look at.
			 */
			ereport(WARNING,
					(errmsg("could not read qcache file \"%s\"", path)));
			continue;
		}
		rec->xid = xid;
		rec->nkeys = nkeys;
		qc_keys_mark(rec->keys, nkeys, +1);
		pg_atomic_write_u32(&rec->state, QC_2PC_ACTIVE);
		pg_atomic_fetch_add_u32(&qc_2pc->nactive, 1);
		n++;
	}
	FreeDir(dir);
}

/*
 * XACT_EVENT_PRE_PREPARE with pending tags: the record and its file (see
 * above).  Raises an error, which aborts the PREPARE, if no record is free
 * or the file cannot be written.
 */
static void
qc_twophase_prepare(void)
{
	TransactionId xid = GetTopTransactionId();
	QcPreparedRec *rec = NULL;
	char		tmp[MAXPGPATH];
	char		path[MAXPGPATH];
	int			fd;
	int			i;
	int			nkeys = 0;

	for (i = 0; i < qc_2pc->nrecs; i++)
	{
		uint32		expected = QC_2PC_FREE;

		if (pg_atomic_compare_exchange_u32(&qc_2pc->recs[i].state, &expected,
										   QC_2PC_FILLING))
		{
			rec = &qc_2pc->recs[i];
			break;
		}
	}
	if (rec == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many prepared transactions with qcache invalidations"),
				 errdetail("qcache keeps at most %d.", qc_2pc->nrecs),
				 errhint("Commit or roll back prepared transactions.")));
	pg_atomic_fetch_add_u32(&qc_2pc->nactive, 1);

	/* the keys, or past QC_2PC_KEYS, each database's wildcard */
	for (i = 0; i < pending_size; i++)
	{
		uint64		key = pending[i];

		if (key == 0)
			continue;
		if (pending_count > QC_2PC_KEYS)
		{
			int			j;

			key = qc_pending_key(qc_pending_db(key), 0);
			for (j = 0; j < nkeys; j++)
				if (rec->keys[j] == key)
					break;
			if (j < nkeys)
				continue;
			if (nkeys == QC_2PC_KEYS)
				break;			/* 64 databases in one transaction: no */
		}
		rec->keys[nkeys++] = key;
	}
	rec->xid = xid;
	rec->nkeys = nkeys;

	/*
	 * In flight from now until the reaper finds it finished; active and in
	 * the WAL for standbys (walinval.c), in that order, under its lock.
	 */
	qc_keys_mark(rec->keys, nkeys, +1);
	qc_wal_mark_prepared(xid, rec->keys, nkeys, qc_twophase_activate, rec);

	/* durable before the prepare record is */
	(void) MakePGDirectory(QC_2PC_DIR);
	qc_twophase_path(tmp, sizeof(tmp), xid, true);
	qc_twophase_path(path, sizeof(path), xid, false);
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	if (write(fd, &nkeys, sizeof(nkeys)) != sizeof(nkeys) ||
		write(fd, rec->keys, sizeof(uint64) * nkeys) != (ssize_t) (sizeof(uint64) * nkeys))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	if (pg_fsync(fd) != 0)
		ereport(data_sync_elevel(ERROR),
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", tmp)));
	CloseTransientFile(fd);
	(void) durable_rename(tmp, path, ERROR);
}

/*
 * XACT_EVENT_PRE_PREPARE without pending tags: a record with no keys and
 * no file, so that qc_twophase_known knows this transaction invalidates
 * nothing.  Without a free record it is not kept, which is safe: COMMIT
 * PREPARED of a transaction qcache does not know stamps the database's
 * wildcard (qc_twophase_unknown_begin).
 */
static void
qc_twophase_prepare_untagged(void)
{
	int			i;

	for (i = 0; i < qc_2pc->nrecs; i++)
	{
		QcPreparedRec *rec = &qc_2pc->recs[i];
		uint32		expected = QC_2PC_FREE;

		if (pg_atomic_compare_exchange_u32(&rec->state, &expected,
										   QC_2PC_FILLING))
		{
			pg_atomic_fetch_add_u32(&qc_2pc->nactive, 1);
			rec->xid = GetTopTransactionId();
			rec->nkeys = 0;
			pg_write_barrier();
			pg_atomic_write_u32(&rec->state, QC_2PC_ACTIVE);
			return;
		}
	}
}

/*
 * This transaction runs COMMIT PREPARED or ROLLBACK PREPARED (the
 * ProcessUtility hook says so): reap at its commit, rather than make
 * every commit of every backend look at the records.
 */
void
qc_twophase_finishing(void)
{
	twophase_finishing = true;
}

/* Does a record (with or without tags) exist for this prepared xid? */
static bool
qc_twophase_known(TransactionId xid)
{
	int			i;

	for (i = 0; i < qc_2pc->nrecs; i++)
	{
		QcPreparedRec *rec = &qc_2pc->recs[i];

		if (pg_atomic_read_u32(&rec->state) != QC_2PC_FREE)
		{
			pg_read_barrier();
			if (rec->xid == xid)
				return true;
		}
	}
	return false;
}

/*
 * Before COMMIT PREPARED 'gid' in this session: if qcache holds no record
 * of that prepared transaction, it was prepared where qcache could not
 * see it: before a restart that lost its memory-only record (it had no
 * tags), on a primary this server was a standby of, or before qcache was
 * loaded.  It may have written watched tables, so the database's
 * wildcard is put in flight now and stamped once the commit is visible
 * (qc_twophase_unknown_end), as a writer's tags would be.  Returns the
 * database whose wildcard is in flight, or InvalidOid (known, or no such
 * prepared transaction: PostgreSQL then raises its own error).
 */
Oid
qc_twophase_unknown_begin(const char *gid)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	Oid			dbid = InvalidOid;
	TransactionId xid;

	if (qc_2pc == NULL || !OidIsValid(MyDatabaseId) || gid == NULL)
		return InvalidOid;
	args[0] = CStringGetTextDatum(gid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT transaction::text, dbid "
							  "FROM pg_catalog.pg_prepared_xact() WHERE gid = $1",
							  1, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		char	   *x = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
									  &isnull);

		xid = (TransactionId) strtoul(x, NULL, 10);
		if (!isnull && DatumGetObjectId(d) == MyDatabaseId &&
			!qc_twophase_known(xid))
			dbid = MyDatabaseId;
	}
	SPI_finish();
	if (OidIsValid(dbid))
	{
		uint64		wildcard = qc_pending_key(dbid, 0);

		pg_atomic_fetch_add_u32(&qc_slot_of(dbid, 0)->inflight, 1);
		unknown_xid = xid;
		qc_wal_mark(xid, &wildcard, 1);
	}
	return dbid;
}

/*
 * After COMMIT PREPARED (committed) or its failure: stamp the wildcard
 * that qc_twophase_unknown_begin put in flight, if the commit happened,
 * then unmark it.
 */
void
qc_twophase_unknown_end(Oid dbid, bool committed)
{
	QcTagSlot  *slot = qc_slot_of(dbid, 0);

	if (committed)
	{
		qc_slot_stamp(slot, GetCurrentTimestamp());
		qc_store_note_stale(dbid, 0);
		pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
		if (qc_l2_active())
			qc_l2_owe('g', NULL, NULL, 0);	/* which databases: unknown here */
	}
	pg_atomic_fetch_sub_u32(&slot->inflight, 1);
	if (committed)
		qc_wal_stamp(unknown_xid);
	else
		qc_wal_forget(unknown_xid);
	unknown_xid = InvalidTransactionId;
}

/*
 * Stamp, unmark and free the records of prepared transactions that are
 * finished (see above).  Cheap when there are none.  Never raises: a file
 * that cannot be removed is read back at the next start and reaped again.
 */
void
qc_twophase_reap(void)
{
	int			i;

	if (qc_2pc == NULL || pg_atomic_read_u32(&qc_2pc->nactive) == 0 ||
		RecoveryInProgress())
		return;
	for (i = 0; i < qc_2pc->nrecs; i++)
	{
		QcPreparedRec *rec = &qc_2pc->recs[i];
		uint32		expected = QC_2PC_ACTIVE;
		TimestampTz stamp;
		char		path[MAXPGPATH];
		int			k;

		if (pg_atomic_read_u32(&rec->state) != QC_2PC_ACTIVE)
			continue;
		pg_read_barrier();
		if (TransactionIdIsInProgress(rec->xid))
			continue;
		if (!pg_atomic_compare_exchange_u32(&rec->state, &expected,
											QC_2PC_REAPING))
			continue;
		stamp = GetCurrentTimestamp();
		for (k = 0; k < rec->nkeys; k++)
		{
			qc_slot_stamp(qc_slot_of(qc_pending_db(rec->keys[k]),
									 (uint32) rec->keys[k]), stamp);
			qc_store_note_stale(qc_pending_db(rec->keys[k]),
								(uint32) rec->keys[k]);
		}
		pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
		qc_keys_mark(rec->keys, rec->nkeys, -1);
		if (rec->nkeys > 0)
			qc_wal_stamp(rec->xid);
		if (rec->nkeys > 0 && qc_l2_active())
			qc_l2_owe('g', NULL, NULL, 0);	/* which databases: unknown here */
		qc_twophase_path(path, sizeof(path), rec->xid, false);
		if (unlink(path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
		pg_atomic_write_u32(&rec->state, QC_2PC_FREE);
		pg_atomic_fetch_sub_u32(&qc_2pc->nactive, 1);
	}
}

/*
 * Transaction callback: the commit protocol of the header comment.  Runs
 * in every transaction of every backend; returns at once without pending
 * tags.
 */
static void
qc_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		snapshot_imported = false;
	if (event == XACT_EVENT_COMMIT && (twophase_finishing || IsLogicalWorker()))
		qc_twophase_reap();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		twophase_finishing = false;
	if (event == XACT_EVENT_PRE_PREPARE && pending_count == 0 && qc_2pc != NULL)
		qc_twophase_prepare_untagged();
	if (pending_count == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			qc_pending_mark(+1);
			pending_marked = true;
			if (qc_wal_invalidation)
				qc_pending_wal_mark();
			else
				qc_wal_pay_off();	/* a promoted standby's standbys */
			break;
		case XACT_EVENT_COMMIT:
			{
				TimestampTz stamp = GetCurrentTimestamp();

				qc_pending_stamp(stamp);
				if (pending_marked)
					qc_pending_mark(-1);
				/* after the commit record: the standbys' stamp */
				if (TransactionIdIsValid(pending_xid))
					qc_wal_stamp(pending_xid);
				/* then Redis and the other nodes; bounded, never raises */
				if (qc_l2_active() && l2_db != NULL)
					qc_l2_commit(l2_db, l2_tags ? l2_tags->data : NULL,
								 l2_tags ? l2_tags->len : 0, l2_ntags,
								 l2_overflow ||
								 qc_pending_contains(qc_pending_key(MyDatabaseId, 0)),
								 stamp);
				qc_pending_reset();
				break;
			}
		case XACT_EVENT_ABORT:
			if (pending_marked)
				qc_pending_mark(-1);
			/* a standby reaps the mark when it replays the abort */
			if (TransactionIdIsValid(pending_xid))
				qc_wal_forget(pending_xid);
			qc_pending_reset();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* kept in flight until the prepared transaction is finished */
			qc_twophase_prepare();
			break;
		case XACT_EVENT_PREPARE:
			qc_pending_reset();
			break;
		default:
			break;
	}
}

/* Register the transaction callback; from _PG_init. */
void
qc_inval_register(void)
{
	RegisterXactCallback(qc_xact_callback, NULL);
}

/*
 * Invalidate a tag of the current database when the current transaction
 * commits (and, for the current transaction, at once).  Tag hash 0 is the
 * database wildcard.
 */
void
qc_inval_tag_at_commit(Oid dbid, uint32 taghash)
{
	uint64		key = qc_pending_key(dbid, taghash);

	if (pending_marked && !qc_pending_contains(key))
	{
		/*
		 * Added after PRE_COMMIT marked the set (nothing in PostgreSQL does
		 * that today): mark it too, so that the unmark stays symmetric.
		 */
		pg_atomic_fetch_add_u32(&qc_slot_of(dbid, taghash)->inflight, 1);
	}
	qc_pending_add(key);
}

/*
 * Stamp a tag for an explicit invalidation (qcache_invalidate_tag,
 * qcache_clear), which acts at once and not at commit: values built by
 * transactions older than the current one are stale, and the current
 * transaction may store new values under the tag.
 */
void
qc_inval_tag_explicit(Oid dbid, uint32 taghash)
{
	qc_slot_stamp(qc_slot_of(dbid, taghash),
				  GetCurrentTransactionStartTimestamp() - 1);
	pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
}

/*
 * Stamp a tag with an invalidation that another node made (the Redis
 * subscriber, redis_worker.c): `stamp` is that node's invalidation point.
 */
void
qc_inval_tag_remote(Oid dbid, uint32 taghash, TimestampTz stamp)
{
	qc_slot_stamp(qc_slot_of(dbid, taghash), stamp);
	pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
}

/*
 * The current transaction imported a snapshot (SET TRANSACTION SNAPSHOT):
 * what it reads may be older than its start, its build point, so it
 * stores nothing until it ends.
 */
void
qc_inval_snapshot_imported(void)
{
	snapshot_imported = true;
}

/*
 * Did a test since the last qc_inval_help_standby find a slot in flight?
 * On a standby, the commit it waits for may have been replayed already.
 */
static bool saw_inflight = false;

/*
 * On a hot standby, after a lookup or a set that met a tag in flight: let
 * walinval.c stamp the transactions whose commit has been replayed.
 * Returns true if a second look is worth it.
 */
bool
qc_inval_help_standby(void)
{
	bool		saw = saw_inflight;

	saw_inflight = false;
	return saw && qc_wal_help_reap();
}

/* Is a slot in flight or stamped at or after `build`? */
static inline bool
qc_slot_stale(QcTagSlot *slot, TimestampTz build, bool inflight_counts)
{
	if (inflight_counts)
	{
		if (pg_atomic_read_u32(&slot->inflight) > 0)
		{
			saw_inflight = true;
			return true;
		}

		/*
		 * The writer stamps, then unmarks (both full barriers): having seen
		 * the unmark, read the stamp after it.
		 */
		pg_read_barrier();
	}
	return pg_atomic_read_u64(&slot->stamp) >= (uint64) build;
}

/*
 * May this entry be served to this backend?  Not if a tag (or the
 * database wildcard) was invalidated at or after its build point, is being
 * invalidated right now, or is pending in this transaction.  Called under
 * the entry's partition lock; only atomics and backend-local memory.
 */
bool
qc_entry_fresh(const QcEntry *e)
{
	const uint32 *hashes = QcEntryTagHashes(e);
	int			i;

	if (qc_slot_stale(qc_slot_of(e->dbid, 0), QcEntryBuild(e), true))
		return false;
	if ((e->flags & QC_ENTRY_STANDBY) &&
		qc_slot_stale(qc_standby_slot(), QcEntryBuild(e), false))
		return false;
	if (pending_count > 0 &&
		qc_pending_contains(qc_pending_key(e->dbid, 0)))
		return false;
	for (i = 0; i < e->ntags; i++)
	{
		if (qc_slot_stale(qc_slot_of(e->dbid, hashes[i]), QcEntryBuild(e), true))
			return false;
		if (pending_count > 0 &&
			qc_pending_contains(qc_pending_key(e->dbid, hashes[i])))
			return false;
	}
	return true;
}

/*
 * May a value read from Redis, built at `build` with these tags, be served
 * here?  The test of qc_entry_fresh, which this node's invalidation points
 * and this transaction's pending tags answer even when Redis has not heard
 * of them yet.
 */
bool
qc_l2_value_fresh(Oid dbid, const QcTags *tags, TimestampTz build)
{
	int			i;

	if (qc_slot_stale(qc_slot_of(dbid, 0), build, true))
		return false;
	if (pending_count > 0 && qc_pending_contains(qc_pending_key(dbid, 0)))
		return false;
	for (i = 0; i < tags->ntags; i++)
	{
		uint32		h = qc_hash_tag(tags->tag[i], tags->len[i]);

		if (qc_slot_stale(qc_slot_of(dbid, h), build, true))
			return false;
		if (pending_count > 0 && qc_pending_contains(qc_pending_key(dbid, h)))
			return false;
	}
	return true;
}

/*
 * Is this entry stale for good (a committed invalidation at or after its
 * build point)?  Such entries can be freed like expired ones.
 */
bool
qc_entry_dead(const QcEntry *e)
{
	const uint32 *hashes = QcEntryTagHashes(e);
	int			i;

	if (qc_slot_stale(qc_slot_of(e->dbid, 0), QcEntryBuild(e), false))
		return true;
	if ((e->flags & QC_ENTRY_STANDBY) &&
		qc_slot_stale(qc_standby_slot(), QcEntryBuild(e), false))
		return true;
	for (i = 0; i < e->ntags; i++)
		if (qc_slot_stale(qc_slot_of(e->dbid, hashes[i]), QcEntryBuild(e), false))
			return true;
	return false;
}

/*
 * Was this entry made stale for good by an invalidation stamped no later
 * than `cutoff`?  The sweeper's test (store.c): it frees only entries whose
 * invalidation is older than the calls that made them stale, so that it
 * does not race with an explicit invalidation removing (and counting) the
 * same entries.  A slot stamped again after the cutoff answers no: a later
 * pass will see it.
 */
bool
qc_entry_dead_before(const QcEntry *e, TimestampTz cutoff)
{
	const uint32 *hashes = QcEntryTagHashes(e);
	uint64		stamp;
	int			i;

	stamp = pg_atomic_read_u64(&qc_slot_of(e->dbid, 0)->stamp);
	if (stamp >= (uint64) QcEntryBuild(e) && stamp <= (uint64) cutoff)
		return true;
	for (i = 0; i < e->ntags; i++)
	{
		stamp = pg_atomic_read_u64(&qc_slot_of(e->dbid, hashes[i])->stamp);
		if (stamp >= (uint64) QcEntryBuild(e) && stamp <= (uint64) cutoff)
			return true;
	}
	return false;
}

/*
 * May a value built at `build` with these tags be stored now?  Not by a
 * transaction with pending invalidations or an imported snapshot, and not
 * if one of its tags (or the wildcard) is in flight or stamped at or after
 * `build`.
 */
bool
qc_set_allowed(Oid dbid, const QcTags *tags, TimestampTz build)
{
	int			i;

	if (pending_count > 0 || snapshot_imported)
		return false;
	if (qc_slot_stale(qc_slot_of(dbid, 0), build, true))
		return false;
	for (i = 0; i < tags->ntags; i++)
		if (qc_slot_stale(qc_slot_of(dbid, qc_hash_tag(tags->tag[i], tags->len[i])),
						  build, true))
			return false;
	return true;
}

/*
 * Does this transaction store nothing because it is a writer (pending
 * invalidations) or imported its snapshot?  Tells a refused set's reason
 * (qc_set_allowed said no) apart from a stale build point.
 */
bool
qc_inval_is_writer(void)
{
	return pending_count > 0 || snapshot_imported;
}

/* ---------- tag templates and the trigger ---------- */

/*
 * A parsed template: literal pieces and column references, alternating.
 * Template syntax: text, with {column} replaced by the column's value
 * (unquoted names fold to lower case as in SQL, "Quoted" ones do not, and
 * "" inside quotes is a quote); {{ and }} are literal braces.
 */
typedef struct QcTemplatePart
{
	char	   *literal;		/* or NULL for a column */
	AttrNumber	attnum;			/* column, when literal is NULL */
} QcTemplatePart;

typedef struct QcTemplate
{
	int			nparts;
	QcTemplatePart *parts;
	bool		has_columns;
} QcTemplate;

static void qc_template_error(const char *tmpl, const char *why) pg_attribute_noreturn();

/* Raise the error for a malformed template. */
static void
qc_template_error(const char *tmpl, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid qcache tag template \"%s\"", tmpl),
			 errdetail("%s", why),
			 errhint("Write columns as {column} or {\"Column\"}, and literal braces as {{ and }}.")));
}

/*
 * Parse a template against a relation's columns.  Unknown or system
 * columns are errors that name the relation.
 */
static void
qc_parse_template(const char *tmpl, Relation rel, QcTemplate *out)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	StringInfoData lit;
	const char *p = tmpl;

	/* every part takes at least one character of the template */
	out->nparts = 0;
	out->has_columns = false;
	out->parts = palloc(sizeof(QcTemplatePart) * (strlen(tmpl) + 1));
	initStringInfo(&lit);

	for (;;)
	{
		char	   *colname = NULL;

		if (*p == '\0' || (*p == '{' && p[1] != '{'))
		{
			/* end of a literal piece */
			if (lit.len > 0)
			{
				out->parts[out->nparts].literal = pstrdup(lit.data);
				out->parts[out->nparts++].attnum = 0;
				resetStringInfo(&lit);
			}
			if (*p == '\0')
				break;
		}
		else if (*p == '{')		/* {{ */
		{
			appendStringInfoChar(&lit, '{');
			p += 2;
			continue;
		}
		else if (*p == '}')
		{
			if (p[1] != '}')
				qc_template_error(tmpl, "A \"}\" closes no column.");
			appendStringInfoChar(&lit, '}');
			p += 2;
			continue;
		}
		else
		{
			appendStringInfoChar(&lit, *p++);
			continue;
		}

		/* a column reference: p points at '{' */
		p++;
		if (*p == '"')
		{
			StringInfoData name;

			initStringInfo(&name);
			p++;
			for (;;)
			{
				if (*p == '\0')
					qc_template_error(tmpl, "A quoted column name is not closed.");
				if (*p == '"')
				{
					if (p[1] == '"')
					{
						appendStringInfoChar(&name, '"');
						p += 2;
						continue;
					}
					p++;
					break;
				}
				appendStringInfoChar(&name, *p++);
			}
			colname = name.data;
		}
		else
		{
			const char *start = p;

			while (*p != '\0' && *p != '}')
				p++;
			colname = downcase_identifier(start, p - start, false, false);
		}
		if (*p != '}')
			qc_template_error(tmpl, "A \"{\" is not closed by \"}\".");
		p++;
		if (colname[0] == '\0')
			qc_template_error(tmpl, "A column name is empty.");

		{
			int			attnum = SPI_fnumber(tupdesc, colname);

			if (attnum == SPI_ERROR_NOATTRIBUTE || attnum <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation \"%s\" does not exist",
								colname, RelationGetRelationName(rel)),
						 errdetail("The qcache tag template \"%s\" refers to it.", tmpl)));
			out->parts[out->nparts].literal = NULL;
			out->parts[out->nparts++].attnum = (AttrNumber) attnum;
			out->has_columns = true;
		}
	}
}

/* Expand a template for one row; NULL values expand to the empty string. */
static char *
qc_expand_template(const QcTemplate *t, HeapTuple tuple, TupleDesc tupdesc)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < t->nparts; i++)
	{
		if (t->parts[i].literal)
			appendStringInfoString(&buf, t->parts[i].literal);
		else
		{
			char	   *v = SPI_getvalue(tuple, tupdesc, t->parts[i].attnum);

			if (v)
				appendStringInfoString(&buf, v);
		}
	}
	return buf.data;
}

/* The tag of a table: table:<schema>.<name>, as qcache_fetch writes it. */
char *
qc_table_tag(Oid relid)
{
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));
	char	   *rel = get_rel_name(relid);

	if (nsp == NULL || rel == NULL)
		return NULL;
	return psprintf("table:%s.%s", nsp, rel);
}

/* ---------- node-internal tags: relations, functions, names ---------- */

/*
 * A relation's OID tag, "\001rel:<relid>" (palloc'd).  Tags that start with
 * byte 0x01 are node-internal: qcache_entries does not show them, they are
 * not sent to Redis (OIDs mean nothing on another node), and users cannot
 * give them (qc_tags_from_array).  A rename or a schema move keeps the OID,
 * so an entry tagged by OID stays attached to its relation.
 */
char *
qc_rel_oid_tag(Oid relid)
{
	return psprintf("\001rel:%u", relid);
}

/* A function's OID tag, "\001fn:<funcid>" (palloc'd). */
char *
qc_func_oid_tag(Oid funcid)
{
	return psprintf("\001fn:%u", funcid);
}

/*
 * The names tag: stamped by every DDL that can change what a name resolves
 * to (CREATE of a relation, function, type, operator or schema, RENAME,
 * SET SCHEMA); every qcache_fetch entry carries it.
 */
const char *
qc_names_tag(void)
{
	return "\001names";
}

/* Is this tag node-internal (starts with byte 0x01)? */
bool
qc_tag_is_internal(const char *tag, uint32 len)
{
	return len > 0 && tag[0] == QC_INTERNAL_TAG_BYTE;
}

/*
 * Invalidate a node-internal tag at commit, in the current database.  Only
 * this node's slots: internal tags never go to Redis.  A no-op outside a
 * database (MyDatabaseId unset) or without qcache's shared memory.
 */
static void qc_inval_tag_string_at_commit(const char *tag);

static void
qc_inval_internal_at_commit(const char *tag)
{
	if (qc_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	qc_inval_tag_at_commit(MyDatabaseId, qc_hash_tag(tag, strlen(tag)));
}

/* Invalidate a relation's OID tag at commit. */
void
qc_inval_rel_at_commit(Oid relid)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "\001rel:%u", relid);
	qc_inval_internal_at_commit(buf);
}

/*
 * Invalidate a relation's name tag (table:<schema>.<name>) at commit, as
 * the triggers do: with a Redis level it reaches the other nodes, which
 * know no OIDs.  For DDL (ddl.c).
 */
void
qc_inval_table_name_at_commit(Oid relid)
{
	char	   *tag;

	if (qc_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	tag = qc_table_tag(relid);
	if (tag != NULL)
		qc_inval_tag_string_at_commit(tag);
}

/*
 * Invalidate a function's OID tag at commit; with a Redis level, there too
 * (qc_tag_l2_stamped: qcache_fetch results in Redis carry it).
 */
void
qc_inval_func_at_commit(Oid funcid)
{
	char		buf[32];

	if (qc_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	snprintf(buf, sizeof(buf), "\001fn:%u", funcid);
	qc_inval_tag_string_at_commit(buf);
}

/* Invalidate the names tag at commit, in Redis too (as functions'). */
void
qc_inval_names_at_commit(void)
{
	if (qc_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	qc_inval_tag_string_at_commit(qc_names_tag());
}

/*
 * The names tag's invalidation point in the current database, for
 * fetch.c's saved plans: PostgreSQL's plan cache does not notice a new
 * object that would shadow a name the plan resolved, so a plan made before
 * the names tag's last stamp is made again.  *unsettled is set while the
 * names tag is in flight or pending in this transaction (a plan made now
 * may not be kept).  Atomics and backend-local memory only.
 */
TimestampTz
qc_names_stamp(bool *unsettled)
{
	const char *tag = qc_names_tag();
	uint32		h = qc_hash_tag(tag, strlen(tag));
	QcTagSlot  *slot = qc_slot_of(MyDatabaseId, h);

	*unsettled = pg_atomic_read_u32(&slot->inflight) > 0 ||
		(pending_count > 0 &&
		 qc_pending_contains(qc_pending_key(MyDatabaseId, h)));
	pg_read_barrier();
	return (TimestampTz) pg_atomic_read_u64(&slot->stamp);
}

/*
 * A relation's ancestors by inheritance or partitioning, all levels up
 * (pg_inherits; several parents per level with multiple inheritance), each
 * once, without the relation itself.  The caller must not need them locked.
 */
List *
qc_rel_ancestors(Oid relid)
{
	List	   *result = NIL;
	List	   *todo = list_make1_oid(relid);

	while (todo != NIL)
	{
		Oid			child = linitial_oid(todo);
		Relation	inh;
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		todo = list_delete_first(todo);
		if (!has_superclass(child))
			continue;
		inh = table_open(InheritsRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(child));
		scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true,
								  NULL, 1, &key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Oid			parent = ((Form_pg_inherits) GETSTRUCT(tup))->inhparent;

			if (parent != relid && !list_member_oid(result, parent))
			{
				result = lappend_oid(result, parent);
				todo = lappend_oid(todo, parent);
			}
		}
		systable_endscan(scan);
		table_close(inh, AccessShareLock);
	}
	return result;
}

/*
 * Invalidate, at commit, the OID tags of a relation's inheritance children
 * and partitions, all levels down (not the relation's own).  For
 * statement-level firings on a parent, where the children's row triggers
 * may not fire.  Cheap when the relation has none (relhassubclass).
 */
void
qc_inval_descendants_at_commit(Oid relid)
{
	List	   *all;
	ListCell   *lc;

	if (!has_subclass(relid))
		return;
	all = find_all_inheritors(relid, NoLock, NULL);
	foreach(lc, all)
	{
		if (lfirst_oid(lc) != relid)
			qc_inval_rel_at_commit(lfirst_oid(lc));
	}
	list_free(all);
}

/*
 * Invalidate a tag string at commit.  With a Redis level, also remember
 * the string itself (once), for the stamps in Redis and the message to the
 * other nodes (qc_l2_commit); node-internal tags stay on this node.
 */
static void
qc_inval_tag_string_at_commit(const char *tag)
{
	size_t		len = strlen(tag);

	qc_inval_tag_at_commit(MyDatabaseId, qc_hash_tag(tag, len));
	if (!qc_l2_active() ||
		(qc_tag_is_internal(tag, len) && !qc_tag_l2_stamped(tag)))
		return;
	if (l2_db == NULL)
		l2_db = qc_l2_dbname();
	/* bounded: past the limit, Redis gets the database's stamp instead */
	if (l2_overflow || l2_ntags >= QC_L2_MAX_COMMIT_TAGS)
	{
		l2_overflow = true;
		return;
	}
	if (l2_seen == NULL)
	{
		HASHCTL		ctl;
		MemoryContext old;

		ctl.keysize = QC_MAX_TAG_LEN + 1;
		ctl.entrysize = QC_MAX_TAG_LEN + 1;
		ctl.hcxt = TopMemoryContext;
		l2_seen = hash_create("qcache pending tags", 256, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		old = MemoryContextSwitchTo(TopMemoryContext);
		l2_tags = makeStringInfo();
		MemoryContextSwitchTo(old);
	}
	if (len <= QC_MAX_TAG_LEN)
	{
		bool		found;

		(void) hash_search(l2_seen, tag, HASH_ENTER, &found);
		if (found)
			return;
	}
	appendBinaryStringInfo(l2_tags, tag, len + 1);
	l2_ntags++;
}

/* Parsed templates of one trigger and its table's tags, cached in fn_extra. */
typedef struct QcTriggerCache
{
	Oid			tgoid;
	Oid			relid;
	char	   *table_tag;		/* table:<schema>.<name>, or NULL */
	int			ntemplates;
	QcTemplate *templates;
} QcTriggerCache;

/*
 * The family of a template: its literal text up to and including its first
 * ':', as a node-internal tag ("\001fam:item:" for 'item:{id}'), or NULL
 * when a column comes before any ':' (no family: the wildcard stands in).
 * Every tag the template expands to starts with that literal text, so its
 * own family (qc_tag_family) is the same.
 */
static char *
qc_template_family(const QcTemplate *t)
{
	const char *colon;

	if (t->nparts == 0 || t->parts[0].literal == NULL)
		return NULL;
	colon = strchr(t->parts[0].literal, ':');
	if (colon == NULL)
		return NULL;
	return psprintf("%cfam:%.*s", QC_INTERNAL_TAG_BYTE,
					(int) (colon - t->parts[0].literal + 1),
					t->parts[0].literal);
}

/*
 * The family of a tag: "\001fam:" and the tag up to and including its first
 * ':' (palloc'd), or NULL for a tag without ':' or a node-internal one.  A
 * TRUNCATE, which cannot see the rows it removes, invalidates the families
 * of its table's column templates; every entry carries the families of its
 * tags (qc_tags_with_families), so it is reached.
 */
static char *
qc_tag_family(const char *tag, uint32 len)
{
	const char *colon;

	if (qc_tag_is_internal(tag, len))
		return NULL;
	colon = memchr(tag, ':', len);
	if (colon == NULL)
		return NULL;
	return psprintf("%cfam:%.*s", QC_INTERNAL_TAG_BYTE,
					(int) (colon - tag + 1), tag);
}

/*
 * The tags an entry is stored with: the given ones, then the families of
 * those that have one, each once (see qc_tag_family).  Returns false if
 * that makes more than QC_MAX_ENTRY_TAGS tags: such a value is not cached.
 */
bool
qc_tags_with_families(const QcTags *in, QcTags *out)
{
	int			i;
	int			j;

	out->ntags = in->ntags;
	out->tag = palloc(sizeof(char *) * in->ntags * 2 + 1);
	out->len = palloc(sizeof(uint32) * in->ntags * 2 + 1);
	for (i = 0; i < in->ntags; i++)
	{
		out->tag[i] = in->tag[i];
		out->len[i] = in->len[i];
	}
	for (i = 0; i < in->ntags; i++)
	{
		char	   *fam = qc_tag_family(in->tag[i], in->len[i]);
		uint32		flen;

		if (fam == NULL)
			continue;
		flen = strlen(fam);
		for (j = in->ntags; j < out->ntags; j++)
			if (out->len[j] == flen && memcmp(out->tag[j], fam, flen) == 0)
				break;
		if (j < out->ntags)
			continue;
		out->tag[out->ntags] = fam;
		out->len[out->ntags++] = flen;
	}
	return out->ntags <= QC_MAX_ENTRY_TAGS;
}

/*
 * The tags of an entry that other nodes may see (Redis): the given ones
 * without the node-internal ones.  Returns `in` itself when it has none.
 */
const QcTags *
qc_tags_public(const QcTags *in, QcTags *buf)
{
	int			i;

	for (i = 0; i < in->ntags; i++)
		if (qc_tag_is_internal(in->tag[i], in->len[i]))
			break;
	if (i == in->ntags)
		return in;
	buf->ntags = 0;
	buf->tag = palloc(sizeof(char *) * in->ntags);
	buf->len = palloc(sizeof(uint32) * in->ntags);
	for (i = 0; i < in->ntags; i++)
	{
		if (qc_tag_is_internal(in->tag[i], in->len[i]))
			continue;
		buf->tag[buf->ntags] = in->tag[i];
		buf->len[buf->ntags++] = in->len[i];
	}
	return buf;
}

/*
 * qcache_invalidate_trigger(template, ...): a row or statement trigger for
 * INSERT, UPDATE, DELETE and TRUNCATE that invalidates the expanded tags
 * when the transaction commits.  No arguments: the table's own tags, its
 * name tag (table:<schema>.<name>, for users) and its OID tag (for
 * qcache_fetch entries, which a rename does not detach), and fired per
 * statement, the OID tags of its children and partitions, whose own row
 * triggers a write through the parent may not fire.  TRUNCATE also
 * invalidates the table's own tags, and for each template with columns,
 * the template's family (or without one, the database's wildcard).
 */
Datum
qcache_invalidate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	Trigger    *tg;
	Relation	rel;
	QcTriggerCache *cache;
	bool		row;
	bool		truncate;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("qcache_invalidate_trigger: not called by trigger manager")));
	td = (TriggerData *) fcinfo->context;
	tg = td->tg_trigger;
	rel = td->tg_relation;
	row = TRIGGER_FIRED_FOR_ROW(td->tg_event);
	truncate = TRIGGER_FIRED_BY_TRUNCATE(td->tg_event);

	/*
	 * Not preloaded: this server caches nothing, so no entry can be stale,
	 * and the write goes on (a dump restored onto a server without the
	 * preload keeps its writes working).  The other functions still refuse.
	 */
	if (unlikely(qc_shared == NULL))
	{
		if (row && TRIGGER_FIRED_BEFORE(td->tg_event))
			return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ?
								   td->tg_newtuple : td->tg_trigtuple);
		return PointerGetDatum(NULL);
	}
	qc_require_loaded();

	cache = (QcTriggerCache *) fcinfo->flinfo->fn_extra;
	if (cache == NULL || cache->tgoid != tg->tgoid ||
		cache->relid != RelationGetRelid(rel))
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		cache = palloc(sizeof(QcTriggerCache));
		cache->tgoid = tg->tgoid;
		cache->relid = RelationGetRelid(rel);
		cache->table_tag = qc_table_tag(cache->relid);
		cache->ntemplates = tg->tgnargs;
		cache->templates = palloc(sizeof(QcTemplate) * Max(tg->tgnargs, 1));
		for (i = 0; i < tg->tgnargs; i++)
			qc_parse_template(tg->tgargs[i], rel, &cache->templates[i]);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = cache;
	}

	if (tg->tgnargs == 0 || truncate)
	{
		if (cache->table_tag)
			qc_inval_tag_string_at_commit(cache->table_tag);
		qc_inval_rel_at_commit(cache->relid);
		if (!row)
			qc_inval_descendants_at_commit(cache->relid);
	}

	for (i = 0; i < cache->ntemplates; i++)
	{
		QcTemplate *t = &cache->templates[i];

		if (!t->has_columns)
			qc_inval_tag_string_at_commit(qc_expand_template(t, NULL, NULL));
		else if (row)
		{
			TupleDesc	desc = RelationGetDescr(rel);

			/* INSERT: NEW; DELETE: OLD; UPDATE: OLD and NEW */
			qc_inval_tag_string_at_commit(qc_expand_template(t, td->tg_trigtuple, desc));
			if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
				qc_inval_tag_string_at_commit(qc_expand_template(t, td->tg_newtuple, desc));
		}
		else if (truncate)
		{
			/*
			 * The rows are gone unseen: every value the template could have
			 * expanded to, which is its family.  Without a family, or with a
			 * Redis level (families are node-internal, and other nodes must
			 * drop their entries too), the database's wildcard.
			 */
			char	   *fam = qc_template_family(t);

			if (fam != NULL && !qc_l2_active())
				qc_inval_internal_at_commit(fam);
			else
			{
				qc_inval_tag_at_commit(MyDatabaseId, 0);
				if (qc_l2_active() && l2_db == NULL)
					l2_db = qc_l2_dbname();
			}
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
					 errmsg("qcache tag template \"%s\" needs a row-level trigger",
							tg->tgargs[i]),
					 errdetail("A statement-level trigger can expand only templates without columns, except on TRUNCATE."),
					 errhint("Create the trigger FOR EACH ROW, or use qcache_watch.")));
	}

	if (row && TRIGGER_FIRED_BEFORE(td->tg_event))
		return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ?
							   td->tg_newtuple : td->tg_trigtuple);
	return PointerGetDatum(NULL);
}

/*
 * qcache_check_templates(tbl regclass, templates text[]) returns boolean:
 * raise the error a template would raise when the trigger fires; return
 * whether any template refers to columns.  For qcache_watch.
 */
Datum
qcache_check_templates(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	bool		any = false;
	Relation	rel;

	/*
	 * Only for roles that may create the triggers: otherwise the errors
	 * below would tell whether a column exists in a table the caller may
	 * not read.
	 */
	if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						get_rel_name(relid)),
				 errhint("qcache_watch needs the TRIGGER privilege on the table.")));
	qc_check_watchable(relid);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	rel = relation_open(relid, AccessShareLock);
	for (i = 0; i < n; i++)
	{
		QcTemplate	t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("qcache tag template must not be null")));
		qc_parse_template(TextDatumGetCString(elems[i]), rel, &t);
		any |= t.has_columns;
	}
	relation_close(rel, AccessShareLock);
	PG_RETURN_BOOL(any);
}
