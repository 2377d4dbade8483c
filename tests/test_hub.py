"""push_to_hub round trip against a local, in-memory server that speaks the Hub's HTTP protocol.

No network: ``FakeHub`` answers the endpoints that huggingface_hub 2.x and datasets 5.x call for
"create a dataset repo, commit files, read them back with ``load_dataset``" (see ``FakeHubHandler``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import datasets
import huggingface_hub
import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

pytest.importorskip("matplotlib", reason="the card figures need matplotlib: pip install 'hf-coreset[hub]'")

TOKEN = "hf_fake_token_x9Yq3ZkP0wLm"  # a dummy: the fake Hub accepts any bearer token

# --------------------------------------------------------------------------------------------------------------------
# The fake Hub: state
# --------------------------------------------------------------------------------------------------------------------


def git_blob_oid(content: bytes) -> str:
    """The git SHA-1 of a blob: what the Hub reports as a regular file's ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class FakeRepo:
    private: bool
    branches: dict[str, list[tuple[str, dict[str, bytes]]]] = field(default_factory=dict)  # name -> [(sha, files)]

    def head(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(commit sha, files) of a branch name or a commit sha, or None."""
        if revision in self.branches:
            return self.branches[revision][-1]
        for commits in self.branches.values():
            for sha, files in commits:
                if sha == revision:
                    return sha, files
        return None


@dataclass
class FakeHub:
    """What the server holds: repos by id, every request seen, and switches to make it fail."""

    url: str = ""
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    create_payloads: list[dict] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    fail_commit_with: int | None = None
    echo_token_in_errors: bool = False  # like a careless server: the error body repeats the Authorization header
    drop_commit_connection: bool = False  # close the connection without answering the commit

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].head(revision)[1])


# --------------------------------------------------------------------------------------------------------------------
# The fake Hub: HTTP handler
# --------------------------------------------------------------------------------------------------------------------

API_RE = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/(?P<action>[a-z-]+)/(?P<revision>[^/]+)(?P<path>/.*)?)?$")
RESOLVE_RE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


class HubError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code


class FakeHubHandler(BaseHTTPRequestHandler):
    """The Hub endpoints used by ``HfApi.create_repo / dataset_info / create_branch / create_commit /
    list_repo_tree / get_paths_info``, ``hf_hub_download`` and ``HfFileSystem`` (which ``load_dataset`` uses)."""

    hub: FakeHub  # set on a subclass per server
    protocol_version = "HTTP/1.1"

    # ---- plumbing ------------------------------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.hub.requests.append((method, url.path))
        self.head_only = method == "HEAD"
        self.query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.authorization = self.headers.get("Authorization")
        if self.authorization:
            self.hub.authorizations.append(self.authorization)
        try:
            self._route(method, url.path)
        except HubError as err:
            self._send_json({"error": err.message}, status=err.status, error_code=err.error_code)

    def _send(self, status: int, body: bytes, headers: dict[str, str], head_only: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _send_json(self, payload, status: int = 200, error_code: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if error_code:
            headers["X-Error-Code"] = error_code
        self._send(status, json.dumps(payload).encode(), headers, head_only=self.head_only)

    def _route(self, method: str, path: str) -> None:
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo()
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml()
        if match := RESOLVE_RE.match(path):
            return self._resolve(match["repo"], unquote(match["revision"]), unquote(match["path"]))
        match = API_RE.match(path)
        if match is None:
            raise HubError(404, f"Not implemented by the fake Hub: {method} {path}")
        repo = self._repo(match["repo"])
        revision = unquote(match["revision"] or "main")
        handlers = {
            ("GET", None): self._repo_info, ("GET", "revision"): self._repo_info,
            ("GET", "tree"): self._tree, ("POST", "paths-info"): self._paths_info,
            ("POST", "preupload"): self._preupload, ("POST", "commit"): self._commit,
            ("POST", "branch"): self._create_branch,
        }
        handler = handlers.get((method, match["action"]))
        if handler is None:
            raise HubError(404, f"Not implemented by the fake Hub: {method} {path}")
        handler(match["repo"], repo, revision, unquote((match["path"] or "").lstrip("/")))

    # ---- helpers -------------------------------------------------------------------------------------------------

    def _repo(self, repo_id: str) -> FakeRepo:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self.authorization):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _require_auth(self) -> None:
        if not self.authorization:
            raise HubError(401, "You must be authenticated to write", None)

    @staticmethod
    def _snapshot(repo: FakeRepo, revision: str) -> tuple[str, dict[str, bytes]]:
        snapshot = repo.head(revision)
        if snapshot is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return snapshot

    @staticmethod
    def _entries(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
        """Tree entries under ``folder``: files, and the folders on the way (``type: directory``)."""
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict] = {}
        for name, content in sorted(files.items()):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                sub = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(sub, {"type": "directory", "path": sub, "oid": git_blob_oid(sub.encode())})
            if recursive or len(parts) == 1:
                entries[name] = {"type": "file", "path": name, "size": len(content), "oid": git_blob_oid(content)}
        return list(entries.values())

    # ---- endpoints -----------------------------------------------------------------------------------------------

    def _create_repo(self) -> None:
        self._require_auth()
        payload = json.loads(self.body)
        self.hub.create_payloads.append(payload)
        if payload.get("type") != "dataset":
            raise HubError(400, "The fake Hub only holds dataset repos")
        repo_id = f"{payload['organization']}/{payload['name']}"
        if repo_id in self.hub.repos:
            raise HubError(409, "You already created this dataset repo")
        initial = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
        self.hub.repos[repo_id] = FakeRepo(
            private=payload.get("visibility") == "private", branches={"main": [(uuid.uuid4().hex + "0" * 8, initial)]}
        )
        self._send_json({"url": f"{self.hub.url}/datasets/{repo_id}", "name": repo_id})

    def _validate_yaml(self) -> None:
        content = json.loads(self.body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
        try:
            yaml.safe_load(match[1] if match else "")
        except yaml.YAMLError as err:
            return self._send_json({"errors": [{"message": str(err)}]}, status=400)
        self._send_json({"errors": [], "warnings": []})

    def _repo_info(self, repo_id, repo, revision, _path) -> None:
        sha, files = self._snapshot(repo, revision)
        self._send_json({
            "id": repo_id, "author": repo_id.split("/")[0], "sha": sha, "private": repo.private,
            "lastModified": "2026-01-01T00:00:00.000Z", "tags": [], "downloads": 0, "likes": 0,
            "siblings": [{"rfilename": name, "size": len(content)} for name, content in sorted(files.items())],
        })

    def _tree(self, _repo_id, repo, revision, path) -> None:
        _, files = self._snapshot(repo, revision)
        recursive = self.query.get("recursive", ["False"])[0].lower() == "true"
        entries = self._entries(files, path, recursive)
        if path and not entries:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        self._send_json(entries)

    def _paths_info(self, _repo_id, repo, revision, _path) -> None:
        _, files = self._snapshot(repo, revision)
        form = parse_qs(self.body.decode())
        everything = {entry["path"]: entry for entry in self._entries(files, "", recursive=True)}
        self._send_json([everything[p] for p in form.get("paths", []) if p in everything])

    def _preupload(self, _repo_id, repo, revision, _path) -> None:
        self._require_auth()
        _, files = self._snapshot(repo, revision)
        wanted = json.loads(self.body)["files"]
        self._send_json({"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_oid(files[f["path"]]) if f["path"] in files else None}
            for f in wanted
        ]})

    def _create_branch(self, _repo_id, repo, branch, _path) -> None:
        self._require_auth()
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        start = (json.loads(self.body or b"{}") or {}).get("startingPoint", "main")
        repo.branches[branch] = [self._snapshot(repo, start)]
        self._send_json({})

    def _commit(self, repo_id, repo, revision, _path) -> None:
        self._require_auth()
        if self.hub.drop_commit_connection:
            self.close_connection = True  # no response at all: the client sees the server disconnect
            return
        if self.hub.fail_commit_with is not None:
            echo = f" (request had Authorization: {self.authorization})" if self.hub.echo_token_in_errors else ""
            raise HubError(self.hub.fail_commit_with,
                           f"Internal Error - the fake Hub was told to fail this commit{echo}")
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        parent_sha, files = self._snapshot(repo, "main" if "create_pr" in self.query else revision)
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, parent_sha):
            raise HubError(412, "A commit has happened since the parent commit")
        files = dict(files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"])
            elif key == "deletedFolder":
                files = {k: v for k, v in files.items() if not k.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, f"The fake Hub only takes inline files, got {key!r}")
        sha = uuid.uuid4().hex + "0" * 8
        target = revision
        if "create_pr" in self.query:
            target = f"refs/pr/{sum(name.startswith('refs/pr/') for name in repo.branches) + 1}"
            repo.branches[target] = []
        repo.branches[target].append((sha, files))
        pr_url = f"{self.hub.url}/datasets/{repo_id}/discussions/{target.rsplit('/', 1)[-1]}"
        self._send_json({"commitUrl": f"{self.hub.url}/datasets/{repo_id}/commit/{sha}", "commitOid": sha,
                         "pullRequestUrl": pr_url if "create_pr" in self.query else None})

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        sha, files = self._snapshot(self._repo(repo_id), revision)
        if path not in files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        content = files[path]
        headers = {"ETag": f'"{git_blob_oid(content)}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        status, body = 200, content
        if (ranged := re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))) is not None:
            start, end = int(ranged[1]), int(ranged[2] or len(content) - 1)
            status, body = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(content)}"
        headers["Content-Length"] = str(len(body))
        self._send(status, body, headers, head_only=self.head_only)


# --------------------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """Start the fake Hub on 127.0.0.1 (free port) and point huggingface_hub and datasets at it."""
    hub = FakeHub()
    handler = type("Handler", (FakeHubHandler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # The server is local: a user's HF_HUB_OFFLINE=1 (read once, at import) must not stop these tests.
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    # Both libraries read HF_ENDPOINT once, at import: patch the module constants they built from it.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    # No calls to the dataset viewer (datasets-server.<endpoint>) nor to the S3 download counter.
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    yield hub
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------------------


def make_image_dataset(n_rows: int = 40) -> datasets.Dataset:
    """Rows with a distinct 6x6 RGB image, a caption, a category, a 4-d embedding, and a license in the info."""
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)) for _ in range(n_rows)]
    dataset = datasets.Dataset.from_dict(
        {
            "image": images,
            "caption": [f"drawing {i}" for i in range(n_rows)],
            "category": [["animals", "food", "people"][i % 3] for i in range(n_rows)],
            "emb": rng.normal(size=(n_rows, 4)).astype(np.float32).tolist(),
        },
        features=datasets.Features({
            "image": datasets.Image(), "caption": datasets.Value("string"), "category": datasets.Value("string"),
            "emb": datasets.Sequence(datasets.Value("float32")),
        }),
    )
    dataset.info.license = "cc0-1.0"
    return dataset


@pytest.fixture(scope="module")
def image_dataset():
    return make_image_dataset()


@pytest.fixture(scope="module")
def coreset(image_dataset):
    import hf_coreset

    return hf_coreset.select_coreset(image_dataset, "kcenter", 10, embedding_columns=["emb"], return_scores=True)


def push(coreset, repo_id, **kwargs):
    from hf_coreset.integrations.hub import push_to_hub

    return push_to_hub(coreset, repo_id, token=TOKEN, **kwargs)


def png_size(png: bytes) -> tuple[int, int]:
    return PILImage.open(io.BytesIO(png)).size


# --------------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------------


def test_push_then_load_dataset_gives_the_same_rows(fake_hub, coreset, tmp_path):
    commit = push(coreset, "me/kcenter-coreset", source_id="me/drawings")
    assert commit.oid == fake_hub.repos["me/kcenter-coreset"].head("main")[0]
    # Everything went in one commit, on top of the repo's initial commit.
    assert len(fake_hub.repos["me/kcenter-coreset"].branches["main"]) == 2
    commits = [request for request in fake_hub.requests if "/commit/" in request[1]]
    assert commits == [("POST", "/api/datasets/me/kcenter-coreset/commit/main")]
    # The preupload answer "regular" was honoured: files went inline in the commit, no LFS / Xet transfer.
    assert not [path for _, path in fake_hub.requests if "lfs" in path.lower() or "xet" in path.lower()]

    loaded = datasets.load_dataset("me/kcenter-coreset", split="train", cache_dir=str(tmp_path / "cache"), token=TOKEN)

    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded.num_rows == coreset.num_rows == 10
    for column in ("caption", "category", "coreset_score", "coreset_rank"):
        assert loaded[column] == coreset[column]
    np.testing.assert_allclose(loaded["emb"], coreset["emb"])
    for got, want in zip(loaded["image"], coreset["image"]):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # load_dataset found the shards through the card's `configs` and the repo tree.
    assert ("GET", "/datasets/me/kcenter-coreset/resolve/main/README.md") in fake_hub.requests
    assert any("/tree/" in path for _, path in fake_hub.requests)


def test_card_parses_back_with_yaml_fields_and_figures(fake_hub, coreset, image_dataset):
    from huggingface_hub import DatasetCard, hf_hub_download

    push(coreset, "me/card-check", source=image_dataset, source_id="me/drawings@v1.0")
    card = DatasetCard.load(hf_hub_download("me/card-check", "README.md", repo_type="dataset", token=TOKEN))
    data = card.data.to_dict()

    assert data["license"] == "cc0-1.0"  # carried from the source's DatasetInfo
    assert data["tags"] == ["coreset", "hf-coreset", "kcenter"]
    assert data["source_datasets"] == ["me/drawings"]
    assert data["size_categories"] == ["n<1K"]
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert data["dataset_info"]["splits"][0]["num_examples"] == 10
    assert "https://arxiv.org/abs/1708.00489" in card.text
    assert "`v1.0`" in card.text and '"seed": 0' in card.text

    files = fake_hub.files("me/card-check")
    assert sorted(files) == [".gitattributes", "README.md", "coreset_selection.json",
                             "data/train-00000-of-00001.parquet", "images/coreset_composition.png",
                             "images/coreset_scores.png"]
    for name in ("images/coreset_scores.png", "images/coreset_composition.png"):
        assert files[name].startswith(b"\x89PNG") and f"]({name})" in card.text
        assert min(png_size(files[name])) > 100
    assert json.loads(files["coreset_selection.json"])["provenance"]["method"] == "kcenter"


def test_saving_a_card_never_replaces_a_readme_the_user_wrote(coreset, tmp_path):
    from hf_coreset import CoresetInputError
    from hf_coreset.integrations.hub import render_dataset_card

    card = render_dataset_card(coreset, "me/local-card")
    (tmp_path / "README.md").write_text("# My dataset, my notes\n")
    with pytest.raises(CoresetInputError, match=r"already holds \['README.md'\]; pass --overwrite \(overwrite=True"):
        card.save(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# My dataset, my notes\n"
    assert not (tmp_path / "images").exists()  # refused before anything was written

    fresh = card.save(tmp_path / "card")
    assert (fresh / "README.md").read_text() == card.text
    assert {str(p.relative_to(fresh)) for p in fresh.rglob("*.png")} == set(card.images)
    assert not list(fresh.rglob(".*.tmp"))
    card.save(tmp_path, overwrite=True)
    assert (tmp_path / "README.md").read_text() == card.text


def test_failed_commit_leaves_no_files_and_a_retry_works(fake_hub, coreset):
    from huggingface_hub.errors import HfHubHTTPError

    fake_hub.fail_commit_with = 500
    with pytest.raises(HfHubHTTPError, match="500"):
        push(coreset, "me/flaky")
    assert fake_hub.files("me/flaky") == {".gitattributes": fake_hub.files("me/flaky")[".gitattributes"]}

    fake_hub.fail_commit_with = None
    push(coreset, "me/flaky")  # the repo only holds .gitattributes: it counts as empty, no exist_ok needed
    assert "data/train-00000-of-00001.parquet" in fake_hub.files("me/flaky")


def test_private_repo_stays_private(fake_hub, coreset):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    push(coreset, "me/secret", private=True)

    assert fake_hub.create_payloads[-1]["visibility"] == "private"
    assert HfApi(token=TOKEN).dataset_info("me/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).dataset_info("me/secret")  # anonymous: the repo is invisible


def test_private_push_into_an_existing_public_repo_is_refused(fake_hub, coreset):
    push(coreset, "me/public")
    with pytest.raises(ValueError, match="is public, but private=True"):
        push(coreset, "me/public", private=True, exist_ok=True)


def test_second_push_needs_exist_ok_and_then_replaces_everything(fake_hub, coreset, image_dataset):
    import hf_coreset
    from hf_coreset.integrations.hub import RepoExistsError

    push(coreset, "me/twice", max_shard_size=200)  # tiny shards: several parquet files
    first = fake_hub.files("me/twice")
    assert sum(name.startswith("data/train-") for name in first) > 1

    with pytest.raises(RepoExistsError, match="exist_ok=True"):
        push(coreset, "me/twice")
    assert fake_hub.files("me/twice") == first  # untouched

    smaller = hf_coreset.select_coreset(image_dataset, "random", 4, seed=1)
    push(smaller, "me/twice", exist_ok=True)
    files = fake_hub.files("me/twice")
    assert [n for n in files if n.startswith("data/")] == ["data/train-00000-of-00001.parquet"]  # stale shards deleted
    assert json.loads(files["coreset_selection.json"])["provenance"]["method"] == "random"


def test_create_pr_leaves_main_alone(fake_hub, coreset):
    push(coreset, "me/pr-target")
    main_before = fake_hub.files("me/pr-target")
    commit = push(coreset.select(range(5)), "me/pr-target", exist_ok=True, create_pr=True)
    assert commit.pr_url is not None and commit.pr_url.endswith("/discussions/1")
    assert fake_hub.files("me/pr-target") == main_before
    assert "refs/pr/1" in fake_hub.repos["me/pr-target"].branches


def test_token_never_printed_logged_or_written(fake_hub, coreset, caplog, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_DEBUG", True)  # huggingface_hub also logs each request as curl
    for name in (None, "huggingface_hub", "datasets", "hf_coreset"):
        caplog.set_level(logging.DEBUG, logger=name)
    push(coreset, "me/no-leak", private=True)

    assert f"Bearer {TOKEN}" in fake_hub.authorizations  # the token was used...
    captured = capsys.readouterr()
    assert "/commit/main" in caplog.text and "Pushing" in caplog.text  # (the debug logs were captured)
    assert TOKEN not in captured.out + captured.err  # ...but never shown
    assert TOKEN not in caplog.text
    for name, content in fake_hub.files("me/no-leak").items():
        assert TOKEN.encode() not in content, name


def test_bad_input_is_refused_before_any_request(fake_hub, coreset):
    from hf_coreset.integrations.hub import push_to_hub

    plain = datasets.Dataset.from_dict({"x": [1, 2, 3]})
    with pytest.raises(ValueError, match="carries no hf_coreset selection"):
        push_to_hub(plain, "me/plain", token=TOKEN)
    with pytest.raises(ValueError, match="category_column='nope' is not a column"):
        push(coreset, "me/plain", category_column="nope")
    assert fake_hub.requests == [] and fake_hub.repos == {}


def test_trained_on_coreset_section(coreset):
    from hf_coreset.integrations.hub import render_trained_on_coreset_section
    from hf_coreset.result import get_selection_result

    section = render_trained_on_coreset_section(get_selection_result(coreset), dataset_id="me/kcenter-coreset")
    assert section.startswith("## Trained on a coreset")
    assert "10 of its 40 rows (25.0%)" in section
    assert "(https://huggingface.co/datasets/me/kcenter-coreset)" in section
    assert "https://arxiv.org/abs/1708.00489" in section
    assert "$" not in section  # every template field was filled


def test_unknown_method_gets_no_paper_link():
    from hf_coreset.integrations.hub import _method_line

    assert "no paper link" in _method_line("my-own-method")
    assert "arxiv.org/abs/2308.10524" in _method_line("dq") and "arxiv.org/abs/2502.15834" in _method_line("dq")


def test_cli_select_push_and_push_dir(fake_hub, image_dataset, tmp_path, monkeypatch):
    from hf_coreset.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    image_dataset.save_to_disk(str(tmp_path / "source"))
    out = tmp_path / "out"
    assert main(["select", str(tmp_path / "source"), "--method", "random", "--budget", "5", "--output", str(out),
                 "--no-progress", "--push-to-hub", "me/from-cli", "--private"]) == 0
    assert out.is_dir() and fake_hub.repos["me/from-cli"].private
    assert "data/train-00000-of-00001.parquet" in fake_hub.files("me/from-cli")

    assert main(["push", str(out), "me/from-cli"]) == 2  # exists: refused with a message
    assert main(["push", str(out), "me/from-cli", "--exist-ok"]) == 0
    assert main(["push", str(out), "me/from-dir", "--private"]) == 0
    assert fake_hub.repos["me/from-dir"].private


# --------------------------------------------------------------------------------------------------------------------
# Safety: offline users, token redaction, dropped connections, crafted provenance
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def offline_user(monkeypatch):
    """A user with HF_HUB_OFFLINE=1 in the environment when the libraries were imported."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def test_the_local_server_tests_run_for_a_user_with_hf_hub_offline(offline_user, fake_hub, coreset, tmp_path):
    push(coreset, "me/offline-user")
    loaded = datasets.load_dataset("me/offline-user", split="train", cache_dir=str(tmp_path / "cache"), token=TOKEN)
    assert loaded["caption"] == coreset["caption"]


def test_a_failed_push_prints_one_line_without_the_token(fake_hub, image_dataset, tmp_path, monkeypatch, capsys):
    from hf_coreset.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "out"
    assert main(["select", str(tmp_path / "none"), "--method", "random", "--budget", "5", "--output", str(out)]) == 2
    image_dataset.save_to_disk(str(tmp_path / "source"))
    assert main(["select", str(tmp_path / "source"), "--method", "random", "--budget", "5", "--output", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    fake_hub.fail_commit_with, fake_hub.echo_token_in_errors = 500, True
    assert main(["push", str(out), "me/leaky-server"]) == 2
    err = capsys.readouterr().err
    assert f"Bearer {TOKEN}" in fake_hub.authorizations  # the server did get (and echo) the token...
    assert TOKEN not in err and "Authorization: Bearer hf_***" in err  # ...but it is never printed
    assert len(err.strip().splitlines()) == 1 and "pushing to me/leaky-server failed" in err


def test_a_dropped_connection_during_a_push_is_one_line(fake_hub, image_dataset, tmp_path, monkeypatch, capsys):
    from hf_coreset.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    image_dataset.save_to_disk(str(tmp_path / "source"))
    fake_hub.drop_commit_connection = True
    argv = ["select", str(tmp_path / "source"), "--method", "random", "--budget", "5", "--output",
            str(tmp_path / "out"), "--no-progress", "--push-to-hub", "me/dropped"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "the connection to the Hub dropped while pushing to me/dropped (RemoteProtocolError" in err
    assert "run the same command again" in err
    assert datasets.load_from_disk(str(tmp_path / "out")).num_rows == 5  # the local output is complete


def test_redact_token_removes_the_active_token_and_token_shapes(monkeypatch):
    from hf_coreset.integrations.hub import redact_token

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    other = "hf_" + "Ab1" * 12
    text = f"401 for {TOKEN}; also {other}; repo hf_coreset/x"
    assert redact_token(text) == "401 for hf_***; also hf_***; repo hf_coreset/x"


def crafted(coreset, **provenance_changes):
    """The coreset with a description edited as an attacker would (still well-typed, so it is read back)."""
    crafted_set = coreset.select(range(coreset.num_rows))
    record = json.loads(coreset.info.description)
    record["hf_coreset_selection"]["provenance"].update(provenance_changes)
    crafted_set.info.description = json.dumps(record)
    return crafted_set


def assert_no_raw_html(markdown: str) -> None:
    """Outside code blocks and code spans (which show "<" as text) and the template's own <details> block, every
    "<" is escaped ("\\<script")."""
    prose = re.sub(r"(`+).*?\1", "", re.sub(r"^```.*?^```$", "", markdown, flags=re.S | re.M))
    prose = re.sub(r"</?(details|summary)>", "", prose)
    assert re.search(r"(?<!\\)<", prose) is None, prose


def test_every_card_value_is_escaped(coreset):
    import ast

    from hf_coreset.integrations.hub import render_dataset_card, render_trained_on_coreset_section

    split = 'train")\nimport os; os.system("echo pwned")  #'
    hostile = crafted(
        coreset, source_split=split, method="kcenter** <img src=x onerror=alert(1)> | x",
        score_meaning="<script>alert(1)</script>", config={"seed": 0, "aggregation": "concat`\n```\n# Owned"},
        rows_dropped={"bad | reason <b>": {"count": 0, "rows": []}},
    )
    hostile.info.license = "mit <script>x</script> | y"
    card = render_dataset_card(hostile, "me/card", source_id="me/drawings@v`1|x").text
    _, yaml_text, body = card.split("---\n", 2)

    assert_no_raw_html(body)
    assert "kcenter\\*\\* \\<img src=x onerror=alert(1)\\> \\| x" in body
    code = re.findall(r"^```python\n(.*?)\n^```$", card, flags=re.S | re.M)
    reproduce = ast.parse(code[-1])  # the Reproduce block is still valid Python, and only this:
    assert [type(node).__name__ for node in reproduce.body] == ["Import", "Assign", "Assign"]
    load = reproduce.body[1].value
    assert ast.literal_eval(load.keywords[0].value) == split  # the split is a string literal, not code
    assert ast.literal_eval(reproduce.body[2].value.keywords[-1].value) == "concat`\n```\n# Owned"
    header = yaml.safe_load(yaml_text)  # YAML values are quoted by yaml.safe_dump, and kept on one line
    assert header["pretty_name"].startswith("kcenter** <img") and "\n" not in header["pretty_name"]
    for row in re.findall(r"^\|.*\|$", card, flags=re.M):  # every table row keeps its two cells
        assert len(re.split(r"(?<!\\)\|", row)) == 4, row
    assert "\n# Owned" not in card  # no Markdown heading smuggled in
    section = render_trained_on_coreset_section(hostile, dataset_id="me/x) [click](https://evil")
    assert_no_raw_html(section)
    assert "[me/x) \\[click\\](https://evil](https://huggingface.co/datasets/me/x%29%20%5Bclick%5D%28https%3A//evil)" \
        in section


@pytest.mark.parametrize("field, value, message", [
    ("source_split", ["train"], r"provenance\['source_split'\] must be a string or null"),
    ("method", 3, r"provenance\['method'\] must be a string"),
    ("rows_in", 5, r"indices has row \d+, outside the 5 rows of the source"),
    ("rows_out", 3, r"provenance\['rows_out'\] is 3 but there are 10 indices"),
    ("config", {"x); import os; f(y": 1}, r"provenance\['config'\] must be a dict of option names"),
    ("rows_dropped", {"unreadable": {"count": 2, "rows": [1]}}, r"provenance\['rows_dropped'\] must be"),
    ("seed", "0; import os", r"provenance\['seed'\] must be a non-negative int"),
])
def test_malformed_provenance_is_refused_when_read_back(coreset, field, value, message):
    from hf_coreset.integrations.hub import render_dataset_card
    from hf_coreset.result import get_selection_result

    with pytest.raises(ValueError, match=r"selection record is malformed: " + message):
        get_selection_result(crafted(coreset, **{field: value}))
    with pytest.raises(ValueError, match="malformed"):
        render_dataset_card(crafted(coreset, **{field: value}), "me/x")


def test_malformed_indices_and_scores_are_refused(coreset):
    from hf_coreset.result import get_selection_result

    for change, message in [({"indices": [0, 0]}, "indices holds a row twice"),
                            ({"indices": [-1]}, "indices must be a list of non-negative ints"),
                            ({"scores": ["1; rm"]}, "scores must be a list of numbers"),
                            ({"scores": [0.5]}, "1 scores for 10 indices")]:
        bad = coreset.select(range(coreset.num_rows))
        record = json.loads(coreset.info.description)
        record["hf_coreset_selection"].update(change)
        bad.info.description = json.dumps(record)
        with pytest.raises(ValueError, match=message):
            get_selection_result(bad)


def test_a_split_name_that_is_not_a_datasets_split_is_refused_before_any_request(fake_hub, coreset):
    odd = datasets.Dataset.from_dict(coreset.select(range(3)).to_dict(), features=coreset.features,
                                     info=coreset.info.copy(), split="../../etc")
    with pytest.raises(ValueError, match=r"Split name '../../etc' is not a valid datasets split name"):
        push(odd, "me/odd-split")
    assert fake_hub.requests == []
