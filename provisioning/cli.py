"""`wichtel provision ...`: the factory commands. Parsing and printing only; the work is in
authority, batch, enroll, broker_files, flash. Every ProvisioningError becomes exit 2.
"""

import argparse
import os
import sys
import tempfile

from cryptography import x509

from agent.profile_loader import compile_json, load
from provisioning import (
    authority,
    batch,
    broker_files,
    broker_rules,
    bundle,
    enroll,
    firmware_build,
    flash,
    identities,
    keys,
    serials,
)
from provisioning.errors import BundleError, ProvisioningError
from provisioning.progress import ProgressBar

PKI_ENV = "WICHTEL_PKI"
DEFAULT_PKI = "pki"
DEFAULT_ORG = "Wichtel"


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    prov = sub.add_parser("provision", help="factory provisioning: PKI, device bundles, batches, flashing")
    ps = prov.add_subparsers(dest="action", required=True)

    def pki_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--pki",
            default=os.environ.get(PKI_ENV, DEFAULT_PKI),
            metavar="DIR",
            help="the manufacturer's PKI directory (default: $%s, else ./%s)" % (PKI_ENV, DEFAULT_PKI),
        )
        p.add_argument("--passphrase-env", metavar="NAME", help="read the CA keys' passphrase from this variable")

    init = ps.add_parser(
        "init", help="make the manufacturer PKI: root, issuing CA, bundle signer, service CA, update-signing keys"
    )
    pki_args(init)
    init.add_argument(
        "--org", default=DEFAULT_ORG, help="the manufacturer's name in certificates (default %s)" % DEFAULT_ORG
    )
    init.add_argument("--ask-passphrase", action="store_true", help="ask for a passphrase for the keys (not echoed)")

    def device_args(p: argparse.ArgumentParser) -> None:
        pki_args(p)
        p.add_argument("--profile", required=True, help="the appliance profile (YAML or compiled JSON)")
        p.add_argument("--broker", metavar="HOST:PORT", help="the fleet broker (default: the profile's uplink)")

    bat = ps.add_parser("batch", help="provision a batch of devices: bundles, manifest, labels")
    device_args(bat)
    src = bat.add_mutually_exclusive_group(required=True)
    src.add_argument("--serials", metavar="FILE", help="serial numbers, one a line")
    src.add_argument("--count", type=int, metavar="N", help="N serials PREFIX000001... (see --serial-prefix)")
    bat.add_argument("--serial-prefix", default="W", help="prefix of counted serials (default W)")
    bat.add_argument("--first", type=int, default=1, help="number of the first counted serial (default 1)")
    bat.add_argument("--out", required=True, metavar="DIR", help="the batch directory (rerun to resume)")
    bat.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")

    csr = ps.add_parser("csr", help="on a Pi: make the device key (it stays here) and a certificate request")
    csr.add_argument("--serial", required=True)
    csr.add_argument("--data-dir", required=True, metavar="DIR", help="the device's data directory")

    sign = ps.add_parser("sign", help="on the factory host: sign a device's CSR into a bundle without key")
    device_args(sign)
    sign.add_argument("--csr", required=True, metavar="FILE")
    sign.add_argument("--out", required=True, metavar="DIR")

    inst = ps.add_parser("install", help="on a Pi: put a signed bundle beside the key made by `csr`")
    inst.add_argument("signed", metavar="SIGNED_DIR")
    inst.add_argument("--data-dir", required=True, metavar="DIR")

    ver = ps.add_parser(
        "verify", help="check a bundle against the manufacturer's root: signature, every file, chain, key, profile"
    )
    ver.add_argument("bundle", metavar="BUNDLE", help="a layout (devices/<id>/pi or mpy) or a device directory")
    anchor = ver.add_mutually_exclusive_group()
    anchor.add_argument(
        "--pki",
        metavar="DIR",
        help="the PKI directory whose root.crt is pinned (default: $%s, else ./%s)" % (PKI_ENV, DEFAULT_PKI),
    )
    anchor.add_argument("--root", metavar="FILE", help="the manufacturer's root certificate (PEM) to pin")

    svc = ps.add_parser("service", help="a backend's certificate and key from the service CA")
    pki_args(svc)
    svc.add_argument("name", metavar="NAME", help="the service's name, e.g. backend (its identity: service:NAME)")
    svc.add_argument("--out", required=True, metavar="DIR", help="where service.crt, service.key and ca.pem go")

    rev = ps.add_parser("revoke", help="revoke devices' (or services') certificates and write the CRL")
    pki_args(rev)
    rev.add_argument("device_ids", nargs="*", metavar="DEVICE_ID", help="device ids (issued.csv maps serials to them)")
    rev.add_argument("--service", action="append", default=[], metavar="NAME", help="a service to revoke (repeatable)")

    brk = ps.add_parser(
        "broker", help="the fleet broker's files: ACLs, device and service listeners, CA files, CRLs, certificates"
    )
    pki_args(brk)
    brk.add_argument("--out", required=True, metavar="DIR")
    brk.add_argument("--host", action="append", required=True, help="a name or address devices use (repeatable)")
    brk.add_argument("--port", type=int, default=broker_rules.DEVICE_PORT, help="the device listener's port")
    brk.add_argument("--service-port", type=int, default=broker_rules.SERVICE_PORT, help="the service listener's port")
    brk.add_argument(
        "--service-host", action="append", help="a name or address services use (repeatable; default: --host)"
    )
    brk.add_argument("--topic-prefix", default="wichtel")
    brk.add_argument("--install-dir", default="/etc/mosquitto/wichtel", help="where the files go on the broker")

    fl = ps.add_parser("flash", help="copy firmware and a bundle to a MicroPython board with mpremote")
    fl.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    fl.add_argument("bundle", metavar="BUNDLE", help="devices/<id> of a batch, or its mpy/ set")
    fl.add_argument("--image", metavar="DIR", help="a `wichtel firmware build` image without bundle "
                    "(default: build one from firmware/ for --board now)")  # fmt: skip
    fl.add_argument("--board", default=firmware_build.DEFAULT_BOARD, choices=sorted(firmware_build.BOARDS),
                    help="the board, for its flash budget and the image's architecture (default %s)"
                    % firmware_build.DEFAULT_BOARD)  # fmt: skip
    fl.add_argument("--dry-run", action="store_true", help="list what would be written, touch no board")


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _open(args: argparse.Namespace) -> authority.Authority:
    key = os.path.join(args.pki, "issuing.key")
    ask = not args.passphrase_env and os.path.exists(key) and keys.is_encrypted(key)
    secret = keys.passphrase(args.passphrase_env, ask, key)
    return authority.open_authority(args.pki, secret)


