"""REST vs gRPC benchmark (``make bench``); entry point ``bench/run.py``."""
