/*-------------------------------------------------------------------------
 *
 * store.c
 *		The shared hash of cache entries: lookup, insert, removal, eviction.
 *
 * Design.  The index is a fixed array of nbuckets bucket heads (a power of
 * 2 no smaller than qcache.max_entries) in shared memory, split into
 * QC_NUM_PARTITIONS contiguous ranges, each guarded by its own LWLock; a
 * key's 64-bit hash (of the database oid and the key bytes) picks both its
 * bucket and, by the bucket's high bits, its partition.  Chains link
 * entries through dsa_pointers.  Each entry is one chunk of the DSA area
 * (see QcEntry in qcache.h) holding its header, key, value and tags, so an
 * entry costs one allocation and one free.
 *
 * Locking.  A reader takes its partition's lock in shared mode, walks the
 * chain, copies the value out into palloc'd memory and releases it:
 * readers never wait for each other, and no lock is global.  A writer
 * builds its entry completely before it takes the partition lock in
 * exclusive mode, and holds it only to swap chain pointers; the allocator
 * (which has its own locks) is never called under a partition lock, and
 * memory is freed only after the entry is unlinked and the lock released.
 * No function here holds two partition locks at once.  Bulk removals scan
 * a partition in shared mode first and retake it exclusively only when it
 * holds something to remove.
 *
 * Eviction.  nentries is reserved by compare-and-swap before an insert, so
 * the cache never holds more than max_entries.  When the count is at the
 * limit, or the DSA area cannot satisfy an allocation, the setter evicts,
 * CLOCK-style: a shared hand moves over the partitions; in the partition
 * under it, expired entries go first, then, oldest first and only as many
 * as needed, entries nobody read since the hand last passed there.  A read
 * entry gets a second chance, so keys in use survive and the cold ones go
 * (an approximate LRU); an entry starts unreferenced, so a burst of sets
 * that are never read cannot push out the keys that are.  Allocation retries escalate the amount to free,
 * because freed small chunks only return pages to the area when whole
 * superblocks empty, up to a cap, past which the value is not cached.  Expired entries are
 * never returned by a lookup, and the sweeper (worker.c) reclaims them
 * without waiting for a read.
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

/* 56 bytes: a 100-byte entry fits the allocator's 160-byte class. */
StaticAssertDecl(sizeof(QcEntry) == 56, "QcEntry must stay 56 bytes");

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

/* Does the entry carry this tag?  (hash first, then the bytes) */
static bool
qc_entry_has_tag(const QcEntry *e, const char *tag, uint32 len, uint32 h)
{
	const uint32 *hashes = QcEntryTagHashes(e);
	const char *p = QcEntryTags(e);
	int			i;

	for (i = 0; i < e->ntags; i++)
	{
		size_t		l = strlen(p);

		if (hashes[i] == h && l == len && memcmp(p, tag, len) == 0)
			return true;
		p += l + 1;
	}
	return false;
}

/* Account for entries leaving the cache, and free them.  No lock held. */
static void
qc_free_entries(dsa_pointer *dps, int n)
{
	uint64		bytes = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		bytes += qc_alloc_size(QcEntrySize(qc_entry(dps[i])));
		dsa_free(qc_dsa, dps[i]);
	}
	if (n > 0)
	{
		pg_atomic_sub_fetch_u64(&qc_shared->bytes_used, bytes);
		pg_atomic_sub_fetch_u32(&qc_shared->nentries, n);
	}
}

/*
 * Look a key up; on a hit copy its value into out->value (palloc'd in the
 * current memory context) and return true.  An expired entry, or one that
 * an invalidation made stale (qc_entry_fresh), is a miss.  Takes the key's partition lock
 * in shared mode; the caller must hold no qcache lock.
 */
