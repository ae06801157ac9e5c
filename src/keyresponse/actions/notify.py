"""`notify.slack`: one Slack thread per incident, updated as the response moves.

`opened` posts the root message once, in the background (a slow Slack must not stand
between the run and the revoke), and journals its ts (`slack.thread` note); every later
message waits, bounded, for that post to land, and goes in its thread;
`step`/`update` reply in the thread with the steps finished so far and update the
root's status line; `closed` replies with the outcome and where the report is and
marks the root resolved or needing attention; `drill` posts a pass/fail summary
to the drill channel. Slack is best effort: a bad token or an outage becomes a
warning and `{ok: false}`, never a failed step, because the response matters more
than the message about it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from keyresponse.action import BaseAction, Check, Plan, StepContext, With

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from keyresponse.inventory import SlackNotify

THREAD_NOTE = "slack.thread"
ROOT_WAIT = 45.0  # seconds a later message waits for the opening post, and the most that post may take

# incident id -> set once its opening post in the background has ended (landed or not)
_ROOT_POSTS: dict[str, threading.Event] = {}
_ROOT_POSTS_LOCK = threading.Lock()


def wait_for_root(incident_id: str, timeout: float | None = ROOT_WAIT) -> None:
    """Let the opening post in flight for this incident land first (or give up on it)."""
    with _ROOT_POSTS_LOCK:
        done = _ROOT_POSTS.get(incident_id)
    if done is not None:
        done.wait(ROOT_WAIT if timeout is None else min(timeout, ROOT_WAIT))


def _root_in_flight(incident_id: str) -> bool:
    """Whether this process's opening post for the incident is still under way."""
    with _ROOT_POSTS_LOCK:
        done = _ROOT_POSTS.get(incident_id)
    return done is not None and not done.is_set()
CHANNEL_ID = "CGD"  # first letters of channel, private group and DM ids; names need a lookup we do not do


class SlackArgs(With):
    event: Literal["opened", "update", "step", "closed", "drill"]
    text: str | None = None
    severity: Literal["low", "medium", "high", "critical"] | None = None


