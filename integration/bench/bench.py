#!/usr/bin/env python3
"""hull against crun and runc, side by side in one run, on the same busybox bundle.

    integration/bench/bench.py [-n N] [--hull PATH] [--runc PATH] [--crun PATH] [--dir DIR]
                               [--warmup W] [--testvm]

Operations, N times each, the runtimes taking turns (the order rotates every round):

  run        RUNTIME --root R run --bundle B ID                  (/bin/true)
  lifecycle  create / start / state / wait for exit / delete     (/bin/true, what containerd does)
  exec       RUNTIME --root R exec ID /bin/true                  (into a running `sleep 1000`)
  floor      unshare -muipn --fork chroot ROOTFS /bin/true       (no runtime at all)

Times are wall clock (perf_counter around spawn..reap) of each runtime command, started
directly with stdio on /dev/null. Peak RSS is measured afterwards in a separate, shorter pass
(--rss-rounds) under GNU time (`/usr/bin/time -f %M`): ru_maxrss of exactly that command and of
the children it reaped (e.g. runc's `runc init`). Not measured from this script's own wait4: a
child forked from Python carries Python's ~16 MiB high-water mark into its ru_maxrss.
Like containerd-shim, this script is a child subreaper: a container's init is reparented to it
when `create` returns, and the lifecycle waits for the init's exit with waitpid, then deletes.

crun refuses a cgroup v1 hybrid host ("cgroups in hybrid mode not supported"): where its first
`run` fails, its column says why instead of holding numbers. --testvm runs the whole benchmark
in the nested test machine (integration/testvm: pure cgroup v2), with hull, runc, crun, GNU
time and Debian's python3 (the standard library modules this script imports) carried in.

Python 3 standard library only. Run as root. Containers and state are cleaned up on exit,
on Ctrl-C and on SIGTERM.
"""

import argparse
import ctypes
import json
import locale  # noqa: F401  (subprocess's text mode imports it late: --testvm must carry it)
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# Targets (a benchmark, not a test: misses are reported, not failed). Issue 8: against runc.
TARGET_VS_RUNC = 0.35  # hull time <= 0.35x runc for run and lifecycle
TARGET_VS_FLOOR = 3.0  # hull time <= 3x the floor
# Issue 16: against crun (on cgroup v2, where crun runs): run <= 0.9x, lifecycle <= 1.0x,
# exec <= 1.0x, peak RSS <= crun's.
TARGET_VS_CRUN = {"run": 0.9, "lifecycle": 1.0, "exec": 1.0}

PR_SET_CHILD_SUBREAPER = 36


def die(msg):
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --- the bundle -------------------------------------------------------------------------------

def busybox_path():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    die("busybox-static is not installed (apt-get install -y busybox-static)")


