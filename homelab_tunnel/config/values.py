"""Value types of the config: each a string or number with one check and one message.

Every check says what is allowed, so the user's one-line error is enough to fix
the file. Checks never touch the network.

Each value lands in several files of different syntax: the Caddyfile,
headscale.yaml, policy.hujson, env files that bash sources, the user_data YAML
and Terraform JSON (where `${...}` and `%{...}` are evaluated). Rather than
escape per target, every value has a well-known shape that is literal in all
of them: patterns match the whole value (`fullmatch`; `$` would also match
before a trailing newline), and no string may hold a control character.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from homelab_tunnel.config.ports import parse_ports
from homelab_tunnel.edge.agekey import is_recipient

# Regions as of 2026 (`doctl compute region list`); preflight asks the API
# whether the region really offers the size and block storage.
REGIONS = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc1",
    "nyc2",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)

# Regions with Spaces (the provider's digitalocean_spaces_bucket accepts these).
SPACES_REGIONS = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)

# The Spaces region in the same city as each droplet region: the config bucket's
# default (a region with Spaces is its own).
NEAREST_SPACES = {
    **{region: region for region in SPACES_REGIONS},
    "nyc1": "nyc3",
    "nyc2": "nyc3",
}

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,38}[a-z0-9]")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
# RFC 5322 dot-atoms, narrowed to what real mailboxes use: no quotes, braces,
# '#', '$', '%', '`' or '|', which mean something to Caddy, YAML, bash or Terraform.
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")
FINGERPRINT = re.compile(r"(?:[0-9a-f]{2}:){15}[0-9a-f]{2}")
# A key's name in the DigitalOcean account: it reaches Terraform JSON, so no
# '$', '%' or braces (template syntax), no quotes or backslashes.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@+(),:'-]{0,254}")
_VERSION = re.compile(r"v?[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HTTPS_URL = re.compile(
    r"https://(?P<host>[A-Za-z0-9.-]{1,253})(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<rest>/[A-Za-z0-9._~/%=&?+,:@!-]*)?"
)
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Headscale refuses user names shorter than 2 characters or not starting with a
# letter (hscontrol/util/dns.go, ValidateUsername); each upstream machine joins as
# the user of its own name, so its name must pass the same rule.
_HEADSCALE_USER = re.compile(r"[a-z][a-z0-9-]*")
# The Headscale user of the edge's own node (its ACL policy names it).
EDGE_USER = "edge"
TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")

_CONTROL_NAMES = {"\0": "NUL", "\t": "tab", "\n": "newline", "\r": "carriage return"}


# ---------------------------------------------------------------------------
# Every string: one line of text
# ---------------------------------------------------------------------------


def _control_character(value: str) -> tuple[int, str] | None:
    """The first character that is not printable text, with a name for it.

    C0/C1 controls and DEL, plus the separators YAML also reads as line breaks
    (U+0085, U+2028, U+2029) and the zero-width/bidi format characters that
    make a value look different from what it is.
    """
    for index, char in enumerate(value):
        code = ord(char)
        if (
            code < 0x20
            or 0x7F <= code <= 0x9F
            or code in (0x2028, 0x2029, 0xFEFF)
            or 0x200B <= code <= 0x200F
            or 0x202A <= code <= 0x202E
            or 0x2066 <= code <= 0x2069
        ):
            return index, _CONTROL_NAMES.get(char, f"U+{code:04X}")
    return None


def _single_line(value: Any) -> Any:
    """Refuse control characters before any normalising could hide them."""
    if isinstance(value, str):
        found = _control_character(value)
        if found is not None:
            index, name = found
            raise ValueError(
                f"{value!r} contains a control character ({name}) at position {index}; "
                "values are one line of printable text"
            )
    return value


def _domain(value: Any) -> Any:
    return _normalise_domain(_single_line(value))


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------


def _normalise_domain(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip(" ").lower().removesuffix(".")
    return value


def is_hostname(value: str) -> bool:
    """Lowercase DNS labels, at least two, the last one not all digits."""
    labels = value.split(".")
    return (
        len(labels) >= 2
        and len(value) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _check_fqdn(value: str) -> str:
    if value.startswith("*."):
        raise ValueError(
            f"{value!r}: wildcard names are not supported (list each name; "
            "Caddy gets one certificate per name over HTTP-01)"
        )
    if not is_hostname(value):
        raise ValueError(
            f"{value!r} is not a fully qualified domain name "
            "(expected lowercase labels of a-z, 0-9 and '-', e.g. blog.example.com)"
        )
    return value


def _one_of(allowed: tuple[str, ...], what: str) -> Callable[[str], str]:
    """A check that the value is one of `allowed`, naming them all when it is not."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not {what}; allowed: {', '.join(allowed)}")
        return value

    return check


