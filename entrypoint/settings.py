"""The one table of settings, and the only code that reads the environment.

Each `Setting` says how one environment variable is parsed, its default, a
valid example and a one-line help text. `load(environ)` turns a mapping of
strings into a frozen, typed `Settings` whose fields are the table's rows (a
test keeps the two the same set); the README's settings table is rendered
from `SETTINGS` by `entrypoint.docs` and a test keeps the two equal.

Rules, in order:
1. An unset or empty variable takes the default (None when there is none).
2. A secret may instead come from `<NAME>_FILE` (docker-secrets convention);
   setting both is an error, the file's trailing newline is dropped.
3. A value that does not parse is a `SettingError` naming the variable, the
   value (never a secret's) and a valid example.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import files
from .engines import ENGINES
from .errors import MissingSettingError, SettingError
from .hardware.catalog import Accelerators, parse_accelerators
from .redact import MASK, credentials_in

Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    example: str
    parse: Parser = str
    default: str | None = None
    secret: bool = False
    required: bool = False
    # A list one item a line: the only values that may hold a line break. Any other value reaches one line
    # of our log or one argv token, where a line break would forge a log line.
    lines: bool = False

    @property
    def attr(self) -> str:
        return self.name.lower()


def _text(raw: str) -> str:
    return raw.strip()


def _integer(low: int, high: int) -> Parser:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError("a plain integer is expected (no units or suffixes)")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"it must be between {low} and {high}")
        return value

    return parse


def _fraction(raw: str) -> float:
    value = _number(raw)
    if not 0.0 < value <= 1.0:
        raise ValueError("it must be greater than 0 and at most 1")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _boolean(raw: str) -> bool:
    # One parser for every flag: "0" must mean false (vLLM's bool(os.getenv(..))
    # lesson), and anything unrecognised is an error rather than a guess.
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("use true or false (also 1/0, yes/no, on/off)")


def _boolean_or_auto(raw: str) -> bool | Literal["auto"]:
    if raw.strip().lower() == "auto":
        return "auto"
    try:
        return _boolean(raw)
    except ValueError:
        raise ValueError("use auto, true or false") from None


def _choice(*choices: str, aliases: Mapping[str, str] | None = None) -> Parser:
    aliases = dict(aliases or {})

    def parse(raw: str) -> str:
        text = raw.strip().lower()
        text = aliases.get(text, text)
        if text not in choices:
            raise ValueError(f"it must be one of: {', '.join(choices)}")
        return text

    return parse


def _lines(raw: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in raw.replace(",", "\n").splitlines() if line.strip())


def _addresses(raw: str) -> tuple[str, ...]:
    """IP addresses, one per line (or comma-separated): each reaches the engine's argv (`--dist-init-addr`,
    `--master-addr`), so nothing else may pass."""
    import ipaddress

    addresses = _lines(raw)
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IP address") from None
    return addresses


def _positive_float(raw: str) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError("it must be greater than 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError("it must not be negative")
    return value


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("a decimal number is expected") from None
    if not math.isfinite(value):
        raise ValueError("a finite number is expected")
    return value


def _readable_file(limit: int) -> Parser:
    """A regular file of at most `limit` bytes that we can open (never a FIFO, a device or a folder, which
    would block a read, never end or fail later in the engine)."""

    def parse(raw: str) -> str:
        path = raw.strip()
        try:
            files.check(path, limit)
        except files.Unreadable as exc:
            raise ValueError(f"the file {exc.reason}") from None
        return path

    return parse


def _lora_modules(raw: str) -> tuple[tuple[str, str], ...]:
    """`sql=org/repo,chat=/models/chat` -> (("sql", "org/repo"), ("chat", "/models/chat"))."""
    modules: list[tuple[str, str]] = []
    for part in raw.split(","):
        name, equals, source = (piece.strip() for piece in part.partition("="))
        if not equals or not name or not source or not all(ch.isalnum() or ch in "_-." for ch in name):
            raise ValueError("a list like sql=org/llama-sql-lora,chat=/models/chat-lora (name=folder-or-repo)")
        if name in {known for known, _ in modules}:
            raise ValueError(f"the name {name} is given twice")
        modules.append((name, source))
    return tuple(modules)


MODALITIES = ("image", "video", "audio")


def _mm_limit(raw: str) -> dict[str, int]:
    """`image=4,video=1` -> {"image": 4, "video": 1}; `0` -> {} (text only)."""
    text = raw.strip().lower()
    if text in ("0", "none"):
        return {}
    limits: dict[str, int] = {}
    for part in text.split(","):
        name, equals, count = part.strip().partition("=")
        if not equals or name not in MODALITIES or not count.strip().isdigit() or int(count) > 64:
            raise ValueError("a list like image=4,video=1 (image, video, audio; 0 to 64 each), or 0 for text only")
        if name in limits:
            raise ValueError(f"{name} is given twice")
        limits[name] = int(count)
    return limits


def _parser_name(raw: str) -> str:
    """auto, none, or a parser name (checked against the engine's own names when the plan is made)."""
    text = raw.strip()
    if not text or not all(ch.isalnum() or ch in "_-." for ch in text):
        raise ValueError("a parser name is letters, digits, '_', '-' or '.' (or auto, none)")
    return text.lower() if text.lower() in ("auto", "none") else text


def is_inline_template(value: str) -> bool:
    """CHAT_TEMPLATE written out (Jinja's `{{` or `{%`) rather than a file's path."""
    return "{{" in value or "{%" in value


def _chat_template(raw: str) -> str:
    """A template written out, else a file that must be readable."""
    return raw.strip() if is_inline_template(raw) else _readable_file(files.TEMPLATE_LIMIT)(raw)


MIN_API_KEY_LENGTH = 16
# huggingface_hub's tokens are hf_ and 34 letters or digits (older ones api_...); no real one is shorter.
MIN_HF_TOKEN_LENGTH = 16
MAX_SECRET_FILE_BYTES = 4096  # keys and tokens are short; anything longer is the wrong file


def _secret_text(raw: str) -> str:
    # Whitespace inside a secret is a mistake (a secret file of two lines would lock every client out), and
    # a control character would reach the log raw if redaction ever missed it.
    text = raw.strip()
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError("it contains whitespace or control characters (a secret file of more than one line?)")
    return text


def _secret(minimum: int, what: str) -> Parser:
    """A secret of at least `minimum` characters: a shorter one is a typo or guessable, and hiding it in logs
    would also hide every other "0", "8000" or "abc" (and a short value hidden first once cut a longer one)."""

    def parse(raw: str) -> str:
        text = _secret_text(raw)
        if len(text) < minimum:
            raise ValueError(f"it is shorter than {minimum} characters ({what})")
        return text

    return parse


def _lower(raw: str) -> str:
    return raw.strip().lower()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "TARGET_MODEL",
        "Hugging Face repo id, or a local folder holding config.json and *.safetensors.",
        "Qwen/Qwen2.5-7B-Instruct",
        _text,
        required=True,
    ),
    Setting(
        "ACCELERATORS",
        "GPUs to plan for, as SkyPilot writes them (NAME[:COUNT]); `cpu` for the CPU path "
        "(ENGINE=vllm). Unset: detect with nvidia-smi.",
        "H100:4",
        parse_accelerators,
    ),
    Setting(
        "ENGINE",
        "Serving engine: " + " or ".join(f"`{name}`" for name in ENGINES) + ".",
        "vllm",
        _choice(*ENGINES),
        default="sglang",
    ),
    Setting(
        "SERVED_MODEL_NAME",
        "Model name clients send in requests; default: last part of TARGET_MODEL.",
        "qwen-7b",
        _text,
    ),
    Setting("PORT", "HTTP port the server listens on (all interfaces).", "8000", _integer(1, 65535), default="8000"),
    Setting(
        "MAX_MODEL_LEN",
        "Context length in tokens (plain integer). Unset: the model's maximum, or the largest that fits.",
        "32768",
        _integer(1, 10_000_000),
    ),
    Setting(
        "TYPICAL_REQUEST_TOKENS",
        "Prompt plus answer of a typical request: the plan says how many such requests the KV cache holds at once.",
        "8192",
        _integer(1, 10_000_000),
        default="4096",
    ),
    Setting(
        "OPTIMIZE",
        "throughput: the layout whose replicas serve the most tokens per second at TYPICAL_REQUEST_TOKENS "
        "(memory-bound decode on the GPU's HBM bandwidth); latency: the largest TP within one node.",
        "latency",
        _choice("throughput", "latency"),
        default="throughput",
    ),
    Setting(
        "TENSOR_PARALLEL_SIZE",
        "Pin TP (GPUs that split every layer, within one node); the planner plans the rest or says why it cannot. "
        "Unset: planned.",
        "4",
        _integer(1, 16),
    ),
    Setting(
        "PIPELINE_PARALLEL_SIZE",
        "Pin PP (pipeline stages, each a group of layers). Unset: planned.",
        "2",
        _integer(1, 128),
    ),
    Setting(
        "DATA_PARALLEL_SIZE",
        "Pin DP (independent replicas). Unset: every GPU the TP x PP groups leave.",
        "2",
        _integer(1, 1024),
    ),
    Setting(
        "EXPERT_PARALLEL",
        "Expert parallelism for MoE models: auto (when TP > 1 and the experts divide evenly), true, or false.",
        "true",
        _boolean_or_auto,
        default="auto",
    ),
    Setting(
        "DTYPE",
        "Activation and weight dtype for unquantized weights.",
        "bfloat16",
        _choice(
            "auto",
            "bfloat16",
            "float16",
            "float32",
            aliases={"bf16": "bfloat16", "half": "float16", "fp16": "float16", "float": "float32", "fp32": "float32"},
        ),
        default="auto",
    ),
    Setting(
        "KV_CACHE_DTYPE",
        "Data type of the KV cache: auto (the model's dtype), or fp8 (= fp8_e4m3), fp8_e5m2, bfloat16, float16. "
        "FP8 holds twice the tokens of a 16-bit cache.",
        "fp8",
        _choice(
            "auto",
            "fp8",
            "fp8_e4m3",
            "fp8_e5m2",
            "bfloat16",
            "float16",
            aliases={"bf16": "bfloat16", "fp16": "float16"},
        ),
        default="auto",
    ),
    Setting(
        "QUANTIZATION",
        "Quantization method passed to the engine (e.g. fp8 for online FP8). "
        "Unset: what the checkpoint's quantization_config says.",
        "fp8",
        _lower,
    ),
    Setting(
        "MEM_FRACTION",
        "Passed unchanged to the engine's own memory flag: vLLM --gpu-memory-utilization (all it allocates on a "
        "GPU; on the CPU path a fraction of the NUMA node's memory, at most what is available), sglang "
        "--mem-fraction-static (weights and KV cache only). Unset: the engine's own choice, which the plan "
        "reproduces (vLLM 0.92; sglang's automatic value from GPU memory, TP and graphs).",
        "0.9",
        _fraction,
    ),
    Setting(
        "TASK",
        "What the model serves: generate (chat and completions), embed (/v1/embeddings), classify or score "
        "(/classify, /score, /rerank). auto: from modules.json and the architecture.",
        "embed",
        _choice("auto", "generate", "embed", "classify", "score"),
        default="auto",
    ),
    Setting(
        "TOOL_CALL_PARSER",
        "How tool calls are read from the model's output: auto (the model family's parser for this engine, "
        "when its chat template takes tools), none, or one of the engine's parser names.",
        "hermes",
        _parser_name,
        default="auto",
    ),
    Setting(
        "REASONING_PARSER",
        "How thinking is split from the answer (vLLM's `reasoning`, sglang's `reasoning_content` field): auto "
        "(the family's parser when its chat template thinks), none, or one of the engine's parser names.",
        "deepseek_r1",
        _parser_name,
        default="auto",
    ),
    Setting(
        "LORA_MODULES",
        "LoRA adapters to serve beside the model, name=folder-or-repo, comma-separated; clients pick one by "
        "its name in `model`, and /v1/models lists them.",
        "sql=org/llama-sql-lora,chat=/models/chat-lora",
        _lora_modules,
    ),
    Setting(
        "MAX_LORAS",
        "Adapters a batch may mix (the engine preallocates buffers for each). Unset: all of LORA_MODULES, at most 8.",
        "2",
        _integer(1, 64),
    ),
    Setting(
        "MM_LIMIT",
        "Images, videos and audio clips a request may carry to a multimodal model, e.g. image=4,video=1 (the "
        "engine reserves memory for the most these allow); 0: text only (vLLM loads no vision tower). Unset: "
        "image=4, video=1, audio=1 of what the model takes.",
        "image=2,video=0",
        _mm_limit,
    ),
    Setting(
        "CHAT_TEMPLATE",
        "A Jinja chat template for models without one (or to replace theirs): a file, or the template itself "
        "on one line; given to --chat-template.",
        "/models/template.jinja",
        _chat_template,
    ),
    Setting(
        "HF_TOKEN",
        "Hugging Face token for gated or private models (or HF_TOKEN_FILE).",
        "hf_xxx (or HF_TOKEN_FILE=/run/secrets/hf_token)",
        _secret(MIN_HF_TOKEN_LENGTH, "a Hugging Face token is hf_ and 34 letters or digits"),
        secret=True,
    ),
    Setting("HF_REVISION", "Branch, tag or commit of TARGET_MODEL to serve.", "main", _text),
    Setting(
        "TRUST_REMOTE_CODE", "Allow the model's own Python code from the Hub to run.", "true", _boolean, default="false"
    ),
    Setting("SPEC_ENABLED", "Turn on speculative decoding.", "true", _boolean, default="false"),
    Setting(
        "SPEC_DRAFT_MODEL",
        "Draft model (repo id or folder) for speculative decoding.",
        "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B",
        _text,
    ),
    Setting(
        "SPEC_METHOD",
        "Speculative method in either engine's spelling: eagle3 (EAGLE3), eagle, mtp (NEXTN), "
        "ngram, draft_model (STANDALONE), dflash, suffix (vLLM only). Unset: eagle3 with a draft model, mtp when "
        "the model has MTP layers, else ngram.",
        "eagle3",
        _lower,
    ),
    Setting("SPEC_NUM_TOKENS", "Tokens proposed per step. Unset: sglang chooses; vLLM uses 3.", "3", _integer(1, 64)),
    Setting(
        "API_KEY",
        "Key clients must send as `Authorization: Bearer <key>` (or API_KEY_FILE): at least 16 characters, no "
        "whitespace.",
        "$(openssl rand -hex 24) (or API_KEY_FILE=/run/secrets/api_key)",
        _secret(MIN_API_KEY_LENGTH, "make one with: openssl rand -hex 24"),
        secret=True,
    ),
    Setting(
        "ADMIN_API_KEY",
        "Key for the routes that change the server (weights, caches, memory, profiling, pausing, adapters "
        "loaded at run time), sent as `Authorization: Bearer <key>` (or ADMIN_API_KEY_FILE); unset, those "
        "routes are closed. Never the same as API_KEY: clients must not hold it.",
        "$(openssl rand -hex 24) (or ADMIN_API_KEY_FILE=/run/secrets/admin_api_key)",
        _secret(MIN_API_KEY_LENGTH, "make one with: openssl rand -hex 24"),
        secret=True,
    ),
    Setting(
        "REQUIRE_API_KEY",
        "Refuse to serve without API_KEY. `auto`: required under SkyPilot (SKYPILOT_TASK_ID "
        "is set), whose `ports:` are open to the internet; optional on a workstation.",
        "true",
        _boolean_or_auto,
        default="auto",
    ),
    Setting(
        "TLS_CERT_FILE",
        "TLS certificate (PEM) for HTTPS, given to the engine's own --ssl-certfile; needs TLS_KEY_FILE.",
        "/run/secrets/tls.crt",
        _readable_file(files.PEM_LIMIT),
    ),
    Setting(
        "TLS_KEY_FILE",
        "Private key (PEM) of TLS_CERT_FILE, given to --ssl-keyfile.",
        "/run/secrets/tls.key",
        _readable_file(files.PEM_LIMIT),
    ),
    Setting(
        "LOG_REQUESTS", "Log each request (prompts are private: off by default).", "true", _boolean, default="false"
    ),
    Setting(
        "SHUTDOWN_TIMEOUT",
        "Seconds in-flight requests may finish after SIGTERM (vLLM --shutdown-timeout; "
        "sglang always drains). Keep it below the orchestrator's grace period.",
        "30",
        _integer(0, 3600),
        default="30",
    ),
    Setting(
        "IDLE_TIMEOUT_MIN",
        "Stop the server after this many minutes without a request, exiting 0 (SkyPilot "
        "autostop can then tear the machine down). Turns on supervised mode.",
        "30",
        _positive_float,
    ),
    Setting(
        "MAX_RUN_HOURS",
        "Stop the server after this many hours whatever happens, exiting 0: a budget cap. Turns on supervised mode.",
        "12",
        _positive_float,
    ),
    Setting(
        "METRICS_PORT",
        "Port of the supervisor's own Prometheus metrics (plan, time to ready, cost). Turns on supervised mode.",
        "9400",
        _integer(1, 65535),
    ),
    Setting(
        "GPU_HOURLY_USD",
        "Price of one GPU-hour, for the running cost and the cost per 1,000 generated tokens "
        "in the supervisor's metrics. Unset: the typical spot price of the GPU where entrypoint/supervise/prices.py "
        "has one "
        "(A100, A100-80GB, H100, H200, L4), labelled as an estimate.",
        "2.49",
        _non_negative_float,
    ),
    Setting(
        "EXTRA_ARGS",
        "Extra engine flags, shell-quoted, appended after the planned ones so they win "
        "(flags given to the container come after these).",
        "--enable-prefix-caching",
        _text,
        lines=True,  # a YAML block of flags, a line each: line breaks separate them as spaces do
    ),
    Setting("DEBUG", "Show full tracebacks on errors.", "1", _boolean, default="false"),
    Setting(
        "HF_HUB_OFFLINE",
        "Read the model from the Hugging Face cache only, with no network (huggingface_hub "
        "and the engine read it too).",
        "1",
        _boolean,
        default="false",
    ),
    Setting(
        "PREFETCH",
        "Download the model, draft and LoRA adapters from the Hub into HF_HOME before the engine starts "
        "(parallel, resumable, one-line errors, a measured download phase); false lets the engine download.",
        "false",
        _boolean,
        default="true",
    ),
    # Multi-node: SkyPilot sets these on every node of a `num_nodes: N` task.
    Setting(
        "SKYPILOT_NUM_NODES",
        "Nodes in the cluster (set by SkyPilot). Above 1: TP inside each node, PP across "
        "nodes, one engine process per node.",
        "2",
        _integer(1, 1024),
        default="1",
    ),
    Setting(
        "SKYPILOT_NODE_RANK",
        "This node's rank, 0 being the head that serves HTTP (set by SkyPilot).",
        "0",
        _integer(0, 1023),
        default="0",
    ),
    Setting(
        "SKYPILOT_NODE_IPS",
        "The nodes' IP addresses, one per line, head first (set by SkyPilot).",
        "10.0.0.1,10.0.0.2",
        _addresses,
        lines=True,
    ),
    Setting(
        "SKYPILOT_TASK_ID",
        "Set by SkyPilot in every task: this runs on a cloud machine (REQUIRE_API_KEY=auto then requires a key).",
        "sky-2026-11-27-10-00-00-000000_llm_1",
        _text,
    ),
    Setting(
        "SKYPILOT_NUM_GPUS_PER_NODE",
        "GPUs SkyPilot allocated per node (set by SkyPilot); the plan warns when nvidia-smi sees a different number.",
        "8",
        _integer(0, 1024),
    ),
    Setting(
        "DIST_PORT",
        "TCP port on the head node where the nodes meet (multi-node only).",
        "29501",
        _integer(1, 65535),
        default="29501",
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Parsed settings: one typed field per row of SETTINGS (the variable's name in lower case)."""

    target_model: str
    accelerators: Accelerators | None
    engine: str
    served_model_name: str | None
    port: int
    max_model_len: int | None
    typical_request_tokens: int
    optimize: str
    tensor_parallel_size: int | None
    pipeline_parallel_size: int | None
    data_parallel_size: int | None
    expert_parallel: bool | Literal["auto"]
    dtype: str
    kv_cache_dtype: str
    quantization: str | None
    mem_fraction: float | None
    task: str
    tool_call_parser: str
    reasoning_parser: str
    chat_template: str | None
    mm_limit: dict[str, int] | None
    lora_modules: tuple[tuple[str, str], ...] | None
    max_loras: int | None
    hf_token: str | None
    hf_revision: str | None
    trust_remote_code: bool
    spec_enabled: bool
    spec_draft_model: str | None
    spec_method: str | None
    spec_num_tokens: int | None
    api_key: str | None
    admin_api_key: str | None
    require_api_key: bool | Literal["auto"]
    tls_cert_file: str | None
    tls_key_file: str | None
    log_requests: bool
    shutdown_timeout: int
    idle_timeout_min: float | None
    max_run_hours: float | None
    metrics_port: int | None
    gpu_hourly_usd: float | None
    extra_args: str | None
    debug: bool
    hf_hub_offline: bool
    prefetch: bool
    skypilot_num_nodes: int
    skypilot_node_rank: int
    skypilot_node_ips: tuple[str, ...] | None
    skypilot_task_id: str | None
    skypilot_num_gpus_per_node: int | None
    dist_port: int
    warnings: tuple[str, ...] = ()  # not a setting: sentences about the environment (likely typos)

    def value(self, setting: Setting) -> Any:
        return getattr(self, setting.attr)

    def secret_values(self) -> tuple[str, ...]:
        """Every secret setting that is set, to hide in the launch's printed argv and environment."""
        return tuple(str(self.value(s)) for s in SETTINGS if s.secret and self.value(s))


def load(environ: Mapping[str, str]) -> Settings:
    """Parse every setting from `environ` (a plain dict in tests)."""
    values = {setting.name: _load_one(setting, environ) for setting in SETTINGS}
    _check_pairs(values)
    return Settings(**{name.lower(): value for name, value in values.items()}, warnings=tuple(_typo_warnings(environ)))


def _check_pairs(values: Mapping[str, Any]) -> None:
    """Settings that only make sense together."""
    if bool(values["TLS_CERT_FILE"]) != bool(values["TLS_KEY_FILE"]):
        given, missing = (
            ("TLS_CERT_FILE", "TLS_KEY_FILE") if values["TLS_CERT_FILE"] else ("TLS_KEY_FILE", "TLS_CERT_FILE")
        )
        raise SettingError(
            f"{given} is set but {missing} is not", f"set both, for example {missing}={BY_NAME[missing].example}"
        )
    if values["ADMIN_API_KEY"] and values["ADMIN_API_KEY"] == values["API_KEY"]:
        raise SettingError(
            "ADMIN_API_KEY is the same as API_KEY: every client could then change the server",
            f"give the admin its own key, for example ADMIN_API_KEY={BY_NAME['ADMIN_API_KEY'].example}",
        )
    _check_ports(values)


def _check_ports(values: Mapping[str, Any]) -> None:
    """The server, the supervisor's metrics and (with several nodes) the nodes' meeting point need a port each:
    with METRICS_PORT=PORT the supervisor would scrape itself and call a dead engine ready."""
    ports = {"PORT": values["PORT"], "METRICS_PORT": values["METRICS_PORT"]}
    if values["SKYPILOT_NUM_NODES"] > 1:
        ports["DIST_PORT"] = values["DIST_PORT"]
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port is None:
            continue
        if port in seen:
            raise SettingError(
                f"{name}={port} is the same port as {seen[port]}={port}",
                f"give each its own, for example {name}={BY_NAME[name].example}"
                if BY_NAME[name].example != str(port)
                else f"give each its own, for example {name}={port + 1}",
            )
        seen[port] = name


def load_value(name: str, environ: Mapping[str, str]) -> Any:
    """One setting alone, for commands that need no model (the health check)."""
    return _load_one(BY_NAME[name], environ)


def _load_one(setting: Setting, environ: Mapping[str, str]) -> Any:
    raw = _raw_value(setting, environ)
    if raw is None or raw.strip() == "":
        if setting.required:
            raise MissingSettingError(
                f"{setting.name} is not set",
                f"set it, for example -e {setting.name}={setting.example}",
            )
        raw = setting.default
        if raw is None:
            return None
    try:
        if not setting.secret:  # a secret's own parser refuses these, without showing them
            _check_characters(raw, setting.lines)
        return setting.parse(raw)
    except ValueError as exc:
        shown = MASK if setting.secret else raw
        raise SettingError(
            f"{setting.name}={shown!r} is not valid: {exc}",
            f"for example {setting.name}={setting.example}",
        ) from None


def _check_characters(raw: str, lines: bool) -> None:
    """No value needs a control character, and one would reach the log (a terminal escape in a model name); a
    line break, only a list of lines (`Setting.lines`). Surrounding whitespace is stripped by the parsers."""
    allowed = "\t\n\r" if lines else ""
    if any(not char.isprintable() and char not in allowed for char in raw.strip()):
        what = "a control character (a terminal escape or a stray byte?)"
        raise ValueError(f"it contains {what}" if lines or not {"\n", "\r"} & set(raw.strip()) else "it spans lines")


def _raw_value(setting: Setting, environ: Mapping[str, str]) -> str | None:
    direct = environ.get(setting.name)
    if not setting.secret:
        return direct
    file_var = f"{setting.name}_FILE"
    path = environ.get(file_var)
    if not path:
        return direct
    if direct:
        raise SettingError(
            f"both {setting.name} and {file_var} are set",
            f"keep one: {file_var}={path} or {setting.name}",
        )
    example = f"mount the secret file, for example {file_var}=/run/secrets/{setting.attr}"
    try:
        return files.read_text(path, MAX_SECRET_FILE_BYTES).rstrip("\r\n")
    except (files.TooLarge, files.NotText):
        raise SettingError(
            f"{file_var}={path!r} does not hold a secret: it is binary or larger than {MAX_SECRET_FILE_BYTES} bytes",
            f'write the secret alone, as text: printf %s "$SECRET" > {path}',
        ) from None
    except files.Unreadable as exc:
        raise SettingError(f"{file_var}={path!r} {exc.reason}", example) from None


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Every secret value set, however it was given, so that no output can contain one.

    From the environment rather than `Settings`, so that errors raised before (or by) `load` are covered too.
    It adds the credentials inside any value (`https://user:password@...`, `?token=`), in our settings and in
    HF_ENDPOINT, which only huggingface_hub's errors can carry; `redact.credentials` also hides them by shape.
    """
    values = []
    for setting in SETTINGS:
        if setting.secret:
            try:
                values.append((_raw_value(setting, environ) or "").strip())
            except SettingError:
                values.append(environ.get(setting.name, "").strip())
    # A value its own parser refuses is never printed (the refusal shows ***), so it need not be masked, and must
    # not be: `API_KEY=e` masked would garble every "e" of the line that refuses it.
    values = [value for value, setting in zip(values, _secret_settings(), strict=True) if _accepted(setting, value)]
    for name in [*(setting.name for setting in SETTINGS if not setting.secret), "HF_ENDPOINT"]:
        values += credentials_in(environ.get(name, ""))
    return [value for value in values if value]


def _secret_settings() -> list[Setting]:
    return [setting for setting in SETTINGS if setting.secret]


def _accepted(setting: Setting, value: str) -> bool:
    try:
        setting.parse(value)
    except ValueError:
        return False
    return True


# Variables users plausibly mistype; only these are checked against the table
# so that unrelated environment (PATH, HOSTNAME...) never produces noise.
_STANDARD = {"HF_HOME", "HF_ENDPOINT", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}


def _typo_warnings(environ: Mapping[str, str]) -> list[str]:
    known = set(BY_NAME) | {f"{s.name}_FILE" for s in SETTINGS if s.secret} | _STANDARD
    warnings = []
    for name in sorted(environ):
        if name in known:
            continue
        match = difflib.get_close_matches(name, known, n=1, cutoff=0.86)
        if match:
            warnings.append(f"{name} is not a setting this image reads; did you mean {match[0]}?")
    return warnings
