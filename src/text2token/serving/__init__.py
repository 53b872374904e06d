"""Using a trained encoder: the OpenAI-compatible server, search indexes and the sentence-transformers export."""
