/*-------------------------------------------------------------------------
 *
 * sqlfuncs.h
 *		Argument helpers shared by the SQL-callable functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef QCACHE_SQLFUNCS_H
#define QCACHE_SQLFUNCS_H

#include "utils/array.h"
#include "utils/jsonb.h"

#include "qcache.h"

extern void qc_null_arg_error(const char *what) pg_attribute_noreturn();
extern void qc_key_from_text(text *t, QcKey *key);
extern void qc_tags_from_array(ArrayType *arr, QcTags *tags);
extern TimestampTz qc_expiry(bool ttl_isnull, int32 ttl, TimestampTz now);
extern Jsonb *qc_lookup(const QcKey *key);
extern Jsonb *qc_value_jsonb(const QcValue *v);
extern text *qc_value_text(const QcValue *v);
extern bool qc_store(const QcKey *key, struct varlena *value,
					 const QcTags *tags, QcSetInfo *info);
extern void qc_store_l2_copy_checked(const QcKey *key, Jsonb *value,
									 const QcL2Value *lv, uint64 removals);
extern void qc_store_l2_copy(const QcKey *key, Jsonb *value,
							 const QcL2Value *lv);

#endif							/* QCACHE_SQLFUNCS_H */
