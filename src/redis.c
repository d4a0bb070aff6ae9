/*-------------------------------------------------------------------------
 *
 * redis.c
 *		The Redis second level: the layout in Redis, its Lua scripts, the
 *		circuit breaker, and the operations that the SQL functions, the
 *		commit callback and the subscriber worker call.  The connection
 *		itself is redis_conn.c; what this node owes Redis is redis_debt.c.
 *
 * The layout in Redis (P = qcache.redis_prefix, D = the database's name
 * with '%' and ':' percent-encoded, so that no two databases share a key):
 *
 *		P:D:<key>		the value, as JSON text in UTF-8, with its TTL
 *		P#m:D:<key>		its metadata, JSON: b build point, t tags, g d s
 *						the stamps it was checked against, l its length,
 *						h a hash of it, x an opaque field for the caller
 *		P:D:<key>\0Q<hex>	a shared qcache_fetch result (fetch.c): the key,
 *						a zero byte, 'Q' and the SHA-256 variant digest
 *						(security.c); x holds what a reader checks
 *		P#v:D:<key>		the set of the key's fetch results, so that
 *						qcache_invalidate(key) reaches them; lives as
 *						long as its longest-lived member
 *		P#t:D:<tag>		a tag's invalidation stamp (microseconds)
 *		P#i:D:<tag>		the tag's index: a set of the value keys stored
 *						with the tag, so an invalidation can delete them;
 *						the TTL of its longest-lived value
 *		P#d:D			the database's stamp (qcache_clear), no TTL
 *		P#g				the global stamp (lost invalidations), no TTL
 *		P#f				the floor: at least every stamp ever written
 *		P#inv			the pub/sub channel of invalidations
 *
 * Keys, tags and values are sent in UTF-8, converted from and to each
 * database's encoding; every name is built by length, so a key may hold
 * any byte, a zero byte included.  Node-internal tags (qc_tag_is_local)
 * never go to Redis, except the two that qcache_fetch results there
 * depend on and no public tag covers (qc_tag_l2_stamped: the names tag and
 * function OID tags): they are stamped in Redis by the DDL that stamps
 * them on its node, they have no index (their stamps decide; the names
 * tag would otherwise index every fetch result), and another cluster's
 * stamps of them only cost extra misses.
 *
 * Correctness rests on the stamps, as in L1 (invalidate.c): a value is
 * served only if it was built after the last invalidation of each of its
 * tags, of its database and of everything.  The get script checks that
 * each stamp key still holds exactly the stamp the value recorded and is
 * below its build point; a missing stamp key (evicted, expired) makes the
 * value invalid.  An invalidation always gives a stamp a new, larger
 * value and raises the floor; a set that finds a stamp missing creates it
 * at max(floor, build - 1), so a value built before an invalidation whose
 * stamp Redis lost is refused.  A set goes to Redis before L1, and a value
 * Redis refuses as stale is not kept in L1 either.
 *
 * Direct readers.  Applications may read P:D:<key> themselves.  Every
 * invalidation therefore also deletes what it invalidates: a key, a
 * prefix (SCAN), a database (SCAN), and a tag through its index, which
 * the set script fills and the stamp script empties.  An index is bounded
 * (QC_L2_INDEX_MAX members): a set that finds it full first drops up to 64
 * random members whose values have expired, and if it is still full, is
 * not stored in Redis at all, and removes the key's older value.  An
 * index lives as long as its longest-lived value (PEXPIRE ... GT, none
 * for a value without TTL), so indexes do not leak; an invalidation of the
 * tag empties it.  If Redis evicts an index (maxmemory with an eviction
 * policy), a direct reader may see a value its tag invalidated until the
 * value's TTL; qcache itself never serves one: the stamps decide.
 *
 * Faults.  A call that fails opens the shared circuit breaker
 * (QcShared.l2_up = 0): every backend then works on L1 alone, without
 * paying the timeout again, until the worker (redis_worker.c) finds Redis
 * healthy and closes it.  A write or an invalidation that could not reach
 * Redis is recorded as debt (redis_debt.c): the key, the tags, the
 * prefix, the database.  The worker pays it before the breaker closes.
 * A failed set owes only its key (its older value must go), so a set that
 * times out, or a value Redis refuses, never flushes anything else.
 *
 * Nothing here raises an error on a Redis failure: callers get false and
 * the L1 answer stands.  qc_l2_commit, called after the commit, never
 * raises at all: it catches even out-of-memory and owes its
 * invalidations instead.  An interrupt that ends a write or an
 * invalidation in the middle (the SQL functions guard their calls) owes
 * it too.  Redis 7.0 or later is needed (PEXPIRE ... GT).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <hiredis/hiredis.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "qcache.h"
#include "redis.h"

/* At most one warning about Redis per this many microseconds, cluster-wide. */
#define QC_L2_WARN_INTERVAL		(10 * USECS_PER_SEC)

/* Life of a tag stamp written by an invalidation (a day). */
#define QC_L2_STAMP_LIFE_MS		"86400000"

/* Most members of a tag's index. */
#define QC_L2_INDEX_MAX			"10000"

/*
 * get: KEYS = value, meta, global stamp, database stamp; ARGV = the prefix
 * of tag stamp keys, the largest value to return.  Returns nil; 0 for a
 * valid value too large to read; or {json, pttl, build, {tags}, hash, x}.
 * The length is checked (STRLEN) before the value is read.
 */
static const char *qc_script_get =
"local function sget(k)\n"
"  local s = redis.pcall('GET', k)\n"
"  if type(s) == 'table' then return false end\n"
"  return s\n"
"end\n"
"local n = redis.pcall('STRLEN', KEYS[1])\n"
"if type(n) ~= 'number' or n == 0 then return false end\n"
"local m = sget(KEYS[2])\n"
"if not m then return false end\n"
"local ok, meta = pcall(cjson.decode, m)\n"
"if not ok or type(meta) ~= 'table' then return false end\n"
"local b = tonumber(meta.b)\n"
"if not b or tonumber(meta.l) ~= n then return false end\n"
"local function fresh(k, rec)\n"
"  local s = sget(k)\n"
"  return s ~= false and s == rec and tonumber(s) ~= nil and tonumber(s) < b\n"
"end\n"
"if not fresh(KEYS[3], meta.g) or not fresh(KEYS[4], meta.d) then return false end\n"
"local tags = meta.t or {}\n"
"local st = meta.s or {}\n"
"if type(tags) ~= 'table' or type(st) ~= 'table' then return false end\n"
"for i = 1, #tags do\n"
"  if not fresh(ARGV[1] .. tags[i], st[i]) then return false end\n"
"end\n"
"if n > tonumber(ARGV[2]) then return 0 end\n"
"local v = sget(KEYS[1])\n"
"if not v then return false end\n"
"return {v, redis.call('PTTL', KEYS[1]), meta.b, tags, tostring(meta.h or ''), tostring(meta.x or '')}\n";

