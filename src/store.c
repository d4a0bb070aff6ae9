/*-------------------------------------------------------------------------
 *
 * store.c
 *		The shared hash of cache entries: lookup, insert, removal, eviction.
 *
 * Design.  The index is a fixed array of nbuckets bucket heads (a power of
 * 2 near qcache.max_entries: shmem.c) in shared memory, split into
 * QC_NUM_PARTITIONS contiguous ranges, each guarded by its own LWLock; a
 * key's 64-bit hash (of the database oid and the key bytes) picks both its
 * bucket and, by the bucket's high bits, its partition.  Bucket heads and
 * chains name entries by 32-bit references (QcRef, qcache.h).  Each entry
 * is one chunk of the DSA area (see QcEntry in qcache.h) holding its
 * header, key, tags and value, so an entry costs one allocation and one
 * free; except that, in an area of 32 MB or more, the value's end goes
 * into a second, small chunk when the allocator's size classes would
 * waste 16 bytes or more of one (qc_split_head).
 *
 * Locking.  A reader takes its partition's lock in shared mode, walks the
 * chain, copies the value out into palloc'd memory and releases it:
 * readers never wait for each other, and no lock is global.  A writer
 * builds its entry completely before it takes the partition lock in
 * exclusive mode, and holds it only to swap chain pointers; the allocator
 * (which has its own locks) is never called under a partition lock, and
 * memory is freed only after the entry is unlinked and the lock released.
 * No function here holds two partition locks at once.  Bulk removals look
 * at a partition in shared mode first and retake it exclusively only when
 * it holds something to remove.
 *
 * The tag and namespace index.  qcache_invalidate_tag must cost what the
 * tag's entries cost, not what the cache holds; so must a prefix
 * invalidation of a named cache ("users:").  Each entry carries, in its
 * own chunk, one QcLink per tag and one for its key's namespace (the user
 * part of the key up to and including its first ':', if it has one), and
 * these links chain it, doubly, into the index: an array of nbuckets
 * heads (idxheads), picked by a hash of (database, tag hash) or
 * (database, namespace hash), split into QC_NUM_PARTITIONS ranges, each
 * protected by an index lock (idxlocks).  A chain, and every link in it,
 * is protected by its range's index lock; the entries' other fields stay
 * under their partition locks.  No allocation: the links are part of the
 * entry's chunk.
 *
 * Lock order: a partition lock, then an index lock.  Linking or unlinking
 * an entry happens under its partition lock held exclusively (with the
 * bucket chain), taking the index lock of each of its links in turn,
 * exclusively, one at a time, for the few pointer swaps of a doubly linked
 * list: constant time.  A removal by tag or namespace (qc_remove_indexed)
 * reads the chain under its index lock in shared mode, collects the
 * matching entries, releases it, and only then takes each entry's
 * partition lock to check that the entry is still linked and to remove it:
 * it never takes a partition lock while holding an index lock.  So its
 * cost is the members' (and the colliding links'), not the cache's: one
 * index lock and one partition lock per member.  Readers (qc_store_get)
 * never take an index lock.  Every entry is in the index, so a removal by
 * tag finds every entry that carries the tag: the count it returns is
 * exact, as before.  The index only finds entries to remove; whether an
 * entry may be served is still decided by the invalidation points
 * (invalidate.c), which the index does not touch.
 *
 * Killing.  That removal costs, per entry, a partition lock, a bucket
 * chain walk, three index unlinks (each touching two neighbours) and a
 * free: a dozen cache lines, and in a large cache a dozen misses.  The
 * explicit invalidations by tag and by namespace (qcache_invalidate_tag,
 * qcache_invalidate_prefix of a named cache) do less on the caller's
 * time: under the chain's index lock, shared, they set QC_HITS_KILLED in
 * each matching entry (qc_kill_indexed), which takes it out of the cache
 * for every reader, listing and gauge at once, and queue the chain for
 * the sweeper, which unlinks and frees killed entries through it within a
 * second; a setter that needs room frees a queued chain before it evicts
 * (qc_help_killed).  The bit is set once, by an atomic OR, and whoever
 * sets it (an invalidation, or a removal that frees the entry first)
 * counts the entry: counts stay exact.  A killed entry is served to no
 * one: a get tests the bit under the partition lock, and the OR is done
 * before the invalidation returns.
 *
 * Presence counters.  QC_PRESENCE_SLOTS atomic counters, hashed by
 * (database, tag) or (database, namespace), count the linked entries;
 * changed as an entry is linked or unlinked (under its partition lock),
 * read without a lock.  A bulk removal whose counter is zero
 * returns at once, taking no lock: a tag or namespace that nothing carries
 * costs about a lookup.  Hash collisions make a counter count more, never
 * less; a set racing with the removal is the race it always had, which
 * the invalidation stamp (taken before the removal) settles.
 *
 * Memory.  Links are charged to bytes_used with their entry (8 bytes per
 * tag, and per namespace: two 32-bit entry references, QcRef); the heads
 * (4 bytes per bucket), index locks and
 * counters are part of the fixed index charged at start.  An entry with
 * two tags, a namespace and a ttl thus carries 52 (header) + 4 * 8
 * (links) + 2 * 4 (tag hashes) = 92 bytes besides its key, value and tag
 * strings, 84 without a ttl, plus the allocator's rounding up to its size
 * class, which the split bounds in a large area; and 8 bytes per bucket
 * (bucket and index head) in the fixed part.  A tag that every
 * entry carries makes its index lock one that every set takes, briefly.
 *
 * Eviction.  nentries is reserved by compare-and-swap before an insert, so
 * the cache never holds more than max_entries.  When the count is at the
 * limit, or the DSA area cannot satisfy an allocation, the setter evicts,
 * CLOCK-style: a shared hand moves over the partitions, and within each a
 * cursor moves over its buckets; one round looks at a bounded number of
 * entries (QC_EVICT_SCAN) under the partition's lock, whatever the
 * partition's size and whatever the reference bits say.  Expired and
 * invalidated entries go first, then, oldest first and only as many as
 * needed, entries nobody read since the hand last passed them.  A read
 * entry gets a second chance, so keys in use survive and the cold ones go
 * (an approximate LRU); an entry starts unreferenced, so a burst of sets
 * that are never read cannot push out the keys that are.  When every entry
 * a round looks at was read, the oldest of them goes: a full, hot cache
 * still makes room in one bounded round.  Allocation retries escalate the
 * amount to free, because freed small chunks only return pages to the
 * area when whole superblocks empty, up to a cap, past which the value is
 * not cached.  Before evicting for memory, a failed allocation gives the
 * area's empty superblocks back (qc_trim_if_due), so that the capacity for
 * one value size does not depend on the sizes stored before.  Of the ways
 * out, this one keeps DSA's size classes (fewer classes would round every
 * entry up further) and gives the memory back (counting the empty
 * superblocks in bytes_used would only report the loss), for the price of
 * a dsa_trim, which takes each size class's lock, at most every 10 ms.
 *
 * Sweeping.  Expired entries are never returned by a lookup, and the
 * sweeper (worker.c) reclaims them without waiting for a read, at a cost
 * in proportion to the entries due, not to the cache's size:
 *
 * - The expiry wheel.  Each partition has a hierarchical timer wheel of
 *   QC_WHEEL_LEVELS levels of QC_WHEEL_SLOTS list heads (uint32 QcRefs,
 *   in the fixed part: 640 bytes per partition, 80 kB in all), level
 *   L's slots 8^L seconds apart, and every entry with a ttl is in one slot
 *   through a doubly linked QcLink in its own chunk (8 bytes per timed
 *   entry; none without a ttl), linked and unlinked with the bucket chain
 *   under the partition lock: constant time.  The slot is a function of
 *   the entry's creation and expiry times (qc_wheel_head), its expiry
 *   rounded up by at most 1/3.9 of its ttl, and holds only entries due by
 *   its time, so that the sweeper, which each second takes the slots that
 *   came due since its last pass, frees what it looks at (but for ttls
 *   past 35 hours, looked at once every 36 hours until due).  No
 *   cascading: an entry never moves.  A min-heap would cost 12 bytes per
 *   entry (8 in the heap, its position in the entry) and log n per set.
 *
 * - Stale entries.  A commit's invalidation stamps tags (invalidate.c)
 *   without touching entries; each (database, tag hash) it stamps is put
 *   in a small shared queue (QcStaleQueue: a ring, deduplicated by a
 *   filter, under a spinlock held for a few instructions), which the
 *   sweeper empties every second and answers QC_DEAD_SWEEP_INTERVAL_MS
 *   later through the tag's index chain (qc_remove_stale): the cost of the
 *   tag's entries.  Explicit invalidations kill their entries and queue
 *   their chains in the same queue's second ring (see Killing, above).
 *   A database's wildcard, and a queue that
 *   overflowed, make the sweeper pass over every entry, a bounded number
 *   of buckets per partition per second, as before: every entry may then
 *   be stale.
 *
 * The sweeper frees at most QC_SWEEP_ROUNDS * QC_UNLINK_BATCH entries per
 * partition per second from the wheel; a partition with nothing due costs
 * it one lock held for a few reads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "dsa_classes.h"
#include "qcache.h"

/* Entries evicted for recency by one scan of a partition, at most. */
#define QC_EVICT_BATCH			16

/* Largest allocation DSA serves from a size class (dsa_classes.h). */
#define QC_SMALL_ALLOC	qc_dsa_size_classes[lengthof(qc_dsa_size_classes) - 1]

/* Least amount that one eviction round for memory tries to free. */
#define QC_EVICT_MIN_BYTES		(64 * 1024)

static bool qc_store_note_killed(uint32 h);

/* Entries this process has freed (qc_free_entries), for the sweeper. */
static uint64 qc_freed_here = 0;

/* 52 bytes, 4-byte aligned: every field is 32 bits or less. */
StaticAssertDecl(sizeof(QcEntry) == 52, "QcEntry must stay 52 bytes");
StaticAssertDecl(sizeof(QcLink) == 8, "QcLink is two 32-bit references");

/* Bit shift from a bucket number to its partition number. */
static inline int
qc_partition_shift(void)
{
	return pg_leftmost_one_pos32(qc_shared->nbuckets) -
		pg_leftmost_one_pos32(QC_NUM_PARTITIONS);
}

static inline uint32
qc_bucket_of(uint64 hash)
{
	return (uint32) hash & (qc_shared->nbuckets - 1);
}

static inline int
qc_partition_of_bucket(uint32 bucket)
{
	return bucket >> qc_partition_shift();
}

static inline LWLock *
qc_partition_lock(int partition)
{
	return &qc_shared->partitions[partition].d.lock;
}

