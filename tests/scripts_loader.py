"""Load a file under scripts/ as a module in tests. scripts/ is a folder of command-line
tools, not a package, so mypy and pytest must not see one file under two module names."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(relative_path: str) -> ModuleType:
    """scripts/RELATIVE_PATH as a module named after the file, registered in sys.modules
    (dataclasses resolve a module's annotations through it)."""
    path = SCRIPTS / relative_path
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
