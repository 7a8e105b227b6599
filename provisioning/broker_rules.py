"""What the fleet's Mosquitto enforces, written once: the ACL patterns and the TLS listener.

The test broker (agent/local_broker.py) and `wichtel provision broker` both take their
text from here, so the rules the tests check are the rules a manufacturer deploys.
"""

from agent.core import limits

SERVICE_USER = "service"
PRODUCTION_PORT = 8883


def acl(prefix: str = "wichtel", service_user: str = SERVICE_USER) -> str:
    """Mosquitto acl_file text: each device (its certificate's common name is its user name)
    writes only its own tree and reads only its own commands; the operator's service reads
    every tree and writes commands."""
    return (
        "# Devices: write their own tree, read their own commands.\n"
        "pattern write %(p)s/v1/%%u/#\n"
        "pattern read %(p)s/v1/%%u/cmd/#\n"
        "# The operator's service reads everything and sends commands.\n"
        "user %(s)s\n"
        "topic read %(p)s/v1/#\n"
        "topic write %(p)s/v1/+/cmd/#\n" % {"p": prefix, "s": service_user}
    )


def listener(port: int, cafile: str, certfile: str, keyfile: str, acl_file: str, *, bind: str = "",
             crlfile: str = "") -> str:  # fmt: skip
    """Mosquitto configuration for the mutual-TLS listener: no anonymous clients, a client
    certificate from the fleet's CA required and used as the user name, TLS 1.2 or newer,
    and (when given) the issuing CA's revocation list."""
    lines = [
        "per_listener_settings false",
        "allow_anonymous false",
        # Larger packets from any client are refused (the broker drops that client), so no
        # one can push a huge command through the broker to a device (docs/uplink.md).
        "max_packet_size %d" % limits.BROKER_MAX_PACKET,
        "acl_file %s" % acl_file,
        "listener %d%s" % (port, " " + bind if bind else ""),
        "cafile %s" % cafile,
        "certfile %s" % certfile,
        "keyfile %s" % keyfile,
    ]
    if crlfile:
        lines.append("crlfile %s" % crlfile)
    lines += ["require_certificate true", "use_identity_as_username true", "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"
