# SPEC 12, a primary crash between a writer's MARK and its commit record
# (the writer is blocked in PreCommit_Notify on the lock of another
# committer that waits for a synchronous standby that does not exist; the
# MARK is flushed with pg_switch_wal).  The primary restarts, no promotion:
# the standby's reaper sees the transaction gone and the tag does not stay
# in flight.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use QcStandby;
use IPC::Run;
use Time::HiRes qw(usleep);

my $p = QcStandby::primary('p', "qcache.wal_invalidation = on\n");
sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }
sq($p, q{CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items VALUES (1, 10);
CREATE TABLE side (x int);
SELECT qcache_watch('items');});
my $s = QcStandby::standby($p, 's', "wal_retrieve_retry_interval = 100ms\n");
my $ok = QcStandby::wait_wal_status($p, $s, 'hearing');
ok($ok, 'hearing');
my $q = q{SELECT f->0->>'v' || CASE WHEN (f->0->>'xt')::timestamptz = now() THEN ' computed' ELSE ' cached' END FROM qcache_fetch('one', 'SELECT v, now() AS xt FROM items WHERE id = 1', 0) f};
sq($s, $q);
is(sq($s, $q), '10 cached', 'cached');

sq($p, q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'});
sq($p, 'SELECT pg_reload_conf()');
my ($o1, $e1, $o2, $e2) = ('', '', '', '');
my $a = IPC::Run::start([ 'psql', '-X', '-d', $p->connstr('postgres'), '-c',
	q{BEGIN; INSERT INTO side VALUES (1); NOTIFY ch; COMMIT;} ], '>', \$o1, '2>', \$e1);
usleep(500_000);
my $b = IPC::Run::start([ 'psql', '-X', '-d', $p->connstr('postgres'), '-c',
	q{BEGIN; SET LOCAL synchronous_commit = local; UPDATE items SET v = 20 WHERE id = 1; NOTIFY ch; COMMIT;} ],
	'>', \$o2, '2>', \$e2);
usleep(500_000);
sq($p, 'SELECT pg_switch_wal()');    # flushes the MARK, no xid completes
$p->wait_for_catchup($s, 'replay', $p->lsn('flush'));
is(sq($s, $q), '10 computed', 'MARK replayed: the tag is in flight');
$p->stop('immediate');
$a->kill_kill; $b->kill_kill;
$p->start;
sq($p, q{ALTER SYSTEM RESET synchronous_standby_names});
sq($p, 'SELECT pg_reload_conf()');
$p->wait_for_catchup($s, 'replay', $p->lsn('insert'));
my $got;
for (1 .. 50) { $got = sq($s, $q); last if $got eq '10 cached'; usleep(100_000); }
is($got, '10 cached', 'after the primary restarts, the crashed writer\'s tag is not stuck in flight');
$s->stop; $p->stop;
done_testing();
