"""The board's configuration from the bundle on its filesystem: descriptor, profile, identity.

Owns reading the MicroPython layout of a bundle (bundle.json, profile.json, ca.pem,
device.crt, device.key; docs/manufacturing.md section 4) within bounds, and the TLS
context built from its files (DER from the PEM files: mbedTLS as MicroPython builds it may
lack a PEM parser). Used by firmware/main.py on a board and firmware/runtime.py on the
unix port and CPython.
"""

import binascii
import json
import ssl

from agent.core.compat import IS_MICROPYTHON, const
from agent.core.errors import ConfigError, ProfileError

# -- limits: the bundle's files are read whole into a small heap --------------------------------
MAX_DESCRIPTOR_BYTES = const(4096)  # bundle.json (a provisioned one is under 2 KiB)
MAX_PEM_BYTES = const(8192)  # ca.pem holds two certificates, device.crt one, device.key one
MAX_PROFILE_BYTES = const(16384)  # a compiled profile (docs/manufacturing.md)
MAX_CA_CERTS = const(4)  # certificates taken from ca.pem (issuing CA and root; room for a rollover)

# The bundle's files (agent/bundle.py IDENTITY_FILES, MicroPython layout).
CA_FILE = "ca.pem"
CERT_FILE = "device.crt"
KEY_FILE = "device.key"
PROFILE_FILE = "profile.json"
DESCRIPTOR_FILE = "bundle.json"


def read_file(path: str, limit: int) -> bytes:
    """The whole file, refused (ConfigError naming it) when larger than limit: a damaged or
    foreign file must not take the heap."""
    try:
        with open(path, "rb") as f:
            data: bytes = f.read(limit + 1)
    except OSError as e:
        raise ConfigError("%s: cannot be read (%s)" % (path, e)) from e
    if len(data) > limit:
        raise ConfigError("%s: more than %d bytes; expected at most that" % (path, limit))
    return data


