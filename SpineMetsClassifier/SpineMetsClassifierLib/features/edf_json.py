"""Regenerate ``Resources/EDF/edf_schema.json`` from ``edf_schema.yaml`` (needs PyYAML).

The YAML is the documented source; the JSON copy lets the Slicer module build its
EDF form choices at load time with the standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from SpineMetsCore.fileio import write_text_atomic

from .resources import EDF_SCHEMA, EDF_SCHEMA_JSON


def schema_json_text(yaml_path: Path = EDF_SCHEMA) -> str:
    """The JSON text of a YAML schema, with a 'generated_from' key naming the source file."""
    import yaml

    data: dict[str, Any] = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    data = {"generated_from": yaml_path.name, **data}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the JSON copy next to the YAML schema."""
    del argv
    write_text_atomic(EDF_SCHEMA_JSON, schema_json_text())
    print(EDF_SCHEMA_JSON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
