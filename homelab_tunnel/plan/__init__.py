"""Terraform plans: classify each change by how much it hurts (no I/O), then report it."""
