#!/usr/bin/env python3
"""Bounded TCP traffic for build/e2e-sockets.sh: servers and clients whose
outcomes are known in advance (completed, refused, reset, timed out,
abandoned), so the test can say exactly what the kernel must count.

Every client exits non-zero if a connection does not end the way it should.

  serve ADDR PORT echo|sink|rst   serve until killed (a thread per connection)
  echo ADDR PORT N BYTES          N connections: send BYTES, read them back
  bulk ADDR PORT BYTES            one connection: send BYTES to a sink server
  refused ADDR PORT N             N connects to a closed port: ECONNREFUSED
  reset ADDR PORT N               N connections to an rst server: ECONNRESET
  timeout ADDR PORT               connect with TCP_SYNCNT 1 to a dropped port: ETIMEDOUT
  abandon ADDR PORT N             N non-blocking connects to a dropped port, closed in SYN-SENT
  hold ADDR PORT N BYTES          N connections sending BYTES each, held open until stdin closes
  open ADDR PORT N                N connections, no data, held open until stdin closes

Servers whose connections have a known owner (the socket layer's process
attribution, compared with `ss -tnpie`): each prints "ready" once it
listens, then holds every connection it accepts until the peer closes.

  owners ADDR PORT NAME [OPTION...]
      NAME becomes the process's command name (prctl PR_SET_NAME) before
      it listens. Options:
        reuseport         SO_REUSEPORT on the listener
        v6only            IPV6_V6ONLY on an IPv6 listener (else dual stack)
        threads=N         N threads accept on the one listener
        prefork=N         the parent listens, N children (named NAME1..)
                          accept; the parent accepts nothing
        exec              listen, then exec python3 again, which accepts
                          (its command name is then python3's)
        fork-after-accept the server accepts, a child (NAME-c) serves,
                          the server closes its copy
"""
import ctypes
import errno
import os
import selectors
import signal
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def connect(addr, port, timeout=30):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((addr, port))
    return s


def recv_exact(s, n):
    got = 0
    while got < n:
        b = s.recv(min(65536, n - got))
        if not b:
            raise RuntimeError(f"peer closed after {got} of {n} bytes")
        got += len(b)


def serve(addr, port, mode):
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family(addr) == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    ls.bind((addr, port))
    ls.listen(128)

    def handle(c):
        try:
            if mode == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
                return
            total = 0
            while True:
                b = c.recv(65536)
                if not b:
                    break
                total += len(b)
                if mode == "echo":
                    c.sendall(b)
            if mode == "sink":
                c.sendall(total.to_bytes(8, "big"))
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def echo(addr, port, n, size):
    data = b"e" * size
    for _ in range(n):
        s = connect(addr, port)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        recv_exact(s, size)
        if s.recv(1):
            raise RuntimeError("echo server sent more than it got")
        s.close()


def bulk(addr, port, size):
    s = connect(addr, port, timeout=60)
    chunk = b"b" * 65536
    left = size
    while left > 0:
        n = min(left, len(chunk))
        s.sendall(chunk[:n])
        left -= n
    s.shutdown(socket.SHUT_WR)
    got = b""
    while len(got) < 8:
        b = s.recv(8 - len(got))
        if not b:
            break
        got += b
    if int.from_bytes(got, "big") != size:
        raise RuntimeError(f"sink got {int.from_bytes(got, 'big')} of {size} bytes")
    s.close()


def refused(addr, port, n):
    for _ in range(n):
        try:
            connect(addr, port).close()
        except ConnectionRefusedError:
            continue
        raise RuntimeError(f"{addr} port {port} accepted a connection")


def reset(addr, port, n):
    for _ in range(n):
        try:
            # The RST can beat connect() back to the caller: it then
            # reports the reset itself (the handshake did complete).
            s = connect(addr, port)
            b = s.recv(1)
        except ConnectionResetError:
            continue
        raise RuntimeError(f"expected a reset, got {b!r}")


