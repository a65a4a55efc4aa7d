"""The running rule set, validation of a candidate rule file, and reload (admin)."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Body, HTTPException, status

from api.deps import AdminKey, ReadKey, ServicesDep
from api.schemas import RuleReloadOut, RuleSetOut, RuleValidationOut, errors
from engine.errors import RuleError
from rules.loader import compile_rules, ruleset_version
from rules.names import known_names

CANDIDATE = "candidate.yaml"

router = APIRouter(prefix="/rules", tags=["rules"])


@router.get(
    "",
    summary="The rule set this API process runs, and its version",
    response_model=RuleSetOut,
    responses=errors(401, 403),
)
async def list_rules(svc: ServicesDep, _: ReadKey) -> dict[str, Any]:
    current = svc.rules.current
    return {
        "version": current.version,
        "source": current.source,
        "last_reload_error": svc.rules.last_error,
        "rules": [r.spec.model_dump(mode="json") for r in current.rules],
    }


@router.post(
    "/validate",
    summary="Validate one rule file (YAML) without loading it",
    description="The body is the YAML text of one rule file. 200 with the rule count and the "
    "version it would have; 422 with the rule, line and reason of the first problem.",
    response_model=RuleValidationOut,
    responses=errors(400, 401, 403, 422),
)
def validate_rules(
    svc: ServicesDep,
    _: ReadKey,
    content: str = Body(..., media_type="application/yaml", max_length=256 * 1024),
) -> dict[str, Any]:
    raw = content.encode("utf-8", errors="replace")
    try:
        ruleset = compile_rules(
            [(CANDIDATE, raw)],
            known_names(svc.rules.model_names),
            version=ruleset_version([(CANDIDATE, raw)]),
            source="candidate",
        )
    except RuleError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {"file": exc.file, "rule": exc.rule, "line": exc.line, "reason": exc.reason},
        ) from None
    except (yaml.YAMLError, RecursionError) as exc:  # what the loader itself lets through
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {"file": CANDIDATE, "rule": None, "line": None, "reason": f"not valid YAML: {exc}"},
        ) from None
    return {"valid": True, "rules": len(ruleset.rules), "version": ruleset.version}


@router.post(
    "/reload",
    summary="Reload this API process's rule folder now (admin)",
    description="Workers reload the same folder by themselves every few seconds; this makes "
    "the API's view current at once. A folder that does not load whole is refused and the "
    "running set stays.",
    response_model=RuleReloadOut,
    responses=errors(401, 403),
)
async def reload_rules(svc: ServicesDep, _: AdminKey) -> dict[str, Any]:
    changed = svc.rules.check()
    return {
        "reloaded": changed,
        "version": svc.rules.current.version,
        "error": svc.rules.last_error,
    }