def _check_age_recipient(value: str) -> str:
    if not is_recipient(value):
        raise ValueError(
            f"{value!r} is not an age recipient (age1 and 58 more characters, the public key "
            "`age-keygen` prints; keep its identity file safe and off the edge)"
        )
    return value


def _check_slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DigitalOcean slug (lowercase letters, digits and '-')"
        )
    return value


_UBUNTU = re.compile(r"ubuntu-(\d\d)-(\d\d)-x64")
# bootstrap.sh takes Tailscale from its Ubuntu repository and the edge's Python
# modules need 3.11 (Ubuntu 22.04 has 3.10): Ubuntu 24.04 or later.
_OLDEST_UBUNTU = (24, 4)


def _check_image(value: str) -> str:
    _check_slug(value)
    release = _UBUNTU.fullmatch(value)
    if value.isdigit() or (release and (int(release[1]), int(release[2])) >= _OLDEST_UBUNTU):
        return value
    raise ValueError(
        f"{value!r} cannot run the edge, which needs Ubuntu 24.04 or later (Tailscale's Ubuntu "
        "repository, python3 3.11+): give ubuntu-24-04-x64, a later ubuntu-YY-MM-x64, or the "
        "numeric id of your own snapshot or custom image of one"
    )


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: 2-40 characters, lowercase letters, "
            "digits and '-', starting with a letter"
        )
    return value


def _check_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not _EMAIL_LOCAL.fullmatch(local) or len(value) > 254:
        raise ValueError(
            f"{value!r} is not an email address (expected name@domain, the name of "
            "letters, digits and . _ + -, e.g. ops@example.com)"
        )
    if not is_hostname(domain.lower()):
        raise ValueError(
            f"{value!r} is not an email address: {domain!r} is not a domain name "
            "(e.g. ops@example.com)"
        )
    return value


def _check_upstream(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        if address not in TAILNET_V4:
            raise ValueError(
                f"{value!r} is not a tailnet address (100.64.0.0/10); upstreams are reached "
                "over the tailnet, by machine name or tailnet IPv4"
            )
        return value
    if not _LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a tailnet machine name (one DNS label, e.g. 'homelab') "
            "or a tailnet IPv4 address (100.64.0.0/10)"
        )
    if not _HEADSCALE_USER.fullmatch(value) or len(value) < 2:
        raise ValueError(
            f"{value!r}: the machine joins as the Headscale user of its name, and Headscale "
            "refuses user names shorter than 2 characters or not starting with a letter; "
            "rename the machine (e.g. 'nas1')"
        )
    return value


def _check_machine_name(value: str) -> str:
    """A tailnet machine by name only: what a forward-auth server is reached by."""
    if not _LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a tailnet machine name: name the machine the auth server runs "
            "on (one DNS label, e.g. 'homelab'); the edge reaches it by its MagicDNS name"
        )
    return _check_upstream(value)


# ---------------------------------------------------------------------------
# Site policy: users, hashes, auth endpoints
# ---------------------------------------------------------------------------

