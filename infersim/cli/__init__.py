"""The ``infersim`` command: a thin face over the Python API.

Each command lives in its own module that exposes ``register(app)``. Every user error surfaces
as one line on stderr and exit status 2; assertion failures of ``infersim check`` exit 1.
"""

from __future__ import annotations

import importlib
import sys

import typer

try:  # typer >= 0.20 carries its own copy of click; older releases use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors

from infersim.errors import InfersimError

app = typer.Typer(
    name="infersim",
    help="Simulate heterogeneous, disaggregated LLM inference clusters: latency, throughput, cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in the order they appear in --help. Each defines register(app).
COMMAND_MODULES = (
    "infersim.cli.run",        # run
    "infersim.cli.compare",    # compare
    "infersim.cli.validate",   # validate
    "infersim.cli.schema",     # schema
    "infersim.cli.catalog",    # hardware list / models list
    "infersim.cli.roofline",   # roofline
    "infersim.cli.sweep",      # sweep
    "infersim.cli.plan",       # plan
    "infersim.cli.check",      # check
    "infersim.cli.report",     # report
    "infersim.cli.calibrate",  # calibrate
)


_registered: list[str] = []  # import-time registry of the app's commands, not run state
_built: list = []  # the click command typer builds from the app, once (it takes ~0.1 s)


def _register_all() -> None:
    """Attach every command module once, however often main() is called in one process."""
    for name in COMMAND_MODULES:
        if name not in _registered:
            importlib.import_module(name).register(app)
            _registered.append(name)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _register_all()
    if not _built:
        _built.append(typer.main.get_command(app))
    try:
        code = _built[0](args=argv, prog_name="infersim", standalone_mode=False)
    except InfersimError as err:
        _fail(str(err))
    except OSError as err:
        # the machine, not the input: a full disk, a folder gone mid-run, a read-only mount
        where = f"{err.filename}: " if err.filename else ""
        _fail(f"{where}{err.strerror or err}")
    except click_errors.NoArgsIsHelpError as err:
        # a bare group (``infersim``, ``infersim hardware``) shows its help, as git does
        print(err.ctx.get_help())
        sys.exit(2)
    except click_errors.UsageError as err:
        # click's own messages (bad option values, missing arguments) as one line too, with the
        # value given where click's message leaves it out
        where = f"{err.ctx.command_path}: " if err.ctx is not None else ""
        message = " ".join(err.format_message().split())
        given = _given(err, sys.argv[1:] if argv is None else argv)
        _fail(where + message + (f"; got {given}" if given is not None else ""))
    except click_errors.ClickException as err:
        _fail(" ".join(err.format_message().split()))
    except typer.Abort:
        _fail("aborted")
    sys.exit(code if isinstance(code, int) else 0)


def _given(err: click_errors.UsageError, argv: list[str]) -> str | None:
    """The text the user gave for the option a BadParameter names (``--batch 0`` or
    ``--batch=0``, the last one given), or None where there is no such option."""
    param = getattr(err, "param", None)
    if not isinstance(err, click_errors.BadParameter) or param is None:
        return None
    given = None
    for i, arg in enumerate(argv):
        for opt in getattr(param, "opts", ()):
            if not opt.startswith("-"):
                continue
            if arg == opt and i + 1 < len(argv):
                given = argv[i + 1]
            elif arg.startswith(opt + "="):
                given = arg[len(opt) + 1:]
    return given


def _fail(message: str) -> None:
    print(f"infersim: error: {message}", file=sys.stderr)
    sys.exit(2)
