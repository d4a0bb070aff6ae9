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

#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_param.h"
#include "parser/parser.h"
#include "utils/plancache.h"
#include "utils/acl.h"
#include "utils/array.h"
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

/* Size of the per-backend cache of accepted queries and plans (power of 2). */
#define QC_QUERY_CACHE_SIZE		256

/* Most parameters a fetch query takes ($1 .. $n). */
#define QC_MAX_PARAMS			100

/*
 * One accepted query text: its check, and once it ran, its saved plan.
 * The plan is PostgreSQL's own cached plan (SPI_keepplan), which
 * revalidates itself after DDL and search_path changes; planner_funcs and
 * planner_caller record what deps.c's planner walk saw when it was last
 * planned, replayed on executions that reuse the plan without planning
 * (deps.c cannot see them then).  busy counts the executions in progress:
 * a busy slot is never reused (a fetch inside a fetch query could
 * otherwise free the plan that runs it).
 */
typedef struct QcCheckedQuery
{
	uint32		hash;
	uint64		hash64;			/* the text's 64-bit hash, for its key */
	bool		scs;			/* standard_conforming_strings when checked */
	int			bq;				/* backslash_quote when checked */
	char	   *query;			/* the text as given; NULL: empty slot */
	char	   *wrapped;		/* the statement to run */
	int			nparams;		/* highest $n in the text */
	int			busy;			/* executions of plan in progress */
	SPIPlanPtr	plan;			/* saved plan, or NULL before the first run */
	Oid			plan_role;		/* the role it was parsed and planned as */
	uint64		plan_settings;	/* qc_base_settings_digest() then: base
								 * settings and the resolved search_path */
	TimestampTz plan_names;		/* qc_names_stamp() then */
	Oid		   *ptypes;			/* its parameter types (nparams) */
	List	   *planner_funcs;	/* functions the planner walk noted */
	bool		planner_caller; /* the walk found CURRENT_USER & co */
	List	   *parse_nsps;		/* schemas its parse searched by name */
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
	else if (IsA(node, ParamRef) && context != NULL)
	{
		int		   *maxparam = (int *) context;
		int			n = ((ParamRef *) node)->number;

		if (n > QC_MAX_PARAMS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("qcache_fetch query has too many parameters"),
					 errdetail("It refers to $%d; the limit is $%d.", n, QC_MAX_PARAMS)));
		*maxparam = Max(*maxparam, n);
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
 * return the wrapped statement to run (palloc'd) and the highest $n the
 * text refers to.  The wrapped text is
 * parsed again: it too must be exactly one SELECT, whatever the query
 * holds (comments, quotes).
 */
static char *
qc_check_query(const char *query, int *nparams)
{
	RawStmt    *raw;
	StringInfoData buf;
	int			len;

	raw = qc_parse_one_select(query);
	*nparams = 0;
	(void) qc_check_raw_walker(raw->stmt, nparams);

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

/* Forget a slot's saved plan. */
static void
qc_slot_forget_plan(QcCheckedQuery *slot)
{
	if (slot->plan != NULL)
		SPI_freeplan(slot->plan);
	if (slot->ptypes != NULL)
		pfree(slot->ptypes);
	list_free(slot->planner_funcs);
	list_free(slot->parse_nsps);
	slot->parse_nsps = NIL;
	slot->plan = NULL;
	slot->ptypes = NULL;
	slot->plan_role = InvalidOid;
	slot->planner_funcs = NIL;
	slot->planner_caller = false;
}

/*
 * The per-backend cache entry of an accepted query: checked now if it is
 * not in the cache (raises if not acceptable).  The lexer's settings are
 * part of the cache key: the same text may lex differently with another
 * standard_conforming_strings.  A text whose slot is busy (a fetch inside
 * the query of another) gets a transient entry, palloc'd.
 */
static QcCheckedQuery *
qc_checked_query(const char *query)
{
	uint32		h = hash_bytes((const unsigned char *) query, strlen(query));
	QcCheckedQuery *slot = &checked[h & (QC_QUERY_CACHE_SIZE - 1)];
	char	   *wrapped;
	int			nparams;

	if (slot->query != NULL && slot->hash == h &&
		slot->scs == standard_conforming_strings &&
		slot->bq == backslash_quote &&
		strcmp(slot->query, query) == 0)
		return slot;

	wrapped = qc_check_query(query, &nparams);	/* raises if not acceptable */

	if (slot->busy > 0)
		slot = palloc0(sizeof(QcCheckedQuery));
	else if (slot->query != NULL)
	{
		pfree(slot->query);
		pfree(slot->wrapped);
		qc_slot_forget_plan(slot);
	}
	slot->hash = h;
	slot->hash64 = hash_bytes_extended((const unsigned char *) query,
									   strlen(query), 0);
	slot->scs = standard_conforming_strings;
	slot->bq = backslash_quote;
	slot->nparams = nparams;
	if (slot >= checked && slot < checked + QC_QUERY_CACHE_SIZE)
	{
		slot->query = MemoryContextStrdup(TopMemoryContext, query);
		slot->wrapped = MemoryContextStrdup(TopMemoryContext, wrapped);
	}
	else
	{
		slot->query = pstrdup(query);
		slot->wrapped = wrapped;
	}
	return slot;
}

/* A fetch key: the caller's key and the variant a result lives under. */
typedef struct QcFetchKey
{
	QcKey		user;			/* as given, or derived (NULL key) */
	char	   *query;			/* the query text as given */
	QcCheckedQuery *slot;		/* the checked query; NULL until checked */
	int			nparams;
	char	  **params;			/* text of each parameter, NULL for null */
	QcKey		shared;			/* key \0 'q' digest */
	QcKey		scoped;			/* key \0 'r' digest; len 0 until built */
	QcKey		session;		/* key \0 's' digest; len 0 until built */
	QcKey		flight;			/* for single flight: the shared variant */
	QcKey		l2;				/* the shared variant's name in Redis (key
								 * \0 'Q' SHA-256); len 0: none */
	bool		l2_tried;		/* l2 was built, or cannot be */
	uint8		l2_digest[PG_SHA256_DIGEST_LENGTH];
	/* the caller's options, which an entry must suit (qc_fetch_suits) */
	TimestampTz ttl_usec;		/* 0: no limit of the caller's */
	TimestampTz stale_usec;
	uint64		tagsig;			/* of the tags given; 0: none given */
	bool		table_tags;
} QcFetchKey;

/* Write v as 16 lower-case hex digits (what %016llx prints) at dst. */
static void
qc_hex64(char *dst, uint64 v)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		dst[i] = hex[v & 0xf];
}

/*
 * Build the variant `kind` of a key for a digest: the key, a zero byte,
 * the kind and the digest in hex.  (Written by hand: it is on every hit.)
 */
static void
qc_variant_key(const QcKey *user, char kind, uint64 digest, QcKey *out)
{
	char	   *data = palloc(user->len + 19);

	memcpy(data, user->data, user->len);
	data[user->len] = '\0';
	data[user->len + 1] = kind;
	qc_hex64(data + user->len + 2, digest);
	data[user->len + 18] = '\0';
	*out = *user;
	out->data = data;
	out->len = user->len + 18;
	/* the same bucket as the key (qc_hash_key stops at the zero byte) */
	out->hash = user->hash;
}

/*
 * The scoped ('r') or session ('s') variant, built on first use (it reads
 * every setting).
 */
static const QcKey *
qc_scoped_key(QcFetchKey *fk, char kind)
{
	QcKey	   *k = kind == 'r' ? &fk->scoped : &fk->session;

	if (k->len == 0)
		qc_variant_key(&fk->user, kind,
					   qc_fetch_digest(fk->query, fk->nparams, fk->params, kind),
					   k);
	return k;
}

/*
 * The shared variant's name in Redis, built on first use: the key, a zero
 * byte, 'Q' and the hex SHA-256 digest of qc_fetch_l2_digest.  NULL when
 * the result may not be shared through Redis (this session has a
 * temporary schema).
 */
static const QcKey *
qc_l2_fetch_key(QcFetchKey *fk)
{
	if (!fk->l2_tried)
	{
		fk->l2_tried = true;
		if (qc_fetch_l2_digest(fk->query, fk->nparams, fk->params,
							   fk->l2_digest))
		{
			StringInfoData buf;
			int			i;

			initStringInfo(&buf);
			appendBinaryStringInfo(&buf, fk->user.data, fk->user.len);
			appendStringInfoChar(&buf, '\0');
			appendStringInfoChar(&buf, 'Q');
			for (i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
				appendStringInfo(&buf, "%02x", fk->l2_digest[i]);
			fk->l2 = fk->user;
			fk->l2.data = buf.data;
			fk->l2.len = buf.len;
		}
	}
	return fk->l2.len > 0 ? &fk->l2 : NULL;
}

/*
 * Build the fetch key of (key, query, params).  A NULL key is derived from
 * the query text and the parameter values: "q:" and 16 hex digits.  The
 * parameters are text, NULL elements are SQL nulls.
 *
 * The query is not parsed here: a hit needs only the text, which the
 * digest covers whole (with the lexer's settings), so an entry can only
 * exist under a text that was checked when it was stored.  A miss checks
 * it (qc_fetch_check) before it runs anything.
 */
static void
qc_fetch_key(text *key, text *query, ArrayType *params, QcFetchKey *fk)
{
	uint64		h = 0;

	memset(fk, 0, sizeof(*fk));
	fk->query = text_to_cstring(query);
	/* for a derived key only: not a digest */
	if (key == NULL)
		h = hash_bytes_extended((const unsigned char *) fk->query,
								strlen(fk->query), 0);
	if (params != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			i;

		if (ARR_NDIM(params) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("qcache_fetch parameters must be a one-dimensional array")));
		deconstruct_array(params, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &fk->nparams);
		fk->params = palloc(sizeof(char *) * Max(fk->nparams, 1));
		for (i = 0; i < fk->nparams; i++)
		{
			fk->params[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
			/* a null hashes apart from every text, the empty one included */
			if (key == NULL)
				h = hash_combine64(h, nulls[i] ? UINT64CONST(0x9e3779b97f4a7c15) :
								   hash_bytes_extended((const unsigned char *) fk->params[i],
													   strlen(fk->params[i]), (uint64) i + 1));
		}
	}
	if (key != NULL)
		qc_key_from_text(key, &fk->user);
	else
	{
		char	   *derived = palloc(19);

		derived[0] = 'q';
		derived[1] = ':';
		qc_hex64(derived + 2, h);	/* as "q:%016llx" */
		derived[18] = '\0';
		fk->user.dbid = MyDatabaseId;
		fk->user.data = derived;
		fk->user.len = 18;
		fk->user.hash = qc_hash_key(fk->user.dbid, fk->user.data, fk->user.len);
	}
	qc_variant_key(&fk->user, 'q',
				   qc_fetch_digest(fk->query, fk->nparams, fk->params, 'q'),
				   &fk->shared);
	fk->flight = fk->shared;
	fk->flight.hash = hash_combine64(fk->user.hash,
									 hash_bytes_extended((const unsigned char *) fk->shared.data,
														 fk->shared.len, 0));
}

/*
 * Check the query of a fetch key (raises if it is not acceptable), and
 * that it was given as many parameters as the highest $n it refers to.
 */
static void
qc_fetch_check(QcFetchKey *fk)
{
	if (fk->slot != NULL)
		return;
	fk->slot = qc_checked_query(fk->query);
	if (fk->nparams != fk->slot->nparams)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("qcache_fetch query takes %d parameters, %d given",
						fk->slot->nparams, fk->nparams),
				 fk->slot->nparams == 0 ?
				 errhint("The query refers to no $n: call qcache_fetch without params.") :
				 errhint("Pass one value for each of $1 .. $%d, in order, as params => ARRAY[...]::text[].",
						 fk->slot->nparams)));
}

/*
 * A fetch entry's dependency data is an envelope, then the dependency list
 * that security.c checks.  The envelope holds the time until which the
 * value is fresh (0: as long as it lives; past it, the entry is kept for
 * its stale-while-revalidate window only), when it was computed, and the
 * options it was stored with: the signature of the tags given and whether
 * it carries the table: tags.  A caller is served an entry only if the
 * entry suits the caller's own options (qc_fetch_suits): no older than
 * the caller's ttl (plus the caller's stale_ttl), with the tags the caller
 * gives, and with table tags if the caller asks for them.  So a caller
 * that asks for less cannot decide what a caller that asks for more gets.
 */
typedef struct QcEnvelope
{
	TimestampTz fresh_until;
	TimestampTz computed;
	uint64		tagsig;
	uint64		table_tags;
} QcEnvelope;

#define QC_ENVELOPE		sizeof(QcEnvelope)

/* The signature of a list of tags, in any order; 0 for none. */
static uint64
qc_tag_signature(const QcTags *tags)
{
	uint64		sig = 0;

	for (int i = 0; i < tags->ntags; i++)
		sig += hash_bytes_extended((const unsigned char *) tags->tag[i],
								   tags->len[i], 0x7a6) | 1;
	return sig;
}

/* May the caller be served this fetch entry? (security.c's rule) */
static bool
qc_fetch_allow(const QcValue *v, bool scoped)
{
	return v->depbytes >= QC_ENVELOPE &&
		qc_deps_allow(v->deps + QC_ENVELOPE, v->depbytes - QC_ENVELOPE, scoped);
}

/*
 * Until when a fetch entry is fresh for this caller (0: always, while it
 * lives): the earlier of the entry's own and the caller's ttl counted
 * from when it was computed.
 */
static TimestampTz
qc_fresh_until(const QcFetchKey *fk, const QcValue *v)
{
	QcEnvelope	e;

	memcpy(&e, v->deps, sizeof(e));
	if (fk->ttl_usec > 0 &&
		(e.fresh_until == 0 || e.computed + fk->ttl_usec < e.fresh_until))
		return e.computed + fk->ttl_usec;
	return e.fresh_until;
}

/* Does the entry suit the caller's options?  (See QcEnvelope.) */
static bool
qc_fetch_suits(const QcFetchKey *fk, const QcValue *v, TimestampTz now)
{
	QcEnvelope	e;

	if (v->depbytes < QC_ENVELOPE)
		return false;
	memcpy(&e, v->deps, sizeof(e));
	if (fk->table_tags && !e.table_tags)
		return false;
	if (fk->tagsig != 0 && e.tagsig != fk->tagsig)
		return false;
	if (fk->ttl_usec > 0 &&
		now >= e.computed + fk->ttl_usec + fk->stale_usec)
		return false;
	return true;
}

/* ---------- fetch results through Redis ---------- */

/*
 * The x field of a fetch result's metadata in Redis: what a reader needs
 * to check that the entry is the one it would compute and may be served,
 * and to copy it into its L1 as an entry of the same rule.  "qf1:" and the
 * hex (JSON-safe, no zero byte) of:
 *
 *		uint64 system identifier | Oid database | char kind ('q') |
 *		uint8 digest[32] | uint8 flags | Oid owner |
 *		uint16 n | n x (uint16 len, bytes): the entry's node-internal tags |
 *		uint32 len, bytes: the envelope and dependency list (QcEnvelope)
 *
 * Native byte order: only nodes of one cluster read it, and a standby runs
 * on the primary's architecture.  Whatever does not parse, or does not
 * match what the reader computed for its own caller, is a miss.
 */
#define QC_L2_X_MAGIC	"qf1:"

static void
qc_x_put(StringInfo buf, const void *p, size_t n)
{
	const uint8 *b = (const uint8 *) p;
	size_t		i;

	for (i = 0; i < n; i++)
		appendStringInfo(buf, "%02x", b[i]);
}

static char *
qc_fetch_l2_x(const QcFetchKey *fk, uint8 flags, Oid owner,
			  const QcTags *internal, const char *deps, uint32 depbytes)
{
	StringInfoData buf;
	uint64		sysid = GetSystemIdentifier();
	char		kind = 'q';
	uint16		n = (uint16) internal->ntags;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, QC_L2_X_MAGIC);
	qc_x_put(&buf, &sysid, sizeof(sysid));
	qc_x_put(&buf, &MyDatabaseId, sizeof(Oid));
	qc_x_put(&buf, &kind, 1);
	qc_x_put(&buf, fk->l2_digest, PG_SHA256_DIGEST_LENGTH);
	qc_x_put(&buf, &flags, 1);
	qc_x_put(&buf, &owner, sizeof(Oid));
	qc_x_put(&buf, &n, sizeof(n));
	for (i = 0; i < internal->ntags; i++)
	{
		uint16		len = (uint16) internal->len[i];

		qc_x_put(&buf, &len, sizeof(len));
		qc_x_put(&buf, internal->tag[i], len);
	}
	qc_x_put(&buf, &depbytes, sizeof(depbytes));
	qc_x_put(&buf, deps, depbytes);
	return buf.data;
}

