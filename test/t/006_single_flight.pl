# Single flight for qcache_fetch (SPEC 5, flight.c): concurrent fetches of
# one missing key run the query once, the others wait on a condition
# variable for at most qcache.fetch_wait_timeout, then run it themselves.
#
# 1. Eight sessions fetch one missing key whose query takes 0.5 s and
#    returns clock_timestamp(): all eight get the same value, one value is
#    stored (a fetch query cannot write, so qcache_stats.sets counts the
#    computations), the wall time stays well under 8 x 0.5 s, and seven
#    fetches waited (qcache_stats.fetch_waits).
# 2. The computing session is cancelled, fails with an error, or is
#    terminated, while seven others wait with fetch_wait_timeout = 60s: the
#    waiters are woken by the release (not by the timeout), compute for
#    themselves and return promptly; afterwards single flight works again
#    on the same key.
# 3. A waiter is cancelled (pg_cancel_backend, statement_timeout) or
#    terminated: it fails with the cancel at once, the other waiters keep
#    waiting and get the leader's value, and the key works normally
#    afterwards, single flight included.
# 4. The bounded wait: with fetch_wait_timeout = 200ms a waiter gives up
#    on a leader that takes 2 s and runs the query itself.
#
# The sessions are background psql processes connected beforehand; a query
# is sent to several of them at once and each one's completion is timed
# from here.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('flight');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "max_connections = 40\n"
	  . "log_min_messages = warning\n");
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
-- The slow part of the test queries: sleeps t_ctl.sleep seconds (else the
-- t.sleep setting, else 0.2), then fails if t_ctl.fail was on when it
-- started.  The test sets t_ctl before the leader starts, then again for
-- the waiters: one and the same query text, the same settings, nothing
-- that depends on the session (a result that depends on its caller, as
-- this PL/pgSQL one does, is shared only between sessions of the same role
-- and settings, and one that depends on the session is not shared at all:
-- security.c).
CREATE TABLE t_ctl (sleep float8, fail bool);
INSERT INTO t_ctl VALUES (0.2, false);
CREATE FUNCTION t_slow() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	c t_ctl;
BEGIN
	SELECT * INTO c FROM t_ctl;
	PERFORM pg_sleep(coalesce(nullif(current_setting('t.sleep', true), '')::float8,
							  c.sleep));
	IF c.fail THEN
		RAISE EXCEPTION 't_slow fails on purpose';
	END IF;
	RETURN 'done';
END $$;
});

# ---------- asynchronous queries on background sessions ----------

my $nsent = 0;

# Send a query to a background session without waiting for it.
sub send_query
{
	my ($s, $sql) = @_;
	my $banner = 't006 done ' . ++$nsent;

	$s->{t_banner} = $banner;
	$s->{t_done_at} = undef;
	$s->{stdout} = '';
	$s->{stderr} = '';
	$s->{stdin} .= "$sql;\n\\echo '$banner'\n\\warn '$banner'\n";
	$s->{run}->pump_nb;
	return;
}

# Has the session's last query completed?  Records when it was first seen
# complete, and strips the banners.
sub query_done
{
	my ($s) = @_;
	return 1 if defined $s->{t_done_at};
	$s->{run}->pump_nb;
	my $banner = $s->{t_banner};
	if ($s->{stdout} =~ /\Q$banner\E\n/ && $s->{stderr} =~ /\Q$banner\E\n/)
	{
		$s->{t_done_at} = time;
		$s->{stdout} =~ s/\n?\Q$banner\E\n//;
		$s->{stderr} =~ s/\n?\Q$banner\E\n//;
		return 1;
	}
	return 0;
}

# Wait until every session's last query has completed; die after $secs.
sub wait_all
{
	my ($sessions, $secs) = @_;
	my $deadline = time + $secs;
	for (;;)
	{
		my $pending = grep { !query_done($_) } @$sessions;
		return if $pending == 0;
		die "$pending queries still running after $secs s" if time > $deadline;
		usleep(2_000);
	}
}

# Run a query on a session and return its output; die on an error.
sub run_query
{
	my ($s, $sql) = @_;
	send_query($s, $sql);
	wait_all([$s], 60);
	die "query failed: $s->{stderr}\nquery: $sql" if $s->{stderr} ne '';
	return $s->{stdout};
}

my $mon = $node->background_psql('postgres', on_error_stop => 0);

# Poll a query on the monitor session until it returns 't'.
sub wait_until
{
	my ($sql, $secs, $what) = @_;
	my $deadline = time + $secs;
	while (time < $deadline)
	{
		return 1 if run_query($mon, $sql) eq 't';
		usleep(10_000);
	}
	diag("timed out waiting until $what");
	return 0;
}

