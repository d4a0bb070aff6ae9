/*-------------------------------------------------------------------------
 *
 * security.c
 *		Who may be served a cached qcache_fetch result (SPEC section 8).
 *
 * The rule: a hit returns what the caller would get by running the same
 * query now, with its privileges and session settings.  Three mechanisms
 * make it so.
 *
 * 1. A key names one query.  qcache_fetch never stores under the key the
 *    caller gives: it stores under a variant, the key followed by a zero
 *    byte and a digest (store.c hashes only the bytes before the zero byte,
 *    so qcache_invalidate(key) and prefixes still reach every variant).  No
 *    SQL text holds a zero byte, so qcache_get and qcache_set can never name
 *    a fetch result, and a fetch can never be served a qcache_set value.
 *    The digest (qc_fetch_digest) covers the query text and parameters, the
 *    settings that change what a query returns or how its rows print
 *    (qc_base_gucs), and what the text's names resolve against: the
 *    search_path as schema oids after $user and USAGE are applied, the
 *    session itself when it has a temporary schema (pg_temp shadows
 *    everything, and its oid is reused by later sessions), and a count of
 *    the objects this session created or dropped.  Objects that other
 *    sessions create and that would shadow a name are the DDL hook's
 *    business: they stamp the database's names tag, which every fetch
 *    result carries.
 *
 * 2. A result that depends on its caller is scoped.  deps.c tells whether
 *    the execution met something whose result depends on who calls (row-
 *    level security, CURRENT_USER, a SECURITY DEFINER or opaque function, a
 *    temporary or foreign table).  Such a result is stored under the scoped
 *    digest, which adds the current and session roles and every setting
 *    that is not at its built-in default (qc_settings_hash: custom ones
 *    like app.tenant included), and it is
 *    flagged QC_ENTRY_ROLE_SCOPED with its owner.  Anything else is shared.
 *
 * 3. A hit re-checks every privilege the execution checked, as the caller
 *    (qc_deps_allow): SELECT on each relation and column through
 *    ExecCheckRTPerms (PostgreSQL's own function, with the roles each check
 *    was made as: view owners and SECURITY DEFINER owners stay themselves,
 *    the computing role becomes the caller), EXECUTE on each function,
 *    USAGE on each schema the caller's own names were found in, and, for a
 *    shared result, that no row-level security applies to the caller.  The
 *    outcome is cached per backend, keyed by the dependency list and the
 *    role, and forgotten whenever a syscache or relcache invalidation could
 *    change it (GRANT, REVOKE, role membership, ALTER ROLE, policies).
 *
 * A role that fails the rule is not served: it runs the query, and gets
 * what the query gives it, or its error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "access/xlog.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/catcache.h"
#include "utils/guc_tables.h"
#include "utils/inval.h"
#include "lib/stringinfo.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "qcache.h"
#include "deps.h"

/*
 * Settings that change what a query returns or how its rows print, part
 * of every fetch key.  search_path is not here: its resolved schema oids
 * are (qc_fetch_digest).
 */
static const char *const qc_base_guc_names[] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits",
	"bytea_output", "lc_monetary", "lc_numeric", "lc_time",
	"row_security", "standard_conforming_strings", "transform_null_equals",
	"array_nulls", "xmloption", "xmlbinary", "default_text_search_config",
	"quote_all_identifiers", "timezone_abbreviations",
	"gin_fuzzy_search_limit", "lo_compat_privileges",
	NULL
};

static struct config_generic *qc_base_gucs[lengthof(qc_base_guc_names)];
static bool qc_base_gucs_found = false;

/* Objects this backend created, altered or dropped (deps.c counts). */
uint64		qc_local_ddl_count = 0;

/* ---------- the per-backend cache of privilege checks ---------- */

#define QC_ACL_CACHE_SIZE	256 /* power of 2 */

