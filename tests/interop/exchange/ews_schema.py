"""Validation of EWS reply bodies against Microsoft's schema in ../shared/ews-schema.

The schema is read in place (never copied). libxml2 cannot resolve the xml: namespace import
of types.xsd, which has no schemaLocation, so the resolver points it at xmlschema's xml.xsd.
"""

import os
from functools import lru_cache
from pathlib import Path

import xmlschema
from lxml import etree

WORKSPACE = Path(__file__).resolve().parents[3]
SCHEMA_DIR = Path(os.environ.get("EXSYNC_EWS_SCHEMA", WORKSPACE.parent / "shared" / "ews-schema"))
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XML_XSD = Path(xmlschema.__file__).parent / "schemas" / "XML" / "xml.xsd"


class _Resolver(etree.Resolver):
    def resolve(self, url, pubid, context):
        if url.endswith("types.xsd"):
            text = (SCHEMA_DIR / "types.xsd").read_text(encoding="utf-8")
            text = text.replace(
                '<xs:import namespace="http://www.w3.org/XML/1998/namespace"/>',
                f'<xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="{XML_XSD.as_uri()}"/>',
                1,
            )
            return self.resolve_string(text.encode("utf-8"), context)
        return None


@lru_cache(maxsize=1)
def schema():
    if not (SCHEMA_DIR / "messages.xsd").exists():
        raise RuntimeError(f"EWS schema not found in {SCHEMA_DIR} (set EXSYNC_EWS_SCHEMA)")
    parser = etree.XMLParser()
    parser.resolvers.add(_Resolver())
    doc = etree.parse(str(SCHEMA_DIR / "messages.xsd"), parser)
    return etree.XMLSchema(doc)


def validate_envelope(data: bytes):
    """Returns a list of problems with one reply envelope (empty when valid).

    SOAP faults are outside the EWS schema (the envelope schema is not included) and are
    checked for shape only.
    """
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError as e:
        return [f"not well-formed: {e}"]
    body = root.find(f"{{{SOAP_NS}}}Body")
    if body is None or len(body) != 1:
        return ["no single child in soap:Body"]
    child = body[0]
    if child.tag == f"{{{SOAP_NS}}}Fault":
        if child.find("faultcode") is None or child.find("faultstring") is None:
            return ["SOAP fault without faultcode/faultstring"]
        return []
    problems = []
    s = schema()
    if not s.validate(child):
        problems.extend(str(e) for e in s.error_log)
    header = root.find(f"{{{SOAP_NS}}}Header")
    if header is not None:
        for h in header:
            if not s.validate(h):
                problems.extend(str(e) for e in s.error_log)
    return problems


def validate_trace_dir(trace_dir: Path):
    """Validates every `*.response.xml` of a simulator trace; returns (count, problems)."""
    problems = []
    files = sorted(Path(trace_dir).glob("*.response.xml"))
    for f in files:
        data = f.read_bytes()
        # Traces hold whole envelopes; a bare body element is wrapped for the same checks.
        if b"Envelope" not in data[:300]:
            data = (
                b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                + data
                + b"</s:Body></s:Envelope>"
            )
        for p in validate_envelope(data):
            problems.append(f"{f.name}: {p}")
    return len(files), problems
