/*-------------------------------------------------------------------------
 *
 * deps.c
 *		Record what a qcache_fetch query's execution depended on.
 *
 * A cached result may be handed to another role only if that role would
 * get the same rows by running the query now (SPEC section 8), and it must
 * be invalidated by a write to anything it read (SPEC section 5.1).  Both
 * need the same list: what the query's execution read, nested executions
 * in SQL and PL/pgSQL functions included.  The plan's range table is not
 * enough, so while qcache_fetch runs a query (between qc_deps_push and
 * qc_deps_pop) this file watches the execution through PostgreSQL's own
 * hooks, every nested executor start included:
 *
 * - ExecutorCheckPerms_hook sees the range table of every executor start,
 *   after PostgreSQL's own permission checks passed: each relation with
 *   the privileges it required, the role it was checked as (checkAsUser
 *   inside views, the definer inside SECURITY DEFINER functions) and the
 *   selected columns.  Relations reached through views, partitions and
 *   inheritance children are there too.
 * - object_access_hook's OAT_FUNCTION_EXECUTE fires where the executor
 *   checks EXECUTE on a function (ExecInitFunc, aggregates, SRFs), nested
 *   ones included; planner_hook walks each query tree before it is planned,
 *   which sees SQL functions that the planner will inline (their EXECUTE
 *   is checked at planning and no hook reports it) and CURRENT_USER-like
 *   SQLValueFunction nodes, also inside views and row-level security quals.
 * - ExecutorStart_hook and ProcessUtility_hook make the query read-only as
 *   PostgreSQL's own check does, functions included: a nested INSERT,
 *   UPDATE, DELETE, SELECT FOR UPDATE or utility statement is an error, and
 *   XactReadOnly is set while the query runs, so that PostgreSQL itself
 *   refuses nextval(), large object writes and the rest.
 *
 * What makes a result depend on its caller (caller_dependent): row-level
 * security that applied, CURRENT_USER/SESSION_USER/CURRENT_ROLE, a
 * SECURITY DEFINER function, a foreign table (its user mapping is per
 * role), a temporary relation (per session), and any function that is
 * neither IMMUTABLE, nor LANGUAGE sql (whose body runs through the hooks
 * above), nor one of the built-in functions listed in qc_safe_builtins
 * (time, random, JSON building: their results depend on nothing but their
 * arguments and the settings that are part of every fetch key,
 * security.c).  PL/pgSQL and C functions that are not IMMUTABLE are
 * opaque: PL/pgSQL evaluates simple expressions without an executor start,
 * and C code checks what it likes (pg_stat_get_activity hides columns per
 * role), so qcache assumes the worst.  The built-in functions that depend
 * on the session but read no catalog (qc_session_builtins: current_setting,
 * pg_backend_pid...) scope a result too.  IMMUTABLE is trusted, as the
 * planner trusts it.
 *
 * What makes a result uncacheable: reading a system catalog or a sequence,
 * directly or through a built-in function that is neither IMMUTABLE nor
 * listed in qc_safe_builtins or qc_session_builtins (has_table_privilege,
 * to_regclass, pg_get_viewdef, lo_get...: no trigger sees their changes),
 * calling a qcache function (its own result has dependencies this
 * recording does not see), or more dependencies than an entry can carry.
 *
 * The recording is backend-local and lives in the memory context that was
 * current at qc_deps_push; nothing here touches shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_language.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/planner.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "qcache.h"
#include "deps.h"

/* The recording in progress, or NULL. */
static QcDeps *recording = NULL;

static void qc_refuse_write(const char *what) pg_attribute_noreturn();

static ExecutorCheckPerms_hook_type prev_check_perms = NULL;
static object_access_hook_type prev_object_access = NULL;
static planner_hook_type prev_planner = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;

/*
 * Built-in functions that are not IMMUTABLE but whose result depends only
 * on their arguments, the clock, and the settings every fetch key includes
 * (TimeZone, DateStyle, IntervalStyle, lc_*, extra_float_digits...).
 * Everything else that is neither IMMUTABLE nor LANGUAGE sql makes a
 * result caller-dependent.  Names, in pg_catalog; prefixes end in '*'.
 */
