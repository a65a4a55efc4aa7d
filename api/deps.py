"""Dependencies of the routes: the app's services and the caller's API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import ApiKey, authenticate
from engine.config import Settings
from engine.ports import StateStore
from rules.reload import RuleSetHolder


@dataclass
class Services:
    settings: Settings
    store: StateStore
    rules: RuleSetHolder
    api_keys: tuple[ApiKey, ...]


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def require(scope: str):  # type: ignore[no-untyped-def]
    def check(
        svc: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        if credentials is None or not credentials.credentials:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = authenticate(credentials.credentials, svc.api_keys)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope not in key.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this API key lacks the {scope!r} scope"
            )
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require("read"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]
