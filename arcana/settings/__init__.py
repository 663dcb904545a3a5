"""Settings split: base (shared), local (development), production, test."""
