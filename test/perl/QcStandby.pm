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

1;
