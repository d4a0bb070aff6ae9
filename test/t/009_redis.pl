# The Redis second level with two PostgreSQL nodes and one real Redis:
# sharing, the layout in Redis, invalidations reaching the other node's L1
# (key, tag, prefix, clear and a trigger's commit), a unix socket, AUTH
# and a database number, and the password kept out of SHOW, pg_settings
# and the log.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../perl";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QcRedis;
use Test::More;
use Time::HiRes qw(time usleep);

my $pw = 'sekret-pw-4711';
my $redis = QcRedis->new(password => $pw);
$redis->start;

# A generous timeout: this test is about function, and a loaded test machine
# must not open the breaker (010 tests the faults with 50 ms).
my $a = QcRedis::node('node_a', $redis->url(3), "qcache.redis_timeout = 1s\n",
	allows_streaming => 1);
my $b = QcRedis::node('node_b', $redis->url(3), "qcache.redis_timeout = 1s\n");
QcRedis::wait_l2_up($a, $redis, 3);
QcRedis::wait_l2_up($b, $redis, 3);

sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }

sub l2_hits { return sq($_[0], 'SELECT l2_hits FROM qcache_stats'); }

# Wait until a key has left A's L1; returns the seconds since $t0.  Polls
# through one open session, so that a poll costs a round trip, not a
# connection.
my $apoll = $a->background_psql('postgres');
sub gone_within
{
	my ($n, $key, $t0) = @_;
	die 'gone_within polls node A only' unless $n == $a;
	for (1 .. 2000)
	{
		return time - $t0
		  if $apoll->query_safe("SELECT count(*) FROM qcache_entries WHERE key = '$key'") eq '0';
		usleep(2_000);
	}
	return 999;
}

# ---------------------------------------------------------------------------
# A set on A is a hit on B, from Redis, and redis-cli reads plain JSON.
# ---------------------------------------------------------------------------
is(sq($a, q{SELECT qcache_set('user:1', '{"name": "Ada", "n": [1, 2]}', 300, ARRAY['users'])}),
	't', 'set on A');
is($redis->cli('-n', 3, 'GET', 'qcache:postgres:user:1'),
	'{"n": [1, 2], "name": "Ada"}', 'redis-cli reads the JSON text under <prefix>:<database>:<key>');
my $ttl = $redis->cli('-n', 3, 'TTL', 'qcache:postgres:user:1');
ok($ttl > 290 && $ttl <= 300, "Redis has the full TTL ($ttl s)");
my $h0 = l2_hits($b);
is(sq($b, q{SELECT qcache_get('user:1')}), '{"n": [1, 2], "name": "Ada"}', 'get on B returns it');
is(l2_hits($b), $h0 + 1, 'counted as an l2_hit on B');
is(sq($b, q{SELECT count(*) FROM qcache_entries WHERE key = 'user:1'
	AND expires <= now() + interval '61 s' AND tags = '{users}'}),
	'1', "B's L1 copy has the tags and a life capped by qcache.l1_ttl");
is(sq($b, q{SELECT qcache_get('user:1')}), '{"n": [1, 2], "name": "Ada"}', 'second get on B');
is(l2_hits($b), $h0 + 1, 'served from L1 the second time');
is(sq($b, q{SELECT qcache_get('nope')}), '', 'a key in neither level misses');
ok(sq($b, 'SELECT l2_misses FROM qcache_stats') > 0, 'and counts an l2_miss');

# ---------------------------------------------------------------------------
# Invalidations on B leave A's L1 within 0.5 s, and Redis.
# ---------------------------------------------------------------------------
my %cases = (
	key => [ q{SELECT qcache_set('k:key', '1', 300)}, q{SELECT qcache_invalidate('k:key')}, 'k:key' ],
	tag => [ q{SELECT qcache_set('k:tag', '1', 300, ARRAY['grp'])}, q{SELECT qcache_invalidate_tag('grp')}, 'k:tag' ],
	prefix => [ q{SELECT qcache_set('pre:1', '1', 300)}, q{SELECT qcache_invalidate_prefix('pre:')}, 'pre:1' ],
	clear => [ q{SELECT qcache_set('k:clear', '1', 300)}, q{SELECT qcache_clear()}, 'k:clear' ],);
