"""The API gateway for commerce-core: an ASGI app with authentication, rate limiting,
validation and RFC 9457 problem responses."""

from commerce_core_gateway.app import GatewayConfig, create_app
from commerce_core_gateway.security import (
    Authenticator,
    NotAuthenticated,
    Principal,
    Role,
    parse_api_keys,
)

__all__ = ["Authenticator", "GatewayConfig", "NotAuthenticated", "Principal", "Role",
           "create_app", "parse_api_keys"]
