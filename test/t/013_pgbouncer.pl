# qcache behind a real pgbouncer in transaction pooling (issue 14), driven
# from psycopg 3 as an application would.
#
# The server gets the README's examples as written (tools/readme_sql.pl),
# then a Python client connects through pgbouncer (127.0.0.1, a free port,
# pool_mode = transaction, one server connection per pool so that clients
# share it) and runs the README's cached-function pattern:
#   - as app_reader, category_stats_cached(7) 20 times: 1 miss, 19 hits;
#   - as app_writer, an UPDATE of products through the pooler: the next
#     call recomputes and shows the new average;
#   - SET leaks to the next client on the same server connection, SET LOCAL
#     does not (the README's pooler section);
#   - with automatic preparing (prepare_threshold=0) two clients collide on
#     one server connection ("_pg3_0" already exists), with
#     prepare_threshold=None they do not (the README's advice).
# pgbouncer is stopped by its pid, also when a test dies.
use strict;
use warnings;

use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pgbouncer = (grep { -x $_ } ('/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'))[0];
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer)'
  unless defined $pgbouncer;
plan skip_all => 'psycopg 3 is not installed (Debian package python3-psycopg)'
  unless system('python3', '-c', 'import psycopg') == 0;

my $node = PostgreSQL::Test::Cluster->new('pgbouncer');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\nqcache.memory = 32MB\nqcache.max_entries = 16384\n");
$node->start;

# The README's examples, as written.
my $readme = `perl tools/readme_sql.pl README.md`;
is($?, 0, 'the README examples extract');
$node->safe_psql('postgres', $readme);
is( $node->safe_psql(
		'postgres',
		"SELECT has_function_privilege('app_reader', 'category_stats_cached(int)', 'EXECUTE'), "
		  . "has_function_privilege('app_reader', 'qcache_fetch_rows(anyelement, text, text, integer, text[], text[], boolean, integer, integer)', 'EXECUTE')"),
	't|t',
	'the README set up app_reader to call the cached function');
$node->safe_psql('postgres',
	'GRANT SELECT, UPDATE ON products TO app_writer; SELECT qcache_clear(); SELECT qcache_reset_stats();');

# pgbouncer on loopback, a free port, transaction pooling, one server
# connection per (database, user).
my $dir = tempdir(CLEANUP => 1);
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $pg_host = $node->host;
my $pg_port = $node->port;
open(my $ul, '>', "$dir/users.txt") or die;
print $ul qq{"app_reader" ""\n"app_writer" ""\n};
close($ul);
open(my $ini, '>', "$dir/pgbouncer.ini") or die;
print $ini <<"EOF";
[databases]
postgres = host=$pg_host port=$pg_port dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
logfile = $dir/pgbouncer.log
ignore_startup_parameters = extra_float_digits,options
EOF
close($ini);

my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ],
	'>', \$bout, '2>', \$berr);
my $bouncer_pid = $bouncer->{KIDS}[0]{PID};
END
{
	# stop pgbouncer by its pid, also when a test died
	kill 'INT', $bouncer_pid if $bouncer_pid;
}

