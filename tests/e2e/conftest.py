"""Shared fixtures for the end-to-end tests: one test PKI per session, a
fresh gateway per test and a PostgreSQL server per module (see gw.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import gw  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return gw.make_pki(str(tmp_path_factory.mktemp("pki") / "pki"))


@pytest.fixture(scope="module")
def pg():
    """A throwaway PostgreSQL server (tests/pg/pg.sh) for a test module;
    the module's tests are skipped, saying why, where the package is not
    installed."""
    p = gw.Postgres()
    if not p.start():
        p.stop()
        pytest.skip("PostgreSQL is not installed (apt-get install "
                    "postgresql; make deps does)")
    yield p
    p.stop()


@pytest.fixture
def gateway(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path)).start()
    yield g
    g.stop()
