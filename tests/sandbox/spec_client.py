"""An httpx client that checks every sandbox answer against an official API description.

Documented statuses are validated by openapi-core; statuses the description
leaves out (401, 404, 422 ...) are checked against the service's error shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

METHODS = ("get", "put", "post", "delete", "patch")


class SpecBook:
    """One description: its operations and a validator."""

    def __init__(self, path: Path, host: str, base_path: str, check_error: Callable[[Any], None],
                 patch: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.data = yaml.safe_load(path.read_text())
        if patch is not None:
            patch(self.data)
        self.openapi = OpenAPI.from_dict(self.data)
        self.host, self.base_path, self.check_error = host, base_path, check_error
        self._ops = []
        for template, item in self.data["paths"].items():
            regex = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
            for method in METHODS:
                if method in item:
                    self._ops.append((template.count("{"), method.upper(), template, regex, item[method]))
        self._ops.sort(key=lambda op: op[0])  # static segments win: /public-key before /{secret_name}

    @property
    def operations(self) -> set[str]:
        return {f"{m} {t}" for _, m, t, _, _ in self._ops}

    def find(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for _, m, template, regex, op in self._ops:
            if m == method and regex.fullmatch(path):
                return f"{m} {template}", op
        raise AssertionError(f"{method} {path} is not an operation of the description")

    def check(self, method: str, path: str, response: httpx.Response) -> str:
        key, op = self.find(method, path)
        if str(response.status_code) in op["responses"]:
            ctype = response.headers.get("content-type", "").split(";")[0]
            self.openapi.validate_response(
                MockRequest(self.host, method, self.base_path + path),
                MockResponse(response.content, response.status_code, dict(response.headers), ctype),
            )
        else:
            assert response.status_code >= 400, f"{key} answered an undocumented {response.status_code}"
            self.check_error(response.json())
        return key


class CheckedClient:
    """Requests to one emulated service; every response is checked and recorded."""

    def __init__(self, book: SpecBook, base_url: str, headers: dict[str, str]) -> None:
        self.book = book
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=10)
        self.seen: list[tuple[str, int]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        rel = httpx.URL(self.base_url + path).raw_path.decode().split("?")[0]
        rel = rel[len(httpx.URL(self.base_url).raw_path.decode().rstrip("/")) :]
        self.seen.append((self.book.check(method, rel, response), response.status_code))
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.client.close()


def map_discriminators(spec: dict[str, Any]) -> None:
    """Give `discriminator: {propertyName: object}` the mapping it implies.

    OpenAI's UsageTimeBucket discriminates its oneOf results on `object`
    without a mapping, so validators look for a schema *named*
    'organization.costs.result' and fail on any non-empty bucket. The values
    are the `object` enums of the oneOf members; spelling that out keeps the
    description's meaning and makes it checkable.
    """
    schemas = spec["components"]["schemas"]

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            disc = node.get("discriminator")
            if isinstance(disc, dict) and "mapping" not in disc and "oneOf" in node:
                mapping = {}
                for member in node["oneOf"]:
                    ref = member["$ref"]
                    prop = schemas[ref.rsplit("/", 1)[1]]["properties"][disc["propertyName"]]
                    mapping[prop["enum"][0]] = ref
                disc["mapping"] = mapping
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(spec)
