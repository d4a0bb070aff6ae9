# The Redis level's contract 7.1 with two PostgreSQL nodes and real Redis
# servers: an invalidation that did not reach Redis survives a clean
# restart of its node and is assumed after a crash; a reload that changes
# nothing drops nothing, and changing the URL or the prefix (and back)
# never lets a stale value through; a failed set flushes nothing else;
# direct readers do not see invalidated JSON; database names and
# encodings do not collide; big commits and big values are bounded; the
# password stays out of the log in every URL form; qcache_redis shows the
# state.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../perl";
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QcRedis;
use Test::More;
use Time::HiRes qw(time usleep);

my $redis = QcRedis->new;
$redis->start;
$redis->cli('ACL', 'SETUSER', 'qa', 'on', '>pwa', '~*', '&*', '+@all');
$redis->cli('ACL', 'SETUSER', 'qb', 'on', '>pwb', '~*', '&*', '+@all');
my $port = $redis->port;
my $url_a = "redis://qa:pwa\@127.0.0.1:$port";
my $url_b = "redis://qb:pwb\@127.0.0.1:$port";

# A: a generous timeout (it stores a 60 MB value); B: every read goes to
# Redis (qcache.l1_ttl = 0), and the default 50 ms timeout.
my $a = QcRedis::node('dur_a', $url_a, "qcache.redis_timeout = 5s\nrestart_after_crash = on\n");
my $b = QcRedis::node('dur_b', $url_b, "qcache.l1_ttl = 0\n");
QcRedis::wait_l2_up($a, $redis);
QcRedis::wait_l2_up($b, $redis);

