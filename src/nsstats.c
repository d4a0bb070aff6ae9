/*-------------------------------------------------------------------------
 *
 * nsstats.c
 *		Per-namespace counters: hits, misses and sets of each key namespace
 *		(the part of a key before its first ':'), per database.
 *
 * Where the data lives.  A fixed table of QC_NS_SLOTS slots inside
 * qcache.memory (shmem.c reserves it), open addressing with at most
 * QC_NS_PROBES probes from the slot the (database, namespace) hash picks.
 * A slot is claimed by the first namespace that needs it and keeps it until
 * qcache_reset_stats; a namespace that finds no slot (the table is full to
 * its reserve, its probes are all taken, or the name is longer than
 * QC_NS_NAME_LEN - 1 bytes) counts into its database's "other" slot, which
 * may take the last QC_NS_RESERVE slots.  When even those are gone, the
 * shared overflow slot counts for everyone (shown as "other" in every
 * database).  So memory is fixed whatever the keys: the first namespaces
 * seen since the last reset have rows of their own, the rest are "other".
 *
 * Locking.
 * - A slot's `tag` word is atomic: 0 while free, else a hash of
 *   (database, namespace) that is never 0.  A claimer writes dbid, len and
 *   name first, then a write barrier, then the tag; a reader that sees the
 *   tag issues a read barrier before it compares the name, so it never
 *   compares a half-written name of a newly claimed slot.
 * - Claiming and freeing (reset) take `lock`, a spinlock held for a probe
 *   sequence of at most QC_NS_PROBES slots with a memcmp of at most
 *   QC_NS_NAME_LEN bytes each: no allocation, no error, no I/O under it.
 * - Counters are atomics that any backend adds to (pg_atomic_fetch_add);
 *   a slot is one cache line apart from its neighbours, so namespaces do
 *   not share lines.
 * - The hit path takes no lock: each backend remembers the slots of the
 *   namespaces it counted last, valid while `generation` (atomic, bumped
 *   by a reset under the lock) has not changed, so a hit costs a memchr
 *   for the ':', a memcmp, an atomic read and an atomic add; a namespace
 *   the backend has not seen costs a hash and a probe (usually one slot).
 *   The benchmark (bench/namespaces.sh) measures it.
 *
 * Correctness.  A reset that frees slots while a backend is between its
 * probe (or its cache check) and its add can make that backend add to a
 * slot that was just freed or just claimed by another namespace: the
 * figure is off by that one call.  Counters are statistics; nothing depends on them.  The
 * entries and bytes of a namespace are not counted here: qcache_namespaces
 * sums the current database's live entries when it is read (store.c's
 * qc_store_list), so they are exact and cost nothing on the hot path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "qcache.h"

PG_FUNCTION_INFO_V1(qcache_namespaces);

#define QC_NS_SLOTS		512		/* power of 2 */
#define QC_NS_PROBES	16
#define QC_NS_RESERVE	32		/* slots only "other" rows may take */
#define QC_NS_NAME_LEN	64		/* bytes, with the NUL */

typedef struct QcNsSlotData
{
	pg_atomic_uint64 tag;		/* 0: free */
	Oid			dbid;
	bool		other;			/* the database's "other" row */
	uint8		len;
	char		name[QC_NS_NAME_LEN];
	pg_atomic_uint64 c[QC_NS_NCOUNTERS];
} QcNsSlotData;

typedef union QcNsSlot
{
	QcNsSlotData d;
	char		pad[2 * PG_CACHE_LINE_SIZE];
} QcNsSlot;

StaticAssertDecl(sizeof(QcNsSlotData) <= 2 * PG_CACHE_LINE_SIZE,
				 "a namespace slot fits its padding");

typedef struct QcNsTable
{
	slock_t		lock;			/* claiming and freeing slots */
	int			used;			/* claimed slots; under lock */
	pg_atomic_uint32 generation;	/* bumped by every reset */
	QcNsSlot	overflow;		/* when even "other" finds no slot */
	QcNsSlot	slots[QC_NS_SLOTS];
} QcNsTable;

/* Bytes of the table. */
Size
qc_ns_size(void)
{
	return sizeof(QcNsTable);
}

