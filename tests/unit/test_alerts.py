"""Alert payloads, as the scanners publish them, read into one shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyresponse import alerts
from keyresponse.errors import UsageError
from tests.conftest import ALERT_FIXTURES, fake_key

FIXTURES = ALERT_FIXTURES


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json*") if p.suffix != ".jsonc"))
def test_every_fixture_parses(name: str) -> None:
    found = alerts.load(FIXTURES / name)
    assert found and all(a.source for a in found)
    for a in found:
        summary = a.summary()
        if a.secret is not None:
            assert a.secret.reveal() not in str(summary)


def test_locations_and_times() -> None:
    (gl,) = alerts.load(FIXTURES / "gitleaks-report.json")
    assert gl.locations[0].path == "auth.py" and gl.locations[0].line == 1
    assert gl.leaked_at and gl.leaked_at.startswith("2003-10-19")
    (th,) = alerts.load(FIXTURES / "trufflehog-v3.jsonl")
    assert th.secret_type == "AWS" and th.locations[0].line == 4
    assert th.leaked_at == "2022-06-16T17:17:40+00:00"  # -0700 PDT in the payload
    (gh,) = alerts.load(FIXTURES / "github-webhook-secret_scanning_alert_location-created.json")
    assert (gh.locations[0].repo, gh.locations[0].path, gh.locations[0].line) == ("Codertocat/Hello-World",
                                                                                   "/example/secrets.txt", 1)
    (locs,) = alerts.load(FIXTURES / "github-rest-secret-scanning-locations.json")
    assert len(locs.locations) == 13


def test_placeholders_are_not_secrets() -> None:
    (rest,) = alerts.load(FIXTURES / "github-rest-secret-scanning-alert.json")
    assert rest.secret is None  # XXXX…-us2 is GitHub's example placeholder
    (test_msg,) = alerts.load(FIXTURES / "gitguardian-webhook-test-message.json")
    assert test_msg.secret is None  # --censored--


def test_a_real_value_becomes_a_secret(tmp_path: Path) -> None:
    value = fake_key("alert")
    f = tmp_path / "gitleaks.json"
    f.write_text('[{"RuleID": "openai-api-key", "File": ".env", "StartLine": 3, "Secret": "' + value + '", '
                 '"Commit": "abc", "Date": "2026-11-27T03:00:00Z"}]')
    (a,) = alerts.load(f)
    assert a.secret is not None and a.secret.reveal() == value
    assert value not in repr(a) and value not in str(a.summary())


def test_unknown_payload_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="no alert found"):
        alerts.load(f)


def test_a_wrong_leaf_type_names_the_field(tmp_path: Path) -> None:
    f = tmp_path / "gitleaks.json"
    f.write_text('[{"RuleID": "openai-api-key", "File": ".env", "StartLine": "three"}]')
    with pytest.raises(UsageError, match=r"\$\[0\]\.StartLine: expected an integer, got a string"):
        alerts.load(f)
    f.write_text('{"RuleID": ["a", "b"], "File": ".env"}')
    with pytest.raises(UsageError, match=r"\$\.RuleID: expected a string, got an array"):
        alerts.load(f)


def test_a_jsonl_shape_error_names_the_line(tmp_path: Path) -> None:
    line = (FIXTURES / "trufflehog-v3.jsonl").read_text().splitlines()[0]
    f = tmp_path / "th.jsonl"
    f.write_text(line + "\n" + line.replace('"Git":{', '"Git":"x","Was":{', 1) + "\n")
    with pytest.raises(UsageError, match=r"line 2: \$\.SourceMetadata\.Data\.Git: expected an object"):
        alerts.load(f)


def test_nesting_below_the_recursion_limit_is_still_bounded(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text('{"RuleID": "x", "File": ' + "[" * 200 + "]" * 200 + "}")
    with pytest.raises(UsageError, match="nested more than 64 levels"):
        alerts.load(f)


def test_too_many_values_are_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "MAX_VALUES", 1000)
    f = tmp_path / "wide.json"
    f.write_text("[" + "[]," * 2000 + "[]]")
    with pytest.raises(UsageError, match="more than 1000 values"):
        alerts.load(f)
