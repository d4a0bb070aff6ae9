/*-------------------------------------------------------------------------
 *
 * qcache.h
 *		Types and entry points shared by the files of the qcache extension.
 *
 * The extension is split by concern: qcache.c holds _PG_init and the GUCs,
 * shmem.c sizes, creates and attaches the shared memory, store.c is the
 * shared hash of entries (no fmgr, no SQL), stats.c the counters, sqlfuncs.c
 * the SQL-callable functions, fetch.c the read-through qcache_fetch,
 * nsstats.c the per-namespace counters, worker.c the sweeper background
 * worker, invalidate.c the invalidation protocol and walinval.c its
 * carriage in the WAL for hot standbys.  This header is the contract
 * between them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef QCACHE_H
#define QCACHE_H

#include "catalog/objectaccess.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/dsa.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* Number of index partitions, each with its own LWLock.  A power of 2. */
#define QC_NUM_PARTITIONS		128

/* Invalidation points (invalidate.c): a power of 2. */
#define QC_TAG_SLOTS			16384

/* Single-flight slots (flight.c). */
#define QC_FLIGHT_SLOTS			256

/* Limits on what one entry may carry; errors past them name the limit. */
#define QC_MAX_KEY_LEN			8192	/* bytes */
#define QC_MAX_TAGS				64
#define QC_MAX_TAG_LEN			512 /* bytes */

/*
 * Largest qcache.memory: the index names entries by their offset in the
 * area / 8 in 32 bits (store.c).
 */
#define QC_MAX_MEMORY			(UINT64CONST(32) * 1024 * 1024 * 1024)

/* Counters of the entries per (database, tag) or (database, namespace)
 * (store.c): a power of 2. */
#define QC_PRESENCE_SLOTS		16384

/* Per-partition counters of entries by database hash (store.c). */
#define QC_DB_SLOTS				8

/*
 * Tags one entry holds at most, the node-internal ones (relations,
 * functions, names, families; invalidate.c) included; QcEntry.ntags is a
 * uint8.
 */
#define QC_MAX_ENTRY_TAGS		255

/* Interval between two sweeps of the background worker, in milliseconds. */
#define QC_SWEEP_INTERVAL_MS	1000

/* The least interval between two sweeps for invalidated entries (store.c). */
#define QC_DEAD_SWEEP_INTERVAL_MS	10000

/* ---------- GUCs (qcache.c) ---------- */
extern int	qc_memory_kb;
extern int	qc_max_entries;
extern int	qc_default_ttl;
extern int	qc_max_entry_size;
extern bool qc_enabled;
extern int	qc_fetch_wait_timeout;
extern int	qc_ttl_jitter;

/* ---------- counters (stats.c) ---------- */

/*
 * Cumulative counters.  Each backend counts into its own slot (indexed by
 * pgprocno), so the hot path never writes a cache line that another backend
 * writes; readers sum the slots.  The gauges (entries, bytes) live in
 * QcShared instead.
 */
typedef enum QcCounter
{
	QC_STAT_HITS,
	QC_STAT_MISSES,
	QC_STAT_L2_HITS,
	QC_STAT_L2_MISSES,
	QC_STAT_L2_ERRORS,
	QC_STAT_SETS,
	QC_STAT_SETS_REJECTED,
	QC_STAT_EVICTIONS_EXPIRED,
	QC_STAT_EVICTIONS_MEMORY,
	QC_STAT_INVALIDATIONS,
	QC_STAT_FETCH_WAITS,
	/* why a set stored nothing (issue 14): see qc_refuse() in sqlfuncs.c */
	QC_STAT_REFUSED_TOO_LARGE,
	QC_STAT_REFUSED_NO_MEMORY,
	QC_STAT_REFUSED_WRITER,
	QC_STAT_REFUSED_STALE,
	QC_STAT_REFUSED_TOO_OLD,
	QC_STAT_REFUSED_REDIS,
	QC_STAT_REFUSED_STANDBY,
	QC_STAT_REFUSED_UNCACHEABLE,
	QC_STAT_REFUSED_DISABLED,
	QC_NUM_COUNTERS
} QcCounter;

typedef struct QcStatSlot
{
	pg_atomic_uint64 c[QC_NUM_COUNTERS];
} QcStatSlot;