foreach my $kind (sort keys %cases)
{
	my ($set, $inval, $key) = @{ $cases{$kind} };
	sq($a, $set);
	is(sq($a, "SELECT count(*) FROM qcache_entries WHERE key = '$key'"), '1', "$kind: in A's L1");
	my $t0 = time;
	sq($b, $inval);
	my $took = gone_within($a, $key, $t0);
	ok($took < 0.5, sprintf("$kind invalidation on B leaves A's L1 in %.3f s", $took));
	is(sq($a, "SELECT qcache_get('$key')"), '', "$kind: A misses, and Redis does not serve it either");
	is(sq($b, "SELECT qcache_get('$key')"), '', "$kind: B misses too");
}

# ---------------------------------------------------------------------------
# A trigger's invalidation, committed on B, reaches A's L1.
# ---------------------------------------------------------------------------
foreach my $n ($a, $b)
{
	sq($n, q{CREATE TABLE items (id int PRIMARY KEY, price int);
		INSERT INTO items SELECT g, g FROM generate_series(1, 10) g;
		SELECT qcache_watch('items', 'item:{id}')});
}
is(sq($a, q{SELECT qcache_fetch('items:sum', 'SELECT sum(price) AS s FROM items', 300)}),
	'[{"s": 55}]', 'fetch on A');
sq($a, q{SELECT qcache_set('item:3', '{"price": 3}', 300, ARRAY['item:3'])});
$h0 = l2_hits($b);
is(sq($b, q{SELECT qcache_fetch('items:sum', 'SELECT sum(price) AS s FROM items', 300)}),
	'[{"s": 55}]', 'fetch on B');
is(l2_hits($b), $h0,
	'fetch results stay on their node: B computes its own (its oids are not A\'s)');
is(sq($b, q{SELECT tags FROM qcache_entries WHERE key = 'items:sum'}),
	'{table:public.items}', "B's entry carries the table tag");
my $t0 = time;
sq($b, 'BEGIN; UPDATE items SET price = 30 WHERE id = 3; COMMIT');
my $took = gone_within($a, 'item:3', $t0);
ok($took < 0.5, sprintf("row template tag: A's L1 entry gone in %.3f s", $took));
$took = gone_within($a, 'items:sum', $t0);
ok($took < 0.5, sprintf("table tag: A's fetch result gone in %.3f s", $took));
is(sq($a, q{SELECT qcache_get('item:3')}), '', 'A does not get the old item from Redis');
is(sq($b, q{SELECT qcache_fetch('items:sum', 'SELECT sum(price) AS s FROM items', 300)}),
	'[{"s": 82}]', 'B recomputes from its own table');

# A value computed from an old snapshot and set after the commit is refused
# by Redis too: its build point is older than the tag's stamp there.
sq($a, q{SELECT qcache_set('item:5', '{"price": 5}', 300, ARRAY['item:5'])});
my $old = $a->background_psql('postgres');
$old->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$old->query_safe('SELECT price FROM items WHERE id = 5');
sq($b, 'UPDATE items SET price = 50 WHERE id = 5');
usleep(100_000);
$old->query_safe(q{SELECT qcache_set('item:5', '{"price": 5}', 300, ARRAY['item:5'])});
$old->query_safe('COMMIT');
$old->quit;
is(sq($b, q{SELECT qcache_get('item:5')}), '', 'a stale set on A after a commit on B is never served on B');

# Read your writes: a transaction with a pending invalidation of a tag does
# not get a value with that tag from Redis either.
sq($a, q{SELECT qcache_set('item:7', '{"price": 7}', 300, ARRAY['item:7'])});
is(sq($b, q{BEGIN; UPDATE items SET price = 70 WHERE id = 7;
	SELECT coalesce(qcache_get('item:7')::text, 'miss'); COMMIT}),
	'miss', "a writer does not read the value its pending write makes stale from Redis");

# qcache.l1_ttl = 0: every read goes to Redis, nothing stays in L1.
sq($a, q{SELECT qcache_set('nol1', '"r"', 300)});
$h0 = l2_hits($b);
is(sq($b, q{SET qcache.l1_ttl = 0; SELECT qcache_get('nol1'), qcache_get('nol1')}),
	'"r"|"r"', 'with qcache.l1_ttl = 0 both reads are answered');
is(l2_hits($b), $h0 + 2, 'both by Redis');
is(sq($b, q{SELECT count(*) FROM qcache_entries WHERE key = 'nol1'}), '0', 'and L1 keeps nothing');

