from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import SPECS
from tests.sandbox.spec_client import CheckedClient, SpecBook, map_discriminators

if TYPE_CHECKING:
    from keyresponse.sandbox.server import Sandbox


def pytest_configure(config: pytest.Config) -> None:
    # The same plugin the root conftest registers; importing it twice is a no-op.
    config.pluginmanager.import_plugin("tests.helpers.sandbox_fixture")


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    return SPECS


@pytest.fixture(scope="session")
def openai_book(specs_dir: Path) -> SpecBook:
    from openapi_schema_validator import OAS31Validator

    book = SpecBook(specs_dir / "openai-admin.openapi.yaml", "https://api.openai.com", "/v1", lambda body: None,
                    patch=map_discriminators)
    error_schema = {"$ref": "#/components/schemas/ErrorResponse", "components": book.data["components"]}
    book.check_error = OAS31Validator(error_schema).validate
    return book


# GitHub's basic-error component (not in the trimmed description, which leaves errors out)
GITHUB_ERROR = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}, "documentation_url": {"type": "string"},
                   "status": {"type": "string"}},
}


@pytest.fixture(scope="session")
def github_book(specs_dir: Path) -> SpecBook:
    import jsonschema

    return SpecBook(specs_dir / "github-actions-secrets.openapi.yaml", "https://api.github.com", "",
                    jsonschema.Draft7Validator(GITHUB_ERROR).validate)


@pytest.fixture
def oa(sandbox: Sandbox, openai_book: SpecBook) -> Iterator[CheckedClient]:
    """OpenAI client with the admin key; every answer checked against the description."""
    client = CheckedClient(openai_book, sandbox.urls["openai"],
                           {"Authorization": f"Bearer {sandbox.env['OPENAI_ADMIN_KEY']}"})
    yield client
    client.close()


@pytest.fixture
def gh(sandbox: Sandbox, github_book: SpecBook) -> Iterator[CheckedClient]:
    """GitHub client with the full-access token; every answer checked against the description."""
    client = CheckedClient(github_book, sandbox.urls["github"],
                           {"Authorization": f"Bearer {sandbox.env['GITHUB_TOKEN']}",
                            "Accept": "application/vnd.github+json"})
    yield client
    client.close()
