# examples/cached.py, the FastAPI-style decorator of the README, run with
# psycopg 3 (Debian's python3-psycopg) against a real server: a repeat call
# is a hit, a committed write to the watched table makes the next call
# recompute, and the arguments travel as parameters.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $examples = abs_path(dirname(__FILE__) . '/../../examples');

my $node = PostgreSQL::Test::Cluster->new('examples');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'qcache'\n");
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION qcache;
CREATE TABLE products (id int PRIMARY KEY, category_id int, price numeric);
INSERT INTO products VALUES (1, 7, 2.50), (2, 7, 10.00), (3, 9, 4.10);
SET client_min_messages = warning;
SELECT qcache_watch('products', 'category:{category_id}');
});

my ($out, $err);
my $ok = IPC::Run::run([ '/usr/bin/python3', "$examples/demo_cached.py", $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);
note("stdout: $out");
note("stderr: $err") if $err ne '';
ok($ok, 'examples/demo_cached.py passes against the server');
like($out, qr/^first: \[\{'total': 12\.5, 'products': 2\}\] again: .* hits: 1$/m,
	'the repeat call is a hit');
like($out, qr/^after the update: \[\{'total': 14\.5, 'products': 2\}\]$/m,
	'the committed write is seen');
like($out, qr/^ok$/m, 'all of its checks passed');

$node->stop;
done_testing();
