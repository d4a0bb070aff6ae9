# Capacity that does not shrink (issue 12): the number of 1 kB entries a
# small cache holds must not depend on which value sizes it held before.
# Fill a 4 MB cache with 1 kB values and count what fits; then write values
# of 30 sizes from 100 B to 200 kB, clear, check that the gauges are back to
# empty, fill again with 1 kB values and count: the same within 2%.  Before
# the DSA area's empty superblocks were trimmed (store.c, qc_trim_if_due),
# the second count was about half the first.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('capacity');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 4MB\n"
	  . "qcache.max_entries = 16384\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');

my ($empty_bytes, $limit) = split /\|/,
  $node->safe_psql('postgres', 'SELECT bytes_used, bytes_limit FROM qcache_stats');

# Set 1 kB values (a jsonb string of 1000 bytes) under fresh keys, twice as
# many as can fit, and return how many are cached at the end.
sub fill
{
	my $tag = shift;
	$node->safe_psql('postgres',
		qq{SELECT qcache_set('$tag' || i, to_jsonb(repeat('x', 1000)), 0)
		   FROM generate_series(1, 8000) i});
	return $node->safe_psql('postgres', 'SELECT entries FROM qcache_stats');
}

my $first = fill('a');
cmp_ok($first, '>', 2000, "the first fill holds $first entries of 1 kB");
my $bytes_full = $node->safe_psql('postgres', 'SELECT bytes_used FROM qcache_stats');
note("first fill: $first entries, bytes_used $bytes_full of $limit");
is($node->safe_psql('postgres', 'SELECT qcache_clear()'), $first,
	'clear removes them all');

# 30 sizes, geometric from 100 B to 200 kB, 8 values of each.
my @sizes = map { int(100 * (2000**($_ / 29))) } 0 .. 29;
is(scalar(@sizes), 30, '30 sizes');
is($sizes[0], 100, 'from 100 B');
cmp_ok(abs($sizes[-1] - 200_000), '<=', 1, 'to 200 kB');
for my $s (@sizes)
{
	$node->safe_psql('postgres',
		qq{SELECT qcache_set('m${s}_' || j, to_jsonb(repeat('y', $s)), 0)
		   FROM generate_series(1, 8) j});
}
cmp_ok($node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	'>', 0, 'mixed sizes were cached');
$node->safe_psql('postgres', 'SELECT qcache_clear()');
is($node->safe_psql('postgres', 'SELECT entries, bytes_used FROM qcache_stats'),
	"0|$empty_bytes", 'after the clear the gauges are back to empty');

my $second = fill('b');
note("second fill: $second entries");
cmp_ok(abs($second - $first), '<=', 0.02 * $first,
	"the second fill holds the same within 2% ($second against $first)");
my $bytes_refill = $node->safe_psql('postgres', 'SELECT bytes_used FROM qcache_stats');
cmp_ok($bytes_refill, '>=', 0.9 * $limit,
	"the refilled cache uses at least 90% of bytes_limit ($bytes_refill of $limit)");

$node->stop;
done_testing();
