# The security model across sessions (SPEC section 8, security.c): the
# same checks as sql/security.sql, but each role in a session of its own,
# connected at once, so that what one backend caches another one serves,
# and GRANT and REVOKE made by a third backend reach the per-backend cache
# of checks.
#
# 1. alice computes a result; bob, granted SELECT, is served it from the
#    cache (a hit: qcache_stats counts it, and the query did not run);
#    carol, without SELECT, gets her own permission error; mallory, who
#    only has qcache_set, cannot plant rows under alice's key.
# 2. REVOKE from another session between two of bob's hits: his next fetch
#    is refused; GRANT again: he is served again.
# 3. One role, two tenants (row-level security on a setting), two
#    sessions: each gets its own tenant's rows, from its own entry.
# 4. Temporary tables in two sessions at once: each gets its own rows.
# 5. A write inside the query's functions, from a session: refused, nothing
#    written, nothing cached.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('security');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\nlog_min_messages = warning\n");
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN;
CREATE ROLE mallory LOGIN;
CREATE ROLE tenant_app LOGIN;
GRANT EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer),
	qcache_fetch_cached(text, text, text[]) TO alice, bob, carol, tenant_app;
GRANT EXECUTE ON FUNCTION qcache_set(text, jsonb, integer, text[], bigint) TO mallory;
CREATE TABLE secret (id int, v text);
INSERT INTO secret VALUES (1, 'top secret');
GRANT SELECT ON secret TO alice, bob;
-- a function that reads the table: a nested read, checked on hits too
CREATE FUNCTION secret_total() RETURNS bigint LANGUAGE sql STABLE
	AS 'SELECT count(*) FROM secret';
CREATE TABLE tenant_rows (tenant text, v text);
INSERT INTO tenant_rows VALUES ('1', 'row of tenant 1'), ('2', 'row of tenant 2');
ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_tenant ON tenant_rows USING (tenant = current_setting('app.tenant', true));
GRANT SELECT ON tenant_rows TO tenant_app;
CREATE TABLE tmp (v text);
INSERT INTO tmp VALUES ('permanent');
GRANT SELECT ON tmp TO PUBLIC;
CREATE TABLE read_log (v text);
GRANT INSERT ON read_log TO PUBLIC;
CREATE FUNCTION log_read() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO read_log VALUES ('read');
	RETURN 1;
END $$;
});

my %s;
$s{$_} = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', $_ ])
  for qw(alice bob carol mallory);
my $admin = $node->background_psql('postgres');

my $q = q{'SELECT v, secret_total() AS n FROM secret'};
sub stat_of { return $admin->query_safe("SELECT $_[0] FROM qcache_stats"); }
sub fetch_as
{
	my ($who, $key) = @_;
	my ($out, $err) = ('', '');
	$out = $s{$who}->query("SELECT qcache_fetch('$key', $q)");
	$err = $s{$who}->{stderr};
	$s{$who}->{stderr} = '';
	return ($out, $err);
}

# ---------- 1. one computes, another is served, a third is refused ----------
my ($out, $err) = fetch_as('alice', 'secret');
is($out, '[{"n": 1, "v": "top secret"}]', 'alice computes the result');
my $hits = stat_of('hits');
my $misses = stat_of('misses');
($out, $err) = fetch_as('bob', 'secret');
is($out, '[{"n": 1, "v": "top secret"}]', 'bob, who may read it, gets the result');
is(stat_of('hits'), $hits + 1, "bob's fetch is a hit on alice's entry");
is(stat_of('misses'), $misses, 'bob did not run the query');

($out, $err) = fetch_as('carol', 'secret');
is($out, '', 'carol is not served the cached rows');
like($err, qr/permission denied for table secret/, 'carol gets her own permission error');

is($s{mallory}->query_safe(q{SELECT qcache_set('planted', '[{"n": 9, "v": "planted"}]')}),
	't', 'mallory stores a value under a key of her choice');
($out, $err) = fetch_as('alice', 'planted');
is($out, '[{"n": 1, "v": "top secret"}]', "alice's fetch of that key runs her query, not mallory's value");
is($s{carol}->query_safe(q{SELECT qcache_get('secret') IS NULL}), 't',
	'qcache_get of the fetch key returns nothing to carol');

