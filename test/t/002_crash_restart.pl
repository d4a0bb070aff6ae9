# A backend that dies (kill -9) cannot leave the cache locked or corrupt:
# after the postmaster's crash restart the cache is empty and works
# (SPEC 3).
#
# 1. kill -9 an idle backend that used the cache; after the restart the
#    cache is empty (entries 0, bytes_used back to the empty value, every
#    get misses) and set/get/invalidate/sweeping work again.
# 2. kill -9 the backend that is in the middle of a long stream of sets (a
#    DO loop of 200k sets into a cache small enough that it evicts all the
#    time), so it dies inside the store: holding a partition lock, or the
#    DSA area's lock, or between allocating and linking an entry.
# 3. kill -9 a bystander backend while another session streams sets: the
#    postmaster's SIGQUIT ends the writer wherever it is.
# After each restart the cache must be empty and pass a consistency check.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 4MB\n"
	  . "qcache.max_entries = 4096\n"
	  . "restart_after_crash = on\n"
	  . "log_min_messages = warning\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');

# qcache_stats as a hash.
sub stats
{
	my @cols = qw(entries bytes_used bytes_limit sets sets_rejected hits misses
	  evictions_memory evictions_expired invalidations);
	my $row = $node->safe_psql('postgres',
		'SELECT ' . join(', ', @cols) . ' FROM qcache_stats');
	my %s;
	@s{@cols} = split /\|/, $row;
	return \%s;
}

# Poll a query until it returns 't', for at most $secs seconds.
sub wait_for
{
	my ($sql, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		my ($rc, $out) = (1, '');
		$rc = $node->psql('postgres', $sql, stdout => \$out);
		return 1 if $rc == 0 && $out eq 't';
		usleep(100_000);
	}
	return 0;
}

# Pids of the postmaster's children whose title names the sweeper.
sub sweeper_pids
{
	my $pm = $node->{_pid};
	my @pids;
	opendir(my $dh, '/proc') or return ();
	foreach my $pid (grep { /^\d+$/ } readdir($dh))
	{
		open(my $st, '<', "/proc/$pid/stat") or next;
		my $stat = <$st>;
		close($st);
		next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
		next unless $1 == $pm;
		open(my $cl, '<', "/proc/$pid/cmdline") or next;
		my $cmd = <$cl> // '';
		close($cl);
		push @pids, $pid if $cmd =~ /qcache sweeper/;
	}
	closedir($dh);
	return @pids;
}

# Wait for the crash restart that follows a kill made when the log was
# $offset bytes long: the postmaster's reinitialisation in the log, then
# connections accepted again.
sub wait_crash_restart
{
	my ($offset, $what) = @_;
	my $deadline = time() + 60;
	my $reinit = 0;
	while (time() < $deadline)
	{
		my $log = slurp_file($node->logfile, $offset);
		if ($log =~ /all server processes terminated; reinitializing/)
		{
			$reinit = 1;
			last;
		}
		usleep(100_000);
	}
	ok($reinit, "$what: the postmaster reinitialised after the crash");
	ok(wait_for('SELECT true', 60), "$what: connections work again");
}

# The cache right after a restart: empty, everything misses.
sub check_empty
{
	my ($what, $empty_bytes, @keys) = @_;
	my $s = stats();
	is($s->{entries}, 0, "$what: qcache_stats.entries = 0");
	is($s->{bytes_used}, $empty_bytes,
		"$what: bytes_used is the value of an empty cache");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM qcache_entries'),
		'0', "$what: qcache_entries is empty");
	if (@keys)
	{
		my $list = join(',', map { "'$_'" } @keys);
		is( $node->safe_psql('postgres',
				"SELECT count(qcache_get(k)) FROM unnest(ARRAY[$list]) k"),
			'0', "$what: every get of a key set before the crash misses");
	}
}

# The cache works and is consistent: values read back as written, the
# gauges agree with qcache_entries, bulk removals count exactly, and
# emptying it brings bytes_used back to the empty value.
sub check_works
{
	my ($what, $empty_bytes) = @_;
	my $n = 1000;
	is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE qcache_set('ok:' || i,
		jsonb_build_object('i', i, 'pad', repeat('p', i % 700)), 0,
		ARRAY['g' || (i % 4), 'all']))