typedef struct QcAclCacheSlot
{
	uint64		key;			/* hash of (deps, role, scoped); 0: empty */
	uint64		generation;		/* qc_acl_generation when checked */
	bool		ok;
} QcAclCacheSlot;

static QcAclCacheSlot qc_acl_cache[QC_ACL_CACHE_SIZE];
static uint64 qc_acl_generation = 1;
static bool qc_callbacks_registered = false;

/* Any catalog change that may change a privilege check: forget them all. */
static void
qc_acl_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	qc_acl_generation++;
}

static void
qc_acl_relcache_cb(Datum arg, Oid relid)
{
	qc_acl_generation++;
}

/* Register the invalidation callbacks, once per backend. */
static void
qc_register_callbacks(void)
{
	static const int caches[] = {
		PROCOID, RELOID, ATTNUM, NAMESPACEOID, AUTHOID, AUTHMEMMEMROLE,
		AUTHMEMROLEMEM
	};
	size_t		i;

	if (qc_callbacks_registered)
		return;
	for (i = 0; i < lengthof(caches); i++)
		CacheRegisterSyscacheCallback(caches[i], qc_acl_syscache_cb, (Datum) 0);
	CacheRegisterRelcacheCallback(qc_acl_relcache_cb, (Datum) 0);
	qc_callbacks_registered = true;
}

/* From _PG_init: nothing to do in the postmaster; backends register lazily. */
void
qc_security_register(void)
{
	memset(qc_acl_cache, 0, sizeof(qc_acl_cache));
}

/* ---------- settings ---------- */

/* The GUC table and its length, across versions. */
static struct config_generic **
qc_guc_table(int *n)
{
#if PG_VERSION_NUM >= 160000
	return get_guc_variables(n);
#else
	*n = GetNumConfigOptions();
	return get_guc_variables();
#endif
}

/*
 * A setting's current value: a string (*str, possibly NULL), or else a
 * number (*v: booleans, integers, enums, a real's bits).
 */
static void
qc_guc_value(struct config_generic *g, int64 *v, const char **str)
{
	*v = 0;
	*str = NULL;
	switch (g->vartype)
	{
		case PGC_BOOL:
			*v = *((struct config_bool *) g)->variable;
			break;
		case PGC_INT:
			*v = *((struct config_int *) g)->variable;
			break;
		case PGC_REAL:
			{
				double		d = *((struct config_real *) g)->variable;

				memcpy(v, &d, sizeof(*v));
			}
			break;
		case PGC_STRING:
			*str = *((struct config_string *) g)->variable;
			break;
		case PGC_ENUM:
			*v = *((struct config_enum *) g)->variable;
			break;
	}
}

/* Append one setting's name and current value to a digest's input. */
static void
qc_put_guc(StringInfo buf, struct config_generic *g)
{
	int64		v;
	const char *str;

	qc_guc_value(g, &v, &str);
	appendStringInfoString(buf, g->name);
	appendStringInfoChar(buf, '\0');
	if (str != NULL)
	{
		appendStringInfoChar(buf, 's');
		appendStringInfoString(buf, str);
		appendStringInfoChar(buf, '\0');
	}
	else
	{
		appendStringInfoChar(buf, 'v');
		appendBinaryStringInfo(buf, (char *) &v, sizeof(v));
	}
}

/* Find the base settings in the GUC table, once per backend. */
static void
qc_find_base_gucs(void)
{
	struct config_generic **table;
	int			n;
	int			i;
	int			j;

	table = qc_guc_table(&n);
	for (i = 0; qc_base_guc_names[i] != NULL; i++)
	{
		qc_base_gucs[i] = NULL;
		for (j = 0; j < n; j++)
			if (pg_strcasecmp(table[j]->name, qc_base_guc_names[i]) == 0)
			{
				qc_base_gucs[i] = table[j];
				break;
			}
	}
	qc_base_gucs_found = true;
}

