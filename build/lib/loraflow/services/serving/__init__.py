"""OpenAI-compatible serving: built-in transformers backend with dynamic batching, vLLM command, alias reload."""