sub sq { my ($n, $sql, $db) = @_; return $n->safe_psql($db // 'postgres', $sql); }

# Poll until $code returns true, or fail after $secs.
sub wait_for
{
	my ($what, $secs, $code) = @_;
	my $t0 = time;
	while (time - $t0 < $secs)
	{
		return 1 if $code->();
		usleep(50_000);
	}
	fail("timed out waiting for: $what");
	return 0;
}

sub redis_status { my ($n) = @_; return sq($n, 'SELECT state, owed, owes_all, serving FROM qcache_redis'); }

foreach my $n ($a, $b)
{
	sq($n, q{CREATE TABLE items (id int PRIMARY KEY, price int);
		INSERT INTO items SELECT g, g FROM generate_series(1, 10) g;
		SELECT qcache_watch('items', 'item:{id}')});
}

# ---------------------------------------------------------------------------
# Durable debt: Redis unreachable for A only, an UPDATE commits on A, A
# restarts cleanly, Redis comes back: nobody serves the old value, and
# only what A owed is dropped.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('item:1', '{"price": 1}', 0, ARRAY['item:1'])});
sq($a, q{SELECT qcache_set('other', '"untouched"', 0, ARRAY['other'])});
is(sq($b, q{SELECT qcache_get('item:1')}), '{"price": 1}', 'B reads item:1 from Redis');
is(sq($b, q{SELECT qcache_get('other')}), '"untouched"', 'B reads other from Redis');

$redis->cli('ACL', 'SETUSER', 'qa', 'off');
$redis->cli('CLIENT', 'KILL', 'USER', 'qa');
wait_for('A sees Redis down', 10, sub { redis_status($a) =~ /^down\|/ });
my $errs0 = sq($a, 'SELECT l2_errors FROM qcache_stats');
sq($a, 'UPDATE items SET price = 100 WHERE id = 1');
my ($state, $owed, $all, $serving) = split /\|/, redis_status($a);
is("$state|$owed|$all|$serving", 'down|2|f|f',
	'qcache_redis on A: down, owes two tags (item:1 and the table), not serving');
like(sq($a, q{SELECT last_error FROM qcache_redis}), qr/WRONGPASS|disabled|AUTH|invalid username/i,
	'qcache_redis shows the last error');
unlike(sq($a, q{SELECT last_error FROM qcache_redis}), qr/pwa/, 'without the password');
ok(sq($a, q{SELECT skipped FROM qcache_redis}) >= 1, 'and counts what it skipped');
ok(wait_for('l2_errors to move', 10, sub { sq($a, 'SELECT l2_errors FROM qcache_stats') > $errs0 }),
	'l2_errors moves while Redis is down');
is(sq($b, q{SELECT qcache_get('item:1')}), '{"price": 1}', 'meanwhile B still gets the old value (A is cut off)');

my $offa = -s $a->logfile;
$a->restart;
like(slurp_file($a->logfile, $offa), qr/this node owes Redis 2 invalidations from before its restart/,
	'A remembers its debt across a clean restart');
$redis->cli('ACL', 'SETUSER', 'qa', 'on');
QcRedis::wait_l2_up($a, $redis);
is(sq($b, q{SELECT qcache_get('item:1')}), '', 'after A is back, B no longer gets the old item:1');
is($redis->cli('EXISTS', 'qcache:postgres:item:1'), '0', 'and it has left Redis (direct readers)');
is(sq($b, q{SELECT qcache_get('other')}), '"untouched"', 'proportionate: other values stay in Redis');
unlike(slurp_file($a->logfile, $offa), qr/invalidated every value/, 'no global flush');
is(sq($a, 'SELECT state, owed, owes_all, serving FROM qcache_redis'), 'up|0|f|t', 'A is up and owes nothing');

# ---------------------------------------------------------------------------
# A crash restart of A: it assumes it owes everything.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('before:crash', '"c"', 0)});
is(sq($b, q{SELECT qcache_get('before:crash')}), '"c"', 'B reads before:crash');
$offa = -s $a->logfile;
{
	my $bg = $a->background_psql('postgres');
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	kill 'KILL', $pid;
	$bg->{run}->kill_kill;
}
$a->wait_for_log(qr/all server processes terminated; reinitializing/, $offa);
$a->wait_for_log(qr/the last stop was not clean; this node assumes it owes Redis every invalidation/, $offa);
$a->poll_query_until('postgres', 'SELECT true') or die;
QcRedis::wait_l2_up($a, $redis);
$a->wait_for_log(qr/invalidated every value in Redis/, $offa);
is(sq($b, q{SELECT qcache_get('before:crash')}), '', 'after the crash restart of A, B misses before:crash');
is($redis->cli('EXISTS', 'qcache:postgres:before:crash'), '0', 'and Redis no longer holds it');

# ---------------------------------------------------------------------------
# A reload that changes nothing drops nothing.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('keep:1', '"k"', 300)});
$offa = -s $a->logfile;
sq($a, 'SELECT pg_reload_conf()');
usleep(500_000);
is(sq($a, q{SELECT count(*) FROM qcache_entries WHERE key = 'keep:1'}), '1',
	"a reload that changes nothing keeps A's L1");
unlike(slurp_file($a->logfile, $offa), qr/dropped all/, 'and A drops nothing');

# ---------------------------------------------------------------------------
# The prefix changed and back: what A invalidated under the other prefix
# is not served under the first.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('pfx:1', '"p1"', 0, ARRAY['pt'])});
is(sq($b, q{SELECT qcache_get('pfx:1')}), '"p1"', 'B reads pfx:1');
$offa = -s $a->logfile;
sq($a, q{ALTER SYSTEM SET qcache.redis_prefix = 'other'; SELECT pg_reload_conf()});
$a->wait_for_log(qr/subscribed to invalidations/, $offa);
sq($a, q{SELECT qcache_invalidate_tag('pt')});
$offa = -s $a->logfile;
sq($a, q{ALTER SYSTEM RESET qcache.redis_prefix; SELECT pg_reload_conf()});
$a->wait_for_log(qr/subscribed to invalidations/, $offa);
QcRedis::wait_l2_up($a, $redis);
is(sq($b, q{SELECT qcache_get('pfx:1')}), '', 'back on the first prefix, B no longer gets pfx:1');

# ---------------------------------------------------------------------------
# The URL changed under a long statement: its commit stamps the new Redis,
# never the old one.
# ---------------------------------------------------------------------------
my $redis2 = QcRedis->new;
$redis2->start;
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $a->connstr('postgres'), '-c',
		  q{WITH s AS MATERIALIZED (SELECT pg_sleep(4)) UPDATE items SET price = price + 1 FROM s WHERE id = 2} ],
		'>', \$out, '2>', \$err);
	usleep(300_000);
	$offa = -s $a->logfile;
	my $url2 = 'redis://127.0.0.1:' . $redis2->port;
	sq($a, qq{ALTER SYSTEM SET qcache.redis_url = '$url2'; SELECT pg_reload_conf()});
	$a->wait_for_log(qr/subscribed to invalidations at Redis 127.0.0.1:${\ $redis2->port}/, $offa);
	ok($h->finish, 'the long UPDATE committed after the switch');
	QcRedis::wait_l2_up($a, $redis2);
	ok($redis2->cli('GET', 'qcache#t:postgres:item:2') > 0, 'its invalidation reached the new Redis');
	is($redis->cli('EXISTS', 'qcache#t:postgres:item:2'), '0', 'and never the Redis A left');
	$offa = -s $a->logfile;
	sq($a, qq{ALTER SYSTEM SET qcache.redis_url = '$url_a'; SELECT pg_reload_conf()});
	$a->wait_for_log(qr/subscribed to invalidations at Redis 127.0.0.1:$port/, $offa);
	QcRedis::wait_l2_up($a, $redis);
	$redis2->stop;
}