class Slack(BaseAction):
    name = "notify.slack"
    summary = "Post the incident to one Slack thread (opened, step, closed) or a drill summary; never stops the response."
    With = SlackArgs

    def plan(self, args: SlackArgs, ctx: StepContext) -> Plan:
        settings = ctx.inventory.model.notify.slack
        if settings is None:
            return Plan(summary="Slack is not configured (notify.slack in the inventory): nothing to post",
                        data=(args, None))
        channel = _channel(settings, args.event)
        thread = find_thread(ctx)
        if args.event == "drill":
            what = f"post the drill summary to {channel}"
        elif args.event == "opened" and thread is None:
            what = f"post the incident's root message to {channel}"
        elif thread is None:
            what = f"start the incident thread in {channel} and reply ({args.event})"
        else:
            what = f"reply in thread {thread[1]} ({args.event}) and update its root message"
        return Plan(summary=f"Slack: {what}", data=(args, settings))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        args, settings = plan.data
        drill = args.event == "drill"
        if settings is None:
            # a first setup (`init`) leaves Slack commented out: the drill skips this check and warns
            return [Check("Slack configured", ok=True, detail="no notify.slack in the inventory: Slack not checked")]
        channel = _channel(settings, args.event)
        try:
            client = _client(ctx, settings)
            auth = client.auth_test()
            detail = f"token works as {auth.get('user') or auth.get('bot_id') or 'a bot'} in {auth.get('team') or 'the workspace'}"
            if channel[:1] in CHANNEL_ID:
                info = client.conversations_info(channel=channel).get("channel") or {}
                if info.get("is_archived"):
                    raise _Unusable(f"channel {channel} is archived")
                member = "" if info.get("is_member", True) else "; the bot is not a member (invite it, or grant chat:write.public)"
                detail += f"; channel #{info.get('name') or channel} found{member}"
            else:
                detail += f"; channel {channel} is a name, not an id: it is not checked"
            return [Check("Slack token and channel", ok=True, detail=detail)]
        except Exception as exc:
            if not _expected(exc):
                raise
            error = describe_error(exc)
            if drill:
                return [Check("Slack token and channel", ok=False, detail=error,
                              fix=f"check {settings.token_env} (scopes chat:write, channels:read) and the channel id")]
            return [Check("Slack (best effort)", ok=True,
                          detail=f"unavailable: {error}; the response will go on without Slack")]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        args, settings = plan.data
        out: dict[str, Any] = {"ok": False, "channel": None, "ts": None, "event": args.event}
        if settings is None:
            ctx.progress("Slack is not configured: nothing posted")
            return {**out, "skipped": True, "error": "Slack is not configured"}
        if args.event != "drill":
            wait_for_root(ctx.incident.id, ctx.remaining())
        thread = find_thread(ctx)
        if thread:
            out.update(channel=thread[0], ts=thread[1])
        elif args.event == "opened":
            self._open_in_background(args, settings, ctx)
            return {**out, "ok": True, "background": True}
        try:
            out.update(self._post(args, settings, ctx, thread))
        except Exception as exc:
            if not _expected(exc):
                raise
            error = describe_error(exc)
            ctx.warn(f"Slack {args.event} message not posted: {error}; the response goes on")
            return {**out, "ok": False, "error": error}
        return {**out, "ok": True}

    def _open_in_background(self, args: SlackArgs, settings: SlackNotify, ctx: StepContext) -> None:
        """Post the root message from a thread of its own: containment goes on meanwhile.
        Later messages wait for it (wait_for_root); if it never lands, the next message
        that needs the thread (the close step at the latest) posts it."""
        done = threading.Event()
        with _ROOT_POSTS_LOCK:
            _ROOT_POSTS[ctx.incident.id] = done

        def post() -> None:
            try:
                self._post(args, settings, ctx, None, deadline=time.monotonic() + ROOT_WAIT)
            except Exception as exc:  # noqa: BLE001 - Slack must never stop the response
                error = describe_error(exc) if _expected(exc) else f"unexpected {type(exc).__name__}"
                try:
                    ctx.record(ROOT_FAILED_NOTE, error=error)  # the report lists it among the notifications
                    ctx.warn(f"Slack {args.event} message not posted: {error}; the response goes on "
                             f"(a later message posts it)")
                except Exception:  # noqa: BLE001 - the journal's own failure is the engine's to report
                    pass
            finally:
                done.set()

        threading.Thread(target=post, name="slack-root", daemon=True).start()
        ctx.progress("posting the opening message in the background; the response goes on")

    def _post(self, args: SlackArgs, settings: SlackNotify, ctx: StepContext,
              thread: tuple[str, str] | None, *, deadline: float | None = None) -> dict[str, Any]:
        """Post the message (and the root first, when there is no thread yet). `deadline`:
        the background opening post's, past which it gives up between calls."""
        from keyresponse import slack
        from keyresponse.report import digest
        from keyresponse.report import model as report_model

        client = _client(ctx, settings)
        model = report_model.build(ctx.incident.journal.records(), incident_id=ctx.incident.id, running=True,
                                   current_step=ctx.step_id)
        if args.event == "drill":
            resp = client.chat_postMessage(channel=_channel(settings, "drill"),
                                           **slack.drill_message([_drill_record(model, ctx)]))
            return {"channel": resp["channel"], "ts": resp["ts"]}
        facts = digest.facts(model, event=args.event, current_step=ctx.step_id, severity=args.severity,
                            redacted_value=_leaked_mask(ctx), project=ctx.key.project if ctx.key else None,
                            report=_report_path(ctx))
        root = slack.root_message(facts)
        if thread is None:
            thread = _post_root(ctx, settings, root, deadline=deadline)
            if args.event == "opened":
                return {"channel": thread[0], "ts": thread[1]}
        channel, ts = thread
        if args.event != "opened":
            reply = (slack.closing_reply(facts, args.text) if args.event == "closed"
                     else slack.progress_reply(facts, args.text))
            client.chat_postMessage(channel=channel, thread_ts=ts, **reply)
        client.chat_update(channel=channel, ts=ts, **root)
        return {"channel": channel, "ts": ts}


