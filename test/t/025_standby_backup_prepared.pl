# SPEC 12 with two-phase commit: a standby made from a base backup taken
# while tagged transactions are prepared learns their tags from the
# primary's STATE record (they stay in flight until COMMIT PREPARED is
# replayed); then its promotion with a transaction still prepared, a restart
# of the promoted node, and COMMIT PREPARED there: seen at once, then cached.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use QcStandby;
use Time::HiRes qw(usleep);

my $p = QcStandby::primary('p',
	"qcache.wal_invalidation = on\nmax_prepared_transactions = 5\n");
sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }
sq($p, q{CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items VALUES (1, 10), (2, 20);
SELECT qcache_watch('items', 'item:{id}');});
sq($p, q{BEGIN; UPDATE items SET v = 11 WHERE id = 1; PREPARE TRANSACTION 'a'});
sq($p, q{BEGIN; UPDATE items SET v = 21 WHERE id = 2; PREPARE TRANSACTION 'b'});
my $s = QcStandby::standby($p, 's', "max_prepared_transactions = 5\n");
my $ok = QcStandby::wait_wal_status($p, $s, 'hearing');
ok($ok, 'hearing');
sub served
{
	my ($n, $id) = @_;
	return sq($n, "SELECT f->0->>'v', CASE WHEN (f->0->>'xt')::timestamptz = now() THEN 'computed' ELSE 'cached' END FROM qcache_fetch('k$id', 'SELECT v, now() AS xt FROM items WHERE id = $id', 0) f");
}
served($s, 1);
is(served($s, 1), '10|computed', 'prepared a: its tag in flight on the standby (from STATE)');
sq($p, q{COMMIT PREPARED 'a'});
$p->wait_for_catchup($s, 'replay', $p->lsn('insert'));
my $got;
$got = served($s, 1);
is($got, '11|computed', 'after COMMIT PREPARED a: new row (b, still prepared, keeps the table tag in flight)');
# b still prepared; promote
$p->stop('fast');
$s->promote;
$s->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
served($s, 2);
my $c = served($s, 2);
note("promoted, b pending: $c");
$s->restart;
served($s, 2);
$c = served($s, 2);
is($c, '20|computed', 'after restart of the promoted node, b (from its file) is in flight');
sq($s, q{COMMIT PREPARED 'b'});
is(served($s, 2), '21|computed', 'COMMIT PREPARED b on the promoted node: new row');
for (1 .. 30) { $got = served($s, 2); last if $got eq '21|cached'; usleep(100_000); }
is($got, '21|cached', 'then cached (nothing stuck)');
$s->stop;
done_testing();
