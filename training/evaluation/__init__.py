"""Evaluation of a trained model, the way BayLing 2 reports it: translation (chrF++/BLEU on held-out pairs,
`translation`), knowledge and English suites (lm-evaluation-harness, `knowledge`), the count of evaluation items the
training data leaked (`contamination`), and the command that runs them and writes the report (`evaluate`:
`python -m training.evaluation`). A package of training/ because it loads models, tokenizers and the chat format as
training does, and the trainer scores translation during a run; it reads the build's shards and the shared text
pieces (schemas/text), never pipelines/."""
