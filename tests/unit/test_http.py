"""The shared HTTP client: retries, Retry-After, read-only plan mode, what counts as a secret,
and the one boundary that turns every httpx error, while sending or reading the body, into ours."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from keyresponse import http
from keyresponse.errors import AnswerLost, ServiceError, Unreachable
from keyresponse.secret import REDACTOR


def test_only_credential_headers_become_secrets() -> None:
    token = "tok-" + "Q" * 30
    client = http.build_client("github", "https://example.invalid", {
        "Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28",
        "Accept": "application/vnd.github+json"})
    client.close()
    assert REDACTOR.redact(f"created 2022-11-28 as application/vnd.github+json with {token}") == \
        f"created 2022-11-28 as application/vnd.github+json with {REDACTOR.redact(token)}"
    assert token not in REDACTOR.redact(token)


def test_plan_mode_client_refuses_writes() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    client = http.build_client("openai", "https://example.invalid", read_only=True, transport=transport)
    assert client.get("/models").status_code == 200
    with pytest.raises(http.ReadOnlyViolation):
        client.delete("/organization/projects/p/api_keys/k")
    client.close()


def test_retry_after_is_honoured_then_succeeds() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "1"}) if len(calls) == 1 else httpx.Response(200)

    slept: list[float] = []
    transport = http.RetryTransport(httpx.MockTransport(handler), "openai", http.RetryPolicy(), False,
                                    sleep=slept.append)
    with httpx.Client(transport=transport, base_url="https://example.invalid") as client:
        assert client.get("/models").status_code == 200
    assert slept == [1.0] and len(calls) == 2


def test_refused_credential_names_its_env_var() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(
        401, json={"error": {"message": "Incorrect API key", "type": "invalid_request_error", "param": None,
                             "code": "invalid_api_key"}}))
    client = http.build_client("openai", "https://example.invalid", transport=transport,
                               credential_env="OPENAI_ADMIN_KEY")
    err = http.error_for(client.get("/organization/projects"), "openai")
    assert "401 invalid_api_key" in err.message and "$OPENAI_ADMIN_KEY" in (err.hint or "")
    client.close()


# --- errors while the body is read: one boundary around the whole exchange ------------------


class CutBody(httpx.SyncByteStream):
    """A body that sends its first bytes, then fails the way a reset connection does."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"object": "organization.project.service_account", "id": "svc_'
        raise self.exc


def cut_then_whole(calls: list[str], cuts: int = 1, status: int = 200) -> httpx.MockTransport:
    """The first `cuts` answers lose their body half way; later ones are whole."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) <= cuts:
            return httpx.Response(status, headers={"content-length": "400"},
                                  stream=CutBody(httpx.ReadError("[Errno 104] Connection reset by peer")))
        return httpx.Response(status, json={"data": ["whole"]})

    return httpx.MockTransport(handler)


QUICK = http.RetryPolicy(attempts=3, base=0.0, cap=0.0)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_an_idempotent_request_whose_body_is_cut_is_retried(method: str) -> None:
    calls: list[str] = []
    with http.build_client("openai", "https://example.invalid", transport=cut_then_whole(calls),
                           policy=QUICK) as client:
        response = client.request(method, "/organization/projects")
    assert response.status_code == 200 and calls == [method, method]
    if method != "HEAD":
        assert response.json() == {"data": ["whole"]}


def test_a_post_whose_body_is_cut_after_201_is_a_service_error_and_not_retried() -> None:
    calls: list[str] = []
    with http.build_client("openai", "https://example.invalid", transport=cut_then_whole(calls, status=201),
                           policy=QUICK) as client, \
            pytest.raises(ServiceError) as caught:
        client.post("/organization/projects/p/service_accounts", json={"name": "n"})
    err = caught.value
    assert calls == ["POST"]  # its effect is unknown: never sent again blindly
    assert isinstance(err, AnswerLost) and err.status is None  # what key.issue's cleanup catches
    assert "ReadError" in err.message and "POST /organization/projects/p/service_accounts" in err.message
    assert "may have" in (err.hint or "")


def test_a_read_whose_body_is_always_cut_gives_up_with_a_service_error() -> None:
    calls: list[str] = []
    with http.build_client("openai", "https://example.invalid", transport=cut_then_whole(calls, cuts=99),
                           policy=QUICK) as client, \
            pytest.raises(AnswerLost) as caught:
        client.get("/models")
    assert len(calls) == 3 and "after 3 attempts" in caught.value.message


def test_an_answer_that_cannot_be_decoded_is_a_service_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(
        201, headers={"content-encoding": "gzip"}, content=b"this is not gzip"))
    with http.build_client("openai", "https://example.invalid", transport=transport) as client, \
            pytest.raises(AnswerLost) as caught:
        client.post("/organization/projects/p/service_accounts", json={"name": "n"})
    assert "DecodingError" in caught.value.message


@pytest.mark.parametrize("exc", [
    httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full"),
    httpx.ReadTimeout("slow"), httpx.WriteTimeout("slow"), httpx.ReadError("reset"), httpx.WriteError("reset"),
    httpx.RemoteProtocolError("cut"), httpx.LocalProtocolError("bad"), httpx.ProxyError("proxy"),
    httpx.UnsupportedProtocol("gopher"), httpx.CloseError("close"), httpx.DecodingError("gzip"),
    httpx.TooManyRedirects("loop"), httpx.StreamConsumed(), httpx.StreamClosed(),
], ids=lambda exc: type(exc).__name__)
def test_every_httpx_error_becomes_a_service_error(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with http.build_client("openai", "https://example.invalid", transport=httpx.MockTransport(handler),
                           policy=QUICK) as client, \
            pytest.raises(ServiceError) as caught:
        client.post("/organization/projects/p/service_accounts", json={"name": "n"})
    assert type(exc).__name__ in caught.value.message and caught.value.status is None
    # only a request that provably never left may be said to have changed nothing
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                  httpx.UnsupportedProtocol))
    assert isinstance(caught.value, Unreachable if never_sent else AnswerLost)


def test_a_url_that_cannot_be_built_is_a_service_error() -> None:
    with http.build_client("openai", "https://example.invalid",
                           transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client, \
            pytest.raises(Unreachable):
        client.get("http://[::1")
