#!/usr/bin/env python3
"""Traffic for build/e2e-detect.sh: everyday client and server behaviour,
spoofed floods, and a sniffer that stamps when an attack's first packet
crosses the wire. Standard library only. Every loop is bounded in count and
time; every client prints one JSON line saying what completed.

Subcommands (see --help of each):
  serve-tcp   accept on ports, answer each connection with a few bytes
  serve-udp   answer every datagram on ports
  connect     TCP connections to host:port pairs (page load, scrapes, BitTorrent)
  query       UDP request/response to host:port pairs (DNS, SNMP, SSDP)
  rst-clients connections that each end with a RST (SO_LINGER 0)
  keepalive-server, keepalive-clients
              a service that resets its keep-alive clients and restarts
  retry       one process retrying one refused service
  chatter     multicast and broadcast announcements from many addresses
  nd          IPv6 router solicitations, neighbour solicitations, MLD reports
  traceroute  UDP and TCP probes with rising TTL
  flood       spoofed SYN/UDP/ICMP frames (IPv4 or IPv6) through AF_PACKET
  sniff       the time of the first frame from an address on an interface
  merge       sums the JSON lines of several clients
  watch       when an alert (and its block) first shows in /status
  collide     a hash seed under which two addresses share a scan slot
"""

import argparse
import ipaddress
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time


def out(**kw):
    print(json.dumps(kw), flush=True)


def targets(spec):
    """'198.19.1.1-40:443,80' (hosts .1 to .40, two ports each) or
    '2001:db8:2::1-40:53' (the range is decimal, written in hex): the
    (host, port) pairs; several specs joined with ';'."""
    pairs = []
    for item in spec.split(';'):
        hosts, _, ports = item.rpartition(':')
        v6 = ':' in hosts
        sep = ':' if v6 else '.'
        prefix, _, last = hosts.rpartition(sep)
        if '-' in last:
            lo, hi = last.split('-')
            hs = [f"{prefix}{sep}{n:x}" if v6 else f"{prefix}{sep}{n}"
                  for n in range(int(lo), int(hi) + 1)]
        else:
            hs = [hosts]
        ps = []
        for part in ports.split(','):
            lo, _, hi = part.partition('-')
            ps.extend(range(int(lo), int(hi or lo) + 1))
        pairs.extend((h, port) for h in hs for port in ps)
    return pairs


def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


# ---- servers -----------------------------------------------------------------

def serve_tcp(a):
    ports = [p for _, p in targets(f"x:{a.ports}")]
    socks = []
    for fam, any_ in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        for p in ports:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((any_, p))
            s.listen(1024)
            s.setblocking(False)
            socks.append(s)
    end = time.time() + a.seconds
    while time.time() < end:
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            for _ in range(64):
                try:
                    c, _ = s.accept()
                except (BlockingIOError, OSError):
                    break
                try:
                    c.setblocking(False)
                    c.send(b'ok\n')
                except OSError:
                    pass
                c.close()


def serve_udp(a):
    ports = [p for _, p in targets(f"x:{a.ports}")]
    socks = []
    for fam, any_ in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        for p in ports:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # Replies leave from the address asked, as a real server's do.
            if fam == socket.AF_INET:
                s.setsockopt(socket.SOL_IP, 8, 1)  # IP_PKTINFO
            else:
                s.setsockopt(socket.IPPROTO_IPV6, 49, 1)  # IPV6_RECVPKTINFO
            s.bind((any_, p))
            s.setblocking(False)
            big_buffers(s)
            socks.append((fam, s))
    end = time.time() + a.seconds
    by_fd = {s.fileno(): (fam, s) for fam, s in socks}
    while time.time() < end:
        r, _, _ = select.select([s for _, s in socks], [], [], 0.5)
        for s in r:
            fam, _ = by_fd[s.fileno()]
            for _ in range(256):
                try:
                    data, anc, _, peer = s.recvmsg(2048, 256)
                except (BlockingIOError, OSError):
                    break
                try:
                    s.sendmsg([b'reply:' + data[:32]], anc, 0, peer)
                except OSError:
                    pass


# ---- clients -----------------------------------------------------------------

def big_buffers(s):
    """4 MiB socket buffers (SO_RCVBUFFORCE, SO_SNDBUFFORCE: root), so a
    burst of datagrams is not lost in this test's own sockets."""
    for opt in (33, 32):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        except OSError:
            pass


def bind_source(s, src, fam):
    if src:
        s.bind((src, 0))


