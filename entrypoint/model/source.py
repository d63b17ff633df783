"""Where a checkpoint comes from: a local folder or the Hugging Face Hub.

This is an I/O edge. From the Hub every request goes through huggingface_hub,
so HF_TOKEN, HF_ENDPOINT, HF_HOME, revisions and HF_HUB_OFFLINE behave as they
do for the engines. Requests are kept few: config.json (cached in HF_HOME for
the engine to reuse), then every shard header in one request where the Hub
offers it, else one ranged read per shard, in parallel threads.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

from .. import files
from ..errors import (
    CorruptCheckpointError,
    GatedModelError,
    HubUnreachableError,
    ModelNotFoundError,
    NoSafetensorsError,
    RevisionNotFoundError,
)
from . import shape as shape_module
from . import weights
from .families import ModelFiles
from .info import ModelInfo
from .safetensors import OnTensor, check_file_size, checked_tensor, header_length, parse_header

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
OTHER_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.gguf")


def read_model(
    target: str,
    revision: str | None = None,
    token: str | None = None,
    offline: bool = False,
    variable: str = "TARGET_MODEL",
) -> ModelInfo:
    """Read config.json and safetensors headers of a folder or Hub repo; errors name `variable`."""
    try:
        return _read_model(target, revision, token, offline, variable)
    except CorruptCheckpointError as exc:
        # Every broken file is named with the setting that led to it: TARGET_MODEL or SPEC_DRAFT_MODEL.
        message = exc.message.removeprefix(f"{target}: ")
        raise CorruptCheckpointError(f"{variable}={target}: {message}", exc.hint) from None


def _read_model(target: str, revision: str | None, token: str | None, offline: bool, variable: str) -> ModelInfo:
    if os.path.isdir(target):
        return _from_folder(target, target, "local folder", variable)
    if target.startswith(("/", "./", "../", "~")):
        raise ModelNotFoundError(
            f"{variable}={target} is not a folder",
            "mount the model folder into the container, or use a Hub id like Qwen/Qwen2.5-7B-Instruct",
        )
    with _hub_errors(target, revision, token, variable):
        if offline:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(target, revision=revision, local_files_only=True)
            return _from_folder(folder, target, "hub cache (offline)", variable)
        return _from_hub(target, revision, token, variable)


# ---------------------------------------------------------------- local folder


def _from_folder(folder: str, name: str, location: str, variable: str) -> ModelInfo:
    config = _read_config(os.path.join(folder, "config.json"), name, variable)
    files = _local_shards(folder, name)
    shape = shape_module.from_config(config)
    summary = _summarize_headers(files, shape)
    small = _small_files(lambda file: _local_file(folder, file), name)
    return ModelInfo(
        name=name, location=location, shape=shape, weights=summary, shards=len(files), config=config, files=small
    )


# The files besides config.json that say how the model is served (model.families.ModelFiles).
TOKENIZER_CONFIG, CHAT_TEMPLATE_FILE, SENTENCE_TRANSFORMERS = (
    "tokenizer_config.json",
    "chat_template.jinja",
    "modules.json",
)


def _small_files(fetch: Callable[[str], str | None], name: str) -> ModelFiles:
    """The chat template (chat_template.jinja, else tokenizer_config.json's) and whether modules.json exists;
    `fetch` gives a file's local path, or None when the model has no such file."""
    template = None
    jinja = fetch(CHAT_TEMPLATE_FILE)
    if jinja:
        template = _text(jinja, name)
    else:
        tokenizer = fetch(TOKENIZER_CONFIG)
        if tokenizer:
            template = _template_of(_json_file(tokenizer, name), name)
    return ModelFiles(chat_template=template, sentence_transformers=fetch(SENTENCE_TRANSFORMERS) is not None)


def _template_of(tokenizer_config: Any, name: str) -> str | None:
    """tokenizer_config.json's chat_template: a string, or a list of named templates (the "default" one).
    transformers reads the list as {entry["name"]: entry["template"]}, so an entry without a string name and
    template would fail the engine's tokenizer: refused here."""
    template = tokenizer_config.get("chat_template") if isinstance(tokenizer_config, dict) else None
    if isinstance(template, list):
        if not all(isinstance(entry, dict) and _named_template(entry) for entry in template):
            raise CorruptCheckpointError(
                f"{name}: {TOKENIZER_CONFIG}'s chat_template list has an entry that is not a name and a template",
                'each entry must be {"name": "default", "template": "..."}; or set CHAT_TEMPLATE',
            )
        named = {entry["name"]: entry["template"] for entry in template}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) else None