static const char *const qc_safe_builtins[] = {
	"now", "statement_timestamp", "transaction_timestamp",
	"clock_timestamp", "timeofday", "random", "gen_random_uuid",
	"jsonb_agg", "jsonb_agg_transfn", "jsonb_agg_finalfn",
	"json_agg", "json_agg_transfn", "json_agg_finalfn",
	"jsonb_object_agg", "jsonb_object_agg_transfn",
	"jsonb_object_agg_finalfn", "json_object_agg",
	"json_object_agg_transfn", "json_object_agg_finalfn",
	"to_jsonb", "to_json", "row_to_json", "array_to_json",
	"jsonb_build_object", "jsonb_build_array", "json_build_object",
	"json_build_array", "format", "concat", "concat_ws", "textanycat",
	"anytextcat", "array_to_string", "quote_literal", "quote_nullable",
	"to_char", "to_timestamp", "to_date", "date_part", "extract",
	"date_trunc", "age", "overlaps", "timezone", "generate_series",
	"date*", "timestamp*", "timestamptz*", "time*", "timetz*",
	"interval*", "make_*", "justify_*", "isfinite", "random_normal",
	"pg_sleep", "pg_sleep_for", "pg_sleep_until",
	NULL
};

/*
 * Built-in functions whose result depends on the role or the settings, but
 * that read no catalog: a result that calls them is scoped to role and
 * settings (security.c).
 */
static const char *const qc_caller_builtins[] = {
	"current_setting", "current_user", "session_user", "current_role",
	"current_schema", "current_schemas", "current_database",
	"pg_postmaster_start_time", "pg_conf_load_time", "version",
	"pg_jit_available",
	NULL
};

/*
 * Built-in functions whose result depends on the session itself: a result
 * that calls them is kept for this session only.
 */
static const char *const qc_session_builtins[] = {
	"pg_backend_pid", "inet_client_addr", "inet_client_port",
	"inet_server_addr", "inet_server_port", "pg_trigger_depth",
	"pg_my_temp_schema",
	NULL
};

/*
 * VOLATILE built-in functions that only read (files, large objects): a
 * result that calls them is not cached.  Every other VOLATILE built-in
 * function that is in none of these lists may write or change the session
 * (lo_create, lo_put, setval, pg_notify, pg_advisory_lock, set_config,
 * pg_terminate_backend...): calling one is refused like a write.  Other
 * built-in functions that are not IMMUTABLE may read system catalogs
 * (has_table_privilege, to_regclass, pg_get_viewdef...), whose changes no
 * trigger sees: a result that calls one is not cached.
 */
static const char *const qc_read_builtins[] = {
	"lo_get", "pg_read_file", "pg_read_binary_file", "pg_ls_dir",
	"pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
	"pg_ls_logicalsnapdir", "pg_ls_logicalmapdir", "pg_ls_replslotdir",
	"pg_stat_file", "pg_current_logfile",
	NULL
};

/* Is the function's name one of `list` (prefixes end in '*')? */
static bool
qc_builtin_in(Form_pg_proc proc, const char *const *list)
{
	const char *name = NameStr(proc->proname);
	int			i;

	if (proc->pronamespace != PG_CATALOG_NAMESPACE)
		return false;
	for (i = 0; list[i] != NULL; i++)
	{
		const char *s = list[i];
		size_t		l = strlen(s);

		if (s[l - 1] == '*' ? strncmp(name, s, l - 1) == 0 : strcmp(name, s) == 0)
			return true;
	}
	return false;
}

/* Mark the recording caller-dependent, keeping the first reason. */
static void
qc_dependent(const char *why)
{
	if (!recording->caller_dependent)
		recording->dependent_why = MemoryContextStrdup(GetMemoryChunkContext(recording), why);
	recording->caller_dependent = true;
}

