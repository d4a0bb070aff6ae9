/*-------------------------------------------------------------------------
 *
 * fetch.c
 *		qcache_fetch: read-through caching of one SELECT's rows.
 *
 * On a hit qcache_fetch returns the cached value; on a miss it runs the
 * query through SPI as the calling role and caches its rows as a jsonb
 * array of objects, one per row, in the query's order.
 *
 * Who is served (SPEC section 8; security.c has the argument).  A result
 * is stored under a variant of the key that names the query, its
 * settings and what its names resolve against, never under the key
 * itself: a fetch never serves a qcache_set value or another query's
 * rows, and qcache_get never returns a fetch result.  While the query
 * runs, deps.c records what its execution read and checked, nested
 * functions included; a result that depends on its caller is stored
 * under a scoped variant (role and settings), the others under the shared
 * one; every hit re-checks the recorded privileges as the caller.  A role
 * that may not be served runs the query itself, and gets what the query
 * gives it, or its error.
 *
 * Tags.  The entry carries the given tags; table:<schema>.<name> of every
 * table and view the execution read (nested executions, views,
 * partitions and inheritance children included, and their ancestors),
 * which bare qcache_watch triggers invalidate; the node-internal OID tags
 * of the same relations and of the functions it called, so that renames
 * do not detach it and DDL reaches it; and the database's names tag,
 * which DDL that could change what a name resolves to stamps.
 *
 * Single flight.  Concurrent misses of one variant compute once: see
 * flight.c.
 *
 * The query must be exactly one read-only SELECT (or VALUES, or a set
 * operation of them).  The check is made on the raw parse tree, before
 * anything runs and on hits too: a statement list, any other statement,
 * and anywhere in the tree SELECT INTO, a data-modifying WITH and FOR
 * UPDATE/SHARE are rejected with 22023 (invalid_parameter_value).  The
 * functions it calls are held to the same rule while it runs (deps.c).
 * The raw grammar depends on no catalog, only on the lexer's settings, so
 * each backend remembers the query texts it has accepted under the
 * current settings (a small direct-mapped cache) and a hit costs one hash
 * and one strcmp, not a parse.  The query then runs wrapped as
 *
 *		SELECT COALESCE(jsonb_agg(qcache_r.*), '[]') FROM (<query>) qcache_r
 *
 * with SPI in read-only mode.  The wrapped text is parsed again when it is
 * built and checked once more when it is prepared: one statement, one
 * jsonb column, or nothing runs.  A query that fails raises its own error
 * and caches nothing; a result that cannot be cached is still returned
 * (SPEC section 4).
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
#include "deps.h"
#include "sqlfuncs.h"

PG_FUNCTION_INFO_V1(qcache_fetch);
PG_FUNCTION_INFO_V1(qcache_fetch_json);
PG_FUNCTION_INFO_V1(qcache_fetch_cached);

/* Size of the per-backend cache of accepted queries (power of 2). */
#define QC_QUERY_CACHE_SIZE		64

typedef struct QcCheckedQuery
{
	uint32		hash;
	uint64		hash64;			/* the text's 64-bit hash, for its key */
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
	else if (IsA(node, ParamRef))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_PARAMETER),
				 errmsg("qcache_fetch query must not contain parameters"),
				 errdetail("The query refers to $%d, and qcache_fetch takes no parameter values.",
						   ((ParamRef *) node)->number),
				 errhint("Put the value into the query text and into the key, for example qcache_fetch(format('user:%%s', id), format('SELECT * FROM users WHERE id = %%L', id)).")));
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
 * or parsed; and the query text's 64-bit hash, for the key's variant.  The lexer's settings are part of the cache key: the same text
 * may lex differently with another standard_conforming_strings.
 */
static char *
qc_checked_query(const char *query, uint64 *query_hash)
{
	uint32		h = hash_bytes((const unsigned char *) query, strlen(query));
	QcCheckedQuery *slot = &checked[h & (QC_QUERY_CACHE_SIZE - 1)];
	char	   *wrapped;

	if (slot->query != NULL && slot->hash == h &&
		slot->scs == standard_conforming_strings &&
		slot->bq == backslash_quote &&
		strcmp(slot->query, query) == 0)
	{
		*query_hash = slot->hash64;
		return pstrdup(slot->wrapped);
	}

	wrapped = qc_check_query(query);	/* raises if not acceptable */

	if (slot->query != NULL)
	{
		pfree(slot->query);
		pfree(slot->wrapped);
	}
	slot->hash = h;
	slot->hash64 = *query_hash =
		hash_bytes_extended((const unsigned char *) query, strlen(query), 0);
	slot->scs = standard_conforming_strings;
	slot->bq = backslash_quote;
	slot->query = MemoryContextStrdup(TopMemoryContext, query);
	slot->wrapped = MemoryContextStrdup(TopMemoryContext, wrapped);
	return wrapped;
}


/* A fetch key: the caller's key and the variant a result lives under. */
typedef struct QcFetchKey
{
	QcKey		user;			/* as given */
	uint64		query_hash;
	QcKey		shared;			/* key \0 'q' digest */
	QcKey		scoped;			/* key \0 'r' digest; len 0 until built */
	QcKey		flight;			/* for single flight: the shared variant */
} QcFetchKey;