/*
 * Append every setting that is not at its built-in default: the server's
 * configuration file (so that a reload that changes one changes the key),
 * per-database and per-role defaults, the connection's options, SET and
 * set_config.  Custom settings (app.tenant) are among them.  For scoped
 * results, whose query may have read any setting.
 */
static void
qc_put_settings(StringInfo buf)
{
	struct config_generic **table;
	int			n;
	int			i;

	table = qc_guc_table(&n);
	for (i = 0; i < n; i++)
	{
		struct config_generic *g = table[i];

		/* boot values are the same everywhere and never change */
		if (g->source <= PGC_S_ENV_VAR && !(g->flags & GUC_CUSTOM_PLACEHOLDER))
			continue;
		/* qcache's own settings change how it caches, not what a query reads */
		if (pg_strncasecmp(g->name, "qcache.", 7) == 0)
			continue;
		qc_put_guc(buf, g);
	}
}

/*
 * Append the current role's standing: whether it is a superuser or
 * bypasses row-level security, and every role it is a member of, directly
 * or not (sorted).  For scoped results: which policies apply depends on
 * them, and a hit re-checks privileges but not which policies apply, so a
 * change of membership must change the key.
 */
static void
qc_put_roles(StringInfo buf)
{
	Oid			me = GetUserId();
	List	   *todo = list_make1_oid(me);
	List	   *seen = NIL;
	HeapTuple	tup;
	ListCell   *lc;

	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(me));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_authid a = (Form_pg_authid) GETSTRUCT(tup);

		appendStringInfoChar(buf, a->rolsuper ? 'S' : 's');
		appendStringInfoChar(buf, a->rolbypassrls ? 'B' : 'b');
		ReleaseSysCache(tup);
	}
	while (todo != NIL)
	{
		Oid			role = linitial_oid(todo);
		CatCList   *members;
		int			i;

		todo = list_delete_first(todo);
		if (list_member_oid(seen, role))
			continue;
		seen = lappend_oid(seen, role);
		members = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(role));
		for (i = 0; i < members->n_members; i++)
		{
			Form_pg_auth_members m =
				(Form_pg_auth_members) GETSTRUCT(&members->members[i]->tuple);

			todo = lappend_oid(todo, m->roleid);
		}
		ReleaseSysCacheList(members);
	}
	list_sort(seen, list_oid_cmp);
	appendStringInfoChar(buf, 'M');
	foreach(lc, seen)
	{
		Oid			role = lfirst_oid(lc);

		appendBinaryStringInfo(buf, (char *) &role, sizeof(role));
	}
	list_free(seen);
}

/* ---------- SipHash-2-4 (Aumasson and Bernstein, reference algorithm) ---------- */

#define QC_ROTL(x, b)	(uint64) (((x) << (b)) | ((x) >> (64 - (b))))
#define QC_SIPROUND \
	do { \
		v0 += v1; v1 = QC_ROTL(v1, 13); v1 ^= v0; v0 = QC_ROTL(v0, 32); \
		v2 += v3; v3 = QC_ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = QC_ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = QC_ROTL(v1, 17); v1 ^= v2; v2 = QC_ROTL(v2, 32); \
	} while (0)

