"""The data stages streamed in bounded memory (JSON Lines in parts), on the local engine or a Dask cluster."""
