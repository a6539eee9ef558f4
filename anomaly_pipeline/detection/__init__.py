"""Anomaly detection engine and the retired Azure Anomaly Detector API contract it keeps.

- ``detect_entire`` / ``detect_last`` / ``detect_change_points``: the JSON API in-process
  (request dict in, response dict out), raising :class:`DetectionError` with the API's codes.
- ``parse_request``: validation and gridding of a request into the engine's float series.
- the numeric engine (``detect_*_values`` on numpy arrays) and its result dataclasses.

No Dagster import here: the Dagster resources live in ``anomaly_pipeline.resources.detector``.
"""

import importlib

# Imported on first use, so that `anomaly-pipeline --help` and light modules such as
# `detection.errors` do not pay for numpy, scipy and the engine.
_EXPORTS = {
    "detect_change_points": "api",
    "detect_entire": "api",
    "detect_last": "api",
    "detect_table": "api",
    "ChangePointResult": "engine",
    "LastResult": "engine",
    "SeriesResult": "engine",
    "detect_change_points_values": "engine",
    "detect_entire_values": "engine",
    "detect_last_values": "engine",
    "detect_period": "engine",
    "detect_stream_values": "engine",
    "DetectionError": "errors",
    "DetectRequest": "request",
    "infer_granularity": "request",
    "parse_request": "request",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