bool
qc_store_get(const QcKey *key, TimestampTz now, QcValue *out)
{
	uint32		bucket = qc_bucket_of(key->hash);
	uint32		h32 = (uint32) key->hash;
	LWLock	   *lock = qc_partition_lock(qc_partition_of_bucket(bucket));
	dsa_pointer dp;
	bool		found = false;

	LWLockAcquire(lock, LW_SHARED);
	for (dp = qc_buckets[bucket]; DsaPointerIsValid(dp);)
	{
		QcEntry    *e = qc_entry(dp);

		if (qc_entry_is_key(e, key, h32))
		{
			if (!qc_entry_expired(e, now) && qc_entry_fresh(e))
			{
				out->value = palloc(e->vallen);
				memcpy(out->value, QcEntryValue(e), e->vallen);
				out->expires = QcEntryExpires(e);
				out->owner = e->owner;
				out->flags = e->flags;
				out->nrels = e->nrels;
				out->rels = NULL;
				if (e->nrels > 0)
				{
					out->rels = palloc(sizeof(Oid) * e->nrels);
					memcpy(out->rels, QcEntryRels(e), sizeof(Oid) * e->nrels);
				}
				/* set only when clear: hot keys stay read-mostly */
				if (!(pg_atomic_read_u32(&e->clock) & QC_REFERENCED))
					pg_atomic_fetch_or_u32(&e->clock, QC_REFERENCED);
				pg_atomic_fetch_add_u32(&e->hits, 1);
				found = true;
			}
			break;
		}
		dp = e->next;
	}
	LWLockRelease(lock);
	return found;
}

typedef bool (*QcMatchFn) (const QcEntry *e, const void *arg);

/* Victims unlinked per exclusive hold of a partition lock, at most. */
#define QC_UNLINK_BATCH			256

/*
 * Remove every entry of one partition that satisfies match().  A shared
 * pass looks for one first; only if there is one is the lock retaken
 * exclusively, to unlink up to QC_UNLINK_BATCH of them into a local array
 * (no allocation while entries are unlinked but not yet freed, so an error
 * cannot leak them).  They are freed after the lock is released, and the
 * exclusive pass repeats while a batch came back full.  Returns the number
 * removed.
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

		for (dp = qc_buckets[b]; DsaPointerIsValid(dp);)
		{
			QcEntry    *e = qc_entry(dp);

			if (match(e, arg))
			{
				any = true;
				break;
			}
			dp = e->next;
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
			dsa_pointer *link = &qc_buckets[b];

			while (DsaPointerIsValid(*link) && nout < QC_UNLINK_BATCH)
			{
				QcEntry    *e = qc_entry(*link);

				if (match(e, arg))
				{
					out[nout++] = *link;
					*link = e->next;
				}
				else
					link = &e->next;
			}
		}
		LWLockRelease(lock);
		qc_free_entries(out, nout);
		total += nout;
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
} QcMatchArg;

static bool
qc_match_tag(const QcEntry *e, const void *arg)
{
	const QcMatchArg *a = arg;

	return e->dbid == a->dbid && e->ntags > 0 &&
		qc_entry_has_tag(e, a->str, a->len, a->hash);
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
 * Remove every entry of a database that carries a tag, starts with a
 * prefix, or all of them; or every entry of every database.  Exact: returns the number removed.  Takes each
 * partition lock in turn, never two at once.
 */
uint64
qc_store_remove_matching(Oid dbid, QcMatchKind kind, const char *arg,
						 uint32 arglen)
{
	QcMatchArg	a;
	QcMatchFn	fn;
	uint64		n = 0;
	int			p;

	a.dbid = dbid;
	a.str = arg;
	a.len = arglen;
	a.hash = 0;
	switch (kind)
	{
		case QC_MATCH_TAG:
			a.hash = qc_hash_tag(arg, arglen);
			fn = qc_match_tag;
			break;
		case QC_MATCH_PREFIX:
			fn = qc_match_prefix;
			break;
		case QC_MATCH_EVERYTHING:
			fn = qc_match_any;
			break;
		case QC_MATCH_ALL:
		default:
			fn = qc_match_db;
			break;
	}

	for (p = 0; p < QC_NUM_PARTITIONS; p++)
	{
		CHECK_FOR_INTERRUPTS();
		n += qc_remove_in_partition(p, fn, &a);
	}
	return n;
}

/*
 * Remove the expired entries of one partition, if its next_expiry says it
 * may have some, and recompute next_expiry from the entries that stay.
 * Returns the number removed.  Takes the partition lock, shared to look at
 * next_expiry, exclusive to sweep; frees after releasing it.
 */