/*
 * set: KEYS = value, meta, global stamp, database stamp, floor [, the
 * key's set of fetch results, for a fetch result]; ARGV =
 * json, ttl in ms (0: none), build, now, tag stamp prefix, tag index
 * prefix, most index members, hash, x, tags...
 * Returns 1 (stored), 0 (refused: a stamp is at or after the build point)
 * or 2 (a tag's index is full: not stored, the key's old value removed).
 * A missing stamp (never made, expired or evicted) is created at
 * max(floor, build - 1): the floor is at least every stamp ever written,
 * so a value built before an invalidation whose stamp Redis lost is
 * refused.  A stamp key of the wrong type (written by someone else) is
 * replaced like a missing one.  Keeps every tag stamp alive at least as
 * long as the value; the global and database stamps have no TTL.  Tags
 * that start with byte 0x01 get a stamp but no index.
 */
static const char *qc_script_set =
"local ttl = tonumber(ARGV[2])\n"
"local b = tonumber(ARGV[3])\n"
"local function sget(k)\n"
"  local s = redis.pcall('GET', k)\n"
"  if type(s) == 'table' then redis.call('DEL', k); return false end\n"
"  return s\n"
"end\n"
"local floor = tonumber(sget(KEYS[5]))\n"
"if not floor then\n"
"  redis.call('SET', KEYS[5], ARGV[4])\n"
"  floor = tonumber(ARGV[4])\n"
"end\n"
"local function stamp(k, keep)\n"
"  local s = sget(k)\n"
"  if not s or tonumber(s) == nil then\n"
"    local v = math.max(floor, b - 1)\n"
"    s = string.format('%d', v)\n"
"    if ttl > 0 and not keep then redis.call('SET', k, s, 'PX', ttl) else redis.call('SET', k, s) end\n"
"    if v >= b then return nil end\n"
"    return s\n"
"  end\n"
"  if tonumber(s) >= b then return nil end\n"
"  if not keep then\n"
"    if ttl > 0 then redis.call('PEXPIRE', k, ttl, 'GT') else redis.call('PERSIST', k) end\n"
"  end\n"
"  return s\n"
"end\n"
"local g = stamp(KEYS[3], true)\n"
"if not g then return 0 end\n"
"local d = stamp(KEYS[4], true)\n"
"if not d then return 0 end\n"
"local tags, stamps = {}, {}\n"
"for i = 10, #ARGV do\n"
"  local s = stamp(ARGV[5] .. ARGV[i], false)\n"
"  if not s then return 0 end\n"
"  tags[#tags + 1] = ARGV[i]\n"
"  stamps[#stamps + 1] = s\n"
"end\n"
"local maxidx = tonumber(ARGV[7])\n"
"local isnew = {}\n"
"local function indexed(t) return string.byte(t, 1) ~= 1 end\n"
"for i = 1, #tags do\n"
"  local ik = ARGV[6] .. tags[i]\n"
"  local n = 0\n"
"  if indexed(tags[i]) then n = redis.pcall('SCARD', ik) end\n"
"  if type(n) ~= 'number' then redis.call('DEL', ik); n = 0 end\n"
"  isnew[i] = n == 0\n"
"  if n >= maxidx and redis.call('SISMEMBER', ik, KEYS[1]) == 0 then\n"
"    local some = redis.call('SRANDMEMBER', ik, 64)\n"
"    for j = 1, #some do\n"
"      if redis.call('EXISTS', some[j]) == 0 then redis.call('SREM', ik, some[j]) end\n"
"    end\n"
"    if redis.call('SCARD', ik) >= maxidx then\n"
"      redis.call('UNLINK', KEYS[1], KEYS[2])\n"
"      return 2\n"
"    end\n"
"  end\n"
"end\n"
"local function addto(ik, new)\n"
"  redis.call('SADD', ik, KEYS[1])\n"
"  if ttl == 0 then redis.call('PERSIST', ik)\n"
"  elseif new then redis.call('PEXPIRE', ik, ttl)\n"
"  else redis.call('PEXPIRE', ik, ttl, 'GT') end\n"
"end\n"
"for i = 1, #tags do\n"
"  if indexed(tags[i]) then addto(ARGV[6] .. tags[i], isnew[i]) end\n"
"end\n"
"if KEYS[6] then\n"
"  local n = redis.pcall('SCARD', KEYS[6])\n"
"  if type(n) ~= 'number' then redis.call('DEL', KEYS[6]); n = 0 end\n"
"  addto(KEYS[6], n == 0)\n"
"end\n"
"local meta = cjson.encode({b = ARGV[3], g = g, d = d, t = tags, s = stamps, l = #ARGV[1], h = ARGV[8], x = ARGV[9]})\n"
"if ttl > 0 then\n"
"  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n"
"  redis.call('SET', KEYS[2], meta, 'PX', ttl)\n"
"else\n"
"  redis.call('SET', KEYS[1], ARGV[1])\n"
"  redis.call('SET', KEYS[2], meta)\n"
"end\n"
"return 1\n";

/*
 * stamp: KEYS = floor, stamp keys...; ARGV = stamp, life in ms (0: no
 * TTL), now, length of the value keys' head "P:", the meta keys' head
 * "P#m:", then for each stamp key its index key ('' for none).
 * Gives each stamp key a new value, at least ARGV[1] and above its old
 * one, so that every value that recorded the old one is invalid; deletes
 * the values in the index, with their metadata, and the index; raises the
 * floor to the largest stamp.  Returns the number of keys deleted.
 */
static const char *qc_script_stamp =
"local st = tonumber(ARGV[1])\n"
"local life = tonumber(ARGV[2])\n"
"local vh = tonumber(ARGV[4])\n"
"local f = redis.pcall('GET', KEYS[1])\n"
"f = type(f) == 'string' and tonumber(f) or tonumber(ARGV[3])\n"
"local gone = 0\n"
"for i = 2, #KEYS do\n"
"  local s = redis.pcall('GET', KEYS[i])\n"
"  if type(s) == 'table' then redis.call('DEL', KEYS[i]); s = nil end\n"
"  s = tonumber(s)\n"
"  local v = st\n"
"  if s and s >= v then v = s + 1 end\n"
"  if life > 0 then\n"
"    redis.call('SET', KEYS[i], string.format('%d', v), 'PX', life)\n"
"  else\n"
"    redis.call('SET', KEYS[i], string.format('%d', v))\n"
"  end\n"
"  if v > f then f = v end\n"
"  local ik = ARGV[4 + i]\n"
"  if ik and ik ~= '' then\n"
"    local t = redis.call('TYPE', ik).ok\n"
"    if t == 'set' then\n"
"      local mem = redis.call('SMEMBERS', ik)\n"
"      for j = 1, #mem, 500 do\n"
"        local batch = {}\n"
"        for q = j, math.min(j + 499, #mem) do\n"
"          batch[#batch + 1] = mem[q]\n"
"          batch[#batch + 1] = ARGV[5] .. string.sub(mem[q], vh + 1)\n"
"        end\n"
"        gone = gone + redis.call('UNLINK', unpack(batch))\n"
"      end\n"
"    end\n"
"    if t ~= 'none' then redis.call('DEL', ik) end\n"
"  end\n"
"end\n"
"redis.call('SET', KEYS[1], string.format('%d', f))\n"
"return gone\n";

/*
 * delkey: KEYS = value, meta, the key's set of fetch results; ARGV =
 * length of the value keys' head "P:", the meta keys' head "P#m:".
 * Deletes the value and its metadata, every fetch result of the key and
 * theirs, and the set.  Returns the number of keys deleted.
 */
