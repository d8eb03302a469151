#!/usr/bin/env python3
"""The checks of integration/cri/run.sh: what a kubelet asks of containerd's CRI plugin, asked
over its gRPC socket for one runtime handler, and what the containers saw, read from inside.

    checks.py --socket SOCK --handler NAME --image REF --work DIR --cgroup-parent PATH
              [--limit S] [--tag T] [--vm]

run.sh starts containerd, imports the images, compiles cri.proto into the generated modules
(on PYTHONPATH) and runs this once per handler. Prints "PASS  [handler] name (T s)" or
"FAIL  [handler] name (T s)" with the reason, then "N passed, M failed" for the handler, and
exits 1 when anything failed. Every pod it made is stopped and removed before it exits, even
after a failure; what is left after that is run.sh's to find.

--vm: the handler runs app containers in VMs (hull-vm; the sandbox stays native). A VM takes
the pod's network interface for itself, so each check that needs a container of its own makes
a pod of its own, and what only a shared kernel gives (namespace inodes, a shared pid
namespace) is skipped with why.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.request
import uuid

import grpc
import websocket

import cri_pb2 as pb
import cri_pb2_grpc as rpc


class CheckFailed(Exception):
    pass


def want(cond, why):
    if not cond:
        raise CheckFailed(why)


class Cri:
    """The two CRI services on one channel, every call bounded by the limit."""

    def __init__(self, socket, limit):
        self.channel = grpc.insecure_channel("unix://" + socket)
        self.runtime = rpc.RuntimeServiceStub(self.channel)
        self.images = rpc.ImageServiceStub(self.channel)
        self.limit = limit

    def __getattr__(self, name):
        stub = self.runtime if hasattr(self.runtime, name) else self.images
        method = getattr(stub, name)
        return lambda request, timeout=None: method(request, timeout=timeout or self.limit)


class Suite:
    def __init__(self, args):
        self.args = args
        self.cri = Cri(args.socket, args.limit)
        self.handler = args.handler
        self.vm = args.vm
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.pods = []  # (id, config) of every pod made, for the teardown

    # -- the lines CI reads --------------------------------------------------------------------

    def check(self, name, fn):
        start = time.monotonic()
        try:
            fn()
        except CheckFailed as e:
            self.fail(name, start, str(e))
        except grpc.RpcError as e:
            self.fail(name, start, f"CRI call failed: {e.code().name}: {e.details()}")
        except Exception as e:  # a broken check is a failure too, with what broke it
            self.fail(name, start, f"{type(e).__name__}: {e}")
        else:
            self.passed += 1
            print(f"PASS  [{self.handler}] {name} ({time.monotonic() - start:.1f} s)", flush=True)

    def skip(self, name, why):
        self.skipped += 1
        print(f"SKIP  [{self.handler}] {name}\n      why: {why}", flush=True)

    def fail(self, name, start, why):
        self.failed += 1
        print(f"FAIL  [{self.handler}] {name} ({time.monotonic() - start:.1f} s)", flush=True)
        for line in why.splitlines()[:30]:
            print(f"      {line}", flush=True)

    # -- pods and containers -------------------------------------------------------------------

    def pod_config(self, name, share_pid=False):
        mode = pb.POD if share_pid else pb.CONTAINER
        logs = os.path.join(self.args.work, "logs", self.handler, name)
        os.makedirs(logs, exist_ok=True)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=name, uid=str(uuid.uuid4()), namespace="hull-cri", attempt=0
            ),
            hostname=name,
            log_directory=logs,
            dns_config=pb.DNSConfig(
                servers=["192.0.2.53"], searches=["hull.test"], options=["ndots:2"]
            ),
            labels={"hull-cri": self.args.tag},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{self.args.cgroup_parent}/pod-{self.handler}-{name}",
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=mode)
                ),
            ),
        )

    def run_pod(self, name, share_pid=False):
        config = self.pod_config(name, share_pid)
        pod = self.cri.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=self.handler)
        ).pod_sandbox_id
        self.pods.append((pod, config))
        return pod, config

    def pod_for(self, pod, config, name):
        """The pod a check's own container goes in: the shared one, or on --vm a new one."""
        return self.run_pod(name) if self.vm else (pod, config)

    def pod_info(self, pod):
        """PodSandboxStatus with its verbose info: the sandbox's pid and spec."""
        r = self.cri.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True))
        return r.status, json.loads(r.info.get("info", "{}"))

    def create(self, pod, config, name, command, *, tty=False, linux=None, start=True):
        c = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=self.args.image),
            command=command,
            log_path=f"{name}.log",
            tty=tty,
            envs=[pb.KeyValue(key="HULL_CRI", value=name)],
            labels={"hull-cri": self.args.tag},
            linux=linux or pb.LinuxContainerConfig(),
        )
        # A kubelet repeats the pod's namespace modes in each container's security context:
        # the CRI plugin takes the container's (unset means the pod's pid namespace).
        c.linux.security_context.namespace_options.CopyFrom(
            config.linux.security_context.namespace_options
        )
        cid = self.cri.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod, config=c, sandbox_config=config)
        ).container_id
        if start:
            self.cri.StartContainer(pb.ContainerIdRequest(container_id=cid))
        return cid

    def status(self, cid):
        return self.cri.ContainerStatus(pb.ContainerIdRequest(container_id=cid)).status

    def exec_sync(self, cid, cmd, timeout=0):
        r = self.cri.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout))
        return r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"), r.exit_code

    def sh(self, cid, script):
        """stdout of `sh -c SCRIPT` in the container, which must exit 0."""
        out, err, rc = self.exec_sync(cid, ["sh", "-c", script])
        want(rc == 0, f"`{script}` exited {rc}: {err.strip()}")
        return out

    def wait_for(self, what, fn, seconds=None):
        end = time.monotonic() + (seconds or self.args.limit)
        last = None
        while time.monotonic() < end:
            try:
                last = fn()
                if last:
                    return last
            # OSError: urllib's URLError, e.g. a server not listening yet (connection refused).
            except (CheckFailed, grpc.RpcError, OSError) as e:
                last = e
            time.sleep(0.2)
        raise CheckFailed(f"{what}: not within {seconds or self.args.limit} s (last: {last})")

    def wait_exited(self, cid, seconds=None):
        return self.wait_for(
            f"container {cid[:12]} to exit",
            lambda: (s := self.status(cid)).state == pb.CONTAINER_EXITED and s,
            seconds,
        )

    def teardown(self):
        for pod, _ in self.pods:
            try:
                self.cri.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
                self.cri.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
            except grpc.RpcError as e:
                print(f"      teardown of pod {pod[:12]}: {e.details()}", flush=True)
        self.pods = []

    # -- the checks ----------------------------------------------------------------------------

    def run(self):
        v = self.cri.Version(pb.VersionRequest())
        print(f"# {v.runtime_name} {v.runtime_version} (CRI {v.runtime_api_version}), handler {self.handler}", flush=True)
        try:
            self.pod_checks()
        finally:
            self.teardown()
        print(f"[{self.handler}] {self.passed} passed, {self.failed} failed, {self.skipped} skipped", flush=True)
        return self.failed == 0

    def pod_checks(self):
        st = {}

        def sandbox():
            pod, config = self.run_pod("web")
            status, info = self.pod_info(pod)
            want(status.state == pb.SANDBOX_READY, f"state {status.state}, not READY")
            want(status.runtime_handler == self.handler, f"handler {status.runtime_handler}")
            want(re.fullmatch(r"10\.89\.\d+\.\d+", status.network.ip or ""),
                 f"pod IP {status.network.ip!r}, not on the CNI bridge's 10.89.0.0/16")
            want(info.get("pid", 0) > 0, f"no sandbox pid in the status info: {info}")
            st.update(pod=pod, config=config, ip=status.network.ip, pid=info["pid"])

        self.check("sandbox: runs (pause), READY, an IP from CNI", sandbox)
        if "pod" not in st:
            return
        pod, config = st["pod"], st["config"]

        def server():
            st["server"] = self.create(pod, config, "server", [
                "sh", "-c",
                "mkdir -p /www && echo hello-from-server >/www/index.html && exec httpd -f -p 8080 -h /www",
            ])
            got = self.wait_for(
                "the host's fetch of the server at the pod IP",
                lambda: urllib.request.urlopen(f"http://{st['ip']}:8080/", timeout=5).read().decode().strip(),
            )
            want(got == "hello-from-server", f"the host got {got!r}")

        self.check("pod: a server in the pod answers the host at the pod IP", server)
        if "server" not in st:
            return

        def client():
            st["client"] = self.create(pod, config, "client", ["sleep", "3600"])
            got = self.wait_for(
                "the client's wget of the server on localhost",
                lambda: self.sh(st["client"], "wget -qO- http://127.0.0.1:8080/").strip(),
            )
            want(got == "hello-from-server", f"client got {got!r}")

        def second_vm():
            # The server's VM holds the pod's eth0: a second VM container in the pod is refused
            # when it starts (containerd runs the runtime's create then), saying why.
            cid = self.create(pod, config, "second", ["sleep", "3600"], start=False)
            try:
                self.cri.StartContainer(pb.ContainerIdRequest(container_id=cid))
                raise CheckFailed("a second VM container in the pod started")
            except grpc.RpcError as e:
                want("eth0 already has an ingress qdisc: another VM container" in (e.details() or ""),
                     f"the error does not say why: {e.details()}")
            finally:
                self.cri.RemoveContainer(pb.ContainerIdRequest(container_id=cid))
            want(self.sh(st["server"], "wget -qO- http://127.0.0.1:8080/").strip() == "hello-from-server",
                 "the server stopped answering")

        if self.vm:
            # One VM per app container: the server's VM holds the pod's interface.
            self.check("pod: a second VM container is refused, naming the interface the first holds", second_vm)
            st["client"] = st["server"]
        else:
            self.check("pod: a second container reaches the server on localhost", client)
        if "client" not in st:
            return
        server, client = st["server"], st["client"]

        def uts_in_vm():
            want(self.sh(server, "hostname").strip() == "web", "hostname is not the pod's")
            init = self.sh(server, "tr '\\0' ' ' </proc/1/cmdline").strip()
            want("pause" not in init, f"pid 1 is {init!r}")

        def shared_namespaces():
            ns = "for n in net ipc uts pid; do readlink /proc/self/ns/$n; done"
            a = self.sh(server, ns).split()
            b = self.sh(client, ns).split()
            host = [os.readlink(f"/proc/{st['pid']}/ns/{n}") for n in ("net", "ipc", "uts", "pid")]
            want(a[:3] == b[:3] == host[:3],
                 f"net/ipc/uts: server {a[:3]}, client {b[:3]}, sandbox {host[:3]}")
            want(a[3] != b[3] and a[3] != host[3],
                 f"pid namespaces shared without shareProcessNamespace: {a[3]} {b[3]} {host[3]}")
            for cid in (server, client):
                want(self.sh(cid, "hostname").strip() == "web", "hostname is not the pod's")
                init = self.sh(cid, "tr '\\0' ' ' </proc/1/cmdline").strip()
                want("pause" not in init, f"pid 1 is {init!r}: the pod's pid namespace")

        if self.vm:
            self.check("pod: the guest has the pod's hostname, a pid namespace of its own", uts_in_vm)
        else:
            self.check("pod: net, ipc and uts are the sandbox's (by path), pid is each container's", shared_namespaces)

        def network():
            addr = self.sh(client, "ip -o -4 addr show eth0")
            want(f"inet {st['ip']}/" in addr, f"eth0: {addr.strip()!r}, pod IP {st['ip']}")
            route = self.sh(client, "ip route show default")
            want("via 10.89." in route, f"default route {route.strip()!r}")
            resolv = self.sh(client, "cat /etc/resolv.conf")
            for w in ("nameserver 192.0.2.53", "search hull.test", "options ndots:2"):
                want(w in resolv, f"/etc/resolv.conf lacks {w!r}: {resolv!r}")
            gw = self.wait_for("the host's reach of the pod IP",
                               lambda: os.system(f"ping -c1 -W1 {st['ip']} >/dev/null 2>&1") == 0)
            want(gw, "host cannot ping the pod")

        self.check("pod: eth0 holds the pod IP, default route, DNS from the sandbox config", network)

        def exec_sync():
            out, err, rc = self.exec_sync(client, ["sh", "-c", "echo out; echo err >&2; echo $HULL_CRI; exit 7"])
            name = "server" if self.vm else "client"  # (on --vm the client is the server)
            want((out, err, rc) == (f"out\n{name}\n", "err\n", 7), f"got {(out, err, rc)!r}")
            # The CRI plugin turns a runtime's failed exec into an error (runc's too).
            try:
                out, err, rc = self.exec_sync(client, ["/no/such/binary"])
                want(rc != 0, f"a missing binary exited {rc}")
            except grpc.RpcError as e:
                want("/no/such/binary" in (e.details() or ""), f"the error names no binary: {e.details()}")

        self.check("exec (sync): stdout, stderr, env, exit code; a missing binary fails", exec_sync)

        def exec_timeout():
            start = time.monotonic()
            try:
                out = self.exec_sync(client, ["sleep", "30"], timeout=1)
                raise CheckFailed(f"sleep 30 with a 1 s timeout returned {out!r}")
            except grpc.RpcError as e:
                want("timeout" in (e.details() or "").lower() or e.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
                     f"error {e.code().name}: {e.details()}")
            took = time.monotonic() - start
            want(took < 20, f"took {took:.1f} s")
            want(self.status(client).state == pb.CONTAINER_RUNNING, "the container did not survive the exec's timeout")

        self.check("exec (sync): a timeout ends the exec, not the container", exec_timeout)

        def exec_tty():
            url = self.cri.Exec(pb.ExecRequest(container_id=client, cmd=["sh"], tty=True, stdin=True, stdout=True)).url
            out, status = stream_exec(url, [b"\x04" + b'{"Width":100,"Height":30}',
                                            b"\x00tty; stty size; exit 3\n"], self.args.limit)
            want(re.search(r"/dev/pts/\d+", out), f"no terminal: {out!r}")
            want("30 100" in out, f"size not 30 rows 100 columns: {out!r}")
            want(status.get("status") == "Failure" and exit_code_of(status) == 3,
                 f"exit status {status}")

        self.check("exec -it (streaming): a terminal, stdin, resize, exit code", exec_tty)

        def stats():
            self.sh(server, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
            s = self.cri.ContainerStats(pb.ContainerIdRequest(container_id=server)).stats
            cpu, mem = s.cpu.usage_core_nano_seconds.value, s.memory.working_set_bytes.value
            want(cpu > 0, f"cpu {cpu} ns")
            want(mem > 0, f"working set {mem} bytes")

        self.check("stats: cpu time and memory of a running container", stats)

        def logs():
            cid = self.create(*self.pod_for(pod, config, "logger"), "logger", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 4"])
            s = self.wait_exited(cid)
            want(s.exit_code == 4, f"exit code {s.exit_code}")
            lines = open(s.log_path).read().splitlines()
            streams = {(l.split(" ", 3)[1], l.split(" ", 3)[3]) for l in lines if l.count(" ") >= 3}
            want({("stdout", "to-stdout"), ("stderr", "to-stderr")} <= streams, f"log {s.log_path}: {lines}")
            want(all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-][\d:]+) (stdout|stderr) [FP] ", l) for l in lines),
                 f"not the CRI log format: {lines}")
            self.cri.RemoveContainer(pb.ContainerIdRequest(container_id=cid))

        self.check("logs: stdout and stderr in the CRI log file, the exit code", logs)

        def resources():
            # A VM container's limit holds its guest and the VMM: hull-vm wants 96 MiB at least.
            memory = (256 if self.vm else 64) << 20
            linux = pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(
                memory_limit_in_bytes=memory, cpu_period=100000, cpu_quota=50000, cpu_shares=512))
            cid = self.create(*self.pod_for(pod, config, "limited"), "limited", ["sleep", "3600"], linux=linux)
            got = self.sh(cid, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max 2>/dev/null || "
                               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
            want(got.split() in ([str(memory), "50000", "100000"], [str(memory), "50000"]),
                 f"memory and cpu limits read inside: {got.split()}")

        self.check("resources: memory limit and cpu quota seen from inside", resources)

        def security():
            sc = pb.LinuxContainerSecurityContext(run_as_user=pb.Int64Value(value=65534), readonly_rootfs=True)
            cid = self.create(*self.pod_for(pod, config, "locked"), "locked", ["sleep", "3600"], linux=pb.LinuxContainerConfig(security_context=sc))
            want(self.sh(cid, "id -u").strip() == "65534", "not running as 65534")
            out, err, rc = self.exec_sync(cid, ["sh", "-c", "touch /etc/x"])
            want(rc != 0 and "Read-only" in err, f"write to / gave rc {rc}: {err.strip()}")

        self.check("security: run_as_user and a read-only root filesystem", security)

        def stopped(name, trap, grace):
            """A running container whose shell traps TERM with TRAP, stopped with GRACE
            seconds: its final status and how long StopContainer took."""
            cid = self.create(*self.pod_for(pod, config, name), name,
                              ["sh", "-c", f"trap {trap} TERM; while :; do sleep 0.1; done"])
            self.wait_for(f"the {name} container to run", lambda: self.status(cid).state == pb.CONTAINER_RUNNING)
            time.sleep(0.5)
            start = time.monotonic()
            self.cri.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=grace))
            return self.status(cid), time.monotonic() - start

        def stop_graceful():
            s, took = stopped("graceful", "'echo got-term; exit 0'", 30)
            want(s.state == pb.CONTAINER_EXITED and s.exit_code == 0, f"state {s.state}, exit code {s.exit_code}")
            want(took < 20, f"took {took:.1f} s: TERM was not handled")
            want("got-term" in open(s.log_path).read(), "the TERM handler's line is not in the log")

        self.check("stop: TERM reaches the container's handler within the grace period", stop_graceful)

        def stop_kill():
            s, took = stopped("stubborn", "''", 2)
            want(s.state == pb.CONTAINER_EXITED and s.exit_code == 137, f"state {s.state}, exit code {s.exit_code}")
            want(took >= 2, f"killed after {took:.1f} s, before the 2 s grace period")

        self.check("stop: SIGKILL once a 2 s grace period ends", stop_kill)

        def shared_pid():
            pod2, config2 = self.run_pod("shared", share_pid=True)
            a = self.create(pod2, config2, "first", ["sleep", "3601"])
            b = self.create(pod2, config2, "second", ["sleep", "3602"])
            init = self.sh(a, "tr '\\0' ' ' </proc/1/cmdline").strip()
            want(init.startswith("/pause"), f"pid 1 is {init!r}, not the sandbox's pause")
            seen = self.wait_for("second's sleep in first's ps", lambda: "3602" in (p := self.sh(a, "ps -o args")) and p)
            want("sleep 3601" in seen, f"ps in first: {seen}")
            self.cri.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod2))
            for cid in (a, b):
                want(self.status(cid).state == pb.CONTAINER_EXITED, f"{cid[:12]} still runs after the pod's stop")

        if self.vm:
            self.skip("pod: shareProcessNamespace puts pause at pid 1 and shows the other container",
                      "a VM container's processes live in its guest's kernel, not in the pod's pid namespace")
        else:
            self.check("pod: shareProcessNamespace puts pause at pid 1 and shows the other container", shared_pid)

        def remove_pod():
            pod_status, info = self.pod_info(pod)
            netns = info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", [])
            netns = [n.get("path") for n in netns if n.get("type") == "network" and n.get("path")]
            self.teardown()
            want(not os.path.exists(f"/proc/{st['pid']}"), f"the sandbox's pid {st['pid']} still exists")
            for p in netns:
                want(not os.path.exists(p), f"the pod's network namespace {p} is still there")

        self.check("pod: stop and remove end every process and the network namespace", remove_pod)


