"""The VLM's parts: vision encoder, connector, LM, fusion, the VLM that glues them, trainable policy, builder."""
