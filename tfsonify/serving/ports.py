"""Ports for the servers (stdlib only, so ``tfsonify serve`` checks them before importing TensorFlow or loading
any model): :func:`listen` binds the REST socket the server will use, :func:`check_port_free` probes the gRPC port."""
from __future__ import annotations

import errno
import socket

__all__ = ["listen", "check_port_free", "port_taken"]


def port_taken(host: str, port: int, what: str, option: str) -> str:
    return (f"{what} port {port} on {host} is already in use (another server running?); stop it or choose another "
            f"{option}")


def listen(host: str, port: int, what: str = "REST", option: str = "--port") -> socket.socket:
    """A socket bound to ``host:port`` and listening (connections queue from now on); ``ValueError`` in one line if
    the port is taken or the address cannot be bound."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ValueError(port_taken(host, port, what, option)) from None
        raise ValueError(f"cannot listen on {host}:{port} ({what}): {error.strerror}") from None
    return sock


def check_port_free(host: str, port: int, what: str = "gRPC", option: str = "--grpc-port") -> None:
    """``ValueError`` (as :func:`listen`) if ``host:port`` cannot be bound now (checked before models load)."""
    if port:
        listen(host, port, what, option).close()
