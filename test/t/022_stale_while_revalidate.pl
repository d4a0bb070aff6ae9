# Stale-while-revalidate (SPEC 11): past its ttl, within stale_ttl, exactly
# one of eight concurrent sessions recomputes the value while the seven
# others are served the old one at once; and staleness from a committed
# write is never served, window or not.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('swr');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'qcache'\n");
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE TABLE swr_t (v int);
INSERT INTO swr_t VALUES (1);
SET client_min_messages = warning;
SELECT qcache_watch('swr_t');
});

# the query takes 1 s and returns when it ran and what it read
my $fetch = q{SELECT qcache_fetch('swr', 'SELECT v, clock_timestamp()::text AS at, pg_sleep(1) FROM swr_t', 1, stale_ttl => 60)->0};

sub stats
{
	return $node->safe_psql('postgres', 'SELECT sets || \' \' || hits FROM qcache_stats');
}

# Run the fetch in eight sessions at once; return [output, seconds] each.
sub eight
{
	my @h;
	my @out = ('') x 8;
	my @took;
	my $t0 = time;
	for my $i (0 .. 7)
	{
		push @h, IPC::Run::start(
			[ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr('postgres'), '-c', $fetch ],
			'>', \$out[$i], '2>&1', IPC::Run::timeout(60));
	}
	my $left = 8;
	while ($left > 0)
	{
		for my $i (0 .. 7)
		{
			next if defined $took[$i];
			if (!$h[$i]->pumpable)
			{
				$h[$i]->finish;
				$took[$i] = time - $t0;
				$left--;
			}
			else { $h[$i]->pump_nb; }
		}
		usleep(2_000);
	}
	chomp @out;
	return map { [ $out[$_], $took[$_] ] } 0 .. 7;
}

my $first = $node->safe_psql('postgres', $fetch);
like($first, qr/"v": 1/, 'the first fetch computes the value');
sleep 1.2;    # past the ttl, within stale_ttl

my ($sets0) = split / /, stats();
my @r = eight();
my @fresh = grep { $_->[0] ne $first } @r;
my @stale = grep { $_->[0] eq $first } @r;
note(join("\n", map { sprintf('%.3f s: %s', $_->[1], $_->[0]) } @r));
is(scalar(@fresh), 1, 'exactly one session recomputed the value');
is(scalar(@stale), 7, 'seven were served the old value');
my ($slowest_stale) = sort { $b <=> $a } map { $_->[1] } @stale;
cmp_ok($slowest_stale, '<', 0.9, 'at once, not after the 1 s recomputation');
cmp_ok($fresh[0]->[1], '>=', 1, 'the one that recomputed paid for it');
my ($sets1) = split / /, stats();
is($sets1 - $sets0, 1, 'one value stored');

# the refreshed value is served fresh now
is($node->safe_psql('postgres', $fetch), $fresh[0]->[0], 'the refreshed value is served');

# a committed write: the old value is never served, window or not
$node->safe_psql('postgres', 'UPDATE swr_t SET v = 2');
sleep 1.2;
@r = eight();
is(scalar(grep { $_->[0] =~ /"v": 1/ } @r), 0,
	'after a committed write no session gets the old value');
is(scalar(grep { $_->[0] =~ /"v": 2/ } @r), 8, 'all get the new one');

$node->stop;
done_testing();
