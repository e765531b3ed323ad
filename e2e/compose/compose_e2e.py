#!/usr/bin/env python3
"""End-to-end cases for the FileGrid compose stack (run through e2e/compose/run.sh).

Every run starts the stack from nothing under its own compose project name (so it never touches a
grid someone else runs), drives it only from outside (docker, compose, the filegrid CLI in the
test-client container, HTTP), and always tears it down with `down -v`. Each case is one named
function; a case fails by raising AssertionError (or any error) and the summary lists every case.
Waits poll a condition until a deadline; nothing sleeps and hopes.

The stack runs as users get it: secured, with the secrets the `secrets` service made on the first
`up`, and TLS on every FileGrid listener. The suite reads the admin credential, the CA certificate
(and, to sign chunk requests as a deposed leader would, the cluster secret) from that volume
through the test client; inside containers it speaks TLS with `openssl s_client`, verifying the
certificate against the CA and the name it connects to. The last case runs the stack again with
FILEGRID_INSECURE=true (plain http).

Standard library only.
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARD_DIR = REPO / "docker" / "grafana" / "dashboards"
DASHBOARD_GENERATOR = REPO / "docker" / "grafana" / "generate-dashboards.py"
BUILD_SCRIPT = REPO / "docker" / "build-images.sh"
IMAGE_TAG = os.environ.get("FILEGRID_IMAGE_TAG", "0.1.0")
IMAGES = [f"filegrid/{name}:{IMAGE_TAG}" for name in ("node", "zookeeper", "prometheus")]

HEADS = ["head-server-1", "head-server-2"]
HEAD_IDS = {"head-server-1": "head_server_1", "head-server-2": "head_server_2"}
API_PORT, NODE_METRICS_PORT, CLUSTER_PORT, MONITOR_PORT = 9669, 9091, 9700, 9092
ALWAYS_UP = ["zookeeper", *HEADS, "cluster-server", "zk-head-monitor", "prometheus", "test-client"]
# Sizes around the default 8 MiB chunk: empty, tiny, odd, one byte past a chunk, several chunks.
FILE_SIZES = [0, 1024, 1024 * 1024 + 7, 8 * 1024 * 1024 + 1, 20 * 1024 * 1024 + 3]
REPLICATION = 3
CLIENT_DIR = "/var/lib/filegrid/e2e"
SECRETS_DIR = "/etc/filegrid/secrets"
SECRET_FILES = ["cluster-secret", "zk-auth", "admin-token", "credentials.toml",
                "client/filegrid/credentials"]
TLS_DIR = f"{SECRETS_DIR}/tls"
CA_FILE = f"{TLS_DIR}/ca.pem"
# The certificates of the fixed-name services (and the cluster issuer), with their keys.
TLS_NAMES = ["cluster-issuer", "head-server-1", "head-server-2", "zk-head-monitor", "test-client"]
TLS_FILES = ["ca.pem"] + [f"{n}.{ext}" for n in TLS_NAMES for ext in ("pem", "key")]
PLAIN_ON_TLS = b"this port speaks TLS"

# Deadlines in seconds (override with FILEGRID_E2E_<NAME>).
def _deadline(name, default):
    return float(os.environ.get(f"FILEGRID_E2E_{name}", default))


STACK_DEADLINE = _deadline("STACK_DEADLINE", 180)
FAILOVER_TARGET = _deadline("FAILOVER_TARGET", 15)
ELECTION_DEADLINE = _deadline("ELECTION_DEADLINE", 45)
REPAIR_DEADLINE = _deadline("REPAIR_DEADLINE", 240)
STANDBY_WINDOW = _deadline("STANDBY_WINDOW", 8)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class CommandError(AssertionError):
    """A command the suite ran exited non-zero."""


class GiveUp(AssertionError):
    """Raised by a wait_for probe when waiting longer cannot help (e.g. a crash loop)."""


def run(cmd, *, check=True, timeout=300, input_bytes=None, env=None):
    proc = subprocess.run(
        cmd,
        input=input_bytes,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
        raise CommandError(f"`{' '.join(cmd)}` exited {proc.returncode}: {err[-800:]}")
    return proc


def wait_for(what, probe, deadline, interval=1.0):
    """Polls probe() until it returns a truthy value; fails naming `what` and the last answer.

    A probe may explain why it is not done yet by returning a tuple that starts with False."""
    end = time.monotonic() + deadline
    last = None
    while True:
        try:
            value = probe()
            if value and not (isinstance(value, tuple) and value[0] is False):
                return value
            last = value
        except GiveUp:
            raise
        except Exception as e:  # the condition may be unreachable for a while
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not reached within {deadline:.0f}s (last: {last})")
        time.sleep(interval)


_handed_out_ports = set()


def free_port():
    """A host port nothing listens on, for the stack to publish.

    Picked below the kernel's ephemeral range: a port found by binding port 0 comes from that
    range, where outgoing connections also take their local ports, so one of them can take it
    before docker publishes it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo = hi = 0
    start = max(lo // 2, 1024)
    if lo - start >= 1000:
        candidates = list(range(start, lo))
        random.SystemRandom().shuffle(candidates)
        for port in candidates:
            if port in _handed_out_ports:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("0.0.0.0", port))
                except OSError:
                    continue
            _handed_out_ports.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_command():
    override = os.environ.get("FILEGRID_COMPOSE")
    if override:
        return override.split()
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("neither `docker compose` (v2) nor docker-compose is installed")


# ---------------------------------------------------------------------------------------------
# Prometheus text format and PromQL
# ---------------------------------------------------------------------------------------------

SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text):
    """Returns {name: [(labels_text, value)]} from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE_RE.match(line)
        if not m or line.startswith("#"):
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.setdefault(m.group(1), []).append((m.group(2) or "", value))
    return out


def metric_value(metrics, name):
    samples = metrics.get(name)
    if not samples:
        raise AssertionError(f"metric {name} is not exported")
    return sum(v for _, v in samples)


PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                   "or", "unless", "offset", "inf", "nan"}


def promql_metric_names(expr):
    """Metric names a PromQL expression reads (functions, labels and keywords removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    e = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("("):
            continue
        if m.group(0).lower() in PROMQL_KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def _check_promql_metric_names():
    expr = ('histogram_quantile(0.99, sum by (le, server_id) '
            '(rate(filegrid_health_check_seconds_bucket{job="x"}[$__rate_interval]))) '
            '/ on(instance) group_left max(filegrid_epoch) > bool 1e3')
    got = promql_metric_names(expr)
    assert got == {"filegrid_health_check_seconds_bucket", "filegrid_epoch"}, got


# ---------------------------------------------------------------------------------------------
# The grid under test
# ---------------------------------------------------------------------------------------------


class Grid:
    def __init__(self, project):
        self.project = project
        self.compose = compose_command()
        self.env = dict(os.environ)
        self.env.update({
            "FILEGRID_IMAGE_TAG": IMAGE_TAG,
            "FILEGRID_HEAD1_PORT": str(free_port()),
            "FILEGRID_HEAD2_PORT": str(free_port()),
            "FILEGRID_S3_PORT": str(free_port()),
            "FILEGRID_S3_PORT2": str(free_port()),
            "FILEGRID_PROMETHEUS_PORT": str(free_port()),
            "FILEGRID_GRAFANA_PORT": str(free_port()),
        })
        # Never inherit a caller's FILEGRID_INSECURE: the suite tests the stack as shipped.
        self.env.pop("FILEGRID_INSECURE", None)
        self.files = {}  # remote path -> (size, sha256)
        self.network = None
        self.tls = True  # the stack as shipped; the insecure case turns it off
        self.workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"fg-e2e-{project}"
        self._token = None
        self._cluster_secret = None
        self._ssl = None

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    # -- compose and docker ------------------------------------------------------------------

    def dc(self, *args, check=True, timeout=600):
        cmd = [*self.compose, "-f", str(COMPOSE_FILE), "-p", self.project, *args]
        return run(cmd, check=check, timeout=timeout, env=self.env)

    def containers(self, service, include_stopped=False):
        cmd = ["docker", "ps", "-q", "--no-trunc",
               "--filter", f"label=com.docker.compose.project={self.project}",
               "--filter", f"label=com.docker.compose.service={service}"]
        if include_stopped:
            cmd.append("-a")
        return sorted(run(cmd).stdout.decode().split())

    def container(self, service):
        ids = self.containers(service)
        if not ids:
            raise AssertionError(f"no running container of {service}")
        return ids[0]

    def restarts(self, cid):
        out = run(["docker", "inspect", "-f", "{{.RestartCount}}", cid], check=False).stdout
        return int(out.decode().strip() or 0)

    def crash_loops(self, services=None):
        """Raises GiveUp when a container of these services keeps restarting."""
        crashing = [f"{s}/{c[:12]} restarted {self.restarts(c)} times" for s in services or ALWAYS_UP
                    for c in self.containers(s, include_stopped=True) if self.restarts(c) >= 3]
        if crashing:
            raise GiveUp("crash loop: " + "; ".join(crashing))

    def healthy_count(self, service):
        self.crash_loops([service])
        return len([c for c in self.containers(service) if self.healthy(c)])

    def state(self, cid):
        fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"
        out = run(["docker", "inspect", "-f", fmt, cid], check=False).stdout.decode().split()
        return tuple(out) if len(out) == 2 else ("gone", "none")

    def healthy(self, cid):
        status, health = self.state(cid)
        return status == "running" and health in ("healthy", "none")

    def down_keeping_volumes(self):
        """`down` (the named volumes stay). Containers' anonymous volumes (cluster servers'
        chunks) do not come back after `down`: they are removed with their containers, so the
        run leaves nothing behind."""
        anonymous = []
        for s in ALWAYS_UP:
            for c in self.containers(s, include_stopped=True):
                out = run(["docker", "inspect", "-f",
                           "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}", c])
                anonymous += [v for v in out.stdout.decode().split()
                              if re.fullmatch(r"[0-9a-f]{64}", v)]
        self.dc("down", "--timeout", "5")
        for v in anonymous:
            run(["docker", "volume", "rm", v], check=False)

    def all_healthy(self):
        """True once every service has healthy containers; else (False, what is not)."""
        self.crash_loops()
        bad = [f"{s}/{c[:12]}: {' '.join(self.state(c))}" for s in ALWAYS_UP
               for c in self.containers(s, include_stopped=True) if not self.healthy(c)]
        bad += [f"{s}: no container" for s in ALWAYS_UP if not self.containers(s)]
        return not bad or (False, bad)

    def exec(self, cid, *cmd, check=True, timeout=120, input_bytes=None):
        flags = ["-i"] if input_bytes is not None else []
        return run(["docker", "exec", *flags, cid, *cmd], check=check, timeout=timeout,
                   input_bytes=input_bytes)

    # -- secrets -------------------------------------------------------------------------------

    def secret(self, name):
        """A file of the stack's secrets volume, read through the test client."""
        return self.exec(self.client(), "cat", f"{SECRETS_DIR}/{name}").stdout.decode().strip()

    def token(self):
        """The admin credential `<access_key>:<secret>` the `secrets` service made."""
        if self._token is None:
            self._token = self.secret("admin-token")
            assert re.fullmatch(r"[A-Za-z0-9._-]{3,128}:\S{16,}", self._token), \
                "admin-token is not <access_key>:<secret>"
        return self._token

    def auth_headers(self):
        return {"Authorization": f"Bearer {self.token()}"}

    def ca_file(self):
        """The stack's CA certificate, copied to the host (for urllib, aws-cli and the CLI)."""
        path = self.workdir / "ca.pem"
        if not path.exists():
            pem = self.secret("tls/ca.pem")
            assert pem.startswith("-----BEGIN CERTIFICATE-----"), "tls/ca.pem is not a PEM certificate"
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(pem + "\n")
        return path

    def ssl_context(self):
        """Trusts the stack's CA only, and checks host names (127.0.0.1 is in the heads' certificates)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_file()))
        return self._ssl

    def host_url(self, port, path):
        return f"{self.scheme}://127.0.0.1:{port}{path}"

    def urlopen(self, req, timeout):
        """urllib from the host: https with the stack's CA when TLS is on."""
        return urllib.request.urlopen(req, timeout=timeout,
                                      context=self.ssl_context() if self.tls else None)

    def peer_auth(self, signer, method, path, epoch=None, content_length=None):
        """An x-filegrid-peer-auth value signed with the cluster secret as `signer`
        (docs/security.md, "Peer authentication")."""
        if self._cluster_secret is None:
            self._cluster_secret = self.secret("cluster-secret").encode()
        key = hmac.new(self._cluster_secret, b"filegrid peer key v1\0" + signer.encode(),
                       hashlib.sha256).digest()
        now_ms = int(time.time() * 1000)
        nonce = os.urandom(12).hex()
        opt = lambda v: "-" if v is None else str(v)  # noqa: E731
        text = "\n".join(["FG1", method, path, signer, str(now_ms), nonce, opt(epoch), "-", "-",
                          opt(content_length), "-"])
        sig = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        return f"FG1 {signer} {now_ms} {nonce} {sig}"

    # -- HTTP from inside the grid network ----------------------------------------------------

    def http(self, cid, host, port, path, method="GET", headers=None, body=None, anonymous=False,
             tls=None):
        """One HTTP/1.0 request made from container cid; (status, body).

        Over TLS (the stack's setting unless `tls` says otherwise) it goes through `openssl
        s_client`, which must verify the certificate against the stack's CA and, unless the
        host is loopback (cluster servers' certificates name their address, not 127.0.0.1),
        the host name or IP address; plain, through bash's /dev/tcp. It carries the admin
        credential unless `anonymous`."""
        tls = self.tls if tls is None else tls
        scheme = "https" if tls else "http"
        headers = dict(headers or {})
        if not anonymous:
            headers.update(self.auth_headers())
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            extra += f"Content-Length: {len(body)}\r\n"
        request = ('printf "%s %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n%s\\r\\n" '
                   '"$3" "$4" "$1" "$5"; [ "$6" = body ] && cat')
        if tls:
            verify = ""
            if host not in ("127.0.0.1", "localhost"):
                kind = "ip" if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", host) else "hostname"
                verify = f'-verify_{kind} "$1"'
            script = (f'{{ {request}; }} | openssl s_client -quiet -connect "$1:$2" '
                      f'-CAfile {CA_FILE} -verify_return_error {verify} 2>/dev/null')
        else:
            script = f'exec 3<>"/dev/tcp/$1/$2" || exit 7; {{ {request}; }} >&3; cat <&3'
        proc = self.exec(cid, "timeout", "10", "bash", "-c", script, "http", host, str(port),
                         method, path, extra, "body" if body is not None else "none",
                         check=False, timeout=30, input_bytes=body)
        if proc.returncode != 0 and not proc.stdout:
            raise AssertionError(f"{method} {scheme}://{host}:{port}{path} from {cid[:12]}: no answer "
                                 f"(exit {proc.returncode})")
        head, _, body = proc.stdout.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace").split()
        if len(status_line) < 2:
            raise AssertionError(f"{method} {scheme}://{host}:{port}{path}: malformed reply {head[:80]!r}")
        return int(status_line[1]), body

    def local_metrics(self, cid, port):
        status, body = self.http(cid, "127.0.0.1", port, "/metrics")
        assert status == 200, f"/metrics on {cid[:12]}:{port} answered {status}"
        return parse_metrics(body.decode(errors="replace"))

    def head_json(self, service, path):
        """GET path on a head's API, from the head's own container."""
        status, body = self.http(self.container(service), "127.0.0.1", API_PORT, path)
        return status, (json.loads(body) if body.strip() else None)

    def leader_seen_by(self, service):
        status, doc = self.head_json(service, "/v1/leader")
        return doc if status == 200 else None

    def leader(self, services=None):
        """The leader record every reachable head agrees on, else None."""
        views = []
        for s in services or HEADS:
            if not self.containers(s):
                continue
            try:
                views.append(self.leader_seen_by(s))
            except AssertionError:
                continue
        views = [v for v in views if v]
        if views and all(v["server_id"] == views[0]["server_id"] and v["epoch"] == views[0]["epoch"]
                         for v in views):
            return views[0]
        return None

    def leader_service(self, leader):
        for service, sid in HEAD_IDS.items():
            if leader["server_id"] == sid:
                return service
        raise AssertionError(f"leader {leader['server_id']} is not a head of this stack")

    def is_leader_flags(self, services=None):
        flags = {}
        for s in services or HEADS:
            cid = self.container(s)
            flags[s] = metric_value(self.local_metrics(cid, NODE_METRICS_PORT), "filegrid_is_leader")
        return flags

    # -- the CLI in the test client ----------------------------------------------------------

    def client(self):
        return self.container("test-client")

    def head_url(self):
        leader = self.leader()
        if leader:
            return f"{self.scheme}://{leader['host']}:{leader['api_port']}"
        for s in HEADS:
            if self.containers(s):
                return f"{self.scheme}://{s}:{API_PORT}"
        raise AssertionError("no head is running")

    def running_heads(self):
        heads = [f"{self.scheme}://{s}:{API_PORT}" for s in HEADS if self.containers(s)]
        assert heads, "no head is running"
        return heads

    def cli(self, *args, check=True, cid=None, head=None, timeout=300):
        """The CLI with the admin credential and the CA (the test client also has them in its
        environment; other containers get them here)."""
        cid = cid or self.client()
        head = head or self.head_url()
        return self.exec(cid, "env", f"FILEGRID_TOKEN={self.token()}", f"FILEGRID_CA_CERT={CA_FILE}",
                         "filegrid", "--head", head, *args, check=check, timeout=timeout)

    def sha256_in(self, cid, path):
        out = self.exec(cid, "sha256sum", path).stdout.decode().split()
        return out[0]

    def read_back_all(self, what):
        """Reads every written file back through the CLI and compares its hash."""
        assert self.files, "no file was written (write_files failed), so there is nothing to verify"
        cid = self.client()
        heads = self.running_heads()
        bad = []
        for i, (remote, (size, digest)) in enumerate(sorted(self.files.items())):
            local = f"{CLIENT_DIR}/readback"
            self.exec(cid, "rm", "-f", local)
            # Alternate between the heads: a standby must redirect to the leader.
            proc = self.cli("get", remote, local, check=False, head=heads[i % len(heads)])
            if proc.returncode != 0:
                bad.append(f"{remote}: get failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
                continue
            got = self.sha256_in(cid, local)
            if got != digest:
                bad.append(f"{remote}: sha256 {got} != written {digest}")
        assert not bad, f"{what}: " + "; ".join(bad)
        log(f"  {len(self.files)} files read back identical ({what})")


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

CASES = []


def case(*services):
    """Registers a case; `services` are the ones whose logs help when it fails."""
    def register(fn):
        CASES.append((fn.__name__, fn, services))
        return fn
    return register


@case(*ALWAYS_UP)
def stack_healthy(g):
    """`compose up -d` from nothing brings every service to healthy."""
    up = g.dc("up", "-d", check=False)
    problems = []
    if up.returncode != 0:
        err = [line for line in up.stderr.decode(errors="replace").splitlines()
               if "error" in line.lower()] or up.stderr.decode(errors="replace").splitlines()[-3:]
        problems.append("compose up failed: " + " / ".join(err)[-400:])
        # Start what compose skipped because a dependency was unhealthy, so the other cases can
        # still exercise what works.
        for s in ALWAYS_UP:
            if not g.containers(s):
                g.dc("up", "-d", "--no-deps", s, check=False)
    nets = run(["docker", "network", "ls", "-q", "--filter",
                f"label=com.docker.compose.project={g.project}"]).stdout.decode().split()
    if nets:
        g.network = run(["docker", "network", "inspect", "-f", "{{.Name}}", nets[0]]).stdout.decode().strip()

    def all_healthy():
        bad = []
        g.crash_loops()  # a crash loop does not heal by waiting longer
        for s in ALWAYS_UP:
            ids = g.containers(s, include_stopped=True)
            if not ids:
                bad.append(f"{s}: no container")
            bad += [f"{s}/{c[:12]}: {' '.join(g.state(c))}" for c in ids if not g.healthy(c)]
        return True if not bad else (False, bad)

    try:
        wait_for("every service healthy", all_healthy, STACK_DEADLINE, 2)
    except AssertionError as e:
        problems.append(str(e))
    replicas = len(g.containers("cluster-server", include_stopped=True))
    if replicas != 3:
        problems.append(f"cluster-server has {replicas} containers, expected 3")
    assert not problems, "; ".join(problems)


@case(*HEADS, "zk-head-monitor")
def single_leader(g):
    """Exactly one head leads; every head and the CLI name the same leader."""
    leader = wait_for("both heads agree on a leader", g.leader, ELECTION_DEADLINE)
    flags = wait_for("one is_leader flag", lambda: (lambda f: f if sum(f.values()) == 1 else None)(
        g.is_leader_flags()), ELECTION_DEADLINE)
    assert flags[g.leader_service(leader)] == 1, f"is_leader flags {flags} disagree with {leader}"
    status, heads = g.head_json(HEADS[1], "/v1/heads")
    assert status == 200, f"/v1/heads answered {status}"
    ids = sorted(h.get("id") or h.get("server_id") for h in heads)
    assert ids == sorted(HEAD_IDS.values()), f"/v1/heads lists {ids}"
    for s in HEADS:
        cli = json.loads(g.cli("leader", "--json", head=f"{g.scheme}://{s}:{API_PORT}").stdout)
        assert cli["server_id"] == leader["server_id"], f"CLI via {s} names {cli}"
    log(f"  leader {leader['server_id']} epoch {leader['epoch']}")


@case("secrets", *HEADS, "test-client")
def secured_by_default(g):
    """Heads refuse anonymous and wrong credentials (401); the generated admin one works.

    Inside the grid and on the host ports; /health needs no credential."""
    ports = {"head-server-1": g.env["FILEGRID_HEAD1_PORT"], "head-server-2": g.env["FILEGRID_HEAD2_PORT"]}
    access_key = g.token().split(":", 1)[0]
    bad = []
    for s in HEADS:
        cid = g.container(s)
        status, body = g.http(cid, "127.0.0.1", API_PORT, "/v1/leader", anonymous=True)
        if status != 401:
            bad.append(f"{s}: anonymous /v1/leader answered {status}")
        else:
            doc = json.loads(body)
            if doc.get("code") != "unauthorized":
                bad.append(f"{s}: anonymous 401 body {doc}")
        status, _ = g.http(cid, "127.0.0.1", API_PORT, "/v1/files/any", "PUT",
                           {"Authorization": f"Bearer {access_key}:wrong-secret-0123456789"},
                           b"x", anonymous=True)
        if status != 401:
            bad.append(f"{s}: PUT with a wrong secret answered {status}")
        status, _ = g.http(cid, "127.0.0.1", API_PORT, "/health", anonymous=True)
        if status != 200:
            bad.append(f"{s}: anonymous /health answered {status}")
        status, _ = g.http(cid, "127.0.0.1", API_PORT, "/v1/leader")
        if status != 200:
            bad.append(f"{s}: /v1/leader with the admin credential answered {status}")
        # From the host, through the published port.
        try:
            with g.urlopen(g.host_url(ports[s], "/v1/files"), timeout=10) as r:
                bad.append(f"{s}: anonymous GET /v1/files on host port {ports[s]} answered {r.status}")
        except urllib.error.HTTPError as e:
            if e.code != 401:
                bad.append(f"{s}: anonymous GET /v1/files on host port {ports[s]} answered {e.code}")
    # The secrets are the secrets service's, readable by the grid's user only; so are the TLS
    # keys, except the CA key, which only the secrets service (root) reads. Certificates are public.
    want = {f"{SECRETS_DIR}/{f}": ("400", "10001") for f in SECRET_FILES}
    want.update({f"{TLS_DIR}/{f}": ("444" if f.endswith(".pem") else "400", "10001") for f in TLS_FILES})
    want[f"{TLS_DIR}/ca.key"] = ("400", "0")
    modes = g.exec(g.client(), "stat", "-c", "%a %u %n", *want)
    for line in modes.stdout.decode().splitlines():
        mode, uid, name = line.split(" ", 2)
        if (mode, uid) != want[name]:
            bad.append(f"{name}: mode {mode}, owner {uid} (want {', '.join(want[name])})")
    assert not bad, "; ".join(bad)


@case("head-server-1", "head-server-2", "cluster-server", "zk-head-monitor")
def ops_endpoints(g):
    """Every process serves /health, /ready and /metrics on its API and metrics ports."""
    targets = [(s, p) for s in HEADS for p in (API_PORT, NODE_METRICS_PORT)]
    targets += [("cluster-server", p) for p in (CLUSTER_PORT, NODE_METRICS_PORT)]
    targets += [("zk-head-monitor", MONITOR_PORT)]
    bad = []
    for service, port in targets:
        ids = g.containers(service)
        if not ids:
            bad.append(f"{service}: not running")
        for cid in ids:
            for path in ("/health", "/ready", "/metrics"):
                try:
                    status, body = g.http(cid, "127.0.0.1", port, path)
                except AssertionError as e:
                    bad.append(f"{service}/{cid[:12]}:{port}{path}: {e}")
                    continue
                if status != 200:
                    bad.append(f"{service}/{cid[:12]}:{port}{path} -> {status}")
                elif path == "/metrics" and b"process_resident_memory_bytes" not in body:
                    bad.append(f"{service}/{cid[:12]}:{port}/metrics lacks process metrics")
    assert not bad, "; ".join(bad)


def host_cli():
    """The filegrid CLI built on this machine (docker/build-images.sh builds it for the images)."""
    override = os.environ.get("FILEGRID_E2E_CLI")
    if override:
        return override
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for build in ("release", "debug"):
        if (target / build / "filegrid").is_file():
            return str(target / build / "filegrid")
    raise AssertionError(f"no filegrid CLI in {target}/release or debug (set FILEGRID_E2E_CLI)")


def plain_on_tls_refused(status, body, where):
    """A plain HTTP request to a TLS port must get the node's 400 that says so."""
    if status != 400 or PLAIN_ON_TLS not in body:
        return f"{where}: plain http answered {status} {body[:120]!r} (want 400 '{PLAIN_ON_TLS.decode()}')"
    return None


@case(*HEADS, "cluster-server", "zk-head-monitor", "test-client")
def tls_on_every_listener(g):
    """Every FileGrid listener speaks TLS only, with a certificate of the stack's CA for its name.

    Plain http to each API, S3 and metrics port (inside the grid and on the published ports)
    is answered 400 "this port speaks TLS"; the CLI on the host works with the CA and fails
    without it; each cluster server's certificate names the address it advertises; and a
    certificate the cluster issuer signs for a head's name is refused (name constraints)."""
    assert g.tls, "the stack runs without TLS"
    bad = []
    targets = [(s, p) for s in HEADS for p in (API_PORT, NODE_METRICS_PORT, 9000)]
    targets += [("cluster-server", p) for p in (CLUSTER_PORT, NODE_METRICS_PORT)]
    targets += [("zk-head-monitor", MONITOR_PORT)]
    for service, port in targets:
        for cid in g.containers(service):
            try:
                status, body = g.http(cid, "127.0.0.1", port, "/health", anonymous=True, tls=False)
            except AssertionError as e:
                bad.append(f"{service}/{cid[:12]}:{port}: {e}")
                continue
            bad.append(plain_on_tls_refused(status, body, f"{service}/{cid[:12]}:{port}"))
    host_ports = [g.env[k] for k in ("FILEGRID_HEAD1_PORT", "FILEGRID_HEAD2_PORT",
                                     "FILEGRID_S3_PORT", "FILEGRID_S3_PORT2")]
    for port in host_ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        bad.append(plain_on_tls_refused(status, body, f"host port {port}"))
        # Without the stack's CA the certificate is not trusted.
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", timeout=10,
                                        context=ssl.create_default_context()):
                bad.append(f"host port {port}: https without the stack's CA was trusted")
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ssl.SSLCertVerificationError):
                bad.append(f"host port {port}: https without the CA failed with {e.reason!r}")
        # With it the handshake and the name check succeed; the API answers /health, the S3
        # listener any S3 answer (it takes /health for a bucket).
        try:
            with g.urlopen(f"https://127.0.0.1:{port}/health", timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        if status != 200 and port in host_ports[:2]:
            bad.append(f"host port {port}: https /health answered {status}")
    # The CLI on the host, with and without the CA.
    cli = host_cli()
    env = dict(os.environ, FILEGRID_TOKEN=g.token())
    env.pop("FILEGRID_CA_CERT", None)
    for port in host_ports[:2]:
        head = f"https://127.0.0.1:{port}"
        proc = run([cli, "--head", head, "--ca-cert", str(g.ca_file()), "leader", "--json"],
                   check=False, env=env, timeout=30)
        if proc.returncode != 0 or json.loads(proc.stdout or b"{}").get("tls") is not True:
            bad.append(f"host CLI with the CA via {head}: exit {proc.returncode} "
                       f"{(proc.stdout + proc.stderr)[-200:]!r}")
        proc = run([cli, "--head", head, "ls"], check=False, env=env, timeout=30)
        if proc.returncode == 0 or b"certificate" not in proc.stderr.lower():
            bad.append(f"host CLI without the CA via {head}: exit {proc.returncode} {proc.stderr[-200:]!r}")
    # Cluster servers, at the address they advertise, from the test client.
    leader = wait_for("a leader", g.leader, ELECTION_DEADLINE)
    if leader.get("tls") is not True:
        bad.append(f"the leader record says tls {leader.get('tls')!r}")
    status, body = g.http(g.container(g.leader_service(leader)), "127.0.0.1", API_PORT, "/v1/cluster")
    assert status == 200, f"/v1/cluster answered {status}"
    servers = [s for s in json.loads(body) if s.get("state") == "live"]
    assert servers, "no live cluster server"
    for server in servers:
        try:
            status, _ = g.http(g.client(), server["host"], server["port"], "/health", anonymous=True)
            if status != 200:
                bad.append(f"{server['id']} at {server['host']}: /health answered {status}")
        except AssertionError as e:
            bad.append(f"{server['id']}: its certificate does not verify for {server['host']}: {e}")
    bad.append(issuer_name_constraints(g))
    bad = [b for b in bad if b]
    assert not bad, "; ".join(bad)
    log(f"  TLS only on {len(targets)} listener kinds and {len(host_ports)} host ports; "
        f"{len(servers)} cluster certificates name their address")


def issuer_name_constraints(g):
    """A cluster container serves certificates it signs with the cluster issuer: one for its own
    address must be accepted by the CLI, one that also names head-server-1 must be refused."""
    cid = g.container("cluster-server")
    ip = g.exec(cid, "bash", "-c", "getent hosts \"$(hostname)\" | awk '{print $1; exit}'").stdout.decode().strip()
    assert ip, f"no address for {cid[:12]}"
    issue = ('set -e; d=$(mktemp -d); cd "$d"; '
             'openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k -out csr -subj /CN=e2e 2>/dev/null; '
             'printf "subjectAltName=%s\\n" "$1" > ext; '
             f'openssl x509 -req -in csr -CA {TLS_DIR}/cluster-issuer.pem -CAkey {TLS_DIR}/cluster-issuer.key '
             '-set_serial 7 -days 1 -extfile ext -out leaf 2>/dev/null; '
             # One connection, then it exits; a deadline in case none comes.
             f'exec timeout 60 openssl s_server -quiet -naccept 1 -www -accept "$2" -cert leaf -key k '
             f'-cert_chain {TLS_DIR}/cluster-issuer.pem')
    outcome = {}
    for label, san, port in (("own address", f"IP:{ip}", 9443),
                             ("head-server-1", f"IP:{ip},DNS:head-server-1", 9444)):
        run(["docker", "exec", "-d", cid, "bash", "-c", issue, "issue", san, str(port)])

        def attempt():
            proc = g.exec(g.client(), "filegrid", "--head", f"https://{ip}:{port}", "--timeout", "5s",
                          "leader", check=False, timeout=30)
            err = proc.stderr.decode(errors="replace")
            # Not listening yet: try again; any other answer is the outcome.
            return (False, err) if "refused" in err.lower() else err

        outcome[label] = wait_for(f"the test server on {ip}:{port}", attempt, 30, 0.5)
    if "NameConstraint" in outcome["own address"] or "certificate" in outcome["own address"]:
        return f"a certificate of the cluster issuer for {ip} was refused: {outcome['own address'][-200:]}"
    if "NameConstraint" not in outcome["head-server-1"]:
        return ("a certificate of the cluster issuer naming head-server-1 was not refused for its "
                f"name constraints: {outcome['head-server-1'][-200:]}")
    return None


@case("test-client", *HEADS, "cluster-server")
def write_files(g):
    """Files of several sizes go in through the test client via both heads; ls and stat agree."""
    cid = g.client()
    g.exec(cid, "mkdir", "-p", CLIENT_DIR)
    run_id = g.project[-6:]
    heads = g.running_heads()
    for i, size in enumerate(FILE_SIZES):
        local = f"{CLIENT_DIR}/src-{size}"
        g.exec(cid, "bash", "-c", f"head -c {size} /dev/urandom > {local}")
        digest = g.sha256_in(cid, local)
        remote = f"e2e-{run_id}/size-{size}.bin"
        t0 = time.monotonic()
        g.cli("put", local, remote, head=heads[i % len(heads)])  # leader and standby alike
        log(f"  put {remote} ({size} bytes) via {heads[i % len(heads)]} in "
            f"{time.monotonic() - t0:.2f}s")
        g.files[remote] = (size, digest)
    listing = g.cli("ls").stdout.decode()
    missing = [r for r in g.files if r.rsplit("/", 1)[-1] not in listing]
    assert not missing, f"`ls` does not list {missing}: {listing[:400]}"
    for remote, (size, _) in g.files.items():
        doc = json.loads(g.cli("stat", remote, "--json").stdout)
        sizes = {doc.get(k) for k in ("size", "size_bytes", "length") if k in doc}
        assert size in sizes, f"stat {remote} reports {doc} for a {size}-byte file"
    g.read_back_all("just written")


@case(*HEADS, "cluster-server")
def host_ports_of_both_heads_serve_files(g):
    """From the host, both published head ports take uploads and serve downloads: the standby
    forwards to the leader (standby_proxy), whose compose address the host cannot resolve."""
    leader = wait_for("both heads agree on a leader", g.leader, ELECTION_DEADLINE)
    ports = {"head-server-1": g.env["FILEGRID_HEAD1_PORT"], "head-server-2": g.env["FILEGRID_HEAD2_PORT"]}
    standby = [s for s in HEADS if s != g.leader_service(leader)][0]
    body = os.urandom(3 * 1024 * 1024 + 17)
    remote = f"e2e-{g.project[-6:]}/via-host-{standby}.bin"

    def call(service, method, data=None):
        req = urllib.request.Request(g.host_url(ports[service], f"/v1/files/{remote}"),
                                     data=data, method=method, headers=g.auth_headers())
        with g.urlopen(req, timeout=60) as r:
            return r.status, r.read()

    status, _ = call(standby, "PUT", body)
    assert status == 201, f"PUT via the standby's host port answered {status}"
    for service in HEADS:
        status, got = call(service, "GET")
        assert status == 200 and got == body, f"GET via {service}: {status}, {len(got)} bytes"
    status, _ = call(standby, "DELETE")
    assert status == 200, f"DELETE via the standby answered {status}"
    log(f"  put, get and delete through {standby} (standby) at host port {ports[standby]}")


@case(*HEADS, "cluster-server")
def s3_through_both_heads(g):
    """aws-cli against the published S3 ports of both heads, with the admin credential as the
    key pair: a multipart upload through the standby, read back through the leader, listed,
    and the same file read through the native API."""
    aws = shutil.which("aws")
    assert aws, "aws-cli is not installed (scripts/lib.sh ensure_s3_clients)"
    leader = wait_for("both heads agree on a leader", g.leader, ELECTION_DEADLINE)
    ports = {"head-server-1": g.env["FILEGRID_S3_PORT"], "head-server-2": g.env["FILEGRID_S3_PORT2"]}
    standby = [s for s in HEADS if s != g.leader_service(leader)][0]
    key, secret = g.token().split(":", 1)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"fg-s3-{g.project}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "config").write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}
    env.update({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_CONFIG_FILE": str(work / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(work / "none")})
    bucket = "e2e-s3-" + re.sub(r"[^a-z0-9]", "", g.project.lower())[-12:]
    body = os.urandom(12 * 1024 * 1024 + 5)  # over aws-cli's 8 MiB multipart threshold
    (work / "up.bin").write_bytes(body)

    def s3(service, *args):
        # The S3 listener speaks TLS like the API: trust the stack's CA (and check the name).
        return run([aws, "--endpoint-url", g.host_url(ports[service], ""),
                    "--ca-bundle", str(g.ca_file()), *args], env=env)

    try:
        s3(standby, "s3", "mb", f"s3://{bucket}")
        s3(standby, "s3", "cp", str(work / "up.bin"), f"s3://{bucket}/dir/up.bin")
        s3(g.leader_service(leader), "s3", "cp", f"s3://{bucket}/dir/up.bin", str(work / "down.bin"))
        assert (work / "down.bin").read_bytes() == body, "the object read back differs"
        listing = s3(standby, "s3", "ls", f"s3://{bucket}/dir/").stdout.decode()
        assert f"{len(body)} up.bin" in listing, listing
        req = urllib.request.Request(
            g.host_url(g.env["FILEGRID_HEAD1_PORT"], f"/v1/files/{bucket}/dir/up.bin"),
            headers=g.auth_headers())
        with g.urlopen(req, timeout=60) as r:
            assert r.read() == body, "the native API reads other bytes"
        s3(standby, "s3", "rm", "--recursive", f"s3://{bucket}/")
        s3(standby, "s3", "rb", f"s3://{bucket}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"  S3 multipart upload through {standby} (standby), read through the leader and the native API")


@case(*HEADS, "zk-head-monitor")
def leader_stop_failover(g):
    """`compose stop` of the leader: the other head leads within the failover target."""
    before = wait_for("a leader", g.leader, ELECTION_DEADLINE)
    old = g.leader_service(before)
    other = next(s for s in HEADS if s != old)
    g.stopped_head = old
    t0 = time.monotonic()
    g.dc("stop", old)
    after = wait_for(f"{other} leads after {old} stopped",
                     lambda: (lambda l: l if l and l["server_id"] == HEAD_IDS[other] else None)(
                         g.leader_seen_by(other)), ELECTION_DEADLINE, 0.25)
    took = time.monotonic() - t0
    log(f"  {HEAD_IDS[other]} leads (epoch {after['epoch']}) {took:.1f}s after stopping {old}")
    assert after["epoch"] > before["epoch"], f"epoch did not grow: {before} -> {after}"
    assert took <= FAILOVER_TARGET, f"failover took {took:.1f}s, target {FAILOVER_TARGET:.0f}s"


@case("test-client", *HEADS, "cluster-server")
def files_intact_after_failover(g):
    """Every file reads back identical through the new leader."""
    g.read_back_all("after the leader stopped")


@case(*HEADS, "zk-head-monitor")
def restarted_head_stays_standby(g):
    """The stopped head starts again and stays standby: leadership is sticky."""
    old = getattr(g, "stopped_head", None)
    assert old, "leader_stop_failover did not stop a head"
    leader = wait_for("a leader", lambda: g.leader([s for s in HEADS if s != old]), ELECTION_DEADLINE)
    g.dc("start", old)
    wait_for(f"{old} healthy again", lambda: g.healthy(g.container(old)), STACK_DEADLINE)
    wait_for(f"{old} agrees on the leader", lambda: g.leader() == leader, ELECTION_DEADLINE)
    end = time.monotonic() + STANDBY_WINDOW
    while time.monotonic() < end:
        now = g.leader()
        assert now == leader, f"leadership moved from {leader} to {now} after {old} came back"
        flags = g.is_leader_flags()
        assert flags[old] == 0, f"{old} reports is_leader=1 after restarting"
        time.sleep(1)


@case("test-client", "cluster-server", *HEADS)
def cluster_server_kill_reads(g):
    """`docker kill` of a cluster server: every file still reads back."""
    ids = g.containers("cluster-server")
    assert len(ids) >= REPLICATION, f"need {REPLICATION} running cluster servers, have {len(ids)}"
    victim = random.choice(ids)
    g.killed_cluster = victim
    run(["docker", "kill", victim])
    log(f"  killed cluster server cluster_{victim[:12]}")
    g.read_back_all("with a cluster server killed")


@case("cluster-server", *HEADS)
def re_replication_after_scale_in(g):
    """A fourth server replaces the killed one; every chunk is back to three live replicas."""
    victim = getattr(g, "killed_cluster", None)
    assert victim, "cluster_server_kill_reads did not kill a server"
    dead_id = f"cluster_{victim[:12]}"
    run(["docker", "rm", "-f", "-v", victim])  # its disk is lost with it
    g.dc("up", "-d", "--no-recreate", "--scale", f"cluster-server={REPLICATION}", "cluster-server")
    wait_for(f"{REPLICATION} healthy cluster servers",
             lambda: g.healthy_count("cluster-server") == REPLICATION,
             STACK_DEADLINE)
    assert g.files, "no file was written (write_files failed), so there is nothing to re-replicate"
    live_ids = {f"cluster_{c[:12]}" for c in g.containers("cluster-server")}
    chunks = sum(json.loads(g.cli("stat", r, "--json").stdout)["chunks"] for r in g.files)
    assert chunks > 0, "the written files have no chunks"

    def from_leader(path):
        leader = g.leader()
        assert leader, "no agreed leader"
        status, body = g.http(g.container(g.leader_service(leader)), "127.0.0.1", API_PORT, path)
        assert status == 200, f"{path} answered {status}"
        return json.loads(body)

    def repaired():
        servers = {s["id"]: s for s in from_leader("/v1/cluster")}
        if servers.get(dead_id, {}).get("state") == "live":
            return False, f"{dead_id} is still counted live"
        # With three live servers and three replicas, every live server must hold every chunk;
        # the new server starts empty, so this only holds once chunks were really copied.
        lacking = {i: servers.get(i, {}).get("chunks") for i in live_ids
                   if servers.get(i, {}).get("state") != "live"
                   or (servers[i].get("chunks") or 0) < chunks}
        if lacking:
            return False, f"servers without all {chunks} chunks: {lacking}"
        report = from_leader("/v1/repair")
        return report.get("under_replicated") == 0 or (False, report)

    t0 = time.monotonic()
    wait_for(f"all {chunks} chunks on 3 live servers", repaired, REPAIR_DEADLINE, 2)
    log(f"  {chunks} chunks back to {REPLICATION} replicas {time.monotonic() - t0:.0f}s after "
        f"{dead_id} was replaced")
    g.read_back_all("after re-replication")


@case(*HEADS, "zk-head-monitor", "zookeeper")
def partition_new_leader(g):
    """Disconnecting the leader from the network elects the other head."""
    assert g.network, "the compose network was not found"
    before = wait_for("a leader", g.leader, ELECTION_DEADLINE)
    old = g.leader_service(before)
    other = next(s for s in HEADS if s != old)
    cid = g.container(old)
    g.partitioned = (old, cid, before)
    run(["docker", "network", "disconnect", g.network, cid])
    t0 = time.monotonic()
    after = wait_for(f"{other} leads while {old} is cut off",
                     lambda: (lambda l: l if l and l["server_id"] == HEAD_IDS[other]
                              and l["epoch"] > before["epoch"] else None)(g.leader_seen_by(other)),
                     ELECTION_DEADLINE, 0.5)
    log(f"  {HEAD_IDS[other]} leads (epoch {after['epoch']}) {time.monotonic() - t0:.1f}s "
        f"after {old} was disconnected")


@case("test-client", *HEADS, "cluster-server")
def partition_fencing(g):
    """The cut-off head stops acting as leader and cannot write; the new leader can."""
    part = getattr(g, "partitioned", None)
    assert part, "partition_new_leader did not cut a head off"
    old, cid, _ = part
    wait_for(f"{old} gives up leadership",
             lambda: metric_value(g.local_metrics(cid, NODE_METRICS_PORT), "filegrid_is_leader") == 0,
             ELECTION_DEADLINE)
    run_id = g.project[-6:]
    g.exec(cid, "bash", "-c", "head -c 4096 /dev/urandom > /tmp/fenced.bin")
    fenced_remote = f"e2e-{run_id}/fenced.bin"
    proc = g.cli("put", "/tmp/fenced.bin", fenced_remote, check=False, cid=cid,
                 head=f"{g.scheme}://127.0.0.1:{API_PORT}", timeout=60)
    assert proc.returncode != 0, f"the cut-off head {old} accepted a write"
    assert b"certificate" not in proc.stderr, \
        f"the write failed for a TLS reason, not fencing: {proc.stderr[-300:]!r}"
    g.fenced_remote = fenced_remote
    # Positive control: the new leader takes writes.
    tc = g.client()
    local = f"{CLIENT_DIR}/during-partition"
    g.exec(tc, "bash", "-c", f"mkdir -p {CLIENT_DIR} && head -c 100000 /dev/urandom > {local}")
    remote = f"e2e-{run_id}/during-partition.bin"
    g.cli("put", local, remote)
    g.files[remote] = (100000, g.sha256_in(tc, local))
    # Epoch fencing on the data path: every live cluster server now refuses a chunk stamped
    # with the deposed leader's epoch, even signed with the cluster secret as that leader;
    # unsigned, it is refused before anything else.
    stale = part[2]["epoch"]
    leader = g.leader([s for s in HEADS if s != old])
    assert leader and leader["epoch"] > stale, f"no new leader epoch above {stale}: {leader}"
    status, body = g.http(g.container(g.leader_service(leader)), "127.0.0.1", API_PORT, "/v1/cluster")
    assert status == 200, f"/v1/cluster answered {status}"
    live = [s for s in json.loads(body) if s.get("state") == "live"]
    assert len(live) >= REPLICATION, f"only {len(live)} live cluster servers"
    body = b"written by a deposed leader"
    path = f"/v1/chunks/e2e-fenced-{run_id}"
    for server in live:
        status, reply = g.http(tc, server["host"], server["port"], path, "PUT",
                               {"x-filegrid-epoch": stale}, body, anonymous=True)
        assert status == 401 and b"bad_signature" in reply, (
            f"cluster server {server['id']} answered {status} to an unsigned chunk "
            f"(want 401 bad_signature): {reply[:200]!r}")
        signed = g.peer_auth(HEAD_IDS[old], "PUT", path, epoch=stale, content_length=len(body))
        status, reply = g.http(tc, server["host"], server["port"], path, "PUT",
                               {"x-filegrid-epoch": stale, "x-filegrid-peer-auth": signed}, body,
                               anonymous=True)
        assert (status, True) in ((409, b"stale_epoch" in reply), (403, b"not_leader_peer" in reply)), (
            f"cluster server {server['id']} answered {status} to a chunk signed by the deposed "
            f"leader with its epoch {stale} (want 409 stale_epoch or 403 not_leader_peer): "
            f"{reply[:200]!r}")


@case(*HEADS, "zk-head-monitor")
def partition_heal_single_leader(g):
    """After reconnecting there is still exactly one leader, and the fenced write never landed."""
    part = getattr(g, "partitioned", None)
    assert part, "partition_new_leader did not cut a head off"
    old, cid, _ = part
    run(["docker", "network", "connect", "--alias", old, g.network, cid])
    wait_for(f"{old} healthy again", lambda: g.healthy(cid), STACK_DEADLINE)
    leader = wait_for("both heads agree on one leader", g.leader, ELECTION_DEADLINE)
    flags = wait_for("exactly one is_leader flag",
                     lambda: (lambda f: f if sum(f.values()) == 1 else None)(g.is_leader_flags()),
                     ELECTION_DEADLINE)
    assert flags[g.leader_service(leader)] == 1, f"flags {flags} vs leader {leader}"
    fenced = getattr(g, "fenced_remote", None)
    if fenced:
        proc = g.cli("stat", fenced, "--json", check=False)
        assert proc.returncode != 0, f"the write through the cut-off head landed: {proc.stdout[:200]!r}"


@case("zookeeper", *HEADS, "zk-head-monitor")
def zookeeper_restart_recovers(g):
    """`compose restart zookeeper`: the grid comes back with one leader and connected heads."""
    before = g.leader()
    g.dc("restart", "zookeeper")
    wait_for("ZooKeeper healthy", lambda: g.healthy(g.container("zookeeper")), STACK_DEADLINE)
    wait_for("heads reconnected to ZooKeeper",
             lambda: all(metric_value(g.local_metrics(g.container(s), NODE_METRICS_PORT),
                                      "filegrid_zk_connected") == 1 for s in HEADS),
             ELECTION_DEADLINE)
    leader = wait_for("one agreed leader", g.leader, ELECTION_DEADLINE)
    wait_for("exactly one is_leader flag", lambda: sum(g.is_leader_flags().values()) == 1,
             ELECTION_DEADLINE)
    log(f"  leader after ZooKeeper restart: {leader['server_id']} epoch {leader['epoch']} "
        f"(before: {before and before['server_id']})")


@case("test-client", *HEADS, "cluster-server")
def files_intact_after_zookeeper_restart(g):
    """Every file reads back identical after ZooKeeper restarted."""
    wait_for("test client sees a leader", lambda: g.healthy(g.client()), STACK_DEADLINE)
    g.read_back_all("after ZooKeeper restarted")


@case("cluster-server", *HEADS)
def scale_cluster_servers(g):
    """`up -d --scale cluster-server=5`: five servers, each with its own id, all live."""
    g.dc("up", "-d", "--no-recreate", "--scale", "cluster-server=5", "cluster-server")
    wait_for("5 healthy cluster servers", lambda: g.healthy_count("cluster-server") == 5,
             STACK_DEADLINE, 2)
    ids = g.containers("cluster-server")
    expected = {f"cluster_{c[:12]}" for c in ids}

    def all_registered():
        leader = g.leader()
        if not leader:
            return False
        status, body = g.http(g.container(g.leader_service(leader)), "127.0.0.1", API_PORT,
                              "/v1/cluster")
        text = body.decode(errors="replace")
        missing = [i for i in expected if i not in text]
        if status != 200 or missing:
            return False, status, missing
        live = metric_value(g.local_metrics(g.container(g.leader_service(leader)), NODE_METRICS_PORT),
                            "filegrid_cluster_servers_live")
        return live == 5 or (False, f"filegrid_cluster_servers_live={live}")

    wait_for("the leader lists all 5 cluster servers as live", all_registered, ELECTION_DEADLINE, 2)


@case("prometheus", *HEADS, "cluster-server", "zk-head-monitor")
def prometheus_targets_up(g):
    """Prometheus (through its published port) scrapes every node, scaled ones included."""
    port = g.env["FILEGRID_PROMETHEUS_PORT"]

    def targets():
        g.crash_loops()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
            doc = json.load(r)
        active = doc["data"]["activeTargets"]
        by_job = {}
        for t in active:
            by_job.setdefault(t["labels"]["job"], []).append(t)
        want = {"filegrid-head": 2, "filegrid-cluster": len(g.containers("cluster-server")),
                "filegrid-monitor": 1, "prometheus": 1}
        counts = {job: len(by_job.get(job, [])) for job in want}
        down = [f"{t['labels']['job']}/{t['labels']['instance']}: {t['health']} {t['lastError']}"
                for t in active if t["health"] != "up"]
        # The FileGrid jobs scrape over TLS (verified: no job skips verification).
        schemes = {t["scrapeUrl"].split("://")[0] for t in active if t["labels"]["job"] != "prometheus"}
        if schemes != {g.scheme}:
            down.append(f"FileGrid targets scraped over {sorted(schemes)}, want {g.scheme}")
        return (counts == want and not down) or (False, counts, want, down[:5])

    wait_for("every Prometheus target up", targets, 60, 2)


@case(*HEADS, "cluster-server", "zk-head-monitor")
def dashboard_metrics_exported(g):
    """Every Grafana panel query is valid PromQL naming only metrics live nodes export."""
    run([sys.executable, str(DASHBOARD_GENERATOR), "--check"])
    exported = set()
    scrapes = [(s, NODE_METRICS_PORT) for s in HEADS] + [("zk-head-monitor", MONITOR_PORT)]
    scrapes += [("cluster-server", NODE_METRICS_PORT)]
    unscraped = []
    for service, port in scrapes:
        ids = g.containers(service)
        if not ids:
            unscraped.append(f"{service} (not running)")
        for cid in ids:
            try:
                exported |= set(g.local_metrics(cid, port))
            except AssertionError as e:
                unscraped.append(f"{service}/{cid[:12]} ({e})")
    missing = []
    invalid = []
    panels = 0
    prometheus = f"http://127.0.0.1:{g.env['FILEGRID_PROMETHEUS_PORT']}/api/v1/query"
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                panels += 1
                expr = target["expr"]
                for name in sorted(promql_metric_names(expr) - exported):
                    missing.append(f"{path.stem} / {panel['title']}: {name}")
                # Prometheus itself must accept the query (Grafana's interval variable filled in).
                query = urllib.parse.urlencode({"query": expr.replace("$__rate_interval", "1m")})
                try:
                    with urllib.request.urlopen(f"{prometheus}?{query}", timeout=10) as r:
                        ok = json.load(r).get("status") == "success"
                except urllib.error.HTTPError as e:
                    ok = False
                    expr += f" -> {e.read()[:200]!r}"
                if not ok:
                    invalid.append(f"{path.stem} / {panel['title']}: {expr}")
    assert panels > 0, "no dashboard panel found"
    problems = []
    if missing:
        names = sorted({m.rsplit(": ", 1)[1] for m in missing})
        problems.append(f"{len(names)} queried metrics not exported: {', '.join(names)} "
                        f"(panels: {'; '.join(missing)})")
    if unscraped:
        problems.append("could not scrape " + ", ".join(unscraped))
    if invalid:
        problems.append("Prometheus rejects " + "; ".join(invalid))
    assert not problems, " | ".join(problems)
    log(f"  {panels} panel queries checked against {len(exported)} exported metrics")


@case("test-client", *HEADS, "cluster-server")
def no_file_lost(g):
    """At the end every file written during the run is listed and reads back identical."""
    listing = g.cli("ls").stdout.decode()
    assert g.files, "no file was written, so none can be checked"
    missing = [r for r in g.files if r.rsplit("/", 1)[-1] not in listing]
    assert not missing, f"`ls` lost {missing}"
    g.read_back_all("at the end")


@case("secrets", *ALWAYS_UP)
def secrets_survive_down_and_up(g):
    """`down` then `up -d` keeps the secrets: none made again, the grid healthy and usable.

    The admin credential stays valid and ZooKeeper stays readable with the kept credential."""
    # Every secret and TLS file but the CA key, which the test client cannot read.
    kept = SECRET_FILES + [f"tls/{f}" for f in TLS_FILES]
    before = {f: hashlib.sha256(g.secret(f).encode()).hexdigest() for f in kept}
    token = g.token()
    g.down_keeping_volumes()
    up = g.dc("up", "-d", check=False)
    assert up.returncode == 0, f"up after down failed: {up.stderr.decode(errors='replace')[-400:]}"

    def secrets_done():
        cids = g.containers("secrets", include_stopped=True)
        return cids and g.state(cids[0])[0] == "exited" and cids[0]

    cid = wait_for("the secrets service done", secrets_done, STACK_DEADLINE)
    # `down` removed the first run's container: these are the logs of the second run only.
    runs = run(["docker", "logs", cid]).stdout.decode(errors="replace")
    assert "made " not in runs and "kept cluster-secret" in runs, \
        f"the secrets service did not keep every secret: {runs[-600:]}"

    wait_for("every service healthy after down and up", g.all_healthy, STACK_DEADLINE, 2)
    g._token = None
    after = {f: hashlib.sha256(g.secret(f).encode()).hexdigest() for f in kept}
    assert after == before, f"secrets changed across down/up: {sorted(k for k in after if after[k] != before[k])}"
    assert g.token() == token
    leader = wait_for("a leader after down and up", g.leader, ELECTION_DEADLINE)
    log(f"  same secrets; {leader['server_id']} leads at epoch {leader['epoch']} with the kept "
        f"ZooKeeper credential")


@case("secrets", *ALWAYS_UP)
def insecure_stack_plain_http(g):
    """`FILEGRID_INSECURE=true`: the same volumes run without credentials and without TLS.

    Every service becomes healthy; the heads answer plain http without a credential on the
    published ports and refuse a TLS handshake; Prometheus scrapes plain http; the test
    client's CLI works with an http:// head."""
    g.down_keeping_volumes()
    g.env["FILEGRID_INSECURE"] = "true"
    g.tls = False
    up = g.dc("up", "-d", check=False)
    assert up.returncode == 0, f"insecure up failed: {up.stderr.decode(errors='replace')[-400:]}"
    wait_for("every service healthy, insecure", g.all_healthy, STACK_DEADLINE, 2)
    leader = wait_for("a leader, insecure", g.leader, ELECTION_DEADLINE)
    assert leader.get("tls") is False, f"the leader record says tls {leader.get('tls')!r}"
    bad = []
    for key in ("FILEGRID_HEAD1_PORT", "FILEGRID_HEAD2_PORT"):
        port = g.env[key]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/leader", timeout=10) as r:
            if r.status != 200:
                bad.append(f"anonymous http /v1/leader on host port {port} answered {r.status}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", timeout=10,
                                        context=g.ssl_context()):
                bad.append(f"host port {port} completed a TLS handshake on an insecure stack")
        except (urllib.error.URLError, ssl.SSLError, ConnectionError):
            pass
    out = g.exec(g.client(), "filegrid", "--head", f"http://head-server-2:{API_PORT}", "leader",
                 "--json", check=False)
    if out.returncode != 0:
        bad.append(f"test client CLI over http failed: {out.stderr[-200:]!r}")
    assert not bad, "; ".join(bad)
    prometheus_targets_up(g)
    log(f"  insecure: {leader['server_id']} leads over plain http; Prometheus scrapes http")


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def ensure_images(build):
    if build:
        log("building images (docker/build-images.sh --skip-operator)")
        t0 = time.monotonic()
        if subprocess.run([str(BUILD_SCRIPT), "--skip-operator"]).returncode != 0:
            raise SystemExit("compose e2e: building the images failed (see above); no case ran")
        log(f"images ready in {time.monotonic() - t0:.0f}s")
    missing = [i for i in IMAGES if run(["docker", "image", "inspect", i], check=False).returncode]
    if missing:
        raise SystemExit(f"images missing: {', '.join(missing)} (run docker/build-images.sh)")


def print_logs(g, services):
    for service in services:
        log(f"---- logs of {service} (last 80 lines) ----")
        proc = g.dc("logs", "--no-color", "--tail", "80", service, check=False)
        sys.stdout.write(proc.stdout.decode(errors="replace"))
        sys.stdout.write(proc.stderr.decode(errors="replace"))


def unhealthy_services(g):
    bad = []
    for s in ALWAYS_UP:
        ids = g.containers(s, include_stopped=True)
        if not ids or not all(g.healthy(c) for c in ids):
            bad.append(s)
    return bad


def main():
    parser = argparse.ArgumentParser(description="FileGrid compose end-to-end suite")
    parser.add_argument("--no-build", action="store_true", help="use the images already built")
    parser.add_argument("--case", action="append", default=[], help="run only this case")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    if args.list:
        for name, fn, _ in CASES:
            print(f"{name:38} {fn.__doc__.splitlines()[0]}")
        return 0
    unknown = set(args.case) - {name for name, _, _ in CASES}
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))} (see --list)")
    _check_promql_metric_names()

    # A CI timeout sends SIGTERM: exit through the `finally` below so the stack is torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    ensure_images(not args.no_build)
    project = f"fge2e{os.getpid()}{random.randrange(1000, 9999)}"
    g = Grid(project)
    log(f"compose: {' '.join(g.compose)}; project {project}; "
        f"Prometheus on 127.0.0.1:{g.env['FILEGRID_PROMETHEUS_PORT']}")
    results = []
    log_services = []
    try:
        for name, fn, services in CASES:
            if args.case and name not in args.case and name != "stack_healthy":
                continue
            log(f"CASE {name}: {fn.__doc__.splitlines()[0]}")
            t0 = time.monotonic()
            try:
                fn(g)
                results.append((name, True, time.monotonic() - t0, ""))
                log(f"PASS {name} ({time.monotonic() - t0:.1f}s)")
            except Exception as e:  # every failure is reported, then the next case runs
                detail = str(e) or type(e).__name__
                if not isinstance(e, AssertionError):
                    detail = "".join(traceback.format_exception_only(type(e), e)).strip()
                results.append((name, False, time.monotonic() - t0, detail))
                log(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {detail}")
                log_services += [s for s in services if s not in log_services]
    finally:
        failed = [r for r in results if not r[1]]
        if failed:
            extra = [s for s in unhealthy_services(g) if s not in log_services]
            print_logs(g, log_services + extra)
        if args.keep:
            log(f"stack kept: {' '.join(g.compose)} -f {COMPOSE_FILE} -p {project} down -v")
        else:
            log("tearing down (down -v)")
            g.dc("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        shutil.rmtree(g.workdir, ignore_errors=True)

    print()
    print(f"{'case':38} {'result':6} {'time':>7}")
    for name, ok, took, detail in results:
        line = f"{name:38} {'PASS' if ok else 'FAIL':6} {took:6.1f}s"
        if detail:
            line += f"  {detail.splitlines()[0][:160]}"
        print(line)
    passed = sum(1 for r in results if r[1])
    print(f"\ncompose e2e took {time.monotonic() - started:.0f}s (compose: {' '.join(g.compose)})")
    print(f"e2e: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
