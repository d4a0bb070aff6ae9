# Concurrency and eviction stress with pgbench (SPEC 3): 8 clients run
# random gets, sets, invalidations (key, tag, prefix) and listings over 200
# keys, in a cache of 2 MB that the values overflow, so entries are evicted
# and expire all through the run.
#
# Every value embeds its key and a checksum of its content, and every get
# that returns a value checks both inside SQL: a wrong, torn or stale-from-
# another-key value raises an exception, which aborts the pgbench client and
# fails the test.  A second script samples qcache_stats during the run and
# raises if bytes_used passes bytes_limit or entries passes max_entries.
# Afterwards: pgbench reports no failure, the server is up, evictions
# happened, every remaining entry is intact, and emptying the cache brings
# the gauges back to exactly their empty values (no accounting drift under
# concurrency).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $clients = 8;
my $duration = 10;
my $nkeys = 200;

my $node = PostgreSQL::Test::Cluster->new('stress');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 2MB\n"
	  . "qcache.max_entries = 1024\n"
	  . "max_connections = 30\n");
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;

-- Raise if a cached value is not the one some set of this key stored.
CREATE FUNCTION t_check(key text, v jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF v->>'k' IS DISTINCT FROM key THEN
		RAISE EXCEPTION 'qcache returned the value of key % for key %',
			v->>'k', key;
	END IF;
	IF v->>'sum' IS DISTINCT FROM
	   md5((v->>'k') || ':' || (v->>'n') || ':' || (v->>'pad')) THEN
		RAISE EXCEPTION 'qcache returned a corrupt value for key %: %',
			key, left(v::text, 200);
	END IF;
END $$;

-- The value a set of key k stores: its key, a random n, a padding and a
-- checksum of the three.
CREATE FUNCTION t_value(key text, n int, len int) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('k', key, 'n', n, 'pad', pad,
							  'sum', md5(key || ':' || n || ':' || pad))
	FROM repeat(chr(97 + n % 26), len) AS pad
$$;

-- One random operation on key k.
CREATE FUNCTION t_step(k int, op int, n int, len int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	key text := 'k' || k;
	v jsonb;
BEGIN
	IF op <= 50 THEN
		v := qcache_get(key);
		IF v IS NOT NULL THEN
			PERFORM t_check(key, v);
		END IF;
	ELSIF op <= 88 THEN
		PERFORM qcache_set(key, t_value(key, n, len),
						   CASE WHEN n % 4 = 0 THEN 1 ELSE 0 END,
						   ARRAY['g' || (k % 10), 'all']);
		-- read it back: either our value, another client's, or a miss
		v := qcache_get(key);
		IF v IS NOT NULL THEN
			PERFORM t_check(key, v);
		END IF;
	ELSIF op <= 95 THEN
		PERFORM qcache_invalidate(key);
	ELSIF op <= 97 THEN
		PERFORM qcache_invalidate_tag('g' || (n % 10));
	ELSIF op <= 98 THEN
		PERFORM qcache_invalidate_prefix('k' || (n % 10));
	ELSE
		IF EXISTS (SELECT FROM qcache_entries e
				   WHERE e.key IS NULL OR e.key !~ '^k[0-9]+$' OR e.size <= 0) THEN
			RAISE EXCEPTION 'qcache_entries lists a bad entry';
		END IF;
	END IF;
END $$;

-- A sample of the gauges, during the run, kept in t_samples.
CREATE UNLOGGED TABLE t_samples (entries bigint, bytes_used bigint);
CREATE FUNCTION t_gauges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	s record;
BEGIN
	SELECT * INTO s FROM qcache_stats;
	INSERT INTO t_samples VALUES (s.entries, s.bytes_used);
	IF s.bytes_used > s.bytes_limit THEN
		RAISE EXCEPTION 'bytes_used % > bytes_limit %', s.bytes_used, s.bytes_limit;
	END IF;
	IF s.entries > 1024 THEN
		RAISE EXCEPTION 'entries % > max_entries 1024', s.entries;
	END IF;
END $$;
});

my $empty = $node->safe_psql('postgres',
	'SELECT entries, bytes_used FROM qcache_stats');
my ($empty_entries, $empty_bytes) = split /\|/, $empty;
is($empty_entries, 0, 'starts empty');

# The scripts.
my $dir = $node->basedir;
my $step = "$dir/step.sql";
my $gauge = "$dir/gauge.sql";
append_to_file(
	$step, qq{\\set k random(1, $nkeys)
\\set op random(1, 100)
\\set n random(1, 1000000)
\\set len random(0, 30000)
SELECT t_step(:k, :op, :n, :len);
});
append_to_file($gauge, "SELECT t_gauges();\n");

