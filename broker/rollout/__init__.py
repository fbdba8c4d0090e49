"""Rollout: coverage of the offices × evidence types, and onboarding gated by the conformance kit."""
