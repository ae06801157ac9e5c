"""Bodies of the CLI commands: plain functions that return an exit code.

One module per command family, as `keyresponse.cli` dispatches to them:

    run.py        run, plan, resume
    incidents.py  incidents, report
    check.py      validate, schema, actions, playbooks
    drill.py      drill (one key, every key, --live, --history)
    keys.py       keys
    setup.py      init
    demo.py       demo, and the sandbox session behind --sandbox
    common.py     what several of them share (loading the inventory)

Nothing heavy is imported at module level here: `cli.py` imports a command's
module only when that command runs.
"""
