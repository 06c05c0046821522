"""HTTPS keep-alive server whose NTLM acceptor is pyspnego, with channel binding required.

An independent acceptor for exsync-ntlm's initiator (run by crates/exsync-ntlm/tests/pyspnego_acceptor.rs).

Usage: ntlm_server.py WORKDIR DOMAIN USER PASSWORD

Writes into WORKDIR a fresh self-signed certificate (server.der), an unrelated certificate (other.der)
and the NTLM_USER_FILE, listens on 127.0.0.1 on a free port, and prints "PORT <n>" once ready.
Responses: 401 with "WWW-Authenticate: NTLM [token]" while the handshake runs or after a failure;
200 "hello DOMAIN\\user" once the connection is authenticated.
"""

import base64
import datetime
import hashlib
import http.server
import ipaddress
import os
import ssl
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # An end-entity certificate: rustls refuses a CA certificate as the server's own.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def main():
    workdir, domain, user, password = sys.argv[1:5]
    key, cert = make_certificate("localhost")
    _, other = make_certificate("someone-else")
    der = cert.public_bytes(serialization.Encoding.DER)
    with open(os.path.join(workdir, "server.der"), "wb") as f:
        f.write(der)
    with open(os.path.join(workdir, "other.der"), "wb") as f:
        f.write(other.public_bytes(serialization.Encoding.DER))
    with open(os.path.join(workdir, "server.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(workdir, "server.key"), "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    users = os.path.join(workdir, "ntlm_users")
    with open(users, "w") as f:
        f.write(f"{domain}:{user}:{password}\n")
    os.environ["NTLM_USER_FILE"] = users

    import spnego
    from spnego.channel_bindings import GssChannelBindings

    # RFC 5929 with a SHA-256-signed certificate: SHA-256 of the DER.
    bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + hashlib.sha256(der).digest())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.ntlm = None
            self.principal = None

        def log_message(self, fmt, *args):
            sys.stderr.write("ntlm_server: " + (fmt % args) + "\n")

        def reply(self, status, body=b"", token=None):
            self.send_response(status)
            if status == 401:
                value = "NTLM" if token is None else "NTLM " + base64.b64encode(token).decode()
                self.send_header("WWW-Authenticate", value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            if length:
                self.rfile.read(length)
            self.do_GET()

        def do_GET(self):
            header = self.headers.get("Authorization", "")
            if not header.startswith("NTLM "):
                if self.principal:
                    self.reply(200, f"hello {self.principal}".encode())
                else:
                    self.reply(401)
                return
            token = base64.b64decode(header[5:])
            if token[8:12] == b"\x01\x00\x00\x00":
                self.ntlm = spnego.server(protocol="ntlm", channel_bindings=bindings)
                self.principal = None
            if self.ntlm is None:
                self.reply(401, b"no handshake in progress")
                return
            try:
                out = self.ntlm.step(token)
            except Exception as e:  # any rejection is a 401, with the reason for the test log
                self.ntlm = None
                self.reply(401, f"rejected: {e}".encode())
                return
            if not self.ntlm.complete:
                self.reply(401, token=out)
                return
            self.principal = self.ntlm.client_principal
            self.ntlm = None
            self.reply(200, f"hello {self.principal}".encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(workdir, "server.pem"), os.path.join(workdir, "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