/* Mark the recording uncacheable, keeping the first reason. */
static void
qc_uncacheable(const char *why)
{
	if (recording->uncacheable == NULL)
		recording->uncacheable = MemoryContextStrdup(GetMemoryChunkContext(recording), why);
}

/* The role to record for a check made as `user`: 0 means the caller. */
static inline Oid
qc_checkas(Oid user)
{
	return user == recording->caller ? InvalidOid : user;
}

/* Note a schema the caller needs USAGE on (not pg_catalog, not temp). */
static void
qc_note_nsp(Oid nsp)
{
	if (nsp == PG_CATALOG_NAMESPACE || !OidIsValid(nsp) ||
		isAnyTempNamespace(nsp))
		return;
	recording->nsps = list_append_unique_oid(recording->nsps, nsp);
}

/* Add a relation and its inheritance and partition ancestors. */
static void
qc_note_relid(Oid relid)
{
	Relation	inh;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	List	   *parents = NIL;
	ListCell   *lc;

	if (list_member_oid(recording->relids, relid))
		return;
	recording->relids = lappend_oid(recording->relids, relid);

	inh = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		parents = lappend_oid(parents, ((Form_pg_inherits) GETSTRUCT(tup))->inhparent);
	systable_endscan(scan);
	table_close(inh, AccessShareLock);

	foreach(lc, parents)
		qc_note_relid(lfirst_oid(lc));
}

/* Record one range table entry of a relation. */
static void
qc_note_rte(RangeTblEntry *rte)
{
	Oid			relid = rte->relid;
	char		kind = get_rel_relkind(relid);
	Oid			user;
	Oid			checkas;
	QcDepRel   *r = NULL;
	ListCell   *lc;

	if (relid < FirstNormalObjectId)
		qc_uncacheable(psprintf("The query reads the system catalog \"%s\", whose changes no trigger sees.",
								get_rel_name(relid)));
	if (kind == RELKIND_SEQUENCE)
		qc_uncacheable(psprintf("The query reads the sequence \"%s\", whose changes no trigger sees.",
								get_rel_name(relid)));
	if (kind == RELKIND_FOREIGN_TABLE)
		qc_dependent("a foreign table (its user mapping is per role)");
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
	{
		recording->session_bound = true;
		qc_dependent("a temporary table");
	}
	qc_note_relid(relid);

	/* children of an inheritance tree come with requiredPerms 0 */
	if (rte->requiredPerms == 0)
		return;

	user = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	checkas = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : qc_checkas(user);
	if (check_enable_rls(relid, rte->checkAsUser, true) == RLS_ENABLED)
		qc_dependent("row-level security");
	if (!OidIsValid(checkas))
		qc_note_nsp(get_rel_namespace(relid));

	foreach(lc, recording->rels)
	{
		QcDepRel   *o = lfirst(lc);

		if (o->relid == relid && o->checkas == checkas)
		{
			r = o;
			break;
		}
	}
	if (r == NULL)
	{
		r = palloc0(sizeof(QcDepRel));
		r->relid = relid;
		r->checkas = checkas;
		recording->rels = lappend(recording->rels, r);
	}
	r->perms |= rte->requiredPerms;
	r->cols = bms_union(r->cols, rte->selectedCols);
}

/* ExecutorCheckPerms_hook: record the range table once it passed. */
static bool
qc_check_perms(List *rtable, bool ereport_on_violation)
{
	bool		ok = true;

	if (prev_check_perms)
		ok = prev_check_perms(rtable, ereport_on_violation);
	if (ok && recording != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));
		ListCell   *lc;

		foreach(lc, rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (rte->rtekind == RTE_RELATION)
				qc_note_rte(rte);
		}
		MemoryContextSwitchTo(old);
	}
	return ok;
}

