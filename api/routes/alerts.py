"""Alerts as they fire: a page of the alert stream, Server-Sent Events, and a WebSocket.

Every alert has an id in the alert stream (``<ms>-<seq>``). A client that disconnects resumes
after the last id it saw (SSE: the ``Last-Event-ID`` header EventSource sends by itself, or
``?last_event_id=``; WebSocket: ``?last_event_id=``) and misses nothing kept in the retention
window; past it, the first message is a ``gap`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, WebSocket, status
from fastapi.responses import StreamingResponse
from starlette.types import Message, Send
from starlette.websockets import WebSocketDisconnect

from api import metrics
from api.deps import ReadKey, Services, ServicesDep, stream_key
from api.filters import AlertFilter, FilterError
from api.schemas import AlertPageOut, errors
from api.sse import format_id, frame, parse_id, retry_frame
from api.streaming import StreamEvent, client_events

router = APIRouter(prefix="/alerts", tags=["alerts"])

FILTER_HELP = "Repeat the parameter or separate values with commas; any value matches."
TypeQ = Annotated[list[str] | None, Query(description=f"Alert types. {FILTER_HELP}")]
SeverityQ = Annotated[list[str] | None, Query(description=f"Severities. {FILTER_HELP}")]
TierQ = Annotated[list[str] | None, Query(description=f"Customer tiers. {FILTER_HELP}")]
RmQ = Annotated[list[str] | None, Query(description=f"Relationship manager ids. {FILTER_HELP}")]
ID_HELP = "an alert stream id such as 1767225600000-0 (or 0 for the oldest retained)"


def alert_filter(
    type: list[str] | None,
    severity: list[str] | None,
    tier: list[str] | None,
    rm_id: list[str] | None,
) -> AlertFilter:
    try:
        return AlertFilter.parse(type=type, severity=severity, tier=tier, rm_id=rm_id)
    except FilterError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def stream_id(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parsed = parse_id(value)
    if parsed is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} must be {ID_HELP}, not {value[:40]!r}"
        )
    return "0-0" if parsed == (0, 0) else format_id(parsed)


@router.get(
    "",
    summary="A page of the alert stream (for polling clients)",
    description="Reads up to `limit` alert stream entries after `after` (default: the newest "
    "`limit`) and returns those matching the filters, with the position to read on from.",
    response_model=AlertPageOut,
    responses=errors(401, 403, 422, 503),
)
async def list_alerts(
    svc: ServicesDep,
    _: ReadKey,
    type: TypeQ = None,
    severity: SeverityQ = None,
    tier: TierQ = None,
    rm_id: RmQ = None,
    after: Annotated[str | None, Query(max_length=64, description=f"Read after {ID_HELP}")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    flt = alert_filter(type, severity, tier, rm_id)
    start = stream_id("after", after)
    entries = (
        await svc.alert_log.latest(limit)
        if start is None
        else await svc.alert_log.read_after(start, limit)
    )
    first, last = await svc.alert_log.bounds()
    return {
        "alerts": [{"id": e.id, "alert": e.alert} for e in entries if flt.matches(e.alert)],
        "position": entries[-1].id if entries else (start or last or "0-0"),
        "oldest_retained": first,
        "newest": last,
    }


def _event_json(ev: StreamEvent) -> bytes:
    return orjson.dumps(ev.data)


class EventStreamResponse(StreamingResponse):
    """A streaming response that gives up on a client that does not read for ``timeout``
    seconds (its socket buffer stays full): memory per client stays bounded."""

    def __init__(self, content: AsyncIterator[bytes], timeout: float) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.timeout = timeout

    async def stream_response(self, send: Send) -> None:
        async def timed(message: Message) -> None:
            await asyncio.wait_for(send(message), self.timeout)

        try:
            await super().stream_response(timed)
        except TimeoutError:
            metrics.STREAM_DROPPED.labels("sse").inc()


async def _sse(
    svc: Services, flt: AlertFilter, resume: str | None, backlog: int
) -> AsyncIterator[bytes]:
    metrics.STREAM_CLIENTS.labels("sse").inc()
    try:
        yield retry_frame(2000)
        o = svc.options
        async for ev in client_events(
            svc.tail,
            svc.alert_log,
            flt,
            resume,
            backlog,
            o.stream_batch,
            o.stream_heartbeat_seconds,
        ):
            if ev.kind == "alert":
                metrics.STREAM_SENT.labels("sse").inc()
            yield frame(ev.id, ev.kind, _event_json(ev))
    finally:
        metrics.STREAM_CLIENTS.labels("sse").dec()


@router.get(
    "/stream",
    summary="Alerts as they fire (Server-Sent Events)",
    description="`text/event-stream` of `event: alert` messages (`id:` the alert stream id, "
    "`data:` the alert JSON), `event: heartbeat` every few seconds (its `id:` is the position "
    "reached, so a reconnect skips what the filters dropped) and, when resuming from beyond the "
    "retention window, one `event: gap`. Credentials: `Authorization: Bearer <key>` (read "
    "scope) or `?token=` from `POST /auth/stream-token` (browsers' EventSource cannot send "
    "headers). Resume: the `Last-Event-ID` header (EventSource sends it when it reconnects) or "
    "`?last_event_id=`; `0` replays everything retained. Without either, `backlog` newest "
    "retained entries are scanned first.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **errors(401, 403, 422),
    },
)
async def stream_alerts(
    svc: ServicesDep,
    type: TypeQ = None,
    severity: SeverityQ = None,
    tier: TierQ = None,
    rm_id: RmQ = None,
    last_event_id: Annotated[
        str | None, Query(max_length=64, description=f"Resume after {ID_HELP}")
    ] = None,
    backlog: Annotated[int, Query(ge=0, le=1000, description="Newest entries to scan")] = 0,
    token: Annotated[str | None, Query(max_length=1024, description="A stream token")] = None,
    authorization: Annotated[str | None, Header()] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=64)
    ] = None,
) -> StreamingResponse:
    await stream_key(svc, authorization, token)
    flt = alert_filter(type, severity, tier, rm_id)
    resume = stream_id("Last-Event-ID", last_event_id_header) or stream_id(
        "last_event_id", last_event_id
    )
    backlog = min(backlog, svc.options.stream_backlog_max)
    return EventStreamResponse(
        _sse(svc, flt, resume, backlog), svc.options.stream_send_timeout_seconds
    )


@router.websocket("/ws", name="alerts_ws")
async def alerts_ws(websocket: WebSocket) -> None:
    """Alerts as they fire over a WebSocket: the same query parameters as /alerts/stream; one
    JSON text message per event: ``{"event": "alert"|"heartbeat"|"gap", "id": ..., "data":
    {...}}``. Messages from the client are ignored. Closes with 1008 on bad credentials or
    parameters, 1013 when the client does not read within the send timeout."""
    svc: Services = websocket.app.state.services
    q = websocket.query_params
    try:
        await stream_key(svc, websocket.headers.get("authorization"), q.get("token"))
        flt = alert_filter(
            q.getlist("type"), q.getlist("severity"), q.getlist("tier"), q.getlist("rm_id")
        )
        resume = stream_id("last_event_id", q.get("last_event_id"))
        backlog = int(q.get("backlog") or 0)
        if not 0 <= backlog <= 1000:
            raise HTTPException(422, "backlog must be between 0 and 1000")
    except (HTTPException, ValueError) as exc:
        reason = exc.detail if isinstance(exc, HTTPException) else "backlog must be an integer"
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=str(reason)[:120])
        return
    await websocket.accept()
    metrics.STREAM_CLIENTS.labels("ws").inc()
    o = svc.options

    async def pump() -> None:
        async for ev in client_events(
            svc.tail,
            svc.alert_log,
            flt,
            resume,
            min(backlog, o.stream_backlog_max),
            o.stream_batch,
            o.stream_heartbeat_seconds,
        ):
            message = orjson.dumps({"event": ev.kind, "id": ev.id, "data": ev.data}).decode()
            await asyncio.wait_for(websocket.send_text(message), o.stream_send_timeout_seconds)
            if ev.kind == "alert":
                metrics.STREAM_SENT.labels("ws").inc()

    async def drain() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if isinstance(error, TimeoutError):
                metrics.STREAM_DROPPED.labels("ws").inc()
                with contextlib.suppress(Exception):
                    await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER)
            elif error is not None and not isinstance(error, WebSocketDisconnect | OSError):
                raise error
    finally:
        for task in tasks:
            task.cancel()
        metrics.STREAM_CLIENTS.labels("ws").dec()
