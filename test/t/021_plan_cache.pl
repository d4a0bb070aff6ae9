# qcache_fetch with parameters keeps one plan per backend for a query text
# (SPEC 11): 1,000 distinct parameter values are 1,000 misses of one
# prepared statement, planned once (pg_stat_statements counts the plans of
# the statement qcache_fetch runs), where 1,000 texts formatted with the
# values are planned 1,000 times.  And a hit runs nothing at all.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plans');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache, pg_stat_statements'\n"
	  . "pg_stat_statements.track = all\n"
	  . "pg_stat_statements.track_planning = on\n"
	  . "plan_cache_mode = force_generic_plan\n");
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;
});

sub plans_and_calls
{
	my ($like) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(plans), 0) || ' ' || coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '$like'");
}

# one session: 1,000 values, then 1,000 hits
my $out = $node->safe_psql(
	'postgres', q{
SELECT pg_stat_statements_reset();
SELECT count(*) FROM generate_series(1, 1000) g
WHERE qcache_fetch(NULL, 'SELECT v FROM items WHERE id = $1', params => ARRAY[g::text])
      ->0->>'v' = 'item ' || g;
SELECT count(*) FROM generate_series(1, 1000) g
WHERE qcache_fetch(NULL, 'SELECT v FROM items WHERE id = $1', params => ARRAY[g::text])
      ->0->>'v' = 'item ' || g;
});
is($out, "\n1000\n1000", 'every value returns its own row, twice');
is(plans_and_calls('%FROM items WHERE id = $1%'), '1 1000',
	'the parameterized query was planned once and run 1,000 times (the hits ran nothing)');

# the same values formatted into the text: a statement per value
$node->safe_psql(
	'postgres', q{
SELECT count(*) FROM generate_series(1, 1000) g
WHERE qcache_fetch('fmt:' || g, format('SELECT v FROM items WHERE id = %L', g))
      ->0->>'v' = 'item ' || g;
});
my ($plans) = split / /, plans_and_calls('%FROM items WHERE id = $2%');
cmp_ok($plans + 0, '>=', 1000, "formatted texts were planned once each ($plans plans)");

$node->stop;
done_testing();
