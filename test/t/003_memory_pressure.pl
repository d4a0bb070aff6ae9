# Bounded memory (SPEC 3 and 4): the cache never uses more than
# qcache.memory, never fails a set because it is full (it evicts), and a
# value that cannot be stored is refused with false, counted, and no error.
#
# 1. An 8 MB cache takes ten times its size in values of 100 B .. 64 KB
#    (log-uniform, deterministic), in a few statements that also sample
#    qcache_stats after every set: no error, nearly every set returns true,
#    bytes_used <= bytes_limit at every sample, evictions_memory > 0,
#    entries > 0, the most recently set keys are present, and keys read all
#    the time (hot keys) survive, as a least-recently-used policy keeps
#    them.
# 2. qcache.max_entries = 1024 and 5000 small sets: entries stays <= 1024,
#    the evictions are counted, every set returns true.
# 3. A value larger than the whole cache returns false, counts in
#    sets_rejected, raises no error, drops the key's older value, and does
#    not flush the rest of the cache for nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $MB = 1024 * 1024;

my $node = PostgreSQL::Test::Cluster->new('pressure');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 8MB\n"
	  . "qcache.max_entries = 65536\n");
$node->start;

# Helpers: a deterministic size per key, log-uniform in 100 .. 65536 bytes;
# the value of key i; and a sample of the stats, taken per row.
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE FUNCTION t_size(i int) RETURNS int LANGUAGE sql IMMUTABLE AS
$$ SELECT (100 * power(655.36, (hashint4(i) & 2147483647)::float8 / 2147483648.0))::int $$;
CREATE FUNCTION t_val(i int) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_build_object('i', i, 's', repeat(chr(97 + i % 26), t_size(i))) $$;
CREATE FUNCTION t_over() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT bytes_used - bytes_limit FROM qcache_stats() $$;
CREATE FUNCTION t_entries() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT entries FROM qcache_stats() $$;
CREATE TABLE samples (at text, entries bigint, bytes_used bigint, bytes_limit bigint);
});

sub stats
{
	my @cols = qw(entries bytes_used bytes_limit sets sets_rejected hits misses
	  evictions_memory evictions_expired sets_rejected_too_large
	  sets_rejected_no_memory);
	my $row = $node->safe_psql('postgres',
		'SELECT ' . join(', ', @cols) . ' FROM qcache_stats');
	my %s;
	@s{@cols} = split /\|/, $row;
	return \%s;
}

sub sample
{
	my ($at) = @_;
	$node->safe_psql('postgres',
		"INSERT INTO samples SELECT '$at', entries, bytes_used, bytes_limit FROM qcache_stats");
}

# ---------------------------------------------------------------------------
# 1. Ten times qcache.memory through an 8 MB cache.
# ---------------------------------------------------------------------------
is( $node->safe_psql('postgres',
		"SELECT size FROM pg_shmem_allocations WHERE name = 'qcache'"),
	8 * $MB,
	'the shared memory qcache takes is exactly qcache.memory');
my $s0 = stats();
is($s0->{bytes_limit}, 8 * $MB, 'bytes_limit = qcache.memory');
sample('start');

# How many keys make ten times the cache.
my $nkeys = $node->safe_psql(
	'postgres', qq{
SELECT min(n) FROM (
	SELECT i AS n, sum(t_size(i)) OVER (ORDER BY i) AS total
	FROM generate_series(1, 200000) i) x
WHERE total >= 10 * 8 * $MB});
note("$nkeys values make 80 MB");
cmp_ok($nkeys, '>', 1000, 'the sizes vary (many values for 80 MB)');

# Ten hot keys, read by every row of the writes below.
$node->safe_psql('postgres', q{
SELECT qcache_set('hot:' || h, jsonb_build_object('hot', h), 0)
FROM generate_series(0, 9) h});

my ($accepted, $rejected, $max_over, $hot_misses) = (0, 0, undef, 0);
my $nstmt = 4;
my $per = int(($nkeys + $nstmt - 1) / $nstmt);
for my $k (0 .. $nstmt - 1)
{
	my $from = $k * $per + 1;
	my $to = ($k + 1) * $per;
	$to = $nkeys if $to > $nkeys;
	my ($rc, $out, $err) = $node->psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok),
	   max(over), count(*) FILTER (WHERE NOT hot)
