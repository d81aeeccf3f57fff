"""Contracts: the pipeline config and the pandera models of each data stage."""
