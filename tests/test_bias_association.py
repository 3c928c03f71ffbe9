import numpy as np
import pytest
from scipy import stats

from tinyemo.bias import association as assoc

EMOTIONS = [f"e{k}" for k in range(6)]


def _labels(rng, n, accuracy=0.6):
    true = rng.integers(len(EMOTIONS), size=n)
    pred = np.where(rng.random(n) < accuracy, true, rng.integers(len(EMOTIONS), size=n))
    return true, pred


def test_planted_effect_is_flagged_first():
    rng = np.random.default_rng(0)
    true, pred = _labels(rng, 400)
    x = rng.standard_normal((400, 20))
    pushed = (x[:, 4] > 0.5) & (rng.random(400) < 0.5)
    pred = np.where(pushed, 2, pred)
    table = assoc.associate(x, true, pred, [f"c{i}" for i in range(20)], EMOTIONS,
                            n_permutations=3000, seed=1)
    top = table.iloc[0]
    assert (top.predictor, top.emotion, bool(top.flagged)) == ("c4", "e2", True)
    assert table.flagged.sum() <= 2  # BH controls the false discovery rate, not every false flag
    assert top.rate_shift > 0.05 and top.observed > top.expected


def test_null_flags_nothing_and_pvalues_are_uniform():
    rng = np.random.default_rng(1)
    true, pred = _labels(rng, 300)
    x = rng.standard_normal((300, 40))
    table = assoc.associate(x, true, pred, [f"c{i}" for i in range(40)], EMOTIONS,
                            n_permutations=5000, seed=2)
    assert not table.flagged.any()
    assert stats.kstest(table.p, "uniform").pvalue > 0.01
    assert 0.35 < table.p.mean() < 0.65


def test_a_predictor_explained_by_the_true_label_is_not_flagged():
    # x tracks the true class and the model is right 70% of the time: x predicts the
    # prediction, but only through the true label, so nothing is beyond the labels.
    rng = np.random.default_rng(2)
    true, pred = _labels(rng, 400, accuracy=0.7)
    x = (true[:, None] == np.arange(len(EMOTIONS))[None, :]) * 2.0 + rng.standard_normal((400, 6))
    table = assoc.associate(x, true, pred, EMOTIONS, EMOTIONS, n_permutations=3000, seed=3)
    assert not table.flagged.any()


def test_group_shift_is_the_stratified_risk_difference():
    # Two true classes; inside each, members of the group are predicted e1 at rate +0.5.
    true = np.repeat([0, 1], 200)
    member = np.tile(np.repeat([1.0, 0.0], 100), 2)
    rng = np.random.default_rng(3)
    base = np.where(true == 0, 0.1, 0.3)
    pred = np.where(rng.random(400) < base + 0.5 * member, 1, 0)
    rd = np.mean([pred[(true == s) & (member == 1)].mean() - pred[(true == s) & (member == 0)].mean()
                  for s in (0, 1)])
    x, names = assoc.group_indicators({"frame": np.where(member == 1, "teal", "white")})
    table = assoc.associate(x, true, pred, names, ["e0", "e1"], n_permutations=1000)
    row = table[(table.predictor == "frame=teal") & (table.emotion == "e1")].iloc[0]
    assert names == ["frame=teal", "frame=white"]
    assert row.rate_shift == pytest.approx(rd)
    assert row.flagged and row.n_high == 200


def test_permutations_stay_inside_their_stratum():
    strata = np.array([0, 1, 0, 2, 1, 0, 2, 2])
    perms = assoc.stratified_permutations(strata, 50, np.random.default_rng(0))
    assert all(sorted(p) == list(range(8)) for p in perms)
    assert (strata[perms] == strata[None, :]).all()
    assert len({tuple(p) for p in perms}) > 10


def test_corrections_match_hand_computed_values():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert assoc.adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert assoc.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert assoc.adjust_pvalues(np.array([0.9, 0.8]), "holm") == pytest.approx([1.0, 1.0])
    with pytest.raises(assoc.AssociationError, match="unknown correction 'bonf'; valid: bh, holm"):
        assoc.adjust_pvalues(p, "bonf")


def test_bad_inputs_name_the_problem():
    x = np.zeros((10, 2))
    with pytest.raises(assoc.AssociationError, match="one entry per image"):
        assoc.associate(x, np.zeros(9, int), np.zeros(10, int), ["a", "b"], EMOTIONS)
    with pytest.raises(assoc.AssociationError, match=r"label ids in \[0, 6\)"):
        assoc.associate(x, np.full(10, 7), np.zeros(10, int), ["a", "b"], EMOTIONS)
    with pytest.raises(assoc.AssociationError, match="use at least 240"):
        assoc.associate(x, np.zeros(10, int), np.zeros(10, int), ["a", "b"], EMOTIONS,
                        n_permutations=100)


def test_null_predictors_demand_more_than_any_direction():
    # Every predictor carries the same real push toward e1 (like every direction of a
    # projected space carries the image): the shuffle test flags them all, but a concept no
    # more associated than the meaningless null predictors is not credited.
    rng = np.random.default_rng(4)
    true, pred = _labels(rng, 400)
    signal = rng.standard_normal(400)
    pred = np.where((signal > 0.8) & (rng.random(400) < 0.6), 1, pred)
    mix = lambda n: 0.5 * signal[:, None] + rng.standard_normal((400, n))  # noqa: E731
    x, null = mix(3), mix(1000)
    x[:, 0] = signal  # a concept that *is* the push: more associated than any null phrase
    names = ["exact", "mixed1", "mixed2"]
    plain = assoc.associate(x, true, pred, names, EMOTIONS, n_permutations=2000)
    strict = assoc.associate(x, true, pred, names, EMOTIONS, n_permutations=2000, null=null)
    assert set(plain[plain.flagged].predictor) == {"exact", "mixed1", "mixed2"}
    assert list(strict[strict.flagged].predictor) == ["exact"]
    assert (strict.p >= strict.p_null).all()
    with pytest.raises(assoc.AssociationError, match="100 null predictors are too few"):
        assoc.associate(x, true, pred, names, EMOTIONS, n_permutations=2000, null=null[:, :100])


def test_corrections_match_textbook_values():
    # five p-values 0.01 ... 0.05: BH adjusts every one to 0.05 (m p_(i) / i = 0.05 for all
    # i); Holm multiplies by 5, 4, 3, 2, 1 (0.05, 0.08, 0.09, 0.08, 0.05) and keeps the
    # running maximum
    p = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    assert assoc.adjust_pvalues(p, "bh") == pytest.approx([0.05] * 5)
    assert assoc.adjust_pvalues(p, "holm") == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    # shape kept, order kept, capped at 1
    grid = np.array([[0.04, 0.001], [0.5, 0.03]])
    assert assoc.adjust_pvalues(grid, "bh") == pytest.approx(np.array([[0.04 * 4 / 3, 0.004], [0.5, 0.04 * 4 / 3]]))
    assert assoc.adjust_pvalues(grid, "holm") == pytest.approx(np.array([[0.09, 0.004], [0.5, 0.09]]))
    assert assoc.adjust_pvalues(np.empty((0, 3)), "bh").shape == (0, 3)
