"""Project scripts; compose_secrets is importable for the tests."""
