"""Long-running services beside the pipeline: the OpenAI-compatible model server and the feedback API."""