def exit_code_of(status):
    for cause in status.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", "-1"))
    return 0 if status.get("status") == "Success" else -1


def stream_exec(url, sends, limit):
    """An exec through the CRI streaming server, as `kubectl exec` does over a websocket
    (channel.k8s.io v4: a byte naming the channel before each message; 0 stdin, 1 stdout,
    2 stderr, 3 the final status, 4 resize). Sends SENDS in order, then reads until the
    server closes. Returns (stdout and stderr as text, the status as a dict)."""
    ws = websocket.create_connection(
        url.replace("http://", "ws://", 1), subprotocols=["v4.channel.k8s.io"], timeout=limit
    )
    try:
        time.sleep(0.3)
        for s in sends:
            ws.send_binary(s)
            time.sleep(0.3)
        out, status = b"", {}
        while True:
            try:
                m = ws.recv()
            except websocket.WebSocketConnectionClosedException:
                break
            if not m:
                break
            if isinstance(m, str):
                m = m.encode()
            if len(m) > 1 and m[0] in (1, 2):
                out += m[1:]
            elif len(m) > 1 and m[0] == 3:
                status = json.loads(m[1:])
        return out.decode(errors="replace"), status
    finally:
        ws.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True)
    p.add_argument("--handler", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--cgroup-parent", required=True)
    p.add_argument("--tag", default="hull-cri")
    p.add_argument("--limit", type=float, default=60)
    p.add_argument("--vm", action="store_true")
    ok = Suite(p.parse_args()).run()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
