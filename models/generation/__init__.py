"""Conditional text generation: a left-to-right BERT LM with Conditional Layer Normalization."""
