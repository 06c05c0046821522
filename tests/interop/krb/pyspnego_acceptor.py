"""A second independent Kerberos acceptor for exsync's client: pyspnego (SPNEGO in Python, on
MIT's GSSAPI through python-gssapi), from the interop venv.

Same line protocol as acceptor.py: reads {"token": b64, "binding": b64 or null} per line on
stdin, answers {"ok": true, "client": ..., "token": b64} or {"ok": false, "error": ...}. The
keytab comes from KRB5_KTNAME and the realm's configuration from KRB5_CONFIG.
"""
import base64
import json
import sys

import spnego
from spnego.channel_bindings import GssChannelBindings


def accept(request):
    binding = request.get("binding")
    bindings = None
    if binding is not None:
        bindings = GssChannelBindings(application_data=base64.b64decode(binding))
    try:
        ctx = spnego.server(service="HTTP", protocol="negotiate", channel_bindings=bindings)
        out = ctx.step(base64.b64decode(request["token"]))
        if not ctx.complete:
            return {"ok": False, "error": "context not complete after one token"}
    except spnego.exceptions.SpnegoError as e:
        return {"ok": False, "error": str(e)}
    except AttributeError as e:
        # python-gssapi keeps a failed accept's error until the context is next used, and
        # pyspnego's next use is reading the flags, which then says the context never started.
        return {"ok": False, "error": f"refused: {e}"}
    return {
        "ok": True,
        "client": ctx.client_principal,
        "token": base64.b64encode(out or b"").decode(),
    }


for line in sys.stdin:
    print(json.dumps(accept(json.loads(line))), flush=True)
