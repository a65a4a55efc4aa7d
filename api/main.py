"""The API's app factory: settings in, a FastAPI app out. Separate process from the workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import parse_api_keys
from api.deps import Services
from api.routes import customers, health, rules
from engine.config import Settings
from engine.ports import StateStore
from engine.wiring import redis_store
from online_models.catalog import model_names
from rules.reload import RuleSetHolder


def create_app(settings: Settings, store: StateStore | None = None) -> FastAPI:
    services = Services(
        settings=settings,
        store=store or redis_store(settings),
        rules=RuleSetHolder(settings.rules_dir, model_names()),
        api_keys=parse_api_keys(settings.api.api_keys.get_secret_value()),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await services.store.close()

    app = FastAPI(
        title="Vigil API",
        version="0.1.0",
        description="Customers, decisions, rules and health of the Vigil decisioning engine. "
        "Every route but /health/* and /metrics needs `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
    )
    app.state.services = services
    for module in (health, customers, rules):
        app.include_router(module.router)
    return app
