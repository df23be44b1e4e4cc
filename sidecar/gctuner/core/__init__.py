"""What runs inside one app process and needs nothing else: settings, the collector, pause recording, configuration, the token check. No threads, no files shared with other processes."""
