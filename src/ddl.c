/*-------------------------------------------------------------------------
 *
 * ddl.c
 *		DDL that changes what a cached query returns invalidates, at commit.
 *
 * A qcache_fetch entry carries, besides the tags users see, node-internal
 * tags (invalidate.c): the OID tag of every relation its execution read
 * and of all their ancestors, the OID tag of every non-built-in function
 * it called, and the names tag.  DML reaches those entries through the
 * triggers of qcache_watch.  DDL fires no DML trigger; this file makes it
 * stamp the same tags, through the same pending set, so that they are
 * invalidated exactly when the DDL commits (and not at all if it rolls
 * back), with the protocol and the correctness argument of invalidate.c.
 *
 * Two hooks, because neither sees everything alone:
 *
 * - object_access_hook sees catalog changes however they are reached,
 *   cascades included: a relation altered (OAT_POST_ALTER, any subId: a
 *   column), a column added (OAT_POST_CREATE with a subId), a relation or
 *   a column dropped (OAT_DROP): the relation's OID tag.  A function
 *   created or replaced (CREATE OR REPLACE FUNCTION runs the post-create
 *   hook too), altered or dropped: its OID tag.  A policy created,
 *   altered or dropped, and a rewrite rule created, replaced or dropped
 *   (CREATE OR REPLACE VIEW replaces the view's _RETURN rule): the OID tag
 *   of its table or view, looked up with SnapshotSelf, which sees the
 *   row the command is writing.
 *
 * - The ProcessUtility hook (qc_ddl_before, before the command runs, and
 *   qc_ddl_after) sees the statements whose effect on results is not a
 *   catalog change of the relation read: ALTER TABLE (all forms, with the
 *   partition of ATTACH/DETACH PARTITION and the parent of INHERIT/NO
 *   INHERIT), REFRESH MATERIALIZED VIEW (also CONCURRENTLY, whose merge
 *   fires no trigger), TRUNCATE (also of tables without triggers), policy
 *   statements, CREATE OR REPLACE VIEW; and the names tag for every
 *   statement that can change what a name resolves to: CREATE of a
 *   non-temporary relation, view, sequence, function, type, domain,
 *   operator, cast, conversion, operator class or family, schema or
 *   extension, if it created something (counted from OAT_POST_CREATE: IF
 *   NOT EXISTS of an existing object stamps nothing), and RENAME and SET
 *   SCHEMA of anything.  ALTER TABLE that only enables or disables
 *   triggers stamps the relation (writes made while a watch is disabled
 *   invalidate nothing), except ENABLE ALWAYS or REPLICA alone, which is
 *   what qcache_watch runs.  Any other ALTER TABLE, and ALTER TYPE of a
 *   composite, also stamps the names tag: a row type may be another
 *   table's column type.  A relation or function that was dropped is
 *   reached by its OID tag; DROP of anything else (a cast, an operator, a
 *   type, a role, whose name a reg* column prints) stamps the names tag.  After CREATE TABLE ... INHERITS or
 *   PARTITION OF, and ALTER TABLE ... ATTACH PARTITION or INHERIT,
 *   qc_ddl_after watches the new child if an ancestor is watched (the SQL
 *   function qcache_watch_child, from version 1.3 of the extension).
 *   Before ATTACH PARTITION to a watched parent, the table's own row
 *   triggers of qcache_watch are dropped (qcache_watch_attaching), since
 *   the parent's clones take their names: the partition then has its
 *   parent's watch.
 *
 * Like a DML write, a stamp makes the transaction a writer: it stores
 * nothing until it ends, since what it computes may reflect its
 * uncommitted catalog changes (invalidate.c).
 *
 * Stamping more than needed costs misses, never wrong values, so both
 * hooks may stamp the same tag, and stamp relations a command merely
 * touched (ALTER TABLE ... SET (fillfactor)).  Temporary relations are
 * stamped like others (cheap); only the names tag is skipped for them,
 * since a temporary object is visible in its own session only and the
 * entries of qcache_fetch are shared (the fetch side keeps results that
 * read temporary objects out of the cache).
 *
 * Cost: a switch on the node tag per utility statement and per object
 * access, plus one hash insert per stamped tag; no catalog access for
 * statements that change no result (SELECT never comes here).
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
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "qcache.h"

static void qc_ddl_attaching(Oid relid, Oid parent);
static bool qc_ddl_only_triggers(AlterTableStmt *ats);

/*
 * Objects created so far in this backend (OAT_POST_CREATE of a whole
 * object).  qc_ddl_before returns it and qc_ddl_after compares: a CREATE
 * that created nothing (IF NOT EXISTS of an existing object) changes no
 * name's meaning and stamps no names tag.
 */
