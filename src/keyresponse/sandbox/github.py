"""GitHub emulation, mounted at /github: Actions secrets (repository,
environment, organization), Dependabot repository secrets, workflow dispatch (204,
or 200 with the run under `return_run_details`). A token seeded with `permissions`
is fine-grained: it gets 403 for what it lacks.

Follows github-actions-secrets.openapi.yaml. Values are write-only: PUT takes a
libsodium sealed box made with the scope's public key; anything else is a 422.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox import github_org, github_repos
from keyresponse.sandbox.app import Call, Service, route
from keyresponse.sandbox.github_common import (
    delete_secret,
    error,
    finish,
    get_secret,
    list_secrets,
    public_key,
    put_secret,
    repo,
    service_error,
)

PREFIX = "/github"
Op = Callable[[Call, str], Awaitable[Response]]
# What a fine-grained token (or GitHub App) needs per scope, as GitHub documents it for each
# endpoint (docs.github.com/rest/actions/secrets, /rest/dependabot/secrets): environment
# secrets need "Environments" as well as "Secrets".
NEEDS = {"repo": ("secrets",), "env": ("environments", "secrets"), "dependabot": ("dependabot_secrets",)}
_LEVEL = {"read": 1, "write": 2}


def _not_permitted(call: Call, kind: str) -> Response | None:
    """403 for a fine-grained token lacking a permission the endpoint needs (classic tokens,
    seeded without `permissions`, carry their scopes), naming them the way GitHub does."""
    who = call.state.github["tokens"].get(call.request.headers.get("authorization", "").partition(" ")[2].strip())
    granted = (who or {}).get("permissions")
    if granted is None:
        return None
    level = "read" if call.request.method in ("GET", "HEAD") else "write"
    needed = NEEDS[kind]
    if all(_LEVEL.get(granted.get(p, ""), 0) >= _LEVEL[level] for p in needed):
        return None
    r = error(403, "Resource not accessible by personal access token")
    r.headers["x-accepted-github-permissions"] = ",".join(f"{p}={level}" for p in needed)
    return r


def _scoped(kind: str, op: Op) -> Callable[[Call], Awaitable[Response]]:
    """A handler that resolves the path's repo (and environment) to a secret scope, then runs op."""

    async def handler(call: Call) -> Response:
        if isinstance(r := repo(call), Response):
            return r
        if (denied := _not_permitted(call, kind)) is not None:
            return denied
        scope = f"{kind}:{r['full_name']}"
        if kind == "env":
            wanted = call.params["environment_name"].lower()
            env = next((e for e in r["environments"] if e.lower() == wanted), None)
            if env is None:
                return error(404)
            scope += f":{env}"
        return await op(call, scope)

    handler.__name__ = f"{kind}_{op.__name__}"
    return handler


async def dispatch(call: Call) -> Response:
    """Record a workflow_dispatch (the redeploy trigger); nothing actually runs."""
    if isinstance(r := repo(call), Response):
        return r
    wanted = call.params["workflow_id"]
    workflow = next(((f, i) for f, i in r["workflows"].items() if wanted in (f, str(i))), None)
    if workflow is None:
        return error(404)
    try:
        body = await call.body()
    except ValueError:
        return error(400)
    ref = body.get("ref")
    if not isinstance(ref, str) or not ref:
        return error(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
    branch = ref.removeprefix("refs/heads/")
    if branch not in r["branches"]:
        return error(422, f"No ref found for: {ref}")
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict) or len(inputs) > 25:
        return error(422, "Invalid request.\n\ninputs must be an object with at most 25 properties.")
    st = call.state
    run_id = 9000000000 + len(st.github["dispatches"]) + 1
    st.github["dispatches"].append({"repo": r["full_name"], "workflow": workflow[0], "workflow_id": workflow[1],
                                    "ref": ref, "inputs": inputs, "at": time.time(), "run_id": run_id})
    if body.get("return_run_details") is True:
        return JSONResponse({
            "workflow_run_id": run_id,
            "run_url": f"{call.base_url()}/repos/{r['full_name']}/actions/runs/{run_id}",
            "html_url": f"https://github.com/{r['full_name']}/actions/runs/{run_id}",
        })
    return Response(status_code=204)


def service() -> Service:
    repo_path = "/repos/{owner}/{repo}"
    routes = [route("POST", repo_path + "/actions/workflows/{workflow_id}/dispatches", dispatch)]
    for kind, base in (
        ("repo", repo_path + "/actions/secrets"),
        ("env", repo_path + "/environments/{environment_name}/secrets"),
        ("dependabot", repo_path + "/dependabot/secrets"),
    ):
        routes += [
            route("GET", base, _scoped(kind, list_secrets)),
            route("GET", base + "/public-key", _scoped(kind, public_key)),
            route("GET", base + "/{secret_name}", _scoped(kind, get_secret)),
            route("PUT", base + "/{secret_name}", _scoped(kind, put_secret)),
            route("DELETE", base + "/{secret_name}", _scoped(kind, delete_secret)),
        ]
    routes += github_org.routes()
    routes += github_repos.routes()
    return Service("github", PREFIX, routes, service_error, finish)
