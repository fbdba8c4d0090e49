"""The reference authority server (`broker-authority`): a synthetic register in push or pull mode."""
