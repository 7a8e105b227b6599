"""The Numenta Anomaly Benchmark's published scoring, implemented from its description.

Per data file: anomaly windows (first to last labelled timestamp), a probationary
period of min(floor(0.15 n), 750) rows that is not scored, and for each row a weight:
inside a window the scaled sigmoid of the row's position relative to the window's
right edge (the earliest row is worth the full true-positive weight), outside a window
a false-positive penalty that shrinks just after a window and is full (-1) elsewhere.
A window counts its best detection, or -fn_weight if missed; every false positive row
counts. One threshold is chosen per detector and profile to maximise the corpus total;
scores are normalised to 0 for the null detector and 100 for the perfect detector.
"""

import math
from typing import NamedTuple

PROFILES = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
PROBATION_FRACTION = 0.15
NO_WINDOW = -1
_ROUNDING = 1e-9  # far below what one row can gain or cost (on NAB at least 1e-5)


def scaled_sigmoid(position: float) -> float:
    """2 sigmoid(-5 x) - 1, and -1 from x = 3 on (far behind a window)."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(n: int) -> int:
    return int(min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * 5000))


class FileLayout(NamedTuple):
    """Per scored row (after probation): its window index or NO_WINDOW, and its weight
    before the profile's tp/fp factor (inside: share of the full TP; outside: penalty)."""

    name: str
    n_rows: int
    probation: int
    window_of: list  # per row from `probation` on
    unit_weight: list  # per row from `probation` on
    windows: list  # indexes of windows with at least one scored row


def layout(name: str, n_rows: int, windows: list) -> FileLayout:
    """windows: (first row, last row) pairs, in order, not overlapping."""
    prob = probation_rows(n_rows)
    window_of = [NO_WINDOW] * n_rows
    weight = [0.0] * n_rows
    prev_right = None
    prev_width = None
    wi = 0
    for i in range(n_rows):
        while wi < len(windows) and windows[wi][1] < i:
            prev_right, prev_width = windows[wi][1], windows[wi][1] - windows[wi][0] + 1
            wi += 1
        if wi < len(windows) and windows[wi][0] <= i <= windows[wi][1]:
            left, right = windows[wi]
            width = right - left + 1
            window_of[i] = wi
            weight[i] = scaled_sigmoid(-(right - i + 1) / width) / MAX_TP
        elif prev_right is None:
            weight[i] = -1.0
        else:
            # A one-row window has no width to scale by: full penalty.
            past = abs(prev_right - i) / (prev_width - 1) if prev_width and prev_width > 1 else 3.0
            weight[i] = scaled_sigmoid(past)
    scored_windows = sorted({w for w in window_of[prob:] if w != NO_WINDOW})
    return FileLayout(name, n_rows, prob, window_of[prob:], weight[prob:], scored_windows)


def file_score(lay: FileLayout, scores: list, threshold: float, profile: dict) -> dict:
    """Raw score of one file at one threshold, with counts."""
    best = {w: None for w in lay.windows}
    fp_total = 0.0
    fp = 0
    for k, w in enumerate(lay.window_of):
        if scores[lay.probation + k] < threshold:
            continue
        if w == NO_WINDOW:
            fp_total += lay.unit_weight[k] * profile["fp"]
            fp += 1
        else:
            value = lay.unit_weight[k] * profile["tp"]
            if best[w] is None or value > best[w]:
                best[w] = value
    tp_total = sum(max(v, -profile["fn"]) for v in best.values() if v is not None)
    missed = sum(1 for v in best.values() if v is None)
    return {
        "score": tp_total + fp_total - missed * profile["fn"],
        "windows": len(lay.windows),
        "detected": len(lay.windows) - missed,
        "fp_rows": fp,
    }


def optimise_threshold(layouts: list, scores: list, profile: dict) -> tuple:
    """(threshold, corpus raw score) maximising the total, by one sweep over all rows.

    Candidate thresholds are the distinct scores (and 1.1: no detection at all); at a
    threshold every row scoring at least it is a detection.
    """
    rows = []
    n_windows = 0
    for f, (lay, sc) in enumerate(zip(layouts, scores, strict=True)):
        n_windows += len(lay.windows)
        for k in range(len(lay.window_of)):
            rows.append((sc[lay.probation + k], f, k))
    rows.sort(key=lambda r: -r[0])
    window_best: dict = {}
    total = -profile["fn"] * n_windows
    best_threshold, best_total = 1.1, total
    i = 0
    while i < len(rows):
        threshold = rows[i][0]
        # Take every row with this same score before judging the threshold.
        while i < len(rows) and rows[i][0] == threshold:
            _, f, k = rows[i]
            lay = layouts[f]
            w = lay.window_of[k]
            if w == NO_WINDOW:
                total += lay.unit_weight[k] * profile["fp"]
            else:
                value = lay.unit_weight[k] * profile["tp"]
                old = window_best.get((f, w), -profile["fn"])
                if value > old:
                    total += value - old
                    window_best[(f, w)] = value
            i += 1
        if total > best_total:
            best_threshold, best_total = threshold, total
    return best_threshold, best_total


