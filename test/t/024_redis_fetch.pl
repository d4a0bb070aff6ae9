# qcache_fetch results through the Redis level (issue 9, SPEC 7 and 8): a
# primary A and its streaming standby B share one Redis.  A shared result
# that A computed is served to a role on B only under the rule of an L1
# hit: the same query, search_path and settings (the variant's digest),
# this cluster and database (the x field), every privilege the execution
# checked, re-checked as B's caller.  Role-scoped results (row-level
# security) never go to Redis.  A forged x field is a miss, not an error.
# A qcache_set value is never a fetch result.  A watched write on A, and a
# CREATE OR REPLACE FUNCTION, remove the Redis copy; qcache_invalidate(key)
# reaches it.  A second cluster C on the same Redis computes its own.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../perl";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QcRedis;
use Test::More;
use Time::HiRes qw(usleep);

my $redis = QcRedis->new;
$redis->start;

my $conf = "qcache.redis_timeout = 1s\n";
my $a = QcRedis::node('fa', $redis->url, $conf, allows_streaming => 1);
QcRedis::wait_l2_up($a, $redis);

sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }

# Run as a role; returns (stdout, stderr).
sub as
{
	my ($n, $role, $sql) = @_;
	my ($rc, $out, $err) = $n->psql('postgres', "SET ROLE $role; $sql");
	return ($out, $err);
}

sub stat_of { my ($n, $c) = @_; return sq($n, "SELECT $c FROM qcache_stats"); }

# Redis keys (value keys) of a user key's fetch results.
sub redis_variants
{
	my ($key) = @_;
	return $redis->cli('EVAL',
		q{local n = 0
		  for _, k in ipairs(redis.call('KEYS', 'qcache:postgres:' .. ARGV[1] .. '*')) do
		    if string.find(k, '\0Q', 1, true) then n = n + 1 end
		  end
		  return n}, '0', $key);
}