static inline QcEntry *
qc_entry(dsa_pointer dp)
{
	return (QcEntry *) dsa_get_address(qc_dsa, dp);
}

/*
 * Ask for an entry's first two cache lines at once.  An entry's header,
 * links and tag hashes, then its key, span two or three 64-byte lines (a
 * chunk is not line-aligned), which a lookup reads one after the other: in
 * a large cache each is a miss of about 200 ns (README, "Cost against the
 * cache's size"), and fetching them in parallel saves one per entry.
 */
static inline void
qc_entry_prefetch(const QcEntry *e)
{
#if defined(__GNUC__) || defined(__clang__)
	__builtin_prefetch(e);
	__builtin_prefetch((const char *) e + 64);
#endif
}

/*
 * Bytes the allocator takes for a request of `size` bytes: its size class,
 * or whole pages past the largest class.
 */
Size
qc_alloc_size(Size size)
{
	int			lo = 0;
	int			hi = lengthof(qc_dsa_size_classes) - 1;

	if (size > qc_dsa_size_classes[hi])
		return TYPEALIGN(QC_DSA_PAGE_SIZE, size);
	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (qc_dsa_size_classes[mid] >= size)
			hi = mid;
		else
			lo = mid + 1;
	}
	return qc_dsa_size_classes[lo];
}

/* An entry split in two saves at least this many bytes, or is not split. */
#define QC_SPLIT_MIN_SAVING		16

/* Entries are split only in an area of at least this size. */
#define QC_SPLIT_MIN_AREA		(32 * 1024 * 1024)

/*
 * The size of the first chunk of an entry whose layout takes `size` bytes
 * (the tail reference included) and whose bytes before the value's take
 * `prefix`, if it is to be split in two, or 0.  The allocator rounds a
 * request up to its size class (about 12.5% apart up to 8 kB: a 1 KB
 * value with its header takes the 1,280-byte class) or, past 8 kB, to
 * whole 4 kB pages: so the first chunk takes the largest class (or whole
 * pages) that the layout fills, and the value's end goes into a second,
 * small chunk, when that saves at least QC_SPLIT_MIN_SAVING bytes, the
 * tail reference counted.  A function of the two sizes only, so that a
 * free finds the same split.  The price: a second allocation and free per
 * entry, and a second copy per read, of those entries only; and the
 * tails spread over more size classes, each of which holds at least one
 * 64 kB superblock while in use (36 classes: 2.3 MB), so only an area of
 * QC_SPLIT_MIN_AREA or more splits entries (a smaller one would trade the
 * rounding for whole superblocks; 005_stress, in 2 MB, refused a third of
 * its sets when it split).
 */
static Size
qc_split_head(Size size, Size prefix)
{
	Size		whole = qc_alloc_size(size - sizeof(QcRef));
	Size		head;
	int			i;

	if (qc_shared->dsa_size < QC_SPLIT_MIN_AREA)
		return 0;
	if (size > QC_SMALL_ALLOC)
		head = size & ~((Size) QC_DSA_PAGE_SIZE - 1);
	else
	{
		head = 0;
		for (i = 0; i < (int) lengthof(qc_dsa_size_classes); i++)
			if (qc_dsa_size_classes[i] < size)
				head = qc_dsa_size_classes[i];
	}
	if (head <= prefix || head >= size)
		return 0;
	if (qc_alloc_size(head) + qc_alloc_size(size - head) + QC_SPLIT_MIN_SAVING >
		whole)
		return 0;
	return head;
}

/* Bytes before an entry's value in its layout. */
static inline Size
qc_entry_prefix(const QcEntry *e)
{
	return QcEntryValue(e) - (const char *) e;
}

/* Bytes the allocator takes for an entry, both chunks if split. */
static Size
qc_entry_bytes(const QcEntry *e)
{
	Size		size = QcEntrySize(e);
	Size		head;

	if (!(e->flags & QC_ENTRY_SPLIT))
		return qc_alloc_size(size);
	head = qc_split_head(size, qc_entry_prefix(e));
	Assert(head > 0);
	return qc_alloc_size(head) + qc_alloc_size(size - head);
}

/*
 * Hash of a key within its database.  Only the bytes before a zero byte
 * count: SQL text keys have none, and a key's role-scoped variants (key,
 * zero byte, role; see fetch.c) hash with it, so they share its bucket and
 * qc_store_remove finds them all in one chain.
 */
uint64
qc_hash_key(Oid dbid, const char *data, uint32 len)
{
	const char *nul = memchr(data, '\0', len);

	if (nul)
		len = nul - data;
	return hash_bytes_extended((const unsigned char *) data, (int) len,
							   (uint64) dbid);
}

/* Hash of a tag, stored beside it to make tag scans cheap. */
uint32
qc_hash_tag(const char *tag, uint32 len)
{
	return hash_bytes((const unsigned char *) tag, (int) len);
}

/*
 * An entry's clock field holds, shifted left by one, its partition's clock
 * when it was inserted or last given a second chance (a FIFO position), and
 * in bit 0 the CLOCK reference bit: set by reads, cleared by the hand.
 */
#define QC_REFERENCED			((uint32) 1)

/* Next FIFO position of a partition; caller holds its lock exclusively. */
static inline uint32
qc_next_position(int partition)
{
	return (qc_shared->partitions[partition].d.clock++) << 1;
}

static inline bool
qc_entry_expired(const QcEntry *e, TimestampTz now)
{
	return e->ttl != 0 && QcEntryExpires(e) <= now;
}

static inline bool
qc_entry_is_key(const QcEntry *e, const QcKey *key, uint32 h32)
{
	return e->hash == h32 && e->dbid == key->dbid &&
		e->keylen == key->len &&
		memcmp(QcEntryKey(e), key->data, key->len) == 0;
}

/* Has an explicit invalidation (or a free) taken this entry out? */
static inline bool
qc_entry_killed(const QcEntry *e)
{
	return (pg_atomic_read_u32(unconstify(pg_atomic_uint32 *, &e->hits)) &
			QC_HITS_KILLED) != 0;
}

/*
 * Account for entries leaving the cache, and free them.  No lock held; the
 * entries are unlinked from everything.  Returns how many of them this
 * call took out of the cache: the others were killed before (an explicit
 * invalidation counted them), and leave nkilled now.  nkilled drops
 * before nentries, so that qc_store_entries, which reads them the other
 * way round, never sees fewer entries than killed ones.
 */
static int
qc_free_entries(dsa_pointer *dps, int n)
{
	uint64		bytes = 0;
	int			claimed = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		QcEntry    *e = qc_entry(dps[i]);

		/* a killed entry's bytes left bytes_used when it was killed */
		if (!(pg_atomic_fetch_or_u32(&e->hits, QC_HITS_KILLED) & QC_HITS_KILLED))
		{
			claimed++;
			bytes += qc_entry_bytes(e);
		}
		if (e->flags & QC_ENTRY_SPLIT)
			dsa_free(qc_dsa, qc_ref_dp(*QcEntryTailRef(e)));
		dsa_free(qc_dsa, dps[i]);
	}
	qc_freed_here += n;
	if (n > 0)
	{
		if (claimed < n)
			pg_atomic_sub_fetch_u32(&qc_shared->nkilled, n - claimed);
		pg_atomic_sub_fetch_u64(&qc_shared->bytes_used, bytes);
		pg_atomic_sub_fetch_u32(&qc_shared->nentries, n);
	}
	return claimed;
}

/* Entries in the cache as qcache_stats shows them: killed ones are gone. */
int64
qc_store_entries(void)
{
	int64		n = pg_atomic_read_u32(&qc_shared->nentries);

	pg_read_barrier();
	n -= pg_atomic_read_u32(&qc_shared->nkilled);
	return Max(n, 0);
}

/* ---------- the tag and namespace index ---------- */

/* What an index chain or presence counter is about. */
typedef enum QcIdxKind
{
	QC_IDX_TAG = 1,				/* (database, tag) */
	QC_IDX_NS,					/* (database, key namespace) */
	QC_IDX_DB					/* a scan (no chain) */
} QcIdxKind;

/* Hash of an index key; picks its head in each partition and its counter */
static inline uint32
qc_idx_hash(Oid dbid, uint32 h, QcIdxKind kind)
{
	return hash_combine(murmurhash32(h + (uint32) kind * 0x9e3779b9U),
						murmurhash32((uint32) dbid));
}

/* Bit shift from an index head number to its index lock number. */
static inline int
qc_idx_lock_shift(void)
{
	return pg_leftmost_one_pos32(qc_shared->nbuckets) -
		pg_leftmost_one_pos32(QC_NUM_PARTITIONS);
}

/* The head number of index hash ih. */
static inline uint32
qc_idx_headno(uint32 ih)
{
	return ih & (qc_shared->nbuckets - 1);
}

/* The index lock that protects the chain of head number h. */
static inline LWLock *
qc_idx_lock(uint32 h)
{
	return &qc_shared->idxlocks[h >> qc_idx_lock_shift()].lock;
}

static inline pg_atomic_uint32 *
qc_presence_of(uint32 ih)
{
	return &qc_presence[ih & (QC_PRESENCE_SLOTS - 1)];
}

/*
 * Length of a key's namespace: its bytes up to and including the first
 * ':' of the user part (before any zero byte of a variant), or 0 if it has
 * none.
 */
static uint32
qc_namespace_len(const char *key, uint32 len)
{
	const char *nul = memchr(key, '\0', len);
	const char *colon;

	if (nul)
		len = nul - key;
	colon = memchr(key, ':', len);
	return colon ? (uint32) (colon - key) + 1 : 0;
}

static inline uint32
qc_hash_namespace(const char *ns, uint32 len)
{
	return hash_bytes((const unsigned char *) ns, (int) len);
}

/* Index hash of an entry's link i (a tag, or the namespace). */
static uint32
qc_link_hash(const QcEntry *e, int i)
{
	if (i < e->ntags)
		return qc_idx_hash(e->dbid, QcEntryTagHashes(e)[i], QC_IDX_TAG);
	return qc_idx_hash(e->dbid,
					   qc_hash_namespace(QcEntryKey(e),
										 qc_namespace_len(QcEntryKey(e),
														  e->keylen)),
					   QC_IDX_NS);
}

/* A database's slot in the partitions' dbcount arrays. */
static inline int
qc_db_slot(Oid dbid)
{
	return murmurhash32((uint32) dbid) & (QC_DB_SLOTS - 1);
}

/* The partition that holds an entry. */
static inline int
qc_partition_of_entry(const QcEntry *e)
{
	return qc_partition_of_bucket(e->hash & (qc_shared->nbuckets - 1));
}

