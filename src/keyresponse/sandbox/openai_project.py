"""A project's stored resources, read with one of its keys: files, vector stores,
batches, fine-tuning jobs and assistants (the project API, not the organization's).

Each list answers the objects of the calling key's project, newest first (`order=asc`
where the real endpoint takes it), cursor-paged by `after` like every OpenAI list.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Route, route
from keyresponse.sandbox.openai_common import error, page, project_key

# path -> (state kind, the read scope a restricted key needs, takes `order`)
LISTS = {
    "/files": ("files", "api.files.read", True),
    "/vector_stores": ("vector_stores", "api.vector_stores.read", True),
    "/batches": ("batches", "api.batch.read", False),
    "/fine_tuning/jobs": ("fine_tuning_jobs", "api.fine_tuning.jobs.read", False),
    "/assistants": ("assistants", "api.assistants.read", True),
}


def _handler(path: str) -> Any:
    kind, scope, ordered = LISTS[path]

    async def handler(call: Call) -> Response:
        if isinstance(key := project_key(call, scope), Response):
            return key
        order = call.request.query_params.get("order", "desc") if ordered else "desc"
        if order not in ("asc", "desc"):
            return error(400, "Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
        items = [{k: v for k, v in obj.items() if k != "project_id"}
                 for obj in (call.state.resources.get(kind) or {}).values() if obj["project_id"] == key["project_id"]]
        items.sort(key=lambda o: (o["created_at"], o["id"]), reverse=order == "desc")
        body = page(call, items)
        return body if isinstance(body, Response) else JSONResponse(body)

    handler.__name__ = "list_" + kind
    return handler


def routes() -> list[Route]:
    return [route("GET", path, _handler(path)) for path in LISTS]
