"""The pure packages import no Kafka, Redis or web code: their logic runs anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "engine",
    "features/definitions.py",
    "features/buckets.py",
    "rules",
    "actions",
    "online_models",
]
IMPURE_FILES = {"engine/wiring.py", "engine/cli.py"}
FORBIDDEN = (
    "faust",
    "aiokafka",
    "redis",
    "fastapi",
    "uvicorn",
    "starlette",
    "httpx",
    "streams",
    "api",
    "services",
)


def python_files() -> list[Path]:
    out: list[Path] = []
    for entry in PURE:
        path = ROOT / entry
        out.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return [p for p in out if str(p.relative_to(ROOT)) not in IMPURE_FILES]


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_packages_import_no_io_code() -> None:
    files = python_files()
    assert len(files) > 10
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & set(FORBIDDEN))
        for p in files
        if imported_roots(p) & set(FORBIDDEN)
    }
    assert offenders == {}