# wait until it accepts
my $ready = 0;
for (1 .. 100)
{
	my $rc = system('python3', '-c',
		"import psycopg; psycopg.connect('host=127.0.0.1 port=$port dbname=postgres user=app_reader', connect_timeout=2).close()"
	);
	if ($rc == 0) { $ready = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($ready, "pgbouncer accepts on 127.0.0.1:$port")
  or diag(slurp_file("$dir/pgbouncer.log"));

# The client, in Python: prints one line per fact, checked below.
my $py = <<"EOF";
import psycopg

def conn(user, prepare_threshold=None):
    c = psycopg.connect("host=127.0.0.1 port=$port dbname=postgres user=" + user,
                        autocommit=True)
    c.prepare_threshold = prepare_threshold
    return c

# The README's pattern: call the cached function like the view.
reader = conn("app_reader")
rows = [reader.execute("SELECT products, avg_price::text FROM category_stats_cached(7)")
        .fetchall() for _ in range(20)]
print("calls", len(rows), "distinct", len(set(map(tuple, rows))), "first", rows[0])

# A write through the pooler invalidates at commit; the next call recomputes.
writer = conn("app_writer")
writer.execute("UPDATE products SET price = price + 100 WHERE id = 7")
print("after update", reader.execute("SELECT products, avg_price::text FROM category_stats_cached(7)")
      .fetchall())

# SET leaks to the next client of the same server connection; SET LOCAL does not.
other = conn("app_reader")
reader.execute("SET qcache.enabled = off")
print("after SET, other client sees", other.execute("SHOW qcache.enabled").fetchone()[0])
reader.execute("RESET qcache.enabled")
with reader.transaction():
    reader.execute("SET LOCAL qcache.enabled = off")
    print("inside, SET LOCAL gives", reader.execute("SHOW qcache.enabled").fetchone()[0])
print("after SET LOCAL, other client sees", other.execute("SHOW qcache.enabled").fetchone()[0])

# Automatic preparing collides behind transaction pooling; None does not.
p1, p2 = conn("app_reader", 0), conn("app_reader", 0)
p1.execute("SELECT 1 AS x, %s::int AS y", (1,))
try:
    p2.execute("SELECT 1 AS x, %s::int AS y", (2,))
    print("prepared twice: ok")
except psycopg.Error as e:
    print("prepared twice:", e.sqlstate)
n1, n2 = conn("app_reader"), conn("app_reader")
for i in range(10):
    n1.execute("SELECT * FROM category_stats_cached(%s)", (i,))
    n2.execute("SELECT * FROM category_stats_cached(%s)", (i,))
print("unprepared: ok")
EOF
open(my $pf, '>', "$dir/client.py") or die;
print $pf $py;
close($pf);

my ($out, $err) = ('', '');
IPC::Run::run([ 'python3', "$dir/client.py" ], '>', \$out, '2>', \$err,
	IPC::Run::timeout(120));
diag("client stderr: $err") if $err ne '';
note($out);

like($out, qr/^calls 20 distinct 1 first \[\(100, '47\.5700000000000000'\)\]$/m,
	'20 calls of category_stats_cached() through pgbouncer give the same rows');
like($out, qr/^after update \[\(100, '48\.5700000000000000'\)\]$/m,
	'after an UPDATE through pgbouncer the next call shows the new average');
like($out, qr/^after SET, other client sees off$/m,
	'a plain SET leaks to the next client of the server connection');
like($out, qr/^inside, SET LOCAL gives off$/m, 'SET LOCAL applies inside its transaction');
like($out, qr/^after SET LOCAL, other client sees on$/m,
	'SET LOCAL does not leak');
like($out, qr/^prepared twice: 42P05$/m,
	'automatic preparing collides on a shared server connection (42P05)');
like($out, qr/^unprepared: ok$/m,
	'with prepare_threshold=None two clients share the connection without errors');

# What the server counted for the cached function's keys ('category_stats:N',
# namespace 'category_stats'): 20 calls of category 7, the first a miss and
# a set, then 19 hits; the call after the UPDATE a miss and a set; the last
# loop's first client hits category 7 and misses (and sets) the nine
# others, its second client hits all ten: 30 hits, 11 misses, 11 sets.
is( $node->safe_psql(
		'postgres',
		"SELECT hits, misses, sets FROM qcache_namespaces WHERE namespace = 'category_stats'"),
	'30|11|11',
	'qcache_namespaces: 30 hits, 11 misses and 11 sets for the function\'s keys');
is($node->safe_psql('postgres', 'SELECT sets_rejected, sets_disabled FROM qcache_stats'),
	'0|0', 'no set was refused or disabled');

$bouncer->signal('INT');
$bouncer->finish;
$bouncer_pid = undef;
$node->stop;
done_testing();
