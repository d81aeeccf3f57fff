"""Stage 1, task spec and resources: base-model advice and the GPU memory / time / disk estimate before anything runs."""
