"""Headscale's key files to the bucket, age-encrypted, under a manifest only this edge can sign.

  python3 -m homelab_tunnel.edge.keybackup     (homelab-tunnel-backup-keys.service)

Each key file that changed is encrypted to the owner's recipients and to the
edge's own identity (agekey.py, from the edge secret) and uploaded as
`<prefix>/keys/<name>.age`; then `manifest.sha256` lists the SHA-256 of every
key file and of every `.age` object (sha256sum's format, so an owner can
check by hand) and ends in a MAC from the edge secret (derive.py, purpose
"keys"). `fetch()` is the restore's side: nothing is decrypted unless the
manifest's MAC is valid and the ciphertext is the one it names, and nothing
is returned unless the plaintext is too. So a holder of the bucket's key pair
alone can neither decrypt the keys nor make a restore install keys of theirs.

Key files are read through nofollow.py: a link planted by the `headscale`
user is refused, never followed.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from homelab_tunnel.edge import nofollow, s3
from homelab_tunnel.edge.agekey import identity_from_secret
from homelab_tunnel.edge.backups import (
    KEY_FILES,
    Backup,
    BackupError,
    locked,
    root_dir,
)
from homelab_tunnel.edge.derive import NotSigned, sign, verify

MANIFEST = "manifest.sha256"
PURPOSE = "keys"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(argv: list[str], what: str) -> bytes:
    done = subprocess.run(argv, capture_output=True, check=False)
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        raise BackupError(f"{what}: {detail[0]}")
    return done.stdout


def _identity(backup: Backup, work: Path) -> Path:
    path = work / "identity"
    path.write_text(identity_from_secret(backup.secret) + "\n")
    return path


def backup_keys(backup: Backup) -> int:
    """Upload what changed; the number of key files uploaded."""
    prefix = f"{backup.prefix}/keys"
    done_dir = backup.records / "backup-keys"
    done_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with locked(backup.root), tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        identity = _identity(backup, work)
        own = _run(["age-keygen", "-y", str(identity)], "age-keygen").decode().strip()
        recipients = "".join(f"{r}\n" for r in sorted({own, *backup.recipients}))
        (work / "recipients").write_text(recipients)
        lines, sent = [], 0
        with nofollow.directory(backup.state) as state:
            for name in KEY_FILES:
                data = nofollow.read(state, name, str(backup.state))
                if data is None:
                    continue
                done = done_dir / name
                remembered = done.read_text().split() if done.exists() else []
                wanted = [_sha256(data), _sha256(recipients.encode())]
                if (
                    remembered[:2] == wanted
                    and len(remembered) == 3
                    and s3.exists(backup.settings, f"{prefix}/{name}.age")
                ):
                    sealed = remembered[2]
                else:
                    (work / name).write_bytes(data)
                    encrypted = work / f"{name}.age"
                    _run(["age", "-R", str(work / "recipients"), "-o", str(encrypted),
                          str(work / name)], f"age could not encrypt {name}")  # fmt: skip
                    s3.put(backup.settings, f"{prefix}/{name}.age", encrypted)
                    sealed = _sha256(encrypted.read_bytes())
                    done.write_text(" ".join([*wanted, sealed]) + "\n")
                    sent += 1
                lines += [f"{wanted[0]}  {name}\n", f"{sealed}  {name}.age\n"]
        body = "".join(lines).encode()
        recorded = done_dir / "manifest"
        unchanged = recorded.exists() and recorded.read_bytes() == body
        manifest = f"{prefix}/{MANIFEST}"
        if lines and (sent or not unchanged or not s3.exists(backup.settings, manifest)):
            (work / MANIFEST).write_bytes(sign(backup.secret, PURPOSE, body))
            s3.put(backup.settings, manifest, work / MANIFEST)
            recorded.write_bytes(body)
    return sent


def fetch(backup: Backup, work: Path) -> dict[str, bytes]:
    """The backed-up key files this edge signed for, decrypted and checked; {} if none."""
    prefix = f"{backup.prefix}/keys"
    manifest = work / MANIFEST
    try:
        s3.get(backup.settings, f"{prefix}/{MANIFEST}", manifest)
    except s3.S3Error as exc:
        if exc.status == 404:
            return {}
        raise BackupError(f"cannot read {prefix}/{MANIFEST} from the bucket: {exc}") from None
    try:
        body = verify(backup.secret, PURPOSE, manifest.read_bytes())
    except NotSigned as exc:
        raise BackupError(
            f"{prefix}/{MANIFEST} was not written by this edge ({exc}); no key file restored"
        ) from None
    sums = {name: digest for digest, _, name in (line.partition("  ") for line in
            body.decode().splitlines())}  # fmt: skip
    identity = _identity(backup, work)
    found = {}
    for name in KEY_FILES:
        if name not in sums:
            continue
        encrypted = work / f"{name}.age"
        try:
            s3.get(backup.settings, f"{prefix}/{name}.age", encrypted)
        except s3.S3Error as exc:
            raise BackupError(f"cannot download {prefix}/{name}.age: {exc}") from None
        if _sha256(encrypted.read_bytes()) != sums.get(f"{name}.age"):
            raise BackupError(f"{prefix}/{name}.age is not the one this edge's manifest names")
        plain = subprocess.run(
            ["age", "-d", "-i", str(identity), str(encrypted)], capture_output=True, check=False
        )
        if plain.returncode != 0:
            raise BackupError(
                f"{name}.age is not encrypted to this edge's key (edge secret replaced? "
                "decrypt it with your own age identity)"
            )
        if _sha256(plain.stdout) != sums[name]:
            raise BackupError(f"{name} does not match {prefix}/{MANIFEST}")
        found[name] = plain.stdout
    return found


def main() -> int:
    try:
        backup = Backup.load(root_dir())
        sent = backup_keys(backup)
    except (BackupError, nofollow.Unsafe, s3.S3Error, OSError) as exc:
        print(f"backup-keys: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"backup-keys: {sent} key file(s) uploaded to {backup.url('/keys/')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
