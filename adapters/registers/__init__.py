"""The demo registers: their tables, their synthetic data and the reference adapters reading them.

Stands in for the authorities' own systems, so it depends on nothing of the broker: the broker
runs the reference adapters in-process, and the reference authority server runs them over the
wire, from the same package.
"""
