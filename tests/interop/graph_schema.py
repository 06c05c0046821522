"""Validation of Microsoft Graph JSON against Graph's own schema (the v1.0 CSDL).

The schema is not part of the repository. It is read in place from `EXSYNC_GRAPH_SCHEMA` (a
directory holding `v1.0-Prod.csdl`), else from `graph-schema` beside the repository's folder.
When it is missing the checks are skipped and say so, unless `EXSYNC_REQUIRE_SCHEMA=1` (CI sets
it), which turns a missing schema into a failure.

What is checked, recursively: every property name against the entity or complex type and its
base types (names are case-sensitive); every value against its declared type (Edm primitives,
complex types, enums, collections, `Nullable="false"`); expanded navigation properties as the
entity type they point to; `@odata.type` must name the expected type or one derived from it.
OData control information (`@odata.context`, `@odata.etag`, `@odata.nextLink`, …), instance
annotations (`@removed`) and property annotations (`name@odata.type`) are allowed.

`contact` and `event` are declared `OpenType="true"`, which in OData would admit any dynamic
property. Graph never serves dynamic properties on them, and a misspelt name is exactly what
this check exists to catch, so open types are held to their declared properties.

Run as `python graph_schema.py TYPE FILE.json` to check one document (an entity, or a collection
response with `value`). Exit codes: 0 valid, 1 invalid, 2 usage error, 3 schema missing.
"""

import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
CSDL_FILE = "v1.0-Prod.csdl"
GRAPH = "microsoft.graph"
SKIPPED = 3
EDM_NS = "{http://docs.oasis-open.org/odata/ns/edm}"


def schema_dir() -> Path:
    configured = os.environ.get("EXSYNC_GRAPH_SCHEMA")
    return Path(configured) if configured else REPOSITORY.parent / "shared" / "graph-schema"


def available() -> bool:
    return (schema_dir() / CSDL_FILE).is_file()


def required() -> bool:
    return os.environ.get("EXSYNC_REQUIRE_SCHEMA") == "1"


def missing_message() -> str:
    return (
        f"Graph schema not found in {schema_dir()} (set EXSYNC_GRAPH_SCHEMA to the folder "
        f"holding {CSDL_FILE})"
    )


def need_schema():
    """For a test: skips it when the schema is missing, fails it when CI requires the schema."""
    import pytest

    if available():
        return
    if required():
        pytest.fail(missing_message() + "; EXSYNC_REQUIRE_SCHEMA=1 makes that an error")
    pytest.skip(missing_message())


@dataclass
class Prop:
    type: str  # qualified, e.g. "Edm.String", "microsoft.graph.emailAddress"
    collection: bool
    nullable: bool
    navigation: bool = False


@dataclass
class StructuredType:
    name: str  # qualified
    kind: str  # "entity" or "complex"
    base: str | None
    abstract: bool
    props: dict = field(default_factory=dict)  # name -> Prop


@dataclass
class EnumType:
    name: str
    members: frozenset
    flags: bool


def _split_type(text: str):
    if text.startswith("Collection(") and text.endswith(")"):
        return text[len("Collection(") : -1], True
    return text, False


