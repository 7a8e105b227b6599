"""A device bundle: everything one device needs to be itself, in two layouts, signed.

`pi/`: a directory that becomes the agent's data directory on a Raspberry Pi image
(identity files under identity/, so a factory reset keeps what permanent.json lists).
`mpy/`: the same files flat, copied to the root of a MicroPython board's filesystem.
bundle.json in each says which file is which and holds the SHA-256 of every other file;
bundle.sig is the bundle signer's signature of bundle.json, and the signer is certified
by the manufacturer's root. Verifying checks the signature against a root the caller
pins, then every file against its hash, then what the files say (agent/bundle.py).
"""

import base64
import hashlib
import json
import os
import shutil
from typing import Any

from cryptography import x509

from agent import setup_code

# What a device checks lives on the device's side (agent/bundle.py); the factory verifies
# with the same code, against the manufacturer's pinned root.
from agent.bundle import (
    BUNDLE_FILE as BUNDLE_FILE,
)
from agent.bundle import (
    FORMAT as FORMAT,
)
from agent.bundle import (
    IDENTITY_FILES as IDENTITY_FILES,
)
from agent.bundle import (
    MAX_FILE_BYTES as MAX_FILE_BYTES,
)
from agent.bundle import (
    MAX_FILES as MAX_FILES,
)
from agent.bundle import (
    MAX_SIGNATURE_BYTES as MAX_SIGNATURE_BYTES,
)
from agent.bundle import (
    SIGNATURE_ALGORITHM as SIGNATURE_ALGORITHM,
)
from agent.bundle import (
    SIGNATURE_FILE as SIGNATURE_FILE,
)
from agent.bundle import (
    SIGNATURE_FORMAT as SIGNATURE_FORMAT,
)
from agent.bundle import (
    for_run as for_run,
)
from agent.bundle import (
    own_root as own_root,
)
from agent.bundle import (
    verify as verify,
)
from agent.local_page import mdns
from provisioning import keys, pki

PI = "pi"
MPY = "mpy"
LABEL_FILE = "label.json"  # beside the two layouts, never on a device: it holds the setup code
CSR_FILE = "device.csr"  # made on a Pi by `provision csr`, beside its key
PERMANENT = "permanent.json"


class Fleet:
    """What every bundle of a run shares: profile, broker, trust anchors, maker."""

    def __init__(
        self,
        profile_json: bytes,
        broker_host: str,
        broker_port: int,
        chain_pem: bytes,
        update_root_pem: bytes,
        org: str,
        batch: str,
    ) -> None:
        self.profile_json = profile_json
        profile = json.loads(profile_json)
        self.prefix = str(profile["uplink"]["topic_prefix"])
        app = profile["appliance"]
        self.hardware_id = "%s/%s/%s" % (app["maker"], app["model"], app["hardware_revision"])
        self.model = str(app["model"])
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.chain_pem = chain_pem
        self.update_root_pem = update_root_pem
        self.org = org
        self.batch = batch


class Device:
    """One device's material: made on the factory host (key_pem set) or from a CSR (key_pem
    empty: the key is on the device). setup_code is for the label only."""

    def __init__(
        self,
        serial: str,
        device_id: str,
        cert_pem: bytes,
        key_pem: bytes,
        setup_code: str,
        setup_record: dict[str, Any],
    ) -> None:
        self.serial = serial
        self.device_id = device_id
        self.cert_pem = cert_pem
        self.key_pem = key_pem
        self.setup_code = setup_code
        self.setup_record = setup_record

    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def qr_payload(model: str, device_id: str) -> str:
    """The label's QR text: the page's address on the home network, which a phone's camera
    opens (agent/local_page/mdns.py names it). Upper case: QR alphanumeric characters only,
    so the code stays small; browsers read scheme and host in any case. The setup code is
    printed beside it as text, never in the URL (it would end up in the browser's history)."""
    return ("http://%s.local/" % mdns.local_name(model, device_id)).upper()


def _where(layout: str) -> str:
    return "identity/" if layout == PI else ""


