"""What Quix Streams lets a user tune without changing the app: the settings
bench_peers.py runs benchmarks/peers/quix_rules.py under (Application keywords)."""

SETTINGS = {  # what Quix lets a user tune without changing the app
    "default": {},
    "poll 0.1 s": {"consumer_poll_timeout": 0.1},
    "poll 0.1 s, commit 30 s, bigger buffers": {
        "consumer_poll_timeout": 0.1, "commit_interval": 30.0, "max_partition_buffer_size": 100_000,
        "consumer_extra_config": {"fetch.min.bytes": 65536, "queued.min.messages": 200_000}},
    "exactly-once": {"processing_guarantee": "exactly-once"},
}