def timeout(addr, port):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
    s.settimeout(30)
    try:
        s.connect((addr, port))
    except OSError as e:
        if e.errno == errno.ETIMEDOUT:
            return
        raise
    raise RuntimeError("connect to a dropped port succeeded")


def abandon(addr, port, n):
    for _ in range(n):
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.setblocking(False)
        e = s.connect_ex((addr, port))
        if e != errno.EINPROGRESS:
            raise RuntimeError(f"non-blocking connect: {errno.errorcode.get(e, e)}")
        time.sleep(0.1)
        s.close()


def hold(addr, port, n, size):
    conns = []
    for _ in range(n):
        s = connect(addr, port)
        s.sendall(b"h" * size)
        recv_exact(s, size)
        conns.append(s)
    print("ready", flush=True)
    sys.stdin.read()
    for s in conns:
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()


def open_conns(addr, port, n):
    conns = [connect(addr, port) for _ in range(n)]
    print("ready", flush=True)
    sys.stdin.read()
    for s in conns:
        s.close()


def set_comm(name):
    """The calling thread's command name; on the main thread, the process's
    (what ss -p shows)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, name.encode()[:15], 0, 0, 0) != 0:  # PR_SET_NAME
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")


def owners_listener(addr, port, opts):
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if "reuseport" in opts:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family(addr) == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if "v6only" in opts else 0)
    ls.bind((addr, port))
    ls.listen(4096)
    return ls


def hold_accepted(ls, name, opts):
    """Accepts on ls and holds each connection until its peer closes. The
    listener is non-blocking: other processes or threads may take a
    connection first."""
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is ls:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                if "fork-after-accept" in opts:
                    if os.fork() == 0:
                        set_comm(name + "-c")
                        ls.close()
                        c.recv(1)  # until the peer closes
                        os._exit(0)
                    c.close()
                    continue
                sel.register(c, selectors.EVENT_READ)
            else:
                c = key.fileobj
                try:
                    b = c.recv(65536)
                except OSError:
                    b = b""
                if not b:
                    sel.unregister(c)
                    c.close()


def owners(addr, port, name, opts):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # reap fork-after-accept children
    if addr == "fd":  # after exec: the listener is descriptor PORT
        ls = socket.socket(fileno=port)
    else:
        set_comm(name)
        ls = owners_listener(addr, port, opts)
        if "exec" in opts:
            os.set_inheritable(ls.fileno(), True)
            os.execv(sys.executable, [sys.executable, __file__, "owners", "fd", str(ls.fileno()), name])
    prefork = next((int(o[8:]) for o in opts if o.startswith("prefork=")), 0)
    threads = next((int(o[8:]) for o in opts if o.startswith("threads=")), 1)
    if prefork:
        for i in range(prefork):
            if os.fork() == 0:
                set_comm(f"{name}{i + 1}")
                hold_accepted(ls, name, opts)
        print("ready", flush=True)
        while True:
            signal.pause()
    for _ in range(threads - 1):
        threading.Thread(target=hold_accepted, args=(ls, name, opts), daemon=True).start()
    print("ready", flush=True)
    hold_accepted(ls, name, opts)


def main(argv):
    cmd, addr, port, rest = argv[1], argv[2], int(argv[3]), argv[4:]
    if cmd == "serve":
        serve(addr, port, rest[0])
    elif cmd == "echo":
        echo(addr, port, int(rest[0]), int(rest[1]))
    elif cmd == "bulk":
        bulk(addr, port, int(rest[0]))
    elif cmd == "refused":
        refused(addr, port, int(rest[0]))
    elif cmd == "reset":
        reset(addr, port, int(rest[0]))
    elif cmd == "timeout":
        timeout(addr, port)
    elif cmd == "abandon":
        abandon(addr, port, int(rest[0]))
    elif cmd == "hold":
        hold(addr, port, int(rest[0]), int(rest[1]))
    elif cmd == "open":
        open_conns(addr, port, int(rest[0]))
    elif cmd == "owners":
        owners(addr, port, rest[0], rest[1:])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
