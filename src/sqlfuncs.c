/*-------------------------------------------------------------------------
 *
 * sqlfuncs.c
 *		The SQL-callable functions of qcache, except qcache_fetch.
 *
 * This file checks arguments and turns them into store calls; store.c knows
 * nothing of fmgr.  Argument errors carry their SQLSTATE: a NULL key, value
 * or tag is 22004 (null_value_not_allowed), a negative ttl 22023
 * (invalid_parameter_value), a multi-dimensional tags array 2202E
 * (array_subscript_error), a key or tag past its limit 54000
 * (program_limit_exceeded).  Functions that only read are STRICT and answer
 * NULL to a NULL key.  A value that cannot be cached is not an error:
 * qcache_set returns false and counts it (SPEC section 4).
 *
 * Every key is scoped to MyDatabaseId.  qcache_entries shows keys and tags
 * only to roles that could have stored them (the entry's owner, its members)
 * and to members of pg_read_all_stats, as pg_stat_statements does for query
 * texts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "common/pg_prng.h"

#include "qcache.h"
#include "sqlfuncs.h"

PG_FUNCTION_INFO_V1(qcache_get);
PG_FUNCTION_INFO_V1(qcache_set);
PG_FUNCTION_INFO_V1(qcache_invalidate);
PG_FUNCTION_INFO_V1(qcache_invalidate_tag);
PG_FUNCTION_INFO_V1(qcache_invalidate_prefix);
PG_FUNCTION_INFO_V1(qcache_clear);
PG_FUNCTION_INFO_V1(qcache_stats);
PG_FUNCTION_INFO_V1(qcache_entries);
PG_FUNCTION_INFO_V1(qcache_reset_stats);
PG_FUNCTION_INFO_V1(qcache_lease);
PG_FUNCTION_INFO_V1(qcache_preloaded);

/* Raise the error for a NULL argument that must not be NULL. */
void
qc_null_arg_error(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", what)));
}

/* Build a QcKey from a text argument of the current database. */
void
qc_key_from_text(text *t, QcKey *key)
{
	key->dbid = MyDatabaseId;
	key->data = VARDATA_ANY(t);
	key->len = VARSIZE_ANY_EXHDR(t);
	if (key->len > QC_MAX_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cache key is too long"),
				 errdetail("The key is %u bytes; the limit is %d bytes.",
						   key->len, QC_MAX_KEY_LEN)));
	key->hash = qc_hash_key(key->dbid, key->data, key->len);
}

/*
 * Decode a text[] of tags (NULL: none) into tags, checking the limits.
 * The strings point into palloc'd copies.
 */
void
qc_tags_from_array(ArrayType *arr, QcTags *tags)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	tags->ntags = 0;
	tags->tag = NULL;
	tags->len = NULL;
	if (arr == NULL)
		return;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tags array must be one-dimensional")));
	if (ARR_NDIM(arr) == 0)
		return;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n > QC_MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many tags"),
				 errdetail("The entry has %d tags; the limit is %d.",
						   n, QC_MAX_TAGS)));

	tags->tag = palloc(sizeof(char *) * n);
	tags->len = palloc(sizeof(uint32) * n);
	for (i = 0; i < n; i++)
	{
		text	   *t;
		uint32		len;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tags array must not contain nulls")));
		t = DatumGetTextPP(elems[i]);
		len = VARSIZE_ANY_EXHDR(t);
		if (len > QC_MAX_TAG_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("cache tag is too long"),
					 errdetail("The tag is %u bytes; the limit is %d bytes.",
							   len, QC_MAX_TAG_LEN)));
		if (memchr(VARDATA_ANY(t), '\0', len) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
					 errmsg("cache tag must not contain a zero byte")));
		if (qc_tag_is_internal(VARDATA_ANY(t), len))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cache tag must not start with byte 0x01"),
					 errdetail("Tags that start with byte 0x01 are qcache's own.")));
		tags->tag[i] = text_to_cstring(t);
		tags->len[i] = len;
	}
	tags->ntags = n;
}