# Caddy's basic_auth reads `user hash` as two words and expands {placeholders};
# a browser sends `user:password`, so a ':' in a name could never log in.
_BASIC_USER = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
# Modular crypt format of bcrypt: $2a$/$2b$/$2y$, a cost of 04-31, 53 characters
# of bcrypt's base64 (salt and hash), as `caddy hash-password` and `htpasswd -B` print.
_BCRYPT = re.compile(r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
HASH_HOWTO = "`caddy hash-password` prints one (or `htpasswd -nB USER`, the part after the colon)"
# The auth server's check endpoint: a path and query, literal (no {placeholders}).
_AUTH_PATH = re.compile(r"/[A-Za-z0-9._~/%=&?+,:@!-]{0,254}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def _check_basic_user(value: str) -> str:
    if not _BASIC_USER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a user name for basic auth: 1-64 letters, digits and . _ @ + -"
        )
    return value


def _check_bcrypt(value: Any) -> Any:
    """A bcrypt hash; the value is never shown, in case a password was pasted instead."""
    if isinstance(value, str) and not _BCRYPT.fullmatch(value):
        raise ValueError(
            "is not a bcrypt hash ($2a$, $2b$ or $2y$, a cost, then 53 characters; the value "
            f"is not shown in case it is a password): {HASH_HOWTO}"
        )
    return value


def _check_auth_path(value: str) -> str:
    if not _AUTH_PATH.fullmatch(value):
        raise ValueError(
            f"{value!r} is not the path of the auth server's check endpoint: it starts with "
            "'/' and holds letters, digits and . _ ~ / % = & ? + , : @ ! - (e.g. "
            "'/api/authz/forward-auth' for Authelia, '/oauth2/auth' for oauth2-proxy)"
        )
    return value


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an HTTP header name (letters, digits and '-', e.g. 'Remote-User')"
        )
    return value


# ---------------------------------------------------------------------------
# Keys, networks, versions, URLs
# ---------------------------------------------------------------------------


def _check_ssh_key(value: str) -> str:
    """A fingerprint (any case, stored lowercase) or the key's name in the account."""
    value = value.strip(" ")
    if FINGERPRINT.fullmatch(value.lower()):
        return value.lower()
    if not _KEY_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is neither an MD5 fingerprint (aa:bb:...:ff) nor a key name "
            "of letters, digits, spaces and . _ @ + ( ) , : ' -"
        )
    return value


def _check_cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a CIDR string such as 203.0.113.7/32")
    _single_line(value)
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 or IPv6 network (expected e.g. 203.0.113.7/32)"
        ) from None
    network = interface.network
    if interface.ip != network.network_address:
        raise ValueError(f"{value!r} has host bits set; did you mean {network.with_prefixlen!r}?")
    return network.with_prefixlen


def _check_bucket(value: str) -> str:
    if not _BUCKET.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Spaces bucket name (3-63 lowercase letters, digits and '-')"
        )
    return value


def _check_state_key(value: str) -> str:
    segments = value.split("/")
    if (
        not value.endswith(".tfstate")
        or len(value) > 1024
        or not all(_KEY_SEGMENT.fullmatch(part) and part not in (".", "..") for part in segments)
    ):
        raise ValueError(
            f"{value!r}: expected a relative object key ending in .tfstate, of "
            "letters, digits and . _ - separated by '/', e.g. 'edge/terraform.tfstate'"
        )
    return value


def _check_version(value: str) -> str:
    if not _VERSION.fullmatch(value):
        raise ValueError(f"{value!r} is not a version; expected MAJOR.MINOR.PATCH, e.g. '1.90.2'")
    return value.removeprefix("v")


def _check_sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise ValueError(f"{value!r} is not a sha256 digest (64 hex characters)")
    return value.lower()


_PEM_CERTIFICATE = r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE-----\n"
_PEM_BUNDLE = re.compile(f"(?:{_PEM_CERTIFICATE})+")
MAX_PEM_BYTES = 16 * 1024


def _check_pem_certificates(value: str) -> str:
    """One or more PEM certificates and nothing else: they land in a file on the edge.

    The one multi-line value of the config: line breaks are allowed between
    the PEM lines, and nothing but base64 and the PEM markers on them.
    """
    text = "\n".join(line.strip() for line in value.strip().splitlines()) + "\n"
    if len(text) > MAX_PEM_BYTES or not _PEM_BUNDLE.fullmatch(text):
        raise ValueError(
            "expected one or more PEM certificates (-----BEGIN CERTIFICATE----- ... "
            f"-----END CERTIFICATE-----) and nothing else, {MAX_PEM_BYTES // 1024} KiB at most"
        )
    for body in re.findall(r"CERTIFICATE-----\n([A-Za-z0-9+/=\n]+)\n-----END", text):
        try:
            base64.b64decode(body.replace("\n", ""), validate=True)
        except ValueError:
            raise ValueError("a PEM certificate's body is not valid base64") from None
    return text