/* ---------- shared state (shmem.c) ---------- */

/*
 * An index partition: the LWLock that guards a slice of the bucket array
 * (and the partition's expiry wheel, store.c), the partition's logical
 * clock, which orders its entries for eviction, how far the sweeper has
 * swept its wheel, the eviction and sweep cursors, and the
 * number of its entries per database hash, which lets a clear skip it.
 * All are written under the lock in exclusive mode (dbcount is also read
 * without it, store.c).  Padded to cache lines so that two partitions
 * never share one.
 */
typedef struct QcPartitionData
{
	LWLock		lock;
	uint32		clock;
	uint32		evict_cursor;	/* next bucket (within the partition) the
								 * eviction hand looks at */
	uint64		wheel_done;		/* the expiry wheel's slots are swept up to
								 * this second since QcShared.started
								 * (store.c) */
	uint32		sweep_cursor;	/* next bucket of a pass for dead entries */
	bool		sweep_dead;		/* such a pass is under way; it frees the
								 * entries... */
	TimestampTz sweep_dead_cutoff;	/* ...made stale by stamps up to this */
	uint32		dbcount[QC_DB_SLOTS];	/* entries of the partition per
										 * database hash (store.c) */
} QcPartitionData;

typedef union QcPartition
{
	QcPartitionData d;
	char		pad[2 * PG_CACHE_LINE_SIZE];
} QcPartition;

/*
 * The one fixed shared structure.  Locking:
 *
 * - buckets[b] and the chain hanging off it are protected by the lock of
 *   the partition that owns bucket b (store.c): shared to walk a chain and
 *   read entries, exclusive to link or unlink.  No code holds two
 *   partition locks at once.
 * - The tag and namespace index heads (idxheads) are split into the same
 *   number of ranges as the buckets, each protected by one of idxlocks;
 *   so is every entry link (QcLink) in a chain hanging off those heads.
 *   Lock order: a partition lock, then one index lock; never a partition
 *   lock while holding an index lock, never two index locks (store.c).
 * - Each partition's expiry wheel heads (wheel_off) and the wheel links
 *   of its entries are protected by the partition's lock, like its
 *   buckets; wheel_done too.
 * - The stale-tag queue (stale_off) is protected by its own spinlock, held
 *   for a few instructions and with no other lock taken under it.
 * - The presence counters (presence_off) are atomics, changed under the
 *   partition lock of the entry linked or unlinked, read without a lock.
 * - The DSA area has its own internal locks; we never call dsa_allocate or
 *   dsa_free while holding a partition lock, so they order after nothing.
 * - nentries, bytes_used, evict_hand, last_trim and the stats slots are
 *   atomics and need no lock.  reset_base is guarded by stats_lock (a
 *   spinlock held for a copy of a few counters only).
 * - Everything else is set once by the postmaster and then only read.
 */
