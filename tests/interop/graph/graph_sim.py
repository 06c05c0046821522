"""The built `exsync-sim graph` run on a free loopback port in a temporary directory, and
Microsoft's own clients pointed at it: msal for tokens, msgraph-sdk's GraphServiceClient for
Graph (a module of its own, so its name cannot collide with another folder's conftest in one
pytest run; the benchmark imports it too).

The binary comes from $EXSYNC_BIN_DIR (default <workspace>/target/debug); nothing is built
here. TLS is verified against the simulator's own CA, never disabled.

Every response the Graph client receives passes through `SchemaCheck` at the bottom of the
httpx transport stack, below the SDK's middleware (so a retried 429 is seen too): each entity
is validated against Graph's CSDL (tests/interop/graph_schema.py) as the type its URL names.
"""

import asyncio
import json
import os
import pathlib
import queue
import signal
import ssl
import subprocess
import threading
import time
from urllib.parse import quote, unquote, urlsplit

import httpx
import msal
import requests
from azure.core.credentials import AccessToken
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as graph_default_options
from msgraph_core import GraphClientFactory
from msgraph_core.authentication import AzureIdentityAuthenticationProvider

import graph_schema

WORKSPACE = pathlib.Path(__file__).resolve().parents[3]
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def binary() -> pathlib.Path:
    bin_dir = pathlib.Path(os.environ.get("EXSYNC_BIN_DIR", WORKSPACE / "target" / "debug"))
    return bin_dir / "exsync-sim"


def _address(entry) -> str:
    # sim.json may list bare addresses or objects describing each mailbox.
    if isinstance(entry, str):
        return entry
    for key in ("address", "userPrincipalName", "mail"):
        if isinstance(entry.get(key), str):
            return entry[key]
    raise ValueError(f"cannot read a mailbox address from {entry!r}")