def make_rootfs(rootfs):
    """busybox-static and its applets, /etc/passwd and /etc/group (as tests/common/mod.rs)."""
    if os.path.isdir(rootfs):
        shutil.rmtree(rootfs)
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "usr/bin"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    bb = busybox_path()
    shutil.copy2(bb, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([bb, "--list"], check=True, capture_output=True, text=True).stdout
    for applet in applets.split():
        link = os.path.join(rootfs, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


def default_config(args, root_path="rootfs"):
    """runc's default config (`runc spec`) with `args` as the program, less its /sys/fs/cgroup
    mount."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            # runc spec's sets, ambient included (neither runtime can raise those: they are
            # not inheritable; both go on without them).
            "capabilities": {
                k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                for k in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": root_path, "readonly": False},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


def write_config(bundle, config):
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


# --- spawning and reaping ---------------------------------------------------------------------

class Failed(Exception):
    pass


TIME = "/usr/bin/time"
RSS_FILE = None  # set by main(): where GNU time writes %M
MEASURE_RSS = False  # True during the RSS pass
IN_FLIGHT = None  # the pid spawn() is waiting for, so an interrupt can finish it off


def spawn(argv):
    """Runs argv with stdio on /dev/null; returns (seconds, exit status, peak RSS KiB or 0)."""
    if MEASURE_RSS:
        argv = [TIME, "-f", "%M", "-o", RSS_FILE, *argv]
    global IN_FLIGHT
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, close_fds=True)
    IN_FLIGHT = p.pid
    _, status = os.waitpid(p.pid, 0)
    dt = time.perf_counter() - t0
    IN_FLIGHT = None
    p.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits on it again
    rss = 0
    if MEASURE_RSS:
        with open(RSS_FILE) as f:  # "Command exited with non-zero status N" may come first
            rss = int(f.read().split()[-1])
    return dt, p.returncode, rss


def check(argv):
    """spawn() that raises with the command's stderr when it fails (rerun to capture it)."""
    dt, rc, rss = spawn(argv)
    if rc != 0:
        err = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        raise Failed(f"{' '.join(argv)}: exit {rc}: {err.stderr.strip()[-800:]}")
    return dt, rss


def output(argv):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failed(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-800:]}")
    return r.stdout


def reap_orphans():
    """Reaps whatever was reparented to us and already exited (we are a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def finish_in_flight():
    """After an interrupt: let the runtime command we were waiting for end (or kill it), so
    cleanup does not race it."""
    global IN_FLIGHT
    pid, IN_FLIGHT = IN_FLIGHT, None
    if pid is None:
        return
    try:
        wait_pid(pid, timeout=5.0)
    except Failed:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def drain_children(timeout=2.0):
    """Reaps every child left (we are a subreaper), waiting a little for the last ones."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def wait_pid(pid, timeout=10.0):
    """Waits for a container init that was reparented to us (the shim's job in containerd)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not our child (no subreaper): fall back to watching the pid go away.
            if not os.path.exists(f"/proc/{pid}"):
                return
            got = 0
        if got == pid:
            return
        if time.monotonic() > deadline:
            raise Failed(f"container init {pid} did not exit within {timeout}s")
        time.sleep(0.0002)


# --- the runtimes -----------------------------------------------------------------------------

STEPS = ("create", "start", "state", "wait exit", "delete")


class Runtime:
    def __init__(self, name, binary, root):
        self.name, self.binary, self.root = name, binary, root
        self.seq = 0

    def cmd(self, *args):
        return [self.binary, "--root", self.root, *args]

    def next_id(self, what):
        self.seq += 1
        return f"bench-{self.name}-{what}-{os.getpid()}-{self.seq}"

    def delete_all(self):
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            if os.path.isdir(os.path.join(self.root, cid)):
                spawn(self.cmd("delete", "--force", cid))


class Bench:
    def __init__(self, args):
        self.n = args.n
        self.dir = os.path.abspath(args.dir)
        self.bundle = os.path.join(self.dir, "bundle")
        self.sleep_bundle = os.path.join(self.dir, "bundle-sleep")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.others = ["crun", "runc"]  # the columns, whether or not they run here
        self.absent = {}  # runtime name -> why it does not run here
        self.runtimes = [Runtime("hull", args.hull, os.path.join(self.dir, "root-hull"))]
        for name, binary in (("crun", args.crun), ("runc", args.runc)):
            if binary:
                self.runtimes.append(Runtime(name, binary, os.path.join(self.dir, f"root-{name}")))
            else:
                self.absent[name] = "not installed"
        self.all_runtimes = list(self.runtimes)  # cleanup covers those probe() dropped
        self.sleepers = {}  # runtime name -> (id, init pid)
        # samples[op][who] = list of seconds; rss[op][who] = list of KiB
        self.samples = {}
        self.rss = {}
        self.steps = {}  # runtime name -> lifecycle step -> list of seconds
        self.timing = False

    def record(self, op, who, dt, rss):
        if dt is not None:
            self.samples.setdefault(op, {}).setdefault(who, []).append(dt)
        if rss is not None:
            self.rss.setdefault(op, {}).setdefault(who, []).append(rss)

    # setup / teardown

    def prepare(self):
        for rt in self.all_runtimes:
            rt.delete_all()
            shutil.rmtree(rt.root, ignore_errors=True)
            os.makedirs(rt.root)
        make_rootfs(self.rootfs)
        write_config(self.bundle, default_config(["/bin/true"]))
        write_config(self.sleep_bundle, default_config(["/bin/sleep", "1000"], self.rootfs))

    def start_sleepers(self):
        for rt in self.runtimes:
            cid = rt.next_id("sleeper")
            pidfile = os.path.join(self.dir, f"{cid}.pid")
            check(rt.cmd("create", "--bundle", self.sleep_bundle, "--pid-file", pidfile, cid))
            check(rt.cmd("start", cid))
            with open(pidfile) as f:
                pid = int(f.read().strip())
            os.unlink(pidfile)
            self.sleepers[rt.name] = (cid, pid)
            status = json.loads(output(rt.cmd("state", cid)))["status"]
            if status != "running":
                raise Failed(f"{rt.name}: the exec target {cid} is {status}, not running")

    def cleanup(self):
        global MEASURE_RSS
        MEASURE_RSS = False
        finish_in_flight()
        for rt in self.all_runtimes:
            try:
                rt.delete_all()
            except Exception as e:  # keep cleaning the others
                log(f"cleanup {rt.name}: {e}")
            shutil.rmtree(rt.root, ignore_errors=True)
        # The exec targets' inits are our children (subreaper): reap them, not leave zombies.
        for _, pid in self.sleepers.values():
            try:
                wait_pid(pid, timeout=5.0)
            except Failed as e:
                log(f"cleanup: {e}")
        drain_children()
        for name in os.listdir(self.dir):  # pid files of an interrupted sample, GNU time's output
            if name.endswith(".pid") or name == "maxrss":
                os.unlink(os.path.join(self.dir, name))

    # one sample of each operation

    def op_run(self, rt):
        cid = rt.next_id("run")
        dt, rss = check(rt.cmd("run", "--bundle", self.bundle, cid))
        return dt, rss

    def op_lifecycle(self, rt):
        cid = rt.next_id("life")
        pidfile = os.path.join(self.dir, f"{cid}.pid")
        t0 = time.perf_counter()
        d1, r1 = check(rt.cmd("create", "--bundle", self.bundle, "--pid-file", pidfile, cid))
        d2, r2 = check(rt.cmd("start", cid))
        d3, r3 = check(rt.cmd("state", cid))
        with open(pidfile) as f:
            pid = int(f.read().strip())
        t1 = time.perf_counter()
        wait_pid(pid)
        d4 = time.perf_counter() - t1
        d5, r4 = check(rt.cmd("delete", cid))
        dt = time.perf_counter() - t0
        os.unlink(pidfile)
        if self.timing:
            for step, d in zip(STEPS, (d1, d2, d3, d4, d5)):
                self.steps.setdefault(rt.name, {}).setdefault(step, []).append(d)
        return dt, max(r1, r2, r3, r4)

    def op_exec(self, rt):
        cid, _ = self.sleepers[rt.name]
        return check(rt.cmd("exec", cid, "/bin/true"))

    def op_floor(self):
        # -f, not --fork: busybox's unshare (the test machine's) has only the short one.
        return check(["unshare", "-muipn", "-f", "chroot", self.rootfs, "/bin/true"])

    def probe(self):
        """Drops a comparison runtime whose first `run` fails (crun on a cgroup v1 hybrid
        host), keeping why for the report."""
        for rt in list(self.runtimes[1:]):
            cid = rt.next_id("probe")
            argv = rt.cmd("run", "--bundle", self.bundle, cid)
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            spawn(rt.cmd("delete", "--force", cid))
            if r.returncode != 0:
                why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
                self.absent[rt.name] = why[-200:]
                self.runtimes.remove(rt)
                log(f"{rt.name} does not run here, left out: {why}")

    def round(self, i, timed):
        """One sample of every operation; records times when timed, RSS in the RSS pass."""
        k = i % len(self.runtimes)
        order = self.runtimes[k:] + self.runtimes[:k]
        self.timing = timed
        for op, fn in (("run", self.op_run), ("lifecycle", self.op_lifecycle),
                       ("exec", self.op_exec)):
            for rt in order:
                dt, rss = fn(rt)
                self.record(op, rt.name, dt if timed else None, rss if MEASURE_RSS else None)
            reap_orphans()
            dt, rss = self.op_floor()
            self.record("floor", "floor", dt if timed else None, rss if MEASURE_RSS else None)

    def run(self, warmup, rss_rounds):
        global MEASURE_RSS
        self.prepare()
        self.probe()
        self.start_sleepers()
        log(f"{warmup} warm-up rounds, then {self.n} timed rounds "
            f"({', '.join(rt.name for rt in self.runtimes)} taking turns)")
        for i in range(warmup):
            self.round(i, timed=False)
        t0 = time.monotonic()
        for i in range(self.n):
            self.round(i, timed=True)
            if (i + 1) % max(1, self.n // 10) == 0:
                log(f"{i + 1}/{self.n} rounds ({time.monotonic() - t0:.0f}s)")
        log(f"{rss_rounds} rounds under {TIME} -f %M for peak RSS")
        MEASURE_RSS = True
        for i in range(rss_rounds):
            self.round(i, timed=False)
        MEASURE_RSS = False
        # Nothing may be left behind by run and lifecycle: only the exec targets.
        for rt in self.runtimes:
            left = sorted(set(os.listdir(rt.root)) - {self.sleepers[rt.name][0]})
            if left:
                log(f"warning: {rt.name} left containers in its root: {left[:5]}")


# --- the report -------------------------------------------------------------------------------

def pct(xs, p):
    """p-th percentile, linear interpolation between closest ranks."""
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def report(b, env_line):
    ms = lambda x: x * 1000.0  # noqa: E731
    med = {op: {w: statistics.median(v) for w, v in d.items()} for op, d in b.samples.items()}
    floor = med["floor"]["floor"]
    names = {"run": "run /bin/true", "lifecycle": "create/start/state/delete",
             "exec": "exec /bin/true", "floor": "floor (unshare+chroot)"}
    others = b.others
    present = [o for o in others if o not in b.absent]

    def cell(op, who):
        if who in b.absent:
            return "n/a"
        xs = b.samples[op][who]
        return f"{ms(statistics.median(xs)):6.2f} ({ms(pct(xs, 10)):.1f}-{ms(pct(xs, 90)):.1f})"

    def ratio(h, op, who, table):
        return "n/a" if who in b.absent else f"{h / table[op][who]:.2f}x"

    lines = [env_line]
    for o in others:
        if o in b.absent:
            lines.append(f"{o}: not measured, it does not run here: {b.absent[o]}")
    head = f"{'operation':<27}| {'hull ms':<20}" + "".join(f"| {o + ' ms':<20}" for o in others)
    head += "".join(f"| {'hull/' + o:>9} " for o in others) + f"| {'hull/floor':>10}"
    lines += ["", "time: median ms (p10-p90)", head, "-" * len(head)]
    for op in ("run", "lifecycle", "exec"):
        h = med[op]["hull"]
        lines.append(f"{names[op]:<27}| {cell(op, 'hull'):<20}" + "".join(f"| {cell(op, o):<20}" for o in others)
                     + "".join(f"| {ratio(h, op, o, med):>9} " for o in others) + f"| {h / floor:9.2f}x")
    lines.append(f"{names['floor']:<27}| {cell('floor', 'floor'):<20}" + "".join(f"| {'':<20}" for _ in others)
                 + "".join(f"| {'':>9} " for _ in others) + f"| {'1.00x':>10}")
    for who in ["hull", *present]:
        lines.append(f"  lifecycle steps, median ms ({who}): " + ", ".join(
            f"{st} {ms(statistics.median(b.steps[who][st])):.1f}" for st in STEPS))

    rss_med = {op: {w: statistics.median(v) for w, v in d.items()} for op, d in b.rss.items()}

    def rss_cell(op, who):
        if who in b.absent:
            return "n/a"
        x = b.rss[op][who]
        return f"{statistics.median(x):.0f} ({max(x)})"

    head = f"{'operation':<27}| {'hull KiB':<20}" + "".join(f"| {o + ' KiB':<20}" for o in others)
    head += "".join(f"| {'hull/' + o:>9} " for o in others)
    lines += ["", "peak RSS of the runtime command: median KiB (max), /usr/bin/time -f %M; "
              "lifecycle: its largest step", head, "-" * len(head)]
    for op in ("run", "lifecycle", "exec"):
        h = rss_med[op]["hull"]
        lines.append(f"{names[op]:<27}| {rss_cell(op, 'hull'):<20}" + "".join(f"| {rss_cell(op, o):<20}" for o in others)
                     + "".join(f"| {ratio(h, op, o, rss_med):>9} " for o in others))
    x = b.rss["floor"]["floor"]
    lines.append(f"{names['floor']:<27}| {f'{statistics.median(x):.0f} ({max(x)})':<20}|")

    lines += ["", "targets (issue 16): against crun, run <= 0.9x, create/start/state/delete <= 1.0x, "
              "exec <= 1.0x, peak RSS <= crun's; against the floor, <= 3x"]
    if "crun" in b.absent:
        lines.append(f"  n/a  crun does not run here ({b.absent['crun']}): `just bench --testvm` "
                     "measures on cgroup v2")
    else:
        for op in ("run", "lifecycle", "exec"):
            h, c = med[op]["hull"], med[op]["crun"]
            ok = "ok  " if h <= TARGET_VS_CRUN[op] * c else "MISS"
            lines.append(f"  {ok} {names[op]}: {h / c:.2f}x crun (target <= {TARGET_VS_CRUN[op]}x)")
        for op in ("run", "lifecycle", "exec"):
            h, c = rss_med[op]["hull"], rss_med[op]["crun"]
            ok = "ok  " if h <= c else "MISS"
            lines.append(f"  {ok} {names[op]}: peak RSS {h:.0f} KiB vs crun {c:.0f} KiB")
    for op in ("run", "lifecycle", "exec"):
        h = med[op]["hull"]
        ok = "ok  " if h <= TARGET_VS_FLOOR * floor else "MISS"
        lines.append(f"  {ok} {names[op]}: {h / floor:.2f}x floor (target <= {TARGET_VS_FLOOR}x)")
    if "runc" not in b.absent:
        lines.append(f"targets (issue 8): hull <= {TARGET_VS_RUNC}x runc (run, lifecycle), peak RSS below runc's")
        for op in ("run", "lifecycle"):
            h, r = med[op]["hull"], med[op]["runc"]
            ok = "ok  " if h <= TARGET_VS_RUNC * r else "MISS"
            lines.append(f"  {ok} {names[op]}: {h / r:.2f}x runc (target <= {TARGET_VS_RUNC}x)")
        for op in ("run", "lifecycle", "exec"):
            h, r = rss_med[op]["hull"], rss_med[op]["runc"]
            ok = "ok  " if h < r else "MISS"
            lines.append(f"  {ok} {names[op]}: peak RSS {h:.0f} KiB vs runc {r:.0f} KiB")
    return "\n".join(lines)


def env_line(args):
    def version(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()
            return out[0].strip() if out else "?"
        except OSError:
            return "?"
    kernel = os.uname().release
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    versions = ", ".join(version([b, "--version"]) for b in (args.hull, args.crun, args.runc) if b)
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return (f"N={args.n}, {versions}, kernel {kernel}, cgroup {'v2' if v2 else 'v1 hybrid'}, "
            f"{os.cpu_count()} CPUs, load {load} (at the end)")


# --- main -------------------------------------------------------------------------------------

def ensure_time():
    if os.access(TIME, os.X_OK):
        return
    log(f"{TIME} not found: apt-get install -y time")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "time"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "time"], env=env, check=True)


def ensure_runtime(name, path, install=True):
    """The runtime's binary: `path`, else found on PATH or in /usr/sbin, else installed from
    Debian (when `install`); None when there is none."""
    if path:
        return os.path.abspath(path)
    def found():
        return shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if found() or not install:
        return found()
    log(f"{name} not found: apt-get install -y {name}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", name], env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env)
        subprocess.run(["apt-get", "install", "-y", name], env=env)
    return found()


def module_files():
    """The files of every module this interpreter has loaded (the standard library modules
    this script needs, lib-dynload's extensions included)."""
    return sorted({os.path.realpath(m.__file__) for m in list(sys.modules.values())
                   if getattr(m, "__file__", None)})


def run_in_testvm(args):
    """Reruns this script inside the nested test machine (pure cgroup v2, where crun runs),
    carrying in Debian's python3 with the modules this script imports, runc, crun and GNU time;
    does not return."""
    py = "/usr/bin/python3"
    if not os.access(py, os.X_OK):
        die(f"--testvm carries Debian's {py}: apt-get install -y python3")
    # Debian's interpreter, not the one running this (it may be another build): ask it.
    listing = subprocess.run([py, os.path.abspath(__file__), "--list-modules"],
                             capture_output=True, text=True)
    if listing.returncode != 0:
        die(f"{py} could not list this script's modules: {listing.stderr.strip()[-400:]}")
    args.runc = ensure_runtime("runc", args.runc)
    args.crun = ensure_runtime("crun", args.crun)
    if not args.runc or not args.crun:
        die("--testvm needs runc and crun on this host (apt-get install -y runc crun)")
    ensure_time()
    # The files themselves, at the paths they are called by (testvm carries a link as a link).
    adds = [f"{os.path.realpath(p)}:{p}" for p in (py, args.runc, args.crun, TIME)]
    adds.append(f"{os.path.abspath(__file__)}:/bench/bench.py")
    adds += [f for f in listing.stdout.split() if f.startswith("/usr/lib/python3")]
    argv = [os.path.join(REPO, "integration", "testvm", "testvm.sh"), "--hull", args.hull,
            "--timeout", str(args.testvm_timeout)]
    for a in adds:
        argv += ["--add", a]
    argv += ["--", py, "/bench/bench.py", "-n", str(args.n), "--hull", "/hull",
             "--runc", args.runc, "--crun", args.crun, "--dir", "/tmp/bench",
             "--warmup", str(args.warmup), "--rss-rounds", str(args.rss_rounds)]
    os.execv(argv[0], argv)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=int(os.environ.get("N", "100")),
                    help="samples per operation and runtime (default: $N or 100)")
    ap.add_argument("--hull", default=os.path.join(REPO, "target", "x86_64-unknown-linux-gnu", "release", "hull"))
    ap.add_argument("--runc", default=None, help="runc binary (default: PATH; installed if missing)")
    ap.add_argument("--crun", default=None, help="crun binary (default: PATH; installed if missing)")
    ap.add_argument("--testvm", action="store_true",
                    help="run in the nested test machine (pure cgroup v2: crun runs there)")
    ap.add_argument("--testvm-timeout", type=int, default=3600, help=argparse.SUPPRESS)
    ap.add_argument("--list-modules", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=os.path.join(REPO, "target", "bench"),
                    help="bundle and state roots (default: target/bench)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    ap.add_argument("--rss-rounds", type=int, default=10,
                    help="rounds of the separate peak-RSS pass (default 10)")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args()
    if args.list_modules:
        print("\n".join(module_files()))
        return

    if os.geteuid() != 0:
        die("needs root (namespaces, mounts, cgroups): run it with sudo")
    if args.n < 1:
        die("-n must be at least 1")
    args.hull = os.path.abspath(args.hull)
    if not os.access(args.hull, os.X_OK):
        die(f"{args.hull} is missing: cargo build --release")
    if args.testvm:
        run_in_testvm(args)
    args.runc = ensure_runtime("runc", args.runc)
    args.crun = ensure_runtime("crun", args.crun)
    if not args.runc:
        die("runc not found, and apt-get could not install it")
    ensure_time()
    for tool in ("unshare", "chroot"):
        if not shutil.which(tool):
            die(f"{tool} not found (util-linux, coreutils)")

    # Like containerd-shim: container inits are reparented to us when create returns.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log("warning: could not become a child subreaper; waiting on /proc instead")

    # SIGINT (even when inherited as ignored), SIGTERM and SIGHUP all stop the run and clean up.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    os.makedirs(args.dir, exist_ok=True)
    global RSS_FILE
    RSS_FILE = os.path.join(args.dir, "maxrss")
    b = Bench(args)
    try:
        b.run(args.warmup, max(1, args.rss_rounds))
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        b.cleanup()
        sys.exit(130)
    except Failed as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        b.cleanup()
        die(str(e))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    b.cleanup()
    text = report(b, env_line(args))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