typedef struct QcShared
{
	int			dsa_tranche;	/* LWLock tranche of the DSA area */
	uint32		nbuckets;		/* power of 2, multiple of QC_NUM_PARTITIONS */
	uint32		max_entries;	/* copy of qcache.max_entries at start */
	Size		dsa_size;		/* bytes of the in-place DSA area */
	Size		bytes_limit;	/* qcache.memory in bytes */
	Size		index_bytes;	/* fixed part charged to bytes_used */
	TimestampTz started;		/* when this shared memory was created */

	pg_atomic_uint32 nentries;	/* entries in the hash, killed ones included */
	pg_atomic_uint32 nkilled;	/* entries killed (QC_HITS_KILLED) and not yet
								 * freed: qcache_stats shows nentries - nkilled */
	pg_atomic_uint64 bytes_used;	/* index + allocated bytes of live (not
								 * killed) entries */
	pg_atomic_uint32 evict_hand;	/* next partition to evict from */
	pg_atomic_uint64 last_trim; /* when an allocation last called dsa_trim
								 * (store.c) */
	pg_atomic_uint64 stamp_generation;	/* bumped by every invalidation stamp
										 * (invalidate.c) */

	/*
	 * The Redis level (redis.c, redis_worker.c), atomics: node_id is set
	 * once; l2_up is the circuit breaker (1: backends may call Redis; any
	 * backend opens it, only the worker closes it); l2_dirty says this node
	 * may owe Redis something (the debt itself is in redis_debt.c); l2_warned
	 * is the time of the last warning about Redis.
	 */
	uint64		node_id;
	uint8		digest_key[16]; /* secret SipHash key of fetch digests
								 * (security.c), random at creation */
	pg_atomic_uint32 l2_up;
	pg_atomic_uint32 l2_dirty;
	pg_atomic_uint64 l2_warned;
	pg_atomic_uint64 l2_removals;	/* bumped by the worker before each
									 * removal another node asked for */
	pg_atomic_uint32 db_names_generation;	/* bumped when a database is
											 * created, dropped or altered */

	int			nslots;			/* number of stat slots */
	slock_t		stats_lock;		/* protects reset_base, stats_reset */
	uint64		reset_base[QC_NUM_COUNTERS];
	TimestampTz stats_reset;

	QcPartition partitions[QC_NUM_PARTITIONS];
	LWLockPadded idxlocks[QC_NUM_PARTITIONS];	/* index locks (store.c) */

	/* Variable-size tail, each part MAXALIGNed, offsets from this struct. */
	Size		slots_off;		/* QcStatSlot[nslots] */
	Size		buckets_off;	/* dsa_pointer[nbuckets] */
	Size		idxheads_off;	/* uint32[nbuckets]: tag and namespace index
								 * heads (store.c) */
	Size		presence_off;	/* pg_atomic_uint32[QC_PRESENCE_SLOTS] */
	Size		tagslots_off;	/* invalidation points, invalidate.c */
	Size		flights_off;	/* single-flight slots, flight.c */
	Size		ns_off;			/* per-namespace counters, nsstats.c */
	Size		wheel_off;		/* uint32[QC_NUM_PARTITIONS][QC_WHEEL_HEADS]:
								 * expiry wheels (store.c) */
	Size		stale_off;		/* QcStaleQueue: tags stamped at commit,
								 * for the sweeper (store.c) */
	Size		dsa_off;		/* the DSA area, dsa_size bytes */
} QcShared;

extern QcShared *qc_shared;
extern dsa_area *qc_dsa;
extern uint32 *qc_buckets;		/* QcRef of each bucket's first entry */
extern uint32 *qc_idxheads;
extern pg_atomic_uint32 *qc_presence;
extern uint32 *qc_wheel;

/*
 * The expiry wheel of each partition (store.c): QC_WHEEL_LEVELS levels of
 * QC_WHEEL_SLOTS list heads, level L's slots QC_WHEEL_SLOTS apart by
 * 8^L seconds.
 */
#define QC_WHEEL_SLOTS			32
#define QC_WHEEL_LEVELS			5
#define QC_WHEEL_HEADS			(QC_WHEEL_SLOTS * QC_WHEEL_LEVELS)

/*
 * Tags stamped by commits, waiting for the sweeper (store.c): a ring of
 * (database, tag hash) keys, deduplicated by a direct-mapped filter of the
 * keys in it, under a spinlock.
 */
#define QC_STALE_RING			1024
#define QC_STALE_FILTER			2048

/*
 * Index chains in which an explicit invalidation killed entries, waiting
 * for the sweeper to free them (store.c, qc_kill_indexed): a ring of head
 * numbers, deduplicated the same way, under the same spinlock.  When it is
 * full, the invalidation frees its entries itself.
 */
#define QC_KILL_RING			1024
#define QC_KILL_FILTER			2048

typedef struct QcStaleQueue
{
	slock_t		lock;
	uint32		n;				/* keys in ring[] */
	bool		overflow;		/* a key did not fit: sweep everything */
	uint32		kn;				/* head numbers in kring[] */
	uint64		ring[QC_STALE_RING];
	uint64		filter[QC_STALE_FILTER];	/* a key in ring[] or 0 */
	uint32		kring[QC_KILL_RING];
	uint32		kfilter[QC_KILL_FILTER];	/* 1 + a head number in kring[],
											 * or 0 */
} QcStaleQueue;

extern Size qc_shmem_size(void);
extern void qc_shmem_request(void);
extern void qc_shmem_startup(void);
extern void qc_attach(void);
extern void qc_require_loaded(void);

/* ---------- entries (store.c) ---------- */

