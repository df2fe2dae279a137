"""The read-out for people: display values, HTML pages with charts, and terminal tables."""

__all__: list[str] = []
