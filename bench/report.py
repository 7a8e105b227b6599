"""What every benchmark does last: the figures as one JSON line, and to a file if asked."""

import json


def emit(figures: dict, path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(figures, f, indent=1, sort_keys=True)
    print(json.dumps(figures, sort_keys=True))
