"""The files a manufacturer puts on the fleet's Mosquitto, from the rules in broker_rules:
the two ACLs, the listeners' configuration, the device CA chain and the service CA, both
CRLs, and a server certificate for each listener.
"""

import os

from provisioning import broker_rules, keys, pki
from provisioning.authority import Authority
from provisioning.errors import ProvisioningError

DEVICE_ACL = "device.acl"
SERVICE_ACL = "service.acl"
LISTENER = "wichtel-listener.conf"
CHAIN = "ca-chain.pem"  # the device listener's trust: issuing CA and root
SERVICE_CA = "service-ca.pem"  # the service listener's trust: the service CA alone
CRL = "crl.pem"
SERVICE_CRL = "service-crl.pem"
CERT = "server.crt"
KEY = "server.key"
SERVICE_CERT = "service-server.crt"
SERVICE_KEY = "service-server.key"


def write(
    auth: Authority,
    out: str,
    hosts: list[str],
    port: int = broker_rules.DEVICE_PORT,
    prefix: str = "wichtel",
    install_dir: str = "/etc/mosquitto/wichtel",
    service_port: int = broker_rules.SERVICE_PORT,
    service_hosts: list[str] | None = None,
) -> list[str]:
    """Write the broker's files into out; the listener configuration names them as they
    will lie in install_dir on the broker. Returns the file names."""
    if not hosts:
        raise ProvisioningError("--host: the broker's host name (as devices reach it) is needed for its certificate")
    if port == service_port:
        raise ProvisioningError(
            "--service-port %d: the same port as --port; devices and services need a listener each" % port
        )
    os.makedirs(out, exist_ok=True)
    service_ca = auth.service_ca()
    server = pki.server_certificate(auth.issuing, hosts, auth.org)
    service_server = pki.server_certificate(service_ca, service_hosts or hosts, auth.org)
    crls = {}
    for name, path in ((CRL, auth.write_crl()), (SERVICE_CRL, auth.write_service_crl())):
        with open(path, "rb") as f:  # always fresh: an expired CRL would lock every client out
            crls[name] = f.read()

    def at(name: str) -> str:
        return os.path.join(install_dir, name)

    devices = broker_rules.listener(port, at(CHAIN), at(CERT), at(KEY), at(DEVICE_ACL), crlfile=at(CRL))
    services = broker_rules.listener(
        service_port, at(SERVICE_CA), at(SERVICE_CERT), at(SERVICE_KEY), at(SERVICE_ACL), crlfile=at(SERVICE_CRL)
    )
    files = {
        DEVICE_ACL: broker_rules.device_acl(prefix).encode(),
        SERVICE_ACL: broker_rules.service_acl(prefix).encode(),
        LISTENER: broker_rules.config(devices, services).encode(),
        CHAIN: auth.chain_pem(),
        SERVICE_CA: auth.service_ca_pem(),
        CERT: server.cert_pem() + auth.issuing.cert_pem(),  # the chain a device needs up to its root
        SERVICE_CERT: service_server.cert_pem(),
        **crls,
    }
    for name, data in files.items():
        keys.write_atomic(os.path.join(out, name), data)
    keys.write_key(os.path.join(out, KEY), server.key)
    keys.write_key(os.path.join(out, SERVICE_KEY), service_server.key)
    return sorted([*files, KEY, SERVICE_KEY])
