"""The page's name on the home network, `<model>-<short id>.local`, and the answer to an
mDNS question for it (RFC 6762): bytes in, bytes out, no sockets (the host's responder is
agent/local_page/mdns_host.py; a board's Wi-Fi stack answers for its hostname itself).

Only A questions (and ANY) for exactly this name are answered; everything else, and every
malformed packet, gets no answer. The label on the appliance carries the same name as the
QR code's URL (provisioning/bundle.py qr_payload).
"""

_TYPE_A = 1
_TYPE_ANY = 255
_CLASS_IN = 1
_FLUSH = 0x8000  # cache-flush bit of an answer's class, and the unicast-response bit of a question's
TTL_S = 120  # what RFC 6762 recommends for a host name's address
MDNS_PORT = 5353
MDNS_GROUP = "224.0.0.251"
MAX_PACKET = 1500  # an mDNS packet fits one Ethernet frame; longer ones are not read
_MAX_QUESTIONS = 16
_SHORT_ID = 4  # characters of the device id in the name: tells two machines of a model apart


def local_name(model: str, device_id: str) -> str:
    """'WM 8 Eco' and 'k3x7…' -> 'wm-8-eco-k3x7': letters and digits of the model, the rest
    as single hyphens, at most 40 characters, then the first four letters and digits of the
    device id (a provisioned id is all of them; a test's "dev-1" gives "dev1")."""
    out = []
    for ch in model.lower():
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    slug = "".join(out).strip("-")[:40].strip("-") or "wichtel"
    short = "".join(ch for ch in device_id.lower() if "a" <= ch <= "z" or "0" <= ch <= "9")[:_SHORT_ID]
    return slug + "-" + short if short else slug


def _labels(name: str) -> bytes:
    out = b""
    for part in name.split("."):
        raw = part.encode()
        out += bytes((len(raw),)) + raw
    return out + b"\x00"


def _read_name(packet: bytes, at: int) -> tuple:
    """(lowercased dotted name, offset after it) of a question's name; compression pointers
    are followed at most a few times; (None, 0) for anything malformed."""
    parts = []
    end = 0
    jumps = 0
    while True:
        if at >= len(packet):
            return None, 0
        n = packet[at]
        if n == 0:
            at += 1
            break
        if n & 0xC0 == 0xC0:  # a pointer back into the packet
            if at + 1 >= len(packet) or jumps > 4:
                return None, 0
            end = end or at + 2
            at = ((n & 0x3F) << 8) | packet[at + 1]
            jumps += 1
            continue
        if n > 63 or at + 1 + n > len(packet):
            return None, 0
        try:
            parts.append(packet[at + 1 : at + 1 + n].decode().lower())
        except UnicodeError:
            return None, 0
        at += 1 + n
    return ".".join(parts), end or at


def answer(packet: bytes, name: str, ipv4: bytes, unicast: bool = False) -> bytes:
    """The response to a query asking for `name`.local's address, or b"" when it asks for
    nothing of ours (or is not a well-formed query). unicast: the question came from a
    port other than 5353 (a one-shot resolver, RFC 6762 6.7): the answer echoes its id and
    question, and its TTL is at most 10 s."""
    if len(packet) < 12 or len(packet) > MAX_PACKET or len(ipv4) != 4:
        return b""
    flags = (packet[2] << 8) | packet[3]
    if flags & 0x8000 or flags & 0x7800:  # a response, or not a standard query
        return b""
    count = (packet[4] << 8) | packet[5]
    if count == 0 or count > _MAX_QUESTIONS:
        return b""
    wanted = (name + ".local").lower()
    at = 12
    asked = None
    for _ in range(count):
        qname, at = _read_name(packet, at)
        if qname is None or at + 4 > len(packet):
            return b""
        qtype = (packet[at] << 8) | packet[at + 1]
        qclass = ((packet[at + 2] << 8) | packet[at + 3]) & ~_FLUSH
        at += 4
        if qname == wanted and qtype in (_TYPE_A, _TYPE_ANY) and qclass == _CLASS_IN:
            asked = qtype
    if asked is None:
        return b""
    owner = _labels(wanted)
    ttl = min(TTL_S, 10) if unicast else TTL_S
    record = owner + bytes((0, _TYPE_A, (_FLUSH | _CLASS_IN) >> 8, _CLASS_IN)) + ttl.to_bytes(4, "big") + b"\x00\x04"
    record += ipv4
    if unicast:
        question = owner + bytes((0, asked, 0, _CLASS_IN))
        return packet[0:2] + b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00" + question + record
    return b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00" + record