# A hot standby of A: it reads what the primary put in Redis, it does not
# store values with tags (its snapshot lags the primary's invalidations),
# and it stores values without.
$a->backup('bk');
my $stby = PostgreSQL::Test::Cluster->new('standby');
$stby->init_from_backup($a, 'bk', has_streaming => 1);
$stby->start;
$a->wait_for_catchup($stby);
QcRedis::wait_l2_up($a, $redis, 3);
sq($a, q{SELECT qcache_set('for:standby', '"p"', 300, ARRAY['x'])});
my $got = '';
for (1 .. 200)
{
	last if ($got = sq($stby, q{SELECT qcache_get('for:standby')})) eq '"p"';
	usleep(25_000);
}
is($got, '"p"', 'the standby reads a value the primary put in Redis');
is(sq($stby, q{SELECT qcache_set('stby:tagged', '1', 60, ARRAY['x'])}), 'f',
	'the standby does not store a value with tags');
is(sq($stby, q{SELECT qcache_fetch('stby:fetch', 'SELECT count(*) AS n FROM items')}), '[{"n": 10}]',
	'qcache_fetch on the standby returns its rows');
is(sq($stby, q{SELECT count(*) FROM qcache_entries WHERE key = 'stby:fetch'}), '0', 'without storing them');
is(sq($stby, q{SELECT qcache_set('stby:plain', '1', 60)}), 't', 'a value without tags is stored');
$stby->stop;

# ---------------------------------------------------------------------------
# The password stays out of SHOW, pg_settings and the log.
# ---------------------------------------------------------------------------
sq($a, 'CREATE ROLE app LOGIN');
my ($rc, $out, $err) = $a->psql('postgres', 'SET ROLE app; SHOW qcache.redis_url');
like($err, qr/permission denied|must be superuser|pg_read_all_settings/,
	'SHOW qcache.redis_url is refused to a plain role');
is(sq($a, q{SET ROLE app; SELECT count(*) FROM pg_settings WHERE name = 'qcache.redis_url'}),
	'0', 'pg_settings hides it from a plain role');
($rc, $out, $err) = $a->psql('postgres', q{SET ROLE app; SELECT current_setting('qcache.redis_url', true)});
unlike($out, qr/\Q$pw\E/, 'current_setting does not give it either');

# Point B at the unix socket, with AUTH and database 3, through a reload:
# the postmaster logs "parameter ... changed to ...", which must not show
# the password.
my $off = -s $b->logfile;
sq($b, "ALTER SYSTEM SET qcache.redis_url = 'unix://:$pw\@" . $redis->socket . "?db=3'");
sq($b, 'SELECT pg_reload_conf()');
$b->wait_for_log(qr/subscribed to invalidations at Redis unix socket/, $off);
sq($a, q{SELECT qcache_set('via:unix', '"yes"', 300)});
my $ok = 0;
for (1 .. 200)
{
	last if ($ok = sq($b, q{SELECT qcache_get('via:unix')}) eq '"yes"');
	usleep(25_000);
}
ok($ok, 'B reads through the unix socket, with AUTH and database 3');
my $log = slurp_file($b->logfile) . slurp_file($a->logfile);
unlike($log, qr/\Q$pw\E/, 'the password is not in either log');
like(slurp_file($b->logfile, $off), qr/qcache.redis_url.*\*{8}/, 'the reload message shows it masked');

# A wrong URL is refused with a clear error.
($rc, $out, $err) = $a->psql('postgres', q{ALTER SYSTEM SET qcache.redis_url = 'http://x'});
like($err, qr/qcache.redis_url is not valid/, 'a malformed URL is refused');

# A malformed URL with a secret: the error, its STATEMENT line and the log
# do not show it, even without a colon or with an '@' in the password.
$off = -s $a->logfile;
foreach my $bad ('redis://leak-me-7@nohost:x', 'redis://:le@k-me-8@nohost:x')
{
	($rc, $out, $err) = $a->psql('postgres', "ALTER SYSTEM SET qcache.redis_url = '$bad'");
	isnt($rc, 0, "refused: a malformed URL with a secret");
}
my $alog = slurp_file($a->logfile, $off);
like($alog, qr/ERROR:  invalid value for parameter "qcache.redis_url": "redis:\/\/\*{8}\@nohost:x"/,
	'the log has the error, with the user information masked');
unlike($alog, qr/leak-me|le\@k-me/, 'the secret is nowhere in the log, STATEMENT lines included');

$apoll->quit;
$a->stop;
$b->stop;
$redis->stop;
done_testing();
