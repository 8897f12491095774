"""Serving: inference only (its API keys live in accounts, next to teams and roles)."""
