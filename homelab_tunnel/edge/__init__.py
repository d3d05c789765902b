"""What runs on the droplet itself: the health agent and the judgements it shares with doctor.

Standard library only, importing nothing from the project outside this
package but `homelab_tunnel.findings`: the bundle in user_data installs these
modules under /usr/local/lib/homelab-tunnel, where the edge's python3 runs
them with nothing else installed. `files/` holds the edge's fixed files
(bootstrap.sh, units, drop-ins), shipped in the same bundle.
"""
