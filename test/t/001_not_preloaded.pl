# qcache outside shared_preload_libraries, and a qcache.memory that cannot
# hold the index for qcache.max_entries.
#
# Without the preload, CREATE EXTENSION must still work (so that a dump can
# be restored) and warn, the triggers of watched tables must let writes
# through (nothing is cached, so nothing can be stale), and every SQL
# function must refuse with SQLSTATE 55000
# (object_not_in_prerequisite_state) and say how to fix it.  With a memory
# budget smaller than the index it needs, the server must refuse to start
# with a FATAL that names both settings.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# ---------------------------------------------------------------------------
# 1. Not preloaded.
# ---------------------------------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('not_preloaded');
$node->init;
$node->start;

# CREATE EXTENSION works (a dump must restore) and warns, with the fix.
{
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', 'CREATE EXTENSION qcache',
		stdout => \$out, stderr => \$err);
	is($rc, 0, 'CREATE EXTENSION succeeds without the preload');
	like($err,
		qr/WARNING:\s+qcache is not loaded via "shared_preload_libraries"/,
		'CREATE EXTENSION warns that qcache is not preloaded');
	like($err,
		qr/HINT:\s+Add qcache to shared_preload_libraries in postgresql\.conf and restart the server\./,
		'the warning says how to fix it');
}
is($node->safe_psql('postgres', 'SELECT qcache_preloaded()'),
	'f', 'qcache_preloaded() says false');
is($node->safe_psql('postgres',
		"SELECT extversion = default_version FROM pg_extension, pg_available_extensions "
		  . "WHERE extname = 'qcache' AND name = 'qcache'"),
	't', 'CREATE EXTENSION works without the preload');

# Every function of the SQL interface, called with arguments that would be
# valid on a preloaded server (STRICT functions given non-NULL arguments, so
# that the C code runs).
my @calls = (
	[ 'qcache_get', "SELECT qcache_get('k')" ],
	[ 'qcache_set', q{SELECT qcache_set('k', '{"a": 1}'::jsonb, 60, ARRAY['t'])} ],
	[ 'qcache_fetch', q{SELECT qcache_fetch('k', 'SELECT 1 AS one', 60)} ],
	[ 'qcache_invalidate', "SELECT qcache_invalidate('k')" ],
	[ 'qcache_invalidate_tag', "SELECT qcache_invalidate_tag('t')" ],
	[ 'qcache_invalidate_prefix', "SELECT qcache_invalidate_prefix('k')" ],
	[ 'qcache_clear', 'SELECT qcache_clear()' ],
	[ 'qcache_stats', 'SELECT * FROM qcache_stats()' ],
	[ 'qcache_stats view', 'SELECT * FROM qcache_stats' ],
	[ 'qcache_entries', 'SELECT * FROM qcache_entries()' ],
	[ 'qcache_entries view', 'SELECT * FROM qcache_entries' ],
	[ 'qcache_reset_stats', 'SELECT qcache_reset_stats()' ],);

# Run a statement with verbose errors; return (exit code, stdout, stderr).
sub run_verbose
{
	my ($n, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $n->psql(
		'postgres', "\\set VERBOSITY verbose\n$sql",
		stdout => \$out,
		stderr => \$err);
	return ($rc, $out, $err);
}

foreach my $c (@calls)
{
	my ($name, $sql) = @$c;
	my ($rc, $out, $err) = run_verbose($node, $sql);

	isnt($rc, 0, "$name: fails without the preload");
	like(
		$err,
		qr/ERROR:\s+55000: qcache must be loaded via "?shared_preload_libraries"?/,
		"$name: SQLSTATE 55000 and a message naming shared_preload_libraries");
	like(
		$err,
		qr/HINT:\s+.*shared_preload_libraries.*restart/i,
		"$name: the hint says to add it to shared_preload_libraries and restart");
	is($out, '', "$name: returns nothing");
}

# LOAD in the session does not change that: shared memory cannot be had
# after the postmaster started.
{
	my ($rc, $out, $err) = run_verbose($node,
		"LOAD 'qcache';\nSELECT qcache_set('k', '1'::jsonb);");
	isnt($rc, 0, 'after LOAD: still fails');
	like($err, qr/ERROR:\s+55000: qcache must be loaded via/,
		'after LOAD: the same error');
}

# The errors leave the session usable: an error inside a transaction rolls
# it back cleanly, the next statement runs.
is( $node->safe_psql(
		'postgres', q{
DO $$
BEGIN
	BEGIN
		PERFORM qcache_get('k');
	EXCEPTION WHEN object_not_in_prerequisite_state THEN
		RAISE NOTICE 'caught';
	END;
END $$;
SELECT 'still alive';}),
	'still alive',
	'the error can be caught by its condition name');

# Watched tables stay writable: the triggers let every write through
# (nothing is cached in this server, so nothing can be stale).  A dump
# restored onto a server without the preload keeps the application's
# writes working.
$node->safe_psql(
	'postgres', q{
CREATE TABLE w (id int PRIMARY KEY, v text);
SELECT qcache_watch('w', 'w:{id}');
CREATE TABLE h (id int PRIMARY KEY, v text);
CREATE TRIGGER h_before BEFORE INSERT OR UPDATE OR DELETE ON h
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger('h:{id}');
});
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'w'::regclass"),
	'qcache_watch_replica,qcache_watch_row,qcache_watch_table,qcache_watch_truncate',
	'qcache_watch creates its triggers without the preload');
