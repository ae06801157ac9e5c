"""The sandbox: a local emulator of the services a key incident touches.

One uvicorn server on 127.0.0.1 (a chosen or free port), state in memory:

    {base}/openai/v1/...        OpenAI organization API + GET /models
    {base}/github/...           GitHub Actions/Dependabot secrets, workflow dispatch
    {base}/gitlab/api/v4/...    GitLab CI/CD variables, pipeline trigger
    {base}/slack/api/...        Slack auth.test, chat.postMessage, chat.update, conversations.info
    {base}/_sandbox/...         control: GET info|state|health|faults|slack/messages,
                                github/secret?scope=&name= (decrypt hook),
                                POST reset|faults, DELETE faults[/ID]

Seeded deterministically (`seed`, default 42) relative to the start time; see
seed.py for the story and `State.truth` for the ground truth.

    sb = start(port=0)              # background thread; returns when accepting
    sb.urls, sb.env, sb.state       # base URLs, credentials, the live State
    sb.reset(); sb.add_fault(...); sb.write_config(dir); sb.stop()

Fault specs
-----------
A dict (or JSON object) with these fields, all but `kind` optional:

    service     "openai" | "github" | "gitlab" | "slack" | "*"           (default "*")
    method      "GET", "PUT", ... or "*"; several as "GET|PUT"          (default "*")
    path        glob on the path below the service prefix, e.g.
                "/organization/projects/*/api_keys*" ("*" also crosses "/");
                or "re:<regex>" (full match). Matched against the raw and the
                decoded path.                                           (default "*")
    kind        latency           sleep latency_ms (+/- jitter_ms, uniform), then serve
                status            answer `status` (default 503) in the service's error
                                  shape, with Retry-After if `retry_after` is set
                hang              never answer: hold until the client gives up, the
                                  server stops, or latency_ms passes; then close
                drop              close the connection without a response
                commit_then_fail  make the change, then answer `status` (default 502)
                commit_then_drop  make the change, then close without a response
                headers_then_reset make the change, send the status line, the
                                  headers and half the body, then reset the
                                  connection (RST): the answer is cut mid-body
                commit_after_timeout  hold the request until the client gives up,
                                  then latency_ms later make the change (a mint that
                                  commits after the client's timeout)
                commit_then_garble make the change and answer its status, with a
                                  body that is not JSON (an HTML page)
                rotate_public_key rotate the GitHub public key of the scope the
                                  request names, then serve it (a stale key_id -> 422)
    status      HTTP status for status / commit_then_fail
    retry_after "1" (seconds), an HTTP date, "date+N" (an HTTP date N seconds
                after the response), or null for no header
    latency_ms, jitter_ms   milliseconds
    count       fire for the next N matching calls, then retire; null = every call
    fraction    probability (0..1) that a matching call is hit (seeded RNG)

On the command line (`--fault`, repeatable) the same as a JSON object or as
`SERVICE:METHOD:PATH:KIND[:key=value,...]`, e.g.

    openai:GET:/models:latency:latency_ms=100
    openai:*:/organization/*:status:status=429,retry_after=1,count=2
    github:PUT:/repos/*/actions/secrets/*:commit_then_fail
    openai:POST:/organization/projects/*/service_accounts:headers_then_reset:count=1
    github:GET:*/public-key:rotate_public_key:count=1

Latency and rotation combine with one deciding fault (the first that matches).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyresponse.sandbox.server import Sandbox
    from keyresponse.sandbox.state import State

__all__ = ["Sandbox", "State", "parse_fault", "serve_forever", "start"]


def start(*, port: int = 0, seed: int = 42, state_file: str | None = None,
          faults: Iterable[str | Mapping[str, Any]] | None = None) -> Sandbox:
    """Start a sandbox in a background daemon thread; returns once it accepts connections."""
    from keyresponse.sandbox.server import start as _start

    return _start(port=port, seed=seed, state_file=state_file, faults=faults)


def serve_forever(port: int = 0, seed: int = 42, state_file: str | None = None,
                  faults: Iterable[str | Mapping[str, Any]] | None = None, json_output: bool = False,
                  write_config: str | None = None) -> int:
    """Body of `keyresponse sandbox`: print URLs and env (JSON on the first line with
    json_output), serve until Ctrl-C/SIGTERM, save state; returns the exit code."""
    from keyresponse.sandbox.server import serve_forever as _serve

    return _serve(port=port, seed=seed, state_file=state_file, faults=faults, json_output=json_output,
                  write_config=write_config)


def parse_fault(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate one fault spec (CLI string, JSON or dict); raises ValueError with the reason."""
    from keyresponse.sandbox.faults import parse

    return parse(spec).to_dict()


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from keyresponse.sandbox.server import Sandbox

        return Sandbox
    if name == "State":
        from keyresponse.sandbox.state import State

        return State
    raise AttributeError(name)
