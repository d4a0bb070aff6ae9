/*-------------------------------------------------------------------------
 *
 * fetch.c
 *		qcache_fetch: read-through caching of one SELECT's rows.
 *
 * On a hit qcache_fetch returns the cached value; on a miss it runs the
 * query through SPI as the calling role and caches its rows as a jsonb
 * array of objects, one per row, in the query's order.
 *
 * Tags.  The entry carries the given tags plus table:<schema>.<name> of
 * every table and view the plan reads (the planner's relationOids, so
 * views count with the tables under them), and of the partitioned tables
 * above each partition it reads, which are the tags that a bare
 * qcache_watch invalidates.  Tables read only inside functions the query
 * calls are invisible to the planner and are not tagged.
 *
 * Privileges (SPEC section 8).  The entry also keeps the oids of the
 * relations whose SELECT privilege the executor checked against the caller
 * (range table entries without checkAsUser: a view, not the tables under
 * it, unless it is security_invoker).  A hit is served only to a role that
 * may SELECT from all of them; and a result computed without row-level
 * security is not served to a role for which one of them has row-level
 * security enabled.  A result
 * that row-level security shaped (the plan source's dependsOnRLS) is
 * stored under a role-scoped key (the key, a zero byte, the role oid),
 * which no SQL text can name and which only that role looks up.  Either
 * way, a role that may not be served runs the query itself, and gets what
 * the query gives it, or its error.
 *
 * Single flight.  Concurrent misses of one key compute once: see
 * flight.c.
 *
 * The query must be exactly one read-only SELECT (or VALUES, or a set
 * operation of them).  The check is made on the raw parse tree, before
 * anything runs and on hits too: a statement list, any other statement,
 * and anywhere in the tree SELECT INTO, a data-modifying WITH and FOR
 * UPDATE/SHARE are rejected with 22023 (invalid_parameter_value).  The raw
 * grammar depends on no catalog, only on the lexer's settings, so each
 * backend remembers the query texts it has accepted under the current
 * settings (a small direct-mapped cache) and a hit costs one hash and one
 * strcmp, not a parse.  The query then runs wrapped as
 *
 *		SELECT COALESCE(jsonb_agg(qcache_r.*), '[]') FROM (<query>) qcache_r
 *
 * with SPI in read-only mode (the caller's snapshot, and SPI's own check
 * that every plan is read-only, as a second line of defence).  The wrapped
 * text is parsed again when it is built and checked once more when it is
 * prepared: one statement, one jsonb column, or nothing runs.  A query that
 * fails raises its own error and caches nothing; a result that cannot be
 * cached is still returned (SPEC section 4).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/plancache.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"

#include "qcache.h"
#include "sqlfuncs.h"

PG_FUNCTION_INFO_V1(qcache_fetch);
PG_FUNCTION_INFO_V1(qcache_fetch_json);

/* Size of the per-backend cache of accepted queries (power of 2). */
#define QC_QUERY_CACHE_SIZE		64

typedef struct QcCheckedQuery
{
	uint32		hash;
	bool		scs;			/* standard_conforming_strings when checked */
	int			bq;				/* backslash_quote when checked */
	char	   *query;			/* the text as given; NULL: empty slot */
	char	   *wrapped;		/* the statement to run */
} QcCheckedQuery;

static QcCheckedQuery checked[QC_QUERY_CACHE_SIZE];

static void qc_reject_query(const char *why) pg_attribute_noreturn();

/* Raise the error for a query qcache_fetch does not accept. */
static void
qc_reject_query(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("qcache_fetch query must be a single read-only SELECT"),
			 errdetail("%s", why)));
}

/*
 * Walk a raw parse tree and reject what is not read-only anywhere in it:
 * SELECT INTO, FOR UPDATE/SHARE (in subqueries, CTEs and sublinks too) and
 * data-modifying WITH queries.
 */
static bool
qc_check_raw_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SelectStmt))
	{
		SelectStmt *sel = (SelectStmt *) node;

		if (sel->intoClause != NULL)
			qc_reject_query("SELECT INTO creates a table.");
		if (sel->lockingClause != NIL)
			qc_reject_query("SELECT FOR UPDATE or FOR SHARE locks rows.");
	}
	else if (IsA(node, CommonTableExpr))
	{
		if (!IsA(((CommonTableExpr *) node)->ctequery, SelectStmt))
			qc_reject_query("A WITH query modifies data.");
	}
	return raw_expression_tree_walker(node, qc_check_raw_walker, context);
}

