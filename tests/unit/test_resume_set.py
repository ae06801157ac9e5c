"""Which steps a resume runs again: reading a lost secret forces its maker to run again;
reading the maker's other outputs does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyresponse.expr import output_reads
from keyresponse.journal import LostSecret
from keyresponse.playbook import load_playbook
from keyresponse.resume import resume_set

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("source,reads", [
    ("steps.issue.outputs.key_id", {"issue": {"key_id"}}),
    ("steps['issue'].outputs['secret']", {"issue": {"secret"}}),
    ("steps.a.outputs.x ~ steps.a.outputs.y", {"a": {"x", "y"}}),
    ("steps.deploy.status == 'applied'", {"deploy": set()}),
    ("steps.issue.outputs", {"issue": None}),
    ("steps.issue", {"issue": None}),
    ("steps.a.outputs[inputs.which]", {"a": None}),
    ("steps.issue.outputs.get('secret')", {"issue": None}),
    ("steps.issue.outputs.secret.masked", {"issue": {"secret"}}),
    ("steps[inputs.which].outputs.secret", {"*": None}),
    ("steps | attr('issue')", {"*": None}),
    ("inputs.key", {}),
])
def test_output_reads(source: str, reads: dict[str, set[str] | None]) -> None:
    assert output_reads(source) == reads


def _issued() -> dict[str, object]:
    return {"secret": LostSecret("sk-proj-…abcd"), "key_id": "key_new", "service_account_id": "svc_new"}


def test_a_step_reading_only_the_new_keys_id_does_not_reissue_it() -> None:
    book = load_playbook(REPO / "playbooks" / "rotate.yaml")
    done = ["find", "open", "issue", "deploy", "restart", "live"]
    todo = resume_set(book, {s: "applied" for s in done}, {"issue": _issued()})
    assert todo[:3] == ["record", "drain", "retire"] and "issue" not in todo and "deploy" not in todo


def test_a_step_reading_the_lost_secret_reissues_it_and_reruns_its_readers() -> None:
    book = load_playbook(REPO / "playbooks" / "rotate.yaml")
    done = ["find", "open", "issue"]
    todo = resume_set(book, {s: "applied" for s in done}, {"issue": _issued()})
    assert todo[:3] == ["issue", "deploy", "restart"]  # deploy reads steps.issue.outputs.secret
