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
 *   checks it.  qcache_clear stamps it, and so does a TRUNCATE whose
 *   templates have columns (it cannot know which values the rows had).
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
 * PREPARE TRANSACTION with pending tags is refused (the commit would happen
 * in another session, out of reach of this backend's callback).
 *
 * The clock: stamps and build points are both GetCurrentTimestamp() of the
 * same machine.  The argument assumes the system clock does not step
 * backwards (slewing is fine).
 *
 * Entries that become stale are not removed at commit (that would cost the
 * writer a scan of the cache); reads skip them, and eviction and the
 * sweeper free them like expired ones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "qcache.h"

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
static bool snapshot_imported = false;	/* SET TRANSACTION SNAPSHOT ran */

/* With a Redis level: the pending tag strings, NUL-separated, deduplicated */
static HTAB *l2_seen = NULL;
static StringInfo l2_tags = NULL;
static int	l2_ntags = 0;
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
	if (pending_count > 0)
		memset(pending, 0, sizeof(uint64) * pending_size);
	pending_count = 0;
	pending_marked = false;
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
			qc_slot_stamp(qc_slot_of(qc_pending_db(pending[i]),
									 (uint32) pending[i]), stamp);
	pg_atomic_fetch_add_u64(&qc_shared->stamp_generation, 1);
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
	if (pending_count == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			qc_pending_mark(+1);
			pending_marked = true;
			break;
		case XACT_EVENT_COMMIT:
			{
				TimestampTz stamp = GetCurrentTimestamp();

				qc_pending_stamp(stamp);
				if (pending_marked)
					qc_pending_mark(-1);
				/* then Redis and the other nodes; bounded, never raises */
				if (qc_l2_active() && l2_db != NULL)
					qc_l2_commit(l2_db, l2_tags ? l2_tags->data : NULL,
								 l2_tags ? l2_tags->len : 0, l2_ntags,
								 qc_pending_contains(qc_pending_key(MyDatabaseId, 0)),
								 stamp);
				qc_pending_reset();
				break;
			}
		case XACT_EVENT_ABORT:
			if (pending_marked)
				qc_pending_mark(-1);
			qc_pending_reset();
			break;
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that invalidated qcache tags"),
					 errdetail("qcache applies invalidations when the transaction that made them commits in the same session.")));
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

/* Is a slot in flight or stamped at or after `build`? */
static inline bool
qc_slot_stale(QcTagSlot *slot, TimestampTz build, bool inflight_counts)
{
	if (inflight_counts)
	{
		if (pg_atomic_read_u32(&slot->inflight) > 0)
			return true;

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
	for (i = 0; i < e->ntags; i++)
		if (qc_slot_stale(qc_slot_of(e->dbid, hashes[i]), QcEntryBuild(e), false))
			return true;
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

/*
 * Invalidate a tag string at commit.  With a Redis level, also remember
 * the string itself (once), for the stamps in Redis and the message to the
 * other nodes (qc_l2_commit).
 */
static void
qc_inval_tag_string_at_commit(const char *tag)
{
	size_t		len = strlen(tag);

	qc_inval_tag_at_commit(MyDatabaseId, qc_hash_tag(tag, len));
	if (!qc_l2_active())
		return;
	if (l2_db == NULL)
		l2_db = qc_l2_dbname();
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

/* Parsed templates of one trigger, cached in fn_extra. */
typedef struct QcTriggerCache
{
	Oid			tgoid;
	Oid			relid;
	int			ntemplates;
	QcTemplate *templates;
} QcTriggerCache;

/*
 * qcache_invalidate_trigger(template, ...): a row or statement trigger for
 * INSERT, UPDATE, DELETE and TRUNCATE that invalidates the expanded tags
 * when the transaction commits.  No arguments: the table's own tag.
 */
Datum
qcache_invalidate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	Trigger    *tg;
	Relation	rel;
	QcTriggerCache *cache;
	bool		row;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("qcache_invalidate_trigger: not called by trigger manager")));
	qc_require_loaded();
	td = (TriggerData *) fcinfo->context;
	tg = td->tg_trigger;
	rel = td->tg_relation;
	row = TRIGGER_FIRED_FOR_ROW(td->tg_event);

	if (tg->tgnargs == 0)
	{
		char	   *tag = qc_table_tag(RelationGetRelid(rel));

		if (tag)
			qc_inval_tag_string_at_commit(tag);
	}
	else
	{
		cache = (QcTriggerCache *) fcinfo->flinfo->fn_extra;
		if (cache == NULL || cache->tgoid != tg->tgoid ||
			cache->relid != RelationGetRelid(rel))
		{
			MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

			cache = palloc(sizeof(QcTriggerCache));
			cache->tgoid = tg->tgoid;
			cache->relid = RelationGetRelid(rel);
			cache->ntemplates = tg->tgnargs;
			cache->templates = palloc(sizeof(QcTemplate) * tg->tgnargs);
			for (i = 0; i < tg->tgnargs; i++)
				qc_parse_template(tg->tgargs[i], rel, &cache->templates[i]);
			MemoryContextSwitchTo(old);
			fcinfo->flinfo->fn_extra = cache;
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
			else if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
			{
				/* the rows are gone unseen: every entry of the database */
				qc_inval_tag_at_commit(MyDatabaseId, 0);
				if (qc_l2_active() && l2_db == NULL)
					l2_db = qc_l2_dbname();
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
						 errmsg("qcache tag template \"%s\" needs a row-level trigger",
								tg->tgargs[i]),
						 errdetail("A statement-level trigger can expand only templates without columns, except on TRUNCATE."),
						 errhint("Create the trigger FOR EACH ROW, or use qcache_watch.")));
		}
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
