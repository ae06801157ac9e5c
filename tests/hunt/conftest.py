"""The hunt's tests run the real CLI against the sandbox, like tests/e2e (its `world`)."""

from tests.e2e.conftest import world

__all__ = ["world"]
