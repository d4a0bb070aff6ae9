--
-- tags: invalidation by tag (exact counts), many tags, long keys and tags;
-- invalidation by key prefix; qcache_clear.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;

-- Tags are stored as given, in order.
SELECT qcache_set('tags:u1', '{"id": 1}', 0, ARRAY['users', 'user:1']),
       qcache_set('tags:u2', '{"id": 2}', 0, ARRAY['users', 'user:2']),
       qcache_set('tags:u3', '{"id": 3}', 0, ARRAY['users', 'user:3', 'admins']),
       qcache_set('tags:p1', '{"id": 1}', 0, ARRAY['products']),
       qcache_set('tags:none', '0', 0);
SELECT key, tags FROM qcache_entries WHERE key LIKE 'tags:%' ORDER BY key;

-- invalidate_tag removes exactly the entries carrying the tag and counts them.
SELECT qcache_invalidate_tag('user:2');
SELECT qcache_get('tags:u2') IS NULL AS u2_gone, qcache_get('tags:u1') AS u1,
       qcache_get('tags:u3') AS u3;
SELECT qcache_invalidate_tag('users');
SELECT qcache_invalidate_tag('users');
SELECT key FROM qcache_entries WHERE key LIKE 'tags:%' ORDER BY key;
-- Tags match exactly: no prefix, no case folding, no pattern.
SELECT qcache_invalidate_tag('product'), qcache_invalidate_tag('PRODUCTS'),
       qcache_invalidate_tag('product%'), qcache_invalidate_tag('');
SELECT qcache_get('tags:p1') AS p1;
SELECT qcache_invalidate_tag('products');
-- A tag nobody carries removes nothing; entries without tags stay.
SELECT qcache_invalidate_tag('no-such-tag');
SELECT qcache_get('tags:none') AS untagged;

-- A tag given twice on one entry still removes it once.
SELECT qcache_set('tags:dup', '1', 0, ARRAY['d', 'd', 'd']);
SELECT qcache_invalidate_tag('d');

-- The empty string and multibyte strings are tags like any other.
SELECT qcache_set('tags:empty', '1', 0, ARRAY['']),
       qcache_set('tags:mb', '1', 0, ARRAY['étiquette', '標籤']);
SELECT qcache_invalidate_tag('etiquette'), qcache_invalidate_tag('標籤'),
       qcache_invalidate_tag('');

-- Many entries share a tag: the count is exact.
SELECT count(*) FILTER (WHERE qcache_set('tags:many:' || g, to_jsonb(g), 0,
                                         ARRAY['many', 'mod3:' || g % 3]))
FROM generate_series(1, 1000) g;
SELECT qcache_invalidate_tag('mod3:0');
SELECT qcache_invalidate_tag('many');
SELECT count(*) FROM qcache_entries WHERE key LIKE 'tags:many:%';

-- 32 and 64 tags per entry work; the last tag is matched as well as the first.
SELECT qcache_set('tags:32', '32', 0,
                  (SELECT array_agg('tag-' || g) FROM generate_series(1, 32) g));
SELECT cardinality(tags), tags[1], tags[32] FROM qcache_entries WHERE key = 'tags:32';
SELECT qcache_invalidate_tag('tag-32');
SELECT count(*) FILTER (WHERE qcache_set('tags:64:' || n, to_jsonb(n), 0,
                        (SELECT array_agg('tag-' || g) FROM generate_series(1, 64) g)))
FROM generate_series(1, 64) n;
SELECT qcache_invalidate_tag('tag-64') AS by_last_tag;
SELECT qcache_invalidate_tag('tag-1') AS by_first_tag;
SELECT count(*) FROM qcache_entries WHERE key LIKE 'tags:64:%';
-- Each of the 64 tags matches its own entry.
SELECT count(*) FILTER (WHERE qcache_set('tags:64x:' || n, to_jsonb(n), 0,
                        (SELECT array_agg('x' || n || '-' || g) FROM generate_series(1, 64) g)))
FROM generate_series(1, 64) n;
SELECT sum(qcache_invalidate_tag('x' || n || '-' || n)) AS removed
FROM generate_series(1, 64) n;

-- Long tags (512 bytes, the limit) are compared in full.
SELECT qcache_set('tags:long', '1', 0, ARRAY[repeat('a', 511) || 'b']);
SELECT qcache_invalidate_tag(repeat('a', 511) || 'c'),
       qcache_invalidate_tag(repeat('a', 511)),
       qcache_invalidate_tag(repeat('a', 511) || 'b');

-- Long keys: 1 KB, and the 8 KB limit, work with tags and prefixes.
SELECT qcache_set(repeat('L', 1024), '"1k"', 0, ARRAY['long']),
       qcache_set(repeat('L', 8192), '"8k"', 0, ARRAY['long']),
       qcache_set(repeat('L', 1023) || 'M', '"1k other"', 0);
SELECT qcache_get(repeat('L', 1024)), qcache_get(repeat('L', 8192)),
       qcache_get(repeat('L', 1023) || 'M'), qcache_get(repeat('L', 1025)) AS other;
SELECT octet_length(key) FROM qcache_entries WHERE key LIKE 'LLL%' ORDER BY 1;
SELECT qcache_invalidate_tag('long');
SELECT qcache_invalidate_prefix(repeat('L', 1000));

-- Prefixes: every key that starts with the prefix, exactly.
SELECT qcache_set('users:1', '1', 0), qcache_set('users:2', '2', 0),
       qcache_set('users:10', '10', 0), qcache_set('users', '0', 0),
       qcache_set('userz:1', '1', 0), qcache_set('Users:1', '1', 0),
       qcache_set('a%b', '1', 0), qcache_set('axb', '1', 0),
       qcache_set('a_c', '1', 0), qcache_set('abc', '1', 0);
SELECT qcache_invalidate_prefix('users:1');
SELECT key FROM qcache_entries WHERE key ILIKE 'user%' ORDER BY key;
SELECT qcache_invalidate_prefix('users:');
SELECT key FROM qcache_entries WHERE key ILIKE 'user%' ORDER BY key;
-- A prefix longer than a key does not match it.
SELECT qcache_invalidate_prefix('users:xxxxxxxx');
-- The whole key is a prefix of itself.
SELECT qcache_invalidate_prefix('users');
-- LIKE wildcards have no special meaning.
SELECT qcache_invalidate_prefix('a%'), qcache_invalidate_prefix('a_');
SELECT key FROM qcache_entries WHERE key IN ('a%b', 'axb', 'a_c', 'abc') ORDER BY key;
SELECT qcache_invalidate_prefix('nothing-starts-like-this');

-- The empty prefix matches every key of this database.
SELECT count(*) AS n FROM qcache_entries \gset
SELECT qcache_invalidate_prefix('') = :n AS all_removed;
SELECT count(*) FROM qcache_entries;

-- qcache_clear counts what it removes, tagged or not.
SELECT qcache_set('clear:' || g, '1', 0, CASE WHEN g % 2 = 0 THEN ARRAY['even'] END)
FROM generate_series(1, 5) g;
SELECT qcache_clear();
SELECT qcache_clear();
SELECT qcache_invalidate_tag('even');
SELECT count(*) FROM qcache_entries;
