"""Validation of EWS envelopes against Microsoft's schema (messages.xsd, types.xsd).

The schema is not part of the repository. It is read in place from `EXSYNC_EWS_SCHEMA` (a
directory), else from `ews-schema` beside the repository's folder. When it is missing, the checks
are skipped and say so, unless `EXSYNC_REQUIRE_SCHEMA=1` (CI sets it), which turns a missing
schema into a failure.

Used three ways: imported by the interop tests, and run by the Rust tests as
`python ews_schema.py requests DIR...` (every request envelope under DIR) or
`python ews_schema.py replies DIR` (every `*.response.xml` of a simulator trace).
Exit codes: 0 valid, 1 invalid, 2 usage error, 3 skipped because the schema is missing.
"""

import os
import sys
from functools import lru_cache
from pathlib import Path

import xmlschema
from lxml import etree

REPOSITORY = Path(__file__).resolve().parents[2]
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XML_XSD = Path(xmlschema.__file__).parent / "schemas" / "XML" / "xml.xsd"
SKIPPED = 3


def schema_dir() -> Path:
    configured = os.environ.get("EXSYNC_EWS_SCHEMA")
    return Path(configured) if configured else REPOSITORY.parent / "shared" / "ews-schema"


def available() -> bool:
    return (schema_dir() / "messages.xsd").is_file()


def required() -> bool:
    return os.environ.get("EXSYNC_REQUIRE_SCHEMA") == "1"


def missing_message() -> str:
    return (
        f"EWS schema not found in {schema_dir()} (set EXSYNC_EWS_SCHEMA to the folder holding "
        "messages.xsd and types.xsd)"
    )


def need_schema():
    """For a test: skips it when the schema is missing, fails it when CI requires the schema."""
    import pytest

    if available():
        return
    if required():
        pytest.fail(missing_message() + "; EXSYNC_REQUIRE_SCHEMA=1 makes that an error")
    pytest.skip(missing_message())


class _Resolver(etree.Resolver):
    # libxml2 cannot resolve the xml: namespace import of types.xsd, which has no
    # schemaLocation, so it is pointed at xmlschema's copy of xml.xsd.
    def resolve(self, url, pubid, context):
        if url.endswith("types.xsd"):
            text = (schema_dir() / "types.xsd").read_text(encoding="utf-8")
            text = text.replace(
                '<xs:import namespace="http://www.w3.org/XML/1998/namespace"/>',
                f'<xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="{XML_XSD.as_uri()}"/>',
                1,
            )
            return self.resolve_string(text.encode("utf-8"), context)
        return None


@lru_cache(maxsize=1)
def schema():
    if not available():
        raise RuntimeError(missing_message())
    parser = etree.XMLParser()
    parser.resolvers.add(_Resolver())
    return etree.XMLSchema(etree.parse(str(schema_dir() / "messages.xsd"), parser))


def _invalid(element):
    s = schema()
    if s.validate(etree.ElementTree(element)):
        return []
    return [f"{etree.QName(element).localname}: line {e.line}: {e.message}" for e in s.error_log]


def validate_envelope(data: bytes, faults_allowed: bool = True):
    """Problems with one envelope (empty when valid): the child of soap:Body and each
    soap:Header child are checked. SOAP faults are outside the EWS schema and are checked for
    shape only."""
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError as e:
        return [f"not well-formed: {e}"]
    body = root.find(f"{{{SOAP_NS}}}Body")
    if body is None or len(body) != 1:
        return ["soap:Body must hold exactly one element"]
    child = body[0]
    if faults_allowed and child.tag == f"{{{SOAP_NS}}}Fault":
        if child.find("faultcode") is None or child.find("faultstring") is None:
            return ["SOAP fault without faultcode/faultstring"]
        return []
    problems = []
    header = root.find(f"{{{SOAP_NS}}}Header")
    for part in list(header if header is not None else []) + [child]:
        problems.extend(_invalid(part))
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
                f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Body>'.encode() + data + b"</s:Body></s:Envelope>"
            )
        problems.extend(f"{f.name}: {p}" for p in validate_envelope(data))
    return len(files), problems


def validate_request_dirs(dirs):
    """Validates every request envelope (`*.xml` but not `*.response.xml`) under the
    directories; returns (count, problems)."""
    problems = []
    count = 0
    for root_dir in dirs:
        for dirpath, _, names in os.walk(root_dir):
            for name in sorted(names):
                if not name.endswith(".xml") or name.endswith(".response.xml"):
                    continue
                path = Path(dirpath) / name
                count += 1
                problems.extend(
                    f"{path}: {p}" for p in validate_envelope(path.read_bytes(), faults_allowed=False)
                )
    return count, problems


def main(argv):
    if len(argv) < 3 or argv[1] not in ("requests", "replies"):
        print(__doc__, file=sys.stderr)
        return 2
    if not available():
        print(f"SKIPPED: {missing_message()}")
        return SKIPPED
    if argv[1] == "requests":
        count, problems = validate_request_dirs(argv[2:])
    else:
        count, problems = validate_trace_dir(Path(argv[2]))
    print(*problems, sep="\n")
    print(f"checked {count} envelopes, {len(problems)} problems")
    return 1 if problems or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
