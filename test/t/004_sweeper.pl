# The "qcache sweeper" background worker reclaims expired entries without
# any read of them (SPEC 3: "their memory is reclaimed without waiting for a
# read of the same key").
#
# Entries with ttl 1 are set and never read; a few seconds later the entry
# count must be back to the non-expiring ones, bytes_used back to its value
# before the expiring sets, and evictions_expired must count them.  Then the
# reclaimed memory must really be reusable: a cache almost filled with
# expiring entries takes as much again of non-expiring ones without
# evicting anything for memory.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('sweeper');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 8MB\n"
	  . "qcache.max_entries = 16384\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');

# One row of qcache_stats as a hash.
sub stats
{
	my $row = $node->safe_psql('postgres',
		'SELECT entries, bytes_used, bytes_limit, evictions_expired, '
		  . 'evictions_memory, hits, misses, sets, sets_rejected FROM qcache_stats');
	my @v = split /\|/, $row;
	my %s;
	@s{qw(entries bytes_used bytes_limit evictions_expired evictions_memory
		  hits misses sets sets_rejected)} = @v;
	return \%s;
}

# Poll a query until it returns 't', for at most $secs seconds.
sub wait_for
{
	my ($sql, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}

# Pids of the postmaster's children whose title names the sweeper (Linux
# /proc): shows whether the worker runs, whatever pg_stat_activity says.
sub sweeper_pids
{
	my $pm = $node->{_pid};
	my @pids;
	opendir(my $dh, '/proc') or return ();
	foreach my $pid (grep { /^\d+$/ } readdir($dh))
	{
		open(my $st, '<', "/proc/$pid/stat") or next;
		my $stat = <$st>;
		close($st);
		next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
		next unless $1 == $pm;
		open(my $cl, '<', "/proc/$pid/cmdline") or next;
		my $cmd = <$cl> // '';
		close($cl);
		push @pids, $pid if $cmd =~ /qcache sweeper/;
	}
	closedir($dh);
	return @pids;
}

# The sweeper is running, under its own name.
my $deadline = time() + 20;
usleep(100_000) while (!sweeper_pids() && time() < $deadline);
is(scalar(sweeper_pids()), 1,
	'one "qcache sweeper" process is a child of the postmaster');
ok( wait_for(
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'qcache sweeper'",
		10),
	'the sweeper is visible in pg_stat_activity as backend_type "qcache sweeper"');

# ---------------------------------------------------------------------------
# 1. Expired entries go away unread.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'SELECT qcache_reset_stats()');
my $s0 = stats();
is($s0->{entries}, 0, 'cache starts empty');

# Ten entries that do not expire.
$node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE qcache_set('keep:' || i,
		jsonb_build_object('i', i, 'pad', repeat('k', 300)), 0, ARRAY['keep']))
FROM generate_series(1, 10) i});
my $s1 = stats();
is($s1->{entries}, 10, '10 non-expiring entries');
cmp_ok($s1->{bytes_used}, '>', $s0->{bytes_used}, 'bytes_used grew');

# 2000 entries that expire in one second, never read.
my $n = 2000;
my $t0 = time();
is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('exp:' || i,
		jsonb_build_object('i', i, 'pad', repeat('e', 200 + i % 500)), 1, ARRAY['exp']))
FROM generate_series(1, $n) i}),
	$n, "$n expiring entries stored");
my $s2 = stats();
cmp_ok($s2->{entries}, '>=', 10, 'entries counted after the expiring sets');
cmp_ok($s2->{bytes_used}, '>', $s1->{bytes_used},
	'bytes_used grew with the expiring entries');

# Wait for the sweeper: no read of the exp: keys, only qcache_stats.
my $swept = 0;
while (time() - $t0 < 60)
{
	my $s = stats();
	if ($s->{entries} == 10)
	{
		$swept = 1;
		last;
	}
	usleep(200_000);
}
my $elapsed = time() - $t0;
ok($swept, 'entries fell back to the 10 non-expiring ones without a read');
note(sprintf('expired entries were swept %.1f s after the sets', $elapsed));
cmp_ok($elapsed, '>=', 0.9, 'not before they expired');

my $s3 = stats();
is($s3->{entries}, 10, 'qcache_stats.entries = 10');
is($s3->{bytes_used}, $s1->{bytes_used},
	'bytes_used is back to its value before the expiring sets');
