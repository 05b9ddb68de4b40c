"""The admin console for commerce-core: server-rendered pages, no JavaScript, in front of
the same services as the HTTP API. Mount `create_admin` in an ASGI host (the reference
server mounts it at ``/admin``)."""

from commerce_core_admin.app import AdminConfig
from commerce_core_admin.asgi import create_admin

__all__ = ["AdminConfig", "create_admin"]
