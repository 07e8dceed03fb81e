#!/usr/bin/env python3
"""Bounded traffic through a tun device, for build/e2e-l3.sh.

Plays the far end of an L3 link (tun: packets start at the IP header, no
link-layer header): writes ICMP and ICMPv6 echo requests and UDP datagrams
into the tun, as if they came from a peer, and reads what the kernel sends
back. Prints one `name value` line per count:

    echo4_sent, echo4_answered, echo6_sent, echo6_answered,
    udp4_sent, udp6_sent, udp4_received, udp6_received, other_read

Usage: l3-traffic.py --dev TUN --local4 A --peer4 B --local6 A6 --peer6 B6
                     [--count N] [--udp-port P] [--timeout S]
The UDP datagrams go to a socket this script binds on the local address
(so the kernel delivers them and sends nothing back).
"""

import argparse
import fcntl
import ipaddress
import os
import select
import socket
import struct
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def ipv6(src, dst, nh, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + payload


def pseudo6(src, dst, nh, length):
    return (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
            + struct.pack("!IxxxB", length, nh))


def pseudo4(src, dst, proto, length):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!xBH", proto, length)


def echo4(src, dst, seq):
    body = struct.pack("!BBHHH", 8, 0, 0, 0x4e50, seq) + b"netprobe-l3" * 4
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    return ipv4(src, dst, socket.IPPROTO_ICMP, body, seq)


def echo6(src, dst, seq):
    body = struct.pack("!BBHHH", 128, 0, 0, 0x4e50, seq) + b"netprobe-l3" * 4
    c = csum(pseudo6(src, dst, 58, len(body)) + body)
    return ipv6(src, dst, 58, body[:2] + struct.pack("!H", c) + body[4:])


def udp4(src, dst, sport, dport, payload, ident):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = csum(pseudo4(src, dst, 17, len(u)) + u) or 0xFFFF
    return ipv4(src, dst, 17, u[:6] + struct.pack("!H", c) + u[8:], ident)


def udp6(src, dst, sport, dport, payload):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = csum(pseudo6(src, dst, 17, len(u)) + u) or 0xFFFF
    return ipv6(src, dst, 17, u[:6] + struct.pack("!H", c) + u[8:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", required=True)
    ap.add_argument("--local4", required=True)
    ap.add_argument("--peer4", required=True)
    ap.add_argument("--local6", required=True)
    ap.add_argument("--peer6", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--udp-port", type=int, default=9999)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    n = min(a.count, 10000)

    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", a.dev.encode(), IFF_TUN | IFF_NO_PI))
    rx4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx4.bind((a.local4, a.udp_port))
    rx6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx6.bind((a.local6, a.udp_port))
    for s in (rx4, rx6):
        s.setblocking(False)

    c = dict(echo4_sent=0, echo4_answered=0, echo6_sent=0, echo6_answered=0, udp4_sent=0,
             udp6_sent=0, udp4_received=0, udp6_received=0, other_read=0)
    payload = b"u" * 100
    deadline = time.monotonic() + a.timeout

    def drain(wait):
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            r, _, _ = select.select([fd, rx4, rx6], [], [], max(left, 0))
            if not r:
                return
            for x in r:
                if x is rx4:
                    rx4.recv(2048)
                    c["udp4_received"] += 1
                elif x is rx6:
                    rx6.recv(2048)
                    c["udp6_received"] += 1
                else:
                    p = os.read(fd, 65535)
                    if p[0] >> 4 == 4 and p[9] == 1 and p[20] == 0:
                        c["echo4_answered"] += 1
                    elif p[0] >> 4 == 6 and p[6] == 58 and p[40] == 129:
                        c["echo6_answered"] += 1
                    else:
                        c["other_read"] += 1

    for i in range(n):
        if time.monotonic() > deadline:
            break
        os.write(fd, echo4(a.peer4, a.local4, i + 1))
        c["echo4_sent"] += 1
        os.write(fd, echo6(a.peer6, a.local6, i + 1))
        c["echo6_sent"] += 1
        os.write(fd, udp4(a.peer4, a.local4, 40000 + i % 7, a.udp_port, payload, i + 1))
        c["udp4_sent"] += 1
        os.write(fd, udp6(a.peer6, a.local6, 40000 + i % 7, a.udp_port, payload))
        c["udp6_sent"] += 1
        drain(0.002)
    # What is still on its way, bounded.
    while time.monotonic() < deadline:
        want = (c["echo4_answered"], c["echo6_answered"], c["udp4_received"], c["udp6_received"])
        drain(0.2)
        if want == (c["echo4_answered"], c["echo6_answered"], c["udp4_received"], c["udp6_received"]):
            break
    for k, v in c.items():
        print(k, v)


if __name__ == "__main__":
    main()