static inline QcNsTable *
qc_ns_table(void)
{
	return (QcNsTable *) ((char *) qc_shared + qc_shared->ns_off);
}

/* Initialise a slot as free (or as the overflow slot). */
static void
qc_ns_slot_init(QcNsSlotData *s)
{
	int			j;

	pg_atomic_init_u64(&s->tag, 0);
	s->dbid = InvalidOid;
	s->other = false;
	s->len = 0;
	s->name[0] = '\0';
	for (j = 0; j < QC_NS_NCOUNTERS; j++)
		pg_atomic_init_u64(&s->c[j], 0);
}

/* Postmaster only, at shared memory creation. */
void
qc_ns_init(void)
{
	QcNsTable  *t = qc_ns_table();
	int			i;

	SpinLockInit(&t->lock);
	t->used = 0;
	pg_atomic_init_u32(&t->generation, 0);
	qc_ns_slot_init(&t->overflow.d);
	t->overflow.d.other = true;
	for (i = 0; i < QC_NS_SLOTS; i++)
		qc_ns_slot_init(&t->slots[i].d);
}

/*
 * The namespace of a key: the bytes before its first ':', and never past a
 * zero byte (a fetch result's variant key is the user's key, a zero byte
 * and a digest).  A key without ':' has the empty namespace.
 */
static inline uint32
qc_ns_len(const char *data, uint32 len)
{
	const char *colon = memchr(data, ':', len);
	const char *nul;
	uint32		n;

	if (colon == NULL)
	{
		/* "user" alone, or "user\0q..." of a fetch without a colon */
		return 0;
	}
	n = colon - data;
	nul = memchr(data, '\0', n);
	return nul ? 0 : n;
}

/* The tag word of (database, name); never 0. */
static inline uint64
qc_ns_tag(Oid dbid, const char *name, uint32 len, bool other)
{
	uint64		h = hash_bytes_extended((const unsigned char *) name, len,
										(uint64) dbid * 2 + (other ? 1 : 0));

	return h == 0 ? 1 : h;
}

static inline bool
qc_ns_match(QcNsSlotData *s, uint64 tag, Oid dbid, const char *name,
			uint32 len, bool other)
{
	if (pg_atomic_read_u64(&s->tag) != tag)
		return false;
	pg_read_barrier();
	return s->dbid == dbid && s->other == other && s->len == len &&
		memcmp(s->name, name, len) == 0;
}

/*
 * Find or claim the slot of (database, name).  NULL if it has none and
 * cannot get one.  Claiming takes the table's spinlock.
 */
static QcNsSlotData *
qc_ns_find(Oid dbid, const char *name, uint32 len, bool other)
{
	QcNsTable  *t = qc_ns_table();
	uint64		tag = qc_ns_tag(dbid, name, len, other);
	uint32		first = (uint32) tag & (QC_NS_SLOTS - 1);
	QcNsSlotData *found = NULL;
	int			i;

	/* lock-free: the slot is usually the first one probed */
	for (i = 0; i < QC_NS_PROBES; i++)
	{
		QcNsSlotData *s = &t->slots[(first + i) & (QC_NS_SLOTS - 1)].d;
		uint64		st = pg_atomic_read_u64(&s->tag);

		if (st == 0)
			break;
		if (st == tag && qc_ns_match(s, tag, dbid, name, len, other))
			return s;
	}

	/* claim one, unless another backend did meanwhile */
	SpinLockAcquire(&t->lock);
	if (t->used < QC_NS_SLOTS - (other ? 0 : QC_NS_RESERVE))
	{
		for (i = 0; i < QC_NS_PROBES; i++)
		{
			QcNsSlotData *s = &t->slots[(first + i) & (QC_NS_SLOTS - 1)].d;

			if (pg_atomic_read_u64(&s->tag) == 0)
			{
				s->dbid = dbid;
				s->other = other;
				s->len = len;
				memcpy(s->name, name, len);
				s->name[len] = '\0';
				pg_write_barrier();
				pg_atomic_write_u64(&s->tag, tag);
				t->used++;
				found = s;
				break;
			}
			if (qc_ns_match(s, tag, dbid, name, len, other))
			{
				found = s;
				break;
			}
		}
	}
	else
	{
		for (i = 0; i < QC_NS_PROBES; i++)
		{
			QcNsSlotData *s = &t->slots[(first + i) & (QC_NS_SLOTS - 1)].d;

			if (qc_ns_match(s, tag, dbid, name, len, other))
			{
				found = s;
				break;
			}
		}
	}
	SpinLockRelease(&t->lock);
	return found;
}