/*
 * The index hashes and head numbers of an entry's links, into ih[] and
 * hn[] (QC_MAX_TAGS + 1 each); returns the number of links.  An entry has
 * at most one link in a chain: of its links with the same head number (a
 * tag given twice, or hashes that pick the same head), only the first is
 * linked, and the others are marked unused (hn[i] = PG_UINT32_MAX).  A
 * removal matches entries by their content, so the one link finds the
 * entry for every tag that hashes there.
 */
static int
qc_entry_heads(const QcEntry *e, uint32 *ih, uint32 *hn)
{
	int			n = QcEntryNLinks(e);
	int			i;
	int			j;

	for (i = 0; i < n; i++)
	{
		ih[i] = qc_link_hash(e, i);
		hn[i] = qc_idx_headno(ih[i]);
		for (j = 0; j < i; j++)
		{
			if (hn[j] == hn[i])
			{
				hn[i] = PG_UINT32_MAX;
				break;
			}
		}
	}
	return n;
}

/*
 * The link of an entry in the chain of head number h.  Caller holds that
 * chain's index lock, and the entry is in the chain.
 */
static QcLink *
qc_link_in(QcRef r, uint32 h)
{
	QcEntry    *e = qc_entry(qc_ref_dp(r));
	int			n = QcEntryNLinks(e);
	int			i;

	for (i = 0; i < n; i++)
		if (qc_idx_headno(qc_link_hash(e, i)) == h)
			return &QcEntryLinks(e)[i];
	elog(PANIC, "qcache: an entry in an index chain has no link to it");
	return NULL;				/* keep the compiler quiet */
}

/* ---------- the expiry wheel ---------- */

/* Whole seconds from the shared memory's creation to t, rounded down. */
static inline uint64
qc_wheel_sec(TimestampTz t)
{
	return t <= qc_shared->started ? 0 :
		(uint64) (t - qc_shared->started) / USECS_PER_SEC;
}

/*
 * The wheel head (level * QC_WHEEL_SLOTS + slot) of a timed entry, a
 * function of its creation and expiry times only, so that an unlink finds
 * the head its link made.  Its due time is its expiry in whole seconds,
 * rounded up at level L to a multiple of 8^L; L is the least level whose
 * QC_WHEEL_SLOTS - 1 slots ahead reach from the creation to that due
 * time.  A slot due at T is swept when the sweeper's second passes T, and
 * every entry in it is then expired (its expiry is at most T), except in
 * two cases, in which the sweeper visits an entry early and leaves it for
 * the next turn of that level: it lagged more than a slot behind the
 * setter's clock, or the entry's ttl is longer than the top level reaches
 * (31 * 8^4 s, 35 hours), and it is in the top level's last slot, visited
 * once every 36 hours until it is due.  An entry goes at most 1/3.9 of its
 * ttl late (8^L against 31 * 8^(L-1)): memory only, since a lookup never
 * returns an expired entry.
 */
static int
qc_wheel_head(const QcEntry *e)
{
	uint64		c = qc_wheel_sec(QcEntryCreated(e));
	uint64		x = qc_wheel_sec(QcEntryExpires(e) + USECS_PER_SEC - 1);
	int			level;

	for (level = 0; level < QC_WHEEL_LEVELS; level++)
	{
		int			shift = 3 * level;
		uint64		t = (x + (UINT64CONST(1) << shift) - 1) >> shift;

		if ((t << shift) - c < ((uint64) (QC_WHEEL_SLOTS - 1) << shift))
			return level * QC_WHEEL_SLOTS + (int) (t % QC_WHEEL_SLOTS);
	}
	/* past the top level's reach: its last slot ahead of the creation */
	level = QC_WHEEL_LEVELS - 1;
	return level * QC_WHEEL_SLOTS +
		(int) (((c >> (3 * level)) + QC_WHEEL_SLOTS - 1) % QC_WHEEL_SLOTS);
}

static inline uint32 *
qc_wheel_heads(int partition)
{
	return &qc_wheel[(Size) partition * QC_WHEEL_HEADS];
}

/*
 * Put a timed entry first in its wheel slot.  Caller holds the entry's
 * partition lock exclusively.
 */
static void
qc_wheel_link(dsa_pointer dp, QcEntry *e, int partition)
{
	QcLink	   *l = QcEntryWheelLink(e);
	uint32	   *head = &qc_wheel_heads(partition)[qc_wheel_head(e)];

	l->prev = 0;
	l->next = *head;
	if (*head != 0)
		QcEntryWheelLink(qc_entry(qc_ref_dp(*head)))->prev = qc_ref(dp);
	*head = qc_ref(dp);
}

/* Take a timed entry out of its wheel slot; same lock as qc_wheel_link. */
static void
qc_wheel_unlink(dsa_pointer dp, QcEntry *e, int partition)
{
	QcLink	   *l = QcEntryWheelLink(e);

	if (l->prev != 0)
		QcEntryWheelLink(qc_entry(qc_ref_dp(l->prev)))->next = l->next;
	else
	{
		uint32	   *head = &qc_wheel_heads(partition)[qc_wheel_head(e)];

		Assert(*head == qc_ref(dp));
		*head = l->next;
	}
	if (l->next != 0)
		QcEntryWheelLink(qc_entry(qc_ref_dp(l->next)))->prev = l->prev;
}

/*
 * Put a new entry into the index chains of its tags and namespace (and a
 * timed one into its partition's expiry wheel), and
 * count it in the presence counters and its partition's dbcount.  Caller
 * holds the entry's partition lock exclusively; each link is put first in
 * its chain under the chain's index lock, taken and released in turn
 * (partition lock, then one index lock at a time).
 */
static void
qc_index_link(dsa_pointer dp, QcEntry *e)
{
	QcLink	   *links = QcEntryLinks(e);
	uint32		ih[QC_MAX_TAGS + 1];
	uint32		hn[QC_MAX_TAGS + 1];
	int			n = qc_entry_heads(e, ih, hn);
	int			i;

	for (i = 0; i < n; i++)
	{
		uint32	   *head;
		LWLock	   *lock;

		pg_atomic_fetch_add_u32(qc_presence_of(ih[i]), 1);
		links[i].next = links[i].prev = 0;
		if (hn[i] == PG_UINT32_MAX)
			continue;
		head = &qc_idxheads[hn[i]];
		lock = qc_idx_lock(hn[i]);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		links[i].next = *head;
		if (*head != 0)
			qc_link_in(*head, hn[i])->prev = qc_ref(dp);
		*head = qc_ref(dp);
		LWLockRelease(lock);
	}
	if (e->flags & QC_ENTRY_TIMED)
		qc_wheel_link(dp, e, qc_partition_of_entry(e));
	qc_shared->partitions[qc_partition_of_entry(e)].d.dbcount[qc_db_slot(e->dbid)]++;
}

/*
 * Take an entry out of its index chains, expiry wheel, presence counters
 * and dbcount.
 * Caller holds the entry's partition lock exclusively; the index locks are
 * taken one at a time, as in qc_index_link.
 */
static void
qc_index_unlink(dsa_pointer dp, QcEntry *e)
{
	QcLink	   *links = QcEntryLinks(e);
	uint32		ih[QC_MAX_TAGS + 1];
	uint32		hn[QC_MAX_TAGS + 1];
	int			n = qc_entry_heads(e, ih, hn);
	int			i;

	for (i = 0; i < n; i++)
	{
		LWLock	   *lock;

		pg_atomic_fetch_sub_u32(qc_presence_of(ih[i]), 1);
		if (hn[i] == PG_UINT32_MAX)
			continue;
		lock = qc_idx_lock(hn[i]);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		if (links[i].prev != 0)
			qc_link_in(links[i].prev, hn[i])->next = links[i].next;
		else
		{
			Assert(qc_idxheads[hn[i]] == qc_ref(dp));
			qc_idxheads[hn[i]] = links[i].next;
		}
		if (links[i].next != 0)
			qc_link_in(links[i].next, hn[i])->prev = links[i].prev;
		LWLockRelease(lock);
	}
	if (e->flags & QC_ENTRY_TIMED)
		qc_wheel_unlink(dp, e, qc_partition_of_entry(e));
	qc_shared->partitions[qc_partition_of_entry(e)].d.dbcount[qc_db_slot(e->dbid)]--;
}

/*
 * Unlink the entry that *link points to (a bucket chain link) from its
 * bucket chain and from the index.  Caller holds the partition lock
 * exclusively; the entry stays allocated (the caller frees it after
 * releasing the lock).  Returns the entry's dsa_pointer.
 */
static dsa_pointer
qc_unlink(int partition, QcRef *link)
{
	dsa_pointer dp = qc_ref_dp(*link);
	QcEntry    *e = qc_entry(dp);

	*link = e->next;
	qc_index_unlink(dp, e);
	return dp;
}

/* The bucket chain link that points to an entry; caller holds its lock. */
static QcRef *
qc_bucket_link(dsa_pointer dp, const QcEntry *e)
{
	QcRef	   *link = &qc_buckets[e->hash & (qc_shared->nbuckets - 1)];

	while (*link != qc_ref(dp))
	{
		Assert(*link != 0);
		link = &qc_entry(qc_ref_dp(*link))->next;
	}
	return link;
}

/* Copy an entry's value out, from both chunks if it is split. */
static void
qc_entry_copy_value(const QcEntry *e, char *dst)
{
	Size		size;
	Size		head;
	Size		inhead;

	if (!(e->flags & QC_ENTRY_SPLIT))
	{
		memcpy(dst, QcEntryValue(e), e->vallen);
		return;
	}
	size = QcEntrySize(e);
	head = qc_split_head(size, qc_entry_prefix(e));
	inhead = head - qc_entry_prefix(e);
	memcpy(dst, QcEntryValue(e), inhead);
	memcpy(dst + inhead, dsa_get_address(qc_dsa, qc_ref_dp(*QcEntryTailRef(e))),
		   e->vallen - inhead);
}

/*
 * Look a key up; on a hit copy its value into out->value (palloc'd in the
 * current memory context) and return true.  An expired entry, or one that
 * an invalidation made stale (qc_entry_fresh), is a miss.  Takes the key's partition lock
 * in shared mode; the caller must hold no qcache lock.
 */
static bool qc_store_get_once(const QcKey *key, TimestampTz now, QcValue *out);

bool
qc_store_get(const QcKey *key, TimestampTz now, QcValue *out)
{
	if (qc_store_get_once(key, now, out))
		return true;
	/* a hot standby's tag in flight whose commit has been replayed */
	return qc_inval_help_standby() && qc_store_get_once(key, now, out);
}

