"""Seeded GitHub org, GitLab group and Slack workspace around the OpenAI org.

The places the inventory (see config.py) says the leaked key lives all hold its
current value here, so a redeploy is an update, as in real life.
"""

from __future__ import annotations

import random
import string
from typing import Any

from keyresponse.sandbox import ghcrypto
from keyresponse.sandbox.seed_usage import DAY
from keyresponse.sandbox.state import ALNUM, UPPER, URLSAFE, State, iso

# repo name -> (id, environments, workflows)
REPOS = {
    "chatbot": (700101, ["production", "staging"], {"deploy.yml": 880001, "ci.yml": 880002}),
    "worker": (700102, [], {"deploy.yml": 880011}),
    "billing-api": (700103, ["production"], {"deploy.yml": 880021}),
    "website": (700104, [], {"pages.yml": 880031}),
}
ORG = "acme"
LIMITED_DENIED = "acme/billing-api"
SLACK_CHANNELS = [  # name, member, archived
    ("incidents", True, False),
    ("keyresponse-drills", True, False),
    ("general", True, False),
    ("random", False, False),
    ("old-alerts", True, True),
]


def _tok(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def seed(rng: random.Random, st: State) -> None:
    keys = {k["name"]: k["value"] for k in st.keys.values()}
    creds = st.credentials
    creds["GITHUB_TOKEN"] = "gh" + "p_" + _tok(rng, 36)
    creds["GITHUB_TOKEN_LIMITED"] = "gh" + "p_" + _tok(rng, 36)
    creds["GITLAB_TOKEN"] = "gl" + "pat-" + _tok(rng, 20, URLSAFE)
    digits = string.digits
    creds["SLACK_BOT_TOKEN"] = "xo" + "xb-" + f"{_tok(rng, 12, digits)}-{_tok(rng, 13, digits)}-{_tok(rng, 24)}"
    _github(rng, st, keys)
    _gitlab(rng, st, keys)
    _slack(rng, st)


def _github(rng: random.Random, st: State, keys: dict[str, str]) -> None:
    full = [f"{ORG}/{name}" for name in REPOS]
    st.github = {
        "org": {"login": ORG, "id": 9100001},
        "repos": {
            f"{ORG}/{name}": {
                "id": rid, "owner": ORG, "name": name, "full_name": f"{ORG}/{name}", "private": True,
                "environments": envs, "workflows": workflows, "branches": ["main", "develop"],
                "created_at": iso(st.started_at - 400 * DAY),
            }
            for name, (rid, envs, workflows) in REPOS.items()
        },
        "tokens": {
            st.credentials["GITHUB_TOKEN"]: {"name": "full", "repos": None, "org_admin": True},
            st.credentials["GITHUB_TOKEN_LIMITED"]: {
                "name": "limited", "repos": [r for r in full if r != LIMITED_DENIED], "org_admin": True
            },
        },
        "keys": {}, "key_archive": {}, "secrets": {}, "dispatches": [],
    }
    # the chatbot's repository is public, with no secret scanning: where the leaked key was committed
    off, on = {"status": "disabled"}, {"status": "enabled"}
    for full_name, r in st.github["repos"].items():
        public = full_name == f"{ORG}/chatbot"
        r.update(private=not public, visibility="public" if public else "private",
                 security_and_analysis={"secret_scanning": off if public else on,
                                        "secret_scanning_push_protection": off if public else on})
    scopes = [f"org:{ORG}"]
    for repo in full:
        scopes += [f"repo:{repo}", f"dependabot:{repo}"]
        scopes += [f"env:{repo}:{env}" for env in st.github["repos"][repo]["environments"]]
    for scope in scopes:
        ghcrypto.issue_key(st, scope)
        st.github["secrets"][scope] = {}
    leaked, staging = keys["chatbot-prod"], keys["chatbot-staging"]
    chatbot, worker = st.github["repos"]["acme/chatbot"], st.github["repos"]["acme/worker"]
    seeded: list[tuple[str, str, str, dict[str, Any]]] = [
        ("repo:acme/chatbot", "OPENAI_API_KEY", leaked, {}),
        ("repo:acme/chatbot", "SENTRY_DSN", f"https://{_tok(rng, 32, '0123456789abcdef')}@o1.ingest.sentry.example/4", {}),
        ("env:acme/chatbot:production", "OPENAI_API_KEY", leaked, {}),
        ("env:acme/chatbot:staging", "OPENAI_API_KEY", staging, {}),
        ("org:acme", "OPENAI_API_KEY", leaked,
         {"visibility": "selected", "selected_repository_ids": [chatbot["id"], worker["id"]]}),
        ("org:acme", "NPM_TOKEN", _tok(rng, 36), {"visibility": "private", "selected_repository_ids": []}),
        ("repo:acme/worker", "REDIS_URL", f"redis://:{_tok(rng, 24)}@redis.internal.example:6379/0", {}),
        ("repo:acme/billing-api", "STRIPE_API_KEY", "rk_" + "test_" + _tok(rng, 32), {}),
        ("dependabot:acme/chatbot", "NPM_TOKEN", _tok(rng, 36), {}),
    ]
    for scope, name, value, extra in seeded:
        encrypted, key_id = ghcrypto.encrypt(st, scope, value)
        created = st.started_at - rng.randrange(90, 200) * DAY
        st.github["secrets"][scope][name] = {
            "name": name, "encrypted_value": encrypted, "key_id": key_id,
            "created_at": iso(created), "updated_at": iso(created + rng.randrange(1, 60) * DAY), **extra,
        }


def _variable(key: str, value: str, scope: str = "*", *, masked: bool = True, protected: bool = False) -> dict[str, Any]:
    return {
        "variable_type": "env_var", "key": key, "value": value, "protected": protected, "masked": masked,
        "hidden": False, "raw": True, "environment_scope": scope, "description": None,
    }


def _gitlab(rng: random.Random, st: State, keys: dict[str, str]) -> None:
    st.gitlab = {
        "user": {"id": 3101, "username": "keyresponse-bot", "name": "keyresponse bot", "state": "active"},
        "tokens": [st.credentials["GITLAB_TOKEN"]],
        "groups": {"7": {"id": 7, "path": ORG, "name": "Acme", "full_path": ORG}},
        "projects": {
            "42": {"id": 42, "path": "acme/chatbot", "name": "chatbot", "branches": ["main", "develop"]},
            "43": {"id": 43, "path": "acme/worker", "name": "worker", "branches": ["main"]},
        },
        "variables": {
            "project:42": [
                _variable("OPENAI_API_KEY", keys["chatbot-prod"], "*"),
                _variable("OPENAI_API_KEY", keys["chatbot-staging"], "staging"),
                _variable("SENTRY_ENVIRONMENT", "production", "*", masked=False),
            ],
            "project:43": [_variable("LOG_LEVEL", "info", masked=False)],
            "group:7": [_variable("DEPLOY_REGION", "eu-west-1", masked=False, protected=True)],
        },
        "pipelines": [],
        "next_pipeline_id": 5001 + rng.randrange(100),
    }


def _slack(rng: random.Random, st: State) -> None:
    bot_user = "U0" + _tok(rng, 9, UPPER)
    channels = {}
    for name, member, archived in SLACK_CHANNELS:
        cid = "C0" + _tok(rng, 9, UPPER)
        channels[cid] = {
            "id": cid, "name": name, "created": st.started_at - 300 * DAY, "creator": "U0" + _tok(rng, 9, UPPER),
            "is_member": member, "is_archived": archived, "is_private": False, "is_general": name == "general",
        }
    st.slack = {
        "team": {"id": "T0" + _tok(rng, 9, UPPER), "name": "Acme", "domain": "acme-sandbox"},
        "bot": {"user_id": bot_user, "bot_id": "B0" + _tok(rng, 9, UPPER), "app_id": "A0" + _tok(rng, 9, UPPER),
                "name": "keyresponse"},
        "tokens": [st.credentials["SLACK_BOT_TOKEN"]],
        "channels": channels,
        "messages": [],
        "last_ts": 0.0,
    }