def files(fleet: Fleet, device: Device, layout: str) -> dict[str, tuple[bytes, int]]:
    """relative path -> (content, mode) of one layout, without bundle.json and bundle.sig."""
    where = _where(layout)
    record = json.dumps(setup_code.check_record(device.setup_record), sort_keys=True).encode()
    out: dict[str, tuple[bytes, int]] = {
        "profile.json": (fleet.profile_json, 0o644),
        where + IDENTITY_FILES["ca"]: (fleet.chain_pem, 0o644),
        where + IDENTITY_FILES["cert"]: (device.cert_pem, 0o644),
        where + IDENTITY_FILES["setup_code"]: (record, 0o600),
        where + IDENTITY_FILES["update_trust"]: (fleet.update_root_pem, 0o644),
    }
    if device.key_pem:
        out[where + IDENTITY_FILES["key"]] = (device.key_pem, keys.KEY_MODE)
    out[where + PERMANENT] = (json.dumps(sorted(IDENTITY_FILES.values())).encode() + b"\n", 0o644)
    return out


def _descriptor(fleet: Fleet, device: Device, layout: str, content: dict[str, tuple[bytes, int]]) -> bytes:
    where = _where(layout)
    roles = {role: where + name for role, name in IDENTITY_FILES.items()}
    roles["profile"] = "profile.json"
    # A key made on the device (CSR flow) is not the factory's to hash: it is checked
    # against the certificate instead; its request lies beside it.
    made_on_device = [] if device.key_pem else [roles["key"], where + CSR_FILE]
    doc = {
        "format": FORMAT,
        "layout": layout,
        "device_id": device.device_id,
        "serial": device.serial,
        "hardware_id": fleet.hardware_id,
        "broker": {"host": fleet.broker_host, "port": fleet.broker_port},
        "topic_prefix": fleet.prefix,
        "batch": fleet.batch,
        "files": roles,
        "sha256": {rel: hashlib.sha256(data).hexdigest() for rel, (data, _) in sorted(content.items())},
        "made_on_device": made_on_device,
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def signature_file(signer: pki.Identity, descriptor: bytes) -> bytes:
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": SIGNATURE_ALGORITHM,
        "signed": BUNDLE_FILE,
        "signer": signer.cert_pem().decode(),
        "signature": base64.b64encode(pki.sign(signer, descriptor)).decode(),
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def signed_files(fleet: Fleet, device: Device, layout: str, signer: pki.Identity) -> dict[str, tuple[bytes, int]]:
    """Every file of one layout: the content, its descriptor and the descriptor's signature."""
    out = files(fleet, device, layout)
    descriptor = _descriptor(fleet, device, layout, out)
    out[BUNDLE_FILE] = (descriptor, 0o644)
    out[SIGNATURE_FILE] = (signature_file(signer, descriptor), 0o644)
    return out


def write_device(
    directory: str,
    fleet: Fleet,
    device: Device,
    label_ref: str,
    signer: pki.Identity,
    layouts: tuple[str, ...] = (PI, MPY),
    sync: bool = True,
) -> None:
    """Write a device's signed layouts and its label record into directory (made here, must
    not exist). Files are not fsynced one by one when sync is false: the batch syncs a group."""
    os.makedirs(directory)
    label = {
        "label_ref": label_ref,
        "serial": device.serial,
        "device_id": device.device_id,
        "setup_code": device.setup_code,
        "qr_payload": qr_payload(fleet.model, device.device_id),
    }
    out = {LABEL_FILE: (json.dumps(label, sort_keys=True).encode(), 0o600)}
    for layout in layouts:
        os.makedirs(os.path.join(directory, layout, "identity" if layout == PI else ""))
        layout_files = signed_files(fleet, device, layout, signer)
        out.update({layout + "/" + rel: content for rel, content in layout_files.items()})
    for rel, (data, mode) in out.items():
        # The directory is new and becomes visible only when renamed: no temp file per file.
        fd = os.open(os.path.join(directory, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