/*
 * One cache entry: a single DSA chunk laid out as
 *
 *		QcEntry | QcRef tail (if split) | QcLink links[QcEntryNLinks] |
 *		QcLink wheel (if timed) | uint32 taghash[ntags] |
 *		deps[depbytes] | key | tag strings | value
 *
 * links[i] (i < ntags) chains the entry into the index of its tag i, and
 * links[ntags], present when the flag QC_ENTRY_NAMESPACE is set, into the
 * index of its key's namespace (store.c); they are protected by the
 * entry's partition lock, exclusive to change, like the bucket chain.
 * wheel, present when the flag QC_ENTRY_TIMED is set (the entry has a
 * ttl), chains it into a slot of its partition's expiry wheel (store.c),
 * under the partition lock.
 * deps is a fetch result's dependency data (fetch.c's envelope around
 * deps.c's list), which a hit re-checks.
 *
 * where the value is the whole jsonb varlena and each tag string is NUL
 * terminated.  The value comes last so that, when the allocator's size
 * classes would waste much of the chunk, its end can live in a second
 * chunk (flag QC_ENTRY_SPLIT, tail: store.c, qc_split_head); the entry's
 * first chunk holds the layout's first bytes, everything but the value's
 * end.  Nothing is aligned past the header: values are copied out
 * before use.  An entry is immutable once linked, except for clock and
 * hits, which readers update atomically under a shared partition lock, and
 * its links.  links[i] (i < ntags) chains the entry into the index chain
 * of its tag i, and links[ntags], present when the flag QC_ENTRY_NAMESPACE
 * is set, into that of its key's namespace (store.c); a link is protected
 * by the index lock of its chain, and changed only while the entry's
 * partition lock is also held (or by a neighbour's link or unlink, under
 * that index lock).
 */
/*
 * A QcRef names an entry by its offset in the DSA area divided by 8, in 32
 * bits: the area is created in place with a size limit equal to its own
 * size, so it has one segment (segment 0, whose dsa_pointers are plain
 * offsets), chunks are 8-byte aligned, and qcache.memory is at most
 * QC_MAX_MEMORY (32 GB), so offsets fit 35 bits.  0 is no entry: no chunk
 * starts at offset 0, where the area's control block lives.
 */
typedef uint32 QcRef;

static inline QcRef
qc_ref(dsa_pointer dp)
{
	Assert((uint64) dp % 8 == 0 && (uint64) dp < QC_MAX_MEMORY);
	return (QcRef) ((uint64) dp >> 3);
}

static inline dsa_pointer
qc_ref_dp(QcRef r)
{
	return (dsa_pointer) ((uint64) r << 3);
}

/*
 * An entry's place in one chain of the tag and namespace index (store.c):
 * doubly linked, so that an entry leaves it in constant time.  next and
 * prev name entries (QcRef: the entry's offset in the area / 8), 0 for
 * none; the first link of a chain has prev 0 and is found from its index
 * head.
 */
typedef struct QcLink
{
	uint32		next;
	uint32		prev;
} QcLink;

typedef struct QcEntry
{
	QcRef		next;			/* next entry of the bucket chain */
	uint32		hash;			/* low 32 bits of the key hash: bucket bits */
	Oid			dbid;			/* database the key belongs to */
	Oid			owner;			/* role that stored the entry */
	uint32		vallen;			/* VARSIZE of the stored jsonb */
	uint16		keylen;
	uint16		tagbytes;		/* bytes of the tag strings */
	uint8		ntags;
	uint8		flags;			/* QC_ENTRY_* */
	uint16		depbytes;		/* bytes of a fetch result's dependency
								 * list (deps.c), which a hit re-checks */
	uint32		created_lo;		/* created: a TimestampTz in two halves, */
	int32		created_hi;		/* so that the header needs 4-byte
								 * alignment only (52 bytes, not 56) */
	uint32		ttl;			/* seconds from created to expiry; 0: never */
	uint32		build_age;		/* microseconds from the build point
								 * (invalidate.c) to created; a transaction
								 * older than that stores nothing */
	pg_atomic_uint32 clock;		/* partition clock at insert or last second
								 * chance << 1 | referenced bit */
	pg_atomic_uint32 hits;		/* reads served, up to QC_HITS_MAX, and
								 * QC_HITS_KILLED */
} QcEntry;