/* The expiry time for a ttl argument (NULL: qcache.default_ttl). */
TimestampTz
qc_expiry(bool ttl_isnull, int32 ttl, TimestampTz now)
{
	if (ttl_isnull)
		ttl = qc_default_ttl;
	else if (ttl < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must not be negative"),
				 errdetail("The ttl is %d.", ttl),
				 errhint("Use 0 for an entry that does not expire.")));
	if (ttl == 0)
		return 0;
	return now + (TimestampTz) ttl * USECS_PER_SEC;
}

/*
 * The Redis calls of the SQL functions, guarded: if an interrupt (cancel,
 * statement_timeout) ends one in the middle, the write or invalidation
 * is owed (the key, or the whole database for a bulk invalidation), so
 * that the worker makes up for it before L2 serves again
 * (redis_worker.c), and the error goes on.
 */
static QcL2SetResult
qc_l2_set_guarded(const QcKey *key, const char *json, const QcTags *tags,
				  int64 ttl_ms, TimestampTz build, const char *x)
{
	volatile QcL2SetResult r = QC_L2_FAILED;

	PG_TRY();
	{
		r = qc_l2_set(key, json, tags, ttl_ms, build, x);
	}
	PG_CATCH();
	{
		qc_l2_lost_write(key);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return r;
}

static bool
qc_l2_invalidate_key_guarded(const QcKey *key)
{
	volatile bool r = false;

	PG_TRY();
	{
		r = qc_l2_invalidate_key(key);
	}
	PG_CATCH();
	{
		qc_l2_lost_write(key);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return r;
}

static void
qc_l2_invalidate_guarded(QcMatchKind kind, const char *str, uint32 len,
						 TimestampTz stamp)
{
	PG_TRY();
	{
		if (kind == QC_MATCH_TAG)
			qc_l2_invalidate_tag(str, len, stamp);
		else if (kind == QC_MATCH_PREFIX)
			(void) qc_l2_invalidate_prefix(str, len);
		else
			qc_l2_clear(stamp);
	}
	PG_CATCH();
	{
		qc_l2_lost_write(NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Look a key up in L1, then in Redis, counting the hit or miss (and the
 * L2 hit or miss).  A Redis hit is copied into L1 with its build point,
 * tags and remaining TTL (capped by qcache.l1_ttl).  Returns the palloc'd
 * jsonb or NULL.
 */
Jsonb *
qc_lookup(const QcKey *key)
{
	QcValue		v;
	QcL2Value	lv;
	Jsonb	   *value;
	uint64		removals;

	if (!qc_enabled)
	{
		qc_count(QC_STAT_MISSES, 1);
		qc_ns_count(key, QC_NS_MISSES);
		return NULL;
	}
	if (qc_store_get(key, GetCurrentTimestamp(), &v))
	{
		qc_count(QC_STAT_HITS, 1);
		qc_ns_count(key, QC_NS_HITS);
		return qc_value_jsonb(&v);
	}
	qc_count(QC_STAT_MISSES, 1);
	qc_ns_count(key, QC_NS_MISSES);
	if (!qc_l2_usable())
		return NULL;
	removals = pg_atomic_read_u64(&qc_shared->l2_removals);
	if (!qc_l2_get(key, &lv))
		return NULL;
	value = qc_l2_json_to_jsonb(lv.json, lv.len);
	if (value != NULL &&
		pg_atomic_read_u64(&qc_shared->l2_removals) == removals)
		qc_store_l2_copy_checked(key, value, &lv, removals);
	return value;
}

/* A value looked up in L1, as jsonb (JSON text entries are parsed). */
Jsonb *
qc_value_jsonb(const QcValue *v)
{
	if (v->flags & QC_ENTRY_JSON_TEXT)
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												  CStringGetDatum(text_to_cstring(v->value))));
	return (Jsonb *) v->value;
}

/* A value looked up in L1, as JSON text (jsonb entries are printed). */
text *
qc_value_text(const QcValue *v)
{
	Jsonb	   *j;

	if (v->flags & QC_ENTRY_JSON_TEXT)
		return (text *) v->value;
	j = (Jsonb *) v->value;
	return cstring_to_text(JsonbToCString(NULL, &j->root, VARSIZE(j)));
}

/*
 * Copy a value read from Redis into L1, unless the worker removed
 * something from L1 since `removals` was read (before the Redis call).  The
 * worker bumps the counter before each removal; we look at it again after
 * the copy is in: if it moved, the removal may have run before our insert
 * and missed it, so the copy goes; if not, any later removal comes after
 * the insert and finds it.
 */
void
qc_store_l2_copy_checked(const QcKey *key, Jsonb *value, const QcL2Value *lv,
						 uint64 removals)
{
	/* a test's window between the first check (the caller's) and the copy */
	if (qc_debug_l2_copy_delay > 0)
		pg_usleep((long) qc_debug_l2_copy_delay * 1000L);
	qc_store_l2_copy(key, value, lv);
	pg_memory_barrier();
	if (pg_atomic_read_u64(&qc_shared->l2_removals) != removals)
		(void) qc_store_remove(key);
}

/* Copy a value read from Redis into L1. */
void
qc_store_l2_copy(const QcKey *key, Jsonb *value, const QcL2Value *lv)
{
	QcSetInfo	info;

	memset(&info, 0, sizeof(info));
	info.now = GetCurrentTimestamp();
	info.expires = lv->pttl_ms > 0 ?
		info.now + (TimestampTz) lv->pttl_ms * 1000 : 0;
	info.build = lv->build;
	info.owner = GetUserId();
	info.from_l2 = true;
	(void) qc_store(key, (struct varlena *) value, &lv->tags, &info);
}

/*
 * Why a set stored nothing, for the DEBUG1 message; indexed by
 * reason - QC_STAT_REFUSED_TOO_LARGE.
 */
static const char *const qc_refusal_text[] = {
	"The value is larger than qcache.max_entry_size.",
	"There was no room for it even after eviction.",
	"This transaction has written to a watched table (or imported its snapshot), so what it computes may hold uncommitted writes.",
	"An invalidation of one of its tags committed, or is committing, after this transaction started.",
	"The transaction that computed it started more than 71 minutes ago.",
	"Redis refused it as stale, or did not take it while qcache.l1_ttl is 0.",
	"This server is a hot standby that does not hear the primary's invalidations (qcache.wal_invalidation is off there, or this standby has not yet replayed its state record since it started, or the value was built before that).",
	"The query result cannot be cached.",
	"qcache.enabled is off.",
};

StaticAssertDecl(lengthof(qc_refusal_text) ==
				 QC_STAT_REFUSED_DISABLED - QC_STAT_REFUSED_TOO_LARGE + 1,
				 "a text for every refusal reason");

/*
 * Count a set that stored nothing, under its reason (and in sets_rejected,
 * unless qcache is disabled), say why at DEBUG1, and return false.
 */
static bool
qc_refuse(const QcKey *key, QcCounter why)
{
	if (why != QC_STAT_REFUSED_DISABLED)
		qc_count(QC_STAT_SETS_REJECTED, 1);
	qc_count(why, 1);
	ereport(DEBUG1,
			(errmsg("qcache did not store key \"%.*s\"",
					(int) strnlen(key->data, key->len), key->data),
			 errdetail("%s", qc_refusal_text[why - QC_STAT_REFUSED_TOO_LARGE])));
	return false;
}

/*
 * Store a value, counting the set or the rejection.  With qcache.enabled
 * off nothing is stored, but the key's previous entry is still removed.
 * info->build of 0 means the start of the current transaction; a value
 * built before an invalidation of one of its tags is refused
 * (invalidate.c), and so is any value stored by a transaction with
 * invalidations pending: it may reflect its own uncommitted writes.
 *
 * With a Redis level the value also goes to Redis, with its full TTL,
 * unless it came from there or is scoped to a role; in L1 its life is
 * capped by qcache.l1_ttl, and qcache.l1_ttl = 0 keeps nothing in L1
 * while Redis answers.  It counts as stored if either level took it.
 */
bool
qc_store(const QcKey *key, struct varlena *value, const QcTags *tags,
		 QcSetInfo *info)
{
	QcSetInfo	l1;
	QcSetResult res;
	bool		l2_stored = false;
	bool		l2_only = false;
	QcTags		all_tags;
	QcTags		l2_buf;
	const QcTags *l2_tags;

	if (!qc_enabled)
	{
		qc_store_remove(key);
		return qc_refuse(key, QC_STAT_REFUSED_DISABLED);
	}
	if (info->build == 0)
		info->build = GetCurrentTransactionStartTimestamp();
	/* qcache.ttl_jitter: a random part off the TTL, never onto it */
	if (qc_ttl_jitter > 0 && info->expires > info->now && !info->from_l2)
		info->expires -= (TimestampTz)
			((double) (info->expires - info->now) * qc_ttl_jitter / 100.0 *
			 pg_prng_double(&pg_global_prng_state));

	/*
	 * The entry also carries the families of its tags, which a TRUNCATE
	 * invalidates (invalidate.c); Redis gets the tags that are not
	 * node-internal.
	 */
	if (!qc_tags_with_families(tags, &all_tags))
	{
		qc_store_remove(key);
		return qc_refuse(key, QC_STAT_REFUSED_UNCACHEABLE);
	}
	l2_tags = qc_tags_public(tags, &l2_buf);
	tags = &all_tags;

	/*
	 * On a hot standby a value with tags, or a qcache_fetch result, computed
	 * here is stored only while the primary writes its invalidations to the
	 * WAL (qcache.wal_invalidation) and this standby has heard them since
	 * before the value's build point (walinval.c); it is marked so that it
	 * dies if they stop.  Copies of values computed on a primary (from
	 * Redis) are checked as on any node.
	 */
	if (!info->from_l2 && (tags->ntags > 0 || (info->flags & QC_ENTRY_FETCH)) &&
		RecoveryInProgress())
	{
		if (!qc_wal_standby_may_store(info->build))
			return qc_refuse(key, QC_STAT_REFUSED_STANDBY);
		info->flags |= QC_ENTRY_STANDBY;
	}
	if (!qc_set_allowed(key->dbid, tags, info->build) &&
		!(qc_inval_help_standby() &&
		  qc_set_allowed(key->dbid, tags, info->build)))
	{
		qc_store_remove(key);
		return qc_refuse(key, qc_inval_is_writer() ?
						 QC_STAT_REFUSED_WRITER : QC_STAT_REFUSED_STALE);
	}
	l1 = *info;
	if (qc_l2_active())
	{
		TimestampTz cap = info->now + (TimestampTz) qc_l1_ttl * USECS_PER_SEC;

		if (l1.expires == 0 || l1.expires > cap)
			l1.expires = cap;
	}

	/*
	 * Redis first: if it knows of an invalidation after this value's build
	 * point (one this node's slots have not heard of), nobody keeps it.  A
	 * qcache_fetch result goes only if fetch.c named it for Redis
	 * (l2_key), under that name, with its tags and x field.
	 */
	if (qc_l2_active() && !info->from_l2 &&
		!(info->flags & QC_ENTRY_STANDBY) &&
		(!(info->flags & (QC_ENTRY_ROLE_SCOPED | QC_ENTRY_FETCH)) ||
		 info->l2_key != NULL) &&
		VARSIZE_ANY_EXHDR(value) <= (Size) qc_max_entry_size)
	{
		int64		ttl_ms = 0;
		char	   *json;
		QcL2SetResult l2;

		if (info->expires != 0)
			ttl_ms = Max((info->expires - info->now) / 1000, 1);
		if (info->flags & QC_ENTRY_JSON_TEXT)
			json = text_to_cstring((text *) value);
		else
			json = JsonbToCString(NULL, &((Jsonb *) value)->root,
								  VARSIZE(value));
		if (info->l2_key != NULL)
			l2 = qc_l2_set_guarded(info->l2_key, json, info->l2_tags, ttl_ms,
								   info->build, info->l2_x);
		else
			l2 = qc_l2_set_guarded(key, json, l2_tags, ttl_ms, info->build,
								   NULL);
		if (l2 == QC_L2_STALE)
		{
			qc_store_remove(key);
			return qc_refuse(key, QC_STAT_REFUSED_REDIS);
		}
		l2_stored = (l2 == QC_L2_STORED);
	}

	if (qc_l2_active() && qc_l1_ttl == 0 && qc_l2_usable())
	{
		/* no life in L1: Redis only, while it answers */
		qc_store_remove(key);
		res = QC_SET_NO_MEMORY;
		l2_only = true;
		if (info->from_l2)
			return false;
	}
	else
		res = qc_store_set(key, value, VARSIZE(value), tags, &l1);
	if (res == QC_SET_STORED || l2_stored)
	{
		qc_count(QC_STAT_SETS, 1);
		qc_ns_count(key, QC_NS_SETS);
		return true;
	}
	if (l2_only)
		return qc_refuse(key, QC_STAT_REFUSED_REDIS);
	return qc_refuse(key, res == QC_SET_TOO_LARGE ? QC_STAT_REFUSED_TOO_LARGE :
					 res == QC_SET_TOO_OLD ? QC_STAT_REFUSED_TOO_OLD :
					 QC_STAT_REFUSED_NO_MEMORY);
}

/* qcache_get(key text) returns jsonb; STRICT */
Datum
qcache_get(PG_FUNCTION_ARGS)
{
	QcKey		key;
	Jsonb	   *v;

	qc_require_loaded();
	qc_key_from_text(PG_GETARG_TEXT_PP(0), &key);
	v = qc_lookup(&key);
	if (v == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(v);
}

/* qcache_set(key text, value jsonb, ttl int, tags text[]) returns boolean */
Datum
qcache_set(PG_FUNCTION_ARGS)
{
	QcKey		key;
	QcTags		tags;
	QcSetInfo	info;

	qc_require_loaded();
	if (PG_ARGISNULL(0))
		qc_null_arg_error("cache key");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("cache value must not be null"),
				 errhint("Store the JSON value 'null'::jsonb to cache an empty result.")));
	qc_key_from_text(PG_GETARG_TEXT_PP(0), &key);
	memset(&info, 0, sizeof(info));
	info.now = GetCurrentTimestamp();
	info.expires = qc_expiry(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), info.now);
	info.owner = GetUserId();
	qc_tags_from_array(PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3), &tags);

	/*
	 * 1.3: a lease token from qcache_lease is the value's build point: it
	 * was computed after the token was granted, so a write that committed
	 * an invalidation of one of its tags after that makes the set refuse.
	 */
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		TimestampTz token = PG_GETARG_INT64(4);
		bool		stored;

		if (token <= 0 || token > info.now ||
			info.now - token > (TimestampTz) PG_UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lease token is not valid"),
					 errdetail("The token is %lld; a token is what qcache_lease returned, less than 71 minutes ago.",
							   (long long) token),
					 errhint("Take a new lease with qcache_lease(key), compute the value, then set it with that token.")));
		if (!qc_lease_use(&key, token))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lease token is not the current lease of key \"%.*s\"",
							(int) Min(key.len, 64), key.data),
					 errdetail("The lease ran out, was used by a set already, or belongs to another key."),
					 errhint("Take a new lease with qcache_lease(key), compute the value, then set it with that token.")));

		/*
		 * The value was computed after the token was granted, from a
		 * snapshot no older than this transaction's start either: the
		 * earlier of the two is its build point.
		 */
		info.build = Min(token, GetCurrentTransactionStartTimestamp());
		stored = qc_store(&key, (struct varlena *) PG_GETARG_JSONB_P(1),
						  &tags, &info);
		PG_RETURN_BOOL(stored);
	}
	PG_RETURN_BOOL(qc_store(&key, (struct varlena *) PG_GETARG_JSONB_P(1),
							&tags, &info));
}