class Schema:
    """The structured and enum types of a CSDL document, with their inheritance."""

    def __init__(self, types: dict, enums: dict):
        self.types = types
        self.enums = enums
        self._props_cache: dict = {}
        self._derived: dict = {}
        for t in types.values():
            if t.base:
                self._derived.setdefault(t.base, []).append(t.name)

    @classmethod
    def parse(cls, path: Path) -> "Schema":
        types: dict = {}
        enums: dict = {}
        # Aliases are per Schema element, but a type may name another schema's alias; they are
        # collected while parsing and applied once everything is read.
        aliases: dict = {}
        namespace = None
        current = None  # StructuredType or (name, members, flags) being read
        # iterparse keeps memory flat; each finished element is cleared as it ends.
        for event, elem in ET.iterparse(str(path), events=("start", "end")):
            tag = elem.tag.removeprefix(EDM_NS)
            if event == "start":
                if tag == "Schema":
                    namespace = elem.get("Namespace")
                    if elem.get("Alias"):
                        aliases[elem.get("Alias")] = namespace
                elif tag in ("EntityType", "ComplexType") and namespace:
                    current = StructuredType(
                        name=f"{namespace}.{elem.get('Name')}",
                        kind="entity" if tag == "EntityType" else "complex",
                        base=elem.get("BaseType"),
                        abstract=elem.get("Abstract") == "true",
                    )
                    types[current.name] = current
                elif tag == "EnumType" and namespace:
                    current = [f"{namespace}.{elem.get('Name')}", set(), elem.get("IsFlags") == "true"]
                elif tag in ("Property", "NavigationProperty") and isinstance(current, StructuredType):
                    inner, coll = _split_type(elem.get("Type", ""))
                    current.props[elem.get("Name")] = Prop(
                        type=inner,
                        collection=coll,
                        nullable=elem.get("Nullable") != "false",
                        navigation=tag == "NavigationProperty",
                    )
                elif tag == "Member" and isinstance(current, list):
                    current[1].add(elem.get("Name"))
            else:
                if tag in ("EntityType", "ComplexType"):
                    current = None
                elif tag == "EnumType" and isinstance(current, list):
                    enums[current[0]] = EnumType(current[0], frozenset(current[1]), current[2])
                    current = None
                elif tag == "Schema":
                    namespace = None
                if tag not in ("Schema", "DataServices", "Edmx"):
                    elem.clear()

        def qualify(name):
            if not name or name.startswith("Edm."):
                return name
            head, _, rest = name.rpartition(".")
            return f"{aliases.get(head, head)}.{rest}"

        for t in types.values():
            t.base = qualify(t.base)
            for p in t.props.values():
                p.type = qualify(p.type)
        return cls(types, enums)

    def qualify(self, name: str) -> str:
        """`contact`, `graph.contact`, `#microsoft.graph.contact` → `microsoft.graph.contact`."""
        name = name.lstrip("#")
        if name.startswith("graph."):
            return GRAPH + name[len("graph") :]
        if "." not in name:
            return f"{GRAPH}.{name}"
        return name

    def type(self, name: str) -> StructuredType:
        return self.types[self.qualify(name)]

    def properties(self, name: str) -> dict:
        """Every property of a type, its base types' included."""
        name = self.qualify(name)
        cached = self._props_cache.get(name)
        if cached is not None:
            return cached
        chain = []
        seen = set()
        t = self.types.get(name)
        while t is not None and t.name not in seen:
            seen.add(t.name)
            chain.append(t)
            t = self.types.get(t.base) if t.base else None
        props = {}
        for t in reversed(chain):
            props.update(t.props)
        self._props_cache[name] = props
        return props

    def is_derived(self, name: str, base: str) -> bool:
        name, base = self.qualify(name), self.qualify(base)
        seen = set()
        while name and name not in seen:
            if name == base:
                return True
            seen.add(name)
            t = self.types.get(name)
            name = t.base if t else None
        return False

    # --- validation -------------------------------------------------------------------------

    def validate(self, value, type_name: str, path: str = "$") -> list:
        """Problems with one entity or complex value of `type_name` (empty when valid)."""
        problems: list = []
        self._structured(value, self.qualify(type_name), path, problems, depth=0)
        return problems

    def validate_collection(self, body, type_name: str, path: str = "$") -> list:
        """Problems with a collection response (`{"value": [...], "@odata.nextLink": …}`)."""
        problems: list = []
        if not isinstance(body, dict):
            return [f"{path}: a collection response must be an object, got {_kind(body)}"]
        for key in body:
            if key != "value" and not key.startswith("@"):
                problems.append(f"{path}: unexpected member {key!r} in a collection response")
        items = body.get("value")
        if not isinstance(items, list):
            return problems + [f"{path}.value: must be an array, got {_kind(items)}"]
        for i, item in enumerate(items):
            self._structured(item, self.qualify(type_name), f"{path}.value[{i}]", problems, depth=0)
        return problems

    def _structured(self, value, type_name, path, problems, depth):
        if depth > 32:
            problems.append(f"{path}: nested deeper than 32 levels")
            return
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object of type {type_name}, got {_kind(value)}")
            return
        declared = value.get("@odata.type")
        if declared is not None:
            if not isinstance(declared, str):
                problems.append(f"{path}.@odata.type: must be a string")
            else:
                actual = self.qualify(declared)
                if actual not in self.types:
                    problems.append(f"{path}.@odata.type: unknown type {declared!r}")
                elif not self.is_derived(actual, type_name):
                    problems.append(f"{path}.@odata.type: {declared!r} is not a {type_name}")
                else:
                    type_name = actual
        if type_name not in self.types:
            problems.append(f"{path}: unknown type {type_name}")
            return
        props = self.properties(type_name)
        removed = "@removed" in value
        for key, v in value.items():
            if key.startswith("@"):
                if key == "@removed":
                    _check_removed(v, f"{path}.@removed", problems)
                continue
            name, at, _annotation = key.partition("@")
            prop = props.get(name)
            if prop is None:
                problems.append(f"{path}: {type_name.removeprefix(GRAPH + '.')} has no property {name!r}")
                continue
            if at:
                continue  # a property annotation such as `name@odata.type`
            self._value(v, prop, f"{path}.{name}", problems, depth)
        if removed and "id" in props and "id" not in value:
            problems.append(f"{path}: an @removed entry must carry its id")

    def _value(self, v, prop, path, problems, depth):
        if v is None:
            if not prop.nullable or prop.collection:
                problems.append(f"{path}: null is not allowed here")
            return
        if prop.collection:
            if not isinstance(v, list):
                problems.append(f"{path}: expected an array, got {_kind(v)}")
                return
            for i, item in enumerate(v):
                if item is None:
                    problems.append(f"{path}[{i}]: null in a collection")
                else:
                    self._single(item, prop.type, f"{path}[{i}]", problems, depth)
        else:
            self._single(v, prop.type, path, problems, depth)

    def _single(self, v, type_name, path, problems, depth):
        if type_name.startswith("Edm."):
            problem = _check_primitive(v, type_name)
            if problem:
                problems.append(f"{path}: {problem}")
        elif type_name in self.enums:
            enum = self.enums[type_name]
            if not isinstance(v, str):
                problems.append(f"{path}: {type_name} expects a member name, got {_kind(v)}")
                return
            names = [s.strip() for s in v.split(",")] if enum.flags else [v]
            for n in names:
                if n not in enum.members:
                    short = type_name.removeprefix(GRAPH + ".")
                    problems.append(f"{path}: {n!r} is not a member of {short} {sorted(enum.members)}")
        elif type_name in self.types:
            self._structured(v, type_name, path, problems, depth + 1)
        else:
            problems.append(f"{path}: unknown type {type_name}")


