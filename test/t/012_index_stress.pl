# The tag and namespace index under concurrency (issue 12): 8 clients run
# random gets, sets (with tags, repeated tags and node-internal tags, keys in
# namespaces, some expiring), and invalidations by key, tag, prefix and
# clear, over 200 keys in a 2 MB cache that the values overflow, so that
# entries leave the index every way there is: replaced, removed, evicted,
# expired, swept, invalidated.
#
# Every value embeds its key and a checksum, checked by every get (a wrong
# or torn value raises).  Every tag or prefix invalidation checks its count
# against the most entries that can carry the tag (one entry per key): a
# freed entry kept in the index would be counted again, or crash.  After
# the run, a clear brings the gauges back exactly to empty, and on a known
# content each tag and namespace removes exactly its entries.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $clients = 8;
my $duration = 10;
my $nkeys = 200;

my $node = PostgreSQL::Test::Cluster->new('index_stress');
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

CREATE FUNCTION t_key(k int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT 'n' || (k % 4) || ':' || k
$$;

CREATE FUNCTION t_check(key text, v jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF v->>'k' IS DISTINCT FROM key THEN
		RAISE EXCEPTION 'qcache returned the value of key % for key %',
			v->>'k', key;
	END IF;
	IF v->>'sum' IS DISTINCT FROM
	   md5((v->>'k') || ':' || (v->>'n') || ':' || (v->>'pad')) THEN
		RAISE EXCEPTION 'qcache returned a corrupt value for key %', key;
	END IF;
END $$;

CREATE FUNCTION t_value(key text, n int, len int) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('k', key, 'n', n, 'pad', pad,
							  'sum', md5(key || ':' || n || ':' || pad))
	FROM repeat(chr(97 + n % 26), len) AS pad
$$;

-- Raise if a bulk invalidation counted more entries than can exist.
CREATE FUNCTION t_at_most(what text, got bigint, bound int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF got > bound THEN
		RAISE EXCEPTION '% removed % entries, more than the % that can exist',
			what, got, bound;
	END IF;
END $$;

CREATE FUNCTION t_step(k int, op int, n int, len int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	key text := t_key(k);
	v jsonb;
BEGIN
	IF op <= 450 THEN
		v := qcache_get(key);
		IF v IS NOT NULL THEN
			PERFORM t_check(key, v);
		END IF;
	ELSIF op <= 850 THEN
		PERFORM qcache_set(key, t_value(key, n, len),
						   CASE WHEN n % 4 = 0 THEN 1 ELSE 0 END,
						   CASE WHEN n % 3 = 0
								THEN ARRAY['g' || (k % 10), 'all', 'g' || (k % 10),
										   'rel:' || (k % 5)]
								ELSE ARRAY['g' || (k % 10), 'all'] END);
		v := qcache_get(key);
		IF v IS NOT NULL THEN
			PERFORM t_check(key, v);
		END IF;
	ELSIF op <= 900 THEN
		PERFORM qcache_invalidate(key);
	ELSIF op <= 940 THEN
		PERFORM t_at_most('tag g', qcache_invalidate_tag('g' || (n % 10)), 20);
	ELSIF op <= 955 THEN
		PERFORM t_at_most('tag rel', qcache_invalidate_tag('rel:' || (n % 5)), 40);
	ELSIF op <= 975 THEN
		PERFORM t_at_most('prefix n', qcache_invalidate_prefix('n' || (n % 4) || ':'), 50);
	ELSIF op <= 990 THEN
		PERFORM t_at_most('prefix n1:1', qcache_invalidate_prefix('n1:1'), 50);
	ELSIF op <= 993 THEN
		PERFORM t_at_most('tag all', qcache_invalidate_tag('all'), 200);
	ELSIF op <= 995 THEN
		PERFORM t_at_most('clear', qcache_clear(), 200);
	ELSE
		v := qcache_get(key);
		IF v IS NOT NULL THEN
			PERFORM t_check(key, v);
		END IF;
	END IF;
END $$;
});

my $empty = $node->safe_psql('postgres',
	'SELECT entries, bytes_used FROM qcache_stats');
my ($empty_entries, $empty_bytes) = split /\|/, $empty;
is($empty_entries, 0, 'starts empty');

my $dir = $node->basedir;
my $step = "$dir/step.sql";
append_to_file(
	$step, qq{\\set k random(1, $nkeys)
\\set op random(1, 1000)
\\set n random(1, 1000000)
\\set len random(0, 40000)
SELECT t_step(:k, :op, :n, :len);
});

my @cmd = (
	$node->installed_command('pgbench'),
	'-n', '-c', $clients, '-j', 2, '-T', $duration,
	'-f', $step, '-h', $node->host, '-p', $node->port, 'postgres');
note('running: ' . join(' ', @cmd));
my ($out, $err) = ('', '');
IPC::Run::run(\@cmd, '>', \$out, '2>', \$err,
	IPC::Run::timeout($duration + 120));
my $status = $? >> 8;
note("pgbench stdout:\n$out");
note("pgbench stderr:\n$err") if $err ne '';

is($status, 0, 'pgbench exits with status 0');
unlike($err, qr/aborted|ERROR/, 'no client aborted, no error');
like($out, qr/number of failed transactions: 0\b/,
	'pgbench reports 0 failed transactions');
my ($tx) = $out =~ /number of transactions actually processed: (\d+)/;
cmp_ok($tx // 0, '>', 100, 'transactions were processed');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');

my ($evm, $inv) = split /\|/, $node->safe_psql('postgres',
	'SELECT evictions_memory, invalidations FROM qcache_stats');
cmp_ok($evm, '>', 0, 'entries were evicted for memory during the run');
cmp_ok($inv, '>', 0, 'entries were invalidated during the run');

# Quiet now.  A clear empties the database, whatever expired or went
# stale during the run, and the gauges must be exactly empty: no entry was
# lost or counted twice by the index's bookkeeping.
cmp_ok($node->safe_psql('postgres', 'SELECT qcache_clear()'),
	'<=', $nkeys, 'the clear removes at most one entry per key');
is($node->safe_psql('postgres', 'SELECT entries, bytes_used FROM qcache_stats'),
	"0|$empty_bytes", 'after the run and a clear, the gauges are exactly empty');

# A known content, then each tag and namespace removes exactly its own.
$node->safe_psql('postgres', qq{
	SELECT qcache_set(t_key(k), t_value(t_key(k), k, 10), 0,
					  CASE WHEN k % 3 = 0
						   THEN ARRAY['g' || (k % 10), 'all', 'g' || (k % 10), 'rel:' || (k % 5)]
						   ELSE ARRAY['g' || (k % 10), 'all'] END)
	FROM generate_series(1, $nkeys) k});
is($node->safe_psql('postgres', 'SELECT entries FROM qcache_stats'),
	$nkeys, "$nkeys entries");
my %alive = map { $_ => 1 } 1 .. $nkeys;
for my $r (0 .. 4)
{
	my @k = grep { $_ % 3 == 0 && $_ % 5 == $r } keys %alive;
	delete @alive{@k};
	is($node->safe_psql('postgres', qq{SELECT qcache_invalidate_tag('rel:$r')}),
		scalar(@k), "node-internal tag rel:$r: " . scalar(@k) . ' entries');
}
for my $g (0 .. 4)
{
	my @k = grep { $_ % 10 == $g } keys %alive;
	delete @alive{@k};
	is($node->safe_psql('postgres', "SELECT qcache_invalidate_tag('g$g')"),
		scalar(@k), "tag g$g: " . scalar(@k) . ' entries');
}
for my $ns (0 .. 3)
{
	my @k = grep { $_ % 4 == $ns } keys %alive;
	delete @alive{@k};
	is($node->safe_psql('postgres', "SELECT qcache_invalidate_prefix('n$ns:')"),
		scalar(@k), "namespace n$ns: " . scalar(@k) . ' entries');
}
is($node->safe_psql('postgres', q{SELECT qcache_invalidate_tag('all')}),
	0, 'nothing left with the tag all');
is($node->safe_psql('postgres', 'SELECT entries, bytes_used FROM qcache_stats'),
	"0|$empty_bytes", 'the gauges end exactly empty');

$node->stop;
done_testing();