/* SipHash-2-4 of data under a 16-byte key: a keyed PRF. */
static uint64
qc_siphash(const uint8 *key, const uint8 *data, size_t len)
{
	uint64		k0;
	uint64		k1;
	uint64		v0;
	uint64		v1;
	uint64		v2;
	uint64		v3;
	uint64		b = ((uint64) len) << 56;
	const uint8 *end = data + len - (len % 8);
	int			left = len & 7;
	uint64		m;

	memcpy(&k0, key, 8);
	memcpy(&k1, key + 8, 8);
	v0 = UINT64CONST(0x736f6d6570736575) ^ k0;
	v1 = UINT64CONST(0x646f72616e646f6d) ^ k1;
	v2 = UINT64CONST(0x6c7967656e657261) ^ k0;
	v3 = UINT64CONST(0x7465646279746573) ^ k1;
	for (; data != end; data += 8)
	{
		memcpy(&m, data, 8);	/* little-endian machines: as the reference */
		v3 ^= m;
		QC_SIPROUND;
		QC_SIPROUND;
		v0 ^= m;
	}
	switch (left)
	{
		case 7:
			b |= ((uint64) data[6]) << 48;
			/* FALLTHROUGH */
		case 6:
			b |= ((uint64) data[5]) << 40;
			/* FALLTHROUGH */
		case 5:
			b |= ((uint64) data[4]) << 32;
			/* FALLTHROUGH */
		case 4:
			b |= ((uint64) data[3]) << 24;
			/* FALLTHROUGH */
		case 3:
			b |= ((uint64) data[2]) << 16;
			/* FALLTHROUGH */
		case 2:
			b |= ((uint64) data[1]) << 8;
			/* FALLTHROUGH */
		case 1:
			b |= ((uint64) data[0]);
			break;
		case 0:
			break;
	}
	v3 ^= b;
	QC_SIPROUND;
	QC_SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	QC_SIPROUND;
	QC_SIPROUND;
	QC_SIPROUND;
	QC_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The base settings' digest, kept per backend with the inputs it was
 * computed from: each base setting's value (strings copied) and the
 * resolved search_path.  Every call compares all of them with the current
 * ones and reuses the digest only if each is equal, so it is always what
 * computing it again would give; it saves the hashing, not a check.
 * Backend-local; nothing else reads it.
 */
typedef struct QcBaseDigestCache
{
	bool		valid;
	uint64		digest;
	int64		v[lengthof(qc_base_guc_names)];
	char	   *str[lengthof(qc_base_guc_names)];	/* in TopMemoryContext */
	int			npath;
	Oid		   *path;			/* in TopMemoryContext */
} QcBaseDigestCache;

static QcBaseDigestCache qc_base_cache;

/* Do the current base settings and this search_path match the cache's? */
static bool
qc_base_cache_matches(List *path)
{
	ListCell   *lc;
	int			i;

	if (!qc_base_cache.valid || list_length(path) != qc_base_cache.npath)
		return false;
	i = 0;
	foreach(lc, path)
		if (lfirst_oid(lc) != qc_base_cache.path[i++])
			return false;
	for (i = 0; qc_base_guc_names[i] != NULL; i++)
	{
		int64		v;
		const char *str;

		if (qc_base_gucs[i] == NULL)
			continue;
		qc_guc_value(qc_base_gucs[i], &v, &str);
		if (v != qc_base_cache.v[i] ||
			(str == NULL) != (qc_base_cache.str[i] == NULL) ||
			(str != NULL && strcmp(str, qc_base_cache.str[i]) != 0))
			return false;
	}
	return true;
}

/* Remember the digest and what it was computed from. */
static void
qc_base_cache_fill(List *path, uint64 digest)
{
	ListCell   *lc;
	int			i;

	qc_base_cache.valid = false;
	for (i = 0; qc_base_guc_names[i] != NULL; i++)
	{
		const char *str;

		if (qc_base_cache.str[i] != NULL)
			pfree(qc_base_cache.str[i]);
		qc_base_cache.str[i] = NULL;
		qc_base_cache.v[i] = 0;
		if (qc_base_gucs[i] == NULL)
			continue;
		qc_guc_value(qc_base_gucs[i], &qc_base_cache.v[i], &str);
		if (str != NULL)
			qc_base_cache.str[i] = MemoryContextStrdup(TopMemoryContext, str);
	}
	if (qc_base_cache.path != NULL)
		pfree(qc_base_cache.path);
	qc_base_cache.npath = list_length(path);
	qc_base_cache.path = MemoryContextAlloc(TopMemoryContext,
											sizeof(Oid) * Max(qc_base_cache.npath, 1));
	i = 0;
	foreach(lc, path)
		qc_base_cache.path[i++] = lfirst_oid(lc);
	qc_base_cache.digest = digest;
	qc_base_cache.valid = true;
}

/*
 * A digest of the base settings and the resolved search_path, for
 * fetch.c's saved plans (the planner folds IMMUTABLE calls into constants,
 * and some built-in ones read a setting: quote_ident and
 * quote_all_identifiers, so a plan is remade when one of them changed),
 * and part of every fetch digest.
 */
uint64
qc_base_settings_digest(void)
{
	StringInfoData buf;
	List	   *path;
	ListCell   *lc;
	uint64		digest;
	int			i;

	if (!qc_base_gucs_found)
		qc_find_base_gucs();

	/*
	 * The resolved search_path, schema oids after $user and USAGE: it is
	 * what names resolve against.  (PostgreSQL's plan cache analyses a plan
	 * again after a change, but with the parameter types inferred the
	 * first time, which may pick another function overload than a fresh
	 * parse.)
	 */
	path = fetch_search_path(true);
	if (qc_base_cache_matches(path))
	{
		list_free(path);
		return qc_base_cache.digest;
	}
	initStringInfo(&buf);
	for (i = 0; qc_base_guc_names[i] != NULL; i++)
		if (qc_base_gucs[i] != NULL)
			qc_put_guc(&buf, qc_base_gucs[i]);
	appendStringInfoChar(&buf, 'P');
	foreach(lc, path)
	{
		Oid			nsp = lfirst_oid(lc);

		appendBinaryStringInfo(&buf, (char *) &nsp, sizeof(nsp));
	}
	digest = qc_siphash(qc_shared->digest_key, (const uint8 *) buf.data, buf.len);
	qc_base_cache_fill(path, digest);
	list_free(path);
	pfree(buf.data);
	return digest;
}

/*
 * Append a fetch key variant's digest input (see qc_fetch_digest) to buf.
 * local: the base settings and the search_path as this node's keyed digest
 * of them (qc_base_settings_digest, cached per backend); otherwise written
 * out, for the name in Redis that other nodes compute too.
 */
static void
qc_fetch_digest_input(StringInfo buf, const char *query, int nparams,
					  char **params, char kind, bool local)
{
	List	   *path;
	ListCell   *lc;
	Oid			tmp;
	Oid			tmptoast;
	uint32		len;
	int			i;

	if (!qc_base_gucs_found)
		qc_find_base_gucs();
	appendStringInfoChar(buf, kind);
	len = strlen(query);
	appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
	appendBinaryStringInfo(buf, query, len);
	appendBinaryStringInfo(buf, (char *) &nparams, sizeof(nparams));
	for (i = 0; i < nparams; i++)
	{
		if (params[i] == NULL)
		{
			appendStringInfoChar(buf, 'n');
			continue;
		}
		len = strlen(params[i]);
		appendStringInfoChar(buf, 'p');
		appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
		appendBinaryStringInfo(buf, params[i], len);
	}
	if (local)
	{
		uint64		base = qc_base_settings_digest();

		appendStringInfoChar(buf, 'B');
		appendBinaryStringInfo(buf, (char *) &base, sizeof(base));
	}
	else
	{
		for (i = 0; qc_base_guc_names[i] != NULL; i++)
			if (qc_base_gucs[i] != NULL)
				qc_put_guc(buf, qc_base_gucs[i]);

		path = fetch_search_path(true);
		appendStringInfoChar(buf, 'P');
		foreach(lc, path)
		{
			Oid			nsp = lfirst_oid(lc);

			appendBinaryStringInfo(buf, (char *) &nsp, sizeof(nsp));
		}
		list_free(path);
	}

	GetTempNamespaceState(&tmp, &tmptoast);
	if (OidIsValid(tmp) || kind == 's')
	{
		appendStringInfoChar(buf, 'S');
		appendBinaryStringInfo(buf, (char *) &MyProcPid, sizeof(MyProcPid));
		appendBinaryStringInfo(buf, (char *) &MyStartTimestamp, sizeof(MyStartTimestamp));
		appendBinaryStringInfo(buf, (char *) &qc_local_ddl_count, sizeof(qc_local_ddl_count));
	}
	if (kind != 'q')
	{
		Oid			user = GetUserId();
		Oid			session_user = GetSessionUserId();

		appendStringInfoChar(buf, 'R');
		appendBinaryStringInfo(buf, (char *) &user, sizeof(user));
		appendBinaryStringInfo(buf, (char *) &session_user, sizeof(session_user));
		qc_put_roles(buf);
		qc_put_settings(buf);
	}
}

/*
 * The digest of a fetch key's variant, a keyed SipHash (the key is secret
 * and random per cluster start, in shared memory) of everything the
 * variant names, written out in full, so that no text and no setting can
 * be chosen to collide with another's:
 *
 *  'q' shared: the query text, the parameters, the base settings and the
 *      resolved search_path (as their own keyed digest,
 *      qc_base_settings_digest, which a backend computes again only when
 *      one of them changed), and this session when it has a temporary
 *      schema;
 *  'r' scoped: the same, the current and session roles, the current
 *      role's superuser and BYPASSRLS attributes and every role it is a
 *      member of (which policies apply depends on them), and every
 *      setting not at its built-in default;
 *  's' session: the same as 'r', and this session.
 */
uint64
qc_fetch_digest(const char *query, int nparams, char **params, char kind)
{
	StringInfoData buf;

	initStringInfo(&buf);
	qc_fetch_digest_input(&buf, query, nparams, params, kind, true);
	return qc_siphash(qc_shared->digest_key, (const uint8 *) buf.data, buf.len);
}

/*
 * The digest of a shared ('q') fetch result's variant in Redis (fetch.c):
 * SHA-256, unkeyed, of this cluster's system identifier, the database's
 * OID and the same input as qc_fetch_digest's 'q' digest.  Unkeyed
 * because every node that may read the entry must compute it: the
 * per-start SipHash key is secret to one node.  Collision resistance
 * stands in for the key: nobody can choose a query, parameters or
 * settings whose variant names another's.  The system identifier and the
 * database make a node of another cluster compute another name (its OIDs
 * name other objects), though the reader checks both again (the x field).
 * False, and nothing to share, when the input is this session's own (it
 * has a temporary schema) or SHA-256 is not available.
 */
bool
qc_fetch_l2_digest(const char *query, int nparams, char **params,
				   uint8 *out)
{
	StringInfoData buf;
	Oid			tmp;
	Oid			tmptoast;
	uint64		sysid = GetSystemIdentifier();
	pg_cryptohash_ctx *ctx;
	bool		ok;

	GetTempNamespaceState(&tmp, &tmptoast);
	if (OidIsValid(tmp))
		return false;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "qcache fetch l2 v1");
	appendStringInfoChar(&buf, '\0');
	appendBinaryStringInfo(&buf, (char *) &sysid, sizeof(sysid));
	appendBinaryStringInfo(&buf, (char *) &MyDatabaseId, sizeof(Oid));
	qc_fetch_digest_input(&buf, query, nparams, params, 'q', false);
	ctx = pg_cryptohash_create(PG_SHA256);
	ok = ctx != NULL &&
		pg_cryptohash_init(ctx) == 0 &&
		pg_cryptohash_update(ctx, (const uint8 *) buf.data, buf.len) == 0 &&
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) == 0;
	pg_cryptohash_free(ctx);
	pfree(buf.data);
	return ok;
}

