"""Plan and apply the edge with plain Terraform, behind the same gates as the workflows."""
