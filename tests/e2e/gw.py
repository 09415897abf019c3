"""Helpers for end-to-end tests: a test PKI, a real pzpgw daemon on
loopback with free ports, and HTTPS clients with organisation
certificates. Standard library only (Debian's python3)."""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

SRCDIR = os.environ.get(
    "PZPGW_SRCDIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY = os.environ.get("PZPGW",
                        os.path.join(SRCDIR, "build", "release", "pzpgw"))

# URAs of the development PKI (certs/dev-pki.sh).
URA = {
    "gateway": "90000001",
    "hospital": "90000002",
    "gp1": "90000003",
    "gp2": "90000004",
    "permid": "90000007",
}


def make_pki(directory, extras=True):
    """Run certs/dev-pki.sh into directory; returns its path."""
    cmd = ["sh", os.path.join(SRCDIR, "certs", "dev-pki.sh"), directory]
    if extras:
        cmd.append("--extras")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return directory


_GIVEN_PORTS = set()


def free_port():
    """A port free on 127.0.0.1 now and not given out before by this
    process: the kernel may offer the same free port to two calls in a
    row, and a gateway's [listen] and [admin] ports then clash (its start
    is refused: "[admin] port: N is also the [listen] port")."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port
    raise RuntimeError("no port left that was not given out before")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def client_context(pki, name="hospital"):
    """An SSL context presenting organisation `name`'s certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    if name is not None:
        ctx.load_cert_chain(os.path.join(pki, name + ".crt"),
                            os.path.join(pki, name + ".key"))
    return ctx


