"""A fake Hugging Face Hub on loopback, serving model folders to the real huggingface_hub client.

It answers the routes huggingface_hub uses: HEAD/GET `/<repo>/resolve/<rev>/<file>`
(with Range), and `/api/models/<repo>/safetensors-metadata/<index>` (every shard
header in one response). Errors carry the `X-Error-Code` headers the real Hub
sends, so the client raises its real exception classes. Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug import Request, Response

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_SHARDED = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/safetensors-metadata/(?P<file>.+)$")


@dataclass
class Repo:
    folder: Path
    gated: bool = False


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    token: str = "hf_valid_token_0123456789"
    one_request_headers: bool = True  # serve the sharded-metadata endpoint
    requests: list[str] = field(default_factory=list)

    def add(self, repo_id: str, folder: Path, gated: bool = False) -> None:
        self.repos[repo_id] = Repo(folder, gated)

    def count(self, pattern: str = "") -> int:
        return sum(1 for line in self.requests if pattern in line)

    def handle(self, request: Request) -> Response:
        # A ranged read (a safetensors header) is marked, so that whole-file downloads can be told apart.
        ranged = " [range]" if "Range" in request.headers else ""
        self.requests.append(f"{request.method} {request.path}{ranged}")
        if match := _SHARDED.match(request.path):
            if not self.one_request_headers:
                return Response("Not Found", status=404)
            return self._guarded(match["repo"], request, lambda repo: self._sharded(repo, match["file"]))
        if match := _TREE.match(request.path):  # list_repo_tree, used by vLLM to find weight files
            return self._guarded(match["repo"], request, self._tree)
        if match := _INFO.match(request.path):  # model_info, used by snapshot_download
            return self._guarded(match["repo"], request, lambda repo: self._info(match["repo"], repo))
        if match := _RESOLVE.match(request.path):
            if match["rev"] not in ("main", COMMIT):
                return _error(404, "RevisionNotFound", "Invalid rev id")
            return self._guarded(match["repo"], request, lambda repo: self._file(repo, match["file"], request))
        return Response("Not Found", status=404)

    def _guarded(self, repo_id: str, request: Request, serve) -> Response:
        repo = self.repos.get(repo_id)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if repo.gated and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(
                401 if "Authorization" not in request.headers else 403,
                "GatedRepo",
                "Access to model is restricted. You must have access to it and be authenticated.",
            )
        return serve(repo)

    def _file(self, repo: Repo, filename: str, request: Request) -> Response:
        path = repo.folder / filename
        if not path.is_file():
            return _error(404, "EntryNotFound", "Entry not found")
        size = path.stat().st_size
        etag = hashlib.sha256(f"{path}:{size}".encode()).hexdigest()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            return Response(status=200, headers={**headers, "Content-Length": str(size)})
        start, end, status = 0, size - 1, 200
        if (range_header := request.headers.get("Range")) and (match := re.match(r"bytes=(\d+)-(\d*)", range_header)):
            start, end, status = int(match[1]), min(int(match[2] or size - 1), size - 1), 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        with open(path, "rb") as handle:  # sparse files read back as zeros past the header
            handle.seek(start)
            body = handle.read(end - start + 1)
        return Response(body, status=status, headers=headers)

    def _info(self, repo_id: str, repo: Repo) -> Response:
        files = sorted(path.name for path in repo.folder.iterdir() if path.is_file())
        return Response(
            json.dumps({"id": repo_id, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}),
            mimetype="application/json",
        )

    def _tree(self, repo: Repo) -> Response:
        entries = [
            {
                "type": "file",
                "path": path.name,
                "size": path.stat().st_size,
                "oid": hashlib.sha1(path.name.encode()).hexdigest(),
            }
            for path in sorted(repo.folder.iterdir())
            if path.is_file()
        ]
        return Response(json.dumps(entries), mimetype="application/json")

    def _sharded(self, repo: Repo, filename: str) -> Response:
        index_path = repo.folder / filename
        if not index_path.is_file():
            return _error(404, "EntryNotFound", "Entry not found")
        index = json.loads(index_path.read_text())
        headers = {}
        for shard in sorted(set(index["weight_map"].values())):
            with open(repo.folder / shard, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                headers[shard] = json.loads(handle.read(length))
        return Response(json.dumps({"index": index, "headers": headers}), mimetype="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"error": message}),
        status=status,
        mimetype="application/json",
        headers={"X-Error-Code": code, "X-Error-Message": message},
    )