/*
 * The top bit of an entry's hits: the entry is killed, removed from the
 * cache as far as anyone can see (never served, listed or counted again),
 * waiting to be unlinked and freed.  Set once, with an atomic OR, by
 * whoever takes the entry out first: an explicit invalidation under its
 * index chain's lock (store.c, qc_kill_indexed) or the backend that frees
 * it (qc_free_entries); the one whose OR found it clear counts it.  Hits
 * stop growing at QC_HITS_MAX, far below the bit.
 */
#define QC_HITS_KILLED			((uint32) 0x80000000)
#define QC_HITS_MAX				((uint32) 0x3fffffff)

#define QcEntryCreated(e) \
	((TimestampTz) ((uint64) (uint32) (e)->created_hi << 32 | (e)->created_lo))
#define QcEntryExpires(e) \
	((e)->ttl == 0 ? (TimestampTz) 0 : \
	 QcEntryCreated(e) + (TimestampTz) (e)->ttl * USECS_PER_SEC)
#define QcEntryBuild(e) \
	(QcEntryCreated(e) - (TimestampTz) (e)->build_age)
#define QcEntryNLinks(e) \
	((e)->ntags + (((e)->flags & QC_ENTRY_NAMESPACE) ? 1 : 0))
#define QcEntryTailRef(e)	((QcRef *) ((char *) (e) + sizeof(QcEntry)))
#define QcEntryLinks(e) \
	((QcLink *) ((char *) (e) + sizeof(QcEntry) + \
				 (((e)->flags & QC_ENTRY_SPLIT) ? sizeof(QcRef) : 0)))
#define QcEntryNAllLinks(e) \
	(QcEntryNLinks(e) + (((e)->flags & QC_ENTRY_TIMED) ? 1 : 0))
#define QcEntryWheelLink(e)	(QcEntryLinks(e) + QcEntryNLinks(e))
#define QcEntryTagHashes(e) \
	((uint32 *) (QcEntryLinks(e) + QcEntryNAllLinks(e)))
#define QcEntryDeps(e)		((char *) (QcEntryTagHashes(e) + (e)->ntags))
#define QcEntryKey(e)		(QcEntryDeps(e) + (e)->depbytes)
#define QcEntryTags(e)		(QcEntryKey(e) + (e)->keylen)
#define QcEntryValue(e)		(QcEntryTags(e) + (e)->tagbytes)
/* the entry's bytes (its logical layout), not what the allocator takes */
#define QcEntrySize(e) \
	(sizeof(QcEntry) + (((e)->flags & QC_ENTRY_SPLIT) ? sizeof(QcRef) : 0) + \
	 sizeof(QcLink) * QcEntryNAllLinks(e) + \
	 sizeof(uint32) * (e)->ntags + \
	 (e)->depbytes + (e)->keylen + (e)->vallen + (e)->tagbytes)

/* Entry flags */
#define QC_ENTRY_ROLE_SCOPED	0x01	/* caller-dependent fetch result:
										 * under a scoped key, served to its
										 * owner only (security.c) */
#define QC_ENTRY_JSON_TEXT		0x02	/* the value is JSON text (a text
										 * varlena), not jsonb:
										 * qcache_fetch_json */
#define QC_ENTRY_FETCH			0x04	/* a qcache_fetch result, under a
										 * variant key (security.c) */
#define QC_ENTRY_NAMESPACE		0x08	/* the key has a namespace (a ':'):
										 * links[ntags] is its index link
										 * (set by store.c) */
#define QC_ENTRY_SPLIT			0x20	/* the value's end is in a second
										 * chunk, tail (store.c) */
#define QC_ENTRY_TIMED			0x10	/* the entry has a ttl: the link
										 * after the index links is its
										 * place in the expiry wheel (set by
										 * store.c) */
#define QC_ENTRY_STANDBY		0x40	/* computed on a hot standby, with
										 * tags or as a fetch result: dies
										 * when the standby stops hearing
										 * invalidations (walinval.c) */

/* Bytes the DSA allocator really takes for a request (dsa_classes.h). */
extern Size qc_alloc_size(Size size);

/* A key as callers pass it: the database is part of it. */
typedef struct QcKey
{
	Oid			dbid;
	const char *data;
	uint32		len;
	uint64		hash;			/* qc_hash_key() */
} QcKey;