FROM (SELECT qcache_set('p:' || i, t_val(i), 0) AS ok,
			 t_over() AS over,
			 qcache_get('hot:' || (i % 10)) IS NOT NULL AS hot
	  FROM generate_series($from, $to) i) s});
	is($rc, 0, "statement $k ($from .. $to): no error");
	is($err, '', "statement $k: nothing on stderr");
	my ($a, $r, $o, $hm) = split /\|/, $out;
	$accepted += $a // 0;
	$rejected += $r // 0;
	$hot_misses += $hm // 0;
	$max_over = $o if defined $o && (!defined $max_over || $o > $max_over);
	sample("after statement $k");
}
note("sets under pressure: $accepted accepted, $rejected rejected of $nkeys");
note("hot-key lookups that missed: $hot_misses of $nkeys");
is($accepted + $rejected, $nkeys, 'every set returned true or false');
cmp_ok($accepted, '>=', 0.99 * $nkeys,
	'at least 99% of the sets were stored (eviction makes room)');
cmp_ok($max_over, '<=', 0,
	'bytes_used <= bytes_limit after every single set');

my $s1 = stats();
note("after 80 MB: entries $s1->{entries}, bytes_used $s1->{bytes_used}, "
	  . "evictions_memory $s1->{evictions_memory}, "
	  . "sets_rejected $s1->{sets_rejected}");
is($s1->{sets_rejected}, $rejected, 'sets_rejected counts the false returns');
is($s1->{sets_rejected_no_memory}, $rejected,
	'each of them under sets_rejected_no_memory (issue 14)');
cmp_ok($s1->{evictions_memory}, '>', 0, 'evictions_memory > 0');
cmp_ok($s1->{entries}, '>', 0, 'entries > 0');
cmp_ok($s1->{bytes_used}, '<=', $s1->{bytes_limit}, 'bytes_used <= bytes_limit');
cmp_ok($s1->{bytes_used}, '>=', 0.5 * $s1->{bytes_limit},
	'the cache is still well used after the pressure (over half full)');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM samples WHERE bytes_used > bytes_limit'),
	'0', 'bytes_used <= bytes_limit at every sample between statements');
is($node->safe_psql('postgres', 'SELECT count(*) FROM qcache_entries'),
	$s1->{entries}, 'qcache_entries agrees with qcache_stats.entries');
is( $node->safe_psql('postgres',
		'SELECT sum(size) <= (SELECT bytes_used FROM qcache_stats) FROM qcache_entries'),
	't', 'the entries listed fit in bytes_used');

# The most recently set keys are there, and hold the right values.
my $recent = 50;
my $present = $node->safe_psql(
	'postgres', qq{
SELECT count(*) FROM generate_series($nkeys - $recent + 1, $nkeys) i
WHERE qcache_get('p:' || i) = t_val(i)});
note("of the last $recent keys set, $present are present");
cmp_ok($present, '>=', 0.9 * $recent,
	"at least 90% of the last $recent keys set are present with their values");
my $old = $node->safe_psql(
	'postgres', q{
SELECT count(*) FROM generate_series(1, 1000) i WHERE qcache_get('p:' || i) IS NOT NULL});
note("of the first 1000 keys set, $old are present");
cmp_ok($old, '<', 100, 'the oldest keys were evicted');

# Keys read all along are the most recently used ones: LRU keeps them.
my $hot = $node->safe_psql('postgres',
	"SELECT count(*) FROM generate_series(0, 9) h WHERE qcache_get('hot:' || h) IS NOT NULL");
note("hot keys present after the pressure: $hot of 10");
# Approximate LRU is allowed (SPEC 3): tolerate one casualty, not more.
cmp_ok($hot, '>=', 9,
	'the keys read on every set survive (least recently used is evicted first)');
cmp_ok($hot_misses, '<=', 0.01 * $nkeys,
	'at most 1% of the reads of hot keys missed');

# The cache still works normally after the pressure.
is( $node->safe_psql('postgres', q{
SELECT qcache_set('after', '{"ok": true}'::jsonb, 0), qcache_get('after')}),
	't|{"ok": true}', 'set and get work after the pressure');
my $cleared = $node->safe_psql('postgres', 'SELECT qcache_clear()');
my $s2 = stats();
is($s2->{entries}, 0, "clear removed everything ($cleared entries)");
is($s2->{bytes_used}, $s0->{bytes_used},
	'bytes_used is back to the empty value: the accounting did not drift');

# ---------------------------------------------------------------------------
# 3. A value larger than the whole cache.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', q{
SELECT qcache_reset_stats();
SELECT count(*) FILTER (WHERE qcache_set('small:' || i, jsonb_build_object('i', i), 0))
FROM generate_series(1, 100) i;
SELECT qcache_set('big', '"small for now"'::jsonb, 0);
});
is(stats()->{entries}, 101, '101 small entries');

