"""The pipeline's configuration, read from the environment once (see `.env.example`).

One switch per component picks its implementation; everything defaults to the embedded,
account-free implementation. Secrets are NOT read here: definitions passes `dagster.EnvVar`s for
them, so they are resolved at run time and never stored in config, logs or reprs.

Every path and date is checked here, at load (`dagster definitions validate`, `dagster dev`), so a
bad one stops start-up with one line naming the variable and what to do, instead of failing deep
inside the first run: `DATA_DIR` and a local `DELTA_ROOT` must be (or be creatable as)
directories, `REPLAY_PATH` a readable file of tweets, and `PARTITIONS_START` no earlier than the
tweet source can produce data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

from anomaly_pipeline.detection.request import DEFAULT_SENSITIVITY, MAX_SENSITIVITY
from anomaly_pipeline.partitions import PARTITION_FORMAT, partitions_start
from anomaly_pipeline.resources.delta_location import DeltaLocationError, is_remote, parse_abfss
from anomaly_pipeline.resources.event_stream import DEFAULT_CONSUMER_GROUP
from anomaly_pipeline.resources.local_tweet_sources import ReplayTweetSource, TweetFileError
from anomaly_pipeline.resources.tweet_source import TWITTER_EPOCH_MS

CHOICES = {
    "TWEET_SOURCE": ("synthetic", "replay", "x_api"),
    "EVENT_STREAM": ("local", "eventhubs"),
    "STREAM_ENGINE": ("local", "databricks"),
    "DETECTOR": ("local", "rest"),
}


# Secret variables per choice: never read here, only named (definitions pass `dagster.EnvVar`s).
SECRETS = {
    ("TWEET_SOURCE", "x_api"): ("X_BEARER_TOKEN",),
    ("EVENT_STREAM", "eventhubs"): ("EVENTHUB_CONNECTION_STRING",),
    ("STREAM_ENGINE", "databricks"): ("DATABRICKS_HOST", "DATABRICKS_TOKEN"),
}
# Optional: sent only when set (a keyless endpoint, such as `serve-detector` without a key, works).
DETECTOR_KEY = "ANOMALY_DETECTOR_KEY"


SYNTHETIC_FIRST_DAY = datetime.fromtimestamp(TWITTER_EPOCH_MS / 1000, tz=timezone.utc).date() + timedelta(days=1)
"""The first whole day the synthetic source can generate: its ids are Twitter snowflakes, whose
epoch is 2010-11-04T01:42Z."""


class SettingsError(ValueError):
    """A configuration variable is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    data_dir: str
    tweet_source: str = CHOICES["TWEET_SOURCE"][0]
    event_stream: str = CHOICES["EVENT_STREAM"][0]
    stream_engine: str = CHOICES["STREAM_ENGINE"][0]
    detector: str = CHOICES["DETECTOR"][0]
    delta_root: str | None = None
    tweet_query: str | None = None
    replay_path: str | None = None
    synthetic_seed: int = 7
    eventhub_name: str | None = None
    eventhub_consumer_group: str = DEFAULT_CONSUMER_GROUP
    databricks_job_id: int | None = None
    detector_endpoint: str | None = None
    detector_key_set: bool = False  # whether DETECTOR_KEY is set; its value is never read here
    detector_sensitivity: int = DEFAULT_SENSITIVITY  # 0..MAX_SENSITIVITY, the false-alarm budget (README)
    poll_interval_seconds: int = 60
    stream_check_interval_seconds: int = 30
    seed_history_hours: int = 168
    partitions_start: str = ""  # unset: the partitions follow the data (see partitions.py)

    @property
    def delta_uri(self) -> str:
        return self.delta_root or str(Path(self.data_dir) / "delta")

    @property
    def delta_is_remote(self) -> bool:
        return is_remote(self.delta_uri)

    def required_secrets(self) -> tuple[str, ...]:
        """Names of the secret variables the chosen implementations need (values never read).

        An abfss:// Delta root also needs a storage credential, checked by `DeltaLocation.from_root`.
        """
        return tuple(
            name for (switch, value), names in SECRETS.items() if getattr(self, switch.lower()) == value
            for name in names
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        default = {field.name: field.default for field in fields(cls)}

        def choice(name: str) -> str:
            value = env.get(name, "").strip().lower() or CHOICES[name][0]
            if value not in CHOICES[name]:
                raise SettingsError(f"{name}={value!r} is not one of {', '.join(CHOICES[name])}")
            return value

        def integer(name: str, default: int | None, minimum: int = 0, maximum: int | None = None) -> int | None:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"{name} must be at least {minimum}, got {value}")
            if maximum is not None and value > maximum:
                raise SettingsError(f"{name} must be at most {maximum}, got {value}")
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
            synthetic_seed=integer("SYNTHETIC_SEED", default["synthetic_seed"]),
            eventhub_name=text("EVENTHUB_NAME"),
            eventhub_consumer_group=text("EVENTHUB_CONSUMER_GROUP") or default["eventhub_consumer_group"],
            databricks_job_id=integer("DATABRICKS_JOB_ID", None, minimum=1),
            detector_endpoint=text("DETECTOR_ENDPOINT"),
            detector_key_set=text(DETECTOR_KEY) is not None,
            detector_sensitivity=integer(
                "DETECTOR_SENSITIVITY", default["detector_sensitivity"], minimum=0, maximum=MAX_SENSITIVITY
            ),
            poll_interval_seconds=integer(
                "POLL_INTERVAL_SECONDS", default["poll_interval_seconds"], minimum=5
            ),
            stream_check_interval_seconds=integer(
                "STREAM_CHECK_INTERVAL_SECONDS", default["stream_check_interval_seconds"], minimum=5
            ),
            seed_history_hours=integer("SEED_HISTORY_HOURS", default["seed_history_hours"]),
            partitions_start=text("PARTITIONS_START") or default["partitions_start"],
        )
        settings._check_required()
        settings._check_consistent()
        settings._check_paths()
        settings._check_partitions_start()
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

    def _check_consistent(self) -> None:
        if self.delta_root and is_remote(self.delta_root):
            try:
                parse_abfss(self.delta_root, "DELTA_ROOT")
            except DeltaLocationError as error:
                raise SettingsError(str(error)) from None
        if self.detector_endpoint and not self.detector_endpoint.startswith(("http://", "https://")):
            raise SettingsError(
                f"DETECTOR_ENDPOINT must be an http(s) URL, got {self.detector_endpoint!r}"
            )
        if self.stream_engine == "databricks":
            # The Databricks job reads the stream and writes the tables from the cloud: it can see
            # neither the embedded event log nor a local directory.
            if self.event_stream != "eventhubs":
                raise SettingsError(
                    "STREAM_ENGINE=databricks needs EVENT_STREAM=eventhubs (the Databricks job "
                    "cannot read the embedded event log)"
                )
            if not self.delta_is_remote:
                raise SettingsError(
                    "STREAM_ENGINE=databricks needs DELTA_ROOT=abfss://<container>@<account>"
                    ".dfs.core.windows.net/<prefix> (the job cannot write a local directory)"
                )

    def _check_paths(self) -> None:
        _check_directory("DATA_DIR", self.data_dir)
        if self.delta_root and not self.delta_is_remote:
            _check_directory("DELTA_ROOT", self.delta_root)
        if self.tweet_source == "replay":
            path = Path(self.replay_path)
            if not path.exists():
                raise SettingsError(
                    f"REPLAY_PATH={self.replay_path} does not exist: set it to a CSV or JSONL "
                    "file of recorded tweets"
                )
            if not path.is_file():
                raise SettingsError(
                    f"REPLAY_PATH={self.replay_path} is not a file: set it to a CSV or JSONL "
                    "file of recorded tweets"
                )

    def _check_partitions_start(self) -> None:
        if not self.partitions_start:
            return  # derived from the data, which the source produced
        try:
            start = datetime.strptime(partitions_start(self.partitions_start), PARTITION_FORMAT).date()
        except ValueError as error:
            raise SettingsError(str(error)) from None
        first, source = self._first_data_day()
        if first is not None and start < first:
            raise SettingsError(
                f"PARTITIONS_START {start} is before {source} ({first}): the source has no "
                f"tweets for those hours; set PARTITIONS_START={first} or later"
            )

    def _first_data_day(self) -> tuple[date | None, str]:
        """The first day the tweet source can produce tweets for, and how to name it (None: the
        source has no fixed start, e.g. the X API's moving 7-day window)."""
        if self.tweet_source == "synthetic":
            return SYNTHETIC_FIRST_DAY, "the first day the synthetic source can generate"
        if self.tweet_source == "replay":
            try:
                tweets = ReplayTweetSource(path=self.replay_path).load()
            except (TweetFileError, UnicodeDecodeError) as error:
                raise SettingsError(f"REPLAY_PATH is not a readable tweet file: {error}") from None
            if not tweets:
                raise SettingsError(f"REPLAY_PATH={self.replay_path} holds no tweets")
            first = min(tweet.created_at for tweet in tweets).date()
            return first, "the first tweet in REPLAY_PATH"
        return None, ""


def _check_directory(name: str, value: str) -> None:
    """`value` is a directory or can be created as one: neither it nor a parent is a file."""
    path = Path(value)
    for existing in (path, *path.parents):
        if not existing.exists():
            continue
        if existing.is_dir():
            return
        where = "is a file" if existing == path else f"is under the file {existing}"
        raise SettingsError(f"{name}={value} {where}: set {name} to a directory (created if missing)")