is( $node->safe_psql(
		'postgres', q{
INSERT INTO w SELECT g, 'v' || g FROM generate_series(1, 5) g;
UPDATE w SET v = 'u' || id WHERE id <= 2;
DELETE FROM w WHERE id = 5;
INSERT INTO w VALUES (5, 'again') ON CONFLICT (id) DO UPDATE SET v = 'conflict';
COPY w FROM PROGRAM 'echo 6,copied' WITH (FORMAT csv);
SELECT string_agg(id || '=' || v, ' ' ORDER BY id) FROM w;}),
	'1=u1 2=u2 3=v3 4=v4 5=again 6=copied',
	'INSERT, UPDATE, DELETE, ON CONFLICT and COPY on a watched table work');
is( $node->safe_psql(
		'postgres', q{
INSERT INTO h VALUES (1, 'a'), (2, 'b');
UPDATE h SET v = 'c' WHERE id = 2;
DELETE FROM h WHERE id = 1;
SELECT string_agg(id || '=' || v, ' ' ORDER BY id) FROM h;}),
	'2=c',
	'a hand-written BEFORE ROW trigger keeps the rows it is given');
is( $node->safe_psql('postgres', 'TRUNCATE w; SELECT count(*) FROM w'),
	'0', 'TRUNCATE of a watched table works');

# No sweeper without the preload: no child of the postmaster carries its
# title (read from /proc, as a worker need not be in pg_stat_activity).
sub sweeper_pids
{
	my ($n) = @_;
	my $pm = $n->{_pid};
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
is(scalar(sweeper_pids($node)), 0, 'no sweeper is started without the preload');

$node->stop;

# ---------------------------------------------------------------------------
# 2. qcache.memory too small for qcache.max_entries: a clear FATAL at start.
# ---------------------------------------------------------------------------
my $small = PostgreSQL::Test::Cluster->new('too_small');
$small->init;
$small->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 2MB\n"
	  . "qcache.max_entries = 1000000\n");
my $started = $small->start(fail_ok => 1);
ok(!$started, 'server refuses to start when the index does not fit');

my $log = slurp_file($small->logfile);
like(
	$log,
	qr/FATAL:\s+qcache\.memory is too small for qcache\.max_entries/,
	'the log has a FATAL naming qcache.memory and qcache.max_entries');
like($log, qr/DETAIL:\s+The index for 1000000 entries takes \d+ kB/,
	'the detail gives the size of the index');
like($log, qr/HINT:\s+Raise qcache\.memory or lower qcache\.max_entries\./,
	'the hint says what to change');

# The same node starts once the budget is raised: the check is about the
# ratio, not a refusal of large max_entries.
$small->append_conf('postgresql.conf', "qcache.memory = 32MB\n");
my $restarted = $small->start(fail_ok => 1);
ok($restarted, 'starts with qcache.memory = 32MB');
if ($restarted)
{
	$small->safe_psql('postgres', 'CREATE EXTENSION qcache');
	is( $small->safe_psql(
			'postgres',
			q{SELECT qcache_set('k', '{"x": 1}'::jsonb, 0),
					 qcache_get('k') = '{"x": 1}'::jsonb}),
		't|t',
		'and caches');
	$small->stop;
}

done_testing();