/* Record a function whose EXECUTE was checked as the current user. */
static void
qc_note_func(Oid funcid)
{
	Oid			checkas = qc_checkas(GetUserId());
	HeapTuple	tup;
	Form_pg_proc proc;
	ListCell   *lc;

	/*
	 * Everything noted while the top-level query is planned (functions the
	 * planner folds into constants run their EXECUTE check then) is replayed
	 * when its saved plan is reused without planning.
	 */
	if (recording->in_top_planning)
		recording->top_funcs = list_append_unique_oid(recording->top_funcs, funcid);
	foreach(lc, recording->funcs)
	{
		QcDepFunc  *f = lfirst(lc);

		if (f->funcid == funcid && f->checkas == checkas)
			return;
	}
	{
		QcDepFunc  *f = palloc(sizeof(QcDepFunc));

		f->funcid = funcid;
		f->checkas = checkas;
		recording->funcs = lappend(recording->funcs, f);
	}

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return;					/* dropped meanwhile: the query fails */
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (!OidIsValid(checkas))
		qc_note_nsp(proc->pronamespace);

	if (proc->prolang == ClanguageId &&
		strncmp(NameStr(proc->proname), "qcache_", 7) == 0)
		qc_uncacheable(psprintf("The query calls %s(), whose own result qcache cannot follow.",
								NameStr(proc->proname)));
	else if (proc->prosecdef)
		qc_dependent(psprintf("the SECURITY DEFINER function %s()",
							  NameStr(proc->proname)));
	else if (!heap_attisnull(tup, Anum_pg_proc_proconfig, NULL))
		qc_dependent(psprintf("the function %s(), which has SET clauses (SET role runs it as another role)",
							  NameStr(proc->proname)));
	else if (proc->provolatile == PROVOLATILE_IMMUTABLE ||
			 proc->prolang == SQLlanguageId)
		 /* depends on its arguments, or runs through the hooks */ ;
	else if (funcid >= FirstNormalObjectId)
		qc_dependent(psprintf("the function %s(), which is not IMMUTABLE",
							  NameStr(proc->proname)));
	else if (qc_builtin_in(proc, qc_safe_builtins))
		 /* arguments, clock and fetch-key settings only */ ;
	else if (qc_builtin_in(proc, qc_caller_builtins))
		qc_dependent(psprintf("the function %s(), which depends on the role or the settings",
							  NameStr(proc->proname)));
	else if (qc_builtin_in(proc, qc_session_builtins))
	{
		recording->session_bound = true;
		qc_dependent(psprintf("the function %s(), which depends on the session",
							  NameStr(proc->proname)));
	}
	else if (proc->provolatile == PROVOLATILE_VOLATILE &&
			 !qc_builtin_in(proc, qc_read_builtins))
	{
		char	   *name = pstrdup(NameStr(proc->proname));

		ReleaseSysCache(tup);
		qc_refuse_write(psprintf("%s(), a built-in function that may write or change the session",
								 name));
	}
	else
		qc_uncacheable(psprintf("The query calls %s(), a built-in function that may read system catalogs or files, whose changes no trigger sees.",
								NameStr(proc->proname)));
	ReleaseSysCache(tup);
}

/* object_access_hook: functions whose EXECUTE the executor checked. */
static void
qc_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (recording != NULL && access == OAT_FUNCTION_EXECUTE &&
		classId == ProcedureRelationId)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));

		qc_note_func(objectId);
		MemoryContextSwitchTo(old);
	}

	/*
	 * A schema searched by name (s.t, s.f(), 'x'::s.type, OPERATOR(s.+)):
	 * parsing checked USAGE on it, which the executor does not check again.
	 */
	if (recording != NULL && access == OAT_NAMESPACE_SEARCH &&
		GetUserId() == recording->caller)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));

		qc_note_nsp(objectId);
		recording->parse_nsps = list_append_unique_oid(recording->parse_nsps, objectId);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Query tree walker for planner_hook: functions (the planner may inline
 * SQL ones, and no hook reports their EXECUTE check then) and the
 * SQLValueFunctions that name the caller.
 */