/* A lower-case hex digit's value, or -1. */
static int
qc_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Take n bytes off a decoded x field. */
static bool
qc_x_get(const uint8 **p, const uint8 *end, void *dst, size_t n)
{
	if ((size_t) (end - *p) < n)
		return false;
	memcpy(dst, *p, n);
	*p += n;
	return true;
}

/*
 * Parse and check the x field of a fetch result read from Redis under
 * fk's name: this cluster, this database, the shared kind, the digest the
 * caller computed, flags of a shared fetch result.  Fills v's flags, owner
 * and dependency data, and internal with the entry's node-internal tags.
 * False for anything else, never an error.
 */
static bool
qc_fetch_l2_x_parse(const QcFetchKey *fk, const char *x, size_t xlen,
					QcValue *v, QcTags *internal)
{
	size_t		mlen = strlen(QC_L2_X_MAGIC);
	size_t		blen;
	uint8	   *bin;
	const uint8 *p;
	const uint8 *end;
	uint64		sysid;
	Oid			db;
	char		kind;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	uint16		n;
	uint32		depbytes;
	size_t		i;

	if (x == NULL || xlen < mlen || memcmp(x, QC_L2_X_MAGIC, mlen) != 0 ||
		(xlen - mlen) % 2 != 0 || strlen(x) != xlen)
		return false;
	blen = (xlen - mlen) / 2;
	bin = palloc(Max(blen, 1));
	for (i = 0; i < blen; i++)
	{
		int			hi = qc_hexval(x[mlen + 2 * i]);
		int			lo = qc_hexval(x[mlen + 2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		bin[i] = (uint8) (hi << 4 | lo);
	}
	p = bin;
	end = bin + blen;
	if (!qc_x_get(&p, end, &sysid, sizeof(sysid)) ||
		!qc_x_get(&p, end, &db, sizeof(db)) ||
		!qc_x_get(&p, end, &kind, 1) ||
		!qc_x_get(&p, end, digest, sizeof(digest)) ||
		!qc_x_get(&p, end, &v->flags, 1) ||
		!qc_x_get(&p, end, &v->owner, sizeof(Oid)) ||
		!qc_x_get(&p, end, &n, sizeof(n)))
		return false;
	if (sysid != GetSystemIdentifier() || db != MyDatabaseId || kind != 'q' ||
		memcmp(digest, fk->l2_digest, sizeof(digest)) != 0 ||
		(v->flags & ~QC_ENTRY_JSON_TEXT) != QC_ENTRY_FETCH ||
		n > QC_MAX_ENTRY_TAGS)
		return false;
	internal->ntags = 0;
	internal->tag = palloc(sizeof(char *) * Max(n, 1));
	internal->len = palloc(sizeof(uint32) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		uint16		len;
		char	   *t;

		if (!qc_x_get(&p, end, &len, sizeof(len)) || len == 0 ||
			len > QC_MAX_TAG_LEN || (size_t) (end - p) < len ||
			memchr(p, '\0', len) != NULL || p[0] != QC_INTERNAL_TAG_BYTE)
			return false;
		t = palloc(len + 1);
		memcpy(t, p, len);
		t[len] = '\0';
		p += len;
		internal->tag[internal->ntags] = t;
		internal->len[internal->ntags++] = len;
	}
	if (!qc_x_get(&p, end, &depbytes, sizeof(depbytes)) ||
		depbytes < QC_ENVELOPE || depbytes > PG_UINT16_MAX ||
		(size_t) (end - p) != depbytes)
		return false;
	v->deps = palloc(depbytes);
	memcpy(v->deps, p, depbytes);
	v->depbytes = depbytes;
	return true;
}

/*
 * Find the shared result in Redis, under the rule of an L1 hit: its x
 * field names this cluster, this database and the variant the caller
 * computed; no invalidation this node knows of (its node-internal tags
 * included) came after its build point; it suits the caller's options;
 * and the caller passes every privilege check its execution made.  With
 * count, an L2 hit is counted only when it is served (an L2 miss
 * otherwise), and the entry is copied into L1 with its flags, owner,
 * dependency list and tags, so that later L1 hits check the same.
 */
static bool
qc_fetch_find_l2(QcFetchKey *fk, QcValue *v, bool count)
{
	const QcKey *k;
	QcL2Value	lv;
	QcTags		internal;
	uint64		removals;
	bool		ok;

	if (!qc_l2_usable() || (k = qc_l2_fetch_key(fk)) == NULL)
		return false;
	removals = pg_atomic_read_u64(&qc_shared->l2_removals);
	memset(v, 0, sizeof(*v));
	ok = qc_l2_get_uncounted(k, &lv) &&
		qc_fetch_l2_x_parse(fk, lv.x, lv.x_len, v, &internal) &&
		qc_l2_value_fresh(MyDatabaseId, &internal, lv.build) &&
		qc_fetch_suits(fk, v, GetCurrentTimestamp()) &&
		qc_fetch_allow(v, false) &&
		qc_l2_json_valid(lv.json, lv.len);
	if (ok)
	{
		if (v->flags & QC_ENTRY_JSON_TEXT)
			v->value = cstring_to_text_with_len(lv.json, lv.len);
		else
			v->value = qc_l2_json_to_jsonb(lv.json, lv.len);
		ok = v->value != NULL;
	}
	if (count)
		qc_count(ok ? QC_STAT_L2_HITS : QC_STAT_L2_MISSES, 1);
	if (!ok || !count)
		return ok;

	/* into L1: the public tags Redis checked, and the node-internal ones */
	if (pg_atomic_read_u64(&qc_shared->l2_removals) == removals)
	{
		QcTags		tags;
		QcSetInfo	info;
		int			i;

		tags.ntags = 0;
		tags.tag = palloc(sizeof(char *) * (lv.tags.ntags + internal.ntags + 1));
		tags.len = palloc(sizeof(uint32) * (lv.tags.ntags + internal.ntags + 1));
		for (i = 0; i < lv.tags.ntags; i++)
			if (!qc_tag_is_local(lv.tags.tag[i]))
			{
				tags.tag[tags.ntags] = lv.tags.tag[i];
				tags.len[tags.ntags++] = lv.tags.len[i];
			}
		for (i = 0; i < internal.ntags; i++)
		{
			tags.tag[tags.ntags] = internal.tag[i];
			tags.len[tags.ntags++] = internal.len[i];
		}
		memset(&info, 0, sizeof(info));
		info.now = GetCurrentTimestamp();
		info.expires = lv.pttl_ms > 0 ?
			info.now + (TimestampTz) lv.pttl_ms * 1000 : 0;
		info.build = lv.build;
		info.owner = v->owner;
		info.flags = v->flags;
		info.deps = v->deps;
		info.depbytes = v->depbytes;
		info.from_l2 = true;
		if (tags.ntags <= QC_MAX_ENTRY_TAGS)
			(void) qc_store(&fk->shared, (struct varlena *) v->value, &tags,
							&info);
		pg_memory_barrier();
		if (pg_atomic_read_u64(&qc_shared->l2_removals) != removals)
			(void) qc_store_remove(&fk->shared);
	}
	return true;
}

/*
 * Find the entry a fetch may serve the caller: the shared result if the
 * caller passes its checks, or else the caller's own scoped one (its role
 * and settings), or else this session's own.
 */
static bool
qc_fetch_find(QcFetchKey *fk, QcValue *v)
{
	TimestampTz now = GetCurrentTimestamp();

	if (qc_store_get(&fk->shared, now, v) &&
		(v->flags & (QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED)) == QC_ENTRY_FETCH &&
		qc_fetch_suits(fk, v, now) && qc_fetch_allow(v, false))
		return true;
	if (qc_store_get(qc_scoped_key(fk, 'r'), now, v) &&
		(v->flags & (QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED)) ==
		(QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED) &&
		v->owner == GetUserId() && qc_fetch_suits(fk, v, now) &&
		qc_fetch_allow(v, true))
		return true;
	return qc_store_get(qc_scoped_key(fk, 's'), now, v) &&
		(v->flags & (QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED)) ==
		(QC_ENTRY_FETCH | QC_ENTRY_ROLE_SCOPED) &&
		v->owner == GetUserId() && qc_fetch_suits(fk, v, now) &&
		qc_fetch_allow(v, true);
}

/*
 * Look a fetch up, as the requested type: jsonb, or for qcache_fetch_json
 * the JSON text.  Counts one hit or one miss.  NULL on a miss.
 */
static struct varlena *
qc_fetch_lookup(QcFetchKey *fk, bool as_text, TimestampTz *fresh_until)
{
	QcValue		v;

	if (!qc_enabled)
	{
		qc_count(QC_STAT_MISSES, 1);
		qc_ns_count(&fk->user, QC_NS_MISSES);
		return NULL;
	}
	if (!qc_fetch_find(fk, &v))
	{
		/* as qcache_get: an L1 miss, then an L2 hit or miss */
		qc_count(QC_STAT_MISSES, 1);
		qc_ns_count(&fk->user, QC_NS_MISSES);
		if (!qc_fetch_find_l2(fk, &v, true))
			return NULL;
		if (fresh_until)
			*fresh_until = qc_fresh_until(fk, &v);
		return as_text ? (struct varlena *) qc_value_text(&v) :
			(struct varlena *) qc_value_jsonb(&v);
	}
	qc_count(QC_STAT_HITS, 1);
	if (fresh_until)
		*fresh_until = qc_fresh_until(fk, &v);
	qc_ns_count(&fk->user, QC_NS_HITS);
	return as_text ? (struct varlena *) qc_value_text(&v) :
		(struct varlena *) qc_value_jsonb(&v);
}

/* Parameter types as PREPARE infers them (parserSetup hook). */
typedef struct QcVarParams
{
	Oid		   *types;
	int			ntypes;
} QcVarParams;

static void
qc_varparams_setup(ParseState *pstate, void *arg)
{
	QcVarParams *vp = (QcVarParams *) arg;

	setup_parse_variable_parameters(pstate, &vp->types, &vp->ntypes);
}

/*
 * Reject a query whose rows have two columns of one name: as JSON objects,
 * one would silently replace the other.
 */
static void
qc_check_columns(CachedPlanSource *src)
{
	Query	   *q = linitial_node(Query, src->query_list);
	RangeTblEntry *rte;
	ListCell   *lc;
	List	   *seen = NIL;

	if (list_length(q->rtable) < 1)
		return;
	rte = linitial_node(RangeTblEntry, q->rtable);
	if (rte->rtekind != RTE_SUBQUERY || rte->subquery == NULL)
		return;
	foreach(lc, rte->subquery->targetList)
	{
		TargetEntry *te = lfirst_node(TargetEntry, lc);
		ListCell   *lc2;

		if (te->resjunk || te->resname == NULL)
			continue;
		foreach(lc2, seen)
			if (strcmp((char *) lfirst(lc2), te->resname) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("qcache_fetch query returns more than one column named \"%s\"",
							te->resname),
					 errdetail("Rows are cached as JSON objects, whose keys must differ."),
					 errhint("Give each column a name of its own with AS.")));
		seen = lappend(seen, te->resname);
	}
}

/*
 * The slot's plan and its parameter types, prepared now if it has none for
 * the current role: parameter types as PREPARE would infer them (an
 * unresolved one is text), the statement checked to be one SELECT with one
 * jsonb column and no duplicate output names.  A plan is kept per role,
 * because parsing and planning check privileges that the executor does
 * not check again (USAGE on the schemas the text names, EXECUTE on the SQL
 * functions the planner inlines): another role gets a plan of its own.  A
 * transient slot's plan, or one made while the slot's plan of another
 * role is running, is not kept.  Caller is connected to SPI.
 */
static SPIPlanPtr
qc_slot_plan(QcCheckedQuery *slot, Oid **ptypes)
{
	bool		keep = slot >= checked && slot < checked + QC_QUERY_CACHE_SIZE;
	Oid		   *types = NULL;
	SPIPlanPtr	plan;
	List	   *sources;
	CachedPlanSource *src;
	int			i;

	uint64		settings = qc_base_settings_digest();
	bool		unsettled;
	TimestampTz names = qc_names_stamp(&unsettled);

	if (slot->plan != NULL && slot->plan_role == GetUserId() &&
		slot->plan_settings == settings && slot->plan_names == names &&
		!unsettled)
	{
		*ptypes = slot->ptypes;
		return slot->plan;
	}
	if (slot->plan != NULL)
	{
		if (slot->busy > 1)
			keep = false;
		else
			qc_slot_forget_plan(slot);
	}
	if (unsettled)
		keep = false;			/* a name may change meaning at commit */
	if (slot->nparams > 0)
	{
		QcVarParams vp = {NULL, 0};
		SPIPrepareOptions opts;

		memset(&opts, 0, sizeof(opts));
		opts.parserSetup = qc_varparams_setup;
		opts.parserSetupArg = &vp;
		opts.parseMode = RAW_PARSE_DEFAULT;
		opts.cursorOptions = CURSOR_OPT_PARALLEL_OK;
		if (SPI_prepare_extended(slot->wrapped, &opts) == NULL)
			elog(ERROR, "SPI_prepare_extended failed: %s",
				 SPI_result_code_string(SPI_result));
		types = palloc0(sizeof(Oid) * slot->nparams);
		for (i = 0; i < slot->nparams; i++)
			types[i] = (i < vp.ntypes && OidIsValid(vp.types[i]) &&
						vp.types[i] != UNKNOWNOID) ? vp.types[i] : TEXTOID;
	}
	plan = SPI_prepare(slot->wrapped, slot->nparams, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		qc_reject_query("The query does not stand alone as one SELECT.");
	src = linitial(sources);
	if (src->resultDesc == NULL || src->resultDesc->natts != 1 ||
		TupleDescAttr(src->resultDesc, 0)->atttypid != JSONBOID)
		qc_reject_query("The query does not stand alone as one SELECT.");
	qc_check_columns(src);
	*ptypes = types;
	if (keep)
	{
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		if (types)
		{
			slot->ptypes = MemoryContextAlloc(TopMemoryContext,
											  sizeof(Oid) * slot->nparams);
			memcpy(slot->ptypes, types, sizeof(Oid) * slot->nparams);
			*ptypes = slot->ptypes;
		}
		slot->plan = plan;
		slot->plan_role = GetUserId();
		slot->plan_settings = settings;
		slot->plan_names = names;
	}
	return plan;
}

/* The parameters as values of the plan's types (their input functions). */
static ParamListInfo
qc_param_list(QcCheckedQuery *slot, QcFetchKey *fk, const Oid *types)
{
	ParamListInfo pl;
	int			i;

	if (fk->nparams == 0)
		return NULL;
	pl = makeParamList(fk->nparams);
	for (i = 0; i < fk->nparams; i++)
	{
		ParamExternData *p = &pl->params[i];
		Oid			typinput;
		Oid			typioparam;

		getTypeInputInfo(types[i], &typinput, &typioparam);
		p->ptype = types[i];
		p->pflags = PARAM_FLAG_CONST;
		p->isnull = fk->params[i] == NULL;
		p->value = OidInputFunctionCall(typinput, fk->params[i], typioparam, -1);
	}
	return pl;
}

/*
 * Run the query, recording its dependencies into *deps, and return its
 * jsonb array in the caller's context.  The plan is the slot's, kept for
 * the backend: a query is parsed and planned once (PostgreSQL's plan
 * cache may still replan it, with its parameters, as it does for
 * prepared statements).  When the plan is reused without planning, the
 * planner walk of deps.c does not run: what it saw last time is replayed.
 */
static Jsonb *
qc_run_query(QcFetchKey *fk, QcDeps **deps)
{
	MemoryContext caller = CurrentMemoryContext;
	QcCheckedQuery *slot = fk->slot;
	QcDeps	   *prev;
	volatile Datum d = (Datum) 0;

	prev = qc_deps_push(deps);
	slot->busy++;
	PG_TRY();
	{
		SPIPlanPtr	plan;
		SPIExecuteOptions opts;
		Oid		   *ptypes;
		ListCell   *lc;
		bool		kept;
		bool		isnull;
		int			rc;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		plan = qc_slot_plan(slot, &ptypes);
		kept = (plan == slot->plan);
		memset(&opts, 0, sizeof(opts));
		opts.params = qc_param_list(slot, fk, ptypes);
		opts.read_only = true;
		opts.tcount = 1;
		qc_deps_top_query(slot->wrapped);
		rc = SPI_execute_plan_extended(plan, &opts);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "qcache_fetch query returned %s", SPI_result_code_string(rc));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			elog(ERROR, "qcache_fetch query returned null");

		/* what the planner walk saw: remember it, or replay it */
		if ((*deps)->top_planned)
		{
			if (kept)
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				list_free(slot->planner_funcs);
				slot->planner_funcs = list_copy((*deps)->top_funcs);
				slot->planner_caller = (*deps)->top_caller;
				MemoryContextSwitchTo(old);
			}
		}
		else if (kept)
			qc_deps_replay_planner(slot->planner_funcs, slot->planner_caller);

		/* and the schemas its parse searched by name (USAGE) */
		if (kept && (*deps)->parse_nsps != NIL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			foreach(lc, (*deps)->parse_nsps)
				slot->parse_nsps = list_append_unique_oid(slot->parse_nsps,
														  lfirst_oid(lc));
			MemoryContextSwitchTo(old);
		}
		if (kept)
			qc_deps_replay_nsps(slot->parse_nsps);

		MemoryContextSwitchTo(caller);
		d = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		SPI_finish();
	}
	PG_FINALLY();
	{
		slot->busy--;
		qc_deps_pop(prev);
	}
	PG_END_TRY();
	return DatumGetJsonbP(d);
}