/* Build the variant `kind` of a key for a digest. */
static void
qc_variant_key(const QcKey *user, char kind, uint64 digest, QcKey *out)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, user->data, user->len);
	appendStringInfoChar(&buf, '\0');
	appendStringInfo(&buf, "%c%016" INT64_MODIFIER "x", kind, digest);
	*out = *user;
	out->data = buf.data;
	out->len = buf.len;
	/* the same bucket as the key (qc_hash_key stops at the zero byte) */
	out->hash = user->hash;
}

/* The scoped variant, built on first use (it hashes every setting). */
static const QcKey *
qc_scoped_key(QcFetchKey *fk)
{
	if (fk->scoped.len == 0)
		qc_variant_key(&fk->user, 'r', qc_fetch_digest(fk->query_hash, true),
					   &fk->scoped);
	return &fk->scoped;
}

/*
 * Check the query and build the fetch key of (key, query); returns the
 * wrapped statement to run.
 */
static char *
qc_fetch_key(text *key, text *query, QcFetchKey *fk)
{
	char	   *wrapped;

	memset(fk, 0, sizeof(*fk));
	qc_key_from_text(key, &fk->user);
	wrapped = qc_checked_query(text_to_cstring(query), &fk->query_hash);
	qc_variant_key(&fk->user, 'q', qc_fetch_digest(fk->query_hash, false),
				   &fk->shared);
	fk->flight = fk->shared;
	fk->flight.hash = hash_combine64(fk->user.hash,
									 hash_bytes_extended((const unsigned char *) fk->shared.data,
														 fk->shared.len, 0));
	return wrapped;
}

/*
 * Find the entry a fetch may serve the caller: the shared result if the
 * caller passes its checks, or else the caller's own scoped one.
 */
static bool
qc_fetch_find(QcFetchKey *fk, QcValue *v)
{
	TimestampTz now = GetCurrentTimestamp();

	if (qc_store_get(&fk->shared, now, v) &&
		(v->flags & (QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED)) == QC_ENTRY_FETCH &&
		qc_deps_allow(v->deps, v->depbytes, false))
		return true;
	return qc_store_get(qc_scoped_key(fk), now, v) &&
		(v->flags & (QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED)) ==
		(QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED) &&
		v->owner == GetUserId() &&
		qc_deps_allow(v->deps, v->depbytes, true);
}

/*
 * Look a fetch up, as the requested type: jsonb, or for qcache_fetch_json
 * the JSON text.  Counts one hit or one miss.  NULL on a miss.
 */
static struct varlena *
qc_fetch_lookup(QcFetchKey *fk, bool as_text)
{
	QcValue		v;

	if (!qc_enabled || !qc_fetch_find(fk, &v))
	{
		qc_count(QC_STAT_MISSES, 1);
		qc_ns_count(&fk->user, QC_NS_MISSES);
		return NULL;
	}
	qc_count(QC_STAT_HITS, 1);
	qc_ns_count(&fk->user, QC_NS_HITS);
	return as_text ? (struct varlena *) qc_value_text(&v) :
		(struct varlena *) qc_value_jsonb(&v);
}

/* A node-internal tag of an object by oid ("\001rel:<oid>"). */
static char *
qc_fetch_oid_tag(const char *kind, Oid oid)
{
	return psprintf("\001%s:%u", kind, oid);
}

/*
 * Run the wrapped query, recording its dependencies into *deps, and return
 * its jsonb array in the caller's context.  Prepared first, so that what
 * runs is checked to be one statement with one jsonb column, whatever the
 * text turned out to hold.
 */
static Jsonb *
qc_run_query(const char *wrapped, QcDeps **deps)
{
	MemoryContext caller = CurrentMemoryContext;
	QcDeps	   *prev;
	volatile Datum d = (Datum) 0;

	prev = qc_deps_push(deps);
	PG_TRY();
	{
		SPIPlanPtr	plan;
		List	   *sources;
		CachedPlanSource *src;
		bool		isnull;
		int			rc;

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
		rc = SPI_execute_plan(plan, NULL, NULL, true, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "qcache_fetch query returned %s", SPI_result_code_string(rc));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			elog(ERROR, "qcache_fetch query returned null");
		MemoryContextSwitchTo(caller);
		d = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		SPI_finish();
	}
	PG_FINALLY();
	{
		qc_deps_pop(prev);
	}
	PG_END_TRY();
	return DatumGetJsonbP(d);
}

/*
 * Run the query and store its result under the shared or the scoped
 * variant (see security.c), with the given tags plus the tags of what its
 * execution read.  With as_text the entry holds the JSON text
 * (QC_ENTRY_JSON_TEXT), rendered once here, and the text is returned;
 * otherwise the jsonb.
 */