def _check_https_url(value: str) -> str:
    match = _HTTPS_URL.fullmatch(value)
    if (
        match is None
        or not is_hostname(match["host"].lower())
        or not 1 <= int(match["port"] or 443) <= 65535
    ):
        raise ValueError(
            f"{value!r} is not an https:// URL of a host name, optional port and path "
            "(letters, digits and . _ ~ / % = & ? + , : @ ! -), "
            "e.g. https://controlplane.tailscale.com/derpmap/default"
        )
    return value


def _check_public_ports(value: Any) -> Any:
    """A port as a TOML integer, a range as a string; stored as the text a firewall rule takes."""
    allowed = 'a port number (port = 27015) or a range in quotes (port = "27015-27020")'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be {allowed}")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise ValueError(f"{value} is not a port: {allowed}, within 1-65535")
        return str(value)
    _single_line(value)
    if "-" not in value:
        raise ValueError(f"{value!r}: write a single port unquoted; {allowed}")
    try:
        first, last = parse_ports(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a port range: FIRST-LAST, both within 1-65535, FIRST below LAST"
        ) from None
    return f"{first}-{last}"


# ---------------------------------------------------------------------------
# The types, each with its rule in words
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What a value type accepts, in words, beside the check that enforces it.

    The configuration reference (config/reference.py) prints it for every key
    of the type; a constrained type without one fails the reference's test.
    """

    name: str  # what the value is, e.g. "domain name"
    allowed: str  # what is accepted; anything else is refused


_PUNCTUATION = "letters, digits and `. _ ~ / % = & ? + , : @ ! -`"

# Control characters are refused first (before any normalising could hide them).
_Line = BeforeValidator(_single_line)
Fqdn = Annotated[
    str,
    BeforeValidator(_domain),
    AfterValidator(_check_fqdn),
    Rule(
        "domain name",
        "at least two labels of a-z, 0-9 and `-` (1-63 characters, not starting or ending "
        "with `-`), the last not all digits, 253 characters in all; upper case and a "
        "trailing dot are normalised; wildcards (`*.example.com`) are refused",
    ),
]
Region = Annotated[
    str,
    _Line,
    AfterValidator(_one_of(REGIONS, "a DigitalOcean region")),
    Rule("DigitalOcean region", "one of " + ", ".join(f"`{r}`" for r in REGIONS)),
]
SpacesRegion = Annotated[
    str,
    _Line,
    AfterValidator(_one_of(SPACES_REGIONS, "a region with Spaces")),
    Rule("Spaces region", "one of " + ", ".join(f"`{r}`" for r in SPACES_REGIONS)),
]
AgeRecipient = Annotated[
    str,
    _Line,
    AfterValidator(_check_age_recipient),
    Rule("age recipient", "`age1` and 58 more characters: the public key `age-keygen` prints"),
]
Slug = Annotated[
    str,
    _Line,
    AfterValidator(_check_slug),
    Rule(
        "DigitalOcean slug",
        "2 or more lowercase letters, digits and `-`, not starting or ending with `-`",
    ),
]
Image = Annotated[
    str,
    _Line,
    AfterValidator(_check_image),
    Rule(
        "droplet image",
        "`ubuntu-24-04-x64`, a later `ubuntu-YY-MM-x64`, or the numeric id of your own "
        "snapshot or custom image of one (the edge needs Tailscale's Ubuntu repository and "
        "python3 3.11 or later)",
    ),
]
Name = Annotated[
    str,
    _Line,
    AfterValidator(_check_name),
    Rule(
        "stack name",
        "2-40 characters: lowercase letters, digits and `-`, starting with a letter, "
        "not ending with `-`",
    ),
]
Email = Annotated[
    str,
    _Line,
    AfterValidator(_check_email),
    Rule(
        "email address",
        "`name@domain`: the name of letters, digits and `. _ + -` (no leading, trailing or "
        "double dot), the domain a domain name; 254 characters at most",
    ),
]
Cidr = Annotated[
    str,
    BeforeValidator(_check_cidr),
    Rule(
        "network",
        "an IPv4 or IPv6 network such as `203.0.113.7/32` or `2001:db8::/64`; a bare "
        "address means one host (/32, /128); host bits after the prefix are refused",
    ),
]
Upstream = Annotated[
    str,
    BeforeValidator(_domain),
    AfterValidator(_check_upstream),
    Rule(
        "tailnet machine or address",
        "a machine name (one DNS label, at least 2 characters, starting with a letter: the "
        "machine joins as the Headscale user of its name) or a tailnet IPv4 address in "
        "100.64.0.0/10",
    ),
]
Bucket = Annotated[
    str,
    _Line,
    AfterValidator(_check_bucket),
    Rule(
        "bucket name",
        "3-63 lowercase letters, digits and `-`, not starting or ending with `-` (no dots)",
    ),
]
StateKey = Annotated[
    str,
    _Line,
    AfterValidator(_check_state_key),
    Rule(
        "state object key",
        "a relative key ending in `.tfstate`: segments of letters, digits and `. _ -` "
        "joined by `/` (no `.` or `..` segment), 1024 characters at most",
    ),
]
Version = Annotated[
    str,
    _Line,
    AfterValidator(_check_version),
    Rule("version", "`MAJOR.MINOR.PATCH` in digits, e.g. `1.90.2`; a leading `v` is dropped"),
]
Sha256 = Annotated[
    str, _Line, AfterValidator(_check_sha256), Rule("sha256 digest", "64 hex characters")
]
HttpsUrl = Annotated[
    str,
    _Line,
    AfterValidator(_check_https_url),
    Rule(
        "https URL",
        f"`https://`, a host name, an optional port (1-65535) and a path of {_PUNCTUATION}",
    ),
]
PemCertificates = Annotated[
    str,
    AfterValidator(_check_pem_certificates),
    Rule(
        "PEM certificates",
        "one or more `-----BEGIN CERTIFICATE-----` blocks of base64 and nothing else, "
        f"{MAX_PEM_BYTES // 1024} KiB at most: the one value that spans lines",
    ),
]
SshKey = Annotated[
    str,
    _Line,
    AfterValidator(_check_ssh_key),
    Rule(
        "SSH key",
        "an MD5 fingerprint (`aa:bb:...:ff`, 16 pairs, any case) or the key's name in the "
        "account: letters, digits, blanks and `. _ @ + ( ) , : ' -`, starting with a letter "
        "or digit, 255 characters at most",
    ),
]
Port = Annotated[int, Field(ge=1, le=65535), Rule("port", "a whole number, 1-65535")]
MachineName = Annotated[
    str,
    BeforeValidator(_domain),
    AfterValidator(_check_machine_name),
    Rule(
        "tailnet machine name",
        "one DNS label, at least 2 characters, starting with a letter (no address: the "
        "edge reaches it by its MagicDNS name)",
    ),
]
BasicUser = Annotated[
    str,
    _Line,
    AfterValidator(_check_basic_user),
    Rule("user name", "1-64 letters, digits and `. _ @ + -` (a browser sends `user:password`)"),
]
BcryptHash = Annotated[
    str,
    BeforeValidator(_check_bcrypt),
    Rule(
        "bcrypt hash",
        "`$2a$`, `$2b$` or `$2y$`, a cost of 04-31, `$` and 53 characters, as `caddy "
        "hash-password` or `htpasswd -nB` print; never the password itself (the value is "
        "not shown in errors)",
    ),
]
AuthPath = Annotated[
    str,
    _Line,
    AfterValidator(_check_auth_path),
    Rule("path", f"`/` and up to 254 more of {_PUNCTUATION}, taken literally"),
]
HeaderName = Annotated[
    str,
    _Line,
    AfterValidator(_check_header_name),
    Rule(
        "header name",
        "letters, digits and `-`, starting with a letter or digit, 64 characters at most",
    ),
]
PublicPorts = Annotated[
    str,
    BeforeValidator(_check_public_ports),
    Rule(
        "public port or range",
        'a port number, 1-65535, unquoted (`27015`), or a range in quotes, `"FIRST-LAST"` '
        "with FIRST below LAST",
    ),
]
