"""Model graphs: the op vocabulary, op constructors and lowering to per-step DAGs."""