static const char *qc_script_delkey =
"local gone = redis.call('UNLINK', KEYS[1], KEYS[2])\n"
"local vh = tonumber(ARGV[1])\n"
"if redis.call('TYPE', KEYS[3]).ok == 'set' then\n"
"  local mem = redis.call('SMEMBERS', KEYS[3])\n"
"  for j = 1, #mem, 500 do\n"
"    local batch = {}\n"
"    for q = j, math.min(j + 499, #mem) do\n"
"      batch[#batch + 1] = mem[q]\n"
"      batch[#batch + 1] = ARGV[2] .. string.sub(mem[q], vh + 1)\n"
"    end\n"
"    gone = gone + redis.call('UNLINK', unpack(batch))\n"
"  end\n"
"end\n"
"redis.call('DEL', KEYS[3])\n"
"return gone\n";

typedef enum QcScript
{
	QC_SCRIPT_GET,
	QC_SCRIPT_SET,
	QC_SCRIPT_STAMP,
	QC_SCRIPT_DELKEY,
	QC_NUM_SCRIPTS
} QcScript;

static const char *const *
qc_scripts(void)
{
	static const char *s[QC_NUM_SCRIPTS];

	s[QC_SCRIPT_GET] = qc_script_get;
	s[QC_SCRIPT_SET] = qc_script_set;
	s[QC_SCRIPT_STAMP] = qc_script_stamp;
	s[QC_SCRIPT_DELKEY] = qc_script_delkey;
	return s;
}

/* SHA1s of the scripts, from SCRIPT LOAD (the same for every connection). */
static char script_sha[QC_NUM_SCRIPTS][41];

/* This backend's connection. */
static QcRedisConn backend_conn;

/* ---------- state ---------- */

/* Is a Redis level configured? */
bool
qc_l2_active(void)
{
	return qc_redis_url != NULL && qc_redis_url[0] != '\0';
}

/* Configured, and the breaker closed: talk to Redis. */
bool
qc_l2_usable(void)
{
	return qc_l2_active() && pg_atomic_read_u32(&qc_shared->l2_up) != 0;
}

/*
 * Log a Redis failure, at most once per QC_L2_WARN_INTERVAL across the
 * cluster.  Never raises.
 */
void
qc_l2_warn(int elevel, const char *what, const char *detail)
{
	uint64		now = (uint64) GetCurrentTimestamp();
	uint64		last = pg_atomic_read_u64(&qc_shared->l2_warned);

	if (now < last + QC_L2_WARN_INTERVAL ||
		!pg_atomic_compare_exchange_u64(&qc_shared->l2_warned, &last, now))
		return;
	ereport(elevel,
			(errmsg("qcache: %s", what),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("qcache works on its local cache alone until Redis answers again; this message is shown at most every %d seconds.",
					 (int) (QC_L2_WARN_INTERVAL / USECS_PER_SEC))));
}

/* Count and remember an error of a connection (no secret in it). */
void
qc_l2_note_error(const char *what, const QcRedisConn *conn)
{
	char		detail[256];

	snprintf(detail, sizeof(detail), "%s: %s (%s)", what,
			 conn->errstr[0] ? conn->errstr : "no detail",
			 qc_redis_where(&conn->target));
	qc_count(QC_STAT_L2_ERRORS, 1);
	qc_l2_set_error(detail);
}

/* A call failed: count it, open the breaker, warn. */
static void
qc_l2_failed(QcRedisConn *conn, const char *what)
{
	char		detail[256];

	snprintf(detail, sizeof(detail), "%s (%s)",
			 conn->errstr[0] ? conn->errstr : "no detail",
			 qc_redis_where(&conn->target));
	qc_l2_note_error(what, conn);
	pg_atomic_write_u32(&qc_shared->l2_up, 0);
	qc_l2_warn(WARNING, what, detail);
}

/* ---------- names and encodings ---------- */

/* The current database's name, cached; call inside a transaction first. */
static char *dbname = NULL;

const char *
qc_l2_dbname(void)
{
	if (dbname == NULL)
	{
		char	   *n = get_database_name(MyDatabaseId);

		dbname = MemoryContextStrdup(TopMemoryContext, n ? n : "?");
	}
	return dbname;
}

/* Is s pure ASCII (no byte above 0x7f)? */
static bool
qc_is_ascii(const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		if ((unsigned char) s[i] > 0x7f)
			return false;
	return true;
}

/*
 * Append text of the database's encoding to buf in UTF-8, by length (a
 * zero byte passes as it is; the conversions stop at one, so each run
 * between them is converted on its own).
 */
static void
qc_append_utf8(StringInfo buf, const char *s, size_t len)
{
	int			enc = GetDatabaseEncoding();
	const char *end = s + len;

	if (enc == PG_UTF8 || enc == PG_SQL_ASCII || qc_is_ascii(s, len))
	{
		appendBinaryStringInfo(buf, s, len);
		return;
	}
	while (s < end)
	{
		const char *z = memchr(s, '\0', end - s);
		size_t		run = z ? (size_t) (z - s) : (size_t) (end - s);

		if (run > 0)
		{
			char	   *c = pg_server_to_any(s, (int) run, PG_UTF8);

			appendBinaryStringInfo(buf, c, c == s ? run : strlen(c));
		}
		if (z == NULL)
			break;
		appendStringInfoChar(buf, '\0');
		s = z + 1;
	}
}

/*
 * Text from Redis (UTF-8) in the database's encoding, palloc'd and
 * NUL-terminated, length in *outlen; NULL if it is not valid UTF-8, holds
 * a zero byte, or has a character the database's encoding lacks.
 */
static char *
qc_from_utf8(const char *s, size_t len, size_t *outlen)
{
	int			enc = GetDatabaseEncoding();
	static Oid	proc = InvalidOid;
	static int	proc_enc = -1;
	char	   *dst;
	size_t		cap;
	int			done;

	if (memchr(s, '\0', len) != NULL ||
		!pg_verify_mbstr(PG_UTF8, s, (int) len, true))
		return NULL;
	if (enc == PG_UTF8 || enc == PG_SQL_ASCII || qc_is_ascii(s, len))
	{
		*outlen = len;
		return pnstrdup(s, len);
	}
	if (proc_enc != enc)
	{
		proc = FindDefaultConversionProc(PG_UTF8, enc);
		proc_enc = enc;
	}
	if (!OidIsValid(proc))
		return NULL;
	cap = len * MAX_CONVERSION_GROWTH + 1;
	if (cap > MaxAllocSize)
		return NULL;
	dst = palloc(cap);
	done = pg_do_encoding_conversion_buf(proc, PG_UTF8, enc,
										 (unsigned char *) s, (int) len,
										 (unsigned char *) dst, (int) cap, true);
	if (done != (int) len)
		return NULL;
	*outlen = strlen(dst);
	return dst;
}

/* Append a database name, with '%' and ':' percent-encoded. */
static void
qc_append_db(StringInfo buf, const char *db)
{
	for (; *db; db++)
	{
		if (*db == '%')
			appendStringInfoString(buf, "%25");
		else if (*db == ':')
			appendStringInfoString(buf, "%3A");
		else
			appendStringInfoChar(buf, *db);
	}
}

/*
 * prefix + infix [+ encoded db [+ ':' + str]], palloc'd, length in *len.
 * str is already in Redis's encoding (UTF-8); any byte may be in it.
 */
