"""The `keyresponse` command: parse, load, call the engine, print, exit code.

Exit codes: 0 every step ok; 1 a step failed (the incident is resumable);
2 bad usage, inventory or playbook; 3 an unexpected error (traceback saved);
130 interrupted (the incident is resumable), 143 when SIGTERM interrupted it.

Start-up stays lean: only Typer is imported here at module level; everything
heavy is imported inside the command that needs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

app = typer.Typer(
    name="keyresponse",
    help=(
        "Respond to a leaked API key in one command: revoke it, prove it dead, issue a "
        "replacement, redeploy it everywhere, audit its usage, tell the team, write the report.\n\n"
        "Start here:  keyresponse demo        (a whole incident against the local sandbox)\n\n"
        "In an incident:  keyresponse run leaked-key --key NAME"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from keyresponse import __version__

        print(f"keyresponse {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Respond to a leaked API key in one command."""

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="KEYRESPONSE_CONFIG", help="The inventory file.", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output: JSON on stdout.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before destructive steps.")]
KeyOpt = Annotated[str | None, typer.Option("--key", "-k", help="Inventory name of the key (input `key`).")]
InputOpt = Annotated[
    list[str] | None, typer.Option("--input", "-i", help="A playbook input as NAME=VALUE (repeatable).")
]
LeakedStdinOpt = Annotated[
    bool, typer.Option("--leaked-stdin", help="Read the leaked key's value from stdin (never pass it as an argument).")
]
LeakedEnvOpt = Annotated[
    str | None, typer.Option("--leaked-env", metavar="VAR", help="Read the leaked key's value from this env var.")
]
AlertOpt = Annotated[
    Path | None,
    typer.Option("--from-alert", metavar="FILE",
                 help="Start from a scanner's alert (GitHub, gitleaks, TruffleHog, GitGuardian, detect-secrets)."),
]
SandboxOpt = Annotated[
    bool, typer.Option("--sandbox", help="Against a fresh local sandbox; its config is written into this folder.")
]
DEFAULT_CONFIG = Path("keyresponse.yaml")


