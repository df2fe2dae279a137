"""The routers of the HTTP API, one per audience: public, admin, export, SDK and pages."""

__all__: list[str] = []
