"""The gate pipelines ask before every deployment."""
