# Faults of the Redis second level, with two PostgreSQL nodes and a real
# Redis: stopped mid-workload, restarted, slow (DEBUG SLEEP), paused
# (CLIENT PAUSE), and the subscription killed (CLIENT KILL).  Every call
# keeps working on L1 with bounded latency, qcache reconnects by itself,
# an invalidation made while Redis is down is never lost, and a node that
# lost its subscription drops its L1 and says so.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../perl";
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QcRedis;
use Test::More;
use Time::HiRes qw(time usleep);

my $redis = QcRedis->new;
$redis->start;
my $a = QcRedis::node('fault_a', $redis->url);
my $b = QcRedis::node('fault_b', $redis->url);
QcRedis::wait_l2_up($a, $redis);
QcRedis::wait_l2_up($b, $redis);

sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }

# A workload of n rounds (a set, a hit, a miss that asks Redis), each
# timed on its own, with a pause between rounds; leaves the per-round
# latencies in table lat.  Returns an IPC::Run harness (background).
sub workload
{
	my ($n, $rounds, $pause) = @_;
	my ($out, $err) = ('', '');
	my $sql = qq{
DROP TABLE IF EXISTS lat;
CREATE TABLE lat (ms float8);
DO \$\$
DECLARE t0 timestamptz;
BEGIN
	FOR i IN 1..$rounds LOOP
		t0 := clock_timestamp();
		PERFORM qcache_set('w:' || i, '{"v": 1}', 60);
		PERFORM qcache_get('w:' || i);
		PERFORM qcache_get('absent:' || i);
		INSERT INTO lat VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
		PERFORM pg_sleep($pause);
	END LOOP;
END \$\$;
};
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $n->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return ($h, \$err);
}

# Check a finished workload: no errors, median and maximum latency.
sub check_latency
{
	my ($n, $h, $err, $what) = @_;
	ok($h->finish, "$what: every call succeeded (psql exit 0)");
	unlike($$err, qr/ERROR/, "$what: no error");
	my ($med, $max) = split /\|/,
	  sq($n, 'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), max(ms) FROM lat');
	ok($med < 20, sprintf("$what: median %.2f ms per round < 20 ms", $med));
	ok($max < 200, sprintf("$what: maximum %.2f ms per round < 200 ms", $max));
	is(sq($n, 'SELECT count(*) FROM lat'), sq($n, 'SELECT count(*) FROM lat WHERE ms IS NOT NULL'),
		"$what: all rounds recorded");
}

# Wait for a line in a node's log after offset.
sub log_after
{
	my ($n, $re, $off) = @_;
	$n->wait_for_log($re, $off);
	pass($n->name . " logs $re");
}

# ---------------------------------------------------------------------------
# Redis stopped mid-workload, with an invalidation on B while it is down.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('stale:1', '"old"', 300, ARRAY['s'])});
is(sq($b, q{SELECT qcache_get('stale:1')}), '"old"', 'B reads the value from Redis');

my $offa = -s $a->logfile;
my $offb = -s $b->logfile;
my ($h, $err) = workload($a, 200, 0.005);
usleep(300_000);
$redis->stop;
check_latency($a, $h, $err, 'Redis stopped mid-workload');
log_after($a, qr/lost the Redis invalidation channel; dropped all \d+ local cache entries/, $offa);
my @warnings = (slurp_file($a->logfile, $offa) =~ /WARNING:  qcache:/g);
my @client_warnings = ($$err =~ /WARNING:  qcache:/g);
ok(@warnings <= 1 && @client_warnings <= 1,
	sprintf('warnings are rate-limited: %d in the log, %d to the client, over 600 calls',
		scalar @warnings, scalar @client_warnings));

my ($rc, $out, $e2) = $b->psql('postgres', q{SELECT qcache_invalidate('stale:1')});
is($rc, 0, 'invalidating on B while Redis is down works');
like($e2, qr/WARNING|^$/, 'at most a warning');
is(sq($b, q{SELECT qcache_get('stale:1')}), '', 'B misses');
is(sq($a, q{SELECT qcache_set('while:down', '1', 300)}), 't', 'A sets into L1 while Redis is down');
is(sq($a, q{SELECT qcache_get('while:down')}), '1', 'and reads it back');

# Redis comes back with its data (it saved on SIGTERM): the old value of
# stale:1 is still in Redis, but neither node may ever serve it.
$redis->start;
is($redis->cli('GET', 'qcache:postgres:stale:1'), '"old"', 'Redis came back with the old value');
log_after($a, qr/subscribed to invalidations at Redis/, $offa);
log_after($b, qr/subscribed to invalidations at Redis/, $offb);
QcRedis::wait_l2_up($a, $redis);
QcRedis::wait_l2_up($b, $redis);
# B's invalidation of stale:1 was owed; Redis's restart (a new run_id)
# may have lost anything, so B owes it everything.
log_after($b, qr/Redis restarted or failed over \(its run_id changed\)/, $offb);
log_after($b, qr/may have lost invalidations .*; invalidated every value in Redis/, $offb);
is(sq($a, q{SELECT qcache_get('stale:1')}), '', 'A never serves the value invalidated while Redis was down');
is(sq($b, q{SELECT qcache_get('stale:1')}), '', 'nor does B');