static char *
qc_l2_name(const char *infix, const char *db, const char *str, size_t slen,
		   size_t *len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, qc_redis_prefix);
	appendStringInfoString(&buf, infix);
	if (db != NULL)
	{
		qc_append_db(&buf, db);
		if (str != NULL)
		{
			appendStringInfoChar(&buf, ':');
			appendBinaryStringInfo(&buf, str, slen);
		}
	}
	*len = buf.len;
	return buf.data;
}

/* s (server encoding) in UTF-8, palloc'd; length in *outlen. */
static char *
qc_utf8(const char *s, size_t len, size_t *outlen)
{
	StringInfoData buf;

	initStringInfo(&buf);
	qc_append_utf8(&buf, s, len);
	*outlen = buf.len;
	return buf.data;
}

/* The keys every value script takes. */
typedef struct QcL2Keys
{
	char	   *value;
	size_t		value_len;
	char	   *meta;
	size_t		meta_len;
	char	   *gstamp;
	size_t		gstamp_len;
	char	   *db;
	size_t		db_len;
	char	   *tagpfx;
	size_t		tagpfx_len;
	char	   *idxpfx;
	size_t		idxpfx_len;
	char	   *floor;
	size_t		floor_len;
	char	   *varset;			/* the key's set of fetch results */
	size_t		varset_len;
} QcL2Keys;

/* Names of a key of the current database (key in the server encoding). */
static void
qc_l2_keys(const QcKey *key, QcL2Keys *k)
{
	const char *db = qc_l2_dbname();
	size_t		ulen;
	char	   *u = qc_utf8(key->data, key->len, &ulen);

	k->value = qc_l2_name(":", db, u, ulen, &k->value_len);
	k->meta = qc_l2_name("#m:", db, u, ulen, &k->meta_len);
	k->gstamp = qc_l2_name("#g", NULL, NULL, 0, &k->gstamp_len);
	k->db = qc_l2_name("#d:", db, NULL, 0, &k->db_len);
	k->tagpfx = qc_l2_name("#t:", db, "", 0, &k->tagpfx_len);
	k->idxpfx = qc_l2_name("#i:", db, "", 0, &k->idxpfx_len);
	k->floor = qc_l2_name("#f", NULL, NULL, 0, &k->floor_len);
	/* of the user's key: the bytes before a fetch variant's zero byte */
	k->varset = qc_l2_name("#v:", db, u, strnlen(u, ulen), &k->varset_len);
}

/*
 * Publish an invalidation: node id, kind, stamp, database, payload, each
 * but the last followed by a zero byte.  The payload is in UTF-8.
 */
static void
qc_l2_publish_cmd(QcRedisCmd *cmd, StringInfo msg, char kind,
				  TimestampTz stamp, const char *db, const char *payload,
				  size_t len)
{
	size_t		chlen;
	char	   *channel = qc_l2_name("#inv", NULL, NULL, 0, &chlen);

	initStringInfo(msg);
	appendStringInfo(msg, "%016llx", (unsigned long long) qc_shared->node_id);
	appendStringInfoChar(msg, '\0');
	appendStringInfoChar(msg, kind);
	appendStringInfoChar(msg, '\0');
	appendStringInfo(msg, INT64_FORMAT, (int64) stamp);
	appendStringInfoChar(msg, '\0');
	appendStringInfoString(msg, db ? db : "");
	appendStringInfoChar(msg, '\0');
	if (len > 0)
		appendBinaryStringInfo(msg, payload, len);
	qc_cmd_init(cmd, 3);
	qc_cmd_str(cmd, "PUBLISH");
	qc_cmd_arg(cmd, channel, chlen);
	qc_cmd_arg(cmd, msg->data, msg->len);
}

/* ---------- the connection ---------- */

/* Connect conn and load the scripts; for the worker too. */
bool
qc_l2_connect(QcRedisConn *conn)
{
	return qc_redis_connect(conn, qc_scripts(), QC_NUM_SCRIPTS, script_sha);
}

/*
 * The backend's connection, connected; NULL (breaker opened) if it cannot
 * be had.  A connection left busy by an interrupted call, or made for
 * another target, is replaced; a reload that changes nothing keeps it.
 */
static QcRedisConn *
qc_backend_conn(void)
{
	QcRedisConn *conn = &backend_conn;

	if (conn->ctx != NULL &&
		(conn->busy || conn->identity != qc_redis_current_identity()))
		qc_redis_disconnect(conn);
	if (conn->ctx == NULL && !qc_l2_connect(conn))
	{
		qc_l2_failed(conn, "cannot connect to Redis");
		return NULL;
	}
	conn->timeout_ms = Max(qc_redis_timeout, 1);
	return conn;
}

/*
 * The connection for a write or an invalidation; NULL if it may not reach
 * Redis now (breaker open, this backend's settings are not the target the
 * node serves, or the connection fails): the caller then owes it.
 */
static QcRedisConn *
qc_l2_write_conn(void)
{
	if (!qc_l2_usable() || !qc_l2_on_target())
		return NULL;
	return qc_backend_conn();
}

/* For callers that were interrupted in the middle of a Redis call. */
static void
qc_l2_interrupted(void)
{
	backend_conn.busy = backend_conn.ctx != NULL;
}

static void qc_l2_owe_key(const QcKey *key);

/*
 * A write (key) or an invalidation (key NULL: the whole database) of the
 * SQL functions was interrupted in the middle: owe it, and drop the
 * connection, which may still have a reply coming.
 */
void
qc_l2_lost_write(const QcKey *key)
{
	qc_l2_interrupted();
	if (!qc_l2_active())
		return;
	if (key)
		qc_l2_owe_key(key);
	else
		qc_l2_owe('c', qc_l2_dbname(), NULL, 0);
}

/*
 * Run a script by its SHA1, or by its text if Redis lost it (NOSCRIPT),
 * followed by up to one more pipelined command.  Replies as qc_redis_run.
 */
static bool
qc_redis_script(QcRedisConn *conn, QcScript script, QcRedisCmd *cmd,
				QcRedisCmd *extra, redisReply **replies)
{
	QcRedisCmd	cmds[2];
	int			n = extra ? 2 : 1;

	cmd->argv[0] = "EVALSHA";
	cmd->argvlen[0] = 7;
	cmd->argv[1] = script_sha[script];
	cmd->argvlen[1] = 40;
	cmds[0] = *cmd;
	if (extra)
		cmds[1] = *extra;
	if (!qc_redis_run(conn, n, cmds, replies))
		return false;
	if (replies[0]->type == REDIS_REPLY_ERROR &&
		strncmp(replies[0]->str, "NOSCRIPT", 8) == 0)
	{
		freeReplyObject(replies[0]);
		replies[0] = NULL;
		cmds[0].argv[0] = "EVAL";
		cmds[0].argvlen[0] = 4;
		cmds[0].argv[1] = qc_scripts()[script];
		cmds[0].argvlen[1] = strlen(qc_scripts()[script]);
		if (!qc_redis_run(conn, 1, cmds, replies))
		{
			if (extra)
				qc_redis_free_replies(1, replies + 1);
			return false;
		}
	}
	return true;
}

/* ---------- the operations ---------- */

/* The hash of a value's JSON text (UTF-8) recorded in its metadata. */
static void
qc_l2_hash(const char *s, size_t len, char *out)
{
	snprintf(out, 17, "%016llx", (unsigned long long)
			 hash_bytes_extended((const unsigned char *) s, (int) len, 0x71ca));
}