FROM generate_series(1, $n) i}),
		$n, "$what: $n sets return true");
	is( $node->safe_psql('postgres', qq{
SELECT count(*) FROM generate_series(1, $n) i
WHERE qcache_get('ok:' || i) = jsonb_build_object('i', i, 'pad', repeat('p', i % 700))}),
		$n, "$what: all $n values read back as written");
	my $s = stats();
	is($s->{entries}, $n, "$what: entries = $n");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM qcache_entries'),
		$n, "$what: qcache_entries agrees");
	is($node->safe_psql('postgres', "SELECT qcache_invalidate_tag('g1')"),
		$n / 4, "$what: invalidate_tag removes exactly its entries");
	is($node->safe_psql('postgres', "SELECT qcache_invalidate('ok:2')"),
		't', "$what: invalidate of one key");
	is($node->safe_psql('postgres', "SELECT qcache_get('ok:2') IS NULL"),
		't', "$what: the invalidated key misses");
	is($node->safe_psql('postgres', "SELECT qcache_invalidate_prefix('ok:')"),
		$n - $n / 4 - 1, "$what: invalidate_prefix removes the rest");
	$s = stats();
	is($s->{entries}, 0, "$what: empty again");
	is($s->{bytes_used}, $empty_bytes,
		"$what: bytes_used back to the empty value (no leaked accounting)");

	# And the sweeper runs on the new memory.
	$node->safe_psql('postgres', q{SELECT qcache_set('ttl', '1'::jsonb, 1)});
	ok( wait_for(
			q{SELECT count(*) = 0 FROM qcache_entries WHERE key = 'ttl'}, 30),
		"$what: the sweeper reclaims an expiring entry");
	$node->safe_psql('postgres', 'SELECT qcache_clear()');
}

# Start a session streaming sets; return (session, backend pid).  The
# stream is long enough (200k sets) that it is still running when killed.
sub start_writer
{
	my $w = $node->background_psql('postgres', on_error_stop => 1);
	my $pid = $w->query_safe('SELECT pg_backend_pid()');
	$w->query_until(
		qr/streaming/, q{\echo streaming
DO $$
BEGIN
	FOR i IN 1..200000 LOOP
		PERFORM qcache_set('w:' || (i % 20000),
			jsonb_build_object('i', i, 'pad', repeat('w', (i * 7919) % 2000)),
			CASE WHEN i % 3 = 0 THEN 1 ELSE 0 END,
			ARRAY['w', 'w' || (i % 10)]);
		IF i % 1000 = 0 THEN
			PERFORM qcache_invalidate_tag('w' || (i % 7));
		END IF;
	END LOOP;
END $$;
});
	return ($w, $pid);
}

# Wait until at least $n sets were made since the last restart.
sub wait_sets
{
	my ($n) = @_;
	return wait_for("SELECT sets >= $n FROM qcache_stats", 60);
}

# End a psql session whose server went away; return its stderr.
sub end_session
{
	my ($s) = @_;
	eval { $s->{run}->finish; };
	eval { $s->{run}->kill_kill; };
	return $s->{stderr};
}

my $empty_bytes = stats()->{bytes_used};
cmp_ok($empty_bytes, '>', 0, 'an empty cache accounts for its index');

# ---------------------------------------------------------------------------
# 1. kill -9 an idle backend.
# ---------------------------------------------------------------------------
is( $node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE qcache_set('k' || i,
		jsonb_build_object('i', i), 0, ARRAY['t' || (i % 5)]))
FROM generate_series(1, 500) i}),
	'500', '500 entries set');
is(stats()->{entries}, 500, 'entries = 500 before the crash');

my @sweepers_before = sweeper_pids();
is(scalar(@sweepers_before), 1, 'a sweeper runs before the crash');

my $victim = $node->background_psql('postgres', on_error_stop => 0);
$victim->query_safe(q{SELECT qcache_set('victim', '"v"'::jsonb, 0)});
is($victim->query_safe(q{SELECT qcache_get('victim')}),
	'"v"', 'the victim session uses the cache');
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
my $offset = -s $node->logfile;
ok(kill('KILL', $pid), "kill -9 backend $pid");
wait_crash_restart($offset, 'idle backend killed');
like(
	slurp_file($node->logfile, $offset),
	qr/server process \(PID $pid\) was terminated by signal 9/,
	'the log reports the killed backend');
