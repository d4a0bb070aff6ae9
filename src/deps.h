/*-------------------------------------------------------------------------
 *
 * deps.h
 *		What a qcache_fetch query's execution depended on (deps.c), and the
 *		rule that decides who may be served its cached result (security.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef QCACHE_DEPS_H
#define QCACHE_DEPS_H

#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"

/* A relation a range table named, with what the executor checked. */
typedef struct QcDepRel
{
	Oid			relid;
	Oid			checkas;		/* role checked as; 0: the caller */
	AclMode		perms;			/* requiredPerms (0: scanned child) */
	Bitmapset  *cols;			/* selectedCols */
} QcDepRel;

/* A function whose EXECUTE privilege was checked. */
typedef struct QcDepFunc
{
	Oid			funcid;
	Oid			checkas;		/* 0: the caller */
} QcDepFunc;

/*
 * Everything one recording saw.  Built in the recording's memory context;
 * see deps.c for what each field means and who fills it in.
 */
typedef struct QcDeps
{
	Oid			caller;			/* GetUserId() when the recording began */
	List	   *rels;			/* QcDepRel *, one per (relid, checkas) */
	List	   *funcs;			/* QcDepFunc *, one per (funcid, checkas) */
	List	   *nsps;			/* Oids: schemas the caller needs USAGE on */
	List	   *relids;			/* every relation read, for the tags */
	bool		caller_dependent;	/* result may differ per role/settings */
	bool		session_bound;	/* read a temporary relation */
	const char *uncacheable;	/* why the result must not be cached, or NULL */
	const char *dependent_why;	/* first reason for caller_dependent */
	bool		saved_read_only;	/* XactReadOnly before the recording */

	/* the planner walk of the top-level query (its plan may be reused) */
	const char *top_query;		/* its text, as the planner sees it */
	bool		top_planned;	/* planned during this recording */
	List	   *top_funcs;		/* funcids its walk noted */
	bool		top_caller;		/* its walk found CURRENT_USER & co */
	List	   *parse_nsps;		/* schemas searched by name while parsing */
	bool		in_top_planning;	/* the top-level query is being planned */
	List	   *planned;		/* PlannedStmts made during the recording */
} QcDeps;

/* Largest serialized dependency list an entry carries (more: uncached). */
#define QC_MAX_DEP_BYTES		16384

/* deps.c: recording */
extern void qc_deps_register(void);
extern QcDeps *qc_deps_push(QcDeps **out);
extern void qc_deps_pop(QcDeps *prev);
extern void qc_deps_top_query(const char *query);
extern void qc_deps_replay_planner(List *funcs, bool caller);
extern void qc_deps_replay_nsps(List *nsps);
extern char *qc_deps_serialize(const QcDeps *d, uint32 *len);

/* security.c: keys and the rule on hits */
extern uint64 qc_local_ddl_count;
extern void qc_security_register(void);
extern uint64 qc_fetch_digest(const char *query, int nparams, char **params,
							  char kind);
extern bool qc_fetch_l2_digest(const char *query, int nparams, char **params,
							   uint8 *out);
extern uint64 qc_base_settings_digest(void);
extern bool qc_deps_allow(const char *blob, uint32 len, bool scoped);

#endif							/* QCACHE_DEPS_H */
