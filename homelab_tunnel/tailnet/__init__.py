"""The operator's view of the tailnet: the version gate, join steps, evidence from the edge."""
