"""Repository metadata in the GitHub emulation: `GET /repos/{owner}/{repo}` with its
`private`, `visibility` and `security_and_analysis` (what exposure.scan asks: is the
repository public, are secret scanning and push protection on)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Route, route
from keyresponse.sandbox.github_common import repo
from keyresponse.sandbox.github_org import minimal_repository

_OFF = {"status": "disabled"}


async def get_repo(call: Call) -> Response:
    if isinstance(r := repo(call), Response):
        return r
    body = minimal_repository(call.base_url(), r, call.state.github["org"]["id"])
    body.update({
        "visibility": r.get("visibility") or ("private" if r["private"] else "public"),
        "default_branch": (r.get("branches") or ["main"])[0], "archived": False, "disabled": False,
        "pushed_at": r.get("pushed_at") or r["created_at"], "updated_at": r.get("pushed_at") or r["created_at"],
        "security_and_analysis": r.get("security_and_analysis") or {
            "secret_scanning": _OFF, "secret_scanning_push_protection": _OFF},
    })
    return JSONResponse(body)


def routes() -> list[Route]:
    return [route("GET", "/repos/{owner}/{repo}", get_repo)]