/* Parse a text that must hold exactly one SELECT; returns its RawStmt. */
static RawStmt *
qc_parse_one_select(const char *query)
{
	List	   *stmts = raw_parser(query, RAW_PARSE_DEFAULT);
	RawStmt    *raw;

	if (list_length(stmts) != 1)
		qc_reject_query(list_length(stmts) == 0 ?
						"The query is empty." :
						"The query holds more than one statement.");
	raw = linitial_node(RawStmt, stmts);
	if (!IsA(raw->stmt, SelectStmt))
		qc_reject_query("The statement is not a SELECT.");
	return raw;
}

/*
 * Parse the query text, reject anything but one read-only SELECT, and
 * return the wrapped statement to run (palloc'd).  The wrapped text is
 * parsed again: it too must be exactly one SELECT, whatever the query
 * holds (comments, quotes).
 */
static char *
qc_check_query(const char *query)
{
	RawStmt    *raw;
	StringInfoData buf;
	int			len;

	raw = qc_parse_one_select(query);
	(void) qc_check_raw_walker(raw->stmt, NULL);

	/* The statement's own text, without a trailing semicolon. */
	len = raw->stmt_len > 0 ? raw->stmt_len :
		(int) strlen(query) - Max(raw->stmt_location, 0);
	initStringInfo(&buf);
	appendStringInfoString(&buf,
						   "SELECT COALESCE(pg_catalog.jsonb_agg(qcache_r.*), "
						   "'[]'::pg_catalog.jsonb) FROM (\n");
	appendBinaryStringInfo(&buf, query + Max(raw->stmt_location, 0), len);
	appendStringInfoString(&buf, "\n) qcache_r");

	raw = qc_parse_one_select(buf.data);
	(void) qc_check_raw_walker(raw->stmt, NULL);
	return buf.data;
}

/*
 * The wrapped statement for a query (palloc'd), from the per-backend cache
 * or parsed.  The lexer's settings are part of the cache key: the same text
 * may lex differently with another standard_conforming_strings.
 */
static char *
qc_checked_query(const char *query)
{
	uint32		h = hash_bytes((const unsigned char *) query, strlen(query));
	QcCheckedQuery *slot = &checked[h & (QC_QUERY_CACHE_SIZE - 1)];
	char	   *wrapped;

	if (slot->query != NULL && slot->hash == h &&
		slot->scs == standard_conforming_strings &&
		slot->bq == backslash_quote &&
		strcmp(slot->query, query) == 0)
		return pstrdup(slot->wrapped);

	wrapped = qc_check_query(query);	/* raises if not acceptable */

	if (slot->query != NULL)
	{
		pfree(slot->query);
		pfree(slot->wrapped);
	}
	slot->hash = h;
	slot->scs = standard_conforming_strings;
	slot->bq = backslash_quote;
	slot->query = MemoryContextStrdup(TopMemoryContext, query);
	slot->wrapped = MemoryContextStrdup(TopMemoryContext, wrapped);
	return wrapped;
}

static bool qc_fetch_may_serve(const QcValue *v);

/* What running the query gives besides its rows. */
typedef struct QcFetchResult
{
	Jsonb	   *value;
	int			ntagrels;		/* relations read, for the table tags */
	Oid			tagrels[QC_MAX_RELS];
	int			naclrels;		/* relations the caller needs SELECT on */
	Oid			aclrels[QC_MAX_RELS];
	bool		too_many_rels;	/* not cacheable */
	bool		role_scoped;	/* row-level security applied */
	bool		from_l2;		/* value read from Redis, not computed */
	QcL2Value	l2;				/* then: its build point and tags */
	uint64		l2_removals;	/* QcShared.l2_removals before reading it */
} QcFetchResult;

/* Append relid to rels[*n] unless present; false if full. */
static bool
qc_add_rel(Oid *rels, int *n, Oid relid)
{
	int			i;

	for (i = 0; i < *n; i++)
		if (rels[i] == relid)
			return true;
	if (*n == QC_MAX_RELS)
		return false;
	rels[(*n)++] = relid;
	return true;
}