@app.command()
def run(
    playbook: Annotated[str, typer.Argument(help="A playbook name (see `keyresponse playbooks`) or a path.")],
    key: KeyOpt = None,
    input: InputOpt = None,
    leaked_stdin: LeakedStdinOpt = False,
    leaked_env: LeakedEnvOpt = None,
    from_alert: AlertOpt = None,
    sandbox: SandboxOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and preflight every step; change nothing.")] = False,
    no_drain: Annotated[bool, typer.Option(
        "--no-drain", help="Revoke the old key without waiting for its traffic to stop (input drain=false).")] = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Run a playbook for real (or with --dry-run, plan it).

    Example: keyresponse run leaked-key --key chatbot-prod

    A leaked organization admin key (an inventory entry with `kind: admin`, e.g. the
    one keyresponse itself uses): keyresponse run leaked-admin-key --key org-admin
    """
    from keyresponse.commands import run as cmd

    inputs = [*(input or []), *(["drain=false"] if no_drain else [])]
    raise typer.Exit(_interruptible(lambda: cmd.run(playbook, config, key, inputs, leaked_stdin, leaked_env,
                                                    plan_only=dry_run, yes=yes, json_output=json_output,
                                                    from_alert=from_alert, sandbox=sandbox)))


@app.command()
def plan(
    playbook: Annotated[str, typer.Argument(help="A playbook name or a path.")],
    key: KeyOpt = None,
    input: InputOpt = None,
    leaked_stdin: LeakedStdinOpt = False,
    leaked_env: LeakedEnvOpt = None,
    from_alert: AlertOpt = None,
    sandbox: SandboxOpt = False,
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Dry run: print each step, what it would change and whether its preflight passes."""
    from keyresponse.commands import run as cmd

    raise typer.Exit(cmd.run(playbook, config, key, input or [], leaked_stdin, leaked_env,
                             plan_only=True, yes=False, json_output=json_output, from_alert=from_alert,
                             sandbox=sandbox))


@app.command()
def resume(
    incident_id: Annotated[str, typer.Argument(help="The incident id (a unique prefix is enough).")],
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Continue an interrupted or failed incident: finished steps are skipped."""
    from keyresponse.commands import run as cmd

    raise typer.Exit(_interruptible(lambda: cmd.resume(incident_id, config, yes=yes, json_output=json_output)))


@app.command()
def verify(
    incident_id: Annotated[str, typer.Argument(help="The incident id (a unique prefix is enough).")],
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Check again, from the usage data, that the leaked key's traffic stopped (exit 1: needs attention)."""
    from keyresponse.commands import verify as cmd

    raise typer.Exit(cmd.verify(config, incident_id, json_output))


@app.command()
def incidents(
    status: Annotated[str | None, typer.Option("--status", help="Only this status (succeeded, failed, …).")] = None,
    playbook: Annotated[str | None, typer.Option("--playbook", help="Only this playbook.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="Only those started since a date (2026-11-30) or an age (7d, 12h).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also plans and drills.")] = False,
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """List incidents with their status (newest last); plans and drills only with --all."""
    from keyresponse.commands import incidents as cmd

    raise typer.Exit(cmd.incidents(config, json_output, status=status, playbook=playbook, since=since,
                                   show_all=show_all))


@app.command()
def validate(
    playbooks: Annotated[list[str] | None, typer.Argument(help="Playbooks to check (default: all found).")] = None,
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Check the inventory and playbooks; print every problem with file:line."""
    from keyresponse.commands import check

    raise typer.Exit(check.validate(config, playbooks or [], json_output))


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="inventory or playbook")] = "inventory",
) -> None:
    """Print the JSON Schema of the inventory or a playbook, for editor completion."""
    from keyresponse.commands import check

    raise typer.Exit(check.schema(kind))


@app.command()
def actions(
    json_output: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="As the README's reference table.")] = False,
) -> None:
    """List the actions a playbook step can use, with their `with:` options."""
    from keyresponse.commands import check

    raise typer.Exit(check.actions(json_output, markdown))


@app.command()
def playbooks(
    json_output: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="As the README's playbook reference.")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """List the playbooks found, with their inputs."""
    from keyresponse.commands import check

    raise typer.Exit(check.playbooks(config, json_output, markdown))


@app.command()
def drill(
    key: Annotated[str | None, typer.Option("--key", "-k", help="Drill this inventory key.")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Drill every key in the inventory.")] = False,
    live: Annotated[str | None, typer.Option(
        "--live", metavar="KEY", help="A real rotation of a key marked `canary: true` (a true fire drill).")] = None,
    history: Annotated[bool, typer.Option("--history", help="Show earlier drills and stale keys.")] = False,
    stale_days: Annotated[int, typer.Option("--stale-days", help="Flag keys with no passing drill in this many days.")] = 8,
    sandbox: SandboxOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Prove, changing nothing, that a leaked-key response would work today.

    Every step is planned and preflighted: credentials valid, targets reachable and
    writable, Slack answering, the report rendering. Exit code 1 if any check fails,
    with one line per problem saying how to fix it. Schedule it (see README).
    """
    from keyresponse.commands import drill as cmd

    raise typer.Exit(cmd.drill(config, key, all_keys, live, history, stale_days, yes, json_output, sandbox=sandbox))


@app.command()
def demo(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sandbox's organization.")] = 42,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a keyresponse.yaml that is not a sandbox one.")] = False,
    open_report: Annotated[bool, typer.Option("--open", help="Open the HTML report in a browser.")] = False,
    json_output: JsonOpt = False,
    serve: Annotated[bool, typer.Option(
        "--serve", help="The whole path through `keyresponse serve`: a signed webhook arrives, no command typed.")] = False,
) -> None:
    """A whole leaked-key incident against the built-in sandbox, in this folder.

    Starts a local emulator of the OpenAI, GitHub, GitLab and Slack APIs, writes
    keyresponse.yaml, sandbox.env and the env files it names here, runs the real
    leaked-key playbook and prints where the report is. Asks nothing.
    """
    from keyresponse.commands import demo as cmd

    raise typer.Exit(cmd.demo(Path.cwd(), seed, force, open_report, json_output, serve=serve))


@app.command()
def sandbox(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0 = a free one).")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the emulated organization.")] = 42,
    state: Annotated[Path | None, typer.Option("--state", metavar="FILE", help="Load and save state here.")] = None,
    write_config: Annotated[Path | None, typer.Option(
        "--write-config", metavar="DIR", help="Write DIR/keyresponse.yaml and DIR/sandbox.env for it.")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", metavar="SPEC", help="Inject a fault (repeatable); see README, Sandbox.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="First stdout line: URLs and env as JSON.")] = False,
) -> None:
    """Serve the local emulator of the OpenAI, GitHub, GitLab and Slack APIs until Ctrl-C."""
    from keyresponse.commands import demo as cmd

    raise typer.Exit(cmd.sandbox(port, seed, state, write_config, fault or [], json_output))


exposure_app = typer.Typer(help="Look for copies of a key in git histories and folders.", no_args_is_help=True)
app.add_typer(exposure_app, name="exposure")


@exposure_app.command("scan")
def exposure_scan(
    repo: Annotated[list[Path] | None, typer.Option("--repo", help="A git repository (every ref; repeatable).")] = None,
    folder: Annotated[list[Path] | None, typer.Option("--folder", help="A plain folder to search (repeatable).")] = None,
    leaked_stdin: LeakedStdinOpt = False,
    leaked_env: LeakedEnvOpt = None,
    redacted: Annotated[str | None, typer.Option("--redacted", help="With no value: the key's redacted form, "
                                                                       "sk-proj-...abcd")] = None,
    unreachable: Annotated[bool, typer.Option("--unreachable", help="Also objects no ref reaches.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Find every copy of a key in the whole history of repositories (exit 1 when one is found).

    Example: keyresponse exposure scan --repo . --leaked-stdin < key.txt
    """
    from keyresponse.commands import exposure as cmd

    raise typer.Exit(cmd.scan(repo or [], folder or [], leaked_stdin, leaked_env, redacted, unreachable, json_output))


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 = a free one; the first stdout line says which).")] = 8080,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Receive secret scanners' webhooks (GitHub, GitGuardian, generic) and run the inventory's `serve:` policy."""
    from keyresponse.commands import serve as cmd

    raise typer.Exit(cmd.serve(config, host, port))


@app.command()
def keys(json_output: JsonOpt = False, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """List the organization's keys (project, name, redacted value, owner, last used)."""
    from keyresponse.commands import keys as cmd

    raise typer.Exit(cmd.keys(config, json_output))


@app.command()
def report(
    incident_id: Annotated[str, typer.Argument(help="The incident id (a unique prefix is enough).")],
    format: Annotated[list[str] | None, typer.Option("--format", "-f", help="md, html or json (repeatable).")] = None,
    open_report: Annotated[bool, typer.Option("--open", help="Open the HTML report in a browser.")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Render (again) an incident's report from its journal, finished or not."""
    from keyresponse.commands import incidents as cmd

    raise typer.Exit(cmd.report(config, incident_id, format or [], open_report))


@app.command()
def init(
    base_url: Annotated[str, typer.Option("--base-url", help="The OpenAI API base URL.")] = "https://api.openai.com/v1",
    admin_key_env: Annotated[str, typer.Option("--admin-key-env", help="Env var holding the admin key.")] = "OPENAI_ADMIN_KEY",
    ci: Annotated[str | None, typer.Option("--ci", help="Also write a scheduled drill workflow: github.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing keyresponse.yaml.")] = False,
    install: Annotated[str | None, typer.Option(
        "--install", metavar="SPEC",
        help="What the workflow pip-installs: `.` or git+https://…@<full commit> (default: where this copy came from).")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Print the `serve:` section and the GitHub / GitGuardian webhook setup; write nothing.")] = False,
    public_url: Annotated[str, typer.Option(
        "--public-url", help="With --serve: the URL scanners reach `keyresponse serve` at.")] = "https://keyresponse.example.com",
) -> None:
    """Write a commented keyresponse.yaml from the keys the provider lists."""
    from keyresponse.commands import setup as cmd

    if serve:
        raise typer.Exit(cmd.init_serve(Path.cwd(), public_url))
    raise typer.Exit(cmd.init(Path.cwd(), base_url, admin_key_env, ci, force, install))


def main() -> None:
    """Console entry point: one error handler for the whole program."""
    from keyresponse.errors import KeyresponseError

    # httpx imports its own command-line client (click, rich, pygments: ~40 ms) whenever those
    # happen to be installed, and Typer installs rich. We never call it, and start-up counts
    # toward containment; a failed import makes httpx define a stub `main` instead.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    _stop_on_sigterm()

    try:
        rc = app(standalone_mode=False)
        if rc == 130 and _TERMINATED:  # Typer hands an interrupt outside a command back as 130
            rc = 143
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        sys.exit(_say_interrupted(exc))
    except KeyresponseError as exc:
        from keyresponse.secret import redact

        sys.stderr.write(f"error: {redact(str(exc))}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the click usage errors, then true surprises
        from keyresponse.errors import interrupt_inside

        if interrupt_inside(exc):  # Ctrl-C or SIGTERM during an import: 3.11 wraps it in a RuntimeError
            sys.exit(_say_interrupted(KeyboardInterrupt()))
        _no_room(exc)
        _usage_or_crash(exc)


def _interruptible(command: Callable[[], int]) -> int:
    """Run `command`; an interrupt is said here, with the way back (Typer would turn it into
    a bare exit 130 before main() saw it)."""
    try:
        return command()
    except KeyboardInterrupt as exc:
        return _say_interrupted(exc)


def _say_interrupted(exc: BaseException) -> int:
    incident_id = getattr(exc, "incident_id", None)  # engine.RunInterrupted: journaled as interrupted
    if incident_id:
        sys.stderr.write(f"\ninterrupted: incident {incident_id} is journaled as interrupted; "
                         f"continue it with `keyresponse resume {incident_id}`.\n")
    else:
        sys.stderr.write("\ninterrupted. `keyresponse incidents` shows the incident; "
                         "`keyresponse resume ID` continues it.\n")
    return _interrupted_exit()


_TERMINATED: list[int] = []  # non-empty once SIGTERM arrived


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`, a CI timeout) stops a run as Ctrl-C does: the
    running step and the incident are journaled as interrupted; the exit code is then 143."""
    import signal

    def on_term(signum: int, frame: object) -> None:
        _TERMINATED.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)


def _interrupted_exit() -> int:
    return 143 if _TERMINATED else 130


def _no_room(exc: Exception) -> None:
    """A write that found no room (full disk, file-size limit) outside the journal and the
    atomic writes, which say so themselves: exit 1 with the way back, not a crash."""
    from keyresponse.atomicfile import no_room

    reason = no_room(exc)
    if reason is None:
        return
    filename = getattr(exc, "filename", None)
    sys.stderr.write(f"error: cannot write{f' {filename}' if filename else ''}: {reason}\n"
                     "  hint: free space on that disk (or lift the file-size limit); `keyresponse incidents` "
                     "shows any incident this left unfinished, and `keyresponse resume ID` continues it.\n")
    sys.exit(1)


def _usage_or_crash(exc: Exception) -> None:
    try:
        from typer._click import exceptions as click_exc  # newer Typer vendors click
    except ImportError:  # pragma: no cover - older Typer
        from click import exceptions as click_exc  # type: ignore[no-redef]

    if isinstance(exc, click_exc.ClickException):
        exc.show()
        sys.exit(2)
    if isinstance(exc, typer.Abort):
        sys.stderr.write("aborted\n")
        sys.exit(_interrupted_exit())
    import tempfile
    import traceback

    from keyresponse.secret import redact

    text = redact("".join(traceback.format_exception(exc)))
    fd, path = tempfile.mkstemp(prefix="keyresponse-crash-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    sys.stderr.write(
        f"unexpected error: {redact(type(exc).__name__ + ': ' + str(exc))}\n"
        f"the traceback is in {path}; please report it. Any incident in progress can be resumed.\n"
    )
    sys.exit(3)


if __name__ == "__main__":
    main()