my @cmd = (
	$node->installed_command('pgbench'),
	'-n', '-c', $clients, '-j', 2, '-T', $duration,
	'-f', "$step\@50", '-f', "$gauge\@1",
	'-h', $node->host, '-p', $node->port, 'postgres');
note('running: ' . join(' ', @cmd));
my ($out, $err) = ('', '');
my $h = IPC::Run::run(\@cmd, '>', \$out, '2>', \$err,
	IPC::Run::timeout($duration + 120));
my $status = $? >> 8;
note("pgbench stdout:\n$out");
note("pgbench stderr:\n$err") if $err ne '';

is($status, 0, 'pgbench exits with status 0');
unlike($err, qr/aborted|ERROR/, 'no client aborted, no error');
like($out, qr/number of failed transactions: 0\b/,
	'pgbench reports 0 failed transactions');
my ($tx) = $out =~ /number of transactions actually processed: (\d+)/;
my ($tps) = $out =~ /tps = ([\d.]+)/;
cmp_ok($tx // 0, '>', 0, 'transactions were processed');
cmp_ok($tps // 0, '>', 0, 'nonzero tps');
note("pgbench: $tx transactions, $tps tps") if defined $tx && defined $tps;

# The server is still up and the cache answers.
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');

my $row = $node->safe_psql('postgres',
	'SELECT hits, misses, sets, sets_rejected, evictions_memory, '
	  . 'evictions_expired, invalidations, entries, bytes_used, bytes_limit '
	  . 'FROM qcache_stats');
my ($hits, $misses, $sets, $rej, $evm, $eve, $inv, $entries, $bytes, $limit) =
  split /\|/, $row;
note("stats: hits $hits, misses $misses, sets $sets, sets_rejected $rej, "
	  . "evictions_memory $evm, evictions_expired $eve, "
	  . "invalidations $inv, entries $entries, bytes_used $bytes");
cmp_ok($sets, '>', 0, 'sets were made');
cmp_ok($hits, '>', 0, 'gets hit');
cmp_ok($evm, '>', 0, 'entries were evicted for memory during the run');
# Since 1.1 a set is also refused when a concurrent qcache_invalidate_tag of
# one of its tags ran in a younger transaction (invalidate.c): by design,
# and timing-dependent (about 1% here).  Refusals for memory stay near 0.
cmp_ok($rej, '<=', 0.05 * $sets, 'at most 5% of the sets were refused');
cmp_ok($bytes, '<=', $limit, 'bytes_used <= bytes_limit');
cmp_ok($entries, '<=', $nkeys, "at most $nkeys entries (one per key)");
my ($nsamples, $avg_entries, $avg_bytes, $max_bytes) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT count(*), round(avg(entries)), round(avg(bytes_used)), max(bytes_used) FROM t_samples');
note("$nsamples samples during the run: on average $avg_entries entries, "
	  . "$avg_bytes bytes used (max $max_bytes) of $limit");
cmp_ok($nsamples, '>', 0, 'the gauges were sampled during the run');

# Every entry left is intact.
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM generate_series(1, $nkeys) k, LATERAL (SELECT qcache_get('k' || k) AS v) g
WHERE v IS NOT NULL AND (t_check('k' || k, v) IS NULL OR true)}),
	$node->safe_psql('postgres', qq{
SELECT count(*) FROM generate_series(1, $nkeys) k WHERE qcache_get('k' || k) IS NOT NULL}),
	'every remaining entry passes the check');
is( $node->safe_psql(
		'postgres', 'SELECT count(*) FROM qcache_entries'),
	$node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	'qcache_entries agrees with qcache_stats.entries');

# Emptying the cache brings the gauges back exactly.
$node->safe_psql('postgres', 'SELECT qcache_clear()');
is( $node->safe_psql('postgres', 'SELECT entries, bytes_used FROM qcache_stats'),
	"0|$empty_bytes",
	'after qcache_clear: entries 0 and bytes_used back to the empty value');

# And the cache still stores what fits.
is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('k' || k, t_value('k' || k, k, 1000), 0))
FROM generate_series(1, $nkeys) k}),
	$nkeys, "$nkeys sets after the stress all succeed");

unlike(slurp_file($node->logfile),
	qr/PANIC|TRAP:|terminated by signal|server process .* exited with exit code/,
	'no crash in the server log');

$node->stop;
done_testing();