def connect(a):
    pairs = targets(a.to) * a.repeat
    sources = a.src.split(',') if a.src else [None]
    results = {'ok': 0, 'refused': 0, 'timeout': 0, 'error': 0}
    lock = threading.Lock()
    spacing = a.seconds / max(len(pairs), 1)
    start = time.time()

    def one(i, host, port):
        fam = family(host)
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        kind = 'ok'
        try:
            bind_source(s, sources[i % len(sources)], fam)
            if a.ttl:
                s.setsockopt(socket.IPPROTO_IP if fam == socket.AF_INET else socket.IPPROTO_IPV6,
                             socket.IP_TTL if fam == socket.AF_INET else socket.IPV6_UNICAST_HOPS, a.ttl)
            s.connect((host, port))
            try:
                s.recv(16)
            except OSError:
                pass
        except ConnectionRefusedError:
            kind = 'refused'
        except (socket.timeout, TimeoutError):
            kind = 'timeout'
        except OSError:
            kind = 'error'
        finally:
            s.close()
        with lock:
            results[kind] += 1

    threads = []
    for i, (h, p) in enumerate(pairs):
        due = start + i * spacing
        while (left := due - time.time()) > 0:
            time.sleep(min(0.01, left))
        t = threading.Thread(target=one, args=(i, h, p))
        t.start()
        threads.append(t)
        while sum(t.is_alive() for t in threads[-a.parallel * 2:]) >= a.parallel:
            time.sleep(0.001)
    for t in threads:
        t.join(a.timeout + 1)
    out(row=a.row, tried=len(pairs), seconds=round(time.time() - start, 2), **results)


def query(a):
    pairs = targets(a.to) * a.repeat
    sources = a.src.split(',') if a.src else [None]
    socks = {}
    sent = answered = 0
    pending = {}
    spacing = a.seconds / max(len(pairs), 1)
    start = time.time()

    def sock(i, fam):
        key = (sources[i % len(sources)], fam)
        if key not in socks:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            bind_source(s, key[0], fam)
            s.setblocking(False)
            big_buffers(s)
            socks[key] = s
        return socks[key]

    def drain(wait):
        nonlocal answered
        r, _, _ = select.select(list(socks.values()), [], [], wait)
        for s in r:
            while True:
                try:
                    data = s.recv(2048)
                except (BlockingIOError, OSError):
                    break
                if data.startswith(b'reply:'):
                    key = data[6:]
                    if pending.pop(key, None) is not None:
                        answered += 1

    for i, (h, p) in enumerate(pairs):
        due = start + i * spacing
        while time.time() < due:
            drain(min(0.005, max(0, due - time.time())))
        msg = b'q%d' % i
        try:
            sock(i, family(h)).sendto(msg, (h, p))
            sent += 1
            pending[msg] = time.time()
        except OSError:
            pass
    end = time.time() + a.timeout
    while pending and time.time() < end:
        drain(0.05)
    out(row=a.row, tried=len(pairs), sent=sent, answered=answered,
        seconds=round(time.time() - start, 2))


def rst_clients(a):
    """Connections to one server, each closed with a RST, at a rate."""
    sources = a.src.split(',')
    n = int(a.rate * a.seconds)
    done = {'ok': 0, 'failed': 0}
    lock = threading.Lock()
    start = time.time()
    linger = struct.pack('ii', 1, 0)

    def worker(k):
        for i in range(k, n, a.parallel):
            due = start + i / a.rate
            d = due - time.time()
            if d > 0:
                time.sleep(d)
            s = socket.socket(family(a.host), socket.SOCK_STREAM)
            s.settimeout(a.timeout)
            try:
                s.bind((sources[i % len(sources)], 0))
                s.connect((a.host, a.port))
                s.recv(16)
                if a.rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                kind = 'ok'
            except OSError:
                kind = 'failed'
            s.close()
            with lock:
                done[kind] += 1

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.parallel)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(a.seconds + a.timeout + 5)
    secs = time.time() - start
    out(row=a.row, tried=n, seconds=round(secs, 2), rate=round(done['ok'] / secs), **done)


