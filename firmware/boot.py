"""The first file a board runs at every start: deliberately nearly empty.

Nothing here can keep a board from reaching its prompt: no network, no watchdog, no file
writes, no imports of the firmware. Recovery is decided by main.py before it starts
anything (firmware/recovery.py): a file named safe_mode at the filesystem root, or the
button held during the first 2 s after a start, and main.py starts nothing; remove the
file (`mpremote rm :safe_mode`) and reset to start normally. docs/firmware.md, "Recovery".
"""

import gc

gc.collect()  # main.py starts with as much of the heap in one piece as it can get