def _named_template(entry: dict[str, Any]) -> bool:
    return isinstance(entry.get("name"), str) and isinstance(entry.get("template"), str)


def _local_file(folder: str, file: str) -> str | None:
    """The file's path when the folder has it in any form: a FIFO or a device in its place is refused when
    read (`files`), as the engine would hang on it or never finish reading it."""
    path = os.path.join(folder, file)
    return path if os.path.lexists(path) else None


def _text(path: str, name: str) -> str:
    try:
        return files.read_text(path, files.TEMPLATE_LIMIT)
    except files.Unreadable as exc:
        raise CorruptCheckpointError(
            f"{name}: {os.path.basename(path)} {exc.reason}", "download the model again"
        ) from None


def _json_file(path: str, name: str) -> Any:
    try:
        return files.read_json(path)
    except files.Unreadable as exc:
        raise CorruptCheckpointError(
            f"{name}: {os.path.basename(path)} {exc.reason}", "download the model again"
        ) from None


# Shards per worker below which forking costs more than it saves (a fork and a pipe: ~5 ms).
SHARDS_PER_WORKER = 16
MAX_WORKERS = 4


def _summarize_headers(files: list[str], shape: shape_module.ModelShape) -> weights.WeightSummary:
    """Every shard's header, checked and summarized. A big checkpoint's headers are parsed by up to
    MAX_WORKERS forked processes, each a contiguous run of the shards: decoding DeepSeek-V3's 163 headers
    (92,000 tensors) is most of `plan`'s time and runs in pure Python (bench/plan_bench.py). The error, if
    any, is the first shard's in file order, as read one by one."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(len(files) // SHARDS_PER_WORKER, cpus, MAX_WORKERS)
    if workers < 2 or not hasattr(os, "fork"):
        return _summarize(files, shape)
    size = -(-len(files) // workers)
    runs = [files[start : start + size] for start in range(0, len(files), size)]
    children = [_fork_summarize(run, shape) for run in runs[1:]]
    results: list[weights.WeightSummary | Exception] = []
    try:
        results.append(_summarize(runs[0], shape))
    except CorruptCheckpointError as exc:
        results.append(exc)
    for run, child in zip(runs[1:], children, strict=True):
        result = _collect(child)
        # A worker that gave no result (killed, or an error that would not pickle): read its run here.
        results.append(result if result is not None else _summarize(run, shape))
    for result in results:
        if isinstance(result, Exception):
            raise result
    return weights.merged([result for result in results if isinstance(result, weights.WeightSummary)])


def _summarize(files: list[str], shape: shape_module.ModelShape) -> weights.WeightSummary:
    tally = weights.Tally(shape)
    for path in files:
        read_local_header(path, tally.add)
    return tally.summary()


def _fork_summarize(files: list[str], shape: shape_module.ModelShape) -> tuple[int, int]:
    """A child process summarizing `files`; (pid, read end of the pipe its pickled result comes through)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its result (or its error) down the pipe, then gone, whatever happens
        try:
            os.close(read_end)
            try:
                result: object = _summarize(files, shape)
            except Exception as exc:  # any failure travels to the parent, which raises it
                result = exc
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(result, pipe)
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def _collect(child: tuple[int, int]) -> weights.WeightSummary | Exception | None:
    pid, read_end = child
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    try:
        result = pickle.loads(data)  # our own child's bytes, through our own pipe
    except (pickle.UnpicklingError, EOFError):
        return None
    return result if isinstance(result, weights.WeightSummary | Exception) else None


def _read_config(path: str, name: str, variable: str = "TARGET_MODEL") -> Mapping[str, Any]:
    if not os.path.exists(path):  # also a dangling link (a snapshot mounted without its blobs)
        raise ModelNotFoundError(
            f"{name} has no config.json",
            f"point {variable} at a Hugging Face model folder (config.json + *.safetensors)",
        )
    config = _json_file(path, name)  # a folder, a FIFO, a device or too large is refused, never waited on
    if not isinstance(config, dict):
        raise CorruptCheckpointError(f"{name}: config.json is not a JSON object", "download the model again")
    return config