/* Tags as callers pass them. */
typedef struct QcTags
{
	int			ntags;
	const char **tag;			/* NUL-terminated */
	uint32	   *len;
} QcTags;

/* What a lookup hands back: palloc'd copies. */
typedef struct QcValue
{
	void	   *value;			/* palloc'd jsonb varlena */
	TimestampTz expires;
	Oid			owner;
	uint8		flags;
	uint32		depbytes;
	char	   *deps;			/* palloc'd, or NULL */
} QcValue;

/* What a store hands in besides key, value and tags. */
typedef struct QcSetInfo
{
	TimestampTz now;
	TimestampTz expires;		/* 0: never */
	TimestampTz build;			/* build point */
	Oid			owner;
	uint8		flags;
	uint32		depbytes;
	const char *deps;			/* a fetch result's dependency list */
	bool		from_l2;		/* a copy of a Redis value: not written back */
	/* a qcache_fetch result that may go to Redis (fetch.c); else NULL */
	const QcKey *l2_key;		/* its name in Redis */
	const QcTags *l2_tags;		/* the tags Redis checks */
	const char *l2_x;			/* the metadata's x field */
} QcSetInfo;

/* Result of qc_store_set(). */
typedef enum QcSetResult
{
	QC_SET_STORED,
	QC_SET_TOO_LARGE,			/* over qcache.max_entry_size */
	QC_SET_NO_MEMORY,			/* could not be stored even after eviction */
	QC_SET_TOO_OLD				/* built more than 2^32 us (71 min) ago */
} QcSetResult;

/* Which entries a bulk removal takes (qc_store_remove_matching). */
typedef enum QcMatchKind
{
	QC_MATCH_TAG,
	QC_MATCH_PREFIX,
	QC_MATCH_ALL,
	QC_MATCH_EVERYTHING			/* every database's entries */
} QcMatchKind;

/* A copied-out entry description, for qcache_entries. */
typedef struct QcEntryInfo
{
	char	   *key;			/* palloc'd, NUL-terminated */
	uint32		keylen;
	Oid			owner;
	int			ntags;
	char	  **tags;
	Size		size;
	TimestampTz created;
	TimestampTz expires;
	uint32		hits;
	uint8		flags;			/* QC_ENTRY_* */
	bool		fresh;			/* no committed invalidation since its build
								 * point (qc_entry_fresh) */
} QcEntryInfo;

extern uint64 qc_hash_key(Oid dbid, const char *data, uint32 len);
extern uint32 qc_hash_tag(const char *tag, uint32 len);
extern bool qc_store_get(const QcKey *key, TimestampTz now, QcValue *out);
extern QcSetResult qc_store_set(const QcKey *key, const void *value,
								uint32 vallen, const QcTags *tags,
								const QcSetInfo *info);
extern bool qc_store_remove(const QcKey *key);
extern uint64 qc_store_remove_matching(Oid dbid, QcMatchKind kind,
									   const char *arg, uint32 arglen);
extern uint64 qc_store_sweep(TimestampTz now);
extern int64 qc_store_entries(void);
extern void qc_store_note_stale(Oid dbid, uint32 taghash);
extern List *qc_store_list(Oid dbid);

/* ---------- counters (stats.c) ---------- */
extern Size qc_stats_size(int nslots);
extern void qc_stats_init(void);
extern void qc_count(QcCounter c, uint64 n);
extern void qc_stats_read(uint64 *out);
extern void qc_stats_reset(void);

/* ---------- per-namespace counters (nsstats.c) ---------- */
typedef enum QcNsCounter
{
	QC_NS_HITS,
	QC_NS_MISSES,
	QC_NS_SETS,
	QC_NS_NCOUNTERS
} QcNsCounter;

extern Size qc_ns_size(void);
extern void qc_ns_init(void);
extern void qc_ns_count(const QcKey *key, QcNsCounter c);
extern void qc_ns_reset(void);

/* ---------- help for users (sqlfuncs.c) ---------- */
extern void qc_check_watchable(Oid relid);

