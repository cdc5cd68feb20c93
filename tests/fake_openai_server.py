"""A tiny OpenAI-compatible server that misbehaves on purpose, for the HTTP backend's fault tests.

Run as `python tests/fake_openai_server.py MODE`; it prints its port, then serves.
MODE: ok [ROOT] | flaky (500 on the first 2 requests) | error500 | garbage | slow | context | judge.
Every reply to POST /v1/chat/completions is logged to stdout as `served N`; it echoes the last
message ("echo: …"), or "continue: …" when asked to continue it (vLLM's prefill fields).
judge: a judge that writes "Rating: [[7]]" (or "7]]" after a prefill) and, when the request
asks for `logprobs`, reports its tokens with OpenAI's `top_logprobs`: 7 (0.6), 8 (0.3), 1 (0.1);
after a prefill ending in "[[1" the next token is 0 or "]]", even odds.
"""

import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1]
counter = {"n": 0}
lock = threading.Lock()


RATING = [("7", 0.6), ("8", 0.3), ("1", 0.1)]


def judge_tokens(prefill: str) -> list[tuple[str, float, list]]:
    """(token, probability, alternatives) of the judge's text after `prefill`."""
    if prefill.endswith("[[1"):
        return [("0", 0.5, [("0", 0.5), ("]]", 0.5)])]
    rating = [("7", 0.6, RATING), ("]]", 1.0, [("]]", 1.0)])]
    return rating if prefill.endswith("[[") else [("Fine. Rating: [[", 1.0, [("Fine. Rating: [[", 1.0)])] + rating


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            counter["n"] += 1
            n = counter["n"]
        if MODE == "error500" or (MODE == "flaky" and n <= 2):
            return self._send(500, b'{"error": {"message": "engine crashed"}}')
        if MODE == "garbage":
            return self._send(200, b"<html>502 Bad Gateway</html>")
        if MODE == "context":
            return self._send(400, json.dumps({"error": {"message": "This model's maximum context length "
                                                         "is 2048 tokens. However, you requested 9000 tokens."}}).encode())
        if MODE == "slow":
            time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 5)
        question = body["messages"][-1]["content"]
        # vLLM's prefill fields: continue the final message instead of starting a turn.
        prefill = body.get("continue_final_message") and body.get("add_generation_prompt") is False
        text = f"{'continue' if prefill else 'echo'}: {question}"
        choice = {"finish_reason": "stop"}
        if MODE == "judge":
            tokens = judge_tokens(question if prefill else "")
            text = "".join(t for t, _, _ in tokens)
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [
                    {"token": t, "logprob": math.log(p), "top_logprobs": [
                        {"token": a, "logprob": math.log(q)} for a, q in top][:body.get("top_logprobs", 0)]}
                    for t, p, top in tokens]}
        choice["message"] = {"role": "assistant", "content": text}
        reply = {"choices": [choice], "usage": {"prompt_tokens": len(question.split()), "completion_tokens": 3}}
        self._send(200, json.dumps(reply).encode())
        print(f"served {n}", flush=True)

    def do_GET(self):
        """/v1/models lists model "m", served from the path in argv[2] (mode ok), as vLLM lists it."""
        root = sys.argv[2] if MODE == "ok" and len(sys.argv) > 2 else "/weights/m"
        card = {"id": "m", "object": "model", "created": time.time(), "owned_by": "fake", "root": root,
                "permission": [{"id": f"modelperm-{time.time()}"}]}
        self._send(200, json.dumps({"object": "list", "data": [card]}).encode())

    def _send(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