/*
 * Name a shared fetch result for Redis (info->l2_*), if it may go there.
 *
 * Who reads it.  Its dependency list names relations, functions, roles
 * and schemas by OID, which mean the same objects within one cluster
 * only: a primary and its streaming standbys (same system identifier),
 * in the same database.  The name's digest and the x field cover both, so
 * a node of another cluster never finds it, and would refuse it if it did.
 * Scoped ('r') results do not go: their digest covers every setting not at
 * its default (port, primary_conninfo, cluster_name...), which no other
 * node shares, so they would cost a Redis write per miss for nothing, and
 * they are the results that hold one role's or one tenant's rows.  Session
 * results ('s') and those of a session with a temporary schema are the
 * session's own.
 *
 * Invalidation (SPEC 5, 7.1).  Redis checks the stamps of the tags it is
 * given, and the node that reads checks its own stamps of the tags the
 * entry carries; both must cover every tag of the L1 entry.  The given
 * tags go as they are.  Relation OID tags stay on this node, but every
 * write and every DDL that stamps one stamps the relation's table: tag
 * too (qcache_watch's triggers, ddl.c), and a statement on a parent stamps
 * its own table: tag, which entries over a child carry as an ancestor's:
 * so the result goes with the table: tag of every relation it read, even
 * with table_tags => false (extra invalidations only), and does not go if
 * one has no name.  The names tag and the function OID tags go as they
 * are: DDL stamps them in Redis too (qc_tag_l2_stamped).  Families need
 * nothing: with a Redis level a TRUNCATE stamps the database instead.  The
 * build point is the transaction's start, as for every value (qc_store).
 */
