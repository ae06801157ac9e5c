"""`inventory.record`: after a replacement, point the inventory's entry at it.

The inventory names a key by `key_id`. A run that replaces the key would otherwise
leave it naming a revoked key, and the next incident, rotation or drill would look
for that one. The file is edited in place — one scalar, every other byte (comments,
order, quoting, layout) kept — atomically, under a lock, and only while it still
names the key the run started from: an entry somebody changed during the run is
left for them, with the value to set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keyresponse.action import Check, Plan, Planned, StepContext, With
from keyresponse.errors import StepError

KEY_ID = re.compile(r"^[A-Za-z0-9_\-]+$")  # written as a plain scalar: nothing to quote
LOCK_WAIT = 10.0


class RecordArgs(With):
    key_id: Any  # the replacement's id: `${{ steps.issue.outputs.key_id }}` (known after apply)


@dataclass
class _Edit:
    path: Path
    field: tuple[str, str, str]  # ("keys", NAME, "key_id")
    old: str
    new: Any  # str, or Planned in a dry run


class Record:
    name = "inventory.record"
    summary = ("Point the inventory's entry at the replacement (keys.NAME.key_id), so later runs and drills "
               "find the key that is live; the rest of the file is kept byte for byte.")
    With = RecordArgs

    def plan(self, args: RecordArgs, ctx: StepContext) -> Plan:
        entry = ctx.key
        path = ctx.inventory.path
        where = f"keys.{ctx.key_name}.key_id"
        if entry is None:
            return Plan(summary="nothing: the key has no entry in the inventory")
        if path is None:
            return Plan(summary="nothing: the inventory is not a file")
        if not entry.key_id:
            return Plan(summary=f"nothing: {where} is not set (the key is found by its value)")
        if args.key_id == entry.key_id:
            return Plan(summary=f"nothing: {where} already names {entry.key_id}")
        shown = "the new key's id" if isinstance(args.key_id, Planned) else str(args.key_id)
        real = Path(os.path.realpath(path))  # a symlinked inventory: edit the file it points to
        return Plan(summary=f"set {where} to {shown} in {path.name}",
                    changes=[f"{path}: {where}: {entry.key_id} -> {shown}"],
                    data=_Edit(real, ("keys", str(ctx.key_name), "key_id"), entry.key_id, args.key_id))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        edit: _Edit | None = plan.data
        if edit is None:
            return []
        what = f"{edit.path.name} can be updated"
        try:
            _inspect(edit)
        except _Unfit as unfit:
            return [Check(what, False, unfit.problem, unfit.fix, blocking=False)]
        return [Check(what, True, f"{'.'.join(edit.field)} is written as a plain value; the file is writable")]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import atomicfile

        edit: _Edit | None = plan.data
        if edit is None:
            return {"changed": False}
        new = edit.new
        if not isinstance(new, str) or not KEY_ID.match(new):
            raise StepError(f"with.key_id: expected the new key's id, got {type(new).__name__}",
                            hint="pass `${{ steps.issue.outputs.key_id }}`")
        fix = f"set {'.'.join(edit.field)} to {new} in {edit.path} by hand"
        # beside the real file: runs on other keys, from any checkout that links to it, edit it too
        lock = atomicfile.lock_path(edit.path)
        with atomicfile.locked(lock, wait=LOCK_WAIT) as held:
            if not held:
                raise StepError(f"{edit.path}: another run has held {lock} for {LOCK_WAIT:g}s", hint=fix)
            try:
                text, current, (start, end) = _inspect(edit)
            except _Unfit as unfit:
                raise StepError(f"{edit.path}: {unfit.problem}", hint=f"{unfit.fix}; or {fix}") from None
            atomicfile.leftovers(edit.path, remove=True)  # from a writer killed mid-write
            if current == new:
                return {"path": str(edit.path), "key_id": new, "was": edit.old, "changed": False}
            if current != edit.old:
                raise StepError(f"{edit.path}: {'.'.join(edit.field)} changed during the run (now {current}); "
                                "left as it is", hint=f"if {new} should be named there, {fix}")
            quote = text[start] if text[start] in "'\"" else ""  # keep the way it was written
            updated = text[:start] + quote + new + quote + text[end:]
            try:
                meant = _current(updated, edit.field)[0]
            except yaml.YAMLError:
                meant = None
            if meant != new:  # the edit must mean exactly what it says
                raise StepError(f"{edit.path}: the edit did not read back as {new}; the file is unchanged",
                                hint=fix)
            ctx.record("inventory.writing", path=str(edit.path), field=".".join(edit.field), was=edit.old, to=new)
            try:
                atomicfile.replace(edit.path, updated.encode("utf-8"), crash_label="inventory")
            except (OSError, atomicfile.OwnerError) as exc:
                raise StepError(f"{edit.path}: cannot write: {exc}", hint=fix) from None
        ctx.progress(f"{edit.path.name}: {'.'.join(edit.field)} now names {new}")
        return {"path": str(edit.path), "key_id": new, "was": edit.old, "changed": True}


class _Unfit(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix


def _inspect(edit: _Edit) -> tuple[str, Any, tuple[int, int]]:
    """The file's text, the value it holds at the field and where; raises _Unfit when the
    edit cannot be made (unreadable, read-only, or not a plain one-line value there)."""
    from keyresponse import atomicfile

    try:
        text = edit.path.read_bytes().decode("utf-8")  # as written: no newline translation
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unfit(f"cannot read it: {exc}", "check the inventory's path and permissions") from None
    unfit = atomicfile.unwritable(edit.path)
    if unfit:
        raise _Unfit(*unfit)
    try:
        current, span = _current(text, edit.field)
    except (StepError, yaml.YAMLError):
        raise _Unfit(f"{'.'.join(edit.field)} is not written as a plain value",
                     f"write it as `key_id: {edit.old}` under keys.{edit.field[1]}") from None
    return text, current, span


def _current(text: str, field: tuple[str, ...]) -> tuple[Any, tuple[int, int]]:
    """The value at `field` and where it is written; raises StepError when it is not a
    scalar on one line (a `|` or `>` block is left to the user)."""
    from keyresponse.yamlio import scalar_span

    span = scalar_span(text, field)
    if span is None or text[span[0]:span[0] + 1] in ("|", ">") or "\n" in text[span[0]:span[1]].rstrip():
        raise StepError(f"{'.'.join(field)} is not written as a plain value on one line")
    return yaml.safe_load(text[span[0]:span[1]]), span
