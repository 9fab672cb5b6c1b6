"""``vxcache serve``: the scheduler and the local HTTP API in one process."""

from __future__ import annotations

import logging
import socket

import click

from vxcache.cli._app import App, command_with_options, pass_app
from vxcache.cli._group import cli
from vxcache.errors import UsageError
from vxcache.log import configure_logging

logger = logging.getLogger(__name__)


@command_with_options(cli)
@click.option(
    "--host", default=None, help="Address to bind (default: api.host, 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to bind (default: api.port, 8765).",
)
@pass_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """
    Sync every sync.interval and serve the local HTTP API, in one process.

    Runs one uvicorn worker on purpose: the scheduler lives in that process and
    must run exactly once, so do not start it under several workers. Binds
    127.0.0.1 unless told otherwise, and refuses any other address unless
    api.token is set. SIGINT or SIGTERM stops the server and the scheduler; a
    running sync finishes first. Logs at INFO (-vv for DEBUG).

    Example: vxcache serve --port 8765
    """
    import uvicorn

    from vxcache.api import check_exposure, create_app

    configure_logging(app.verbosity, default_level=logging.INFO)
    settings = app.settings
    bind_host = host or settings.api.host
    bind_port = settings.api.port if port is None else port
    check_exposure(settings, bind_host)
    _check_port_free(bind_host, bind_port)

    api = create_app(settings, schedule=True)
    logger.info(
        "serve starting url=http://%s:%d writes=%s token=%s offline=%s",
        bind_host,
        bind_port,
        "on" if settings.api.allow_writes else "off",
        "required" if settings.api.token.get_secret_value() else "none",
        settings.offline,
    )
    # log_config=None: uvicorn's loggers go through vxcache's handler. Its access
    # log is off because it prints query strings, which may carry SQL.
    uvicorn.run(
        api,
        host=bind_host,
        port=bind_port,
        workers=1,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
    )


def _check_port_free(host: str, port: int) -> None:
    """Refuse before any sync starts when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
            ) from None