/*
 * qcache_lease(key text, lease_ms integer) returns bigint: a token, or
 * NULL while another caller holds the key's lease (it is computing the
 * value: read the key again shortly).  See flight.c.
 */
Datum
qcache_lease(PG_FUNCTION_ARGS)
{
	QcKey		key;
	int32		ms = PG_ARGISNULL(1) ? 10000 : PG_GETARG_INT32(1);
	TimestampTz token;

	qc_require_loaded();
	if (PG_ARGISNULL(0))
		qc_null_arg_error("cache key");
	if (ms <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease_ms must be positive"),
				 errdetail("The lease_ms is %d.", ms)));
	qc_key_from_text(PG_GETARG_TEXT_PP(0), &key);
	token = qc_lease_take(&key, ms);
	if (token == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(token);
}

/* qcache_invalidate(key text) returns boolean */
Datum
qcache_invalidate(PG_FUNCTION_ARGS)
{
	QcKey		key;
	bool		removed;

	qc_require_loaded();
	if (PG_ARGISNULL(0))
		qc_null_arg_error("cache key");
	qc_key_from_text(PG_GETARG_TEXT_PP(0), &key);
	removed = qc_store_remove(&key);
	if (removed)
		qc_count(QC_STAT_INVALIDATIONS, 1);
	qc_wal_explicit_key(&key);	/* and on the standbys */
	if (qc_l2_active() && qc_l2_invalidate_key_guarded(&key))
		removed = true;
	PG_RETURN_BOOL(removed);
}

