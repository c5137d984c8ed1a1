"""Reading comprehension as UniLM seq2seq (bert4keras' task_reading_comprehension_by_seq2seq):
samples, the model and its loss, incremental decoding with a key/value cache, SavedModel export."""
