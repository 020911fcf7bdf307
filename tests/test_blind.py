"""Controls for every task score: the blind control (image.blind: the same recipe on blank pictures) and the
prior baseline (the most common training answer per question type, no image, no model)."""
from collections import Counter

import torch
from PIL import Image

from vlmlab.config import compose
from vlmlab.contract.tasks import get_task
from vlmlab.images import ImageConfig, ImageProcessor
from vlmlab.prior import prior_answers, prior_score, prior_scores
from vlmlab.world.config import WorldConfig
from vlmlab.world.questions import make_sample

WORLD = WorldConfig(train_size=200, test_size=60)


def test_blind_views_keep_every_shape_and_carry_no_information():
    pics = [Image.effect_noise((96, 40), 60).convert("RGB"), Image.new("RGB", (50, 80), (200, 10, 10))]
    for mode, extra in (("square", {"size": 32}), ("preserve", {"min_size": 16, "max_size": 48})):
        seeing = ImageProcessor(ImageConfig(mode=mode, split=2, mean=[0.4, 0.5, 0.6], std=[0.2, 0.2, 0.2], **extra), 8)
        blind = ImageProcessor(ImageConfig(mode=mode, split=2, mean=[0.4, 0.5, 0.6], std=[0.2, 0.2, 0.2],
                                           blind=True, **extra), 8)
        for pic in pics:
            a, b = seeing(pic, train=False), blind(pic, train=False)
            assert [v.shape for v in a] == [v.shape for v in b] and len(b) == 5  # same views and tokens
            assert all(v.abs().max() < 0.02 for v in b)  # the normalisation mean: ~0 after normalising
        assert not torch.equal(blind(pics[0])[0][:, :4, :4], seeing(pics[0])[0][:, :4, :4])
    assert compose(["image.blind=true", "image=preserve"]).image.blind


def test_prior_answers_are_the_most_common_training_target_per_question_type():
    answers = prior_answers(WORLD, "vqa")
    by_type = {}
    for i in range(WORLD.train_size):
        s = make_sample(WORLD, "vqa", "train", i)
        by_type.setdefault(s.qtype, Counter())[get_task("vqa").target(s.answers)] += 1
    assert set(answers) == set(by_type) | {""}
    for q, counts in by_type.items():
        assert counts[answers[q]] == max(counts.values())


def test_prior_scores_with_the_tasks_metric_and_only_the_prior_answers():
    score = prior_score(WORLD, "vqa")
    answers = prior_answers(WORLD, "vqa")
    samples = [make_sample(WORLD, "vqa", "test", i) for i in range(WORLD.test_size)]
    expect = get_task("vqa").score([answers[s.qtype] for s in samples], [s.answers for s in samples])
    assert score == expect and 0 < score < 100
    all_tasks = prior_scores(WORLD)
    assert set(all_tasks) == set(WORLD.tasks) and all_tasks["vqa"] == score
    assert prior_scores(WORLD, max_samples=10)["vqa"] == prior_score(WORLD, "vqa", max_samples=10)