class Gateway:
    """One pzpgw daemon in its own temporary directory."""

    def __init__(self, pki, tmpdir=None, **overrides):
        self.pki = pki
        self.dir = tmpdir or tempfile.mkdtemp(prefix="pzpgw-e2e-")
        self.port = free_port()
        self.admin_port = free_port()
        self.conf = os.path.join(self.dir, "pzpgw.conf")
        self.log_path = os.path.join(self.dir, "pzpgw.log")
        self.proc = None
        self.sections = self.default_sections()
        for key, value in overrides.items():
            section, _, name = key.partition("__")
            self.sections.setdefault(section, {})[name] = value

    def default_sections(self):
        p = self.pki
        return {
            "organisation": {"ura": URA["gateway"], "name": "Test gateway"},
            "listen": {
                "address": "127.0.0.1",
                "port": str(self.port),
                "certificate": os.path.join(p, "gateway.crt"),
                "key": os.path.join(p, "gateway.key"),
                "trust": os.path.join(p, "uzi-server-ca.pem"),
                "environment": "test",
            },
            "admin": {"address": "127.0.0.1", "port": str(self.admin_port)},
            "store": {"path": os.path.join(self.dir, "pzpgw.db")},
            "limits": {"read_timeout": "5s", "write_timeout": "5s"},
            "process": {"log": "stderr",
                        "schemas": os.path.join(SRCDIR, "schemas")},
            "peer " + URA["hospital"]: {"name": "hospital",
                                        "allow": "push, validate"},
            "peer " + URA["gp1"]: {"name": "gp1", "allow": "pull"},
            "peer " + URA["gp2"]: {"name": "gp2", "allow": "pull, validate"},
        }

    def write_config(self, text=None):
        if text is None:
            lines = []
            for section, keys in self.sections.items():
                lines.append("[%s]" % section)
                lines.extend("%s = %s" % kv for kv in keys.items())
                lines.append("")
            text = "\n".join(lines)
        with open(self.conf, "w") as f:
            f.write(text)

    def init_store(self):
        """`pzpgw queue init`: what an operator runs once on a new
        machine with [store] create = no (the default, auto, makes the
        first store itself). Returns the CompletedProcess."""
        return subprocess.run([BINARY, "queue", "-c", self.conf, "init"],
                              capture_output=True, text=True)

    def start(self, wait=True, init=None):
        """Start the daemon. init (default: only on the first start of
        this Gateway) runs `queue init` first when no store exists."""
        self.write_config()
        if init is None:
            init = not getattr(self, "started_once", False)
        self.started_once = True
        store = self.sections.get("store", {})
        path = store.get("path")
        if (init and path and store.get("create") != "yes"
                and not os.path.exists(path)):
            self.init_store()
        # free_port() only found the port free: until the daemon binds
        # it, another process's outgoing connection may take it as its
        # local port for a while. A start that failed on that alone is
        # tried again on the same port (other configs may name it).
        for attempt in range(20):
            self.log = open(self.log_path, "ab")
            mark = os.path.getsize(self.log_path)
            # self.env: the daemon's environment when a test sets one
            # (NOTIFY_SOCKET, WATCHDOG_USEC); else the test's own.
            self.proc = subprocess.Popen(
                [BINARY, "serve", "-d", "-c", self.conf],
                stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                env=getattr(self, "env", None))
            if not wait:
                return self
            wait_for(lambda: "event=started" in self.log_text()
                     or self.proc.poll() is not None,
                     what="gateway start")
            if self.proc.poll() is None:
                return self
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                tail = f.read().decode("utf-8", "replace")
            if "reason=listen" not in tail or attempt == 19:
                break
            self.log.close()
            time.sleep(0.25)
        assert self.proc.poll() is None, self.log_text()
        return self

    def start_refused(self, timeout=30):
        """Start a daemon that is expected to refuse to start; return
        its exit status and what it logged. As start(), a failure to
        bind the port free_port() found (taken meanwhile as another
        connection's local port) is tried again."""
        for attempt in range(20):
            mark = os.path.getsize(self.log_path) \
                if os.path.exists(self.log_path) else 0
            self.start(wait=False)
            rc = self.proc.wait(timeout=timeout)
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                tail = f.read().decode("utf-8", "replace")
            if rc == 0 or "reason=listen" not in tail or attempt == 19:
                return rc, tail
            self.log.close()
            time.sleep(0.25)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the daemon; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc

    def connect(self, cert="hospital", timeout=10):
        """A TLS socket to the organisation listener."""
        ctx = client_context(self.pki, cert)
        raw = socket.create_connection(("127.0.0.1", self.port),
                                       timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="localhost")

    def request(self, method, path, body=None, cert="hospital",
                headers=None, timeout=30):
        """One HTTPS request; returns (status, headers dict, body bytes)."""
        ctx = client_context(self.pki, cert)
        conn = http.client.HTTPSConnection("localhost", self.port,
                                           context=ctx, timeout=timeout)
        hdrs = {"Accept": "application/fhir+json"}
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/fhir+json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in
                                 resp.getheaders()}, data
        finally:
            conn.close()

    def admin(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def metric(self, name, **labels):
        """The value of one metric series, or None."""
        _, text = self.admin("/metrics")
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            if series == name and not labels:
                return float(value)
            if series.startswith(name + "{"):
                got = ",".join(sorted(series[len(name) + 1:-1].split(",")))
                if got == want:
                    return float(value)
        return None


def outcome_issue(body):
    """The first issue of an OperationOutcome body."""
    oo = json.loads(body)
    assert oo["resourceType"] == "OperationOutcome", oo
    return oo["issue"][0]


PG_SH = os.path.join(SRCDIR, "tests", "pg", "pg.sh")


class Postgres:
    """A throwaway PostgreSQL server (tests/pg/pg.sh: initdb and pg_ctl
    of Debian's postgresql package, as nobody when root, on a free
    port). start() returns False when the package is not installed (the
    caller skips, saying so). Each database() is a fresh database."""

    def __init__(self):
        # Under /tmp, searchable by all: the server runs as nobody when
        # the tests run as root, and pytest's own directories are 0700.
        self.base = tempfile.mkdtemp(prefix="pzpgw-pg-")
        os.chmod(self.base, 0o755)
        self.dir = os.path.join(self.base, "server")
        self.url = None
        self.password_file = None
        self.n = 0

    def start(self):
        r = subprocess.run(["sh", PG_SH, "start", self.dir],
                           capture_output=True, text=True)
        if r.returncode == 77:
            return False
        assert r.returncode == 0, r.stderr
        env = dict(line.split("=", 1) for line in r.stdout.split())
        self.url = env["PZPGW_TEST_PG_URL"]
        self.password_file = env["PZPGW_TEST_PG_PASSWORD_FILE"]
        self.data = os.path.join(self.dir, "data")
        return True

    def stop(self):
        subprocess.run(["sh", PG_SH, "stop", self.dir], capture_output=True)
        os.rmdir(self.base)

    def env(self):
        """An environment for psql and the CLI with --store URI: the
        password through libpq's own PGPASSWORD."""
        e = dict(os.environ)
        with open(self.password_file) as f:
            e["PGPASSWORD"] = f.readline().strip()
        return e

    def sql(self, url, sql):
        """Rows (lists of text fields) of sql on the database url."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                           capture_output=True, text=True, env=self.env())
        assert r.returncode == 0, r.stderr
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def database(self):
        """A new empty database; returns its URI."""
        self.n += 1
        name = "t%d_%d" % (os.getpid(), self.n)
        self.sql(self.url, "CREATE DATABASE %s" % name)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def signal_all(self, sig):
        """Send sig to the server's every process (the postmaster in
        postmaster.pid and its children): SIGSTOP freezes it with its
        connections open, as a hung host or a network cut off without a
        reset looks to a client; SIGCONT thaws it."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            main = int(f.readline())
        kids = subprocess.run(["pgrep", "-P", str(main)],
                              capture_output=True, text=True).stdout.split()
        for pid in [main] + [int(k) for k in kids]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def pg_ctl(self, *args):
        """pg_ctl on the server (stop/start under a running gateway)."""
        r = subprocess.run(["sh", "-c",
                            'b=$(ls -d /usr/lib/postgresql/*/bin | sort -V'
                            ' | tail -1); cmd="$b/pg_ctl -D $0 $*";'
                            ' if [ "$(id -u)" = 0 ]; then setpriv'
                            ' --reuid=nobody --regid=nogroup --clear-groups'
                            ' -- $cmd; else $cmd; fi', self.data] +
                           list(args), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr + r.stdout
        return r


def use_postgres(g, pg):
    """Give gateway g a store of its own on server pg ([store] backend =
    postgresql; path stays, for the lock file). Returns g."""
    g.pg_url = pg.database()
    g.sections["store"].update({"backend": "postgresql", "url": g.pg_url,
                                "password_file": pg.password_file})
    return g