/*
 * Look a key up in Redis.  True on a valid hit, with out filled (palloc'd,
 * in the database's encoding); counts the L2 hit or miss.  Text that is
 * not what qcache wrote (another length or hash, invalid UTF-8, too large)
 * is a miss.
 */
bool
qc_l2_get(const QcKey *key, QcL2Value *out)
{
	bool		hit = qc_l2_get_uncounted(key, out);

	qc_count(hit ? QC_STAT_L2_HITS : QC_STAT_L2_MISSES, 1);
	return hit;
}

/*
 * qc_l2_get without counting: for qcache_fetch, which counts an L2 hit
 * only when it serves the value to its caller (fetch.c).
 */
bool
qc_l2_get_uncounted(const QcKey *key, QcL2Value *out)
{
	QcRedisConn *conn;
	QcL2Keys	k;
	QcRedisCmd	cmd;
	redisReply *r[2];
	redisReply *rep;
	bool		hit = false;
	char		maxbuf[32];

	if (!qc_l2_usable() || !qc_l2_on_target() ||
		(conn = qc_backend_conn()) == NULL)
		return false;
	qc_l2_keys(key, &k);
	/* UTF-8 may take up to 4/3 the bytes of a single-byte encoding */
	snprintf(maxbuf, sizeof(maxbuf), "%lld",
			 (long long) qc_max_entry_size * MAX_CONVERSION_GROWTH);
	qc_cmd_init(&cmd, 9);
	cmd.argc = 2;				/* EVALSHA sha */
	qc_cmd_str(&cmd, "4");
	qc_cmd_arg(&cmd, k.value, k.value_len);
	qc_cmd_arg(&cmd, k.meta, k.meta_len);
	qc_cmd_arg(&cmd, k.gstamp, k.gstamp_len);
	qc_cmd_arg(&cmd, k.db, k.db_len);
	qc_cmd_arg(&cmd, k.tagpfx, k.tagpfx_len);
	qc_cmd_str(&cmd, maxbuf);
	if (!qc_redis_script(conn, QC_SCRIPT_GET, &cmd, NULL, r))
	{
		qc_l2_failed(conn, "Redis lookup failed");
		return false;
	}
	rep = r[0];
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 6 &&
		rep->element[0]->type == REDIS_REPLY_STRING &&
		rep->element[1]->type == REDIS_REPLY_INTEGER &&
		rep->element[2]->type == REDIS_REPLY_STRING &&
		rep->element[3]->type == REDIS_REPLY_ARRAY &&
		rep->element[3]->elements <= QC_MAX_ENTRY_TAGS &&
		rep->element[4]->type == REDIS_REPLY_STRING &&
		rep->element[5]->type == REDIS_REPLY_STRING)
	{
		redisReply *tags = rep->element[3];
		redisReply *v = rep->element[0];
		char		h[17];
		size_t		i;

		hit = true;
		qc_l2_hash(v->str, v->len, h);
		if (rep->element[4]->len != 16 || memcmp(h, rep->element[4]->str, 16) != 0)
			hit = false;
		if (hit && (out->json = qc_from_utf8(v->str, v->len, &out->len)) == NULL)
			hit = false;
		out->pttl_ms = rep->element[1]->integer;
		out->build = (TimestampTz) strtoll(rep->element[2]->str, NULL, 10);
		out->x = pnstrdup(rep->element[5]->str, rep->element[5]->len);
		out->x_len = rep->element[5]->len;
		out->tags.ntags = 0;
		out->tags.tag = palloc(sizeof(char *) * Max(tags->elements, 1));
		out->tags.len = palloc(sizeof(uint32) * Max(tags->elements, 1));
		for (i = 0; hit && i < tags->elements; i++)
		{
			redisReply *t = tags->element[i];
			size_t		tl;

			if (t->type != REDIS_REPLY_STRING ||
				(out->tags.tag[i] = qc_from_utf8(t->str, t->len, &tl)) == NULL ||
				tl > QC_MAX_TAG_LEN)
			{
				hit = false;
				break;
			}
			out->tags.len[i] = tl;
			out->tags.ntags++;
		}
		if (out->build <= 0 || (hit && out->len > (size_t) qc_max_entry_size))
			hit = false;
		/* what this node and this transaction know that Redis may not yet */
		if (hit && !qc_l2_value_fresh(key->dbid, &out->tags, out->build))
			hit = false;
	}
	else if (rep->type == REDIS_REPLY_ERROR)
		qc_l2_warn(WARNING, "Redis refused a lookup", rep->str);
	qc_redis_free_replies(1, r);
	return hit;
}

/*
 * Is JSON text from Redis valid JSON (checked with the non-throwing
 * parser)?  For qcache_fetch_json, which hands the text on as json.
 */
bool
qc_l2_json_valid(const char *json, size_t len)
{
	JsonLexContext *lex;

	if (strlen(json) != len)
		return false;
	/* need_escapes: also catches \u0000 and bad surrogates, as jsonb_in */
	lex = makeJsonLexContextCstringLen(unconstify(char *, json), (int) len,
									   GetDatabaseEncoding(), true);
	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/*
 * Parse JSON text from Redis into jsonb.  The get script and qc_l2_get
 * served it only if its length and hash are the ones qcache recorded when
 * it wrote it, so text that another application wrote over the key is a
 * miss before it gets here.  Not checked twice: parsing is most of an L2
 * hit's own cost.
 */
Jsonb *
qc_l2_json_to_jsonb(const char *json, size_t len)
{
	if (strlen(json) != len)
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(json)));
}

/* Owe Redis the removal of a key of the current database. */
static void
qc_l2_owe_key(const QcKey *key)
{
	size_t		ulen;
	char	   *u = qc_utf8(key->data, key->len, &ulen);

	qc_l2_owe('k', qc_l2_dbname(), u, ulen);
}

/*
 * Write a value, as JSON text, to Redis with its TTL (ttl_ms 0: none),
 * build point and tags.  QC_L2_STALE: a stamp in Redis says the value is
 * already stale, so nobody may keep it.  A set that does not reach Redis
 * owes the removal of the key (its older value, if any, must not be
 * served to other nodes); it loses no invalidation, so it owes nothing
 * more.
 */
