# The sweeper's work is in proportion to what is due, not to the cache's
# size (SPEC 10, issue 12).
#
# 200,000 entries that do not expire for an hour, and then N that expire in
# one second: the entries the sweeper looks at (its DEBUG1 line "qcache
# sweeper: visited V entries, freed F", one per tick that looked at
# anything) must be about N, not 200,000.  Then N entries that a commit
# makes stale (a watched table's tag): the sweeper frees them through the
# tag index QC_DEAD_SWEEP_INTERVAL_MS (10 s) later, again looking at about
# N entries.  A sweeper that walked the buckets would look at all 200,000
# in both cases.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $long = 200_000;
my $n = 2_000;

my $node = PostgreSQL::Test::Cluster->new('sweeper_due');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 128MB\n"
	  . "qcache.max_entries = 262144\n"
	  . "log_min_messages = debug1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');

sub entries
{
	return $node->safe_psql('postgres', 'SELECT entries FROM qcache_stats');
}

# Poll until the cache holds $want entries, for at most $secs seconds.
sub wait_entries
{
	my ($want, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if entries() == $want;
		usleep(200_000);
	}
	return 0;
}

# The sweeper's "visited" lines written to the server log after byte $from:
# (sum of visited, sum of freed, largest visited of one tick, lines).
sub visited_since
{
	my ($from) = @_;
	my $log = slurp_file($node->logfile, $from);
	my ($v, $f, $max, $lines) = (0, 0, 0, 0);
	while ($log =~ /qcache sweeper: visited (\d+) entries, freed (\d+)/g)
	{
		$v += $1;
		$f += $2;
		$max = $1 if $1 > $max;
		$lines++;
	}
	return ($v, $f, $max, $lines);
}

is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('long:' || i, to_jsonb(i), 3600, ARRAY['long']))
FROM generate_series(1, $long) i}),
	$long,
	"$long entries with a ttl of one hour");
is(entries(), $long, 'all of them are in the cache');

# ---------------------------------------------------------------------------
# 1. Expired entries: the wheel.
# ---------------------------------------------------------------------------
my $pos = -s $node->logfile;
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('short:' || i, to_jsonb(i), 1))
FROM generate_series(1, $n) i}),
	$n,
	"$n entries with a ttl of one second");
ok(wait_entries($long, 30), "the sweeper freed the $n expired entries");
usleep(1_500_000);    # a tick more, whose line must not count the others
my ($v, $f, $max, $lines) = visited_since($pos);
note("expired: $lines sweeper lines, visited $v, freed $f, at most $max in one tick");
cmp_ok($f, '>=', $n, "the sweeper lines count the $n freed entries");
cmp_ok($v, '>=', $n, 'and the entries it looked at include them');
cmp_ok($v, '<=', 2 * $n,
	"it looked at no more than 2 x $n entries, not the $long others");
is(entries(), $long, 'the long-lived entries are all still there');

# ---------------------------------------------------------------------------
# 2. Entries made stale by a commit: the stale-tag queue and the tag index.
# ---------------------------------------------------------------------------
$node->safe_psql(
	'postgres', q{
CREATE TABLE due (id int PRIMARY KEY);
SELECT qcache_watch('due');});
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('stale:' || i, to_jsonb(i), 0,
                                         ARRAY['table:public.due']))
FROM generate_series(1, $n) i}),
	$n,
	"$n entries carrying a watched table's tag");
$pos = -s $node->logfile;
$node->safe_psql('postgres', 'INSERT INTO due VALUES (1)');
is($node->safe_psql('postgres', "SELECT qcache_get('stale:1') IS NULL"),
	't', 'the commit made them stale at once');