def _local_shards(folder: str, name: str) -> list[str]:
    index_path = os.path.join(folder, INDEX_FILE)
    if os.path.exists(index_path):
        # The index decides which files the engine loads (Mistral repos also
        # ship a consolidated.safetensors that must not be counted twice).
        names = sorted(_indexed_shards(index_path, name))
        if not names:
            raise CorruptCheckpointError(f"{name}: {INDEX_FILE} lists no tensors", "download the model again")
        outside = [shard for shard in names if os.path.isabs(shard) or os.pardir in shard.split("/") or "\\" in shard]
        if outside:
            raise CorruptCheckpointError(
                f"{name}: {INDEX_FILE} points outside the model folder ({outside[0]!r})",
                "use the index the repo ships; shard names are plain file names",
            )
        files = [os.path.join(folder, shard) for shard in names]
        missing = [shard for shard, path in zip(names, files, strict=True) if not os.path.exists(path)]
        if missing:
            raise CorruptCheckpointError(
                f"{name}: {INDEX_FILE} lists {len(missing)} missing file(s), e.g. {missing[0]}",
                "finish the download (huggingface-cli download) or remove the index",
            )
        return files
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    dangling = [path for path in files if not os.path.isfile(path)]
    if dangling:  # e.g. a snapshots/ folder mounted without the blobs/ its links point into
        raise CorruptCheckpointError(
            f"{name}: {os.path.basename(dangling[0])} is not a readable file (a link to nothing?)",
            "mount the whole Hugging Face cache (hub/models--*/ with blobs/), not only snapshots/",
        )
    if not files:
        _raise_no_safetensors(
            name,
            [
                os.path.basename(p)
                for pattern in OTHER_WEIGHT_PATTERNS
                for p in glob.glob(os.path.join(folder, pattern))
            ],
        )
    return files


def _indexed_shards(path: str, name: str) -> set[str]:
    """The shard files an index names (a set of its values, taken in C: DeepSeek-V3's maps 92,000 tensors)."""
    return indexed_shards(_json_file(path, name), name)


def indexed_shards(index: Any, name: str) -> set[str]:
    """The shard file names of a parsed safetensors index (prefetch reads the Hub's copy with it too)."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(shard, str) for shard in weight_map.values()):
        raise CorruptCheckpointError(
            f"{name}: {INDEX_FILE} is not a safetensors index (its weight_map is not an object of file names)",
            "download the model again",
        )
    return set(weight_map.values())


def _raise_no_safetensors(name: str, others: list[str]) -> None:
    found = f" (found {', '.join(sorted(others)[:3])})" if others else ""
    raise NoSafetensorsError(
        f"{name} has no .safetensors weights{found}",
        "use a safetensors version of the model (most Hub repos have one; convert .bin with "
        "`safetensors` convert scripts); GGUF files are for llama.cpp/Ollama",
    )


def read_local_header(path: str, on_tensor: OnTensor) -> None:
    """Read one local file's header (its first bytes only), checking it against the file size; each tensor
    goes to `on_tensor` (weights.Tally.add)."""
    source = os.path.basename(path)
    try:
        with files.opened(path) as handle:  # a folder, a FIFO, a link to nothing: refused, never waited on
            problem = _read_open_header(handle, source, on_tensor)
    except files.Unreadable as exc:
        raise CorruptCheckpointError(
            f"safetensors file {source} {exc.reason}", "download the model again, or check the mount"
        ) from None
    if problem is not None:
        raise problem


def _read_open_header(handle: BinaryIO, source: str, on_tensor: OnTensor) -> CorruptCheckpointError | None:
    size = os.fstat(handle.fileno()).st_size
    length = header_length(handle.read(8), source)
    if 8 + length > size:
        return check_file_size(source, size, length, None)
    data_end = parse_header(handle.read(length), source, on_tensor)
    return check_file_size(source, size, length, data_end)


# ---------------------------------------------------------------- the Hub


def _from_hub(repo: str, revision: str | None, token: str | None, variable: str) -> ModelInfo:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import NotASafetensorsRepoError, SafetensorsParsingError

    config = _read_config(hf_hub_download(repo, "config.json", revision=revision, token=token), repo, variable)
    api = HfApi(token=token)
    try:
        metadata = _sharded_metadata_in_one_request(api, repo, revision, token)
        if metadata is None:
            metadata = api.get_safetensors_metadata(repo, revision=revision, token=token)
    except NotASafetensorsRepoError:
        _raise_no_safetensors(repo, [])
    except SafetensorsParsingError as exc:
        raise CorruptCheckpointError(
            f"{repo}: a safetensors header cannot be parsed ({exc})",
            "check the repo's files, or pin HF_REVISION to a good commit",
        ) from None
    tensors = {
        name: checked_tensor(name, info.dtype, tuple(info.shape), f"{shard} of {repo}")
        for shard, file_metadata in metadata.files_metadata.items()
        for name, info in file_metadata.tensors.items()
    }
    shape = shape_module.from_config(config)
    return ModelInfo(
        name=repo,
        location="hub",
        shape=shape,
        weights=weights.summarize(tensors, shape),
        shards=len(metadata.files_metadata),
        config=config,
        files=_small_files(lambda file: _hub_file(repo, file, revision, token), repo),
    )


def _hub_file(repo: str, file: str, revision: str | None, token: str | None) -> str | None:
    """A small file of the repo, downloaded into the HF cache (where the engine finds it again); None if absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return str(hf_hub_download(repo, file, revision=revision, token=token))
    except EntryNotFoundError:
        return None


