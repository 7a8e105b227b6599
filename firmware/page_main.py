"""A board's agent with its local page: the Agent on simulated sensors and the page served
by agent/local_page/board.py, in one MicroPython process (the unix port in the tests).

Run: micropython -X heapsize=... firmware/page_main.py CONFIG.json, with MICROPYPATH
".frozen", the repository root and microdot's source. CONFIG.json holds: profile (a
compiled profile JSON file), setup_code_dir (holding setup_code.json), host, port,
device_id, speed (simulated ms per real ms), seed; optional: request_timeout_s,
answer_timeout_s, heap_report_s. Prints one line when it serves, and the heap in use
every heap_report_s seconds.
"""

import asyncio
import gc
import json
import sys

from agent import setup_code
from agent.core import limits as core_limits
from agent.core import profile as core_profile
from agent.core.clock import ScaledClock
from agent.core.compat import mem_alloc
from agent.core.consent import ConsentLedger
from agent.core.pipeline import Agent
from agent.local_page import limits
from agent.local_page.board import BoardPage
from agent.sim.engine import SimDriver
from agent.sim.profile_model import build as build_sim

_YEAR_MS = 365 * 24 * 3600 * 1000


def _say(text: str) -> None:
    print(text)


def build(config: dict) -> tuple:
    """(agent, page) for this configuration; nothing is listening yet."""
    with open(config["profile"], "rb") as f:
        profile = core_profile.from_json(f.read())
    sim = build_sim(profile, config.get("seed", 1), [])
    drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in profile["channels"]}
    device_id = config["device_id"]
    # Sized as the board's own agent is (firmware/main.py): the cycle model stays out on an ESP32.
    agent = Agent(profile, device_id, drivers, ScaledClock(config.get("speed", 1.0)), sim, None,
                  ConsentLedger(profile["data_categories"], device_id), board=core_limits.ESP32)  # fmt: skip
    agent.report_to(_say)
    page = BoardPage(agent, setup_code.read_record(config["setup_code_dir"]), _say,
                     request_timeout_s=config.get("request_timeout_s", limits.REQUEST_TIMEOUT_S),
                     answer_timeout_s=config.get("answer_timeout_s", limits.ANSWER_TIMEOUT_S))  # fmt: skip
    return agent, page


async def report_heap(every_s: float) -> None:
    """The heap in use after a collection, every every_s seconds: what the page and the agent keep."""
    while True:
        await asyncio.sleep(every_s)
        print("heap: in use %d bytes" % mem_alloc())


async def main(config: dict) -> None:
    agent, page = build(config)
    await page.start(config["host"], config["port"])
    built = mem_alloc()
    gc.collect()
    print("page: serving on http://%s:%d; heap in use %d of %d bytes"
          % (config["host"], config["port"], built, gc.mem_alloc() + gc.mem_free()))  # fmt: skip
    tasks = [asyncio.create_task(page.keep_time())]
    if config.get("heap_report_s"):
        tasks.append(asyncio.create_task(report_heap(config["heap_report_s"])))
    try:
        await agent.run(10 * _YEAR_MS)
    finally:
        for task in tasks:
            task.cancel()
        await page.stop()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(main(json.load(f)))
