"""The running rule set, and validation of a candidate rule file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, HTTPException, status

from api.deps import AdminKey, ReadKey, ServicesDep
from engine.errors import RuleError
from rules.loader import load_rules

router = APIRouter(prefix="/rules", tags=["rules"])


@router.get("", summary="The running rule set and its version")
async def list_rules(svc: ServicesDep, _: ReadKey) -> dict[str, Any]:
    current = svc.rules.current
    return {
        "version": current.version,
        "source": current.source,
        "last_reload_error": svc.rules.last_error,
        "rules": [r.spec.model_dump(mode="json") for r in current.rules],
    }


@router.post("/validate", summary="Validate one rule file (YAML) without loading it")
def validate_rules(
    svc: ServicesDep,
    _: ReadKey,
    content: str = Body(..., media_type="application/yaml", max_length=256 * 1024),
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "candidate.yaml").write_text(content, encoding="utf-8")
        try:
            ruleset = load_rules(Path(tmp), svc.rules.model_names)
        except RuleError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                {"rule": exc.rule, "line": exc.line, "reason": exc.reason},
            ) from None
    return {"valid": True, "rules": len(ruleset.rules), "version": ruleset.version}


@router.post("/reload", summary="Reload the rule folder now (admin)")
async def reload_rules(svc: ServicesDep, _: AdminKey) -> dict[str, Any]:
    changed = svc.rules.check()
    return {
        "reloaded": changed,
        "version": svc.rules.current.version,
        "error": svc.rules.last_error,
    }