# Rewrite the x field of every fetch result's metadata under a user key
# with a Lua expression of m.x (the old value) and ARGV[2].
sub forge
{
	my ($key, $expr, $arg) = @_;
	return $redis->cli('EVAL',
		qq{local n = 0
		  for _, k in ipairs(redis.call('KEYS', 'qcache#m:postgres:' .. ARGV[1] .. '*')) do
		    if string.find(k, '\\0Q', 1, true) then
		      local m = cjson.decode(redis.call('GET', k))
		      m.x = $expr
		      redis.call('SET', k, cjson.encode(m), 'KEEPTTL')
		      n = n + 1
		    end
		  end
		  return n}, '0', $key, $arg // '');
}

# The x field of a user key's (one) fetch result.
sub x_of
{
	my ($key) = @_;
	return $redis->cli('EVAL',
		q{for _, k in ipairs(redis.call('KEYS', 'qcache#m:postgres:' .. ARGV[1] .. '*')) do
		    if string.find(k, '\0Q', 1, true) then
		      return cjson.decode(redis.call('GET', k)).x
		    end
		  end
		  return ''}, '0', $key);
}

# Schema, roles and grants, on A (B gets them by replay).
sq($a, q{
	CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE carol;
	SELECT qcache_grant_reader('alice'), qcache_grant_reader('bob'),
		qcache_grant_reader('carol');
	CREATE TABLE secret (id int PRIMARY KEY, v text, hidden text);
	INSERT INTO secret SELECT g, 'v' || g, 'h' || g FROM generate_series(1, 5) g;
	GRANT SELECT ON secret TO alice, carol;
	GRANT SELECT (id, v) ON secret TO bob;
	SELECT qcache_watch('secret');
	CREATE TABLE tenant_rows (tenant text, n int);
	INSERT INTO tenant_rows VALUES ('t1', 1), ('t1', 2), ('t2', 20);
	ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
	CREATE POLICY p ON tenant_rows USING (tenant = current_setting('app.tenant'));
	GRANT SELECT ON tenant_rows TO alice, carol;
	CREATE SCHEMA s1; CREATE SCHEMA s2;
	CREATE TABLE s1.t (v text); CREATE TABLE s2.t (v text);
	INSERT INTO s1.t VALUES ('one'); INSERT INTO s2.t VALUES ('two');
	GRANT USAGE ON SCHEMA s1, s2 TO alice, carol;
	GRANT SELECT ON s1.t, s2.t TO alice, carol;
	CREATE FUNCTION f_sum() RETURNS bigint LANGUAGE sql STABLE
		AS 'SELECT sum(id) FROM secret';
	GRANT EXECUTE ON FUNCTION f_sum() TO alice, carol;
});

$a->backup('bk');
my $b = PostgreSQL::Test::Cluster->new('fb');
$b->init_from_backup($a, 'bk', has_streaming => 1);
$b->start;
$a->wait_for_catchup($b);
QcRedis::wait_l2_up($a, $redis);
is(sq($b, 'SELECT pg_is_in_recovery()'), 't', 'B is a streaming standby of A');

my $all = q{SELECT id, v, hidden FROM secret ORDER BY id};
my $rows = sq($a, qq{SET ROLE alice; SELECT qcache_fetch('k1', '$all', 300)});
like($rows, qr/"hidden": "h5"/, 'alice fetches on A');
is(redis_variants('k1'), '1', "A's shared result is in Redis, under the key's fetch variant");
like(x_of('k1'), qr/^qf1:[0-9a-f]+$/, 'with its x field');
is($redis->cli('EXISTS', 'qcache:postgres:k1'), '0', 'and not under the key itself');

# ---------------------------------------------------------------------------
# bob (SELECT on id and v only) is not served alice's rows from Redis.
# ---------------------------------------------------------------------------
my $h0 = stat_of($b, 'l2_hits');
my ($out, $err) = as($b, 'bob', qq{SELECT qcache_fetch('k1', '$all', 300)});
is($out, '', 'bob on B gets no rows');
like($err, qr/permission denied for table secret/, 'but his own error');
is(stat_of($b, 'l2_hits'), $h0, 'and no L2 hit was served to him');
is(sq($b, q{SELECT count(*) FROM qcache_entries WHERE key = 'k1'}), '0',
	"nor copied into B's L1");

# carol (SELECT) is served it from Redis, then from B's L1.
is(sq($b, qq{SET ROLE carol; SELECT qcache_fetch('k1', '$all', 300)}), $rows,
	'carol on B gets the same rows');
is(stat_of($b, 'l2_hits'), $h0 + 1, 'as an L2 hit');
is(sq($b, q{SELECT count(*) FROM qcache_entries WHERE key = 'k1'}), '1',
	"copied into B's L1");
my $hits = stat_of($b, 'hits');
is(sq($b, qq{SET ROLE carol; SELECT qcache_fetch('k1', '$all', 300)}), $rows,
	'carol again');
is(stat_of($b, 'hits'), $hits + 1, "from B's L1 this time");
($out, $err) = as($b, 'bob', qq{SELECT qcache_fetch('k1', '$all', 300)});
like($err, qr/permission denied for table secret/,
	"the L1 copy keeps the dependency list: bob is still refused");
is(stat_of($b, 'hits'), $hits + 1, 'and was not served the L1 copy');

# Column privileges: a query of id and v only is served to bob.
my $cols = q{SELECT id, v FROM secret ORDER BY id};
my $crows = sq($a, qq{SET ROLE alice; SELECT qcache_fetch('k2', '$cols', 300)});
$h0 = stat_of($b, 'l2_hits');
is(sq($b, qq{SET ROLE bob; SELECT qcache_fetch('k2', '$cols', 300)}), $crows,
	'a query of the columns bob may read: bob gets the rows');
is(stat_of($b, 'l2_hits'), $h0 + 1, 'from Redis');

# ---------------------------------------------------------------------------
# Row-level security: scoped results never go to Redis.
# ---------------------------------------------------------------------------
my $rls = q{SELECT tenant, n FROM tenant_rows ORDER BY n};
is(sq($a, qq{SET ROLE alice; SET app.tenant = 't1'; SELECT qcache_fetch('k3', '$rls', 300)}),
	'[{"n": 1, "tenant": "t1"}, {"n": 2, "tenant": "t1"}]', "tenant t1's rows on A");
is(redis_variants('k3'), '0', 'a role-scoped result is not in Redis');
$h0 = stat_of($b, 'l2_hits');
is(sq($b, qq{SET ROLE alice; SET app.tenant = 't2'; SELECT qcache_fetch('k3', '$rls', 300)}),
	'[{"n": 20, "tenant": "t2"}]', 'tenant t2 on B gets its own rows');
is(sq($b, qq{SET ROLE carol; SET app.tenant = 't2'; SELECT qcache_fetch('k3', '$rls', 300)}),
	'[{"n": 20, "tenant": "t2"}]', 'so does carol as t2');
is(stat_of($b, 'l2_hits'), $h0, 'no L2 hit');

# ---------------------------------------------------------------------------
# search_path: another path on B misses; the same one hits.
# ---------------------------------------------------------------------------
is(sq($a, q{SET ROLE alice; SET search_path = s1, public; SELECT qcache_fetch('k4', 'SELECT v FROM t', 300)}),
	'[{"v": "one"}]', 's1.t on A');
$h0 = stat_of($b, 'l2_hits');
is(sq($b, q{SET ROLE carol; SET search_path = s2, public; SELECT qcache_fetch('k4', 'SELECT v FROM t', 300)}),
	'[{"v": "two"}]', 'search_path s2 on B: s2.t');
is(stat_of($b, 'l2_hits'), $h0, 'not an L2 hit');
is(sq($b, q{SET ROLE carol; SET search_path = s1, public; SELECT qcache_fetch('k4', 'SELECT v FROM t', 300)}),
	'[{"v": "one"}]', 'search_path s1 on B');
is(stat_of($b, 'l2_hits'), $h0 + 1, 'an L2 hit');

# ---------------------------------------------------------------------------
# A forged x field is a miss, never an error.
# ---------------------------------------------------------------------------
# Each forgery on a key of its own, so that none can hide behind another's
# L1 copy on B.
my $q5 = q{SELECT id FROM secret WHERE id < 3 ORDER BY id};
my $r5 = '[{"id": 1}, {"id": 2}]';
my $x2 = x_of('k2');
my %forgeries = (
	'empty' => [ q{''} ],
	'garbage' => [ q{'qf1:zz' .. string.rep('0', 40)} ],
	'truncated' => [ q{string.sub(m.x, 1, 200)} ],
	'another cluster' => [ q{string.sub(m.x, 1, 4) .. (string.sub(m.x, 5, 5) == '0' and '1' or '0') .. string.sub(m.x, 6)} ],
	'another database' => [ q{string.sub(m.x, 1, 20) .. (string.sub(m.x, 21, 21) == '0' and '1' or '0') .. string.sub(m.x, 22)} ],
	'another query\'s x' => [ q{ARGV[2]}, $x2 ],
	'the real x' => [ q{m.x} ],
);
my $i = 0;
foreach my $name (sort keys %forgeries)
{
	my ($expr, $arg) = @{ $forgeries{$name} };
	my $k = 'k5_' . $i++;
	is(sq($a, qq{SET ROLE alice; SELECT qcache_fetch('$k', '$q5', 300)}), $r5, "$k on A");
	is(forge($k, $expr, $arg), '1', "$k: x rewritten ($name)") or next;
	$h0 = stat_of($b, 'l2_hits');
	my $m0 = stat_of($b, 'l2_misses');
	($out, $err) = as($b, 'carol', qq{SELECT qcache_fetch('$k', '$q5', 300)});
	is($out, $r5, "$name: carol on B gets the rows");
	is($err, '', "$name: no error");
	if ($name eq 'the real x')
	{
		is(stat_of($b, 'l2_hits'), $h0 + 1, "$name: an L2 hit (the rewrite is not the cause)");
		next;
	}
	is(stat_of($b, 'l2_hits'), $h0, "$name: not an L2 hit");
	ok(stat_of($b, 'l2_misses') > $m0, "$name: an L2 miss");
}

# ---------------------------------------------------------------------------
# A qcache_set value is never a fetch result, through Redis either.
# ---------------------------------------------------------------------------
is(sq($a, q{SELECT qcache_set('k6', '[{"id": 999}]', 300)}), 't', 'a value set on A under k6');
is($redis->cli('GET', 'qcache:postgres:k6'), '[{"id": 999}]', 'in Redis');
$h0 = stat_of($b, 'l2_hits');
is(sq($b, qq{SET ROLE carol; SELECT qcache_fetch('k6', '$q5', 300)}), $r5,
	'a fetch of k6 on B runs its query');
is(stat_of($b, 'l2_hits'), $h0, 'without an L2 hit');

# ---------------------------------------------------------------------------
# A watched write on A removes the Redis copy; B recomputes after replay.
# ---------------------------------------------------------------------------
my $q7 = q{SELECT count(*) AS n, sum(id) AS s FROM secret};
is(sq($a, qq{SET ROLE alice; SELECT qcache_fetch('k7', '$q7', 300)}), '[{"n": 5, "s": 15}]', 'k7 on A');
$h0 = stat_of($b, 'l2_hits');
is(sq($b, qq{SET ROLE carol; SELECT qcache_fetch('k7', '$q7', 300)}), '[{"n": 5, "s": 15}]', 'k7 on B');
is(stat_of($b, 'l2_hits'), $h0 + 1, 'from Redis');
sq($a, q{INSERT INTO secret VALUES (6, 'v6', 'h6')});
is(redis_variants('k7'), '0', 'the INSERT on A removed the Redis copy');
$a->wait_for_catchup($b);
my $got = '';
for (1 .. 200)
{
	last if ($got = sq($b, qq{SET ROLE carol; SELECT qcache_fetch('k7', '$q7', 300)}))
	  eq '[{"n": 6, "s": 21}]';
	usleep(25_000);
}
is($got, '[{"n": 6, "s": 21}]', 'B recomputes after replay: its L1 copy is gone too');

# CREATE OR REPLACE FUNCTION of a function the result called.
my $q8 = q{SELECT f_sum() AS s};
is(sq($a, qq{SET ROLE alice; SELECT qcache_fetch('k8', '$q8', 300)}), '[{"s": 21}]', 'k8 on A');
is(redis_variants('k8'), '1', 'in Redis');
sq($a, q{CREATE OR REPLACE FUNCTION f_sum() RETURNS bigint LANGUAGE sql STABLE
	AS 'SELECT sum(id) * 10 FROM secret'});
my $fn = sq($a, q{SELECT 'f_sum'::regproc::oid});
ok($redis->cli('GET', "qcache#t:postgres:\x01fn:$fn") > 0,
	"CREATE OR REPLACE FUNCTION on A stamped the function's tag in Redis");
$a->wait_for_catchup($b);
$h0 = stat_of($b, 'l2_hits');
is(sq($b, qq{SET ROLE carol; SELECT qcache_fetch('k8', '$q8', 300)}), '[{"s": 210}]',
	'B computes with the new function');
is(stat_of($b, 'l2_hits'), $h0, 'the Redis copy is not served');

# ---------------------------------------------------------------------------
# Another cluster on the same Redis computes its own; qcache_invalidate(key)
# removes every fetch result of the key from Redis.
# ---------------------------------------------------------------------------
my $c = QcRedis::node('fc', $redis->url, $conf);
QcRedis::wait_l2_up($c, $redis);
sq($c, q{
	CREATE ROLE alice; CREATE ROLE carol;
	SELECT qcache_grant_reader('carol');
	CREATE TABLE secret (id int PRIMARY KEY, v text, hidden text);
	INSERT INTO secret SELECT g, 'c' || g, 'x' || g FROM generate_series(1, 5) g;
	GRANT SELECT ON secret TO carol;
});
is(sq($a, qq{SET ROLE alice; SELECT qcache_fetch('k1', '$all', 300)}), $rows =~ s/\}\]$/}, {"v": "v6", "id": 6, "hidden": "h6"}]/r,
	'k1 on A again (the INSERT removed it)');
$h0 = stat_of($c, 'l2_hits');
my $crow = sq($c, qq{SET ROLE carol; SELECT qcache_fetch('k1', '$all', 300)});
like($crow, qr/"hidden": "x5"/, "C's carol gets C's rows");
is(stat_of($c, 'l2_hits'), $h0, 'not an L2 hit: C is another cluster');
is(redis_variants('k1'), '2', 'Redis holds both clusters\' results of k1');
is(sq($a, q{SELECT qcache_invalidate('k1')}), 't', 'qcache_invalidate(k1) on A');
is(redis_variants('k1'), '0', 'removes both from Redis');

$b->stop;
$c->stop;
$a->stop;
done_testing();
