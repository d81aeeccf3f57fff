"""Test support: a real OpenAI-compatible chat server on 127.0.0.1 that answers from a table of canned rewrites."""
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    """Answers `/v1/chat/completions` like an OpenAI server; records every request it gets.

    `answers` maps (task, user text) to the reply, task being "paraphrase", "en" or "zh" (the
    translation target named in the system prompt); unknown texts are echoed back. `status`
    forces an HTTP error status for every request.
    """

    def __init__(self, answers: dict[tuple[str, str], str] | None = None, status: int = 200):
        self.answers = answers or {}
        self.status = status
        self.requests: list[dict] = []
        self.url = ""

    def reply(self, body: dict) -> str:
        """The canned reply for one request body."""
        system = body["messages"][0]["content"]
        text = body["messages"][-1]["content"]
        if "Paraphrase" in system:
            task = "paraphrase"
        else:
            task = "zh" if "into Simplified Chinese" in system else "en"
        return self.answers.get((task, text), text)


def _handler(server: ChatServer):
    """A request handler class bound to one ChatServer."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found"}})
            if server.status != 200:
                return self._send(server.status, {"error": {"message": "forced"}})
            content = server.reply(body)
            self._send(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            })

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep test output quiet
            pass

    return Handler


@contextmanager
def running(server: ChatServer):
    """Serve `server` on a free 127.0.0.1 port for the duration of the block; sets `server.url`."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
