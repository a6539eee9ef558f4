"""A fake X API v2 recent-search endpoint, mounted as a `requests` transport adapter.

Everything above the socket is real: tweepy builds the request, `requests` sends it through this
adapter, tweepy parses the JSON and raises its own exceptions from the status codes. The adapter
answers `GET https://api.twitter.com/2/tweets/search/recent` with the API's JSON shapes, newest
first, `max_results` per page, `meta.next_token` while older results remain; `since_id`,
`start_time` (inclusive) and `end_time` (exclusive) filter as the API documents. Faults (429 with
`x-rate-limit-reset`, 5xx, timeouts) are scripted per request number.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

TWITTER_EPOCH_MS = 1288834974657
SEARCH_URL = "https://api.twitter.com/2/tweets/search/recent"


def snowflake(moment: datetime, sequence: int) -> int:
    return ((int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22) | (sequence & 0xFFF)


def x_time(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_x_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass
class Fault:
    status: int = 0  # 0 = raise `exception` instead of answering
    headers: dict[str, str] = field(default_factory=dict)
    exception: type[Exception] | None = None
    body: dict | None = None


class FakeXApi(BaseAdapter):
    def __init__(self, token: str):
        super().__init__()
        self.token = token
        self.tweets: dict[int, dict] = {}
        self.requests: list[dict[str, list[str]]] = []
        self.timeouts: list[object] = []
        self.faults: dict[int, Fault] = {}  # request number (1-based) -> fault
        self._sequence = 0

    # -------------------------------------------------------------- test API

    def post(self, created_at: datetime, likes: int = 0, referenced: list[dict] | None = None,
             lang: str = "en") -> int:
        self._sequence += 1
        tweet_id = snowflake(created_at, self._sequence)
        item = {
            "id": str(tweet_id),
            "text": f"Trying #Azure event hubs, tweet {self._sequence}",
            "created_at": x_time(created_at),
            "public_metrics": {
                "retweet_count": self._sequence % 3,
                "reply_count": self._sequence % 2,
                "like_count": likes,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": 10 * likes,
            },
            "lang": lang,
            "edit_history_tweet_ids": [str(tweet_id)],
        }
        if referenced:
            item["referenced_tweets"] = referenced
        self.tweets[tweet_id] = item
        return tweet_id

    def fail(self, request_number: int, fault: Fault) -> None:
        self.faults[request_number] = fault

    # -------------------------------------------------------------- transport

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.timeouts.append(timeout)
        url = urlsplit(request.url)
        params = parse_qs(url.query)
        self.requests.append(params)
        number = len(self.requests)
        fault = self.faults.get(number)
        if fault is not None:
            if fault.exception is not None:
                raise fault.exception(f"fake failure of request {number}", request=request)
            body = fault.body or {"title": "Fault", "detail": "scripted", "type": "about:blank"}
            return self._response(request, fault.status, body, fault.headers)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._response(request, 401, {
                "title": "Unauthorized", "type": "about:blank", "status": 401,
                "detail": "Unauthorized"})
        if f"{url.scheme}://{url.netloc}{url.path}" != SEARCH_URL:
            return self._response(request, 404, {"title": "Not Found"})
        return self._response(request, 200, self._search(params),
                              {"x-rate-limit-remaining": "449"})

    def close(self):
        pass

    def _search(self, params: dict[str, list[str]]) -> dict:
        one = {k: v[0] for k, v in params.items()}
        assert "query" in one and "tweet.fields" in one
        page_size = int(one.get("max_results", "10"))
        assert 10 <= page_size <= 100
        ids = sorted(self.tweets, reverse=True)
        if "since_id" in one:
            ids = [i for i in ids if i > int(one["since_id"])]
        if "start_time" in one:
            start = parse_x_time(one["start_time"])
            ids = [i for i in ids if self._created(i) >= start]
        if "end_time" in one:
            end = parse_x_time(one["end_time"])
            ids = [i for i in ids if self._created(i) < end]
        if "next_token" in one:
            below, snapshot = json.loads(base64.urlsafe_b64decode(one["next_token"]))
            ids = [i for i in ids if i < below and i <= snapshot]
            snapshot_top = snapshot
        else:
            snapshot_top = ids[0] if ids else 0
        page, rest = ids[:page_size], ids[page_size:]
        if not page:
            return {"meta": {"result_count": 0}}
        fields = set(one["tweet.fields"].split(","))
        data = [self._project(self.tweets[i], fields) for i in page]
        meta = {"newest_id": str(page[0]), "oldest_id": str(page[-1]), "result_count": len(page)}
        if rest:
            meta["next_token"] = base64.urlsafe_b64encode(
                json.dumps([page[-1], snapshot_top]).encode()).decode()
        return {"data": data, "meta": meta}

    def _created(self, tweet_id: int) -> datetime:
        return datetime.strptime(self.tweets[tweet_id]["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ"
                                 ).replace(tzinfo=timezone.utc)

    @staticmethod
    def _project(item: dict, fields: set[str]) -> dict:
        default = {"id", "text", "edit_history_tweet_ids"}
        return {k: v for k, v in item.items() if k in default or k in fields}

    @staticmethod
    def _response(request, status: int, body: dict, headers: dict[str, str] | None = None):
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 401: "Unauthorized", 404: "Not Found",
                           429: "Too Many Requests", 503: "Service Unavailable",
                           500: "Internal Server Error"}.get(status, "")
        response._content = json.dumps(body).encode()
        response.headers = CaseInsensitiveDict(
            {"content-type": "application/json; charset=utf-8", **(headers or {})})
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response