QcL2SetResult
qc_l2_set(const QcKey *key, const char *json, const QcTags *tags,
		  int64 ttl_ms, TimestampTz build, const char *x)
{
	QcRedisConn *conn;
	QcL2Keys	k;
	QcRedisCmd	cmd;
	redisReply *r[2];
	char		ttlbuf[32];
	char		bbuf[32];
	char		nowbuf[32];
	char		hash[17];
	char	   *uj;
	size_t		ujlen;
	QcL2SetResult res;
	bool		fetch;
	int			i;

	if ((conn = qc_l2_write_conn()) == NULL)
	{
		qc_l2_owe_key(key);
		return QC_L2_FAILED;
	}
	qc_l2_keys(key, &k);
	uj = qc_utf8(json, strlen(json), &ujlen);
	qc_l2_hash(uj, ujlen, hash);
	snprintf(ttlbuf, sizeof(ttlbuf), INT64_FORMAT, ttl_ms);
	snprintf(bbuf, sizeof(bbuf), INT64_FORMAT, (int64) build);
	snprintf(nowbuf, sizeof(nowbuf), INT64_FORMAT, (int64) GetCurrentTimestamp());

	fetch = memchr(key->data, '\0', key->len) != NULL;
	qc_cmd_init(&cmd, 18 + tags->ntags);
	cmd.argc = 2;
	qc_cmd_str(&cmd, fetch ? "6" : "5");
	qc_cmd_arg(&cmd, k.value, k.value_len);
	qc_cmd_arg(&cmd, k.meta, k.meta_len);
	qc_cmd_arg(&cmd, k.gstamp, k.gstamp_len);
	qc_cmd_arg(&cmd, k.db, k.db_len);
	qc_cmd_arg(&cmd, k.floor, k.floor_len);
	if (fetch)
		qc_cmd_arg(&cmd, k.varset, k.varset_len);
	qc_cmd_arg(&cmd, uj, ujlen);
	qc_cmd_str(&cmd, ttlbuf);
	qc_cmd_str(&cmd, bbuf);
	qc_cmd_str(&cmd, nowbuf);
	qc_cmd_arg(&cmd, k.tagpfx, k.tagpfx_len);
	qc_cmd_arg(&cmd, k.idxpfx, k.idxpfx_len);
	qc_cmd_str(&cmd, QC_L2_INDEX_MAX);
	qc_cmd_str(&cmd, hash);
	qc_cmd_str(&cmd, x ? x : "");	/* x: an opaque field for the caller */
	for (i = 0; i < tags->ntags; i++)
	{
		size_t		tl;
		char	   *t;

		if (qc_tag_is_local(tags->tag[i]) && !qc_tag_l2_stamped(tags->tag[i]))
			continue;
		t = qc_utf8(tags->tag[i], tags->len[i], &tl);
		qc_cmd_arg(&cmd, t, tl);
	}
	if (!qc_redis_script(conn, QC_SCRIPT_SET, &cmd, NULL, r))
	{
		qc_l2_failed(conn, "Redis write failed");
		qc_l2_owe_key(key);
		return QC_L2_FAILED;
	}
	if (r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer == 1)
		res = QC_L2_STORED;
	else if (r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer == 0)
		res = QC_L2_STALE;
	else if (r[0]->type == REDIS_REPLY_INTEGER)
		res = QC_L2_FAILED;		/* a tag's index is full: the key is gone */
	else
	{
		/* e.g. OOM under maxmemory with noeviction: the old value may stay */
		res = QC_L2_FAILED;
		qc_l2_warn(WARNING, "Redis refused a write",
				   r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : "unexpected reply");
		qc_count(QC_STAT_L2_ERRORS, 1);
		qc_l2_set_error(r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : "unexpected reply");
		qc_l2_owe_key(key);
	}
	qc_redis_free_replies(1, r);
	if (!qc_l2_on_target())
		qc_l2_owe_key(key);		/* the node moved during the call */
	return res;
}

/*
 * The delkey script's call for a key of database db (UTF-8, the user's
 * key: no fetch variant), into cmd (EVALSHA and the SHA are filled in by
 * qc_redis_script).
 */
static void
qc_l2_delkey_cmd(QcRedisCmd *cmd, const char *db, const char *u, size_t ulen)
{
	size_t		vl;
	size_t		ml;
	size_t		sl;
	size_t		vhl;
	size_t		mhl;
	char	   *v = qc_l2_name(":", db, u, ulen, &vl);
	char	   *m = qc_l2_name("#m:", db, u, ulen, &ml);
	char	   *set = qc_l2_name("#v:", db, u, ulen, &sl);
	char	   *mh = qc_l2_name("#m:", NULL, NULL, 0, &mhl);
	char	   *vh = psprintf("%zu", (size_t) strlen(qc_redis_prefix) + 1);

	(void) qc_l2_name(":", NULL, NULL, 0, &vhl);
	qc_cmd_init(cmd, 8);
	cmd->argc = 2;				/* EVALSHA sha */
	qc_cmd_str(cmd, "3");
	qc_cmd_arg(cmd, v, vl);
	qc_cmd_arg(cmd, m, ml);
	qc_cmd_arg(cmd, set, sl);
	qc_cmd_str(cmd, vh);
	qc_cmd_arg(cmd, mh, mhl);
}

/*
 * Remove a key from Redis, with the qcache_fetch results stored under it,
 * and tell the other nodes; true if anything was there.
 */
bool
qc_l2_invalidate_key(const QcKey *key)
{
	QcRedisConn *conn;
	QcRedisCmd	cmds[2];
	StringInfoData msg;
	redisReply *r[2];
	bool		removed;
	size_t		ulen;
	char	   *u;

	if ((conn = qc_l2_write_conn()) == NULL)
	{
		qc_l2_owe_key(key);
		return false;
	}
	u = qc_utf8(key->data, key->len, &ulen);
	qc_l2_delkey_cmd(&cmds[0], qc_l2_dbname(), u, ulen);
	qc_l2_publish_cmd(&cmds[1], &msg, 'k', 0, qc_l2_dbname(), u, ulen);
	if (!qc_redis_script(conn, QC_SCRIPT_DELKEY, &cmds[0], &cmds[1], r))
	{
		qc_l2_failed(conn, "Redis invalidation failed");
		qc_l2_owe_key(key);
		return false;
	}
	removed = r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer > 0;
	if (r[0]->type == REDIS_REPLY_ERROR || r[1]->type == REDIS_REPLY_ERROR ||
		!qc_l2_on_target())
		qc_l2_owe_key(key);
	qc_redis_free_replies(2, r);
	return removed;
}

/*
 * Raise stamp keys in Redis, delete the values in their indexes (idx[i],
 * or NULL) and publish one message; the shared body of the tag, clear and
 * commit invalidations and of the worker's payments.  life: "0" for no
 * TTL.  False on failure (the caller owes it).  Never raises on a Redis
 * failure.
 */
static bool
qc_l2_stamp(QcRedisConn *conn, int nkeys, char **keys, size_t *keylens,
			char **idx, size_t *idxlens, const char *life,
			TimestampTz stamp, char kind, const char *db,
			const char *payload, size_t len)
{
	QcRedisCmd *cmd;
	QcRedisCmd	pub;
	StringInfoData msg;
	redisReply *r[2];
	char		sbuf[32];
	char		nbuf[16];
	char		nowbuf[32];
	char		vhbuf[16];
	char	   *floor;
	size_t		floorlen;
	char	   *mhead;
	size_t		mheadlen;
	size_t		vhlen;
	int			i;

	cmd = palloc(sizeof(QcRedisCmd));
	qc_cmd_init(cmd, 2 * nkeys + 10);
	cmd->argc = 2;
	snprintf(nbuf, sizeof(nbuf), "%d", nkeys + 1);
	qc_cmd_str(cmd, nbuf);
	floor = qc_l2_name("#f", NULL, NULL, 0, &floorlen);
	qc_cmd_arg(cmd, floor, floorlen);
	for (i = 0; i < nkeys; i++)
		qc_cmd_arg(cmd, keys[i], keylens[i]);
	snprintf(sbuf, sizeof(sbuf), INT64_FORMAT, (int64) stamp);
	qc_cmd_str(cmd, sbuf);
	qc_cmd_str(cmd, life);
	snprintf(nowbuf, sizeof(nowbuf), INT64_FORMAT, (int64) GetCurrentTimestamp());
	qc_cmd_str(cmd, nowbuf);
	(void) qc_l2_name(":", NULL, NULL, 0, &vhlen);
	snprintf(vhbuf, sizeof(vhbuf), "%d", (int) vhlen);
	qc_cmd_str(cmd, vhbuf);
	mhead = qc_l2_name("#m:", NULL, NULL, 0, &mheadlen);
	qc_cmd_arg(cmd, mhead, mheadlen);
	for (i = 0; i < nkeys; i++)
		qc_cmd_arg(cmd, idx && idx[i] ? idx[i] : "", idx && idx[i] ? idxlens[i] : 0);
	qc_l2_publish_cmd(&pub, &msg, kind, stamp, db, payload, len);
	if (!qc_redis_script(conn, QC_SCRIPT_STAMP, cmd, &pub, r))
	{
		qc_l2_failed(conn, "Redis invalidation failed");
		return false;
	}
	if (r[0]->type == REDIS_REPLY_ERROR || r[1]->type == REDIS_REPLY_ERROR)
	{
		qc_count(QC_STAT_L2_ERRORS, 1);
		qc_l2_set_error(r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : r[1]->str);
		qc_l2_warn(WARNING, "Redis refused an invalidation",
				   r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : r[1]->str);
		qc_redis_free_replies(2, r);
		return false;
	}
	qc_redis_free_replies(2, r);
	return true;
}