def _post_root(ctx: StepContext, settings: SlackNotify, root: dict[str, Any], *,
               deadline: float | None = None) -> tuple[str, str]:
    """Post the incident's root message once.

    Slack may keep a message whose answer never arrives (a dropped connection, a 5xx), so
    the intent is journaled first with a nonce the message carries in its metadata, and
    a post that may have landed (this one, or an earlier step's or run's) is looked up in
    the channel's history by that nonce before another is posted. The thread is then
    journaled: a resumed or re-run incident continues it.

    While this process's opening post is still under way in the background (a slow Slack
    outlasted ROOT_WAIT), none is posted beside it: it may yet land, and its intent cannot
    be told from a lost one. The background post itself gives up past `deadline`."""
    import secrets

    from keyresponse import slack

    if deadline is None and _root_in_flight(ctx.incident.id):
        raise _Unusable("the opening message is still being posted in the background (Slack is slow); "
                        "no second one is posted beside it")
    token = ctx.inventory.credential(settings.token_env, "Slack notifications")
    once = slack.client(token, settings.base_url, resend=False)
    pending = _pending_intents(ctx.incident)
    if pending:
        found = _find_root(once, ctx.incident.id, pending, deadline)  # a failure here keeps them pending
        if found is not None:
            return _journal_thread(ctx, found, pending[-1]["nonce"])
        for intent in pending:
            ctx.record(UNSENT_NOTE, nonce=intent["nonce"])
    for attempt in (1, 2):
        _in_time(deadline, "before posting it")
        intent = {"channel": settings.channel, "nonce": secrets.token_hex(8),
                  "oldest": f"{time.time() - HISTORY_MARGIN:.6f}"}
        ctx.record(INTENT_NOTE, **intent)
        try:
            resp = once.chat_postMessage(channel=settings.channel, metadata=_marker(ctx.incident.id, intent["nonce"]),
                                         **root)
        except Exception as exc:
            if not _expected(exc):
                raise
            if _maybe_sent(exc):
                found = _find_root(once, ctx.incident.id, [intent], deadline)
                if found is not None:
                    return _journal_thread(ctx, found, intent["nonce"])
            ctx.record(UNSENT_NOTE, nonce=intent["nonce"])
            if attempt == 2 or not _maybe_sent(exc):
                raise
            continue
        return _journal_thread(ctx, (str(resp["channel"]), str(resp["ts"])), intent["nonce"])
    raise AssertionError("unreachable")


ROOT_FAILED_NOTE = "slack.root.failed"  # the opening post, made in the background, did not land
INTENT_NOTE = "slack.root.intent"  # about to post the root: channel, nonce, oldest (a history bound)
UNSENT_NOTE = "slack.root.unsent"  # that nonce's post surely did not land
MARKER_EVENT = "keyresponse_incident"  # the root's metadata event_type; its payload: incident_id, nonce
HISTORY_MARGIN = 600.0  # seconds before the post that the lookup reads from: clocks differ
HISTORY_PAGES = 5  # of 200 messages: the root is found among the channel's recent ones, or not at all


def _marker(incident_id: str, nonce: str) -> dict[str, Any]:
    return {"event_type": MARKER_EVENT, "event_payload": {"incident_id": incident_id, "nonce": nonce}}


def _journal_thread(ctx: StepContext, thread: tuple[str, str], nonce: str) -> tuple[str, str]:
    ctx.record(THREAD_NOTE, channel=thread[0], ts=thread[1], nonce=nonce)
    return thread


