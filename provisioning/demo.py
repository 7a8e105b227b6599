"""`wichtel demo`: a washing machine whose drain pump clogs, sending to a local fleet.

The fleet side is provisioning's: a local Mosquitto with the fleet's TLS and ACLs and the
operator's service (provisioning/local_broker.py); the device is `wichtel run`'s (agent.cli).
"""

import argparse
import os
import tempfile

from agent import cli
from agent.profile_loader import example
from provisioning import local_broker


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    demo = sub.add_parser("demo", help="a simulated washing machine whose drain pump clogs")
    demo.add_argument("--speed", type=float, default=0.0, help="times real time; 0 = as fast as possible (default)")
    demo.add_argument("--hours", type=float, default=120.0)
    demo.add_argument("--page", metavar="HOST:PORT", help="also serve the local privacy page here; the demo then "
                      "goes on in real time until Ctrl-C")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """The washing machine with a clogging pump, its uplink to a local Mosquitto with TLS."""
    print("Wichtel demo: a washing machine whose drain pump starts to clog at its ninth wash.")
    demo_args = argparse.Namespace(
        profile=example("washing_machine"), replay=None, seed=7, fault=["pump_clog"], fault_onset=8, fault_ramp=4,
        consent=["maintenance"], device_id="dev-1", speed=args.speed, hours=args.hours, broker=None,
        page=args.page, demo_setup_code=True, stay=True, data_dir=None,
    )  # fmt: skip
    if not local_broker.available():
        print("(Mosquitto is not installed here: the demo runs without an uplink; `make demo` installs it.)")
        return cli.run_device(demo_args, narrate_consent=True)
    with tempfile.TemporaryDirectory() as tmp:
        broker = local_broker.Broker(tmp)
        broker.start()
        service = local_broker.Service(broker)
        try:
            crt, key = broker.certs["dev-1"]
            demo_args.broker, demo_args.ca, demo_args.cert, demo_args.key = (
                "localhost:%d" % broker.port, broker.ca_path, crt, key)  # fmt: skip
            demo_args.data_dir = os.path.join(tmp, "device")
            print("A local Mosquitto listens on port %d with TLS, client certificates and a per-device ACL."
                  % broker.port)  # fmt: skip
            code = cli.run_device(demo_args, narrate_consent=True)
            arrived = [m for m in service.wait_for(0, 2) if "/status/" not in m[0]]
        finally:
            service.close()
            broker.stop()
    counts: dict = {}
    for topic, _, _, _ in arrived:
        cat = topic.rsplit("/", 1)[1]
        counts[cat] = counts.get(cat, 0) + 1
    print("Arrived upstream at the operator's service: %d messages (%s)."
          % (len(arrived), ", ".join("%d %s" % (n, c) for c, n in sorted(counts.items())) or "none"))  # fmt: skip
    for topic, payload, _, _ in arrived:
        if topic.endswith("/maintenance"):
            print("  " + topic + " " + payload.decode())
    return code
