"""A factory batch: one bundle per serial number, resumable, with manifest, labels and summary.

Every serial gets a random device id when the batch is made (batch.json keeps them, so a
resumed batch keeps its ids). Each device is written to a temp directory, verified,
synced with its group, renamed into devices/<device id>/, and only then recorded:
labels.csv, the PKI's issued.csv, and last manifest.csv, which is what "done" means. A
rerun of the same command skips what the manifest holds, finishes devices that were
renamed but not recorded, and removes temp directories: no device twice, none skipped,
none half-written.
"""

import concurrent.futures
import errno
import hashlib
import json
import multiprocessing
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent import setup_code
from provisioning import bundle, identities, keys, pki
from provisioning.authority import Authority, append_rows, read_rows
from provisioning.errors import BatchError, BundleError, DiskFullError, SerialError

FORMAT = 2  # 1: device ids were the serials in lower case
BATCH_FILE = "batch.json"
DEVICES = "devices"
MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("serial", "device_id", "cert_fingerprint", "cert_serial", "label_ref")
LABELS = "labels.csv"
LABEL_FIELDS = ("label_ref", "serial", "device_id", "setup_code", "qr_payload")
GROUP = 32  # devices synced and recorded together: one sync instead of one fsync per file
PARALLEL_FROM = 64  # smaller batches are not worth starting worker processes for
_TMP = ".tmp-"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _identity_from_pem(key_pem: bytes, cert_pem: bytes) -> pki.Identity:
    key = serialization.load_pem_private_key(key_pem, None)
    return pki.Identity(key, x509.load_pem_x509_certificate(cert_pem))  # type: ignore[arg-type]


class Issuer:
    """Makes one device's material: key pair, certificate, setup code and its hash; and
    holds the bundle signer. Pure computation, so it can run in worker processes."""

    def __init__(
        self,
        issuing: tuple[bytes, bytes],
        signer: tuple[bytes, bytes],
        org: str,
        iterations: int = setup_code.DEFAULT_ITERATIONS,
    ) -> None:
        """issuing and signer: (key PEM, certificate PEM)."""
        self.issuing = _identity_from_pem(*issuing)
        self.signer = _identity_from_pem(*signer)
        self.org = org
        self.iterations = iterations

    @classmethod
    def of(cls, auth: Authority, iterations: int = setup_code.DEFAULT_ITERATIONS) -> "Issuer":
        return cls(*_pems(auth), auth.org, iterations)

    def make(self, serial: str, device_id: str, public: ec.EllipticCurvePublicKey | None = None) -> bundle.Device:
        """Host-generated key unless public (from a device's CSR) is given."""
        key = None if public is not None else pki.new_key()
        cert = pki.device_certificate(self.issuing, public or key.public_key(), device_id, self.org)  # type: ignore[union-attr]
        code = setup_code.new_code()
        return bundle.Device(
            serial,
            device_id,
            cert.public_bytes(serialization.Encoding.PEM),
            keys.key_pem(key) if key is not None else b"",
            code,
            setup_code.hash_code(code, self.iterations),
        )


class Builder:
    """Makes and writes one device into a temp directory and verifies it there: the work
    that runs in parallel. Returns what the recorder needs; the rename is the caller's."""

    def __init__(self, issuer: Issuer, fleet: bundle.Fleet, devices_dir: str, root_pem: bytes) -> None:
        self.issuer = issuer
        self.fleet = fleet
        self.devices_dir = devices_dir
        self.root = x509.load_pem_x509_certificate(root_pem)

    def build(self, serial: str, device_id: str, label_ref: str) -> tuple[dict[str, str], bytes]:
        dev = self.issuer.make(serial, device_id)
        tmp = os.path.join(self.devices_dir, _TMP + dev.device_id)
        try:
            bundle.write_device(tmp, self.fleet, dev, label_ref, self.issuer.signer, sync=False)
            for layout in (bundle.PI, bundle.MPY):
                bundle.verify(os.path.join(tmp, layout), self.root)
        except BaseException:
            bundle.remove(tmp)
            raise
        label = {
            "label_ref": label_ref,
            "serial": dev.serial,
            "device_id": dev.device_id,
            "setup_code": dev.setup_code,
            "qr_payload": bundle.qr_payload(self.fleet.model, dev.device_id),
        }
        return label, dev.cert_pem


_worker: Builder | None = None