/*
 * Stamp tags (UTF-8, NUL-separated in tags, n of them) of database db,
 * delete their values, and publish 'T' (or 't' for one).  False on
 * failure.
 */
static bool
qc_l2_stamp_tags(QcRedisConn *conn, const char *db, const char *tags,
				 size_t len, int n, TimestampTz stamp)
{
	char	  **keys = palloc(sizeof(char *) * Max(n, 1));
	size_t	   *keylens = palloc(sizeof(size_t) * Max(n, 1));
	char	  **idx = palloc(sizeof(char *) * Max(n, 1));
	size_t	   *idxlens = palloc(sizeof(size_t) * Max(n, 1));
	const char *p;
	int			i = 0;

	for (p = tags; p < tags + len && i < n; p += strlen(p) + 1)
	{
		keys[i] = qc_l2_name("#t:", db, p, strlen(p), &keylens[i]);
		/* qc_tag_l2_stamped: a stamp, no index */
		idx[i] = qc_tag_is_local(p) ? NULL :
			qc_l2_name("#i:", db, p, strlen(p), &idxlens[i]);
		i++;
	}
	if (i == 0)
		return true;
	return qc_l2_stamp(conn, i, keys, keylens, idx, idxlens,
					   QC_L2_STAMP_LIFE_MS, stamp, i == 1 ? 't' : 'T', db,
					   tags, i == 1 ? strlen(tags) : len);
}

/* Raise a database's stamp and publish 'c'.  False on failure. */
static bool
qc_l2_stamp_db(QcRedisConn *conn, const char *db, TimestampTz stamp)
{
	size_t		keylen;
	char	   *key = qc_l2_name("#d:", db, NULL, 0, &keylen);

	return qc_l2_stamp(conn, 1, &key, &keylen, NULL, NULL, "0", stamp, 'c',
					   db, NULL, 0);
}

/* Invalidate a tag in Redis at `stamp` and tell the other nodes. */
void
qc_l2_invalidate_tag(const char *tag, uint32 len, TimestampTz stamp)
{
	QcRedisConn *conn;
	size_t		ulen;
	char	   *u;

	if (qc_tag_is_local(tag))
		return;
	u = qc_utf8(tag, len, &ulen);
	if ((conn = qc_l2_write_conn()) == NULL ||
		!qc_l2_stamp_tags(conn, qc_l2_dbname(), u, ulen + 1, 1, stamp) ||
		!qc_l2_on_target())
		qc_l2_owe('t', qc_l2_dbname(), u, ulen);
}

/* Escape the glob characters of SCAN MATCH. */
static void
qc_glob_escape(StringInfo buf, const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (strchr("*?[]\\", s[i]) != NULL)
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, s[i]);
	}
}

/*
 * Delete the values of database db (every database for NULL) whose key
 * starts with prefix (UTF-8; all of them for len 0), and their metadata,
 * with SCAN; then publish 'p' for a prefix.  False on failure.
 */
static bool
qc_l2_delete_scan(QcRedisConn *conn, const char *db, const char *prefix,
				  size_t len, bool publish)
{
	StringInfoData pattern;
	char		cursor[32] = "0";
	size_t		headlen;
	char	   *head = qc_l2_name(":", NULL, NULL, 0, &headlen);
	size_t		mheadlen;
	char	   *mhead = qc_l2_name("#m:", NULL, NULL, 0, &mheadlen);

	initStringInfo(&pattern);
	qc_glob_escape(&pattern, head, headlen);
	if (db != NULL)
	{
		StringInfoData d;

		initStringInfo(&d);
		qc_append_db(&d, db);
		appendStringInfoChar(&d, ':');
		qc_glob_escape(&pattern, d.data, d.len);
		qc_glob_escape(&pattern, prefix, len);
	}
	appendStringInfoChar(&pattern, '*');
	do
	{
		QcRedisCmd	scan;
		redisReply *r[1];
		redisReply *keys;

		qc_cmd_init(&scan, 7);
		qc_cmd_str(&scan, "SCAN");
		qc_cmd_str(&scan, cursor);
		qc_cmd_str(&scan, "MATCH");
		qc_cmd_arg(&scan, pattern.data, pattern.len);
		qc_cmd_str(&scan, "COUNT");
		qc_cmd_str(&scan, "1000");
		if (!qc_redis_run(conn, 1, &scan, r))
			goto failed;
		if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != 2 ||
			r[0]->element[0]->type != REDIS_REPLY_STRING ||
			r[0]->element[1]->type != REDIS_REPLY_ARRAY)
		{
			qc_redis_free_replies(1, r);
			strlcpy(conn->errstr, "unexpected SCAN reply", sizeof(conn->errstr));
			goto failed;
		}
		strlcpy(cursor, r[0]->element[0]->str, sizeof(cursor));
		keys = r[0]->element[1];
		if (keys->elements > 0)
		{
			QcRedisCmd	del;
			redisReply *d[1];
			size_t		j;
			int			nm = 0;

			qc_cmd_init(&del, 1 + 2 * keys->elements);
			qc_cmd_str(&del, "UNLINK");
			for (j = 0; j < keys->elements; j++)
			{
				redisReply *kr = keys->element[j];
				StringInfoData m;

				if (kr->type != REDIS_REPLY_STRING || kr->len < headlen)
					continue;
				qc_cmd_arg(&del, kr->str, kr->len);
				initStringInfo(&m);
				appendBinaryStringInfo(&m, mhead, mheadlen);
				appendBinaryStringInfo(&m, kr->str + headlen, kr->len - headlen);
				qc_cmd_arg(&del, m.data, m.len);
				nm++;
			}
			if (nm > 0)
			{
				if (!qc_redis_run(conn, 1, &del, d))
				{
					qc_redis_free_replies(1, r);
					goto failed;
				}
				qc_redis_free_replies(1, d);
			}
		}
		qc_redis_free_replies(1, r);
	} while (strcmp(cursor, "0") != 0);

	if (publish)
	{
		QcRedisCmd	pub;
		StringInfoData msg;
		redisReply *r[1];

		qc_l2_publish_cmd(&pub, &msg, 'p', 0, db, prefix, len);
		if (!qc_redis_run(conn, 1, &pub, r))
			goto failed;
		qc_redis_free_replies(1, r);
	}
	return true;

