"""The pipeline's configuration, read from the environment once (see `.env.example`).

One switch per component picks its implementation; everything defaults to the embedded,
account-free implementation. Secrets are NOT read here: definitions passes `dagster.EnvVar`s for
them, so they are resolved at run time and never stored in config, logs or reprs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

CHOICES = {
    "TWEET_SOURCE": ("synthetic", "replay", "x_api"),
    "EVENT_STREAM": ("local", "eventhubs"),
    "STREAM_ENGINE": ("local", "databricks"),
    "DETECTOR": ("local", "rest"),
}


class SettingsError(ValueError):
    """A configuration variable is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    data_dir: str
    tweet_source: str = "synthetic"
    event_stream: str = "local"
    stream_engine: str = "local"
    detector: str = "local"
    delta_root: str | None = None
    tweet_query: str | None = None
    replay_path: str | None = None
    synthetic_seed: int = 7
    eventhub_name: str | None = None
    databricks_job_id: int | None = None
    detector_endpoint: str | None = None
    poll_interval_seconds: int = 60
    stream_check_interval_seconds: int = 30
    seed_history_hours: int = 168

    @property
    def delta_uri(self) -> str:
        return self.delta_root or str(Path(self.data_dir) / "delta")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ

        def choice(name: str) -> str:
            value = env.get(name, "").strip().lower() or CHOICES[name][0]
            if value not in CHOICES[name]:
                raise SettingsError(f"{name}={value!r} is not one of {', '.join(CHOICES[name])}")
            return value

        def integer(name: str, default: int | None, minimum: int = 0) -> int | None:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"{name} must be at least {minimum}, got {value}")
            return value

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        settings = cls(
            data_dir=str(Path(text("DATA_DIR") or ".data").resolve()),
            tweet_source=choice("TWEET_SOURCE"),
            event_stream=choice("EVENT_STREAM"),
            stream_engine=choice("STREAM_ENGINE"),
            detector=choice("DETECTOR"),
            delta_root=text("DELTA_ROOT"),
            tweet_query=text("TWEET_QUERY"),
            replay_path=text("REPLAY_PATH"),
            synthetic_seed=integer("SYNTHETIC_SEED", 7),
            eventhub_name=text("EVENTHUB_NAME"),
            databricks_job_id=integer("DATABRICKS_JOB_ID", None, minimum=1),
            detector_endpoint=text("DETECTOR_ENDPOINT"),
            poll_interval_seconds=integer("POLL_INTERVAL_SECONDS", 60, minimum=5),
            stream_check_interval_seconds=integer("STREAM_CHECK_INTERVAL_SECONDS", 30, minimum=5),
            seed_history_hours=integer("SEED_HISTORY_HOURS", 168),
        )
        settings._check_required()
        return settings

    def _check_required(self) -> None:
        needs = {
            "REPLAY_PATH": self.tweet_source == "replay" and not self.replay_path,
            "EVENTHUB_NAME": self.event_stream == "eventhubs" and not self.eventhub_name,
            "DATABRICKS_JOB_ID": self.stream_engine == "databricks" and not self.databricks_job_id,
            "DETECTOR_ENDPOINT": self.detector == "rest" and not self.detector_endpoint,
        }
        missing = [name for name, needed in needs.items() if needed]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")
