"""The encoder: a backbone, its attention mode, a pooling and the LM head as token head."""