end_session($victim);

check_empty('after kill -9 of an idle backend', $empty_bytes,
	'victim', map { "k$_" } 1 .. 500);
is(stats()->{hits}, 0, 'no hit after the restart');

my $deadline = time() + 30;
usleep(100_000) while (!sweeper_pids() && time() < $deadline);
my @sweepers_after = sweeper_pids();
is(scalar(@sweepers_after), 1, 'a sweeper runs again after the restart');
isnt($sweepers_after[0] // 0, $sweepers_before[0],
	'it is a new sweeper process');

check_works('after kill -9 of an idle backend', $empty_bytes);

# ---------------------------------------------------------------------------
# 2. kill -9 the writer in the middle of its stream of sets, at two points
#    (early, and once the cache is full and evicting).
# ---------------------------------------------------------------------------
foreach my $at (2000, 30000)
{
	my $what = "writer killed after $at sets";
	my ($w, $wpid) = start_writer();
	ok(wait_sets($at), "$what: the writer reached $at sets");
	is( $node->safe_psql('postgres',
			"SELECT state FROM pg_stat_activity WHERE pid = $wpid"),
		'active', "$what: it is still running its stream");
	my $s = stats();
	note("$what: sets $s->{sets}, entries $s->{entries}, "
		  . "bytes_used $s->{bytes_used}, "
		  . "evictions_memory $s->{evictions_memory} at the kill");
	$offset = -s $node->logfile;
	ok(kill('KILL', $wpid), "$what: kill -9 backend $wpid");
	wait_crash_restart($offset, $what);
	my $err = end_session($w);
	like(
		$err,
		qr/server closed the connection unexpectedly|connection to server was lost|terminating connection/,
		"$what: the writer lost its connection mid-statement");
	check_empty($what, $empty_bytes, map { "w:$_" } 0 .. 99);
	check_works($what, $empty_bytes);
}

# ---------------------------------------------------------------------------
# 3. kill -9 a bystander while another session streams sets.
# ---------------------------------------------------------------------------
{
	my $what = 'bystander killed during a stream of sets';
	my ($w, $wpid) = start_writer();
	my $by = $node->background_psql('postgres', on_error_stop => 0);
	my $bypid = $by->query_safe('SELECT pg_backend_pid()');
	ok(wait_sets(5000), "$what: the writer is streaming");
	$offset = -s $node->logfile;
	ok(kill('KILL', $bypid), "$what: kill -9 backend $bypid");
	wait_crash_restart($offset, $what);
	my $err = end_session($w);
	like(
		$err,
		qr/server closed the connection unexpectedly|connection to server was lost|terminating connection/,
		"$what: the writer was stopped by the crash");
	end_session($by);
	check_empty($what, $empty_bytes, map { "w:$_" } 0 .. 99);
	check_works($what, $empty_bytes);
}

# ---------------------------------------------------------------------------
# 4. kill -9 the sweeper while it has expired entries to reclaim: a crash
#    like any other; the restarted cache is empty, works, and has a sweeper.
# ---------------------------------------------------------------------------
{
	my $what = 'sweeper killed';
	is( $node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE qcache_set('s:' || i, jsonb_build_object('i', i), 1))
FROM generate_series(1, 3000) i}),
		'3000', "$what: 3000 expiring entries set");
	my ($spid) = sweeper_pids();
	ok(defined $spid, "$what: found the sweeper");
	usleep(1_100_000);		# they have expired; the sweeper is due
	$offset = -s $node->logfile;
	ok(kill('KILL', $spid), "$what: kill -9 sweeper $spid");
	wait_crash_restart($offset, $what);
	check_empty($what, $empty_bytes, map { "s:$_" } 1 .. 100);
	my $deadline = time() + 30;
	usleep(100_000) while (!sweeper_pids() && time() < $deadline);
	is(scalar(sweeper_pids()), 1, "$what: a new sweeper runs");
	check_works($what, $empty_bytes);
}

# The server never needed more than crash restarts: no PANIC, no assertion.
unlike(slurp_file($node->logfile), qr/PANIC|TRAP:/,
	'no PANIC or assertion failure in the log');

$node->stop;
done_testing();
