# SPEC 12 across a promotion: a standby made before the primary turned
# qcache.wal_invalidation on (no pg_qcache/wal_invalidation in its data
# directory), with the setting off in its own postgresql.conf, is promoted.
# Its cascade heard the old primary and stores.  Replaying STATE(on) made
# the standby keep the file, so once promoted with the setting off it
# writes STATE(off) before its first invalidation: the cascade stops
# storing and serves nothing stale.  (Found by review: without the file the
# cascade served a stale fetch result indefinitely.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use QcStandby;
use Time::HiRes qw(usleep);

my $p = QcStandby::primary('p', '');
sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }
sq($p, q{CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items VALUES (1, 10);
SELECT qcache_watch('items');});

# the standby is made while the setting is still off on the primary
my $s = QcStandby::standby($p, 's');

# now the operator turns it on, on the primary only ("the primary's choice")
$p->append_conf('postgresql.conf', "qcache.wal_invalidation = on\n");
$p->restart;
my $c = QcStandby::standby($s, 'c');

my $ok = QcStandby::wait_wal_status($p, $c, 'hearing');
ok($ok, 'the cascade hears the primary');

my $q = q{SELECT f->0->>'v' FROM qcache_fetch('one', 'SELECT v FROM items WHERE id = 1', 0) f};
is(sq($c, $q), '10', 'cascade computes');
is(sq($c, $q), '10', 'cascade caches');

# failover: the standby becomes the primary (its own conf has the setting off)
$p->stop('fast');
$s->promote;
$s->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
sleep(3);    # the promoted node's sweeper has ticked
sq($s, 'UPDATE items SET v = 20 WHERE id = 1');
my $lsn = sq($s, 'SELECT pg_current_wal_lsn()');
$c->poll_query_until('postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'");
is(sq($c, 'SELECT v FROM items WHERE id = 1'), '20', 'cascade replayed the UPDATE');
is(sq($c, $q), '20', 'cascade must not serve the value computed before the UPDATE');
note('cascade status: ' . sq($c, 'SELECT qcache_wal_status()'));
$c->stop; $s->stop;
done_testing();
