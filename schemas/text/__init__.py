"""Text pieces the build, language ID and the trainer's evaluation share: normalization, word n-grams and the
overlap index, the embedded corpus and the instruction templates. They import only schemas; see docs/design.md."""
