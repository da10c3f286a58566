"""A small OpenAI-compatible server on loopback that misbehaves on purpose and counts requests (tests only).

Behaviour is set per instance: ``form`` picks where reasoning goes (the five formats), ``fail_first`` answers the
first N requests with ``fail_status`` (429 with Retry-After, or 500), ``malformed`` returns a body that is not JSON,
``delay`` slows every answer. Every request is recorded with its arrival time and the user text.
"""

import json
import socket
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Behaviour:
    form: str = "inline"  # inline | prefilled | reasoning | reasoning_content | reasoning_details | none
    reasoning: str = "首先分析问题。然后逐步推导。因此得出结论。"
    answer: str | None = "答案"  # None: echo "回答：<user text>", distinct per request
    fail_first: int = 0
    fail_status: int = 429
    retry_after: float = 1.0
    malformed: bool = False
    delay: float = 0.0
    requests: list = field(default_factory=list)


def message_for(b: Behaviour, user: str) -> dict:
    answer = f"回答：{user}" if b.answer is None else b.answer
    if b.form == "inline":
        return {"role": "assistant", "content": f"<think>\n{b.reasoning}\n</think>\n\n{answer}"}
    if b.form == "prefilled":
        return {"role": "assistant", "content": f"{b.reasoning}\n</think>\n\n{answer}"}
    if b.form == "reasoning_details":
        return {"role": "assistant", "content": answer,
                "reasoning_details": [{"type": "reasoning.text", "text": b.reasoning}]}
    if b.form in ("reasoning", "reasoning_content"):
        return {"role": "assistant", "content": answer, b.form: b.reasoning}
    return {"role": "assistant", "content": answer}


def make_app(b: Behaviour):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        user = body["messages"][-1]["content"]
        b.requests.append({"t": time.monotonic(), "user": user, "body": body})
        if b.delay:
            import asyncio

            await asyncio.sleep(b.delay)
        if len(b.requests) <= b.fail_first:
            headers = {"retry-after": str(b.retry_after)} if b.fail_status == 429 else {}
            return JSONResponse({"error": {"message": "slow down", "type": "rate_limit"}}, b.fail_status, headers)
        if b.malformed:
            return PlainTextResponse("<html>gateway error</html>", 200, media_type="application/json")
        msg = message_for(b, user)
        if body.get("stream"):
            return StreamingResponse(_chunks(msg), media_type="text/event-stream")
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


def _chunks(msg: dict):
    """Split every text field of the message into small deltas, the way servers stream."""
    for key, value in msg.items():
        if key == "role":
            continue
        pieces = [value] if not isinstance(value, str) else [value[i:i + 3] for i in range(0, len(value), 3)]
        for piece in pieces:
            delta = {key: piece if isinstance(value, str) else value}
            yield f"data: {json.dumps({'id': 'x', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'm', 'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n"
    yield f"data: {json.dumps({'id': 'x', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'm', 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
    yield "data: [DONE]\n\n"


class ServerThread:
    """uvicorn serving make_app(b) on 127.0.0.1 in a thread; ``url`` is the /v1 base."""

    def __init__(self, behaviour: Behaviour, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.behaviour = behaviour
        config = uvicorn.Config(make_app(behaviour), host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main() -> None:
    """Run as a separate process (for kill tests): python tests/endpoint_server.py PORT DELAY."""
    import sys

    import uvicorn

    b = Behaviour(delay=float(sys.argv[2]), answer=None)
    uvicorn.run(make_app(b), host="127.0.0.1", port=int(sys.argv[1]), log_level="error")


if __name__ == "__main__":
    main()
