"""The two namespaces of broker identities: devices and services (the operator's backends),
their grammars and how new names are made.

A device id is 20 characters of the lowercase base32 alphabet (a-z, 2-7), drawn at random
when the device is provisioned: it is the certificate's common name, the broker user name
and client id, and a topic level, and it says nothing about the serial number printed on
the appliance (the manufacturer's register, issued.csv, keeps the mapping). A service
identity is "service:" and a name; the colon can never be in a device id, so the two
grammars share no string. The grammars are checked where certificates are made
(provisioning/pki.py); the broker keeps the namespaces apart by trust store and listener
(provisioning/broker_rules.py), so a name alone never grants a right.
"""

import re
import secrets

# The device id's grammar is checked on the device too (agent/bundle.py), so it is kept there.
from agent.bundle import DEVICE_ID_LEN, device_id_problem
from provisioning.errors import IdentityError

_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
SERVICE_PREFIX = "service:"
SERVICE_NAME_MIN = 2
SERVICE_NAME_MAX = 32
_SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?\Z")


def new_device_id() -> str:
    """A fresh random device id."""
    bits = secrets.randbits(5 * DEVICE_ID_LEN)
    return "".join(_BASE32[(bits >> (5 * i)) & 31] for i in range(DEVICE_ID_LEN))


def check_device_id(text: str, where: str) -> str:
    why = device_id_problem(text)
    if why:
        raise IdentityError("%s: not a device id: %s" % (where, why))
    return text


def service_name_problem(name: str) -> str:
    """Why name cannot name a service ("" if it can)."""
    if not SERVICE_NAME_MIN <= len(name) <= SERVICE_NAME_MAX:
        return "%d characters; expected %d to %d" % (len(name), SERVICE_NAME_MIN, SERVICE_NAME_MAX)
    if not _SERVICE_NAME.match(name) or "--" in name:
        return "expected lowercase letters, digits and inner single dashes, starting with a letter"
    return ""


def service_identity(name: str) -> str:
    """The broker identity (certificate common name) of the service called name."""
    why = service_name_problem(name)
    if why:
        raise IdentityError("service name %r: %s (e.g. backend, consent-desk)" % (name[:64], why))
    return SERVICE_PREFIX + name


def service_identity_problem(text: str) -> str:
    """Why text cannot be a service identity ("" if it can)."""
    if not text.startswith(SERVICE_PREFIX):
        return "expected %r and a service name, got %r" % (SERVICE_PREFIX, text[:64])
    return service_name_problem(text[len(SERVICE_PREFIX) :])