static void
qc_fetch_l2_info(QcFetchKey *fk, const QcDeps *deps, const QcTags *given,
				 const QcTags *tags, QcSetInfo *info)
{
	const QcKey *k = qc_l2_fetch_key(fk);
	QcTags	   *l2tags;
	QcTags		internal;
	ListCell   *lc;
	int			max;
	int			i;

	if (k == NULL || deps->session_bound || deps->caller_dependent)
		return;
	max = given->ntags + list_length(deps->relids) + tags->ntags;
	l2tags = palloc(sizeof(QcTags));
	l2tags->ntags = 0;
	l2tags->tag = palloc(sizeof(char *) * (max + 1));
	l2tags->len = palloc(sizeof(uint32) * (max + 1));
	for (i = 0; i < given->ntags; i++)
	{
		l2tags->tag[l2tags->ntags] = given->tag[i];
		l2tags->len[l2tags->ntags++] = given->len[i];
	}
	foreach(lc, deps->relids)
	{
		char	   *t = qc_table_tag(lfirst_oid(lc));
		int			j;
		bool		dup = false;

		if (t == NULL || strlen(t) > QC_MAX_TAG_LEN)
			return;				/* no public tag reaches it: not in Redis */
		for (j = 0; j < l2tags->ntags && !dup; j++)
			dup = strcmp(l2tags->tag[j], t) == 0;
		if (dup)
			continue;
		l2tags->tag[l2tags->ntags] = t;
		l2tags->len[l2tags->ntags++] = strlen(t);
	}
	internal.ntags = 0;
	internal.tag = palloc(sizeof(char *) * (tags->ntags + 1));
	internal.len = palloc(sizeof(uint32) * (tags->ntags + 1));
	for (i = 0; i < tags->ntags; i++)
	{
		if (!qc_tag_is_local(tags->tag[i]))
			continue;
		internal.tag[internal.ntags] = tags->tag[i];
		internal.len[internal.ntags++] = tags->len[i];
		if (qc_tag_l2_stamped(tags->tag[i]))
		{
			l2tags->tag[l2tags->ntags] = tags->tag[i];
			l2tags->len[l2tags->ntags++] = tags->len[i];
		}
	}
	/* a reader must take every tag into its L1 copy */
	if (l2tags->ntags + internal.ntags > QC_MAX_ENTRY_TAGS)
		return;
	info->l2_key = k;
	info->l2_tags = l2tags;
	info->l2_x = qc_fetch_l2_x(fk, info->flags, info->owner, &internal,
							   info->deps, info->depbytes);
}

