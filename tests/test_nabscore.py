"""NAB scoring on hand-made files whose scores were worked out by hand.

The file: 20 rows, probation floor(0.15 * 20) = 3 rows, one window on rows 10..13
(width 4). Values used below, from 2 sigmoid(-5 x) - 1 with sigmoid(z) = 1/(1+e^-z):
  S(-1) = 0.986614  (first window row: position -(13-10+1)/4 = -1)
  S(-0.5) = 0.848284 (row 12: position -(13-12+1)/4 = -0.5)
  S(1) = -0.986614  (row 16: |13-16| / (4-1) = 1 past the window)
"""

import math

import pytest

from bench import nabscore as ns

STD = ns.PROFILES["standard"]
LAY = ns.layout("f", 20, [(10, 13)])


def scores_at(*rows: int) -> list:
    s = [0.0] * 20
    for r in rows:
        s[r] = 1.0
    return s


def test_sigmoid_values_used_by_hand() -> None:
    assert ns.scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert ns.scaled_sigmoid(-0.5) == pytest.approx(0.848284, abs=1e-6)
    assert ns.scaled_sigmoid(0.0) == 0.0
    assert ns.scaled_sigmoid(1.0) == pytest.approx(-0.986614, abs=1e-6)
    assert ns.scaled_sigmoid(3.0) == -1.0


def test_probation_length() -> None:
    assert ns.probation_rows(20) == 3
    assert ns.probation_rows(4032) == 604
    assert ns.probation_rows(22695) == 750  # capped at 15% of 5000


def test_earliest_detection_is_worth_one() -> None:
    assert ns.file_score(LAY, scores_at(10), 0.5, STD)["score"] == pytest.approx(1.0)


def test_late_detection_in_window() -> None:
    # S(-0.5) / S(-1) = 0.848284 / 0.986614 = 0.859793
    assert ns.file_score(LAY, scores_at(12), 0.5, STD)["score"] == pytest.approx(0.859793, abs=2e-6)


def test_only_the_best_detection_in_a_window_counts() -> None:
    assert ns.file_score(LAY, scores_at(10, 11, 12, 13), 0.5, STD)["score"] == pytest.approx(1.0)


def test_missed_window_and_false_positives() -> None:
    # Row 5 (before any window): -1 * 0.11. Row 16: -0.986614 * 0.11 = -0.108528. Missed: -1.
    r = ns.file_score(LAY, scores_at(5, 16), 0.5, STD)
    assert r["score"] == pytest.approx(-0.11 - 0.108528 - 1.0, abs=1e-6)
    assert r["fp_rows"] == 2 and r["detected"] == 0


def test_probationary_rows_are_not_scored() -> None:
    assert ns.file_score(LAY, scores_at(0, 1, 2, 10), 0.5, STD)["score"] == pytest.approx(1.0)
    assert ns.file_score(LAY, scores_at(3, 10), 0.5, STD)["score"] == pytest.approx(1.0 - 0.11)


def test_profiles_weigh_fp_and_fn() -> None:
    fp = ns.PROFILES["reward_low_FP"]
    fn = ns.PROFILES["reward_low_FN"]
    assert ns.file_score(LAY, scores_at(5, 10), 0.5, fp)["score"] == pytest.approx(1.0 - 0.22)
    assert ns.file_score(LAY, scores_at(5), 0.5, fn)["score"] == pytest.approx(-0.11 - 2.0)


def test_threshold_sweep_picks_the_best_cut() -> None:
    # Window row 11 scores 0.6; an FP at row 5 scores 0.9 and one at row 18 scores 0.3.
    # Cut 0.9: FP only, -0.11 - 1 = -1.11. Cut 0.6: + window at row 11 (position -0.75):
    #   S(-0.75) = 2/(1 + e^-3.75) - 1 = 0.954045; / 0.986614 = 0.966989 -> 0.966989 - 0.11 = 0.856989.
    # Cut 0.3: also row 18 (|13-18|/3 = 1.667 -> S = -0.999519; * 0.11 = -0.109947): 0.747042.
    # Cut 0.0: every row; 12 more FPs outweigh the window: -0.385656 (checked below).
    s = [0.0] * 20
    s[5], s[11], s[18] = 0.9, 0.6, 0.3
    threshold, total = ns.optimise_threshold([LAY], [s], STD)
    assert threshold == 0.6
    assert total == pytest.approx(0.856989, abs=2e-6)
    assert ns.file_score(LAY, s, 0.3, STD)["score"] == pytest.approx(0.747042, abs=2e-6)
    assert ns.file_score(LAY, s, 0.0, STD)["score"] < total