static bool
qc_query_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, qc_query_walker, context, 0);
	if (IsA(node, FuncExpr))
	{
		Oid			funcid = ((FuncExpr *) node)->funcid;

		qc_note_func(funcid);
		if (context != NULL)
			recording->top_funcs = list_append_unique_oid(recording->top_funcs, funcid);
	}
	else if (IsA(node, SQLValueFunction))
	{
		switch (((SQLValueFunction *) node)->op)
		{
			case SVFOP_CURRENT_ROLE:
			case SVFOP_CURRENT_USER:
			case SVFOP_USER:
			case SVFOP_SESSION_USER:
				qc_dependent("CURRENT_USER, SESSION_USER or CURRENT_ROLE");
				if (context != NULL)
					recording->top_caller = true;
				break;
			default:
				break;
		}
	}
	return expression_tree_walker(node, qc_query_walker, context);
}

/* Remember a plan made during the recording (qc_executor_start). */
static void
qc_note_planned(PlannedStmt *ps)
{
	MemoryContext old;

	if (recording == NULL)
		return;
	old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));
	recording->planned = lappend(recording->planned, ps);
	MemoryContextSwitchTo(old);
}

/* planner_hook: walk the query tree of every query planned meanwhile. */
static PlannedStmt *
qc_planner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	if (recording != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));
		bool		top = recording->top_query != NULL && query_string != NULL &&
		strcmp(query_string, recording->top_query) == 0;

		if (top)
			recording->top_planned = true;
		(void) query_tree_walker(parse, qc_query_walker, top ? (void *) recording : NULL, 0);
		MemoryContextSwitchTo(old);
		if (top)
		{
			QcDeps	   *rec = recording;
			PlannedStmt *volatile ps = NULL;

			rec->in_top_planning = true;
			PG_TRY();
			{
				ps = prev_planner ?
					prev_planner(parse, query_string, cursorOptions, boundParams) :
					standard_planner(parse, query_string, cursorOptions, boundParams);
			}
			PG_FINALLY();
			{
				rec->in_top_planning = false;
			}
			PG_END_TRY();
			qc_note_planned(ps);
			return ps;
		}
		else
		{
			PlannedStmt *ps = prev_planner ?
				prev_planner(parse, query_string, cursorOptions, boundParams) :
				standard_planner(parse, query_string, cursorOptions, boundParams);

			qc_note_planned(ps);
			return ps;
		}
	}
	if (prev_planner)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/* Raise the error for a write inside a fetch query. */
static void
qc_refuse_write(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("qcache_fetch query must not write"),
			 errdetail("The query ran %s.", what),
			 errhint("qcache_fetch caches only what reads: call the function outside qcache_fetch.")));
}

/*
 * ExecutorStart_hook: only plain reads run inside a fetch.  And a nested
 * statement whose plan was made before the recording (PL/pgSQL keeps its
 * plans for the session) hides what its planning checked and inlined: the
 * result is scoped to the caller's role and settings, who may run it.
 */
static void
qc_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (recording != NULL && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		PlannedStmt *ps = queryDesc->plannedstmt;
		ListCell   *lc;

		if (!(recording->top_query != NULL && queryDesc->sourceText != NULL &&
			  strcmp(queryDesc->sourceText, recording->top_query) == 0) &&
			!list_member_ptr(recording->planned, ps))
		{
			MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));

			qc_dependent("a statement planned before the query ran (a PL/pgSQL function's saved plan)");
			MemoryContextSwitchTo(old);
		}

		if (queryDesc->operation != CMD_SELECT)
			qc_refuse_write(queryDesc->operation == CMD_INSERT ? "an INSERT, in a function it calls" :
							queryDesc->operation == CMD_UPDATE ? "an UPDATE, in a function it calls" :
							queryDesc->operation == CMD_DELETE ? "a DELETE, in a function it calls" :
							"a data-modifying statement, in a function it calls");
		if (ps->hasModifyingCTE)
			qc_refuse_write("a data-modifying WITH, in a function it calls");
		foreach(lc, ps->rowMarks)
		{
			PlanRowMark *rm = lfirst_node(PlanRowMark, lc);

			if (RowMarkRequiresRowShareLock(rm->markType))
				qc_refuse_write("SELECT FOR UPDATE or FOR SHARE, in a function it calls");
		}
	}
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* Is this name list qualified with pg_temp? */
static bool
qc_names_temp(List *names)
{
	return list_length(names) > 1 &&
		strcmp(strVal(linitial(names)), "pg_temp") == 0;
}

