# SPEC 12 right after a promotion: a standby (setting off in its own
# postgresql.conf) is promoted while its sweeper is stopped (SIGSTOP, by
# pid), and an UPDATE commits on it at once.  STATE(off) must precede that
# commit in the WAL (it is written at the writer's PRE_COMMIT, not only by
# the sweeper), so its cascade never serves the value computed before the
# UPDATE.  (Found by review: the cascade served it until the sweeper's next
# tick.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use QcStandby;
use Time::HiRes qw(usleep);

my $p = QcStandby::primary('p', "qcache.wal_invalidation = on\n");
sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }
sq($p, q{CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items VALUES (1, 10);
SELECT qcache_watch('items');});
my $s = QcStandby::standby($p, 's', "qcache.wal_invalidation = off\n");
my $c = QcStandby::standby($s, 'c');
my $ok = QcStandby::wait_wal_status($p, $c, 'hearing');
ok($ok, 'the cascade hears the primary');
my $q = q{SELECT f->0->>'v' FROM qcache_fetch('one', 'SELECT v FROM items WHERE id = 1', 0) f};
is(sq($c, $q), '10', 'cascade computes');
is(sq($c, $q), '10', 'cascade caches');

# a slow sweeper (a busy machine): hold it, by pid, across the promotion
my $sw = sq($s, q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'qcache sweeper'});
ok($sw =~ /^\d+$/, "the standby's sweeper runs ($sw)");
kill 'STOP', $sw;
$p->stop('fast');
$s->promote;    # waits until the promotion is done
sq($s, 'UPDATE items SET v = 20 WHERE id = 1');
my $st = '';
for (my $i = 0; $i < 500; $i++)
{
	last if sq($c, 'SELECT v FROM items WHERE id = 1') eq '20';
	usleep(5_000);
}
$st = sq($c, 'SELECT qcache_wal_status()');
my $got = sq($c, $q);
note("cascade status when the UPDATE was seen: $st");
kill 'CONT', $sw;
is($got, '20', 'once the UPDATE is replayed the cascade must not serve the old value');
$c->stop; $s->stop;
done_testing();
