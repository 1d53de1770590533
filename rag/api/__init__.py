"""The HTTP API (`rag serve`): the app, its access rules, pages and error bodies."""

from rag.api.access import is_loopback
from rag.api.app import create_app, server_config

__all__ = ["create_app", "is_loopback", "server_config"]
