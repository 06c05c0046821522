"""An independent Kerberos acceptor for exsync's client: MIT's GSSAPI through python-gssapi.

Reads one JSON request per line on stdin: {"token": b64, "binding": b64 or null}; answers one JSON
line: {"ok": true, "client": ..., "token": b64} or {"ok": false, "error": ...}. The keytab comes
from KRB5_KTNAME and the realm's configuration from KRB5_CONFIG, as any GSSAPI server's would.
"""
import base64
import json
import sys

import gssapi

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")


def accept(request):
    token = base64.b64decode(request["token"])
    binding = request.get("binding")
    bindings = None
    if binding is not None:
        bindings = gssapi.raw.ChannelBindings(application_data=base64.b64decode(binding))
    creds = gssapi.Credentials(usage="accept")
    ctx = gssapi.SecurityContext(usage="accept", creds=creds, channel_bindings=bindings)
    # python-gssapi may keep a step's error until the context is next used, so the check of
    # `complete` belongs inside the same try.
    try:
        out = ctx.step(token)
        if not ctx.complete:
            return {"ok": False, "error": "context not complete after one token"}
    except gssapi.raw.misc.GSSError as e:
        return {"ok": False, "error": str(e)}
    return {
        "ok": True,
        "client": str(ctx.initiator_name),
        "mech": str(ctx.mech),
        "token": base64.b64encode(out or b"").decode(),
    }


for line in sys.stdin:
    print(json.dumps(accept(json.loads(line))), flush=True)