/*
 * Shared body of the bulk invalidations.  They act at once, not at commit
 * (triggers do that).  A tag invalidation, and a clear through the
 * database wildcard, also stamp the tag (invalidate.c), so that a value
 * that a transaction older than this one computed cannot be stored
 * afterwards.
 */
static int64
qc_invalidate_matching(QcMatchKind kind, text *arg)
{
	uint64		n;
	const char *str = arg ? VARDATA_ANY(arg) : NULL;
	uint32		len = arg ? VARSIZE_ANY_EXHDR(arg) : 0;

	if (kind == QC_MATCH_TAG || kind == QC_MATCH_ALL)
		qc_inval_tag_explicit(MyDatabaseId, kind == QC_MATCH_ALL ? 0 :
							  qc_hash_tag(str, len));

	n = qc_store_remove_matching(MyDatabaseId, kind, str, len);
	qc_wal_explicit_match(kind, MyDatabaseId, str, len);	/* and on standbys */
	if (n > 0)
		qc_count(QC_STAT_INVALIDATIONS, n);

	/* Redis and the other nodes, with the same stamp as L1 */
	if (qc_l2_active())
	{
		TimestampTz stamp = GetCurrentTransactionStartTimestamp() - 1;

		/* L1 has changed: an interrupted call must not lose the rest */
		qc_l2_invalidate_guarded(kind, str, len, stamp);
	}
	return (int64) n;
}