static int
qc_sweep_partition(int partition, TimestampTz now, bool dead_too)
{
	QcPartitionData *part = &qc_shared->partitions[partition].d;
	uint32		nper = qc_shared->nbuckets / QC_NUM_PARTITIONS;
	uint32		first = (uint32) partition * nper;
	dsa_pointer out[QC_UNLINK_BATCH];
	TimestampTz next;
	TimestampTz ne;
	int			total = 0;
	int			nout;
	uint32		b;

	LWLockAcquire(&part->lock, LW_SHARED);
	ne = part->next_expiry;
	if (dead_too && (ne == 0 || ne > now))
	{
		/* look for dead entries before taking the lock exclusively */
		bool		any = false;

		for (b = first; b < first + nper && !any; b++)
		{
			dsa_pointer dp;

			for (dp = qc_buckets[b]; DsaPointerIsValid(dp) && !any;)
			{
				QcEntry    *e = qc_entry(dp);

				any = qc_entry_dead(e);
				dp = e->next;
			}
		}
		if (any)
			ne = now;
	}
	LWLockRelease(&part->lock);
	if (ne == 0 || ne > now)
		return 0;

	do
	{
		nout = 0;
		next = 0;
		LWLockAcquire(&part->lock, LW_EXCLUSIVE);
		for (b = first; b < first + nper; b++)
		{
			dsa_pointer *link = &qc_buckets[b];

			while (DsaPointerIsValid(*link))
			{
				QcEntry    *e = qc_entry(*link);

				if ((qc_entry_expired(e, now) || (dead_too && qc_entry_dead(e))) &&
					nout < QC_UNLINK_BATCH)
				{
					out[nout++] = *link;
					*link = e->next;
					continue;
				}
				if (e->ttl != 0 && (next == 0 || QcEntryExpires(e) < next))
					next = QcEntryExpires(e);
				link = &e->next;
			}
		}
		part->next_expiry = next;
		LWLockRelease(&part->lock);
		qc_free_entries(out, nout);
		total += nout;
	} while (nout == QC_UNLINK_BATCH);

	return total;
}

/*
 * Remove every expired entry of every database, and every entry an
 * invalidation made stale for good.  Returns the number removed and counts
 * them as expired evictions.  The sweeper's work: it visits only the
 * partitions whose next_expiry has passed, unless an invalidation was
 * stamped since its last sweep, so a quiet cache costs it nothing.
 */
uint64
qc_store_sweep(TimestampTz now)
{
	static uint64 last_generation = 0;
	static TimestampTz last_dead_sweep = 0;
	uint64		generation = pg_atomic_read_u64(&qc_shared->stamp_generation);
	bool		dead_too;
	uint64		n = 0;
	int			p;

	/*
	 * Entries that an invalidation made stale are never served, so freeing
	 * them is only about memory, which eviction also reclaims on demand.  A
	 * look for them scans every entry: do it at most every
	 * QC_DEAD_SWEEP_INTERVAL_MS, so that a steady stream of invalidations
	 * (local writes, or other nodes' through Redis) does not make the sweeper
	 * scan the whole cache every second.
	 */
	dead_too = generation != last_generation &&
		now - last_dead_sweep >= (TimestampTz) QC_DEAD_SWEEP_INTERVAL_MS * 1000;
	if (dead_too)
	{
		last_generation = generation;
		last_dead_sweep = now;
	}
	for (p = 0; p < QC_NUM_PARTITIONS; p++)
	{
		CHECK_FOR_INTERRUPTS();
		n += qc_sweep_partition(p, now, dead_too);
	}
	if (n > 0)
		qc_count(QC_STAT_EVICTIONS_EXPIRED, n);
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
	LWLock	   *lock = qc_partition_lock(qc_partition_of_bucket(bucket));
	dsa_pointer *link;
	dsa_pointer victims[QC_UNLINK_BATCH];
	int			nvictims = 0;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	for (link = &qc_buckets[bucket]; DsaPointerIsValid(*link);)
	{
		QcEntry    *e = qc_entry(*link);

		if (qc_entry_is_key_or_variant(e, key, h32) &&
			nvictims < QC_UNLINK_BATCH)
		{
			victims[nvictims++] = *link;
			*link = e->next;
			continue;
		}
		link = &e->next;
	}
	LWLockRelease(lock);

	if (nvictims == 0)
		return false;
	qc_free_entries(victims, nvictims);
	return true;
}

/*
 * One eviction round, a CLOCK over partitions: take the partition under the
 * hand exclusively and unlink its expired and dead (invalidated) entries;
 * then, first in first out
 * and until `bytes` bytes and `entries` entries are freed (expired ones
 * count), its entries whose reference bit is clear.  The round clears the
 * bit of every entry it passes and moves it to the back of the FIFO: an
 * entry read between two passes of the hand gets a second chance, so a key
 * in use is never evicted, whatever the size of its partition.  At most
 * QC_EVICT_BATCH entries go by recency per round.  With by_size, the
 * largest unreferenced entries go first instead of the oldest: a large
 * allocation needs whole free pages, and freeing a large entry returns its
 * pages at once, where freeing small ones returns pages only when a whole
 * superblock empties.  The entries are freed
 * after the lock is released.  Returns the bytes freed; *nfreed gets the
 * number of entries.
 */