class Sim:
    """A running `exsync-sim graph` and what its sim.json says."""

    def __init__(self, data_dir: pathlib.Path, *extra: str):
        self.data_dir = pathlib.Path(data_dir)
        self.extra = list(extra)
        self.proc = None
        self.info = {}
        self.log_path = self.data_dir / "sim.log"

    def start(self, timeout: float = 120):
        path = binary()
        if not path.exists():
            raise RuntimeError(
                f"{path} not found: build it first (cargo build -p exsync-sim) or set EXSYNC_BIN_DIR"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sim_json = self.data_dir / "sim.json"
        if sim_json.exists():
            sim_json.unlink()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(path), "graph", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir), *self.extra],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        # The simulator prints the path of sim.json once it listens; waiting for that line
        # (rather than polling for the file) also proves the contract. Its stdout is drained
        # into the log from then on, so a full pipe can never stall it.
        printed = queue.Queue()
        threading.Thread(target=self._drain, args=(self.proc.stdout, printed), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = printed.get(timeout=0.1)
            except queue.Empty:
                line = None
            if line and line.endswith("sim.json") and pathlib.Path(line).is_file():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.proc.returncode}: {self.log_path.read_text()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"simulator did not print its sim.json path within {timeout} s")
        self.sim_json_path = pathlib.Path(line)
        self.info = json.loads(self.sim_json_path.read_text())
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _drain(self, stdout, printed):
        with open(self.log_path, "ab") as log:
            for raw in stdout:
                log.write(raw)
                log.flush()
                printed.put(raw.decode(errors="replace").strip())

    def restart(self):
        self.stop()
        return self.start()

    # --- what sim.json says ------------------------------------------------------------------

    @property
    def graph_url(self) -> str:
        return self.info["graph_url"].rstrip("/")

    @property
    def ca(self) -> str:
        return self.info["ca_pem"]

    @property
    def mailboxes(self) -> list:
        return [_address(m) for m in self.info["mailboxes"]]

    @property
    def out_of_scope(self) -> list:
        return [_address(m) for m in self.info.get("out_of_scope", [])]

    @property
    def token_url(self) -> str:
        return self.info.get("token_url") or self.info["authority"].rstrip("/") + "/oauth2/v2.0/token"

    # --- control API ------------------------------------------------------------------------

    def control(self, method: str, path: str, body=None, expect_ok: bool = True):
        r = requests.request(
            method,
            self.info["control_url"].rstrip("/") + path,
            json=body,
            headers={"Authorization": "Bearer " + self.info["control_token"]},
            verify=self.ca,
            timeout=30,
        )
        if expect_ok and r.status_code >= 300:
            raise AssertionError(f"control {method} {path} → {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def fault(self, mailbox: str, status: int, count: int = 1, retry_after=None):
        body = {"mailbox": mailbox, "status": status, "count": count}
        if retry_after is not None:
            body["retry_after"] = retry_after
        return self.control("POST", "/faults", body)

    def counters(self) -> dict:
        return self.control("GET", "/counters")

    def expire_delta_tokens(self, mailbox: str):
        return self.control("POST", f"/mailboxes/{quote(mailbox)}/expire-delta-tokens", {})

    # --- clients ----------------------------------------------------------------------------

    def msal_app(self, credential=None, http_client=None) -> msal.ConfidentialClientApplication:
        """An msal app for the simulator's tenant; the secret unless `credential` says otherwise."""
        session = http_client or requests.Session()
        session.verify = self.ca
        # REQUESTS_CA_BUNDLE from the environment would otherwise replace the simulator's CA.
        session.trust_env = False
        return msal.ConfidentialClientApplication(
            self.info["client_id"],
            client_credential=credential if credential is not None else self.info["client_secret"],
            authority=self.info["authority"],
            instance_discovery=False,
            http_client=session,
        )

    def graph(self, check=None, app=None) -> "Graph":
        return Graph(self, app or self.msal_app(), check)


class MsalCredential:
    """azure-core's TokenCredential over msal, which is what the Graph SDK asks tokens of."""

    def __init__(self, app: msal.ConfidentialClientApplication):
        self.app = app

    def get_token(self, *scopes, **_kwargs) -> AccessToken:
        result = self.app.acquire_token_for_client(scopes=list(scopes))
        if "access_token" not in result:
            raise RuntimeError(f"token refused: {result.get('error')}: {result.get('error_description')}")
        return AccessToken(result["access_token"], int(time.time()) + int(result.get("expires_in", 60)))


# --- schema check on every response ---------------------------------------------------------

# The entity type a URL's last resource segment serves (ids and `delta` are skipped over).
SEGMENT_TYPES = {
    "users": "user",
    "contactFolders": "contactFolder",
    "childFolders": "contactFolder",
    "contacts": "contact",
    "calendars": "calendar",
    "calendar": "calendar",
    "events": "event",
    "calendarView": "event",
    "instances": "event",
    "exceptionOccurrences": "event",
    "singleValueExtendedProperties": "singleValueLegacyExtendedProperty",
}


SINGLETONS = {"calendar"}
# Functions that answer with the type of the collection they are bound to.
FUNCTIONS = {"delta"}


def type_for_path(path: str):
    """`/users/x/contactFolders/y/contacts/delta` → `contact`; None for a URL whose last
    resource is not one of SEGMENT_TYPES (so an unknown answer is reported, not let through)."""
    found = None
    id_may_follow = False
    for seg in path.strip("/").split("/"):
        # `delta()` is how the SDK calls a function; `delta` how Graph's nextLinks name it.
        seg = unquote(seg).removesuffix("()")
        if seg in SEGMENT_TYPES:
            found = SEGMENT_TYPES[seg]
            id_may_follow = seg not in SINGLETONS
        elif seg in FUNCTIONS and found:
            id_may_follow = False
        elif id_may_follow:
            id_may_follow = False
        else:
            return None
    return found


class SchemaCheck:
    """Validates the JSON of every Graph response against the CSDL; collects the problems."""

    def __init__(self, graph_url: str):
        self.base_path = urlsplit(graph_url).path.rstrip("/")  # "/v1.0"
        self.problems: list = []
        self.validated: dict = {}  # type → entities validated
        self.responses = 0
        self.enabled = graph_schema.available()

    def take_problems(self) -> list:
        p, self.problems = self.problems, []
        return p

    def _count(self, type_name, n):
        self.validated[type_name] = self.validated.get(type_name, 0) + n

    def check(self, method: str, url: str, status: int, content_type: str, body: bytes, request_body: bytes):
        self.responses += 1
        if not self.enabled:
            return
        path = urlsplit(url).path
        if not path.startswith(self.base_path + "/"):
            return
        rel = path[len(self.base_path) :]
        where = f"{method} {rel} → {status}"
        if not body:
            return
        if "json" not in content_type:
            self.problems.append(f"{where}: Content-Type {content_type!r} is not JSON")
            return
        try:
            doc = json.loads(body)
        except ValueError as e:
            self.problems.append(f"{where}: body is not JSON ({e}): {body[:200]!r}")
            return
        if rel == "/$batch" and status == 200:
            self._batch(where, doc, request_body)
        else:
            self._one(where, method, rel, status, doc)

    def response(self, r):
        """Checks a response a test got outside the SDK's client (requests or httpx)."""
        request = r.request
        body = request.body if hasattr(request, "body") else request.content
        if isinstance(body, str):
            body = body.encode()
        self.check(request.method, str(request.url), r.status_code, r.headers.get("content-type", ""), r.content, body or b"")

    def _one(self, where, method, rel, status, doc):
        s = graph_schema.schema()
        if status >= 400:
            self.problems.extend(f"{where}: {p}" for p in graph_schema.validate_error(doc))
            return
        type_name = type_for_path(rel)
        if type_name is None:
            self.problems.append(f"{where}: no schema type is known for this URL (add it to SEGMENT_TYPES)")
            return
        if isinstance(doc, dict) and isinstance(doc.get("value"), list) and "id" not in doc:
            problems = s.validate_collection(doc, type_name)
            self._count(type_name, len(doc["value"]))
        else:
            problems = s.validate(doc, type_name)
            self._count(type_name, 1)
        self.problems.extend(f"{where}: {p}" for p in problems)

    def _batch(self, where, doc, request_body):
        try:
            sent = {r["id"]: r for r in json.loads(request_body)["requests"]}
        except (ValueError, KeyError, TypeError):
            sent = {}
        responses = doc.get("responses") if isinstance(doc, dict) else None
        if not isinstance(responses, list):
            self.problems.append(f"{where}: a batch answer must hold a responses array")
            return
        for item in responses:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("status"), int):
                self.problems.append(f"{where}: batch item without a string id and an integer status: {item!r}")
                continue
            req = sent.get(item["id"])
            if req is None:
                self.problems.append(f"{where}: batch answer for id {item['id']!r} that was not sent")
                continue
            body = item.get("body")
            if body is None:
                continue
            url = "/" + req["url"].lstrip("/").split("?")[0]
            self._one(f"{where} item {item['id']} {req['method']} {url}", req["method"], url, item["status"], body)


