"""What `make demo` reports it heard: each said word matched once, everything else counted."""

from kws.commands.demo import heard_words

SAID = [{"word": "yes", "start_s": 0.5}, {"word": "up", "start_s": 3.5},
        {"word": "go", "start_s": 11.0}]


def test_each_word_needs_its_own_label_soon_after_it_starts():
    detections = [{"label": "yes", "t_s": 1.2}, {"label": "off", "t_s": 4.1},
                  {"label": "go", "t_s": 13.0}, {"label": "yes", "t_s": 1.9}]
    # up was heard as off, go too late (2 s after its start), yes twice: 1 hit, 3 others
    assert heard_words(SAID, detections) == (1, 3)


def test_all_heard_and_nothing_else():
    detections = [{"label": w["word"], "t_s": w["start_s"] + 0.7} for w in SAID]
    assert heard_words(SAID, detections) == (3, 0)