/*
 * Each backend remembers the slots of the namespaces it counted last (a
 * small direct-mapped cache, valid while the table's generation is the
 * one it was filled in), so that a hit costs a memcmp, not a hash and a
 * probe.  A slot stays a namespace's until a reset, which bumps the
 * generation.
 */
#define QC_NS_CACHE_SIZE 8		/* power of 2 */

typedef struct QcNsCached
{
	QcNsSlotData *slot;			/* NULL: empty */
	uint32		generation;
	Oid			dbid;
	uint8		len;
	char		name[QC_NS_NAME_LEN];
} QcNsCached;

static QcNsCached ns_cache[QC_NS_CACHE_SIZE];

/* Count one event of a key's namespace.  No lock on the usual path. */
void
qc_ns_count(const QcKey *key, QcNsCounter c)
{
	QcNsTable  *t = qc_ns_table();
	uint32		len = qc_ns_len(key->data, key->len);
	uint32		generation = pg_atomic_read_u32(&t->generation);
	QcNsCached *ce = NULL;
	QcNsSlotData *s = NULL;

	if (len < QC_NS_NAME_LEN)
	{
		ce = &ns_cache[(len + (len > 0 ? (uint8) key->data[0] +
							   (uint8) key->data[len - 1] : 0)) &
					   (QC_NS_CACHE_SIZE - 1)];
		if (ce->slot != NULL && ce->generation == generation &&
			ce->dbid == key->dbid && ce->len == len &&
			memcmp(ce->name, key->data, len) == 0)
		{
			pg_atomic_fetch_add_u64(&ce->slot->c[c], 1);
			return;
		}
		s = qc_ns_find(key->dbid, key->data, len, false);
	}
	if (s == NULL)
		s = qc_ns_find(key->dbid, "", 0, true);
	if (s == NULL)
		s = &t->overflow.d;
	if (ce != NULL)
	{
		ce->slot = s;
		ce->generation = generation;
		ce->dbid = key->dbid;
		ce->len = len;
		memcpy(ce->name, key->data, len);
	}
	pg_atomic_fetch_add_u64(&s->c[c], 1);
}

/* qcache_reset_stats: free every slot and zero the overflow. */
void
qc_ns_reset(void)
{
	QcNsTable  *t = qc_ns_table();
	int			i,
				j;

	SpinLockAcquire(&t->lock);
	for (i = 0; i < QC_NS_SLOTS; i++)
	{
		QcNsSlotData *s = &t->slots[i].d;

		pg_atomic_write_u64(&s->tag, 0);
		for (j = 0; j < QC_NS_NCOUNTERS; j++)
			pg_atomic_write_u64(&s->c[j], 0);
	}
	for (j = 0; j < QC_NS_NCOUNTERS; j++)
		pg_atomic_write_u64(&t->overflow.d.c[j], 0);
	t->used = 0;
	pg_atomic_fetch_add_u32(&t->generation, 1);
	SpinLockRelease(&t->lock);
}

/* A row of qcache_namespaces while it is built (backend-local hash). */
typedef struct QcNsRow
{
	char		name[QC_NS_NAME_LEN + 1];	/* hash key; "\001" for other */
	uint64		c[QC_NS_NCOUNTERS];
	int64		entries;
	int64		bytes;
} QcNsRow;

#define QC_NS_OTHER_KEY "\001"

/*
 * qcache_namespaces(): database, namespace, hits, misses, hit_ratio, sets,
 * entries, bytes of the current database; the "other" row has a NULL
 * namespace.  Only the current database: another database's namespaces
 * are part of its keys, which it alone may see.
 */