is($s3->{evictions_expired}, $n, "evictions_expired counts the $n swept entries");
is($s3->{evictions_memory}, 0, 'nothing was evicted for memory');
is($s3->{hits} + $s3->{misses}, 0, 'no lookup happened (the sweeper did it)');
is( $node->safe_psql('postgres',
		"SELECT count(*), count(*) FILTER (WHERE key LIKE 'keep:%') FROM qcache_entries"),
	'10|10', 'qcache_entries lists only the non-expiring entries');
is( $node->safe_psql('postgres', q{
SELECT count(*) FROM generate_series(1, 10) i
WHERE qcache_get('keep:' || i) = jsonb_build_object('i', i, 'pad', repeat('k', 300))}),
	'10', 'the non-expiring entries are intact');
is($node->safe_psql('postgres', "SELECT qcache_invalidate_tag('exp')"),
	'0', 'no entry with the expired tag is left');

# ---------------------------------------------------------------------------
# 2. The memory of swept entries is reusable.
#
# Fill about 5 MB of the 8 MB cache with entries that expire, let the
# sweeper reclaim them, then write about 5 MB of non-expiring entries of the
# same sizes: with the memory given back they all fit, and nothing is
# evicted for memory.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'SELECT qcache_clear(), qcache_reset_stats()');
my $base = stats();
is($base->{entries}, 0, 'cleared');

my $fill = 5000;	# ~1 kB each: ~5 MB
is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('a:' || i, to_jsonb(repeat('a', 1000)), 1))
FROM generate_series(1, $fill) i}),
	$fill, 'round 1: ~5 MB of expiring entries stored');
is(stats()->{evictions_memory}, 0, 'round 1 needed no eviction');

ok(wait_for('SELECT entries = 0 FROM qcache_stats', 30), 'round 1 swept');
is(stats()->{bytes_used}, $base->{bytes_used}, 'bytes_used back to empty');

is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('b:' || i, to_jsonb(repeat('b', 1000)), 0))
FROM generate_series(1, $fill) i}),
	$fill, 'round 2: ~5 MB of non-expiring entries stored');
my $s4 = stats();
is($s4->{evictions_memory}, 0,
	'round 2 reused the swept memory: no eviction for memory');
is($s4->{entries}, $fill, "all $fill round-2 entries are there");
cmp_ok($s4->{bytes_used}, '<=', $s4->{bytes_limit}, 'bytes_used <= bytes_limit');

# The sweeper survives and keeps working after a SIGHUP (it reloads its
# configuration in its loop).
$node->reload;
$node->safe_psql('postgres', q{SELECT qcache_set('late', '1'::jsonb, 1)});
ok( wait_for(
		q{SELECT count(*) = 0 FROM qcache_entries WHERE key = 'late'}, 30),
	'an expiring entry set after a reload is swept too');
is(scalar(sweeper_pids()), 1, 'still one sweeper process');

# qcache_entries says why an entry is not served (issue 14).  With the
# sweeper stopped (SIGSTOP), an expired entry and one a committed write
# made stale stay listed, as 'expired' and 'stale', not servable; once the
# sweeper runs again (SIGCONT) it frees both.
our $stopped_sweeper;
END
{
	# never leave the sweeper stopped, also when a test died
	kill 'CONT', $stopped_sweeper if $stopped_sweeper;
}
my ($sweeper) = sweeper_pids();
$stopped_sweeper = $sweeper;
kill 'STOP', $sweeper;
$node->safe_psql(
	'postgres', q{
CREATE TABLE st (id int PRIMARY KEY);
SELECT qcache_watch('st');
SELECT qcache_set('st:old', '1'::jsonb, 0, ARRAY['table:public.st']);
SELECT qcache_set('st:short', '1'::jsonb, 1);
SELECT qcache_set('st:live', '1'::jsonb, 0);
INSERT INTO st VALUES (1);});
usleep(1_500_000);
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(key || ' ' || kind || ' ' || state || ' ' || servable, ', ' ORDER BY key)
		  FROM qcache_entries WHERE key LIKE 'st:%'}),
	'st:live value live true, st:old value stale false, st:short value expired false',
	'qcache_entries: live, stale by a commit, expired; only the live one servable');
is( $node->safe_psql(
		'postgres',
		q{SELECT qcache_get('st:old') IS NULL, qcache_get('st:short') IS NULL, qcache_get('st:live')}),
	't|t|1',
	'and qcache_get agrees');
kill 'CONT', $sweeper;
$stopped_sweeper = undef;
ok( wait_for(
		q{SELECT count(*) = 1 FROM qcache_entries WHERE key LIKE 'st:%'}, 30),
	'the sweeper frees the expired and the stale entry once it runs');

$node->stop;
done_testing();
