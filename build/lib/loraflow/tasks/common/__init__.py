"""What every stage shares: the user error type, JSON Lines I/O, runtime settings, the base-model resolver, the chat client, config files, plots."""
