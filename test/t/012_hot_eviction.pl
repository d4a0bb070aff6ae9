# Bounded eviction in a full, hot cache (issue 12): when every entry was
# read since the eviction hand last passed, a set still makes room in one
# bounded round (the oldest entry the round looked at goes).  Exact values:
# every set is stored, each evicts exactly one entry, the count stays at
# max_entries, and each new key is readable right after its set.  Then the
# rounds prefer entries nobody read: a key read after each of 2000 sets of
# never-read keys survives them.  Last, the index followed every eviction.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hot_eviction');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 16MB\n"
	  . "qcache.max_entries = 1024\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');

is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FILTER (WHERE qcache_set('k:' || i, to_jsonb(i), 0, ARRAY['t' || (i % 7), 'all']))
		  FROM generate_series(1, 1024) i}),
	1024,
	'1024 sets fill the cache');
is($node->safe_psql('postgres', 'SELECT entries, evictions_memory FROM qcache_stats'),
	'1024|0', 'full, nothing evicted');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM generate_series(1, 1024) i WHERE qcache_get('k:' || i) IS NOT NULL}),
	1024,
	'every entry read: the cache is hot');

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FILTER (WHERE qcache_set('h:' || i, to_jsonb(i), 0, ARRAY['t' || (i % 7), 'all'])
						  AND qcache_get('h:' || i) = to_jsonb(i))
FROM generate_series(1, 300) i}),
	300,
	'300 sets into the full hot cache: each stored and readable at once');
is($node->safe_psql('postgres', 'SELECT entries, evictions_memory FROM qcache_stats'),
	'1024|300', 'each set evicted exactly one entry; the count stays at max_entries');

# A key read after every set survives the sets of keys nobody reads.
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FILTER (WHERE qcache_set('w:' || i, to_jsonb(i), 0)
						  AND qcache_get('h:300') IS NOT NULL)
FROM generate_series(1, 2000) i}),
	2000,
	'2000 more sets, and the key read after each one is always there');
is($node->safe_psql('postgres', q{SELECT qcache_get('h:300')}), '300',
	'the hot key survived');

# The index followed every eviction: the tags count exactly what is left.
my $left = $node->safe_psql('postgres',
	q{SELECT count(*) FROM qcache_entries WHERE 'all' = ANY (tags)});
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('all')}),
	$left, "invalidate_tag(all) removes the $left tagged entries left");
is($node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	1024 - $left, 'the untagged entries stay');

# Killed entries make room before live ones go.  A full cache with 16 entries
# tagged 'k': invalidating 'k' kills them (they wait for the sweeper), and
# the 16 sets that follow in the same statement, well within the sweeper's
# second, must take their room (a setter frees the queued killed chain)
# rather than evict any of the live entries.
$node->safe_psql('postgres', q{SELECT qcache_clear()});
$node->safe_psql('postgres', q{SELECT qcache_reset_stats()});
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FILTER (WHERE qcache_set('f:' || i, to_jsonb(i), 0,
		  CASE WHEN i <= 16 THEN ARRAY['k'] ELSE ARRAY['f'] END))
		  FROM generate_series(1, 1024) i}),
	1024,
	'full again, 16 entries tagged k');
is( $node->safe_psql(
		'postgres', q{
SELECT qcache_invalidate_tag('k'),
       (SELECT count(*) FILTER (WHERE qcache_set('n:' || i, to_jsonb(i), 0))
        FROM generate_series(1, 16) i)}),
	'16|16',
	'16 killed, then 16 sets stored');
is( $node->safe_psql(
		'postgres',
		q{SELECT entries, evictions_memory FROM qcache_stats}),
	'1024|0',
	'no live entry was evicted for them');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM generate_series(17, 1024) i WHERE qcache_get('f:' || i) = to_jsonb(i)}),
	1008,
	'the 1008 live entries are all there');

$node->stop;
done_testing();
