"""What the fleet's Mosquitto enforces, written once: the ACLs and the two TLS listeners.

Devices and services (the operator's backends) meet the broker on separate listeners
with `per_listener_settings true`: each listener trusts one CA only (the device chain or
the service CA), so a certificate of one kind cannot complete the TLS handshake on the
other's listener, and each has its own ACL. The device ACL holds only per-device
`pattern` rules (no user rule a device could ever match); the service ACL is reachable
only with a service certificate. Both listeners take the certificate's common name as
user name and as client id, so no client can take another's session by naming its
client id. The test broker (provisioning/local_broker.py) and `wichtel provision broker` both
take their text from here, so the rules the tests check are the rules a manufacturer
deploys.
"""

from agent.core import limits

DEVICE_PORT = 8883
SERVICE_PORT = 8884


def device_acl(prefix: str = "wichtel") -> str:
    """acl_file of the device listener: each device (user name = its certificate's common
    name, its device id) writes only its own tree and reads only its own commands."""
    return (
        "# Devices: write their own tree, read their own commands. Nothing else: no user rules.\n"
        "pattern write %(p)s/v1/%%u/#\n"
        "pattern read %(p)s/v1/%%u/cmd/#\n" % {"p": prefix}
    )


def service_acl(prefix: str = "wichtel") -> str:
    """acl_file of the service listener, where only certificates of the service CA get in:
    a service reads every device's tree and sends commands, and cannot write into a
    device's own topics."""
    return (
        "# Services (service CA certificates only): read every tree, send commands.\n"
        "pattern read %(p)s/v1/#\n"
        "pattern write %(p)s/v1/+/cmd/#\n" % {"p": prefix}
    )


def listener(port: int, cafile: str, certfile: str, keyfile: str, acl_file: str, *, bind: str = "",
             crlfile: str = "") -> str:  # fmt: skip
    """One mutual-TLS listener: no anonymous clients, a client certificate from cafile
    required, its common name used as user name and client id, TLS 1.2 or newer, this
    listener's own ACL and (when given) its CA's revocation list. Needs
    per_listener_settings true (config() writes it) for the ACL to be this listener's."""
    lines = [
        "listener %d%s" % (port, " " + bind if bind else ""),
        "allow_anonymous false",
        # Larger packets from any client are refused (the broker drops that client), so no
        # one can push a huge command through the broker to a device (docs/uplink.md).
        "max_packet_size %d" % limits.BROKER_MAX_PACKET,
        "acl_file %s" % acl_file,
        "cafile %s" % cafile,
        "certfile %s" % certfile,
        "keyfile %s" % keyfile,
    ]
    if crlfile:
        lines.append("crlfile %s" % crlfile)
    lines += [
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "tls_version tlsv1.2",
    ]
    return "\n".join(lines) + "\n"


def config(devices: str, services: str) -> str:
    """The broker configuration: per-listener security, the device listener, the service listener."""
    return (
        "# Each listener has its own trust store and ACL: devices and services never share one.\n"
        "per_listener_settings true\n\n"
        "# Devices: the device CA chain only.\n" + devices + "\n"
        "# Services (the operator's backends): the service CA only.\n" + services
    )