static uint64 qc_ddl_created = 0;

/* May DDL stamp tags now?  In a transaction of a database, qcache loaded. */
static inline bool
qc_ddl_active(void)
{
	return qc_shared != NULL && OidIsValid(MyDatabaseId) &&
		IsTransactionState() && !IsBootstrapProcessingMode();
}

/*
 * A relation changed: its OID tag, and its name tag, which is what reaches
 * the other nodes of a Redis level (and values copied from there, which
 * carry no OID tags).
 */
static void
qc_ddl_rel(Oid relid)
{
	if (!OidIsValid(relid))
		return;
	qc_inval_rel_at_commit(relid);
	qc_inval_table_name_at_commit(relid);
}

/* A relation's tags and its descendants' OID tags, at commit. */
static void
qc_ddl_rel_tree(Oid relid)
{
	if (!OidIsValid(relid))
		return;
	qc_ddl_rel(relid);
	qc_inval_descendants_at_commit(relid);
}

/* The relation a RangeVar names, if it exists; no lock taken. */
static Oid
qc_ddl_rangevar(RangeVar *rv)
{
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelid(rv, NoLock, true);
}

/*
 * The relation of a row of pg_policy or pg_rewrite, by the row's OID, as
 * the running command sees it (SnapshotSelf: also a row it has just
 * written); InvalidOid if there is none.
 */
static Oid
qc_ddl_owner_rel(Oid catalog, Oid index, AttrNumber oidattr, Oid objectId)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, oidattr, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(objectId));
	scan = systable_beginscan(rel, index, true, SnapshotSelf, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		if (catalog == PolicyRelationId)
			relid = ((Form_pg_policy) GETSTRUCT(tup))->polrelid;
		else
			relid = ((Form_pg_rewrite) GETSTRUCT(tup))->ev_class;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}

/*
 * object_access_hook's part: see the header comment.  Called for every
 * object access of every backend; cheap for the accesses it ignores.
 */
void
qc_ddl_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId)
{
	if (access != OAT_POST_CREATE && access != OAT_POST_ALTER &&
		access != OAT_DROP)
		return;
	if (access == OAT_POST_CREATE && subId == 0)
		qc_ddl_created++;
	if (!qc_ddl_active())
		return;
	switch (classId)
	{
		case RelationRelationId:
			/* a new relation changes no result; a new column does */
			if (access != OAT_POST_CREATE || subId != 0)
				qc_ddl_rel(objectId);
			break;
		case ProcedureRelationId:
			qc_inval_func_at_commit(objectId);
			break;
		case PolicyRelationId:
			qc_ddl_rel(qc_ddl_owner_rel(PolicyRelationId,
										PolicyOidIndexId,
										Anum_pg_policy_oid,
										objectId));
			break;
		case RewriteRelationId:
			qc_ddl_rel(qc_ddl_owner_rel(RewriteRelationId,
										RewriteOidIndexId,
										Anum_pg_rewrite_oid,
										objectId));
			break;
		default:
			break;
	}
}

/*
 * The ProcessUtility hook's part, before the command runs: stamp what it
 * may change (header comment).  If the command fails, the transaction (or
 * subtransaction) aborts; the stamps of an aborted subtransaction stay
 * pending, which costs misses only.
 */