/* qcache_invalidate_tag(tag text) returns bigint */
Datum
qcache_invalidate_tag(PG_FUNCTION_ARGS)
{
	qc_require_loaded();
	if (PG_ARGISNULL(0))
		qc_null_arg_error("cache tag");
	PG_RETURN_INT64(qc_invalidate_matching(QC_MATCH_TAG,
										   PG_GETARG_TEXT_PP(0)));
}

/* qcache_invalidate_prefix(prefix text) returns bigint */
Datum
qcache_invalidate_prefix(PG_FUNCTION_ARGS)
{
	qc_require_loaded();
	if (PG_ARGISNULL(0))
		qc_null_arg_error("key prefix");
	PG_RETURN_INT64(qc_invalidate_matching(QC_MATCH_PREFIX,
										   PG_GETARG_TEXT_PP(0)));
}

/* qcache_clear() returns bigint */
Datum
qcache_clear(PG_FUNCTION_ARGS)
{
	qc_require_loaded();
	PG_RETURN_INT64(qc_invalidate_matching(QC_MATCH_ALL, NULL));
}

/* qcache_stats(): one row of counters; see the install script for columns */
Datum
qcache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[64];
	bool		nulls[64];
	uint64		c[QC_NUM_COUNTERS];
	uint64		lookups;
	TimestampTz reset;
	int			i = 0;

	qc_require_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	qc_stats_read(c);
	SpinLockAcquire(&qc_shared->stats_lock);
	reset = qc_shared->stats_reset;
	SpinLockRelease(&qc_shared->stats_lock);

	memset(nulls, 0, sizeof(nulls));
	values[i++] = Int64GetDatum(c[QC_STAT_HITS]);
	values[i++] = Int64GetDatum(c[QC_STAT_MISSES]);
	lookups = c[QC_STAT_HITS] + c[QC_STAT_MISSES];
	if (lookups > 0)
		values[i++] = Float8GetDatum((double) c[QC_STAT_HITS] / lookups);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum(c[QC_STAT_L2_HITS]);
	values[i++] = Int64GetDatum(c[QC_STAT_L2_MISSES]);
	values[i++] = Int64GetDatum(c[QC_STAT_L2_ERRORS]);
	values[i++] = Int64GetDatum(c[QC_STAT_SETS]);
	values[i++] = Int64GetDatum(c[QC_STAT_SETS_REJECTED]);
	values[i++] = Int64GetDatum(c[QC_STAT_EVICTIONS_EXPIRED]);
	values[i++] = Int64GetDatum(c[QC_STAT_EVICTIONS_MEMORY]);
	values[i++] = Int64GetDatum(c[QC_STAT_INVALIDATIONS]);
	values[i++] = Int64GetDatum(c[QC_STAT_FETCH_WAITS]);
	values[i++] = Int64GetDatum(qc_store_entries());
	values[i++] = Int64GetDatum(pg_atomic_read_u64(&qc_shared->bytes_used));
	values[i++] = Int64GetDatum(qc_shared->bytes_limit);
	values[i++] = TimestampTzGetDatum(reset);

	/*
	 * 1.3 (issue 14): why sets stored nothing, after the columns above; 1.2's
	 * SQL declares none of them.
	 */
	if (tupdesc->natts > i)
	{
		int			r;

		for (r = QC_STAT_REFUSED_TOO_LARGE; r <= QC_STAT_REFUSED_DISABLED; r++)
			values[i++] = Int64GetDatum(c[r]);
	}
	if (i != tupdesc->natts || i > (int) lengthof(values))
		elog(ERROR, "qcache_stats: %d columns declared, %d filled",
			 tupdesc->natts, i);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* qcache_reset_stats() returns void */
