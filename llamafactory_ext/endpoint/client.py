"""A small chat-completions client on the official ``openai`` package: timeouts, bounded retries with backoff and
jitter that honour ``Retry-After`` on 429/5xx (the SDK's own), a concurrency limit, and the success-only cache.

The API key is read from an environment variable named in the config and never written anywhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ExtError
from .cache import ResponseCache, cache_key
from .reasoning import Parsed, StreamAccumulator, parse_message

# Sampling keys the OpenAI protocol names; anything else (e.g. LF's do_sample, vLLM's top_k) travels in extra_body.
_STANDARD = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "n")


class EndpointError(ExtError):
    """An endpoint failed after its retries, or cannot be reached: ``URL: reason — fix``."""


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # why: the name of the variable is recorded, its value never is
    timeout: float = Field(120.0, gt=0)  # why: long reasoning answers take minutes on a busy server
    max_retries: int = Field(5, ge=0, le=20)  # why: rides out a burst of 429s without hammering the server
    concurrency: int = Field(4, ge=1, le=256)  # why: LF's HF engine answers one request at a time anyway
    stream: bool = False


@dataclass(frozen=True)
class Completion:
    parsed: Parsed
    message: dict
    finish_reason: str | None
    cached: bool


class ChatClient:
    """complete() one conversation, or map() many with the concurrency limit; successes go to the cache."""

    def __init__(self, config: EndpointConfig, cache_path: Path | None = None) -> None:
        import openai

        self.config = config
        self.cache = ResponseCache(cache_path) if cache_path else None
        key = os.environ.get(config.api_key_env) or "EMPTY"  # why: local servers (LF, vLLM) accept any key
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout,
                                     max_retries=config.max_retries)
        self.requests = 0
        self._count_lock = threading.Lock()

    def key(self, messages: list[dict], params: dict, prompt_version: str = "") -> str:
        return cache_key(self.config.base_url, self.config.model, messages, params, prompt_version)

    def complete(self, messages: list[dict], params: dict | None = None, prompt_version: str = "") -> Completion:
        params = dict(params or {})
        key = self.key(messages, params, prompt_version)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            return Completion(parse_message(hit["message"]), hit["message"], hit.get("finish_reason"), True)
        message, finish = self._request(messages, params)
        if self.cache is not None:
            self.cache.put(key, {"message": message, "finish_reason": finish})
        return Completion(parse_message(message), message, finish, False)

    def map(self, jobs: Iterable[tuple[list[dict], dict]], prompt_version: str = "",
            on_done: Callable[[int, Completion | EndpointError], None] | None = None) -> Iterator[
                tuple[int, Completion | EndpointError]]:
        """Run jobs with at most ``concurrency`` in flight; yields (index, Completion or EndpointError) as done.

        On Ctrl-C (or any exit from the loop) jobs not yet started are cancelled: only those in flight finish."""
        pool = ThreadPoolExecutor(self.config.concurrency)
        try:
            futures = {pool.submit(self._safe, m, p, prompt_version): i for i, (m, p) in enumerate(jobs)}
            for future in as_completed(futures):
                result = (futures[future], future.result())
                if on_done:
                    on_done(*result)
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _safe(self, messages: list[dict], params: dict, prompt_version: str) -> Completion | EndpointError:
        try:
            return self.complete(messages, params, prompt_version)
        except EndpointError as err:
            return err

    def _request(self, messages: list[dict], params: dict) -> tuple[dict, str | None]:
        import openai

        standard = {k: v for k, v in params.items() if k in _STANDARD}
        extra = {k: v for k, v in params.items() if k not in _STANDARD}
        with self._count_lock:
            self.requests += 1
        try:
            if self.config.stream:
                return self._streamed(messages, standard, extra)
            resp = self._client.chat.completions.create(model=self.config.model, messages=messages,
                                                        extra_body=extra or None, **standard)
            choice = resp.choices[0]
            return choice.message.model_dump(exclude_none=True), choice.finish_reason
        except openai.APIError as exc:
            raise self._explain(exc) from None
        except (ValueError, TypeError, AttributeError, IndexError) as exc:  # a body that is not a completion
            raise EndpointError(f"{self.config.base_url}: malformed response ({type(exc).__name__}: {exc}) — "
                                "check that the URL is an OpenAI-compatible /v1 endpoint") from None

    def _streamed(self, messages: list[dict], standard: dict, extra: dict) -> tuple[dict, str | None]:
        acc = StreamAccumulator()
        stream = self._client.chat.completions.create(model=self.config.model, messages=messages, stream=True,
                                                      extra_body=extra or None, **standard)
        for chunk in stream:
            for choice in chunk.choices:
                acc.add(choice.delta.model_dump(exclude_none=True), choice.finish_reason)
        return acc.message(), acc.finish_reason

    def _explain(self, exc: Exception) -> EndpointError:
        import openai

        url, n = self.config.base_url, self.config.max_retries
        if isinstance(exc, openai.APIConnectionError):
            return EndpointError(f"{url}: cannot connect ({type(exc).__name__}) after {n} retries — start the server "
                                 "or fix --endpoint; finished items are cached and will not be sent again")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return EndpointError(f"{url}: refused the API key (HTTP {exc.status_code}) — set the environment "
                                 f"variable {self.config.api_key_env}")
        if isinstance(exc, openai.RateLimitError):
            return EndpointError(f"{url}: still rate-limited (429) after {n} retries — lower --concurrency, wait, "
                                 "and rerun to continue from the cache")
        if isinstance(exc, openai.APIStatusError):
            return EndpointError(f"{url}: HTTP {exc.status_code} ({_short(exc.message)}) after {n} retries — "
                                 "check the server log; rerun to continue from the cache")
        return EndpointError(f"{url}: malformed response ({_short(str(exc))}) — check that the URL is an "
                             "OpenAI-compatible /v1 endpoint")

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self._client.close()


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
