# SPEC 12, hot standbys: with qcache.wal_invalidation on the primary, a
# streaming standby (and a standby of that standby) stores qcache_fetch
# results and values with tags, and once it has replayed a commit that
# invalidated a tag, no session on it reads a value computed without that
# commit.  walinval.c carries the primary's commit protocol in the WAL:
# MARK before the commit record, STAMP after it, explicit invalidations,
# and a STATE record after each checkpoint.
#
# Cases: a hit on the second fetch and a recomputation after a replayed
# UPDATE; tagged sets, explicit invalidations (tag, key, prefix, clear) and
# a prepared transaction; replay held between MARK and STAMP (a debug delay
# before STAMP, and pg_wal_replay_pause); a standby restart (it waits for
# the next STATE); a cascade; the setting turned off; a primary crash
# between the records, then the promotion of the standby.  Then a
# randomized checker: writers on the primary, readers on the standby
# comparing each cached value with the table under the same snapshot.
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

my $primary = QcStandby::primary('wal_primary',
	"qcache.wal_invalidation = on\n"
	  . "max_prepared_transactions = 10\n"
	  . "max_connections = 40\n");

sub sq { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }

sq($primary, q{
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items SELECT g, g * 10 FROM generate_series(1, 20) g;
SELECT qcache_watch('items', 'item:{id}');
CREATE TABLE other (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO other VALUES (1, 1);
SELECT qcache_watch('other');
});
is(sq($primary, 'SELECT qcache_wal_status()'), 'writing',
	'the primary writes its invalidations to the WAL');

my $standby = QcStandby::standby($primary, 'wal_standby',
	"max_prepared_transactions = 10\n");

# Wait until a standby hears the primary: a checkpoint makes the primary's
# sweeper write a STATE record within a second.
sub wait_hearing
{
	my ($node) = @_;
	for (my $i = 0; $i < 300; $i++)
	{
		sq($primary, 'CHECKPOINT') if $i % 20 == 0;
		$primary->wait_for_catchup($node, 'replay', $primary->lsn('insert'))
		  if $node->name eq 'wal_standby';
		return 1 if sq($node, 'SELECT qcache_wal_status()') eq 'hearing';
		usleep(100_000);
	}
	return 0;
}
ok(wait_hearing($standby), 'the standby hears the primary');

# Call served until the value is a hit (at most 4 calls); every answer
# must hold the expected row.  The transaction that lets the reaper stamp
# a replayed commit cannot store what it computed (its start is older than
# the stamp); the next one can.
sub cached_soon
{
	my ($node, $v) = @_;
	my $last = '';
	for (my $i = 0; $i < 4; $i++)
	{
		$last = served($node);
		return "wrong: $last" unless $last =~ /^$v\|$v\|/;
		return 'cached' if $last =~ /cached$/;
	}
	return "never cached: $last";
}

sub catchup { $primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert')); }

# served: the fetched value, the table's value, and whether the cache served it
# (now() in the query is the computing transaction's start).
my $fq = q{SELECT v, now() AS xt FROM items WHERE id = 1};
sub served
{
	my ($node) = @_;
	return sq($node,
		"SELECT f->0->>'v', (SELECT v FROM items WHERE id = 1), "
		  . "CASE WHEN (f->0->>'xt')::timestamptz = now() THEN 'computed' ELSE 'cached' END "
		  . "FROM qcache_fetch('one', '$fq', 0) f");
}

# ---------- 1. fetch: cached, and recomputed after a replayed UPDATE ----------
is(served($standby), '10|10|computed', 'the first fetch on the standby computes');
is(served($standby), '10|10|cached', 'the second fetch on the standby is a hit');
sq($primary, 'UPDATE items SET v = 11 WHERE id = 1');
catchup();
is(served($standby), '11|11|computed',
	'after the UPDATE is replayed, the standby recomputes and returns the new row');
is(served($standby), '11|11|cached', 'and caches it again');

# an UPDATE of another table does not touch it
sq($primary, 'UPDATE other SET v = v + 1');
catchup();
is(served($standby), '11|11|cached', 'an UPDATE of another table leaves it cached');

# ---------- 1b. the same privilege rules on the standby ----------
sq($primary, q{
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
GRANT SELECT ON items TO alice;
SELECT qcache_grant_reader('alice'); SELECT qcache_grant_reader('bob');
});
catchup();
my $aq = q{SELECT qcache_fetch('priv', 'SELECT sum(v) AS s FROM items', 0)->0->>'s'};
my $sum = sq($standby, 'SELECT sum(v) FROM items');
is($standby->safe_psql('postgres', "SET ROLE alice; $aq"), $sum, 'alice fetches on the standby');
is($standby->safe_psql('postgres', "SET ROLE alice; $aq"), $sum, 'alice hits on the standby');
my ($rc, $out, $err) = $standby->psql('postgres', "SET ROLE bob; $aq");
isnt($rc, 0, 'bob, without SELECT on items, is not served alice\'s cached result on the standby');
like($err, qr/permission denied for table items/, 'he gets his own error, from running the query');
is($out, '', 'and no rows');

# ---------- 2. tagged sets and explicit invalidations ----------
is(sq($standby, q{SELECT qcache_set('t:1', '"a"', 0, ARRAY['item:1'])}), 't',
	'the standby stores a value with tags');
is(sq($standby, q{SELECT qcache_get('t:1')}), '"a"', 'and serves it');
sq($primary, 'UPDATE items SET v = 12 WHERE id = 1');
catchup();
is(sq($standby, q{SELECT qcache_get('t:1') IS NULL}), 't',
	'a replayed UPDATE of row 1 kills the value tagged item:1');

sq($standby, q{SELECT qcache_set('t:2', '"b"', 0, ARRAY['item:2', 'hand'])});
sq($standby, q{SELECT qcache_set('k:1', '"c"', 0)});
sq($standby, q{SELECT qcache_set('ns:1', '"d"', 0)});
sq($standby, q{SELECT qcache_set('ns:2', '"e"', 0)});
sq($standby, q{SELECT qcache_set('keep', '"f"', 0, ARRAY['item:3'])});
sq($primary, q{SELECT qcache_invalidate_tag('hand')});
catchup();
is(sq($standby, q{SELECT qcache_get('t:2') IS NULL}), 't',
	'qcache_invalidate_tag on the primary reaches the standby');
is(sq($standby, q{SELECT qcache_get('keep')}), '"f"', 'other tags are untouched');
sq($primary, q{SELECT qcache_invalidate('k:1')});
sq($primary, q{SELECT qcache_invalidate_prefix('ns:')});
catchup();
is(sq($standby, q{SELECT qcache_get('k:1') IS NULL}), 't',
	'qcache_invalidate(key) on the primary reaches the standby');
is(sq($standby, q{SELECT count(*) FROM (VALUES ('ns:1'), ('ns:2')) k(k) WHERE qcache_get(k) IS NOT NULL}),
	'0', 'qcache_invalidate_prefix on the primary reaches the standby');
sq($primary, q{SELECT qcache_clear()});
catchup();
is(sq($standby, q{SELECT qcache_get('keep') IS NULL}), 't',
	'qcache_clear on the primary reaches the standby');

# ---------- 3. a prepared transaction ----------
is(served($standby), '12|12|computed', 'recomputed after the clear');
sq($primary, q{BEGIN; UPDATE items SET v = 13 WHERE id = 1; PREPARE TRANSACTION 'p1'});
catchup();
is(served($standby), '12|12|computed',
	'while a prepared transaction with the tag is pending, the standby serves nothing cached');
is(sq($standby, q{SELECT qcache_set('t:p', '"p"', 0, ARRAY['item:1'])}), 'f',
	'nor stores a value with its tag');
sq($primary, q{COMMIT PREPARED 'p1'});
catchup();
# the STAMP of a prepared transaction comes from the reaper: wait for it
my $got;
for (my $i = 0; $i < 50; $i++)
{
	$got = served($standby);
	last if $got eq '13|13|cached';
	usleep(100_000);
}
is($got, '13|13|cached', 'after COMMIT PREPARED the standby sees the new row, then caches it');

# ---------- 4. replay held between MARK and the commit record ----------
# recovery_min_apply_delay holds the replay of commit records only: the
# MARK before one is replayed, the commit waits.  Then replay is paused.
sq($standby, q{ALTER SYSTEM SET recovery_min_apply_delay = '5s'});
sq($standby, q{SELECT pg_reload_conf()});
is(served($standby), '13|13|cached', 'cached before the write');
sq($standby, q{SELECT qcache_set('keep2', '"k"', 0)});
sq($primary, 'UPDATE items SET v = 14 WHERE id = 1');
for (my $i = 0; $i < 60; $i++)
{
	$got = served($standby);
	last if $got ne '13|13|cached';
	usleep(50_000);
}
is($got, '13|13|computed',
	'once the MARK is replayed and the commit is not, the entry is not served');
sq($standby, 'SELECT pg_wal_replay_pause()');
my $t0 = time;
is(served($standby), '13|13|computed', 'with replay paused there, nothing with the tag is served');
is(sq($standby, q{SELECT qcache_set('t:m', '"m"', 0, ARRAY['item:1'])}), 'f',
	'nor stored');
is(sq($standby, q{SELECT qcache_get('keep2')}), '"k"', 'other keys still answer');
cmp_ok(time - $t0, '<', 5, 'and nothing hangs');
sq($standby, 'SELECT pg_wal_replay_resume()');
sq($standby, q{ALTER SYSTEM RESET recovery_min_apply_delay});
sq($standby, q{SELECT pg_reload_conf()});
catchup();
is(served($standby), '14|14|computed', 'after the commit, the first fetch computes the new row');
is(served($standby), '14|14|cached', 'and the next is a hit');

# Between the commit and its STAMP (held back on the primary), a session
# that meets the tag in flight lets the reaper stamp the replayed commit:
# the new row is served and cached at once, the old one never.
sq($primary, q{ALTER SYSTEM SET qcache.debug_wal_stamp_delay = 4000});
sq($primary, q{SELECT pg_reload_conf()});
my ($w_out, $w_err) = ('', '');
my $w = IPC::Run::start(
	[ 'psql', '-X', '-d', $primary->connstr('postgres'), '-c',
	  'UPDATE items SET v = 15 WHERE id = 1' ],
	'>', \$w_out, '2>', \$w_err);
for (my $i = 0; $i < 60; $i++)
{
	last if sq($standby, 'SELECT v FROM items WHERE id = 1') eq '15';
	usleep(50_000);
}
is(served($standby), '15|15|computed', 'before the STAMP arrives, the replayed commit is seen');
is(cached_soon($standby, 15), 'cached', 'and the new row is cached');
$w->finish;
sq($primary, q{ALTER SYSTEM RESET qcache.debug_wal_stamp_delay});
sq($primary, q{SELECT pg_reload_conf()});
catchup();

# ---------- 5. a cascade ----------
my $cascade = QcStandby::standby($standby, 'wal_cascade');
my $ok = QcStandby::wait_wal_status($primary, $cascade, 'hearing');
ok($ok, 'the cascaded standby hears the primary');
is(served($cascade), '15|15|computed', 'the cascaded standby computes');
is(served($cascade), '15|15|cached', 'and caches');
sq($primary, 'UPDATE items SET v = 151 WHERE id = 1');
catchup();
$standby->wait_for_catchup($cascade, 'replay', $standby->lsn('replay'));
is(served($cascade), '151|151|computed', 'an UPDATE replayed on the cascade is seen there');
$cascade->stop;

# ---------- 6. a standby restart past a MARK whose commit is still to come ----------
# A prepared transaction writes its MARK at PREPARE.  A checkpoint after it
# is where the restarted standby resumes replay, past that MARK; the STATE
# record the primary writes after the checkpoint lists the prepared
# transaction, and that is how the standby knows its tags are in flight.
sq($standby, q{SELECT qcache_set('before:restart', '"x"', 0)});
sq($primary, q{BEGIN; UPDATE items SET v = 16 WHERE id = 1; PREPARE TRANSACTION 'p2'});
my $redo_before = sq($primary, 'SELECT redo_lsn FROM pg_control_checkpoint()');
sq($primary, 'CHECKPOINT');
sleep(2);    # the sweeper writes STATE after the checkpoint
catchup();
$standby->restart;
cmp_ok(sq($standby, 'SELECT redo_lsn FROM pg_control_checkpoint()'), 'ne', $redo_before,
	'the restarted standby resumed replay at the checkpoint after the PREPARE');
is(sq($standby, q{SELECT qcache_get('before:restart') IS NULL}), 't',
	'a restarted standby starts with an empty cache');
ok(wait_hearing($standby), 'it hears the primary again (the STATE after its restart point)');
is(served($standby), '151|151|computed', 'the prepared transaction\'s tags are in flight: computed');
is(served($standby), '151|151|computed', 'and not stored');
sq($primary, q{COMMIT PREPARED 'p2'});
catchup();
for (my $i = 0; $i < 50; $i++)
{
	$got = served($standby);
	last if $got eq '16|16|cached';
	usleep(100_000);
}
is($got, '16|16|cached', 'after COMMIT PREPARED the restarted standby serves the new row, then caches it');

# ---------- 7. the randomized checker ----------
sq($primary, q{
CREATE FUNCTION r_read(p_id int, what int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	ref int;
	v jsonb;
	bad boolean;
BEGIN
	SELECT items.v INTO ref FROM items WHERE id = p_id;
	IF what = 1 THEN
		v := qcache_fetch('row:' || p_id,
			'SELECT v, now() AS xt FROM items WHERE id = $1', 0,
			params => ARRAY[p_id::text])->0;
	ELSIF what = 2 THEN
		v := qcache_fetch('sum', 'SELECT sum(v) AS v, now() AS xt FROM items', 0)->0;
		SELECT sum(items.v) INTO ref FROM items;
	ELSE
		v := qcache_get('set:' || p_id);
		IF v IS NULL THEN
			v := jsonb_build_object('v', ref, 'xt', now());
			PERFORM qcache_set('set:' || p_id, v, 0, ARRAY['item:' || p_id]);
		END IF;
	END IF;
	-- the same snapshot (REPEATABLE READ): the value must be the table's,
	-- or one from a newer snapshot (greater: v only grows)
	bad := (v->>'v')::int < ref;
	IF bad THEN
		RAISE LOG 'qcache standby violation: what % id %: read %, table %', what, p_id, v, ref;
		RETURN 1;
	END IF;
	RETURN 0;
END $$;
});
catchup();
sq($standby, 'SELECT qcache_reset_stats()');
my $dir = $primary->basedir;
append_to_file("$dir/w.sql", q{\set id random(1, 20)
UPDATE items SET v = v + 1 WHERE id = :id;
});
append_to_file("$dir/r.sql", q{\set id random(1, 20)
\set what random(1, 3)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT r_read(:id, :what);
COMMIT;
});
my $duration = 10;
sub pgbench
{
	my ($node, @args) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[ 'pgbench', '-n', '-j', 1, '-T', $duration, @args,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$run{out}, '2>', \$run{err}, IPC::Run::timeout($duration + 120));
	return \%run;
}
my $pw = pgbench($primary, '-c', 2, '-R', 20, '-f', "$dir/w.sql");
my $pr = pgbench($standby, '-c', 4, '-f', "$dir/r.sql");
foreach my $p ([ 'writers', $pw ], [ 'readers', $pr ])
{
	$p->[1]{h}->finish;
	is($p->[1]{h}->result(0), 0, "$p->[0]: pgbench exits with status 0");
	unlike($p->[1]{err}, qr/aborted|ERROR/, "$p->[0]: no error");
	my ($tx) = $p->[1]{out} =~ /number of transactions actually processed: (\d+)/;
	cmp_ok($tx // 0, '>', 100, "$p->[0]: transactions were processed");
	note("$p->[0]: $tx transactions");
}
my $log = slurp_file($standby->logfile);
my $violations = () = $log =~ /qcache standby violation/g;
is($violations, 0, 'no stale value was read on the standby');
my ($hits, $misses) = split /\|/, sq($standby, 'SELECT hits, misses FROM qcache_stats');
note("standby: $hits hits, $misses misses");
cmp_ok($hits / ($hits + $misses), '>', 0.5, 'the standby serves more than half of its reads from the cache');
# every cached value equals the table now
catchup();
is(sq($standby, q{SELECT count(*) FROM generate_series(1, 20) g
	WHERE qcache_get('set:' || g) IS NOT NULL
	  AND (qcache_get('set:' || g)->>'v')::int <> (SELECT v FROM items WHERE id = g)}),
	'0', 'after the run, every value cached on the standby equals the table');

# ---------- 8. the setting turned off ----------
is(sq($standby, q{SELECT qcache_set('t:off', '"o"', 0, ARRAY['item:9'])}), 't',
	'a tagged value stored while the primary writes invalidations');
$primary->append_conf('postgresql.conf', "qcache.wal_invalidation = off\n");
$primary->restart;
is(sq($primary, 'SELECT qcache_wal_status()'), 'off', 'the primary restarted with the setting off');
$ok = 0;
for (my $i = 0; $i < 100 && !$ok; $i++)
{
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
	$ok = sq($standby, 'SELECT qcache_wal_status()') eq 'waiting';
	usleep(100_000) unless $ok;
}
ok($ok, 'the standby hears that the primary stopped');
is(sq($standby, q{SELECT qcache_get('t:off') IS NULL}), 't',
	'what the standby stored itself is no longer served');
is(sq($standby, q{SELECT qcache_set('t:off', '"o"', 0, ARRAY['item:9'])}), 'f',
	'and it stores no value with tags');
is(served($standby) =~ /computed$/ ? 1 : 0, 1, 'nor a fetch result');
$primary->append_conf('postgresql.conf', "qcache.wal_invalidation = on\n");
$primary->restart;
ok(wait_hearing($standby), 'on again: the standby hears the primary');

# ---------- 9. a primary crash between MARK and STAMP, then promotion ----------
is(served($standby) =~ /^(\d+)\|\1\|/ ? 1 : 0, 1, 'the standby serves the current row');
served($standby);
sq($primary, q{ALTER SYSTEM SET qcache.debug_wal_stamp_delay = 30000});
sq($primary, q{SELECT pg_reload_conf()});
my $before = sq($primary, 'SELECT v FROM items WHERE id = 1');
is(served($standby), "$before|$before|cached", 'cached before the crash');
$w = IPC::Run::start(
	[ 'psql', '-X', '-d', $primary->connstr('postgres'), '-c',
	  'UPDATE items SET v = v + 100 WHERE id = 1' ],
	'>', \$w_out, '2>', \$w_err);
my $after = $before + 100;
for (my $i = 0; $i < 100; $i++)
{
	last if sq($standby, 'SELECT v FROM items WHERE id = 1') eq $after;
	usleep(50_000);
}
is(sq($standby, 'SELECT v FROM items WHERE id = 1'), $after, 'the commit is replayed');
$primary->stop('immediate');
$w->finish;
is(served($standby), "$after|$after|computed", 'with the primary gone before its STAMP, the old entry is not served');
is(cached_soon($standby, $after), 'cached', 'and the new row is cached: nothing stuck in flight');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
like(served($standby), qr/^$after\|$after\|/, 'after promotion the fetch returns the current row');
is(served($standby), "$after|$after|cached", 'and it is a hit');
sq($standby, 'UPDATE items SET v = v + 1 WHERE id = 1');
is(served($standby), ($after + 1) . '|' . ($after + 1) . '|computed',
	'the promoted standby invalidates on its own writes');

$standby->stop;
done_testing();
