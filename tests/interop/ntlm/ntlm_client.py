"""pyspnego as an NTLM initiator, driven over stdin/stdout by exsync-ntlm's tests.

An independent initiator for exsync-ntlm's acceptor (run by crates/exsync-ntlm/tests/pyspnego_initiator.rs).

Usage: ntlm_client.py ACCOUNT PASSWORD [CERT_DER_PATH]

ACCOUNT is DOMAIN\\user. With CERT_DER_PATH the client sends a channel binding for that
certificate (tls-server-end-point, SHA-256 of the DER, as for a SHA-256-signed certificate).
Prints the base64 NEGOTIATE, reads the base64 CHALLENGE from stdin, prints the base64 AUTHENTICATE.
LM_COMPAT_LEVEL in the environment is honoured by pyspnego (below 3 produces NTLMv1).
"""

import base64
import hashlib
import sys

import spnego
from spnego.channel_bindings import GssChannelBindings


def main():
    account, password = sys.argv[1:3]
    bindings = None
    if len(sys.argv) > 3:
        with open(sys.argv[3], "rb") as f:
            der = f.read()
        bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + hashlib.sha256(der).digest())
    ctx = spnego.client(account, password, hostname="mail.exsync.test", service="HTTP", protocol="ntlm",
                        channel_bindings=bindings)
    print(base64.b64encode(ctx.step()).decode(), flush=True)
    challenge = base64.b64decode(sys.stdin.readline().strip())
    print(base64.b64encode(ctx.step(challenge)).decode(), flush=True)


if __name__ == "__main__":
    main()