# ---------- 2. REVOKE and GRANT from another session ----------
($out, $err) = fetch_as('bob', 'secret');
is($out, '[{"n": 1, "v": "top secret"}]', 'bob is served (his check is cached now)');
$admin->query_safe('REVOKE SELECT ON secret FROM bob');
($out, $err) = fetch_as('bob', 'secret');
is($out, '', 'after REVOKE in another session, bob is not served');
like($err, qr/permission denied for table secret/, 'bob gets the permission error');
$admin->query_safe('GRANT SELECT ON secret TO bob');
$hits = stat_of('hits');
($out, $err) = fetch_as('bob', 'secret');
is($out, '[{"n": 1, "v": "top secret"}]', 'after GRANT, bob is served again');
is(stat_of('hits'), $hits + 1, 'from the cache');
# the nested read: bob may read the table but not execute the function
$admin->query_safe('REVOKE EXECUTE ON FUNCTION secret_total() FROM PUBLIC');
$admin->query_safe('GRANT EXECUTE ON FUNCTION secret_total() TO alice');
($out, $err) = fetch_as('bob', 'secret');
is($out, '', 'without EXECUTE on the function the query calls, bob is not served');
like($err, qr/permission denied for function secret_total/, 'bob gets that error');
($out, $err) = fetch_as('alice', 'secret');
is($out, '[{"n": 1, "v": "top secret"}]', 'alice still is');

# ---------- 3. one role, two tenants, two sessions ----------
my @t = map {
	my $x = $node->background_psql('postgres', extra_params => [ '-U', 'tenant_app' ]);
	$x->query_safe("SET app.tenant = '$_'");
	$x;
} (1, 2);
my $tq = q{SELECT qcache_fetch('tenant', 'SELECT v FROM tenant_rows')};
is($t[0]->query_safe($tq), '[{"v": "row of tenant 1"}]', 'tenant 1 computes its rows');
is($t[1]->query_safe($tq), '[{"v": "row of tenant 2"}]', 'tenant 2 gets its own rows');
$hits = stat_of('hits');
is($t[0]->query_safe($tq), '[{"v": "row of tenant 1"}]', 'tenant 1 again');
is($t[1]->query_safe($tq), '[{"v": "row of tenant 2"}]', 'tenant 2 again');
is(stat_of('hits'), $hits + 2, 'both from their own entries');

# ---------- 4. temporary tables in two sessions at once ----------
$t[0]->query_safe(q{CREATE TEMP TABLE tmp (v text); INSERT INTO tmp VALUES ('private 1')});
$t[1]->query_safe(q{CREATE TEMP TABLE tmp (v text); INSERT INTO tmp VALUES ('private 2')});
my $pq = q{SELECT qcache_fetch('tmp', 'SELECT v FROM tmp')};
is($s{alice}->query_safe($pq), '[{"v": "permanent"}]', 'without a temporary table: the permanent one');
is($t[0]->query_safe($pq), '[{"v": "private 1"}]', 'session 1 gets its temporary rows');
is($t[1]->query_safe($pq), '[{"v": "private 2"}]', 'session 2 gets its temporary rows');
is($s{bob}->query_safe($pq), '[{"v": "permanent"}]', "and bob the permanent table's");

# ---------- 4b. a result that depends on the session ----------
$admin->query_safe(q{CREATE TABLE sess_ctx (pid int, v text); GRANT SELECT ON sess_ctx TO PUBLIC});
for my $i (0, 1)
{
	my $pid = $t[$i]->query_safe('SELECT pg_backend_pid()');
	$admin->query_safe("INSERT INTO sess_ctx VALUES ($pid, 'context of session $i')");
}
my $sq = q{SELECT qcache_fetch('ctx', 'SELECT v FROM sess_ctx WHERE pid = pg_backend_pid()')};
is($t[0]->query_safe($sq), '[{"v": "context of session 0"}]', 'session 0 gets its own context');
is($t[1]->query_safe($sq), '[{"v": "context of session 1"}]',
	'session 1, same role and settings, gets its own, not session 0\'s');
$hits = stat_of('hits');
is($t[0]->query_safe($sq), '[{"v": "context of session 0"}]', 'session 0 again');
is(stat_of('hits'), $hits + 1, 'from its own entry');

# ---------- 5. a write inside the query ----------
($out, $err) = ('', '');
$out = $s{alice}->query(q{SELECT qcache_fetch('w', 'SELECT log_read()')});
like($s{alice}->{stderr}, qr/qcache_fetch query must not write/, 'a write in a called function is refused');
$s{alice}->{stderr} = '';
is($admin->query_safe('SELECT count(*) FROM read_log'), '0', 'nothing was written');
is($admin->query_safe(q{SELECT count(*) FROM qcache_entries WHERE key = 'w'}), '0', 'nothing was cached');

$_->quit for values %s, @t, $admin;
$node->stop;
done_testing();
