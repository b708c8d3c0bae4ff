"""``POST /v1/query``: one statement as the caller, as JSON or streamed as NDJSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from sqlgate.api import ndjson
from sqlgate.api.deps import ApiDep, CurrentPrincipal
from sqlgate.api.models import QueryRequest, QueryResult
from sqlgate.api.problems import problem_body
from sqlgate.api.running import Statement
from sqlgate.errors import SqlgateError

router = APIRouter(tags=["query"])

_STREAM_DOC = (
    'NDJSON (`Accept: application/x-ndjson`): a `{"columns": [...]}` line, one JSON array per row, then '
    '`{"row_count": n, "duration_ms": t}`; an error after the first line arrives as `{"error": problem}`.'
)


@router.post(
    "/v1/query",
    response_model=QueryResult,
    responses={
        200: {
            "description": "The result (JSON), or rows streamed as NDJSON.",
            "content": {ndjson.MEDIA_TYPE: {"schema": {"type": "string", "description": _STREAM_DOC}}},
        }
    },
)
async def query(body: QueryRequest, request: Request, principal: CurrentPrincipal, api: ApiDep) -> Response:
    """Run one SQL statement with your identity: policy, guardrails, masking and audit as on the wire proxy.

    Errors: 401 bad token, 403 policy or guardrail denial (`rule` names it), 400 SQL error (`sqlstate`;
    `error_code` too on MySQL), 504 statement timeout.
    """
    # Valid plain JSON requests are served by sqlgate.api.fastpath in these same steps; the rest come here.
    job = await api.engine.prepare(principal, statement_of(body))
    if ndjson.MEDIA_TYPE in request.headers.get("accept", ""):
        chunks = api.engine.stream(job)
        first = await anext(chunks)  # errors before the first row are ordinary problem responses
        return StreamingResponse(_guarded(first, chunks), media_type=ndjson.MEDIA_TYPE)
    return Response(ndjson.dumps(await api.engine.run(job)), media_type="application/json")


def statement_of(body: QueryRequest) -> Statement:
    """The statement a request body asks for."""
    return Statement(body.database, body.sql, body.params, body.role, body.max_rows, body.timeout_ms)


async def _guarded(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    try:
        async for chunk in chunks:
            yield chunk
    except SqlgateError as exc:
        yield ndjson.dumps_line({"error": problem_body(exc)})
