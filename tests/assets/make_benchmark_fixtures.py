"""Builds tests/assets/benchmarks/: tiny stand-ins for the four real benchmarks, in their hub datasets' raw columns.

Each folder is laid out like a hub dataset repo (data/<split>-00000-of-00001.parquet), so `datasets.load_dataset`
reads it exactly as it reads the hub copy, and vlmlab.benchmarks maps it into the sample schema:
  vqav2/    lmms-lab/VQAv2 columns: question_id, question, answers [{answer, answer_confidence, answer_id}],
            multiple_choice_answer, image_id, image; 2 questions per picture (same-picture shots are excluded)
  textvqa/  lmms-lab/textvqa: question_id, question, answers [str], image_id, image; train + validation
  okvqa/    lmms-lab/OK-VQA: question_id, question, answers [str], image; one split, val2014
  coco/     lmms-lab/COCO-Caption2017: question_id (file name), question, answer [5 captions], id, image; split val
Pictures are 32x24 PNGs of one coloured shape (a few hundred bytes each).

    python tests/assets/make_benchmark_fixtures.py      # rewrites tests/assets/benchmarks/
"""
import io
import shutil
from pathlib import Path

import datasets
from PIL import Image, ImageDraw

OUT = Path(__file__).parent / "benchmarks"
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40),
           "purple": (150, 50, 180), "orange": (240, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20)}
SHAPES = ["circle", "square", "triangle"]
IMAGE = datasets.Image()


def picture(i: int) -> tuple[dict, str, str]:
    colour = list(COLOURS)[i % len(COLOURS)]
    shape = SHAPES[i % len(SHAPES)]
    img = Image.new("RGB", (32, 24), (128, 128, 128))
    d = ImageDraw.Draw(img)
    box = (8, 4, 24, 20)
    if shape == "circle":
        d.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        d.rectangle(box, fill=COLOURS[colour])
    else:
        d.polygon([(16, 4), (24, 20), (8, 20)], fill=COLOURS[colour])
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return {"bytes": buf.getvalue(), "path": None}, colour, shape


def write(name: str, split: str, rows: list[dict], features: dict) -> None:
    folder = OUT / name / "data"
    folder.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_list(rows, features=datasets.Features(features))
    ds.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))


def vqav2() -> None:
    rows = []
    for img_i in range(4):
        img, colour, shape = picture(img_i)
        for q_i, (question, answer) in enumerate([("What color is the shape?", colour),
                                                  ("What shape is it?", shape)]):
            answers = [answer] * 7 + ["gray", answer, "dark " + answer]  # 10 annotators, one disagreeing twice
            rows.append({"question_id": 1000 * img_i + q_i, "question": question, "multiple_choice_answer": answer,
                         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                     for j, a in enumerate(answers)],
                         "image_id": img_i, "image": img})
    write("vqav2", "validation", rows, {
        "question_id": datasets.Value("int64"), "question": datasets.Value("string"),
        "multiple_choice_answer": datasets.Value("string"),
        "answers": datasets.List({"answer": datasets.Value("string"), "answer_confidence": datasets.Value("string"),
                                  "answer_id": datasets.Value("int64")}),
        "image_id": datasets.Value("int64"), "image": IMAGE})


def textvqa() -> None:
    words = ["stop", "exit", "open", "cafe", "sale", "bus", "taxi", "gate", "park"]
    for split, start, n in (("train", 0, 6), ("validation", 6, 3)):
        rows = []
        for i in range(start, start + n):
            img, _, _ = picture(i)
            rows.append({"question_id": i, "question": "What does the sign say?", "answers": [words[i]] * 10,
                         "image_id": f"img{i:04d}", "image": img})
        write("textvqa", split, rows, {"question_id": datasets.Value("int64"), "question": datasets.Value("string"),
                                       "answers": datasets.List(datasets.Value("string")),
                                       "image_id": datasets.Value("string"), "image": IMAGE})


def okvqa() -> None:
    rows = []
    for i in range(6):
        img, colour, _ = picture(i + 2)
        rows.append({"question_id": 5000 + i, "question": f"What fruit has this {colour} colour?",
                     "answers": ["apple", "apple", "cherry"] + ["apple"] * 7, "image": img})
    write("okvqa", "val2014", rows, {"question_id": datasets.Value("int64"), "question": datasets.Value("string"),
                                     "answers": datasets.List(datasets.Value("string")), "image": IMAGE})


def coco() -> None:
    rows = []
    for i in range(6):
        img, colour, shape = picture(i + 1)
        caps = [f"a {colour} {shape} on a gray background", f"a {colour} {shape}", f"one {colour} {shape}",
                f"a small {colour} {shape} in the middle", f"a {shape} that is {colour}"]
        rows.append({"question_id": f"{i + 1:012d}.jpg", "question": "Provide a one-sentence caption.",
                     "answer": caps, "id": 100 + i, "image": img})
    write("coco", "val", rows, {"question_id": datasets.Value("string"), "question": datasets.Value("string"),
                                "answer": datasets.List(datasets.Value("string")), "id": datasets.Value("int64"),
                                "image": IMAGE})


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for build in (vqav2, textvqa, okvqa, coco):
        build()


if __name__ == "__main__":
    main()