def _der_length_ok(der: bytes) -> bool:
    """Whether der is one whole DER SEQUENCE: tag 0x30 and a length that covers the rest exactly."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    n = der[1]
    if n < 0x80:
        return 2 + n == len(der)
    width = n & 0x7F
    if width == 0 or width > 3 or len(der) < 2 + width:
        return False
    length = 0
    for b in der[2 : 2 + width]:
        length = length * 256 + b
    return 2 + width + length == len(der)


def pem_blocks(data: bytes, labels: tuple, where: str, most: int = 1) -> list:
    """The DER bytes of each PEM block in data whose label is one of labels, in order.

    mbedTLS as MicroPython builds it may lack PEM parsing (the unix port's does); DER is
    what every build takes. ConfigError naming where, the block and what was expected for
    no block, more than `most`, a block without its END line, a label not in labels, bad
    base64, or content that is not one whole DER structure."""
    out: list = []
    pos = 0
    while True:
        start = data.find(b"-----BEGIN ", pos)
        if start < 0:
            break
        head_end = data.find(b"-----", start + 11)
        if head_end < 0:
            raise ConfigError("%s: a BEGIN line without its closing dashes at byte %d" % (where, start))
        label = data[start + 11 : head_end]
        if label not in labels:
            raise ConfigError("%s: block %d is %r; expected %s" % (where, len(out) + 1, bytes(label[:40]),
                                                                    " or ".join(repr(x) for x in labels)))  # fmt: skip
        end_line = b"-----END " + label + b"-----"
        end = data.find(end_line, head_end + 5)
        if end < 0:
            raise ConfigError("%s: block %d has no %r line" % (where, len(out) + 1, end_line))
        if len(out) == most:
            raise ConfigError("%s: more than %d PEM blocks; expected at most that" % (where, most))
        body = data[head_end + 5 : end]
        try:
            der = binascii.a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))
        except ValueError as e:  # binascii.Error on CPython is a ValueError
            raise ConfigError("%s: block %d is not base64 (%s)" % (where, len(out) + 1, e)) from e
        if not _der_length_ok(der):
            raise ConfigError("%s: block %d is not one whole DER structure (%d bytes)"
                              % (where, len(out) + 1, len(der)))  # fmt: skip
        out.append(der)
        pos = end + len(end_line)
    if not out:
        raise ConfigError("%s: no PEM block; expected %s" % (where, " or ".join(repr(x) for x in labels)))
    return out


def read_bundle(directory: str) -> dict:
    """What the runtime needs from bundle.json: device id, broker host and port, topic prefix."""
    path = directory + "/" + DESCRIPTOR_FILE
    try:
        doc = json.loads(read_file(path, MAX_DESCRIPTOR_BYTES))
    except ValueError as e:
        raise ConfigError("%s: not JSON (%s)" % (path, e)) from e
    broker = doc.get("broker") if isinstance(doc, dict) else None
    if not isinstance(broker, dict):
        raise ConfigError('%s: no "broker" object; expected {"host": ..., "port": ...}' % path)
    host, port = broker.get("host"), broker.get("port")
    if not isinstance(host, str) or not host or type(port) is not int or not 0 < port < 65536:
        raise ConfigError("%s: broker %r:%r; expected a host name and a port 1..65535" % (path, host, port))
    device_id = doc.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise ConfigError("%s: device_id %r; expected a non-empty string" % (path, device_id))
    prefix = doc.get("topic_prefix", "wichtel")
    return {"device_id": device_id, "host": host, "port": port, "topic_prefix": prefix}


def tls_context_factory(directory: str) -> object:
    """A callable that builds the TLS context from the bundle's files for each connect
    attempt (the key is in the heap only while a context is made): client certificate
    and key, the CA chain pinned, the broker's certificate required. The uplink checks
    the broker's name against it (server_hostname is the host it connects to).

    The files are checked here, once, so that a damaged bundle is said at the start."""
    ca_der = pem_blocks(read_file(directory + "/" + CA_FILE, MAX_PEM_BYTES), (b"CERTIFICATE",),
                        directory + "/" + CA_FILE, MAX_CA_CERTS)  # fmt: skip
    cert_path, key_path = directory + "/" + CERT_FILE, directory + "/" + KEY_FILE
    pem_blocks(read_file(cert_path, MAX_PEM_BYTES), (b"CERTIFICATE",), cert_path)
    pem_blocks(read_file(key_path, MAX_PEM_BYTES), (b"PRIVATE KEY", b"EC PRIVATE KEY"), key_path)

    def make_context() -> object:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]  # MicroPython's has it; its stubs lack it
        if IS_MICROPYTHON:
            # MicroPython takes the certificate and key as bytes (DER: PEM needs a parser its mbedTLS may lack).
            cert = pem_blocks(read_file(cert_path, MAX_PEM_BYTES), (b"CERTIFICATE",), cert_path)[0]
            key = pem_blocks(read_file(key_path, MAX_PEM_BYTES), (b"PRIVATE KEY", b"EC PRIVATE KEY"), key_path)[0]
            ctx.load_cert_chain(cert, key)
        else:
            ctx.load_cert_chain(cert_path, key_path)  # CPython reads them from files only
        for der in ca_der:
            # One certificate per call: given several DER certificates at once, mbedTLS
            # takes the first only; each call adds one to the trusted set.
            ctx.load_verify_locations(cadata=der)
        return ctx

    return make_context


def read_profile(directory: str, release: bool = False) -> dict:
    """The bundle's compiled profile, checked (ConfigError naming the fault otherwise).
    release: forget the validation code afterwards (agent/core/profile.py release: about
    18 KB of heap a board need not keep)."""
    from agent.core import profile as core_profile

    path = directory + "/" + PROFILE_FILE
    try:
        prof = core_profile.from_json(read_file(path, MAX_PROFILE_BYTES))
    except ProfileError as e:  # a damaged profile.json is named, as the other files are
        raise ConfigError("%s: %s" % (path, e)) from e
    if release:
        core_profile.release()
    return prof


class BoardConfig:
    """What a board runs from its bundle: the descriptor's fields, the profile and the TLS
    context factory (the files checked once here, so a damaged bundle is said at the start)."""

    __slots__ = ("device_id", "host", "port", "profile", "tls_context", "topic_prefix")

    def __init__(self, directory: str, release: bool = False) -> None:
        bundle = read_bundle(directory)
        self.device_id = bundle["device_id"]
        self.host = bundle["host"]
        self.port = bundle["port"]
        self.topic_prefix = bundle["topic_prefix"]
        self.profile = read_profile(directory, release)
        self.tls_context = tls_context_factory(directory)
