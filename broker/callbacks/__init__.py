"""Signed callbacks to requesters when an asynchronous exchange ends."""