is(entries(), $long + $n, 'they stay in the cache until the sweeper comes');
ok(wait_entries($long, 40), "the sweeper freed the $n stale entries");
usleep(1_500_000);
($v, $f, $max, $lines) = visited_since($pos);
note("stale: $lines sweeper lines, visited $v, freed $f, at most $max in one tick");
cmp_ok($f, '>=', $n, "the sweeper lines count the $n freed entries");
cmp_ok($v, '<=', 2 * $n + 10,
	"it looked at no more than about 2 x $n entries, not the $long others");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM generate_series(1, 100) i WHERE qcache_get('long:' || i) = to_jsonb(i)"),
	'100',
	'the long-lived entries are intact');

# ---------------------------------------------------------------------------
# 2b. Entries an explicit invalidation killed: qcache_invalidate_tag takes
# them out of the cache at once (entries, bytes_used, gets), and the sweeper
# frees them at its next tick through the tag's chain, looking at about N
# entries, not the others.
# ---------------------------------------------------------------------------
my $bytes_before = $node->safe_psql('postgres', 'SELECT bytes_used FROM qcache_stats');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('kill:' || i, to_jsonb(i), 0, ARRAY['kill']))
FROM generate_series(1, $n) i}),
	$n,
	"$n entries carrying the tag 'kill'");
$pos = -s $node->logfile;
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('kill')}),
	$n, "qcache_invalidate_tag counts the $n");
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('kill')}),
	'0', 'and a second call finds none');
is( $node->safe_psql('postgres',
		qq{SELECT entries, bytes_used FROM qcache_stats}),
	"$long|$bytes_before",
	'the gauges dropped at once');
is( $node->safe_psql('postgres',
		qq{SELECT count(*) FROM generate_series(1, $n) i WHERE qcache_get('kill:' || i) IS NOT NULL}),
	'0', 'no get serves a killed entry');
my $killed = 0;
my $deadline = time() + 30;
while (time() < $deadline)
{
	my $log = slurp_file($node->logfile, $pos);
	$killed = 0;
	$killed += $1 while $log =~ /qcache sweeper: visited \d+ entries, freed \d+ and (\d+) killed/g;
	last if $killed >= $n;
	usleep(200_000);
}
is($killed, $n, "the sweeper freed the $n killed entries");
($v, $f, $max, $lines) = visited_since($pos);
note("killed: $lines sweeper lines, visited $v, at most $max in one tick");
cmp_ok($v, '<=', 2 * $n + 10,
	"it looked at no more than about 2 x $n entries, not the $long others");

# ---------------------------------------------------------------------------
# 3. Values whose end lives in a second chunk (store.c, qc_split_head: in an
#    area of 32 MB or more, when the size classes would waste 16 bytes):
#    they read back intact, take less than their size class, and give all
#    their bytes back.
# ---------------------------------------------------------------------------
my $before = $node->safe_psql('postgres', 'SELECT bytes_used FROM qcache_stats');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FILTER (WHERE qcache_set('split:' || n, to_jsonb(repeat(chr(97 + n % 26), n)), 0))
FROM generate_series(900, 40000, 97) n}),
	'404',
	'404 values of 900 bytes to 40 kB stored');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM generate_series(900, 40000, 97) n
WHERE qcache_get('split:' || n) = to_jsonb(repeat(chr(97 + n % 26), n))}),
	'404',
	'every one reads back intact');
# a 1,000-byte string with its key and header: 1,280 bytes unsplit
my $size1k = $node->safe_psql('postgres', q{
SELECT qcache_set('split:1k', to_jsonb(repeat('x', 1000)), 0);
SELECT size FROM qcache_entries WHERE key = 'split:1k'});
cmp_ok($size1k, '<', 1150,
	"a 1 kB value takes $size1k bytes, not the 1,280-byte size class");
is($node->safe_psql('postgres', "SELECT qcache_invalidate_prefix('split:')"),
	'405', 'all removed');
is($node->safe_psql('postgres', 'SELECT bytes_used FROM qcache_stats'),
	$before, 'bytes_used is back where it was');

$node->stop;
done_testing();
