"""The TinyLLaVA-style MM-LLM for emotional reasoning (stages `pretrain` and `finetune`).

`connector` (mlp2x_gelu, word_grounded) with `grounding` (its vocabulary and fit without the
LLM), `model` (image tokens spliced at `<image>`), `prompts` (chat
template, answer-only labels), `data` (LLaVA records -> batches), `train` + `checkpoint`
(resumable accelerate loop), `artifact` (build/save/load), `stage_runs` (the two stages),
`infer` (detached and generative modes, streaming), `evaluate` (scores against the scene
graphs), `explainer` (`tinyemo explain`), `launch` (`accelerate launch` entry point).
"""
