#!/usr/bin/env python3
"""A client that reads one answer slowly, for tests/integration/shared_answer.sh.

  slow_reader.py PORT PATH TOKEN DIR

Connects with a small receive buffer and segment size, sends one GET and reads the head and a little of the body.
Then it waits until the transfer stalls and writes DIR/stalled: one line "total read rx tx", the
body's length, the body bytes read so far, and the bytes queued in the kernel on each side (this
socket's receive queue, the server socket's send queue, from /proc/net/tcp and /proc/net/tcp6).
When total > read + rx + tx, the server still holds part of the answer itself: its request is
not over.  It then waits for DIR/go, reads the rest in small steps with pauses, and writes the
body to DIR/body (and "done" to DIR/done).
"""
import os
import socket
import sys
import time

port, path, token, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def queues(local_port, remote_port):
    """(rx, tx) of the socket local_port -> remote_port on 127.0.0.1, from /proc/net/tcp."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            lp = int(f[1].rsplit(":", 1)[1], 16)
            rp = int(f[2].rsplit(":", 1)[1], 16)
            if lp == local_port and rp == remote_port:
                tx, rx = (int(x, 16) for x in f[4].split(":"))
                return rx, tx
    return None


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
# A small segment size, announced in the SYN: loopback's 64 KB segments would let the server's
# send buffer start at megabytes and swallow the whole answer at once; with small ones it starts
# (and, the window being small, stays) at tens of KB.
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
s.connect(("127.0.0.1", port))
s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Aws-Parameters-Secrets-Token: %s\r\n\r\n"
           % (path, token)).encode())
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(1024)
    if not chunk:
        sys.exit("connection closed before the head")
    data += chunk
head, body = data.split(b"\r\n\r\n", 1)
total = None
for line in head.split(b"\r\n")[1:]:
    name, _, value = line.partition(b":")
    if name.strip().lower() == b"content-length":
        total = int(value.strip())
if total is None:
    sys.exit("no Content-Length")
me = s.getsockname()[1]

# Stalled: the queues stop changing (the server's send buffer is as full as it gets).
last = None
for _ in range(100):
    time.sleep(0.05)
    mine, theirs = queues(me, port), queues(port, me)
    if mine is None or theirs is None:
        continue
    if (mine[0], theirs[1]) == last:
        break
    last = (mine[0], theirs[1])
rx, tx = last if last else (total, total)  # unknown: the test must not pass on it
with open(os.path.join(out, "stalled.tmp"), "w") as f:
    f.write("%d %d %d %d\n" % (total, len(body), rx, tx))
os.rename(os.path.join(out, "stalled.tmp"), os.path.join(out, "stalled"))

while not os.path.exists(os.path.join(out, "go")):
    time.sleep(0.02)
while len(body) < total:
    chunk = s.recv(min(4096, total - len(body)))
    if not chunk:
        break
    body += chunk
    time.sleep(0.002)
s.close()
with open(os.path.join(out, "body"), "wb") as f:
    f.write(body)
with open(os.path.join(out, "done"), "w") as f:
    f.write("done\n")