uint64
qc_ddl_before(Node *stmt)
{
	ListCell   *lc;

	if (!qc_ddl_active())
		return qc_ddl_created;
	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *ats = (AlterTableStmt *) stmt;
				Oid			relid;

				if (ats->objtype == OBJECT_INDEX)
					break;
				relid = qc_ddl_rangevar(ats->relation);

				/*
				 * Disabling or enabling triggers changes no row, but writes
				 * made while a watch's triggers are off invalidate nothing:
				 * entries computed before are stamped, at commit of both.
				 * ENABLE ALWAYS and ENABLE REPLICA alone (what qcache_watch
				 * runs on its new triggers) stamp nothing.
				 */
				if (qc_ddl_only_triggers(ats))
				{
					foreach(lc, ats->cmds)
					{
						AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

						if (cmd->subtype != AT_EnableAlwaysTrig &&
							cmd->subtype != AT_EnableReplicaTrig)
						{
							qc_ddl_rel_tree(relid);
							break;
						}
					}
					break;
				}
				qc_ddl_rel_tree(relid);

				/*
				 * A relation's row type (and a composite type) may be the
				 * type of another table's column, and its shape is what
				 * those rows print: no OID tag of what the query read
				 * reaches that.
				 */
				if (!OidIsValid(relid) ||
					get_rel_persistence(relid) != RELPERSISTENCE_TEMP)
					qc_inval_names_at_commit();
				foreach(lc, ats->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_AttachPartition)
					{
						Oid			part = qc_ddl_rangevar(((PartitionCmd *) cmd->def)->name);

						qc_ddl_rel_tree(part);
						qc_ddl_attaching(part, qc_ddl_rangevar(ats->relation));
					}
					else if (cmd->subtype == AT_DetachPartition ||
							 cmd->subtype == AT_DetachPartitionFinalize)
						qc_ddl_rel_tree(qc_ddl_rangevar(((PartitionCmd *) cmd->def)->name));
					else if (cmd->subtype == AT_AddInherit ||
							 cmd->subtype == AT_DropInherit)
						qc_ddl_rel_tree(qc_ddl_rangevar((RangeVar *) cmd->def));
				}
				break;
			}
		case T_RefreshMatViewStmt:
			qc_ddl_rel_tree(qc_ddl_rangevar(((RefreshMatViewStmt *) stmt)->relation));
			break;
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) stmt)->relations)
				qc_ddl_rel_tree(qc_ddl_rangevar(lfirst_node(RangeVar, lc)));
			break;
		case T_CreatePolicyStmt:
			qc_ddl_rel_tree(qc_ddl_rangevar(((CreatePolicyStmt *) stmt)->table));
			break;
		case T_AlterPolicyStmt:
			qc_ddl_rel_tree(qc_ddl_rangevar(((AlterPolicyStmt *) stmt)->table));
			break;
		case T_RuleStmt:
			qc_ddl_rel_tree(qc_ddl_rangevar(((RuleStmt *) stmt)->relation));
			break;
		case T_ViewStmt:
			{
				Oid			relid = qc_ddl_rangevar(((ViewStmt *) stmt)->view);

				if (OidIsValid(relid))
					qc_ddl_rel(relid);	/* CREATE OR REPLACE */
				break;
			}
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			/* a new child or partition: its parents' scans change */
			foreach(lc, ((CreateStmt *) stmt)->inhRelations)
				qc_ddl_rel_tree(qc_ddl_rangevar(lfirst_node(RangeVar, lc)));
			break;
		case T_RenameStmt:
			{
				RenameStmt *rs = (RenameStmt *) stmt;

				qc_inval_names_at_commit();
				if (rs->relation != NULL)
					qc_ddl_rel_tree(qc_ddl_rangevar(rs->relation));
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *as = (AlterObjectSchemaStmt *) stmt;

				qc_inval_names_at_commit();
				if (as->relation != NULL)
					qc_ddl_rel_tree(qc_ddl_rangevar(as->relation));
				break;
			}
		case T_DropStmt:
			switch (((DropStmt *) stmt)->removeType)
			{
				case OBJECT_TABLE:
				case OBJECT_VIEW:
				case OBJECT_MATVIEW:
				case OBJECT_SEQUENCE:
				case OBJECT_FOREIGN_TABLE:
				case OBJECT_INDEX:
				case OBJECT_FUNCTION:
				case OBJECT_PROCEDURE:
				case OBJECT_ROUTINE:
				case OBJECT_AGGREGATE:
				case OBJECT_TRIGGER:
				case OBJECT_POLICY:
				case OBJECT_RULE:
					/* reached by the OID tags (object_access_hook) */
					break;
				default:

					/*
					 * A cast, operator, type, collation, schema...: what
					 * a query over it returns, or how it prints, changes,
					 * and no OID tag reaches it.
					 */
					qc_inval_names_at_commit();
					break;
			}
			break;
		case T_DropRoleStmt:
		case T_DropOwnedStmt:
		case T_AlterEnumStmt:
		case T_AlterTSConfigurationStmt:
		case T_AlterTSDictionaryStmt:

			/*
			 * A renamed enum label changes what every query over the type
			 * returns, and a text search configuration what to_tsvector and
			 * its kin return, though they are IMMUTABLE: no OID tag reaches
			 * those results, the names tag does.
			 */
			qc_inval_names_at_commit();
			break;
		default:
			break;
	}
	return qc_ddl_created;
}

