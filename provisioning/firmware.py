"""`wichtel firmware ...`: building the board's firmware image. Parsing and printing only;
the work is in firmware_build. A FirmwareBuildError becomes exit 2, an image over its
flash budget exit 1 (with the report).
"""

import argparse
import os
import sys

from provisioning import firmware_build
from provisioning.errors import BundleError, ProvisioningError

EXIT_OVER_BUDGET = 1
EXIT_REFUSED = 2


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    fw = sub.add_parser("firmware", help="the MicroPython board's firmware: compile, size report, freezing manifest")
    fs = fw.add_subparsers(dest="action", required=True)
    b = fs.add_parser(
        "build",
        help="compile what the board's entry points import with mpy-cross into a board image; report its size",
    )
    b.add_argument(
        "bundle",
        nargs="?",
        metavar="BUNDLE",
        help="a device's bundle (devices/<id> or its mpy/ set) to put in the image too (default: the firmware alone)",
    )
    b.add_argument(
        "--out",
        metavar="DIR",
        help="the image directory, laid out as the board holds it (default build/firmware)",
    )
    b.add_argument(
        "--board",
        default=firmware_build.DEFAULT_BOARD,
        choices=sorted(firmware_build.BOARDS),
        help="the board: its architecture and flash budget (default %s)" % firmware_build.DEFAULT_BOARD,
    )
    b.add_argument(
        "--arch",
        choices=firmware_build.ARCHS,
        help="mpy-cross -march (default: the board's: xtensawin for esp32/esp32s3, rv32imc for esp32c3)",
    )
    b.add_argument("--budget", type=int, metavar="BYTES", help="the flash budget instead of the board's")
    b.add_argument("--json", action="store_true", help="the report as JSON")
    b.add_argument("--heap", action="store_true", help="also measure the import heap on the MicroPython unix port")
    b.add_argument(
        "--write-manifest",
        action="store_true",
        help="write firmware/manifest.py (the freezing manifest) for the modules built",
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ProvisioningError, BundleError) as e:
        print("wichtel: " + str(e), file=sys.stderr)
        return EXIT_REFUSED


def _run(args: argparse.Namespace) -> int:
    if args.action != "build":
        raise ProvisioningError("unknown firmware action %r" % args.action)
    out = os.path.abspath(args.out or firmware_build.DEFAULT_OUT)
    if args.write_manifest and out != firmware_build.DEFAULT_OUT:
        raise ProvisioningError(
            "--write-manifest with --out %s: the manifest freezes the image in %s (where MicroPython's build finds "
            "it); build there, without --out" % (args.out, firmware_build.DEFAULT_OUT)
        )
    report = firmware_build.build(
        out=out, board=args.board, arch=args.arch, bundle_dir=args.bundle, budget=args.budget, heap=args.heap
    )
    text = firmware_build.manifest_text([r["path"] for r in report["modules"]])
    if args.write_manifest:
        with open(firmware_build.MANIFEST, "w", encoding="utf-8") as f:
            f.write(text)
    report["manifest_in_step"] = _read(firmware_build.MANIFEST) == text
    if args.json:
        print(firmware_build.json_report(report))
    else:
        print(firmware_build.text_report(report))
        files = len(firmware_build.image_files(report["out"]))
        if report["bundle"]:
            print(
                "%s: the image (%d files) with the device's bundle, as the board holds them. `wichtel provision flash` "
                "takes an image without one (--image) and the bundle apart." % (report["out"], files)
            )
        else:
            print(
                "%s: the image (%d files); copy it with the device's bundle: `wichtel provision flash --image %s "
                "--port PORT BUNDLE`" % (report["out"], files, report["out"])
            )
        if not report["manifest_in_step"]:
            print(
                "%s does not name these modules: rewrite it with --write-manifest (a frozen firmware built from it "
                "would miss or carry modules)." % firmware_build.MANIFEST
            )
    return EXIT_OVER_BUDGET if report["over_budget"] else 0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
