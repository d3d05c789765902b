#!/usr/bin/env bash
# Print a fresh single-use pre-auth key for Headscale user USER, creating the
# user first if needed: mint-preauth-key.sh USER [EXPIRATION, default 1h].
#
# Runs on the edge, next to Headscale. bootstrap.sh mints the edge's own key
# with it, and `homelab-tunnel join-command` mints the homelab's over ssh, so
# a key is made where it is used and never passes through any other tool.
set -euo pipefail

user="${1:?usage: mint-preauth-key.sh USER [EXPIRATION]}"
expiration="${2:-1h}"

# Headscale 0.29 takes the user by numeric ID; `users list -o json` gives it.
user_id() {
  headscale users list -o json | python3 -c '
import json, sys
users = json.load(sys.stdin) or []
print(next((str(u["id"]) for u in users if u.get("name") == sys.argv[1]), ""))
' "$user"
}

id="$(user_id)"
if [ -z "$id" ]; then
  headscale users create "$user" >/dev/null
  id="$(user_id)"
fi
[ -n "$id" ] || {
  echo "mint-preauth-key: Headscale has no user $user and could not create it" >&2
  exit 1
}
headscale preauthkeys create --user "$id" --expiration "$expiration" -o json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