failed:
	qc_l2_failed(conn, "Redis invalidation failed");
	return false;
}

/* Delete every key with this prefix from Redis and tell the other nodes. */
int64
qc_l2_invalidate_prefix(const char *prefix, uint32 len)
{
	QcRedisConn *conn;
	size_t		ulen;
	char	   *u = qc_utf8(prefix, len, &ulen);

	if ((conn = qc_l2_write_conn()) == NULL ||
		!qc_l2_delete_scan(conn, qc_l2_dbname(), u, ulen, true) ||
		!qc_l2_on_target())
		qc_l2_owe('p', qc_l2_dbname(), u, ulen);
	return 0;
}

/*
 * Clear this database in Redis: raise its stamp (which invalidates every
 * value at once, and tells the other nodes), then delete the values.
 */
void
qc_l2_clear(TimestampTz stamp)
{
	QcRedisConn *conn;

	if ((conn = qc_l2_write_conn()) == NULL ||
		!qc_l2_stamp_db(conn, qc_l2_dbname(), stamp))
	{
		qc_l2_owe('c', qc_l2_dbname(), NULL, 0);
		return;
	}
	if (!qc_l2_delete_scan(conn, qc_l2_dbname(), "", 0, false) ||
		!qc_l2_on_target())
		qc_l2_owe('c', qc_l2_dbname(), NULL, 0);
}

/*
 * The commit-time invalidations of the triggers: raise the stamps of the
 * tags (NUL-separated in tags, ntags of them, in the database's encoding),
 * or the database's stamp for the wildcard, and tell the other nodes.
 * More than QC_L2_MAX_COMMIT_TAGS tags raise the database's stamp instead.
 * Called from the COMMIT callback with interrupts held: never raises, and
 * is bounded by the timeout; what does not reach Redis is owed.
 */
static void qc_l2_commit_body(const char *db, const char *tags, size_t len,
							  int ntags, bool wildcard, TimestampTz stamp);

void
qc_l2_commit(const char *db, const char *tags, size_t len, int ntags,
			 bool wildcard, TimestampTz stamp)
{
	static MemoryContext cxt = NULL;
	MemoryContext old = CurrentMemoryContext;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "qcache redis commit",
									ALLOCSET_SMALL_SIZES);

	/*
	 * The transaction has committed: an error here would become a PANIC.
	 * Catch any (out of memory, out of file descriptors for the wait set),
	 * and owe the whole database, which the worker makes up for.
	 */
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		qc_l2_commit_body(db, tags, len, ntags, wildcard, stamp);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		qc_l2_interrupted();
		qc_l2_owe('c', db, NULL, 0);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(cxt);
}

static void
qc_l2_commit_body(const char *db, const char *tags, size_t len, int ntags,
				  bool wildcard, TimestampTz stamp)
{
	QcRedisConn *conn;
	StringInfoData u;
	const char *p;
	int			n = 0;

	if (!wildcard)
	{
		/* to UTF-8, without the node-internal tags Redis does not carry */
		initStringInfo(&u);
		for (p = tags; p < tags + len && n < ntags; p += strlen(p) + 1)
		{
			if (qc_tag_is_local(p) && !qc_tag_l2_stamped(p))
				continue;
			qc_append_utf8(&u, p, strlen(p));
			appendStringInfoChar(&u, '\0');
			n++;
		}
		if (n == 0)
			return;
		if (n > QC_L2_MAX_COMMIT_TAGS)
			wildcard = true;
	}
	conn = qc_l2_write_conn();
	if (wildcard)
	{
		if (conn == NULL || !qc_l2_stamp_db(conn, db, stamp) ||
			!qc_l2_on_target())
			qc_l2_owe('c', db, NULL, 0);
		else
			qc_l2_owe('P', db, NULL, 0);	/* the worker deletes the values */
		return;
	}
	if (conn == NULL || !qc_l2_stamp_tags(conn, db, u.data, u.len, n, stamp) ||
		!qc_l2_on_target())
	{
		for (p = u.data; p < u.data + u.len; p += strlen(p) + 1)
			qc_l2_owe('t', db, p, strlen(p));
	}
}

/*
 * Pay what this node owes (the worker, on its command connection): the
 * global debt raises the global stamp, tells every node to drop its L1
 * ('F') and deletes every value; a database's raises its stamp and
 * deletes its values; tags are stamped and their values deleted; keys
 * and prefixes deleted.  Every stamp is now, after every commit that
 * owed it.  False if any of it failed (the caller keeps the debt).
 */
bool
qc_l2_pay(QcRedisConn *conn, const QcL2Debt *items, int n, bool owes_all)
{
	TimestampTz stamp = GetCurrentTimestamp();
	int			i;

	if (owes_all)
	{
		size_t		keylen;
		char	   *key = qc_l2_name("#g", NULL, NULL, 0, &keylen);

		if (!qc_l2_stamp(conn, 1, &key, &keylen, NULL, NULL, "0", stamp, 'F',
						 NULL, NULL, 0) ||
			!qc_l2_delete_scan(conn, NULL, "", 0, false))
			return false;
		ereport(LOG,
				(errmsg("qcache: this node may have lost invalidations (Redis unreachable, restarted or replaced, or this node restarted after a crash, or its Redis settings changed); invalidated every value in Redis and told every node to drop its local cache")));
		return true;
	}
	for (i = 0; i < n; i++)
	{
		const QcL2Debt *d = &items[i];
		bool		ok = true;

		switch (d->kind)
		{
			case 'c':
				ok = qc_l2_stamp_db(conn, d->db, stamp) &&
					qc_l2_delete_scan(conn, d->db, "", 0, false);
				break;
			case 'P':
				ok = qc_l2_delete_scan(conn, d->db, "", 0, false);
				break;
			case 't':
				{
					char	   *t = palloc(d->len + 1);

					memcpy(t, d->str, d->len);
					t[d->len] = '\0';
					ok = qc_l2_stamp_tags(conn, d->db, t, d->len + 1, 1, stamp);
					break;
				}
			case 'p':
				ok = qc_l2_delete_scan(conn, d->db, d->str, d->len, true);
				break;
			case 'k':
				{
					QcRedisCmd	cmds[2];
					StringInfoData msg;
					redisReply *r[2];

					qc_l2_delkey_cmd(&cmds[0], d->db, d->str, d->len);
					qc_l2_publish_cmd(&cmds[1], &msg, 'k', 0, d->db, d->str, d->len);
					ok = qc_redis_script(conn, QC_SCRIPT_DELKEY, &cmds[0], &cmds[1], r);
					if (ok)
					{
						ok = r[0]->type != REDIS_REPLY_ERROR &&
							r[1]->type != REDIS_REPLY_ERROR;
						qc_redis_free_replies(2, r);
					}
					break;
				}
			default:
				break;
		}
		if (!ok)
			return false;
	}
	if (n > 0)
		ereport(LOG,
				(errmsg("qcache: made up for %d invalidations that had not reached Redis", n)));
	return true;
}