/*
 * Run the query and store its result under the shared or the scoped
 * variant (see security.c), with the given tags plus, unless table_tags is
 * false, the tags of what its execution read.  With as_text the entry
 * holds the JSON text (QC_ENTRY_JSON_TEXT), rendered once here, and the
 * text is returned; otherwise the jsonb.
 */
static struct varlena *
qc_fetch_compute(QcFetchKey *fk, const QcTags *given, TimestampTz ttl_usec,
				 TimestampTz stale_usec, bool as_text, bool table_tags)
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

	qc_fetch_check(fk);

	/* the scoped digests read the settings as they are before the query */
	(void) qc_scoped_key(fk, 'r');
	(void) qc_scoped_key(fk, 's');
	result = qc_run_query(fk, &deps);
	value = (struct varlena *) result;
	if (as_text)
		value = (struct varlena *)
			cstring_to_text(JsonbToCString(NULL, &result->root, VARSIZE(result)));

	/*
	 * A transaction that wrote anything may have read its own uncommitted
	 * writes, which a rollback undoes: what it computes is not shared
	 * (SPEC 5), whether or not the tables it wrote are watched.
	 */
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
	{
		qc_count(QC_STAT_SETS_REJECTED, 1);
		qc_count(QC_STAT_REFUSED_WRITER, 1);
		return value;
	}

	blob = qc_deps_serialize(deps, &bloblen);
	max = given->ntags + 2 * list_length(deps->relids) +
		list_length(deps->funcs) + 1;
	if (deps->uncacheable != NULL || blob == NULL || max > PG_UINT8_MAX ||
		bloblen + QC_ENVELOPE > PG_UINT16_MAX)
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
	/* the OID tags always: table_tags => false drops only the table: tags */
	foreach(lc, deps->relids)
	{
		Oid			relid = lfirst_oid(lc);
		char	   *t = table_tags ? qc_table_tag(relid) : NULL;

		if (t != NULL)
		{
			tags.tag[tags.ntags] = t;
			tags.len[tags.ntags++] = strlen(t);
		}
		t = qc_rel_oid_tag(relid);
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
		t = qc_func_oid_tag(f->funcid);
		for (j = 0; j < tags.ntags; j++)
			if (strcmp(tags.tag[j], t) == 0)
				dup = true;
		if (dup)
			continue;
		tags.tag[tags.ntags] = t;
		tags.len[tags.ntags++] = strlen(t);
	}
	tags.tag[tags.ntags] = qc_names_tag();
	tags.len[tags.ntags++] = strlen(qc_names_tag());

	memset(&info, 0, sizeof(info));
	info.flags = QC_ENTRY_FETCH | (as_text ? QC_ENTRY_JSON_TEXT : 0);
	info.now = GetCurrentTimestamp();
	info.expires = ttl_usec == 0 ? 0 : info.now + ttl_usec + stale_usec;
	info.owner = GetUserId();
	{
		/* the envelope, then the dependency list */
		char	   *env = palloc(QC_ENVELOPE + bloblen);
		QcEnvelope	e;

		memset(&e, 0, sizeof(e));
		e.fresh_until = (ttl_usec == 0 || stale_usec == 0) ? 0 :
			info.now + ttl_usec;
		e.computed = info.now;
		e.tagsig = qc_tag_signature(given);
		e.table_tags = table_tags;
		memcpy(env, &e, QC_ENVELOPE);
		memcpy(env + QC_ENVELOPE, blob, bloblen);
		info.deps = env;
		info.depbytes = QC_ENVELOPE + bloblen;
	}
	key = &fk->shared;
	if (deps->session_bound)
	{
		ereport(DEBUG1,
				(errmsg("qcache_fetch result kept for this session"),
				 errdetail("The query's result depends on %s.", deps->dependent_why)));
		info.flags |= QC_ENTRY_ROLE_SCOPED;
		key = &fk->session;
	}
	else if (deps->caller_dependent)
	{
		ereport(DEBUG1,
				(errmsg("qcache_fetch result scoped to its role and settings"),
				 errdetail("The query's result depends on %s.", deps->dependent_why)));
		info.flags |= QC_ENTRY_ROLE_SCOPED;
		key = &fk->scoped;
	}
	if (key == &fk->shared && qc_l2_active() && !RecoveryInProgress())
		qc_fetch_l2_info(fk, deps, given, &tags, &info);
	(void) qc_store(key, value, &tags, &info);
	return value;
}

