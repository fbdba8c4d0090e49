"""Citizen preview: evidence held until the citizen approves it on a single-use, expiring page."""
