"""Makes the suite's shared modules (ews_schema, graph_schema) importable from every folder, and
reports once whether Microsoft's EWS and Graph schemas were found: without them the schema
checks are skipped, and say so."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ews_schema  # noqa: E402
import graph_schema  # noqa: E402


def pytest_report_header(config):
    if ews_schema.available():
        ews = f"EWS schema: {ews_schema.schema_dir()}"
    else:
        ews = f"EWS schema: MISSING, schema validation skipped ({ews_schema.missing_message()})"
    if graph_schema.available():
        graph = f"Graph schema: {graph_schema.schema_dir() / graph_schema.CSDL_FILE}"
    else:
        graph = f"Graph schema: MISSING, schema validation skipped ({graph_schema.missing_message()})"
    return [ews, graph]
