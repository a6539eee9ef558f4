"""Anomaly detection engine and the retired Azure Anomaly Detector API contract it keeps.

- ``detect_entire`` / ``detect_last`` / ``detect_change_points``: the JSON API in-process
  (request dict in, response dict out), raising :class:`DetectionError` with the API's codes.
- ``parse_request``: validation and gridding of a request into the engine's float series.
- the numeric engine (``detect_*_values`` on numpy arrays) and its result dataclasses.

No Dagster import here: the Dagster resources live in ``anomaly_pipeline.resources.detector``.
"""

from anomaly_pipeline.detection.api import (
    detect_change_points,
    detect_entire,
    detect_last,
    detect_table,
)
from anomaly_pipeline.detection.engine import (
    ChangePointResult,
    LastResult,
    SeriesResult,
    detect_change_points_values,
    detect_entire_values,
    detect_last_values,
    detect_period,
    detect_stream_values,
)
from anomaly_pipeline.detection.errors import DetectionError
from anomaly_pipeline.detection.request import DetectRequest, infer_granularity, parse_request

__all__ = [
    "ChangePointResult",
    "DetectRequest",
    "DetectionError",
    "LastResult",
    "SeriesResult",
    "detect_change_points",
    "detect_change_points_values",
    "detect_entire",
    "detect_entire_values",
    "detect_last",
    "detect_last_values",
    "detect_period",
    "detect_stream_values",
    "detect_table",
    "infer_granularity",
    "parse_request",
]
