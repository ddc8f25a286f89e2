"""Configuration, server construction, health, reflection and interceptors."""

from .config import Config
from .server import Server, create_server, serve

__all__ = ["Config", "Server", "create_server", "serve"]