def null_and_perfect(layouts: list, profile: dict) -> tuple:
    """Raw corpus scores of the null detector (no detections) and the perfect one."""
    n_windows = sum(len(lay.windows) for lay in layouts)
    perfect = 0.0
    for lay in layouts:
        firsts: dict = {}
        for k, w in enumerate(lay.window_of):
            if w != NO_WINDOW and w not in firsts:
                firsts[w] = lay.unit_weight[k] * profile["tp"]
        perfect += sum(firsts.values())
    return -profile["fn"] * n_windows, perfect


def normalised(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null)


def ranked_rows(layouts: list, scores: list) -> list:
    """Every scored row as (score, file index, row index after probation), highest first."""
    rows = []
    for f, (lay, sc) in enumerate(zip(layouts, scores, strict=True)):
        p = lay.probation
        rows.extend((sc[p + k], f, k) for k in range(len(lay.window_of)))
    rows.sort(key=lambda r: -r[0])
    return rows


def fold_optima(layouts: list, ranked: list, group_of: list, folds: list, profile: dict) -> dict:
    """Per held-out group (a category) in folds: the threshold that maximises the total of
    the files of every other group, and the raw totals at it, as optimise_threshold would
    find them on those files alone; key None: the whole corpus.

    group_of: the group of each file. ranked: ranked_rows(layouts, scores). One sweep
    serves every fold, since a file's score at a threshold depends on that file alone.
    Returns {fold: {"threshold", "train_raw", "held_raw"}} (held_raw: the held-out files'
    raw total at that threshold; for None, train_raw is the corpus total).
    The sweep stops once no total can grow any more: a false positive only costs, and a
    window can gain at most the full TP weight over its best detection so far.
    """
    fn = profile["fn"]
    index = {g: i for i, g in enumerate(folds)}
    slot = [index.get(g, -1) for g in group_of]
    windows = [0] * len(folds)
    for lay, s in zip(layouts, slot, strict=True):
        if s >= 0:
            windows[s] += len(lay.windows)
    n_windows = sum(len(lay.windows) for lay in layouts)
    # Gains over "no detection", cumulated from the highest score down: in all, per fold.
    gained = [0.0] * len(folds)
    best = [0.0] * len(folds)
    best_held = [0.0] * len(folds)
    best_threshold = [1.1] * len(folds)
    total = 0.0
    best_total, total_threshold = 0.0, 1.1
    window_best: dict = {}
    fold_range = range(len(folds))
    # What the windows could still gain, in all and per fold.
    room = (profile["tp"] + fn) * n_windows
    fold_room = [(profile["tp"] + fn) * w for w in windows]
    i = 0
    n = len(ranked)
    while i < n:
        threshold = ranked[i][0]
        while i < n and ranked[i][0] == threshold:
            _, f, k = ranked[i]
            lay = layouts[f]
            w = lay.window_of[k]
            if w == NO_WINDOW:
                gain = lay.unit_weight[k] * profile["fp"]
            else:
                value = lay.unit_weight[k] * profile["tp"]
                old = window_best.get((f, w), -fn)
                gain = value - old if value > old else 0.0
                if gain:
                    window_best[(f, w)] = value
                    room -= gain
                    if slot[f] >= 0:
                        fold_room[slot[f]] -= gain
            total += gain
            if slot[f] >= 0:
                gained[slot[f]] += gain
            i += 1
        if total > best_total:
            best_total, total_threshold = total, threshold
        hopeless = total + room <= best_total
        for s in fold_range:
            train = total - gained[s]
            # A held-out gain added to both sides may leave a rounding step: not a gain.
            if train > best[s] + _ROUNDING:
                best[s], best_held[s], best_threshold[s] = train, gained[s], threshold
            elif train + room - fold_room[s] > best[s]:
                hopeless = False
        if hopeless:
            break
    out: dict = {None: {"threshold": total_threshold, "train_raw": best_total - fn * n_windows, "held_raw": 0.0}}
    for g, s in index.items():
        out[g] = {
            "threshold": best_threshold[s],
            "train_raw": best[s] - fn * (n_windows - windows[s]),
            "held_raw": best_held[s] - fn * windows[s],
        }
    return out