/*
 * qc_fetch_compute by the holder of the key's single-flight slot, which it
 * releases on every path.  Not inlined: two PG_TRY blocks in one function
 * make the compiler fear for its locals.
 */
static pg_noinline struct varlena *
qc_fetch_compute_lead(QcFetchKey *fk, const QcTags *tags, TimestampTz ttl_usec,
					  TimestampTz stale_usec, bool as_text, bool table_tags)
{
	struct varlena *volatile v = NULL;

	PG_TRY();
	{
		v = qc_fetch_compute(fk, tags, ttl_usec, stale_usec, as_text, table_tags);
	}
	PG_CATCH();
	{
		qc_flight_end();
		PG_RE_THROW();
	}
	PG_END_TRY();
	qc_flight_end();
	return v;
}

/* A seconds argument (NULL: 0), which must not be negative. */
static TimestampTz
qc_seconds_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	int32		secs;

	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return 0;
	secs = PG_GETARG_INT32(n);
	if (secs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what),
				 errdetail("The %s is %d.", what, secs)));
	return (TimestampTz) secs * USECS_PER_SEC;
}

/*
 * The body of qcache_fetch (jsonb) and qcache_fetch_json (json text):
 * (key text, query text, ttl int, tags text[]) and since 1.3 also
 * (..., params text[], table_tags boolean, stale_ttl int, refresh_ahead
 * int).
 *
 * Stale-while-revalidate: with a stale_ttl, an entry lives stale_ttl
 * seconds past its ttl; in that window (or refresh_ahead seconds before
 * its ttl), the first caller to get the key's single-flight slot without
 * waiting recomputes it, and every other caller is served the old value at
 * once.  Only staleness by TTL is served: an entry that a committed write
 * invalidated is never found (invalidate.c), window or not.
 */