# ---------------------------------------------------------------------------
# Reading from Redis races with a removal from another node: the copy does
# not outlive the removal in L1 (a pause between the read and the copy).
# ---------------------------------------------------------------------------
sq($b, q{SELECT qcache_set('race:1', '"r"', 300)});
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-At', '-d', $a->connstr('postgres'), '-c',
		  q{SET qcache.debug_l2_copy_delay = 1500; SELECT qcache_get('race:1')} ],
		'>', \$out, '2>', \$err);
	usleep(600_000);
	sq($b, q{SELECT qcache_invalidate('race:1')});
	$h->finish;
	like($out, qr/"r"/, 'the read got the value before the removal');
	is(sq($a, q{SELECT count(*) FROM qcache_entries WHERE key = 'race:1'}), '0',
		"the removal that came during the read is not missed: A's L1 does not keep it");
}

# ---------------------------------------------------------------------------
# A failed set owes its key only: a stamp key of the wrong type, a 60 MB
# value that times out on B.  Nothing else is flushed.
# ---------------------------------------------------------------------------
$redis->cli('SADD', 'qcache#t:postgres:wt', 'x');
is(sq($a, q{SELECT qcache_set('wt:1', '"w"', 300, ARRAY['wt'])}), 't', 'a set over a stamp key of the wrong type works');
is(sq($b, q{SELECT qcache_get('wt:1')}), '"w"', 'and B reads it');
my $offb = -s $b->logfile;
sq($a, q{SELECT qcache_set('keep:2', '"k2"', 0)});
sq($b, q{SELECT qcache_set('big:b', '"old"', 0)});
sq($b, q{SET qcache.max_entry_size = '100MB'; SELECT qcache_set('big:b', to_jsonb(repeat('x', 60000000)), 300)});
QcRedis::wait_l2_up($b, $redis);
is(sq($b, q{SELECT qcache_get('keep:2')}), '"k2"', 'a 60 MB set that timed out on B flushed nothing else');
is(sq($a, q{SELECT qcache_get('big:b')}), '', 'its key is gone from Redis: A does not get the older value');
unlike(slurp_file($b->logfile, $offb), qr/invalidated every value/, 'no global flush on B');

# An oversized value in Redis is not read: A stores 60 MB, B misses at once.
sq($a, q{SET qcache.max_entry_size = '100MB'; SELECT qcache_set('big:a', to_jsonb(repeat('y', 60000000)), 300)});
ok($redis->cli('STRLEN', 'qcache:postgres:big:a') > 60000000, 'A stored 60 MB in Redis');
my $eb = sq($b, 'SELECT l2_errors FROM qcache_stats');
foreach (1 .. 3)
{
	my $t0 = time;
	is(sq($b, q{SELECT qcache_get('big:a') IS NULL}), 't', 'B misses the oversized value');
	ok(time - $t0 < 1, 'at once');
}
is(sq($b, 'SELECT l2_errors FROM qcache_stats'), $eb, 'without a Redis error');
is(sq($b, 'SELECT serving FROM qcache_redis'), 't', 'and its breaker stays closed');
sq($a, q{SELECT qcache_invalidate('big:a')});