def keepalive_server(a):
    """A local service with keep-alive clients: it answers one request from
    each, then stops, resetting them (SO_LINGER 0), and starts again to
    accept them once more."""
    def listen():
        srv = socket.socket(family(a.host), socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((a.host, a.port))
        srv.listen(256)
        srv.settimeout(a.timeout)
        return srv

    srv = listen()
    open(a.ready, 'w').close()
    accepted = []
    try:
        while len(accepted) < a.clients:
            accepted.append(srv.accept()[0])
        for s in accepted:
            s.settimeout(a.timeout)
            s.recv(64)
            s.send(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
    except OSError:
        pass
    time.sleep(0.2)
    for s in accepted:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()
    srv.close()
    srv = listen()
    again = 0
    try:
        while again < a.clients:
            srv.accept()[0].close()
            again += 1
    except OSError:
        pass
    srv.close()
    out(row=a.row, served=len(accepted), reset=len(accepted), accepted_again=again)


def keepalive_clients(a):
    """Keep-alive clients: one request each, then wait; a reset ends the
    connection, and each connects again."""
    sources = a.src.split(',')
    conns = []
    for i in range(a.clients):
        c = socket.socket(family(a.host), socket.SOCK_STREAM)
        c.settimeout(a.timeout)
        c.bind((sources[i % len(sources)], 0))
        c.connect((a.host, a.port))
        c.send(b'GET / HTTP/1.1\r\n\r\n')
        conns.append(c)
    answered = resets = 0
    for c in conns:
        try:
            if c.recv(64):
                answered += 1
            c.recv(64)
        except ConnectionResetError:
            resets += 1
        except OSError:
            pass
        c.close()
    again = 0
    for i in range(a.clients):
        for _ in range(20):
            c = socket.socket(family(a.host), socket.SOCK_STREAM)
            c.settimeout(a.timeout)
            c.bind((sources[i % len(sources)], 0))
            try:
                c.connect((a.host, a.port))
                again += 1
                c.close()
                break
            except OSError:
                c.close()
                time.sleep(0.05)
    out(row=a.row, clients=a.clients, answered=answered, reset=resets, reconnected=again)


def retry(a):
    refused = other = 0
    gap = a.seconds / a.count
    for i in range(a.count):
        s = socket.socket(family(a.host), socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((a.host, a.port))
            other += 1
        except ConnectionRefusedError:
            refused += 1
        except OSError:
            other += 1
        s.close()
        time.sleep(gap)
    out(row=a.row, tried=a.count, refused=refused, other=other)


def chatter(a):
    """mDNS, SSDP, LLMNR and DHCP-discover-like datagrams from many
    addresses, over a few seconds."""
    v4 = a.src.split(',')
    groups = [('224.0.0.251', 5353), ('239.255.255.250', 1900), ('224.0.0.252', 5355),
              ('255.255.255.255', 67)]
    socks = []
    for src in v4:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
        s.bind((src, 0))
        socks.append(s)
    s6 = None
    if a.iface6:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(a.iface6))
    sent = 0
    end = time.time() + a.seconds
    rnd = 0
    while time.time() < end and rnd < a.rounds:
        for s in socks:
            for g in groups:
                try:
                    s.sendto(b'announce', g)
                    sent += 1
                except OSError:
                    pass
        if s6:
            for g in (('ff02::fb', 5353), ('ff02::c', 1900), ('ff02::1:3', 5355)):
                try:
                    s6.sendto(b'announce', g)
                    sent += 1
                except OSError:
                    pass
        rnd += 1
        time.sleep(a.seconds / a.rounds)
    out(row=a.row, sent=sent)


def nd(a):
    """Router and neighbour solicitations and MLDv2 reports (ICMPv6)."""
    ifindex = socket.if_nametoindex(a.iface)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    target = ipaddress.IPv6Address(a.target).packed
    sn = 'ff02::1:ff' + a.target.split(':')[-1].zfill(4)[-4:-2] + ':' + a.target.split(':')[-1].zfill(4)[-2:]
    sent = 0
    for _ in range(a.count):
        for dst, msg in (('ff02::2', struct.pack('!BBHI', 133, 0, 0, 0)),
                         (sn, struct.pack('!BBHI', 135, 0, 0, 0) + target),
                         ('ff02::16', struct.pack('!BBHHH', 143, 0, 0, 0, 1)
                          + struct.pack('!BBH', 4, 0, 0) + ipaddress.IPv6Address('ff02::fb').packed)):
            try:
                s.sendto(msg, (dst, 0, 0, ifindex))
                sent += 1
            except OSError:
                pass
        time.sleep(a.seconds / a.count)
    out(row=a.row, sent=sent)


def traceroute(a):
    """UDP probes to 33434+ and TCP connects to a port, TTL 1 to hops."""
    udp_done = tcp_done = 0
    for ttl in range(1, a.hops + 1):
        for k in range(3):
            s = socket.socket(family(a.host), socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            s.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR
            s.settimeout(1)
            s.connect((a.host, 33434 + (ttl - 1) * 3 + k))
            s.send(b'probe')
            try:
                s.recv(64)
            except OSError:
                udp_done += 1  # an ICMP error answered it (time exceeded or port unreachable)
            s.close()
    for k in range(3):
        for ttl in range(1, a.hops + 1):
            s = socket.socket(family(a.host), socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            s.settimeout(1 if ttl < a.hops else 3)
            try:
                s.connect((a.host, a.port))
                if ttl == a.hops:
                    tcp_done += 1
            except OSError:
                pass
            s.close()
    out(row=a.row, udp_answered=udp_done, udp_tried=a.hops * 3, tcp_done=tcp_done, tcp_tried=3)


# ---- floods ------------------------------------------------------------------

def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(kind, v6, src, dst, dst_mac, src_mac, sport, dport):
    if kind == 'syn':
        proto = 6
        l4 = struct.pack('!HHIIBBHHH', sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    elif kind == 'udp':
        proto = 17
        payload = b'x' * 18
        l4 = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    else:
        proto = 58 if v6 else 1
        l4 = struct.pack('!BBHHH', 128 if v6 else 8, 0, 0, sport, 1) + b'x' * 18
    if v6:
        s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
        pseudo = s + d + struct.pack('!IxxxB', len(l4), proto)
        ck = csum(pseudo + l4)
        off = {6: 16, 17: 6, 58: 2}[proto]
        l4 = l4[:off] + struct.pack('!H', ck or 0xffff) + l4[off + 2:]
        ip = struct.pack('!IHBB', 6 << 28, len(l4), proto, 64) + s + d
        et = b'\x86\xdd'
    else:
        s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
        if proto == 1:
            ck = csum(l4)
            l4 = l4[:2] + struct.pack('!H', ck) + l4[4:]
        else:
            pseudo = s + d + struct.pack('!xBH', proto, len(l4))
            ck = csum(pseudo + l4)
            off = 16 if proto == 6 else 6
            l4 = l4[:off] + struct.pack('!H', ck or 0xffff) + l4[off + 2:]
        h = struct.pack('!BBHHHBBH', 0x45, 0, 20 + len(l4), random.getrandbits(16), 0, 64, proto, 0) + s + d
        ip = h[:10] + struct.pack('!H', csum(h)) + h[12:]
        et = b'\x08\x00'
    return dst_mac + src_mac + et + ip + l4


def flood(a):
    """Spoofed frames through AF_PACKET from a.procs processes (each its own
    random sources), bounded in count and time; one JSON line in total."""
    net = ipaddress.ip_network(a.src_net)
    v6 = net.version == 6
    mac = lambda m: bytes(int(x, 16) for x in m.split(':'))
    src_mac = open(f'/sys/class/net/{a.iface}/address').read().strip()
    pipes = []
    for k in range(a.procs):
        r, w = os.pipe()
        if os.fork() == 0:
            os.close(r)
            rnd = random.Random(a.seed * 1000 + k)
            frames = []
            for _ in range(a.frames):
                src = str(net[rnd.randrange(net.num_addresses)] if a.random else net[1])
                frames.append(frame(a.kind, v6, src, a.dst, mac(a.dst_mac), mac(src_mac),
                                    rnd.randrange(1024, 65535), a.port))
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((a.iface, 0))
            send = s.send
            sent = 0
            end = time.time() + a.seconds
            while time.time() < end and sent < a.count // a.procs:
                for f in frames:
                    try:
                        send(f)
                    except OSError:
                        pass
                sent += len(frames)
            os.write(w, b'%d' % sent)
            os._exit(0)
        os.close(w)
        pipes.append(r)
    start = time.time()
    sent = 0
    for r in pipes:
        sent += int(os.read(r, 64) or b'0')
        os.close(r)
        os.wait()
    secs = time.time() - start
    out(sent=sent, seconds=round(secs, 3), pps=round(sent / secs))


def sniff(a):
    """Prints the time of the first frame from a.src on a.iface (the attack's
    first packet on the wire: the kernel's receive timestamp), or nothing
    after a.timeout."""
    so_timestampns = 35  # SO_TIMESTAMPNS, and SCM_TIMESTAMPNS
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.setsockopt(socket.SOL_SOCKET, so_timestampns, 1)
    s.bind((a.iface, 0))
    s.settimeout(0.2)
    want = ipaddress.ip_network(a.src)
    v6 = want.version == 6
    open(a.ready, 'w').close()
    end = time.time() + a.timeout
    while time.time() < end:
        try:
            f, anc, _, addr = s.recvmsg(128, 64)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue  # what this host sends out
        t = time.time()
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == so_timestampns and len(data) >= 16:
                sec, nsec = struct.unpack('qq', data[:16])
                t = sec + nsec / 1e9
        if v6 and f[12:14] == b'\x86\xdd' and len(f) >= 38:
            src = ipaddress.IPv6Address(f[22:38])
        elif not v6 and f[12:14] == b'\x08\x00' and len(f) >= 30:
            src = ipaddress.IPv4Address(f[26:30])
        else:
            continue
        if src in want:
            print('%.6f' % t, flush=True)
            return


def watch(a):
    """Polls /status every 50 ms until an alert of a.kind from a.source is
    there (and, with --blocked, the source is blocked), or a.timeout. One
    JSON line: when it was first seen, the agent's reported_at, when the
    block showed (null: never)."""
    import urllib.request
    url = 'http://127.0.0.1:%d/status' % a.port
    seen = reported = blocked = None
    open(a.ready, 'w').close()
    end = time.time() + a.timeout
    while time.time() < end:
        try:
            s = json.loads(urllib.request.urlopen(url, timeout=2).read())['security']
        except OSError:
            time.sleep(0.05)
            continue
        t = time.time()
        m = [x for x in s['alerts_active'] + s['alerts_recent']
             if x['kind'] == a.kind
             and (x['source'] == a.source
                  or (a.source.endswith('*') and x['source'].startswith(a.source[:-1])))
             and (not a.target or x['target'] == a.target)]
        if m and seen is None:
            seen, reported = t, min(x['reported_at'] for x in m)
        if any(b['source'] == a.source for b in s['blocked_sources']) and blocked is None:
            blocked = t
        if seen is not None and (not a.blocked or blocked is not None):
            break
        time.sleep(0.05)
    out(seen=seen, reported=reported, blocked=blocked)


M64 = (1 << 64) - 1


def fmix64(h):
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & M64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & M64
    return h ^ (h >> 31)


def addr_hash(seed, ip):
    """np_addr_hash of probes/include/hash.h (also agent/src/detect/hash.rs)."""
    b = ipaddress.ip_address(ip).packed.ljust(16, b'\0')
    w = [int.from_bytes(b[i:i + 4], 'little') for i in range(0, 16, 4)]
    h = ((w[0] ^ seed) * 0x9e3779b97f4a7c15) & M64
    h ^= ((((w[1] << 32) | w[2]) ^ (seed >> 7)) * 0xc2b2ae3d27d4eb4f) & M64
    h ^= ((w[3] ^ (seed >> 13)) * 0x165667b19e3779f9) & M64
    return fmix64(h ^ seed)


def collide(a):
    """A seed under which an address of --candidates shares --with's scan
    slot (of --slots): prints "SEED ADDRESS"."""
    net = [str(ipaddress.ip_address(a.first) + i) for i in range(a.count)]
    for seed in range(1, 1 << 20):
        slot = addr_hash(seed, a.addr) & (a.slots - 1)
        for c in net:
            if c != a.addr and addr_hash(seed, c) & (a.slots - 1) == slot:
                print(seed, c)
                return
    sys.exit('no collision found')


def merge(a):
    """Sums the JSON lines of several clients on stdin: tried, ok
    (connected or answered), refused."""
    rs = [json.loads(l) for l in sys.stdin if l.startswith('{')]
    out(tried=sum(r['tried'] for r in rs),
        ok=sum(r.get('ok', r.get('answered', 0)) for r in rs),
        refused=sum(r.get('refused', 0) for r in rs))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('serve-tcp'); c.add_argument('--ports', required=True); c.add_argument('--seconds', type=float, default=600)
    c = sub.add_parser('serve-udp'); c.add_argument('--ports', required=True); c.add_argument('--seconds', type=float, default=600)
    for name in ('connect', 'query'):
        c = sub.add_parser(name)
        c.add_argument('--row', default=name)
        c.add_argument('--to', required=True, help='HOSTS:PORTS[;HOSTS:PORTS]')
        c.add_argument('--src', default='')
        c.add_argument('--seconds', type=float, default=1.0, help='spread the attempts over this long')
        c.add_argument('--repeat', type=int, default=1)
        c.add_argument('--timeout', type=float, default=3.0)
        c.add_argument('--parallel', type=int, default=64)
        c.add_argument('--ttl', type=int, default=0)
    c = sub.add_parser('rst-clients')
    for arg, kw in (('--row', {'default': 'rst-clients'}), ('--host', {'required': True}),
                    ('--port', {'type': int, 'required': True}), ('--src', {'required': True}),
                    ('--rate', {'type': float, 'default': 700}), ('--seconds', {'type': float, 'default': 2}),
                    ('--timeout', {'type': float, 'default': 3}), ('--parallel', {'type': int, 'default': 16})):
        c.add_argument(arg, **kw)
    c.add_argument('--rst', action='store_true')
    c = sub.add_parser('keepalive-server')
    c.add_argument('--row', default='keepalive'); c.add_argument('--host', required=True)
    c.add_argument('--port', type=int, required=True); c.add_argument('--clients', type=int, default=30)
    c.add_argument('--ready', required=True); c.add_argument('--timeout', type=float, default=5)
    c = sub.add_parser('keepalive-clients')
    c.add_argument('--row', default='keepalive'); c.add_argument('--host', required=True)
    c.add_argument('--port', type=int, required=True); c.add_argument('--src', required=True)
    c.add_argument('--clients', type=int, default=30); c.add_argument('--timeout', type=float, default=5)
    c = sub.add_parser('retry')
    c.add_argument('--row', default='retry'); c.add_argument('--host', required=True)
    c.add_argument('--port', type=int, required=True); c.add_argument('--count', type=int, default=30)
    c.add_argument('--seconds', type=float, default=3)
    c = sub.add_parser('chatter')
    c.add_argument('--row', default='chatter'); c.add_argument('--src', required=True)
    c.add_argument('--iface6', default=''); c.add_argument('--seconds', type=float, default=2)
    c.add_argument('--rounds', type=int, default=10)
    c = sub.add_parser('nd')
    c.add_argument('--row', default='nd'); c.add_argument('--iface', required=True)
    c.add_argument('--target', required=True); c.add_argument('--count', type=int, default=100)
    c.add_argument('--seconds', type=float, default=1)
    c = sub.add_parser('traceroute')
    c.add_argument('--row', default='traceroute'); c.add_argument('--host', required=True)
    c.add_argument('--port', type=int, default=80); c.add_argument('--hops', type=int, default=2)
    c = sub.add_parser('flood')
    c.add_argument('--iface', required=True); c.add_argument('--dst-mac', required=True)
    c.add_argument('--dst', required=True); c.add_argument('--port', type=int, default=80)
    c.add_argument('--kind', choices=('syn', 'udp', 'icmp'), required=True)
    c.add_argument('--src-net', required=True, help='sources: random addresses of this prefix')
    c.add_argument('--random', action='store_true', help='a random source per frame (else the first)')
    c.add_argument('--frames', type=int, default=4096, help='distinct frames cycled')
    c.add_argument('--seconds', type=float, default=2); c.add_argument('--count', type=int, default=2_000_000)
    c.add_argument('--seed', type=int, default=1)
    c.add_argument('--procs', type=int, default=2, help='sending processes')
    sub.add_parser('merge')
    c = sub.add_parser('collide')
    c.add_argument('--with', dest='addr', required=True); c.add_argument('--first', required=True)
    c.add_argument('--count', type=int, default=200); c.add_argument('--slots', type=int, default=4096)
    c = sub.add_parser('watch')
    c.add_argument('--port', type=int, required=True); c.add_argument('--kind', required=True)
    c.add_argument('--source', required=True, help='the alert source; a trailing * matches a prefix')
    c.add_argument('--blocked', action='store_true')
    c.add_argument('--target', default='', help='and this target (default: any)')
    c.add_argument('--ready', required=True); c.add_argument('--timeout', type=float, default=12)
    c = sub.add_parser('sniff')
    c.add_argument('--iface', required=True); c.add_argument('--src', required=True)
    c.add_argument('--ready', required=True); c.add_argument('--timeout', type=float, default=10)
    a = p.parse_args()
    {'serve-tcp': serve_tcp, 'serve-udp': serve_udp, 'connect': connect, 'query': query,
     'rst-clients': rst_clients, 'keepalive-server': keepalive_server,
     'keepalive-clients': keepalive_clients, 'retry': retry, 'chatter': chatter,
     'nd': nd, 'traceroute': traceroute, 'flood': flood, 'sniff': sniff, 'merge': merge,
     'watch': watch, 'collide': collide}[a.cmd](a)


if __name__ == '__main__':
    main()
