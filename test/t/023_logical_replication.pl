# SPEC 5.1, logical replication: the apply worker fires row triggers only
# (and TRUNCATE's statement triggers).  qcache_watch creates a row trigger
# enabled for replica mode (qcache_watch_replica), so that rows applied on
# a subscriber invalidate the subscriber's entries, for bare watches and
# for templates, and with a two_phase subscription too.  Each check shows
# the value the subscriber serves next to a fresh read there.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = PostgreSQL::Test::Cluster->new('pub');
$pub->init(allows_streaming => 'logical');
$pub->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\nmax_prepared_transactions = 4\n");
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('sub');
$sub->init;
$sub->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\nmax_prepared_transactions = 4\n");
$sub->start;

my $ddl = q{
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE items2 (id int PRIMARY KEY, v int NOT NULL);
};
$pub->safe_psql('postgres', $ddl);
$sub->safe_psql('postgres', $ddl);
$pub->safe_psql('postgres',
	'INSERT INTO items VALUES (1, 10); INSERT INTO items2 VALUES (1, 10);');
$sub->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
SELECT qcache_watch('items');
SELECT qcache_watch('items2', 'item2:{id}');
});

$pub->safe_psql('postgres',
	'CREATE PUBLICATION p1 FOR TABLE items; CREATE PUBLICATION p2 FOR TABLE items2');
my $conn = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION s1 CONNECTION '$conn' PUBLICATION p1");
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION s2 CONNECTION '$conn' PUBLICATION p2 WITH (two_phase = true)");
$sub->wait_for_subscription_sync($pub, 's1');
$sub->wait_for_subscription_sync($pub, 's2');
$sub->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM pg_subscription WHERE subtwophasestate IN ('e', 'd')})
  or die 'two_phase not enabled';

sub served
{
	my ($tbl) = @_;
	my $q = "SELECT coalesce(sum(v), 0) AS s FROM $tbl";
	return $sub->safe_psql('postgres',
		"SELECT qcache_fetch('k:$tbl', '$q', 0)->0->>'s', ($q)");
}
sub step
{
	my ($sql, $name) = @_;
	served('items');
	served('items2');
	$pub->safe_psql('postgres', $sql);
	$pub->wait_for_catchup('s1');
	$pub->wait_for_catchup('s2');
	my ($a, $b) = (served('items'), served('items2'));
	my ($fa) = $a =~ /\|(.*)$/;
	my ($fb) = $b =~ /\|(.*)$/;
	is($a, "$fa|$fa", "$name: bare watch, the subscriber serves its fresh rows");
	is($b, "$fb|$fb", "$name: templated watch, the subscriber serves its fresh rows");
}

is(served('items'), '10|10', 'replicated initial data, cached');
step('INSERT INTO items VALUES (2, 20); INSERT INTO items2 VALUES (2, 20)', 'INSERT');
is(served('items'), '30|30', 'INSERT: the sum is 30');
step('UPDATE items SET v = v + 1; UPDATE items2 SET v = v + 1', 'UPDATE');
is(served('items2'), '32|32', 'UPDATE: the sum is 32');
step('DELETE FROM items WHERE id = 1; DELETE FROM items2 WHERE id = 1', 'DELETE');
step('TRUNCATE items, items2', 'TRUNCATE');
is(served('items'), '0|0', 'TRUNCATE: empty');

# two_phase: PREPARE on the publisher is applied as a prepared transaction
# on the subscriber (which must accept PREPARE after the watched write),
# and COMMIT PREPARED invalidates there.
$pub->safe_psql('postgres', 'INSERT INTO items2 VALUES (5, 50)');
$pub->wait_for_catchup('s2');
is(served('items2'), '50|50', 'two_phase: cached');
$pub->safe_psql('postgres',
	"BEGIN; UPDATE items2 SET v = 51; PREPARE TRANSACTION 'tp1';");
$pub->wait_for_catchup('s2');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
	'1', 'two_phase: the subscriber prepared the transaction');
is(served('items2'), '50|50', 'two_phase: while prepared, the old rows');
$sub->safe_psql('postgres', q{SELECT qcache_set('t5', '1', 0, ARRAY['item2:5'])});
$pub->safe_psql('postgres', "COMMIT PREPARED 'tp1'");
$pub->wait_for_catchup('s2');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
	'0', 'two_phase: committed on the subscriber');
is(served('items2'), '51|51', 'two_phase: after COMMIT PREPARED the subscriber serves the new rows');
is($sub->safe_psql('postgres', q{SELECT qcache_get('t5') IS NULL}),
	't', 'two_phase: the template tag is invalidated');

$sub->stop;
$pub->stop;
done_testing();
