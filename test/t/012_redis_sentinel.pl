# Redis Sentinel (Debian's redis-sentinel): qcache.redis_url names
# sentinels (the first one listed is down) and a master name;
# two PostgreSQL nodes share a master that has a replica.  The master is
# killed, the sentinel promotes the replica, and both nodes follow by
# themselves: they serve correct values (an invalidation made while the
# master was gone is not lost, and nothing from before the failover that
# the new master may lack is trusted), and share values again through the
# new master.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../perl";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QcRedis;
use Test::More;
use Time::HiRes qw(time usleep);

my $master = QcRedis->new;
$master->start;
my $replica = QcRedis->new(args => [ '--replicaof', '127.0.0.1', $master->port ]);
$replica->start;
for (1 .. 200)
{
	last if $replica->cli('INFO', 'replication') =~ /master_link_status:up/;
	usleep(50_000);
}
like($replica->cli('INFO', 'replication'), qr/master_link_status:up/, 'the replica follows the master');

my $sentinel = QcRedis->new(
	conf => "sentinel monitor qm 127.0.0.1 " . $master->port . " 1\n"
	  . "sentinel down-after-milliseconds qm 1000\n"
	  . "sentinel failover-timeout qm 5000\n",
	bin => 'redis-sentinel');
$sentinel->start;
my $sport = $sentinel->port;
is((split /\n/, $sentinel->cli('SENTINEL', 'get-master-addr-by-name', 'qm'))[1],
	$master->port, 'the sentinel knows the master');

my $url = "redis-sentinel://127.0.0.1:1,127.0.0.1:$sport/qm";
my $a = QcRedis::node('sent_a', $url, "qcache.redis_timeout = 200ms\n");
my $b = QcRedis::node('sent_b', $url, "qcache.redis_timeout = 200ms\nqcache.l1_ttl = 0\n");
QcRedis::wait_l2_up($a, $master);
QcRedis::wait_l2_up($b, $master);
like(slurp_file($a->logfile), qr/subscribed to invalidations at Redis 127.0.0.1:${\ $master->port} \(master "qm" of the sentinels\)/,
	'A found the master through the sentinels (the first one listed is down)');

sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }

sq($a, q{SELECT qcache_set('s:1', '"one"', 0), qcache_set('s:2', '"two"', 0)});
is(sq($b, q{SELECT qcache_get('s:1')}), '"one"', 'B reads a value A stored, through the master');
for (1 .. 100)
{
	last if $replica->cli('EXISTS', 'qcache:postgres:s:2') eq '1';
	usleep(20_000);
}
is($replica->cli('GET', 'qcache:postgres:s:2'), '"two"', 'the replica has it too');

# The master dies; while the sentinel fails over, A invalidates s:2.
my $offa = -s $a->logfile;
my $offb = -s $b->logfile;
$master->kill9;
my $t0 = time;
my ($rc, $out, $err) = $a->psql('postgres', q{SELECT qcache_invalidate('s:2')});
is($rc, 0, 'an invalidation on A while the master is down works');
my $promoted = 0;
for (1 .. 300)
{
	my @addr = split /\n/, $sentinel->cli('SENTINEL', 'get-master-addr-by-name', 'qm');
	if (@addr == 2 && $addr[1] eq $replica->port)
	{
		$promoted = 1;
		last;
	}
	usleep(100_000);
}
ok($promoted, sprintf('the sentinel promoted the replica (%.1f s)', time - $t0));

# Both nodes follow without a reload.
$a->wait_for_log(qr/subscribed to invalidations at Redis 127.0.0.1:${\ $replica->port}/, $offa);
$b->wait_for_log(qr/subscribed to invalidations at Redis 127.0.0.1:${\ $replica->port}/, $offb);
QcRedis::wait_l2_up($a, $replica);
QcRedis::wait_l2_up($b, $replica);
is(sq($b, q{SELECT qcache_get('s:2')}), '', 'B does not get s:2, invalidated during the failover');
is($replica->cli('EXISTS', 'qcache:postgres:s:2'), '0', 'and the new master does not hold it');
is(sq($b, q{SELECT qcache_get('s:1')}), '',
	'nor a value from before the failover (the new master may lack invalidations)');
like(slurp_file($a->logfile, $offa) . slurp_file($b->logfile, $offb), qr/run_id changed/,
	'a node saw the new master as a restart');

sq($a, q{SELECT qcache_set('s:3', '"three"', 0, ARRAY['t3'])});
is(sq($b, q{SELECT qcache_get('s:3')}), '"three"', 'after the failover, B reads what A stores');
is($replica->cli('GET', 'qcache:postgres:s:3'), '"three"', 'through the new master');
sq($b, q{SELECT qcache_invalidate_tag('t3')});
usleep(300_000);
is(sq($a, q{SELECT qcache_get('s:3')}), '', 'and invalidations reach A again');
is(sq($a, 'SELECT state, owed, serving FROM qcache_redis'), 'up|0|t', 'A is up, owes nothing');

$a->stop;
$b->stop;
$sentinel->stop;
$replica->stop;
done_testing();