# Over qcache.max_entry_size (1MB by default): refused before any eviction.
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT qcache_set('big', to_jsonb(repeat('x', 2 * 1024 * 1024)), 0)});
is($rc, 0, 'a 2 MB value: no error');
is($out, 'f', 'a 2 MB value over qcache.max_entry_size: qcache_set returns false');
is($err, '', 'and nothing on stderr');
my $s3 = stats();
is($s3->{sets_rejected}, 1, 'counted in sets_rejected');
is($s3->{sets_rejected_too_large}, 1, 'under sets_rejected_too_large (issue 14)');
is($node->safe_psql('postgres', q{SELECT qcache_get('big')}),
	'', 'the older value of the key is not served after a failed set');
is($s3->{entries}, 100, 'the other 100 entries are untouched');

# Larger than the whole cache, with max_entry_size raised past it.
($rc, $out, $err) = $node->psql(
	'postgres', q{
SET qcache.max_entry_size = '64MB';
SELECT qcache_set('huge', to_jsonb(repeat('y', 10 * 1024 * 1024)), 0);
SELECT 'after';});
is($rc, 0, 'a 10 MB value in an 8 MB cache: no error');
is($out, "f\nafter", 'qcache_set returns false, the session goes on');
is($err, '', 'nothing on stderr');
my $s4 = stats();
is($s4->{sets_rejected}, 2, 'counted in sets_rejected');
is("$s4->{sets_rejected_too_large}|$s4->{sets_rejected_no_memory}", '1|1',
	'under sets_rejected_no_memory: it cannot fit (issue 14)');
is($node->safe_psql('postgres', q{SELECT qcache_get('huge') IS NULL}),
	't', 'the huge value is not cached');
cmp_ok($s4->{bytes_used}, '<=', $s4->{bytes_limit}, 'bytes_used <= bytes_limit');

# It could never fit: evicting the whole cache for it helps nobody.
note("after the 10 MB set: entries $s4->{entries}, "
	  . "evictions_memory $s4->{evictions_memory}");
is($s4->{entries}, 100,
	'a set that can never fit does not flush the cache (the 100 entries stay)');
is($s4->{evictions_memory}, 0, 'no entry was evicted for it');

# The transaction that made the failed set is unharmed.
is( $node->safe_psql(
		'postgres', q{
BEGIN;
SET LOCAL qcache.max_entry_size = '64MB';
CREATE TABLE t_keep (x int);
SELECT qcache_set('huge2', to_jsonb(repeat('z', 10 * 1024 * 1024)), 0);
INSERT INTO t_keep VALUES (1);
COMMIT;
SELECT count(*) FROM t_keep;}),
	"f\n1", 'a transaction with a refused set commits its work');

$node->stop;

# ---------------------------------------------------------------------------
# 2. qcache.max_entries = 1024 and 5000 small sets.
# ---------------------------------------------------------------------------
my $ent = PostgreSQL::Test::Cluster->new('max_entries');
$ent->init;
$ent->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 16MB\n"
	  . "qcache.max_entries = 1024\n");
$ent->start;
$ent->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE FUNCTION t_entries() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT entries FROM qcache_stats() $$;
});

is( $ent->safe_psql(
		'postgres', q{
SELECT count(*) FILTER (WHERE ok), max(n)
FROM (SELECT qcache_set('e:' || i, jsonb_build_object('i', i), 0) AS ok,
			 t_entries() AS n
	  FROM generate_series(1, 5000) i) s}),
	'5000|1024',
	'5000 sets all return true; entries peaks at exactly 1024');
my $row = $ent->safe_psql('postgres',
	'SELECT entries, evictions_memory, sets, sets_rejected FROM qcache_stats');
my ($entries, $evictions, $sets, $srej) = split /\|/, $row;
note("max_entries: entries $entries, evictions_memory $evictions, sets $sets");
cmp_ok($entries, '<=', 1024, 'entries <= qcache.max_entries');
cmp_ok($entries, '>=', 900, 'and the cache stays nearly full');
is($sets, 5000, 'sets = 5000');
is($srej, 0, 'sets_rejected = 0');
is($evictions, 5000 - $entries, 'every entry that left was counted as an eviction');
is($ent->safe_psql('postgres', 'SELECT count(*) FROM qcache_entries'),
	$entries, 'qcache_entries agrees');
my $last = $ent->safe_psql(
	'postgres', q{
SELECT count(*) FROM generate_series(4901, 5000) i
WHERE qcache_get('e:' || i) = jsonb_build_object('i', i)});
note("of the last 100 keys, $last are present");
cmp_ok($last, '>=', 90, 'at least 90 of the last 100 keys set are present');
$ent->stop;

done_testing();