/* The schema of an extension (PostgreSQL 15 keeps its own static). */
static Oid
qc_ddl_extension_schema(Oid extoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/*
 * A function of the extension's schema in this database (nargs regclass
 * arguments), or InvalidOid: no extension, or a version without it.
 */
static Oid
qc_ddl_ext_function(const char *name, int nargs)
{
	Oid			extoid;
	char	   *nspname;
	Oid			argtypes[2] = {REGCLASSOID, REGCLASSOID};
	List	   *names;

	extoid = get_extension_oid("qcache", true);
	if (!OidIsValid(extoid))
		return InvalidOid;
	nspname = get_namespace_name(qc_ddl_extension_schema(extoid));
	if (nspname == NULL)
		return InvalidOid;
	names = lappend(list_make1(makeString(nspname)), makeString(pstrdup(name)));
	return LookupFuncName(names, nargs, argtypes, true);
}

/*
 * Watch a relation that has just become an inheritance child or a
 * partition, if one of its ancestors is watched: the SQL function
 * qcache_watch_child.  Called directly (fmgr), so that no EXECUTE
 * privilege is needed; it is SECURITY DEFINER.
 */
static void
qc_ddl_watch_child(Oid relid)
{
	Oid			fn;

	if (!OidIsValid(relid) || !has_superclass(relid))
		return;
	fn = qc_ddl_ext_function("qcache_watch_child", 1);
	if (!OidIsValid(fn))
		return;
	CommandCounterIncrement();
	(void) OidFunctionCall1(fn, ObjectIdGetDatum(relid));
}

/*
 * Before ATTACH PARTITION: the table's own row triggers of qcache_watch
 * would clash with the clones of the parent's (qcache_watch_attaching).
 */
static void
qc_ddl_attaching(Oid relid, Oid parent)
{
	Oid			fn;

	if (!OidIsValid(relid) || !OidIsValid(parent))
		return;
	fn = qc_ddl_ext_function("qcache_watch_attaching", 2);
	if (!OidIsValid(fn))
		return;
	(void) OidFunctionCall2(fn, ObjectIdGetDatum(relid), ObjectIdGetDatum(parent));
}

/*
 * Does this ALTER TABLE only enable or disable triggers?  That changes no
 * result (qcache_watch does it), so it stamps nothing.
 */
static bool
qc_ddl_only_triggers(AlterTableStmt *ats)
{
	ListCell   *lc;

	foreach(lc, ats->cmds)
	{
		switch (lfirst_node(AlterTableCmd, lc)->subtype)
		{
			case AT_EnableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
			case AT_EnableTrigAll:
			case AT_DisableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrigUser:
				break;
			default:
				return false;
		}
	}
	return true;
}

/* Is a RangeVar's relation to be created temporary? */
static inline bool
qc_ddl_temp(RangeVar *rv)
{
	return rv != NULL && rv->relpersistence == RELPERSISTENCE_TEMP;
}

/*
 * Can this statement, if it created something, change what a name
 * resolves to?  CREATE of anything a query names, but temporary
 * relations (visible in their own session only).
 */
static bool
qc_ddl_creates_names(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			return !qc_ddl_temp(((CreateStmt *) stmt)->relation);
		case T_ViewStmt:
			return !qc_ddl_temp(((ViewStmt *) stmt)->view);
		case T_CreateTableAsStmt:
			return !qc_ddl_temp(((CreateTableAsStmt *) stmt)->into->rel);
		case T_CreateSeqStmt:
			return !qc_ddl_temp(((CreateSeqStmt *) stmt)->sequence);
		case T_CreateFunctionStmt:
		case T_DefineStmt:
		case T_CompositeTypeStmt:
		case T_CreateEnumStmt:
		case T_CreateRangeStmt:
		case T_CreateDomainStmt:
		case T_CreateSchemaStmt:
		case T_CreateCastStmt:
		case T_CreateConversionStmt:
		case T_CreateOpClassStmt:
		case T_CreateOpFamilyStmt:
		case T_CreateTransformStmt:
		case T_CreateExtensionStmt:
		case T_AlterExtensionStmt:
			return true;
		default:
			return false;
	}
}

/*
 * The ProcessUtility hook's part, after the command ran: the names tag for
 * a CREATE that created something (created_before: what qc_ddl_before
 * returned), and watch a new child or partition of a watched table
 * (header comment).
 */
void
qc_ddl_after(Node *stmt, uint64 created_before)
{
	ListCell   *lc;

	if (!qc_ddl_active())
		return;
	if (qc_ddl_created != created_before && qc_ddl_creates_names(stmt))
		qc_inval_names_at_commit();
	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			{
				CreateStmt *cs = (CreateStmt *) stmt;

				if (cs->inhRelations != NIL)
					qc_ddl_watch_child(qc_ddl_rangevar(cs->relation));
				break;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *ats = (AlterTableStmt *) stmt;

				if (ats->objtype == OBJECT_INDEX)
					break;
				foreach(lc, ats->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_AttachPartition)
						qc_ddl_watch_child(qc_ddl_rangevar(((PartitionCmd *) cmd->def)->name));
					else if (cmd->subtype == AT_AddInherit)
						qc_ddl_watch_child(qc_ddl_rangevar(ats->relation));
				}
				break;
			}
		default:
			break;
	}
}
