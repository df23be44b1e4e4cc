"""The ``gctuner`` command: the sidecar server, the follower installer, and the entry point."""