# Wait until these backends are all sleeping on a condition variable of
# qcache (wait event "Extension"), i.e. waiting for a single flight.
sub wait_waiting
{
	my (@pids) = @_;
	my $list = join(',', @pids);
	return wait_until(
		qq{SELECT count(*) = ${\ scalar(@pids)} FROM pg_stat_activity
		   WHERE pid IN ($list) AND wait_event_type = 'Extension'},
		30, "backends $list wait for the flight");
}

# Wait until a backend sleeps in pg_sleep (computing).
sub wait_sleeping
{
	my ($pid) = @_;
	return wait_until(
		qq{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE pid = $pid AND wait_event = 'PgSleep'},
		30, "backend $pid sleeps in its query");
}

sub stats
{
	my @cols = qw(hits misses sets fetch_waits);
	my %s;
	@s{@cols} = split /\|/,
	  run_query($mon, 'SELECT ' . join(', ', @cols) . ' FROM qcache_stats');
	return \%s;
}

# The values stored so far: each computation that completes stores one.
sub sets
{
	return stats()->{sets};
}

# Set how long the next computations sleep, and whether they fail.
sub ctl
{
	my ($sleep, $fail) = @_;
	$fail = $fail ? 'true' : 'false';
	run_query($mon, "UPDATE t_ctl SET sleep = $sleep, fail = $fail");
	return;
}

my $fetch_b = q{SELECT clock_timestamp()::text AS n, t_slow() AS s};

# The statement a session runs to fetch a key; it prints the value of n,
# the time at which the computing session computed it.
sub fetch_sql
{
	my ($key) = @_;
	return "SELECT qcache_fetch('$key', \$q\$$fetch_b\$q\$)->0->>'n'";
}

my @s = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 8;
my @pid = map { run_query($_, 'SELECT pg_backend_pid()') } @s;

# One round of single flight on $key: $leader computes (sleeping $secs),
# the waiters wait for it; all get the leader's value and one value is
# stored.  Checks that single flight works on a key after a failure.
sub flight_round
{
	my ($key, $secs, $leader, @waiters) = @_;
	my $name = "single flight on '$key' with " . scalar(@waiters) . ' waiters';
	run_query($mon, "SELECT qcache_invalidate('$key')");
	my $before = sets();
	ctl($secs);
	send_query($s[$leader], fetch_sql($key));
	wait_sleeping($pid[$leader]);
	ctl(0.05);
	send_query($s[$_], fetch_sql($key)) for @waiters;
	wait_waiting(map { $pid[$_] } @waiters);
	my $t0 = time;
	wait_all([ map { $s[$_] } $leader, @waiters ], 60);
	my @out = map { $s[$_]->{stdout} } $leader, @waiters;
	my @err = grep { $_ ne '' } map { $s[$_]->{stderr} } $leader, @waiters;
	is(join(',', @err), '', "$name: no errors");
	is(join(',', @out), join(',', ($out[0]) x scalar(@out)),
		"$name: every session gets the leader's value");
	is(sets(), $before + 1, "$name: the query ran once");
	isnt($out[0], '', "$name: the leader computed a value");
	return;
}

# ---------- 1. eight sessions, one computation ----------

run_query($mon, 'SELECT qcache_reset_stats()');
my $q1 = q{SELECT clock_timestamp()::text AS n, pg_sleep(0.5)};
my $t0 = time;
send_query($_, "SELECT qcache_fetch('sf:eight', \$q\$$q1\$q\$)->0->>'n'")
  for @s;
wait_all(\@s, 60);
my $wall = time - $t0;
note(sprintf('8 concurrent fetches took %.3f s (one computation: 0.5 s)',
		$wall));

is(join(',', map { $_->{stderr} } @s), ',' x 7, 'eight fetches: no errors');
is(join(',', map { $_->{stdout} } @s), join(',', ($s[0]->{stdout}) x 8),
	'eight fetches: all get the same value');
like($s[0]->{stdout}, qr/^\d{4}-/, 'eight fetches: a time');
cmp_ok($wall, '<', 2.5, 'eight fetches: wall time well under 8 x 0.5 s');
my $st = stats();
note("stats: hits $st->{hits}, misses $st->{misses}, sets $st->{sets}, "
	  . "fetch_waits $st->{fetch_waits}");
is($st->{fetch_waits}, 7, 'eight fetches: seven waited (fetch_waits)');
is($st->{sets}, 1, 'eight fetches: one value stored');
is($st->{hits}, 7, 'eight fetches: seven hits, after waiting');
is(run_query($s[3], "SELECT qcache_fetch('sf:eight', \$q\$$q1\$q\$)->0->>'n'"),
	$s[0]->{stdout}, 'the key is cached afterwards');

# ---------- 2. the computing session fails ----------

# Waiters that would wait 60 s: a prompt return proves the release woke
# them.
run_query($_, q{SET qcache.fetch_wait_timeout = '60s'}) for @s;

