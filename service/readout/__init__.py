"""The statistical read-out: its typed model, how it is built from totals, and its verdicts.

The model is re-exported here (it needs only pydantic, so the client can use it anywhere);
``service.readout.build`` needs the store and ``stats`` and is imported by module path.
"""

from service.readout.model import (
    ExperimentResults,
    MetricResults,
    Progress,
    SeriesPoint,
    SRMCheck,
    VariantResult,
    Verdict,
    VerdictKind,
)

__all__ = [
    "ExperimentResults",
    "MetricResults",
    "Progress",
    "SRMCheck",
    "SeriesPoint",
    "VariantResult",
    "Verdict",
    "VerdictKind",
]
