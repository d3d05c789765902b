"""Stacks: the composition of constructs into one deployable unit."""
