"""The HTTP API: the app factory, its dependencies, request schemas, metrics and routers.

Imported by module path (``service.api.app:create_app``).
"""

__all__: list[str] = []
