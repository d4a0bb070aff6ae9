# SPEC 5.1: the guarantee holds in every database, whatever its OID (OIDs
# run up to 2^32 - 1).  invalidate.c's pending set once packed the database
# OID into 31 bits, so a commit in a database with an OID >= 2^31 stamped
# another slot and a fetch kept serving the rows from before the UPDATE.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hioid');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'qcache'\n");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE hi OID = 3000000000');
$node->safe_psql('postgres', 'CREATE DATABASE top OID = 4294967000');
foreach my $db ('hi', 'top')
{
	$node->safe_psql(
		$db, q{
CREATE EXTENSION qcache;
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items VALUES (1, 10);
SELECT qcache_watch('items', 'item:{id}');
});
	my $fetch = q{SELECT qcache_fetch('k', 'SELECT v FROM items WHERE id = 1')->0->>'v'};
	is($node->safe_psql($db, $fetch), '10', "$db: first fetch computes");
	is($node->safe_psql($db, q{SELECT qcache_set('s', '10', 0, '{item:1}')}),
		't', "$db: a value tagged item:1 is stored");
	$node->safe_psql($db, 'UPDATE items SET v = 11 WHERE id = 1');
	is($node->safe_psql($db, "$fetch, (SELECT v FROM items WHERE id = 1)"),
		'11|11', "$db: after the committed UPDATE the fetch serves the new row, as a fresh read does");
	is($node->safe_psql($db, q{SELECT qcache_get('s') IS NULL}),
		't', "$db: the value tagged item:1 is invalidated");
}

$node->stop;
done_testing();