# ---------------------------------------------------------------------------
# Direct readers: tag, commit-time and clear invalidations delete the keys.
# Global and database stamps have no TTL.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('dr:1', '"d"', 300, ARRAY['drt']), qcache_set('dr:2', '"d"', 300, ARRAY['item:3'])});
is($redis->cli('EXISTS', 'qcache:postgres:dr:1', 'qcache:postgres:dr:2'), '2', 'both in Redis');
is($redis->cli('SMEMBERS', 'qcache#i:postgres:drt'), 'qcache:postgres:dr:1', "the tag's index holds the value's key");
my $ittl = $redis->cli('TTL', 'qcache#i:postgres:drt');
ok($ittl > 290 && $ittl <= 300, "the index lives as long as its value ($ittl s): it does not leak");
sq($a, q{SELECT qcache_invalidate_tag('drt')});
is($redis->cli('EXISTS', 'qcache:postgres:dr:1', 'qcache#m:postgres:dr:1'), '0', 'a tag invalidation deletes the value and its metadata');
sq($b, 'UPDATE items SET price = 33 WHERE id = 3');
is($redis->cli('EXISTS', 'qcache:postgres:dr:2'), '0', "a trigger's commit on B deletes the value");
is($redis->cli('EXISTS', 'qcache#i:postgres:item:3'), '0', 'and the index');
sq($a, q{CREATE TABLE tt (id int); SELECT qcache_watch('tt', 'tt:{id}')});
sq($a, q{SELECT qcache_set('tr:1', '"t"', 300)});
is($redis->cli('EXISTS', 'qcache:postgres:tr:1'), '1', 'tr:1 in Redis');
sq($a, 'TRUNCATE tt');
is(sq($b, q{SELECT qcache_get('tr:1') IS NULL}), 't', 'after a TRUNCATE of a watched table B misses tr:1');
ok(wait_for('tr:1 to leave Redis', 5, sub { $redis->cli('EXISTS', 'qcache:postgres:tr:1') eq '0' }),
	"and the worker deletes the database's values from Redis for direct readers");
sq($a, q{SELECT qcache_clear()});
is($redis->cli('TTL', 'qcache#d:postgres'), '-1', 'the database stamp has no TTL');
is($redis->cli('TTL', 'qcache#g'), '-1', 'nor the global stamp');

# A foreign value of the expected length is a miss, not an error.  (Fetch
# results stay on their node in 1.3: a value stored with qcache_set.)
sq($a, q{SELECT qcache_set('ff', '[{"n": 1}]', 300)});
is($redis->cli('GET', 'qcache:postgres:ff'), '[{"n": 1}]', 'the value is in Redis');
$redis->cli('SET', 'qcache:postgres:ff', '[{"n": 1}}', 'KEEPTTL');
my ($rc, $out, $err) = $b->psql('postgres', q{SELECT qcache_get('ff') IS NULL});
is($rc, 0, 'qcache_get over a foreign value of the same length does not raise');
is($out, 't', 'it misses');

