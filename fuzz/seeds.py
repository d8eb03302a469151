#!/usr/bin/env python3
"""Writes the seed corpora (corpus/TARGET/) in each target's input format, from the shapes the
vmm unit tests use. Rerun after changing a target's input format: python3 fuzz/seeds.py"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
REGION1 = 0x2_0000
NEXT, WRITE, INDIRECT = 1, 2, 4


def save(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# Input.addr(): selector 0 = region 0 + u16, 1 = region 1 + u16, 4 = any u64.
def addr0(off):
    return bytes([0]) + struct.pack("<H", off)


def addr1(off):
    return bytes([1]) + struct.pack("<H", off)


def addr_any(a):
    return bytes([4]) + struct.pack("<Q", a)


# Input.len(): selector 0 = u8, 2 = u16, 3 = u32.
def len8(n):
    return bytes([0, n])


def len16(n):
    return bytes([2]) + struct.pack("<H", n)


def len32(n):
    return bytes([3]) + struct.pack("<I", n)


def vsock_hdr(op, length, src_port=1024, dst_port=1234, flags=0):
    return struct.pack("<QQIIIHHIII", 3, 2, src_port, dst_port, length, 1, op, flags, 64 * 1024, 0)


def raw_desc(a, n, flags, nxt):
    return struct.pack("<QIHH", a, n, flags, nxt)


# vsock_packet: count-1, then per descriptor addr, len, flags, next, fill; then the head.
def vdesc(addr, length, flags, nxt, fill):
    return addr + length + struct.pack("<HH", flags, nxt) + fill


hello = b"hello"
save("vsock_packet", "split-header-payload",
     bytes([1]) + vdesc(addr0(0x4000), len8(44), NEXT, 1, vsock_hdr(5, 5))
     + vdesc(addr1(0x100), len8(5), 0, 0, hello) + struct.pack("<H", 0))
save("vsock_packet", "one-descriptor",
     bytes([0]) + vdesc(addr0(0x4000), len8(49), 0, 0, vsock_hdr(5, 5) + hello) + struct.pack("<H", 0))
save("vsock_packet", "request-no-payload",
     bytes([0]) + vdesc(addr0(0x4000), len8(44), 0, 0, vsock_hdr(1, 0)) + struct.pack("<H", 0))
save("vsock_packet", "truncated-payload",
     bytes([1]) + vdesc(addr0(0x4000), len8(44), NEXT, 1, vsock_hdr(5, 100))
     + vdesc(addr0(0x5000), len8(10), 0, 0, b"0123456789") + struct.pack("<H", 0))
save("vsock_packet", "indirect",
     bytes([2]) + vdesc(addr0(0x5000), len8(32), INDIRECT, 0,
                        raw_desc(0x6000, 44, NEXT, 1) + raw_desc(0x7000, 5, 0, 0))
     + vdesc(addr0(0x6000), len8(44), 0, 0, vsock_hdr(5, 5))
     + vdesc(addr0(0x7000), len8(5), 0, 0, hello) + struct.pack("<H", 0))
save("vsock_packet", "outside-ram",
     bytes([1]) + vdesc(addr0(0xffd4), len8(44), NEXT, 1, vsock_hdr(5, 5))
     + vdesc(addr_any(0x1_0000_0000), len32(0xffffffff), 0, 0, b"") + struct.pack("<H", 0))


# virtqueue_chain: size selector, ring addresses, event_idx, next_avail, descriptor table
# (16 * size bytes), avail ring (4 + 2 * size + 2), then region 1's first bytes.
def queue(descs, avail_idx, ring, rest=b"", next_avail=0, event_idx=0, size_sel=4):
    size = 1 << size_sel
    table = b"".join(raw_desc(*d) for d in descs).ljust(16 * size, b"\0")
    avail = struct.pack("<HH", 0, avail_idx) + b"".join(struct.pack("<H", h) for h in ring)
    avail = avail.ljust(4 + 2 * size + 2, b"\0")
    return (bytes([size_sel]) + addr0(0x1000) + addr0(0x1200) + addr0(0x1400)
            + bytes([event_idx]) + struct.pack("<H", next_avail) + table + avail + rest)


save("virtqueue_chain", "two-chains",
     queue([(REGION1, 40, NEXT, 1), (REGION1 + 0x100, 64, WRITE, 0), (REGION1 + 0x200, 16, 0, 0)],
           2, [0, 2], rest=b"\x28" + b"\0" * 39))
save("virtqueue_chain", "loop", queue([(REGION1, 8, NEXT, 1), (REGION1 + 8, 8, NEXT, 0)], 1, [0]))
save("virtqueue_chain", "indirect",
     queue([(REGION1 + 0x800, 48, INDIRECT, 0)], 1, [0],
           rest=b"\0" * 0x800 + raw_desc(REGION1, 40, NEXT, 1) + raw_desc(REGION1 + 0x40, 16, NEXT, 2)
           + raw_desc(REGION1 + 0x100, 64, WRITE, 0)))
save("virtqueue_chain", "huge-length", queue([(REGION1, 0xffffffff, 0, 0)], 1, [0]))
save("virtqueue_chain", "index-wrap",
     queue([(REGION1, 8, 0, 0), (REGION1 + 8, 8, WRITE, 0)], 1, [0, 1], next_avail=0xffff))
save("virtqueue_chain", "event-idx", queue([(REGION1, 8, 0, 0)], 1, [0], event_idx=1, size_sel=8))


# virtio_fs_request: per request the queue (0 hiprio, 1 request), its length and bytes, how
# many readable descriptors it is split into (minus one), and the writable buffers' lengths.
def fuse(opcode, nodeid, body, unique=1):
    return struct.pack("<IIQQIIIHH", 40 + len(body), opcode, unique, nodeid, 0, 0, 1, 0, 0) + body


def req(q, message, pieces=1, writable=(0x1000,)):
    return (bytes([q]) + struct.pack("<H", len(message)) + message + bytes([pieces - 1, len(writable)])
            + b"".join(struct.pack("<H", w) for w in writable))


INIT = fuse(26, 0, struct.pack("<IIII", 7, 31, 0x20000, 0))
read_in = struct.pack("<QQIIQII", 0, 0, 4096, 0, 0, 0, 0)
save("virtio_fs_request", "init", req(1, INIT))
save("virtio_fs_request", "lookup-getattr",
     req(1, INIT) + req(1, fuse(1, 1, b"a\0", 2), pieces=2)
     + req(1, fuse(3, 1, struct.pack("<IIQ", 0, 0, 0), 3), writable=(16, 0x100)))
save("virtio_fs_request", "readdir",
     req(1, INIT) + req(1, fuse(27, 1, struct.pack("<II", 0, 0), 2)) + req(1, fuse(28, 1, read_in, 3)))
save("virtio_fs_request", "open-read",
     req(1, INIT) + req(1, fuse(1, 1, b"d\0", 2)) + req(1, fuse(1, 2, b"b\0", 3))
     + req(1, fuse(14, 3, struct.pack("<II", 0, 0), 4)) + req(1, fuse(15, 3, read_in, 5), writable=(16, 0x1000)))
save("virtio_fs_request", "forget-hiprio",
     req(1, INIT) + req(1, fuse(1, 1, b"l\0", 2)) + req(0, fuse(2, 2, struct.pack("<Q", 1), 3), writable=()))
save("virtio_fs_request", "write-readonly",
     req(1, INIT) + req(1, fuse(35, 1, struct.pack("<II", 0o644, 0o22) + b"new\0", 2)))
