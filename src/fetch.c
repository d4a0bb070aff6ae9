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
 * SELECT INTO, a data-modifying WITH and FOR UPDATE/SHARE are rejected with
 * 22023 (invalid_parameter_value).  The raw grammar depends on no catalog,
 * so each backend remembers the query texts it has accepted (a small
 * direct-mapped cache) and a hit costs one hash and one strcmp, not a
 * parse.  The query then runs wrapped as
 *
 *		SELECT COALESCE(jsonb_agg(qcache_r.*), '[]') FROM (<query>) qcache_r
 *
 * with SPI in read-only mode (the caller's snapshot, and SPI's own check
 * that every plan is read-only, as a second line of defence).  A query that
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
#include "nodes/parsenodes.h"
#include "parser/parser.h"
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
 * Parse the query text, reject anything but one read-only SELECT, and
 * return the wrapped statement to run (palloc'd).
 */
static char *
qc_check_query(const char *query)
{
	List	   *stmts;
	RawStmt    *raw;
	SelectStmt *sel;
	ListCell   *lc;
	StringInfoData buf;
	int			len;

	stmts = raw_parser(query, RAW_PARSE_DEFAULT);
	if (list_length(stmts) != 1)
		qc_reject_query(list_length(stmts) == 0 ?
						"The query is empty." :
						"The query holds more than one statement.");
	raw = linitial_node(RawStmt, stmts);
	if (!IsA(raw->stmt, SelectStmt))
		qc_reject_query("The statement is not a SELECT.");
	sel = (SelectStmt *) raw->stmt;
	if (sel->intoClause != NULL)
		qc_reject_query("SELECT INTO creates a table.");
	if (sel->lockingClause != NIL)
		qc_reject_query("SELECT FOR UPDATE or FOR SHARE locks rows.");
	if (sel->withClause != NULL)
	{
		foreach(lc, sel->withClause->ctes)
		{
			CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

			if (!IsA(cte->ctequery, SelectStmt))
				qc_reject_query("A WITH query modifies data.");
		}
	}

	/* The statement's own text, without a trailing semicolon. */
	len = raw->stmt_len > 0 ? raw->stmt_len :
		(int) strlen(query) - Max(raw->stmt_location, 0);
	initStringInfo(&buf);
	appendStringInfoString(&buf,
						   "SELECT COALESCE(pg_catalog.jsonb_agg(qcache_r.*), "
						   "'[]'::pg_catalog.jsonb) FROM (\n");
	appendBinaryStringInfo(&buf, query + Max(raw->stmt_location, 0), len);
	appendStringInfoString(&buf, "\n) qcache_r");
	return buf.data;
}

/* The wrapped statement for a query, from the per-backend cache or parsed. */
static const char *
qc_checked_query(const char *query)
{
	uint32		h = hash_bytes((const unsigned char *) query, strlen(query));
	QcCheckedQuery *slot = &checked[h & (QC_QUERY_CACHE_SIZE - 1)];
	char	   *wrapped;

	if (slot->query != NULL && slot->hash == h &&
		strcmp(slot->query, query) == 0)
		return slot->wrapped;

	wrapped = qc_check_query(query);	/* raises if not acceptable */

	if (slot->query != NULL)
	{
		pfree(slot->query);
		pfree(slot->wrapped);
	}
	slot->hash = h;
	slot->query = MemoryContextStrdup(TopMemoryContext, query);
	slot->wrapped = MemoryContextStrdup(TopMemoryContext, wrapped);
	pfree(wrapped);
	return slot->wrapped;
}

/* Run the wrapped query; returns its jsonb array in the caller's context. */
static Jsonb *
qc_run_query(const char *wrapped)
{
	Datum		d;
	bool		isnull;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute(wrapped, true, 1);
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
	const char *wrapped;
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
