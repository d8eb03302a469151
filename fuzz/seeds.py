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


# hull's parsers (config_json, seccomp_profile, state_json, agent_frames): JSON as hull's own
# commands make it. CONFIG is `hull spec`'s output; STATE a real container's state.json (its
# bundle /tmp/sb).
import copy
import json

CONFIG = json.loads('{"ociVersion": "1.2.1", "root": {"path": "rootfs", "readonly": true}, "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}, {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}, {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}, {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}, {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}, {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}], "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "100"], "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"], "cwd": "/", "capabilities": {"bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE"], "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE"], "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE"]}, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true}, "hostname": "hull", "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}, "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}], "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/sys/devices/virtual/tpm"], "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}}')
STATE = '{"id":"s1","backend":"native","phase":"created","pid":23550,"pid_start":238177,"bundle":"/tmp/sb","rootfs":"/tmp/sb/rootfs","annotations":{},"created":"2026-12-04T16:09:41.386151680Z","owner":"root","config":{"ociVersion":"1.2.1","root":{"path":"rootfs","readonly":true},"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},{"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},{"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]},{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}],"process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["sleep","100"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","TERM=xterm"],"cwd":"/","capabilities":{"bounding":["CAP_NET_BIND_SERVICE","CAP_KILL","CAP_AUDIT_WRITE"],"effective":["CAP_KILL","CAP_NET_BIND_SERVICE","CAP_AUDIT_WRITE"],"permitted":["CAP_KILL","CAP_AUDIT_WRITE","CAP_NET_BIND_SERVICE"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"hostname":"hull","linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}],"maskedPaths":["/proc/acpi","/proc/asound","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/sys/firmware","/proc/scsi","/sys/devices/virtual/tpm"],"readonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}},"cgroup":"/hull/s1","cgroup_created_from":"/hull"}'

SECCOMP = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "futex"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_GE"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
        {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["no_such_call"], "action": "SCMP_ACT_TRACE"},
    ],
}


def config(**linux):
    c = copy.deepcopy(CONFIG)
    c["linux"].update(linux)
    return json.dumps(c, indent=1).encode()


save("config_json", "default", json.dumps(CONFIG, indent=1).encode())
save("config_json", "seccomp", config(seccomp=SECCOMP))
save("config_json", "resources-devices", config(
    resources={"memory": {"limit": 67108864, "swap": 134217728}, "cpu": {"quota": 50000, "period": 100000,
               "cpus": "0-1"}, "pids": {"limit": 64},
               "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1,
                                                                "minor": 3, "access": "rw"}]},
    devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438},
             {"path": "/dev/p", "type": "p"}]))
save("config_json", "mempolicy-sysctl-idmap", config(
    memoryPolicy={"mode": "MPOL_INTERLEAVE", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]},
    sysctl={"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"},
    uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
    gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
    namespaces=CONFIG["linux"]["namespaces"] + [{"type": "user"}, {"type": "cgroup"}]))
hooked = copy.deepcopy(CONFIG)
hooked["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}],
                   "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 0"]}]}
hooked["annotations"] = {"hull.backend": "vm", "hull.vm.cpus": "2", "hull.vm.memory_mib": "256"}
hooked["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp",
                         "options": ["rbind", "rro", "nosuid"]})
hooked["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
hooked["process"]["capabilities"]["ambient"] = ["CAP_NET_BIND_SERVICE"]
save("config_json", "hooks-annotations-mounts", json.dumps(hooked, indent=1).encode())

save("seccomp_profile", "docker-like", json.dumps(SECCOMP, indent=1).encode())
save("seccomp_profile", "allow-default",
     json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
         {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}).encode())

save("state_json", "created", STATE.encode())
running = json.loads(STATE)
running.update(phase="running")
save("state_json", "running", json.dumps(running).encode())


# agent_frames: the piece size, then frames: [kind][u32 le length][payload].
def frame(kind, payload=b""):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    return bytes([kind]) + struct.pack("<I", len(payload)) + payload


HELLO, RUN, STDIN, STDIN_EOF, SIGNAL, STDOUT, STDERR, EXIT, ACK, ERROR = range(1, 11)
RESIZE, STARTED, UPDATE, QUERY_STATS, GUEST_STATS = range(11, 16)
save("agent_frames", "vm-run", bytes([7]) + frame(HELLO, {"version": "0.1.0", "uptime_ms": 180})
     + frame(RUN, {"args": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/bin"], "cwd": "/",
                   "user": {"uid": 0, "gid": 0, "additional_gids": [10]}, "terminal": False})
     + frame(STDIN, b"input\n") + frame(STDIN_EOF) + frame(SIGNAL, struct.pack("<i", 15))
     + frame(STDOUT, b"hi\n") + frame(STDERR, b"err\n") + frame(EXIT, {"code": 0, "signal": None})
     + frame(ACK))
save("agent_frames", "exec-terminal", bytes([255]) + frame(RUN, {"args": ["sh"], "env": [], "cwd": "/",
                                                                 "terminal": True, "process": {"args": ["sh"]}})
     + frame(RESIZE, {"rows": 24, "cols": 80}) + frame(STARTED, {"pid": 7})
     + frame(EXIT, {"code": 0, "signal": 9, "shutdown": "panic"}) + frame(ERROR, {"message": "no such file"}))
save("agent_frames", "update-stats", bytes([1]) + frame(UPDATE, {"pids": {"limit": 321}, "memory": {"limit": 1 << 26}})
     + frame(QUERY_STATS)
     + frame(GUEST_STATS, {"stats": {"memory": {"usage": 2174976}, "pids": {"current": 2}},
                           "oom": {"oom": 1, "oom_kill": 1}}))
