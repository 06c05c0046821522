"""Fixtures for driving `exsync-sim graph` with Microsoft's msal and msgraph-sdk (the simulator
and the clients are set up in graph_sim.py).

One simulator serves the whole session; each test takes mailboxes of its own (`mailbox`), so
faults, throttling budgets and delta state never leak from one test into another. Every Graph
response the SDK receives is validated against Graph's CSDL as it arrives, and the test that
provoked an invalid one fails (`graph` fixture teardown).
"""

import warnings

import pytest

import graph_schema
from graph_sim import SchemaCheck, Sim

# The generated SDK warns about its own deprecated request-configuration classes when the
# tests import it (collection, for which this conftest may load too late to add an ini filter)
# and when they run; that says nothing about the simulator.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(msgraph|kiota_abstractions)\.")

MAILBOXES = 40
OUT_OF_SCOPE = 2


def _schema_gate():
    if graph_schema.available():
        return
    if graph_schema.required():
        pytest.fail(graph_schema.missing_message() + "; EXSYNC_REQUIRE_SCHEMA=1 makes that an error")


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    s = Sim(
        tmp_path_factory.mktemp("graphsim"),
        "--mailboxes", str(MAILBOXES), "--out-of-scope", str(OUT_OF_SCOPE),
    )
    try:
        s.start()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def schema_check(sim):
    return SchemaCheck(sim.graph_url)


@pytest.fixture(scope="session")
def session_graph(sim, schema_check):
    g = sim.graph(schema_check)
    yield g
    g.close()


@pytest.fixture
def graph(session_graph):
    """The session's Graph client; fails the test if any response it got broke the schema."""
    _schema_gate()
    session_graph.check.take_problems()
    yield session_graph
    problems = session_graph.check.take_problems()
    assert not problems, "simulator answers that fail Graph's schema:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="session")
def _mailbox_pool(sim):
    return list(sim.mailboxes)


@pytest.fixture
def mailbox(_mailbox_pool):
    """An in-scope mailbox no other test of this session uses."""
    if not _mailbox_pool:
        pytest.fail(f"more tests than the {MAILBOXES} mailboxes the session's simulator has")
    return _mailbox_pool.pop(0)


@pytest.fixture
def another_mailbox(_mailbox_pool):
    if not _mailbox_pool:
        pytest.fail(f"more tests than the {MAILBOXES} mailboxes the session's simulator has")
    return _mailbox_pool.pop(0)


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:msgraph.*")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:kiota_abstractions.*")