/* ---------- invalidation points (invalidate.c) ---------- */
extern Size qc_inval_size(void);
extern void qc_inval_init(void);
extern void qc_inval_register(void);
extern void qc_inval_tag_at_commit(Oid dbid, uint32 taghash);
extern void qc_inval_tag_explicit(Oid dbid, uint32 taghash);
extern void qc_inval_snapshot_imported(void);
extern void qc_inval_tag_remote(Oid dbid, uint32 taghash, TimestampTz stamp);
extern bool qc_entry_fresh(const QcEntry *e);
extern bool qc_l2_value_fresh(Oid dbid, const QcTags *tags, TimestampTz build);
extern bool qc_entry_dead(const QcEntry *e);
extern bool qc_entry_dead_before(const QcEntry *e, TimestampTz cutoff);
extern bool qc_set_allowed(Oid dbid, const QcTags *tags, TimestampTz build);
extern bool qc_inval_is_writer(void);
extern char *qc_table_tag(Oid relid);

/*
 * Node-internal tags start with this byte: never shown by qcache_entries,
 * never sent to Redis, never accepted from users.
 */
#define QC_INTERNAL_TAG_BYTE	'\001'
extern char *qc_rel_oid_tag(Oid relid);
extern TimestampTz qc_names_stamp(bool *unsettled);
extern char *qc_func_oid_tag(Oid funcid);
extern const char *qc_names_tag(void);
extern bool qc_tag_is_internal(const char *tag, uint32 len);
extern void qc_inval_rel_at_commit(Oid relid);
extern void qc_inval_func_at_commit(Oid funcid);
extern void qc_inval_table_name_at_commit(Oid relid);
extern void qc_inval_names_at_commit(void);
extern void qc_inval_descendants_at_commit(Oid relid);
extern List *qc_rel_ancestors(Oid relid);
extern void qc_twophase_shmem_request(void);
extern void qc_twophase_shmem_startup(void);
extern void qc_twophase_reap(void);
extern void qc_twophase_finishing(void);
extern Oid	qc_twophase_unknown_begin(const char *gid);
extern void qc_twophase_unknown_end(Oid dbid, bool committed);
extern bool qc_tags_with_families(const QcTags *in, QcTags *out);
extern const QcTags *qc_tags_public(const QcTags *in, QcTags *buf);
extern void qc_inval_keys_mark(const uint64 *keys, int nkeys, int delta);
extern void qc_inval_keys_stamp(const uint64 *keys, int nkeys, TimestampTz stamp);
extern void qc_inval_standby_epoch(TimestampTz stamp);
extern int	qc_twophase_append_marks(StringInfo buf);

/* ---------- invalidations in the WAL, for hot standbys (walinval.c) ---------- */
extern bool qc_wal_invalidation;
extern int	qc_debug_wal_stamp_delay;
extern void qc_wal_shmem_request(void);
extern void qc_wal_shmem_startup(void);
extern void qc_wal_register(void);
extern void qc_wal_mark(TransactionId xid, const uint64 *keys, int nkeys);
extern void qc_wal_mark_prepared(TransactionId xid, const uint64 *keys,
								 int nkeys, void (*activate) (void *),
								 void *arg);
extern void qc_wal_stamp(TransactionId xid);
extern void qc_wal_forget(TransactionId xid);
extern void qc_wal_append_mark(StringInfo buf, TransactionId xid,
							   const uint64 *keys, int nkeys);
extern void qc_wal_explicit_match(QcMatchKind kind, Oid dbid, const char *str,
								  uint32 len);
extern void qc_wal_explicit_key(const QcKey *key);
extern void qc_wal_tick(void);
extern void qc_wal_pay_off(void);
extern void qc_wal_reap(bool all);
extern bool qc_wal_help_reap(void);
extern bool qc_inval_help_standby(void);
extern bool qc_wal_standby_may_store(TimestampTz build);

/* ---------- DDL (ddl.c) ---------- */
extern void qc_ddl_object_access(ObjectAccessType access, Oid classId,
								 Oid objectId, int subId);
extern uint64 qc_ddl_before(Node *stmt);
extern void qc_ddl_after(Node *stmt, uint64 created_before);

/* ---------- single flight (flight.c) ---------- */
typedef enum QcFlight
{
	QC_FLIGHT_LEAD,				/* this session computes; qc_flight_end */
	QC_FLIGHT_WAITED,			/* another one did: look up again */
	QC_FLIGHT_ALONE				/* compute without single flight */
} QcFlight;