# Reconnected: sharing works again.
my $hits = sq($b, 'SELECT l2_hits FROM qcache_stats');
sq($a, q{SELECT qcache_set('after:restart', '"new"', 300)});
is(sq($b, q{SELECT qcache_get('after:restart')}), '"new"', 'after the restart, a set on A is a hit on B');
is(sq($b, 'SELECT l2_hits FROM qcache_stats'), $hits + 1, 'through Redis');

# ---------------------------------------------------------------------------
# Slow Redis: DEBUG SLEEP, then CLIENT PAUSE.
# ---------------------------------------------------------------------------
foreach my $slow ([ 'DEBUG SLEEP', 'DEBUG', 'SLEEP', '1.5' ],
	[ 'CLIENT PAUSE', 'CLIENT', 'PAUSE', '1500', 'ALL' ])
{
	my ($what, @args) = @$slow;
	my ($o, $e) = ('', '');
	my $sleeper = IPC::Run::start(
		[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, @args ],
		'>', \$o, '2>', \$e);
	usleep(100_000);
	my ($wh, $werr) = workload($a, 100, 0.01);
	check_latency($a, $wh, $werr, $what);
	$sleeper->finish;
	QcRedis::wait_l2_up($a, $redis);
	$hits = sq($b, 'SELECT l2_hits FROM qcache_stats');
	sq($a, qq{SELECT qcache_set('after:$args[1]', '"ok"', 300)});
	is(sq($b, qq{SELECT qcache_get('after:$args[1]')}), '"ok"', "after $what, sharing resumes");
	is(sq($b, 'SELECT l2_hits FROM qcache_stats'), $hits + 1, "after $what, through Redis");
}

# ---------------------------------------------------------------------------
# The subscription killed: A drops its L1, says so, and subscribes again.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('kill:1', '"v"', 300)});
is(sq($a, q{SELECT count(*) FROM qcache_entries WHERE key = 'kill:1'}), '1', "kill:1 in A's L1");
$offa = -s $a->logfile;
ok($redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub') >= 2, 'CLIENT KILL TYPE pubsub killed both subscriptions');
log_after($a, qr/lost the Redis invalidation channel; dropped all/, $offa);
log_after($a, qr/subscribed to invalidations at Redis/, $offa);
is(sq($a, q{SELECT count(*) FROM qcache_entries WHERE key = 'kill:1'}), '0', "A's L1 no longer holds it");
QcRedis::wait_l2_up($a, $redis);
$hits = sq($a, 'SELECT l2_hits FROM qcache_stats');
is(sq($a, q{SELECT qcache_get('kill:1')}), '"v"', 'A reads it again from Redis');
is(sq($a, 'SELECT l2_hits FROM qcache_stats'), $hits + 1, 'as an L2 hit');

# ---------------------------------------------------------------------------
# Cancellation during a Redis call: with a long qcache.redis_timeout and a
# sleeping Redis, statement_timeout still ends the call on time.
# ---------------------------------------------------------------------------
sq($a, q{ALTER SYSTEM SET qcache.redis_timeout = '5s'; SELECT pg_reload_conf()});
usleep(300_000);
{
	my ($o, $e) = ('', '');
	my $sleeper = IPC::Run::start(
		[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'DEBUG', 'SLEEP', '2' ],
		'>', \$o, '2>', \$e);
	usleep(100_000);
	my $t0 = time;
	my ($crc, $cout, $cerr) = $a->psql('postgres',
		q{SET statement_timeout = '200ms'; SELECT qcache_get('absent:cancel')});
	my $took = time - $t0;
	like($cerr, qr/canceling statement due to statement timeout/,
		'statement_timeout cancels a call waiting on Redis');
	ok($took < 1.5, sprintf('the cancel took effect in %.2f s, not after the 5 s timeout', $took));
	$sleeper->finish;
}
sq($a, q{ALTER SYSTEM RESET qcache.redis_timeout; SELECT pg_reload_conf()});
usleep(300_000);
QcRedis::wait_l2_up($a, $redis);
sq($a, q{SELECT qcache_set('after:cancel', '"c"', 300)});
is(sq($a, q{SELECT qcache_get('after:cancel')}), '"c"', 'qcache works after the cancelled call');

# Nothing crashed.
foreach my $n ($a, $b)
{
	unlike(slurp_file($n->logfile), qr/PANIC|server process .* terminated by signal|was terminated by signal/,
		$n->name . ': no backend crashed');
}

$a->stop;
$b->stop;
$redis->stop;
done_testing();