/*
 * Does this statement create a temporary object, or drop, rename or move
 * one?  Such a statement may change what a name resolves to in this
 * session's own temporary schema, which shadows every other (security.c
 * folds qc_local_ddl_count into this session's fetch keys).  Drops, renames
 * and moves count whatever they touch: cheap, and only this session's own
 * keys change.
 */
static bool
qc_changes_temp_names(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
			return ((CreateStmt *) stmt)->relation->relpersistence == RELPERSISTENCE_TEMP;
		case T_ViewStmt:
			return ((ViewStmt *) stmt)->view->relpersistence == RELPERSISTENCE_TEMP;
		case T_CreateTableAsStmt:
			return ((CreateTableAsStmt *) stmt)->into->rel->relpersistence == RELPERSISTENCE_TEMP;
		case T_CreateSeqStmt:
			return ((CreateSeqStmt *) stmt)->sequence->relpersistence == RELPERSISTENCE_TEMP;
		case T_CreateFunctionStmt:
			return qc_names_temp(((CreateFunctionStmt *) stmt)->funcname);
		case T_DefineStmt:
			return qc_names_temp(((DefineStmt *) stmt)->defnames);
		case T_CompositeTypeStmt:
			return ((CompositeTypeStmt *) stmt)->typevar->relpersistence == RELPERSISTENCE_TEMP;
		case T_CreateEnumStmt:
			return qc_names_temp(((CreateEnumStmt *) stmt)->typeName);
		case T_CreateDomainStmt:
			return qc_names_temp(((CreateDomainStmt *) stmt)->domainname);
		case T_DropStmt:
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_DiscardStmt:
			return true;
		default:
			return false;
	}
}

/* ProcessUtility_hook: no utility statement runs inside a fetch. */
static void
qc_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	if (recording != NULL)
		qc_refuse_write(psprintf("the utility statement %s, in a function it calls",
								 GetCommandTagName(CreateCommandTag(pstmt->utilityStmt))));
	if (qc_changes_temp_names(pstmt->utilityStmt))
		qc_local_ddl_count++;
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * needs_fmgr_hook: while recording, SQL functions are not inlined (the
 * planner inlines none that a hook wants to see, FmgrHookIsNeeded): run
 * through functions.c, their statements pass the executor and planner
 * hooks above, and their EXECUTE privilege is checked and recorded.
 * Inlined, their CURRENT_USER and their EXECUTE check would be invisible.
 */
static bool
qc_needs_fmgr(Oid fn)
{
	HeapTuple	tup;
	bool		sql;

	if (prev_needs_fmgr && prev_needs_fmgr(fn))
		return true;
	if (recording == NULL)
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		return false;
	sql = ((Form_pg_proc) GETSTRUCT(tup))->prolang == SQLlanguageId;
	ReleaseSysCache(tup);
	return sql;
}

/* Install the hooks; from _PG_init. */
void
qc_deps_register(void)
{
	prev_check_perms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = qc_check_perms;
	prev_object_access = object_access_hook;
	object_access_hook = qc_object_access;
	prev_planner = planner_hook;
	planner_hook = qc_planner;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = qc_executor_start;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = qc_process_utility;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = qc_needs_fmgr;
}

/*
 * Start recording into a new QcDeps, allocated in the current memory
 * context, and make the transaction read-only until qc_deps_pop.  Returns
 * the recording to restore; the caller must call qc_deps_pop on every path
 * (PG_FINALLY).
 */
QcDeps *
qc_deps_push(QcDeps **out)
{
	QcDeps	   *prev = recording;
	QcDeps	   *d = palloc0(sizeof(QcDeps));

	d->caller = GetUserId();
	d->saved_read_only = XactReadOnly;
	*out = d;
	recording = d;
	XactReadOnly = true;
	return prev;
}

