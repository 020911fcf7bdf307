"""`python -m vlmlab.bench` (`make bench`): our VLM against transformers' Idefics2 / Idefics1 at equal dims.

  models.py   the four models (ours FA, Idefics2, ours cross-attention, Idefics1), dims per size, batches
  measure.py  matmul peak, training step time / peak memory / FLOPs, generation latency
  run.py      the side-by-side runner, the table, results/bench.csv; the CLI
  profile.py  where our training step's time goes (torch.profiler), `--profile`
"""