def _pending_intents(incident: Any) -> list[dict[str, Any]]:
    """Root posts journaled as intended whose outcome is unknown (no thread, not surely unsent)."""
    notes = [r for r in incident.journal.records() if r.get("event") == "step.note"]
    unsent = {r.get("nonce") for r in notes if r.get("note") == UNSENT_NOTE}
    return [r for r in notes if r.get("note") == INTENT_NOTE and r.get("nonce") and r["nonce"] not in unsent]


def _maybe_sent(exc: BaseException) -> bool:
    """False when Slack surely did not keep the message: it answered with an error code
    (ok: false below HTTP 500, 429 included). Anything else may have landed."""
    import socket

    from slack_sdk.errors import SlackApiError

    from keyresponse.errors import ConfigError

    if isinstance(exc, (ConfigError, _Unusable)):
        return False
    reason = getattr(exc, "reason", exc)  # urllib wraps the socket's error in URLError
    if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):  # nothing was sent
        return False
    if isinstance(exc, SlackApiError):
        data = exc.response.data
        return exc.response.status_code >= 500 or not (isinstance(data, dict) and data.get("ok") is False)
    return True


def _in_time(deadline: float | None, what: str) -> None:
    """Between two calls of the background opening post: give up once its time is over."""
    if deadline is not None and time.monotonic() > deadline:
        raise _Unusable(f"gave up on the opening message after {ROOT_WAIT:g}s ({what})")


def _find_root(client: WebClient, incident_id: str, intents: list[dict[str, Any]],
               deadline: float | None = None) -> tuple[str, str] | None:
    """The root message one of `intents` posted, from its channel's recent history."""
    for channel in dict.fromkeys(str(i["channel"]) for i in intents):
        mine = [i for i in intents if str(i["channel"]) == channel]
        nonces = {i["nonce"] for i in mine}
        _in_time(deadline, "looking it up")
        channel_id = _channel_id(client, channel)
        args: dict[str, Any] = {"oldest": min(str(i["oldest"]) for i in mine)}
        for _ in range(HISTORY_PAGES):
            _in_time(deadline, "looking it up")
            page = client.conversations_history(channel=channel_id, limit=200, include_all_metadata=True, **args)
            messages = [m for m in page.get("messages") or [] if isinstance(m, dict) and m.get("ts")]
            for m in messages:
                meta: dict[str, Any] = m["metadata"] if isinstance(m.get("metadata"), dict) else {}
                payload: dict[str, Any] = meta["event_payload"] if isinstance(meta.get("event_payload"), dict) else {}
                if (meta.get("event_type") == MARKER_EVENT and payload.get("incident_id") == incident_id
                        and payload.get("nonce") in nonces):
                    return channel_id, str(m["ts"])
            if not page.get("has_more") or not messages:
                break
            args["latest"] = min((str(m["ts"]) for m in messages), key=float)  # Slack pages history by time
    return None


def _channel_id(client: WebClient, channel: str) -> str:
    """conversations.history takes an id; the inventory may name the channel (#incidents)."""
    if channel[:1] in CHANNEL_ID:
        return channel
    name, cursor = channel.lstrip("#"), ""
    for _ in range(50):
        page = client.conversations_list(types="public_channel,private_channel", exclude_archived=True,
                                         limit=200, cursor=cursor or None)
        for ch in page.get("channels") or []:
            if isinstance(ch, dict) and ch.get("name") == name and ch.get("id"):
                return str(ch["id"])
        cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            break
    raise _Unusable(f"channel {channel} not found by name, to look for the incident's message in it")


def find_thread(ctx_or_incident: Any) -> tuple[str, str] | None:
    """The incident's thread from the journal, whichever step or run started it."""
    incident = getattr(ctx_or_incident, "incident", ctx_or_incident)
    found = None
    for r in incident.journal.records():
        if r.get("event") == "step.note" and r.get("note") == THREAD_NOTE and r.get("channel") and r.get("ts"):
            found = (str(r["channel"]), str(r["ts"]))
    return found


