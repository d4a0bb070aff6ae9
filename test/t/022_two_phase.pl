# SPEC 5.1, two-phase commit: PREPARE TRANSACTION after a watched write
# works, and once COMMIT PREPARED has run -- in another session, also after
# a server restart between PREPARE and COMMIT PREPARED -- no session reads
# from the cache a value computed without the prepared transaction's
# writes.  invalidate.c keeps a prepared transaction's tags in flight from
# PREPARE until the transaction is finished, in shared memory and in a
# file under pg_qcache that a restart reads back; a prepared transaction
# it has no record of (prepared on the primary of a promoted standby)
# commits with the database's wildcard.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('twophase');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\nmax_prepared_transactions = 4\n");
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items VALUES (1, 10), (2, 20);
SELECT qcache_watch('items', 'item:{id}');
});

# served and fresh: what a fetch returns, next to the query run now.
my $q = 'SELECT v FROM items WHERE id = 1';
sub served
{
	return $node->safe_psql('postgres',
		"SELECT qcache_fetch('k', '$q', 0)->0->>'v', ($q)");
}
sub files
{
	my $dir = $node->data_dir . '/pg_qcache';
	return 0 unless -d $dir;
	opendir(my $dh, $dir) or die;
	my @f = grep { /^2pc-/ } readdir($dh);
	closedir($dh);
	return scalar @f;
}

is(served(), '10|10', 'the fetch is cached');

# 1. PREPARE, COMMIT PREPARED from another session.
$node->safe_psql('postgres',
	"BEGIN; UPDATE items SET v = 11 WHERE id = 1; PREPARE TRANSACTION 'p1';");
is(files(), 1, 'PREPARE TRANSACTION after a watched write works and leaves a file');
is(served(), '10|10', 'while prepared, the fetch serves what a fresh read sees');
$node->safe_psql('postgres',
	q{SELECT qcache_set('s1', '"old"', 0, ARRAY['item:1'])});
$node->safe_psql('postgres', "COMMIT PREPARED 'p1'");
is(served(), '11|11', 'after COMMIT PREPARED in another session the fetch serves the new row');
is($node->safe_psql('postgres', q{SELECT qcache_get('s1') IS NULL}),
	't', 'a value with the template tag set while prepared is not served');
is(files(), 0, 'the file is gone once the prepared transaction is finished');
is(served(), '11|11', 'and the fetch is cached again');
like($node->safe_psql('postgres', q{SELECT hits FROM qcache_entries WHERE key = 'k'}),
	qr/^[1-9]/, 'served from the cache');

# 2. A restart between PREPARE and COMMIT PREPARED: after the restart the
# cache is empty; a fetch computed then must not survive the commit.
$node->safe_psql('postgres',
	"BEGIN; UPDATE items SET v = 12 WHERE id = 1; PREPARE TRANSACTION 'p2';");
$node->restart;
is(served(), '11|11', 'after the restart, before COMMIT PREPARED: the old row, as fresh');
is(served(), '11|11', 'asked again');
$node->safe_psql('postgres', "COMMIT PREPARED 'p2'");
is(served(), '12|12', 'after the restart and COMMIT PREPARED the fetch serves the new row');

# 3. An immediate (crash) stop between PREPARE and COMMIT PREPARED.
$node->safe_psql('postgres',
	"BEGIN; UPDATE items SET v = 13 WHERE id = 1; PREPARE TRANSACTION 'p3';");
$node->stop('immediate');
$node->start;
is(served(), '12|12', 'after a crash, before COMMIT PREPARED: the old row');
$node->safe_psql('postgres', "COMMIT PREPARED 'p3'");
is(served(), '13|13', 'after a crash and COMMIT PREPARED: the new row');

# 4. ROLLBACK PREPARED: the old row stays, and the fetch is cached again.
$node->safe_psql('postgres',
	"BEGIN; UPDATE items SET v = 99 WHERE id = 1; PREPARE TRANSACTION 'p4';");
$node->safe_psql('postgres', "ROLLBACK PREPARED 'p4'");
is(served(), '13|13', 'after ROLLBACK PREPARED: the old row');
is(files(), 0, 'no file is left');

# 5. A file whose transaction never prepared (a crash during PREPARE) is
# reaped: it costs misses, no error.
mkdir $node->data_dir . '/pg_qcache';
open(my $fh, '>', $node->data_dir . '/pg_qcache/2pc-3') or die;
binmode $fh;
print $fh pack('l', 0);
close $fh;
$node->restart;
is(served(), '13|13', 'an orphan file does not stop the cache');
$node->poll_query_until('postgres', 'SELECT true') or die;
sleep 2;    # the sweeper reaps every second
is(files(), 0, 'the orphan file is reaped');

# 6. A standby promoted while a prepared transaction that wrote a watched
# table is pending: the standby has no record of it (records are not in the
# WAL), so its COMMIT PREPARED on the new primary stamps the database's
# wildcard.
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('twophase_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->safe_psql('postgres',
	"BEGIN; UPDATE items SET v = 14 WHERE id = 1; PREPARE TRANSACTION 'p6';");
$node->wait_for_catchup($standby);
$node->stop;
$standby->promote;
my $sq = "SELECT qcache_fetch('k', '$q', 0)->0->>'v', ($q)";
is($standby->safe_psql('postgres', $sq), '13|13',
	'promoted standby, before COMMIT PREPARED: the old row');
is($standby->safe_psql('postgres', $sq), '13|13', 'asked again (cached)');
$standby->safe_psql('postgres', "COMMIT PREPARED 'p6'");
is($standby->safe_psql('postgres', $sq), '14|14',
	'promoted standby, after COMMIT PREPARED of a transaction it has no record of: the new row');
$standby->stop;
done_testing();