/*
 * Run the wrapped query and fill res: its jsonb array in the caller's
 * context, the tables and views it reads (the planner's relationOids,
 * views included, as they stand after rewriting), and whether row-level
 * security shaped it.  Prepared first, so that what runs is checked to be
 * one statement with one jsonb column, whatever the text turned out to
 * hold.
 */
static void
qc_run_query(const QcKey *key, const char *wrapped, bool as_text,
			 QcFetchResult *res)
{
	MemoryContext caller = CurrentMemoryContext;
	SPIPlanPtr	plan;
	List	   *sources;
	CachedPlanSource *src;
	CachedPlan *cplan;
	ListCell   *lc;
	Datum		d;
	bool		isnull;
	int			rc;

	res->ntagrels = 0;
	res->naclrels = 0;
	res->too_many_rels = false;
	res->from_l2 = false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(wrapped, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		qc_reject_query("The query does not stand alone as one SELECT.");
	src = linitial(sources);
	if (src->resultDesc == NULL || src->resultDesc->natts != 1 ||
		TupleDescAttr(src->resultDesc, 0)->atttypid != JSONBOID)
		qc_reject_query("The query does not stand alone as one SELECT.");
	res->role_scoped = src->dependsOnRLS;

	/*
	 * The relations the plan reads, for the tags, with the partitioned tables
	 * above each partition (a write through the parent fires the parent's
	 * statement trigger only); and the relations whose SELECT privilege the
	 * executor checks against the caller (checkAsUser 0: not the tables under
	 * a view, which it checks as the view's owner), for the check on hits.
	 */
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan == NULL)
		elog(ERROR, "SPI_plan_get_cached_plan failed");
	foreach(lc, cplan->stmt_list)
	{
		PlannedStmt *ps = lfirst_node(PlannedStmt, lc);
		ListCell   *lc2;

		foreach(lc2, ps->relationOids)
		{
			Oid			relid = lfirst_oid(lc2);
			char		kind = get_rel_relkind(relid);

			if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE &&
				kind != RELKIND_VIEW && kind != RELKIND_MATVIEW &&
				kind != RELKIND_FOREIGN_TABLE)
				continue;
			if (!qc_add_rel(res->tagrels, &res->ntagrels, relid))
				res->too_many_rels = true;
			{
				ListCell   *lc3;

				/* ancestors by inheritance or partitioning (invalidate.c) */
				foreach(lc3, qc_rel_ancestors(relid))
					if (!qc_add_rel(res->tagrels, &res->ntagrels, lfirst_oid(lc3)))
					res->too_many_rels = true;
			}
		}
		foreach(lc2, ps->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc2);

			if (rte->rtekind == RTE_RELATION &&
				(rte->requiredPerms & ACL_SELECT) != 0 &&
				!OidIsValid(rte->checkAsUser) &&
				!qc_add_rel(res->aclrels, &res->naclrels, rte->relid))
				res->too_many_rels = true;
		}
	}
	/* an unsaved plan's generic plan is taken without a resource owner */
	ReleaseCachedPlan(cplan, NULL);

	/*
	 * With a Redis level, another node may have computed the result: take it
	 * from there if this role may read every relation (checked as on an L1
	 * hit) and the result is not shaped by row-level security.
	 */
	if (!res->role_scoped && !res->too_many_rels && qc_l2_usable())
	{
		QcValue		probe;

		memset(&probe, 0, sizeof(probe));
		probe.nrels = res->naclrels;
		probe.rels = res->aclrels;
		if (qc_fetch_may_serve(&probe))
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);
			bool		hit;

			res->l2_removals = pg_atomic_read_u64(&qc_shared->l2_removals);
			hit = qc_l2_get(key, &res->l2);

			/* parsed once: checked as JSON text, or made into jsonb */
			if (hit && as_text)
				hit = qc_l2_json_valid(res->l2.json, res->l2.len);
			else if (hit)
				hit = (res->value = qc_l2_json_to_jsonb(res->l2.json,
														res->l2.len)) != NULL;

			MemoryContextSwitchTo(spi);
			if (hit)
			{
				res->from_l2 = true;
				SPI_finish();
				return;
			}
		}
	}

	rc = SPI_execute_plan(plan, NULL, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "qcache_fetch query returned %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "qcache_fetch query returned null");
	d = SPI_datumTransfer(d, false, -1);
	SPI_finish();
	res->value = DatumGetJsonbP(d);
}

