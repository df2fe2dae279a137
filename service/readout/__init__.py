"""The statistical read-out: its typed model, how it is built from totals, and its verdicts.

The model is re-exported here (it needs only pydantic, so the client can use it anywhere);
``service.readout.build`` needs the store and ``stats`` and is imported by module path.
"""

from service.readout.model import (
    Breakdown,
    ExperimentResults,
    GuardrailAlert,
    MetricResults,
    Progress,
    SeriesPoint,
    SliceResults,
    SRMCheck,
    VariantResult,
    Verdict,
    VerdictKind,
)

__all__ = [
    "Breakdown",
    "ExperimentResults",
    "GuardrailAlert",
    "MetricResults",
    "Progress",
    "SRMCheck",
    "SeriesPoint",
    "SliceResults",
    "VariantResult",
    "Verdict",
    "VerdictKind",
]