def test_threshold_sweep_can_choose_no_detection() -> None:
    # 100 rows, no window, probation 15: cut 0.9 costs 0.11, cut 0.0 costs 85 * 0.11; none costs 0.
    lay = ns.layout("quiet", 100, [])
    s = [0.0] * 100
    s[50] = 0.9
    threshold, total = ns.optimise_threshold([lay], [s], STD)
    assert threshold == 1.1 and total == 0.0


def test_normalisation_between_null_and_perfect() -> None:
    null, perfect = ns.null_and_perfect([LAY], STD)
    assert (null, perfect) == (-1.0, pytest.approx(1.0))
    assert ns.normalised(1.0, null, perfect) == pytest.approx(100.0)
    assert ns.normalised(-1.0, null, perfect) == 0.0
    assert ns.normalised(0.0, null, perfect) == pytest.approx(50.0)


def test_file_without_windows_scores_only_fps() -> None:
    lay = ns.layout("quiet", 100, [])
    assert lay.windows == []
    s = [0.0] * 100
    s[50] = 1.0
    assert ns.file_score(lay, s, 0.5, STD)["score"] == pytest.approx(-0.11)
    assert math.isclose(ns.file_score(lay, s, 2.0, STD)["score"], 0.0)


def _random_corpus(seed: int) -> tuple:
    """Nine files in three groups, random scores with ties, windows in most files."""
    import random

    rng = random.Random(seed)
    layouts, scores, groups = [], [], []
    for f in range(9):
        n = rng.randrange(40, 120)
        windows = []
        if f % 4 != 3:
            start = rng.randrange(15, n - 20)
            windows.append((start, start + rng.randrange(1, 8)))
            if rng.random() < 0.5 and start + 20 < n - 5:
                second = rng.randrange(start + 10, n - 4)
                windows.append((second, second + 2))
        layouts.append(ns.layout("g%d/f%d" % (f % 3, f), n, windows))
        scores.append([round(rng.random(), 2) for _ in range(n)])  # rounded: ties across files
        groups.append("g%d" % (f % 3))
    return layouts, scores, groups


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("profile", sorted(ns.PROFILES))
def test_fold_optima_equal_the_sweep_on_the_training_files_alone(seed: int, profile: str) -> None:
    layouts, scores, groups = _random_corpus(seed)
    prof = ns.PROFILES[profile]
    folds = ["g0", "g1", "g2"]
    got = ns.fold_optima(layouts, ns.ranked_rows(layouts, scores), groups, folds, prof)
    threshold, raw = ns.optimise_threshold(layouts, scores, prof)
    assert got[None]["threshold"] == threshold and got[None]["train_raw"] == pytest.approx(raw, abs=1e-9)
    for held in folds:
        train = [i for i, g in enumerate(groups) if g != held]
        test = [i for i, g in enumerate(groups) if g == held]
        threshold, raw = ns.optimise_threshold([layouts[i] for i in train], [scores[i] for i in train], prof)
        assert got[held]["threshold"] == threshold
        assert got[held]["train_raw"] == pytest.approx(raw, abs=1e-9)
        held_raw = sum(ns.file_score(layouts[i], scores[i], threshold, prof)["score"] for i in test)
        assert got[held]["held_raw"] == pytest.approx(held_raw, abs=1e-9)


def test_fold_optima_with_no_detection_best() -> None:
    # Group b has only a false positive: trained on b alone, no detection is best (1.1);
    # its held-out total at a's threshold counts the false positive.
    quiet = ns.layout("b/quiet", 100, [])
    s_quiet = [0.0] * 100
    s_quiet[50] = 0.9
    got = ns.fold_optima([LAY, quiet], ns.ranked_rows([LAY, quiet], [scores_at(10), s_quiet]), ["a", "b"],
                         ["a", "b"], STD)  # fmt: skip
    assert got["a"]["threshold"] == 1.1 and got["a"]["held_raw"] == pytest.approx(-1.0)
    assert got["b"]["threshold"] == 1.0 and got["b"]["held_raw"] == pytest.approx(0.0)
    assert got["b"]["train_raw"] == pytest.approx(1.0)
