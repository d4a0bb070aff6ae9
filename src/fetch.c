/*-------------------------------------------------------------------------
 *
 * fetch.c
 *		qcache_fetch: read-through caching of one SELECT's rows.
 *
 * On a hit qcache_fetch returns the cached value like qcache_get.  On a miss
 * it runs the query through SPI as the calling role and caches its rows as
 * a jsonb array of objects, one per row, in the query's order.
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
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/plancache.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "qcache.h"
#include "sqlfuncs.h"

PG_FUNCTION_INFO_V1(qcache_fetch);

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

/*
 * Run the wrapped query; returns its jsonb array in the caller's context.
 * Prepared first, so that what runs is checked to be one statement with
 * one jsonb column, whatever the text turned out to hold.
 */
static Jsonb *
qc_run_query(const char *wrapped)
{
	SPIPlanPtr	plan;
	List	   *sources;
	CachedPlanSource *src;
	Datum		d;
	bool		isnull;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(wrapped, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	src = list_length(sources) == 1 ? linitial(sources) : NULL;
	if (src == NULL || src->resultDesc == NULL || src->resultDesc->natts != 1 ||
		TupleDescAttr(src->resultDesc, 0)->atttypid != JSONBOID)
		qc_reject_query("The query does not stand alone as one SELECT.");
	rc = SPI_execute_plan(plan, NULL, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "qcache_fetch query returned %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "qcache_fetch query returned null");
	d = SPI_datumTransfer(d, false, -1);
	SPI_finish();
	return DatumGetJsonbP(d);
}

/*
 * qcache_fetch(key text, query text, ttl int, tags text[]) returns jsonb
 */
Datum
qcache_fetch(PG_FUNCTION_ARGS)
{
	QcKey		key;
	QcTags		tags;
	char	   *wrapped;
	TimestampTz ttl_usec;
	TimestampTz now;
	Jsonb	   *v;

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

	v = qc_lookup(&key);
	if (v != NULL)
		PG_RETURN_JSONB_P(v);

	v = qc_run_query(wrapped);
	now = GetCurrentTimestamp();
	(void) qc_store(&key, v, &tags, now, ttl_usec == 0 ? 0 : now + ttl_usec);
	PG_RETURN_JSONB_P(v);
}