def _broker(args: argparse.Namespace, profile: dict) -> tuple[str, int]:
    if not args.broker:
        return str(profile["uplink"]["host"]), int(profile["uplink"]["port"])
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProvisioningError("--broker %s: expected HOST:PORT, e.g. mqtt.example.net:8883" % args.broker)
    return host, int(port)


def _pinned_root(args: argparse.Namespace) -> x509.Certificate:
    """The root `verify` pins: --root FILE, else root.crt of --pki (or its default); never
    one from the bundle."""
    if args.root:
        return authority.read_root_file(args.root)
    directory = args.pki or os.environ.get(PKI_ENV, DEFAULT_PKI)
    if not os.path.exists(os.path.join(directory, "root.crt")):
        raise ProvisioningError(
            "verify needs the manufacturer's root to check the bundle against: --pki DIR (a PKI directory; %s has "
            "no root.crt) or --root FILE. A bundle's own root proves nothing: anyone can make one." % directory
        )
    return authority.read_root(directory)


def _service(auth: authority.Authority, name: str, out: str) -> int:
    """`provision service NAME --out DIR`: service.crt, service.key (600) and ca.pem."""
    if os.path.exists(os.path.join(out, "service.key")):
        raise ProvisioningError("--out %s already holds a service key: refusing to overwrite it" % out)
    os.makedirs(out, mode=0o700, exist_ok=True)
    ident = auth.issue_service(name)
    keys.write_key(os.path.join(out, "service.key"), ident.key)
    keys.write_atomic(os.path.join(out, "service.crt"), ident.cert_pem())
    keys.write_atomic(os.path.join(out, "ca.pem"), auth.service_ca_pem())
    print(
        "%s: service.crt, service.key (600), ca.pem for %s, valid until %s. Connect to the broker's service "
        "listener (port %d unless `provision broker --service-port` says otherwise) with this certificate and key, "
        "verify the broker with ca.pem; the certificate's name is the user name and client id. Subscribe to "
        "<prefix>/v1/# ; send commands to <prefix>/v1/<device id>/cmd/<name>. docs/manufacturing.md has the details."
        % (
            out,
            identities.service_identity(name),
            ident.cert.not_valid_after_utc.date(),
            broker_rules.SERVICE_PORT,
        )
    )
    return 0


