"""bench/scale's Redis side (the ZooKeeper side is sidecar/BenchTool.java).
Plain sockets and RESP, no client library, so that the tool itself costs
Redis as little as possible.

  ping <port>                           PING, one at a time, until SIGTERM; prints
                                        "pings p50 p99 max" (ms)
  count <port> <pattern>                PSUBSCRIBE pattern; prints "ready", then on
                                        SIGTERM the number of messages
  load <port> <prefix> <root> <dirs> <leaves> <value bytes>
                                        SET the keys a mirror of BenchTool's populated
                                        tree holds, pipelined (the plain-Redis baseline)
  cluster-load <port> <prefix> <root> <dirs> <leaves> <value bytes>
                                        the same into a Redis Cluster (<port>: any node),
                                        each key to its slot's master (bench/cluster)
  wait <port> <prefix> <tag> <paths file> <timeout s>
                                        until every key PREFIX + path of the file holds
                                        a value starting with tag-; exit 1 on timeout
"""

import signal
import socket
import sys
import time


def connect(port):
    sock = socket.create_connection(("127.0.0.1", int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Replies:
    """Reads RESP replies off a socket."""

    def __init__(self, sock):
        self.file = sock.makefile("rb", buffering=1 << 16)

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")


stop = False


def on_term(*_):
    global stop  # pylint: disable=global-statement
    stop = True


def ping(port):
    sock = connect(port)
    request = command("PING")
    latencies = []
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    clock = time.perf_counter_ns
    while not stop:
        sent = clock()
        sock.sendall(request)
        reply = b""
        while len(reply) < 7:  # +PONG\r\n
            chunk = sock.recv(64)
            if not chunk:
                sys.exit("ping: connection closed")
            reply += chunk
        latencies.append(clock() - sent)
    latencies.sort()
    n = len(latencies)
    if not n:
        print("0 0 0 0")
        return
    ms = lambda ns: f"{ns / 1e6:.3f}"  # noqa: E731
    print(n, ms(latencies[n // 2]), ms(latencies[n * 99 // 100]), ms(latencies[-1]), flush=True)


def count(port, pattern):
    sock = connect(port)
    sock.sendall(command("PSUBSCRIBE", pattern))
    replies = Replies(sock)
    replies.read()  # the subscription's confirmation
    messages = 0

    def report(*_):
        print(messages, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print("ready", flush=True)
    while True:
        replies.read()
        messages += 1


def load(port, prefix, root, dirs, leaves, size):
    sock = connect(port)
    replies = Replies(sock)
    value = b"v" * int(size)
    sent = 0

    def flush(batch):
        nonlocal sent
        sock.sendall(b"".join(batch))
        sent += len(batch)
        batch.clear()

    batch = [command("SET", prefix + root, b"")]
    for d in range(int(dirs)):
        directory = f"{root}/d{d}"
        batch.append(command("SET", prefix + directory, b""))
        for leaf in range(int(leaves)):
            batch.append(command("SET", f"{prefix}{directory}/n{leaf}", value))
        if len(batch) >= 10_000:
            # At most one batch of replies outstanding: read the previous one's.
            for _ in range(sent):
                replies.read()
            sent = 0
            flush(batch)
    flush(batch)
    for _ in range(sent):
        replies.read()


def cluster_load(port, prefix, root, dirs, leaves, size):
    # CRC16-XMODEM is binascii's crc_hqx; these keys have no hash tag.
    import binascii  # pylint: disable=import-outside-toplevel

    sock = connect(port)
    sock.sendall(command("CLUSTER", "SLOTS"))
    owner = {}
    for first, last, master, *_ in Replies(sock).read():
        for slot in range(int(first), int(last) + 1):
            owner[slot] = int(master[1])
    links = {}
    for p in set(owner.values()):
        link = connect(p)
        # socket, its replies, the batch to send, the replies outstanding
        links[p] = [link, Replies(link), [], 0]
    value = b"v" * int(size)

    def send(key, val):
        p = owner[binascii.crc_hqx(key, 0) % 16384]
        batch = links[p][2]
        batch.append(command("SET", key, val))
        if len(batch) >= 5_000:
            flush(p)

    def flush(p):
        link, replies, batch, outstanding = links[p]
        for _ in range(outstanding):
            replies.read()
        link.sendall(b"".join(batch))
        links[p][2:] = [[], len(batch)]

    send((prefix + root).encode(), b"")
    for d in range(int(dirs)):
        directory = f"{root}/d{d}"
        send((prefix + directory).encode(), b"")
        for leaf in range(int(leaves)):
            send(f"{prefix}{directory}/n{leaf}".encode(), value)
    for p in list(links):
        flush(p)
        flush(p)


def wait(port, prefix, tag, paths_file, timeout):
    with open(paths_file, encoding="utf-8") as f:
        keys = [prefix + line.strip() for line in f if line.strip()]
    sock = connect(port)
    replies = Replies(sock)
    expected = (tag + "-").encode()
    deadline = time.monotonic() + float(timeout)
    while keys:
        sock.sendall(command("MGET", *keys))
        values = replies.read()
        keys = [k for k, v in zip(keys, values) if not (v or b"").startswith(expected)]
        if not keys:
            break
        if time.monotonic() > deadline:
            sys.exit(f"wait: {len(keys)} keys still without the new data")
        time.sleep(0.005)


def main():
    tools = {"ping": ping, "count": count, "load": load, "cluster-load": cluster_load, "wait": wait}
    if len(sys.argv) < 2 or sys.argv[1] not in tools:
        sys.exit(__doc__)
    tools[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
