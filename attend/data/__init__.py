"""From text files to padded tensor batches: corpora, tokenizers, vocabularies, batching."""