Datum
qcache_reset_stats(PG_FUNCTION_ARGS)
{
	qc_require_loaded();
	qc_stats_reset();
	qc_ns_reset();
	PG_RETURN_VOID();
}

/* May the current role see the keys this owner stored? */
static bool
qc_may_see_keys(Oid owner)
{
	Oid			me = GetUserId();

	return me == owner || has_privs_of_role(me, owner) ||
		has_privs_of_role(me, ROLE_PG_READ_ALL_STATS);
}

/*
 * qcache_entries(): key, tags, size, created, expires, hits of every entry
 * of the current database; since 1.3 also kind ('value' or 'fetch'), scope
 * (the role a caller-dependent fetch result is served to; NULL: shared),
 * state ('live', 'expired', or 'stale': a committed invalidation of one of
 * its tags, or one committing now, or this transaction's own write) and
 * servable (state is 'live').  Keys, tags and scope the caller may not see
 * are NULL.
 */
Datum
qcache_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *list;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	int			natts;

	qc_require_loaded();
	InitMaterializedSRF(fcinfo, 0);
	natts = rsinfo->setDesc->natts;
	if (natts != 6 && natts != 10)
		elog(ERROR, "qcache_entries: %d columns declared", natts);

	list = qc_store_list(MyDatabaseId);
	foreach(lc, list)
	{
		QcEntryInfo *info = lfirst(lc);
		Datum		values[10];
		bool		nulls[10];
		bool		may_see = qc_may_see_keys(info->owner);

		memset(nulls, 0, sizeof(nulls));
		if (may_see)
		{
			Datum	   *tags = palloc(sizeof(Datum) * Max(info->ntags, 1));

			int			i;
			int			n = 0;

			values[0] = PointerGetDatum(cstring_to_text_with_len(info->key,
																 info->keylen));

			/* node-internal tags (invalidate.c) are not shown */
			for (i = 0; i < info->ntags; i++)
				if (!qc_tag_is_internal(info->tags[i], strlen(info->tags[i])))
					tags[n++] = CStringGetTextDatum(info->tags[i]);
			values[1] = PointerGetDatum(construct_array(tags, n,
														TEXTOID, -1, false,
														TYPALIGN_INT));
		}
		else
			nulls[0] = nulls[1] = true;

		/*
		 * Size, times and hits of an entry whose key is hidden would tell
		 * how large another role's result is and how often it is used: NULL.
		 */
		values[2] = Int64GetDatum(info->size);
		values[3] = TimestampTzGetDatum(info->created);
		if (info->expires == 0)
			nulls[4] = true;
		else
			values[4] = TimestampTzGetDatum(info->expires);
		values[5] = Int64GetDatum(info->hits);
		if (!may_see)
			nulls[2] = nulls[3] = nulls[4] = nulls[5] = true;
		if (natts == 10)
		{
			const char *state;

			values[6] = CStringGetTextDatum((info->flags & QC_ENTRY_FETCH) ?
											"fetch" : "value");
			if ((info->flags & QC_ENTRY_ROLE_SCOPED) && may_see)
			{
				char	   *role = GetUserNameFromId(info->owner, true);

				if (role != NULL)
					values[7] = DirectFunctionCall1(namein,
													CStringGetDatum(role));
				else
					nulls[7] = true;
			}
			else
				nulls[7] = true;
			if (info->expires != 0 && info->expires <= now)
				state = "expired";
			else if (!info->fresh)
				state = "stale";
			else
				state = "live";
			values[8] = CStringGetTextDatum(state);
			values[9] = BoolGetDatum(strcmp(state, "live") == 0);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * qcache_preloaded() returns boolean: is qcache in shared_preload_libraries
 * of this server?  The install script warns when it is not.
 */
Datum
qcache_preloaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(qc_shared != NULL);
}

/*
 * Refuse to watch a view or a materialized view, with an error that names
 * the tables to watch instead (for a view: the tables under it, through
 * nested views).  A view's rows change when its tables are written, and
 * writes fire the tables' triggers, never the view's; qcache_fetch tags a
 * result read through a view with the tables under it.  We do not watch
 * them on the caller's behalf: that would create triggers, and take locks,
 * on tables the caller did not name, and templates name the view's
 * columns, not theirs.
 */
void
qc_check_watchable(Oid relid)
{
	char		relkind = get_rel_relkind(relid);
	char	   *name = get_rel_name(relid);

	if (relkind == RELKIND_MATVIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot watch materialized view \"%s\"", name),
				 errdetail("A materialized view cannot have triggers."),
				 errhint("Watch the tables that are written.")));
	if (relkind == RELKIND_VIEW)
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(relid)};
		char	   *hint = NULL;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args(
								  "WITH RECURSIVE under(relid) AS ("
								  " SELECT $1"
								  " UNION"
								  " SELECT d.refobjid FROM under u"
								  " JOIN pg_catalog.pg_class c ON c.oid = u.relid AND c.relkind = 'v'"
								  " JOIN pg_catalog.pg_rewrite w ON w.ev_class = u.relid"
								  " JOIN pg_catalog.pg_depend d"
								  "  ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
								  "  AND d.objid = w.oid"
								  "  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
								  "  AND d.refobjid <> u.relid)"
								  " SELECT pg_catalog.string_agg(pg_catalog.format("
								  "  'SELECT qcache_watch(%L);', c.oid::pg_catalog.regclass::text),"
								  "  ' ' ORDER BY c.oid::pg_catalog.regclass::text)"
								  " FROM under u JOIN pg_catalog.pg_class c ON c.oid = u.relid"
								  " WHERE c.relkind IN ('r', 'p')",
								  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not list the tables under view \"%s\"", name);
		hint = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot watch view \"%s\"", name),
				 errdetail("Writes fire the triggers of the tables under a view, never the view's; a qcache_fetch result read through the view carries the tags of those tables."),
				 hint ? errhint("Watch the tables under it: %s", hint) :
				 errhint("The view reads no table.")));
	}
}
