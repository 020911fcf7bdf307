"""The toy world: procedural scenes, four benchmark analogs, an LM corpus and a backbone zoo (docs/world.md).

config (WorldConfig) -> kb (kinds, facts) -> scenes (layout, render) -> language, questions -> tasks (datasets API);
corpus, tokenizer -> lm, vision -> zoo (build / ensure); contact_sheet draws the docs' figure.
"""
