# A set that needs room frees a chain of killed entries (store.c,
# qc_help_killed), and that work has CHECK_FOR_INTERRUPTS in it.  A set
# interrupted there (statement_timeout) must leave the gauges exact: the
# entry it had reserved under max_entries (qc_reserve_entry) must not stay
# counted, and the killed entries of the chain it took from the sweeper's
# queue must still be freed.  At quiescence qcache_stats.entries equals
# the count of qcache_entries, and after qcache_clear it is 0 (SPEC 6).
#
# The sweeper is stopped (SIGSTOP) while the sets run, so that the killed
# chains wait in the queue for the sets, not for it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('kill_help');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'qcache'\n"
	  . "qcache.memory = 32MB\n"
	  . "qcache.max_entries = 65536\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION qcache');

my $sweeper = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'qcache sweeper'");
like($sweeper, qr/^\d+$/, 'the sweeper runs');

my $timeouts = 0;
for my $round (1 .. 3)
{
	# fill the area with entries of 4 tags (the last sets evict)
	$node->safe_psql('postgres',
		"SELECT count(qcache_set('b:$round:' || i, to_jsonb(repeat('x', 2000)),"
		  . " NULL, ARRAY['big' || (i % 4)])) FROM generate_series(1, 20000) i");
	kill 'STOP', $sweeper;
	my $n = $node->safe_psql('postgres',
		"SELECT sum(qcache_invalidate_tag('big' || i)) FROM generate_series(0, 3) i");
	ok($n > 4000, "round $round: the tags' entries killed ($n)");

	# each of these sets finds the area full of killed entries and frees
	# a chain of them first; most are interrupted while doing it
	for my $i (1 .. 20)
	{
		my ($rc) = $node->psql('postgres',
			"SET statement_timeout = '1ms'; "
			  . "SELECT qcache_set('n:$round:$i', to_jsonb(repeat('y', 2000)))");
		$timeouts++ if $rc != 0;
	}
	kill 'CONT', $sweeper;
	sleep 3;				# a few sweeper ticks

	my ($entries, $listed) = split /\|/, $node->safe_psql('postgres',
		'SELECT entries, (SELECT count(*) FROM qcache_entries()) FROM qcache_stats()');
	is($entries, $listed,
		"round $round: qcache_stats.entries is the number of entries listed");
}
# (on 25a5527 some of the sets time out in the middle of the chain; a
# fix that holds interrupts there may let none time out: not asserted)
note "sets interrupted: $timeouts";

$node->safe_psql('postgres', 'SELECT qcache_clear()');
sleep 2;
my ($entries, $bytes) = split /\|/,
  $node->safe_psql('postgres', 'SELECT entries, bytes_used FROM qcache_stats()');
is($entries, 0, 'after qcache_clear no entry is counted');

# what is left counts against max_entries: a cache emptied by a clear
# takes max_entries small entries without evicting any of them
$node->safe_psql('postgres', 'SELECT qcache_reset_stats()');
$node->safe_psql('postgres',
	"SELECT count(qcache_set('s:' || i, '1')) FROM generate_series(1, 65536) i");
is($node->safe_psql('postgres', 'SELECT evictions_memory FROM qcache_stats()'),
	0, 'an empty cache takes max_entries entries without evicting');

$node->stop;
done_testing();