# Leader session 0 computes for 60 s; sessions 1..7 wait; then $how ends
# the leader's computation.  The waiters must return soon after.
sub fail_leader
{
	my ($how) = @_;
	my $key = "sf:$how";
	my @w = (1 .. 7);
	my $before = sets();
	my $waits = stats()->{fetch_waits};

	if ($how eq 'error') { ctl(1, 1); }
	else { ctl(60); }
	send_query($s[0], fetch_sql($key));
	wait_sleeping($pid[0]);
	ctl(0.2);
	send_query($s[$_], fetch_sql($key)) for @w;
	ok(wait_waiting(map { $pid[$_] } @w), "$how: seven sessions wait");
	my $t_end = time;
	if ($how eq 'cancel')
	{
		run_query($mon, "SELECT pg_cancel_backend($pid[0])");
	}
	wait_all([ map { $s[$_] } 0, @w ], 50);
	my $t_leader = $s[0]->{t_done_at} - $t_end;
	my ($slowest) = sort { $b <=> $a } map { $s[$_]->{t_done_at} - $t_end } @w;
	note(sprintf('%s: the leader ended after %.3f s, the last waiter '
			  . 'returned %.3f s later', $how, $t_leader, $slowest - $t_leader));

	like($s[0]->{stderr},
		$how eq 'cancel'
		? qr/canceling statement due to user request/
		: qr/t_slow fails on purpose/,
		"$how: the leader fails with its error");
	is(join(',', grep { $_ ne '' } map { $s[$_]->{stderr} } @w), '',
		"$how: the waiters get no error");
	is(scalar(grep { $s[$_]->{stdout} =~ /^\d{4}-/ } @w), 7,
		"$how: the seven waiters all get a value");
	cmp_ok($slowest - $t_leader, '<', 10,
		"$how: the waiters return promptly once the leader ends, "
		  . 'not after fetch_wait_timeout (60 s)');
	is(stats()->{fetch_waits} - $waits, 7, "$how: seven waits counted");
	my $runs = sets() - $before;
	note("$how: the query ran $runs times");
	cmp_ok($runs, '>=', 2, "$how: the waiters ran the query themselves");

	ctl(0.2);
	flight_round($key, 1, 0, 1, 2, 3);
	return;
}

fail_leader('cancel');
fail_leader('error');

# Terminated: the leader is a psql of its own, which the termination ends.
{
	my $key = 'sf:terminate';
	my @w = (1 .. 7);
	my $waits = stats()->{fetch_waits};
	my ($lout, $lerr) = ('', '');
	my $lh = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq',
			'-d', $node->connstr('postgres'),
			'-c', q{SET application_name = 't006_leader'},
			'-c', q{SET t.sleep = '60'},
			'-c', fetch_sql($key)
		],
		'>', \$lout, '2>', \$lerr,
		IPC::Run::timeout(120));
	ok( wait_until(
			q{SELECT count(*) = 1 FROM pg_stat_activity
			  WHERE application_name = 't006_leader' AND wait_event = 'PgSleep'},
			30, 'the leader computes'),
		'terminate: the leader computes');
	my $lpid = run_query($mon,
		q{SELECT pid FROM pg_stat_activity WHERE application_name = 't006_leader'});
	ctl(0.2);
	send_query($s[$_], fetch_sql($key)) for @w;
	ok(wait_waiting(map { $pid[$_] } @w), 'terminate: seven sessions wait');
	my $t_end = time;
	run_query($mon, "SELECT pg_terminate_backend($lpid)");
	wait_all([ map { $s[$_] } @w ], 50);
	my ($slowest) = sort { $b <=> $a } map { $s[$_]->{t_done_at} - $t_end } @w;
	note(sprintf('terminate: the last waiter returned %.3f s after the '
			  . 'termination', $slowest));
	$lh->finish;
	like($lerr, qr/terminating connection due to administrator command/,
		'terminate: the leader is terminated');
	is(join(',', grep { $_ ne '' } map { $s[$_]->{stderr} } @w), '',
		'terminate: the waiters get no error');
	is(scalar(grep { $s[$_]->{stdout} =~ /^\d{4}-/ } @w), 7,
		'terminate: the seven waiters all get a value');
	cmp_ok($slowest, '<', 10,
		'terminate: the waiters return promptly, not after fetch_wait_timeout');
	is(stats()->{fetch_waits} - $waits, 7, 'terminate: seven waits counted');
	flight_round($key, 1, 0, 1, 2, 3);
}

# ---------- 3. a waiter is cancelled ----------