static uint64
qc_evict_round(TimestampTz now, uint64 bytes, int entries, bool by_size,
			   int *nfreed)
{
	int			partition;
	LWLock	   *lock;
	uint32		base;
	uint32		nper = qc_shared->nbuckets / QC_NUM_PARTITIONS;
	uint32		first;
	dsa_pointer victims[QC_EVICT_BATCH];
	uint32		ages[QC_EVICT_BATCH];
	int			nvictims = 0;
	dsa_pointer expired[QC_UNLINK_BATCH];
	int			nexpired = 0;
	uint64		freed = 0;
	uint32		b;
	int			i;

	partition = pg_atomic_fetch_add_u32(&qc_shared->evict_hand, 1) %
		QC_NUM_PARTITIONS;
	lock = qc_partition_lock(partition);
	first = (uint32) partition * nper;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	base = qc_shared->partitions[partition].d.clock;

	/* Pass 1: unlink expired entries; keep the oldest unused candidates. */
	for (b = first; b < first + nper; b++)
	{
		dsa_pointer *link = &qc_buckets[b];

		while (DsaPointerIsValid(*link))
		{
			QcEntry    *e = qc_entry(*link);

			if (qc_entry_expired(e, now) || qc_entry_dead(e))
			{
				/* the rest waits for the next round or the sweeper */
				if (nexpired < QC_UNLINK_BATCH)
				{
					freed += qc_alloc_size(QcEntrySize(e));
					expired[nexpired++] = *link;
					*link = e->next;
					continue;
				}
			}
			else
			{
				uint32		pos = pg_atomic_read_u32(&e->clock);

				if (pos & QC_REFERENCED)
				{
					/*
					 * Read since the hand last passed: second chance, at the
					 * back of the FIFO.  A reader setting the bit again at
					 * once only gives it one more chance.
					 */
					pg_atomic_write_u32(&e->clock, qc_next_position(partition));
				}
				else
				{
					uint32		age = by_size ? (uint32) QcEntrySize(e) :
					base - (pos >> 1);

					/* keep the QC_EVICT_BATCH oldest, oldest first */
					if (nvictims < QC_EVICT_BATCH || age > ages[nvictims - 1])
					{
						int			j = nvictims < QC_EVICT_BATCH ? nvictims++ : nvictims - 1;

						while (j > 0 && ages[j - 1] < age)
						{
							ages[j] = ages[j - 1];
							victims[j] = victims[j - 1];
							j--;
						}
						ages[j] = age;
						victims[j] = *link;
					}
				}
			}
			link = &e->next;
		}
	}

	/* Pass 2: unlink candidates, oldest first, until the need is met. */
	for (i = 0; i < nvictims; i++)
	{
		QcEntry    *v = qc_entry(victims[i]);
		dsa_pointer *link;

		if (freed >= bytes && nexpired + i >= entries)
			break;
		link = &qc_buckets[v->hash & (qc_shared->nbuckets - 1)];
		while (*link != victims[i])
			link = &qc_entry(*link)->next;
		*link = v->next;
		freed += qc_alloc_size(QcEntrySize(v));
	}
	nvictims = i;
	LWLockRelease(lock);

	qc_free_entries(expired, nexpired);
	qc_free_entries(victims, nvictims);
	if (nexpired > 0)
		qc_count(QC_STAT_EVICTIONS_EXPIRED, nexpired);
	if (nvictims > 0)
		qc_count(QC_STAT_EVICTIONS_MEMORY, nvictims);

	*nfreed = nexpired + nvictims;
	return freed;
}