static struct varlena *
qc_fetch_compute(QcFetchKey *fk, const char *wrapped, const QcTags *given,
				 TimestampTz ttl_usec, bool as_text)
{
	QcDeps	   *deps;
	Jsonb	   *result;
	struct varlena *value;
	QcTags		tags;
	QcSetInfo	info;
	const QcKey *key;
	char	   *blob;
	uint32		bloblen = 0;
	int			max;
	ListCell   *lc;

	/* the scoped digest reads the settings as they are before the query */
	if (fk->scoped.len == 0)
		(void) qc_scoped_key(fk);
	result = qc_run_query(wrapped, &deps);
	value = (struct varlena *) result;
	if (as_text)
		value = (struct varlena *)
			cstring_to_text(JsonbToCString(NULL, &result->root, VARSIZE(result)));

	blob = qc_deps_serialize(deps, &bloblen);
	max = given->ntags + 2 * list_length(deps->relids) +
		list_length(deps->funcs) + 1;
	if (deps->uncacheable != NULL || blob == NULL || max > PG_UINT8_MAX)
	{
		ereport(DEBUG1,
				(errmsg("qcache_fetch result not cached"),
				 errdetail("%s", deps->uncacheable ? deps->uncacheable :
						   "It depends on more than a cache entry can record.")));
		qc_count(QC_STAT_SETS_REJECTED, 1);
		qc_count(QC_STAT_REFUSED_UNCACHEABLE, 1);
		return value;
	}

	tags.ntags = 0;
	tags.tag = palloc(sizeof(char *) * max);
	tags.len = palloc(sizeof(uint32) * max);
	for (int i = 0; i < given->ntags; i++)
	{
		tags.tag[tags.ntags] = given->tag[i];
		tags.len[tags.ntags++] = given->len[i];
	}
	foreach(lc, deps->relids)
	{
		Oid			relid = lfirst_oid(lc);
		char	   *t = qc_table_tag(relid);

		if (t != NULL)
		{
			tags.tag[tags.ntags] = t;
			tags.len[tags.ntags++] = strlen(t);
		}
		t = qc_fetch_oid_tag("rel", relid);
		tags.tag[tags.ntags] = t;
		tags.len[tags.ntags++] = strlen(t);
	}
	foreach(lc, deps->funcs)
	{
		QcDepFunc  *f = lfirst(lc);
		char	   *t;
		int			j;
		bool		dup = false;

		if (f->funcid < FirstNormalObjectId)
			continue;
		t = qc_fetch_oid_tag("fn", f->funcid);
		for (j = 0; j < tags.ntags; j++)
			if (strcmp(tags.tag[j], t) == 0)
				dup = true;
		if (dup)
			continue;
		tags.tag[tags.ntags] = t;
		tags.len[tags.ntags++] = strlen(t);
	}
	tags.tag[tags.ntags] = "\001names";
	tags.len[tags.ntags++] = strlen("\001names");

	memset(&info, 0, sizeof(info));
	info.flags = QC_ENTRY_FETCH | (as_text ? QC_ENTRY_JSON_TEXT : 0);
	info.now = GetCurrentTimestamp();
	info.expires = ttl_usec == 0 ? 0 : info.now + ttl_usec;
	info.owner = GetUserId();
	info.deps = blob;
	info.depbytes = bloblen;
	key = &fk->shared;
	if (deps->caller_dependent)
	{
		ereport(DEBUG1,
				(errmsg("qcache_fetch result scoped to its role and settings"),
				 errdetail("The query's result depends on %s.", deps->dependent_why)));
		info.flags |= QC_ENTRY_ROLE_SCOPED;
		key = &fk->scoped;
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
	QcFetchKey	fk;
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
	wrapped = qc_fetch_key(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), &fk);

	/*
	 * Check ttl and tags before the lookup, so that bad arguments fail on
	 * hits too.  With now = 0 the expiry is the ttl itself (0: none).
	 */
	ttl_usec = qc_expiry(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), 0);
	qc_tags_from_array(PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3), &tags);

	v = qc_fetch_lookup(&fk, as_text);
	if (v != NULL)
		return v;
	if (!qc_enabled)
		return qc_fetch_compute(&fk, wrapped, &tags, ttl_usec, as_text);

	/* single flight: one session computes, the others wait for it */
	flight = qc_flight_begin(&fk.flight);
	if (flight == QC_FLIGHT_WAITED)
	{
		v = qc_fetch_lookup(&fk, as_text);
		if (v != NULL)
			return v;
	}
	if (flight != QC_FLIGHT_LEAD)
		return qc_fetch_compute(&fk, wrapped, &tags, ttl_usec, as_text);

	PG_TRY();
	{
		v = qc_fetch_compute(&fk, wrapped, &tags, ttl_usec, as_text);
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

/*
 * qcache_fetch_cached(key text, query text) returns jsonb: what
 * qcache_fetch(key, query) would return from the cache now, under the
 * same rule, without running the query; NULL where it would run it.
 * Counts nothing.
 */
Datum
qcache_fetch_cached(PG_FUNCTION_ARGS)
{
	QcFetchKey	fk;
	QcValue		v;

	qc_require_loaded();
	(void) qc_fetch_key(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), &fk);
	if (!qc_enabled || !qc_fetch_find(&fk, &v))
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(qc_value_jsonb(&v));
}
