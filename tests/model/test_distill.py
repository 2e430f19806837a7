"""Distillation: a wider teacher trains first, its soft outputs join the student's targets,
Ctrl-C in the teacher phase keeps its checkpoints and `--resume` reuses a finished teacher."""

import json

import numpy as np
import pytest

from kws.errors import KwsError
from kws.model.config import load_train_config
from tests.model.conftest import TINY

DISTILL = {**TINY, "distill.teacher_units": 24, "distill.weight": 0.7}


@pytest.fixture(scope="module")
def prep(tiny_data):
    from kws.model.prepare import prepare

    return prepare([tiny_data], load_train_config(None, dict(DISTILL)))


def test_teacher_soft_targets_mix_into_the_labels(prep):
    from kws.model import gru
    from kws.model.train import AugmentedBatches

    config = load_train_config(None, dict(DISTILL))
    labels = len(prep.dataset.labels)
    frames, bands = prep.splits["train"].features.shape[1:]
    teacher = gru.build(config.model, frames, bands, labels, prep.mean, prep.std).model
    plain = AugmentedBatches(prep, config, labels)
    taught = AugmentedBatches(prep, config, labels, teacher=teacher)
    x0, y0, _ = plain[0]
    x1, y1, _ = taught[0]
    np.testing.assert_array_equal(x0, x1)  # same clips, same augmentation
    np.testing.assert_allclose(y1.sum(axis=1), 1.0, rtol=1e-5)
    # 30% stays on the true label, 70% is the teacher's softmax(logits / T)
    t = np.asarray(teacher.predict_on_batch(x1), np.float64) / config.distill.temperature
    soft = np.exp(t - t.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y1, 0.3 * y0 + 0.7 * soft, rtol=1e-4, atol=1e-6)


def test_student_keeps_its_width_and_resume_reuses_the_teacher(prep, tmp_path):
    from kws.model.train import CHECKPOINT_DIR, TEACHER_DIR, TEACHER_DONE, train

    config = load_train_config(None, dict(DISTILL))
    phases = []
    result = train(prep, config, tmp_path, on_epoch=lambda e, logs: phases.append(
        logs.get("phase", "student")))
    assert phases == ["teacher"] * 3 + ["student"] * 3
    assert result.model.cells[0].units == 16  # the student, not the teacher
    done = tmp_path / CHECKPOINT_DIR / TEACHER_DIR / TEACHER_DONE
    assert json.loads(done.read_text())["best_epoch"] >= 1
    assert result.teacher["units"] == 24 and result.teacher["seconds"] > 0
    phases.clear()
    again = train(prep, config, tmp_path, resume=True,
                  on_epoch=lambda e, logs: phases.append(logs.get("phase", "student")))
    assert "teacher" not in phases and not again.interrupted
    assert again.teacher == result.teacher  # the report still names the teacher after --resume


def test_ctrl_c_in_the_teacher_phase_is_one_clear_error(prep, tmp_path):
    from kws.model.train import CHECKPOINT_DIR, TEACHER_DIR, train

    def stop(epoch, logs):
        if logs.get("phase") == "teacher" and epoch == 2:
            raise KeyboardInterrupt

    config = load_train_config(None, dict(DISTILL))
    with pytest.raises(KwsError, match="interrupted while training the distillation teacher"):
        train(prep, config, tmp_path, on_epoch=stop)
    teacher_ckpt = tmp_path / CHECKPOINT_DIR / TEACHER_DIR / CHECKPOINT_DIR
    assert (teacher_ckpt / "best.weights.h5").is_file()
    phases = []
    train(prep, config, tmp_path, resume=True,
          on_epoch=lambda e, logs: phases.append((logs.get("phase", "student"), e)))
    assert phases == [("teacher", 3)] + [("student", e) for e in (1, 2, 3)]