/*
 * The key under which a role-scoped result of `key` lives for the current
 * role: the key, a zero byte, the role's oid.  SQL text cannot hold a zero
 * byte, so no qcache_get can name it, and it hashes like the key itself
 * (qc_hash_key), in the same bucket.
 */
static void
qc_role_key(const QcKey *key, QcKey *rkey)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, key->data, key->len);
	appendStringInfoChar(&buf, '\0');
	appendStringInfo(&buf, "%u", GetUserId());
	*rkey = *key;
	rkey->data = buf.data;
	rkey->len = buf.len;
}

/*
 * May the current role be handed this cached result?  Only if it may
 * SELECT from every table and view the result was read from, and, for a
 * result computed without row-level security, if none of them has
 * row-level security enabled for this role (it would see fewer rows).  A
 * role-scoped result is served to the role that computed it only.
 */
static bool
qc_fetch_may_serve(const QcValue *v)
{
	Oid			me = GetUserId();
	int			i;

	if ((v->flags & QC_ENTRY_ROLE_SCOPED) && v->owner != me)
		return false;
	for (i = 0; i < v->nrels; i++)
	{
		bool		missing = false;

		if (pg_class_aclcheck_ext(v->rels[i], me, ACL_SELECT, &missing) != ACLCHECK_OK ||
			missing)
			return false;
		if (!(v->flags & QC_ENTRY_ROLE_SCOPED) &&
			check_enable_rls(v->rels[i], InvalidOid, true) == RLS_ENABLED)
			return false;
	}
	return true;
}

/*
 * Look a fetch key up: the shared result, or else this role's scoped one,
 * as the requested type: jsonb, or for qcache_fetch_json the JSON text.
 * Counts one hit or one miss.  NULL on a miss.
 */
static struct varlena *
qc_fetch_lookup(const QcKey *key, bool as_text)
{
	TimestampTz now;
	QcValue		v;
	QcKey		rkey;

	if (!qc_enabled)
	{
		qc_count(QC_STAT_MISSES, 1);
		return NULL;
	}
	now = GetCurrentTimestamp();
	if (!(qc_store_get(key, now, &v) && qc_fetch_may_serve(&v)))
	{
		qc_role_key(key, &rkey);
		if (!(qc_store_get(&rkey, now, &v) && qc_fetch_may_serve(&v)))
		{
			qc_count(QC_STAT_MISSES, 1);
			return NULL;
		}
	}
	qc_count(QC_STAT_HITS, 1);
	return as_text ? (struct varlena *) qc_value_text(&v) :
		(struct varlena *) qc_value_jsonb(&v);
}

/*
 * Run the query and store its result, under the key or, if row-level
 * security shaped it, under the role's scoped key.  The entry carries the
 * given tags plus table:<schema>.<name> of each relation read, so that the
 * invalidation triggers of those tables reach it.  With as_text the entry
 * holds the JSON text (QC_ENTRY_JSON_TEXT), rendered once here, and the
 * text is returned; otherwise the jsonb.
 */
