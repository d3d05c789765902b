"""age keys as text: checking a recipient, and the edge's own identity.

The key files Headscale keeps outside its database (noise and DERP private
keys) are encrypted before they leave the box, to the owner's recipients from
the config and to the edge's own identity. That identity must survive the loss
of the volume, or a blank volume could not restore them unattended, so it is
derived from the edge secret (derive.py, purpose "age"), which a new droplet
receives in user_data. It is not derived from the bucket's key pair: whoever
holds only that pair (a leaked CI log, an old droplet's backup.env) can read
the bucket but not the key files.

Standard library only: bech32 is BIP-173, as age uses it.
"""

from __future__ import annotations

import sys

from homelab_tunnel.edge.derive import derived_key

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
RECIPIENT_PREFIX = "age"
IDENTITY_PREFIX = "age-secret-key-"


def _polymod(values: list[int]) -> int:
    generators = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for index, generator in enumerate(generators):
            checksum ^= generator if (top >> index) & 1 else 0
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_five_bits(data: bytes) -> list[int]:
    accumulator, bits, groups = 0, 0, []
    for byte in data:
        accumulator = (accumulator << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            groups.append((accumulator >> bits) & 31)
    if bits:
        groups.append((accumulator << (5 - bits)) & 31)
    return groups


def bech32_encode(hrp: str, data: bytes) -> str:
    groups = _to_five_bits(data)
    polymod = _polymod(_hrp_expand(hrp) + groups + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in groups + checksum)


def is_recipient(text: str) -> bool:
    """An age X25519 recipient: `age1` and 58 bech32 characters with a valid checksum."""
    if len(text) != 62 or not text.startswith("age1") or text != text.lower():
        return False
    data = text[4:]
    if any(c not in CHARSET for c in data):
        return False
    return _polymod(_hrp_expand(RECIPIENT_PREFIX) + [CHARSET.index(c) for c in data]) == 1


def identity_from_secret(secret: str) -> str:
    """`AGE-SECRET-KEY-1...` from the edge secret: its 32-byte "age" key as the X25519 scalar."""
    scalar = bytes.fromhex(derived_key(secret, "age"))
    return bech32_encode(IDENTITY_PREFIX, scalar).upper()


def main(argv: list[str]) -> int:
    """`python3 -m homelab_tunnel.edge.agekey identity` reads the edge secret on stdin."""
    if argv != ["identity"]:
        print("usage: python3 -m homelab_tunnel.edge.agekey identity < SECRET", file=sys.stderr)
        return 2
    try:
        print(identity_from_secret(sys.stdin.read().strip()))
    except ValueError as exc:
        print(f"agekey: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
