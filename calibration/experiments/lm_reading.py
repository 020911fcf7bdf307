# Diagnostic (docs/world.md, world v2 candidate 2): can the zoo's tiny LM answer a question about a scene it is told in
# words? Trains the LM on a corpus variant and, at each checkpoint, prints fact recall and the greedy accuracy on the
# validation split's vqa (per type), okvqa and textvqa questions, each scene given as its canonical caption (textvqa:
# "the sign says <word>."): what a frozen LM could do with perfect vision. One thread; the tokenizer is the zoo's.
#   python calibration/experiments/lm_reading.py '{"qa_lines": 30000}' '{"steps": 3000, "checkpoints": [1500, 3000]}' TAG
#   python calibration/experiments/lm_reading.py --zoo lm_strong      # an existing zoo checkpoint, no training
import dataclasses, json, sys, time
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from vlmlab.world import corpus as C
from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.language import captions
from vlmlab.world.lm import LMSpec, fact_recall, reading_accuracy, train_lm
from vlmlab.world.questions import make_sample
from vlmlab.world.zoo import ensure

tok = PreTrainedTokenizerFast.from_pretrained(str(ensure("lm_strong").parent / "tokenizer"))
# world v2's scenes: the candidate ran before v3 (WorldConfig()'s defaults are v3's since the freeze)
samples = [make_sample(WorldConfig(**WORLD_V2), t, "validation", i) for t in ["vqa", "okvqa", "textvqa"] for i in range(150)]
# okvqa's validation kinds are held out of the VLM's data, not of the LM's corpus: every kind's facts are in it
# (prompt, answers, key) items in world/lm.py reading_accuracy's form: each validation scene told in words
ITEMS = [((f"the sign says {s.scene.word}." if s.task == "textvqa" else f"there is {captions(s.scene)[0]}.") +
          f" Question: {s.question} Answer:", list(s.answers), s.task + ("/" + s.qtype if s.task == "vqa" else ""))
         for s in samples]


def told(model) -> dict:
    scores = reading_accuracy(model, tok, ITEMS)
    scores.pop("all")
    return {k: round(100 * v, 1) for k, v in sorted(scores.items())}


if sys.argv[1] == "--zoo":
    model = AutoModelForCausalLM.from_pretrained(str(ensure(sys.argv[2]))).eval()
    print(sys.argv[2], "recall", round(fact_recall(model, tok), 3), told(model))
    sys.exit()
kw, lmkw, tag = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
lines = C.build_corpus(C.CorpusSpec(**kw))
t0 = time.time()
spec = LMSpec(**{k: v for k, v in lmkw.items() if k != "checkpoints"})
spec = dataclasses.replace(spec, checkpoints=tuple(lmkw.get("checkpoints", (spec.steps,))))
train_lm(tok, lines, spec, desc=tag, on_checkpoint=lambda step, m: print(
    tag, step, round(time.time() - t0), "recall", round(fact_recall(m, tok), 3), told(m), flush=True))