def _kind(v) -> str:
    return "null" if v is None else type(v).__name__


def _check_removed(v, path, problems):
    if not isinstance(v, dict) or v.get("reason") not in ("deleted", "changed"):
        problems.append(f"{path}: must be {{\"reason\": \"deleted\" | \"changed\"}}, got {v!r}")


_DATETIMEOFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?(Z|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DURATION = re.compile(r"^-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_INT_RANGES = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}


def _check_primitive(v, type_name):
    """A problem with one primitive value, or None."""
    if type_name in ("Edm.Untyped", "Edm.Stream"):
        return None
    if type_name == "Edm.Boolean":
        return None if isinstance(v, bool) else f"Edm.Boolean expects true or false, got {v!r}"
    if type_name in _INT_RANGES:
        low, high = _INT_RANGES[type_name]
        if isinstance(v, bool) or not isinstance(v, int):
            return f"{type_name} expects an integer, got {v!r}"
        return None if low <= v <= high else f"{v} is out of range for {type_name}"
    if type_name in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        if isinstance(v, str) and v in ("NaN", "INF", "-INF") and type_name != "Edm.Decimal":
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{type_name} expects a number, got {v!r}"
        return None
    if not isinstance(v, str):
        return f"{type_name} expects a string, got {v!r}"
    checks = {
        "Edm.String": None,
        "Edm.DateTimeOffset": _DATETIMEOFFSET,
        "Edm.Date": _DATE,
        "Edm.TimeOfDay": _TIME,
        "Edm.Guid": _GUID,
        "Edm.Duration": _DURATION,
        "Edm.Binary": _BASE64,
    }
    if type_name not in checks:
        return f"unknown primitive type {type_name}"
    pattern = checks[type_name]
    if pattern is not None and not pattern.match(v):
        return f"{v!r} is not a valid {type_name}"
    return None


def validate_error(body) -> list:
    """Problems with a Graph error body: `{"error": {"code": str, "message": str, …}}`."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return [f"an error body must be {{\"error\": {{…}}}}, got {str(body)[:200]}"]
    err = body["error"]
    problems = []
    for key in ("code", "message"):
        if not isinstance(err.get(key), str) or not err.get(key):
            problems.append(f"error.{key} must be a non-empty string, got {err.get(key)!r}")
    inner = err.get("innerError", err.get("innererror"))
    if inner is not None and not isinstance(inner, dict):
        problems.append("error.innerError must be an object")
    return problems


@lru_cache(maxsize=1)
def schema() -> Schema:
    if not available():
        raise RuntimeError(missing_message())
    return Schema.parse(schema_dir() / CSDL_FILE)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    if not available():
        print(f"SKIPPED: {missing_message()}")
        return SKIPPED
    body = json.loads(Path(argv[2]).read_text(encoding="utf-8"))
    s = schema()
    if isinstance(body, dict) and isinstance(body.get("value"), list) and "id" not in body:
        problems = s.validate_collection(body, argv[1])
    else:
        problems = s.validate(body, argv[1])
    print(*problems, sep="\n")
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
