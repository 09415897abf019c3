"""The README's examples, run as written: the ```sh blocks preceded by
`<!-- readme-test: SETUP -->` are run in one bash (-e, pipefail) in a copy
of the source tree's layout, against the gateways that SETUP starts the
way the Makefile's target does (`run`: certs/dev-run.sh, gateway A
alone; `run-pair`: certs/dev-run.sh --pair, gateways A and B). The only
change is the ports: the gateways listen on free ones, and the block's
8443/8444/9090/9091 are rewritten to them (PZPGW_GATEWAY points `pzpgw
send` at A)."""

import os
import re
import signal
import subprocess

import pytest

from gw import BINARY, SRCDIR, free_port, wait_for

MARK = re.compile(r"<!-- readme-test: ([a-z-]+) -->\n```sh\n(.*?)\n```",
                  re.S)

# Per setup: what each marked block must print (all of them, in order of
# the README) besides exiting 0.
EXPECT = {
    "run": [r'"resourceType":"CapabilityStatement"',
            r'"resourceType":"OperationOutcome"',
            r"pzpgw_http_requests_total\{",
            r"var/pzpgw\.conf: configuration ok \(organisation 90000001, "
            r"3 peers\)\n",
            r"usage: pzpgw validate ",
            r"othername: 2\.5\.5\.5::[0-9.]+-1-10000002-S-90000002-",
            r'"resourceType":"CapabilityStatement"',
            # pzpgw backup of the running gateway's store
            r"backup of /\S+/var/pzpgw\.db written to var/backup/pzpgw-\d{8}T"
            r"\d{6}Z\.db: \d+ bytes, schema \d+, integrity ok\n"
            r"(  \S+ +\d+\n)*  messages +\d+\n"],
    "run-pair": [
        # send --status: A accepted it and delivered it to B
        r"HTTP 202\nmessage [0-9a-f-]{36}\nidentifier \S+\nstatus https://localhost:\d+/"
        r"fhir/\$process-message/[0-9a-f-]{36}\n"
        r"receiver 90000003 delivered attempts=1\n",
        # B's inbox: received for the practice from the hospital via A
        r"\n\d+ +[0-9a-f-]{36} +90000003 +90000002 +90000001 +999911120 ",
        # the practice's search at B finds the patient
        r'"type":"searchset","total":1,',
        # A's queue: the row to B, delivered
        r"90000003 +delivered",
        # the other practice is served by A itself
        r"receiver 90000004 stored \(served by this gateway\) "
        r"retrieved=not-yet\n",
        # check-config --probe: B is the route for the practice
        r"var/gateway-a.conf: \[peer 90000003\] https://localhost:\d+/fhir: "
        r"reachable, server URA 90000009, \$process-message takes this "
        r"gateway's messages\nvar/gateway-a.conf: configuration ok"],
}


def readme_blocks():
    with open(os.path.join(SRCDIR, "README.md")) as f:
        text = f.read()
    return [(m.group(1), m.group(2)) for m in MARK.finditer(text)]


def test_blocks_are_marked():
    setups = [s for s, _ in readme_blocks()]
    assert "run-pair" in setups and "run" in setups, setups
    assert set(setups) <= set(EXPECT), setups


def test_make_targets_run_the_script():
    """What this test starts is what `make run` and `make run-pair` run."""
    with open(os.path.join(SRCDIR, "Makefile")) as f:
        make = f.read()
    assert "\nrun: deps-build all\n\tsh certs/dev-run.sh $(BIN) var\n" \
        in make
    assert ("\nrun-pair: deps-build all\n"
            "\tsh certs/dev-run.sh --pair $(BIN) var\n") in make


@pytest.fixture
def tree(tmp_path):
    """The source tree's layout without its var/: tests, schemas and the
    scripts linked, build/release the binary under test."""
    for name in ("tests", "schemas", "certs"):
        os.symlink(os.path.join(SRCDIR, name), tmp_path / name)
    (tmp_path / "build").mkdir()
    os.symlink(os.path.dirname(os.path.abspath(BINARY)),
               tmp_path / "build" / "release")
    return tmp_path


class DevRun:
    """certs/dev-run.sh in its own session, as make runs it."""

    def __init__(self, tree, pair):
        self.tree = tree
        self.ports = {8443: free_port(), 9090: free_port(),
                      8444: free_port(), 9091: free_port()}
        self.env = dict(os.environ,
                        PZPGW_DEV_PORT_A=str(self.ports[8443]),
                        PZPGW_DEV_ADMIN_A=str(self.ports[9090]),
                        PZPGW_DEV_PORT_B=str(self.ports[8444]),
                        PZPGW_DEV_ADMIN_B=str(self.ports[9091]),
                        PZPGW_GATEWAY="https://localhost:%d"
                        % self.ports[8443])
        self.log = tree / "run.log"
        cmd = ["sh", "certs/dev-run.sh"] + (["--pair"] if pair else []) + \
            [os.path.join("build", "release", os.path.basename(BINARY)),
             "var"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=tree, env=self.env,
                                         stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_for(lambda: "event=started" in self.text()
                 or self.proc.poll() is not None, timeout=60,
                 what="dev-run.sh")
        assert self.proc.poll() is None, self.text()

    def text(self):
        return self.log.read_text(errors="replace")

    def rewrite(self, block):
        for old, new in self.ports.items():
            block = re.sub(r"(?<=:)%d\b" % old, str(new), block)
        return block

    def stop(self):
        """SIGTERM to the script (Ctrl-C's path: it stops both)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise


@pytest.mark.parametrize("setup", sorted(EXPECT))
def test_readme_blocks(tree, setup):
    blocks = [b for s, b in readme_blocks() if s == setup]
    assert blocks, setup
    run = DevRun(tree, setup == "run-pair")
    try:
        # One shell for all of a setup's blocks, in README order, as a
        # reader's second terminal (the first block's export holds).
        script = "\n".join(run.rewrite(b) for b in blocks)
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script],
                           cwd=tree, env=run.env, capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, (script, r.stdout, r.stderr, run.text())
        out = r.stdout
        pos = 0
        for want in EXPECT[setup]:
            m = re.compile(want).search(out, pos)
            assert m, (want, out[pos:pos + 2000])
            pos = m.end()
    finally:
        rc = run.stop()
    assert rc == 0, run.text()
    # The script lists every certificate it made, each with its URA.
    text = run.text()
    for name, ura in (("gateway", "90000001"), ("hospital", "90000002"),
                      ("gp1", "90000003"), ("gp2", "90000004"),
                      ("gateway2", "90000009")):
        assert re.search(r"\n  %s\.crt/\.key +URA %s " % (name, ura),
                         text), text
    if setup == "run-pair":
        b_log = (tree / "var" / "gateway-b.log").read_text()
        assert "event=stopped" in b_log, b_log
