# Helpers for the hot standby TAP tests (qcache.wal_invalidation, SPEC 12).
package QcStandby;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use Time::HiRes qw(usleep);

# wait_wal_status($primary, $node, $status): poll qcache_wal_status() on
# $node until it says $status, for up to 30 s; a standby hears its primary
# once it replays the STATE record the primary's sweeper writes after a
# checkpoint, so a CHECKPOINT is requested on $primary every 2 s.  Returns
# true if the status was reached.
sub wait_wal_status
{
	my ($primary, $node, $status) = @_;

	for (my $i = 0; $i < 300; $i++)
	{
		$primary->safe_psql('postgres', 'CHECKPOINT') if $i % 20 == 0;
		return 1
		  if $node->safe_psql('postgres', 'SELECT qcache_wal_status()') eq $status;
		usleep(100_000);
	}
	return 0;
}

# primary($name, $conf, $streaming): a started primary with qcache preloaded,
# $conf (lines of postgresql.conf) and the extension created;
# allows_streaming is $streaming (1, or 'logical').
sub primary
{
	my ($name, $conf, $streaming) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(allows_streaming => $streaming // 1);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'qcache'\n$conf" . "log_min_messages = warning\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION qcache');
	return $node;
}

# standby($from, $name, $conf): a streaming standby of $from made from a
# fresh base backup of it, with $conf (lines of postgresql.conf, or
# undef), started.
sub standby
{
	my ($from, $name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$from->backup("bk_$name");
	$node->init_from_backup($from, "bk_$name", has_streaming => 1);
	$node->append_conf('postgresql.conf', $conf) if defined $conf;
	$node->start;
	return $node;
}

1;
