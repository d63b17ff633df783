"""Errors meant for people, each with its own exit code.

Every failure a user can cause or meet ends as one of these: `cli.main` prints
one line, `error: <what>; <how to fix>`, and exits with the class's code.
Codes are distinct per kind of failure so that scripts and orchestrators can
tell "fix your settings" from "the Hub is down" without parsing text. The
table in README.md ("Exit codes") is generated from the classes here and from
`OTHER_EXIT_CODES`, the statuses the supervisor gives that are not errors of ours.
"""

from __future__ import annotations


class EntrypointError(Exception):
    """Base class: a message, a hint and an exit code."""

    exit_code = 1
    summary = "unexpected failure"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# The command line of this program itself.
class UsageError(EntrypointError):
    exit_code = 2
    summary = "the entrypoint's own command has an argument it does not know (`plan --jsn`)"


# Configuration: the user's settings are wrong.
class SettingError(EntrypointError):
    exit_code = 10
    summary = "a setting has an invalid value"


class MissingSettingError(EntrypointError):
    exit_code = 11
    summary = "a required setting is missing"


class UnknownAcceleratorError(EntrypointError):
    exit_code = 12
    summary = "ACCELERATORS names a GPU the catalog does not know"


class UnsupportedByEngineError(EntrypointError):
    exit_code = 13
    summary = "the engine cannot do what the settings ask (removed flag, method, quantization)"


class RemovedFlagError(EntrypointError):
    exit_code = 14
    summary = "EXTRA_ARGS or the container arguments use a flag the engine removed"


# Hardware: the GPUs cannot be seen or used.
class NvidiaSmiMissingError(EntrypointError):
    exit_code = 20
    summary = "nvidia-smi is not on PATH (container started without --gpus)"


class NvidiaSmiFailedError(EntrypointError):
    exit_code = 21
    summary = "nvidia-smi cannot be run, fails, hangs or prints something unreadable"


class NoGpuError(EntrypointError):
    exit_code = 22
    summary = "no GPU is visible to this process"


# Model: the checkpoint cannot be found or read.
class ModelNotFoundError(EntrypointError):
    exit_code = 30
    summary = "the model repository or folder does not exist"


class GatedModelError(EntrypointError):
    exit_code = 31
    summary = "the model is gated or private and no (valid) token was given"


class NoSafetensorsError(EntrypointError):
    exit_code = 32
    summary = "the model has no safetensors weights (only .bin, .pt or GGUF)"


class CorruptCheckpointError(EntrypointError):
    exit_code = 33
    summary = "config.json or a safetensors header cannot be parsed"


class HubUnreachableError(EntrypointError):
    exit_code = 34
    summary = "the Hugging Face Hub (HF_ENDPOINT) cannot be reached"


class RevisionNotFoundError(EntrypointError):
    exit_code = 35
    summary = "HF_REVISION names a branch, tag or commit that does not exist"


class NoDiskSpaceError(EntrypointError):
    exit_code = 36
    summary = "the weights to download do not fit the free space of the Hugging Face cache's disk"


# Planning: the model does not fit.
class DoesNotFitError(EntrypointError):
    exit_code = 40
    summary = "the model does not fit on the GPUs, even with all of them"


# Serving: the engine could not be started or died.
class EngineMissingError(EntrypointError):
    exit_code = 50
    summary = "the engine's program is not installed in this image"


# Our own output: what we print cannot be written.
class OutputError(EntrypointError):
    exit_code = 74  # EX_IOERR in sysexits.h
    summary = "our standard output or error cannot be written (closed, or a full disk such as /dev/full)"


# Anything else is a bug of ours: one line, no traceback unless DEBUG=1, and a code of its own.
class UnexpectedError(EntrypointError):
    exit_code = 70  # EX_SOFTWARE in sysexits.h
    summary = "an unexpected failure inside the entrypoint (a bug: DEBUG=1 shows the traceback; please report it)"


# Container arguments: a command that is not ours and cannot be run (the shell's code).
class CommandNotFoundError(EntrypointError):
    exit_code = 127
    summary = "the container was given a command that does not exist"


def all_error_classes() -> list[type[EntrypointError]]:
    """Every concrete error class, in exit-code order."""
    found: list[type[EntrypointError]] = []
    pending = list(EntrypointError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.exit_code)


# Supervised mode (docs/adr/0011) passes the engine's own status on (128+N when signal N killed it), except:
ENGINE_EXITED_UNASKED = 51
UNHEALTHY = 1  # the health command's "not healthy", as Docker's HEALTHCHECK reads it
READER_GONE = 141  # 128 + SIGPIPE, as a shell reports it: `plan | head -1` closed the pipe early
STOPPED_ON_SECOND_SIGNAL = 143  # 128 + SIGTERM (130 for a second SIGINT): the drain was cut short
OTHER_EXIT_CODES: tuple[tuple[int, str, str], ...] = (
    (
        READER_GONE,
        "(broken pipe)",
        "whatever read our output closed it early (`plan` piped into `head -1`): nothing more is printed",
    ),
    (UNHEALTHY, "(health) unhealthy", "`python -m entrypoint health`: /health did not answer 200 (Docker's code)"),
    (0, "(supervised) stopped", "IDLE_TIMEOUT_MIN or MAX_RUN_HOURS stopped the engine, or SIGTERM did: a clean stop"),
    (
        STOPPED_ON_SECOND_SIGNAL,
        "(supervised) second signal",
        "a second SIGTERM (130: SIGINT) during the drain killed the engine's processes at once; requests in "
        "flight were cut off",
    ),
    (
        ENGINE_EXITED_UNASKED,
        "(supervised) engine exited",
        "the engine exited with status 0 although nobody asked "
        "it to stop; a failure for the orchestrator to restart (an exec'd engine exits with its own code)",
    ),
)
EXIT_CODES = {cls.__name__: cls.exit_code for cls in all_error_classes()}
