"""The case-study demo: the experiments, their simulated visitors, and the demo shop page."""

__all__: list[str] = []
