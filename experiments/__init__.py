"""The domain: definitions, assignment, bucketing, limits, and the Redis store.

Imported by module path (``experiments.assignment``, ``experiments.store``...), so a pure
module never pulls in Redis.
"""

__all__: list[str] = []