def _pems(auth: Authority) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    issuing = (keys.key_pem(auth.issuing.key), auth.issuing.cert_pem())
    return issuing, (keys.key_pem(auth.signer.key), auth.signer.cert_pem())


def _init_worker(
    issuing: tuple[bytes, bytes],
    signer: tuple[bytes, bytes],
    org: str,
    iterations: int,
    fleet: bundle.Fleet,
    devices_dir: str,
    root_pem: bytes,
) -> None:
    global _worker
    _worker = Builder(Issuer(issuing, signer, org, iterations), fleet, devices_dir, root_pem)


def _build_in_worker(serial: str, device_id: str, label_ref: str) -> tuple[dict[str, str], bytes]:
    assert _worker is not None
    return _worker.build(serial, device_id, label_ref)


class Summary:
    def __init__(self, out: str, batch: str, total: int) -> None:
        self.out = out
        self.batch = batch
        self.total = total
        self.new = 0
        self.finished = 0  # renamed before an interruption, recorded now
        self.already = 0
        self.seconds = 0.0

    @property
    def devices_per_s(self) -> float:
        return self.new / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "total": self.total,
            "new": self.new,
            "finished": self.finished,
            "already": self.already,
            "seconds": round(self.seconds, 3),
            "devices_per_s": round(self.devices_per_s, 1),
        }

    def text(self) -> str:
        return (
            "Batch %s in %s: %d devices; %d provisioned now in %.1f s (%.1f devices/s), %d finished after an "
            "interruption, %d already done. Manifest: %s; labels for the printer: %s (holds the setup codes: "
            "keep it with the labels, delete it after printing)."
            % (
                self.batch,
                self.out,
                self.total,
                self.new,
                self.seconds,
                self.devices_per_s,
                self.finished,
                self.already,
                os.path.join(self.out, MANIFEST),
                os.path.join(self.out, LABELS),
            )
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _identity(serials: list[str], profile_json: bytes, auth: Authority, host: str, port: int) -> dict[str, Any]:
    """What makes a batch this batch: rerunning with any of it changed is a different batch."""
    return {
        "serials_sha256": _digest("\n".join(serials).encode()),
        "count": len(serials),
        "profile_sha256": _digest(profile_json),
        "root_fingerprint": pki.fingerprint(auth.root),
        "issuing_fingerprint": pki.fingerprint(auth.issuing.cert),
        "broker": "%s:%d" % (host, port),
    }


_WHAT = {
    "serials_sha256": "serial list",
    "count": "number of devices",
    "profile_sha256": "profile",
    "root_fingerprint": "root CA",
    "issuing_fingerprint": "issuing CA",
    "broker": "broker",
}


def _held_ids(held: dict[str, Any], serials: list[str], path: str) -> dict[str, str]:
    ids = held.get("device_ids")
    if held.get("format") != FORMAT or not isinstance(ids, dict) or set(ids) != set(serials):
        raise BatchError(
            "%s: a batch record of format %r without a device id for every serial (made by an older version?); "
            "use a new output directory." % (path, held.get("format"))
        )
    for serial, device_id in ids.items():
        identities.check_device_id(str(device_id), "%s: device id of %s" % (path, serial))
    return {str(k): str(v) for k, v in ids.items()}


def _open_out(out: str, ident: dict[str, Any], serials: list[str], auth: Authority) -> tuple[str, dict[str, str]]:
    """(batch id, serial -> device id) of out: a new batch in an empty or new directory,
    or the same batch to resume."""
    path = os.path.join(out, BATCH_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                held = json.load(f)
            batch_id = str(held["batch"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BatchError("%s: unreadable batch record (%s); use a new output directory." % (path, e)) from e
        differ = [_WHAT[k] for k in _WHAT if held.get(k) != ident[k]]
        if differ:
            raise BatchError(
                "--out %s already holds batch %s, made with a different %s. A rerun resumes a batch only with the "
                "same serials, profile, CA and broker; choose a new output directory for a new batch."
                % (out, batch_id, ", ".join(differ))
            )
        return batch_id, _held_ids(held, serials, path)
    if os.path.isdir(out) and os.listdir(out):
        raise BatchError(
            "--out %s is not empty and holds no batch (no %s): refusing to mix a batch into other files. "
            "Choose a new or empty directory." % (out, BATCH_FILE)
        )
    os.makedirs(os.path.join(out, DEVICES), exist_ok=True)
    batch_id = "B" + secrets.token_hex(3).upper()
    ids = dict(zip(serials, auth.new_device_ids(len(serials)), strict=True))
    record = dict(
        ident, format=FORMAT, batch=batch_id, created=pki._now().isoformat(timespec="seconds"), device_ids=ids
    )
    keys.write_atomic(path, json.dumps(record, indent=1, sort_keys=True).encode() + b"\n")
    return batch_id, ids


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Recorder:
    """The records of one output directory: labels, manifest, and the PKI's register."""

    def __init__(self, out: str, auth: Authority, batch_id: str) -> None:
        self.out = out
        self.auth = auth
        self.batch = batch_id
        self.done = {r["serial"] for r in read_rows(os.path.join(out, MANIFEST), MANIFEST_FIELDS)}
        self.labelled = {r["label_ref"] for r in read_rows(os.path.join(out, LABELS), LABEL_FIELDS)}
        self.issued = auth.issued()

    def record(self, entries: list[tuple[dict[str, str], x509.Certificate]]) -> None:
        """entries: (label record, certificate) of devices already renamed into place."""
        labels = [{k: lab[k] for k in LABEL_FIELDS} for lab, _ in entries if lab["label_ref"] not in self.labelled]
        if labels:
            append_rows(os.path.join(self.out, LABELS), LABEL_FIELDS, labels)
            os.chmod(os.path.join(self.out, LABELS), 0o600)
            self.labelled |= {r["label_ref"] for r in labels}
        now = pki._now().isoformat(timespec="seconds")
        issued = [
            {
                "serial": lab["serial"],
                "device_id": lab["device_id"],
                "cert_serial": "%x" % cert.serial_number,
                "fingerprint": pki.fingerprint(cert),
                "batch": self.batch,
                "issued_at": now,
            }
            for lab, cert in entries
            if self.issued.get(lab["serial"], {}).get("fingerprint") != pki.fingerprint(cert)
        ]
        if issued:
            self.auth.record_issued(issued)
            self.issued.update({r["serial"]: r for r in issued})
        rows = [
            {
                "serial": lab["serial"],
                "device_id": lab["device_id"],
                "cert_fingerprint": pki.fingerprint(cert),
                "cert_serial": "%x" % cert.serial_number,
                "label_ref": lab["label_ref"],
            }
            for lab, cert in entries
        ]
        append_rows(os.path.join(self.out, MANIFEST), MANIFEST_FIELDS, rows)
        self.done |= {r["serial"] for r in rows}


def _installed(path: str, root: x509.Certificate, serial: str) -> tuple[dict[str, str], x509.Certificate]:
    """Label record and certificate of serial's device directory already in place, verified."""
    for layout in (bundle.PI, bundle.MPY):
        bundle.verify(os.path.join(path, layout), root)
    with open(os.path.join(path, bundle.LABEL_FILE), encoding="utf-8") as f:
        label = json.load(f)
    if label.get("serial") != serial or label.get("device_id") != os.path.basename(path):
        raise BundleError("%s: the label is not that of %s" % (path, serial))
    with open(os.path.join(path, bundle.PI, "identity", bundle.IDENTITY_FILES["cert"]), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return {k: str(v) for k, v in label.items()}, cert


def _produce(
    serials: list[str],
    device_ids: dict[str, str],
    label_ref: dict[str, str],
    auth: Authority,
    fleet: bundle.Fleet,
    devices_dir: str,
    jobs: int,
    iterations: int,
) -> Iterator[list[tuple[dict[str, str], bytes]]]:
    """Devices built in temp directories, in groups of GROUP; with jobs > 1 the next group is
    built by worker processes while the caller commits one."""
    groups = [serials[i : i + GROUP] for i in range(0, len(serials), GROUP)]
    issuing, signer = _pems(auth)
    init = (issuing, signer, auth.org, iterations, fleet, devices_dir, auth.root_pem())
    if jobs <= 1 or len(serials) < PARALLEL_FROM:
        builder = Builder(Issuer(issuing, signer, auth.org, iterations), fleet, devices_dir, auth.root_pem())
        for group in groups:
            yield [builder.build(s, device_ids[s], label_ref[s]) for s in group]
        return
    # spawn, not fork: no copy of the caller's threads or locks in the workers.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:

        def submit(group: list[str]) -> list[concurrent.futures.Future[tuple[dict[str, str], bytes]]]:
            return [pool.submit(_build_in_worker, s, device_ids[s], label_ref[s]) for s in group]

        pending = submit(groups[0]) if groups else []
        for i in range(len(groups)):
            current = pending
            pending = submit(groups[i + 1]) if i + 1 < len(groups) else []
            try:
                yield [f.result() for f in current]
            except BaseException:
                for f in pending:
                    f.cancel()
                concurrent.futures.wait(pending)  # no worker still writing when the caller cleans up
                raise


def run(
    auth: Authority,
    profile_json: bytes,
    serials: list[str],
    out: str,
    host: str,
    port: int,
    jobs: int = 1,
    iterations: int = setup_code.DEFAULT_ITERATIONS,
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
) -> Summary:
    """Provision serials into out (see the module docstring). stop_after stops (as an
    interruption would) after that many new devices were recorded."""
    ident = _identity(serials, profile_json, auth, host, port)
    try:
        batch_id, device_ids = _open_out(out, ident, serials, auth)
    except OSError as e:
        if e.errno in _FULL:
            raise DiskFullError("--out %s: the disk is full before the first device; nothing was written." % out) from e
        raise
    summary = Summary(out, batch_id, len(serials))
    rec = _Recorder(out, auth, batch_id)
    elsewhere = [s for s in serials if s in rec.issued and rec.issued[s]["batch"] != batch_id]
    if elsewhere:
        raise SerialError(
            "%d serial number%s already issued a certificate in another batch (%s): %s. A serial belongs to one "
            "device; nothing was provisioned."
            % (
                len(elsewhere),
                "s were" if len(elsewhere) > 1 else " was",
                rec.issued[elsewhere[0]]["batch"],
                ", ".join(elsewhere[:5]),
            )
        )
    devices_dir = os.path.join(out, DEVICES)
    os.makedirs(devices_dir, exist_ok=True)
    for name in os.listdir(devices_dir):
        if name.startswith(_TMP):
            bundle.remove(os.path.join(devices_dir, name))  # cut off before its sync: never recorded
    label_ref = {s: "%s-%05d" % (batch_id, i + 1) for i, s in enumerate(serials)}
    summary.already = sum(1 for s in serials if s in rec.done)
    todo = []
    interrupted = []
    for s in serials:
        if s in rec.done:
            continue
        path = os.path.join(devices_dir, device_ids[s])
        if os.path.exists(path):
            try:
                interrupted.append(_installed(path, auth.root, s))
                continue
            except (BundleError, OSError, ValueError, KeyError):
                bundle.remove(path)  # not a whole device after all: made again below
        todo.append(s)
    if interrupted:
        rec.record(interrupted)
        summary.finished = len(interrupted)
    done = summary.already + summary.finished
    if progress:
        progress(done)
    fleet = auth.fleet(profile_json, host, port, batch_id)
    start = time.monotonic()
    try:
        for group in _produce(todo, device_ids, label_ref, auth, fleet, devices_dir, jobs, iterations):
            _commit_group(group, devices_dir, rec)
            summary.new += len(group)
            done += len(group)
            if progress:
                progress(done)
            if stop_after is not None and summary.new >= stop_after:
                raise KeyboardInterrupt
    except BaseException as e:
        for name in os.listdir(devices_dir):
            if name.startswith(_TMP):
                bundle.remove(os.path.join(devices_dir, name))  # built, never synced nor recorded
        if not isinstance(e, OSError):
            raise
        if e.errno in _FULL:
            raise DiskFullError(
                "The disk holding %s is full: %d of %d devices are complete and in %s; the device being written was "
                "removed, none is half-written. Free some space and run the same command again: it goes on where "
                "it stopped." % (out, len(rec.done), len(serials), MANIFEST)
            ) from e
        raise BatchError("%s: cannot write (%s); run the same command again to go on." % (out, e)) from e
    finally:
        summary.seconds = time.monotonic() - start
    return summary


def _commit_group(group: list[tuple[dict[str, str], bytes]], devices_dir: str, rec: _Recorder) -> None:
    """Sync the group's temp directories, rename them into place, then record them."""
    os.sync()  # the whole group on disk before any of it is renamed into place
    entries = []
    for label, cert_pem in group:
        os.rename(os.path.join(devices_dir, _TMP + label["device_id"]), os.path.join(devices_dir, label["device_id"]))
        entries.append((label, x509.load_pem_x509_certificate(cert_pem)))
    _sync_dir(devices_dir)
    rec.record(entries)