class CheckingTransport(httpx.AsyncBaseTransport):
    """The real transport, with every response body handed to a SchemaCheck on its way up."""

    def __init__(self, inner: httpx.AsyncBaseTransport, check: SchemaCheck):
        self.inner = inner
        self.check = check

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        copy = httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=raw,
            extensions=response.extensions,
            request=request,
        )
        self.check.check(
            request.method,
            str(request.url),
            copy.status_code,
            copy.headers.get("content-type", ""),
            copy.content,
            request.content,
        )
        return copy

    async def aclose(self):
        await self.inner.aclose()


class Graph:
    """GraphServiceClient over the SDK's default middleware (retry, redirect, …), an httpx
    client trusting the simulator's CA, and the schema check. The SDK is async; its calls run
    on this object's own event loop (`run`), so the tests stay plain functions."""

    def __init__(self, sim: Sim, app: msal.ConfidentialClientApplication, check: SchemaCheck = None):
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self.check = check or SchemaCheck(sim.graph_url)
        self.credential = MsalCredential(app)
        ctx = ssl.create_default_context(cafile=sim.ca)
        transport = CheckingTransport(httpx.AsyncHTTPTransport(verify=ctx), self.check)
        http = httpx.AsyncClient(transport=transport, timeout=30, trust_env=False)
        self.http = GraphClientFactory.create_with_default_middleware(client=http, options=graph_default_options)
        # Kiota hands out an empty token for hosts outside allowed_hosts, and would derive the
        # scope from the request's host: both are set to what a real tenant would use.
        auth = AzureIdentityAuthenticationProvider(
            self.credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"]
        )
        self.adapter = GraphRequestAdapter(auth, client=self.http)
        self.adapter.base_url = sim.graph_url
        self.client = GraphServiceClient(request_adapter=self.adapter)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def token(self) -> str:
        return self.credential.get_token(GRAPH_SCOPE).token

    def raw(self, method: str, path: str, json_body=None, headers=None) -> httpx.Response:
        """One request through the same httpx client (middleware and schema check included),
        for what the SDK cannot say; `path` is relative to graph_url."""
        h = {"Authorization": "Bearer " + self.token()}
        h.update(headers or {})
        url = path if path.startswith("https://") else self.sim.graph_url + path
        return self.run(self.http.request(method, url, json=json_body, headers=h))

    def close(self):
        self.run(self.http.aclose())
        self.loop.close()


def cfg(query=None, headers=None):
    """A request configuration for the SDK's builders: their query-parameter object and headers."""
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    c = RequestConfiguration(query_parameters=query)
    for name, value in (headers or {}).items():
        c.headers.add(name, value)
    return c


def odata_error(excinfo):
    """(status, code) of the ODataError an SDK call raised."""
    e = excinfo.value
    return e.response_status_code, (e.error.code if e.error else None)