Datum
qcache_namespaces(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	QcNsTable  *t;
	HASHCTL		ctl;
	HTAB	   *rows;
	HASH_SEQ_STATUS seq;
	QcNsRow    *row;
	List	   *entries;
	ListCell   *lc;
	char	   *dbname;
	bool		found;
	int			i,
				j;

	qc_require_loaded();
	InitMaterializedSRF(fcinfo, 0);
	t = qc_ns_table();
	dbname = get_database_name(MyDatabaseId);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = QC_NS_NAME_LEN + 1;
	ctl.entrysize = sizeof(QcNsRow);
	ctl.hcxt = CurrentMemoryContext;
	rows = hash_create("qcache namespaces", 64, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	/* the counters: a copy of every slot of this database */
	for (i = -1; i < QC_NS_SLOTS; i++)
	{
		QcNsSlotData *s = i < 0 ? &t->overflow.d : &t->slots[i].d;
		char		name[QC_NS_NAME_LEN + 1];
		uint64		c[QC_NS_NCOUNTERS];
		bool		other;

		if (i >= 0)
		{
			bool		mine;

			/* copy under the lock: a claim may be rewriting the name */
			SpinLockAcquire(&t->lock);
			mine = pg_atomic_read_u64(&s->tag) != 0 && s->dbid == MyDatabaseId;
			other = s->other;
			if (mine)
				memcpy(name, s->name, QC_NS_NAME_LEN);
			SpinLockRelease(&t->lock);
			if (!mine)
				continue;
		}
		else
			other = true;
		for (j = 0; j < QC_NS_NCOUNTERS; j++)
			c[j] = pg_atomic_read_u64(&s->c[j]);
		if (i < 0 && c[QC_NS_HITS] + c[QC_NS_MISSES] + c[QC_NS_SETS] == 0)
			continue;
		if (other)
			strcpy(name, QC_NS_OTHER_KEY);
		name[QC_NS_NAME_LEN] = '\0';
		row = hash_search(rows, name, HASH_ENTER, &found);
		if (!found)
		{
			memset(row->c, 0, sizeof(row->c));
			row->entries = row->bytes = 0;
		}
		for (j = 0; j < QC_NS_NCOUNTERS; j++)
			row->c[j] += c[j];
	}

	/* the entries: what lives now, by namespace */
	entries = qc_store_list(MyDatabaseId);
	foreach(lc, entries)
	{
		QcEntryInfo *info = lfirst(lc);
		uint32		len = qc_ns_len(info->key, info->keylen);
		char		name[QC_NS_NAME_LEN + 1];

		if (len < QC_NS_NAME_LEN)
		{
			memcpy(name, info->key, len);
			name[len] = '\0';
			row = hash_search(rows, name, HASH_FIND, NULL);
		}
		else
			row = NULL;
		if (row == NULL)
		{
			row = hash_search(rows, QC_NS_OTHER_KEY, HASH_ENTER, &found);
			if (!found)
			{
				memset(row->c, 0, sizeof(row->c));
				row->entries = row->bytes = 0;
			}
		}
		row->entries++;
		row->bytes += info->size;
	}

	hash_seq_init(&seq, rows);
	while ((row = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[8];
		bool		nulls[8];
		uint64		lookups = row->c[QC_NS_HITS] + row->c[QC_NS_MISSES];

		memset(nulls, 0, sizeof(nulls));
		if (dbname == NULL)
			nulls[0] = true;
		else
			values[0] = DirectFunctionCall1(namein, CStringGetDatum(dbname));
		if (strcmp(row->name, QC_NS_OTHER_KEY) == 0)
			nulls[1] = true;
		else
			values[1] = CStringGetTextDatum(row->name);
		values[2] = Int64GetDatum(row->c[QC_NS_HITS]);
		values[3] = Int64GetDatum(row->c[QC_NS_MISSES]);
		if (lookups > 0)
			values[4] = Float8GetDatum((double) row->c[QC_NS_HITS] / lookups);
		else
			nulls[4] = true;
		values[5] = Int64GetDatum(row->c[QC_NS_SETS]);
		values[6] = Int64GetDatum(row->entries);
		values[7] = Int64GetDatum(row->bytes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}
