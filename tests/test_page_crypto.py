"""The page's portable cryptography equals CPython's: HMAC-SHA256 and PBKDF2-HMAC-SHA256 as
hmac and hashlib compute them, the constant-time compare as hmac.compare_digest, HTML
escaping as html.escape; by hypothesis on CPython and on the same vectors on the unix port."""

import hashlib
import hmac
import html
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import setup_code
from agent.core.errors import ConfigError
from agent.local_page import crypto, template
from tests import micropython_unix

# Keys shorter than, equal to and longer than SHA-256's 64-byte block (longer ones are hashed first).
KEYS = st.binary(max_size=150)


@settings(max_examples=300, deadline=None)
@given(KEYS, st.binary(max_size=300))
def test_hmac_sha256_equals_cpythons(key: bytes, message: bytes) -> None:
    assert crypto.hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()


@settings(max_examples=60, deadline=None)
@given(KEYS, st.binary(max_size=40), st.integers(1, 300), st.integers(1, 400))
def test_pbkdf2_in_steps_equals_cpythons(password: bytes, salt: bytes, iterations: int, chunk: int) -> None:
    steps = list(crypto.pbkdf2_sha256_steps(password, salt, iterations, chunk))
    # A pause after every chunk of rounds but the first, then the key.
    assert steps[:-1] == [None] * (-(-(iterations - 1) // chunk))
    assert steps[-1] == hashlib.pbkdf2_hmac("sha256", password, salt, iterations)


@pytest.mark.parametrize("bad", [(0, 1), (1, 0), (-5, 10)])
def test_pbkdf2_refuses_no_rounds_or_no_chunk(bad: tuple) -> None:
    with pytest.raises(ConfigError, match="pbkdf2: iterations"):
        list(crypto.pbkdf2_sha256_steps(b"pw", b"salt", *bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48), st.binary(max_size=48))
def test_same_bytes_is_compare_digest(a: bytes, b: bytes) -> None:
    assert crypto.same_bytes(a, b) == hmac.compare_digest(a, b)
    assert crypto.same_bytes(a, a)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_is_html_escape(text: str) -> None:
    assert template.escape(text) == html.escape(text, quote=True)


def test_tokens_are_random_url_safe_and_of_their_length() -> None:
    tokens = {crypto.token_urlsafe(32) for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) == 43 and set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
               for t in tokens)  # fmt: skip
    assert len(crypto.token_bytes(16)) == 16 and crypto.token_bytes(16) != crypto.token_bytes(16)


def test_a_code_checked_in_steps_is_checked_as_verify_checks_it() -> None:
    record = setup_code.hash_code("ABCDE-23456", iterations=setup_code.MIN_ITERATIONS)
    for typed, ok in (("abcde 23456", True), ("ABCDE-23457", False), ("ABCDE", False), ("ÄBCDE-23456", False)):
        steps = list(setup_code.verify_steps(typed, record, 1000))
        assert steps[-1] is ok and setup_code.verify(typed, record) is ok
        assert all(s is None for s in steps[:-1])


# The vectors for the unix port: RFC 4231 case 2 and 6, RFC 7914's PBKDF2 vectors, and cases
# around the block size; the expected values are CPython's.
VECTORS = [
    (b"Jefe", b"what do ya want for nothing?", b"salt", 1),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First", b"", 3),
    (b"passwd", b"", b"salt", 1),
    (b"Password", b"x" * 64, b"NaCl", 80_000),
    (b"k" * 64, b"m" * 65, b"s" * 16, setup_code.MIN_ITERATIONS),
    (b"ABCDE23456", b"", b"s" * 16, setup_code.DEFAULT_ITERATIONS),
]


def test_the_same_vectors_on_the_micropython_unix_port() -> None:
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    cases = [[k.hex(), m.hex(), s.hex(), n] for k, m, s, n in VECTORS]
    texts = ["", "a&b<c>\"d'e", "&amp;", "Grüße <script>alert('x')</script>"]
    code = (
        "import binascii, json, time\n"
        "from agent.local_page import crypto, template\n"
        "from agent import setup_code\n"
        "out = []\n"
        "for k, m, s, n in json.loads(%r):\n"
        "    k, m, s = (binascii.unhexlify(x) for x in (k, m, s))\n"
        "    t = time.ticks_ms()\n"
        "    key = crypto.pbkdf2_sha256(k, s, n)\n"
        "    ms = time.ticks_diff(time.ticks_ms(), t)\n"
        "    out.append([binascii.hexlify(crypto.hmac_sha256(k, m)).decode(), binascii.hexlify(key).decode(), ms])\n"
        "eq = [crypto.same_bytes(a, b) for a, b in ((b'', b''), (b'ab', b'ab'), (b'ab', b'ac'), (b'ab', b'abc'))]\n"
        "record = setup_code.hash_code('ABCDE-23456', %d, b's' * 16)\n"
        "print(json.dumps([out, eq, [template.escape(t) for t in json.loads(%r)], record,\n"
        "                  setup_code.verify('abcde23456', record), setup_code.verify('ABCDE23457', record)]))\n"
        % (json.dumps(cases), setup_code.MIN_ITERATIONS, json.dumps(texts))
    )
    out, eq, escaped, record, right, wrong = json.loads(micropython_unix.run(code, heap=512 * 1024).splitlines()[-1])
    for (key, message, salt, n), (mac, derived, ms) in zip(VECTORS, out, strict=True):
        assert mac == hmac.new(key, message, hashlib.sha256).hexdigest()
        assert derived == hashlib.pbkdf2_hmac("sha256", key, salt, n).hex()
        if n == setup_code.DEFAULT_ITERATIONS:
            print("PBKDF2-HMAC-SHA256, %d rounds, on the unix port: %d ms" % (n, ms))
    assert eq == [True, True, False, False]
    assert escaped == [html.escape(t, quote=True) for t in texts]
    assert record == setup_code.hash_code("ABCDE-23456", setup_code.MIN_ITERATIONS, b"s" * 16)  # CPython's record
    assert right is True and wrong is False