/* ---------- the check on a hit ---------- */

/* Read n bytes at *p into dst, if the blob holds them. */
static bool
qc_get(const char **p, const char *end, void *dst, size_t n)
{
	if (end - *p < (ptrdiff_t) n)
		return false;
	memcpy(dst, *p, n);
	*p += n;
	return true;
}

/* Run every check of a dependency list (see qc_deps_serialize). */
static bool
qc_deps_check(const char *blob, uint32 len, bool scoped)
{
	const char *p = blob;
	const char *end = blob + len;
	uint16		nrels;
	uint16		nfuncs;
	uint16		nnsps;
	List	   *rtable = NIL;
	ListCell   *lc;
	int			i;

	if (!qc_get(&p, end, &nrels, sizeof(nrels)) ||
		!qc_get(&p, end, &nfuncs, sizeof(nfuncs)) ||
		!qc_get(&p, end, &nnsps, sizeof(nnsps)))
		return false;

	for (i = 0; i < nrels; i++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);
		uint32		perms;
		uint16		ncols;
		int			c;

		rte->rtekind = RTE_RELATION;
		if (!qc_get(&p, end, &rte->relid, sizeof(Oid)) ||
			!qc_get(&p, end, &rte->checkAsUser, sizeof(Oid)) ||
			!qc_get(&p, end, &perms, sizeof(perms)) ||
			!qc_get(&p, end, &ncols, sizeof(ncols)))
			return false;
		rte->requiredPerms = perms;
		for (c = 0; c < ncols; c++)
		{
			int16		col;

			if (!qc_get(&p, end, &col, sizeof(col)))
				return false;
			rte->selectedCols = bms_add_member(rte->selectedCols, col);
		}
		/* dropped since: the query would fail */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rte->relid)))
			return false;
		rte->relkind = get_rel_relkind(rte->relid);
		rtable = lappend(rtable, rte);
	}
	if (!ExecCheckRTPerms(rtable, false))
		return false;

	/*
	 * A shared result was computed without row-level security; a caller for
	 * whom it applies would see fewer rows.
	 */
	if (!scoped)
	{
		foreach(lc, rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (check_enable_rls(rte->relid, rte->checkAsUser, true) == RLS_ENABLED)
				return false;
		}
	}

	for (i = 0; i < nfuncs; i++)
	{
		Oid			funcid;
		Oid			checkas;

		if (!qc_get(&p, end, &funcid, sizeof(Oid)) ||
			!qc_get(&p, end, &checkas, sizeof(Oid)))
			return false;
		if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(funcid)) ||
			pg_proc_aclcheck(funcid, OidIsValid(checkas) ? checkas : GetUserId(),
							 ACL_EXECUTE) != ACLCHECK_OK)
			return false;
	}
	for (i = 0; i < nnsps; i++)
	{
		Oid			nsp;

		if (!qc_get(&p, end, &nsp, sizeof(Oid)))
			return false;
		if (!SearchSysCacheExists1(NAMESPACEOID, ObjectIdGetDatum(nsp)) ||
			pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
			return false;
	}
	return p == end;
}

/*
 * May the current role be served a result with this dependency list?
 * Cached per backend until a catalog change could alter the answer.
 */
bool
qc_deps_allow(const char *blob, uint32 len, bool scoped)
{
	uint64		key;
	QcAclCacheSlot *slot;
	bool		ok;

	qc_register_callbacks();

	/*
	 * Catalog changes committed since this backend last looked (a REVOKE in
	 * another session): PostgreSQL takes them in when it locks a relation,
	 * which a hit does not do.  Cheap when there are none.
	 */
	AcceptInvalidationMessages();
	key = hash_bytes_extended((const unsigned char *) blob, (int) len,
							  ((uint64) GetUserId() << 1) | (scoped ? 1 : 0));
	if (key == 0)
		key = 1;
	slot = &qc_acl_cache[key & (QC_ACL_CACHE_SIZE - 1)];
	if (slot->key == key && slot->generation == qc_acl_generation)
		return slot->ok;

	/* checks may read catalogs, which may bump the generation: read it first */
	slot->generation = qc_acl_generation;
	ok = qc_deps_check(blob, len, scoped);
	slot->key = key;
	slot->ok = ok;
	return ok;
}
