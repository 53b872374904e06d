"""Training: the stage loop, the objectives, trainable parameters, checkpoints, processes, probe and memory plan."""
