--
-- The tag and namespace index (issue 12): exact counts through the index,
-- tags repeated in an entry, a tag like a node-internal one, prefixes with
-- and without a namespace (the key part up to its first ':').
--
SELECT qcache_clear() >= 0 AS cleared;
SELECT qcache_set('ti:a', '1', 0, ARRAY['x', 'y']) AS a,
       qcache_set('ti:b', '2', 0, ARRAY['x', 'x']) AS b,
       qcache_set('ti:c:d', '3', 0, ARRAY['y']) AS c,
       qcache_set('tiz', '4', 0, ARRAY['rel:1']) AS z,
       qcache_set('other:1', '5', 0) AS o;
-- two entries carry x, one of them twice: 2
SELECT qcache_invalidate_tag('x');
SELECT qcache_invalidate_tag('x');
SELECT qcache_get('ti:a') IS NULL AS a_gone, qcache_get('ti:b') IS NULL AS b_gone,
       qcache_get('ti:c:d') AS d;
-- a tag no entry carries
SELECT qcache_invalidate_tag('no such tag');
-- a prefix longer than its namespace 'ti:'
SELECT qcache_invalidate_prefix('ti:c:x');
SELECT qcache_invalidate_prefix('ti:c:');
-- a prefix without ':' (every namespace starting with it, and keys without one)
SELECT qcache_set('tix:1', '6', 0) AS tix;
SELECT qcache_invalidate_prefix('ti');
-- the node-internal tag went with tiz
SELECT qcache_invalidate_tag('rel:1');
SELECT qcache_set('tiy', '7', 0, ARRAY['rel:1']) AS tiy;
SELECT qcache_invalidate_tag('rel:1');
-- a namespace nothing is in
SELECT qcache_invalidate_prefix('nothing:');
-- the empty prefix: everything left
SELECT qcache_invalidate_prefix('');
SELECT count(*) FROM qcache_entries;
SELECT qcache_clear();