extern Size qc_flight_size(void);
extern void qc_flight_init(void);
extern QcFlight qc_flight_begin(const QcKey *key);
extern void qc_flight_end(void);
extern QcFlight qc_flight_try(const QcKey *key);
extern TimestampTz qc_lease_take(const QcKey *key, int ms);
extern bool qc_lease_use(const QcKey *key, TimestampTz token);

/* ---------- the Redis second level (redis.c, redis_worker.c) ---------- */
extern char *qc_redis_url;
extern char *qc_redis_prefix;
extern int	qc_l1_ttl;
extern int	qc_redis_timeout;
extern int	qc_debug_l2_copy_delay;

/* A value read from Redis (palloc'd). */
typedef struct QcL2Value
{
	char	   *json;			/* NUL-terminated JSON text */
	size_t		len;
	int64		pttl_ms;		/* -1: no expiry */
	TimestampTz build;
	QcTags		tags;
	char	   *x;				/* the metadata's opaque field (may be "") */
	size_t		x_len;
} QcL2Value;

extern bool qc_redis_url_check(char **newval, void **extra, GucSource source);
extern void qc_redis_config_assign(const char *newval, void *extra);
extern void qc_redis_timeout_assign(int newval, void *extra);
extern void qc_l2_install_log_filter(void);
extern bool qc_l2_active(void);
extern bool qc_l2_usable(void);
extern const char *qc_l2_dbname(void);
extern bool qc_l2_get(const QcKey *key, QcL2Value *out);
extern bool qc_l2_get_uncounted(const QcKey *key, QcL2Value *out);
extern bool qc_l2_json_valid(const char *json, size_t len);
extern Jsonb *qc_l2_json_to_jsonb(const char *json, size_t len);
typedef enum QcL2SetResult
{
	QC_L2_STORED,
	QC_L2_STALE,				/* Redis knows an invalidation after its build */
	QC_L2_FAILED				/* not written (down, error, breaker open) */
} QcL2SetResult;
extern QcL2SetResult qc_l2_set(const QcKey *key, const char *json,
							   const QcTags *tags, int64 ttl_ms,
							   TimestampTz build, const char *x);
extern void qc_l2_lost_write(const QcKey *key);
extern bool qc_l2_invalidate_key(const QcKey *key);
extern void qc_l2_invalidate_tag(const char *tag, uint32 len,
								 TimestampTz stamp);
extern int64 qc_l2_invalidate_prefix(const char *prefix, uint32 len);
extern void qc_l2_clear(TimestampTz stamp);
extern void qc_l2_commit(const char *db, const char *tags, size_t len,
						 int ntags, bool wildcard, TimestampTz stamp);
extern PGDLLEXPORT void qcache_l2_main(Datum arg);

/* redis_debt.c: what this node owes Redis, saved across restarts */
extern void qc_l2_shmem_request(void);
extern void qc_l2_shmem_startup(void);

/* More tags than this in one commit invalidate the database in Redis. */
#define QC_L2_MAX_COMMIT_TAGS	1000

/*
 * Node-internal tags start with the byte 0x01 ("\001rel:16384"): they name
 * relations by OID, meaningful on this node only, and never go to Redis
 * (metadata, commit-time stamps, messages).
 */
static inline bool
qc_tag_is_local(const char *tag)
{
	return tag[0] == '\001';
}

/*
 * The node-internal tags that Redis carries all the same (redis.c): the
 * names tag and function OID tags, which qcache_fetch results in Redis
 * depend on and no public tag covers.  Stamped in Redis by the DDL that
 * stamps them here; an OID names the same function on every node that may
 * read such a result (one cluster: fetch.c), and on other clusters a
 * stamp of it only costs extra misses.
 */
static inline bool
qc_tag_l2_stamped(const char *tag)
{
	return tag[0] == '\001' &&
		(strcmp(tag + 1, "names") == 0 || strncmp(tag + 1, "fn:", 3) == 0);
}

/* ---------- the sweeper (worker.c) ---------- */
extern void qc_register_worker(const char *name, const char *function);
extern PGDLLEXPORT void qcache_sweeper_main(Datum arg);

#endif							/* QCACHE_H */
