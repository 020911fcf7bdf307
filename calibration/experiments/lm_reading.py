# Diagnostic (docs/world.md, world v2 candidate 2): can the zoo's tiny LM answer a question about a scene it is told in
# words? Trains the LM on a corpus variant and, at each checkpoint, prints fact recall and the greedy accuracy on the
# validation split's vqa (per type), okvqa and textvqa questions, each scene given as its canonical caption (textvqa:
# "the sign says <word>."): what a frozen LM could do with perfect vision. One thread; the tokenizer is the zoo's.
#   python calibration/experiments/lm_reading.py '{"qa_lines": 30000}' '{"steps": 3000, "checkpoints": [1500, 3000]}' TAG
#   python calibration/experiments/lm_reading.py --zoo lm_strong      # an existing zoo checkpoint, no training
import collections, dataclasses, json, sys, time
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from vlmlab.world import corpus as C
from vlmlab.world.config import WorldConfig
from vlmlab.world.language import captions
from vlmlab.world.lm import LMSpec, fact_recall, train_lm
from vlmlab.world.questions import make_sample
from vlmlab.world.zoo import ensure

tok = PreTrainedTokenizerFast.from_pretrained(str(ensure("lm_strong").parent / "tokenizer"))
samples = [make_sample(WorldConfig(), t, "validation", i) for t in ["vqa", "okvqa", "textvqa"] for i in range(150)]
# okvqa's validation kinds are held out of the VLM's data, not of the LM's corpus: every kind's facts are in it


def told(model) -> dict:
    res = collections.defaultdict(list)
    side, tok.padding_side = tok.padding_side, "left"
    prompts = [(f"the sign says {s.scene.word}." if s.task == "textvqa" else f"there is {captions(s.scene)[0]}.") +
               f" Question: {s.question} Answer:" for s in samples]
    for i in range(0, len(prompts), 50):
        enc = tok(prompts[i:i + 50], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=6, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        for s, o in zip(samples[i:i + 50], out[:, enc["input_ids"].shape[1]:]):
            said = tok.decode(o, skip_special_tokens=True).strip().split(".")[0].strip().lower()
            res[s.task + ("/" + s.qtype if s.task == "vqa" else "")].append(said in [a.lower() for a in s.answers])
    tok.padding_side = side
    return {k: round(100 * sum(v) / len(v), 1) for k, v in sorted(res.items())}


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
