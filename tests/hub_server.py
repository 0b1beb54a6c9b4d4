"""A Hugging Face hub on loopback for the model-download tests: serves model repositories (local folders)
in the hub's layout, the part of its API that huggingface_hub's downloads use. It can hold one file half
sent until the test releases it, so a download is seen in progress without sleeping."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, repos: dict[str, Path], hold: str | None = None):
        self.repos = repos
        self.hold = hold  # a file name whose download stops half way until ``release`` is set
        self.holding = threading.Event()  # set once that half is sent
        self.release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        path = urlparse(request.path).path.strip("/")
        if path.startswith("api/models/"):
            repo = path.removeprefix("api/models/").split("/revision/")[0]
            if repo not in self.repos:
                return self.send(request, 404, b'{"error": "Repository not found"}', body)
            files = sorted(p for p in self.repos[repo].iterdir() if p.is_file())
            info = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                    "siblings": [{"rfilename": p.name, "size": p.stat().st_size} for p in files]}
            return self.send(request, 200, json.dumps(info).encode(), body)
        repo, _, rest = path.partition("/resolve/")
        name = rest.partition("/")[2]
        file = self.repos.get(repo, Path("/nonexistent")) / name
        if not name or not file.is_file():
            return self.send(request, 404, b'{"error": "Entry not found"}', body, {"X-Error-Code": "EntryNotFound"})
        data = file.read_bytes()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        if not body or name != self.hold:
            return self.send(request, 200, data, body, headers)
        self.start(request, 200, len(data), headers)
        request.wfile.write(data[:len(data) // 2])
        request.wfile.flush()
        self.holding.set()
        self.release.wait(120)
        request.wfile.write(data[len(data) // 2:])

    def send(self, request, status: int, data: bytes, body: bool, headers: dict[str, str] | None = None) -> None:
        self.start(request, status, len(data), headers or {})
        if body:
            request.wfile.write(data)

    @staticmethod
    def start(request, status: int, length: int, headers: dict[str, str]) -> None:
        request.send_response(status)
        for key, value in {"Content-Length": str(length), "Content-Type": "application/octet-stream",
                           **headers}.items():
            request.send_header(key, value)
        request.end_headers()


def tiny_clip_repository(tiny_clip_dir: Path, folder: Path) -> tuple[Path, list[str]]:
    """The tiny CLIP as a hub repository in ``folder``: its config, tokenizer and preprocessor, and real
    weights in shards (as large checkpoints come), named by model.safetensors.index.json; and the shards."""
    from transformers import CLIPConfig, CLIPModel

    shutil.copytree(tiny_clip_dir, folder)
    CLIPModel(CLIPConfig.from_pretrained(folder)).save_pretrained(folder, max_shard_size="4MB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return folder, sorted(set(index["weight_map"].values()))