static struct varlena *
qc_fetch_common(FunctionCallInfo fcinfo, bool as_text)
{
	QcFetchKey	fk;
	QcTags		tags;
	TimestampTz ttl_usec;
	TimestampTz stale_usec;
	TimestampTz ahead_usec;
	TimestampTz fresh_until = 0;
	struct varlena *v;
	QcFlight	flight;
	bool		table_tags = true;

	qc_require_loaded();
	if (PG_ARGISNULL(1))
		qc_null_arg_error("query");
	if (PG_ARGISNULL(0) && PG_NARGS() < 5)
		qc_null_arg_error("cache key");
	qc_fetch_key(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
				 PG_GETARG_TEXT_PP(1),
				 (PG_NARGS() > 4 && !PG_ARGISNULL(4)) ? PG_GETARG_ARRAYTYPE_P(4) : NULL,
				 &fk);
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
		table_tags = PG_GETARG_BOOL(5);
	stale_usec = qc_seconds_arg(fcinfo, 6, "stale_ttl");
	ahead_usec = qc_seconds_arg(fcinfo, 7, "refresh_ahead");

	/*
	 * Check ttl and tags before the lookup, so that bad arguments fail on
	 * hits too.  With now = 0 the expiry is the ttl itself (0: none).
	 */
	ttl_usec = qc_expiry(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), 0);
	qc_tags_from_array(PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3), &tags);
	if (ahead_usec > 0 && stale_usec == 0)
		stale_usec = 1;			/* an early refresh needs the envelope */
	fk.ttl_usec = ttl_usec;
	fk.stale_usec = stale_usec;
	fk.tagsig = qc_tag_signature(&tags);
	fk.table_tags = table_tags;

	v = qc_fetch_lookup(&fk, as_text, &fresh_until);
	if (v != NULL && fresh_until != 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		/*
		 * Past its ttl, an entry is served only to a caller that allows
		 * staleness (stale_ttl): to the others it is a miss.  Stale, or due
		 * for an early refresh: one session refreshes it.
		 */
		if (now >= fresh_until && stale_usec == 0)
			v = NULL;
		else if (now >= fresh_until - ahead_usec &&
				 qc_flight_try(&fk.flight) == QC_FLIGHT_LEAD)
			v = qc_fetch_compute_lead(&fk, &tags, ttl_usec, stale_usec,
									  as_text, table_tags);
	}
	if (v != NULL)
		return v;
	/* a bad query fails here, before other sessions wait for it */
	qc_fetch_check(&fk);
	if (!qc_enabled)
		return qc_fetch_compute(&fk, &tags, ttl_usec, stale_usec, as_text, table_tags);

	/* single flight: one session computes, the others wait for it */
	flight = qc_flight_begin(&fk.flight);
	if (flight == QC_FLIGHT_WAITED)
	{
		v = qc_fetch_lookup(&fk, as_text, NULL);
		if (v != NULL)
			return v;
	}
	if (flight != QC_FLIGHT_LEAD)
		return qc_fetch_compute(&fk, &tags, ttl_usec, stale_usec, as_text, table_tags);
	return qc_fetch_compute_lead(&fk, &tags, ttl_usec, stale_usec, as_text,
								 table_tags);
}

