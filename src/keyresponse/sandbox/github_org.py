"""GitHub organization secrets, with visibility and selected repositories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Route, route
from keyresponse.sandbox.github_common import (
    delete_secret,
    error,
    get_secret,
    list_secrets,
    org,
    paginate,
    public_key,
    put_secret,
)

VISIBILITIES = ("all", "private", "selected")
# minimal-repository's required URL fields, as (field, path suffix)
_URLS = [
    ("archive_url", "/{archive_format}{/ref}"), ("assignees_url", "/assignees{/user}"),
    ("blobs_url", "/git/blobs{/sha}"), ("branches_url", "/branches{/branch}"),
    ("collaborators_url", "/collaborators{/collaborator}"), ("comments_url", "/comments{/number}"),
    ("commits_url", "/commits{/sha}"), ("compare_url", "/compare/{base}...{head}"),
    ("contents_url", "/contents/{+path}"), ("contributors_url", "/contributors"),
    ("deployments_url", "/deployments"), ("downloads_url", "/downloads"), ("events_url", "/events"),
    ("forks_url", "/forks"), ("git_commits_url", "/git/commits{/sha}"), ("git_refs_url", "/git/refs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"), ("hooks_url", "/hooks"),
    ("issue_comment_url", "/issues/comments{/number}"), ("issue_events_url", "/issues/events{/number}"),
    ("issues_url", "/issues{/number}"), ("keys_url", "/keys{/key_id}"), ("labels_url", "/labels{/name}"),
    ("languages_url", "/languages"), ("merges_url", "/merges"), ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"), ("pulls_url", "/pulls{/number}"),
    ("releases_url", "/releases{/id}"), ("stargazers_url", "/stargazers"), ("statuses_url", "/statuses/{sha}"),
    ("subscribers_url", "/subscribers"), ("subscription_url", "/subscription"), ("tags_url", "/tags"),
    ("teams_url", "/teams"), ("trees_url", "/git/trees{/sha}"),
]


def minimal_repository(base: str, r: dict[str, Any], org_id: int) -> dict[str, Any]:
    api = f"{base}/repos/{r['full_name']}"
    owner_api = f"{base}/users/{r['owner']}"
    owner = {
        "login": r["owner"], "id": org_id, "node_id": f"O_{org_id}", "avatar_url": f"https://avatars.example/{org_id}",
        "gravatar_id": "", "url": owner_api, "html_url": f"https://github.com/{r['owner']}",
        "followers_url": owner_api + "/followers", "following_url": owner_api + "/following{/other_user}",
        "gists_url": owner_api + "/gists{/gist_id}", "starred_url": owner_api + "/starred{/owner}{/repo}",
        "subscriptions_url": owner_api + "/subscriptions", "organizations_url": owner_api + "/orgs",
        "repos_url": owner_api + "/repos", "events_url": owner_api + "/events{/privacy}",
        "received_events_url": owner_api + "/received_events", "type": "Organization", "site_admin": False,
    }
    out = {"id": r["id"], "node_id": f"R_{r['id']}", "name": r["name"], "full_name": r["full_name"],
           "owner": owner, "private": r["private"], "html_url": f"https://github.com/{r['full_name']}",
           "description": None, "fork": False, "url": api, "created_at": r["created_at"]}
    out.update({name: api + suffix for name, suffix in _URLS})
    return out


def _repos_by_id(call: Call) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in call.state.github["repos"].values()}


def _scope(call: Call) -> str:
    return f"org:{call.state.github['org']['login']}"


async def _with_org(call: Call, op: Callable[[Call, str], Awaitable[Response]]) -> Response:
    if isinstance(o := org(call), Response):
        return o
    return await op(call, _scope(call))


async def list_org_secrets(call: Call) -> Response:
    return await _with_org(call, list_secrets)


async def org_public_key(call: Call) -> Response:
    return await _with_org(call, public_key)


async def get_org_secret(call: Call) -> Response:
    return await _with_org(call, get_secret)


async def delete_org_secret(call: Call) -> Response:
    return await _with_org(call, delete_secret)


async def put_org_secret(call: Call) -> Response:
    if isinstance(o := org(call), Response):
        return o
    try:
        body = await call.body()
    except ValueError:
        return error(400)
    visibility = body.get("visibility")
    if visibility not in VISIBILITIES:
        return error(422, "Invalid request.\n\n\"visibility\" must be one of all, private, selected.")
    ids = body.get("selected_repository_ids")
    if ids and visibility != "selected":
        return error(422, "selected_repository_ids can only be given when visibility is 'selected'.")
    if ids is None:  # an update that does not name repositories keeps the selection it had
        existing = call.state.github["secrets"][_scope(call)].get(call.params["secret_name"].upper())
        ids = existing["selected_repository_ids"] if existing and visibility == "selected" else []
    known = _repos_by_id(call)
    if not isinstance(ids, list) or any(not isinstance(i, int) or i not in known for i in ids):
        return error(422, "Invalid request.\n\nselected_repository_ids must name repositories of the organization.")
    return await put_secret(call, _scope(call), {"visibility": visibility, "selected_repository_ids": list(ids)})


def _org_secret(call: Call) -> dict[str, Any] | Response:
    if isinstance(o := org(call), Response):
        return o
    s = call.state.github["secrets"][_scope(call)].get(call.params["secret_name"].upper())
    return error(404) if s is None else s


async def list_selected(call: Call) -> Response:
    if isinstance(s := _org_secret(call), Response):
        return s
    known = _repos_by_id(call)
    base, org_id = call.base_url(), call.state.github["org"]["id"]
    repos = [minimal_repository(base, known[i], org_id) for i in s["selected_repository_ids"] if i in known]
    paged = paginate(call, repos)
    if isinstance(paged, Response):
        return paged
    return JSONResponse({"total_count": len(repos), "repositories": paged[0]}, headers=paged[1])


async def set_selected(call: Call) -> Response:
    if isinstance(s := _org_secret(call), Response):
        return s
    try:
        body = await call.body()
    except ValueError:
        return error(400)
    ids = body.get("selected_repository_ids")
    known = _repos_by_id(call)
    if not isinstance(ids, list) or any(not isinstance(i, int) or i not in known for i in ids):
        return error(422, 'Invalid request.\n\n"selected_repository_ids" must be a list of repository ids.')
    if s["visibility"] != "selected":
        return error(409, "The secret's visibility is not 'selected'.")
    s["selected_repository_ids"] = list(dict.fromkeys(ids))
    return Response(status_code=204)


def _one_repo(call: Call) -> tuple[dict[str, Any], int] | Response:
    if isinstance(s := _org_secret(call), Response):
        return s
    try:
        rid = int(call.params["repository_id"])
    except ValueError:
        return error(404)
    if rid not in _repos_by_id(call):
        return error(404)
    if s["visibility"] != "selected":
        return error(409, "The secret's visibility is not 'selected'.")
    return s, rid


async def add_selected(call: Call) -> Response:
    if isinstance(found := _one_repo(call), Response):
        return found
    s, rid = found
    if rid not in s["selected_repository_ids"]:
        s["selected_repository_ids"].append(rid)
    return Response(status_code=204)


async def remove_selected(call: Call) -> Response:
    if isinstance(found := _one_repo(call), Response):
        return found
    s, rid = found
    s["selected_repository_ids"] = [i for i in s["selected_repository_ids"] if i != rid]
    return Response(status_code=204)


def routes() -> list[Route]:
    base = "/orgs/{org}/actions/secrets"
    one = base + "/{secret_name}"
    return [
        route("GET", base, list_org_secrets),
        route("GET", base + "/public-key", org_public_key),
        route("GET", one, get_org_secret),
        route("PUT", one, put_org_secret),
        route("DELETE", one, delete_org_secret),
        route("GET", one + "/repositories", list_selected),
        route("PUT", one + "/repositories", set_selected),
        route("PUT", one + "/repositories/{repository_id}", add_selected),
        route("DELETE", one + "/repositories/{repository_id}", remove_selected),
    ]