static bool
qc_store_get_once(const QcKey *key, TimestampTz now, QcValue *out)
{
	uint32		bucket = qc_bucket_of(key->hash);
	uint32		h32 = (uint32) key->hash;
	LWLock	   *lock = qc_partition_lock(qc_partition_of_bucket(bucket));
	dsa_pointer dp;
	bool		found = false;

	LWLockAcquire(lock, LW_SHARED);
	for (dp = qc_ref_dp(qc_buckets[bucket]); DsaPointerIsValid(dp);)
	{
		QcEntry    *e = qc_entry(dp);

		qc_entry_prefetch(e);
		if (qc_entry_is_key(e, key, h32))
		{
			uint32		hits = pg_atomic_read_u32(&e->hits);

			if (!(hits & QC_HITS_KILLED) &&
				!qc_entry_expired(e, now) && qc_entry_fresh(e))
			{
				out->value = palloc(e->vallen);
				qc_entry_copy_value(e, out->value);
				out->expires = QcEntryExpires(e);
				out->owner = e->owner;
				out->flags = e->flags;
				out->depbytes = e->depbytes;
				out->deps = NULL;
				if (e->depbytes > 0)
				{
					out->deps = palloc(e->depbytes);
					memcpy(out->deps, QcEntryDeps(e), e->depbytes);
				}
				/* set only when clear: hot keys stay read-mostly */
				if (!(pg_atomic_read_u32(&e->clock) & QC_REFERENCED))
					pg_atomic_fetch_or_u32(&e->clock, QC_REFERENCED);
				if (hits < QC_HITS_MAX)
					pg_atomic_fetch_add_u32(&e->hits, 1);
				found = true;
			}
			break;
		}
		dp = qc_ref_dp(e->next);
	}
	LWLockRelease(lock);
	return found;
}

typedef bool (*QcMatchFn) (const QcEntry *e, const void *arg);

/*
 * Entries the sweeper looked at since its last report (qc_store_sweep);
 * other processes count too, and never report.
 */
static uint64 qc_sweep_visited = 0;

/* Victims unlinked per exclusive hold of a partition lock, at most. */
#define QC_UNLINK_BATCH			256

/* A bulk removal of at least this many entries trims the area. */
#define QC_TRIM_AFTER			1024

/*
 * Remove every entry of one partition that satisfies match(), scanning all
 * its buckets: the way of removals the index cannot answer (a prefix
 * without a namespace, a clear).  A shared pass looks for one first; only
 * if there is one is the lock retaken exclusively, to unlink up to
 * QC_UNLINK_BATCH of them into a local array (no allocation while entries
 * are unlinked but not yet freed, so an error cannot leak them).  They are
 * freed after the lock is released, and the exclusive pass repeats while a
 * batch came back full.  Returns the number removed.
 */
static int
qc_remove_in_partition(int partition, QcMatchFn match, const void *arg)
{
	uint32		nper = qc_shared->nbuckets / QC_NUM_PARTITIONS;
	uint32		first = (uint32) partition * nper;
	LWLock	   *lock = qc_partition_lock(partition);
	dsa_pointer out[QC_UNLINK_BATCH];
	uint32		b;
	bool		any = false;
	int			total = 0;
	int			nout;

	LWLockAcquire(lock, LW_SHARED);
	for (b = first; b < first + nper && !any; b++)
	{
		dsa_pointer dp;

		for (dp = qc_ref_dp(qc_buckets[b]); DsaPointerIsValid(dp);)
		{
			QcEntry    *e = qc_entry(dp);

			if (match(e, arg))
			{
				any = true;
				break;
			}
			dp = qc_ref_dp(e->next);
		}
	}
	LWLockRelease(lock);
	if (!any)
		return 0;

	do
	{
		nout = 0;
		LWLockAcquire(lock, LW_EXCLUSIVE);
		for (b = first; b < first + nper && nout < QC_UNLINK_BATCH; b++)
		{
			QcRef	   *link = &qc_buckets[b];

			while (*link != 0 && nout < QC_UNLINK_BATCH)
			{
				QcEntry    *e = qc_entry(qc_ref_dp(*link));

				if (match(e, arg))
					out[nout++] = qc_unlink(partition, link);
				else
					link = &e->next;
			}
		}
		LWLockRelease(lock);
		total += qc_free_entries(out, nout);
	} while (nout == QC_UNLINK_BATCH);

	return total;
}

/* Argument of the bulk-removal predicates. */
typedef struct QcMatchArg
{
	Oid			dbid;
	const char *str;
	uint32		len;
	uint32		hash;			/* tag hash, for QC_MATCH_TAG */
	QcIdxKind	kind;			/* which index chain, for qc_remove_indexed */
	uint32		ih;				/* its index hash */
	TimestampTz stale_cutoff;	/* not 0: the sweeper's removal of the
								 * entries with tag hash `hash` made stale
								 * by stamps up to this time */
	bool		killed;			/* the sweeper's removal of the killed
								 * entries of the chain, whatever they are */
} QcMatchArg;

/* Is the i-th tag string of an entry this one? */
static bool
qc_entry_tag_is(const QcEntry *e, int i, const char *tag, uint32 len)
{
	const char *p = QcEntryTags(e);

	while (i-- > 0)
		p += strlen(p) + 1;
	return strlen(p) == len && memcmp(p, tag, len) == 0;
}

static bool
qc_match_prefix(const QcEntry *e, const void *arg)
{
	const QcMatchArg *a = arg;

	return e->dbid == a->dbid && e->keylen >= a->len &&
		memcmp(QcEntryKey(e), a->str, a->len) == 0;
}

static bool
qc_match_db(const QcEntry *e, const void *arg)
{
	const QcMatchArg *a = arg;

	return e->dbid == a->dbid;
}

static bool
qc_match_any(const QcEntry *e, const void *arg)
{
	return true;
}

/*
 * Does entry e match what a removal through the index asks for: does it
 * carry the tag, or is its key in the namespace and does it start with the
 * prefix?  (A chain also holds other keys' links whose hashes collide.)
 */
static bool
qc_entry_matches(const QcEntry *e, const QcMatchArg *a)
{
	int			i;

	if (a->killed)
		return qc_entry_killed(e);
	if (e->dbid != a->dbid)
		return false;
	if (a->stale_cutoff != 0)
	{
		for (i = 0; i < e->ntags; i++)
			if (QcEntryTagHashes(e)[i] == a->hash)
				return qc_entry_dead_before(e, a->stale_cutoff);
		return false;
	}
	if (a->kind == QC_IDX_NS)
		return (e->flags & QC_ENTRY_NAMESPACE) != 0 && qc_match_prefix(e, a);
	for (i = 0; i < e->ntags; i++)
		if (QcEntryTagHashes(e)[i] == a->hash &&
			qc_entry_tag_is(e, i, a->str, a->len))
			return true;
	return false;
}

/*
 * Remove the entries that the index chain of a->ih names and that match
 * (qc_entry_matches); returns the number removed.
 *
 * The chain is read under its index lock in shared mode, to collect up to
 * QC_UNLINK_BATCH matching entries; then, with no lock held, each one is
 * removed under its own partition lock, exclusive (which qc_unlink
 * completes with the index locks, one at a time: the lock order).  Between
 * the two, another backend may have removed and freed a collected entry,
 * and its memory may hold something else by now: so under the partition
 * lock the entry is first checked to be linked still (its hash names this
 * partition, and the pointer is in its bucket chain: only live entries
 * are), and to match.  A live entry never changes partition, and its
 * content is immutable.  A freed chunk stays mapped (the area is in
 * place), so reading it is harmless.  The walk repeats until the chain
 * holds no match: the entries it removed have left it, and so have those
 * others removed meanwhile.
 */
