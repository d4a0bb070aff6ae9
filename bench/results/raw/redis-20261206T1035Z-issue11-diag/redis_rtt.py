# bench/results/raw/.../redis_rtt.py: one Redis round trip of the L2 get, measured on a scratch redis-server
# (port 26592, keys shaped as qcache writes them: a 997-byte value, its meta, both stamps).
# Modes: get = GET of the value; script = EVALSHA of the get script (src/redis.c, 2026-12-06);
# native = GETRANGE value + PTTL value + MGET meta, global stamp, db stamp, pipelined.
# Prints wall µs per round trip and Redis's CPU µs per round trip (/proc/<pid>/stat).
import socket, time, sys
def cmd(*a):
    out = b'*%d\r\n' % len(a)
    for x in a:
        x = x.encode() if isinstance(x, str) else x
        out += b'$%d\r\n%s\r\n' % (len(x), x)
    return out
mode, n = sys.argv[1], int(sys.argv[2])
if mode == 'script':
    req = cmd('EVALSHA', '3bd0a5da1570632ffb3d07476ff6b24a456bd468', '4', 'qcache:postgres:k:5', 'qcache#m:postgres:k:5', 'qcache#g', 'qcache#d:postgres', 'qcache#t:postgres:', '4194304')
elif mode == 'native':
    req = cmd('GETRANGE', 'qcache:postgres:k:5', '0', '4194304') + cmd('PTTL', 'qcache:postgres:k:5') + cmd('MGET', 'qcache#m:postgres:k:5', 'qcache#g', 'qcache#d:postgres')
else:
    req = cmd('GET', 'qcache:postgres:k:5')
s = socket.create_connection(('127.0.0.1', 26592)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(req); first = s.recv(65536); L = len(first)
while True:
    try:
        s.settimeout(0.05); more = s.recv(65536); L += len(more)
    except socket.timeout: break
s.settimeout(None)
pid = int(open('/tmp/s4wt11/r/redis.pid').read())
def ticks(): f = open('/proc/%d/stat' % pid).read().split(); return int(f[13]) + int(f[14])
t0 = ticks(); w0 = time.time()
for i in range(n):
    s.sendall(req); got = 0
    while got < L: got += len(s.recv(65536))
w1 = time.time(); t1 = ticks()
print(mode, 'reply bytes', L, 'wall us/op %.1f' % ((w1 - w0) * 1e6 / n), 'redis cpu us/op %.1f' % ((t1 - t0) * 1e4 / n))
