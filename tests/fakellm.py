"""A fake OpenAI-compatible chat-completions server on loopback: it speaks real HTTP (JSON and SSE) and
answers with scripted replies; it stands in for a remote LLM, which cannot run in CI."""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer of the fake server."""

    status: int = 200
    content_type: str = "application/json"
    chunks: list[bytes] = field(default_factory=list)  # sent with chunked transfer encoding when streamed
    streamed: bool = False
    delay: float = 0.0  # seconds before answering
    gate: threading.Event | None = None  # the stream pauses after its first content chunk until set


def completion(content: str) -> Reply:
    body = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
    return Reply(chunks=[json.dumps(body).encode()])


def sse(*pieces: str, gate: threading.Event | None = None) -> Reply:
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": "x",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    chunks = [
        event({"role": "assistant"}),
        *(event({"content": p}) for p in pieces),
        event({}, "stop"),
        b"data: [DONE]\n\n",
    ]
    return Reply(content_type="text/event-stream", chunks=chunks, streamed=True, gate=gate)


def words(text: str) -> list[str]:
    """The text in small streamed pieces, as a model would send it."""
    return re.findall(r"\S+\s*|\s+", text)


def error(status: int, message: str) -> Reply:
    return Reply(
        status=status, chunks=[json.dumps({"error": {"message": message, "type": "server_error"}}).encode()]
    )


Script = Reply | Callable[[dict[str, Any]], Reply]


class FakeLLM(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: deque[Script] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"} as received
        self.stop = threading.Event()

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeLLM]:
        """A server answering on a background thread until the block ends."""
        server = cls()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.stop.set()
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) closes the socket under the handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeLLM

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)  # a request the client could not encode fails the test here
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        script = self.server.script.popleft() if self.server.script else error(500, "no scripted reply")
        reply = script(body) if callable(script) else script
        if reply.delay and self.server.stop.wait(reply.delay):
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.streamed:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for i, chunk in enumerate(reply.chunks):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if i == 1 and reply.gate is not None:
                    reply.gate.wait(10)
            self.wfile.write(b"0\r\n\r\n")
        else:
            payload = b"".join(reply.chunks)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        self.wfile.flush()


_BLOCK = re.compile(r"^\[(\d+)\] \(", re.M)


def passages_of(body: dict[str, Any]) -> dict[int, str]:
    """The numbered passage blocks of the user message the server received."""
    user = body["messages"][-1]["content"]
    marks = list(_BLOCK.finditer(user))
    ends = [m.start() for m in marks[1:]] + [user.find("\n\nQuestion:")]
    return {int(m.group(1)): user[m.start() : end] for m, end in zip(marks, ends, strict=True)}