static uint64
qc_remove_indexed(const QcMatchArg *a)
{
	uint32		h = qc_idx_headno(a->ih);
	LWLock	   *ilock = qc_idx_lock(h);
	dsa_pointer found[QC_UNLINK_BATCH];
	dsa_pointer out[QC_UNLINK_BATCH];
	uint64		total = 0;
	int			idle = 0;

	for (;;)
	{
		int			nfound = 0;
		int			nout = 0;
		int			i;
		QcRef		r;

		LWLockAcquire(ilock, LW_SHARED);
		for (r = qc_idxheads[h]; r != 0 && nfound < QC_UNLINK_BATCH;
			 r = qc_link_in(r, h)->next)
		{
			dsa_pointer dp = qc_ref_dp(r);

			qc_sweep_visited++;
			if (qc_entry_matches(qc_entry(dp), a))
				found[nfound++] = dp;
		}
		LWLockRelease(ilock);
		if (nfound == 0)
			break;

		for (i = 0; i < nfound; i++)
		{
			dsa_pointer dp = found[i];
			QcEntry    *e = qc_entry(dp);
			int			partition;
			LWLock	   *plock;
			QcRef	   *link;

			partition = qc_partition_of_entry(e);
			plock = qc_partition_lock(partition);
			LWLockAcquire(plock, LW_EXCLUSIVE);
			if (qc_partition_of_entry(e) == partition)
			{
				link = &qc_buckets[e->hash & (qc_shared->nbuckets - 1)];
				while (*link != 0 && *link != qc_ref(dp))
					link = &qc_entry(qc_ref_dp(*link))->next;
				if (*link != 0 && qc_entry_matches(e, a))
					out[nout++] = qc_unlink(partition, link);
			}
			LWLockRelease(plock);
		}
		total += qc_free_entries(out, nout);

		/* matches that were all gone by the time we came: look again, a bit */
		if (nout == 0 && ++idle > 3)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	return total;
}

/* Links one kill walk looks at under its index lock, at most. */
#define QC_KILL_WALK			4096

/*
 * Kill the entries that the index chain of a->ih names and that match
 * (qc_entry_matches): the explicit invalidation's way of removing a tag's
 * or a namespace's entries at the cost of reading them.  Returns the
 * number this call killed; *complete says whether it reached the chain's
 * end (a chain longer than QC_KILL_WALK links is left to the caller).
 *
 * The chain is read under its index lock in shared mode, and each match
 * is killed there, with an atomic OR on its hits (QC_HITS_KILLED): from
 * then on no lookup serves it, no listing shows it, no removal counts it
 * again, and it costs nothing more to the caller.  Every entry in the
 * chain is allocated while the lock is held (unlinking one from the chain
 * takes the lock exclusively, and frees come after unlinking), so the OR
 * lands on a live entry, perhaps one that another backend is removing:
 * that backend's own OR then finds the bit set and leaves the count, and
 * the bytes, to us (qc_free_entries).  The killed entries leave bytes_used
 * and join nkilled before the lock is released, hence before any of them
 * can be freed, which then changes neither bytes_used nor the count: the
 * gauges show the cache as the invalidation left it, while the memory
 * waits a moment for the sweeper.  The chain's head number goes to the
 * sweeper's queue, which unlinks and frees the killed entries within a
 * second (qc_store_sweep), unless a setter that needs room does it first
 * (qc_help_killed); if the queue is full, this call frees them itself.
 * So every killed entry's chain is in the queue or being swept.  Takes
 * one index lock, no partition lock, then (to free) what
 * qc_remove_indexed takes.
 */
static uint64
qc_kill_indexed(const QcMatchArg *a, bool *complete)
{
	uint32		h = qc_idx_headno(a->ih);
	LWLock	   *ilock = qc_idx_lock(h);
	uint64		n = 0;
	uint64		bytes = 0;
	int			nlinks = 0;
	QcRef		r;

	LWLockAcquire(ilock, LW_SHARED);
	for (r = qc_idxheads[h]; r != 0 && nlinks < QC_KILL_WALK;
		 r = qc_link_in(r, h)->next, nlinks++)
	{
		QcEntry    *e = qc_entry(qc_ref_dp(r));

		qc_entry_prefetch(e);
		if (!qc_entry_killed(e) && qc_entry_matches(e, a) &&
			!(pg_atomic_fetch_or_u32(&e->hits, QC_HITS_KILLED) &
			  QC_HITS_KILLED))
		{
			n++;
			bytes += qc_entry_bytes(e);
		}
	}
	*complete = (r == 0);
	if (n > 0)
	{
		pg_atomic_add_fetch_u32(&qc_shared->nkilled, (uint32) n);
		pg_atomic_sub_fetch_u64(&qc_shared->bytes_used, bytes);
	}
	LWLockRelease(ilock);
	if (n > 0 && !qc_store_note_killed(h))
	{
		QcMatchArg	k;

		/* the sweeper's queue is full: free them now, as it would */
		memset(&k, 0, sizeof(k));
		k.killed = true;
		k.ih = h;
		HOLD_INTERRUPTS();		/* not left half done: see qc_sweep_killed_one */
		(void) qc_remove_indexed(&k);
		RESUME_INTERRUPTS();
	}
	return n;
}

/*
 * Remove every entry of a database that carries a tag, starts with a
 * prefix, or all of them; or every entry of every database.  Returns the
 * number removed, exactly: entries that another backend removes at the
 * same time (an eviction for room, a concurrent invalidation) are counted
 * by whoever removed them.  Takes the partition locks one at a time, each
 * followed by index locks one at a time (the lock order of the header
 * comment).
 *
 * Cost.  A tag, and a prefix that contains a ':' (every key it matches is
 * in the namespace up to that ':'), are answered by the index: first the
 * presence counter (zero: nothing matches, no lock taken; a counter may be
 * shared by several keys through hash collisions, which only costs the
 * walk), then the chain (qc_remove_indexed), so the cost is the members',
 * whatever the cache's size.  A prefix without ':' and a clear scan the
 * partitions that hold entries of the database (dbcount, read without a
 * lock: a set racing with the removal is the race the header comment
 * explains), so a database with no entries costs 128 reads and no lock.
 */
uint64
qc_store_remove_matching(Oid dbid, QcMatchKind kind, const char *arg,
						 uint32 arglen)
{
	QcMatchArg	a;
	QcMatchFn	fn = NULL;
	uint32		guard;
	uint64		n = 0;
	uint64		removed = 0;	/* freed by this call (not only killed) */
	int			p;

	memset(&a, 0, sizeof(a));
	a.dbid = dbid;
	a.str = arg;
	a.len = arglen;
	a.hash = 0;
	a.kind = QC_IDX_DB;
	a.ih = 0;
	a.stale_cutoff = 0;
	guard = 0;
	switch (kind)
	{
		case QC_MATCH_TAG:
			a.hash = qc_hash_tag(arg, arglen);
			a.kind = QC_IDX_TAG;
			a.ih = qc_idx_hash(dbid, a.hash, QC_IDX_TAG);
			guard = a.ih;
			break;
		case QC_MATCH_PREFIX:
			{
				uint32		nslen = qc_namespace_len(arg, arglen);

				if (nslen > 0)
				{
					a.kind = QC_IDX_NS;
					a.ih = qc_idx_hash(dbid, qc_hash_namespace(arg, nslen),
									   QC_IDX_NS);
					guard = a.ih;
				}
				else
					fn = qc_match_prefix;
			}
			break;
		case QC_MATCH_EVERYTHING:
			fn = qc_match_any;
			break;
		case QC_MATCH_ALL:
		default:
			fn = qc_match_db;
			break;
	}

	if (fn == NULL && pg_atomic_read_u32(qc_presence_of(guard)) == 0)
		return 0;
	pg_read_barrier();

	if (fn == NULL)
	{
		bool		complete;

		n = qc_kill_indexed(&a, &complete);
		/* a long chain: remove the rest now, the usual way */
		if (!complete)
		{
			removed = qc_remove_indexed(&a);
			n += removed;
		}
	}
	else
	{
		int			slot = qc_db_slot(dbid);

		for (p = 0; p < QC_NUM_PARTITIONS; p++)
		{
			CHECK_FOR_INTERRUPTS();
			/* a partition with no entry of the database: nothing to scan */
			if (kind != QC_MATCH_EVERYTHING &&
				*(volatile uint32 *) &qc_shared->partitions[p].d.dbcount[slot] == 0)
				continue;
			n += qc_remove_in_partition(p, fn, &a);
		}
		removed = n;
	}
	/* a large removal may have emptied superblocks: give them back */
	if (removed >= QC_TRIM_AFTER ||
		(removed > 0 && fn != NULL && fn != qc_match_prefix))
		dsa_trim(qc_dsa);
	return n;
}

/*
 * The sweeper's removal of the entries of a database that carry a tag hash
 * and that stamps up to `cutoff` made stale for good (qc_store_sweep),
 * through the tag's index chain: the cost of the tag's entries.  Locks as
 * qc_remove_indexed.  Returns the number removed (not counted here).
 */
static uint64
qc_remove_stale(Oid dbid, uint32 taghash, TimestampTz cutoff)
{
	QcMatchArg	a;

	memset(&a, 0, sizeof(a));
	a.dbid = dbid;
	a.hash = taghash;
	a.kind = QC_IDX_TAG;
	a.ih = qc_idx_hash(dbid, taghash, QC_IDX_TAG);
	a.stale_cutoff = cutoff;
	if (pg_atomic_read_u32(qc_presence_of(a.ih)) == 0)
		return 0;
	pg_read_barrier();
	return qc_remove_indexed(&a);
}

/* Buckets that one step of a pass for dead entries looks at, per partition. */
#define QC_SWEEP_BUCKETS		512

/* Batches of QC_UNLINK_BATCH one wheel sweep of a partition frees, at most. */
#define QC_SWEEP_ROUNDS			4

/*
 * Sweep a partition's expiry wheel up to the second of `now`: at each
 * level, the slots whose due time came since the last sweep (at most all
 * QC_WHEEL_SLOTS of them), freeing their entries, which are all expired
 * (see qc_wheel_head).  Level L+1 has a due slot only when level L has one
 * at a multiple of 8, so an idle second costs level 0's one slot.  A
 * partition whose due slots are all empty costs one exclusive lock, held
 * for a few reads.  At most QC_SWEEP_ROUNDS batches are freed per call; if
 * more are due, the wheel is not advanced and the next call goes on (its
 * slots at the same due times, the freed entries gone from them).  Returns
 * the number freed; frees after releasing the lock.
 */
static int
qc_sweep_wheel(int partition, TimestampTz now)
{
	QcPartitionData *part = &qc_shared->partitions[partition].d;
	uint32	   *heads = qc_wheel_heads(partition);
	uint64		now_sec = qc_wheel_sec(now);
	int			total = 0;
	int			round;

	if (*(volatile uint64 *) &part->wheel_done >= now_sec)
		return 0;
	for (round = 0; round < QC_SWEEP_ROUNDS; round++)
	{
		dsa_pointer out[QC_UNLINK_BATCH];
		int			nout = 0;
		uint64		done;
		int			level;

		LWLockAcquire(&part->lock, LW_EXCLUSIVE);
		done = part->wheel_done;
		for (level = 0; level < QC_WHEEL_LEVELS && nout < QC_UNLINK_BATCH;
			 level++)
		{
			int			shift = 3 * level;
			uint64		first = (done >> shift) + 1;
			uint64		last = now_sec >> shift;
			uint64		t;

			if (first > last)
				break;			/* no higher level has a due slot either */
			if (last - first >= QC_WHEEL_SLOTS)
				first = last - QC_WHEEL_SLOTS + 1;
			for (t = first; t <= last && nout < QC_UNLINK_BATCH; t++)
			{
				uint32		r;

				r = heads[level * QC_WHEEL_SLOTS + t % QC_WHEEL_SLOTS];

				while (r != 0 && nout < QC_UNLINK_BATCH)
				{
					dsa_pointer dp = qc_ref_dp(r);
					QcEntry    *e = qc_entry(dp);

					qc_sweep_visited++;
					r = QcEntryWheelLink(e)->next;
					if (qc_entry_expired(e, now))
						out[nout++] = qc_unlink(partition,
												qc_bucket_link(dp, e));
				}
			}
		}
		if (nout < QC_UNLINK_BATCH)
			part->wheel_done = now_sec;
		LWLockRelease(&part->lock);
		total += qc_free_entries(out, nout);
		if (nout < QC_UNLINK_BATCH)
			break;
	}
	return total;
}

/*
 * One step of a pass over a partition for dead entries, those that
 * invalidations stamped up to the pass's cutoff made stale for good: the
 * way of the stamps the stale-tag queue cannot name (a database's
 * wildcard, a queue that overflowed).  Looks at the next QC_SWEEP_BUCKETS
 * buckets from the partition's sweep cursor.  Returns the number removed.
 * Takes the partition lock exclusively; frees after releasing it.
 */
static int
qc_sweep_dead_step(int partition, TimestampTz start_dead)
{
	QcPartitionData *part = &qc_shared->partitions[partition].d;
	uint32		nper = qc_shared->nbuckets / QC_NUM_PARTITIONS;
	uint32		first = (uint32) partition * nper;
	dsa_pointer out[QC_UNLINK_BATCH];
	int			nout = 0;
	uint32		b;
	uint32		end;

	if (!start_dead && !*(volatile bool *) &part->sweep_dead)
		return 0;
	LWLockAcquire(&part->lock, LW_EXCLUSIVE);
	if (start_dead)
	{
		part->sweep_dead = true;
		part->sweep_dead_cutoff = Max(start_dead, part->sweep_dead_cutoff);
	}
	end = Min(part->sweep_cursor + QC_SWEEP_BUCKETS, nper);
	for (b = part->sweep_cursor; b < end; b++)
	{
		QcRef	   *link = &qc_buckets[first + b];

		while (*link != 0)
		{
			QcEntry    *e = qc_entry(qc_ref_dp(*link));

			qc_sweep_visited++;
			if (qc_entry_killed(e) ||
				qc_entry_dead_before(e, part->sweep_dead_cutoff))
			{
				if (nout == QC_UNLINK_BATCH)
					break;
				out[nout++] = qc_unlink(partition, link);
				continue;
			}
			link = &e->next;
		}
		if (nout == QC_UNLINK_BATCH)
			break;				/* this bucket again next time */
	}
	if (b >= nper)
	{
		part->sweep_cursor = 0;
		part->sweep_dead = false;
	}
	else
		part->sweep_cursor = b;
	LWLockRelease(&part->lock);
	return qc_free_entries(out, nout);
}

/* ---------- the stale-tag queue ---------- */

static inline QcStaleQueue *
qc_stale_queue(void)
{
	return (QcStaleQueue *) ((char *) qc_shared + qc_shared->stale_off);
}

static inline uint32
qc_stale_filter_slot(uint64 key)
{
	return hash_combine(murmurhash32((uint32) key),
						murmurhash32((uint32) (key >> 32))) &
		(QC_STALE_FILTER - 1);
}

/*
 * A commit stamped (database, tag hash): tell the sweeper, which frees the
 * entries the stamp made stale through the tag's index chain, at a cost
 * in proportion to them.  Called by invalidate.c after the stamp.  A key
 * already in the queue is not added again (the filter); a full queue sets
 * its overflow flag, and the sweeper then passes over every entry instead.
 * Holds the queue's spinlock for a few instructions; no other lock.
 */
void
qc_store_note_stale(Oid dbid, uint32 taghash)
{
	QcStaleQueue *q = qc_stale_queue();
	uint64		key = (uint64) dbid << 32 | taghash;
	uint32		f = qc_stale_filter_slot(key);

	SpinLockAcquire(&q->lock);
	if (q->filter[f] != key)
	{
		if (q->n < QC_STALE_RING)
		{
			q->ring[q->n++] = key;
			q->filter[f] = key;
		}
		else
			q->overflow = true;
	}
	SpinLockRelease(&q->lock);
}

/*
 * An explicit invalidation killed entries of the index chain of head
 * number h (qc_kill_indexed): tell the sweeper, which unlinks and frees
 * them at its next tick.  Deduplicated like the stale tags.  Returns false
 * if the ring is full (the caller frees them itself).
 */
static bool
qc_store_note_killed(uint32 h)
{
	QcStaleQueue *q = qc_stale_queue();
	uint32		f = murmurhash32(h) & (QC_KILL_FILTER - 1);
	bool		noted = true;

	SpinLockAcquire(&q->lock);
	if (q->kfilter[f] != h + 1)
	{
		if (q->kn < QC_KILL_RING)
		{
			q->kring[q->kn++] = h;
			q->kfilter[f] = h + 1;
		}
		else
			noted = false;
	}
	SpinLockRelease(&q->lock);
	return noted;
}

/*
 * Unlink and free the killed entries of the newest chain named in the
 * queue, through the chain (qc_remove_indexed, the cost of the chain):
 * the sweeper's way, one chain after the other, and a setter's that needs
 * room, before it evicts entries that are still of use.  Returns false if
 * the queue was empty.  The entries freed are not counted again: they were
 * counted when killed.
 *
 * Interrupts are held from the taking of the chain to the end of its
 * sweep: a chain taken from the queue and left half swept would leave its
 * killed entries to eviction alone, and a setter (which holds a reserved
 * entry count, perhaps an allocated chunk) must not be stopped here.
 */
static bool
qc_sweep_killed_one(void)
{
	QcStaleQueue *q = qc_stale_queue();
	QcMatchArg	a;
	uint32		h;

	HOLD_INTERRUPTS();
	SpinLockAcquire(&q->lock);
	if (q->kn == 0)
	{
		SpinLockRelease(&q->lock);
		RESUME_INTERRUPTS();
		return false;
	}
	h = q->kring[--q->kn];
	q->kfilter[murmurhash32(h) & (QC_KILL_FILTER - 1)] = 0;
	SpinLockRelease(&q->lock);

	memset(&a, 0, sizeof(a));
	a.killed = true;
	a.ih = h;
	(void) qc_remove_indexed(&a);
	RESUME_INTERRUPTS();
	return true;
}

/*
 * The sweeper's private list of stale-tag keys taken from the queue, each
 * with the time it was taken (a FIFO, so those times only grow); it frees
 * their entries QC_DEAD_SWEEP_INTERVAL_MS later.
 */
typedef struct QcHeldKey
{
	uint64		key;
	TimestampTz taken;
} QcHeldKey;

static QcHeldKey *qc_held = NULL;
static int	qc_held_head = 0;
static int	qc_held_n = 0;
static int	qc_held_size = 0;

/* Most keys the sweeper holds; past it, it sweeps everything instead. */
#define QC_HELD_MAX				(16 * QC_STALE_RING)

/*
 * Take the keys out of the queue, into the held list, stamped with the
 * time of the taking; returns true if the queue had overflowed (or the
 * list is full), in which case the caller starts a pass over every entry.
 * Every stamp whose key was in the queue, or was left out because it was
 * already there, was made before the taking (the writer stamps, then
 * takes the spinlock; the filter is cleared under it), so `now`, read
 * after, is a cutoff that covers them.
 */
static bool
qc_stale_take(TimestampTz *taken)
{
	QcStaleQueue *q = qc_stale_queue();
	uint64		keys[QC_STALE_RING];
	uint32		n;
	bool		overflow;
	uint32		i;
	TimestampTz now;

	SpinLockAcquire(&q->lock);
	n = q->n;
	overflow = q->overflow;
	memcpy(keys, q->ring, n * sizeof(uint64));
	for (i = 0; i < n; i++)
		if (q->filter[qc_stale_filter_slot(keys[i])] == keys[i])
			q->filter[qc_stale_filter_slot(keys[i])] = 0;
	q->n = 0;
	q->overflow = false;
	SpinLockRelease(&q->lock);
	now = GetCurrentTimestamp();
	*taken = now;

	if (qc_held_n + (int) n > QC_HELD_MAX)
	{
		qc_held_head = qc_held_n = 0;
		return true;
	}
	if (qc_held_head + qc_held_n + (int) n > qc_held_size)
	{
		/* compact, then grow */
		if (qc_held_n > 0 && qc_held_head > 0)
			memmove(qc_held, qc_held + qc_held_head,
					qc_held_n * sizeof(QcHeldKey));
		qc_held_head = 0;
		if (qc_held_n + (int) n > qc_held_size)
		{
			int			size = Max(qc_held_size * 2, qc_held_n + (int) n);

			qc_held = qc_held == NULL ?
				MemoryContextAlloc(TopMemoryContext, size * sizeof(QcHeldKey)) :
				repalloc(qc_held, size * sizeof(QcHeldKey));
			qc_held_size = size;
		}
	}
	for (i = 0; i < n; i++)
	{
		qc_held[qc_held_head + qc_held_n].key = keys[i];
		qc_held[qc_held_head + qc_held_n].taken = now;
		qc_held_n++;
	}
	return overflow;
}

/*
 * One tick of the sweeper, whose work is in proportion to what is due,
 * not to the cache's size:
 *
 * - Expired entries: each partition's expiry wheel, up to now
 *   (qc_sweep_wheel): it visits the entries of the slots that came due,
 *   which are expired, and costs one lock per partition besides.
 *
 * - Entries an invalidation made stale are never served, so freeing them
 *   is only about memory, which eviction also reclaims on demand.  The
 *   tags that commits stamped come through the stale-tag queue; each is
 *   held QC_DEAD_SWEEP_INTERVAL_MS, then the entries of its index chain
 *   that stamps up to its taking made stale are freed (qc_remove_indexed):
 *   the cost of the tag's entries.  (The delay once kept the sweeper from
 *   taking entries that an explicit invalidation was removing and
 *   counting; since whoever takes an entry out first counts it, through
 *   QC_HITS_KILLED, it only batches.)  A database's wildcard, or a queue
 *   that overflowed, start a pass over every entry instead
 *   (qc_sweep_dead_step, bounded per tick), as every entry may be due.
 *
 * - Entries an explicit invalidation killed (qc_kill_indexed) are never
 *   served either; their chains come through the same queue and are
 *   swept at once, each at the cost of its chain (qc_sweep_killed).
 *
 * Returns the number removed and counts them as expired evictions (the
 * killed ones were counted as invalidations).  With DEBUG1, logs the
 * entries it looked at, and those it freed (the TAP test 012_sweeper_due
 * checks that they are the due ones).
 */
uint64
qc_store_sweep(TimestampTz now)
{
	static TimestampTz pending_full = 0;
	TimestampTz taken;
	TimestampTz start_dead = 0;
	uint64		n = 0;
	uint64		nstale = 0;
	uint64		freed_before = qc_freed_here;
	int			p;

	qc_sweep_visited = 0;
	if (qc_stale_take(&taken))
		pending_full = taken;

	/* what explicit invalidations killed: now, through their chains */
	for (p = 0; p < QC_KILL_RING && qc_sweep_killed_one(); p++)
		CHECK_FOR_INTERRUPTS();

	/* the held keys whose time has come */
	while (qc_held_n > 0 &&
		   now - qc_held[qc_held_head].taken >=
		   (TimestampTz) QC_DEAD_SWEEP_INTERVAL_MS * 1000)
	{
		QcHeldKey  *h = &qc_held[qc_held_head];
		Oid			dbid = (Oid) (h->key >> 32);
		uint32		taghash = (uint32) h->key;

		qc_held_head++;
		qc_held_n--;
		if (taghash == 0)
		{
			/* the database's wildcard: every entry of it may be stale */
			start_dead = Max(start_dead, h->taken);
			continue;
		}
		nstale += qc_remove_stale(dbid, taghash, h->taken);
		CHECK_FOR_INTERRUPTS();
	}
	if (qc_held_n == 0)
		qc_held_head = 0;
	if (pending_full != 0 &&
		now - pending_full >= (TimestampTz) QC_DEAD_SWEEP_INTERVAL_MS * 1000)
	{
		start_dead = Max(start_dead, pending_full);
		pending_full = 0;
	}

	for (p = 0; p < QC_NUM_PARTITIONS; p++)
	{
		CHECK_FOR_INTERRUPTS();
		n += qc_sweep_wheel(p, now);
		n += qc_sweep_dead_step(p, start_dead);
	}
	n += nstale;
	if (qc_sweep_visited > 0)
		elog(DEBUG1, "qcache sweeper: visited " UINT64_FORMAT
			 " entries, freed " UINT64_FORMAT " and " UINT64_FORMAT " killed",
			 qc_sweep_visited, n, qc_freed_here - freed_before - n);
	if (n > 0)
		qc_count(QC_STAT_EVICTIONS_EXPIRED, n);
	/* give the superblocks that emptied back to the area */
	if (qc_freed_here > freed_before)
		dsa_trim(qc_dsa);
	return n;
}

/* Is e the key, or one of its role-scoped variants (key, zero byte, ...)? */
static inline bool
qc_entry_is_key_or_variant(const QcEntry *e, const QcKey *key, uint32 h32)
{
	return e->hash == h32 && e->dbid == key->dbid &&
		(e->keylen == key->len ||
		 (e->keylen > key->len && QcEntryKey(e)[key->len] == '\0')) &&
		memcmp(QcEntryKey(e), key->data, key->len) == 0;
}

/*
 * Remove one key, with its role-scoped variants.  Returns true if an entry
 * was removed.
 */
bool
qc_store_remove(const QcKey *key)
{
	uint32		bucket = qc_bucket_of(key->hash);
	uint32		h32 = (uint32) key->hash;
	int			partition = qc_partition_of_bucket(bucket);
	LWLock	   *lock = qc_partition_lock(partition);
	QcRef	   *link;
	dsa_pointer victims[QC_UNLINK_BATCH];
	int			nvictims = 0;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	for (link = &qc_buckets[bucket]; *link != 0;)
	{
		QcEntry    *e = qc_entry(qc_ref_dp(*link));

		if (qc_entry_is_key_or_variant(e, key, h32) &&
			nvictims < QC_UNLINK_BATCH)
		{
			victims[nvictims++] = qc_unlink(partition, link);
			continue;
		}
		link = &e->next;
	}
	LWLockRelease(lock);

	/* an entry an explicit invalidation killed was removed already */
	return qc_free_entries(victims, nvictims) > 0;
}

/*
 * Entries one eviction round looks at, at most (whole bucket chains): a
 * sample, as Redis's maxmemory-samples (5).  Each is a cache miss in a
 * large cache (about 200 ns here at 1,000,000 entries), so this is most
 * of what a set that evicts costs there; 64 made it 3.5 times the cost at
 * 10,000 entries, 16 keeps it within 2 times (README, "Cost against the
 * cache's size"), and the hand still passes every entry in turn.
 */
#define QC_EVICT_SCAN			16

/* Buckets one eviction round looks at, at most (empty ones included). */
#define QC_EVICT_SCAN_BUCKETS	1024

/*
 * One eviction round, a CLOCK over the partitions and, within each, over
 * its buckets: take the partition under the shared hand exclusively, and
 * look at the entries of the next buckets from its evict_cursor, at most
 * QC_EVICT_SCAN entries (and QC_EVICT_SCAN_BUCKETS buckets), so the work
 * done under the lock is bounded whatever the partition's size and
 * whatever the reference bits say.  Expired and dead (invalidated) entries
 * among them are unlinked.  An entry read since the hand last passed gets
 * a second chance: its bit is cleared and it moves to the back of the
 * partition's FIFO.  Then, until `bytes` bytes and `entries` entries are
 * freed (expired ones count), the unreferenced entries seen go, oldest
 * first (largest first with by_size: a large allocation needs whole free
 * pages, and freeing a large entry returns its pages at once).  Only if the
 * round would otherwise free nothing does the oldest referenced entry seen
 * go: a cache whose every entry is hot still makes room in one round.  At
 * most QC_EVICT_BATCH entries go by recency per round.  The entries are
 * freed after the lock is released.  Returns the bytes freed; *nfreed gets
 * the number of entries.
 */
static uint64
qc_evict_round(TimestampTz now, uint64 bytes, int entries, bool by_size,
			   int *nfreed)
{
	int			partition;
	QcPartitionData *part;
	uint32		base;
	uint32		nper = qc_shared->nbuckets / QC_NUM_PARTITIONS;
	uint32		first;
	dsa_pointer victims[QC_EVICT_BATCH];
	uint64		scores[QC_EVICT_BATCH];
	int			nvictims = 0;
	dsa_pointer expired[QC_UNLINK_BATCH];
	int			nexpired = 0;
	uint64		freed = 0;
	int			nseen = 0;
	uint32		nb;
	uint32		b;
	int			i;

	partition = pg_atomic_fetch_add_u32(&qc_shared->evict_hand, 1) %
		QC_NUM_PARTITIONS;
	part = &qc_shared->partitions[partition].d;
	first = (uint32) partition * nper;

	LWLockAcquire(&part->lock, LW_EXCLUSIVE);
	base = part->clock;
	b = part->evict_cursor;
	for (i = 0; i < 4; i++)
	{
		QcRef		r = qc_buckets[first + ((b + i) & (nper - 1))];

		if (r != 0)
			qc_entry_prefetch(qc_entry(qc_ref_dp(r)));
	}

	/*
	 * Pass 1: unlink expired entries; keep the best candidates, scored so
	 * that any unreferenced entry comes before every referenced one.
	 */
	for (nb = 0; nb < nper && nb < QC_EVICT_SCAN_BUCKETS &&
		 nseen < QC_EVICT_SCAN; nb++, b = (b + 1) & (nper - 1))
	{
		QcRef	   *link = &qc_buckets[first + b];
		QcRef		ahead = qc_buckets[first + ((b + 4) & (nper - 1))];

		/* the entries of the buckets ahead load while these are looked at */
		if (ahead != 0)
			qc_entry_prefetch(qc_entry(qc_ref_dp(ahead)));
		while (*link != 0)
		{
			QcEntry    *e = qc_entry(qc_ref_dp(*link));
			uint32		pos;
			uint64		score;

			nseen++;
			if ((qc_entry_expired(e, now) || qc_entry_killed(e) ||
				 qc_entry_dead(e)) &&
				nexpired < QC_UNLINK_BATCH)
			{
				freed += qc_entry_bytes(e);
				expired[nexpired++] = qc_unlink(partition, link);
				continue;
			}

			pos = pg_atomic_read_u32(&e->clock);
			score = by_size ? (uint64) QcEntrySize(e) :
				(uint64) (base - (pos >> 1));
			if (pos & QC_REFERENCED)
			{
				/*
				 * Read since the hand last passed: second chance, at the back
				 * of the FIFO.  A reader setting the bit again at once only
				 * gives it one more chance.
				 */
				pg_atomic_write_u32(&e->clock, qc_next_position(partition));
			}
			else
				score |= UINT64CONST(1) << 32;

			/* keep the QC_EVICT_BATCH best, best first */
			if (nvictims < QC_EVICT_BATCH || score > scores[nvictims - 1])
			{
				int			j = nvictims < QC_EVICT_BATCH ? nvictims++ : nvictims - 1;

				while (j > 0 && scores[j - 1] < score)
				{
					scores[j] = scores[j - 1];
					victims[j] = victims[j - 1];
					j--;
				}
				scores[j] = score;
				victims[j] = qc_ref_dp(*link);
			}
			link = &e->next;
		}
	}
	part->evict_cursor = b;

	/* Pass 2: unlink candidates, best first, until the need is met. */
	for (i = 0; i < nvictims; i++)
	{
		QcEntry    *v = qc_entry(victims[i]);

		if (freed >= bytes && nexpired + i >= entries)
			break;
		/* a referenced entry only if nothing else goes */
		if (!(scores[i] >> 32) && nexpired + i > 0)
			break;
		freed += qc_entry_bytes(v);
		(void) qc_unlink(partition, qc_bucket_link(victims[i], v));
	}
	nvictims = i;
	LWLockRelease(&part->lock);

	i = qc_free_entries(expired, nexpired);
	if (i > 0)
		qc_count(QC_STAT_EVICTIONS_EXPIRED, i);
	i = qc_free_entries(victims, nvictims);
	if (i > 0)
		qc_count(QC_STAT_EVICTIONS_MEMORY, i);

	*nfreed = nexpired + nvictims;
	return freed;
}

/*
 * Evict until at least `bytes` bytes and `entries` entries have been freed,
 * or the hand has gone twice around the partitions without freeing
 * anything.  Returns bytes freed.
 */
static uint64
qc_evict(TimestampTz now, uint64 bytes, int entries, bool by_size)
{
	uint64		freed = 0;
	int			nfreed = 0;
	int			empty_rounds = 0;

	while ((freed < bytes || nfreed < entries) &&
		   empty_rounds <= 2 * QC_NUM_PARTITIONS)
	{
		int			n;

		freed += qc_evict_round(now, bytes > freed ? bytes - freed : 0,
								entries > nfreed ? entries - nfreed : 0,
								by_size, &n);
		nfreed += n;
		empty_rounds = (n == 0) ? empty_rounds + 1 : 0;
	}
	return freed;
}

/*
 * A setter that needs room frees the newest chain of killed entries, if
 * there are killed entries and a chain in the queue; returns true if it
 * took one.  (A chain that the sweeper or another setter is freeing right
 * now is left to them; eviction frees killed entries first anyway.)
 */
static bool
qc_help_killed(void)
{
	if (pg_atomic_read_u32(&qc_shared->nkilled) == 0)
		return false;
	return qc_sweep_killed_one();
}

/*
 * Reserve room for one more entry under max_entries, evicting if the cache
 * is at the limit.  Returns false if nothing could be evicted.
 */
static bool
qc_reserve_entry(TimestampTz now)
{
	int			tries = 0;

	for (;;)
	{
		uint32		cur = pg_atomic_read_u32(&qc_shared->nentries);

		if (cur < qc_shared->max_entries)
		{
			if (pg_atomic_compare_exchange_u32(&qc_shared->nentries, &cur,
											   cur + 1))
				return true;
			continue;
		}
		/* what explicit invalidations killed goes before anything else */
		if (qc_help_killed())
			continue;			/* a finite queue: this ends */
		if (++tries > 4)
			return false;
		(void) qc_evict(now, 0, 1, false);
	}
}

/* Least interval between two dsa_trim calls of failed allocations. */
#define QC_TRIM_INTERVAL_US		10000

/*
 * The DSA allocator keeps an emptied superblock of a size class as long as
 * it is the class's current one, so that values of many sizes, once
 * removed, can leave one empty 64 kB superblock per size class ever used,
 * memory that no eviction can reclaim and that bytes_used does not count.
 * dsa_trim gives them back to the area's free pages.  A failed allocation
 * calls it (before evicting anything) when bytes_used says the area should
 * have room, at most once per QC_TRIM_INTERVAL_US in the whole cluster,
 * since it takes every size class's lock; bulk removals and the sweeper
 * call it too.  Returns true if it trimmed.  No partition lock held.
 */
static bool
qc_trim_if_due(TimestampTz now)
{
	uint64		last = pg_atomic_read_u64(&qc_shared->last_trim);

	if (pg_atomic_read_u64(&qc_shared->bytes_used) >
		qc_shared->bytes_limit - qc_shared->bytes_limit / 10)
		return false;
	if (now - (TimestampTz) last < QC_TRIM_INTERVAL_US ||
		!pg_atomic_compare_exchange_u64(&qc_shared->last_trim, &last,
										(uint64) now))
		return false;
	dsa_trim(qc_dsa);
	return true;
}

/*
 * Allocate `size` bytes from the area, evicting as needed.  Each failed
 * attempt asks the eviction for twice as much as the one before, because
 * freed small chunks only give pages back to the area when whole
 * superblocks empty.  What one set may evict is capped at a quarter of the
 * area (or the value's own size, if larger), so that a value that cannot be
 * placed does not flush the cache; it is not cached instead.
 */
static dsa_pointer
qc_allocate(Size size, TimestampTz now)
{
	uint64		target = Max(size, QC_EVICT_MIN_BYTES);
	uint64		cap = Max(size, qc_shared->dsa_size / 4);
	uint64		evicted = 0;
	bool		trimmed = false;

	for (;;)
	{
		dsa_pointer dp;
		uint64		freed;

		dp = dsa_allocate_extended(qc_dsa, size, DSA_ALLOC_NO_OOM);
		if (DsaPointerIsValid(dp))
			return dp;
		if (!trimmed && qc_trim_if_due(now))
		{
			trimmed = true;
			continue;			/* retry before evicting */
		}
		if (qc_help_killed())
			continue;
		if (evicted >= cap)
			break;
		freed = qc_evict(now, Min(target, cap - evicted), 0,
						 size > QC_SMALL_ALLOC);
		if (freed == 0)
			break;				/* nothing left to evict */
		evicted += freed;
		target *= 2;
		trimmed = false;
	}
	return InvalidDsaPointer;
}

/*
 * Store a value under a key, replacing any entry of the same key.
 * expires is 0 for no expiry.  The value is a whole jsonb varlena.  Returns
 * QC_SET_STORED, or why the value could not be cached; in that case the
 * previous entry of the key is removed too, so that a failed set never
 * leaves an older value to be served.  Takes partition locks one at a time
 * (eviction), then the key's partition exclusively to link the entry.
 */
QcSetResult
qc_store_set(const QcKey *key, const void *value, uint32 vallen,
			 const QcTags *tags, const QcSetInfo *info)
{
	TimestampTz now = info->now;
	TimestampTz expires = info->expires;
	uint32		bucket = qc_bucket_of(key->hash);
	uint32		h32 = (uint32) key->hash;
	int			partition = qc_partition_of_bucket(bucket);
	LWLock	   *lock = qc_partition_lock(partition);
	Size		tagbytes = 0;
	uint32		nslen = qc_namespace_len(key->data, key->len);
	int			nlinks = tags->ntags + (nslen > 0 ? 1 : 0) +
		(info->expires != 0 ? 1 : 0);
	Size		size;
	Size		head;
	Size		bytes;
	dsa_pointer dp;
	dsa_pointer tail = InvalidDsaPointer;
	dsa_pointer old = InvalidDsaPointer;
	QcRef	   *link;
	QcEntry    *e;
	char	   *p;
	int			i;

	for (i = 0; i < tags->ntags; i++)
		tagbytes += tags->len[i] + 1;
	Assert(tags->ntags <= QC_MAX_ENTRY_TAGS && tagbytes <= PG_UINT16_MAX);

	Assert(info->depbytes <= PG_UINT16_MAX && key->len <= PG_UINT16_MAX);
	size = sizeof(QcEntry) + sizeof(QcLink) * nlinks +
		sizeof(uint32) * tags->ntags +
		info->depbytes + key->len + vallen + tagbytes;
	if (vallen > (uint32) qc_max_entry_size || !AllocSizeIsValid(size))
	{
		qc_store_remove(key);
		return QC_SET_TOO_LARGE;
	}
	/* the build point must fit in build_age, exactly (never later) */
	if (info->build < now && now - info->build > (TimestampTz) PG_UINT32_MAX)
	{
		qc_store_remove(key);
		return QC_SET_TOO_OLD;
	}
	/* more than half the area can never be placed next to anything */
	if (size > qc_shared->dsa_size / 2)
	{
		qc_store_remove(key);
		return QC_SET_NO_MEMORY;
	}

	/* split in two chunks if the size classes would waste much (see above) */
	head = qc_split_head(size + sizeof(QcRef), size - vallen + sizeof(QcRef));
	if (head > 0)
	{
		size += sizeof(QcRef);
		bytes = qc_alloc_size(head) + qc_alloc_size(size - head);
	}
	else
		bytes = qc_alloc_size(size);

	if (!qc_reserve_entry(now))
	{
		qc_store_remove(key);
		return QC_SET_NO_MEMORY;
	}
	dp = qc_allocate(head > 0 ? head : size, now);
	if (DsaPointerIsValid(dp) && head > 0)
	{
		tail = qc_allocate(size - head, now);
		if (!DsaPointerIsValid(tail))
		{
			dsa_free(qc_dsa, dp);
			dp = InvalidDsaPointer;
		}
	}
	if (!DsaPointerIsValid(dp))
	{
		pg_atomic_sub_fetch_u32(&qc_shared->nentries, 1);
		qc_store_remove(key);
		return QC_SET_NO_MEMORY;
	}

	/* Build the entry completely before anyone can see it. */
	e = qc_entry(dp);
	e->next = 0;
	e->hash = h32;
	e->dbid = key->dbid;
	e->owner = info->owner;
	e->keylen = (uint16) key->len;
	e->vallen = vallen;
	e->tagbytes = (uint16) tagbytes;
	e->ntags = (uint8) tags->ntags;
	e->flags = info->flags | (nslen > 0 ? QC_ENTRY_NAMESPACE : 0) |
		(expires != 0 ? QC_ENTRY_TIMED : 0) | (head > 0 ? QC_ENTRY_SPLIT : 0);
	if (head > 0)
		*QcEntryTailRef(e) = qc_ref(tail);
	e->depbytes = (uint16) info->depbytes;
	e->created_lo = (uint32) now;
	e->created_hi = (int32) ((uint64) now >> 32);
	/* expires is now + a whole number of seconds (qc_expiry) */
	e->ttl = expires == 0 ? 0 :
		(uint32) Min((expires - now + USECS_PER_SEC - 1) / USECS_PER_SEC,
					 PG_UINT32_MAX);
	e->build_age = info->build >= now ? 0 : (uint32) (now - info->build);
	pg_atomic_init_u32(&e->clock, 0);	/* positioned when linked */
	pg_atomic_init_u32(&e->hits, 0);
	for (i = 0; i < tags->ntags; i++)
		QcEntryTagHashes(e)[i] = qc_hash_tag(tags->tag[i], tags->len[i]);
	if (info->depbytes > 0)
		memcpy(QcEntryDeps(e), info->deps, info->depbytes);
	memcpy(QcEntryKey(e), key->data, key->len);
	p = QcEntryTags(e);
	for (i = 0; i < tags->ntags; i++)
	{
		memcpy(p, tags->tag[i], tags->len[i]);
		p[tags->len[i]] = '\0';
		p += tags->len[i] + 1;
	}
	if (head > 0)
	{
		Size		inhead = head - (size - vallen);

		Assert(QcEntrySize(e) == size && qc_entry_prefix(e) == size - vallen);
		memcpy(QcEntryValue(e), value, inhead);
		memcpy(dsa_get_address(qc_dsa, tail), (const char *) value + inhead,
			   vallen - inhead);
	}
	else
		memcpy(QcEntryValue(e), value, vallen);
	pg_atomic_add_fetch_u64(&qc_shared->bytes_used, bytes);

	/* Link it, unlinking the entry it replaces. */
	LWLockAcquire(lock, LW_EXCLUSIVE);
	for (link = &qc_buckets[bucket]; *link != 0;)
	{
		QcEntry    *o = qc_entry(qc_ref_dp(*link));

		if (qc_entry_is_key(o, key, h32))
		{
			old = qc_unlink(partition, link);
			break;
		}
		link = &o->next;
	}
	/* last in its partition's FIFO, unreferenced until read */
	pg_atomic_write_u32(&e->clock, qc_next_position(partition));
	e->next = qc_buckets[bucket];
	qc_buckets[bucket] = qc_ref(dp);
	qc_index_link(dp, e);
	LWLockRelease(lock);

	if (DsaPointerIsValid(old))
		qc_free_entries(&old, 1);
	return QC_SET_STORED;
}

/*
 * Copy out the description of every entry of a database (not the values),
 * for qcache_entries.  Takes each partition lock in shared mode in turn.
 */
List *
qc_store_list(Oid dbid)
{
	List	   *result = NIL;
	uint32		b;

	for (b = 0; b < qc_shared->nbuckets; b++)
	{
		int			partition = qc_partition_of_bucket(b);
		dsa_pointer dp;

		if (b % (qc_shared->nbuckets / QC_NUM_PARTITIONS) == 0)
		{
			if (b > 0)
				LWLockRelease(qc_partition_lock(partition - 1));
			CHECK_FOR_INTERRUPTS();
			LWLockAcquire(qc_partition_lock(partition), LW_SHARED);
		}
		for (dp = qc_ref_dp(qc_buckets[b]); DsaPointerIsValid(dp);)
		{
			QcEntry    *e = qc_entry(dp);

			if (e->dbid == dbid && !qc_entry_killed(e))
			{
				QcEntryInfo *info = palloc(sizeof(QcEntryInfo));
				const char *t = QcEntryTags(e);
				int			i;

				const char *nul = memchr(QcEntryKey(e), '\0', e->keylen);
				uint32		klen = nul ? nul - QcEntryKey(e) : e->keylen;

				/* a role-scoped variant shows as its key */
				info->key = palloc(klen + 1);
				memcpy(info->key, QcEntryKey(e), klen);
				info->key[klen] = '\0';
				info->keylen = klen;
				info->owner = e->owner;
				info->ntags = e->ntags;
				info->tags = palloc(sizeof(char *) * Max(e->ntags, 1));
				for (i = 0; i < e->ntags; i++)
				{
					info->tags[i] = pstrdup(t);
					t += strlen(t) + 1;
				}
				info->size = qc_entry_bytes(e);
				info->created = QcEntryCreated(e);
				info->expires = QcEntryExpires(e);
				info->hits = pg_atomic_read_u32(&e->hits) & ~QC_HITS_KILLED;
				info->flags = e->flags;
				info->fresh = qc_entry_fresh(e);
				result = lappend(result, info);
			}
			dp = qc_ref_dp(e->next);
		}
	}
	LWLockRelease(qc_partition_lock(QC_NUM_PARTITIONS - 1));
	return result;
}