/*
 * qcache_fetch(key text, query text, ttl int, tags text[]
 *				[, params text[], table_tags boolean]) returns jsonb
 */
Datum
qcache_fetch(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(qc_fetch_common(fcinfo, false));
}

/*
 * qcache_fetch_json(key text, query text, ttl int, tags text[]
 *					 [, params text[], table_tags boolean]) returns json:
 * the same rows as qcache_fetch, kept and returned as JSON text, so that a
 * hit is sent without turning jsonb into text.
 */
Datum
qcache_fetch_json(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(qc_fetch_common(fcinfo, true));
}

/*
 * qcache_fetch_cached(key text, query text, params text[]) returns jsonb:
 * what qcache_fetch(key, query, params => params) would return from the
 * cache now, under the same rule, without running the query; NULL where
 * it would run it.  Counts nothing.  Not strict: a NULL key is derived.
 */
Datum
qcache_fetch_cached(PG_FUNCTION_ARGS)
{
	QcFetchKey	fk;
	QcValue		v;

	qc_require_loaded();
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	qc_fetch_key(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
				 PG_GETARG_TEXT_PP(1),
				 (PG_NARGS() > 2 && !PG_ARGISNULL(2)) ? PG_GETARG_ARRAYTYPE_P(2) : NULL,
				 &fk);
	qc_fetch_check(&fk);
	/* the options of qcache_fetch's defaults */
	fk.ttl_usec = qc_expiry(true, 0, 0);
	fk.table_tags = true;
	if (!qc_enabled ||
		(!qc_fetch_find(&fk, &v) && !qc_fetch_find_l2(&fk, &v, false)))
		PG_RETURN_NULL();
	/* past its ttl, only a caller that allows staleness is served */
	if (qc_fresh_until(&fk, &v) != 0 &&
		GetCurrentTimestamp() >= qc_fresh_until(&fk, &v))
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(qc_value_jsonb(&v));
}