def after_step(incident: Any, inventory: Any, step_id: str, uses: str, status: str) -> str | None:
    """For the engine, after each step of a run: reply in the incident's thread for a step
    that matters (or failed) and update the root's status line.

    Does nothing without Slack, without a thread (the playbook opened none) or for
    minor steps. Never raises: a failure is journaled as a warning on that step and
    returned as text."""
    from keyresponse import slack
    from keyresponse.report import digest
    from keyresponse.report import model as report_model

    settings = inventory.model.notify.slack
    if settings is None or uses == "notify.slack" or (uses not in SIGNIFICANT and status != "failed"):
        return None
    wait_for_root(incident.id)  # this runs off the critical path: it may wait for the root to land
    thread = find_thread(incident)
    if thread is None:
        return None
    try:
        model = report_model.build(incident.journal.records(), incident_id=incident.id, running=True)
        facts = digest.facts(model, event="step")
        row = next((s for s in facts["steps"] if s["id"] == step_id), None)
        if row is None:
            return None
        token = inventory.credential(settings.token_env, "Slack notifications")
        client = slack.client(token, settings.base_url)
        reply = slack.step_reply(row, digest.step_detail(model, row))
        client.chat_postMessage(channel=thread[0], thread_ts=thread[1], **reply)
        client.chat_update(channel=thread[0], ts=thread[1], **slack.root_message(facts))
    except Exception as exc:
        if not _expected(exc):
            raise
        error = f"Slack update after {step_id} not posted: {describe_error(exc)}; the response goes on"
        incident.journal.append("step.warning", step=step_id, message=error)
        return error
    return None


SIGNIFICANT = {"key.revoke", "key.probe", "key.issue", "targets.deploy", "targets.restart", "key.audit",
               "exposure.scan"}


def _leaked_mask(ctx: StepContext) -> str | None:
    # Before key.find runs, the leaked value given as input is the only way to show which key it is.
    leaked = ctx.inputs.get("leaked")
    return getattr(leaked, "masked", None)


def _report_path(ctx: StepContext) -> str | None:
    for outputs in ctx.outputs.values():
        paths = outputs.get("paths") if isinstance(outputs, dict) else None
        if isinstance(paths, dict) and paths:
            return str(paths.get("html") or paths.get("md") or next(iter(paths.values())))
    return None


def _drill_record(model: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """This run as one drill record, the shape `keyresponse drill` keeps (see drills.py)."""
    steps = {s["id"]: s["status"] for s in model["steps"] if s["id"] != ctx.step_id}
    problems = [f"{s['id']}: {s['error']}" + (f" -> fix: {s['hint']}" if s["hint"] else "")
                for s in model["steps"] if s["status"] == "failed"]
    return {"key": ctx.key_name, "ok": not problems, "incident": ctx.incident.id,
            "problems": problems, "steps": steps}


def describe_error(exc: BaseException) -> str:
    """One redacted line: the Slack method's error code, or what broke underneath."""
    from slack_sdk.errors import SlackApiError

    from keyresponse.secret import REDACTOR

    if isinstance(exc, SlackApiError):
        resp = exc.response
        data = resp.data if isinstance(resp.data, dict) else {}
        method = str(resp.api_url).rstrip("/").rsplit("/", 1)[-1]
        text = f"{method}: {data.get('error') or 'unexpected answer'} (HTTP {resp.status_code})"
    elif hasattr(exc, "message"):
        text = str(exc.message)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return REDACTOR.redact(text)


class _Unusable(Exception):
    pass


def _expected(exc: BaseException) -> bool:
    from slack_sdk.errors import SlackClientError

    from keyresponse.errors import ConfigError

    return isinstance(exc, (SlackClientError, OSError, ValueError, ConfigError, _Unusable))


def _channel(settings: SlackNotify, event: str) -> str:
    return (settings.drill_channel or settings.channel) if event == "drill" else settings.channel


def _client(ctx: StepContext, settings: SlackNotify) -> WebClient:
    from keyresponse import slack

    token = ctx.inventory.credential(settings.token_env, "Slack notifications")
    return slack.client(token, settings.base_url)


