"""Which training clips each batch draws: class balance and the share of --train-only clips."""

import numpy as np
import pytest

from kws.model.train import draw_probabilities

LABELS = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
TRAIN_ONLY = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], bool)  # last five: synthetic


def class_mass(p, mask, label):
    return p[mask & (LABELS == label)].sum()


def test_balanced_draws_give_every_class_the_same_mass():
    p = draw_probabilities(LABELS, TRAIN_ONLY, balanced=True, train_only_share=None)
    assert p.sum() == pytest.approx(1.0)
    assert p[LABELS == 0].sum() == pytest.approx(0.5)
    # without a share, the synthetic clips weigh what their count gives (here most of class 1)
    assert p[TRAIN_ONLY].sum() == pytest.approx(1 / 8 + 4 / 6 * 0.5)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.6, 1.0])
def test_train_only_share_is_the_synthetic_mass_and_each_group_stays_balanced(share):
    p = draw_probabilities(LABELS, TRAIN_ONLY, balanced=True, train_only_share=share)
    assert p.sum() == pytest.approx(1.0)
    assert p[TRAIN_ONLY].sum() == pytest.approx(share)
    for group, mass in ((~TRAIN_ONLY, 1 - share), (TRAIN_ONLY, share)):
        assert class_mass(p, group, 0) == pytest.approx(mass / 2)
        assert class_mass(p, group, 1) == pytest.approx(mass / 2)


def test_share_without_balance_is_uniform_within_each_group():
    p = draw_probabilities(LABELS, TRAIN_ONLY, balanced=False, train_only_share=0.2)
    assert np.allclose(p[TRAIN_ONLY], 0.2 / 5) and np.allclose(p[~TRAIN_ONLY], 0.8 / 5)


def test_plain_shuffle_when_nothing_asks_for_weights():
    assert draw_probabilities(LABELS, TRAIN_ONLY, balanced=False, train_only_share=None) is None
    # a share means nothing without train-only clips (or with only those): plain shuffle
    assert draw_probabilities(LABELS, np.zeros(10, bool), balanced=False,
                              train_only_share=0.3) is None
    assert draw_probabilities(LABELS, None, balanced=False, train_only_share=0.3) is None