static struct varlena *
qc_fetch_compute(const QcKey *key, const char *wrapped, const QcTags *given,
				 TimestampTz ttl_usec, bool as_text)
{
	QcFetchResult res;
	QcTags		tags;
	QcSetInfo	info;
	QcKey		rkey;
	struct varlena *value;
	int			i;

	qc_run_query(key, wrapped, as_text, &res);
	memset(&info, 0, sizeof(info));
	if (as_text)
		info.flags = QC_ENTRY_JSON_TEXT;
	if (res.from_l2)
	{
		value = as_text ?
			(struct varlena *) cstring_to_text_with_len(res.l2.json, res.l2.len) :
			(struct varlena *) res.value;
		info.now = GetCurrentTimestamp();
		info.expires = res.l2.pttl_ms > 0 ?
			info.now + (TimestampTz) res.l2.pttl_ms * 1000 : 0;
		info.build = res.l2.build;
		info.owner = GetUserId();
		info.nrels = res.naclrels;
		info.rels = res.aclrels;
		info.from_l2 = true;
		if (pg_atomic_read_u64(&qc_shared->l2_removals) == res.l2_removals)
			(void) qc_store(key, value, &res.l2.tags, &info);
		return value;
	}
	value = (struct varlena *) res.value;
	if (as_text)
		value = (struct varlena *)
			cstring_to_text(JsonbToCString(NULL, &res.value->root,
										   VARSIZE(res.value)));
	if (res.too_many_rels ||
		given->ntags + 2 * res.ntagrels + 1 > QC_MAX_ENTRY_TAGS)
	{
		qc_count(QC_STAT_SETS_REJECTED, 1);
		return value;
	}

	tags.ntags = 0;
	tags.tag = palloc(sizeof(char *) * (given->ntags + 2 * res.ntagrels + 1));
	tags.len = palloc(sizeof(uint32) * (given->ntags + 2 * res.ntagrels + 1));
	for (i = 0; i < given->ntags; i++)
	{
		tags.tag[tags.ntags] = given->tag[i];
		tags.len[tags.ntags++] = given->len[i];
	}
	for (i = 0; i < res.ntagrels; i++)
	{
		char	   *t = qc_table_tag(res.tagrels[i]);

		if (t == NULL)
			continue;
		tags.tag[tags.ntags] = t;
		tags.len[tags.ntags++] = strlen(t);
	}
	/* relations by OID, and the names tag (invalidate.c, issue 10) */
	for (i = 0; i < res.ntagrels; i++)
	{
		char	   *t = qc_rel_oid_tag(res.tagrels[i]);

		tags.tag[tags.ntags] = t;
		tags.len[tags.ntags++] = strlen(t);
	}
	tags.tag[tags.ntags] = qc_names_tag();
	tags.len[tags.ntags++] = strlen(qc_names_tag());

	info.now = GetCurrentTimestamp();
	info.expires = ttl_usec == 0 ? 0 : info.now + ttl_usec;
	info.owner = GetUserId();
	info.nrels = res.naclrels;
	info.rels = res.aclrels;
	if (res.role_scoped)
	{
		info.flags |= QC_ENTRY_ROLE_SCOPED;
		qc_role_key(key, &rkey);
		key = &rkey;
	}
	(void) qc_store(key, value, &tags, &info);
	return value;
}

/*
 * The body of qcache_fetch (jsonb) and qcache_fetch_json (json text):
 * (key text, query text, ttl int, tags text[]).
 */
static struct varlena *
qc_fetch_common(FunctionCallInfo fcinfo, bool as_text)
{
	QcKey		key;
	QcTags		tags;
	char	   *wrapped;
	TimestampTz ttl_usec;
	struct varlena *v;
	QcFlight	flight;

	qc_require_loaded();
	if (PG_ARGISNULL(0))
		qc_null_arg_error("cache key");
	if (PG_ARGISNULL(1))
		qc_null_arg_error("query");
	qc_key_from_text(PG_GETARG_TEXT_PP(0), &key);
	wrapped = qc_checked_query(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	/*
	 * Check ttl and tags before the lookup, so that bad arguments fail on
	 * hits too.  With now = 0 the expiry is the ttl itself (0: none).
	 */
	ttl_usec = qc_expiry(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), 0);
	qc_tags_from_array(PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3), &tags);

	v = qc_fetch_lookup(&key, as_text);
	if (v != NULL)
		return v;
	if (!qc_enabled)
		return qc_fetch_compute(&key, wrapped, &tags, ttl_usec, as_text);

	/* single flight: one session computes, the others wait for it */
	flight = qc_flight_begin(&key);
	if (flight == QC_FLIGHT_WAITED)
	{
		v = qc_fetch_lookup(&key, as_text);
		if (v != NULL)
			return v;
	}
	if (flight != QC_FLIGHT_LEAD)
		return qc_fetch_compute(&key, wrapped, &tags, ttl_usec, as_text);

	PG_TRY();
	{
		v = qc_fetch_compute(&key, wrapped, &tags, ttl_usec, as_text);
	}
	PG_FINALLY();
	{
		qc_flight_end();
	}
	PG_END_TRY();
	return v;
}

/* qcache_fetch(key text, query text, ttl int, tags text[]) returns jsonb */
Datum
qcache_fetch(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(qc_fetch_common(fcinfo, false));
}

/*
 * qcache_fetch_json(key text, query text, ttl int, tags text[]) returns
 * json: the same rows as qcache_fetch, kept and returned as JSON text, so
 * that a hit is sent without turning jsonb into text.
 */
Datum
qcache_fetch_json(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(qc_fetch_common(fcinfo, true));
}
