"""Shared fixtures for the end-to-end tests: one test PKI per session and
a fresh gateway per test (see gw.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import gw  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return gw.make_pki(str(tmp_path_factory.mktemp("pki") / "pki"))


@pytest.fixture
def gateway(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path)).start()
    yield g
    g.stop()
