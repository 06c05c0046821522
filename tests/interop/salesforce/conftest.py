"""Fixtures for the simple-salesforce interop tests (the simulator itself is in sf_sim.py)."""

import pytest

from sf_sim import Sim


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    s = Sim(tmp_path_factory.mktemp("sfsim")).start()
    yield s
    s.stop()


@pytest.fixture()
def sf(sim):
    sim.control("POST", "/faults", {})
    sim.control("POST", "/limits", {"used": 0, "max": 100000})
    return sim.login()
