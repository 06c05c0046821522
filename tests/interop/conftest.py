"""Makes the suite's shared modules (ews_schema) importable from every folder, and reports once
whether Microsoft's EWS schema was found: without it the schema checks are skipped, and say so."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ews_schema  # noqa: E402


def pytest_report_header(config):
    if ews_schema.available():
        return f"EWS schema: {ews_schema.schema_dir()}"
    return f"EWS schema: MISSING, schema validation skipped ({ews_schema.missing_message()})"
