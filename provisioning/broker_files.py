"""The files a manufacturer puts on the fleet's Mosquitto, from the rules in broker_rules:
ACL, TLS listener snippet, CA chain, CRL, and a server certificate from the issuing CA.
"""

import os

from provisioning import broker_rules, keys, pki
from provisioning.authority import Authority
from provisioning.errors import ProvisioningError

ACL = "acl"
LISTENER = "wichtel-listener.conf"
CHAIN = "ca-chain.pem"
CRL = "crl.pem"
CERT = "server.crt"
KEY = "server.key"


def write(
    auth: Authority,
    out: str,
    hosts: list[str],
    port: int = broker_rules.PRODUCTION_PORT,
    prefix: str = "wichtel",
    install_dir: str = "/etc/mosquitto/wichtel",
) -> list[str]:
    """Write the broker's files into out; the listener snippet names them as they will lie
    in install_dir on the broker. Returns the file names."""
    if not hosts:
        raise ProvisioningError("--host: the broker's host name (as devices reach it) is needed for its certificate")
    os.makedirs(out, exist_ok=True)
    server = pki.server_certificate(auth.issuing, hosts, auth.org)
    crl_path = auth.write_crl()  # always fresh: an expired CRL would lock every device out
    with open(crl_path, "rb") as f:
        crl = f.read()

    def at(name: str) -> str:
        return os.path.join(install_dir, name)

    files = {
        ACL: broker_rules.acl(prefix).encode(),
        LISTENER: broker_rules.listener(port, at(CHAIN), at(CERT), at(KEY), at(ACL), crlfile=at(CRL)).encode(),
        CHAIN: auth.chain_pem(),
        CRL: crl,
        CERT: server.cert_pem() + auth.issuing.cert_pem(),  # the chain a device needs up to its root
    }
    for name, data in files.items():
        keys.write_atomic(os.path.join(out, name), data)
    keys.write_key(os.path.join(out, KEY), server.key)
    return sorted([*files, KEY])
