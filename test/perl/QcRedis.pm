# A real redis-server for the TAP tests: started on a free loopback port
# (and a unix socket) in a test directory, stopped by its pid at the end,
# also when a test dies.
package QcRedis;

use strict;
use warnings;

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);
use Test::More;

my @running;

# QcRedis->new(password => 'pw', args => [...], conf => '...', bin => '...'):
# a stopped server; args are more options (--replicaof ...), conf the
# text of a config file given first (a sentinel needs one it can rewrite),
# bin the program (redis-sentinel for a sentinel; redis-server by default)
sub new
{
	my ($class, %opt) = @_;
	my $self = bless {
		port => PostgreSQL::Test::Cluster::get_free_port(),
		dir => PostgreSQL::Test::Utils::tempdir_short(),
		password => $opt{password},
		args => $opt{args} // [],
		conf => $opt{conf},
		bin => $opt{bin} // 'redis-server',
		pid => undef,
	}, $class;
	$self->{socket} = "$self->{dir}/redis.sock";
	return $self;
}

sub port   { $_[0]->{port} }
sub socket { $_[0]->{socket} }

# Start the server and wait until it answers.
sub start
{
	my ($self) = @_;
	my @cmd = ($self->{bin});
	if (defined $self->{conf})
	{
		# a config file first (a sentinel needs one it can rewrite)
		my $f = "$self->{dir}/server.conf";
		open(my $fh, '>', $f) or die "$f: $!";
		print $fh $self->{conf};
		close $fh;
		push @cmd, $f;
	}
	push @cmd, (
		'--port', $self->{port}, '--bind', '127.0.0.1',
		'--unixsocket', $self->{socket}, '--unixsocketperm', '700',
		'--dir', $self->{dir}, '--dbfilename', 'dump.rdb',
		'--save', '3600 1', '--appendonly', 'no',
		'--enable-debug-command', 'local',
		'--logfile', "$self->{dir}/redis.log", '--daemonize', 'no');
	push @cmd, '--requirepass', $self->{password} if defined $self->{password};
	push @cmd, @{ $self->{args} };
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>>', "$self->{dir}/redis.out");
		open(STDERR, '>&', \*STDOUT);
		exec(@cmd) or die "exec $self->{bin}: $!";
	}
	$self->{pid} = $pid;
	push @running, $self;
	for (1 .. 200)
	{
		my $pong = $self->cli('PING');
		return if defined $pong && $pong eq 'PONG';
		usleep(25_000);
	}
	die "redis-server did not start on port $self->{port}";
}

# Stop the server by its pid (SIGTERM: it saves its data first) and wait.
sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
	@running = grep { $_ != $self } @running;
}

# Kill the server with SIGKILL (no save), as a crash, and reap it.
sub kill9
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
	@running = grep { $_ != $self } @running;
}

# Run redis-cli with arguments; returns its trimmed output.
sub cli
{
	my ($self, @args) = @_;
	my @cmd = ('redis-cli', '-h', '127.0.0.1', '-p', $self->{port});
	push @cmd, '--no-auth-warning', '-a', $self->{password}
	  if defined $self->{password};
	my ($out, $err) = ('', '');
	IPC::Run::run([ @cmd, @args ], '<', \undef, '>', \$out, '2>', \$err);
	chomp $out;
	return $out;
}

# The URL of this server, over TCP.
sub url
{
	my ($self, $db) = @_;
	my $auth = defined $self->{password} ? ":$self->{password}\@" : '';
	return "redis://${auth}127.0.0.1:$self->{port}" . (defined $db ? "/$db" : '');
}

END
{
	my $rc = $?;
	$_->stop foreach @running;
	$? = $rc;
}

# A PostgreSQL node with qcache preloaded and pointed at a Redis URL.
sub node
{
	my ($name, $url, $extra, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'qcache'
qcache.memory = 16MB
qcache.redis_url = '$url'
qcache.redis_timeout = 50ms
log_min_messages = warning
log_min_error_statement = error
} . ($extra // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION qcache');
	return $node;
}

# Wait until a node writes through to Redis (its subscriber is up, the
# breaker closed and any lost write made up for): a fresh probe key set on
# the node appears in Redis.
sub wait_l2_up
{
	my ($node, $redis, $db) = @_;
	my @sel = defined $db ? ('-n', $db) : ();
	for (1 .. 400)
	{
		$redis->cli(@sel, 'DEL', 'qcache:postgres:__probe');
		$node->safe_psql('postgres',
			"SELECT qcache_set('__probe', '1'::jsonb, 60)");
		return 1
		  if $redis->cli(@sel, 'EXISTS', 'qcache:postgres:__probe') eq '1'
		  && $node->safe_psql('postgres', 'SELECT 1') eq '1';
		usleep(25_000);
	}
	die 'qcache never reached Redis from ' . $node->name;
}

1;
