"""inference-endpoint: plan and start an OpenAI-compatible LLM server on sglang or vLLM."""

__version__ = "0.1.0"