/* Stop the current recording and restore `prev`. */
void
qc_deps_pop(QcDeps *prev)
{
	if (recording != NULL)
		XactReadOnly = recording->saved_read_only;
	recording = prev;
}

/*
 * Name the text of the top-level query about to run, so that the planner
 * walk of that query is told apart from those of nested ones (fetch.c
 * keeps it with its saved plan).
 */
void
qc_deps_top_query(const char *query)
{
	if (recording != NULL)
		recording->top_query = query;
}

/*
 * Replay what the planner walk of the top-level query saw when its plan
 * was made, for an execution that reuses the plan without planning.
 */
void
qc_deps_replay_planner(List *funcs, bool caller)
{
	MemoryContext old;
	ListCell   *lc;

	if (recording == NULL)
		return;
	old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));
	foreach(lc, funcs)
		qc_note_func(lfirst_oid(lc));
	if (caller)
		qc_dependent("CURRENT_USER, SESSION_USER or CURRENT_ROLE");
	MemoryContextSwitchTo(old);
}

/*
 * Replay the schemas that parsing the top-level query searched by name,
 * for an execution that reuses its plan without parsing it.
 */
void
qc_deps_replay_nsps(List *nsps)
{
	MemoryContext old;
	ListCell   *lc;

	if (recording == NULL)
		return;
	old = MemoryContextSwitchTo(GetMemoryChunkContext(recording));
	foreach(lc, nsps)
		qc_note_nsp(lfirst_oid(lc));
	MemoryContextSwitchTo(old);
}

/* ---------- serialization, for the entry (security.c reads it) ---------- */

static void
qc_put(StringInfo buf, const void *p, int n)
{
	appendBinaryStringInfo(buf, p, n);
}

/*
 * The part of a recording that a hit re-checks, as bytes (palloc'd):
 *
 *		uint16 nrels, nfuncs, nnsps
 *		nrels x (Oid relid, Oid checkas, uint32 perms, uint16 ncols,
 *				 int16 col[ncols])	-- selectedCols members
 *		nfuncs x (Oid funcid, Oid checkas)
 *		nnsps x Oid
 *
 * Unaligned; read with memcpy.  NULL if it does not fit an entry.
 */
char *
qc_deps_serialize(const QcDeps *d, uint32 *len)
{
	StringInfoData buf;
	uint16		n;
	ListCell   *lc;

	initStringInfo(&buf);
	n = list_length(d->rels);
	qc_put(&buf, &n, sizeof(n));
	n = list_length(d->funcs);
	qc_put(&buf, &n, sizeof(n));
	n = list_length(d->nsps);
	qc_put(&buf, &n, sizeof(n));
	foreach(lc, d->rels)
	{
		QcDepRel   *r = lfirst(lc);
		uint32		perms = (uint32) r->perms;
		uint16		ncols = bms_num_members(r->cols);
		int			col = -1;

		qc_put(&buf, &r->relid, sizeof(Oid));
		qc_put(&buf, &r->checkas, sizeof(Oid));
		qc_put(&buf, &perms, sizeof(perms));
		qc_put(&buf, &ncols, sizeof(ncols));
		while ((col = bms_next_member(r->cols, col)) >= 0)
		{
			int16		c = (int16) col;

			qc_put(&buf, &c, sizeof(c));
		}
	}
	foreach(lc, d->funcs)
	{
		QcDepFunc  *f = lfirst(lc);

		qc_put(&buf, &f->funcid, sizeof(Oid));
		qc_put(&buf, &f->checkas, sizeof(Oid));
	}
	foreach(lc, d->nsps)
	{
		Oid			nsp = lfirst_oid(lc);

		qc_put(&buf, &nsp, sizeof(Oid));
	}
	if (buf.len > QC_MAX_DEP_BYTES)
		return NULL;
	*len = buf.len;
	return buf.data;
}
