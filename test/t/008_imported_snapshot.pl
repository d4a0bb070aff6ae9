# SPEC 5 with an imported snapshot (SET TRANSACTION SNAPSHOT, as pg_dump
# and parallel readers use): once a transaction that fired the triggers has
# committed, no session may read from the cache a value computed without
# its writes -- also when the value was computed from a snapshot that
# another transaction exported before that commit.
#
# invalidate.c dates an entry by the start of the transaction that stored
# it, on the ground that every snapshot that transaction used was taken
# after its start.  An imported snapshot breaks that: it can be older than
# the transaction that imports it, and older than the invalidation.
#
# 1. Control: a REPEATABLE READ transaction that took its snapshot before
#    the write computes and stores after the commit: the value is not
#    served to others (the stale set race that the mechanism closes).
# 2. The same with the snapshot exported before the write and imported by
#    a transaction that starts after the commit: qcache_fetch and
#    qcache_set (with the right tag) in that transaction store values
#    without the committed write; other sessions must not be served them.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('imported');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'qcache'\n");
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE TABLE accounts (id int PRIMARY KEY, version int NOT NULL);
INSERT INTO accounts VALUES (1, 0);
SELECT qcache_watch('accounts', 'account:{id}');
});

my $fetch = q{qcache_fetch('acct:1', 'SELECT version FROM accounts WHERE id = 1')->0->>'version'};
my $set = q{qcache_set('set:1', (SELECT to_jsonb(version) FROM accounts WHERE id = 1), 0, '{account:1}')};

# What another session reads after the run: the fetch, and the get.
sub reads
{
	return $node->safe_psql('postgres',
		"SELECT $fetch, qcache_get('set:1'), (SELECT version FROM accounts WHERE id = 1)");
}

# 1. Control: the snapshot is the transaction's own, taken before the write.
{
	my $b = $node->background_psql('postgres');
	$b->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	is($b->query_safe('SELECT version FROM accounts WHERE id = 1'),
		'0', 'control: the reader takes its snapshot (version 0)');
	$node->safe_psql('postgres',
		'UPDATE accounts SET version = version + 1 WHERE id = 1');
	is($b->query_safe("SELECT $fetch"), '0',
		'control: the reader computes from its snapshot');
	$b->query_safe("SELECT $set");
	$b->query_safe('COMMIT');
	$b->quit;
	is(reads(), '1||1',
		'control: another session reads the committed write, '
		  . 'the stale values are not served');
}

# 2. The snapshot is exported before the write and imported after the
# commit by a transaction that starts then.
{
	$node->safe_psql('postgres', 'SELECT qcache_clear()');
	my $a = $node->background_psql('postgres');
	$a->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	my $snap = $a->query_safe('SELECT pg_export_snapshot()');
	is($a->query_safe('SELECT version FROM accounts WHERE id = 1'),
		'1', 'imported: the exported snapshot sees version 1');

	$node->safe_psql('postgres',
		'UPDATE accounts SET version = version + 1 WHERE id = 1');
	is($node->safe_psql('postgres', "SELECT $fetch"), '2',
		'imported: after the commit, a fetch reads version 2');
	$node->safe_psql('postgres', "SELECT qcache_invalidate('acct:1')");

	my $b = $node->background_psql('postgres');
	$b->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$b->query_safe("SET TRANSACTION SNAPSHOT '$snap'");
	is($b->query_safe("SELECT $fetch"), '1',
		'imported: the importing transaction computes from the old snapshot');
	$b->query_safe("SELECT $set");
	$b->query_safe('COMMIT');
	$b->quit;
	$a->query_safe('COMMIT');
	$a->quit;

	my ($fetched, $got, $actual) = split /\|/, reads();
	is($fetched, $actual,
		'imported: another session does not get a fetch value computed '
		  . 'without the committed write');
	ok($got eq '' || $got eq $actual,
		'imported: another session does not get a set value computed '
		  . 'without the committed write')
	  or diag("qcache_get('set:1') returned '$got', the table holds $actual");
}

$node->stop;
done_testing();
