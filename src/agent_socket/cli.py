"""The ``agent-socket`` command line.

``relay`` takes one option per :class:`RelayConfig` field, generated from the class, so flags,
``AGENT_SOCKET_*`` variables and ``--help`` never drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Optional

import typer
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from agent_socket.channel.cli import register as register_channel_commands
from agent_socket.cli_agent import register as register_agent_commands
from agent_socket.relay.config import RelayConfig

app = typer.Typer(
    help="agent-socket: let any app expose tools to any AI chat through one paste-able URL.",
    no_args_is_help=True,
    add_completion=False,
)


def _option(name: str, field: FieldInfo) -> inspect.Parameter:
    """One ``--kebab-case`` option for a config field; None means "not given"."""
    flag = "--" + name.replace("_", "-")
    env = f"AGENT_SOCKET_{name.upper()}"
    default = "none" if field.default is None else field.default
    help_text = f"{field.description} [env {env}; default: {default}]"
    decls = [f"{flag}/--no-{flag[2:]}"] if field.annotation is bool else [flag]
    kind = field.annotation if field.annotation in (bool, int) else str
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, *decls, help=help_text, show_default=False),
        annotation=Optional[kind],  # noqa: UP045 - typer reads this annotation at run time
    )


def _with_config_options(func: Callable[..., None]) -> Callable[..., None]:
    """Give ``func(**options)`` one typer option per RelayConfig field."""
    params = [_option(name, field) for name, field in RelayConfig.model_fields.items()]
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return func


RELAY_HELP = (
    "Run the relay: apps connect over WebSocket at /v1/_ws, agents call their tools over plain "
    "HTTP at /v1/t/<token>/…. Every option can also be set as AGENT_SOCKET_<NAME>."
)
DEMO_HELP = "Run the relay with the example pages and print where to open them."


def _config(options: dict[str, Any]) -> RelayConfig:
    """Flags win over AGENT_SOCKET_* variables, which win over the defaults."""
    try:
        return RelayConfig(**{key: value for key, value in options.items() if value is not None})
    except ValidationError as bad:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in bad.errors()
        )
        typer.echo(f"Error: invalid relay settings: {problems}", err=True)
        raise typer.Exit(2) from None


@app.command("relay", help=RELAY_HELP)
@_with_config_options
def _relay(**options: Any) -> None:
    from agent_socket.relay.serve import serve

    serve(_config(options))


@app.command("demo", help=DEMO_HELP)
@_with_config_options
def _demo(**options: Any) -> None:
    from rich.console import Console

    from agent_socket.relay.serve import serve

    config = _config(options)
    origin = config.public_url or f"http://{config.host}:{config.port}"
    console = Console(stderr=True)
    console.print(f"[bold]agent-socket demo[/] — relay on {origin}")
    console.print(f"  pixel-art canvas: {origin}/examples/pixel-art/")
    console.print(f"  counter page:     {origin}/examples/counter/")
    console.print(f"  Python app:       AGENT_SOCKET_URL={origin} python examples/counter.py")
    console.print(
        "  An AI chat on the internet cannot reach 127.0.0.1: expose this relay through a "
        "tunnel or deploy it, and start it with --public-url https://your.host so links "
        "carry that address."
    )
    serve(config)


register_agent_commands(app)  # call, tools
register_channel_commands(app)  # channel host | send | recv | watch | peers | stop | join


def main() -> None:
    app(prog_name="agent-socket")
