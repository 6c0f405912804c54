#!/usr/bin/env python3
"""otapub's benchmark: each figure against the baseline a user would script
instead, measured in the same run on the same local S3-compatible server, as
the median of several runs (min and max shown). Writes bench/RESULTS.md.

Requests are counted by a proxy of this script's own between the client and
the server, never from otapub's report. Memory is the kernel's accounting of
peak RSS, read by /usr/bin/time.
"""

import argparse
import base64
import gzip
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("OTAPUB_TOOLS_DIR", Path.home() / ".cache" / "otapub"))
ACCESS, SECRET = "otapub-bench-access", "otapub-bench-secret-key"
BUCKET = "bench"
# The round trip the latency rounds add to every request (a bucket in another region).
LATENCY = 0.020
REGEN_BUCKET = "bench-regen"


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port}")


class Server:
    """A local S3-compatible server with one bucket, and a counting proxy."""

    def __init__(self, kind, work, buckets=(BUCKET,)):
        self.kind = kind
        self.port = free_port()
        self.data = work / f"{kind}-data"
        self.data.mkdir()
        if kind == "s3s-fs":
            cmd = [str(TOOLS / "s3s-fs/bin/s3s-fs"), "--host", "127.0.0.1", "--port", str(self.port),
                   "--access-key", ACCESS, "--secret-key", SECRET, str(self.data)]
            for b in buckets:
                (self.data / b).mkdir()
        else:
            cmd = [str(TOOLS / "moto-venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, kind)
        if kind == "moto":
            for b in buckets:
                req = urllib.request.Request(f"http://127.0.0.1:{self.port}/{b}", method="PUT")
                urllib.request.urlopen(req).read()
        self.near = CountingProxy(self.port)
        # A bucket in another region: every request waits a 20 ms round trip.
        self.far = CountingProxy(self.port, delay=LATENCY)
        self.latency = False

    @property
    def proxy(self):
        """The proxy that counts this round's requests."""
        return self.far if self.latency else self.near

    @property
    def label(self):
        return f"{self.kind} +{LATENCY * 1000:.0f} ms RTT" if self.latency else self.kind

    @property
    def tag(self):
        """A name for this round's stores (each round seeds its own)."""
        return f"{self.kind}-far" if self.latency else self.kind

    @property
    def endpoint(self):
        """Where clients reach the server this round (through the latency proxy when on)."""
        return f"http://127.0.0.1:{self.far.port if self.latency else self.port}"

    def env(self, through_proxy=False):
        """Through the latency proxy whenever latency is on (it counts too),
        else through the counting proxy only when asked."""
        if self.latency:
            port = self.far.port
        else:
            port = self.near.port if through_proxy else self.port
        env = dict(os.environ)
        env.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": ACCESS,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        return env

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class CountingProxy:
    """Forwards bytes untouched; records the method and path of each request;
    with `delay`, holds each request that long before forwarding it (the
    round trip to a distant bucket: requests x RTT is what production pays)."""

    def __init__(self, upstream, delay=0.0):
        self.upstream = upstream
        self.delay = delay
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def clear(self):
        with self.lock:
            self.requests = []

    def _accept(self):
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream))
            # Forwarded at once: with Nagle's algorithm on the proxy's own
            # sockets, a small write waits for the peer's delayed ACK (up to
            # 40 ms), which no real network adds.
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._copy, args=(server, client), daemon=True).start()

    @staticmethod
    def _copy(src, dst):
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _requests(self, client, server):
        f = client.makefile("rb")
        try:
            while True:
                head = b""
                length, chunked = 0, False
                while True:
                    line = f.readline()
                    if not line:
                        server.shutdown(socket.SHUT_WR)
                        return
                    head += line
                    lower = line.lower()
                    if lower.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    if lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
                        chunked = True
                    if line == b"\r\n":
                        break
                method, target = head.split(b" ", 2)[:2]
                with self.lock:
                    self.requests.append((method.decode(), target.decode()))
                if self.delay:
                    time.sleep(self.delay)
                server.sendall(head)
                if chunked:
                    while True:
                        size_line = f.readline()
                        server.sendall(size_line)
                        size = int(size_line.split(b";")[0], 16)
                        server.sendall(f.read(size + 2))
                        if size == 0:
                            break
                else:
                    left = length
                    while left:
                        chunk = f.read(min(left, 1 << 20))
                        server.sendall(chunk)
                        left -= len(chunk)
        except (OSError, ValueError):
            return


def timed(cmd, env, cwd=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stderr.decode()}")
    return elapsed