/*
 * Evict until at least `bytes` bytes and `entries` entries have been freed,
 * or the hand has gone twice around the partitions without freeing
 * anything (the first pass may only clear reference bits).  Returns bytes
 * freed.
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
		if (++tries > 4)
			return false;
		(void) qc_evict(now, 0, 1, false);
	}
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

	for (;;)
	{
		dsa_pointer dp;
		uint64		freed;

		dp = dsa_allocate_extended(qc_dsa, size, DSA_ALLOC_NO_OOM);
		if (DsaPointerIsValid(dp))
			return dp;
		if (evicted >= cap)
			break;
		freed = qc_evict(now, Min(target, cap - evicted), 0,
						 size > QC_SMALL_ALLOC);
		if (freed == 0)
			break;				/* nothing left to evict */
		evicted += freed;
		target *= 2;
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
	LWLock	   *lock = qc_partition_lock(qc_partition_of_bucket(bucket));
	Size		tagbytes = 0;
	Size		size;
	dsa_pointer dp;
	dsa_pointer old = InvalidDsaPointer;
	dsa_pointer *link;
	QcPartitionData *part;
	QcEntry    *e;
	char	   *p;
	int			i;

	for (i = 0; i < tags->ntags; i++)
		tagbytes += tags->len[i] + 1;
	Assert(tags->ntags <= QC_MAX_ENTRY_TAGS && tagbytes <= PG_UINT16_MAX);

	Assert(info->nrels <= QC_MAX_RELS && key->len <= PG_UINT16_MAX);
	size = sizeof(QcEntry) + sizeof(uint32) * tags->ntags +
		sizeof(Oid) * info->nrels + key->len + vallen + tagbytes;
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

	if (!qc_reserve_entry(now))
	{
		qc_store_remove(key);
		return QC_SET_NO_MEMORY;
	}
	dp = qc_allocate(size, now);
	if (!DsaPointerIsValid(dp))
	{
		pg_atomic_sub_fetch_u32(&qc_shared->nentries, 1);
		qc_store_remove(key);
		return QC_SET_NO_MEMORY;
	}

	/* Build the entry completely before anyone can see it. */
	e = qc_entry(dp);
	e->next = InvalidDsaPointer;
	e->hash = h32;
	e->dbid = key->dbid;
	e->owner = info->owner;
	e->keylen = (uint16) key->len;
	e->vallen = vallen;
	e->tagbytes = (uint16) tagbytes;
	e->ntags = (uint8) tags->ntags;
	e->nrels = (uint8) info->nrels;
	e->flags = info->flags;
	e->pad = 0;
	e->created = now;
	/* expires is now + a whole number of seconds (qc_expiry) */
	e->ttl = expires == 0 ? 0 :
		(uint32) Min((expires - now + USECS_PER_SEC - 1) / USECS_PER_SEC,
					 PG_UINT32_MAX);
	e->build_age = info->build >= now ? 0 : (uint32) (now - info->build);
	pg_atomic_init_u32(&e->clock, 0);	/* positioned when linked */
	pg_atomic_init_u32(&e->hits, 0);
	for (i = 0; i < tags->ntags; i++)
		QcEntryTagHashes(e)[i] = qc_hash_tag(tags->tag[i], tags->len[i]);
	if (info->nrels > 0)
		memcpy(QcEntryRels(e), info->rels, sizeof(Oid) * info->nrels);
	memcpy(QcEntryKey(e), key->data, key->len);
	memcpy(QcEntryValue(e), value, vallen);
	p = QcEntryTags(e);
	for (i = 0; i < tags->ntags; i++)
	{
		memcpy(p, tags->tag[i], tags->len[i]);
		p[tags->len[i]] = '\0';
		p += tags->len[i] + 1;
	}
	pg_atomic_add_fetch_u64(&qc_shared->bytes_used, qc_alloc_size(size));

	/* Link it, unlinking the entry it replaces. */
	LWLockAcquire(lock, LW_EXCLUSIVE);
	for (link = &qc_buckets[bucket]; DsaPointerIsValid(*link);)
	{
		QcEntry    *o = qc_entry(*link);

		if (qc_entry_is_key(o, key, h32))
		{
			old = *link;
			*link = o->next;
			break;
		}
		link = &o->next;
	}
	/* last in its partition's FIFO, unreferenced until read */
	part = &qc_shared->partitions[qc_partition_of_bucket(bucket)].d;
	pg_atomic_write_u32(&e->clock, qc_next_position(qc_partition_of_bucket(bucket)));
	if (expires != 0 && (part->next_expiry == 0 || expires < part->next_expiry))
		part->next_expiry = expires;
	e->next = qc_buckets[bucket];
	qc_buckets[bucket] = dp;
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
		for (dp = qc_buckets[b]; DsaPointerIsValid(dp);)
		{
			QcEntry    *e = qc_entry(dp);

			if (e->dbid == dbid)
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
				info->size = qc_alloc_size(QcEntrySize(e));
				info->created = e->created;
				info->expires = QcEntryExpires(e);
				info->hits = pg_atomic_read_u32(&e->hits);
				result = lappend(result, info);
			}
			dp = e->next;
		}
	}
	LWLockRelease(qc_partition_lock(QC_NUM_PARTITIONS - 1));
	return result;
}
