"""Error type and codes of the Anomaly Detector contract.

Every problem with a request is reported as a :class:`DetectionError` whose ``code`` is one of the
codes below; the HTTP server turns it into ``400 {"code": ..., "message": ...}``, the CLI into a
non-zero exit with ``error <code>: <message>`` on stderr.

| code | raised for |
|---|---|
| ``InvalidSeries`` | fewer than 12 or more than 8640 points, series not a list, timestamps not ascending, duplicated or off the granularity grid, too many grid slots missing |
| ``BadArgument`` | a point that is not an object, a missing / null / non-numeric / non-finite value, a missing or malformed timestamp |
| ``InvalidModelArgument`` | maxAnomalyRatio, sensitivity, period, stableTrendWindow or threshold of the wrong type or out of range; period given with fewer than 2 periods + 1 points |
| ``InvalidGranularity`` | granularity that is not one of the documented names |
| ``InvalidCustomInterval`` | customInterval that is not a positive integer |
| ``InvalidImputeMode`` | imputeMode that is not one of the documented names |
| ``InvalidImputeFixedValue`` | imputeMode ``fixed`` without a finite numeric imputeFixedValue |
| ``RequiredSeries`` | the ``series`` field is missing |
| ``RequiredGranularity`` | the ``granularity`` field is missing where needed (v1.0 entire/last/changepoint) |
| ``InvalidJsonFormat`` | the body is not JSON, or not a JSON object |
| ``RequestFailed`` | client side only: the service could not be reached or kept failing after retries |
| ``Unauthorized`` | client side only: the service answered 401 |
"""

from __future__ import annotations

INVALID_SERIES = "InvalidSeries"
BAD_ARGUMENT = "BadArgument"
INVALID_MODEL_ARGUMENT = "InvalidModelArgument"
INVALID_GRANULARITY = "InvalidGranularity"
INVALID_CUSTOM_INTERVAL = "InvalidCustomInterval"
INVALID_IMPUTE_MODE = "InvalidImputeMode"
INVALID_IMPUTE_FIXED_VALUE = "InvalidImputeFixedValue"
REQUIRED_SERIES = "RequiredSeries"
REQUIRED_GRANULARITY = "RequiredGranularity"
INVALID_JSON_FORMAT = "InvalidJsonFormat"
REQUEST_FAILED = "RequestFailed"
UNAUTHORIZED = "Unauthorized"


class DetectionError(Exception):
    """A request the detector refuses, with the contract's error ``code`` and a human ``message``."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def to_dict(self) -> dict[str, str]:
        """The API's error body."""
        return {"code": self.code, "message": self.message}
