"""The campaign field `baseline`: what each point of a run is compared with.

* ``previous`` (the default): the latest earlier campaign run that measured the point;
* a run id (the Airflow run id, or its folder name under the results root): that run;
* ``median_of_last: N``: among the last N earlier runs of the point whose fingerprint is
  this run's, the one whose mean is the median (per metric; the lower middle one for an
  even count). Its runs are the baseline side, as for the other two: one bad night
  never becomes the baseline, and the comparison keeps a side's repetitions as evidence.

YAML may write the last one as a mapping (``baseline: {median_of_last: 5}``) or as the
string the trigger form's text field sends (``"median_of_last: 5"``); campaign.json keeps
the mapping.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from cachebench.models import Strict

PREVIOUS = "previous"
MAX_RUNS = 100
_MEDIAN = re.compile(r"^\s*median_of_last\s*:\s*([0-9]+)\s*$")
# An Airflow run id (manual__2026-..., scheduled__..., a custom one) or its folder name.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,249}$")
HELP = (
    "use 'previous', a run id of this campaign (or its folder name), or "
    f"'median_of_last: N' with N from 1 to {MAX_RUNS}"
)


class MedianOfLast(Strict):
    median_of_last: int = Field(ge=1, le=MAX_RUNS)


def _input(value: Any) -> Any:
    """'median_of_last: 5' or {median_of_last: 5} -> MedianOfLast; other strings must look
    like a run id. One message for every wrong form."""
    if isinstance(value, MedianOfLast):
        return value
    if isinstance(value, str) and (m := _MEDIAN.match(value)):
        value = {"median_of_last": int(m[1])}
    if isinstance(value, dict):
        n = value.get("median_of_last")
        if set(value) != {"median_of_last"} or not isinstance(n, int) or isinstance(n, bool):
            raise ValueError(HELP)
        if not 1 <= n <= MAX_RUNS:
            raise ValueError(HELP)
        return MedianOfLast(median_of_last=n)
    if not isinstance(value, str):
        raise ValueError(HELP)
    value = value.strip()
    if value != PREVIOUS and not _RUN_ID.match(value):
        raise ValueError(HELP)
    return value


#: The field's type: 'previous', a run id, or MedianOfLast. The trigger form shows a text
#: field (params.py writes a mapping default in its string form).
Baseline = Annotated[
    str | MedianOfLast, BeforeValidator(_input, json_schema_input_type=str | MedianOfLast)
]


def describe(baseline: str | MedianOfLast) -> str:
    """The baseline as the report says it."""
    if isinstance(baseline, MedianOfLast):
        return f"the median of the last {baseline.median_of_last} comparable runs"
    if baseline == PREVIOUS:
        return "the previous run"
    return f"run {baseline}"


def text(baseline: str | MedianOfLast) -> str:
    """The compact form the trigger form shows ('previous', a run id, 'median_of_last: 5')."""
    if isinstance(baseline, MedianOfLast):
        return f"median_of_last: {baseline.median_of_last}"
    return baseline
