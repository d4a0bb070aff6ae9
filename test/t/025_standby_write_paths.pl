# SPEC 12 over the write paths of SPEC 5.1, on a standby: privileges,
# subtransactions (an xid assigned only in a savepoint, ROLLBACK TO),
# more than 64 tags in one transaction (collapsed to the wildcard),
# synchronous_commit=off, exception blocks, CREATE OR REPLACE FUNCTION and
# VIEW, TRUNCATE, two-phase commit, and logical decoding on the primary
# with the records in the WAL; and WAL bytes per watched UPDATE.
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
	"qcache.wal_invalidation = on\nmax_prepared_transactions = 5\n", 'logical');
sub sq { my ($n, $sql, $db) = @_; return $n->safe_psql($db // 'postgres', $sql); }
sq($p, q{CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items SELECT g, g FROM generate_series(1, 200) g;
SELECT qcache_watch('items', 'item:{id}');
CREATE TABLE src (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO src VALUES (1, 1);
CREATE FUNCTION f1() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1';
CREATE VIEW vw AS SELECT id, v FROM items WHERE id <= 3;
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
GRANT SELECT ON items TO alice;
GRANT EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer) TO alice, bob;
});
my $s = QcStandby::standby($p, 's');
my $ok = QcStandby::wait_wal_status($p, $s, 'hearing');
ok($ok, 'hearing');
sub catchup { $p->wait_for_catchup($s, 'replay', $p->lsn('insert')); }

# fetch and report value + computed/cached
sub served
{
	my ($key, $q, $role) = @_;
	my $pre = $role ? "SET ROLE $role; " : '';
	my $qq = $q; $qq =~ s/'/''/g;
	return sq($s, $pre . "SELECT f->0->>'x', CASE WHEN (f->0->>'xt')::timestamptz = now() THEN 'computed' ELSE 'cached' END FROM qcache_fetch('$key', '$qq', 0) f");
}
sub check
{
	my ($name, $key, $q, $write, $expect) = @_;
	served($key, $q); my $c = served($key, $q);
	like($c, qr/cached$/, "$name: cached before");
	sq($p, $write); catchup();
	my $got = served($key, $q);
	is($got, "$expect|computed", "$name: recomputed after replay");
}
my $q1 = 'SELECT v AS x, now() AS xt FROM items WHERE id = 1';
check('subxact-only xid', 'k1', $q1,
	'BEGIN; SAVEPOINT a; UPDATE items SET v = 2 WHERE id = 1; RELEASE a; COMMIT', '2');
check('savepoint rolled back then write', 'k1', $q1,
	'BEGIN; SAVEPOINT a; UPDATE items SET v = 99 WHERE id = 1; ROLLBACK TO a; UPDATE items SET v = 3 WHERE id = 1; COMMIT', '3');
check('>64 tags (wildcard)', 'k1', $q1,
	'UPDATE items SET v = v + 1 WHERE id <= 100', '4');
check('synchronous_commit off', 'k1', $q1,
	'SET synchronous_commit = off; UPDATE items SET v = 5 WHERE id = 1', '5');
check('plpgsql exception block', 'k1', $q1,
	q{DO $$BEGIN BEGIN UPDATE items SET v = 6 WHERE id = 1; END; END$$}, '6');
my $qf = 'SELECT f1() AS x, now() AS xt FROM items WHERE id = 1';
check('CREATE OR REPLACE FUNCTION', 'kf', $qf,
	q{CREATE OR REPLACE FUNCTION f1() RETURNS int LANGUAGE sql STABLE AS 'SELECT 7'}, '7');
my $qv = 'SELECT count(*) AS x, now() AS xt FROM vw';
check('CREATE OR REPLACE VIEW', 'kv', $qv,
	'CREATE OR REPLACE VIEW vw AS SELECT id, v FROM items WHERE id <= 5', '5');
my $qa = 'SELECT count(*) AS x, now() AS xt FROM items';
check('TRUNCATE', 'ka', $qa, 'CREATE TABLE keep AS SELECT * FROM items; TRUNCATE items', '0');
sq($p, 'INSERT INTO items SELECT * FROM keep');
catchup();
check('2PC', 'ka', $qa, q{BEGIN; DELETE FROM items WHERE id = 200; PREPARE TRANSACTION 'x'; COMMIT PREPARED 'x'}, '199');

# privileges on the standby: alice may read items, bob may not
my $qp = 'SELECT sum(v) AS x, now() AS xt FROM items';
served('kp', $qp, 'alice'); like(served('kp', $qp, 'alice'), qr/cached$/, 'alice cached');
my ($ret, $out, $err) = $s->psql('postgres', "SET ROLE bob; SELECT qcache_fetch('kp', 'SELECT sum(v) AS x, now() AS xt FROM items', 0)");
isnt($ret, 0, 'bob (no SELECT) gets no hit on the standby');
note("bob: $out $err");

# logical decoding on the primary still works with qcache records
sq($p, q{SELECT pg_create_logical_replication_slot('ld', 'test_decoding')});
sq($p, 'UPDATE items SET v = v + 1 WHERE id = 2');
($ret, $out, $err) = $p->psql('postgres', q{SELECT count(*) FROM pg_logical_slot_get_changes('ld', NULL, NULL)});
is($ret, 0, "logical decoding works: $out $err");
sq($p, q{SELECT pg_drop_replication_slot('ld')});

# A writer that aborts after its MARK: a SERIALIZABLE transaction that
# fails at COMMIT (PreCommit_CheckForSerializationFailure runs after the
# PRE_COMMIT callbacks).  The standby replays its MARK and its abort; the
# reaper must stamp and unmark it, so the tags do not stay in flight.
sq($p, 'CREATE EXTENSION pg_walinspect');
catchup();
my $qs = 'SELECT v AS x, now() AS xt FROM items WHERE id = 151';
served('k151', $qs);
like(served('k151', $qs), qr/cached$/, 'serialization failure: cached before');
my $v151 = sq($p, 'SELECT v FROM items WHERE id = 151');
my $lsn0 = sq($p, 'SELECT pg_current_wal_insert_lsn()');
my $ba = $p->background_psql('postgres', on_error_stop => 0);
my $bb = $p->background_psql('postgres', on_error_stop => 0);
$ba->query_safe('BEGIN ISOLATION LEVEL SERIALIZABLE');
$ba->query_safe('SELECT sum(v) FROM items WHERE id IN (150, 151)');
$ba->query_safe('UPDATE items SET v = v + 1 WHERE id = 150');
$bb->query_safe('BEGIN ISOLATION LEVEL SERIALIZABLE');
$bb->query_safe('SELECT sum(v) FROM items WHERE id IN (150, 151)');
$bb->query_safe('UPDATE items SET v = v + 1 WHERE id = 151');
my $bxid = $bb->query_safe('SELECT txid_current()');
$ba->query_safe('COMMIT');
$bb->query('COMMIT');
like($bb->{stderr}, qr/could not serialize access.*during commit attempt/s,
	'the second writer fails at COMMIT');
$ba->quit; $bb->quit;
# a commit that wrote WAL flushes everything before it
sq($p, 'INSERT INTO src VALUES (1000, 0)');
note(sq($p, qq{SELECT string_agg(resource_manager || '/' || record_type || '/' || xid, ' ') FROM pg_get_wal_records_info('$lsn0', pg_current_wal_flush_lsn())}));
is(sq($p, qq{SELECT count(*) FROM pg_get_wal_records_info('$lsn0', pg_current_wal_flush_lsn())
	WHERE resource_manager = 'qcache' AND record_type = 'MARK' AND xid = '$bxid'}), '1',
	'the failed writer wrote its MARK before it aborted');
catchup();
my $got = '';
for (my $i = 0; $i < 4; $i++)
{
	$got = served('k151', $qs);
	last if $got =~ /cached$/;
}
is($got, "$v151|cached", 'on the standby the aborted writer\'s tag is not left in flight; the row is unchanged');

# WAL bytes per watched single-row UPDATE with the setting on
my $l0 = sq($p, 'SELECT pg_current_wal_insert_lsn()');
sq($p, q{DO $$BEGIN FOR i IN 1..1 LOOP END LOOP; END$$});
$p->pgbench('-n -t 1000 -c 1', 0, [qr/./], [qr/^$/], 'upd',
	{ 'u.sql' => "UPDATE items SET v = v + 1 WHERE id = 3;\n" });
my $l1 = sq($p, 'SELECT pg_current_wal_insert_lsn()');
note('WAL bytes per UPDATE (on): ' . sq($p, "SELECT (pg_wal_lsn_diff('$l1', '$l0') / 1000)::int"));

$s->stop; $p->stop;
done_testing();
