"""Cross-validation folds are speaker-disjoint and cover every clip exactly once as test."""

from collections import defaultdict

from kws.config import DataConfig
from kws.crossval import fold_dataset
from kws.data.dataset import index_folders


def test_folds_are_speaker_disjoint_and_partition_the_clips(tiny_data):
    base = index_folders([tiny_data], DataConfig(keywords=("yes", "no"), split_salt="t"))
    tested = defaultdict(int)
    for k in range(5):
        ds = fold_dataset(base, k, 5)
        by_split = defaultdict(set)
        for c in ds.clips:
            if c.path is not None:
                by_split[c.split].add(c.speaker)
            if c.split == "test":
                tested[c.name] += 1
        assert not by_split["train"] & by_split["test"]
        assert not by_split["train"] & by_split["validation"]
        assert not by_split["validation"] & by_split["test"]
    assert set(tested) == {c.name for c in base.clips} and set(tested.values()) == {1}


def test_train_only_folders_stay_in_training(tiny_data, tmp_path):
    import shutil

    extra = tmp_path / "extra"
    shutil.copytree(tiny_data / "yes", extra / "yes")
    base = index_folders([tiny_data], DataConfig(keywords=("yes", "no"), split_salt="t"),
                         train_only=[extra])
    extras = [c for c in base.clips if c.train_only]
    assert extras and all(c.split == "train" and extra in c.path.parents for c in extras)
    for k in range(5):
        assert all(c.split == "train" for c in fold_dataset(base, k, 5).clips if c.train_only)