def _sharded_metadata_in_one_request(api: Any, repo: str, revision: str | None, token: str | None) -> Any:
    """Every shard header in one request, where the Hub and client support it."""
    from huggingface_hub.errors import HfHubHTTPError

    # The endpoint serves `main` only, and older huggingface_hub lacks it.
    if revision not in (None, "main") or not hasattr(api, "get_sharded_safetensors_metadata"):
        return None
    try:
        return api.get_sharded_safetensors_metadata(repo, token=token)
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise
        return None  # single-file repo, or a mirror without the endpoint


@contextlib.contextmanager
def _hub_errors(repo: str, revision: str | None, token: str | None, variable: str) -> Iterator[None]:
    """Translate huggingface_hub's exceptions into one-line user errors (never showing the token)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )
    from huggingface_hub.errors import RevisionNotFoundError as HubRevisionNotFound

    token_hint = "set HF_TOKEN (or HF_TOKEN_FILE) to a token with access"
    try:
        yield
    except GatedRepoError:
        why = "the HF_TOKEN given has no access to it" if token else "no HF_TOKEN was given"
        raise GatedModelError(
            f"{repo} is gated: {why}", f"accept its license on the model page, then {token_hint}"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{variable}={repo} does not exist on {_shown(constants.ENDPOINT)}"
            + ("" if token else " (or it is private)"),
            f"check the spelling (org/name); for a private repo {token_hint}",
        ) from None
    except HubRevisionNotFound:
        raise RevisionNotFoundError(
            f"HF_REVISION={revision} does not exist in {repo}",
            "use a branch, tag or commit of the repo, for example HF_REVISION=main",
        ) from None
    except HFValidationError:
        raise ModelNotFoundError(
            f"{variable}={repo!r} is neither a folder nor a Hub repo id",
            f"use org/name, for example {variable}=Qwen/Qwen2.5-7B-Instruct",
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        if constants.HF_HUB_OFFLINE:
            raise ModelNotFoundError(
                f"{repo} is not in the local cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1",
                "download it once online, or mount the cache volume",
            ) from None
        raise _unreachable(_shown(constants.ENDPOINT), exc) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
        if status >= 500 or status in (0, 429):
            raise _unreachable(_shown(constants.ENDPOINT), exc) from None
        raise ModelNotFoundError(f"the Hub answered HTTP {status} for {repo}", token_hint) from None
    except Exception as exc:
        # Connection refused, DNS, timeouts: httpx and requests raise their own
        # classes (not OSError) from the parallel header reads.
        if _is_network_error(exc):
            raise _unreachable(_shown(constants.ENDPOINT), exc) from None
        raise


_NETWORK_ERROR_NAMES = {"TransportError", "ConnectionError", "Timeout", "RequestError", "TimeoutException"}


def _is_network_error(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, TimeoutError)) or any(
        cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(exc).__mro__
    )


def _shown(url: str) -> str:
    """A URL as we print it: without user name or password (HF_ENDPOINT=https://user:password@mirror)."""
    parts = urllib.parse.urlsplit(url)
    if not (parts.username or parts.password):
        return url
    try:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:  # a port that is not a number
        host = parts.hostname or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def _unreachable(endpoint: str, exc: BaseException) -> HubUnreachableError:
    return HubUnreachableError(
        f"cannot reach the Hugging Face Hub at {endpoint} ({type(exc).__name__})",
        "check the network or HF_ENDPOINT; with the model already in the cache set HF_HUB_OFFLINE=1, "
        "or use a local folder as TARGET_MODEL",
    )
