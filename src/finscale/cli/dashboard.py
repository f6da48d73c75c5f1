"""`finscale dashboard`: optuna-dashboard on the storage, in this process, until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from finscale.cli.bounds import bounded
from finscale.cli.common import _say, _state


def dashboard_command(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (0.0.0.0: every interface)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: any free one).", callback=bounded(0, 65535))
    ] = 8080,
) -> None:
    """optuna-dashboard on the storage, read-only, until Ctrl-C.

    The storage is FINSCALE_STORAGE_URL, opened as `finscale status` opens it.
    Exit 2 when optuna-dashboard is not installed (finscale's dashboard extra)
    or the storage refuses; 3 when it does not answer within
    FINSCALE_STORAGE_DEADLINE_S.
    """
    from finscale.hpo import dashboard_app, dashboard_server, display_url, serve_dashboard

    settings = _state(ctx).settings
    app = dashboard_app(settings)
    try:
        server = dashboard_server(app, host=host, port=port)
    except OSError as e:  # in use, not an address of this machine, no such host
        raise typer.BadParameter(
            f"cannot listen on {host} port {port}: {e.strerror or e}", param_hint="--host/--port"
        ) from None
    url = f"http://{host}:{server.server_port}"
    _say(f"optuna-dashboard on {url} for {display_url(settings.storage_url)}; Ctrl-C stops it")
    serve_dashboard(server)