def cpu_seconds(pid):
    """User + system CPU time a running process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_cpu(cmd, env, server_pid):
    """Wall time, the command's CPU time and the server's CPU time meanwhile:
    on a machine whose cores client and server share, the wall time follows
    the CPU both spend."""
    client, server = children_cpu(), cpu_seconds(server_pid)
    elapsed = timed(cmd, env)
    return elapsed, children_cpu() - client, cpu_seconds(server_pid) - server


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": len(xs)}


def fmt(s, unit="s"):
    if unit == "s":
        return f"{s['median']:.3f} s (min {s['min']:.3f}, max {s['max']:.3f}, n={s['runs']})"
    return f"{s['median']:.1f} {unit} (min {s['min']:.1f}, max {s['max']:.1f}, n={s['runs']})"


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.otapub = args.bin_dir / "otapub"
        self.tools = args.bin_dir / "examples" / "bench_tools"
        self.aws = TOOLS / "awscli-venv/bin/aws"
        self.rows = []
        self.failed = []
        self.key = work / "keys/bench.key"
        subprocess.run([self.otapub, "keygen", "--out", work / "keys/bench"], check=True, stdout=subprocess.DEVNULL)

    def publish_cmd(self, export, store, version, extra=()):
        return [self.otapub, "publish", export, "--channel", "production", "--fingerprint", "fp1",
                "--version", version, "--store", store, "--key", self.key,
                "--base-url", "https://cdn.example.com", *extra]

    def record(self, server, figure, value, baseline, ratio, target, ok):
        # The targets are set on s3s-fs (disk, SigV4); moto's figures are
        # reported for comparison: its in-memory Python server bounds them.
        if server != "s3s-fs":
            # moto, and every round through the latency proxy: reported next
            # to the targets, which are set on loopback.
            status = "met" if ok else "reported"
        else:
            status = "met" if ok else "MISSED"
            if not ok:
                self.failed.append(f"{server}: {figure}")
        self.rows.append((server, figure, value, baseline, ratio, target, status))
        log(f"  [{server}] {figure}: {value} | baseline {baseline} | ratio {ratio} | target {target}: {status}")

    def gen_export(self, name, tag=""):
        d = self.work / name
        a = self.args
        subprocess.run([self.tools, "gen-export", d, "--assets", str(a.assets), "--total-mb", str(a.total_mb),
                        "--bundle-mb", str(a.bundle_mb), "--android-tag", tag], check=True)
        return d

    def curl_config(self, export, server, prefix):
        lines = []
        for p in sorted(export.rglob("*")):
            if p.is_file():
                rel = p.relative_to(export).as_posix()
                lines += [f'upload-file = "{p}"', f'url = "{server.endpoint}/{BUCKET}/{prefix}/{rel}"', 'output = "/dev/null"']
        cfg = self.work / f"curl-{prefix}.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def cold_publish(self, server, export):
        env = server.env()
        runs = {"otapub": [], "aws s3 cp": [], "curl": []}
        cpu = {"otapub": ([], []), "curl": ([], [])}
        for i in range(self.args.runs):
            wall, client, srv = timed_cpu(self.publish_cmd(export, f"s3://{BUCKET}/{server.tag}-cold-otapub-{i}", "v1"),
                                          env, server.proc.pid)
            runs["otapub"].append(wall)
            cpu["otapub"][0].append(client)
            cpu["otapub"][1].append(srv)
            runs["aws s3 cp"].append(timed([self.aws, "--endpoint-url", server.endpoint, "s3", "cp", "--recursive",
                                            "--only-show-errors", export, f"s3://{BUCKET}/{server.tag}-cold-aws-{i}/"], env))
            cfg = self.curl_config(export, server, f"{server.tag}-cold-curl-{i}")
            wall, client, srv = timed_cpu(["curl", "--fail", "--silent", "--show-error", "--parallel", "--parallel-max", "16",
                                           "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{ACCESS}:{SECRET}",
                                           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-K", cfg], env, server.proc.pid)
            runs["curl"].append(wall)
            cpu["curl"][0].append(client)
            cpu["curl"][1].append(srv)
        o, a, c = (stats(runs[k]) for k in ("otapub", "aws s3 cp", "curl"))
        r = o["median"] / a["median"]
        self.record(server.label, "cold publish vs aws s3 cp --recursive", fmt(o), fmt(a), f"{r:.2f}x", "<= 0.3x", r <= 0.3)
        r = o["median"] / c["median"]
        self.record(server.label, "cold publish vs curl --parallel (raw PUT floor)", fmt(o), fmt(c), f"{r:.2f}x", "<= 1.2x", r <= 1.2)
        r = c["median"] / a["median"]
        self.rows.append((server.label, "for scale: the raw PUT floor vs aws s3 cp", fmt(c), fmt(a), f"{r:.2f}x", "-", "-"))
        # Where the wall time goes when client and server share the cores:
        # the CPU each side spent, medians of the same runs.
        med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in cpu.items()}
        r = sum(med["otapub"]) / sum(med["curl"])
        self.rows.append((server.label, "for scale: cold publish CPU time, client + server (median per run), vs the raw PUT floor's",
                          f"{med['otapub'][0]:.3f} + {med['otapub'][1]:.3f} s",
                          f"{med['curl'][0]:.3f} + {med['curl'][1]:.3f} s", f"{r:.2f}x", "-", "-"))

    def warm_publish(self, server, export):
        env = server.env()
        store = f"s3://{BUCKET}/{server.tag}-warm-otapub"
        subprocess.run(self.publish_cmd(export, store, "w0"), env=env, check=True, stdout=subprocess.DEVNULL)
        sync_dest = f"s3://{BUCKET}/{server.tag}-warm-aws/"
        subprocess.run([self.aws, "--endpoint-url", server.endpoint, "s3", "sync", "--only-show-errors", export, sync_dest],
                       env=env, check=True)
        variants = [self.gen_export(f"warm-{server.tag}-{i}", tag=f"change {i}") for i in range(self.args.runs + 1)]
        o, s = [], []
        # The upload path alone: patches off (the patch figures measure
        # their cost; the last run below makes them).
        for i in range(self.args.runs):
            o.append(timed(self.publish_cmd(variants[i], store, f"w{i + 1}", ("--patch-bases", "0")), env))
            s.append(timed([self.aws, "--endpoint-url", server.endpoint, "s3", "sync", "--only-show-errors", export, sync_dest], env))
        o, s = stats(o), stats(s)
        # One more, through the counting proxy, making its patches (the
        # changed 5 MB bundle from the 3 newest earlier ones).
        server.proxy.clear()
        with_patches = timed(self.publish_cmd(variants[-1], store, f"w{self.args.runs + 1}"), server.env(True))
        reqs = server.proxy.requests
        asset_puts = [t for m, t in reqs if m == "PUT" and "/public/assets/" in t]
        asset_heads = [t for m, t in reqs if m == "HEAD" and "/public/assets/" in t]
        r = o["median"] / s["median"]
        self.record(server.label, "warm re-publish (one bundle changed, patches off) vs aws s3 sync (nothing to do)", fmt(o),
                    fmt(s), f"{r:.2f}x", "<= 0.3x", r <= 0.3)
        patch_puts = [t for m, t in reqs if m == "PUT" and "/public/patches/" in t]
        self.rows.append((server.label, "for scale: the same re-publish making its patches (3 of the changed 5 MB bundle), one run",
                          f"{with_patches:.3f} s, {len(patch_puts)} patch PUTs", fmt(s), f"{with_patches / s['median']:.2f}x",
                          "-", "-"))
        # The changed bundle is new content and must go up; nothing already stored may.
        ok = len(asset_puts) == 1 and len(asset_heads) <= 1
        self.record(server.label, "warm re-publish: asset requests counted at the proxy",
                    f"{len(asset_puts)} asset PUT (the changed bundle), {len(asset_heads)} asset HEAD, {len(reqs)} requests in all",
                    "-", "-", "re-uploads of stored assets: 0", ok)

    def hashing(self, export):
        files = sorted(str(p) for p in export.rglob("*") if p.is_file())
        total = sum(Path(f).stat().st_size for f in files)
        listing = self.work / "hash-list.txt"
        listing.write_text("\n".join(files) + "\n")
        env = dict(os.environ)
        # Warm the page cache: both read from memory.
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
        o, s = [], []
        for _ in range(max(self.args.runs, 5)):
            o.append(timed([self.tools, "hash", listing], env))
            s.append(timed(["sha256sum", *files], env))
        o, s = stats(o), stats(s)
        mbs = lambda st: total / st["median"] / 1e6  # noqa: E731
        r = mbs(o) / mbs(s)
        self.record("-", f"hashing {total / 1e6:.0f} MB in {len(files)} files (SHA-256, both cores) vs sha256sum",
                    f"{mbs(o):.0f} MB/s; {fmt(o)}", f"{mbs(s):.0f} MB/s; {fmt(s)}", f"{r:.2f}x", ">= 0.8x", r >= 0.8)

    def peak_memory(self, server):
        big = self.work / "big"
        subprocess.run([self.tools, "gen-big", big, "--mb", str(self.args.big_mb)], check=True)
        rss = []
        for i in range(min(self.args.runs, 3)):
            r = subprocess.run(["/usr/bin/time", "-v", *map(str, self.publish_cmd(big, f"s3://{BUCKET}/{server.tag}-big-{i}", "big",
                                                                               ("--platform", "ios")))],
                               env=server.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit(f"big publish failed:\n{r.stderr}")
            line = next(l for l in r.stderr.splitlines() if "Maximum resident set size" in l)
            rss.append(int(line.split(":")[1]) / 1024)
        s = stats(rss)
        self.record(server.label, f"peak RSS publishing one {self.args.big_mb} MB asset (streamed, multipart)", fmt(s, "MB"),
                    "-", "-", "<= 64 MB", s["median"] <= 64)
        shutil.rmtree(big)

    def insights(self):
        """`otapub insights ingest` of nginx access logs in the shipped
        template's `otapub_insights` format: lines per second and peak
        memory, for a 100 MB log (plain and gzip'd) and a 1 GB one (ten
        copies of it, one file), each run on a fresh copy of the store."""
        small = self.work / "insights-export"
        subprocess.run([self.tools, "gen-export", small, "--assets", "3", "--total-mb", "3", "--bundle-mb", "1"], check=True)
        store = self.work / "insights-store"
        out = subprocess.run([*map(str, self.publish_cmd(small, store, "v1")), "--json"], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        ids = {p["platform"]: p["id"] for p in json.loads(out)["packages"]}
        launch = {}
        for platform_ in ids:
            doc = json.loads((store / f"public/updates/v1/{platform_}/manifest.json").read_text())
            url = json.loads(base64.b64decode(doc["payload"]))["launchAsset"]["url"]
            launch[platform_] = url[url.index("/assets/"):]
        # 100,000 devices over the last two days; one line in ten a
        # launch-asset download (half of them asking for a patch), the rest
        # check-ins, some reporting the update failed. Seeded: the same log
        # every run.
        rng = random.Random(22)
        devices = [f"{rng.getrandbits(128):032x}" for _ in range(100_000 if not self.args.smoke else 1000)]
        target = (100 if not self.args.smoke else 1) << 20
        log_path = self.work / "access.log"
        now = time.time()
        size = lines = 0
        with open(log_path, "w") as f:
            while size < target:
                device = rng.choice(devices)
                platform_ = "ios" if int(device[0], 16) < 8 else "android"
                t = now - rng.uniform(0, 2 * 86400)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))
                uid = f"{device[:8]}-{device[8:12]}-4{device[13:16]}-8{device[17:20]}-{device[20:]}"
                if rng.random() < 0.1:
                    patch = rng.random() < 0.5
                    path, status, sent = launch[platform_], (226 if patch else 200), (90_000 if patch else 1_048_576)
                    extra = {"im": "bsdiff" if patch else "", "a-im": "bsdiff" if patch else "",
                             "expo-requested-update-id": ids[platform_], "expo-current-update-id": ""}
                else:
                    path, status, sent = f"/production/{platform_}/fp1/manifest", 200, 1900
                    extra = {"im": "", "a-im": "", "expo-requested-update-id": "",
                             "expo-current-update-id": ids[platform_] if rng.random() < 0.7 else ""}
                failed = f'\\"{ids[platform_]}\\"' if rng.random() < 0.01 else ""
                line = ('{"msec":"%.3f","time":"%s","method":"GET","path":"%s","status":%d,"bytes":%d,"im":"%s",'
                        '"eas-client-id":"%s","expo-current-update-id":"%s","expo-embedded-update-id":"",'
                        '"expo-recent-failed-update-ids":"%s","a-im":"%s","expo-requested-update-id":"%s"}\n') % (
                    t, stamp, path, status, sent, extra["im"], uid, extra["expo-current-update-id"], failed,
                    extra["a-im"], extra["expo-requested-update-id"])
                f.write(line)
                size += len(line)
                lines += 1
        gz = self.work / "access.log.gz"
        with open(log_path, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        big = self.work / "access-1g.log"
        with open(big, "wb") as dst:
            for _ in range(10):
                with open(log_path, "rb") as src:
                    shutil.copyfileobj(src, dst)
        mb = target >> 20
        for label, path, n, runs in ((f"{mb} MB plain", log_path, lines, self.args.runs),
                                     (f"{mb} MB gzip'd ({gz.stat().st_size / 1048576:.1f} MB)", gz, lines, self.args.runs),
                                     (f"{10 * mb} MB plain (ten copies, one file)", big, 10 * lines, min(self.args.runs, 3))):
            walls, rss = [], []
            for i in range(runs):
                copy = self.work / f"insights-store-{i}"
                shutil.copytree(store, copy)
                t = time.perf_counter()
                r = subprocess.run(["/usr/bin/time", "-v", str(self.otapub), "insights", "ingest", "--store", str(copy),
                                    "--format", "nginx", "--json", str(path)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                walls.append(time.perf_counter() - t)
                if r.returncode != 0:
                    sys.exit(f"insights ingest failed:\n{r.stderr}")
                counted = json.loads(r.stdout)
                if (counted.get("read"), counted.get("skipped")) != (n, 0):
                    sys.exit(f"insights ingest did not read every line of {path.name} ({n} lines): {counted}")
                used = counted.get("used")
                rss.append(int(next(l for l in r.stderr.splitlines() if "Maximum resident set size" in l).split(":")[1]) / 1024)
                shutil.rmtree(copy)
            w, m = stats(walls), stats(rss)
            self.rows.append(("-", f"insights ingest, nginx log {label}: {n:,} lines ({used:,} used: the check-ins of devices on no update are not)",
                              f"{n / w['median']:,.0f} lines/s; {fmt(w)}",
                              "-", "-", "-", "-"))
            self.rows.append(("-", f"insights ingest, nginx log {label}: peak RSS", fmt(m, "MB"), "-", "-", "-", "-"))
        for p in (log_path, gz, big):
            p.unlink()

    def seed(self, server, prefix, pointers, per, bucket=BUCKET):
        """Writes a seeded index (and its pointer objects) straight into
        s3s-fs's data directory, which maps keys to files: seconds instead of
        thousands of PUTs. The objects are then read through S3 as usual."""
        local = server.data / bucket / prefix
        out = subprocess.run([self.tools, "seed-index", "--store", local, "--key", self.key, "--pointers", str(pointers),
                              "--per-pointer", str(per)], check=True, capture_output=True, text=True)
        return local, int(out.stdout.strip())

    def ban(self, server):
        pointers, per = self.args.ban_pointers, self.args.ban_per_pointer
        store = f"s3://{BUCKET}/{server.tag}-ban"
        local, size = self.seed(server, f"{server.tag}-ban", pointers, per)
        shutil.rmtree(local / "state" / "meta", ignore_errors=True)
        size_mb = size / 1e6
        times = []
        # Pointer 2r (Android) has versions v{r*per+1}..v{(r+1)*per}; the last is live.
        for r in range(self.args.runs):
            times.append(timed([self.otapub, "ban", f"v{(r + 1) * per}", "--platform", "android", "--reason", "bench",
                                "--store", store, "--key", self.key], server.env()))
        s = stats(times)
        r = self.args.runs
        server.proxy.clear()
        subprocess.run([self.otapub, "ban", f"v{(r + 1) * per}", "--platform", "android", "--reason", "bench",
                        "--store", store, "--key", self.key], env=server.env(True), check=True, stdout=subprocess.DEVNULL)
        writes = sorted(t.split("?")[0].split(f"/{server.tag}-ban/", 1)[-1] for m, t in server.proxy.requests if m in ("PUT", "POST", "DELETE"))
        expected_pointer = {f"public/c{r % 10}/android/fp{2 * r // 20}/manifest", f"public/c{r % 10}/android/fp{2 * r // 20}/manifest.json"}
        ok_writes = set(writes) == expected_pointer | {"state/index.sqlite", f"state/bans/android/v{(r + 1) * per}.json",
                                                       "state/pointers-written.json"}
        self.record(server.label, f"ban with {pointers * per} packages in the index ({pointers} pointers, index {size_mb:.0f} MB)",
                    fmt(s), "-", "-", "<= 1 s", s["median"] <= 1.0)
        self.record(server.label, "ban: objects written, counted at the proxy", ", ".join(writes), "-", "-",
                    "the changed pointer objects + the index (+ its signed ban record, + the record that its pointers are written)", ok_writes)

    def regenerate(self, server):
        n = self.args.regen_pointers
        # A bucket of its own: s3s-fs walks the whole bucket to list a prefix.
        store = f"s3://{REGEN_BUCKET}/{server.tag}-regen"
        local = None
        if server.kind == "s3s-fs":
            local, _ = self.seed(server, f"{server.tag}-regen", n, 1, REGEN_BUCKET)
            # Every immutable object too, written locally; then the sidecars the
            # local store keeps are removed, as they are not part of the tree.
            subprocess.run([self.otapub, "regenerate", "--store", local], check=True, stdout=subprocess.DEVNULL)
            shutil.rmtree(local / "state" / "meta", ignore_errors=True)
        else:
            # moto keeps objects in memory: seeded through S3 itself (once, on loopback).
            near = server.latency
            server.latency = False
            subprocess.run([self.tools, "seed-index", "--store", store, "--key", self.key, "--pointers", str(n),
                            "--per-pointer", "1"], env=server.env(), check=True, stdout=subprocess.DEVNULL)
            subprocess.run([self.otapub, "regenerate", "--store", store], env=server.env(), check=True, stdout=subprocess.DEVNULL)
            server.latency = near
        # Paired with the floor no regenerate can go below: the server
        # listing the same public/ once (the keys it must compare), with curl.
        times, floor, keys = [], [], 0
        for _ in range(self.args.runs):
            times.append(timed([self.otapub, "regenerate", "--store", store], server.env()))
            t = time.perf_counter()
            keys = self.raw_list(server, REGEN_BUCKET, f"{server.tag}-regen/public/")
            floor.append(time.perf_counter() - t)
        s, f = stats(times), stats(floor)
        server.proxy.clear()
        subprocess.run([self.otapub, "regenerate", "--store", store], env=server.env(True), check=True, stdout=subprocess.DEVNULL)
        writes = [t for m, t in server.proxy.requests if m in ("PUT", "POST", "DELETE")]
        self.record(server.label, f"regenerate with {n} pointers, nothing changed", fmt(s),
                    f"the server listing the same public/ ({keys} keys), curl: {fmt(f)}", f"{s['median'] / f['median']:.2f}x",
                    "<= 2 s", s["median"] <= 2.0)
        self.record(server.label, "regenerate: writes counted at the proxy", f"{len(writes)} writes", "-", "-", "0", not writes)
        # s3s-fs walks the whole bucket to list: the next round's store must not pay for this one.
        if local is not None:
            shutil.rmtree(local, ignore_errors=True)


    def raw_list(self, server, bucket, prefix):
        """Lists `prefix` as otapub asks (ListObjectsV2, max-keys 100000,
        following continuation tokens) with curl, parsing nothing but the
        token: what the server alone takes. Returns the number of keys."""
        keys, token = 0, None
        while True:
            # In SigV4's canonical order (curl signs the query as given).
            params = {"list-type": "2", "max-keys": "100000", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            query = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in sorted(params.items()))
            out = subprocess.run(["curl", "--fail", "--silent", "--show-error", "--aws-sigv4", "aws:amz:us-east-1:s3",
                                  "--user", f"{ACCESS}:{SECRET}", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                  f"{server.endpoint}/{bucket}?{query}"],
                                 check=True, capture_output=True, text=True).stdout
            keys += out.count("<Key>")
            m = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", out)
            if not m:
                return keys
            token = m.group(1)

    def rollout(self, server):
        """`rollout set` 10 -> 50 % on one pointer of an index of 1,000: its
        time, and the objects it writes (counted at the proxy): the 40 new
        bucket pairs, the signed record and the index, nothing else."""
        pointers = self.args.ban_pointers
        store = f"s3://{BUCKET}/{server.tag}-rollout"
        local, size = self.seed(server, f"{server.tag}-rollout", pointers, 1)
        shutil.rmtree(local / "state" / "meta", ignore_errors=True)
        small = self.work / "rollout-export"
        if not small.exists():
            subprocess.run([self.tools, "gen-export", small, "--assets", "3", "--total-mb", "3", "--bundle-mb", "1"], check=True)
        env = server.env()
        base = [*self.publish_cmd(small, store, "r0", ("--platform", "ios"))]
        base[base.index("production")] = "canary"
        subprocess.run(base, env=env, check=True, stdout=subprocess.DEVNULL)
        where = ["--channel", "canary", "--platform", "ios", "--fingerprint", "fp1", "--store", store, "--key", self.key]

        def start(i, proxied=False):
            cmd = [*self.publish_cmd(small, store, f"r{i + 1}", ("--platform", "ios", "--rollout", "10"))]
            cmd[cmd.index("production")] = "canary"
            # The same bundle under a new version: a re-publish of other content.
            cmd += ["--message", f"candidate {i + 1}"]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)

        times = []
        for i in range(self.args.runs):
            start(i)
            times.append(timed([self.otapub, "rollout", "set", *where, "--percent", "50"], env))
            subprocess.run([self.otapub, "rollout", "complete", *where], env=env, check=True, stdout=subprocess.DEVNULL)
        s = stats(times)
        start(self.args.runs)
        server.proxy.clear()
        subprocess.run([self.otapub, "rollout", "set", *where, "--percent", "50"], env=server.env(True), check=True,
                       stdout=subprocess.DEVNULL)
        writes = sorted(t.split("?")[0].split(f"/{server.tag}-rollout/", 1)[-1]
                        for m, t in server.proxy.requests if m in ("PUT", "POST", "DELETE"))
        buckets = [w for w in writes if "/rollout/" in w]
        rest = sorted(set(writes) - set(buckets))
        ok = (len(buckets) == 80 and len(set(buckets)) == 80
              and rest == ["public/canary/ios/fp1/rollout.json", "state/index.sqlite", "state/pointers-written.json"])
        self.record(server.label, f"rollout set 10 -> 50 % with {pointers} pointers in the index (index {size / 1e6:.1f} MB)",
                    fmt(s), "-", "-", "<= 1 s", s["median"] <= 1.0)
        self.record(server.label, "rollout set 10 -> 50 %: objects written, counted at the proxy",
                    f"{len(buckets)} bucket objects + {', '.join(rest)}", "-", "-",
                    "the 40 new bucket pairs + rollout.json + the index (+ the written mark)", ok)


    # -- launch-asset patches (SPEC "Patches for the launch asset") --------

    def patch_share(self):
        """Bytes a device downloads for one update on the real successive
        exports of tests/data/expo-successive: otapub's patch against the
        gzip'd full bundle (what a CDN serves compressed), and against the
        reference bsdiff 4.3 on the same two bundles."""
        import gzip
        store = self.work / "patch-share-store"
        for v, dist in (("1", "dist1"), ("2", "dist2")):
            subprocess.run([self.otapub, "publish", SUCCESSIVE / dist, "--channel", "production", "--fingerprint", "fp1",
                            "--version", v, "--store", store, "--key", self.key], check=True, stdout=subprocess.DEVNULL)
        # What a Release build of dist1's app embeds (tests/data/expo-successive/PROVENANCE.txt).
        subprocess.run([self.otapub, "embedded", "add", "--platform", "ios", "--fingerprint", "fp1", "--update-id",
                        EMBEDDED_ID, SUCCESSIVE / "embedded-ios.hbc", "--store", store, "--key", self.key],
                       check=True, stdout=subprocess.DEVNULL)
        st = json.loads(subprocess.run([self.otapub, "status", "--json", "--store", store], check=True,
                                       capture_output=True).stdout)
        for pointer in st["pointers"]:
            plat = pointer["platform"]
            for patch in pointer["patches"]:
                if patch["from"].startswith("embedded"):
                    new = next((SUCCESSIVE / f"dist2/_expo/static/js/{plat}").iterdir()).read_bytes()
                    gz = len(gzip.compress(new, compresslevel=6))
                    r = patch["size"] / gz
                    self.record("-", f"{plat}: bytes a fresh install downloads for its first update, patch from what the build embeds vs gzip'd bundle",
                                f"{patch['size']:,} B patch", f"{gz:,} B gzip -6", f"{r:.3f}x", "< 1x", r < 1.0)
            (patch,) = [p for p in pointer["patches"] if p["from"] == "1"]
            new = next((SUCCESSIVE / f"dist2/_expo/static/js/{plat}").iterdir()).read_bytes()
            old = next((SUCCESSIVE / f"dist1/_expo/static/js/{plat}").iterdir()).read_bytes()
            gz = len(gzip.compress(new, compresslevel=6))
            r = patch["size"] / gz
            self.record("-", f"{plat}: bytes a device downloads for one update (real successive exports), patch vs gzip'd bundle",
                        f"{patch['size']:,} B patch", f"{gz:,} B gzip -6 ({len(new):,} B raw)", f"{r:.3f}x", "<= 0.25x", r <= 0.25)
            ref = self.work / f"ref-{plat}.patch"
            (self.work / "old.bin").write_bytes(old)
            (self.work / "new.bin").write_bytes(new)
            subprocess.run(["bsdiff", self.work / "old.bin", self.work / "new.bin", ref], check=True)
            r = patch["size"] / ref.stat().st_size
            self.record("-", f"{plat}: patch size, otapub (qbsdiff, 512 KiB chunks on all cores) vs reference bsdiff 4.3",
                        f"{patch['size']:,} B", f"{ref.stat().st_size:,} B", f"{r:.3f}x", "<= 1.1x", r <= 1.1)

    def patch_making(self, mb, platforms, bases):
        """Time and peak RSS to make the patches of one publish: `bases`
        earlier releases of `mb` MB bundles (built from the real Hermes
        bundles, each release a few edits apart) on `platforms`; the same
        publish with --patch-bases 0 is the baseline, and so is the
        reference bsdiff 4.3 making the same patches one after another."""
        size = int(mb * 1_000_000)
        tag = f"{mb:g}mb-{len(platforms)}p"
        releases = [self.work / f"patch-{tag}-r{r}" for r in range(bases + 1)]
        for r, d in enumerate(releases):
            write_bundle_export(d, {p: release_bundle(size, r, salt) for p, salt in zip(platforms, (0, 12345))})
        only = ["--platform", platforms[0]] if len(platforms) == 1 else []
        with_p, without = [], []
        rss = []
        for i in range(max(1, min(self.args.runs, 3))):
            stores = {}
            for name in ("with", "without"):
                stores[name] = self.work / f"patch-{tag}-{name}-{i}"
                for r, d in enumerate(releases[:-1]):
                    subprocess.run([self.otapub, "publish", d, "--channel", "production", "--fingerprint", "fp1",
                                    "--version", f"{r}", "--store", stores[name], "--key", self.key,
                                    "--patch-bases", "0", *only], check=True, stdout=subprocess.DEVNULL)
            last = lambda store, n: [self.otapub, "publish", releases[-1], "--channel", "production",  # noqa: E731
                                     "--fingerprint", "fp1", "--version", "new", "--store", store, "--key", self.key,
                                     "--patch-bases", str(n), *only]
            r = subprocess.run(["/usr/bin/time", "-v", *map(str, last(stores["with"], bases))], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit(f"publish with patches failed:\n{r.stderr}")
            elapsed = next(l for l in r.stderr.splitlines() if "Elapsed (wall clock)" in l).rsplit(" ", 1)[1]
            m, sec = elapsed.split(":")[-2:]
            with_p.append(int(m) * 60 + float(sec))
            rss.append(int(next(l for l in r.stderr.splitlines() if "Maximum resident set size" in l).split(":")[1]) / 1024)
            without.append(timed(last(stores["without"], 0), os.environ.copy()))
            for store in stores.values():
                shutil.rmtree(store, ignore_errors=True)
        made = len(platforms) * bases
        # The reference: bsdiff 4.3, one patch after another, as a script would.
        ref_t, ref_rss = [], []
        for p in platforms:
            for r in range(bases):
                old = releases[r] / "_expo/static/js" / p / "index.hbc"
                new = releases[-1] / "_expo/static/js" / p / "index.hbc"
                out = subprocess.run(["/usr/bin/time", "-v", "bsdiff", old, new, self.work / "ref.patch"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
                el = next(l for l in out.stderr.splitlines() if "Elapsed (wall clock)" in l).rsplit(" ", 1)[1]
                m, sec = el.split(":")[-2:]
                ref_t.append(int(m) * 60 + float(sec))
                ref_rss.append(int(next(l for l in out.stderr.splitlines() if "Maximum resident set size" in l).split(":")[1]) / 1024)
        w, wo = stats(with_p), stats(without)
        cost = max(w["median"] - wo["median"], 0.0)
        ref = sum(ref_t)
        r = cost / ref if ref else 0.0
        plural = lambda n, w: f"{n} {w}{'' if n == 1 else ('es' if w.endswith('ch') else 's')}"  # noqa: E731
        what = f"{plural(made, 'patch')} of {mb:g} MB bundles ({plural(bases, 'base')} x {plural(len(platforms), 'platform')})"
        self.record("-", f"time to make {what}: publish with patches minus the same publish without",
                    f"{cost:.2f} s (publish {fmt(w)}; without {fmt(wo)})", f"bsdiff 4.3, one after another: {ref:.2f} s",
                    f"{r:.2f}x", "<= 1x", r <= 1.0)
        s = stats(rss)
        peak_ref = max(ref_rss)
        r = s["median"] / peak_ref
        # otapub holds the publish's own state besides one diff at a time.
        self.record("-", f"peak RSS of the publish that makes {what}", fmt(s, "MB"), f"bsdiff 4.3, one patch: {peak_ref:.0f} MB",
                    f"{r:.2f}x", "<= 1.5x", r <= 1.5)
        for d in releases:
            shutil.rmtree(d, ignore_errors=True)


SUCCESSIVE = ROOT / "tests" / "data" / "expo-successive"
EMBEDDED_ID = "0b3c5d7e-1f2a-4b6c-8d9e-0f1a2b3c4d5e"


def release_bundle(size, release, salt):
    """A `size`-byte bundle made of the real Hermes bundles of
    tests/data/expo-successive (each copy stamped so no two copies are
    alike), with `release` small edits (overwrites and insertions) at
    positions that depend on `salt`: release r and r+1 differ as two builds
    of one app with a small change do."""
    material = b"".join(next((SUCCESSIVE / f"dist{n}/_expo/static/js/{p}").iterdir()).read_bytes()
                        for n in (1, 2) for p in ("ios", "android"))
    out = bytearray()
    copy = 0
    while len(out) < size:
        chunk = bytearray(material)
        stamp = f"{copy:08d}".encode()
        for at in range(0, len(chunk) - 8, 4096):
            chunk[at:at + 8] = stamp
        out += chunk
        copy += 1
    del out[size:]
    for k in range(release):
        at = (salt + 104729 * (k + 1) * 61) % (size - 400)
        out[at:at + 16] = f"release {release:03d}/{k:03d}".encode()[:16]
        out[at + 200:at + 200] = f"inserted by release {k}".encode()
    return bytes(out)


def write_bundle_export(d, bundles):
    """An `expo export` layout holding only a launch bundle per platform."""
    meta = {"version": 0, "bundler": "metro", "fileMetadata": {}}
    for p, data in bundles.items():
        js = d / "_expo/static/js" / p
        js.mkdir(parents=True, exist_ok=True)
        (js / "index.hbc").write_bytes(data)
        meta["fileMetadata"][p] = {"bundle": f"_expo/static/js/{p}/index.hbc", "assets": []}
    (d / "metadata.json").write_text(json.dumps(meta))


def machine():
    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        mem = f"{int(next(l.split()[1] for l in open('/proc/meminfo') if l.startswith('MemTotal'))) / 1048576:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem} RAM"


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="a few small files, one run: keeps the script from rotting")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--servers", default="s3s-fs,moto", help="s3s-fs runs every figure; moto the publish figures; \"\" none (hashing and patch figures only)")
    p.add_argument("--bin-dir", type=Path, default=None, help="where otapub and examples/bench_tools are")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    p.add_argument("--only", default="", help="comma-separated figures: hashing,patches,insights,cold,warm,memory,ban,regenerate,rollout")
    p.add_argument("--note", action="append", default=[], help="a line for the results' header (e.g. what else loaded the machine)")
    args = p.parse_args()
    args.assets, args.total_mb, args.bundle_mb, args.big_mb = 300, 60, 5, 1024
    args.ban_pointers, args.ban_per_pointer, args.regen_pointers = 1000, 100, 10000
    if args.smoke:
        args.runs, args.servers = 1, "s3s-fs"
        args.assets, args.total_mb, args.bundle_mb, args.big_mb = 12, 4, 1, 32
        args.ban_pointers, args.ban_per_pointer, args.regen_pointers = 20, 5, 50
    if args.bin_dir is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        log("== building otapub and bench_tools (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "otapub", "--example", "bench_tools"],
                       cwd=ROOT, check=True)
        args.bin_dir = target / "release"

    if not (TOOLS / "awscli-venv/bin/aws").exists():
        log(f"== installing awscli from PyPI into {TOOLS / 'awscli-venv'}")
        subprocess.run([sys.executable, "-m", "venv", TOOLS / "awscli-venv"], check=True)
        subprocess.run([TOOLS / "awscli-venv/bin/pip", "install", "--quiet", "--disable-pip-version-check", "awscli"], check=True)
    else:
        log(f"== awscli already installed in {TOOLS / 'awscli-venv'} (skipping install)")

    work = Path(tempfile.mkdtemp(prefix="otapub-bench-"))
    started = time.time()
    try:
        bench = Bench(args, work)
        log(f"== generating a {args.total_mb} MB export of {args.assets} assets and two {args.bundle_mb} MB bundles")
        export = bench.gen_export("export")
        want = lambda f: not args.only or f in args.only.split(",")  # noqa: E731
        if want("hashing"):
            bench.hashing(export)
        if want("patches"):
            log("== launch-asset patches")
            bench.patch_share()
            if args.smoke:
                bench.patch_making(0.5, ("ios", "android"), 2)
            else:
                bench.patch_making(3.4, ("ios", "android"), 3)
                bench.patch_making(20, ("ios",), 1)
        if want("insights"):
            log("== insights ingestion")
            bench.insights()
        for kind in filter(None, args.servers.split(",")):
            log(f"== {kind}")
            server = Server(kind, work, (BUCKET, REGEN_BUCKET))
            try:
                for latency in (False, True):
                    # Every S3 figure twice: on loopback, and 20 ms away.
                    server.latency = latency
                    server.proxy.clear()
                    if want("cold"):
                        bench.cold_publish(server, export)
                    if want("warm"):
                        bench.warm_publish(server, export)
                    if kind == "s3s-fs":
                        if want("memory") and not latency:
                            bench.peak_memory(server)
                        if want("ban"):
                            bench.ban(server)
                        if want("rollout"):
                            bench.rollout(server)
                    if want("regenerate"):
                        bench.regenerate(server)
            finally:
                server.stop()
                server_data = server.data
                shutil.rmtree(server_data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = [
        "# otapub benchmark results",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + (" (smoke run: tiny data, not figures)" if args.smoke else ""),
        f"- machine: {machine()}",
        f"- servers on 127.0.0.1: s3s-fs 0.14.1 (SigV4 checked, data on disk) — every figure; moto 5.2.5 (in memory) — publish and regenerate figures",
        f"- every S3 figure twice: on loopback, and through this script's proxy holding each request {LATENCY * 1000:.0f} ms "
        "(`+20 ms RTT`: a bucket in another region, baselines through the same proxy); targets are set on loopback s3s-fs, the other rounds are reported",
        f"- baselines: {version([TOOLS / 'awscli-venv/bin/aws', '--version'])}; {version(['curl', '--version'])}; {version(['sha256sum', '--version'])}",
        f"- each figure: median of {args.runs} runs (min, max); requests counted by bench/run.py's own proxy; peak RSS from /usr/bin/time -v",
        f"- command: `bench/run.sh` ({time.time() - started:.0f} s for this run)",
        *(f"- {n}" for n in args.note),
        "",
        "| server | figure | otapub | baseline | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [tuple(r) for r in bench.rows]
    # The sections below the table come from other scripts
    # (bench/delta_bytecode.py): kept as they are. A partial run (--only)
    # replaces its own rows (same server and figure) and keeps the others.
    kept = []
    if args.out.exists():
        old = args.out.read_text()
        kept = [sec.rstrip("\n") for sec in re.split(r"\n(?=## )", old)[1:]]
        if args.only and not args.smoke:
            fresh = {r[:2]: r for r in rows}
            merged = []
            for line in old.split("\n## ")[0].splitlines():
                cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
                if line.startswith("| ") and len(cells) == 7 and cells[0] not in ("server", "---"):
                    merged.append(fresh.pop(cells[:2], cells))
            rows = merged + [r for r in rows if r[:2] in fresh]
            # The earlier run's own notes stay (they describe its rows).
            generated = ("- date:", "- machine:", "- servers on", "- every S3 figure", "- baselines:", "- each figure:",
                         "- command:", "- this run (`--only")
            earlier = [l for l in old.split("\n| server |")[0].splitlines()
                       if l.startswith("- ") and not l.startswith(generated) and l not in header]
            at = header.index("| server | figure | otapub | baseline | ratio | target | |") - 1
            header[at:at] = [*earlier, f"- this run (`--only {args.only}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) "
                             "replaced its own rows; the others and the notes above are from earlier runs"]
    body = [f"| {' | '.join(r)} |" for r in rows]
    args.out.write_text("\n".join(header + body + [""] + ["\n".join([sec, ""]) for sec in kept]).rstrip("\n") + "\n")
    log(f"== wrote {args.out}")
    if args.smoke:
        log("smoke run: tiny data and debug builds, so the figures are not held to their targets")
    elif bench.failed:
        log("targets missed: " + "; ".join(bench.failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
