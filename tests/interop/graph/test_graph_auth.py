"""msal against the simulator's identity platform: client credentials with the secret, with a
certificate in both forms msal sends (a PEM key with the SHA-1 thumbprint: RS256 + x5t; a PFX:
PS256 + x5t#S256), and a wrong secret refused the way Entra refuses it."""

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from graph_sim import GRAPH_SCOPE


class RecordingSession(requests.Session):
    """msal's HTTP client, keeping what was posted to the token endpoint."""

    def __init__(self):
        super().__init__()
        self.posted = []

    def post(self, url, data=None, **kwargs):
        self.posted.append((url, dict(data or {})))
        return super().post(url, data=data, **kwargs)


def _assertion(session):
    forms = [form for url, form in session.posted if url.endswith("/oauth2/v2.0/token")]
    assert forms, f"msal posted nothing to a token endpoint: {[u for u, _ in session.posted]}"
    form = forms[-1]
    assert form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in form
    return form["client_assertion"]


def _graph_accepts(sim, app, mailbox, check):
    """The token msal got is one Graph accepts for an in-scope mailbox."""
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    r = requests.get(
        f"{sim.graph_url}/users/{mailbox}",
        headers={"Authorization": "Bearer " + result["access_token"]},
        verify=sim.ca,
        timeout=30,
    )
    check.response(r)
    assert r.status_code == 200, r.text
    return result


def _certificate(sim):
    cert = x509.load_pem_x509_certificate(open(sim.info["certificate_pem"], "rb").read())
    key = serialization.load_pem_private_key(open(sim.info["private_key_pem"], "rb").read(), password=None)
    return cert, key


def test_openid_configuration_names_the_token_endpoint(sim):
    r = requests.get(
        sim.info["authority"].rstrip("/") + "/v2.0/.well-known/openid-configuration", verify=sim.ca, timeout=30
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["token_endpoint"] == sim.token_url
    assert sim.info["tenant_id"] in doc["issuer"]


def test_token_with_the_secret(sim, graph, mailbox):
    result = _graph_accepts(sim, sim.msal_app(), mailbox, graph.check)
    assert result["token_type"].lower() == "bearer"
    assert int(result["expires_in"]) > 0
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims.get("appid", claims.get("azp")) == sim.info["client_id"]
    assert claims.get("tid") == sim.info["tenant_id"]


def test_token_with_the_certificate_pem_and_sha1_thumbprint_is_rs256_x5t(sim, graph, mailbox):
    cert, _ = _certificate(sim)
    session = RecordingSession()
    app = sim.msal_app(
        {
            "private_key": open(sim.info["private_key_pem"]).read(),
            "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
        },
        http_client=session,
    )
    _graph_accepts(sim, app, mailbox, graph.check)
    header = jwt.get_unverified_header(_assertion(session))
    assert header["alg"] == "RS256"
    assert "x5t" in header and "x5t#S256" not in header


def test_token_with_the_certificate_pfx_is_ps256_x5t_s256(sim, graph, mailbox, tmp_path):
    cert, key = _certificate(sim)
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"exsync", key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass")
        )
    )
    session = RecordingSession()
    app = sim.msal_app({"private_key_pfx_path": str(pfx), "passphrase": "pfx-pass"}, http_client=session)
    _graph_accepts(sim, app, mailbox, graph.check)
    assertion = _assertion(session)
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "PS256"
    assert "x5t#S256" in header
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["aud"] == sim.token_url
    assert claims["iss"] == claims["sub"] == sim.info["client_id"]


def test_wrong_secret_is_refused_with_an_aadsts_code(sim):
    result = sim.msal_app("not-the-secret").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" not in result
    assert result.get("error") == "invalid_client", result
    assert result.get("error_description", "").startswith("AADSTS"), result
    assert result.get("error_codes"), result


def test_certificate_the_app_does_not_have_is_refused(sim, tmp_path):
    # A key and certificate of our own: well-formed assertion, unknown thumbprint.
    from cryptography.hazmat.primitives.asymmetric import rsa
    import datetime

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "stranger")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    app = sim.msal_app({"private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()})
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" not in result
    assert result.get("error") == "invalid_client", result
    assert result.get("error_description", "").startswith("AADSTS"), result


def test_graph_refuses_a_request_without_a_token(sim, graph, mailbox):
    r = requests.get(f"{sim.graph_url}/users/{mailbox}", verify=sim.ca, timeout=30)
    graph.check.response(r)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"


@pytest.mark.parametrize("scope", ["https://graph.microsoft.com/User.Read", "https://example.org/.default"])
def test_scope_other_than_graph_default_is_refused(sim, scope):
    result = sim.msal_app().acquire_token_for_client(scopes=[scope])
    assert "access_token" not in result
    assert result.get("error") in ("invalid_scope", "invalid_resource", "invalid_request"), result
    assert result.get("error_description", "").startswith("AADSTS"), result


def test_revoked_token_is_401_and_a_new_one_works(sim, graph, mailbox):
    """After the control API expires every token issued, Graph answers 401
    InvalidAuthenticationToken; a token msal fetches afresh is accepted."""
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    from graph_sim import odata_error

    graph.run(graph.client.users.by_user_id(mailbox).contact_folders.get())
    sim.control("POST", "/expire-tokens", {})
    try:
        with pytest.raises(ODataError) as e:
            graph.run(graph.client.users.by_user_id(mailbox).contact_folders.get())
        assert odata_error(e) == (401, "InvalidAuthenticationToken")
    finally:
        # msal would serve its cached token until it expires: a new app fetches a new one.
        graph.credential.app = sim.msal_app()
    assert graph.run(graph.client.users.by_user_id(mailbox).contact_folders.get()).value is not None