def _flash(args: argparse.Namespace, image: str) -> int:
    """`provision flash` with the image in hand: plan, budget, then the copy (or the list)."""
    steps = flash.plan(args.bundle, image)
    used = flash.check_board(steps, args.board)
    if args.dry_run:
        for local, remote in steps:
            print("%-28s %7d bytes  <- %s" % (":" + remote, os.path.getsize(local), local))
        print(
            "%d files (%d bytes of flash) would be written to the board at %s (dry run: nothing was written)."
            % (len(steps), used, args.port)
        )
        return 0
    flash.run(args.port, steps, _say)
    print("%s: %d files written; reset the board to start it." % (args.port, len(steps)))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ProvisioningError, BundleError) as e:
        print("wichtel: " + str(e), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "init":
        secret = keys.passphrase(args.passphrase_env, args.ask_passphrase, "the new CA keys", confirm=True)
        written = authority.init(args.pki, args.org, secret)
        print("%s: manufacturer PKI for %s: %s" % (args.pki, args.org, ", ".join(written)))
        print(
            "Keys are mode 600%s. Move root.key and update-root.key to offline storage: daily work needs "
            "issuing.key only." % (", encrypted" if secret else ", NOT encrypted (no passphrase given)")
        )
        return 0
    if action in ("batch", "sign"):
        profile = load(args.profile)
        profile_json = compile_json(profile)
        host, port = _broker(args, profile)
        if action == "sign":
            auth = _open(args)
            row = enroll.sign_request(auth, profile_json, args.csr, args.out, host, port)
            print(
                "%s: bundle for %s (certificate %s...) without key; install it on the device with "
                "`wichtel provision install`. Label: %s"
                % (args.out, row["device_id"], row["cert_fingerprint"][:16], os.path.join(args.out, bundle.LABEL_FILE))
            )
            return 0
        wanted = (
            serials.read_file(args.serials)
            if args.serials
            else serials.counted(serials.normalize(args.serial_prefix), args.first, args.count)
        )
        auth = _open(args)
        bar = ProgressBar(len(wanted))
        try:
            summary = batch.run(auth, profile_json, wanted, args.out, host, port, jobs=args.jobs, progress=bar.update)
        finally:
            bar.close()
        print(summary.text())
        return 0
    if action == "csr":
        path = enroll.make_request(args.data_dir, args.serial)
        print(
            "%s: certificate request for serial %s; the key stays in %s. Send the request to the factory host "
            "(`wichtel provision sign`): it gives the device its id."
            % (path, serials.valid(args.serial), os.path.join(args.data_dir, "identity"))
        )
        return 0
    if action == "install":
        files = enroll.install(args.signed, args.data_dir)
        print(
            "%s: installed %d files; the bundle verifies with the key made on this device."
            % (args.data_dir, len(files))
        )
        return 0
    if action == "verify":
        root = _pinned_root(args)
        layouts = [os.path.join(args.bundle, layout) for layout in (bundle.PI, bundle.MPY)]
        if not os.path.exists(os.path.join(args.bundle, bundle.BUNDLE_FILE)) and any(map(os.path.isdir, layouts)):
            targets = [path for path in layouts if os.path.isdir(path)]  # a device directory of a batch
        else:
            targets = [args.bundle]
        for target in targets:
            doc = bundle.verify(target, root)
            print(
                "%s: valid %s bundle for %s (broker %s:%s), signed under the root %s"
                % (
                    target,
                    doc["layout"],
                    doc["device_id"],
                    doc["broker"]["host"],
                    doc["broker"]["port"],
                    root.subject.rfc4514_string(),
                )
            )
        return 0
    if action == "service":
        identities.service_identity(args.name)  # a bad name is refused before the passphrase is asked for
        auth = _open(args)
        return _service(auth, args.name, args.out)
    if action == "revoke":
        if not args.device_ids and not args.service:
            raise ProvisioningError("revoke: name at least one DEVICE_ID or --service NAME")
        auth = _open(args)
        if args.device_ids:
            new, crl = auth.revoke(args.device_ids)
            print(
                "Revoked: %s. CRL: %s; copy it to the broker (crlfile) and reload it: `wichtel provision broker` "
                "writes it with the other broker files." % (", ".join(new) or "none new", crl)
            )
        if args.service:
            new, crl = auth.revoke_services(args.service)
            print(
                "Revoked services: %s. Service CRL: %s; copy it to the broker (the service listener's crlfile) and "
                "reload it." % (", ".join(new) or "none new", crl)
            )
        return 0
    if action == "broker":
        auth = _open(args)
        names = broker_files.write(
            auth,
            args.out,
            args.host,
            args.port,
            args.topic_prefix,
            args.install_dir,
            service_port=args.service_port,
            service_hosts=args.service_host,
        )
        print(
            "%s: %s. Copy them to %s on the broker and add `include_dir %s` or paste %s into mosquitto.conf. "
            "Devices connect on port %d, services on port %d."
            % (
                args.out,
                ", ".join(names),
                args.install_dir,
                args.install_dir,
                broker_files.LISTENER,
                args.port,
                args.service_port,
            )
        )
        return 0
    if action == "flash":
        if args.image:
            return _flash(args, args.image)
        with tempfile.TemporaryDirectory() as tmp:
            image = os.path.join(tmp, "image")
            firmware_build.build(out=image, board=args.board)
            return _flash(args, image)
    raise ProvisioningError("unknown provision action %r" % action)
