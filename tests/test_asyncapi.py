"""docs/asyncapi.yaml is the contract: real messages from a run through the broker match it."""

import json
import os

import jsonschema
import pytest
import yaml

from agent import profile_loader
from agent.cli import main
from provisioning.local_broker import Service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIND_TO_MESSAGE = {"anomaly": "anomaly", "reading": "reading", "consumable": "consumable", "status": "status",
                   "consent_receipt": "consentReceipt", "erasure_request": "erasureRequest",
                   "command_reply": "commandReply"}  # fmt: skip


@pytest.fixture(scope="module")
def spec() -> dict:
    with open(os.path.join(ROOT, "docs", "asyncapi.yaml")) as f:
        doc: dict = yaml.safe_load(f)
    return doc


def validator(spec: dict, message: str) -> jsonschema.Draft202012Validator:
    schema = dict(spec["components"]["messages"][message]["payload"])
    schema["components"] = spec["components"]  # so that "#/components/..." references resolve
    return jsonschema.Draft202012Validator(schema)


def test_document_shape(spec: dict) -> None:
    assert spec["asyncapi"] == "3.0.0"
    for op in spec["operations"].values():
        ref = op["channel"]["$ref"].split("/")[-1]
        assert ref in spec["channels"]
    for channel in spec["channels"].values():
        for msg in channel.get("messages", {}).values():
            assert msg["$ref"].split("/")[-1] in spec["components"]["messages"]
    for name in KIND_TO_MESSAGE.values():
        jsonschema.Draft202012Validator.check_schema(spec["components"]["messages"][name]["payload"])


def test_real_messages_match_the_contract(spec: dict, broker: object, tmp_path: str) -> None:
    service = Service(broker)  # type: ignore[arg-type]
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    d = os.path.join(str(tmp_path), "dev")
    try:
        args = ["--profile", profile_loader.example("washing_machine"), "--data-dir", d]
        uplink = ["--broker", "localhost:%d" % broker.port, "--ca", broker.ca_path, "--cert", crt, "--key", key,  # type: ignore[attr-defined]
                  "--device-id", "dev-1"]  # fmt: skip
        assert main(["run", *args, "--simulate", "--hours", "80", "--fault", "pump_clog", "--fault-onset", "3",
                     "--consent", "maintenance", "--consent", "usage_statistics", "--consent", "consumables",
                     "--reorder-choice", "detergent=share:EcoWash@Corner shop", *uplink]) == 0  # fmt: skip
        assert main(["consent", "set", "usage_statistics", "off", *args, "--device-id", "dev-1"]) == 0
        assert main(["run", *args, "--simulate", "--hours", "0.1", *uplink]) == 0
        messages = service.wait_for(0, 2)
    finally:
        service.close()
    kinds: dict = {}
    for topic, payload, retain, msg_id in messages:
        parts = topic.split("/")
        assert parts[:3] == ["wichtel", "v1", "dev-1"]
        if parts[3] == "status":
            assert payload in (b"online", b"offline") and retain is not None
            continue
        body = json.loads(payload)
        assert body["cat"] == parts[3] and msg_id is not None
        validator(spec, KIND_TO_MESSAGE[body["kind"]]).validate(body)
        kinds[body["kind"]] = kinds.get(body["kind"], 0) + 1
    assert set(kinds) == set(KIND_TO_MESSAGE) - {"command_reply"}, kinds  # replies: tests/test_commands.py


def test_the_contract_rejects_what_must_not_leave(spec: dict) -> None:
    bad = {"v": 1, "seq": 1, "cat": "maintenance", "kind": "anomaly", "data": {"serial": "X1"}}
    with pytest.raises(jsonschema.ValidationError):
        validator(spec, "anomaly").validate(bad)
