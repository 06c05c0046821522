"""Validates SOAP requests against Microsoft's EWS schema (../shared/ews-schema).

Usage: validate_bodies.py DIR [DIR...]
Every *.xml file under the directories whose name does not end in ".response.xml" is read as a
SOAP envelope; the child of soap:Body and each soap:Header child are validated against
messages.xsd. Prints one line per failure and exits 1 if any failed, 2 on a setup error.
"""

import os
import sys

import xmlschema
from lxml import etree

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.environ.get(
    "EXSYNC_EWS_SCHEMA_DIR",
    os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "ews-schema")),
)
XMLXSD = os.path.join(os.path.dirname(xmlschema.__file__), "schemas", "XML", "xml.xsd")


class _Resolver(etree.Resolver):
    # libxml2 cannot resolve the xml: namespace import, which has no schemaLocation.
    def resolve(self, url, pubid, context):
        if url.endswith("types.xsd"):
            with open(os.path.join(SCHEMA_DIR, "types.xsd"), encoding="utf-8") as f:
                text = f.read().replace(
                    '<xs:import namespace="http://www.w3.org/XML/1998/namespace"/>',
                    '<xs:import namespace="http://www.w3.org/XML/1998/namespace" '
                    f'schemaLocation="file://{XMLXSD}"/>',
                    1,
                )
            return self.resolve_string(text.encode(), context)
        return None


def load_schema():
    parser = etree.XMLParser()
    parser.resolvers.add(_Resolver())
    return etree.XMLSchema(etree.parse(os.path.join(SCHEMA_DIR, "messages.xsd"), parser))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if not os.path.isdir(SCHEMA_DIR):
        print(f"schema directory {SCHEMA_DIR} not found", file=sys.stderr)
        return 2
    schema = load_schema()
    checked = 0
    failures = 0
    for root_dir in argv[1:]:
        for dirpath, _, files in os.walk(root_dir):
            for name in sorted(files):
                if not name.endswith(".xml") or name.endswith(".response.xml"):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    doc = etree.parse(path)
                except etree.XMLSyntaxError as e:
                    print(f"{path}: not XML: {e}")
                    failures += 1
                    continue
                parts = []
                header = doc.getroot().find(SOAP + "Header")
                if header is not None:
                    parts.extend(list(header))
                body = doc.getroot().find(SOAP + "Body")
                if body is None or len(body) != 1:
                    print(f"{path}: soap:Body must hold exactly one element")
                    failures += 1
                    continue
                parts.append(body[0])
                for part in parts:
                    checked += 1
                    if not schema.validate(etree.ElementTree(part)):
                        failures += 1
                        for err in schema.error_log:
                            print(f"{path}: {etree.QName(part).localname}: line {err.line}: {err.message}")
    print(f"checked {checked} elements, {failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