# ---------------------------------------------------------------------------
# Database names with ':' do not collide; text is UTF-8 in Redis and in
# each database's encoding in PostgreSQL.
# ---------------------------------------------------------------------------
foreach my $n ($a, $b)
{
	sq($n, q{CREATE DATABASE "x"; CREATE DATABASE "x:y"});
	sq($n, 'CREATE EXTENSION qcache', 'x');
	sq($n, 'CREATE EXTENSION qcache', 'x:y');
}
sq($a, q{CREATE DATABASE lat TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'});
sq($b, q{CREATE DATABASE lat TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'});
sq($_, 'CREATE EXTENSION qcache', 'lat') foreach ($a, $b);
sq($a, q{SELECT qcache_set('y:secret', '"x-secret"', 300)}, 'x');
is(sq($b, q{SELECT qcache_get('secret') IS NULL}, 'x:y'), 't',
	'database "x:y" key "secret" does not read database "x" key "y:secret"');
sq($a, q{SELECT qcache_set('secret', '"xy-secret"', 300)}, 'x:y');
is(sq($b, q{SELECT qcache_get('secret')}, 'x:y'), '"xy-secret"', 'while database "x:y" reads its own');
is($redis->cli('GET', 'qcache:x%3Ay:secret'), '"xy-secret"', 'under the percent-encoded name');

# (this file is UTF-8; the strings are bytes, and so is psql's output)
my $u = q{SET client_encoding = 'UTF8'; };
sq($a, $u . q{SELECT qcache_set('clé', '{"n": "é"}', 300)}, 'lat');
is($redis->cli('GET', 'qcache:lat:clé'), '{"n": "é"}', 'a LATIN1 database writes UTF-8 to Redis');
is(sq($b, $u . q{SELECT qcache_get('clé')}, 'lat'), '{"n": "é"}', 'a UTF8 database reads it right');
sq($b, $u . q{SELECT qcache_set('u:1', '{"n": "ü"}', 300), qcache_set('u:2', '{"n": "€"}', 300)}, 'lat');
is(sq($a, $u . q{SELECT qcache_get('u:1')}, 'lat'), '{"n": "ü"}', 'the LATIN1 database reads UTF-8 converted');
is(sq($a, $u . q{SELECT qcache_get('u:2') IS NULL}, 'lat'), 't', 'and misses a character it lacks');

# ---------------------------------------------------------------------------
# 200,000 tags in one commit: bounded, the database's stamp instead, other
# databases untouched.
# ---------------------------------------------------------------------------
sq($a, q{SELECT qcache_set('in:x', '"x"', 0)}, 'x');
sq($a, q{SELECT qcache_set('in:pg', '"pg"', 0)});
is(sq($b, q{SELECT qcache_get('in:pg')}), '"pg"', 'B reads in:pg before the big commit');
sq($a, q{CREATE TABLE many (id int); SELECT qcache_watch('many', 'm:{id}')});
my $t0 = time;
sq($a, 'INSERT INTO many SELECT g FROM generate_series(1, 200000) g');
my $took = time - $t0;
note(sprintf('200,000 rows with a templated trigger committed in %.1f s', $took));
QcRedis::wait_l2_up($a, $redis);
is(sq($b, q{SELECT qcache_get('in:pg') IS NULL}), 't', 'the database of the big commit is invalidated');
is(sq($b, q{SELECT qcache_get('in:x')}, 'x'), '"x"', 'another database is not');
is($redis->cli('EXISTS', 'qcache#t:postgres:m:1'), '0', 'no tag stamp was sent for the 200,000 tags');

# ---------------------------------------------------------------------------
# Passwords stay out of the log: blanks and quotes in the password, a
# mixed-case scheme, rediss:// (refused: no TLS).
# ---------------------------------------------------------------------------
$offa = -s $a->logfile;
($rc, $out, $err) = $a->psql('postgres', q{ALTER SYSTEM SET qcache.redis_url = 'rediss://:tls-pw-1@127.0.0.1:1'});
like($err, qr/TLS \(rediss:\/\/\) is not supported/, 'rediss:// is refused with a clear error');
($rc, $out, $err) = $a->psql('postgres', q{ALTER SYSTEM SET qcache.redis_url = 'Redis://:sp ace"quo-2@nohost:x'});
isnt($rc, 0, 'a malformed mixed-case URL is refused');
sq($a, q{ALTER SYSTEM SET qcache.redis_url = 'REDIS://:bl ank"pw-3@127.0.0.1:1'});
sq($a, 'SELECT pg_reload_conf()');
$a->wait_for_log(qr/parameter "qcache.redis_url" changed/, $offa);
usleep(300_000);
my $alog = slurp_file($a->logfile, $offa);
unlike($alog, qr/tls-pw|sp ace|quo-2|ace"|bl ank|pw-3/, 'no part of any password is in the log');
like($alog, qr/REDIS:\/\/\*{8}\@127.0.0.1:1/, 'the reload message shows the URL masked');

foreach my $n ($a, $b)
{
	unlike(slurp_file($n->logfile), qr/PANIC|server process .* terminated by signal 11|was terminated by signal 6/,
		$n->name . ': no backend crashed');
}
$a->stop;
$b->stop;
$redis->stop;
done_testing();