{
	my $key = 'sf:waiter';
	my $before = sets();
	ctl(5);
	run_query($s[2], q{SET statement_timeout = '2s'});
	send_query($s[0], fetch_sql($key));
	wait_sleeping($pid[0]);
	ctl(0.05);
	# a waiter in a psql of its own, to be terminated
	my ($xout, $xerr) = ('', '');
	my $xh = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq',
			'-d', $node->connstr('postgres'),
			'-c', q{SET application_name = 't006_waiter'},
			'-c', fetch_sql($key)
		],
		'>', \$xout, '2>', \$xerr,
		IPC::Run::timeout(120));
	ok( wait_until(
			q{SELECT count(*) = 1 FROM pg_stat_activity
			  WHERE application_name = 't006_waiter'
			  AND wait_event_type = 'Extension'},
			30, 'the fifth waiter waits'),
		'waiter cancel: a waiter in a psql of its own waits');
	my $xpid = run_query($mon,
		q{SELECT pid FROM pg_stat_activity WHERE application_name = 't006_waiter'});
	send_query($s[$_], fetch_sql($key)) for 1 .. 4;
	ok(wait_waiting(@pid[ 1 .. 4 ], $xpid), 'waiter cancel: five sessions wait');

	my $t_cancel = time;
	run_query($mon, "SELECT pg_cancel_backend($pid[1])");
	wait_all([ $s[1] ], 30);
	like($s[1]->{stderr}, qr/canceling statement due to user request/,
		'waiter cancel: the cancelled waiter fails with the cancel');
	cmp_ok($s[1]->{t_done_at} - $t_cancel, '<', 2,
		'waiter cancel: it fails promptly');
	run_query($mon, "SELECT pg_terminate_backend($xpid)");
	$xh->finish;
	like($xerr, qr/terminating connection due to administrator command/,
		'waiter cancel: a waiter is terminated');
	wait_all([ $s[2] ], 30);
	like($s[2]->{stderr}, qr/canceling statement due to statement timeout/,
		'waiter cancel: a waiter past statement_timeout fails with it');
	ok(!query_done($s[0]), 'waiter cancel: the leader is still computing');
	ok(wait_waiting(@pid[ 3, 4 ]), 'waiter cancel: the other waiters still wait');

	wait_all([ @s[ 0, 3, 4 ] ], 30);
	is(join(',', map { $_->{stderr} } @s[ 0, 3, 4 ]), ',,',
		'waiter cancel: the leader and the other waiters get no error');
	is(join(',', map { $_->{stdout} } @s[ 3, 4 ]),
		join(',', ($s[0]->{stdout}) x 2),
		"waiter cancel: the other waiters get the leader's value");
	is(sets(), $before + 1, 'waiter cancel: the query ran once');

	my $t = time;
	is(run_query($s[1], fetch_sql($key)), $s[0]->{stdout},
		'waiter cancel: the cancelled session fetches the key afterwards');
	cmp_ok(time - $t, '<', 2, 'waiter cancel: at once (a hit)');
	run_query($s[2], 'RESET statement_timeout');
	flight_round($key, 1, 1, 2, 3, 4);
	flight_round($key, 1, 2, 1, 3);
}

# ---------- 4. the bounded wait ----------

{
	my $key = 'sf:bounded';
	my $before = sets();
	my $waits = stats()->{fetch_waits};
	ctl(2);
	run_query($s[1], q{SET qcache.fetch_wait_timeout = '200ms'});
	send_query($s[0], fetch_sql($key));
	wait_sleeping($pid[0]);
	ctl(0.2);
	my $t = time;
	send_query($s[1], fetch_sql($key));
	wait_all([ $s[1] ], 30);
	my $elapsed = $s[1]->{t_done_at} - $t;
	ok(!query_done($s[0]),
		'bounded wait: the waiter returns while the leader still computes');
	wait_all([ $s[0] ], 30);
	note(sprintf('bounded wait: the waiter returned after %.3f s, the leader '
			  . 'after %.3f s', $elapsed, $s[0]->{t_done_at} - $t));
	is($s[1]->{stderr}, '', 'bounded wait: no error');
	cmp_ok($elapsed, '>=', 0.39,
		'bounded wait: the waiter waited 200 ms, then ran its 200 ms query');
	cmp_ok($elapsed, '<', 1.8, 'bounded wait: the waiter did not wait for the leader');
	isnt($s[1]->{stdout}, $s[0]->{stdout},
		'bounded wait: the waiter computed its own value');
	is(sets(), $before + 2, 'bounded wait: the query ran twice');
	is(stats()->{fetch_waits} - $waits, 1, 'bounded wait: one wait counted');
	run_query($s[1], 'RESET qcache.fetch_wait_timeout');
}

$_->quit for @s, $mon;

unlike(slurp_file($node->logfile),
	qr/PANIC|TRAP:|terminated by signal|server process .* exited with exit code/,
	'no crash in the server log');

$node->stop;
done_testing();
